"""Saving and loading: ``state_dict``, ``load_state_dict``, ``save`` and
``load`` (NumPy ``.npz``, no pickle)."""

import os
import zipfile

import numpy as np
import pytest

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

    def broken_savez(file, **arrays):
        file.write(b"half an archive")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken_savez)
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
