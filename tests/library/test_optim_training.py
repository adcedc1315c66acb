"""Optimizers against NumPy references of their update rules, and a small
classifier trained end to end."""

import importlib.util

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import nn, optim
from conftest import parameter_central_difference

C = np.array([0.5, -1.5, 2.0, 1.0, -0.25, 3.0])
T = np.array([1.0, 2.0, -1.0, 0.5, 0.0, -2.0])
W0 = np.array([0.3, -0.2, 0.1, 1.0, -1.0, 0.05])


def quadratic_grad(w):
    """The gradient of sum((w * C - T) ** 2), by hand."""
    return 2 * C * (w * C - T)


def run_optimizer(make, steps, dtype=db.float64):
    """Steps of ``make([w])`` on the quadratic; returns w after each."""
    w = nn.Parameter(db.tensor(W0.copy(), dtype=dtype))
    opt = make([w])
    trace = []
    for _ in range(steps):
        opt.zero_grad()
        ((w * db.tensor(C, dtype=dtype) - db.tensor(T, dtype=dtype)) ** 2) \
            .sum().backward()
        opt.step()
        trace.append(w.numpy().astype(np.float64).copy())
    return trace


def sgd_reference(lr, momentum, weight_decay, steps):
    w, v, trace = W0.copy(), None, []
    for _ in range(steps):
        d = quadratic_grad(w) + weight_decay * w
        if momentum:
            v = d.copy() if v is None else momentum * v + d
            d = v
        w = w - lr * d
        trace.append(w.copy())
    return trace


def adam_reference(lr, b1, b2, eps, weight_decay, steps):
    w, m, v, trace = W0.copy(), np.zeros(6), np.zeros(6), []
    for t in range(1, steps + 1):
        g = quadratic_grad(w) + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        trace.append(w.copy())
    return trace


SGD_CASES = [(0.01, 0.0, 0.0), (0.01, 0.9, 0.0), (0.01, 0.0, 0.1),
             (0.02, 0.5, 0.05)]


@pytest.mark.parametrize("lr,momentum,weight_decay", SGD_CASES)
@pytest.mark.parametrize("dtype", [db.float64, db.float32])
def test_sgd_matches_reference(lr, momentum, weight_decay, dtype):
    got = run_optimizer(lambda p: optim.SGD(p, lr=lr, momentum=momentum,
                                            weight_decay=weight_decay),
                        6, dtype)
    want = sgd_reference(lr, momentum, weight_decay, 6)
    rtol = 1e-12 if dtype == db.float64 else 1e-5
    for step, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol,
                                   err_msg=f"step {step + 1}")


ADAM_CASES = [(0.1, (0.9, 0.999), 1e-8, 0.0), (0.05, (0.8, 0.99), 1e-3, 0.0),
              (0.1, (0.9, 0.999), 1e-8, 0.1)]


@pytest.mark.parametrize("lr,betas,eps,weight_decay", ADAM_CASES)
@pytest.mark.parametrize("dtype", [db.float64, db.float32])
def test_adam_matches_reference(lr, betas, eps, weight_decay, dtype):
    got = run_optimizer(lambda p: optim.Adam(p, lr=lr, betas=betas, eps=eps,
                                             weight_decay=weight_decay),
                        6, dtype)
    want = adam_reference(lr, *betas, eps, weight_decay, 6)
    rtol = 1e-12 if dtype == db.float64 else 1e-5
    for step, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol,
                                   err_msg=f"step {step + 1}")


def test_optimizer_updates_in_place_and_skips_params_without_grad():
    a = nn.Parameter(db.ones(3))
    b = nn.Parameter(db.ones(3))
    data = a.data
    opt = optim.Adam([a, b, a], lr=0.1)        # a listed twice: kept once
    assert opt.params == [a, b]
    (a * 2).sum().backward()
    opt.step()
    assert a.data is data and not np.allclose(a.numpy(), 1)
    np.testing.assert_array_equal(b.numpy(), np.ones(3))
    assert id(b) not in opt.state       # no moments for an untouched one
    opt.zero_grad()
    assert a.grad is None


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.01),
])
def test_frozen_parameters_are_accepted_and_skipped(make):
    """The usual "freeze the first layer" recipe: net.parameters() still
    lists the frozen ones; the optimizer leaves them alone."""
    db.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert net[0].requires_grad_(False) is net[0]     # as in PyTorch
    opt = make(net.parameters())
    frozen = [p.numpy().copy() for p in net[0].parameters()]
    trained = [p.numpy().copy() for p in net[2].parameters()]
    for _ in range(2):
        opt.zero_grad()
        db.cross_entropy(net(db.rand(5, 3)), [0, 1, 1, 0, 1]).backward()
        assert all(p.grad is None for p in net[0].parameters())
        opt.step()
    for before, p in zip(frozen, net[0].parameters()):
        np.testing.assert_array_equal(p.numpy(), before)
    for before, p in zip(trained, net[2].parameters()):
        assert not np.allclose(p.numpy(), before)
    # Unfreezing later needs no new optimizer.
    net[0].weight.requires_grad_(True)
    db.cross_entropy(net(db.rand(5, 3)), [0, 1, 1, 0, 1]).backward()
    opt.step()
    assert not np.array_equal(net[0].weight.numpy(), frozen[0])


@pytest.mark.parametrize("make,match", [
    (lambda: optim.SGD([db.ones(2)], lr=0.1), "requires_grad"),
    (lambda: optim.SGD([db.ones(2, requires_grad=True) * 2], lr=0.1),
     "not a leaf"),
    (lambda: optim.SGD([], lr=0.1), "no parameters"),
    (lambda: optim.SGD([nn.Parameter(db.ones(2))], lr=-1), "lr"),
    (lambda: optim.SGD([nn.Parameter(db.ones(2))], lr="0.1"), "lr"),
    (lambda: optim.SGD([nn.Parameter(db.ones(2))], lr=0.1, momentum=-0.5),
     "momentum"),
])
def test_bad_optimizer_arguments(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


# ---- training end to end ----------------------------------------------------
def blobs(n_per_class=100, seed=0):
    """Three Gaussian blobs in 2-D, one per class."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 3.0], [-2.6, -1.5], [2.6, -1.5]])
    X = np.concatenate([rng.normal(c, 0.7, (n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(3), n_per_class)
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order]


def classifier():
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def accuracy(net, X, y):
    with db.no_grad():
        return float((net(db.tensor(X)).argmax(axis=1).numpy() == y).mean())


def test_small_classifier_learns_gaussian_blobs():
    X, y = blobs()
    X_test, y_test = blobs(seed=1)
    db.manual_seed(0)
    net = classifier()
    assert accuracy(net, X, y) < 0.6          # it starts out guessing
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for step in range(60):
        batch = slice((step * 50) % 300, (step * 50) % 300 + 50)
        opt.zero_grad()
        loss = loss_fn(net(db.tensor(X[batch])), y[batch])
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    final = loss_fn(net(db.tensor(X)), y).item()
    assert final < 0.5 * first
    assert accuracy(net, X, y) >= 0.95
    assert accuracy(net, X_test, y_test) >= 0.95


def test_training_is_reproducible_under_a_seed():
    X, y = blobs()

    def train():
        db.manual_seed(3)
        net = classifier()
        opt = optim.Adam(net.parameters(), lr=0.01)
        for _ in range(5):
            opt.zero_grad()
            db.cross_entropy(net(db.tensor(X)), y).backward()
            opt.step()
        return net.state_dict()
    a, b = train(), train()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_classifier_gradients_match_finite_differences():
    X, y = blobs(n_per_class=3)
    db.manual_seed(0)
    net = classifier()
    net64 = classifier()
    net64.load_state_dict(net.state_dict())
    net64.to(dtype=db.float64)
    X64 = db.tensor(X, dtype=db.float64)

    def loss():
        return db.cross_entropy(net64(X64), y)
    loss().backward()
    numeric = parameter_central_difference(net64, loss)
    for name, p in net64.named_parameters():
        assert p.grad.dtype == db.float64
        np.testing.assert_allclose(p.grad.numpy(), numeric[name], rtol=1e-5,
                                   atol=1e-8, err_msg=name)
    # The float32 network's own gradients agree with the float64 ones.
    db.cross_entropy(net(db.tensor(X)), y).backward()
    for (name, p), (_, p64) in zip(net.named_parameters(),
                                   net64.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), p64.grad.numpy(),
                                   rtol=1e-3, atol=1e-5, err_msg=name)
    # And with respect to the input, through db.grad_check.
    assert db.grad_check(lambda x: db.cross_entropy(net64(x), y),
                         db.tensor(X, dtype=db.float64, requires_grad=True))


# ---- the update of gradient descent (backend.sub_scaled) -------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (1 << 15,), (256, 784), (3, 5, 4096)])
@pytest.mark.parametrize("layout", ["contiguous", "strided", "overlapping"])
def test_sub_scaled_is_w_minus_alpha_g_for_every_size_and_layout(dtype, shape, layout):
    from d2lblocks import backend
    rng = np.random.default_rng(len(shape))
    w = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    if layout == "strided":          # views NumPy must handle itself
        w, g = np.repeat(w, 2, axis=-1)[..., ::2], np.repeat(g, 2, axis=-1)[..., ::2]
    if layout == "overlapping":      # the gradient is the weight itself
        g = w
    expected = w - dtype(0.3) * g
    backend.sub_scaled(w, 0.3, g, np.empty_like(w))
    np.testing.assert_allclose(w, expected, rtol=4 * np.finfo(dtype).eps,
                               atol=4 * np.finfo(dtype).eps)


def test_sgd_on_a_large_layer_matches_plain_numpy():
    rng = np.random.default_rng(3)
    lin = nn.Linear(300, 200)
    w0 = lin.weight.numpy().copy()
    x = db.tensor(rng.standard_normal((4, 300)).astype(np.float32))
    opt = optim.SGD(lin.parameters(), lr=0.05)
    lin(x).sum().backward()
    g = lin.weight.grad.numpy().copy()
    opt.step()
    np.testing.assert_allclose(lin.weight.numpy(), w0 - np.float32(0.05) * g,
                               rtol=1e-6, atol=1e-7)


def test_a_replayed_sgd_step_follows_new_arrays_and_changed_settings():
    """SGD's replay plan (optimizer._replay_step) against step()."""
    rng = np.random.default_rng(5)
    shape = (300, 200)
    nets = [nn.Linear(*shape[::-1]) for _ in range(2)]
    nets[1].weight.data = nets[0].weight.data.copy()
    nets[1].bias.data = nets[0].bias.data.copy()
    opts = [optim.SGD(n.parameters(), lr=0.05) for n in nets]

    def grads():
        g = rng.standard_normal(shape).astype(np.float32)
        gb = rng.standard_normal(shape[0]).astype(np.float32)
        for n in nets:
            n.weight.grad, n.bias.grad = db.tensor(g), db.tensor(gb)

    grads()
    planned = opts[1]._replay_step()
    for i in range(6):
        if i == 2:                       # a new weight array
            for n in nets:
                n.weight.data = np.full(shape, 0.5, np.float32)
        if i == 4:                       # momentum switched on: step() itself
            for o in opts:
                o.momentum = 0.5
        opts[0].step()
        planned()
        for a, b in zip(nets[0].parameters(), nets[1].parameters()):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-6)
        grads()


def test_requires_grad_of_a_block_reaches_nested_and_lazy_parameters():
    net = nn.Sequential(nn.Sequential(nn.LazyLinear(4), nn.ReLU()),
                        nn.Linear(4, 2))
    net.requires_grad_(False)
    net[1].requires_grad_()
    net(db.rand(3, 5)).sum().backward()        # makes the lazy weights
    assert {n: p.requires_grad for n, p in net.named_parameters()} == {
        "0.0.weight": False, "0.0.bias": False,
        "1.weight": True, "1.bias": True}
    assert all(p.grad is None for p in net[0].parameters())
    assert all(p.grad is not None for p in net[1].parameters())


# ---- mistakes: a clear error, and nothing changes ----------------------------
def two_layer_net():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    net(db.ones(2, 3)).sum().backward()
    return net


def params_and_grads(net):
    return [(p.numpy().copy(), None if p.grad is None else np.array(p.grad))
            for p in net.parameters()]


def assert_unchanged(net, before):
    for (w, g), p in zip(before, net.parameters()):
        np.testing.assert_array_equal(p.numpy(), w)
        if g is not None:
            np.testing.assert_array_equal(np.array(p.grad), g)


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: optim.Adam(ps, lr=0.01)])
@pytest.mark.parametrize("bad", ["shape", "dtype", "kind"])
def test_a_wrong_gradient_of_a_later_layer_updates_no_layer(make, bad):
    net = two_layer_net()
    opt = make(net.parameters())
    last = net[2].weight
    last.grad = {"shape": db.ones(2, 5), "dtype": db.ones(2, 4, dtype=db.float64),
                 "kind": np.ones((2, 4))}[bad]
    before = params_and_grads(net)
    state = dict(opt.state)
    with pytest.raises((TypeError, ValueError),
                       match=r"gradient of parameter 2 .*nothing was updated"):
        opt.step()
    assert_unchanged(net, before)
    assert opt.state == state


def test_an_optimizer_given_the_network_says_to_pass_its_parameters():
    net = two_layer_net()
    with pytest.raises(TypeError, match=r"pass net.parameters\(\)"):
        optim.SGD(net, lr=0.1)
    with pytest.raises(TypeError, match=r"got the class Sequential"):
        optim.Adam(nn.Sequential)
    with pytest.raises(TypeError, match=r"pass a list: SGD\(\[p\]"):
        optim.SGD(net[0].weight, lr=0.1)
    with pytest.raises(TypeError, match=r"method parameters itself; call it: "
                                        r"SGD\(net.parameters\(\)"):
        optim.SGD(net.parameters, lr=0.1)
    with pytest.raises(TypeError, match="parameter group"):
        optim.Adam([{"params": net.parameters(), "lr": 0.1}])


@pytest.mark.parametrize("make, match", [
    (lambda ps: optim.SGD(ps, lr=float("inf")), r"SGD: lr must be a finite"),
    (lambda ps: optim.SGD(ps, lr=float("nan")), r"lr must be a finite"),
    (lambda ps: optim.SGD(ps, lr=-0.1), r"lr must be a finite number in \[0"),
    (lambda ps: optim.SGD(ps, lr="0.1"), r"lr must be a number, got str"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5), r"momentum must be"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=float("inf")),
     r"weight_decay must be"),
    (lambda ps: optim.Adam(ps, betas=0.9), r"betas must be a pair"),
    (lambda ps: optim.Adam(ps, betas=(1.5, 0.999)), r"betas\[0\] must be"),
    (lambda ps: optim.Adam(ps, betas=(0.9, 1.0)), r"betas\[1\] must be"),
    (lambda ps: optim.Adam(ps, eps=-1), r"Adam: eps must be"),
    (lambda ps: optim.Adam(ps, lr=None), r"lr must be a number, got NoneType"),
])
def test_hyperparameters_are_checked_when_the_optimizer_is_built(make, match):
    net = two_layer_net()
    before = params_and_grads(net)
    with pytest.raises((TypeError, ValueError), match=match):
        make(net.parameters())
    assert_unchanged(net, before)


def test_numpy_scalars_are_hyperparameters():
    net = two_layer_net()
    opt = optim.SGD(net.parameters(), lr=np.float32(0.1),
                    momentum=np.float64(0.5))
    assert type(opt.lr) is float and opt.lr == pytest.approx(0.1)
    opt.step()
    adam = optim.Adam(net.parameters(), lr=np.float16(0.01),
                      betas=np.array([0.9, 0.99]), eps=np.float32(1e-8))
    adam.step()
    assert adam.betas == (0.9, 0.99)


def sgd_reference_full(lr, momentum, dampening, weight_decay, nesterov, steps):
    """PyTorch's SGD rule, written out."""
    w, v, trace = W0.copy(), None, []
    for _ in range(steps):
        d = quadratic_grad(w) + weight_decay * w
        v = d.copy() if v is None else momentum * v + (1 - dampening) * d
        w = w - lr * (d + momentum * v if nesterov else v)
        trace.append(w.copy())
    return trace


@pytest.mark.parametrize("momentum,dampening,weight_decay,nesterov", [
    (0.9, 0.5, 0.0, False), (0.5, 0.1, 0.05, False), (0.9, 0.0, 0.0, True),
    (0.8, 0.0, 0.1, True)])
@pytest.mark.parametrize("dtype", [db.float64, db.float32])
def test_sgd_dampening_and_nesterov_match_pytorchs_rule(
        momentum, dampening, weight_decay, nesterov, dtype):
    got = run_optimizer(lambda p: optim.SGD(
        p, lr=0.02, momentum=momentum, dampening=dampening,
        weight_decay=weight_decay, nesterov=nesterov), 6, dtype)
    want = sgd_reference_full(0.02, momentum, dampening, weight_decay,
                              nesterov, 6)
    rtol = 1e-12 if dtype == db.float64 else 1e-5
    for step, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol,
                                   err_msg=f"step {step + 1}")
    with pytest.raises(ValueError, match="nesterov=True needs a momentum"):
        optim.SGD([nn.Parameter(db.zeros(1))], lr=0.1, nesterov=True)


def amsgrad_reference(lr, b1, b2, eps, steps, grads):
    w, m, v, v_max, trace = W0.copy(), np.zeros(6), np.zeros(6), \
        np.zeros(6), []
    for t in range(1, steps + 1):
        g = grads(w, t)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v_max / (1 - b2 ** t))
                                             + eps)
        trace.append(w.copy())
    return trace


def test_adam_amsgrad_keeps_the_largest_second_moment():
    # gradients that shrink, so that v falls below its maximum
    scale = lambda t: 10.0 / t ** 2
    w = nn.Parameter(db.tensor(W0.copy(), dtype=db.float64))
    opt = optim.Adam([w], lr=0.1, betas=(0.5, 0.6), amsgrad=True)
    got = []
    for t in range(1, 7):
        w.grad = db.tensor(quadratic_grad(w.numpy()) * scale(t),
                           dtype=db.float64)
        opt.step()
        got.append(w.numpy().copy())
    want = amsgrad_reference(0.1, 0.5, 0.6, 1e-8, 6,
                             lambda w, t: quadratic_grad(w) * scale(t))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the maximum mattered: plain Adam on the same gradients goes elsewhere
    w2 = nn.Parameter(db.tensor(W0.copy(), dtype=db.float64))
    plain = optim.Adam([w2], lr=0.1, betas=(0.5, 0.6))
    for t in range(1, 7):
        w2.grad = db.tensor(quadratic_grad(w2.numpy()) * scale(t),
                            dtype=db.float64)
        plain.step()
    assert np.abs(w2.numpy() - got[-1]).max() > 1e-3


needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="compares with PyTorch, which is "
                                        "not installed")


@needs_torch
@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.1)),
    ("Adam", dict(lr=0.1, betas=(0.5, 0.6), amsgrad=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, eps=1e-3)),
])
def test_optimizers_follow_pytorchs_on_the_same_gradients(name, kwargs):
    torch = pytest.importorskip("torch")
    w = nn.Parameter(db.tensor(W0.copy(), dtype=db.float64))
    tw = torch.nn.Parameter(torch.tensor(W0.copy(), dtype=torch.float64))
    ours = getattr(optim, name)([w], **kwargs)
    theirs = getattr(torch.optim, name)([tw], **kwargs)
    for t in range(1, 8):
        g = quadratic_grad(w.numpy()) * (3.0 / t)     # shrinking gradients
        w.grad = db.tensor(g, dtype=db.float64)
        tw.grad = torch.tensor(g, dtype=torch.float64)
        ours.step()
        theirs.step()
        np.testing.assert_allclose(w.numpy(), tw.detach().numpy(),
                                   rtol=1e-10, atol=1e-12,
                                   err_msg=f"step {t}")
