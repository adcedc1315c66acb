"""The fence around a student process (``autograde.sandbox``, bwrap).

What a student process can see of the file system, what it is (its uid,
its capabilities) in each mode the grader runs in, and what happens when
the fence cannot be built. Two set-ups that must keep working: the
interpreter or virtualenv under ``/tmp`` (a fresh clone in CI), where the
student's private ``/tmp`` must still show Python's files; and an
editable install, where the repository root (hidden tests, sample
submissions) must stay out of reach although the d2lblocks package inside
it is imported.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
from as_user import grader_user, run_bounded  # noqa: E402,F401

from autograde import sandbox  # noqa: E402
from autograde.remote import StudentProcess, default_uid  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

needs_sandbox = pytest.mark.skipif(
    not sandbox.namespaces_available(),
    reason="needs bwrap and namespaces (root, or unprivileged user namespaces)")


def _cfg(fenced=True, files=None, **limits):
    return {"files": files or {}, "uid": default_uid(), "namespaces": fenced,
            "limits": dict(sandbox.Limits().as_dict(), **limits)}


def _run(cfg, source, names, launcher=None):
    """Run ``source`` in a new student process; its values of ``names``."""
    own = launcher is None
    launcher = launcher or sandbox.Launcher()
    proc = StudentProcess(launcher, cfg)
    try:
        proc.start()
        err = proc.run_cell(source, "<probe>", 60)
        assert err is None, err
        return proc.globals(set(names), 30)
    finally:
        proc.stop()
        if own:
            launcher.close()


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


def test_the_view_binds_only_system_software_python_and_the_packages():
    args = sandbox.view_args(64)
    binds = [args[i + 1] for i, a in enumerate(args) if a == "--ro-bind"]
    allowed = set(sandbox.readable_paths()) | {str(REPO / "autograde"),
                                               str(REPO / "d2lblocks")}
    for path in binds:
        assert path in sandbox.SYSTEM or path in allowed, path
        assert Path(path) != REPO and Path(path) not in REPO.parents, path
    # The root and every cover end read-only; scratch space is sized.
    assert args[-2:] == ["--remount-ro", "/"]
    for scratch in sandbox.SCRATCH:
        i = args.index(scratch)
        assert args[i - 1] == "--tmpfs" and args[i - 2] == str(64 << 20)


def test_the_student_import_path_leaves_out_the_repository_and_the_cwd(
        tmp_path, monkeypatch):
    """``PYTHONPATH=.`` in the repository, or the grader's own folder on the
    path, must not put either on the student's import path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for entry in (REPO, REPO / "tests"):
        monkeypatch.syspath_prepend(str(entry))
    got = _run(_cfg(fenced=False), "import sys\npath = list(sys.path)", ["path"])
    path = got["path"]
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
top = sorted(os.listdir("/"))
'''


@needs_sandbox
def test_python_files_under_tmp_stay_importable_and_nothing_else_there(
        tmp_path, monkeypatch):
    """An environment under /tmp: a module imported late (after the
    student process started, as ``numpy.testing`` is) still imports,
    read-only, while the rest of the clone and the course stay hidden."""
    clone = tmp_path / "clone"
    site = clone / ".venv" / "site-packages"
    (site / "latepkg").mkdir(parents=True)
    (site / "latepkg" / "__init__.py").write_text("")
    (site / "latepkg" / "late.py").write_text("ANSWER = 42\n")
    os.chmod(tmp_path, 0o755)
    (clone / "exercises" / "source").mkdir(parents=True)
    (clone / "exercises" / "source" / "hidden.ipynb").write_text("{}")
    course = tmp_path / "course"
    course.mkdir()
    (course / "gradebook.db").write_text("scores")
    targets = {"hidden": str(clone / "exercises" / "source" / "hidden.ipynb"),
               "exercises": str(clone / "exercises"),
               "relative": str(site / "latepkg" / ".." / ".." / ".." / "exercises"),
               "gradebook": str(course / "gradebook.db"),
               "course": str(course), "repository": str(REPO / "exercises"),
               "home": "/home", "root": "/root/.bashrc", "srv": "/srv",
               "shadow": "/etc/shadow"}
    source = (f"SITE = {str(site)!r}\nCLONE = {str(clone)!r}\n"
              f"TARGETS = {targets!r}\n"
              f"WRITE_TARGET = {str(site / 'latepkg' / 'late.py')!r}\n" + PROBE)
    readable = sandbox.readable_paths() + (str(site),)
    monkeypatch.setattr(sandbox, "readable_paths", lambda: readable)
    got = _run(_cfg(), source, ["answer", "seen", "write", "clone_shows", "top"])
    assert got["answer"] == 42
    assert got["seen"] == dict.fromkeys(targets, "ENOENT"), got["seen"]
    assert got["write"] in ("EROFS", "EACCES"), got["write"]
    assert got["clone_shows"] == [".venv"]
    for absent in ("home", "srv", "opt", "run", "mnt"):
        assert absent not in got["top"], got["top"]
    # Untouched for everyone else.
    assert (site / "latepkg" / "late.py").read_text() == "ANSWER = 42\n"


STATUS = '''
import os
status = {}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    status[key] = value.split()
procs = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
cwd = os.getcwd()
files = {n: open(n).read() for n in sorted(os.listdir("."))}
'''


def _no_capabilities(status):
    for key in ("CapEff", "CapPrm", "CapAmb"):
        assert int(status[key][0], 16) == 0, (key, status[key])


@needs_sandbox
def test_the_student_has_no_capability_and_sees_only_its_own_processes(tmp_path):
    """In this process's mode: root gets a uid of its own, any other
    user runs as itself inside a user namespace; never a capability."""
    (tmp_path / "given.txt").write_text("the submission")
    got = _run(_cfg(files={"given.txt": str(tmp_path / "given.txt")}),
               STATUS, ["status", "procs", "cwd", "files"])
    status = got["status"]
    _no_capabilities(status)
    assert status["NoNewPrivs"] == ["1"]
    uid = int(status["Uid"][0])
    if sandbox.root_mode():
        assert uid == default_uid() >= sandbox.UID_BASE
    else:
        assert uid != 0
    assert len(got["procs"]) <= 3, got["procs"]       # bwrap's init and itself
    assert got["cwd"] == sandbox.WORK
    assert got["files"] == {"given.txt": "the submission"}


# The same probe, started by a grader that is an unprivileged user, or
# root inside a user namespace that maps one uid (``unshare -Ur``).
DRIVER = r"""
import json, sys
from autograde import sandbox
from autograde.remote import StudentProcess, default_uid
proc = StudentProcess(sandbox.Launcher(), {"files": {}, "uid": default_uid(),
                      "namespaces": True, "limits": sandbox.Limits().as_dict()})
proc.start()
assert proc.run_cell(sys.argv[1], "<probe>", 60) is None
got = proc.globals({"status", "procs"}, 30)
print(json.dumps({"got": got, "mode": sandbox.isolation_mode(True),
                  "problem": sandbox.namespace_problem()}))
proc.stop()
"""


@pytest.mark.parametrize("mode", ["user", "root-in-user-namespace"])
def test_no_capability_as_a_user_and_as_root_in_a_user_namespace(mode,
                                                                  grader_user,
                                                                  tmp_path):
    user = grader_user if os.geteuid() == 0 else None
    cmd = [sys.executable, "-c", DRIVER, STATUS]
    if mode == "root-in-user-namespace":
        cmd = ["unshare", "-Ur"] + cmd
    if user is not None:
        cmd = user.prefix + ["env", "-i", f"PATH={os.environ['PATH']}",
                             "LANG=C.UTF-8", f"HOME={tmp_path}"] + cmd
    os.chmod(tmp_path, 0o755)
    probe = run_bounded(["unshare", "-Ur", "true"] if mode != "user" else ["true"],
                        cwd=tmp_path)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not allowed here")
    done = run_bounded(cmd, cwd=tmp_path, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["problem"] is None and out["mode"] == "user-namespace"
    status = out["got"]["status"]
    _no_capabilities(status)
    assert status["NoNewPrivs"] == ["1"]
    if mode == "root-in-user-namespace":
        assert int(status["Uid"][0]) == sandbox.NESTED_UID
    else:
        assert int(status["Uid"][0]) == (user.uid if user else os.getuid())
    assert len(out["got"]["procs"]) <= 3


@needs_sandbox
def test_the_spare_is_used_and_replaced_when_the_limits_change(tmp_path):
    launcher = sandbox.Launcher()
    try:
        first = launcher.spawn(_cfg())
        spare = launcher.spare[1]
        assert launcher.spawn(_cfg()) is spare          # started ahead
        other = launcher.spare[1]
        third = launcher.spawn(_cfg(cpu_s=7))           # other limits: fresh
        assert third is not other and not other.alive()
        for child in (first, spare, third):
            child.kill()
            assert not child.alive()
        first.kill()                                    # again: no error
    finally:
        launcher.close()
    assert launcher.spare is None


def test_submission_files_are_read_without_following_links(tmp_path):
    (tmp_path / "plain.txt").write_text("mine")
    (tmp_path / "secret.txt").write_text("not mine")
    os.symlink(tmp_path / "secret.txt", tmp_path / "link.txt")
    os.mkfifo(tmp_path / "fifo")
    files = {n: str(tmp_path / n) for n in ("plain.txt", "link.txt", "fifo",
                                             "gone.txt")}
    assert sandbox.submission_bytes(files) == {"plain.txt": b"mine"}


# ---- when the fence cannot be built ---------------------------------------------------
def test_a_student_process_that_never_becomes_ready_is_the_graders_fault(tmp_path):
    """A student process that dies before it is ready (here: an address
    space too small for an interpreter) has run no student code: the
    grader hears why (a GraderFault), never a crash, and the launcher
    goes on serving."""
    launcher = sandbox.Launcher()
    try:
        before = len(sandbox.FAULTS)
        proc = StudentProcess(launcher, _cfg(fenced=sandbox.namespaces_available(),
                                             memory_mb=4))
        with pytest.raises(sandbox.GraderFault, match="did not become ready"):
            proc.start()
        assert len(sandbox.FAULTS) == before + 1
        got = _run(_cfg(fenced=sandbox.namespaces_available()), "x = 6 * 7",
                   ["x"], launcher)
        assert got == {"x": 42}
    finally:
        launcher.close()


def test_without_bwrap_the_problem_says_what_to_install(monkeypatch):
    sandbox.namespace_problem.cache_clear()
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: None)
    try:
        why = sandbox.namespace_problem()
    finally:
        sandbox.namespace_problem.cache_clear()
    assert "bwrap" in why and "bubblewrap" in why


def test_a_bwrap_that_fails_is_reported_with_its_words(monkeypatch, tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create a new "
                    "namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    sandbox.namespace_problem.cache_clear()
    monkeypatch.setattr(sandbox, "bwrap_path", lambda: str(fake))
    try:
        why = sandbox.namespace_problem()
    finally:
        sandbox.namespace_problem.cache_clear()
    assert "No permissions to create a new namespace" in why
    assert ("sysctl" in why) != sandbox.root_mode()
