"""hybridize(): record a call once, then replay it without the Python around it.

Gluon's answer to Python's overhead. The first call of a hybridized block
(or training step) with a given *signature* (the shapes, dtypes and devices
of its tensor arguments, which of them need gradients, the other arguments,
grad mode and the blocks' train/eval modes) runs eagerly while
``tensor.apply`` reports every op to a recorder. Ops keep what their
backward needs on themselves and take their constants in the constructor
(``kernels.py``), so the recorded op objects can simply run again: the
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
"""

import copy
import itertools
import linecache
import os
import sys
import threading
import warnings
import weakref

import numpy as np

from . import backend
from . import kernels as K
from .lowering import Lowering
from .nn.block import Block
from .nn.hooks import (BlockChanges, block_contents, block_version,
                       call_handler, mark_run_with,
                       register_block_change_hook, set_call_handler,
                       set_call_observer, set_hybridizer)
from .tensor import (Tensor, grad_mode_flags, is_grad_enabled,
                     next_node_number, ones_for, random_generator,
                     set_random_generator, set_recorder, set_watcher,
                     watcher, wrap)

__all__ = ["hybridize", "HybridFunction", "HybridizeWarning", "stats",
           "source"]

CACHE_SIZE = 8        # recordings kept per block or function (LRU)
POOL_SIZE = 4         # replays of one recording whose backward may be pending


class HybridizeWarning(UserWarning):
    """A hybridized block or step runs eagerly; the message says why."""


# ---- what changes invalidate recordings -----------------------------------------
# A recording is dropped when a block it ran changes (a parameter, buffer or
# child replaced, a plain attribute given a new value): each block carries
# the stamp of its latest change (``nn.block.block_version``), and a
# recording remembers the stamps of its blocks when it was made.
# ``BlockChanges.count`` moves with any change anywhere, so while it has
# not moved nothing needs checking; when it has, only the recording's own
# blocks are looked at (a layer built elsewhere drops nothing).
def _block_changed(block, name, kind):
    """A recording running now refuses a block it ran that sets a plain
    attribute, since a replay would not (``self.calls += 1``)."""
    watch = watcher()
    if kind == "attribute" and isinstance(watch, _Session):
        watch.attribute_set(block, name)


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


def _observe(block, args, kwargs):
    """A block that is not hybridized, called while a recording runs (the
    call observer of ``nn.block`` then): the recording notes it ran."""
    watch = watcher()
    if not isinstance(watch, _Session) or watch.thread != _get_ident():
        return block.forward(*args, **kwargs)   # another thread's recording
    watch.enter(block)
    try:
        return block.forward(*args, **kwargs)
    finally:
        watch.leave()


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
        except _Stale:              # the slow path records again
            out = _MISS
        except Exception:           # let the eager run raise its own error
            state.eager += 1
            return fn(*args, **kwargs)
        if out is not _MISS:
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
            except _Stale:
                del entries[0]
                return _record(state, fn, block, args, kwargs, key, tensors)
            except Exception:       # let the eager run raise its own error
                out = _BUSY
            if out is not _BUSY:
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


# ---- recording ---------------------------------------------------------------
_INTERNAL = {os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
             for name in ("tensor.py", "hybrid.py", "ops.py", "optim.py")}
_warned = set()


def _where(outside_package=False):
    """``(file, line)`` of the innermost frame outside the engine, or with
    ``outside_package`` outside d2lblocks altogether (where the user's
    code made the call)."""
    f = sys._getframe(1)
    while f is not None:
        path = os.path.abspath(f.f_code.co_filename)
        if not (path.startswith(_PACKAGE) if outside_package
                else path in _INTERNAL):
            return f.f_code.co_filename, f.f_lineno
        f = f.f_back
    return "<unknown>", 0


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _cell(file):
    """IPython's name for the code of a notebook cell (``"Cell In[3]"``),
    or None when ``file`` is a real file or IPython is not running: a
    kernel compiles each cell into a temporary file whose name means
    nothing to the person who wrote the cell."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)()
    name_of = getattr(getattr(shell, "compile", None), "format_code_name", None)
    if name_of is None:
        return None
    try:
        named = name_of(file)
    except Exception:          # another IPython's compiler: keep the file
        return None
    return f"{named[0]} {named[1]}" if named else None


def _place(file, line):
    """Where ``file``'s line ``line`` is, in the words a reader knows:
    ``Cell In[3], line 15`` in a notebook, ``model.py:15`` elsewhere."""
    cell = _cell(file)
    return f"{cell}, line {line}" if cell else f"{os.path.basename(file)}:{line}"
_get_ident = threading.get_ident


class _WatchedRandom:
    """Stands in for the random generator while recording: any draw is
    noted (a replay would reuse the numbers drawn now)."""

    def __init__(self, rng, session):
        self._rng, self._session = rng, session

    def __getattr__(self, name):
        if _get_ident() == self._session.thread:
            self._session.refuse("random", "draws random numbers")
        return getattr(self._rng, name)


class _Session:
    """What one recording saw: the ops, in order, with the slots (arrays)
    they read and wrote, and the other events of the call."""

    def __init__(self, tensors):
        self.slot_of = {}        # id(array) -> slot (its newest)
        self.by_tensor = {}      # id(tensor) -> slot, for tensors seen
        self.seen = []           # those tensors (so that ids stay unique)
        self.kinds = []          # per slot: "arg", "leaf", "out", "grad"
        self.objs = []           # per slot: the tensor (arg, leaf, grad owner)
        self.keep = []           # arrays alive while recording (ids stay unique)
        self.steps = []          # (op, input slots, output slot, graphed, 0-d)
        # ("op", k), ("backward", slot), ("grad", t), ("call", fn), ("read", slot)
        self.events = []
        self.grad_owner = {}     # id(grad tensor) -> leaf, after a backward
        self.holding = {}        # id(leaf) -> (leaf, the grad a backward gave)
        self.blocks = {}         # id -> (block, training) of blocks called
        self.stack = []          # blocks running now, innermost last
        self.quiet = 0           # inside backward() or optimizer.step()
        self.refusal = None      # (kind, what, file, line, block)
        self.backward_seen = False
        # The hooks are the process's; what other threads do meanwhile is
        # not part of this call.
        self.thread = threading.get_ident()
        for t in tensors:
            self._new_slot(t.data, "arg", t, t)

    def _new_slot(self, array, kind, obj, tensor=None):
        s = len(self.kinds)
        self.slot_of[id(array)] = s
        self.kinds.append(kind)
        self.objs.append(obj)
        self.keep.append(array)
        if tensor is not None:
            self._seen(tensor, s)
        return s

    def _seen(self, t, s):
        self.by_tensor[id(t)] = s
        self.seen.append(t)

    def _own(self, t):
        """The slot ``t`` was seen with, if it still holds that array (code
        may assign a new array to ``.data``), else None. An in-place write
        (``kernels.Assign``) and a view read again from its changed base
        (``kernels.ViewChain``) are reported as ops whose output is the
        tensor itself: it then has their slot."""
        s = self.by_tensor.get(id(t))
        return s if s is not None and self.keep[s] is t.data else None

    def find(self, t):
        """The slot of tensor ``t``: its own, else that of its array (a
        tensor made over an array seen before, as ``x.detach()`` is), else
        None."""
        s = self._own(t)
        return self.slot_of.get(id(t.data)) if s is None else s

    def slot(self, t):
        """The slot of tensor ``t``, made on first sight."""
        s = self._own(t)
        if s is not None:
            return s
        s = self.slot_of.get(id(t.data))
        if s is not None:                # another tensor over a known array
            if t.requires_grad:
                self._claim(s, t)
            self._seen(t, s)
            return s
        owner = self.grad_owner.get(id(t))
        if owner is not None:          # a gradient filled by a backward()
            s = self._new_slot(t.data, "grad", owner, t)
            self.events.append(("read", s))
            return s
        if t.requires_grad and t.grad_fn is not None:
            self.refuse("state", "uses a tensor computed before the call "
                        "that carries a graph")
        return self._new_slot(t.data, "leaf", t, t)

    def _claim(self, s, t):
        """``t`` needs a gradient and its array is slot ``s``'s, seen first
        through another tensor. When that one was an alias of a leaf (a
        ``detach()`` used before the parameter itself), the slot is read
        and its gradient given through ``t`` from now on; two tensors over
        one array that both need gradients (or a new leaf over an array
        the call computed) cannot share a slot."""
        kind = self.kinds[s]
        if kind == "leaf" and not self.objs[s].requires_grad:
            self.objs[s] = t
        elif kind == "out" and any(step[2] == s and step[0] is t.grad_fn
                                   for step in self.steps):
            pass                # re-pointed at this output by an in-place op
        elif kind == "out":
            self.refuse("state", "starts a new graph at a value it computed "
                        "(detach().requires_grad_())")
        else:
            self.refuse("state", "uses two tensors that need gradients over "
                        "one array")

    # -- told by tensor.apply, Tensor and the optimizer ---------------------
    def op_ran(self, op, inputs, out):
        if _get_ident() != self.thread:
            return
        if self.quiet:
            return
        if self.holding:
            self.look_at_grads()
        ins = tuple([self.slot(t) for t in inputs])
        if type(op) is K.Assign and self.kinds[ins[0]] in ("arg", "leaf"):
            # An in-place write into an argument, or into a tensor that no
            # op of the call made: a buffer, or one made by db.zeros inside
            # the call, which a replay would not make afresh.
            self.refuse("state", "changes the tensor it was given in place"
                        if self.kinds[ins[0]] == "arg" else
                        "changes in place a tensor that none of its ops made "
                        "(a buffer, or one made by db.zeros or db.tensor "
                        "inside the call, which a replay would not make "
                        "afresh; start from an op instead, e.g. x * 0)")
        o = self._new_slot(out.data, "out", None, out)
        self.steps.append((op, ins, o, out.grad_fn is op, out.data.ndim == 0))
        self.events.append(("op", len(self.steps) - 1))

    def decision(self, what):
        if _get_ident() != self.thread:
            return
        if not self.quiet:
            self.refuse("decision", what)

    def changed(self, t):
        if _get_ident() != self.thread:
            return
        if not self.quiet:
            self.refuse("state", "changes a tensor in place outside an op")

    def grad_set(self, t, value):
        """Told by ``zero_grad`` (through ``set_watcher``)."""
        if _get_ident() != self.thread:
            return
        if self.quiet or not getattr(t, "requires_grad", False) \
                or t.grad_fn is not None:
            return
        self.holding.pop(id(t), None)
        if value is None:
            self.events.append(("grad", t))
        else:
            self.refuse("state", "assigns a gradient")

    def look_at_grads(self):
        """A gradient that a backward() of the call wrote and the code
        has set to None since (``p.grad = None`` by hand) is a reset the
        replay makes at this point; one replaced by another tensor is
        state the replay would not set."""
        for key, (leaf, grad) in list(self.holding.items()):
            now = leaf.grad
            if now is grad:
                continue
            del self.holding[key]
            if now is None:
                self.events.append(("grad", leaf))
            else:
                self.refuse("state", "assigns a gradient")

    def backward_begins(self, root, grad, retain_graph):
        if _get_ident() != self.thread:
            return
        if self.holding and not self.quiet:
            self.look_at_grads()
        self.quiet += 1
        if grad is not None:
            self.refuse("state", "calls backward() with a given gradient")
            return
        s = self.find(root)
        if s is None or self.kinds[s] != "out":
            self.refuse("state", "calls backward() on a tensor made outside it")
            return
        self.events.append(("backward", s))
        self.backward_seen = True

    def backward_ends(self):
        if _get_ident() != self.thread:
            return
        self.quiet -= 1
        # Later reads of a leaf's .grad (clipping, a hand-made update) are
        # reads of what this backward() wrote.
        for s, kind in enumerate(self.kinds):
            if kind in ("leaf", "arg"):
                g = self.objs[s].grad
                if g is not None:
                    self.grad_owner[id(g)] = self.objs[s]
                    if self.objs[s].requires_grad:
                        self.holding[id(self.objs[s])] = (self.objs[s], g)

    def call_begins(self, fn):
        if _get_ident() != self.thread:
            return
        if self.holding and not self.quiet:
            self.look_at_grads()
        self.quiet += 1
        self.events.append(("call", fn))

    def call_ends(self):
        if _get_ident() != self.thread:
            return
        self.quiet -= 1

    def attribute_set(self, block, name):
        if _get_ident() != self.thread:
            return
        if not self.quiet and id(block) in self.blocks:
            self.refuse("attribute", f"sets `{name}` of "
                        f"{type(block).__name__}", _where(outside_package=True))

    def enter(self, block):
        if _get_ident() != self.thread:
            return
        if block is not None:
            self.blocks[id(block)] = (block, block.__dict__["training"])
        self.stack.append(block)

    def leave(self):
        if _get_ident() != self.thread:
            return
        self.stack.pop()

    def refuse(self, kind, what, where=None):
        if self.refusal is None:
            inner = next((b for b in reversed(self.stack) if b is not None), None)
            self.refusal = (kind, what) + (where or _where()) + (inner,)


def _record(state, fn, block, args, kwargs, key, tensors):
    """Run ``fn`` eagerly while recording; cache what can be replayed."""
    session = _Session(tensors)
    old_recorder = set_recorder(session.op_ran)
    if old_recorder is not None:        # keep another tool's recorder working
        def both(op, inputs, out):
            session.op_ran(op, inputs, out)
            old_recorder(op, inputs, out)
        set_recorder(both)
    rng = set_random_generator(_WatchedRandom(random_generator(), session))
    old_watch = set_watcher(session)
    old_observer = set_call_observer(_observe)
    session.enter(block)
    outside = _bindings(fn) if block is None else ()
    try:
        result = fn(*args, **kwargs)
        if session.holding:
            session.look_at_grads()
    finally:
        set_call_observer(old_observer)
        set_watcher(old_watch)
        if isinstance(random_generator(), _WatchedRandom):
            set_random_generator(rng)      # unless re-seeded inside
        set_recorder(old_recorder)
    state.records += 1
    entry = _Entry(key, session, block)
    entry.watch_blocks(_blocks_near(block, fn, args, kwargs, outside))
    session.home = _home(fn)
    changed = _rebound(outside)
    if changed is not None and session.refusal is None:
        session.refusal = ("state", f"assigns a new value to `{changed}`, a "
                           f"name it shares with the code around it,",
                           *session.home, None)
    entry.bindings = outside if session.refusal is None else ()
    try:
        entry.build(session, result)
    except _Refused:
        pass
    session.seen = session.by_tensor = None     # the call's tensors may go
    keep = True
    if entry.reason is not None:
        keep = _explain(state, entry, session)
    if keep and state.reason is None:
        state.entries.insert(0, entry)
        del state.entries[CACHE_SIZE:]
        if entry.reason is None and block is None and not kwargs:
            entry.fast = _checked_replay(entry, args)
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
    file, line = _where(outside_package=True)
    if (file, line, "thrash") not in _warned:
        _warned.add((file, line, "thrash"))
        warnings.warn_explicit(
            f"{state.name} is not replayed: each of its last {state.streak} "
            f"calls needed a new recording ({what}), and recording costs "
            f"more than running eagerly. It runs eagerly from now on; "
            f"hybridizing it again starts over.", HybridizeWarning,
            _cell(file) or file, line)


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


def _blocks_near(block, fn, args, kwargs, bindings):
    """The blocks whose parameters a call may read without calling them
    (``x @ net.weight``): every block below the called ``block``, and for
    a function those below each block it names, is bound to, or is given,
    directly or as an attribute of an object it names (``trainer.net``)."""
    if block is not None:
        return list(block.blocks())
    roots = [getattr(fn, "__self__", None)]
    roots += [obj for _, _, obj in bindings]
    roots += [a for a in itertools.chain(args, kwargs.values())
              if not isinstance(a, Tensor)]
    found = []
    for obj in roots:
        if isinstance(obj, Block):
            found += obj.blocks()
        elif not isinstance(obj, (type, type(sys), type(_where))) and \
                isinstance(getattr(obj, "__dict__", None), dict):
            for value in list(vars(obj).values()):
                if isinstance(value, Block):
                    found += value.blocks()
    return found


def _bindings(fn):
    """What function ``fn`` reads by name from outside itself, with the
    objects those names hold now: ``(cell, name, object)`` for each
    variable of an enclosing function and ``(globals, name, object)`` for
    each global its code names. A recording captured those objects (the
    network, the optimizer); a name given a new one since (a notebook cell
    run again: ``opt = optim.SGD(...)``) must record again."""
    f = getattr(fn, "__func__", fn)
    code = getattr(f, "__code__", None)
    if code is None:
        return ()
    found = [(cell, name, cell.cell_contents)
             for name, cell in zip(code.co_freevars, f.__closure__ or ())
             if _filled(cell)]
    g, todo = f.__globals__, [code]
    while todo:                       # names in nested code (lambdas) too
        c = todo.pop()
        found += [(g, name, g[name]) for name in c.co_names if name in g]
        todo += [k for k in c.co_consts if hasattr(k, "co_names")]
    return tuple(found)


def _filled(cell):
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _rebound(bindings):
    """The first name of ``bindings`` that holds another object now, or
    None."""
    for where, name, obj in bindings:
        now = where.get(name, _UNBOUND) if type(where) is dict else \
            (where.cell_contents if _filled(where) else _UNBOUND)
        if now is not obj:
            return name
    return None


_UNBOUND = object()


def _home(fn):
    """``(file, line)`` where ``fn`` is defined, for warnings about it."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return ("<unknown>", 0) if code is None else \
        (code.co_filename, code.co_firstlineno)


class _Refused(Exception):
    pass


class _Stale(Exception):
    """A replay found a parameter with another shape, dtype or device than
    it was recorded with (raised before the call changed anything)."""


def _explain(state, entry, session):
    """Warn once about why ``state``'s block or function stays eager;
    returns whether to keep the refused recording (to run eagerly)."""
    kind, what, file, line, inner = session.refusal
    if file is None:
        file, line = session.home
    name = state.name
    where = _place(file, line)
    text = linecache.getline(file, line).strip()
    code = f" (`{text}`)" if text else ""
    inside = "" if inner is None or type(inner).__name__ == name else \
        f" inside {type(inner).__name__}"
    if kind == "decision":
        state.reason = f"{what} at {where}"
        msg = (f"{name} is not replayed: {what} at {where}{code}{inside} hands "
               f"a tensor's value to Python, which then chooses what runs "
               f"next. A replay would take the path of the first call for "
               f"every input, so {name} runs eagerly (nested blocks without "
               f"such decisions are still replayed).")
    elif kind in ("random", "attribute") and \
            (kind, entry.key) not in state.retried:
        # The first call may have drawn to initialize lazy parameters, or
        # set an attribute once (a cache filled on first use): record once
        # more before deciding.
        state.retried.add((kind, entry.key))
        return False
    elif kind == "random":
        entry.reason = f"random numbers drawn at {where}"
        msg = (f"{name} is not replayed with this signature: it {what} at "
               f"{where}{code}{inside}, and a replay would reuse the first "
               f"call's numbers (the same dropout mask every time). It runs "
               f"eagerly; in eval() mode it is replayed.")
    else:
        entry.reason = f"{what} at {where}"
        msg = (f"{name} is not replayed with this signature: it {what} at "
               f"{where}{code}{inside}, which a replay of its ops would "
               f"leave out. It runs eagerly.")
    if (file, line, kind) not in _warned:
        _warned.add((file, line, kind))
        warnings.warn_explicit(msg, HybridizeWarning,
                               _cell(file) or file, line)
    return kind != "decision"


# ---- a recording made runnable ------------------------------------------------
_BUSY = object()


class _Node(K.Op):
    """The one graph node of a replayed call: its backward runs the
    recorded backward of every op at once."""
    __slots__ = ("run_backward", "saves", "label", "__weakref__")

    def backward(self, g):
        return self.run_backward(g)

    @property
    def name(self):
        return f"replay of {self.label}"


class _Entry:
    """One signature's recording: the generated code, and a pool of op
    sets to run it with."""

    def __init__(self, key, session, block):
        self.key = key
        self.reason = None
        self.code = None
        self.fast = None
        self.label = type(block).__name__ if block is not None else "function"
        # Its blocks were checked when BlockChanges.count was this.
        self.seen = BlockChanges.count
        self.modes_epoch = BlockChanges.modes
        self.modes = list(session.blocks.values())
        self.blocks = [b for b, _ in self.modes]
        self.watch_blocks(())
        self.bindings = ()

    def watch_blocks(self, more):
        """Check the blocks that ran and ``more`` (blocks whose parameters
        the call may have read without calling them) for changes."""
        seen = {id(b) for b in self.blocks}
        self.watched = self.blocks + [b for b in more if id(b) not in seen
                                      and not seen.add(id(b))]
        self.versions = [block_version(b) for b in self.watched]
        self.contents = [block_contents(b) for b in self.watched]

    def current(self, count):
        """Whether no block this ran or could read has changed since it
        was recorded (``count``: ``BlockChanges.count`` now)."""
        if self.seen != count:
            for block, version, (names, objects) in zip(
                    self.watched, self.versions, self.contents):
                if block_version(block) != version:
                    return False
                now_names, now = block_contents(block)
                if now_names != names or any(
                        a is not b for a, b in zip(now, objects)):
                    return False      # a registry written to directly
            self.seen = count
        return True

    def valid(self):
        """Whether the blocks' modes, which parameters need gradients
        (frozen or not) and the objects a function's outside names hold
        are as they were when this was recorded."""
        if self.bindings and _rebound(self.bindings) is not None:
            return False
        if self.modes_epoch != BlockChanges.modes:
            for block, mode in self.modes:
                if block.__dict__["training"] != mode:
                    return False
            self.modes_epoch = BlockChanges.modes
        for leaf, needs in self.needs_check:
            if bool(leaf.requires_grad) is not needs:
                return False
        return True

    def build(self, s, result):
        self.needs_check = ()
        if s.refusal is not None:
            self.reason = s.refusal[1]
            raise _Refused
        # The call must leave its arguments and captured tensors as they
        # were (a forward that re-points X with `X /= 2`, or a buffer
        # updated by the call, is state a replay would not keep).
        for slot, kind in enumerate(s.kinds):
            if kind in ("arg", "leaf") and s.objs[slot].data is not s.keep[slot]:
                s.refusal = ("state", "changes the tensor it was given or "
                             "holds", None, 0, None)
                self.reason = s.refusal[1]
                raise _Refused
        spec = self._outputs(s, result)
        slots = _output_slots(spec)
        self.spec = _renumber(spec, {slot: i for i, slot in enumerate(slots)})
        # A parameter frozen or unfrozen since changes what gets gradients.
        self.needs_check = tuple(
            (s.objs[i], bool(s.objs[i].requires_grad))
            for i, kind in enumerate(s.kinds)
            if kind == "leaf" and s.keep[i].dtype.kind == "f")
        self.code, self.make = _generate(s, spec, self.node_inputs)
        self.ops = [step[0] for step in s.steps]
        self.leaves = [s.objs[i] if s.kinds[i] in ("leaf", "grad") else None
                       for i in range(len(s.kinds))]
        self.calls = [e[1] for e in s.events if e[0] == "call"]
        self.grad_resets = [e[1] for e in s.events if e[0] == "grad"]
        self.pool = []
        self.nargs = sum(1 for k in s.kinds if k == "arg")
        # A replay runs its kernels on the GPU its tensors live on (CuPy
        # runs on the current device, which need not be theirs).
        self.device = next(
            (backend.device_of(s.keep[i]) for i, kind in enumerate(s.kinds)
             if kind in ("arg", "leaf") and type(s.keep[i]) is not np.ndarray),
            None)

    def _outputs(self, s, result):
        """How to build the call's result from the replay's arrays."""
        graphed = []

        def spec(value):
            if isinstance(value, Tensor):
                slot = s.find(value)
                if slot is None or s.kinds[slot] in ("grad", "leaf"):
                    return ("obj", value)
                kind = s.kinds[slot]
                if kind == "arg":
                    return ("arg", slot)
                if value.requires_grad and not s.backward_seen:
                    graphed.append(slot)
                return ("out", slot, value.requires_grad and not s.backward_seen)
            if isinstance(value, (tuple, list)):
                return (type(value), [spec(v) for v in value])
            if value is None or isinstance(value, (bool, int, float, str)):
                return ("const", value)
            s.refusal = ("state", f"returns a {type(value).__name__}", None, 0,
                         None)
            self.reason = s.refusal[1]
            raise _Refused

        out = spec(result)
        if len(graphed) > 1:
            s.refusal = ("state", "returns several tensors that need "
                         "gradients", None, 0, None)
            self.reason = s.refusal[1]
            raise _Refused
        # The node of a replay: its parents are the arguments and leaves
        # that the output's gradient reaches.
        self.graphed = graphed[0] if graphed else None
        self.node_inputs = [] if self.graphed is None else \
            _reached(s, len(s.steps), self.graphed, ("arg", "leaf"))
        return out

    def _new_set(self):
        """Fresh copies of the recorded ops (they keep per-call state)."""
        ops = []
        for op in self.ops:
            c = copy.copy(op)
            try:
                c.parents = None         # no link to the recording's graph
                c.grad = None
            except AttributeError:
                pass
            ops.append(c)
        run, run_backward = self.make(ops, self.leaves, self.calls,
                                      self.grad_resets)
        return [run, run_backward, None]

    def replay(self, tensors):
        pool = self.pool
        for entry in pool:
            busy = entry[2]
            if busy is None:
                break
            node = busy()
            if node is None or node.parents is None:
                entry[2] = None
                break
        else:
            if len(pool) >= POOL_SIZE:
                return _BUSY
            entry = self._new_set()
            pool.append(entry)
        if self.device is None:
            out = entry[0](*tensors)
        else:
            with backend.on(self.device):
                out = entry[0](*tensors)
        if self.graphed is not None:
            node = _Node()
            node.run_backward = entry[1]
            node.label = self.label
            parents = []
            for slot in self.node_inputs:
                t = tensors[slot] if slot < self.nargs else self.leaves[slot]
                parents.append(t.grad_fn or t)
            node.parents = tuple(parents)
            node.needs = (True,) * len(parents)
            node.saves = tuple(range(len(parents)))
            node.seq = next_node_number()
            node.grad = None
            entry[2] = weakref.ref(node)
            return _build(self.spec, out, tensors, node)
        return _build(self.spec, out, tensors, None)


_MISS = object()


def _checked_replay(entry, args):
    """For a function called with tensors only (the usual training step),
    one generated function that checks that ``args`` have the recorded
    signature and the entry is still valid, replays, and builds the
    result; it returns ``_MISS`` (nothing done) where the full lookup of
    ``_call`` must decide. Checking the recorded values one by one costs
    less than building a signature to compare (at batch 1 that lookup was
    a few percent of a step). None where it does not apply."""
    n = len(args)
    if (entry.graphed is not None or entry.device is not None
            or not all(type(a) is Tensor for a in args)
            or len({id(a.data) for a in args}) < n):
        return None
    off, mode = grad_mode_flags()
    names = {"MISS": _MISS, "TT": Tensor, "nd": np.ndarray, "W": wrap,
             "E": BlockChanges, "EN": entry, "mode": mode, "OFF": off}
    result = _result_source(entry.spec, names)
    if result is None:
        return None
    if not entry.pool:
        entry.pool.append(entry._new_set())
    names["run"] = entry.pool[0][0]
    ts = [f"t{i}" for i in range(n)]
    checks = []
    for i, part in enumerate(entry.key[:n]):
        shape, dtype, device, needs, leaf = part
        if device is not None or not leaf:
            return None
        names[f"S{i}"], names[f"D{i}"] = shape, dtype
        checks += [f"type(t{i}) is not TT", f"type(t{i}.data) is not nd",
                   f"t{i}.data.shape != S{i}", f"t{i}.data.dtype is not D{i}",
                   f"t{i}.requires_grad is not {needs}",
                   f"t{i}.grad_fn is not None"]
    checks += [f"t{i}.data is t{j}.data" for i in range(n) for j in range(i)]
    # Grad mode is per thread; while no thread has it off, one class
    # attribute says so.
    checks += [f"(OFF.none or mode.enabled) is not {entry.key[n]}",
               "E.count != EN.seen", "E.modes != EN.modes_epoch"]
    for k, (leaf, needs) in enumerate(entry.needs_check):
        names[f"F{k}"] = leaf
        checks.append(f"{'not ' if needs else ''}F{k}.requires_grad")
    names["U"] = _UNBOUND
    for k, (where, name, obj) in enumerate(entry.bindings):
        names[f"N{k}"], names[f"V{k}"] = where, obj
        checks.append(f"N{k}.get({name!r}, U) is not V{k}"
                      if type(where) is dict else
                      f"N{k}.cell_contents is not V{k}")
    src = (f"def fast(a):\n    if len(a) != {n}: return MISS\n"
           + (f"    {', '.join(ts)}, = a\n" if n else "")
           + "    if (" + " or\n            ".join(checks) + "):\n"
           + "        return MISS\n"
           + f"    r = run({', '.join(ts)})\n"
           + f"    return {result}\n")
    exec(compile(src, "<checked replay>", "exec"), names)
    return names["fast"]


def _result_source(spec, names):
    """An expression that builds the result of a call whose outputs need
    no gradient (``r`` holds the arrays), or None."""
    kind = spec[0]
    if kind == "out":
        return f"W(r[{spec[1]}])"
    if kind == "arg":
        return f"t{spec[1]}"
    if kind in ("obj", "const"):
        name = f"O{len(names)}"
        names[name] = spec[1]
        return name
    parts = [_result_source(x, names) for x in spec[1]]
    if None in parts or kind not in (tuple, list):
        return None
    inner = "".join(p + ", " for p in parts)
    return f"({inner})" if kind is tuple else f"[{inner}]"


def _build(spec, arrays, tensors, node):
    kind = spec[0]
    if kind == "out":
        t = wrap(arrays[spec[1]])
        if spec[2]:
            node.shape, node.dtype = t.data.shape, t.data.dtype
            t.requires_grad = True
            t.grad_fn = node
        return t
    if kind == "arg":
        return tensors[spec[1]]
    if kind == "obj":
        return spec[1]
    if kind == "const":
        return spec[1]
    return kind(_build(s, arrays, tensors, node) for s in spec[1])


def _reached(s, upto, root, kinds):
    """Slots of ``kinds`` that a gradient from ``root`` reaches, going
    back through the graphed ops before event ``upto``."""
    has, found = {root}, []
    for op, ins, o, graphed, _ in reversed(s.steps[:upto]):
        if not graphed or o not in has:
            continue
        for need, i in zip(op.needs, ins):
            if need:
                has.add(i)
                if s.kinds[i] in kinds and i not in found:
                    found.append(i)
    return sorted(found)


# ---- code generation -----------------------------------------------------------
def _generate(s, spec, node_inputs):
    """Source of the replay and a factory that binds it to a set of ops.

    ``run(t0, t1, ...)`` takes the tensor arguments and returns the arrays
    the result needs; ``run_backward(g)`` (for a call whose result needs a
    gradient) returns the gradients of ``node_inputs``. Names: ``v5`` is
    the array of slot 5 and ``g5`` its gradient, ``f3``/``b3`` the forward
    and backward of op 3, ``L5`` the tensor read for slot 5, ``C0`` the
    first call of ``optimizer.step()``, ``G0`` the first gradient reset.
    """
    nargs = sum(1 for k in s.kinds if k == "arg")
    slots = _output_slots(spec)
    low = None if node_inputs else Lowering(s, slots)
    if low is not None and not low.ops:
        low = None
    body = [f"def run({', '.join(f't{i}' for i in range(nargs))}):"]
    body += [f"    v{i} = t{i}.data" for i in range(nargs)]
    fresh = set()
    cleared = set()          # ids of tensors whose .grad is None here
    n_call = n_grad = 0
    guards = {}

    def read(slot):
        if s.kinds[slot] == "leaf" and slot not in fresh:
            body.append(f"    v{slot} = L{slot}.data")
            fresh.add(slot)
        return f"v{slot}"

    if low is not None:
        # Inlined ops write into arrays of the recorded shapes: a parameter
        # they read given a new shape, dtype or device records again
        # (checked before the call has changed anything).
        checks = []
        for slot in sorted(low.leaves()):
            a = s.keep[slot]
            guards[f"S{slot}"], guards[f"D{slot}"] = a.shape, a.dtype
            read(slot)
            checks += [f"type(v{slot}) is not nd", f"v{slot}.shape != S{slot}",
                       f"v{slot}.dtype != D{slot}"]
        if checks:
            body.append("    if (" + " or\n            ".join(checks)
                        + "):\n        raise Stale")
    for pos, event in enumerate(s.events):
        kind = event[0]
        if kind == "op":
            k = event[1]
            op, ins, o, graphed, zero_d = s.steps[k]
            names = [read(i) for i in ins]
            lines = None if low is None else low.forward(k, names)
            if lines is None:
                body.append(f"    v{o} = f{k}({', '.join(names)})")
            else:
                body.extend(lines)
            if zero_d and (low is None or o not in low.skipped):
                body.append(f"    v{o} = fix(v{o})")
        elif kind == "read":
            body.append(f"    v{event[1]} = L{event[1]}.grad.data")
        elif kind == "grad":
            body.append(f"    G{n_grad}.grad = None")
            n_grad += 1
            cleared.add(id(event[1]))
        elif kind == "call":
            body.append(f"    C{n_call}()")
            n_call += 1
            fresh.clear()           # an update may give a leaf a new array
            cleared.clear()
        elif kind == "backward":
            upto = sum(1 for e in s.events[:pos] if e[0] == "op")
            body.extend(_backward_lines(s, upto, event[1], True, low, cleared))
    body.append(f"    return ({''.join(f'v{i}, ' for i in slots)})")
    if node_inputs:
        root = _graphed_root(spec)
        body += ["def run_backward(g):", f"    g{root} = g"]
        body += _backward_lines(s, len(s.steps), root, False, None)
        body.append(f"    return ({''.join(f'g{i}, ' for i in node_inputs)})")
    else:
        body.append("run_backward = None")
    if low is not None and low.counted:
        body.insert(1, f"    nonlocal {', '.join(low.counted)}")
    code = "\n".join(body) + "\n"
    used = sorted({i for i, k in enumerate(s.kinds) if k in ("leaf", "grad")})
    head = ["def make(ops, L, C, G):"]
    head += [f"    f{k} = ops[{k}].forward" for k in range(len(s.steps))]
    head += [f"    b{k} = ops[{k}].backward" for k in range(len(s.steps))
             if s.steps[k][3]]
    head += [f"    L{i} = L[{i}]" for i in used]
    head += [f"    C{i} = C[{i}]" for i in range(n_call)]
    head += [f"    G{i} = G[{i}]" for i in range(n_grad)]
    if low is not None:
        head += low.make_lines()
    factory_src = "\n".join(head) + "\n" + "".join(
        "    " + line + "\n" for line in code.splitlines()) + \
        "    return run, run_backward\n"
    namespace = {"fix": _fix, "one": ones_for, "W": wrap, "nd": np.ndarray,
                 "Stale": _Stale}
    namespace.update(guards)
    if low is not None:
        namespace.update(low.namespace())
    exec(compile(factory_src, f"<replay of {len(s.steps)} ops>", "exec"),
         namespace)
    return code, namespace["make"]


def _renumber(spec, position):
    """``spec`` with each output slot replaced by its place in the tuple
    that ``run`` returns."""
    if spec[0] == "out":
        return ("out", position[spec[1]], spec[2])
    if isinstance(spec[0], type):
        return (spec[0], [_renumber(x, position) for x in spec[1]])
    return spec


def _output_slots(spec):
    found = []

    def walk(sp):
        if sp[0] == "out":
            found.append(sp[1])
        elif isinstance(sp[0], type):
            for x in sp[1]:
                walk(x)
    walk(spec)
    return found


def _graphed_root(spec):
    found = []

    def walk(sp):
        if sp[0] == "out" and sp[2]:
            found.append(sp[1])
        elif isinstance(sp[0], type):
            for x in sp[1]:
                walk(x)
    walk(spec)
    return found[0]


def _backward_lines(s, upto, root, accumulate, low, cleared=()):
    """Lines that send the gradient ``g{root}`` back through the graphed
    ops before ``upto``, newest first, as ``backward()`` visits them.

    With ``accumulate``, gradients of leaves and arguments are added into
    their ``.grad`` at each arrival (as ``backward()`` does, never in
    place: a gradient array may be shared); otherwise they are summed in
    ``g{slot}`` for the replay's node to hand on. ``low`` (a
    ``Lowering``, or None) writes the backward of the ops it inlines;
    ``cleared`` holds the ids of tensors whose ``.grad`` was just set to
    None (their first gradient is stored without a look at the old one).
    """
    out = []
    root_one = low is not None and root in low.skipped
    if accumulate and not root_one:
        out.append(f"    g{root} = one(v{root})")
    has = {root}
    for k in range(upto - 1, -1, -1):
        op, ins, o, graphed, _ = s.steps[k]
        if not graphed or o not in has:
            continue
        inline = None if low is None else low.backward(k, f"g{o}", root_one
                                                       and o == root)
        if inline is None:
            out.append(f"    r = b{k}(g{o})")
            names = [f"r[{j}]" for j in range(len(ins))]
        else:
            lines, names = inline
            out.extend(lines)
        for j, (need, i) in enumerate(zip(op.needs, ins)):
            if not need:
                continue
            kind = s.kinds[i]
            if accumulate and kind in ("leaf", "arg"):
                t = f"L{i}" if kind == "leaf" else f"t{i}"
                g = f"fix({names[j]})" if s.keep[i].ndim == 0 else names[j]
                if id(s.objs[i]) in cleared:
                    cleared.discard(id(s.objs[i]))
                    out.append(f"    {t}.grad = W({g})")
                    continue
                out.append(f"    o = {t}.grad")
                out.append(f"    {t}.grad = W({g}) if o is None else "
                           f"W(o.data + {g})")
                continue
            if i in has:
                out.append(f"    g{i} = g{i} + {names[j]}")
            else:
                out.append(f"    g{i} = {names[j]}")
                has.add(i)
    return out


def _fix(x):
    """NumPy gives scalars for 0-d results; the library keeps arrays."""
    return np.asarray(x) if isinstance(x, np.generic) else x


register_block_change_hook(_block_changed)
set_hybridizer(_hybridize_block)
