"""The CuPy stand-in of the simulated GPU fails where CuPy on a GPU fails, and computes what NumPy
computes (values and dtypes). These run everywhere: the stand-in needs no GPU (its kernels need
g++, which the `simulated_gpu` fixture checks)."""

import contextlib
import re

import numpy as np
import pytest

FLOAT32 = np.arange(6, dtype=np.float32).reshape(2, 3)


def test_ndarray_is_its_own_type_and_refuses_implicit_conversion(simulated_gpu):
    cp = simulated_gpu
    x = cp.asarray(FLOAT32)
    assert not isinstance(x, np.ndarray) and type(x).__module__ == "cupy"
    message = re.escape("Implicit conversion to a NumPy array is not allowed. Please use `.get()`")
    for convert in (np.asarray, np.array, lambda a: np.array(a, dtype=np.float64)):
        with pytest.raises(TypeError, match=message):
            convert(x)
    np.testing.assert_array_equal(x.get(), FLOAT32)
    np.testing.assert_array_equal(cp.asnumpy(x), FLOAT32)
    assert float(x[1, 2]) == 5.0 and x[1, 2].item() == 5.0 and int(x.sum()) == 15


def test_numpy_arrays_never_mix_with_device_arrays(simulated_gpu):
    cp = simulated_gpu
    x, host = cp.asarray(FLOAT32), FLOAT32.copy()
    for mix in (lambda: x + host, lambda: host + x, lambda: x * np.float32(2) + host,
                lambda: cp.maximum(x, host), lambda: np.maximum(host, x),
                lambda: cp.where(x > 1, x, host), lambda: x @ host.T,
                lambda: x + np.array(1.0, np.float32)):  # a 0-d NumPy array is an array too
        with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
            mix()
    assert isinstance(np.exp(x), cp.ndarray)  # a NumPy ufunc on a device array runs on it


@pytest.mark.parametrize("expr", [
    lambda xp, a, b: a * 2.0, lambda xp, a, b: a + b, lambda xp, a, b: a * np.float64(2),
    lambda xp, a, b: a.astype(np.int32) * 2.5, lambda xp, a, b: a.sum(),
    lambda xp, a, b: a.sum(axis=0, dtype=np.float64), lambda xp, a, b: (a > 1).sum(),
    lambda xp, a, b: a.argmax(axis=1), lambda xp, a, b: xp.full((), 0.5),
    lambda xp, a, b: xp.arange(3), lambda xp, a, b: a[None, :, 1:] ** np.float32(2),
    lambda xp, a, b: a.max(axis=1, keepdims=True), lambda xp, a, b: a.T @ a,
    lambda xp, a, b: a[xp.arange(2), xp.zeros(2, np.int64)],
    lambda xp, a, b: xp.sqrt(a.astype(np.float16)) / 3,
])
def test_results_and_dtypes_equal_numpy(simulated_gpu, expr):
    cp = simulated_gpu
    want = np.asarray(expr(np, FLOAT32, FLOAT32.astype(np.float64)))
    got = expr(cp, cp.asarray(FLOAT32), cp.asarray(FLOAT32.astype(np.float64)))
    assert isinstance(got, cp.ndarray) and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.get(), want, rtol=1e-6)


def test_views_share_memory_and_pointers_follow_them(simulated_gpu):
    cp = simulated_gpu
    x = cp.zeros((4, 6), np.float64)
    assert x.data.ptr % 256 == 0 and x.flags.c_contiguous and not x.T.flags.c_contiguous
    assert x[1:].data.ptr == x.data.ptr + 6 * 8 and x[:, 2].data.ptr == x.data.ptr + 16
    x.T[2, 1] = 7.0
    x.reshape(-1)[0] = 1.0
    assert x[1, 2].item() == 7.0 and x[0, 0].item() == 1.0
    assert cp.ascontiguousarray(x) is x and cp.ascontiguousarray(x.T).flags.c_contiguous


def test_memory_pool_reuses_freed_blocks(simulated_gpu):
    cp = simulated_gpu
    pool = cp.cuda.MemoryPool()
    with cp.cuda.using_allocator(pool.malloc):
        a = cp.empty(1000, np.float32)
        assert pool.used_bytes() == pool.total_bytes() == 4096  # rounded to 512 bytes
        ptr = a.data.ptr
        del a
        assert pool.used_bytes() == 0
        assert cp.empty(900, np.float32).data.ptr == ptr and pool.total_bytes() == 4096


def test_events_time_on_the_host_clock(simulated_gpu):
    cp = simulated_gpu
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    cp.arange(1000).sum()
    end.record()
    end.synchronize()
    assert cp.cuda.get_elapsed_time(start, end) >= 0
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="never recorded"):
        cp.cuda.get_elapsed_time(start, cp.cuda.Event())


def test_one_device_with_cuda_runtime_queries(simulated_gpu):
    cp = simulated_gpu
    assert cp.cuda.runtime.getDeviceCount() == 1
    assert cp.cuda.runtime.getDeviceProperties(0)["name"] == b"Simulated GPU (CPU)"
    assert cp.cuda.Device().id == 0 and cp.asarray(FLOAT32).device.id == 0
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="invalid device ordinal"):
        with cp.cuda.Device(1):
            pass


def test_raw_module_runs_kernels_on_the_simulator(simulated_gpu):
    cp = simulated_gpu
    code = ('extern "C" __global__ void twice(const float* x, float* y, int n) {\n'
            "  int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] = 2 * x[i]; }\n")
    twice = cp.RawModule(code=code).get_function("twice")
    x = cp.asarray(np.arange(70, dtype=np.float32))
    y = cp.zeros_like(x)
    twice((3,), (32,), (x, y, np.int32(70)))
    np.testing.assert_array_equal(y.get(), 2 * np.arange(70))
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        twice((3,), (32,), (x.get(), y, np.int32(70)))


# ---- stream capture -----------------------------------------------------------------------------
@pytest.fixture
def capturing(simulated_gpu):
    """(cupy, stream): a side stream capturing, with allocations from a pool of its own."""
    cp = simulated_gpu
    stream = cp.cuda.Stream(non_blocking=True)
    with cp.cuda.using_allocator(cp.cuda.MemoryPool().malloc), stream:
        stream.begin_capture()
        yield cp, stream
        if stream.is_capturing():
            with contextlib.suppress(cp.cuda.runtime.CUDARuntimeError):  # invalidated
                stream.end_capture()


@pytest.mark.parametrize("sync", [
    lambda cp, x: x.get(), lambda cp, x: float(x[0]), lambda cp, x: x[0].item(),
    lambda cp, x: cp.asnumpy(x), lambda cp, x: bool(x[0]), lambda cp, x: int(x.sum()),
    lambda cp, x: cp.cuda.get_current_stream().synchronize(),
    lambda cp, x: cp.cuda.Device().synchronize(), lambda cp, x: repr(x),
])
def test_capture_refuses_host_syncs(capturing, sync):
    cp, stream = capturing
    x = cp.ones(3, np.float32)
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="host sync"):
        sync(cp, x)
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="Invalidated"):
        stream.end_capture()  # as on CUDA: the failed call invalidated the capture


@pytest.mark.parametrize("copy", [
    lambda cp, x: cp.asarray(np.ones(3, np.float32)), lambda cp, x: x.set(np.ones(3, np.float32)),
    lambda cp, x: x.__setitem__(slice(None), np.ones(3, np.float32)),
    lambda cp, x: cp.array([1.0, 2.0]), lambda cp, x: x[[0, 1]],
])
def test_capture_refuses_host_to_device_copies(capturing, copy):
    cp, _ = capturing
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError, match="host-to-device copy"):
        copy(cp, cp.ones(3, np.float32))


@pytest.mark.parametrize("gemm", [lambda a: a @ a.T, lambda a: a.dot(a.T),
                                  lambda a: __import__("cupy").matmul(a, a.T)])
def test_capture_refuses_cublas_through_cupy(capturing, gemm):
    cp, _ = capturing
    with pytest.raises(NotImplementedError, match="cuBLAS API during stream capture"):
        gemm(cp.ones((2, 3), np.float32))


def test_capture_refuses_the_default_pool_and_the_default_stream(simulated_gpu):
    cp = simulated_gpu
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            with pytest.raises(RuntimeError, match="default memory pool while a stream"):
                cp.empty(3, np.float32)
        finally:
            stream.end_capture()
    with pytest.raises(RuntimeError, match="cannot capture on the default"):
        cp.cuda.Stream.null.begin_capture()


def test_captured_work_runs_only_when_the_graph_launches(simulated_gpu):
    cp = simulated_gpu
    x, lr = cp.ones(4, np.float32), cp.full((), 0.5, np.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    with cp.cuda.using_allocator(cp.cuda.MemoryPool().malloc), stream:
        stream.begin_capture()
        y = x * 2 + cp.arange(4)
        x -= lr * y  # in place: must not run during capture
        graph = stream.end_capture()
    np.testing.assert_array_equal(x.get(), [1, 1, 1, 1])
    graph.launch()
    np.testing.assert_array_equal(x.get(), [0, -0.5, -1, -1.5])
    x[...] = 2.0
    lr.fill(0.25)  # the graph reads device memory at each launch
    graph.launch()
    np.testing.assert_array_equal(x.get(), [1, 0.75, 0.5, 0.25])


def test_kernels_flush_float_denormals_as_cupy_builds_them(simulated_gpu):
    # CuPy compiles every RawModule with -ftz=true: a float32 denormal result reads 0 on the GPU,
    # while the NumPy twin keeps it. Without the option the simulator would keep it too.
    from tinygrad_mlp import fused

    tiny = np.full((2, 3), 1e-39, np.float32)  # below float32's smallest normal, 1.18e-38
    on_gpu = fused.bias_relu(simulated_gpu.asarray(tiny), simulated_gpu.zeros(3, np.float32))
    np.testing.assert_array_equal(on_gpu.get(), 0)
    np.testing.assert_array_equal(fused.bias_relu(tiny.copy(), np.zeros(3, np.float32)), tiny)
