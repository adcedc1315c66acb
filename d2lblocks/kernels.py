"""Every differentiable op, as one small class: forward beside backward.

An op works on raw arrays (NumPy, or CuPy: CuPy arrays implement NumPy's
dispatch protocols, so the same code runs on a GPU) and knows nothing of
tensors or graphs:

* ``forward(self, *arrays)`` computes the output array, and keeps on
  ``self`` whatever ``backward`` will need;
* ``backward(self, g)`` maps the gradient ``g`` of the output to a tuple
  with one gradient per input, in the input's shape and dtype, or ``None``
  for an input that needs none (``self.needs[i]`` is false). Computing no
  array for such inputs is where much of the speed comes from.

Constants (an axis, a shape, a Python scalar) are given to the op's
constructor and never change. So an op can be run again on new arrays of
the same shapes, ``forward`` then ``backward``, with no tensor in sight.

``tensor.apply(op, *inputs)`` is what runs an op on tensors and records it
in the graph. It fills the slots of ``Op`` below; an op's own code never
touches them, apart from reading ``needs`` in ``backward``.
"""

import numbers

import numpy as np

from . import backend

__all__ = ["Op", "unbroadcast", "normalize_axes"]

_builtin_max = max


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
      ``tensor._Storage``).

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


# ---- helpers -------------------------------------------------------------------
def _crossed(needs):
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
    return _rsum(grad, axes, True).reshape(shape)


def _like(g, x):
    """``g`` summed down to the shape of array ``x`` and cast to its dtype."""
    if g.shape != x.shape:
        g = unbroadcast(g, x.shape)
    if g.dtype != x.dtype:
        g = g.astype(x.dtype)
    return g


class _Like:
    """The shape and dtype of an array, kept instead of the array by an op
    whose backward needs no more of it (the memory can then be freed)."""
    __slots__ = ("shape", "dtype")

    def __init__(self, x):
        self.shape, self.dtype = x.shape, x.dtype


def _rsum(x, axis=None, keepdims=False):
    """``x.sum(...)`` without NumPy's Python-level wrapper on the host (the
    wrapper costs more than the sum itself for small arrays)."""
    if isinstance(x, np.ndarray):
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return x.sum(axis=axis, keepdims=keepdims)


def _rmax(x, axis=None, keepdims=False):
    """``x.max(...)``, likewise."""
    if isinstance(x, np.ndarray):
        return np.maximum.reduce(x, axis=axis, keepdims=keepdims)
    return x.max(axis=axis, keepdims=keepdims)


def _array(x, like):
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
    bound = _builtin_max(ndim, 1)
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


# ---- elementwise, two tensors (with broadcasting) ----------------------------
class Add(Op):
    """``a + b``."""
    __slots__ = ("a", "b")

    def forward(self, a, b):
        self.a, self.b = a, b
        return a + b

    def backward(self, g):
        need_a, need_b = self.needs
        return (_like(g, self.a) if need_a else None,
                _like(g, self.b) if need_b else None)


class Sub(Op):
    """``a - b``."""
    __slots__ = ("a", "b")

    def forward(self, a, b):
        self.a, self.b = a, b
        return a - b

    def backward(self, g):
        need_a, need_b = self.needs
        return (_like(g, self.a) if need_a else None,
                _like(-g, self.b) if need_b else None)


class Mul(Op):
    """``a * b``."""
    __slots__ = ("a", "b")
    saves = (0, 1)

    def saved(self):
        return _crossed(self.needs), False

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        need_a, need_b = self.needs
        a, b = self.a, self.b
        return (_like(g * b, a) if need_a else None,
                _like(g * a, b) if need_b else None)


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
        return (_like(g / b, a) if need_a else None,
                _like(-g * a / (b * b), b) if need_b else None)


class Pow(Op):
    """``a ** b``, both tensors."""
    __slots__ = ("a", "b", "out")
    saves = (0, 1)
    saves_output = True

    def saved(self):
        return self.saves, bool(self.needs[1])

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        need_a, need_b = self.needs
        a, b = self.a, self.b
        return (_like(g * b * a ** (b - 1), a) if need_a else None,
                _like(g * self.out * np.log(a), b) if need_b else None)


class Maximum(Op):
    """Elementwise maximum; ties send the gradient to ``a``."""
    __slots__ = ("a", "b")
    saves = (0, 1)

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.maximum(a, b)

    def backward(self, g):
        need_a, need_b = self.needs
        first = self.a >= self.b
        return (_like(g * first, self.a) if need_a else None,
                _like(g * ~first, self.b) if need_b else None)


class Minimum(Op):
    """Elementwise minimum; ties send the gradient to ``a``."""
    __slots__ = ("a", "b")
    saves = (0, 1)

    def forward(self, a, b):
        self.a, self.b = a, b
        return np.minimum(a, b)

    def backward(self, g):
        need_a, need_b = self.needs
        first = self.a <= self.b
        return (_like(g * first, self.a) if need_a else None,
                _like(g * ~first, self.b) if need_b else None)


class Where(Op):
    """``a`` where ``cond`` holds, else ``b`` (all three broadcast)."""
    __slots__ = ("cond", "a", "b")
    saves = (0,)

    def forward(self, cond, a, b):
        # Only the shapes and dtypes of a and b are needed later.
        self.cond, self.a, self.b = cond, _Like(a), _Like(b)
        return np.where(cond, a, b)

    def backward(self, g):
        _, need_a, need_b = self.needs
        zero = g.dtype.type(0)
        return (None,
                _like(np.where(self.cond, g, zero), self.a) if need_a else None,
                _like(np.where(self.cond, zero, g), self.b) if need_b else None)


# ---- elementwise, a tensor and a Python scalar --------------------------------
# The scalar is a constant of the op: a Python number, which NumPy treats as
# "weak", so it never changes the tensor's dtype.
class AddScalar(Op):
    """``a + c``."""
    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def forward(self, a):
        return a + self.c

    def backward(self, g):
        return (g,)


class MulScalar(Op):
    """``a * c``."""
    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def forward(self, a):
        return a * self.c

    def backward(self, g):
        return (g * self.c,)


class DivScalar(Op):
    """``a / c``."""
    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def forward(self, a):
        return a / self.c

    def backward(self, g):
        return (g / self.c,)


class RSubScalar(Op):
    """``c - a``."""
    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def forward(self, a):
        return self.c - a

    def backward(self, g):
        return (-g,)


class RDivScalar(Op):
    """``c / a``."""
    __slots__ = ("c", "out")
    saves_output = True

    def __init__(self, c):
        self.c = c

    def forward(self, a):
        self.out = self.c / a
        return self.out

    def backward(self, g):
        out, c = self.out, self.c
        if c == 0:                      # c / a is 0 for every a
            return (g * 0,)
        return (-g * (out * out) / c,)


class PowScalar(Op):
    """``a ** c``."""
    __slots__ = ("c", "a")
    saves = (0,)

    def __init__(self, c):
        self.c = c

    def forward(self, a):
        self.a = a
        return a ** self.c

    def backward(self, g):
        c = self.c
        if c == 2:
            return (g * (2 * self.a),)
        return (g * (c * self.a ** (c - 1)),)


class RPowScalar(Op):
    """``c ** a``."""
    __slots__ = ("c", "out")
    saves_output = True

    def __init__(self, c):
        self.c = c

    def forward(self, a):
        self.out = self.c ** a
        return self.out

    def backward(self, g):
        return (g * self.out * np.log(self.c),)


# ---- elementwise, one tensor ------------------------------------------------------
class Neg(Op):
    """``-a``."""
    __slots__ = ()

    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Exp(Op):
    """Elementwise exponential."""
    __slots__ = ("out",)
    saves_output = True

    def forward(self, a):
        self.out = np.exp(a)
        return self.out

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


class Sqrt(Op):
    """Elementwise square root."""
    __slots__ = ("out",)
    saves_output = True

    def forward(self, a):
        self.out = np.sqrt(a)
        return self.out

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


class Sigmoid(Op):
    """The logistic function ``1 / (1 + exp(-a))``, computed stably as
    ``(1 + tanh(a / 2)) / 2``."""
    __slots__ = ("out",)
    saves_output = True

    def forward(self, a):
        out = _array(np.tanh(a * 0.5), a)
        out *= 0.5
        out += 0.5
        self.out = out
        return out

    def backward(self, g):
        out = self.out
        return (g * out * (1 - out),)


class Tanh(Op):
    """Elementwise hyperbolic tangent."""
    __slots__ = ("out",)
    saves_output = True

    def forward(self, a):
        self.out = np.tanh(a)
        return self.out

    def backward(self, g):
        out = self.out
        return (g * (1 - out * out),)


class Softmax(Op):
    """Softmax along ``axis``: exponentials normalised to sum to 1."""
    __slots__ = ("axis", "out")
    saves_output = True

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        ax = self.axis
        e = np.exp(x - _rmax(x, ax, True))
        self.out = e / _rsum(e, ax, True)
        return self.out

    def backward(self, g):
        out = self.out
        return (out * (g - _rsum(g * out, self.axis, True)),)


class LogSoftmax(Op):
    """``log(softmax(x))`` along ``axis``, computed without overflow."""
    __slots__ = ("axis", "out")
    saves_output = True

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        ax = self.axis
        shifted = x - _rmax(x, ax, True)
        self.out = shifted - np.log(_rsum(np.exp(shifted), ax, True))
        return self.out

    def backward(self, g):
        return (g - np.exp(self.out) * _rsum(g, self.axis, True),)


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


# ---- losses ----------------------------------------------------------------------
class CrossEntropy(Op):
    """Mean softmax cross-entropy of logits (batch, classes) against integer
    labels (batch,), fused for speed and stability. The labels must lie in
    [0, classes); they get no gradient.

    The gradient with respect to the logits is ``(softmax - onehot) / batch``.
    """
    __slots__ = ("rows", "labels", "e", "total")
    saves = (1,)

    def forward(self, x, labels):
        batch = x.shape[0]
        # Labels outside [0, classes) are refused here, where a replayed
        # step (hybridize) checks them too. On the host, labels >= classes
        # fail at the fancy index below, and negative ones, which it would
        # count from the end, are checked. A GPU's fancy index checks
        # nothing (it wraps around), so both ends are checked there, with
        # one value read back.
        if batch:
            if type(labels) is np.ndarray:
                if labels.dtype.kind == "i" and np.minimum.reduce(labels) < 0:
                    raise IndexError("negative class label")
            else:
                _check_label_range(labels, x.shape[1])
        rows = self.rows = _row_index(x, batch)
        self.labels = labels
        shifted = x - _rmax(x, 1, True)
        self.e = np.exp(shifted)
        self.total = _rsum(self.e, 1, True)
        # mean over the batch of log(sum(exp)) - the label's shifted logit
        loss = _rsum(np.log(self.total)) - _rsum(shifted[rows, labels])
        return _array(loss / x.dtype.type(_builtin_max(batch, 1)), x)

    def backward(self, g):
        p = self.e / self.total
        p[self.rows, self.labels] -= 1
        p *= g / _builtin_max(len(self.rows), 1)
        return p, None


_ROWS = {}


def _row_index(x, batch):
    """``arange(batch)`` for the fancy index of a loss, made once per batch
    size on the host (read-only, so that sharing it is safe)."""
    if type(x) is not np.ndarray:
        return backend.namespace_of(x).arange(batch)
    rows = _ROWS.get(batch)
    if rows is None:
        if len(_ROWS) >= 64:
            _ROWS.clear()
        rows = _ROWS[batch] = np.arange(batch)
        rows.flags.writeable = False
    return rows


def _check_label_range(labels, classes):
    """IndexError unless every label of this GPU array lies in [0,
    classes): both ends are tested on the device and one value, whether
    any label is outside, is read back."""
    outside = labels >= classes
    if labels.dtype.kind == "i":
        outside |= labels < 0
    if outside.any():
        raise IndexError(f"a class label outside [0, {classes})")


class MSE(Op):
    """Mean squared error ``mean((pred - target) ** 2)`` of two arrays of one
    shape."""
    __slots__ = ("diff",)

    def forward(self, pred, target):
        diff = self.diff = pred - target
        return _array((diff * diff).mean(), pred).astype(pred.dtype, copy=False)

    def backward(self, g):
        need_p, need_t = self.needs
        d = self.diff * (g * (2.0 / _builtin_max(self.diff.size, 1)))
        return (d if need_p else None, -d if need_t else None)


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
        return self._shape_out(_rsum(x, self.axis, True))

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
        self.count = x.size // _builtin_max(kept.size, 1)
        return self._shape_out(_array(kept, x))

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
        self.kept = _array(type(self).reduce(x, axis=self.axis, keepdims=True), x)
        return self._shape_out(self.kept)

    def backward(self, g):
        mask = self.x == self.kept
        count = _rsum(mask, self.axis, True).astype(g.dtype)
        return (mask * (g.reshape(self.kept_shape) / count),)


class Max(_Extreme):
    """Maximum over ``axis``."""
    __slots__ = ()
    reduce = staticmethod(lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims))


class Min(_Extreme):
    """Minimum over ``axis``."""
    __slots__ = ()
    reduce = staticmethod(lambda x, axis, keepdims: x.min(axis=axis, keepdims=keepdims))


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
        self.x = _Like(x)               # only its shape is needed later
        return _array(x[self.index], x)

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
        self.src_like = _Like(src)
        return dst

    def backward(self, g):
        need_dst, need_src = self.needs
        if isinstance(g, np.generic):       # a 0-d gradient made by NumPy
            g = np.asarray(g)
        if not self.steps and self.index is None:     # all of it written
            return None, (_like(g, self.src_like) if need_src else None)
        # Which elements were written, as flat positions in the base.
        where = view_of(backend.namespace_of(g).arange(g.size).reshape(g.shape),
                        self.steps)
        if self.index is not None:
            where = where[self.index]
        gs = gd = None
        if need_src:
            gs = _like(_array(g.reshape(-1)[where], g), self.src_like)
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
        return tuple(_array(p, g) if need else None
                     for p, need in zip(parts, self.needs))


# ---- products ------------------------------------------------------------------------
class MatMul(Op):
    """``a @ b`` with NumPy's rules for 1-D and batched operands.

    Two 2-D operands go through ``dot``: ``matmul`` has no BLAS path when
    the inner dimension is 1 (the weight gradient at batch size 1).
    """
    __slots__ = ("a", "b")
    saves = (0, 1)

    def saved(self):
        return _crossed(self.needs), False

    def forward(self, a, b):
        self.a, self.b = a, b
        if a.ndim == 2 and b.ndim == 2:
            return backend.dot(a, b)
        return _array(np.matmul(a, b), a)

    def backward(self, g):
        need_a, need_b = self.needs
        a, b = self.a, self.b
        if a.ndim == 2 and b.ndim == 2:
            return (backend.dot(g, b.T) if need_a else None,
                    backend.dot(a.T, g) if need_b else None)
        if a.ndim == 1 and b.ndim == 1:            # a dot product: g is 0-d
            return (g * b if need_a else None), (g * a if need_b else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        ga = gb = None
        if need_a:
            ga = unbroadcast(np.matmul(g, np.swapaxes(b2, -1, -2)),
                             a2.shape).reshape(a.shape)
        if need_b:
            gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g),
                             b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Op):
    """``x @ weight.T + bias`` as one op, the body of a dense layer.

    ``weight`` has shape (out_features, in_features); ``x`` has shape
    (*, in_features), any number of leading axes (none for a 1-D ``x``);
    ``bias``, when given, has shape (out_features,). The leading axes are
    folded into one, so the products are 2-D ``dot`` calls.
    """
    __slots__ = ("x2", "w", "x_shape")
    saves = (0, 1)

    def saved(self):
        return _crossed(self.needs[:2]), False

    def forward(self, x, w, b=None):
        self.x_shape = x.shape
        x2 = self.x2 = x if x.ndim == 2 else x.reshape(-1, w.shape[1])
        self.w = w
        out = backend.dot(x2, w.T)
        if b is not None:
            out += b
        if x.ndim != 2:
            out = out.reshape(x.shape[:-1] + (w.shape[0],))
        return out

    def backward(self, g):
        needs = self.needs
        if g.ndim != 2:
            g = g.reshape(-1, self.w.shape[0])
        gx = gw = None
        if needs[0]:
            gx = backend.dot(g, self.w)
            if len(self.x_shape) != 2:
                gx = gx.reshape(self.x_shape)
        if needs[1]:
            gw = backend.dot(g.T, self.x2)
        if len(needs) == 2:
            return gx, gw
        return gx, gw, (_rsum(g, 0) if needs[2] else None)


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
        return _array(a.all(axis=self.axis, keepdims=self.keepdims), a)


class Any(All):
    """Whether some element is true, as ``All``."""
    __slots__ = ()

    def forward(self, a):
        return _array(a.any(axis=self.axis, keepdims=self.keepdims), a)
