"""Elementwise ops: two tensors (with broadcasting), a tensor and a
Python number, one tensor; the softmax family along one axis, dtype
casts, and comparisons (which have no gradient)."""

import operator

import numpy as np

from .base import (Op, Product, ShapeAndDtype, as_array, fast_max, fast_sum,
                   grad_like)


class SavesOutput(Op):
    """An op whose ``backward`` reads its output, which ``forward`` keeps
    as ``self.out``: ``fn(a)`` for a one-input ``fn``, unless the subclass
    has a ``forward`` of its own."""
    __slots__ = ("out",)
    saves_output = True
    fn = None

    def forward(self, a):
        out = self.out = self.fn(a)
        return out


def _negated(self, g):
    """The ``backward`` of ``-a`` and ``c - a``."""
    return (-g,)


# ---- elementwise, two tensors (with broadcasting) ----------------------------
class Add(Op):
    """``a + b``."""
    __slots__ = ("a", "b")

    def forward(self, a, b):
        self.a, self.b = a, b
        return a + b

    def backward(self, g):
        need_a, need_b = self.needs
        return (grad_like(g, self.a) if need_a else None,
                grad_like(g, self.b) if need_b else None)


class Sub(Op):
    """``a - b``."""
    __slots__ = ("a", "b")

    def forward(self, a, b):
        self.a, self.b = a, b
        return a - b

    def backward(self, g):
        need_a, need_b = self.needs
        return (grad_like(g, self.a) if need_a else None,
                grad_like(-g, self.b) if need_b else None)


class Mul(Product):
    """``a * b``."""
    __slots__ = ()

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        need_a, need_b = self.needs
        a, b = self.a, self.b
        return (grad_like(g * b, a) if need_a else None,
                grad_like(g * a, b) if need_b else None)


class Div(Op):
    """``a / b``."""
    __slots__ = ("a", "b")
    saves = (0, 1)

    def saved(self):
        return ((0, 1) if self.needs[1] else (1,)), False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        need_a, need_b = self.needs
        a, b = self.a, self.b
        return (grad_like(g / b, a) if need_a else None,
                grad_like(-g * a / (b * b), b) if need_b else None)


class Pow(SavesOutput):
    """``a ** b``, both tensors."""
    __slots__ = ("a", "b")
    saves = (0, 1)

    def saved(self):
        return self.saves, bool(self.needs[1])

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        need_a, need_b = self.needs
        a, b = self.a, self.b
        return (grad_like(g * b * a ** (b - 1), a) if need_a else None,
                grad_like(g * self.out * np.log(a), b) if need_b else None)


class _Choice(Op):
    """``choose(a, b)``, elementwise: ``a`` or ``b`` at each place. The
    gradient goes to the one chosen, to ``a`` on ties (``a_wins(a, b)``
    says where ``a`` was chosen)."""
    __slots__ = ("a", "b")
    saves = (0, 1)
    choose = a_wins = None

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.choose(a, b)

    def backward(self, g):
        need_a, need_b = self.needs
        first = self.a_wins(self.a, self.b)
        return (grad_like(g * first, self.a) if need_a else None,
                grad_like(g * ~first, self.b) if need_b else None)


class Maximum(_Choice):
    """Elementwise maximum; ties send the gradient to ``a``."""
    __slots__ = ()
    choose, a_wins = np.maximum, np.greater_equal


class Minimum(_Choice):
    """Elementwise minimum; ties send the gradient to ``a``."""
    __slots__ = ()
    choose, a_wins = np.minimum, np.less_equal


class Where(Op):
    """``a`` where ``cond`` holds, else ``b`` (all three broadcast)."""
    __slots__ = ("cond", "a", "b")
    saves = (0,)

    def forward(self, cond, a, b):
        # Only the shapes and dtypes of a and b are needed later.
        self.cond, self.a, self.b = cond, ShapeAndDtype(a), ShapeAndDtype(b)
        return np.where(cond, a, b)

    def backward(self, g):
        _, need_a, need_b = self.needs
        zero = g.dtype.type(0)
        return (None,
                grad_like(np.where(self.cond, g, zero), self.a) if need_a else None,
                grad_like(np.where(self.cond, zero, g), self.b) if need_b else None)


# ---- elementwise, a tensor and a Python scalar --------------------------------
class ScalarOp(Op):
    """An op of one tensor and a constant ``c``: a Python number, which
    NumPy treats as "weak", so it never changes the tensor's dtype."""
    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c


class RScalarSavesOutput(ScalarOp):
    """``fn(c, a)``, an op of a constant ``c`` and one tensor whose
    ``backward`` reads its output, kept as ``self.out``."""
    __slots__ = ("out",)
    saves_output = True
    fn = None

    def forward(self, a):
        out = self.out = self.fn(self.c, a)
        return out


class AddScalar(ScalarOp):
    """``a + c``."""
    __slots__ = ()

    def forward(self, a):
        return a + self.c

    def backward(self, g):
        return (g,)


class MulScalar(ScalarOp):
    """``a * c``."""
    __slots__ = ()

    def forward(self, a):
        return a * self.c

    def backward(self, g):
        return (g * self.c,)


class DivScalar(ScalarOp):
    """``a / c``."""
    __slots__ = ()

    def forward(self, a):
        return a / self.c

    def backward(self, g):
        return (g / self.c,)


class RSubScalar(ScalarOp):
    """``c - a``."""
    __slots__ = ()

    def forward(self, a):
        return self.c - a

    backward = _negated


class RDivScalar(RScalarSavesOutput):
    """``c / a``."""
    __slots__ = ()
    fn = operator.truediv

    def backward(self, g):
        out, c = self.out, self.c
        if c == 0:                      # c / a is 0 for every a
            return (g * 0,)
        return (-g * (out * out) / c,)


class PowScalar(ScalarOp):
    """``a ** c``."""
    __slots__ = ("a",)
    saves = (0,)

    def forward(self, a):
        self.a = a
        return a ** self.c

    def backward(self, g):
        c = self.c
        if c == 2:
            return (g * (2 * self.a),)
        return (g * (c * self.a ** (c - 1)),)


class RPowScalar(RScalarSavesOutput):
    """``c ** a``."""
    __slots__ = ()
    fn = operator.pow

    def backward(self, g):
        # a Python float, so that a float32 gradient stays float32
        return (g * self.out * float(np.log(self.c)),)


# ---- elementwise, one tensor ------------------------------------------------------
class Neg(Op):
    """``-a``."""
    __slots__ = ()

    def forward(self, a):
        return -a

    backward = _negated


class Exp(SavesOutput):
    """Elementwise exponential."""
    __slots__ = ()
    fn = np.exp

    def backward(self, g):
        return (g * self.out,)


class Log(Op):
    """Elementwise natural logarithm."""
    __slots__ = ("a",)
    saves = (0,)

    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return (g / self.a,)


class Sqrt(SavesOutput):
    """Elementwise square root."""
    __slots__ = ()
    fn = np.sqrt

    def backward(self, g):
        return (g / (2 * self.out),)


class Abs(Op):
    """Elementwise absolute value (gradient 0 at 0)."""
    __slots__ = ("a",)
    saves = (0,)

    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return (g * np.sign(self.a),)


class ReLU(Op):
    """``max(a, 0)`` elementwise; the gradient passes where ``a > 0``.

    It saves its input, where PyTorch saves its output: the seed's Gluon
    ``FixedHiddenMLP`` halves the output of a ReLU layer in place
    (``X /= 2``) before its backward pass, which the mask of the input
    allows."""
    __slots__ = ("a",)
    saves = (0,)

    def forward(self, a):
        self.a = a
        return np.maximum(a, 0)

    def backward(self, g):
        return (g * (self.a > 0),)


class Sigmoid(SavesOutput):
    """The logistic function ``1 / (1 + exp(-a))``, computed stably as
    ``(1 + tanh(a / 2)) / 2``."""
    __slots__ = ()

    def forward(self, a):
        out = as_array(np.tanh(a * 0.5), a)
        out *= 0.5
        out += 0.5
        self.out = out
        return out

    def backward(self, g):
        out = self.out
        return (g * out * (1 - out),)


class Tanh(SavesOutput):
    """Elementwise hyperbolic tangent."""
    __slots__ = ()
    fn = np.tanh

    def backward(self, g):
        out = self.out
        return (g * (1 - out * out),)


class Softmax(SavesOutput):
    """Softmax along ``axis``: exponentials normalised to sum to 1."""
    __slots__ = ("axis",)

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        ax = self.axis
        e = np.exp(x - fast_max(x, ax, True))
        self.out = e / fast_sum(e, ax, True)
        return self.out

    def backward(self, g):
        out = self.out
        return (out * (g - fast_sum(g * out, self.axis, True)),)


class LogSoftmax(SavesOutput):
    """``log(softmax(x))`` along ``axis``, computed without overflow."""
    __slots__ = ("axis",)

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        ax = self.axis
        shifted = x - fast_max(x, ax, True)
        self.out = shifted - np.log(fast_sum(np.exp(shifted), ax, True))
        return self.out

    def backward(self, g):
        return (g - np.exp(self.out) * fast_sum(g, self.axis, True),)


class AsType(Op):
    """A copy with another floating dtype; the gradient goes back in the
    input's dtype."""
    __slots__ = ("dtype_out", "dtype_in")

    def __init__(self, dtype):
        self.dtype_out = dtype

    def forward(self, a):
        self.dtype_in = a.dtype
        return a.astype(self.dtype_out)

    def backward(self, g):
        return (g.astype(self.dtype_in),)


# ---- no gradient: comparisons and queries -------------------------------------------
# These give boolean or integer arrays, which are never recorded for
# gradients; they are ops all the same, so that whoever watches ``apply``
# sees every array a computation makes.
class Compare(Op):
    """``fn(a, b)`` for a comparison ufunc ``fn``, or ``fn(a, c)`` for a
    constant number ``c``."""
    __slots__ = ("fn", "c")

    def __init__(self, fn, c=None):
        self.fn, self.c = fn, c

    def forward(self, a, b=None):
        return self.fn(a, self.c if b is None else b)
