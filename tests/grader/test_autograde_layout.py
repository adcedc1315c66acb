"""The grader's shape: it uses only d2lblocks' public API.

Read from the source with ``ast``, so a change inside the library that
the grader silently relied on cannot slip through."""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
GRADER = sorted((ROOT / "autograde").rglob("*.py"))


def _private(name):
    return name.startswith("_") and not name.endswith("__")


def _defined_names(folder, strings=True):
    """Every private identifier a package defines or assigns (functions,
    classes, attributes and, with ``strings``, slot names)."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif strings and isinstance(node, ast.Constant) and \
                    isinstance(node.value, str):
                names.add(node.value)       # slot names are strings
    return {n for n in names if _private(n)}


def private_uses(tree, library_private, own):
    """``(line, what)`` for each private d2lblocks name that ``tree``
    imports, reads from a library module or spells as a string."""
    found, lib_names = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "d2lblocks"):
            parts = node.module.split(".")
            for alias in node.names:
                lib_names.add(alias.asname or alias.name)
                if any(map(_private, parts + [alias.name])):
                    found.append((node.lineno, f"{node.module}.{alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("d2lblocks"):
                    lib_names.add(alias.asname or alias.name.split(".")[0])
                    if any(map(_private, alias.name.split("."))):
                        found.append((node.lineno, alias.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if (isinstance(root, ast.Name) and root.id in lib_names) or (
                    node.attr in library_private and node.attr not in own):
                found.append((node.lineno, node.attr))
        elif (isinstance(node, ast.Constant) and node.value in library_private
              and node.value not in own):
            found.append((node.lineno, repr(node.value)))
    return found


def test_the_grader_uses_no_private_name_of_d2lblocks():
    library_private = _defined_names(ROOT / "d2lblocks")
    own = _defined_names(ROOT / "autograde", strings=False)
    bad = [f"{path.relative_to(ROOT)}:{line}: {what}" for path in GRADER
           for line, what in private_uses(ast.parse(path.read_text()),
                                          library_private, own)]
    assert bad == [], "the grader reaches into d2lblocks:\n" + "\n".join(bad)


@pytest.mark.parametrize("code, what", [
    ("from d2lblocks.tensor import _mode", "d2lblocks.tensor._mode"),
    ("import d2lblocks as db\nx = db.tensor._Random", "_Random"),
    ("from d2lblocks import nn\nnn.parameter._Unset", "_Unset"),
    ("setattr(t, NAME, 0)", "NAME"),
    ("param.NAME()", "NAME"),
])
def test_the_check_sees_each_way_of_reaching_in(code, what):
    library_private = _defined_names(ROOT / "d2lblocks")
    # NAME: a private name the library defines today (any one will do).
    name = sorted(n for n in library_private if n.isidentifier())[0]
    if "NAME)" in code or "NAME," in code:
        code, what = code.replace("NAME", repr(name)), repr(name)
    else:
        code, what = code.replace("NAME", name), what.replace("NAME", name)
    found = private_uses(ast.parse(code), library_private, set())
    assert [w for _, w in found] == [what]


def imported_modules(path):
    """The absolute names of the modules ``path`` (in autograde/) imports."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_the_grader_side_never_imports_the_student_side():
    inside = ROOT / "autograde" / "inside"
    for path in GRADER:
        if inside in path.parents:
            continue
        bad = {m for m in imported_modules(path)
               if m == "autograde.inside" or m.startswith("autograde.inside.")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_student_side_imports_no_grading_module():
    grading = {"autograde." + m for m in (
        "cli", "course", "executor", "feedback", "remote", "runner")}
    for path in sorted((ROOT / "autograde" / "inside").rglob("*.py")):
        bad = imported_modules(path) & grading
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_imported_modules_resolves_relative_imports():
    path = ROOT / "autograde" / "inside" / "student.py"
    assert "autograde.bridge" in imported_modules(path)
    assert "autograde.codec" in imported_modules(path)


def test_without_the_course_extra_the_command_says_what_to_install():
    # `None` in sys.modules makes `import nbformat` fail as if it were
    # not installed.
    code = ("import sys, runpy; sys.modules['nbformat'] = None; "
            "sys.argv = ['autograde', 'selftest', 'x']; "
            "runpy.run_module('autograde', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=300,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "pip install 'd2lblocks[course]'" in done.stderr
    assert "'nbformat'" in done.stderr and "Traceback" not in done.stderr


def test_the_command_line_defaults_are_the_settings_defaults():
    from autograde import cli
    from autograde.runner import Settings
    for command in (["selftest", "a"], ["check", "nb.ipynb"], ["grade", "a"]):
        args = cli.build_parser().parse_args(command)
        assert cli._settings(args).as_dict() == Settings().as_dict()


def test_the_command_loads_no_iri_parser_yet_reads_notebooks():
    """The grader marks rfc3987-syntax missing before nbformat brings in
    jsonschema (whose import of it builds a parser, about a second per
    process); notebooks are still read and validated."""
    code = ("import sys, autograde.cli, nbformat\n"
            "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1')])\n"
            "nbformat.validate(nbformat.reads(nbformat.writes(nb), as_version=4))\n"
            "bad = nbformat.v4.new_notebook(); bad.cells = [{'cell_type': 'code'}]\n"
            "try:\n    nbformat.validate(bad)\nexcept nbformat.ValidationError:\n"
            "    print('invalid refused')\n"
            "print(sys.modules.get('rfc3987_syntax', 'absent'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[:2] == ["invalid refused", "None"], out
