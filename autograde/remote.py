"""The trusted end: a student process seen through handles.

:class:`StudentProcess` starts a sandboxed student process (through a
``sandbox.Launcher``), runs cells in it and answers for its death or
silence.
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
import inspect
import itertools
import linecache
import operator
import sys
import os
import time
import types

import numpy as np

from . import codec, sandbox
from .bridge import Bridge, BridgeError, resolve


def doubt(proc, what, instead):
    """Note that the running test did something whose verdict here may
    differ from a kernel's: if it does not pass, a person decides."""
    line = None
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<test "):
            line = frame.f_lineno
            break
        frame = frame.f_back
    if proc is not None and len(proc.doubts) < 20:
        proc.doubts.append((line, what, instead))


class StudentTimeout(BaseException):
    """The student process did not answer in time (it was killed).

    Derived from BaseException so that a test's ``except Exception`` cannot
    swallow it."""


class StudentCrashed(BaseException):
    """The student process died (or broke the protocol) while working."""


class RemoteError(Exception):
    """Base of exceptions raised by student code (see ``remote_exception``)."""


_OPAQUE = object()
_INPUT = builtins.input


def _grader_class(qual):
    """The grader's own class named ``module.qualname`` (a built-in, NumPy
    or d2lblocks class), or None."""
    if type(qual) is not str:
        return None
    mod, _, attr = qual.rpartition(".")
    try:
        if mod == "builtins":
            cls = getattr(builtins, attr, None)
        elif mod.startswith(("d2lblocks", "numpy")):
            cls = resolve(f"{mod}:{attr}", ("d2lblocks", "numpy"))
        else:
            return None
    except Exception:
        return None
    return cls if isinstance(cls, type) else None


def _first_base(mro, accept):
    """The first class of ``mro`` (names) the grader has and ``accept``s."""
    for qual in mro:
        cls = _grader_class(qual)
        if cls is not None and accept(cls):
            return cls
    return None


def _local_class(name, bases, fallback):
    try:
        return type(str(name)[:100] or "Error", bases, {"__module__": "student"})
    except TypeError:
        return type(str(name)[:100] or "Error", fallback, {"__module__": "student"})


@functools.lru_cache(maxsize=None)
def _exception_class(name, mro):
    base = _first_base(mro, lambda c: issubclass(c, Exception) and c is not Exception)
    return _local_class(name, (RemoteError,) if base is None else (base, RemoteError),
                        (RemoteError,))


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
    cls = info.get("cls")
    if not (isinstance(cls, type) and issubclass(cls, RemoteError)):
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
    base = _first_base(mro, lambda c: c is not object)
    name = mro[0].rpartition(".")[2] if mro else "Remote"
    return _local_class(name, (object,) if base is None else (base,), (object,))


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
        if type(self) is not Remote:        # an instance of a student class
            return type(self)
        return _fake_class(tuple(self._ag_info.get("mro", ())))

    @property
    def __doc__(self):
        return self._ag_request("getattr", name="__doc__")

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
        # Lazily, one item per request, as a kernel would: an infinite
        # generator can be sliced, and side effects happen in step.
        if self._ag_info.get("iterator"):
            return self
        return self._ag_proc.request({"op": "operator", "name": "iter",
                                      "args": [self]})

    def __next__(self):
        return self._ag_proc.request({"op": "operator", "name": "next",
                                      "args": [self]})

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
        if mine is not _OPAQUE and isinstance(other, Remote):
            other = other._ag_value()
        if mine is _OPAQUE or other is _OPAQUE:
            if other is not self:
                doubt(self._ag_proc, f"comparing a student object with "
                      f"{op.__name__.strip('_')} (its own method would decide, "
                      f"so identity was used)", "compare values it holds: its "
                      "fields, a list, .numpy()")
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


class _StudentClassMeta(type):
    """The type of the local stand-in for a student class: calling it
    makes an instance in the student process; other class attributes are
    read there."""

    def __call__(cls, *args, **kwargs):
        return type.__getattribute__(cls, "_ag_handle")(*args, **kwargs)

    def __getattr__(cls, name):
        if name.startswith("_ag_") or name in ("__slots__",):
            raise AttributeError(name)
        return getattr(type.__getattribute__(cls, "_ag_handle"), name)

    def __repr__(cls):
        return f"<class '__main__.{cls.__qualname__}'>"


_COUNTER = itertools.count(1)


def _text(node, key, default=None):
    value = node.get(key)
    return value if type(value) is str else default


def stand_in_function(remote, node):
    """A local function standing for a student function: calling it calls
    the student's; its name, docstring and source (for
    ``inspect.getsource``) are the student's, received as plain text."""
    def student_function(*args, **kwargs):
        return remote(*args, **kwargs)

    name = _text(node, "name", "f")
    student_function.__name__ = name
    student_function.__qualname__ = _text(node, "qualname", name)
    student_function.__doc__ = _text(node, "doc")
    student_function.__module__ = "__main__"
    student_function._ag_remote = remote
    signature = _signature(node.get("params"))
    if signature is not None:
        student_function.__signature__ = signature
    source = _text(node, "source")
    if source and name.isidentifier():
        filename = f"<student code {next(_COUNTER)}>"
        linecache.cache[filename] = (len(source), None,
                                     source.splitlines(True), filename)
        student_function.__code__ = student_function.__code__.replace(
            co_filename=filename, co_firstlineno=1, co_name=name)
    return student_function


class _OpaqueDefault:
    """The default of a student function's parameter that is not plain
    data: it stays with the student."""

    def __repr__(self):
        return "<default>"


def _signature(params):
    """``inspect.Signature`` from the plain data the student sent, or None."""
    if type(params) is not list:
        return None
    try:
        out = []
        for item in params:
            name, kind, has, default, opaque = item
            if type(name) is not str or not name.isidentifier() or type(kind) is not int:
                return None
            value = inspect.Parameter.empty
            if has is True:
                value = _OpaqueDefault() if opaque else default
                if not opaque and type(value) not in (int, float, str, bool, type(None)):
                    return None
            out.append(inspect.Parameter(name, inspect._ParameterKind(kind), default=value))
        return inspect.Signature(out)
    except (TypeError, ValueError):
        return None


def stand_in_class(remote, node, bases):
    """A local class standing for a student class (one per class, so
    ``type(x) == C``, ``isinstance`` and ``except C`` work as in a kernel),
    or None where its bases are library classes (then the class stays a
    plain handle)."""
    name = _text(node, "name", "StudentClass")
    if not name.isidentifier():
        name = "StudentClass"
    namespace = {"__module__": "__main__", "__doc__": _text(node, "doc"),
                 "__qualname__": _text(node, "qualname", name),
                 "_ag_handle": remote}
    if any(isinstance(b, type) and issubclass(b, BaseException) for b in bases):
        local = [b for b in bases if isinstance(b, type)
                 and issubclass(b, BaseException)]
        if not any(issubclass(b, RemoteError) for b in local):
            local.insert(0, RemoteError)
        try:
            return type(name, tuple(local), namespace)
        except TypeError:
            return None
    if not all(b is object or (isinstance(b, type) and issubclass(b, Remote))
               for b in bases):
        return None
    namespace["__slots__"] = ()
    local = tuple(b for b in bases if b is not object) or (Remote,)
    try:
        return _StudentClassMeta(name, local, namespace)
    except TypeError:
        return None


# Modules whose functions reach files, processes, the network or the
# grader itself: none of their functions is handed to student code.
_POWERFUL_MODULES = frozenset("""
os posix posixpath shutil subprocess pathlib io _io builtins sys socket pickle
shelve tempfile glob importlib runpy code codeop ctypes multiprocessing sqlite3
signal pty fcntl mmap urllib http ftplib smtplib webbrowser zipfile tarfile
gzip bz2 lzma pdb inspect linecache threading _thread asyncio select resource
platform gc weakref atexit autograde nbformat nbgrader nbconvert jupyter_client
""".split())
_SAFE_BUILTIN_MODULES = ("math", "cmath", "operator", "_operator", "builtins")
_UNSAFE_BUILTINS = {"open", "eval", "exec", "compile", "__import__", "input",
                    "breakpoint", "exit", "quit", "globals", "locals", "vars",
                    "getattr", "setattr", "delattr", "help", "memoryview"}


def _not_for_students(v):
    """Why the test's object ``v`` may not be handed to student code (as
    an object it can call, read attributes of and index), or ''.

    Test code may give student code its own functions and objects; what
    must never reach a student is a handle on the grader's powers: a
    module, a class, a function of the grader's libraries that reads or
    writes files or runs programs."""
    if isinstance(v, (types.ModuleType, type)):
        return f"the {'module' if isinstance(v, types.ModuleType) else 'class'} {getattr(v, '__name__', '?')}"
    if isinstance(v, types.FunctionType):
        module = str(getattr(v, "__module__", None) or "").split(".")[0]
        if module in _POWERFUL_MODULES:
            return f"the function {module}.{v.__qualname__}"
        return ""
    if isinstance(v, types.BuiltinFunctionType):
        owner = getattr(v, "__self__", None)
        if owner is None or isinstance(owner, types.ModuleType):
            module = getattr(owner, "__name__", None) or getattr(v, "__module__", None)
            if module not in _SAFE_BUILTIN_MODULES or v.__name__ in _UNSAFE_BUILTINS:
                return f"the built-in function {v.__name__}"
        return ""
    if isinstance(v, types.MethodType):
        return _not_for_students(v.__func__) if isinstance(
            v.__func__, types.FunctionType) and isinstance(
            v.__self__, types.ModuleType) else ""
    return ""


class TrustedBridge(Bridge):
    """The grader's end of the bridge."""

    def __init__(self, sock, proc):
        super().__init__("trusted", sock)
        self.share_containers = True
        self.proc = proc
        self.remotes = {}
        self.callables = {}
        self.callable_id = {}
        self._cid = itertools.count(1)
        self.methods = {}       # class (as its mro) -> method names
        self.stand_ins = {}     # handle id -> local function or class

    def other_local(self, v, enc):
        """Handles go back as references; test functions as callables."""
        stand_for = getattr(v, "_ag_remote", None) if isinstance(
            v, types.FunctionType) else None
        if stand_for is None and issubclass(type(v), type):
            try:
                stand_for = type.__getattribute__(v, "_ag_handle")
            except AttributeError:
                stand_for = None
        if isinstance(stand_for, Remote):
            v = stand_for
        if isinstance(v, Remote):
            if v._ag_proc is not self.proc or v._ag_gen != self.proc.generation:
                raise StudentCrashed("this object belonged to a student process "
                                     "that was restarted after a crash or timeout")
            return {"$h": v._ag_hid}
        refusal = _not_for_students(v)
        if refusal:
            doubt(self.proc, f"{refusal} was to be given to student code",
                  "give it data, a function or an object the test defines")
            raise BridgeError(f"{refusal} cannot be given to student code")
        cid = self.callable_id.get(id(v))
        if cid is None or self.callables.get(cid) is not v:
            cid = next(self._cid)
            self.callables[cid] = v
            self.callable_id[id(v)] = cid
        return {"$cb": cid}

    def _dec_handle(self, node, dec):
        hid = node["$h"]
        if type(hid) is not int or hid <= 0:
            raise codec.ProtocolError("bad handle")
        local = self.stand_ins.get(hid)
        if local is not None:
            return local
        r = self.remotes.get(hid)
        if r is None:
            mro = tuple(m for m in node.get("mro", []) if type(m) is str)[:40]
            methods = node.get("methods")
            if type(methods) is list:
                self.methods[mro] = frozenset(m for m in methods if type(m) is str)
            info = {"mro": mro, "tensor": node.get("tensor") is True,
                    "call": node.get("call") is True,
                    "iterator": node.get("iterator") is True,
                    "methods": self.methods.get(mro, frozenset())}
            r = Remote(self.proc, hid, self.proc.generation, info)
            cls = node.get("cls")
            cls = dec(cls) if type(cls) is dict and "$h" in cls else None
            if isinstance(cls, _StudentClassMeta):
                r = object.__new__(cls)
                Remote.__init__(r, self.proc, hid, self.proc.generation, info)
            self.remotes[hid] = r
            local = None
            if node.get("fn") is True:
                local = stand_in_function(r, node)
            elif type(node.get("bases")) is list:
                bases = []
                for b in node["bases"][:20]:
                    if type(b) is dict and "$h" in b:
                        bases.append(dec(b))
                    elif type(b) is dict:
                        bases.append(_grader_class(b.get("lib")))
                if all(b is not None for b in bases):
                    local = stand_in_class(r, node, bases)
            if local is not None:
                self.stand_ins[hid] = local
                return local
        return r

    def _dec_callable(self, node, dec):
        cid = node["$cb"]
        if cid not in self.callables:
            raise codec.ProtocolError("unknown callable")
        return self.callables[cid]


class StudentProcess:
    """A sandboxed student process, restarted on demand.

    Arguments:
        launcher: the :class:`sandbox.Launcher` that starts it.
        cfg: ``uid`` (the sandbox uid, or None), ``namespaces`` (fenced by
            bwrap or not), ``limits`` (a Limits dict) and ``files``
            (``{relative name: path}``, copied into every new process's
            working folder); other keys are ignored.
    """

    def __init__(self, launcher, cfg):
        self.launcher = launcher
        self.cfg = cfg
        self.generation = 0
        self.pid = None
        self.child = None
        self.bridge = None
        self.deadline = None
        self.event = None       # "timeout" / "crashed" seen since last reset
        self.restarts = 0
        self.on_changed = None  # f(names): student code rebound these names
        self.files = None       # the test's view of the working folder
        self.output_left = 0    # characters of student output still passed on
        self.doubts = []        # see doubt(); reset by the runner per test
        self.callback_errors = []   # errors of the test's own objects

    def start(self):
        """Start a fresh process (a new generation of handles) and give
        it the submission's files. Raises :class:`sandbox.GraderFault`
        when it never becomes ready: no student code has run then."""
        self.stop()
        self.generation += 1
        self.child = self.launcher.spawn(self.cfg)
        self.pid = self.child.pid
        self.bridge = TrustedBridge(self.child.sock, self)
        files = sandbox.submission_bytes(self.cfg.get("files", {}))
        view, deadline, event = self.files, self.deadline, self.event
        self.files = self.deadline = None
        child = self.child
        try:
            self.request({"op": "noop", "put": files}, sandbox.SETUP_TIMEOUT)
        except (StudentTimeout, StudentCrashed, RemoteError) as e:
            self.stop()
            said = child.said.splitlines()[-1:] if child.said else []
            why = (f"the grader's sandbox failed: a new student process did "
                   f"not become ready ({e}{': ' + said[0] if said else ''})")
            sandbox.FAULTS.append(why)
            raise sandbox.GraderFault(why) from None
        finally:
            self.files, self.deadline, self.event = view, deadline, event

    def stop(self):
        """Kill the process and everything it started."""
        if self.child is not None:
            self.child.kill()
            self.child = None
        self.pid = None
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
        files = self.files
        if files is not None and not files.busy:
            msg = dict(msg, fs=True)
            put = files.changes()
            if put:
                msg["put"] = put
            if builtins.input is not _INPUT:    # mock.patch("builtins.input")
                msg["input"] = builtins.input
        try:
            try:
                bridge.send(msg)
            except BridgeError:
                if msg.get("put"):          # not sent: send it with the next one
                    files.unsend(msg["put"])
                raise
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
                if type(reply) is dict:
                    self._news(reply)
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
        if files is not None and not files.busy and type(reply.get("files")) is dict:
            files.pull(reply["files"])
        if "error" in reply:
            raise remote_exception(reply["error"])
        return reply.get("ok")

    def _news(self, msg):
        """Pass on what student code printed (to the test's current
        ``sys.stdout``/``sys.stderr``, so ``redirect_stdout`` sees it) and
        the names it rebound."""
        out = msg.get("out")
        if type(out) is list:
            for item in out:
                if type(item) is not list or len(item) != 2 or type(item[1]) is not str:
                    continue
                text = item[1][:max(0, self.output_left)]
                self.output_left -= len(text)
                if text:
                    (sys.stderr if item[0] == "err" else sys.stdout).write(text)
        changed = msg.get("changed")
        if type(changed) is list and self.on_changed is not None:
            self.on_changed([n for n in changed if type(n) is str])

    def _callback(self, msg):
        """Student code used an object of the test: call it, read one of
        its attributes (never a dunder) or index it, here."""
        obj = self.bridge.callables.get(msg.get("cb"))
        args, kwargs, kind = msg.get("args"), msg.get("kwargs"), msg.get("kind", "call")
        if obj is None or type(args) is not list or type(kwargs) is not dict or \
                not all(type(k) is str for k in kwargs) or \
                kind not in ("call", "getattr", "getitem") or \
                (kind != "call" and len(args) != 1) or \
                (kind == "getattr" and (type(args[0]) is not str or args[0].startswith("__"))):
            self.bridge.send({"error": "bad callback"})
            return
        try:
            if kind == "call":
                result = {"ok": obj(*args, **kwargs)}
            elif kind == "getattr":
                result = {"ok": getattr(obj, args[0])}
            else:
                result = {"ok": obj[args[0]]}
        except (StudentTimeout, StudentCrashed):
            raise
        except Exception as e:
            result = {"error": f"{type(e).__name__}: {e}"}
            self.callback_errors.append(f"{type(e).__name__}: {e}"[:300])
            if getattr(builtins, type(e).__name__, None) is type(e):
                result["etype"] = type(e).__name__
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
            if sid is not None and type(v) not in (list, dict, set, np.ndarray):
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

    def set_name(self, name, value):
        """Bind ``name`` in the student's namespace."""
        self.request({"op": "setname", "name": name, "value": value})

    def del_name(self, name):
        """Delete ``name`` from the student's namespace; whether it was
        there."""
        return self.request({"op": "delname", "name": name}) is True

    def globals(self, names, timeout):
        """The student's values for ``names`` (those it defines)."""
        got = self.request({"op": "globals", "names": sorted(names)}, timeout)
        if type(got) is not dict:
            raise StudentCrashed("bad reply to a name lookup")
        return got


def default_uid():
    """A uid for this grader process's students (root only), else None."""
    if not sandbox.root_mode():
        return None
    return sandbox.UID_BASE + os.getpid()
