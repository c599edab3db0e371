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


def use_fused(fused: bool | None = None) -> bool:
    """Resolve a ``fused`` argument: an explicit True/False wins, else the environment default."""
    if fused is not None:
        return bool(fused)
    return os.environ.get("TINYGRAD_MLP_FUSED", "1").strip().lower() not in ("0", "false", "no")


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


def _labels_of(target, logits: Tensor):
    """Validate integer class targets and return them as an int array on the logits' device."""
    labels = target.data if isinstance(target, Tensor) else target
    labels = _dev.to_device(labels, logits.device)
    n, classes = logits.shape
    if labels.shape != (n,):
        raise ValueError(f"cross_entropy: target shape {labels.shape} does not match logits "
                         f"{logits.shape} (expected ({n},) integer class indices or "
                         f"({n}, {classes}) float probabilities, got {labels.dtype})")
    # CuPy would wrap an out-of-range index silently: check here, before any kernel reads it.
    low, high = (int(v) for v in (labels.min(), labels.max())) if n else (0, 0)
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise ValueError(f"cross_entropy: label {bad} is out of range for {classes} classes")
    return labels


def cross_entropy(logits: Tensor, target, *, reduction: str = "mean", fused: bool | None = None,
                  check_labels: bool = True, return_correct: bool = False):
    """Softmax cross-entropy of ``logits`` (N, C) against ``target``, as torch's.

    ``target`` is either integer class indices (N,) or one-hot / probability rows (N, C) (float).
    ``reduction``: "mean" (the default), "sum", or "none" for the (N,) per-row losses; only
    "mean" has a fused kernel, the others run the reference path.
    With ``return_correct=True`` also returns the number of rows whose argmax matches the target,
    as a 0-d array on the device (no host sync). ``check_labels=False`` skips the range check of
    integer labels (one device-to-host sync on the GPU) for labels already validated once.
    """
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, C), got shape {logits.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    target_data = target.data if isinstance(target, Tensor) else target
    if not hasattr(target_data, "dtype"):  # a list or tuple of labels
        target_data = np.asarray(target_data)
    kind = np.dtype(target_data.dtype).kind
    if kind == "f":
        return _cross_entropy_dense(logits, Tensor(target_data, device=logits.device,
                                                   dtype=logits.dtype), return_correct, reduction)
    if kind not in "iu":
        raise TypeError(f"cross_entropy: target must be integer class indices or float (N, C) "
                        f"probabilities, got dtype {target_data.dtype}")
    if check_labels:
        labels = _labels_of(target_data, logits)
    else:
        labels = _dev.to_device(target_data, logits.device)
    if use_fused(fused) and reduction == "mean":
        correct = []
        loss = _SoftmaxCrossEntropy.apply(logits, labels=labels, correct_out=correct)
        return (loss, correct[0]) if return_correct else loss
    loss = _reduce(-_PickLabels.apply(logits.log_softmax(axis=1), labels=labels), reduction)
    return (loss, _count_correct(logits.data, labels)) if return_correct else loss


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


def _cross_entropy_dense(logits: Tensor, target: Tensor, return_correct: bool, reduction: str):
    if target.shape != logits.shape:
        raise ValueError(f"cross_entropy: target shape {target.shape} does not match logits "
                         f"{logits.shape}")
    loss = _reduce(-(logits.log_softmax(axis=1) * target).sum(axis=1), reduction)
    if not return_correct:
        return loss
    return loss, _count_correct(logits.data, target.data.argmax(axis=1))


def _count_correct(logits, labels):
    return (logits.argmax(axis=1) == labels).sum()
