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


# ---- a grader failure is never a student's zero ---------------------------------------
# Runs `autograde` with the sandbox failing when a chosen submission's
# student process is started: killed before it is ready ("kill") or its
# channel shut ("channel"). "canary" is the check run before anyone is
# graded (a submission without files).
DRIVER = r"""
import socket, sys
from autograde import cli, sandbox
kind, victim = sys.argv[1], sys.argv[2]
real = sandbox.Launcher.spawn
def spawn(self, cfg):
    child = real(self, cfg)
    files = list(cfg.get("files", {}).values())
    hit = not files if victim == "canary" else \
        any(f"/submitted/{victim}/" in p for p in files)
    if hit and kind == "kill":
        sandbox.kill_group(child.pid)
        child.proc.wait()
        # bwrap's process inside the fence, cut before it set its own
        # parent-death signal, can outlive bwrap a moment (until it reads
        # the end of its channel): its channel goes with bwrap.
        child.sock.shutdown(socket.SHUT_RDWR)
    elif hit:
        child.sock.shutdown(socket.SHUT_RDWR)
    return child
sandbox.Launcher.spawn = spawn
sys.exit(cli.main(sys.argv[3:]))
"""


def faulty_grade(who, root, kind, victim, *args):
    cmd = [sys.executable, "-c", DRIVER, kind, victim, "--course", str(root),
           *GRADE, *args]
    return run_bounded(as_who(who, cmd), cwd=root.parent)


def test_a_grader_fault_leaves_students_ungraded_never_zero(request, who, released):
    root = new_course(request, who, released)
    # A canary that misbehaves: nobody is graded, nothing is written.
    done = faulty_grade(who, root, "kill", "canary")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the sandbox check failed, so nobody was graded" in done.stderr
    assert "sandbox failed" in done.stderr and "Traceback" not in done.stderr
    assert not (root / "reports").exists() and not (root / "autograded").exists()
    assert set(gradebook(root, STUDENTS).values()) == {"missing"}
    # bob's student process killed as it starts: bob is not graded (no row in
    # the gradebook, not a 0), the others are, and the run says so.
    done = faulty_grade(who, root, "kill", "bob")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "1 GRADER ERROR" in done.stdout and "Traceback" not in done.stderr
    assert "1 submission(s) were not graded because the grader failed" in done.stderr
    report = json.loads((root / "reports" / "tiny" / "bob.json").read_text())
    assert "did not become ready" in report["grader_error"]
    assert report["notebooks"] == []
    assert not (root / "autograded" / "bob").exists()
    book = gradebook(root, STUDENTS)
    assert book["bob"] == "missing" and book["alice"] != "missing"
    got = scores(root)
    assert got["alice"][0] == 5.0 and got["carol"][0] == 2.0
    # A rerun grades bob (and only bob).
    done = run_grader(who, root, *GRADE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 graded, 2 skipped" in done.stdout
    assert scores(root)["bob"][0] == 3.0
    graded = gradebook(root, STUDENTS)
    # Regraded with its channel broken at the start: bob keeps the scores
    # the gradebook had, neither zeros nor blanks.
    done = faulty_grade(who, root, "channel", "bob", "--force")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "1 GRADER ERROR" in done.stdout and "Traceback" not in done.stderr
    assert gradebook(root, STUDENTS) == graded
    assert "did not become ready" in json.loads(
        (root / "reports" / "tiny" / "bob.json").read_text())["grader_error"]


# ---- nothing outlives a killed grader ------------------------------------------------
def _processes():
    """``{pid: (ppid, command line)}`` of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry)] = (ppid, cmd)
    return found


def _descendants(top):
    procs = _processes()
    found, todo = set(), [top]
    while todo:
        pid = todo.pop()
        for child, (ppid, _) in procs.items():
            if ppid == pid and child not in found:
                found.add(child)
                todo.append(child)
    return {pid: procs[pid][1] for pid in found if pid in procs}


def _student_processes(tree):
    """Processes of ``tree`` that are part of a student process: bwrap,
    its init in the PID namespace, and the interpreter running boot.py."""
    procs = _processes()
    return [pid for pid in tree if "inside/boot.py" in procs.get(pid, (0, ""))[1]]


def _run_folder_of(pid):
    """The ``autograde-run-*`` folder whose lock ``pid`` holds open."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if "/autograde-run-" in target and target.endswith("/.alive"):
            return Path(target).parent
    return None


def _alive(pids):
    return [p for p in pids if os.path.exists(f"/proc/{p}")
            and not open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"]


def test_a_grader_killed_with_sigkill_leaves_no_student_process(request, who,
                                                                released):
    """A sleeping and a looping student are running when the grader gets
    SIGKILL: every process under it (workers, bwrap, the students and
    what they started) goes; its temporary folder goes at the next start.
    (``--die-with-parent`` and the parent-death signal on bwrap.)"""
    students = {"sleepy": (SLEEPER, None), "loopy": (LOOPER, None)}
    root = new_course(request, who, released, students)
    cmd = grader_cmd(root, "grade", "tiny", "--quiet", "--workers", "2",
                     "--cell-timeout", "900", "--test-timeout", "900",
                     "--budget", "1800")
    proc = subprocess.Popen(as_who(who, cmd), cwd=root.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        # Three processes per student process (bwrap, its init and the
        # interpreter); each worker runs one and keeps one spare.
        while len(_student_processes(_descendants(proc.pid))) < 12:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the students never started"
            time.sleep(0.2)
        tree = _descendants(proc.pid)
        grader = [p for p, c in tree.items() if "-m autograde" in c and
                  "-m autograde" not in tree.get(_processes()[p][0], "")]
        grader = grader[0] if who is not None and who.prefix else proc.pid
        run_dir = _run_folder_of(grader)
        assert run_dir is not None and run_dir.is_dir()
        os.kill(grader, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {p: tree[p] for p in _alive(tree)}
        assert not left, f"left running after the grader was killed: {left}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    if os.geteuid() == 0 and who is None:
        # The sandbox uids of this run (one per worker: UID_BASE + its pid);
        # other graders may be running on the machine.
        from as_user import grader_processes
        uids = {UID_BASE + pid for pid in tree}
        assert not grader_processes(None, uids), "a process of a sandbox uid is left"
    # The next run (of any course) removes the killed run's folder.
    assert run_dir.is_dir()
    other = new_course(request, who, released, {"alice": ("correct", 5.0)})
    done = run_grader(who, other, *GRADE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not run_dir.exists()


# ---- one grader per course -------------------------------------------------------------
def _hold_lock(root, who):
    path = root / ".autograde.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"pid": os.getpid(), "user": "holder-of-the-test",
                             "host": "here", "started": "just now"}).encode())
    if who is not None and who.prefix:
        os.chown(path, who.uid, who.gid)
    return fd


def test_a_second_grader_says_who_holds_the_course_or_waits(request, who,
                                                            released):
    root = new_course(request, who, released, {"alice": ("correct", 5.0)})
    fd = _hold_lock(root, who)
    try:
        done = run_grader(who, root, *GRADE)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"pid {os.getpid()} of user holder-of-the-test" in done.stderr
        assert "--wait" in done.stderr and "Traceback" not in done.stderr
        assert not (root / "reports").exists()
        waiting = run_grader(who, root, *GRADE, "--wait", popen=True)
        line = waiting.stderr.readline()     # said before it blocks
        assert "waiting for it to end" in line, line
        assert waiting.poll() is None
    finally:
        os.close(fd)
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, out + err
    assert scores(root)["alice"][0] == 5.0


def test_two_graders_at_once_leave_the_gradebook_of_one_run(request, who,
                                                           released):
    once = new_course(request, who, released)
    done = run_grader(who, once, *GRADE)
    assert done.returncode == 0, done.stdout + done.stderr
    twice = new_course(request, who, released)
    runs = [run_grader(who, twice, *GRADE, "--force", "--wait", popen=True)
            for _ in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, out + err
        assert "Traceback" not in err and "could not be" not in out + err
    assert gradebook(twice, STUDENTS) == gradebook(once, STUDENTS)
    assert scores(twice) == scores(once)


# ---- a full disk stops the run ---------------------------------------------------------
@pytest.mark.parametrize("folder", ["autograded", "reports"])
def test_a_full_disk_stops_the_run_and_names_the_folder(request, who, released,
                                                        folder):
    """``autograded/`` or ``reports/`` on a file system of one page (a
    tmpfs in a mount namespace of the run's own): the run stops at the
    first write that fails, says where, exits 2, and counts as graded
    only what it stored."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    if who is not None and who.prefix and not _userns_works(who):
        pytest.skip("unprivileged user namespaces are not allowed here")
    if who is None and os.geteuid() != 0:
        pytest.skip("needs root")
    root = new_course(request, who, released)
    target = root / folder
    target.mkdir()
    if who is not None:
        who.give(root)
    mount = ('mount -t tmpfs -o size=4k,mode=0777 tmpfs "$0" || exit 99; '
             'exec "$@"')
    flags = "-m" if who is None or not who.prefix else "-Urm"
    cmd = ["unshare", flags, "sh", "-c", mount, str(target)] + \
        grader_cmd(root, *GRADE)
    done = run_bounded(as_who(who, cmd), cwd=root.parent)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "STOPPED" in done.stderr and "No space left on device" in done.stderr
    assert str(target) in done.stderr and "Traceback" not in done.stderr
    graded = int(done.stdout.split(" graded,")[0].rsplit(" ", 1)[1])
    assert graded < len(STUDENTS)
    listed = [s for s in STUDENTS if any(line.startswith(s + " ")
                                         for line in done.stdout.splitlines())]
    assert len(listed) == graded
    if folder == "autograded":      # (the tmpfs went with its namespace)
        stored = sorted(p.stem for p in (root / "reports" / "tiny").glob("*.json"))
        assert stored == listed
        book = gradebook(root, STUDENTS)
        assert all(book[s] == "missing" for s in STUDENTS if s not in stored)
        assert not (root / "reports" / "tiny" / "tests.csv").exists()


def test_a_folder_it_may_not_write_stops_the_run_and_names_it(request,
                                                               grader_user,
                                                               released):
    """An instructor whose ``autograded/`` is not theirs to write (as
    root every folder is writable, so only the unprivileged user)."""
    user = grader_user if os.geteuid() == 0 else None
    root = new_course(request, user, released)
    (root / "autograded").mkdir()
    if user is not None:
        user.give(root)
    os.chmod(root / "autograded", 0o555)
    done = run_grader(user, root, *GRADE)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "STOPPED" in done.stderr and "Permission denied" in done.stderr
    assert str(root / "autograded") in done.stderr and "Traceback" not in done.stderr
    assert "0 graded" in done.stdout and "3 NOT STORED" in done.stdout
    assert set(gradebook(root, STUDENTS).values()) == {"missing"}
    assert not (root / "reports" / "tiny").exists() or \
        not list((root / "reports" / "tiny").glob("*.json"))


# ---- the gradebook write ------------------------------------------------------------------
def test_a_new_students_gradebook_write_is_one_transaction(released, tmp_path):
    from nbgrader.api import Gradebook, MissingEntry
    from autograde.course import GradebookWriter, load_sources
    root = Path(shutil.copytree(released, tmp_path / "course"))
    result = {"student": "dora", "assignment": "tiny", "notebooks": [{
        "notebook": "tiny.ipynb", "tamper": [], "cell_problems": [],
        "unchanged_answers": [], "tests": [
            {"grade_id": g, "score": float(p), "status": "passed"}
            for g, p in tiny_course.TESTS.items()]}]}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    writer = GradebookWriter(root, "tiny", load_sources(root, "tiny"))
    try:
        writer.gb.find_grade = broken           # fails after the new rows
        with pytest.raises(OSError):
            writer.write(result)
    finally:
        writer.close()
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        with pytest.raises(MissingEntry):
            gb.find_student("dora")
        with pytest.raises(MissingEntry):
            gb.find_submission("tiny", "dora")
    with GradebookWriter(root, "tiny", load_sources(root, "tiny")) as writer:
        writer.write(result)
    assert gradebook(root, ["dora"])["dora"] != "missing"


# ---- a student cell that timed out -------------------------------------------------------
# The answer calls a helper that a cell cut by its time limit was to
# define: the student's own code raises the NameError.
HELPER_CUT = dict(base="correct", cells={
    "affine_answer": "def affine(X, W, b):\n    return helper(X, W) + b"},
    extra={"affine_answer": "def helper(X, W):\n    return X @ W\n"
                            "while True:\n    pass"})


def test_a_student_cell_that_timed_out_is_flagged_and_named(request, who,
                                                            released):
    """loopy's loop is in a cell of its own, so every test still passes;
    the notebook is flagged anyway (a person should know the cell was
    cut). cut's tests fail because that cell never defined ``helper``:
    they say so, not "NameError"."""
    root = new_course(request, who, released,
                      {"loopy": (LOOPER, 5.0), "cut": (HELPER_CUT, 2.0)})
    done = run_grader(who, root, "grade", "tiny", "--quiet", "--workers", "1",
                      "--cell-timeout", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()
            if line.split() and line.split()[0] in ("loopy", "cut")}
    assert "5/5" in rows["loopy"] and "flagged" in rows["loopy"]
    assert "cell 4: timeout" in rows["loopy"] and "cell 4: timeout" in rows["cut"]
    book = gradebook(root, ["loopy", "cut"])
    assert book["loopy"][0] is True and book["cut"][0] is True
    report = json.loads((root / "reports" / "tiny" / "cut.json").read_text())
    tests = {t["grade_id"]: t for t in report["notebooks"][0]["tests"]}
    for gid in ("test_affine_shape", "test_affine_values"):
        assert tests[gid]["status"] == "timeout", tests[gid]
        assert tests[gid]["message"] == ("helper is not defined because the cell "
                                         "that defines it (cell 4) was stopped: "
                                         "timeout")
    assert tests["test_scale"]["status"] == "passed"
