"""Grading one submitted notebook: student cells in the sandbox, tests here.

The student's code cells run, in notebook order, in a sandboxed student
process. Each test cell of the *source* notebook runs in this (trusted)
process when its turn comes, against handles on the student's objects
(see ``remote`` and ``bridge``). A test ends as one of:

========  ==============================================================
passed    the cell ran to the end
failed    an assertion failed (``assert``, ``np.testing``)
error     another exception (a missing name, an error in student code)
timeout   the student's code (or the test) ran past the per-test limit
crashed   the student process died (``os._exit``, out of memory, a kill)
========  ==============================================================

A crash or timeout costs only the test it happens in: the student
process is started again and the cells that ran before are replayed, so
the next test gets a fresh process in the same state.
"""

import ast
import contextlib
import io
import multiprocessing.util
import os
import shutil
import signal
import tempfile
import time

from . import sandbox
from .live import FolderView, LiveNamespace
from .sandbox import Limits
from .notebook import (BEGIN_HIDDEN, END_HIDDEN, Submission, bound_names,
                       global_names, strip_magics, unfaithful_constructs, used_names)
from .bridge import BridgeError
from .remote import (RemoteError, StudentCrashed, StudentProcess,
                     StudentTimeout, default_uid)
from .results import STATUSES, NotebookReport, TestResult  # noqa: F401 (STATUSES)
MAX_TEST_OUTPUT = 8 << 20   # characters of student output one test receives

# Modules whose state lives where the student's code ran: a test that
# names them (``plt.gca()``) means the student's figure, not the grader's.
_STUDENT_STATE_MODULES = ("matplotlib.pyplot", "matplotlib")


def _student_state(obj):
    import types
    return isinstance(obj, types.ModuleType) and obj.__name__ in _STUDENT_STATE_MODULES


class Settings:
    """Time and resource limits for grading.

    Arguments:
        test_timeout: seconds for one test cell (its calls into student code
            included).
        cell_timeout: seconds for one student code cell.
        submission_budget: seconds for one notebook in all; tests that
            would start after it is spent end as ``timeout``.
        limits: :class:`sandbox.Limits` for the student process.
        max_restarts: student process restarts allowed per notebook.
        after_timeout: the limit for the remaining tests of a notebook once
            one of its tests has timed out, so that an infinite loop that
            every test runs into costs one full test timeout, not one per
            test (None: keep ``test_timeout``).
        sandbox: False runs student code without namespaces even where
            they are available (``grade --no-sandbox``; every report says
            so).
    """

    def __init__(self, test_timeout=10.0, cell_timeout=10.0,
                 submission_budget=120.0, limits=None, max_restarts=12,
                 after_timeout=2.0, sandbox=True):
        self.sandbox = sandbox
        self.test_timeout, self.cell_timeout = test_timeout, cell_timeout
        self.after_timeout = after_timeout
        self.submission_budget = submission_budget
        self.limits = limits or Limits()
        self.max_restarts = max_restarts

    def as_dict(self):
        """Plain data, to ship to another process."""
        d = dict(vars(self))
        d["limits"] = self.limits.as_dict()
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`as_dict`."""
        d = dict(d)
        d["limits"] = sandbox.Limits(**d["limits"])
        return cls(**d)


class _Alarm(BaseException):
    """The test's own time ran out (raised by SIGALRM)."""


def _on_alarm(signum, frame):
    raise _Alarm()


_LAUNCHER = None
_NAMESPACES = None


def launcher():
    """This process's :class:`sandbox.Launcher`, made on first use (a
    forked child makes its own); its spare is killed as the process
    exits. (A finalizer, not ``atexit``: a worker of the local pool ends
    without running ``atexit`` handlers, and a spare left to die with its
    worker could be cut in the middle of bwrap's setup, before bwrap's
    own process inside the fence is set to die with it.)"""
    global _LAUNCHER
    if _LAUNCHER is None or _LAUNCHER.pid != os.getpid():
        sandbox.protect_self()
        _LAUNCHER = sandbox.Launcher()
        multiprocessing.util.Finalize(None, _LAUNCHER.close, exitpriority=10)
    return _LAUNCHER


def namespaces():
    """Whether student processes get private mount/network namespaces."""
    global _NAMESPACES
    if _NAMESPACES is None:
        _NAMESPACES = sandbox.namespaces_available()
    return _NAMESPACES


class NotebookGrader:
    """Grades one submission notebook against its source notebook.

    Arguments:
        source: the :class:`notebook.SourceNotebook`.
        submission_nb: the submitted notebook (nbformat).
        files: ``{relative name: path}`` of the submission folder, copied
            into the student's working directory.
        settings: :class:`Settings`.
    """

    def __init__(self, source, submission_nb, files, settings):
        self.source, self.settings = source, settings
        self.sub = Submission(submission_nb, source)
        self.files = {k: os.path.abspath(v) for k, v in files.items()}
        self.results, self.cell_problems = [], []
        self.tns = None             # the tests' LiveNamespace (see run)
        self.view = None            # the tests' FolderView
        self.executed = []          # (index, source) to replay after a restart
        self._lost_names = {}       # name -> (status, where): its cell was skipped
        self.timed_out = False
        self.setup_done = set()

    # ---- the student process ------------------------------------------------------
    def _start(self):
        self.proc.start()
        for index, text in list(self.executed):
            try:
                self.proc.run_cell(text, f"<cell {index}>", self.settings.cell_timeout)
            except (StudentTimeout, StudentCrashed):
                # Not reproducible after all: leave it out from now on.
                self.executed.remove((index, text))
                self.proc.start()
                return self._start()
        return None

    def _ensure_alive(self):
        if self.proc.alive:
            return True
        if self.proc.restarts >= self.settings.max_restarts:
            return False
        self.proc.restarts += 1
        self._start()
        return True

    # ---- main loop --------------------------------------------------------------
    def run(self):
        """Grade; returns the :class:`results.NotebookReport`."""
        start = time.monotonic()
        self.deadline = start + self.settings.submission_budget
        uid = default_uid()
        use_ns = self.settings.sandbox and namespaces()
        # The student's working folder lives in its sandbox; here only the
        # tests' view of it (see FolderView).
        base = tempfile.mkdtemp(prefix="autograde-")
        cfg = {"files": self.files, "uid": uid, "namespaces": use_ns,
               "limits": self.settings.limits.as_dict()}
        self.proc = StudentProcess(launcher(), cfg)
        student_names = set()
        for step in self.sub.steps:
            if step[0] == "cell":
                student_names |= global_names(step[2])
        self.tns = LiveNamespace(self.proc, student_names, self.source.solution_names)
        self.proc.on_changed = self.tns.student_changed
        view = os.path.join(base, "view")
        os.mkdir(view, 0o700)
        # Every reply of the student process lists its working folder, so
        # the copy is current whenever test code runs.
        self.view = self.proc.files = FolderView(self.proc, view)
        old = signal.signal(signal.SIGALRM, _on_alarm)
        try:
            self.proc.start()
            for step in self.sub.steps:
                if step[0] == "cell":
                    self._run_cell(step[1], step[2])
                else:
                    self._run_test(step[1])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            self.proc.stop()
            shutil.rmtree(base, ignore_errors=True)
        return NotebookReport(
            notebook=self.source.name, tests=self.results,
            max_score=self.source.points, tamper=list(self.sub.tamper),
            cell_problems=self.cell_problems,
            unchanged_answers=list(self.sub.unchanged_answers),
            isolation={"mode": sandbox.isolation_mode(use_ns),
                       "namespaces": use_ns, "uid": uid,
                       "grader_uid": os.geteuid(),
                       "no_sandbox": not self.settings.sandbox},
            restarts=self.proc.restarts,
            seconds=round(time.monotonic() - start, 3))

    def _run_cell(self, index, text):
        if not text.strip() or time.monotonic() > self.deadline:
            return
        if not self._ensure_alive():
            return
        self.proc.deadline = None
        try:
            err = self.proc.run_cell(text, f"<cell {index}>", self.settings.cell_timeout)
        except StudentTimeout:
            self._lose(text, "timeout", index)
            self.cell_problems.append({"cell": index, "status": "timeout",
                                       "message": "this cell did not finish within "
                                       f"{self.settings.cell_timeout:g} s and was skipped"})
            return
        except StudentCrashed as e:
            self._lose(text, "crashed", index)
            self.cell_problems.append({"cell": index, "status": "crashed",
                                       "message": f"{e}; the cell was skipped"})
            return
        self.executed.append((index, text))
        if err is not None:
            self.cell_problems.append({"cell": index, "status": "error",
                                       "message": f"{type(err).__name__}: {err}"[:500]})

    def _lose(self, text, status, index):
        for name in bound_names(text):
            self._lost_names[name] = (status, f"cell {index + 1}")

    # ---- tests --------------------------------------------------------------------
    def _run_setup_before(self, index):
        """Run the instructor's set-up cells (from source) that come before
        ``index``, here, so tests see the trusted ``np``, ``db``, ``nn``..."""
        for cell_index, text in self.source.setup:
            if cell_index < index and cell_index not in self.setup_done:
                self.setup_done.add(cell_index)
                if used_names(text) & self.source.solution_names:
                    # It uses the student's work (``squares(10)``): it ran
                    # in the student's process, as a kernel runs it once.
                    continue
                self._exec_trusted(text, f"<setup {cell_index}>", self.settings.test_timeout,
                                   quiet=True, setup=True)

    def _exec_trusted(self, text, filename, timeout, quiet=False, setup=False):
        """Run instructor code here, in the tests' live namespace and a
        copy of the student's working folder; returns (value of a final
        expression, exception or None)."""
        tree = ast.parse(strip_magics(text), filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        out = io.StringIO()
        value = None
        home = os.getcwd()
        self.proc.deadline = time.monotonic() + timeout
        self.proc.output_left = MAX_TEST_OUTPUT
        signal.setitimer(signal.ITIMER_REAL, timeout + 1.0)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                os.chdir(self.view.path)
                code = compile(tree, filename, "exec")
                if setup:
                    # The grader's own modules and helpers: bound here only.
                    bound = {}
                    exec(code, self.tns, bound)
                    for name, obj in bound.items():
                        self.tns.local(name, obj)
                    self.tns.forget_student(
                        name for name, obj in bound.items() if _student_state(obj))
                else:
                    exec(code, self.tns, self.tns)
                if last is not None:
                    value = eval(compile(last, filename, "eval"), self.tns, self.tns)
            err = None
        except BaseException as e:      # noqa: B902 (sorted out by the caller)
            err = e
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.proc.deadline = None
            os.chdir(home)
        if isinstance(err, _Alarm):
            self.proc.event = self.proc.event or "timeout"
            self.proc.stop()
        if quiet and isinstance(err, (Exception, _Alarm, StudentTimeout, StudentCrashed)):
            return value, None
        if isinstance(err, (KeyboardInterrupt, SystemExit, sandbox.GraderFault)):
            raise err
        return value, err

    def _run_test(self, test):
        self._run_setup_before(test.index)
        result = TestResult.of(test)
        self.results.append(result)
        if time.monotonic() > self.deadline:
            result.status, result.message = "timeout", (
                "the time budget for this notebook was used up before this "
                "test could run")
            return
        if not self._ensure_alive():
            result.status, result.message = "crashed", (
                "the student process crashed too often; this test was not run")
            return
        self.proc.event = None
        self.proc.doubts, self.proc.callback_errors = [], []
        limit = self.settings.test_timeout
        if self.timed_out and self.settings.after_timeout is not None:
            limit = min(limit, self.settings.after_timeout)
        value, err = self._exec_trusted(test.source, f"<test {test.grade_id}>", limit)
        status = self.proc.event
        if status is None:
            if err is None:
                status = "passed"
            elif isinstance(err, AssertionError) and not isinstance(err, RemoteError):
                status = "failed"
            elif isinstance(err, _Alarm):
                status = "timeout"
            else:
                status = "error"
        result.status = status
        result.message = self._message(status, err, test, limit)
        self.timed_out = self.timed_out or status == "timeout"
        name = getattr(err, "name", None)
        if name is None and isinstance(err, NameError):    # raised by student code
            import re
            found = re.match(r"name '(\w+)' is not defined", str(err))
            name = found.group(1) if found else None
        lost = self._lost_names.get(name)
        if status == "error" and isinstance(err, NameError) and lost:
            result.status, result.message = lost[0], (
                f"{name} is not defined because the cell that defines it "
                f"({lost[1]}) was stopped: {lost[0]}")
        if self.proc.alive:
            try:
                self.proc.collect(self.tns.roots(), self.settings.test_timeout)
            except (StudentTimeout, StudentCrashed, RemoteError):
                pass
        if status == "passed":
            score = test.points
            if type(value) in (int, float) and not isinstance(value, bool):
                score = min(max(float(value), 0.0), test.points)
            result.score = score
        self._judge_fidelity(test, result)

    def _judge_fidelity(self, test, result):
        """A test that uses what autograde cannot run as a kernel would
        (found in its source before grading), or that did not pass after
        doing something whose verdict here may differ (seen while it
        ran), waits for a person: ``needs_manual`` with the reason."""
        static = [u for u in _unfaithful(self.source) if u.cell == test.grade_id]
        reasons = [f"line {u.line}: {u.construct}" for u in static]
        if result.status not in ("passed", "timeout", "crashed"):
            reasons += [f"line {line}: {what}" if line else what
                        for line, what, _ in self.proc.doubts]
        if reasons:
            result.wait_for_person(
                "autograde cannot run this test as a notebook kernel would ("
                + "; ".join(dict.fromkeys(reasons)) + "): a person should check it")

    def _message(self, status, err, test, limit):
        """Why a test did not pass, in words, without test code."""
        if status == "passed":
            return ""
        if status == "timeout":
            return (f"your code did not finish within {limit:g} s and was "
                    f"stopped (an infinite loop, or far too much work)")
        if status == "crashed":
            detail = f" ({err})" if isinstance(err, StudentCrashed) and str(err) else ""
            return ("your code ended the Python process (os._exit, a kill, a "
                    "crash or running out of memory), so the test could not "
                    f"finish{detail}")
        line = _test_line(err, test)
        if status == "failed":
            text = str(err).strip()
            where = ""
            if line is not None:
                hidden, code = _line_info(test.source, line)
                where = " (a hidden check)" if hidden else f": {code.strip()}"
            return (text or ("an assertion failed" + where))[:2000]
        kind = type(err).__name__
        text = f"{kind}: {err}"
        if isinstance(err, RemoteError) and self.proc.callback_errors:
            text += (" (raised by the test's own function, called from your "
                     f"code: {self.proc.callback_errors[-1]})")
        elif isinstance(err, RemoteError):
            text += " (raised by your code"
            where = getattr(err, "remote_where", [])
            text += f" in {where[-1]})" if where else ")"
        elif isinstance(err, BridgeError):
            text += " (a limit of the grader, not a fault of your code)"
        elif isinstance(err, NameError):
            text += " (is the cell that defines it run, and without errors?)"
        return text[:2000]


_UNFAITHFUL = {}


def _unfaithful(source):
    """The unfaithful constructs of a source notebook (found once per
    content, however often the notebook is read)."""
    key = (tuple(text for _, text in source.setup),
           tuple((t.grade_id, t.source) for t in source.tests))
    found = _UNFAITHFUL.get(key)
    if found is None:
        if len(_UNFAITHFUL) > 64:
            _UNFAITHFUL.clear()
        found = _UNFAITHFUL[key] = unfaithful_constructs(source)
    return found


def _test_line(err, test):
    tb = getattr(err, "__traceback__", None)
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == f"<test {test.grade_id}>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _line_info(source, lineno):
    """(inside the hidden region?, that line's text)."""
    hidden = False
    lines = source.splitlines()
    for i, line in enumerate(lines, start=1):
        text = line.strip()
        if text.startswith(BEGIN_HIDDEN):
            hidden = True
        elif text.startswith(END_HIDDEN):
            hidden = False
        if i == lineno:
            return hidden, line
    return True, ""
