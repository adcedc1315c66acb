"""The ops as functions: ``db.exp(x)``, ``db.linear(x, w, b)``, ...

Each function checks its arguments, turns constants into tensors and runs
one op of ``kernels`` (where its forward and backward live) through
``tensor.apply``. The ones that are also methods (``x.exp()``) are the
method itself.
"""

import builtins

import numpy as np

from . import backend
from . import kernels as K
from .kernels import unbroadcast
from .operands import (dim_arg, mismatch_error, one_axis, promote,
                       scalar_value)
from .tensor import Tensor, apply, tensor_operand, wrap

__all__ = ["unbroadcast", "add", "sub", "mul", "div", "pow", "neg", "matmul",
           "mm", "dot", "exp", "log", "abs", "sqrt", "relu", "sigmoid", "tanh",
           "softmax", "log_softmax", "cross_entropy", "mse", "linear", "sum",
           "mean", "max", "min", "reshape", "flatten", "transpose", "swapaxes",
           "concat", "cat", "stack", "astype", "where", "maximum", "minimum",
           "argmax", "argmin", "unsqueeze", "squeeze", "permute"]

_ndarray = np.ndarray


# Every function takes PyTorch's names for its arguments (``input``,
# ``other``, ``dim``, ``keepdim``...), so that code written for torch runs
# with its keywords; NumPy's ``axis=``/``keepdims=`` work too.
def _t(value, name, what="input"):
    """``value`` if it is a tensor, else a TypeError that names the op and
    says how to make one."""
    if isinstance(value, Tensor):
        return value
    kind = "a list" if isinstance(value, list) else \
        "a tuple" if isinstance(value, tuple) else \
        "a NumPy array" if isinstance(value, np.ndarray) else \
        f"{type(value).__name__} {value!r:.40}"
    raise TypeError(f"{name}: expected a Tensor as {what}, got {kind}; wrap "
                    f"it with db.tensor(...) first")


def _binary(input, other, name, method, reflected):
    """The operator ``method(input, other)`` when ``input`` is a tensor,
    else ``reflected(other, input)``: at least one operand must be a
    tensor; the other may be a number or array-like (as with operators)."""
    if isinstance(input, Tensor):
        return method(input, other)
    if isinstance(other, Tensor):
        return reflected(other, input)
    _t(input, name)                  # raises: neither is a tensor


# ---- arithmetic, by name ---------------------------------------------------------
def add(input, other):
    """``input + other`` with broadcasting."""
    return _binary(input, other, "add", Tensor.__add__, Tensor.__radd__)


def sub(input, other):
    """``input - other`` with broadcasting."""
    return _binary(input, other, "sub", Tensor.__sub__, Tensor.__rsub__)


def mul(input, other):
    """``input * other`` elementwise, with broadcasting."""
    return _binary(input, other, "mul", Tensor.__mul__, Tensor.__rmul__)


def div(input, other):
    """``input / other`` elementwise, with broadcasting (integers give
    float32)."""
    return _binary(input, other, "div", Tensor.__truediv__,
                   Tensor.__rtruediv__)


def pow(input, exponent):
    """``input ** exponent`` elementwise; either may be a number."""
    return _binary(input, exponent, "pow", Tensor.__pow__, Tensor.__rpow__)


def neg(input):
    """``-input``."""
    return -_t(input, "neg")


def _pair(a, b, what):
    """Two operands of one dtype for a two-input op; numbers take the
    dtype of the tensor."""
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"{what}: expected at least one Tensor, got "
                            f"{type(a).__name__} and {type(b).__name__}")
        b, a = _pair(b, a, what)
        return a, b
    c = scalar_value(b)
    if c is not None:
        x = a.data
        dt = x.dtype if x.dtype.kind == "f" or isinstance(c, int) \
            else np.dtype("float32")
        if type(x) is _ndarray:
            return a, wrap(np.asarray(c, dtype=dt))
        with backend.on_array(x):        # the constant goes to x's GPU
            return a, wrap(backend.namespace_of(x).asarray(c, dtype=dt))
    b = tensor_operand(b, what)
    if a.data.dtype is not b.data.dtype:
        a, b = promote(a, b, False)
    return a, b


def maximum(input, other):
    """Elementwise maximum, with broadcasting; ties send the gradient to
    ``input``."""
    a, b = _pair(input, other, "maximum")
    return _two(K.Maximum(), a, b, "maximum")


def minimum(input, other):
    """Elementwise minimum, with broadcasting; ties send the gradient to
    ``input``."""
    a, b = _pair(input, other, "minimum")
    return _two(K.Minimum(), a, b, "minimum")


def _two(op, a, b, name):
    try:
        return apply(op, a, b)
    except (ValueError, TypeError) as exc:
        raise mismatch_error(name, a.data, b.data, exc) from None


def where(condition, input, other):
    """``input`` where ``condition`` holds, else ``other``; all three
    broadcast. ``input`` or ``other`` may be a number."""
    cond = tensor_operand(condition, "where")
    if cond.data.dtype.kind != "b":
        with backend.on_array(cond.data):
            cond = wrap(cond.data != 0)
    a, b = _pair(input, other, "where")
    try:
        return apply(K.Where(), cond, a, b)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"where: shapes {cond.shape}, {a.shape} and "
                         f"{b.shape} do not broadcast together ({exc})") from None


# ---- products ------------------------------------------------------------------------
def matmul(input, other):
    """Matrix product ``input @ other`` with NumPy's rules for 1-D and
    batched operands."""
    return _binary(input, other, "matmul", Tensor.__matmul__,
                   Tensor.__rmatmul__)


def mm(input, mat2):
    """Product of two matrices (2-D tensors), as ``torch.mm``."""
    a, b = input, mat2
    for name, t in (("first", a), ("second", b)):
        if not isinstance(t, Tensor) or t.ndim != 2:
            raise ValueError(f"mm: expected two 2-D tensors, the {name} one "
                             f"has shape {getattr(t, 'shape', None)}; use "
                             f"db.matmul for other shapes")
    return a @ b


def dot(input, tensor):
    """``np.dot`` for tensors of up to two axes: the inner product of two
    vectors, a matrix-vector or a matrix product, or a product with a 0-d
    tensor. For batched operands use ``db.matmul``. (The argument names
    are ``torch.dot``'s.)"""
    a = tensor_operand(input, "dot")
    b = tensor_operand(tensor, "dot")
    if a.ndim > 2 or b.ndim > 2:
        raise ValueError(f"dot: expected tensors of at most 2 axes, got "
                         f"shapes {a.shape} and {b.shape}; use db.matmul for "
                         f"batched products")
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return a @ b


def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` as one op, the body of a dense layer.

    Arguments:
        input: shape (*, in_features): any number of leading axes, none
            for a single example of shape (in_features,).
        weight: (out_features, in_features), as in PyTorch and Gluon.
        bias: (out_features,) or None.

    Returns:
        A tensor of shape (*, out_features).
    """
    x = input
    if not (isinstance(x, Tensor) and isinstance(weight, Tensor)):
        _t(x, "linear")
        _t(weight, "linear", "weight")
    xd, w = x.data, weight.data
    # The usual call (host arrays of one floating dtype, shapes that fit)
    # needs none of the checks below, which cost more than a small product.
    if (type(xd) is _ndarray and type(w) is _ndarray and xd.dtype is w.dtype
            and w.ndim == 2 and xd.ndim and xd.shape[-1] == w.shape[1]
            and xd.dtype.kind == "f"):
        if bias is None:
            return apply(K.Linear(), x, weight)
        b = getattr(bias, "data", None)      # None for a non-tensor
        if type(b) is _ndarray and b.dtype is w.dtype and b.shape == (w.shape[0],):
            return apply(K.Linear(), x, weight, bias)
    if w.ndim != 2 or xd.ndim == 0 or xd.shape[-1] != w.shape[1]:
        expected = w.shape[1] if w.ndim == 2 else "?"
        raise ValueError(
            f"linear layer: expected input with {expected} features (last "
            f"axis) for a weight of shape {w.shape} (out_features, "
            f"in_features), got input of shape {xd.shape}")
    if bias is not None and not isinstance(bias, Tensor):
        _t(bias, "linear", "bias")
    if bias is not None and bias.data.shape != (w.shape[0],):
        raise ValueError(f"linear layer: expected a bias of shape "
                         f"({w.shape[0]},), got {bias.data.shape}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    devices = {backend.device_of(t.data) for t in inputs}
    if len(devices) > 1:
        raise RuntimeError(f"linear: the input and the parameters are on "
                           f"different devices {sorted(map(str, devices))}; "
                           f"move them with .to(device)")
    if xd.dtype.kind != "f":
        raise TypeError(
            f"linear layer: the input has dtype {xd.dtype}, but the layer "
            f"computes in {w.dtype}; convert the input first, e.g. "
            f"X.astype(db.{w.dtype}) or db.tensor(data, dtype=db.{w.dtype})")
    common = np.result_type(*[t.data.dtype for t in inputs])
    if builtins.any(t.data.dtype != common for t in inputs):
        # NumPy's promotion, made explicit so each gradient comes back in
        # its own tensor's dtype.
        inputs = tuple(t if t.data.dtype == common else t.astype(common)
                       for t in inputs)
    return apply(K.Linear(), *inputs)


# ---- elementwise and along an axis ----------------------------------------------
def exp(input):
    """Elementwise exponential."""
    return _t(input, "exp").exp()


def log(input):
    """Elementwise natural logarithm."""
    return _t(input, "log").log()


def sqrt(input):
    """Elementwise square root."""
    return _t(input, "sqrt").sqrt()


def abs(input):
    """Elementwise absolute value (gradient 0 at 0)."""
    return _t(input, "abs").abs()


def relu(input):
    """``max(input, 0)`` elementwise."""
    return _t(input, "relu").relu()


def sigmoid(input):
    """The logistic function ``1 / (1 + exp(-input))``, computed stably."""
    return _t(input, "sigmoid").sigmoid()


def tanh(input):
    """Elementwise hyperbolic tangent."""
    return _t(input, "tanh").tanh()


def softmax(input, axis=-1, *, dim=None):
    """Softmax along ``dim`` (or NumPy's ``axis``): exponentials normalised
    to sum to 1."""
    return _t(input, "softmax").softmax(axis, dim=dim)


def log_softmax(input, axis=-1, *, dim=None):
    """``log(softmax(input))``, computed without overflow."""
    return _t(input, "log_softmax").log_softmax(axis, dim=dim)


def sum(input, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Sum over ``dim`` (all axes when None; negatives count from the end)."""
    return _t(input, "sum").sum(axis, keepdims, dim=dim, keepdim=keepdim)


def mean(input, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Mean over ``dim`` (all axes when None; negatives count from the end)."""
    return _t(input, "mean").mean(axis, keepdims, dim=dim, keepdim=keepdim)


def max(input, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Maximum over ``axis``; with ``dim=``, ``(values, indices)`` as in
    PyTorch (see ``Tensor.max``)."""
    return _t(input, "max").max(axis, keepdims, dim=dim, keepdim=keepdim)


def min(input, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """Minimum over ``axis``; with ``dim=``, ``(values, indices)``."""
    return _t(input, "min").min(axis, keepdims, dim=dim, keepdim=keepdim)


def argmax(input, dim=None, keepdim=False, *, axis=None):
    """Indices of the maxima along ``dim`` (an int64 tensor)."""
    return _t(input, "argmax").argmax(dim, keepdim, axis=axis)


def argmin(input, dim=None, keepdim=False, *, axis=None):
    """Indices of the minima along ``dim`` (an int64 tensor)."""
    return _t(input, "argmin").argmin(dim, keepdim, axis=axis)


def unsqueeze(input, dim):
    """``input`` with a new axis of length 1 at ``dim``."""
    return _t(input, "unsqueeze").unsqueeze(dim)


def squeeze(input, dim=None):
    """``input`` without axes of length 1 (all, or just ``dim``)."""
    return _t(input, "squeeze").squeeze(dim)


def permute(input, *dims, **kwargs):
    """``input`` with its axes in the order ``dims`` (a tuple, or the
    axes one by one)."""
    return _t(input, "permute").permute(*dims, **kwargs)


def reshape(input, *shape, **kwargs):
    """The same elements in a new shape: ``db.reshape(x, (2, -1))``."""
    return _t(input, "reshape").reshape(*shape, **kwargs)


def flatten(input, start_dim=0, end_dim=-1):
    """Merge axes ``start_dim`` to ``end_dim`` into one."""
    return _t(input, "flatten").flatten(start_dim, end_dim)


def transpose(input, *axes, dim0=None, dim1=None):
    """Swap two axes (``db.transpose(x, 0, 1)`` or ``dim0=0, dim1=1``, as
    PyTorch's), or permute them (``db.transpose(x, (1, 0, 2))``, as
    NumPy's); reverse them when none are given. See ``Tensor.transpose``."""
    return _t(input, "transpose").transpose(*axes, dim0=dim0, dim1=dim1)


def swapaxes(input, axis0, axis1):
    """Swap two axes (PyTorch's names; NumPy calls them axis1, axis2)."""
    return _t(input, "swapaxes").swapaxes(axis0, axis1)


def astype(input, dtype):
    """A copy with element type ``dtype``."""
    return _t(input, "astype").astype(dtype)


# ---- joining ----------------------------------------------------------------------------
def _sequence(tensors, name):
    tensors = list(tensors) if isinstance(tensors, (list, tuple)) else None
    if not tensors or not builtins.all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"{name}: expected a non-empty list of tensors")
    devices = {backend.device_of(t.data) for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(f"{name}: the tensors are on different devices "
                           f"{sorted(map(str, devices))}")
    dtypes = {t.data.dtype for t in tensors}
    if len(dtypes) > 1:          # one dtype, so gradients go back in kind
        common = np.result_type(*dtypes)
        tensors = [t.astype(common) if t.data.dtype != common else t
                   for t in tensors]
    return tensors


def concat(tensors, axis=0, *, dim=None):
    """Join tensors along an existing ``axis`` (negatives count from the
    end; PyTorch's ``dim=`` works too)."""
    axis = dim_arg(axis, dim, 0, "concat")
    tensors = _sequence(tensors, "concat")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("concat: 0-d tensors have no axis to join along; "
                         "use db.stack")
    ax = one_axis(axis, ndim)
    shapes = [t.shape for t in tensors]
    if builtins.any(len(s) != ndim or s[:ax] + s[ax + 1:] !=
                    shapes[0][:ax] + shapes[0][ax + 1:] for s in shapes):
        raise ValueError(f"concat along axis {axis}: shapes {shapes} differ "
                         f"outside that axis")
    return apply(K.Concat(ax), *tensors)


cat = concat


def stack(tensors, axis=0, *, dim=None):
    """Join same-shaped tensors along a new ``axis`` (negatives count from
    the end of the result)."""
    axis = dim_arg(axis, dim, 0, "stack")
    tensors = _sequence(tensors, "stack")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have one shape, got "
                         f"{[t.shape for t in tensors]}")
    ax = one_axis(axis, tensors[0].ndim + 1)
    return apply(K.Stack(ax), *tensors)


# ---- losses -------------------------------------------------------------------------------
def _labels(labels, logits):
    """Integer class labels as a tensor on the logits' device, checked."""
    y = labels.data if isinstance(labels, Tensor) else labels
    if (type(y) is _ndarray and type(logits) is _ndarray
            and y.dtype.kind in "iu" and y.shape == (logits.shape[0],)):
        return labels if isinstance(labels, Tensor) else wrap(y)
    if not (isinstance(y, np.ndarray) or hasattr(y, "__cuda_array_interface__")):
        y = np.asarray(y)
    batch = logits.shape[0]
    if y.dtype.kind not in "iu" or y.shape != (batch,):
        raise ValueError(
            f"cross_entropy: expected integer class labels of shape ({batch},) "
            f"for logits of shape {logits.shape}, got dtype {y.dtype} and "
            f"shape {y.shape}")
    if backend.device_of(y) != backend.device_of(logits):
        y = backend.move(y, backend.device_of(logits))
    return labels if isinstance(labels, Tensor) and labels.data is y else wrap(y)


def _label_error(y, classes):
    """The ValueError for labels ``y`` outside [0, classes), naming the
    offending end(s)."""
    xp = backend.namespace_of(y)
    low, high = backend.to_host(xp.stack((y.min(), y.max()))).tolist()
    if low < 0 and high >= classes:
        got = f"labels from {low} to {high}"
    elif low < 0:
        got = f"min label {low}"
    else:
        got = f"max label {high}"
    return ValueError(f"cross_entropy: labels must lie in [0, {classes}) for "
                      f"{classes} classes; got {got}")


def cross_entropy(input, target):
    """Mean softmax cross-entropy of logits ``input`` (batch, classes)
    against integer class labels ``target`` (batch,), fused for speed and
    stability (PyTorch's argument names).

    The gradient with respect to the logits is ``(softmax - onehot) / batch``.

    Raises:
        ValueError: the logits are not 2-D, the batch is empty, or the
            labels have another shape, a non-integer dtype or a value
            outside [0, classes).
    """
    logits, labels = input, target
    if not isinstance(logits, Tensor):
        _t(logits, "cross_entropy", "input (the logits)")
    x = logits.data
    if x.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (batch, "
                         f"classes), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"cross_entropy: the batch is empty (logits of "
                         f"shape {x.shape}); the mean loss over no examples "
                         f"is undefined, so give at least one example")
    y = _labels(labels, x)
    try:
        return apply(K.CrossEntropy(), logits, y)
    except IndexError:
        raise _label_error(y.data, x.shape[1]) from None


def mse(input, target):
    """Mean squared error ``mean((input - target) ** 2)`` (PyTorch's
    ``mse_loss``).

    The shapes must match exactly: a (batch, 1) prediction against a (batch,)
    target would otherwise broadcast to (batch, batch) and give a wrong loss.
    """
    pred = _t(input, "mse")
    target = tensor_operand(target, "mse")
    if pred.shape != target.shape:
        raise ValueError(f"mse: prediction shape {pred.shape} and target shape "
                         f"{target.shape} differ; reshape one so they match")
    if target.data.dtype != pred.data.dtype:
        target = target.astype(pred.data.dtype)
    return apply(K.MSE(), pred, target)
