"""PyTorch as the reference: drawn programs of ops, views and in-place
changes run in both libraries must agree on values, ``requires_grad``,
gradients, and on whether an error is raised.

Skipped where torch is not installed (it is an optional extra, never a
dependency of the library). Hypothesis draws short programs over float64
tensors of ranks 0-4: elementwise ops, broadcasting, reductions,
softmax, products; views (basic indexing, reshape/view, transpose,
permute, T, squeeze/unsqueeze, detach); in-place changes (x[i] = v, +=,
-=, *=, /=) of leaves, intermediate values and views. Both libraries take
the same code: d2lblocks spells these as PyTorch does.

Left out on purpose: ``relu`` and ``max``/``min`` along an axis, whose
saved tensors differ from PyTorch's (see ``kernels.ReLU``), and in-place
changes whose operand shares memory with the tensor changed (PyTorch
refuses some of them, NumPy copies).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

torch = pytest.importorskip("torch")

import d2lblocks as db  # noqa: E402

RTOL, ATOL = 1e-9, 1e-11


class Skip(Exception):
    """An instruction that does not apply to the values drawn."""


# ---- the instructions ---------------------------------------------------------
# Each takes the pool of values (a list; the same program runs on a pool of
# torch tensors and one of d2lblocks tensors), the drawn integers, and
# whether this pool is torch's; it appends to the pool or changes a value
# in place. Decisions are taken from the values' shapes, which agree.
def _pick(pool, k):
    return pool[k % len(pool)]


def _dim(x, k):
    """An axis of ``x`` (negative half the time); 0 for a 0-d tensor."""
    n = max(x.ndim, 1)
    d = k % n
    return d - n if k % 2 else d


def _index(x, ks):
    """A basic index for ``x``: per axis an int (maybe negative), a slice
    (maybe with a step) or all of it."""
    if x.ndim == 0:
        raise Skip
    parts = []
    for axis, k in zip(range(x.ndim), ks):
        n = x.shape[axis]
        kind = k % 4
        if kind == 0:
            parts.append(k // 4 % n - (n if k % 8 >= 4 else 0))
        elif kind == 1:
            parts.append(slice(k // 4 % n, None))
        elif kind == 2:
            parts.append(slice(None, None, 1 + k // 4 % 2))
        else:
            parts.append(slice(None))
    return tuple(parts[:1 + ks[-1] % x.ndim])


UNARY = {
    "exp": lambda x: (x.tanh()).exp(), "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(), "neg": lambda x: -x,
    "abs": lambda x: x.abs(), "scale": lambda x: x * 1.5 + 0.25,
    "div": lambda x: x / 4.0, "square": lambda x: x ** 2,
    "log": lambda x: (x * x + 1.0).log(), "sqrt": lambda x: (x * x + 1.0).sqrt(),
    "rsub": lambda x: 2.0 - x, "clone": lambda x: x.clone(),
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b, "div": lambda a, b: a / (b * b + 1.0),
}
IN_PLACE = {
    "+=": lambda x, v: x.__iadd__(v), "-=": lambda x, v: x.__isub__(v),
    "*=": lambda x, v: x.__imul__(v), "/=": lambda x, v: x.__itruediv__(v),
}


def _same_memory(a, b, is_torch):
    if not is_torch:
        return np.shares_memory(a.data, b.data)
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def run(ins, pool, is_torch):
    kind, name, k = ins[0], ins[1], ins[2:]
    x = _pick(pool, k[0])
    if kind == "unary":
        pool.append(UNARY[name](x))
    elif kind == "binary":
        y = _pick(pool, k[1])
        try:
            np.broadcast_shapes(tuple(x.shape), tuple(y.shape))
        except ValueError:
            raise Skip from None
        pool.append(BINARY[name](x, y))
    elif kind == "reduce":
        d, keep = _dim(x, k[1]), bool(k[2] % 2)
        if name == "softmax":
            pool.append(x.softmax(dim=d))
        elif name == "all":
            pool.append(x.sum() if k[2] % 2 else x.mean())
        else:
            pool.append(getattr(x, name)(dim=d, keepdim=keep))
    elif kind == "matmul":
        y = _pick(pool, k[1])
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[0]:
            raise Skip
        pool.append(x @ y)
    elif kind == "view":
        pool.append(_view(name, x, k, is_torch))
    elif kind == "setitem":
        index = _index(x, k[1:])
        if name == "number":
            x[index] = 0.5 + k[1] % 3
            return
        v = _pick(pool, k[2])
        region = tuple(np.empty(tuple(x.shape))[index].shape)
        if tuple(v.shape) != np.broadcast_shapes(tuple(v.shape), region) \
                and np.broadcast_shapes(tuple(v.shape), region) != region:
            raise Skip
        try:
            np.broadcast_to(np.empty(tuple(v.shape)), region)
        except ValueError:
            raise Skip from None
        if _same_memory(x, v, is_torch):
            raise Skip
        x[index] = v
    elif kind == "inplace":
        if k[1] % 2:                                  # a number
            IN_PLACE[name](x, 0.5 + k[1] % 3)
            return
        v = _pick(pool, k[2])
        try:
            out = np.broadcast_shapes(tuple(x.shape), tuple(v.shape))
        except ValueError:
            raise Skip from None
        if out != tuple(x.shape) or _same_memory(x, v, is_torch):
            raise Skip
        if name == "/=":
            v = v * v + 1.0
        IN_PLACE[name](x, v)


def _view(name, x, k, is_torch):
    if name == "index":
        return x[_index(x, k[1:])]
    if name == "detach":
        return x.detach()
    if name == "transpose":
        return x.transpose(_dim(x, k[1]), _dim(x, k[2])) if x.ndim else x
    if name == "T":
        if x.ndim != 2:
            raise Skip
        return x.T
    if name == "permute":
        perm = list(np.random.default_rng(k[1]).permutation(x.ndim))
        return x.permute(tuple(int(p) for p in perm))
    if name == "unsqueeze":
        n = x.ndim + 1
        return x.unsqueeze(k[1] % n - (n if k[1] % 2 else 0))
    if name == "squeeze":
        ones = [i for i, n in enumerate(x.shape) if n == 1]
        if not ones:
            raise Skip
        return x.squeeze(ones[k[1] % len(ones)])
    # reshape/view: only of contiguous tensors, where both libraries give
    # a view (NumPy and PyTorch decide differently for some others)
    contiguous = x.is_contiguous() if is_torch else x.data.flags.c_contiguous
    if not contiguous:
        raise Skip
    shape = tuple(x.shape)
    if k[1] % 3 == 0:
        new = (-1,)
    elif k[1] % 3 == 1:
        new = shape + (1,)
    else:
        new = (1,) + shape
    return x.reshape(new) if name == "reshape" else x.view(new)


instruction = st.one_of(
    st.tuples(st.just("unary"), st.sampled_from(sorted(UNARY)),
              st.integers(0, 99)),
    st.tuples(st.just("binary"), st.sampled_from(sorted(BINARY)),
              st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("reduce"), st.sampled_from(["sum", "mean", "softmax",
                                                  "all"]),
              st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("matmul"), st.just(""), st.integers(0, 99),
              st.integers(0, 99)),
    st.tuples(st.just("view"), st.sampled_from(
        ["index", "detach", "transpose", "T", "permute", "unsqueeze",
         "squeeze", "reshape", "view"]),
        st.integers(0, 99), st.integers(0, 99), st.integers(0, 99),
        st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("setitem"), st.sampled_from(["number", "tensor"]),
              st.integers(0, 99), st.integers(0, 99), st.integers(0, 99),
              st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
    st.tuples(st.just("inplace"), st.sampled_from(sorted(IN_PLACE)),
              st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
)


def _start(shape, seed, lib):
    """Two leaves that require grad and one constant, all of ``shape``."""
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(-1.5, 1.5, shape) for _ in range(3)]
    if lib is torch:
        return [torch.tensor(a, requires_grad=i < 2) for i, a in enumerate(arrays)]
    return [db.tensor(a, requires_grad=i < 2) for i, a in enumerate(arrays)]


def _numpy(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.numpy()


def _weights(shape, i):
    n = int(np.prod(shape))
    return np.linspace(-1.0, 1.0 + i, n).reshape(shape) if n else np.zeros(shape)


def _attempt(fn):
    try:
        fn()
    except Skip:
        raise
    except Exception as exc:          # compared between the libraries
        return exc
    return None


def check_program(shape, seed, program):
    pools = {"torch": _start(shape, seed, torch), "db": _start(shape, seed, db)}
    for step, ins in enumerate(program):
        try:
            err_t = _attempt(lambda: run(ins, pools["torch"], True))
        except Skip:
            continue
        err_d = _attempt(lambda: run(ins, pools["db"], False))
        assert (err_t is None) == (err_d is None), \
            f"step {step} {ins}: torch raised {err_t!r}, d2lblocks {err_d!r}"
        if err_t is not None:
            return
    for i, (a, b) in enumerate(zip(pools["torch"], pools["db"])):
        assert tuple(a.shape) == b.shape, f"value {i}"
        np.testing.assert_allclose(b.numpy(), _numpy(a), rtol=RTOL, atol=ATOL,
                                   err_msg=f"value {i}")
        assert a.requires_grad == b.requires_grad, f"requires_grad of value {i}"
    losses = {}
    for name, pool in pools.items():
        lib = torch if name == "torch" else db
        total = None
        for i, v in enumerate(pool):
            if not v.requires_grad:
                continue
            w = lib.tensor(_weights(tuple(v.shape), i))
            term = (v * w).sum()
            total = term if total is None else total + term
        losses[name] = total
    if losses["torch"] is None:
        assert losses["db"] is None
        return
    err_t = _attempt(losses["torch"].backward)
    err_d = _attempt(losses["db"].backward)
    assert (err_t is None) == (err_d is None), \
        f"backward: torch raised {err_t!r}, d2lblocks {err_d!r}"
    for i in range(2):
        a, b = pools["torch"][i], pools["db"][i]
        if err_t is not None:
            assert b.grad is None
            continue
        ga = np.zeros(tuple(a.shape)) if a.grad is None else a.grad.numpy()
        gb = np.zeros(b.shape) if b.grad is None else b.grad.numpy()
        np.testing.assert_allclose(gb, ga, rtol=1e-7, atol=1e-9,
                                   err_msg=f"gradient of leaf {i}")


shapes = st.lists(st.integers(1, 3), min_size=0, max_size=4).map(tuple)


@given(shape=shapes, seed=st.integers(0, 2 ** 16),
       program=st.lists(instruction, min_size=1, max_size=8))
@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_drawn_programs_agree_with_pytorch(shape, seed, program):
    check_program(shape, seed, program)


# ---- the reproducers, and a few programs worth keeping --------------------
EXAMPLES = {
    "row write": ((2, 3), [("view", "index", 0, 0, 0, 0, 0, 0),
                           ("setitem", "number", 3, 1, 0, 0, 0, 0)]),
    "base add seen by slice": ((3,), [("view", "index", 2, 1, 0, 0, 0, 0),
                                      ("inplace", "+=", 2, 1, 0)]),
    "saved then changed": ((2,), [("unary", "scale", 0),
                                  ("binary", "mul", 3, 3),
                                  ("inplace", "+=", 3, 1, 0)]),
    "leaf in place": ((2, 2), [("inplace", "*=", 0, 1, 0)]),
    "view of a leaf": ((2, 2), [("view", "T", 0, 0, 0, 0, 0, 0),
                                ("inplace", "+=", 3, 1, 0)]),
    "0-d view of intermediate times leaf": (
        (), [("unary", "abs", 0), ("view", "permute", 3, 0, 0, 0, 0, 0),
             ("inplace", "*=", 4, 0, 0)]),
    "view of intermediate times leaf": (
        (2, 3), [("unary", "scale", 0), ("view", "index", 3, 1, 0, 0, 0, 0),
                 ("inplace", "*=", 4, 0, 1)]),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_agree_with_pytorch(name):
    shape, program = EXAMPLES[name]
    check_program(shape, 0, program)
