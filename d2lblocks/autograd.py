"""The graph engine: whether ops are recorded, who watches them, the order
of the nodes, and the backward sweep.

Recording is on or off per thread (``no_grad``, ``enable_grad``,
``set_grad_enabled``), as in PyTorch. Every recorded node takes a number
from one counter that grows with every op, so parents are always older
than their children: ``backward()`` visits nodes in decreasing number,
newest first, from a heap, which is a valid reverse topological order
with no recursion and no sorting pass. Nodes point to their parents
only, so a graph has no reference cycles and dies with its last tensor.

Two checks keep gradients honest. A gradient whose shape or dtype is not
that of the tensor it is meant for is an error naming the op that made
it. And each op names the tensors its backward reads (``Op.saved``): if
one of them was changed in place between forward and backward (see
``views.py`` for the version counters), ``backward()`` raises, as
PyTorch does, instead of computing a gradient from the new values.

For tools that watch or replay computations, ``set_recorder(fn)`` makes
``tensor.apply`` call ``fn(op, inputs, out)`` after every op (one ``is
None`` check when unset). ``set_watcher(obj)`` is the second hook, set
only while ``hybridize`` records a call: it hears of what ops cannot show
(a value that leaves for Python, an in-place change, a ``backward()``).

Nothing here makes a tensor: this module sits below ``tensor.py``.
"""

import functools
import itertools
import threading
from heapq import heappop, heappush

import numpy as np

from . import backend
from .kernels import Op
from .operands import to_array

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
           "grad_mode_flags", "set_recorder", "watcher", "set_watcher",
           "decision", "next_node_number", "ones_for", "backward_pass",
           "check_leaf_gradient", "check_versions"]

_ndarray = np.ndarray

# The number of the next node (or in-place change): ``next(node_numbers)``.
node_numbers = itertools.count(1)
_next_seq = node_numbers.__next__


# ---- grad mode -----------------------------------------------------------------
class _GradMode(threading.local):
    """Whether ops record the graph: one flag per thread, as in PyTorch, so
    that a thread inside ``no_grad()`` never turns recording off for
    another. A new thread starts with recording on (the class default)."""
    enabled = True

    def __init__(self):
        self.saved = []      # the settings that the open blocks will restore


thread_mode = _GradMode()


class RecordingOff:
    """How many threads have recording off, and ``none``: whether none has
    (the usual case). Then ``apply`` need not read the per-thread flag,
    which costs a few times more than reading this class attribute. (A
    thread that ends inside ``no_grad()`` stays counted: later ops then
    read the flag.)"""
    threads = 0
    none = True


_off_lock = threading.Lock()


def _set_mode(value):
    """Set this thread's grad mode, keeping ``RecordingOff.threads`` in step."""
    mode = thread_mode
    if mode.enabled is not value:
        with _off_lock:
            RecordingOff.threads += -1 if value else 1
            RecordingOff.none = RecordingOff.threads == 0
        mode.enabled = value


def is_grad_enabled():
    """True unless inside ``db.no_grad()`` (in this thread)."""
    return RecordingOff.none or thread_mode.enabled


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
        mode = thread_mode
        mode.saved.append(mode.enabled)
        _set_mode(self._value)

    def __exit__(self, *exc):
        _set_mode(thread_mode.saved.pop())

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
        self.prev, self._value = thread_mode.enabled, bool(enabled)
        _set_mode(self._value)

    def __enter__(self):
        thread_mode.saved.append(self.prev)
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


# ---- hooks for tools that watch the library ----------------------------------
class Hooks:
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
    old, Hooks.recorder = Hooks.recorder, fn
    return old


def watcher():
    """The object watching tensors now (see :func:`set_watcher`), or None."""
    return Hooks.watch


def set_watcher(watch):
    """Tell ``watch`` what ops cannot show until reset with ``None``;
    returns the watcher set before. It is told, by method call, of a
    tensor's value handed to Python (``decision(what)``: ``bool()``,
    ``item()``, indexing with a tensor), of an in-place change outside an
    op (``changed(t)``), of ``backward()`` (``backward_begins(root, grad,
    retain_graph)``, ``backward_ends()``), of a gradient reset by
    ``zero_grad`` (``grad_set(t, None)``) and of an optimizer step
    (``call_begins(replay)``, ``call_ends()``)."""
    old, Hooks.watch = Hooks.watch, watch
    return old


def decision(what):
    """Tell the watcher (if any) that a tensor's value now leaves for
    Python, where it may choose what the program does next (``what``)."""
    watch = Hooks.watch
    if watch is not None:
        watch.decision(what)


def grad_mode_flags():
    """The two objects :func:`is_grad_enabled` reads, for code generated
    to check the mode cheaply: ``off.none or mode.enabled``."""
    return RecordingOff, thread_mode


def next_node_number():
    """The next number in the order that ``backward()`` visits nodes in
    (newest first): a node made by a tool outside ``apply`` takes one."""
    return _next_seq()


# ---- the clock of in-place changes ---------------------------------------------
class Clock:
    """The number of the most recent in-place change anywhere, so that the
    backward sweep looks at versions only for nodes older than it (none,
    in a loop that changes nothing in place between forward and
    backward)."""
    last_change = 0


def ones_for(array):
    """An array of ones shaped and typed like ``array`` (the gradient a
    scalar loss starts ``backward()`` with; a cheap path on the host)."""
    if isinstance(array, np.ndarray):
        one = np.asarray(1, array.dtype)
        return one.reshape(array.shape) if array.shape else one
    with backend.on_array(array):
        return backend.namespace_of(array).ones(array.shape, array.dtype)


# ---- the backward sweep ------------------------------------------------------------
def backward_pass(root, given, value, retain_graph, accumulate):
    """The backward pass from the tensor ``root`` (``root.backward()``).

    ``given`` is the gradient the caller gave for ``root`` (for the
    watcher), ``value`` its array or array-like (converted to ``root``'s
    dtype and device), or None: then 1, for a one-element root. Each
    leaf's gradient goes to ``accumulate(leaf, g, op)``.
    """
    if not root.requires_grad:
        raise RuntimeError(
            "backward() was called on a tensor that does not require "
            "gradients: none of its inputs had requires_grad=True, or it "
            "was computed inside db.no_grad()")
    if value is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a one-element "
                f"tensor (a loss), got shape {root.shape}; reduce it "
                f"(e.g. y.sum().backward()) or pass a gradient of that "
                f"shape")
        g = ones_for(root.data)
    else:
        g = to_array(value, root.data.dtype, root.device)
        if g.shape != root.data.shape:
            raise ValueError(f"backward(gradient=...) expected a gradient "
                             f"of shape {root.shape}, got {g.shape}")
    watch = Hooks.watch
    if watch is not None:
        watch.backward_begins(root, given, retain_graph)
    try:
        if type(root.data) is _ndarray:
            _sweep(root, g, retain_graph, accumulate)
        else:                 # on the device of root: a GPU's ops run there
            with backend.on_array(root.data):
                _sweep(root, g, retain_graph, accumulate)
    finally:
        if watch is not None:
            watch.backward_ends()


def _sweep(root, grad, retain_graph, accumulate):
    """Reverse-mode sweep from ``root`` with ``grad`` as its gradient.

    Nodes are visited newest first, from a heap keyed by ``seq``: every node
    that can send a gradient to a node is newer than it, so by the time a
    node is popped its gradient is complete. A node enters the heap the
    first time it receives a gradient; while it waits there, its ``grad``
    slot holds the gradient gathered so far. A leaf that requires a
    gradient gets it through ``accumulate(leaf, g, op)`` (``tensor.py``
    adds it into ``leaf.grad``), after :func:`check_leaf_gradient`.

    A backward pass that raises (a freed graph, a saved tensor changed in
    place, a wrong gradient) changes no ``.grad``: each leaf's ``.grad``
    before its first gradient is kept in ``touched``, and put back.
    """
    node = root.grad_fn
    if node is None:
        accumulate(root, check_leaf_gradient(root, grad, None), None)
        return
    touched = []
    node.grad = grad
    heap = [(-node.seq, node)]       # seq is unique, so nodes never compare
    changed = Clock.last_change
    push, pop, node_type = heappush, heappop, Op
    try:
        while heap:
            t = pop(heap)[1]
            g = t.grad
            t.grad = None
            parents = t.parents
            if parents is None:
                raise _freed_error()
            if changed > t.seq:      # something changed in place since
                check_versions(t)
            for p, gp in zip(parents, t.backward(g)):
                if gp is None:
                    continue
                if not isinstance(p, node_type):      # a leaf tensor
                    if p.requires_grad:
                        touched.append((p, p.grad))
                        x = p.data
                        if gp.shape != x.shape or type(gp) is not type(x) \
                                or gp.dtype is not x.dtype:
                            gp = check_leaf_gradient(p, gp, t)
                        accumulate(p, gp, t)
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


def check_leaf_gradient(leaf, g, op):
    """``g``, the gradient that ``op`` gave the leaf tensor ``leaf``,
    checked: shaped, typed and placed like the leaf's data (a NumPy scalar
    becomes a 0-d array)."""
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
    return g


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


def check_versions(op):
    """Raise if a tensor that ``op`` saved for its gradient was changed in
    place after ``op`` ran: through the tensor itself, or through another
    tensor sharing its memory (a view, ``detach()``). One integer compare
    per saved tensor: its storage's last change against ``op.seq``."""
    inputs, output = op.saved()
    for i in inputs:
        p = op.parents[i]
        s = getattr(p, "vc" if isinstance(p, Op) else "_vc", None)
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


