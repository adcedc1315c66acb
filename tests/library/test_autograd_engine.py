"""The reverse-mode engine: accumulation, constants, freeing the graph,
``retain_graph``, and in-place operators inside and outside the graph."""

import gc
import weakref

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import nn, optim
from d2lblocks.kernels import Op
from d2lblocks.tensor import apply, set_recorder
from conftest import central_difference


def leaf(values, dtype=db.float64):
    return db.tensor(np.asarray(values, dtype=np.float64), dtype=dtype,
                     requires_grad=True)


# ---- accumulation -----------------------------------------------------------
def test_tensor_used_twice_gets_the_sum_of_both_uses():
    x = leaf([1.0, -2.0, 3.0])
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 1)


def test_tied_weight_in_two_matmuls():
    rng = np.random.default_rng(0)
    xv, wv = rng.normal(size=(2, 3)), rng.normal(size=(3, 3))
    x, w = db.tensor(xv), leaf(wv)
    (x @ w @ w).sum().backward()
    # d/dW sum(x W W) = x^T 1 W^T + (x W)^T 1
    ones = np.ones((2, 3))
    expected = xv.T @ ones @ wv.T + (xv @ wv).T @ ones
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-10)


def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 + 2 * x.numpy())
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_diamond_graph():
    x = leaf([0.5, 1.5])
    h = x * 2
    y = (h.exp() + h * h).sum()
    y.backward()
    xv = x.numpy()
    np.testing.assert_allclose(x.grad.numpy(),
                               2 * np.exp(2 * xv) + 8 * xv, rtol=1e-12)


def test_gradient_has_the_leaf_dtype():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    (x.astype(db.float64) * 2).sum().backward()
    assert x.grad.dtype == db.float32


def test_deep_chain_needs_no_recursion():
    x = leaf([1.0])
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000], rtol=1e-8)


def test_detach_cuts_the_graph():
    x = leaf([1.0, 2.0])
    y = (x * 2).detach() * x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())


def test_is_leaf_and_requires_grad_flags():
    x = leaf([1.0])
    y = x * 2
    assert x.is_leaf and not y.is_leaf and y.requires_grad
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)
    c = db.tensor([1.0])
    assert not (c * 2).requires_grad
    assert c.requires_grad_() is c and c.requires_grad


# ---- constants get nothing --------------------------------------------------
def test_constant_input_gets_no_grad():
    x = leaf([1.0, 2.0])
    c = db.tensor([3.0, 4.0], dtype=db.float64)
    (x * c + c / x).sum().backward()
    assert c.grad is None
    assert x.grad is not None


TWO_INPUT_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "maximum": db.maximum,
    "matmul 2-D": lambda a, b: a.reshape(2, 2) @ b.reshape(2, 2),
    "matmul batched": lambda a, b: a.reshape(1, 2, 2) @ b.reshape(2, 2),
    "concat": lambda a, b: db.concat([a, b]),
    "where": lambda a, b: db.where(np.array([True, False, True, False]), a, b),
}


@pytest.mark.parametrize("name", sorted(TWO_INPUT_OPS))
@pytest.mark.parametrize("learn", ["first", "second"])
def test_backward_rules_return_none_for_constants(name, learn):
    """No gradient array is computed for an input that needs none."""
    fn = TWO_INPUT_OPS[name]
    a = db.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=(learn == "first"))
    b = db.tensor([0.5, 1.5, 2.5, 3.5], requires_grad=(learn == "second"))
    out = fn(a, b)
    op = out.grad_fn
    grads = list(op.backward(np.ones(op.shape, op.dtype)))
    assert len(grads) == len(op.parents) == len(op.needs)
    assert sum(op.needs) == 1            # only the learnable input
    for p, need, g in zip(op.parents, op.needs, grads):
        if need:
            assert g is not None and g.shape == p.shape
        else:
            assert g is None


@pytest.mark.parametrize("need", ["x", "weight", "bias"])
def test_linear_computes_only_what_is_needed(need):
    x = db.tensor(np.ones((2, 3)), requires_grad=(need == "x"))
    w = db.tensor(np.ones((4, 3)), requires_grad=(need == "weight"))
    b = db.tensor(np.ones(4), requires_grad=(need == "bias"))
    out = db.linear(x, w, b)
    grads = out.grad_fn.backward(np.ones((2, 4)))
    for name, g in zip(("x", "weight", "bias"), grads):
        assert (g is not None) == (name == need)


def test_ops_on_constants_record_nothing():
    a, b = db.ones(2, 2), db.ones(2, 2)
    for out in (a + b, a @ b, db.relu(a), a.sum(), a[0], db.concat([a, b])):
        assert out.is_leaf and not out.requires_grad


# ---- freeing the graph ------------------------------------------------------
def _graph_with_probe(x):
    """A scalar built from ``x`` and a weak reference to the array of an
    intermediate, which the graph keeps for the gradient of ``exp() * h``."""
    h = x * 2
    probe = weakref.ref(h.data)
    return (h.exp() * h).sum(), probe


def test_intermediates_die_after_backward():
    x = leaf(np.ones((3, 4)))
    gc.disable()          # freed by reference counting, not by the collector
    try:
        y, probe = _graph_with_probe(x)
        assert probe() is not None
        y.backward()
        assert probe() is None
    finally:
        gc.enable()


def test_intermediates_survive_with_retain_graph():
    x = leaf(np.ones((3, 4)))
    y, probe = _graph_with_probe(x)
    y.backward(retain_graph=True)
    gc.collect()
    assert probe() is not None
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    del y
    gc.collect()
    assert probe() is None


def test_second_backward_without_retain_graph_is_a_clear_error():
    x = leaf([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_backward_error_keeps_the_leaf_grad_unchanged():
    x = leaf([1.0, 2.0])
    h = x * 3
    (h * 1).sum().backward()
    before = x.grad.numpy().copy()
    y = (h * 2).sum()             # h's saved values are gone
    with pytest.raises(RuntimeError):
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), before)


# ---- in-place operators -----------------------------------------------------
def _halve_until_small(x, w):
    """The control flow of the seed's FixedHiddenMLP."""
    X = x @ w
    while X.abs().sum() > 1:
        X /= 2
    return X.sum()


def test_in_place_halving_loop_has_correct_gradients():
    rng = np.random.default_rng(3)
    xv, wv = rng.normal(size=(2, 4)), rng.normal(size=(4, 3))
    x, w = leaf(xv), leaf(wv)
    out = _halve_until_small(x, w)
    out.backward()
    assert abs(float((x.detach() @ w.detach()).abs().sum())) > 1
    weights = np.ones(())
    for i, t in enumerate((x, w)):
        numeric = central_difference(_halve_until_small, [xv, wv], i, weights)
        np.testing.assert_allclose(t.grad.numpy(), numeric, rtol=1e-5,
                                   atol=1e-7)
    assert db.grad_check(_halve_until_small, leaf(xv), leaf(wv))


@pytest.mark.parametrize("op", ["+=", "-=", "*=", "/="])
def test_each_in_place_operator_on_an_intermediate(op):
    def f(x, y):
        h = x * 1.0
        if op == "+=":
            h += y
        elif op == "-=":
            h -= y
        elif op == "*=":
            h *= y
        else:
            h /= y
        return h * x
    xv = np.array([1.0, 2.0, 3.0])
    yv = np.array([0.5, -1.5, 2.0])
    assert db.grad_check(f, leaf(xv), leaf(yv))
    for i, t in enumerate((xv, yv)):
        xs = [leaf(xv), leaf(yv)]
        f(*xs).sum().backward()
        numeric = central_difference(f, [xv, yv], i, np.ones(3))
        np.testing.assert_allclose(xs[i].grad.numpy(), numeric, rtol=1e-6)


@pytest.mark.parametrize("retain_graph", [True, False])
def test_old_value_is_kept_for_earlier_uses(retain_graph):
    """``y = x * 3; x /= 2``: y still depends on the x before the division."""
    w = leaf([1.0, 2.0])
    x = w * 1.0                  # a non-leaf, so in-place is allowed
    y = x * 3
    x /= 2
    (y + x).sum().backward(retain_graph=retain_graph)
    np.testing.assert_allclose(w.grad.numpy(), [3.5, 3.5])
    np.testing.assert_allclose(x.numpy(), [0.5, 1.0])
    np.testing.assert_allclose(y.numpy(), [3.0, 6.0])


def test_in_place_on_a_leaf_that_requires_grad_is_refused():
    w = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="no_grad"):
        w /= 2
    with pytest.raises(RuntimeError, match="leaf"):
        w += 1
    with pytest.raises(RuntimeError, match="in place"):
        w[0] = 5.0
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])


def test_in_place_on_a_leaf_works_inside_no_grad():
    w = leaf([1.0, 2.0])
    (w * w).sum().backward()
    data = w.data
    with db.no_grad():
        w -= 0.5 * w.grad
        w *= 2
        w /= 4
        w += 1
        w[0] = 7.0
    assert w.data is data            # really in place: the same array
    np.testing.assert_allclose(w.numpy(), [7.0, 1.0])
    assert w.is_leaf and w.requires_grad


def test_in_place_on_a_constant_stays_a_constant():
    c = db.tensor([1.0, 2.0])
    c += 1
    c *= 2
    assert not c.requires_grad
    np.testing.assert_array_equal(c.numpy(), [4.0, 6.0])


def test_adding_a_learnable_tensor_in_place_into_a_constant():
    w = leaf([1.0, 2.0])
    c = db.tensor(np.zeros(2))
    c += w * w
    assert c.requires_grad
    c.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 4.0])


def test_setitem_in_the_graph():
    w = leaf([1.0, 2.0, 3.0])
    v = leaf([10.0])
    h = w * 1.0
    h[1:2] = v * 2
    (h * h).sum().backward()
    np.testing.assert_allclose(h.numpy(), [1.0, 20.0, 3.0])
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 0.0, 6.0])
    np.testing.assert_allclose(v.grad.numpy(), [80.0])


def test_in_place_cannot_change_the_dtype():
    i = db.tensor([1, 2])
    with pytest.raises(TypeError, match="int64"):
        i += db.tensor([0.5, 0.5], requires_grad=True)


def test_in_place_dtype_error_inside_no_grad_names_the_dtypes():
    i = db.tensor([1, 2])
    with db.no_grad():
        with pytest.raises(TypeError, match="int64"):
            i += 1.5


# ---- grad_check itself ------------------------------------------------------
def _half_detached(x):
    """Autograd sees x * c with c constant; the true derivative is 2x."""
    return x * x.detach()


def test_grad_check_catches_a_wrong_gradient():
    x = leaf([1.0, -2.0, 3.0])
    with pytest.raises(AssertionError, match=r"input 0 \(shape \(3,\)\)"):
        db.grad_check(_half_detached, x)
    assert db.grad_check(_half_detached, leaf([1.0, 2.0]),
                         raise_exception=False) is False
    assert db.grad_check(lambda t: t * t, leaf([1.0, 2.0])) is True


def test_grad_check_checks_only_inputs_that_require_grad():
    c = db.tensor([1.0, 2.0])
    x = leaf([0.5, 0.25])
    assert db.grad_check(lambda a, b: a * b.detach() + b, x, c)
    with pytest.raises(AssertionError, match="input 1"):
        db.grad_check(lambda a, b: a * b.detach() + b * 0, c,
                      leaf([3.0, 1.0]))
    with pytest.raises(ValueError, match="requires_grad=True"):
        db.grad_check(lambda a: a * 2, c)


def test_grad_check_leaves_the_inputs_alone():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    db.grad_check(lambda t: (t * t).sum(), x)
    assert x.grad is None and x.dtype == db.float32
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])


# ---- the engine refuses a wrong gradient --------------------------------------
class _Squash(Op):
    """An op with a deliberately wrong backward: it returns ``bad(g)``."""
    __slots__ = ("bad",)

    def __init__(self, bad):
        self.bad = bad

    def forward(self, a):
        return a * 2

    def backward(self, g):
        return (self.bad(g),)


WRONG_GRADIENTS = {
    "shape": lambda g: np.ones((4,) + g.shape, g.dtype),
    "dtype": lambda g: g.astype(np.float32),
}


@pytest.mark.parametrize("kind", sorted(WRONG_GRADIENTS))
@pytest.mark.parametrize("parent", ["leaf", "intermediate"])
def test_a_gradient_of_the_wrong_shape_or_dtype_names_the_op(kind, parent):
    x = leaf([1.0, 2.0])
    h = x if parent == "leaf" else x * 1.0
    y = apply(_Squash(WRONG_GRADIENTS[kind]), h)
    with pytest.raises(RuntimeError, match=rf"backward of _Squash.*{kind}"):
        y.sum().backward()
    assert x.grad is None


def test_the_linear_reproducer_gives_weight_gradients_of_the_weight_shape():
    lin = nn.Linear(4, 4)
    lin(db.rand(4, 4, 4)).sum().backward()
    assert lin.weight.grad.shape == (4, 4) and lin.bias.grad.shape == (4,)
    lin = nn.Linear(3, 5)
    X = db.rand(2, 4, 3, dtype=db.float64)
    lin.to(dtype=db.float64)
    lin(X).sum().backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(),
                               np.ones((5, 8)) @ X.numpy().reshape(8, 3))
    one = nn.Linear(3, 2)
    assert one(db.rand(3)).shape == (2,)


# ---- in-place changes that would make a gradient wrong ------------------------
def test_changing_a_saved_output_in_place_is_refused():
    x = leaf([0.5, 1.0])
    y = x.exp()
    with db.no_grad():
        y += 1                        # exp's backward reads its output
    with pytest.raises(RuntimeError, match=r"modified by an inplace "
                                           r"operation.*Exp"):
        y.sum().backward()


def test_changing_a_saved_input_in_place_is_refused():
    w, c = leaf([1.0, 2.0]), db.tensor([3.0, 4.0], dtype=db.float64)
    y = (w * c).sum()
    with db.no_grad():
        c[0] = 10.0                   # mul's backward reads c
    with pytest.raises(RuntimeError, match="inplace operation.*Mul"):
        y.backward()


def test_changing_an_input_that_no_gradient_reads_is_fine():
    w, c = leaf([1.0, 2.0]), db.tensor([3.0, 4.0], dtype=db.float64)
    y = (w + c).sum()                 # add's backward reads no value
    with db.no_grad():
        c += 1
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 1.0])


def test_an_optimizer_step_between_forward_and_backward_is_refused():
    w = nn.Parameter(db.tensor([1.0, 2.0]))
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    loss = (w * w).sum()              # recorded with the old w
    opt.step()                        # changes w in place
    with pytest.raises(RuntimeError, match="inplace operation"):
        loss.backward()
    opt.zero_grad()
    (w * w).sum().backward()          # a fresh graph is fine
    np.testing.assert_allclose(w.grad.numpy(), 2 * w.numpy())


@pytest.mark.parametrize("alias", [
    lambda y: y.detach(),                 # shares the array itself
    lambda y: y.detach()[0],              # a view of part of it
    lambda y: y.detach().reshape(2, 1),   # a view with another shape
    lambda y: y.detach().reshape(1, 2).transpose(-1, 0),
])
def test_a_change_through_a_tensor_sharing_memory_is_refused(alias):
    x = leaf([0.5, 1.0])
    y = x.exp()                           # exp's backward reads y's array
    other = alias(y)
    with db.no_grad():
        other += 1
    with pytest.raises(RuntimeError, match=r"inplace operation.*Exp.*memory"):
        y.sum().backward()


@pytest.mark.parametrize("index", [1, (1, 0), (slice(1, 2), 0), (-1, Ellipsis)])
def test_basic_indexing_gives_a_view_even_of_one_element(index):
    x = db.tensor([[1.0, 2.0], [3.0, 4.0]])
    v = x[index]
    with db.no_grad():
        v *= 10                   # writes through, as in PyTorch
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    expected[index] *= 10
    np.testing.assert_array_equal(x.numpy(), expected)


def test_a_change_to_a_saved_leaf_through_detach_is_refused():
    w, c = leaf([1.0, 2.0]), db.tensor([3.0, 4.0], dtype=db.float64)
    y = (w * c).sum()
    with db.no_grad():
        c.detach()[1] = 0.0
    with pytest.raises(RuntimeError, match="inplace operation.*Mul"):
        y.backward()


def test_changing_a_copy_or_unrelated_memory_is_fine():
    x = leaf([0.5, 1.0])
    y = x.exp()
    copy = db.tensor(y.detach())          # db.tensor copies
    unrelated = db.tensor([1.0, 2.0])
    with db.no_grad():
        copy += 1
        unrelated *= 3
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, 1.0]))


def test_a_change_before_the_graph_was_recorded_is_fine():
    x = leaf([0.5, 1.0])
    base = db.tensor([1.0, 2.0], dtype=db.float64)
    with db.no_grad():
        base.detach()[0] = 3.0
    (x * base).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 2.0])


# ---- dtypes: scalars never change them ------------------------------------------
@pytest.mark.parametrize("expr", [
    lambda x: x * np.float64(2), lambda x: np.float64(2) * x,
    lambda x: x + np.float64(0.5), lambda x: x - np.float64(0.5),
    lambda x: np.float64(1) - x, lambda x: x / np.float64(2),
    lambda x: np.float64(2) / x, lambda x: x ** np.float64(2),
    lambda x: x * np.array(3.0), lambda x: x * 2, lambda x: x * np.int64(2),
    lambda x: db.maximum(x, np.float64(0.5)), lambda x: db.where(x > 1, x, 0.0),
])
def test_scalars_keep_a_float32_tensor_float32(expr):
    x = db.tensor([1.0, 2.0], requires_grad=True)
    out = expr(x)
    assert out.dtype == db.float32
    out.sum().backward()
    assert x.grad.dtype == db.float32


@pytest.mark.parametrize("expr,dtype", [
    (lambda i: i / 2, db.float32), (lambda i: 2 / i, db.float32),
    (lambda i: i / i, db.float32), (lambda i: i * 2.5, db.float32),
    (lambda i: i + 1, db.int64), (lambda i: i * np.int32(3), db.int64),
    (lambda i: i + db.tensor([0.5, 0.5]), db.float32),
    (lambda i: db.tensor([0.5, 0.5], dtype=db.float64) + i, db.float64),
])
def test_integer_tensors_follow_pytorch_promotion(expr, dtype):
    out = expr(db.tensor([2, 4]))
    assert out.dtype == dtype


def test_float32_with_float64_tensor_gives_float64_and_each_its_gradient():
    a = db.tensor([1.0, 2.0], requires_grad=True)
    b = db.tensor([3.0, 4.0], dtype=db.float64, requires_grad=True)
    out = a * b
    assert out.dtype == db.float64
    out.sum().backward()
    assert a.grad.dtype == db.float32 and b.grad.dtype == db.float64


# ---- the hook for tools that watch computations -------------------------------------
def test_a_recorder_sees_every_op_with_its_arrays():
    seen = []
    x = leaf([1.0, 2.0])
    old = set_recorder(lambda op, inputs, out: seen.append(
        (type(op).__name__, inputs, out)))
    try:
        y = (x * 3.0).exp().sum()
        with db.no_grad():
            z = x + 1.0
    finally:
        assert set_recorder(old) is not None
    assert [name for name, _, _ in seen] == ["MulScalar", "Exp", "Sum",
                                             "AddScalar"]
    assert seen[0][1] == (x,) and seen[2][2] is y and seen[3][2] is z
    # Replaying the recorded ops on the arrays gives the same values.
    ops = [op for op in (y.grad_fn, y.grad_fn.parents[0],
                         y.grad_fn.parents[0].parents[0])]
    data = x.data
    for op in reversed(ops):
        data = op.forward(data)
    np.testing.assert_allclose(data, y.numpy())
    (x * 2.0).sum()                   # and nothing is reported any more
    assert len(seen) == 4


# ---- a backward() that fails changes no .grad --------------------------------------
def _grads(*tensors):
    return [None if t.grad is None else t.grad.numpy().copy() for t in tensors]


def _same(before, tensors):
    for old, t in zip(before, tensors):
        if old is None:
            assert t.grad is None
        else:
            np.testing.assert_array_equal(t.grad.numpy(), old)


def test_a_freed_graph_raises_before_any_gradient_is_given():
    w1, w2 = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    h = w1 * 2.0
    (h * h).sum().backward()              # frees h's node
    before = _grads(w1, w2)
    loss = (h * w2).sum()                 # w2's gradient comes first
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()
    _same(before, (w1, w2))


def test_a_saved_tensor_changed_in_place_raises_before_any_gradient():
    w, v = leaf([1.0, 2.0]), leaf([5.0, 6.0])
    c = db.tensor([3.0, 4.0], dtype=db.float64)
    w.grad = db.tensor([10.0, 10.0], dtype=db.float64)
    loss = (c * v).sum() + (w * 2.0).sum()   # w is reached first
    c += 1
    with pytest.raises(RuntimeError, match="inplace operation"):
        loss.backward()
    _same([np.array([10.0, 10.0]), None], (w, v))


class _WrongShape(Op):
    """A deliberately broken op: its gradient has one element too many."""
    __slots__ = ()

    def forward(self, a):
        return a * 1.0

    def backward(self, g):
        return (np.concatenate([g, g[:1]]),)


def test_a_wrong_gradient_shape_raises_before_any_gradient():
    w, v = leaf([1.0, 2.0]), leaf([5.0, 6.0])
    loss = apply(_WrongShape(), v).sum() + (w * 3.0).sum()
    with pytest.raises(RuntimeError, match="wrong|shape"):
        loss.backward()
    _same([None, None], (w, v))


def test_a_grad_of_another_shape_set_by_hand_changes_nothing():
    w, v = leaf([1.0, 2.0]), leaf([5.0, 6.0])
    v.grad = db.tensor([1.0, 1.0], dtype=db.float64)
    w.grad = db.zeros(3, dtype=db.float64)         # a mistake
    with pytest.raises(RuntimeError, match="set it to None"):
        (w * v).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [1.0, 1.0])
    assert w.grad.shape == (3,)


@pytest.mark.parametrize("labels", [[], db.tensor([], dtype=db.int64),
                                    np.zeros(0, np.int64)])
def test_cross_entropy_of_an_empty_batch_is_a_clear_error(labels):
    with pytest.raises(ValueError, match=r"batch is empty.*\(0, 3\)"):
        db.cross_entropy(db.zeros(0, 3), labels)
