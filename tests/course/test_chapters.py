"""The chapter notebooks: they run top to bottom without error and say in
prose what their cells print. (That they are committed clean is checked in
``test_notebook_hygiene.py``; the claims convention is described in
``notebook_tools.py``.)"""

import re
import sys

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

import notebook_tools as tools

NOTEBOOKS = tools.chapter_notebooks()
IDS = [p.stem for p in NOTEBOOKS]
_executed = {}


def executed(path):
    """The notebook at ``path`` after running it (each one runs once)."""
    if path not in _executed:
        _executed[path] = tools.execute(path)
    return _executed[path]


def make_notebook(cells):
    """A notebook of ``(kind, source, expect)`` cells; a code cell whose
    source starts with ``# timing`` gets the ``timing`` tag."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(tools.KERNELSPEC),
                   "language_info": dict(tools.LANGUAGE_INFO)}
    for kind, source, expect in cells:
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
            continue
        cell = nbformat.v4.new_code_cell(source)
        if expect is not None:
            cell.metadata["expect"] = expect
        if source.startswith("# timing"):
            cell.metadata["tags"] = [tools.TIMING_TAG]
        nb.cells.append(cell)
    return nb


def run_cells(tmp_path, cells):
    """Write a notebook of ``(kind, source, expect)`` cells and execute it."""
    path = tmp_path / "probe.ipynb"
    nbformat.write(make_notebook(cells), str(path))
    return tools.execute(path, timeout=30)


def printed(cells):
    """A notebook of ``(kind, source, expect)`` cells as if executed: each
    code cell's source is taken as the text it printed (no kernel runs)."""
    nb = make_notebook(cells)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text=cell.source)]
    return nb


# ---- what is committed ------------------------------------------------------
def test_chapters_are_numbered_in_reading_order():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) >= 6, names
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]
    assert names[0].startswith("01-sequential")
    assert names[5] == "06-summary-and-exercises.ipynb"


_ASSIGNMENT_NAMED = re.compile(r"nbgrader assignment\s+`(\w+)`")


def _closing_assignment(path):
    """The assignment that the last cell of a chapter points at, or None."""
    last = tools.read(path).cells[-1]
    found = _ASSIGNMENT_NAMED.findall(last.source) \
        if last.cell_type == "markdown" else []
    return found[0] if found else None


def test_each_assignment_is_pointed_at_by_the_chapter_that_ends_its_topic():
    assignments = {name: paths for name, paths in tools.exercise_notebooks().items()
                   if paths}
    pointed = {}
    for path in NOTEBOOKS[5:]:          # 06 closes part 5.1; each later one a topic
        name = _closing_assignment(path)
        assert name in assignments, f"{path.name} ends without naming its exercises"
        assert name not in pointed, f"{name} is named by {pointed[name]} and {path.name}"
        pointed[name] = path.name
        # every exercise notebook the chapter lists is in that assignment
        listed = set(re.findall(r"`(ex\d\w*\.ipynb)`", tools.read(path).cells[-1].source))
        assert listed == {p.name for p in assignments[name]}, (path.name, listed)
    assert set(pointed) == set(assignments)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapters_named_in_a_chapter_exist(path):
    text = " ".join(c.source for c in tools.read(path).cells
                    if c.cell_type == "markdown")
    names = set(re.findall(r"\b\d\d-[\w-]+\.ipynb", text))
    assert names <= {p.name for p in NOTEBOOKS}, names


def test_the_chapters_folder_shows_students_no_scripts():
    # JupyterLab's file panel on chapters/ is what students see; the
    # notebooks are their own source, with no generator beside them.
    assert list(tools.CHAPTERS.glob("*.py")) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_seeds_the_random_generator_first(path):
    code = [c.source for c in tools.read(path).cells if c.cell_type == "code"]
    assert "db.manual_seed(" in code[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_prose_shape_is_backed_by_an_expectation(path):
    assert tools.claim_problems(tools.read(path), executed=False) == []


# ---- running them -----------------------------------------------------------
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_top_to_bottom_and_outputs_match_the_prose(path):
    nb = executed(path)
    errors = [c for c in nb.cells if c.cell_type == "code" and any(
        o.output_type == "error" for o in c.outputs)]
    assert errors == []
    assert tools.claim_problems(nb) == []
    checked = sum(len(c.metadata.get("expect", [])) for c in nb.cells)
    assert checked >= 1, "every chapter should check at least one claim"


@pytest.mark.parametrize("name", ["02-custom-block", "05-efficiency"])
def test_plot_cells_produce_an_image(name):
    (path,) = [p for p in NOTEBOOKS if p.stem == name]
    images = [o for c in executed(path).cells if c.cell_type == "code"
              for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} shows no plot"


@pytest.mark.parametrize("name", ["02-custom-block", "04-forward-code"])
def test_notebook_prints_the_same_text_on_a_second_run(name):
    (path,) = [p for p in NOTEBOOKS if p.stem == name]
    first = [tools.cell_text_output(c) for c in executed(path).cells
             if c.cell_type == "code"]
    again = [tools.cell_text_output(c) for c in tools.execute(path).cells
             if c.cell_type == "code"]
    # Figures print their size only; text outputs must repeat exactly.
    assert first == again


# ---- the harness itself -----------------------------------------------------
def test_kernel_runs_with_this_python_environment(tmp_path):
    nb = run_cells(tmp_path, [("code", "import sys; print(sys.prefix)", None)])
    assert tools.cell_text_output(nb.cells[0]).strip() == sys.prefix


def test_a_failing_cell_fails_the_execution(tmp_path):
    with pytest.raises(CellExecutionError, match="ZeroDivisionError"):
        run_cells(tmp_path, [("code", "x = 1", None), ("code", "1 / 0", None),
                             ("code", "print('never')", None)])


def test_a_wrong_claim_is_detected(tmp_path):
    nb = run_cells(tmp_path, [
        ("code", "import d2lblocks as db", None),
        ("markdown", "The output has shape `(2, 11)`.", None),
        ("code", "print(db.rand(2, 10).shape)", ["(2, 11)"]),
        ("markdown", "And this one has shape `(3, 4)`.", None),
        ("code", "print(db.rand(3, 4).shape)", ["(3, 4)"]),
    ])
    problems = tools.claim_problems(nb)
    assert len(problems) == 1
    assert "'(2, 11)'" in problems[0] and "(2, 10)" in problems[0]


def test_prose_and_expectation_must_state_the_same_value():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("The shape is `(2, 10)`."),
                nbformat.v4.new_code_cell("print((2, 10))")]
    # The prose states a shape that no cell checks.
    assert any("does not expect" in p
               for p in tools.claim_problems(nb, executed=False))
    # The cell checks a value that the prose does not state.
    nb.cells[0].source = "The shape is `(2, 10)`."
    nb.cells[1].metadata["expect"] = ["(2, 10)", "7946"]
    problems = tools.claim_problems(nb, executed=False)
    assert problems == ["cell 1: expects '7946' but the markdown above does "
                        "not state it"]


def test_a_prose_shape_with_no_code_below_is_reported():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Finally `(4, 2)`.")]
    assert tools.claim_problems(nb, executed=False) != []


# ---- the kinds of mismatch the claims catch ---------------------------------
def test_a_shape_spelled_two_ways_must_be_named_both_ways():
    cells = [("markdown", "The weight has shape `(256, None)`.", None),
             ("code", "w (256, None)\nParameter(shape=(256, ?))",
              ["(256, None)"])]
    problems = tools.claim_problems(printed(cells))
    assert len(problems) == 1 and "(256, ?)" in problems[0]
    cells[0] = ("markdown", "The weight has shape `(256, None)`, printed "
                "`(256, ?)`.", None)
    cells[1] = (*cells[1][:2], ["(256, None)", "(256, ?)"])
    assert tools.claim_problems(printed(cells)) == []


def test_a_prose_shape_with_a_question_mark_is_checked_too():
    cells = [("markdown", "It prints `(256, ?)`.", None),
             ("code", "Parameter(shape=(256, 20))", ["(256, ?)"])]
    assert tools.claim_problems(printed(cells), executed=False) == []
    (problem,) = tools.claim_problems(printed(cells))
    assert "'(256, ?)'" in problem


ACCURACY = {"printed": "test accuracy {}", "between": [0.7, 0.9],
            "stated": "between 0.7 and 0.9"}


@pytest.mark.parametrize("value, ok", [("0.81", True), ("0.7", True),
                                       ("0.9", True), ("0.69", False),
                                       ("0.95", False)])
def test_a_number_must_lie_in_the_range_the_prose_states(value, ok):
    nb = printed([("markdown", "Accuracy lands between 0.7 and 0.9.", None),
                  ("code", f"loss 0.02\ntest accuracy {value}", [ACCURACY])])
    problems = tools.claim_problems(nb)
    assert (problems == []) == ok, problems
    if not ok:
        assert f"test accuracy {value}" in problems[0]


def test_an_open_range_names_its_one_bound():
    claim = {"printed": "loss {}", "between": [None, 0.1],
             "stated": "below 0.1"}
    nb = printed([("markdown", "The loss ends below 0.1.", None),
                  ("code", "loss 0.028", [claim])])
    assert tools.claim_problems(nb) == []
    nb.cells[1].outputs[0].text = "loss 0.25"
    assert "'loss 0.25'" in tools.claim_problems(nb)[0]


def test_a_range_the_prose_does_not_state_is_reported():
    # the prose says another range than the check uses
    nb = printed([("markdown", "Accuracy lands between 0.6 and 0.9.", None),
                  ("code", "test accuracy 0.81", [ACCURACY])])
    (problem,) = tools.claim_problems(nb, executed=False)
    assert "does not say it" in problem
    # the stated words do not name the checked bounds
    claim = dict(ACCURACY, stated="about 0.8")
    nb = printed([("markdown", "Accuracy is about 0.8.", None),
                  ("code", "test accuracy 0.81", [claim])])
    problems = tools.claim_problems(nb, executed=False)
    assert len(problems) == 2 and all("does not name" in p for p in problems)


@pytest.mark.parametrize("claim", [
    {"printed": "acc", "between": [0, 1], "stated": "0 to 1"},
    {"printed": "acc {}", "between": [None, None], "stated": "any"},
    {"printed": "acc {}", "between": [0.5], "stated": "0.5"},
    {"printed": "acc {}", "between": [0, 1]}])
def test_a_malformed_range_claim_says_what_it_needs(claim):
    nb = printed([("markdown", "acc", None), ("code", "acc 0.5", [claim])])
    (problem,) = tools.claim_problems(nb)
    assert "a range claim needs" in problem


@pytest.mark.parametrize("prose", [
    "A call takes several microseconds.", "About 20 ms per call.",
    "The arithmetic takes a fraction of a microsecond.",
    "It needs tens of microseconds, 14us here."])
def test_prose_above_a_timing_cell_states_no_amount_of_time(prose):
    nb = printed([("markdown", prose, None),
                  ("code", "# timing\nforward 14.2us", None)])
    problems = tools.claim_problems(nb, executed=False)
    assert problems and all("timing cell" in p for p in problems)


def test_prose_above_a_timing_cell_may_describe_without_amounts():
    nb = printed([("markdown", "A call costs many times its arithmetic; "
                   "the times are in microseconds per example.", None),
                  ("code", "# timing\nforward 14.2us", None)])
    assert tools.claim_problems(nb) == []


def test_a_cell_that_prints_times_must_be_tagged_timing():
    nb = printed([("markdown", "Some text.", None),
                  ("code", "forward 14.2us", None)])
    (problem,) = tools.claim_problems(nb)
    assert "14.2us" in problem and "'timing'" in problem


def test_a_claim_may_wrap_across_markdown_lines():
    nb = printed([("markdown", "Accuracy lands between\n0.7 and 0.9; it "
                   "prints `same:\nTrue`.", None),
                  ("code", "same: True\ntest accuracy 0.8",
                   [ACCURACY, "same: True"])])
    assert tools.claim_problems(nb) == []


# ---- the way course maintainers run notebooks in CI -------------------------
def test_nbmake_runs_a_chapter_as_ci_would(tmp_path):
    # `pytest --nbmake chapters/` uses only the notebook, its kernelspec and
    # the installed package: nothing of this harness. One chapter is enough
    # here; every chapter runs above through the same kernel.
    import subprocess
    (path,) = [p for p in NOTEBOOKS if p.stem == "07-parameters"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbmake", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
