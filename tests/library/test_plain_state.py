"""``d2lblocks.state``: an object's state as plain values, and back."""

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import init, nn, state
from d2lblocks.nn import Parameter, UninitializedParameterError


def copy_of(obj, memo):
    """A deep copy made only through the public state functions."""
    if id(obj) in memo:
        return memo[id(obj)]
    if isinstance(obj, list):
        return [copy_of(v, memo) for v in obj]
    if isinstance(obj, dict):
        return {k: copy_of(v, memo) for k, v in obj.items()}
    if not type(obj).__module__.startswith("d2lblocks"):
        return obj
    new = memo[id(obj)] = state.empty(type(obj))
    st = state.get_state(obj)
    if "data" in st and st["data"] is not None:
        st["data"] = st["data"].copy()
    state.set_state(new, {k: copy_of(v, memo) for k, v in st.items()})
    return new


def test_tensor_round_trip_keeps_values_grad_and_flag():
    t = db.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (t * t).sum().backward()
    st = state.get_state(t)
    assert type(st["data"]) is np.ndarray and st["requires_grad"] is True
    u = state.empty(db.Tensor)
    state.set_state(u, st)
    np.testing.assert_array_equal(u.numpy(), t.numpy())
    np.testing.assert_array_equal(u.grad.numpy(), 2 * t.numpy())
    assert u.requires_grad and u.grad_fn is None
    (u * 3).sum().backward()                 # the copy is a working leaf
    np.testing.assert_array_equal(u.grad.numpy(), 2 * t.numpy() + 3)


def test_a_trained_block_copies_to_the_same_function():
    db.manual_seed(0)
    net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Linear(8, 3))
    X = db.rand(4, 5)
    expected = net(X).numpy()
    twin = copy_of(net, {})
    assert isinstance(twin, nn.Sequential) and twin is not net
    np.testing.assert_allclose(twin(X).numpy(), expected)
    names = [n for n, _ in twin.named_parameters()]
    assert names == [n for n, _ in net.named_parameters()]
    twin[0].weight.data[...] = 0             # the copy owns its arrays
    assert np.abs(net[0].weight.numpy()).sum() > 0


def test_a_hybridized_block_copies_without_its_replay_cache():
    db.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    net.hybridize()
    X = db.rand(4, 5)
    net(X)
    expected = net(X).numpy()                # recorded, then replayed
    assert "_call_handler" not in state.get_state(net)["attrs"]
    twin = copy_of(net, {})
    np.testing.assert_allclose(twin(X).numpy(), expected, rtol=1e-6)


def test_a_lazy_parameter_stays_lazy_and_then_materializes():
    layer = nn.Dense(4)
    layer.initialize(init.Constant(0.5))
    assert layer.weight.is_lazy
    assert state.get_state(layer.weight)["data"] is None
    twin = copy_of(layer, {})
    assert twin.weight.is_lazy
    with pytest.raises(UninitializedParameterError, match="first forward"):
        twin.weight.numpy()
    out = twin(db.ones(2, 3))
    assert out.shape == (2, 4)
    np.testing.assert_allclose(twin.weight.numpy(), np.full((4, 3), 0.5))
    assert layer.weight.is_lazy               # the original is untouched


def test_initializers_copy_their_settings():
    ini = init.Normal(1.0, 0.0)
    twin = copy_of(ini, {})
    p = Parameter(np.zeros((2, 2), np.float32))
    twin(p)
    np.testing.assert_allclose(p.numpy(), np.ones((2, 2)))


@pytest.mark.parametrize("bad, err, words", [
    (["not", "a", "dict"], TypeError, "a state is a dict"),
    ({"data": [1.0, 2.0]}, TypeError, "must be a NumPy array"),
    ({"data": None}, ValueError, "only a lazy parameter"),
    ({"data": np.zeros(2), "grad": np.zeros(2)}, TypeError, "'grad' must"),
    ({"attrs": {"__class__": int}}, ValueError, "not dunder"),
])
def test_bad_states_are_refused_with_the_reason(bad, err, words):
    t = db.zeros(2)
    with pytest.raises(err, match=words):
        state.set_state(t, bad)
    np.testing.assert_array_equal(t.numpy(), np.zeros(2))


def test_empty_needs_a_class():
    with pytest.raises(TypeError, match="expected a class"):
        state.empty(db.zeros(1))


def test_a_state_with_one_bad_value_changes_nothing():
    p = nn.Parameter(db.ones(2))
    before = dict(p.__dict__)
    st = state.get_state(p)
    st["attrs"] = {"_lazy_shape": None, "_init": "changed",
                   "_user_initialized": True}
    st["data"] = [1.0, 2.0]                    # a list, not an array
    with pytest.raises(TypeError, match="'data' must be a NumPy array"):
        state.set_state(p, st)
    assert p.__dict__ == before
    np.testing.assert_array_equal(p.numpy(), [1, 1])
    st["data"], st["grad"] = np.zeros(2), "no"
    with pytest.raises(TypeError, match="'grad' must be a tensor"):
        state.set_state(p, st)
    assert p.__dict__ == before
