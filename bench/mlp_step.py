"""Training step of the d2l MLP (784-256-10, ReLU, softmax cross-entropy,
SGD lr 0.1, float32): d2lblocks against hand-written NumPy and PyTorch.

    python bench/mlp_step.py [--threads 1 2] [--batches 1 16 256 4096]
                             [--clock cpu]   (busy machine, 1 thread only)
    python bench/mlp_step.py --pair-threads   (1 against 2 threads, paired)

BLAS threads are the process's: d2lblocks neither sets nor switches them
(a program chooses with db.backend.tune_process(blas_threads=1)); here
harness.threads(n) sets them for every implementation alike.

Implementations, all from the same weights and batch, in one process:
  numpy      plain NumPy expressions (forward, backward, w -= lr * g)
  numpy_opt  tuned NumPy: out= buffers, lr folded into the loss gradient,
             np.dot for the outer product at batch 1
  limit      the faster of the two, per batch size (the reference)
  inline     the array calls of d2lblocks' kernels, written out by hand
             (fresh results, the loss value): the bound of a replay that
             calls the ops' own code; the replay writes the common ops
             inline into reused arrays instead, so it may run below this
  d2lblocks  nn.Sequential(Linear, ReLU, Linear) + cross_entropy + optim.SGD
  hybrid     the same step, replayed by db.hybridize(step) after its first call
  torch      the same in PyTorch eager, when torch is installed
Ratios are paired medians against the limit; targets (1 thread) for the
eager step are <= 1.25x at B=1, <= 1.15x at B=16, <= 1.05x at B >= 256;
for the hybridized step <= 1.08x, <= 1.05x, <= 1.02x, and at B <= 16 at
most 0.45x of PyTorch eager's time.
"""

import argparse
import sys
import os

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import d2lblocks as db  # noqa: E402
from d2lblocks import nn, optim  # noqa: E402

try:        # imported up front, so that harness.threads() limits it too
    import torch
except ImportError:
    torch = None

LR, D_IN, D_HID, D_OUT = 0.1, 784, 256, 10
TARGETS = {"d2lblocks": {1: 1.25, 16: 1.15, 256: 1.05, 4096: 1.05},
           "hybrid": {1: 1.08, 16: 1.05, 256: 1.02, 4096: 1.02}}
TORCH_TARGET = {1: 0.45, 16: 0.45}        # hybrid's time / torch's


def make_problem(batch, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.01, (D_HID, D_IN)).astype(np.float32),
               np.zeros(D_HID, np.float32),
               rng.normal(0, 0.01, (D_OUT, D_HID)).astype(np.float32),
               np.zeros(D_OUT, np.float32)]
    X = rng.random((batch, D_IN), dtype=np.float32)
    y = rng.integers(0, D_OUT, batch)
    return weights, X, y


def numpy_plain(weights, X, y):
    W1, b1, W2, b2 = [w.copy() for w in weights]
    rows, n = np.arange(len(y)), len(y)

    def step():
        H = X @ W1.T + b1
        A = np.maximum(H, 0)
        Z = A @ W2.T + b2
        Z = Z - Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        P = E / E.sum(axis=1, keepdims=True)
        P[rows, y] -= 1
        dZ = P / n
        dW2, db2 = dZ.T @ A, dZ.sum(axis=0)
        dH = (dZ @ W2) * (H > 0)
        dW1, db1 = dH.T @ X, dH.sum(axis=0)
        for w, g in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2)):
            w -= LR * g
    return step, (W1, b1, W2, b2)


def numpy_tuned(weights, X, y):
    W1, b1, W2, b2 = [w.copy() for w in weights]
    n = len(y)
    rows = np.arange(n)
    H = np.empty((n, D_HID), np.float32)
    Z = np.empty((n, D_OUT), np.float32)
    mx = np.empty((n, 1), np.float32)
    s = np.empty((n, 1), np.float32)
    dH = np.empty((n, D_HID), np.float32)
    mask = np.empty((n, D_HID), bool)
    dW1, dW2 = np.empty_like(W1), np.empty_like(W2)
    db1, db2 = np.empty_like(b1), np.empty_like(b2)

    def step():
        np.dot(X, W1.T, out=H)
        np.add(H, b1, out=H)
        np.greater(H, 0, out=mask)
        np.multiply(H, mask, out=H)              # H is now the activation A
        np.dot(H, W2.T, out=Z)
        np.add(Z, b2, out=Z)
        np.max(Z, axis=1, keepdims=True, out=mx)
        np.subtract(Z, mx, out=Z)
        np.exp(Z, out=Z)
        np.sum(Z, axis=1, keepdims=True, out=s)
        np.divide(Z, s, out=Z)
        Z[rows, y] -= 1
        np.multiply(Z, LR / n, out=Z)            # lr folded in here
        np.dot(Z.T, H, out=dW2)
        np.sum(Z, axis=0, out=db2)
        np.dot(Z, W2, out=dH)
        np.multiply(dH, mask, out=dH)
        np.dot(dH.T, X, out=dW1)
        np.sum(dH, axis=0, out=db1)
        for w, g in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2)):
            np.subtract(w, g, out=w)
    return step, (W1, b1, W2, b2)


def inline_step(weights, X, y):
    """The array calls of d2lblocks' own kernels for this step, written out
    by hand in the order a replay makes them: the loss value and the label
    check included, the one-pass update. No op objects, no optimizer loop,
    no bookkeeping: what a replay that calls NumPy could reach at best."""
    from d2lblocks import backend
    W1, b1, W2, b2 = [w.copy() for w in weights]
    n = len(y)
    rows = np.arange(n)
    scratch = [np.empty_like(w) for w in (W1, b1, W2, b2)]
    top, total = np.maximum.reduce, np.add.reduce

    def step():
        H = X.dot(W1.T)
        H += b1
        A = np.maximum(H, 0)
        Z = A.dot(W2.T)
        Z += b2
        if np.minimum.reduce(y) < 0:
            raise IndexError("negative class label")
        shifted = Z - top(Z, 1, keepdims=True)
        E = np.exp(shifted)
        S = total(E, 1, keepdims=True)
        loss = (total(np.log(S), None) - total(shifted[rows, y], None)) / np.float32(n)
        P = E / S
        P[rows, y] -= 1
        P *= np.float32(1.0 / n)
        dA, dW2, db2 = P.dot(W2), P.T.dot(A), total(P, 0)
        dH = dA * (H > 0)
        dW1, db1 = dH.T.dot(X), total(dH, 0)
        for w, g, buf in zip((W1, b1, W2, b2), (dW1, db1, dW2, db2), scratch):
            backend.sub_scaled(w, LR, g, buf)
        return loss
    return step, (W1, b1, W2, b2)


def d2lblocks_step(weights, X, y):
    net = nn.Sequential(nn.Linear(D_IN, D_HID), nn.ReLU(), nn.Linear(D_HID, D_OUT))
    for p, w in zip(net.parameters(), weights):
        p.data = w.copy()
    opt = optim.SGD(net.parameters(), lr=LR)
    Xt = db.tensor(X)

    def step():
        opt.zero_grad()
        loss = db.cross_entropy(net(Xt), y)
        loss.backward()
        opt.step()
    return step, tuple(p.data for p in net.parameters())


def hybrid_step(weights, X, y):
    net = nn.Sequential(nn.Linear(D_IN, D_HID), nn.ReLU(), nn.Linear(D_HID, D_OUT))
    for p, w in zip(net.parameters(), weights):
        p.data = w.copy()
    opt = optim.SGD(net.parameters(), lr=LR)
    Xt, yt = db.tensor(X), db.tensor(y)

    @db.hybridize
    def step(X, y):
        opt.zero_grad()
        loss = db.cross_entropy(net(X), y)
        loss.backward()
        opt.step()
    return (lambda: step(Xt, yt)), tuple(p.data for p in net.parameters())


def torch_step(weights, X, y):
    net = torch.nn.Sequential(torch.nn.Linear(D_IN, D_HID), torch.nn.ReLU(),
                              torch.nn.Linear(D_HID, D_OUT))
    with torch.no_grad():
        for p, w in zip(net.parameters(), weights):
            p.copy_(torch.from_numpy(w))
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(Xt), yt)
        loss.backward()
        opt.step()
    return step, tuple(p.detach().numpy() for p in net.parameters())


def builders():
    found = {"numpy": numpy_plain, "numpy_opt": numpy_tuned,
             "inline": inline_step, "d2lblocks": d2lblocks_step,
             "hybrid": hybrid_step}
    if torch is not None:
        found["torch"] = torch_step
    return found


def check_agreement(batch):
    """Two steps of every implementation end at the same weights."""
    weights, X, y = make_problem(batch)
    results = {}
    for name, build in builders().items():
        step, params = build(weights, X, y)
        step()
        step()
        results[name] = params
    for name, params in results.items():
        for a, b in zip(params, results["numpy"]):
            err = float(np.max(np.abs(np.asarray(a) - b)))
            if err > 1e-5:
                raise SystemExit(f"{name} disagrees with numpy at B={batch}: {err}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256, 4096])
    ap.add_argument("--rounds", type=int, default=41)
    ap.add_argument("--clock", choices=sorted(harness.CLOCKS), default="wall",
                    help="cpu: CPU time of this thread (counts no BLAS worker "
                         "thread, so only meaningful with --threads 1)")
    ap.add_argument("--pair-threads", action="store_true",
                    help="time 1 against 2 BLAS threads in the same rounds")
    args = ap.parse_args()
    if args.pair_threads:
        return thread_pairs(args.batches, args.rounds)
    if args.clock == "cpu" and args.threads != [1]:
        ap.error("--clock cpu misses the work of BLAS worker threads; "
                 "use it with --threads 1")
    report = []
    print(f"{'thr':>3} {'batch':>5} {'impl':>10} {'median us':>10} "
          f"{'x limit':>8} {'x torch':>8} {'target':>7}")
    for n_threads in args.threads:
        with harness.threads(n_threads):
            for batch in args.batches:
                check_agreement(batch)
                weights, X, y = make_problem(batch)
                impls = {name: build(weights, X, y)[0]
                         for name, build in builders().items()}
                samples = harness.compare(
                    impls, rounds=args.rounds, clock=args.clock,
                    settle_s=0.02 if n_threads == 1 else 0.15)
                limit = min(("numpy", "numpy_opt"),
                            key=lambda k: harness.median_us(samples, k))
                for name in impls:
                    row = {"threads": n_threads, "batch": batch, "impl": name,
                           "median_us": harness.median_us(samples, name),
                           "x_limit": harness.paired_ratio(samples, name, limit)}
                    if "torch" in impls:
                        row["x_torch"] = harness.paired_ratio(samples, name, "torch")
                    report.append(row)
                    ok = _verdict(name, batch, row)
                    print(f"{n_threads:>3} {batch:>5} {name:>10} {row['median_us']:>10.1f} "
                          f"{row['x_limit']:>8.3f} {row.get('x_torch', float('nan')):>8.3f} "
                          f"{ok:>7}")
    print("wrote", harness.save_json(report, "mlp_step.json"))


def thread_pairs(batches, rounds, sample_s=0.02, settle_s=0.15):
    """Each implementation with 1 and with 2 BLAS threads in the same
    rounds (a busy machine slows both alike), as the paired median of
    time(2 threads) / time(1 thread). d2lblocks leaves BLAS threads to the
    process (``db.backend.tune_process(blas_threads=1)`` chooses one), so
    a second thread should cost the library no more than it costs plain
    NumPy: the last column divides each ratio by numpy_opt's and should
    stay <= 1.05."""
    import statistics
    import time
    names = ("numpy_opt", "d2lblocks", "hybrid")
    print(f"{'batch':>5} {'impl':>10} {'1 thr us':>9} {'2 thr us':>9} "
          f"{'2/1':>6} {'x numpy':>7}")
    report = []
    for batch in batches:
        weights, X, y = make_problem(batch)
        impls = {name: builders()[name](weights, X, y)[0] for name in names}
        counts = {name: harness.calibrate(fn, sample_s) for name, fn in impls.items()}
        times = {(name, t): [] for name in names for t in (1, 2)}
        for r in range(rounds):
            for t in ((1, 2) if r % 2 == 0 else (2, 1)):
                with harness.threads(t):
                    for name, fn in impls.items():
                        time.sleep(settle_s)
                        fn()
                        t0 = time.perf_counter()
                        for _ in range(counts[name]):
                            fn()
                        times[name, t].append((time.perf_counter() - t0) / counts[name])
        ratios = {name: [b / a for a, b in zip(times[name, 1], times[name, 2])]
                  for name in names}
        for name in names:
            one, two = times[name, 1], times[name, 2]
            ratio = statistics.median(ratios[name])
            relative = statistics.median(
                r / base for r, base in zip(ratios[name], ratios["numpy_opt"]))
            report.append({"batch": batch, "impl": name, "two_over_one": ratio,
                           "over_numpy": relative})
            print(f"{batch:>5} {name:>10} {statistics.median(one) * 1e6:>9.1f} "
                  f"{statistics.median(two) * 1e6:>9.1f} {ratio:>6.3f} "
                  f"{relative:>7.3f}"
                  f"{'' if name == 'numpy_opt' or relative <= 1.05 else '  MISS 1.05'}")
    print("wrote", harness.save_json(report, "mlp_step_threads.json"))


def _verdict(name, batch, row):
    """``ok``/``MISS`` against the targets of ``name`` at ``batch``."""
    marks = []
    target = TARGETS.get(name, {}).get(batch)
    if target is not None:
        marks.append(f"{'ok' if row['x_limit'] <= target else 'MISS'} {target}")
    torch_target = TORCH_TARGET.get(batch) if name == "hybrid" else None
    if torch_target is not None and "x_torch" in row:
        good = row["x_torch"] <= torch_target
        marks.append(f"{'ok' if good else 'MISS'} {torch_target}xT")
    return " ".join(marks)


if __name__ == "__main__":
    main()
