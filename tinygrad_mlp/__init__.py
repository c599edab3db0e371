"""tinygrad_mlp: a small, fast, readable autodiff framework over NumPy (CPU) and CuPy (GPU)."""

from . import functional, nn, optim, viz
from .gradcheck import GradcheckError, gradcheck
from .profiler import profile
from .tensor import Function, Tensor, no_grad

cat, stack = Tensor.cat, Tensor.stack  # torch.cat / torch.stack

__version__ = "0.1.0"  # the one source: setup.cfg reads it
__all__ = ["Tensor", "Function", "no_grad", "cat", "stack", "gradcheck", "GradcheckError", "nn",
           "optim", "functional", "profile", "viz"]
