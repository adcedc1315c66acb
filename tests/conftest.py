"""Shared fixtures for the d2lblocks test suite.

* ``device``: parametrizes a test over the CPU and GPU 0. GPU 0 is the real
  one where CuPy sees a GPU; elsewhere it is a simulated GPU
  (``fake_cupy``, installed for the test through
  ``backend.set_gpu_module``), so that every device path runs on every
  machine. ``gpu`` is that GPU alone, and ``requires_gpu`` marks a test
  that needs it.
* ``central_difference``: a gradient by central differences that does not
  use ``db.grad_check``, so a bug there cannot hide a bug in an op.
* A Hypothesis profile with no per-example deadline (CI machines are slow
  and share two cores) and a modest default number of examples.
"""

import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import d2lblocks as db
from d2lblocks import backend

import fake_cupy

settings.register_profile(
    "d2lblocks", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("d2lblocks")

HAS_CUPY = importlib.util.find_spec("cupy") is not None
HAS_GPU = HAS_CUPY and db.num_gpus() > 0
#: True where the ``gpu`` fixture gives the simulated GPU.
SIMULATED_GPU = not HAS_GPU

requires_gpu = pytest.mark.usefixtures("gpu")
requires_no_cupy = pytest.mark.skipif(
    HAS_CUPY, reason="checks behaviour when CuPy is not installed")

DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("gpu", id="gpu")]


@pytest.fixture
def gpu():
    """GPU 0: the real one where CuPy sees a GPU, else the simulated one
    (with ``fake_cupy.DEVICE_COUNT`` GPUs), installed for this test only."""
    if HAS_GPU:
        yield db.gpu(0)
        return
    before = backend.set_gpu_module(fake_cupy)
    fake_cupy.reset_transfers()
    try:
        yield db.gpu(0)
    finally:
        backend.set_gpu_module(before)
        fake_cupy.Device._stack[:] = [0]


@pytest.fixture(params=DEVICES)
def device(request):
    """A ``db.Device``: the CPU, then GPU 0 (real or simulated)."""
    if request.param == "cpu":
        return db.cpu()
    return request.getfixturevalue("gpu")


@pytest.fixture
def seeded():
    """Seed d2lblocks' generator so that random tensors repeat."""
    db.manual_seed(0)


def central_difference(fn, arrays, index, weights, eps=1e-6):
    """Central-difference gradient of ``sum(fn(*tensors) * weights)`` with
    respect to ``arrays[index]``.

    ``arrays`` are float64 NumPy arrays; each evaluation wraps fresh
    constant tensors around (copies of) them, so nothing here touches
    autograd.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    x = arrays[index]
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)

    def value():
        out = fn(*[db.tensor(a) for a in arrays])
        return float(np.sum(np.asarray(out.numpy(), np.float64) * weights))

    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        up = value()
        flat[i] = saved - eps
        down = value()
        flat[i] = saved
        gflat[i] = (up - down) / (2 * eps)
    return grad


@pytest.fixture(name="central_difference")
def central_difference_fixture():
    """The :func:`central_difference` helper, for other test files."""
    return central_difference


def parameter_central_difference(net, loss_fn, eps=1e-6):
    """Central-difference gradients of ``loss_fn()`` with respect to every
    parameter of ``net``, by nudging each element in place.

    Returns ``{name: array}``. Use a float64 network (``net.to(dtype=
    db.float64)``) so the differences are precise.
    """
    grads = {}
    with db.no_grad():
        for name, p in net.named_parameters():
            flat = p.data.reshape(-1)
            g = np.zeros(flat.size)
            for i in range(flat.size):
                saved = flat[i]
                flat[i] = saved + eps
                up = float(loss_fn().item())
                flat[i] = saved - eps
                down = float(loss_fn().item())
                flat[i] = saved
                g[i] = (up - down) / (2 * eps)
            grads[name] = g.reshape(p.shape)
    return grads
