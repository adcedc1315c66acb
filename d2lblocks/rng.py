"""The one random generator of d2lblocks, and its seed.

Every random draw of the library (``db.rand``, ``db.random``, the
initializers, dropout) reads the generator from here, so that
``db.manual_seed(s)`` makes a whole program repeatable. Numbers are
drawn on the host and then moved, so a seed gives the same values on CPU
and GPU.
"""

import numbers

import numpy as np

__all__ = ["manual_seed", "random_generator", "set_random_generator"]


class _Random:
    """Holds the current ``numpy.random.Generator``."""
    rng = np.random.default_rng()


def manual_seed(seed):
    """Seed every random draw of d2lblocks (tensors, initializers, dropout)."""
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"expected a non-negative int seed, got {seed!r}")
    _Random.rng = np.random.default_rng(int(seed))


def random_generator():
    """The current ``numpy.random.Generator`` (used by ``init``, dropout)."""
    return _Random.rng


def set_random_generator(rng):
    """Make ``rng`` the generator of every random draw (a tool may wrap
    the current one to notice draws); returns the one set before."""
    old, _Random.rng = _Random.rng, rng
    return old
