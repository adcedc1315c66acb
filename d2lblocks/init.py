"""Initializers: how parameters get their first values.

Two spellings of each, for Gluon and PyTorch users:

* objects for ``net.initialize(init.Normal(0, 0.01))``;
* in-place functions for ``net.apply(fn)``, e.g. ``init.normal_(p, 0, 0.01)``.

Values are drawn on the host from the generator that ``db.manual_seed`` seeds
and then moved to the parameter's device, so a seed gives the same network on
CPU and GPU. A lazy parameter keeps the initializer and applies it once the
first forward pass fixes its shape.
"""

import math
import numbers

import numpy as np

from . import backend
from .tensor import Tensor, random_generator

__all__ = ["Initializer", "Normal", "Uniform", "Constant", "Zeros", "Ones",
           "Xavier", "Kaiming", "normal_", "uniform_", "constant_", "zeros_",
           "ones_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "calculate_gain", "fans"]


def _real(value, what, where, positive=False):
    """``value`` as a finite Python float (NumPy scalars too)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {what} must be a number, got "
                        f"{type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value < 0):
        raise ValueError(f"{where}: {what} must be a finite number"
                         f"{' >= 0' if positive else ''}, got {value!r}")
    return value


def fans(shape):
    """``(fan_in, fan_out)`` of a weight of shape (out, in[, ...])."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    """Base class: ``init(param)`` fills ``param`` in place and returns it.

    Subclasses define ``sample(shape, rng)`` returning a float64 NumPy array.
    """

    def sample(self, shape, rng):
        raise NotImplementedError

    def __call__(self, param):
        if not isinstance(param, Tensor):
            what = f"the class {param.__name__}" if isinstance(param, type) \
                else type(param).__name__
            raise TypeError(f"{type(self).__name__} initializes a parameter "
                            f"(such as layer.weight), got {what}; to "
                            f"initialize a whole network, use "
                            f"net.initialize({type(self).__name__}(...))")
        if not getattr(param, "is_lazy", False) and param.dtype.kind != "f":
            raise TypeError(f"{type(self).__name__} fills floating-point "
                            f"tensors, got dtype {param.dtype}")
        if getattr(param, "is_lazy", False):
            param._init = self       # applied when the shape is known
            return param
        values = self.sample(tuple(param.shape), random_generator())
        data = param.data
        with backend.on_array(data):        # the GPU that holds it, if any
            data[...] = backend.move(np.asarray(values, dtype=data.dtype),
                                     backend.device_of(data))
        return param

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Normal(Initializer):
    """Normal samples with mean ``mean`` and standard deviation ``std``
    (Gluon's ``Normal(sigma)`` is ``Normal(0, sigma)``)."""

    def __init__(self, mean=0.0, std=0.01, sigma=None):
        self.mean = _real(mean, "mean", "Normal")
        self.std = _real(std if sigma is None else sigma, "std", "Normal",
                         positive=True)

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.std, shape)


class Uniform(Initializer):
    """Uniform samples in ``[low, high)``; ``Uniform(scale)`` means
    ``[-scale, scale)`` as in Gluon."""

    def __init__(self, low=-0.07, high=None):
        low = _real(low, "low", "Uniform")
        high = None if high is None else _real(high, "high", "Uniform")
        self.low, self.high = (-low, low) if high is None else (low, high)
        if self.low > self.high:
            raise ValueError(f"Uniform: low must not exceed high, got "
                             f"[{self.low}, {self.high})")

    def sample(self, shape, rng):
        return rng.uniform(self.low, self.high, shape)


class Constant(Initializer):
    """Every element set to ``value``."""

    def __init__(self, value):
        checked = _real(value, "value", type(self).__name__)
        self.value = value if type(value) in (int, float) else checked

    def sample(self, shape, rng):
        return np.full(shape, self.value, dtype=np.float64)


class Zeros(Constant):
    """All zeros."""

    def __init__(self):
        super().__init__(0.0)


class Ones(Constant):
    """All ones."""

    def __init__(self):
        super().__init__(1.0)


class Xavier(Initializer):
    """Glorot/Xavier: variance ``2 gain^2 / (fan_in + fan_out)``, uniform or
    normal."""

    def __init__(self, uniform=True, gain=1.0):
        self.uniform = bool(uniform)
        self.gain = _real(gain, "gain", "Xavier", positive=True)

    def sample(self, shape, rng):
        fan_in, fan_out = fans(shape)
        std = self.gain * math.sqrt(2.0 / (fan_in + fan_out))
        return _zero_mean(std, self.uniform, shape, rng)


class Kaiming(Initializer):
    """He/Kaiming for ReLU networks: variance ``gain^2 / fan``, uniform or
    normal; ``fan`` is ``fan_in`` (``mode="fan_in"``, the default) or
    ``fan_out``."""

    def __init__(self, uniform=False, gain=math.sqrt(2.0), mode="fan_in"):
        self.uniform = bool(uniform)
        self.gain = _real(gain, "gain", "Kaiming", positive=True)
        if mode not in ("fan_in", "fan_out"):
            raise ValueError(f"Kaiming: mode must be 'fan_in' or 'fan_out', "
                             f"got {mode!r}")
        self.mode = mode

    def sample(self, shape, rng):
        fan_in, fan_out = fans(shape)
        std = self.gain / math.sqrt(fan_in if self.mode == "fan_in" else fan_out)
        return _zero_mean(std, self.uniform, shape, rng)


def _zero_mean(std, uniform, shape, rng):
    """Samples of mean 0 and standard deviation ``std``: uniform in
    +-sqrt(3) std, or normal."""
    if uniform:
        bound = math.sqrt(3.0) * std
        return rng.uniform(-bound, bound, shape)
    return rng.normal(0.0, std, shape)


def calculate_gain(nonlinearity, param=None):
    """The gain PyTorch recommends for an activation: 1 for linear and
    sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + a^2)) for
    leaky_relu with slope ``param`` (0.01 when None)."""
    fixed = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "conv1d": 1.0,
             "conv2d": 1.0, "conv3d": 1.0, "tanh": 5.0 / 3,
             "relu": math.sqrt(2.0), "selu": 3.0 / 4}
    if nonlinearity in fixed:
        return fixed[nonlinearity]
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else _real(param, "param",
                                                  "calculate_gain")
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; "
                     f"expected one of {sorted(fixed) + ['leaky_relu']}")


# ---- the in-place spellings, for net.apply(fn) ----------------------------
# PyTorch's names and keywords (``tensor``, ``mean``, ``std``, ``a``, ``b``,
# ``val``, ``gain``, ``mode``, ``nonlinearity``).
def normal_(tensor, mean=0.0, std=1.0):
    """Fill ``tensor`` with normal samples; returns it."""
    return Normal(mean, std)(tensor)


def uniform_(tensor, a=0.0, b=1.0):
    """Fill ``tensor`` with uniform samples in ``[a, b)``; returns it."""
    return Uniform(a, b)(tensor)


def constant_(tensor, val):
    """Fill ``tensor`` with ``val``; returns it."""
    return Constant(val)(tensor)


def zeros_(tensor):
    """Fill ``tensor`` with zeros; returns it."""
    return Zeros()(tensor)


def ones_(tensor):
    """Fill ``tensor`` with ones; returns it."""
    return Ones()(tensor)


def xavier_uniform_(tensor, gain=1.0):
    """Xavier/Glorot uniform; returns ``tensor``."""
    return Xavier(True, gain)(tensor)


def xavier_normal_(tensor, gain=1.0):
    """Xavier/Glorot normal; returns ``tensor``."""
    return Xavier(False, gain)(tensor)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """Kaiming/He uniform, as PyTorch's: the gain of ``nonlinearity``
    (with negative slope ``a`` for leaky_relu; the defaults give sqrt(2),
    for ReLU), over ``fan_in`` or ``fan_out``; returns ``tensor``."""
    return Kaiming(True, calculate_gain(nonlinearity, a), mode)(tensor)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """Kaiming/He normal, as PyTorch's (see :func:`kaiming_uniform_`);
    returns ``tensor``."""
    return Kaiming(False, calculate_gain(nonlinearity, a), mode)(tensor)
