"""The nbgrader course on disk: submissions, reports, gradebook.

Layout (nbgrader's, plus two things of ours)::

    <course>/source/<assignment>/*.ipynb            instructor notebooks (tests)
    <course>/submitted/<student>/<assignment>/      what students handed in
    <course>/autograded/<student>/<assignment>/     written here, for formgrader
    <course>/reports/<assignment>/<student>.json    ours: every test's status
    <course>/reports/<assignment>/tests.csv         ours: one row per student x test
    <course>/gradebook.db                           nbgrader's gradebook
"""

import csv
import fnmatch
import html
import json
import os
import shutil
from pathlib import Path

import nbformat

from .notebook import SourceNotebook, nbgrader_meta, release_version, visible_part


class CourseError(Exception):
    """The course folder is not usable for the request."""


def find_course(path=None):
    """The course root: ``path``, else the current folder when it holds
    ``nbgrader_config.py``, else ``exercises/`` below it."""
    if path is not None:
        root = Path(path)
    elif Path("nbgrader_config.py").exists():
        root = Path(".")
    else:
        root = Path("exercises")
    if not (root / "source").is_dir():
        raise CourseError(f"expected an nbgrader course folder with a source/ "
                          f"folder, got {str(root)!r} (use --course DIR)")
    return root.resolve()


def load_sources(root, assignment):
    """``{notebook file name: SourceNotebook}`` of an assignment."""
    folder = Path(root) / "source" / assignment
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        raise CourseError(f"no source notebooks in {folder} (is the assignment "
                          f"name {assignment!r} right?)")
    return {p.name: SourceNotebook.read(p) for p in paths}


def find_submissions(root, assignment, student_glob="*"):
    """``[(student, folder)]`` under ``submitted/``, sorted by student."""
    base = Path(root) / "submitted"
    found = []
    if base.is_dir():
        for d in sorted(base.iterdir()):
            if d.is_dir() and fnmatch.fnmatchcase(d.name, student_glob) \
                    and (d / assignment).is_dir():
                found.append((d.name, str(d / assignment)))
    return found


def submission_files(folder, limit_mb=64):
    """``{relative name: absolute path}`` of a submission's files (no
    links, nothing hidden, at most ``limit_mb`` in all)."""
    files, total = {}, 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name.startswith(".") or os.path.islink(path):
                continue
            total += os.path.getsize(path)
            if total > limit_mb << 20:
                return files
            files[os.path.relpath(path, folder)] = os.path.abspath(path)
    return files


# ---- reports -------------------------------------------------------------------
CSV_FIELDS = ["student", "notebook", "grade_id", "title", "status", "score",
              "max_score", "message", "tampering"]


def write_reports(root, assignment, results):
    """Write one JSON per student and the per-test CSV; returns the CSV path."""
    out = Path(root) / "reports" / assignment
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for res in sorted(results, key=lambda r: r["student"]):
        (out / f"{res['student']}.json").write_text(
            json.dumps(res, indent=1, sort_keys=True), encoding="utf-8")
        for nb in res["notebooks"]:
            tamper = "; ".join(nb.get("tamper", []))
            for t in nb.get("tests", []):
                rows.append({"student": res["student"], "notebook": nb["notebook"],
                             "grade_id": t["grade_id"], "title": t["title"],
                             "status": t["status"], "score": t["score"],
                             "max_score": t["max_points"], "message": t["message"],
                             "tampering": tamper})
    path = out / "tests.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_autograded(root, assignment, student, folder, sources, result):
    """The ``autograded/`` copy that formgrader and ``nbgrader
    generate_feedback`` read: the submission with each test cell put back
    as released (visible part only, never the hidden tests) and the test's
    outcome as its output."""
    out = Path(root) / "autograded" / student / assignment
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    stamp = Path(folder) / "timestamp.txt"
    if stamp.exists():
        shutil.copyfile(stamp, out / "timestamp.txt")
    by_name = {nb["notebook"]: nb for nb in result["notebooks"]}
    for name, src in sources.items():
        path = Path(folder) / name
        nb = nbformat.read(str(path), as_version=4) if path.exists() \
            else nbformat.v4.new_notebook()
        outcome = {t["grade_id"]: t for t in by_name.get(name, {}).get("tests", [])}
        cells, placed = [], set()
        for cell in nb.cells:
            gid = nbgrader_meta(cell).get("grade_id")
            if gid in src.test_ids:
                if gid in placed:
                    continue
                placed.add(gid)
                cells.append(_test_cell(src.cells[gid], outcome.get(gid)))
            elif gid in src.cells and gid not in placed:
                placed.add(gid)
                cell.metadata["nbgrader"] = dict(nbgrader_meta(src.cells[gid]))
                cells.append(cell)
            elif not gid:
                cells.append(cell)
        for gid, cell in src.cells.items():     # put back what was deleted
            if gid not in placed and nbgrader_meta(cell).get("grade"):
                if gid in src.test_ids:
                    cells.append(_test_cell(cell, outcome.get(gid)))
                else:
                    c = nbformat.from_dict(cell)
                    c.source = release_version(cell.source, cell.cell_type)
                    cells.append(c)
        notes = by_name.get(name, {}).get("tamper", [])
        if notes:
            cells.insert(0, nbformat.v4.new_markdown_cell(
                "**autograde: changes to protected cells were seen** (the tests "
                "were run from the instructor's copy):\n\n" +
                "\n".join(f"- {html.escape(n)}" for n in notes)))
        nb.cells = cells
        nbformat.write(nb, str(out / name))
    return out


def _test_cell(src_cell, outcome):
    cell = nbformat.v4.new_code_cell(visible_part(src_cell.source))
    cell.metadata["nbgrader"] = dict(nbgrader_meta(src_cell))
    if "id" in src_cell:
        cell["id"] = src_cell["id"]
    if outcome is not None and outcome["status"] != "passed":
        cell.outputs = [nbformat.v4.new_output(
            "error", ename=f"autograde: {outcome['status']}",
            evalue=outcome["message"], traceback=[
                f"autograde: {outcome['status']}: {outcome['message']}"])]
    return cell


# ---- gradebook --------------------------------------------------------------------
def check_gradebook(root, assignment):
    """Raise CourseError unless the gradebook knows ``assignment``."""
    import warnings
    from nbgrader.api import Gradebook, MissingEntry
    path = Path(root) / "gradebook.db"
    message = (f"the gradebook has no assignment {assignment!r}: run `nbgrader "
               f"generate_assignment {assignment}` in the course folder first "
               f"(it records the cells that hold points), or pass --no-gradebook")
    if not path.exists():
        raise CourseError(message)
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{path}") as gb:
        warnings.simplefilter("ignore")
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise CourseError(message) from None


def update_gradebook(root, assignment, results, sources):
    """Store auto scores through ``nbgrader.api`` so formgrader, manual
    grading, ``nbgrader export`` and ``generate_feedback`` see them.

    A test that timed out or crashed gets 0 points *and* is marked as
    needing a look by hand; a notebook with tampering, a timeout or a
    crash is flagged.
    """
    import warnings
    from nbgrader.api import Gradebook, MissingEntry
    url = f"sqlite:///{Path(root) / 'gradebook.db'}"
    with warnings.catch_warnings(), Gradebook(url) as gb:
        # nbgrader's add_submission makes SQLAlchemy warn about autoflush.
        warnings.simplefilter("ignore")
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise CourseError(
                f"the gradebook has no assignment {assignment!r}: run `nbgrader "
                f"generate_assignment {assignment}` in the course folder first "
                f"(it records the cells that hold points)") from None
        for res in results:
            student = res["student"]
            gb.update_or_create_student(student)
            try:
                sub = gb.find_submission(assignment, student)
            except MissingEntry:
                sub = gb.add_submission(assignment, student)
            if res.get("timestamp"):
                try:
                    from nbgrader.utils import parse_utc
                    sub.timestamp = parse_utc(res["timestamp"])
                except Exception:
                    pass
            graded = {nb["notebook"] for nb in res["notebooks"]}
            for name, src in sources.items():
                if name not in graded:      # the grader itself failed here
                    _mark_ungraded(gb, name[:-len(".ipynb")], assignment,
                                   student, src)
            for nbres in res["notebooks"]:
                nb_name = nbres["notebook"][:-len(".ipynb")]
                try:
                    nbsub = gb.find_submission_notebook(nb_name, assignment, student)
                except MissingEntry:
                    continue
                bad = False
                for t in nbres["tests"]:
                    try:
                        grade = gb.find_grade(t["grade_id"], nb_name, assignment, student)
                    except MissingEntry:
                        continue
                    grade.auto_score = float(t["score"])
                    troubled = t["status"] in ("timeout", "crashed")
                    grade.needs_manual_grade = troubled
                    bad = bad or troubled
                src = sources.get(nbres["notebook"])
                for gid in (src.manual if src else {}):
                    try:
                        grade = gb.find_grade(gid, nb_name, assignment, student)
                    except MissingEntry:
                        continue
                    if grade.manual_score is not None:
                        continue
                    if gid in nbres.get("unchanged_answers", []):
                        grade.auto_score, grade.needs_manual_grade = 0.0, False
                    else:
                        grade.auto_score, grade.needs_manual_grade = None, True
                nbsub.flagged = bool(nbres.get("tamper")) or bad
            gb.db.commit()


def _mark_ungraded(gb, nb_name, assignment, student, src):
    """No score, *needs manual grade* and a flag: never a silent 0."""
    from nbgrader.api import MissingEntry
    try:
        nbsub = gb.find_submission_notebook(nb_name, assignment, student)
    except MissingEntry:
        return
    for t in src.tests:
        try:
            grade = gb.find_grade(t.grade_id, nb_name, assignment, student)
        except MissingEntry:
            continue
        grade.auto_score, grade.needs_manual_grade = None, True
    nbsub.flagged = True
