"""The result types of ``autograde.results``: what each constructor
makes, the outcome a person reads, and the JSON form that reports on
disk and results from other processes share. No student code runs here."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
import tiny_course  # noqa: E402

from autograde.notebook import SourceNotebook  # noqa: E402
from autograde.results import (STATUSES, NotebookReport,  # noqa: E402
                               SubmissionResult, as_result)
from autograde import results  # noqa: E402 (its TestResult is no test class)


@pytest.fixture(scope="module")
def source():
    return SourceNotebook(tiny_course.source_notebook(), tiny_course.NOTEBOOK)


def graded_report(source, statuses):
    """A notebook report as the grader fills it in, one status per test
    (a passing test earns its points)."""
    tests = [results.TestResult.of(t, status=s, score=t.points if s == "passed" else 0.0,
                           message="" if s == "passed" else f"it {s}")
             for t, s in zip(source.tests, statuses)]
    return NotebookReport(notebook=source.name, tests=tests,
                          max_score=source.points,
                          isolation={"mode": "user namespace", "namespaces": True,
                                     "uid": 1000, "grader_uid": 1000,
                                     "no_sandbox": False},
                          restarts=1, seconds=0.25)


def task(student="ada", **more):
    return dict({"student": student, "assignment": tiny_course.ASSIGNMENT}, **more)


def test_a_graded_submission_adds_up_its_tests(source):
    res = SubmissionResult.of(task(fingerprint="abc"))
    res.notebooks.append(graded_report(source, ["passed", "failed", "passed"]))
    points = list(tiny_course.TESTS.values())
    assert res.score == points[0] + points[2]
    assert res.max_score == tiny_course.POINTS
    assert res.outcome() == ("graded", [])
    data = res.to_json()
    assert data["score"] == res.score and data["fingerprint"] == "abc"
    # Only what was set is written: no empty grader_error, refused, ...
    assert set(data) == {"student", "assignment", "notebooks", "score",
                         "max_score", "problems", "fingerprint"}


@pytest.mark.parametrize("status", ["timeout", "crashed"])
def test_a_test_that_timed_out_or_crashed_flags_the_submission(source, status):
    res = SubmissionResult.of(task())
    res.notebooks.append(graded_report(source, ["passed", status, "passed"]))
    gid = source.tests[1].grade_id
    assert res.outcome() == ("flagged", [f"{gid}: {status}"])
    assert res.tests[1].troubled and not res.tests[0].troubled


def test_a_test_that_waits_for_a_person_says_why_first(source):
    report = graded_report(source, ["passed", "failed", "passed"])
    report.tests[1].wait_for_person("autograde cannot run this test")
    t = report.tests[1]
    assert t.needs_manual and t.troubled
    assert t.message == "autograde cannot run this test. it failed"
    assert t.to_json()["flag"] == "autograde cannot run this test"
    res = SubmissionResult(student="ada", assignment="tiny", notebooks=[report])
    status, flags = res.outcome()
    assert status == "flagged" and "needs a person" in flags[0]


def test_an_unreadable_notebook_has_every_test_an_error(source):
    report = NotebookReport.unreadable(source, "tiny.ipynb is empty")
    assert [t.grade_id for t in report.tests] == list(tiny_course.TESTS)
    assert all(t.status == "error" and t.score == 0 and
               t.message == "not graded: tiny.ipynb is empty" for t in report.tests)
    assert (report.score, report.max_score) == (0, tiny_course.POINTS)
    assert report.to_json()["isolation"]["mode"] == "not run"
    res = SubmissionResult(student="ada", assignment="tiny", notebooks=[report])
    assert res.outcome() == ("unreadable", ["tiny.ipynb is empty"])


def test_a_folder_name_that_is_not_utf8_stays_out_of_the_gradebook(source):
    res = SubmissionResult.not_utf8("b\\xff", "tiny", {source.name: source}, "fp")
    data = res.to_json()
    assert data["not_in_gradebook"] is True and data["fingerprint"] == "fp"
    assert data["max_score"] == tiny_course.POINTS and data["score"] == 0
    status, flags = res.outcome()
    assert status == "unreadable" and "UTF-8" in flags[0]


def test_a_grader_failure_drops_every_partial_score(source):
    res = SubmissionResult.of(task())
    res.notebooks.append(graded_report(source, ["passed"] * 3))
    res.fail("Traceback: the sandbox broke")
    assert res.notebooks == [] and res.score == 0
    status, flags = res.outcome()
    assert status == "error" and flags == ["the grader failed (see the report)"]
    lost = SubmissionResult.failed(task(problems=["a note"], timestamp="t"), "why")
    assert (lost.grader_error, lost.problems, lost.timestamp) == ("why", ["a note"], "t")


def test_problems_with_the_files_flag_after_the_notebooks(source):
    report = graded_report(source, ["passed"] * 3)
    report.tamper.append("read-only cell x was edited")
    report.cell_problems.append({"cell": 2, "status": "timeout", "message": "m"})
    report.cell_problems.append({"cell": 3, "status": "error", "message": "m"})
    res = SubmissionResult(student="ada", assignment="tiny", notebooks=[report],
                           problems=["tampering: data is a link"])
    assert res.outcome() == ("flagged", ["read-only cell x was edited",
                                         "cell 3: timeout",
                                         "tampering: data is a link"])


def test_the_json_form_reads_back_to_the_same_result(source):
    res = SubmissionResult.of(task(fingerprint="abc", timestamp="2026-11-20"))
    res.notebooks.append(graded_report(source, ["passed", "error", "timeout"]))
    res.notebooks[0].tests[1].wait_for_person("why")
    res.notebooks.append(NotebookReport.unreadable(source, "missing"))
    data = res.to_json()
    # Plain JSON: it crosses processes and lands on disk as it is.
    assert json.loads(json.dumps(data)) == data
    assert SubmissionResult.from_json(data) == res
    assert SubmissionResult.from_json(data).to_json() == data
    assert as_result(data) == res and as_result(res) is res
    assert all(t["status"] in STATUSES for nb in data["notebooks"]
               for t in nb["tests"])


def test_a_partial_or_older_report_reads_with_defaults():
    old = {"student": "ada", "assignment": "tiny", "write_error": "gone",
           "notebooks": [{"notebook": "tiny.ipynb", "tests": [
               {"grade_id": "test_scale", "score": 2.0, "status": "passed"}]}]}
    res = SubmissionResult.from_json(old)
    assert res.score == 2.0 and res.problems == [] and res.grader_error is None
    (t,) = res.tests
    assert (t.title, t.message, t.needs_manual) == ("", "", False)
    assert "write_error" not in res.to_json()
