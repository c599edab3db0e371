"""Functional ops at the Tensor level: fused path == reference path, cross-entropy semantics."""

import numpy as np
import pytest
from helpers import check_op

from tinygrad_mlp import Tensor, gradcheck, no_grad
from tinygrad_mlp import functional as F

try:
    import torch
except ImportError:  # the written-out expectations still apply
    torch = None


def np_cross_entropy(logits, labels):
    s = logits - logits.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(labels)), labels].mean()


SHAPES = [(96, 784, 512), (1, 5, 3), (128, 512, 10), (7, 3, 1)]


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("n, k, m", SHAPES)
def test_linear_relu_matches_numpy(n, k, m, fused, device):
    if n * k * m > 2_000:  # big shapes: fused vs reference path (finite differences too slow)
        _fused_equals_reference(F.linear_relu, (n, k), (k, m), device)
        return
    check_op([(n, k), (k, m), (m,)], lambda x, w, b: F.linear_relu(x, w, b, fused=fused),
             lambda x, w, b: np.maximum(x @ w + b, 0), device=device)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("n, k, m", SHAPES)
def test_linear_matches_numpy(n, k, m, fused, device):
    if n * k * m > 2_000:
        _fused_equals_reference(F.linear, (n, k), (k, m), device)
        return
    check_op([(n, k), (k, m), (m,)], lambda x, w, b: F.linear(x, w, b, fused=fused),
             lambda x, w, b: x @ w + b, device=device)


def _fused_equals_reference(fn, x_shape, w_shape, device):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape) * 0.05,
              rng.standard_normal(w_shape[1])]
    v = rng.standard_normal((x_shape[0], w_shape[1]))
    results = []
    for fused in (True, False):
        ts = [Tensor(a, requires_grad=True, device=device) for a in arrays]
        out = fn(*ts, fused=fused)
        out.backward(Tensor(v, device=device))
        results.append([out.numpy()] + [t.grad.numpy() for t in ts])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("n, c", [(96, 10), (1, 10), (128, 10), (5, 3)])
def test_cross_entropy_int_labels(n, c, fused, device):
    labels = np.random.default_rng(n).integers(0, c, n)
    check_op([(n, c)], lambda x: F.cross_entropy(x, labels, fused=fused),
             lambda x: np_cross_entropy(x, labels), device=device, low=-3, high=3)


@pytest.mark.parametrize("fused", [True, False])
def test_cross_entropy_one_hot_equals_int(fused, device):
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    onehot = np.eye(4, dtype=np.float32)[labels]
    a = Tensor(logits, requires_grad=True, device=device)
    b = Tensor(logits, requires_grad=True, device=device)
    la, ca = F.cross_entropy(a, labels, fused=fused, return_correct=True)
    lb, cb = F.cross_entropy(b, Tensor(onehot, device=device), fused=fused, return_correct=True)
    la.backward()
    lb.backward()
    np.testing.assert_allclose(la.item(), lb.item(), rtol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert int(ca) == int(cb) == int((logits.argmax(1) == labels).sum())


@pytest.mark.parametrize("fused", [True, False])
def test_cross_entropy_counts_correct_without_graph(fused, device):
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0]])
    with no_grad():
        loss, correct = F.cross_entropy(Tensor(logits, device=device), np.array([0, 1, 1]),
                                        fused=fused, return_correct=True)
    assert int(correct) == 2
    assert loss.item() == pytest.approx(np_cross_entropy(logits, [0, 1, 1]), rel=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_cross_entropy_stable_for_huge_logits(fused, device):
    x = Tensor([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0]], requires_grad=True, device=device)
    loss = F.cross_entropy(x, np.array([0, 2]), fused=fused)
    loss.backward()
    assert loss.item() == pytest.approx(1e4 / 2, rel=1e-6)
    assert np.isfinite(x.grad.numpy()).all()


INF = np.inf
# Extreme logits: (logits rows, labels, loss, dlogits) as torch 2.x gives them, nan and inf kept.
EXTREME = {
    "pm1e30_and_minus_inf": ([[1e30, -1e30, 0.0], [0.0, -INF, 1.0]], [1, 0], 1e30,
                             [[0.5, -0.5, 0.0], [-0.3655293, 0.0, 0.3655293]]),
    "label_on_minus_inf": ([[0.0, -INF, 1.0]], [1], INF, [[0.26894142, -1.0, 0.7310586]]),
    "minus_inf_row": ([[-INF, -INF, -INF]], [0], np.nan, [[np.nan] * 3]),
    "plus_inf_logit": ([[INF, 0.0, 1.0]], [0], np.nan, [[np.nan] * 3]),
    "tied_1e30": ([[1e30, 1e30, -1e30]], [0], np.log(2), [[-0.5, 0.5, 0.0]]),
}


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", EXTREME)
def test_cross_entropy_and_log_softmax_extreme_logits_match_torch(name, fused, device):
    rows, labels, loss_want, grad_want = EXTREME[name]
    logits, labels = np.array(rows, np.float32), np.array(labels)
    x = Tensor(logits, requires_grad=True, device=device)
    with np.errstate(all="ignore"):
        loss = F.cross_entropy(x, labels, fused=fused)
        loss.backward()
        np.testing.assert_allclose(loss.item(), loss_want, rtol=1e-6)
        np.testing.assert_allclose(x.grad.numpy(), grad_want, rtol=1e-5, atol=1e-7)
        y = Tensor(logits, requires_grad=True, device=device)
        logp = y.log_softmax(axis=1)
        v = np.random.default_rng(0).standard_normal(logits.shape)
        logp.backward(Tensor(v, device=device))
    if torch is None:
        return
    t = torch.tensor(logits, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(t, torch.tensor(labels))
    tl.backward()
    np.testing.assert_allclose(loss.item(), tl.item(), rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)
    t = torch.tensor(logits, requires_grad=True)
    tlogp = t.log_softmax(1)
    tlogp.backward(torch.tensor(v, dtype=torch.float32))
    np.testing.assert_allclose(logp.numpy(), tlogp.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(y.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [10, -1])
def test_cross_entropy_rejects_out_of_range_labels(bad, device):
    x = Tensor(np.zeros((3, 10)), device=device)
    with pytest.raises(ValueError, match=f"label {bad} is out of range for 10 classes"):
        F.cross_entropy(x, np.array([0, bad, 1]))


def test_cross_entropy_takes_a_list_of_labels():
    logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    loss = F.cross_entropy(Tensor(logits), [0, 1])
    assert loss.item() == pytest.approx(np_cross_entropy(logits, np.array([0, 1])), rel=1e-6)


def test_cross_entropy_shape_errors():
    x = Tensor(np.zeros((3, 10)))
    with pytest.raises(ValueError, match=r"target shape \(4,\) does not match logits \(3, 10\)"):
        F.cross_entropy(x, np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match=r"logits must be \(N, C\)"):
        F.cross_entropy(Tensor(np.zeros(10)), np.zeros(1, dtype=np.int64))
    with pytest.raises(ValueError, match=r"input \(3, 10\) does not fit weight \(4, 2\)"):
        F.linear(x, Tensor(np.zeros((4, 2))))


@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck_through_fused_ops(fused, device):
    rng = np.random.default_rng(0)
    x, w, b = (Tensor(rng.standard_normal(s), requires_grad=True, device=device,
                      dtype=np.float64) for s in [(5, 4), (4, 3), (3,)])
    w2 = Tensor(rng.standard_normal((3, 6)), requires_grad=True, device=device, dtype=np.float64)
    labels = rng.integers(0, 6, 5)
    assert gradcheck(lambda x, w, b, w2: F.cross_entropy(
        F.linear(F.linear_relu(x, w, b, fused=fused), w2, fused=fused), labels, fused=fused),
        x, w, b, w2)


def test_environment_switch_forces_reference(monkeypatch):
    monkeypatch.setenv("TINYGRAD_MLP_FUSED", "0")
    assert F.use_fused() is False and F.use_fused(True) is True
    monkeypatch.setenv("TINYGRAD_MLP_FUSED", "1")
    assert F.use_fused() is True
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    out = F.linear_relu(x, Tensor(np.ones((3, 2)), requires_grad=True), Tensor(np.zeros(2)))
    assert type(out._ctx).__name__ == "_LinearReLU"
    monkeypatch.setenv("TINYGRAD_MLP_FUSED", "0")
    out = F.linear_relu(x, Tensor(np.ones((3, 2)), requires_grad=True), Tensor(np.zeros(2)))
    assert type(out._ctx).__name__ == "ReLU"


@pytest.mark.parametrize("value, fused", [("", True), (" Yes ", True), ("false", False),
                                          ("NO", False)])
def test_environment_switch_spellings(monkeypatch, value, fused):
    monkeypatch.setenv("TINYGRAD_MLP_FUSED", value)
    assert F.use_fused() is fused


def test_environment_switch_refuses_values_it_does_not_know(monkeypatch):
    # "off" used to mean fused, silently
    monkeypatch.setenv("TINYGRAD_MLP_FUSED", "off")
    with pytest.raises(ValueError, match=r"TINYGRAD_MLP_FUSED='off': expected 0 .* or 1"):
        F.linear_relu(Tensor(np.ones((2, 3))), Tensor(np.ones((3, 2))), Tensor(np.zeros(2)))
    assert F.use_fused(False) is False  # an explicit choice needs no environment
