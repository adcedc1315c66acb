"""The wire format between the trusted grader and a student process.

A message is one JSON document plus a list of binary blobs (the raw bytes
of arrays). Only plain data crosses: ``None``, bools, ints, floats,
strings, bytes, tuples, lists, dicts, sets, numeric NumPy arrays and
scalars, and the standard library's value types (``Fraction``,
``Decimal``, ``Counter``, ``OrderedDict``, ``defaultdict``, ``deque``,
named tuples). Anything else is replaced by a tag that the other side
interprets (a handle to a remote object, a recipe for a library object).
Nothing is pickled, so decoding can never run code.

Frame: ``<II`` (JSON length, blob count), the JSON bytes, then for each
blob ``<Q`` (length) and the bytes.
"""

import collections
import decimal
import fractions
import functools
import json
import math
import re
import select
import socket
import struct
import time

import numpy as np

MAX_JSON = 32 << 20          # one message's JSON
MAX_BLOBS = 100_000
MAX_BYTES = 256 << 20        # all blobs of one message together
MAX_DEPTH = 60

_DTYPE = re.compile(r"^[<>|=]?([biufc][0-9]{1,2}|[US][1-9][0-9]{0,5})$")
_ARRAY_KINDS = "biufcUS"
_FACTORIES = {"list": list, "int": int, "set": set, "dict": dict,
              "float": float, "str": str}
_SCALARS = {np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
            np.uint16, np.uint32, np.uint64, np.float16, np.float32,
            np.float64, np.complex64, np.complex128}
_SEQUENCES = {tuple: "$tuple", list: "$list", set: "$set", frozenset: "$set",
              collections.deque: "$deque"}
_MAPPINGS = {dict: "$dict", collections.Counter: "$counter",
             collections.OrderedDict: "$odict", collections.defaultdict: "$ddict"}


class ProtocolError(Exception):
    """The other side sent something that is not a valid message."""


class ChannelClosed(Exception):
    """The other side closed the connection (or died)."""


class ChannelTimeout(Exception):
    """No complete message arrived within the time allowed."""


# ---- encoding --------------------------------------------------------------
class Encoder:
    """Turns a value into JSON-able data plus blobs.

    ``other(value, encoder)`` is called for every value that is not plain
    data and must return a JSON-able tag (a dict whose one key starts
    with ``$``). ``container(value, encoder)`` may return a tag for a
    list, dict, set or array that both sides keep in step (see bridge),
    or None to copy it.
    """

    def __init__(self, other, container=None):
        self.blobs = []
        self.other = other
        self.container = container

    def blob(self, data):
        """Store raw bytes; returns their index."""
        self.blobs.append(bytes(data))
        return len(self.blobs) - 1

    def copy(self, v):
        """``v`` encoded as a copy, even where it is a container kept in
        step (the state of a shared object holds its values)."""
        saved, self.container = self.container, None
        try:
            return self(v)
        finally:
            self.container = saved

    def __call__(self, v, depth=0):
        if depth > MAX_DEPTH:
            raise ValueError("value nested too deeply to send")
        t = type(v)
        if v is None or t is bool or t is str:
            return v
        if t is int:
            return v if -2**62 < v < 2**62 else {"$int": format(v, "x")}
        if t is float:
            return v if math.isfinite(v) else {"$float": repr(v)}
        if t is complex:
            return {"$complex": [self(v.real), self(v.imag)]}
        if t is bytes:
            return {"$bytes": self.blob(v)}
        if self.container is not None and t in (list, dict, set, np.ndarray):
            node = self.container(v, self)
            if node is not None:
                return node
        if t is np.ndarray and v.dtype.kind in _ARRAY_KINDS and v.dtype.itemsize:
            a = np.ascontiguousarray(v)
            return {"$array": self.blob(a.view(np.uint8).reshape(-1).data
                                        if a.size else b""),
                    "dtype": a.dtype.str, "shape": list(a.shape)}
        if t in _SCALARS:
            a = np.asarray(v)
            return {"$scalar": self.blob(a.tobytes()), "dtype": a.dtype.str}
        node = self.standard(v, t, depth + 1)
        return self.other(v, self) if node is None else node

    def standard(self, v, t, depth):
        """Python's containers and the standard library's value types
        (and NumPy strings), sent as values: they compare by value, so a
        copy gives the same verdict; None for anything else."""
        if t in _SEQUENCES:
            node = {_SEQUENCES[t]: [self(x, depth) for x in v]}
            if t is collections.deque:
                node["maxlen"] = v.maxlen
            return node
        if t in _MAPPINGS:
            factory = getattr(v, "default_factory", None)
            name = getattr(factory, "__name__", None)
            if factory is not None and _FACTORIES.get(name) is not factory:
                return None         # a defaultdict of something else
            node = {_MAPPINGS[t]: [[self(k, depth), self(x, depth)]
                                   for k, x in v.items()]}
            if t is collections.defaultdict:
                node["factory"] = name if factory is not None else None
            return node
        if t is np.str_:
            return {"$npstr": str(v)}
        if t is fractions.Fraction:
            return {"$fraction": [self(v.numerator), self(v.denominator)]}
        if t is decimal.Decimal:
            return {"$decimal": str(v)}
        fields = getattr(t, "_fields", None)
        if issubclass(t, tuple) and type(fields) is tuple \
                and all(type(f) is str for f in fields):
            return {"$ntuple": [self(x, depth) for x in v],
                    "name": str(t.__name__), "fields": list(fields)}
        return None


def encode(value, other):
    """``(json_data, blobs)`` for ``value``."""
    enc = Encoder(other)
    return enc(value), enc.blobs


# ---- decoding --------------------------------------------------------------
class Decoder:
    """Rebuilds plain values from JSON data and blobs, checking everything.

    ``tags`` maps a tag name (such as ``"$handle"``) to a function
    ``f(node, decoder)`` that returns the value for that node.
    """

    def __init__(self, blobs, tags):
        self.blobs = blobs
        self.tags = tags
        self.count = 0

    def blob(self, i):
        """The raw bytes stored under index ``i``."""
        if type(i) is not int or not 0 <= i < len(self.blobs):
            raise ProtocolError(f"bad blob index {i!r}")
        return self.blobs[i]

    def dtype(self, text):
        """A numeric dtype from its string (anything else is refused)."""
        if type(text) is not str or not _DTYPE.match(text):
            raise ProtocolError(f"bad dtype {text!r}")
        return np.dtype(text)

    def __call__(self, node, depth=0):
        self.count += 1
        if depth > MAX_DEPTH or self.count > 5_000_000:
            raise ProtocolError("message nested too deeply or too large")
        t = type(node)
        if node is None or t in (bool, int, float, str):
            return node
        if t is list:       # only ever produced inside tags
            raise ProtocolError("untagged list")
        if t is not dict or len(node) == 0:
            raise ProtocolError(f"unexpected JSON value of type {t.__name__}")
        key = next(iter(node))
        plain, handler = _PLAIN.get(key), self.tags.get(key)
        if plain is None and handler is None:
            raise ProtocolError(f"unknown tag {key!r}")
        try:
            if plain is not None:
                return plain(self, node[key], node, depth + 1)
            return handler(node, self)
        except ProtocolError:
            raise
        except (TypeError, ValueError, ArithmeticError, LookupError) as e:
            # Whatever the peer sent, a malformed node is its fault.
            raise ProtocolError(f"bad {key} value: {e}") from None

    def items(self, items, depth):
        """The items of a sequence tag, decoded."""
        if type(items) is not list:
            raise ProtocolError("bad sequence")
        return [self(x, depth) for x in items]

    def pairs(self, items, depth):
        """Key-value pairs of a mapping tag, decoded."""
        if type(items) is not list or not all(
                type(p) is list and len(p) == 2 for p in items):
            raise ProtocolError("bad mapping")
        return [(self(k, depth), self(x, depth)) for k, x in items]


def _str(x):
    if type(x) is not str or len(x) > 1_000_000:
        raise ProtocolError("expected a short string")
    return x


def _float(dec, text, node, depth):
    if _str(text) not in ("nan", "inf", "-inf"):
        raise ProtocolError(f"bad float {text!r}")
    return float(text)


def _complex(dec, parts, node, depth):
    re_, im = dec.items(parts, depth)
    return complex(float(re_), float(im))


def _array(dec, index, node, depth):
    dt, shape = dec.dtype(node.get("dtype")), node.get("shape")
    if type(shape) is not list or not all(
            type(n) is int and 0 <= n < 2**40 for n in shape):
        raise ProtocolError(f"bad shape {shape!r}")
    data = dec.blob(index)
    if math.prod(shape) * dt.itemsize != len(data):
        raise ProtocolError("array size does not match its shape")
    return np.frombuffer(data, dtype=dt).reshape(shape).copy()


def _scalar(dec, index, node, depth):
    dt, data = dec.dtype(node.get("dtype")), dec.blob(index)
    if len(data) != dt.itemsize:
        raise ProtocolError("bad scalar")
    return np.frombuffer(data, dtype=dt)[0].copy()


def _fraction(dec, parts, node, depth):
    num, den = dec.items(parts, depth)
    if type(num) is not int or type(den) is not int:
        raise ProtocolError("bad fraction")
    return fractions.Fraction(num, den)


def _ddict(dec, pairs, node, depth):
    factory = node.get("factory")
    if factory is not None and factory not in _FACTORIES:
        raise ProtocolError("bad defaultdict factory")
    return collections.defaultdict(_FACTORIES.get(factory), dec.pairs(pairs, depth))


def _deque(dec, items, node, depth):
    maxlen = node.get("maxlen")
    if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
        raise ProtocolError("bad deque")
    return collections.deque(dec.items(items, depth), maxlen)


@functools.lru_cache(maxsize=256)
def _named_tuple(name, fields):
    return collections.namedtuple(name, fields)


def _ntuple(dec, items, node, depth):
    name, fields = node.get("name"), node.get("fields")
    if type(name) is not str or type(fields) is not list or len(fields) > 1000 \
            or not all(type(f) is str and f.isidentifier() for f in fields) \
            or not name.isidentifier():
        raise ProtocolError("bad named tuple")
    return _named_tuple(name, tuple(fields))(*dec.items(items, depth))


# Plain-data tags: tag -> f(decoder, the tag's value, node, depth). A
# TypeError or ValueError they raise (an unhashable set item or dict key,
# a malformed number) is a ProtocolError, as for the tags of ``tags``.
_PLAIN = {
    "$int": lambda dec, text, node, depth: int(_str(text), 16),
    "$float": _float,
    "$complex": _complex,
    "$bytes": lambda dec, index, node, depth: bytes(dec.blob(index)),
    "$array": _array,
    "$scalar": _scalar,
    "$tuple": lambda dec, items, node, depth: tuple(dec.items(items, depth)),
    "$list": lambda dec, items, node, depth: dec.items(items, depth),
    "$set": lambda dec, items, node, depth: set(dec.items(items, depth)),
    "$dict": lambda dec, pairs, node, depth: dict(dec.pairs(pairs, depth)),
    "$npstr": lambda dec, text, node, depth: np.str_(_str(text)),
    "$fraction": _fraction,
    "$decimal": lambda dec, text, node, depth: decimal.Decimal(_str(text)),
    "$counter": lambda dec, pairs, node, depth: collections.Counter(
        dict(dec.pairs(pairs, depth))),
    "$odict": lambda dec, pairs, node, depth: collections.OrderedDict(
        dec.pairs(pairs, depth)),
    "$ddict": _ddict,
    "$deque": _deque,
    "$ntuple": _ntuple,
}


def decode(data, blobs, tags):
    """Rebuild a value sent by :func:`encode`."""
    return Decoder(blobs, tags)(data)


# ---- framing ---------------------------------------------------------------
def send_message(sock, doc, blobs=()):
    """Write one framed message (blocking)."""
    body = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
    parts = [struct.pack("<II", len(body), len(blobs)), body]
    for b in blobs:
        parts += [struct.pack("<Q", len(b)), b]
    sock.sendall(b"".join(parts))


class Reader:
    """Reads framed messages from a socket, with a deadline and size limits,
    so that a hostile or dead peer can neither hang nor exhaust the reader."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _take(self, n, deadline):
        while len(self.buf) < n:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ChannelTimeout()
            if not select.select([self.sock], [], [], left)[0]:
                raise ChannelTimeout()
            try:
                chunk = self.sock.recv(max(1 << 16, n - len(self.buf)))
            except OSError:
                chunk = b""
            if not chunk:
                raise ChannelClosed()
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read(self, timeout=None):
        """``(doc, blobs)``; raises ChannelTimeout, ChannelClosed or
        ProtocolError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        n_json, n_blobs = struct.unpack("<II", self._take(8, deadline))
        if n_json > MAX_JSON or n_blobs > MAX_BLOBS:
            raise ProtocolError("message too large")
        try:
            doc = json.loads(self._take(n_json, deadline))
        except (ValueError, RecursionError) as e:
            raise ProtocolError(f"bad JSON: {e}") from None
        blobs, total = [], 0
        for _ in range(n_blobs):
            (size,) = struct.unpack("<Q", self._take(8, deadline))
            total += size
            if total > MAX_BYTES:
                raise ProtocolError("message too large")
            blobs.append(self._take(size, deadline))
        return doc, blobs


def socketpair():
    """A connected pair of stream sockets."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
