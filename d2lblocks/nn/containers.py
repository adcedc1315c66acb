"""Containers that register the blocks they hold."""

from collections.abc import Mapping

from .block import Block

__all__ = ["Sequential", "BlockList", "BlockDict", "ModuleList", "ModuleDict"]


def _check_block(block, where):
    if not isinstance(block, Block):
        raise TypeError(f"{where} expected Block instances, got "
                        f"{type(block).__name__}")
    return block


class _BlockSequence(Block):
    """What Sequential and BlockList share: children named '0', '1', ...,
    ``len``, iteration, ``seq[i]``, ``seq[i] = block``, ``del seq[i]``,
    ``insert``, ``pop`` and slices.

    Deleting or inserting renumbers the children named by their position
    (as PyTorch does); names given by the user (``Sequential(OrderedDict(
    ...))``) are kept.
    """

    def _append(self, block):
        children = self._children
        n = len(children)
        while str(n) in children:     # a slice may already hold '2'
            n += 1
        children[str(n)] = _check_block(block, type(self).__name__)
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

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(list(self._children.values()))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._from_items(list(self._children.items())[index])
        return self._children[self._key(index)]

    def __setitem__(self, index, block):
        self._children[self._key(index)] = _check_block(block, type(self).__name__)

    def __delitem__(self, index):
        keys = list(self._children)
        doomed = keys[index] if isinstance(index, slice) else [self._key(index)]
        for key in doomed:
            del self._children[key]
        self._rebuild(list(self._children.items()))

    def insert(self, index, block):
        """Put ``block`` before position ``index`` (as ``list.insert``)."""
        _check_block(block, type(self).__name__)
        items = list(self._children.items())
        items.insert(index, ("0", block))      # a positional name
        self._rebuild(items)
        return self

    def pop(self, index=-1):
        """Remove the block at ``index`` and return it."""
        block = self[index]
        del self[index]
        return block

    def extend(self, blocks):
        """Add blocks at the end; returns self."""
        for block in blocks:
            self._append(block)
        return self

    def __iadd__(self, blocks):
        return self.extend(blocks)

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
            for name, block in blocks[0].items():
                Block.add_module(self, name, _check_block(block, "Sequential"))
        elif len(blocks) == 1 and isinstance(blocks[0], (list, tuple)):
            Sequential.add(self, *blocks[0])
        else:
            Sequential.add(self, *blocks)

    def add(self, *blocks):
        """Append blocks in order; returns self."""
        for block in blocks:
            self._append(block)
        return self

    def append(self, block):
        """Add one block at the end; returns self."""
        return self._append(block)

    @staticmethod
    def _from_items(items):
        return Sequential(dict(items))

    def forward(self, X):
        for block in self._children.values():
            X = block(X)
        return X


class BlockList(_BlockSequence):
    """A list of blocks that registers them (PyTorch's ``ModuleList``).

    Use it instead of a plain Python list whenever the blocks have
    parameters; it has no forward of its own. Besides ``append``,
    ``extend`` and ``+=`` it has ``insert``, ``pop`` and ``del lst[i]``; a
    slice is a new BlockList, numbered from 0.
    """

    def __init__(self, blocks=()):
        super().__init__()
        _BlockSequence.extend(self, blocks)

    def append(self, block):
        """Add one block at the end; returns self."""
        return self._append(block)

    @staticmethod
    def _from_items(items):
        return BlockList([block for _, block in items])


class BlockDict(Block):
    """A dict of named blocks that registers them (``ModuleDict``)."""

    def __init__(self, blocks=None):
        super().__init__()
        if blocks is not None:
            BlockDict.update(self, blocks)

    def __setitem__(self, name, block):
        Block.add_module(self, name, _check_block(block, "BlockDict"))

    def __getitem__(self, name):
        return self._children[name]

    def __delitem__(self, name):
        del self._children[name]

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(list(self._children))

    def __contains__(self, name):
        return name in self._children

    def update(self, blocks):
        """Add or replace blocks from a dict or from ``(name, block)``
        pairs, in order."""
        pairs = blocks.items() if isinstance(blocks, Mapping) else blocks
        for pair in pairs:
            try:
                name, block = pair
            except (TypeError, ValueError):
                raise TypeError(f"BlockDict.update expected a dict or "
                                f"(name, block) pairs, got an element "
                                f"{pair!r}") from None
            self[name] = block

    def pop(self, name):
        """Remove the block ``name`` and return it."""
        return self._children.pop(name)

    def clear(self):
        """Remove every block."""
        self._children.clear()

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
