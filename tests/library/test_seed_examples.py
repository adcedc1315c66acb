"""Every example of section 5.1 ("Layers and Blocks"), tab by tab.

``tests/library/seed_tabs/`` holds the seed's code for each framework tab (Gluon,
PyTorch, Keras), run on d2lblocks with only the import lines changed where
that is possible. Each test runs one example of one tab and checks the
section's output shape, the same computation done by hand in NumPy from the
network's own parameters, and, after ``backward()``, a gradient for every
parameter and none for the constant weight.
"""

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import nn
from conftest import parameter_central_difference
from seed_tabs import gluon, keras, pytorch


@pytest.fixture
def X():
    db.manual_seed(0)
    return db.rand(2, 20)


def _relu(a):
    return np.maximum(a, 0)


def _dense(p, prefix, a, relu=False):
    """A dense layer in NumPy from a state dict ``p``."""
    out = a @ p[f"{prefix}weight"].T + p[f"{prefix}bias"]
    return _relu(out) if relu else out


def _halve(a):
    while np.abs(a).sum() > 1:
        a = a / 2
    return a.sum()


def assert_matches_two_layer_mlp(net, out, X, hidden, output):
    """``out`` is relu(dense ``hidden``) then dense ``output``, recomputed in
    NumPy from the network's own state dict (prefixes such as ``"0."``)."""
    p = net.state_dict()
    ref = _dense(p, output, _dense(p, hidden, X.numpy(), relu=True))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    return p


def assert_all_parameters_get_gradients(net, out):
    out.sum().backward() if out.ndim else out.backward()
    params = list(net.named_parameters())
    assert params
    for name, p in params:
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.shape == p.shape
    total = sum(float(np.abs(p.grad.numpy()).sum()) for _, p in params)
    assert total > 0


# ---- Gluon tab -------------------------------------------------------------
def test_gluon_sequential():
    db.manual_seed(0)
    net, X, out = gluon.run_sequential()
    assert X.shape == (2, 20) and X.dtype == db.float32
    assert 0 <= X.numpy().min() and X.numpy().max() < 1
    assert out.shape == (2, 10) and out.dtype == db.float32
    p = assert_matches_two_layer_mlp(net, out, X, "0.", "1.")
    assert p["0.weight"].shape == (256, 20)
    assert_all_parameters_get_gradients(net, out)


def test_gluon_mlp(X):
    net, X, out = gluon.run_mlp(X)
    assert out.shape == (2, 10)
    p = assert_matches_two_layer_mlp(net, out, X, "hidden.", "out.")
    assert list(p) == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    assert_all_parameters_get_gradients(net, out)


def test_gluon_my_sequential(X):
    net, X, out = gluon.run_my_sequential(X)
    assert out.shape == (2, 10)
    first, second = net._children.values()
    # initialize() and parameters() look inside _children.
    assert len(net.parameters()) == 4
    assert [n.split(".")[0] for n, _ in net.named_parameters()][::2] == \
        [first.name, second.name]
    p = net.state_dict()
    ref = _dense(p, f"{second.name}.",
                 _dense(p, f"{first.name}.", X.numpy(), relu=True))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert_all_parameters_get_gradients(net, out)


def test_block_names_are_unique():
    names = {nn.Dense(3).name for _ in range(5)}
    assert len(names) == 5 and all(n.startswith("dense") for n in names)


def test_gluon_fixed_hidden_mlp(X):
    db.manual_seed(1)
    net, X, out = gluon.run_fixed_hidden_mlp(X)
    assert out.shape == ()
    assert abs(out.item()) <= 1
    p = net.state_dict()
    assert list(p) == ["rand_weight", "dense.weight", "dense.bias"]
    h = _dense(p, "dense.", X.numpy(), relu=True)
    h = _relu(h @ p["rand_weight"] + 1)
    ref = _halve(_dense(p, "dense.", h, relu=True))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-5, atol=1e-7)
    assert_all_parameters_get_gradients(net, out)
    assert [n for n, _ in net.named_parameters()] == ["dense.weight",
                                                      "dense.bias"]
    assert net.rand_weight.grad is None and not net.rand_weight.requires_grad


def test_gluon_chimera(X):
    chimera, X, out = gluon.run_chimera(X)
    assert out.shape == ()
    assert abs(out.item()) <= 1
    p = chimera.state_dict()
    h = _dense(p, "0.net.0.", X.numpy(), relu=True)
    h = _dense(p, "0.net.1.", h, relu=True)
    h = _dense(p, "0.dense.", h, relu=True)
    h = _dense(p, "1.", h)
    h = _dense(p, "2.dense.", h, relu=True)
    h = _relu(h @ p["2.rand_weight"] + 1)
    ref = _halve(_dense(p, "2.dense.", h, relu=True))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-4, atol=1e-6)
    assert_all_parameters_get_gradients(chimera, out)
    assert chimera[2].rand_weight.grad is None


# ---- PyTorch tab -------------------------------------------------------------
def test_torch_sequential():
    db.manual_seed(0)
    net, X, out = pytorch.run_sequential()
    assert out.shape == (2, 10)
    p = assert_matches_two_layer_mlp(net, out, X, "0.", "2.")
    assert list(p) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert_all_parameters_get_gradients(net, out)


def test_torch_mlp(X):
    net, X, out = pytorch.run_mlp(X)
    assert out.shape == (2, 10)
    assert_matches_two_layer_mlp(net, out, X, "hidden.", "out.")
    assert_all_parameters_get_gradients(net, out)


def test_torch_my_sequential(X):
    net, X, out = pytorch.run_my_sequential(X)
    assert out.shape == (2, 10)
    p = assert_matches_two_layer_mlp(net, out, X, "0.", "2.")
    assert list(p) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert "(2): Linear(in_features=256, out_features=10" in repr(net)
    assert_all_parameters_get_gradients(net, out)


def test_torch_fixed_hidden_mlp(X):
    net, X, out = pytorch.run_fixed_hidden_mlp(X)
    assert out.shape == ()
    assert abs(out.item()) <= 1
    p = net.state_dict()
    # As in PyTorch, a plain tensor attribute is neither saved nor learned
    # (diagnose points it out; register_buffer would save it).
    assert list(p) == ["linear.weight", "linear.bias"]
    assert ("net.rand_weight", "Tensor of shape (20, 20)") in \
        db.diagnose(net).plain_arrays
    rand_weight = net.rand_weight.numpy()
    h = _relu(_dense(p, "linear.", X.numpy()) @ rand_weight + 1)
    ref = _halve(_dense(p, "linear.", h))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-5, atol=1e-7)
    assert_all_parameters_get_gradients(net, out)
    assert len(net.parameters()) == 2
    assert net.rand_weight.grad is None and not net.rand_weight.requires_grad


def test_torch_fixed_hidden_mlp_gradients_match_finite_differences(X):
    net = pytorch.FixedHiddenMLP()
    # The fix diagnose suggests: a buffer follows to(dtype=...).
    net.register_buffer("rand_weight", net.rand_weight)
    net.to(dtype=db.float64)
    assert net.rand_weight.dtype == db.float64
    X64 = X.to(dtype=db.float64)
    net(X64).backward()
    numeric = parameter_central_difference(net, lambda: net(X64))
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), numeric[name], rtol=1e-4,
                                   atol=1e-8, err_msg=name)
    assert db.grad_check(net, X64.detach().requires_grad_())


def test_torch_nest_mlp_and_chimera(X):
    nest = pytorch.NestMLP()
    assert nest(X).shape == (2, 16)
    chimera, X, out = pytorch.run_chimera(X)
    assert out.shape == ()
    assert abs(out.item()) <= 1
    p = chimera.state_dict()
    h = _dense(p, "0.net.0.", X.numpy(), relu=True)
    h = _dense(p, "0.net.2.", h, relu=True)
    h = _dense(p, "0.linear.", h)
    h = _dense(p, "1.", h)
    h = _relu(_dense(p, "2.linear.", h) @ chimera[2].rand_weight.numpy() + 1)
    ref = _halve(_dense(p, "2.linear.", h))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-4, atol=1e-6)
    assert_all_parameters_get_gradients(chimera, out)
    names = [n for n, _ in chimera.named_parameters()]
    assert names[:2] == ["0.net.0.weight", "0.net.0.bias"]
    assert "2.linear.bias" in names and "2.rand_weight" not in names
    assert chimera[2].rand_weight.grad is None


def test_same_seed_same_outputs(X):
    db.manual_seed(5)
    _, _, a = pytorch.run_chimera(X)
    db.manual_seed(5)
    _, _, b = pytorch.run_chimera(X)
    assert a.item() == b.item()


# ---- Keras tab -------------------------------------------------------------
def test_keras_sequential():
    db.manual_seed(0)
    net, X, out = keras.run_sequential()
    assert out.shape == (2, 10)
    p = assert_matches_two_layer_mlp(net, out, X, "0.", "1.")
    assert p["0.weight"].shape == (256, 20)
    assert_all_parameters_get_gradients(net, out)


def test_keras_mlp(X):
    net, X, out = keras.run_mlp(X)
    assert out.shape == (2, 10)
    assert_matches_two_layer_mlp(net, out, X, "hidden.", "out.")
    assert_all_parameters_get_gradients(net, out)


def test_keras_my_sequential_runs_but_registers_nothing(X):
    net, X, out = keras.run_my_sequential(X)
    assert out.shape == (2, 10)
    # Keras tracks a list attribute; d2lblocks, like PyTorch, does not.
    assert net.parameters() == [] and net.state_dict() == {}
    layers = net.modules              # the attribute hides modules()
    h = _relu(X.numpy() @ layers[0].weight.numpy().T + layers[0].bias.numpy())
    ref = h @ layers[1].weight.numpy().T + layers[1].bias.numpy()
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)
    report = db.diagnose(net)
    assert [p for p, _ in report.orphans] == ["net.modules[0]",
                                              "net.modules[1]"]
    assert ("net.modules", "modules") in report.shadowed
    assert net.to(dtype=db.float64) is net     # the library is not broken
    # The one-word fix registers them, under the same attribute.
    net.modules = nn.BlockList(layers)
    assert [n for n, _ in net.named_parameters()][::2] == [
        "modules.0.weight", "modules.1.weight"]
    assert net(X.to(dtype=db.float64)).shape == (2, 10)


def test_keras_fixed_hidden_mlp(X):
    net, X, out = keras.run_fixed_hidden_mlp(X)
    assert out.shape == ()
    assert abs(out.item()) <= 1
    p = net.state_dict()
    assert list(p) == ["dense.weight", "dense.bias"]
    h = _relu(X.numpy() @ net.rand_weight.numpy() + 1)
    ref = _halve(_dense(p, "dense.", h, relu=True))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-5, atol=1e-7)
    assert_all_parameters_get_gradients(net, out)
    assert net.rand_weight.grad is None


def test_keras_nest_mlp_and_chimera(X):
    chimera, X, out = keras.run_chimera(X)
    assert out.shape == ()
    assert abs(out.item()) <= 1
    p = chimera.state_dict()
    h = _dense(p, "0.net.0.", X.numpy(), relu=True)
    h = _dense(p, "0.net.1.", h, relu=True)
    h = _dense(p, "0.dense.", h, relu=True)
    h = _dense(p, "1.", h)
    h = _relu(h @ chimera[2].rand_weight.numpy() + 1)
    ref = _halve(_dense(p, "2.dense.", h, relu=True))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-4, atol=1e-6)
    assert_all_parameters_get_gradients(chimera, out)
