"""Parameters: the tensors a block learns."""

import numpy as np

from .. import backend
from ..tensor import Tensor, as_dtype, float32

__all__ = ["Parameter", "UninitializedParameterError"]

class UninitializedParameterError(RuntimeError):
    """A lazy parameter was read before its shape was known."""


class _Unset:
    """Stands in for the array of a lazy parameter: any use of it (an
    attribute such as ``.shape``, arithmetic, NumPy conversion) raises
    :class:`UninitializedParameterError` with an explanation."""

    __slots__ = ("shape_text",)

    def __init__(self, shape_text):
        self.shape_text = shape_text

    def _fail(self, *args, **kwargs):
        raise UninitializedParameterError(
            f"this parameter has shape {self.shape_text}: its unknown sizes "
            f"are set by the first forward pass. Run the network on a batch "
            f"first (net(X)), or give the layer its input size (e.g. "
            f"Dense(256, in_units=20) or Linear(20, 256)).")

    def __getattr__(self, name):
        self._fail()

    def __repr__(self):
        return f"<no values yet: shape {self.shape_text} is set by the first forward pass>"

    __array__ = __array_ufunc__ = __array_function__ = _fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __getitem__ = _fail
    __len__ = __iter__ = __float__ = __bool__ = _fail


class Parameter(Tensor):
    """A tensor that a block learns: a leaf with ``requires_grad=True``.

    Arguments:
        data: the initial values, or ``None`` for a lazy parameter.
        shape: for a lazy parameter, its shape with ``None`` for each size
            that the first forward pass will fill in, e.g. ``(256, None)``.
        requires_grad: set False for a frozen parameter.

    A lazy parameter has no values yet. Its repr says so, and reading it
    raises :class:`UninitializedParameterError` with the reason.
    """

    def __init__(self, data=None, shape=None, requires_grad=True, dtype=None):
        if data is None:
            if shape is None:
                raise ValueError("a Parameter needs data, or the shape of a "
                                 "lazy parameter such as (256, None)")
            super().__init__(np.empty(0, float32), requires_grad=False)
            self.requires_grad = requires_grad
            self._lazy_shape = tuple(shape)
            # None: take the dtype of the first batch (floats only).
            self._lazy_dtype = None if dtype is None else as_dtype(dtype)
            # Where ``to(device)`` sent it; ``load_state_dict`` makes it
            # there (a forward pass makes it on the input's device).
            self._lazy_device = None
            self.data = _Unset(self._shape_text())
        else:
            super().__init__(data, dtype=dtype, requires_grad=requires_grad)
            self._lazy_shape = None
        self._init = None             # initializer waiting for a lazy shape
        self._user_initialized = False

    @property
    def is_lazy(self):
        """True while the shape is not fully known."""
        return self._lazy_shape is not None

    @property
    def shape(self):
        """The shape; a lazy parameter has ``None`` for unknown sizes."""
        return self._lazy_shape if self._lazy_shape is not None else self.data.shape

    def numpy(self):
        """The values as a NumPy array (a lazy parameter raises)."""
        if self._lazy_shape is not None:
            self.data._fail()
        return super().numpy()

    def _shape_text(self):
        """The shape as text, ``?`` for a size not known yet: ``(256, ?)``,
        ``(3,)``."""
        shape = self.shape
        return "(" + ", ".join("?" if n is None else str(n) for n in shape) \
            + ("," if len(shape) == 1 else "") + ")"

    def materialize(self, shape, device=None, dtype=None):
        """Give a lazy parameter its full ``shape`` and run its initializer.

        Called by lazy layers on their first forward pass; ``device`` is
        where the input lives, so the parameter is made right there. Returns
        whether an initializer chosen earlier was applied (if not, the values
        are zeros and the layer applies its default).
        """
        shape = tuple(int(n) for n in shape)
        known = self._lazy_shape
        if len(shape) != len(known) or any(
                k is not None and k != n for k, n in zip(known, shape)):
            raise ValueError(f"cannot give a parameter of shape "
                             f"{self._shape_text()} the shape {shape}")
        dt = self._lazy_dtype or (float32 if dtype is None else as_dtype(dtype))
        dev = backend.cpu() if device is None else backend.as_device(device)
        init, self._init = self._init, None
        # On the input's device, current while the zeros are made and while
        # the initializer writes its values into them.
        with backend.on(dev):
            self.data = dev.xp.zeros(shape, dtype=dt)
            self._lazy_shape = None
            if init is not None:
                init(self)
        return init is not None

    def __repr__(self):
        if self.is_lazy:
            return (f"Parameter(shape={self._shape_text()}, uninitialized: "
                    f"set by the first forward pass)")
        return "Parameter containing:\n" + super().__repr__()
