"""How the autograd layer reads what a caller passes, before any op runs.

Dtypes (``db.float32``, ``'float64'``, ``np.int64``), numbers and arrays
given beside a tensor, the data of a new tensor, and axes and shapes in
NumPy's spelling (``axis=``, ``keepdims=``) or PyTorch's (``dim=``,
``keepdim=``). Each reader checks what it is given and raises an error
that says what was expected and what came instead.

Nothing here makes a tensor: ``tensor.py`` turns what these functions
return into tensors, and ``promote`` works through tensor methods.
"""

import numbers

import numpy as np

from . import backend
from .kernels import normalize_axes

__all__ = ["float16", "float32", "float64", "int32", "int64", "bool_",
           "as_dtype", "PY_NUMBERS", "scalar_value", "numeric_array",
           "to_array", "describe", "mismatch_error", "promote", "dim_arg",
           "dims_arg", "shape_arg", "shape_from", "reduction_axes",
           "one_axis", "optional_axis"]

float16, float32, float64 = (np.dtype("float16"), np.dtype("float32"),
                             np.dtype("float64"))
int32, int64, bool_ = np.dtype("int32"), np.dtype("int64"), np.dtype("bool")


def as_dtype(dtype):
    """A NumPy dtype from ``db.float32``, ``'float32'``, ``np.float32``...

    Raises:
        TypeError: ``dtype`` names no numeric or boolean dtype.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf":
        raise TypeError(f"expected a numeric dtype such as db.float32, "
                        f"'float64' or np.int64, got {dtype!r}")
    return dt


# ---- numbers and arrays beside a tensor -------------------------------------
PY_NUMBERS = frozenset({float, int})


def scalar_value(value):
    """A Python number for a number-like ``value`` (Python numbers, NumPy
    scalars, 0-d arrays), else None. Python numbers are "weak" in NumPy's
    promotion rules, so ``float32_tensor * np.float64(2)`` stays float32,
    as in PyTorch."""
    if isinstance(value, (bool, numbers.Number, np.generic)):
        if isinstance(value, (complex, np.complexfloating)):
            return None
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.ndarray) and value.ndim == 0 and \
            value.dtype.kind in "biuf":
        return value.item()
    return None


def numeric_array(value, what):
    """``value`` (not a tensor) as an array for an op named ``what``:
    arrays as they are (not copied), numbers, lists and tuples converted.

    Raises:
        TypeError: ``value`` is not numeric.
    """
    if isinstance(value, (np.ndarray, np.generic)) or \
            hasattr(value, "__cuda_array_interface__"):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{what}: expected a Tensor, a number or a numeric "
                            f"array, got an array of dtype {value.dtype}")
        return np.asarray(value) if isinstance(value, np.generic) else value
    if isinstance(value, (bool, numbers.Number, list, tuple)):
        try:
            return to_array(value, None, None)
        except TypeError:
            pass
    raise TypeError(f"{what}: expected a Tensor, a number or a numeric array, "
                    f"got {type(value).__name__}")


def to_array(data, dtype, device):
    """The backing array of a new tensor, made from ``data`` (an array or
    what ``np.asarray`` takes) and checked."""
    dt = None if dtype is None else as_dtype(dtype)
    if not (isinstance(data, (np.ndarray, np.generic))
            or hasattr(data, "__cuda_array_interface__")):
        try:
            data = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"db.tensor() expected numbers, nested lists of "
                            f"numbers or an array, got {describe(data)} "
                            f"({exc})") from None
        if dt is None and data.dtype.kind == "f":
            dt = float32        # Python floats become float32, as in PyTorch
    if data.dtype.kind not in "biuf":
        raise TypeError(f"db.tensor() expected numeric data (numbers, nested "
                        f"lists of numbers, or a numeric array), got "
                        f"{describe(data)}")
    here = backend.device_of(data)
    dev = here if device is None else backend.as_device(device)
    if dev != here:
        data = backend.move(data, dev)
    # A copy, as torch.tensor makes: in-place updates of the tensor (an
    # optimizer step) must never change the caller's array.
    with backend.on(dev):
        return dev.xp.array(data, dtype=dt, copy=True)


def describe(data):
    """The type and the start of the repr of ``data``, for an error."""
    text = repr(data)
    return f"{type(data).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def mismatch_error(name, x, y, exc):
    """A clear error for two arrays that cannot be combined."""
    dx, dy = backend.device_of(x), backend.device_of(y)
    if dx != dy:
        return RuntimeError(f"{name}: the operands are on different devices, "
                            f"{dx} and {dy}; move one with .to(device)")
    return ValueError(f"{name}: shapes {np.shape(x)} and {np.shape(y)} are "
                      f"not compatible ({exc})")


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def promote(a, b, divide):
    """Tensors ``a`` and ``b`` converted by PyTorch's rule for mixing
    kinds: an integer tensor combined with a floating one takes the
    floating dtype; integers divided give float32. A 0-d tensor combined
    with a tensor that has axes promotes like a Python number: within one
    kind, the tensor with axes keeps its dtype (a float32 matrix times a
    0-d float64 tensor stays float32). The conversions are ops
    (``astype``), so that a replay (``hybridize``) sees them."""
    ka, kb = a.data.dtype.kind, b.data.dtype.kind
    if (a.data.ndim == 0) is not (b.data.ndim == 0) and \
            _CATEGORY[ka] == _CATEGORY[kb] and a.data.dtype != b.data.dtype:
        if a.data.ndim == 0:
            a = a.astype(b.data.dtype)
        else:
            b = b.astype(a.data.dtype)
        ka, kb = a.data.dtype.kind, b.data.dtype.kind
    if ka == "f" and kb != "f":
        b = b.astype(a.data.dtype)
    elif kb == "f" and ka != "f":
        a = a.astype(b.data.dtype)
    elif ka != "f" and divide:
        a, b = a.astype(float32), b.astype(float32)
    return a, b


# ---- axes and shapes ----------------------------------------------------------
def dim_arg(axis, dim, default, name):
    """The axis given as NumPy's ``axis`` or PyTorch's ``dim``."""
    if dim is None:
        return axis
    if not (axis is default or (type(axis) is int and axis == default)):
        raise TypeError(f"{name}() got both axis={axis!r} and dim={dim!r}; "
                        f"they are the same argument, give one")
    return dim


def dims_arg(axis, keepdims, dim, keepdim, name):
    """``(axis, keepdims)`` from NumPy's or PyTorch's spelling."""
    axis = dim_arg(axis, dim, None, name)
    if keepdim is not None:
        if keepdims:
            raise TypeError(f"{name}() got both keepdims and keepdim; give one")
        keepdims = keepdim
    return axis, bool(keepdims)


def shape_arg(args, keyword, name, method):
    """A shape or a permutation given one by one, as one tuple or list, or
    by keyword (``reshape(shape=...)``, ``permute(dims=...)``)."""
    if keyword is not None:
        if args:
            raise TypeError(f"{method}() got {name} both by position and as "
                            f"{name}=; give it once")
        args = (keyword,)
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return args


def shape_from(shape):
    """The shape of a new tensor, given as ints (``zeros(2, 3)``) or as
    one tuple or list (``zeros((2, 3))``)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"expected a shape of non-negative ints, got {shape}")
    return tuple(int(n) for n in shape)


def reduction_axes(axis, ndim):
    """The axes of a reduction: None (all) or a sorted tuple."""
    return None if axis is None else normalize_axes(axis, ndim)


def one_axis(axis, ndim, what="axis"):
    """One axis, checked and made non-negative (0 for a 0-d tensor)."""
    axes = normalize_axes(axis, ndim, what)
    if not isinstance(axis, numbers.Integral):
        raise TypeError(f"expected one int {what}, got {axis!r}")
    return axes[0] if axes else 0


def optional_axis(axis, ndim):
    """One axis, or None for all of them (and for a 0-d tensor)."""
    return None if axis is None or ndim == 0 else one_axis(axis, ndim)
