"""The zygote: forks student processes and puts each in its sandbox.

Started by ``sandbox.Zygote`` (through ``boot.py``), it has imported
NumPy and d2lblocks and nothing of the grader's state, and never sees a
hidden test. For each request it forks a process that enters the fence
described in ``sandbox.py`` (namespaces, covered folders, its own uid,
resource limits) and then serves the grader as the student process
(``student.py``).
"""

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import socket
import stat
import time

from ..sandbox import (MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE,
                       MS_RDONLY, MS_REC, MS_REMOUNT, PR_CAPBSET_DROP,
                       PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, SCRATCH, ancestors,
                       check_rc, die_with_parent, exposure_plan, hidden_tops,
                       is_inside, load_libc, uid_processes, unshare)

# Seconds a new student process may take to enter its sandbox (mounts on
# a loaded machine) before the zygote gives up on it.
SETUP_TIMEOUT = 120


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
        ready_r, ready_w = os.pipe()
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                die_with_parent(me)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                sock.close()
                theirs.close()
                os.close(ready_r)
                enter(cfg, mine.fileno(), status_fd=ready_w)
                os.write(ready_w, b"ok")
                os.close(ready_w)
                code = 0
                student.serve(mine)
            except BaseException as e:
                if code == 70:      # the fence failed: the grader's fault
                    try:
                        os.write(ready_w, f"{type(e).__name__}: {e}"
                                 .encode(errors="replace")[:2000])
                    except OSError:
                        pass
                if os.environ.get("AUTOGRADE_DEBUG"):
                    import traceback
                    traceback.print_exc()
            finally:
                os._exit(code)
        mine.close()
        os.close(ready_w)
        status = _read_status(ready_r)
        if status != "ok":
            _kill_group(pid)
            theirs.close()
            why = status or ("the new student process ended while entering "
                             "its sandbox")
            sock.send(json.dumps({"pid": pid, "seq": seq, "error": why}).encode())
            continue
        socket.send_fds(sock, [json.dumps({"pid": pid, "seq": seq}).encode()],
                        [theirs.fileno()])
        theirs.close()


def _read_status(fd):
    """What a new student process wrote on its status pipe until it
    closed it: ``ok`` once fenced, else why not ("" when it died)."""
    data, deadline = b"", time.monotonic() + SETUP_TIMEOUT
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return f"entering the sandbox took more than {SETUP_TIMEOUT} s"
            chunk = os.read(fd, 4096)
            if not chunk:
                return data.decode(errors="replace")
            data += chunk
    finally:
        os.close(fd)


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _remount_readonly(libc, target):
    """Make the bind mount at ``target`` read-only, keeping the flags of
    the file system it shows (which a remount must not drop)."""
    flags = os.statvfs(target).f_flag
    keep = MS_NOSUID | MS_NODEV | (flags & os.ST_NOEXEC)
    for st_flag, ms_flag in ((os.ST_NOATIME, 1024), (os.ST_NODIRATIME, 2048),
                             (os.ST_RELATIME, 1 << 21)):
        if flags & st_flag:
            keep |= ms_flag
    check_rc(libc.mount(None, target.encode(), None,
                      MS_REMOUNT | MS_BIND | MS_RDONLY | keep, None),
           f"read-only {target}")


def _make_chain(top, path):
    """Create the directories between ``top`` and ``path`` (both
    excluded), enterable by anyone whatever the umask."""
    for above in ancestors(path):
        if is_inside(above, top) and above != top and not os.path.isdir(above):
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
        outer = [c for c in done if is_inside(cover, c)]
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
        check_rc(libc.mount(b"tmpfs", cover.encode(), b"tmpfs",
                          MS_NOSUID | MS_NODEV, opts), f"cover {cover}")
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
            check_rc(libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None,
                              MS_BIND | MS_REC, None), f"bind {path}")
            os.close(fd)
            _remount_readonly(libc, path)
    for fd in handles.values():
        os.close(fd)
    # Last, so that scratch directories inside a cover could get their
    # mount points: nobody may add to the covers.
    for cover in done:
        if cover not in SCRATCH:
            check_rc(libc.mount(None, cover.encode(), None,
                              MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
                              None), f"read-only {cover}")


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
    # PID 1 of the namespace dies with the waiter above it (which dies
    # with the zygote, which dies with the grader), taking every process
    # of the namespace along: a grader killed with SIGKILL leaves nothing.
    load_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    pid = os.fork()
    if pid:
        _wait_then_exit(pid)


def _drop_capabilities(libc):
    """Give up every capability (those a new user namespace grants), so the
    student cannot undo the mounts that hide the course."""
    for cap in range(64):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    data = (ctypes.c_uint32 * 6)()
    check_rc(libc.capset(ctypes.byref(Header(0x20080522, 0)), data), "capset")


def enter(cfg, channel_fd, status_fd=None):
    """Turn the freshly forked process into a sandboxed student process.

    ``cfg`` (plain data from the grader): ``cwd`` (empty directory),
    ``files`` (name -> path to copy in), ``uid``, ``hide`` (paths to cover),
    ``readable`` (directories Python needs, see :func:`readable_paths`),
    ``namespaces`` (bool), ``limits`` (a Limits dict). Every descriptor
    but ``channel_fd`` and ``status_fd`` is closed.
    """
    parent = os.getppid()
    os.setsid()
    libc = load_libc()
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
        unshare(libc)
        check_rc(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None),
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
                check_rc(libc.mount(b"tmpfs", path.encode(), b"tmpfs",
                                  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                  b"size=4k,mode=0"), f"hide {path}")
        _into_pid_namespace()
        # A /proc of this PID namespace only: the grader and the user's
        # other processes (and their /proc/PID/root) are out of sight.
        if libc.mount(b"proc", b"/proc", b"proc",
                      MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
            check_rc(libc.mount(b"tmpfs", b"/proc", b"tmpfs",
                              MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
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
        if not cfg.get("namespaces"):
            die_with_parent(parent)     # a change of uid cleared it
    elif cfg.get("namespaces"):
        _drop_capabilities(libc)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    mb = 1 << 20
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_s"], limits["cpu_s"] + 2))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    # NPROC counts every process of the uid: with a uid of its own that is
    # the student alone; without one, allow the user's current count more.
    # (Root of the machine ignores it; root of a user namespace does not.)
    nproc = limits["nproc"] + base_nproc
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
    low = 3
    for fd in sorted({channel_fd} | ({status_fd} if status_fd is not None else set())):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 65536)
