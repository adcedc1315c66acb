"""hybridize(): a recording is dropped only when something it ran changes.

A block carries the stamp of its own latest change; a recording checks the
blocks it ran, never the rest of the process. Building a layer elsewhere,
or changing a block the call never ran, leaves every recording replaying
(Gluon clears the cached graph of the block that changed, and only that).
"""

import threading
import warnings

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import hybrid, nn, optim
from d2lblocks.hybrid import HybridizeWarning
from tests.hybrid_tools import training_step


@pytest.fixture(autouse=True)
def fresh_warnings():
    hybrid._warned.clear()
    yield
    hybrid._warned.clear()


def three_layers(seed=0):
    db.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16),
                         nn.ReLU(), nn.Linear(16, 3))


def test_a_layer_built_before_every_call_never_stops_the_replay():
    eager, hyb = three_layers(), three_layers().hybridize()
    X = db.rand(4, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HybridizeWarning)
        for _ in range(12):
            nn.Linear(2, 2)                    # unrelated to the network
            np.testing.assert_allclose(hyb(X).numpy(), eager(X).numpy(),
                                       rtol=1e-6, atol=1e-6)
    assert hybrid.stats(hyb) == {"records": 1, "replays": 11, "eager": 0,
                                 "recordings": 1, "reason": None}


def test_a_training_step_replays_while_other_blocks_are_built_and_changed():
    nets, steps = [], []
    for hybridized in (False, True):
        net = three_layers()
        step = training_step(net, optim.SGD(net.parameters(), lr=0.1))
        nets.append(net)
        steps.append(db.hybridize(step) if hybridized else step)
    other = nn.Linear(3, 3)
    rng = np.random.default_rng(0)
    for i in range(8):
        nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        other.scale = float(i)                 # a block the step never runs
        other.weight = nn.Parameter(db.rand(3, 3))
        X = db.tensor(rng.normal(size=(5, 6)).astype(np.float32))
        y = db.tensor(rng.integers(0, 3, 5))
        losses = [step(X, y).item() for step in steps]
        assert losses[1] == pytest.approx(losses[0], rel=1e-6, abs=1e-7)
    for a, b in zip(*(net.parameters() for net in nets)):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7)
    assert hybrid.stats(steps[1])["records"] == 1
    assert hybrid.stats(steps[1])["replays"] == 7


def test_changing_one_network_drops_its_recordings_and_no_other():
    first, second = three_layers(1).hybridize(), three_layers(2).hybridize()
    X = db.rand(2, 6)
    for net in (first, second):
        net(X)
        net(X)
    first.add_module("4", nn.Linear(16, 5))
    assert first(X).shape == (2, 5)            # the new layer runs
    second(X)
    assert hybrid.stats(first)["records"] == 2
    assert hybrid.stats(second) == {"records": 1, "replays": 2, "eager": 0,
                                    "recordings": 1, "reason": None}


@pytest.mark.parametrize("change", ["parameter", "child", "attribute",
                                    "registry"])
def test_a_change_deep_inside_drops_the_recording_of_the_whole(change):
    class Scaled(nn.Block):
        def __init__(self):
            super().__init__()
            self.scale = 2.0
            self.body = nn.Linear(6, 4)

        def forward(self, X):
            return self.body(X) * self.scale

    def build():
        db.manual_seed(3)
        return nn.Sequential(nn.Sequential(Scaled(), nn.ReLU()),
                             nn.Linear(4, 2))

    eager, hyb = build(), build().hybridize()
    X = db.rand(3, 6)
    for net in (eager, hyb):
        net(X)
        net(X)
        inner = net[0][0]
        if change == "parameter":
            inner.body.weight = nn.Parameter(np.full((4, 6), 0.25, np.float32))
        elif change == "child":
            db.manual_seed(4)
            inner.body = nn.Linear(6, 4)
        elif change == "attribute":
            inner.scale = -1.5
        else:                      # written into the registry by hand
            db.manual_seed(4)
            inner._children["body"] = nn.Linear(6, 4)
    np.testing.assert_allclose(hyb(X).numpy(), eager(X).numpy(), rtol=1e-6,
                               atol=1e-6)
    assert hybrid.stats(hyb)["records"] == 2


def test_a_gradient_reset_by_hand_inside_a_step_is_replayed():
    def make():
        net = three_layers()
        opt = optim.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            db.cross_entropy(net(X), y).backward()
            for p in net.parameters():
                p.grad = None            # by hand, not through zero_grad
            loss = db.cross_entropy(net(X * 2), y)
            loss.backward()
            opt.step()
            return loss
        return net, step

    (eager_net, eager), (hyb_net, hyb) = make(), make()
    hyb = db.hybridize(hyb)
    rng = np.random.default_rng(1)
    for _ in range(4):
        X = db.tensor(rng.normal(size=(4, 6)).astype(np.float32))
        y = db.tensor(rng.integers(0, 3, 4))
        np.testing.assert_allclose(hyb(X, y).numpy(), eager(X, y).numpy(),
                                   rtol=1e-6, atol=1e-7)
        for a, b in zip(eager_net.parameters(), hyb_net.parameters()):
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(),
                                       rtol=1e-5, atol=1e-7)
    assert hybrid.stats(hyb)["replays"] == 3


def test_recording_leaves_the_tensor_class_as_it_is():
    """Another thread reading ``.grad`` while a call records must see the
    plain attribute: a recording patches nothing on ``Tensor``."""
    net = three_layers()
    opt = optim.SGD(net.parameters(), lr=0.1)
    before = dict(db.Tensor.__dict__)
    seen = []

    def step(X, y):
        seen.append(dict(db.Tensor.__dict__))
        opt.zero_grad()
        loss = db.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
        return loss

    step = db.hybridize(step)
    X, y = db.rand(4, 6), db.tensor([0, 1, 2, 0])
    step(X, y)
    step(X, y)
    assert hybrid.stats(step)["replays"] == 1
    assert len(seen) == 1                      # recorded once, then replayed
    assert seen[0] == before and dict(db.Tensor.__dict__) == before


def test_a_block_built_in_another_thread_never_drops_a_recording():
    hyb = three_layers().hybridize()
    X = db.rand(2, 6)
    hyb(X)
    worker = threading.Thread(target=lambda: [nn.Linear(2, 2)
                                              for _ in range(20)])
    worker.start()
    worker.join()
    hyb(X)
    assert hybrid.stats(hyb)["records"] == 1


def test_what_another_thread_does_during_a_recording_is_not_part_of_it():
    """The hooks are the process's, but a recording takes in only its own
    thread: another thread's ops, blocks and data-dependent decisions
    neither join the replay nor stop it."""
    net = three_layers()
    other = nn.Linear(6, 2)
    decided = []

    def elsewhere():
        out = other(db.rand(1, 6))
        decided.append(float(out.sum()) == float(out.sum()))   # a decision

    def forward(X):
        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
        return net(X)

    hyb = db.hybridize(forward)
    X = db.rand(2, 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error", HybridizeWarning)
        for _ in range(3):
            np.testing.assert_allclose(hyb(X).numpy(), net(X).numpy(),
                                       rtol=1e-6, atol=1e-6)
    assert decided == [True]            # it ran once: while recording
    assert hybrid.stats(hyb)["replays"] == 2
    alone = db.hybridize(lambda X: net(X))
    alone(X)
    assert hybrid.source(hyb) == hybrid.source(alone)    # no foreign ops


@pytest.mark.parametrize("reach", ["global", "attribute", "inside a block"])
def test_a_parameter_read_without_calling_its_block_is_watched(reach):
    """A call may read a layer's weight directly (tied weights); a new
    parameter there must record again even though that layer never ran."""
    db.manual_seed(5)
    holder = type("Holder", (), {})()
    holder.lin = nn.Linear(3, 2)
    X = db.rand(4, 3)

    class Tied(nn.Block):
        def __init__(self):
            super().__init__()
            self.lin = holder.lin

        def forward(self, X):
            return X @ self.lin.weight.T

    if reach == "global":
        globals()["_tied_layer"] = holder.lin
        fn = db.hybridize(lambda X: X @ _tied_layer.weight.T)
    elif reach == "attribute":
        fn = db.hybridize(lambda X: X @ holder.lin.weight.T)
    else:
        fn = Tied().hybridize()
    fn(X)
    fn(X)
    holder.lin.weight = nn.Parameter(np.full((2, 3), 0.5, np.float32))
    np.testing.assert_allclose(fn(X).numpy(), X.numpy() @ np.full((3, 2), 0.5),
                               rtol=1e-6)
    assert hybrid.stats(fn)["records"] == 2


@pytest.mark.parametrize("edit", ["set", "delete", "insert", "append", "pop",
                                  "dict delete", "dict pop"])
def test_editing_a_container_records_again_even_when_nothing_is_built(edit):
    """A container's own methods change its children without building a
    block: the change is stamped on the container itself."""
    db.manual_seed(6)
    spare = nn.Linear(4, 4)
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    table = nn.BlockDict({"a": nn.Linear(4, 4), "b": nn.ReLU()})

    def run(X):
        out = net(X)
        for block in table.values():
            out = block(out)
        return out

    fn = db.hybridize(run)
    X = db.rand(3, 4)
    fn(X)
    fn(X)
    if edit == "set":
        net[2] = spare
    elif edit == "delete":
        del net[1]
    elif edit == "insert":
        net.insert(0, spare)
    elif edit == "append":
        net.append(spare)
    elif edit == "pop":
        net.pop(0)
    elif edit == "dict delete":
        del table["a"]
    else:
        table.pop("a")
    np.testing.assert_allclose(fn(X).numpy(), run(X).numpy(), rtol=1e-6,
                               atol=1e-7)
    assert hybrid.stats(fn)["records"] == 2


def test_a_network_restored_from_another_process_replays():
    """A block's stamp travels with its state (``d2lblocks.state``); one
    made in a busier process can be above this process's count."""
    from d2lblocks import state
    source = three_layers()
    for block in source.blocks():
        block.__dict__["_version"] = nn.block.BlockChanges.count + 10 ** 6
    twin = state.empty(nn.Sequential)
    state.set_state(twin, state.get_state(source))
    twin.hybridize()
    X = db.rand(2, 6)
    for _ in range(4):
        nn.Linear(2, 2)
        np.testing.assert_allclose(twin(X).numpy(), source(X).numpy(),
                                   rtol=1e-6, atol=1e-7)
    assert hybrid.stats(twin)["records"] == 1
