"""Every op: forward values against NumPy, gradients against central
differences.

Each check runs twice: against the independent ``central_difference``
helper of ``conftest.py`` and through ``db.grad_check``, so that a bug in
one cannot hide a bug in an op. Shapes come from Hypothesis; values come
from a seeded NumPy generator, kept away from kinks (0 for relu and abs)
and from the edges of each op's domain.
"""

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import d2lblocks as db
from conftest import central_difference

# Ranks 0 to 4, sizes from 1 (so every axis may broadcast or be squeezed).
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1,
                                    max_side=3)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0,
                                          max_dims=4, min_side=1, max_side=3)
seeds = st.integers(0, 2 ** 16)


def any_sign(axis, ndim):
    """A strategy giving ``axis`` as it is or counted from the end."""
    return st.sampled_from([axis, axis - ndim]) if ndim else st.just(axis)


def values(shape, seed, low=-2.0, high=2.0, away=0.0):
    """Float64 samples in [low, high); with ``away`` > 0, magnitudes are at
    least ``away`` (random signs), which keeps kinks at 0 out of reach."""
    rng = np.random.default_rng(seed)
    if away:
        mag = rng.uniform(away, high, shape)
        return mag * rng.choice([-1.0, 1.0], size=shape)
    return rng.uniform(low, high, shape)


def check_grads(fn, *arrays, reference=None, rtol=1e-5, atol=1e-6):
    """Check ``fn`` (tensors -> tensor) at float64 ``arrays``.

    ``reference`` (NumPy arrays -> array) gives the expected forward value.
    The output is reduced with fixed random weights so that every output
    element takes part in the gradient check.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    xs = [db.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*xs)
    if reference is not None:
        expected = np.asarray(reference(*arrays))
        assert out.shape == expected.shape
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12,
                                   atol=1e-12)
    weights = np.random.default_rng(1).standard_normal(out.shape)
    (out * db.tensor(weights)).sum().backward()
    for i, x in enumerate(xs):
        numeric = central_difference(fn, arrays, i, weights)
        assert x.grad is not None, f"input {i} got no gradient"
        assert x.grad.shape == x.shape
        assert x.grad.dtype == db.float64
        np.testing.assert_allclose(x.grad.numpy(), numeric, rtol=rtol,
                                   atol=atol, err_msg=f"input {i}")
    fresh = [db.tensor(a, requires_grad=True) for a in arrays]
    assert db.grad_check(fn, *fresh)


# ---- elementwise arithmetic -------------------------------------------------
BINARY = {
    "add": (lambda a, b: a + b, np.add, {}, {}),
    "sub": (lambda a, b: a - b, np.subtract, {}, {}),
    "mul": (lambda a, b: a * b, np.multiply, {}, {}),
    "div": (lambda a, b: a / b, np.divide, {}, {"away": 0.5}),
    "pow": (lambda a, b: a ** b, np.power, {"low": 0.5}, {}),
    "maximum": (db.maximum, np.maximum, {}, {}),
    "minimum": (db.minimum, np.minimum, {}, {}),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@given(shapes=pairs, seed=seeds)
def test_binary_op_with_broadcasting(name, shapes, seed):
    """Both operands get gradients summed back to their own shapes."""
    fn, ref, dom_a, dom_b = BINARY[name]
    sa, sb = shapes.input_shapes
    a = values(sa, seed, **dom_a)
    b = values(sb, seed + 1, **dom_b)
    check_grads(fn, a, b, reference=ref)


SCALAR_FORMS = {
    "x + 2": (lambda x: x + 2, lambda x: x + 2, {}),
    "x - 2.5": (lambda x: x - 2.5, lambda x: x - 2.5, {}),
    "x * 3": (lambda x: x * 3, lambda x: x * 3, {}),
    "x / 4": (lambda x: x / 4, lambda x: x / 4, {}),
    "x ** 2": (lambda x: x ** 2, lambda x: x ** 2, {}),
    "x ** 3": (lambda x: x ** 3, lambda x: x ** 3, {}),
    "x ** 0.5": (lambda x: x ** 0.5, np.sqrt, {"low": 0.5}),
    "x ** -1": (lambda x: x ** -1, lambda x: 1 / x, {"away": 0.5}),
    "2 + x": (lambda x: 2 + x, lambda x: 2 + x, {}),
    "2 - x": (lambda x: 2 - x, lambda x: 2 - x, {}),
    "3 * x": (lambda x: 3 * x, lambda x: 3 * x, {}),
    "1 / x": (lambda x: 1 / x, lambda x: 1 / x, {"away": 0.5}),
    "2 ** x": (lambda x: 2 ** x, lambda x: 2 ** x, {}),
    "-x": (lambda x: -x, np.negative, {}),
    "db.maximum(x, 0.5)": (lambda x: db.maximum(x, 0.5),
                           lambda x: np.maximum(x, 0.5), {}),
    "x * np.float64(1.5)": (lambda x: x * np.float64(1.5),
                            lambda x: x * 1.5, {}),
}


@pytest.mark.parametrize("form", sorted(SCALAR_FORMS))
@given(shape=shapes, seed=seeds)
@settings(max_examples=10)
def test_operators_with_python_scalars(form, shape, seed):
    """Scalars on either side, including the reflected ``2 - x``."""
    fn, ref, dom = SCALAR_FORMS[form]
    check_grads(fn, values(shape, seed, **dom), reference=ref)


@pytest.mark.parametrize("form", sorted(SCALAR_FORMS))
def test_operators_with_python_scalars_keep_float32(form):
    """A Python number beside a float32 tensor (``2 ** x`` included)
    keeps the value and the gradient float32, as PyTorch does."""
    fn, ref, dom = SCALAR_FORMS[form]
    x = values((3, 2), 7, **dom).astype(np.float32)
    t = db.tensor(x, requires_grad=True)
    y = fn(t)
    assert y.dtype == db.float32
    y.sum().backward()
    assert t.grad.dtype == db.float32
    np.testing.assert_allclose(y.numpy(), ref(x.astype(np.float64)), rtol=1e-5)


ARRAY_FORMS = {
    "x + c": (lambda x, c: x + c, np.add),
    "c - x": (lambda x, c: c - x, lambda x, c: c - x),
    "c * x": (lambda x, c: c * x, lambda x, c: c * x),
    "c / x": (lambda x, c: c / x, lambda x, c: c / x),
    "x / c": (lambda x, c: x / c, lambda x, c: x / c),
    "c ** x": (lambda x, c: abs(c) ** x, lambda x, c: np.abs(c) ** x),
}


@pytest.mark.parametrize("form", sorted(ARRAY_FORMS))
@given(shapes=pairs, seed=seeds)
@settings(max_examples=10)
def test_operators_with_numpy_arrays(form, shapes, seed):
    """A NumPy array on either side is a constant that broadcasts."""
    fn, ref = ARRAY_FORMS[form]
    sx, sc = shapes.input_shapes
    c = values(sc, seed + 1, away=0.5)
    check_grads(lambda x: fn(x, c), values(sx, seed, away=0.5),
                reference=lambda x: ref(x, c))


@given(shapes=pairs, seed=seeds)
@settings(max_examples=10)
def test_pow_with_tensor_exponent_on_scalar_base(shapes, seed):
    """``x ** y`` with both tensors, and a tensor raised by a tensor
    that broadcasts."""
    sa, sb = shapes.input_shapes
    check_grads(lambda a, b: (a * a + 0.5) ** b, values(sa, seed),
                values(sb, seed + 1),
                reference=lambda a, b: (a * a + 0.5) ** b)


# ---- unary ops --------------------------------------------------------------
def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_log_softmax(x, axis=-1):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


UNARY = {
    "relu": (db.relu, lambda x: np.maximum(x, 0), {"away": 0.1}),
    "Tensor.relu": (lambda x: x.relu(), lambda x: np.maximum(x, 0),
                    {"away": 0.1}),
    "sigmoid": (db.sigmoid, lambda x: 1 / (1 + np.exp(-x)), {}),
    "tanh": (db.tanh, np.tanh, {}),
    "abs": (db.abs, np.abs, {"away": 0.1}),
    "builtin abs": (lambda x: abs(x), np.abs, {"away": 0.1}),
    "exp": (db.exp, np.exp, {}),
    "log": (db.log, np.log, {"low": 0.3}),
    "sqrt": (db.sqrt, np.sqrt, {"low": 0.3}),
    "Tensor.exp": (lambda x: x.exp(), np.exp, {}),
    "Tensor.log": (lambda x: x.log(), np.log, {"low": 0.3}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(shape=shapes, seed=seeds)
@settings(max_examples=12)
def test_unary_op(name, shape, seed):
    fn, ref, dom = UNARY[name]
    check_grads(fn, values(shape, seed, **dom), reference=ref)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@given(shape=shapes, seed=seeds, data=st.data())
@settings(max_examples=15)
def test_softmax_family_along_any_axis(name, shape, seed, data):
    n = max(len(shape), 1)     # a 0-d tensor takes axis 0 or -1, as in torch
    axis = data.draw(st.integers(-n, n - 1), label="axis")
    if not shape:
        x = values(shape, seed)
        check_grads(lambda t: getattr(db, name)(t, axis=axis), x,
                    reference=lambda a: np.asarray(
                        1.0 if name == "softmax" else 0.0))
        return
    fn = getattr(db, name)
    ref = _np_softmax if name == "softmax" else _np_log_softmax
    check_grads(lambda x: fn(x, axis=axis), values(shape, seed, -4, 4),
                reference=lambda x: ref(x, axis))


def test_softmax_is_stable_for_large_logits():
    x = db.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]])
    p = db.softmax(x).numpy()
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    lp = db.log_softmax(x).numpy()
    assert np.all(np.isfinite(lp))
    s = db.sigmoid(db.tensor([-1000.0, 1000.0])).numpy()
    np.testing.assert_allclose(s, [0.0, 1.0])


# ---- reductions -------------------------------------------------------------
def axis_for(shape):
    """None, one axis (maybe negative) or a tuple of distinct axes."""
    n = len(shape)
    if n == 0:
        return st.one_of(st.none(), st.sampled_from([0, -1, (0,), ()]))
    one = st.integers(-n, n - 1)
    several = st.lists(st.integers(-n, n - 1), min_size=1, max_size=n,
                       unique_by=lambda a: a % n).map(tuple)
    return st.one_of(st.none(), one, several)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@given(shape=shapes, seed=seeds, keepdims=st.booleans(), data=st.data())
@settings(max_examples=20)
def test_reduction(name, shape, seed, keepdims, data):
    axis = data.draw(axis_for(shape), label="axis")
    rng = np.random.default_rng(seed)
    # Distinct values one apart: max has no ties, and a step of 1e-6
    # cannot change which element is largest.
    x = rng.permutation(int(np.prod(shape))).reshape(shape) * 1.0
    x = x + rng.uniform(0, 0.1, shape)
    ref = getattr(np, {"max": "amax", "min": "amin"}.get(name, name))
    np_axis = None if axis is None or not shape else axis
    if not shape and axis is not None:
        np_axis = ()               # a 0-d tensor has nothing to reduce
    check_grads(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x,
                reference=lambda a: ref(a, axis=np_axis, keepdims=keepdims))
    check_grads(lambda t: getattr(db, name)(t, axis, keepdims), x)


def test_max_shares_gradient_between_ties():
    x = db.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(),
                               [[0, 0.5, 0.5], [1, 0, 0]])
    y = db.tensor([2.0, 2.0, 2.0, 2.0], requires_grad=True)
    y.max().backward()
    np.testing.assert_allclose(y.grad.numpy(), [0.25] * 4)
    z = db.tensor([[1.0, 1.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    db.min(z, -1).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), [[0.5, 0.5, 0], [0, 1, 0]])


# ---- matrix products --------------------------------------------------------
MATMUL_CASES = [
    ((3, 4), (4, 2)),
    ((4,), (4, 2)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((3, 1), (1, 4)),          # outer product: inner dimension 1
    ((1, 3), (3, 1)),
    ((2, 3, 4), (4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),  # batched, with broadcasting
    ((4,), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((1, 4), (3, 4, 2)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_CASES)
def test_matmul_cases(sa, sb):
    a, b = values(sa, 3), values(sb, 4)
    check_grads(lambda x, y: x @ y, a, b, reference=np.matmul)
    check_grads(db.matmul, a, b, reference=np.matmul)


@given(shapes=hnp.mutually_broadcastable_shapes(
    signature=np.matmul.signature, max_dims=4, max_side=3), seed=seeds)
def test_matmul_any_shapes(shapes, seed):
    sa, sb = shapes.input_shapes
    check_grads(lambda x, y: x @ y, values(sa, seed), values(sb, seed + 1),
                reference=np.matmul)


def test_matmul_with_numpy_constant_on_either_side():
    a, c = values((3, 4), 0), values((4, 2), 1)
    check_grads(lambda x: x @ c, a, reference=lambda x: x @ c)
    c2 = values((2, 3), 2)
    check_grads(lambda x: c2 @ x, a, reference=lambda x: c2 @ x)


@pytest.mark.parametrize("bias", [True, False])
@given(lead=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3),
       sizes=st.tuples(st.integers(1, 4), st.integers(1, 4)), seed=seeds)
@settings(max_examples=12)
def test_linear_on_any_leading_axes(bias, lead, sizes, seed):
    """(*, in) -> (*, out) as torch.nn.functional.linear, 1-D input too;
    every gradient has its own tensor's shape."""
    n_in, n_out = sizes
    x, w = values(lead + (n_in,), seed), values((n_out, n_in), seed + 1)
    b = values((n_out,), seed + 2)
    if bias:
        check_grads(db.linear, x, w, b,
                    reference=lambda x, w, b: x @ w.T + b)
    else:
        check_grads(db.linear, x, w, reference=lambda x, w: x @ w.T)


def test_linear_rejects_a_wrong_feature_count_even_when_it_divides():
    """(2, 6) must not be read as (4, 3) for a weight with 3 inputs."""
    with pytest.raises(ValueError, match=r"3 features.*\(2, 6\)"):
        db.linear(db.ones(2, 6), db.ones(5, 3))
    with pytest.raises(ValueError, match="features"):
        db.linear(db.ones(()), db.ones(5, 1))
    with pytest.raises(TypeError, match="astype"):
        db.linear(db.tensor([[1, 2, 3]]), db.ones(5, 3))


@pytest.mark.parametrize("sa,sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)),
                                   ((2, 3), (3, 4)), ((), (2, 3)), ((2,), ())])
def test_dot_has_numpy_semantics(sa, sb):
    a, b = values(sa, 1), values(sb, 2)
    check_grads(db.dot, a, b, reference=np.dot)


def test_dot_and_mm_refuse_what_they_do_not_do():
    with pytest.raises(ValueError, match="matmul"):
        db.dot(db.ones(2, 2, 2), db.ones(2, 2))
    with pytest.raises(ValueError, match="2-D"):
        db.mm(db.ones(3), db.ones(3, 2))


def test_mm():
    check_grads(db.mm, values((2, 3), 0), values((3, 4), 1), reference=np.dot)


# ---- shapes -----------------------------------------------------------------
@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
@settings(max_examples=15)
def test_reshape(shape, seed, data):
    size = int(np.prod(shape))
    new = data.draw(st.sampled_from(
        [(size,), (1, size), (size, 1), (-1,), (1, -1, 1)]), label="new")
    x = values(shape, seed)
    check_grads(lambda t: t.reshape(new), x, reference=lambda a: a.reshape(new))
    check_grads(lambda t: t.reshape(*new), x)
    check_grads(lambda t: db.reshape(t, new), x)


@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
@settings(max_examples=15)
def test_transpose(shape, seed, data):
    x = values(shape, seed)
    n = len(shape)
    perm = tuple(data.draw(st.permutations(range(n)), label="perm"))
    signed = tuple(data.draw(any_sign(ax, n), label="sign") for ax in perm)
    check_grads(lambda t: t.T, x, reference=lambda a: a.T)
    check_grads(lambda t: t.transpose(signed), x,
                reference=lambda a: a.transpose(perm))
    check_grads(lambda t: db.transpose(t, *signed), x)


def test_transpose_with_negative_axes_sends_gradients_back():
    """The reproducer: x.transpose(-1, 0) must route each gradient to the
    element it came from."""
    x = db.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    (x.transpose(-1, 0) * db.tensor([[0., 10.], [0., 0.]])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0], [10, 0]])
    with pytest.raises(ValueError, match="permutation"):
        x.transpose(0, -2, 1)


@pytest.mark.parametrize("shape, a, b", [
    ((2, 3), 0, 1), ((2, 3), -1, 0), ((2, 3), 0, -2), ((4,), 0, -1),
    ((2, 3, 4), 1, 2), ((2, 3, 4), 0, -1), ((2, 3, 4, 5), -3, 3),
])
def test_transpose_of_two_axes_swaps_them_as_in_pytorch(shape, a, b):
    x = values(shape, 0)
    expected = np.swapaxes(x, a, b)
    t = db.tensor(x, dtype=db.float64)
    np.testing.assert_array_equal(t.transpose(a, b).numpy(), expected)
    np.testing.assert_array_equal(db.transpose(t, a, b).numpy(), expected)
    check_grads(lambda u: u.transpose(a, b), x,
                reference=lambda v: np.swapaxes(v, a, b))


@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
@settings(max_examples=15)
def test_swapaxes(shape, seed, data):
    n = len(shape)
    a = data.draw(st.integers(-n, n - 1), label="a")
    b = data.draw(st.integers(-n, n - 1), label="b")
    check_grads(lambda t: t.swapaxes(a, b), values(shape, seed),
                reference=lambda x: np.swapaxes(x, a, b))


@given(shape=shapes, seed=seeds, data=st.data())
@settings(max_examples=15)
def test_flatten(shape, seed, data):
    n = max(len(shape), 1)
    start = data.draw(st.integers(-n, n - 1), label="start")
    end = data.draw(st.integers(start % n, n - 1).flatmap(
        lambda e: any_sign(e, n)), label="end")
    lo, hi = start % n, end % n

    def ref(a):
        if a.ndim == 0:
            return a.reshape(1)
        s = a.shape
        return a.reshape(s[:lo] + (int(np.prod(s[lo:hi + 1])),) + s[hi + 1:])
    check_grads(lambda t: t.flatten(start, end), values(shape, seed),
                reference=ref)
    check_grads(lambda t: db.flatten(t, start, end), values(shape, seed))


INDEXES = {
    "int": lambda t: t[1],
    "negative int": lambda t: t[-1],
    "slice": lambda t: t[:, 1:3],
    "step": lambda t: t[::2, ::-1],
    "ellipsis": lambda t: t[..., 0],
    "new axis": lambda t: t[None, 1],
    "int and slice": lambda t: t[2, 1:],
    "repeated rows": lambda t: t[[0, 0, 2, 0]],
    "repeated columns": lambda t: t[:, [1, 1, 3]],
    "2-D index array": lambda t: t[np.array([[0, 1], [1, 1]])],
    "paired arrays": lambda t: t[[0, 0, 2], [1, 1, 3]],
    "tensor index": lambda t: t[db.tensor([2, 2, 1])],
    "mask": lambda t: t[np.array([True, False, True])],
    "2-D mask": lambda t: t[np.arange(12).reshape(3, 4) % 3 == 0],
    "tensor mask": lambda t: t[t > 0],
    "mixed": lambda t: t[1:, [0, 0]],
}


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_indexing(name):
    fn = INDEXES[name]
    x = values((3, 4), 7, away=0.2)
    # The forward value must be NumPy's own indexing of the same array.
    reference = {
        "tensor index": lambda a: a[np.array([2, 2, 1])],
    }.get(name, fn)
    check_grads(fn, x, reference=reference)


def index_for(shape):
    """A basic index of ``shape``: per axis an int or a slice, either of
    them possibly negative, maybe fewer parts than axes."""
    parts = []
    for n in shape:
        parts.append(st.one_of(
            st.integers(-n, n - 1),
            st.builds(slice, st.integers(-n, n) | st.none(),
                      st.integers(-n, n) | st.none(),
                      st.sampled_from([None, 1, 2, -1]))))
    return st.integers(1, len(shape)).flatmap(
        lambda k: st.tuples(*parts[:k]))


@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
@settings(max_examples=20)
def test_basic_indexing_with_negative_indices(shape, seed, data):
    index = data.draw(index_for(shape), label="index")
    x = values(shape, seed)
    if x[index].size == 0:
        return                       # nothing to differentiate
    check_grads(lambda t: t[index], x, reference=lambda a: a[index])


@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
@settings(max_examples=15)
def test_setitem_in_the_graph_over_shapes(shape, seed, data):
    index = data.draw(index_for(shape), label="index")
    target = np.empty(shape)[index].shape
    if 0 in target:
        return
    x, v = values(shape, seed), values(target, seed + 1)

    def fn(a, b):
        h = a * 1.0
        h[index] = b * 2.0
        return h

    def ref(a, b):
        h = a.copy()
        h[index] = b * 2.0
        return h
    check_grads(fn, x, v, reference=ref)


def test_repeated_index_gradient_counts_each_use():
    x = db.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 0, 2]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])


@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
@settings(max_examples=15)
def test_concat(shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3),
                      label="sizes")
    arrays = []
    for i, n in enumerate(sizes):
        s = list(shape)
        s[axis] = n
        arrays.append(values(tuple(s), seed + i))

    def ref(*a):
        return np.concatenate(a, axis=axis)
    check_grads(lambda *t: db.concat(list(t), axis=axis), *arrays,
                reference=ref)
    check_grads(lambda *t: db.cat(t, axis), *arrays)


@given(shape=shapes, seed=seeds, count=st.integers(1, 3), data=st.data())
@settings(max_examples=15)
def test_stack(shape, seed, count, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)), label="axis")
    arrays = [values(shape, seed + i) for i in range(count)]
    check_grads(lambda *t: db.stack(t, axis=axis), *arrays,
                reference=lambda *a: np.stack(a, axis=axis))


@given(shapes=hnp.mutually_broadcastable_shapes(
    num_shapes=3, min_dims=0, max_dims=4, max_side=3), seed=seeds)
@settings(max_examples=20)
def test_where(shapes, seed):
    sc, sa, sb = shapes.input_shapes
    cond = np.random.default_rng(seed).random(sc) < 0.5
    a, b = values(sa, seed + 1), values(sb, seed + 2)
    check_grads(lambda x, y: db.where(cond, x, y), a, b,
                reference=lambda x, y: np.where(cond, x, y))
    check_grads(lambda x, y: db.where(db.tensor(cond), x, y), a, b)


def test_where_with_a_scalar_branch():
    x = values((2, 3), 0)
    check_grads(lambda t: db.where(t > 0, t, 0.0), x,
                reference=lambda a: np.where(a > 0, a, 0.0))
    check_grads(lambda t: db.where(t > 0, 1.0, t), x,
                reference=lambda a: np.where(a > 0, 1.0, a))


@pytest.mark.parametrize("dtype", [db.float32, "float32", np.float64])
def test_astype_passes_gradient_back_in_the_input_dtype(dtype):
    x = db.tensor(values((2, 3), 0), dtype=db.float64, requires_grad=True)
    y = x.astype(dtype)
    assert y.dtype == np.dtype(dtype)
    (y * y).sum().backward()
    assert x.grad.dtype == db.float64
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy(), rtol=1e-6)
    check_grads(lambda t: t.astype(db.float64) * 2, x.numpy())


def test_astype_to_integer_has_no_gradient():
    x = db.tensor([1.5, 2.5], requires_grad=True)
    y = x.astype(db.int64)
    assert y.dtype == db.int64 and not y.requires_grad


# ---- losses -----------------------------------------------------------------
def _np_cross_entropy(logits, labels):
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), labels].mean()


@pytest.mark.parametrize("label_kind", ["tensor", "ndarray", "int32"])
@given(batch=st.integers(1, 6), classes=st.integers(2, 5), seed=seeds)
@settings(max_examples=12)
def test_cross_entropy_matches_float64_reference(label_kind, batch, classes,
                                                 seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (batch, classes))
    labels = rng.integers(0, classes, batch)
    y = {"tensor": db.tensor(labels), "ndarray": labels,
         "int32": labels.astype(np.int32)}[label_kind]
    check_grads(lambda z: db.cross_entropy(z, y), logits,
                reference=lambda z: _np_cross_entropy(z, labels))
    # float32 logits: the loss stays float32 and close to the reference.
    out = db.cross_entropy(db.tensor(logits.astype(np.float32)), y)
    assert out.dtype == db.float32 and out.shape == ()
    np.testing.assert_allclose(out.item(), _np_cross_entropy(logits, labels),
                               rtol=1e-5, atol=1e-6)


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_batch():
    logits = values((4, 3), 0)
    labels = np.array([0, 2, 2, 1])
    z = db.tensor(logits, requires_grad=True)
    db.cross_entropy(z, labels).backward()
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(z.grad.numpy(),
                               (_np_softmax(logits) - onehot) / 4, rtol=1e-10)


def test_cross_entropy_is_stable_for_huge_logits():
    z = db.tensor([[1e4, 0.0, -1e4], [0.0, 0.0, 0.0]])
    loss = db.cross_entropy(z, [0, 1])
    np.testing.assert_allclose(loss.item(), np.log(3) / 2, rtol=1e-5)


@pytest.mark.parametrize("labels,expect", [
    (np.array([0.0, 1.0]), "integer class labels"),
    (np.array([[0], [1]]), "shape (2,)"),
    (np.array([0, 3]), "[0, 3)"),
    (np.array([-1, 0]), "[0, 3)"),
])
def test_cross_entropy_rejects_bad_labels(labels, expect):
    with pytest.raises(ValueError, match=re.escape(expect)):
        db.cross_entropy(db.zeros(2, 3), labels)


def test_cross_entropy_rejects_logits_that_are_not_2d():
    with pytest.raises(ValueError, match="batch, classes"):
        db.cross_entropy(db.zeros(3), np.array([0]))


@given(shape=shapes, seed=seeds)
@settings(max_examples=12)
def test_mse(shape, seed):
    p, t = values(shape, seed), values(shape, seed + 1)
    check_grads(lambda a: db.mse(a, t), p,
                reference=lambda a: np.mean((a - t) ** 2))
    check_grads(lambda a: db.mse(a, db.tensor(t)), p)
    # Both sides learnable.
    check_grads(db.mse, p, t, reference=lambda a, b: np.mean((a - b) ** 2))


def test_mse_refuses_shapes_that_would_broadcast():
    with pytest.raises(ValueError, match=r"\(4, 1\).*\(4,\)"):
        db.mse(db.zeros(4, 1), db.zeros(4))


# ---- a composite, for good measure ------------------------------------------
@given(seed=seeds)
@settings(max_examples=8)
def test_small_network_expression(seed):
    x, w1, b1 = values((3, 4), seed), values((5, 4), seed + 1), values(5, seed + 2)
    w2 = values((2, 5), seed + 3)

    def f(x, w1, b1, w2):
        h = db.tanh(db.linear(x, w1, b1))
        return db.log_softmax(h @ w2.T, axis=1).mean(axis=0)
    check_grads(f, x, w1, b1, w2)
