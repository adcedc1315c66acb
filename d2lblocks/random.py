"""``db.random``: NumPy-style draws from d2lblocks' one seeded generator.

For code written against ``np.random`` (Gluon's ``np.random.uniform``) or
``tf.random``: the same names and arguments, but the numbers come from the
generator that ``db.manual_seed`` seeds, and the result is a float32 tensor.
"""

import numbers

from .tensor import Tensor, float32, random_generator

__all__ = ["uniform", "normal"]


def _size(size, what):
    if size is None:
        return ()
    if isinstance(size, numbers.Integral):
        return (int(size),)
    if isinstance(size, (tuple, list)) and all(
            isinstance(n, numbers.Integral) and n >= 0 for n in size):
        return tuple(int(n) for n in size)
    raise ValueError(f"db.random.{what}: expected size=None, an int or a "
                     f"tuple of non-negative ints, got {size!r}")


def _shape_first(first, second, default, size, what):
    """TensorFlow's spelling ``uniform((2, 20))``: a shape as the first
    argument. It is taken as a shape only when it cannot be a number and
    nothing else was given, so NumPy's ``uniform(0, 1, (2, 20))`` keeps
    its meaning."""
    return isinstance(first, (tuple, list)) and second == default and \
        size is None


def _draw(values):
    return Tensor(values.astype(float32, copy=False))


def uniform(low=0.0, high=1.0, size=None):
    """Samples from the uniform distribution on [low, high).

    Arguments:
        low, high: the bounds (numbers).
        size: None (one number, a 0-d tensor), an int or a shape tuple.
            ``uniform((2, 20))`` also works: a tuple as the first argument,
            with nothing else given, is the shape (TensorFlow's habit).

    Returns:
        A float32 tensor.
    """
    if _shape_first(low, high, 1.0, size, "uniform"):
        low, size = 0.0, low
    shape = _size(size, "uniform")
    return _draw(random_generator().uniform(low, high, shape))


def normal(loc=0.0, scale=1.0, size=None):
    """Samples from the normal distribution with mean ``loc`` and standard
    deviation ``scale``.

    Arguments:
        loc, scale: the mean and standard deviation (numbers).
        size: None (one number, a 0-d tensor), an int or a shape tuple.
            ``normal((2, 20))`` also works: a tuple as the first argument,
            with nothing else given, is the shape (TensorFlow's habit).

    Returns:
        A float32 tensor.
    """
    if _shape_first(loc, scale, 1.0, size, "normal"):
        loc, size = 0.0, loc
    shape = _size(size, "normal")
    return _draw(random_generator().normal(loc, scale, shape))
