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
from d2lblocks.diagnose import LIST_EFFECTS, set_warnings


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


# ---- showing the report once ------------------------------------------------
def test_printing_the_report_shows_it_once_and_warns_not(capsys):
    net = ListMLP()
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # a warning would fail the test
        print(db.diagnose(net))
    out = capsys.readouterr().out
    assert out.count("diagnose(ListMLP)") == 1
    assert out.count("net.layers[0] (Linear)") == 1


def test_the_report_displays_as_itself_in_a_notebook():
    report = db.diagnose(ListMLP())
    assert repr(report) == str(report)

    class Printer:                          # what IPython hands over
        def __init__(self):
            self.parts = []

        def text(self, part):
            self.parts.append(part)
    printer = Printer()
    report._repr_pretty_(printer, False)
    assert printer.parts == [str(report)]


# ---- the warning, for scripts that do not print the report -------------------
def test_diagnose_warns_once_per_network_when_asked():
    net = ListMLP()
    with pytest.warns(UserWarning, match=r"net\.layers\[0\]"):
        db.diagnose(net, warn=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db.diagnose(net, warn=True)    # the same network: no second warning
    with pytest.warns(UserWarning):
        db.diagnose(ListMLP(), warn=True)   # another network warns again


def test_diagnose_warning_can_be_switched_off():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = db.diagnose(ListMLP())
        assert not report.ok
        set_warnings(False)
        assert not db.diagnose(ListMLP(), warn=True).ok
    set_warnings(True)
    with pytest.warns(UserWarning):
        db.diagnose(ListMLP(), warn=True)


def test_a_clean_network_never_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db.diagnose(nn.Sequential(nn.Linear(2, 2)), warn=True)


# ---- each claim of the report, checked --------------------------------------
class HalfListed(nn.Block):
    """A registered head, then layers in a plain list."""

    def __init__(self, tail):
        super().__init__()
        self.head = nn.Linear(4, 4)
        self.layers = list(tail)

    def forward(self, X):
        X = self.head(X)
        for layer in self.layers:
            X = layer(X)
        return X


def half_listed():
    return HalfListed([nn.Linear(4, 3), nn.ReLU()])


def check_forward(tmp_path):
    net = half_listed()
    X = db.rand(5, 4)
    h = X.numpy() @ net.head.weight.numpy().T + net.head.bias.numpy()
    listed = net.layers[0]
    ref = np.maximum(h @ listed.weight.numpy().T + listed.bias.numpy(), 0)
    np.testing.assert_allclose(net(X).numpy(), ref, rtol=1e-5, atol=1e-6)


def check_parameters(tmp_path):
    net = half_listed()
    assert [id(p) for p in net.parameters()] == [id(net.head.weight),
                                                 id(net.head.bias)]
    opt = optim.SGD(net.parameters(), lr=0.5)
    net(db.rand(5, 4)).sum().backward()
    head, listed = (net.head.weight.numpy().copy(),
                    net.layers[0].weight.numpy().copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the optimizer's own warning
        opt.step()
    assert not np.array_equal(net.head.weight.numpy(), head)
    np.testing.assert_array_equal(net.layers[0].weight.numpy(), listed)


def check_state_dict_and_save(tmp_path):
    net = half_listed()
    assert list(net.state_dict()) == ["head.weight", "head.bias"]
    net.save(tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz") as data:
        assert sorted(data.files) == ["head.bias", "head.weight"]


def check_load_state_dict_and_load(tmp_path):
    src, dst = half_listed(), half_listed()
    before = dst.layers[0].weight.numpy().copy()
    dst.load_state_dict(src.state_dict())
    src.save(tmp_path / "src.npz")
    dst.load(tmp_path / "src.npz")
    np.testing.assert_array_equal(dst.head.weight.numpy(),
                                  src.head.weight.numpy())
    np.testing.assert_array_equal(dst.layers[0].weight.numpy(), before)
    assert not np.array_equal(before, src.layers[0].weight.numpy())


def check_to(tmp_path):
    net = half_listed().to(dtype=db.float64)
    assert net.head.weight.dtype == db.float64
    assert net.layers[0].weight.dtype == db.float32
    assert net.layers[0].bias.dtype == db.float32


def check_initialize_and_apply(tmp_path):
    net = half_listed()
    before = net.layers[0].weight.numpy().copy()
    net.initialize(init.Constant(0.5))
    assert np.all(net.head.weight.numpy() == 0.5)
    np.testing.assert_array_equal(net.layers[0].weight.numpy(), before)
    seen = []
    net.apply(seen.append)
    assert seen == [net.head, net]


def check_train_and_eval(tmp_path):
    net = HalfListed([nn.Dropout(0.5)])
    net.eval()
    assert not net.training and not net.head.training
    assert net.layers[0].training
    out = net(db.ones(50, 4) * 10).numpy()
    assert np.any(out == 0)          # still dropping


def check_zero_grad(tmp_path):
    net = half_listed()
    X = db.rand(5, 4)
    net(X).sum().backward()
    first = net.layers[0].weight.grad.numpy().copy()
    net.zero_grad()
    assert net.head.weight.grad is None
    net(X).sum().backward()
    np.testing.assert_allclose(net.layers[0].weight.grad.numpy(), 2 * first,
                               rtol=1e-5)


def check_modules_children_and_print(tmp_path):
    net = half_listed()
    assert list(net.modules()) == [net, net.head]
    assert list(net.children()) == [net.head]
    text = repr(net)
    assert "(head): Linear" in text and "out_features=3" not in text


EFFECT_CHECKS = {
    "forward": check_forward,
    "parameters()": check_parameters,
    "state_dict(), save()": check_state_dict_and_save,
    "load_state_dict(), load()": check_load_state_dict_and_load,
    "to(device, dtype)": check_to,
    "initialize(), apply(fn)": check_initialize_and_apply,
    "train(), eval()": check_train_and_eval,
    "zero_grad()": check_zero_grad,
    "modules(), children(), print(net)": check_modules_children_and_print,
}


def test_every_claim_of_the_report_has_a_check():
    assert set(EFFECT_CHECKS) == {what for what, _ in LIST_EFFECTS}


@pytest.mark.parametrize("what", [what for what, _ in LIST_EFFECTS])
def test_what_the_report_says_about_a_list_held_block_is_true(what, tmp_path):
    text = str(quiet_diagnose(half_listed()))
    effect = dict(LIST_EFFECTS)[what]
    assert what in text and effect in text
    EFFECT_CHECKS[what](tmp_path)


def test_the_report_names_a_method_that_an_attribute_hides():
    class Shadow(nn.Block):
        def __init__(self):
            super().__init__()
            self.blocks = [nn.Linear(2, 2)]
            self.children = nn.BlockList([nn.Linear(2, 2)])   # registered

    report = quiet_diagnose(Shadow())
    assert report.shadowed == [("net.blocks", "blocks")]
    assert "net.blocks hides the method blocks()" in str(report)
    assert [p for p, _ in report.orphans] == ["net.blocks[0]"]


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


def test_a_class_or_an_unfinished_block_gets_a_message_that_says_the_fix():
    class MLP(nn.Block):
        def __init__(self):
            super().__init__()
            self.out = nn.Linear(2, 2)

    with pytest.raises(TypeError, match=r"got the class MLP; write MLP\(\)"):
        db.diagnose(MLP)
    with pytest.raises(TypeError, match=r"write nn.Sequential\(\)"):
        db.diagnose(nn.Sequential)

    class Forgot(nn.Block):
        def __init__(self):
            self.size = 3

    with pytest.raises(AttributeError, match=r"Forgot.__init__"):
        db.diagnose(Forgot())
    assert db.diagnose(MLP()).ok
