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

The traversals (``tree.py``) read those dicts directly, never methods
looked up on an instance: a subclass may then use any method's name for its
own attribute (``self.blocks = [...]``, ``self.modules = []``) without
breaking ``to``, ``train`` or ``save``. Saving and loading are in
``state_dict.py``; the stamps and hooks through which a tool (hybridize)
hears of changes and calls, in ``hooks.py``.
"""

import itertools
import warnings

from .. import backend, init as init_mod
from ..operands import check_flag
from ..tensor import Tensor, as_dtype, no_grad, watcher
from . import state_dict as saving
from .hooks import (BlockChanges, _Calls, _changed, block_contents,  # noqa: F401
                    block_version, call_handler, mark_run_with,
                    register_block_change_hook, set_call_handler,
                    set_call_observer, set_hybridizer)
from .parameter import Parameter
from .state_dict import IncompatibleKeys, StateDictKeyError
from .tree import (_TABLES, _direct_children, _members, _method,
                   _no_init_text, _table, _walk)

# The hooks (nn/hooks.py) and the state dict's types (nn/state_dict.py)
# are also importable from here, where they were first defined.
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


def _next_name(cls):
    prefix = cls.__name__.lower()
    n = _counters.get(prefix, 0)
    _counters[prefix] = n + 1
    return f"{prefix}{n}"


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
            name in block.__dict__[key] for key in _TABLES):
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
        _register(self, table, name, value)
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
        for key in ("_children", "_params", "_buffers"):   # _TABLES, inlined
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
        registered = any(name in d.get(key, ()) for key in _TABLES)
        if not registered and name not in d:
            raise AttributeError(f"cannot delete '{name}': "
                                 f"'{type(self).__name__}' object has no "
                                 f"attribute '{name}'")
        _forget(self, name)

    def __dir__(self):
        d = self.__dict__
        names = set(super().__dir__())
        for key in _TABLES:
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
        _register(self, children, name, block)
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
        _register(self, buffers, name, value)
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
        _register(self, params, name, param)

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
        check_flag(requires_grad, "requires_grad_(): requires_grad",
                   ValueError, typed=True)
        for _, p in _members(self, "_params"):
            p.requires_grad_(requires_grad)
        return self

    def train(self, mode=True):
        """Switch training behaviour (e.g. dropout) on or off, recursively."""
        check_flag(mode, "train(): mode", ValueError, typed=True)
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
        check_flag(force_reinit, "initialize(): force_reinit")
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

    # ---- state: saving and loading (nn/state_dict.py) ------------------------
    state_dict = saving.state_dict
    load_state_dict = saving.load_state_dict
    save = saving.save
    load = saving.load
    save_parameters = save      # Gluon's spellings
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
    for key in _TABLES:
        d[key].pop(name, None)
    d["_non_persistent"].discard(name)
    d.pop(name, None)
    if stamp:
        _changed(block, name)


def _register(block, table, name, value):
    """Put ``value`` under ``name`` in ``table``, one of ``block``'s
    registries, and stamp the change (caches hold the old object). A name
    already there keeps its place, and the copy that ``__setattr__`` keeps
    of it is updated; a name that was something else is forgotten first."""
    d = block.__dict__
    if name not in table:
        _forget(block, name, False)
    elif name in d:
        d[name] = value
    table[name] = value
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


def _default_init(owner, pname, init_mod):
    """The default initializer of parameter ``pname`` of block ``owner``."""
    default = _method(owner, "default_init")
    if default is not None:
        return default(pname)
    return init_mod.Uniform(-0.07, 0.07)      # Gluon's default
