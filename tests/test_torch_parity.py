"""Held against torch (CPU) on cases found by probing outside the issue lists: each test
failed before its fix. Values, gradients and dtypes must match torch's to float32 tolerance."""

import numpy as np
import pytest

from tinygrad_mlp import Tensor, nn, no_grad, optim
from tinygrad_mlp import functional as F

torch = pytest.importorskip("torch")


def _pair(x, requires_grad=True, device="cpu"):
    return (Tensor(x, requires_grad=requires_grad, device=device, dtype=x.dtype),
            torch.tensor(x, requires_grad=requires_grad))


def _close(ours, theirs, what):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=1e-6,
                               err_msg=what)


def test_leaves_of_one_add_get_their_own_grad_arrays(device):
    # a + b handed both leaves one array: scaling a.grad in place (clipping) scaled b.grad too.
    x = np.array([1.0, 2.0], np.float32)
    (a, ta), (b, tb) = _pair(x, device=device), _pair(x + 1, device=device)
    (a + b).sum().backward()
    (ta + tb).sum().backward()
    with no_grad():
        a.grad *= 2
    with torch.no_grad():
        ta.grad *= 2
    _close(a.grad, ta.grad, "a.grad")
    _close(b.grad, tb.grad, "b.grad")
    # A retained gradient and the leaf behind it are separate arrays too.
    c = Tensor(x, requires_grad=True, device=device)
    d = Tensor(x, requires_grad=True, device=device)
    y = c + d
    y.retain_grad()
    y.sum().backward()
    with no_grad():
        y.grad *= 3
    np.testing.assert_array_equal(c.grad.numpy(), [1.0, 1.0])


def test_division_gradient_for_a_tiny_divisor(device):
    # -g * a / (b * b) became -inf where b * b underflows; torch computes (a / b) / b.
    a, ta = _pair(np.array([1e-30, 2.0, 1.0], np.float32), device=device)
    b, tb = _pair(np.array([1e-30, 1e-20, 3.0], np.float32), device=device)
    with np.errstate(over="ignore"):  # 2 / 1e-20 / 1e-20 is inf, in torch too
        (a / b).sum().backward()
    (ta / tb).sum().backward()
    _close(a.grad, ta.grad, "d/da")
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-5, err_msg="d/db")
    t, tt = _pair(np.array([1e-30, 3e-25], np.float32), device=device)
    (t / t).sum().backward()
    (tt / tt).sum().backward()
    _close(t.grad, tt.grad, "t / t")


def test_relu_passes_the_gradient_of_nan(device):
    x = np.array([-1.0, 0.0, 2.0, np.nan, np.inf], np.float32)
    t, tt = _pair(x, device=device)
    t.relu().backward(np.ones(5, np.float32))
    tt.relu().backward(torch.ones(5))
    _close(t.grad, tt.grad, "relu grad")


@pytest.mark.parametrize("fused", [True, False])
def test_linear_relu_passes_the_gradient_of_nan(device, fused):
    # The fused kernel and its NumPy twin mask like torch: zero output stops, NaN passes.
    x = np.array([[1.0, np.nan], [2.0, -3.0]], np.float32)
    w = np.array([[1.0, -1.0], [0.5, 2.0]], np.float32)
    b = np.array([0.0, -10.0], np.float32)
    (t, tt), (tw, ttw), (tb, ttb) = (_pair(a, device=device) for a in (x, w, b))
    F.linear_relu(t, tw, tb, fused=fused).backward(np.ones((2, 2), np.float32))
    torch.relu(tt @ ttw + ttb).backward(torch.ones(2, 2))
    for ours, theirs, what in ((t, tt, "x"), (tw, ttw, "w"), (tb, ttb, "b")):
        _close(ours.grad, theirs.grad, f"linear_relu grad of {what}")


def test_max_gives_the_gradient_to_a_nan(device):
    # The mask (a == max) missed NaN: every gradient of the slice became NaN. torch.max() and
    # max(dim).values give the gradient to the NaN (torch.amax alone gives NaN everywhere).
    x = np.array([[1.0, np.nan], [2.0, 3.0]], np.float32)
    t, tt = _pair(x, device=device)
    t.max().backward()
    tt.max().backward()
    _close(t.grad, tt.grad, "max()")
    t, tt = _pair(x, device=device)
    t.max(axis=0).backward(np.ones(2, np.float32))
    tt.max(dim=0).values.backward(torch.ones(2))
    _close(t.grad, tt.grad, "max(0)")


@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": -1, "keepdim": True},
                                {"dim": (0, 2)}, {"dim": 0, "keepdim": True}])
def test_min_is_torch_amin(kw, device):
    x = np.array([[[1, 1, 3], [2, 0, 0]], [[5, 4, 4], [0, 2, 7]]], np.float32)  # ties
    t, tt = _pair(x, device=device)
    out, tout = t.min(**kw), tt.amin(**kw)
    assert type(out._ctx).__name__ == "Min"  # as profiles and graphs name it
    _close(out, tout, f"min {kw}")
    up = np.random.default_rng(0).standard_normal(tout.shape).astype(np.float32)
    out.backward(up)
    tout.backward(torch.tensor(up))
    _close(t.grad, tt.grad, f"min {kw} grad")
    ints = np.array([[3, 1], [2, 5]], np.uint8)  # no negation trick: uint8 stays exact
    got = Tensor(ints, device=device).min(axis=0)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got.numpy(), torch.tensor(ints).amin(0).numpy())
    with pytest.raises(ValueError, match="min over an axis of length 0"):
        Tensor(np.zeros((0, 3), np.float32), device=device).min()


@pytest.mark.parametrize("kw", [{}, {"dim": 1}, {"dim": -2, "keepdim": True}, {"keepdim": True}])
def test_argmax_as_torch(kw, device):
    x = np.array([[1.0, 3.0, 3.0], [np.nan, 0.0, 5.0]], np.float32)
    got, expected = Tensor(x, device=device).argmax(**kw), torch.tensor(x).argmax(**kw)
    assert got.dtype == np.int64 and not got.requires_grad
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    assert Tensor(2.0).argmax().item() == torch.tensor(2.0).argmax().item() == 0
    with pytest.raises(ValueError, match="out of range"):
        Tensor(x).argmax(2)


@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "softmax", "log_softmax"])
def test_dim_and_keepdim_keywords_as_torch(op):
    # torch takes dim=/keepdim= (and axis=/keepdims=); ours took only the NumPy names.
    x = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    t, tt = _pair(x)
    theirs = {"max": "amax", "min": "amin"}.get(op, op)
    kw = {"dim": 1} if op in ("softmax", "log_softmax") else {"dim": (0, -1), "keepdim": True}
    out, tout = getattr(t, op)(**kw), getattr(tt, theirs)(**kw)
    assert out.shape == tuple(tout.shape)
    _close(out, tout, op)
    numpy_kw = {"axis": kw["dim"], **({"keepdims": True} if "keepdim" in kw else {})}
    _close(getattr(t, op)(**numpy_kw), tout, f"{op} with axis/keepdims")


@pytest.mark.parametrize("start, end", [(1, 0), (5, -1), (0, 5), (-4, -1)])
def test_flatten_refuses_dims_out_of_order_or_range(start, end):
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises((RuntimeError, IndexError)):
        torch.tensor(x).flatten(start, end)
    with pytest.raises(ValueError, match="start_dim|out of range"):
        Tensor(x).flatten(start, end)


def test_flatten_of_a_length0_axis():
    x = np.zeros((2, 0, 3), np.float32)
    assert Tensor(x).flatten(1).shape == tuple(torch.tensor(x).flatten(1).shape) == (2, 0)


def test_comparison_with_none_is_false_as_torch():
    t = Tensor([1.0, 2.0])
    assert (t == None) is (torch.tensor([1.0, 2.0]) == None) is False  # noqa: E711
    assert (t != None) is True  # noqa: E711
    with pytest.raises(TypeError):
        t < None  # noqa: B015


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dense", [False, True])
def test_cross_entropy_reduction_as_torch(reduction, fused, dense, device):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 6)
    target = np.eye(5, dtype=np.float32)[labels] * 0.8 + 0.04 if dense else labels
    t, tt = _pair(x, device=device)
    out = F.cross_entropy(t, target, reduction=reduction, fused=fused)
    tout = torch.nn.functional.cross_entropy(tt, torch.tensor(target), reduction=reduction)
    assert out.shape == tuple(tout.shape) and out.dtype == np.float32
    _close(out, tout, "loss")
    up = rng.standard_normal(tout.shape).astype(np.float32)
    out.backward(up)
    tout.backward(torch.tensor(up))
    _close(t.grad, tt.grad, "dlogits")


def test_cross_entropy_bad_reduction_or_target_dtype_named():
    x = Tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        F.cross_entropy(x, [0, 1], reduction="avg")
    for fused in (True, False):  # the reference path used to end in a NumPy IndexError
        with pytest.raises(TypeError, match="target must be integer class indices.*bool"):
            F.cross_entropy(x, np.array([True, False]), fused=fused)


def test_module_zero_grad_set_to_none_false_keeps_zeros():
    layer = nn.Linear(3, 2)
    tlayer = torch.nn.Linear(3, 2)
    layer(Tensor(np.ones((4, 3), np.float32))).sum().backward()
    tlayer(torch.ones(4, 3)).sum().backward()
    layer.zero_grad(set_to_none=False)
    tlayer.zero_grad(set_to_none=False)
    for p, tp in zip(layer.parameters(), (tlayer.weight.grad.T, tlayer.bias.grad)):
        assert p.grad is not None
        _close(p.grad, tp, "zeroed grad")
    layer(Tensor(np.ones((4, 3), np.float32))).sum().backward()
    np.testing.assert_array_equal(layer.bias.grad.numpy(), [4.0, 4.0])
    layer.zero_grad()
    assert all(p.grad is None for p in layer.parameters())


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, momentum=0.9),
                                  lambda ps: optim.Adam(ps)], ids=["sgd", "adam"])
def test_optimizer_zero_grad_set_to_none_false_then_step_as_torch(make):
    # zero_grad(set_to_none=False) keeps zeroed arrays that later backwards accumulate into;
    # SGD's default lr is torch's 1e-3.
    layer, tlayer = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    with torch.no_grad():
        tlayer.weight.copy_(torch.from_numpy(layer.weight.numpy().T.copy()))
        tlayer.bias.copy_(torch.from_numpy(layer.bias.numpy()))
    opt = make(list(layer.parameters()))
    topt = (torch.optim.SGD(tlayer.parameters(), momentum=0.9)
            if isinstance(opt, optim.SGD) else torch.optim.Adam(tlayer.parameters()))
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    for _ in range(3):
        opt.zero_grad(set_to_none=False)
        topt.zero_grad(set_to_none=False)
        (layer(Tensor(x)) ** 2).sum().backward()
        (tlayer(torch.from_numpy(x)) ** 2).sum().backward()
        opt.step()
        topt.step()
    assert layer.bias.grad is not None
    _close(layer.weight, tlayer.weight.T, "weight after 3 steps")
    _close(layer.bias, tlayer.bias, "bias after 3 steps")


def test_shape_errors_of_batched_matmul_and_comparisons_name_both_shapes():
    # Both ended in NumPy's own messages ("remapped shapes [original->remapped] ...").
    with pytest.raises(ValueError, match=r"matmul: shapes \(5, 2, 3\) and \(4, 3, 4\)"):
        Tensor(np.zeros((5, 2, 3), np.float32)) @ Tensor(np.zeros((4, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"comparison: shapes \(3,\) and \(4,\) do not broadcast"):
        Tensor(np.zeros(3, np.float32)) < Tensor(np.zeros(4, np.float32))  # noqa: B015
    a, b = np.ones((2, 1, 3, 4), np.float32), np.ones((5, 4, 2), np.float32)
    assert (Tensor(a) @ Tensor(b)).shape == tuple((torch.tensor(a) @ torch.tensor(b)).shape)


@pytest.mark.parametrize("exponent", [0, 2])
def test_bool_power_is_int64_as_torch(exponent):
    x = np.array([True, False])
    got, expected = Tensor(x) ** exponent, torch.tensor(x) ** exponent
    assert got.dtype == np.int64 and expected.dtype == torch.int64  # NumPy gives int8
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def test_cross_entropy_integer_one_hot_target_says_float():
    # torch: "Expected floating point type for target with class probabilities".
    with pytest.raises(ValueError, match=r"\(2, 3\) float probabilities, got int64"):
        F.cross_entropy(Tensor(np.zeros((2, 3), np.float32)), np.eye(3, dtype=np.int64)[:2])


def test_negating_unsigned_integers_wraps_as_torch():
    # -t was t * -1, and -1 does not fit uint8: NumPy's OverflowError.
    x = np.array([0, 1, 200], np.uint8)
    got = -Tensor(x)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got.numpy(), (-torch.tensor(x)).numpy())
    np.testing.assert_array_equal((-Tensor(np.array([-0.0, 2.0], np.float32))).numpy(),
                                  [0.0, -2.0])


_CE_OPTIONS = [{"weight": True}, {"ignore_index": -100}, {"ignore_index": 2},
               {"label_smoothing": 0.1},
               {"weight": True, "ignore_index": 1, "label_smoothing": 0.2}]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options, dense", [(o, False) for o in _CE_OPTIONS] + [
    (o, True) for o in _CE_OPTIONS if "ignore_index" not in o], ids=str)  # torch: indices only
def test_cross_entropy_weight_ignore_index_label_smoothing_as_torch(options, reduction, dense,
                                                                   device):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 7)
    labels[[1, 4]] = options.get("ignore_index", 0)  # rows to ignore, where that applies
    kw = dict(options)
    if kw.pop("weight", False):
        kw["weight"] = np.array([0.5, 2.0, 1.0, 3.0], np.float32)
    target = np.eye(4, dtype=np.float32)[labels] * 0.7 + 0.075 if dense else labels
    t, tt = _pair(x, device=device)
    out = F.cross_entropy(t, target, reduction=reduction, **kw)
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    tout = torch.nn.functional.cross_entropy(tt, torch.from_numpy(target), reduction=reduction,
                                             **tkw)
    assert out.shape == tuple(tout.shape)
    _close(out, tout, f"loss {options}")
    up = rng.standard_normal(tout.shape).astype(np.float32)
    out.backward(up)
    tout.backward(torch.from_numpy(up))
    _close(t.grad, tt.grad, f"dlogits {options}")


def test_cross_entropy_option_errors_are_named():
    x = Tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"weight shape \(2,\) does not match 3 classes"):
        F.cross_entropy(x, [0, 1], weight=np.ones(2, np.float32))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        F.cross_entropy(x, [0, 1], label_smoothing=1.5)
    with pytest.raises(ValueError, match="label -1 is out of range for 3 classes"):
        F.cross_entropy(x, [-1, -100])  # -100 is ignored (torch's default), -1 is not


def test_constructor_takes_lists_of_tensors_as_torch():
    data = [[Tensor(1.0), 2.0], (3, Tensor(np.float32(4.0)))]
    ours = Tensor(data)
    theirs = torch.tensor([[torch.tensor(1.0), 2.0], (3, torch.tensor(4.0))])
    assert ours.dtype == np.float32 and ours.shape == tuple(theirs.shape)
    _close(ours, theirs, "values")
    with pytest.raises(ValueError, match="nested lists must be rectangular"):
        Tensor([[1.0, 2.0], [3.0]])  # torch: ValueError too


def test_integer_tensors_index_as_torch():
    i = Tensor(np.array(2))
    assert list(range(i)) == list(range(torch.tensor(2))) == [0, 1]
    assert [10, 20, 30][i] == 30
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        range(Tensor(2.0))  # a float tensor is no index (torch: TypeError too)


_ADVANCED = {
    "pairs": lambda: (np.arange(3), np.array([0, 2, 2])),
    "repeats": lambda: np.array([1, 1, 0, 2, 1]),
    "negative": lambda: ([-1, 0], slice(None)),
    "mixed with a slice": lambda: (slice(0, 2), [3, 3, 0]),
    "range and list": lambda: (range(3), [1, 0, 1]),
    "bool mask of rows": lambda: np.array([True, False, True]),
    "int tensor": lambda: Tensor(np.array([2, 0])),
    "None and ellipsis": lambda: (None, ..., [0, 3]),
}


@pytest.mark.parametrize("name", _ADVANCED)
def test_advanced_indexing_values_and_accumulating_gradients_as_torch(name, device):
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    index = _ADVANCED[name]()
    t, tt = _pair(x, device=device)

    def to_torch(p):
        if isinstance(p, Tensor):
            return torch.from_numpy(p.numpy())
        if isinstance(p, np.ndarray):
            return torch.from_numpy(p)
        return p

    tindex = tuple(map(to_torch, index)) if isinstance(index, tuple) else to_torch(index)
    out, tout = t[index], tt[tindex]
    assert out.shape == tuple(tout.shape)
    _close(out, tout, name)
    up = np.random.default_rng(0).standard_normal(tout.shape).astype(np.float32)
    out.backward(up)
    tout.backward(torch.from_numpy(up))
    _close(t.grad, tt.grad, f"{name}: repeated positions add up")


def test_bool_tensor_mask_and_index_errors(device):
    x = np.array([[-1.0, 2.0], [3.0, -4.0]], np.float32)
    t, tt = _pair(x, device=device)
    out, tout = t[t > 0], tt[tt > 0]
    _close(out, tout, "masked")
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    _close(t.grad, tt.grad, "masked grad")
    with pytest.raises(IndexError, match="index 2 is out of bounds for axis 0 with size 2"):
        t[[0, 2]]  # CuPy alone would wrap it silently
    with pytest.raises(IndexError, match="index -3 is out of bounds for axis 1 with size 2"):
        t[:, [-3]]
    with pytest.raises(TypeError, match="integer or bool arrays"):
        t[np.array([0.5])]
    with pytest.raises(IndexError, match="too many indices"):
        t[0, 1, [0]]


@pytest.mark.parametrize("case", ["tensor ** tensor", "broadcast exponent", "scalar ** tensor",
                                  "array exponent"])
def test_power_with_tensor_exponent_as_torch(case, device):
    a = np.array([[0.0, 2.0, -1.5], [3.0, 0.5, 0.0]], np.float32)
    b = np.array([[2.0, 0.5, -1.0], [0.0, -2.0, 3.0]], np.float32)
    t, tt = _pair(a, device=device)
    u, tu = _pair(b[0] if case == "broadcast exponent" else b, device=device)
    if case == "scalar ** tensor":
        out, tout = 2.5 ** u, 2.5 ** tu
    elif case == "array exponent":
        out, tout = t ** b, tt ** torch.from_numpy(b)
    else:
        out, tout = t ** u, tt ** tu
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-5, equal_nan=True)
    up = np.ones(tout.shape, np.float32)
    out.backward(up)
    tout.backward(torch.from_numpy(up))
    for ours, theirs in ((t, tt), (u, tu)):
        if theirs.grad is not None:
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5,
                                       equal_nan=True, err_msg=case)
        else:
            assert ours.grad is None


def test_item_assignment_fill_zero_and_clone_as_torch(device):
    x = np.zeros((3, 4), np.float32)
    t, tt = Tensor(x, device=device), torch.tensor(x)
    for index, value in [(0, 1.0), ((1, [0, 2]), np.array([5.0, 6.0], np.float32)),
                         ((slice(None), 3), np.arange(3, dtype=np.float32))]:
        t[index] = value if np.ndim(value) == 0 else Tensor(value, device=device)
        tt[index] = value if np.ndim(value) == 0 else torch.from_numpy(value)
    t[t > 5] = -1.0
    tt[tt > 5] = -1.0
    _close(t, tt, "after item assignment")
    w, tw = _pair(np.array([-0.0, 1.0, 2.0], np.float32), device=device)
    with pytest.raises(RuntimeError, match="item assignment into a tensor that requires grad"):
        w[0] = 3.0
    with pytest.raises(RuntimeError, match="requires grad"):
        w.zero_()  # torch: a leaf that requires grad used in an in-place operation
    c, tc = w.clone(), tw.clone()
    assert c.requires_grad and np.signbit(c.numpy()[0])  # -0.0 survives the copy
    (c * c).sum().backward()
    (tc * tc).sum().backward()
    _close(w.grad, tw.grad, "gradient through clone")
    with no_grad():
        w[0] = 3.0
        w.grad.zero_()
    np.testing.assert_array_equal(w.numpy(), [3.0, 1.0, 2.0])
    assert not w.grad.numpy().any()
    with no_grad():
        assert w.fill_(7) is w
    np.testing.assert_array_equal(w.numpy(), [7.0] * 3)


def test_torch_method_names_of_operators():
    a, b = np.array([1.0, -2.0], np.float32), np.array([3.0, 0.5], np.float32)
    t, tt = Tensor(a), torch.from_numpy(a)
    for name in ("add", "sub", "mul", "div", "pow"):
        _close(getattr(t, name)(Tensor(b)), getattr(tt, name)(torch.from_numpy(b)), name)
    _close(t.neg(), tt.neg(), "neg")
    _close(t.reshape(1, 2).matmul(Tensor(b).reshape(2, 1)),
           tt.reshape(1, 2).matmul(torch.from_numpy(b).reshape(2, 1)), "matmul")
    assert t.double().dtype == np.float64 and t.long().dtype == np.int64
    assert t.cpu() is t


def test_constructors_as_torch(device):
    cases = [(Tensor.full((2, 3), 3, device=device), torch.full((2, 3), 3)),
             (Tensor.full((2,), 1.5, device=device), torch.full((2,), 1.5)),
             (Tensor.full((2,), True, device=device), torch.full((2,), True)),
             (Tensor.arange(5, device=device), torch.arange(5)),
             (Tensor.arange(1, 2, 0.25, device=device), torch.arange(1, 2, 0.25)),
             (Tensor.eye(2, 3, device=device), torch.eye(2, 3)),
             (Tensor.arange(6).reshape(2, 3).zeros_like(),
              torch.zeros_like(torch.arange(6).reshape(2, 3))),
             (Tensor.full((2,), 2.0).ones_like(), torch.ones_like(torch.full((2,), 2.0)))]
    for ours, theirs in cases:
        assert ours.dtype == theirs.numpy().dtype and ours.shape == tuple(theirs.shape)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    r = Tensor.rand(1000, device=device).numpy()
    assert r.dtype == np.float32 and 0 <= r.min() and r.max() < 1 and 0.4 < r.mean() < 0.6
    assert Tensor.ones(2).zeros_like(requires_grad=True).requires_grad
