"""The trusted end: a student process seen through handles.

:class:`StudentProcess` starts a sandboxed student process (through a
zygote), runs cells in it and answers for its death or silence.
:class:`Remote` is a handle on an object that lives there. A handle
forwards attribute access, calls and arithmetic, but every *verdict*
operation is computed here, with the grader's own code, from plain data:

- ``==``, ``<``, ``bool()`` on a tensor first copy its values here, so a
  lying ``__eq__`` is never consulted; on any other student object ``==``
  is identity;
- ``float()``, ``len()``, ``np.asarray()`` return exact built-in types
  decoded from the wire, never student objects.
"""

import builtins
import functools
import itertools
import operator
import os
import time
import types

import numpy as np

from . import codec, sandbox
from .bridge import Bridge, BridgeError


class StudentTimeout(BaseException):
    """The student process did not answer in time (it was killed).

    Derived from BaseException so that a test's ``except Exception`` cannot
    swallow it."""


class StudentCrashed(BaseException):
    """The student process died (or broke the protocol) while working."""


class RemoteError(Exception):
    """Base of exceptions raised by student code (see ``remote_exception``)."""


_OPAQUE = object()


@functools.lru_cache(maxsize=None)
def _exception_class(name, mro):
    base = RemoteError
    for qual in mro:
        mod, _, attr = qual.rpartition(".")
        cls = None
        if mod == "builtins":
            cls = getattr(builtins, attr, None)
        elif mod.startswith("d2lblocks") or mod.startswith("numpy"):
            try:
                from .bridge import resolve
                cls = resolve(f"{mod}:{attr}")
            except Exception:
                cls = None
        if isinstance(cls, type) and issubclass(cls, Exception) and cls is not Exception:
            base = cls
            break
    bases = (base,) if base is RemoteError else (base, RemoteError)
    try:
        return type(str(name)[:100] or "Error", bases, {"__module__": "student"})
    except TypeError:
        return type(str(name)[:100] or "Error", (RemoteError,), {"__module__": "student"})


def remote_exception(info):
    """A local exception that mirrors one raised by student code: its
    class derives from the matching built-in or library exception (so
    ``except ValueError`` works), never from BaseException-only classes."""
    if type(info) is not dict:
        return RemoteError("the student process reported a malformed error")
    mro = info.get("mro")
    mro = tuple(m for m in mro if type(m) is str)[:20] if type(mro) is list else ()
    name = info.get("type") if type(info.get("type")) is str else "Error"
    message = info.get("message") if type(info.get("message")) is str else ""
    cls = _exception_class(name, mro)
    try:
        exc = cls(message)
    except Exception:
        exc = RemoteError(message)
    exc.remote_where = [w for w in info.get("where", []) if type(w) is str][:3] \
        if type(info.get("where")) is list else []
    return exc


@functools.lru_cache(maxsize=None)
def _fake_class(mro):
    """A local class standing for a student class, so ``isinstance(h,
    nn.Block)`` answers as it would in the kernel."""
    from .bridge import resolve
    bases = []
    for qual in mro:
        mod, _, attr = qual.rpartition(".")
        if not (mod.startswith("d2lblocks") or mod in ("builtins", "numpy")):
            continue
        try:
            cls = resolve(f"{mod}:{attr}", ("d2lblocks", "numpy")) \
                if mod != "builtins" else getattr(builtins, attr)
        except Exception:
            continue
        if isinstance(cls, type) and cls is not object:
            bases.append(cls)
            break
    name = mro[0].rpartition(".")[2] if mro else "Remote"
    try:
        return type(name, tuple(bases) or (object,), {"__module__": "student"})
    except TypeError:
        return type(name, (object,), {"__module__": "student"})


class Remote:
    """A handle on an object in the student process."""

    __slots__ = ("_ag_proc", "_ag_hid", "_ag_gen", "_ag_info", "__weakref__")
    __array_ufunc__ = None
    __hash__ = object.__hash__

    def __init__(self, proc, hid, gen, info):
        object.__setattr__(self, "_ag_proc", proc)
        object.__setattr__(self, "_ag_hid", hid)
        object.__setattr__(self, "_ag_gen", gen)
        object.__setattr__(self, "_ag_info", info)

    # ---- identity --------------------------------------------------------------
    @property
    def __class__(self):
        return _fake_class(tuple(self._ag_info.get("mro", ())))

    def _ag_request(self, op, **kw):
        return self._ag_proc.request(dict(op=op, obj=self, **kw))

    def _ag_value(self):
        """A local copy for verdicts: a Tensor for a student tensor, else
        the opaque marker."""
        if self._ag_info.get("tensor"):
            return self._ag_request("convert", kind="tensor")
        return _OPAQUE

    # ---- attributes and calls ----------------------------------------------------
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__") and name not in (
                "__dict__", "__name__", "__qualname__", "__module__", "__doc__",
                "__wrapped__"):
            raise AttributeError(name)
        if name in self._ag_info.get("methods", ()):
            return _Method(self, name)
        return self._ag_request("getattr", name=name)

    def __setattr__(self, name, value):
        self._ag_request("setattr", name=name, value=value)

    def __delattr__(self, name):
        self._ag_request("delattr", name=name)

    def __call__(self, *args, **kwargs):
        return self._ag_request("call", args=list(args), kwargs=kwargs)

    def __repr__(self):
        try:
            return self._ag_request("convert", kind="repr")
        except Exception:
            return "<student object>"

    def __str__(self):
        return self._ag_request("convert", kind="str")

    def __format__(self, spec):
        return self._ag_request("convert", kind="format", arg=spec)

    def __dir__(self):
        return self._ag_request("convert", kind="dir")

    # ---- conversions: plain values decoded here -----------------------------------
    def __float__(self):
        return _exact(self._ag_request("convert", kind="float"), float)

    def __int__(self):
        return _exact(self._ag_request("convert", kind="int"), int)

    def __index__(self):
        return _exact(self._ag_request("convert", kind="index"), int)

    def __complex__(self):
        return _exact(self._ag_request("convert", kind="complex"), complex)

    def __len__(self):
        n = _exact(self._ag_request("convert", kind="len"), int)
        if n < 0:
            raise ValueError("len() of a student object was negative")
        return n

    def __iter__(self):
        items = self._ag_request("convert", kind="list")
        if type(items) is not list:
            raise TypeError("iterating a student object gave no list")
        return iter(items)

    def __array__(self, dtype=None, copy=None):
        value = self._ag_value()
        if value is _OPAQUE:
            value = self._ag_request("convert", kind="array")
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError("a student object did not convert to a numeric array")
        return arr if dtype is None else arr.astype(dtype)

    def __bool__(self):
        value = self._ag_value()
        if value is _OPAQUE:
            return _exact(self._ag_request("convert", kind="bool"), bool)
        return bool(value)

    # ---- comparisons: computed here ----------------------------------------------
    def _ag_compare(self, other, op):
        mine = self._ag_value()
        if mine is _OPAQUE:
            return NotImplemented
        if isinstance(other, Remote):
            other = other._ag_value()
            if other is _OPAQUE:
                return NotImplemented
        return op(mine, other)

    def __eq__(self, other):
        return self._ag_compare(other, operator.eq)

    def __ne__(self, other):
        return self._ag_compare(other, operator.ne)

    def __lt__(self, other):
        return self._ag_compare(other, operator.lt)

    def __le__(self, other):
        return self._ag_compare(other, operator.le)

    def __gt__(self, other):
        return self._ag_compare(other, operator.gt)

    def __ge__(self, other):
        return self._ag_compare(other, operator.ge)

    # ---- containers and context managers ----------------------------------------
    def __getitem__(self, key):
        return self._ag_proc.request({"op": "operator", "name": "getitem",
                                      "args": [self, key]})

    def __setitem__(self, key, value):
        self._ag_proc.request({"op": "operator", "name": "setitem",
                               "args": [self, key, value]})

    def __delitem__(self, key):
        self._ag_proc.request({"op": "operator", "name": "delitem",
                               "args": [self, key]})

    def __contains__(self, item):
        return _exact(self._ag_proc.request(
            {"op": "operator", "name": "contains", "args": [self, item]}), bool)

    def __enter__(self):
        return self._ag_request("convert", kind="enter")

    def __exit__(self, *exc):
        return bool(self._ag_request("convert", kind="exit",
                                     arg=[None, None, None]))

    def __instancecheck__(self, obj):
        if isinstance(obj, Remote) or type(obj) in (int, float, str, bool):
            return _exact(self._ag_request("convert", kind="isinstance", arg=obj), bool)
        return False

    def __subclasscheck__(self, cls):
        if isinstance(cls, Remote):
            return _exact(self._ag_request("convert", kind="issubclass", arg=cls), bool)
        return False


class _Method:
    """``handle.name`` for a method of the student's class: calling it
    takes one round trip (no handle on the bound method is made)."""

    __slots__ = ("_owner", "_name")

    def __init__(self, owner, name):
        self._owner, self._name = owner, name

    def __call__(self, *args, **kwargs):
        owner = self._owner
        return owner._ag_proc.request({"op": "callmethod", "obj": owner,
                                       "name": self._name, "args": list(args),
                                       "kwargs": kwargs})

    def __getattr__(self, attr):
        if attr.startswith("__") and attr not in ("__name__", "__doc__", "__self__"):
            raise AttributeError(attr)
        bound = self._owner._ag_request("getattr", name=self._name)
        return getattr(bound, attr)

    def __repr__(self):
        return f"<method {self._name} of a student object>"


def _operator(name, swap=False):
    def method(self, *args):
        operands = [args[0], self] if swap else [self, *args]
        return self._ag_proc.request({"op": "operator", "name": name,
                                      "args": operands})
    method.__name__ = name
    return method


for _name in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod",
              "pow", "and", "or", "xor", "lshift", "rshift"):
    _op = _name + "_" if _name in ("and", "or") else _name
    setattr(Remote, f"__{_name}__", _operator(_op))
    setattr(Remote, f"__r{_name}__", _operator(_op, swap=True))
for _name in ("iadd", "isub", "imul", "imatmul", "itruediv", "ifloordiv", "ipow"):
    setattr(Remote, f"__{_name}__", _operator(_name))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(Remote, f"__{_name}__", _operator(_name))


def _exact(value, kind):
    if type(value) is not kind:
        if kind is float and type(value) is int:
            return float(value)
        raise TypeError(f"the student object gave a {type(value).__name__} "
                        f"where a {kind.__name__} was expected")
    return value


class TrustedBridge(Bridge):
    """The grader's end of the bridge."""

    def __init__(self, sock, proc):
        super().__init__("trusted", sock)
        self.proc = proc
        self.remotes = {}
        self.callables = {}
        self.callable_id = {}
        self._cid = itertools.count(1)
        self.methods = {}       # class (as its mro) -> method names

    def other_local(self, v, enc):
        """Handles go back as references; test functions as callables."""
        if isinstance(v, Remote):
            if v._ag_proc is not self.proc or v._ag_gen != self.proc.generation:
                raise StudentCrashed("this object belonged to a student process "
                                     "that was restarted after a crash or timeout")
            return {"$h": v._ag_hid}
        if callable(v) and not isinstance(v, type):
            cid = self.callable_id.get(id(v))
            if cid is None:
                cid = next(self._cid)
                self.callables[cid] = v
                self.callable_id[id(v)] = cid
            return {"$cb": cid}
        raise BridgeError(f"a {type(v).__name__} from the test cannot be given "
                          f"to student code (only data, d2lblocks objects and "
                          f"functions can)")

    def _dec_handle(self, node, dec):
        hid = node["$h"]
        if type(hid) is not int or hid <= 0:
            raise codec.ProtocolError("bad handle")
        r = self.remotes.get(hid)
        if r is None:
            mro = tuple(m for m in node.get("mro", []) if type(m) is str)[:40]
            methods = node.get("methods")
            if type(methods) is list:
                self.methods[mro] = frozenset(m for m in methods if type(m) is str)
            info = {"mro": mro, "tensor": node.get("tensor") is True,
                    "call": node.get("call") is True,
                    "methods": self.methods.get(mro, frozenset())}
            r = self.remotes[hid] = Remote(self.proc, hid, self.proc.generation, info)
        return r

    def _dec_callable(self, node, dec):
        cid = node["$cb"]
        if cid not in self.callables:
            raise codec.ProtocolError("unknown callable")
        return self.callables[cid]


class StudentProcess:
    """A sandboxed student process, restarted on demand.

    Arguments:
        zygote: the :class:`sandbox.Zygote` that forks it.
        cfg: the sandbox configuration (see ``inside.zygote.enter``).
        uid: the uid it runs as (None: the grader's own).
    """

    def __init__(self, zygote, cfg):
        self.zygote = zygote
        self.cfg = cfg
        self.generation = 0
        self.pid = None
        self.bridge = None
        self.deadline = None
        self.event = None       # "timeout" / "crashed" seen since last reset
        self.restarts = 0

    def start(self):
        """Start a fresh process (a new generation of handles)."""
        self.stop()
        self.generation += 1
        self.pid, sock = self.zygote.spawn(self.cfg)
        self.bridge = TrustedBridge(sock, self)

    def stop(self):
        """Kill the process (its whole group, and everything of its uid)."""
        if self.pid is not None:
            sandbox.kill_group(self.pid)
            if self.cfg.get("uid") is not None:
                self.zygote.kill_uid(self.cfg["uid"])
            self.pid = None
        if self.bridge is not None:
            try:
                self.bridge.sock.close()
            except OSError:
                pass
            self.bridge = None

    @property
    def alive(self):
        """Whether a process is running (it may still be busy)."""
        return self.bridge is not None

    def request(self, msg, timeout=None):
        """Send a request, serve callbacks, return the result or raise
        the student's error (a RemoteError), StudentTimeout or
        StudentCrashed."""
        if self.bridge is None:
            raise StudentCrashed("the student process is not running")
        bridge = self.bridge
        try:
            bridge.send(msg)
            while True:
                left = None
                if self.deadline is not None:
                    left = self.deadline - time.monotonic()
                if timeout is not None:
                    left = timeout if left is None else min(left, timeout)
                if left is not None and left <= 0:
                    raise codec.ChannelTimeout()
                doc, blobs = bridge.reader.read(left)
                reply = bridge.decode(doc, blobs)
                if type(reply) is dict and reply.get("op") == "callback":
                    self._callback(reply)
                    continue
                break
        except codec.ChannelTimeout:
            self.event = "timeout"
            self.stop()
            raise StudentTimeout("the student's code did not finish in time") from None
        except (codec.ChannelClosed, codec.ProtocolError, OSError) as e:
            self.event = self.event or "crashed"
            self.stop()
            why = "the student process died" if isinstance(e, (codec.ChannelClosed, OSError)) \
                else f"the student process sent an invalid message ({e})"
            raise StudentCrashed(why) from None
        if type(reply) is not dict:
            self.stop()
            raise StudentCrashed("the student process sent an invalid reply")
        if "error" in reply:
            raise remote_exception(reply["error"])
        return reply.get("ok")

    def _callback(self, msg):
        fn = self.bridge.callables.get(msg.get("cb"))
        args, kwargs = msg.get("args"), msg.get("kwargs")
        if fn is None or type(args) is not list or type(kwargs) is not dict or \
                not all(type(k) is str for k in kwargs):
            self.bridge.send({"error": "bad callback"})
            return
        try:
            result = {"ok": fn(*args, **kwargs)}
        except (StudentTimeout, StudentCrashed):
            raise
        except Exception as e:
            result = {"error": f"{type(e).__name__}: {e}"}
        try:
            self.bridge.send(result)
        except BridgeError as e:
            self.bridge.send({"error": str(e)})

    def run_cell(self, source, name, timeout):
        """Execute one student cell; returns None or the error raised."""
        try:
            self.request({"op": "exec", "source": source, "name": name}, timeout)
        except RemoteError as e:
            return e
        return None

    def collect(self, roots, timeout):
        """Stop sharing the library objects that ``roots`` (the test's
        namespace) no longer reach, on both sides, so that the state sent
        with every message stays small."""
        bridge = self.bridge
        if bridge is None:
            return
        keep, stack, seen = set(), list(roots), set()
        while stack:
            v = stack.pop()
            if id(v) in seen or isinstance(v, Remote):
                continue
            seen.add(id(v))
            sid = bridge.shared_id.get(id(v))
            if sid is not None:
                keep.add(sid)
                stack.extend(bridge.state_of(v).values())
            elif type(v) in (list, tuple, set, frozenset):
                stack.extend(v)
            elif type(v) is dict:
                stack.extend(v.values())
            elif isinstance(v, types.FunctionType) and v.__closure__:
                for cell in v.__closure__:
                    try:
                        stack.append(cell.cell_contents)
                    except ValueError:      # an empty closure cell
                        pass
        drop = [sid for sid in bridge.shared if sid not in keep]
        if drop:
            self.request({"op": "forget", "ids": drop}, timeout)
            bridge.forget(drop)

    def globals(self, names, timeout):
        """The student's values for ``names`` (those it defines)."""
        got = self.request({"op": "globals", "names": sorted(names)}, timeout)
        if type(got) is not dict:
            raise StudentCrashed("bad reply to a name lookup")
        return got


def default_uid():
    """A uid for this grader process's students (root only), else None."""
    if os.geteuid() != 0:
        return None
    return sandbox.UID_BASE + os.getpid()
