"""The state of d2lblocks objects as plain values, and back.

For tools that copy library objects between processes (a grader, a
debugger): ``get_state(obj)`` says what an object holds, ``empty(cls)``
makes an instance with nothing in it yet, and ``set_state(obj, state)``
fills it. The state is one level deep: a block's children and parameters
appear in it as the objects themselves, so a caller that serializes
decides how to name them (and meets each object once).

The random stream and the grad mode have public getters and setters of
their own: ``d2lblocks.tensor.random_generator()`` (its
``bit_generator.state`` can be read and assigned) and
``db.is_grad_enabled()``/``db.set_grad_enabled()``.
"""

import numpy as np

from . import backend
from .nn.parameter import _Unset
from .tensor import Tensor, float32

__all__ = ["get_state", "set_state", "empty"]


def get_state(obj):
    """The state of a library object as a dict.

    A tensor gives ``"data"`` (a NumPy array on the host, or None for a
    lazy parameter that has no values yet), ``"requires_grad"`` and
    ``"grad"``; every object with attributes (blocks, parameters,
    initializers) gives ``"attrs"``, a copy of its attribute dict.
    """
    state = {}
    if isinstance(obj, Tensor):
        lazy = getattr(obj, "is_lazy", False)
        state["data"] = None if lazy else np.asarray(backend.to_host(obj.data))
        state["requires_grad"] = bool(obj.requires_grad)
        state["grad"] = obj.grad
    attrs = getattr(obj, "__dict__", None)
    if attrs is not None:
        # A replay cache (hybridize) is not state: it is rebuilt on demand.
        state["attrs"] = {k: v for k, v in attrs.items()
                          if k != "_call_handler"}
    return state


def empty(cls):
    """An instance of ``cls`` that holds nothing yet (its ``__init__`` is
    not run); give it a state with :func:`set_state`."""
    if not isinstance(cls, type):
        raise TypeError(f"expected a class, got {cls!r}")
    obj = object.__new__(cls)
    if isinstance(obj, Tensor):
        Tensor.__init__(obj, np.empty(0, float32))
    return obj


def set_state(obj, state):
    """Give ``obj`` the state ``state`` (as :func:`get_state` makes it).

    Checks every value first and raises ``TypeError`` or ``ValueError``
    saying what was expected; on an error ``obj`` is left as it was."""
    if type(state) is not dict:
        raise TypeError(f"a state is a dict, got {type(state).__name__}")
    attrs = state.get("attrs")
    target = None
    if attrs is not None:
        if type(attrs) is not dict or not all(
                type(k) is str and not k.startswith("__") for k in attrs):
            raise ValueError("'attrs' must be a dict of attribute names "
                             "(str, not dunder) to values")
        target = getattr(obj, "__dict__", None)
        if target is None:
            raise TypeError(f"a {type(obj).__name__} has no attributes to set")
    if isinstance(obj, Tensor):
        data, grad = state.get("data"), state.get("grad")
        if grad is not None and not isinstance(grad, Tensor):
            raise TypeError(f"'grad' must be a tensor or None, got "
                            f"{type(grad).__name__}")
        lazy = getattr(obj, "is_lazy", False) if attrs is None else \
            attrs.get("_lazy_shape") is not None
        if data is None:
            if not lazy:
                raise ValueError("only a lazy parameter has data None")
            shape = attrs["_lazy_shape"] if attrs is not None else \
                obj._lazy_shape
            data = _Unset("(" + ", ".join("?" if n is None else str(n)
                                          for n in shape)
                          + ("," if len(shape) == 1 else "") + ")")
        elif type(data) is not np.ndarray:
            raise TypeError(f"'data' must be a NumPy array, got "
                            f"{type(data).__name__}")
    # Everything is checked: nothing below raises.
    if target is not None:
        target.clear()
        target.update(attrs)
    if isinstance(obj, Tensor):
        obj.data = data
        obj.requires_grad = bool(state.get("requires_grad"))
        obj.grad = grad
