"""The block system: registration, traversal, containers, lazy layers,
initializers chosen before the shape is known, and the layers themselves."""

import importlib.util
import re
import warnings
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, strategies as st

import d2lblocks as db
from d2lblocks import init, nn, optim


@pytest.fixture(autouse=True)
def _seed():
    db.manual_seed(0)


# ---- registration -----------------------------------------------------------
class Early(nn.Block):
    def __init__(self, what):
        if what == "block":
            self.layer = nn.Linear(2, 2)
        else:
            self.w = nn.Parameter(db.zeros(2))
        super().__init__()


@pytest.mark.parametrize("what", ["block", "parameter"])
def test_assigning_before_super_init_is_a_clear_error(what):
    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)") as info:
        Early(what)
    assert what in str(info.value) and "Early" in str(info.value)


def test_reading_an_attribute_when_super_init_was_forgotten():
    class Forgot(nn.Block):
        def __init__(self):
            self.units = 3           # plain values are fine

    f = Forgot()
    with pytest.raises(AttributeError, match="forget to call super"):
        f.hidden
    with pytest.raises(AttributeError, match="before super"):
        f.register_buffer("b", db.zeros(2))


class Nest(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6))
        self.out = nn.Linear(6, 2)
        self.scale = nn.Parameter(db.ones(2))

    def forward(self, X):
        return self.out(self.net(X)) * self.scale


def test_hierarchical_parameter_names():
    net = Nest()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "net.0.weight", "net.0.bias", "net.2.weight",
                     "net.2.bias", "out.weight", "out.bias"]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_parameters(prefix="m")][1] == \
        "m.net.0.weight"
    assert len(net.parameters()) == 7
    assert set(net.collect_params()) == set(names)
    assert [n for n, _ in net.named_children()] == ["net", "out"]
    assert [n for n, _ in net.named_blocks()] == ["", "net", "net.0", "net.1",
                                                  "net.2", "out"]
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert [n for n, _ in seq.named_parameters()] == [
        "0.weight", "0.bias", "2.weight", "2.bias"]


def test_attribute_access_reads_the_registries():
    net = Nest()
    assert net.out is net._children["out"]
    assert net.scale is net._params["scale"]
    assert "out" not in net.__dict__
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        net.missing


def test_reassigning_and_deleting_unregister():
    net = Nest()
    net.out = None
    assert "out.weight" not in dict(net.named_parameters())
    net.out = nn.Linear(6, 2)
    assert "out.weight" in dict(net.named_parameters())
    # A child's name takes a block or None, as in PyTorch: a typo such as
    # `self.out = nn.Linear` (the class) must not silently drop the layer.
    with pytest.raises(TypeError, match="child block 'out'.*Block or None"):
        net.out = 5
    assert isinstance(net.out, nn.Linear)
    del net.out                       # then the name is free again
    net.out = 5
    assert net.out == 5 and "out" not in net._children
    del net.scale
    assert "scale" not in dict(net.named_parameters())
    with pytest.raises(AttributeError):
        net.scale


def test_assigning_a_tensor_to_a_parameter_name_is_refused():
    net = Nest()
    with pytest.raises(TypeError, match="nn.Parameter"):
        net.scale = db.ones(2)
    net.scale = None
    assert net.scale is None and len(net.parameters()) == 6


def test_tied_parameter_is_listed_once_and_sums_its_gradients():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), shared, nn.ReLU(), shared,
                        nn.Linear(4, 2))
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias", "5.weight",
                     "5.bias"]
    # state_dict lists a tied layer under every name, as PyTorch does.
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight",
                                      "2.bias", "4.weight", "4.bias",
                                      "5.weight", "5.bias"]
    X = db.rand(5, 3)
    net(X).sum().backward()

    # The same network with two separate copies of the shared layer.
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    for layer in (a, b):
        layer.load_state_dict(shared.state_dict())
    untied = nn.Sequential(net[0], nn.ReLU(), a, nn.ReLU(), b, net[5])
    for p in untied.parameters():
        p.grad = None
    untied(X).sum().backward()
    np.testing.assert_allclose(shared.weight.grad.numpy(),
                               a.weight.grad.numpy() + b.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(shared.bias.grad.numpy(),
                               a.bias.grad.numpy() + b.bias.grad.numpy(),
                               rtol=1e-5, atol=1e-7)


def test_remove_duplicate_false_lists_every_name_of_a_shared_layer():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    names = [n for n, _ in net.named_parameters(remove_duplicate=False)]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_apply_visits_children_first():
    inner = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    last = nn.Linear(2, 1)
    outer = nn.Sequential(inner, last)
    seen = []
    assert outer.apply(seen.append) is outer
    assert seen == [inner[0], inner[1], inner, last, outer]


def test_apply_with_an_init_function():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))

    def init_weights(block):
        if type(block) is nn.Linear:
            init.constant_(block.weight, 0.25)
            init.zeros_(block.bias)
    net.apply(init_weights)
    for name, p in net.named_parameters():
        expected = 0.25 if name.endswith("weight") else 0.0
        assert np.all(p.numpy() == expected), name


def test_zero_grad():
    net = Nest()
    net(db.rand(3, 4)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_train_and_eval_are_recursive():
    net = nn.Sequential(nn.Sequential(nn.Dropout(0.5)), nn.Linear(2, 2))
    assert all(b.training for b in net.blocks())
    assert net.eval() is net
    assert not any(b.training for b in net.blocks())
    net.train()
    assert all(b.training for b in net.blocks())
    net.train(False)
    assert not net[0][0].training


def test_repr_is_an_indented_tree():
    net = Nest()
    assert repr(net) == (
        "Nest(\n"
        "  (net): Sequential(\n"
        "    (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "    (1): ReLU()\n"
        "    (2): Linear(in_features=8, out_features=6, bias=True)\n"
        "  )\n"
        "  (out): Linear(in_features=6, out_features=2, bias=True)\n"
        ")")
    assert repr(nn.Dense(4, activation="relu")) == "Dense(4, activation=relu)"
    assert repr(nn.Dense(4, in_units=3, use_bias=False)) == \
        "Dense(3 -> 4, use_bias=False)"


def test_add_module_and_register_child():
    net = nn.Block()
    a, b, c = nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()
    assert net.add_module("first", a) is a
    net.register_child(b)                  # Gluon: named by position
    net.register_child("act", c)           # either argument order
    assert list(net._children) == ["first", "1", "act"]
    assert net.first is a and net.act is c
    assert len(net.parameters()) == 4
    with pytest.raises(ValueError, match="without '.'"):
        net.add_module("a.b", nn.ReLU())
    with pytest.raises(ValueError, match="non-empty"):
        net.add_module("", nn.ReLU())
    with pytest.raises(TypeError, match="expected a Block"):
        net.add_module("x", [nn.ReLU()])


def test_forward_must_be_defined_and_call_is_accepted():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Block()(db.ones(2))

    class Keras(nn.Block):
        def call(self, X):
            return X * 2
    np.testing.assert_array_equal(Keras()(db.ones(2)).numpy(), [2.0, 2.0])


# ---- buffers ----------------------------------------------------------------
class Buffered(nn.Block):
    def __init__(self):
        super().__init__()
        self.register_buffer("kept", db.tensor([1.0, 2.0]))
        self.register_buffer("scratch", db.tensor([3.0]), persistent=False)
        self.lin = nn.Linear(2, 2)

    def forward(self, X):
        return self.lin(X) * self.kept + self.scratch


def test_persistent_and_non_persistent_buffers():
    net = Buffered()
    assert [n for n, _ in net.named_buffers()] == ["kept", "scratch"]
    state = net.state_dict()
    assert "kept" in state and "scratch" not in state
    out = net(db.ones(1, 2))
    out.sum().backward()
    for b in net.buffers():
        assert b.grad is None and not b.requires_grad
    assert len(net.parameters()) == 2
    # Assigning to a buffer's name replaces the buffer.
    net.kept = np.array([5.0, 6.0])
    assert isinstance(net.kept, db.Tensor)
    np.testing.assert_array_equal(net.state_dict()["kept"], [5.0, 6.0])


def test_buffer_from_a_tensor_that_requires_grad_is_detached():
    net = nn.Block()
    w = db.tensor([1.0], requires_grad=True)
    net.register_buffer("b", w * 2)
    assert not net.b.requires_grad and net.b.is_leaf


def test_a_parameter_is_not_a_buffer():
    with pytest.raises(TypeError, match="buffer"):
        nn.Block().register_buffer("p", nn.Parameter(db.ones(2)))


# ---- containers -------------------------------------------------------------
def test_sequential_len_iter_index_and_slices():
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    net = nn.Sequential(*layers)
    assert len(net) == 3
    assert list(net) == layers
    assert net[0] is layers[0] and net[-1] is layers[2]
    head = net[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    assert head[0].weight is layers[0].weight        # the same blocks
    X = db.rand(2, 3)
    np.testing.assert_array_equal(net[2](head(X)).numpy(), net(X).numpy())
    with pytest.raises(IndexError, match="out of range for 3 blocks"):
        net[3]
    net[1] = nn.Tanh()
    assert isinstance(net[1], nn.Tanh)
    with pytest.raises(TypeError, match="Block"):
        net[1] = lambda x: x
    with pytest.raises(TypeError, match="expected a Block"):
        nn.Sequential(nn.ReLU(), "relu")


def test_gluon_add_returns_the_container_and_accepts_several():
    net = nn.Sequential()
    assert net.add(nn.Dense(3), nn.Dense(2)) is net
    assert len(net) == 2 and list(net._children) == ["0", "1"]


def test_block_list_registers_its_blocks():
    class Stack(nn.Block):
        def __init__(self):
            super().__init__()
            self.layers = nn.BlockList([nn.Linear(3, 3) for _ in range(2)])
            self.layers.append(nn.Linear(3, 1))

        def forward(self, X):
            for layer in self.layers:
                X = layer(X)
            return X

    net = Stack()
    assert len(net.layers) == 3 and isinstance(net.layers[1:], nn.BlockList)
    assert [n for n, _ in net.named_parameters()][::2] == [
        "layers.0.weight", "layers.1.weight", "layers.2.weight"]
    assert net(db.rand(4, 3)).shape == (4, 1)
    assert nn.ModuleList is nn.BlockList
    with pytest.raises(TypeError, match="BlockList"):
        net.layers.append(3)


def test_block_dict_registers_its_blocks():
    d = nn.BlockDict({"enc": nn.Linear(3, 4), "dec": nn.Linear(4, 3)})
    d["act"] = nn.ReLU()
    assert list(d) == ["enc", "dec", "act"] and len(d) == 3
    assert "enc" in d and d["dec"].out_features == 3
    assert [n for n, _ in d.named_parameters()] == [
        "enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert list(d.keys()) == ["enc", "dec", "act"]
    assert [k for k, _ in d.items()] == list(d.keys())
    assert len(list(d.values())) == 3
    del d["act"]
    assert "act" not in d
    assert nn.ModuleDict is nn.BlockDict
    with pytest.raises(TypeError, match="BlockDict"):
        d["x"] = "relu"


# ---- lazy layers ------------------------------------------------------------
def test_lazy_weight_says_it_is_uninitialized():
    layer = nn.Dense(256)
    assert layer.weight.is_lazy and layer.in_units is None
    assert layer.weight.shape == (256, None)
    assert layer.bias.shape == (256,)
    assert "uninitialized" in repr(layer.weight)
    assert "(256, ?)" in repr(layer.weight)
    assert issubclass(nn.UninitializedParameterError, RuntimeError)
    w = layer.weight
    for use in (lambda: w + 1, lambda: w.sum(), lambda: w.item(),
                lambda: w.data.shape, lambda: w.tolist(),
                lambda: db.linear(db.ones(2, 3), w)):
        with pytest.raises(nn.UninitializedParameterError) as info:
            use()
        text = str(info.value)
        assert "(256, ?)" in text and "first forward" in text
        assert "in_units" in text


@pytest.mark.parametrize("read", ["numpy", "asarray", "tolist"])
def test_reading_a_lazy_parameters_values_raises(read):
    w = nn.Dense(256).weight
    with pytest.raises(nn.UninitializedParameterError, match="first forward"):
        if read == "numpy":
            w.numpy()
        elif read == "asarray":
            np.asarray(w)
        else:
            w.tolist()


def test_data_of_a_lazy_parameter_is_a_placeholder_that_explains_itself():
    # .data stays a plain slot (read on every op, so it must be cheap); for a
    # lazy parameter it holds a placeholder that says what it is and raises
    # on any use: shape, arithmetic, NumPy conversion.
    w = nn.Dense(256).weight
    assert "first forward pass" in repr(w.data)
    for use in (lambda d: d.shape, lambda d: d + 1, lambda d: np.asarray(d),
                lambda d: np.ones(3) * d, lambda d: d[0]):
        with pytest.raises(nn.UninitializedParameterError, match="first forward"):
            use(w.data)


def test_lazy_shape_is_inferred_on_first_forward():
    layer = nn.Dense(5)
    out = layer(db.rand(3, 7))
    assert out.shape == (3, 5)
    assert layer.weight.shape == (5, 7) and layer.bias.shape == (5,)
    assert layer.in_units == 7 and not layer.weight.is_lazy
    # The default: uniform in +-1/sqrt(in_units).
    bound = 1 / np.sqrt(7)
    assert np.abs(layer.weight.numpy()).max() <= bound
    assert np.abs(layer.weight.numpy()).std() > 0
    with pytest.raises(ValueError, match="expected input with 7 features"):
        layer(db.rand(3, 8))


def test_lazy_layer_follows_the_input_dtype():
    layer = nn.Dense(2)
    out = layer(db.rand(3, 4, dtype=db.float64))
    assert layer.weight.dtype == db.float64 and out.dtype == db.float64


@pytest.mark.parametrize("how", ["initialize", "normal_"])
def test_initializer_chosen_before_the_shape_is_kept(how):
    net = nn.Sequential(nn.Dense(64, activation="relu"), nn.Dense(3))
    if how == "initialize":
        net.initialize(init.Constant(0.5))
    else:
        init.normal_(net[0].weight, mean=3.0, std=0.01)
        init.constant_(net[1].weight, 0.5)
    assert net[0].weight.is_lazy
    net(db.rand(10, 20))
    w0 = net[0].weight.numpy()
    assert w0.shape == (64, 20)
    if how == "initialize":
        assert np.all(w0 == 0.5) and np.all(net[0].bias.numpy() == 0.5)
    else:
        assert abs(w0.mean() - 3.0) < 0.01 and 0.005 < w0.std() < 0.02
    assert np.all(net[1].weight.numpy() == 0.5)


def test_lazy_linear_becomes_linear():
    layer = nn.LazyLinear(4)
    assert "in_features=?" in repr(layer)
    assert layer(db.rand(2, 6)).shape == (2, 4)
    assert type(layer) is nn.Linear
    assert layer.in_features == 6 and layer.out_features == 4
    assert repr(layer) == "Linear(in_features=6, out_features=4, bias=True)"


def test_initialize_twice_warns_and_force_reinit_redraws():
    net = nn.Sequential(nn.Dense(4, in_units=3))
    net.initialize(init.Constant(1.0))
    with pytest.warns(UserWarning, match="force_reinit"):
        net.initialize(init.Constant(2.0))
    assert np.all(net[0].weight.numpy() == 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.initialize(init.Constant(2.0), force_reinit=True)
    assert np.all(net[0].weight.numpy() == 2.0)


def test_initialize_defaults_to_each_layers_own_rule():
    net = nn.Sequential(nn.Dense(300, in_units=400))
    net.initialize()
    w = net[0].weight.numpy()
    bound = 1 / np.sqrt(400)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


def test_parameter_needs_data_or_a_shape():
    with pytest.raises(ValueError, match="lazy"):
        nn.Parameter()
    p = nn.Parameter(db.ones(3))
    assert p.requires_grad and p.is_leaf and not p.is_lazy
    assert repr(p).startswith("Parameter containing:")
    frozen = nn.Parameter(db.ones(3), requires_grad=False)
    assert not frozen.requires_grad


# ---- casting ----------------------------------------------------------------
def test_to_dtype_casts_parameters_and_float_buffers():
    net = Buffered()
    net.register_buffer("count", db.tensor([3]))
    net.to(dtype=db.float64)
    assert all(p.dtype == db.float64 for p in net.parameters())
    assert net.kept.dtype == db.float64
    assert net.count.dtype == db.int64            # integers stay integers
    assert net(db.ones(1, 2, dtype=db.float64)).dtype == db.float64


def test_to_dtype_applies_to_lazy_parameters_later():
    lazy = nn.Sequential(nn.Dense(3)).to(dtype="float64")
    lazy(db.ones(2, 4))
    assert lazy[0].weight.dtype == db.float64


# ---- the layers -------------------------------------------------------------
def test_dense_arguments_are_checked():
    with pytest.raises(ValueError, match="units must be a positive int"):
        nn.Dense(0)
    with pytest.raises(ValueError, match="in_units"):
        nn.Dense(3, in_units=-1)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        nn.Dense(3, activation="swish")


@pytest.mark.parametrize("activation,ref", [
    ("relu", lambda a: np.maximum(a, 0)),
    ("sigmoid", lambda a: 1 / (1 + np.exp(-a))),
    ("tanh", np.tanh),
    (db.tanh, np.tanh),
    (None, lambda a: a),
])
def test_dense_activation(activation, ref):
    layer = nn.Dense(3, activation=activation, in_units=4)
    X = db.randn(5, 4)
    expected = ref(X.numpy() @ layer.weight.numpy().T + layer.bias.numpy())
    np.testing.assert_allclose(layer(X).numpy(), expected, rtol=1e-5,
                               atol=1e-6)


def test_dense_flattens_like_gluon_and_linear_does_not():
    d = nn.Dense(2)
    assert d(db.rand(4, 3, 5)).shape == (4, 2) and d.in_units == 15
    lin = nn.Linear(5, 2)
    assert lin(db.rand(4, 3, 5)).shape == (4, 3, 2)


def test_activation_and_shape_layers():
    X = db.randn(2, 3, 4)
    np.testing.assert_array_equal(nn.ReLU()(X).numpy(),
                                  np.maximum(X.numpy(), 0))
    np.testing.assert_allclose(nn.Sigmoid()(X).numpy(),
                               1 / (1 + np.exp(-X.numpy())), rtol=1e-6)
    np.testing.assert_allclose(nn.Tanh()(X).numpy(), np.tanh(X.numpy()),
                               rtol=1e-6)
    np.testing.assert_allclose(nn.Softmax(axis=1)(X).numpy().sum(axis=1), 1,
                               rtol=1e-6)
    assert nn.Identity()(X) is X
    assert nn.Flatten()(X).shape == (2, 12)
    assert nn.Flatten(start_dim=2)(X).shape == (2, 3, 4)
    assert nn.Flatten(start_dim=0)(X).shape == (24,)


def test_dropout_in_training_and_eval():
    drop = nn.Dropout(0.5)
    X = db.ones(200, 50)
    out = drop(X).numpy()
    kept = out != 0
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert 0.45 < kept.mean() < 0.55
    drop.eval()
    assert drop(X) is X
    assert nn.Dropout(0.0)(X) is X
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        nn.Dropout(1.0)
    # The gradient goes through the kept elements only, scaled the same.
    drop.train()
    x = db.ones(10, 10, requires_grad=True)
    y = drop(x)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())


def test_cross_entropy_loss_block():
    logits = db.randn(4, 3)
    labels = np.array([0, 1, 2, 1])
    assert nn.CrossEntropyLoss()(logits, labels).item() == \
        db.cross_entropy(logits, labels).item()


def test_mse_loss_block():
    pred, target = db.randn(4, 2), db.randn(4, 2)
    expected = np.mean((pred.numpy() - target.numpy()) ** 2)
    np.testing.assert_allclose(nn.MSELoss()(pred, target).item(), expected,
                               rtol=1e-6)


# ---- what "nn.Module is the same class" promises ------------------------------
def test_modules_and_named_modules_as_in_pytorch():
    net = Nest()
    assert list(net.modules()) == [net, net.net, net.net[0], net.net[1],
                                   net.net[2], net.out]
    assert [n for n, _ in net.named_modules()] == [
        "", "net", "net.0", "net.1", "net.2", "out"]
    assert [n for n, _ in net.named_modules(prefix="m")][:2] == ["m", "m.net"]
    shared = nn.Linear(2, 2)
    twice = nn.Sequential(shared, shared)
    assert len(list(twice.modules())) == 2
    assert [n for n, _ in twice.named_modules(remove_duplicate=False)] == [
        "", "0", "1"]


def test_zero_grad_sets_none_by_default_or_zeros():
    net = Nest()
    net(db.rand(3, 4)).sum().backward()
    net.zero_grad(set_to_none=False)
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype
        assert not np.any(p.grad.numpy()), name
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_assigning_a_non_block_to_a_childs_name_is_a_type_error():
    net = Nest()
    with pytest.raises(TypeError, match="'out'"):
        net.out = nn.Linear          # the class, not a layer: a typo
    with pytest.raises(TypeError, match="'net'"):
        net.net = [nn.Linear(4, 6)]
    assert isinstance(net.out, nn.Linear) and "net.0.weight" in \
        dict(net.named_parameters())


def test_deleting_a_missing_attribute_is_an_attribute_error():
    net = Nest()
    with pytest.raises(AttributeError, match="'missing'"):
        del net.missing
    del net.out                       # registered names can be deleted
    with pytest.raises(AttributeError, match="'out'"):
        del net.out


def test_registered_names_are_in_dir():
    names = dir(Nest())
    assert {"net", "out", "scale", "forward"} <= set(names)


def test_sequential_from_an_ordered_dict_names_its_children():
    hidden, out = nn.Linear(3, 4), nn.Linear(4, 2)
    net = nn.Sequential(OrderedDict([("hidden", hidden), ("act", nn.ReLU()),
                                     ("out", out)]))
    assert list(net._children) == ["hidden", "act", "out"]
    assert net.hidden is hidden and net[2] is out and len(net) == 3
    assert [n for n, _ in net.named_parameters()] == [
        "hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    X = db.rand(2, 3)
    np.testing.assert_array_equal(net(X).numpy(),
                                  out(net[1](hidden(X))).numpy())
    with pytest.raises(ValueError, match="without '.'"):
        nn.Sequential({"a.b": nn.ReLU()})


def test_keras_sequential_takes_a_list():
    layers = [nn.Dense(4, activation="relu"), nn.Dense(2)]
    net = nn.Sequential(layers)
    assert list(net) == layers and list(net._children) == ["0", "1"]


def test_sequential_slices_keep_the_childrens_names():
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    tail = nn.Sequential(*layers)[1:]
    assert list(tail._children) == ["1", "2"]
    assert [n for n, _ in tail.named_parameters()] == ["2.weight", "2.bias"]
    tail.append(nn.ReLU())            # never overwrites the child '2'
    assert list(tail) == layers[1:] + [tail[2]] and len(tail) == 3
    named = nn.Sequential(OrderedDict(a=layers[0], b=layers[1]))[::-1]
    assert list(named._children) == ["b", "a"]


def test_sequential_del_insert_append_extend_and_pop():
    a, b, c, d = (nn.Linear(2, 2) for _ in range(4))
    net = nn.Sequential(a, b, c)
    del net[1]
    assert list(net) == [a, c] and list(net._children) == ["0", "1"]
    assert net.insert(1, b) is net
    assert list(net) == [a, b, c] and list(net._children) == ["0", "1", "2"]
    net.insert(-1, d)                 # as list.insert: before the last
    assert list(net) == [a, b, d, c]
    assert net.pop(2) is d and list(net) == [a, b, c]
    assert net.append(d) is net and list(net._children)[-1] == "3"
    net.extend([nn.ReLU()])
    assert len(net) == 5
    del net[-2:]
    assert list(net) == [a, b, c]
    assert [n for n, _ in net.named_parameters()][::2] == [
        "0.weight", "1.weight", "2.weight"]
    with pytest.raises(IndexError, match="out of range for 3 blocks"):
        del net[3]
    with pytest.raises(TypeError, match="expected a Block"):
        net.insert(0, "relu")


def test_deleting_from_a_named_sequential_keeps_the_names():
    net = nn.Sequential(OrderedDict(hidden=nn.Linear(2, 2), act=nn.ReLU(),
                                    out=nn.Linear(2, 1)))
    del net[1]
    assert list(net._children) == ["hidden", "out"]


def test_block_list_insert_extend_add_and_del():
    a, b, c = nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)
    lst = nn.BlockList([a])
    lst += [c]
    assert list(lst) == [a, c]
    lst.insert(1, b)
    assert list(lst) == [a, b, c] and list(lst._children) == ["0", "1", "2"]
    assert lst.extend([nn.Tanh()]) is lst and len(lst) == 4
    both = lst + nn.BlockList([nn.Sigmoid()])
    assert isinstance(both, nn.BlockList) and len(both) == 5 and len(lst) == 4
    del lst[3]
    assert list(lst) == [a, b, c]
    assert lst.pop(0) is a and list(lst._children) == ["0", "1"]
    tail = nn.BlockList([a, b, c])[1:]
    assert list(tail._children) == ["0", "1"] and list(tail) == [b, c]
    with pytest.raises(TypeError, match="BlockList"):
        lst += [3]


def test_block_dict_update_pop_keys_items_values():
    enc, dec, act = nn.Linear(3, 4), nn.Linear(4, 3), nn.ReLU()
    d = nn.BlockDict()
    d.update(OrderedDict(enc=enc, dec=dec))
    d.update([("act", act)])
    assert list(d.keys()) == ["enc", "dec", "act"]
    assert list(d.values()) == [enc, dec, act]
    assert list(d.items()) == [("enc", enc), ("dec", dec), ("act", act)]
    assert d.pop("dec") is dec and "dec" not in d
    assert [n for n, _ in d.named_parameters()] == ["enc.weight", "enc.bias"]
    d.update({"enc": dec})            # replaces, in place
    assert d["enc"] is dec and list(d) == ["enc", "act"]
    with pytest.raises(TypeError, match="pairs"):
        d.update([nn.ReLU()])
    with pytest.raises(TypeError, match="BlockDict"):
        d.update({"x": "relu"})
    d.clear()
    assert len(d) == 0 and d.parameters() == []


# ---- what a layer accepts -----------------------------------------------------
class OtherLibraryTensor:
    """Stands in for another library's tensor (torch, TensorFlow, JAX)."""

    __module__ = "torch"

    def __init__(self, *shape):
        self.shape = shape


BUILT_IN_LAYERS = {
    "Dense": lambda: nn.Dense(3),
    "Linear": lambda: nn.Linear(4, 3),
    "LazyLinear": lambda: nn.LazyLinear(3),
    "ReLU": nn.ReLU, "Sigmoid": nn.Sigmoid, "Tanh": nn.Tanh,
    "Softmax": nn.Softmax, "Identity": nn.Identity, "Flatten": nn.Flatten,
    "Dropout": nn.Dropout,
    "Sequential": lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU()),
}


@pytest.mark.parametrize("given,shown", [
    (np.ones((2, 4), np.float32), "numpy.ndarray"),
    ([[1.0, 2.0, 3.0, 4.0]], "list"),
    (OtherLibraryTensor(2, 4), "torch.OtherLibraryTensor"),
])
@pytest.mark.parametrize("layer", list(BUILT_IN_LAYERS))
def test_a_non_tensor_input_gets_told_to_wrap_it(layer, given, shown):
    block = BUILT_IN_LAYERS[layer]()
    with pytest.raises(TypeError) as info:
        block(given)
    text = str(info.value)
    assert "db.tensor(" in text and shown in text


@pytest.mark.parametrize("loss", [nn.CrossEntropyLoss, nn.MSELoss])
def test_a_loss_given_a_numpy_prediction_says_to_wrap_it(loss):
    with pytest.raises(TypeError, match=r"numpy\.ndarray.*db\.tensor\("):
        loss()(np.ones((2, 3)), np.zeros(2, np.int64))


@pytest.mark.parametrize("make", [lambda: nn.Linear(4, 3),
                                  lambda: nn.Dense(3),
                                  lambda: nn.LazyLinear(3)])
@pytest.mark.parametrize("dtype", [db.int64, db.int32, db.bool_])
def test_an_integer_input_says_to_convert_it(make, dtype):
    layer = make()
    X = db.ones(2, 4, dtype=dtype)
    with pytest.raises(TypeError, match=r"X\.astype\(db\.float32\)") as info:
        layer(X)
    assert str(np.dtype(dtype)) in str(info.value)
    assert layer(X.astype(db.float32)).shape == (2, 3)


def test_a_0d_input_is_refused_with_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(\.\.\., in_features\)"):
        nn.Linear(1, 2)(db.tensor(3.0))


# ---- Linear and Dense(flatten=False) on (*, in) and 1-D inputs ---------------
LAYER_KINDS = {
    "Linear": lambda n_in, n_out: nn.Linear(n_in, n_out),
    "LazyLinear": lambda n_in, n_out: nn.LazyLinear(n_out),
    "Dense(flatten=False)": lambda n_in, n_out: nn.Dense(n_out, flatten=False),
}


@given(lead=st.lists(st.integers(1, 3), max_size=3),
       n_in=st.integers(1, 4), n_out=st.integers(1, 4),
       kind=st.sampled_from(sorted(LAYER_KINDS)), seed=st.integers(0, 99))
def test_linear_layers_act_on_the_last_axis(lead, n_in, n_out, kind, seed):
    db.manual_seed(seed)
    layer = LAYER_KINDS[kind](n_in, n_out).to(dtype=db.float64)
    X = db.randn(*lead, n_in, dtype=db.float64, requires_grad=True)
    out = layer(X)
    assert out.shape == (*lead, n_out)
    W, b = layer.weight.numpy(), layer.bias.numpy()
    assert W.shape == (n_out, n_in)            # in inferred from the last axis
    x = X.numpy()
    np.testing.assert_allclose(out.numpy(), x @ W.T + b, rtol=1e-12,
                               atol=1e-12)
    C = np.random.default_rng(seed).normal(size=out.shape)
    (out * db.tensor(C, dtype=db.float64)).sum().backward()
    c2, x2 = C.reshape(-1, n_out), x.reshape(-1, n_in)
    assert layer.weight.grad.shape == W.shape
    assert layer.bias.grad.shape == b.shape
    assert X.grad.shape == X.shape
    np.testing.assert_allclose(layer.weight.grad.numpy(), c2.T @ x2,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.numpy(), c2.sum(0),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(X.grad.numpy(), C @ W, rtol=1e-10, atol=1e-12)


def test_dense_keeps_gluons_flattening():
    layer = nn.Dense(2)
    X = db.rand(4, 3, 5)
    out = layer(X)
    assert out.shape == (4, 2) and layer.weight.shape == (2, 15)
    ref = X.numpy().reshape(4, 15) @ layer.weight.numpy().T + \
        layer.bias.numpy()
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: nn.LazyLinear(4),
                                  lambda: nn.Dense(4, flatten=False)])
@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5), (2, 1, 3, 5)])
def test_lazy_layers_infer_in_from_the_last_axis(make, shape):
    layer = make()
    out = layer(db.rand(*shape))
    assert layer.weight.shape == (4, 5)
    assert out.shape == shape[:-1] + (4,)


# ---- display in a notebook ----------------------------------------------------
def test_a_block_shows_its_tree_as_escaped_html():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    net.add_module("f", nn.Identity())
    html = net._repr_html_()
    assert html.startswith("<div") and html.endswith("</div>")
    assert "Linear(in_features=2, out_features=3" in html
    class Odd(nn.Block):
        def extra_repr(self):
            return "<lambda> & co"
    assert "&lt;lambda&gt; &amp; co" in Odd()._repr_html_()


# ---- the registry guards itself -------------------------------------------------
def registry(net):
    """What the registries of every block hold, by identity."""
    return [(name, {k: id(v) for k, v in block._children.items()},
             {k: id(v) for k, v in block._params.items()},
             {k: id(v) for k, v in block._buffers.items()}, block.training)
            for name, block in net.named_modules(remove_duplicate=False)]


@pytest.mark.parametrize("name, error", [
    ("", ValueError), ("a.b", ValueError), (3, TypeError), (None, TypeError),
    ("training", ValueError), ("forward", ValueError), ("_params", ValueError),
    ("_children", ValueError), ("_buffers", ValueError),
    ("parameters", ValueError), ("state_dict", ValueError)])
@pytest.mark.parametrize("how", ["add_module", "register_buffer",
                                 "register_parameter"])
def test_a_name_that_cannot_be_registered_is_refused(name, error, how):
    net = nn.Sequential(nn.Linear(2, 2))
    before = registry(net)
    value = {"add_module": nn.Dropout(), "register_buffer": db.zeros(2),
             "register_parameter": nn.Parameter(db.zeros(2))}[how]
    with pytest.raises(error, match="name"):
        getattr(net, how)(name, value)
    assert registry(net) == before
    assert net.training is True and len(net.parameters()) == 2


@pytest.mark.parametrize("name", ["a.b", "", "training", "forward"])
def test_setattr_refuses_what_add_module_refuses(name):
    net = nn.Sequential(nn.Linear(2, 2))
    before = registry(net)
    with pytest.raises(ValueError, match="name"):
        setattr(net, name, nn.Linear(2, 2))
    assert registry(net) == before


@pytest.mark.parametrize("name", ["_children", "_params", "_buffers",
                                  "_modules", "_non_persistent"])
def test_a_registry_cannot_be_overwritten(name):
    class Net(nn.Block):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(2, 2)
            setattr(self, name, {})

    with pytest.raises(AttributeError, match=f"'{name}'.*keeps itself"):
        Net()


def test_a_block_cannot_contain_itself():
    s = nn.Sequential(nn.ReLU())
    with pytest.raises(ValueError, match="itself"):
        s.append(s)
    a, b = nn.Sequential(), nn.BlockList()
    a.add(b)
    before = registry(a)
    with pytest.raises(ValueError, match="already inside it"):
        b.append(a)
    with pytest.raises(ValueError, match="already inside it"):
        b.add_module("x", a)
    with pytest.raises(ValueError, match="already inside it"):
        b.y = a
    assert registry(a) == before
    assert "Sequential" in repr(a)           # no RecursionError
    shared = nn.Linear(2, 2)                 # sharing is not a cycle
    nn.Sequential(shared, shared)


def test_a_parameter_of_another_shape_or_dtype_is_refused():
    lin = nn.Linear(4, 3)
    old = lin.weight
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(3, 5\)"):
        lin.weight = nn.Parameter(db.rand(3, 5))
    with pytest.raises(ValueError, match="float64"):
        lin.weight = nn.Parameter(db.rand(3, 4, dtype=db.float64))
    assert lin.weight is old
    lin.weight = nn.Parameter(db.rand(3, 4))      # the same shape: fine
    assert lin.weight is not old
    lazy = nn.Dense(3)                            # lazy: any shape
    lazy.weight = nn.Parameter(db.rand(3, 7))
    assert lazy(db.rand(2, 7)).shape == (2, 3)


@pytest.mark.parametrize("dtype", [db.int64, db.int32, db.bool_, "int64"])
def test_to_takes_float_dtypes_only_and_changes_nothing(dtype):
    net = nn.Sequential(nn.Linear(2, 3))
    before = net[0].weight.numpy().copy()
    with pytest.raises(TypeError, match="floating-point dtype"):
        net.to(dtype=dtype)
    assert net[0].weight.dtype == db.float32
    np.testing.assert_array_equal(net[0].weight.numpy(), before)
    assert net.to(db.float64) is net and net[0].weight.dtype == db.float64


def test_to_a_bad_device_changes_nothing():
    net = nn.Sequential(nn.Linear(2, 3))
    net.register_buffer("b", db.zeros(1))
    weight = net[0].weight.data
    with pytest.raises(ValueError, match="device"):
        net.to("tpu:0")
    assert net[0].weight.data is weight


def test_a_block_that_skipped_super_init_gets_the_usual_message():
    class NoInit(nn.Block):
        def __init__(self):
            self.size = 3

    bad = NoInit()
    for call in (lambda: db.diagnose(bad), lambda: bad.parameters(),
                 lambda: bad.state_dict(), lambda: nn.Sequential(bad)):
        with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
            call()


@pytest.mark.parametrize("given, spelled", [(init.Normal, "init.Normal()"),
                                            (init.Xavier, "init.Xavier()")])
def test_initialize_with_a_class_says_to_make_an_instance(given, spelled):
    net = nn.Sequential(nn.Dense(4), nn.Linear(4, 2))
    before = net[1].weight.numpy().copy()
    with pytest.raises(TypeError, match=f"got the class .*write {re.escape(spelled)}"):
        net.initialize(given)
    assert net[0].weight.is_lazy and net[0].weight._init is None
    assert not net[1].weight._user_initialized
    np.testing.assert_array_equal(net[1].weight.numpy(), before)


def test_initialize_that_fails_half_way_restores_every_parameter():
    class Picky(init.Initializer):
        def __init__(self):
            self.calls = 0

        def sample(self, shape, rng):
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("no more")
            return np.full(shape, 7.0)

    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    before = [p.numpy().copy() for p in net.parameters()]
    with pytest.raises(RuntimeError, match="no more"):
        net.initialize(Picky())
    for p, old in zip(net.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), old)
        assert not p._user_initialized


# ---- containers: all or nothing ------------------------------------------------
def container_calls():
    """(description, container, call that must fail): each call mixes good
    blocks with one bad item."""
    def seq():
        return nn.Sequential(nn.Linear(2, 2))

    def lst():
        return nn.BlockList([nn.Linear(2, 2)])

    def dct():
        return nn.BlockDict({"a": nn.Linear(2, 2)})

    def iadd(c, items):
        c += items

    return [
        ("add with a name", seq, lambda c: c.add(nn.ReLU(), "relu")),
        ("add a class", seq, lambda c: c.add(nn.Tanh(), nn.ReLU)),
        ("extend", seq, lambda c: c.extend([nn.ReLU(), 3])),
        ("append self", seq, lambda c: c.append(c)),
        ("insert a class", seq, lambda c: c.insert(0, nn.ReLU)),
        ("list extend", lst, lambda c: c.extend([nn.ReLU(), None])),
        ("list +=", lst, lambda c: iadd(c, [nn.ReLU(), "x"])),
        ("list +=  self", lst, lambda c: iadd(c, [nn.ReLU(), c])),
        ("dict update", dct, lambda c: c.update({"b": nn.ReLU(), "c": 1})),
        ("dict update pairs", dct,
         lambda c: c.update([("b", nn.ReLU()), ("c.d", nn.ReLU())])),
        ("dict update bad pair", dct,
         lambda c: c.update([("b", nn.ReLU()), ("c",)])),
        ("dict update a block", dct, lambda c: c.update(nn.ReLU())),
    ]


@pytest.mark.parametrize("what, make, call", container_calls(),
                         ids=[c[0] for c in container_calls()])
def test_a_container_call_with_one_bad_item_adds_nothing(what, make, call):
    c = make()
    before = registry(c)
    with pytest.raises((TypeError, ValueError)):
        call(c)
    assert registry(c) == before


def test_a_class_given_for_a_block_says_how_to_make_one():
    with pytest.raises(TypeError, match=re.escape("the class ReLU, not a block; "
                                                  "write nn.ReLU()")):
        nn.Sequential(nn.Linear(2, 2), nn.ReLU)
    with pytest.raises(TypeError, match=r"got the class MLP; write MLP\(\)"):
        class MLP(nn.Block):
            pass
        db.diagnose(MLP)


def test_block_dict_updates_from_a_block_dict_a_mapping_or_pairs():
    a, b, c = nn.ReLU(), nn.Tanh(), nn.Sigmoid()
    d = nn.BlockDict({"a": a})
    d.update(nn.BlockDict({"b": b}))
    d.update(OrderedDict(c=c))
    d.update([("a", b)])
    assert list(d.items()) == [("a", b), ("b", b), ("c", c)]
    assert list(nn.ModuleDict(modules={"x": a}).keys()) == ["x"]
    assert list(nn.ModuleList(modules=[a, b])) == [a, b]


def test_a_forward_that_forgot_return_is_named():
    class Hidden(nn.Block):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            self.lin(x)                      # no return

    net = nn.Sequential(nn.Linear(3, 3), Hidden(), nn.Linear(3, 2))
    with pytest.raises(TypeError, match=r"child \(1\), a Hidden, returned "
                                        r"None.*Hidden.forward.*return"):
        net(db.rand(2, 3))

    class Outer(nn.Block):
        def __init__(self):
            super().__init__()
            self.hidden, self.out = Hidden(), nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.hidden(x))

    with pytest.raises(TypeError, match="got None.*Hidden.forward.*return"):
        Outer()(db.rand(2, 3))


# ---- layers ------------------------------------------------------------------------
def test_a_lazy_layer_given_no_features_stays_lazy():
    d = nn.Dense(3)
    with pytest.raises(ValueError, match=r"shape \(2, 0\).*0 features"):
        d(db.zeros(2, 0))
    assert d.weight.is_lazy and d.bias.is_lazy
    assert d(db.ones(2, 4)).shape == (2, 3)
    assert d.weight.shape == (3, 4)


def test_a_lazy_layer_whose_initializer_fails_stays_lazy():
    class Broken(init.Initializer):
        def sample(self, shape, rng):
            if len(shape) == 1:
                raise RuntimeError("bias fails")
            return np.zeros(shape)

    d = nn.Dense(3)
    d.initialize(Broken())
    with pytest.raises(RuntimeError, match="bias fails"):
        d(db.ones(2, 4))
    assert d.weight.is_lazy and d.bias.is_lazy
    assert d.weight._init is not None          # still waits for its shape


@pytest.mark.parametrize("make", [lambda: nn.Linear(np.int64(4), np.int32(2)),
                                  lambda: nn.Dense(np.int64(2),
                                                   in_units=np.int16(4)),
                                  lambda: nn.LazyLinear(np.uint8(2))])
def test_numpy_integers_are_sizes(make):
    layer = make()
    assert layer(db.ones(5, 4)).shape == (5, 2)
    assert type(layer.units) is int


@pytest.mark.parametrize("bad, error", [(2.5, ValueError), (0, ValueError),
                                        (-1, ValueError), ("4", TypeError),
                                        (True, TypeError),
                                        (nn.Linear, TypeError)])
def test_a_size_that_is_not_a_positive_integer_is_named(bad, error):
    with pytest.raises(error, match="in_features must be a positive integer"):
        nn.Linear(bad, 2)


def test_pytorch_keyword_names_of_the_layers():
    x = db.randn(2, 3, 4, 5)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).numpy(),
                               db.softmax(x, axis=1).numpy())
    np.testing.assert_allclose(nn.LogSoftmax(dim=-1)(x).numpy(),
                               db.log_softmax(x, axis=-1).numpy(), rtol=1e-6)
    assert nn.Flatten(start_dim=1, end_dim=2)(x).shape == (2, 12, 5)
    assert nn.Flatten(0, -2)(x).shape == (24, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    lin = nn.Linear(in_features=3, out_features=2, bias=False,
                    dtype=db.float64)
    assert lin.weight.dtype == db.float64 and lin.bias is None
    assert nn.LazyLinear(out_features=2, dtype=db.float64)(
        db.ones(1, 3, dtype=db.float64)).dtype == db.float64
    assert nn.Dropout(p=0.2, inplace=False).p == 0.2
    assert nn.ReLU(inplace=False)(db.tensor([-1.0])).item() == 0.0
    assert nn.Identity(54, unused="x")(x) is x
    with pytest.raises(ValueError, match=r"ReLU\(inplace=True\) is not supported"):
        nn.ReLU(inplace=True)


def test_zero_grad_without_none_zeroes_the_arrays_in_place():
    net = nn.Sequential(nn.Linear(2, 3))
    net(db.ones(1, 2)).sum().backward()
    held = net[0].weight.grad
    net.zero_grad(set_to_none=False)
    assert net[0].weight.grad is held
    np.testing.assert_array_equal(held.numpy(), np.zeros((3, 2)))
    opt = optim.SGD(net.parameters(), lr=0.1)
    held.data[...] = 1.0
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(held.numpy(), np.zeros((3, 2)))
    opt.zero_grad()
    assert net[0].weight.grad is None


def test_pytorch_keyword_names_of_the_block_methods():
    net = nn.Sequential()
    lin = nn.Linear(2, 2)
    net.add_module(name="a", module=lin)
    net.register_module("b", module=nn.ReLU())
    net.register_buffer(name="c", tensor=db.ones(2), persistent=True)
    net.register_parameter(name="d", param=nn.Parameter(db.zeros(1)))
    assert [n for n, _ in net.named_children()] == ["a", "b"]
    state = net.state_dict(prefix="enc.")
    assert list(state) == ["enc.d", "enc.c", "enc.a.weight", "enc.a.bias"]
    dest = {"x": 1}
    assert net.state_dict(dest) is dest and list(dest)[0] == "x"
    assert net.load_state_dict(state_dict=net.state_dict(), strict=True) == \
        ([], [])
    assert net.to(device="cpu", dtype=db.float64, non_blocking=True) is net
    shared = db.zeros(1)
    net.b.register_buffer("s", shared)
    net.a.register_buffer("s", shared)
    assert len(list(net.named_buffers(remove_duplicate=False))) == \
        len(list(net.named_buffers())) + 1


@pytest.mark.parametrize("batch", [1, 4])
def test_loss_reductions_are_pytorchs(batch):
    logits = db.randn(batch, 5, dtype=db.float64)
    labels = list(np.arange(batch) % 5)
    each = -np.log(db.softmax(logits, axis=1).numpy()[np.arange(batch), labels])
    none = nn.CrossEntropyLoss(reduction="none")(logits, labels)
    np.testing.assert_allclose(none.numpy(), each, rtol=1e-10)
    assert nn.CrossEntropyLoss(reduction="sum")(logits, labels).item() == \
        pytest.approx(each.sum())
    assert nn.CrossEntropyLoss()(logits, labels).item() == \
        pytest.approx(each.mean())
    x = db.randn(batch, 5, dtype=db.float64, requires_grad=True)
    assert db.grad_check(lambda x: (nn.CrossEntropyLoss(reduction="none")(
        x, labels) * db.arange(1, batch + 1, dtype=db.float64)).sum(), x)
    pred, target = db.randn(batch, 3), db.randn(batch, 3)
    sq = (pred.numpy() - target.numpy()) ** 2
    np.testing.assert_allclose(nn.MSELoss(reduction="none")(pred, target)
                               .numpy(), sq, rtol=1e-6)
    assert nn.MSELoss(reduction="sum")(pred, target).item() == \
        pytest.approx(sq.sum(), rel=1e-5)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing=0.1 is not supported"):
        nn.CrossEntropyLoss(label_smoothing=0.1)


@pytest.mark.parametrize("name", ["_children", "_params", "_buffers",
                                  "training"])
def test_a_registry_cannot_be_deleted(name):
    net = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(AttributeError, match=f"cannot delete '{name}'"):
        delattr(net, name)
    assert len(net.parameters()) == 2 and net.training


@pytest.mark.parametrize("fn", [nn.ReLU, init.Normal, 3])
def test_apply_wants_a_function(fn):
    with pytest.raises(TypeError, match="apply.*expected a function"):
        nn.Sequential(nn.Linear(2, 2)).apply(fn)


def test_functional_takes_pytorchs_argument_names():
    from d2lblocks.nn import functional as F
    x = db.randn(3, 4, dtype=db.float64)
    w, b = db.randn(2, 4, dtype=db.float64), db.randn(2, dtype=db.float64)
    np.testing.assert_allclose(F.linear(input=x, weight=w, bias=b).numpy(),
                               x.numpy() @ w.numpy().T + b.numpy())
    assert np.all(F.relu(input=x, inplace=False).numpy() >= 0)
    np.testing.assert_allclose(F.softmax(x, dim=0).numpy().sum(axis=0),
                               np.ones(4))
    assert F.log_softmax(input=x, dim=1, dtype=db.float32).dtype == db.float32
    labels = [0, 3, 1]
    each = F.cross_entropy(x, labels, reduction="none")
    assert each.shape == (3,)
    assert F.cross_entropy(input=x, target=db.tensor(labels),
                           reduction="sum").item() == pytest.approx(
        each.numpy().sum())
    assert F.mse_loss(input=x, target=x * 0, reduction="sum").item() == \
        pytest.approx((x.numpy() ** 2).sum())
    assert F.dropout(x, p=0.5, training=False) is x
    db.manual_seed(1)
    dropped = F.dropout(input=x, p=0.5, training=True).numpy()
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], 2 * x.numpy()[kept])
    with pytest.raises(ValueError, match="dropout: p must be in"):
        F.dropout(x, p=1.5)
    with pytest.raises(ValueError, match=r"relu\(inplace=True\)"):
        F.relu(x, inplace=True)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="compares with PyTorch, which is not installed")
def test_layers_and_functions_agree_with_pytorchs():
    torch = pytest.importorskip("torch")
    tnn, TF = torch.nn, torch.nn.functional
    from d2lblocks.nn import functional as F
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    tx = torch.tensor(x)
    dx = db.tensor(x, dtype=db.float64)
    for start, end in [(1, -1), (0, 2), (-3, -2), (2, 2)]:
        assert nn.Flatten(start, end)(dx).shape == \
            tuple(tnn.Flatten(start, end)(tx).shape)
    for dim in (0, 1, -1):
        np.testing.assert_allclose(nn.Softmax(dim=dim)(dx).numpy(),
                                   tnn.Softmax(dim=dim)(tx).numpy(),
                                   rtol=1e-12)
        np.testing.assert_allclose(nn.LogSoftmax(dim=dim)(dx).numpy(),
                                   tnn.LogSoftmax(dim=dim)(tx).numpy(),
                                   rtol=1e-12)
    logits, labels = x[0, 0], [1, 0, 3, 2]
    for reduction in ("mean", "sum", "none"):
        np.testing.assert_allclose(
            F.cross_entropy(db.tensor(logits, dtype=db.float64), labels,
                            reduction=reduction).numpy(),
            TF.cross_entropy(torch.tensor(logits), torch.tensor(labels),
                             reduction=reduction).numpy(), rtol=1e-12)
        np.testing.assert_allclose(
            nn.MSELoss(reduction=reduction)(dx, dx * 0.5).numpy(),
            tnn.MSELoss(reduction=reduction)(tx, tx * 0.5).numpy(),
            rtol=1e-12)
    for name, param in [("relu", None), ("tanh", None), ("leaky_relu", 0.2),
                        ("sigmoid", None), ("linear", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(
            tnn.init.calculate_gain(name, param))
