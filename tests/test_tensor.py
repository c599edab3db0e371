"""Autodiff semantics: accumulation, deep graphs, freeing, no_grad, dtypes, devices, errors."""

import numpy as np
import pytest

from tinygrad_mlp import Function, Tensor, no_grad


def test_float_becomes_float32_unless_dtype_given():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.ones(3)).dtype == np.float32
    assert Tensor(np.ones(3), dtype=np.float64).dtype == np.float64
    assert Tensor([1, 2]).dtype.kind == "i"


def test_int_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        Tensor([1, 2], requires_grad=True)


def test_diamond_accumulates(device):
    # micrograd's regression test: a node used twice must receive both contributions.
    a = Tensor([3.0], requires_grad=True, device=device)
    b = a + a
    c = b + b
    c.backward(Tensor([1.0], device=device))
    np.testing.assert_allclose(a.grad.numpy(), [4.0])


def test_gradients_accumulate_across_backward_calls(device):
    x = Tensor([1.0, 2.0], requires_grad=True, device=device)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])


def test_deep_chain_does_not_hit_recursion_limit(device):
    x = Tensor([1.0], requires_grad=True, device=device)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000], rtol=1e-3)


def test_graph_is_freed_after_backward(device):
    x = Tensor([1.0, 2.0], requires_grad=True, device=device)
    h = x * 2
    y = h.sum()
    y.backward()
    # Only a marker that names the op is left: no Function, so no saved arrays.
    assert not isinstance(h._ctx, Function) and not isinstance(y._ctx, Function)
    with pytest.raises(RuntimeError, match="Sum a second time.*already freed"):
        y.backward()


def test_retain_graph_allows_second_backward(device):
    x = Tensor([1.0, 2.0], requires_grad=True, device=device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_no_grad_records_nothing(device):
    x = Tensor([1.0], requires_grad=True, device=device)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y._ctx is None
    z = x * 2
    assert z.requires_grad  # the context restored the previous state


def test_no_grad_as_decorator():
    @no_grad()
    def f(t):
        return t * 2

    assert not f(Tensor([1.0], requires_grad=True)).requires_grad


def test_no_grad_decorator_is_reentrant():
    @no_grad()
    def depth(n):
        return depth(n - 1) if n else Tensor([1.0], requires_grad=True) * 2

    assert not depth(3).requires_grad
    assert (Tensor([1.0], requires_grad=True) * 2).requires_grad  # restored after the recursion


def test_only_leaves_get_grad(device):
    x = Tensor([1.0], requires_grad=True, device=device)
    h = x * 2
    (h * 3).sum().backward()
    assert h.grad is None and x.grad is not None


def test_detach_stops_gradient(device):
    x = Tensor([2.0], requires_grad=True, device=device)
    (x * x.detach()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0])


def test_implicit_grad_needs_one_element():
    with pytest.raises(RuntimeError, match="one-element"):
        (Tensor([1.0, 2.0], requires_grad=True) * 2).backward()


def test_backward_grad_shape_checked():
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        (Tensor([1.0, 2.0], requires_grad=True) * 2).backward(np.ones(3))


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4,\)"):
        Tensor(np.ones((2, 3))) + Tensor(np.ones(4))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"\(2, 3\) into \(4,\)"):
        Tensor(np.ones((2, 3))).reshape(4)


def test_mixed_devices_name_both_devices():
    a = Tensor([1.0])
    b = Tensor._wrap(np.ones(1, np.float32), "cuda:0")  # stands in for a GPU tensor
    with pytest.raises(RuntimeError, match="cpu and cuda:0"):
        a + b


@pytest.mark.gpu
def test_gpu_and_cpu_tensors_do_not_mix():
    gpu, cpu = Tensor([[1.0, 2.0]], device="gpu"), Tensor([[1.0, 2.0]])
    for op in (lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a @ b.T):
        with pytest.raises(RuntimeError, match="cuda:0 and cpu"):
            op(gpu, cpu)
        with pytest.raises(RuntimeError, match="cpu and cuda:0"):
            op(cpu, gpu)
    # A raw host array meets a device array only through an explicit copy, as in CuPy.
    with pytest.raises(TypeError, match="Unsupported type"):
        gpu.data + np.ones((1, 2), np.float32)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(gpu.data)
    np.testing.assert_array_equal((gpu + np.ones((1, 2))).numpy(), [[2.0, 3.0]])


def test_bad_index_and_axis_are_named():
    with pytest.raises(TypeError, match="index parts must be ints, slices"):
        Tensor(np.ones(3))[[0.5, 1]]
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        Tensor(np.ones((2, 3))).sum(axis=2)


def test_scalar_results_have_shape_empty(device):
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, device=device)
    s = x.sum()
    assert s.shape == () and s.item() == 15.0
    m = x.max()
    assert m.shape == () and m.item() == 5.0


def test_numpy_item_to_repr(device):
    t = Tensor([[1.0, 2.0]], requires_grad=True)
    assert isinstance(t.numpy(), np.ndarray)
    assert "requires_grad=True" in repr(t) and "device='cpu'" in repr(t)
    moved = t.to(device)
    assert moved.device.startswith("cpu" if device == "cpu" else "cuda")
    np.testing.assert_array_equal(moved.numpy(), t.numpy())
    assert Tensor([3.5]).item() == 3.5
    with pytest.raises(ValueError, match="one element"):
        t.item()


def test_constructors_and_seed():
    Tensor.manual_seed(3)
    a = Tensor.uniform(2, 3, low=-0.01, high=0.01)
    Tensor.manual_seed(3)
    b = Tensor.uniform((2, 3), low=-0.01, high=0.01)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(a.numpy()).max() <= 0.01 and a.dtype == np.float32
    assert Tensor.zeros(2, 2).numpy().sum() == 0 and Tensor.ones(3).numpy().sum() == 3
    assert Tensor.randn(4, 5).shape == (4, 5)


def test_float64_end_to_end(device):
    x = Tensor(np.ones(3), requires_grad=True, device=device, dtype=np.float64)
    y = (x * 2).exp().sum()
    assert y.dtype == np.float64
    y.backward()
    assert x.grad.dtype == np.float64
