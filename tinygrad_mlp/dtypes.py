"""PyTorch's type promotion, over NumPy dtypes (nothing here knows about autodiff).

NumPy's own rules differ: float32 with an int64 array, or int / int, gives float64 there and
float32 in torch. These functions give the dtype torch gives, so Tensor arithmetic matches.
"""

from __future__ import annotations

import numpy as np

DEFAULT_FLOAT = np.dtype(np.float32)  # torch's default dtype: float data, int/int division
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}  # torch's categories: bool < integer < float


def check(dtype, requires_grad=False):
    """Raise TypeError unless `dtype` can hold a Tensor (bool, integer, float; float for grads)."""
    if dtype.kind not in _CATEGORY or requires_grad and dtype.kind != "f":
        kinds = "floating-point" if requires_grad else "bool, integer or floating-point"
        raise TypeError(f"a tensor{' that requires grad' if requires_grad else ''} must be "
                        f"{kinds}, not {dtype}")


def require_float(dtype, op: str):
    """Raise TypeError for an op that torch runs on floating-point tensors only."""
    if dtype.kind != "f":
        raise TypeError(f"{op} needs a floating-point tensor, not {dtype} (as in torch); "
                        "cast it first with .float()")


def of_scalar(tensor_dtype, x):
    """The dtype a Python (or NumPy) scalar `x` takes beside a tensor of `tensor_dtype`: the
    tensor's own, unless the scalar is of a higher category (int tensor * 0.5 -> float32)."""
    if tensor_dtype.kind == "f" or isinstance(x, (bool, np.bool_)):
        return tensor_dtype
    if isinstance(x, (float, np.floating)):
        return DEFAULT_FLOAT
    return np.dtype(np.int64) if tensor_dtype.kind == "b" else tensor_dtype


def result(da, a_0d: bool, db, b_0d: bool, true_division=False):
    """The dtype of a binary op on tensors of dtypes `da`, `db` (`*_0d`: the tensor is 0-d)."""
    ca, cb = _CATEGORY[da.kind], _CATEGORY[db.kind]
    if ca != cb:  # the higher category wins, even from a 0-d tensor
        dtype = da if ca > cb else db
    elif a_0d != b_0d:  # same category: a 0-d operand defers to the other
        dtype = db if a_0d else da
    else:
        dtype = np.promote_types(da, db)
    return DEFAULT_FLOAT if true_division and dtype.kind != "f" else dtype
