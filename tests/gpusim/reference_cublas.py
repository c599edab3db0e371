"""libcublas for the simulated GPU: the calls tinygrad_mlp.cublas makes through ctypes, with the
GEMM computed by NumPy from the column-major BLAS definition, through the raw device pointers.

The GEMM is issued as device work on the current stream, so a stream capture records it and a
graph launch computes it again from the then-current operands. Only the real library on real
hardware tests our handle itself (creation, stream binding, workspace).
"""

from __future__ import annotations

import ctypes

import numpy as np


class ReferenceCublas:
    def __init__(self, cupy):
        self.cupy = cupy  # the stand-in: its cuda._submit issues device work

    def cublasCreate_v2(self, handle):  # noqa: N802 - libcublas's names
        return 0

    def cublasSetStream_v2(self, handle, stream):  # noqa: N802
        return 0

    def cublasSetWorkspace_v2(self, handle, ptr, size):  # noqa: N802
        return 0

    def cublasSgemm_v2(self, *args):  # noqa: N802
        return self._gemm(ctypes.c_float, *args)

    def cublasDgemm_v2(self, *args):  # noqa: N802
        return self._gemm(ctypes.c_double, *args)

    def _gemm(self, ctype, handle, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        alpha, beta = alpha._obj.value, beta._obj.value
        a, b, c = a.value, b.value, c.value

        def matrix(ptr, rows, cols, ld):  # column-major rows x cols, leading dimension ld
            if ld < max(rows, 1):
                raise ValueError(f"GEMM: leading dimension {ld} < {rows} rows")
            flat = np.ctypeslib.as_array((ctype * (ld * (cols - 1) + rows)).from_address(ptr))
            return np.lib.stride_tricks.as_strided(
                flat, (rows, cols), (flat.itemsize, ld * flat.itemsize))

        def op(x, transposed):
            return x.T if transposed else x

        def work():
            a_m = op(matrix(a, *((k, m) if op_a else (m, k)), lda), op_a)
            b_m = op(matrix(b, *((n, k) if op_b else (k, n)), ldb), op_b)
            c_m = matrix(c, m, n, ldc)
            product = np.asarray(alpha, c_m.dtype) * (a_m @ b_m)
            # beta == 0: C is not read (it may hold NaN), as cuBLAS specifies.
            c_m[...] = product if beta == 0 else product + np.asarray(beta, c_m.dtype) * c_m

        if m and n:
            self.cupy.cuda._submit(work)
        return 0
