"""Products (``matmul``, the dense layer's fused ``Linear``) and the
fused losses (softmax cross-entropy, mean squared error)."""

import numpy as np

from .. import backend
from .base import (Op, Product, as_array, crossed, fast_max, fast_sum,
                   unbroadcast)


# ---- products ------------------------------------------------------------------------
class MatMul(Product):
    """``a @ b`` with NumPy's rules for 1-D and batched operands.

    Two 2-D operands go through ``dot``: ``matmul`` has no BLAS path when
    the inner dimension is 1 (the weight gradient at batch size 1).
    """
    __slots__ = ()

    def forward(self, a, b):
        self.a, self.b = a, b
        if a.ndim == 2 and b.ndim == 2:
            return backend.dot(a, b)
        return as_array(np.matmul(a, b), a)

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
        return crossed(self.needs[:2]), False

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
        return gx, gw, (fast_sum(g, 0) if needs[2] else None)


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
        shifted = x - fast_max(x, 1, True)
        self.e = np.exp(shifted)
        self.total = fast_sum(self.e, 1, True)
        # mean over the batch of log(sum(exp)) - the label's shifted logit
        loss = fast_sum(np.log(self.total)) - fast_sum(shifted[rows, labels])
        return as_array(loss / x.dtype.type(max(batch, 1)), x)

    def backward(self, g):
        p = self.e / self.total
        p[self.rows, self.labels] -= 1
        p *= g / max(len(self.rows), 1)
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
        return as_array((diff * diff).mean(), pred).astype(pred.dtype, copy=False)

    def backward(self, g):
        need_p, need_t = self.needs
        d = self.diff * (g * (2.0 / max(self.diff.size, 1)))
        return (d if need_p else None, -d if need_t else None)
