"""How a block shows itself in a notebook.

Jupyter calls a block's ``_repr_html_`` to draw it; this module turns the
block into that HTML. The text is the block's ``repr`` (its tree of
children), escaped so that names such as ``<lambda>`` survive.
"""

import html

__all__ = ["block_html"]


def block_html(block):
    """The block's ``repr`` as an HTML ``<pre>`` element."""
    return f"<pre>{html.escape(repr(block))}</pre>"
