"""SGD against torch.optim.SGD: every public sequence of calls leaves ``.grad`` equal to the true
gradient and applies torch's update, on the fused (BLAS / kernel) and the array path alike.

Parameters are compared after 50 steps on a small MLP, and after the short call sequences where
an optimizer that folds work into backward could go wrong.
"""

import numpy as np
import pytest

from tinygrad_mlp import Tensor, blas, nn, optim
from tinygrad_mlp import functional as F
from tinygrad_mlp.train import make_step

torch = pytest.importorskip("torch")

SIZES = [12, 16, 8, 5]


@pytest.fixture(autouse=True)
def _blas_for_every_size(monkeypatch):
    # The BLAS paths (axpy update, update inside the weight GEMM) normally start at
    # blas.MIN_SIZE elements; the small test model takes them for every parameter.
    # test_numpy_fallback_without_blas covers the NumPy path.
    monkeypatch.setattr(blas, "MIN_SIZE", 1)
CONFIGS = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "weight_decay": {"weight_decay": 0.01},
    "momentum_wd": {"momentum": 0.8, "weight_decay": 0.05},
    "nesterov_wd": {"momentum": 0.8, "nesterov": True, "weight_decay": 0.05},
}


def _data(steps, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, SIZES[0])).astype(np.float32),
             rng.integers(0, SIZES[-1], n)) for _ in range(steps)]


def _pair(seed=0):
    """Our MLP and a torch MLP with the same float32 weights (torch stores W transposed)."""
    Tensor.manual_seed(seed)
    ours = nn.MLP(SIZES)
    layers = []
    for lin in ours.layers:
        t = torch.nn.Linear(lin.in_features, lin.out_features)
        with torch.no_grad():
            t.weight.copy_(torch.from_numpy(lin.weight.numpy().T.copy()))
            t.bias.copy_(torch.from_numpy(lin.bias.numpy().copy()))
        layers += [t, torch.nn.ReLU()]
    return ours, torch.nn.Sequential(*layers[:-1])


def _torch_params(model):
    """torch parameters in our order and layout: W1 (in, out), b1, ..."""
    return [p.detach().numpy().T if p.ndim == 2 else p.detach().numpy()
            for p in model.parameters()]


def _torch_grads(model):
    return [p.grad.numpy().T if p.ndim == 2 else p.grad.numpy() for p in model.parameters()]


def _loss(model, x, y):
    return F.cross_entropy(model(Tensor(x)), y)


def _torch_loss(model, x, y):
    return torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))


def _assert_close(ours, theirs, what, rtol=1e-4, atol=1e-6):
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{what} {i}")


def _explicit_step(model, opt):
    def step(x, y):
        opt.zero_grad()
        loss = _loss(model, x, y)
        opt.backward(loss)
        opt.step()
        return loss.data, None
    return step


@pytest.mark.parametrize("how", ["backward+step", "backward_step"])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("config", CONFIGS)
def test_50_steps_match_torch(config, fused, how):
    kw = CONFIGS[config]
    ours, theirs = _pair()
    opt = optim.SGD(ours.parameters(), lr=0.1, fused=fused, **kw)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, **kw)
    # backward_step is the trainer's step (on the CPU, the GEMM-fused update where it applies)
    step = make_step(ours, opt, jit=False) if how == "backward_step" else _explicit_step(ours, opt)
    for x, y in _data(50):
        loss, _ = step(x, y)
        topt.zero_grad()
        tloss = _torch_loss(theirs, x, y)
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(float(loss), tloss.item(), rtol=1e-4)
    if how == "backward+step":  # .grad is the last true gradient, untouched by step()
        _assert_close([p.grad.numpy() for p in ours.parameters()], _torch_grads(theirs), "grad")
    else:
        assert all(p.grad is None for p in ours.parameters())
    _assert_close([p.numpy() for p in ours.parameters()], _torch_params(theirs), "param")
    if kw.get("momentum"):
        bufs = [topt.state[p]["momentum_buffer"].numpy() for p in theirs.parameters()]
        _assert_close(opt.momentum_buffers, [b.T if b.ndim == 2 else b for b in bufs], "buf")


def test_bit_identical_to_torch_on_plain_sgd_step():
    # torch's p.add_(grad, alpha=-lr) and our axpy (arrays of at least blas.MIN_SIZE) both
    # round p - lr * g once; equal gradients then give equal parameters.
    if not blas.available:
        pytest.skip("NumPy's OpenBLAS not found: the NumPy update rounds lr * g first")
    rng = np.random.default_rng(1)
    w, g = (rng.standard_normal((blas.MIN_SIZE // 16 + 3, 16)).astype(np.float32)
            for _ in range(2))
    tp = torch.tensor(w, requires_grad=True)
    tp.grad = torch.tensor(g)
    torch.optim.SGD([tp], lr=0.37).step()
    p = Tensor(w.copy(), requires_grad=True)
    p.grad = Tensor(g.copy())
    optim.SGD([p], lr=0.37).step()
    np.testing.assert_array_equal(p.numpy(), tp.detach().numpy())


@pytest.mark.parametrize("config", ["plain", "momentum"])
def test_optimizer_backward_leaves_the_true_gradient(config):
    ours, theirs = _pair()
    opt = optim.SGD(ours.parameters(), lr=0.5, **CONFIGS[config])
    (x, y), = _data(1)
    opt.backward(_loss(ours, x, y))
    _torch_loss(theirs, x, y).backward()
    _assert_close([p.grad.numpy() for p in ours.parameters()], _torch_grads(theirs), "grad")


def test_zero_grad_between_optimizer_backward_and_step():
    # opt.backward(l); opt.zero_grad(); l.backward(); opt.step(): the update must use lr.
    ours, theirs = _pair()
    opt = optim.SGD(ours.parameters(), lr=0.5)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.5)
    (x, y), = _data(1)
    opt.backward(_loss(ours, x, y))
    opt.zero_grad()
    _loss(ours, x, y).backward()
    opt.step()
    _torch_loss(theirs, x, y).backward()
    topt.step()
    _assert_close([p.numpy() for p in ours.parameters()], _torch_params(theirs), "param")


def test_accumulation_and_lr_change_between_backward_and_step():
    # Two backward passes accumulate; an lr set after backward applies to the next step.
    ours, theirs = _pair()
    opt = optim.SGD(ours.parameters(), lr=0.5)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.5)
    (x1, y1), (x2, y2) = _data(2)
    opt.backward(_loss(ours, x1, y1))
    opt.backward(_loss(ours, x2, y2))
    opt.lr = 0.2
    opt.step()
    _torch_loss(theirs, x1, y1).backward()
    _torch_loss(theirs, x2, y2).backward()
    topt.param_groups[0]["lr"] = 0.2
    topt.step()
    _assert_close([p.grad.numpy() for p in ours.parameters()], _torch_grads(theirs), "grad")
    _assert_close([p.numpy() for p in ours.parameters()], _torch_params(theirs), "param")


@pytest.mark.parametrize("config", ["plain", "momentum", "nesterov_wd"])
def test_non_contiguous_parameter(config):
    # Tensor(w_torch.T) copies into C order (as torch.tensor), but Tensor.from_numpy of a
    # transposed array shares it Fortran-ordered: the default (fused) SGD updates it in place,
    # as torch does.
    kw = CONFIGS[config]
    tw = torch.nn.Linear(6, 4).weight
    w = Tensor.from_numpy(tw.detach().numpy().copy().T, requires_grad=True)
    assert not w.data.flags.c_contiguous
    opt = optim.SGD([w], lr=0.3, **kw)
    topt = torch.optim.SGD([tw], lr=0.3, **kw)
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    for _ in range(3):
        opt.zero_grad()
        topt.zero_grad()
        opt.backward((Tensor(x) @ w).tanh().sum())
        (torch.from_numpy(x) @ tw.T).tanh().sum().backward()
        opt.step()
        topt.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy().T, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("config", CONFIGS)
def test_numpy_fallback_without_blas(config, monkeypatch):
    # Where NumPy's OpenBLAS is not found, the chunked NumPy update gives the same parameters.
    kw = CONFIGS[config]
    results = []
    for have_blas in (True, False):
        monkeypatch.setattr(blas, "available", have_blas and blas.available)
        ours, _ = _pair()
        opt = optim.SGD(ours.parameters(), lr=0.1, **kw)
        step = make_step(ours, opt, jit=False)
        for x, y in _data(5):
            step(x, y)
        results.append([p.numpy().copy() for p in ours.parameters()])
    _assert_close(results[0], results[1], "param", rtol=1e-5)


def test_backward_step_folds_the_update_into_the_weight_gemm(monkeypatch):
    if not blas.available:
        pytest.skip("NumPy's OpenBLAS not found: backward_step takes the ordinary path")
    calls = []
    gemm_into = blas.gemm_into
    monkeypatch.setattr(blas, "gemm_into", lambda *a, **k: calls.append(1) or gemm_into(*a, **k))
    ours, _ = _pair()
    opt = optim.SGD(ours.parameters(), lr=0.1)
    (x, y), = _data(1)
    opt.backward_step(_loss(ours, x, y))
    assert len(calls) == len(ours.layers)  # one GEMM-update per weight
    # the sinks are detached afterwards: a later plain backward only fills .grad
    loss = _loss(ours, x, y)
    before = [p.numpy().copy() for p in ours.parameters()]
    loss.backward()
    assert len(calls) == len(ours.layers)
    _assert_close([p.numpy() for p in ours.parameters()], before, "param", rtol=0, atol=0)


def test_backward_step_walks_the_graph_once(monkeypatch):
    # The GEMM-update pass and backward share one topological order of the graph.
    if not blas.available:
        pytest.skip("NumPy's OpenBLAS not found: backward_step takes the ordinary path")
    walks = []
    toposort = Tensor._toposort
    monkeypatch.setattr(Tensor, "_toposort", lambda self: walks.append(1) or toposort(self))
    ours, theirs = _pair()
    opt = optim.SGD(ours.parameters(), lr=0.1)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1)
    for x, y in _data(3):
        opt.backward_step(_loss(ours, x, y))
        topt.zero_grad()
        _torch_loss(theirs, x, y).backward()
        topt.step()
    assert len(walks) == 3
    _assert_close([p.numpy() for p in ours.parameters()], _torch_params(theirs), "param")


@pytest.mark.parametrize("config", ["plain", "momentum_wd", "nesterov"])
def test_backward_step_with_shared_weight_and_accumulated_grads(config):
    # A weight used twice (here also in an L2 penalty) and a gradient accumulated before the
    # call both need the ordinary path: the result must still be torch's.
    kw = CONFIGS[config]
    ours, theirs = _pair()
    opt = optim.SGD(ours.parameters(), lr=0.1, **kw)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.1, **kw)
    w, tw = ours.layers[1].weight, theirs[2].weight
    for i, ((x1, y1), (x2, y2)) in enumerate(zip(_data(3, seed=1), _data(3, seed=2))):
        if i == 1:  # accumulate one gradient first
            opt.backward(_loss(ours, x1, y1))
            _torch_loss(theirs, x1, y1).backward()
        opt.backward_step(_loss(ours, x2, y2) + (w * w).sum() * 0.01)
        (_torch_loss(theirs, x2, y2) + (tw * tw).sum() * 0.01).backward()
        topt.step()
        topt.zero_grad()
    _assert_close([p.numpy() for p in ours.parameters()], _torch_params(theirs), "param")
