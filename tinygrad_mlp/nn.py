"""Modules: parameters found automatically, moved and saved as a whole (as torch.nn.Module)."""

from __future__ import annotations

import math

import numpy as np

from . import device as _dev
from . import functional as F
from .tensor import Tensor


class Module:
    """Base class. Tensors with ``requires_grad`` and sub-modules (also inside lists and tuples)
    assigned as attributes are found automatically, in assignment order. ``training`` (set by
    :meth:`train` / :meth:`eval`) is kept for code written for torch; no module here behaves
    differently in evaluation (there is no dropout or batch norm)."""

    training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def children(self):
        """The direct sub-modules (also inside lists and tuples), in assignment order."""
        for value in vars(self).values():
            for item in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(item, Module):
                    yield item

    def modules(self):
        """This module and every sub-module below it, depth first (as torch)."""
        yield self
        for child in self.children():
            yield from child.modules()

    def train(self, mode: bool = True):
        """Set ``training`` on this module and every sub-module; returns self."""
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self):
        """``train(False)``."""
        return self.train(False)

    def named_parameters(self, prefix: str = ""):
        for name, value in vars(self).items():
            items = enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]
            for index, item in items:
                full = prefix + name + ("" if index is None else f".{index}")
                if isinstance(item, Tensor) and item.requires_grad:
                    yield full, item
                elif isinstance(item, Module):
                    yield from item.named_parameters(full + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def zero_grad(self, set_to_none: bool = True):
        """Drop every parameter's gradient, or with ``set_to_none=False`` fill it with zeros
        (in place), as torch."""
        for p in self.parameters():
            p.grad = None if set_to_none or p.grad is None else p.grad.zero_()

    def to(self, device):
        """Move every parameter to `device` in place (optimizers keep their references)."""
        device = _dev.canonical(device)
        for p in self.parameters():
            p.data, p.device, p.grad = _dev.to_device(p.data, device), device, None
        return self

    def state_dict(self) -> dict:
        """Parameter name -> host NumPy array (a copy)."""
        return {name: np.array(p.numpy()) for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict):
        """Copy arrays (or Tensors) into the parameters; keys and shapes must match exactly."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, p in params.items():
            value = state[name].numpy() if isinstance(state[name], Tensor) else state[name]
            if tuple(np.shape(value)) != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {np.shape(value)} in the "
                                 f"state dict but {p.shape} in the model")
            p.data[...] = _dev.to_device(np.asarray(value, dtype=p.dtype), p.device)
        return self

    def __repr__(self):
        return f"{type(self).__name__}()"


class Linear(Module):
    """``y = x @ weight + bias`` with ``weight`` of shape (in_features, out_features).

    The weight is stored input-major (transposed from PyTorch's (out, in)) so the forward GEMM
    needs no transpose. Init: with ``init_scale=None``, PyTorch's default U(-1/sqrt(in), 1/sqrt(in))
    for weight and bias; with ``init_scale=s``, weight U(-s, s) and a zero bias (the reference
    runs use s = 0.01). Draws come from ``Tensor.manual_seed``'s generator.
    """

    def __init__(self, in_features, out_features, bias=True, *, init_scale=None, device="cpu",
                 relu=False, fused=None):
        # fused=None resolves here, once (environment default), not on every forward call
        self.in_features, self.out_features, self.relu, self.fused = (
            in_features, out_features, relu, F.use_fused(fused))
        bound = 1 / math.sqrt(in_features) if init_scale is None else init_scale
        self.weight = Tensor.uniform(in_features, out_features, low=-bound, high=bound,
                                     device=device, requires_grad=True)
        self.bias = None
        if bias:
            self.bias = (Tensor.zeros(out_features, device=device, requires_grad=True)
                         if init_scale is not None else
                         Tensor.uniform(out_features, low=-bound, high=bound, device=device,
                                        requires_grad=True))

    def forward(self, x):
        if self.relu:
            return F.linear_relu(x, self.weight, self.bias, fused=self.fused)
        return F.linear(x, self.weight, self.bias, fused=self.fused)

    def __repr__(self):
        act = ", relu=True" if self.relu else ""
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}{act})")


class ReLU(Module):
    def forward(self, x):
        return x.relu()


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x):
        return x.sigmoid()


class Identity(Module):
    def forward(self, x):
        return x


class Flatten(Module):
    """``x.flatten(start_dim, end_dim)``; the defaults keep the batch axis, as torch's."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def __repr__(self):
        return f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim})"


class CrossEntropyLoss(Module):
    """``F.cross_entropy`` with its options fixed at construction, as torch's module."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        # keyword-only after weight: torch's positional order has its deprecated arguments
        self.options = {"weight": weight, "ignore_index": ignore_index, "reduction": reduction,
                        "label_smoothing": label_smoothing}

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, **self.options)


class MSELoss(Module):
    """``F.mse_loss`` with its reduction fixed at construction, as torch's module."""

    def __init__(self, *, reduction="mean"):
        self.reduction = reduction

    def forward(self, prediction, target):
        return F.mse_loss(prediction, target, reduction=self.reduction)


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i):
        return Sequential(*self.layers[i]) if isinstance(i, slice) else self.layers[i]  # as torch

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"{type(self).__name__}({inner}\n)"


class MLP(Sequential):
    """A ReLU MLP: ``MLP([784, 512, 512, 10])`` is Linear+ReLU, Linear+ReLU, Linear.

    Hidden layers run the fused linear+ReLU op; the last layer returns logits. Keyword arguments
    (``init_scale``, ``device``, ``fused``) go to every :class:`Linear`.
    """

    def __init__(self, sizes, *, init_scale=None, device="cpu", fused=None):
        sizes = list(sizes)
        if len(sizes) < 2 or any(int(n) != n or n < 1 for n in sizes):
            raise ValueError(f"MLP sizes must be at least two positive integers, got {sizes}")
        self.sizes = sizes
        last = len(sizes) - 2
        super().__init__(*[Linear(n_in, n_out, init_scale=init_scale, device=device,
                                  relu=i < last, fused=fused)
                           for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]))])

    def __repr__(self):
        return f"MLP({self.sizes})"
