"""Starting student processes in a sandbox, and stopping them for good.

A *zygote* is a fresh Python interpreter that has imported NumPy and
d2lblocks and nothing of the grader's state; it never sees a hidden test.
On request it forks a student process that, before running any student
code:

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
- as root, drops every privilege and switches to a uid of its own (no
  account is needed: a number nobody else uses); without root, drops the
  capabilities the user namespace gave it, so the mounts stay;
- sets resource limits: CPU seconds, address space, file size, number of
  processes and open files, no core dumps;
- throws away the environment and points stdin/stdout/stderr at
  /dev/null, so output volume cannot hurt the grader.

Where namespaces cannot be made (``namespace_problem`` says why), it gets
its own process group, the limits and a fresh working directory only;
``autograde grade`` then refuses unless told ``--no-sandbox``.
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
import stat
import subprocess
import sys
import time

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_NAMESPACE_FLAGS = _CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWPID
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 32, 4096, 0x4000, 1 << 18
_PR_SET_NO_NEW_PRIVS, _PR_SET_DUMPABLE, _PR_CAPBSET_DROP = 38, 4, 24

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


def _unshare(libc):
    """Enter new mount, network, IPC and PID namespaces; without root,
    inside a new user namespace first, which maps this user to itself and
    gives the capabilities needed here (and nowhere else)."""
    if os.geteuid() == 0:
        _check(libc.unshare(_NAMESPACE_FLAGS), "unshare")
        return
    uid, gid = os.geteuid(), os.getegid()
    _check(libc.unshare(_CLONE_NEWUSER | _NAMESPACE_FLAGS), "unshare")
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
            libc = _libc()
            _unshare(libc)
            _check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs",
                              _MS_NOSUID | _MS_NODEV, b"size=4k"), "mount")
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
    if os.geteuid() == 0:
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
    return "root" if os.geteuid() == 0 else "user-namespace"


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


def _ancestors(path):
    """The directories above the absolute ``path``, from the top down,
    without ``/``."""
    parts = [p for p in path.split("/") if p]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


def _inside(path, top):
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
              if not any(q != p and _inside(p, q) for q in leaves)]
    covers = set(scratch) | set(hidden)
    for leaf in leaves:
        for above in _ancestors(leaf):
            if above in scratch or above not in open_dirs or not world_x(above):
                covers.add(above)
                break
    plan = {c: [] for c in covers}
    for leaf in leaves:
        holders = [c for c in covers if _inside(leaf, c) and leaf != c]
        if holders:
            plan[max(holders, key=len)].append(leaf)
    return plan


def _remount_readonly(libc, target):
    """Make the bind mount at ``target`` read-only, keeping the flags of
    the file system it shows (which a remount must not drop)."""
    flags = os.statvfs(target).f_flag
    keep = _MS_NOSUID | _MS_NODEV | (flags & os.ST_NOEXEC)
    for st_flag, ms_flag in ((os.ST_NOATIME, 1024), (os.ST_NODIRATIME, 2048),
                             (os.ST_RELATIME, 1 << 21)):
        if flags & st_flag:
            keep |= ms_flag
    _check(libc.mount(None, target.encode(), None,
                      _MS_REMOUNT | _MS_BIND | _MS_RDONLY | keep, None),
           f"read-only {target}")


def _make_chain(top, path):
    """Create the directories between ``top`` and ``path`` (both
    excluded), enterable by anyone whatever the umask."""
    for above in _ancestors(path):
        if _inside(above, top) and above != top and not os.path.isdir(above):
            os.mkdir(above)
            os.chmod(above, 0o755)


def _cover_and_expose(libc, plan, scratch_opts):
    """Carry out an :func:`exposure_plan` in this mount namespace."""
    # Handles on the paths first: once a cover is mounted they are out of
    # reach by name.
    handles = {}
    for found in plan.values():
        for path in found:
            try:
                handles[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                pass
    done = []
    for cover in sorted(plan, key=lambda d: d.count("/")):
        outer = [c for c in done if _inside(cover, c)]
        if outer:
            # A scratch directory inside a cover: recreate its mount point.
            top = max(outer, key=len)
            _make_chain(top, cover)
            os.mkdir(cover)
            os.chmod(cover, 0o755)
        elif not os.path.isdir(cover):
            continue
        scratch = cover in SCRATCH
        opts = scratch_opts if scratch else b"size=64k,mode=0755"
        _check(libc.mount(b"tmpfs", cover.encode(), b"tmpfs",
                          _MS_NOSUID | _MS_NODEV, opts), f"cover {cover}")
        done.append(cover)
        for path in plan[cover]:
            fd = handles.pop(path, None)
            if fd is None:
                continue
            _make_chain(cover, path)
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.mkdir(path)
            else:
                open(path, "w").close()
            _check(libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None,
                              _MS_BIND | _MS_REC, None), f"bind {path}")
            os.close(fd)
            _remount_readonly(libc, path)
    for fd in handles.values():
        os.close(fd)
    # Last, so that scratch directories inside a cover could get their
    # mount points: nobody may add to the covers.
    for cover in done:
        if cover not in SCRATCH:
            _check(libc.mount(None, cover.encode(), None,
                              _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                              None), f"read-only {cover}")


# ---- inside the student process ----------------------------------------------
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


def _wait_then_exit(child):
    """Close everything, reap children until ``child`` ends, then end
    with its status. As PID 1 of a PID namespace this also reaps orphans,
    and its end kills whatever is left in the namespace."""
    os.closerange(0, 65536)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == child:
            os._exit(max(os.waitstatus_to_exitcode(status), 0) & 0xFF)


def _into_pid_namespace():
    """After ``unshare(CLONE_NEWPID)``: fork the namespace's PID 1, which
    forks the student process and returns there. PID 1 only waits, so a
    student's ``kill(1)`` or ``kill(getpid())`` behaves as usual, and when
    the student process ends (or the grader kills the process group)
    every process left in the namespace is killed by the kernel: a
    double-forked daemon or a fork bomb cannot outlive grading."""
    pid = os.fork()
    if pid:
        _wait_then_exit(pid)
    pid = os.fork()
    if pid:
        _wait_then_exit(pid)


def _drop_capabilities(libc):
    """Give up every capability (those a new user namespace grants), so the
    student cannot undo the mounts that hide the course."""
    for cap in range(64):
        libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    data = (ctypes.c_uint32 * 6)()
    _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), data), "capset")


def enter(cfg, channel_fd):
    """Turn the freshly forked process into a sandboxed student process.

    ``cfg`` (plain data from the grader): ``cwd`` (empty directory),
    ``files`` (name -> path to copy in), ``uid``, ``hide`` (paths to cover),
    ``readable`` (directories Python needs, see :func:`readable_paths`),
    ``namespaces`` (bool), ``limits`` (a Limits dict).
    """
    os.setsid()
    libc = _libc()
    cwd, uid = cfg["cwd"], cfg.get("uid")
    limits = cfg["limits"]
    # Open the submission's files first: the course may vanish from view.
    # A link or anything but a regular file is never followed or copied.
    files = {}
    for name, src in cfg.get("files", {}).items():
        fd = _open_plain(src)
        if fd is not None:
            files[name] = fd
    # Without a uid of its own, RLIMIT_NPROC counts the user's processes.
    base_nproc = len(uid_processes(os.getuid())) if uid is None else 0
    if cfg.get("namespaces"):
        _unshare(libc)
        _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None),
               "mount private")
        # Fresh, size-limited scratch space (nothing of other users' /tmp,
        # such as other courses or pytest folders, is visible, and disk use
        # is capped); homes and other non-system top-level directories are
        # covered; Python's own files come back read-only wherever they
        # live, and the directories on the way to them show nothing else.
        real = [os.path.realpath(p) for p in cfg.get("readable", [])]
        opts = f"size={int(limits['disk_mb'])}m,mode=1777".encode()
        _cover_and_expose(libc, exposure_plan(real, hidden=hidden_tops()), opts)
        cwd = "/tmp/work"
        os.mkdir(cwd, 0o700)
        if uid is not None:
            os.chown(cwd, uid, uid)
        for path in cfg.get("hide", []):
            if os.path.isdir(path):
                _check(libc.mount(b"tmpfs", path.encode(), b"tmpfs",
                                  _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                                  b"size=4k,mode=0"), f"hide {path}")
        _into_pid_namespace()
        # A /proc of this PID namespace only: the grader and the user's
        # other processes (and their /proc/PID/root) are out of sight.
        if libc.mount(b"proc", b"/proc", b"proc",
                      _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None) != 0:
            _check(libc.mount(b"tmpfs", b"/proc", b"tmpfs",
                              _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
                              b"size=4k,mode=0555"), "cover /proc")
    for name, fd in files.items():
        dst = os.path.join(cwd, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with os.fdopen(fd, "rb") as src, \
                os.fdopen(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                  | os.O_NOFOLLOW, 0o644), "wb") as out:
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
    elif cfg.get("namespaces"):
        _drop_capabilities(libc)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    mb = 1 << 20
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 2))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    # NPROC counts every process of the uid: with a uid of its own that is
    # the student alone; without one, allow the user's current count more.
    nproc = limits["nproc"] + base_nproc
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
        if real != cwd and not any(_inside(real, c) for c in checkouts):
            trusted.add(real)
    # Never anything a checkout lies in (say, a prefix of /usr holding a
    # clone in /usr/src).
    return tuple(sorted(p for p in trusted if os.path.isdir(p)
                        and not any(_inside(c, p) for c in checkouts)))


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


_ZYGOTE_BOOT = """\
import importlib.util, json, os, sys
conf = json.loads(sys.argv[2])
def _allowed(entry):
    if not entry:
        return False
    real = os.path.realpath(entry)
    return not os.path.isdir(real) or any(
        real == r or real.startswith(r.rstrip("/") + "/") for r in conf["readable"])
sys.path[:] = [p for p in sys.path if _allowed(p)]
for name, folder in conf["packages"].items():
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(folder, "__init__.py"),
        submodule_search_locations=[folder])
    sys.modules[name] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
from autograde.sandbox import zygote_main
zygote_main(int(sys.argv[1]))
"""


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
                "readable": list(readable_paths())}
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _ZYGOTE_BOOT, str(child.fileno()),
             json.dumps(conf)],
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
