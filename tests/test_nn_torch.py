"""torch.nn's everyday pieces beside ours: activation and flatten modules, loss modules,
train()/eval(), children()/modules(); values and gradients against torch."""

import numpy as np
import pytest

from tinygrad_mlp import Tensor, nn
from tinygrad_mlp import functional as F

torch = pytest.importorskip("torch")


def _close(ours, theirs, what):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6,
                               err_msg=what)


def _linear_pair(n_in, n_out, rng):
    ours = nn.Linear(n_in, n_out)
    theirs = torch.nn.Linear(n_in, n_out)
    w = rng.standard_normal((n_in, n_out)).astype(np.float32) / 3
    b = rng.standard_normal(n_out).astype(np.float32)
    ours.weight.data[...], ours.bias.data[...] = w, b
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(w.T.copy()))
        theirs.bias.copy_(torch.from_numpy(b))
    return ours, theirs


def test_sequential_of_flatten_tanh_sigmoid_identity_as_torch(device):
    rng = np.random.default_rng(0)
    (l1, t1), (l2, t2) = _linear_pair(12, 8, rng), _linear_pair(8, 3, rng)
    ours = nn.Sequential(nn.Flatten(), l1, nn.Tanh(), nn.Identity(), l2, nn.Sigmoid()).to(device)
    theirs = torch.nn.Sequential(torch.nn.Flatten(), t1, torch.nn.Tanh(), torch.nn.Identity(),
                                 t2, torch.nn.Sigmoid())
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    out, tout = ours(Tensor(x, device=device)), theirs(torch.from_numpy(x))
    _close(out, tout, "forward")
    up = rng.standard_normal((5, 3)).astype(np.float32)
    out.backward(up)
    tout.backward(torch.from_numpy(up))
    _close(l1.weight.grad, t1.weight.grad.T, "first weight grad")
    _close(l2.bias.grad, t2.bias.grad, "last bias grad")
    assert repr(ours).count("\n") == 7 and "Flatten(start_dim=1, end_dim=-1)" in repr(ours)


@pytest.mark.parametrize("kwargs", [{}, {"reduction": "sum"}, {"label_smoothing": 0.1},
                                    {"weight": np.array([1.0, 2.0, 0.5], np.float32),
                                     "ignore_index": 0}], ids=str)
def test_cross_entropy_loss_module_as_torch(kwargs, device):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 2, 1, 0])
    t, tt = Tensor(x, requires_grad=True, device=device), torch.tensor(x, requires_grad=True)
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    loss = nn.CrossEntropyLoss(**kwargs)(t, y)
    tloss = torch.nn.CrossEntropyLoss(**tkw)(tt, torch.from_numpy(y))
    _close(loss, tloss, "loss")
    loss.backward()
    tloss.backward()
    _close(t.grad, tt.grad, "grad")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_as_torch(reduction, device):
    rng = np.random.default_rng(2)
    p, target = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((4, 3))
    t, tt = Tensor(p, requires_grad=True, device=device), torch.tensor(p, requires_grad=True)
    loss = nn.MSELoss(reduction=reduction)(t, target.astype(np.float32))
    tloss = torch.nn.MSELoss(reduction=reduction)(tt, torch.from_numpy(target.astype(np.float32)))
    _close(loss, tloss, "loss")
    up = np.ones(tloss.shape, np.float32)
    loss.backward(up)
    tloss.backward(torch.from_numpy(up))
    _close(t.grad, tt.grad, "grad")


def test_mse_loss_errors_are_named():
    p = Tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"target shape \(3,\) differs from prediction shape"):
        F.mse_loss(p, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
        F.mse_loss(p, np.zeros((2, 3), np.float32), reduction="avg")


def test_train_eval_children_modules_as_torch():
    model = nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 2)))
    assert model.training and all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    kinds = [type(m).__name__ for m in model.modules()]
    torch_model = torch.nn.Sequential(torch.nn.Linear(4, 3),
                                      torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(3, 2)))
    assert kinds == [type(m).__name__ for m in torch_model.modules()]
    assert [type(m).__name__ for m in model.children()] == ["Linear", "Sequential"]
    assert len(model.parameters()) == 4  # the flag is not a parameter
