"""Reductions (sum, mean, max, min over axes) and the queries along an
axis that have no gradient (argmax, argmin, all, any)."""

from .. import backend
from .base import Op, as_array, fast_sum


# ---- reductions ------------------------------------------------------------------
class _Reduction(Op):
    """Shared constants of the reductions: ``axis`` (None for all axes, or
    a sorted tuple of non-negative axes) and ``keepdims``."""
    __slots__ = ("axis", "keepdims", "in_shape", "kept_shape")

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def _shape_out(self, kept):
        """The output from the reduced array ``kept`` (axes kept as 1)."""
        self.kept_shape = kept.shape
        if self.keepdims:
            return kept
        if self.axis is None:
            return kept.reshape(())
        return kept.reshape(tuple(n for i, n in enumerate(kept.shape)
                                  if i not in self.axis))


class Sum(_Reduction):
    """Sum over ``axis``."""
    __slots__ = ()

    def forward(self, x):
        self.in_shape = x.shape
        return self._shape_out(fast_sum(x, self.axis, True))

    def backward(self, g):
        full = backend.namespace_of(g).empty(self.in_shape, g.dtype)
        full[...] = g.reshape(self.kept_shape)
        return (full,)


class Mean(_Reduction):
    """Mean over ``axis``."""
    __slots__ = ("count",)

    def forward(self, x):
        self.in_shape = x.shape
        kept = x.mean(axis=self.axis, keepdims=True)
        self.count = x.size // max(kept.size, 1)
        return self._shape_out(as_array(kept, x))

    def backward(self, g):
        full = backend.namespace_of(g).empty(self.in_shape, g.dtype)
        full[...] = g.reshape(self.kept_shape) / self.count
        return (full,)


class _Extreme(_Reduction):
    """Max or min over ``axis``; tied extremes share the gradient equally."""
    __slots__ = ("x", "kept")
    saves = (0,)
    saves_output = True          # the output is a view of ``kept``
    reduce = None

    def forward(self, x):
        self.x = x
        self.in_shape = x.shape
        self.kept = as_array(type(self).reduce(x, axis=self.axis, keepdims=True), x)
        return self._shape_out(self.kept)

    def backward(self, g):
        mask = self.x == self.kept
        count = fast_sum(mask, self.axis, True).astype(g.dtype)
        return (mask * (g.reshape(self.kept_shape) / count),)


class Max(_Extreme):
    """Maximum over ``axis``."""
    __slots__ = ()
    reduce = staticmethod(lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims))


class Min(_Extreme):
    """Minimum over ``axis``."""
    __slots__ = ()
    reduce = staticmethod(lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims))


# ---- no gradient: queries -----------------------------------------------------------
class ArgMax(Op):
    """Index of the maximum along ``axis`` (of the flattened array when
    None); the first one where several are equal."""
    __slots__ = ("axis",)

    def __init__(self, axis):
        self.axis = axis

    def forward(self, a):
        return a.argmax(axis=self.axis)


class ArgMin(ArgMax):
    """Index of the minimum, as ``ArgMax``."""
    __slots__ = ()

    def forward(self, a):
        return a.argmin(axis=self.axis)


class All(Op):
    """Whether every element is true, over ``axis`` (None for all, or a
    sorted tuple of non-negative axes), keeping those axes as 1 when
    ``keepdims``."""
    __slots__ = ("axis", "keepdims")

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        return as_array(a.all(axis=self.axis, keepdims=self.keepdims), a)


class Any(All):
    """Whether some element is true, as ``All``."""
    __slots__ = ()

    def forward(self, a):
        return as_array(a.any(axis=self.axis, keepdims=self.keepdims), a)
