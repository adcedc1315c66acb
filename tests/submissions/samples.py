"""Sample submissions of every assignment, built from the release.

Format: ``tests/submissions/<assignment>.py`` defines ``SAMPLES`` (student -> {"base": "correct"|"release", "cells": {grade_id: new source, or None to delete}})
and ``EXPECTED`` (student -> total automatic score), optionally ``WRITTEN`` ({grade_id: a student's prose for each written answer}); ``load(assignment)`` reads it.

Each sample is a small description instead of a stored notebook: start
from the correct answers (``"correct"``) or from the untouched release
(``"release"``), then replace the cells named by grade_id with new source
(``None`` deletes the cell, as a student might by accident). ``write_all``
turns the descriptions into ``submitted/<student>/<assignment>/*.ipynb``
under a course folder, the layout ``nbgrader autograde`` reads.

The correct code is taken from the solution cells of ``exercises/source``
with the ``### BEGIN/END SOLUTION`` lines removed, so it never drifts
from the reference solution; a written answer is the sample's
``WRITTEN`` prose (a student writes neither the model answer nor the
rubric). This file holds the samples of ``layers_and_blocks`` itself;
its per-cell expectations live in ``tests/course/test_exercises.py``.
"""

import importlib.util
import types
from pathlib import Path

import nbformat

ASSIGNMENT = "layers_and_blocks"

LIST_SEQUENTIAL = '''
class MySequential(nn.Block):
    """Runs its blocks in order, but keeps them in a plain list."""

    def __init__(self, *blocks):
        super().__init__()
        self.blocks = list(blocks)

    def forward(self, X):
        for block in self.blocks:
            X = block(X)
        return X
'''

# Checks the batch size, then joins along axis 0 by default instead of 1.
PARALLEL_AXIS0 = '''
class Parallel(nn.Block):
    """Runs two blocks side by side (concatenating along the batch axis)."""

    def __init__(self, net1, net2, axis=0):
        super().__init__()
        self.net1 = net1
        self.net2 = net2
        self.axis = axis

    def forward(self, X, X2=None):
        Y1 = self.net1(X)
        Y2 = self.net2(X if X2 is None else X2)
        if Y1.shape[0] != Y2.shape[0]:
            raise ValueError(f"batch sizes differ: {Y1.shape[0]} and {Y2.shape[0]}")
        return db.concat([Y1, Y2], axis=0)
'''

# Right everywhere except that it never checks the batch sizes.
PARALLEL_NO_CHECK = '''
class Parallel(nn.Block):
    """Runs two blocks side by side."""

    def __init__(self, net1, net2, axis=1):
        super().__init__()
        self.net1 = net1
        self.net2 = net2
        self.axis = axis

    def forward(self, X, X2=None):
        Y1 = self.net1(X)
        Y2 = self.net2(X if X2 is None else X2)
        return db.concat([Y1, Y2], axis=self.axis)
'''

# A correct answer that prints a DeprecationWarning on every call: stock
# nbgrader would give 0 points to each test cell that calls it.
PARALLEL_WARNS = '''
import warnings


class Parallel(nn.Block):
    """Runs two blocks side by side."""

    def __init__(self, net1, net2, axis=1):
        super().__init__()
        self.net1 = net1
        self.net2 = net2
        self.axis = axis

    def forward(self, X, X2=None):
        warnings.warn("Parallel: X2 will be renamed in a later version",
                      DeprecationWarning)
        Y1 = self.net1(X)
        Y2 = self.net2(X if X2 is None else X2)
        if Y1.shape[0] != Y2.shape[0]:
            raise ValueError(f"different batch sizes: {Y1.shape[0]} and {Y2.shape[0]}")
        return db.concat([Y1, Y2], axis=self.axis)
'''

# The classic bug: one block repeated n times (all share parameters).
FACTORY_REPEATS_ONE = '''
def make_instances(factory, n):
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return [factory()] * n


def build_network(factory, n):
    return nn.Sequential(*make_instances(factory, n))
'''

FACTORY_OFF_BY_ONE = '''
def make_instances(factory, n):
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return [factory() for _ in range(1, n)]


def build_network(factory, n):
    return nn.Sequential(*make_instances(factory, n))
'''

# forward() never returns: every test of the notebook runs into its time
# limit (not in SAMPLES; the benchmark and the cluster tests add it).
LOOPING_SEQUENTIAL = '''
class MySequential(nn.Block):
    def __init__(self, *blocks):
        super().__init__()
        for i, block in enumerate(blocks):
            self._children[str(i)] = block

    def forward(self, X):
        while True:
            pass
'''

WRITTEN_ANSWER = """
Blocks in a list still run, but the network never sees them:
`parameters()` is empty so SGD has nothing to train, `state_dict()` saves
nothing, `initialize()` and `to()` skip them. The block only walks the
children it registered in its ordered dict, and a list attribute is not
registered. MySequential stores each block in that dict.
"""

SAMPLES = {
    "correct": {"base": "correct", "cells": {}},
    "blank": {"base": "release", "cells": {}},
    "list_sequential": {"base": "correct",
                        "cells": {"my_sequential": LIST_SEQUENTIAL}},
    "repeated_instance": {"base": "correct",
                          "cells": {"factory_functions": FACTORY_REPEATS_ONE}},
    "off_by_one": {"base": "correct",
                   "cells": {"factory_functions": FACTORY_OFF_BY_ONE}},
    "parallel_axis0": {"base": "correct",
                       "cells": {"parallel_block": PARALLEL_AXIS0}},
    "no_batch_check": {"base": "correct",
                       "cells": {"parallel_block": PARALLEL_NO_CHECK}},
    "warns": {"base": "correct", "cells": {"parallel_block": PARALLEL_WARNS}},
    # Wrong code, and the test cell that would catch it deleted: with
    # OverwriteCells.add_missing_cells the cell comes back and still fails.
    "deleted_test": {"base": "correct",
                     "cells": {"my_sequential": LIST_SEQUENTIAL,
                               "test_seq_parameters": None}},
}
"""student id -> how that student's notebooks differ from the base."""

EXPECTED = {"correct": 27, "blank": 0, "list_sequential": 20,
            "deleted_test": 20, "repeated_instance": 21, "off_by_one": 20,
            "parallel_axis0": 20, "no_batch_check": 26, "warns": 27}
"""student id -> total automatic score (the written answer waits)."""

# Other answers, checked by running the test cells in-process (faster
# than nbgrader): correct ones written another way must pass every test;
# the reversed factory must fail exactly the order and output tests.
OTHER_CORRECT = {
    "my_sequential": '''
class MySequential(nn.Block):
    def __init__(self, *blocks):
        super().__init__()
        for i, block in enumerate(blocks):
            self.add_module(str(i), block)

    def forward(self, X):
        for i in range(len(self._modules)):
            X = self._modules[str(i)](X)
        return X
''',
    "parallel_block": '''
class Parallel(nn.Block):
    def __init__(self, net1, net2, axis=1):
        super().__init__()
        self.net1, self.net2, self.axis = net1, net2, axis

    def forward(self, X, X2=None):
        a = self.net1(X)
        b = self.net2(X2 if X2 is not None else X)
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"batch size mismatch: {a.shape[0]} vs {b.shape[0]}")
        return db.cat((a, b), axis=self.axis)
''',
    "factory_functions": '''
def make_instances(factory, n):
    if type(n) is not int or n <= 0:
        raise ValueError("n must be a positive integer")
    blocks = []
    while len(blocks) < n:
        blocks.append(factory())
    return blocks


def build_network(factory, n):
    net = nn.Sequential()
    for block in make_instances(factory, n):
        net.add(block)
    return net
''',
}

FACTORY_REVERSED = '''
def make_instances(factory, n):
    if type(n) is not int or n <= 0:
        raise ValueError("n must be a positive integer")
    return [factory() for _ in range(n)][::-1]


def build_network(factory, n):
    return nn.Sequential(*make_instances(factory, n))
'''

_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def _grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def reference_answers(source_dir):
    """``{grade_id: source}`` of every solution cell in ``source_dir``,
    with the solution markers removed (what a perfect student writes)."""
    answers = {}
    for path in sorted(Path(source_dir).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                lines = [line for line in cell.source.splitlines()
                         if line.strip() not in _MARKERS]
                answers[meta["grade_id"]] = "\n".join(lines).strip()
    return answers


def make_notebook(release_nb, sample, answers):
    """A submitted copy of one released notebook for ``sample``."""
    if sample["base"] not in ("correct", "release"):
        raise ValueError(f"a sample's base must be 'correct' or 'release', "
                         f"got {sample['base']!r}")
    nb = nbformat.from_dict(release_nb)
    cells = []
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid in sample["cells"]:
            new = sample["cells"][gid]
            if new is None:
                continue
            cell.source = new.strip()
        elif sample["base"] == "correct" and gid in answers:
            cell.source = answers[gid]
        cells.append(cell)
    nb.cells = cells
    return nb


def load(assignment):
    """The samples of ``assignment``: a namespace with ``SAMPLES``,
    ``EXPECTED`` and ``WRITTEN``, read from
    ``tests/submissions/<assignment>.py`` (this file for
    ``layers_and_blocks``). A missing file is a ``FileNotFoundError``."""
    if assignment == ASSIGNMENT:
        return types.SimpleNamespace(
            SAMPLES=SAMPLES, EXPECTED=EXPECTED,
            WRITTEN={"list_answer": WRITTEN_ANSWER})
    path = Path(__file__).resolve().parent / f"{assignment}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no sample submissions for {assignment!r}: "
                                f"expected {path.name} beside samples.py")
    spec = importlib.util.spec_from_file_location(f"samples_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("SAMPLES", "EXPECTED"):
        if not hasattr(module, name):
            raise AttributeError(f"{path.name} must define {name}")
    if set(module.SAMPLES) != set(module.EXPECTED):
        raise ValueError(f"{path.name}: SAMPLES and EXPECTED name different "
                         f"students: {sorted(set(module.SAMPLES) ^ set(module.EXPECTED))}")
    return types.SimpleNamespace(SAMPLES=module.SAMPLES,
                                 EXPECTED=module.EXPECTED,
                                 WRITTEN=getattr(module, "WRITTEN", {}))


def student_answers(source_dir, written):
    """What a student who gets everything right writes: the solution
    code of ``source_dir``, and ``written`` (``{grade_id: prose}``) for
    the written answers."""
    answers = reference_answers(source_dir)
    answers.update({gid: text.strip() for gid, text in written.items()})
    return answers


def write_all(course_dir, samples=None, assignment=ASSIGNMENT):
    """Write every sample of ``assignment`` (or the given ``samples``)
    under ``course_dir/submitted`` from the release; returns the student
    ids in order."""
    course = Path(course_dir)
    release = course / "release" / assignment
    found = load(assignment)
    samples = found.SAMPLES if samples is None else samples
    # A student writes prose, not the instructor's model answer and rubric.
    answers = student_answers(course / "source" / assignment, found.WRITTEN)
    known = {_grade_id(c) for p in release.glob("*.ipynb")
             for c in nbformat.read(p, as_version=4).cells}
    for student, sample in samples.items():
        unknown = set(sample["cells"]) - known
        if unknown:
            raise KeyError(f"sample {student!r} names cells that the release "
                           f"does not have: {sorted(unknown)}")
        out = course / "submitted" / student / assignment
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(release.glob("*.ipynb")):
            nb = make_notebook(nbformat.read(path, as_version=4), sample, answers)
            nbformat.write(nb, out / path.name)
        # nbgrader reads the submission time from this file.
        (out / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    return list(samples)
