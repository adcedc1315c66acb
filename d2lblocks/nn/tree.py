"""Reading a block tree: the registries, read directly, and the one traversal.

Every traversal (``parameters``, ``state_dict``, ``to``, ``initialize``,
``apply``, ``repr``) walks a block's three registries (``_children``,
``_params``, ``_buffers``) with the functions below, which read the
instance's ``__dict__`` and never look a method up on the instance: a
subclass may use any method's name for its own attribute.
"""


# The registries of children, parameters and buffers, in the order that
# attribute lookup tries them.
_TABLES = ("_children", "_params", "_buffers")


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


def _shared_parameters(root):
    """``{id(parameter): [each dotted name]}`` for the parameters that
    more than one name reaches (tied weights, a layer used twice)."""
    names = {}
    for name, p in _members(root, "_params", remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return {key: found for key, found in names.items() if len(found) > 1}


def _method(block, name):
    """``block.name`` looked up on its class, so that an instance attribute
    of that name cannot hide the method; ``None`` when there is none."""
    fn = getattr(type(block), name, None)
    return None if fn is None else fn.__get__(block)

