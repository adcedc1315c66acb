"""``diagnose(net)``: explain what a network's registration misses.

A block only knows what was registered with it. Python lists, tuples, dicts
and sets are not looked into, so blocks inside them still run in ``forward``
but are invisible to ``parameters()``, ``state_dict()``, ``to(device)``,
``initialize()``, ``apply()`` and ``repr``. That behaviour is kept on
purpose (it is PyTorch's); this module makes it visible.
"""

import warnings
import weakref

import numpy as np

from .nn.block import Block
from .nn.parameter import Parameter
from .tensor import Tensor

__all__ = ["diagnose", "Diagnosis", "unregistered_blocks", "set_warnings"]

_CONTAINERS = (list, tuple, dict, set, frozenset)
_warned = weakref.WeakSet()
_settings = {"warn": True}


def set_warnings(enabled):
    """Turn the ``UserWarning`` that ``diagnose`` gives on its first call
    for each network on or off (it is on by default)."""
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
    for block_path, block in net.named_blocks("net"):
        for name, value in block.__dict__.items():
            if name.startswith("_") and name in ("_children", "_params", "_buffers",
                                                 "_non_persistent", "_name"):
                continue
            path = f"{block_path}.{name}"
            if isinstance(value, _CONTAINERS):
                yield from _walk_container(value, path)
            else:
                yield path, value


def unregistered_blocks(net):
    """``(path, block)`` for each block held in a plain container of a
    registered block (for example ``net.layers[0]``)."""
    return [(path, value) for path, value in _plain_attributes(net)
            if isinstance(value, Block) and ("[" in path or "{" in path)]


class Diagnosis:
    """What ``diagnose`` found. Each list holds ``(path, detail)`` pairs;
    ``ok`` is True when nothing was found. ``str()`` gives the report."""

    def __init__(self, net_name, orphans, plain_arrays, unused, shared, ran):
        self.net_name = net_name
        self.orphans, self.plain_arrays = orphans, plain_arrays
        self.unused, self.shared, self.ran = unused, shared, ran

    @property
    def ok(self):
        return not (self.orphans or self.plain_arrays or self.unused)

    def __str__(self):
        lines = [f"diagnose({self.net_name}):"]
        if self.orphans:
            lines.append("  ! blocks kept in a plain Python container: " + ", ".join(
                f"{path} ({kind})" for path, kind in self.orphans))
            lines.append(
                "    They run in forward, but parameters(), state_dict(), "
                "to(device), initialize(), apply() and print(net) do not see "
                "them, so an optimizer never trains them and save() loses them.\n"
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
        for names in self.shared:
            lines.append(f"  i shared parameter: {' = '.join(names)} (one object: "
                         f"its gradient sums every use; listed and saved once)")
        if not self.ran:
            lines.append("  i the network has not run yet; call net(X) once so that "
                         "unused parameters can be found too")
        if self.ok:
            lines.append("  no problems found: everything is registered.")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def diagnose(net, warn=True):
    """Report what ``net``'s registration misses, with the fix for each.

    It finds blocks kept in plain lists, tuples, dicts or sets (by attribute
    path, such as ``net.layers[1]``); arrays or tensors stored as plain
    attributes, which ``to(device)`` leaves behind; parameters not used in
    the last forward pass; and parameters shared between layers.

    Arguments:
        net: the block to check.
        warn: also give a ``UserWarning`` the first time a problem is found
            for this network (see ``set_warnings`` to turn it off globally).

    Returns:
        A :class:`Diagnosis`; print it for the report.
    """
    if not isinstance(net, Block):
        raise TypeError(f"diagnose expected a Block, got {type(net).__name__}")
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
        for block_path, block in net.named_blocks("net"):
            if block.__dict__.get("_last_call", 0) >= last_call:
                continue
            for name, p in block.named_parameters(recurse=False):
                if p.requires_grad:
                    shape = p._shape_text() if p.is_lazy else str(p.shape)
                    unused.append((f"{block_path}.{name}", shape))
    groups = {}
    for name, p in net.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(f"net.{name}")
    shared = [names for names in groups.values() if len(names) > 1]
    report = Diagnosis(type(net).__name__, orphans, arrays, unused, shared,
                       last_call is not None)
    if warn and _settings["warn"] and not report.ok and net not in _warned:
        _warned.add(net)
        warnings.warn(str(report), UserWarning, stacklevel=2)
    return report


diagnose.set_warnings = set_warnings     # reachable as db.diagnose.set_warnings
