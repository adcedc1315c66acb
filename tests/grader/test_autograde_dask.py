"""``autograde grade`` on a Dask cluster: a real ``LocalCluster`` (a
scheduler and two worker processes) must give exactly the scores and
statuses of the local pool, lose nothing when a worker is killed in the
middle of a run, end a submission that kills every worker it is given
as a grader error (never a score), and never grade without the sandbox. Tasks carry the
submission, so a worker needs no access to the course folder."""

import importlib.util
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

pytest.importorskip("distributed")
import cloudpickle  # noqa: E402

# The workers run functions of this file (a poisoned task): send them
# by value, as the workers cannot import it.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
import tiny_course  # noqa: E402
from hostile_cases import CASES, FILE_CASES, LIMITS, make_submission  # noqa: E402

from autograde import cli, executor, sandbox  # noqa: E402
from autograde.course import CourseError, fingerprint  # noqa: E402
from autograde.runner import Settings  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "layers_and_blocks"
# The default limits: generous enough for a busy machine.
LIMITS = ("--test-timeout", "10", "--after-timeout", "2", "--cell-timeout", "10")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def start_cli(*args):
    """``python -m autograde ARGS`` started in a session of its own."""
    return subprocess.Popen([sys.executable, "-m", "autograde", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def finish(proc, timeout=600):
    """Wait for a ``start_cli`` process (killing its session past
    ``timeout``); its ``CompletedProcess``."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_cli(*args, timeout=600):
    """``python -m autograde ARGS`` in a session of its own, to its end."""
    return finish(start_cli(*args), timeout)


def outcomes(root):
    """Every student's score, status and per-test statuses, from the
    reports: what must not depend on where a submission was graded."""
    rows = {}
    for path in sorted((root / "reports" / ASSIGNMENT).glob("*.json")):
        res = json.loads(path.read_text())
        rows[res["student"]] = (
            res["score"], res["max_score"], cli.outcome(res)[0],
            sorted(res["problems"]),
            [(nb["notebook"], nb.get("problem"), sorted(nb["tamper"]),
              [(t["grade_id"], t["status"], t["score"]) for t in nb["tests"]])
             for nb in res["notebooks"]])
    return rows


def gradebook(root):
    """Every auto score, review mark and flag in the gradebook."""
    from nbgrader.api import Gradebook
    rows = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(ASSIGNMENT):
            for nb in sub.notebooks:
                rows.append((sub.student_id, nb.name, nb.flagged, sorted(
                    (g.name, g.auto_score, g.needs_manual_grade)
                    for g in nb.grades)))
    return sorted(rows)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The course, released, with the sample submissions and one whose
    forward never returns (not graded yet)."""
    demo = _load("dask_instructor_demo", ROOT / "exercises" / "instructor_demo.py")
    path = demo.copy_course(tmp_path_factory.mktemp("dask") / "course")
    demo.release(path)
    students = demo.submit_samples(path)
    samples = demo.load_samples()
    # The looping sample's forward(), asleep instead of busy: every test
    # that calls it still runs into its time limit, without taking a core
    # from the gradings that run beside it.
    hanging = "import time\n" + samples.LOOPING_SEQUENTIAL.replace(
        "while True:\n            pass", "while True:\n            time.sleep(1)")
    assert "time.sleep(1)" in hanging
    samples.write_all(path, assignment=ASSIGNMENT, samples={
        "zz_loop": {"base": "correct", "cells": {"my_sequential": hanging}}})
    return path, students + ["zz_loop"]


def _copy(course, where):
    return Path(shutil.copytree(course[0], where / "course"))


@pytest.fixture(scope="module")
def runs(course, tmp_path_factory):
    """Two copies of the course graded at once: ``{"local": (root,
    process), "dask": (root, process)}``, by the local pool of two
    processes and by a LocalCluster of two workers (``--dask-workers``)."""
    roots = {name: _copy(course, tmp_path_factory.mktemp(name))
             for name in ("local", "dask")}
    procs = {"local": start_cli("--course", roots["local"], "grade", ASSIGNMENT,
                                "--quiet", "--workers", "2", *LIMITS),
             "dask": start_cli("--course", roots["dask"], "grade", ASSIGNMENT,
                               "--dask-workers", "2", *LIMITS)}
    try:
        done = {name: (roots[name], finish(proc)) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for root, proc in done.values():
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return done


@pytest.fixture(scope="module")
def local_run(runs):
    """The course graded by the local pool of two processes."""
    return runs["local"]


def test_a_local_cluster_gives_exactly_the_scores_of_the_local_pool(
        course, local_run, runs):
    root, proc = runs["dask"]
    n = len(course[1])
    assert f"{n} submission(s): {n} graded, 0 skipped" in proc.stdout
    assert "grading layers_and_blocks" in proc.stderr      # the progress bar
    expected = outcomes(local_run[0])
    assert sorted(expected) == sorted(course[1])
    assert outcomes(root) == expected
    assert gradebook(root) == gradebook(local_run[0])
    # The summary table is the same, line for line.
    table = [line for line in proc.stdout.splitlines() if "/27" in line]
    assert table == [line for line in local_run[1].stdout.splitlines()
                     if "/27" in line]
    assert expected["zz_loop"][2] == "flagged"
    for student in course[1]:
        assert (root / "autograded" / student / ASSIGNMENT /
                "ex1_sequential.ipynb").is_file()
    # A rerun finds everything recorded and grades nothing.
    again = run_cli("--course", root, "grade", ASSIGNMENT, "--quiet",
                    "--dask-workers", "2", *LIMITS)
    assert f"{n} submission(s): 0 graded, {n} skipped" in again.stdout


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster (a scheduler and two worker processes) and a
    client of it; a submission may kill a worker once (then it is
    judged as the cause)."""
    import dask
    from distributed import Client, LocalCluster
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None, silence_logs=40)
    client = Client(lc, timeout=60)
    client.wait_for_workers(2, timeout=120)
    yield lc, client
    client.close()
    lc.close()


def _kill_the_worker_of(client, student):
    """SIGKILL the worker process that holds ``student``'s task (running
    it, or next in line behind the one it runs); returns its address."""
    for worker, keys in client.processing().items():
        if any(str(k).startswith(f"grade-{student}-") for k in keys):
            pid = client.run(os.getpid, workers=[worker])[worker]
            os.kill(pid, signal.SIGKILL)
            return worker
    return None


def test_a_worker_killed_mid_run_loses_nothing(course, local_run, cluster, tmp_path):
    lc, client = cluster
    root = _copy(course, tmp_path)
    reports = root / "reports" / ASSIGNMENT
    proc = subprocess.Popen(
        [sys.executable, "-m", "autograde", "--course", str(root), "grade",
         ASSIGNMENT, "--quiet", "--scheduler", lc.scheduler_address, *LIMITS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        # Kill the worker that holds the looping submission (over ten
        # seconds of grading, by its time limits) while it is not done.
        deadline, killed = time.monotonic() + 300, None
        while time.monotonic() < deadline and proc.poll() is None and \
                killed is None:
            killed = _kill_the_worker_of(client, "zz_loop")
            time.sleep(0.05)
        assert killed is not None and proc.poll() is None
        assert not (reports / "zz_loop.json").exists()
        out, err = proc.communicate(timeout=480)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out + err
    n = len(course[1])
    # Every submission graded once (a second result would count twice).
    assert f"{n} submission(s): {n} graded, 0 skipped" in out, out
    assert outcomes(root) == outcomes(local_run[0])
    assert gradebook(root) == gradebook(local_run[0])
    client.wait_for_workers(2, timeout=120)         # the nanny restarts it


def test_the_hostile_corpus_gets_its_deserved_scores_on_a_local_cluster(tmp_path):
    """Every hostile and broken submission of ``test_autograde_hostile``,
    graded on two Dask workers, ends exactly as on the local pool."""
    root = tiny_course.write_course(tmp_path / "course")
    marker = tmp_path / "written-by-a-student.txt"
    for name, case in CASES.items():
        folder = root / "submitted" / name / tiny_course.ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(make_submission(case, root, marker),
                       folder / tiny_course.NOTEBOOK)
    correct = nbformat.writes(make_submission(CASES["correct"], root, marker))
    for name, case in FILE_CASES.items():
        case["make"](root / "submitted" / name / tiny_course.ASSIGNMENT, root,
                     correct)
    # The limits of the hostile tests, which their expectations assume.
    proc = run_cli("--course", root, "grade", "tiny", "--dask-workers", "2",
                   "--no-gradebook", "--quiet", *LIMITS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = {}
    for path in (root / "reports" / "tiny").glob("*.json"):
        res = json.loads(path.read_text())
        reports[res["student"]] = res
    assert set(reports) == set(CASES) | set(FILE_CASES)
    for student, case in CASES.items():
        expect, res = case["expect"], reports[student]
        (nb,) = res["notebooks"]
        assert nb["isolation"]["namespaces"], (student, nb["isolation"])
        statuses = {t["grade_id"]: t["status"] for t in nb["tests"]}
        assert res["score"] == expect["score"], (student, statuses)
        for gid, status in expect.get("status", {}).items():
            allowed = status if isinstance(status, tuple) else (status,)
            assert statuses[gid] in allowed, (student, gid, statuses)
        assert bool(nb["tamper"]) == expect.get("tamper", False), student
    for student, case in FILE_CASES.items():
        expect, res = case["expect"], reports[student]
        status, flags = cli.outcome(res)
        assert (res["score"], status) == (expect["score"], expect["outcome"])
        assert any(expect["reason"] in f for f in flags), (student, flags)
    assert not marker.exists()


# ---- the packed task: what crosses to a worker --------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny course: a correct, a crashing, a linked and a broken
    submission, and one with an extra file."""
    root = tiny_course.write_course(tmp_path_factory.mktemp("tiny") / "course")
    for name in ("correct", "os_exit_in_answer", "link", "not_json", "extra"):
        folder = root / "submitted" / name / tiny_course.ASSIGNMENT
        folder.mkdir(parents=True)
        path = folder / tiny_course.NOTEBOOK
        if name == "link":
            path.symlink_to(root / "source" / "tiny" / "tiny.ipynb")
        elif name == "not_json":
            path.write_text('{"cells": [')
        else:
            case = "correct" if name == "extra" else name
            nbformat.write(make_submission(CASES[case], root, root / "x"), path)
        (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    extra = root / "submitted" / "extra" / "tiny"
    (extra / "data").mkdir()
    (extra / "data" / "weights.txt").write_text("1 2 3")
    (extra / "other.ipynb").write_text("{}")
    return root


def _tasks(root, students, sandboxed=True):
    return [{"course": str(root), "assignment": "tiny", "student": s,
             "folder": str(root / "submitted" / s / "tiny"),
             "fingerprint": fingerprint(root / "submitted" / s / "tiny",
                                        root / "source" / "tiny"),
             "settings": Settings(sandbox=sandboxed).as_dict()}
            for s in students]


def _same(res):
    """A result without what depends on the process that made it."""
    res = json.loads(json.dumps(res))
    for nb in res["notebooks"]:
        nb.pop("seconds", None)
        nb.get("isolation", {}).pop("uid", None)
    return res


STUDENTS = ("correct", "os_exit_in_answer", "link", "not_json", "extra")


def test_a_packed_task_grades_as_the_course_folder_does(tiny):
    shipped = executor.pack_sources(tiny, "tiny")
    for task in _tasks(tiny, STUDENTS):
        packed = executor.pack_task(task, shipped)
        # The worker gets bytes and parsed notebooks, never a path to read.
        assert all(type(v) is bytes for v in packed["files"].values())
        if task["student"] == "link":
            assert "tiny.ipynb" not in packed["files"]
            assert "link" in packed["notebooks"]["tiny.ipynb"][1]
        if task["student"] == "extra":
            assert packed["files"]["data/weights.txt"] == b"1 2 3"
        assert _same(executor.grade_unpacked(packed)) == \
            _same(executor.grade_submission(task)), task["student"]


def test_a_worker_without_a_sandbox_refuses_to_grade(tiny, monkeypatch):
    monkeypatch.setattr(sandbox, "namespace_problem",
                        lambda: "user namespaces are not allowed here")
    shipped = executor.pack_sources(tiny, "tiny")
    task = _tasks(tiny, ["correct"])[0]
    res = executor.grade_unpacked(executor.pack_task(task, shipped))
    assert "cannot build the sandbox" in res["refused"]
    assert "user namespaces" in res["refused"] and res["notebooks"] == []
    # Asked for no sandbox, it grades (and the report says so).
    task = _tasks(tiny, ["correct"], sandboxed=False)[0]
    res = executor.grade_unpacked(executor.pack_task(task, shipped))
    assert res["score"] == 5 and res["notebooks"][0]["isolation"]["no_sandbox"]


def _refuse(packed):
    return dict(student=packed["student"], refused="no namespaces on node-7")


def _poison(packed):
    """Kills the worker process that runs it, for one student only."""
    if packed["student"] == "os_exit_in_answer":
        os.kill(os.getpid(), signal.SIGKILL)
    return executor.grade_packed(packed)


def test_a_submission_that_kills_every_worker_is_a_grader_error(tiny, cluster):
    lc, client = cluster
    client.wait_for_workers(2, timeout=120)
    with executor.DaskExecutor(lc.scheduler_address) as ex:
        results = {r["student"]: r for r in ex.grade(
            _tasks(tiny, ["correct", "os_exit_in_answer", "not_json"]),
            remote=_poison)}
    assert sorted(results) == ["correct", "not_json", "os_exit_in_answer"]
    lost = results["os_exit_in_answer"]
    status, flags = cli.outcome(lost)
    assert status == "error" and lost["notebooks"] == []
    assert "died on every worker" in lost["grader_error"]
    assert results["correct"]["score"] == 5
    assert cli.outcome(results["not_json"])[0] == "unreadable"
    client.wait_for_workers(2, timeout=120)


def test_a_refusing_worker_stops_the_run_with_its_reason(tiny, cluster):
    lc, client = cluster
    with executor.DaskExecutor(lc.scheduler_address) as ex:
        with pytest.raises(CourseError, match="node-7"):
            list(ex.grade(_tasks(tiny, ["correct"]), remote=_refuse))


def test_grade_says_what_it_expected_of_the_dask_options(tiny):
    proc = run_cli("--course", tiny, "grade", "tiny", "--no-gradebook",
                   "--dask-workers", "0", timeout=120)
    assert proc.returncode == 2 and "--dask-workers must be at least 1" in proc.stderr
    with pytest.raises(ValueError, match="scheduler address or a number"):
        executor.DaskExecutor()
