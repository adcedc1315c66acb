"""Every example of section 5.1 ("Layers and Blocks"), written with
d2lblocks, in the Gluon spelling and in the PyTorch spelling.

Each one must run, give the section's output shape, agree with the same
computation done by hand in NumPy from the network's own parameters, and,
after ``backward()``, give a gradient to every parameter and none to the
constant weight.
"""

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import nn
from d2lblocks.nn import functional as F
from conftest import parameter_central_difference


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


# ---- Gluon spelling ---------------------------------------------------------
class GluonMLP(nn.Block):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = nn.Dense(256, activation="relu")
        self.out = nn.Dense(10)

    def forward(self, X):
        return self.out(self.hidden(X))


class GluonMySequential(nn.Block):
    def add(self, block):
        # The seed stores each block under its unique name.
        self._children[block.name] = block

    def forward(self, X):
        for block in self._children.values():
            X = block(X)
        return X


class GluonFixedHiddenMLP(nn.Block):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer("rand_weight", db.rand(20, 20))
        self.dense = nn.Dense(20, activation="relu")

    def forward(self, X):
        X = self.dense(X)
        X = db.relu(db.matmul(X, self.rand_weight) + 1)
        X = self.dense(X)          # the same layer again: shared weights
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


class GluonNestMLP(nn.Block):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.net = nn.Sequential()
        self.net.add(nn.Dense(64, activation="relu"),
                     nn.Dense(32, activation="relu"))
        self.dense = nn.Dense(16, activation="relu")

    def forward(self, X):
        return self.dense(self.net(X))


def test_gluon_sequential(X):
    net = nn.Sequential()
    net.add(nn.Dense(256, activation="relu"))
    net.add(nn.Dense(10))
    net.initialize()
    out = net(X)
    assert out.shape == (2, 10) and out.dtype == db.float32
    p = assert_matches_two_layer_mlp(net, out, X, "0.", "1.")
    assert p["0.weight"].shape == (256, 20)
    assert_all_parameters_get_gradients(net, out)


def test_gluon_mlp(X):
    net = GluonMLP()
    net.initialize()
    out = net(X)
    assert out.shape == (2, 10)
    p = assert_matches_two_layer_mlp(net, out, X, "hidden.", "out.")
    assert list(p) == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    assert_all_parameters_get_gradients(net, out)


def test_gluon_my_sequential(X):
    net = GluonMySequential()
    first, second = nn.Dense(256, activation="relu"), nn.Dense(10)
    net.add(first)
    net.add(second)
    net.initialize()
    out = net(X)
    assert out.shape == (2, 10)
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
    net = GluonFixedHiddenMLP()
    net.initialize()
    out = net(X)
    assert out.shape == ()
    assert abs(out.item()) <= 1
    p = net.state_dict()
    h = _dense(p, "dense.", X.numpy(), relu=True)
    h = _relu(h @ p["rand_weight"] + 1)
    ref = _halve(_dense(p, "dense.", h, relu=True))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-5, atol=1e-7)
    assert_all_parameters_get_gradients(net, out)
    assert [n for n, _ in net.named_parameters()] == ["dense.weight",
                                                      "dense.bias"]
    assert net.rand_weight.grad is None and not net.rand_weight.requires_grad


def test_gluon_chimera(X):
    chimera = nn.Sequential()
    chimera.add(GluonNestMLP(), nn.Dense(20), GluonFixedHiddenMLP())
    chimera.initialize()
    out = chimera(X)
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


# ---- PyTorch spelling -------------------------------------------------------
class TorchMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(20, 256)
        self.out = nn.Linear(256, 10)

    def forward(self, X):
        return self.out(F.relu(self.hidden(X)))


class TorchMySequential(nn.Module):
    def __init__(self, *args):
        super().__init__()
        for idx, module in enumerate(args):
            self._modules[str(idx)] = module

    def forward(self, X):
        for block in self._modules.values():
            X = block(X)
        return X


class TorchFixedHiddenMLP(nn.Module):
    def __init__(self):
        super().__init__()
        # A constant: it moves and is saved with the network, but it never
        # gets a gradient.
        self.register_buffer("rand_weight", db.rand(20, 20))
        self.linear = nn.Linear(20, 20)

    def forward(self, X):
        X = self.linear(X)
        X = F.relu(db.matmul(X, self.rand_weight) + 1)
        X = self.linear(X)
        while X.abs().sum() > 1:
            X /= 2
        return X.sum()


class TorchNestMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(),
                                 nn.Linear(64, 32), nn.ReLU())
        self.linear = nn.Linear(32, 16)

    def forward(self, X):
        return self.linear(self.net(X))


def test_torch_sequential(X):
    net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    out = net(X)
    assert out.shape == (2, 10)
    p = assert_matches_two_layer_mlp(net, out, X, "0.", "2.")
    assert list(p) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert_all_parameters_get_gradients(net, out)


def test_torch_mlp(X):
    net = TorchMLP()
    out = net(X)
    assert out.shape == (2, 10)
    assert_matches_two_layer_mlp(net, out, X, "hidden.", "out.")
    assert_all_parameters_get_gradients(net, out)


def test_torch_my_sequential(X):
    net = TorchMySequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    out = net(X)
    assert out.shape == (2, 10)
    p = assert_matches_two_layer_mlp(net, out, X, "0.", "2.")
    assert list(p) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert "(2): Linear(in_features=256, out_features=10" in repr(net)
    assert_all_parameters_get_gradients(net, out)


def test_torch_fixed_hidden_mlp(X):
    net = TorchFixedHiddenMLP()
    out = net(X)
    assert out.shape == ()
    assert abs(out.item()) <= 1
    p = net.state_dict()
    assert list(p) == ["linear.weight", "linear.bias", "rand_weight"]
    h = _relu(_dense(p, "linear.", X.numpy()) @ p["rand_weight"] + 1)
    ref = _halve(_dense(p, "linear.", h))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-5, atol=1e-7)
    assert_all_parameters_get_gradients(net, out)
    assert len(net.parameters()) == 2
    assert net.rand_weight.grad is None and not net.rand_weight.requires_grad


def test_torch_fixed_hidden_mlp_gradients_match_finite_differences(X):
    net = TorchFixedHiddenMLP().to(dtype=db.float64)
    X64 = X.to(dtype=db.float64)
    net(X64).backward()
    numeric = parameter_central_difference(net, lambda: net(X64))
    for name, p in net.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), numeric[name], rtol=1e-4,
                                   atol=1e-8, err_msg=name)
    assert db.grad_check(net, X64.detach().requires_grad_())


def test_torch_nest_mlp_and_chimera(X):
    nest = TorchNestMLP()
    assert nest(X).shape == (2, 16)
    chimera = nn.Sequential(TorchNestMLP(), nn.Linear(16, 20),
                            TorchFixedHiddenMLP())
    out = chimera(X)
    assert out.shape == ()
    assert abs(out.item()) <= 1
    p = chimera.state_dict()
    h = _dense(p, "0.net.0.", X.numpy(), relu=True)
    h = _dense(p, "0.net.2.", h, relu=True)
    h = _dense(p, "0.linear.", h)
    h = _dense(p, "1.", h)
    h = _relu(_dense(p, "2.linear.", h) @ p["2.rand_weight"] + 1)
    ref = _halve(_dense(p, "2.linear.", h))
    np.testing.assert_allclose(out.item(), ref, rtol=1e-4, atol=1e-6)
    assert_all_parameters_get_gradients(chimera, out)
    names = [n for n, _ in chimera.named_parameters()]
    assert names[:2] == ["0.net.0.weight", "0.net.0.bias"]
    assert "2.linear.bias" in names and "2.rand_weight" not in names
    assert chimera[2].rand_weight.grad is None


def test_same_seed_same_outputs_in_both_spellings(X):
    db.manual_seed(5)
    a = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))(X)
    db.manual_seed(5)
    b = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))(X)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
