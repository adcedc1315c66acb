"""Running the grader as root and as an unprivileged user, from tests.

Most instructors grade from their own account, so every hostile test
runs in both modes. As root (how CI runs), ``grader_user`` makes a system
user (``useradd``) when there is none yet and runs the grader as that
user through ``runuser``. Where the interpreter or the checkout lies in a
folder that user cannot enter (a Python under ``/root``), it is given the
least access needed (``o+x`` on the folders on the way, ``o+rX`` inside
the trees it must read), and every mode it changed is put back at the end
of the session. Run as an ordinary user, the tests grade as that user and
skip the root mode.
"""

import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autograde.sandbox import UID_BASE

USER = "autograde-test"
REPO = Path(__file__).resolve().parents[3]
OUTER_TIMEOUT = 300


def run_bounded(cmd, timeout=OUTER_TIMEOUT, **kwargs):
    """Run ``cmd`` in a session of its own; on timeout kill the whole
    process group (the second bound around the sandbox's limits)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{cmd} did not finish within {timeout} s")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


class GraderUser:
    """An unprivileged account to grade as (``prefix`` runs a command as
    it; empty when the tests already run as that user)."""

    def __init__(self, name, uid, gid, prefix):
        self.name, self.uid, self.gid, self.prefix = name, uid, gid, prefix

    def give(self, path):
        """Make the tree at ``path`` this user's (as an instructor's own
        course folder is)."""
        if os.geteuid() != 0:
            return
        for dirpath, dirnames, filenames in os.walk(path):
            for name in [dirpath] + [os.path.join(dirpath, n)
                                     for n in dirnames + filenames]:
                os.lchown(name, self.uid, self.gid)


def _open_up(paths, changed):
    """Give others the least access to read ``paths``: ``o+x`` on every
    folder above them, ``o+rX`` inside them. Old modes go to ``changed``."""
    def add(path, bits):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or (st.st_mode & bits) == bits:
            return
        changed.setdefault(path, stat.S_IMODE(st.st_mode))
        os.chmod(path, stat.S_IMODE(st.st_mode) | bits)

    for top in paths:
        top = os.path.realpath(top)
        parts = top.split("/")
        for i in range(2, len(parts)):
            add("/".join(parts[:i]), stat.S_IXOTH)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            add(dirpath, stat.S_IROTH | stat.S_IXOTH)
            for name in filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                bits = stat.S_IROTH | (stat.S_IXOTH if st.st_mode & stat.S_IXUSR else 0)
                add(path, bits)


@pytest.fixture(scope="session")
def grader_user():
    """The :class:`GraderUser` the non-root mode grades as."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        yield GraderUser(me.pw_name, me.pw_uid, me.pw_gid, [])
        return
    created = False
    try:
        pwd.getpwnam(USER)
    except KeyError:
        if shutil.which("useradd") is None or shutil.which("runuser") is None:
            pytest.skip("needs useradd and runuser to grade as another user")
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", USER], check=True)
        created = True
    entry = pwd.getpwnam(USER)
    changed = {}
    trees = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(REPO / "autograde"), str(REPO / "d2lblocks")}
    try:
        _open_up(sorted(trees), changed)
        yield GraderUser(USER, entry.pw_uid, entry.pw_gid,
                         ["runuser", "-u", USER, "--"])
    finally:
        for path, mode in sorted(changed.items(), reverse=True):
            try:
                os.chmod(path, mode)
            except OSError:
                pass
        if created:
            subprocess.run(["userdel", USER], check=False)


def userns_works(user):
    """Whether ``user`` (None: this process's) may run ``unshare -Ur``."""
    if shutil.which("unshare") is None:
        return False
    cmd = (user.prefix if user is not None else []) + ["unshare", "-Ur", "true"]
    return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0


def grading_mode(request, grader_user):
    """``(user, userns)`` for a fixture parametrized by mode: ``root`` (the
    grader as root), ``user`` (as an unprivileged user) or ``userns`` (as
    root of a user namespace that maps only that user); skips a mode
    this machine cannot give."""
    mode = request.param
    if mode == "root":
        if os.geteuid() != 0:
            pytest.skip("the root mode needs root")
        return None, False
    user = grader_user
    if mode == "userns" and not userns_works(user if user.prefix else None):
        pytest.skip("unprivileged user namespaces are not allowed here")
    return user, mode == "userns"


def course_dir(request, user):
    """A fresh folder for a course, removed after the module; the
    grading user's own in the user mode."""
    path = Path(tempfile.mkdtemp(prefix="autograde-test-"))
    os.chmod(path, 0o755)
    request.addfinalizer(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def run_grader(user, root, *args, timeout=OUTER_TIMEOUT, popen=False,
               userns=False):
    """``autograde --course ROOT ARGS`` as root (``user`` None) or as
    ``user``; with ``userns``, as root of a user namespace of its own that
    maps only that user (``unshare -Ur``: rootless Podman, Docker with
    userns-remap). Returns the CompletedProcess (a Popen with ``popen``)."""
    cmd = [sys.executable, "-m", "autograde", "--course", str(root)] + \
        [str(a) for a in args]
    if userns:
        cmd = ["unshare", "-Ur"] + cmd
    env = dict(os.environ)
    if user is not None and user.prefix:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "HOME": str(Path(root).parent), "LANG": "C.UTF-8"}
        cmd = user.prefix + ["env", "-i"] + [f"{k}={v}" for k, v in env.items()] + cmd
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True,
                                cwd=Path(root).parent, env=env)
    return run_bounded(cmd, timeout=timeout, cwd=Path(root).parent, env=env)


def survivors(user, uids=None, grace=30.0):
    """``{pid: command line}`` of processes of the grading run still
    alive ``grace`` seconds after it ended, at the latest (the grader's
    own helpers take a moment to exit; a daemon or a fork bomb never
    would)."""
    import time
    end = time.monotonic() + grace
    while True:
        left = grader_processes(user, uids)
        if not left or time.monotonic() > end:
            break
        time.sleep(0.2)
    found = {}
    for pid in left:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                found[pid] = f.read().replace(b"\0", b" ")[:200].decode(errors="replace")
        except OSError:
            pass
    return found


def grader_processes(user, uids=None):
    """PIDs of processes a grading run may have left: those of a sandbox
    uid (root mode; only ``uids`` when given, the ones the run's reports
    name, since other graders may share the machine) or of ``user`` (user
    mode)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
        except (OSError, StopIteration, ValueError):
            continue
        if user is None and UID_BASE <= uid < UID_BASE + 2**23 and \
                (uids is None or uid in uids):
            found.append(int(entry))
        elif user is not None and user.prefix and uid == user.uid:
            found.append(int(entry))
    return found
