"""A tiny nbgrader course for the hostile-submission tests.

One notebook, ``tiny.ipynb``: a function ``affine(X, W, b)`` (two test
cells, 1 + 2 points), a block ``Scale`` (one test cell, 2 points) and a
written answer (1 point, graded by hand). Every test cell has a hidden
part, so a leak of the hidden tests would show.
"""

from pathlib import Path

import nbformat

ASSIGNMENT = "tiny"
NOTEBOOK = "tiny.ipynb"
POINTS = 5.0

SETUP = """\
import numpy as np
import d2lblocks as db
from d2lblocks import nn"""

AFFINE = """\
def affine(X, W, b):
    \"\"\"X @ W + b for NumPy arrays.\"\"\"
    ### BEGIN SOLUTION
    return X @ W + b
    ### END SOLUTION"""

SCALE = """\
class Scale(nn.Block):
    \"\"\"Multiplies its input by a fixed factor.\"\"\"

    def __init__(self, factor):
        super().__init__()
        ### BEGIN SOLUTION
        self.factor = factor
        ### END SOLUTION

    def forward(self, X):
        ### BEGIN SOLUTION
        return X * self.factor
        ### END SOLUTION"""

TEST_SHAPE = """\
# Test: affine gives a (batch, outputs) array
X, W, b = np.ones((2, 3)), np.ones((3, 4)), np.zeros(4)
assert affine(X, W, b).shape == (2, 4)
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(7)
X, W, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
assert np.shape(affine(X, W, b)) == (5, 2)
### END HIDDEN TESTS"""

TEST_VALUES = """\
# Test: affine computes X @ W + b
X = np.arange(6.0).reshape(2, 3)
W, b = np.ones((3, 2)), np.array([1.0, -1.0])
np.testing.assert_allclose(affine(X, W, b), X @ W + b)
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(11)
X = rng.integers(-5, 5, (4, 3)).astype(float)
W = rng.integers(-5, 5, (3, 5)).astype(float)
b = rng.integers(-5, 5, 5).astype(float)
out = affine(X, W, b)
assert (out == X @ W + b).all()
assert float(np.abs(np.asarray(out) - (X @ W + b)).max()) < 1e-9
### END HIDDEN TESTS"""

TEST_SCALE = """\
# Test: Scale multiplies by its factor inside a network
db.manual_seed(0)
layer = nn.Linear(3, 2)
net = nn.Sequential(layer, Scale(3.0))
X = db.randn(4, 3)
np.testing.assert_allclose(net(X).numpy(), 3.0 * layer(X).numpy(), rtol=1e-6)
### BEGIN HIDDEN TESTS
assert isinstance(Scale(2.0), nn.Block)
Y = Scale(-0.5)(X)
assert Y.shape == (4, 3)
np.testing.assert_allclose(Y.numpy(), -0.5 * X.numpy(), rtol=1e-6)
### END HIDDEN TESTS"""

ANSWER = """\
Why does `Scale` call `super().__init__()` first?

### BEGIN SOLUTION
Block.__init__ creates the registries that attribute assignment uses.
### END SOLUTION"""

TESTS = {"test_affine_shape": 1, "test_affine_values": 2, "test_scale": 2}


def _meta(grade_id, grade=False, solution=False, locked=False, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def source_notebook():
    """The instructor's notebook (solutions and hidden tests included)."""
    code = nbformat.v4.new_code_cell
    cells = [
        nbformat.v4.new_markdown_cell("# A tiny assignment",
                                      metadata=_meta("intro", locked=True)),
        code(SETUP, metadata=_meta("setup", locked=True)),
        code(AFFINE, metadata=_meta("affine_answer", solution=True)),
        code(TEST_SHAPE, metadata=_meta("test_affine_shape", grade=True,
                                        locked=True, points=1)),
        code(TEST_VALUES, metadata=_meta("test_affine_values", grade=True,
                                         locked=True, points=2)),
        code(SCALE, metadata=_meta("scale_answer", solution=True)),
        code(TEST_SCALE, metadata=_meta("test_scale", grade=True, locked=True,
                                        points=2)),
        nbformat.v4.new_markdown_cell(ANSWER, metadata=_meta(
            "why_super", grade=True, solution=True, points=1)),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return nb


def write_course(root):
    """Write the course (config and source notebook) under ``root``."""
    root = Path(root)
    (root / "source" / ASSIGNMENT).mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "tiny"\n')
    nbformat.write(source_notebook(), root / "source" / ASSIGNMENT / NOTEBOOK)
    return root
