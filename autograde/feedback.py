"""Feedback for students: every test, its points and why it failed.

Built from the JSON reports of ``autograde grade`` and the gradebook as it
is *now*, so hand grades and score changes made in formgrader after the
autograding show up. The reports hold test titles (the first comment line
of a test cell) and messages, never test code, so the hidden tests cannot
leak through feedback.

Students only ever receive what ``nbgrader release_feedback`` ships: one
HTML file per notebook, named like the notebook. So autograde's section
for a notebook is put *into* nbgrader's feedback page of that notebook
(between two marker comments, replaced on every run), clearly labelled as
autograde's. A page with all notebooks of a student, for the instructor,
goes to ``reports/<assignment>/feedback/<student>.html``: outside
``feedback/``, so that ``release_feedback`` never ships it.
"""

import html
import re
import shutil
from pathlib import Path

BEGIN = "<!-- autograde feedback: begin -->"
END = "<!-- autograde feedback: end -->"
# Files nbgrader release_feedback reads beside the HTML pages.
EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")

# Every rule is scoped to .autograde-feedback: the section sits inside
# nbgrader's own page and must not restyle it.
_STYLE = """
.autograde-feedback { font-family: sans-serif; border: 2px solid #3b6ea5;
  border-radius: 4px; padding: .6em 1em; margin: 1em 0; background: #f7fafd; }
.autograde-feedback h3 { margin-top: .2em; }
.autograde-feedback table { border-collapse: collapse; width: 100%;
  margin: .5em 0; }
.autograde-feedback td, .autograde-feedback th { border: 1px solid #ccc;
  padding: .3em .6em; text-align: left; vertical-align: top; }
.autograde-feedback td.why { white-space: pre-wrap; overflow-wrap: anywhere; }
.autograde-feedback .passed, .autograde-feedback .graded { color: #176317; }
.autograde-feedback .failed, .autograde-feedback .error { color: #a11; }
.autograde-feedback .timeout, .autograde-feedback .crashed,
.autograde-feedback .waiting { color: #a15c00; font-weight: bold; }
.autograde-feedback .note { background: #fff6dd; padding: .5em; }
"""


# ---- wording shared with `autograde check` ---------------------------------
def count(n, word):
    """``1 test``, ``2 tests``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def empty_answers(nb):
    """``[(grade_id, points)]`` of the written answers (and hand-graded
    code answers) still as released: blank or ``YOUR ANSWER HERE``."""
    empty = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not (meta.get("grade") and meta.get("solution")):
            continue
        text = cell.get("source", "").strip()
        if cell.get("cell_type") == "code":
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            blank = lines in ([], ["# YOUR CODE HERE", "raise NotImplementedError()"])
        else:
            blank = text in ("", "YOUR ANSWER HERE")
        if blank:
            empty.append((meta.get("grade_id", "?"), float(meta.get("points", 0) or 0)))
    return empty


def plain_counts(text):
    """Fix the grammar of a count of one in a message ("1 times")."""
    return re.sub(r"(?<![\d.])1 (time|block|test|call|parameter|instance)s\b",
                  r"1 \1", text)


def short_title(title):
    """A test's title without the ``Test:`` of its comment line."""
    return re.sub(r"^Test:\s*", "", title)


def _pts(x):
    return "?" if x is None else f"{float(x):g}"


_NOT_WRITTEN = " (written answers are graded by hand and are not included)."


def _score(label, got, top, after=""):
    """A score paragraph: ``label: got / top`` in bold, then ``after``."""
    return f"<p>{label}: <b>{_pts(got)} / {_pts(top)}</b>{after}</p>"


# ---- the gradebook now -----------------------------------------------------
def read_gradebook(root, assignment):
    """Scores in ``gradebook.db`` right now, hand grades included.

    Returns ``{student: {notebook stem: {"score", "max_score",
    "needs_manual", "cells": {grade_id: {...}}}}}``; each cell has
    ``score``, ``max_score``, ``needs_manual``, ``by_hand`` (a person set
    the score), ``written`` (a markdown answer) and ``comment``. Empty
    when there is no gradebook.
    """
    import warnings
    path = Path(root) / "gradebook.db"
    if not path.exists():
        return {}
    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import DatabaseError
    try:
        with warnings.catch_warnings(), Gradebook(f"sqlite:///{path}") as gb:
            warnings.simplefilter("ignore")     # SQLAlchemy chatter
            try:
                subs = gb.find_assignment(assignment).submissions
            except MissingEntry:
                return {}
            return {sub.student.id: {nb.name: _notebook_scores(nb)
                                     for nb in sub.notebooks}
                    for sub in subs}
    except DatabaseError as exc:
        from .course import CourseError
        raise CourseError(
            f"{path} is not a readable nbgrader gradebook ({exc.orig}); "
            f"pass --no-gradebook to use the scores autograde "
            f"recorded") from None


def _notebook_scores(nb):
    """One submitted notebook's entry of :func:`read_gradebook`."""
    comments = {c.name: c.comment for c in nb.comments}
    cells = {g.name: {
        "score": None if g.needs_manual_grade else g.score,
        "max_score": g.max_score,
        "needs_manual": g.needs_manual_grade,
        "by_hand": g.manual_score is not None,
        "written": g.cell_type == "markdown",
        "comment": comments.get(g.name) or ""} for g in nb.grades}
    return {"score": nb.score, "max_score": nb.max_score,
            "needs_manual": nb.needs_manual_grade, "cells": cells}


# ---- rendering -------------------------------------------------------------
def render_notebook(nb, gradebook_nb=None):
    """autograde's section for one notebook (an HTML fragment).

    ``nb`` is the notebook's :class:`results.NotebookReport`; ``gradebook_nb`` its
    scores now (from :func:`read_gradebook`), or None to show the scores
    of the report.
    """
    esc = html.escape
    cells = (gradebook_nb or {}).get("cells", {})
    parts = [f"<div class='autograde-feedback'><style>{_STYLE}</style>",
             f"<h3>autograde: why each test passed or failed "
             f"({esc(nb.notebook)})</h3>",
             "<p>This part was added by <b>autograde</b>, the course's "
             "grader. It ran the tests against your notebook (hidden tests "
             "are not shown) and says why each one did not pass.</p>"]
    if gradebook_nb is not None:
        written = [c for c in cells.values() if c["written"]]
        waiting = [c for c in written if c["needs_manual"]]
        after = ""
        if written:
            after = (" (written answers not graded yet)" if waiting else
                     " (written answers graded by hand)")
        parts.append(_score("Score of this notebook now", gradebook_nb["score"],
                            gradebook_nb["max_score"], after))
    else:
        parts.append(_score("Tests", nb.score, nb.max_score, _NOT_WRITTEN))
    if nb.tamper:
        parts.append("<p class='note'>Protected cells were changed; the tests "
                     "were run from the original copy:<br>" +
                     "<br>".join(esc(n) for n in nb.tamper) + "</p>")
    parts.append("<table><tr><th>test</th><th>points</th><th>result</th>"
                 "<th>why</th></tr>")
    for t in nb.tests:
        now = cells.get(t.grade_id)
        score, note = t.score, ""
        if now is not None and now["score"] is not None:
            score = now["score"]
            if now["by_hand"]:
                note = " (set by hand)"
        why = plain_counts(t.message or "")
        if now and now["comment"]:
            why += ("\n" if why else "") + f"Instructor: {now['comment']}"
        parts.append(
            f"<tr><td>{esc(short_title(t.title))}</td>"
            f"<td>{_pts(score)} / {_pts(t.max_points)}{note}</td>"
            f"<td class='{esc(t.status)}'>{esc(t.status)}</td>"
            f"<td class='why'>{esc(why)}</td></tr>")
    for gid, c in cells.items():
        if not c["written"]:
            continue
        status = "waiting" if c["needs_manual"] else "graded"
        result = "not graded yet" if c["needs_manual"] else "graded by hand"
        if not c["needs_manual"] and not c["by_hand"]:
            result = "left blank"
        parts.append(
            f"<tr><td>written answer <code>{esc(gid)}</code></td>"
            f"<td>{_pts(c['score'])} / {_pts(c['max_score'])}</td>"
            f"<td class='{status}'>{result}</td>"
            f"<td class='why'>{esc(c['comment'])}</td></tr>")
    parts.append("</table>")
    for p in nb.cell_problems:
        where = p["cell"] + 1 if type(p.get("cell")) is int else "?"
        parts.append(f"<p class='note'>Cell {where}: "
                     f"{esc(p['status'])}: {esc(p['message'])}</p>")
    parts.append("</div>")
    return "\n".join(parts)


def render(result, gradebook=None):
    """The page of one student with every notebook (a string of HTML).

    ``result`` is the :class:`results.SubmissionResult`; ``gradebook`` is the student's entry of :func:`read_gradebook`, or
    None to show only the report's automatic scores.
    """
    esc = html.escape
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>"
             f"<title>Feedback: {esc(result.assignment)}</title></head>"
             "<body style='max-width: 60em; margin: 2em auto'>",
             f"<h1>{esc(result.assignment)}: autograde feedback for "
             f"{esc(result.student)}</h1>"]
    if gradebook:
        got = sum(nb["score"] or 0 for nb in gradebook.values())
        top = sum(nb["max_score"] or 0 for nb in gradebook.values())
        waiting = any(nb["needs_manual"] for nb in gradebook.values())
        parts.append(_score("Score now", got, top,
                            " (some answers are not graded yet)" if waiting else ""))
    else:
        parts.append(_score("Autograded score", result.score,
                            result.max_score, _NOT_WRITTEN))
    if result.grader_error:
        parts.append("<p>Your work could not be graded automatically; your "
                     "instructor has been told.</p>")
    for problem in result.problems:
        parts.append(f"<p>{esc(problem)}</p>")
    for nb in result.notebooks:
        stem = nb.notebook.removesuffix(".ipynb")
        parts.append(render_notebook(
            nb, None if gradebook is None else gradebook.get(stem)))
    parts.append("</body></html>")
    return "\n".join(parts)


def inject(page, section):
    """``page`` (nbgrader's feedback HTML) with ``section`` put in near the
    top, replacing a section put there before."""
    block = f"{BEGIN}\n{section}\n{END}"
    old = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if old.search(page):
        return old.sub(lambda _: block, page, count=1)
    # Below nbgrader's score summary, above the notebook's cells.
    for anchor in ('<div class="panel-body">', "<body>"):
        at = page.find(anchor)
        if at >= 0:
            if anchor == "<body>":
                at += len(anchor)
            return page[:at] + block + "\n" + page[at:]
    return block + "\n" + page


def write_feedback(root, result, gradebook=None):
    """Put autograde's feedback for one student (``result``, a
    :class:`results.SubmissionResult`) into
    ``feedback/<student>/<assignment>/``.

    Each notebook's section goes into nbgrader's page of that notebook
    (``nbgrader generate_feedback`` writes those), which is what
    ``nbgrader release_feedback`` ships; the instructor's page with all
    of them goes to ``reports/<assignment>/feedback/<student>.html``
    (never into ``feedback/``, which release_feedback ships whole).
    ``timestamp.txt`` and ``submission_secret.txt`` are copied from the
    submission when missing, since release_feedback needs them.

    Returns ``{"page": path of the instructor's page, "added": [notebook
    pages changed], "missing": [notebooks without an nbgrader page]}``.
    """
    root = Path(root)
    student, assignment = result.student, result.assignment
    out = root / "feedback" / student / assignment
    out.mkdir(parents=True, exist_ok=True)
    for name in EXCHANGE_FILES:
        for where in ("autograded", "submitted"):
            src = root / where / student / assignment / name
            if not (out / name).exists() and src.exists():
                shutil.copyfile(src, out / name)
    added, missing = [], []
    for nb in result.notebooks:
        stem = nb.notebook.removesuffix(".ipynb")
        page = out / f"{stem}.html"
        if not page.exists():
            missing.append(nb.notebook)
            continue
        now = None if gradebook is None else gradebook.get(stem)
        text = page.read_text(encoding="utf-8")
        page.write_text(inject(text, render_notebook(nb, now)), encoding="utf-8")
        added.append(page)
    # Older versions wrote this page beside nbgrader's, where
    # release_feedback picked it up and shipped it.
    (out / "autograde.html").unlink(missing_ok=True)
    path = instructor_page(root, assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result, gradebook), encoding="utf-8")
    return {"page": path, "added": added, "missing": missing}


def instructor_page(root, assignment, student):
    """Where the page with all of a student's notebooks goes."""
    return Path(root) / "reports" / assignment / "feedback" / f"{student}.html"
