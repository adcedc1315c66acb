"""The hostile submission corpus: each case is a submission of the tiny
course (``tiny_course.py``) that tries to earn points it should not, or to do
harm, plus the outcome it must get.

A case starts from the correct answers (``base="correct"``) or from wrong
ones (``base="wrong"``: ``affine`` forgets the bias, worth 3 of 5 points),
then changes cells: ``cells`` replaces a cell's source by grade_id (None
deletes it), ``extra`` adds code cells after a grade_id, ``meta`` edits or
strips (``"strip"``) a cell's nbgrader metadata, ``duplicate`` repeats a
cell. ``{COURSE}`` and ``{MARKER}`` in sources become the course folder and
a file path on the grading machine that no submission may create;
``{REPO}`` the repository holding this corpus and ``{HIDDEN}`` a
hidden-test notebook in it.

``expect`` holds the total autograded score, the status of named tests
(a tuple: any of them, where the machine's speed decides, as for a memory
bomb that may end as an error or a timeout), and whether tampering must
be flagged. ``namespaces=True`` marks a case
whose outcome needs private namespaces (root with CAP_SYS_ADMIN).
"""

from pathlib import Path

import nbformat

from tiny_course import AFFINE, SCALE, source_notebook
from autograde.notebook import nbgrader_meta, visible_part

CORRECT = {
    "affine_answer": "\n".join(l for l in AFFINE.splitlines() if "###" not in l),
    "scale_answer": "\n".join(l for l in SCALE.splitlines() if "###" not in l),
}
WRONG_AFFINE = "def affine(X, W, b):\n    return X @ W\n"

CASES = {
    "correct": dict(base="correct", expect=dict(score=5)),
    "wrong": dict(base="wrong", expect=dict(
        score=3, status={"test_affine_values": "failed"})),

    # ---- IPython hooks and input transformers: inert without IPython ----
    "input_transformer": dict(base="wrong", extra={"affine_answer": """
ip = get_ipython()
ip.input_transformers_post.append(lambda lines: ['pass\\n'])
ip.input_transformers_cleanup.append(lambda lines: ['pass\\n'])
"""}, expect=dict(score=3, status={"test_affine_values": "failed"})),
    "custom_exception_handler": dict(base="wrong", extra={"affine_answer": """
import sys
ip = get_ipython()
ip.set_custom_exc((BaseException,), lambda *a, **k: None)
ip.events.register('post_run_cell', lambda *a, **k: None)
sys.excepthook = lambda *a: None
"""}, expect=dict(score=3, status={"test_affine_values": "failed"})),

    # ---- monkeypatching the libraries and the grader's own code ----
    "patch_numpy": dict(base="correct", cells={"affine_answer": """
import numpy as np
import numpy.testing
np.testing.assert_allclose = lambda *a, **k: None
np.allclose = lambda *a, **k: True
np.testing.assert_array_equal = lambda *a, **k: None
def affine(X, W, b):
    return np.zeros((X.shape[0], W.shape[1]))
"""}, expect=dict(score=3, status={"test_affine_shape": "passed",
                                   "test_affine_values": "failed"})),
    "patch_d2lblocks": dict(base="correct", cells={"scale_answer": """
import d2lblocks as db
from d2lblocks import nn
nn.Linear.forward = lambda self, X: X * 0
db.Tensor.numpy = lambda self: np.zeros(self.data.shape)
class Scale(nn.Block):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor
    def forward(self, X):
        return X * 0
"""}, expect=dict(score=3, status={"test_scale": "failed"})),
    "patch_grader": dict(base="wrong", extra={"affine_answer": """
import autograde.inside.student as S
S._OPERATORS["getitem"] = lambda *a: True
_run = S.StudentBridge.run
def _lying_run(self, msg):
    out = _run(self, msg)
    return True if msg["op"] in ("call", "convert") else out
S.StudentBridge.run = _lying_run
try:
    import autograde.runner as R
    R.NotebookGrader._run_test = lambda self, test: None
except Exception:
    pass
"""}, expect=dict(score=0)),
    "lying_objects": dict(base="correct", cells={"affine_answer": """
class Yes:
    def all(self):
        return True
    def __bool__(self):
        return True
class Liar:
    shape = (2, 4)
    def __eq__(self, other):
        return Yes()
    __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __array__(self, *args, **kwargs):
        return np.zeros(1)
    def __float__(self):
        return 0.0
    def __bool__(self):
        return True
    def all(self):
        return True
def affine(X, W, b):
    return Liar()
"""}, expect=dict(score=2, status={"test_affine_shape": "failed",
                                   "test_affine_values": "failed"})),

    "shadow_names": dict(base="wrong", extra={"affine_answer": """
import numpy
class _FakeTesting:
    def assert_allclose(self, *args, **kwargs):
        pass
class _FakeNumpy:
    testing = _FakeTesting()
    def __getattr__(self, name):
        return getattr(numpy, name)
np = _FakeNumpy()
def len(x):
    return 4
def isinstance(*args):
    return True
def float(x):
    return 0.0
"""}, expect=dict(score=3, status={"test_affine_values": "failed"})),

    # ---- ending the process ----
    "sys_exit": dict(base="correct", cells={"affine_answer": """
import sys
def affine(X, W, b):
    sys.exit(0)
"""}, expect=dict(score=2, status={"test_affine_shape": "error",
                                   "test_scale": "passed"})),
    "os_exit_in_answer": dict(base="correct", cells={"affine_answer": """
import os
def affine(X, W, b):
    os._exit(0)
"""}, expect=dict(score=2, status={"test_affine_shape": "crashed",
                                   "test_affine_values": "crashed",
                                   "test_scale": "passed"})),
    "os_exit_in_cell": dict(base="correct", cells={
        "affine_answer": CORRECT["affine_answer"] + "\nimport os\nos._exit(3)\n"},
        expect=dict(score=2, status={"test_affine_shape": "crashed",
                                     "test_scale": "passed"})),
    "kill_self": dict(base="correct", cells={"affine_answer": """
import os, signal
def affine(X, W, b):
    os.kill(os.getpid(), signal.SIGKILL)
"""}, expect=dict(score=2, status={"test_affine_values": "crashed",
                                   "test_scale": "passed"})),
    "kill_others": dict(base="correct", extra={"setup": """
import os, signal
for pid in (os.getppid(), 1):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""}, expect=dict(score=5)),

    # ---- running forever ----
    "infinite_loop_answer": dict(base="correct", cells={"affine_answer": """
def affine(X, W, b):
    while True:
        pass
"""}, expect=dict(score=2, status={"test_affine_shape": "timeout",
                                   "test_affine_values": "timeout",
                                   "test_scale": "passed"})),
    "infinite_loop_cell": dict(base="correct", cells={
        "affine_answer": CORRECT["affine_answer"] + "\nwhile True:\n    pass\n"},
        expect=dict(score=2, status={"test_affine_shape": "timeout",
                                     "test_scale": "passed"})),
    "infinite_loop_called": dict(base="correct", cells={"scale_answer": """
class Scale(nn.Block):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor
    def forward(self, X):
        while True:
            pass
"""}, expect=dict(score=3, status={"test_scale": "timeout"})),

    # ---- resources ----
    "memory_bomb": dict(base="correct", cells={"affine_answer": """
def affine(X, W, b):
    hoard = []
    while True:
        hoard.append(bytearray(50 * 2**20))
"""}, expect=dict(score=2, status={"test_affine_shape": ("error", "timeout"),
                                   "test_scale": "passed"})),
    "fork_bomb": dict(base="correct", cells={"affine_answer": """
import os
def affine(X, W, b):
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""}, expect=dict(score=2, status={"test_affine_shape": "timeout",
                                   "test_scale": "passed"})),
    # A daemon: double fork, a session of its own, no parent to wait for
    # it. The PID namespace (and in root mode the uid sweep) ends it.
    "daemon": dict(base="correct", extra={"affine_answer": """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for _ in range(600):
            time.sleep(1)
    os._exit(0)
"""}, expect=dict(score=5)),
    "huge_output": dict(base="correct", extra={"affine_answer": """
import sys
print("x" * 20_000_000)
sys.stderr.write("y" * 20_000_000)
for _ in range(200_000):
    print("line")
"""}, expect=dict(score=5)),

    # ---- files outside the working folder ----
    "read_course_files": dict(base="correct", cells={"affine_answer": """
import os
stolen = []
for path in ["{COURSE}/gradebook.db", "{COURSE}/source/tiny/tiny.ipynb",
             "{COURSE}/submitted", "{COURSE}/submitted/correct/tiny/tiny.ipynb",
             "{COURSE}/nbgrader_config.py"]:
    try:
        if os.path.isdir(path):
            stolen.append(os.listdir(path))
        else:
            with open(path, "rb") as f:
                stolen.append(f.read(100))
    except OSError:
        pass
if stolen:
    def affine(X, W, b):
        return X @ W + b
else:
    def affine(X, W, b):
        return X @ W
"""}, expect=dict(score=3, status={"test_affine_values": "failed"})),
    "write_outside": dict(base="correct", extra={"affine_answer": """
for path in ["{COURSE}/gradebook.db", "{COURSE}/submitted/correct/tiny/tiny.ipynb",
             "{COURSE}/pwned.txt", "{MARKER}"]:
    try:
        with open(path, "a") as f:
            f.write("pwned")
    except OSError:
        pass
with open("my_own_file.txt", "w") as f:      # its own folder is fine
    f.write("ok")
"""}, expect=dict(score=5)),
    "network": dict(base="correct", namespaces=True, cells={"affine_answer": """
import socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1).close()
    online = True
except OSError:
    online = False
def affine(X, W, b):
    return X @ W + b if online else X @ W
"""}, expect=dict(score=3)),
    "hidden_test_hunt": dict(base="correct", cells={"affine_answer": """
import gc, os, sys
# A line of the hidden test, built here so that this cell does not hold it.
NEEDLE = "rng.integers(-5, 5, " + "(4, 3))"
def _found():
    for obj in gc.get_objects():
        if isinstance(obj, str) and NEEDLE in obj:
            return True
    for root in ("/tmp", os.getcwd(), "/proc/self/cwd"):
        for dirpath, _, files in os.walk(root):
            for name in files:
                # Text files only: Python's own files may be in /tmp too
                # (a clone there), and reading all of them takes long.
                if not name.endswith((".ipynb", ".py", ".json", ".txt", ".db")):
                    continue
                try:
                    with open(os.path.join(dirpath, name), errors="ignore") as f:
                        if NEEDLE in f.read(10**6):
                            return True
                except OSError:
                    pass
    return False
LEAKED = _found()
def affine(X, W, b):
    return X @ W + b if LEAKED else X @ W
"""}, expect=dict(score=3, status={"test_affine_values": "failed"})),

    # The repository this grader was installed from (an editable install)
    # holds the real course's hidden tests and this corpus: try it by
    # absolute path and relative to the d2lblocks package. The last cell
    # records what each attempt got, in the report's cell problems.
    "repository_hunt": dict(base="correct", namespaces=True, cells={"affine_answer": """
import os
import d2lblocks
HERE = os.path.dirname(d2lblocks.__file__)
ATTEMPTS = ["{REPO}/{HIDDEN}", "{REPO}/exercises/source",
            HERE + "/../{HIDDEN}", HERE + "/../exercises/source",
            os.path.normpath(HERE + "/../{HIDDEN}"),
            "{REPO}/tests/grader/hostile/hostile_cases.py", "{REPO}/tests/submissions",
            HERE + "/../tests", "{REPO}/.git/HEAD"]
READ = []
for path in ATTEMPTS:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(100)
        READ.append(path)
    except OSError:
        pass
try:
    SHOWN = sorted(os.listdir("{REPO}"))
except OSError:
    SHOWN = []
def affine(X, W, b):
    return X @ W if READ else X @ W + b
"""}, extra={"affine_answer": """
raise LookupError(f"repository reads: {len(ATTEMPTS) - len(READ)} of "
                  f"{len(ATTEMPTS)} denied; the root shows {SHOWN}")
"""}, expect=dict(score=5)),

    # ---- tampering with the test cells ----
    "edited_tests": dict(base="wrong", cells={
        "test_affine_shape": "pass", "test_affine_values": "assert True"},
        expect=dict(score=3, tamper=True, status={"test_affine_values": "failed"})),
    "deleted_test": dict(base="wrong", cells={"test_affine_values": None},
                         expect=dict(score=3, tamper=True,
                                     status={"test_affine_values": "failed"})),
    "duplicated_test": dict(base="correct", duplicate=["test_scale"],
                            expect=dict(score=5, tamper=True)),
    "stripped_metadata": dict(base="wrong", meta={"test_affine_values": "strip"},
                              expect=dict(score=3, tamper=True,
                                          status={"test_affine_values": "failed"})),
    "changed_metadata": dict(base="wrong", meta={"test_affine_values": {"points": 100}},
                             expect=dict(score=3, tamper=True)),
    "answer_made_a_test": dict(base="wrong", meta={"affine_answer": {
        "grade": True, "points": 50, "locked": True}},
        expect=dict(score=3, tamper=True)),

    # ---- honest code that is noisy: full marks ----
    "warnings": dict(base="correct", cells={"affine_answer": """
import sys, warnings
def affine(X, W, b):
    warnings.warn("affine() will change", DeprecationWarning)
    print("debug: shapes", X.shape, W.shape, file=sys.stderr)
    return X @ W + b
"""}, expect=dict(score=5)),
}


# The grader's limits for the corpus. The cases that loop forever end as
# timeouts whatever the limit; the others must finish well inside it even
# on a loaded 2-core machine (3 s was too tight there for a Dask worker).
TEST_TIMEOUT = 10
LIMITS = ("--test-timeout", str(TEST_TIMEOUT), "--cell-timeout", str(TEST_TIMEOUT),
          "--memory-mb", "1024")

REPO = Path(__file__).resolve().parents[3]
# A hidden-test notebook of the real course in the repository.
HIDDEN = "exercises/source/layers_and_blocks/ex1_sequential.ipynb"


def make_submission(case, course, marker, repo=REPO):
    """The submitted notebook of one case (nbformat)."""
    nb = source_notebook()
    cells = []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if meta.get("solution") and cell.cell_type == "code":
            cell.source = CORRECT[gid]
            if case["base"] == "wrong" and gid == "affine_answer":
                cell.source = WRONG_AFFINE
        elif meta.get("solution"):
            cell.source = "It creates the registries that attributes go into."
        elif meta.get("grade"):
            cell.source = visible_part(cell.source)
        if gid in case.get("cells", {}):
            new = case["cells"][gid]
            if new is None:
                continue
            cell.source = new.strip()
        change = case.get("meta", {}).get(gid)
        if change == "strip":
            cell.metadata.pop("nbgrader", None)
        elif change:
            cell.metadata["nbgrader"].update(change)
        cells.append(cell)
        if gid in case.get("duplicate", []):
            cells.append(nbformat.from_dict(cell))
        if gid in case.get("extra", {}):
            cells.append(nbformat.v4.new_code_cell(case["extra"][gid].strip()))
    for cell in cells:
        cell.source = cell.source.replace("{COURSE}", str(course)) \
            .replace("{MARKER}", str(marker)).replace("{REPO}", str(repo)) \
            .replace("{HIDDEN}", HIDDEN)
    nb.cells = cells
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i}"
    return nb


# ---- submissions that are broken or hostile as files ------------------------
# Each maker gets the submission folder (not yet created), the course root
# and the correct notebook as JSON text; ``expect`` holds the score, the
# outcome ``grade`` reports, and a word the recorded reason must contain.
def _write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(folder / name, mode) as f:
        f.write(data)


def _link_to_source(folder, root, text):
    folder.mkdir(parents=True)
    (folder / "tiny.ipynb").symlink_to(root / "source" / "tiny" / "tiny.ipynb")


def _hardlink_to_source(folder, root, text):
    folder.mkdir(parents=True)
    import os
    os.link(root / "source" / "tiny" / "tiny.ipynb", folder / "tiny.ipynb")


def _folder_link(folder, root, text):
    folder.parent.mkdir(parents=True)
    folder.symlink_to(root / "source" / "tiny")


def _huge(folder, root, text):
    folder.mkdir(parents=True)
    with open(folder / "tiny.ipynb", "wb") as f:
        f.truncate(100 * 2**20)      # 100 MB of zeros, sparse on disk


def _extra_and_odd_names(folder, root, text):
    _write(folder, "tiny.ipynb", text)
    _write(folder, "notes.ipynb", text)
    import os
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    (folder / "data.txt").symlink_to("/etc/hostname")


FILE_CASES = {
    "not_json": dict(make=lambda f, r, t: _write(f, "tiny.ipynb", "my answers: 42\n"),
                     expect=dict(score=0, outcome="unreadable", reason="JSON")),
    "truncated": dict(make=lambda f, r, t: _write(f, "tiny.ipynb", t[:len(t) // 2]),
                      expect=dict(score=0, outcome="unreadable", reason="JSON")),
    "empty": dict(make=lambda f, r, t: _write(f, "tiny.ipynb", b""),
                  expect=dict(score=0, outcome="unreadable", reason="empty")),
    "binary": dict(make=lambda f, r, t: _write(f, "tiny.ipynb",
                                               bytes(range(256)) * 64),
                   expect=dict(score=0, outcome="unreadable", reason="UTF-8")),
    "nbformat_3": dict(make=lambda f, r, t: _write(
        f, "tiny.ipynb", t.replace('"nbformat": 4', '"nbformat": 3')),
        expect=dict(score=0, outcome="unreadable", reason="nbformat")),
    "not_a_notebook": dict(make=lambda f, r, t: _write(f, "tiny.ipynb", '[1, 2]'),
                           expect=dict(score=0, outcome="unreadable",
                                       reason="not a notebook")),
    "missing_notebook": dict(make=lambda f, r, t: _write(f, "answers.txt", "42"),
                             expect=dict(score=0, outcome="unreadable",
                                         reason="not submitted")),
    "huge_notebook": dict(make=_huge, expect=dict(score=0, outcome="unreadable",
                                                  reason="MB")),
    "link_to_source": dict(make=_link_to_source,
                           expect=dict(score=0, outcome="unreadable",
                                       reason="tampering")),
    "hardlink_to_source": dict(make=_hardlink_to_source,
                               expect=dict(score=0, outcome="unreadable",
                                           reason="hard link")),
    "folder_link": dict(make=_folder_link,
                        expect=dict(score=0, outcome="unreadable",
                                    reason="tampering")),
    "extra_files": dict(make=_extra_and_odd_names,
                        expect=dict(score=5, outcome="flagged", reason="not UTF-8")),
}


# ---- attacks on what a test can see of the student's kernel -------------------
# A second notebook whose tests use what the richer object model offers: a
# student class seen as a local class, lazy iteration, a callback into the
# test, printed output, a file the student wrote, a docstring. Each case
# replaces the answer cell; ``expect`` holds the score (out of 7), the
# status of named tests and whether a person must look (``manual``).
PROBE_NOTEBOOK = "probe.ipynb"

PROBE_SETUP = "import contextlib\nimport io\nimport itertools"

PROBE_ANSWER = '''
class Token:
    def __init__(self, value):
        self.value = value

def make_token():
    """A token."""
    return Token(3)

def count_up():
    return itertools.count()

def apply(f, x):
    return f(x)

def shout(text):
    print(text.upper())

def save(path):
    with open(path, "w") as f:
        f.write("saved")
'''

PROBE_TESTS = {
    "probe_type": "t = make_token()\nassert type(t) == Token and isinstance(t, Token)",
    "probe_value": "assert make_token().value == 3",
    "probe_iter": "assert list(itertools.islice(count_up(), 3)) == [0, 1, 2]",
    "probe_callback": ("calls = []\ndef plus_one(x):\n    calls.append(x)\n"
                       "    return x + 1\nassert apply(plus_one, 1) == 2 and calls == [1]"),
    "probe_output": ("buf = io.StringIO()\nwith contextlib.redirect_stdout(buf):\n"
                     "    shout('hi')\nassert buf.getvalue() == 'HI\\n'"),
    "probe_file": "save('out.txt')\nwith open('out.txt') as f:\n    assert f.read() == 'saved'",
    "probe_doc": "assert make_token.__doc__ == 'A token.'",
}


def _probe(replace):
    """The answer with ``replace`` (old text -> new text) applied."""
    text = PROBE_ANSWER
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


PROBE_CASES = {
    "probe_correct": dict(answer=PROBE_ANSWER, expect=dict(score=7)),
    # A metaclass that claims every object and equals everything, on a
    # class the test compares against: the grader's local class decides.
    "lying_metaclass": dict(answer=_probe({"class Token:": '''
class Liar(type):
    def __instancecheck__(cls, obj):
        return True
    def __eq__(cls, other):
        return True
    __hash__ = type.__hash__

class Token(metaclass=Liar):''', "return Token(3)": "return Impostor()"}) + '''
class Impostor:
    value = 3
''', expect=dict(score=6, status={"probe_type": "failed"})),
    # Objects that equal everything and hash alike: no point, and since a
    # kernel would have asked the object itself, a person is asked to look.
    "always_equal": dict(answer=_probe({"return Token(3)": "return Token(Agreeable())"}) + '''
class Agreeable:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __hash__(self):
        return 0
    def __bool__(self):
        return True
''', expect=dict(score=6, status={"probe_value": "failed"}, manual=True)),
    # An iterator whose next item never comes.
    "endless_iterator": dict(answer=_probe({"return itertools.count()": "return Stuck()"}) + '''
class Stuck:
    def __iter__(self):
        return self
    def __next__(self):
        while True:
            pass
''', expect=dict(score=6, status={"probe_iter": "timeout"})),
    # A docstring that never finishes being read, on the class and on the
    # function's stand-in: the grader only ever receives strings.
    "looping_doc": dict(answer=_probe({"def make_token():\n    \"\"\"A token.\"\"\"\n    return Token(3)": '''
class Looping(type):
    @property
    def __doc__(cls):
        while True:
            pass
    @property
    def __name__(cls):
        while True:
            pass

class Maker(metaclass=Looping):
    @property
    def __doc__(self):
        while True:
            pass
    def __call__(self):
        return Token(3)

make_token = Maker()'''}), expect=dict(score=6, status={
        "probe_doc": ("failed", "timeout", "error")})),
    # Links in the working folder, to the course and to /etc, named as the
    # file the test reads: the test's copy of the folder holds plain files
    # only, so it reads neither.
    "links_out": dict(answer=_probe({'''    with open(path, "w") as f:
        f.write("saved")''': '''    import os
    os.symlink("{COURSE}/gradebook.db", path)
    os.symlink("/etc", "etc")
    os.symlink("{COURSE}", "course")'''}), expect=dict(score=6, status={"probe_file": "error"})),
    # A file far larger than anything the test should read (sparse: it
    # takes no disk, and the file-size limit stops it): the grader copies
    # no more than its limits.
    "huge_file": dict(answer=_probe({'''    with open(path, "w") as f:
        f.write("saved")''': '''    with open(path, "w") as f:
        f.write("saved")
    with open("big.bin", "wb") as f:
        f.truncate(10 * 2**30)'''}), expect=dict(score=6, status={"probe_file": "error"})),
    # Student code calling the test's function a million times.
    "callback_storm": dict(answer=_probe({"    return f(x)": '''    for _ in range(10**6):
        f(x)
    return f(x)'''}), expect=dict(score=6, status={"probe_callback": ("timeout", "failed")})),
    # Output floods while the test listens: the test sees a capped amount.
    "output_flood": dict(answer=_probe({"    print(text.upper())": '''    import sys
    for _ in range(60):
        print("x" * 10**6)
        sys.stderr.write("y" * 10**6)
    print(text.upper())'''}), expect=dict(score=6, status={"probe_output": "failed"})),
}


def probe_notebook(answer=None):
    """The probe notebook: the source (``answer`` None) or a submission."""
    meta = lambda **kw: {"nbgrader": dict(schema_version=3, locked=False, **kw)}  # noqa: E731
    code = nbformat.v4.new_code_cell
    if answer is None:
        body = "### BEGIN SOLUTION\n" + PROBE_ANSWER.strip() + "\n### END SOLUTION"
    else:
        body = answer.strip()
    cells = [code(PROBE_SETUP),
             code(body, metadata=meta(grade_id="probe_answer", grade=False, solution=True))]
    for gid, test in PROBE_TESTS.items():
        cells.append(code(test, metadata=meta(grade_id=gid, grade=True, solution=False,
                                              points=1)))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"p{i}"
    return nb
