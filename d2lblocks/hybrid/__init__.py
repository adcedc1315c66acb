"""hybridize(): record a call once, then replay it without the Python around it.

Gluon's answer to Python's overhead. The first call of a hybridized block
(or training step) with a given *signature* (the shapes, dtypes and devices
of its tensor arguments, which of them need gradients, the other arguments,
grad mode and the blocks' train/eval modes) runs eagerly while
``tensor.apply`` reports every op to a recorder. Ops keep what their
backward needs on themselves and take their constants in the constructor
(the ``kernels`` package), so the recorded op objects can simply run again: the
recording becomes one straight-line Python function (``source(obj)``
prints it) that calls each op's ``forward``, then, where the call took a
gradient, each ``backward`` in reverse order, and the optimizer's
``step()``. Later calls with the signature run that function: no block
dispatch, no argument checks, one graph node per call instead of one per
op. Where nothing waits for a later backward, the common ops are written
into it as NumPy calls on reused arrays (``lowering.py``).

Parameters and buffers are read through their tensors on every replay, so
an optimizer step, ``load_state_dict``, ``initialize`` or a new array
assigned to ``.data`` is seen; replacing a parameter, buffer or child
block object, or giving an attribute a new value, in a block that the
call ran starts a new recording (as Gluon clears the cached graph of the
block that changed). Changes to other blocks drop nothing.

Blocks and tensors know nothing of this module: it hears of them through
hooks they declare (``nn.block``'s change stamps, call handler and call
observer; ``tensor``'s recorder and watcher), and takes in only what its
own thread does while it records.

What cannot be replayed is noticed while recording, and such calls stay
eager, with one warning naming the line:

* a decision made by the data: ``bool()``, ``float()``, ``int()``,
  ``.item()``, ``.numpy()``, ``.tolist()`` of a tensor (so ``if x > 0`` and
  ``while x.sum() > 1``), or indexing with a tensor. A replay would take the
  path of the first call for every input; Gluon replays it silently.
* random numbers drawn in Python (``Dropout`` in training mode): a replay
  would reuse the first call's mask. In ``eval()`` mode it is replayed.
* a tensor changed in place outside an op (a hand-written update inside
  ``no_grad``), or an argument or buffer changed by the call; a plain
  attribute set by a block's ``forward`` on every call; a global or
  enclosing variable assigned by a hybridized function.

NumPy code on a tensor's ``.data`` array is not seen at all: the ops it
feeds get its first result as a constant.

A call whose signature never comes back (a new NumPy array, float or batch
size on every call) would record every time, at several times the cost of
an eager call: after ``CACHE_SIZE + 1`` recordings in a row the block or
function warns once, naming the argument that keeps changing, and runs
eagerly until it is hybridized again.

This package: here the entry points and each block's or function's cache
of recordings, looked up by signature; ``record.py`` runs a call while
watching it; ``replay.py`` turns what it saw into code.
"""

import itertools

import numpy as np

from .. import backend
from ..nn.block import Block
from ..nn.hooks import (BlockChanges, call_handler, mark_run_with,
                        register_block_change_hook, set_call_handler,
                        set_hybridizer)
from ..tensor import Tensor, is_grad_enabled, watcher
from .record import (HybridizeWarning, block_changed, code_line, explain,
                     record_call, warn_once)
from .record import warned as _warned  # noqa: F401 (tests clear it)
from .replay import (BUSY, MISS, Entry, Refused, Stale, checked_replay,
                     outside_bindings, rebound)

__all__ = ["hybridize", "HybridFunction", "HybridizeWarning", "stats",
           "source"]

CACHE_SIZE = 8        # recordings kept per block or function (LRU)


def _hybridize_block(block, active):
    """What ``Block.hybridize`` runs: replay on or off for every block
    below ``block``, each with its own recordings."""
    for inner in block.blocks():
        set_active(inner, active)


# ---- public entry points -----------------------------------------------------------
def hybridize(obj, active=True):
    """Record ``obj`` once per signature and replay it afterwards.

    Arguments:
        obj: a block (then the same as ``obj.hybridize(active)``; returns
            the block) or a function, typically a whole training step that
            runs the forward pass, the loss, ``backward()`` and
            ``optimizer.step()`` (returns a :class:`HybridFunction`).
        active: ``False`` turns replay off again.
    """
    if isinstance(obj, Block):
        return obj.hybridize(active)
    if isinstance(obj, HybridFunction):
        obj.active = bool(active)
        obj.state.clear()
        return obj
    if not callable(obj):
        raise TypeError(f"hybridize() expected a Block or a function, got "
                        f"{type(obj).__name__}")
    fn = HybridFunction(obj)
    fn.active = bool(active)
    return fn


def stats(obj):
    """Counters of a hybridized block or function: a dict with
    ``records`` (eager calls that recorded), ``replays``, ``eager`` (calls
    that ran eagerly: refused, or while another recording ran),
    ``recordings`` (cached now) and ``reason`` (why it is not replayed,
    or None)."""
    state = _state_of(obj)
    if state is None:
        return {"records": 0, "replays": 0, "eager": 0, "recordings": 0,
                "reason": "not hybridized"}
    refused = [e.reason for e in state.entries if e.reason]
    return {"records": state.records, "replays": state.replays,
            "eager": state.eager, "recordings": len(state.entries),
            "reason": state.reason or (refused[0] if refused else None)}


def source(obj):
    """The Python code that replays ``obj``'s most recent recording."""
    state = _state_of(obj)
    for entry in [] if state is None else state.entries:
        if entry.code is not None:
            return entry.code
    raise ValueError("nothing recorded yet: call the hybridized block or "
                     "function once first")


def _state_of(obj):
    if isinstance(obj, HybridFunction):
        return obj.state
    if isinstance(obj, Block):
        handler = call_handler(obj)
        return handler if isinstance(handler, _State) else None
    return None


class HybridFunction:
    """A function, recorded on its first call per signature and replayed
    after that (made by ``db.hybridize(fn)``).

    Tensor arguments are the inputs of the replay. Everything else the
    function reads (a network, an optimizer, tensors from the enclosing
    scope) is captured when it records: tensors are read again through
    ``.data`` on each replay, other values are part of the signature when
    passed as arguments (a NumPy array by identity: pass a new batch of
    labels as a tensor, or each call records again). A global or a
    variable of an enclosing function that the function names is checked
    on each call: given a new object (``opt = optim.SGD(...)`` run again),
    the next call records again; assigned by the function itself, the
    function runs eagerly.
    """

    def __init__(self, fn):
        self.fn = fn
        self.active = True
        self.state = _State(getattr(fn, "__qualname__", repr(fn)))
        self.__wrapped__ = fn
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args, **kwargs):
        if not self.active:
            return self.fn(*args, **kwargs)
        return _call(self.state, self.fn, None, args, kwargs)

    def __repr__(self):
        return f"<hybridized {self.state.name}>"


def set_active(block, active):
    """Turn replay on or off for ``block`` alone (``Block.hybridize``
    calls this for every block below it)."""
    state = _state_of(block)
    if active:
        if state is None:
            set_call_handler(block, _State(type(block).__name__))
        else:
            state.clear()
    else:
        set_call_handler(block, None)


# ---- per block or function: counters and the cache of recordings ---------------
class _State:
    __slots__ = ("name", "entries", "records", "replays", "eager", "reason",
                 "retried", "fast", "streak", "last_key", "checked")

    def __init__(self, name):
        self.name = name
        self.clear()
        self.records = self.replays = self.eager = 0

    def __call__(self, block, args, kwargs):
        """``block(*args, **kwargs)``: replay, record or run."""
        return _call(self, block.forward, block, args, kwargs)

    def clear(self):
        self.entries = []        # most recently used first
        self.fast = None         # the first entry's checked replay, if any
        self.reason = None       # set: this never replays (a decision)
        self.retried = set()     # (kind, key) recorded once more to decide
        self.streak = 0          # recordings since the last cache hit
        self.last_key = None
        self.checked = BlockChanges.count    # entries current as of this


# ---- what changes invalidate recordings -----------------------------------------
# A recording is dropped when a block it ran changes (a parameter, buffer or
# child replaced, a plain attribute given a new value): each block carries
# the stamp of its latest change (``nn.block.block_version``), and a
# recording remembers the stamps of its blocks when it was made.
# ``BlockChanges.count`` moves with any change anywhere, so while it has
# not moved nothing needs checking; when it has, only the recording's own
# blocks are looked at (a layer built elsewhere drops nothing).
def _call(state, fn, block, args, kwargs):
    watch = watcher()
    if watch is not None or state.reason is not None:
        state.eager += 1
        if watch is None:
            return fn(*args, **kwargs)
        watch.enter(block)
        try:
            return fn(*args, **kwargs)
        finally:
            watch.leave()
    fast = state.fast
    if fast is not None and not kwargs:
        try:
            out = fast(args)
        except Stale:              # the slow path records again
            out = MISS
        except Exception:           # let the eager run raise its own error
            state.eager += 1
            return fn(*args, **kwargs)
        if out is not MISS:
            state.replays += 1
            state.streak = 0
            return out
    key, tensors = _signature(block, args, kwargs)
    entries = state.entries
    state.fast = None
    count = BlockChanges.count
    if state.checked != count:
        # Drop those that ran a block changed since (they hold a replaced
        # parameter, buffer or child, or an attribute's old value).
        entries[:] = [e for e in entries if e.current(count)]
        state.checked = count
    for i, entry in enumerate(entries):
        if entry.key != key or not entry.valid():
            continue                # (recorded with other modes: kept)
        if i:
            entries.insert(0, entries.pop(i))
        state.streak = 0
        if entry.reason is None:
            if block is not None:       # the blocks inside ran, for diagnose
                mark_run_with(block, entry.blocks)
            try:
                out = entry.replay(tensors)
            except Stale:
                del entries[0]
                return _record(state, fn, block, args, kwargs, key, tensors)
            except Exception:       # let the eager run raise its own error
                out = BUSY
            if out is not BUSY:
                state.replays += 1
                state.fast = entry.fast
                return out
        state.eager += 1
        return fn(*args, **kwargs)
    return _record(state, fn, block, args, kwargs, key, tensors)


def _signature(block, args, kwargs):
    """The cache key of a call, and its tensor arguments in order."""
    parts, tensors = [], []
    for a in itertools.chain(args, kwargs.values()) if kwargs else args:
        if isinstance(a, Tensor):
            d = a.data
            dev = None if type(d) is np.ndarray else backend.device_of(d)
            parts.append((d.shape, d.dtype, dev, a.requires_grad,
                          a.grad_fn is None))
            tensors.append(a)
        else:
            parts.append(_constant_key(a))
    if len(tensors) > 1:        # f(X, X) is not f(X, Y)
        ids = [id(t.data) for t in tensors]
        if len(set(ids)) < len(ids):
            parts.append(tuple(ids.index(i) for i in ids))
    if kwargs:
        parts.append(tuple(kwargs))
    parts.append(is_grad_enabled())
    if block is not None:
        parts.append(block.__dict__["training"])
    return tuple(parts), tensors


def _constant_key(value):
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_constant_key(v) for v in value))
    if isinstance(value, np.ndarray):
        return ("array", id(value), value.shape, value.dtype)
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return (type(value), value)


def _record(state, fn, block, args, kwargs, key, tensors):
    """Run ``fn`` eagerly while recording; cache what can be replayed."""
    outside = outside_bindings(fn) if block is None else ()
    result, session = record_call(fn, block, args, kwargs, tensors, outside)
    state.records += 1
    entry = Entry(key, session, block)
    entry.watch_blocks(session.near)
    changed = rebound(outside)
    if changed is not None and session.refusal is None:
        session.refusal = ("state", f"assigns a new value to `{changed}`, a "
                           f"name it shares with the code around it,",
                           *session.home, None)
    entry.bindings = outside if session.refusal is None else ()
    try:
        entry.build(session, result)
    except Refused:
        pass
    session.seen = session.by_tensor = None     # the call's tensors may go
    keep = True
    if entry.reason is not None:
        keep = explain(state, entry, session)
    if keep and state.reason is None:
        state.entries.insert(0, entry)
        del state.entries[CACHE_SIZE:]
        if entry.reason is None and block is None and not kwargs:
            entry.fast = checked_replay(entry, args)
            state.fast = entry.fast
    _count_recording(state, fn, key, len(args), kwargs)
    return result


def _count_recording(state, fn, key, nargs, kwargs):
    """Give up on replaying after more recordings in a row than the cache
    holds: each call then has a signature no recording kept, and recording
    costs several eager calls. One warning says which part of the signature
    keeps changing; the block or function runs eagerly until it is
    hybridized again."""
    state.streak += 1
    previous, state.last_key = state.last_key, key
    if state.streak <= CACHE_SIZE or state.reason is not None:
        return
    names = _argument_names(fn)[:nargs] + tuple(kwargs)
    what = _what_changed(previous, key, names)
    state.reason = f"a new signature on every call: {what}"
    state.entries, state.fast = [], None
    file, line = code_line(outside_package=True)
    warn_once(f"{state.name} is not replayed: each of its last "
              f"{state.streak} calls needed a new recording ({what}), and "
              f"recording costs more than running eagerly. It runs eagerly "
              f"from now on; hybridizing it again starts over.",
              file, line, "thrash")


def _what_changed(old, new, names):
    """Which part of a call's signature differs between two keys, in words
    (see ``_signature``); ``names`` names the arguments in order."""
    if old == new:
        return ("the arguments keep their signature, but what a recording "
                "depends on changes between calls (a name given a new "
                "object, a parameter frozen or unfrozen, a layer replaced)")
    if old is None or len(old) != len(new):
        return "the number of arguments changes"
    for i, (a, b) in enumerate(zip(old, new)):
        if a == b:
            continue
        arg = f"argument {names[i]!r}" if i < len(names) else \
            f"argument {i + 1}"
        if isinstance(a, tuple) and a and isinstance(a[0], tuple) \
                and isinstance(b, tuple) and b and isinstance(b[0], tuple):
            if a[0] != b[0]:
                return f"the shape of {arg} changes, {a[0]} then {b[0]}"
            return f"the dtype, device or requires_grad of {arg} changes"
        if isinstance(b, tuple) and b and b[0] == "array":
            return (f"{arg} is a new NumPy array each time: an array argument "
                    f"is a constant of the recording; pass it as a tensor "
                    f"(db.tensor(...)) to have each replay read it afresh")
        return (f"{arg} has a new value each time: an argument that is not "
                f"a tensor is a constant of the recording; pass a tensor, "
                f"or keep the value where the call reads it (an attribute)")
    return "grad mode, train/eval mode or the arguments' sharing changes"


def _argument_names(fn):
    """The names of ``fn``'s positional parameters ('self' left out)."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        return ()
    names = code.co_varnames[:code.co_argcount]
    return names[1:] if getattr(fn, "__self__", None) is not None else names


register_block_change_hook(block_changed)
set_hybridizer(_hybridize_block)
