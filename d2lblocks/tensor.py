"""The Tensor, the one function that records ops, and the backward sweep.

A Tensor wraps one array (NumPy, or CuPy on a GPU). Every operator and
method of the class runs an op of ``kernels.py`` through ``apply(op,
*inputs)``, the one place where graph nodes are made: when recording is on
and some input requires a gradient, the op object itself becomes the node
(``tensor.grad_fn``), remembering its parents and a sequence number that
grows with every op. Parents are always older than their children, so
``backward()`` visits nodes in decreasing sequence number, newest first,
from a heap: a valid reverse topological order, with no recursion and no
sorting pass. Nodes point to their parents only, so a graph has no
reference cycles and dies with its last tensor.

Views share memory in every mode, as in PyTorch and NumPy: basic
indexing, ``detach()``, ``reshape``/``view`` (where no copy is needed),
``transpose``/``permute``/``T``, ``squeeze``/``unsqueeze`` give tensors
over the same array, and an in-place change through any of them (``+=``,
``x[i] = v``, ``add_``...) is seen by all. Tensors over one array share
one version counter (``_Storage``), which every in-place change bumps.
While the graph is recorded, an in-place change is itself a node
(``kernels.Assign``) of the base tensor, and the views of that base are
given nodes that read them from it again (``kernels.ViewChain``), so
gradients through in-place changes of views are PyTorch's.

Two checks keep gradients honest. A gradient whose shape or dtype is not
that of the tensor it is meant for is an error naming the op that made it.
And each op names the tensors its backward reads (``Op.saved``): if one
of them was changed in place between forward and backward, ``backward()``
raises, as PyTorch does, instead of computing a gradient from the new
values.

For tools that watch or replay computations, ``set_recorder(fn)`` makes
``apply`` call ``fn(op, inputs, out)`` after every op (one ``is None``
check when unset). ``set_watcher(obj)`` is the second hook, set only
while ``hybrid.py`` records a call: it hears of what ops cannot show (a
value that leaves for Python, an in-place change, a ``backward()``).
"""

import functools
import itertools
import numbers
import threading
import weakref
from heapq import heappop, heappush

import numpy as np

from . import backend
from . import kernels as K
from .kernels import normalize_axes

__all__ = ["Tensor", "tensor", "zeros", "ones", "zeros_like", "ones_like",
           "full", "rand", "randn", "arange", "manual_seed", "no_grad",
           "enable_grad", "is_grad_enabled", "set_grad_enabled", "float16", "float32", "float64",
           "int32", "int64", "bool_", "as_dtype", "apply", "set_recorder", "mark_changed",
           "random_generator"]

float16, float32, float64 = np.dtype("float16"), np.dtype("float32"), np.dtype("float64")
int32, int64, bool_ = np.dtype("int32"), np.dtype("int64"), np.dtype("bool")

_next_seq = itertools.count(1).__next__
_ONE_NEED = (True,)
_new = object.__new__
_ndarray = np.ndarray


# ---- grad mode -----------------------------------------------------------------
class _GradMode(threading.local):
    """Whether ops record the graph: one flag per thread, as in PyTorch, so
    that a thread inside ``no_grad()`` never turns recording off for
    another. A new thread starts with recording on (the class default)."""
    enabled = True

    def __init__(self):
        self.saved = []      # the settings that the open blocks will restore


_mode = _GradMode()


class _Off:
    """How many threads have recording off, and ``none``: whether none has
    (the usual case). Then ``apply`` need not read the per-thread flag,
    which costs a few times more than reading this class attribute. (A
    thread that ends inside ``no_grad()`` stays counted: later ops then
    read the flag.)"""
    threads = 0
    none = True


_off_lock = threading.Lock()


def _set_mode(value):
    """Set this thread's grad mode, keeping ``_Off.threads`` in step."""
    mode = _mode
    if mode.enabled is not value:
        with _off_lock:
            _Off.threads += -1 if value else 1
            _Off.none = _Off.threads == 0
        mode.enabled = value


def is_grad_enabled():
    """True unless inside ``db.no_grad()`` (in this thread)."""
    return _Off.none or _mode.enabled


class no_grad:
    """Context manager (and decorator) that stops recording the graph.

    Inside it, ops make plain tensors, and in-place operators such as
    ``w -= lr * w.grad`` change the array itself, which is how a hand-written
    optimizer updates parameters.
    """

    _value = False

    def __enter__(self):
        # The setting to restore is kept per thread, not on ``self``: one
        # ``no_grad()`` object may be entered by several threads at once.
        mode = _mode
        mode.saved.append(mode.enabled)
        _set_mode(self._value)

    def __exit__(self, *exc):
        _set_mode(_mode.saved.pop())

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    """Context manager that turns recording back on inside ``no_grad``."""

    _value = True


class set_grad_enabled(no_grad):
    """Turn recording on or off, as in PyTorch: called on its own, for the
    rest of the program; as ``with db.set_grad_enabled(flag):``, for that
    block only (the setting before the call comes back at its end); as a
    decorator, for each call of the function.

    Its truth value is the setting before the call, so
    ``db.set_grad_enabled(previous)`` with what an earlier call returned
    puts that setting back.
    """

    def __init__(self, enabled):
        self.prev, self._value = _mode.enabled, bool(enabled)
        _set_mode(self._value)

    def __enter__(self):
        _mode.saved.append(self.prev)
        _set_mode(self._value)

    def __call__(self, fn):
        _set_mode(self.prev)             # a decorator changes nothing now
        value = self._value

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(value):
                return fn(*args, **kwargs)
        return wrapper

    def __bool__(self):
        return self.prev

    def __repr__(self):
        return f"set_grad_enabled({self._value})"


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


# ---- the node constructor --------------------------------------------------------
class _Hooks:
    """``recorder``: None, or a function called as ``recorder(op, inputs,
    out)`` after every op that ``apply`` runs (recorded or not).

    ``watch``: None, or the object recording a call for ``hybridize``;
    told of every place where a tensor's values choose what Python does
    next (``watch.decision(what)``), of in-place changes
    (``watch.changed(t)``) and of ``backward()`` calls."""
    recorder = None
    watch = None


def set_recorder(fn):
    """Make ``apply`` call ``fn(op, inputs, out)`` after every op; ``None``
    turns it off. Returns the recorder that was set before, so that
    recorders can be nested.

    ``op`` is the op object (its ``forward`` has just run on the inputs'
    arrays), ``inputs`` the tuple of input tensors and ``out`` the output
    tensor. Ops run inside ``db.no_grad()`` are reported too.
    """
    old, _Hooks.recorder = _Hooks.recorder, fn
    return old


def watcher():
    """The object watching tensors now (see :func:`set_watcher`), or None."""
    return _Hooks.watch


def set_watcher(watch):
    """Tell ``watch`` what ops cannot show until reset with ``None``;
    returns the watcher set before. It is told, by method call, of a
    tensor's value handed to Python (``decision(what)``: ``bool()``,
    ``item()``, indexing with a tensor), of an in-place change outside an
    op (``changed(t)``), of ``backward()`` (``backward_begins(root, grad,
    retain_graph)``, ``backward_ends()``), of a gradient reset by
    ``zero_grad`` (``grad_set(t, None)``) and of an optimizer step
    (``call_begins(replay)``, ``call_ends()``)."""
    old, _Hooks.watch = _Hooks.watch, watch
    return old


def set_random_generator(rng):
    """Make ``rng`` the generator of every random draw (a tool may wrap
    the current one to notice draws); returns the one set before."""
    old, _Random.rng = _Random.rng, rng
    return old


def grad_mode_flags():
    """The two objects :func:`is_grad_enabled` reads, for code generated
    to check the mode cheaply: ``off.none or mode.enabled``."""
    return _Off, _mode


def wrap(data):
    """A leaf tensor around the array ``data``, not copied or checked
    (for tools that build tensors from arrays they computed)."""
    t = _new(Tensor)
    t.data = data
    t.requires_grad = False
    t.grad = None
    t.grad_fn = None
    return t


def ones_for(array):
    """An array of ones shaped and typed like ``array`` (the gradient a
    scalar loss starts ``backward()`` with)."""
    return _one(array)


def next_node_number():
    """The next number in the order that ``backward()`` visits nodes in
    (newest first): a node made by a tool outside ``apply`` takes one."""
    return _next_seq()


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
    # device of its inputs entered (``_on_device``), so that what the op
    # makes lands there, on any GPU.
    n = len(inputs)
    if n == 1:
        a = inputs[0]
        x = a.data
        data = op.forward(x) if type(x) is _ndarray else _on_device(op, x)
        record = a.requires_grad
    elif n == 2:
        a, b = inputs
        x, y = a.data, b.data
        if type(x) is _ndarray and type(y) is _ndarray:
            data = op.forward(x, y)
        else:
            data = _on_device(op, x, y)
        record = a.requires_grad or b.requires_grad
    elif n == 3:                       # a dense layer: x, weight, bias
        a, b, c = inputs
        x, y, z = a.data, b.data, c.data
        if type(x) is _ndarray and type(y) is _ndarray and type(z) is _ndarray:
            data = op.forward(x, y, z)
        else:
            data = _on_device(op, x, y, z)
        record = a.requires_grad or b.requires_grad or c.requires_grad
    else:
        data = _on_device(op, *[t.data for t in inputs])
        record = any(t.requires_grad for t in inputs)
    if type(data) is not _ndarray and isinstance(data, np.generic):
        data = np.asarray(data)        # NumPy gives scalars for 0-d results
    out = _new(Tensor)
    out.data = data
    out.grad = None
    if record and (_Off.none or _mode.enabled) \
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
    if _Hooks.recorder is not None:
        _Hooks.recorder(op, inputs, out)
    return out


def _on_device(op, *arrays):
    """``op.forward(*arrays)`` with the device of the first GPU array among
    them entered (as it is, for host arrays)."""
    with backend.on_array(*arrays):
        return op.forward(*arrays)


class _Clock:
    """The sequence number of the most recent in-place change anywhere, so
    that the backward sweep looks at versions only for nodes older than
    it (none, in a loop that changes nothing in place between forward and
    backward)."""
    last_change = 0


class _Storage:
    """The version counter of one block of memory, shared by every tensor
    over it (a tensor, its views, ``detach()``), as in PyTorch.

    ``version`` counts the in-place changes; ``at`` is the sequence number
    of the last one: a node that saved a tensor of this storage is stale
    when ``at`` is greater than its own ``seq`` (one integer compare).
    ``log`` keeps the sequence numbers of the last changes, for the error
    message. ``views`` holds weak references to the views made while the
    graph was recorded: when their base is changed in place, they get a
    node that reads them from the new base."""

    __slots__ = ("version", "at", "log", "views", "limit")

    def __init__(self):
        self.version = 0
        self.at = 0
        self.log = []
        self.views = []
        self.limit = 16


def _storage(t):
    """The version counter of ``t``'s memory, made on first need. The
    node that computed ``t`` keeps it too: an op that saved ``t`` reaches
    it through that node (its parent)."""
    s = getattr(t, "_vc", None)
    if s is None:
        s = t._vc = _Storage()
        if t.grad_fn is not None:
            t.grad_fn.vc = s
    return s


def _bump(t):
    """Count one in-place change of ``t``'s memory; returns its counter."""
    s = getattr(t, "_vc", None)
    if s is None:
        s = _storage(t)
    seq = _Clock.last_change = _next_seq()
    s.version += 1
    s.at = seq
    log = s.log
    log.append(seq)
    if len(log) > 32:
        del log[:16]
    return s


def mark_changed(*tensors):
    """Record that each tensor's memory was changed in place (bumps the
    version that it shares with its views).

    The library's own in-place operations do this; call it after writing
    into ``t.data`` directly if a recorded graph may still use the old value.
    """
    watch = _Hooks.watch
    seq = _Clock.last_change = _next_seq()
    for t in tensors:
        if watch is not None:
            watch.changed(t)
        s = getattr(t, "_vc", None)
        if s is None:
            s = _storage(t)
        s.version += 1
        s.at = seq
        log = s.log
        log.append(seq)
        if len(log) > 32:
            del log[:16]


def _viewed(src, out, step):
    """Make ``out``, computed by a view op from ``src``, a view: it shares
    ``src``'s version counter, and it remembers its base (the tensor that
    is not a view) and ``step`` after the steps from the base to ``src``
    (pairs ``(op class, constant)``, see ``kernels.view_of``). Views made
    while the graph is recorded are "live": an in-place change of their
    base gives them a new node."""
    s = _storage(src)
    out._vc = s
    view = getattr(src, "_view", None)
    live = _Off.none or _mode.enabled
    if view is None:
        out._view = (src, (step,), live)
    else:
        live = live and view[2]
        out._view = (view[0], view[1] + (step,), live)
    if live:
        if out.grad_fn is not None:
            out.grad_fn.vc = s
        views = s.views
        views.append(weakref.ref(out))
        if len(views) > s.limit:       # forget the views that are gone
            views[:] = [r for r in views if r() is not None]
            s.limit = 2 * len(views) + 16
    return out


def _shares(a, b):
    """Whether array ``a`` (a reshape of ``b``) uses ``b``'s memory."""
    if type(a) is _ndarray:
        return np.may_share_memory(a, b)
    may_share = getattr(backend.namespace_of(a), "may_share_memory", None)
    if may_share is not None:
        try:
            return bool(may_share(a, b))
        except (TypeError, ValueError, NotImplementedError):
            pass
    return getattr(a, "base", None) is not None


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
        self.data = _to_array(data, dtype, device)
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
        if _Hooks.watch is not None:
            _Hooks.watch.decision("item()")
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, "
                             f"got shape {self.shape}")
        return self.data.item()

    def numpy(self):
        """The data as a NumPy array on the host (shares memory on CPU)."""
        if _Hooks.watch is not None:
            _Hooks.watch.decision("numpy()")
        return backend.to_host(self.data)

    def tolist(self):
        """The data as nested Python lists."""
        if _Hooks.watch is not None:
            _Hooks.watch.decision("tolist()")
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        if _Hooks.watch is not None:
            _Hooks.watch.decision("np.asarray()")
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)

    def __bool__(self):
        if _Hooks.watch is not None:   # `if x > 0:` lets the data choose
            _Hooks.watch.decision("bool()")
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements "
                f"is ambiguous; reduce it first, e.g. (x > 0).all() or "
                f"x.sum() > 1")
        return bool(self.data)

    def __float__(self):
        if _Hooks.watch is not None:
            _Hooks.watch.decision("float()")
        return float(self.item())

    def __int__(self):
        if _Hooks.watch is not None:
            _Hooks.watch.decision("int()")
        return int(self.item())

    def __index__(self):
        if _Hooks.watch is not None:
            _Hooks.watch.decision("an index (__index__)")
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
        if type(other) in _PY_NUMBERS and self.data.dtype.kind == "f":
            return apply(K.AddScalar(other), self)       # the common x + 1.0
        return _arith(self, other, K.Add, K.AddScalar, "add (+)")

    __radd__ = __add__

    def __sub__(self, other):
        c = other if type(other) in _PY_NUMBERS else _scalar(other)
        if c is not None:            # x - c is x + (-c), exactly
            return _arith(self, -c, None, K.AddScalar, "subtract (-)")
        return _arith(self, other, K.Sub, None, "subtract (-)")

    def __rsub__(self, other):
        return _arith(self, other, K.Sub, K.RSubScalar, "subtract (-)", True)

    def __mul__(self, other):
        if type(other) in _PY_NUMBERS and self.data.dtype.kind == "f":
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
        return _matmul(self, _as_tensor(other, "matmul (@)"))

    def __rmatmul__(self, other):
        return _matmul(_as_tensor(other, "matmul (@)"), self)

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
        return _inplace(self, other, Tensor.__add__, np.add, "add")

    def __isub__(self, other):
        return _inplace(self, other, Tensor.__sub__, np.subtract, "subtract")

    def __imul__(self, other):
        return _inplace(self, other, Tensor.__mul__, np.multiply, "multiply")

    def __itruediv__(self, other):
        return _inplace(self, other, Tensor.__truediv__, np.true_divide, "divide")

    def __getitem__(self, index):
        op = K.GetItem(_index(index))
        out = apply(op, self)
        if op.basic:                 # slices and ints: a view, as in PyTorch
            _viewed(self, out, (K.GetItem, op.index))
        return out

    def __setitem__(self, index, value):
        index = _index(index)
        if not (_Off.none or _mode.enabled):
            data = self.data
            value = value.data if isinstance(value, Tensor) else value
            if type(data) is _ndarray:
                data[index] = value
            else:
                with backend.on_array(data):     # on the tensor's GPU
                    data[index] = value
            mark_changed(self)
            return
        _check_writable(self)
        _write(self, _source(self, value, "setitem"), index, None)

    # ---- in place, by name (PyTorch's methods with a trailing _) ------------
    def add_(self, other):
        """``self += other``, in place; returns self."""
        return self.__iadd__(other)

    def sub_(self, other):
        """``self -= other``, in place; returns self."""
        return self.__isub__(other)

    def mul_(self, other):
        """``self *= other``, in place; returns self."""
        return self.__imul__(other)

    def div_(self, other):
        """``self /= other``, in place; returns self."""
        return self.__itruediv__(other)

    def copy_(self, src):
        """Write ``src`` (broadcast to this shape) into this tensor, in
        place; the gradient flows to ``src``. Returns self."""
        if not (_Off.none or _mode.enabled):
            self.data[...] = src.data if isinstance(src, Tensor) else src
            mark_changed(self)
            return self
        _check_writable(self)
        _write(self, _source(self, src, "copy_"), None, None)
        return self

    def fill_(self, value):
        """Set every element to the number ``value``, in place."""
        if _scalar(value) is None:
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
        return _along(self, K.Softmax, _dim(axis, dim, -1, "softmax"))

    def log_softmax(self, axis=-1, *, dim=None):
        """``log(softmax(x))`` along ``axis``, computed without overflow."""
        return _along(self, K.LogSoftmax, _dim(axis, dim, -1, "log_softmax"))

    # ---- reductions -----------------------------------------------------------
    # NumPy's and MXNet's ``axis=``/``keepdims=`` and PyTorch's
    # ``dim=``/``keepdim=`` both work.
    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Sum over ``axis`` (an int, a tuple, or None for all axes)."""
        axis, keepdims = _dims(axis, keepdims, dim, keepdim, "sum")
        return apply(K.Sum(_axes(axis, self.data.ndim), keepdims), self)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Mean over ``axis`` (an int, a tuple, or None for all axes)."""
        axis, keepdims = _dims(axis, keepdims, dim, keepdim, "mean")
        return apply(K.Mean(_axes(axis, self.data.ndim), keepdims), self)

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
        return _arg(self, K.ArgMax, _dim(dim, axis, None, "argmax"), keepdim)

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        """Indices of the minima along ``dim``, as ``argmax``."""
        return _arg(self, K.ArgMin, _dim(dim, axis, None, "argmin"), keepdim)

    def all(self, dim=None, keepdim=False, *, axis=None):
        """Whether every element is true (a boolean tensor): of all of
        them, or along ``dim`` (NumPy's ``axis``)."""
        dim = _dim(dim, axis, None, "all")
        return apply(K.All(_axes(dim, self.data.ndim), bool(keepdim)), self)

    def any(self, dim=None, keepdim=False, *, axis=None):
        """Whether some element is true, as ``all``."""
        dim = _dim(dim, axis, None, "any")
        return apply(K.Any(_axes(dim, self.data.ndim), bool(keepdim)), self)

    # ---- shapes -------------------------------------------------------------------
    def reshape(self, *args, shape=None):
        """The same elements in a new shape: ``x.reshape(2, -1)``,
        ``x.reshape((2, -1))`` or ``x.reshape(shape=(2, -1))``. A view of
        this tensor's memory when no copy is needed, as in PyTorch."""
        shape = _shape_arg(args, shape, "shape", "reshape")
        try:
            out = apply(K.Reshape(shape), self)
        except (ValueError, TypeError):
            raise ValueError(f"reshape: cannot reshape a tensor of shape "
                             f"{self.shape} ({self.data.size} elements) into "
                             f"shape {shape}") from None
        if _shares(out.data, self.data):      # no copy was needed: a view
            _viewed(self, out, (K.Reshape, out.data.shape))
        return out

    def view(self, *args, size=None):
        """PyTorch's name for ``reshape`` (its keyword is ``size=``)."""
        return self.reshape(_shape_arg(args, size, "size", "view"))

    def size(self, dim=None):
        """PyTorch's ``size()``: the shape, or the length of axis ``dim``."""
        return self.shape if dim is None else self.shape[_axis(dim, self.ndim, "dim")]

    def dim(self):
        """PyTorch's ``dim()``: the number of axes (``ndim``)."""
        return self.data.ndim

    def unsqueeze(self, dim):
        """A new axis of length 1 at ``dim`` (``-1`` appends one)."""
        shape = list(self.data.shape)
        shape.insert(_axis(dim, len(shape) + 1, "dim"), 1)
        return self.reshape(tuple(shape))

    def squeeze(self, dim=None):
        """Without axes of length 1: all of them, or just ``dim`` (left
        alone when its length is not 1, as in PyTorch)."""
        shape = self.data.shape
        if dim is None:
            return self.reshape(tuple(n for n in shape if n != 1))
        if not shape:
            return self
        ax = _axis(dim, len(shape), "dim")
        if shape[ax] != 1:
            return self
        return self.reshape(shape[:ax] + shape[ax + 1:])

    def permute(self, *args, dims=None):
        """Axes in the order ``dims`` (PyTorch's name for a permutation):
        ``x.permute(2, 0, 1)``, ``x.permute((2, 0, 1))`` or ``dims=``."""
        return self.transpose(_shape_arg(args, dims, "dims", "permute"))

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge axes ``start_dim`` to ``end_dim`` (negatives count from the
        end) into one: ``x.flatten(1)`` turns (N, C, H, W) into (N, C*H*W)."""
        shape, ndim = self.data.shape, self.data.ndim
        if ndim == 0:
            return self.reshape(1)
        lo = _axis(start_dim, ndim, "start_dim")
        hi = _axis(end_dim, ndim, "end_dim")
        if lo > hi:
            raise ValueError(f"flatten: start_dim {start_dim} comes after "
                             f"end_dim {end_dim} for shape {shape}")
        merged = int(np.prod(shape[lo:hi + 1]))
        return self.reshape(shape[:lo] + (merged,) + shape[hi + 1:])

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
        if dim0 is not None or dim1 is not None:
            if dim0 is None or dim1 is None or len(axes) + 2 != 2:
                raise TypeError(f"transpose: give the two axes to swap as "
                                f"dim0= and dim1= (both), or positionally; "
                                f"got {axes}, dim0={dim0!r}, dim1={dim1!r}")
            return self.swapaxes(dim0, dim1)
        if len(axes) == 2 and all(isinstance(a, numbers.Integral)
                                  for a in axes):
            return self.swapaxes(*axes)
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        ndim = self.data.ndim
        if not axes:
            perm = tuple(range(ndim - 1, -1, -1))
        else:
            perm = tuple(_axis(ax, ndim) for ax in axes)
            if sorted(perm) != list(range(ndim)):
                raise ValueError(f"transpose: expected a permutation of the "
                                 f"{ndim} axes of a tensor of shape "
                                 f"{self.shape}, got {axes} (or two axes "
                                 f"to swap)")
        return _viewed(self, apply(K.Transpose(perm), self),
                       (K.Transpose, perm))

    @property
    def T(self):
        """The transpose (axes reversed)."""
        return self.transpose()

    def swapaxes(self, axis0, axis1):
        """Swap two axes (negatives count from the end); PyTorch's names,
        which NumPy calls axis1 and axis2."""
        ndim = self.data.ndim
        a, b = _axis(axis0, ndim), _axis(axis1, ndim)
        if ndim == 0:
            return self
        perm = list(range(ndim))
        perm[a], perm[b] = perm[b], perm[a]
        perm = tuple(perm)
        return _viewed(self, apply(K.Transpose(perm), self),
                       (K.Transpose, perm))

    # ---- graph -------------------------------------------------------------
    def detach(self):
        """A tensor over the same memory (and version counter) that is cut
        off from the graph: in-place changes of either are seen by both."""
        out = _wrap(self.data)
        out._vc = _storage(self)
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
        grad = gradient
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
                    f"(e.g. y.sum().backward()) or pass a gradient of that "
                    f"shape")
            g = _one(self.data)
        else:
            g = _to_array(grad.data if isinstance(grad, Tensor) else grad,
                          self.data.dtype, self.device)
            if g.shape != self.data.shape:
                raise ValueError(f"backward(gradient=...) expected a gradient "
                                 f"of shape {self.shape}, got {g.shape}")
        watch = _Hooks.watch
        if watch is None:
            _run_backward(self, g, retain_graph)
            return
        watch.backward_begins(self, grad, retain_graph)
        try:
            _run_backward(self, g, retain_graph)
        finally:
            watch.backward_ends()

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
        return apply(K.AsType(as_dtype(dtype)), self)

    def clone(self):
        """A differentiable copy with its own memory."""
        return apply(K.MulScalar(1), self)


# ---- how operands are read ------------------------------------------------------
_PY_NUMBERS = frozenset({float, int})


def _scalar(value):
    """A Python number for a number-like ``value`` (Python numbers, NumPy
    scalars, 0-d arrays), else None. Python numbers are "weak" in NumPy's
    promotion rules, so ``float32_tensor * np.float64(2)`` stays float32,
    as in PyTorch."""
    if isinstance(value, (bool, numbers.Number, np.generic)):
        if isinstance(value, (complex, np.complexfloating)):
            return None
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return value.item()
    return None


def _as_tensor(value, what):
    """``value`` as a tensor: tensors as they are, arrays and lists wrapped
    as constants (no copy of arrays)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__cuda_array_interface__"):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{what}: expected a Tensor, a number or a numeric "
                            f"array, got an array of dtype {value.dtype}")
        return _wrap(np.asarray(value) if isinstance(value, np.generic) else value)
    if isinstance(value, (bool, numbers.Number, list, tuple)):
        try:
            return _wrap(_to_array(value, None, None))
        except TypeError:
            pass
    raise TypeError(f"{what}: expected a Tensor, a number or a numeric array, "
                    f"got {type(value).__name__}")


def _cast(t, dtype):
    """An integer or boolean tensor converted to ``dtype``. Through an op,
    although no gradient is recorded for it: a replay (``hybridize``)
    must see the conversion, or it would keep the first call's values."""
    return apply(K.AsType(dtype), t)


def _to_float(t):
    """An integer or boolean tensor as float32, PyTorch's default float
    (they never require gradients, so nothing is recorded)."""
    return _cast(t, float32) if t.data.dtype.kind != "f" else t


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def _promote(a, b, divide):
    """PyTorch's rule for mixing kinds: an integer tensor combined with a
    floating one takes the floating dtype; integers divided give float32.
    A 0-d tensor combined with a tensor that has axes promotes like a
    Python number: within one kind, the tensor with axes keeps its dtype
    (a float32 matrix times a 0-d float64 tensor stays float32)."""
    ka, kb = a.data.dtype.kind, b.data.dtype.kind
    if (a.data.ndim == 0) is not (b.data.ndim == 0) and \
            _CATEGORY[ka] == _CATEGORY[kb] and a.data.dtype != b.data.dtype:
        if a.data.ndim == 0:
            a = _cast(a, b.data.dtype)
        else:
            b = _cast(b, a.data.dtype)
        ka, kb = a.data.dtype.kind, b.data.dtype.kind
    if ka == "f" and kb != "f":
        b = _cast(b, a.data.dtype)
    elif kb == "f" and ka != "f":
        a = _cast(a, b.data.dtype)
    elif ka != "f" and divide:
        a, b = _to_float(a), _to_float(b)
    return a, b


def _arith(a, other, tensor_op, scalar_op, name, reflected=False):
    """``a (op) other``, or ``other (op) a`` when ``reflected``.

    A number goes to ``scalar_op`` (a constant of the op); anything else is
    made a tensor and goes to ``tensor_op`` with broadcasting.
    """
    if type(other) in _PY_NUMBERS and a.data.dtype.kind == "f":
        return apply(scalar_op(other), a)        # the common x * 2.0
    c = _scalar(other)
    if c is not None and scalar_op is not None:
        divide = scalar_op in (K.DivScalar, K.RDivScalar)
        if a.data.dtype.kind != "f" and (isinstance(c, float) or divide):
            a = _to_float(a)
        return apply(scalar_op(c), a)
    b = _as_tensor(other, name.split()[0])
    if reflected:
        a, b = b, a
    divide = tensor_op is K.Div
    if a.data.dtype is not b.data.dtype or divide and a.data.dtype.kind != "f":
        a, b = _promote(a, b, divide)
    try:
        return apply(tensor_op(), a, b)
    except (ValueError, TypeError) as exc:
        raise _mismatch(name, a.data, b.data, exc) from None


def _mismatch(name, x, y, exc):
    """A clear error for two arrays that cannot be combined."""
    dx, dy = backend.device_of(x), backend.device_of(y)
    if dx != dy:
        return RuntimeError(f"{name}: the operands are on different devices, "
                            f"{dx} and {dy}; move one with .to(device)")
    return ValueError(f"{name}: shapes {np.shape(x)} and {np.shape(y)} are "
                      f"not compatible ({exc})")


def _compare(a, other, fn, name):
    if other is None or not (isinstance(other, (Tensor, numbers.Number, np.ndarray,
                                                np.generic, list, tuple))
                             or hasattr(other, "__cuda_array_interface__")):
        return NotImplemented         # e.g. `x == None` falls back to identity
    c = _scalar(other)
    if c is not None:
        return apply(K.Compare(fn, c), a)
    b = _as_tensor(other, name)
    try:
        return apply(K.Compare(fn), a, b)
    except (ValueError, TypeError) as exc:
        raise _mismatch(name, a.data, b.data, exc) from None


def _matmul(a, b):
    if a.data.dtype is not b.data.dtype:
        a, b = _promote(a, b, False)
    sa, sb = a.data.shape, b.data.shape
    if not sa or not sb:
        raise ValueError(f"matmul (@): both operands need at least one axis, "
                         f"got shapes {sa} and {sb}")
    try:
        return apply(K.MatMul(), a, b)
    except (ValueError, TypeError) as exc:
        err = _mismatch("matmul (@)", a.data, b.data, exc)
        if isinstance(err, ValueError):
            err = ValueError(
                f"matmul (@): shapes {sa} and {sb} are not aligned; the last "
                f"axis of the left operand must match the "
                f"{'only' if len(sb) == 1 else 'second-to-last'} axis of the "
                f"right one")
        raise err from None


def _along(t, op, axis):
    """A softmax-like op along one axis; a 0-d tensor counts as 1-D."""
    if t.data.ndim == 0:
        normalize_axes(axis, 0)
        return _along(t.reshape(1), op, 0).reshape(())
    return apply(op(_axis(axis, t.data.ndim)), t)


def _dim(axis, dim, default, name):
    """The axis given as NumPy's ``axis`` or PyTorch's ``dim``."""
    if dim is None:
        return axis
    if not (axis is default or (type(axis) is int and axis == default)):
        raise TypeError(f"{name}() got both axis={axis!r} and dim={dim!r}; "
                        f"they are the same argument, give one")
    return dim


def _dims(axis, keepdims, dim, keepdim, name):
    """``(axis, keepdims)`` from NumPy's or PyTorch's spelling."""
    axis = _dim(axis, dim, None, name)
    if keepdim is not None:
        if keepdims:
            raise TypeError(f"{name}() got both keepdims and keepdim; give one")
        keepdims = keepdim
    return axis, bool(keepdims)


class MaxMin(tuple):
    """``(values, indices)`` of ``max``/``min`` along ``dim``, as PyTorch
    returns them."""
    __slots__ = ()
    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])

    def __repr__(self):
        return f"(values={self[0]!r}, indices={self[1]!r})"


def _extreme(t, op, axis, keepdims, dim, keepdim, name):
    axis, keepdims = _dims(axis, keepdims, dim, keepdim, name)
    values = apply(op(_axes(axis, t.data.ndim), keepdims), t)
    if dim is None:
        return values
    if not isinstance(dim, numbers.Integral):
        raise TypeError(f"{name}(dim=...) takes one int, got {dim!r}")
    index = t.argmax(dim) if op is K.Max else t.argmin(dim)
    return MaxMin((values, _keep(index, t, dim) if keepdims else index))


def _arg(t, op, axis, keepdim):
    out = apply(op(_one_axis(axis, t.data.ndim)), t)
    return _keep(out, t, axis) if keepdim else out


def _keep(out, t, axis):
    """``out``, reduced along ``axis`` of ``t``, with that axis kept."""
    if axis is None:
        return out.reshape((1,) * t.data.ndim)
    return out.unsqueeze(_axis(axis, t.data.ndim)) if t.data.ndim else out


def _shape_arg(args, keyword, name, method):
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


def _axes(axis, ndim):
    """The axes of a reduction: None (all) or a sorted tuple."""
    return None if axis is None else normalize_axes(axis, ndim)


def _axis(axis, ndim, what="axis"):
    """One axis, checked and made non-negative (0 for a 0-d tensor)."""
    axes = normalize_axes(axis, ndim, what)
    if not isinstance(axis, numbers.Integral):
        raise TypeError(f"expected one int {what}, got {axis!r}")
    return axes[0] if axes else 0


def _one_axis(axis, ndim):
    return None if axis is None or ndim == 0 else _axis(axis, ndim)


def _index(index):
    """Replace tensors inside an index by their arrays."""
    if _Hooks.watch is not None and (isinstance(index, Tensor) or (
            isinstance(index, tuple) and any(isinstance(i, Tensor) for i in index))):
        _Hooks.watch.decision("indexing with a tensor")
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index.data if isinstance(index, Tensor) else index


_SYMBOL = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}


def _inplace(self, other, op, ufunc, name):
    """``self op= other``, in place: the tensor keeps its array, and its
    views see the change.

    Inside ``db.no_grad()`` the ufunc writes into the array. While the
    graph is recorded, the result is computed by the op and then written
    into the array by ``_write``, which records the write as a node.
    """
    if _Off.none or _mode.enabled:
        _check_writable(self)
        source = self
        if (ufunc is np.multiply or ufunc is np.true_divide) and \
                isinstance(other, Tensor) and other.requires_grad:
            source = self.clone()     # the gradient of other reads old self
        out = op(source, other)
        if out.data.shape != self.data.shape:
            raise ValueError(
                f"{name}: an in-place result must keep the shape "
                f"{self.shape}, but the operands broadcast to {out.shape}; "
                f"write x = x {_SYMBOL[name]} y to make a new tensor")
        _write(self, out, None, name)
        return self
    value = other.data if isinstance(other, Tensor) else _scalar(other)
    if value is None:
        value = _as_tensor(other, name).data
    try:
        if type(self.data) is _ndarray:
            ufunc(self.data, value, out=self.data, casting="same_kind")
        else:
            with backend.on_array(self.data):    # on the tensor's GPU
                ufunc(self.data, value, out=self.data, casting="same_kind")
    except np.exceptions.DTypePromotionError as exc:
        raise TypeError(f"{name}: {exc}") from None
    except TypeError as exc:
        result = np.result_type(self.data, value)
        if result != self.data.dtype:
            raise TypeError(
                f"an in-place {name} would turn a {self.data.dtype} tensor "
                f"into {result}; write x = x {_SYMBOL[name]} y instead") from None
        raise _mismatch(name, self.data, value, exc) from None
    except ValueError as exc:
        raise _mismatch(name, self.data, value, exc) from None
    mark_changed(self)
    return self


def _check_writable(t):
    """Refuse an in-place change, while the graph is recorded, of a leaf
    that requires grad or of a view of one (``backward()`` needs their old
    values), as PyTorch does."""
    view = getattr(t, "_view", None)
    if view is None:
        if t.requires_grad and t.grad_fn is None:
            raise RuntimeError(
                "a leaf tensor that requires grad (such as a parameter) "
                "cannot be changed in place while gradients are recorded: "
                "backward() needs its old value. Update it inside `with "
                "db.no_grad():`, or write x = x + ... to make a new tensor.")
        return
    base = view[0]
    if not view[2]:
        if base.requires_grad:
            raise _no_grad_view_error()
        return
    if base.requires_grad and base.grad_fn is None:
        raise RuntimeError(
            "a view of a leaf tensor that requires grad (such as a slice of "
            "a parameter) cannot be changed in place while gradients are "
            "recorded: backward() needs the leaf's old value. Change it "
            "inside `with db.no_grad():`, or work on a copy (x.clone()).")


def _no_grad_view_error():
    return RuntimeError(
        "this view was made inside db.no_grad() and is changed in place "
        "while gradients are recorded, which would leave its base's graph "
        "wrong; make the view outside no_grad(), or change it inside "
        "no_grad() too")


def _source(target, value, what):
    """``value``, to be written into ``target``, as a tensor of
    ``target``'s dtype (numbers and arrays are converted at once, so that
    a float64 tensor gets float64 values)."""
    if isinstance(value, Tensor):
        if value.data.dtype != target.data.dtype:
            value = _cast(value, target.data.dtype)
        return value
    c = _scalar(value)
    if c is not None:
        data = target.data
        if type(data) is _ndarray:
            return _wrap(np.asarray(c, dtype=data.dtype))
        with backend.on_array(data):     # made on the target's GPU
            return _wrap(backend.namespace_of(data).asarray(c, dtype=data.dtype))
    if not isinstance(value, (list, tuple, np.ndarray)) and \
            not hasattr(value, "__cuda_array_interface__"):
        raise TypeError(f"{what}: expected a Tensor, a number or a numeric "
                        f"array, got {type(value).__name__}")
    return _wrap(_to_array(value, target.data.dtype, target.device))


def _write(target, src, index, name):
    """Write tensor ``src`` into ``target`` (into ``target[index]`` unless
    ``index`` is None), in place, while the graph is recorded.

    The write is a node (``K.Assign``) of ``target``'s base when either
    needs a gradient; the live views of the base (``target`` among them,
    when it is one) then get nodes that read them from the new base. A
    tool watching ``apply`` (``set_recorder``) hears of both, with the
    tensor changed as the output.
    """
    dt = target.data.dtype
    if src.data.dtype != dt:
        if not np.can_cast(src.data.dtype, dt, casting="same_kind"):
            raise TypeError(f"an in-place op would turn a {dt} tensor into "
                            f"{src.data.dtype}; write x = x op y instead")
        src = _cast(src, dt)
    view = getattr(target, "_view", None)
    if view is not None and view[2]:
        base, steps = view[0], view[1]
    else:
        if view is not None and src.requires_grad:
            raise _no_grad_view_error()
        base, steps = target, ()
    node = K.Assign(steps, index)
    try:
        if type(base.data) is _ndarray:
            node.forward(base.data, src.data)
        else:
            _on_device(node, base.data, src.data)
    except ValueError as exc:
        raise ValueError(f"{name or 'setitem'}: cannot write a value of shape "
                         f"{src.shape} into {'a part of ' if index is not None else ''}"
                         f"a tensor of shape {target.shape} ({exc})") from None
    s = _bump(base)
    graphed = (base.requires_grad or src.requires_grad) and dt.kind == "f"
    if graphed:
        node.needs = (base.requires_grad and (bool(steps) or index is not None),
                      src.requires_grad)
        node.parents = (base.grad_fn or base, src.grad_fn or src)
        node.seq = _next_seq()
        node.shape, node.dtype = base.data.shape, dt
        node.grad = None
        node.vc = s
        base.grad_fn = node
        base.requires_grad = True
    if _Hooks.recorder is not None:
        _Hooks.recorder(node, (base, src), base)
    if graphed:
        _follow(base, s)


def _follow(base, s):
    """Give each live view of ``base`` a node that reads it from ``base``'s
    new node (PyTorch regenerates a view's ``grad_fn`` in the same way)."""
    recorder = _Hooks.recorder
    for ref in list(s.views):
        w = ref()
        if w is None:
            continue
        view = w._view
        if view[0] is not base or not view[2]:
            continue
        node = K.ViewChain(view[1])
        node.forward(base.data)
        node.needs = _ONE_NEED
        node.parents = (base.grad_fn,)
        node.seq = _next_seq()
        node.shape, node.dtype = w.data.shape, w.data.dtype
        node.grad = None
        node.vc = s
        w.grad_fn = node
        w.requires_grad = True
        if recorder is not None:
            recorder(node, (base,), w)


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
    with backend.on(dev):
        return dev.xp.array(data, dtype=dt, copy=True)


def _one(like):
    """An array of ones shaped and typed like ``like`` (a cheap path for
    the usual scalar loss)."""
    if isinstance(like, np.ndarray):
        one = np.asarray(1, like.dtype)
        return one.reshape(like.shape) if like.shape else one
    with backend.on_array(like):
        return backend.namespace_of(like).ones(like.shape, like.dtype)


def _describe(data):
    text = repr(data)
    return f"{type(data).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


_wrap = wrap     # a leaf tensor around an existing array (no checks, no copy)


# ---- the backward sweep ------------------------------------------------------------
def _run_backward(root, grad, retain_graph):
    """:func:`_sweep`, on the device of ``root`` (a GPU's ops run there)."""
    if type(root.data) is _ndarray:
        return _sweep(root, grad, retain_graph)
    with backend.on_array(root.data):
        return _sweep(root, grad, retain_graph)


def _sweep(root, grad, retain_graph):
    """Reverse-mode sweep from ``root`` with ``grad`` as its gradient.

    Nodes are visited newest first, from a heap keyed by ``seq``: every node
    that can send a gradient to a node is newer than it, so by the time a
    node is popped its gradient is complete. A node enters the heap the
    first time it receives a gradient; while it waits there, its ``grad``
    slot holds the gradient gathered so far.

    A backward pass that raises (a freed graph, a saved tensor changed in
    place, a wrong gradient) changes no ``.grad``: each leaf's ``.grad``
    before its first gradient is kept in ``touched``, and put back.
    """
    node = root.grad_fn
    if node is None:
        _accumulate(root, grad, None)
        return
    touched = []
    node.grad = grad
    heap = [(-node.seq, node)]       # seq is unique, so nodes never compare
    changed = _Clock.last_change
    push, pop, leaf_type = heappush, heappop, Tensor
    try:
        while heap:
            t = pop(heap)[1]
            g = t.grad
            t.grad = None
            parents = t.parents
            if parents is None:
                raise _freed_error()
            if changed > t.seq:      # something changed in place since
                _check_versions(t)
            for p, gp in zip(parents, t.backward(g)):
                if gp is None:
                    continue
                if isinstance(p, leaf_type):
                    if p.requires_grad:
                        touched.append((p, p.grad))
                        _accumulate(p, gp, t)
                    continue
                if gp.shape != p.shape or (gp.dtype is not p.dtype
                                           and gp.dtype != p.dtype):
                    raise _wrong_gradient(t, gp, p.shape, p.dtype)
                if p.grad is None:
                    p.grad = gp
                    push(heap, (-p.seq, p))
                else:
                    p.grad = p.grad + gp
            if not retain_graph:
                t.parents = None     # frees the graph behind this node
    except BaseException:
        for _, t in heap:            # drop the gradients still waiting
            t.grad = None
        for leaf, old in reversed(touched):    # and give back every .grad
            leaf.grad = old
        raise


def _accumulate(leaf, g, op):
    """Add ``g`` into ``leaf.grad``. Never in place: gradient arrays may be
    shared between leaves (``a + b`` hands both the same array)."""
    data = leaf.data
    if g.shape != data.shape or (g.dtype is not data.dtype
                                 and g.dtype != data.dtype):
        raise _wrong_gradient(op, g, data.shape, data.dtype)
    if type(g) is not type(data):
        if isinstance(g, np.generic) and type(data) is _ndarray:
            g = np.asarray(g)
        elif backend.device_of(g) != backend.device_of(data):
            raise RuntimeError(
                f"backward of {_name(op)} gave a gradient on "
                f"{backend.device_of(g)} for a tensor on "
                f"{backend.device_of(data)}")
    old = leaf.grad
    if old is None:
        leaf.grad = _wrap(g)
    elif (type(old) is Tensor or isinstance(old, Tensor)) \
            and old.data.shape == g.shape:
        leaf.grad = _wrap(old.data + g)
    else:
        raise RuntimeError(
            f"backward(): the .grad already held by a tensor of shape "
            f"{leaf.shape} is {_describe(old)}, which a gradient of shape "
            f"{tuple(g.shape)} cannot be added to; set it to None first")


def _name(op):
    return "the root" if op is None else op.name


def _wrong_gradient(op, g, shape, dtype):
    return RuntimeError(
        f"backward of {_name(op)} gave a gradient of shape {tuple(g.shape)} "
        f"and dtype {g.dtype} for a tensor of shape {tuple(shape)} and dtype "
        f"{dtype}; an op's backward must return gradients shaped and typed "
        f"like its inputs")


def _freed_error():
    return RuntimeError(
        "backward() went through this part of the graph a second time, but "
        "its saved values were freed after the first backward(). Pass "
        "retain_graph=True to the first call if you need to go back twice.")


def _check_versions(op):
    """Raise if a tensor that ``op`` saved for its gradient was changed in
    place after ``op`` ran: through the tensor itself, or through another
    tensor sharing its memory (a view, ``detach()``). One integer compare
    per saved tensor: its storage's last change against ``op.seq``."""
    inputs, output = op.saved()
    for i in inputs:
        p = op.parents[i]
        s = getattr(p, "_vc" if isinstance(p, Tensor) else "vc", None)
        if s is not None and s.at > op.seq:
            raise _stale_error(op, s, p)
    if output:
        s = getattr(op, "vc", None)
        if s is not None and s.at > op.seq:
            raise _stale_error(op, s, op)


def _stale_error(op, s, saved):
    """PyTorch's error for a saved tensor changed in place, with the
    version it had when ``op`` saved it (when still known)."""
    later = sum(1 for seq in s.log if seq > op.seq)
    if len(s.log) == s.version or later < len(s.log):
        expected = f"expected version {s.version - later} instead"
    else:
        expected = "expected an earlier version"
    return RuntimeError(
        f"one of the variables needed for gradient computation has been "
        f"modified by an inplace operation: [{saved.dtype} tensor of shape "
        f"{tuple(saved.shape)}], saved by {op.name} for backward(), is at "
        f"version {s.version}; {expected}. It was changed in place after "
        f"{op.name} ran (an in-place operator, x[...] = ..., or an "
        f"optimizer step), directly or through a tensor sharing its memory "
        f"(a view, detach()). Compute the graph again after the change, or "
        f"change a copy (x = x + ...) instead.")


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
    with backend.on(dev):
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
