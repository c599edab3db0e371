"""gradcheck passes on correct backwards and, above all, catches wrong ones."""

import numpy as np
import pytest

from tinygrad_mlp import Function, GradcheckError, Tensor, gradcheck


class WrongSquare(Function):
    """x**2 with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, g):
        return 3 * self.saved_tensors[0] * g


class OnlyRightForOnes(Function):
    """Backward ignores the upstream gradient: right only when it is all ones."""

    def forward(self, x):
        return 2 * x

    def backward(self, g):
        return 2 * np.ones_like(g)


def _x(device, shape=(3, 2)):
    data = np.random.default_rng(0).uniform(0.5, 1.5, shape)
    return Tensor(data, requires_grad=True, device=device, dtype=np.float64)


def test_passes_on_correct_backward(device):
    assert gradcheck(lambda x, y: (x * y).tanh(), _x(device), _x(device)) is True


def test_catches_wrong_backward_and_names_input_index_values(device):
    with pytest.raises(GradcheckError, match=r"input 1 \(shape \(3, 2\)\) at index \(0, 0\): "
                                             r"numerical .* vs analytical "):
        gradcheck(lambda c, x: c * WrongSquare.apply(x), _x(device), _x(device))


def test_catches_backward_that_ignores_upstream_gradient(device):
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: OnlyRightForOnes.apply(x), _x(device))


def test_a_silly_eps_is_caught():
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: (x * 10).exp(), _x("cpu"), eps=1.0)
    with pytest.raises(ValueError, match="eps"):
        gradcheck(lambda x: x, _x("cpu"), eps=0)


def test_only_inputs_requiring_grad_are_checked():
    const = Tensor(np.ones((3, 2)), dtype=np.float64)
    assert gradcheck(lambda c, x: c * x * x, const, _x("cpu"))
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(lambda c: c * 2, const)


def test_float32_inputs_are_checked_in_float64():
    x = Tensor(np.linspace(0.5, 1.5, 6).reshape(3, 2), requires_grad=True)
    assert gradcheck(lambda t: (t * t).log(), x)


def test_torch_calling_form_tuple_outputs_and_raise_exception(device):
    # gradcheck(fn, (a, b)) as torch.autograd.gradcheck; a tuple of outputs checks each one;
    # raise_exception=False answers False instead of raising.
    a, b = _x(device), _x(device, (2, 4))
    assert gradcheck(lambda x, y: (x @ y, (x * x).sum(axis=1)), (a, b))
    assert gradcheck(lambda x: x.tanh(), a)  # one Tensor, not in a tuple
    assert gradcheck(lambda x: x.tanh(), [a])
    wrong_in_second = lambda x: (x * 2, WrongSquare.apply(x))  # noqa: E731
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(wrong_in_second, (a,))
    assert gradcheck(wrong_in_second, (a,), raise_exception=False) is False
    with pytest.raises(TypeError, match="a Tensor or a tuple of Tensors, got int"):
        gradcheck(lambda x: (x, 3), (a,))
