"""The instructor's job end to end, on a temporary copy of the course.

``python exercises/instructor_demo.py`` copies ``exercises/`` (the nbgrader
config and ``source/``) to a new folder, then:

1. ``nbgrader generate_assignment``: the student version in ``release/``;
2. writes the sample submissions of ``tests/submissions/samples.py`` into
   ``submitted/`` (as ``nbgrader collect`` would);
3. ``nbgrader autograde``, ``nbgrader generate_feedback``, ``nbgrader export``;
4. prints the scores per student and per exercise, and where the feedback
   HTML files and ``grades.csv`` are;
5. grades the same submissions again with ``autograde`` (student code in a
   sandbox, tests in the grader), checks that every score agrees with
   nbgrader's, and prints each test's outcome and any tampering it saw.

The copy is kept so you can open the feedback, or start formgrader in it
to grade the written answer. ``--dir PATH`` picks the folder (it must not
exist yet).
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ASSIGNMENT = "layers_and_blocks"
SAMPLES_FILE = REPO / "tests" / "submissions" / "samples.py"


def load_samples():
    """The sample-submission module (``tests/submissions/samples.py``)."""
    spec = importlib.util.spec_from_file_location("layers_samples", SAMPLES_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def copy_course(dest):
    """Copy the course (config and source notebooks) into the new folder
    ``dest``; returns its path."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} already exists; give a new folder")
    dest.mkdir(parents=True)
    shutil.copy2(HERE / "nbgrader_config.py", dest / "nbgrader_config.py")
    shutil.copytree(HERE / "source", dest / "source")
    return dest


def nbgrader(course, *args, check=True, tool="nbgrader"):
    """Run ``nbgrader ARGS`` (or another ``tool`` module) in ``course`` with
    this Python; returns the completed process (output captured).

    The interpreter's folder goes first on PATH: nbgrader starts the
    ``alembic`` tool and the notebook kernels by name, and they must come
    from this environment even when it is not activated.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    proc = subprocess.run([sys.executable, "-m", tool, *args],
                          cwd=course, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{tool} {' '.join(args)} failed with exit code "
                           f"{proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def release(course):
    """Generate the student version of the assignment in ``release/``."""
    return nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")


def submit_samples(course):
    """Write the sample submissions into ``submitted/``; returns the
    student ids."""
    return load_samples().write_all(course, assignment=ASSIGNMENT)


def grade(course):
    """Autograde every submission, write the feedback and ``grades.csv``.

    Returns ``{step: completed process}`` so callers can read the logs.
    """
    return {
        "autograde": nbgrader(course, "autograde", ASSIGNMENT),
        "generate_feedback": nbgrader(course, "generate_feedback", ASSIGNMENT),
        "export": nbgrader(course, "export"),
    }


def read_scores(course):
    """Scores from the gradebook.

    Returns ``{student: {notebook: {"code": float, "max_code": float,
    "written": float, "max_written": float, "manual_pending": bool,
    "cells": {grade_id: (score, max_score, needs_manual_grade)}}}}``;
    ``score`` is None for a cell that still waits for a person.
    """
    from nbgrader.api import Gradebook

    url = f"sqlite:///{Path(course).resolve() / 'gradebook.db'}"
    scores = {}
    with Gradebook(url) as gb:
        for student in gb.students:
            try:
                sub = gb.find_submission(ASSIGNMENT, student.id)
            except Exception:       # a student without this assignment
                continue
            per_nb = {}
            for nb in sub.notebooks:
                cells = {g.name: (g.score if not g.needs_manual_grade else None,
                                  g.max_score, g.needs_manual_grade)
                         for g in nb.grades}
                per_nb[nb.name] = {
                    "code": nb.code_score, "max_code": nb.max_code_score,
                    "written": nb.written_score,
                    "max_written": nb.max_written_score,
                    "manual_pending": nb.needs_manual_grade, "cells": cells}
            scores[student.id] = per_nb
    return scores


def _points(x):
    return f"{x:g}"


def format_table(scores):
    """A text table: one row per student, one column per exercise (test
    points, plus the written answer where there is one), and the total."""
    notebooks = sorted({nb for per in scores.values() for nb in per})
    header = ["student"] + notebooks + ["total"]
    rows = []
    for student in sorted(scores):
        per = scores[student]
        row, got, top, pending = [student], 0.0, 0.0, False
        for name in notebooks:
            nb = per.get(name)
            if nb is None:
                row.append("-")
                continue
            cell = f"{_points(nb['code'])}/{_points(nb['max_code'])}"
            if nb["max_written"]:
                wait = nb["manual_pending"]
                cell += (" + ?/" if wait else
                         f" + {_points(nb['written'])}/") + _points(nb["max_written"])
                pending = pending or wait
            row.append(cell)
            got += nb["code"] + nb["written"]
            top += nb["max_code"] + nb["max_written"]
        row.append(f"{_points(got)}/{_points(top)}" + (" *" if pending else ""))
        rows.append(row)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(r, widths)).rstrip()
             for r in [header, ["-" * w for w in widths]] + rows]
    if any(r[-1].endswith("*") for r in rows):
        lines.append("* a written answer still needs grading in formgrader "
                     "(?: not graded yet)")
    return "\n".join(lines)


def sandboxed_grade(course):
    """Grade the same submissions with ``autograde``; returns its per-test
    rows (``reports/<assignment>/tests.csv``) as dicts."""
    import csv
    nbgrader(course, "grade", ASSIGNMENT, tool="autograde")
    nbgrader(course, "feedback", ASSIGNMENT, tool="autograde")
    with open(Path(course) / "reports" / ASSIGNMENT / "tests.csv", newline="") as f:
        return list(csv.DictReader(f))


def format_outcomes(rows, before, after):
    """One line per student: autograde's total, whether every cell agrees
    with nbgrader's score, the outcome counts, and any tampering seen."""
    def auto_cells(scores, student):
        return {(nb, gid): cell[0] for nb, per in scores[student].items()
                for gid, cell in per["cells"].items()
                if cell[1] and cell[0] is not None}

    lines = []
    for student in sorted({r["student"] for r in rows}):
        mine = [r for r in rows if r["student"] == student]
        counts = {}
        for r in mine:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        same = auto_cells(before, student) == auto_cells(after, student)
        total = (f"{_points(sum(float(r['score']) for r in mine))}/"
                 f"{_points(sum(float(r['max_score']) for r in mine))}")
        outcome = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        tamper = sorted({r["tampering"] for r in mine if r["tampering"]})
        lines.append(f"  {student:<18} {total:>5}  "
                     f"{'same as nbgrader' if same else 'DIFFERS from nbgrader':<21} "
                     f"{outcome}" + (f"  (tampering: {'; '.join(tamper)})" if tamper else ""))
    return "\n".join(lines)


def feedback_files(course):
    """The feedback HTML files, sorted."""
    return sorted(Path(course).glob(f"feedback/*/{ASSIGNMENT}/*.html"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="a new folder for the course copy "
                        "(default: a fresh temporary folder)")
    args = parser.parse_args(argv)
    dest = Path(args.dir) if args.dir else \
        Path(tempfile.mkdtemp(prefix="d2lblocks-course-")) / "course"
    course = copy_course(dest)
    print(f"course copy: {course}")
    print(f"1/5 nbgrader generate_assignment {ASSIGNMENT}")
    release(course)
    students = submit_samples(course)
    print(f"2/5 sample submissions written for {len(students)} students: "
          f"{', '.join(students)}")
    print("3/5 nbgrader autograde, generate_feedback, export")
    grade(course)
    print("4/5 scores (tests automatic; the written answer is graded by hand)\n")
    before = read_scores(course)
    print(format_table(before))
    files = feedback_files(course)
    print(f"\nfeedback: {len(files)} HTML files under {course / 'feedback'}, "
          f"e.g. {files[0] if files else '(none)'}")
    print(f"grades:   {course / 'grades.csv'}")
    print(f"to grade the written answer: cd {course} && jupyter lab "
          f"(Nbgrader > Formgrader)")
    print("\n5/5 the same submissions graded by autograde (sandboxed student "
          "code, tests in the grader), auto-graded points only:")
    rows = sandboxed_grade(course)
    print(format_outcomes(rows, before, read_scores(course)))
    print(f"per-test outcomes: {course / 'reports' / ASSIGNMENT / 'tests.csv'}; "
          f"feedback: feedback/<student>/{ASSIGNMENT}/autograde.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
