"""Objects that cross between the trusted grader and a student process.

Both ends run a :class:`Bridge`. A value crosses in one of four ways:

- **plain data** (numbers, strings, containers, arrays) is copied;
- **library objects** (instances of d2lblocks classes: tensors without a
  recorded graph, parameters, blocks, initializers) are *shared*: each end
  holds its own copy under one id, and every message carries the state of
  those shared objects that changed since the last message. So a layer
  built by a test, handed to the student's ``MySequential`` and trained
  by the student's code shows the new weights to the test, while the test
  computes with the grader's own, unpatched d2lblocks code;
- anything else that lives in the student process (student classes and
  functions, their instances, tensors that carry a graph) stays there; the
  grader sees a *handle* (``autograde.remote.Remote``) that forwards
  attribute access, calls and operators;
- a function of the grader (such as a factory defined in a test) reaches
  the student as a callable that can only be called, never inspected.

Library classes and module-level functions are named, not sent:
``{"$fn": "d2lblocks.ops:relu"}``, and only names inside ``d2lblocks`` and
``numpy`` resolve.
"""

import importlib
import random
import sys
import types
import zlib

import numpy as np

from . import codec

_CONTAINERS = (list, dict, set, np.ndarray)
_LIB_PREFIXES = ("d2lblocks.", "d2lblocks")
_FN_PREFIXES = ("d2lblocks", "numpy")


class BridgeError(Exception):
    """A value cannot cross, or a peer sent an invalid object."""


def _module_ok(mod, prefixes):
    return isinstance(mod, str) and any(
        mod == p.rstrip(".") or mod.startswith(p.rstrip(".") + ".") for p in prefixes)


def resolve(name, prefixes=_FN_PREFIXES):
    """The object called ``"module:qualname"``, only inside allowed modules."""
    if type(name) is not str or ":" not in name or len(name) > 300:
        raise BridgeError(f"bad name {name!r}")
    mod, qual = name.split(":", 1)
    if not _module_ok(mod, prefixes):
        raise BridgeError(f"refusing to resolve {name!r}")
    obj = importlib.import_module(mod)
    for part in qual.split("."):
        if part.startswith("__") or part == "<locals>":
            raise BridgeError(f"refusing to resolve {name!r}")
        obj = getattr(obj, part)
    return obj


def qualified(obj):
    """``"module:qualname"`` of a class or function."""
    return f"{getattr(obj, '__module__', None)}:{getattr(obj, '__qualname__', None)}"


def _is_library_class(cls):
    mod = getattr(cls, "__module__", "")
    return isinstance(mod, str) and _module_ok(mod, _LIB_PREFIXES)


_NO_IO = ("save", "load", "file", "open", "memmap", "write", "read", "exec",
          "eval", "system", "import")


def named_safely(name):
    """The library class or math function called ``name``, or raise.

    Only classes, NumPy ufuncs and module-level functions of d2lblocks'
    math modules qualify, and nothing whose name hints at files or code:
    a peer may place these inside shared objects, where the grader's code
    may call them."""
    obj = resolve(name)
    mod, _, qual = name.partition(":")
    if isinstance(obj, type) or isinstance(obj, np.ufunc):
        return obj
    low = qual.lower()
    if "." in qual or any(word in low for word in _NO_IO):
        raise BridgeError(f"refusing to use {name!r}")
    if mod.startswith("d2lblocks") and mod.split(".")[-1] in (
            "ops", "tensor", "init", "functional", "layers"):
        return obj
    if mod == "numpy" and isinstance(obj, (types.FunctionType,
                                           types.BuiltinFunctionType)):
        return obj
    raise BridgeError(f"refusing to use {name!r}")


def _nameable(v):
    if not isinstance(v, (types.FunctionType, types.BuiltinFunctionType, type,
                          np.ufunc)):
        return None
    if not _module_ok(getattr(v, "__module__", None), _FN_PREFIXES):
        return None
    name = qualified(v)
    try:
        return name if named_safely(name) is v else None
    except Exception:
        return None


class Bridge:
    """One end of the connection.

    Arguments:
        side: ``"trusted"`` or ``"student"`` (ids of shared objects made by
            the trusted end are negative, by the student end positive).
        sock: the connected socket.
    """

    def __init__(self, side, sock):
        import d2lblocks
        from d2lblocks import state
        from d2lblocks.tensor import random_generator
        self.db, self.Tensor, self.state = d2lblocks, d2lblocks.Tensor, state
        self.random_generator = random_generator
        self.side = side
        self.sock = sock
        self.reader = codec.Reader(sock)
        self.shared = {}        # id -> object
        self.shared_id = {}     # id(object) -> id
        self.prints = {}        # id -> fingerprint of the last state seen
        self._next = 0
        self.rng_print = None
        self.py_rng_print = None
        self.share_containers = False   # see container()
        self.transient = ()             # ids of the message's own containers
        self.dropped = []               # ids forgotten here, to tell the peer

    # ---- ids ------------------------------------------------------------------
    def _new_id(self):
        self._next += 1
        return -self._next if self.side == "trusted" else self._next

    def _register(self, sid, obj):
        self.shared[sid] = obj
        self.shared_id[id(obj)] = sid

    # ---- what to share ----------------------------------------------------------
    def is_shareable(self, v):
        """Library objects are shared; on the student side a tensor with a
        recorded graph stays behind a handle, so backward() still works."""
        cls = type(v)
        if not _is_library_class(cls) or isinstance(v, (type, types.ModuleType)):
            return False
        if isinstance(v, self.Tensor):
            return self.side == "trusted" or v.grad_fn is None
        if isinstance(v, (list, tuple, dict, set)):
            return False
        return hasattr(v, "__dict__")

    # ---- containers kept in step ---------------------------------------------------
    def container(self, v, enc):
        """A list, dict, set or array given to the peer that both sides keep
        in step until neither needs it: what a student function does to a
        test's list in place shows in the test (and the other way round).
        New ones only while ``share_containers`` is set (the grader:
        always; the student: for names and attributes the test reads);
        otherwise a copy."""
        if id(v) in self.transient:     # the message's own lists and dicts
            return None
        sid = self.shared_id.get(id(v))
        if sid is not None and self.shared.get(sid) is v:
            return {"$ref": sid}
        if not self.share_containers:
            return None
        if type(v) is np.ndarray and (v.dtype.kind not in "biufc" or v.ndim == 0):
            return None
        sid = self._new_id()
        self._register(sid, v)
        self.prints[sid] = quick_print(v)
        return {"$cnew": sid, "value": self.container_state(v, enc)}

    def container_state(self, v, enc):
        """The contents of a shared container, encoded (its items may be
        shared in turn; the container itself is not)."""
        t = type(v)
        if t is np.ndarray:
            return enc.copy(v)
        if t is list:
            return {"$list": [enc(x) for x in v]}
        if t is set:
            return {"$set": [enc(x) for x in v]}
        return {"$dict": [[enc(k), enc(x)] for k, x in v.items()]}

    def set_container(self, obj, value):
        """Give a shared container the contents the peer sent, in place."""
        t = type(obj)
        if t is list and type(value) is list:
            obj[:] = value
        elif t in (dict, set) and type(value) is t:
            obj.clear()
            obj.update(value)
        elif t is np.ndarray and type(value) is np.ndarray and \
                value.shape == obj.shape and value.dtype == obj.dtype:
            if obj.flags.writeable:
                obj[...] = value
        else:
            raise codec.ProtocolError("a shared container changed its kind")

    def release_unused(self):
        """Stop sharing the containers this side made that only the
        sharing itself still holds (told to the peer with the next
        message)."""
        for sid, obj in list(self.shared.items()):
            # the dict entry, the loop variable and getrefcount's argument
            if type(obj) in _CONTAINERS and sys.getrefcount(obj) <= 3:
                self.forget([sid])
                self.dropped.append(sid)

    def _dec_cnew(self, node, dec):
        sid = node["$cnew"]
        mine = sid < 0 if self.side == "trusted" else sid > 0
        if type(sid) is not int or mine or sid in self.shared:
            raise codec.ProtocolError(f"bad new container id {sid!r}")
        value = dec(node.get("value"), 1)
        if type(value) not in _CONTAINERS:
            raise codec.ProtocolError("a shared container must be a list, dict, set or array")
        self._register(sid, value)
        self.prints[sid] = quick_print(value)
        return value

    # ---- encoding ---------------------------------------------------------------
    def other(self, v, enc):
        """Encode a value that is not plain data."""
        if isinstance(v, np.dtype):
            if v.kind not in "biufc":
                raise BridgeError(f"cannot send dtype {v}")
            return {"$dtype": v.str}
        sid = self.shared_id.get(id(v))
        if sid is not None and self.shared.get(sid) is v:
            return {"$ref": sid}
        if self.is_shareable(v):
            sid = self._new_id()
            self._register(sid, v)
            node = {"$new": sid, "cls": qualified(type(v))}
            state = self.state_of(v)
            node["state"] = enc.copy(state)
            self.prints[sid] = quick_print(state)
            return node
        if _is_library_class(type(v)) and isinstance(v, list):
            return {"$listobj": qualified(type(v)),
                    "items": enc(list(v)),
                    "dict": enc(dict(getattr(v, "__dict__", {})))}
        name = _nameable(v)
        if name is not None:
            return {"$fn": name}
        return self.other_local(v, enc)

    def other_local(self, v, enc):
        """Encode an object that only this side can hold (see subclasses)."""
        raise BridgeError(f"cannot send a {type(v).__name__}")

    def state_of(self, v):
        """The shared state of a library object (plain values, other
        library objects and handles; encoded by the caller)."""
        return self.state.get_state(v)

    def encode(self, payload):
        """``(doc, blobs)`` for a message: the payload, then the state of
        every shared object that changed since the last message, the
        random generators and the grad mode."""
        before = set(self.shared)
        try:
            return self._encode(payload)
        except BaseException:
            # Nothing was sent: forget what this message would have shared.
            self.forget([sid for sid in self.shared if sid not in before])
            raise

    def _encode(self, payload):
        enc = codec.Encoder(self.other, self.container)
        doc = {"payload": enc(payload)}
        sync, done = [], set()
        while True:     # encoding a state can share more objects: go again
            todo = [sid for sid in list(self.shared) if sid not in done]
            if not todo:
                break
            for sid in todo:
                done.add(sid)
                obj = self.shared[sid]
                if type(obj) in _CONTAINERS:
                    fp = quick_print(obj)
                    if self.prints.get(sid) != fp:
                        self.prints[sid] = fp
                        sync.append([sid, self.container_state(obj, enc)])
                    continue
                state = self.state_of(obj)
                fp = quick_print(state)
                if self.prints.get(sid) != fp:
                    self.prints[sid] = fp
                    sync.append([sid, enc.copy(state)])
        doc["sync"] = sync
        self.release_unused()
        if self.dropped:
            doc["forget"], self.dropped = self.dropped, []
        rng = self.rng_state()
        rfp = quick_print(rng)
        if rfp != self.rng_print:
            self.rng_print = rfp
            doc["rng"] = enc(rng)
        py = random.getstate()
        if hash(py) != self.py_rng_print:
            self.py_rng_print = hash(py)
            doc["pyrng"] = enc([py[0], np.array(py[1], dtype=np.uint32), py[2]])
        doc["grad"] = self.db.is_grad_enabled()
        return doc, enc.blobs

    def forget(self, ids):
        """Stop sharing the objects ``ids`` (each side keeps its copy)."""
        for sid in ids:
            obj = self.shared.pop(sid, None)
            self.prints.pop(sid, None)
            if obj is not None and self.shared_id.get(id(obj)) == sid:
                del self.shared_id[id(obj)]

    # ---- decoding ---------------------------------------------------------------
    def tags(self):
        """Tag handlers for :class:`codec.Decoder`; each end decodes
        handles (``$h``) and the grader's callables (``$cb``) its way."""
        return {"$ref": self._dec_ref, "$new": self._dec_new, "$cnew": self._dec_cnew,
                "$dtype": self._dec_dtype, "$fn": self._dec_fn,
                "$listobj": self._dec_listobj, "$h": self._dec_handle,
                "$cb": self._dec_callable}

    def _dec_ref(self, node, dec):
        sid = node["$ref"]
        if type(sid) is not int or sid not in self.shared:
            raise codec.ProtocolError(f"unknown shared object {sid!r}")
        return self.shared[sid]

    def _dec_dtype(self, node, dec):
        return dec.dtype(node["$dtype"])

    def _dec_fn(self, node, dec):
        try:
            return named_safely(node["$fn"])
        except Exception as e:
            raise codec.ProtocolError(str(e)) from None

    def _library_class(self, name):
        try:
            cls = resolve(name, _LIB_PREFIXES)
        except Exception as e:
            raise codec.ProtocolError(f"bad class {name!r}: {e}") from None
        if not isinstance(cls, type) or not _is_library_class(cls):
            raise codec.ProtocolError(f"{name!r} is not a library class")
        return cls

    def _dec_new(self, node, dec):
        sid = node["$new"]
        mine = sid < 0 if self.side == "trusted" else sid > 0
        if type(sid) is not int or mine or sid in self.shared:
            raise codec.ProtocolError(f"bad new object id {sid!r}")
        cls = self._library_class(node.get("cls"))
        obj = self.state.empty(cls)
        self._register(sid, obj)
        self.apply_state(obj, dec(node.get("state"), 1))
        self.prints[sid] = quick_print(self.state_of(obj))
        return obj

    def _dec_listobj(self, node, dec):
        cls = self._library_class(node.get("$listobj"))
        if not issubclass(cls, list):
            raise codec.ProtocolError("not a list class")
        obj = cls(dec(node.get("items"), 1))
        extra = dec(node.get("dict"), 1)
        if type(extra) is dict:
            for k, v in extra.items():
                if type(k) is str and not k.startswith("__"):
                    obj.__dict__[k] = v
        return obj

    def apply_state(self, obj, st):
        """Set a shared object's state from decoded data (checked)."""
        try:
            self.state.set_state(obj, st)
        except (TypeError, ValueError) as e:
            raise codec.ProtocolError(f"bad state: {e}") from None

    def decode(self, doc, blobs, extra_tags=None):
        """The payload of a message, after applying its shared state."""
        if type(doc) is not dict:
            raise codec.ProtocolError("a message must be an object")
        tags = self.tags()
        if extra_tags:
            tags.update(extra_tags)
        dec = codec.Decoder(blobs, tags)
        payload = dec(doc.get("payload"))
        sync = doc.get("sync", [])
        if type(sync) is not list:
            raise codec.ProtocolError("bad sync list")
        for item in sync:
            if type(item) is not list or len(item) != 2 or type(item[0]) is not int:
                raise codec.ProtocolError("bad sync item")
            sid, node = item
            obj = self.shared.get(sid)
            if obj is None:
                raise codec.ProtocolError(f"sync of unknown object {sid}")
            if type(obj) in _CONTAINERS:
                self.set_container(obj, dec(node))
                self.prints[sid] = quick_print(obj)
                continue
            self.apply_state(obj, dec(node))
            self.prints[sid] = quick_print(self.state_of(obj))   # no echo
        forget = doc.get("forget", [])
        if type(forget) is list:
            self.forget([sid for sid in forget if type(sid) is int])
        if "rng" in doc:
            self.set_rng_state(dec(doc["rng"]))
            self.rng_print = quick_print(self.rng_state())
        if "pyrng" in doc:
            self.set_py_rng_state(dec(doc["pyrng"]))
            self.py_rng_print = hash(random.getstate())
        if type(doc.get("grad")) is bool:
            self.db.set_grad_enabled(doc["grad"])
        return payload

    # ---- random generators ------------------------------------------------------
    def rng_state(self):
        """Both global random streams (d2lblocks and numpy.random) as plain
        data, so randomness is one stream across the two processes (the
        ``random`` module's state travels beside them, see _encode)."""
        bg = self.random_generator().bit_generator
        legacy = np.random.get_state()
        return {"db": [type(bg).__name__, bg.state["state"]["state"],
                       bg.state["state"]["inc"], bg.state["has_uint32"],
                       bg.state["uinteger"]],
                "np": [legacy[1], legacy[2], legacy[3], legacy[4]]}

    def set_rng_state(self, st):
        """Adopt the peer's random state (ignored if malformed)."""
        try:
            name, state, inc, has32, uint = st["db"]
            if name != "PCG64":
                return
            self.random_generator().bit_generator.state = {
                "bit_generator": "PCG64",
                "state": {"state": int(state), "inc": int(inc)},
                "has_uint32": int(has32), "uinteger": int(uint)}
            key, pos, has_gauss, cached = st["np"]
            if type(key) is np.ndarray and key.shape == (624,):
                np.random.set_state(("MT19937", key.astype(np.uint32), int(pos),
                                     int(has_gauss), float(cached)))
        except Exception:
            pass

    def set_py_rng_state(self, st):
        """Adopt the peer's state of the ``random`` module (ignored if
        malformed)."""
        try:
            version, key, gauss = st
            if version == 3 and type(key) is np.ndarray and key.shape == (625,) \
                    and (gauss is None or type(gauss) is float):
                random.setstate((3, tuple(int(x) for x in key), gauss))
        except Exception:
            pass

    # ---- transport ----------------------------------------------------------------
    def send(self, payload, transient=()):
        """Encode ``payload`` (with the shared state) and write it. The
        message's own dict and its lists and dicts of arguments are never
        kept in step, only what they hold (under ``value`` and ``ok``, what
        the message carries is itself the value); ``transient`` names more
        of them."""
        self.transient = {id(payload), *transient}
        self.transient.update(id(v) for k, v in payload.items()
                              if type(v) in (list, dict) and k not in ("value", "ok"))
        try:
            doc, blobs = self.encode(payload)
        finally:
            self.transient = ()
        codec.send_message(self.sock, doc, blobs)


def quick_print(v, depth=0):
    """A cheap fingerprint of a state: plain values by value, arrays by
    checksum, every other object by identity (shared objects are
    fingerprinted on their own)."""
    t = type(v)
    if v is None or t in (bool, int, float, str, complex, bytes):
        return v
    if depth > 50:
        return ("deep", id(v))
    if t is np.ndarray:
        a = np.ascontiguousarray(v)
        return ("a", a.dtype.str, a.shape, zlib.crc32(a.reshape(-1).view(np.uint8)))
    if t is tuple or t is list:
        return (t.__name__, tuple(quick_print(x, depth + 1) for x in v))
    if t is dict:
        return ("d", tuple((quick_print(k, depth + 1), quick_print(x, depth + 1))
                           for k, x in v.items()))
    if t is set or t is frozenset:
        return ("s", tuple(sorted(repr(quick_print(x, depth + 1)) for x in v)))
    if isinstance(v, np.dtype):
        return ("dt", v.str)
    if isinstance(v, np.generic):
        return ("sc", v.dtype.str, v.tobytes())
    return ("o", id(v))
