"""hybridize(): a replayed block or training step computes what the eager
one computes, and a call that a replay would get wrong stays eager.

Each network of the chapters and exercises runs twice from the same seed,
once eagerly and once hybridized, on several batches of one signature (the
first records, the rest replay); outputs and every parameter's gradient
must agree. Replays are counted with ``hybrid.stats``, never timed.
"""

import linecache
import warnings
import weakref

import numpy as np
import pytest
from hypothesis import given, strategies as st

import d2lblocks as db
from d2lblocks import hybrid, nn, optim
from d2lblocks.hybrid import HybridizeWarning
from tests.hybrid_tools import training_step
from tests.library.seed_tabs import gluon, keras, pytorch

TABS = [pytest.param(m, id=m.__name__.rsplit(".", 1)[-1])
        for m in (pytorch, gluon, keras)]


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Each test sees the warnings that hybridize gives once per line."""
    hybrid._warned.clear()
    yield
    hybrid._warned.clear()


class Parallel(nn.Block):
    """Exercise 2: two blocks side by side, outputs joined on ``axis``."""

    def __init__(self, net1, net2, axis=1):
        super().__init__()
        self.net1, self.net2, self.axis = net1, net2, axis

    def forward(self, X, X2=None):
        Y1 = self.net1(X)
        Y2 = self.net2(X if X2 is None else X2)
        if Y1.shape[0] != Y2.shape[0]:       # shapes are not data
            raise ValueError("different batch sizes")
        return db.concat([Y1, Y2], axis=self.axis)


def build_network(factory, n):
    """Exercise 3: n new instances from ``factory``, in sequence."""
    return nn.Sequential(*[factory() for _ in range(n)])


NETWORKS = {
    "sequential": lambda: nn.Sequential(nn.Linear(20, 256), nn.ReLU(),
                                        nn.Linear(256, 10)),
    "dense_lazy": lambda: gluon.run_sequential()[0],
    "pytorch_mlp": lambda: pytorch.MLP(),
    "gluon_mlp": lambda: _initialized(gluon.MLP()),
    "keras_mlp": lambda: keras.MLP(),
    "my_sequential": lambda: pytorch.MySequential(
        nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10)),
    "nest_mlp": lambda: pytorch.NestMLP(),
    "gluon_nest_mlp": lambda: _initialized(gluon.NestMLP()),
    "parallel": lambda: Parallel(nn.Linear(20, 3), nn.Sequential(
        nn.Linear(20, 8), nn.Tanh(), nn.Linear(8, 2))),
    "parallel_identity": lambda: Parallel(nn.Identity(), nn.Linear(20, 4)),
    "factory_copies": lambda: build_network(
        lambda: nn.Sequential(nn.Linear(20, 20), nn.Sigmoid()), 3),
    "shared_layer": lambda: _shared(),
}


def _initialized(net):
    net.initialize()
    return net


def _shared():
    layer = nn.Linear(20, 20)
    return nn.Sequential(layer, nn.ReLU(), layer)


def twins(build, width=20):
    """Two networks with equal parameters: an eager one and a hybridized
    one. Both run once first (under one seed), so that lazy layers draw
    the same initial values."""
    nets = []
    for _ in range(2):
        db.manual_seed(0)
        net = build()
        with db.no_grad():
            net(db.zeros(1, width))
        nets.append(net)
    return nets[0], nets[1].hybridize()


def test_a_lazy_network_records_again_after_its_first_call():
    nets = []
    for hybridized in (False, True):
        db.manual_seed(0)
        net = _initialized(gluon.MLP())
        nets.append(net.hybridize() if hybridized else net)
    X = db.rand(2, 20)
    for net in nets:           # initializes: draws random numbers
        db.manual_seed(1)
        net(X)
    for _ in range(3):
        assert_same_call(*nets, db.rand(2, 20))
    assert hybrid.stats(nets[1]) == {"records": 2, "replays": 2, "eager": 0,
                                     "recordings": 1, "reason": None}


def grads(net):
    return {name: None if p.grad is None else p.grad.numpy().copy()
            for name, p in net.named_parameters()}


def assert_same_call(eager, hyb, *inputs, backward=True):
    """One call of both networks: same output, same gradients in the
    same parameters."""
    eager.zero_grad()
    hyb.zero_grad()
    out_e, out_h = eager(*inputs), hyb(*inputs)
    np.testing.assert_allclose(out_h.numpy(), out_e.numpy(), rtol=1e-6,
                               atol=1e-6)
    assert out_h.requires_grad == out_e.requires_grad
    if backward and out_e.requires_grad:
        weights = db.tensor(np.linspace(-1, 1, out_e.numel())
                            .reshape(out_e.shape).astype(np.float32))
        (out_e * weights).sum().backward()
        (out_h * weights).sum().backward()
        ge, gh = grads(eager), grads(hyb)
        assert ge.keys() == gh.keys()
        for name in ge:
            assert (ge[name] is None) == (gh[name] is None), name
            if ge[name] is not None:
                np.testing.assert_allclose(gh[name], ge[name], rtol=1e-5,
                                           atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_network_replays_and_matches_eager(name):
    eager, hyb = twins(NETWORKS[name])
    with warnings.catch_warnings():
        warnings.simplefilter("error", HybridizeWarning)
        for i in range(4):
            X = db.rand(2, 20)
            assert_same_call(eager, hyb, X)
    info = hybrid.stats(hyb)
    assert info["reason"] is None
    assert info == {"records": 1, "replays": 3, "eager": 0,
                    "recordings": 1, "reason": None}


@pytest.mark.parametrize("tab", TABS)
def test_fixed_hidden_mlp_warns_once_and_stays_eager(tab):
    eager, hyb = twins(tab.FixedHiddenMLP)
    with pytest.warns(HybridizeWarning) as caught:
        for _ in range(4):
            assert_same_call(eager, hyb, db.rand(2, 20))
    ours = [w for w in caught if issubclass(w.category, HybridizeWarning)]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert "FixedHiddenMLP is not replayed" in message
    assert "while" in message and f"{tab.__name__.rsplit('.', 1)[-1]}.py:" in message
    assert ours[0].filename == tab.__file__
    info = hybrid.stats(hyb)
    assert info["replays"] == 0 and info["eager"] == 3
    assert info["reason"].startswith("bool()")
    # its Linear child has no decision of its own and is replayed
    assert hybrid.stats(next(hyb.children()))["replays"] > 0


def test_chimera_replays_the_blocks_without_decisions():
    eager, hyb = twins(lambda: nn.Sequential(
        pytorch.NestMLP(), nn.Linear(16, 20), pytorch.FixedHiddenMLP()))
    with pytest.warns(HybridizeWarning, match="while X.abs") as caught:
        for _ in range(4):
            assert_same_call(eager, hyb, db.rand(2, 20))
    assert len([w for w in caught if w.category is HybridizeWarning]) == 1
    assert hybrid.stats(hyb)["replays"] == 0
    assert hybrid.stats(hyb[0])["replays"] >= 2      # NestMLP
    assert hybrid.stats(hyb[1])["replays"] >= 2      # Linear
    assert hybrid.stats(hyb[2])["replays"] == 0      # FixedHiddenMLP


@pytest.mark.parametrize("decision", [
    lambda X: X * 2 if X.sum() > 0 else X,
    lambda X: X * float(X.max()),
    lambda X: X * X.mean().item(),
    lambda X: X + db.tensor(X.numpy().round()),
    lambda X: X[X.argmax(axis=1)],
    lambda X: X * len(X.tolist()),
])
def test_any_value_that_reaches_python_keeps_a_block_eager(decision):
    class Decides(nn.Block):
        def forward(self, X):
            return decision(X)
    net = Decides().hybridize()
    with pytest.warns(HybridizeWarning, match="Decides is not replayed"):
        for _ in range(3):
            X = db.randn(3, 3)
            np.testing.assert_allclose(net(X).numpy(), decision(X).numpy())
    assert hybrid.stats(net)["replays"] == 0


def test_parameter_changes_between_calls_are_seen():
    eager, hyb = twins(NETWORKS["sequential"])
    X = db.rand(4, 20)
    assert_same_call(eager, hyb, X)
    assert_same_call(eager, hyb, X)
    for net in (eager, hyb):       # an optimizer step
        optim.SGD(net.parameters(), lr=0.5).step()
    assert_same_call(eager, hyb, X)
    state = {k: v * 0.5 for k, v in eager.state_dict().items()}
    eager.load_state_dict(state)
    hyb.load_state_dict(state)
    assert_same_call(eager, hyb, X)
    for net in (eager, hyb):       # a new array assigned to .data
        net[0].weight.data = np.ones((256, 20), np.float32) * 0.01
    assert_same_call(eager, hyb, X)
    for net in (eager, hyb):
        db.manual_seed(3)
        net.initialize(db.init.Normal(0, 0.1), force_reinit=True)
    assert_same_call(eager, hyb, X)
    assert hybrid.stats(hyb)["records"] == 1


def test_a_replaced_parameter_or_child_records_again():
    eager, hyb = twins(NETWORKS["my_sequential"])
    X = db.rand(2, 20)
    assert_same_call(eager, hyb, X)
    assert_same_call(eager, hyb, X)
    for net in (eager, hyb):
        net._children["2"] = nn.Linear(256, 10)
        net._children["2"].weight = nn.Parameter(np.full((10, 256), 0.5, np.float32))
    hyb._children["2"].bias.data = eager._children["2"].bias.data.copy()
    before = hybrid.stats(hyb)["records"]
    assert_same_call(eager, hyb, X)
    assert hybrid.stats(hyb)["records"] == before + 1


def test_signature_changes_record_again_and_the_cache_keeps_each():
    eager, hyb = twins(NETWORKS["sequential"])
    calls = [db.rand(2, 20), db.rand(5, 20), db.rand(2, 20, dtype=db.float64),
             db.rand(2, 20, requires_grad=True)]
    for X in calls * 2:
        if X.dtype == db.float64:
            eager.to(dtype=db.float64)
            hyb.to(dtype=db.float64)
        assert_same_call(eager, hyb, X)
        if X.dtype == db.float64:
            eager.to(dtype=db.float32)
            hyb.to(dtype=db.float32)
    with db.no_grad():
        assert_same_call(eager, hyb, calls[0])
    info = hybrid.stats(hyb)
    assert info["records"] == 5 and info["replays"] == 4
    assert info["recordings"] == 5


def test_input_gradients_and_a_graph_around_the_replay():
    eager, hyb = twins(NETWORKS["nest_mlp"])
    for _ in range(3):
        X1 = db.rand(3, 20, requires_grad=True)
        X2 = db.tensor(X1.numpy(), requires_grad=True)
        eager.zero_grad()
        hyb.zero_grad()
        (eager(X1 * 2) ** 2).sum().backward()
        (hyb(X2 * 2) ** 2).sum().backward()
        np.testing.assert_allclose(X2.grad.numpy(), X1.grad.numpy(),
                                   rtol=1e-5, atol=1e-7)
        for (n, a), (_, b) in zip(eager.named_parameters(), hyb.named_parameters()):
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5,
                                       atol=1e-7, err_msg=n)
    assert hybrid.stats(hyb)["replays"] == 2


def test_two_replays_waiting_for_one_backward():
    eager, hyb = twins(NETWORKS["sequential"])
    X1, X2 = db.rand(2, 20), db.rand(2, 20)
    hyb(X1)                               # records
    for net in (eager, hyb):
        net.zero_grad()
        y1, y2 = net(X1), net(X2)         # two replays, both pending
        (y1 * y2).sum().backward()
    for a, b in zip(eager.parameters(), hyb.parameters()):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert hybrid.stats(hyb)["replays"] == 2


def test_an_update_between_forward_and_backward_is_refused_as_eagerly():
    _, hyb = twins(NETWORKS["sequential"])
    X = db.rand(2, 20)
    hyb(X)
    y = hyb(X)                            # a replay
    with db.no_grad():
        hyb[0].weight -= 1.0
    with pytest.raises(RuntimeError, match="modified by an inplace"):
        y.sum().backward()


def test_dropout_is_replayed_in_eval_mode_only():
    build = lambda: nn.Sequential(nn.Linear(20, 30), nn.Dropout(0.5),  # noqa: E731
                                  nn.Linear(30, 5))
    eager, hyb = twins(build)
    db.manual_seed(7)
    outs_e = [eager(X).numpy() for X in [db.ones(4, 20)] * 3]
    db.manual_seed(7)
    with pytest.warns(HybridizeWarning, match="reuse the first call's numbers"):
        outs_h = [hyb(X).numpy() for X in [db.ones(4, 20)] * 3]
    for a, b in zip(outs_e, outs_h):
        np.testing.assert_allclose(b, a, rtol=1e-6)
    assert not np.allclose(outs_h[0], outs_h[1])      # a new mask each call
    assert hybrid.stats(hyb)["replays"] == 0
    eager.eval()
    hyb.eval()
    for _ in range(3):
        assert_same_call(eager, hyb, db.rand(4, 20))
    assert hybrid.stats(hyb)["replays"] == 2


def test_train_and_eval_of_a_child_select_different_recordings():
    build = lambda: nn.Sequential(nn.Linear(20, 30), nn.Dropout(0.5))  # noqa: E731
    eager, hyb = twins(build)
    X = db.rand(2, 20)
    for net in (eager, hyb):
        net[1].eval()
    for _ in range(3):
        assert_same_call(eager, hyb, X)
    assert hybrid.stats(hyb)["replays"] == 2
    for net in (eager, hyb):
        net[1].train()
    db.manual_seed(5)
    a = eager(X).numpy()
    db.manual_seed(5)
    with pytest.warns(HybridizeWarning):
        b = hyb(X).numpy()
        db.manual_seed(5)
        b = hyb(X).numpy()
    np.testing.assert_allclose(b, a, rtol=1e-6)


def test_hybridize_false_turns_replay_off():
    _, hyb = twins(NETWORKS["sequential"])
    X = db.rand(2, 20)
    hyb(X)
    hyb(X)
    assert hybrid.stats(hyb)["replays"] == 1
    hyb.hybridize(False)
    hyb(X)
    assert hybrid.stats(hyb)["reason"] == "not hybridized"
    assert all(nn.block.call_handler(b) is None for b in hyb.blocks())
    assert db.hybridize(hyb) is hyb and hybrid.stats(hyb)["records"] == 0


def test_source_shows_the_straight_line_replay():
    _, hyb = twins(NETWORKS["sequential"])
    with pytest.raises(ValueError, match="nothing recorded"):
        hybrid.source(hyb)
    hyb(db.rand(2, 20))
    code = hybrid.source(hyb)
    assert code.startswith("def run(t0):")
    assert code.count("= f") == 3 and "def run_backward(g):" in code


# ---- a whole training step ------------------------------------------------------
def mlp_problem(batch, optimizer, **options):
    db.manual_seed(0)
    net = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 4))
    return net, training_step(net, optimizer(net.parameters(), **options))


@pytest.mark.parametrize("optimizer, options", [
    (optim.SGD, {"lr": 0.1}),
    (optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3}),
    (optim.Adam, {"lr": 1e-2}),
])
@pytest.mark.parametrize("batch", [1, 7])
def test_n_hybridized_steps_equal_n_eager_steps(optimizer, options, batch):
    eager_net, eager_step = mlp_problem(batch, optimizer, **options)
    hyb_net, step = mlp_problem(batch, optimizer, **options)
    step = db.hybridize(step)
    rng = np.random.default_rng(1)
    for _ in range(6):
        X = db.tensor(rng.normal(size=(batch, 30)).astype(np.float32))
        y = db.tensor(rng.integers(0, 4, batch))
        le, lh = eager_step(X, y), step(X, y)
        np.testing.assert_allclose(lh.numpy(), le.numpy(), rtol=1e-6, atol=1e-7)
        for a, b in zip(eager_net.parameters(), hyb_net.parameters()):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5,
                                       atol=1e-7)
    assert hybrid.stats(step) == {"records": 1, "replays": 5, "eager": 0,
                                  "recordings": 1, "reason": None}
    assert "C0()" in hybrid.source(step)          # optimizer.step()


def test_a_replayed_step_refuses_labels_out_of_range_as_eagerly():
    net, step = mlp_problem(2, optim.SGD, lr=0.1)
    step = db.hybridize(step)
    X = db.rand(2, 30)
    for _ in range(2):
        step(X, db.tensor([0, 3]))
    assert hybrid.stats(step)["replays"] == 1
    before = [p.numpy().copy() for p in net.parameters()]
    for bad in ([0, -1], [4, 0]):
        with pytest.raises((ValueError, IndexError), match="label"):
            step(X, db.tensor(bad))
    for p, old in zip(net.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), old)


def test_a_step_without_zero_grad_accumulates_as_eagerly():
    eager_net, _ = mlp_problem(3, optim.SGD, lr=0.1)
    hyb_net, _ = mlp_problem(3, optim.SGD, lr=0.1)

    def make(net):
        def step(X, y):
            db.cross_entropy(net(X), y).backward()
        return step
    eager_step, step = make(eager_net), db.hybridize(make(hyb_net))
    X, y = db.rand(3, 30), db.tensor([0, 1, 3])
    for i in range(4):
        eager_step(X, y)
        step(X, y)
        if i == 2:
            eager_net.zero_grad()
            hyb_net.zero_grad()
    for a, b in zip(eager_net.parameters(), hyb_net.parameters()):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5)
    assert hybrid.stats(step)["replays"] == 3


def test_a_hand_written_update_is_not_replayed():
    net, _ = mlp_problem(2, optim.SGD, lr=0.1)

    def step(X, y):
        net.zero_grad()
        db.cross_entropy(net(X), y).backward()
        with db.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
    hyb = db.hybridize(step)
    with pytest.warns(HybridizeWarning, match="in place outside an op"):
        for _ in range(3):
            hyb(db.rand(2, 30), db.tensor([1, 2]))
    assert hybrid.stats(hyb)["replays"] == 0


def test_a_step_that_prints_its_loss_stays_eager():
    net, _ = mlp_problem(2, optim.SGD, lr=0.1)
    losses = []

    def step(X, y):
        loss = db.cross_entropy(net(X), y)
        losses.append(loss.item())
    hyb = db.hybridize(step)
    with pytest.warns(HybridizeWarning, match="item"):
        for _ in range(3):
            hyb(db.rand(2, 30), db.tensor([1, 2]))
    assert len(losses) == 3


def test_hybridize_checks_what_it_is_given():
    with pytest.raises(TypeError, match="a Block or a function, got int"):
        db.hybridize(3)


@given(batch=st.integers(1, 6), width=st.integers(1, 9),
       depth=st.integers(1, 3))
def test_mlps_of_any_shape_replay_like_eager(batch, width, depth):
    def build():
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(width, width), nn.Tanh()]
        return nn.Sequential(*layers, nn.Linear(width, 2))
    eager, hyb = twins(build, width)
    for _ in range(3):
        assert_same_call(eager, hyb, db.randn(batch, width))
    assert hybrid.stats(hyb)["replays"] == 2


def test_switching_a_child_between_train_and_eval_keeps_both_recordings():
    build = lambda: nn.Sequential(nn.Linear(20, 8), nn.Dropout(0.5))  # noqa: E731
    eager, hyb = twins(build)
    X = db.rand(2, 20)
    for _ in range(3):
        for mode in (False, True):       # eval with dropout off, then train
            for net in (eager, hyb):
                net[1].train(mode)
            if not mode:
                assert_same_call(eager, hyb, X)
    info = hybrid.stats(hyb)
    assert info["records"] == 1 and info["replays"] == 2


def test_a_replay_that_fails_raises_the_eager_error():
    _, step = mlp_problem(2, optim.SGD, lr=0.1)
    step = db.hybridize(step)
    X = db.rand(2, 30)
    step(X, db.tensor([0, 1]))
    step(X, db.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        step(X, db.tensor([0, 9]))


def test_diagnose_counts_the_blocks_of_a_replay_as_run():
    _, hyb = twins(NETWORKS["nest_mlp"])
    for _ in range(3):
        hyb(db.rand(2, 20))
    assert hybrid.stats(hyb)["replays"] == 2
    report = db.diagnose(hyb)
    assert not report.unused and "not used" not in str(report)


def test_integer_inputs_converted_inside_a_block_are_replayed_from_new_values():
    class Mixed(nn.Block):
        def forward(self, counts, X):
            return X * 2.5 + counts / 2 + counts * X
    net = Mixed().hybridize()
    for i in range(3):
        counts = db.tensor(np.arange(6).reshape(2, 3) * (i + 1))
        X = db.rand(2, 3)
        expected = X.numpy() * 2.5 + counts.numpy() / 2 + counts.numpy() * X.numpy()
        np.testing.assert_allclose(net(counts, X).numpy(), expected, rtol=1e-6)
    assert hybrid.stats(net)["replays"] == 2


# ---- inlined ops: reused arrays stay invisible --------------------------------------
def quiet_step(net, opt):
    """A training step that returns nothing (its loss value is unused)."""
    return training_step(net, opt, returns_loss=False)


def assert_same_state(eager_net, hyb_net):
    """Equal parameters and equal gradients (where eager has one)."""
    for a, b in zip(eager_net.parameters(), hyb_net.parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)
        if a.grad is not None:
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(),
                                       rtol=1e-5, atol=1e-7)


def train_side_by_side(eager, step, nets, shape, classes, steps, seed):
    """``steps`` random batches of ``shape`` through the eager step and the
    hybridized one; after each, both networks hold the same state.
    Returns the last batch."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        X = db.tensor(rng.normal(size=shape).astype(np.float32))
        y = db.tensor(rng.integers(0, classes, shape[0]))
        eager(X, y)
        step(X, y)
        assert_same_state(*nets)
    return X, y


def test_a_step_that_returns_nothing_skips_its_loss_and_trains_like_eager():
    eager_net, _ = mlp_problem(5, optim.SGD, lr=0.1)
    hyb_net, _ = mlp_problem(5, optim.SGD, lr=0.1)
    eager = quiet_step(eager_net, optim.SGD(eager_net.parameters(), lr=0.1))
    step = db.hybridize(quiet_step(hyb_net, optim.SGD(hyb_net.parameters(), lr=0.1)))
    X, y = train_side_by_side(eager, step, (eager_net, hyb_net), (5, 30), 4,
                              steps=5, seed=2)
    code = hybrid.source(step)
    assert "log(" not in code and "f0(" not in code     # inlined, no loss value
    assert hybrid.stats(step)["replays"] == 4
    # The loss is computed again as soon as the step returns it.
    _, returning = mlp_problem(5, optim.SGD, lr=0.1)
    returning = db.hybridize(returning)
    returning(X, y)
    assert "log(" in hybrid.source(returning)


def test_gradients_the_caller_keeps_are_never_overwritten():
    net, _ = mlp_problem(4, optim.SGD, lr=0.1)
    step = db.hybridize(quiet_step(net, optim.SGD(net.parameters(), lr=0.1)))
    X, y = db.rand(4, 30), db.tensor([0, 1, 2, 3])
    step(X, y)
    step(X, y)
    weight = net[0].weight
    last = weakref.ref(weight.grad.data)
    step(X, y)
    assert weight.grad.data is last()      # nobody else held it: reused
    kept = weight.grad                     # a tensor, and a view of another
    kept_copy = kept.numpy().copy()
    row = net[2].weight.grad.data[0]
    row_copy = row.copy()
    for _ in range(3):
        step(X * 2, y)
    np.testing.assert_array_equal(kept.numpy(), kept_copy)
    np.testing.assert_array_equal(row, row_copy)
    assert weight.grad.data is not kept.data
    assert not np.array_equal(weight.grad.numpy(), kept_copy)


def test_values_a_replay_returns_are_fresh_arrays():
    _, hyb = twins(NETWORKS["sequential"])
    hyb.eval()
    with db.no_grad():
        hyb(db.ones(3, 20))                 # records
        first = hyb(db.ones(3, 20))         # a replay
        copy = first.numpy().copy()
        for _ in range(3):
            later = hyb(db.rand(3, 20))
    assert hybrid.stats(hyb)["replays"] >= 3
    np.testing.assert_array_equal(first.numpy(), copy)
    assert not np.shares_memory(first.data, later.data)


def test_a_parameter_given_a_new_array_dtype_or_shape_is_seen():
    eager_net, _ = mlp_problem(3, optim.SGD, lr=0.1)
    hyb_net, _ = mlp_problem(3, optim.SGD, lr=0.1)
    eager = quiet_step(eager_net, optim.SGD(eager_net.parameters(), lr=0.1))
    step = db.hybridize(quiet_step(hyb_net, optim.SGD(hyb_net.parameters(), lr=0.1)))
    X, y = db.rand(3, 30), db.tensor([2, 0, 1])

    def both():
        eager(X, y)
        step(X, y)
        for a, b in zip(eager_net.parameters(), hyb_net.parameters()):
            np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)

    both()
    both()
    for net in (eager_net, hyb_net):      # the same shape, a new array
        net[2].weight.data = np.full((4, 16), 0.01, np.float32)
    both()
    assert hybrid.stats(step) == {"records": 1, "replays": 2, "eager": 0,
                                  "recordings": 1, "reason": None}
    for net in (eager_net, hyb_net):      # another dtype: recorded again
        net[2].bias.data = net[2].bias.data.astype(np.float64)
    both()
    both()
    info = hybrid.stats(step)
    assert info["records"] == 2 and info["replays"] == 3


@pytest.mark.parametrize("shape", [(1, 784, 256), (16, 784, 256)])
def test_products_into_a_given_array_equal_fresh_ones(shape):
    from d2lblocks import backend
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((n, k), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    assert backend.dot(a, b.T, out) is out
    np.testing.assert_array_equal(out, backend.dot(a, b.T))


@pytest.mark.parametrize("change", ["shape", "dtype", "same array twice",
                                    "grad mode", "input needs grad",
                                    "frozen parameter", "unfrozen parameter"])
def test_a_replayed_function_rechecks_every_part_of_its_signature(change):
    """The checked fast path of a function's replay: after two calls with
    one signature, a call that differs in one part of it must reach the
    full lookup (and record), never replay the old recording."""
    db.manual_seed(0)
    lin = nn.Linear(4, 3)

    def f(a, b):
        return (lin(a) * b[:, :3]).sum()
    hyb = db.hybridize(f)
    x, w = db.rand(2, 4), db.rand(2, 4)
    if change == "unfrozen parameter":
        lin.bias.requires_grad = False

    def same(*args):
        expected, got = f(*args), hyb(*args)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)
        assert got.requires_grad == expected.requires_grad
        return got

    with db.no_grad():
        same(x, w)
        same(x, w)
    assert hybrid.stats(hyb)["replays"] == 1
    args, grad_mode = (x, w), False
    if change == "shape":
        args = (db.rand(5, 4), db.rand(5, 4))
    elif change == "dtype":
        args = (x, db.tensor(w.numpy(), dtype=db.float64))
    elif change == "same array twice":
        args = (x, x)
    elif change == "grad mode":
        grad_mode = True
    elif change == "input needs grad":
        args = (db.tensor(x.numpy(), requires_grad=True), w)
    elif change == "unfrozen parameter":
        lin.bias.requires_grad = True
    else:
        lin.weight.requires_grad = False
    if grad_mode:
        same(*args)
    else:
        with db.no_grad():
            same(*args)
    assert hybrid.stats(hyb)["records"] == 2


def test_a_step_with_a_shared_layer_and_two_backward_passes_adds_up_as_eagerly():
    def problem():
        db.manual_seed(0)
        layer = nn.Linear(6, 6)
        net = nn.Sequential(layer, nn.ReLU(), layer, nn.ReLU(), nn.Linear(6, 3))
        opt = optim.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad()
            loss = db.cross_entropy(net(X), y)
            loss.backward(retain_graph=True)
            (loss * 0.5).backward()
            opt.step()
        return net, step
    eager_net, eager = problem()
    hyb_net, step = problem()
    step = db.hybridize(step)
    train_side_by_side(eager, step, (eager_net, hyb_net), (3, 6), 3,
                       steps=4, seed=3)
    assert hybrid.stats(step)["replays"] == 3


@given(batch=st.integers(1, 5), widths=st.lists(st.integers(1, 7), min_size=1,
                                               max_size=3),
       classes=st.integers(1, 4), returns_loss=st.booleans(),
       float64=st.booleans())
def test_training_steps_of_any_shape_replay_like_eager(batch, widths, classes,
                                                     returns_loss, float64):
    """Dense layers, ReLU and cross-entropy (the inlined ops) over shapes,
    both dtypes, with and without the loss value."""
    dtype = db.float64 if float64 else db.float32

    def problem():
        db.manual_seed(0)
        layers, width = [], 5
        for w in widths:
            layers += [nn.Linear(width, w), nn.ReLU()]
            width = w
        net = nn.Sequential(*layers, nn.Linear(width, classes))
        for p in net.parameters():
            p.data = p.data.astype(dtype)
        opt = optim.SGD(net.parameters(), lr=0.5)
        return net, training_step(net, opt, returns_loss)
    (eager_net, eager), (hyb_net, step) = problem(), problem()
    step = db.hybridize(step)
    rng = np.random.default_rng(batch)
    for _ in range(3):
        X = db.tensor(rng.normal(size=(batch, 5)), dtype=dtype)
        y = db.tensor(rng.integers(0, classes, batch))
        le, lh = eager(X, y), step(X, y)
        if returns_loss:
            np.testing.assert_allclose(lh.numpy(), le.numpy(), rtol=1e-6, atol=1e-7)
        else:
            assert le is None and lh is None
        assert_same_state(eager_net, hyb_net)
    assert hybrid.stats(step)["replays"] == 2


# ---- a signature that changes on every call ----------------------------------------
def test_a_new_numpy_array_on_every_call_gives_up_with_one_warning():
    eager_net, hyb_net = twins(NETWORKS["sequential"])
    nets = (eager_net.hybridize(False), hyb_net.hybridize(False))
    eager = quiet_step(eager_net, optim.SGD(eager_net.parameters(), lr=0.1))
    step = db.hybridize(quiet_step(hyb_net, optim.SGD(hyb_net.parameters(),
                                                      lr=0.1)))
    rng = np.random.default_rng(0)
    calls = hybrid.CACHE_SIZE + 4
    with pytest.warns(HybridizeWarning) as caught:
        for _ in range(calls):
            X = db.tensor(rng.normal(size=(3, 20)).astype(np.float32))
            y = rng.integers(0, 10, 3)          # a NumPy array, new each time
            eager(X, y)
            step(X, y)
            assert_same_state(*nets)
    ours = [w for w in caught if w.category is HybridizeWarning]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert "'y' is a new NumPy array" in message and "db.tensor" in message
    assert ours[0].filename == __file__          # points at the call
    assert linecache.getline(__file__, ours[0].lineno).strip() == "step(X, y)"
    info = hybrid.stats(step)
    assert info["records"] == hybrid.CACHE_SIZE + 1
    assert info["eager"] == calls - info["records"]
    assert info["replays"] == 0 and info["recordings"] == 0
    assert info["reason"].startswith("a new signature on every call")
    # hybridizing again starts over: tensors are replayed
    db.hybridize(step)
    train_side_by_side(eager, step, nets, (3, 20), 10, steps=3, seed=1)
    assert hybrid.stats(step)["replays"] == 2


def test_a_block_given_a_new_batch_size_on_every_call_runs_eagerly():
    eager, hyb = twins(NETWORKS["sequential"])
    pattern = (r"Sequential is not replayed.*the shape of argument 'X' "
               r"changes, \(8, 20\) then \(9, 20\)")
    with pytest.warns(HybridizeWarning, match=pattern) as caught:
        for batch in range(1, hybrid.CACHE_SIZE + 5):
            assert_same_call(eager, hyb, db.rand(batch, 20))
    assert [w.filename for w in caught] == [__file__]
    assert hybrid.stats(hyb)["replays"] == 0
    assert hybrid.stats(hyb)["eager"] == 3


def test_a_value_argument_that_changes_names_the_argument():
    net = nn.Linear(4, 2)

    @db.hybridize
    def scaled(X, factor):
        return net(X) * factor
    X = db.rand(2, 4)
    with pytest.warns(HybridizeWarning, match="'factor' has a new value"):
        for i in range(hybrid.CACHE_SIZE + 2):
            out = scaled(X, float(i))
            np.testing.assert_allclose(out.numpy(), (net(X) * float(i)).numpy(),
                                       rtol=1e-6)


@pytest.mark.parametrize("kind", ["block", "function"])
def test_a_replay_between_new_signatures_starts_the_count_again(kind):
    """One recorded signature replayed, then as many new ones as the cache
    holds: never more recordings in a row than that, so no giving up."""
    eager, hyb = twins(NETWORKS["sequential"])
    call = hyb if kind == "block" else db.hybridize(lambda X: hyb(X) * 2)
    with warnings.catch_warnings(), db.no_grad():    # (the checked fast path)
        warnings.simplefilter("error", HybridizeWarning)
        for batch in [1, 1] + list(range(2, hybrid.CACHE_SIZE + 2)):
            out = call(db.rand(batch, 20))
            assert out.shape == (batch, 10)
    info = hybrid.stats(call)
    assert info["records"] == hybrid.CACHE_SIZE + 1
    assert info["replays"] == 1 and info["reason"] is None


# ---- several tensors over one array ------------------------------------------------
class DetachFirst(nn.Block):
    """Uses ``w.detach()`` before ``w`` itself: both read one array."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(db.tensor([[0.5, -1.0, 2.0]]))

    def forward(self, X):
        target = self.w.detach() * 0.5
        return X * self.w + db.mse(self.w, target)


def test_a_detached_parameter_seen_before_the_parameter_still_gets_gradients():
    nets = [DetachFirst(), DetachFirst().hybridize()]
    for step in range(3):
        X = db.rand(2, 3)
        for net in nets:
            net.zero_grad()
            net(X).sum().backward()
        np.testing.assert_allclose(nets[1].w.grad.numpy(),
                                   nets[0].w.grad.numpy(), rtol=1e-6)
        for net in nets:               # a new array is read, not the old one
            net.w.data = net.w.data * 2.0
    assert hybrid.stats(nets[1])["replays"] == 2


def test_two_arguments_over_one_array_each_get_their_own_gradient():
    f = db.hybridize(lambda a, b: (a * b * b).sum())
    for i in range(3):
        data = np.arange(3.0, dtype=np.float32) + i
        a = db.tensor(data, requires_grad=True)
        f(a, a.detach()).backward()
        np.testing.assert_allclose(a.grad.numpy(), data ** 2)
    assert hybrid.stats(f)["replays"] == 2


def test_a_new_graph_started_inside_the_call_stays_eager():
    class Cut(nn.Block):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, X):
            h = self.lin(X).detach().requires_grad_()
            return h * 2 + self.lin(X)
    net = Cut().hybridize()
    with pytest.warns(HybridizeWarning, match="starts a new graph"):
        for _ in range(3):
            net.zero_grad()
            net(db.ones(1, 3)).sum().backward()
            # only the second use of lin reaches its weight
            np.testing.assert_allclose(net.lin.weight.grad.numpy(),
                                       np.ones((3, 3)))
    assert hybrid.stats(net)["replays"] == 0


@pytest.mark.parametrize("replayed", ["step", "network"])
def test_a_layer_unfrozen_after_replays_is_trained_again(replayed):
    """Fine-tuning: the first layer is frozen for a few steps, then
    unfrozen; from then on it must get gradients and updates."""
    eager_net, hyb_net = twins(NETWORKS["sequential"])
    hyb_net.hybridize(replayed == "network")
    nets = (eager_net.hybridize(False), hyb_net)
    steps = []
    for net, hybridized in zip(nets, (False, replayed == "step")):
        step = quiet_step(net, optim.SGD(net.parameters(), lr=0.1))
        steps.append(db.hybridize(step) if hybridized else step)
    for phase, frozen in enumerate((True, False, True)):
        for net in nets:
            net[0].requires_grad_(not frozen)
        before = hyb_net[0].weight.numpy().copy()
        train_side_by_side(steps[0], steps[1], nets, (4, 20), 10, steps=3,
                           seed=phase)
        moved = not np.array_equal(hyb_net[0].weight.numpy(), before)
        assert moved is not frozen
    watched = steps[1] if replayed == "step" else hyb_net
    assert hybrid.stats(watched)["replays"] >= 4


# ---- names a hybridized function reads from outside ---------------------------------
_net = _opt = None
_calls = 0


def _global_step(X, y):
    _opt.zero_grad()
    loss = db.cross_entropy(_net(X), y)
    loss.backward()
    _opt.step()
    return loss


@pytest.mark.parametrize("path", ["checked", "full lookup"])
def test_a_global_given_a_new_optimizer_is_seen(path):
    """The optimizer's cell of a notebook run again with another learning
    rate after the step was hybridized: replays must use the new one."""
    global _net, _opt
    step = db.hybridize(_global_step)
    call = (lambda X, y: step(X, y)) if path == "checked" else \
        (lambda X, y: step(X, y=y))
    X, y = db.rand(4, 20), db.tensor([0, 1, 2, 3])
    twin, net = twins(NETWORKS["sequential"])
    _net = net.hybridize(False)
    try:
        for lr in (0.1, 0.02):
            _opt = optim.SGD(_net.parameters(), lr=lr)
            eager = quiet_step(twin, optim.SGD(twin.parameters(), lr=lr))
            for _ in range(3):
                call(X, y)
                eager(X, y)
                assert_same_state(twin, _net)
        assert hybrid.stats(step)["records"] == 2
        assert hybrid.stats(step)["replays"] == 4
    finally:
        _net = _opt = None


def test_a_variable_of_the_enclosing_function_given_a_new_object_is_seen():
    db.manual_seed(0)
    net = NETWORKS["sequential"]()
    opt = optim.SGD(net.parameters(), lr=0.1)

    @db.hybridize
    def step(X, y):
        opt.zero_grad()
        db.cross_entropy(net(X), y).backward()
        opt.step()
    X, y = db.rand(4, 20), db.tensor([0, 1, 2, 3])
    step(X, y)
    step(X, y)
    opt = optim.SGD(net.parameters(), lr=0.0)      # the step sees this one
    before = [p.numpy().copy() for p in net.parameters()]
    step(X, y)
    step(X, y)
    for a, p in zip(before, net.parameters()):
        np.testing.assert_array_equal(p.numpy(), a)
    assert hybrid.stats(step) == {"records": 2, "replays": 2, "eager": 0,
                                  "recordings": 2, "reason": None}


def _counting(X):
    global _calls
    _calls += 1
    return X * 2


def test_a_function_that_assigns_a_global_warns_and_stays_eager():
    global _calls
    _calls = 0
    f = db.hybridize(_counting)
    with pytest.warns(HybridizeWarning, match="new value to `_calls`"):
        for _ in range(4):
            f(db.rand(2, 3))
    assert _calls == 4
    assert hybrid.stats(f)["records"] == 1 and hybrid.stats(f)["eager"] == 3


# ---- plain attributes of blocks -----------------------------------------------------
class Scaled(nn.Block):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.scale = 2.0
        self.calls = 0
        self.offset = None

    def forward(self, X):
        return self.lin(X) * self.scale


def test_a_plain_attribute_changed_between_calls_is_seen():
    net, X = Scaled().hybridize(), db.rand(2, 4)
    for scale in (2.0, 2.0, 3.0, 3.0):
        net.scale = scale
        with db.no_grad():
            np.testing.assert_allclose(net(X).numpy(),
                                       net.lin(X).numpy() * scale, rtol=1e-6)
    assert hybrid.stats(net)["replays"] == 2


def test_a_forward_that_sets_an_attribute_on_every_call_stays_eager():
    class Counting(Scaled):
        def forward(self, X):
            self.calls += 1
            return super().forward(X)
    net = Counting().hybridize()
    with pytest.warns(HybridizeWarning, match=r"sets `calls` of Counting") \
            as caught:
        for _ in range(4):
            net(db.rand(2, 4))
    assert net.calls == 4
    assert [linecache.getline(w.filename, w.lineno).strip() for w in caught
            if w.category is HybridizeWarning] == ["self.calls += 1"]
    assert hybrid.stats(net)["replays"] == 0


def test_a_forward_that_fills_a_cache_on_its_first_call_is_replayed_after():
    class Cached(Scaled):
        def forward(self, X):
            if self.offset is None:
                self.offset = db.ones(1, 3)
            return super().forward(X) + self.offset
    net = Cached().hybridize()
    with warnings.catch_warnings():
        warnings.simplefilter("error", HybridizeWarning)
        for _ in range(4):
            X = db.rand(2, 4)
            np.testing.assert_allclose(
                net(X).numpy(), net.lin(X).numpy() * 2.0 + 1.0, rtol=1e-6)
    assert hybrid.stats(net)["replays"] == 2


# ---- in-place writes through views ----------------------------------------------------
class _WritesInPlace(nn.Block):
    """A hidden layer whose output is changed in place through a view
    before the last layer reads it (one way per ``variant``)."""

    def __init__(self, variant):
        super().__init__()
        self.variant = variant
        self.hidden = nn.Linear(5, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, X):
        h = db.relu(self.hidden(X))
        if self.variant == "column":
            h[:, 0] *= 2.0
        elif self.variant == "transpose":
            t = h.T
            t[1] = h[:, 2] * 0.5
        elif self.variant == "copy into part":
            c = h * 0.0
            c[:, 1:] += h[:, 1:]
            h = c
        else:
            flat = h.reshape(-1)
            flat /= 2.0
        return self.out(h)


def _numpy_forward(net, X, variant):
    """``_WritesInPlace``'s forward with NumPy arrays and NumPy's views."""
    h = np.maximum(X @ net.hidden.weight.numpy().T + net.hidden.bias.numpy(), 0)
    if variant == "column":
        h[:, 0] *= 2.0
    elif variant == "transpose":
        t = h.T
        t[1] = h[:, 2] * 0.5
    elif variant == "copy into part":
        c = h * 0.0
        c[:, 1:] += h[:, 1:]
        h = c
    else:
        flat = h.reshape(-1)
        flat /= 2.0
    return h @ net.out.weight.numpy().T + net.out.bias.numpy()


@pytest.mark.parametrize("variant", ["column", "transpose", "copy into part",
                                     "reshape"])
def test_a_whole_step_with_in_place_views_replays_like_eager(variant):
    nets, steps = [], []
    for _ in range(2):
        db.manual_seed(5)
        net = _WritesInPlace(variant)
        nets.append(net)
        steps.append(training_step(net, optim.SGD(net.parameters(), lr=0.1)))
    steps[1] = db.hybridize(steps[1])
    rng = np.random.default_rng(0)
    for _ in range(4):
        X = db.tensor(rng.normal(size=(3, 5)).astype(np.float32))
        y = db.tensor(rng.integers(0, 3, 3))
        np.testing.assert_allclose(nets[0](X).numpy(),
                                   _numpy_forward(nets[0], X.numpy(), variant),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(steps[1](X, y).numpy(),
                                   steps[0](X, y).numpy(), rtol=1e-5)
        for p, q in zip(nets[0].parameters(), nets[1].parameters()):
            np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-5,
                                       atol=1e-7)
    assert hybrid.stats(steps[1])["replays"] == 3


def test_an_in_place_write_into_a_new_zeros_tensor_stays_eager_and_says_why():
    """A tensor made by db.zeros is not an op's result: a replay would
    keep writing into the recorded one."""
    class Fill(nn.Block):
        def forward(self, X):
            out = db.zeros(X.shape)
            out[:, :1] = X[:, :1] * 2.0
            return out

    eager, hyb = Fill(), Fill().hybridize()
    with pytest.warns(HybridizeWarning, match="none of its ops made"):
        hyb(db.ones(2, 3))
    for _ in range(2):
        X = db.randn(2, 3)
        np.testing.assert_array_equal(hyb(X).numpy(), eager(X).numpy())
    assert hybrid.stats(hyb)["replays"] == 0


def test_a_warning_from_a_notebook_cell_names_the_cell_not_its_temporary_file():
    """In a kernel, each cell is compiled into a temporary file with a
    number for a name; the warning says which cell and line instead."""
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    try:
        shell.run_cell("import d2lblocks as db\nfrom d2lblocks import nn",
                       store_history=True)
        cell = shell.execution_count          # the next cell's number
        shell.run_cell(
            "class Branchy(nn.Block):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.lin = nn.Linear(3, 3)\n"
            "    def forward(self, x):\n"
            "        y = self.lin(x)\n"
            "        if y.sum() > 0:\n"
            "            return y\n"
            "        return -y\n", store_history=True)
        shell.run_cell("net = Branchy(); net.hybridize(); x = db.ones(2, 3)",
                       store_history=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = shell.run_cell("net(x); net(x)", store_history=True)
        result.raise_error()
        found = [w for w in caught if issubclass(w.category, HybridizeWarning)]
        assert found, [str(w.message) for w in caught]
        message, shown = str(found[0].message), str(found[0].filename)
        assert f"Cell In[{cell}], line 7" in message, message
        assert shown.startswith("Cell In["), shown
        assert ".py:" not in message, message
    finally:
        InteractiveShell.clear_instance()
