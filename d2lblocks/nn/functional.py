"""Function forms of the layers, for ``from d2lblocks.nn import functional as F``
(the PyTorch habit), with PyTorch's argument names: ``F.relu(input)``,
``F.softmax(input, dim=1)``, ``F.cross_entropy(input, target,
reduction='sum')``, ``F.dropout(input, p=0.5, training=True)``.

Each checks what PyTorch's would and then runs the library's op.
"""

import numpy as np

from .. import backend, ops
from ..tensor import Tensor, random_generator

__all__ = ["linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
           "cross_entropy", "mse_loss", "dropout"]


def linear(input, weight, bias=None):
    """``input @ weight.T + bias``."""
    return ops.linear(input, weight, bias)


def relu(input, inplace=False):
    """``max(input, 0)``; ``inplace=True`` is refused (a new tensor is
    always returned)."""
    _no_inplace(inplace, "relu")
    return ops.relu(input)


def sigmoid(input):
    """The logistic function."""
    return ops.sigmoid(input)


def tanh(input):
    """The hyperbolic tangent."""
    return ops.tanh(input)


def softmax(input, dim=-1, dtype=None):
    """Softmax along ``dim`` (the last axis by default), computed in
    ``dtype`` when one is given."""
    if dtype is not None:
        input = input.astype(dtype)
    return ops.softmax(input, dim)


def log_softmax(input, dim=-1, dtype=None):
    """``log(softmax(input))`` along ``dim``, without overflow."""
    if dtype is not None:
        input = input.astype(dtype)
    return ops.log_softmax(input, dim)


def cross_entropy(input, target, weight=None, size_average=None,
                  ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """Softmax cross-entropy of logits ``input`` (batch, classes) against
    integer labels ``target`` (batch,): the mean, the sum
    (``reduction='sum'``) or one loss per sample (``'none'``). The other
    keywords must keep their defaults."""
    _reduction(reduction, "cross_entropy", weight=(weight, None),
               size_average=(size_average, None), reduce=(reduce, None),
               ignore_index=(ignore_index, -100),
               label_smoothing=(label_smoothing, 0.0))
    mean = ops.cross_entropy(input, target)      # checks shapes and labels
    if reduction == "mean":
        return mean
    if reduction == "sum":
        return mean * input.shape[0]
    rows, classes = input.shape
    picked = np.zeros((rows, classes), dtype=input.dtype)
    labels = target.numpy() if isinstance(target, Tensor) else target
    picked[np.arange(rows), np.asarray(labels, dtype=np.int64)] = 1
    onehot = Tensor(picked, device=input.device)
    return -(ops.log_softmax(input, -1) * onehot).sum(axis=1)


def mse_loss(input, target, size_average=None, reduce=None,
             reduction="mean"):
    """Squared errors of ``input`` against ``target`` (same shape): their
    mean, their sum (``reduction='sum'``) or each (``'none'``)."""
    _reduction(reduction, "mse_loss", size_average=(size_average, None),
               reduce=(reduce, None))
    mean = ops.mse(input, target)                # checks the shapes
    if reduction == "mean":
        return mean
    if reduction == "sum":
        return mean * input.numel()
    target = target if isinstance(target, Tensor) else Tensor(target)
    return (input - target.astype(input.dtype)) ** 2


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` when ``training``,
    scaling the rest by ``1/(1-p)``; ``input`` itself otherwise."""
    _no_inplace(inplace, "dropout")
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return input
    keep = random_generator().random(input.shape) >= p
    mask = (keep / (1 - p)).astype(input.dtype)
    if input.device.kind != "cpu":
        mask = backend.move(mask, input.device)
    return input * mask


def _no_inplace(inplace, name):
    if inplace:
        raise ValueError(f"{name}(inplace=True) is not supported: d2lblocks "
                         f"returns a new tensor (leave inplace out)")


def _reduction(reduction, name, **unsupported):
    """Check PyTorch's loss keywords: ``reduction`` is 'mean', 'sum' or
    'none'; the others must keep their defaults (not supported here)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or "
                         f"'none', got {reduction!r}")
    for key, (value, default) in unsupported.items():
        if value is not default and value != default:
            raise ValueError(f"{name}: {key}={value!r} is not supported "
                             f"(leave {key} out)")
    return reduction
