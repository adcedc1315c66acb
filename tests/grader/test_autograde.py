"""Units of ``autograde``: the wire format, handles on student objects,
the command line (check, selftest, grade into nbgrader's gradebook,
feedback) and the executor interface. The hostile corpus lives in
``test_autograde_hostile.py``; the comparison with stock nbgrader in
``test_autograde_nbgrader.py``."""

import fcntl
import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

sys.path.insert(0, str(Path(__file__).parent / "hostile"))
import tiny_course  # noqa: E402
from hostile_cases import CASES, make_submission  # noqa: E402

from autograde import codec, sandbox  # noqa: E402
from autograde import executor as executor_mod  # noqa: E402
from autograde.bridge import BridgeError, named_safely, resolve  # noqa: E402
from autograde.executor import (LocalExecutor, SerialExecutor,  # noqa: E402
                                grade_submission)
from autograde.inside.student import StudentBridge  # noqa: E402
from autograde.remote import (Remote, RemoteError, StudentProcess,  # noqa: E402
                              TrustedBridge, remote_exception)
from autograde.results import as_result  # noqa: E402
from autograde.runner import Settings  # noqa: E402


# Tests marked slow grade a course (or run selftest on one).


def run_cli(*args, timeout=300):
    """``python -m autograde ARGS`` in a session of its own."""
    return subprocess.run([sys.executable, "-m", "autograde", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)


# ---- the wire format ---------------------------------------------------------------
def _roundtrip(value):
    doc, blobs = codec.encode(value, lambda v, enc: (_ for _ in ()).throw(TypeError))
    return codec.decode(json.loads(json.dumps(doc)), blobs, {})


def test_plain_values_cross_unchanged():
    value = {"a": [1, 2.5, None, True, "x"], 3: (b"raw", {1, 2}),
             "big": 2**100, "nan": float("nan"), "c": 1 + 2j,
             "arrays": [np.arange(6, dtype=np.int16).reshape(2, 3),
                        np.zeros((0, 4), np.float32), np.float64(2.5)]}
    out = _roundtrip(value)
    assert out["a"] == value["a"] and out[3] == value[3] and out["big"] == 2**100
    assert math.isnan(out["nan"]) and out["c"] == 1 + 2j
    a, empty, scalar = out["arrays"]
    assert a.dtype == np.int16 and a.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert empty.shape == (0, 4) and empty.dtype == np.float32
    assert type(scalar) is np.float64 and scalar == 2.5


@pytest.mark.parametrize("doc, blobs", [
    ({"$array": 0, "dtype": "|O8", "shape": [1]}, [b"\0" * 8]),      # objects
    ({"$array": 0, "dtype": "<f8", "shape": [3]}, [b"\0" * 8]),      # wrong size
    ({"$array": 5, "dtype": "<f8", "shape": [1]}, [b"\0" * 8]),      # no blob
    ({"$pickle": "gASVAAAA"}, []),                                   # unknown tag
    ({"$float": "1e308*10"}, []),
    ([1, 2], []),                                                    # untagged
    # Malformed values of plain tags: a ProtocolError (the student process
    # broke the protocol), never the decoder's own ValueError or TypeError.
    ({"$int": "zz"}, []), ({"$complex": [1]}, []), ({"$complex": ["a", "b"]}, []),
    ({"$complex": [{"$list": []}, 1]}, []), ({"$set": [{"$list": []}]}, []),
    ({"$dict": [[1]]}, []), ({"$decimal": "x"}, []), ({"$fraction": [1, 0]}, []),
    ({"$ntuple": [1], "name": "class", "fields": ["a"]}, []),
    ({"$deque": [], "maxlen": -1}, []), ({"$tuple": 5}, []),
])
def test_malformed_messages_are_refused(doc, blobs):
    with pytest.raises(codec.ProtocolError):
        codec.decode(doc, blobs, {})


# Any message a student process can send: documents of the tags and keys
# the bridge knows, nested, with values of every JSON kind.
_TAGS = ["$int", "$float", "$complex", "$bytes", "$array", "$scalar", "$tuple",
         "$list", "$set", "$dict", "$npstr", "$fraction", "$decimal", "$counter",
         "$odict", "$ddict", "$deque", "$ntuple", "$ref", "$new", "$cnew",
         "$dtype", "$fn", "$listobj", "$h", "$cb"]
_KEYS = ["dtype", "shape", "maxlen", "factory", "name", "fields", "cls", "state",
         "value", "items", "dict", "mro", "methods", "fn", "bases", "params",
         "source", "doc", "tensor", "iterator", "call", "lib", "cmro"]
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.sampled_from(["", "x", "<f8", "|O8", "ff", "nan", "list",
                                     "d2lblocks.nn.layers:Linear", "os:system",
                                     "builtins.ValueError", "__main__.X"]))
_NODES = st.recursive(_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.builds(lambda tag, value, extra: {tag: value, **extra}, st.sampled_from(_TAGS),
              inner, st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3))),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["payload", "sync", "forget", "rng", "pyrng",
                                        "grad"]), _NODES),
       st.lists(st.binary(max_size=16), max_size=2))
def test_a_malformed_message_is_only_ever_a_protocol_error(doc, blobs):
    # Found so: a new-object tag without an id and a handle id that is a
    # list raised TypeError out of decode, which a test took as its own.
    class Proc:
        generation, doubts = 1, []
    a, b = socket.socketpair()
    with a, b:
        for bridge in (TrustedBridge(a, Proc()), StudentBridge(b)):
            try:
                bridge.decode(json.loads(json.dumps(doc)), blobs)
            except codec.ProtocolError:
                pass


def test_reader_refuses_huge_frames_and_times_out():
    a, b = codec.socketpair()
    reader = codec.Reader(b)
    with pytest.raises(codec.ChannelTimeout):
        reader.read(timeout=0.05)
    a.sendall(struct.pack("<II", codec.MAX_JSON + 1, 0))
    with pytest.raises(codec.ProtocolError):
        reader.read(timeout=1)
    a.close()
    with pytest.raises(codec.ChannelClosed):
        codec.Reader(b).read(timeout=1)


def test_only_library_names_resolve():
    assert resolve("d2lblocks.nn.layers:Linear").__name__ == "Linear"
    for name in ("os:system", "builtins:eval", "d2lblocks:__builtins__",
                 "numpy:__loader__"):
        with pytest.raises(BridgeError):
            resolve(name)


def test_a_peer_cannot_hand_the_grader_file_or_method_functions():
    assert named_safely("d2lblocks.ops:relu").__name__ == "relu"
    assert named_safely("numpy:exp") is np.exp
    for name in ("numpy:save", "numpy:load", "d2lblocks.nn.block:Block.save",
                 "numpy:fromfile", "d2lblocks.gradcheck:grad_check"):
        with pytest.raises(BridgeError):
            named_safely(name)


def test_student_exceptions_map_to_safe_local_classes():
    err = remote_exception({"type": "BadShape", "message": "no",
                            "mro": ["student.BadShape", "builtins.ValueError",
                                    "builtins.Exception"]})
    assert isinstance(err, ValueError) and isinstance(err, RemoteError)
    # A student cannot make the grader see SystemExit or KeyboardInterrupt.
    for base in ("builtins.SystemExit", "builtins.KeyboardInterrupt"):
        err = remote_exception({"type": "X", "message": "", "mro": [base]})
        assert isinstance(err, RemoteError) and isinstance(err, Exception)


# ---- handles on student objects ----------------------------------------------------------
@pytest.fixture(scope="module")
def student():
    """A live student process with a few objects defined."""
    launcher = sandbox.Launcher()
    proc = StudentProcess(launcher, {"files": {}, "uid": None, "namespaces": False,
                                   "limits": sandbox.Limits().as_dict()})
    proc.start()
    err = proc.run_cell('''
import numpy as np
import d2lblocks as db
from d2lblocks import nn
class Liar:
    def __eq__(self, other):
        return True
    def __float__(self):
        return 1.5
class Twice(nn.Block):
    def forward(self, X):
        return X * 2
liar = Liar()
twice = Twice()
def add_bias(layer, X):
    return layer(X)
def call_it(fn, n):
    return [fn() for _ in range(n)]
def peek(fn):
    return fn.__globals__
def draw():
    return db.randn(3).numpy()
''', "<setup>", 10)
    assert err is None
    yield proc
    proc.stop()
    launcher.close()


def test_a_lying_eq_is_never_asked(student):
    liar = student.globals({"liar"}, 5)["liar"]
    assert isinstance(liar, Remote)
    assert not (liar == 3) and liar != 3
    assert type(float(liar)) is float and float(liar) == 1.5


def test_student_blocks_look_like_blocks_and_compute_there(student):
    import d2lblocks as db
    from d2lblocks import nn
    twice = student.globals({"twice"}, 5)["twice"]
    assert isinstance(twice, nn.Block) and not isinstance(twice, nn.Linear)
    X = db.tensor([[1.0, 2.0]])
    out = twice(X)
    # The result's values are copied here for the comparison.
    assert (out == db.tensor([[2.0, 4.0]])).all()
    np.testing.assert_array_equal(np.asarray(out), [[2.0, 4.0]])


def test_library_objects_are_shared_both_ways(student):
    """A layer made here and run there shows the state it got there."""
    import d2lblocks as db
    from d2lblocks import nn
    add_bias = student.globals({"add_bias"}, 5)["add_bias"]
    lazy = nn.LazyLinear(3)
    out = add_bias(lazy, db.ones(2, 4))
    assert lazy.weight.shape == (3, 4)          # materialized in the student
    expected = db.ones(2, 4).numpy() @ lazy.weight.numpy().T + lazy.bias.numpy()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


def test_test_functions_can_be_called_back_but_not_read(student):
    from d2lblocks import nn
    call_it = student.globals({"call_it"}, 5)["call_it"]
    made = []

    def factory():
        made.append(nn.Linear(2, 2))
        return made[-1]

    blocks = call_it(factory, 3)
    assert len(made) == 3 and all(a is b for a, b in zip(blocks, made))
    peek = student.globals({"peek"}, 5)["peek"]
    with pytest.raises(AttributeError) as info:
        peek(factory)           # the student sees a callable, not a function
    assert isinstance(info.value, RemoteError)


def test_an_object_that_cannot_cross_fails_the_call_but_not_the_process(student):
    from d2lblocks import nn
    add_bias = student.globals({"add_bias"}, 5)["add_bias"]
    layer = nn.Linear(2, 2)
    with pytest.raises(BridgeError, match="cannot be given to student code"):
        add_bias(layer, np)     # a module is a handle on the grader's powers
    import d2lblocks as db
    out = add_bias(layer, db.ones(1, 2))       # the same layer, sent for real
    assert out.shape == (1, 2) and student.alive


def test_random_draws_form_one_stream_across_both_processes(student):
    import d2lblocks as db
    draw = student.globals({"draw"}, 5)["draw"]
    db.manual_seed(5)
    first, second = draw(), db.randn(3).numpy()
    db.manual_seed(5)
    expected = db.randn(6).numpy()
    np.testing.assert_array_equal(np.concatenate([first, second]), expected)


# ---- the command line ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny course with three submissions (correct, crash, deleted test)."""
    root = tiny_course.write_course(tmp_path_factory.mktemp("tiny") / "course")
    for name in ("correct", "os_exit_in_answer", "deleted_test"):
        folder = root / "submitted" / name / tiny_course.ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(make_submission(CASES[name], root, root / "x"),
                       folder / tiny_course.NOTEBOOK)
        (folder / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    return root


def test_check_passes_a_good_notebook_and_fails_the_release(tiny):
    good = tiny / "submitted" / "correct" / "tiny" / "tiny.ipynb"
    proc = run_cli("check", good)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 of 3 test cells passed their visible tests" in proc.stdout
    release = tiny / "release.ipynb"
    nb = make_submission(dict(base="correct", cells={
        "affine_answer": "raise NotImplementedError()",
        "scale_answer": "raise NotImplementedError()"}), tiny, tiny / "x")
    nbformat.write(nb, release)
    proc = run_cli("check", release, "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["score"] == 0 and {t["status"] for t in report["tests"]} == {"error"}
    assert all("affine" in t["message"] or "Scale" in t["message"]
               for t in report["tests"])


@pytest.mark.slow
def test_feedback_names_a_gradebook_it_cannot_read(tiny_graded, tmp_path):
    root = tmp_path / "course"
    shutil.copytree(tiny_graded[0], root)
    (root / "gradebook.db").write_bytes(b"not a gradebook\n" * 10)
    proc = run_cli("--course", root, "feedback", "tiny")
    assert proc.returncode == 2 and "not a readable nbgrader gradebook" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_says_what_it_expected(tmp_path):
    proc = run_cli("check", tmp_path / "missing.ipynb")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    assert "missing.ipynb" in proc.stderr
    proc = run_cli("check", tmp_path)
    assert proc.returncode == 2 and "expected a notebook file, got the folder" \
        in proc.stderr
    (tmp_path / "bad.ipynb").write_text("{not json")
    proc = run_cli("check", tmp_path / "bad.ipynb")
    assert proc.returncode == 2 and "not a readable notebook" in proc.stderr


@pytest.mark.slow
def test_grade_wants_a_gradebook_that_knows_the_assignment(tiny, tmp_path):
    import shutil
    copy = shutil.copytree(tiny, tmp_path / "copy")
    (copy / "gradebook.db").unlink(missing_ok=True)
    proc = run_cli("--course", copy, "grade", "tiny")
    assert proc.returncode == 2 and "generate_assignment tiny" in proc.stderr
    proc = run_cli("--course", copy, "grade", "tiny", "--no-gradebook", "--quiet")
    assert proc.returncode == 0 and (copy / "reports" / "tiny" / "tests.csv").exists()


@pytest.mark.slow
def test_selftest_accepts_the_course_and_catches_a_broken_solution(tiny, tmp_path):
    proc = run_cli("--course", tiny, "selftest", "tiny")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "selftest passed" in proc.stdout
    broken = tiny_course.write_course(tmp_path / "broken")
    path = broken / "source" / "tiny" / "tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.source = cell.source.replace("return X @ W + b", "return X @ W")
    nbformat.write(nb, path)
    proc = run_cli("--course", broken, "selftest", "tiny")
    assert proc.returncode == 1 and "the solution does not pass" in proc.stdout


@pytest.mark.slow
def test_selftest_of_the_real_course():
    """The solutions in exercises/source pass every test and their
    release (solutions stripped) earns nothing."""
    root = Path(__file__).resolve().parents[2] / "exercises"
    proc = run_cli("--course", root, "selftest", "layers_and_blocks")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("release") == 3


def test_grade_refuses_bad_requests_clearly(tiny, tmp_path):
    proc = run_cli("--course", tiny, "grade", "tin")
    assert proc.returncode == 2 and "'tin' is not an assignment" in proc.stderr
    assert "The assignments are: tiny. Did you mean 'tiny'?" in proc.stderr
    proc = run_cli("--course", tiny, "grade", "tiny", "--workers", "0")
    assert proc.returncode == 2 and "--workers" in proc.stderr
    proc = run_cli("--course", tmp_path, "grade", "tiny")
    assert proc.returncode == 2 and "source/" in proc.stderr
    assert str(tmp_path) in proc.stderr
    proc = run_cli("--course", tiny, "grade", "tiny", "--student", "nobody*")
    assert proc.returncode == 2 and "no submissions" in proc.stderr
    proc = run_cli("--course", tiny, "grade", "tiny", "--test-timeout", "-1")
    assert proc.returncode == 2 and "--test-timeout" in proc.stderr


@pytest.fixture(scope="module")
def tiny_graded(tiny):
    """The tiny course released by nbgrader, then graded by autograde."""
    env = dict(os.environ, PATH=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "tiny",
                    "--force"], cwd=tiny, env=env, check=True, capture_output=True)
    proc = run_cli("--course", tiny, "grade", "tiny", "--quiet", "--workers", "2",
                   "--test-timeout", "5")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tiny, proc


@pytest.mark.slow
def test_grade_writes_scores_flags_and_reviews_into_the_gradebook(tiny_graded):
    from nbgrader.api import Gradebook
    root, _ = tiny_graded
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        def grades(student):
            nb = gb.find_submission_notebook("tiny", "tiny", student)
            return nb, {g.name: g for g in nb.grades}
        nb, g = grades("correct")
        assert nb.code_score == 5 and not nb.flagged
        assert g["why_super"].needs_manual_grade            # written answer
        nb, g = grades("os_exit_in_answer")
        assert nb.code_score == 2 and nb.flagged
        # A crash is 0 points that a person should look at, not a silent 0.
        assert g["test_affine_shape"].auto_score == 0
        assert g["test_affine_shape"].needs_manual_grade
        assert not g["test_scale"].needs_manual_grade
        nb, g = grades("deleted_test")
        assert nb.code_score == 3 and nb.flagged            # tampering seen
        assert g["test_affine_values"].auto_score == 0
        assert not g["test_affine_values"].needs_manual_grade


@pytest.mark.slow
def test_a_grader_failure_is_never_stored_as_a_plain_zero(tiny_graded, tmp_path):
    import shutil
    from nbgrader.api import Gradebook
    from autograde.course import load_sources, update_gradebook
    root = Path(shutil.copytree(tiny_graded[0], tmp_path / "copy"))
    broken = {"student": "correct", "assignment": "tiny", "notebooks": [],
              "grader_error": "Traceback: ..."}
    update_gradebook(root, "tiny", [broken], load_sources(root, "tiny"))
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook("tiny", "tiny", "correct")
        assert nb.flagged and nb.needs_manual_grade
        tests = [g for g in nb.grades if g.name.startswith("test_")]
        assert tests and all(g.auto_score is None and g.needs_manual_grade
                             for g in tests)


@pytest.mark.slow
def test_grade_prints_a_summary_naming_trouble(tiny_graded):
    _, proc = tiny_graded
    assert "tiny: 3 submission(s): 3 graded, 0 skipped" in proc.stdout
    assert "2 flagged" in proc.stdout
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()
            if line.split() and line.split()[0] in
            ("correct", "os_exit_in_answer", "deleted_test")}
    assert rows["correct"].split()[1:3] == ["5/5", "graded"]
    assert rows["os_exit_in_answer"].split()[1:3] == ["2/5", "flagged"]
    assert "test_affine_shape: crashed" in rows["os_exit_in_answer"]
    assert "test cell test_affine_values is missing" in rows["deleted_test"]


@pytest.mark.slow
def test_autograded_notebooks_hold_outcomes_not_hidden_tests(tiny_graded):
    root, _ = tiny_graded
    path = root / "autograded" / "os_exit_in_answer" / "tiny" / "tiny.ipynb"
    nb = nbformat.read(path, as_version=4)
    text = json.dumps(nb)
    assert "HIDDEN" not in text and "default_rng(11)" not in text
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("ename") == "autograde: crashed" for o in outputs)
    deleted = nbformat.read(root / "autograded" / "deleted_test" / "tiny" / "tiny.ipynb",
                            as_version=4)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in deleted.cells]
    # Put back for formgrader, where the source has it (not at the end).
    assert ids.index("test_affine_values") == ids.index("test_affine_shape") + 1
    # nbgrader's generate_feedback wants the submission's timestamp beside it.
    stamp = root / "autograded" / "deleted_test" / "tiny" / "timestamp.txt"
    assert stamp.read_text().startswith("2026-11-20")


def test_long_messages_wrap_for_formgrader():
    from autograde.course import wrap_message
    words = "the student's block returned an array of the wrong shape " * 6
    text = wrap_message(f"autograde: failed: {words}\nsecond line")
    lines = text.splitlines()
    assert len(lines) > 3 and all(len(line) <= 88 for line in lines)
    assert " ".join(line.strip() for line in lines) == \
        f"autograde: failed: {words.strip()} second line"


@pytest.mark.slow
def test_feedback_explains_each_test_without_test_code(tiny_graded):
    root, _ = tiny_graded
    # autograde adds its section to the pages nbgrader writes: those first.
    env = dict(os.environ, PATH=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", "tiny",
                    "--force"], cwd=root, env=env, check=True, capture_output=True)
    proc = run_cli("--course", root, "feedback", "tiny")
    assert proc.returncode == 0, proc.stderr
    nb_page = (root / "feedback" / "os_exit_in_answer" / "tiny" / "tiny.html").read_text()
    assert "autograde: why each test passed or failed" in nb_page
    assert "hidden tests are not shown" in nb_page
    assert "test code is not shown" not in nb_page
    # The page for the instructor stays out of what release_feedback ships.
    assert not list((root / "feedback").rglob("autograde.html"))
    page = (root / "reports" / "tiny" / "feedback" / "os_exit_in_answer.html").read_text()
    assert "crashed" in page and "affine gives a (batch, outputs) array" in page
    # The gradebook's total counts the written answer, still to be graded.
    assert "2 / 6" in page and "not graded yet" in page
    for secret in ("default_rng", "HIDDEN", "assert "):
        assert secret not in page


@pytest.fixture(scope="module")
def feedback_made(tiny_graded, tmp_path_factory):
    """A copy of the graded tiny course with nbgrader's feedback pages,
    made once (each test copies it): ``(root, env)``."""
    root = Path(shutil.copytree(tiny_graded[0],
                                tmp_path_factory.mktemp("feedback") / "course"))
    env = dict(os.environ, PATH=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_feedback", "tiny",
                    "--force"], cwd=root, env=env, check=True, capture_output=True)
    return root, env


def _feedback_ready(feedback_made, tmp_path):
    """A copy of the graded tiny course with nbgrader's feedback pages."""
    root = Path(shutil.copytree(feedback_made[0], tmp_path / "course"))
    return root, feedback_made[1]


@pytest.mark.slow
def test_release_feedback_ships_the_notebook_pages_only(feedback_made, tmp_path):
    root, env = _feedback_ready(feedback_made, tmp_path)
    assert run_cli("--course", root, "feedback", "tiny").returncode == 0
    for folder in (root / "feedback").glob("*/tiny"):
        # What `nbgrader submit` would have left with each submission.
        (folder / "submission_secret.txt").write_text(f"secret-{folder.parent.name}")
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    os.chmod(exchange, 0o777)
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "release_feedback",
                           "tiny", f"--Exchange.root={exchange}"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # One page per student and notebook (release_feedback names each by a
    # hash), each nbgrader's page with autograde's section in it.
    shipped = [p.read_text() for p in exchange.rglob("*.html")]
    students = [d.name for d in (root / "submitted").iterdir()]
    assert len(shipped) == len(students), len(shipped)
    for page in shipped:
        assert "autograde: why each test passed or failed" in page
        assert "autograde feedback for" not in page     # the instructor's page
    assert "tiny/autograde" not in proc.stdout + proc.stderr


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_feedback_without_a_gradebook_refuses_and_changes_nothing(feedback_made,
                                                                   tmp_path):
    root, _ = _feedback_ready(feedback_made, tmp_path)
    (root / "gradebook.db").unlink()
    before = _tree(root)
    proc = run_cli("--course", root, "feedback", "tiny")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no gradebook.db" in proc.stderr and "--no-gradebook" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _tree(root) == before
    proc = run_cli("--course", root, "feedback", "tiny", "--no-gradebook")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_typo_in_the_assignment_lists_the_assignments(tiny_graded):
    root, _ = tiny_graded
    for command in ("feedback", "grade", "selftest"):
        proc = run_cli("--course", root, command, "tinyy")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "'tinyy' is not an assignment" in proc.stderr
        assert "The assignments are: tiny. Did you mean 'tiny'?" in proc.stderr
        assert "autograde grade tinyy" not in proc.stderr


def test_outside_a_course_the_message_names_where_it_looked(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autograde", "grade", "tiny"],
                          capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 2
    assert str(tmp_path) in proc.stderr and "nbgrader_config.py" in proc.stderr
    assert "exercises" not in proc.stderr and "--course DIR" in proc.stderr


def test_check_prints_a_broken_cell_first_counting_from_one(tiny, tmp_path):
    nb = make_submission(CASES["correct"], tiny, tiny / "x")
    broken = next(i for i, c in enumerate(nb.cells)
                  if c.source.startswith("def affine"))
    nb.cells[broken].source = "def affine(X, W, b)\n    return X @ W + b\n"
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    proc = run_cli("check", path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    cause = out.index(f"cell {broken + 1}: error: SyntaxError")
    assert cause < out.index("affine gives a (batch, outputs) array")
    assert f"cell {broken}:" not in out


# ---- executors -----------------------------------------------------------------------------
@pytest.mark.slow
def test_local_pool_and_serial_executor_agree(tiny):
    tasks = [{"course": str(tiny), "assignment": "tiny", "student": s,
              "folder": str(tiny / "submitted" / s / "tiny"),
              "files": {"tiny.ipynb": str(tiny / "submitted" / s / "tiny" / "tiny.ipynb")},
              "settings": Settings(test_timeout=5).as_dict()}
             for s in ("correct", "os_exit_in_answer")]

    def summary(results):
        return sorted((r["student"], r["score"],
                       tuple(t["status"] for t in r["notebooks"][0]["tests"]))
                      for r in results)

    with SerialExecutor() as ex:
        serial = summary(ex.map_unordered(grade_submission, tasks))
    with LocalExecutor(2) as ex:
        pooled = summary(ex.map_unordered(grade_submission, tasks))
    assert serial == pooled
    assert serial[0][1] == 5 and serial[1][1] == 2
    with pytest.raises(ValueError):
        LocalExecutor(0)


def _dies_for_bob(task):
    """Grading as a process that dies (OOM killer, kill -9) on bob's work."""
    if task["student"] == "bob":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    return {"student": task["student"], "assignment": task["assignment"],
            "notebooks": []}


def test_a_grading_process_that_dies_costs_only_its_submission(monkeypatch):
    # The pool used to wait for bob's result forever.
    monkeypatch.setattr(executor_mod, "grade_submission", _dies_for_bob)
    students = ["ann", "bob", "cy", "dee", "eve", "fay"]
    with LocalExecutor(2) as ex:
        results = {r["student"]: as_result(r) for r in ex.grade(
            {"student": s, "assignment": "a"} for s in students)}
    assert sorted(results) == students
    assert "died while grading" in results["bob"].grader_error
    assert results["bob"].outcome()[0] == "error"
    assert not any(results[s].grader_error for s in students if s != "bob")


def test_a_starting_run_is_never_taken_for_a_dead_one(tmp_path, monkeypatch):
    """Another grader's clean-up that runs while this run locks its
    folder leaves it alone (it used to find the lock file made but not
    yet locked, and remove the folder of a live run); a dead run's
    folder still goes."""
    from autograde import course
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    real = fcntl.flock

    def flock(fd, op):
        if op == fcntl.LOCK_EX:         # this run locks: another cleans up now
            course.clean_stale_runs()
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    with course.run_folder() as path:
        assert os.listdir(path) == [".alive"]
    dead = tmp_path / f"{course.RUN_PREFIX}dead"
    dead.mkdir()
    (dead / ".alive").touch()
    assert course.clean_stale_runs() == 1 and not dead.exists()
    assert not os.listdir(tmp_path)


# ---- durability: every grade kept, a rerun continues ------------------------------------
MIXED = {   # student -> hostile case or broken file; sorted = grading order
    "a_correct": "correct", "b_wrong": "wrong", "c_not_json": None,
    "d_exit": "os_exit_in_answer", "e_deleted_test": "deleted_test",
    "f_link": "link", "x_slow": "infinite_loop_cell", "y_patch": "patch_numpy",
    "z_correct": "correct"}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A course with honest, broken and hostile submissions and a
    gradebook that knows the assignment (not graded yet)."""
    root = tiny_course.write_course(tmp_path_factory.mktemp("mixed") / "course")
    for name, case in MIXED.items():
        folder = root / "submitted" / name / tiny_course.ASSIGNMENT
        folder.mkdir(parents=True)
        path = folder / tiny_course.NOTEBOOK
        if case is None:
            path.write_text('{"cells": [')
        elif case == "link":
            path.symlink_to(root / "source" / "tiny" / "tiny.ipynb")
        else:
            nbformat.write(make_submission(CASES[case], root, root / "x"), path)
    env = dict(os.environ, PATH=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "tiny",
                    "--force"], cwd=root, env=env, check=True, capture_output=True)
    return root


def gradebook_dump(root):
    """Every score and flag in the gradebook, as comparable data."""
    from nbgrader.api import Gradebook
    rows = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student in MIXED:
            try:
                nb = gb.find_submission_notebook("tiny", "tiny", student)
            except Exception:
                rows.append((student, "missing"))
                continue
            rows.append((student, nb.flagged, sorted(
                (g.name, g.auto_score, g.needs_manual_grade) for g in nb.grades)))
    return rows


GRADE = ("grade", "tiny", "--quiet", "--workers", "1", "--cell-timeout", "3",
         "--test-timeout", "3")


@pytest.fixture(scope="module")
def mixed_once(mixed, tmp_path_factory):
    """The mixed course graded in one uninterrupted run, then again."""
    import shutil
    root = Path(shutil.copytree(mixed, tmp_path_factory.mktemp("once") / "course",
                                symlinks=True))
    first = run_cli("--course", root, *GRADE)
    second = run_cli("--course", root, *GRADE)
    return root, first, second


@pytest.mark.slow
def test_a_mixed_run_records_every_outcome_and_a_rerun_skips_all(mixed_once):
    root, first, second = mixed_once
    assert first.returncode == 0, first.stdout + first.stderr
    n = len(MIXED)
    assert f"{n} submission(s): {n} graded, 0 skipped" in first.stdout
    for student in MIXED:
        report = json.loads((root / "reports" / "tiny" / f"{student}.json").read_text())
        assert report["fingerprint"] and report["notebooks"], student
    rows = {line.split()[0]: line.split()[1:3] for line in first.stdout.splitlines()
            if line.split() and line.split()[0] in MIXED}
    assert rows["a_correct"] == ["5/5", "graded"]
    assert rows["c_not_json"] == ["0/5", "unreadable"]
    assert rows["f_link"] == ["0/5", "unreadable"]
    assert rows["d_exit"] == ["2/5", "flagged"]
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{n} submission(s): 0 graded, {n} skipped" in second.stdout
    # The broken ones are flagged for a person in the gradebook too.
    dump = dict((r[0], r[1:]) for r in gradebook_dump(root))
    assert dump["c_not_json"][0] is True and dump["f_link"][0] is True
    assert dump["a_correct"][0] is False


@pytest.mark.slow
def test_a_changed_submission_or_test_is_graded_again(mixed_once, tmp_path):
    import shutil
    root = Path(shutil.copytree(mixed_once[0], tmp_path / "course", symlinks=True))
    (root / "submitted" / "b_wrong" / "tiny" / "tiny.ipynb").write_bytes(
        (root / "submitted" / "a_correct" / "tiny" / "tiny.ipynb").read_bytes())
    proc = run_cli("--course", root, *GRADE)
    assert f"{len(MIXED)} submission(s): 1 graded, {len(MIXED) - 1} skipped" \
        in proc.stdout, proc.stdout
    proc = run_cli("--course", root, *GRADE, "--force", "--student", "a_*")
    assert "1 submission(s): 1 graded, 0 skipped" in proc.stdout, proc.stdout
    source = root / "source" / "tiny" / "tiny.ipynb"
    source.write_text(source.read_text() + "\n")
    proc = run_cli("--course", root, *GRADE, "--student", "[ab]_*")
    assert "2 submission(s): 2 graded, 0 skipped" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_a_grader_killed_halfway_keeps_its_grades_and_a_rerun_finishes(
        mixed, mixed_once, tmp_path):
    import shutil
    import signal
    import time
    root = Path(shutil.copytree(mixed, tmp_path / "course", symlinks=True))
    reports = root / "reports" / "tiny"
    proc = subprocess.Popen([sys.executable, "-m", "autograde", "--course", str(root),
                             *GRADE], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # Kill it once two submissions are recorded; x_slow (a cell that
        # runs into its 3 s limit) is still ahead then.
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and \
                len(list(reports.glob("*.json"))) < 2:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    kept = sorted(p.stem for p in reports.glob("*.json"))
    assert 2 <= len(kept) < len(MIXED), kept
    rerun = run_cli("--course", root, *GRADE)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{len(kept)} skipped" in rerun.stdout, rerun.stdout
    assert gradebook_dump(root) == gradebook_dump(mixed_once[0])
    for student in MIXED:
        assert (root / "autograded" / student / "tiny" / "tiny.ipynb").is_file()


def test_grade_refuses_to_run_student_code_without_a_sandbox(tiny, monkeypatch, capsys):
    from autograde import cli
    monkeypatch.setattr(sandbox, "namespace_problem",
                        lambda: "this user may not create user namespaces")
    assert cli.main(["--course", str(tiny), "grade", "tiny", "--no-gradebook"]) == 2
    err = capsys.readouterr().err
    assert "will not run without a sandbox" in err and "--no-sandbox" in err
    assert "user namespaces" in err


@pytest.mark.slow
def test_no_sandbox_is_explicit_and_recorded_in_every_report(tiny, tmp_path):
    import shutil
    root = Path(shutil.copytree(tiny, tmp_path / "course"))
    proc = run_cli("--course", root, "grade", "tiny", "--quiet", "--no-gradebook",
                   "--workers", "1", "--student", "correct", "--no-sandbox", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 notebook(s) none" in proc.stdout
    report = json.loads((root / "reports" / "tiny" / "correct.json").read_text())
    iso = report["notebooks"][0]["isolation"]
    assert iso["no_sandbox"] is True and iso["mode"] == "none"
    assert iso["namespaces"] is False and report["score"] == 5
