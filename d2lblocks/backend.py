"""Where arrays live: NumPy on the host, or CuPy on a GPU.

This is the only module that imports CuPy, and it does so lazily, the first
time a GPU is asked for. Everything above it asks this module for the array
namespace of a device (``xp``) instead of importing NumPy or CuPy itself.
Importing it changes nothing outside d2lblocks; ``tune_process()`` is an
explicit opt-in for process-wide tuning.
"""

import sys

import os
import weakref

import numpy as np

__all__ = ["Device", "cpu", "gpu", "num_gpus", "try_gpu", "as_device",
           "device_of", "namespace_of", "to_host", "move", "scatter_add",
           "set_gpu_module", "tune_process"]

_cupy = None          # the cupy module, once it has been imported
_cupy_error = None    # why importing it failed, once it has been tried

_INSTALL_HINT = ("GPU support needs CuPy built for your CUDA version, e.g. "
                 "`pip install 'd2lblocks[gpu]'` (CUDA 12) or "
                 "`pip install cupy-cuda11x`; see https://docs.cupy.dev.")


def tune_process(keep_freed_memory=True):
    """Opt in to process-wide tuning for long training runs; returns
    whether anything was changed. Importing d2lblocks never does this.

    With ``keep_freed_memory``, glibc is asked to keep freed memory for
    reuse instead of handing it back: a training step allocates and frees
    the same large temporaries every time, and with glibc's defaults arrays
    above 128 KiB are mapped fresh and the heap is trimmed, so every step
    faults those pages in again (measured: 200 page faults per step of the
    784-256-10 MLP at batch 4096, a few percent of its time). Deep-learning
    frameworks pool their memory for the same reason. It changes the host
    allocator of the whole process (every library in it), which is why it
    is a choice for the program's author to make, and does nothing on
    systems without glibc.
    """
    if not keep_freed_memory or not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):      # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 32 << 20) and
                mallopt(m_trim_threshold, 512 << 20))


# ---- BLAS threads for small products -------------------------------------------
# OpenBLAS splits a product over its threads from about 2**18 multiply-adds
# on, and its threads wait for each other by spinning. When one of them is
# not running (another process has the core, a busy virtual machine), the
# others spin through whole time slices: a product worth tens of
# microseconds then costs milliseconds (measured on a busy 2-core machine:
# 16x784 @ 784x256 took 4.6 ms with 2 threads, 0.25 ms with 1). Up to 2**24
# multiply-adds a second thread saves little even on an idle machine, so
# such products run on one thread; the caller's setting is given back
# right after, and larger products keep every thread.
_ONE_THREAD_WORK = (1 << 18, 1 << 24)


class _Blas:
    """The few functions of the OpenBLAS that NumPy's wheels bundle that
    d2lblocks calls itself: ``get``/``set`` of its thread count, and
    ``axpy`` by dtype. None (or empty) for another BLAS: then nothing here
    changes or calls it."""
    get = set = None
    axpy = {}
    searched = False


def _find_blas():
    _Blas.searched = True
    import ctypes
    import glob
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)),
                          "numpy.libs")
    for path in sorted(glob.glob(os.path.join(folder, "libscipy_openblas*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", "_64_", ""):
            get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
            if get is None or put is None:
                continue
            get.restype, get.argtypes = ctypes.c_int, []
            put.restype, put.argtypes = None, [ctypes.c_int]
            _Blas.get, _Blas.set = get, put
            # ILP64 builds (a "64" in the suffix) take 64-bit integers.
            index = ctypes.c_int64 if "64" in suffix else ctypes.c_int
            for letter, dtype, scalar in (("s", np.float32, ctypes.c_float),
                                          ("d", np.float64, ctypes.c_double)):
                fn = getattr(lib, f"scipy_cblas_{letter}axpy{suffix}", None)
                if fn is not None:
                    fn.restype = None
                    fn.argtypes = [index, scalar, ctypes.c_void_p, index,
                                   ctypes.c_void_p, index]
                    _Blas.axpy[np.dtype(dtype)] = fn
            return


def _one_thread(fn, *args):
    """``fn(*args)`` with the bundled OpenBLAS limited to one thread (the
    caller's setting is given back right after)."""
    if not _Blas.searched:
        _find_blas()
    get = _Blas.get
    n = 1 if get is None else get()
    if n <= 1:
        return fn(*args)
    _Blas.set(1)
    try:
        return fn(*args)
    finally:
        _Blas.set(n)


def dot(a, b, out=None):
    """``a.dot(b)`` for 2-D arrays, into ``out`` when given; on the host, a
    product too small to gain from several BLAS threads runs on one (see
    above)."""
    if type(a) is np.ndarray:
        return dot_for(a.shape, b.shape)(a, b, out)
    return a.dot(b) if out is None else a.dot(b, out=out)


def dot_for(a_shape, b_shape):
    """The function that :func:`dot` calls for host arrays of these 2-D
    shapes: ``np.dot``, or ``np.dot`` on one BLAS thread. For code that
    multiplies arrays of fixed shapes many times (a replay)."""
    work = a_shape[0] * a_shape[1] * b_shape[1]
    lo, hi = _ONE_THREAD_WORK
    return dot_one_thread if lo <= work < hi else np.dot


def dot_one_thread(a, b, out=None):
    """``np.dot(a, b, out)`` with the bundled OpenBLAS on one thread."""
    return _one_thread(np.dot, a, b, out)


# Below this many elements, two NumPy calls cost less than one foreign call.
_AXPY_MIN = 1 << 15


def sub_scaled(w, alpha, g, scratch):
    """``w -= alpha * g``, in place: the update of gradient descent.

    NumPy needs two passes over memory for it (``alpha * g`` into
    ``scratch``, then the subtraction). For large host arrays the BLAS
    routine ``axpy`` does it in one, and at small batches an optimizer
    step is mostly such passes over the weights. The result may differ
    from the two-pass form in the last bit (``axpy`` may fuse the
    multiply and the add).
    """
    axpy = _axpy_for(w, g)
    if axpy is not None:
        # Memory-bound: a second thread gains little and may spin.
        _one_thread(axpy, w.size, -alpha, _address(g), 1, _address(w), 1)
        return
    np.multiply(g, alpha, out=scratch)
    np.subtract(w, scratch, out=w)


def scaled_subtractor(w, g):
    """A function ``f(alpha)`` that does ``w -= alpha * g`` for these two
    arrays in one pass, or None where :func:`sub_scaled` would make two
    (small, strided, other dtypes, CuPy). For an update repeated on the
    same arrays: every check is made once, here. It keeps no reference to
    them (a caller that reuses ``g`` counts references to it), so call it
    only while both are alive: check their identity through weak
    references first."""
    axpy = _axpy_for(w, g)
    if axpy is None:
        return None
    n, pg, pw = w.size, _address(g), _address(w)

    def subtract_scaled(alpha):
        _one_thread(axpy, n, -alpha, pg, 1, pw, 1)
    return subtract_scaled


def _axpy_for(w, g):
    """BLAS ``axpy`` for ``w -= a * g`` when it applies, else None."""
    if (type(w) is np.ndarray and type(g) is np.ndarray and w.size >= _AXPY_MIN
            and w.dtype is g.dtype and w.shape == g.shape
            and w.flags.c_contiguous and g.flags.c_contiguous
            and w.flags.writeable):
        if not _Blas.searched:
            _find_blas()
        axpy = _Blas.axpy.get(w.dtype)
        if axpy is not None and not np.may_share_memory(w, g):
            return axpy
    return None


_ADDRESSES = {}      # id(array) -> (weak reference, size, address)


def _address(a):
    """Where ``a``'s data starts. Asking NumPy builds a dict per call, which
    costs more than the update of a small layer; so the answer is kept
    while the array lives (and its size is unchanged: an in-place
    ``resize`` may move the data)."""
    key = id(a)
    hit = _ADDRESSES.get(key)
    if hit is not None and hit[0]() is a and hit[1] == a.size:
        return hit[2]
    address = a.__array_interface__["data"][0]
    if len(_ADDRESSES) >= 1024:
        _ADDRESSES.clear()
    _ADDRESSES[key] = (weakref.ref(a, lambda _: _ADDRESSES.pop(key, None)),
                       a.size, address)
    return address


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
