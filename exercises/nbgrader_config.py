"""nbgrader configuration of the d2lblocks course (nbgrader 0.9.x).

Run every ``nbgrader`` command from this folder (or a copy of it): the
course root is the current directory, so no machine path is written here.
Each setting below works around a known trap of stock nbgrader.
"""

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

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

# The feedback HTML would otherwise show the hidden tests verbatim.
c.GenerateFeedback.preprocessors = [
    GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]
