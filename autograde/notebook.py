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

    def released(self):
        """The notebook as ``nbgrader generate_assignment`` releases it:
        each solution replaced by its stub, each test cell without its
        hidden tests (a new notebook; this one is left as it is)."""
        import nbformat
        nb = nbformat.from_dict(self.nb)
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if meta.get("solution") or meta.get("grade"):
                cell.source = _released(cell)
        return nb

    def released_source(self, gid):
        """The source of cell ``gid`` as released to students."""
        return _released(self.cells[gid])


def _released(cell):
    """A graded or solution cell's source as released: a solution's stub,
    or a test without its hidden tests."""
    if nbgrader_meta(cell).get("solution"):
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


def global_names(source):
    """Names a cell's code binds or reads in the global namespace: at top
    level, and inside its functions and classes where they are globals
    (a function's parameters and locals are not)."""
    import symtable
    try:
        table = symtable.symtable(_pythonish(source), "<cell>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return used_names(source)
    names, stack = set(), [table]
    while stack:
        scope = stack.pop()
        stack.extend(scope.get_children())
        top = scope.get_type() == "module"
        for sym in scope.get_symbols():
            if top or sym.is_global() or (scope.get_type() == "class" and not sym.is_local()):
                names.add(sym.get_name())
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


# ---- what a test may do that the grader cannot honour ---------------------------
class Unfaithful(tuple):
    """One construct of a test cell that autograde cannot run as a kernel
    would: ``(cell, line, construct, instead)``."""

    __slots__ = ()

    def __new__(cls, cell, line, construct, instead):
        return super().__new__(cls, (cell, line, construct, instead))

    cell = property(lambda self: self[0])
    line = property(lambda self: self[1])
    construct = property(lambda self: self[2])
    instead = property(lambda self: self[3])

    def __str__(self):
        return (f"test {self.cell}, line {self.line}: {self.construct}; "
                f"instead: {self.instead}")


_PATCH_INSTEAD = ("give the student's code an object the test builds (a layer, "
                  "a function, a test double) and check what was done with it, "
                  "or check the result itself (for example the layer types in "
                  "net.children())")
_IPYTHON_NAMES = {"In", "Out", "_i", "_ii", "_iii", "_ih", "_oh", "__", "___"}


def _root_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _call_name(node):
    """``"mock.patch.object"`` for a call of that dotted name."""
    parts, func = [], node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _module_names(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
    return names


def test_constructs(source, modules=(), student_names=()):
    """``[(line, construct, instead)]``: what the test cell ``source``
    does that the grader cannot give the meaning it has in a kernel.

    Arguments:
        modules: names bound to modules by the notebook's set-up cells.
        student_names: names the solution cells define.
    """
    found = []
    for number, line in enumerate(source.splitlines(), start=1):
        if _MAGIC.match(line):
            found.append((number, f"the IPython line {line.strip()[:40]!r}",
                          "plain Python (tests run without IPython)"))
    try:
        tree = ast.parse(_pythonish(source))
    except SyntaxError as e:
        return found + [(e.lineno or 1, "a syntax error", "valid Python")]
    modules = set(modules) | _module_names(tree)
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def add(node, construct, instead):
        found.append((getattr(node, "lineno", 1), construct, instead))

    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Attribute) and _root_name(t) in modules:
                add(node, f"patching the library ({ast.unparse(t)})", _PATCH_INSTEAD)
        if isinstance(node, ast.Call):
            name = _call_name(node)
            first = node.args[0] if node.args else None
            if name in ("setattr", "delattr") and first is not None and \
                    _root_name(first) in modules:
                add(node, f"patching the library ({ast.unparse(first)})", _PATCH_INSTEAD)
            elif name.endswith("patch.object") and first is not None and \
                    _root_name(first) in modules:
                add(node, f"patching the library ({ast.unparse(first)})", _PATCH_INSTEAD)
            elif name.endswith("patch") and isinstance(first, ast.Constant) and \
                    isinstance(first.value, str) and first.value != "builtins.input":
                add(node, f"mock.patch({first.value!r})",
                    "rebind the student's name itself (name = mock.Mock(wraps=name)), "
                    "or patch builtins.input, the one built-in forwarded to student code"
                    if first.value.startswith("__main__") else _PATCH_INSTEAD)
            elif name in ("globals", "locals", "vars", "dir") and not node.args:
                parent = parents.get(node)
                used_by_name = (isinstance(parent, ast.Subscript) and parent.value is node) \
                    or (isinstance(parent, ast.Compare) and node in parent.comparators) \
                    or (isinstance(parent, ast.Attribute) and parent.attr in ("get", "pop"))
                if not used_by_name or name != "globals":
                    add(node, f"listing the namespace with {name}()",
                        "name what you look for: 'f' in globals(), globals()['f'], "
                        "globals().get('f')")
            elif name in ("get_ipython", "os.chdir", "chdir"):
                add(node, f"{name}()", "plain Python in the submission's folder "
                    "(tests run without IPython, in a copy of the working folder)")
        elif isinstance(node, ast.Global) and parents.get(node) is not tree:
            add(node, f"global {', '.join(node.names)} inside a function of the test",
                "bind the name at the cell's top level (a function of the test "
                "can change a list or dict the cell made)")
        elif isinstance(node, ast.Name) and node.id in _IPYTHON_NAMES:
            add(node, f"IPython's history name {node.id}",
                "the value itself (only _ , the last cell's value, is kept)")
        elif isinstance(node, (ast.Name, ast.Constant)) and (
                getattr(node, "id", None) == "__main__"
                or getattr(node, "value", None) == "__main__"):
            add(node, "the __main__ module", "the student's names themselves "
                "(tests see the student's namespace directly)")
        elif isinstance(node, ast.Attribute) and node.attr == "modules" and \
                _root_name(node) == "sys":
            add(node, "sys.modules", "the student's names themselves")
        elif isinstance(node, ast.ClassDef):
            reads = {n.id for stmt in node.body if not isinstance(
                stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                for n in ast.walk(stmt) if isinstance(n, ast.Name)}
            for name in sorted(reads & set(student_names)):
                add(node, f"the class body of {node.name} reads the student's {name}",
                    "read it in a method, or bind it to a name before the class")
    return sorted(set(found))


def unfaithful_constructs(source):
    """Every construct of the test cells of ``source`` (a
    :class:`SourceNotebook`) that autograde cannot run as nbgrader would,
    as :class:`Unfaithful` ``(cell, line, construct, instead)``; lines
    count from the cell's first line."""
    modules = set()
    for _, text in source.setup:
        try:
            modules |= _module_names(ast.parse(_pythonish(text)))
        except SyntaxError:
            pass
    out = []
    for test in source.tests:
        for line, construct, instead in test_constructs(
                test.source, modules, source.solution_names):
            out.append(Unfaithful(test.grade_id, line, construct, instead))
    return out
