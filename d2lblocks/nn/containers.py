"""Containers that register the blocks they hold."""

from .block import Block

__all__ = ["Sequential", "BlockList", "BlockDict", "ModuleList", "ModuleDict"]


def _check_block(block, where):
    if not isinstance(block, Block):
        raise TypeError(f"{where} expected Block instances, got "
                        f"{type(block).__name__}")
    return block


class _BlockSequence(Block):
    """What Sequential and BlockList share: children named '0', '1', ...,
    ``len``, iteration, ``seq[i]``, slices and ``seq[i] = block``."""

    def _append(self, block):
        name = str(len(self._children))
        self._children[name] = _check_block(block, type(self).__name__)
        return self

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(self._children.values())

    def __getitem__(self, index):
        blocks = list(self._children.values())
        if isinstance(index, slice):
            return self._from_blocks(blocks[index])
        try:
            return blocks[index]
        except (IndexError, TypeError):
            raise IndexError(f"{type(self).__name__} index {index!r} is out of "
                             f"range for {len(blocks)} blocks") from None

    def __setitem__(self, index, block):
        key = list(self._children)[index]
        self._children[key] = _check_block(block, type(self).__name__)


class Sequential(_BlockSequence):
    """Blocks run one after another: the output of each is the input of the
    next.

    ``Sequential(a, b)`` (PyTorch) and ``Sequential(); add(a, b)`` (Gluon)
    build the same thing. Children are named ``'0'``, ``'1'``, ... so
    parameters are called ``0.weight``, ``2.bias``. Supports ``len``,
    iteration, ``net[i]`` and slices (a new Sequential of the same blocks).
    """

    def __init__(self, *blocks):
        super().__init__()
        self.add(*blocks)

    def add(self, *blocks):
        """Append blocks in order; returns self."""
        for block in blocks:
            self._append(block)
        return self

    append = add

    @staticmethod
    def _from_blocks(blocks):
        return Sequential(*blocks)

    def forward(self, X):
        for block in self._children.values():
            X = block(X)
        return X


class BlockList(_BlockSequence):
    """A list of blocks that registers them (PyTorch's ``ModuleList``).

    Use it instead of a plain Python list whenever the blocks have
    parameters; it has no forward of its own.
    """

    def __init__(self, blocks=()):
        super().__init__()
        self.extend(blocks)

    def append(self, block):
        """Add one block at the end; returns self."""
        return self._append(block)

    def extend(self, blocks):
        """Add blocks at the end; returns self."""
        for block in blocks:
            self._append(block)
        return self

    _from_blocks = staticmethod(lambda blocks: BlockList(blocks))


class BlockDict(Block):
    """A dict of named blocks that registers them (``ModuleDict``)."""

    def __init__(self, blocks=None):
        super().__init__()
        for name, block in dict(blocks or {}).items():
            self[name] = block

    def __setitem__(self, name, block):
        self.add_module(name, _check_block(block, "BlockDict"))

    def __getitem__(self, name):
        return self._children[name]

    def __delitem__(self, name):
        del self._children[name]

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(self._children)

    def __contains__(self, name):
        return name in self._children

    def keys(self):
        return self._children.keys()

    def values(self):
        return self._children.values()

    def items(self):
        return self._children.items()


ModuleList = BlockList
ModuleDict = BlockDict
