"""A stand-in for CuPy, so that every device path runs without a GPU.

The arrays of this module live in host memory but act, where d2lblocks can
tell, like CuPy's arrays on a GPU:

* they are their own type (``fake_cupy.ndarray``, not a NumPy array), and
  this module is their array module (``get_array_module``), with the part
  of CuPy's namespace that d2lblocks calls;
* NumPy's functions and ufuncs given them (``np.exp(a)``,
  ``np.concatenate([a, b])``) run here, as they do for CuPy through
  ``__array_ufunc__``/``__array_function__``, and give arrays of this
  type; a function CuPy does not have is a ``TypeError``;
* they refuse to become NumPy arrays implicitly (``np.asarray(a)`` raises
  ``TypeError``, as CuPy does) and mixing them with a NumPy array of one
  or more dimensions in an operation is a ``TypeError``: data reaches the
  host only through ``asnumpy(a)`` or ``a.get()``, which are counted in
  ``transfers`` (as are uploads);
* fancy indexing checks no bounds: an integer index array out of range
  wraps around, as in CuPy (NumPy raises ``IndexError``);
* each array knows its device (``a.device.id``). ``cuda.Device(i)`` is a
  context that sets the current device; new arrays are made on it, and an
  operation reading an array that lives on another device is a
  ``ValueError``, as on GPUs without peer access. ``DEVICE_COUNT`` GPUs
  are simulated.

Nothing here runs on a GPU or measures anything about one; it only keeps
the host/device boundary honest.
"""

import builtins
import sys
import types

import numpy as np

DEVICE_COUNT = 2

#: How many copies crossed the boundary: ``to_host`` (arrays: ``asnumpy``,
#: ``get``, ``tolist``), ``scalars`` (one value read on the host: ``item``,
#: ``float``, ``int``, ``bool``; each waits for the GPU), ``to_device``
#: (arrays made from host data) and ``peer`` (copies between GPUs).
transfers = {"to_host": 0, "scalars": 0, "to_device": 0, "peer": 0}


def reset_transfers():
    """Set every transfer count back to zero."""
    for key in transfers:
        transfers[key] = 0


# ---- devices ---------------------------------------------------------------
class Device:
    """A simulated GPU; as a context manager, the current device inside."""

    _stack = [0]

    def __init__(self, device=None):
        index = Device._stack[-1] if device is None else int(device)
        if not 0 <= index < DEVICE_COUNT:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index} "
                               f"(simulated: {DEVICE_COUNT} devices)")
        self.id = index

    def __enter__(self):
        Device._stack.append(self.id)
        return self

    def __exit__(self, *exc):
        Device._stack.pop()

    def use(self):
        Device._stack[-1] = self.id

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def _current():
    return Device._stack[-1]


def _get_device_count():
    return DEVICE_COUNT


cuda = types.SimpleNamespace(
    Device=Device,
    runtime=types.SimpleNamespace(getDeviceCount=_get_device_count),
    get_device_id=_current,
)


class _MemoryPointer:
    """What ``a.data`` gives: where the data starts and on which device."""

    def __init__(self, ptr, device_id):
        self.ptr, self.device_id = ptr, device_id


class _Flags:
    def __init__(self, flags):
        self.c_contiguous = flags.c_contiguous
        self.f_contiguous = flags.f_contiguous
        self.owndata = flags.owndata


# ---- the array type --------------------------------------------------------
def _refuse_host(kind):
    raise TypeError(f"Unsupported type {kind}: a NumPy array cannot be mixed "
                    f"with a GPU array (move it with cupy.asarray first)")


def _check_device(dev):
    here = _current()
    if dev != here:
        raise ValueError(f"The device where the array resides ({dev}) is "
                         f"different from the current device ({here}). Peer "
                         f"access is unavailable between these devices.")


def _unwrap(value, devices):
    """The NumPy data behind ``value`` (recursing into lists and tuples);
    every device met goes into ``devices``."""
    if isinstance(value, ndarray):
        devices.add(value._dev)
        return value._a
    if isinstance(value, np.ndarray):
        if value.ndim:
            _refuse_host(type(value))
        return value                      # a 0-d array: a scalar
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, devices) for v in value)
    return value


def _wrap(result, dev, source=None):
    """``result`` as arrays of this module on ``dev`` (recursing into tuples
    and lists); NumPy scalars become 0-d arrays, as CuPy has no scalars.
    ``source`` is the array a view was taken from."""
    if isinstance(result, np.ndarray):
        out = ndarray._make(result, dev)
        if source is not None and np.may_share_memory(result, source._a):
            out._base = source if source._base is None else source._base
        return out
    if isinstance(result, np.generic):
        return ndarray._make(np.asarray(result), dev)
    if isinstance(result, tuple):
        return tuple(_wrap(r, dev) for r in result)
    if isinstance(result, list):
        return [_wrap(r, dev) for r in result]
    return result


def _compute(fn, args, kwargs):
    """Run ``fn`` on the NumPy data behind ``args``/``kwargs`` on the current
    device, after checking that every array lives there. With ``out=``,
    the result is the array given there."""
    devices = set()
    out = kwargs.get("out")
    args = _unwrap(args, devices)
    kwargs = {k: _unwrap(v, devices) for k, v in kwargs.items()}
    for dev in devices:
        _check_device(dev)
    result = fn(*args, **kwargs)
    if out is None:
        return _wrap(result, _current())
    if isinstance(out, tuple):
        return out[0] if len(out) == 1 else out
    return out


class ndarray:
    """An array on a simulated GPU (see the module's docstring)."""

    __array_priority__ = 100

    def __init__(self, shape, dtype=float, *args, **kwargs):
        self._a = np.empty(shape, dtype)
        self._dev = _current()
        self._base = None

    @classmethod
    def _make(cls, data, dev):
        out = cls.__new__(cls)
        out._a, out._dev, out._base = data, dev, None
        return out

    # -- what it is ----------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a.flags))
    base = property(lambda self: self._base)
    device = property(lambda self: Device(self._dev))
    data = property(lambda self: _MemoryPointer(
        self._a.__array_interface__["data"][0], self._dev))
    T = property(lambda self: self._view(self._a.T))
    mT = property(lambda self: self._view(np.swapaxes(self._a, -1, -2)))

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.shape, "typestr": self.dtype.str,
                "data": (self.data.ptr, False), "version": 3,
                "strides": None if self._a.flags.c_contiguous else self.strides}

    def _view(self, result):
        return _wrap(result, self._dev, self)

    # -- the host boundary ----------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array "
                        "explicitly.")

    def get(self, stream=None, order="C", out=None):
        """A NumPy copy on the host."""
        transfers["to_host"] += 1
        host = np.array(self._a, order=order, copy=True)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, arr):
        """Copy the host array ``arr`` into this array."""
        transfers["to_device"] += 1
        self._a[...] = arr

    def item(self):
        transfers["scalars"] += 1
        return self._a.item()

    def tolist(self):
        transfers["to_host"] += 1
        return self._a.tolist()

    def _scalar(self, convert):
        if self._a.size != 1:
            raise TypeError("only size-1 arrays can be converted to Python "
                            "scalars")
        return convert(self.item())

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one "
                             "element is ambiguous.")
        return bool(self.item())

    def __float__(self):
        return self._scalar(float)

    def __int__(self):
        return self._scalar(int)

    def __complex__(self):
        return self._scalar(complex)

    def __len__(self):
        if not self._a.ndim:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self):
        if not self._a.ndim:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        body = np.array2string(self._a, separator=", ", prefix="array(")
        return f"array({body})" + ("" if self._dev == 0 else
                                   f"  # on device {self._dev}")

    __str__ = __repr__

    def __reduce__(self):
        return _rebuild, (self._a.copy(), self._dev)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        with Device(self._dev):
            return self.copy()

    __hash__ = None

    # -- NumPy's protocols, answered the way CuPy answers them -----------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        name = ufunc.__name__
        if getattr(_this, name, None) is None:
            return NotImplemented
        if method == "at":               # in place, returns None
            target, index, *values = inputs
            if not isinstance(target, ndarray):
                _refuse_host(type(target))
            devices = set()
            index = _unwrap_index(index, devices, target.shape)
            values = _unwrap(values, devices)
            for dev in devices | {target._dev}:
                _check_device(dev)
            ufunc.at(target._a, index, *values)
            return None
        return _compute(getattr(ufunc, method), inputs, kwargs) \
            if method != "__call__" else _compute(ufunc, inputs, kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        # CuPy looks for its own function of the same name (numpy.linalg.x
        # in cupy.linalg, ...); this module has only the top level.
        ours = getattr(_this, func.__name__, None) \
            if func.__module__ == "numpy" else None
        if not callable(ours) or isinstance(ours, type):
            return NotImplemented
        return ours(*args, **kwargs)

    # -- indexing -------------------------------------------------------------
    def __getitem__(self, index):
        devices = set()
        index = _unwrap_index(index, devices, self._a.shape)
        for dev in devices:
            _check_device(dev)
        return self._view(self._a[index])

    def __setitem__(self, index, value):
        devices = set()
        index = _unwrap_index(index, devices, self._a.shape)
        if isinstance(value, np.ndarray) and value.ndim:
            transfers["to_device"] += 1   # CuPy uploads a host value
        else:
            value = _unwrap(value, devices)
        for dev in devices | {self._dev}:
            _check_device(dev)
        self._a[index] = value

    # -- methods ---------------------------------------------------------------
    def copy(self, order="C"):
        """A copy on the current device."""
        if self._dev != _current():
            transfers["peer"] += 1
        return ndarray._make(np.array(self._a, order=order, copy=True),
                             _current())

    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        _check_device(self._dev)
        return ndarray._make(self._a.astype(dtype, order=order), _current())

    def reshape(self, *shape, order="C"):
        return self._view(self._a.reshape(*shape, order=order))

    def view(self, dtype=None):
        return self._view(self._a.view() if dtype is None else self._a.view(dtype))

    def transpose(self, *axes):
        return self._view(self._a.transpose(*axes))

    def swapaxes(self, a, b):
        return self._view(self._a.swapaxes(a, b))

    def squeeze(self, axis=None):
        return self._view(self._a.squeeze(axis))

    def ravel(self, order="C"):
        return self._view(self._a.ravel(order))

    def fill(self, value):
        _check_device(self._dev)
        self._a.fill(_unwrap(value, set()))

    def __dlpack__(self, *args, **kwargs):
        raise TypeError("the simulated GPU gives no DLPack capsules")


def _method(name):
    def method(self, *args, **kwargs):
        return _compute(getattr(np.ndarray, name), (self,) + args, kwargs)
    method.__name__ = name
    return method


for _name in ("sum", "mean", "max", "min", "prod", "var", "std", "all", "any",
              "argmax", "argmin", "cumsum", "clip", "dot", "flatten", "repeat",
              "take", "nonzero", "argsort", "round", "conj", "diagonal",
              "trace", "sort"):
    setattr(ndarray, _name, _method(_name))


def _operator(ufunc, reflected=False):
    if reflected:
        def op(self, other):
            return _compute(ufunc, (other, self), {})
    else:
        def op(self, other):
            return _compute(ufunc, (self, other), {})
    return op


def _inplace(ufunc):
    def op(self, other):
        _compute(ufunc, (self, other), {"out": (self,)})
        return self
    return op


for _name, _ufunc in (("add", np.add), ("sub", np.subtract),
                      ("mul", np.multiply), ("truediv", np.true_divide),
                      ("floordiv", np.floor_divide), ("mod", np.remainder),
                      ("pow", np.power), ("matmul", np.matmul),
                      ("and", np.bitwise_and), ("or", np.bitwise_or),
                      ("xor", np.bitwise_xor)):
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
    setattr(ndarray, f"__r{_name}__", _operator(_ufunc, reflected=True))
    setattr(ndarray, f"__i{_name}__", _inplace(_ufunc))
for _name, _ufunc in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                      ("le", np.less_equal), ("gt", np.greater),
                      ("ge", np.greater_equal)):
    setattr(ndarray, f"__{_name}__", _operator(_ufunc))
for _name, _ufunc in (("neg", np.negative), ("pos", np.positive),
                      ("abs", np.absolute), ("invert", np.invert)):
    setattr(ndarray, f"__{_name}__",
            (lambda u: lambda self: _compute(u, (self,), {}))(_ufunc))


def _unwrap_index(index, devices, shape=None):
    """An index with this module's arrays replaced by their data; NumPy
    arrays and lists of integers are allowed, as CuPy uploads them. Given
    the array's ``shape``, integer arrays are taken modulo the length of
    their axis: CuPy checks no bounds in fancy indexing, and an index out
    of range wraps around instead of raising ``IndexError``."""
    parts = index if isinstance(index, tuple) else (index,)
    # (This module's own any, sum, max, ... are CuPy's: builtins spelled out.)
    plain = not builtins.any(p is None or p is Ellipsis for p in parts)
    out = []
    for axis, part in enumerate(parts):
        if isinstance(part, ndarray):
            devices.add(part._dev)
            part = part._a
        elif isinstance(part, list):
            part = np.asarray(part)
        if (shape is not None and plain and axis < len(shape)
                and isinstance(part, np.ndarray) and part.dtype.kind in "iu"
                and shape[axis]):
            part = np.mod(part, shape[axis])
        out.append(part)
    return tuple(out) if isinstance(index, tuple) else out[0]


def _rebuild(host, dev):
    with Device(dev):
        return asarray(host)


# ---- the module's functions --------------------------------------------------
def get_array_module(*args):
    """This module when any argument is one of its arrays, else NumPy."""
    for a in args:
        if isinstance(a, ndarray):
            return _this
    return np


def asnumpy(a, stream=None, order="C", out=None):
    """A NumPy copy of ``a`` on the host (``a`` itself for host data)."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    """``obj`` on the current device (a copy unless ``copy=False`` and it
    is already there with this dtype)."""
    if isinstance(obj, ndarray):
        if obj._dev == _current() and not copy and (
                dtype is None or np.dtype(dtype) == obj.dtype):
            return obj
        return ndarray._make(np.array(obj._a, dtype=dtype, copy=True,
                                      order=order, ndmin=ndmin), _current())
    if hasattr(obj, "__cuda_array_interface__"):
        raise TypeError("the simulated GPU takes no foreign device arrays")
    transfers["to_device"] += 1
    host = np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin)
    if host.dtype == object:
        raise ValueError("Unsupported dtype object")
    return ndarray._make(host, _current())


def asarray(a, dtype=None, order=None):
    """``a`` as an array of this module; no copy when it is one already
    (even on another device, as in CuPy)."""
    if isinstance(a, ndarray) and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    if isinstance(a, ndarray):
        return a.astype(dtype)
    return array(a, dtype=dtype, copy=True, order=order or "K")


ascontiguousarray = asarray


def _creation(fn):
    def make(*args, **kwargs):
        if "like" in kwargs:
            raise TypeError("like= is not supported")
        return ndarray._make(fn(*args, **kwargs), _current())
    make.__name__ = fn.__name__
    return make


zeros = _creation(np.zeros)
ones = _creation(np.ones)
empty = _creation(np.empty)
full = _creation(np.full)
arange = _creation(np.arange)
eye = _creation(np.eye)
linspace = _creation(np.linspace)


def _like(fn):
    def make(a, *args, **kwargs):
        devices = set()
        data = _unwrap(a, devices)
        return ndarray._make(fn(data, *args, **kwargs), _current())
    make.__name__ = fn.__name__
    return make


zeros_like = _like(np.zeros_like)
ones_like = _like(np.ones_like)
empty_like = _like(np.empty_like)
full_like = _like(np.full_like)


def _function(fn):
    def call(*args, **kwargs):
        return _compute(fn, args, kwargs)
    call.__name__ = fn.__name__
    return call


# The part of CuPy's namespace d2lblocks uses, and a little around it; each
# runs NumPy's function on the data behind the arrays.
_FUNCTIONS = (
    "where", "concatenate", "stack", "split", "reshape", "transpose",
    "swapaxes", "moveaxis", "expand_dims", "squeeze", "broadcast_to",
    "repeat", "tile", "flip", "ravel", "sum", "mean", "prod", "max", "min",
    "amax", "amin", "argmax", "argmin", "cumsum", "var", "std", "all", "any",
    "dot", "matmul", "tensordot", "einsum", "outer", "clip", "sort",
    "argsort", "take", "take_along_axis", "put_along_axis", "pad", "copyto",
    "isfinite", "isnan", "isinf", "allclose", "array_equal", "nonzero",
    "unravel_index", "count_nonzero", "diag",
    "tril", "triu", "atleast_1d", "atleast_2d", "round", "around")
for _name in _FUNCTIONS:
    setattr(sys.modules[__name__], _name, _function(getattr(np, _name)))

# Answered from the arrays' metadata (no kernel runs, as in CuPy).
shape = (lambda a: a.shape if isinstance(a, ndarray) else np.shape(a))
ndim = (lambda a: a.ndim if isinstance(a, ndarray) else np.ndim(a))
size = (lambda a: a.size if isinstance(a, ndarray) else np.size(a))
result_type = np.result_type
can_cast = np.can_cast
dtype = np.dtype
may_share_memory = (lambda a, b, max_work=None:
                    np.may_share_memory(_unwrap(a, set()), _unwrap(b, set())))
shares_memory = (lambda a, b, max_work=None:
                 np.shares_memory(_unwrap(a, set()), _unwrap(b, set())))


class ufunc:
    """One of NumPy's ufuncs, run on this module's arrays."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __call__(self, *args, **kwargs):
        return _compute(self._u, args, kwargs)

    def reduce(self, *args, **kwargs):
        return _compute(self._u.reduce, args, kwargs)

    def accumulate(self, *args, **kwargs):
        return _compute(self._u.accumulate, args, kwargs)

    def outer(self, *args, **kwargs):
        return _compute(self._u.outer, args, kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise TypeError(f"{self.__name__}.at needs a GPU array, got "
                            f"{type(a).__name__}")
        a.__array_ufunc__(self._u, "at", a, indices,
                          *(() if b is None else (b,)))

    def __repr__(self):
        return f"<ufunc '{self.__name__}'>"


_UFUNCS = (
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide",
    "remainder", "mod", "power", "negative", "positive", "absolute", "abs",
    "sign", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "square",
    "tanh", "sinh", "cosh", "sin", "cos", "tan", "arctan", "maximum",
    "minimum", "fmax", "fmin", "greater", "greater_equal", "less",
    "less_equal", "equal", "not_equal", "logical_and", "logical_or",
    "logical_not", "logaddexp", "reciprocal", "floor", "ceil", "rint",
    "invert", "bitwise_and", "bitwise_or", "bitwise_xor", "matmul")
for _name in _UFUNCS:
    setattr(sys.modules[__name__], _name, ufunc(getattr(np, _name)))

for _name in ("float16", "float32", "float64", "int8", "int16", "int32",
              "int64", "uint8", "bool_", "complex64", "complex128", "inf",
              "nan", "pi", "e", "newaxis", "integer", "floating", "number",
              "generic"):
    setattr(sys.modules[__name__], _name, getattr(np, _name))

_this = sys.modules[__name__]
del _name, _ufunc
