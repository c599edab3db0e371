"""Gradient checking: float64 central differences against the autodiff backward."""

from __future__ import annotations

import functools
import operator

import numpy as np

from . import device as _dev
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """A backward disagrees with finite differences; the message names input, index and values."""


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0,
              raise_exception=True) -> bool:
    """Check ``fn(*inputs)``'s gradients for every input Tensor that requires grad.

    Called as ``gradcheck(fn, a, b)`` or, as ``torch.autograd.gradcheck``, ``gradcheck(fn, (a, b))``
    (a single Tensor works too). Inputs are copied to float64 (same device). ``fn`` returns a
    Tensor or a tuple of Tensors; each output is reduced with a random upstream gradient ``v``
    (so a backward that is right only for all-ones gradients is caught): the numerical gradient
    of ``sum(out * v)`` (summed over outputs) by central differences must match ``backward(v)``
    within ``atol + rtol * |numerical|``. Returns True, or raises GradcheckError (returns False
    with ``raise_exception=False``, as torch).
    """
    if eps <= 0:
        raise ValueError(f"gradcheck: eps must be > 0, got {eps}")
    if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):  # torch's form: one sequence
        inputs = tuple(inputs[0])
    args = [Tensor(t.data, requires_grad=t.requires_grad, device=t.device, dtype=np.float64)
            if isinstance(t, Tensor) and t.dtype.kind == "f" else t for t in inputs]
    checked = [i for i, t in enumerate(args) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for i in checked:  # contiguous, so a flat view perturbs the input itself
        args[i].data = _dev.module_of(args[i].data).ascontiguousarray(args[i].data)

    def outputs():
        out = fn(*args)
        out = out if isinstance(out, (tuple, list)) else (out,)
        for o in out:
            if not isinstance(o, Tensor):
                raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got "
                                f"{type(o).__name__}")
        return out

    outs = outputs()
    xp = _dev.module_of(outs[0].data)
    rng = np.random.default_rng(seed)
    vs = [xp.asarray(rng.standard_normal(o.shape)) for o in outs]
    terms = [(o * Tensor._wrap(v, o.device)).sum() for o, v in zip(outs, vs) if o.requires_grad]
    if terms:  # one backward through the sum of every output's reduction
        functools.reduce(operator.add, terms).backward()

    def scalar_output():
        with no_grad():
            return sum(float((o.data * v).sum()) for o, v in zip(outputs(), vs))

    for i in checked:
        x = args[i]
        analytical = _dev.to_device(x.grad.data if x.grad is not None
                                    else xp.zeros(x.shape), "cpu")
        flat = x.data.reshape(-1)
        for j in range(flat.size):
            original = flat[j].item()
            flat[j] = original + eps
            plus = scalar_output()
            flat[j] = original - eps
            minus = scalar_output()
            flat[j] = original
            numerical = (plus - minus) / (2 * eps)
            got = analytical.reshape(-1)[j]
            if not abs(got - numerical) <= atol + rtol * abs(numerical):
                if not raise_exception:
                    return False
                index = np.unravel_index(j, x.shape) if x.ndim else ()
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {x.shape}) at index {tuple(map(int, index))}: "
                    f"numerical {numerical:.8g} vs analytical {got:.8g}")
    return True
