"""Saving and loading: ``state_dict``, ``load_state_dict``, ``save`` and
``load`` (NumPy ``.npz``, no pickle)."""

import importlib.util
import os
import zipfile

import numpy as np
import pytest
from hypothesis import given, strategies as st

import d2lblocks as db
from d2lblocks import nn


class WithBuffers(nn.Block):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        self.register_buffer("rand_weight", db.rand(3, 3))
        self.register_buffer("scratch", db.zeros(3), persistent=False)

    def forward(self, X):
        return self.body(X) @ self.rand_weight + self.scratch


def gluon_mlp():
    net = nn.Sequential()
    net.add(nn.Dense(16, activation="relu"), nn.Dense(5))
    net.initialize()
    return net


def snapshot(net):
    """Copies of every parameter and buffer array, by name."""
    out = {n: p.numpy().copy() for n, p in net.named_parameters()}
    out.update({n: b.numpy().copy() for n, b in net.named_buffers()})
    return out


def assert_same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(autouse=True)
def _seed():
    db.manual_seed(0)


def test_state_dict_is_ordered_host_copies():
    net = WithBuffers()
    state = net.state_dict()
    # Block by block, as PyTorch: the root's own buffer, then its child's.
    assert list(state) == ["rand_weight", "body.0.weight", "body.0.bias",
                           "body.2.weight", "body.2.bias"]
    for k, v in state.items():
        assert type(v) is np.ndarray
    # Copies: changing them does not change the network.
    before = net.body[0].weight.numpy().copy()
    state["body.0.weight"][...] = 123.0
    np.testing.assert_array_equal(net.body[0].weight.numpy(), before)


def test_round_trip_through_a_file_is_bit_for_bit(tmp_path):
    net = WithBuffers()
    X = db.randn(5, 4)
    expected = net(X).numpy()
    path = tmp_path / "net.npz"
    net.save(path)
    with np.load(path, allow_pickle=False) as data:   # plain arrays only
        assert sorted(data.files) == sorted(net.state_dict())
    with zipfile.ZipFile(path) as z:
        assert all(name.endswith(".npy") for name in z.namelist())
    db.manual_seed(99)
    other = WithBuffers()
    assert not np.array_equal(other(X).numpy(), expected)
    assert other.load(path) is other
    np.testing.assert_array_equal(other(X).numpy(), expected)
    assert_same(other.state_dict(), net.state_dict())


def test_save_accepts_str_and_gluon_spellings(tmp_path):
    net = gluon_mlp()
    net(db.rand(2, 7))
    path = str(tmp_path / "gluon.params")
    assert net.save_parameters(path) == path
    other = gluon_mlp()
    other.load_parameters(path)
    assert_same(other.state_dict(), net.state_dict())


def test_loading_into_a_never_run_lazy_network(tmp_path):
    net = gluon_mlp()
    X = db.rand(3, 7)
    expected = net(X).numpy()
    net.save(tmp_path / "mlp.npz")
    fresh = gluon_mlp()
    assert fresh[0].weight.is_lazy
    fresh.load(tmp_path / "mlp.npz")
    assert fresh[0].weight.shape == (16, 7) and fresh[0].in_units == 7
    np.testing.assert_array_equal(fresh(X).numpy(), expected)


def test_lazy_linear_becomes_linear_when_loaded():
    src = nn.Sequential(nn.Linear(6, 4))
    dst = nn.Sequential(nn.LazyLinear(4))
    dst.load_state_dict(src.state_dict())
    assert type(dst[0]) is nn.Linear and dst[0].in_features == 6
    X = db.rand(2, 6)
    np.testing.assert_array_equal(dst(X).numpy(), src(X).numpy())


def test_state_dict_of_a_lazy_network_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"0\.weight.*run the network"):
        gluon_mlp().state_dict()


def test_loaded_values_keep_the_network_dtype():
    net = nn.Sequential(nn.Linear(2, 2))
    state = {k: v.astype(np.float64) + 1 for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    assert net[0].weight.dtype == db.float32
    np.testing.assert_allclose(net[0].weight.numpy(), state["0.weight"],
                               rtol=1e-6)


def test_non_persistent_buffers_are_neither_saved_nor_required():
    net = WithBuffers()
    net.scratch = db.ones(3)
    state = net.state_dict()
    assert "scratch" not in state
    other = WithBuffers()
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.scratch.numpy(), np.zeros(3))
    np.testing.assert_array_equal(other.rand_weight.numpy(),
                                  state["rand_weight"])


# ---- strict loading and its errors ------------------------------------------
def test_missing_and_unexpected_keys_are_all_listed():
    net = WithBuffers()
    state = net.state_dict()
    del state["body.0.bias"], state["rand_weight"]
    state["extra.weight"] = np.zeros(2)
    state["other"] = np.zeros(1)
    before = snapshot(net)
    with pytest.raises(KeyError) as info:
        net.load_state_dict(state)
    text = str(info.value)
    for key in ("body.0.bias", "rand_weight", "extra.weight", "other"):
        assert key in text
    assert "missing" in text and "unexpected" in text and "strict=False" in text
    assert_same(snapshot(net), before)


def test_wrong_shapes_are_listed_even_when_not_strict():
    net = WithBuffers()
    state = net.state_dict()
    state["body.0.weight"] = np.zeros((8, 5))
    state["body.2.bias"] = np.zeros(4)
    before = snapshot(net)
    for strict in (True, False):
        with pytest.raises(ValueError) as info:
            net.load_state_dict(state, strict=strict)
        text = str(info.value)
        assert "body.0.weight: expected (8, 4), got (8, 5)" in text
        assert "body.2.bias: expected (3,), got (4,)" in text
        assert_same(snapshot(net), before)


def test_failed_load_leaves_a_lazy_network_lazy():
    src = gluon_mlp()
    src(db.rand(2, 7))
    state = src.state_dict()
    state["1.bias"] = np.zeros(9)
    net = gluon_mlp()
    with pytest.raises(ValueError, match="1.bias"):
        net.load_state_dict(state)
    assert net[0].weight.is_lazy and net[1].weight.is_lazy


def test_strict_false_loads_what_matches():
    src, dst = WithBuffers(), WithBuffers()
    state = src.state_dict()
    del state["body.2.weight"]
    state["unknown"] = np.ones(1)
    before = dst.body[2].weight.numpy().copy()
    dst.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(dst.body[0].weight.numpy(),
                                  state["body.0.weight"])
    np.testing.assert_array_equal(dst.body[2].weight.numpy(), before)


def test_load_into_a_different_architecture_changes_nothing(tmp_path):
    big = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    big.save(tmp_path / "big.npz")
    small = nn.Sequential(nn.Linear(4, 8))
    before = snapshot(small)
    with pytest.raises(KeyError, match="unexpected"):
        small.load(tmp_path / "big.npz")
    assert_same(snapshot(small), before)


# ---- saving never leaves a half-written file --------------------------------
def test_failed_save_leaves_an_existing_file_untouched(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"previous contents")
    with pytest.raises(RuntimeError):
        gluon_mlp().save(path)              # lazy: state_dict() raises
    assert path.read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == ["model.npz"]


def test_save_interrupted_while_writing(tmp_path, monkeypatch):
    net = WithBuffers()
    path = tmp_path / "model.npz"
    net.save(path)
    good = path.read_bytes()

    def broken_write(file, array, **kwargs):
        file.write(b"half an array")
        raise OSError("disk full")
    monkeypatch.setattr(np.lib.format, "write_array", broken_write)
    with pytest.raises(OSError, match="disk full"):
        WithBuffers().save(path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.npz"]


# ---- PyTorch's return value and error -----------------------------------------
def test_load_state_dict_returns_the_missing_and_unexpected_keys():
    src, dst = WithBuffers(), WithBuffers()
    result = dst.load_state_dict(src.state_dict())
    assert result == ([], [])
    assert result.missing_keys == [] and result.unexpected_keys == []
    state = src.state_dict()
    del state["body.2.bias"], state["rand_weight"]
    state["extra"] = np.ones(1)
    result = dst.load_state_dict(state, strict=False)
    assert result.missing_keys == ["rand_weight", "body.2.bias"]
    assert result.unexpected_keys == ["extra"]
    missing, unexpected = result             # a named tuple, as PyTorch's
    assert missing == result.missing_keys


def test_strict_loading_raises_what_pytorch_and_python_users_catch():
    state = WithBuffers().state_dict()
    del state["rand_weight"]
    with pytest.raises(RuntimeError, match="missing keys: \\['rand_weight'\\]"):
        WithBuffers().load_state_dict(state)
    with pytest.raises(KeyError) as info:
        WithBuffers().load_state_dict(state)
    assert str(info.value).startswith("load_state_dict: missing keys")


def test_state_dict_goes_block_by_block():
    class Inner(nn.Block):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("count", db.zeros(1))
            self.w = nn.Parameter(db.ones(2))

    class Outer(nn.Block):
        def __init__(self):
            super().__init__()
            self.first = Inner()
            self.register_buffer("scale", db.ones(1))
            self.second = nn.Linear(2, 1)
            self.bias = nn.Parameter(db.zeros(1))

    # Each block: its own parameters, its own buffers, then its children.
    assert list(Outer().state_dict()) == [
        "bias", "scale",
        "first.w", "first.count", "first.lin.weight", "first.lin.bias",
        "second.weight", "second.bias"]


# ---- state loads exactly or not at all ------------------------------------------
class Shifted(nn.Block):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("shift", db.zeros(3))

    def forward(self, x):
        return self.lin(x) + self.shift


def test_a_buffer_of_the_wrong_shape_is_refused_and_nothing_loads():
    m = Shifted()
    before = snapshot(m)
    state = m.state_dict()
    state["lin.weight"] = np.ones((3, 3))
    state["shift"] = np.array([5.0])
    with pytest.raises(ValueError, match=r"shift: expected \(3,\), got \(1,\)"):
        m.load_state_dict(state)
    assert_same(snapshot(m), before)


@pytest.mark.parametrize("value", [np.array(["a", "b", "c"]),
                                   np.array([None, 1, 2], dtype=object),
                                   "abc", np.ones(3) * 1j])
def test_an_entry_that_holds_no_numbers_is_refused_before_any_load(value):
    m = Shifted()
    before = snapshot(m)
    state = m.state_dict()
    state["lin.weight"] = np.full((3, 3), 2.0)    # an earlier key, valid
    state["shift"] = value                        # the last key, not numbers
    with pytest.raises(TypeError, match="'shift'.*nothing was loaded"):
        m.load_state_dict(state)
    assert_same(snapshot(m), before)


@pytest.mark.parametrize("dtype", [db.float32, db.float64])
def test_buffers_keep_their_own_dtype_when_loaded(dtype):
    m = Shifted().to(dtype=dtype)
    m.register_buffer("steps", db.zeros(2, dtype=db.int64))
    state = {k: v.astype(np.float64) for k, v in m.state_dict().items()}
    state["shift"] = np.array([1.5, 2.5, 3.5])
    state["steps"] = np.array([3.0, 4.0])
    m.load_state_dict(state)
    assert m.shift.dtype == dtype and m.lin.weight.dtype == dtype
    assert m.steps.dtype == db.int64
    np.testing.assert_array_equal(m.shift.numpy(), [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(m.steps.numpy(), [3, 4])


def test_loading_writes_in_place_so_references_see_the_values():
    m = Shifted()
    shift, weight = m.shift, m.lin.weight
    state = m.state_dict()
    state["shift"] = np.array([1.0, 2.0, 3.0])
    m.load_state_dict(state)
    assert m.shift is shift and m.lin.weight is weight
    np.testing.assert_array_equal(shift.numpy(), [1, 2, 3])


class Tied(nn.Block):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 4, bias=False)
        self.out = nn.Linear(4, 4, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, x):
        return self.out(self.embed(x))


def test_a_tied_parameter_is_saved_under_every_name_and_loads_back_tied(
        tmp_path):
    src = Tied()
    state = src.state_dict()
    assert list(state) == ["embed.weight", "out.weight"]
    np.testing.assert_array_equal(state["embed.weight"], state["out.weight"])
    dst = Tied()
    assert dst.load_state_dict(state) == ([], [])        # strict: all found
    assert dst.out.weight is dst.embed.weight
    np.testing.assert_array_equal(dst.out.weight.numpy(), state["out.weight"])
    src.save(tmp_path / "tied.npz")
    again = Tied().load(tmp_path / "tied.npz")
    assert again.out.weight is again.embed.weight
    assert len(again.parameters()) == 1


def test_a_shared_child_is_listed_under_each_path():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight",
                                      "2.bias"]
    missing, _ = net.load_state_dict({"0.weight": np.eye(2),
                                      "0.bias": np.zeros(2)}, strict=False)
    assert missing == ["2.weight", "2.bias"]


def test_unexpected_keys_come_block_by_block_as_in_pytorch():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2)))
    state = dict(net.state_dict())
    extra = {"1.0.extra": np.ones(1), "1.zz": np.ones(1), "0.a.b": np.ones(1),
             "top": np.ones(1), "9.weight": np.ones(1), "0.weight.x": np.ones(1)}
    state = {**extra, **state}
    _, unexpected = net.load_state_dict(state, strict=False)
    # the root first (a key whose first part is no child or tensor of it),
    # then child 0, then child 1, then 1.0, each in the order of the dict
    assert unexpected == ["top", "9.weight", "0.a.b", "0.weight.x", "1.zz",
                          "1.0.extra"]


def twin_networks(torch):
    """The same structure in PyTorch and in d2lblocks: nested children, a
    buffer, a tied weight and a block shared by two paths."""
    tnn = torch.nn

    class TorchNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.body = tnn.Sequential(tnn.Linear(4, 8), tnn.ReLU(),
                                       tnn.Linear(8, 3))
            self.register_buffer("rand_weight", torch.rand(3, 3))
            self.head = tnn.Linear(3, 3)
            self.tail = tnn.Linear(3, 3, bias=False)
            self.tail.weight = self.head.weight
            self.again = self.body

    class Net(nn.Block):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(),
                                      nn.Linear(8, 3))
            self.register_buffer("rand_weight", db.rand(3, 3))
            self.head = nn.Linear(3, 3)
            self.tail = nn.Linear(3, 3, bias=False)
            self.tail.weight = self.head.weight
            self.again = self.body

    return TorchNet(), Net()


EXTRA_KEYS = ["zz", "body.9.w", "body.0.q", "body.0.weight.x", "head",
              "again.1.w", "rand_weight.x", "tail.bias", "again.2.bias.q"]


def test_key_orders_match_pytorch_where_torch_is_installed():
    torch = pytest.importorskip("torch")
    t, d = twin_networks(torch)
    assert list(d.state_dict()) == list(t.state_dict())
    assert [n for n, _ in d.named_parameters()] == \
        [n for n, _ in t.named_parameters()]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="compares with PyTorch, which is not installed")
@given(st.data())
def test_missing_and_unexpected_keys_match_pytorch(data):
    torch = pytest.importorskip("torch")
    t, d = twin_networks(torch)
    full = d.state_dict()
    keep = data.draw(st.lists(st.sampled_from(list(full)), unique=True),
                     label="kept")
    extra = data.draw(st.lists(st.sampled_from(EXTRA_KEYS), unique=True),
                      label="extra")
    order = data.draw(st.permutations(keep + extra), label="order")
    state = {k: full[k] if k in full else np.ones(1) for k in order}
    tr = t.load_state_dict({k: torch.tensor(v) for k, v in state.items()},
                           strict=False)
    dr = d.load_state_dict(state, strict=False)
    assert list(dr.missing_keys) == list(tr.missing_keys)
    assert list(dr.unexpected_keys) == list(tr.unexpected_keys)


def test_a_path_given_to_load_state_dict_says_to_use_load(tmp_path):
    net = Shifted()
    with pytest.raises(TypeError, match=r"got the path 'm.npz'.*net.load\('m.npz'\)"):
        net.load_state_dict("m.npz")
    with pytest.raises(TypeError, match="expected a dict.*got list"):
        net.load_state_dict([("shift", np.zeros(3))])


def test_a_damaged_file_is_named_in_the_error(tmp_path):
    net = Shifted()
    path = tmp_path / "m.npz"
    net.save(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[:len(data) // 2])
    before = snapshot(net)
    with pytest.raises(ValueError, match="cut.npz") as info:
        net.load(cut)
    assert "pickle" not in str(info.value)
    text = tmp_path / "notes.txt"
    text.write_text("weights: 1, 2, 3\n")
    with pytest.raises(ValueError, match="notes.txt") as info:
        net.load(text)
    assert "pickle" not in str(info.value)
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(ValueError, match="one.npy.*single array"):
        net.load(tmp_path / "one.npy")
    assert_same(snapshot(net), before)


def test_saving_into_a_missing_folder_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "m.npz"
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        Shifted().save(path)
    assert not (tmp_path / "nowhere").exists()


def test_a_parameter_named_file_can_be_saved(tmp_path):
    class Odd(nn.Block):
        def __init__(self):
            super().__init__()
            self.file = nn.Parameter(db.ones(2))
            self.register_buffer("allow_pickle", db.zeros(1))

    src = Odd()
    src.save(tmp_path / "odd.npz")
    dst = Odd()
    with db.no_grad():
        dst.file[...] = 0.0
    dst.load(tmp_path / "odd.npz")
    np.testing.assert_array_equal(dst.file.numpy(), [1, 1])
