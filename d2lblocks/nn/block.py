"""Block: the base class of every layer, group of layers and model.

A block registers what is assigned to it. ``self.hidden = Dense(256)`` puts
the child in ``self._children``, an insertion-ordered dict;
``self.w = Parameter(...)`` puts it in ``self._params``; ``register_buffer``
keeps constants in ``self._buffers``. Every traversal (``parameters``,
``state_dict``, ``to``, ``initialize``, ``apply``, ``repr``) walks these
three dicts and nothing else: a block kept in a plain list is not seen.

The registries guard themselves: a name must be a non-empty string without
'.', and may not be one that Block uses itself (``training``, ``forward``,
the registries); the registries cannot be reassigned or deleted; a block
cannot be registered inside itself (directly or further down); and a
parameter cannot be replaced by one of another shape or dtype unless the
old one is lazy. Each refusal says why and what to write instead, and
leaves the block as it was; so does every other method that changes a
block (``to``, ``initialize``, ``load_state_dict``, the containers' adds).

The traversals are module-level functions that read those dicts directly,
never public methods looked up on an instance: a subclass may then use any
method's name for its own attribute (``self.blocks = [...]``,
``self.modules = []``) without breaking ``to``, ``train`` or ``save``.
"""

import collections
import collections.abc
import errno
import itertools
import os
import tempfile
import warnings
import zipfile

import numpy as np

from .. import backend, init as init_mod
from ..tensor import (Tensor, as_dtype, float32, mark_changed, no_grad,
                      watcher)
from .parameter import Parameter

__all__ = ["Block", "Module", "IncompatibleKeys", "StateDictKeyError",
           "BlockChanges", "block_version", "block_contents",
           "register_block_change_hook",
           "set_call_handler", "call_handler", "set_call_observer",
           "mark_run_with", "set_hybridizer"]

_counters = {}
# Every block call takes the next number and keeps it in ``_last_call``; a
# block whose number is older than its root's was not run by the root's last
# forward pass (``diagnose`` reports its parameters as unused).
_next_call = itertools.count(1).__next__


# ---- what tools that cache work derived from blocks can hear -------------------
# A tool that records what blocks compute (``d2lblocks.hybrid``) sits above
# nn: nn never imports it. It learns of changes through these counters and
# hooks, and takes over calls through a handler set per block.
class BlockChanges:
    """Counters that tools read to notice changes cheaply.

    ``count``: the stamp of the newest change to any block (a parameter,
    buffer or child registered, replaced or removed, or a plain attribute
    given a new value); each changed block keeps its stamp, read with
    :func:`block_version`. ``modes``: bumped by every ``train()``/``eval()``.
    A cache that holds work derived from some blocks is still good while
    ``count`` has not moved, or while each of those blocks has the stamp
    it had when the cache was made (stamps are compared for equality: a
    block copied from another process keeps that process's stamps).
    """
    count = 0
    modes = 0


_change_hooks = []


def block_version(block):
    """The stamp (``BlockChanges.count``) of ``block``'s latest change, 0
    when it has not changed since it was made (only its own registries and
    attributes count, not its children's)."""
    return block.__dict__.get("_version", 0)


def block_contents(block):
    """``(names, objects)``: the names and the objects registered in
    ``block`` now (children, then parameters, then buffers). A cache
    compares the objects by identity to notice one replaced by writing
    to a registry directly (``self._children[name] = layer``), which
    stamps nothing."""
    d = block.__dict__
    names, objects = [], []
    for key in ("_children", "_params", "_buffers"):
        table = d.get(key)
        if table:
            names += table
            objects += table.values()
    return tuple(names), tuple(objects)


def register_block_change_hook(fn):
    """Call ``fn(block, name, kind)`` after each change to a block
    (``name`` is None when a container renumbers its children): ``kind`` is ``"attribute"`` (a plain attribute given a new value) or
    ``"registry"`` (a parameter, buffer or child registered, replaced or
    removed). Returns a function that removes the hook."""
    if not callable(fn):
        raise TypeError(f"register_block_change_hook expected a function, "
                        f"got {type(fn).__name__}")
    _change_hooks.append(fn)
    return lambda: _change_hooks.remove(fn) if fn in _change_hooks else None


def _changed(block, name, kind="registry"):
    """Stamp ``block`` as changed and tell the hooks."""
    BlockChanges.count += 1
    block.__dict__["_version"] = BlockChanges.count
    for fn in _change_hooks:
        fn(block, name, kind)


class _Calls:
    observer = None      # called for every block call while set
    hybridizer = None    # what Block.hybridize runs


def set_call_handler(block, handler):
    """Make ``block(*args, **kwargs)`` return ``handler(block, args,
    kwargs)`` instead of running ``forward`` (``None`` restores that)."""
    if handler is None:
        block.__dict__.pop("_call_handler", None)
    else:
        block.__dict__["_call_handler"] = handler


def call_handler(block):
    """The handler set on ``block`` with :func:`set_call_handler`, or None."""
    return block.__dict__.get("_call_handler")


def set_call_observer(fn):
    """Route every call of a block without a handler through ``fn(block,
    args, kwargs)`` (which must run ``block.forward``) until reset with
    ``None``; returns the observer set before."""
    old, _Calls.observer = _Calls.observer, fn
    return old


def mark_run_with(root, blocks):
    """Count ``blocks`` as run by ``root``'s latest call (a replay of
    ``root`` runs their ops without calling them); ``diagnose`` reads it."""
    last = root.__dict__.get("_last_call", 0)
    for block in blocks:
        block.__dict__["_last_call"] = last


def set_hybridizer(fn):
    """Set what ``Block.hybridize(active)`` runs, as ``fn(block, active)``
    (``d2lblocks.hybrid`` sets it when imported)."""
    _Calls.hybridizer = fn


IncompatibleKeys = collections.namedtuple(
    "IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = """What ``load_state_dict`` did not match: the
names the network has but the state lacks, and the reverse (as PyTorch's)."""


class StateDictKeyError(KeyError, RuntimeError):
    """``load_state_dict(strict=True)`` found missing or unexpected keys.

    Both a ``KeyError`` and a ``RuntimeError`` (what PyTorch raises), so
    either ``except`` catches it.
    """

    def __str__(self):
        return str(self.args[0])      # KeyError would quote the message


def _next_name(cls):
    prefix = cls.__name__.lower()
    n = _counters.get(prefix, 0)
    _counters[prefix] = n + 1
    return f"{prefix}{n}"


# ---- the one traversal --------------------------------------------------------
def _table(block, key):
    """One of a block's registries, read without attribute lookup."""
    try:
        return block.__dict__[key]
    except KeyError:
        raise AttributeError(_no_init_text(block)) from None


def _no_init_text(block):
    name = type(block).__name__
    return (f"{name} has no registries of children and parameters: its "
            f"__init__ did not call super().__init__(). Add "
            f"super().__init__() as the first line of {name}.__init__")


# Names that Block itself keeps in every instance, and what each is for: a
# child, parameter or buffer under one of them would replace it.
_RESERVED = {
    "_children": "the registry of child blocks",
    "_modules": "the registry of child blocks (PyTorch's name)",
    "_params": "the registry of parameters",
    "_buffers": "the registry of buffers",
    "_non_persistent": "the names of unsaved buffers",
    "training": "the train/eval flag",
    "forward": "the method that calling the block runs",
    "_name": "the block's name",
    "_last_call": "the number of the block's last call",
    "_call_handler": "what calling the block runs (set by hybridize())",
    "_version": "the stamp of the block's latest change",
}
_REGISTRIES = ("_children", "_modules", "_params", "_buffers", "_non_persistent")


def _check_name(block, name, what, explicit=True):
    """Refuse a name that cannot register a ``what`` in ``block``.

    ``explicit`` (``add_module``, ``register_buffer``...): also refuse the
    name of an attribute of the block's class (a method such as
    ``parameters``) unless it is already registered, as PyTorch does.
    Assignment (``self.blocks = ...``) may hide a method: the traversals
    never look methods up on the instance.
    """
    if not isinstance(name, str):
        raise TypeError(f"a {what}'s name must be a string, got "
                        f"{type(name).__name__} {name!r}")
    if not name or "." in name:
        raise ValueError(f"a {what}'s name must be a non-empty string without "
                         f"'.', got {name!r} ('.' separates the names of "
                         f"nested blocks in parameter names such as "
                         f"'hidden.weight')")
    if name in _RESERVED:
        raise ValueError(f"cannot register a {what} as '{name}': Block uses "
                         f"that name for {_RESERVED[name]}; choose another "
                         f"name")
    if explicit and hasattr(type(block), name) and not any(
            name in block.__dict__[key] for key in
            ("_children", "_params", "_buffers")):
        raise ValueError(f"cannot register a {what} as '{name}': "
                         f"{type(block).__name__} already has an attribute "
                         f"of that name; choose another name")


def _check_child(parent, child, name):
    """Refuse a child that is not a finished block or that would make the
    tree a cycle (``repr``, ``parameters()`` and ``apply`` would never
    end)."""
    if child is None:
        return
    if isinstance(child, type) and issubclass(child, Block):
        raise TypeError(f"cannot register '{name}': got the class "
                        f"{child.__name__}; write {_spelled(child)}()")
    if not isinstance(child, Block):
        raise TypeError(f"cannot register '{name}': expected a Block, got "
                        f"{type(child).__name__}")
    if "_children" not in child.__dict__:
        raise AttributeError(_no_init_text(child))
    if child is parent or any(b is parent for _, b in _walk(child, "", set())):
        raise ValueError(
            f"cannot register a {type(child).__name__} as '{name}' inside "
            f"a {type(parent).__name__}: "
            + ("that is the block itself" if child is parent else
               f"the {type(parent).__name__} is already inside it")
            + "; a block cannot contain itself")


def _spelled(cls):
    """How a student writes ``cls``: ``nn.ReLU`` for the library's own
    blocks, the bare class name for theirs."""
    module = getattr(cls, "__module__", "") or ""
    if module.startswith("d2lblocks.nn"):
        return f"nn.{cls.__name__}"
    if module.startswith("d2lblocks.init"):
        return f"init.{cls.__name__}"
    if module.startswith("d2lblocks.optim"):
        return f"optim.{cls.__name__}"
    return cls.__name__


def _check_replacement(old, new, name):
    """A parameter replaced by one of another shape or dtype would make
    forward blame the input; refuse it unless the old one is lazy."""
    if old is None or new is None or old is new or old.is_lazy or new.is_lazy:
        return
    if tuple(old.shape) != tuple(new.shape) or old.dtype != new.dtype:
        raise ValueError(
            f"cannot replace the parameter '{name}' of shape "
            f"{tuple(old.shape)} ({old.dtype}) by one of shape "
            f"{tuple(new.shape)} ({new.dtype}): the layer's other sizes "
            f"depend on it. To change its values, write them in place "
            f"(with db.no_grad(): layer.{name}[...] = values); to use the "
            f"name anew, `del layer.{name}` first")


def _walk(block, prefix="", memo=None):
    """``(dotted name, block)`` for ``block`` and every block below it,
    parents before children. With a ``memo`` set, each block comes once."""
    if memo is not None:
        if id(block) in memo:
            return
        memo.add(id(block))
    yield prefix, block
    for name, child in _table(block, "_children").items():
        if child is not None:
            yield from _walk(child, f"{prefix}.{name}" if prefix else name, memo)


def _direct_children(block):
    """``(name, child)`` for each direct child, each child once."""
    seen = set()
    for name, child in _table(block, "_children").items():
        if child is not None and id(child) not in seen:
            seen.add(id(child))
            yield name, child


def _members(root, key, prefix="", recurse=True, remove_duplicate=True):
    """``(dotted name, value)`` from the registry ``key`` of every block."""
    seen = set()
    if recurse:
        blocks = _walk(root, prefix, set() if remove_duplicate else None)
    else:
        blocks = [(prefix, root)]
    for block_name, block in blocks:
        for name, value in _table(block, key).items():
            if value is None or (remove_duplicate and id(value) in seen):
                continue
            seen.add(id(value))
            yield (f"{block_name}.{name}" if block_name else name), value


def _saved_buffers(block):
    """``(name, buffer)`` for a block's own persistent buffers."""
    skip = _table(block, "_non_persistent")
    return [(n, b) for n, b in _table(block, "_buffers").items() if n not in skip]


def _state_entries(root):
    """``(dotted name, tensor, kind, owner, own name)`` in the order of
    ``state_dict``: a block's own parameters, then its persistent buffers,
    then each child's entries. As in PyTorch, a parameter or block shared
    by several paths comes under each of its names."""
    for block_name, block in _walk(root, "", None):
        dotted = (lambda n: f"{block_name}.{n}") if block_name else (lambda n: n)
        for name, p in _table(block, "_params").items():
            if p is not None:
                yield dotted(name), p, "param", block, name
        for name, buf in _saved_buffers(block):
            if buf is not None:
                yield dotted(name), buf, "buffer", block, name


def _unexpected_keys(root, state):
    """The keys of ``state`` that name nothing in ``root``, in PyTorch's
    order: block by block (parents first), and within a block in the
    order of ``state``. A key whose first part names a child is left to
    that child."""
    out = []
    for block_name, block in _walk(root, "", None):
        prefix = block_name + "." if block_name else ""
        local = {name for name, p in _table(block, "_params").items()
                 if p is not None}
        local.update(name for name, b in _saved_buffers(block) if b is not None)
        children = _table(block, "_children")
        for key in state:
            if not isinstance(key, str):
                if not prefix:
                    out.append(key)
                continue
            if not key.startswith(prefix):
                continue
            head, dot, _ = key[len(prefix):].partition(".")
            if (head not in children) if dot else (head not in local):
                out.append(key)
    return out


def _state_array(value):
    """``(array, None)`` for a value of a state dict that holds numbers,
    else ``(None, what is wrong)``."""
    try:
        array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        return None, f"cannot be read as an array ({exc})"
    if array.dtype.kind not in "biuf":
        what = {"U": "strings", "S": "bytes", "O": "Python objects",
                "c": "complex numbers"}.get(array.dtype.kind, "non-numbers")
        return None, f"holds {what} (dtype {array.dtype}, e.g. " \
                     f"{_first(array)!r})"
    return array, None


def _first(array):
    return array.flat[0] if array.size else "empty"


def _write_npz(f, state):
    """Write ``state`` to the open file ``f`` as an ``.npz`` that
    ``np.load`` reads (written entry by entry, so that any name works,
    ``file`` included)."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in state.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(array),
                                          allow_pickle=False)


def _read_npz(path):
    """The arrays of the ``.npz`` at ``path`` as a dict; errors name the
    path and say what the file is instead."""
    with open(path, "rb") as f:                  # FileNotFoundError names it
        head = f.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path!r} holds a single array (written by "
                         f"np.save), not the parameters that net.save() "
                         f"writes; load it with np.load({path!r})")
    if not head.startswith(b"PK"):
        what = "is empty" if not head else "is not a NumPy .npz archive"
        raise ValueError(f"cannot load {path!r}: the file {what}; expected "
                         f"a file written by net.save(path)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"cannot load {path!r}: the file is damaged or "
                         f"cut short ({exc}); save it again with "
                         f"net.save(path)") from exc
    except ValueError as exc:
        raise ValueError(f"cannot load {path!r}: {exc}") from exc


def _method(block, name):
    """``block.name`` looked up on its class, so that an instance attribute
    of that name cannot hide the method; ``None`` when there is none."""
    fn = getattr(type(block), name, None)
    return None if fn is None else fn.__get__(block)


class Block:
    """Subclass this, call ``super().__init__()``, and define ``forward``.

    ``block(X)`` runs ``block.forward(X)``. Children, parameters and buffers
    are registered when assigned as attributes (see the module docstring).
    Known as ``Module`` in PyTorch and ``Block`` in Gluon; Keras users may
    name the method ``call`` instead of ``forward``.
    """

    def __init__(self):
        d = self.__dict__
        d["_children"] = {}
        d["_params"] = {}
        d["_buffers"] = {}
        d["_non_persistent"] = set()
        d["training"] = True
        d["_name"] = None

    # ---- registration ---------------------------------------------------
    def __setattr__(self, name, value):
        d = self.__dict__
        if "_children" not in d:
            if isinstance(value, (Block, Parameter)):
                kind = "block" if isinstance(value, Block) else "parameter"
                raise AttributeError(
                    f"cannot assign the {kind} '{name}' before "
                    f"{type(self).__name__}.__init__() has called "
                    f"super().__init__(); put that call first")
            object.__setattr__(self, name, value)
            return
        params, children, buffers = d["_params"], d["_children"], d["_buffers"]
        if name in _REGISTRIES:
            raise AttributeError(
                f"cannot assign to '{name}': it is {_RESERVED[name]}, which "
                f"the block keeps itself (assigning a new one would drop "
                f"everything registered). Use add_module(name, block), "
                f"register_buffer(name, tensor), or `del self.name`")
        if isinstance(value, (Block, Parameter)):
            if hasattr(getattr(type(self), name, None), "__set__"):
                raise TypeError(f"cannot register a {type(value).__name__} "
                                f"as '{name}': that is a property of "
                                f"{type(self).__name__}; choose another name")
            _check_name(self, name, "block" if isinstance(value, Block)
                        else "parameter", explicit=False)
        if isinstance(value, Parameter):
            _check_replacement(params.get(name), value, name)
            table = params
        elif isinstance(value, Block):
            _check_child(self, value, name)
            table = children
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to the "
                                f"parameter '{name}': expected nn.Parameter "
                                f"or None")
            table = params
        elif name in children:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to the child block "
                    f"'{name}': expected a Block or None (to use the name for "
                    f"something else, `del self.{name}` first)")
            table = children
        elif name in buffers:
            table = buffers
            value = None if value is None else _as_buffer(value)
        else:
            if not _same_value(d.get(name, _ABSENT), value):
                _forget(self, name, False)       # caches may hold the old value
                _changed(self, name, "attribute")
            object.__setattr__(self, name, value)
            return
        if name not in table:
            _forget(self, name, False)          # it was something else before
        table[name] = value
        _changed(self, name)             # caches hold the old object
        if hasattr(type(self), name):
            # The class has a method of that name (``self.blocks =
            # BlockList(...)``): a copy in the instance dict makes
            # ``self.blocks`` mean what was assigned, as the user expects.
            d[name] = value

    def __getattr__(self, name):
        # Only reached when normal lookup fails, which is always the case for
        # registered children, parameters and buffers: they live only in
        # their registries, so writing to _children directly (as the seed's
        # MySequential does) stays consistent with attribute access.
        d = self.__dict__
        for key in ("_children", "_params", "_buffers"):
            table = d.get(key)
            if table is not None and name in table:
                return table[name]
        if name == "_modules" and "_children" in d:
            return d["_children"]     # the PyTorch spelling of _children
        if "_children" not in d:
            raise AttributeError(
                f"'{type(self).__name__}' has no attribute '{name}': did its "
                f"__init__ forget to call super().__init__()?")
        raise AttributeError(f"'{type(self).__name__}' object has no "
                             f"attribute '{name}'")

    def __delattr__(self, name):
        d = self.__dict__
        if name in _REGISTRIES or name == "training":
            raise AttributeError(f"cannot delete '{name}': it is "
                                 f"{_RESERVED[name]}, which every block "
                                 f"needs")
        registered = any(name in d.get(key, ()) for key in
                         ("_children", "_params", "_buffers"))
        if not registered and name not in d:
            raise AttributeError(f"cannot delete '{name}': "
                                 f"'{type(self).__name__}' object has no "
                                 f"attribute '{name}'")
        _forget(self, name)

    def __dir__(self):
        d = self.__dict__
        names = set(super().__dir__())
        for key in ("_children", "_params", "_buffers"):
            names.update(d.get(key, ()))
        return sorted(names)

    def add_module(self, name, module):
        """Register ``module`` (a block) as the child ``name`` (PyTorch's
        spelling and keywords; ``register_module`` is the same).

        Raises:
            TypeError: ``block`` is not a Block (or ``None``), or ``name``
                is not a string.
            ValueError: ``name`` is empty, has a '.', is a name the block
                uses itself, or ``block`` already contains this block.
        """
        block = module
        children = _table(self, "_children")
        _check_name(self, name, "child block")
        _check_child(self, block, name)
        if name not in children:      # a replaced child keeps its place
            _forget(self, name, False)
        elif name in self.__dict__:   # the copy __setattr__ keeps
            self.__dict__[name] = block
        children[name] = block
        _changed(self, name)
        return block

    def register_child(self, block, name=None):
        """Register ``block`` as a child (Gluon's spelling); the name
        defaults to its position. ``register_child(name, block)`` works too."""
        if isinstance(block, str) and isinstance(name, Block):
            block, name = name, block
        children = _table(self, "_children")
        return Block.add_module(self, str(len(children)) if name is None
                                else name, block)

    def register_module(self, name, module):
        """The same as :meth:`add_module` (PyTorch has both names)."""
        return Block.add_module(self, name, module)

    def register_buffer(self, name, tensor, persistent=True):
        """Keep a constant (such as a fixed random weight) in the block.

        A buffer moves with ``to(device)`` and, when ``persistent``, is saved
        in ``state_dict``; it never gets a gradient.
        """
        if "_children" not in self.__dict__:
            raise AttributeError("cannot register a buffer before "
                                 "super().__init__() has run")
        buffers = _table(self, "_buffers")
        _check_name(self, name, "buffer")
        value = None if tensor is None else _as_buffer(tensor)
        if name not in buffers:       # a replaced buffer keeps its place
            _forget(self, name, False)
        buffers[name] = value
        _changed(self, name)
        if persistent:
            _table(self, "_non_persistent").discard(name)
        else:
            _table(self, "_non_persistent").add(name)

    def register_parameter(self, name, param):
        """Register ``param`` (an ``nn.Parameter`` or ``None``) under
        ``name`` (PyTorch's spelling of ``self.name = param``)."""
        _table(self, "_params")
        _check_name(self, name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter expected an nn.Parameter or "
                            f"None, got {type(param).__name__}; wrap a tensor "
                            f"with nn.Parameter(t)")
        params = _table(self, "_params")
        _check_replacement(params.get(name), param, name)
        if name not in params:
            _forget(self, name, False)
        params[name] = param
        _changed(self, name)

    # ---- calling ---------------------------------------------------------
    def __call__(self, *args, **kwargs):
        d = self.__dict__
        d["_last_call"] = _next_call()
        handler = d.get("_call_handler") or _Calls.observer
        if handler is not None:
            return handler(self, args, kwargs)
        out = self.forward(*args, **kwargs)
        if out is None:               # named by the next layer's error
            _returned_none[0] = type(self).__name__
        return out

    def hybridize(self, active=True):
        """Replay this block and every block below it (Gluon's name).

        The first call with each input signature (shapes, dtypes, device,
        train/eval mode, which inputs need gradients) runs eagerly and
        records its array operations; later calls replay them, forward
        and backward, without the Python of the blocks. A block whose
        forward lets the data choose a path (``if x.sum() > 0``) stays
        eager, with a warning. ``hybridize(False)`` turns replay off.
        See ``d2lblocks.hybrid``. Returns self.
        """
        if _Calls.hybridizer is None:
            raise RuntimeError("hybridize() needs d2lblocks.hybrid, which "
                               "is imported with d2lblocks")
        _Calls.hybridizer(self, active)
        return self

    def forward(self, *args, **kwargs):
        """The forward computation; every block defines it."""
        call = getattr(type(self), "call", None)
        if call is not None:
            return call(self, *args, **kwargs)
        raise NotImplementedError(f"{type(self).__name__} must define "
                                  f"forward(self, X)")

    @property
    def name(self):
        """A unique name such as ``dense0`` (as in Gluon); assigning to it
        renames the block."""
        if self.__dict__.get("_name") is None:
            self.__dict__["_name"] = _next_name(type(self))
        return self.__dict__["_name"]

    @name.setter
    def name(self, value):
        self.__dict__["_name"] = value

    # ---- traversal ---------------------------------------------------------
    def children(self):
        """The direct children, in registration order."""
        return (child for _, child in _direct_children(self))

    def named_children(self):
        """``(name, child)`` for each direct child."""
        return _direct_children(self)

    def named_blocks(self, prefix="", remove_duplicate=True):
        """``(dotted name, block)`` for this block and all below it (the
        root's name is ``prefix``), parents first. A block reachable by
        several paths is listed once, unless ``remove_duplicate=False``."""
        return _walk(self, prefix, set() if remove_duplicate else None)

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """PyTorch's spelling of :meth:`named_blocks`; blocks whose id is
        in ``memo`` are skipped."""
        if not remove_duplicate:
            return _walk(self, prefix, None)
        return _walk(self, prefix, set() if memo is None else
                     {m if isinstance(m, int) else id(m) for m in memo})

    def blocks(self):
        """This block and all blocks below it, each once."""
        return (block for _, block in _walk(self, "", set()))

    modules = blocks

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """``(dotted name, parameter)`` pairs such as ``('0.weight', ...)``.

        A parameter shared by several layers is listed once, under its first
        name, unless ``remove_duplicate=False``.
        """
        return _members(self, "_params", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """All parameters, each once (what an optimizer should update)."""
        return _ParameterList(p for _, p in _members(self, "_params", "", recurse)) \
            ._from(self)

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """``(dotted name, buffer)`` pairs; a buffer reachable by several
        paths comes once, unless ``remove_duplicate=False``."""
        return _members(self, "_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        """All buffers."""
        return [b for _, b in _members(self, "_buffers", "", recurse)]

    def collect_params(self):
        """A dict of all parameters by name (Gluon's spelling)."""
        return dict(_members(self, "_params"))

    def apply(self, fn):
        """Call ``fn(block)`` on every child (recursively), then on self."""
        if isinstance(fn, type) or not callable(fn):
            what = f"the class {fn.__name__}" if isinstance(fn, type) else \
                f"{type(fn).__name__} {fn!r}"
            raise TypeError(f"apply(fn) expected a function of one block, "
                            f"such as def init_weights(block): ..., got "
                            f"{what}")
        _apply(self, fn)
        return self

    def zero_grad(self, set_to_none=True):
        """Forget the gradient of every parameter: ``.grad = None``, or,
        with ``set_to_none=False``, zero the existing gradient arrays in
        place (as PyTorch: a reference to ``p.grad`` sees the zeros)."""
        zero_grads([p for _, p in _members(self, "_params")], set_to_none)

    def requires_grad_(self, requires_grad=True):
        """Freeze (``False``) or unfreeze every parameter of this block and
        the blocks below it; returns self. A frozen parameter gets no
        gradient and optimizers skip it (the usual way to fine-tune only
        the last layers)."""
        _check_flag(requires_grad, "requires_grad_", "requires_grad")
        for _, p in _members(self, "_params"):
            p.requires_grad_(requires_grad)
        return self

    def train(self, mode=True):
        """Switch training behaviour (e.g. dropout) on or off, recursively."""
        _check_flag(mode, "train", "mode")
        for _, block in _walk(self, "", set()):
            block.__dict__["training"] = bool(mode)
        BlockChanges.modes += 1
        return self

    def eval(self):
        """Same as ``train(False)``."""
        return _method(self, "train")(False)

    def to(self, device=None, dtype=None, non_blocking=False):
        """Move every parameter and buffer to ``device`` and/or cast float
        ones to ``dtype``, in place; returns self.

        ``dtype`` must be a floating-point type (``db.float64``...):
        integer weights would be rounded to 0. ``net.to(db.float64)``
        works too, as in PyTorch; ``non_blocking`` is accepted for
        PyTorch code and changes nothing (copies here are synchronous). Everything is moved first and only then
        assigned, so an error changes nothing. Lazy parameters are made on
        the device of the first input instead.
        """
        if dtype is None and device is not None and not isinstance(
                device, (str, backend.Device)):
            device, dtype = None, device          # net.to(db.float64)
        dev = None if device is None else backend.as_device(device)
        dt = None
        if dtype is not None:
            dt = as_dtype(dtype)
            if dt.kind != "f":
                raise TypeError(
                    f"to(dtype=...) expected a floating-point dtype such as "
                    f"db.float32 or db.float64, got {dt}: weights cast to "
                    f"integers would all be rounded (most to 0)")
        moves, lazy = [], []
        with no_grad():
            for _, p in _members(self, "_params"):
                if p.is_lazy:
                    lazy.append(p)
                    continue
                moves.append((p, _moved(p, dev, dt).data,
                              None if p.grad is None else _moved(p.grad, dev, dt)))
            buffer_moves = []
            for _, block in _walk(self, "", set()):
                buffers = _table(block, "_buffers")
                for name, buf in buffers.items():
                    if buf is not None:
                        buffer_moves.append((block, name, buf,
                                             _moved(buf, dev, dt)))
        # Nothing can fail from here on.
        for p in lazy:
            if dt is not None:
                p._lazy_dtype = dt
            if dev is not None:           # where load_state_dict makes it,
                p._lazy_device = "cpu" if dev.kind == "cpu" else \
                    f"gpu:{dev.index}"    # as text: plain data to copy
        for p, data, grad in moves:
            p.data = data
            p.grad = grad
        for block, name, old, new in buffer_moves:
            block.__dict__["_buffers"][name] = new
            if new is not old:
                _changed(block, name)            # a new tensor
        return self

    # ---- initialization ----------------------------------------------------
    def initialize(self, init=None, force_reinit=False):
        """Initialize every parameter (Gluon's ``net.initialize()``).

        Arguments:
            init: an initializer from ``d2lblocks.init`` (such as
                ``init.Normal(0, 0.01)``); by default each layer's own
                default is used.
            force_reinit: re-initialize parameters that an earlier
                ``initialize`` call already set.

        A lazy parameter keeps the initializer and applies it when its shape
        becomes known, on the first forward pass. If an initializer raises,
        every parameter keeps the values and state it had.
        """
        if isinstance(init, type):
            raise TypeError(f"initialize() got the class {init.__name__}; "
                            f"write {_spelled(init)}() (an initializer "
                            f"object, e.g. init.Normal(0, 0.01))")
        if init is not None and not callable(init):
            raise TypeError(f"initialize() expected an initializer such as "
                            f"init.Normal(0, 0.01) or None, got "
                            f"{type(init).__name__} {init!r}")
        if not isinstance(force_reinit, (bool, np.bool_)):
            raise TypeError(f"initialize(): force_reinit must be True or "
                            f"False, got {force_reinit!r}")
        skipped, seen, done = [], set(), []
        try:
            for block_name, block in _walk(self, "", set()):
                for name, p in _table(block, "_params").items():
                    if p is None or id(p) in seen:
                        continue
                    seen.add(id(p))
                    if p._user_initialized and not force_reinit:
                        skipped.append(f"{block_name}.{name}" if block_name
                                       else name)
                        continue
                    chosen = init if init is not None else \
                        _default_init(block, name, init_mod)
                    done.append((p, p._init, p._user_initialized,
                                 None if p.is_lazy else p.data.copy()))
                    if p.is_lazy:
                        p._init = chosen  # None: the layer's default, once known
                    else:
                        chosen(p)
                    p._user_initialized = True
        except BaseException:
            for p, old_init, old_flag, values in reversed(done):
                p._init, p._user_initialized = old_init, old_flag
                if values is not None:
                    p.data[...] = values
            raise
        if skipped:
            warnings.warn(f"initialize(): {len(skipped)} parameter(s) were "
                          f"already initialized and were left as they are "
                          f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''}); "
                          f"pass force_reinit=True to initialize them again",
                          UserWarning, stacklevel=2)
        return self

    # ---- state ---------------------------------------------------------------
    def state_dict(self, destination=None, prefix=""):
        """An ordered dict of name -> NumPy array (host copies), in
        PyTorch's order: block by block, a block's own parameters and
        persistent buffers, then each child's. A parameter or block shared
        by several paths appears under each name, as in PyTorch.

        Arguments (PyTorch's):
            destination: a dict to add the entries to (it is returned).
            prefix: put in front of every name, e.g. ``"encoder."``.
        """
        state = {} if destination is None else destination
        if not isinstance(prefix, str):
            raise TypeError(f"state_dict(): prefix must be a string, got "
                            f"{type(prefix).__name__}")
        for key, value, kind, _, _ in _state_entries(self):
            key = prefix + key
            if kind == "param" and value.is_lazy:
                raise RuntimeError(
                    f"state_dict(): parameter '{key}' has no values yet (shape "
                    f"{value._shape_text()}); run the network on a batch first")
            state[key] = np.array(value.numpy(), copy=True)
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy values from ``state_dict`` (name -> array) into this
        network.

        Every entry is checked first (a number array of the right shape,
        buffers included) and cast to its tensor's dtype; on any error
        nothing is changed. A lazy parameter takes its shape from
        ``state_dict``. Values are copied into the existing arrays, so shared
        (tied) parameters stay shared.

        Returns:
            ``IncompatibleKeys(missing_keys, unexpected_keys)``, in
            PyTorch's order.

        Raises:
            TypeError: ``state_dict`` is not a dict (a path says to use
                ``load``), or an entry does not hold numbers.
            ValueError: arrays whose shape does not match (always).
            StateDictKeyError: with ``strict``, names missing from or
                unexpected in ``state`` (all of them listed). It is both a
                ``KeyError`` and a ``RuntimeError``.
        """
        state = state_dict
        if isinstance(state, (str, bytes, os.PathLike)):
            path = os.fsdecode(state)
            raise TypeError(
                f"load_state_dict expected a dict of name -> array (what "
                f"state_dict() returns), got the path {path!r}; to read a "
                f"file written by net.save(), use net.load({path!r})")
        if not isinstance(state, collections.abc.Mapping):
            raise TypeError(f"load_state_dict expected a dict of name -> "
                            f"array (what state_dict() returns), got "
                            f"{type(state).__name__}")
        if not isinstance(strict, (bool, np.bool_)):
            raise TypeError(f"load_state_dict: strict must be True or False, "
                            f"got {strict!r}")
        entries = list(_state_entries(self))
        missing = [key for key, *_ in entries if key not in state]
        unexpected = _unexpected_keys(self, state)
        plan, wrong, bad = [], [], []
        for key, t, kind, owner, name in entries:
            if key not in state:
                continue
            value, problem = _state_array(state[key])
            if problem:
                bad.append(f"'{key}' {problem}")
                continue
            lazy = kind == "param" and t.is_lazy
            if not (_fits(t, value.shape) if lazy else
                    tuple(t.shape) == value.shape):
                want = t._shape_text() if lazy else str(tuple(t.shape))
                wrong.append(f"{key}: expected {want}, got {value.shape}")
                continue
            plan.append((t, lazy, value))
        if bad:
            raise TypeError("load_state_dict: expected arrays of numbers; "
                            + "; ".join(bad) + " (nothing was loaded)")
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if wrong:
            raise ValueError("load_state_dict: shapes do not match: "
                             + "; ".join(wrong)
                             + (("; also " + "; ".join(problems)) if problems
                                else "") + " (nothing was loaded)")
        if problems:
            raise StateDictKeyError("load_state_dict: " + "; ".join(problems) +
                                    " (pass strict=False to load the rest; "
                                    "nothing was loaded)")
        # Cast and move everything before the first write.
        ready = []
        for t, lazy, value in plan:
            if lazy:      # made where to() sent it, with its dtype or value's
                dev = t.__dict__.get("_lazy_device")
                dt = t._lazy_dtype if t._lazy_dtype is not None else \
                    value.dtype if value.dtype.kind == "f" else float32
                ready.append((t, True, dev, dt, Tensor(value, dtype=dt,
                                                       device=dev).data))
            else:
                ready.append((t, False, None, None,
                              Tensor(value, dtype=t.dtype, device=t.device).data))
        with no_grad():
            for t, lazy, dev, dt, data in ready:
                if lazy:
                    t._init = None
                    t.materialize(data.shape, device=dev, dtype=dt)
                    t._user_initialized = True
                t.data[...] = data
                mark_changed(t)
        for _, block in _walk(self, "", set()):
            hook = _method(block, "_after_load")
            if hook is not None:
                hook()
        return IncompatibleKeys(missing, unexpected)

    def save(self, path):
        """Save ``state_dict()`` to ``path`` as a NumPy ``.npz`` (no pickle).

        The file is written next to its destination and then renamed, so an
        existing file is never left half-written. Read it back with
        ``net.load(path)`` (or ``np.load``).
        """
        state = _method(self, "state_dict")()
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                errno.ENOENT, f"cannot save to {path!r}: the folder "
                f"{folder!r} does not exist; create it first with "
                f"os.makedirs({folder!r})", path)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                _write_npz(f, state)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path

    def load(self, path, strict=True):
        """Load parameters saved by ``save(path)``; returns self.

        Raises:
            FileNotFoundError: there is no file at ``path``.
            ValueError: the file is not one written by ``save`` (or it is
                damaged); the message names the path.
        """
        state = _read_npz(os.fspath(path))
        _method(self, "load_state_dict")(state, strict=strict)
        return self

    # Gluon's spellings.
    save_parameters = save
    load_parameters = load

    # ---- printing ------------------------------------------------------------
    def extra_repr(self):
        """The text inside this block's parentheses in ``repr``."""
        return ""

    def __repr__(self):
        lines = []
        for name, child in _table(self, "_children").items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        head = f"{type(self).__name__}({_method(self, 'extra_repr')()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


Module = Block   # the PyTorch name


class _ParameterList(list):
    """The list ``parameters()`` returns; it remembers which block it came
    from, so an optimizer can check that block for unregistered layers."""

    def _from(self, block):
        self.source = block
        return self


_ABSENT = object()
# The class of the last block whose forward returned None (a forgotten
# ``return``), for the message of the layer that receives that None.
_returned_none = [None]


def _check_flag(value, where, what):
    """Refuse a flag that is not True or False (``train("eval")`` would
    otherwise mean training)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where}(): {what} must be True or False, got "
                         f"{type(value).__name__} {value!r}")


def zero_grads(params, set_to_none=True):
    """``p.grad = None`` for each parameter, or (``set_to_none=False``)
    its gradient array set to zero in place."""
    watch = watcher()
    for p in params:
        g = p.grad
        if set_to_none or g is None:
            p.grad = None
            if watch is not None:        # a recording replays the reset
                watch.grad_set(p, None)
        else:
            g.data[...] = 0


def _same_value(old, new):
    """Whether assigning ``new`` over ``old`` changes nothing a recording
    could have captured: the same object, or an equal number or string."""
    return old is new or (type(old) is type(new) and
                          type(new) in (int, float, bool, str) and old == new)


def _forget(block, name, stamp=True):
    """Drop ``name`` from every registry and from the plain attributes
    (and stamp the change, unless the caller stamps what it does next)."""
    d = block.__dict__
    for key in ("_params", "_children", "_buffers"):
        d[key].pop(name, None)
    d["_non_persistent"].discard(name)
    d.pop(name, None)
    if stamp:
        _changed(block, name)


def _apply(block, fn):
    for _, child in _direct_children(block):
        _apply(child, fn)
    fn(block)


def _as_buffer(value):
    if isinstance(value, Parameter):
        raise TypeError("a buffer holds constants; got a Parameter (assign it "
                        "as an attribute to register it as a parameter)")
    t = value if isinstance(value, Tensor) else Tensor(value)
    if t.requires_grad:
        t = t.detach()
    return t


def _moved(t, device, dtype):
    """``t`` on ``device``, cast to ``dtype`` if it holds floats (a new
    tensor, or ``t`` itself when nothing changes)."""
    if dtype is not None and t.dtype.kind != "f":
        dtype = None
    return t.to(device, dtype)


def _fits(p, shape):
    if not p.is_lazy:
        return tuple(p.shape) == tuple(shape)
    known = p._lazy_shape
    return len(known) == len(shape) and all(k is None or k == n for k, n in zip(known, shape))


def _default_init(owner, pname, init_mod):
    """The default initializer of parameter ``pname`` of block ``owner``."""
    default = _method(owner, "default_init")
    if default is not None:
        return default(pname)
    return init_mod.Uniform(-0.07, 0.07)      # Gluon's default
