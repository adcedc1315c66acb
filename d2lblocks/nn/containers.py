"""Containers that register the blocks they hold.

Every method that adds blocks checks all of them first (each a finished
block instance, none containing the container) and adds none when one is
wrong, so a failed call leaves the container as it was.
"""

from collections.abc import Iterable, Mapping

from .block import Block, _check_child, _check_name, _returned_none, _spelled
from .hooks import _changed
from .tree import _table

__all__ = ["Sequential", "BlockList", "BlockDict", "ModuleList", "ModuleDict"]


def _checked(parent, blocks, where):
    """``blocks`` as a list, each checked to be a block that ``parent``
    may hold; the error names the call and the position."""
    if isinstance(blocks, Block) or not isinstance(blocks, Iterable):
        raise TypeError(f"{where} expected an iterable of blocks, got "
                        f"{_kind(blocks)}")
    blocks = list(blocks)
    for i, block in enumerate(blocks):
        _check_one(parent, block, f"{where}: item {i}")
    return blocks


def _check_one(parent, block, where):
    if isinstance(block, type) and issubclass(block, Block):
        raise TypeError(f"{where} is the class {block.__name__}, not a block; "
                        f"write {_spelled(block)}()")
    if not isinstance(block, Block):
        hint = " (to name a child, use add_module(name, block))" \
            if isinstance(block, str) else ""
        raise TypeError(f"{where} expected a Block such as nn.ReLU(), got "
                        f"{_kind(block)}{hint}")
    _check_child(parent, block, where)
    return block


def _kind(value):
    if isinstance(value, type):
        return f"the class {value.__name__}"
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


class _BlockSequence(Block):
    """What Sequential and BlockList share: children named '0', '1', ...,
    ``len``, iteration, ``seq[i]``, ``seq[i] = block``, ``del seq[i]``,
    ``append``, ``extend``, ``+=``, ``insert``, ``pop`` and slices.

    Deleting or inserting renumbers the children named by their position
    (as PyTorch does); names given by the user (``Sequential(OrderedDict(
    ...))``) are kept.
    """

    def _append_all(self, blocks, where):
        """Check every block, then add them all at the end."""
        blocks = _checked(self, blocks, where)
        children = _table(self, "_children")
        for block in blocks:
            n = len(children)
            while str(n) in children:     # a slice may already hold '2'
                n += 1
            children[str(n)] = block
            _changed(self, str(n))
        return self

    def _key(self, index):
        keys = list(self._children)
        try:
            return keys[index]
        except (IndexError, TypeError):
            raise IndexError(f"{type(self).__name__} index {index!r} is out of "
                             f"range for {len(keys)} blocks") from None

    def _rebuild(self, items):
        """Refill the children from ``(name, block)`` pairs, renaming each
        positional name (digits) to its new position."""
        children = self._children
        children.clear()
        for i, (name, block) in enumerate(items):
            children[str(i) if name.isdigit() else name] = block
        _changed(self, None)

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(list(self._children.values()))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._from_items(list(self._children.items())[index])
        return self._children[self._key(index)]

    def __setitem__(self, index, block):
        key = self._key(index)
        _check_one(self, block, f"{type(self).__name__}[{index!r}] = ...")
        self._children[key] = block
        _changed(self, key)

    def __delitem__(self, index):
        keys = list(self._children)
        doomed = keys[index] if isinstance(index, slice) else [self._key(index)]
        for key in doomed:
            del self._children[key]
        self._rebuild(list(self._children.items()))

    def insert(self, index, block):
        """Put ``block`` before position ``index`` (as ``list.insert``)."""
        if not isinstance(index, int) or isinstance(index, bool):
            index = _int(index, f"{type(self).__name__}.insert: index")
        _check_one(self, block, f"{type(self).__name__}.insert")
        items = list(self._children.items())
        items.insert(index, ("0", block))      # a positional name
        self._rebuild(items)
        return self

    def pop(self, index=-1):
        """Remove the block at ``index`` and return it."""
        block = self[index]
        del self[index]
        return block

    def append(self, block):
        """Add one block at the end; returns self."""
        return self._append_all([block], f"{type(self).__name__}.append")

    def extend(self, blocks):
        """Add blocks at the end; returns self."""
        return self._append_all(blocks, f"{type(self).__name__}.extend")

    def __iadd__(self, blocks):
        return self._append_all(blocks, f"{type(self).__name__} +=")

    def __add__(self, other):
        return self._from_items(
            [(str(i), b) for i, b in enumerate(list(self) + list(other))])


class Sequential(_BlockSequence):
    """Blocks run one after another: the output of each is the input of the
    next.

    ``Sequential(a, b)`` (PyTorch), ``Sequential(); add(a, b)`` (Gluon) and
    ``Sequential([a, b])`` (Keras) build the same thing. Children are named
    ``'0'``, ``'1'``, ... so parameters are called ``0.weight``, ``2.bias``;
    ``Sequential(OrderedDict(hidden=..., out=...))`` names them. Supports
    ``len``, iteration, ``net[i]``, ``del net[i]``, ``append``, ``insert``,
    ``extend``, ``pop`` and slices (a new Sequential of the same blocks,
    under the same names).
    """

    def __init__(self, *blocks):
        super().__init__()
        if len(blocks) == 1 and isinstance(blocks[0], Mapping):
            items = list(blocks[0].items())
            for name, block in items:
                _check_name(self, name, "child block")
                _check_one(self, block, f"Sequential: item {name!r}")
            for name, block in items:
                Block.add_module(self, name, block)
        elif len(blocks) == 1 and isinstance(blocks[0], (list, tuple)):
            self._append_all(blocks[0], "Sequential")
        else:
            self._append_all(blocks, "Sequential")

    def add(self, *blocks):
        """Append blocks in order; returns self."""
        return self._append_all(blocks, "Sequential.add")

    @staticmethod
    def _from_items(items):
        return Sequential(dict(items))

    def forward(self, X):
        for block in self._children.values():
            X = block(X)
            if X is None:
                _no_output(self, block)
        return X


class BlockList(_BlockSequence):
    """A list of blocks that registers them (PyTorch's ``ModuleList``).

    Use it instead of a plain Python list whenever the blocks have
    parameters; it has no forward of its own. Besides ``append``,
    ``extend`` and ``+=`` it has ``insert``, ``pop`` and ``del lst[i]``; a
    slice is a new BlockList, numbered from 0.
    """

    def __init__(self, blocks=None, *, modules=None):
        super().__init__()
        blocks = _either(blocks, modules, "BlockList", "blocks")
        if blocks is not None:
            self._append_all(blocks, "BlockList")

    @staticmethod
    def _from_items(items):
        return BlockList([block for _, block in items])


class BlockDict(Block):
    """A dict of named blocks that registers them (``ModuleDict``)."""

    def __init__(self, blocks=None, *, modules=None):
        super().__init__()
        blocks = _either(blocks, modules, "BlockDict", "blocks")
        if blocks is not None:
            BlockDict.update(self, blocks)

    def __setitem__(self, name, block):
        _check_name(self, name, "child block")
        _check_one(self, block, f"BlockDict[{name!r}] = ...")
        Block.add_module(self, name, block)

    def __getitem__(self, name):
        return self._children[name]

    def __delitem__(self, name):
        del self._children[name]
        _changed(self, name)

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(list(self._children))

    def __contains__(self, name):
        return name in self._children

    def update(self, blocks):
        """Add or replace blocks from a ``BlockDict``, a dict or
        ``(name, block)`` pairs, in order. All are checked first: when
        one is wrong, none is added."""
        if isinstance(blocks, (BlockDict, Mapping)):
            pairs = list(blocks.items())
        elif isinstance(blocks, Block) or not isinstance(blocks, Iterable) \
                or isinstance(blocks, str):
            raise TypeError(f"BlockDict.update expected a BlockDict, a dict "
                            f"or (name, block) pairs, got {_kind(blocks)}")
        else:
            pairs = []
            for pair in blocks:
                try:
                    name, block = pair
                except (TypeError, ValueError):
                    raise TypeError(f"BlockDict.update expected a dict or "
                                    f"(name, block) pairs, got an element "
                                    f"{_kind(pair)}") from None
                pairs.append((name, block))
        for name, block in pairs:
            _check_name(self, name, "child block")
            _check_one(self, block, f"BlockDict.update: {name!r}")
        for name, block in pairs:
            Block.add_module(self, name, block)

    def pop(self, name):
        """Remove the block ``name`` and return it."""
        block = self._children.pop(name)
        _changed(self, name)
        return block

    def clear(self):
        """Remove every block."""
        self._children.clear()
        _changed(self, None)

    def keys(self):
        """The names, in insertion order."""
        return self._children.keys()

    def values(self):
        """The blocks, in insertion order."""
        return self._children.values()

    def items(self):
        """``(name, block)`` pairs, in insertion order."""
        return self._children.items()


ModuleList = BlockList
ModuleDict = BlockDict


def _either(value, alias, where, name):
    """The argument given under our name or PyTorch's ``modules``."""
    if alias is not None:
        if value is not None:
            raise TypeError(f"{where} takes {name} or modules, not both")
        return alias
    return value


def _int(value, what):
    """``value`` as an int (NumPy integers too), else a TypeError."""
    try:
        return int(value.__index__())
    except (AttributeError, TypeError):
        raise TypeError(f"{what} must be an integer, got "
                        f"{_kind(value)}") from None


def _no_output(seq, block):
    """Raise: ``block``, a child of ``seq``, returned None."""
    name = next(k for k, v in _table(seq, "_children").items() if v is block)
    _returned_none[0] = None
    raise TypeError(
        f"{type(seq).__name__}: child ({name}), a {type(block).__name__}, "
        f"returned None, so there is nothing to give the next block; does "
        f"{type(block).__name__}.forward end with `return ...`?")
