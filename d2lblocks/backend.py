"""Where arrays live: NumPy on the host, or CuPy on a GPU.

This is the only module that imports CuPy, and it does so lazily, the first
time a GPU is asked for. Everything above it asks this module for the array
namespace of a device (``xp``) instead of importing NumPy or CuPy itself.
Importing it changes nothing outside d2lblocks; ``tune_process()`` (from
``tuning``) is an explicit opt-in for process-wide tuning.
"""

import numpy as np

from .tuning import tune_process

__all__ = ["Device", "cpu", "gpu", "num_gpus", "try_gpu", "as_device",
           "device_of", "namespace_of", "to_host", "move", "scatter_add",
           "on", "on_array", "set_gpu_module", "tune_process"]

_cupy = None          # the cupy module, once it has been imported
_cupy_error = None    # why importing it failed, once it has been tried

_INSTALL_HINT = ("GPU support needs CuPy built for your CUDA version, e.g. "
                 "`pip install 'd2lblocks[gpu]'` (CUDA 12) or "
                 "`pip install cupy-cuda11x`; see https://docs.cupy.dev.")


# ---- products and the update of gradient descent ------------------------------
# BLAS threads are a setting of the process, not of a product: d2lblocks
# uses whatever the process has (OpenBLAS starts one per core). On a busy
# shared machine its spinning threads can make a mid-size product many
# times slower; the program's author chooses one thread once, with
# ``tune_process(blas_threads=1)``, ``threadpoolctl`` or the
# ``OPENBLAS_NUM_THREADS`` environment variable.


def dot(a, b, out=None):
    """``a.dot(b)`` for 2-D arrays (host or GPU), into ``out`` when given."""
    return a.dot(b) if out is None else a.dot(b, out=out)


def dot_for(a_shape, b_shape):
    """The function that :func:`dot` calls for host arrays of these 2-D
    shapes, for code that multiplies arrays of fixed shapes many times (a
    replay): ``np.dot`` for every shape, as the thread policy is the
    process's."""
    return np.dot


def dot_one_thread(a, b, out=None):
    """``np.dot(a, b, out)``. The name is kept for callers of earlier
    versions, which ran mid-size products on one BLAS thread: choose one
    thread for the whole process with ``tune_process(blas_threads=1)``."""
    return np.dot(a, b, out)


def sub_scaled(w, alpha, g, scratch):
    """``w -= alpha * g``, in place, through ``scratch`` (an array like
    ``w``): the update of gradient descent, with no temporary array."""
    np.multiply(g, alpha, out=scratch)
    np.subtract(w, scratch, out=w)


def scaled_subtractor(w, g):
    """A one-pass function ``f(alpha)`` doing ``w -= alpha * g`` for these
    two arrays, or None where :func:`sub_scaled` is the way (today: always;
    NumPy has no one-pass form of it, and calling BLAS ``axpy`` would need
    the arrays' raw addresses)."""
    return None


def _load_cupy():
    """Import CuPy on first use; return None when it is missing."""
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy
            _cupy = cupy
        except Exception as exc:  # ImportError, or a broken CUDA install
            _cupy_error = exc
    return _cupy


def set_gpu_module(module):
    """Use ``module`` as the array module of the GPUs in place of CuPy, and
    return the one used before (None where CuPy was not loaded yet).

    ``module`` must offer the part of CuPy's interface that this module
    calls (``ndarray``, ``asarray``, ``array``, ``asnumpy``,
    ``get_array_module``, ``add.at``, ``cuda.Device``,
    ``cuda.runtime.getDeviceCount``) and what the ops call on arrays.
    The test suite installs a simulated GPU with it, so that every device
    path runs on machines without one; ``set_gpu_module(None)`` goes back
    to importing CuPy when a GPU is next asked for.
    """
    global _cupy, _cupy_error
    before, _cupy, _cupy_error = _cupy, module, None
    return before


class Device:
    """A place where a tensor's data lives: ``cpu`` or ``gpu(i)``.

    Devices compare equal by kind and index, so ``db.gpu(0) == db.gpu()``.
    """

    __slots__ = ("kind", "index")

    def __init__(self, kind, index=0):
        self.kind = kind
        self.index = index if kind == "gpu" else 0

    @property
    def xp(self):
        """The array module for this device (``numpy`` or ``cupy``)."""
        return np if self.kind == "cpu" else _load_cupy()

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = Device(*_parse(other))
            except ValueError:
                return False
        return (isinstance(other, Device) and self.kind == other.kind
                and self.index == other.index)

    def __hash__(self):
        return hash((self.kind, self.index))

    def __repr__(self):
        return "cpu" if self.kind == "cpu" else f"gpu({self.index})"


_CPU = Device("cpu")


def cpu():
    """The host CPU device."""
    return _CPU


def num_gpus():
    """How many GPUs CuPy can see (0 when CuPy is not installed)."""
    cupy = _load_cupy()
    if cupy is None:
        return 0
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:
        return 0


def gpu(i=0):
    """GPU number ``i``; raises a clear error when there is none.

    Raises:
        RuntimeError: CuPy is missing, or there is no GPU ``i``.
    """
    if _load_cupy() is None:
        raise RuntimeError(f"db.gpu({i}) needs CuPy, which could not be "
                           f"imported ({_cupy_error}). {_INSTALL_HINT}")
    n = num_gpus()
    if not 0 <= i < n:
        raise RuntimeError(f"db.gpu({i}) was asked for, but CuPy sees {n} "
                           f"GPU(s). Use db.try_gpu() to fall back to the CPU.")
    return Device("gpu", i)


def try_gpu(i=0):
    """GPU ``i`` if it exists, else the CPU (never raises)."""
    return Device("gpu", i) if i < num_gpus() else _CPU


def as_device(device):
    """Turn ``None``, a Device, or a string such as ``'cpu'``, ``'gpu'``,
    ``'gpu:1'`` or ``'cuda:1'`` into a Device (``None`` means the CPU)."""
    if device is None:
        return _CPU
    if isinstance(device, Device):
        return gpu(device.index) if device.kind == "gpu" else _CPU
    if isinstance(device, str):
        kind, index = _parse(device)
        return _CPU if kind == "cpu" else gpu(index)
    raise ValueError(f"expected a device such as db.cpu(), db.gpu(0), 'cpu' "
                     f"or 'gpu:0', got {device!r}")


def _parse(text):
    """``'cpu'``, ``'gpu'``, ``'gpu:1'``, ``'cuda:1'`` -> (kind, index)."""
    kind, _, index = text.strip().lower().partition(":")
    if kind == "cpu" and not index:
        return "cpu", 0
    if kind in ("gpu", "cuda") and (not index or index.isdigit()):
        return "gpu", int(index or 0)
    raise ValueError(f"expected a device such as db.cpu(), db.gpu(0), 'cpu' "
                     f"or 'gpu:0', got {text!r}")


class _Host:
    """The context of the CPU: entering it changes nothing."""

    __slots__ = ()

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


_HOST = _Host()


def on(device):
    """A context manager inside which ``device`` is the current device, so
    that the arrays made there (``xp.array``, ``xp.zeros``...) and the
    kernels run there belong to it::

        with backend.on(dev):
            data = dev.xp.zeros(shape)

    For ``gpu(i)`` it is CuPy's ``cuda.Device(i)``; for the CPU it does
    nothing. ``device`` is a Device or anything :func:`as_device` takes.
    """
    if not isinstance(device, Device):
        device = as_device(device)
    if device.kind == "cpu":
        return _HOST
    return _load_cupy().cuda.Device(device.index)


def on_array(*arrays):
    """:func:`on` for the device of the first GPU array among ``arrays``
    (nothing to enter when all are host arrays), for running an op where
    its inputs live."""
    if _cupy is not None:
        gpu_array = _cupy.ndarray
        for array in arrays:
            if type(array) is not np.ndarray and isinstance(array, gpu_array):
                return array.device
    return _HOST


def device_of(array):
    """The Device that holds ``array``."""
    if _cupy is None or type(array) is np.ndarray \
            or not isinstance(array, _cupy.ndarray):
        return _CPU
    return Device("gpu", array.device.id)


def namespace_of(array):
    """``numpy`` for host arrays, ``cupy`` for GPU arrays."""
    if _cupy is None or type(array) is np.ndarray \
            or not isinstance(array, _cupy.ndarray):
        return np
    return _cupy


def to_host(array):
    """A NumPy copy (or the array itself) of a host or GPU array."""
    if _cupy is None or type(array) is np.ndarray \
            or not isinstance(array, _cupy.ndarray):
        return array
    return _cupy.asnumpy(array)


def move(array, device):
    """``array`` on ``device`` (no copy when it is already there)."""
    if device.kind == "cpu":
        return to_host(array)
    cupy = _load_cupy()
    if device_of(array) == device:
        return array
    with cupy.cuda.Device(device.index):
        # From the host, an upload; from another GPU, a copy onto this one
        # (``asarray`` would give back the array where it is).
        return cupy.array(array, copy=True)


def scatter_add(target, index, values):
    """``target[index] += values``, adding up repeated indices."""
    namespace_of(target).add.at(target, index, values)
