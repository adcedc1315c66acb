"""Shapes and indexing: reshape, transpose, ``x[index]``, joining
tensors; and the two nodes of in-place changes, ``Assign`` (a write) and
``ViewChain`` (a view read again from its changed base)."""

import numbers

import numpy as np

from .. import backend
from .base import Op, ShapeAndDtype, as_array, grad_like


# ---- shapes -------------------------------------------------------------------------
class Reshape(Op):
    """The same elements in shape ``shape``."""
    __slots__ = ("shape_out", "in_shape")

    def __init__(self, shape):
        self.shape_out = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape_out)

    def backward(self, g):
        return (g.reshape(self.in_shape),)


class Transpose(Op):
    """Axes permuted by ``perm`` (non-negative), as ``np.transpose``."""
    __slots__ = ("perm", "inverse")

    def __init__(self, perm):
        self.perm = perm
        self.inverse = tuple(sorted(range(len(perm)), key=perm.__getitem__))

    def forward(self, x):
        return x.transpose(self.perm)

    def backward(self, g):
        return (g.transpose(self.inverse),)


class GetItem(Op):
    """``x[index]``: slicing, integer and boolean indexing. Index arrays
    are constants of the op."""
    __slots__ = ("index", "basic", "x")

    def __init__(self, index):
        self.index = index
        parts = index if isinstance(index, tuple) else (index,)
        self.basic = all(p is None or p is Ellipsis or isinstance(p, slice)
                         or (isinstance(p, numbers.Integral)
                             and not isinstance(p, bool))
                         for p in parts)
        if self.basic and not any(p is Ellipsis for p in parts):
            # The same selection, but a view even when every axis gets an
            # integer (NumPy would copy out a scalar): x[0] shares memory
            # with x, as in PyTorch.
            self.index = parts + (Ellipsis,)

    def forward(self, x):
        self.x = ShapeAndDtype(x)               # only its shape is needed later
        return as_array(x[self.index], x)

    def backward(self, g):
        full = backend.namespace_of(g).zeros(self.x.shape, g.dtype)
        if self.basic:
            full[self.index] = g
        else:
            backend.scatter_add(full, self.index, g)
        return (full,)


def view_of(x, steps):
    """The array that the view ops ``steps`` (pairs ``(op class,
    constant)``, as ``tensor`` keeps them for a view) make of ``x``."""
    for cls, const in steps:
        x = cls(const).forward(x)
    return x


class Assign(Op):
    """An in-place write, as a node: ``dst`` (the array of a base tensor)
    gets ``src`` written into the part that ``steps`` (the view ops from
    the base to the tensor written, see ``view_of``) and then ``index``
    (None for all of it) select; ``forward`` returns ``dst`` itself.

    The gradient of the new base goes to ``src`` for the part written,
    and to the old base for the rest."""
    __slots__ = ("steps", "index", "src_like")

    def __init__(self, steps, index=None):
        self.steps, self.index = steps, index

    def forward(self, dst, src):
        region = view_of(dst, self.steps)
        if self.index is None:
            region[...] = src
        else:
            region[self.index] = src
        self.src_like = ShapeAndDtype(src)
        return dst

    def backward(self, g):
        need_dst, need_src = self.needs
        if isinstance(g, np.generic):       # a 0-d gradient made by NumPy
            g = np.asarray(g)
        if not self.steps and self.index is None:     # all of it written
            return None, (grad_like(g, self.src_like) if need_src else None)
        # Which elements were written, as flat positions in the base.
        where = view_of(backend.namespace_of(g).arange(g.size).reshape(g.shape),
                        self.steps)
        if self.index is not None:
            where = where[self.index]
        gs = gd = None
        if need_src:
            gs = grad_like(as_array(g.reshape(-1)[where], g), self.src_like)
        if need_dst:
            gd = g.copy()
            gd.reshape(-1)[where] = 0
        return gd, gs


class ViewChain(Op):
    """A view rebuilt from its base, after the base was changed in place
    while the graph was recorded: the view ops ``steps`` in a row (see
    ``view_of``)."""
    __slots__ = ("steps", "ops")

    def __init__(self, steps):
        self.steps = steps

    def forward(self, x):
        ops = []
        for cls, const in self.steps:
            op = cls(const)
            x = op.forward(x)
            ops.append(op)
        self.ops = ops
        return x

    def backward(self, g):
        for op in reversed(self.ops):
            g = op.backward(g)[0]
        return (g,)


class Concat(Op):
    """Inputs joined along an existing ``axis`` (non-negative)."""
    __slots__ = ("axis", "cuts")

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *arrays):
        ax = self.axis
        self.cuts = np.cumsum([x.shape[ax] for x in arrays])[:-1].tolist()
        return np.concatenate(arrays, axis=ax)

    def backward(self, g):
        parts = np.split(g, self.cuts, axis=self.axis)
        return tuple(p if n else None for p, n in zip(parts, self.needs))


class Stack(Op):
    """Same-shaped inputs joined along a new ``axis`` (non-negative)."""
    __slots__ = ("axis",)

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *arrays):
        return np.stack(arrays, axis=self.axis)

    def backward(self, g):
        ax, n = self.axis, len(self.needs)
        parts = [g[(slice(None),) * ax + (i,)] for i in range(n)]
        return tuple(as_array(p, g) if need else None
                     for p, need in zip(parts, self.needs))
