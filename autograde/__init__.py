"""autograde: a parallel, sandboxed grader for nbgrader courses.

Student code runs in a separate, unprivileged, resource-limited process;
the hidden tests run here, in the trusted grader, against handles on the
student's objects, and every verdict is computed here from plain data.
See ``autograde/README.md`` for instructors and ``python -m autograde
--help`` for the commands.
"""

__version__ = "0.1.0"
