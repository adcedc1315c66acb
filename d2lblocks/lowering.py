"""Inline array code for the common ops of a replay (used by ``hybrid``).

A replay calls each recorded op's ``forward`` and ``backward``. For the
ops most small networks are made of (the dense layer, ReLU, softmax
cross-entropy) it can do better, and at small batches it must: there a
training step is a few dozen NumPy calls, and the Python around them
(method calls, fresh result arrays, a loss value nobody reads) costs as
much as the arithmetic. So, for these ops, the replay's generated code
holds their array calls itself:

* results go into arrays allocated once per recording (``out=``), where
  no one outside the replay can see them: values passed only between
  inlined ops. A value returned to the caller is always a fresh array.
* a gradient written into a parameter's ``.grad`` reuses last call's
  array only when nothing but the replay refers to it any more (its
  reference count says so); a gradient the caller kept, or a view of it,
  is never overwritten.
* a value that nothing reads is not computed: a training step that does
  not return its loss does not compute the loss, only its gradient.

Everything else stays as eager: the same NumPy calls in the same order on
the same values, so the results are eager's (the products use
``backend.dot``'s thread policy, chosen once per layer). Only host NumPy
arrays of one floating dtype are inlined; other ops, and every op of a
recording whose backward runs later (a block's output that needs a
gradient), keep calling their op objects.
"""

import sys

import numpy as np

from . import backend
from . import kernels as K


class Lowering:
    """Which ops of a recording (a ``hybrid._Session``) run inline, and the
    arrays they write into. ``outputs`` are the slots the call returns."""

    def __init__(self, s, outputs):
        self.s = s
        self.buffers = []        # (name, shape, dtype), made once per op set
        self.counted = []        # buffers that may be handed to a .grad
        self.consts = {}         # name -> value for the generated code
        self.ops = {}
        self.skipped = set()     # results not computed (nothing reads them)
        outputs = set(outputs)
        readers = {}
        for k, (op, ins, o, graphed, zero_d) in enumerate(s.steps):
            for i in ins:
                readers.setdefault(i, []).append(k)
            rule = _RULES.get(type(op))
            if rule is None:
                continue
            arrays = [s.keep[i] for i in ins]
            if rule.fits(op, arrays, s.keep[o]):
                self.ops[k] = rule(self, k, op, ins, o)
        self.producer = {step[2]: k for k, step in enumerate(s.steps)}
        # A value lives in a reused array when it is made and read only by
        # inlined ops, and not returned.
        self.private = {
            self.ops[k].o for k in self.ops
            if self.ops[k].o not in outputs
            and all(r in self.ops for r in readers.get(self.ops[k].o, ()))}
        self.unread = {o for o in self.private if not readers.get(o)}

    # -- for the rules ----------------------------------------------------------
    def buffer(self, shape, dtype, counted=False):
        name = f"B{len(self.buffers)}"
        self.buffers.append((name, tuple(shape), np.dtype(dtype)))
        if counted:
            self.counted.append(name)
        return name

    def const(self, value):
        name = f"K{len(self.consts)}"
        self.consts[name] = value
        return name

    def result(self, slot):
        """``(name, out)`` for an op's result in ``slot``: ``out`` is the
        array to write into, or None for a fresh one."""
        if slot in self.private:
            a = self.s.keep[slot]
            return f"v{slot}", self.buffer(a.shape, a.dtype)
        return f"v{slot}", None

    def grad_target(self, slot):
        """Where the gradient of input ``slot`` goes: ``(lines, out)``."""
        a = self.s.keep[slot]
        kind = self.s.kinds[slot]
        if kind in ("leaf", "arg"):          # handed to a .grad: counted
            b = self.buffer(a.shape, a.dtype, counted=True)
            return [f"    if rc({b}) > RC: {b} = empty_like({b})"], b
        producer = self.producer.get(slot)
        if producer in self.ops:           # read only by an inlined backward
            return [], self.buffer(a.shape, a.dtype)
        return [], None

    # -- for hybrid._generate -------------------------------------------------------
    def forward(self, k, names):
        """Lines for op ``k``'s forward on ``names``, or None."""
        rule = self.ops.get(k)
        return None if rule is None else rule.forward(names)

    def backward(self, k, g, root_one):
        """``(lines, names)`` for op ``k``'s backward of gradient ``g``
        (one name per input, None where no gradient is needed), or None.
        ``root_one``: ``g`` is the ones that ``backward()`` starts from."""
        rule = self.ops.get(k)
        return None if rule is None else rule.backward(g, root_one)

    def leaves(self):
        """Slots of the leaves (parameters, captured tensors) that inlined
        ops read."""
        return {i for rule in self.ops.values() for i in rule.ins
                if self.s.kinds[i] == "leaf"}

    def reads_value(self, slot):
        """Whether the array of ``slot`` exists at run time."""
        return slot not in self.unread

    def make_lines(self):
        """Lines for ``make``: the buffers and the reference count of one
        that nothing else holds."""
        out = [f"    {name} = empty({shape!r}, {dtype.str!r})"
               for name, shape, dtype in self.buffers]
        if self.counted:
            out.append(f"    RC = rc({self.counted[0]})")
        return out

    def namespace(self):
        ns = dict(self.consts)
        ns.update(empty=np.empty, empty_like=np.empty_like, rc=sys.getrefcount,
                  dot=np.dot, dot_1thread=backend.dot_one_thread,
                  add=np.add, subtract=np.subtract,
                  multiply=np.multiply, divide=np.divide, maximum=np.maximum,
                  greater=np.greater, exp=np.exp, log=np.log,
                  total=np.add.reduce, top=np.maximum.reduce,
                  least=np.minimum.reduce, as_array=_as_array)
        return ns


def _as_array(x, like):
    """``x`` as an array where ``like`` is a NumPy array (NumPy gives
    scalars for 0-d results, which have no ``out=``)."""
    if type(x) is np.ndarray or not isinstance(like, np.ndarray):
        return x
    return np.asarray(x)


def _row_index(x, batch):
    """``arange(batch)`` on the device of ``x``, for a loss's fancy index
    (a constant of the recording: made once, never written)."""
    rows = backend.namespace_of(x).arange(batch)
    if type(rows) is np.ndarray:
        rows.flags.writeable = False
    return rows


def _host_float(arrays, dtype):
    return all(type(a) is np.ndarray and a.dtype == dtype for a in arrays) \
        and dtype.kind == "f"


class _Rule:
    def __init__(self, low, k, op, ins, o):
        self.low, self.k, self.ins, self.o = low, k, ins, o
        self.needs = getattr(op, "needs", ())   # set when recorded in a graph


class _Dense(_Rule):
    """``K.Linear`` with a 2-D input."""

    @staticmethod
    def fits(op, arrays, out):
        return arrays[0].ndim == 2 and _host_float(arrays + [out], out.dtype)

    def forward(self, names):
        self.x, self.w = names[0], names[1]
        x, w = (self.low.s.keep[i] for i in self.ins[:2])
        # Every product of this layer (forward and both gradients) does
        # the same work, so one choice of thread policy holds for all.
        one = backend.dot_for(x.shape, w.T.shape) is not np.dot
        self.dot = "dot_1thread" if one else "dot"
        v, out = self.low.result(self.o)
        lines = [f"    {v} = {self.dot}({self.x}, {self.w}.T"
                 f"{'' if out is None else ', ' + out})"]
        if len(names) == 3:
            lines.append(f"    add({v}, {names[2]}, out={v})")
        return lines

    def backward(self, g, root_one):
        lines, names = [], []
        for j, need in enumerate(self.needs):
            if not need:
                names.append(None)
                continue
            check, out = self.low.grad_target(self.ins[j])
            lines += check
            name = f"d{self.k}_{j}"
            if j == 0:
                call = f"{self.dot}({g}, {self.w}{'' if out is None else ', ' + out})"
            elif j == 1:
                call = f"{self.dot}({g}.T, {self.x}{'' if out is None else ', ' + out})"
            else:
                call = f"total({g}, 0{'' if out is None else ', out=' + out})"
            lines.append(f"    {name} = {call}")
            names.append(name)
        return lines, names


class _ReLU(_Rule):
    """``K.ReLU``: ``max(a, 0)``; its gradient passes where ``a > 0``."""

    @staticmethod
    def fits(op, arrays, out):
        return _host_float(arrays + [out], out.dtype)

    def forward(self, names):
        self.a = names[0]
        v, out = self.low.result(self.o)
        return [f"    {v} = maximum({self.a}, 0"
                f"{'' if out is None else ', out=' + out})"]

    def backward(self, g, root_one):
        if not self.needs[0]:
            return [], [None]
        a = self.low.s.keep[self.ins[0]]
        mask = self.low.buffer(a.shape, bool)
        check, out = self.low.grad_target(self.ins[0])
        name = f"d{self.k}_0"
        return check + [f"    {name} = multiply({g}, greater({self.a}, 0, "
                        f"out={mask}){'' if out is None else ', out=' + out})"]\
            , [name]


class _CrossEntropy(_Rule):
    """``K.CrossEntropy`` of 2-D logits and integer labels."""

    @staticmethod
    def fits(op, arrays, out):
        x, labels = arrays
        return (x.ndim == 2 and type(labels) is np.ndarray
                and labels.dtype.kind in "iu" and labels.ndim == 1
                and _host_float([x, out], x.dtype))

    def forward(self, names):
        low, k = self.low, self.k
        x, self.labels = names
        xa = low.s.keep[self.ins[0]]
        batch = xa.shape[0]
        col = (batch, 1)
        self.rows = low.const(_row_index(xa, batch))
        self.batch = max(batch, 1)
        self.dtype = xa.dtype
        top_, self.shifted = low.buffer(col, xa.dtype), low.buffer(xa.shape, xa.dtype)
        self.e, self.total = low.buffer(xa.shape, xa.dtype), low.buffer(col, xa.dtype)
        lines = []
        if batch and low.s.keep[self.ins[1]].dtype.kind == "i":
            lines.append(f"    if least({self.labels}) < 0: "
                         f"raise IndexError('negative class label')")
        lines += [f"    top({x}, 1, keepdims=True, out={top_})",
                  f"    subtract({x}, {top_}, out={self.shifted})",
                  f"    exp({self.shifted}, out={self.e})",
                  f"    total({self.e}, 1, keepdims=True, out={self.total})"]
        if low.reads_value(self.o):
            n = low.const(xa.dtype.type(self.batch))
            lines.append(
                f"    v{self.o} = as_array((total(log({self.total}), None) - "
                f"total({self.shifted}[{self.rows}, {self.labels}], None)) / "
                f"{n}, {x})")
        else:
            low.skipped.add(self.o)
        return lines

    def backward(self, g, root_one):
        if not self.needs[0]:
            return [], [None, None]
        low = self.low
        xa = low.s.keep[self.ins[0]]
        check, out = low.grad_target(self.ins[0])
        if root_one:        # what backward() starts from, divided as eager does
            scale = low.const(np.asarray(1, self.dtype) / self.batch)
        else:
            scale = f"({g} / {self.batch})"
        name = f"d{self.k}_0"
        into = "" if out is None else f", out={out}"
        return check + [
            f"    {name} = divide({self.e}, {self.total}{into})",
            f"    {name}[{self.rows}, {self.labels}] -= 1",
            f"    multiply({name}, {scale}, out={name})"], [name, None]


_RULES = {K.Linear: _Dense, K.ReLU: _ReLU, K.CrossEntropy: _CrossEntropy}
