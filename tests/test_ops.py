"""Every primitive and composite op: forward and backward vs float64 NumPy, plus gradcheck."""

import numpy as np
import pytest
from helpers import check_op

from tinygrad_mlp import Tensor, gradcheck


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


POS = dict(low=0.5, high=2.0)  # inputs where log, division and powers are smooth
# name: (shapes, our op, float64 NumPy reference, torch op or None, options)
OPS = {
    "add": ([(3, 4), (3, 4)], lambda a, b: a + b, np.add, lambda a, b: a + b, {}),
    "add_bcast_row": ([(3, 4), (4,)], lambda a, b: a + b, np.add, lambda a, b: a + b, {}),
    "add_bcast_col": ([(3, 1), (1, 4)], lambda a, b: a + b, np.add, lambda a, b: a + b, {}),
    "add_bcast_3d": ([(2, 3, 4), (3, 1)], lambda a, b: a + b, np.add, lambda a, b: a + b, {}),
    "sub": ([(3, 4), (4,)], lambda a, b: a - b, np.subtract, lambda a, b: a - b, {}),
    "mul": ([(3, 4), (3, 4)], lambda a, b: a * b, np.multiply, lambda a, b: a * b, {}),
    "mul_bcast": ([(2, 3, 4), (1, 4)], lambda a, b: a * b, np.multiply, lambda a, b: a * b, {}),
    "div": ([(3, 4), (3, 4)], lambda a, b: a / b, np.divide, lambda a, b: a / b, POS),
    "div_bcast": ([(3, 4), (3, 1)], lambda a, b: a / b, np.divide, lambda a, b: a / b, POS),
    "neg": ([(3, 4)], lambda a: -a, np.negative, lambda a: -a, {}),
    "scalar_add": ([(3,)], lambda a: a + 2, lambda a: a + 2, lambda a: a + 2, {}),
    "scalar_radd": ([(3,)], lambda a: 2 + a, lambda a: 2 + a, lambda a: 2 + a, {}),
    "scalar_rsub": ([(3,)], lambda a: 2 - a, lambda a: 2 - a, lambda a: 2 - a, {}),
    "scalar_rmul": ([(3,)], lambda a: 3 * a, lambda a: 3 * a, lambda a: 3 * a, {}),
    "scalar_rdiv": ([(3,)], lambda a: 2 / a, lambda a: 2 / a, lambda a: 2 / a, POS),
    "pow_2": ([(3, 4)], lambda a: a ** 2, lambda a: a ** 2, lambda a: a ** 2, {}),
    "pow_half": ([(3, 4)], lambda a: a ** 0.5, np.sqrt, lambda a: a ** 0.5, POS),
    "pow_neg": ([(3, 4)], lambda a: a ** -1.5, lambda a: a ** -1.5, lambda a: a ** -1.5, POS),
    "exp": ([(3, 4)], lambda a: a.exp(), np.exp, lambda a: a.exp(), {}),
    "log": ([(3, 4)], lambda a: a.log(), np.log, lambda a: a.log(), POS),
    "relu": ([(3, 4)], lambda a: a.relu(), lambda a: np.maximum(a, 0), lambda a: a.relu(), {}),
    "sigmoid": ([(3, 4)], lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)),
                lambda a: a.sigmoid(), dict(low=-8.0, high=8.0)),
    "tanh": ([(3, 4)], lambda a: a.tanh(), np.tanh, lambda a: a.tanh(), {}),
    "matmul": ([(3, 4), (4, 5)], lambda a, b: a @ b, np.matmul, lambda a, b: a @ b, {}),
    "matmul_vec_right": ([(3, 4), (4,)], lambda a, b: a @ b, np.matmul, lambda a, b: a @ b, {}),
    "matmul_vec_left": ([(4,), (4, 5)], lambda a, b: a @ b, np.matmul, lambda a, b: a @ b, {}),
    "matmul_dot": ([(4,), (4,)], lambda a, b: a @ b, np.matmul, lambda a, b: a @ b, {}),
    "matmul_batched": ([(2, 3, 4), (4, 5)], lambda a, b: a @ b, np.matmul,
                       lambda a, b: a @ b, {}),
    "sum_all": ([(3, 4)], lambda a: a.sum(), np.sum, lambda a: a.sum(), {}),
    "sum_axis0": ([(3, 4)], lambda a: a.sum(axis=0), lambda a: a.sum(axis=0),
                  lambda a: a.sum(dim=0), {}),
    "sum_axis1_keep": ([(3, 4)], lambda a: a.sum(axis=1, keepdims=True),
                       lambda a: a.sum(axis=1, keepdims=True),
                       lambda a: a.sum(dim=1, keepdim=True), {}),
    "sum_neg_axes": ([(2, 3, 4)], lambda a: a.sum(axis=(0, -1)), lambda a: a.sum(axis=(0, -1)),
                     lambda a: a.sum(dim=(0, -1)), {}),
    "mean_all": ([(3, 4)], lambda a: a.mean(), np.mean, lambda a: a.mean(), {}),
    "mean_axis": ([(3, 4)], lambda a: a.mean(axis=1, keepdims=True),
                  lambda a: a.mean(axis=1, keepdims=True), lambda a: a.mean(1, keepdim=True), {}),
    "max_all": ([(3, 4)], lambda a: a.max(), np.max, lambda a: a.max(), {}),
    "max_axis": ([(3, 4)], lambda a: a.max(axis=1), lambda a: a.max(axis=1),
                 lambda a: a.amax(dim=1), {}),
    "max_keep": ([(3, 4)], lambda a: a.max(axis=0, keepdims=True),
                 lambda a: a.max(axis=0, keepdims=True), lambda a: a.amax(0, keepdim=True), {}),
    "reshape": ([(3, 4)], lambda a: a.reshape(2, 6), lambda a: a.reshape(2, 6),
                lambda a: a.reshape(2, 6), {}),
    "reshape_infer": ([(3, 4)], lambda a: a.reshape(-1, 2), lambda a: a.reshape(-1, 2),
                      lambda a: a.reshape(-1, 2), {}),
    "flatten": ([(2, 3, 4)], lambda a: a.flatten(1), lambda a: a.reshape(2, -1),
                lambda a: a.flatten(1), {}),
    "transpose": ([(3, 4)], lambda a: a.T, lambda a: a.T, lambda a: a.T, {}),
    "transpose_axes": ([(2, 3, 4)], lambda a: a.transpose(2, 0, 1),
                       lambda a: a.transpose(2, 0, 1), lambda a: a.permute(2, 0, 1), {}),
    "slice": ([(5, 4)], lambda a: a[1:4, ::2], lambda a: a[1:4, ::2], lambda a: a[1:4, ::2], {}),
    "slice_int": ([(5, 4)], lambda a: a[2], lambda a: a[2], lambda a: a[2], {}),
    "slice_none": ([(5, 4)], lambda a: a[None, :, -1], lambda a: a[None, :, -1],
                   lambda a: a[None, :, -1], {}),
    "softmax": ([(4, 10)], lambda a: a.softmax(), np_softmax, lambda a: a.softmax(-1), {}),
    "softmax_axis0": ([(4, 10)], lambda a: a.softmax(axis=0), lambda a: np_softmax(a, 0),
                      lambda a: a.softmax(0), {}),
    "log_softmax": ([(4, 10)], lambda a: a.log_softmax(), np_log_softmax,
                    lambda a: a.log_softmax(-1), {}),
    "scalar_shape": ([()], lambda a: a * a + 1, lambda a: a * a + 1, lambda a: a * a + 1, {}),
    # Gradients broadcast over several axes at once, in both operands.
    "add_bcast_multi": ([(2, 1, 4, 1), (3, 1, 5)], lambda a, b: a + b, np.add,
                        lambda a, b: a + b, {}),
    "mul_bcast_multi": ([(4, 1, 3), (1, 5, 1)], lambda a, b: a * b, np.multiply,
                        lambda a, b: a * b, {}),
    "div_bcast_multi": ([(2, 3, 4), (1, 3, 1)], lambda a, b: a / b, np.divide,
                        lambda a, b: a / b, POS),
    # keepdims reductions, then broadcasting against the input.
    "center_keepdims": ([(2, 3, 4)], lambda a: a - a.mean(axis=(0, 2), keepdims=True),
                        lambda a: a - a.mean(axis=(0, 2), keepdims=True),
                        lambda a: a - a.mean(dim=(0, 2), keepdim=True), {}),
    "normalize_keepdims": ([(3, 4)], lambda a: a / a.sum(axis=1, keepdims=True),
                           lambda a: a / a.sum(axis=1, keepdims=True),
                           lambda a: a / a.sum(dim=1, keepdim=True), POS),
    "max_keepdims_bcast": ([(3, 4)], lambda a: a * a.max(axis=0, keepdims=True),
                           lambda a: a * a.max(axis=0, keepdims=True),
                           lambda a: a * a.amax(0, keepdim=True), {}),
    # A node reused: b feeds c twice and d once more.
    "reused_nodes": ([(3,)], lambda a: (lambda b: (b + b) * b)(a * a),
                     lambda a: (lambda b: (b + b) * b)(a * a),
                     lambda a: (lambda b: (b + b) * b)(a * a), {}),
    # 0-size dimensions.
    "zero_size_sum": ([(0, 3)], lambda a: a.sum(axis=0), lambda a: a.sum(axis=0),
                      lambda a: a.sum(dim=0), {}),
    "zero_size_bcast": ([(0, 3), (3,)], lambda a, b: a * b, np.multiply, lambda a, b: a * b, {}),
    "zero_size_matmul": ([(2, 0), (0, 3)], lambda a, b: a @ b, np.matmul,
                         lambda a, b: a @ b, {}),
    "zero_size_mean": ([(0, 3)], lambda a: a.mean(axis=1), lambda a: a.mean(axis=1),
                       lambda a: a.mean(dim=1), {}),
    "transpose_mixed_sign": ([(2, 3, 4)], lambda a: a.transpose(0, -1, 1),
                             lambda a: a.transpose(0, 2, 1), lambda a: a.permute(0, -1, 1), {}),
    "chain": ([(3, 4), (4, 2)], lambda a, b: ((a @ b).tanh() * 2 - 1).exp().sum(axis=1),
              lambda a, b: np.exp(np.tanh(a @ b) * 2 - 1).sum(axis=1),
              lambda a, b: ((a @ b).tanh() * 2 - 1).exp().sum(dim=1), {}),
}


@pytest.mark.parametrize("name", OPS)
def test_op(name, device):
    shapes, op, ref, torch_op, options = OPS[name]
    check_op(shapes, op, ref, torch_op, device=device, **options)


@pytest.mark.parametrize("name", OPS)
def test_gradcheck_op(name, device):
    shapes, op, _, _, options = OPS[name]
    rng = np.random.default_rng(1)
    low, high = options.get("low", -2.0), options.get("high", 2.0)
    inputs = [Tensor(rng.uniform(low, high, s), requires_grad=True, device=device,
                     dtype=np.float64) for s in shapes]
    assert gradcheck(op, *inputs)


def test_relu_gradient_at_zero_is_zero(device):
    x = Tensor([-1.0, 0.0, 1.0], requires_grad=True, device=device)
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 1.0])


def test_max_ties_share_gradient(device):
    x = Tensor([[1.0, 3.0, 3.0]], requires_grad=True, device=device)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.0, 0.5, 0.5]])


def test_softmax_is_stable_for_large_logits(device):
    x = Tensor([[1e4, 0.0, -1e4]], requires_grad=True, device=device)
    y = x.log_softmax()
    assert np.isfinite(y.numpy()).all()
    y.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.softmax().numpy(), [[1.0, 0.0, 0.0]], atol=1e-6)
