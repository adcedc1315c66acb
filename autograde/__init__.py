"""autograde: a parallel, sandboxed grader for nbgrader courses.

Student code runs in a separate, unprivileged, resource-limited process;
the hidden tests run here, in the trusted grader, against handles on the
student's objects, and every verdict is computed here from plain data.
See ``autograde/README.md`` for instructors and ``python -m autograde
--help`` for the commands.
"""

__version__ = "0.1.0"

import sys

# nbformat imports jsonschema, and jsonschema imports rfc3987-syntax where
# it is installed (jupyter-events asks for it), which builds an Earley
# parser as it is imported: about a second of CPU for every grader
# process, Dask worker and command, spent on a checker of the "iri"
# string formats that no notebook schema uses. Marked missing here,
# jsonschema goes on without that one checker (jsonschema issue 1428).
sys.modules.setdefault("rfc3987_syntax", None)
