"""In-place BLAS calls on NumPy arrays, through the OpenBLAS that NumPy itself ships.

NumPy has no in-place ``y += alpha * x`` (axpy) and no GEMM into an existing array with
``beta = 1``: written with ufuncs, each is two passes over memory and a temporary. The OpenBLAS
that runs NumPy's own matmul exports both; NumPy's wheels bundle it (as ``scipy_openblas64_``:
64-bit integers, symbols prefixed ``scipy_``), so we load that same library with ctypes (no new
dependency, and thread settings such as threadpoolctl's apply to it too). Where it is not found
(a NumPy built against another BLAS), or with ``TINYGRAD_MLP_NO_BLAS=1`` in the environment,
:data:`available` is False and callers use NumPy ufuncs.
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_I, _P = ctypes.c_int64, ctypes.c_void_p


def _library_files():
    """OpenBLAS files bundled with NumPy (Linux/Windows wheels: numpy.libs, macOS: .dylibs)."""
    root = os.path.dirname(np.__file__)
    for folder in (os.path.join(root, os.pardir, "numpy.libs"), os.path.join(root, ".dylibs")):
        yield from sorted(glob.glob(os.path.join(folder, "*openblas*")))


def _load():
    """{name: ctypes function} for the float32/float64 axpy, axpby and gemm, or None."""
    for path in _library_files():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        # Only ILP64 builds, recognised by their symbol suffix: the integer width is then known.
        for prefix in ("scipy_cblas_", "cblas_"):
            try:
                found = {name: getattr(lib, f"{prefix}{name}64_")
                         for name in ("saxpy", "daxpy", "saxpby", "daxpby", "sgemm", "dgemm")}
            except AttributeError:
                continue
            for kind, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
                found[kind + "axpy"].argtypes = [_I, real, _P, _I, _P, _I]
                found[kind + "axpby"].argtypes = [_I, real, _P, _I, real, _P, _I]
                found[kind + "gemm"].argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                 _I, _I, _I, real, _P, _I, _P, _I, real, _P, _I]
            for f in found.values():
                f.restype = None
            return found
    return None


_off = os.environ.get("TINYGRAD_MLP_NO_BLAS", "").strip().lower() not in ("", "0", "false", "no")
_functions = None if _off else _load()
available = _functions is not None
_KIND = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}
# A ctypes call costs a few microseconds more than a ufunc call: below this many elements the
# pass it saves is worth less than that (callers keep NumPy for small arrays).
MIN_SIZE = 1 << 14


def usable(*arrays) -> bool:
    """True when BLAS can work on these NumPy arrays in place: one float dtype, contiguous."""
    if not available:
        return False
    dtype = arrays[0].dtype
    return dtype in _KIND and all(
        type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous for a in arrays)


def _address(a):
    return a.__array_interface__["data"][0]


def axpy(alpha: float, x, y):
    """``y += alpha * x`` in place, one pass (x, y: :func:`usable`, same size)."""
    _functions[_KIND[y.dtype] + "axpy"](y.size, alpha, _address(x), 1, _address(y), 1)
    return y


def axpby(alpha: float, x, beta: float, y):
    """``y = alpha * x + beta * y`` in place, one pass (x, y: :func:`usable`, same size)."""
    _functions[_KIND[y.dtype] + "axpby"](y.size, alpha, _address(x), 1, beta, _address(y), 1)
    return y


def _layout(m):
    """(transpose flag, leading dimension) of a 2-D array as a row-major BLAS operand, or None
    when it is not one: unit stride along one axis, a non-overlapping positive stride along the
    other (so ``x``, ``x.T`` and row slices of either are, broadcasts are not)."""
    item, (rows, cols), (s0, s1) = m.itemsize, m.shape, m.strides
    if (s1 == item or cols <= 1) and (rows <= 1 or (s0 >= cols * item and s0 % item == 0)):
        return _NO_TRANS, max(s0 // item, cols, 1)
    if (s0 == item or rows <= 1) and (cols <= 1 or (s1 >= rows * item and s1 % item == 0)):
        return _TRANS, max(s1 // item, rows, 1)
    return None


def gemm_into(alpha: float, a, b, c, beta: float = 1.0) -> bool:
    """``c = alpha * (a @ b) + beta * c`` in place as one GEMM; False (nothing done) when the
    operands do not fit (dtype, layout), so the caller can fall back.

    a (m, k), b (k, n): 2-D, each with one unit-stride axis (views such as ``x.T`` are fine);
    c (m, n): C-contiguous, same dtype.
    """
    kind = _KIND.get(c.dtype) if available else None
    if (kind is None or not type(a) is type(b) is type(c) is np.ndarray
            or a.dtype != c.dtype or b.dtype != c.dtype or a.ndim != 2 or b.ndim != 2
            or not c.flags.c_contiguous):
        return False
    (m, k), n = a.shape, b.shape[1]
    la, lb = _layout(a), _layout(b)
    if (la is None or lb is None or b.shape[0] != k or c.shape != (m, n) or 0 in (m, n, k)
            or np.may_share_memory(c, a) or np.may_share_memory(c, b)):  # c is written in place
        return False
    _functions[kind + "gemm"](_ROW_MAJOR, la[0], lb[0], m, n, k, alpha, a.ctypes.data, la[1],
                              b.ctypes.data, lb[1], beta, c.ctypes.data, n)
    return True
