"""A cuBLAS handle of our own, through ctypes, for GEMMs inside CUDA-graph capture.

CuPy refuses every cuBLAS call while a stream is capturing (its ``setStream`` raises
NotImplementedError: cupy/cupy#6290), so a captured training step cannot use ``cupy.matmul``.
Like PyTorch's CublasHandlePool we keep our own handle, bind it to the capturing stream and give
it a workspace we own (``cublasSetStream`` resets the workspace; without one cuBLAS would allocate
inside the graph). FP32 stays FP32 (default math mode, no TF32), so results match eager GEMMs
to rounding. Only used on the GPU; nothing here runs on the CPU.
"""

from __future__ import annotations

import ctypes
import functools

WORKSPACE_BYTES = 32 << 20  # what cuBLAS recommends on Hopper
_OP_N, _OP_T = 0, 1


@functools.cache
def _lib():
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib

        path = load_nvidia_dynamic_lib("cublas").abs_path
    except Exception:  # older CuPy without cuda-pathfinder: let the loader search
        path = "libcublas.so"
    lib = ctypes.CDLL(path)
    for name in ("cublasSgemm_v2", "cublasDgemm_v2"):
        getattr(lib, name).restype = ctypes.c_int
    return lib


def _check(status, what):
    if status != 0:
        raise RuntimeError(f"cuBLAS {what} failed with status {status}")


class Handle:
    """One cuBLAS handle with its own workspace (a CuPy array kept alive with the handle)."""

    def __init__(self):
        import cupy

        self.lib = _lib()
        self.ptr = ctypes.c_void_p()
        _check(self.lib.cublasCreate_v2(ctypes.byref(self.ptr)), "cublasCreate")
        self.workspace = cupy.empty(WORKSPACE_BYTES, dtype=cupy.uint8)
        self.stream = None

    def bind(self, stream_ptr: int):
        if stream_ptr != self.stream:
            _check(self.lib.cublasSetStream_v2(self.ptr, ctypes.c_void_p(stream_ptr)),
                   "cublasSetStream")
            _check(self.lib.cublasSetWorkspace_v2(
                self.ptr, ctypes.c_void_p(self.workspace.data.ptr),
                ctypes.c_size_t(WORKSPACE_BYTES)), "cublasSetWorkspace")
            self.stream = stream_ptr


@functools.cache
def handle() -> Handle:
    return Handle()


def _layout(a):
    """(op, leading dimension) that presents row-major `a` (m, k) to column-major cuBLAS as a^T."""
    m, k = a.shape
    item = a.itemsize
    if a.strides == (k * item, item) or m == 1:
        return _OP_N, max(k, 1)
    if a.strides == (item, m * item) or k == 1:  # a transposed view of a C-contiguous array
        return _OP_T, max(m, 1)
    return None, None


def matmul(a, b, out=None):
    """``a @ b`` for 2-D float32/float64 CuPy arrays through our own handle (capture-safe)."""
    import cupy

    if a.dtype != b.dtype or a.dtype.char not in "fd":
        raise TypeError(f"cublas.matmul: float32 or float64 operands needed, got {a.dtype} "
                        f"and {b.dtype}")
    (m, k), (_, n) = a.shape, b.shape
    op_a, ld_a = _layout(a)
    if op_a is None:
        a = cupy.ascontiguousarray(a)
        op_a, ld_a = _layout(a)
    op_b, ld_b = _layout(b)
    if op_b is None:
        b = cupy.ascontiguousarray(b)
        op_b, ld_b = _layout(b)
    if out is None:
        out = cupy.empty((m, n), dtype=a.dtype)
    h = handle()
    h.bind(cupy.cuda.get_current_stream().ptr)
    scalar = ctypes.c_float if a.dtype.char == "f" else ctypes.c_double
    gemm = h.lib.cublasSgemm_v2 if a.dtype.char == "f" else h.lib.cublasDgemm_v2
    one, zero = scalar(1.0), scalar(0.0)
    # Row-major C = A @ B is column-major C^T = B^T @ A^T: swap the operands.
    _check(gemm(h.ptr, op_b, op_a, n, m, k, ctypes.byref(one),
                ctypes.c_void_p(b.data.ptr), ld_b, ctypes.c_void_p(a.data.ptr), ld_a,
                ctypes.byref(zero), ctypes.c_void_p(out.data.ptr), max(n, 1)), "gemm")
    return out
