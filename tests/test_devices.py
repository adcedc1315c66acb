"""Devices: the CPU always, a GPU through CuPy when there is one.

Tests taking the ``device`` fixture (``conftest.py``) run on the CPU and,
where CuPy sees a GPU, again on GPU 0; elsewhere the GPU case is skipped.
"""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import backend, nn
from conftest import HAS_GPU, requires_gpu, requires_no_cupy


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


def test_grad_check_on_device(device):
    x = db.tensor(np.array([[0.5, -1.0], [2.0, 0.3]]), device=device,
                  requires_grad=True)
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
