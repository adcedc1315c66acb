"""The hostile corpus (``tests/hostile/hostile_cases.py``) graded by ``autograde``.

Every case is one student of a tiny course; all of them are graded in one
``autograde grade`` run with two workers. Each must get exactly the score
its honest part deserves, with the right status per test, and none may
change anything outside its own folder.

The run is bounded twice: the sandbox's own limits (CPU, memory,
processes, per-test timeouts), and around it a wall-clock timeout after
which this test kills the grader's whole process group.
"""

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
import tiny_course  # noqa: E402
from hostile_cases import CASES, HIDDEN, REPO, make_submission  # noqa: E402
from autograde.runner import STATUSES  # noqa: E402
from autograde.sandbox import UID_BASE  # noqa: E402

OUTER_TIMEOUT = 300


def run_bounded(cmd, timeout=OUTER_TIMEOUT, **kwargs):
    """Run ``cmd`` in a session of its own; on timeout kill the whole
    process group (the second bound around the sandbox's limits)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"{cmd} did not finish within {timeout} s")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def sandbox_processes():
    """PIDs of processes running as a sandbox uid."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith("Uid:"))
        except (OSError, StopIteration, ValueError):
            continue
        if UID_BASE <= uid < UID_BASE + 2**23:
            found.append(int(entry))
    return found


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """``(course root, {student: report}, process, marker path)``."""
    tmp = tmp_path_factory.mktemp("hostile")
    root = tiny_course.write_course(tmp / "course")
    marker = tmp / "written-by-a-student.txt"
    for name, case in CASES.items():
        folder = root / "submitted" / name / tiny_course.ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(make_submission(case, root, marker), folder / tiny_course.NOTEBOOK)
        (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    # A stand-in gradebook: any write to it would change its digest.
    (root / "gradebook.db").write_bytes(b"not a real gradebook\n" * 100)
    before = {str(p): _digest(p) for p in root.rglob("*") if p.is_file()}
    proc = run_bounded([sys.executable, "-m", "autograde", "--course", str(root),
                        "grade", tiny_course.ASSIGNMENT, "--workers", "2",
                        "--no-gradebook", "--quiet", "--test-timeout", "3",
                        "--cell-timeout", "3", "--memory-mb", "1024"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = {}
    for path in (root / "reports" / tiny_course.ASSIGNMENT).glob("*.json"):
        res = json.loads(path.read_text())
        reports[res["student"]] = res
    return root, reports, proc, marker, before


@pytest.mark.parametrize("student", list(CASES))
def test_hostile_case_gets_exactly_its_deserved_score(graded, student):
    _, reports, _, _, _ = graded
    expect = CASES[student]["expect"]
    res = reports[student]
    (nb,) = res["notebooks"]
    if CASES[student].get("namespaces") and not nb["isolation"]["namespaces"]:
        # Only namespaces take the network and the rest of the file system
        # away; without them (no CAP_SYS_ADMIN) the report must say so.
        assert nb["isolation"]["namespaces"] is False
        return
    statuses = {t["grade_id"]: t["status"] for t in nb["tests"]}
    assert res["score"] == expect["score"], (statuses, nb["cell_problems"])
    for gid, status in expect.get("status", {}).items():
        assert statuses[gid] == status, (gid, nb["tests"])
    assert bool(nb["tamper"]) == expect.get("tamper", False), nb["tamper"]


def test_every_test_of_every_case_has_a_status_and_a_reason(graded):
    root, reports, _, _, _ = graded
    assert set(reports) == set(CASES)
    with open(root / "reports" / tiny_course.ASSIGNMENT / "tests.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(CASES) * len(tiny_course.TESTS)
    for row in rows:
        assert row["status"] in STATUSES
        assert (row["status"] == "passed") == (row["message"] == ""), row
        assert float(row["max_score"]) == tiny_course.TESTS[row["grade_id"]]


def test_tampering_is_named_in_the_csv(graded):
    root, _, _, _, _ = graded
    with open(root / "reports" / tiny_course.ASSIGNMENT / "tests.csv") as f:
        rows = {(r["student"], r["grade_id"]): r for r in csv.DictReader(f)}
    assert "test_affine_values" in rows[("deleted_test", "test_affine_values")]["tampering"]
    assert "metadata" in rows[("changed_metadata", "test_affine_shape")]["tampering"]
    assert rows[("correct", "test_scale")]["tampering"] == ""


def test_nothing_outside_the_submission_folder_changed(graded):
    root, _, _, marker, before = graded
    assert not marker.exists()
    assert not (root / "pwned.txt").exists()
    for path, digest in before.items():
        assert _digest(path) == digest, f"{path} was changed during grading"


def test_reports_and_feedback_hold_no_hidden_test_code(graded):
    root, _, _, _, _ = graded
    proc = run_bounded([sys.executable, "-m", "autograde", "--course", str(root),
                        "feedback", tiny_course.ASSIGNMENT], timeout=120)
    assert proc.returncode == 0, proc.stderr
    outputs = list((root / "reports").rglob("*")) + list((root / "feedback").rglob("*")) \
        + list((root / "autograded").rglob("*.ipynb"))
    assert len(outputs) > 2 * len(CASES)
    for path in outputs:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "default_rng(11)" not in text and "HIDDEN TESTS" not in text, path


def test_student_code_ran_as_another_user_in_private_namespaces(graded):
    _, reports, _, _, _ = graded
    for res in reports.values():
        iso = res["notebooks"][0]["isolation"]
        if os.geteuid() == 0:
            assert iso["uid"] is not None and iso["uid"] >= UID_BASE
        else:
            assert iso["uid"] is None


def test_no_student_process_survives_grading(graded):
    assert sandbox_processes() == []


def test_an_infinite_loop_costs_one_full_test_timeout(graded):
    """Both affine tests hit the loop: the first gets the full limit (3 s
    here), the second only the shorter limit after a timeout."""
    _, reports, _, _, _ = graded
    tests = reports["infinite_loop_answer"]["notebooks"][0]["tests"]
    first, second = tests[0]["message"], tests[1]["message"]
    assert "within 3 s" in first and "within 2 s" in second


def test_the_repository_behind_the_grader_is_out_of_reach(graded):
    """The grader is installed from this repository (editable), which holds
    the real course's hidden tests: the student process can read none of
    them, by absolute path or relative to ``d2lblocks.__file__``, and sees
    no more of the repository root than Python's own files."""
    _, reports, _, _, _ = graded
    nb = reports["repository_hunt"]["notebooks"][0]
    if not nb["isolation"]["namespaces"]:
        pytest.skip("needs mount namespaces (root with CAP_SYS_ADMIN)")
    # The grader itself can read what the student must not.
    assert (REPO / HIDDEN).is_file()
    (problem,) = nb["cell_problems"]
    message = problem["message"]
    assert message.startswith("LookupError: repository reads:"), message
    denied, attempts = (int(w) for w in message.split(":")[2].split()[:3:2])
    assert denied == attempts == 9, message
    shown = message.split("the root shows ")[1]
    for private in ("exercises", "tests", ".git", "pyproject.toml"):
        assert f"'{private}'" not in shown, message
