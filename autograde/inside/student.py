"""The student end: runs a submission's code cells and answers requests.

This module runs inside the sandboxed student process (see ``zygote``).
It never receives test code: only the submission's own cells, and
requests such as "get attribute ``forward`` of object 7" or "call object 7
with these arguments". Everything here can be patched by the student's
code, so the grader trusts none of it; it only has to be right for
honest submissions.
"""

import builtins
import itertools
import operator
import os
import sys
import traceback

from .. import codec
from ..bridge import Bridge, BridgeError
from ..notebook import strip_magics

MAX_ITEMS = 1_000_000

_OPERATORS = {name: getattr(operator, name) for name in (
    "add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "pow",
    "neg", "pos", "abs", "invert", "and_", "or_", "xor", "lshift", "rshift",
    "getitem", "setitem", "delitem", "iadd", "isub", "imul", "imatmul",
    "itruediv", "ifloordiv", "ipow", "contains")}

class _InertShell:
    """What ``get_ipython()`` returns here: accepts anything, does nothing.

    Hooks such as input transformers or custom exception handlers would
    only act on an IPython shell; there is none, so they are inert."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __iter__(self):
        return iter(())

    def __bool__(self):
        return False


class TrustedCallable:
    """A function of the grader (a factory in a test): calling it asks the
    grader to run it; nothing else about it is visible."""

    __slots__ = ("_bridge", "_cid")

    def __init__(self, bridge, cid):
        self._bridge, self._cid = bridge, cid

    def __call__(self, *args, **kwargs):
        return self._bridge.callback(self._cid, list(args), kwargs)

    def __repr__(self):
        return "<function from the test>"


class StudentBridge(Bridge):
    """The student end of the bridge: exports handles, runs requests."""

    def __init__(self, sock):
        super().__init__("student", sock)
        self.handles = {}
        self.handle_id = {}
        self._hid = itertools.count(1)
        self.ns = {"__name__": "__main__", "__builtins__": builtins,
                   "get_ipython": lambda: _InertShell()}
        self.callables = {}
        self.described = {}     # class -> its method names (sent once)

    def other_local(self, v, enc):
        """Anything that is not data or a library object: a handle."""
        if isinstance(v, TrustedCallable):
            return {"$cb": v._cid}
        hid = self.handle_id.get(id(v))
        if hid is None or self.handles.get(hid) is not v:
            hid = next(self._hid)
            self.handles[hid] = v
            self.handle_id[id(v)] = hid
        cls = type(v)
        info = {"$h": hid, "mro": [_qual(c) for c in cls.__mro__][:40],
                "tensor": isinstance(v, self.Tensor)}
        methods = self.described.get(cls)
        if methods is None:
            methods = self.described[cls] = _methods(cls)
            info["methods"] = methods
        if isinstance(v, type):
            info["cmro"] = [_qual(c) for c in v.__mro__][:40]
        info["call"] = callable(v)
        return info

    def _dec_handle(self, node, dec):
        hid = node["$h"]
        if hid not in self.handles:
            raise codec.ProtocolError(f"unknown handle {hid!r}")
        return self.handles[hid]

    def _dec_callable(self, node, dec):
        cid = node["$cb"]
        obj = self.callables.get(cid)
        if obj is None:
            obj = self.callables[cid] = TrustedCallable(self, cid)
        return obj

    # ---- requests ----------------------------------------------------------------
    def callback(self, cid, args, kwargs):
        """Ask the grader to run its function ``cid``; serve requests that
        arrive meanwhile; return its result or raise its error."""
        self.send({"op": "callback", "cb": cid, "args": args, "kwargs": kwargs})
        while True:
            doc, blobs = self.reader.read()
            msg = self.decode(doc, blobs)
            if type(msg) is dict and "op" in msg:
                self.handle(msg)
                continue
            if type(msg) is dict and "error" in msg:
                raise RuntimeError(f"the test's function failed: {msg['error']}")
            return msg.get("ok") if type(msg) is dict else None

    def handle(self, msg):
        """Run one request and send the reply."""
        try:
            result = {"ok": self.run(msg)}
            try:
                self.send(result)
                return
            except BridgeError as e:
                reply = {"error": _describe(e)}
        except BaseException as e:          # noqa: B902 (sys.exit in an answer)
            if isinstance(e, KeyboardInterrupt):
                raise
            reply = {"error": _describe(e)}
        self.send(reply)

    def run(self, msg):
        """The result of one request (exceptions propagate)."""
        op = msg["op"]
        if op == "exec":
            code = compile(strip_magics(msg["source"]), msg.get("name", "<cell>"),
                           "exec")
            exec(code, self.ns)
            return None
        if op == "globals":
            return {n: self.ns[n] for n in msg["names"] if n in self.ns}
        if op == "getattr":
            return getattr(msg["obj"], msg["name"])
        if op == "setattr":
            setattr(msg["obj"], msg["name"], msg["value"])
            return None
        if op == "delattr":
            delattr(msg["obj"], msg["name"])
            return None
        if op == "call":
            return msg["obj"](*msg["args"], **msg["kwargs"])
        if op == "callmethod":
            return getattr(msg["obj"], msg["name"])(*msg["args"], **msg["kwargs"])
        if op == "operator":
            return _OPERATORS[msg["name"]](*msg["args"])
        if op == "forget":
            self.forget(msg["ids"])
            return None
        if op == "convert":
            return _convert(self, msg["obj"], msg["kind"], msg.get("arg"))
        raise ValueError(f"unknown request {op!r}")


def _convert(bridge, obj, kind, arg):
    if kind == "float":
        return float(obj)
    if kind == "int":
        return int(obj)
    if kind == "index":
        return operator.index(obj)
    if kind == "complex":
        return complex(obj)
    if kind == "bool":
        return bool(obj)
    if kind == "len":
        return len(obj)
    if kind == "str":
        return str(obj)[:100_000]
    if kind == "repr":
        return repr(obj)[:100_000]
    if kind == "format":
        return format(obj, arg)[:100_000]
    if kind == "list":
        items = list(itertools.islice(iter(obj), MAX_ITEMS + 1))
        if len(items) > MAX_ITEMS:
            raise ValueError("too many items to iterate over")
        return items
    if kind == "array":
        import numpy as np
        return np.asarray(obj)
    if kind == "tensor":
        return obj.detach()
    if kind == "dir":
        return sorted(str(n) for n in dir(obj))[:10_000]
    if kind == "isinstance":
        return isinstance(arg, obj)
    if kind == "issubclass":
        return issubclass(arg, obj)
    if kind == "enter":
        return obj.__enter__()
    if kind == "exit":
        return obj.__exit__(*arg)
    raise ValueError(f"unknown conversion {kind!r}")


def _methods(cls):
    """Names of the plain methods of a class (so that ``obj.f(x)`` takes one
    round trip instead of two)."""
    import inspect
    import types
    kinds = (types.FunctionType, types.BuiltinFunctionType,
             types.MethodDescriptorType, staticmethod, classmethod)
    names = []
    for name in dir(cls):
        if name.startswith("__"):
            continue
        try:
            attr = inspect.getattr_static(cls, name)
        except AttributeError:
            continue
        if isinstance(attr, kinds):
            names.append(name)
    return names[:2000]


def _qual(cls):
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"


def _describe(exc):
    """Type (with its bases) and message of an exception, as plain data."""
    try:
        message = str(exc)
    except BaseException:
        message = "<unprintable message>"
    tb = traceback.extract_tb(exc.__traceback__)
    where = [f"{f.name} (line {f.lineno})" for f in tb
             if f.filename.startswith("<")][-3:]
    return {"type": type(exc).__name__,
            "mro": [_qual(c) for c in type(exc).__mro__][:20],
            "message": message[:4000], "where": where}


def serve(sock):
    """Answer requests on ``sock`` until the grader closes it."""
    return _serve(sock)


def _serve(sock):
    bridge = StudentBridge(sock)
    sys.setrecursionlimit(3000)
    while True:
        try:
            doc, blobs = bridge.reader.read()
        except codec.ChannelClosed:
            return
        try:
            msg = bridge.decode(doc, blobs)
        except Exception:
            if os.environ.get("AUTOGRADE_DEBUG"):
                traceback.print_exc()
            raise
        if type(msg) is not dict or "op" not in msg:
            continue
        bridge.handle(msg)
