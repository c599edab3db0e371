"""tinygrad_mlp.blas: the in-place BLAS calls against NumPy, and their refusals."""

import numpy as np
import pytest

from tinygrad_mlp import blas

pytestmark = pytest.mark.skipif(not blas.available, reason="NumPy's OpenBLAS not found")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axpy_and_axpby(dtype):
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal(1000).astype(dtype) for _ in range(2))
    tol = 1e-6 if dtype == np.float32 else 1e-14
    want = y + dtype(0.3) * x
    np.testing.assert_allclose(blas.axpy(0.3, x, y.copy()), want, rtol=tol, atol=tol)
    want = dtype(-0.5) * x + dtype(0.9) * y
    np.testing.assert_allclose(blas.axpby(-0.5, x, 0.9, y.copy()), want, rtol=tol, atol=tol)


LAYOUTS = {
    "C": lambda a: a,
    "F": np.asfortranarray,
    "rows of a bigger array": lambda a: np.pad(a, ((0, 0), (0, 3)))[:, :a.shape[1]],
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout_a", LAYOUTS)
@pytest.mark.parametrize("layout_b", LAYOUTS)
def test_gemm_into_matches_numpy(layout_a, layout_b, dtype):
    rng = np.random.default_rng(1)
    a = LAYOUTS[layout_a](rng.standard_normal((7, 5)).astype(dtype))
    b = LAYOUTS[layout_b](rng.standard_normal((5, 4)).astype(dtype))
    c = rng.standard_normal((7, 4)).astype(dtype)
    want = -0.25 * (a.astype(np.float64) @ b) + 0.5 * c
    assert blas.gemm_into(-0.25, a, b, c, beta=0.5)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-5)
    # the transposed views the linear backward passes (x.T @ dy)
    c2 = np.zeros((5, 4), dtype)
    assert blas.gemm_into(1.0, a.T, a[:, :4], c2)
    np.testing.assert_allclose(c2, a.T @ a[:, :4], rtol=1e-5, atol=1e-5)


def test_gemm_into_refuses_what_it_cannot_do_in_place():
    a, b = np.ones((3, 2), np.float32), np.ones((2, 4), np.float32)
    c = np.zeros((3, 4), np.float32)
    assert not blas.gemm_into(1.0, a, b, np.asfortranarray(c))  # c not C-contiguous
    assert not blas.gemm_into(1.0, a.astype(np.float64), b, c)  # mixed dtypes
    assert not blas.gemm_into(1.0, np.broadcast_to(a[:1], (3, 2)), b, c)  # overlapping rows
    assert not blas.gemm_into(1.0, a[::-1], b, c)  # negative stride
    assert not blas.gemm_into(1.0, a, b, np.zeros((3, 5), np.float32))  # shape mismatch
    w = np.ones((4, 4), np.float32)
    assert not blas.gemm_into(1.0, w, w, w)  # c overlaps an operand
    assert not blas.gemm_into(1.0, a.astype(np.int32), b.astype(np.int32), c.astype(np.int32))
    assert np.all(c == 0)


@pytest.mark.parametrize("value, available", [("1", False), ("yes", False), ("0", True),
                                              ("", True), ("false", True)])
def test_no_blas_switch_reads_its_value(value, available):
    # TINYGRAD_MLP_NO_BLAS=0 used to turn BLAS off like any non-empty value; fresh interpreter,
    # since the library is loaded once, at import
    import os
    import subprocess
    import sys

    code = "from tinygrad_mlp import blas; print(blas.available)"
    env = {**os.environ, "TINYGRAD_MLP_NO_BLAS": value}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == str(available)
