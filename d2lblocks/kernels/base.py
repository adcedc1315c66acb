"""The base class of every op, and the helpers that several families of
ops share: summing a gradient back to a broadcast input's shape, cheap
reductions on the host, and reading axes."""

import numbers

import numpy as np

from .. import backend

__all__ = ["Op", "Product", "forward_on_device", "unbroadcast",
           "normalize_axes", "crossed", "grad_like", "ShapeAndDtype", "fast_sum", "fast_max",
           "as_array"]


class Op:
    """Base class of every op, and the node of the graph.

    Slots filled by ``tensor.apply`` when the op is recorded:

    * ``needs``: one bool per input: does it want a gradient?
    * ``parents``: one entry per input: the op that made it, or the input
      tensor itself when it is a leaf.
    * ``seq``: a number that grows with every recorded op, so parents are
      always older than their children.
    * ``shape``, ``dtype``: of the output, to check incoming gradients.
    * ``grad``: the output's gradient, gathered during ``backward()``.
    * ``vc``: the version counter of the output's memory, once a view,
      ``detach()`` or an in-place change has made one (see
      ``views.Storage``).

    Each op names what it saves for ``backward``, as ``ctx.save_for_backward``
    does in minitorch: the class attributes ``saves`` (indices of the inputs
    whose values ``backward`` reads) and ``saves_output``, or ``saved()``
    where that depends on which inputs need a gradient. The backward sweep
    checks exactly these against in-place changes; an array kept only for
    its shape is not saved (nobody can change a shape in place).
    """

    __slots__ = ("needs", "parents", "seq", "shape", "dtype", "grad", "vc")
    saves = ()
    saves_output = False

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, g):
        raise NotImplementedError

    def saved(self):
        """``(input indices, output?)`` whose values ``backward`` reads,
        given ``self.needs``: the tensors an in-place change must not
        touch before ``backward()``. The same sets as PyTorch's."""
        return self.saves, self.saves_output

    @property
    def name(self):
        """The op's name for error messages, e.g. ``Mul``."""
        return type(self).__name__

    def __repr__(self):
        return f"<{self.name} op>"


class Product(Op):
    """A product of two inputs ``a`` and ``b`` (``Mul``, ``MatMul``): each
    input's gradient reads the other, so ``forward`` keeps both."""
    __slots__ = ("a", "b")
    saves = (0, 1)

    def saved(self):
        return crossed(self.needs), False


def forward_on_device(op, *arrays):
    """``op.forward(*arrays)`` with the device of the first GPU array among
    them entered (as it is, for host arrays), so that what the op makes
    lands there."""
    with backend.on_array(*arrays):
        return op.forward(*arrays)


# ---- helpers -------------------------------------------------------------------
def crossed(needs):
    """The saved inputs of a product of two: each input's gradient reads
    the other input."""
    need_a, need_b = needs
    return ((1,) if need_a else ()) + ((0,) if need_b else ())


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the gradient of a broadcast.

    When ``x`` of shape ``shape`` was broadcast to ``grad.shape`` in the
    forward pass, each element of ``x`` was used many times, so its gradient
    is the sum over the copies: over the leading axes that broadcasting
    added, and over each axis where ``x`` had length 1.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape)
        if n == 1 and grad.shape[lead + i] != 1)
    return fast_sum(grad, axes, True).reshape(shape)


def grad_like(g, x):
    """``g`` summed down to the shape of array ``x`` and cast to its dtype."""
    if g.shape != x.shape:
        g = unbroadcast(g, x.shape)
    if g.dtype != x.dtype:
        g = g.astype(x.dtype)
    return g


class ShapeAndDtype:
    """The shape and dtype of an array, kept instead of the array by an op
    whose backward needs no more of it (the memory can then be freed)."""
    __slots__ = ("shape", "dtype")

    def __init__(self, x):
        self.shape, self.dtype = x.shape, x.dtype


def fast_sum(x, axis=None, keepdims=False):
    """``x.sum(...)`` without NumPy's Python-level wrapper on the host (the
    wrapper costs more than the sum itself for small arrays)."""
    if isinstance(x, np.ndarray):
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return x.sum(axis=axis, keepdims=keepdims)


def fast_max(x, axis=None, keepdims=False):
    """``x.max(...)``, likewise."""
    if isinstance(x, np.ndarray):
        return np.maximum.reduce(x, axis=axis, keepdims=keepdims)
    return x.max(axis=axis, keepdims=keepdims)


def as_array(x, like):
    """Make sure a result is an array: NumPy turns 0-d results into
    scalars, which have no ``out=`` and no in-place operators."""
    if type(x) is np.ndarray or not isinstance(like, np.ndarray):
        return x
    return np.asarray(x)


def normalize_axes(axis, ndim, what="axis"):
    """``axis`` (None, an int or a sequence; negatives count from the end)
    as a sorted tuple of non-negative axes of an array with ``ndim``
    dimensions. None means every axis. A 0-d array has no axis to work
    along, so 0 and -1 are accepted for it (as in PyTorch) and give ().

    Raises:
        ValueError: an axis is out of range or repeated.
        TypeError: an axis is not an int.
    """
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    bound = max(ndim, 1)
    out = []
    for ax in axes:
        if not isinstance(ax, numbers.Integral) or isinstance(ax, bool):
            raise TypeError(f"expected an int {what}, got {ax!r}")
        if not -bound <= ax < bound:
            raise ValueError(f"{what} {ax} is out of range for a tensor with "
                             f"{ndim} dimension(s) (expected {-bound} to "
                             f"{bound - 1})")
        out.append(int(ax) % bound)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated {what} in {axis!r}")
    return tuple(sorted(out)) if ndim else ()


