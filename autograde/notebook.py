"""Reading nbgrader notebooks: which cells are tests, answers, set-up.

The hidden tests have one home: the test cells of the *source* notebook
(``source/<assignment>/<name>.ipynb``), between ``### BEGIN HIDDEN TESTS``
and ``### END HIDDEN TESTS``. A submission's copy of a test cell is never
run; it is only compared with the released version to report tampering.
"""

import ast
import re


BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"


def nbgrader_meta(cell):
    """The cell's ``metadata.nbgrader`` dict (empty when absent)."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _strip_region(source, begin, end, replacement=None):
    lines, out, inside = source.splitlines(), [], False
    for line in lines:
        text = line.strip()
        if text.startswith(begin):
            inside = True
            if replacement is not None:
                indent = line[:len(line) - len(line.lstrip())]
                out.extend(indent + r for r in replacement)
            continue
        if text.startswith(end):
            inside = False
            continue
        if not inside:
            out.append(line)
    return "\n".join(out)


def visible_part(source):
    """A test cell as students see it (hidden region removed)."""
    return _strip_region(source, BEGIN_HIDDEN, END_HIDDEN)


def release_version(source, cell_type="code"):
    """What ``nbgrader generate_assignment`` makes of a solution cell."""
    if cell_type == "code":
        stub = ["# YOUR CODE HERE", "raise NotImplementedError()"]
    else:
        stub = ["YOUR ANSWER HERE"]
    if BEGIN_SOLUTION not in source:
        return "\n".join(stub) if cell_type == "code" else stub[0]
    return _strip_region(source, BEGIN_SOLUTION, END_SOLUTION, stub)


def _norm(source):
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


class TestCell:
    """One autograded test cell of the source notebook."""

    def __init__(self, grade_id, points, source, index):
        self.grade_id, self.points, self.source = grade_id, points, source
        self.index = index
        self.visible = visible_part(source)
        first = source.strip().splitlines()[0] if source.strip() else ""
        self.title = first.lstrip("#").strip() if first.startswith("#") else grade_id


class SourceNotebook:
    """The instructor's notebook: test cells, set-up cells, answers.

    Arguments:
        nb: an ``nbformat`` notebook (version 4).
        name: its file name, e.g. ``ex1_sequential.ipynb``.
    """

    def __init__(self, nb, name):
        self.nb, self.name = nb, name
        self.tests, self.setup, self.solution_names = [], [], set()
        self.manual, self.cells, self.order = {}, {}, {}
        for index, cell in enumerate(nb.cells):
            meta = nbgrader_meta(cell)
            gid = meta.get("grade_id")
            if gid:
                self.cells[gid] = cell
                self.order.setdefault(gid, index)
            if cell.cell_type != "code":
                if meta.get("grade") and meta.get("solution"):
                    self.manual[gid] = float(meta.get("points", 0) or 0)
                continue
            if meta.get("grade") and not meta.get("solution"):
                self.tests.append(TestCell(gid, float(meta.get("points", 0) or 0),
                                           cell.source, index))
            elif meta.get("solution"):
                self.solution_names |= bound_names(cell.source)
                if meta.get("grade"):
                    self.manual[gid] = float(meta.get("points", 0) or 0)
            else:
                self.setup.append((index, cell.source))
        self.test_ids = {t.grade_id for t in self.tests}

    @property
    def points(self):
        """Total autograded points."""
        return sum(t.points for t in self.tests)

    @classmethod
    def read(cls, path):
        """Load a source notebook from ``path``."""
        import nbformat     # not in the student process, which needs none
        return cls(nbformat.read(str(path), as_version=4), path.name)

    def released_source(self, gid):
        """The source of cell ``gid`` as released to students."""
        cell = self.cells[gid]
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            return release_version(cell.source, cell.cell_type)
        return visible_part(cell.source)


def bound_names(source):
    """Names a cell binds at top level (classes, functions, assignments)."""
    try:
        tree = ast.parse(_pythonish(source))
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
    return names


def used_names(source):
    """Every name a cell reads anywhere (including inside functions)."""
    try:
        tree = ast.parse(_pythonish(source))
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


_MAGIC = re.compile(r"^\s*[%!]")


def strip_magics(source):
    """Plain Python from a cell: IPython magics and shell lines become
    comments, and a cell magic (``%%time``...) disables the whole cell,
    because there is no IPython here to run them."""
    if source.lstrip().startswith("%%"):
        return ""
    return "\n".join("# " + line if _MAGIC.match(line) else line
                     for line in source.splitlines())


def _pythonish(source):
    return "\n".join("pass" if _MAGIC.match(line) else line
                     for line in source.splitlines())


class Submission:
    """A student's notebook, split into the cells to run and a tamper report.

    Arguments:
        nb: the submitted notebook.
        source: the matching :class:`SourceNotebook`.
    """

    def __init__(self, nb, source):
        self.nb, self.source = nb, source
        self.tamper = []
        self.steps = []      # ("cell", index, source) / ("test", TestCell)
        seen = {}
        order = {t.grade_id: t for t in source.tests}
        placed = set()
        released_tests = {_norm(t.visible): t.grade_id for t in source.tests}
        for index, cell in enumerate(nb.cells):
            meta = nbgrader_meta(cell)
            gid = meta.get("grade_id")
            if gid:
                seen[gid] = seen.get(gid, 0) + 1
            if gid in order:
                self._check_test_cell(cell, meta, source, gid, seen[gid])
                if gid not in placed:
                    placed.add(gid)
                    self.steps.append(("test", order[gid]))
                continue
            if gid and gid not in source.cells:
                self.tamper.append(f"cell {gid}: nbgrader metadata that the "
                                   f"assignment does not have")
            elif gid:
                self._check_meta(meta, source, gid, "cell")
            if cell.get("cell_type") != "code":
                continue
            text = cell.get("source", "")
            if not gid and _norm(text) in released_tests:
                self.tamper.append(f"test cell {released_tests[_norm(text)]}: "
                                   f"its nbgrader metadata was removed")
            elif gid in source.cells and nbgrader_meta(source.cells[gid]).get("locked") \
                    and _norm(text) != _norm(source.released_source(gid)):
                self.tamper.append(f"read-only cell {gid} was edited")
            self.steps.append(("cell", index, text))
        self.unchanged_answers = []
        for gid in source.manual:
            mine = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") == gid]
            if not mine or _norm(mine[0].get("source", "")) == _norm(
                    source.released_source(gid)):
                self.unchanged_answers.append(gid)
        for t in source.tests:
            if t.grade_id not in placed:
                self.tamper.append(f"test cell {t.grade_id} is missing "
                                   f"(deleted, or its metadata was removed)")
                self.steps.append(("test", t))

    def _check_meta(self, meta, source, gid, what):
        ref = nbgrader_meta(source.cells[gid])
        for key in ("grade", "solution", "locked", "points"):
            if meta.get(key) != ref.get(key) and (key in ref or key in meta):
                self.tamper.append(f"{what} {gid}: metadata '{key}' changed "
                                   f"from {ref.get(key)!r} to {meta.get(key)!r}")

    def _check_test_cell(self, cell, meta, source, gid, count):
        if count > 1:
            self.tamper.append(f"test cell {gid} appears {count} times")
            return
        if cell.get("cell_type") != "code":
            self.tamper.append(f"test cell {gid} was changed into {cell.get('cell_type')}")
        self._check_meta(meta, source, gid, "test cell")
        if _norm(cell.get("source", "")) != _norm(visible_part(source.cells[gid].source)):
            self.tamper.append(f"test cell {gid} was edited")
