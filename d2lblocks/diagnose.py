"""``diagnose(net)``: explain what a network's registration misses.

A block only knows what was registered with it. Python lists, tuples, dicts
and sets are not looked into, so blocks inside them still run in ``forward``
but the rest of the block system passes them by (``LIST_EFFECTS`` says what
each part does). That behaviour is kept on purpose (it is PyTorch's); this
module makes it visible.
"""

import warnings
import weakref

import numpy as np

from .nn.block import Block, _spelled
from .nn.tree import _TABLES, _no_init_text, _shared_parameters
from .nn.parameter import Parameter
from .tensor import Tensor

__all__ = ["diagnose", "Diagnosis", "unregistered_blocks", "set_warnings",
           "LIST_EFFECTS"]

_CONTAINERS = (list, tuple, dict, set, frozenset)
_warned = weakref.WeakSet()
_settings = {"warn": True}

# What each part of the block system does with a block kept in a plain
# container. Each line is a claim that tests/test_diagnose.py checks.
LIST_EFFECTS = (
    ("forward", "runs them, so the output looks right"),
    ("parameters()", "leaves their parameters out: an optimizer built from "
                     "it never updates them"),
    ("state_dict(), save()", "leave their values out of what is saved"),
    ("load_state_dict(), load()", "leave their values as they were"),
    ("to(device, dtype)", "leaves their parameters on the old device and "
                          "dtype"),
    ("initialize(), apply(fn)", "skip them: they keep their values, and fn "
                                "never sees them"),
    ("train(), eval()", "do not switch them: a Dropout among them keeps "
                        "dropping after eval()"),
    ("zero_grad()", "leaves their gradients, which keep adding up"),
    ("modules(), children(), print(net)", "do not list them"),
)


def set_warnings(enabled):
    """Turn on or off the ``UserWarning`` that ``diagnose(net, warn=True)``
    gives (it is on by default)."""
    _settings["warn"] = bool(enabled)


def _walk_container(value, path):
    """Yield ``(path, item)`` for everything inside nested containers."""
    if isinstance(value, dict):
        items = ((f"{path}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (set, frozenset)):
        items = ((f"{path}{{...}}", v) for v in value)
    else:
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    for sub_path, item in items:
        if isinstance(item, _CONTAINERS):
            yield from _walk_container(item, sub_path)
        else:
            yield sub_path, item


def _plain_attributes(net):
    """``(path, value)`` for every plain attribute of every registered
    block, looking inside containers."""
    for block_path, block in Block.named_blocks(net, "net"):
        d = block.__dict__
        for name, value in d.items():
            if name in _INTERNAL or _registered_as(d, name, value):
                continue
            path = f"{block_path}.{name}"
            if isinstance(value, _CONTAINERS):
                yield from _walk_container(value, path)
            else:
                yield path, value


_INTERNAL = _TABLES + ("_non_persistent",)


def _registered_as(d, name, value):
    """Whether ``value`` is the registered child, parameter or buffer
    ``name`` (a block keeps a copy in its instance dict when the name is
    also a method's)."""
    return any(d[key].get(name) is value and value is not None
               for key in _TABLES)


def _shadowed_methods(net):
    """``(path, method name)`` for each plain attribute that hides a public
    method of ``Block`` (such as ``self.blocks = [...]``)."""
    found = []
    for block_path, block in Block.named_blocks(net, "net"):
        d = block.__dict__
        for name, value in d.items():
            if (not name.startswith("_") and callable(getattr(Block, name, None))
                    and not _registered_as(d, name, value)):
                found.append((f"{block_path}.{name}", name))
    return found


def unregistered_blocks(net):
    """``(path, block)`` for each block held in a plain container of a
    registered block (for example ``net.layers[0]``)."""
    return [(path, value) for path, value in _plain_attributes(net)
            if isinstance(value, Block) and ("[" in path or "{" in path)]


class Diagnosis:
    """What ``diagnose`` found. Each list holds ``(path, detail)`` pairs;
    ``ok`` is True when nothing was found. ``str()`` gives the report."""

    def __init__(self, net_name, orphans, plain_arrays, unused, shared, ran,
                 shadowed=()):
        self.net_name = net_name
        self.orphans, self.plain_arrays = orphans, plain_arrays
        self.unused, self.shared, self.ran = unused, shared, ran
        self.shadowed = list(shadowed)

    @property
    def ok(self):
        return not (self.orphans or self.plain_arrays or self.unused)

    def __str__(self):
        lines = [f"diagnose({self.net_name}):"]
        if self.orphans:
            lines.append("  ! blocks kept in a plain Python container: " + ", ".join(
                f"{path} ({kind})" for path, kind in self.orphans))
            lines.append("    What the block system does with them:")
            width = max(len(what) for what, _ in LIST_EFFECTS)
            for what, effect in LIST_EFFECTS:
                lines.append(f"      {what:<{width}}  {effect}")
            lines.append(
                "    Fix: hold them in nn.Sequential or nn.BlockList (nn.BlockDict "
                "for a dict), or register each with self.add_module(name, block).")
        if self.plain_arrays:
            lines.append("  ! arrays stored as plain attributes: " + ", ".join(
                f"{path} ({kind})" for path, kind in self.plain_arrays))
            lines.append(
                "    They do not follow net.to(device) and are not saved by "
                "state_dict().\n    Fix: self.register_buffer(name, value) for a "
                "constant, or nn.Parameter(value) if it should be learned.")
        if self.unused:
            lines.append("  ! parameters not used in the last forward pass: " +
                         ", ".join(f"{path} {shape}" for path, shape in self.unused))
            lines.append("    They get no gradient, so training never changes them.")
        for path, name in self.shadowed:
            lines.append(f"  i {path} hides the method {name}(); the block "
                         f"system does not need it (nn.Block.{name}(net) "
                         f"still works)")
        for names in self.shared:
            lines.append(f"  i shared parameter: {' = '.join(names)} (one object: "
                         f"its gradient sums every use; parameters() lists it "
                         f"once, state_dict() under every name)")
        if not self.ran:
            lines.append("  i the network has not run yet; call net(X) once so that "
                         "unused parameters can be found too")
        if self.ok:
            lines.append("  no problems found: everything is registered.")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def diagnose(net, warn=False):
    """Report what ``net``'s registration misses, with the fix for each.

    It finds blocks kept in plain lists, tuples, dicts or sets (by attribute
    path, such as ``net.layers[1]``); arrays or tensors stored as plain
    attributes, which ``to(device)`` leaves behind; parameters not used in
    the last forward pass; parameters shared between layers; and plain
    attributes that hide a method of ``Block``.

    Arguments:
        net: the block to check.
        warn: also give a ``UserWarning`` the first time a problem is found
            for this network, for scripts that do not print the report
            (``set_warnings(False)`` turns these off everywhere).

    Returns:
        A :class:`Diagnosis`. Printing it, or leaving it as the last line of
        a notebook cell, shows the report (once).
    """
    if isinstance(net, type) and issubclass(net, Block):
        raise TypeError(f"diagnose expected a network, got the class "
                        f"{net.__name__}; write {_spelled(net)}() (diagnose "
                        f"an instance, e.g. db.diagnose({_spelled(net)}()))")
    if not isinstance(net, Block):
        raise TypeError(f"diagnose expected a Block, got {type(net).__name__}")
    if "_children" not in net.__dict__:
        raise AttributeError(_no_init_text(net))
    orphans, arrays = [], []
    for path, value in _plain_attributes(net):
        if isinstance(value, Block):
            if "[" in path or "{" in path:
                orphans.append((path, type(value).__name__))
        elif isinstance(value, Tensor) and not isinstance(value, Parameter):
            arrays.append((path, f"Tensor of shape {value.shape}"))
        elif isinstance(value, Parameter):
            orphans.append((path, "Parameter"))
        elif isinstance(value, np.ndarray) or hasattr(value, "__cuda_array_interface__"):
            arrays.append((path, f"{type(value).__name__} of shape {value.shape}"))
    last_call = net.__dict__.get("_last_call")
    unused = []
    if last_call is not None:
        # A block's parameters count as used when the block ran during (or
        # after) the root's last call.
        for block_path, block in Block.named_blocks(net, "net"):
            if block.__dict__.get("_last_call", 0) >= last_call:
                continue
            for name, p in Block.named_parameters(block, recurse=False):
                if p.requires_grad:
                    unused.append((f"{block_path}.{name}", p._shape_text()))
    shared = [[f"net.{name}" for name in names]
              for names in _shared_parameters(net).values()]
    report = Diagnosis(type(net).__name__, orphans, arrays, unused, shared,
                       last_call is not None, _shadowed_methods(net))
    if warn and _settings["warn"] and not report.ok and net not in _warned:
        _warned.add(net)
        warnings.warn(str(report), UserWarning, stacklevel=2)
    return report


diagnose.set_warnings = set_warnings     # reachable as db.diagnose.set_warnings
