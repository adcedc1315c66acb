"""The fence around student code, seen from the grader.

A *zygote* (``inside/``, a program the grader starts and never imports)
is a fresh Python interpreter that has imported NumPy and d2lblocks and
nothing of the grader's state. On request it forks a student process
that, before running any student code:

- becomes the leader of its own session and process group;
- enters new mount, network, IPC and PID namespaces: directly when the
  grader runs as root, else inside a new (unprivileged) user namespace
  that maps the grader's user to itself;
- gets a fresh private /tmp (its working directory there holds a copy of
  the submission only, copied without following links); the course
  directory and every top-level directory that is not system software
  (homes, /root, /srv, /opt, /run, ...) are covered by empty tmpfs;
  Python's own files (see :func:`readable_paths`) come back read-only
  wherever they live, and every directory on the way to them that is not
  system software shows only those entries; /proc shows only the
  sandbox's own processes;
- runs under a PID 1 of its own, so every process it starts dies with it;
  that PID 1 dies with the zygote, the zygote with the grading process
  that started it (the kernel's parent-death signal), so nothing a
  submission started outlives a grader, even one killed with SIGKILL;
- as root, drops every privilege and switches to a uid of its own (no
  account is needed: a number nobody else uses); without root, or as
  root of a user namespace that maps no such uid (:func:`root_mode`),
  drops the capabilities the user namespace gave it, so the mounts stay;
- sets resource limits: CPU seconds, address space, file size, number of
  processes and open files, no core dumps;
- throws away the environment and points stdin/stdout/stderr at
  /dev/null, so output volume cannot hurt the grader.

Where namespaces cannot be made (``namespace_problem`` says why), it gets
its own process group, the limits and a fresh working directory only;
``autograde grade`` then refuses unless told ``--no-sandbox``.

A failure of this machinery (the zygote dies or its channel breaks, a
student process cannot enter its fence) raises :class:`GraderFault`:
the grader's failure, never the student's crash.
"""

import ctypes
import functools
import errno
import json
import os
import signal
import socket
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 0x4000, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 38, 4, 24
PR_SET_PDEATHSIG = 1

UID_BASE = 1_500_000_000     # far above any account; one uid per grader process
BOOT = os.path.join(os.path.dirname(os.path.realpath(__file__)), "inside",
                    "boot.py")


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


# Every failure of the grader's machinery in this process, in order: a
# grading that saw one added here is the grader's failure, whatever the
# code between caught (see ``executor``).
FAULTS = []


class GraderFault(BaseException):
    """The grader's own machinery failed (the zygote died or broke its
    channel, a sandbox could not be set up): never the student's doing,
    so never recorded as a crash of student code.

    Derived from BaseException so that no ``except Exception`` in a test
    cell can swallow it."""


def load_libc():
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent):
    """Have the kernel SIGKILL this process when its parent ends (a
    grader killed with ``kill -9`` included); ``parent`` is the pid the
    parent had, to catch a parent that ended before the request. Call it
    after any change of uid: a change of credentials clears it."""
    load_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


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


def check_rc(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def protect_self():
    """Make this (grader) process undumpable: a process of the same user
    can then neither ptrace it nor read its memory through /proc, which
    matters when student code runs without a uid of its own."""
    load_libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def unshare(libc):
    """Enter new mount, network, IPC and PID namespaces; without root,
    inside a new user namespace first, which maps this user to itself and
    gives the capabilities needed here (and nowhere else)."""
    if root_mode():
        check_rc(libc.unshare(NAMESPACE_FLAGS), "unshare")
        return
    uid, gid = os.geteuid(), os.getegid()
    check_rc(libc.unshare(CLONE_NEWUSER | NAMESPACE_FLAGS), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


@functools.lru_cache(maxsize=1)
def namespace_problem():
    """None when this process can give student code its own namespaces
    (as root with CAP_SYS_ADMIN, or as any user where unprivileged user
    namespaces are allowed); else why not, and how to allow it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            libc = load_libc()
            unshare(libc)
            check_rc(libc.mount(b"tmpfs", b"/tmp", b"tmpfs",
                              MS_NOSUID | MS_NODEV, b"size=4k"), "mount")
            os._exit(0)
        except BaseException as e:
            os.write(w, str(e).encode()[:500])
            os._exit(1)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        why = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    if root_mode():
        return (f"new namespaces are not allowed here ({why}); run on a "
                f"machine or VM, or in a container with CAP_SYS_ADMIN")
    return (f"this user may not create user namespaces ({why}). Allow them "
            f"with `sysctl kernel.unprivileged_userns_clone=1` (Debian), "
            f"`sysctl user.max_user_namespaces=15000`, or on Ubuntu 24.04 "
            f"`sysctl kernel.apparmor_restrict_unprivileged_userns=0` (or an "
            f"AppArmor profile for this Python); or grade as root")


def namespaces_available():
    """Whether student processes can get their own namespaces here."""
    return namespace_problem() is None


def isolation_mode(use_namespaces):
    """The name of the fence student code gets: ``root`` (namespaces and
    a uid of its own), ``user-namespace`` (namespaces inside an
    unprivileged user namespace) or ``none``."""
    if not use_namespaces:
        return "none"
    return "root" if root_mode() else "user-namespace"


# ---- what a student process may see ------------------------------------------
# Scratch directories get a fresh tmpfs of their own in every student process.
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")

# Directories that hold nothing but system software, open to every user by
# design. They stay as they are on the way to an exposed path, so that
# shared libraries an extension module loads late (libffi, libssl, ...)
# remain in reach. Every other directory on the way (a home, a checkout, a
# scratch directory) is covered, and only the needed entries come back.
OPEN_BY_DESIGN = frozenset({
    "/", "/usr", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32",
    "/usr/local", "/usr/local/lib", "/usr/local/lib64", "/lib", "/lib32",
    "/lib64", "/libx32", "/var", "/dev"})

# Top-level directories of system software and kernel interfaces. Every
# other top-level directory (homes, /root, /srv, /opt, /mnt, /run with its
# sockets, /var, a data disk) is covered in the student's view, and only
# Python's own files inside are bound back.
SYSTEM_TOP = frozenset({"/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin",
                        "/sbin", "/etc", "/dev", "/proc", "/sys"})


def hidden_tops(system=SYSTEM_TOP):
    """The top-level directories to cover (real directories, not links)."""
    found = []
    for name in sorted(os.listdir("/")):
        path = "/" + name
        if path not in system and path not in SCRATCH and \
                os.path.isdir(path) and not os.path.islink(path):
            found.append(path)
    return found


def ancestors(path):
    """The directories above the absolute ``path``, from the top down,
    without ``/``."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def is_inside(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def exposure_plan(paths, scratch=SCRATCH, open_dirs=OPEN_BY_DESIGN,
                  world_x=None, hidden=()):
    """Which directories to cover, and what to bind back into each.

    Arguments:
        paths: absolute directories the student process must be able to
            read (symbolic links already resolved).
        scratch: directories that are always covered (by a writable tmpfs).
        open_dirs: directories that may stay as they are.
        world_x: ``world_x(dir)`` says whether any user may enter ``dir``
            (default: its mode says so); a directory others cannot enter
            is covered even when it is in ``open_dirs``.
        hidden: directories that are always covered (read-only), such as
            :func:`hidden_tops`.

    Returns:
        ``{cover: [path, ...]}``, every scratch directory among the keys.
        A cover is the topmost directory on the way to a path that must
        not stay as it is; each path is bound back, read-only, into the
        deepest cover above it, with the directories between recreated
        empty. No path lies inside another; a cover lies inside another
        only when it is a scratch directory.
    """
    if world_x is None:
        def world_x(d):
            try:
                return bool(os.stat(d).st_mode & 0o001)
            except OSError:
                return False
    leaves = sorted(set(paths))
    # A path inside another exposed one comes along with it.
    leaves = [p for p in leaves
              if not any(q != p and is_inside(p, q) for q in leaves)]
    covers = set(scratch) | set(hidden)
    for leaf in leaves:
        for above in ancestors(leaf):
            if above in scratch or above not in open_dirs or not world_x(above):
                covers.add(above)
                break
    plan = {c: [] for c in covers}
    for leaf in leaves:
        holders = [c for c in covers if is_inside(leaf, c) and leaf != c]
        if holders:
            plan[max(holders, key=len)].append(leaf)
    return plan


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


# ---- the zygote ----------------------------------------------------------------
class Zygote:
    """Handle, in the grader, on one zygote process."""

    def __init__(self):
        import d2lblocks
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", MPLBACKEND="Agg")
        # The zygote loads the grader's own copies of both packages from
        # their folders, so neither the repository root nor the grader's
        # working directory has to be (or is) on its import path.
        conf = {"packages": {
                    "autograde": os.path.dirname(os.path.realpath(__file__)),
                    "d2lblocks": os.path.dirname(os.path.realpath(d2lblocks.__file__))},
                "readable": list(readable_paths()), "parent": os.getpid()}
        self.proc = subprocess.Popen(
            [sys.executable, "-P", BOOT, str(child.fileno()),
             json.dumps(conf)],
            pass_fds=[child.fileno()], env=env, cwd="/",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        child.close()
        self.sock = parent

    def _fail(self, why):
        """The zygote broke: stop it (the next grading starts a new one),
        count it in :data:`FAULTS` and raise :class:`GraderFault`."""
        why = f"the grader's zygote process failed: {why}"
        FAULTS.append(why)
        try:
            self.sock.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        raise GraderFault(why)

    def _ask(self, cfg):
        """Send a request and return ``(reply, fds)`` for it, skipping any
        reply left over from a request that was interrupted."""
        self.seq = getattr(self, "seq", 0) + 1
        try:
            self.sock.send(json.dumps(dict(cfg, seq=self.seq)).encode())
            while True:
                msg, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 1)
                if not msg:
                    self._fail("it has stopped (exit status "
                               f"{self.proc.poll()})")
                reply = json.loads(msg)
                if reply.get("seq") == self.seq:
                    return reply, fds
                for fd in fds:
                    os.close(fd)
        except (OSError, ValueError) as e:
            self._fail(f"its channel broke ({type(e).__name__}: {e})")

    def spawn(self, cfg):
        """Fork a student process, fenced; returns ``(pid, socket)``.
        Raises :class:`GraderFault` when the zygote or the fence failed
        (the student's code has not run then)."""
        if cfg.get("uid") is not None and not root_mode():
            # Root of a user namespace that maps no sandbox uid: the
            # user-namespace fence, as for an ordinary user (and no uid to
            # sweep afterwards).
            cfg["uid"] = None
        with _no_alarm():
            reply, fds = self._ask(cfg)
        if reply.get("error"):
            for fd in fds:
                os.close(fd)
            why = f"the sandbox could not be set up: {reply['error']}"
            FAULTS.append(why)
            raise GraderFault(why)
        if not fds:
            self._fail("it did not start a student process")
        return reply["pid"], socket.socket(fileno=fds[0])

    def kill_uid(self, uid):
        """Kill every process running as ``uid``. With the zygote gone
        there is nothing to do: its student processes died with it (see
        ``zygote.py``)."""
        if self.proc.poll() is not None:
            return
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
