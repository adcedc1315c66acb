"""Shared fixtures for the d2lblocks test suite.

* ``device``: parametrizes a test over the CPU and GPU 0. GPU 0 is the real
  one where CuPy sees a GPU; elsewhere it is a simulated GPU
  (``fake_cupy``, installed for the test through
  ``backend.set_gpu_module``), so that every device path runs on every
  machine. ``gpu`` is that GPU alone, and ``requires_gpu`` marks a test
  that needs it.
* ``central_difference``: a gradient by central differences that does not
  use ``db.grad_check``, so a bug there cannot hide a bug in an op.
* ``layers_by_nbgrader``: the course's first assignment answered by the
  sample students and graded by stock nbgrader, once per session for the
  two files that compare with it.
* A Hypothesis profile with no per-example deadline (CI machines are slow
  and share two cores) and a modest default number of examples.
* Running in parallel (``make test`` runs two pytest-xdist workers with
  ``--dist loadgroup``): a *work unit* is a whole test file, or every test
  marked ``xdist_group(name)``, wherever it is. A unit runs in one worker,
  so a module fixture is built once, and tests that share something fixed
  of the machine never run at once. The longest units go first
  (``LONGEST_FIRST``), then the others with a ``slow`` test, then the
  rest, so that no long unit starts last. A file with a test that uses
  ``grader_user`` (a system account made and removed by the session, and
  permissions it opens on the virtualenv and the repository) joins the
  ``grader-user`` group whole, and is ``slow``: it grades courses as root
  and as that account.
"""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import d2lblocks as db
from d2lblocks import backend

import fake_cupy

settings.register_profile(
    "d2lblocks", max_examples=25, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("d2lblocks")

HAS_CUPY = importlib.util.find_spec("cupy") is not None
HAS_GPU = HAS_CUPY and db.num_gpus() > 0
#: True where the ``gpu`` fixture gives the simulated GPU.
SIMULATED_GPU = not HAS_GPU

requires_gpu = pytest.mark.usefixtures("gpu")
requires_no_cupy = pytest.mark.skipif(
    HAS_CUPY, reason="checks behaviour when CuPy is not installed")

DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("gpu", id="gpu")]


@pytest.fixture
def gpu():
    """GPU 0: the real one where CuPy sees a GPU, else the simulated one
    (with ``fake_cupy.DEVICE_COUNT`` GPUs), installed for this test only."""
    if HAS_GPU:
        yield db.gpu(0)
        return
    before = backend.set_gpu_module(fake_cupy)
    fake_cupy.reset_transfers()
    try:
        yield db.gpu(0)
    finally:
        backend.set_gpu_module(before)
        fake_cupy.Device._stack[:] = [0]


@pytest.fixture(params=DEVICES)
def device(request):
    """A ``db.Device``: the CPU, then GPU 0 (real or simulated)."""
    if request.param == "cpu":
        return db.cpu()
    return request.getfixturevalue("gpu")


@pytest.fixture(scope="session")
def layers_by_nbgrader(tmp_path_factory):
    """``layers_and_blocks`` released, answered by every sample of
    ``tests/submissions/samples.py`` and graded by stock nbgrader
    (autograde, generate_feedback, export), as ``make demo`` does:
    ``(graded course, a copy made before grading, student ids, {step:
    process})``. Its users must not change it (they copy it), and their
    tests are in the xdist group ``layers-nbgrader``."""
    path = Path(__file__).resolve().parent.parent / "exercises" / "instructor_demo.py"
    spec = importlib.util.spec_from_file_location("conftest_instructor_demo", path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    tmp = tmp_path_factory.mktemp("layers-nbgrader")
    course = demo.copy_course(tmp / "stock")
    logs = {"generate_assignment": demo.release(course)}
    students = demo.submit_samples(course)
    ungraded = Path(shutil.copytree(course, tmp / "ungraded"))
    logs.update(demo.stock_grade(course))
    return course, ungraded, students, logs


@pytest.fixture
def seeded():
    """Seed d2lblocks' generator so that random tensors repeat."""
    db.manual_seed(0)


def central_difference(fn, arrays, index, weights, eps=1e-6):
    """Central-difference gradient of ``sum(fn(*tensors) * weights)`` with
    respect to ``arrays[index]``.

    ``arrays`` are float64 NumPy arrays; each evaluation wraps fresh
    constant tensors around (copies of) them, so nothing here touches
    autograd.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    x = arrays[index]
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)

    def value():
        out = fn(*[db.tensor(a) for a in arrays])
        return float(np.sum(np.asarray(out.numpy(), np.float64) * weights))

    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        up = value()
        flat[i] = saved - eps
        down = value()
        flat[i] = saved
        gflat[i] = (up - down) / (2 * eps)
    return grad


@pytest.fixture(name="central_difference")
def central_difference_fixture():
    """The :func:`central_difference` helper, for other test files."""
    return central_difference


def parameter_central_difference(net, loss_fn, eps=1e-6):
    """Central-difference gradients of ``loss_fn()`` with respect to every
    parameter of ``net``, by nudging each element in place.

    Returns ``{name: array}``. Use a float64 network (``net.to(dtype=
    db.float64)``) so the differences are precise.
    """
    grads = {}
    with db.no_grad():
        for name, p in net.named_parameters():
            flat = p.data.reshape(-1)
            g = np.zeros(flat.size)
            for i in range(flat.size):
                saved = flat[i]
                flat[i] = saved + eps
                up = float(loss_fn().item())
                flat[i] = saved - eps
                down = float(loss_fn().item())
                flat[i] = saved
                g[i] = (up - down) / (2 * eps)
            grads[name] = g.reshape(p.shape)
    return grads


# ---- running in parallel ---------------------------------------------------
#: Tests using one of these fixtures share a resource of the machine that
#: the fixture makes and removes per session: their files run in one
#: worker (see the module docstring).
SHARED_FIXTURES = {"grader_user": "grader-user"}

#: The units that take longest, longest first (as ``_unit`` names them;
#: measured with two workers on two cores). Each worker takes the next
#: unit when it is free, so starting the long ones first keeps a worker
#: from being left with one of them at the end; a unit missing here only
#: starts later.
LONGEST_FIRST = (
    "group:grader-user",                            # ~240 s
    "file:tests/course/test_hub_browser.py",        # ~140 s, mostly waiting
    "file:tests/course/test_lab_browser.py",
    "group:layers-nbgrader",
    "file:tests/grader/test_autograde_dask.py",
    "file:tests/grader/test_autograde.py",
    "file:tests/course/test_chapters.py",
    "group:exercises-cycle",
    "group:fidelity-idioms",
    "group:exercises-custom_layers",
    "group:exercises-devices",
    "file:tests/course/test_study.py",
    "group:exercises-parameter_management",
    "group:exercises-file_io",
    "group:exercises-parameter_initialization",
    "group:exercises-lazy_initialization",
    "group:fidelity-ps1",
    "file:tests/course/test_make_setup.py",         # ~11 s
)


def _unit(item):
    """The work unit of ``item``: its xdist group, else its file."""
    for mark in item.iter_markers("xdist_group"):
        return "group:" + str(mark.args[0] if mark.args else
                              mark.kwargs.get("name", "default"))
    return "file:" + item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Put whole files in the group of a shared fixture they use, then
    order the units: ``LONGEST_FIRST``, then those with a slow test, then
    the rest, each kept together, otherwise in collection order. Runs before xdist reads the groups,
    and the same way in every worker."""
    files = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    for members in files.values():
        groups = {SHARED_FIXTURES[name] for item in members
                  for name in getattr(item, "fixturenames", ())
                  if name in SHARED_FIXTURES}
        if len(groups) > 1:
            raise pytest.UsageError(f"{members[0].path}: one file cannot "
                                    f"join the groups {sorted(groups)}")
        for group in groups:
            for item in members:
                if not any(item.iter_markers("xdist_group")):
                    item.add_marker(pytest.mark.xdist_group(group))
                item.add_marker(pytest.mark.slow)
    first, slow = {}, set()
    for index, item in enumerate(items):
        unit = _unit(item)
        first.setdefault(unit, index)
        if any(item.iter_markers("slow")):
            slow.add(unit)
    rank = {unit: i for i, unit in enumerate(LONGEST_FIRST)}

    def order(item):
        unit = _unit(item)
        return rank.get(unit, len(rank)), unit not in slow, first[unit]
    items.sort(key=order)


def pytest_configure(config):
    """Refuse to run xdist groups apart. pytest-xdist 3.8 puts a test in
    its ``xdist_group`` by adding ``@group`` to the test's id, which
    pytest 9.2 no longer reads (it keeps a structured id): the groups
    would be split across workers, and tests that share an account or a
    grading would run at once."""
    if (config.pluginmanager.hasplugin("xdist") and config.getvalue("dist") == "loadgroup"
            and config.getvalue("numprocesses") and not hasattr(config, "workerinput")):
        from importlib.metadata import version
        xdist = tuple(int(n) for n in version("pytest-xdist").split(".")[:2])
        if pytest.version_tuple >= (9, 2) and xdist <= (3, 8):
            raise pytest.UsageError(
                f"pytest {pytest.__version__} with pytest-xdist {version('pytest-xdist')} "
                "runs xdist groups apart; install the range pinned in "
                "pyproject.toml (make setup)")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With ``--dist loadgroup``: whole files, or whole xdist groups, to a
    worker, in the order collected (see :func:`pytest_collection_modifyitems`)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FileOrGroupScheduling(LoadGroupScheduling):
        """``loadgroup`` whose ungrouped tests go by file, as in
        ``loadfile``, not one by one: a module fixture is built once."""

        def __init__(self, config, log=None):
            super().__init__(config, log)
            # Keep the collected order: slow units first. (xdist would
            # otherwise start the files with the most tests first.)
            config.option.loadscopereorder = False

        def _split_scope(self, nodeid):
            if nodeid.rfind("@") > nodeid.rfind("]"):
                return "group:" + nodeid.rsplit("@", 1)[1]
            return "file:" + nodeid.split("::", 1)[0]

    return FileOrGroupScheduling(config, log)
