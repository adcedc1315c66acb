"""How a block shows itself in a notebook.

Jupyter calls a block's ``_repr_html_`` to draw it; :func:`block_html`
turns the block into a collapsible tree made of ``<details>`` and
``<summary>`` elements, with inline styles and no JavaScript, so it looks
the same in JupyterLab, in a saved notebook and in an HTML export.

Each block is one branch: its children below it, and a table of its own
parameters (shape, dtype, device, number of elements). A lazy parameter
reads "not yet created"; a parameter reachable under several names says
which other names share it; a block held in a plain list or dict
(what :func:`d2lblocks.diagnose.unregistered_blocks` finds) appears in a
warning colour with the fix. ``repr(block)`` is untouched.
"""

import html

from .tree import _shared_parameters

__all__ = ["block_html"]

_BOX = ("font-family: monospace; font-size: 13px; line-height: 1.5; "
        "color: #222; background: #fff;")
_BRANCH = "margin-left: 1.2em; border-left: 1px solid #ccc; padding-left: 0.6em;"
_TABLE = "border-collapse: collapse; margin: 0.2em 0 0.3em 1.2em;"
_CELL = "padding: 0 0.8em 0 0; text-align: left; border: none;"
_LAZY = "color: #8a6d00; font-style: italic;"
_SHARED = "color: #1a5fb4;"
_WARN = ("background: #fff3cd; color: #7a4100; border-left: 4px solid "
         "#e0a000; padding: 0.2em 0.5em; margin: 0.2em 0 0.2em 1.2em;")
# Deeper blocks start folded, so a large network fits on a screen.
OPEN_LEVELS = 3
_COLUMNS = ("parameter", "shape", "dtype", "device", "elements", "")


def _e(value):
    """``value`` as escaped HTML text."""
    return html.escape(str(value), quote=True)


def _unregistered(root):
    """``{dotted path of the owner block: [(attribute path, block)]}`` for
    the blocks kept in plain containers, relative to ``root``."""
    from ..diagnose import unregistered_blocks
    found = {}
    for path, block in unregistered_blocks(root):
        # "net.body.layers[1]": the attribute is "layers[1]", its owner is
        # "body" ("" for the root itself).
        attribute_path = path[:min(i for i in (path.find("["), path.find("{"))
                                   if i >= 0)]
        owner = attribute_path.rpartition(".")[0]
        owner = owner[len("net."):] if owner.startswith("net.") else ""
        found.setdefault(owner, []).append((path[len("net."):], block))
    return found


def _fix_for(path):
    """The one-line fix for a block found at ``path``."""
    if "['" in path or '["' in path:
        holder = "nn.BlockDict"
    elif "{" in path:
        holder = "nn.BlockList (a set has no order)"
    else:
        holder = "nn.BlockList or nn.Sequential"
    return (f"not registered: parameters(), state_dict(), to() and "
            f"initialize() pass it by. Fix: hold it in {holder}, or "
            f"self.add_module(name, block).")


def _parameter_row(name, p, dotted, shared):
    """One table row for parameter ``name`` (full name ``dotted``)."""
    cells = [f"<td style='{_CELL}'>{_e(name)}</td>",
             f"<td style='{_CELL}'>{_e(p._shape_text())}</td>"]
    if p.is_lazy:
        cells += [f"<td style='{_CELL}'></td>", f"<td style='{_CELL}'></td>",
                  f"<td style='{_CELL} {_LAZY}'>not yet created</td>"]
    else:
        cells += [f"<td style='{_CELL}'>{_e(p.dtype)}</td>",
                  f"<td style='{_CELL}'>{_e(p.device)}</td>",
                  f"<td style='{_CELL}'>{p.numel():,}</td>"]
    others = [n for n in shared.get(id(p), ()) if n != dotted]
    note = f"shared with {', '.join(others)}" if others else ""
    cells.append(f"<td style='{_CELL} {_SHARED}'>{_e(note)}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _count(block):
    """``(elements created, parameters not yet created)`` below ``block``,
    each shared parameter once."""
    created, waiting = 0, 0
    for _, p in block.named_parameters():
        if p.is_lazy:
            waiting += 1
        else:
            created += p.numel()
    return created, waiting


def _settings(block):
    """The block's ``extra_repr`` text (empty if an attribute hides it)."""
    method = getattr(type(block), "extra_repr", None)
    return method(block) if callable(method) else ""


def _summary(name, block):
    """The clickable line of one block: its name, type, settings and size."""
    created, waiting = _count(block)
    settings = _settings(block)
    head = f"<b>{_e(name)}</b>: " if name else ""
    head += f"{_e(type(block).__name__)}({_e(settings)})"
    size = f"{created:,} parameters" if created else ""
    if waiting:
        size += (", " if size else "") + f"{waiting} not yet created"
    return f"<summary>{head} <span style='color: #666;'>{_e(size)}</span></summary>"


def _branch(block, name, prefix, context, depth):
    """The ``<details>`` element of ``block`` and everything below it;
    the first ``OPEN_LEVELS`` levels start unfolded. ``context`` holds
    what the whole tree shares: the shared parameters, the blocks in
    plain containers, and where each block was drawn first."""
    shared, orphans, drawn = context
    open_ = " open" if depth < OPEN_LEVELS else ""
    parts = [f"<details{open_}>", _summary(name, block),
             f"<div style='{_BRANCH}'>"]
    own = list(block.named_parameters(recurse=False, remove_duplicate=False))
    if own:
        rows = "".join(_parameter_row(n, p, prefix + n, shared) for n, p in own)
        header = "".join(f"<th style='{_CELL} color: #666;'>{_e(c)}</th>"
                         for c in _COLUMNS)
        parts.append(f"<table style='{_TABLE}'><tr>{header}</tr>{rows}</table>")
    # Every registered name, a block registered twice too (as repr shows).
    for child_name, child in block.__dict__["_children"].items():
        if child is None:
            continue
        if id(child) in drawn:          # the same block under a second name
            parts.append(
                f"<div style='padding-left: 1.2em;'><b>{_e(child_name)}</b>: "
                f"{_e(type(child).__name__)}, the same block as "
                f"<b>{_e(drawn[id(child)] or 'the root')}</b> (its "
                f"parameters are shared)</div>")
            continue
        drawn[id(child)] = prefix + child_name
        parts.append(_branch(child, child_name, f"{prefix}{child_name}.",
                             context, depth + 1))
    for path, orphan in orphans.get(prefix.rstrip("."), ()):
        parts.append(f"<div style='{_WARN}'>&#9888; <b>{_e(path)}</b>: "
                     f"{_e(type(orphan).__name__)}({_e(_settings(orphan))}) "
                     f"{_e(_fix_for(path))}</div>")
    parts.append("</div></details>")
    return "".join(parts)


def block_html(block):
    """``block`` as a collapsible HTML tree (what a notebook shows).

    Arguments:
        block: the ``nn.Block`` to draw.

    Returns:
        A ``<div>`` holding nested ``<details>`` elements, unfolded for the
        first ``OPEN_LEVELS`` levels. Every name and value in it is escaped.
    """
    context = (_shared_parameters(block), _unregistered(block),
               {id(block): ""})
    tree = _branch(block, "", "", context, 0)
    return f"<div class='d2lblocks-block' style='{_BOX}'>{tree}</div>"
