"""The public hooks through which a tool hears what blocks do.

A tool that caches work derived from blocks (``d2lblocks.hybrid`` records
what they compute and replays it) sits above nn: nn never imports it. It
learns of changes through the stamps and hooks below, takes over the calls
of a block through a handler set on that block, and watches every other
call through one observer.
"""

__all__ = ["BlockChanges", "block_version", "block_contents",
           "register_block_change_hook", "set_call_handler", "call_handler",
           "set_call_observer", "mark_run_with", "set_hybridizer"]


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
