"""What runs as the student: the zygote and the student process.

No module of the grader imports this package (a test checks it); the
grader starts ``boot.py`` as a program and talks to it through sockets,
in the format of ``autograde.codec``. The student's code can patch
everything here, so the grader trusts none of it.
"""
