"""Where submissions are graded: the one interface between the grading
code and the machines that run it.

A grading *task* is plain data (course path, assignment, student, files,
settings) and :func:`grade_submission` turns it into a plain-data result.
An :class:`Executor` only has to run that function over many tasks and
hand back results as they finish, so a course with thousands of
submissions can move from the local process pool to a cluster without
touching the grading code:

- :class:`LocalExecutor` (the default): a pool of forked processes on
  this machine, each with its own sandbox uid (and a spare student
  process started ahead, see ``sandbox.Launcher``);
- :class:`SerialExecutor`: in this process (for debugging);
- :class:`DaskExecutor`: a Dask ``distributed`` cluster (the ``cluster``
  extra). Its tasks carry the submission and the tests
  (:func:`pack_task`), so workers need no access to the course; each
  worker grades in processes of its own, in the same sandbox.
"""

import hashlib
import json
import multiprocessing
import os
import pickle
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path

from . import sandbox
from .results import NotebookReport, SubmissionResult

# The grading modules (NumPy, nbformat, ...) are imported where they are
# used: a Dask worker imports this module only to hand tasks to its
# grading processes, and each import costs every worker seconds of CPU.


def grade_submission(task):
    """Grade one student's submission of one assignment.

    Arguments:
        task: a dict with ``course``, ``assignment``, ``student``,
            ``folder`` (the submission folder), ``settings``
            (``Settings.as_dict()``) and optionally ``files`` (default:
            what :func:`course.scan_submission` finds).

    Returns the :class:`results.SubmissionResult` as JSON (results cross
    processes in that form). Never raises: a notebook that cannot be read
    is graded as such (every test ``error``, flagged, the reason
    recorded), and a failure of the grader itself is reported as
    ``grader_error``.
    """
    from .course import read_submitted_notebook
    from .runner import Settings
    result = SubmissionResult.of(task)
    try:
        settings = Settings.from_dict(task["settings"])
        folder = task["folder"]
        files, notes = _submission_files(task)
        result.problems += notes
        result.timestamp = _timestamp(folder)
        sources = _sources(task["course"], task["assignment"])
        notebooks = {name: read_submitted_notebook(folder, name)
                     for name in sources}
        _grade(result, sources, notebooks, files, settings)
    except (Exception, sandbox.GraderFault) as e:
        result.fail(_grader_error(e))
    return result.to_json()


def _grader_error(exc):
    """The cause of a grader failure, as a report keeps it: a fault of
    the sandbox in its own words, anything else as its traceback."""
    if isinstance(exc, sandbox.GraderFault):
        return str(exc)[:4000]
    return traceback.format_exc()[-4000:]


def _submission_files(task):
    from .course import scan_submission
    files, notes = scan_submission(task["folder"])
    if "files" in task:
        files = {k: v for k, v in task["files"].items() if k in files}
    return files, notes


def _timestamp(folder):
    """The submission's ``timestamp.txt`` (no link followed), or None."""
    from .course import read_plain
    stamp = read_plain(os.path.join(folder, "timestamp.txt"), 200)
    return None if stamp is None else stamp.decode("utf-8", "replace").strip()


def _grade(result, sources, notebooks, files, settings):
    """Grade every source notebook against ``notebooks`` (name ->
    ``(notebook or None, why)``) into ``result``."""
    from .runner import NotebookGrader
    extra = sorted(n for n in files if n.endswith(".ipynb")
                   and "/" not in n and n not in sources)
    for name in extra:
        result.problems.append(f"{name} is not a notebook of this "
                               f"assignment; it was not graded")
    for name, src in sources.items():
        nb, why = notebooks[name]
        if nb is None:
            report = NotebookReport.unreadable(src, why)
        else:
            faults = len(sandbox.FAULTS)
            report = NotebookGrader(src, nb, files, settings).run()
            if len(sandbox.FAULTS) > faults:    # caught on its way up
                raise sandbox.GraderFault(sandbox.FAULTS[-1])
        result.notebooks.append(report)


_SOURCES = {}


def _sources(course, assignment):
    from .course import load_sources
    key = (course, assignment)
    if key not in _SOURCES:
        _SOURCES[key] = load_sources(course, assignment)
    return _SOURCES[key]


# ---- the canary: the sandbox must behave before anyone is graded ------------------
_CANARY_ANSWER = """\
import os
def answer():
    ### BEGIN SOLUTION
    return 6 * 7
    ### END SOLUTION
def sees(path):
    return os.path.exists(path)
def whoami():
    return os.getuid()"""


def _canary_source(hidden, sandboxed, root):
    """A source notebook whose solution must pass every test in a sound
    sandbox: the student process runs code and answers; the course is out
    of its sight; in root mode it runs under a uid of its own."""
    import nbformat
    from .notebook import SourceNotebook

    def meta(gid, **kw):
        return {"nbgrader": dict({"grade_id": gid, "grade": False,
                                  "solution": False, "locked": False,
                                  "schema_version": 3}, **kw)}

    def test(gid, text):
        return nbformat.v4.new_code_cell(text, metadata=meta(
            gid, grade=True, locked=True, points=1))

    cells = [nbformat.v4.new_code_cell(_CANARY_ANSWER,
                                       metadata=meta("answer", solution=True)),
             test("runs", "# Test: student code runs and answers\n"
                          "assert answer() == 42")]
    if sandboxed and hidden:
        cells.append(test("fenced", f"# Test: the course is out of sight\n"
                                    f"assert not sees({hidden!r})"))
    if sandboxed and root:
        cells.append(test("own_uid", "# Test: a uid of its own\n"
                                     "assert whoami() != 0"))
    return SourceNotebook(nbformat.v4.new_notebook(cells=cells), "canary.ipynb")


def run_canary(args):
    """Grade a known-good submission in this process, in the sandbox the
    run will use (``args``: ``(course or None, Settings.as_dict())``).
    Returns None when it behaved, else what went wrong, in words."""
    from .runner import NotebookGrader, Settings
    course, settings = args
    try:
        settings = Settings.from_dict(settings)
        hidden = os.path.join(course, "source") if course else None
        src = _canary_source(hidden, settings.sandbox, sandbox.root_mode())
        faults = len(sandbox.FAULTS)
        report = NotebookGrader(src, src.nb, {}, settings).run().to_json()
        if len(sandbox.FAULTS) > faults:
            return sandbox.FAULTS[-1]
    except (Exception, sandbox.GraderFault) as e:
        return f"{type(e).__name__}: {e}"[:2000]
    bad = [f"{t['title'].removeprefix('# Test: ')}: {t['status']} "
           f"({t['message'][:300]})" for t in report["tests"]
           if t["status"] != "passed"]
    for p in report["cell_problems"]:
        bad.append(f"the answer cell: {p['status']}: {p['message'][:300]}")
    if settings.sandbox and not report["isolation"]["namespaces"]:
        bad.append("the student process got no namespaces")
    return "; ".join(bad) or None


def _canary_in_helper(args):
    return _in_helper(run_canary, args)


# ---- tasks that carry everything (for machines without the course) ----------------
def pack_task(task, sources):
    """The client's half of grading elsewhere: ``task`` plus everything a
    worker needs, so that it needs no access to the course folder.

    The submission is read here exactly as :func:`grade_submission` reads
    it (no link followed, only plain files, the same notes), and carried
    as bytes (``files``) and as parsed notebooks or the reason they
    cannot be graded (``notebooks``). ``sources`` is the pair made by
    :func:`pack_sources`. Only plain data; see :func:`grade_packed`.
    """
    from .course import read_submitted_notebook
    packed = {"student": task["student"], "assignment": task["assignment"],
              "settings": task["settings"], "sources": sources, "files": {}}
    if task.get("fingerprint"):
        packed["fingerprint"] = task["fingerprint"]
    folder = task["folder"]
    files, notes = _submission_files(task)
    packed["problems"] = notes
    for rel, path in files.items():
        data = _read_plain(path)
        if data is not None:        # gone since the scan: as if never there
            packed["files"][rel] = data
    stamp = _timestamp(folder)
    if stamp is not None:
        packed["timestamp"] = stamp
    packed["notebooks"] = {}
    for name in sources[1]:
        nb, why = read_submitted_notebook(folder, name)
        # As JSON text: a worker need not import nbformat to pass it on.
        packed["notebooks"][name] = (None if nb is None else json.dumps(nb), why)
    return packed


def pack_sources(course, assignment):
    """``(digest, {notebook name: bytes})``: the assignment's source
    notebooks (the tests), to travel with every packed task."""
    # The same notebooks, in the same order, as load_sources reads.
    paths = sorted(Path(course, "source", assignment).glob("*.ipynb"))
    blobs = {p.name: p.read_bytes() for p in paths}
    digest = hashlib.sha256(pickle.dumps(sorted(blobs.items()))).hexdigest()
    return digest, blobs


def _read_plain(path):
    """The bytes of a plain, singly linked file (no link followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            return None
        return f.read()


_SHIPPED = {}


def _shipped_sources(sources):
    import nbformat
    from .notebook import SourceNotebook
    digest, blobs = sources
    if digest not in _SHIPPED:
        _SHIPPED.clear()            # one assignment at a time, as a rule
        _SHIPPED[digest] = {name: SourceNotebook(
            nbformat.reads(data.decode("utf-8"), as_version=4), name)
            for name, data in blobs.items()}
    return _SHIPPED[digest]


def _materialize(folder, blobs):
    """Write the carried files under ``folder``; ``{name: path}``."""
    files = {}
    for rel, data in blobs.items():
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts or "" in parts:
            continue            # not a name scan_submission makes
        path = os.path.join(folder, *parts)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        files[rel] = path
    return files


def grade_unpacked(packed):
    """Grade a packed task in this process (its main thread: test time
    limits use SIGALRM). The submission's files are written to a private
    temporary folder, removed afterwards.

    Returns what :func:`grade_submission` returns, or, when the sandbox
    is asked for and cannot be built here, a result with ``refused``
    (why) and nothing graded: no student code runs unfenced.
    """
    import nbformat
    from .runner import Settings
    result = SubmissionResult.of(packed)
    try:
        settings = Settings.from_dict(packed["settings"])
        if settings.sandbox:
            why = sandbox.namespace_problem()
            if why is not None:
                result.refused = (f"the grader on {socket.gethostname()} "
                                  f"cannot build the sandbox: {why}")
                return result.to_json()
        sources = _shipped_sources(packed["sources"])
        with tempfile.TemporaryDirectory(prefix="autograde-submission-") as tmp:
            files = _materialize(tmp, packed["files"])
            notebooks = {name: (None if nb is None else
                                nbformat.from_dict(json.loads(nb)), why)
                         for name, (nb, why) in packed["notebooks"].items()}
            _grade(result, sources, notebooks, files, settings)
    except (Exception, sandbox.GraderFault) as e:
        result.fail(_grader_error(e))
    return result.to_json()


class _Helper:
    """A grading process of a Dask worker, fed pickled tasks over a
    socket (it is this package's own process: trusted both ways).

    Why a process of its own: a test's time limit is a
    SIGALRM, which only a main thread receives, and Dask runs tasks in
    threads of a pool; the kernel's parent-death signal, which ties a
    student process to its grader, fires when the *thread* that started
    it ends, and Dask's threads come and go; and the grading process
    sets process-wide state (SIGALRM's handler, the spare student
    process, an undumpable process) that the worker must not share."""

    def __init__(self):
        mine, theirs = socket.socketpair()
        # -P: nothing from the worker's current folder is imported; this
        # autograde is, wherever the worker found it.
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", "import sys; sys.path.insert(0, "
             "sys.argv[2]); from autograde.executor import helper_main; "
             "helper_main(int(sys.argv[1]))", str(theirs.fileno()), here],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL)
        theirs.close()
        self.sock = mine

    def call(self, fn, arg):
        """``fn(arg)`` in the helper; raises EOFError when it died."""
        _send(self.sock, (fn, arg))
        return _recv(self.sock)

    def close(self):
        """Stop the helper (it ends when its socket closes)."""
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _send(sock, obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(struct.pack("<Q", len(data)) + data)


def _recv(sock):
    def exactly(n):
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise EOFError("the helper process has stopped")
            buf += chunk
        return bytes(buf)
    (n,) = struct.unpack("<Q", exactly(8))
    return pickle.loads(exactly(n))


def helper_main(fd):
    """Main loop of a helper process: run requests until the socket
    closes. A watchdog ends it as soon as its Dask worker is gone (a
    killed worker leaves nothing grading behind)."""
    # (Importing this module ran autograde/__init__.py, which keeps
    # jsonschema from building its URI grammar in every grading process.)
    sock = socket.socket(fileno=fd)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()
    while True:
        try:
            fn, arg = _recv(sock)
        except EOFError:
            os._exit(0)
        _send(sock, fn(arg))


_IDLE = []
_IDLE_LOCK = threading.Lock()


def _in_helper(fn, arg):
    """``fn(arg)`` in an idle helper process of this worker (started on
    first need; there are as many as tasks run here at once)."""
    with _IDLE_LOCK:
        helper = _IDLE.pop() if _IDLE else None
    if helper is None:
        helper = _Helper()
    try:
        out = helper.call(fn, arg)
    except BaseException:
        helper.close()
        raise
    with _IDLE_LOCK:
        _IDLE.append(helper)
    return out


def grade_packed(packed):
    """The task run by a Dask worker: :func:`grade_unpacked` in a helper
    process of this worker.

    Dask runs tasks in threads, but a test's time limit needs a main
    thread (SIGALRM), and a student process must outlive no thread that
    started it; so each worker keeps grading processes of its own and
    hands them the work (see :class:`_Helper`).
    """
    try:
        return _in_helper(grade_unpacked, packed)
    except (EOFError, OSError) as e:
        return SubmissionResult.failed(packed, f"the grading process died "
                                       f"while grading this submission ({e})"
                                       ).to_json()


class Executor:
    """Runs :func:`grade_submission` over tasks.

    Subclasses implement :meth:`map_unordered`, yielding each result as
    soon as it is ready, and may implement :meth:`close`.
    """

    def map_unordered(self, fn, tasks, lost=None):
        """Yield ``fn(task)`` for every task, in any order. Where the
        process running a task dies, ``lost(task, why)`` is its result
        (without ``lost``, the error is raised)."""
        raise NotImplementedError

    def grade(self, tasks):
        """Yield the result of every grading task, in any order."""
        return self.map_unordered(grade_submission, tasks, lost=lambda task, why:
                                  SubmissionResult.failed(task, why).to_json())

    def canary(self, course, settings):
        """Grade a known-good submission where the tasks will run (see
        :func:`run_canary`); None when the sandbox behaved, else why not."""
        return next(iter(self.map_unordered(run_canary, [(course, settings)],
                                            lost=lambda task, why: why)))

    def close(self):
        """Release the workers."""

    def abort(self):
        """Stop at once, dropping the work not done (default: close)."""
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, *exc):
        if kind is None:
            self.close()
        else:
            self.abort()


class SerialExecutor(Executor):
    """Everything in this process, one task after another."""

    def map_unordered(self, fn, tasks, lost=None):
        """One task after another."""
        for task in tasks:
            yield fn(task)


class LocalExecutor(Executor):
    """A pool of ``workers`` forked processes (default: one per core).

    A worker that dies while it works (the kernel's OOM killer, a
    ``kill -9``, a crash of the interpreter) breaks the pool: the tasks
    that were in flight are run again, one at a time, each in a process
    of its own, so the one that kills its process is found and given up
    (``lost``) while the others are graded; the rest go on in a new pool.
    """

    def __init__(self, workers=None):
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        self._pool = None
        self._alone = None      # the pool of one for a task run alone

    def map_unordered(self, fn, tasks, lost=None):
        """Results as the workers finish them."""
        tasks = iter(tasks)
        while True:
            if self._pool is None:
                self._pool = _Workers(self.workers)
            suspects = yield from _run(self._pool, fn, tasks, 2 * self.workers)
            if suspects is None:
                return
            self._pool.kill()
            self._pool = None
            for task in suspects:
                alone = self._alone = _Workers(1)
                try:
                    died = yield from _run(alone, fn, iter([task]), 1)
                finally:
                    alone.kill()
                    self._alone = None
                if died:
                    why = ("the grading process died while grading this "
                           "submission (killed, or out of memory)")
                    if lost is None:
                        raise RuntimeError(why)
                    yield lost(task, why)

    def close(self):
        """Wait for the workers to finish and stop them."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def abort(self):
        """Stop the workers now (their student processes die with
        them)."""
        for workers in (self._pool, self._alone):
            if workers is not None:
                workers.kill()
        self._pool = self._alone = None


class _Workers:
    """A ``ProcessPoolExecutor`` of forked workers that can be killed."""

    def __init__(self, size):
        from concurrent.futures import ProcessPoolExecutor
        ctx = multiprocessing.get_context("fork")
        self.pids = ctx.SimpleQueue()       # each worker's, as it starts
        self.pool = ProcessPoolExecutor(size, mp_context=ctx,
                                        initializer=_start_worker,
                                        initargs=(os.getpid(), self.pids))

    def close(self):
        """Let the workers finish their tasks, then stop them."""
        self.pool.shutdown(wait=True)

    def kill(self):
        """Kill every worker now (then wait for the pool's own thread,
        which sees them die: one left running at exit races Python's
        exit handler of ``concurrent.futures`` on 3.11)."""
        while not self.pids.empty():
            try:
                os.kill(self.pids.get(), signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(parent, pids):
    sandbox.die_with_parent(parent)
    pids.put(os.getpid())


def _run(workers, fn, tasks, window):
    """Run ``tasks`` on ``workers``, at most ``window`` at once, yielding
    results as they come. Returns None, or the tasks in flight when a
    worker died (those not started yet stay in ``tasks``)."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool
    running = {}
    while True:
        # More tasks than workers: a worker that finishes while this
        # process records a result starts the next at once.
        for task in tasks:
            running[workers.pool.submit(fn, task)] = task
            if len(running) >= window:
                break
        if not running:
            return None
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        finished, broken = [], False
        for future in done:
            try:
                finished.append(future.result())
                del running[future]
            except BrokenProcessPool:
                broken = True
        yield from finished
        if broken:
            return list(running.values())


class DaskExecutor(Executor):
    """Grading on a Dask ``distributed`` cluster.

    Arguments:
        address: the scheduler of a running cluster, e.g.
            ``"tcp://10.0.0.5:8786"``; or None to start a ``LocalCluster``
            of ``workers`` processes on this machine (one thread each).
        workers: the size of that ``LocalCluster``.
        timeout: seconds to wait for the scheduler and for a first worker.

    Tasks carry the submission and the tests (:func:`pack_task`), so the
    workers need autograde installed but no access to the course; only
    this process reads the course and writes results. A worker killed
    while grading costs nothing: Dask gives its tasks to another. A
    submission whose grader dies on every worker it is given (Dask's
    ``distributed.scheduler.allowed-failures``) comes back as a grader
    error: not graded, never a score. A worker that cannot build the sandbox stops
    the run with a :class:`course.CourseError` saying why.
    """

    def __init__(self, address=None, workers=None, timeout=60):
        try:
            from distributed import Client, LocalCluster
        except ImportError as e:
            raise RuntimeError(
                "grading on Dask needs the 'distributed' package: pip install "
                "'d2lblocks[cluster]' (or 'dask[distributed]')") from e
        if (address is None) == (workers is None):
            raise ValueError(f"expected a scheduler address or a number of "
                             f"workers, got address={address!r}, "
                             f"workers={workers!r}")
        if workers is not None and (type(workers) is not int or workers < 1):
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.cluster = None
        if address is None:
            import dask
            # Dask's watchdogs wake every 10-100 ms (profiling, event loop
            # ticks, memory): about a sixth of a core on an otherwise idle
            # cluster, which a machine of a few cores that grades feels.
            with dask.config.set(_QUIET_CLUSTER):
                self.cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    dashboard_address=":0" if _has_bokeh() else None,
                    silence_logs=40)
            address = self.cluster.scheduler_address
        try:
            self.client = Client(address, timeout=timeout)
        except OSError as e:
            self._close_cluster()
            raise RuntimeError(f"no Dask scheduler answers at {address!r} "
                               f"({e})") from None
        self.timeout = timeout

    @property
    def dashboard(self):
        """The URL of the cluster's dashboard, or None when it has none."""
        try:
            info = self.client.scheduler_info()
            if "dashboard" not in info.get("services", {}):
                return None
            return self.client.dashboard_link
        except Exception:
            return None

    def _window(self):
        """How many tasks to keep submitted: enough to keep every worker
        busy, few enough that the packed submissions fit in memory."""
        threads = sum(self.client.nthreads().values())
        return max(8, 4 * threads)

    def _run(self, fn, items, lost):
        """Submit ``fn(packed)`` for each ``(task, packed)`` a few at a
        time; yield results as they come. ``packed`` may be a finished
        result instead (a :class:`_Ready`). ``lost(task, exc)`` makes the
        result of a task whose future failed."""
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        items = iter(items)
        pending, ready, done = {}, [], as_completed()
        window, fed = self._window(), 0

        def feed():
            nonlocal window, fed
            fed += 1
            if fed % 64 == 0:       # workers may have come or gone
                window = self._window()
            for task, packed in items:
                if isinstance(packed, _Ready):
                    ready.append(packed.result)
                    return
                # The student in the key shows on the dashboard.
                who = task.get("student", "") if isinstance(task, dict) else ""
                who = os.fsencode(str(who)).decode("utf-8", "backslashreplace")
                key = f"grade-{who[:60]}-{uuid.uuid4().hex}"
                future = self.client.submit(fn, packed, key=key, pure=False)
                pending[future.key] = task
                done.add(future)
                if done.count() >= window:
                    return

        try:
            feed()
            while ready or not done.is_empty():
                if ready:
                    yield ready.pop()
                    feed()
                    continue
                future = next(done)
                task = pending.pop(future.key)
                try:
                    res = future.result()
                except (Exception, FutureCancelledError) as e:
                    res = lost(task, e)
                future.release()
                yield res
                feed()
        finally:
            for future in list(done.futures):
                future.cancel()

    def map_unordered(self, fn, tasks, lost=None):
        """``fn(task)`` for every task, run on the cluster; results in the
        order they finish. A task whose future fails raises here, or has
        ``lost(task, why)`` as its result."""
        def failed(task, exc):
            if lost is None:
                raise exc
            return lost(task, f"{type(exc).__name__}: {exc}"[:4000])
        return self._run(fn, ((t, t) for t in tasks), failed)

    def grade(self, tasks, remote=None):
        """Grade every task on the cluster (see the class); results in
        the order they finish. ``remote`` replaces :func:`grade_packed`,
        the function the workers run (it gets a packed task)."""
        from .course import CourseError
        tasks = list(tasks)
        if not tasks:
            return
        first = tasks[0]
        shipped = pack_sources(first["course"], first["assignment"])
        self._wait_for_a_worker()

        def lost(task, exc):
            # A worker that died every time it was given this submission is
            # the grader failing (the student's code runs fenced, in a
            # process of its own): not graded, never the student's zero.
            from distributed import KilledWorker
            if isinstance(exc, KilledWorker):
                why = (f"the grader died on every worker that graded this "
                       f"submission ({exc})")
            else:
                why = f"{type(exc).__name__}: {exc}"
            return SubmissionResult.failed(task, why[:4000]).to_json()

        def packed():
            for task in tasks:
                try:
                    yield task, pack_task(task, shipped)
                except Exception:       # the submission cannot even be read
                    res = SubmissionResult.failed(
                        task, traceback.format_exc()[-4000:])
                    yield task, _Ready(res.to_json())

        for res in self._run(remote or grade_packed, packed(), lost):
            if res.get("refused"):
                raise CourseError(
                    f"a Dask worker refused to grade: {res['refused']}; "
                    f"remove that worker or allow namespaces there (or pass "
                    f"--no-sandbox)")
            yield res

    def canary(self, course, settings):
        """The canary on a worker of the cluster, in a grading process
        of its own (the course is not visible there)."""
        self._wait_for_a_worker()
        future = self.client.submit(_canary_in_helper, (None, settings),
                                    pure=False)
        try:
            return future.result(timeout=max(self.timeout, 300))
        except Exception as e:
            return f"{type(e).__name__}: {e}"[:2000]
        finally:
            future.release()

    def _wait_for_a_worker(self):
        from .course import CourseError
        try:
            self.client.wait_for_workers(1, timeout=self.timeout)
        except Exception:
            raise CourseError(f"the Dask cluster has no worker after "
                              f"{self.timeout} s") from None

    def _close_cluster(self):
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def close(self):
        """Disconnect from the scheduler (and stop a LocalCluster)."""
        try:
            self.client.close()
        finally:
            self._close_cluster()


_QUIET_CLUSTER = {"distributed.worker.profile.enabled": False,
                  "distributed.admin.tick.interval": "1s",
                  "distributed.admin.system-monitor.interval": "2s",
                  "distributed.worker.memory.monitor-interval": "1s"}


class _Ready:
    """A result known without grading (it needs no worker)."""

    def __init__(self, result):
        self.result = result


def _has_bokeh():
    import importlib.util
    return importlib.util.find_spec("bokeh") is not None
