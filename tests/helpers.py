"""check_op: one op checked forward and backward against float64 NumPy (and torch, if installed).

In the spirit of tinygrad's helper_test_op: identical random inputs go to our op and to a float64
NumPy reference; forward values are compared, then gradients under a random upstream gradient
(Chainer's check_backward: an all-ones gradient would hide some bugs). The reference gradient is
the central difference of the float64 NumPy reference, so no gradient is written twice by hand.
"""

import numpy as np

from tinygrad_mlp import Tensor, data

try:
    import torch
except ImportError:  # torch is optional: the reference is float64 NumPy
    torch = None


def numerical_grad(fn, xs, i, eps=1e-6):
    """d sum(fn(*xs)) / d xs[i] by float64 central differences."""
    x = xs[i]
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for j in range(flat.size):
        orig = flat[j]
        flat[j] = orig + eps
        plus = fn(*xs)
        flat[j] = orig - eps
        minus = fn(*xs)
        flat[j] = orig
        gflat[j] = (plus - minus) / (2 * eps)
    return grad


def check_op(shapes, op, ref, torch_op=None, *, device="cpu", low=-2.0, high=2.0, inputs=None,
             atol=1e-5, rtol=1e-5, grad_atol=1e-4, grad_rtol=1e-3, seed=0):
    """Check `op` (on Tensors) against `ref` (on float64 NumPy arrays) for inputs of `shapes`.

    `torch_op` (on torch tensors) is compared too when torch is importable.
    """
    rng = np.random.default_rng(seed)
    xs = ([np.array(x, dtype=np.float64) for x in inputs] if inputs is not None
          else [rng.uniform(low, high, s) for s in shapes])
    tensors = [Tensor(x, requires_grad=True, device=device) for x in xs]
    # The reference sees the float32-rounded inputs our op sees.
    xs = [t.numpy().astype(np.float64) for t in tensors]
    out = op(*tensors)
    expected = np.asarray(ref(*xs))
    assert out.shape == expected.shape, f"forward shape {out.shape} != {expected.shape}"
    assert out.dtype == np.float32, f"forward dtype {out.dtype}"
    np.testing.assert_allclose(out.numpy(), expected, atol=atol, rtol=rtol, err_msg="forward")

    v = rng.standard_normal(expected.shape)
    out.backward(Tensor(v, device=device))
    for i, t in enumerate(tensors):
        want = numerical_grad(lambda *a: float((np.asarray(ref(*a)) * v).sum()), xs, i)
        assert t.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(t.grad.numpy(), want, atol=grad_atol, rtol=grad_rtol,
                                   err_msg=f"gradient of input {i}")

    if torch is not None and torch_op is not None:
        tt = [torch.tensor(x, requires_grad=True) for x in xs]
        tout = torch_op(*tt)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), atol=atol, rtol=rtol,
                                   err_msg="forward vs torch")
        tout.backward(torch.tensor(v))
        for i, (t, ti) in enumerate(zip(tensors, tt)):
            np.testing.assert_allclose(t.grad.numpy(), ti.grad.numpy(), atol=grad_atol,
                                       rtol=grad_rtol, err_msg=f"gradient of input {i} vs torch")


def learnable_mnist(n_train, n_test, noise, signal):
    """A small learnable stand-in for MNIST: uint8 noise in [0, noise), and the class is the
    block of 78 pixels (of 10) brightened by `signal`. Seeded, so every caller (every MPI rank)
    gets the same data."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, noise, (n, 784)).astype(np.uint8)
        for c in range(10):
            x[y == c, c * 78:(c + 1) * 78] += signal
        return x, y

    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    return data.MNIST(xtr, ytr, xte, yte, "test fixture")
