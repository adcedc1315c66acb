"""The student end: runs a submission's code cells and answers requests.

This module runs inside the sandboxed student process (see ``boot``).
It never receives test code: only the submission's own cells, and
requests such as "get attribute ``forward`` of object 7" or "call object 7
with these arguments". Everything here can be patched by the student's
code, so the grader trusts none of it; it only has to be right for
honest submissions.
"""

import builtins
import itertools
import linecache
import operator
import os
import stat
import sys
import traceback

from .. import codec
from ..bridge import Bridge, BridgeError
from ..notebook import strip_magics

MAX_ITEMS = 1_000_000
MAX_OUTPUT = 1 << 20         # characters of output sent back per message
MAX_FILE = 64 << 20          # bytes of one working-folder file sent back
MAX_FILES = 2000             # entries of the working folder listed
_MISSING = object()

_OPERATORS = {name: getattr(operator, name) for name in (
    "add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "pow",
    "neg", "pos", "abs", "invert", "and_", "or_", "xor", "lshift", "rshift",
    "getitem", "setitem", "delitem", "iadd", "isub", "imul", "imatmul",
    "itruediv", "ifloordiv", "ipow", "contains")}
_OPERATORS.update(iter=iter, next=next)

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


class TrustedObject:
    """An object of the test (a function, a test double, a random
    generator): calling it, reading its attributes or indexing it asks the
    grader to do so; nothing else about it is visible."""

    __slots__ = ("_bridge", "_cid")

    def __init__(self, bridge, cid):
        object.__setattr__(self, "_bridge", bridge)
        object.__setattr__(self, "_cid", cid)

    def __call__(self, *args, **kwargs):
        return self._bridge.callback(self._cid, "call", list(args), kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._bridge.callback(self._cid, "getattr", [name], {})

    def __getitem__(self, key):
        return self._bridge.callback(self._cid, "getitem", [key], {})

    def __repr__(self):
        return "<object from the test>"


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
        self.watched = {}       # name -> the object the grader knows it by
        self.out = _Capture()
        self.exported = set()   # handles whose description was sent
        self.watch_files = False    # list the working folder in each reply

    def other_local(self, v, enc):
        """Anything that is not data or a library object: a handle."""
        if isinstance(v, TrustedObject):
            return {"$cb": v._cid}
        hid = self.handle_id.get(id(v))
        if hid is None or self.handles.get(hid) is not v:
            hid = next(self._hid)
            self.handles[hid] = v
            self.handle_id[id(v)] = hid
        cls = type(v)
        info = {"$h": hid, "mro": [_qual(c) for c in _type_attr(cls, "__mro__")][:40],
                "tensor": isinstance(v, self.Tensor)}
        if hid not in self.exported:
            self.exported.add(hid)
            info.update(_describe_object(self, v))
        methods = self.described.get(cls)
        if methods is None:
            methods = self.described[cls] = _methods(cls)
            info["methods"] = methods
        if isinstance(v, type):
            info["cmro"] = [_qual(c) for c in _type_attr(v, "__mro__") or ()][:40]
        info["call"] = callable(v)
        if hasattr(cls, "__next__") and not isinstance(v, type):
            info["iterator"] = True
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
            obj = self.callables[cid] = TrustedObject(self, cid)
        return obj

    # ---- requests ----------------------------------------------------------------
    def callback(self, cid, kind, args, kwargs):
        """Ask the grader to call (``kind`` "call"), read an attribute of
        ("getattr") or index ("getitem") its object ``cid``; serve requests
        that arrive meanwhile; return its result or raise its error."""
        self.send(self.news({"op": "callback", "cb": cid, "kind": kind,
                             "args": args, "kwargs": kwargs}))
        while True:
            doc, blobs = self.reader.read()
            msg = self.decode(doc, blobs)
            if type(msg) is dict and "op" in msg:
                self.handle(msg)
                continue
            if type(msg) is dict and "error" in msg:
                cls = getattr(builtins, str(msg.get("etype")), None)
                if not (isinstance(cls, type) and issubclass(cls, Exception)):
                    cls = RuntimeError
                raise cls(str(msg["error"]))
            return msg.get("ok") if type(msg) is dict else None

    def news(self, reply):
        """Add to an outgoing message what the grader must learn: output
        printed since the last message and the names it knows that
        student code has rebound or deleted since."""
        out = self.out.take()
        if out:
            reply["out"] = out
        changed = []
        for name, known in self.watched.items():
            if self.ns.get(name, _MISSING) is not known:
                changed.append(name)
        for name in changed:
            self.watched[name] = self.ns.get(name, _MISSING)
        if changed:
            reply["changed"] = changed
        if self.watch_files:
            reply["files"] = _list_files(None)
        return reply

    def handle(self, msg):
        """Run one request and send the reply."""
        capture = msg.get("op") != "exec"
        self.watch_files = msg.get("fs") is True
        if type(msg.get("put")) is dict:
            try:
                _put_files(msg["put"])
            except OSError:
                pass
        if capture:
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = self.out.stream("out"), self.out.stream("err")
        patched_input = msg.get("input")
        if patched_input is not None:
            saved_input, builtins.input = builtins.input, patched_input
        try:
            try:
                result = {"ok": self.run(msg)}
            finally:
                if capture:
                    sys.stdout, sys.stderr = saved
                if patched_input is not None:
                    builtins.input = saved_input
            # A list (dict, set, array) the test reads by name or as an
            # attribute is kept in step; results of calls are copies.
            self.share_containers = msg.get("op") in ("globals", "getattr")
            names = result["ok"] if msg.get("op") == "globals" else None
            try:
                self.send(self.news(result), (id(names),) if names is not None else ())
                return
            except BridgeError as e:
                reply = {"error": _describe(e)}
            finally:
                self.share_containers = False
        except BaseException as e:          # noqa: B902 (sys.exit in an answer)
            if isinstance(e, KeyboardInterrupt):
                raise
            reply = {"error": _describe(e)}
            if _is_student_class(type(e)):
                reply["error"]["cls"] = type(e)
        try:
            self.send(self.news(reply))
        except BridgeError:
            reply["error"].pop("cls", None)
            self.send(reply)

    def run(self, msg):
        """The result of one request (exceptions propagate)."""
        op = msg["op"]
        if op == "exec":
            return self.run_cell(msg["source"], msg.get("name", "<cell>"))
        if op == "globals":
            found = {}
            for name in msg["names"]:
                value = self.ns.get(name, _MISSING)
                self.watched[name] = value
                if value is not _MISSING:
                    found[name] = value
            return found
        if op == "setname":
            self.ns[msg["name"]] = self.watched[msg["name"]] = msg["value"]
            return None
        if op == "delname":
            value = self.ns.pop(msg["name"], _MISSING)
            self.watched[msg["name"]] = _MISSING
            return value is not _MISSING
        if op == "files":
            return _list_files(msg.get("known") or {})
        if op == "noop":
            return None
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


    def run_cell(self, source, name):
        """Run one cell as IPython would: its source is remembered for
        ``inspect.getsource``, and the value of a final expression becomes
        ``_``."""
        import ast
        text = strip_magics(source)
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
        tree = ast.parse(text, name)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, name, "exec"), self.ns)
        if last is not None:
            value = eval(compile(last, name, "eval"), self.ns)
            if value is not None:
                self.ns["_"] = value
        return None


class _Capture:
    """What student code prints while serving a request, kept (up to
    MAX_OUTPUT characters) until the next message to the grader."""

    def __init__(self):
        self.parts, self.size, self.dropped = [], 0, False

    def stream(self, name):
        capture = self

        class Stream:
            encoding = "utf-8"

            def write(self, text):
                text = str(text)
                if capture.size + len(text) > MAX_OUTPUT:
                    capture.dropped = True
                    text = text[:max(0, MAX_OUTPUT - capture.size)]
                if text:
                    capture.size += len(text)
                    if capture.parts and capture.parts[-1][0] == name:
                        capture.parts[-1][1] += text
                    else:
                        capture.parts.append([name, text])
                return len(text)

            def flush(self):
                pass

            def isatty(self):
                return False

        return Stream()

    def take(self):
        parts = [[n, t] for n, t in self.parts]
        if self.dropped:
            parts.append(["err", "\n[output cut: more than "
                          f"{MAX_OUTPUT} characters]\n"])
        self.parts, self.size, self.dropped = [], 0, False
        return parts


def _list_files(known):
    """``{relative path: [size, mtime_ns]}`` of the plain files in the
    working folder (links and special files left out); with ``known``
    (the grader's copy), also the bytes of every file that differs."""
    found = {}
    stack = [""]
    while stack and len(found) < MAX_FILES:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder or "."))
        except OSError:
            continue
        for entry in entries[:MAX_FILES]:
            rel = os.path.join(folder, entry.name) if folder else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(rel)
            elif stat.S_ISREG(st.st_mode):
                found[rel] = [st.st_size, st.st_mtime_ns]
    if known is None:
        return found
    out = {}
    for rel, info in found.items():
        if known.get(rel) == info:
            out[rel] = info
            continue
        data = None
        if info[0] <= MAX_FILE:
            try:
                fd = os.open(rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as f:
                    data = f.read(MAX_FILE + 1)[:MAX_FILE]
            except OSError:
                continue
        out[rel] = [info[0], info[1], data]
    return out


def _put_files(files):
    """Write (or, for None, delete) files the test wrote or removed."""
    for rel, data in files.items():
        if type(rel) is not str or rel.startswith("/") or ".." in rel.split("/"):
            continue
        if data is None:
            try:
                os.unlink(rel)
            except OSError:
                pass
            continue
        folder = os.path.dirname(rel)
        if folder:
            os.makedirs(folder, exist_ok=True)
        try:
            os.unlink(rel)
        except OSError:
            pass
        with open(rel, "wb") as f:
            f.write(data)
    return None


def _is_student_class(cls):
    return isinstance(cls, type) and _type_attr(cls, "__module__") == "__main__"


def _describe_object(bridge, v):
    """What the grader needs to stand in for a student function or class
    locally: names, docstring, source, bases (all plain data)."""
    import inspect
    import types
    info = {}
    if isinstance(v, (types.FunctionType, types.BuiltinFunctionType)):
        info["fn"] = True
    elif not isinstance(v, type):
        if _is_student_class(type(v)):
            info["cls"] = bridge.other_local(type(v), None)
        return info
    for key in ("__name__", "__qualname__", "__doc__"):
        try:
            if isinstance(v, type):     # never a metaclass's property
                value = type.__dict__[key].__get__(v, type) if key != "__doc__" \
                    else type.__dict__["__dict__"].__get__(v, type).get(key)
            else:
                value = getattr(v, key, None)
        except Exception:
            value = None
        if type(value) is str:
            info[key.strip("_")] = value[:100_000]
    if _is_student_class(v) or info.get("fn"):
        try:
            info["source"] = inspect.getsource(v)[:200_000]
        except Exception:
            pass
    if info.get("fn"):
        try:
            info["params"] = _parameters(inspect.signature(v))
        except Exception:
            pass
    if isinstance(v, type) and _is_student_class(v):
        bases = []
        for base in _type_attr(v, "__bases__") or ():
            bases.append(bridge.other_local(base, None) if _is_student_class(base)
                         else {"lib": _qual(base)})
        info["bases"] = bases
    return info


def _parameters(sig):
    """A signature as plain data: ``[name, kind, has a default, the
    default if it is a number, string, bool or None]`` per parameter."""
    out = []
    for p in list(sig.parameters.values())[:200]:
        has = p.default is not p.empty
        plain = type(p.default) in (int, float, str, bool, type(None))
        out.append([p.name, int(p.kind), has, p.default if has and plain else None,
                    has and not plain])
    return out


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


def _type_attr(cls, name):
    """A class's own ``__module__``, ``__qualname__``... read past any
    property of its metaclass."""
    try:
        return type.__dict__[name].__get__(cls, type)
    except Exception:
        return None


def _qual(cls):
    return f"{_type_attr(cls, '__module__')}.{_type_attr(cls, '__qualname__')}"


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
