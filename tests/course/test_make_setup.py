"""``make setup`` on a fresh copy of the project: the editable install is
quiet and works.

pip 25 and later pass the build backend's warnings on, and setuptools
warns on every editable install of this layout with a boxed note
("BuildBackendWarning: Editable installation ... Please be careful with
folders in your working directory"). The Makefile filters that one note;
this test runs the Makefile's own recipe (with no extras, so that only
NumPy is downloaded) in a new virtual environment and reads its output.
"""

import shutil
import subprocess
import sys

import pytest

import notebook_tools as tools

ROOT = tools.ROOT
PROJECT_FILES = ["Makefile", "pyproject.toml", "README.md", "d2lblocks",
                 "autograde"]

pytestmark = pytest.mark.slow


def test_make_setup_installs_without_the_editable_warning(tmp_path):
    if shutil.which("make") is None:
        pytest.fail("`make` is not installed; install it (apt-get install make)")
    copy = tmp_path / "project"
    copy.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / name)
    python = getattr(sys, "_base_executable", None) or sys.executable
    done = subprocess.run(
        ["make", "--no-print-directory", "setup", "EXTRAS=",
         f"PYTHON={python}"],
        cwd=copy, capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert (copy / ".venv" / ".installed").exists()
    assert "BuildBackendWarning" not in output, output
    assert "Please be careful with folders" not in output, output
    # The install is editable: the copy's own sources are imported, and
    # the console script is there.
    where = subprocess.run(
        [str(copy / ".venv" / "bin" / "python"), "-c",
         "import d2lblocks, autograde; print(d2lblocks.__file__); "
         "print(autograde.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(copy / "d2lblocks" / "__init__.py"),
                                    str(copy / "autograde" / "__init__.py")]
    assert (copy / ".venv" / "bin" / "autograde").exists()
