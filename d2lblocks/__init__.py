"""d2lblocks: layers and blocks, built from scratch on NumPy (CuPy optional).

``import d2lblocks as db`` gives tensors, their ops and autograd;
``from d2lblocks import nn, init, optim`` gives the block system.
Importing it changes nothing else in the process (see
``db.backend.tune_process`` for an opt-in).
"""

from .backend import Device, cpu, gpu, num_gpus, try_gpu
from .tensor import (Tensor, tensor, zeros, ones, zeros_like, ones_like, full,
                     rand, randn, arange, manual_seed, no_grad, enable_grad,
                     is_grad_enabled, set_grad_enabled, float16, float32,
                     float64, int32, int64, bool_)
from .ops import (unbroadcast, add, sub, mul, div, pow, neg, matmul, mm, dot,
                  exp, log, abs, sqrt, relu, sigmoid, tanh, softmax,
                  log_softmax, cross_entropy, mse, linear, sum, mean, max,
                  min, reshape, flatten, transpose, swapaxes, concat, cat,
                  stack, astype, where, maximum, minimum, argmax, argmin,
                  unsqueeze, squeeze, permute)
from .gradcheck import grad_check
from . import backend, random, state
from . import nn, init, optim
from .diagnose import diagnose
from . import hybrid
from .hybrid import hybridize

__version__ = "0.1.0"
