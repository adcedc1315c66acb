"""A student's own folder: the chapters and the released exercises.

``python exercises/study.py [DIR]`` (``make study``, DIR defaults to
``build/study``) fills DIR with

* ``chapters/``: the chapter notebooks;
* ``exercises/layers_and_blocks/``: the student version of the exercises,
  made by ``nbgrader generate_assignment`` in a temporary copy of the
  course (no solutions, no hidden tests, no ``source/``);
* ``nbgrader_config.py``: the course's settings, used by Validate;
* ``.jupyter/``: JupyterLab settings for a student working alone: no news
  toast, and none of nbgrader's panels that need an instructor or an
  exchange (Assignment List, Courses, Formgrader, Create Assignment); the
  Validate button stays.

Files already in DIR are kept, so a student's answers survive a second
run; delete DIR to start over. ``make study`` then starts JupyterLab in
DIR with these settings. ``study.py --lab-config DIR`` writes only the
settings (``make lab`` uses them too).
"""

import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
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


def _demo():
    spec = importlib.util.spec_from_file_location(
        "instructor_demo", HERE / "instructor_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_lab_config(folder):
    """JupyterLab settings for self-study in ``folder`` (a config folder
    to put on ``JUPYTER_CONFIG_PATH``)."""
    folder = Path(folder)
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    (folder / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {name: True for name in HIDDEN_PLUGINS}},
        indent=1))
    (folder / "jupyter_server_config.json").write_text(json.dumps(
        {"LabApp": {"news_url": None,
                    "check_for_updates_class":
                        "jupyterlab.NeverCheckForUpdate"}}, indent=1))
    return folder


def prepare(dest=DEFAULT_DIR):
    """Fill ``dest`` (see the module's docstring); returns
    ``{"chapters": [names copied], "exercises": [names copied]}``."""
    dest = Path(dest)
    copied = {"chapters": [], "exercises": []}
    chapters = dest / "chapters"
    chapters.mkdir(parents=True, exist_ok=True)
    for path in sorted((REPO / "chapters").glob("*.ipynb")):
        if not (chapters / path.name).exists():
            shutil.copy2(path, chapters / path.name)
            copied["chapters"].append(path.name)
    demo = _demo()
    work = dest / "exercises" / demo.ASSIGNMENT
    if not work.exists():
        with tempfile.TemporaryDirectory() as tmp:
            course = demo.copy_course(Path(tmp) / "course")
            demo.release(course)
            shutil.copytree(course / "release" / demo.ASSIGNMENT, work)
        copied["exercises"] = sorted(p.name for p in work.iterdir())
    # The course's settings, so that Validate checks as the course does
    # (and nbgrader does not warn that it found no config).
    if not (dest / "nbgrader_config.py").exists():
        shutil.copy2(HERE / "nbgrader_config.py", dest / "nbgrader_config.py")
    write_lab_config(dest / ".jupyter")
    return copied


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--lab-config"]:      # only the settings (make lab)
        print(write_lab_config(argv[1]))
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
