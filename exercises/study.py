"""A student's own folder: the chapters and the released exercises.

``python exercises/study.py [DIR]`` (``make study``, DIR defaults to
``build/study``) fills DIR with

* ``chapters/``: the chapter notebooks;
* ``exercises/<assignment>/``: the student version of every assignment
  in ``exercises/source/``, made by ``nbgrader generate_assignment`` in a
  temporary copy of the course (no solutions, no hidden tests, no
  ``source/``);
* ``nbgrader_config.py``: the course's settings, used by Validate (the
  JupyterLab of ``make study`` runs in DIR, where nbgrader looks first);
* ``.jupyter/``: JupyterLab settings for a student working alone: no news
  toast, none of nbgrader's panels that need an instructor or an exchange
  (Assignment List, Courses, Formgrader, Create Assignment; the Validate
  button stays), a saved layout of its own (``.jupyter/workspaces``, so
  ``make lab`` does not reopen the student's tabs), and terminals that
  find ``autograde`` (``.jupyter/terminal.bashrc``).

Files already in DIR are kept, so a student's answers survive a second
run, and an assignment added to the course later is added on the next
run; delete DIR to start over. ``make study`` then starts JupyterLab in
DIR with these settings. ``study.py --lab-config DIR [ROOT]`` writes only
the settings (``make lab`` uses them, with ROOT its notebook folder).
"""

import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCE = HERE / "source"
DEFAULT_DIR = REPO / "build" / "study"
# nbgrader's JupyterLab plugins that talk to an exchange or are for the
# instructor; "validate-assignment" (the Validate button) is kept.
HIDDEN_PLUGINS = ["@jupyter/nbgrader:assignment-list",
                  "@jupyter/nbgrader:course-list",
                  "@jupyter/nbgrader:formgrader",
                  "@jupyter/nbgrader:create-assignment",
                  "@jupyter/nbgrader:menu",
                  # the "get notified about Jupyter news?" toast
                  "@jupyterlab/apputils-extension:announcements"]
# Read by bash in every terminal of this JupyterLab. A terminal started
# by a server without a TTY would otherwise be a login shell, and
# /etc/profile puts PATH back to the system's, without `autograde`.
TERMINAL_RC = """\
# Written by exercises/study.py: the shell of JupyterLab's terminals.
# Your own ~/.bashrc first, then the course's Python environment first on
# PATH, so that `autograde` and `nbgrader` are found without activating it.
if [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
PATH={bin}:"$PATH"
export PATH
"""


def _demo():
    spec = importlib.util.spec_from_file_location(
        "instructor_demo", HERE / "instructor_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assignments():
    """The names of the course's assignments (the folders of
    ``exercises/source/``), sorted."""
    return sorted(p.name for p in SOURCE.iterdir()
                  if p.is_dir() and any(p.glob("*.ipynb")))


def _shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


def terminal_command(folder):
    """The shell command of the terminals: bash reading ``folder``'s
    ``terminal.bashrc`` (which it writes), or a plain ``sh`` without
    bash. Either way not a login shell, so PATH is kept."""
    folder = Path(folder).resolve()
    bash = shutil.which("bash")
    if bash is None:
        return [shutil.which("sh") or "/bin/sh"]
    # The folder of this interpreter, as started (not resolved: a venv's
    # python is a link to the system's).
    bin_dir = os.path.abspath(os.path.dirname(sys.executable))
    rc = folder / "terminal.bashrc"
    rc.write_text(TERMINAL_RC.format(bin=_shell_quote(bin_dir)))
    return [bash, "--rcfile", str(rc), "-i"]


def write_lab_config(folder, course_root=None):
    """JupyterLab settings for self-study in ``folder`` (a config folder
    to put on ``JUPYTER_CONFIG_PATH``). With ``course_root``, also an
    ``nbgrader_config.py`` there that names it as nbgrader's course root
    (for a server started outside a course folder, ``make lab``)."""
    folder = Path(folder).resolve()
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    (folder / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {name: True for name in HIDDEN_PLUGINS}},
        indent=1))
    settings = {
        "LabApp": {"news_url": None,
                   "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                   # the open tabs and layout of this JupyterLab only
                   "workspaces_dir": str(folder / "workspaces")},
        "ServerApp": {"terminado_settings": {
            "shell_command": terminal_command(folder)}}}
    (folder / "jupyter_server_config.json").write_text(
        json.dumps(settings, indent=1))
    if course_root is not None:
        (folder / "nbgrader_config.py").write_text(
            "# Written by exercises/study.py for a JupyterLab outside the "
            "course folder.\nc = get_config()  # noqa: F821\n"
            f"c.CourseDirectory.root = {str(Path(course_root).resolve())!r}\n")
    return folder


def release_all(dest, names):
    """Generate the student version of each assignment in ``names`` in a
    temporary copy of the course and copy it to ``dest/<name>``."""
    demo = _demo()
    with tempfile.TemporaryDirectory() as tmp:
        course = demo.copy_course(Path(tmp) / "course")
        for name in names:
            demo.nbgrader(course, "generate_assignment", name, "--force")
            shutil.copytree(course / "release" / name, Path(dest) / name)


def prepare(dest=DEFAULT_DIR):
    """Fill ``dest`` (see the module's docstring); returns
    ``{"chapters": [names copied], "exercises": [paths copied, relative
    to dest/exercises]}``."""
    dest = Path(dest)
    copied = {"chapters": [], "exercises": []}
    chapters = dest / "chapters"
    chapters.mkdir(parents=True, exist_ok=True)
    for path in sorted((REPO / "chapters").glob("*.ipynb")):
        if not (chapters / path.name).exists():
            shutil.copy2(path, chapters / path.name)
            copied["chapters"].append(path.name)
    exercises = dest / "exercises"
    missing = [name for name in assignments()
               if not (exercises / name).exists()]
    if missing:
        exercises.mkdir(parents=True, exist_ok=True)
        release_all(exercises, missing)
        copied["exercises"] = sorted(
            f"{name}/{p.name}" for name in missing
            for p in (exercises / name).iterdir())
    # The course's settings, so that Validate checks as the course does
    # (and nbgrader does not warn that it found no config).
    if not (dest / "nbgrader_config.py").exists():
        shutil.copy2(HERE / "nbgrader_config.py", dest / "nbgrader_config.py")
    write_lab_config(dest / ".jupyter")
    return copied


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--lab-config"]:      # only the settings (make lab)
        if len(argv) not in (2, 3):
            print("usage: study.py --lab-config CONFIG_DIR [NOTEBOOK_ROOT]",
                  file=sys.stderr)
            return 2
        print(write_lab_config(*argv[1:]))
        return 0
    dest = Path(argv[0]) if argv else DEFAULT_DIR
    copied = prepare(dest)
    new = copied["chapters"] + copied["exercises"]
    print(f"self-study folder: {dest}" +
          (f" ({len(new)} new files)" if new else " (your files are kept)"))
    print("test an answer: save the notebook, then run "
          "`autograde check exercises/layers_and_blocks/ex1_sequential.ipynb` "
          "in a terminal (File > New > Terminal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
