"""Differentiable operations, each forward beside its backward rule.

Every op follows one pattern: compute the output array; if recording is on
and some input requires a gradient, return ``_node(out, parents, backward)``
where ``backward(g)`` returns one gradient per parent (``None`` for a parent
that needs none, so no work is done for it); otherwise return a plain tensor.

NumPy functions are used throughout: CuPy arrays implement NumPy's dispatch
protocols, so the same code runs on a GPU.
"""

import numbers

import numpy as np

from . import backend
from .tensor import Tensor, _node, _wrap, _mode, _new, as_dtype

__all__ = ["unbroadcast", "add", "sub", "mul", "div", "pow", "neg", "matmul",
           "exp", "log", "abs", "sqrt", "relu", "sigmoid", "tanh", "softmax",
           "log_softmax", "cross_entropy", "mse", "linear", "sum", "mean", "max",
           "reshape", "transpose", "concat", "cat", "stack", "astype",
           "where", "maximum"]

_builtin_max = max


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the gradient of a broadcast.

    When ``x`` of shape ``shape`` was broadcast to ``grad.shape`` in the
    forward pass, each element of ``x`` was used many times, so its gradient
    is the sum over the copies: over the leading axes that broadcasting
    added, and over each axis where ``x`` had length 1.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return _rsum(grad, axes, True).reshape(shape)


# ---- helpers -------------------------------------------------------------------
def _rsum(x, axis=None, keepdims=False):
    """``x.sum(...)`` without NumPy's Python-level wrapper on the host (the
    wrapper costs more than the sum itself for small arrays)."""
    if isinstance(x, np.ndarray):
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return x.sum(axis=axis, keepdims=keepdims)


def _rmax(x, axis=None, keepdims=False):
    """``x.max(...)``, likewise."""
    if isinstance(x, np.ndarray):
        return np.maximum.reduce(x, axis=axis, keepdims=keepdims)
    return x.max(axis=axis, keepdims=keepdims)


def _const(value):
    """The array (or number) to combine with a tensor's data."""
    if isinstance(value, (numbers.Number, np.ndarray, np.generic)) \
            or hasattr(value, "__cuda_array_interface__"):
        return value
    arr = np.asarray(value) if isinstance(value, (list, tuple)) else None
    if arr is None or arr.dtype.kind not in "biuf":
        raise TypeError(f"expected a Tensor, a number or a numeric array, "
                        f"got {type(value).__name__}")
    return arr


def _mismatch(op, a, b, exc):
    """A clear error for two operands that cannot be combined."""
    da, db = backend.device_of(_data(a)), backend.device_of(_data(b))
    if da != db:
        return RuntimeError(f"{op}: the operands are on different devices, "
                            f"{da} and {db}; move one with .to(device)")
    sa, sb = np.shape(_data(a)), np.shape(_data(b))
    return ValueError(f"{op}: shapes {sa} and {sb} are not compatible "
                      f"({exc})")


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _binary(name, fn, rule_a, rule_b, doc):
    """Make an elementwise op of a tensor ``a`` and a tensor or constant ``b``.

    ``rule_a(g, ad, bd, out)`` is the gradient with respect to ``a`` before
    broadcasting is undone (``None`` means "just ``g``"); likewise ``rule_b``.
    """
    def op(a, b):
        ad = a.data
        if type(b) in _SCALARS:               # fast path: x * 2.0, x + 1
            out = fn(ad, b)
            if not (a.requires_grad and _mode.enabled):
                return _wrap(out)
            if rule_a is None:
                return _node(out, (a,), _identity)
            return _node(out, (a,), lambda g: (rule_a(g, ad, b, out),))
        b_is_tensor = isinstance(b, Tensor)
        bd = b.data if b_is_tensor else _const(b)
        try:
            out = fn(ad, bd)
        except (TypeError, ValueError) as exc:
            raise _mismatch(name, a, b, exc) from None
        need_a = a.requires_grad
        need_b = b_is_tensor and b.requires_grad
        if not (_mode.enabled and (need_a or need_b)):
            return _wrap(out)
        shape_a = ad.shape if ad.shape != out.shape else None
        shape_b = bd.shape if b_is_tensor and bd.shape != out.shape else None

        def backward(g):
            ga = gb = None
            if need_a:
                ga = g if rule_a is None else rule_a(g, ad, bd, out)
                if shape_a is not None:
                    ga = unbroadcast(ga, shape_a)
            if need_b:
                gb = g if rule_b is None else rule_b(g, ad, bd, out)
                if shape_b is not None:
                    gb = unbroadcast(gb, shape_b)
            return ga, gb
        return _node(out, (a, b) if b_is_tensor else (a,), backward)
    op.__name__, op.__doc__ = name.split()[0], doc
    return op


_SCALARS = frozenset({float, int, np.float32, np.float64})


def _identity(g):
    return (g,)


def _unary(a, out, rule):
    """Finish a one-input op: ``rule(g)`` gives the input's gradient."""
    if _mode.enabled and a.requires_grad:
        return _node(out, (a,), lambda g: (rule(g),))
    return _wrap(out)


# ---- arithmetic ------------------------------------------------------------------
def _negate(g, x, y, o):
    return -g


add = _binary("add (+)", np.add, None, None, "``a + b`` with broadcasting.")
sub = _binary("subtract (-)", np.subtract, None, _negate,
              "``a - b`` with broadcasting.")
mul = _binary("multiply (*)", np.multiply, lambda g, x, y, o: g * y,
              lambda g, x, y, o: g * x, "``a * b`` elementwise, with broadcasting.")
div = _binary("divide (/)", np.true_divide, lambda g, x, y, o: g / y,
              lambda g, x, y, o: -g * o / y, "``a / b`` elementwise, with broadcasting.")
pow = _binary("power (**)", np.power, lambda g, x, y, o: g * y * x ** (y - 1),
              lambda g, x, y, o: g * o * np.log(x),
              "``a ** b`` elementwise; ``b`` may be a number or a tensor.")
maximum = _binary("maximum", np.maximum, lambda g, x, y, o: g * (x >= y),
                  lambda g, x, y, o: g * (x < y),
                  "Elementwise maximum; ties send the gradient to ``a``.")

# Reflected operators (``2 - x``): ``b`` is never a tensor here.
_rsub = _binary("subtract (-)", lambda x, y: y - x, _negate, None, None)
_rdiv = _binary("divide (/)", lambda x, y: y / x,
                lambda g, x, y, o: -g * o / x, None, None)
_rpow = _binary("power (**)", lambda x, y: y ** x,
                lambda g, x, y, o: g * o * np.log(y), None, None)


def neg(a):
    """``-a``."""
    return _unary(a, -a.data, np.negative)


def exp(a):
    """Elementwise exponential."""
    out = np.exp(a.data)
    return _unary(a, out, lambda g: g * out)


def log(a):
    """Elementwise natural logarithm."""
    x = a.data
    return _unary(a, np.log(x), lambda g: g / x)


def sqrt(a):
    """Elementwise square root."""
    out = np.sqrt(a.data)
    return _unary(a, out, lambda g: g / (2 * out))


def abs(a):
    """Elementwise absolute value (gradient 0 at 0)."""
    x = a.data
    return _unary(a, np.abs(x), lambda g: g * np.sign(x))


def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b`` (both broadcast)."""
    cond = _data(condition)
    a = a if isinstance(a, Tensor) else _wrap(np.asarray(a))
    op = _binary("where", lambda x, y: np.where(cond, x, y),
                 lambda g, x, y, o: np.where(cond, g, 0),
                 lambda g, x, y, o: np.where(cond, 0, g), None)
    return op(a, b)


# ---- activations and losses ----------------------------------------------------
def relu(a):
    """``max(a, 0)`` elementwise."""
    x = a.data
    return _unary(a, np.maximum(x, 0), lambda g: g * (x > 0))


def sigmoid(a):
    """The logistic function ``1 / (1 + exp(-a))``, computed stably."""
    out = np.tanh(a.data * 0.5)
    out *= 0.5
    out += 0.5
    return _unary(a, out, lambda g: g * out * (1 - out))


def tanh(a):
    """Elementwise hyperbolic tangent."""
    out = np.tanh(a.data)
    return _unary(a, out, lambda g: g * (1 - out * out))


def softmax(a, axis=-1):
    """Softmax along ``axis``: exponentials normalised to sum to 1."""
    x = a.data
    e = np.exp(x - _rmax(x, axis, True))
    out = e / _rsum(e, axis, True)
    return _unary(a, out, lambda g: out * (g - _rsum(g * out, axis, True)))


def log_softmax(a, axis=-1):
    """``log(softmax(a))``, computed without overflow."""
    x = a.data
    shifted = x - _rmax(x, axis, True)
    out = shifted - np.log(_rsum(np.exp(shifted), axis, True))
    return _unary(a, out, lambda g: g - np.exp(out) * _rsum(g, axis, True))


def _labels(labels, logits):
    """Integer class labels as an array on the logits' device, checked."""
    y = labels.data if isinstance(labels, Tensor) else labels
    if not (isinstance(y, np.ndarray) or hasattr(y, "__cuda_array_interface__")):
        y = np.asarray(y)
    batch = logits.shape[0]
    if y.dtype.kind not in "iu" or y.shape != (batch,):
        raise ValueError(
            f"cross_entropy: expected integer class labels of shape ({batch},) "
            f"for logits of shape {logits.shape}, got dtype {y.dtype} and "
            f"shape {y.shape}")
    if type(y) is not type(logits) and backend.device_of(y) != backend.device_of(logits):
        y = backend.move(y, backend.device_of(logits))
    # Labels >= classes fail at the fancy index in cross_entropy; negative
    # ones would silently count from the end, so they are checked here.
    if batch and y.dtype.kind == "i" and _rmin(y) < 0:
        raise _label_error(y, logits.shape[1])
    return y


def _rmin(y):
    return np.minimum.reduce(y) if isinstance(y, np.ndarray) else int(y.min())


def _label_error(y, classes):
    return ValueError(f"cross_entropy: labels must lie in [0, {classes}), got "
                      f"values from {int(y.min())} to {int(y.max())}")


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy of ``logits`` (batch, classes) against
    integer ``labels`` (batch,), fused for speed and stability.

    The gradient with respect to the logits is ``(softmax - onehot) / batch``.
    """
    x = logits.data
    if x.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (batch, "
                         f"classes), got shape {x.shape}")
    y = _labels(labels, x)
    batch = x.shape[0]
    rows = backend.namespace_of(x).arange(batch)
    shifted = x - _rmax(x, 1, True)
    e = np.exp(shifted)
    total = _rsum(e, 1, True)
    try:
        picked = shifted[rows, y]
    except IndexError:
        raise _label_error(y, x.shape[1]) from None
    per_example = np.log(total).reshape(batch)
    per_example -= picked
    if batch == 1:                     # the mean of one loss needs no sum
        out = per_example.reshape(())
    else:
        out = _rsum(per_example, 0, True).reshape(())
        out /= _builtin_max(batch, 1)

    def rule(g):
        p = e / total
        p[rows, y] -= 1
        p *= g / batch
        return p
    return _unary(logits, out, rule)


def mse(pred, target):
    """Mean squared error ``mean((pred - target) ** 2)``.

    The shapes must match exactly: a (batch, 1) prediction against a (batch,)
    target would otherwise broadcast to (batch, batch) and give a wrong loss.
    """
    t = _data(target)
    if pred.shape != np.shape(t):
        raise ValueError(f"mse: prediction shape {pred.shape} and target shape "
                         f"{np.shape(t)} differ; reshape one so they match")
    if isinstance(target, Tensor) and target.requires_grad:
        return ((pred - target) ** 2).mean()
    diff = pred.data - t
    out = np.asarray((diff * diff).mean(), dtype=pred.dtype)
    scale = 2.0 / _builtin_max(diff.size, 1)
    return _unary(pred, out, lambda g: diff * (g * scale))


# ---- reductions and shapes -----------------------------------------------------
def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    return tuple(sorted(ax % ndim if ndim else ax for ax in axes))


def _reduce(a, reduce, axis, keepdims, scale_by_count):
    """Shared body of ``sum`` and ``mean``: the gradient is spread evenly
    back over the reduced axes (divided by their size for a mean)."""
    x = a.data
    kept = reduce(axis=axis, keepdims=True)
    if keepdims:
        out = kept
    elif axis is None:
        out = kept.reshape(())
    else:
        axes = _axes(axis, x.ndim)
        out = kept.reshape(tuple(n for i, n in enumerate(x.shape) if i not in axes))
    kept_shape = kept.shape
    count = x.size // _builtin_max(kept.size, 1) if scale_by_count else 1

    def rule(g):
        full = np.empty_like(x)
        full[...] = g.reshape(kept_shape) if count == 1 else g.reshape(kept_shape) / count
        return full
    return _unary(a, out, rule)


def sum(a, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes when None)."""
    return _reduce(a, lambda axis, keepdims: _rsum(a.data, axis, keepdims),
                   axis, keepdims, False)


def mean(a, axis=None, keepdims=False):
    """Mean over ``axis`` (all axes when None)."""
    return _reduce(a, a.data.mean, axis, keepdims, True)


def _expand(g, axis, ndim, keepdims):
    """Put back the axes a reduction removed, so ``g`` broadcasts."""
    if keepdims or ndim == 0:
        return g
    return np.expand_dims(g, _axes(axis, ndim))


def max(a, axis=None, keepdims=False):
    """Maximum over ``axis``; tied maxima share the gradient equally."""
    x = a.data
    kept = x.max(axis=axis, keepdims=True)
    axes = _axes(axis, x.ndim)
    out = kept if keepdims else kept.reshape(
        tuple(n for i, n in enumerate(x.shape) if i not in axes))

    def rule(g):
        mask = x == kept
        g = _expand(g, axis, x.ndim, keepdims)
        return mask * (g / mask.sum(axis=axis, keepdims=True))
    return _unary(a, out, rule)


def reshape(a, *shape):
    """The same elements in a new shape: ``x.reshape(2, -1)``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    x = a.data
    try:
        out = x.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({x.size} elements) into shape {shape}") from None
    old = x.shape
    return _unary(a, out, lambda g: g.reshape(old))


def transpose(a, *axes):
    """Permute axes (reverse them when none are given)."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    x = a.data
    out = x.transpose(axes or None)
    inverse = np.argsort(axes) if axes else None
    return _unary(a, out, lambda g: g.transpose(inverse))


def astype(a, dtype):
    """A copy with element type ``dtype``."""
    x = a.data
    out = x.astype(as_dtype(dtype))
    if out.dtype.kind != "f":
        return _wrap(out)
    return _unary(a, out, lambda g: g.astype(x.dtype))


def _index(idx):
    """Replace tensors inside an index by their arrays."""
    if isinstance(idx, tuple):
        return tuple(_data(i) for i in idx)
    return _data(idx)


def _is_basic(idx):
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, numbers.Integral))
               for p in parts)


def getitem(a, idx):
    """``a[idx]``: slicing, integer and boolean indexing."""
    idx = _index(idx)
    x = a.data
    out = x[idx]

    def rule(g):
        full = np.zeros_like(x)
        if _is_basic(idx):
            full[idx] = g
        else:
            backend.scatter_add(full, idx, g)
        return full
    return _unary(a, out, rule)


def _index_put(a, idx, value):
    """``a`` with ``a[idx] = value`` applied, out of place."""
    idx = _index(idx)
    v_is_tensor = isinstance(value, Tensor)
    v = value.data if v_is_tensor else _const(value)
    out = a.data.copy()
    out[idx] = v
    need_a, need_v = a.requires_grad, v_is_tensor and value.requires_grad
    if not (_mode.enabled and (need_a or need_v)):
        return _wrap(out)

    def backward(g):
        ga = None
        if need_a:
            ga = g.copy()
            ga[idx] = 0
        gv = unbroadcast(g[idx], np.shape(v)) if need_v else None
        return ga, gv
    return _node(out, (a, value) if v_is_tensor else (a,), backward)


def _sequence(tensors, name):
    tensors = list(tensors)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{name}: expected a non-empty list of tensors")
    return tensors


def concat(tensors, axis=0):
    """Join tensors along an existing ``axis``."""
    tensors = _sequence(tensors, "concat")
    arrays = [t.data for t in tensors]
    try:
        out = np.concatenate(arrays, axis=axis)
    except (ValueError, TypeError) as exc:
        devices = {backend.device_of(x) for x in arrays}
        if len(devices) > 1:
            raise RuntimeError(f"concat: the tensors are on different devices "
                               f"{sorted(map(str, devices))}") from None
        raise ValueError(f"concat along axis {axis}: shapes "
                         f"{[x.shape for x in arrays]} differ outside that "
                         f"axis ({exc})") from None
    if not (_mode.enabled and any(t.requires_grad for t in tensors)):
        return _wrap(out)
    ax = axis % out.ndim
    cuts = np.cumsum([x.shape[ax] for x in arrays])[:-1].tolist()
    needs = [t.requires_grad for t in tensors]

    def backward(g):
        return [p if n else None for p, n in zip(np.split(g, cuts, axis=ax), needs)]
    return _node(out, tuple(tensors), backward)


cat = concat


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new ``axis``."""
    tensors = _sequence(tensors, "stack")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have one shape, got "
                         f"{[t.shape for t in tensors]}")
    return concat([reshape(t, _with_axis(t.shape, axis)) for t in tensors], axis=axis)


def _with_axis(shape, axis):
    ax = axis % (len(shape) + 1)
    return shape[:ax] + (1,) + shape[ax:]


def matmul(a, b):
    """Matrix product ``a @ b`` with NumPy's rules for 1-D and batched input.

    Two 2-D operands go through ``dot``: ``matmul`` has no BLAS path when the
    inner dimension is 1 (the weight gradient at batch size 1).
    """
    b_is_tensor = isinstance(b, Tensor)
    ad, bd = a.data, (b.data if b_is_tensor else _const(b))
    two_d = ad.ndim == 2 and np.ndim(bd) == 2
    try:
        out = ad.dot(bd) if two_d else np.matmul(ad, bd)
    except (ValueError, TypeError) as exc:
        err = _mismatch("matmul (@)", a, b, exc)
        if isinstance(err, ValueError):
            err = ValueError(
                f"matmul (@): shapes {ad.shape} and {np.shape(bd)} are not "
                f"aligned; the last axis of the left operand must match the "
                f"{'only' if np.ndim(bd) == 1 else 'second-to-last'} axis of "
                f"the right one")
        raise err from None
    need_a, need_b = a.requires_grad, b_is_tensor and b.requires_grad
    if not (_mode.enabled and (need_a or need_b)):
        return _wrap(out)
    if two_d:
        def backward(g):
            return (g.dot(bd.T) if need_a else None,
                    ad.T.dot(g) if need_b else None)
    else:
        def backward(g):
            return _matmul_grads(g, ad, bd, need_a, need_b)
    return _node(out, (a, b) if b_is_tensor else (a,), backward)


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` as one op, the body of a dense layer.

    ``weight`` has shape (out_features, in_features), as in PyTorch and
    Gluon; ``x`` has shape (batch, in_features).
    """
    xd, w = x.data, weight.data
    try:
        out = xd.dot(w.T)
    except (ValueError, TypeError) as exc:
        err = _mismatch("linear", x, weight, exc)
        if isinstance(err, ValueError):
            err = ValueError(
                f"linear layer: expected input with {w.shape[1]} features (last "
                f"axis) for a weight of shape {w.shape} (out_features, "
                f"in_features), got input of shape {xd.shape}")
        raise err from None
    if bias is not None:
        out += bias.data
    need_x, need_w = x.requires_grad, weight.requires_grad
    need_b = bias is not None and bias.requires_grad
    if not (_mode.enabled and (need_x or need_w or need_b)):
        return _wrap(out)

    def backward(g):
        return (g.dot(w) if need_x else None,
                g.T.dot(xd) if need_w else None,
                _rsum(g, 0) if need_b else None)
    return _node(out, (x, weight) if bias is None else (x, weight, bias), backward)


def _matmul_grads(g, ad, bd, need_a, need_b):
    """Gradients of ``matmul`` for 1-D and batched operands."""
    if ad.ndim == 1 and bd.ndim == 1:            # a dot product: g is 0-d
        return (g * bd if need_a else None), (g * ad if need_b else None)
    a2 = ad[None, :] if ad.ndim == 1 else ad
    b2 = bd[:, None] if bd.ndim == 1 else bd
    if ad.ndim == 1:
        g = np.expand_dims(g, -2)
    if bd.ndim == 1:
        g = np.expand_dims(g, -1)
    ga = gb = None
    if need_a:
        ga = unbroadcast(np.matmul(g, np.swapaxes(b2, -1, -2)), a2.shape).reshape(ad.shape)
    if need_b:
        gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g), b2.shape).reshape(bd.shape)
    return ga, gb


# ---- comparisons (no gradients) ---------------------------------------------
def _compare(fn, name):
    def op(a, b):
        if isinstance(b, Tensor):
            b = b.data
        elif not isinstance(b, (numbers.Number, np.ndarray, np.generic, list, tuple)):
            return NotImplemented     # e.g. `x == None` falls back to identity
        try:
            return _wrap(fn(a.data, _const(b)))
        except (TypeError, ValueError) as exc:
            raise _mismatch(name, a, b, exc) from None
    return op


# ---- in-place operators --------------------------------------------------------
def _inplace(op, ufunc):
    """Make ``x op= y``.

    Inside ``db.no_grad()`` the array is changed in place. While recording,
    the new value is computed out of place and ``x`` is re-pointed at it; the
    old value lives on in a snapshot that the graph still refers to, so
    gradients through ``X /= 2`` in a loop come out right.
    """
    def method(self, other):
        if not _mode.enabled:
            value = _data(other) if isinstance(other, Tensor) else _const(other)
            try:
                ufunc(self.data, value, out=self.data, casting="same_kind")
            except np.exceptions.DTypePromotionError as exc:
                raise TypeError(f"{op.__name__}: {exc}") from None
            except TypeError as exc:
                if np.result_type(self.data, value) != self.dtype:
                    raise TypeError(
                        f"an in-place {op.__name__} would turn a {self.dtype} "
                        f"tensor into {np.result_type(self.data, value)}; write "
                        f"x = x {_SYMBOL.get(op.__name__, op.__name__)} y instead") from None
                raise _mismatch(op.__name__, self, other, exc) from None
            except ValueError as exc:
                raise _mismatch(op.__name__, self, other, exc) from None
            return self
        _become(self, op(self, other))
        return self
    return method


_SYMBOL = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}


def _become(self, out):
    """Re-point ``self`` at the result ``out`` of an op on ``self``."""
    if out.dtype != self.dtype:
        if not np.can_cast(out.dtype, self.dtype, casting="same_kind"):
            raise TypeError(f"an in-place op would turn a {self.dtype} tensor "
                            f"into {out.dtype}; write x = x op y instead")
        out = astype(out, self.dtype)
    if not out.requires_grad:
        self.data = out.data
        return
    if self.requires_grad and self._backward is None:
        raise RuntimeError(
            "a leaf tensor that requires grad (such as a parameter) cannot be "
            "changed in place while gradients are recorded: backward() needs "
            "its old value. Update it inside `with db.no_grad():`, or write "
            "x = x + ... to make a new tensor.")
    old = _new(Tensor)
    old.data, old.requires_grad, old.grad = self.data, self.requires_grad, self.grad
    old._backward, old._parents = self._backward, self._parents
    old._seq, old._prev = self._seq, self._prev
    self.data, self.requires_grad = out.data, True
    self._backward, self._seq, self._prev = out._backward, out._seq, old
    self._parents = tuple(old if p is self else p for p in out._parents)


def _setitem(self, idx, value):
    if not _mode.enabled:
        self.data[_index(idx)] = _data(value)
        return
    _become(self, _index_put(self, idx, value))


# ---- Tensor methods ------------------------------------------------------------
def _bind():
    T = Tensor
    T.__add__, T.__radd__ = add, add
    T.__sub__, T.__rsub__ = sub, _rsub
    T.__mul__, T.__rmul__ = mul, mul
    T.__truediv__, T.__rtruediv__ = div, _rdiv
    T.__pow__, T.__rpow__ = pow, _rpow
    T.__matmul__ = matmul
    T.__rmatmul__ = lambda a, b: matmul(_wrap(np.asarray(_const(b))), a)
    T.__neg__ = neg
    T.__pos__ = lambda a: a
    T.__abs__ = abs
    T.__getitem__ = getitem
    T.__setitem__ = _setitem
    T.__iadd__ = _inplace(add, np.add)
    T.__isub__ = _inplace(sub, np.subtract)
    T.__imul__ = _inplace(mul, np.multiply)
    T.__itruediv__ = _inplace(div, np.true_divide)
    T.__lt__ = _compare(np.less, "compare (<)")
    T.__le__ = _compare(np.less_equal, "compare (<=)")
    T.__gt__ = _compare(np.greater, "compare (>)")
    T.__ge__ = _compare(np.greater_equal, "compare (>=)")
    T.__eq__ = _compare(np.equal, "compare (==)")
    T.__ne__ = _compare(np.not_equal, "compare (!=)")
    T.sum, T.mean, T.max = sum, mean, max
    T.abs, T.exp, T.log, T.sqrt = abs, exp, log, sqrt
    T.relu, T.sigmoid, T.tanh = relu, sigmoid, tanh
    T.softmax, T.log_softmax = softmax, log_softmax
    T.reshape, T.transpose = reshape, transpose
    T.T = property(lambda a: transpose(a), doc="The transpose (axes reversed).")
    T.argmax = lambda a, axis=None: _wrap(np.asarray(a.data.argmax(axis=axis)))
    T.all = lambda a: _wrap(np.asarray(a.data.all()))
    T.any = lambda a: _wrap(np.asarray(a.data.any()))


_bind()
