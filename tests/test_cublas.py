"""tinygrad_mlp.cublas maps row-major NumPy-style operands onto column-major cuBLAS correctly.

cuBLAS itself needs a GPU; here a column-major reference GEMM written from the BLAS definition
stands in for it and reads the operands through the pointers and leading dimensions that our
``matmul`` passes, so a wrong transpose flag or leading dimension fails on any machine.
"""

import ctypes

import numpy as np
import pytest

from tinygrad_mlp import cublas


class _DeviceArray(np.ndarray):
    """A NumPy array that also answers CuPy's ``.data.ptr``."""

    @property
    def data(self):
        return type("Ptr", (), {"ptr": self.ctypes.data})()


_BUFFERS = []  # every buffer handed out (kept alive), so the reference never reads past one


def _dev(a):
    a = np.asarray(a)
    _BUFFERS.append(a if a.base is None else a.base)
    return a.view(_DeviceArray)


class _FakeCupy:
    float32 = np.float32
    uint8 = np.uint8

    @staticmethod
    def empty(shape, dtype):
        return _dev(np.empty(shape, dtype))

    @staticmethod
    def ascontiguousarray(a):
        return _dev(np.ascontiguousarray(a))

    class cuda:
        @staticmethod
        def get_current_stream():
            return type("Stream", (), {"ptr": 0})()


class _ReferenceBlas:
    """cublas{S,D}gemm_v2 from the column-major BLAS definition, through raw pointers."""

    def __init__(self):
        self.calls = []

    def cublasCreate_v2(self, handle):  # noqa: N802
        return 0

    def cublasSetStream_v2(self, handle, stream):  # noqa: N802
        return 0

    def cublasSetWorkspace_v2(self, handle, ptr, size):  # noqa: N802
        return 0

    def _gemm(self, ctype, handle, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        self.calls.append((op_a, op_b, m, n, k, lda, ldb, ldc))

        def matrix(ptr, rows, cols, ld):  # column-major rows x cols with leading dimension ld
            count = ld * (cols - 1) + rows
            end = ptr + count * ctypes.sizeof(ctype)
            assert ld >= rows and any(buf.ctypes.data <= ptr and end <= buf.ctypes.data + buf.nbytes
                                      for buf in _BUFFERS), "GEMM operand out of bounds"
            flat = np.ctypeslib.as_array((ctype * count).from_address(ptr))
            return np.lib.stride_tricks.as_strided(
                flat, (rows, cols), (flat.itemsize, ld * flat.itemsize))

        op = {0: lambda x: x, 1: lambda x: x.T}
        a_m = op[op_a](matrix(a.value, *((m, k) if op_a == 0 else (k, m)), lda))
        b_m = op[op_b](matrix(b.value, *((k, n) if op_b == 0 else (n, k)), ldb))
        c_m = matrix(c.value, m, n, ldc)
        c_m[...] = alpha._obj.value * (a_m.astype(np.float64) @ b_m) + beta._obj.value * c_m
        return 0

    def cublasSgemm_v2(self, *args):  # noqa: N802
        return self._gemm(ctypes.c_float, *args)

    def cublasDgemm_v2(self, *args):  # noqa: N802
        return self._gemm(ctypes.c_double, *args)


@pytest.fixture
def reference_blas(monkeypatch):
    import sys

    blas = _ReferenceBlas()
    monkeypatch.setattr(cublas, "_lib", lambda: blas)
    monkeypatch.setitem(sys.modules, "cupy", _FakeCupy)
    cublas.handle.cache_clear()
    yield blas
    cublas.handle.cache_clear()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["a @ b", "a.T @ b", "a @ b.T", "a.T @ b.T", "row @ b",
                                  "a @ col", "sliced rows"])
def test_matmul_layouts_match_numpy(case, dtype, reference_blas):
    rng = np.random.default_rng(0)

    def r(*shape):
        return _dev(rng.standard_normal(shape).astype(dtype))

    a, b = {
        "a @ b": (r(5, 3), r(3, 4)),
        "a.T @ b": (r(3, 5).T, r(3, 4)),  # x.T @ dy: the weight-gradient GEMM
        "a @ b.T": (r(5, 3), r(4, 3).T),  # dy @ W.T: the input-gradient GEMM
        "a.T @ b.T": (r(3, 5).T, r(4, 3).T),
        "row @ b": (r(1, 3), r(3, 4)),
        "a @ col": (r(5, 3), r(3, 1)),
        "sliced rows": (r(9, 3)[2:7], r(3, 4)),
    }[case]
    got = cublas.matmul(a, b)
    np.testing.assert_allclose(np.asarray(got), np.asarray(a) @ np.asarray(b), rtol=1e-5)
    assert reference_blas.calls, "no GEMM was issued"


def test_matmul_rejects_mixed_or_integer_dtypes(reference_blas):
    with pytest.raises(TypeError, match="float32 or float64"):
        cublas.matmul(_dev(np.ones((2, 2), np.float32)), _dev(np.ones((2, 2), np.float64)))


@pytest.mark.gpu
@pytest.mark.hardware("our cuBLAS handle calls libcublas through ctypes")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_our_handle_matches_cupy_matmul(dtype):
    import cupy

    rng = np.random.default_rng(1)
    a = cupy.asarray(rng.standard_normal((33, 17)).astype(dtype))
    b = cupy.asarray(rng.standard_normal((19, 17)).astype(dtype))
    for x, y in ((a, b.T), (a.T, a), (a[3:20], b.T[:, 2:9])):
        np.testing.assert_allclose(cupy.asnumpy(cublas.matmul(x, y)), cupy.asnumpy(x @ y),
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)
