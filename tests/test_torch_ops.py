"""The ops a torch user reaches for (abs, sqrt, clamp, view, squeeze, unsqueeze, expand, cat,
stack, tolist, size, numel, requires_grad_), held against torch: forward values, dtype and shape,
and the gradient of every input under a random upstream gradient; then gradcheck and errors."""

import numpy as np
import pytest

import tinygrad_mlp
from tinygrad_mlp import Tensor, gradcheck, no_grad

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
X23 = RNG.uniform(-2, 2, (2, 3)).astype(np.float32)
X31 = RNG.uniform(-2, 2, (3, 1)).astype(np.float32)


def check(ours_fn, torch_fn, *arrays, device="cpu", grads=None):
    """Apply `ours_fn` to Tensors and `torch_fn` to torch tensors made of the same `arrays`
    (float ones require grad unless `grads` says otherwise); compare shape, dtype and values,
    then each input's gradient (None where torch has none) under one random upstream gradient."""
    grads = [a.dtype.kind == "f" for a in arrays] if grads is None else grads
    ours = [Tensor(a, requires_grad=g, device=device, dtype=a.dtype) for a, g in zip(arrays, grads)]
    theirs = [torch.tensor(a, requires_grad=g) for a, g in zip(arrays, grads)]
    out, tout = ours_fn(*ours), torch_fn(*theirs)
    assert out.device == Tensor(0, device=device).device
    assert out.shape == tuple(tout.shape), (out.shape, tout.shape)
    assert out.dtype.name == str(tout.dtype).removeprefix("torch."), (out.dtype, tout.dtype)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-6, err_msg="forward")
    assert out.requires_grad == tout.requires_grad
    if not tout.requires_grad:
        return
    v = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
    out.backward(v)
    tout.backward(torch.tensor(v))
    for i, (t, tt) in enumerate(zip(ours, theirs)):
        if tt.grad is None:
            assert t.grad is None, f"input {i} got a gradient; torch gives none"
            continue
        assert t.grad is not None, f"input {i} got no gradient"
        assert t.grad.shape == t.shape and t.grad.dtype == t.dtype
        np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-6, atol=1e-7,
                                   err_msg=f"gradient of input {i}")


# ---- abs, sqrt, clamp ---------------------------------------------------------------------
EDGES = np.array([-2.0, -0.5, -0.0, 0.0, 0.5, 3.0], np.float32)


@pytest.mark.parametrize("x", [EDGES, X23], ids=["edges", "random"])
def test_abs(x, device):
    check(lambda t: t.abs(), torch.abs, x, device=device)  # gradient 0 at x == 0
    check(abs, abs, x, device=device)


def test_abs_of_integers_and_bools(device):
    check(lambda t: t.abs(), torch.abs, np.array([-3, 0, 2], np.int32), device=device)
    with pytest.raises(TypeError, match="abs.*bool"):
        Tensor([True, False], device=device).abs()


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")
@pytest.mark.parametrize("x", [np.array([0.0, 0.25, 1.0, 2.0, 9.0, -1.0], np.float32),
                               np.abs(X23), np.array(4.0, np.float32)],
                         ids=["edges", "random", "0-d"])
def test_sqrt(x, device):
    check(lambda t: t.sqrt(), torch.sqrt, x, device=device)  # inf gradient at 0, nan below


def test_sqrt_gradient_at_zero_is_inf_not_from_pow(device):
    t = Tensor([0.0, 4.0], requires_grad=True, device=device)
    y = t.sqrt()
    assert type(y._ctx).__name__ == "Sqrt"
    y.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [np.inf, 0.25])
    check(lambda t: t.sqrt(), torch.sqrt, np.array([1, 4, 0], np.int64), device=device)  # float32


CLAMP_X = np.array([-2.0, -0.5, 0.0, 0.25, 1.0, 1.5, np.nan], np.float32)


@pytest.mark.parametrize("bounds", [dict(min=-0.5, max=1.0), dict(min=-0.5), dict(max=1.0),
                                    dict(min=0.25, max=0.25), dict(min=1.0, max=-0.5),
                                    dict(min=-1, max=1)],
                         ids=["both", "min", "max", "equal", "min>max", "int-bounds"])
def test_clamp_at_and_between_the_bounds(bounds, device):
    # x at each bound passes the gradient (torch's mask is inclusive); NaN stays NaN, gets 0.
    check(lambda t: t.clamp(**bounds), lambda t: t.clamp(**bounds), CLAMP_X, device=device)
    check(lambda t: t.clip(**bounds), lambda t: t.clip(**bounds), X23, device=device)


@pytest.mark.parametrize("x, bounds", [
    (np.array([-3, 0, 5], np.int32), dict(min=-1, max=2)),         # stays int32
    (np.array([-3, 0, 5], np.int32), dict(min=1.5)),               # float bound: float32
    (np.array([-3, 0, 5], np.int64), dict(min=0, max=2.5)),
    (np.array([True, False]), dict(min=0)),                        # bool and int: int64
    (np.array([[1.0, 3.0]], np.float64), dict(max=2)),             # float64 stays float64
])
def test_clamp_dtypes(x, bounds, device):
    check(lambda t: t.clamp(**bounds), lambda t: t.clamp(**bounds), x, device=device)


def test_clamp_needs_a_scalar_bound():
    t = Tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="at least one of min and max"):
        t.clamp()
    with pytest.raises(TypeError, match="scalars, not tensors"):
        t.clamp(min=Tensor([0.0, 0.0]))


# ---- view, squeeze, unsqueeze, expand ------------------------------------------------------
X2131 = RNG.uniform(-1, 1, (2, 1, 3, 1)).astype(np.float32)


@pytest.mark.parametrize("shape", [(3, 2), ((6, 1),), (-1,), (1, -1, 3)])
def test_view(shape, device):
    check(lambda t: t.view(*shape), lambda t: t.view(*shape), X23, device=device)


@pytest.mark.parametrize("dim", [None, 1, -1, 3, 0, 2, (1, 3), (0, 1), (-1, -3), ()],
                         ids=lambda d: f"dim={d}")
def test_squeeze(dim, device):
    # dims 0 and 2 have sizes 2 and 3: left alone, as torch.
    args = () if dim is None else (dim,)
    check(lambda t: t.squeeze(*args), lambda t: t.squeeze(*args), X2131, device=device)


@pytest.mark.parametrize("op, args", [("squeeze", ()), ("squeeze", (0,)), ("squeeze", (-1,)),
                                      ("unsqueeze", (0,)), ("unsqueeze", (-1,))])
def test_squeeze_and_unsqueeze_of_a_0d_tensor(op, args, device):
    check(lambda t: getattr(t, op)(*args), lambda t: getattr(t, op)(*args),
          np.array(2.0, np.float32), device=device)


@pytest.mark.parametrize("dim", [-3, -2, -1, 0, 1, 2])
def test_unsqueeze(dim, device):
    check(lambda t: t.unsqueeze(dim), lambda t: t.unsqueeze(dim), X23, device=device)


@pytest.mark.parametrize("sizes", [(3, 4), (-1, 4), (3, 1), (2, 3, 4), (2, -1, 4), ((5, 2, 3, 1),),
                                   (0, 3, 4), (3, 0)])
def test_expand(sizes, device):
    # Gradient sums over the new leading axes and the stretched axis of length 1.
    check(lambda t: t.expand(*sizes), lambda t: t.expand(*sizes), X31, device=device)


def test_expand_of_a_0d_tensor_and_of_integers(device):
    check(lambda t: t.expand(2, 3), lambda t: t.expand(2, 3), np.array(1.5, np.float32),
          device=device)
    check(lambda t: t.expand(2, -1), lambda t: t.expand(2, -1), np.array([1, 2], np.int64),
          device=device)


def test_movement_errors():
    t = Tensor(X31)
    for sizes in [(4, 4), (-1, 3, 1), (3,), (3, -2)]:  # wrong size, leading -1, too few, < -1
        with pytest.raises(ValueError, match=r"expand: cannot expand shape \(3, 1\)"):
            t.expand(*sizes)
    with pytest.raises(ValueError, match=r"dim 3 is out of range for a new axis in shape \(3, 1\)"):
        t.unsqueeze(3)
    with pytest.raises(ValueError, match="out of range"):
        t.unsqueeze(-4)
    with pytest.raises(ValueError, match=r"axis 2 is out of range for shape \(3, 1\)"):
        t.squeeze(2)
    with pytest.raises(ValueError, match=r"cannot reshape \(3, 1\) into \(2, -1\)"):
        t.view(2, -1)


# ---- cat, stack ---------------------------------------------------------------------------
A, B, C = (RNG.uniform(-1, 1, s).astype(np.float32) for s in [(2, 3), (1, 3), (4, 3)])


@pytest.mark.parametrize("dim", [0, -2])
def test_cat_along_rows(dim, device):
    check(lambda *ts: tinygrad_mlp.cat(ts, dim), lambda *ts: torch.cat(ts, dim), A, B, C,
          device=device)


@pytest.mark.parametrize("dim", [1, -1])
def test_cat_along_columns_with_one_input_not_requiring_grad(dim, device):
    arrays = A.T.copy(), B.T.copy(), C.T.copy()
    check(lambda *ts: Tensor.cat(list(ts), dim=dim), lambda *ts: torch.cat(ts, dim=dim), *arrays,
          grads=[True, False, True], device=device)
    check(lambda *ts: Tensor.cat(ts, dim), lambda *ts: torch.cat(ts, dim), X2131, X2131,
          device=device)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2, -3])
def test_stack(dim, device):
    check(lambda *ts: tinygrad_mlp.stack(ts, dim), lambda *ts: torch.stack(ts, dim), A, X23,
          A * 2, grads=[True, False, True], device=device)


def test_stack_of_0d_tensors_and_one_tensor(device):
    s = [np.array(v, np.float32) for v in (1.0, -2.0, 3.0)]
    check(lambda *ts: Tensor.stack(ts), lambda *ts: torch.stack(ts), *s, device=device)
    check(lambda t: Tensor.stack([t], -1), lambda t: torch.stack([t], -1), X23, device=device)
    check(lambda t: Tensor.cat([t]), lambda t: torch.cat([t]), X23, device=device)


@pytest.mark.parametrize("join", ["cat", "stack"])
@pytest.mark.parametrize("dtypes", [(np.int32, np.float32), (np.int32, np.uint8),
                                    (np.float32, np.float64), (np.bool_, np.int64),
                                    (np.bool_, np.bool_)])
def test_cat_and_stack_promote_mixed_dtypes_as_torch(join, dtypes, device):
    a, b = (np.array([[1, 0, 2]]).astype(d) for d in dtypes)
    ours, theirs = getattr(tinygrad_mlp, join), getattr(torch, join)
    check(lambda *ts: ours(ts), lambda *ts: theirs(ts), a, b, device=device)


def test_cat_gradients_of_its_inputs_do_not_overlap(device):
    # Each input's gradient is its own slice of the upstream gradient: scaling one in place
    # (gradient clipping) leaves the others alone.
    a, b = (Tensor(x, requires_grad=True, device=device) for x in (A, X23))
    (tinygrad_mlp.cat([a, b, a], 1) * 3).sum().backward()
    with no_grad():
        b.grad *= 2
    np.testing.assert_array_equal(a.grad.numpy(), np.full((2, 3), 6.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full((2, 3), 6.0))


def test_cat_and_stack_errors():
    a, b = Tensor(A), Tensor(C)
    for join in (tinygrad_mlp.cat, tinygrad_mlp.stack):
        with pytest.raises(ValueError, match="non-empty list"):
            join([])
        with pytest.raises(TypeError, match="list or tuple of Tensors"):
            join(a)
        with pytest.raises(TypeError, match="list or tuple of Tensors"):
            join([a, A])
        with pytest.raises(TypeError, match="list or tuple of Tensors"):
            join(t for t in (a, a))
    with pytest.raises(ValueError, match=r"cat: shapes \(2, 3\) \(tensor 0\) and \(4, 3\) "
                                         r"\(tensor 1\) differ outside dim 1"):
        tinygrad_mlp.cat([a, b], 1)
    with pytest.raises(ValueError, match=r"cat: shapes \(2, 3\) .* and \(3,\) \(tensor 2\)"):
        tinygrad_mlp.cat([a, a, Tensor([1.0, 2.0, 3.0])])
    with pytest.raises(ValueError, match="0-d tensors cannot be concatenated"):
        tinygrad_mlp.cat([Tensor(1.0), Tensor(2.0)])
    with pytest.raises(ValueError, match=r"axis 2 is out of range for shape \(2, 3\)"):
        tinygrad_mlp.cat([a, a], 2)
    with pytest.raises(ValueError, match=r"stack: shapes \(2, 3\) \(tensor 0\) and \(4, 3\) "
                                         r"\(tensor 1\) differ; stack needs equal shapes"):
        tinygrad_mlp.stack([a, b])
    with pytest.raises(ValueError, match=r"dim 3 is out of range for a new axis"):
        tinygrad_mlp.stack([a, a], 3)


@pytest.mark.gpu
def test_cat_and_stack_of_mixed_devices_raise():
    a, b = Tensor(A), Tensor(A, device="gpu")
    for join in (tinygrad_mlp.cat, tinygrad_mlp.stack):
        with pytest.raises(RuntimeError, match="different devices: cpu and cuda:0"):
            join([a, b])


# ---- tolist, size, numel, requires_grad_ --------------------------------------------------
@pytest.mark.parametrize("x", [X23, np.array([[1, -2], [3, 4]], np.int64), np.array(2.5),
                               np.array([True, False]), np.zeros((2, 0), np.float32)])
def test_tolist_size_numel(x, device):
    t, tt = Tensor(x, device=device, dtype=x.dtype), torch.tensor(x)
    assert t.tolist() == tt.tolist()
    assert type(t.tolist()) is type(tt.tolist())
    assert t.size() == tuple(tt.size()) and isinstance(t.size(), tuple)
    assert t.numel() == tt.numel() and type(t.numel()) is int
    for dim in range(-t.ndim, t.ndim):
        assert t.size(dim) == tt.size(dim)
    with pytest.raises(ValueError, match=f"size: dim {t.ndim} is out of range"):
        t.size(t.ndim)


def test_requires_grad_(device):
    t = Tensor(X23, device=device)
    assert t.requires_grad_() is t and t.requires_grad
    (t * t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * X23, rtol=1e-6)
    assert t.requires_grad_(False) is t and not t.requires_grad
    y = Tensor(X23, requires_grad=True, device=device) * 2
    assert y.requires_grad_() is y  # a non-leaf may say True again, as torch
    with pytest.raises(RuntimeError, match="non-leaf"):
        y.requires_grad_(False)
    with pytest.raises(TypeError, match="requires grad must be floating-point, not int64"):
        Tensor([1, 2], device=device).requires_grad_()
    assert Tensor([1, 2]).requires_grad_(False).requires_grad is False


# ---- gradcheck (float64 central differences) ----------------------------------------------
def _f64(shape, low=-1.0, high=1.0, away=0.0, device="cpu"):
    """float64 inputs in [low, high], at least `away` from 0 and from ±0.5 (clamp's bounds)."""
    x = np.random.default_rng(2).uniform(low, high, shape)
    for edge in (0.0, 0.5, -0.5):
        x = np.where(np.abs(x - edge) < away, edge + np.copysign(away, x - edge), x)
    return Tensor(x, requires_grad=True, device=device, dtype=np.float64)


@pytest.mark.parametrize("name, fn, inputs", [
    ("abs", lambda t: t.abs(), [dict(shape=(3, 4), away=0.1)]),
    ("sqrt", lambda t: t.sqrt(), [dict(shape=(3, 4), low=0.2, high=2.0)]),
    ("clamp", lambda t: t.clamp(-0.5, 0.5), [dict(shape=(3, 4), away=0.1)]),
    ("clamp_min", lambda t: t.clamp(min=0.5), [dict(shape=(3, 4), away=0.1)]),
    ("expand", lambda t: t.expand(2, 3, 4), [dict(shape=(3, 1))]),
    ("cat", lambda a, b: tinygrad_mlp.cat([a, b, a], -1), [dict(shape=(2, 3)), dict(shape=(2, 1))]),
    ("stack", lambda a, b: tinygrad_mlp.stack([b, a], 1), [dict(shape=(2, 3)), dict(shape=(2, 3))]),
])
def test_gradcheck(name, fn, inputs, device):
    assert gradcheck(fn, *(_f64(device=device, **kw) for kw in inputs))
