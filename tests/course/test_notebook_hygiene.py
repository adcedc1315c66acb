"""The committed notebooks are clean sources: valid, without outputs, with
stable ids and the python3 kernel, in Jupyter's own formatting, and (for
the exercises) with nbgrader marks that agree with each other.

A failure here usually means a notebook was saved after running it: run
``python tests/notebook_tools.py`` and commit the result.
"""

import copy

import nbformat
import pytest

import notebook_tools as tools

NOTEBOOKS = tools.all_notebooks()
IDS = [p.relative_to(tools.ROOT).as_posix() for p in NOTEBOOKS]
ASSIGNMENTS = tools.exercise_notebooks()


def test_every_kind_of_notebook_is_found():
    assert len(tools.chapter_notebooks()) >= 6
    assert ASSIGNMENTS
    assert all(len(paths) >= 1 for paths in ASSIGNMENTS.values())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_is_clean(path):
    assert tools.file_problems(path) == []


@pytest.mark.parametrize("assignment", sorted(ASSIGNMENTS))
def test_exercise_marks_agree_with_each_other(assignment):
    notebooks = {p.name: tools.read(p) for p in ASSIGNMENTS[assignment]}
    assert tools.nbgrader_problems(notebooks) == []


def test_the_cleaner_has_nothing_to_do_on_the_committed_notebooks(capsys):
    assert tools.main(["--check", *map(str, NOTEBOOKS)]) == 0
    assert capsys.readouterr().out == ""


# ---- the checks themselves --------------------------------------------------
def sample():
    """A clean two-cell notebook with a claim, a tag and an nbgrader mark."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": dict(tools.KERNELSPEC),
                   "language_info": dict(tools.LANGUAGE_INFO)}
    nb.cells = [nbformat.v4.new_markdown_cell("Shape `(2, 3)`.", id="intro"),
                nbformat.v4.new_code_cell("print((2, 3))", id="shape")]
    nb.cells[1].metadata.update(expect=["(2, 3)"], tags=["timing"])
    return nb


def dirty():
    """:func:`sample` as JupyterLab saves it after running it."""
    nb = sample()
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.9",
                                    "mimetype": "text/x-python"}
    nb.metadata["kernelspec"] = {"name": "other", "display_name": "Other",
                                 "language": "python"}
    nb.metadata["widgets"] = {}
    code = nb.cells[1]
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", text="(2, 3)\n")]
    code.metadata.update(collapsed=False, execution={"iopub.status.busy": "x"})
    nb.cells[0].metadata["tags"] = []
    return nb


def test_a_clean_sample_has_no_problems():
    assert tools.cleanliness_problems(sample()) == []


def test_every_kind_of_dirt_is_reported():
    problems = " | ".join(tools.cleanliness_problems(dirty()))
    for words in ("has outputs", "execution count 3", "collapsed", "execution",
                  "widgets", "kernelspec should be", "language_info",
                  "empty tag list"):
        assert words in problems


def test_missing_and_repeated_ids_are_reported():
    nb = sample()
    nb.cells[1]["id"] = "intro"
    assert tools.cleanliness_problems(nb) == ["cell 1 repeats the id 'intro'"]
    del nb.cells[1]["id"]
    assert tools.cleanliness_problems(nb) == ["cell 1 has no id"]


def test_clean_keeps_content_ids_claims_tags_and_marks():
    nb = dirty()
    nb.cells[0].metadata["nbgrader"] = {"grade_id": "intro", "locked": True}
    before = [(c.id, c.cell_type, c.source) for c in nb.cells]
    tools.clean(nb)
    assert tools.cleanliness_problems(nb) == []
    assert [(c.id, c.cell_type, c.source) for c in nb.cells] == before
    assert nb.cells[1].metadata == {"expect": ["(2, 3)"], "tags": ["timing"]}
    assert nb.cells[0].metadata == {"nbgrader": {"grade_id": "intro",
                                                 "locked": True}}
    again = tools.clean(copy.deepcopy(nb))
    assert again == nb


def test_file_problems_reads_the_text_as_committed(tmp_path):
    path = tmp_path / "x.ipynb"
    path.write_text(tools.render(sample()), encoding="utf-8")
    assert tools.file_problems(path) == []
    # the same notebook, formatted differently than Jupyter saves it
    path.write_text(nbformat.writes(sample(), indent=2), encoding="utf-8")
    assert tools.file_problems(path) == ["not in Jupyter's formatting"]
    path.write_text('{"cells": 1}', encoding="utf-8")
    assert tools.file_problems(path)[0].startswith("not a valid notebook")


def test_the_command_cleans_files_in_place_and_check_only_reports(tmp_path,
                                                                  capsys):
    path = tmp_path / "x.ipynb"
    path.write_text(tools.render(dirty()), encoding="utf-8")
    assert tools.main(["--check", str(path)]) == 1
    assert "needs cleaning" in capsys.readouterr().out
    assert tools.file_problems(path) != []
    assert tools.main([str(path)]) == 0
    assert tools.file_problems(path) == []
    assert tools.main(["--check", str(path)]) == 0


# ---- nbgrader marks ---------------------------------------------------------
def marked(cell_type, source, grade_id, grade=False, solution=False,
           locked=False, points=None):
    """A cell with nbgrader metadata (schema version 3)."""
    make = (nbformat.v4.new_code_cell if cell_type == "code"
            else nbformat.v4.new_markdown_cell)
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return make(source, metadata={"nbgrader": meta})


def assignment():
    """One consistent exercise: text, a solution, a test, a written answer."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        marked("markdown", "Write f.", "intro", locked=True),
        marked("code", "def f():\n    ### BEGIN SOLUTION\n    return 1\n"
               "    ### END SOLUTION", "f", solution=True),
        marked("code", "# Test: f\nassert f() == 1\n### BEGIN HIDDEN TESTS\n"
               "assert f() + 1 == 2\n### END HIDDEN TESTS", "test_f",
               grade=True, locked=True, points=2),
        marked("markdown", "### BEGIN SOLUTION\nbecause\n### END SOLUTION",
               "answer", grade=True, solution=True, points=1),
        nbformat.v4.new_code_cell("# scratch"),
    ]
    return nb


def test_consistent_marks_have_no_problems():
    notebooks = {"a.ipynb": assignment(),
                 "b.ipynb": nbformat.v4.new_notebook()}
    assert tools.nbgrader_problems(notebooks) == []


def test_a_grade_id_used_twice_in_an_assignment_is_reported():
    other = nbformat.v4.new_notebook()
    other.cells = [marked("markdown", "Again.", "intro", locked=True)]
    (problem,) = tools.nbgrader_problems({"a.ipynb": assignment(),
                                          "b.ipynb": other})
    assert "'intro' is also used in a.ipynb cell 0" in problem


@pytest.mark.parametrize("change, words", [
    (lambda nb: nb.cells[2].metadata.nbgrader.update(points=0), "points > 0"),
    (lambda nb: nb.cells[0].metadata.nbgrader.update(points=3),
     "not graded"),
    (lambda nb: nb.cells[2].metadata.nbgrader.update(locked=False),
     "read-only"),
    (lambda nb: nb.cells[1].metadata.nbgrader.update(locked=True),
     "cannot be read-only"),
    (lambda nb: nb.cells[2].metadata.nbgrader.update(schema_version=2),
     "schema_version"),
    (lambda nb: nb.cells[2].metadata.nbgrader.update(grade="yes"),
     "true or false"),
    (lambda nb: setattr(nb.cells[1], "source",
                        nb.cells[1].source.replace("### END SOLUTION", "")),
     "END SOLUTION markers"),
    (lambda nb: setattr(nb.cells[0], "source",
                        "### BEGIN SOLUTION\nx\n### END SOLUTION"),
     "reach the students"),
    (lambda nb: setattr(nb.cells[4], "source",
                        "### BEGIN HIDDEN TESTS\nx\n### END HIDDEN TESTS"),
     "no nbgrader metadata"),
    (lambda nb: setattr(nb.cells[1], "source",
                        "### BEGIN HIDDEN TESTS\nx\n### END HIDDEN TESTS"),
     "hidden tests outside a test cell"),
    (lambda nb: setattr(nb.cells[2], "source",
                        nb.cells[2].source.replace("### END HIDDEN TESTS", "")),
     "END HIDDEN TESTS markers"),
])
def test_inconsistent_marks_are_reported(change, words):
    nb = assignment()
    change(nb)
    problems = tools.nbgrader_problems({"a.ipynb": nb})
    assert any(words in p for p in problems), problems


def test_marks_as_the_create_assignment_toolbar_writes_them_pass():
    # JupyterLab's toolbar also writes task, zero points on ungraded cells,
    # float points and the cell type.
    nb = assignment()
    nb.cells[0].metadata.nbgrader.update(task=False, points=0,
                                         cell_type="markdown")
    nb.cells[2].metadata.nbgrader.update(task=False, points=2.0,
                                         cell_type="code")
    assert tools.nbgrader_problems({"a.ipynb": nb}) == []
    assert tools.cleanliness_problems(tools.clean(nb)) == []
