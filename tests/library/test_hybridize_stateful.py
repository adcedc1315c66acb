"""A replay must notice every change that makes its recording wrong.

Hypothesis drives two equal setups, one eager and one hybridized (the
network and a whole training step), through a drawn sequence of what a
user does between calls: training steps and forward passes at several
batch sizes, in and out of ``no_grad``, ``train()``/``eval()``, a frozen
or unfrozen parameter, a new array assigned to ``.data``, a new learning
rate, ``load_state_dict``, a replaced layer or optimizer, gradients
cleared by hand or accumulated without a step, a cast to float64. After
every action both hold the same parameters and gradients and gave the
same outputs.
"""

import numpy as np
import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import d2lblocks as db
from d2lblocks import hybrid, nn, optim
from tests.hybrid_tools import training_step

IN, HIDDEN, OUT = 4, 5, 3
batches = st.sampled_from([1, 2, 3])


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                               atol=1e-6)


class Setup:
    """A network, its optimizer and a training step; hybridized or not."""

    def __init__(self, hybridized):
        db.manual_seed(0)
        self.hybridized = hybridized
        self.net = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(),
                                 nn.Linear(HIDDEN, OUT))
        self.opt = optim.SGD(self.net.parameters(), lr=0.1, momentum=0.5)
        self.new_step()
        if hybridized:
            self.net.hybridize()

    def new_step(self):
        """A step for the current network and optimizer: a recording keeps
        the objects it was made with, so replacing one needs a new step."""
        step = training_step(self.net, self.opt)
        self.step = db.hybridize(step) if self.hybridized else step


class ReplayAgreesWithEager(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.eager, self.hyb = Setup(False), Setup(True)
        self.rng = np.random.default_rng(0)
        self.dtype = db.float32

    def both(self):
        """The two setups; the hybridized one starts over where it gave up
        (a drawn walk may need a new recording nine calls in a row)."""
        for obj in (self.hyb.net, self.hyb.step):
            if (hybrid.stats(obj)["reason"] or "").startswith("a new signature"):
                db.hybridize(obj)
        return self.eager, self.hyb

    def batch(self, n):
        X = self.rng.normal(size=(n, IN)).astype(self.dtype)
        y = self.rng.integers(0, OUT, n)
        return db.tensor(X), db.tensor(y)

    @rule(n=batches)
    def train_step(self, n):
        if not any(p.requires_grad for p in self.eager.net.parameters()):
            return                      # nothing to train: backward() refuses
        for _ in range(2):          # the second call may replay the first
            X, y = self.batch(n)
            losses = [s.step(X, y) for s in self.both()]
            _close(losses[1].numpy(), losses[0].numpy())
            self.same_state()

    @rule(n=batches, grad=st.booleans(), input_grad=st.booleans())
    def forward(self, n, grad, input_grad):
        for _ in range(2):
            self.forward_once(n, grad, input_grad)
            self.same_state()

    def forward_once(self, n, grad, input_grad):
        X, _ = self.batch(n)
        outs = []
        for s in self.both():
            Xs = db.tensor(X.numpy(), requires_grad=input_grad)
            with db.set_grad_enabled(grad):
                out = s.net(Xs)
            if out.requires_grad:
                (out * out).sum().backward()
            outs.append((out.numpy(), None if Xs.grad is None
                         else Xs.grad.numpy()))
        _close(outs[1][0], outs[0][0])
        assert (outs[0][1] is None) == (outs[1][1] is None)
        if outs[0][1] is not None:
            _close(outs[1][1], outs[0][1])

    @rule(training=st.booleans(), which=st.sampled_from([None, 0, 2]))
    def set_mode(self, training, which):
        for s in self.both():
            block = s.net if which is None else s.net[which]
            block.train(training)

    @rule(index=st.integers(0, 3), flag=st.booleans())
    def freeze(self, index, flag):
        for s in self.both():
            list(s.net.parameters())[index].requires_grad_(flag)

    @rule(index=st.integers(0, 3))
    def new_array(self, index):
        for s in self.both():
            p = list(s.net.parameters())[index]
            p.data = p.data * 0.9           # a new array, same shape

    @rule(lr=st.sampled_from([0.0, 0.05, 0.2]))
    def new_lr(self, lr):
        for s in self.both():
            s.opt.lr = lr

    @rule(scale=st.sampled_from([0.5, 1.5]))
    def load(self, scale):
        state = {k: v * scale for k, v in self.eager.net.state_dict().items()}
        for s in self.both():
            s.net.load_state_dict(state)

    @rule()
    def replace_layer(self):
        for s in self.both():
            db.manual_seed(1)
            s.net[2] = nn.Linear(HIDDEN, OUT)
            s.net.to(dtype=self.dtype)
            if s.hybridized:
                s.net[2].hybridize()
            s.opt = optim.SGD(s.net.parameters(), lr=0.1)
            s.new_step()

    @rule(to_none=st.booleans())
    def clear_grads(self, to_none):
        for s in self.both():
            s.net.zero_grad(set_to_none=to_none)

    @rule(n=batches)
    def accumulate(self, n):
        """A backward pass through the network without a step: gradients
        add up in .grad (the replay's node hands them on)."""
        for _ in range(2):
            X, y = self.batch(n)
            for s in self.both():
                out = s.net(X)
                if out.requires_grad:
                    db.cross_entropy(out, y).backward()

    @rule(kind=st.sampled_from(["adam", "sgd"]))
    def new_optimizer(self, kind):
        if not any(p.requires_grad for p in self.eager.net.parameters()):
            return                      # an optimizer with nothing to train
        for s in self.both():
            params = s.net.parameters()
            s.opt = optim.Adam(params, lr=0.01) if kind == "adam" \
                else optim.SGD(params, lr=0.1, momentum=0.5)
            s.new_step()

    @rule(dtype=st.sampled_from([db.float32, db.float64]))
    def cast(self, dtype):
        """Parameters of another dtype: the replay's inlined products
        record again (eager and replay alike refuse mixed dtypes)."""
        errors = []
        for s in self.both():
            s.net.to(dtype=dtype)
            try:
                s.net(db.zeros(1, IN, dtype=dtype))
                errors.append(None)
            except (TypeError, ValueError) as exc:
                errors.append(type(exc))
        assert errors[0] == errors[1]
        self.dtype = dtype

    @invariant()
    def same_state(self):
        for p, q in zip(self.eager.net.parameters(), self.hyb.net.parameters()):
            _close(q.numpy(), p.numpy())
            assert p.requires_grad == q.requires_grad
            assert (p.grad is None) == (q.grad is None)
            if p.grad is not None:
                _close(q.grad.numpy(), p.grad.numpy())


ReplayAgreesWithEager.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None)
test_replay_agrees_with_eager_whatever_happens_between_calls = pytest.mark.filterwarnings(
    "ignore::d2lblocks.hybrid.HybridizeWarning")(ReplayAgreesWithEager.TestCase)
