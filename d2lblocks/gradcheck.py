"""Checking gradients against central differences."""

import numpy as np

from . import backend
from .tensor import Tensor, float64, no_grad, random_generator, wrap

__all__ = ["grad_check", "numerical_grad"]


def numerical_grad(fn, inputs, index, eps=1e-6):
    """Central-difference gradient of ``sum(fn(*inputs) * w)`` with respect
    to ``inputs[index]``, where ``w`` is fixed by the caller through ``fn``.

    The input is nudged where it lives (host or GPU); the gradient is a
    NumPy array.
    """
    x = inputs[index].data
    grad = np.zeros(x.shape, dtype=float64)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    with no_grad(), backend.on_array(x):
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + eps
            up = float(fn(*inputs).data)
            flat[i] = saved - eps
            down = float(fn(*inputs).data)
            flat[i] = saved
            gflat[i] = (up - down) / (2 * eps)
    return grad


def grad_check(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Compare the gradients from ``backward()`` with central differences.

    Arguments:
        fn: a function of tensors returning a tensor of any shape.
        *inputs: tensors; those with ``requires_grad=True`` are checked.
            They are copied to float64 first, so the check is precise.
        eps: the finite-difference step.
        atol, rtol: tolerances for ``|analytic - numeric|``.
        raise_exception: raise on a mismatch (else return False).

    Returns:
        True when every checked gradient matches.

    Raises:
        AssertionError: naming the input, the worst element and both values.
    """
    if not any(isinstance(t, Tensor) and t.requires_grad for t in inputs):
        raise ValueError("grad_check: give at least one tensor with "
                         "requires_grad=True")
    # Everything below runs on the inputs' device (host or a GPU): the
    # float64 copies, the weights and the nudged evaluations.
    with backend.on_array(*[t.data for t in inputs if isinstance(t, Tensor)]):
        return _grad_check(fn, inputs, eps, atol, rtol, raise_exception)


def _grad_check(fn, inputs, eps, atol, rtol, raise_exception):
    xs = []
    for t in inputs:
        if isinstance(t, Tensor):
            c = wrap(t.data.astype(float64))
            c.requires_grad = t.requires_grad
            xs.append(c)
        else:
            xs.append(t)
    out = fn(*xs)
    # Reduce a non-scalar output with fixed random weights, so every output
    # element takes part in the check. They are drawn on the host (a seed
    # gives the same check on every device) and sent to the output's device.
    weights = np.asarray(random_generator().standard_normal(out.shape),
                         dtype=float64)
    weights = wrap(backend.move(weights, backend.device_of(out.data)))

    def scalar(*args):
        return (fn(*args) * weights).sum()
    scalar(*xs).backward()
    for i, x in enumerate(xs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        numeric = numerical_grad(scalar, xs, i, eps)
        analytic = np.zeros_like(numeric) if x.grad is None else x.grad.numpy()
        err = np.abs(analytic - numeric)
        bad = err > atol + rtol * np.abs(numeric)
        if bad.any():
            if not raise_exception:
                return False
            j = np.unravel_index(np.argmax(err), err.shape)
            raise AssertionError(
                f"grad_check: input {i} (shape {x.shape}) has a wrong gradient "
                f"at index {tuple(int(k) for k in j)}: backward gave "
                f"{analytic[j]:.6g}, central differences give {numeric[j]:.6g}")
    return True
