"""What a student process can see of the file system (``autograde.sandbox``).

Two set-ups that must keep working: the interpreter or virtualenv under
``/tmp`` (a fresh clone in CI), where the student's private ``/tmp``
must still show Python's files; and an editable install, where the
repository root (hidden tests, sample submissions) must stay out of reach
although the d2lblocks package inside it is imported.
"""

import os
from pathlib import Path

import pytest

from autograde import sandbox
from autograde.remote import StudentProcess, default_uid

REPO = Path(__file__).resolve().parents[2]

needs_namespaces = pytest.mark.skipif(
    not sandbox.namespaces_available(),
    reason="needs namespaces (root, or unprivileged user namespaces)")


def _enterable(*closed):
    return lambda d: d not in closed


# ---- the plan: pure, runs anywhere -----------------------------------------------
def test_system_directories_stay_and_other_directories_on_the_way_are_covered():
    plan = sandbox.exposure_plan(
        ["/usr/lib/python3.11", "/home/ada/clone/d2lblocks",
         "/home/ada/clone/.venv/lib/python3.11"], world_x=_enterable())
    assert plan == {"/tmp": [], "/var/tmp": [], "/dev/shm": [],
                    "/home": ["/home/ada/clone/.venv/lib/python3.11",
                              "/home/ada/clone/d2lblocks"]}


def test_paths_under_a_scratch_directory_are_bound_back_into_it():
    plan = sandbox.exposure_plan(
        ["/tmp/ci/clone/.venv/lib/python3.11/site-packages",
         "/tmp/ci/clone/.venv/lib/python3.11",     # holds the one above
         "/tmp/ci/clone/d2lblocks"], world_x=_enterable())
    assert plan["/tmp"] == ["/tmp/ci/clone/.venv/lib/python3.11",
                            "/tmp/ci/clone/d2lblocks"]


def test_a_closed_directory_is_covered_even_among_system_ones():
    # Nobody else may enter /usr/local here, so covering it loses nothing.
    plan = sandbox.exposure_plan(["/usr/local/lib/python3.11"],
                                 world_x=_enterable("/usr/local"))
    assert plan["/usr/local"] == ["/usr/local/lib/python3.11"]


def test_a_scratch_directory_inside_a_cover_keeps_its_own_paths():
    plan = sandbox.exposure_plan(["/var/tmp/env/lib", "/var/lib/py"],
                                 world_x=_enterable("/var"))
    assert plan["/var"] == ["/var/lib/py"]
    assert plan["/var/tmp"] == ["/var/tmp/env/lib"]


# ---- what this grader exposes ---------------------------------------------------
def test_readable_paths_hold_the_packages_but_never_the_repository():
    paths = [Path(p) for p in sandbox.readable_paths()]
    import d2lblocks
    import numpy
    for module in (d2lblocks, numpy):
        folder = Path(module.__file__).resolve().parent
        assert any(folder == p or p in folder.parents for p in paths), folder
    for p in paths:
        # Neither the repository nor anything holding it, ...
        assert p != REPO and p not in REPO.parents, p
        # ... nor its hidden tests, tests or the grader's folder.
        for private in ("exercises", "tests", "autograde", ".git"):
            assert REPO / private != p and REPO / private not in p.parents, p
        assert p != Path.cwd().resolve() or Path.cwd().resolve() == Path("/"), p


def test_the_zygote_import_path_leaves_out_the_repository_and_the_cwd(
        tmp_path, monkeypatch):
    """``PYTHONPATH=.`` in the repository, or the grader's own folder on the
    path, must not put either on the student's import path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO), str(REPO / "tests"), str(tmp_path)]))
    work = tmp_path / "work"
    work.mkdir()
    zygote = sandbox.Zygote()
    proc = StudentProcess(zygote, {"cwd": str(work), "files": {}, "uid": None,
                                   "hide": [], "namespaces": False,
                                   "limits": sandbox.Limits().as_dict()})
    try:
        proc.start()
        assert proc.run_cell("import sys\npath = list(sys.path)", "<c>", 10) is None
        path = proc.globals({"path"}, 10)["path"]
    finally:
        proc.stop()
        zygote.close()
    assert "" not in path
    real = {Path(os.path.realpath(p)) for p in path}
    assert REPO not in real and REPO / "tests" not in real
    assert tmp_path.resolve() not in real


# ---- inside a real student process ------------------------------------------------
PROBE = '''
import errno, os, sys
def outcome(path, mode="r"):
    try:
        if mode == "r" and os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, mode) as f:
                f.write("x") if mode != "r" else f.read(10)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
sys.path.insert(0, SITE)
import latepkg.late
answer = latepkg.late.ANSWER
seen = {name: outcome(path) for name, path in TARGETS.items()}
write = outcome(WRITE_TARGET, "a")
clone_shows = sorted(os.listdir(CLONE))
'''


@needs_namespaces
def test_python_files_under_tmp_stay_importable_and_nothing_else_there(tmp_path):
    """An environment under /tmp: a module imported late (after the
    student process started, as ``numpy.testing`` is) still imports,
    read-only, while the rest of the clone and the course stay hidden."""
    clone = tmp_path / "clone"
    site = clone / ".venv" / "site-packages"
    (site / "latepkg").mkdir(parents=True)
    (site / "latepkg" / "__init__.py").write_text("")
    (site / "latepkg" / "late.py").write_text("ANSWER = 42\n")
    (clone / "exercises" / "source").mkdir(parents=True)
    (clone / "exercises" / "source" / "hidden.ipynb").write_text("{}")
    course = tmp_path / "course"
    course.mkdir()
    (course / "gradebook.db").write_text("scores")
    work = tmp_path / "work"
    work.mkdir()
    targets = {"hidden": str(clone / "exercises" / "source" / "hidden.ipynb"),
               "exercises": str(clone / "exercises"),
               "relative": str(site / "latepkg" / ".." / ".." / ".." / "exercises"),
               "gradebook": str(course / "gradebook.db"),
               "course": str(course)}
    source = (f"SITE = {str(site)!r}\nCLONE = {str(clone)!r}\n"
              f"TARGETS = {targets!r}\n"
              f"WRITE_TARGET = {str(site / 'latepkg' / 'late.py')!r}\n" + PROBE)
    cfg = {"cwd": str(work), "files": {}, "uid": default_uid(),
           "hide": [str(course)], "namespaces": True,
           "readable": list(sandbox.readable_paths()) + [str(site)],
           "limits": sandbox.Limits().as_dict()}
    zygote = sandbox.Zygote()
    proc = StudentProcess(zygote, cfg)
    try:
        proc.start()
        err = proc.run_cell(source, "<probe>", 10)
        assert err is None, err
        got = proc.globals({"answer", "seen", "write", "clone_shows"}, 10)
    finally:
        proc.stop()
        zygote.close()
    assert got["answer"] == 42
    assert got["seen"] == dict.fromkeys(targets, "ENOENT"), got["seen"]
    assert got["write"] in ("EROFS", "EACCES"), got["write"]
    assert got["clone_shows"] == [".venv"]
    # Untouched for everyone else.
    assert (site / "latepkg" / "late.py").read_text() == "ANSWER = 42\n"


def _cfg(work, **limits):
    return {"cwd": str(work), "files": {}, "uid": default_uid(), "hide": [],
            "namespaces": sandbox.namespaces_available(),
            "readable": list(sandbox.readable_paths()),
            "limits": dict(sandbox.Limits().as_dict(), **limits)}


def test_a_sandbox_that_cannot_be_set_up_is_the_graders_fault(tmp_path):
    """A student process that fails while entering its fence has run no
    student code: the grader hears why (a GraderFault), never a crash,
    and the zygote goes on serving."""
    work = tmp_path / "work"
    work.mkdir()
    zygote = sandbox.Zygote()
    try:
        before = len(sandbox.FAULTS)
        with pytest.raises(sandbox.GraderFault,
                           match="could not be set up: TypeError"):
            zygote.spawn(_cfg(work, memory_mb="lots"))
        assert len(sandbox.FAULTS) == before + 1
        proc = StudentProcess(zygote, _cfg(work))
        proc.start()
        assert proc.run_cell("x = 6 * 7", "<c>", 10) is None
        assert proc.globals({"x"}, 10) == {"x": 42}
        proc.stop()
    finally:
        zygote.close()


def test_a_dead_zygote_is_a_grader_fault_and_its_students_die_with_it(tmp_path):
    """The zygote killed (as by SIGKILL) while a student process runs: the
    student process goes too (it dies with its parent), asking for a new
    one raises GraderFault, and sweeping a uid asks nothing of it."""
    work = tmp_path / "work"
    work.mkdir()
    zygote = sandbox.Zygote()
    proc = StudentProcess(zygote, _cfg(work))
    try:
        proc.start()
        assert proc.run_cell("import os\npid = os.getpid()", "<c>", 10) is None
        zygote.proc.kill()
        zygote.proc.wait()
        import time
        deadline = time.monotonic() + 60
        while os.path.exists(f"/proc/{proc.pid}") and time.monotonic() < deadline:
            with open(f"/proc/{proc.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.1)
        with open(f"/proc/{proc.pid}/stat") if os.path.exists(
                f"/proc/{proc.pid}") else open(os.devnull) as f:
            state = f.read()
        assert not state or state.rsplit(")", 1)[1].split()[0] == "Z", state
        zygote.kill_uid(default_uid() or 12345)     # nothing to ask, no error
        with pytest.raises(sandbox.GraderFault, match="zygote process failed"):
            zygote.spawn(_cfg(work))
    finally:
        proc.stop()
        zygote.close()
