"""A student cannot break the block system by naming an attribute.

``self.blocks = list(blocks)`` (the first exercise) or Keras's
``self.modules = []`` hides a method of ``Block`` on that instance. The
block system's own traversals (``to``, ``train``, ``state_dict``, ``save``,
...) never look those methods up on the instance, so they keep working; the
blocks in the list stay unregistered, which is the lesson, not a crash.

The names come from the classes themselves, so a method added later is
covered without editing this file.
"""

import inspect

import numpy as np
import pytest

import d2lblocks as db
from d2lblocks import init, nn


def public_names(cls):
    return sorted(n for n in dir(cls) if not n.startswith("_"))


def is_property(cls, name):
    return isinstance(inspect.getattr_static(cls, name), property)


BLOCK_NAMES = public_names(nn.Block)
METHOD_NAMES = [n for n in BLOCK_NAMES if not is_property(nn.Block, n)]


def test_the_names_come_from_the_class():
    for name in ("blocks", "children", "modules", "parameters", "to", "train",
                 "state_dict", "load_state_dict", "save", "named_children",
                 "apply", "initialize", "zero_grad", "name"):
        assert name in BLOCK_NAMES


def shadowing_net(name, value):
    """A network with a registered ``head`` whose ``name`` attribute is
    ``value`` (assigned the ordinary way, in ``__init__``)."""

    class Shadowing(nn.Block):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 3)
            setattr(self, name, value)

        def forward(self, X):
            return self.head(X)

    return Shadowing()


def call(net, method, *args, **kwargs):
    """``net.method(...)``; through the class when the instance hides it
    (then only the user's own call is affected, as with any attribute)."""
    if method in net.__dict__:
        return getattr(nn.Block, method)(net, *args, **kwargs)
    return getattr(net, method)(*args, **kwargs)


VALUES = {
    "a list of blocks": lambda: [nn.Linear(3, 3), nn.ReLU()],
    "a string": lambda: "shadow",
    "None": lambda: None,
}


@pytest.mark.parametrize("kind", list(VALUES))
@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_an_attribute_named_like_a_method_breaks_no_traversal(name, kind,
                                                              tmp_path):
    value = VALUES[kind]()
    net = shadowing_net(name, value)
    assert getattr(net, name) is value or is_property(nn.Block, name)

    assert call(net, "to", dtype=db.float64) is net
    assert net.head.weight.dtype == db.float64
    if kind == "a list of blocks":          # not registered: not converted
        assert value[0].weight.dtype == db.float32
    assert call(net, "train", False) is net and not net.head.training
    assert call(net, "eval") is net
    assert call(net, "train") is net and net.head.training

    state = call(net, "state_dict")
    assert list(state) == ["head.weight", "head.bias"]
    missing, unexpected = call(net, "load_state_dict", state)
    assert missing == [] and unexpected == []
    path = tmp_path / "net.npz"
    call(net, "save", path)
    other = shadowing_net(name, VALUES[kind]())
    call(other, "load", path)
    np.testing.assert_array_equal(other.head.weight.numpy(),
                                  state["head.weight"])

    assert len(call(net, "parameters")) == 2
    assert [n for n, _ in call(net, "named_parameters")] == ["head.weight",
                                                            "head.bias"]
    assert list(call(net, "modules")) == [net, net.head]
    assert list(call(net, "blocks")) == [net, net.head]
    assert [n for n, _ in call(net, "named_modules")] == ["", "head"]
    assert list(call(net, "children")) == [net.head]
    seen = []
    call(net, "apply", seen.append)
    assert seen == [net.head, net]
    call(net, "initialize", init.Constant(0.25), force_reinit=True)
    assert np.all(net.head.weight.numpy() == 0.25)
    net.head.weight.grad = db.ones(3, 4, dtype=db.float64)
    call(net, "zero_grad")
    assert net.head.weight.grad is None
    assert "(head): Linear(in_features=4, out_features=3" in repr(net)

    report = db.diagnose(net)
    listed = [p for p, _ in report.orphans]
    if kind == "a list of blocks":
        assert len(listed) == 2 and listed[0].endswith("[0]")
    else:
        assert listed == []


# ``forward`` is what calling a block runs: a child under that name would
# replace it, so registering one there is refused (see the test below).
@pytest.mark.parametrize("name", [n for n in METHOD_NAMES if n != "forward"])
def test_a_block_list_under_a_methods_name_is_registered_and_reachable(name):
    layers = nn.BlockList([nn.Linear(3, 3), nn.ReLU()])
    net = shadowing_net(name, layers)
    assert getattr(net, name) is layers     # what was assigned, not the method
    assert f"{name}.0.weight" in dict(nn.Block.named_parameters(net))
    nn.Block.to(net, dtype=db.float64)
    assert layers[0].weight.dtype == db.float64
    assert db.diagnose(net).ok
    setattr(net, name, None)                # unregisters it again
    assert getattr(net, name) is None
    assert f"{name}.0.weight" not in dict(nn.Block.named_parameters(net))
    delattr(net, name)
    assert name not in net.__dict__ and name not in net._children


@pytest.mark.parametrize("name", [n for n in BLOCK_NAMES
                                  if is_property(nn.Block, n)])
def test_a_block_under_a_propertys_name_is_refused(name):
    with pytest.raises(TypeError, match=f"'{name}'.*property"):
        shadowing_net(name, nn.Linear(2, 2))


def test_the_seeds_list_exercise_runs_and_only_misses_registration():
    class ListSequential(nn.Block):
        def __init__(self, *blocks):
            super().__init__()
            self.blocks = list(blocks)

        def forward(self, X):
            for block in self.blocks:
                X = block(X)
            return X

    list_net = ListSequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    assert list_net(db.randn(2, 4)).shape == (2, 3)
    assert list_net.to(dtype=db.float64) is list_net
    assert list_net.train() is list_net and list_net.eval() is list_net
    assert list_net.state_dict() == {}
    assert list_net.load_state_dict({}) == ([], [])
    assert list(list_net.parameters()) == []


@pytest.mark.parametrize("cls", [nn.Sequential, nn.BlockList, nn.BlockDict])
def test_containers_survive_their_own_names_as_attributes(cls):
    for name in public_names(cls):
        if is_property(cls, name):
            continue

        class Sub(cls):
            def __init__(self, *args):
                super().__init__(*args)
                setattr(self, name, ["shadow"])

        items = {"a": nn.Linear(2, 2)} if cls is nn.BlockDict else \
            [nn.Linear(2, 2)]
        net = Sub(items)
        assert len(net) == 1
        assert [n for n, _ in nn.Block.named_parameters(net)][0].endswith(
            "weight"), name
        nn.Block.to(net, dtype=db.float64)
        assert nn.Block.state_dict(net)
        assert len(list(iter(net))) == 1


@pytest.mark.parametrize("name", ["forward", "training"])
def test_a_block_under_a_name_block_runs_on_is_refused(name):
    with pytest.raises(ValueError, match=f"'{name}'.*Block uses that name"):
        shadowing_net(name, nn.Linear(2, 2))
    net = shadowing_net("x", None)
    net.training = False                  # a plain value stays allowed
    assert not net.training
