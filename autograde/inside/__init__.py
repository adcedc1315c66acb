"""What runs as the student: the student process.

No module of the grader imports this package (a test checks it); the
grader starts ``boot.py`` as a program (inside bwrap) and talks to it
through a socket, in the format of ``autograde.codec``. The student's
code can patch everything here, so the grader trusts none of it.
"""
