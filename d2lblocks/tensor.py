"""The Tensor, its creation functions, and the reverse-mode engine.

A Tensor wraps one array (NumPy, or CuPy on a GPU). A tensor made by an op
while gradients are recorded remembers three things: its parents, a
``_backward`` function that maps the gradient of the output to the gradients
of the parents, and a sequence number ``_seq`` that grows with every op.
Parents are always older than their children, so visiting the graph in
decreasing ``_seq`` is a valid reverse topological order, with no recursion
and no sorting pass.

The ops themselves, and the operators such as ``+`` and ``@``, live in
``ops.py`` beside their backward rules.
"""

import functools
import itertools
import numbers
from heapq import heappop, heappush

import numpy as np

from . import backend

__all__ = ["Tensor", "tensor", "zeros", "ones", "zeros_like", "ones_like",
           "full", "rand", "randn", "arange", "manual_seed", "no_grad",
           "enable_grad", "is_grad_enabled", "float16", "float32", "float64",
           "int32", "int64", "bool_", "as_dtype"]

float16, float32, float64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")
int32, int64, bool_ = np.dtype("int32"), np.dtype("int64"), np.dtype("bool")

_next_seq = itertools.count(1).__next__
_new = object.__new__


class _GradMode:
    """Whether ops record the graph. One module-level flag, read by every op."""
    enabled = True


_mode = _GradMode


def is_grad_enabled():
    """True unless inside ``db.no_grad()``."""
    return _mode.enabled


class no_grad:
    """Context manager (and decorator) that stops recording the graph.

    Inside it, ops make plain tensors, and in-place operators such as
    ``w -= lr * w.grad`` change the array itself, which is how a hand-written
    optimizer updates parameters.
    """

    _value = False

    def __enter__(self):
        self._saved = _mode.enabled
        _mode.enabled = self._value

    def __exit__(self, *exc):
        _mode.enabled = self._saved

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    """Context manager that turns recording back on inside ``no_grad``."""

    _value = True


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


def _freed(grad):
    raise RuntimeError(
        "backward() went through this part of the graph a second time, but "
        "its saved values were freed after the first backward(). Pass "
        "retain_graph=True to the first call if you need to go back twice.")


class Tensor:
    """An n-dimensional array that can record how it was computed.

    Arguments:
        data: an array-like (nested lists, a NumPy or CuPy array, a number);
            it is copied.
        dtype: the element type; floats default to ``float32``.
        device: ``db.cpu()`` (the default), ``db.gpu(i)`` or a string.
        requires_grad: whether ``backward()`` should fill ``self.grad``.

    Use ``db.tensor(...)`` to make one; ``Tensor(...)`` is the same call.
    """

    __slots__ = ("data", "requires_grad", "grad", "_backward", "_parents",
                 "_seq", "_prev", "__weakref__")
    __array_ufunc__ = None      # make `ndarray + Tensor` call Tensor.__radd__

    def __init__(self, data, dtype=None, device=None, requires_grad=False):
        self.data = _to_array(data, dtype, device)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require "
                            f"gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._backward = None
        self._parents = ()
        self._seq = 0
        self._prev = None

    # ---- what a tensor is ------------------------------------------------
    shape = property(lambda self: self.data.shape, doc="The shape, a tuple.")
    ndim = property(lambda self: self.data.ndim, doc="Number of dimensions.")
    dtype = property(lambda self: self.data.dtype, doc="The element type.")
    device = property(lambda self: backend.device_of(self.data),
                      doc="Where the data lives: cpu or gpu(i).")

    @property
    def is_leaf(self):
        """True for tensors made by the user rather than by a recorded op."""
        return self._backward is None

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
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, "
                             f"got shape {self.shape}")
        return self.data.item()

    def numpy(self):
        """The data as a NumPy array on the host (shares memory on CPU)."""
        return backend.to_host(self.data)

    def tolist(self):
        """The data as nested Python lists."""
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements "
                f"is ambiguous; reduce it first, e.g. (x > 0).all() or "
                f"x.sum() > 1")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
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

    # ---- graph -------------------------------------------------------------
    def detach(self):
        """A tensor with the same data that is cut off from the graph."""
        return _wrap(self.data)

    def requires_grad_(self, flag=True):
        """Set ``requires_grad`` on a leaf tensor, in place; returns self."""
        if not self.is_leaf and not flag:
            raise RuntimeError("requires_grad can only be turned off on leaf "
                               "tensors; use detach() instead")
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require "
                            f"gradients, got dtype {self.data.dtype}")
        self.requires_grad = bool(flag)
        return self

    def backward(self, grad=None, retain_graph=False):
        """Fill ``.grad`` of every leaf this tensor depends on.

        Arguments:
            grad: the gradient of some scalar with respect to this tensor;
                may be left out when this tensor has one element (then 1).
            retain_graph: keep the graph so that backward can run again.

        Gradients add up in ``.grad`` across calls; clear them with
        ``net.zero_grad()`` or ``x.grad = None``.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() was called on a tensor that does not require "
                "gradients: none of its inputs had requires_grad=True, or it "
                "was computed inside db.no_grad()")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element "
                    f"tensor (a loss), got shape {self.shape}; reduce it "
                    f"(e.g. y.sum().backward()) or pass grad= of that shape")
            g = _one(self.data)
        else:
            g = _to_array(grad.data if isinstance(grad, Tensor) else grad,
                          self.data.dtype, self.device)
            if g.shape != self.data.shape:
                raise ValueError(f"backward(grad=...) expected a gradient of "
                                 f"shape {self.shape}, got {g.shape}")
            if g is getattr(grad, "data", grad):
                g = g.copy()
        _run_backward(self, g, retain_graph)

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
        out = _wrap(data)
        out.requires_grad = self.requires_grad and data.dtype.kind == "f"
        return out

    def cpu(self):
        """A copy on the host (self when already there)."""
        return self.to(backend.cpu())

    def astype(self, dtype):
        """A copy with element type ``dtype`` (differentiable for floats)."""
        from .ops import astype
        return astype(self, dtype)

    def clone(self):
        """A differentiable copy with its own memory."""
        return self * 1


def _to_array(data, dtype, device):
    """Make the backing array of a tensor, checking what was given."""
    if isinstance(data, Tensor):
        data = data.data
    dt = None if dtype is None else as_dtype(dtype)
    if not (isinstance(data, (np.ndarray, np.generic))
            or hasattr(data, "__cuda_array_interface__")):
        try:
            data = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"db.tensor() expected numbers, nested lists of "
                            f"numbers or an array, got {_describe(data)} "
                            f"({exc})") from None
        if dt is None and data.dtype.kind == "f":
            dt = float32        # Python floats become float32, as in PyTorch
    if data.dtype.kind not in "biuf":
        raise TypeError(f"db.tensor() expected numeric data (numbers, nested "
                        f"lists of numbers, or a numeric array), got "
                        f"{_describe(data)}")
    here = backend.device_of(data)
    dev = here if device is None else backend.as_device(device)
    if dev != here:
        data = backend.move(data, dev)
    # A copy, as torch.tensor makes: in-place updates of the tensor (an
    # optimizer step) must never change the caller's array.
    return dev.xp.array(data, dtype=dt, copy=True)


def _one(like):
    """An array of ones shaped and typed like ``like`` (a cheap path for
    the usual scalar loss)."""
    if isinstance(like, np.ndarray):
        one = np.asarray(1, like.dtype)
        return one.reshape(like.shape) if like.shape else one
    return backend.namespace_of(like).ones(like.shape, like.dtype)


def _describe(data):
    text = repr(data)
    return f"{type(data).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _wrap(data):
    """A leaf tensor around an existing array (no checks, no copy)."""
    t = _new(Tensor)
    t.data = data
    t.requires_grad = False
    t.grad = None
    t._backward = None
    t._parents = ()
    t._seq = 0
    t._prev = None
    return t


def _node(data, parents, backward):
    """The output of a recorded op. Ops call this only when some parent
    requires a gradient and recording is on."""
    t = _new(Tensor)
    t.data = data
    t.requires_grad = True
    t.grad = None
    t._backward = backward
    t._parents = parents
    t._seq = _next_seq()
    t._prev = None
    return t


def _run_backward(root, grad, retain_graph):
    """Reverse-mode sweep from ``root`` with ``grad`` as its gradient.

    Nodes are visited newest first, from a heap keyed by ``_seq``: every node
    that can send a gradient to a node is newer than it, so by the time a node
    is popped its gradient is complete. A node enters the heap the first time
    it receives a gradient; while it waits there, its ``grad`` slot holds the
    raw array of the gradient gathered so far.
    """
    if root._backward is None:
        _accumulate(root, grad)
        return
    root.grad = grad
    heap = [(-root._seq, root)]      # _seq is unique, so nodes never compare
    try:
        while heap:
            t = heappop(heap)[1]
            g, t.grad = t.grad, None
            for p, gp in zip(t._parents, t._backward(g)):
                if gp is None:
                    continue
                while p._seq > t._seq:   # p was changed in place after t used it
                    p = p._prev
                if p._backward is None:
                    if p.requires_grad:
                        _accumulate(p, gp)
                elif p.grad is None:
                    p.grad = gp
                    heappush(heap, (-p._seq, p))
                else:
                    p.grad = p.grad + gp
            if not retain_graph:
                # _prev stays: older nodes may still need it to find the old
                # value of a tensor that was changed in place.
                t._backward = _freed
                t._parents = ()
    except BaseException:
        for _, t in heap:            # drop the gradients still waiting
            t.grad = None
        raise


def _accumulate(leaf, g):
    """Add ``g`` into ``leaf.grad``. Never in place: gradient arrays may be
    shared between leaves (``a + b`` hands both the same array)."""
    if g.dtype != leaf.data.dtype:
        g = g.astype(leaf.data.dtype)
    if leaf.grad is None:
        leaf.grad = _wrap(g)
    else:
        leaf.grad = _wrap(leaf.grad.data + g)


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


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"expected a shape of non-negative ints, got {shape}")
    return tuple(int(n) for n in shape)


def _filled(fill, shape, dtype, device, requires_grad):
    dev = backend.as_device(device)
    dt = float32 if dtype is None else as_dtype(dtype)
    arr = dev.xp.full(_shape(shape), fill, dtype=dt)
    return Tensor(arr, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros: ``db.zeros(2, 3)`` or ``db.zeros((2, 3))``."""
    return _filled(0, shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    """A tensor of ones: ``db.ones(2, 3)`` or ``db.ones((2, 3))``."""
    return _filled(1, shape, dtype, device, requires_grad)


def full(shape, value, dtype=None, device=None, requires_grad=False):
    """A tensor of ``shape`` filled with ``value``."""
    return _filled(value, (shape,) if isinstance(shape, int) else shape,
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


# ---- randomness --------------------------------------------------------------
class _Random:
    """The one random generator of d2lblocks. Numbers are drawn on the host
    and then moved, so a seed gives the same values on CPU and GPU."""
    rng = np.random.default_rng()


def manual_seed(seed):
    """Seed every random draw of d2lblocks (tensors, initializers, dropout)."""
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"expected a non-negative int seed, got {seed!r}")
    _Random.rng = np.random.default_rng(int(seed))


def random_generator():
    """The current ``numpy.random.Generator`` (used by ``init``, dropout)."""
    return _Random.rng


def _random(draw, shape, dtype, device, requires_grad):
    dt = float32 if dtype is None else as_dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"random tensors must be floating point, got {dt}")
    arr = draw(_shape(shape), dtype=dt if dt != float16 else float32).astype(dt, copy=False)
    return Tensor(arr, device=device, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1): ``db.rand(2, 20)``."""
    return _random(_Random.rng.random, shape, dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False):
    """Standard normal samples: ``db.randn(2, 20)``."""
    return _random(_Random.rng.standard_normal, shape, dtype, device, requires_grad)
