"""nbgrader configuration of the d2lblocks course (nbgrader 0.9.x).

Run every ``nbgrader`` command from this folder (or a copy of it): the
course root is the current directory, so no machine path is written here.
Each setting below works around a known trap of stock nbgrader.
"""

import re

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor, Preprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades
from traitlets import Bool, List


class HideTestTracebacks(Preprocessor):
    """Drop the test cell's own frames from its error tracebacks.

    IPython prints a few source lines around the failing line, so a test
    that fails inside ``### BEGIN HIDDEN TESTS`` would show hidden lines
    in the feedback even after ``ClearHiddenTests``. The exception type
    and message stay, and so do frames of the student's own code.
    """

    enabled = Bool(True)
    _ansi = re.compile(r"\x1b\[[0-9;]*m")
    _region = re.compile(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS",
                         re.S)

    def preprocess_cell(self, cell, resources, index):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("grade"):
            return cell, resources
        hidden = [line.strip() for block in self._region.findall(cell.source)
                  for line in block.splitlines() if len(line.strip()) >= 8]
        own_frame = f"In[{cell.execution_count}]"
        for output in cell.outputs:
            if output.output_type != "error":
                continue
            kept = []
            for entry in output.traceback:
                plain = self._ansi.sub("", entry)
                if own_frame in plain or "HIDDEN TESTS" in plain or \
                        any(line in plain for line in hidden):
                    continue
                kept.append(entry)
            if len(kept) != len(output.traceback):
                kept.insert(len(kept) - 1 if kept else 0,
                            "(the lines of the test cell are not shown)")
            output.traceback = kept
        return cell, resources


class ClearHiddenTestsQuietly(ClearHiddenTests):
    """nbgrader's ClearHiddenTests, minus a warning on every feedback run.

    nbconvert's HTML exporter sets ``display_data_priority`` for all its
    preprocessors; nbgrader declares that trait on its own preprocessors
    without making it configurable, so traitlets warns "Config option
    `display_data_priority` not recognized by `ClearHiddenTests`".
    Declaring it configurable here silences that; nothing else changes.
    """

    display_data_priority = List(
        ClearHiddenTests.display_data_priority.default_value).tag(config=True)


# The assignments in course order, one per section of the book's chapter
# on builders' tools. nbgrader 0.9 has no setting for this list (the old
# ``NbGrader.db_assignments`` went away in 0.6): formgrader shows every
# folder of ``source/``, sorted by due date and then by name.
# ``instructor_demo.py`` and the tests read this list, and a test checks
# that it names every folder of ``source/``.
COURSE_ORDER = [
    "layers_and_blocks",
    "parameter_management",
    "parameter_initialization",
    "lazy_initialization",
    "custom_layers",
    "file_io",
    "devices",
]

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "d2lblocks"

# The default of 30 s per cell turns one infinite loop into minutes of
# grading; every test cell here finishes in well under a second.
c.Execute.timeout = 15

# Any stderr output in a test cell counts as a failure, so a warning from a
# library (numpy, d2lblocks) would give 0 points to a correct answer.
# Remove stderr outputs that contain a Python warning line such as
# "/path/file.py:12: DeprecationWarning: ..."; errors are separate outputs
# and still fail the cell.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"(?m)^.*:\d+: \w*Warning: "

# A deleted or metadata-stripped test cell is put back (with its hidden
# tests) instead of silently turning into "needs manual grading".
c.OverwriteCells.add_missing_cells = True

# The feedback HTML would otherwise show the hidden tests verbatim, in
# the cells and in the tracebacks of failed tests.
c.GenerateFeedback.preprocessors = [
    GetGrades, HideTestTracebacks, ClearHiddenTestsQuietly,
    CSSHTMLHeaderPreprocessor]
