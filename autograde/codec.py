"""The wire format between the trusted grader and a student process.

A message is one JSON document plus a list of binary blobs (the raw bytes
of arrays). Only plain data crosses: ``None``, bools, ints, floats,
strings, bytes, tuples, lists, dicts, sets and numeric NumPy arrays and
scalars. Anything else is replaced by a tag that the other side
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
    with ``$``).
    """

    def __init__(self, other, container=None):
        self.blobs = []
        self.other = other
        # container(value, encoder): a tag for a list, dict, set or array
        # that both sides keep in step (see bridge), or None to copy it.
        self.container = container

    def blob(self, data):
        """Store raw bytes; returns their index."""
        self.blobs.append(bytes(data))
        return len(self.blobs) - 1

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
        if t is tuple:
            return {"$tuple": [self(x, depth + 1) for x in v]}
        if t is list:
            return {"$list": [self(x, depth + 1) for x in v]}
        if t is dict:
            return {"$dict": [[self(k, depth + 1), self(x, depth + 1)]
                              for k, x in v.items()]}
        if t is set or t is frozenset:
            return {"$set": [self(x, depth + 1) for x in v]}
        if t is np.ndarray and v.dtype.kind in _ARRAY_KINDS and v.dtype.itemsize:
            a = np.ascontiguousarray(v)
            return {"$array": self.blob(a.view(np.uint8).reshape(-1).data
                                        if a.size else b""),
                    "dtype": a.dtype.str, "shape": list(a.shape)}
        if t in _SCALARS:
            a = np.asarray(v)
            return {"$scalar": self.blob(a.tobytes()), "dtype": a.dtype.str}
        std = self.standard(v, t, depth)
        if std is not None:
            return std
        return self.other(v, self)

    def standard(self, v, t, depth):
        """The standard library's value types (and NumPy strings), sent
        as values: they compare by value, so a copy gives the same
        verdict."""
        def pairs(d):
            return [[self(k, depth + 1), self(x, depth + 1)] for k, x in d.items()]
        if t is np.str_:
            return {"$npstr": str(v)}
        if t is fractions.Fraction:
            return {"$fraction": [self(v.numerator), self(v.denominator)]}
        if t is decimal.Decimal:
            return {"$decimal": str(v)}
        if t is collections.Counter:
            return {"$counter": pairs(v)}
        if t is collections.OrderedDict:
            return {"$odict": pairs(v)}
        if t is collections.defaultdict:
            factory = getattr(v.default_factory, "__name__", None)
            if v.default_factory is None or _FACTORIES.get(factory) is v.default_factory:
                return {"$ddict": pairs(v), "factory": factory
                        if v.default_factory is not None else None}
            return None
        if t is collections.deque:
            return {"$deque": [self(x, depth + 1) for x in v], "maxlen": v.maxlen}
        if issubclass(t, tuple) and type(getattr(t, "_fields", None)) is tuple \
                and all(type(f) is str for f in t._fields):
            return {"$ntuple": [self(x, depth + 1) for x in v],
                    "name": str(t.__name__), "fields": list(t._fields)}
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

    def _blob(self, i):
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
        if key == "$int":
            return int(_str(node[key]), 16)
        if key == "$float":
            text = _str(node[key])
            if text not in ("nan", "inf", "-inf"):
                raise ProtocolError(f"bad float {text!r}")
            return float(text)
        if key == "$complex":
            re_, im = node[key]
            return complex(float(self(re_, depth + 1)), float(self(im, depth + 1)))
        if key == "$bytes":
            return bytes(self._blob(node[key]))
        if key in ("$tuple", "$list", "$set"):
            items = node[key]
            if type(items) is not list:
                raise ProtocolError("bad sequence")
            out = [self(x, depth + 1) for x in items]
            if key == "$tuple":
                return tuple(out)
            if key == "$set":
                try:
                    return set(out)
                except TypeError as e:
                    raise ProtocolError(f"unhashable set item: {e}") from None
            return out
        if key == "$dict":
            pairs = node[key]
            if type(pairs) is not list:
                raise ProtocolError("bad dict")
            out = {}
            for pair in pairs:
                if type(pair) is not list or len(pair) != 2:
                    raise ProtocolError("bad dict item")
                k = self(pair[0], depth + 1)
                try:
                    out[k] = self(pair[1], depth + 1)
                except TypeError as e:
                    raise ProtocolError(f"unhashable dict key: {e}") from None
            return out
        if key == "$array":
            dt = self.dtype(node.get("dtype"))
            shape = node.get("shape")
            if type(shape) is not list or not all(
                    type(n) is int and 0 <= n < 2**40 for n in shape):
                raise ProtocolError(f"bad shape {shape!r}")
            data = self._blob(node[key])
            n = math.prod(shape)
            if n * dt.itemsize != len(data):
                raise ProtocolError("array size does not match its shape")
            return np.frombuffer(data, dtype=dt).reshape(shape).copy()
        if key == "$scalar":
            dt = self.dtype(node.get("dtype"))
            data = self._blob(node[key])
            if len(data) != dt.itemsize:
                raise ProtocolError("bad scalar")
            return np.frombuffer(data, dtype=dt)[0].copy()
        if key in _STANDARD:
            try:
                return _STANDARD[key](self, node, depth)
            except ProtocolError:
                raise
            except (TypeError, ValueError, ArithmeticError, KeyError) as e:
                raise ProtocolError(f"bad {key} value: {e}") from None
        handler = self.tags.get(key)
        if handler is None:
            raise ProtocolError(f"unknown tag {key!r}")
        return handler(node, self)

    def pairs(self, items, depth):
        """Key-value pairs of a mapping tag, decoded."""
        if type(items) is not list:
            raise ProtocolError("bad mapping")
        out = []
        for pair in items:
            if type(pair) is not list or len(pair) != 2:
                raise ProtocolError("bad mapping item")
            out.append((self(pair[0], depth + 1), self(pair[1], depth + 1)))
        return out

    def items(self, items, depth):
        """The items of a sequence tag, decoded."""
        if type(items) is not list:
            raise ProtocolError("bad sequence")
        return [self(x, depth + 1) for x in items]


@functools.lru_cache(maxsize=256)
def _named_tuple(name, fields):
    return collections.namedtuple(name, fields)


def _dec_ntuple(dec, node, depth):
    name, fields = node.get("name"), node.get("fields")
    if type(name) is not str or type(fields) is not list or len(fields) > 1000 \
            or not all(type(f) is str and f.isidentifier() for f in fields) \
            or not name.isidentifier():
        raise ProtocolError("bad named tuple")
    cls = _named_tuple(name, tuple(fields))
    return cls(*dec.items(node["$ntuple"], depth))


def _dec_decimal(dec, node, depth):
    text = _str(node["$decimal"])
    return decimal.Decimal(text)


def _dec_fraction(dec, node, depth):
    num, den = dec.items(node["$fraction"], depth)
    if type(num) is not int or type(den) is not int:
        raise ProtocolError("bad fraction")
    return fractions.Fraction(num, den)


def _dec_ddict(dec, node, depth):
    factory = node.get("factory")
    if factory is not None and factory not in _FACTORIES:
        raise ProtocolError("bad defaultdict factory")
    return collections.defaultdict(_FACTORIES.get(factory), dec.pairs(node["$ddict"], depth))


def _dec_deque(dec, node, depth):
    maxlen = node.get("maxlen")
    if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
        raise ProtocolError("bad deque")
    return collections.deque(dec.items(node["$deque"], depth), maxlen)


_STANDARD = {
    "$npstr": lambda dec, node, depth: np.str_(_str(node["$npstr"])),
    "$fraction": _dec_fraction,
    "$decimal": _dec_decimal,
    "$counter": lambda dec, node, depth: collections.Counter(
        dict(dec.pairs(node["$counter"], depth))),
    "$odict": lambda dec, node, depth: collections.OrderedDict(
        dec.pairs(node["$odict"], depth)),
    "$ddict": _dec_ddict,
    "$deque": _dec_deque,
    "$ntuple": _dec_ntuple,
}


def _str(x):
    if type(x) is not str or len(x) > 1_000_000:
        raise ProtocolError("expected a short string")
    return x


def decode(data, blobs, tags):
    """Rebuild a value sent by :func:`encode`."""
    return Decoder(blobs, tags)(data)


# ---- framing ---------------------------------------------------------------
def send_message(sock, doc, blobs=()):
    """Write one framed message (blocking)."""
    body = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
    parts = [struct.pack("<II", len(body), len(blobs)), body]
    for b in blobs:
        parts.append(struct.pack("<Q", len(b)))
        parts.append(b)
    sock.sendall(b"".join(parts))


class Reader:
    """Reads framed messages from a socket, with a deadline and size limits,
    so that a hostile or dead peer can neither hang nor exhaust the reader."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ChannelTimeout()
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                raise ChannelTimeout()
            try:
                chunk = self.sock.recv(max(1 << 16, n - len(self.buf)))
            except (ConnectionError, OSError):
                chunk = b""
            if not chunk:
                raise ChannelClosed()
            self.buf += chunk

    def _take(self, n, deadline):
        self._fill(n, deadline)
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
