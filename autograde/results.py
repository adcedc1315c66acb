"""What grading produces: one test's result, one notebook's report, one
submission's result.

Every result is made here, by the constructors below (a graded notebook
is filled in by ``runner.NotebookGrader``, test by test), and turned
into the JSON that ``reports/<assignment>/<student>.json`` holds by one
``to_json``/``from_json`` pair. The field names are those of the JSON.

Results cross process boundaries (the local pool, a Dask worker and its
grading process) as their JSON form, plain dicts of plain data, never
as pickled objects: ``executor.grade_submission`` returns
``SubmissionResult.to_json()`` and the process that records the results
reads it back with :meth:`SubmissionResult.from_json`. Plain data is
what every hop carries anyway and what a report on disk is, so a result
off the wire and a result read from disk take the same one way in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATUSES = ("passed", "failed", "error", "timeout", "crashed")

# What ``runner`` records of a notebook that never ran.
_NOT_RUN = {"mode": "not run", "namespaces": False, "uid": None}


@dataclass
class TestResult:
    """One test cell: how it ended and what it earned.

    ``status`` is one of :data:`STATUSES` (None until the test has run);
    ``message`` says why it did not pass, without test code (empty when
    it passed). A test autograde may have judged differently from a
    notebook kernel waits for a person: ``needs_manual``, with the reason
    as ``flag``.
    """

    grade_id: str
    title: str = ""
    max_points: float = 0.0
    score: float = 0.0
    status: str | None = None
    message: str = ""
    needs_manual: bool = False
    flag: str | None = None

    @classmethod
    def of(cls, test, **outcome):
        """The result of the source notebook's ``test`` (a
        ``notebook.TestCell``), 0 points until ``outcome`` says more."""
        return cls(grade_id=test.grade_id, title=test.title,
                   max_points=test.points, **outcome)

    def wait_for_person(self, why):
        """Mark the test as needing a person, ``why`` first in its message."""
        self.needs_manual, self.flag = True, why
        self.message = f"{why}. {self.message}".strip()[:2000]

    @property
    def troubled(self):
        """Whether the gradebook marks it for a look (0 points are not
        the last word): it timed out, crashed or waits for a person."""
        return self.status in ("timeout", "crashed") or self.needs_manual

    def to_json(self):
        """The test's entry in a report."""
        out = {"grade_id": self.grade_id, "title": self.title,
               "max_points": self.max_points, "score": self.score,
               "status": self.status, "message": self.message}
        if self.needs_manual:
            out.update(needs_manual=True, flag=self.flag)
        return out

    @classmethod
    def from_json(cls, data):
        """Inverse of :meth:`to_json` (missing fields get their defaults)."""
        return cls(**_known(cls, data))


@dataclass
class NotebookReport:
    """One notebook of a submission, graded (or not: then ``problem``
    says why, and every test is an ``error`` with 0 points).

    ``tamper`` lists changes to protected cells, ``cell_problems`` the
    student cells that did not run cleanly (``{"cell", "status",
    "message"}``), ``unchanged_answers`` the written answers left as
    released, ``isolation`` how the student process was fenced (see
    ``runner``), ``restarts`` how often it was started again.
    """

    notebook: str
    tests: list[TestResult] = field(default_factory=list)
    max_score: float = 0.0
    tamper: list[str] = field(default_factory=list)
    cell_problems: list[dict] = field(default_factory=list)
    unchanged_answers: list[str] = field(default_factory=list)
    isolation: dict = field(default_factory=lambda: dict(_NOT_RUN))
    restarts: int = 0
    seconds: float = 0.0
    problem: str | None = None

    @classmethod
    def unreadable(cls, source, why):
        """The report of a notebook that could not be graded at all
        (missing, a link, not a notebook): ``why`` is its ``problem``,
        which flags it for a person."""
        return cls(notebook=source.name, max_score=source.points, problem=why,
                   tests=[TestResult.of(t, status="error",
                                        message=f"not graded: {why}")
                          for t in source.tests])

    @property
    def score(self):
        """The points of its tests."""
        return sum(t.score for t in self.tests)

    def flags(self):
        """What a person should look at in this notebook, in words."""
        flags = [self.problem] if self.problem else []
        flags += self.tamper
        flags += [f"{t.grade_id}: {t.status}" for t in self.tests
                  if t.status in ("timeout", "crashed")]
        flags += [f"{t.grade_id}: needs a person ({t.flag})"
                  for t in self.tests if t.needs_manual]
        flags += [f"cell {p['cell'] + 1}: {p['status']}"
                  for p in self.stopped_cells() if type(p.get("cell")) is int]
        return flags

    def stopped_cells(self):
        """The student cells that timed out or crashed (and were skipped)."""
        return [p for p in self.cell_problems
                if p.get("status") in ("timeout", "crashed")]

    def to_json(self):
        """The notebook's entry in a report."""
        out = {"notebook": self.notebook,
               "tests": [t.to_json() for t in self.tests],
               "score": self.score, "max_score": self.max_score,
               "tamper": list(self.tamper),
               "cell_problems": list(self.cell_problems),
               "unchanged_answers": list(self.unchanged_answers),
               "isolation": dict(self.isolation), "restarts": self.restarts,
               "seconds": self.seconds}
        if self.problem is not None:
            out["problem"] = self.problem
        return out

    @classmethod
    def from_json(cls, data):
        """Inverse of :meth:`to_json` (missing fields get their defaults)."""
        fields = _known(cls, data)
        fields["tests"] = [TestResult.from_json(t) for t in fields.get("tests", [])]
        return cls(**fields)


@dataclass
class SubmissionResult:
    """One student's submission of one assignment.

    ``problems`` are notes on the submitted files (tampering among them);
    ``fingerprint`` the digest that lets a rerun skip it unchanged;
    ``timestamp`` the submission's ``timestamp.txt``. When the grader
    itself failed, ``grader_error`` holds the cause and ``notebooks`` is
    empty: such a result is never stored as a score. ``refused`` is a
    worker's reason for not grading at all (it cannot build the
    sandbox); ``not_in_gradebook`` marks a result no gradebook can hold.
    """

    student: str
    assignment: str
    notebooks: list[NotebookReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    timestamp: str | None = None
    grader_error: str | None = None
    refused: str | None = None
    not_in_gradebook: bool = False

    @classmethod
    def of(cls, task):
        """An empty result for a grading task (plain or packed, see
        ``executor``): who, which assignment, and what the task already
        knows (its fingerprint; a packed task's notes and timestamp)."""
        return cls(student=task["student"], assignment=task["assignment"],
                   fingerprint=task.get("fingerprint") or None,
                   problems=list(task.get("problems", [])),
                   timestamp=task.get("timestamp") or None)

    @classmethod
    def failed(cls, task, why):
        """The result of a task the grader failed on (see :meth:`fail`)."""
        result = cls.of(task)
        result.fail(why)
        return result

    @classmethod
    def not_utf8(cls, student, assignment, sources, fingerprint):
        """The result of a student folder whose name is not UTF-8: every
        notebook unreadable, recorded under the name with ``\\xNN``
        escapes (``student``), kept out of the gradebook."""
        why = "the student folder's name is not UTF-8; rename it to grade it"
        return cls(student=student, assignment=assignment,
                   notebooks=[NotebookReport.unreadable(src, why)
                              for src in sources.values()],
                   fingerprint=fingerprint, not_in_gradebook=True)

    def fail(self, why):
        """Not graded, because the grader failed (``why``): the partial
        reports are dropped, since they must never be stored as the
        student's scores."""
        self.notebooks, self.grader_error = [], why

    @property
    def score(self):
        """The points of every notebook."""
        return sum((nb.score for nb in self.notebooks), 0.0)

    @property
    def max_score(self):
        """The points every notebook could have earned."""
        return sum((nb.max_score for nb in self.notebooks), 0.0)

    @property
    def tests(self):
        """Every test of every notebook."""
        return [t for nb in self.notebooks for t in nb.tests]

    def outcome(self):
        """``(status, flags)``: ``error`` (the grader failed),
        ``unreadable`` (a notebook could not be graded: missing, a link,
        not a notebook), ``flagged`` (tampering, a timeout or crash, a
        test that waits for a person, or a problem with the submitted
        files) or ``graded``; ``flags`` say why, in words."""
        flags = [f for nb in self.notebooks for f in nb.flags()] + self.problems
        if self.grader_error:
            return "error", ["the grader failed (see the report)"] + flags
        if any(nb.problem for nb in self.notebooks):
            return "unreadable", flags
        return ("flagged" if flags else "graded"), flags

    def to_json(self):
        """The report, as ``reports/<assignment>/<student>.json`` holds it."""
        out = {"student": self.student, "assignment": self.assignment,
               "notebooks": [nb.to_json() for nb in self.notebooks],
               "score": self.score, "max_score": self.max_score,
               "problems": list(self.problems)}
        for name in ("fingerprint", "timestamp", "grader_error", "refused",
                     "not_in_gradebook"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_json(cls, data):
        """Inverse of :meth:`to_json` (missing fields get their defaults)."""
        fields = _known(cls, data)
        fields["notebooks"] = [NotebookReport.from_json(nb)
                               for nb in fields.get("notebooks", [])]
        return cls(**fields)


def as_result(res):
    """``res`` as a :class:`SubmissionResult`, read from its JSON form
    when it is a dict (a report, or a result from another process)."""
    return SubmissionResult.from_json(res) if isinstance(res, dict) else res


def _known(cls, data):
    """The entries of ``data`` that are fields of ``cls`` (``score`` and
    the like are computed, and a report of an older version may hold
    entries that are gone)."""
    names = cls.__dataclass_fields__
    return {k: v for k, v in data.items() if k in names}
