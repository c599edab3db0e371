"""Write a custom op as a Function with its own backward, and check it with gradcheck.

    python examples/gradcheck_custom.py
"""

import numpy as np

from tinygrad_mlp import Function, GradcheckError, Tensor, gradcheck


class Softplus(Function):
    """log(1 + exp(x)), computed stably; its derivative is sigmoid(x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return np.logaddexp(0, x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad / (1 + np.exp(-x))


class BrokenSoftplus(Softplus):
    def backward(self, grad):
        return grad * 0.5  # wrong on purpose


x = Tensor(np.linspace(-3, 3, 12).reshape(3, 4), requires_grad=True, dtype=np.float64)
print("Softplus passes gradcheck:", gradcheck(lambda t: Softplus.apply(t) * t, x))
try:
    gradcheck(lambda t: BrokenSoftplus.apply(t), x)
except GradcheckError as e:
    print("BrokenSoftplus caught:", e)
