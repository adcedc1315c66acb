"""The chapter notebooks: committed clean, equal to their generator, run
top to bottom without error, and say in prose what their cells print."""

import importlib.util
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


def load_generator():
    """Import ``chapters/build_notebooks.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", tools.CHAPTERS / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cells(tmp_path, cells):
    """Write a notebook of ``(kind, source, expect)`` cells and execute it."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3",
                                  "display_name": "Python 3",
                                  "language": "python"},
                   "language_info": {"name": "python"}}
    for kind, source, expect in cells:
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if expect is not None:
                cell.metadata["expect"] = expect
            nb.cells.append(cell)
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, str(path))
    return tools.execute(path, timeout=30)


# ---- what is committed --------------------------------------------------------
def test_chapters_are_numbered_in_reading_order():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) >= 6, names
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]
    assert names[0].startswith("01-sequential")
    assert "exercises" in names[-1]


def test_committed_notebooks_equal_what_the_generator_writes():
    built = load_generator().build()
    assert sorted(built) == [p.name for p in NOTEBOOKS]
    for name, text in built.items():
        committed = (tools.CHAPTERS / name).read_text(encoding="utf-8")
        assert committed == text, (f"{name} differs from build_notebooks.py; "
                                   f"run python chapters/build_notebooks.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_committed_without_outputs_and_with_clean_metadata(path):
    assert tools.cleanliness_problems(tools.read(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_seeds_the_random_generator_first(path):
    code = [c.source for c in tools.read(path).cells if c.cell_type == "code"]
    assert "db.manual_seed(" in code[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_every_prose_shape_is_backed_by_an_expectation(path):
    assert tools.claim_problems(tools.read(path), executed=False) == []


# ---- running them ----------------------------------------------------------------
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


# ---- the harness itself -------------------------------------------------------
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


def test_outputs_and_extra_metadata_are_not_clean():
    nb = tools.read(NOTEBOOKS[0])
    assert tools.cleanliness_problems(nb) == []
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    code.metadata["collapsed"] = True
    nb.metadata["widgets"] = {}
    problems = " | ".join(tools.cleanliness_problems(nb))
    for word in ("has outputs", "execution count", "collapsed", "widgets"):
        assert word in problems
