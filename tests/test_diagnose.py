"""The list pitfall and ``db.diagnose``.

Layers kept in a plain Python list, tuple or dict still run in
``forward``, but the block system does not see them. These tests pin that
behaviour down (it is PyTorch's and Gluon's) and check that
``db.diagnose`` and the optimizer explain it.
"""

import warnings

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import init, nn, optim
from d2lblocks.diagnose import set_warnings


@pytest.fixture(autouse=True)
def _seed_and_restore_warnings():
    db.manual_seed(0)
    yield
    set_warnings(True)


class ListMLP(nn.Block):
    """The seed's first exercise: MySequential with a Python list."""

    def __init__(self, container=list):
        super().__init__()
        self.layers = container([nn.Linear(20, 256), nn.ReLU(),
                                 nn.Linear(256, 10)])

    def forward(self, X):
        for layer in self.layers:
            X = layer(X)
        return X


class DictNet(nn.Block):
    def __init__(self):
        super().__init__()
        self.parts = {"enc": nn.Linear(4, 3), "extra": [nn.Linear(3, 2)]}

    def forward(self, X):
        return self.parts["extra"][0](self.parts["enc"](X))


def quiet_diagnose(net):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return db.diagnose(net)


# ---- the pitfall itself -----------------------------------------------------
@pytest.mark.parametrize("container", [list, tuple])
def test_forward_runs_but_nothing_else_sees_the_layers(container):
    net = ListMLP(container)
    out = net(db.rand(2, 20))
    assert out.shape == (2, 10)
    assert list(net.parameters()) == []
    assert net.state_dict() == {}
    assert repr(net) == "ListMLP()"
    visited = []
    net.apply(visited.append)
    assert visited == [net]
    before = net.layers[0].weight.numpy().copy()
    net.initialize(init.Constant(0.5))
    np.testing.assert_array_equal(net.layers[0].weight.numpy(), before)
    with pytest.raises(ValueError, match="plain list"):
        optim.SGD(net.parameters(), lr=0.1)


def test_the_same_layers_in_a_sequential_are_seen():
    net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))
    assert len(net.parameters()) == 4
    assert quiet_diagnose(net).ok


# ---- what diagnose reports --------------------------------------------------
def test_diagnose_names_each_orphan_by_attribute_path():
    report = quiet_diagnose(ListMLP())
    paths = [path for path, _ in report.orphans]
    assert paths == ["net.layers[0]", "net.layers[1]", "net.layers[2]"]
    assert dict(report.orphans)["net.layers[1]"] == "ReLU"
    assert not report.ok
    text = str(report)
    assert "net.layers[0] (Linear)" in text
    assert "nn.Sequential" in text and "nn.BlockList" in text
    assert "add_module" in text


def test_diagnose_looks_into_dicts_and_nested_containers():
    report = quiet_diagnose(DictNet())
    paths = [path for path, _ in report.orphans]
    assert paths == ["net.parts['enc']", "net.parts['extra'][0]"]
    assert "nn.BlockDict" in str(report)


def test_diagnose_walks_into_registered_children():
    net = nn.Sequential(nn.Linear(3, 3), ListMLP())
    report = quiet_diagnose(net)
    assert [p for p, _ in report.orphans][0] == "net.1.layers[0]"


def test_diagnose_reports_parameters_in_plain_containers():
    class Weights(nn.Block):
        def __init__(self):
            super().__init__()
            self.ws = [nn.Parameter(db.ones(2))]

        def forward(self, X):
            return X * self.ws[0]
    report = quiet_diagnose(Weights())
    assert report.orphans == [("net.ws[0]", "Parameter")]


def test_diagnose_reports_plain_tensor_and_array_attributes():
    class Plain(nn.Block):
        def __init__(self):
            super().__init__()
            self.rand_weight = db.rand(20, 20)
            self.table = np.zeros((3, 2))
            self.linear = nn.Linear(20, 20)
            self.units = 20                      # not an array: fine

        def forward(self, X):
            return self.linear(X) @ self.rand_weight
    net = Plain()
    net(db.rand(2, 20))
    report = quiet_diagnose(net)
    assert report.orphans == []
    assert ("net.rand_weight", "Tensor of shape (20, 20)") in report.plain_arrays
    assert ("net.table", "ndarray of shape (3, 2)") in report.plain_arrays
    assert len(report.plain_arrays) == 2
    assert "register_buffer" in str(report)


def test_a_registered_buffer_is_not_reported():
    class Buffered(nn.Block):
        def __init__(self):
            super().__init__()
            self.register_buffer("rand_weight", db.rand(4, 4))
            self.linear = nn.Linear(4, 4)

        def forward(self, X):
            return self.linear(X) @ self.rand_weight
    net = Buffered()
    net(db.rand(1, 4))
    assert quiet_diagnose(net).ok


def test_diagnose_reports_parameters_unused_in_the_last_forward():
    class Skips(nn.Block):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(3, 3)
            self.unused = nn.Linear(3, 3)

        def forward(self, X):
            return self.used(X)
    net = Skips()
    before = quiet_diagnose(net)
    assert before.unused == [] and not before.ran
    assert "has not run yet" in str(before)
    net(db.rand(2, 3))
    report = quiet_diagnose(net)
    assert report.ran
    assert [p for p, _ in report.unused] == ["net.unused.weight",
                                            "net.unused.bias"]
    assert "net.unused.weight (3, 3)" in str(report)
    assert "no gradient" in str(report)


def test_diagnose_reports_a_parameter_shared_between_layers():
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight
    net = nn.Sequential(a, nn.ReLU(), b)
    net(db.rand(2, 3))
    report = quiet_diagnose(net)
    assert report.shared == [["net.0.weight", "net.2.weight"]]
    assert "net.0.weight = net.2.weight" in str(report)
    assert report.ok            # sharing is information, not a problem


def test_diagnose_reports_a_layer_used_twice_as_shared():
    shared = nn.Linear(3, 3)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    report = quiet_diagnose(net)
    assert ["net.0.weight", "net.2.weight"] in report.shared


def test_a_clean_network_reports_no_problems():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    net(db.rand(2, 3))
    report = db.diagnose(net)
    assert report.ok
    assert "no problems found" in str(report)


def test_diagnose_refuses_what_is_not_a_block():
    with pytest.raises(TypeError, match="expected a Block, got list"):
        db.diagnose([nn.Linear(2, 2)])


# ---- the warning ------------------------------------------------------------
def test_diagnose_warns_once_per_network():
    net = ListMLP()
    with pytest.warns(UserWarning, match=r"net\.layers\[0\]"):
        db.diagnose(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db.diagnose(net)               # the same network: no second warning
    with pytest.warns(UserWarning):
        db.diagnose(ListMLP())         # another network warns again


def test_diagnose_warning_can_be_switched_off():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = db.diagnose(ListMLP(), warn=False)
        assert not report.ok
        set_warnings(False)
        assert not db.diagnose(ListMLP()).ok
    set_warnings(True)
    with pytest.warns(UserWarning):
        db.diagnose(ListMLP())


def test_a_clean_network_never_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db.diagnose(nn.Sequential(nn.Linear(2, 2)))


# ---- the optimizer notices --------------------------------------------------
class HalfRegistered(nn.Block):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 4)
        self.layers = [nn.Linear(4, 4), nn.Linear(4, 2)]

    def forward(self, X):
        X = self.head(X)
        for layer in self.layers:
            X = layer(X)
        return X


def test_optimizer_warns_once_about_gradients_it_does_not_own():
    net = HalfRegistered()
    opt = optim.SGD(net.parameters(), lr=0.1)
    X, y = db.rand(8, 4), np.arange(8) % 2
    db.cross_entropy(net(X), y).backward()
    frozen = net.layers[0].weight.numpy().copy()
    with pytest.warns(UserWarning) as record:
        opt.step()
    assert len(record) == 1
    text = str(record[0].message)
    for name in ("net.layers[0].weight", "net.layers[0].bias",
                 "net.layers[1].weight"):
        assert name in text
    assert "nn.Sequential" in text and "4 parameter(s)" in text
    # The orphans really are not trained; the registered head is.
    np.testing.assert_array_equal(net.layers[0].weight.numpy(), frozen)
    opt.zero_grad()
    db.cross_entropy(net(X), y).backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()                      # once is enough


@pytest.mark.parametrize("make", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: optim.Adam(p),
])
def test_every_optimizer_warns(make):
    net = HalfRegistered()
    opt = make(net.parameters())
    net(db.rand(2, 4)).sum().backward()
    with pytest.warns(UserWarning, match=r"net\.layers\[1\]\.bias"):
        opt.step()


def test_optimizer_does_not_warn_for_a_registered_network():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    opt = optim.SGD(net.parameters(), lr=0.1)
    net(db.rand(2, 4)).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
