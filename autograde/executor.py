"""Where submissions are graded: the one interface between the grading
code and the machines that run it.

A grading *task* is plain data (course path, assignment, student, files,
settings) and :func:`grade_submission` turns it into a plain-data result.
An :class:`Executor` only has to run that function over many tasks and
hand back results as they finish, so a course with thousands of
submissions can move from the local process pool to a cluster without
touching the grading code:

- :class:`LocalExecutor` (the default): a pool of forked processes on
  this machine, each with its own zygote and sandbox uid;
- :class:`SerialExecutor`: in this process (for debugging);
- :class:`DaskExecutor`: a Dask ``distributed`` cluster (``pip install
  distributed``; each Dask worker needs root for the full sandbox and
  the course folder at the same path, e.g. a shared file system).
"""

import multiprocessing
import os
import traceback

from .course import (load_sources, read_plain, read_submitted_notebook,
                     scan_submission)
from .runner import NotebookGrader, Settings, unreadable_report


def grade_submission(task):
    """Grade one student's submission of one assignment.

    Arguments:
        task: a dict with ``course``, ``assignment``, ``student``,
            ``folder`` (the submission folder), ``settings``
            (``Settings.as_dict()``) and optionally ``files`` (default:
            what :func:`course.scan_submission` finds).

    Returns a dict with ``student``, ``notebooks`` (one report each, see
    ``runner``), ``score``, ``max_score``, ``timestamp``, ``problems``
    (notes on the submission's files) and ``fingerprint`` when the task
    has one. Never raises: a notebook that cannot be read is graded as
    such (every test ``error``, flagged, the reason recorded), and a
    failure of the grader itself is reported as ``grader_error``.
    """
    result = {"student": task["student"], "assignment": task["assignment"],
              "notebooks": [], "score": 0.0, "max_score": 0.0, "problems": []}
    if task.get("fingerprint"):
        result["fingerprint"] = task["fingerprint"]
    try:
        settings = Settings.from_dict(task["settings"])
        folder = task["folder"]
        files, notes = scan_submission(folder)
        result["problems"].extend(notes)
        if "files" in task:
            files = {k: v for k, v in task["files"].items() if k in files}
        stamp = read_plain(os.path.join(folder, "timestamp.txt"), 200)
        if stamp is not None:
            result["timestamp"] = stamp.decode("utf-8", "replace").strip()
        sources = _sources(task["course"], task["assignment"])
        extra = sorted(n for n in files if n.endswith(".ipynb")
                       and "/" not in n and n not in sources)
        for name in extra:
            result["problems"].append(f"{name} is not a notebook of this "
                                      f"assignment; it was not graded")
        for name, src in sources.items():
            nb, why = read_submitted_notebook(folder, name)
            if nb is None:
                report = unreadable_report(src, why)
            else:
                report = NotebookGrader(src, nb, files, settings,
                                        hide=[task["course"]]).run()
            result["notebooks"].append(report)
            result["score"] += report["score"]
            result["max_score"] += report["max_score"]
    except Exception:
        result["grader_error"] = traceback.format_exc()[-4000:]
    return result


_SOURCES = {}


def _sources(course, assignment):
    key = (course, assignment)
    if key not in _SOURCES:
        _SOURCES[key] = load_sources(course, assignment)
    return _SOURCES[key]


class Executor:
    """Runs :func:`grade_submission` over tasks.

    Subclasses implement :meth:`map_unordered`, yielding each result as
    soon as it is ready, and may implement :meth:`close`.
    """

    def map_unordered(self, fn, tasks):
        """Yield ``fn(task)`` for every task, in any order."""
        raise NotImplementedError

    def close(self):
        """Release the workers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SerialExecutor(Executor):
    """Everything in this process, one task after another."""

    def map_unordered(self, fn, tasks):
        """One task after another."""
        for task in tasks:
            yield fn(task)


class LocalExecutor(Executor):
    """A pool of ``workers`` forked processes (default: one per core)."""

    def __init__(self, workers=None):
        if workers is not None and (not isinstance(workers, int) or workers < 1):
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        self.workers = workers or os.cpu_count() or 1
        ctx = multiprocessing.get_context("fork")
        self.pool = ctx.Pool(self.workers, maxtasksperchild=None)

    def map_unordered(self, fn, tasks):
        """Results as the workers finish them."""
        yield from self.pool.imap_unordered(fn, tasks)

    def close(self):
        """Wait for the workers to finish and stop them."""
        self.pool.close()
        self.pool.join()


class DaskExecutor(Executor):
    """Tasks on a Dask ``distributed`` cluster.

    Arguments:
        address: the scheduler's address, e.g. ``"tcp://10.0.0.5:8786"``.
    """

    def __init__(self, address):
        try:
            from distributed import Client
        except ImportError as e:
            raise RuntimeError("DaskExecutor needs the 'distributed' package "
                               "(pip install distributed)") from e
        self.client = Client(address)

    def map_unordered(self, fn, tasks):
        """Submit every task; results as the cluster finishes them."""
        from distributed import as_completed
        futures = self.client.map(fn, list(tasks), pure=False)
        for future in as_completed(futures):
            yield future.result()

    def close(self):
        """Disconnect from the scheduler."""
        self.client.close()
