"""The zygote program, run by the grader as ``python -P boot.py FD CONF``.

It keeps only the import paths a student may read, loads the grader's
own copies of autograde and d2lblocks from their folders (so neither the
repository nor the grader's working directory is on the path), and
serves fork requests on the socket ``FD``. It dies with the grading
process that started it.
"""

import ctypes, importlib.util, json, os, sys
conf = json.loads(sys.argv[2])
# Die with the grading process that started this one (SIGKILL on its end,
# however it ends), and not at all if it is already gone.
ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)      # PR_SET_PDEATHSIG, SIGKILL
if os.getppid() != conf.get("parent", os.getppid()):
    os._exit(1)
def _allowed(entry):
    if not entry:
        return False
    real = os.path.realpath(entry)
    return not os.path.isdir(real) or any(
        real == r or real.startswith(r.rstrip("/") + "/") for r in conf["readable"])
sys.path[:] = [p for p in sys.path if _allowed(p)]
for name, folder in conf["packages"].items():
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(folder, "__init__.py"),
        submodule_search_locations=[folder])
    sys.modules[name] = module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
from autograde.inside.zygote import zygote_main
zygote_main(int(sys.argv[1]))
