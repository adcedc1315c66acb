"""A block's state dict: its parameters and buffers by dotted name, saved
to and loaded from ``.npz`` files.

The order and the names are PyTorch's: block by block, parents first, a
block's own parameters, then its persistent buffers, then each child's
(``0.weight``, ``0.bias``, ``2.weight``...). A parameter or block shared by
several paths (tied weights) comes under each of its names, and loading
copies into the existing arrays, so tied parameters stay tied. Loading
checks every entry before it writes the first one: on any error nothing is
changed. ``Block`` takes ``state_dict``, ``load_state_dict``, ``save`` and
``load`` from here as its methods.
"""

import collections
import collections.abc
import errno
import os
import tempfile
import zipfile

import numpy as np

from ..operands import check_flag
from ..tensor import Tensor, float32, mark_changed, no_grad
from .tree import _method, _saved_buffers, _table, _walk

__all__ = ["IncompatibleKeys", "StateDictKeyError", "state_dict",
           "load_state_dict", "save", "load"]


IncompatibleKeys = collections.namedtuple(
    "IncompatibleKeys", ["missing_keys", "unexpected_keys"])
IncompatibleKeys.__doc__ = """What ``load_state_dict`` did not match: the
names the network has but the state lacks, and the reverse (as PyTorch's)."""


class StateDictKeyError(KeyError, RuntimeError):
    """``load_state_dict(strict=True)`` found missing or unexpected keys.

    Both a ``KeyError`` and a ``RuntimeError`` (what PyTorch raises), so
    either ``except`` catches it.
    """

    def __str__(self):
        return str(self.args[0])      # KeyError would quote the message


def state_dict(self, destination=None, prefix=""):
    """An ordered dict of name -> NumPy array (host copies), in
    PyTorch's order: block by block, a block's own parameters and
    persistent buffers, then each child's. A parameter or block shared
    by several paths appears under each name, as in PyTorch.

    Arguments (PyTorch's):
        destination: a dict to add the entries to (it is returned).
        prefix: put in front of every name, e.g. ``"encoder."``.
    """
    state = {} if destination is None else destination
    if not isinstance(prefix, str):
        raise TypeError(f"state_dict(): prefix must be a string, got "
                        f"{type(prefix).__name__}")
    for key, value, kind, _, _ in _state_entries(self):
        key = prefix + key
        if kind == "param" and value.is_lazy:
            raise RuntimeError(
                f"state_dict(): parameter '{key}' has no values yet (shape "
                f"{value._shape_text()}); run the network on a batch first")
        state[key] = np.array(value.numpy(), copy=True)
    return state


def load_state_dict(self, state_dict, strict=True):
    """Copy values from ``state_dict`` (name -> array) into this
    network.

    Every entry is checked first (a number array of the right shape,
    buffers included) and cast to its tensor's dtype; on any error
    nothing is changed. A lazy parameter takes its shape from
    ``state_dict``. Values are copied into the existing arrays, so shared
    (tied) parameters stay shared.

    Returns:
        ``IncompatibleKeys(missing_keys, unexpected_keys)``, in
        PyTorch's order.

    Raises:
        TypeError: ``state_dict`` is not a dict (a path says to use
            ``load``), or an entry does not hold numbers.
        ValueError: arrays whose shape does not match (always).
        StateDictKeyError: with ``strict``, names missing from or
            unexpected in ``state`` (all of them listed). It is both a
            ``KeyError`` and a ``RuntimeError``.
    """
    state = state_dict
    if isinstance(state, (str, bytes, os.PathLike)):
        path = os.fsdecode(state)
        raise TypeError(
            f"load_state_dict expected a dict of name -> array (what "
            f"state_dict() returns), got the path {path!r}; to read a "
            f"file written by net.save(), use net.load({path!r})")
    if not isinstance(state, collections.abc.Mapping):
        raise TypeError(f"load_state_dict expected a dict of name -> "
                        f"array (what state_dict() returns), got "
                        f"{type(state).__name__}")
    check_flag(strict, "load_state_dict: strict")
    entries = list(_state_entries(self))
    missing = [key for key, *_ in entries if key not in state]
    unexpected = _unexpected_keys(self, state)
    plan, wrong, bad = [], [], []
    for key, t, kind, owner, name in entries:
        if key not in state:
            continue
        value, problem = _state_array(state[key])
        if problem:
            bad.append(f"'{key}' {problem}")
            continue
        lazy = kind == "param" and t.is_lazy
        if not (_fits(t, value.shape) if lazy else
                tuple(t.shape) == value.shape):
            want = t._shape_text() if lazy else str(tuple(t.shape))
            wrong.append(f"{key}: expected {want}, got {value.shape}")
            continue
        plan.append((t, lazy, value))
    if bad:
        raise TypeError("load_state_dict: expected arrays of numbers; "
                        + "; ".join(bad) + " (nothing was loaded)")
    problems = []
    if strict and missing:
        problems.append(f"missing keys: {missing}")
    if strict and unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    if wrong:
        raise ValueError("load_state_dict: shapes do not match: "
                         + "; ".join(wrong)
                         + (("; also " + "; ".join(problems)) if problems
                            else "") + " (nothing was loaded)")
    if problems:
        raise StateDictKeyError("load_state_dict: " + "; ".join(problems) +
                                " (pass strict=False to load the rest; "
                                "nothing was loaded)")
    # Cast and move everything before the first write.
    ready = []
    for t, lazy, value in plan:
        if lazy:      # made where to() sent it, with its dtype or value's
            dev = t.__dict__.get("_lazy_device")
            dt = t._lazy_dtype if t._lazy_dtype is not None else \
                value.dtype if value.dtype.kind == "f" else float32
            ready.append((t, True, dev, dt, Tensor(value, dtype=dt,
                                                   device=dev).data))
        else:
            ready.append((t, False, None, None,
                          Tensor(value, dtype=t.dtype, device=t.device).data))
    with no_grad():
        for t, lazy, dev, dt, data in ready:
            if lazy:
                t._init = None
                t.materialize(data.shape, device=dev, dtype=dt)
                t._user_initialized = True
            t.data[...] = data
            mark_changed(t)
    for _, block in _walk(self, "", set()):
        hook = _method(block, "_after_load")
        if hook is not None:
            hook()
    return IncompatibleKeys(missing, unexpected)


def save(self, path):
    """Save ``state_dict()`` to ``path`` as a NumPy ``.npz`` (no pickle).

    The file is written next to its destination and then renamed, so an
    existing file is never left half-written. Read it back with
    ``net.load(path)`` (or ``np.load``).
    """
    state = _method(self, "state_dict")()
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            errno.ENOENT, f"cannot save to {path!r}: the folder "
            f"{folder!r} does not exist; create it first with "
            f"os.makedirs({folder!r})", path)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, state)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load(self, path, strict=True):
    """Load parameters saved by ``save(path)``; returns self.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: the file is not one written by ``save`` (or it is
            damaged); the message names the path.
    """
    state = _read_npz(os.fspath(path))
    _method(self, "load_state_dict")(state, strict=strict)
    return self


def _state_entries(root):
    """``(dotted name, tensor, kind, owner, own name)`` in the order of
    ``state_dict``: a block's own parameters, then its persistent buffers,
    then each child's entries. As in PyTorch, a parameter or block shared
    by several paths comes under each of its names."""
    for block_name, block in _walk(root, "", None):
        dotted = (lambda n: f"{block_name}.{n}") if block_name else (lambda n: n)
        for name, p in _table(block, "_params").items():
            if p is not None:
                yield dotted(name), p, "param", block, name
        for name, buf in _saved_buffers(block):
            if buf is not None:
                yield dotted(name), buf, "buffer", block, name


def _unexpected_keys(root, state):
    """The keys of ``state`` that name nothing in ``root``, in PyTorch's
    order: block by block (parents first), and within a block in the
    order of ``state``. A key whose first part names a child is left to
    that child."""
    out = []
    for block_name, block in _walk(root, "", None):
        prefix = block_name + "." if block_name else ""
        local = {name for name, p in _table(block, "_params").items()
                 if p is not None}
        local.update(name for name, b in _saved_buffers(block) if b is not None)
        children = _table(block, "_children")
        for key in state:
            if not isinstance(key, str):
                if not prefix:
                    out.append(key)
                continue
            if not key.startswith(prefix):
                continue
            head, dot, _ = key[len(prefix):].partition(".")
            if (head not in children) if dot else (head not in local):
                out.append(key)
    return out


def _state_array(value):
    """``(array, None)`` for a value of a state dict that holds numbers,
    else ``(None, what is wrong)``."""
    try:
        array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        return None, f"cannot be read as an array ({exc})"
    if array.dtype.kind not in "biuf":
        what = {"U": "strings", "S": "bytes", "O": "Python objects",
                "c": "complex numbers"}.get(array.dtype.kind, "non-numbers")
        return None, f"holds {what} (dtype {array.dtype}, e.g. " \
                     f"{_first(array)!r})"
    return array, None


def _first(array):
    return array.flat[0] if array.size else "empty"


def _write_npz(f, state):
    """Write ``state`` to the open file ``f`` as an ``.npz`` that
    ``np.load`` reads (written entry by entry, so that any name works,
    ``file`` included)."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in state.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(array),
                                          allow_pickle=False)


def _read_npz(path):
    """The arrays of the ``.npz`` at ``path`` as a dict; errors name the
    path and say what the file is instead."""
    with open(path, "rb") as f:                  # FileNotFoundError names it
        head = f.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError(f"{path!r} holds a single array (written by "
                         f"np.save), not the parameters that net.save() "
                         f"writes; load it with np.load({path!r})")
    if not head.startswith(b"PK"):
        what = "is empty" if not head else "is not a NumPy .npz archive"
        raise ValueError(f"cannot load {path!r}: the file {what}; expected "
                         f"a file written by net.save(path)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"cannot load {path!r}: the file is damaged or "
                         f"cut short ({exc}); save it again with "
                         f"net.save(path)") from exc
    except ValueError as exc:
        raise ValueError(f"cannot load {path!r}: {exc}") from exc


def _fits(p, shape):
    if not p.is_lazy:
        return tuple(p.shape) == tuple(shape)
    known = p._lazy_shape
    return len(known) == len(shape) and all(k is None or k == n for k, n in zip(known, shape))

