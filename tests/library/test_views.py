"""Views are views in every mode, as in PyTorch and NumPy.

Basic indexing, ``detach()``, ``reshape``/``view`` (where no copy is
needed), ``transpose``/``permute``/``T``/``swapaxes``, ``squeeze``,
``unsqueeze`` and ``flatten`` give tensors over the same memory: a write
through any of them (``x[i] = v``, ``+=``, ``-=``, ``*=``, ``/=``, the
in-place methods) is seen by all, with or without grad mode. Gradients
through in-place changes of views are checked against finite differences,
and the errors are PyTorch's: an in-place change of a leaf that requires
grad or of a view of one, and of a tensor saved for backward.
"""

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import d2lblocks as db
from d2lblocks import hybrid, nn


def leaf(values, dtype=db.float64):
    return db.tensor(values, dtype=dtype, requires_grad=True)


# ---- the reproducers -------------------------------------------------
def test_a_write_into_a_row_is_seen_by_the_matrix():
    x = db.zeros(2, 3)
    r = x[0]
    r[1] = 7.0
    np.testing.assert_array_equal(x.numpy(), [[0, 7, 0], [0, 0, 0]])


def test_an_in_place_add_of_the_base_is_seen_by_a_slice():
    x = db.zeros(3)
    v = x[:2]
    x += 1
    np.testing.assert_array_equal(v.numpy(), [1, 1])


def test_changing_a_saved_tensor_raises_with_its_versions():
    w = leaf([1.0, 2.0])
    b = w * 1.0
    c = b * b                      # saves b
    b += 1
    b += 1
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation"
                       r".*saved by Mul.*is at version 2; expected version 0"):
        c.sum().backward()
    assert w.grad is None


# ---- every kind of view, every kind of write, both modes -----------------------
# Each maker gives the same view of a db tensor and of a NumPy array.
VIEWS = {
    "int": lambda a: a[1],
    "negative int": lambda a: a[-1],
    "slice": lambda a: a[:, 1:],
    "step": lambda a: a[::2, ::-1],
    "element": lambda a: a[1, 2] if isinstance(a, db.Tensor) else a[1, 2, ...],
    "ellipsis": lambda a: a[..., 0],
    "new axis": lambda a: a[None, 0],
    "detach": lambda a: a.detach() if isinstance(a, db.Tensor) else a[...],
    "reshape": lambda a: a.reshape(4, 3),
    "view": lambda a: a.view(-1) if isinstance(a, db.Tensor) else a.reshape(-1),
    "flatten": lambda a: a.flatten() if isinstance(a, db.Tensor) else a.reshape(-1),
    "transpose": lambda a: a.transpose(0, 1) if isinstance(a, db.Tensor) else a.T,
    "T": lambda a: a.T,
    "permute": lambda a: a.permute(1, 0) if isinstance(a, db.Tensor) else a.T,
    "swapaxes": lambda a: a.swapaxes(-1, 0),
    "unsqueeze": lambda a: a.unsqueeze(1) if isinstance(a, db.Tensor)
    else a[:, None],
    "squeeze": lambda a: a[:1].squeeze(0) if isinstance(a, db.Tensor)
    else a[:1].reshape(a.shape[1:]),
    "view of a view": lambda a: a[1:].reshape(2, 2, 2)[:, 1].T,
}

WRITES = {
    "setitem": lambda v: v.__setitem__(..., 5.0) or v,
    "setitem part": lambda v: v.__setitem__(0, 5.0) or v if v.ndim else v,
    "+=": lambda v: v.__iadd__(2.0),
    "-=": lambda v: v.__isub__(0.5),
    "*=": lambda v: v.__imul__(3.0),
    "/=": lambda v: v.__itruediv__(4.0),
}

METHODS = {
    "add_": lambda v: v.add_(2.0), "sub_": lambda v: v.sub_(0.5),
    "mul_": lambda v: v.mul_(3.0), "div_": lambda v: v.div_(4.0),
    "fill_": lambda v: v.fill_(5.0), "zero_": lambda v: v.zero_(),
    "copy_": lambda v: v.copy_(db.ones(v.shape) * 6.0),
}
NUMPY_METHODS = {
    "add_": lambda v: v.__iadd__(2.0), "sub_": lambda v: v.__isub__(0.5),
    "mul_": lambda v: v.__imul__(3.0), "div_": lambda v: v.__itruediv__(4.0),
    "fill_": lambda v: v.fill(5.0), "zero_": lambda v: v.fill(0.0),
    "copy_": lambda v: v.__setitem__(..., 6.0),
}


def _base():
    return np.arange(12, dtype=np.float64).reshape(3, 4)


@pytest.mark.parametrize("grad_mode", [True, False])
@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_a_write_through_a_view_is_seen_by_the_base(view, write, grad_mode):
    expected = _base()
    view_expected = WRITES[write](VIEWS[view](expected))
    x = db.tensor(_base())
    with db.set_grad_enabled(grad_mode):
        v = VIEWS[view](x)
        assert WRITES[write](v) is v
    np.testing.assert_array_equal(x.numpy(), expected)
    np.testing.assert_array_equal(v.numpy(), view_expected)


@pytest.mark.parametrize("grad_mode", [True, False])
@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_a_write_into_the_base_is_seen_by_the_view(view, write, grad_mode):
    expected = _base()
    WRITES[write](expected)
    x = db.tensor(_base())
    with db.set_grad_enabled(grad_mode):
        v = VIEWS[view](x)
        WRITES[write](x)
    np.testing.assert_array_equal(v.numpy(), VIEWS[view](expected))


@pytest.mark.parametrize("grad_mode", [True, False])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_in_place_methods_write_through_views(method, grad_mode):
    expected = _base()
    NUMPY_METHODS[method](expected[1:, ::2])
    x = db.tensor(_base())
    with db.set_grad_enabled(grad_mode):
        v = x[1:, ::2]
        assert METHODS[method](v) is v
    np.testing.assert_array_equal(x.numpy(), expected)


def test_two_views_of_one_base_see_each_other():
    x = db.zeros(2, 3)
    a, b = x.T, x.reshape(6)
    a[2] = 1.0                        # column 2 of x
    b[0] += 4.0
    np.testing.assert_array_equal(x.numpy(), [[4, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(a.numpy(), x.numpy().T)


def test_a_reshape_that_must_copy_is_not_a_view():
    x = db.tensor(_base())
    flat = x.T.reshape(-1)            # not expressible as a view: a copy
    flat += 100.0
    np.testing.assert_array_equal(x.numpy(), _base())


def test_a_copy_made_by_db_tensor_or_clone_is_not_a_view():
    x = db.tensor(_base())
    for other in (db.tensor(x), x.clone()):
        other += 1.0
    np.testing.assert_array_equal(x.numpy(), _base())


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=4),
       data=st.data())
def test_setitem_through_a_slice_over_shapes(shape, data):
    """Ranks 1-4 and negative bounds: x[part][i] = v writes into x."""
    shape = tuple(shape)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    start = data.draw(st.integers(-n, n - 1))
    part = (slice(None),) * (axis % len(shape)) + (slice(start, None),)
    expected = np.zeros(shape)
    expected[part][...] = 3.0
    x = db.zeros(*shape, dtype=db.float64)
    v = x[part]
    v[...] = 3.0
    np.testing.assert_array_equal(x.numpy(), expected)


def test_a_zero_d_view():
    x = db.zeros(2, 2)
    e = x[1, 1]
    assert e.shape == ()
    e += 3.0
    s = x[0, 0].reshape(())
    s.fill_(2.0)
    np.testing.assert_array_equal(x.numpy(), [[2, 0], [0, 3]])


# ---- gradients through in-place changes ---------------------------------------
def _slice_times(w, y):
    h = w * 2.0
    v = h[1:]
    v *= y                           # y's gradient reads the old h[1:]
    return (h * h).sum()


def _transpose_set(w, y):
    h = w * 1.0
    t = h.T
    t[0] = y * 3.0                   # column 0 of h
    return (h * w).sum()


def _earlier_view_follows(w, y):
    h = w * 1.0
    col = h[:, 0]                    # made before the change of h
    h += y
    return (col * col).sum() + h.sum()


def _reshape_div(w, y):
    h = w * 2.0 + 1.0
    flat = h.reshape(-1)
    flat /= y.reshape(-1) * y.reshape(-1) + 1.0   # the gradient of y reads h
    return (h * h).sum()


def _saved_exp_changed(w, y):
    """exp saves its output: changing it before backward is refused."""
    h = w.exp()
    h.reshape(-1)[0] = 1.0
    return (h * y).sum()


def _constant_base(w, y):
    c = db.zeros(2, 3, dtype=db.float64)
    c[0] = w[0] * y[1]               # a constant gets a graph
    c[1, 1:] += w[1, :2]
    return (c * c).sum()


def _detach_then_add(w, y):
    h = w * 3.0
    d = h.detach()                   # no graph back to h
    d += y * y
    return (d * h).sum()


def _view_of_view_copy(w, y):
    h = w + 0.0
    v = h.unsqueeze(0)[0, :, 1:].T
    v.copy_(y[:, :2].T * 2.0)
    return (h ** 2).sum()


def _base_write_seen_by_view(w, y):
    h = w * 1.0
    row = h[1]
    h[1] = y[0] * y[1]
    return (row * w[0]).sum()


PROGRAMS = [_slice_times, _transpose_set, _earlier_view_follows,
            _reshape_div, _constant_base, _view_of_view_copy,
            _base_write_seen_by_view]


def _inputs(program):
    rng = np.random.default_rng(7)
    w = rng.uniform(0.5, 1.5, (2, 3))
    y = rng.uniform(0.5, 1.5, (2, 3))
    if program is _slice_times:
        y = y[:1]
    if program is _transpose_set:
        y = y[:, 0]
    return w, y


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda f: f.__name__)
def test_gradients_through_in_place_changes_match_finite_differences(program):
    w, y = _inputs(program)
    assert db.grad_check(program, leaf(w), leaf(y))


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda f: f.__name__)
def test_in_place_programs_give_the_same_values_without_grad(program):
    w, y = _inputs(program)
    with db.no_grad():
        quiet = program(db.tensor(w), db.tensor(y)).item()
    assert program(leaf(w), leaf(y)).item() == pytest.approx(quiet, rel=1e-12)


def test_a_write_through_detach_changes_values_but_not_the_graph():
    """As in PyTorch: ``d = h.detach(); d += y * y`` changes h's values,
    and only d's gradient path goes to y; h's stays h = 3 w."""
    w, y = _inputs(_detach_then_add)
    tw, ty = leaf(w), leaf(y)
    _detach_then_add(tw, ty).backward()
    h = 3 * w + y * y                     # the values both tensors end with
    np.testing.assert_allclose(tw.grad.numpy(), 3 * h)
    np.testing.assert_allclose(ty.grad.numpy(), 2 * y * h)


def test_a_view_made_before_a_learnable_write_needs_a_gradient():
    base = db.zeros(3, dtype=db.float64)
    tail = base[1:]
    assert not tail.requires_grad
    w = leaf([2.0])
    base[0:1] += w
    assert base.requires_grad and tail.requires_grad
    (tail.sum() + base[0] * 3.0).backward()
    np.testing.assert_allclose(w.grad.numpy(), [3.0])


# ---- PyTorch's errors ---------------------------------------------------------------
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_view_of_a_leaf_that_requires_grad_refuses_in_place(write):
    w = leaf(_base())
    v = w[1:]
    with pytest.raises(RuntimeError, match="view of a leaf tensor that "
                                           "requires grad"):
        WRITES[write](v)
    np.testing.assert_array_equal(w.numpy(), _base())
    with db.no_grad():                # the way to update a parameter
        WRITES[write](v)
    assert w.is_leaf and w.requires_grad


def test_a_view_made_in_no_grad_refuses_a_graphed_write():
    w = leaf([1.0, 2.0, 3.0])
    h = w * 1.0
    with db.no_grad():
        v = h[1:]
    with pytest.raises(RuntimeError, match="made inside db.no_grad"):
        v += 1.0
    c = db.zeros(3, dtype=db.float64)
    with db.no_grad():
        u = c[1:]
    with pytest.raises(RuntimeError, match="made inside db.no_grad"):
        u += w[1:]
    u += 1.0                          # nothing needs a gradient: a plain write
    np.testing.assert_array_equal(c.numpy(), [0, 1, 1])


@pytest.mark.parametrize("alias", [
    lambda h: h[0], lambda h: h.T, lambda h: h.reshape(-1),
    lambda h: h.detach(), lambda h: h.unsqueeze(0).squeeze(0)])
@pytest.mark.parametrize("grad_mode", [True, False])
def test_a_saved_tensor_changed_through_a_view_raises(alias, grad_mode):
    w = leaf(_base()[:2])
    h = w * 1.0
    y = (h * h).sum()                 # Mul saves h
    with db.set_grad_enabled(grad_mode):
        v = alias(h)
        v += 1.0
    del v                             # the view may be gone: still detected
    with pytest.raises(RuntimeError, match="is at version 1; expected "
                                           "version 0"):
        y.backward()
    assert w.grad is None


def test_a_change_before_the_use_is_fine():
    w = leaf([1.0, 2.0])
    h = w * 1.0
    h[0] = 5.0
    y = (h * h).sum()                 # saved at version 1
    y.backward()
    np.testing.assert_allclose(w.grad.numpy(), [0.0, 4.0])


def test_a_view_keeps_no_graph_alive_after_it_is_gone():
    """Views and in-place nodes make no reference cycles: a graph dies
    with its last tensor, without the cycle collector."""
    gc.collect()
    gc.disable()
    try:
        w = leaf(_base())
        h = w * 1.0
        v = h[1:]
        v *= w[:2] * 2.0
        loss = (h * h).sum()
        probe = weakref.ref(h)
        del h, v, loss
        assert probe() is None
    finally:
        gc.enable()


# ---- a replay does what eager does ----------------------------------------------
class WritesThroughViews(nn.Block):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)

    def forward(self, x):
        h = self.lin(x)
        first = h[:, :1]
        first *= 2.0                  # through a view
        h[:, -1] = h[:, 1] * 0.5      # a setitem reading another column
        t = h.T
        t += 1.0
        return h * first


def test_a_hybridized_block_with_in_place_views_replays_like_eager():
    db.manual_seed(3)
    eager = WritesThroughViews()
    db.manual_seed(3)
    hyb = WritesThroughViews().hybridize()
    for _ in range(3):
        x = db.randn(2, 3)
        outs = []
        for net in (eager, hyb):
            net.zero_grad()
            y = net(x)
            (y * y).sum().backward()
            outs.append(y.numpy())
        np.testing.assert_allclose(outs[1], outs[0], rtol=1e-6)
        for p, q in zip(eager.parameters(), hyb.parameters()):
            np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(),
                                       rtol=1e-5, atol=1e-6)
    assert hybrid.stats(hyb)["replays"] == 2


def test_a_saved_output_changed_through_a_view_raises():
    w, y = _inputs(_saved_exp_changed)
    loss = _saved_exp_changed(leaf(w), leaf(y))
    with pytest.raises(RuntimeError, match="saved by Exp"):
        loss.backward()


def test_in_place_through_a_0d_view_gives_the_right_gradient():
    """NumPy gives 0-d gradients as scalars; the write's backward must
    still zero the part of the base that was overwritten."""
    def f(w):
        h = w.abs()
        v = h.T                       # a view of a 0-d tensor
        v *= w
        return v * 3.0 + h
    assert db.grad_check(f, leaf(-0.7))


# ---- on every device -------------------------------------------------------------------
def test_views_and_in_place_gradients_on_every_device(device):
    """The same writes and gradients on the host and on a GPU (the real
    one, or the simulated one of the tests)."""
    x = db.zeros(2, 3, dtype=db.float64, device=device)
    x[0][1] = 7.0
    flat = x.reshape(6)
    flat += 1.0
    x.T[0] *= 3.0
    np.testing.assert_array_equal(x.cpu().numpy(), [[3, 8, 1], [3, 1, 1]])
    w = db.tensor(_base()[:2, :3], device=device, requires_grad=True)
    h = w * 1.0
    h[:, 1:] *= w[:, :2]
    (h * h).sum().backward()
    on_host = leaf(_base()[:2, :3])
    h = on_host * 1.0
    h[:, 1:] *= on_host[:, :2]
    (h * h).sum().backward()
    assert w.grad.device == device
    np.testing.assert_allclose(w.grad.cpu().numpy(), on_host.grad.numpy())
