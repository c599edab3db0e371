"""nn modules and optimizers: parameter discovery, state dicts, init, and exact update formulas."""

import numpy as np
import pytest

from tinygrad_mlp import Tensor, nn, optim

try:
    import torch
except ImportError:
    torch = None


def test_mlp_parameters_found_in_order():
    model = nn.MLP([4, 8, 3])
    names = [n for n, _ in model.named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert [p.shape for p in model.parameters()] == [(4, 8), (8,), (8, 3), (3,)]


def test_custom_module_discovers_nested_parameters():
    class Net(nn.Module):
        def __init__(self):
            self.body = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
            self.heads = [nn.Linear(3, 1), nn.Linear(3, 1, bias=False)]
            self.scale = Tensor([1.0], requires_grad=True)
            self.constant = Tensor([2.0])  # no grad: not a parameter

    names = [n for n, _ in Net().named_parameters()]
    assert names == ["body.layers.0.weight", "body.layers.0.bias", "heads.0.weight",
                     "heads.0.bias", "heads.1.weight", "scale"]


def test_reference_init_and_default_init():
    Tensor.manual_seed(0)
    layer = nn.Linear(784, 512, init_scale=0.01)
    w = layer.weight.numpy()
    assert w.shape == (784, 512) and np.abs(w).max() <= 0.01 and np.abs(w).max() > 0.009
    assert not layer.bias.numpy().any()
    default = nn.Linear(100, 10)
    bound = 1 / np.sqrt(100)
    assert np.abs(default.weight.numpy()).max() <= bound
    assert np.abs(default.bias.numpy()).max() > 0


def test_linear_matches_numpy(device):
    layer = nn.Linear(5, 3).to(device)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    out = layer(Tensor(x, device=device)).numpy()
    np.testing.assert_allclose(out, x @ layer.weight.numpy() + layer.bias.numpy(), rtol=1e-5)


def test_state_dict_round_trip_and_errors():
    a, b = nn.MLP([4, 5, 2]), nn.MLP([4, 5, 2])
    b.load_state_dict(a.state_dict())
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    with pytest.raises(ValueError, match=r"layers.0.weight has shape \(4, 6\).*\(4, 5\)"):
        b.load_state_dict(nn.MLP([4, 6, 2]).state_dict())
    with pytest.raises(KeyError, match="missing keys.*layers.2"):
        nn.MLP([4, 5, 5, 2]).load_state_dict(a.state_dict())


def test_zero_grad_and_to(device):
    model = nn.MLP([3, 4, 2])
    x = Tensor(np.ones((2, 3)))
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model.to(device)
    assert all(p.device == Tensor([0.0], device=device).device for p in model.parameters())


def test_mlp_rejects_bad_sizes():
    with pytest.raises(ValueError, match="MLP sizes"):
        nn.MLP([784])


def _param(value):
    return Tensor(np.array(value, dtype=np.float32), requires_grad=True)


def _set_grad(p, g):
    p.grad = Tensor(np.array(g, dtype=np.float32))


@pytest.mark.parametrize("fused", [True, False])
def test_sgd_plain_momentum_nesterov_weight_decay(fused):
    lr, mu, wd = 0.1, 0.9, 0.01
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    cases = {
        "plain": (dict(), lambda p: p - lr * g1 - lr * g2),
        "momentum": (dict(momentum=mu), lambda p: p - lr * g1 - lr * (mu * g1 + g2)),
        "nesterov": (dict(momentum=mu, nesterov=True),
                     lambda p: p - lr * (g1 + mu * g1) - lr * (g2 + mu * (mu * g1 + g2))),
    }
    for name, (kw, expected) in cases.items():
        p = _param([1.0, 1.0])
        opt = optim.SGD([p], lr=lr, fused=fused, **kw)
        for g in (g1, g2):
            _set_grad(p, g)
            opt.step()
        np.testing.assert_allclose(p.numpy(), expected(np.array([1.0, 1.0])), rtol=1e-6,
                                   err_msg=name)
    p = _param([2.0])
    opt = optim.SGD([p], lr=lr, weight_decay=wd, fused=fused)
    _set_grad(p, [1.0])
    opt.step()
    np.testing.assert_allclose(p.numpy(), [2.0 - lr * (1.0 + wd * 2.0)], rtol=1e-6)


def test_adam_matches_hand_computed():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p = _param([1.0, -1.0])
    opt = optim.Adam([p], lr=lr, betas=(b1, b2), eps=eps)
    x, m, v = np.array([1.0, -1.0]), np.zeros(2), np.zeros(2)
    for t, g in enumerate([np.array([0.5, -0.2]), np.array([0.1, 0.3])], start=1):
        _set_grad(p, g)
        opt.step()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(p.numpy(), x, rtol=1e-5)


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("kind", ["sgd", "momentum", "nesterov", "adam", "adam_wd"])
def test_optimizers_match_torch(kind):
    rng = np.random.default_rng(0)
    w0, grads = rng.standard_normal(5), rng.standard_normal((4, 5))
    ours, theirs = _param(w0), torch.tensor(w0, dtype=torch.float32, requires_grad=True)
    make = {
        "sgd": (lambda ps: optim.SGD(ps, lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
        "momentum": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01)),
        "nesterov": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
                     lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)),
        "adam": (lambda ps: optim.Adam(ps, lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
        "adam_wd": (lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1),
                    lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1)),
    }[kind]
    opt, topt = make[0]([ours]), make[1]([theirs])
    for g in grads:
        _set_grad(ours, g)
        theirs.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        topt.step()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_optimizer_validation():
    p = _param([1.0])
    with pytest.raises(ValueError, match="learning rate must be a number >= 0.*-0.1"):
        optim.SGD([p], lr=-0.1)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD([p], lr=0.1, momentum=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta2"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="does not require grad"):
        optim.SGD([Tensor([1.0])], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        opt.lr = -1


def test_optimizer_state_dict_round_trip():
    p = _param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    _set_grad(p, [1.0, 1.0])
    opt.step()
    state = opt.state_dict()
    other = optim.SGD([_param([0.0, 0.0])], lr=0.5, momentum=0.9).load_state_dict(state)
    assert other.lr == pytest.approx(0.1) and other.step_count == 1
    np.testing.assert_array_equal(other.momentum_buffers[0], opt.momentum_buffers[0])


def test_mlp_learns_xor_like_problem(device):
    # End to end: the loss must fall on a small separable problem.
    from tinygrad_mlp import functional as F
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 2)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    Tensor.manual_seed(0)
    model = nn.MLP([2, 16, 2]).to(device)
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    xt = Tensor(x, device=device)
    losses = []
    for _ in range(100):
        loss = F.cross_entropy(model(xt), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
