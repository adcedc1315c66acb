"""The hostile corpus (``tests/grader/hostile/hostile_cases.py``) graded by ``autograde``.

Every case is one student of a tiny course; all of them are graded in one
``autograde grade`` run with two workers, once with the grader running as
root, once as an unprivileged user (see ``grader_user`` in
``tests/grader/hostile/as_user.py``) and once as root of a user namespace
that maps only that user (``unshare -Ur``, as in rootless Podman). Each must get exactly the score its honest
part deserves, with the right status per test; none may change anything
outside its own folder, and no process may outlive the run. Submissions
that are broken or hostile as *files* (not JSON, links, 100 MB) must each
get a recorded outcome without disturbing the others.

The run is bounded twice: the sandbox's own limits (CPU, memory,
processes, per-test timeouts), and around it a wall-clock timeout after
which this test kills the grader's whole process group.
"""

import csv
import hashlib
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
import tiny_course  # noqa: E402
from as_user import (course_dir, grader_user,  # noqa: E402,F401
                     grading_mode, run_grader, survivors)
from hostile_cases import (CASES, FILE_CASES, HIDDEN, LIMITS, PROBE_CASES,  # noqa: E402
                           PROBE_NOTEBOOK, REPO, TEST_TIMEOUT, make_submission,
                           probe_notebook)
from autograde.runner import STATUSES  # noqa: E402
from autograde.sandbox import UID_BASE  # noqa: E402

NOT_UTF8 = b"stud\xff"       # a student folder whose name is not UTF-8


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


MODES = ["root", "user", "userns"]


@pytest.fixture(scope="module", params=MODES)
def graded(request, grader_user):
    """``(course root, {student: report}, process, marker path, digests,
    mode)``, graded as root, as an unprivileged user or as root of a user
    namespace that maps only that user."""
    mode = request.param
    user, userns = grading_mode(request, grader_user)
    tmp = course_dir(request, user)
    root = tiny_course.write_course(tmp / "course")
    marker = tmp / "written-by-a-student.txt"
    for name, case in CASES.items():
        folder = root / "submitted" / name / tiny_course.ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(make_submission(case, root, marker), folder / tiny_course.NOTEBOOK)
        (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    correct = nbformat.writes(make_submission(CASES["correct"], root, marker))
    for name, case in FILE_CASES.items():
        case["make"](root / "submitted" / name / tiny_course.ASSIGNMENT, root, correct)
    odd = os.path.join(os.fsencode(root / "submitted"), NOT_UTF8, b"tiny")
    os.makedirs(odd)
    with open(os.path.join(odd, b"tiny.ipynb"), "w") as f:
        f.write(correct)
    # A stand-in gradebook: any write to it would change its digest.
    (root / "gradebook.db").write_bytes(b"not a real gradebook\n" * 100)
    if user is not None:
        user.give(tmp)
    before = {str(p): _digest(p) for p in root.rglob("*")
              if p.is_file() and not p.is_symlink()
              and p.stat().st_size < 2**20}
    proc = run_grader(user, root, "grade", tiny_course.ASSIGNMENT, "--workers", "2",
                      "--no-gradebook", "--quiet", *LIMITS, userns=userns)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = {}
    for path in (root / "reports" / tiny_course.ASSIGNMENT).glob("*.json"):
        res = json.loads(path.read_text())
        reports[res["student"]] = res
    uids = {nb["isolation"].get("uid") for r in reports.values() for nb in r["notebooks"]}
    left = survivors(user, uids - {None})
    return dict(root=root, reports=reports, proc=proc, marker=marker,
                before=before, mode=mode, left=left, user=user)


@pytest.mark.parametrize("student", list(CASES))
def test_hostile_case_gets_exactly_its_deserved_score(graded, student):
    expect = CASES[student]["expect"]
    res = graded["reports"][student]
    (nb,) = res["notebooks"]
    assert nb["isolation"]["namespaces"], nb["isolation"]
    statuses = {t["grade_id"]: t["status"] for t in nb["tests"]}
    assert res["score"] == expect["score"], (statuses, nb["cell_problems"])
    for gid, status in expect.get("status", {}).items():
        allowed = status if isinstance(status, tuple) else (status,)
        assert statuses[gid] in allowed, (gid, nb["tests"])
    assert bool(nb["tamper"]) == expect.get("tamper", False), nb["tamper"]


@pytest.mark.parametrize("student", list(FILE_CASES))
def test_a_broken_or_linked_submission_costs_only_itself(graded, student):
    from autograde.cli import outcome
    expect = FILE_CASES[student]["expect"]
    res = graded["reports"][student]
    status, flags = outcome(res)
    assert res["score"] == expect["score"], flags
    assert status == expect["outcome"], flags
    assert any(expect["reason"] in f for f in flags), flags
    # Every test still has a recorded status and reason.
    tests = [t for nb in res["notebooks"] for t in nb["tests"]]
    assert len(tests) == len(tiny_course.TESTS)
    assert all(t["status"] in STATUSES and (t["status"] == "passed") ==
               (t["message"] == "") for t in tests), tests


def test_links_are_reported_as_tampering_and_never_followed(graded):
    from autograde.cli import outcome
    for student in ("link_to_source", "folder_link", "extra_files"):
        _, flags = outcome(graded["reports"][student])
        assert any(f.startswith("tampering") and "link" in f for f in flags), flags
    # The solution behind the links earned nothing.
    assert graded["reports"]["link_to_source"]["score"] == 0
    assert graded["reports"]["hardlink_to_source"]["score"] == 0


def test_a_folder_name_that_is_not_utf8_gets_an_outcome(graded):
    from autograde.cli import outcome
    name = NOT_UTF8.decode("utf-8", "backslashreplace")
    status, flags = outcome(graded["reports"][name])
    assert status == "unreadable" and "UTF-8" in flags[0], flags
    assert name in graded["proc"].stdout


def test_the_summary_counts_and_lists_every_submission(graded):
    out = graded["proc"].stdout
    total = len(CASES) + len(FILE_CASES) + 1
    assert f"{total} submission(s): {total} graded, 0 skipped" in out, out[:500]
    for student in list(CASES) + list(FILE_CASES):
        assert any(line.split()[:1] == [student] for line in out.splitlines()), student


def test_every_test_of_every_case_has_a_status_and_a_reason(graded):
    root, reports = graded["root"], graded["reports"]
    odd = NOT_UTF8.decode("utf-8", "backslashreplace")
    assert set(reports) == set(CASES) | set(FILE_CASES) | {odd}
    with open(root / "reports" / tiny_course.ASSIGNMENT / "tests.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(reports) * len(tiny_course.TESTS)
    for row in rows:
        assert row["status"] in STATUSES
        assert (row["status"] == "passed") == (row["message"] == ""), row
        assert float(row["max_score"]) == tiny_course.TESTS[row["grade_id"]]


def test_tampering_is_named_in_the_csv(graded):
    with open(graded["root"] / "reports" / tiny_course.ASSIGNMENT / "tests.csv") as f:
        rows = {(r["student"], r["grade_id"]): r for r in csv.DictReader(f)}
    assert "test_affine_values" in rows[("deleted_test", "test_affine_values")]["tampering"]
    assert "metadata" in rows[("changed_metadata", "test_affine_shape")]["tampering"]
    assert rows[("correct", "test_scale")]["tampering"] == ""


def test_nothing_outside_the_submission_folder_changed(graded):
    root, marker = graded["root"], graded["marker"]
    assert not marker.exists()
    assert not (root / "pwned.txt").exists()
    for path, digest in graded["before"].items():
        assert _digest(path) == digest, f"{path} was changed during grading"


def test_reports_and_feedback_hold_no_hidden_test_code(graded):
    root = graded["root"]
    proc = run_grader(graded["user"], root, "feedback", tiny_course.ASSIGNMENT,
                      "--no-gradebook", timeout=120)
    # No nbgrader pages here (the gradebook is a stand-in): autograde says so,
    # and still writes its own page for every student.
    assert proc.returncode == 1 and "no nbgrader feedback page" in proc.stderr, proc.stderr
    reports = list((root / "reports" / tiny_course.ASSIGNMENT).glob("*.json"))
    pages = list((root / "reports" / tiny_course.ASSIGNMENT / "feedback").glob("*.html"))
    assert len(pages) == len(reports) > 0
    outputs = list((root / "reports").rglob("*")) + list((root / "feedback").rglob("*")) \
        + list((root / "autograded").rglob("*.ipynb"))
    assert len(outputs) > 2 * len(CASES)
    for path in outputs:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "default_rng(11)" not in text and "HIDDEN TESTS" not in text, path


def test_student_code_ran_in_namespaces_of_its_own_in_every_mode(graded):
    for student, res in graded["reports"].items():
        if student not in CASES:
            continue
        iso = res["notebooks"][0]["isolation"]
        assert iso["namespaces"] is True and iso["no_sandbox"] is False, iso
        if graded["mode"] == "root":
            assert iso["mode"] == "root" and iso["uid"] >= UID_BASE, iso
        else:
            assert iso["mode"] == "user-namespace" and iso["uid"] is None, iso
            assert iso["grader_uid"] == (0 if graded["mode"] == "userns"
                                         else graded["user"].uid)
    assert "isolation: " in graded["proc"].stdout


def test_no_student_process_survives_grading(graded):
    """The fork bomb and the double-forked daemon included."""
    assert graded["left"] == {}, graded["left"]


def test_an_infinite_loop_costs_one_full_test_timeout(graded):
    """Both affine tests hit the loop: the first gets the full limit, the
    second only the shorter limit after a timeout (2 s by default)."""
    tests = graded["reports"]["infinite_loop_answer"]["notebooks"][0]["tests"]
    first, second = tests[0]["message"], tests[1]["message"]
    assert f"within {TEST_TIMEOUT} s" in first and "within 2 s" in second


def test_the_repository_behind_the_grader_is_out_of_reach(graded):
    """The grader is installed from this repository (editable), which holds
    the real course's hidden tests: the student process can read none of
    them, by absolute path or relative to ``d2lblocks.__file__``, and sees
    no more of the repository root than Python's own files."""
    nb = graded["reports"]["repository_hunt"]["notebooks"][0]
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


# ---- a search of the whole file system ------------------------------------------------
SEARCH = """
import os
NEEDLE = "rng.integers(-5, 5, " + "(4, 3))"
OTHERS = ("other_student_" + "one", "other_student_" + "two")
FOUND, SEEN = [], 0
for top, dirs, files in os.walk("/"):
    # nbgrader's own package holds sample gradebooks and submissions.
    if top in ("/proc", "/sys", "/dev") or top.endswith("site-packages/nbgrader"):
        dirs[:] = []
        continue
    for name in dirs + files:
        path = os.path.join(top, name)
        if name in ("gradebook.db", "submitted", "exercises", "hostile_cases.py") \\
                or name in OTHERS or "written-by-a-student" in name:
            FOUND.append(path)
    for name in files:
        SEEN += 1
        if not name.endswith((".ipynb", ".db", ".json", ".csv")):
            continue
        path = os.path.join(top, name)
        try:
            with open(path, "rb") as f:
                text = f.read(2 * 2**20).decode(errors="ignore")
        except OSError:
            continue
        if NEEDLE in text:
            FOUND.append(path)
def affine(X, W, b):
    return X @ W + b
"""
REPORT = 'raise LookupError(f"searched {SEEN} files; found {len(FOUND)}: {FOUND[:10]}")'


@pytest.fixture(scope="module", params=MODES)
def searched(request, grader_user):
    """One submission walks the whole file system looking for hidden
    tests, the gradebook and other submissions; graded in each mode."""
    user, userns = grading_mode(request, grader_user)
    tmp = course_dir(request, user)
    root = tiny_course.write_course(tmp / "course")
    case = dict(base="correct", cells={"affine_answer": SEARCH},
                extra={"affine_answer": REPORT})
    for name in ("searcher", "other_student_one", "other_student_two"):
        folder = root / "submitted" / name / tiny_course.ASSIGNMENT
        folder.mkdir(parents=True)
        nb = make_submission(case if name == "searcher" else CASES["correct"],
                             root, tmp / "x")
        nbformat.write(nb, folder / tiny_course.NOTEBOOK)
    (root / "gradebook.db").write_bytes(b"not a real gradebook\n")
    if user is not None:
        user.give(tmp)
    proc = run_grader(user, root, "grade", tiny_course.ASSIGNMENT, "--workers", "1",
                      "--no-gradebook", "--quiet", "--student", "searcher",
                      "--cell-timeout", "240", "--budget", "400", userns=userns)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((root / "reports" / tiny_course.ASSIGNMENT /
                         "searcher.json").read_text())
    return report["notebooks"][0]


def test_a_whole_file_system_search_finds_no_test_gradebook_or_submission(searched):
    assert searched["isolation"]["namespaces"], searched["isolation"]
    (problem,) = searched["cell_problems"]
    message = problem["message"]
    assert message.startswith("LookupError: searched "), message
    seen = int(message.split()[2])
    assert seen > 1000, message          # it did walk the system's files
    assert "found 0: []" in message, message


# ---- attacks on the test's view of the student's kernel --------------------------
@pytest.fixture(scope="module", params=MODES)
def probed(request, grader_user):
    """``(course root, {student: report}, digests before)`` of the probe
    course (``PROBE_CASES``), graded in each mode."""
    user, userns = grading_mode(request, grader_user)
    tmp = course_dir(request, user)
    root = tmp / "course"
    (root / "source" / "probe").mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "probe"\n')
    nbformat.write(probe_notebook(), root / "source" / "probe" / PROBE_NOTEBOOK)
    for name, case in PROBE_CASES.items():
        folder = root / "submitted" / name / "probe"
        folder.mkdir(parents=True)
        answer = case["answer"].replace("{COURSE}", str(root))
        nbformat.write(probe_notebook(answer), folder / PROBE_NOTEBOOK)
    (root / "gradebook.db").write_bytes(b"not a real gradebook\n" * 100)
    if user is not None:
        user.give(tmp)
    before = {str(p): _digest(p) for p in root.rglob("*") if p.is_file()}
    proc = run_grader(user, root, "grade", "probe", "--workers", "2",
                      "--no-gradebook", "--quiet", *LIMITS, userns=userns)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    reports = {}
    for path in (root / "reports" / "probe").glob("*.json"):
        res = json.loads(path.read_text())
        reports[res["student"]] = res
    uids = {nb["isolation"].get("uid") for r in reports.values() for nb in r["notebooks"]}
    return dict(root=root, reports=reports, before=before,
                left=survivors(user, uids - {None}))


@pytest.mark.parametrize("student", list(PROBE_CASES))
def test_probe_case_gets_exactly_its_deserved_score(probed, student):
    expect = PROBE_CASES[student]["expect"]
    (nb,) = probed["reports"][student]["notebooks"]
    statuses = {t["grade_id"]: (t["status"], t["message"][:200]) for t in nb["tests"]}
    assert nb["score"] == expect["score"], (statuses, nb["cell_problems"])
    for gid, status in expect.get("status", {}).items():
        allowed = status if isinstance(status, tuple) else (status,)
        assert statuses[gid][0] in allowed, (gid, statuses[gid])
    # A person is asked to look only where a kernel's verdict would have
    # come from the student's own object (a lying __eq__), never for the
    # grader's limits.
    manual = [t["flag"] for t in nb["tests"] if t.get("needs_manual")]
    assert bool(manual) == expect.get("manual", False), statuses
    assert all("comparing a student object" in m for m in manual), manual


def test_probes_changed_nothing_outside_their_folder_and_left_no_process(probed):
    root = probed["root"]
    for path, digest in probed["before"].items():
        assert _digest(path) == digest, f"{path} was changed during grading"
    assert not probed["left"], probed["left"]
    # The link to the gradebook was never read: its text is in no output.
    for path in (root / "reports").rglob("*.json"):
        assert "not a real gradebook" not in path.read_text()
