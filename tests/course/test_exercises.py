"""The nbgrader course in ``exercises/``, run the way an instructor runs it.

One fixture copies the course to a temporary folder and runs the pipeline
of ``exercises/instructor_demo.py`` there with the nbgrader command line:
generate_assignment, the sample submissions of
``tests/submissions/samples.py``, autograde, generate_feedback, export
(``layers_by_nbgrader`` in ``tests/conftest.py``, shared with the
comparison of ``grader/test_autograde_nbgrader.py``). The tests then read
the release, the gradebook, the feedback HTML and ``grades.csv``. Nothing
is written inside the repository. Each graded copy is built once, by the
tests of one xdist group (``ON_COURSE``, ``ON_CYCLE``, and one group per
other assignment, set by the ``unit`` fixture).

``layers_and_blocks`` is checked in detail, cell by cell. Every other
assignment found in ``exercises/source`` is checked by the tests at the
end of this file (one more graded copy of the course, shared by them):
full marks for the solutions, zero for the release, the expected total
of each sample of ``tests/submissions/<assignment>.py``, the same scores
from autograde as from stock nbgrader, and no hidden test in the release
or the feedback.
"""

import csv
import os
import sys
import html
import importlib.util
import re
import shutil
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXERCISES = ROOT / "exercises"
ASSIGNMENT = "layers_and_blocks"
SOURCE = EXERCISES / "source" / ASSIGNMENT

NOTEBOOKS = ("ex1_sequential", "ex2_parallel", "ex3_factory")

# Expected automatic scores: test points per exercise (out of 9, 10, 8)
# and the test cells that must score 0 (every other test cell gets its
# full points). The written answer (2 points) is graded by hand.
EX1_TESTS = ["test_seq_forward", "test_seq_parameters", "test_seq_initialize",
             "test_seq_state_dict", "test_seq_to", "test_seq_optimizer"]
EX2_TESTS = ["test_parallel_shape", "test_parallel_axis", "test_parallel_lazy",
             "test_parallel_params", "test_parallel_grad",
             "test_parallel_two_inputs", "test_parallel_batch_error"]
EX3_TESTS = ["test_factory_count", "test_factory_bad_n",
             "test_factory_independent", "test_factory_order",
             "test_factory_names", "test_factory_output"]
LIST_FAILS = ["test_seq_parameters", "test_seq_initialize",
              "test_seq_state_dict", "test_seq_to", "test_seq_optimizer"]

EXPECTED = {
    # student:          (ex1, ex2, ex3, test cells that fail)
    "correct":           (9, 10, 8, []),
    "blank":             (0, 0, 0, EX1_TESTS + EX2_TESTS + EX3_TESTS),
    "list_sequential":   (2, 10, 8, LIST_FAILS),
    "deleted_test":      (2, 10, 8, LIST_FAILS),
    "repeated_instance": (9, 10, 2, ["test_factory_independent",
                                     "test_factory_order", "test_factory_names",
                                     "test_factory_output"]),
    "off_by_one":        (9, 10, 1, ["test_factory_count",
                                     "test_factory_independent",
                                     "test_factory_order", "test_factory_names",
                                     "test_factory_output"]),
    "parallel_axis0":    (9, 3, 8, ["test_parallel_shape", "test_parallel_axis",
                                    "test_parallel_lazy", "test_parallel_grad",
                                    "test_parallel_two_inputs"]),
    "no_batch_check":    (9, 9, 8, ["test_parallel_batch_error"]),
    "warns":             (9, 10, 8, []),
}


def graded(group):
    """Marks a test of one graded copy of the course: slow, and in the
    pytest-xdist group that builds that copy (one worker builds it once,
    while another builds another copy)."""
    def mark(test):
        return pytest.mark.slow(pytest.mark.xdist_group(group)(test))
    return mark


# ``layers-nbgrader`` also holds ``grader/test_autograde_nbgrader.py``,
# which compares autograde with the same stock grading.
ON_COURSE = graded("layers-nbgrader")
ON_CYCLE = graded("exercises-cycle")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _load("instructor_demo", EXERCISES / "instructor_demo.py")
samples = _load("layers_samples", ROOT / "tests" / "submissions" / "samples.py")


def _source_cells():
    """``{notebook stem: [cells]}`` of the committed source notebooks."""
    return {stem: nbformat.read(SOURCE / f"{stem}.ipynb", as_version=4).cells
            for stem in NOTEBOOKS}


def _assignment_cells(assignment):
    """``{notebook stem: [cells]}`` of every source notebook of
    ``assignment``."""
    folder = EXERCISES / "source" / assignment
    return {path.stem: nbformat.read(path, as_version=4).cells
            for path in sorted(folder.glob("*.ipynb"))}


def _points():
    """``{grade_id: points}`` of every graded cell."""
    return {c.metadata.nbgrader["grade_id"]: c.metadata.nbgrader["points"]
            for cells in _source_cells().values() for c in cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def _hidden_lines(assignment=ASSIGNMENT):
    """Distinctive lines of the hidden tests (not also in a visible part)."""
    hidden, visible = set(), set()
    for cells in _assignment_cells(assignment).values():
        for cell in cells:
            inside = False
            for line in cell.source.splitlines():
                text = line.strip()
                if text == "### BEGIN HIDDEN TESTS":
                    inside = True
                elif text == "### END HIDDEN TESTS":
                    inside = False
                elif inside:
                    hidden.add(text)
                else:
                    visible.add(text)
    # a hidden line that is part of a visible one (an assert without its
    # message, a continuation line) would be found in the release anyway
    shown = "\n".join(visible)
    return {line for line in hidden - visible
            if len(line) >= 12 and line not in shown}


def _html_text(path):
    raw = re.sub(r"<[^>]+>", "", Path(path).read_text(encoding="utf-8"))
    return html.unescape(raw)


@pytest.fixture(scope="module")
def course(layers_by_nbgrader):
    """A copy of the course graded by stock nbgrader (the one
    ``layers_by_nbgrader`` of ``tests/conftest.py`` makes): ``(path,
    {step: process})``."""
    path, _, students, logs = layers_by_nbgrader
    assert sorted(students) == sorted(EXPECTED)
    return path, logs


@pytest.fixture(scope="module")
def scores(course):
    return demo.read_scores(course[0])


# ---- the source notebooks ---------------------------------------------------


def test_cells_carry_nbgrader_metadata():
    seen = set()
    for stem, cells in _source_cells().items():
        for cell in cells:
            meta = cell.metadata.get("nbgrader")
            if meta is None:        # a free scratch cell
                assert cell.cell_type == "code" and cell.source.startswith("#")
                continue
            assert meta["schema_version"] == 3
            assert meta["grade_id"] not in seen, meta["grade_id"]
            seen.add(meta["grade_id"])
            if meta["grade"] and cell.cell_type == "code":
                # a locked test cell with points, a named check, hidden tests
                assert meta["locked"] and meta["points"] > 0
                assert cell.source.startswith("# Test: ")
                assert cell.source.count("### BEGIN HIDDEN TESTS") == 1
            if meta["solution"]:
                assert not meta["locked"]
                assert "### BEGIN SOLUTION" in cell.source
    points = _points()
    totals = [sum(points[g] for g in tests)
              for tests in (EX1_TESTS, EX2_TESTS, EX3_TESTS)]
    assert totals == [9, 10, 8]
    assert points["list_answer"] == 2
    assert set(points) == set(EX1_TESTS + EX2_TESTS + EX3_TESTS + ["list_answer"])


def test_config_avoids_the_known_traps():
    from nbgrader.preprocessors import ClearHiddenTests
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py",
                                path=str(EXERCISES)).load_config()
    assert 0 < config.Execute.timeout <= 20
    assert "root" not in config.CourseDirectory      # the cwd is the root
    assert config.OverwriteCells.add_missing_cells is True
    # nbgrader's, or a subclass of it (ours only silences a warning)
    assert any(issubclass(step, ClearHiddenTests)
               for step in config.GenerateFeedback.preprocessors)
    assert config.IgnorePattern.enabled is True
    pattern = re.compile(config.IgnorePattern.pattern)
    warning = ("/tmp/ipykernel_7/3.py:5: DeprecationWarning: old name\n"
               "  warnings.warn(\n")
    assert pattern.search(warning)
    assert pattern.search("x.py:1: UserWarning: diagnose found a problem\n")
    assert not pattern.search("Traceback (most recent call last):\n"
                              "ValueError: batch sizes differ\n")


@ON_COURSE
def test_samples_refuse_unknown_cells(course):
    with pytest.raises(KeyError, match="no_such_cell"):
        samples.write_all(course[0], {"x": {"base": "correct",
                                            "cells": {"no_such_cell": ""}}})


def _failing_cells(stem, replacement):
    """Run a source notebook's code cells in-process, with the solution
    cells in ``replacement`` swapped; returns the test cells that raise."""
    namespace, failing = {}, []
    for cell in _source_cells()[stem]:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta:
            continue
        gid = meta["grade_id"]
        code = replacement.get(gid, cell.source)
        try:
            exec(compile(code, gid, "exec"), namespace)
        except Exception:
            failing.append(gid)
    return failing


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_other_correct_answers_pass_every_test(stem):
    assert _failing_cells(stem, samples.OTHER_CORRECT) == []


def test_reversed_factory_fails_order_and_output():
    failing = _failing_cells("ex3_factory",
                             {"factory_functions": samples.FACTORY_REVERSED})
    assert failing == ["test_factory_order", "test_factory_output"]


# ---- release and validation ------------------------------------------------
@ON_COURSE
def test_release_has_no_solution_and_no_hidden_test(course):
    path, _ = course
    release = path / "release" / ASSIGNMENT
    assert sorted(p.stem for p in release.glob("*.ipynb")) == list(NOTEBOOKS)
    text = "\n".join(p.read_text(encoding="utf-8")
                     for p in release.glob("*.ipynb"))
    for marker in ("BEGIN SOLUTION", "HIDDEN TESTS", "Rubric", "Model answer"):
        assert marker not in text
    for line in _hidden_lines():
        assert line not in text, line
    source = "\n".join(p.read_text(encoding="utf-8")
                       for p in SOURCE.glob("*.ipynb"))
    for line in ("self._children[str(index)] = block",
                 "return db.concat([Y1, Y2], axis=self.axis)",
                 "return [factory() for _ in range(n)]"):
        assert line in source and line not in text, line
    # two stubs per exercise: each method or function to write
    assert text.count("raise NotImplementedError()") == 6


@ON_COURSE
def test_validate_passes_on_source_and_fails_on_release(course):
    from nbgrader.validator import Validator

    path, _ = course
    for stem in NOTEBOOKS:
        source = Validator().validate(str(path / "source" / ASSIGNMENT / f"{stem}.ipynb"))
        assert source == {}, f"{stem}: the source should pass, got {source}"
        result = Validator().validate(str(path / "release" / ASSIGNMENT / f"{stem}.ipynb"))
        assert "failed" in result and len(result["failed"]) > 0, stem


# ---- autograding -----------------------------------------------------------
@ON_COURSE
def test_autograde_ran_cleanly(course):
    _, logs = course
    for step, proc in logs.items():
        assert proc.returncode == 0, step
        assert "| ERROR]" not in proc.stdout + proc.stderr, step
        # e.g. "Config option `display_data_priority` not recognized"
        assert "not recognized" not in proc.stdout + proc.stderr, step


@ON_COURSE
@pytest.mark.parametrize("student", list(EXPECTED))
def test_autograde_gives_the_expected_scores(scores, student):
    ex1, ex2, ex3, failing = EXPECTED[student]
    points = _points()
    per_nb = scores[student]
    assert sorted(per_nb) == list(NOTEBOOKS)
    totals = {}
    for stem, tests in zip(NOTEBOOKS, (EX1_TESTS, EX2_TESTS, EX3_TESTS)):
        cells = per_nb[stem]["cells"]
        for gid in tests:
            want = 0 if gid in failing else points[gid]
            assert cells[gid][:2] == (want, points[gid]), (student, gid, cells[gid])
        totals[stem] = per_nb[stem]["code"]
    assert totals == dict(zip(NOTEBOOKS, (ex1, ex2, ex3)))


@ON_COURSE
def test_written_answer_waits_for_a_person(scores):
    for student, per_nb in scores.items():
        score, max_score, needs_manual = per_nb["ex1_sequential"]["cells"]["list_answer"]
        assert max_score == 2
        if student == "blank":
            # an untouched answer is 0 without asking anyone
            assert (score, needs_manual) == (0, False)
        else:
            assert (score, needs_manual) == (None, True), student


@ON_COURSE
def test_deleted_test_cell_comes_back(course):
    log = course[1]["autograde"].stderr + course[1]["autograde"].stdout
    assert re.search(r"Missing grade cell test_seq_parameters", log)


@ON_COURSE
def test_a_warning_would_cost_points_without_ignore_pattern(course, tmp_path):
    # Same course and submission, graded once more with IgnorePattern off:
    # this shows the sample really prints a warning and the config matters.
    copy = tmp_path / "course"
    shutil.copytree(course[0], copy)
    demo.nbgrader(copy, "autograde", ASSIGNMENT, "--student", "warns",
                  "--force", "--IgnorePattern.enabled=False")
    nb = nbformat.read(copy / "autograded" / "warns" / ASSIGNMENT /
                       "ex2_parallel.ipynb", as_version=4)
    stderr = [o.text for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.get("name") == "stderr"]
    assert any("DeprecationWarning" in text for text in stderr)
    assert demo.read_scores(copy)["warns"]["ex2_parallel"]["code"] < 10


@ON_COURSE
def test_exchange_release_fetch_submit_collect(course, tmp_path):
    # The student's side of the README: fetch, submit; then collect.
    copy, student, exchange = (tmp_path / name for name in
                               ("course", "student", "exchange"))
    shutil.copytree(course[0], copy, ignore=shutil.ignore_patterns(
        "submitted", "autograded", "feedback"))
    student.mkdir()
    exchange.mkdir()
    where = f"--Exchange.root={exchange}"
    demo.nbgrader(copy, "release_assignment", ASSIGNMENT, where)
    demo.nbgrader(student, "fetch_assignment", ASSIGNMENT,
                  "--course", "d2lblocks", where)
    fetched = sorted(p.stem for p in (student / ASSIGNMENT).glob("*.ipynb"))
    assert fetched == list(NOTEBOOKS)
    demo.nbgrader(student, "submit", ASSIGNMENT, "--course", "d2lblocks", where)
    demo.nbgrader(copy, "collect", ASSIGNMENT, where)
    collected = list((copy / "submitted").glob(f"*/{ASSIGNMENT}"))
    assert len(collected) == 1
    assert sorted(p.stem for p in collected[0].glob("*.ipynb")) == list(NOTEBOOKS)
    assert (collected[0] / "timestamp.txt").exists()


# ---- feedback, export, report ----------------------------------------------
@ON_COURSE
def test_feedback_shows_scores_but_no_hidden_test(course):
    path, _ = course
    files = demo.feedback_files(path)
    assert len(files) == len(EXPECTED) * len(NOTEBOOKS)
    hidden = _hidden_lines()
    for file in files:
        text = _html_text(file)
        assert "HIDDEN TESTS" not in text, file
        leaked = [line for line in hidden if line in text]
        assert not leaked, (file, leaked[:3])
        assert "# Test: " in text and "Score:" in text
    # the failing student still learns which check failed and why
    text = _html_text(path / "feedback" / "off_by_one" / ASSIGNMENT /
                      "ex3_factory.html")
    assert "expected 4 blocks, got 3" in text


@ON_COURSE
def test_export_writes_grades_csv(course):
    path, _ = course
    with open(path / "grades.csv", newline="") as f:
        rows = {row["student_id"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(EXPECTED)
    for student, (ex1, ex2, ex3, _) in EXPECTED.items():
        row = rows[student]
        assert row["assignment"] == ASSIGNMENT
        # ungraded written answers count as 0 until someone grades them
        assert float(row["score"]) == ex1 + ex2 + ex3, student
        assert float(row["max_score"]) == 29


@ON_COURSE
def test_score_table_lists_every_student_and_exercise(scores):
    table = demo.format_table(scores)
    header = table.splitlines()[0].split()
    assert header == ["student", *NOTEBOOKS, "total"]
    lines = {line.split()[0]: line for line in table.splitlines()[2:]
             if line.split() and line.split()[0] in EXPECTED}
    assert set(lines) == set(EXPECTED)
    assert lines["blank"].split()[-1] == "0/29"
    assert "10/10" in lines["correct"] and lines["correct"].endswith("27/29 *")
    assert "3/10" in lines["parallel_axis0"]


def test_demo_outcome_lines_flag_a_score_that_differs_from_nbgrader():
    rows = [{"student": "ada", "grade_id": "t1", "status": "passed",
             "score": "2.0", "max_score": "2.0", "tampering": ""},
            {"student": "ada", "grade_id": "t2", "status": "failed",
             "score": "0.0", "max_score": "1.0",
             "tampering": "test cell t2 was edited"}]

    def scores(t2, written=(None, 2.0, True)):
        return {"ada": {"ex.ipynb": {"cells": {"t1": (2.0, 2.0, False),
                                               "t2": (t2, 1.0, False),
                                               "answer": written}}}}
    # a written answer graded by hand on one side only is no disagreement
    agree = demo.format_outcomes(rows, scores(0.0), scores(0.0, (1.5, 2.0, False)))
    assert "2/3" in agree and "same as nbgrader" in agree
    assert "1 failed, 1 passed" in agree and "tampering: test cell t2 was edited" in agree
    assert "DIFFERS from nbgrader" in demo.format_outcomes(rows, scores(1.0), scores(0.0))


# ---- the whole cycle of make demo: exchange, autograde, feedback ---------------
@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    """``make demo`` for ``layers_and_blocks`` without the stock-nbgrader
    comparison, in a temporary folder: ``(folder, printed text)``. (The
    other assignments' grading is checked by the ``unit`` fixture.)"""
    import contextlib
    import io
    base = tmp_path_factory.mktemp("cycle") / "demo"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert demo.main(["--dir", str(base), "--no-compare",
                          "--assignment", ASSIGNMENT]) == 0
    return base, out.getvalue()


def _fetched(base, student, stem):
    pages = sorted((base / "students" / student / ASSIGNMENT / "feedback")
                   .glob(f"*/{stem}.html"))
    assert len(pages) == 1, (student, stem, pages)
    return _html_text(pages[0])


@ON_CYCLE
def test_demo_says_what_each_step_does(cycle):
    _, text = cycle
    steps = re.findall(r"^\[(\d+)/9\] (\w[\w ]*):", text, re.M)
    assert [int(n) for n, _ in steps] == list(range(1, 10))
    for command in ("nbgrader generate_assignment", "nbgrader release_assignment",
                    "nbgrader collect", "autograde grade", "nbgrader generate_feedback",
                    "autograde feedback", "nbgrader release_feedback"):
        assert command in text, command
    # the per-student table: every student, their total, the pages fetched
    table = {line.split()[0]: line for line in text.splitlines()
             if line.split() and line.split()[0] in EXPECTED}
    assert set(table) == set(EXPECTED)
    assert re.search(r"29/29\s+3 pages$", table["correct"])
    assert "9/9 + 1.5/2" in table["no_batch_check"]
    # the hint works without the virtualenv active, and as root
    hint = text.strip().splitlines()[-1]
    assert "PATH=" in hint and str(Path(sys.executable).parent) in hint
    assert ("--allow-root" in hint) == (os.geteuid() == 0)


@ON_CYCLE
def test_students_fetch_autogrades_reasons_inside_their_feedback(cycle):
    base, _ = cycle
    for student in EXPECTED:
        for stem in NOTEBOOKS:
            text = _fetched(base, student, stem)
            assert "autograde: why each test passed or failed" in text
            assert "Score:" in text                 # nbgrader's own part
            leaked = [line for line in _hidden_lines() if line in text]
            assert not leaked, (student, stem, leaked[:3])
    text = _fetched(base, "off_by_one", "ex3_factory")
    assert "expected 4 blocks, got 3" in text
    assert "it was called 2 times" in text


@ON_CYCLE
def test_feedback_shows_the_hand_grade(cycle):
    base, _ = cycle
    text = _fetched(base, "no_batch_check", "ex1_sequential")
    assert "Score of this notebook now: 10.5 / 11" in text
    assert re.search(r"list_answer\s*1\.5 / 2\s*graded by hand", text)
    assert "Say which methods miss the blocks." in text
    blank = _fetched(base, "blank", "ex1_sequential")
    assert re.search(r"list_answer\s*0 / 2\s*left blank", blank)


@ON_CYCLE
def test_autograde_feedback_replaces_its_section_when_run_again(cycle):
    base, _ = cycle
    course = base / "course"
    demo.hand_grade(course)        # nothing is waiting any more: no change
    page = course / "feedback" / "correct" / ASSIGNMENT / "ex2_parallel.html"
    demo.nbgrader(course, "feedback", ASSIGNMENT, tool="autograde")
    text = page.read_text(encoding="utf-8")
    assert text.count("autograde: why each test passed or failed") == 1
    for name in ("timestamp.txt", "submission_secret.txt"):
        assert (page.parent / name).exists(), name


@ON_CYCLE
def test_autograde_feedback_asks_for_nbgrader_feedback_first(cycle, tmp_path):
    copy = tmp_path / "course"
    shutil.copytree(cycle[0] / "course", copy)
    shutil.rmtree(copy / "feedback")
    proc = demo.nbgrader(copy, "feedback", ASSIGNMENT, tool="autograde",
                         check=False)
    assert proc.returncode == 1
    assert "nbgrader generate_feedback layers_and_blocks --force" in proc.stderr


# ---- autograde check, a student's self-check ---------------------------------
@ON_COURSE
def test_check_names_empty_answers_and_visible_test_points(course):
    proc = demo.nbgrader(course[0] / "release" / ASSIGNMENT, "check",
                         "ex1_sequential.ipynb", tool="autograde", check=False)
    assert proc.returncode == 1
    out = proc.stdout
    assert "[visible tests of a 2-point cell]" in out
    assert "hidden tests" in out
    assert re.search(r"EMPTY\s+written answer list_answer \(2 points", out)
    assert "0 of 6 test cells passed their visible tests; " \
           "1 written answer still empty" in out


def test_messages_say_one_time_not_one_times():
    from autograde.feedback import count, plain_counts
    assert plain_counts("it was called 1 times") == "it was called 1 time"
    assert plain_counts("called 11 times, 2.1 times") == "called 11 times, 2.1 times"
    assert (count(1, "test"), count(0, "test")) == ("1 test", "0 tests")


# ---- every other assignment of the course ------------------------------------
COURSE = demo.course_order()
OTHERS = [name for name in COURSE if name != ASSIGNMENT]
# The assignments of the unit in teaching order: one per section of the
# book's chapter on builders' tools.
TEACHING_ORDER = ["layers_and_blocks", "parameter_management",
                  "parameter_initialization", "lazy_initialization",
                  "custom_layers", "file_io", "devices"]


def _grade_points(assignment):
    """``{grade_id: (points, kind)}`` of every graded cell, ``kind``
    being "code" (a test cell) or "markdown" (a written answer)."""
    return {c.metadata.nbgrader["grade_id"]:
            (c.metadata.nbgrader["points"], c.cell_type)
            for cells in _assignment_cells(assignment).values() for c in cells
            if c.metadata.get("nbgrader", {}).get("grade")}


@pytest.fixture(scope="module", params=[
    pytest.param(name, id=name, marks=[pytest.mark.slow,
                                       pytest.mark.xdist_group(f"exercises-{name}")])
    for name in OTHERS])
def unit(request, tmp_path_factory):
    """One assignment other than ``layers_and_blocks``, released, answered
    by its samples, and graded twice: ``(assignment, stock nbgrader copy,
    autograde copy, {step: process})``. Each assignment is an xdist group
    of its own, so that two workers grade two assignments at once."""
    name = request.param
    tmp = tmp_path_factory.mktemp(f"unit-{name}")
    stock = demo.copy_course(tmp / "stock")
    logs = {"generate_assignment": demo.release(stock, name)}
    demo.submit_samples(stock, name)
    ours = tmp / "ours"
    shutil.copytree(stock, ours)
    logs["autograde"] = demo.nbgrader(stock, "autograde", name)
    logs["generate_feedback"] = demo.nbgrader(stock, "generate_feedback", name)
    logs["autograde grade"] = demo.nbgrader(ours, "grade", name, "--quiet",
                                            tool="autograde")
    return name, stock, ours, logs


def test_config_lists_every_assignment_in_teaching_order():
    from traitlets.config.loader import PyFileConfigLoader
    namespace = {"get_config": lambda: PyFileConfigLoader(
        "nbgrader_config.py", path=str(EXERCISES)).load_config()}
    exec(compile((EXERCISES / "nbgrader_config.py").read_text(encoding="utf-8"),
                 "nbgrader_config.py", "exec"), namespace)
    assert namespace["COURSE_ORDER"] == TEACHING_ORDER
    folders = {p.name for p in (EXERCISES / "source").iterdir() if p.is_dir()}
    assert folders <= set(TEACHING_ORDER), folders - set(TEACHING_ORDER)
    # the demo plays them in that order, skipping none that exists
    assert COURSE == [name for name in TEACHING_ORDER if name in folders]


def test_the_unit_has_a_written_answer_graded_by_hand():
    written = [gid for name in COURSE
               for gid, (_, kind) in _grade_points(name).items()
               if kind == "markdown"]
    assert len(written) >= 2, written


@pytest.mark.parametrize("assignment", OTHERS)
def test_assignment_marks_are_consistent(assignment):
    cells = _assignment_cells(assignment)
    assert len(cells) >= 2, f"{assignment}: expected 2 or 3 exercises"
    import notebook_tools
    assert notebook_tools.nbgrader_problems(
        {f"{stem}.ipynb": nbformat.from_dict({"cells": c, "metadata": {},
                                              "nbformat": 4, "nbformat_minor": 5})
         for stem, c in cells.items()}) == []
    hidden = [c for nb in cells.values() for c in nb
              if "### BEGIN HIDDEN TESTS" in c.source]
    assert len(hidden) >= 2, f"{assignment}: hidden tests in several cells"


def test_assignment_grading_ran_cleanly(unit):
    for step, proc in unit[3].items():
        assert proc.returncode == 0, step
        assert "| ERROR]" not in proc.stdout + proc.stderr, step


def test_assignment_release_has_no_solution_and_no_hidden_test(unit):
    assignment, stock, _, _ = unit
    release = stock / "release" / assignment
    assert sorted(p.stem for p in release.glob("*.ipynb")) == \
        sorted(_assignment_cells(assignment))
    text = "\n".join(p.read_text(encoding="utf-8") for p in release.glob("*.ipynb"))
    for marker in ("BEGIN SOLUTION", "HIDDEN TESTS"):
        assert marker not in text
    leaked = [line for line in _hidden_lines(assignment) if line in text]
    assert not leaked, leaked[:3]


def test_assignment_samples_get_their_expected_scores(unit):
    assignment, stock, _, _ = unit
    expected = demo.load_samples().load(assignment).EXPECTED
    points = _grade_points(assignment)
    full = sum(p for p, kind in points.values() if kind == "code")
    assert {"correct", "blank"} <= set(expected) and len(expected) >= 3
    # the solutions get full marks and the untouched release nothing
    assert expected["correct"] == full and expected["blank"] == 0
    scores = demo.read_scores(stock, assignment)
    assert set(scores) == set(expected)
    got = {student: sum(nb["code"] for nb in per.values())
           for student, per in scores.items()}
    assert got == expected
    assert all(per[stem]["max_code"] > 0 for per in scores.values()
               for stem in per)


def test_assignment_autograde_agrees_with_stock_nbgrader(unit):
    assignment = unit[0]
    stock = demo.read_scores(unit[1], assignment)
    ours = demo.read_scores(unit[2], assignment)
    assert set(stock) == set(ours)
    for student in stock:
        for stem, nb in stock[student].items():
            mine = ours[student][stem]["cells"]
            for gid, (score, max_score, manual) in nb["cells"].items():
                assert mine[gid][:2] == (score, max_score), (student, stem, gid)
                assert mine[gid][2] == manual, (student, stem, gid)


def test_assignment_feedback_hides_the_hidden_tests(unit):
    assignment, stock, _, _ = unit
    files = demo.feedback_files(stock, assignment)
    students = demo.load_samples().load(assignment).EXPECTED
    assert len(files) == len(students) * len(_assignment_cells(assignment))
    hidden = _hidden_lines(assignment)
    for file in files:
        text = _html_text(file)
        assert "HIDDEN TESTS" not in text, file
        leaked = [line for line in hidden if line in text]
        assert not leaked, (file, leaked[:3])


def test_demo_refuses_an_unknown_assignment_before_copying(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        demo.main(["--dir", str(tmp_path / "demo"), "--assignment", "no_such"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "no assignment no_such" in err and "layers_and_blocks" in err
    assert not (tmp_path / "demo").exists()
