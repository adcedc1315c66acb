"""Initializers: the objects for ``net.initialize(...)`` and the in-place
functions for ``net.apply(fn)``, with loose statistical checks under fixed
seeds."""

import math

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import init, nn


def big_param(shape=(400, 300), dtype=None):
    return nn.Parameter(db.zeros(*shape, dtype=dtype))


@pytest.fixture(autouse=True)
def _seed():
    db.manual_seed(0)


# ---- the objects ------------------------------------------------------------
@pytest.mark.parametrize("make,mean,std", [
    (lambda: init.Normal(0.0, 0.01), 0.0, 0.01),
    (lambda: init.Normal(2.0, 0.5), 2.0, 0.5),
    (lambda: init.Normal(sigma=0.2), 0.0, 0.2),           # Gluon's spelling
    (lambda: init.Uniform(-0.5, 1.5), 0.5, 2 / math.sqrt(12)),
    (lambda: init.Uniform(0.07), 0.0, 0.14 / math.sqrt(12)),  # +-scale
    (lambda: init.Xavier(), 0.0, math.sqrt(2 / 700)),
    (lambda: init.Xavier(uniform=False, gain=2.0), 0.0, 2 * math.sqrt(2 / 700)),
    (lambda: init.Kaiming(), 0.0, math.sqrt(2 / 300)),
    (lambda: init.Kaiming(uniform=True), 0.0, math.sqrt(2 / 300)),
])
def test_random_initializers_have_the_stated_mean_and_std(make, mean, std):
    p = big_param()
    assert make()(p) is p
    w = p.numpy()
    assert w.dtype == np.float32
    assert abs(w.mean() - mean) < 0.02 * std + 1e-6 + 0.01 * abs(mean)
    assert abs(w.std() - std) < 0.02 * std


@pytest.mark.parametrize("make,low,high", [
    (lambda: init.Uniform(-0.5, 1.5), -0.5, 1.5),
    (lambda: init.Uniform(0.07), -0.07, 0.07),
    (lambda: init.Xavier(), -math.sqrt(6 / 700), math.sqrt(6 / 700)),
    (lambda: init.Kaiming(uniform=True), -math.sqrt(6 / 300),
     math.sqrt(6 / 300)),
])
def test_uniform_initializers_stay_in_their_bounds(make, low, high):
    w = make()(big_param()).numpy()
    assert w.min() >= low - 1e-7 and w.max() <= high + 1e-7
    # ... and fill them: the extremes are close to the bounds.
    assert w.min() < low + 0.01 * (high - low)
    assert w.max() > high - 0.01 * (high - low)


@pytest.mark.parametrize("make,value", [
    (lambda: init.Constant(0.5), 0.5), (lambda: init.Zeros(), 0.0),
    (lambda: init.Ones(), 1.0), (lambda: init.Constant(-3), -3.0),
])
def test_constant_initializers(make, value):
    p = make()(big_param((7, 3)))
    assert np.all(p.numpy() == value)


def test_initializers_write_in_place_and_keep_dtype_and_graph_state():
    p = big_param((5, 4), dtype=db.float64)
    data = p.data
    p.grad = db.ones(5, 4, dtype=db.float64)
    init.Normal(1.0, 0.1)(p)
    assert p.data is data                 # optimizers hold this array
    assert p.dtype == db.float64 and p.is_leaf and p.requires_grad
    np.testing.assert_array_equal(p.grad.numpy(), np.ones((5, 4)))


def test_initializer_repr():
    assert repr(init.Normal(0.0, 0.01)) == "Normal(mean=0.0, std=0.01)"
    assert repr(init.Constant(2)) == "Constant(value=2)"


@pytest.mark.parametrize("shape,expected", [
    ((), (1, 1)), ((5,), (5, 5)), ((3, 4), (4, 3)), ((8, 2, 3, 3), (18, 72)),
])
def test_fans(shape, expected):
    assert init.fans(shape) == expected


# ---- the in-place functions -------------------------------------------------
@pytest.mark.parametrize("fn,check", [
    (lambda p: init.normal_(p, 0.0, 0.05),
     lambda w: abs(w.std() - 0.05) < 0.002),
    (lambda p: init.normal_(p), lambda w: abs(w.std() - 1.0) < 0.02),
    (lambda p: init.uniform_(p, -1.0, 1.0),
     lambda w: w.min() >= -1 and w.max() < 1 and abs(w.mean()) < 0.01),
    (lambda p: init.uniform_(p), lambda w: w.min() >= 0 and w.max() < 1),
    (lambda p: init.constant_(p, 0.3), lambda w: np.all(w == np.float32(0.3))),
    (init.zeros_, lambda w: np.all(w == 0)),
    (init.ones_, lambda w: np.all(w == 1)),
    (init.xavier_uniform_,
     lambda w: np.abs(w).max() <= math.sqrt(6 / 700) + 1e-7),
    (init.xavier_normal_, lambda w: abs(w.std() - math.sqrt(2 / 700)) < 0.002),
    (init.kaiming_uniform_,
     lambda w: np.abs(w).max() <= math.sqrt(6 / 300) + 1e-7),
    (init.kaiming_normal_,
     lambda w: abs(w.std() - math.sqrt(2 / 300)) < 0.002),
])
def test_in_place_functions(fn, check):
    p = big_param()
    assert fn(p) is p
    assert check(p.numpy())


def test_functions_work_through_apply():
    net = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 5))

    def init_weights(block):
        if isinstance(block, nn.Linear):
            init.normal_(block.weight, mean=0.0, std=0.01)
            init.zeros_(block.bias)
    net.apply(init_weights)
    for name, p in net.named_parameters():
        w = p.numpy()
        if name.endswith("bias"):
            assert np.all(w == 0)
        else:
            assert 0.005 < w.std() < 0.015 and abs(w.mean()) < 0.003


def test_initialize_with_an_object_reaches_every_parameter():
    net = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 5))
    net.initialize(init.Xavier())
    w = net[0].weight.numpy()
    assert np.abs(w).max() <= math.sqrt(6 / 70) + 1e-7
    assert abs(w.std() - math.sqrt(2 / 70)) < 0.2 * math.sqrt(2 / 70)
    b = net[2].bias.numpy()
    assert np.abs(b).max() <= math.sqrt(6 / 10) and b.std() > 0


# ---- reproducibility --------------------------------------------------------
def build():
    net = nn.Sequential(nn.Dense(8, activation="relu"), nn.Dense(3))
    net.initialize(init.Normal(0.0, 0.1))
    net(db.ones(1, 5))
    return net


def test_same_seed_gives_the_same_network():
    db.manual_seed(11)
    a = build().state_dict()
    db.manual_seed(11)
    b = build().state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    db.manual_seed(12)
    c = build().state_dict()
    assert not np.array_equal(a["0.weight"], c["0.weight"])


def test_same_seed_gives_the_same_default_linear_layers():
    db.manual_seed(4)
    a = nn.Linear(6, 3).weight.numpy().copy()
    db.manual_seed(4)
    b = nn.Linear(6, 3).weight.numpy()
    np.testing.assert_array_equal(a, b)


# ---- mistakes ----------------------------------------------------------------
@pytest.mark.parametrize("make, error, match", [
    (lambda: init.Normal(0, -1), ValueError, "Normal: std must be a finite number >= 0"),
    (lambda: init.Normal(float("nan"), 1), ValueError, "Normal: mean"),
    (lambda: init.Normal("0", 1), TypeError, "mean must be a number, got str"),
    (lambda: init.Uniform(1.0, -1.0), ValueError, "low must not exceed high"),
    (lambda: init.Uniform(float("inf")), ValueError, "Uniform: low"),
    (lambda: init.Constant("a"), TypeError, "Constant: value must be a number"),
    (lambda: init.Xavier(gain=-2), ValueError, "Xavier: gain"),
])
def test_an_initializer_checks_its_arguments_when_made(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_numpy_scalars_are_initializer_arguments():
    p = nn.Parameter(db.zeros(3, 2))
    init.Normal(np.float32(1.0), np.float64(0.0))(p)
    np.testing.assert_array_equal(p.numpy(), np.ones((3, 2)))
    init.constant_(p, np.int64(4))
    np.testing.assert_array_equal(p.numpy(), np.full((3, 2), 4.0))


def test_an_initializer_given_something_else_than_a_parameter_says_so():
    with pytest.raises(TypeError, match="initializes a parameter.*got ndarray"):
        init.normal_(np.zeros(3))
    with pytest.raises(TypeError, match=r"got the class Linear.*net.initialize"):
        init.Normal()(nn.Linear)


def test_kaiming_takes_pytorchs_slope_mode_and_nonlinearity():
    p = nn.Parameter(db.zeros(300, 100))          # fan_in 100, fan_out 300
    init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu")
    assert abs(p.numpy().std() - math.sqrt(2 / 300)) < 0.002
    init.kaiming_uniform_(tensor=p, a=1.0)        # leaky_relu, slope 1: gain 1
    assert np.abs(p.numpy()).max() <= math.sqrt(3 / 100) + 1e-7
    assert np.abs(p.numpy()).max() > 0.9 * math.sqrt(3 / 100)
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(
        math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'"):
        init.kaiming_normal_(p, mode="fan_avg")
    with pytest.raises(ValueError, match="unknown nonlinearity 'relu6'"):
        init.kaiming_normal_(p, nonlinearity="relu6")
