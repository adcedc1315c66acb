"""Side-by-side timing: interleaved rounds, paired ratios, one process.

Machines are noisy, so absolute times mean little. Every implementation of a
measurement runs in the same process, round-robin, with the starting one
rotating each round; a ratio is taken per round (paired) and the median of
those ratios is reported. Each sample is the mean over enough back-to-back
calls to fill ``sample_s``.

On a busy machine, ``clock="cpu"`` times with the CPU time of the calling
thread instead of the wall clock: other processes then cost little, but
work done by other threads (BLAS workers) is not counted, so use it only
with one thread.
"""

import json
import os
import statistics
import time
from contextlib import contextmanager


@contextmanager
def threads(n):
    """Limit BLAS (and PyTorch, when loaded) to ``n`` threads."""
    from threadpoolctl import threadpool_limits
    torch = _maybe_torch()
    old = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(n)
    with threadpool_limits(limits=n):
        yield
    if torch:
        torch.set_num_threads(old)


def _maybe_torch():
    import sys
    return sys.modules.get("torch")


def calibrate(fn, sample_s):
    """How many calls of ``fn`` fill about ``sample_s`` seconds."""
    fn()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= sample_s / 4:
            return max(1, int(n * sample_s / dt))
        n *= 4


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}


def compare(impls, rounds=41, sample_s=0.01, settle_s=0.02, clock="wall"):
    """Time each ``name -> fn`` in ``impls`` over interleaved rounds.

    ``clock`` is ``"wall"`` or ``"cpu"`` (see the module's docstring).
    Many short rounds pair better than a few long ones: the machine's speed
    drifts (other tenants, clock changes), and the two halves of a pair
    should see the same machine. Measured on a shared 2-core machine: 11
    rounds of 50 ms gave paired ratios from 1.28 to 1.60 for the same code
    in back-to-back runs, 61 rounds of 10 ms from 1.34 to 1.39. With
    several BLAS threads, give ``settle_s`` time for their workers to go
    idle between samples (0.15 s).
    Returns ``{name: [seconds per call, one per round]}``.
    """
    now = CLOCKS[clock]
    names = list(impls)
    counts = {name: calibrate(impls[name], sample_s) for name in names}
    samples = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            fn, n = impls[name], counts[name]
            time.sleep(settle_s)        # let BLAS worker threads go idle
            fn()
            t0 = now()
            for _ in range(n):
                fn()
            samples[name].append((now() - t0) / n)
    return samples


def paired_ratio(samples, name, base):
    """Median over rounds of ``time[name] / time[base]``."""
    return statistics.median(a / b for a, b in zip(samples[name], samples[base]))


def median_us(samples, name):
    return statistics.median(samples[name]) * 1e6


def save_json(obj, filename):
    """Write results under bench/results/ (ignored by git)."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, filename)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
    return path
