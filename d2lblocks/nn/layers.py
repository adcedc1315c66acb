"""Layers: dense (fully connected), activations, flatten, dropout, losses."""

import math
import numbers

from .. import backend, init, ops
from ..tensor import Tensor, as_dtype
from . import functional as F
from .block import Block, _returned_none
from .functional import _no_inplace, _reduction
from .parameter import Parameter

__all__ = ["Dense", "Linear", "LazyLinear", "ReLU", "Sigmoid", "Tanh",
           "Softmax", "LogSoftmax", "Identity", "Flatten", "Dropout",
           "CrossEntropyLoss", "MSELoss", "activation_fn"]


def _count(value, what, allow_none=False):
    """``value`` as a positive Python int (NumPy integers too)."""
    if value is None and allow_none:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) \
            and value > 0:
        return int(value)
    if isinstance(value, type):
        given = f"the class {value.__name__}"
    else:
        given = f"{type(value).__name__} {value!r}"
    wrong_kind = isinstance(value, bool) or not isinstance(value, numbers.Real)
    raise (TypeError if wrong_kind else ValueError)(
        f"{what} must be a positive integer{' or None' if allow_none else ''}"
        f", got {given}")


def _axis(value, what):
    """``value`` as an int axis (NumPy integers too)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"{what} must be an integer axis such as 1 or -1, got "
                    f"{type(value).__name__} {value!r}")


_ACTIVATIONS = {"relu": ops.relu, "sigmoid": ops.sigmoid, "tanh": ops.tanh,
                "softmax": ops.softmax}


def activation_fn(activation):
    """An activation function from a name (``'relu'``), a callable such as
    ``db.relu``, a Block such as ``nn.ReLU()``, or ``None``."""
    if activation is None or callable(activation):
        return activation
    if isinstance(activation, str) and activation.lower() in _ACTIVATIONS:
        return _ACTIVATIONS[activation.lower()]
    raise ValueError(f"unknown activation {activation!r}; expected one of "
                     f"{sorted(_ACTIVATIONS)}, a function or None")


def _check_input(X, layer):
    """``X`` if it is a d2lblocks Tensor; otherwise a ``TypeError`` that
    says how to make one (instead of an error from deep inside an op).

    Arguments:
        X: what the layer was given.
        layer: the layer, for the message.
    """
    if isinstance(X, Tensor):
        return X
    if X is None:
        last, _returned_none[0] = _returned_none[0], None
        raise TypeError(
            f"{type(layer).__name__} got None as its input, where a tensor "
            f"was expected. A forward that ends without `return ...` gives "
            f"None"
            + (f"; the last one that did was {last}.forward" if last else "")
            + ". Add the missing return")
    kind = type(X)
    where = "" if kind.__module__ == "builtins" else kind.__module__.split(".")[0] + "."
    raise TypeError(f"{type(layer).__name__} expected a d2lblocks Tensor, got "
                    f"{where}{kind.__name__}; wrap it first: db.tensor(X)")


class Dense(Block):
    """A fully connected layer ``activation(X @ weight.T + bias)``.

    Arguments:
        units: the number of outputs.
        activation: ``None``, ``'relu'``, ``'sigmoid'``, ``'tanh'`` or a
            function such as ``db.relu``.
        in_units: the number of inputs; leave it out to have it inferred from
            the first batch (the weight is lazy until then).
        use_bias: whether to add a bias.
        flatten: flatten inputs with more than two axes to (batch, -1), as
            Gluon does. With ``flatten=False`` the layer works on the last
            axis, as PyTorch's ``Linear``: (*, in_units) -> (*, units). A
            1-D input is one sample either way.

    Parameters: ``weight`` of shape (units, in_units) and ``bias`` (units,),
    initialized uniformly in +-1/sqrt(in_units) unless ``initialize`` or an
    ``init`` function chooses otherwise.
    """

    def __init__(self, units, activation=None, in_units=None, use_bias=True,
                 flatten=True):
        super().__init__()
        name = type(self).__name__
        units = _count(units, f"{name}: {'out_features' if name != 'Dense' else 'units'}")
        in_units = _count(in_units, f"{name}: "
                          f"{'in_features' if name != 'Dense' else 'in_units'}",
                          allow_none=True)
        self.units = units
        self.activation = activation_fn(activation)
        self._activation_name = activation if isinstance(activation, str) else \
            getattr(activation, "__name__", None)
        self.flatten = flatten
        self.weight = Parameter(shape=(units, in_units))
        self.bias = Parameter(shape=(units,)) if use_bias else None
        if in_units is not None:
            self._materialize(in_units, None, None)

    @property
    def in_units(self):
        """The number of inputs, or ``None`` until the first batch."""
        return None if self.weight.is_lazy else self.weight.shape[1]

    def default_init(self, name):
        """Uniform in +-1/sqrt(in_units), for the weight and the bias (as
        PyTorch's Linear); ``None`` while ``in_units`` is unknown."""
        if self.in_units is None:
            return None
        bound = 1.0 / math.sqrt(self.in_units)
        return init.Uniform(-bound, bound)

    def _materialize(self, in_units, device, dtype):
        """Give the lazy parameters their shapes and first values; if
        anything fails (an initializer raises), all stay lazy."""
        shapes = {"weight": (self.units, in_units), "bias": (self.units,)}
        done = []
        try:
            # The default initializer too writes on the input's device.
            with backend.on(device):
                for name in ("weight", "bias"):   # weight first: in_units
                    p = self._params.get(name)
                    if p is not None and p.is_lazy:
                        done.append((p, p._lazy_shape, p._init, p.data))
                        if not p.materialize(shapes[name], device, dtype):
                            self.default_init(name)(p)   # nobody chose one
        except BaseException:
            for p, shape, chosen, data in reversed(done):
                p._lazy_shape, p._init, p.data = shape, chosen, data
            raise

    def forward(self, X):
        _check_input(X, self)
        if X.dtype.kind != "f":
            raise TypeError(
                f"{type(self).__name__} expected floating-point input, got "
                f"dtype {X.dtype}; convert it first, e.g. "
                f"X.astype(db.float32)")
        if X.ndim == 0:
            raise ValueError(f"{type(self).__name__} expected input of shape "
                             f"(..., in_features), got a 0-d tensor")
        params = self._params
        weight, bias = params["weight"], params.get("bias")
        if X.ndim > 2 and self.flatten:        # Gluon: (batch, everything else)
            X = X.reshape(X.shape[0], math.prod(X.shape[1:]))
        if weight.is_lazy or (bias is not None and bias.is_lazy):
            features = X.shape[-1]             # first batch: shapes now known
            if features == 0:
                raise ValueError(
                    f"{type(self).__name__} cannot learn its input size from "
                    f"a batch of shape {tuple(X.shape)}: it has 0 features. "
                    f"Give it a batch with at least one feature (the layer "
                    f"stays uninitialized until then)")
            self._materialize(features, X.device, X.dtype)
        out = ops.linear(X, weight, bias)      # checks the feature count
        act = self.activation
        return out if act is None else act(out)

    def extra_repr(self):
        text = f"{self.units}" if self.in_units is None else \
            f"{self.in_units} -> {self.units}"
        if self._activation_name:
            text += f", activation={self._activation_name}"
        if self._params.get("bias") is None:
            text += ", use_bias=False"
        return text


class Linear(Dense):
    """PyTorch's fully connected layer: ``Linear(in_features, out_features)``.

    The same layer as ``Dense(out_features, in_units=in_features)``, with
    ``weight`` of shape (out_features, in_features).
    """

    def __init__(self, in_features, out_features, bias=True, device=None,
                 dtype=None):
        super().__init__(out_features, in_units=in_features, use_bias=bias,
                         flatten=False)
        _place(self, device, dtype)

    in_features = property(lambda self: self.in_units)
    out_features = property(lambda self: self.units)

    def extra_repr(self):
        bias = self._params.get("bias") is not None
        return (f"in_features={self.in_features}, out_features="
                f"{self.out_features}, bias={bias}")


class LazyLinear(Dense):
    """``Linear`` whose ``in_features`` is inferred from the first batch.

    After that batch it becomes a plain ``Linear`` (``type(layer) is Linear``).
    """

    def __init__(self, out_features, bias=True, device=None, dtype=None):
        super().__init__(out_features, use_bias=bias, flatten=False)
        _place(self, device, dtype)

    def forward(self, X):
        out = super().forward(X)
        self.__class__ = Linear
        return out

    def _after_load(self):
        if not self.weight.is_lazy:
            self.__class__ = Linear

    def extra_repr(self):
        return f"in_features=?, out_features={self.units}"


def _place(layer, device, dtype):
    """PyTorch's ``device=``/``dtype=`` of a layer's constructor."""
    if dtype is not None and as_dtype(dtype).kind != "f":
        raise TypeError(f"{type(layer).__name__}: dtype must be a "
                        f"floating-point type such as db.float32, got "
                        f"{as_dtype(dtype)}")
    if device is not None or dtype is not None:
        Block.to(layer, device, dtype)


class _Activation(Block):
    fn = None

    def __init__(self, inplace=False):
        super().__init__()
        _no_inplace(inplace, type(self).__name__)

    def forward(self, X):
        return type(self).fn(_check_input(X, self))


class ReLU(_Activation):
    """``max(X, 0)`` as a block."""
    fn = staticmethod(ops.relu)


class Sigmoid(_Activation):
    """The logistic function as a block."""
    fn = staticmethod(ops.sigmoid)


class Tanh(_Activation):
    """``tanh`` as a block."""
    fn = staticmethod(ops.tanh)


class Softmax(Block):
    """Softmax along ``axis`` as a block: ``Softmax(1)``, ``Softmax(dim=1)``
    (PyTorch) or ``Softmax(axis=1)`` (NumPy)."""

    def __init__(self, axis=-1, *, dim=None):
        super().__init__()
        self.axis = _axis(axis if dim is None else dim,
                          f"{type(self).__name__}: dim")

    def forward(self, X):
        return ops.softmax(_check_input(X, self), self.axis)

    def extra_repr(self):
        return f"dim={self.axis}"


class LogSoftmax(Softmax):
    """``log(softmax(X))`` along ``axis`` (``dim=`` in PyTorch), computed
    without overflow."""

    def forward(self, X):
        return ops.log_softmax(_check_input(X, self), self.axis)


class Identity(Block):
    """Returns its input unchanged; arguments are accepted and ignored
    (as PyTorch's, so a layer can be swapped for it)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, X):
        return _check_input(X, self)


class Flatten(Block):
    """Flatten the axes from ``start_dim`` to ``end_dim`` (both included,
    negatives count from the end) into one: with the defaults,
    (batch, 1, 28, 28) -> (batch, 784), as PyTorch's."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = _axis(start_dim, "Flatten: start_dim")
        self.end_dim = _axis(end_dim, "Flatten: end_dim")

    def forward(self, X):
        _check_input(X, self)
        return X.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Block):
    """Zero each element with probability ``p`` while training, scaling the
    rest by ``1/(1-p)``; the identity in ``eval()`` mode."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not isinstance(p, numbers.Real) or isinstance(p, bool):
            raise TypeError(f"Dropout: p must be a number in [0, 1), got "
                            f"{type(p).__name__} {p!r}")
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        _no_inplace(inplace, "Dropout")
        self.p = float(p)

    def forward(self, X):
        return F.dropout(_check_input(X, self), self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class _Loss(Block):
    def extra_repr(self):
        return "" if self.reduction == "mean" else \
            f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits (batch, classes) against integer
    labels (batch,): their mean, as PyTorch's; ``reduction='sum'`` adds
    them up and ``reduction='none'`` gives one loss per sample."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100,
                 reduce=None, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.reduction = _reduction(
            reduction, "CrossEntropyLoss", weight=(weight, None),
            size_average=(size_average, None), reduce=(reduce, None),
            ignore_index=(ignore_index, -100),
            label_smoothing=(label_smoothing, 0.0))

    def forward(self, logits, labels):
        return F.cross_entropy(_check_input(logits, self), labels,
                               reduction=self.reduction)


class MSELoss(_Loss):
    """Mean squared error, as PyTorch's; ``reduction='sum'`` adds the
    squared errors up and ``reduction='none'`` gives each of them."""

    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = _reduction(reduction, "MSELoss",
                                    size_average=(size_average, None),
                                    reduce=(reduce, None))

    def forward(self, pred, target):
        return F.mse_loss(_check_input(pred, self), target,
                          reduction=self.reduction)
