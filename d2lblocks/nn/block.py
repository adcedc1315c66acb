"""Block: the base class of every layer, group of layers and model.

A block registers what is assigned to it. ``self.hidden = Dense(256)`` puts
the child in ``self._children``, an insertion-ordered dict;
``self.w = Parameter(...)`` puts it in ``self._params``; ``register_buffer``
keeps constants in ``self._buffers``. Every traversal (``parameters``,
``state_dict``, ``to``, ``initialize``, ``apply``, ``repr``) walks these
three dicts and nothing else: a block kept in a plain list is not seen.
"""

import itertools
import os
import tempfile
import warnings

import numpy as np

from .. import backend
from ..tensor import Tensor, _wrap, as_dtype, no_grad
from .parameter import Parameter

__all__ = ["Block", "Module"]

_counters = {}
# Every block call takes the next number and keeps it in ``_last_call``; a
# block whose number is older than its root's was not run by the root's last
# forward pass (``diagnose`` reports its parameters as unused).
_next_call = itertools.count(1).__next__


def _next_name(cls):
    prefix = cls.__name__.lower()
    n = _counters.get(prefix, 0)
    _counters[prefix] = n + 1
    return f"{prefix}{n}"


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
        if isinstance(value, Parameter):
            self._forget(name)
            d["_params"][name] = value
        elif isinstance(value, Block):
            self._forget(name)
            d["_children"][name] = value
        elif name in d["_params"]:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to the "
                                f"parameter '{name}': expected nn.Parameter "
                                f"or None")
            d["_params"][name] = None
        elif name in d["_buffers"]:
            d["_buffers"][name] = None if value is None else _as_buffer(value)
        elif name in d["_children"] and value is None:
            d["_children"][name] = None
        else:
            self._forget(name)
            object.__setattr__(self, name, value)

    def _forget(self, name):
        """Drop ``name`` from every registry and from the plain attributes."""
        d = self.__dict__
        for key in ("_params", "_children", "_buffers"):
            d[key].pop(name, None)
        d.pop(name, None)

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
        self._forget(name)

    def add_module(self, name, block):
        """Register ``block`` as the child ``name`` (PyTorch's spelling)."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"a child's name must be a non-empty string "
                             f"without '.', got {name!r}")
        if block is not None and not isinstance(block, Block):
            raise TypeError(f"add_module expected a Block, got "
                            f"{type(block).__name__}")
        self._forget(name)
        self._children[name] = block
        return block

    def register_child(self, block, name=None):
        """Register ``block`` as a child (Gluon's spelling); the name
        defaults to its position. ``register_child(name, block)`` works too."""
        if isinstance(block, str):
            block, name = name, block
        return self.add_module(str(len(self._children)) if name is None else name,
                               block)

    def register_buffer(self, name, value, persistent=True):
        """Keep a constant (such as a fixed random weight) in the block.

        A buffer moves with ``to(device)`` and, when ``persistent``, is saved
        in ``state_dict``; it never gets a gradient.
        """
        if "_children" not in self.__dict__:
            raise AttributeError("cannot register a buffer before "
                                 "super().__init__() has run")
        self._forget(name)
        self._buffers[name] = None if value is None else _as_buffer(value)
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    # ---- calling ---------------------------------------------------------
    def __call__(self, *args, **kwargs):
        self.__dict__["_last_call"] = _next_call()
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        """The forward computation; every block defines it."""
        call = getattr(type(self), "call", None)
        if call is not None:
            return call(self, *args, **kwargs)
        raise NotImplementedError(f"{type(self).__name__} must define "
                                  f"forward(self, X)")

    @property
    def name(self):
        """A unique name such as ``dense0`` (as in Gluon)."""
        if self.__dict__.get("_name") is None:
            self.__dict__["_name"] = _next_name(type(self))
        return self.__dict__["_name"]

    # ---- traversal ---------------------------------------------------------
    def children(self):
        """The direct children, in registration order."""
        for _, child in self.named_children():
            yield child

    def named_children(self):
        """``(name, child)`` for each direct child."""
        seen = set()
        for name, child in self._children.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def named_blocks(self, prefix="", remove_duplicate=True, _memo=None):
        """``(dotted name, block)`` for this block and all below it (the
        root's name is ``prefix``). A block reachable by several paths is
        listed once, unless ``remove_duplicate=False``."""
        if remove_duplicate:
            _memo = set() if _memo is None else _memo
            if id(self) in _memo:
                return
            _memo.add(id(self))
        yield prefix, self
        for name, child in self._children.items():
            if child is not None:
                yield from child.named_blocks(f"{prefix}.{name}" if prefix else name,
                                              remove_duplicate, _memo)

    def blocks(self):
        """This block and all blocks below it."""
        for _, block in self.named_blocks():
            yield block

    def _named_members(self, table, prefix, recurse, remove_duplicate=True):
        seen = set()
        blocks = self.named_blocks(prefix, remove_duplicate) if recurse else [(prefix, self)]
        for block_name, block in blocks:
            for name, value in block.__dict__[table].items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{block_name}.{name}" if block_name else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """``(dotted name, parameter)`` pairs such as ``('0.weight', ...)``.

        A parameter shared by several layers is listed once, under its first
        name, unless ``remove_duplicate=False``.
        """
        return self._named_members("_params", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        """All parameters, each once (what an optimizer should update)."""
        return _ParameterList(p for _, p in self.named_parameters(recurse=recurse)) \
            ._from(self)

    def named_buffers(self, prefix="", recurse=True):
        """``(dotted name, buffer)`` pairs."""
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        """All buffers."""
        return [b for _, b in self.named_buffers(recurse=recurse)]

    def collect_params(self):
        """A dict of all parameters by name (Gluon's spelling)."""
        return dict(self.named_parameters())

    def apply(self, fn):
        """Call ``fn(block)`` on every child (recursively), then on self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def zero_grad(self):
        """Forget the gradients of every parameter (sets ``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        """Switch training behaviour (e.g. dropout) on or off, recursively."""
        for block in self.blocks():
            block.__dict__["training"] = bool(mode)
        return self

    def eval(self):
        """Same as ``train(False)``."""
        return self.train(False)

    def to(self, device=None, dtype=None):
        """Move every parameter and buffer to ``device`` and/or cast float
        ones to ``dtype``, in place; returns self.

        Lazy parameters are made on the device of the first input instead.
        """
        dev = None if device is None else backend.as_device(device)
        dt = None if dtype is None else as_dtype(dtype)
        with no_grad():
            for _, p in self.named_parameters():
                if not p.is_lazy:
                    p.data = _convert(p.data, dev, dt)
                    if p.grad is not None:
                        p.grad = _wrap(_convert(p.grad.data, dev, dt))
                elif dt is not None:
                    p._lazy_dtype = dt
            for block in self.blocks():
                for name, buf in block._buffers.items():
                    if buf is not None:
                        block._buffers[name] = _wrap(_convert(buf.data, dev, dt))
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
        becomes known, on the first forward pass.
        """
        from .. import init as init_mod
        skipped = []
        for name, p in self.named_parameters():
            if p._user_initialized and not force_reinit:
                skipped.append(name)
                continue
            chosen = init if init is not None else _default_init(self, name, init_mod)
            if p.is_lazy:
                p._init = chosen      # None: the layer's default, once known
            else:
                chosen(p)
            p._user_initialized = True
        if skipped:
            warnings.warn(f"initialize(): {len(skipped)} parameter(s) were "
                          f"already initialized and were left as they are "
                          f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''}); "
                          f"pass force_reinit=True to initialize them again",
                          UserWarning, stacklevel=2)
        return self

    # ---- state ---------------------------------------------------------------
    def state_dict(self):
        """An ordered dict of name -> NumPy array (host copies) of every
        parameter and persistent buffer. Shared parameters appear once."""
        state = {}
        for name, p in self.named_parameters():
            if p.is_lazy:
                raise RuntimeError(
                    f"state_dict(): parameter '{name}' has no values yet (shape "
                    f"{p._shape_text()}); run the network on a batch first")
            state[name] = np.array(backend.to_host(p.data), copy=True)
        for block_name, block in self.named_blocks():
            for name, buf in block._buffers.items():
                if buf is not None and name not in block._non_persistent:
                    key = f"{block_name}.{name}" if block_name else name
                    state[key] = np.array(backend.to_host(buf.data), copy=True)
        return state

    def load_state_dict(self, state, strict=True):
        """Copy values from ``state`` (name -> array) into this network.

        Everything is checked first; on any error nothing is changed. A lazy
        parameter takes its shape from ``state``.

        Raises:
            KeyError: with ``strict``, names missing from or unexpected in
                ``state`` (all of them listed).
            ValueError: arrays whose shape does not match (always).
        """
        targets = dict(self.named_parameters())
        buffers = {}
        for block_name, block in self.named_blocks():
            for name, buf in block._buffers.items():
                if name not in block._non_persistent:
                    buffers[f"{block_name}.{name}" if block_name else name] = (block, name)
        expected = list(targets) + list(buffers)
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in targets and k not in buffers]
        wrong = []
        for key, p in targets.items():
            if key in state:
                shape = np.shape(state[key])
                if not _fits(p, shape):
                    want = p._shape_text() if p.is_lazy else str(p.shape)
                    wrong.append(f"{key}: expected {want}, got {shape}")
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if wrong:
            raise ValueError("load_state_dict: shapes do not match: " + "; ".join(wrong)
                             + (("; also " + "; ".join(problems)) if problems else ""))
        if problems:
            raise KeyError("load_state_dict: " + "; ".join(problems) +
                           " (pass strict=False to load the rest)")
        with no_grad():
            for key, p in targets.items():
                if key not in state:
                    continue
                value = np.asarray(state[key])
                if p.is_lazy:
                    p._init = None
                    p.materialize(value.shape, dtype=value.dtype if value.dtype.kind == "f" else None)
                    p._user_initialized = True
                p.data = backend.move(value.astype(p.data.dtype, copy=True),
                                      backend.device_of(p.data))
            for key, (block, name) in buffers.items():
                if key in state:
                    old = block._buffers[name]
                    dev = backend.cpu() if old is None else backend.device_of(old.data)
                    block._buffers[name] = _wrap(
                        backend.move(np.array(state[key], copy=True), dev))
        for block in self.blocks():
            hook = getattr(block, "_after_load", None)
            if hook is not None:
                hook()
        return self

    def save(self, path):
        """Save ``state_dict()`` to ``path`` as a NumPy ``.npz`` (no pickle).

        The file is written next to its destination and then renamed, so an
        existing file is never left half-written.
        """
        state = self.state_dict()
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **state)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path

    def load(self, path, strict=True):
        """Load parameters saved by ``save(path)``."""
        with np.load(os.fspath(path), allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
        return self.load_state_dict(state, strict=strict)

    # Gluon's spellings.
    save_parameters = save
    load_parameters = load

    # ---- printing ------------------------------------------------------------
    def extra_repr(self):
        """The text inside this block's parentheses in ``repr``."""
        return ""

    def __repr__(self):
        lines = []
        for name, child in self._children.items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        head = f"{type(self).__name__}({self.extra_repr()}"
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


def _as_buffer(value):
    if isinstance(value, Parameter):
        raise TypeError("a buffer holds constants; got a Parameter (assign it "
                        "as an attribute to register it as a parameter)")
    t = value if isinstance(value, Tensor) else Tensor(value)
    if t.requires_grad:
        t = t.detach()
    return t


def _convert(array, device, dtype):
    if device is not None:
        array = backend.move(array, device)
    if dtype is not None and array.dtype.kind == "f":
        array = array.astype(dtype, copy=False)
    return array


def _fits(p, shape):
    if not p.is_lazy:
        return tuple(p.shape) == tuple(shape)
    known = p._lazy_shape
    return len(known) == len(shape) and all(k is None or k == n for k, n in zip(known, shape))


def _default_init(root, dotted, init_mod):
    """The default initializer of the layer that owns parameter ``dotted``."""
    owner_name, _, pname = dotted.rpartition(".")
    owner = root
    for part in owner_name.split(".") if owner_name else []:
        owner = owner._children[part]
    default = getattr(owner, "default_init", None)
    if default is not None:
        return default(pname)
    return init_mod.Uniform(-0.07, 0.07)      # Gluon's default
