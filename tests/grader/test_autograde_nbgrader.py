"""``autograde grade`` against stock ``nbgrader autograde`` on the course
in ``exercises/`` and the honest sample submissions of
``tests/submissions/samples.py``.

Both graders start from one released course with the same submissions;
every autograded cell must get the same score from both, the written
answer must wait for a person in both, and nbgrader's own tools (export,
generate_feedback) must keep working on the gradebook autograde wrote.
"""

import csv
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "layers_and_blocks"

# One worker runs this file with the tests of test_exercises.py that read
# the same stock grading (layers_by_nbgrader in tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("layers-nbgrader")]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _load("autograde_instructor_demo", ROOT / "exercises" / "instructor_demo.py")


def autograde(course, *args, timeout=600):
    """Run the autograde command on ``course``; raise with its output on
    failure."""
    proc = subprocess.run([sys.executable, "-m", "autograde", "--course", str(course),
                           *args], capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def courses(layers_by_nbgrader, tmp_path_factory):
    """``(graded by nbgrader, graded by autograde)`` copies of one course:
    the stock grading of ``tests/conftest.py``, and a copy of that course
    made before it was graded, graded here by autograde."""
    stock, ungraded, _, _ = layers_by_nbgrader
    ours = tmp_path_factory.mktemp("compare") / "ours"
    shutil.copytree(ungraded, ours)
    autograde(ours, "grade", ASSIGNMENT, "--quiet")
    return stock, ours


def test_every_cell_gets_the_same_score_as_with_stock_nbgrader(courses):
    stock, ours = (demo.read_scores(c) for c in courses)
    assert set(stock) == set(ours) and len(stock) >= 5
    for student, notebooks in stock.items():
        for nb, theirs in notebooks.items():
            mine = ours[student][nb]
            assert mine["code"] == theirs["code"], (student, nb)
            assert mine["cells"] == theirs["cells"], (student, nb)


def test_written_answers_are_left_to_a_person_as_nbgrader_does(courses):
    """An answered written question waits for formgrader; an untouched
    one gets 0 automatically, exactly as stock nbgrader decides."""
    stock, ours = (demo.read_scores(c) for c in courses)
    pending = {(s, nb): ours[s][nb]["manual_pending"]
               for s in ours for nb in ours[s] if ours[s][nb]["max_written"]}
    assert pending == {k: stock[k[0]][k[1]]["manual_pending"] for k in pending}
    assert any(pending.values())


def test_nbgrader_export_and_feedback_work_on_autogrades(courses):
    ours = courses[1]
    demo.nbgrader(ours, "export")
    with open(ours / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    scores = demo.read_scores(ours)
    for student, notebooks in scores.items():
        assert float(rows[student]["raw_score"]) == sum(nb["code"] for nb in notebooks.values())
    demo.nbgrader(ours, "generate_feedback", ASSIGNMENT)
    html_files = list((ours / "feedback").rglob("*.html"))
    assert len(html_files) == len(scores) * 3
    for path in html_files:
        assert "HIDDEN TESTS" not in path.read_text(encoding="utf-8")


def test_a_second_run_replaces_the_first(courses):
    """Grades are rewritten, not left stale from an earlier run."""
    ours = courses[1]
    before = demo.read_scores(ours)
    autograde(ours, "grade", ASSIGNMENT, "--quiet", "--student", "correct",
              "--workers", "1")
    assert demo.read_scores(ours) == before
