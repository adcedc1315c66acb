"""The Tensor, and ``apply``, the one function that runs ops on tensors.

A Tensor wraps one array (NumPy, or CuPy on a GPU). Every operator and
method of the class runs an op of ``kernels`` through ``apply(op,
*inputs)``, the one place where graph nodes are made: when recording is on
and some input requires a gradient, the op object itself becomes the node
(``tensor.grad_fn``), remembering its parents and a number that grows with
every op. ``backward()`` hands the graph to the engine (``autograd.py``:
grad mode, the hooks tools watch through, the backward sweep); views,
version counters and in-place writes live in ``views.py``, and the
reading of operands, dtypes, axes and shapes in ``operands.py``.

The module also makes tensors: ``db.tensor``, ``zeros``, ``rand``, ...
(random ones from the generator of ``rng.py``).
"""

import numbers

import numpy as np

from . import backend
from . import kernels as K
from .autograd import (Hooks, RecordingOff, backward_pass, decision,
                       node_numbers, thread_mode)
from .kernels import forward_on_device, normalize_axes
from .operands import (PY_NUMBERS, MaxMin, as_dtype, bool_, constant_array,
                       describe, dim_arg, dims_arg, flattened_shape, float16,
                       float32, float64, int32, int64, matmul_error,
                       mismatch_error, numeric_array, one_axis, optional_axis,
                       promote, reduction_axes, scalar_value, shape_arg,
                       shape_from, squeezed_shape, swap_permutation, to_array,
                       transpose_axes)
from .views import (check_writable, in_place_error, mark_changed,
                    shares_memory, storage, viewed, write, write_result)
from .rng import random_generator
# The engine's and the generator's public names, importable from here as
# they always were.
from .autograd import (enable_grad, grad_mode_flags, is_grad_enabled,  # noqa: F401
                       next_node_number, no_grad, ones_for, set_grad_enabled,
                       set_recorder, set_watcher, watcher)
from .rng import manual_seed, set_random_generator  # noqa: F401

__all__ = ["Tensor", "tensor", "zeros", "ones", "zeros_like", "ones_like",
           "full", "rand", "randn", "arange", "manual_seed", "no_grad",
           "enable_grad", "is_grad_enabled", "set_grad_enabled", "float16",
           "float32", "float64", "int32", "int64", "bool_", "as_dtype",
           "apply", "set_recorder", "mark_changed", "random_generator"]

_next_seq = node_numbers.__next__
_ONE_NEED = (True,)
_new = object.__new__
_ndarray = np.ndarray


# ---- the node constructor --------------------------------------------------------
def wrap(data):
    """A leaf tensor around the array ``data``, not copied or checked
    (for tools that build tensors from arrays they computed)."""
    t = _new(Tensor)
    t.data = data
    t.requires_grad = False
    t.grad = None
    t.grad_fn = None
    return t


def apply(op, *inputs):
    """Run ``op`` on tensors: ``op.forward`` on their arrays, then a tensor
    around the result, recorded as a graph node when recording is on, some
    input requires a gradient and the result is floating point.

    Arguments:
        op: an instance of a ``kernels.Op`` subclass (used once).
        *inputs: tensors, one per argument of ``op.forward``.

    Returns:
        The output tensor; ``out.grad_fn is op`` when it was recorded.
    """
    # Host arrays run the op as it is; anything else runs it with the
    # device of its inputs entered (``forward_on_device``), so that what the op
    # makes lands there, on any GPU.
    n = len(inputs)
    if n == 1:
        a = inputs[0]
        x = a.data
        data = op.forward(x) if type(x) is _ndarray else forward_on_device(op, x)
        record = a.requires_grad
    elif n == 2:
        a, b = inputs
        x, y = a.data, b.data
        if type(x) is _ndarray and type(y) is _ndarray:
            data = op.forward(x, y)
        else:
            data = forward_on_device(op, x, y)
        record = a.requires_grad or b.requires_grad
    elif n == 3:                       # a dense layer: x, weight, bias
        a, b, c = inputs
        x, y, z = a.data, b.data, c.data
        if type(x) is _ndarray and type(y) is _ndarray and type(z) is _ndarray:
            data = op.forward(x, y, z)
        else:
            data = forward_on_device(op, x, y, z)
        record = a.requires_grad or b.requires_grad or c.requires_grad
    else:
        data = forward_on_device(op, *[t.data for t in inputs])
        record = any(t.requires_grad for t in inputs)
    if type(data) is not _ndarray and isinstance(data, np.generic):
        data = np.asarray(data)        # NumPy gives scalars for 0-d results
    out = _new(Tensor)
    out.data = data
    out.grad = None
    if record and (RecordingOff.none or thread_mode.enabled) \
            and data.dtype.kind == "f":
        out.requires_grad = True
        out.grad_fn = op
        if n == 1:
            op.needs = _ONE_NEED
            op.parents = (a.grad_fn or a,)
        elif n == 2:
            op.needs = (a.requires_grad, b.requires_grad)
            op.parents = (a.grad_fn or a, b.grad_fn or b)
        elif n == 3:
            op.needs = (a.requires_grad, b.requires_grad, c.requires_grad)
            op.parents = (a.grad_fn or a, b.grad_fn or b, c.grad_fn or c)
        else:
            op.needs = tuple([t.requires_grad for t in inputs])
            op.parents = tuple([t.grad_fn or t for t in inputs])
        op.seq = _next_seq()
        op.shape = data.shape
        op.dtype = data.dtype
        op.grad = None
    else:
        out.requires_grad = False
        out.grad_fn = None
    if Hooks.recorder is not None:
        Hooks.recorder(op, inputs, out)
    return out


# ---- the tensor --------------------------------------------------------------------
class Tensor:
    """An n-dimensional array that can record how it was computed.

    Arguments:
        data: an array-like (nested lists, a NumPy or CuPy array, a number);
            it is copied.
        dtype: the element type; floats default to ``float32``.
        device: ``db.cpu()`` (the default), ``db.gpu(i)`` or a string.
        requires_grad: whether ``backward()`` should fill ``self.grad``.

    Use ``db.tensor(...)`` to make one; ``Tensor(...)`` is the same call.

    Attributes:
        data: the array.
        grad: after ``backward()``, the gradient (a tensor) of a leaf.
        grad_fn: the op that computed this tensor, when it was recorded.
    """

    # ``_vc`` (the version counter shared with views) and ``_view`` (base,
    # view steps, live) are set only on tensors that need them; read them
    # with getattr(t, name, None).
    __slots__ = ("data", "requires_grad", "grad", "grad_fn", "_vc", "_view",
                 "__weakref__")
    __array_ufunc__ = None      # make `ndarray + Tensor` call Tensor.__radd__

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        self.data = to_array(data, dtype, device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require "
                            f"gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.grad_fn = None

    # ---- what a tensor is ------------------------------------------------
    shape = property(lambda self: self.data.shape, doc="The shape, a tuple.")
    ndim = property(lambda self: self.data.ndim, doc="Number of dimensions.")
    dtype = property(lambda self: self.data.dtype, doc="The element type.")
    device = property(lambda self: backend.device_of(self.data),
                      doc="Where the data lives: cpu or gpu(i).")

    @property
    def is_leaf(self):
        """True for tensors made by the user rather than by a recorded op."""
        return self.grad_fn is None

    def numel(self):
        """The number of elements."""
        return self.data.size

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def item(self):
        """The value of a one-element tensor as a Python number."""
        decision("item()")
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, "
                             f"got shape {self.shape}")
        return self.data.item()

    def numpy(self):
        """The data as a NumPy array on the host (shares memory on CPU)."""
        decision("numpy()")
        return backend.to_host(self.data)

    def tolist(self):
        """The data as nested Python lists."""
        decision("tolist()")
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        decision("np.asarray()")
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __bool__(self):
        decision("bool()")  # `if x > 0:` lets the data choose
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements "
                f"is ambiguous; reduce it first, e.g. (x > 0).all() or "
                f"x.sum() > 1")
        return bool(self.data)

    def __float__(self):
        decision("float()")
        return float(self.item())

    def __int__(self):
        decision("int()")
        return int(self.item())

    def __index__(self):
        decision("an index (__index__)")
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only one-element integer tensors can be indices")
        return int(self.item())

    __hash__ = object.__hash__   # tensors are keyed by identity

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", precision=4,
                               prefix="tensor(")
        extra = ""
        if self.data.dtype not in (float32, int64, bool_):
            extra += f", dtype={self.data.dtype}"
        if self.device.kind != "cpu":
            extra += f", device={self.device}"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ---- arithmetic: + - * / ** and their reflections --------------------
    def __add__(self, other):
        if type(other) in PY_NUMBERS and self.data.dtype.kind == "f":
            return apply(K.AddScalar(other), self)       # the common x + 1.0
        return _arith(self, other, K.Add, K.AddScalar, "add (+)")

    __radd__ = __add__

    def __sub__(self, other):
        c = other if type(other) in PY_NUMBERS else scalar_value(other)
        if c is not None:            # x - c is x + (-c), exactly
            return _arith(self, -c, None, K.AddScalar, "subtract (-)")
        return _arith(self, other, K.Sub, None, "subtract (-)")

    def __rsub__(self, other):
        return _arith(self, other, K.Sub, K.RSubScalar, "subtract (-)", True)

    def __mul__(self, other):
        if type(other) in PY_NUMBERS and self.data.dtype.kind == "f":
            return apply(K.MulScalar(other), self)
        return _arith(self, other, K.Mul, K.MulScalar, "multiply (*)")

    __rmul__ = __mul__

    def __truediv__(self, other):
        return _arith(self, other, K.Div, K.DivScalar, "divide (/)")

    def __rtruediv__(self, other):
        return _arith(self, other, K.Div, K.RDivScalar, "divide (/)", True)

    def __pow__(self, other):
        return _arith(self, other, K.Pow, K.PowScalar, "power (**)")

    def __rpow__(self, other):
        return _arith(self, other, K.Pow, K.RPowScalar, "power (**)", True)

    def __matmul__(self, other):
        return _matmul(self, tensor_operand(other, "matmul (@)"))

    def __rmatmul__(self, other):
        return _matmul(tensor_operand(other, "matmul (@)"), self)

    def __neg__(self):
        return apply(K.Neg(), self)

    def __pos__(self):
        return self

    def __abs__(self):
        return apply(K.Abs(), self)

    # ---- comparisons (boolean results, never differentiated) --------------
    def __lt__(self, other):
        return _compare(self, other, np.less, "compare (<)")

    def __le__(self, other):
        return _compare(self, other, np.less_equal, "compare (<=)")

    def __gt__(self, other):
        return _compare(self, other, np.greater, "compare (>)")

    def __ge__(self, other):
        return _compare(self, other, np.greater_equal, "compare (>=)")

    def __eq__(self, other):
        return _compare(self, other, np.equal, "compare (==)")

    def __ne__(self, other):
        return _compare(self, other, np.not_equal, "compare (!=)")

    # ---- in place: += -= *= /= and x[i] = v ------------------------------
    def __iadd__(self, other):
        """``self += other``, in place (also ``add_``); returns self."""
        return _inplace(self, other, Tensor.__add__, np.add, "add")

    def __isub__(self, other):
        """``self -= other``, in place (also ``sub_``); returns self."""
        return _inplace(self, other, Tensor.__sub__, np.subtract, "subtract")

    def __imul__(self, other):
        """``self *= other``, in place (also ``mul_``); returns self."""
        return _inplace(self, other, Tensor.__mul__, np.multiply, "multiply")

    def __itruediv__(self, other):
        """``self /= other``, in place (also ``div_``); returns self."""
        return _inplace(self, other, Tensor.__truediv__, np.true_divide, "divide")

    def __getitem__(self, index):
        op = K.GetItem(_index(index))
        out = apply(op, self)
        if op.basic:                 # slices and ints: a view, as in PyTorch
            viewed(self, out, (K.GetItem, op.index))
        return out

    def __setitem__(self, index, value):
        index = _index(index)
        if RecordingOff.none or thread_mode.enabled:
            check_writable(self)
            write(self, _source(self, value, "setitem"), index, None)
            return
        data = self.data
        value = value.data if isinstance(value, Tensor) else value
        if type(data) is _ndarray:
            data[index] = value
        else:
            with backend.on_array(data):     # on the tensor's GPU
                data[index] = value
        mark_changed(self)

    # ---- in place, by name (PyTorch's methods with a trailing _) ------------
    add_, sub_, mul_, div_ = __iadd__, __isub__, __imul__, __itruediv__

    def copy_(self, src):
        """Write ``src`` (broadcast to this shape) into this tensor, in
        place; the gradient flows to ``src``. Returns self."""
        if RecordingOff.none or thread_mode.enabled:
            check_writable(self)
            write(self, _source(self, src, "copy_"), None, None)
            return self
        self.data[...] = src.data if isinstance(src, Tensor) else src
        mark_changed(self)
        return self

    def fill_(self, value):
        """Set every element to the number ``value``, in place."""
        if scalar_value(value) is None:
            raise TypeError(f"fill_: expected a number, got "
                            f"{type(value).__name__}")
        return self.copy_(value)

    def zero_(self):
        """Set every element to 0, in place; returns self."""
        return self.copy_(0)

    # ---- elementwise functions ----------------------------------------------
    def exp(self):
        """Elementwise exponential."""
        return apply(K.Exp(), self)

    def log(self):
        """Elementwise natural logarithm."""
        return apply(K.Log(), self)

    def sqrt(self):
        """Elementwise square root."""
        return apply(K.Sqrt(), self)

    def abs(self):
        """Elementwise absolute value (gradient 0 at 0)."""
        return apply(K.Abs(), self)

    def relu(self):
        """``max(x, 0)`` elementwise."""
        return apply(K.ReLU(), self)

    def sigmoid(self):
        """The logistic function ``1 / (1 + exp(-x))``."""
        return apply(K.Sigmoid(), self)

    def tanh(self):
        """Elementwise hyperbolic tangent."""
        return apply(K.Tanh(), self)

    def softmax(self, axis=-1, *, dim=None):
        """Softmax along ``axis`` (negative counts from the end); PyTorch's
        ``dim=`` is accepted too."""
        return _along(self, K.Softmax, dim_arg(axis, dim, -1, "softmax"))

    def log_softmax(self, axis=-1, *, dim=None):
        """``log(softmax(x))`` along ``axis``, computed without overflow."""
        return _along(self, K.LogSoftmax, dim_arg(axis, dim, -1, "log_softmax"))

    # ---- reductions -----------------------------------------------------------
    # NumPy's and MXNet's ``axis=``/``keepdims=`` and PyTorch's
    # ``dim=``/``keepdim=`` both work.
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Sum over ``axis`` (an int, a tuple, or None for all axes)."""
        axis, keepdims = dims_arg(axis, keepdims, dim, keepdim, "sum")
        return apply(K.Sum(reduction_axes(axis, self.data.ndim), keepdims), self)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Mean over ``axis`` (an int, a tuple, or None for all axes)."""
        axis, keepdims = dims_arg(axis, keepdims, dim, keepdim, "mean")
        return apply(K.Mean(reduction_axes(axis, self.data.ndim), keepdims), self)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Maximum over ``axis``; tied maxima share the gradient equally.

        Given PyTorch's ``dim=``, it returns what PyTorch's does: a pair
        ``(values, indices)`` (also ``.values``, ``.indices``)."""
        return _extreme(self, K.Max, axis, keepdims, dim, keepdim, "max")

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Minimum over ``axis``; tied minima share the gradient equally.
        With ``dim=``, ``(values, indices)`` as in PyTorch."""
        return _extreme(self, K.Min, axis, keepdims, dim, keepdim, "min")

    def argmax(self, dim=None, keepdim=False, *, axis=None):
        """Indices of the maxima along ``dim`` (NumPy's ``axis``; of the
        flattened tensor when None), with that axis kept as 1 when
        ``keepdim``; an int64 tensor, never differentiated."""
        return _arg(self, K.ArgMax, dim_arg(dim, axis, None, "argmax"), keepdim)

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        """Indices of the minima along ``dim``, as ``argmax``."""
        return _arg(self, K.ArgMin, dim_arg(dim, axis, None, "argmin"), keepdim)

    def all(self, dim=None, keepdim=False, *, axis=None):
        """Whether every element is true (a boolean tensor): of all of
        them, or along ``dim`` (NumPy's ``axis``)."""
        dim = dim_arg(dim, axis, None, "all")
        return apply(K.All(reduction_axes(dim, self.data.ndim), bool(keepdim)), self)

    def any(self, dim=None, keepdim=False, *, axis=None):
        """Whether some element is true, as ``all``."""
        dim = dim_arg(dim, axis, None, "any")
        return apply(K.Any(reduction_axes(dim, self.data.ndim), bool(keepdim)), self)

    # ---- shapes -------------------------------------------------------------------
    def reshape(self, *args, shape=None):
        """The same elements in a new shape: ``x.reshape(2, -1)``,
        ``x.reshape((2, -1))`` or ``x.reshape(shape=(2, -1))``. A view of
        this tensor's memory when no copy is needed, as in PyTorch."""
        shape = shape_arg(args, shape, "shape", "reshape")
        try:
            out = apply(K.Reshape(shape), self)
        except (ValueError, TypeError):
            raise ValueError(f"reshape: cannot reshape a tensor of shape "
                             f"{self.shape} ({self.data.size} elements) into "
                             f"shape {shape}") from None
        if shares_memory(out.data, self.data):      # no copy was needed: a view
            viewed(self, out, (K.Reshape, out.data.shape))
        return out

    def view(self, *args, size=None):
        """PyTorch's name for ``reshape`` (its keyword is ``size=``)."""
        return self.reshape(shape_arg(args, size, "size", "view"))

    def size(self, dim=None):
        """PyTorch's ``size()``: the shape, or the length of axis ``dim``."""
        return self.shape if dim is None else self.shape[one_axis(dim, self.ndim, "dim")]

    def dim(self):
        """PyTorch's ``dim()``: the number of axes (``ndim``)."""
        return self.data.ndim

    def unsqueeze(self, dim):
        """A new axis of length 1 at ``dim`` (``-1`` appends one)."""
        shape = list(self.data.shape)
        shape.insert(one_axis(dim, len(shape) + 1, "dim"), 1)
        return self.reshape(tuple(shape))

    def squeeze(self, dim=None):
        """Without axes of length 1: all of them, or just ``dim`` (left
        alone when its length is not 1, as in PyTorch)."""
        shape = squeezed_shape(self.data.shape, dim)
        return self if shape is None else self.reshape(shape)

    def permute(self, *args, dims=None):
        """Axes in the order ``dims`` (PyTorch's name for a permutation):
        ``x.permute(2, 0, 1)``, ``x.permute((2, 0, 1))`` or ``dims=``."""
        return self.transpose(shape_arg(args, dims, "dims", "permute"))

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge axes ``start_dim`` to ``end_dim`` (negatives count from the
        end) into one: ``x.flatten(1)`` turns (N, C, H, W) into (N, C*H*W)."""
        return self.reshape(flattened_shape(self.data.shape, start_dim,
                                            end_dim))

    def transpose(self, *axes, dim0=None, dim1=None):
        """Two axes are swapped, as in PyTorch: ``x.transpose(0, 1)``,
        ``x.transpose(dim0=0, dim1=1)``, ``x.transpose(1, 2)`` of a batch of
        matrices. Otherwise the axes
        are a permutation, as in ``np.transpose``: ``x.transpose(1, 0, 2)``
        or ``x.transpose((1, 0))``; reversed when none are given. Negative
        axes count from the end.

        (For a matrix the two readings agree, except that NumPy reads
        ``x.transpose(0, 1)`` as "leave the axes in order": nobody writes
        that, while PyTorch code writes it to mean ``x.T``.)
        """
        return _permuted(self, transpose_axes(axes, dim0, dim1,
                                              self.data.shape))

    @property
    def T(self):
        """The transpose (axes reversed)."""
        return self.transpose()

    def swapaxes(self, axis0, axis1):
        """Swap two axes (negatives count from the end); PyTorch's names,
        which NumPy calls axis1 and axis2."""
        return _permuted(self, swap_permutation(axis0, axis1,
                                                self.data.ndim))

    # ---- graph -------------------------------------------------------------
    def detach(self):
        """A tensor over the same memory (and version counter) that is cut
        off from the graph: in-place changes of either are seen by both."""
        out = wrap(self.data)
        out._vc = storage(self)
        return out

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on a leaf tensor, in place; returns self."""
        flag = requires_grad
        if not self.is_leaf and not flag:
            raise RuntimeError("requires_grad can only be turned off on leaf "
                               "tensors; use detach() instead")
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require "
                            f"gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(flag)
        return self

    def backward(self, gradient=None, retain_graph=False, *, grad=None):
        """Fill ``.grad`` of every leaf this tensor depends on.

        Arguments:
            gradient: the gradient of some scalar with respect to this
                tensor (PyTorch's name; ``grad=`` works too); may be left
                out when this tensor has one element (then 1).
            retain_graph: keep the graph so that backward can run again.

        Gradients add up in ``.grad`` across calls; clear them with
        ``net.zero_grad()`` or ``x.grad = None``. A backward pass that
        raises changes no ``.grad``: leaves get their gradients only once
        the whole sweep has succeeded.

        Raises:
            RuntimeError: an op's backward gave a gradient of the wrong
                shape, dtype or device, a tensor that an op saved for its
                gradient was changed in place since, or the graph was
                freed by an earlier backward().
            ValueError: ``gradient`` has another shape than this tensor.
        """
        if grad is not None:
            if gradient is not None:
                raise TypeError("backward() got both gradient= and grad=; "
                                "they are the same argument, give one")
            gradient = grad
        backward_pass(self, gradient, gradient.data if isinstance(
            gradient, Tensor) else gradient, retain_graph, _accumulate)

    # ---- moving ------------------------------------------------------------
    def to(self, device=None, dtype=None):
        """A copy on ``device`` and/or with ``dtype`` (self when unchanged).

        The copy is a new leaf that keeps ``requires_grad``.
        """
        data = self.data
        if device is not None:
            data = backend.move(data, backend.as_device(device))
        if dtype is not None:
            data = data.astype(as_dtype(dtype), copy=False)
        if data is self.data:
            return self
        out = wrap(data)
        out.requires_grad = self.requires_grad and data.dtype.kind == "f"
        return out

    def cpu(self):
        """A copy on the host (self when already there)."""
        return self.to(backend.cpu())

    def astype(self, dtype):
        """A copy with element type ``dtype`` (differentiable for floats)."""
        return apply(K.AsType(as_dtype(dtype)), self)

    def clone(self):
        """A differentiable copy with its own memory."""
        return apply(K.MulScalar(1), self)


# ---- how operands are read ------------------------------------------------------
def tensor_operand(value, what):
    """``value`` as a tensor: tensors as they are, arrays and lists wrapped
    as constants (no copy of arrays)."""
    if isinstance(value, Tensor):
        return value
    return wrap(numeric_array(value, what))


def _arith(a, other, tensor_op, scalar_op, name, reflected=False):
    """``a (op) other``, or ``other (op) a`` when ``reflected``.

    A number goes to ``scalar_op`` (a constant of the op); anything else is
    made a tensor and goes to ``tensor_op`` with broadcasting.
    """
    if type(other) in PY_NUMBERS and a.data.dtype.kind == "f":
        return apply(scalar_op(other), a)        # the common x * 2.0
    c = scalar_value(other)
    if c is not None and scalar_op is not None:
        divide = scalar_op in (K.DivScalar, K.RDivScalar)
        if a.data.dtype.kind != "f" and (isinstance(c, float) or divide):
            a = a.astype(float32)
        return apply(scalar_op(c), a)
    b = tensor_operand(other, name.split()[0])
    if reflected:
        a, b = b, a
    divide = tensor_op is K.Div
    if a.data.dtype is not b.data.dtype or divide and a.data.dtype.kind != "f":
        a, b = promote(a, b, divide)
    try:
        return apply(tensor_op(), a, b)
    except (ValueError, TypeError) as exc:
        raise mismatch_error(name, a.data, b.data, exc) from None


def _compare(a, other, fn, name):
    if other is None or not (isinstance(other, (Tensor, numbers.Number, np.ndarray,
                                                np.generic, list, tuple))
                             or hasattr(other, "__cuda_array_interface__")):
        return NotImplemented         # e.g. `x == None` falls back to identity
    c = scalar_value(other)
    if c is not None:
        return apply(K.Compare(fn, c), a)
    b = tensor_operand(other, name)
    try:
        return apply(K.Compare(fn), a, b)
    except (ValueError, TypeError) as exc:
        raise mismatch_error(name, a.data, b.data, exc) from None


def _matmul(a, b):
    if a.data.dtype is not b.data.dtype:
        a, b = promote(a, b, False)
    if not a.data.ndim or not b.data.ndim:
        raise ValueError(f"matmul (@): both operands need at least one axis, "
                         f"got shapes {a.shape} and {b.shape}")
    try:
        return apply(K.MatMul(), a, b)
    except (ValueError, TypeError) as exc:
        raise matmul_error(a.data, b.data, exc) from None


def _permuted(t, perm):
    """``t`` with its axes in the order ``perm``, a view; ``t`` itself
    when ``perm`` is None (a swap of the axes of a 0-d tensor)."""
    if perm is None:
        return t
    return viewed(t, apply(K.Transpose(perm), t), (K.Transpose, perm))


def _along(t, op, axis):
    """A softmax-like op along one axis; a 0-d tensor counts as 1-D."""
    if t.data.ndim == 0:
        normalize_axes(axis, 0)
        return _along(t.reshape(1), op, 0).reshape(())
    return apply(op(one_axis(axis, t.data.ndim)), t)


def _extreme(t, op, axis, keepdims, dim, keepdim, name):
    axis, keepdims = dims_arg(axis, keepdims, dim, keepdim, name)
    values = apply(op(reduction_axes(axis, t.data.ndim), keepdims), t)
    if dim is None:
        return values
    if not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name}(dim=...) takes one int, got {dim!r}")
    index = t.argmax(dim) if op is K.Max else t.argmin(dim)
    return MaxMin((values, _keep(index, t, dim) if keepdims else index))


def _arg(t, op, axis, keepdim):
    out = apply(op(optional_axis(axis, t.data.ndim)), t)
    return _keep(out, t, axis) if keepdim else out


def _keep(out, t, axis):
    """``out``, reduced along ``axis`` of ``t``, with that axis kept."""
    if axis is None:
        return out.reshape((1,) * t.data.ndim)
    return out.unsqueeze(one_axis(axis, t.data.ndim)) if t.data.ndim else out


def _index(index):
    """Replace tensors inside an index by their arrays."""
    if Hooks.watch is not None and (isinstance(index, Tensor) or (
            isinstance(index, tuple) and any(isinstance(i, Tensor) for i in index))):
        Hooks.watch.decision("indexing with a tensor")
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index.data if isinstance(index, Tensor) else index


def _inplace(t, other, op, ufunc, name):
    """``t op= other``, in place: the tensor keeps its array, and its
    views see the change.

    Inside ``db.no_grad()`` the ufunc writes into the array. While the
    graph is recorded, the result is computed by ``op`` (a Tensor method)
    and then written into the array by ``views.write_result``, which
    records the write as a node.
    """
    if RecordingOff.none or thread_mode.enabled:
        check_writable(t)
        source = t
        if (ufunc is np.multiply or ufunc is np.true_divide) and \
                isinstance(other, Tensor) and other.requires_grad:
            source = t.clone()        # the gradient of other reads old t
        write_result(t, op(source, other), name)
        return t
    value = other.data if isinstance(other, Tensor) else scalar_value(other)
    if value is None:
        value = numeric_array(other, name)
    data = t.data
    try:
        if type(data) is _ndarray:
            ufunc(data, value, out=data, casting="same_kind")
        else:
            with backend.on_array(data):    # on the tensor's GPU
                ufunc(data, value, out=data, casting="same_kind")
    except (TypeError, ValueError) as exc:
        raise in_place_error(name, data, value, exc) from None
    mark_changed(t)
    return t


def _source(target, value, what):
    """``value``, to be written into ``target``, as a tensor of
    ``target``'s dtype (numbers and arrays are converted at once, so that
    a float64 tensor gets float64 values)."""
    if isinstance(value, Tensor):
        if value.data.dtype != target.data.dtype:
            value = value.astype(target.data.dtype)
        return value
    return wrap(constant_array(value, target.data, what))


def _accumulate(leaf, g, op):
    """Add ``g`` (checked by ``autograd.check_leaf_gradient``) into
    ``leaf.grad``, for the backward sweep. Never in place: gradient arrays
    may be shared between leaves (``a + b`` hands both the same array)."""
    old = leaf.grad
    if old is None:
        leaf.grad = wrap(g)
    elif (type(old) is Tensor or isinstance(old, Tensor)) \
            and old.data.shape == g.shape:
        leaf.grad = wrap(old.data + g)
    else:
        raise RuntimeError(
            f"backward(): the .grad already held by a tensor of shape "
            f"{leaf.shape} is {describe(old)}, which a gradient of shape "
            f"{tuple(g.shape)} cannot be added to; set it to None first")




# ---- creation --------------------------------------------------------------
def tensor(data, dtype=None, device=None, requires_grad=False):
    """Make a tensor from data.

    Arguments:
        data: a number, nested lists, a NumPy/CuPy array or a Tensor (copied).
        dtype: element type; Python floats become ``float32`` and Python
            ints ``int64``; a NumPy array keeps its own dtype.
        device: ``db.cpu()`` (default), ``db.gpu(i)``, ``'cpu'``, ``'gpu:0'``.
        requires_grad: record operations on it for ``backward()``.

    Raises:
        TypeError: the data is not numeric (strings, objects, ragged lists).
    """
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _filled(fill, shape, dtype, device, requires_grad):
    dev = backend.as_device(device)
    dt = float32 if dtype is None else as_dtype(dtype)
    with backend.on(dev):
        arr = dev.xp.full(shape_from(shape), fill, dtype=dt)
    return Tensor(arr, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros: ``db.zeros(2, 3)`` or ``db.zeros((2, 3))``."""
    return _filled(0, shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    """A tensor of ones: ``db.ones(2, 3)`` or ``db.ones((2, 3))``."""
    return _filled(1, shape, dtype, device, requires_grad)


def full(shape, value, dtype=None, device=None, requires_grad=False):
    """A tensor of ``shape`` filled with ``value``."""
    return _filled(value, (shape,) if isinstance(shape, numbers.Integral)
                   else shape,
                   dtype, device, requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    """Zeros with the shape, dtype and device of ``t``."""
    return _filled(0, t.shape, dtype or t.dtype, t.device, requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    """Ones with the shape, dtype and device of ``t``."""
    return _filled(1, t.shape, dtype or t.dtype, t.device, requires_grad)


def arange(start, stop=None, step=1, dtype=None, device=None):
    """Evenly spaced values, as ``np.arange`` (int64 for integer input)."""
    if stop is None:
        start, stop = 0, start
    arr = np.arange(start, stop, step)
    if dtype is None:
        dtype = int64 if arr.dtype.kind in "iu" else float32
    return Tensor(arr, dtype=dtype, device=device)


# ---- random tensors (from ``rng.py``'s generator) --------------------------------
def _random(draw, shape, dtype, device, requires_grad):
    dt = float32 if dtype is None else as_dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"random tensors must be floating point, got {dt}")
    arr = draw(shape_from(shape), dtype=dt if dt != float16 else float32).astype(dt, copy=False)
    return Tensor(arr, device=device, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1): ``db.rand(2, 20)``."""
    return _random(random_generator().random, shape, dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal samples: ``db.randn(2, 20)``."""
    return _random(random_generator().standard_normal, shape, dtype, device, requires_grad)
