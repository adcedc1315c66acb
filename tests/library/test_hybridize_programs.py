"""The replay is a second way of running a network: it must agree with
eager on any program of ops, not only on the networks of the chapters.

Hypothesis draws small straight-line programs (elementwise ops, products,
broadcasting, reductions, reshapes, indexing, joins, values used twice)
over an input and a few parameters. A block runs the program in its
``forward``; one copy runs eagerly, one hybridized, over several calls
with new input values (the first records, the rest replay). Outputs,
input gradients and parameter gradients must agree; so must whole
training steps (forward, loss, backward, SGD) replayed against eager.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import d2lblocks as db
from d2lblocks import hybrid, nn, optim
from tests.hybrid_tools import training_step

FEATURES = 3            # every value is (batch, FEATURES) or broadcasts to it

def _clone_iadd(a):
    c = a * 1.0
    c += a.tanh()
    c *= 0.5
    return c


def _setitem(a):
    c = a.clone()
    c[:, 0] = a[:, -1] * 2.0
    return c


UNARY = {
    "relu": db.relu, "tanh": db.tanh, "sigmoid": db.sigmoid,
    "exp": lambda a: db.exp(db.tanh(a)),          # bounded, for float32
    "abs": db.abs, "neg": lambda a: -a, "square": lambda a: a * a,
    "scale": lambda a: a * 0.5 + 1.0, "rsub": lambda a: 2.0 - a,
    "softmax": lambda a: db.softmax(a, axis=1),
    "log_softmax": lambda a: db.log_softmax(a, axis=0),
    "rowsum": lambda a: a.sum(axis=1, keepdims=True),
    "colmean": lambda a: a.mean(axis=0, keepdims=True),
    "rowmax": lambda a: a.max(axis=1, keepdims=True),
    "total": lambda a: a.sum(),
    "transpose2": lambda a: a.T.T,
    "reshape": lambda a: a.reshape(-1).reshape(a.shape),
    "slice": lambda a: db.concat([a[:, 1:], a[:, :1]], axis=1),
    "flip_rows": lambda a: a[::-1],
    "stack_mean": lambda a: db.stack([a, a * 2.0]).mean(axis=0),
    "sqrt_log": lambda a: db.log(db.sqrt(a * a + 1.0)),
    "pow": lambda a: a ** 2 + (a * a + 1.0) ** 0.5,
    "rdiv": lambda a: 1.0 / (a.abs() + 1.0),
    "float64": lambda a: (a.astype(db.float64) * 3.0).astype(db.float32),
    "fancy_rows": lambda a: a[[0] * a.shape[0]],
    "unsqueeze": lambda a: a.unsqueeze(0).squeeze(0).permute(1, 0).T,
    "clone_iadd": _clone_iadd,
    "setitem": _setitem,
    "mse": lambda a: db.mse(a, a.detach() * 0.5).reshape(1, 1),
    "max_all": lambda a: a.max() + a.min(axis=0, keepdims=True),
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b, "max": db.maximum, "min": db.minimum,
    "where": lambda a, b: db.where(a > 0, a, b),
    "div": lambda a, b: a / (b * b + 1.0),
    "outer_sum": lambda a, b: (a.sum(axis=1, keepdims=True)
                               * b.mean(axis=0, keepdims=True)),
    "concat_half": lambda a, b: db.concat([_full(a, b), _full(b, a)],
                                          axis=1)[:, :FEATURES],
    "matmul_t": lambda a, b: _full(a, b) @ _full(b, a).T @ _full(a, b) * 0.1,
}


def _full(a, b):
    """``a`` broadcast against ``b`` and a full row (ops too)."""
    return a + b * 0.0 + db.zeros(1, FEATURES)


def _apply_binary(name, a, b):
    return BINARY[name](a, b)


instructions = st.lists(
    st.one_of(
        st.tuples(st.just("unary"), st.sampled_from(sorted(UNARY)),
                  st.integers(0, 99)),
        st.tuples(st.just("binary"), st.sampled_from(sorted(BINARY)),
                  st.integers(0, 99), st.integers(0, 99)),
        st.tuples(st.just("dense"), st.integers(0, 2), st.integers(0, 99)),
        st.tuples(st.just("linear"), st.integers(0, 1), st.integers(0, 99)),
    ),
    min_size=1, max_size=8)


class Program(nn.Block):
    """Runs ``program`` on the input, three parameters (two weights, a
    bias row) and two dense layers (one without a bias). Values are numbered in order of creation; an
    instruction's operands pick among the values made so far (modulo)."""

    def __init__(self, program):
        super().__init__()
        self.program = program
        self.W0 = nn.Parameter(db.randn(FEATURES, FEATURES) * 0.5)
        self.W1 = nn.Parameter(db.randn(FEATURES, FEATURES) * 0.5)
        self.b = nn.Parameter(db.randn(1, FEATURES) * 0.1)
        self.layers = nn.Sequential(nn.Linear(FEATURES, FEATURES),
                                    nn.Linear(FEATURES, FEATURES, bias=False))

    def forward(self, X):
        values = [X, self.b]
        for ins in self.program:
            kind = ins[0]
            if kind == "unary":
                out = UNARY[ins[1]](values[ins[2] % len(values)])
            elif kind == "binary":
                out = _apply_binary(ins[1], values[ins[2] % len(values)],
                                    values[ins[3] % len(values)])
            elif kind == "linear":          # a layer (inlined in whole steps)
                x = values[ins[2] % len(values)]
                out = self.layers[ins[1]](x if x.shape[1] == FEATURES
                                          else x + db.zeros(1, FEATURES))
            else:
                W = (self.W0, self.W1, self.W0.T)[ins[1]]
                x = values[ins[2] % len(values)]
                out = (x if x.ndim == 2 and x.shape[1] == FEATURES
                       else x + db.zeros(1, FEATURES)) @ W
            values.append(out if out.ndim == 2 else out.reshape(1, 1))
        # every value made reaches the output, so every op gets a gradient
        return sum((v * (0.1 * (i + 1)) for i, v in enumerate(values[2:])),
                   X * 0.0 + self.b)


def _pair(program, seed):
    nets = []
    for _ in range(2):
        db.manual_seed(seed)
        nets.append(Program(program))
    return nets[0], nets[1].hybridize()


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                               atol=1e-6)


OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.05),
    "momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
    "weight_decay": lambda ps: optim.SGD(ps, lr=0.05, weight_decay=0.01),
    "adam": lambda ps: optim.Adam(ps, lr=0.01),
}


def _same_grads(eager, hyb):
    for p, q in zip(eager.parameters(), hyb.parameters()):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            _close(q.grad.numpy(), p.grad.numpy())


@given(program=instructions, batch=st.integers(1, 4), seed=st.integers(0, 99),
       input_grad=st.booleans())
@settings(max_examples=150, deadline=None)
def test_any_program_replays_like_eager(program, batch, seed, input_grad):
    eager, hyb = _pair(program, seed)
    _three_calls(eager, hyb, batch, seed, input_grad)
    assert hybrid.stats(hyb)["replays"] == 2


def _three_calls(eager, hyb, batch, seed, input_grad):
    """Three new batches through both networks, each followed by a
    backward pass from a weighted sum of the output: the same outputs and
    gradients (the input's too, when it needs one)."""
    rng = np.random.default_rng(seed)
    for _ in range(3):
        data = rng.normal(size=(batch, FEATURES)).astype(np.float32)
        outs = []
        for net in (eager, hyb):
            net.zero_grad()
            X = db.tensor(data, requires_grad=input_grad)
            out = net(X)
            weights = db.tensor(np.linspace(-1, 1, out.numel(), dtype=np.float32)
                                .reshape(out.shape))
            (out * weights).sum().backward()
            outs.append((out.numpy(), X.grad))
        _close(outs[1][0], outs[0][0])
        if input_grad:
            _close(outs[1][1].numpy(), outs[0][1].numpy())
        _same_grads(eager, hyb)


@given(program=instructions, batch=st.integers(1, 4), seed=st.integers(0, 99),
       optimizer=st.sampled_from(["sgd", "momentum", "weight_decay", "adam"]))
@settings(max_examples=80, deadline=None)
def test_any_program_trains_like_eager_when_the_whole_step_is_replayed(
        program, batch, seed, optimizer):
    def problem():
        db.manual_seed(seed)
        net = Program(program)
        return net, training_step(net, OPTIMIZERS[optimizer](net.parameters()))
    (eager_net, eager), (hyb_net, step) = problem(), problem()
    step = db.hybridize(step)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        X = db.tensor(rng.normal(size=(batch, FEATURES)).astype(np.float32))
        y = db.tensor(rng.integers(0, FEATURES, batch))
        _close(step(X, y).numpy(), eager(X, y).numpy())
        for p, q in zip(eager_net.parameters(), hyb_net.parameters()):
            _close(q.numpy(), p.numpy())
    assert hybrid.stats(step)["replays"] == 2


@pytest.mark.parametrize("name", sorted(UNARY))
def test_each_unary_instruction_replays(name):
    """Every instruction at least once, whatever hypothesis draws."""
    eager, hyb = _pair([("unary", name, 0), ("dense", 0, 2)], seed=0)
    for _ in range(3):
        X = db.randn(2, FEATURES)
        _close(hyb(X).numpy(), eager(X).numpy())
    assert hybrid.stats(hyb)["replays"] == 2


@pytest.mark.parametrize("name", sorted(BINARY))
def test_each_binary_instruction_replays(name):
    eager, hyb = _pair([("dense", 1, 0), ("binary", name, 0, 2)], seed=0)
    for _ in range(3):
        X = db.randn(2, FEATURES)
        _close(hyb(X).numpy(), eager(X).numpy())
    assert hybrid.stats(hyb)["replays"] == 2


@given(first=instructions, second=instructions, batch=st.integers(1, 3),
       seed=st.integers(0, 99), whole=st.booleans())
@settings(max_examples=60, deadline=None)
def test_replayed_blocks_in_a_chain_pass_gradients_like_eager(
        first, second, batch, seed, whole):
    """Two program blocks in a Sequential: each replayed on its own (the
    second's input comes from the first's replay, and both backward passes
    wait for the loss), or the whole chain replayed as one."""
    nets = []
    for _ in range(2):
        db.manual_seed(seed)
        nets.append(nn.Sequential(Program(first), Program(second)))
    eager, hyb = nets
    if whole:
        hyb.hybridize()
    else:
        hyb[0].hybridize()
        hyb[1].hybridize()
    _three_calls(eager, hyb, batch, seed, input_grad=True)
    replayed = [hyb] if whole else [hyb[0], hyb[1]]
    assert all(hybrid.stats(b)["replays"] == 2 for b in replayed)
