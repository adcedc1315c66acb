"""Devices: the CPU always, a GPU through CuPy or the simulated one.

Tests taking the ``device`` fixture (``conftest.py``) run on the CPU and
again on GPU 0: the real one where CuPy sees a GPU, elsewhere the
simulated GPU of ``fake_cupy`` (two devices, arrays that refuse to become
NumPy arrays implicitly), so that every device path runs on every machine.
Tests marked ``requires_gpu`` get the same GPU.
"""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import backend, nn, tuning
from d2lblocks import kernels as K
from d2lblocks.tensor import apply
from conftest import HAS_CUPY, HAS_GPU, SIMULATED_GPU, requires_gpu, requires_no_cupy
import fake_cupy


# ---- the device objects -----------------------------------------------------
def test_cpu_device():
    dev = db.cpu()
    assert dev.kind == "cpu" and repr(dev) == "cpu"
    assert dev == db.cpu() and dev == "cpu"
    assert hash(dev) == hash(db.cpu())
    assert dev.xp is np


@pytest.mark.skipif(HAS_GPU, reason="checks the fallback without a GPU")
def test_try_gpu_falls_back_to_cpu():
    assert db.try_gpu() == db.cpu()
    assert db.try_gpu(3) == db.cpu()


@requires_gpu
def test_try_gpu_gives_the_gpu_when_there_is_one():
    assert db.try_gpu() == db.gpu(0)
    assert db.try_gpu(db.num_gpus()) == db.cpu()


@requires_no_cupy
def test_without_cupy_there_are_no_gpus():
    assert db.num_gpus() == 0


@requires_no_cupy
@pytest.mark.parametrize("ask", [lambda: db.gpu(), lambda: db.gpu(1),
                                 lambda: db.tensor([1.0], device="gpu:0"),
                                 lambda: db.zeros(2, device="cuda:0"),
                                 lambda: db.tensor([1.0]).to("gpu")])
def test_gpu_without_cupy_says_how_to_install_it(ask):
    with pytest.raises(RuntimeError) as info:
        ask()
    text = str(info.value)
    assert "CuPy" in text and "pip install" in text


@requires_gpu
def test_asking_for_a_missing_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="try_gpu"):
        db.gpu(db.num_gpus())


@pytest.mark.parametrize("text", ["cpu", "CPU", " cpu "])
def test_cpu_strings(text):
    assert backend.as_device(text) == db.cpu()
    assert db.tensor([1.0], device=text).device == db.cpu()


@requires_gpu
@pytest.mark.parametrize("text", ["gpu", "gpu:0", "cuda:0", "cuda", "GPU:0"])
def test_gpu_strings(text):
    assert backend.as_device(text) == db.gpu(0)


@pytest.mark.parametrize("text", ["tpu", "gpu:x", "cpu:1", "", "cuda:-1",
                                  "gpu0", "gpu:0:1"])
def test_bad_device_strings_are_value_errors(text):
    with pytest.raises(ValueError, match="expected a device"):
        backend.as_device(text)
    with pytest.raises(ValueError, match="expected a device"):
        db.tensor([1.0], device=text)


def test_device_of_wrong_type_is_a_value_error():
    with pytest.raises(ValueError, match="expected a device"):
        backend.as_device(0)


# ---- tensors on each device -------------------------------------------------
def test_creation_on_device(device):
    for t in (db.tensor([1.0, 2.0], device=device), db.zeros(2, device=device),
              db.ones(2, device=device), db.rand(2, device=device),
              db.randn(2, device=device), db.arange(2, device=device),
              db.full((2,), 3.0, device=device)):
        assert t.device == device
        assert isinstance(t.numpy(), np.ndarray)
    assert db.zeros_like(db.zeros(2, device=device)).device == device


def test_to_moves_and_keeps_values(device):
    x = db.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x.to(device)
    assert y.device == device
    assert y.requires_grad and y.is_leaf
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    back = y.cpu()
    assert back.device == db.cpu()
    np.testing.assert_array_equal(back.numpy(), x.numpy())
    assert y.to(device) is y                 # nothing to do
    z = y.to(device, dtype=db.float64)
    assert z.dtype == db.float64 and z.device == device
    assert y.to(str(device).replace("(", ":").replace(")", "")).device == device


def test_ops_and_gradients_stay_on_device(device):
    db.manual_seed(0)
    xv = np.random.default_rng(0).normal(size=(4, 3))
    x = db.tensor(xv, device=device, requires_grad=True)
    w = db.tensor(np.ones((2, 3)), device=device, requires_grad=True)
    out = db.log_softmax(db.linear(db.relu(x), w) * 2 - 1, axis=1)
    loss = db.cross_entropy(out, np.array([0, 1, 1, 0])) + (x[x > 0]).sum()
    assert loss.device == device
    loss.backward()
    assert x.grad.device == device and w.grad.device == device
    # The same computation on the host gives the same gradients.
    xc = db.tensor(xv, requires_grad=True)
    wc = db.tensor(np.ones((2, 3)), requires_grad=True)
    outc = db.log_softmax(db.linear(db.relu(xc), wc) * 2 - 1, axis=1)
    (db.cross_entropy(outc, np.array([0, 1, 1, 0])) + xc[xc > 0].sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), xc.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(w.grad.numpy(), wc.grad.numpy(), rtol=1e-10)


# Each op on each device: (function of tensors, shapes of its inputs).
OPS = {
    "add-broadcast": (lambda a, b: a + b, [(3, 4), (4,)]),
    "rsub-mul": (lambda a, b: 2.0 - a * b, [(3, 4), (3, 1)]),
    "div": (lambda a, b: a / (b * b + 1), [(2, 3), (2, 3)]),
    "pow": (lambda a: (a * a + 1) ** 1.5, [(5,)]),
    "rpow": (lambda a: 2.0 ** a, [(2, 2)]),
    "matmul-batched": (lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    "matmul-vector": (lambda a, b: a @ b, [(3, 4), (4,)]),
    "linear": (lambda x, w, b: db.linear(x, w, b), [(4, 3), (2, 3), (2,)]),
    "exp-log-sqrt": (lambda a: db.exp(a) + db.log(a * a + 1) + db.sqrt(a * a + 1),
                     [(2, 3)]),
    "abs-relu": (lambda a: db.abs(a) + db.relu(a), [(7,)]),
    "sigmoid-tanh": (lambda a: db.sigmoid(a) * db.tanh(a), [(3, 3)]),
    "softmax": (lambda a: db.softmax(a, axis=-1), [(2, 5)]),
    "log_softmax": (lambda a: db.log_softmax(a, axis=0), [(4, 3)]),
    "sum-axes-rank4": (lambda a: a.sum(axis=(0, 2)), [(2, 1, 3, 2)]),
    "mean-keepdims": (lambda a: a.mean(axis=-1, keepdims=True), [(3, 4)]),
    "max-min": (lambda a: a.max(axis=1) + a.min(), [(3, 4)]),
    "rank0": (lambda a: a.sum() * a.sum(), [()]),
    "reshape-transpose": (lambda a: a.reshape(3, 2, 2).transpose(1, 0, 2), [(4, 3)]),
    "permute-swapaxes": (lambda a: a.permute(2, 0, 1).swapaxes(0, 1), [(2, 3, 4)]),
    "flatten-unsqueeze-squeeze": (lambda a: a.flatten().unsqueeze(0).squeeze(0),
                                  [(2, 3)]),
    "slices": (lambda a: a[1:, ::2] * a[:-1, 1::2], [(3, 4)]),
    "fancy-index": (lambda a: a[[0, 2]] + a[np.array([1, 1])], [(3, 2)]),
    "mask": (lambda a: a[a > 0].sum() + a[..., None].sum(), [(3, 4)]),
    "concat-stack": (lambda a, b: db.concat([a, b], axis=1).sum(axis=1)
                     + db.stack([a, b], axis=-1).sum(axis=(1, 2)), [(2, 3), (2, 3)]),
    "where-maximum": (lambda a, b: db.where(a > b, a, b) + db.maximum(a, b)
                      - db.minimum(a, b), [(3, 3), (3, 3)]),
    "mse": (lambda a, b: db.mse(a, b), [(4, 2), (4, 2)]),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_gives_the_same_values_and_gradients_on_the_device(device, name):
    fn, shapes = OPS[name]
    rng = np.random.default_rng(len(name))
    arrays = [rng.standard_normal(shape) for shape in shapes]
    results = {}
    for dev in (db.cpu(), device):
        inputs = [db.tensor(a, device=dev, requires_grad=True) for a in arrays]
        out = fn(*inputs)
        assert out.device == dev
        weights = rng.standard_normal(out.shape) if dev == db.cpu() else weights
        (out * db.tensor(weights, dtype=out.dtype, device=dev)).sum().backward()
        for t in inputs:
            assert t.grad.device == dev
        results[dev] = out.numpy(), [t.grad.numpy() for t in inputs]
    (value, grads), (value_there, grads_there) = results[db.cpu()], results[device]
    np.testing.assert_allclose(value_there, value, rtol=1e-12, atol=1e-12)
    for g, g_there in zip(grads, grads_there):
        np.testing.assert_allclose(g_there, g, rtol=1e-12, atol=1e-12)


def test_in_place_changes_and_views_on_the_device(device):
    x = db.zeros(2, 3, device=device)
    row = x[0]
    row[1] = 7.0                          # a view writes through
    x += 1
    assert row.device == device
    np.testing.assert_array_equal(row.numpy(), [1.0, 8.0, 1.0])
    x.mul_(2)
    np.testing.assert_array_equal(x.numpy(), [[2, 16, 2], [2, 2, 2]])
    for source in (db.ones(2, 3), db.ones(2, 3, device=device), np.ones((2, 3))):
        x.zero_()
        x.copy_(source)                   # from any device, as in PyTorch
        assert x.device == device and x.numpy().sum() == 6.0
    x[1] = db.tensor([1.0, 2.0, 3.0])
    x[0] = [4.0, 5.0, 6.0]
    np.testing.assert_array_equal(x.numpy(), [[4, 5, 6], [1, 2, 3]])
    w = db.ones(3, device=device, requires_grad=True)
    (w * 2).sum().backward()
    with db.no_grad():
        w -= 0.25 * w.grad
    assert w.device == device and w.requires_grad
    np.testing.assert_array_equal(w.numpy(), [0.5, 0.5, 0.5])


def test_grad_check_on_device_gpu(gpu):
    x = db.tensor(np.array([[0.5, -1.0], [2.0, 0.3]]), device=gpu,
                  requires_grad=True)
    assert db.grad_check(lambda t: db.tanh(t @ t) * t, x)


def test_grad_check_on_cpu():
    x = db.tensor(np.array([[0.5, -1.0], [2.0, 0.3]]), requires_grad=True)
    assert db.grad_check(lambda t: db.tanh(t @ t) * t, x)


def test_seed_gives_the_same_numbers_on_every_device(device):
    db.manual_seed(7)
    a = db.randn(3, 4)
    db.manual_seed(7)
    b = db.randn(3, 4, device=device)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@requires_gpu
def test_mixing_devices_is_a_clear_error():
    a, b = db.ones(2), db.ones(2, device="gpu:0")
    with pytest.raises(RuntimeError, match="different devices"):
        a + b
    with pytest.raises(RuntimeError, match="different devices"):
        db.concat([a, b])


# ---- networks on each device ------------------------------------------------
class WithBuffer(nn.Block):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("scale", db.tensor([2.0, 3.0]))

    def forward(self, X):
        return self.linear(X) * self.scale


def test_net_to_moves_parameters_buffers_and_grads(device):
    db.manual_seed(0)
    net = WithBuffer()
    X = db.rand(4, 3)
    net(X).sum().backward()
    expected = {k: v.copy() for k, v in net.state_dict().items()}
    assert net.to(device) is net
    for _, p in net.named_parameters():
        assert p.device == device and p.grad.device == device
    for b in net.buffers():
        assert b.device == device
    out = net(X.to(device))
    assert out.device == device
    for k, v in net.state_dict().items():
        assert isinstance(v, np.ndarray)
        np.testing.assert_array_equal(v, expected[k])


def test_lazy_layer_is_made_on_the_input_device(device):
    net = nn.Sequential(nn.Dense(4, activation="relu"), nn.Dense(2))
    net.initialize()
    out = net(db.rand(3, 5, device=device))
    assert out.device == device and out.shape == (3, 2)
    for _, p in net.named_parameters():
        assert p.device == device


def test_training_step_on_device_matches_cpu(device):
    from d2lblocks import optim

    def run(dev):
        db.manual_seed(1)
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        net.to(dev)
        opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        X = db.randn(16, 4, device=dev)
        y = np.arange(16) % 3
        for _ in range(3):
            opt.zero_grad()
            db.cross_entropy(net(X), y).backward()
            opt.step()
        return net.state_dict()

    host, there = run(db.cpu()), run(device)
    for k in host:
        np.testing.assert_allclose(there[k], host[k], rtol=1e-4, atol=1e-6)


# ---- the simulated GPU keeps the host/device boundary honest ----------------
@pytest.mark.skipif(not SIMULATED_GPU, reason="checks the simulated GPU")
def test_simulated_gpu_arrays_refuse_the_host_as_cupy_does(gpu):
    a = gpu.xp.asarray(np.arange(6.0).reshape(2, 3))
    assert not isinstance(a, np.ndarray) and backend.namespace_of(a) is fake_cupy
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        a + np.ones(3)                       # a host array in a GPU operation
    with pytest.raises(TypeError):
        np.concatenate([a, np.ones((1, 3))])
    e = np.exp(a)                            # NumPy's functions dispatch
    s = np.sum(a, axis=1)
    assert isinstance(e, fake_cupy.ndarray) and isinstance(s, fake_cupy.ndarray)
    assert isinstance(a[0, 1], fake_cupy.ndarray)      # no scalars: 0-d
    fake_cupy.reset_transfers()
    np.testing.assert_allclose(fake_cupy.asnumpy(e), np.exp(np.arange(6.0)).reshape(2, 3))
    assert fake_cupy.transfers["to_host"] == 1
    with fake_cupy.cuda.Device(1):
        b = fake_cupy.zeros(3)
        assert b.device.id == 1
        with pytest.raises(ValueError, match="different from the current"):
            a + 1                            # a lives on device 0
    assert backend.device_of(b) == db.gpu(1) and backend.device_of(a) == db.gpu(0)
    # CuPy checks no bounds in fancy indexing: out of range wraps around.
    assert float(a[np.array([0]), np.array([4])].item()) == 1.0
    with pytest.raises(IndexError):
        np.arange(6.0).reshape(2, 3)[np.array([0]), np.array([4])]


def test_set_gpu_module_installs_and_gives_back():
    before = backend.set_gpu_module(fake_cupy)
    try:
        assert db.num_gpus() == fake_cupy.DEVICE_COUNT
        assert db.gpu(1).xp is fake_cupy
        assert backend.set_gpu_module(fake_cupy) is fake_cupy
    finally:
        backend.set_gpu_module(before)
    if not HAS_CUPY:
        assert db.num_gpus() == 0


@requires_gpu
def test_num_gpus_and_try_gpu_count_the_gpus():
    n = db.num_gpus()
    assert n >= 1
    assert db.try_gpu(n - 1) == db.gpu(n - 1) != db.cpu()
    assert db.try_gpu(n) == db.cpu()
    with pytest.raises(RuntimeError, match=f"sees {n} GPU"):
        db.gpu(n)


def test_tensor_and_creation_from_device_data(device):
    x = db.rand(2, 3, device=device)
    for t in (db.tensor(x), db.tensor(x.data), db.zeros_like(x)):
        assert t.device == device and t.shape == (2, 3)
    y = db.tensor(x, device="cpu")
    assert y.device == db.cpu()
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert float(x.sum().item()) == pytest.approx(float(x.numpy().sum()))
    assert db.tensor([[1, 2]], device=device).dtype == db.int64


def test_moving_between_two_gpus(gpu):
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    x = db.tensor([1.0, 2.0], device=gpu)
    y = x.to("gpu:1")
    assert y.device == db.gpu(1) and y.data is not x.data
    np.testing.assert_array_equal(y.numpy(), [1.0, 2.0])
    back = y.to(gpu)
    assert back.device == gpu


def test_creation_on_the_second_gpu(gpu):
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    for t in (db.tensor([1.0], device="gpu:1"), db.zeros(2, device="gpu:1"),
              db.rand(2, device="gpu:1")):
        assert t.device == db.gpu(1)


def test_every_creation_function_on_the_second_gpu(gpu):
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    second = db.gpu(1)
    like = db.tensor([[1.0, 2.0]], device=second)
    made = {
        "tensor": db.tensor(np.arange(3), device=second),
        "tensor of a GPU 0 tensor": db.tensor(db.ones(2, device=gpu),
                                              device="cuda:1"),
        "zeros": db.zeros(2, 3, device=second),
        "ones": db.ones((2,), device=second, dtype=db.float64),
        "full": db.full((2, 2), 7.0, device=second),
        "full int": db.full(3, 4, device="gpu:1", dtype=db.int32),
        "zeros_like": db.zeros_like(like), "ones_like": db.ones_like(like),
        "arange": db.arange(1, 4, device=second),
        "rand": db.rand(2, device=second),
        "randn": db.randn(2, 2, device=second, requires_grad=True),
    }
    for name, t in made.items():
        assert t.device == second, name
    np.testing.assert_array_equal(made["full"].numpy(), np.full((2, 2), 7.0))
    np.testing.assert_array_equal(made["full int"].numpy(), [4, 4, 4])
    np.testing.assert_array_equal(made["arange"].numpy(), [1, 2, 3])
    np.testing.assert_array_equal(made["ones_like"].numpy(), [[1.0, 1.0]])


def test_a_lazy_layer_materializes_on_the_second_gpu(gpu):
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    from d2lblocks import init
    second = db.gpu(1)
    X = db.rand(3, 4, device=second)
    for net in (nn.LazyLinear(2), nn.Sequential(nn.LazyLinear(5), nn.ReLU(),
                                                nn.LazyLinear(2))):
        db.manual_seed(0)
        out = net(X)
        assert out.device == second
        for name, p in net.named_parameters():
            assert p.device == second, name
        out.sum().backward()
        assert all(p.grad.device == second for p in net.parameters())
    # An initializer chosen before the first batch writes there too.
    net = nn.LazyLinear(2)
    net.initialize(init.Constant(0.5))
    net(X)
    assert net.weight.device == second
    np.testing.assert_array_equal(net.weight.numpy(), np.full((2, 4), 0.5))


def _pairs(gpu):
    """Tensors on two different devices: CPU and GPU, and two GPUs."""
    pairs = [(db.ones(2, 3), db.ones(2, 3, device=gpu))]
    if db.num_gpus() >= 2:
        pairs.append((db.ones(2, 3, device=gpu), db.ones(2, 3).to("gpu:1")))
    return pairs


@pytest.mark.parametrize("combine", [
    lambda a, b: a + b, lambda a, b: b * a, lambda a, b: a - b,
    lambda a, b: a / b, lambda a, b: a @ b.T, lambda a, b: db.matmul(a, b.T),
    lambda a, b: db.concat([a, b]), lambda a, b: db.stack([a, b]),
    lambda a, b: db.linear(a, b), lambda a, b: a < b,
    lambda a, b: db.maximum(a, b)],
    ids=["add", "rmul", "sub", "div", "matmul", "db.matmul", "concat",
         "stack", "linear", "less", "maximum"])
def test_mixing_devices_names_both(gpu, combine):
    for a, b in _pairs(gpu):
        for x, y in ((a, b), (b, a)):
            with pytest.raises(RuntimeError) as info:
                combine(x, y)
            text = str(info.value)
            assert "different devices" in text or "device" in text
            assert str(x.device) in text and str(y.device) in text


def test_mixing_devices_in_place_names_both(gpu):
    for a, b in _pairs(gpu):
        with pytest.raises(RuntimeError) as info:
            a += b
        assert str(a.device) in str(info.value) and str(b.device) in str(info.value)


def test_a_network_on_the_gpu_refuses_host_input_clearly(gpu):
    net = nn.Sequential(nn.Linear(3, 2)).to(gpu)
    with pytest.raises(RuntimeError) as info:
        net(db.rand(4, 3))
    assert "cpu" in str(info.value) and str(gpu) in str(info.value)


def test_backward_takes_a_host_gradient_to_the_device(gpu):
    x = db.ones(3, device=gpu, requires_grad=True)
    (x * 2).backward(db.tensor([1.0, 2.0, 3.0]))
    assert x.grad.device == gpu
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_labels_are_moved_to_the_logits_device(device):
    logits = db.tensor([[2.0, 0.0], [0.0, 1.0]], device=device,
                       requires_grad=True)
    for labels in (np.array([0, 1]), [0, 1], db.tensor([0, 1]),
                   db.tensor([0, 1], device=device)):
        loss = db.cross_entropy(logits, labels)
        assert loss.device == device
    loss.backward()
    assert logits.grad.device == device


def test_labels_out_of_range_are_an_error_on_every_device(device):
    logits = db.zeros(2, 3, device=device, requires_grad=True)
    with pytest.raises((IndexError, ValueError)):
        db.cross_entropy(logits, db.tensor([0, 3], device=device))
    with pytest.raises((IndexError, ValueError)):
        db.cross_entropy(logits, np.array([0, 3]))


@pytest.mark.parametrize("labels, got", [
    ([0, 3], "max label 3"), ([2, 7], "max label 7"), ([-1, 0], "min label -1"),
    ([-2, 4], "labels from -2 to 4")])
@pytest.mark.parametrize("dtype", ["int64", "int32"])
def test_labels_out_of_range_say_what_was_expected_and_given(device, labels,
                                                              got, dtype):
    logits = db.zeros(2, 3, device=device, requires_grad=True)
    for y in (db.tensor(np.array(labels, dtype), device=device),
              np.array(labels, dtype)):
        with pytest.raises(ValueError) as info:
            db.cross_entropy(logits, y)
        assert str(info.value).endswith(
            f"labels must lie in [0, 3) for 3 classes; got {got}")
    assert logits.grad is None


def test_the_largest_and_smallest_labels_are_fine_on_every_device(device):
    logits = db.tensor(np.log([[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]),
                       device=device, requires_grad=True)
    for dtype in ("int64", "int32", "uint8"):
        y = db.tensor(np.array([0, 2], dtype), device=device)
        loss = db.cross_entropy(logits, y)
        np.testing.assert_allclose(loss.item(), -np.log([0.5, 0.6]).mean(),
                                   rtol=1e-5)


@pytest.mark.skipif(not SIMULATED_GPU, reason="counts the simulated copies")
@pytest.mark.parametrize("labels, fine", [
    ([0, 2], True), ([2, 2], True), ([0, 3], False), ([-1, 0], False)])
def test_the_label_check_on_the_gpu_reads_back_one_value(gpu, labels, fine):
    logits = db.zeros(2, 3, device=gpu, requires_grad=True)
    y = db.tensor(labels, device=gpu)
    fake_cupy.reset_transfers()
    if fine:
        db.cross_entropy(logits, y)
        # The loss stays on the GPU: one value read, the check's.
        assert fake_cupy.transfers == {"to_host": 0, "scalars": 1,
                                       "to_device": 0, "peer": 0}
    else:
        with pytest.raises(ValueError, match="must lie in"):
            db.cross_entropy(logits, y)
        # Only once the check has failed are the labels read again, for
        # the message.
        assert fake_cupy.transfers["scalars"] == 1


def test_computing_on_the_second_gpu(gpu):
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    x = db.tensor([1.0, 2.0], device=gpu).to("gpu:1")
    y = (x * 2).sum()
    assert y.device == db.gpu(1)


def test_ops_and_backward_on_the_second_gpu(gpu):
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    second = db.gpu(1)
    x = db.tensor([[0.5, -1.0], [2.0, 0.25]], device=second, requires_grad=True)
    w = db.tensor([[1.0, 2.0], [3.0, -1.0]], device=second, requires_grad=True)
    b = db.tensor([0.5, -0.5], device=second, requires_grad=True)
    h = db.linear(x, w, b).relu()
    y = db.concat([h, db.exp(x)], 1).sum(dim=-1)
    loss = db.cross_entropy(db.stack([y, -y]), db.tensor([0, 1], device=second))
    assert all(t.device == second for t in (h, y, loss))
    loss.backward()
    for t in (x, w, b):
        assert t.grad.device == second
    # The same computation on the CPU gives the same gradients.
    xc, wc, bc = (db.tensor(t.numpy(), requires_grad=True) for t in (x, w, b))
    yc = db.concat([db.linear(xc, wc, bc).relu(), db.exp(xc)], 1).sum(dim=-1)
    db.cross_entropy(db.stack([yc, -yc]), db.tensor([0, 1])).backward()
    for t, tc in ((x, xc), (w, wc), (b, bc)):
        np.testing.assert_allclose(t.grad.numpy(), tc.grad.numpy(), rtol=1e-6)


def test_constants_and_in_place_writes_on_the_second_gpu(gpu):
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    second = db.gpu(1)
    x = db.tensor([[1.0, -2.0], [0.5, 3.0]], device=second, requires_grad=True)
    host = x.numpy()
    for name, got, want in [
            ("maximum", db.maximum(x, 0.5), np.maximum(host, 0.5)),
            ("minimum", db.minimum(2.0, x), np.minimum(2.0, host)),
            ("where", db.where(x > 0, x, 0.0), np.where(host > 0, host, 0.0)),
            ("where int", db.where(db.tensor([1, 0], device=second), x, -1.0),
             np.where([1, 0], host, -1.0))]:
        assert got.device == second, name
        np.testing.assert_array_equal(got.numpy(), want, err_msg=name)
    # In place: recorded (a node of the graph) and inside no_grad().
    y = x * 1.0
    y[0] = 5.0
    y[1] = [1.0, 2.0]
    y += db.ones(2, device=second)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), [[6.0, 6.0], [2.0, 3.0]])
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 2)))
    assert x.grad.device == second
    with db.no_grad():
        x *= 2
        x -= 0.5 * x.grad
        x[0, 1] = 7.0
    x.detach().fill_(1.0)
    z = db.zeros(2, 2, device=second)
    z.copy_(np.arange(4.0).reshape(2, 2))
    assert x.device == second and z.device == second
    np.testing.assert_array_equal(x.numpy(), np.ones((2, 2)))
    np.testing.assert_array_equal(z.numpy(), [[0.0, 1.0], [2.0, 3.0]])


def test_backward_seeded_with_a_gradient_on_the_second_gpu(gpu):
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    x = db.ones(3, device="gpu:1", requires_grad=True)
    (x * 2).backward(db.tensor([1.0, 2.0, 3.0]))
    assert x.grad.device == db.gpu(1)
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0, 6.0])


class _WrongSquare(K.Op):
    """``x * x`` with a backward that forgets the factor 2."""
    __slots__ = ("x",)
    saves = (0,)

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return (g * self.x,)


def test_grad_check_on_the_second_gpu(gpu):
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    x = db.tensor(np.array([[0.5, -1.0], [2.0, 0.3]]), device="gpu:1",
                  requires_grad=True)
    w = db.tensor(np.array([[1.0], [-2.0]]), device="gpu:1",
                  requires_grad=True)
    assert db.grad_check(lambda a, b: db.sigmoid(a @ b) * a, x, w)
    # A wrong gradient is still found there.
    with pytest.raises(AssertionError, match="wrong gradient"):
        db.grad_check(lambda a: apply(_WrongSquare(), a), x)


# ---- optimizers, state and hybridize on each device --------------------------
def _train(dev, make_opt, steps=3, hybrid=False):
    """Train a small network on ``dev`` from a fixed seed; its state and
    losses. With ``hybrid``, the step is hybridized (and the network has
    no dropout, which would keep it eager) and must have been replayed."""
    from d2lblocks import init, optim
    db.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                        nn.Dropout(0.3) if hybrid is False else nn.Identity(),
                        nn.Linear(8, 3))
    net.to(dev)
    net.initialize(init.Normal(0, 0.5), force_reinit=True)
    opt = make_opt(optim, net.parameters())
    X = db.randn(16, 4, device=dev)
    y = np.arange(16) % 3

    def step():
        opt.zero_grad()
        loss = db.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
        return loss
    if hybrid:
        step = db.hybridize(step)
    losses = [step() for _ in range(steps)]
    if hybrid:
        assert db.hybrid.stats(step)["replays"] == steps - 1
    assert all(loss.device == dev for loss in losses)
    for p in net.parameters():
        assert p.device == dev and p.grad.device == dev
    return net.state_dict(), [float(loss.item()) for loss in losses]


OPTIMIZERS = {
    "sgd": lambda optim, ps: optim.SGD(ps, lr=0.1),
    "sgd-momentum-decay": lambda optim, ps: optim.SGD(
        ps, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "adam": lambda optim, ps: optim.Adam(ps, lr=0.01),
}


INITIALIZERS = {
    "Normal": lambda init, p: init.Normal(0, 0.5)(p),
    "Uniform": lambda init, p: init.Uniform(-0.5, 0.5)(p),
    "Constant": lambda init, p: init.Constant(0.25)(p),
    "Xavier": lambda init, p: init.Xavier()(p),
    "Kaiming": lambda init, p: init.Kaiming()(p),
    "normal_": lambda init, p: init.normal_(p, 0, 0.5),
    "uniform_": lambda init, p: init.uniform_(p, -1, 1),
    "constant_": lambda init, p: init.constant_(p, 3.0),
    "zeros_": lambda init, p: init.zeros_(p),
    "ones_": lambda init, p: init.ones_(p),
    "xavier_uniform_": lambda init, p: init.xavier_uniform_(p),
    "xavier_normal_": lambda init, p: init.xavier_normal_(p),
    "kaiming_uniform_": lambda init, p: init.kaiming_uniform_(p),
    "kaiming_normal_": lambda init, p: init.kaiming_normal_(p),
}


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_initializers_fill_parameters_where_they_live(device, name):
    """An initializer writes into a parameter on the device, keeps it
    there, and draws the same numbers as on the CPU from the same seed."""
    from d2lblocks import init
    values = {}
    for dev in (db.cpu(), device):
        layer = nn.Linear(6, 4).to(dev)
        db.manual_seed(5)
        INITIALIZERS[name](init, layer.weight)
        assert layer.weight.device == dev
        values[dev] = layer.weight.numpy()
    np.testing.assert_array_equal(values[device], values[db.cpu()])


def test_plain_state_of_a_device_tensor_is_on_the_host(device):
    t = db.tensor([[1.0, 2.0]], device=device, requires_grad=True)
    state = db.state.get_state(t)
    arrays = [v for v in state.values() if hasattr(v, "shape")]
    assert arrays and all(type(v) is np.ndarray for v in arrays)
    back = db.state.empty(type(t))
    db.state.set_state(back, state)
    np.testing.assert_array_equal(back.numpy(), [[1.0, 2.0]])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_step_on_the_device_as_on_the_cpu(device, name):
    host, host_losses = _train(db.cpu(), OPTIMIZERS[name])
    there, losses = _train(device, OPTIMIZERS[name])
    np.testing.assert_allclose(losses, host_losses, rtol=1e-5)
    for k in host:
        np.testing.assert_allclose(there[k], host[k], rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not SIMULATED_GPU, reason="counts the simulated copies")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_training_step_on_the_gpu_copies_nothing_to_the_host(gpu, name):
    from d2lblocks import optim
    db.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).to(gpu)
    opt = OPTIMIZERS[name](optim, net.parameters())
    X = db.randn(16, 4, device=gpu)
    y = db.tensor(np.arange(16) % 3, device=gpu)
    fake_cupy.reset_transfers()
    for _ in range(2):
        opt.zero_grad()
        db.cross_entropy(net(X), y).backward()
        opt.step()
    assert fake_cupy.transfers["to_host"] == 0
    # One value per step: the loss checks that every label is in range.
    assert fake_cupy.transfers["scalars"] <= 2


def test_state_dict_arrives_on_the_host_and_loads_onto_any_device(device, tmp_path):
    db.manual_seed(0)
    source = WithBuffer().to(device)
    source(db.rand(2, 3, device=device))
    state = source.state_dict()
    assert all(type(v) is np.ndarray for v in state.values())
    # A host checkpoint into a network on the device: values move there.
    target = WithBuffer().to(device)
    target.load_state_dict(state)
    for k, v in target.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    for p in target.parameters():
        assert p.device == device
    assert all(b.device == device for b in target.buffers())
    # Saved on the device, loaded on the CPU, and the other way round.
    source.save(tmp_path / "net.npz")
    on_cpu = WithBuffer()
    on_cpu.load(tmp_path / "net.npz")
    X = db.rand(5, 3)
    np.testing.assert_allclose(on_cpu(X).numpy(), source(X.to(device)).numpy(),
                               rtol=1e-6)
    on_cpu.save(tmp_path / "cpu.npz")
    again = WithBuffer().to(device)
    again.load(tmp_path / "cpu.npz")
    assert all(p.device == device for p in again.parameters())
    np.testing.assert_allclose(again(X.to(device)).numpy(), on_cpu(X).numpy(),
                               rtol=1e-6)


def test_a_lazy_network_on_the_device_loads_a_host_state(device):
    db.manual_seed(0)
    full = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    lazy = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.LazyLinear(2)).to(device)
    lazy.load_state_dict(full.state_dict())
    X = db.rand(2, 3)
    out = lazy(X.to(device))
    assert out.device == device
    np.testing.assert_allclose(out.numpy(), full(X).numpy(), rtol=1e-6)


def test_hybridized_block_on_the_device_matches_eager(device):
    db.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2)).to(device)
    X = db.rand(4, 5, device=device)
    eager = net(X).numpy()
    net.hybridize()
    outs = [net(X) for _ in range(3)]
    for out in outs:
        assert out.device == device
        np.testing.assert_allclose(out.numpy(), eager, rtol=1e-6)
    assert db.hybrid.stats(net)["replays"] >= 1


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_hybridized_training_step_on_the_device_matches_eager(device, name):
    eager_state, eager_losses = _train(device, OPTIMIZERS[name], steps=4,
                                       hybrid=None)
    state, losses = _train(device, OPTIMIZERS[name], steps=4, hybrid=True)
    np.testing.assert_allclose(losses, eager_losses, rtol=1e-5)
    for k in eager_state:
        np.testing.assert_allclose(state[k], eager_state[k], rtol=1e-5,
                                   atol=1e-7)


# ---- importing changes nothing in the process ---------------------------------
_IMPORT_PROBE = r"""
import json, sys
import numpy, numpy.random          # NumPy's own libraries: the baseline

def shared_objects():
    with open("/proc/self/maps") as f:
        return {line.split()[-1] for line in f if ".so" in line}

before = shared_objects()
calls = []
# Every use of ctypes (loading a library, looking up a symbol such as
# mallopt or a BLAS routine) raises an audit event.
sys.addaudithook(lambda event, args: calls.append(event)
                 if event.startswith("ctypes.") else None)
import d2lblocks
print(json.dumps({"new": sorted(shared_objects() - before), "ctypes": calls,
                  "site": [p for p in sys.path if p.endswith("site-packages")]}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="reads /proc/self/maps")
def test_import_leaves_the_process_alone():
    """`import d2lblocks` binds no native library through ctypes (so it
    cannot retune glibc's allocator with mallopt or call into NumPy's
    private OpenBLAS) and maps no shared object from an installed package
    other than NumPy's own."""
    out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], check=True,
                         capture_output=True, text=True, timeout=120)
    found = json.loads(out.stdout)
    assert found["ctypes"] == []
    numpy_dir = os.path.dirname(np.__file__)
    foreign = [path for path in found["new"]
               if any(path.startswith(site) for site in found["site"])
               and not path.startswith(numpy_dir)]
    assert foreign == []


def test_tune_process_is_an_explicit_opt_in():
    probe = ("import sys, d2lblocks\n"
             "calls = []\n"
             "sys.addaudithook(lambda e, a: calls.append(e) "
             "if e.startswith('ctypes.') else None)\n"
             "changed = d2lblocks.backend.tune_process()\n"
             "print(changed, bool(calls))\n")
    out = subprocess.run([sys.executable, "-c", probe], check=True,
                         capture_output=True, text=True, timeout=120)
    changed, used_ctypes = out.stdout.split()
    if platform.libc_ver()[0] == "glibc":
        assert (changed, used_ctypes) == ("True", "True")
    assert backend.tune_process(keep_freed_memory=False) is False
    assert backend.tune_process is tuning.tune_process


_BLAS_PROBE = r"""
import json, sys
from threadpoolctl import threadpool_info
import numpy as np
import d2lblocks as db
from d2lblocks import nn, optim

def blas():
    return sorted(p["num_threads"] for p in threadpool_info()
                  if p["user_api"] == "blas")

before = blas()
calls = []
sys.addaudithook(lambda event, args: calls.append(event)
                 if event.startswith("ctypes.") else None)
db.manual_seed(0)
for batch in (1, 16, 256):          # products below, in and above the
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = optim.SGD(net.parameters(), lr=0.1)  # band once run on one thread
    X = db.rand(batch, 784)
    y = np.arange(batch) % 10
    step = db.hybridize(lambda: (opt.zero_grad(),
                                 db.cross_entropy(net(X), y).backward(),
                                 opt.step()))
    for _ in range(3):
        step()
during = len(calls)
after = blas()
db.backend.tune_process(keep_freed_memory=False, blas_threads=1)
print(json.dumps({"before": before, "after": after, "ctypes": during,
                  "tuned": blas()}))
"""


def test_training_leaves_blas_threads_to_the_process():
    """Training (eager and replayed) neither calls into a native library
    through ctypes nor changes BLAS's threads; ``tune_process(
    blas_threads=1)`` sets them once, for the whole process."""
    pytest.importorskip("threadpoolctl")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", _BLAS_PROBE], check=True,
                         capture_output=True, text=True, timeout=300, env=env)
    found = json.loads(out.stdout)
    assert found["ctypes"] == 0
    assert found["after"] == found["before"]
    assert found["tuned"] and set(found["tuned"]) == {1}


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_tune_process_refuses_a_bad_thread_count(bad):
    with pytest.raises(ValueError, match="blas_threads must be a positive int"):
        tuning.tune_process(keep_freed_memory=False, blas_threads=bad)


def test_backend_holds_no_foreign_calls():
    """The array layer reaches no native library itself: no ctypes, no
    raw addresses (process tuning lives in ``tuning.tune_process``)."""
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(backend))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "ctypes" not in imported
    source = inspect.getsource(backend)
    assert "__array_interface__" not in source and "ctypes" not in source


def test_the_library_modules_import_each_other_without_a_circle():
    """Each module of d2lblocks imports only modules below it: reading
    them in import order, nobody needs a module that needs it back."""
    import ast
    import pathlib
    root = pathlib.Path(db.__file__).parent
    graph = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__") or "__init__"
        package = rel.parts[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = list(package[:len(package) - node.level + 1])
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:     # a module, or a name in one
                    sub = f"{target}.{alias.name}" if target else alias.name
                    where = root / sub.replace(".", "/")
                    is_module = where.with_suffix(".py").exists() or where.is_dir()
                    deps.add(sub if is_module else target)
        graph[name] = {d for d in deps if d and d != name}
    # Only the packages' own __init__ files gather their submodules.
    graph = {k: {d for d in v if not k.endswith("__init__") and k != "nn"}
             for k, v in graph.items()}
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import circle: {trail + [node]}"
        state[node] = "open"
        for dep in graph.get(node, ()):
            visit(dep, trail + [node])
        state[node] = "done"
    for module in graph:
        visit(module, [])
    assert {"tensor", "kernels", "ops"} <= set(graph)
    assert "ops" not in graph["tensor"] and "tensor" not in graph["kernels"]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("hybrid", [False, True], ids=["eager", "hybrid"])
def test_training_on_the_second_gpu_matches_the_cpu(gpu, name, hybrid):
    """Updates and initial values run on the GPU that holds the parameter,
    not on the current one (a GPU without peer access refuses that)."""
    if db.num_gpus() < 2:
        pytest.skip("needs two GPUs")
    host, host_losses = _train(db.cpu(), OPTIMIZERS[name], hybrid=hybrid)
    there, losses = _train(db.gpu(1), OPTIMIZERS[name], hybrid=hybrid)
    np.testing.assert_allclose(losses, host_losses, rtol=1e-5)
    for key in host:
        np.testing.assert_allclose(there[key], host[key], rtol=1e-4, atol=1e-6)
