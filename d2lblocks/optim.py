"""Optimizers: SGD and Adam.

An optimizer updates the parameters it was given, in place, from their
``.grad``. Build it from ``net.parameters()``: a layer that ``parameters()``
does not see (for example one kept in a plain Python list) is never updated,
and ``step()`` warns once when it finds such a layer with gradients.
"""

import math
import numbers
import warnings
import weakref

import numpy as np

from . import backend
from .diagnose import unregistered_blocks
from .nn.block import Block, _spelled, zero_grads
from .tensor import Tensor, mark_changed, watcher

__all__ = ["Optimizer", "SGD", "Adam"]


class Optimizer:
    """Base class. Subclasses define ``update(w, g, state)`` on arrays.

    Arguments:
        params: an iterable of parameters (usually ``net.parameters()``).
            Frozen ones (``requires_grad=False``) are kept but skipped, so
            freezing the first layers of a network needs no other change.
        lr: the learning rate.

    Updates are written into the parameters' arrays in place, with NumPy's
    ``out=`` into scratch arrays kept per parameter: no temporary is
    allocated per step, and each parameter's version is bumped, so a graph
    recorded before the step refuses to give gradients from the new values.
    """

    def __init__(self, params, lr):
        name = type(self).__name__
        if isinstance(params, Block):
            raise TypeError(f"{name} expected the parameters of a network, "
                            f"got the block {type(params).__name__} itself; "
                            f"pass net.parameters(), e.g. {name}("
                            f"net.parameters(), lr=0.1)")
        if isinstance(params, type):
            raise TypeError(f"{name} expected parameters, got the class "
                            f"{params.__name__}; build the network and pass "
                            f"its parameters: {name}({_spelled(params)}()"
                            f".parameters(), ...)")
        if isinstance(params, Tensor):
            raise TypeError(f"{name} expected an iterable of parameters, got "
                            f"one tensor; pass a list: {name}([p], ...)")
        if callable(params) and getattr(params, "__name__", "") in (
                "parameters", "collect_params"):
            raise TypeError(f"{name} got the method {params.__name__} "
                            f"itself; call it: {name}(net."
                            f"{params.__name__}(), ...)")
        if isinstance(params, (str, bytes)) or not hasattr(params, "__iter__"):
            raise TypeError(f"{name} expected an iterable of parameters "
                            f"(net.parameters()), got {type(params).__name__}")
        source = getattr(params, "source", None)
        lr = _number(lr, "lr", name)
        params, seen, kept = list(params), set(), []
        for p in params:
            if isinstance(p, dict):
                raise TypeError(f"{name} got a parameter group (a dict); "
                                f"groups with their own settings are not "
                                f"supported: pass net.parameters(), or make "
                                f"one optimizer per group")
            if not isinstance(p, Tensor) or not p.is_leaf:
                what = type(p).__name__ if not isinstance(p, Tensor) else \
                    "a tensor computed by an op (not a leaf)"
                raise TypeError(f"{type(self).__name__} expected parameters "
                                f"(leaf tensors with requires_grad=True), got "
                                f"{what}")
            if id(p) not in seen:
                seen.add(id(p))
                kept.append(p)
        self.params = kept
        if not self.params:
            raise ValueError(
                f"{type(self).__name__} got no parameters. If the network keeps "
                f"its layers in a plain list, parameters() cannot see them; use "
                f"nn.Sequential or nn.BlockList (see d2lblocks.diagnose(net))")
        if not any(p.requires_grad for p in self.params):
            raise ValueError(
                f"{type(self).__name__} got {len(self.params)} tensor(s), none "
                f"with requires_grad=True: nothing would ever be trained")
        self.lr = lr
        self.state = {}
        self._source = None if source is None else weakref.ref(source)
        self._watching = self._source is not None

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient (``.grad = None``), or, with
        ``set_to_none=False``, zero the gradient arrays in place."""
        zero_grads(self.params, set_to_none)

    def step(self):
        """Update each trainable parameter that has a gradient."""
        watch = watcher()
        if watch is not None:        # a hybridized step is being recorded:
            watch.call_begins(self._replay_step())    # the replay calls this
            try:
                return self._step()
            finally:
                watch.call_ends()
        return self._step()

    def _step(self):
        if self._watching:
            self._warn_about_unregistered()
        # Every gradient is checked before the first update, so that a
        # wrong one changes no parameter (a shape and dtype per parameter);
        # the arrays read for the check are the ones updated.
        todo = []
        for p in self.params:
            g = p.grad
            if g is not None and p.requires_grad:
                if type(g) is not Tensor and not isinstance(g, Tensor):
                    _wrong_grad(self, p, g)
                a, w = g.data, p.data
                if a.shape != w.shape or a.dtype != w.dtype or \
                        type(a) is not type(w):
                    _wrong_grad(self, p, g)
                todo.append((p, w, a))
        state = self.state
        for p, w, a in todo:
            if type(w) is np.ndarray:
                self._update_one(p, w, a, state)
            else:                   # run on the GPU that holds the parameter
                with backend.on_array(w):
                    self._update_one(p, w, a, state)
            mark_changed(p)

    def _update_one(self, p, w, g, state):
        st = state.get(id(p))
        if st is None:
            st = state[id(p)] = {"buf": _scratch(w)}
        self.update(w, g, st)

    def update(self, w, g, state):
        raise NotImplementedError

    def _replay_step(self):
        """What a replay of a recorded training step (``hybridize``) calls
        in place of this ``step()``: ``step`` itself, or an equivalent
        that is faster for the parameters that have gradients now (the
        replay gives the same ones theirs)."""
        return self.step

    def _warn_about_unregistered(self):
        """Warn (once) about parameters with gradients that this optimizer
        does not own: the symptom of a layer kept in a plain container."""
        net = self._source()
        if net is None:
            self._watching = False
            return
        orphans = unregistered_blocks(net)
        if not orphans:
            self._watching = False
            return
        owned = {id(p) for p in self.params}
        stray = [f"{path}.{name}" for path, block in orphans
                 for name, p in Block.named_parameters(block)
                 if p.grad is not None and id(p) not in owned]
        if stray:
            self._watching = False
            shown = ", ".join(stray[:4]) + (", ..." if len(stray) > 4 else "")
            warnings.warn(
                f"{type(self).__name__}.step(): {len(stray)} parameter(s) have "
                f"gradients but are not updated by this optimizer: {shown}. "
                f"They belong to blocks in a plain Python container, which "
                f"parameters() does not see; use nn.Sequential, nn.BlockList "
                f"or add_module. d2lblocks.diagnose(net) explains more.",
                UserWarning, stacklevel=3)


def _wrong_grad(opt, p, g):
    """Raise: ``g``, the gradient of ``p``, cannot update it."""
    names = {id(q): i for i, q in enumerate(opt.params)}
    where = f"{type(opt).__name__}.step(): the gradient of parameter " \
            f"{names[id(p)]} (shape {tuple(p.shape)}, {p.dtype})"
    if not isinstance(g, Tensor):
        raise TypeError(f"{where} is a {type(g).__name__}; .grad must be a "
                        f"tensor (nothing was updated)")
    if g.shape != p.data.shape:
        raise ValueError(f"{where} has shape {tuple(g.shape)}; it must have "
                         f"the parameter's shape (nothing was updated)")
    if g.dtype != p.dtype:
        raise TypeError(f"{where} has dtype {g.dtype}; it must have the "
                        f"parameter's dtype (nothing was updated)")
    raise ValueError(f"{where} is on {g.device}, the parameter on "
                     f"{p.device}; move one of them (nothing was updated)")


def _number(value, what, where, low=0.0, high=math.inf, high_open=False):
    """``value`` as a finite Python float in ``[low, high]`` (or
    ``[low, high)``); NumPy scalars count as numbers."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {what} must be a number, got "
                        f"{type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low or value > high or (
            high_open and value == high):
        right = ")" if high_open else "]"
        raise ValueError(f"{where}: {what} must be a finite number in "
                         f"[{low:g}, {high:g}{right}, got {value!r}")
    return value


def _scratch(w):
    """An array like ``w`` for intermediate results."""
    return backend.namespace_of(w).empty_like(w)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum (with
    dampening, or Nesterov's) and weight decay (L2), with PyTorch's update
    rule and keywords::

        d = g + weight_decay * w
        v = momentum * v + (1 - dampening) * d     (v = d on the first step)
        w -= lr * (d + momentum * v if nesterov else v)
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0,
                 weight_decay=0.0, nesterov=False):
        momentum = _number(momentum, "momentum", "SGD")
        dampening = _number(dampening, "dampening", "SGD", 0.0, 1.0)
        weight_decay = _number(weight_decay, "weight_decay", "SGD")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"SGD: nesterov must be True or False, got "
                            f"{nesterov!r}")
        if nesterov and (momentum == 0 or dampening != 0):
            raise ValueError(f"SGD: nesterov=True needs a momentum > 0 and "
                             f"dampening 0, got momentum={momentum}, "
                             f"dampening={dampening}")
        super().__init__(params, lr)
        self.momentum, self.weight_decay = momentum, weight_decay
        self.dampening, self.nesterov = dampening, bool(nesterov)

    def update(self, w, g, state):
        lr, wd, buf = self.lr, self.weight_decay, state["buf"]
        if self.momentum:
            m = self.momentum
            if wd:                                   # d = g + wd * w
                np.multiply(w, wd, out=buf)
                buf += g
                g = buf
            v = state.get("velocity")
            if v is None:
                v = state["velocity"] = g.copy()
            else:
                v *= m
                v += g if not self.dampening else (1 - self.dampening) * g
            g = g + m * v if self.nesterov else v
        elif wd:
            w *= 1.0 - lr * wd
        backend.sub_scaled(w, lr, g, buf)

    def _replay_step(self):
        if type(self).update is not SGD.update:
            return self.step
        params = [p for p in self.params
                  if p.grad is not None and p.requires_grad]
        plans = [[None] * 4 for _ in params]      # see _plan_update

        def step():
            if self.momentum or self.weight_decay or self._watching:
                return self.step()
            lr, state, done = self.lr, self.state, params
            for p, plan in zip(params, plans):
                g = p.grad
                if g is None or not p.requires_grad:     # as step() would
                    done = [p for p in params
                            if p.grad is not None and p.requires_grad]
                    continue
                w, g = p.data, g.data
                if plan[0] is None or plan[0]() is not w or plan[1]() is not g:
                    plan[:] = _plan_update(w, g, state, p)
                fn = plan[2]
                if fn is not None:
                    fn(lr)
                elif type(w) is np.ndarray:   # what sub_scaled does
                    np.multiply(g, lr, out=plan[3])
                    np.subtract(w, plan[3], out=w)
                else:
                    with backend.on_array(w):
                        np.multiply(g, lr, out=plan[3])
                        np.subtract(w, plan[3], out=w)
            mark_changed(*done)
        return step


def _plan_update(w, g, state, p):
    """``[weak w, weak g, one-pass update or None, scratch]`` for a
    replayed step."""
    if id(p) not in state:
        state[id(p)] = {"buf": _scratch(w)}
    buf = state[id(p)]["buf"]
    try:
        return [weakref.ref(w), weakref.ref(g),
                backend.scaled_subtractor(w, g), buf]
    except TypeError:               # an array type without weak references
        return [None, None, None, buf]


class Adam(Optimizer):
    """Adam (Kingma and Ba), with bias correction, optional L2 weight
    decay added to the gradient, and the AMSGrad variant (``amsgrad=True``:
    the denominator uses the largest second moment so far), with
    PyTorch's keywords."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, amsgrad=False):
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") \
                or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2) such "
                            f"as (0.9, 0.999), got {betas!r}")
        betas = tuple(_number(b, f"betas[{i}]", "Adam", 0.0, 1.0, True)
                      for i, b in enumerate(betas))
        eps = _number(eps, "eps", "Adam")
        weight_decay = _number(weight_decay, "weight_decay", "Adam")
        if not isinstance(amsgrad, (bool, np.bool_)):
            raise TypeError(f"Adam: amsgrad must be True or False, got "
                            f"{amsgrad!r}")
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.amsgrad = bool(amsgrad)

    def update(self, w, g, state):
        b1, b2 = self.betas
        buf = state["buf"]
        if "m" not in state:
            state["m"], state["v"], state["t"] = _zeros(w), _zeros(w), 0
        m, v = state["m"], state["v"]
        if self.weight_decay:
            wd_g = state.setdefault("wd_g", _scratch(w))
            np.multiply(w, self.weight_decay, out=wd_g)
            wd_g += g
            g = wd_g
        state["t"] += 1
        t = state["t"]
        m *= b1
        np.multiply(g, 1 - b1, out=buf)
        m += buf
        v *= b2
        np.multiply(g, g, out=buf)
        buf *= 1 - b2
        v += buf
        step = self.lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        if self.amsgrad:            # the largest v so far, as PyTorch's
            v_max = state.get("v_max")
            if v_max is None:
                v_max = state["v_max"] = v.copy()
            else:
                np.maximum(v_max, v, out=v_max)
            v = v_max
        np.sqrt(v, out=buf)
        buf += self.eps * math.sqrt(1 - b2 ** t)
        np.divide(m, buf, out=buf)
        buf *= step
        w -= buf


def _zeros(w):
    return backend.namespace_of(w).zeros_like(w)
