"""Corners where we once gave silently wrong answers: each test holds us to torch 2.x (CPU).

One test per item of the "no silent wrong answers" list, named after it. Expected values are
written out (so the tests run without torch) and, where torch is installed, compared with torch too.
"""

import numpy as np
import pytest

from tinygrad_mlp import Function, Tensor, gradcheck, no_grad, optim

try:
    import torch
except ImportError:  # the written-out expectations still apply
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


# ---- 1. backward through a freed graph; .grad only on leaves ---------------------------------
def test_item01_backward_through_freed_graph_raises(device):
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    h = a * 2
    l1, l2 = h.sum(), (h * h).sum()
    l1.backward()
    with pytest.raises(RuntimeError, match=r"Mul a second time.*retain_graph=True"):
        l2.backward()
    assert h.grad is None  # the intermediate never poses as a leaf
    np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0, 2.0])  # only l1's contribution

    x = np.array([1.0, 2.0, 3.0])
    a = Tensor(x, requires_grad=True, device=device)
    h = a * 2
    l1, l2 = h.sum(), (h * h).sum()
    l1.backward(retain_graph=True)
    l2.backward()
    np.testing.assert_array_equal(a.grad.numpy(), 2 + 8 * x)  # d(l1)/da + d(4 a^2)/da
    assert h.grad is None


def test_item01_retain_grad_like_torch(device):
    x = np.array([0.5, -1.0, 2.0])
    a = Tensor(x, requires_grad=True, device=device)
    h = a * 3
    h.retain_grad()
    h.retain_grad()  # twice is once
    y = h * h
    (y.sum() + h.sum()).backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * 3 * x + 1, rtol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), 3 * (2 * 3 * x + 1), rtol=1e-6)
    assert y.grad is None and h.grad.dtype == np.float32
    a.retain_grad()  # a leaf: nothing to do
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).retain_grad()
    if torch is not None:
        ta = torch.tensor(x, dtype=torch.float32, requires_grad=True)
        th = ta * 3
        th.retain_grad()
        ((th * th).sum() + th.sum()).backward()
        np.testing.assert_allclose(h.grad.numpy(), th.grad.numpy(), rtol=1e-6)


# ---- 2. transpose with axes of mixed sign ----------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 3, 3), (2, 3, 4)])
def test_item02_transpose_axes_of_mixed_sign(shape, device):
    x = np.random.default_rng(0).standard_normal(shape)
    v = np.random.default_rng(1).standard_normal(np.transpose(x, (0, 2, 1)).shape)
    t = Tensor(x, requires_grad=True, device=device)
    out = t.transpose(0, -1, 1)
    np.testing.assert_array_equal(out.numpy(), np.transpose(x, (0, 2, 1)).astype(np.float32))
    out.backward(v)
    np.testing.assert_allclose(t.grad.numpy(), np.transpose(v, (0, 2, 1)), rtol=1e-6)
    with pytest.raises(ValueError, match="do not fit"):
        t.transpose(0, -3, 1)  # -3 is axis 0 again
    with pytest.raises(ValueError, match="do not fit"):
        t.transpose(0, 1, 3)


# ---- 3. integer tensors with float scalars follow torch's promotion --------------------------
INTS = np.array([1, 2, 3])
# name: (op given a tensor factory, expected values, torch's dtype); the factory keeps dtypes
PROMOTION = {
    "int_times_float": (lambda t: t(INTS) * 0.5, [0.5, 1.0, 1.5], "float32"),
    "uint8_image_scaled": (lambda t: t(INTS.astype(np.uint8)) * (1 / 255),
                           INTS / 255, "float32"),
    "int_times_int": (lambda t: t(INTS) * 2, [2, 4, 6], "int64"),
    "uint8_times_int": (lambda t: t(INTS.astype(np.uint8)) * 2, [2, 4, 6], "uint8"),
    "int_div_int_scalar": (lambda t: t(INTS) / 2, [0.5, 1.0, 1.5], "float32"),
    "int_div_int": (lambda t: t(INTS) / t(INTS), [1.0, 1.0, 1.0], "float32"),
    "scalar_div_int": (lambda t: 2 / t(INTS), 2 / INTS, "float32"),
    "int_pow_half": (lambda t: t(INTS) ** 0.5, np.sqrt(INTS), "float32"),
    "int_pow_2": (lambda t: t(INTS) ** 2, [1, 4, 9], "int64"),
    "int_pow_2_float": (lambda t: t(INTS) ** 2.0, [1.0, 4.0, 9.0], "float32"),
    "int_exp": (lambda t: t(INTS).exp(), np.exp(INTS), "float32"),
    "int_log": (lambda t: t(INTS).log(), np.log(INTS), "float32"),
    "int_sigmoid": (lambda t: t(INTS).sigmoid(), 1 / (1 + np.exp(-INTS)), "float32"),
    "int_tanh": (lambda t: t(INTS).tanh(), np.tanh(INTS), "float32"),
    "int_relu": (lambda t: t(INTS).relu(), INTS, "int64"),
    "uint8_sum": (lambda t: t(INTS.astype(np.uint8)).sum(), 6, "int64"),
    "int_max": (lambda t: t(INTS.astype(np.uint8)).max(), 3, "uint8"),
    "int_neg": (lambda t: -t(INTS), -INTS, "int64"),
    "bool_plus_int": (lambda t: t(np.array([True, False])) + 1, [2, 1], "int64"),
    "bool_times_float": (lambda t: t(np.array([True, False])) * 1.5, [1.5, 0.0], "float32"),
    "float_times_int_tensor": (lambda t: t(np.ones(3, np.float32)) * t(INTS), INTS, "float32"),
    "int_times_numpy_float": (lambda t: t(INTS) * np.float64(2.5), INTS * 2.5, "float32"),
    "float32_times_0d_float64": (lambda t: t(np.ones(3, np.float32)) * t(np.float64(2.0)),
                                 [2.0, 2.0, 2.0], "float32"),
    "float32_times_float64": (lambda t: t(np.ones(3, np.float32)) * t(np.full(3, 2.0)),
                              [2.0, 2.0, 2.0], "float64"),
    "int_times_0d_float64": (lambda t: t(INTS) * t(np.float64(2.0)), 2 * INTS, "float64"),
    "uint8_plus_int8": (lambda t: t(INTS.astype(np.uint8)) + t(INTS.astype(np.int8)),
                        2 * INTS, "int16"),
    "float16_times_float": (lambda t: t(np.ones(3, np.float16)) * 0.5, [0.5] * 3, "float16"),
}


def _ours(x):
    # dtype kept exactly (Tensor() would make float64 data float32, as its docstring says)
    return Tensor(x, dtype=np.asarray(x).dtype)


@pytest.mark.parametrize("name", PROMOTION)
def test_item03_integer_tensors_follow_torch_promotion(name):
    fn, values, dtype = PROMOTION[name]
    out = fn(_ours)
    assert out.dtype == np.dtype(dtype), f"{name}: dtype {out.dtype}, torch gives {dtype}"
    np.testing.assert_allclose(out.numpy(), values, rtol=1e-3 if dtype == "float16" else 1e-6)
    if torch is not None:
        theirs = fn(lambda x: torch.from_numpy(np.array(x)))
        assert str(theirs.dtype) == f"torch.{dtype}"
        np.testing.assert_allclose(out.numpy(), theirs.numpy(), rtol=1e-6)


def _float_ones(like):
    return Tensor(np.ones(3, np.float32)) if isinstance(like, Tensor) else torch.ones(3)


@pytest.mark.parametrize("op, match", [
    (lambda t: t.mean(), "mean"),
    (lambda t: t.softmax(-1), "softmax"),
    (lambda t: t.log_softmax(-1), "log_softmax"),
    (lambda t: t ** -1, "negative powers"),
    (lambda t: _float_ones(t) @ t, "dtypes float32 and int64"),
])
def test_item03_float_only_ops_on_integers_raise_as_torch(op, match):
    with pytest.raises(TypeError if match != "negative powers" else ValueError, match=match):
        op(Tensor(INTS))
    if torch is not None:
        with pytest.raises((RuntimeError, NotImplementedError)):
            op(torch.tensor(INTS))


def test_item03_gradients_through_promotion_float64_gradcheck():
    # A float64 input mixed with int tensors, Python floats, integer division and float-only ops
    # on integers (item 3), and a float32 tensor (item 6: the input's gradient stays float64).
    x0 = np.linspace(0.5, 2.0, 6).reshape(2, 3)
    x = Tensor(x0, requires_grad=True, dtype=np.float64)
    w = np.array([1.5, -1.0, 0.5], np.float32)

    def fn(t):
        ints = Tensor(INTS)
        out = t * (ints * 0.5) + (ints / 2) * t ** 2 - t * ints.sigmoid() + ints ** 0.5
        return out * Tensor(w)

    s = 1 / (1 + np.exp(-INTS))
    want = (x0 * INTS * 0.5 + INTS / 2 * x0 ** 2 - x0 * s + np.sqrt(INTS)) * w
    np.testing.assert_allclose(fn(x).numpy(), want, rtol=1e-6)
    assert fn(x).dtype == np.float64
    assert gradcheck(fn, x)
    fn(x).sum().backward()
    assert x.grad.dtype == np.float64


# ---- 4. Tensor(array) copies like torch.tensor; from_numpy shares like torch.from_numpy -------
def test_item04_tensor_copies_and_from_numpy_shares():
    for dtype in (np.float32, np.float64, np.int64):
        array = np.arange(3, dtype=dtype)
        t = Tensor(array)
        array[0] = 7
        assert t.numpy()[0] == 0, f"Tensor({np.dtype(dtype)} array) shares memory"
    w = np.ones(3, np.float32)
    p = Tensor(w, requires_grad=True)
    p.grad = Tensor(np.ones(3, np.float32))
    optim.SGD([p], lr=0.5, fused=False).step()
    np.testing.assert_array_equal(w, [1.0, 1.0, 1.0])  # the caller's array is untouched
    transposed = Tensor(np.ones((3, 2), np.float32).T)
    assert transposed.data.flags.c_contiguous  # torch.tensor(x.T) is contiguous too

    shared = np.zeros(3)
    t = Tensor.from_numpy(shared)
    assert t.dtype == np.float64  # like torch.from_numpy: no conversion
    shared[1] = 5.0
    t.data[2] = 6.0
    np.testing.assert_array_equal(t.numpy(), [0.0, 5.0, 6.0])
    np.testing.assert_array_equal(shared, [0.0, 5.0, 6.0])
    with pytest.raises(TypeError, match="numpy.ndarray"):
        Tensor.from_numpy([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        Tensor.from_numpy(np.arange(3), requires_grad=True)
    if torch is not None:
        ts = torch.from_numpy(shared)
        shared[0] = 9.0
        assert ts[0].item() == t.numpy()[0] == 9.0


def test_item04_tensor_of_a_device_array_or_tensor_copies(device):
    src = Tensor(np.arange(3.0), device=device)
    from_array, from_tensor, moved = Tensor(src.data), Tensor(src), src.to(device)
    src.data[0] = 7.0
    assert from_array.numpy()[0] == from_tensor.numpy()[0] == 0.0
    assert moved.numpy()[0] == 7.0  # .to() the same device is the tensor itself, as in torch
    assert Tensor(src, dtype=np.float64).to("cpu").dtype == np.float64  # .to() keeps the dtype


# ---- 5. a NumPy value on the left goes through our reflected operator ------------------------
def test_item05_numpy_value_on_the_left(device):
    t = Tensor([1.0, 2.0], requires_grad=True, device=device)
    cases = {
        "np.float32(2) * t": (np.float32(2) * t, [2.0, 4.0]),
        "np.ones(2) + t": (np.ones(2) + t, [2.0, 3.0]),
        "np.float64(3) - t": (np.float64(3) - t, [2.0, 1.0]),
        "np.full(2, 2.0) / t": (np.full(2, 2.0) / t, [2.0, 1.0]),
        "np.eye(2) @ t": (np.eye(2) @ t, [1.0, 2.0]),
    }
    for name, (out, want) in cases.items():
        assert type(out) is Tensor, f"{name} gave {type(out).__name__}"
        assert out.dtype == np.float32 and out.device == t.device, name
        np.testing.assert_allclose(out.numpy(), want, err_msg=name)
    (np.float32(2) * t).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [2.0, 2.0])
    with pytest.raises(TypeError):
        np.add(np.ones(2), t)  # a ufunc called directly refuses, rather than loop per element


# ---- 6. a gradient always has its tensor's dtype ---------------------------------------------
def test_item06_gradient_has_its_tensors_dtype():
    for other in (np.array([1, 2, 3]), np.array([0.5, 1.0, 2.0]), np.float64(2.0)):
        w = Tensor(np.ones(3, np.float32), requires_grad=True)
        (w * Tensor(other, dtype=np.asarray(other).dtype)).sum().backward()
        assert w.grad.dtype == np.float32, f"with {np.asarray(other).dtype}: {w.grad.dtype}"
        optim.SGD([w], lr=0.1).step()  # used to raise on the float64 gradient
        np.testing.assert_allclose(w.numpy(), 1 - 0.1 * np.broadcast_to(other, 3), rtol=1e-6)

    class Float64Backward(Function):  # a custom op that hands back the wrong dtype
        def forward(self, a):
            return a * 2

        def backward(self, g):
            return g.astype(np.float64) * 2

    w = Tensor(np.ones(3, np.float32), requires_grad=True)
    Float64Backward.apply(w).sum().backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_array_equal(w.grad.numpy(), [2.0, 2.0, 2.0])


def test_item06_float64_gradcheck_of_mixed_dtypes():
    x = Tensor(np.linspace(-1.0, 1.0, 4), requires_grad=True, dtype=np.float64)
    f32 = Tensor(np.array([0.5, 1.5, -2.0, 3.0], np.float32))
    assert gradcheck(lambda t: (t * f32).exp() / (f32 * f32 + 1) + f32, x)
    assert gradcheck(lambda t: t.transpose(-1, 0) * Tensor(np.float32(2.0)),
                     Tensor(np.ones((2, 3)), requires_grad=True, dtype=np.float64))


# ---- 7. Adam counts steps per parameter ------------------------------------------------------
def _adam_reference(p, grads, lr, wd, betas=(0.9, 0.999), eps=1e-8):
    """torch's Adam in float64, for one parameter; a None gradient skips the step."""
    p, m, v, t = p.astype(np.float64), 0.0, 0.0, 0
    for g in grads:
        if g is None:
            continue
        t, g = t + 1, g + wd * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        p = p - lr / (1 - betas[0] ** t) * m / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
    return p


def test_item07_adam_step_count_per_parameter():
    rng = np.random.default_rng(0)
    w0, b0 = rng.standard_normal(3), rng.standard_normal(2)
    gw = [rng.standard_normal(3), rng.standard_normal(3), None, rng.standard_normal(3)]
    gb = [None, rng.standard_normal(2), rng.standard_normal(2), rng.standard_normal(2)]
    w, b = (Tensor(v, requires_grad=True) for v in (w0, b0))
    opt = optim.Adam([w, b], lr=0.1, weight_decay=0.01)
    for g1, g2 in zip(gw, gb):
        w.grad = None if g1 is None else Tensor(g1)
        b.grad = None if g2 is None else Tensor(g2)
        opt.step()
    np.testing.assert_array_equal(opt.param_steps, [3, 3])
    np.testing.assert_allclose(w.numpy(), _adam_reference(w0, gw, 0.1, 0.01), rtol=1e-5)
    np.testing.assert_allclose(b.numpy(), _adam_reference(b0, gb, 0.1, 0.01), rtol=1e-5)

    state = opt.state_dict()
    again = optim.Adam([Tensor(w0, requires_grad=True), Tensor(b0, requires_grad=True)])
    np.testing.assert_array_equal(again.load_state_dict(state).param_steps, [3, 3])
    old = {k: v for k, v in state.items() if not k.startswith("param_step")}
    np.testing.assert_array_equal(again.load_state_dict(old).param_steps, [4, 4])
    if torch is not None:
        tw, tb = (torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in (w0, b0))
        topt = torch.optim.Adam([tw, tb], lr=0.1, weight_decay=0.01)
        for g1, g2 in zip(gw, gb):
            tw.grad = None if g1 is None else torch.tensor(g1, dtype=torch.float32)
            tb.grad = None if g2 is None else torch.tensor(g2, dtype=torch.float32)
            topt.step()
        np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(b.numpy(), tb.detach().numpy(), rtol=1e-6, atol=1e-7)


# ---- 10. reductions with an axis on a 0-d tensor ---------------------------------------------
def test_item10_reductions_with_axis_on_0d_tensor(device):
    ops = {
        "sum(0)": (lambda t: t.sum(axis=0), 1.5, 1.0),
        "sum(-1, keepdims)": (lambda t: t.sum(axis=-1, keepdims=True), 1.5, 1.0),
        "mean(0)": (lambda t: t.mean(axis=0), 1.5, 1.0),
        "max(0)": (lambda t: t.max(axis=0), 1.5, 1.0),
        "log_softmax()": (lambda t: t.log_softmax(), 0.0, 0.0),
        "softmax(0)": (lambda t: t.softmax(0), 1.0, 0.0),
    }
    for name, (op, value, grad) in ops.items():
        t = Tensor(1.5, requires_grad=True, device=device)
        out = op(t)
        assert out.shape == (), name
        assert out.item() == value, name
        out.backward()
        assert t.grad.item() == grad, name
    with pytest.raises(ValueError, match="axis 1 is out of range"):
        Tensor(1.5).sum(axis=1)


# ---- 11. mean over an empty axis is nan ------------------------------------------------------
def test_item11_mean_over_empty_axis_is_nan(device):
    assert np.isnan(Tensor(np.zeros(0), device=device).mean().item())
    x = Tensor(np.zeros((2, 0)), requires_grad=True, device=device)
    m = x.mean(axis=1)
    np.testing.assert_array_equal(m.numpy(), [np.nan, np.nan])
    m.sum().backward()
    assert x.grad.shape == (2, 0)
    assert x.mean(axis=0).shape == (0,)
    if torch is not None:
        assert torch.zeros(2, 0).mean(1).isnan().all()


# ---- 12. softmax / log_softmax along a length-0 axis -----------------------------------------
@pytest.mark.parametrize("shape, axis", [((2, 0), -1), ((2, 0), 0), ((0, 3), -1)])
def test_item12_softmax_along_length0_axis(shape, axis, device):
    for op in ("softmax", "log_softmax"):
        x = Tensor(np.zeros(shape), requires_grad=True, device=device)
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0) of the empty sums
            out = getattr(x, op)(axis)
            out.sum().backward()
        assert out.shape == shape
        assert x.grad.shape == shape
    with pytest.raises(ValueError, match="length 0"):
        Tensor(np.zeros((2, 0))).max(axis=1)  # torch.amax raises here too
    assert Tensor(np.zeros((2, 0))).max(axis=0).shape == (0,)


# ---- 13. x ** 0 has gradient 0, also at x = 0 ------------------------------------------------
def test_item13_pow_zero_gradient_is_zero_at_zero(device):
    x = Tensor([0.0, 1.0, -2.0], requires_grad=True, device=device)
    out = x ** 0
    np.testing.assert_array_equal(out.numpy(), [1.0, 1.0, 1.0])
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])
    x = Tensor([0.0, 4.0], requires_grad=True, device=device)
    with np.errstate(divide="ignore"):
        (x ** 0.5).sum().backward()  # torch: inf at 0, as the derivative is
    np.testing.assert_array_equal(x.grad.numpy(), [np.inf, 0.25])


# ---- 14. SGD.backward / backward_step with a loss of shape (1,) ------------------------------
@pytest.mark.parametrize("fused", [True, False])
def test_item14_sgd_with_a_loss_of_shape_1(device, fused):
    start = np.array([1.0, 2.0, 3.0], np.float32)
    expected_grad, expected = 2 * start, start - 0.1 * 2 * start  # d(sum w^2)/dw = 2w
    if torch is not None:
        tw = torch.tensor(start, requires_grad=True)
        topt = torch.optim.SGD([tw], lr=0.1)
        (tw * tw).sum().reshape(1).backward()
        topt.step()
        expected = tw.detach().numpy()
    w = Tensor(start, requires_grad=True, device=device)
    opt = optim.SGD([w], lr=0.1, fused=fused)
    opt.backward((w * w).sum().reshape(1))
    np.testing.assert_allclose(w.grad.numpy(), expected_grad, rtol=1e-6)
    opt.step()
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)
    w = Tensor(start, requires_grad=True, device=device)
    opt = optim.SGD([w], lr=0.1, fused=fused)
    opt.backward_step((w * w).sum().reshape(1))
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)


# ---- 15. indexing with a NumPy integer -------------------------------------------------------
def test_item15_index_with_numpy_integer(device):
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, device=device)
    np.testing.assert_array_equal(x[np.int64(1)].numpy(), [3.0, 4.0, 5.0])
    assert x[np.int32(1), np.int64(-1)].item() == 5.0
    np.testing.assert_array_equal(x[:, np.int64(0)].numpy(), [0.0, 3.0])
    x[np.int64(1), np.uint8(2)].backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0, 0], [0, 0, 1]])


# ---- 16. float(t), int(t), bool(t) on one-element tensors ------------------------------------
def test_item16_python_scalars_from_one_element_tensors():
    assert float(Tensor([2.5])) == 2.5 and float(Tensor(2.5)) == 2.5
    assert float(Tensor([[3]])) == 3.0
    assert int(Tensor([2.7])) == 2 and int(Tensor([-2.7])) == -2 and int(Tensor([[7]])) == 7
    assert bool(Tensor([0.0])) is False  # used to be True: the length of the tensor
    assert bool(Tensor([[1.0]])) is True and bool(Tensor(0)) is False
    for convert in (float, int):
        with pytest.raises(ValueError, match="one element"):
            convert(Tensor([1.0, 2.0]))
    for shape in ((2,), (0,)):
        with pytest.raises(RuntimeError, match="ambiguous"):
            bool(Tensor(np.ones(shape)))
    if torch is not None:
        assert bool(torch.tensor([0.0])) is bool(Tensor([0.0]))
        assert int(torch.tensor([-2.7])) == int(Tensor([-2.7]))


# ---- corners found by a later comparison with torch -----------------------------------------
@pytest.mark.parametrize("shape, dims", [((2, 3), (0, 1)), ((2, 3), (1, 0)), ((2, 3, 4), (0, 1)),
                                         ((2, 3, 4), (-1, 0)), ((2, 3, 4), (1, 1)),
                                         ((3,), (0, -1))])
def test_transpose_of_two_axes_swaps_them_as_torch(shape, dims, device):
    # transpose(0, 1) of a matrix used to be the identity (a NumPy permutation), and of a 3-D
    # tensor an error; torch (and tinygrad) swap the two axes.
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    t = Tensor(x, requires_grad=True, device=device)
    out = t.transpose(*dims)
    expected = np.swapaxes(x, *dims)
    np.testing.assert_array_equal(out.numpy(), expected)
    w = np.random.default_rng(0).standard_normal(expected.shape).astype(np.float32)
    (out * Tensor(w, device=device)).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.swapaxes(w, *dims))
    if torch is not None:
        np.testing.assert_array_equal(out.numpy(), torch.tensor(x).transpose(*dims).numpy())


def test_permute_and_full_transpose(device):
    x = np.arange(24.0, dtype=np.float32).reshape(2, 3, 4)
    t = Tensor(x, requires_grad=True, device=device)
    for order in [(2, 0, 1), (0, -1, 1)]:
        np.testing.assert_array_equal(t.permute(*order).numpy(), np.transpose(x, order))
        np.testing.assert_array_equal(t.permute(order).numpy(), np.transpose(x, order))
        np.testing.assert_array_equal(t.transpose(*order).numpy(), np.transpose(x, order))
        if torch is not None:
            np.testing.assert_array_equal(t.permute(*order).numpy(),
                                          torch.tensor(x).permute(*order).numpy())
    np.testing.assert_array_equal(t.T.numpy(), x.T)
    for bad in [(0, 3), (0, 1, 1), (0, 1, 3)]:
        with pytest.raises(ValueError, match="do not fit shape"):
            t.transpose(*bad)


@pytest.mark.parametrize("start, end", [(0, -1), (1, -1), (0, 1), (-2, -1), (1, 1), (0, 0)])
def test_flatten_start_and_end_dim_as_torch(start, end):
    x = np.arange(24.0, dtype=np.float32).reshape(2, 3, 4)
    out = Tensor(x).flatten(start, end)
    expected = x.reshape(*x.shape[:start], -1, *x.shape[end % 3 + 1:])
    assert out.shape == expected.shape
    if torch is not None:
        assert out.shape == tuple(torch.tensor(x).flatten(start, end).shape)
    assert Tensor(2.0).flatten().shape == (1,)


def test_comparisons_give_bool_tensors(device):
    # t == 1 used to be False (object identity) and t > 0 a TypeError.
    a, b = np.array([-1.0, 0.0, 2.0], np.float32), np.array([0.0, 0.0, 1.0], np.float32)
    t, u = Tensor(a, requires_grad=True, device=device), Tensor(b, device=device)
    cases = {"==": (t == u, a == b), "!=": (t != 0, a != 0), "<": (t < u, a < b),
             "<=": (t <= 0, a <= 0), ">": (t > 0.5, a > 0.5), ">=": (t >= u, a >= b),
             "0 < t": (0 < t, 0 < a), "np left": (np.float32(0) == t, a == 0),
             "int vs 0.5": (Tensor([0, 1], device=device) < 0.5, np.array([True, False]))}
    for name, (got, expected) in cases.items():
        assert isinstance(got, Tensor) and got.dtype == np.bool_ and got.device == t.device, name
        assert not got.requires_grad, name
        np.testing.assert_array_equal(got.numpy(), expected, err_msg=name)
    if torch is not None:
        ta, tb = torch.tensor(a), torch.tensor(b)
        np.testing.assert_array_equal((t > u).numpy(), (ta > tb).numpy())
        np.testing.assert_array_equal((t == 0).numpy(), (ta == 0).numpy())
    assert len({t, u, t}) == 2 and {t: 1, u: 2}[t] == 1  # hashing stays by identity, as torch
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(t == u)


def test_iteration_over_rows_and_0d_raises(device):
    x = np.arange(6.0, dtype=np.float32).reshape(3, 2)
    t = Tensor(x, requires_grad=True, device=device)
    rows = list(t)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    sum(r.sum() * i for i, r in enumerate(rows)).backward()
    np.testing.assert_array_equal(t.grad.numpy(), [[0, 0], [1, 1], [2, 2]])
    with pytest.raises(TypeError):  # used to yield nothing; torch raises
        list(Tensor(1.0, device=device))


def test_sequential_slice_is_a_sequential():
    from tinygrad_mlp import nn
    s = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    head = s[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is s[0]
    assert [type(layer).__name__ for layer in s] == ["Linear", "ReLU", "Linear"]
    assert s[-1] is s.layers[-1] and isinstance(nn.MLP([3, 4, 2])[1:], nn.Sequential)
    if torch is not None:
        ts = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
        assert type(ts[:2]).__name__ == type(head).__name__ and len(ts[:2]) == len(head)


def test_inplace_update_in_no_grad_changes_the_tensor_itself(device):
    # The manual SGD step of torch's tutorials: `p -= lr * p.grad` used to rebind the loop name
    # to a new tensor, leaving the model's parameter unchanged (training silently did nothing).
    x = np.array([1.0, -2.0, 3.0], np.float32)
    w = Tensor(x, requires_grad=True, device=device)
    (w * w).sum().backward()
    with no_grad():
        for p in [w]:
            p -= 0.1 * p.grad
            p *= 2
            p /= 4
            p += 1
    expected = (x - 0.1 * 2 * x) * 2 / 4 + 1
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)
    assert w.is_leaf and w.requires_grad and w._ctx is None
    if torch is not None:
        tw = torch.tensor(x, requires_grad=True)
        (tw * tw).sum().backward()
        with torch.no_grad():
            for p in [tw]:
                p -= 0.1 * p.grad
                p *= 2
                p /= 4
                p += 1
        np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-6)

    a = Tensor([1.0, 2.0], device=device)
    alias, view = a, a.detach()
    a += Tensor([1.0, 1.0], device=device)  # outside no_grad too, when nothing requires grad
    assert a is alias and view.numpy().tolist() == [2.0, 3.0]  # detach() shares, as in torch


def test_inplace_on_graph_tensors_and_bad_results(device):
    w = Tensor([1.0, 2.0], requires_grad=True, device=device)
    with pytest.raises(RuntimeError, match="leaf that requires grad.*no_grad"):
        w -= 1  # torch: "a leaf Variable that requires grad is being used in an in-place op"
    loss = (w * w).sum()
    alias = loss
    loss += 0.5 * (w * w * w).sum()  # a non-leaf: the sum joins the graph, as in torch
    assert loss is not alias and loss.requires_grad
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * np.array([1.0, 2.0]) + 1.5 * np.array([1., 4.]))
    with pytest.raises(ValueError, match=r"does not fit this tensor \(\(2,\), int64\)"):
        t = Tensor([1, 2], device=device)
        t += 0.5  # torch: result type Float can't be cast to Long
    with pytest.raises(ValueError, match="does not fit"):
        t = Tensor([1.0, 2.0], device=device)
        t += Tensor(np.ones((3, 2)), device=device)


@pytest.mark.parametrize("make", ["zeros", "ones", "randn", "uniform"])
def test_constructors_keep_the_dtype_asked_for(make):
    # Tensor.randn(2, dtype=np.float64) used to be float32.
    for dtype in (np.float64, np.float32):
        t = getattr(Tensor, make)(2, 3, dtype=dtype)
        assert t.dtype == dtype and t.shape == (2, 3)
    if torch is not None and make != "uniform":
        assert str(getattr(torch, make)(2, dtype=torch.float64).dtype) == "torch.float64"
