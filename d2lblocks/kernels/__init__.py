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
in the graph. It fills the slots of ``Op`` (in ``base``); an op's own code never
touches them, apart from reading ``needs`` in ``backward``.

The ops are grouped by family: ``base`` (the ``Op`` class and shared
helpers), ``elementwise``, ``reductions``, ``shapes`` (indexing, views,
in-place writes, joining) and ``linalg`` (products and losses). All of
them are importable from here: ``kernels.Add``, ``kernels.Linear``.
"""

# Every op class, importable from here (``kernels.Linear``) whichever
# family module holds it.
from .base import Op, forward_on_device, normalize_axes, unbroadcast  # noqa: F401
from .elementwise import (Abs, Add, AddScalar, AsType, Compare, Div,  # noqa: F401
                          DivScalar, Exp, Log, LogSoftmax, Maximum, Minimum,
                          Mul, MulScalar, Neg, Pow, PowScalar, RDivScalar,
                          ReLU, RPowScalar, RSubScalar, ScalarOp, Sigmoid,
                          Softmax, Sqrt, Sub, Tanh, Where)
from .reductions import All, Any, ArgMax, ArgMin, Max, Mean, Min, Sum  # noqa: F401
from .shapes import (Assign, Concat, GetItem, Reshape, Stack,  # noqa: F401
                     Transpose, ViewChain, view_of)
from .linalg import MSE, CrossEntropy, Linear, MatMul  # noqa: F401

__all__ = ["Op", "unbroadcast", "normalize_axes"]
