"""How the autograd layer reads what a caller passes, before any op runs.

Dtypes (``db.float32``, ``'float64'``, ``np.int64``), numbers and arrays
given beside a tensor, the data of a new tensor, and axes and shapes in
NumPy's spelling (``axis=``, ``keepdims=``) or PyTorch's (``dim=``,
``keepdim=``). Each reader checks what it is given and raises an error
that says what was expected and what came instead. ``MaxMin`` is the
pair that PyTorch's ``max(dim=...)`` spelling asks for.

Nothing here makes a tensor: ``tensor.py`` turns what these functions
return into tensors, and ``promote`` works through tensor methods.
"""

import numbers

import numpy as np

from . import backend
from .kernels import normalize_axes

__all__ = ["float16", "float32", "float64", "int32", "int64", "bool_",
           "as_dtype", "MaxMin", "PY_NUMBERS", "scalar_value", "numeric_array",
           "to_array", "describe", "mismatch_error", "promote", "dim_arg",
           "dims_arg", "shape_arg", "shape_from", "reduction_axes",
           "one_axis", "optional_axis", "swap_permutation", "transpose_axes",
           "flattened_shape", "squeezed_shape", "constant_array",
           "matmul_error", "check_flag"]

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


def check_flag(value, what, error=TypeError, typed=False):
    """Refuse a flag that is not True or False (``train("eval")`` would
    otherwise mean training): ``error("{what} must be True or False, got
    {value!r}")``, with the value's type name before it when ``typed``."""
    if not isinstance(value, (bool, np.bool_)):
        got = f"{type(value).__name__} {value!r}" if typed else repr(value)
        raise error(f"{what} must be True or False, got {got}")


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


def matmul_error(x, y, exc):
    """A clear error for arrays ``x @ y`` that cannot be multiplied: on
    different devices, or with shapes that do not line up."""
    err = mismatch_error("matmul (@)", x, y, exc)
    if isinstance(err, ValueError):
        sa, sb = x.shape, y.shape
        err = ValueError(
            f"matmul (@): shapes {sa} and {sb} are not aligned; the last "
            f"axis of the left operand must match the "
            f"{'only' if len(sb) == 1 else 'second-to-last'} axis of the "
            f"right one")
    return err


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


class MaxMin(tuple):
    """``(values, indices)`` of ``max``/``min`` along ``dim``, as PyTorch
    returns them."""
    __slots__ = ()
    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])

    def __repr__(self):
        return f"(values={self[0]!r}, indices={self[1]!r})"


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


def swap_permutation(axis0, axis1, ndim):
    """The permutation of ``ndim`` axes that swaps two of them (negatives
    count from the end); None for a 0-d tensor, which has none to swap."""
    a, b = one_axis(axis0, ndim), one_axis(axis1, ndim)
    if ndim == 0:
        return None
    perm = list(range(ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return tuple(perm)


def transpose_axes(axes, dim0, dim1, shape):
    """The permutation that ``Tensor.transpose(*axes, dim0=, dim1=)`` asks
    of a tensor of ``shape``: two axes swapped (PyTorch's reading, see
    :func:`swap_permutation`), or a permutation (NumPy's; reversed axes
    when none are given)."""
    ndim = len(shape)
    if dim0 is not None or dim1 is not None:
        if dim0 is None or dim1 is None or len(axes) + 2 != 2:
            raise TypeError(f"transpose: give the two axes to swap as "
                            f"dim0= and dim1= (both), or positionally; "
                            f"got {axes}, dim0={dim0!r}, dim1={dim1!r}")
        return swap_permutation(dim0, dim1, ndim)
    if len(axes) == 2 and all(isinstance(a, numbers.Integral) for a in axes):
        return swap_permutation(*axes, ndim)
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if not axes:
        return tuple(range(ndim - 1, -1, -1))
    perm = tuple(one_axis(ax, ndim) for ax in axes)
    if sorted(perm) != list(range(ndim)):
        raise ValueError(f"transpose: expected a permutation of the "
                         f"{ndim} axes of a tensor of shape {shape}, got "
                         f"{axes} (or two axes to swap)")
    return perm


def flattened_shape(shape, start_dim, end_dim):
    """``shape`` with axes ``start_dim`` to ``end_dim`` (negatives count
    from the end) merged into one; ``(1,)`` for a 0-d shape."""
    ndim = len(shape)
    if ndim == 0:
        return (1,)
    lo = one_axis(start_dim, ndim, "start_dim")
    hi = one_axis(end_dim, ndim, "end_dim")
    if lo > hi:
        raise ValueError(f"flatten: start_dim {start_dim} comes after "
                         f"end_dim {end_dim} for shape {shape}")
    merged = int(np.prod(shape[lo:hi + 1]))
    return shape[:lo] + (merged,) + shape[hi + 1:]


def squeezed_shape(shape, dim):
    """``shape`` without axes of length 1: all of them, or just ``dim``;
    None when ``dim`` is given and nothing is removed (PyTorch leaves the
    tensor alone then)."""
    if dim is None:
        return tuple(n for n in shape if n != 1)
    if not shape:
        return None
    ax = one_axis(dim, len(shape), "dim")
    return shape[:ax] + shape[ax + 1:] if shape[ax] == 1 else None


def constant_array(value, like, what):
    """``value`` (a number, list or array, not a tensor), to be written
    into the array ``like``, as an array of its dtype on its device:
    converted at once, so that a float64 tensor gets float64 values."""
    c = scalar_value(value)
    if c is not None:
        if type(like) is np.ndarray:
            return np.asarray(c, dtype=like.dtype)
        with backend.on_array(like):     # made on the target's GPU
            return backend.namespace_of(like).asarray(c, dtype=like.dtype)
    if not isinstance(value, (list, tuple, np.ndarray)) and \
            not hasattr(value, "__cuda_array_interface__"):
        raise TypeError(f"{what}: expected a Tensor, a number or a numeric "
                        f"array, got {type(value).__name__}")
    return to_array(value, like.dtype, backend.device_of(like))
