"""The student process's program: ``python -I -S boot.py FD CONF``.

The grader starts it (inside bwrap, see ``sandbox``) with the channel
socket ``FD`` and its configuration ``CONF`` (JSON). Before any student
code runs it: closes every other descriptor it inherited; switches to
the sandbox uid where it is given one (root mode: it has just the
capabilities for that, and loses them by switching); makes its working
folder; puts the grader's readable import paths on ``sys.path`` and
loads the grader's own copies of autograde and d2lblocks from their
folders (so neither the repository nor the grader's working folder is
on the path, and no virtualenv is needed); imports NumPy and d2lblocks;
limits the size of files it may write; and points stdin, stdout and
stderr at /dev/null. Then it serves the grader (``student.py``).
"""

import importlib.machinery
import importlib.util
import json
import os
import resource
import socket
import sys


def _switch(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _load(name, folder):
    """Import the package ``name`` from ``folder`` (whatever sys.path says)."""
    spec = importlib.machinery.PathFinder.find_spec(name, [os.path.dirname(folder)])
    if spec is None or os.path.dirname(spec.origin) != folder:
        raise ImportError(f"{name} is not in {folder}")
    sys.modules[name] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


def main(fd, conf):
    # bwrap's own descriptors (or anything else inherited) never reach
    # student code.
    os.closerange(3, fd)
    os.closerange(fd + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    uid = conf.get("uid")
    if uid is not None and conf["sandboxed"]:
        _switch(uid)
    if conf["sandboxed"]:
        os.mkdir(conf["work"], 0o700)
    os.chdir(conf["work"])
    sys.path.extend(p for p in conf["path"] if p not in sys.path)
    for name, folder in conf["packages"].items():
        _load(name, folder)
    import numpy  # noqa: F401  (imported before any student code)
    import d2lblocks  # noqa: F401
    from autograde.inside import student
    if uid is not None and not conf["sandboxed"]:
        # Without a sandbox the interpreter's files may lie where only
        # the grader can read them: switch once they are loaded.
        _switch(uid)
    limit = conf["file_bytes"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1) if os.environ.get("AUTOGRADE_DEBUG") else (0, 1, 2):
        os.dup2(null, target)
    os.close(null)
    student.serve(socket.socket(fileno=fd))


if __name__ == "__main__":
    main(int(sys.argv[1]), json.loads(sys.argv[2]))
