"""Replay: a recording made runnable.

An ``Entry`` holds one signature's recording as generated Python
(``source(obj)`` prints it): ``run`` calls each recorded op's ``forward``
on the arrays of the arguments and of the parameters read afresh, then,
where the call took a gradient, each ``backward`` in reverse order, and the
optimizer's ``step()``. Where nothing waits for a later backward, the
common ops are written inline on reused arrays (``lowering.py``). A call
whose result needs a gradient gets one graph node whose backward runs the
recorded backwards at once.
"""

import copy
import weakref

import numpy as np

from .. import backend
from .. import kernels as K
from ..lowering import Lowering
from ..nn.hooks import BlockChanges, block_contents, block_version
from ..tensor import Tensor, grad_mode_flags, next_node_number, ones_for, wrap

POOL_SIZE = 4         # replays of one recording whose backward may be pending


# ---- what a function reads from around it ---------------------------------------
def outside_bindings(fn):
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


def rebound(bindings):
    """The first name of ``bindings`` that holds another object now, or
    None."""
    for where, name, obj in bindings:
        now = where.get(name, _UNBOUND) if type(where) is dict else \
            (where.cell_contents if _filled(where) else _UNBOUND)
        if now is not obj:
            return name
    return None


_UNBOUND = object()


class Refused(Exception):
    """``Entry.build`` found what a replay cannot repeat (the entry's
    ``reason`` says what); the recording then runs eagerly."""


class Stale(Exception):
    """A replay found a parameter with another shape, dtype or device than
    it was recorded with (raised before the call changed anything)."""


# ---- a recording made runnable ------------------------------------------------
BUSY = object()       # every op set of the pool waits for its backward


class _Node(K.Op):
    """The one graph node of a replayed call: its backward runs the
    recorded backward of every op at once."""
    __slots__ = ("run_backward", "saves", "label", "__weakref__")

    def backward(self, g):
        return self.run_backward(g)

    @property
    def name(self):
        return f"replay of {self.label}"


class Entry:
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
        if self.bindings and rebound(self.bindings) is not None:
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
            raise Refused
        # The call must leave its arguments and captured tensors as they
        # were (a forward that re-points X with `X /= 2`, or a buffer
        # updated by the call, is state a replay would not keep).
        for slot, kind in enumerate(s.kinds):
            if kind in ("arg", "leaf") and s.objs[slot].data is not s.keep[slot]:
                s.refusal = ("state", "changes the tensor it was given or "
                             "holds", None, 0, None)
                self.reason = s.refusal[1]
                raise Refused
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
            raise Refused

        out = spec(result)
        if len(graphed) > 1:
            s.refusal = ("state", "returns several tensors that need "
                         "gradients", None, 0, None)
            self.reason = s.refusal[1]
            raise Refused
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
                return BUSY
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


MISS = object()       # a checked replay that did nothing: look the call up


def checked_replay(entry, args):
    """For a function called with tensors only (the usual training step),
    one generated function that checks that ``args`` have the recorded
    signature and the entry is still valid, replays, and builds the
    result; it returns ``MISS`` (nothing done) where the full lookup of
    ``_call`` must decide. Checking the recorded values one by one costs
    less than building a signature to compare (at batch 1 that lookup was
    a few percent of a step). None where it does not apply."""
    n = len(args)
    if (entry.graphed is not None or entry.device is not None
            or not all(type(a) is Tensor for a in args)
            or len({id(a.data) for a in args}) < n):
        return None
    off, mode = grad_mode_flags()
    names = {"MISS": MISS, "TT": Tensor, "nd": np.ndarray, "W": wrap,
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
                 "Stale": Stale}
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


def _outs(spec):
    """The ``("out", slot, graphed)`` parts of ``spec``, in order."""
    if spec[0] == "out":
        yield spec
    elif isinstance(spec[0], type):
        for inner in spec[1]:
            yield from _outs(inner)


def _output_slots(spec):
    """The slots of the arrays a call's result is built from."""
    return [out[1] for out in _outs(spec)]


def _graphed_root(spec):
    """The slot of the output that needs a gradient."""
    return next(out[1] for out in _outs(spec) if out[2])


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

