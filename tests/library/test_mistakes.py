"""A student's mistake gets a clear error and changes nothing.

For each public entry point that changes a network, an optimizer or grad
mode, hypothesis draws wrong arguments (wrong kinds, shapes, dtypes and
names, classes where instances are meant, empty batches, NaN and infinite
numbers, missing and damaged files). Each test snapshots everything that
call could change, makes the call, and checks three things: the error is
one of the documented types, its message names the argument (or the
entry it concerns), and the snapshot is identical afterwards. A notebook
cell that fails this way can simply be fixed and run again.
"""

import math
import os
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import d2lblocks as db
from d2lblocks import init, nn, optim, state

#: The error types the library documents for a wrong argument.
DOCUMENTED = (TypeError, ValueError, KeyError, IndexError, AttributeError,
              FileNotFoundError, RuntimeError)

FEW = settings(max_examples=20)


# ---- the world a mistake is made in -------------------------------------------
class Net(nn.Block):
    """Nested children, a buffer, a lazy layer once built."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Dense(4))
        self.head = nn.Linear(4, 2)
        self.register_buffer("shift", db.zeros(2))
        self.register_buffer("steps", db.zeros(1, dtype=db.int64))

    def forward(self, x):
        return self.head(self.body(x)) + self.shift


def trained():
    """A built network with gradients, and an Adam that has taken a step
    (so that it has state to lose)."""
    db.manual_seed(0)
    net = Net()
    net(db.ones(2, 3)).sum().backward()
    opt = optim.Adam(net.parameters(), lr=0.01)
    opt.step()
    return net, opt


def lazy():
    return nn.Sequential(nn.Dense(4, activation="relu"), nn.Dense(2))


def tensor_state(t):
    if t is None:
        return None
    if getattr(t, "is_lazy", False):
        return ("lazy", t.shape, id(t._init), t._user_initialized,
                t._lazy_dtype)
    return (id(t.data), t.shape, str(t.dtype), np.array(t.numpy()).tobytes(),
            t.requires_grad, getattr(t, "_user_initialized", None),
            id(getattr(t, "_init", None)),
            None if t.grad is None else (id(t.grad), np.array(t.grad)
                                         .tobytes()))


def snapshot(net, opt=None):
    """Everything a call on ``net`` or ``opt`` could change."""
    out = {"grad mode": db.is_grad_enabled()}
    for name, block in net.named_modules(remove_duplicate=False):
        d = block.__dict__
        out[name] = (
            type(block), d["training"],
            [(k, id(v)) for k, v in d["_children"].items()],
            [(k, tensor_state(v)) for k, v in d["_params"].items()],
            [(k, tensor_state(v)) for k, v in d["_buffers"].items()],
            sorted(d["_non_persistent"]),
            sorted(k for k in d if k not in ("_last_call", "_hybrid")))
    if opt is not None:
        out["optimizer"] = (opt.lr, [id(p) for p in opt.params], {
            key: {k: (v.tobytes() if isinstance(v, np.ndarray) else v)
                  for k, v in st_.items() if k not in ("buf", "wd_g")}
            for key, st_ in opt.state.items()})
    return out


def refused(call, needle, *state):
    """Run ``call``; check that it raises a documented error whose message
    contains ``needle``, and that ``snapshot(*state)`` did not change."""
    before = snapshot(*state)
    with pytest.raises(DOCUMENTED) as info:
        call()
    assert needle.lower() in str(info.value).lower(), (needle, str(info.value))
    assert snapshot(*state) == before
    return info.value


# ---- what a student might pass ------------------------------------------------
CLASSES = st.sampled_from([nn.ReLU, nn.Linear, nn.Sequential, init.Normal,
                           init.Xavier, Net])
NON_BLOCKS = st.one_of(st.integers(), st.text(max_size=5),
                       st.floats(allow_nan=True), CLASSES,
                       st.just(lambda x: x), st.just(np.ones(3)),
                       st.builds(db.ones, st.just(2)))
BAD_NAMES = st.one_of(
    st.just(""), st.text(min_size=1, max_size=4).map(lambda s: s + ".x"),
    st.integers(), st.floats(), st.sampled_from(
        ["training", "forward", "_params", "_children", "_buffers", "_modules",
         "parameters", "state_dict", "to"]))
BAD_NUMBERS = st.one_of(st.sampled_from([math.inf, -math.inf, math.nan]),
                        st.floats(max_value=-1e-6, allow_nan=False,
                                  allow_infinity=False),
                        st.sampled_from(["0.1", None, [0.1], True]))
SHAPES = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


# ---- building a lazy layer --------------------------------------------------------
WRONG_BATCHES = st.one_of(
    st.integers(0, 3).map(lambda n: db.zeros(n, 0)),            # no features
    st.integers(1, 3).map(lambda n: db.zeros(n, 3, dtype=db.int64)),
    st.just(db.tensor(1.0)),                                    # 0-d
    st.just(None), st.just([[1.0, 2.0]]), st.just(np.ones((2, 3))))


@FEW
@given(WRONG_BATCHES)
def test_a_wrong_first_batch_leaves_a_lazy_network_lazy(X):
    net = lazy()
    refused(lambda: net(X), "Dense", net)
    assert net[0].weight.is_lazy and net[1].bias.is_lazy


# ---- initialize ------------------------------------------------------------------
@FEW
@given(st.one_of(CLASSES, st.integers(), st.text(max_size=4), st.floats()),
       st.booleans())
def test_initialize_with_something_else_than_an_initializer(given_init,
                                                            built):
    net = trained()[0] if built else lazy()
    error = refused(lambda: net.initialize(given_init), "initialize", net)
    if isinstance(given_init, type):
        assert f"write {'nn.' if given_init.__module__.startswith('d2lblocks.nn') else ''}" \
            in str(error) and f"{given_init.__name__}()" in str(error)


@FEW
@given(st.one_of(st.text(max_size=3), st.integers(), st.none()))
def test_initialize_with_a_flag_that_is_not_a_bool(flag):
    net, _ = trained()
    refused(lambda: net.initialize(init.Normal(), force_reinit=flag),
            "force_reinit", net)


# ---- load_state_dict ---------------------------------------------------------------
@FEW
@given(st.data())
def test_a_wrong_state_loads_nothing(data):
    net, opt = trained()
    state = {k: v + 1 for k, v in net.state_dict().items()}   # all different
    keys = list(state)
    key = data.draw(st.sampled_from(keys), label="key")
    how = data.draw(st.sampled_from(["shape", "strings", "objects", "complex",
                                     "missing", "unexpected", "nested"]))
    if how == "shape":
        shape = data.draw(SHAPES.filter(lambda s: s != state[key].shape))
        state[key] = np.ones(shape)
    elif how == "strings":
        state[key] = np.full(state[key].shape, "x")
    elif how == "objects":
        state[key] = np.array([None] * max(1, state[key].size), dtype=object)
    elif how == "complex":
        state[key] = state[key] * 1j
    elif how == "missing":
        del state[key]
    elif how == "unexpected":
        key = key + "_extra"
        state[key] = np.ones(1)
    else:
        key = "body.7.weight"
        state[key] = np.ones(1)
    refused(lambda: net.load_state_dict(state), key, net, opt)


@FEW
@given(st.one_of(st.text(min_size=1, max_size=8), st.integers(),
                 st.lists(st.integers(), max_size=2), st.none()))
def test_a_state_that_is_not_a_dict_loads_nothing(state):
    net, opt = trained()
    refused(lambda: net.load_state_dict(state), "load_state_dict", net, opt)


# ---- to ----------------------------------------------------------------------------
@FEW
@given(st.one_of(
    st.sampled_from([db.int64, db.int32, db.bool_, "int8", np.uint8]).map(
        lambda d: ("dtype", dict(dtype=d))),
    st.sampled_from(["tpu", "gpu:x", "cpu:0:1", ""]).map(
        lambda d: ("device", dict(device=d))),
    st.sampled_from([3.5, "floaty", object()]).map(
        lambda d: ("dtype", dict(dtype=d)))))
def test_to_a_wrong_dtype_or_device_moves_nothing(case):
    needle, kwargs = case
    net, opt = trained()
    refused(lambda: net.to(**kwargs), needle, net, opt)


# ---- registration ------------------------------------------------------------------
@FEW
@given(BAD_NAMES, st.sampled_from(["add_module", "register_buffer",
                                   "register_parameter", "setattr"]))
def test_a_bad_name_registers_nothing(name, how):
    net, opt = trained()
    value = {"add_module": nn.ReLU(), "setattr": nn.ReLU(),
             "register_buffer": db.zeros(2),
             "register_parameter": nn.Parameter(db.zeros(2))}[how]
    if how == "setattr":
        if not isinstance(name, str):
            return                    # Python itself refuses those
        call = lambda: setattr(net, name, value)
    else:
        call = lambda: getattr(net, how)(name, value)
    refused(call, "name", net, opt)


@FEW
@given(NON_BLOCKS.filter(lambda v: v is not None))
def test_a_child_that_is_not_a_block_registers_nothing(value):
    net, opt = trained()
    error = refused(lambda: net.add_module("extra", value), "extra", net, opt)
    if isinstance(value, type) and issubclass(value, nn.Block):
        assert f"{value.__name__}()" in str(error)


@FEW
@given(st.sampled_from(["self", "parent", "grandparent"]),
       st.sampled_from(["add_module", "setattr", "append"]))
def test_a_cycle_registers_nothing(which, how):
    net, opt = trained()
    # a block given itself, its parent, or its parent's parent
    where = net.body if which != "grandparent" else net.body[1]
    target = {"self": where, "parent": net, "grandparent": net}[which]
    if how == "append" and which == "grandparent":
        how = "add_module"            # ReLU has no append
    call = {"add_module": lambda: where.add_module("loop", target),
            "setattr": lambda: setattr(where, "loop", target),
            "append": lambda: where.append(target)}[how]
    refused(call, "itself", net, opt)


@FEW
@given(st.sampled_from([(3, 5), (4, 3), (2, 4)]), st.sampled_from(
    [db.float32, db.float64]))
def test_a_parameter_of_another_shape_or_dtype_replaces_nothing(shape, dtype):
    net, opt = trained()
    if shape == (2, 4) and dtype == db.float32:
        shape = (2, 5)
    refused(lambda: setattr(net.head, "weight",
                            nn.Parameter(db.zeros(*shape, dtype=dtype))),
            "weight", net, opt)


# ---- containers ---------------------------------------------------------------------
@FEW
@given(NON_BLOCKS, st.integers(0, 2),
       st.sampled_from(["append", "extend", "insert", "+=", "add", "init"]))
def test_a_container_given_a_bad_item_adds_nothing(bad, position, how):
    net, opt = trained()
    seq = net.body
    items = [nn.ReLU(), nn.Tanh()]
    items.insert(position, bad)
    calls = {"append": lambda: seq.append(bad),
             "extend": lambda: seq.extend(items),
             "insert": lambda: seq.insert(position, bad),
             "+=": lambda: seq.__iadd__(items),
             "add": lambda: seq.add(*items),
             "init": lambda: net.add_module("new", nn.Sequential(*items))}
    refused(calls[how], "Sequential", net, opt)


@FEW
@given(st.one_of(NON_BLOCKS.map(lambda v: [("good", nn.ReLU()), ("bad", v)]),
                 BAD_NAMES.map(lambda n: [("good", nn.ReLU()), (n, nn.ReLU())]),
                 st.just([("good", nn.ReLU()), ("short",)])))
def test_a_block_dict_update_with_a_bad_pair_adds_nothing(pairs):
    d = nn.BlockDict({"a": nn.Linear(2, 2)})
    refused(lambda: d.update(pairs), "", d)


# ---- optimizers ---------------------------------------------------------------------
@FEW
@given(st.data())
def test_a_wrong_gradient_updates_no_parameter(data):
    net, opt = trained()
    params = list(net.parameters())
    p = data.draw(st.sampled_from(params))
    kind = data.draw(st.sampled_from(["shape", "dtype", "array"]))
    if kind == "shape":
        shape = data.draw(SHAPES.filter(lambda s: s != tuple(p.shape)))
        p.grad = db.ones(*shape)
    elif kind == "dtype":
        p.grad = db.ones(*p.shape, dtype=db.float64)
    else:
        p.grad = np.ones(p.shape, dtype=np.float32)
    refused(opt.step, "gradient of parameter", net, opt)


@FEW
@given(st.sampled_from(["lr", "momentum", "dampening", "weight_decay"]),
       BAD_NUMBERS)
def test_sgd_with_a_bad_hyperparameter_is_not_built(name, value):
    net, opt = trained()
    kwargs = {"lr": 0.1, name: value}
    refused(lambda: optim.SGD(net.parameters(), **kwargs), name, net, opt)


@FEW
@given(st.one_of(
    st.tuples(st.just("lr"), BAD_NUMBERS),
    st.tuples(st.just("eps"), BAD_NUMBERS),
    st.tuples(st.just("weight_decay"), BAD_NUMBERS),
    st.tuples(st.just("betas"), st.one_of(
        st.floats(0, 0.99), st.tuples(st.floats(1, 10), st.floats(0, 0.9)),
        st.tuples(st.floats(0, 0.9), BAD_NUMBERS), st.just((0.9,)),
        st.just("0.9")))))
def test_adam_with_a_bad_hyperparameter_is_not_built(case):
    name, value = case
    net, opt = trained()
    refused(lambda: optim.Adam(net.parameters(), **{name: value}), name,
            net, opt)


@FEW
@given(st.one_of(CLASSES, st.integers(), st.just(None),
                 st.builds(lambda: trained()[0])))
def test_an_optimizer_given_no_parameters_says_what_to_pass(params):
    net, opt = trained()
    refused(lambda: optim.SGD(params, lr=0.1), "SGD", net, opt)


# ---- train, eval, requires_grad_ -----------------------------------------------------
@FEW
@given(st.one_of(st.text(max_size=4), st.integers(2, 5), st.none()),
       st.sampled_from(["train", "requires_grad_"]))
def test_a_mode_that_is_not_a_bool_switches_nothing(flag, how):
    net, opt = trained()
    refused(lambda: getattr(net, how)(flag), how, net, opt)


# ---- files ---------------------------------------------------------------------------
@FEW
@given(st.sampled_from(["missing", "empty", "text", "npy", "cut", "shape"]))
def test_a_wrong_file_loads_nothing_and_is_named(kind):
    net, opt = trained()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"student_{kind}.npz")
        if kind == "empty":
            open(path, "wb").close()
        elif kind == "text":
            with open(path, "w") as f:
                f.write("0.1 0.2 0.3\n")
        elif kind == "npy":
            with open(path, "wb") as f:
                np.save(f, np.ones(3))
        elif kind in ("cut", "shape"):
            other = Net() if kind == "cut" else nn.Sequential(nn.Linear(2, 2))
            if kind == "cut":
                other(db.ones(1, 3))
            other.save(path)
            if kind == "cut":
                with open(path, "rb") as f:
                    data = f.read()
                with open(path, "wb") as f:
                    f.write(data[:len(data) // 3])
        needle = f"student_{kind}.npz" if kind != "shape" else "unexpected"
        refused(lambda: net.load(path), needle, net, opt)


def test_saving_into_a_missing_folder_names_it():
    net, opt = trained()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "no", "such", "net.npz")
        refused(lambda: net.save(path), path, net, opt)
        assert os.listdir(folder) == []


# ---- the other ways in -------------------------------------------------------------
@FEW
@given(st.sampled_from(["_children", "_params", "_buffers", "training"]))
def test_deleting_what_a_block_needs_deletes_nothing(name):
    net, opt = trained()
    refused(lambda: delattr(net, name), name, net, opt)


@FEW
@given(NON_BLOCKS, st.sampled_from(["register_child", "seq[i] =", "dict[k] =",
                                   "apply"]))
def test_the_other_ways_to_add_a_block_refuse_a_non_block(bad, how):
    net, opt = trained()
    d = nn.BlockDict({"a": nn.ReLU()})
    net.add_module("d", d)
    if how == "apply" and callable(bad) and not isinstance(bad, type):
        bad = 3                        # a function is what apply wants
    calls = {"register_child": lambda: net.register_child(bad, "extra"),
             "seq[i] =": lambda: net.body.__setitem__(1, bad),
             "dict[k] =": lambda: d.__setitem__("b", bad),
             "apply": lambda: net.apply(bad)}
    needle = {"register_child": "extra", "seq[i] =": "Sequential[1]",
              "dict[k] =": "BlockDict['b']", "apply": "apply"}[how]
    refused(calls[how], needle, net, opt)


@FEW
@given(st.one_of(st.integers(5, 50), st.integers(-50, -5), st.text(max_size=2),
                 st.floats()))
def test_a_container_index_out_of_range_removes_nothing(index):
    net, opt = trained()
    refused(lambda: net.body.pop(index), "Sequential", net, opt)


@FEW
@given(st.sampled_from([
    ("std", lambda p, v: init.normal_(p, std=v)),
    ("mean", lambda p, v: init.normal_(p, mean=v)),
    ("low", lambda p, v: init.uniform_(p, a=v, b=1.0)),
    ("value", lambda p, v: init.constant_(p, v)),
    ("gain", lambda p, v: init.xavier_uniform_(p, gain=v))]), BAD_NUMBERS)
def test_an_init_function_with_a_bad_number_fills_nothing(case, value):
    name, fill = case
    net, opt = trained()
    # a negative mean, low or value is fine (a low above high is not)
    if name in ("low", "mean", "value") and isinstance(value, float) \
            and value < 0 and math.isfinite(value):
        value = 2.0 if name == "low" else math.nan
    needle = name
    refused(lambda: fill(net.head.weight, value), needle, net, opt)


@FEW
@given(st.sampled_from(["not a dict", "attrs", "data", "grad"]))
def test_a_bad_state_sets_nothing(what):
    net, opt = trained()
    p = net.head.weight
    st_ = state.get_state(p)
    needle = {"not a dict": "dict", "attrs": "attrs", "data": "data",
              "grad": "grad"}[what]
    if what == "not a dict":
        st_ = [st_]
    elif what == "attrs":
        st_["attrs"] = {3: "x"}
    elif what == "data":
        st_["data"] = p.numpy().tolist()
    else:
        st_["grad"] = np.ones(p.shape)
    refused(lambda: state.set_state(p, st_), needle, net, opt)
