"""Memory shared between tensors: version counters, views, in-place writes.

Views share memory in every mode, as in PyTorch and NumPy: basic
indexing, ``detach()``, ``reshape``/``view`` (where no copy is needed),
``transpose``/``permute``/``T``, ``squeeze``/``unsqueeze`` give tensors
over the same array, and an in-place change through any of them (``+=``,
``x[i] = v``, ``add_``...) is seen by all. Tensors over one array share
one version counter (``Storage``), which every in-place change bumps.
While the graph is recorded, an in-place change is itself a node
(``kernels.Assign``) of the base tensor, and the views of that base are
given nodes that read them from it again (``kernels.ViewChain``), so
gradients through in-place changes of views are PyTorch's.

The functions here take tensors made by ``tensor.py`` and work on their
arrays and graph slots; they make no tensor themselves.
"""

import weakref

import numpy as np

from . import backend
from . import kernels as K
from .autograd import Clock, Hooks, RecordingOff, node_numbers, thread_mode
from .operands import mismatch_error

__all__ = ["Storage", "storage", "mark_changed", "viewed", "shares_memory",
           "check_writable", "write_result", "in_place_error", "write"]

_ONE_NEED = (True,)
_ndarray = np.ndarray
_next_seq = node_numbers.__next__


# ---- version counters and views ---------------------------------------------------
class Storage:
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


def storage(t):
    """The version counter of ``t``'s memory, made on first need. The
    node that computed ``t`` keeps it too: an op that saved ``t`` reaches
    it through that node (its parent)."""
    s = getattr(t, "_vc", None)
    if s is None:
        s = t._vc = Storage()
        if t.grad_fn is not None:
            t.grad_fn.vc = s
    return s


def _bump(t):
    """Count one in-place change of ``t``'s memory; returns its counter."""
    s = getattr(t, "_vc", None)
    if s is None:
        s = storage(t)
    seq = Clock.last_change = _next_seq()
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
    watch = Hooks.watch
    seq = Clock.last_change = _next_seq()
    for t in tensors:
        if watch is not None:
            watch.changed(t)
        s = getattr(t, "_vc", None)
        if s is None:
            s = storage(t)
        s.version += 1
        s.at = seq
        log = s.log
        log.append(seq)
        if len(log) > 32:
            del log[:16]


def viewed(src, out, step):
    """Make ``out``, computed by a view op from ``src``, a view: it shares
    ``src``'s version counter, and it remembers its base (the tensor that
    is not a view) and ``step`` after the steps from the base to ``src``
    (pairs ``(op class, constant)``, see ``kernels.view_of``). Views made
    while the graph is recorded are "live": an in-place change of their
    base gives them a new node."""
    s = storage(src)
    out._vc = s
    view = getattr(src, "_view", None)
    live = RecordingOff.none or thread_mode.enabled
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


def shares_memory(a, b):
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


# ---- in-place writes ------------------------------------------------------------
def check_writable(t):
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


_SYMBOL = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}


def write_result(t, out, name):
    """Write ``out``, the result of ``t (op) other`` computed while the
    graph is recorded, into ``t`` (``t op= other``)."""
    if out.data.shape != t.data.shape:
        raise ValueError(
            f"{name}: an in-place result must keep the shape "
            f"{t.shape}, but the operands broadcast to {out.shape}; "
            f"write x = x {_SYMBOL[name]} y to make a new tensor")
    write(t, out, None, name)


def in_place_error(name, data, value, exc):
    """The error for ``data op= value`` refused by NumPy (``exc``), inside
    ``db.no_grad()``: a dtype the tensor cannot hold, or shapes or devices
    that do not fit."""
    if isinstance(exc, np.exceptions.DTypePromotionError):
        return TypeError(f"{name}: {exc}")
    if isinstance(exc, TypeError):
        result = np.result_type(data, value)
        if result != data.dtype:
            return TypeError(
                f"an in-place {name} would turn a {data.dtype} tensor "
                f"into {result}; write x = x {_SYMBOL[name]} y instead")
    return mismatch_error(name, data, value, exc)


def write(target, src, index, name):
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
        src = src.astype(dt)
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
            with backend.on_array(base.data):
                node.forward(base.data, src.data)
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
    if Hooks.recorder is not None:
        Hooks.recorder(node, (base, src), base)
    if graphed:
        _follow(base, s)


def _follow(base, s):
    """Give each live view of ``base`` a node that reads it from ``base``'s
    new node (PyTorch regenerates a view's ``grad_fn`` in the same way)."""
    recorder = Hooks.recorder
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
