"""Grad mode belongs to a thread, as in PyTorch: ``no_grad()``,
``enable_grad()`` and ``set_grad_enabled()`` in one thread never change
what another thread records, and threads that use them at the same time
leave every thread's setting as it was."""

import threading

import numpy as np

import d2lblocks as db

TIMEOUT = 30            # seconds; a barrier that times out fails the test


def _run_threads(target, n):
    """Run ``target(i)`` in ``n`` threads; return the exceptions raised."""
    errors = []

    def wrapped(i):
        try:
            target(i)
        except BaseException as exc:          # reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    return errors


def _gradient_of_square(values):
    w = db.tensor(values, requires_grad=True)
    (w * w).sum().backward()
    return w.grad.numpy()


def test_backward_in_one_thread_while_another_is_inside_no_grad():
    inside, done = threading.Event(), threading.Event()
    seen = {}

    def quiet():
        with db.no_grad():
            seen["quiet"] = db.is_grad_enabled()
            inside.set()
            done.wait(TIMEOUT)

    def learner():
        inside.wait(TIMEOUT)
        try:
            seen["grad"] = _gradient_of_square([1.0, -2.0])
            seen["learner"] = db.is_grad_enabled()
        finally:
            done.set()

    threads = [threading.Thread(target=quiet), threading.Thread(target=learner)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert seen["quiet"] is False and seen["learner"] is True
    np.testing.assert_allclose(seen["grad"], [2.0, -4.0])


def test_many_threads_in_no_grad_at_once_leave_grad_mode_on():
    """All threads enter before any leaves (a barrier), so with one flag
    for the process the last to leave would restore "off"; repeated, so
    that any order of leaving is tried."""
    n = 6
    for _ in range(15):
        barrier = threading.Barrier(n, timeout=TIMEOUT)

        def body(i):
            with db.no_grad():
                barrier.wait()
                assert not db.is_grad_enabled()
                barrier.wait()
            assert db.is_grad_enabled()

        assert _run_threads(body, n) == []
        assert db.is_grad_enabled()
    np.testing.assert_allclose(_gradient_of_square([3.0]), [6.0])


def test_one_no_grad_object_entered_by_several_threads():
    shared = db.no_grad()
    n = 4
    barrier = threading.Barrier(n, timeout=TIMEOUT)

    def body(i):
        with shared:
            barrier.wait()
            assert not db.is_grad_enabled()
        assert db.is_grad_enabled()

    assert _run_threads(body, n) == []
    assert db.is_grad_enabled()


def test_a_new_thread_starts_with_grad_mode_on():
    seen = []
    with db.no_grad():
        t = threading.Thread(target=lambda: seen.append(db.is_grad_enabled()))
        t.start()
        t.join(TIMEOUT)
        assert not db.is_grad_enabled()
    assert seen == [True]


def test_set_grad_enabled_in_a_thread_stays_in_that_thread():
    n = 4
    barrier = threading.Barrier(n, timeout=TIMEOUT)

    def body(i):
        flag = i % 2 == 0
        previous = db.set_grad_enabled(flag)       # for the rest of the thread
        barrier.wait()
        assert db.is_grad_enabled() is flag
        x = db.tensor([1.0, 2.0], requires_grad=True)
        assert (x * 2).requires_grad is flag
        with db.enable_grad():
            assert db.is_grad_enabled()
        assert db.is_grad_enabled() is flag
        barrier.wait()
        db.set_grad_enabled(previous)

    assert _run_threads(body, n) == []
    assert db.is_grad_enabled()


def test_the_decorator_form_in_threads():
    @db.no_grad()
    def frozen(x):
        return (x * 2).requires_grad, db.is_grad_enabled()

    n = 4
    barrier = threading.Barrier(n, timeout=TIMEOUT)
    results = []

    def body(i):
        barrier.wait()
        results.append(frozen(db.tensor([1.0], requires_grad=True)))
        results.append(db.is_grad_enabled())

    assert _run_threads(body, n) == []
    assert sorted(map(str, results)) == sorted(["(False, False)", "True"] * n)
    assert db.is_grad_enabled()


def test_a_replayed_training_step_sees_the_grad_mode_of_its_thread():
    from d2lblocks import hybrid, nn, optim
    from tests.hybrid_tools import training_step
    db.manual_seed(0)
    net = nn.Linear(3, 2)
    step = db.hybridize(training_step(net, optim.SGD(net.parameters(), lr=0.1)))
    X, y = db.randn(4, 3), db.tensor([0, 1, 1, 0])
    for _ in range(3):
        step(X, y)
    assert hybrid.stats(step)["replays"] == 2
    errors = []

    def quiet():
        with db.no_grad():                 # backward() must refuse here
            try:
                step(X, y)
            except RuntimeError as exc:
                errors.append(exc)

    t = threading.Thread(target=quiet)
    t.start()
    t.join(TIMEOUT)
    assert len(errors) == 1 and "does not require gradients" in str(errors[0])
    step(X, y)                             # this thread still replays
    assert hybrid.stats(step)["replays"] == 3
