"""Block: the base class of every layer, group of layers and model.

A block registers what is assigned to it. ``self.hidden = Dense(256)`` puts
the child in ``self._children``, an insertion-ordered dict;
``self.w = Parameter(...)`` puts it in ``self._params``; ``register_buffer``
keeps constants in ``self._buffers``. Every traversal (``parameters``,
``state_dict``, ``to``, ``initialize``, ``apply``, ``repr``) walks these
three dicts and nothing else: a block kept in a plain list is not seen.

The traversals are module-level functions that read those dicts directly,
never public methods looked up on an instance: a subclass may then use any
method's name for its own attribute (``self.blocks = [...]``,
``self.modules = []``) without breaking ``to``, ``train`` or ``save``.
"""

import collections
import itertools
import os
import tempfile
import warnings

import numpy as np

from .. import hybrid
from ..tensor import _Hooks, Tensor, as_dtype, no_grad
from .display import block_html
from .parameter import Parameter

__all__ = ["Block", "Module", "IncompatibleKeys", "StateDictKeyError"]

_counters = {}
# Every block call takes the next number and keeps it in ``_last_call``; a
# block whose number is older than its root's was not run by the root's last
# forward pass (``diagnose`` reports its parameters as unused).
_next_call = itertools.count(1).__next__

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
    return block.__dict__[key]


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
    then each child's entries. A shared parameter comes once."""
    seen = set()
    for block_name, block in _walk(root, "", set()):
        dotted = (lambda n: f"{block_name}.{n}") if block_name else (lambda n: n)
        for name, p in _table(block, "_params").items():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                yield dotted(name), p, "param", block, name
        for name, buf in _saved_buffers(block):
            yield dotted(name), buf, "buffer", block, name


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
        if isinstance(value, (Block, Parameter)) and hasattr(
                getattr(type(self), name, None), "__set__"):
            raise TypeError(f"cannot register a {type(value).__name__} as "
                            f"'{name}': that is a property of "
                            f"{type(self).__name__}; choose another name")
        if isinstance(value, Parameter):
            table = params
        elif isinstance(value, Block):
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
                _forget(self, name)       # recordings may hold the old value
                hybrid.attribute_set(self, name)
            object.__setattr__(self, name, value)
            return
        if name not in table:
            _forget(self, name)          # it was something else before
        table[name] = value
        hybrid.structure_changed()       # recordings hold the old object
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

    def add_module(self, name, block):
        """Register ``block`` as the child ``name`` (PyTorch's spelling)."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"a child's name must be a non-empty string "
                             f"without '.', got {name!r}")
        if block is not None and not isinstance(block, Block):
            raise TypeError(f"add_module expected a Block, got "
                            f"{type(block).__name__}")
        children = _table(self, "_children")
        if name not in children:      # a replaced child keeps its place
            _forget(self, name)
        elif name in self.__dict__:   # the copy __setattr__ keeps
            self.__dict__[name] = block
        children[name] = block
        hybrid.structure_changed()
        return block

    def register_child(self, block, name=None):
        """Register ``block`` as a child (Gluon's spelling); the name
        defaults to its position. ``register_child(name, block)`` works too."""
        if isinstance(block, str):
            block, name = name, block
        children = _table(self, "_children")
        return Block.add_module(self, str(len(children)) if name is None
                                else name, block)

    def register_buffer(self, name, value, persistent=True):
        """Keep a constant (such as a fixed random weight) in the block.

        A buffer moves with ``to(device)`` and, when ``persistent``, is saved
        in ``state_dict``; it never gets a gradient.
        """
        if "_children" not in self.__dict__:
            raise AttributeError("cannot register a buffer before "
                                 "super().__init__() has run")
        buffers = _table(self, "_buffers")
        if name not in buffers:       # a replaced buffer keeps its place
            _forget(self, name)
        buffers[name] = None if value is None else _as_buffer(value)
        hybrid.structure_changed()
        if persistent:
            _table(self, "_non_persistent").discard(name)
        else:
            _table(self, "_non_persistent").add(name)

    # ---- calling ---------------------------------------------------------
    def __call__(self, *args, **kwargs):
        d = self.__dict__
        d["_last_call"] = _next_call()
        state = d.get("_hybrid")
        if state is not None or _Hooks.watch is not None:
            return hybrid.block_call(self, state, args, kwargs)
        return self.forward(*args, **kwargs)

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
        for _, block in _walk(self, "", set()):
            hybrid.set_active(block, active)
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

    def named_buffers(self, prefix="", recurse=True):
        """``(dotted name, buffer)`` pairs."""
        return _members(self, "_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        """All buffers."""
        return [b for _, b in _members(self, "_buffers", "", recurse)]

    def collect_params(self):
        """A dict of all parameters by name (Gluon's spelling)."""
        return dict(_members(self, "_params"))

    def apply(self, fn):
        """Call ``fn(block)`` on every child (recursively), then on self."""
        _apply(self, fn)
        return self

    def zero_grad(self, set_to_none=True):
        """Forget the gradient of every parameter: ``.grad = None``, or
        zeros of the parameter's shape with ``set_to_none=False``."""
        for _, p in _members(self, "_params"):
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor(np.zeros(p.grad.shape), dtype=p.grad.dtype,
                                device=p.grad.device)

    def requires_grad_(self, requires_grad=True):
        """Freeze (``False``) or unfreeze every parameter of this block and
        the blocks below it; returns self. A frozen parameter gets no
        gradient and optimizers skip it (the usual way to fine-tune only
        the last layers)."""
        for _, p in _members(self, "_params"):
            p.requires_grad_(requires_grad)
        return self

    def train(self, mode=True):
        """Switch training behaviour (e.g. dropout) on or off, recursively."""
        for _, block in _walk(self, "", set()):
            block.__dict__["training"] = bool(mode)
        hybrid.modes_changed()
        return self

    def eval(self):
        """Same as ``train(False)``."""
        return _method(self, "train")(False)

    def to(self, device=None, dtype=None):
        """Move every parameter and buffer to ``device`` and/or cast float
        ones to ``dtype``, in place; returns self.

        Lazy parameters are made on the device of the first input instead.
        """
        dt = None if dtype is None else as_dtype(dtype)
        with no_grad():
            for _, p in _members(self, "_params"):
                if p.is_lazy:
                    if dt is not None:
                        p._lazy_dtype = dt
                    continue
                p.data = _moved(p, device, dt).data
                if p.grad is not None:
                    p.grad = _moved(p.grad, device, dt)
            for _, block in _walk(self, "", set()):
                buffers = _table(block, "_buffers")
                for name, buf in buffers.items():
                    if buf is not None:
                        buffers[name] = _moved(buf, device, dt)
                        if buffers[name] is not buf:
                            hybrid.structure_changed()   # a new tensor
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
        skipped, seen = [], set()
        for block_name, block in _walk(self, "", set()):
            for name, p in _table(block, "_params").items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                if p._user_initialized and not force_reinit:
                    skipped.append(f"{block_name}.{name}" if block_name else name)
                    continue
                chosen = init if init is not None else \
                    _default_init(block, name, init_mod)
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
        """An ordered dict of name -> NumPy array (host copies): block by
        block, a block's own parameters and persistent buffers, then each
        child's, as in PyTorch. Shared parameters appear once."""
        state = {}
        for key, value, kind, _, _ in _state_entries(self):
            if value is None:
                continue
            if kind == "param" and value.is_lazy:
                raise RuntimeError(
                    f"state_dict(): parameter '{key}' has no values yet (shape "
                    f"{value._shape_text()}); run the network on a batch first")
            state[key] = np.array(value.numpy(), copy=True)
        return state

    def load_state_dict(self, state, strict=True):
        """Copy values from ``state`` (name -> array) into this network.

        Everything is checked first; on any error nothing is changed. A lazy
        parameter takes its shape from ``state``.

        Returns:
            ``IncompatibleKeys(missing_keys, unexpected_keys)``, as PyTorch.

        Raises:
            StateDictKeyError: with ``strict``, names missing from or
                unexpected in ``state`` (all of them listed). It is both a
                ``KeyError`` and a ``RuntimeError``.
            ValueError: arrays whose shape does not match (always).
        """
        entries = {key: (kind, owner, name) for key, _, kind, owner, name
                   in _state_entries(self)}
        missing = [k for k in entries if k not in state]
        unexpected = [k for k in state if k not in entries]
        wrong = []
        for key, (kind, owner, name) in entries.items():
            if kind == "param" and key in state:
                p = _table(owner, "_params")[name]
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
            raise StateDictKeyError("load_state_dict: " + "; ".join(problems) +
                                    " (pass strict=False to load the rest)")
        with no_grad():
            for key, (kind, owner, name) in entries.items():
                if key not in state:
                    continue
                value = np.asarray(state[key])
                if kind == "param":
                    _load_parameter(_table(owner, "_params")[name], value)
                else:
                    buffers = _table(owner, "_buffers")
                    old = buffers[name]
                    buffers[name] = Tensor(np.array(value, copy=True),
                                           device=None if old is None else old.device)
                    hybrid.structure_changed()
        for _, block in _walk(self, "", set()):
            hook = _method(block, "_after_load")
            if hook is not None:
                hook()
        return IncompatibleKeys(missing, unexpected)

    def save(self, path):
        """Save ``state_dict()`` to ``path`` as a NumPy ``.npz`` (no pickle).

        The file is written next to its destination and then renamed, so an
        existing file is never left half-written.
        """
        state = _method(self, "state_dict")()
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
        """Load parameters saved by ``save(path)``; returns self."""
        with np.load(os.fspath(path), allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
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

    def _repr_html_(self):
        """What Jupyter shows for a block at the end of a cell."""
        return block_html(self)


Module = Block   # the PyTorch name


class _ParameterList(list):
    """The list ``parameters()`` returns; it remembers which block it came
    from, so an optimizer can check that block for unregistered layers."""

    def _from(self, block):
        self.source = block
        return self


_ABSENT = object()


def _same_value(old, new):
    """Whether assigning ``new`` over ``old`` changes nothing a recording
    could have captured: the same object, or an equal number or string."""
    return old is new or (type(old) is type(new) and
                          type(new) in (int, float, bool, str) and old == new)


def _forget(block, name):
    """Drop ``name`` from every registry and from the plain attributes."""
    d = block.__dict__
    for key in ("_params", "_children", "_buffers"):
        d[key].pop(name, None)
    d["_non_persistent"].discard(name)
    d.pop(name, None)
    hybrid.structure_changed()


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
    """``t`` on ``device``, cast to ``dtype`` if it holds floats."""
    if dtype is not None and t.dtype.kind != "f":
        dtype = None
    return t.to(device, dtype)


def _load_parameter(p, value):
    """Copy the array ``value`` into ``p``, keeping its dtype and device (a
    lazy parameter takes its shape, and its dtype if ``value`` is float)."""
    if p.is_lazy:
        p._init = None
        p.materialize(value.shape, dtype=value.dtype if value.dtype.kind == "f" else None)
        p._user_initialized = True
    p.data = Tensor(value, dtype=p.dtype, device=p.device).data


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
