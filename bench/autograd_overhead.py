"""Per-op cost of d2lblocks' autograd on tiny tensors, against raw NumPy
and (when installed) PyTorch eager.

    python bench/autograd_overhead.py [--rounds 41] [--clock cpu]

Measured in one process, interleaved, with BLAS limited to one thread:
  chain0 / chain100   x (2x20) -> 0 or 100 elementwise ops -> sum -> backward
  linear_relu         relu(x @ W + b), x 2x20, W 20x256, forward+backward
Derived figures:
  marginal op fwd+bwd = (chain100 - chain0) / 100    target <= 2 us
  backward() fixed cost = chain0 fwd+bwd - chain0 fwd  target <= 5 us
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import d2lblocks as db  # noqa: E402

N_OPS = 100


def _elementwise_chain(y, n):
    """``n`` alternating elementwise ops; the same code for every library."""
    for i in range(n):
        y = y * 1.0001 if i % 2 else y + 0.5
    return y


def chain_d2l(n, backward):
    x = db.tensor(np.random.default_rng(0).random((2, 20), dtype=np.float32),
                  requires_grad=True)

    def run():
        s = _elementwise_chain(x, n).sum()
        if backward:
            s.backward()
    return run


def chain_numpy(n, backward):
    """The same arithmetic by hand: forward, then the chain rule backward."""
    x = np.random.default_rng(0).random((2, 20), dtype=np.float32)

    def run():
        y = _elementwise_chain(x, n)
        s = y.sum()
        if backward:
            g = np.ones_like(y)
            for i in range(n - 1, -1, -1):
                g = g * 1.0001 if i % 2 else g
        return s
    return run


def chain_torch(n, backward):
    import torch
    x = torch.rand(2, 20, requires_grad=True)

    def run():
        s = _elementwise_chain(x, n).sum()
        if backward:
            s.backward()
    return run


def linear_relu_d2l():
    rng = np.random.default_rng(0)
    x = db.tensor(rng.random((2, 20), dtype=np.float32))
    W = db.tensor(rng.random((20, 256), dtype=np.float32), requires_grad=True)
    b = db.zeros(256, requires_grad=True)

    def run():
        db.relu(x @ W + b).sum().backward()
    return run


def linear_relu_numpy():
    rng = np.random.default_rng(0)
    x = rng.random((2, 20), dtype=np.float32)
    W = rng.random((20, 256), dtype=np.float32)
    b = np.zeros(256, np.float32)

    def run():
        h = x @ W + b
        out = np.maximum(h, 0)
        out.sum()
        g = (h > 0).astype(np.float32)
        return x.T @ g, g.sum(axis=0)
    return run


def linear_relu_torch():
    import torch
    x = torch.rand(2, 20)
    W = torch.rand(20, 256, requires_grad=True)
    b = torch.zeros(256, requires_grad=True)

    def run():
        torch.relu(x @ W + b).sum().backward()
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=41)
    ap.add_argument("--clock", choices=sorted(harness.CLOCKS), default="wall",
                    help="cpu: CPU time of this thread, for a busy machine")
    args = ap.parse_args()
    impls = {"numpy": (chain_numpy, linear_relu_numpy),
             "d2lblocks": (chain_d2l, linear_relu_d2l)}
    try:
        import torch  # noqa: F401
        impls["torch"] = (chain_torch, linear_relu_torch)
    except ImportError:
        pass
    results = {}
    with harness.threads(1):
        for label, make in [("chain0 fwd", lambda c, _: c(0, False)),
                            ("chain0 fwd+bwd", lambda c, _: c(0, True)),
                            (f"chain{N_OPS} fwd", lambda c, _: c(N_OPS, False)),
                            (f"chain{N_OPS} fwd+bwd", lambda c, _: c(N_OPS, True)),
                            ("linear_relu fwd+bwd", lambda _, l: l())]:
            samples = harness.compare({k: make(*v) for k, v in impls.items()},
                                      rounds=args.rounds, clock=args.clock)
            results[label] = {k: {"median_us": harness.median_us(samples, k),
                                  "x_numpy": harness.paired_ratio(samples, k, "numpy")}
                              for k in impls}
    print(f"{'measurement':<22}" + "".join(f"{k:>12}" for k in impls) + "   d2l/numpy")
    for label, row in results.items():
        print(f"{label:<22}" + "".join(f"{row[k]['median_us']:>10.2f}us" for k in impls)
              + f"{row['d2lblocks']['x_numpy']:>11.2f}")
    derived = {}
    for k in impls:
        c0, c0f = results["chain0 fwd+bwd"][k]["median_us"], results["chain0 fwd"][k]["median_us"]
        cn = results[f"chain{N_OPS} fwd+bwd"][k]["median_us"]
        cnf = results[f"chain{N_OPS} fwd"][k]["median_us"]
        derived[k] = {"marginal_op_fwd_bwd_us": (cn - c0) / N_OPS,
                      "marginal_op_fwd_us": (cnf - c0f) / N_OPS,
                      "backward_fixed_us": c0 - c0f}
    print()
    for name, key, target in [("marginal op fwd+bwd", "marginal_op_fwd_bwd_us", 2.0),
                              ("marginal op fwd (recorded)", "marginal_op_fwd_us", None),
                              ("backward() fixed cost", "backward_fixed_us", 5.0)]:
        vals = "".join(f"{derived[k][key]:>10.2f}us" for k in impls)
        verdict = ""
        if target is not None:
            ok = derived["d2lblocks"][key] <= target
            verdict = f"   target <= {target} us: {'ok' if ok else 'MISS'}"
        print(f"{name:<28}{vals}{verdict}")
    print("wrote", harness.save_json({"results": results, "derived": derived},
                                     "autograd_overhead.json"))


if __name__ == "__main__":
    main()
