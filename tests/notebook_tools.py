"""Tools for testing the chapter notebooks: find, check, execute them.

The claims convention (see ``chapters/build_notebooks.py``): a code cell may
list strings under ``metadata["expect"]``. Each must appear in the cell's
output after execution, and in the markdown cell right above it. Every
shape written in backticks in a markdown cell, such as `(2, 10)` or `()`,
must be listed by the code cell right below it.
"""

import pathlib
import re

import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
CELL_TIMEOUT_S = 60

# A backticked tuple of sizes: `(2, 10)`, `(256,)`, `(256, None)`, `()`.
_SHAPE = re.compile(r"`(\((?:(?:\d+|None)(?:, (?:\d+|None))*,?)?\))`")

ALLOWED_NOTEBOOK_METADATA = {"kernelspec", "language_info"}
ALLOWED_CELL_METADATA = {"expect"}


def chapter_notebooks():
    """The chapter notebooks in reading order (their names sort that way)."""
    return sorted(CHAPTERS.glob("[0-9][0-9]-*.ipynb"))


def read(path):
    """Read a notebook file as nbformat version 4."""
    return nbformat.read(str(path), as_version=4)


def cleanliness_problems(nb):
    """What keeps ``nb`` from being committable: outputs, execution
    counts, or metadata beyond the kernelspec and the language name."""
    problems = []
    extra = set(nb.metadata) - ALLOWED_NOTEBOOK_METADATA
    if extra:
        problems.append(f"notebook metadata has extra keys {sorted(extra)}")
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec name should be 'python3', got {kernel!r}")
    if nb.metadata.get("language_info") != {"name": "python"}:
        problems.append("language_info should be exactly {'name': 'python'}, "
                        f"got {nb.metadata.get('language_info')!r}")
    for i, cell in enumerate(nb.cells):
        extra = set(cell.metadata) - ALLOWED_CELL_METADATA
        if extra:
            problems.append(f"cell {i} metadata has extra keys {sorted(extra)}")
        if cell.cell_type == "code":
            if cell.outputs:
                problems.append(f"cell {i} has outputs")
            if cell.execution_count is not None:
                problems.append(f"cell {i} has execution count "
                                f"{cell.execution_count}")
    return problems


def cell_text_output(cell):
    """Everything a code cell showed as text: printed streams, results and
    displayed values (``text/plain``), and error messages."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


def claim_problems(nb, executed=True):
    """Where the prose and the outputs of ``nb`` disagree.

    With ``executed=False`` only the prose side is checked (useful before
    running the notebook). Returns a list of messages; empty means fine.
    """
    problems = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        below = cells[i + 1] if i + 1 < len(cells) else None
        above = cells[i - 1] if i > 0 else None
        if cell.cell_type == "markdown":
            shapes = _SHAPE.findall(cell.source)
            if shapes and (below is None or below.cell_type != "code"):
                problems.append(f"cell {i}: prose states {shapes} but no code "
                                f"cell follows to show them")
                continue
            expected = below.metadata.get("expect", []) if below else []
            for shape in shapes:
                if shape not in expected:
                    problems.append(f"cell {i}: prose states `{shape}` but the "
                                    f"code cell below does not expect it "
                                    f"(expects {expected})")
        elif cell.cell_type == "code":
            expect = cell.metadata.get("expect", [])
            if not isinstance(expect, list) or not all(
                    isinstance(e, str) and e for e in expect):
                problems.append(f"cell {i}: metadata 'expect' must be a list "
                                f"of non-empty strings, got {expect!r}")
                continue
            prose = above.source if above is not None and \
                above.cell_type == "markdown" else ""
            output = cell_text_output(cell)
            for claim in expect:
                if claim not in prose:
                    problems.append(f"cell {i}: expects {claim!r} but the "
                                    f"markdown above does not state it")
                if executed and claim not in output:
                    problems.append(f"cell {i}: the prose claims {claim!r} but "
                                    f"the output is {output[-300:]!r}")
    return problems


def execute(path, timeout=CELL_TIMEOUT_S):
    """Run the notebook at ``path`` top to bottom in a fresh ``python3``
    kernel, from its own folder, and return the executed copy.

    Raises ``nbclient.exceptions.CellExecutionError`` on the first error and
    ``CellTimeoutError`` when one cell runs longer than ``timeout`` seconds.
    """
    from nbclient import NotebookClient
    nb = read(path)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb
