"""The library's layers import one way: backend, then autograd (tensor,
kernels, ops), then blocks (nn, init), then optim, then hybridize (hybrid,
lowering) on top. A lower layer never imports a higher one, not even
inside a function, so it can be read (and tested) without it; and no
module reaches another's private names, so each can change its insides
freely. The checks read the source with ``ast`` and import nothing.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "d2lblocks"
TOP = {"hybrid", "lowering"}
BELOW_TOP = ["backend.py", "operands.py", "autograd.py", "views.py", "rng.py",
             "tensor.py", "kernels", "ops.py", "init.py", "optim.py", "nn"]


def module_name(path):
    """``d2lblocks.nn.block`` for ``d2lblocks/nn/block.py``."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def library_files(*names):
    found = []
    for name in names:
        path = PACKAGE / name
        found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return found


def imports(source, module, is_package=False):
    """``(line, full module name)`` for every import anywhere in
    ``source``, the text of ``module`` (functions included); ``from pkg
    import mod`` gives ``pkg.mod`` too."""
    package = module.split(".")
    if not is_package:
        package.pop()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level \
                else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}")
                      for alias in node.names]
    return found


def imports_of(path):
    return imports(path.read_text(), module_name(path),
                   path.name == "__init__.py")


def hybridize_imports(found):
    return [(line, name) for line, name in found
            if name.split(".")[:2] in (["d2lblocks", m] for m in TOP)]


def test_the_checks_see_imports_inside_functions_and_relative_ones():
    source = ("from .. import hybrid\n"
              "def f():\n"
              "    from ..lowering import Lowering\n"
              "    import d2lblocks.hybrid as h\n"
              "from . import block\n")
    found = hybridize_imports(imports(source, "d2lblocks.nn.probe"))
    assert [line for line, _ in found] == [1, 3, 3, 4]
    assert imports("from . import tensor\n", "d2lblocks.nn", True)[1] == \
        (1, "d2lblocks.nn.tensor")


@pytest.mark.parametrize("path", library_files(*BELOW_TOP),
                         ids=lambda p: module_name(p))
def test_lower_layers_never_import_hybridize(path):
    wrong = hybridize_imports(imports_of(path))
    assert not wrong, (f"{module_name(path)} imports {wrong}: hybridize sits "
                       f"above it and observes it through its public hooks")


def runtime_imports(source):
    """``(line, name)`` of each ``importlib.import_module``/``__import__``
    call given a library module's name (relative or absolute)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else \
            getattr(f, "id", None)
        arg = node.args[0] if node.args else None
        text = arg.value if isinstance(arg, ast.Constant) else None
        if name in ("import_module", "__import__") and \
                isinstance(text, str) and \
                (text.startswith(".") or text.startswith("d2lblocks")):
            found.append((node.lineno, text))
    return found


def test_the_run_time_import_check_finds_one():
    source = ("import importlib\n"
              "T = importlib.import_module('.tensor', __package__)\n"
              "np = importlib.import_module('numpy')\n")
    assert runtime_imports(source) == [(2, ".tensor")]


@pytest.mark.parametrize("path", library_files("."),
                         ids=lambda p: module_name(p))
def test_no_module_imports_a_library_module_by_name_at_run_time(path):
    found = runtime_imports(path.read_text())
    assert not found, (f"{module_name(path)} imports {found} through "
                       f"importlib: import the public names it needs instead")


def private_uses(source):
    """``(line, what)`` for each private name that ``source`` (a module
    of the package's top level) imports from another library module or
    reads as an attribute of one."""
    tree = ast.parse(source)
    modules, found = set(), []       # names bound to library modules here
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("d2lblocks")):
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append((node.lineno, alias.name))
                if node.module is None or node.module == "d2lblocks":
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("d2lblocks"):
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and \
                isinstance(node.value, ast.Name) and \
                node.value.id in modules and node.attr.startswith("_") and \
                not node.attr.startswith("__"):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def test_the_private_name_check_finds_both_kinds():
    source = ("from . import kernels as K\n"
              "from .tensor import Tensor, _Hooks\n"
              "x = K._array\n"
              "y = K.Linear\n")
    assert sorted(private_uses(source)) == [(2, "_Hooks"), (3, "K._array")]


@pytest.mark.parametrize("path", library_files("hybrid", "lowering.py"),
                         ids=lambda p: module_name(p))
def test_hybridize_uses_only_public_names_of_other_modules(path):
    found = private_uses(path.read_text())
    assert not found, (f"{module_name(path)} uses private names of other "
                       f"modules: {found}")


# ---- the hooks through which hybridize observes the layers below --------------
def test_a_block_change_hook_hears_each_change_with_its_kind():
    import d2lblocks as db
    from d2lblocks import nn
    from d2lblocks.nn import block as nb

    heard = []
    remove = nb.register_block_change_hook(
        lambda block, name, kind: heard.append((type(block).__name__, name,
                                                kind)))
    try:
        net = nn.Sequential(nn.Linear(2, 3))
        heard.clear()
        before = nb.block_version(net)
        net.scale = 2.0
        net.scale = 2.0                        # the same value: no change
        net.extra = nn.ReLU()
        net.register_buffer("mask", db.ones(3))
        del net[0]
    finally:
        remove()
    net.scale = 3.0                            # heard by nobody now
    assert heard == [("Sequential", "scale", "attribute"),
                     ("Sequential", "extra", "registry"),
                     ("Sequential", "mask", "registry"),
                     ("Sequential", None, "registry")]
    assert nb.block_version(net) > before
    assert nb.block_version(net) == nb.BlockChanges.count
    with pytest.raises(TypeError, match="expected a function, got int"):
        nb.register_block_change_hook(3)


def test_a_call_handler_takes_over_calls_of_that_block_only():
    import d2lblocks as db
    from d2lblocks import nn
    from d2lblocks.nn import block as nb

    a, b = nn.ReLU(), nn.ReLU()
    seen = []

    def handler(block, args, kwargs):
        seen.append((block, args, kwargs))
        return "handled"

    nb.set_call_handler(a, handler)
    X = db.tensor([-1.0, 2.0])
    assert a(X, flag=1) == "handled" and seen == [(a, (X,), {"flag": 1})]
    assert b(X).tolist() == [0.0, 2.0]
    assert nb.call_handler(a) is handler and nb.call_handler(b) is None
    nb.set_call_handler(a, None)
    assert a(X).tolist() == [0.0, 2.0] and len(seen) == 1


def test_a_watcher_hears_what_ops_cannot_show_and_is_restored():
    import sys
    import d2lblocks as db
    T = sys.modules["d2lblocks.tensor"]    # db.tensor is the function

    class Watch:
        def __init__(self):
            self.heard = []

        def decision(self, what):
            self.heard.append(what)

    w = Watch()
    old = T.set_watcher(w)
    try:
        x = db.tensor([1.0, 2.0])
        bool(x.sum() > 0)
        x.sum().item()
        assert T.watcher() is w
    finally:
        assert T.set_watcher(old) is w
    assert w.heard == ["bool()", "item()"]
    assert T.watcher() is old
