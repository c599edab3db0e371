"""Functional ops: linear layers and cross-entropy, each with a fused path and a reference path.

The fused path runs the hand-written kernels of :mod:`tinygrad_mlp.fused` (CUDA on the GPU, NumPy
twins on the CPU) and keeps what backward needs from forward, so nothing is recomputed. The
reference path composes the same math from Tensor primitives. Choose with ``fused=True/False``;
the default is fused unless the environment variable ``TINYGRAD_MLP_FUSED=0`` overrides it (for
tests and for measuring what fusion buys).
"""

from __future__ import annotations

import os

import numpy as np

from . import device as _dev
from . import fused as _fused
from .tensor import Function, Tensor

_SWITCH = {"": True, "1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def use_fused(fused: bool | None = None) -> bool:
    """Resolve a ``fused`` argument: an explicit True/False wins, else the environment default
    (``TINYGRAD_MLP_FUSED``: unset, 1, true or yes for fused; 0, false or no for the reference
    ops; anything else is an error rather than a silent guess)."""
    if fused is not None:
        return bool(fused)
    value = os.environ.get("TINYGRAD_MLP_FUSED", "")
    try:
        return _SWITCH[value.strip().lower()]
    except KeyError:
        raise ValueError(f"TINYGRAD_MLP_FUSED={value!r}: expected 0 (the unfused reference ops) "
                         "or 1 (fused)") from None


def _linear_grads(ctx: LinearFunction, x, w, dy):
    need_x, need_w, need_b = (ctx.needs_input_grad + (False,))[:3]
    dx = _dev.matmul(dy, w.T) if need_x else None  # before a sink may update w in place
    dw = None
    if need_w and (ctx.weight_grad_sink is None or not ctx.weight_grad_sink(x.T, dy)):
        dw = _dev.matmul(x.T, dy)
    return dx, dw, _fused.bias_grad(dy) if need_b else None


class LinearFunction(Function):
    """Base of the linear ops. ``weight_grad_sink``, when an optimizer sets it on one op of a
    graph (see ``optim.SGD.backward_step``), is called in backward as ``sink(a, b)`` with the
    weight gradient still a product ``a @ b``; if it returns True it has consumed the gradient
    (e.g. as one GEMM into the weight) and the weight gets no ``.grad`` from this op."""

    weight_grad_sink = None


class _Linear(LinearFunction):
    def forward(self, x, w, b):
        y = _dev.matmul(x, w)
        y += b
        self.save_for_backward(x, w)
        return y

    def backward(self, g):
        return _linear_grads(self, *self.saved_tensors, g)


class _LinearReLU(LinearFunction):
    def forward(self, x, w, b):
        # The GEMM stays in BLAS/cuBLAS; one fused pass adds the bias and applies ReLU in place.
        y = _fused.bias_relu(_dev.matmul(x, w), b)
        self.save_for_backward(x, w, y)
        return y

    def backward(self, g):
        x, w, y = self.saved_tensors
        return _linear_grads(self, x, w, _fused.relu_backward(g, y))


def _check_linear(x: Tensor, w: Tensor, b: Tensor | None):
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"linear: input {x.shape} does not fit weight {w.shape} "
                         "(expected (N, in) and (in, out))")
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(f"linear: bias shape {b.shape} does not fit weight {w.shape}")
    if x.data.dtype != w.data.dtype or b is not None and b.data.dtype != w.data.dtype:
        raise TypeError(f"linear: input {x.dtype}, weight {w.dtype} and bias "
                        f"{None if b is None else b.dtype} must share one dtype, as in torch")


def linear(x: Tensor, w: Tensor, b: Tensor | None = None, *, fused: bool | None = None) -> Tensor:
    """``x @ w + b`` for x (N, in), w (in, out), b (out,)."""
    _check_linear(x, w, b)
    if b is None:
        return x @ w
    if use_fused(fused):
        return _Linear.apply(x, w, b)
    return x @ w + b


def linear_relu(x: Tensor, w: Tensor, b: Tensor, *, fused: bool | None = None) -> Tensor:
    """``relu(x @ w + b)`` for x (N, in), w (in, out), b (out,); fused bias+ReLU epilogue."""
    _check_linear(x, w, b)
    if use_fused(fused):
        return _LinearReLU.apply(x, w, b)
    return (x @ w + b).relu()


class _SoftmaxCrossEntropy(Function):
    def forward(self, logits, labels, correct_out: list):
        loss_rows, self.dlogits, correct = _fused.softmax_xent(logits, labels)
        correct_out.append(correct)  # handed back even when no graph is recorded
        return loss_rows.sum() / len(loss_rows)  # = mean(), without its Python-level wrapper

    def backward(self, g):
        # dlogits = (softmax - onehot) / N was written by the forward kernel.
        return self.dlogits * g


def _labels_of(target, logits: Tensor, ignore_index: int):
    """Validate integer class targets and return them as an int array on the logits' device,
    with whether any equals ``ignore_index``."""
    labels = target.data if isinstance(target, Tensor) else target
    labels = _dev.to_device(labels, logits.device)
    n, classes = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"cross_entropy: target shape {labels.shape} does not match logits "
                         f"{logits.shape} (expected ({n},) integer class indices or "
                         f"({n}, {classes}) float probabilities, got {labels.dtype})")
    # CuPy would wrap an out-of-range index silently: check here, before any kernel reads it.
    low, high = (int(v) for v in (labels.min(), labels.max())) if n else (0, 0)
    ignored = low <= ignore_index <= high and bool((labels == ignore_index).any())
    if ignored:  # the range check is for the other labels
        kept = labels[labels != ignore_index]
        low, high = (int(v) for v in (kept.min(), kept.max())) if kept.size else (0, 0)
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise ValueError(f"cross_entropy: label {bad} is out of range for {classes} classes")
    return labels, ignored


def cross_entropy(logits: Tensor, target, *, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0,
                  fused: bool | None = None, check_labels: bool = True,
                  return_correct: bool = False):
    """Softmax cross-entropy of ``logits`` (N, C) against ``target``, as torch's.

    ``target`` is either integer class indices (N,) or one-hot / probability rows (N, C) (float).
    ``weight`` (C,): a rescaling weight per class; ``ignore_index``: rows whose label equals it
    count for nothing (class-index targets; -100 by default, as torch); ``label_smoothing`` in
    [0, 1]: the target mixed with the uniform distribution. ``reduction``: "mean" (the default;
    with ``weight``, a weighted mean, as torch), "sum", or "none" for the (N,) per-row losses.
    Only the plain mean of class-index targets has a fused kernel; the rest runs the reference
    path. With ``return_correct=True`` also returns the number of rows whose argmax matches the
    target, as a 0-d array on the device (no host sync). ``check_labels=False`` skips the range
    check of integer labels (one device-to-host sync on the GPU) for labels already validated
    once (none of them equal to ``ignore_index``).
    """
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got shape {logits.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if weight is not None:
        weight = weight if isinstance(weight, Tensor) else Tensor(weight, device=logits.device)
        if weight.shape != (logits.shape[1],):
            raise ValueError(f"cross_entropy: weight shape {weight.shape} does not match "
                             f"{logits.shape[1]} classes")
        weight = Tensor._wrap(weight.data.astype(logits.dtype, copy=False), logits.device)
    target_data = target.data if isinstance(target, Tensor) else target
    if not hasattr(target_data, "dtype"):  # a list or tuple of labels
        target_data = np.asarray(target_data)
    kind = np.dtype(target_data.dtype).kind
    if kind == "f":
        target = Tensor(target_data, device=logits.device, dtype=logits.dtype)
        return _cross_entropy_dense(logits, target, weight, label_smoothing, reduction,
                                    return_correct)
    if kind not in "iu":
        raise TypeError(f"cross_entropy: target must be integer class indices or float (N, C) "
                        f"probabilities, got dtype {target_data.dtype}")
    ignored = False
    if check_labels:
        labels, ignored = _labels_of(target_data, logits, ignore_index)
    else:
        labels = _dev.to_device(target_data, logits.device)
    plain = weight is None and not ignored and not label_smoothing and reduction == "mean"
    if use_fused(fused) and plain:
        correct = []
        loss = _SoftmaxCrossEntropy.apply(logits, labels=labels, correct_out=correct)
        return (loss, correct[0]) if return_correct else loss
    if plain:
        loss = -_PickLabels.apply(logits.log_softmax(axis=1), labels=labels).mean()
    else:
        loss = _cross_entropy_indices(logits, labels, weight, ignore_index, label_smoothing,
                                      reduction)
    return (loss, _count_correct(logits.data, labels)) if return_correct else loss


def _cross_entropy_indices(logits, labels, weight, ignore_index, smoothing, reduction):
    """torch's cross_entropy of class indices with weight / ignore_index / label smoothing."""
    xp = _dev.module_of(logits.data)
    logp = logits.log_softmax(axis=1)
    kept = labels != ignore_index
    safe = xp.where(kept, labels, 0)  # ignored rows pick class 0, then weigh nothing
    # each row's weight: its class's weight (1 without one), 0 where ignored; a constant
    row_w = (weight.data[safe] if weight is not None else xp.ones(len(labels), logits.dtype))
    row_w = Tensor._wrap(row_w * kept, logits.device)
    rows = -_PickLabels.apply(logp, labels=safe) * row_w
    if smoothing:
        per_class = logp * weight if weight is not None else logp
        smooth = -per_class.sum(axis=1) * Tensor._wrap(kept.astype(logits.dtype), logits.device)
        rows = rows * (1 - smoothing) + smooth * (smoothing / logits.shape[1])
    if reduction == "none":
        return rows
    total = rows.sum()
    return total / row_w.sum() if reduction == "mean" else total  # torch: the weighted mean


def mse_loss(prediction: Tensor, target, *, reduction: str = "mean") -> Tensor:
    """Squared error ``(prediction - target) ** 2``, averaged ("mean"), summed ("sum") or per
    element ("none"), as torch's; target: a Tensor or array of the same shape."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not isinstance(target, Tensor):
        target = Tensor(target, device=prediction.device, dtype=prediction.dtype)
    if target.shape != prediction.shape:  # torch only warns, then broadcasts: rarely meant
        raise ValueError(f"mse_loss: target shape {target.shape} differs from prediction shape "
                         f"{prediction.shape}")
    return _reduce((prediction - target) ** 2, reduction)


class _PickLabels(Function):
    """``logp[i, labels[i]]`` for each row i. A gather, not a product with one-hot rows, which
    would turn a -inf log-probability of another class into nan (torch's nll_loss gathers)."""

    def forward(self, logp, labels):
        self.shape, self.index = logp.shape, (_dev.module_of(logp).arange(len(labels)), labels)
        return logp[self.index]

    def backward(self, g):
        out = _dev.module_of(g).zeros(self.shape, g.dtype)
        out[self.index] = g
        return out


def _reduce(rows: Tensor, reduction: str) -> Tensor:
    return rows.mean() if reduction == "mean" else rows.sum() if reduction == "sum" else rows


def _cross_entropy_dense(logits, target, weight, smoothing, reduction, return_correct):
    if target.shape != logits.shape:
        raise ValueError(f"cross_entropy: target shape {target.shape} does not match logits "
                         f"{logits.shape}")
    if smoothing:  # torch mixes probability targets with the uniform distribution
        target = target * (1 - smoothing) + smoothing / logits.shape[1]
    per_class = logits.log_softmax(axis=1) * target
    if weight is not None:
        per_class = per_class * weight
    loss = _reduce(-per_class.sum(axis=1), reduction)  # mean over rows even with weight, as torch
    if not return_correct:
        return loss
    return loss, _count_correct(logits.data, target.data.argmax(axis=1))


def _count_correct(logits, labels):
    return (logits.argmax(axis=1) == labels).sum()
