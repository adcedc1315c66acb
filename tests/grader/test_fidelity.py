"""``autograde grade`` against stock ``nbgrader autograde``, test by test.

nbgrader's meaning of a test cell is the reference: a test runs after the
student's cells, in their namespace and folder. Two courses are graded by
both graders in one session (stock nbgrader once per course; it is slow):

- nbgrader's own user-guide course ``ps1`` with its example students
  ``bitdiddle`` and ``hacker`` (``tests/grader/fidelity/ps1``);
- a course of ordinary test idioms, each with a right and a wrong answer
  (``tests/grader/fidelity/idioms.py``).

Every test cell must get nbgrader's score, or be flagged: marked *needs
manual grade* with its reason, and named by ``autograde selftest``
before anyone is graded. No wrong answer may gain a point.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "fidelity"
sys.path.insert(0, str(HERE))
import idioms  # noqa: E402

pytest.importorskip("nbgrader")

pytestmark = pytest.mark.slow
# The two courses are graded apart, so that two workers can grade them at
# the same time; each group builds only its own course.
ON_PS1 = pytest.mark.xdist_group("fidelity-ps1")
ON_IDIOMS = pytest.mark.xdist_group("fidelity-idioms")


def _env():
    env = dict(os.environ)
    # nbgrader starts alembic and the kernels by name: from this Python.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run(course, module, *args, timeout=900):
    """``python -m MODULE ARGS`` in ``course``; its output on failure."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=course,
                          env=_env(), capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)
    assert proc.returncode == 0, f"{module} {args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def scores(course, assignment):
    """``{(student, notebook, grade id): (auto score, needs manual grade)}``
    of every graded cell in the gradebook."""
    from nbgrader.api import Gradebook
    out = {}
    with Gradebook(f"sqlite:///{Path(course).resolve() / 'gradebook.db'}") as gb:
        for student in gb.students:
            try:
                sub = gb.find_submission(assignment, student.id)
            except Exception:
                continue
            for nb in sub.notebooks:
                for grade in nb.grades:
                    out[(student.id, nb.name, grade.name)] = (
                        grade.auto_score, grade.needs_manual_grade)
    return out


def reports(course, assignment):
    """autograde's outcome of every test: ``{(student, notebook, grade id):
    test result}``."""
    out = {}
    for path in (Path(course) / "reports" / assignment).glob("*.json"):
        report = json.loads(path.read_text())
        for nb in report["notebooks"]:
            for test in nb["tests"]:
                out[(report["student"], nb["notebook"].removesuffix(".ipynb"),
                     test["grade_id"])] = test
    return out


def graded_twice(tmp, make, assignment):
    """``(stock course, autograde course)``: one course graded by each."""
    stock = tmp / "stock"
    make(stock)
    run(stock, "nbgrader", "generate_assignment", assignment, "--force")
    ours = tmp / "ours"
    shutil.copytree(stock, ours)
    run(stock, "nbgrader", "autograde", assignment)
    run(ours, "autograde", "grade", assignment, "--quiet")
    return stock, ours


@pytest.fixture(scope="module")
def ps1(tmp_path_factory):
    def make(course):
        shutil.copytree(HERE / "ps1", course, ignore=shutil.ignore_patterns("README.md"))
        (course / "nbgrader_config.py").write_text(
            'c = get_config()\nc.CourseDirectory.course_id = "ps1"\n')
    return graded_twice(tmp_path_factory.mktemp("ps1"), make, "ps1")


@pytest.fixture(scope="module")
def idiom_course(tmp_path_factory):
    return graded_twice(tmp_path_factory.mktemp("idioms"), idioms.build, idioms.ASSIGNMENT)


@ON_PS1
def test_ps1_example_students_get_nbgraders_score_on_every_test(ps1):
    stock, ours = (scores(c, "ps1") for c in ps1)
    assert set(stock) == set(ours) and len(stock) >= 10
    for key, theirs in stock.items():
        assert ours[key] == theirs, key
    total = {s: sum(v[0] or 0 for k, v in ours.items() if k[0] == s)
             for s in ("bitdiddle", "hacker")}
    # The totals nbgrader's documentation shows for these two students.
    assert total == {"bitdiddle": 1.5, "hacker": 3.0}


@ON_PS1
def test_deleting_a_students_function_in_a_test_reaches_the_student(ps1):
    """``del squares`` in a test hides it from the student's own
    ``sum_of_squares`` too: the correct student keeps the half point."""
    outcome = reports(ps1[1], "ps1")
    assert outcome[("hacker", "problem1", "sum_of_squares_uses_squares")]["status"] == "passed"


@ON_IDIOMS
def test_every_idiom_agrees_with_nbgrader_or_is_flagged(idiom_course):
    stock, ours = (scores(c, idioms.ASSIGNMENT) for c in idiom_course)
    outcome = reports(idiom_course[1], idioms.ASSIGNMENT)
    assert set(stock) == set(ours)
    agree, flagged, silent = 0, [], []
    for key, theirs in stock.items():
        if ours[key] == theirs:
            agree += 1
        elif outcome[key].get("needs_manual") and ours[key][1]:
            flagged.append((key, outcome[key]["flag"]))
        else:
            silent.append((key, theirs, ours[key], outcome[key]["message"][:300]))
    assert not silent, silent
    assert agree >= 0.9 * len(stock), (agree, len(stock), flagged)
    for _, reason in flagged:
        assert "cannot run this test as a notebook kernel would (line" in reason


@ON_IDIOMS
def test_no_wrong_answer_gains_a_point(idiom_course):
    stock, ours = (scores(c, idioms.ASSIGNMENT) for c in idiom_course)
    wrong = {k: v for k, v in stock.items() if k[0] == "wrong"}
    # The course itself: nbgrader gives every right answer its point and
    # no wrong one.
    assert all(v == (0.0, False) for v in wrong.values()), wrong
    assert all(v == (1.0, False) for k, v in stock.items() if k[0] == "right")
    assert all((ours[k][0] or 0.0) == 0.0 for k in wrong), \
        {k: ours[k] for k in wrong if ours[k][0]}


@ON_IDIOMS
def test_selftest_names_each_flagged_test_with_its_line_before_grading(idiom_course):
    from autograde.notebook import SourceNotebook, unfaithful_constructs
    outcome = reports(idiom_course[1], idioms.ASSIGNMENT)
    flagged = {(k[1], k[2]) for k, t in outcome.items() if t.get("needs_manual")}
    proc = subprocess.run([sys.executable, "-m", "autograde", "--course",
                           str(idiom_course[1]), "selftest", idioms.ASSIGNMENT],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 1, proc.stdout
    named = set()
    for kind in idioms.KINDS:
        src = SourceNotebook(idioms.notebook(kind, "source"), f"{kind}.ipynb")
        for u in unfaithful_constructs(src):
            named.add((kind, u.cell))
            assert f"{kind}.ipynb: test {u.cell}, line {u.line}: {u.construct}" \
                in proc.stdout, proc.stdout
    assert flagged <= named and named, (flagged, named)
