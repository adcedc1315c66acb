"""Recording: a call run eagerly while every op, block call, random draw
and decision it makes is watched.

``record_call`` installs the watchers that ``tensor`` and ``nn`` declare
(the recorder of ops, the watcher of reads and in-place writes, the
random generator, the observer of block calls), runs the call, and puts
back what was there. The ``Session`` it returns holds what the call did,
in order; ``replay.Entry`` turns that into code. Anything a replay could
not repeat is noted as a refusal, and ``explain`` warns about it once.
"""

import itertools
import linecache
import os
import sys
import threading
import warnings

from .. import kernels as K
from ..nn.block import Block
from ..nn.hooks import set_call_observer
from ..tensor import (Tensor, random_generator, set_random_generator,
                      set_recorder, set_watcher, watcher)


class HybridizeWarning(UserWarning):
    """A hybridized block or step runs eagerly; the message says why."""


_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE = os.path.dirname(_HERE) + os.sep          # d2lblocks/
# The engine's files: a warning names the first line outside them.
_INTERNAL = {os.path.join(_PACKAGE, name)
             for name in ("tensor.py", "autograd.py", "views.py", "ops.py",
                          "optim.py")} | \
    {os.path.join(_HERE, name)
     for name in ("__init__.py", "record.py", "replay.py")}
warned = set()           # (file, line, kind) warned about, each once


def code_line(outside_package=False):
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


def warn_once(message, file, line, kind):
    """Warn with ``message`` at ``file``'s ``line`` (a notebook cell by its
    name), once for each place and kind."""
    if (file, line, kind) not in warned:
        warned.add((file, line, kind))
        warnings.warn_explicit(message, HybridizeWarning,
                               _cell(file) or file, line)


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


class Session:
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
                        f"{type(block).__name__}", code_line(outside_package=True))

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
            self.refusal = (kind, what) + (where or code_line()) + (inner,)


def observe(block, args, kwargs):
    """A block that is not hybridized, called while a recording runs (the
    call observer of ``nn.block`` then): the recording notes it ran."""
    watch = watcher()
    if not isinstance(watch, Session) or watch.thread != _get_ident():
        return block.forward(*args, **kwargs)   # another thread's recording
    watch.enter(block)
    try:
        return block.forward(*args, **kwargs)
    finally:
        watch.leave()


def block_changed(block, name, kind):
    """A recording running now refuses a block it ran that sets a plain
    attribute, since a replay would not (``self.calls += 1``)."""
    watch = watcher()
    if kind == "attribute" and isinstance(watch, Session):
        watch.attribute_set(block, name)


def blocks_near(block, fn, args, kwargs, bindings):
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
        elif not isinstance(obj, (type, type(sys), type(code_line))) and \
                isinstance(getattr(obj, "__dict__", None), dict):
            for value in list(vars(obj).values()):
                if isinstance(value, Block):
                    found += value.blocks()
    return found


def home(fn):
    """``(file, line)`` where ``fn`` is defined, for warnings about it."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return ("<unknown>", 0) if code is None else \
        (code.co_filename, code.co_firstlineno)


def record_call(fn, block, args, kwargs, tensors, outside):
    """Run ``fn(*args, **kwargs)`` (the call of ``block``, or None) with
    every watcher installed; returns its result and the ``Session`` that
    saw it. ``outside``: the names a function reads from around it
    (``replay.outside_bindings``), whose blocks it may use."""
    session = Session(tensors)
    old_recorder = set_recorder(session.op_ran)
    if old_recorder is not None:        # keep another tool's recorder working
        def both(op, inputs, out):
            session.op_ran(op, inputs, out)
            old_recorder(op, inputs, out)
        set_recorder(both)
    rng = set_random_generator(_WatchedRandom(random_generator(), session))
    old_watch = set_watcher(session)
    old_observer = set_call_observer(observe)
    session.enter(block)
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
    session.near = blocks_near(block, fn, args, kwargs, outside)
    session.home = home(fn)
    return result, session


def explain(state, entry, session):
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
    warn_once(msg, file, line, kind)
    return kind != "decision"

