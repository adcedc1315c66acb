"""Write the source notebooks of the assignment ``layers_and_blocks``.

Run ``python exercises/make_notebooks.py`` after editing this file; the
notebooks under ``exercises/source/`` are generated from it and a test
checks that the committed copies match. Cell metadata follows nbgrader's
schema version 3, so ``nbgrader generate_assignment`` can release them.

Cell kinds (see ``_meta``): locked text and set-up code, solution cells
(``### BEGIN SOLUTION``), autograded test cells with points (visible
asserts, then ``### BEGIN HIDDEN TESTS``), and one hand-graded answer
whose rubric sits inside the solution region, so it never reaches
students.

Test cells use only the public d2lblocks API, NumPy and ``assert``, and
each starts with a comment naming what it checks: the feedback shows
that line while the hidden part is removed.
"""

import sys
from pathlib import Path

import nbformat

ASSIGNMENT = "layers_and_blocks"
SOURCE = Path(__file__).resolve().parent / "source" / ASSIGNMENT

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python",
              "name": "python3"}

SETUP = """\
import numpy as np
import d2lblocks as db
from d2lblocks import nn, init, optim"""


def _meta(grade_id, grade=False, solution=False, locked=False, points=None):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked,
            "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def text(grade_id, source):
    """A read-only markdown cell."""
    return nbformat.v4.new_markdown_cell(
        source.strip(), metadata=_meta(grade_id, locked=True))


def given(grade_id, source):
    """Read-only code that students run but do not change."""
    return nbformat.v4.new_code_cell(
        source.strip(), metadata=_meta(grade_id, locked=True))


def scratch(source):
    """A free code cell (no nbgrader metadata): for trying things out."""
    return nbformat.v4.new_code_cell(source.strip())


def solution(grade_id, source):
    """Code the students write; the solution region is removed on release."""
    return nbformat.v4.new_code_cell(
        source.strip(), metadata=_meta(grade_id, solution=True))


def test(grade_id, points, source):
    """An autograded test cell worth ``points``."""
    return nbformat.v4.new_code_cell(
        source.strip(),
        metadata=_meta(grade_id, grade=True, locked=True, points=points))


def answer(grade_id, points, source):
    """A written answer graded by hand in formgrader."""
    return nbformat.v4.new_markdown_cell(
        source.strip(),
        metadata=_meta(grade_id, grade=True, solution=True, points=points))


def notebook(cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    # Stable cell ids keep regenerated notebooks byte-identical.
    for index, cell in enumerate(nb.cells):
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        cell["id"] = gid.replace("_", "-") if gid else f"cell-{index}"
    return nb


# ---------------------------------------------------------------------------
# Exercise 1: list vs ordered dict
# ---------------------------------------------------------------------------
EX1 = [
    text("ex1_intro", """
# Exercise 1: where a block keeps its children

A block knows only what it has **registered**. `nn.Sequential` keeps its
children in an insertion-ordered dict, and every walk over a network,
`parameters()`, `initialize()`, `state_dict()`, `to()`, goes through that
dict and nothing else.

In part A you write your own `MySequential`. In part B you look at what
goes wrong when the same blocks sit in a plain Python list.

*Points:* 9 for the tests (some of them hidden) and 2 for the written
answer. Run every cell from the top, then press **Validate** before you
submit.
"""),
    given("ex1_setup", SETUP),
    text("ex1_part_a", """
## Part A: `MySequential` (9 points)

Complete the class below so that

* `MySequential(b0, b1, ...)` registers each block as a child, named
  `'0'`, `'1'`, ... in the order given (so its parameters are called
  `0.weight`, `0.bias`, `2.weight`, ...);
* `forward(X)` feeds `X` to the first block, its output to the second,
  and so on, and returns the last output. A block given twice runs twice.

Hint: `self.add_module(name, block)` registers a child; the ordered dict
itself is `self._children`.
"""),
    solution("my_sequential", '''
class MySequential(nn.Block):
    """Runs its blocks one after another, like ``nn.Sequential``.

    The blocks are registered as children named '0', '1', ... in the
    order given.
    """

    def __init__(self, *blocks):
        super().__init__()
        ### BEGIN SOLUTION
        for index, block in enumerate(blocks):
            # One entry per position, even when a block repeats, so a
            # block given twice runs twice.
            self._children[str(index)] = block
        ### END SOLUTION

    def forward(self, X):
        ### BEGIN SOLUTION
        for block in self._children.values():
            X = block(X)
        return X
        ### END SOLUTION
'''),
    test("test_seq_forward", 2, '''
# Test: forward runs the blocks in the order given
db.manual_seed(0)
first, act, second = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)
net = MySequential(first, act, second)
X = db.randn(5, 4)
out = net(X)
assert out.shape == (5, 3), f"expected an output of shape (5, 3), got {out.shape}"
np.testing.assert_allclose(out.numpy(), second(act(first(X))).numpy(), rtol=1e-6)
### BEGIN HIDDEN TESTS
# random depths and widths
db.manual_seed(1)
rng = np.random.default_rng(1)
for trial in range(3):
    widths = [int(w) for w in rng.integers(1, 9, size=int(rng.integers(2, 6)))]
    layers = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:])]
    X = db.tensor(rng.standard_normal((3, widths[0])).astype(np.float32))
    expected = X
    for layer in layers:
        expected = layer(expected)
    np.testing.assert_allclose(MySequential(*layers)(X).numpy(), expected.numpy(), rtol=1e-6)
# the same block given twice runs twice
shared = nn.Linear(3, 3)
X = db.randn(2, 3)
np.testing.assert_allclose(MySequential(shared, shared)(X).numpy(),
                           shared(shared(X)).numpy(), rtol=1e-6)
### END HIDDEN TESTS
'''),
    test("test_seq_parameters", 2, '''
# Test: parameters() lists the parameters of every layer
db.manual_seed(0)
first, second = nn.Linear(4, 8), nn.Linear(8, 3)
net = MySequential(first, nn.ReLU(), second)
params = list(net.parameters())
assert len(params) == 4, f"expected 4 parameters (2 weights, 2 biases), got {len(params)}"
expected = [first.weight, first.bias, second.weight, second.bias]
assert all(p is q for p, q in zip(params, expected)), \\
    "parameters() should give the first layer's weight and bias, then the second's"
### BEGIN HIDDEN TESTS
# children are named by position, also when nested
names = [name for name, _ in net.named_parameters()]
assert names == ["0.weight", "0.bias", "2.weight", "2.bias"], names
outer = MySequential(nn.Linear(2, 3), MySequential(nn.Linear(3, 3), nn.ReLU()))
names = [name for name, _ in outer.named_parameters()]
assert names == ["0.weight", "0.bias", "1.0.weight", "1.0.bias"], names
### END HIDDEN TESTS
'''),
    test("test_seq_initialize", 1, '''
# Test: initialize() reaches every layer
db.manual_seed(0)
first, second = nn.Linear(4, 8), nn.Linear(8, 3)
net = MySequential(first, nn.ReLU(), second)
net.initialize(init.Constant(0.25))
for name, layer in (("first", first), ("second", second)):
    assert np.all(layer.weight.numpy() == 0.25), \\
        f"initialize(init.Constant(0.25)) did not reach the {name} layer"
### BEGIN HIDDEN TESTS
# lazy layers receive the initializer once the first batch fixes their shape
lazy1, lazy2 = nn.LazyLinear(6), nn.LazyLinear(2)
net = MySequential(lazy1, nn.ReLU(), lazy2)
net.initialize(init.Constant(0.5))
out = net(db.ones(3, 5))
assert out.shape == (3, 2), out.shape
for layer in (lazy1, lazy2):
    assert np.all(layer.weight.numpy() == 0.5)
### END HIDDEN TESTS
'''),
    test("test_seq_state_dict", 1, '''
# Test: state_dict() holds every layer and load_state_dict() restores it
db.manual_seed(0)
net = MySequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
state = net.state_dict()
assert len(state) == 4, f"expected 4 saved arrays, got {len(state)}: {list(state)}"
### BEGIN HIDDEN TESTS
# a twin with other random values computes the same after loading
twin = MySequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
X = db.randn(6, 4)
assert not np.allclose(twin(X).numpy(), net(X).numpy())
twin.load_state_dict(state)
np.testing.assert_allclose(twin(X).numpy(), net(X).numpy(), rtol=1e-6)
### END HIDDEN TESTS
'''),
    test("test_seq_to", 1, '''
# Test: to() converts every layer (a dtype change walks the network as a device move does)
db.manual_seed(0)
first, second = nn.Linear(4, 8), nn.Linear(8, 3)
net = MySequential(first, nn.ReLU(), second)
net.to(dtype=db.float64)
for name, layer in (("first", first), ("second", second)):
    assert layer.weight.numpy().dtype == np.float64, \\
        f"to(dtype=db.float64) did not reach the {name} layer"
### BEGIN HIDDEN TESTS
# also inside a nested MySequential
inner = nn.Linear(3, 2)
net = MySequential(nn.Linear(5, 3), MySequential(nn.ReLU(), inner))
net.to(dtype=db.float64)
assert inner.weight.numpy().dtype == np.float64
assert inner.bias.numpy().dtype == np.float64
### END HIDDEN TESTS
'''),
    test("test_seq_optimizer", 2, '''
# Test: an optimizer built from parameters() trains every layer
db.manual_seed(0)
first, second = nn.Linear(4, 8), nn.Linear(8, 1)
net = MySequential(first, nn.ReLU(), second)
before = [first.weight.numpy().copy(), second.weight.numpy().copy()]
trainer = optim.SGD(net.parameters(), lr=0.1)
X, y = db.randn(16, 4), db.randn(16, 1)
out = net(X)
((out - y) * (out - y)).mean().backward()
trainer.step()
for name, layer, old in zip(("first", "second"), (first, second), before):
    assert not np.allclose(layer.weight.numpy(), old), \\
        f"one SGD step did not change the {name} layer's weight"
### BEGIN HIDDEN TESTS
# a few steps on a linear target lower the loss
db.manual_seed(3)
net = MySequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
rng = np.random.default_rng(3)
Xn = rng.standard_normal((64, 3)).astype(np.float32)
X, y = db.tensor(Xn), db.tensor(Xn @ np.array([[1.0], [-2.0], [0.5]], np.float32))
trainer = optim.SGD(net.parameters(), lr=0.05)
def loss_fn(out, target):
    return ((out - target) * (out - target)).mean()
start = float(loss_fn(net(X), y).item())
for step in range(30):
    trainer.zero_grad()
    loss = loss_fn(net(X), y)
    loss.backward()
    trainer.step()
assert float(loss_fn(net(X), y).item()) < 0.5 * start
### END HIDDEN TESTS
'''),
    text("ex1_part_b", """
## Part B: the same blocks in a Python list (2 points, graded by hand)

`ListSequential` below runs exactly like `MySequential`, but keeps its
blocks in a plain list. Run the cell, then try more in the free cell
under it: `initialize`, `state_dict`, `to(dtype=db.float64)`, an
`optim.SGD` built from `parameters()`, `print(list_net)`. When you have
your own list, compare it with what `db.diagnose(list_net)` reports.
"""),
    given("ex1_list_demo", '''
class ListSequential(nn.Block):
    """Like MySequential, but the blocks sit in a plain Python list."""

    def __init__(self, *blocks):
        super().__init__()
        self.blocks = list(blocks)

    def forward(self, X):
        for block in self.blocks:
            X = block(X)
        return X


db.manual_seed(0)
list_net = ListSequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
print("output shape:      ", list_net(db.randn(2, 4)).shape)
print("parameters():      ", len(list(list_net.parameters())))
print("state_dict() keys: ", list(list_net.state_dict()))
'''),
    scratch("# Try things out here (this cell is not graded).\n"),
    text("ex1_question", """
**Question.** Name at least three things that go wrong when a block keeps
its children in a Python list, and explain the single reason behind all
of them. How does `MySequential` avoid it? Answer in the cell below.
"""),
    answer("list_answer", 2, """
### BEGIN SOLUTION
*Model answer.* With a list, the blocks still run in `forward`, but the
network does not know they exist: `parameters()` is empty (an optimizer
built from it refuses to start, or trains nothing), `initialize()` leaves
the layers as they were, `state_dict()`/`save()` store nothing, `to()`
leaves the layers on the old device or dtype, `print(net)` shows no
children, and `apply()` never visits them. The reason: a block only
registers what is assigned to it directly as a `Block` or `Parameter`
attribute; every traversal walks the ordered dict of registered children,
and a list is an ordinary attribute that is never looked into.
`MySequential` puts each block into that dict (or calls `add_module`), so
every traversal finds it, in order.

*Rubric (2 points).*
- 1 point: at least three concrete failures from: parameters missing
  from `parameters()`, not initialized, not saved in `state_dict`, not
  moved by `to()`, not trained by the optimizer, missing from `repr` or
  `apply`. Two correct failures: 0.5.
- 1 point: the cause: traversals only see registered children (the
  ordered dict), and a list attribute is not registered; the fix is to
  register each block (ordered dict, `add_module`, `nn.BlockList`).
- 0 for an answer that only says "it does not work" without naming what.
### END SOLUTION
"""),
]


# ---------------------------------------------------------------------------
# Exercise 2: parallel block
# ---------------------------------------------------------------------------
EX2 = [
    text("ex2_intro", """
# Exercise 2: a parallel block

A *parallel block* runs two blocks side by side on the same input and
joins their outputs. Write `Parallel(net1, net2, axis=1)`:

* it registers the two blocks as the children `net1` and `net2`;
* `net(X)` gives `X` to both blocks; `net(X1, X2)` gives `X1` to `net1`
  and `X2` to `net2` (two inputs of their own, as in a two-tower model);
* it returns both outputs concatenated along `axis`, by default axis 1,
  the feature axis of a `(batch, features)` output (use `db.concat`);
* if the two outputs have different batch sizes (axis 0) it raises a
  `ValueError` whose message contains the word *batch* and both sizes.

*Points:* 10, over several test cells (some of them hidden).
"""),
    given("ex2_setup", SETUP),
    solution("parallel_block", '''
class Parallel(nn.Block):
    """Runs ``net1`` and ``net2`` side by side and concatenates their
    outputs along ``axis`` (1, the feature axis, by default)."""

    def __init__(self, net1, net2, axis=1):
        super().__init__()
        ### BEGIN SOLUTION
        self.net1 = net1
        self.net2 = net2
        self.axis = axis
        ### END SOLUTION

    def forward(self, X, X2=None):
        ### BEGIN SOLUTION
        Y1 = self.net1(X)
        Y2 = self.net2(X if X2 is None else X2)
        if Y1.shape[0] != Y2.shape[0]:
            raise ValueError(
                f"Parallel: the outputs of net1 and net2 have different "
                f"batch sizes ({Y1.shape[0]} and {Y2.shape[0]}); give both "
                f"blocks inputs with the same number of rows")
        return db.concat([Y1, Y2], axis=self.axis)
        ### END SOLUTION
'''),
    test("test_parallel_shape", 2, '''
# Test: output shape and values for one shared input
db.manual_seed(0)
net1, net2 = nn.Linear(4, 3), nn.Linear(4, 5)
net = Parallel(net1, net2)
X = db.randn(2, 4)
out = net(X)
assert out.shape == (2, 8), f"expected (2, 8): 3 + 5 features side by side, got {out.shape}"
np.testing.assert_allclose(
    out.numpy(), np.concatenate([net1(X).numpy(), net2(X).numpy()], axis=1), rtol=1e-6)
### BEGIN HIDDEN TESTS
# random sizes
db.manual_seed(2)
rng = np.random.default_rng(2)
for trial in range(4):
    batch, d_in, d1, d2 = (int(k) for k in rng.integers(1, 7, size=4))
    a, b = nn.Linear(d_in, d1), nn.Linear(d_in, d2)
    X = db.tensor(rng.standard_normal((batch, d_in)).astype(np.float32))
    out = Parallel(a, b)(X)
    assert out.shape == (batch, d1 + d2), (out.shape, batch, d1, d2)
    np.testing.assert_allclose(
        out.numpy(), np.concatenate([a(X).numpy(), b(X).numpy()], axis=1), rtol=1e-6)
### END HIDDEN TESTS
'''),
    test("test_parallel_axis", 1, '''
# Test: the axis argument (3-D outputs)
X = db.randn(2, 3, 4)
out = Parallel(nn.Identity(), nn.Identity(), axis=2)(X)
assert out.shape == (2, 3, 8), f"axis=2 should give (2, 3, 8), got {out.shape}"
### BEGIN HIDDEN TESTS
X = db.randn(2, 3, 4)
Xn = X.numpy()
for axis, shape in ((-1, (2, 3, 8)), (1, (2, 6, 4))):
    out = Parallel(nn.Identity(), nn.Identity(), axis=axis)(X)
    assert out.shape == shape, (axis, out.shape)
    np.testing.assert_array_equal(out.numpy(), np.concatenate([Xn, Xn], axis=axis))
# the default is axis 1
assert Parallel(nn.Identity(), nn.Identity())(X).shape == (2, 6, 4)
### END HIDDEN TESTS
'''),
    test("test_parallel_lazy", 1, '''
# Test: lazy children take their input size from the first batch
db.manual_seed(0)
net1, net2 = nn.LazyLinear(3), nn.LazyLinear(2)
net = Parallel(net1, net2)
out = net(db.randn(5, 7))
assert out.shape == (5, 5), f"expected (5, 5), got {out.shape}"
assert net1.weight.shape == (3, 7) and net2.weight.shape == (2, 7)
### BEGIN HIDDEN TESTS
# after the first batch: all four parameters are known and saved
assert [p.shape for p in net.parameters()] == [(3, 7), (3,), (2, 7), (2,)]
assert len(net.state_dict()) == 4
assert net(db.randn(9, 7)).shape == (9, 5)
### END HIDDEN TESTS
'''),
    test("test_parallel_params", 2, '''
# Test: both children and their parameters are registered
db.manual_seed(0)
net1, net2 = nn.Linear(4, 3), nn.Linear(4, 5)
net = Parallel(net1, net2)
names = [name for name, _ in net.named_parameters()]
assert names == ["net1.weight", "net1.bias", "net2.weight", "net2.bias"], \\
    f"expected the children to be registered as net1 and net2, got {names}"
expected = [net1.weight, net1.bias, net2.weight, net2.bias]
assert all(p is q for p, q in zip(net.parameters(), expected))
### BEGIN HIDDEN TESTS
assert list(net.state_dict()) == names
net.initialize(init.Constant(0.5))
assert np.all(net1.weight.numpy() == 0.5) and np.all(net2.weight.numpy() == 0.5)
# a deeper child: every parameter below it is found
deep = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
assert len(list(Parallel(deep, nn.Linear(4, 1)).parameters())) == 6
### END HIDDEN TESTS
'''),
    test("test_parallel_grad", 2, '''
# Test: gradients reach both children
db.manual_seed(0)
net1, net2 = nn.Linear(4, 3), nn.Linear(4, 5)
X = db.randn(6, 4)
Parallel(net1, net2)(X).sum().backward()
for name, layer, width in (("net1", net1, 3), ("net2", net2, 5)):
    assert layer.weight.grad is not None, f"{name}.weight got no gradient"
    np.testing.assert_allclose(layer.weight.grad.numpy(),
                               np.tile(X.numpy().sum(axis=0), (width, 1)), rtol=1e-5)
### BEGIN HIDDEN TESTS
# a weighted loss: each child must get the gradient of its own columns
db.manual_seed(4)
net1, net2 = nn.Linear(4, 3), nn.Linear(4, 5)
rng = np.random.default_rng(4)
Xn = rng.standard_normal((6, 4)).astype(np.float32)
R = rng.standard_normal((6, 8)).astype(np.float32)
(Parallel(net1, net2)(db.tensor(Xn)) * db.tensor(R)).sum().backward()
np.testing.assert_allclose(net1.weight.grad.numpy(), R[:, :3].T @ Xn, rtol=1e-4, atol=1e-5)
np.testing.assert_allclose(net2.weight.grad.numpy(), R[:, 3:].T @ Xn, rtol=1e-4, atol=1e-5)
np.testing.assert_allclose(net1.bias.grad.numpy(), R[:, :3].sum(axis=0), rtol=1e-4, atol=1e-5)
np.testing.assert_allclose(net2.bias.grad.numpy(), R[:, 3:].sum(axis=0), rtol=1e-4, atol=1e-5)
### END HIDDEN TESTS
'''),
    test("test_parallel_two_inputs", 1, '''
# Test: net(X1, X2) gives each child its own input
db.manual_seed(0)
net1, net2 = nn.Linear(4, 3), nn.Linear(6, 2)
X1, X2 = db.randn(5, 4), db.randn(5, 6)
out = Parallel(net1, net2)(X1, X2)
assert out.shape == (5, 5), f"expected (5, 5), got {out.shape}"
np.testing.assert_allclose(
    out.numpy(), np.concatenate([net1(X1).numpy(), net2(X2).numpy()], axis=1), rtol=1e-6)
### BEGIN HIDDEN TESTS
db.manual_seed(5)
net1, net2 = nn.Linear(2, 1), nn.Linear(3, 4)
X1, X2 = db.randn(7, 2), db.randn(7, 3)
out = Parallel(net1, net2)(X1, X2)
assert out.shape == (7, 5), out.shape
np.testing.assert_allclose(
    out.numpy(), np.concatenate([net1(X1).numpy(), net2(X2).numpy()], axis=1), rtol=1e-6)
### END HIDDEN TESTS
'''),
    test("test_parallel_batch_error", 1, '''
# Test: different batch sizes give a ValueError that names them
net = Parallel(nn.Linear(4, 3), nn.Linear(4, 3))
try:
    net(db.randn(4, 4), db.randn(5, 4))
except ValueError as err:
    message = str(err)
else:
    raise AssertionError("expected a ValueError for batch sizes 4 and 5")
assert "batch" in message.lower() and "4" in message and "5" in message, \\
    f"the message should say 'batch' and give both sizes (4 and 5), got: {message!r}"
### BEGIN HIDDEN TESTS
for n1, n2 in ((3, 8), (9, 2)):
    try:
        Parallel(nn.Linear(2, 6), nn.Linear(2, 1))(db.randn(n1, 2), db.randn(n2, 2))
    except ValueError as err:
        message = str(err)
    else:
        raise AssertionError(f"expected a ValueError for batch sizes {n1} and {n2}")
    assert "batch" in message.lower() and str(n1) in message and str(n2) in message, message
### END HIDDEN TESTS
'''),
]


# ---------------------------------------------------------------------------
# Exercise 3: factory function
# ---------------------------------------------------------------------------
EX3 = [
    text("ex3_intro", """
# Exercise 3: many instances of one block

To stack several copies of the same kind of block, each copy must be a
**new** block with parameters of its own. A *factory* is a function with
no arguments that returns a new block each time it is called, for
example `lambda: nn.Linear(8, 8)`.

Write two functions:

* `make_instances(factory, n)` calls `factory()` exactly `n` times and
  returns the `n` blocks in a list, in the order they were made. If `n`
  is not a positive `int` it raises a `ValueError`.
* `build_network(factory, n)` returns one block that runs `n` new
  instances one after another; its children are named `'0'`, `'1'`, ...
  in the order the instances were made (an `nn.Sequential` does this).

*Points:* 8, over several test cells (some of them hidden).
"""),
    given("ex3_setup", SETUP),
    solution("factory_functions", '''
def make_instances(factory, n):
    """Call ``factory()`` n times; return the n new blocks in a list, in
    the order they were made. Raises ValueError unless n is a positive int.
    """
    ### BEGIN SOLUTION
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return [factory() for _ in range(n)]
    ### END SOLUTION


def build_network(factory, n):
    """A network of n new instances from ``factory``, run in sequence;
    its children are named '0', '1', ... in the order they were made."""
    ### BEGIN SOLUTION
    return nn.Sequential(*make_instances(factory, n))
    ### END SOLUTION
'''),
    test("test_factory_count", 1, '''
# Test: make_instances returns n blocks
blocks = make_instances(lambda: nn.Linear(3, 3), 4)
assert len(blocks) == 4, f"expected 4 blocks, got {len(blocks)}"
assert all(isinstance(b, nn.Block) for b in blocks)
### BEGIN HIDDEN TESTS
for n in (1, 2, 7):
    assert len(make_instances(lambda: nn.ReLU(), n)) == n, n
### END HIDDEN TESTS
'''),
    test("test_factory_bad_n", 1, '''
# Test: n that is not a positive int gives a ValueError
for bad in (0, -3):
    try:
        make_instances(lambda: nn.Linear(2, 2), bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"make_instances(factory, {bad!r}) should raise ValueError")
### BEGIN HIDDEN TESTS
for bad in (2.5, "3", None):
    try:
        make_instances(lambda: nn.Linear(2, 2), bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"make_instances(factory, {bad!r}) should raise ValueError")
### END HIDDEN TESTS
'''),
    test("test_factory_independent", 2, '''
# Test: every instance is a new block with parameters of its own
db.manual_seed(0)
calls = []
def factory():
    calls.append(1)
    return nn.Linear(3, 3)
blocks = make_instances(factory, 3)
assert len(calls) == 3, f"factory() should be called 3 times, it was called {len(calls)} times"
assert len({id(b) for b in blocks}) == 3, "the list holds the same block more than once"
init.constant_(blocks[0].weight, 7.0)
assert not np.any(blocks[1].weight.numpy() == 7.0), "changing one block changed another"
### BEGIN HIDDEN TESTS
# the network has 2 parameters per instance, all different
net = build_network(lambda: nn.Linear(4, 4), 5)
params = list(net.named_parameters(remove_duplicate=False))
assert len(params) == 10, len(params)
assert len({id(p) for _, p in params}) == 10
### END HIDDEN TESTS
'''),
    test("test_factory_order", 1, '''
# Test: instances come in the order they were made
made = []
def factory():
    made.append(nn.Linear(2, 2))
    return made[-1]
blocks = make_instances(factory, 4)
assert len(made) == 4, f"factory() should be called 4 times, it was called {len(made)} times"
assert len(blocks) == 4 and all(b is m for b, m in zip(blocks, made)), \\
    "the i-th block in the list should be the i-th block the factory made"
### BEGIN HIDDEN TESTS
made.clear()
net = build_network(factory, 3)
children = [child for _, child in net.named_children()]
assert len(children) == 3 and all(c is m for c, m in zip(children, made))
### END HIDDEN TESTS
'''),
    test("test_factory_names", 1, '''
# Test: the network names its children '0', '1', ...
net = build_network(lambda: nn.Linear(2, 2), 3)
names = [name for name, _ in net.named_parameters()]
expected = ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
assert names == expected, f"expected {expected}, got {names}"
### BEGIN HIDDEN TESTS
net = build_network(lambda: nn.Sequential(nn.Linear(2, 2), nn.ReLU()), 2)
names = [name for name, _ in net.named_parameters()]
assert names == ["0.0.weight", "0.0.bias", "1.0.weight", "1.0.bias"], names
assert list(net.state_dict()) == names
### END HIDDEN TESTS
'''),
    test("test_factory_output", 2, '''
# Test: the network runs its instances one after another
db.manual_seed(0)
made = []
def factory():
    made.append(nn.Sequential(nn.Linear(6, 6), nn.ReLU()))
    return made[-1]
net = build_network(factory, 3)
X = db.randn(4, 6)
out = net(X)
assert out.shape == (4, 6), f"expected (4, 6), got {out.shape}"
expected = X
for block in made:
    expected = block(expected)
assert len(made) == 3, f"factory() should be called 3 times, it was called {len(made)} times"
np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-6)
### BEGIN HIDDEN TESTS
# lazy instances: the first takes 9 inputs, the others the output width 5
db.manual_seed(6)
made.clear()
def lazy_factory():
    made.append(nn.LazyLinear(5))
    return made[-1]
net = build_network(lazy_factory, 3)
assert net(db.randn(2, 9)).shape == (2, 5)
assert [m.weight.shape for m in made] == [(5, 9), (5, 5), (5, 5)]
### END HIDDEN TESTS
'''),
]

NOTEBOOKS = {
    "ex1_sequential.ipynb": EX1,
    "ex2_parallel.ipynb": EX2,
    "ex3_factory.ipynb": EX3,
}


def build():
    """Return ``{file name: notebook}`` for the assignment."""
    return {name: notebook(cells) for name, cells in NOTEBOOKS.items()}


def render(nb):
    """The exact text written to disk for ``nb``."""
    return nbformat.writes(nb) + "\n"


def main(out_dir=SOURCE):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, nb in build().items():
        nbformat.validate(nb)
        (out_dir / name).write_text(render(nb), encoding="utf-8")
        print(f"wrote {out_dir / name}")


if __name__ == "__main__":
    main(*sys.argv[1:])
