"""The Tensor itself: creation, dtypes, conversion, comparisons, truth
values, clear errors for bad input, ``no_grad`` and ``manual_seed``."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import d2lblocks as db
from d2lblocks import ops


# ---- creation and dtypes ----------------------------------------------------
def test_python_floats_default_to_float32_and_ints_to_int64():
    assert db.tensor([1.5, 2.0]).dtype == db.float32
    assert db.tensor(3.0).dtype == db.float32
    assert db.tensor([[1, 2], [3, 4]]).dtype == db.int64
    assert db.tensor([True, False]).dtype == db.bool_


def test_numpy_arrays_keep_their_dtype():
    assert db.tensor(np.zeros(3)).dtype == db.float64
    assert db.tensor(np.zeros(3, np.float32)).dtype == db.float32
    assert db.tensor(np.arange(3, dtype=np.int32)).dtype == db.int32


@pytest.mark.parametrize("dtype", [db.float64, "float64", np.float64])
def test_dtype_argument_spellings(dtype):
    t = db.tensor([1, 2, 3], dtype=dtype)
    assert t.dtype == np.float64
    assert db.zeros(2, dtype=dtype).dtype == np.float64
    assert db.ones(2, 2, dtype=dtype).dtype == np.float64
    assert db.full((2,), 7, dtype=dtype).dtype == np.float64
    assert db.rand(2, dtype=dtype).dtype == np.float64
    assert db.randn(2, dtype=dtype).dtype == np.float64
    assert db.arange(3, dtype=dtype).dtype == np.float64
    assert db.tensor([1.0]).to(dtype=dtype).dtype == np.float64


@pytest.mark.parametrize("maker", [db.zeros, db.ones, db.rand, db.randn])
def test_creation_functions_default_to_float32(maker):
    t = maker(2, 3)
    assert t.shape == (2, 3) and t.dtype == db.float32
    assert maker((4,)).shape == (4,)


def test_creation_values_match_numpy():
    np.testing.assert_array_equal(db.zeros(2, 3).numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(db.ones((3,)).numpy(), np.ones(3))
    np.testing.assert_array_equal(db.full((2, 2), 7.0).numpy(),
                                  np.full((2, 2), 7.0))
    np.testing.assert_array_equal(db.arange(5).numpy(), np.arange(5))
    assert db.arange(5).dtype == db.int64
    np.testing.assert_allclose(db.arange(0, 1, 0.25).numpy(),
                               [0, 0.25, 0.5, 0.75])
    assert db.arange(0, 1, 0.25).dtype == db.float32
    t = db.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert db.zeros_like(t).shape == (2, 2)
    np.testing.assert_array_equal(db.ones_like(t).numpy(), np.ones((2, 2)))


def test_bad_shapes_and_dtypes_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        db.zeros(-1, 2)
    with pytest.raises(TypeError, match="numeric dtype"):
        db.tensor([1.0], dtype="string")
    with pytest.raises(TypeError, match="floating point"):
        db.rand(2, dtype=db.int64)


@pytest.mark.parametrize("data", [
    "abc", ["1", "a"], [[1, 2], [3]], object(), None, {"a": 1}, [1, object()],
], ids=["string", "string list", "ragged", "object", "None", "dict", "mixed"])
def test_non_numeric_data_is_refused_with_type_error(data):
    with pytest.raises(TypeError, match="db.tensor"):
        db.tensor(data)


def test_requires_grad_on_integer_tensor_is_refused():
    with pytest.raises(TypeError, match="floating-point"):
        db.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        db.tensor([1, 2, 3]).requires_grad_()
    with pytest.raises(TypeError, match="floating-point"):
        db.zeros(3, dtype=db.int32, requires_grad=True)


# ---- conversion -------------------------------------------------------------
def test_conversions_to_python_and_numpy():
    t = db.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(np.asarray(t), t.numpy())
    assert t.numel() == 4 and t.ndim == 2 and len(t) == 2
    rows = list(t)
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0]
    s = db.tensor(2.5)
    assert s.item() == 2.5 and float(s) == 2.5 and int(s) == 2
    with pytest.raises(ValueError, match="one element"):
        t.item()
    with pytest.raises(TypeError, match="0-d"):
        len(s)


def test_one_element_integer_tensor_works_as_an_index():
    i = db.tensor(2)
    assert [10, 20, 30][i] == 30
    with pytest.raises(TypeError, match="integer"):
        [1, 2][db.tensor(1.0)]


def test_repr_shows_values_and_extras():
    assert repr(db.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "dtype=float64" in repr(db.tensor(np.zeros(2)))
    assert "requires_grad=True" in repr(db.tensor([1.0], requires_grad=True))


def test_ndarray_on_the_left_defers_to_the_tensor():
    t = db.tensor([1.0, 2.0])
    out = np.array([10.0, 20.0]) + t
    assert isinstance(out, db.Tensor)
    np.testing.assert_allclose(out.numpy(), [11.0, 22.0])
    out = np.array([10.0, 20.0]) - t
    np.testing.assert_allclose(out.numpy(), [9.0, 18.0])


def test_float32_stays_float32_through_ops():
    x = db.rand(3, 4)
    w = db.rand(4, 2)
    for out in (x + 1, x * 2.5, 2 - x, 1 / (x + 1), x ** 2, x @ w, db.exp(x),
                db.relu(x), db.softmax(x), x.sum(), x.mean(axis=0),
                db.sigmoid(x), db.tanh(x), db.log(x + 1), x.T,
                db.concat([x, x]), x[1:]):
        assert out.dtype == db.float32


def test_clone_and_detach():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.requires_grad and c.data is not x.data
    c.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), x.numpy())


# ---- comparisons and truth values -------------------------------------------
@pytest.mark.parametrize("op,ref", [
    (lambda a, b: a < b, np.less), (lambda a, b: a <= b, np.less_equal),
    (lambda a, b: a > b, np.greater), (lambda a, b: a >= b, np.greater_equal),
    (lambda a, b: a == b, np.equal), (lambda a, b: a != b, np.not_equal),
])
def test_comparisons_give_boolean_tensors_without_grad(op, ref):
    a = db.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = db.tensor([3.0, 2.0, 1.0])
    for other, other_np in ((b, b.numpy()), (2.0, 2.0),
                            (np.array([2.0, 2.0, 2.0]), np.full(3, 2.0))):
        out = op(a, other)
        assert isinstance(out, db.Tensor)
        assert out.dtype == db.bool_ and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), ref(a.numpy(), other_np))


def test_equality_with_none_falls_back_to_identity():
    t = db.tensor([1.0])
    assert (t == None) is False  # noqa: E711  (the point of the test)
    assert t != None  # noqa: E711


def test_one_element_tensors_work_in_if_and_while():
    x = db.tensor([[8.0]])
    steps = 0
    while x.abs().sum() > 1:
        x = x / 2
        steps += 1
    assert steps == 3
    assert db.tensor(1.0) and not db.tensor(0.0)
    if db.tensor([0.5]) > 0:
        pass
    else:
        pytest.fail("a true one-element comparison was false")


def test_bool_of_several_elements_is_a_clear_error():
    with pytest.raises(ValueError, match="ambiguous"):
        bool(db.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="2 elements"):
        if db.tensor([1.0, 2.0]) > 0:
            pass


def test_all_any_argmax():
    t = db.tensor([[1.0, 5.0], [7.0, 2.0]])
    assert bool((t > 0).all()) and not bool((t > 6).all())
    assert bool((t > 6).any())
    assert t.argmax(axis=1).tolist() == [1, 0]
    assert int(t.argmax()) == 2


# ---- clear errors -----------------------------------------------------------
@pytest.mark.parametrize("op,name", [
    (lambda a, b: a + b, "add"), (lambda a, b: a - b, "subtract"),
    (lambda a, b: a * b, "multiply"), (lambda a, b: a / b, "divide"),
    (lambda a, b: a ** b, "power"), (db.maximum, "maximum"),
    (lambda a, b: a < b, "compare"),
])
def test_shape_mismatch_names_the_op_and_both_shapes(op, name):
    with pytest.raises(ValueError) as info:
        op(db.ones(2, 3), db.ones(4, 5))
    text = str(info.value)
    assert name in text and "(2, 3)" in text and "(4, 5)" in text


def test_matmul_misalignment_is_explained():
    with pytest.raises(ValueError) as info:
        db.ones(2, 3) @ db.ones(2, 3)
    text = str(info.value)
    assert "matmul" in text and "(2, 3)" in text and "not aligned" in text
    with pytest.raises(ValueError, match="only"):
        db.ones(2, 3) @ db.ones(4)
    with pytest.raises(ValueError, match="linear"):
        db.linear(db.ones(2, 3), db.ones(5, 4))


def test_backward_on_non_scalar_without_gradient_says_so():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"one-element.*\(2,\)"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(db.ones(3))
    y.backward(db.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 20.0])


def test_backward_on_a_constant_says_why():
    with pytest.raises(RuntimeError, match="requires_grad"):
        (db.ones(2) * 2).sum().backward()


def test_reshape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*6 elements.*\(4,\)"):
        db.ones(2, 3).reshape(4)


def test_concat_and_stack_errors():
    with pytest.raises(ValueError, match="axis 0"):
        db.concat([db.ones(2, 3), db.ones(2, 4)])
    with pytest.raises(ValueError, match="one shape"):
        db.stack([db.ones(2), db.ones(3)])
    with pytest.raises(TypeError, match="non-empty list of tensors"):
        db.concat([])


def test_operand_of_wrong_type_is_refused():
    with pytest.raises(TypeError, match="expected a Tensor, a number"):
        db.ones(2) + "a"


# ---- grad mode and seeds ----------------------------------------------------
def test_no_grad_as_context_manager():
    x = db.tensor([1.0, 2.0], requires_grad=True)
    assert db.is_grad_enabled()
    with db.no_grad():
        assert not db.is_grad_enabled()
        y = x * 2
        with db.enable_grad():
            assert db.is_grad_enabled()
            z = x * 2
        assert not db.is_grad_enabled()
    assert db.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad


def test_no_grad_restores_mode_after_an_exception():
    with pytest.raises(KeyError):
        with db.no_grad():
            raise KeyError("boom")
    assert db.is_grad_enabled()


def test_no_grad_as_decorator():
    @db.no_grad()
    def double(t):
        """Twice t."""
        return t * 2

    x = db.tensor([1.0], requires_grad=True)
    y = double(x)
    assert not y.requires_grad
    assert double.__name__ == "double" and double.__doc__ == "Twice t."
    assert db.is_grad_enabled()
    assert (x * 2).requires_grad


def test_set_grad_enabled_as_call_context_manager_and_decorator():
    x = db.tensor([1.0], requires_grad=True)
    previous = db.set_grad_enabled(False)          # for the rest: a call
    try:
        assert not db.is_grad_enabled() and not (x * 2).requires_grad
        assert previous                            # it was on before
        with db.set_grad_enabled(True):
            assert (x * 2).requires_grad
            with db.set_grad_enabled(False):
                assert not (x * 2).requires_grad
            assert db.is_grad_enabled()
        assert not db.is_grad_enabled()            # as before the with
    finally:
        db.set_grad_enabled(previous)
    assert db.is_grad_enabled()
    with pytest.raises(KeyError):
        with db.set_grad_enabled(False):
            raise KeyError("boom")
    assert db.is_grad_enabled()

    @db.set_grad_enabled(False)
    def double(t):
        return t * 2
    assert db.is_grad_enabled()                    # decorating changes nothing
    assert not double(x).requires_grad and db.is_grad_enabled()


def test_manual_seed_makes_draws_repeat():
    db.manual_seed(123)
    a, b = db.rand(3, 4), db.randn(5)
    db.manual_seed(123)
    c, d = db.rand(3, 4), db.randn(5)
    np.testing.assert_array_equal(a.numpy(), c.numpy())
    np.testing.assert_array_equal(b.numpy(), d.numpy())
    db.manual_seed(124)
    assert not np.array_equal(db.rand(3, 4).numpy(), a.numpy())


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_manual_seed_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        db.manual_seed(seed)


def test_rand_and_randn_have_the_right_distribution():
    db.manual_seed(0)
    u = db.rand(20000).numpy()
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01
    n = db.randn(20000).numpy()
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1) < 0.03


# ---- names from the seed's other frameworks ---------------------------------
def test_random_uniform_and_normal_use_the_library_seed():
    db.manual_seed(7)
    u, n = db.random.uniform(-2, 3, (400, 50)), db.random.normal(1, 2, size=20000)
    assert u.dtype == db.float32 and n.dtype == db.float32
    assert u.shape == (400, 50) and n.shape == (20000,)
    assert u.numpy().min() >= -2 and u.numpy().max() < 3
    assert abs(u.numpy().mean() - 0.5) < 0.05
    assert abs(n.numpy().mean() - 1) < 0.06 and abs(n.numpy().std() - 2) < 0.06
    db.manual_seed(7)
    np.testing.assert_array_equal(db.random.uniform(-2, 3, (400, 50)).numpy(),
                                  u.numpy())
    expected = np.random.default_rng(7).uniform(-2, 3, (400, 50))
    np.testing.assert_array_equal(u.numpy(), expected.astype(np.float32))


def test_random_defaults_and_the_tensorflow_shape_spelling():
    one = db.random.uniform()
    assert one.shape == () and 0 <= one.item() < 1
    assert db.random.normal(size=3).shape == (3,)
    db.manual_seed(1)
    tf_style = db.random.uniform((2, 20))
    db.manual_seed(1)
    np_style = db.random.uniform(0.0, 1.0, (2, 20))
    np.testing.assert_array_equal(tf_style.numpy(), np_style.numpy())
    assert db.random.normal((3, 4)).shape == (3, 4)
    with pytest.raises(ValueError, match="size"):
        db.random.uniform(0, 1, size=(2, -1))


def test_mm_dot_matmul_relu_have_their_usual_meaning():
    a, b = db.rand(2, 3), db.rand(3, 4)
    np.testing.assert_allclose(db.mm(a, b).numpy(), a.numpy() @ b.numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(db.matmul(a, b).numpy(), a.numpy() @ b.numpy(),
                               rtol=1e-6)
    v = db.rand(3)
    assert db.dot(v, v).shape == () and db.dot(a, v).shape == (2,)
    np.testing.assert_allclose(db.dot(v, v).item(), v.numpy() @ v.numpy(),
                               rtol=1e-6)
    np.testing.assert_array_equal(db.relu(db.tensor([-1.0, 2.0])).numpy(),
                                  [0.0, 2.0])


def test_min_beside_max():
    t = db.tensor([[1.0, 5.0], [7.0, -2.0]])
    assert db.min(t).item() == -2.0 and t.min(axis=-1).tolist() == [1.0, -2.0]
    assert t.max(axis=-2, keepdims=True).tolist() == [[7.0, 5.0]]
    assert db.minimum(t, 2.0).tolist() == [[1.0, 2.0], [2.0, -2.0]]


@pytest.mark.parametrize("call", [
    lambda t: t.sum(axis=2), lambda t: t.mean(axis=-3), lambda t: t.max(axis=5),
    lambda t: db.softmax(t, axis=2), lambda t: t.transpose(0, 2),
    lambda t: db.concat([t, t], axis=-3), lambda t: db.stack([t, t], axis=3),
    lambda t: t.flatten(0, 2),
])
def test_an_axis_out_of_range_is_a_clear_error(call):
    with pytest.raises(ValueError, match=r"out of range|permutation"):
        call(db.ones(2, 3))


def test_operators_and_methods_are_declared_in_the_tensor_class():
    """A reader of tensor.py finds every operator in the class itself
    (none is attached from another module)."""
    names = ["__add__", "__radd__", "__sub__", "__rsub__", "__mul__",
             "__truediv__", "__rtruediv__", "__pow__", "__rpow__",
             "__matmul__", "__rmatmul__", "__neg__", "__abs__", "__getitem__",
             "__setitem__", "__iadd__", "__isub__", "__imul__",
             "__itruediv__", "__lt__", "__eq__", "sum", "mean", "max", "min",
             "exp", "relu", "softmax", "reshape", "transpose", "T", "argmax"]
    for name in names:
        attr = db.Tensor.__dict__[name]
        fn = attr.fget if isinstance(attr, property) else attr
        assert fn.__module__ == "d2lblocks.tensor", name
        assert fn.__qualname__.startswith("Tensor."), (name, fn.__qualname__)


# ---- PyTorch's spellings beside NumPy's ------------------------------------------------
SHAPES = [(5,), (2, 3), (2, 1, 4), (3, 2, 1, 2)]


def _array(shape, seed=0):
    return np.random.default_rng(seed).permutation(
        int(np.prod(shape))).reshape(shape).astype(np.float64)   # no ties


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reductions_take_dim_and_keepdim(shape, name):
    a = _array(shape)
    t = db.tensor(a, dtype=db.float64, requires_grad=True)
    for d in range(-len(shape), len(shape)):
        for keep in (False, True):
            got = getattr(t, name)(dim=d, keepdim=keep)
            if name in ("max", "min"):          # PyTorch's (values, indices)
                values, indices = got
                assert got.values is values and got.indices is indices
                arg = getattr(np, "arg" + name)(a, axis=d)
                np.testing.assert_array_equal(
                    indices.numpy(), np.expand_dims(arg, d) if keep else arg)
                got = values
            expected = getattr(np, name)(a, axis=d, keepdims=keep)
            np.testing.assert_allclose(got.numpy(), expected)
            np.testing.assert_allclose(
                getattr(db, name)(t, dim=d, keepdim=keep)[0].numpy()
                if name in ("max", "min") else
                getattr(db, name)(t, dim=d, keepdim=keep).numpy(), expected)


def test_max_along_dim_sends_the_gradient_to_the_maxima():
    t = db.tensor([[1.0, 5.0, 2.0], [7.0, -2.0, 0.0]], dtype=db.float64,
                  requires_grad=True)
    values, _ = t.max(dim=1)
    values.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [[0, 1, 0], [1, 0, 0]])


def test_numpy_spelling_of_max_still_gives_values():
    t = db.tensor([[1.0, 5.0], [7.0, -2.0]])
    assert t.max(1).tolist() == [5.0, 7.0]
    assert t.max(axis=0, keepdims=True).tolist() == [[7.0, 5.0]]


@pytest.mark.parametrize("shape", SHAPES)
def test_argmax_argmin_softmax_and_joins_take_dim(shape):
    a = _array(shape)
    t = db.tensor(a, dtype=db.float64)
    for d in range(-len(shape), len(shape)):
        np.testing.assert_array_equal(t.argmax(dim=d).numpy(), a.argmax(d))
        np.testing.assert_array_equal(db.argmin(t, dim=d).numpy(), a.argmin(d))
        np.testing.assert_array_equal(t.argmax(dim=d, keepdim=True).numpy(),
                                      np.expand_dims(a.argmax(d), d))
        np.testing.assert_allclose(db.softmax(t, dim=d).numpy(),
                                   db.softmax(t, axis=d).numpy())
        np.testing.assert_allclose(t.log_softmax(dim=d).numpy(),
                                   t.log_softmax(d).numpy())
        np.testing.assert_array_equal(db.cat([t, t], dim=d).numpy(),
                                      np.concatenate([a, a], axis=d))
        np.testing.assert_array_equal(db.stack([t, t], dim=d).numpy(),
                                      np.stack([a, a], axis=d))


@pytest.mark.parametrize("shape", SHAPES)
def test_view_size_dim_unsqueeze_squeeze_permute(shape):
    a = _array(shape)
    t = db.tensor(a, dtype=db.float64)
    assert t.size() == shape and t.dim() == len(shape)
    assert [t.size(d) for d in range(-len(shape), len(shape))] == \
        [shape[d] for d in range(-len(shape), len(shape))]
    np.testing.assert_array_equal(t.view(-1).numpy(), a.reshape(-1))
    for d in range(-len(shape) - 1, len(shape) + 1):
        np.testing.assert_array_equal(t.unsqueeze(d).numpy(), np.expand_dims(a, d))
        np.testing.assert_array_equal(db.unsqueeze(t, d).numpy(), np.expand_dims(a, d))
    np.testing.assert_array_equal(t.squeeze().numpy(), np.squeeze(a))
    for d in range(-len(shape), len(shape)):
        expected = np.squeeze(a, d) if shape[d] == 1 else a   # PyTorch's rule
        np.testing.assert_array_equal(t.squeeze(d).numpy(), expected)
    perm = tuple(reversed(range(len(shape))))
    np.testing.assert_array_equal(t.permute(*perm).numpy(), a.transpose(perm))
    np.testing.assert_array_equal(db.permute(t, perm).numpy(), a.transpose(perm))


def test_shape_changes_carry_gradients():
    t = db.tensor(_array((2, 1, 3)), dtype=db.float64, requires_grad=True)
    w = db.tensor(_array((3, 2, 1), seed=1), dtype=db.float64)
    (t.squeeze(1).unsqueeze(0).permute(2, 1, 0) * w).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(),
                               w.numpy().transpose(2, 1, 0).reshape(2, 1, 3))


@pytest.mark.parametrize("call, message", [
    (lambda t: t.sum(axis=0, dim=1), "both axis"),
    (lambda t: t.mean(keepdims=True, keepdim=True), "both keepdims"),
    (lambda t: db.cat([t, t], axis=1, dim=0), "both axis"),
    (lambda t: t.max(dim=(0, 1)), "one int"),
    (lambda t: t.unsqueeze(3), "out of range"),
    (lambda t: t.size(2), "out of range"),
])
def test_mixed_or_bad_spellings_are_clear_errors(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call(db.ones(2, 3))


@pytest.mark.parametrize("d", [0, -1])
@pytest.mark.parametrize("keep", [False, True])
def test_a_0d_tensor_takes_dim_0_and_minus_1_as_in_pytorch(d, keep):
    t = db.tensor(3.0, dtype=db.float64, requires_grad=True)
    for name in ("sum", "mean"):
        out = getattr(t, name)(dim=d, keepdim=keep)
        assert out.shape == () and out.item() == 3.0
    values, indices = t.max(dim=d, keepdim=keep)
    assert values.shape == () and values.item() == 3.0 and indices.item() == 0
    assert t.argmin(dim=d, keepdim=keep).item() == 0
    assert db.softmax(t, dim=d).item() == 1.0 and t.log_softmax(dim=d).item() == 0.0
    assert t.unsqueeze(d).shape == (1,) and t.squeeze(d).shape == ()
    assert t.size() == () and t.dim() == 0
    values.backward()
    assert t.grad.item() == 1.0


@given(data=st.data(), rank=st.integers(0, 4))
def test_argmax_and_argmin_match_numpy_on_any_rank_and_axis(data, rank):
    """Ties included (values drawn from a few integers): the first index
    wins, as in NumPy and PyTorch."""
    shape = data.draw(hnp.array_shapes(min_dims=rank, max_dims=rank, min_side=1,
                                       max_side=4))
    a = data.draw(hnp.arrays(np.float64, shape,
                             elements=st.integers(-2, 2).map(float)))
    axis = data.draw(st.none() | st.integers(-max(rank, 1), max(rank, 1) - 1))
    keep = data.draw(st.booleans()) and axis is not None
    t = db.tensor(a, dtype=db.float64)
    for name in ("argmax", "argmin"):
        got = getattr(t, name)(dim=axis, keepdim=keep).numpy()
        if rank == 0:                    # PyTorch: index 0, shape ()
            expected = np.asarray(0)
        else:
            expected = getattr(a, name)(axis)
            if keep:
                expected = np.expand_dims(expected, axis)
        assert got.shape == np.shape(expected)
        np.testing.assert_array_equal(got, expected)


# ---- PyTorch's keyword names everywhere -----------------------------------------
# Each public function and method that has a PyTorch namesake takes PyTorch's
# names for its arguments: these are torch's signatures (first names only).
TORCH_NAMES = {
    "add": ("input", "other"), "sub": ("input", "other"),
    "mul": ("input", "other"), "div": ("input", "other"),
    "pow": ("input", "exponent"), "neg": ("input",),
    "maximum": ("input", "other"), "minimum": ("input", "other"),
    "where": ("condition", "input", "other"),
    "matmul": ("input", "other"), "mm": ("input", "mat2"),
    "dot": ("input", "tensor"), "linear": ("input", "weight", "bias"),
    "exp": ("input",), "log": ("input",), "sqrt": ("input",),
    "abs": ("input",), "relu": ("input",), "sigmoid": ("input",),
    "tanh": ("input",), "softmax": ("input",), "log_softmax": ("input",),
    "sum": ("input",), "mean": ("input",), "max": ("input",),
    "min": ("input",), "argmax": ("input", "dim", "keepdim"),
    "argmin": ("input", "dim", "keepdim"), "unsqueeze": ("input", "dim"),
    "squeeze": ("input", "dim"), "flatten": ("input", "start_dim", "end_dim"),
    "swapaxes": ("input", "axis0", "axis1"),
    "cross_entropy": ("input", "target"), "concat": ("tensors",),
    "cat": ("tensors",), "stack": ("tensors",),
}


@pytest.mark.parametrize("name", sorted(TORCH_NAMES))
def test_functions_take_pytorchs_argument_names(name):
    import inspect
    params = list(inspect.signature(getattr(ops, name)).parameters)
    assert tuple(params[:len(TORCH_NAMES[name])]) == TORCH_NAMES[name]


KEYWORD_CALLS = [
    (lambda x: x.transpose(dim0=0, dim1=1), lambda x: x.T),
    (lambda x: db.transpose(x, dim0=1, dim1=0), lambda x: x.T),
    (lambda x: x.swapaxes(axis0=0, axis1=-1), lambda x: x.T),
    (lambda x: db.swapaxes(input=x, axis0=0, axis1=1), lambda x: x.T),
    (lambda x: x.argmax(1, keepdim=True), lambda x: x.argmax(1).unsqueeze(1)),
    (lambda x: x.argmax(1, True), lambda x: x.argmax(1).unsqueeze(1)),
    (lambda x: x.argmin(dim=0, keepdim=True), lambda x: x.argmin(0).unsqueeze(0)),
    (lambda x: db.argmax(x, 1, True), lambda x: x.argmax(1).unsqueeze(1)),
    (lambda x: db.argmin(input=x, dim=-1), lambda x: x.argmin(-1)),
    (lambda x: x.permute(dims=(1, 0)), lambda x: x.T),
    (lambda x: db.permute(x, dims=(1, 0)), lambda x: x.T),
    (lambda x: x.reshape(shape=(3, 2)), lambda x: x.reshape(3, 2)),
    (lambda x: db.reshape(x, shape=(6,)), lambda x: x.reshape(-1)),
    (lambda x: x.view(size=(3, 2)), lambda x: x.reshape(3, 2)),
    (lambda x: db.exp(input=x), lambda x: x.exp()),
    (lambda x: db.softmax(input=x, dim=0), lambda x: x.softmax(0)),
    (lambda x: db.sum(input=x, dim=1, keepdim=True), lambda x: x.sum(1, True)),
    (lambda x: db.flatten(input=x, start_dim=0, end_dim=-1), lambda x: x.reshape(-1)),
    (lambda x: db.unsqueeze(input=x, dim=0), lambda x: x.reshape(1, 2, 3)),
    (lambda x: db.where(condition=x > 0.5, input=x, other=0.0),
     lambda x: db.where(x > 0.5, x, 0.0)),
    (lambda x: db.maximum(input=x, other=0.5), lambda x: db.maximum(x, 0.5)),
    (lambda x: db.mm(input=x, mat2=x.T), lambda x: x @ x.T),
    (lambda x: db.dot(input=x[0], tensor=x[1]), lambda x: (x[0] * x[1]).sum()),
    (lambda x: db.linear(input=x, weight=x), lambda x: x @ x.T),
    (lambda x: ops.pow(input=x, exponent=2), lambda x: x * x),
    (lambda x: ops.add(input=x, other=x), lambda x: x * 2),
    (lambda x: ops.sub(2.0, other=x), lambda x: 2.0 - x),
    (lambda x: db.cross_entropy(input=x, target=[0, 2]),
     lambda x: db.cross_entropy(x, [0, 2])),
]


@pytest.mark.parametrize("call, same", KEYWORD_CALLS)
def test_pytorch_keywords_give_what_positions_give(call, same):
    x = db.tensor(np.random.default_rng(0).random((2, 3)))
    got, expected = call(x), same(x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12)


def test_backward_and_requires_grad_take_pytorchs_keywords():
    x = db.tensor([1.0, 2.0]).requires_grad_(requires_grad=True)
    (x * 3).backward(gradient=db.tensor([1.0, 0.5]))
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 1.5])
    with pytest.raises(TypeError, match="same argument"):
        (x * 3).backward(db.ones(2), grad=db.ones(2))


# ---- 0-d tensors promote like numbers --------------------------------------------
ZERO_D_OPS = {   # the op on tensors, and on NumPy values
    "+": (lambda a, b: a + b, np.add), "-": (lambda a, b: a - b, np.subtract),
    "*": (lambda a, b: a * b, np.multiply), "/": (lambda a, b: a / b, np.divide),
    "**": (lambda a, b: a ** b, np.power),
    "maximum": (db.maximum, np.maximum), "minimum": (db.minimum, np.minimum),
    "where": (lambda a, b: db.where(db.tensor(True), a, b),
              lambda a, b: np.where(True, a, b)),
}


@pytest.mark.parametrize("name", sorted(ZERO_D_OPS))
@pytest.mark.parametrize("shape", [(3,), (2, 3), (1, 2, 1, 3)])
def test_a_0d_float64_tensor_keeps_a_float32_tensor_float32(name, shape):
    fn, np_fn = ZERO_D_OPS[name]
    x = db.tensor(np.full(shape, 1.5, np.float32), requires_grad=True)
    c = db.tensor(2.0, dtype=db.float64, requires_grad=True)
    for out, expected in ((fn(x, c), np_fn(x.numpy(), 2.0)),
                          (fn(c, x), np_fn(2.0, x.numpy()))):
        assert out.dtype == db.float32
        np.testing.assert_allclose(out.numpy(), np.broadcast_to(expected, shape),
                                   rtol=1e-6)
        out.sum().backward()
    assert c.grad is None or c.grad.dtype == db.float64
    assert x.grad.dtype == db.float32


def test_0d_tensors_among_themselves_and_across_kinds():
    f64, f32 = db.tensor(1.0, dtype=db.float64), db.tensor(1.0)
    assert (f64 + f32).dtype == db.float64          # both 0-d: as usual
    assert (db.tensor([1, 2]) + f64).dtype == db.float64    # higher kind wins
    assert (db.tensor([1, 2], dtype=db.int32) + db.tensor(3)).dtype == db.int32
    assert (db.tensor([1.0]) + db.tensor(3)).dtype == db.float32


# ---- NumPy scalars where Python numbers go ------------------------------------------
def test_numpy_scalars_are_accepted_where_python_numbers_are():
    i, f = np.int64(3), np.float32(2.0)
    assert db.full(i, 1.0).shape == (3,)
    assert db.zeros(np.int32(2), i).shape == (2, 3)
    x = db.rand(i, 2, dtype=db.float64)
    assert x.reshape(np.int64(2), -1).shape == (2, 3)
    assert x.sum(dim=np.int64(1)).shape == (3,)
    assert x[np.int64(0)].shape == (2,)
    assert x.transpose(np.int64(0), np.int64(1)).shape == (2, 3)
    assert x.unsqueeze(np.int64(0)).shape == (1, 3, 2)
    assert (x * f).dtype == db.float64 and (db.ones(2) * np.float64(2)).dtype == db.float32
    x.fill_(f)
    np.testing.assert_array_equal(x.numpy(), np.full((3, 2), 2.0))
    db.manual_seed(np.int64(4))
    assert db.random.uniform(size=np.int64(3)).shape == (3,)


# ---- functions given something other than a tensor ----------------------------------
NOT_TENSORS = {
    "relu": lambda v: db.relu(v), "exp": lambda v: db.exp(v),
    "log": lambda v: db.log(v), "sqrt": lambda v: db.sqrt(v),
    "abs": lambda v: db.abs(v), "sigmoid": lambda v: db.sigmoid(v),
    "tanh": lambda v: db.tanh(v), "softmax": lambda v: db.softmax(v, dim=0),
    "log_softmax": lambda v: db.log_softmax(v), "sum": lambda v: db.sum(v),
    "mean": lambda v: db.mean(v), "max": lambda v: db.max(v),
    "min": lambda v: db.min(v), "argmax": lambda v: db.argmax(v),
    "argmin": lambda v: db.argmin(v), "unsqueeze": lambda v: db.unsqueeze(v, 0),
    "squeeze": lambda v: db.squeeze(v), "flatten": lambda v: db.flatten(v),
    "reshape": lambda v: db.reshape(v, -1), "permute": lambda v: db.permute(v, 0),
    "transpose": lambda v: db.transpose(v), "swapaxes": lambda v: db.swapaxes(v, 0, 0),
    "linear": lambda v: db.linear(v, db.ones(1, 1)),
    "cross_entropy": lambda v: db.cross_entropy(v, [0]),
    "mse": lambda v: db.mse(v, db.ones(1)),
    "matmul": lambda v: db.matmul(v, v),
}


@pytest.mark.parametrize("name", sorted(NOT_TENSORS))
@pytest.mark.parametrize("value", [[1.0], np.ones(1), 1.5],
                         ids=["list", "array", "float"])
def test_a_function_given_no_tensor_says_to_wrap_it(name, value):
    with pytest.raises(TypeError, match=rf"{name}: expected a Tensor.*got "
                                        rf".*db\.tensor"):
        NOT_TENSORS[name](value)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 1, 3, 2)])
def test_all_and_any_take_dim_and_keepdim(shape):
    a = np.random.default_rng(1).random(shape) > 0.4
    x = db.tensor(a)
    assert x.all().item() == a.all() and x.any().item() == a.any()
    for d in range(-max(len(shape), 1), max(len(shape), 1)):
        for keep in (False, True):
            axis = None if not shape else d
            np.testing.assert_array_equal(x.all(d, keepdim=keep).numpy(),
                                          a.all(axis=axis, keepdims=keep))
            np.testing.assert_array_equal(x.any(dim=d, keepdim=keep).numpy(),
                                          a.any(axis=axis, keepdims=keep))


# ---- the ops as functions of the package ---------------------------------------
def test_every_op_function_is_exported_by_the_package():
    missing = [name for name in ops.__all__
               if getattr(db, name, None) is not getattr(ops, name)]
    assert missing == []


def test_the_arithmetic_functions_compute_and_differentiate():
    a = db.tensor([[1.0, -2.0], [3.0, 0.5]], requires_grad=True)
    b = db.tensor([2.0, 4.0], requires_grad=True)
    x, y = a.numpy(), b.numpy()
    cases = [(db.add, x + y), (db.sub, x - y), (db.mul, x * y),
             (db.div, x / y)]
    for fn, want in cases:
        np.testing.assert_allclose(fn(a, b).numpy(), want, rtol=1e-6)
        assert db.grad_check(fn, a, b)
    np.testing.assert_allclose(db.pow(a, 2).numpy(), x ** 2, rtol=1e-6)
    np.testing.assert_allclose(db.pow(2.0, a).numpy(), 2.0 ** x, rtol=1e-6)
    np.testing.assert_allclose(db.neg(a).numpy(), -x)
    np.testing.assert_allclose(db.add(3, a).numpy(), 3 + x)
    assert db.grad_check(lambda t: db.neg(db.pow(t, 3)), a)
    with pytest.raises(TypeError):
        db.neg([1.0, 2.0])
