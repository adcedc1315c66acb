"""Faults around the grader itself: where it runs (root inside a user
namespace), its own machinery failing mid-run, being killed, running
twice on one course, and a disk that fills up. None of them may turn into
a student's zero or a silent success.

Every test that runs the grader runs it as root and as an unprivileged
user (``hostile/as_user.py``); the courses are the tiny one
(``hostile/tiny_course.py``) with a handful of submissions.
"""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
import tiny_course  # noqa: E402
from as_user import (course_dir, grader_user, run_bounded,  # noqa: E402,F401
                     run_grader)
from hostile_cases import CASES, make_submission  # noqa: E402

from autograde import sandbox  # noqa: E402
from autograde.sandbox import UID_BASE  # noqa: E402

SLEEPER = dict(base="correct", extra={"affine_answer": """
import time
while True:
    time.sleep(1)
"""})
LOOPER = dict(base="correct", extra={"affine_answer": """
while True:
    pass
"""})
# Each student's expected score out of 5 (see hostile_cases).
STUDENTS = {"alice": ("correct", 5.0), "bob": ("wrong", 3.0),
            "carol": ("os_exit_in_answer", 2.0)}
GRADE = ("grade", "tiny", "--quiet", "--workers", "2", "--test-timeout", "10",
         "--cell-timeout", "10")


@pytest.fixture(params=["root", "user"])
def who(request, grader_user):
    """None to grade as root, else the unprivileged :class:`GraderUser`."""
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("needs root")
        return None
    return grader_user


def _write(root, student, case):
    folder = root / "submitted" / student / tiny_course.ASSIGNMENT
    folder.mkdir(parents=True)
    nb = case if isinstance(case, nbformat.NotebookNode) else \
        make_submission(CASES[case] if isinstance(case, str) else case,
                        root, root / "x")
    nbformat.write(nb, folder / tiny_course.NOTEBOOK)
    (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """The tiny course with a gradebook that knows the assignment and no
    submission yet (copied by each test)."""
    root = tiny_course.write_course(tmp_path_factory.mktemp("faults") / "course")
    env = dict(os.environ, PATH=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment",
                    "tiny", "--force"], cwd=root, env=env, check=True,
                   capture_output=True, timeout=300)
    return root


def new_course(request, who, released, students=STUDENTS):
    """A copy of the released course with ``students`` ({name: (case,
    score)}), owned by the grading user."""
    root = course_dir(request, who) / "course"
    shutil.copytree(released, root)
    for name, (case, _) in students.items():
        _write(root, name, case)
    if who is not None:
        who.give(root.parent)
    return root


def scores(root):
    """``{student: (score, [(grade_id, status)])}`` from the reports."""
    found = {}
    for path in sorted((root / "reports" / "tiny").glob("*.json")):
        res = json.loads(path.read_text())
        found[res["student"]] = (res["score"], sorted(
            (t["grade_id"], t["status"]) for nb in res["notebooks"]
            for t in nb["tests"]))
    return found


def gradebook(root, students):
    """Every score and flag of ``students`` in the gradebook."""
    from nbgrader.api import Gradebook
    rows = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in students:
            try:
                nb = gb.find_submission_notebook("tiny", "tiny", student)
            except Exception:
                rows[student] = "missing"
                continue
            rows[student] = (nb.flagged, sorted(
                (g.name, g.auto_score, g.needs_manual_grade) for g in nb.grades))
    return rows


def as_who(who, cmd):
    """``cmd`` run as ``who`` (None: as this process's user), with a
    clean environment as run_grader gives it."""
    if who is None or not who.prefix:
        return cmd
    env = [f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}", "LANG=C.UTF-8"]
    return who.prefix + ["env", "-i"] + env + cmd


def grader_cmd(root, *args):
    return [sys.executable, "-m", "autograde", "--course", str(root),
            *map(str, args)]


def _userns_works(who):
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(as_who(who, ["unshare", "-Ur", "true"]),
                          capture_output=True, timeout=60)
    return done.returncode == 0


# ---- root inside a user namespace ------------------------------------------------------
def test_root_in_a_user_namespace_grades_as_root_does(request, released,
                                                      grader_user):
    """``unshare -Ur autograde grade`` (rootless Podman, Docker with
    userns-remap): uid 0 that cannot switch to a sandbox uid. It grades
    in the user-namespace fence and gives every student what the run
    outside gives, instead of a crash and 0 for everyone."""
    user = grader_user if os.geteuid() == 0 else None
    if not _userns_works(user):
        pytest.skip("unprivileged user namespaces are not allowed here")
    plain = new_course(request, user, released)
    inside = new_course(request, user, released)
    done = run_grader(user, plain, *GRADE)
    assert done.returncode == 0, done.stdout + done.stderr
    cmd = as_who(user, ["unshare", "-Ur"] + grader_cmd(inside, *GRADE))
    done = run_bounded(cmd, cwd=inside.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 notebook(s) user-namespace" in done.stdout
    got = scores(inside)
    assert got == scores(plain)
    assert {s: got[s][0] for s in got} == {s: v for s, (_, v) in STUDENTS.items()}
    for path in (inside / "reports" / "tiny").glob("*.json"):
        iso = json.loads(path.read_text())["notebooks"][0]["isolation"]
        assert iso["mode"] == "user-namespace" and iso["namespaces"] is True
    assert gradebook(inside, STUDENTS) == gradebook(plain, STUDENTS)


def test_the_uid_map_decides_root_mode(tmp_path):
    full = tmp_path / "full"
    full.write_text("         0          0 4294967295\n")
    single = tmp_path / "single"
    single.write_text("         0       1000          1\n")
    subids = tmp_path / "subids"
    subids.write_text("0 1000 1\n1 100000 65536\n")
    assert sandbox._full_uid_map(str(full))
    assert not sandbox._full_uid_map(str(single))
    assert not sandbox._full_uid_map(str(subids))
