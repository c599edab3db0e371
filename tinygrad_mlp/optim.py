"""Optimizers with PyTorch's update formulas, updating parameters in place."""

from __future__ import annotations

import functools

import numpy as np

from . import blas, lr_scheduler  # noqa: F401 - lr_scheduler: as torch.optim.lr_scheduler
from . import device as _dev
from . import fused as _fused
from .functional import LinearFunction, use_fused


class Optimizer:
    """Base class: ``step()`` applies ``_update(i, p, t)`` (t: the 1-based step number) to every
    parameter that has a gradient. ``capturable``: a step may be captured in a CUDA graph (no
    per-step Python value reaches the device)."""

    capturable = False

    def __init__(self, params, lr):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not p.requires_grad:
                raise ValueError(f"{type(self).__name__}: parameter {i} does not require grad")
        self._lr_arrays = {}  # (device, dtype) -> 0-d device array holding lr
        self.lr = lr
        self.step_count = 0

    def backward(self, loss):
        """``loss.backward()``: every ``.grad`` then holds the true gradient, whatever the
        optimizer does in :meth:`step`."""
        loss.backward()

    def backward_step(self, loss):
        """``backward(loss); step(); zero_grad()`` in one call, for loops that do not read
        ``.grad`` after the update: the parameters end exactly as after those three calls, and
        every ``.grad`` is None. (:class:`SGD` uses this freedom on the CPU to fold the update
        into the weight-gradient GEMM.)"""
        self.backward(loss)
        self.step()
        self.zero_grad()

    def step(self):
        t = self.step_count + 1
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self._update(i, p, t)
        self.step_count = t

    def _update(self, i, p, t):
        raise NotImplementedError

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        _check(f"{type(self).__name__}: learning rate", value, low=0.0)
        self._lr = float(value)
        for array in self._lr_arrays.values():
            array.fill(self._lr)  # in place: a captured step graph reads the new value

    def _lr_for(self, p):
        """The lr for parameter `p`: a float on the CPU, a 0-d array in device memory on the GPU
        (one per device and dtype, updated in place, so CUDA-graph replays see changes)."""
        if p.device == "cpu":
            return self._lr
        key = (p.device, p.dtype)
        if key not in self._lr_arrays:
            self._lr_arrays[key] = _dev.module_of(p.data).full((), self._lr, dtype=p.dtype)
        return self._lr_arrays[key]

    def zero_grad(self, set_to_none: bool = True):
        """Drop the gradients, or with ``set_to_none=False`` fill them with zeros (in place),
        as torch."""
        for p in self.params:
            p.grad = None if set_to_none or p.grad is None else p.grad.zero_()

    def _buffers(self) -> dict[str, list]:
        return {}

    def state_dict(self) -> dict:
        """Flat name -> NumPy array dict (saves with ``np.savez``, loads without pickle)."""
        state = {"lr": np.array(self.lr), "step": np.array(self.step_count)}
        for name, arrays in self._buffers().items():
            state.update({f"{name}.{i}": _dev.to_device(a, "cpu") for i, a in enumerate(arrays)})
        return state

    def load_state_dict(self, state: dict):
        self.lr, self.step_count = float(state["lr"]), int(state["step"])
        for name, arrays in self._buffers().items():
            for i, a in enumerate(arrays):
                key = f"{name}.{i}"
                if key not in state or np.shape(state[key]) != a.shape:
                    raise ValueError(f"optimizer state {key!r} is missing or has the wrong shape "
                                     f"(expected {a.shape})")
                a[...] = _dev.to_device(np.asarray(state[key], a.dtype), _dev.device_of(a))
        return self


def _check(what, value, low=0.0, high=None):
    if not isinstance(value, (int, float, np.floating, np.integer)) or not (
            low <= value and (high is None or value < high)):
        bound = f"in [{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{what} must be a number {bound}, got {value!r}")


class SGD(Optimizer):
    """SGD as ``torch.optim.SGD`` (dampening 0): ``g = grad + wd * p``; with momentum
    ``buf = momentum * buf + g`` and ``g = g + momentum * buf`` (nesterov) or ``g = buf``;
    ``p -= lr * g``. One fused kernel per parameter on the GPU, in-place BLAS passes on the CPU
    (plain SGD: one ``axpy``); ``fused=False``: array ops. ``.grad`` is only read."""

    capturable = True  # lr is read from device memory; momentum and weight decay are fixed

    def __init__(self, params, lr=1e-3, momentum=0.0, nesterov=False, weight_decay=0.0, *,
                 fused=None):
        super().__init__(params, lr)
        _check("SGD: momentum", momentum)
        _check("SGD: weight_decay", weight_decay)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), nesterov, weight_decay
        self.fused = use_fused(fused)
        self._index = {id(p): i for i, p in enumerate(self.params)}
        self._sinks = {}  # parameter index -> (its array, its GEMM update or None)
        # Zeros equal PyTorch's first-step buf = g, since dampening is 0.
        self.momentum_buffers = ([_dev.module_of(p.data).zeros_like(p.data) for p in self.params]
                                 if momentum else [None] * len(self.params))

    def _buffers(self):
        return {"momentum_buffer": self.momentum_buffers} if self.momentum else {}

    def backward_step(self, loss):
        """``backward(loss); step(); zero_grad()``. On the CPU, each weight that only one linear
        op of the graph uses (and that holds no gradient yet) is updated inside that op's
        backward, as one GEMM into the weight: ``W = -lr * x.T @ dy + (1 - lr * wd) * W``
        (momentum: the GEMM goes into the buffer), so its gradient is never written to memory
        and read back. Nesterov momentum, the GPU and other parameters take the ordinary path."""
        if not (self.fused and blas.available and not self.nesterov and loss.requires_grad):
            return super().backward_step(loss)
        order = loss._toposort()  # one walk, shared with backward
        sinks = self._attach_gemm_updates(order)
        try:
            loss.backward(_order=order)
            self.step()
            self.zero_grad()
        finally:
            for ctx in sinks:
                ctx.weight_grad_sink = None

    def _attach_gemm_updates(self, order) -> list:
        """Give each linear op in ``order`` (a graph in :meth:`Tensor._toposort` order) the GEMM
        update of its weight where it may take one; returns the ops that got one."""
        uses, linear = {}, []  # how many ops use each tensor; the linear ops
        for node in order:
            ctx = node._ctx
            if ctx is None:
                continue
            if isinstance(ctx, LinearFunction):
                linear.append(ctx)
            for parent in ctx.parents:
                uses[id(parent)] = uses.get(id(parent), 0) + 1
        sinks = []
        for ctx in linear:
            ctx.weight_grad_sink = self._sink(ctx.parents[1], uses)
            if ctx.weight_grad_sink is not None:
                sinks.append(ctx)
        return sinks

    def _sink(self, w, uses):
        """The GEMM update of weight ``w``, or None when it takes the ordinary path (not ours,
        shared, holding a gradient already, or too small for the saved pass to pay for the
        ctypes call)."""
        i = self._index.get(id(w))
        if i is None or uses[id(w)] != 1 or w.grad is not None:
            return None
        data = w.data
        known = self._sinks.get(i)
        if known is None or known[0] is not data:  # made once per parameter array
            fits = (type(data) is np.ndarray and data.ndim == 2 and data.size >= blas.MIN_SIZE
                    and blas.usable(data))
            known = self._sinks[i] = (data, functools.partial(self._gemm_update, i, data)
                                      if fits else None)
        return known[1]

    def _gemm_update(self, i, w, a, b) -> bool:
        """The update of weight array ``w`` (parameter ``i``) from its gradient ``a @ b``."""
        lr, wd, momentum = self.lr, self.weight_decay, self.momentum
        if not momentum:
            return blas.gemm_into(-lr, a, b, w, beta=1.0 - lr * wd)
        buf = self.momentum_buffers[i]
        if not blas.gemm_into(1.0, a, b, buf, beta=momentum):
            return False
        if wd:
            blas.axpy(wd, w, buf)
        blas.axpy(-lr, buf, w)
        return True

    def _update(self, i, p, t):
        buf = self.momentum_buffers[i]
        # The fused kernel writes param in place and needs it contiguous; any other layout (a
        # transposed port of torch weights) takes the array ops, which update strided views.
        if self.fused and p.data.flags.c_contiguous:
            _fused.sgd_step(p.data, p.grad.data, self._lr_for(p), momentum=self.momentum,
                            buf=buf, nesterov=self.nesterov, weight_decay=self.weight_decay)
            return
        g = p.grad.data + self.weight_decay * p.data if self.weight_decay else p.grad.data
        if self.momentum:
            buf *= self.momentum
            buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p.data -= p.dtype.type(self.lr) * g


class Adam(Optimizer):
    """Adam as ``torch.optim.Adam`` (no amsgrad): ``weight_decay`` is L2 added to the gradient,
    or with ``decoupled_weight_decay=True`` (AdamW) a shrink of the parameter by
    ``1 - lr * weight_decay`` before the update.

    Each parameter counts its own steps (torch's ``state['step']``): one that got no gradient in
    a step is skipped and later bias-corrected for the steps it took. By default the counts are
    host integers, so a step captured by ``TinyJit`` would replay with them frozen: such an Adam
    is not ``capturable``. With ``capturable=True`` (as torch's), each count is a 0-d array on its
    parameter's device, counted and turned into the bias corrections by device work, and the
    learning rate is read from device memory, so a captured step replays correctly.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, *,
                 capturable=False, decoupled_weight_decay=False):
        super().__init__(params, lr)
        self.decoupled_weight_decay = bool(decoupled_weight_decay)
        _check("Adam: beta1", betas[0], high=1.0)
        _check("Adam: beta2", betas[1], high=1.0)
        _check("Adam: eps", eps)
        _check("Adam: weight_decay", weight_decay)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.capturable = bool(capturable)
        self.exp_avg = [_dev.module_of(p.data).zeros_like(p.data) for p in self.params]
        self.exp_avg_sq = [_dev.module_of(p.data).zeros_like(p.data) for p in self.params]
        self.param_steps = np.zeros(len(self.params), np.int64)  # steps taken, per parameter
        # capturable: the same counts on the device, in the parameter's dtype (exact to 2**24
        # steps in float32, as torch's float32 step tensor)
        self.device_steps = ([_dev.module_of(p.data).zeros((), p.dtype) for p in self.params]
                             if self.capturable else None)

    def _buffers(self):
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def state_dict(self) -> dict:
        state = super().state_dict()
        steps = self.param_steps
        if self.capturable:  # one host read per parameter, outside any capture
            steps = np.array([int(_dev.to_device(s, "cpu")) for s in self.device_steps])
        state["param_step.0"] = steps.copy()
        return state

    def load_state_dict(self, state: dict):
        steps = state.get("param_step.0")
        if steps is None:  # saved before per-parameter counts: every parameter took every step
            steps = np.full(len(self.params), int(state["step"]))
        if np.shape(steps) != (len(self.params),):
            raise ValueError(f"optimizer state 'param_step.0' has shape {np.shape(steps)} "
                             f"(expected ({len(self.params)},))")
        super().load_state_dict(state)
        self.param_steps[...] = np.asarray(steps, np.int64)
        if self.capturable:
            for s, n in zip(self.device_steps, self.param_steps):
                s.fill(n)
        return self

    def _update(self, i, p, t):
        beta1, beta2 = self.betas
        m, v = self.exp_avg[i], self.exp_avg_sq[i]
        xp, cast = _dev.module_of(p.data), p.dtype.type
        g = p.grad.data
        if self.weight_decay and self.decoupled_weight_decay:  # AdamW: p *= 1 - lr * wd
            p.data *= 1 - self._lr_for(p) * cast(self.weight_decay)  # a device lr stays on it
        elif self.weight_decay:
            g = g + cast(self.weight_decay) * p.data
        m *= cast(beta1)
        m += cast(1 - beta1) * g
        v *= cast(beta2)
        v += cast(1 - beta2) * g * g
        if self.capturable:  # every number below is device work: a replay recomputes it
            step = self.device_steps[i]
            step += 1
            # The order of PyTorch's capturable _single_tensor_adam.
            step_size = self._lr_for(p) / (1 - xp.power(cast(beta1), step))
            denom = xp.sqrt(v) / xp.sqrt(1 - xp.power(cast(beta2), step)) + cast(self.eps)
            p.data -= step_size * (m / denom)
            return
        self.param_steps[i] += 1
        t = int(self.param_steps[i])
        # The order of PyTorch's _single_tensor_adam: denom = sqrt(v) / sqrt(bc2) + eps.
        denom = xp.sqrt(v) / cast((1 - beta2 ** t) ** 0.5) + cast(self.eps)
        p.data -= cast(self.lr / (1 - beta1 ** t)) * m / denom


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay, 0.01 by default."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *,
                 capturable=False):
        super().__init__(params, lr, betas, eps, weight_decay, capturable=capturable,
                         decoupled_weight_decay=True)
