"""Starting student processes in a sandbox, and stopping them for good.

A *zygote* is a fresh Python interpreter that has imported NumPy and
d2lblocks and nothing of the grader's state; it never sees a hidden test.
On request it forks a student process that, before running any student
code:

- becomes the leader of its own session and process group;
- when the grader runs as root: enters new mount and network namespaces,
  mounts a small private tmpfs as its working directory (holding a copy of
  the submission only), hides the course directory under an empty tmpfs,
  drops every privilege and switches to a uid of its own (no account is
  needed: a number nobody else uses);
- sets resource limits: CPU seconds, address space, file size, number of
  processes and open files, no core dumps;
- throws away the environment and points stdin/stdout/stderr at
  /dev/null, so output volume cannot hurt the grader.

Without root it still gets its own process group, the limits and a fresh
working directory, but file permissions are its only fence.
"""

import ctypes
import functools
import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 0x4000, 1 << 18
_PR_SET_NO_NEW_PRIVS, _PR_SET_DUMPABLE = 38, 4

UID_BASE = 1_500_000_000     # far above any account; one uid per grader process


class Limits:
    """Resource limits of one student process.

    Arguments:
        cpu_s: CPU seconds before the kernel kills it.
        memory_mb: address-space limit.
        file_mb: largest file it may write.
        nproc: processes and threads its uid may have at once.
        disk_mb: size of its private working directory (root only).
    """

    def __init__(self, cpu_s=60, memory_mb=2048, file_mb=16, nproc=32,
                 disk_mb=64):
        self.cpu_s, self.memory_mb, self.file_mb = cpu_s, memory_mb, file_mb
        self.nproc, self.disk_mb = nproc, disk_mb

    def as_dict(self):
        """The limits as plain data."""
        return dict(vars(self))


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def protect_self():
    """Make this (grader) process undumpable: a process of the same user
    can then neither ptrace it nor read its memory through /proc, which
    matters when student code runs without a uid of its own."""
    _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def namespaces_available():
    """Whether this process may create mount namespaces (root, with
    CAP_SYS_ADMIN, as on a VM or a privileged container)."""
    if os.geteuid() != 0:
        return False
    pid = os.fork()
    if pid == 0:
        try:
            _check(_libc().unshare(_CLONE_NEWNS | _CLONE_NEWNET), "unshare")
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


# ---- inside the student process ----------------------------------------------
def enter(cfg, channel_fd):
    """Turn the freshly forked process into a sandboxed student process.

    ``cfg`` (plain data from the grader): ``cwd`` (empty directory),
    ``files`` (name -> path to copy in), ``uid``, ``hide`` (paths to cover),
    ``namespaces`` (bool), ``limits`` (a Limits dict).
    """
    os.setsid()
    libc = _libc()
    cwd, uid = cfg["cwd"], cfg.get("uid")
    limits = cfg["limits"]
    # Open the submission's files first: the course may vanish from view.
    files = {name: os.open(src, os.O_RDONLY)
             for name, src in cfg.get("files", {}).items()}
    if cfg.get("namespaces"):
        _check(libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET), "unshare")
        _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None),
               "mount private")
        # Fresh, size-limited scratch space: nothing of other users' /tmp
        # (other courses, pytest folders) is visible, and disk use is capped.
        opts = f"size={int(limits['disk_mb'])}m,mode=1777".encode()
        for scratch in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(scratch):
                _check(libc.mount(b"tmpfs", scratch.encode(), b"tmpfs",
                                  _MS_NOSUID | _MS_NODEV, opts), f"mount {scratch}")
        cwd = "/tmp/work"
        os.mkdir(cwd, 0o700)
        if uid is not None:
            os.chown(cwd, uid, uid)
        _expose(libc, cfg.get("readable", []))
        for path in cfg.get("hide", []):
            if os.path.isdir(path):
                _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs",
                                  _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                                  b"size=4k,mode=0"), f"hide {path}")
    for name, fd in files.items():
        dst = os.path.join(cwd, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with os.fdopen(fd, "rb") as src, open(dst, "wb") as out:
            shutil.copyfileobj(src, out)
        if uid is not None:
            os.chown(dst, uid, uid)
    os.chdir(cwd)
    if uid is not None:
        if not cfg.get("namespaces"):
            os.chown(cwd, uid, uid)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    mb = 1 << 20
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 2))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    # NPROC counts every process of the uid: with a uid of its own that is
    # the student alone; without one, allow the user's current count more.
    nproc = limits["nproc"] if uid is not None else \
        len(uid_processes(os.getuid())) + limits["nproc"]
    if os.getuid() != 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    home = os.getcwd()
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
    debug = os.environ.get("AUTOGRADE_DEBUG")
    os.environ.clear()
    if debug:
        os.environ["AUTOGRADE_DEBUG"] = debug
    os.environ.update(keep, HOME=home, TMPDIR=home, OPENBLAS_NUM_THREADS="1",
                      OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if os.environ.get("AUTOGRADE_DEBUG") else (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.closerange(3, channel_fd)
    os.closerange(channel_fd + 1, 65536)


def _expose(libc, paths):
    """Make the directories ``paths`` (Python's own files) reachable by any
    uid, inside this mount namespace only: each directory on the way that
    others may not enter (such as a 0700 home) is covered by an empty
    tmpfs into which only the needed entries are bind-mounted back. The
    rest of that directory stays out of sight."""
    plan = {}
    for path in paths:
        parts = [p for p in os.path.realpath(path).split("/") if p]
        cur = "/"
        for name in parts:
            try:
                mode = os.stat(cur).st_mode
            except OSError:
                break
            if not mode & 0o001:
                plan.setdefault(cur, set()).add(name)
            cur = os.path.join(cur, name)
    for top in sorted(plan, key=lambda d: d.count("/")):
        fds = {}
        for name in sorted(plan[top]):
            try:
                fds[name] = os.open(os.path.join(top, name), os.O_PATH)
            except OSError:
                pass
        _check(libc.mount(b"tmpfs", top.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                          b"size=4k,mode=0755"), f"cover {top}")
        for name, fd in fds.items():
            target = os.path.join(top, name)
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.mkdir(target)
            else:
                open(target, "w").close()
            _check(libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None,
                              _MS_BIND | _MS_REC, None), f"bind {target}")
            os.close(fd)


@functools.lru_cache(maxsize=1)
def readable_paths():
    """Directories a student process must be able to read: Python's
    standard library and installed packages."""
    import sysconfig
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.add(p)
    import d2lblocks
    import numpy
    for mod in (d2lblocks, numpy):
        paths.add(os.path.dirname(os.path.dirname(os.path.abspath(mod.__file__))))
    return tuple(sorted(os.path.realpath(p) for p in paths))


# ---- the zygote ----------------------------------------------------------------
def uid_processes(uid):
    """PIDs of the processes whose real uid is ``uid``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid:
                            found.append(int(entry.name))
                        break
        except (OSError, ValueError):
            continue
    return found


def _kill_uid(uid):
    """Kill every process of ``uid``: a throwaway child switches to that
    uid, because ``kill(-1)`` then reaches exactly its own processes, and
    repeats it (a fork bomb keeps forking while dying) until none is left."""
    if not uid_processes(uid):
        return
    pid = os.fork()
    if pid == 0:
        try:
            me = os.getpid()
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(500):
                try:
                    os.kill(-1, signal.SIGKILL)
                except OSError:
                    pass
                if not [p for p in uid_processes(uid) if p != me]:
                    break
                time.sleep(0.002)
        finally:
            os._exit(0)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:     # SIGCHLD is ignored: already reaped
        pass


def zygote_main(fd):
    """Serve fork requests on the SEQPACKET socket ``fd`` until it closes."""
    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # the kernel reaps children
    import numpy  # noqa: F401  (pre-import: every student process shares it)
    import d2lblocks  # noqa: F401
    from . import student
    while True:
        try:
            data = sock.recv(1 << 20)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            os._exit(0)
        cfg = json.loads(data)
        seq = cfg.get("seq")
        if "kill_uid" in cfg:
            _kill_uid(int(cfg["kill_uid"]))
            sock.send(json.dumps({"seq": seq}).encode())
            continue
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sock.close()
                theirs.close()
                enter(cfg, mine.fileno())
                code = 0
                student.serve(mine)
            except BaseException:
                if os.environ.get("AUTOGRADE_DEBUG"):
                    import traceback
                    traceback.print_exc()
            finally:
                os._exit(code)
        mine.close()
        socket.send_fds(sock, [json.dumps({"pid": pid, "seq": seq}).encode()],
                        [theirs.fileno()])
        theirs.close()


class Zygote:
    """Handle, in the grader, on one zygote process."""

    def __init__(self):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", MPLBACKEND="Agg")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-c",
             "import sys; from autograde.sandbox import zygote_main; "
             "zygote_main(int(sys.argv[1]))", str(child.fileno())],
            pass_fds=[child.fileno()], env=env, cwd="/",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        child.close()
        self.sock = parent

    def _ask(self, cfg):
        """Send a request and return ``(reply, fds)`` for it, skipping any
        reply left over from a request that was interrupted."""
        self.seq = getattr(self, "seq", 0) + 1
        self.sock.send(json.dumps(dict(cfg, seq=self.seq)).encode())
        while True:
            msg, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 1)
            if not msg:
                raise RuntimeError("the zygote process has stopped")
            reply = json.loads(msg)
            if reply.get("seq") == self.seq:
                return reply, fds
            for fd in fds:
                os.close(fd)

    def spawn(self, cfg):
        """Fork a student process; returns ``(pid, socket)``."""
        with _no_alarm():
            reply, fds = self._ask(cfg)
        if not fds:
            raise RuntimeError("the zygote process did not start a student "
                               "process")
        return reply["pid"], socket.socket(fileno=fds[0])

    def kill_uid(self, uid):
        """Kill every process running as ``uid``."""
        with _no_alarm():
            self._ask({"kill_uid": uid})

    def close(self):
        """Stop the zygote."""
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class _no_alarm:
    """Hold SIGALRM back (a test's time limit) while talking to the
    zygote, so that a reply is never left half-read."""

    def __enter__(self):
        self.old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})

    def __exit__(self, *exc):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.old)


def kill_group(pid):
    """SIGKILL the process group led by ``pid`` (ignoring one already gone)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    except OSError as e:
        if e.errno != errno.ESRCH:
            raise
