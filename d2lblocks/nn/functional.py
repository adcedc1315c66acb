"""Function forms of the layers, for ``from d2lblocks.nn import functional as F``
(the PyTorch habit). They are the ops of ``d2lblocks`` under familiar names."""

from ..ops import (linear, relu, sigmoid, tanh, softmax, log_softmax,
                   cross_entropy, mse as mse_loss)

__all__ = ["linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
           "cross_entropy", "mse_loss"]
