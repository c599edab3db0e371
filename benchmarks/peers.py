"""Peers for the training benchmark: the same MLP written without tinygrad_mlp.

Everything here trains the reference MLP 784-512-512-10 (ReLU, softmax cross-entropy, plain SGD)
from the same initial arrays (:func:`init_params`) on the same batches, so `bench_train.py` can
time them one after another and compare epochs as ratios. Weights are stored as
(in_features, out_features), as in tinygrad_mlp, so a forward layer is ``x @ W + b``.

- :class:`NumpyMLP`: a hand-written NumPy MLP, as fast as we could make it (see its docstring).
- :class:`GemmFloor`: only the GEMMs of one epoch, on preallocated buffers: the floor under every
  row.
- :func:`torch_eager_peer` / :class:`TorchCudaGraphPeer`: PyTorch eager, and on the GPU the whole
  step captured once as a CUDA graph and replayed (torch is imported only inside these).
"""

from __future__ import annotations

import numpy as np

SIZES = (784, 512, 512, 10)


def init_params(seed: int = 0, sizes=SIZES, scale: float = 0.01) -> list[np.ndarray]:
    """The shared initial parameters [W1, b1, W2, b2, W3, b3] as float32 NumPy arrays.

    W_i is (in, out) drawn from U(-scale, scale); biases are zeros. Every row of the benchmark
    copies these arrays, so all start from bit-identical weights.
    """
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        params.append(rng.uniform(-scale, scale, (fan_in, fan_out)).astype(np.float32))
        params.append(np.zeros(fan_out, np.float32))
    return params


def batch_slices(n: int, batch_size: int):
    """(start, stop) of each batch in order, no shuffling; the last batch may be short."""
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


class NumpyMLP:
    """The reference MLP by hand in NumPy: float32 throughout, no allocation in the step.

    Choices, each measured on a 2-core machine against the obvious alternative:

    - Every array is preallocated; GEMMs write through ``np.matmul(..., out=)`` and the last,
      short batch uses leading-row views of the same buffers (still C-contiguous).
    - The learning rate is folded into the loss gradient, ``(softmax - onehot) * lr / n``. The
      backward pass is linear in that gradient, so every dW and db comes out already scaled and
      SGD is one in-place subtraction per parameter (saves a full pass over each weight).
    - Bias gradients are a ones-vector GEMV, ``ones @ g``: about twice as fast as
      ``g.sum(axis=0, out=)`` at these shapes.
    - ReLU is in place (``np.maximum(h, 0, out=h)``) and its backward multiplies by ``h > 0``;
      masking with ``np.copyto(g, 0, where=...)`` was ~20x slower.
    - The last layer runs transposed: logits are (10, n), so the softmax max/sum reduce over
      the leading axis (fast, vectorised over the batch) instead of over 10 contiguous floats.
    - dX of a layer is computed before that layer's weights are updated (plain SGD semantics).
    """

    def __init__(self, params, lr: float = 0.5, batch_size: int = 128):
        w1, b1, w2, b2, w3, b3 = (np.array(p, dtype=np.float32, copy=True) for p in params)
        self.lr = float(lr)
        self.batch_size = batch_size
        h1_dim, h2_dim, n_out = w1.shape[1], w2.shape[1], w3.shape[1]
        bs = batch_size
        self.w1, self.b1, self.w2, self.b2 = w1, b1, w2, b2
        self.w3t = np.ascontiguousarray(w3.T)  # (10, 512): the last layer runs transposed
        self.b3c = b3.reshape(n_out, 1).copy()  # column bias for (10, n) logits
        f32 = np.float32
        self.h1 = np.empty((bs, h1_dim), f32)
        self.h2 = np.empty((bs, h2_dim), f32)
        self.zt = np.empty((n_out, bs), f32)  # logits, transposed
        self.et = np.empty((n_out, bs), f32)
        self.row = np.empty((1, bs), f32)  # per-sample max, then per-sample sum / scale
        self.g2 = np.empty((bs, h2_dim), f32)
        self.g1 = np.empty((bs, h1_dim), f32)
        self.mask = np.empty((bs, max(h1_dim, h2_dim)), bool)
        self.dw1 = np.empty_like(w1)
        self.dw2 = np.empty_like(w2)
        self.dw3t = np.empty_like(self.w3t)
        self.db1 = np.empty_like(b1)
        self.db2 = np.empty_like(b2)
        self.db3c = np.empty_like(self.b3c)
        self.ones = np.ones(bs, f32)

    def parameters(self) -> list[np.ndarray]:
        """[W1, b1, W2, b2, W3, b3] in the shared layout (copies of the last two)."""
        return [self.w1, self.b1, self.w2, self.b2,
                np.ascontiguousarray(self.w3t.T), self.b3c.ravel().copy()]

    def _forward(self, xb: np.ndarray, n: int) -> np.ndarray:
        """Hidden activations into self.h1/h2; returns the (10, n) logits view."""
        h1, h2, zt = self.h1[:n], self.h2[:n], self.zt[:, :n]
        np.matmul(xb, self.w1, out=h1)
        h1 += self.b1
        np.maximum(h1, 0, out=h1)
        np.matmul(h1, self.w2, out=h2)
        h2 += self.b2
        np.maximum(h2, 0, out=h2)
        np.matmul(self.w3t, h2.T, out=zt)
        zt += self.b3c
        return zt

    def _log_softmax_parts(self, zt: np.ndarray, n: int):
        """Shift the logits by their column max in place; return (exp, per-column sum)."""
        row, et = self.row[:, :n], self.et[:, :n]
        np.max(zt, axis=0, keepdims=True, out=row)
        zt -= row
        np.exp(zt, out=et)
        np.sum(et, axis=0, keepdims=True, out=row)
        return et, row

    def train_step(self, xb: np.ndarray, onehot_t: np.ndarray) -> float:
        """One SGD step on batch xb (n, 784); onehot_t is the labels' (10, n) one-hot.

        Returns the summed (not mean) loss of the batch.
        """
        n = xb.shape[0]
        zt = self._forward(xb, n)
        et, s = self._log_softmax_parts(zt, n)
        # sum of -log softmax[label] = sum(log s) - sum(shifted logit at the label)
        loss = float(np.log(s).sum() - np.vdot(zt, onehot_t))
        # g = (softmax - onehot) * lr / n, transposed (10, n): et <- et * (lr/n / s) - onehot*lr/n
        scale = np.float32(self.lr / n)
        np.divide(scale, s, out=s)
        et *= s
        et -= onehot_t * scale
        h1, h2, g1, g2 = self.h1[:n], self.h2[:n], self.g1[:n], self.g2[:n]
        ones = self.ones[:n]
        # layer 3 (transposed): dW3^T = g^T @ h2, db3 = row sums of g^T, dX3 = g @ W3
        np.matmul(et, h2, out=self.dw3t)
        np.matmul(et, ones, out=self.db3c[:, 0])
        np.matmul(et.T, self.w3t, out=g2)
        self.w3t -= self.dw3t
        self.b3c -= self.db3c
        mask = self.mask[:n, : g2.shape[1]]
        np.greater(h2, 0, out=mask)
        g2 *= mask
        # layer 2: dX (needs the old W2) first, then dW2, subtracted while still in cache
        np.matmul(g2, self.w2.T, out=g1)
        np.matmul(h1.T, g2, out=self.dw2)
        self.w2 -= self.dw2
        np.matmul(ones, g2, out=self.db2)
        self.b2 -= self.db2
        mask = self.mask[:n, : g1.shape[1]]
        np.greater(h1, 0, out=mask)
        g1 *= mask
        # layer 1: no dX (the input needs no gradient)
        np.matmul(xb.T, g1, out=self.dw1)
        self.w1 -= self.dw1
        np.matmul(ones, g1, out=self.db1)
        self.b1 -= self.db1
        return loss

    def train_epoch(self, x: np.ndarray, onehot_t: np.ndarray) -> float:
        """One pass over x (N, 784) float32 in order; onehot_t is (10, N) float32. Mean loss."""
        total = 0.0
        for start, stop in batch_slices(x.shape[0], self.batch_size):
            total += self.train_step(x[start:stop], onehot_t[:, start:stop])
        return total / x.shape[0]

    def evaluate(self, x: np.ndarray, y: np.ndarray, onehot_t: np.ndarray):
        """(mean loss, accuracy) over x in batches of batch_size, forward only."""
        total, correct = 0.0, 0
        for start, stop in batch_slices(x.shape[0], self.batch_size):
            n = stop - start
            zt = self._forward(x[start:stop], n)
            correct += int(np.count_nonzero(zt.argmax(axis=0) == y[start:stop]))
            _, s = self._log_softmax_parts(zt, n)
            total += float(np.log(s).sum() - np.vdot(zt, onehot_t[:, start:stop]))
        return total / x.shape[0], correct / x.shape[0]


def onehot_transposed(y: np.ndarray, classes: int = 10) -> np.ndarray:
    """(classes, N) float32 one-hot of integer labels y (N,), C-contiguous."""
    out = np.zeros((classes, y.shape[0]), np.float32)
    out[y, np.arange(y.shape[0])] = 1.0
    return out


class GemmFloor:
    """Exactly the GEMMs of one epoch, on preallocated buffers: nothing else.

    Per training step (batch n): forward x@W for the 3 layers, backward dW = a.T @ g for the 3
    layers and dX = g @ W.T for layers 3 and 2 (layer 1's input needs no gradient, and no row
    computes it). Then the test forward pass in batches of batch_size. `xp` is numpy or cupy;
    `matmul(a, b, out)` may be given for other array libraries (torch.matmul works too).
    The input batches are views of the real data, as in training; the other operands hold
    small random values (GEMM time does not depend on them, and they stay clear of denormals).
    """

    def __init__(self, x_train, x_test, params, batch_size: int = 128, xp=np, matmul=None,
                 seed: int = 0):
        self.xp = xp
        self.matmul = matmul or (lambda a, b, out: xp.matmul(a, b, out=out))
        self.x_train, self.x_test = x_train, x_test
        self.batch_size = batch_size
        rng = np.random.default_rng(seed)
        sizes = [params[0].shape[0]] + [params[i].shape[1] for i in (0, 2, 4)]
        bs = batch_size

        def dev(a):
            return xp.asarray(np.ascontiguousarray(a, dtype=np.float32))

        def rand(*shape):
            return dev(rng.uniform(-1, 1, shape))

        self.w = [dev(params[i]) for i in (0, 2, 4)]
        self.dw = [xp.empty_like(w) for w in self.w]
        self.act = [rand(bs, d) for d in sizes[1:]]  # outputs of each layer (forward targets)
        self.grad = [rand(bs, d) for d in sizes[1:]]  # dL/d(layer output)
        self.dx = [rand(bs, d) for d in sizes[1:-1]]  # dL/d(layer input) for layers 2 and 3

    def flop(self) -> float:
        """GEMM floating-point operations in one epoch (train + test)."""
        k = [w.shape for w in self.w]
        fwd = sum(2 * a * b for a, b in k)
        bwd = sum(2 * a * b for a, b in k) + sum(2 * a * b for a, b in k[1:])
        return self.x_train.shape[0] * (fwd + bwd) + self.x_test.shape[0] * fwd

    def _forward(self, xb, n):
        mm, (w1, w2, w3), (a1, a2, a3) = self.matmul, self.w, self.act
        mm(xb, w1, a1[:n])
        mm(a1[:n], w2, a2[:n])
        mm(a2[:n], w3, a3[:n])

    def train_pass(self):
        mm, (_, w2, w3), (a1, a2, _) = self.matmul, self.w, self.act
        (dw1, dw2, dw3), (g1, g2, g3), (dx1, dx2) = self.dw, self.grad, self.dx
        for start, stop in batch_slices(self.x_train.shape[0], self.batch_size):
            n = stop - start
            xb = self.x_train[start:stop]
            self._forward(xb, n)
            mm(a2[:n].T, g3[:n], dw3)
            mm(g3[:n], w3.T, dx2[:n])
            mm(a1[:n].T, g2[:n], dw2)
            mm(g2[:n], w2.T, dx1[:n])
            mm(xb.T, g1[:n], dw1)

    def test_pass(self):
        for start, stop in batch_slices(self.x_test.shape[0], self.batch_size):
            self._forward(self.x_test[start:stop], stop - start)


# ---------------------------------------------------------------------------------------------
# PyTorch peers (torch is optional: imported here, inside the functions, never at module level)


def torch_eager_peer(params, lr: float = 0.5, device: str = "cpu"):
    """(model, optimizer): nn.Sequential of Linear/ReLU with the shared weights, and plain SGD.

    torch's Linear stores weight as (out, in), so it receives W.T; :func:`torch_parameters` reads
    them back in the shared layout for the bit-identity check.
    """
    import torch

    sizes = [params[0].shape[0]] + [params[i].shape[1] for i in range(0, len(params), 2)]
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = torch.nn.Linear(fan_in, fan_out, device=device)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(params[2 * i].T)))
            lin.bias.copy_(torch.from_numpy(params[2 * i + 1]))
        layers += [lin, torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    return model, torch.optim.SGD(model.parameters(), lr=lr)


def torch_parameters(model) -> list[np.ndarray]:
    """[W1, b1, ...] of a :func:`torch_eager_peer` model, back in the (in, out) layout."""
    out = []
    for p in model.parameters():
        a = p.detach().cpu().numpy()
        out.append(np.ascontiguousarray(a.T) if a.ndim == 2 else a.copy())
    return out


def torch_train_epoch(model, optimizer, x, y, batch_size: int = 128):
    """One eager pass over device tensors x (N, 784) float32, y (N,) int64, in order.

    Returns the summed loss as a 0-d device tensor: no host sync inside the epoch.
    """
    import torch
    import torch.nn.functional as F

    total = torch.zeros((), device=x.device)
    for start, stop in batch_slices(x.shape[0], batch_size):
        loss = F.cross_entropy(model(x[start:stop]), y[start:stop])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.detach() * (stop - start)
    return total


def torch_evaluate(model, x, y, batch_size: int = 128):
    """(summed loss, correct count) over x in batches, as 0-d device tensors (no host sync)."""
    import torch
    import torch.nn.functional as F

    total = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.inference_mode():
        for start, stop in batch_slices(x.shape[0], batch_size):
            logits = model(x[start:stop])
            total += F.cross_entropy(logits, y[start:stop], reduction="sum")
            correct += (logits.argmax(dim=1) == y[start:stop]).sum()
    return total, correct


class TorchCudaGraphPeer:
    """PyTorch on CUDA with the whole training step (zero_grad, forward, loss, backward, SGD
    step, loss accumulation) captured once per batch shape as a CUDA graph and replayed.

    Follows the "whole network capture" recipe of the PyTorch CUDA-graphs docs: static input
    buffers, warm-up on a side stream, then capture. Two graphs: batch 128 and the short last
    batch (96 for MNIST). Details that keep training identical to eager:

    - The warm-up steps change the weights, so they are saved before and restored (in place,
      the graphs hold their addresses) after capture.
    - Gradients are zeroed in place (``set_to_none=False``) inside the graph, so they live at
      fixed addresses allocated during warm-up and both graphs accumulate into the same tensors.
    - No host sync inside the step: the loss is summed into a device scalar read once an epoch.
    """

    def __init__(self, params, lr: float = 0.5, batch_size: int = 128, n_train: int = 60000,
                 device: str = "cuda"):
        import torch

        self.torch = torch
        self.batch_size = batch_size
        self.model, self.optimizer = torch_eager_peer(params, lr, device)
        self.loss_sum = torch.zeros((), device=device)
        in_dim = params[0].shape[0]
        shapes = sorted({stop - start for start, stop in batch_slices(n_train, batch_size)})
        self.static = {
            n: (torch.zeros((n, in_dim), device=device),
                torch.zeros((n,), dtype=torch.int64, device=device))
            for n in shapes
        }
        saved = [p.detach().clone() for p in self.model.parameters()]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: cuBLAS handles, autograd buffers, allocator state
                for xb, yb in self.static.values():
                    self._step(xb, yb)
        torch.cuda.current_stream().wait_stream(side)
        self.graphs = {}
        for n, (xb, yb) in self.static.items():
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._step(xb, yb)
            self.graphs[n] = graph
        with torch.no_grad():
            for p, s in zip(self.model.parameters(), saved, strict=True):
                p.copy_(s)
        self.loss_sum.zero_()
        torch.cuda.synchronize()

    def _step(self, xb, yb):
        import torch.nn.functional as F

        self.optimizer.zero_grad(set_to_none=False)
        loss = F.cross_entropy(self.model(xb), yb)
        loss.backward()
        self.optimizer.step()
        self.loss_sum += loss.detach() * xb.shape[0]

    def train_epoch(self, x, y):
        """One pass over device tensors x, y in order; the summed loss as a 0-d device tensor."""
        self.loss_sum.zero_()
        for start, stop in batch_slices(x.shape[0], self.batch_size):
            xb, yb = self.static[stop - start]
            xb.copy_(x[start:stop])
            yb.copy_(y[start:stop])
            self.graphs[stop - start].replay()
        return self.loss_sum.clone()

    def evaluate(self, x, y):
        return torch_evaluate(self.model, x, y, self.batch_size)
