"""d2lblocks: layers and blocks, built from scratch on NumPy (CuPy optional).

``import d2lblocks as db`` gives tensors, their ops and autograd;
``from d2lblocks import nn, init, optim`` gives the block system.
"""

from .backend import Device, cpu, gpu, num_gpus, try_gpu
from .tensor import (Tensor, tensor, zeros, ones, zeros_like, ones_like, full,
                     rand, randn, arange, manual_seed, no_grad, enable_grad,
                     is_grad_enabled, float16, float32, float64, int32, int64,
                     bool_)
from .ops import (unbroadcast, matmul, exp, log, abs, sqrt, relu, sigmoid, tanh,
                  softmax, log_softmax, cross_entropy, mse, linear, sum, mean, max,
                  reshape, transpose, concat, cat, stack, where, maximum)
from .gradcheck import grad_check
from . import nn, init, optim
from .diagnose import diagnose

__version__ = "0.1.0"
