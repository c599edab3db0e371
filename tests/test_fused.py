"""The fused array ops: NumPy twin and CUDA kernel against plain float64 NumPy references.

Each test body runs with ``xp=numpy`` (the twin) and with ``xp=cupy`` (the kernel, on a CUDA device
or on the simulated GPU of tests/gpusim), which is then also held equal to the twin on the same
inputs (CuPy's ``numpy_cupy_allclose`` idiom). The references below are deliberately slow and
obvious: Python loops in float64.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from tinygrad_mlp import device, fused

FLOATS = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
KERNEL_DIR = Path(__file__).resolve().parent.parent / "kernels"
KERNEL_FILES = sorted(p.name for p in KERNEL_DIR.glob("*.cu"))


# --------------------------------------------------------------------------------------------
# One body, two backends
# --------------------------------------------------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param("numpy", id="numpy"),
        pytest.param("cupy", id="cupy", marks=pytest.mark.gpu),
    ]
)
def xp(request):
    if request.param == "numpy":
        return np
    if not device.gpu_available():
        pytest.skip("no CUDA device")
    return device.check_gpu()


def to_np(a):
    return device.to_device(a, "cpu")


def assert_close(actual, expected, dtype, **kw):
    tol = {**TOL[np.dtype(dtype).type], **kw}
    np.testing.assert_allclose(to_np(actual), expected, equal_nan=True, **tol)


def run(xp, fn, *args, **kwargs):
    """``fn(*args)`` on ``xp`` copies of the NumPy ``args``; returns (result, args after) in NumPy.

    On CuPy the twin runs too, on its own NumPy copies, and must agree with the kernel: on the
    result and on every argument it wrote in place.
    """

    def call(module):
        copies = [module.asarray(a).copy() if isinstance(a, np.ndarray) else a for a in args]
        result = fn(*copies, **kwargs)
        if isinstance(result, tuple):
            result = tuple(to_np(r) for r in result)
        else:
            result = to_np(result)
        return result, [to_np(a) if hasattr(a, "shape") else a for a in copies]

    result, after = call(xp)
    if xp is not np:
        twin_result, twin_after = call(np)
        dtype = next(a.dtype for a in args if isinstance(a, np.ndarray))
        for got, want in zip(
            result if isinstance(result, tuple) else (result,),
            twin_result if isinstance(twin_result, tuple) else (twin_result,),
            strict=True,
        ):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, equal_nan=True, **TOL.get(want.dtype.type, {}))
        for got, want in zip(after, twin_after, strict=True):
            if isinstance(want, np.ndarray):
                np.testing.assert_allclose(got, want, equal_nan=True, **TOL[dtype.type])
    return result, after


# --------------------------------------------------------------------------------------------
# float64 references: obvious, slow
# --------------------------------------------------------------------------------------------


def ref_bias_relu(y, b):
    y, b = y.astype(np.float64), b.astype(np.float64)
    out = np.empty_like(y)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            v = y[i, j] + b[j]
            out[i, j] = v if v > 0 else 0.0
    return out


def ref_relu_backward(grad, out):
    return np.where(out <= 0, 0.0, grad.astype(np.float64))  # a NaN output passes, as torch


def ref_softmax_xent(logits, labels):
    logits = logits.astype(np.float64)
    n, c = logits.shape
    loss = np.empty(n)
    dlogits = np.empty((n, c))
    correct = 0
    for i in range(n):
        row = logits[i]
        label = int(labels[i])
        if not 0 <= label < c:
            loss[i] = np.nan
            dlogits[i] = np.nan
            continue
        m = max(row)
        exps = [np.exp(v - m) for v in row]
        total = sum(exps)
        loss[i] = m + np.log(total) - row[label]
        for j in range(c):
            dlogits[i, j] = (exps[j] / total - (1.0 if j == label else 0.0)) / n
        best = 0
        for j in range(1, c):
            if row[j] > row[best]:  # strict: a tie keeps the first index
                best = j
        correct += best == label
    return loss, dlogits, correct


def ref_sgd(param, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """PyTorch's SGD (dampening 0), one element at a time, over a list of gradients."""
    param = param.astype(np.float64).ravel().copy()
    buf = None
    for grad in grads:
        grad = grad.astype(np.float64).ravel()
        for i in range(param.size):
            g = grad[i] + weight_decay * param[i]
            if momentum:
                if buf is None:
                    buf = np.zeros_like(param)
                buf[i] = momentum * buf[i] + g
                g = g + momentum * buf[i] if nesterov else buf[i]
            param[i] -= lr * g
        # buf is created once (zeros) and then carried across steps
    return param


# --------------------------------------------------------------------------------------------
# bias_relu / relu_backward
# --------------------------------------------------------------------------------------------

SHAPES = [(96, 512), (1, 512), (128, 10), (7, 3), (5, 1)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
def test_bias_relu(xp, dtype, shape):
    rng = np.random.default_rng(0)
    y = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    y[0, 0] = -b[0]  # y + b exactly 0
    (out, (y_after, _)) = run(xp, fused.bias_relu, y, b)
    assert out.dtype == dtype and out.shape == shape
    assert_close(out, ref_bias_relu(y, b), dtype)
    np.testing.assert_array_equal(out, y_after)  # in place
    assert out[0, 0] == 0


def test_bias_relu_is_in_place_and_propagates_nan(xp):
    y = xp.asarray(np.array([[-1.0, 0.0, 2.0], [np.nan, -3.0, 0.5]], dtype=np.float32))
    b = xp.asarray(np.array([0.5, 0.0, -1.0], dtype=np.float32))
    assert fused.bias_relu(y, b) is y
    np.testing.assert_array_equal(to_np(y), [[0.0, 0.0, 1.0], [np.nan, 0.0, 0.0]])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
def test_relu_backward(xp, dtype, shape):
    rng = np.random.default_rng(1)
    out = np.maximum(rng.standard_normal(shape), 0).astype(dtype)
    out.flat[::3] = 0  # many exact zeros: gradient 0 there
    grad = rng.standard_normal(shape).astype(dtype)
    dx, _ = run(xp, fused.relu_backward, grad, out)
    assert dx.dtype == dtype and dx.shape == shape
    assert_close(dx, ref_relu_backward(grad, out), dtype)
    # into a given buffer, and in place into grad itself
    dx2, (_, _, buf) = run(xp, fused.relu_backward, grad, out, np.full(shape, 7, dtype))
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(buf, dx)
    _, (grad_after, _) = run(xp, lambda g, o: fused.relu_backward(g, o, dx=g), grad, out)
    np.testing.assert_array_equal(grad_after, dx)


def test_relu_backward_at_exactly_zero_and_at_nan(xp):
    # zero (also -0.0) stops the gradient; a NaN output passes it, as torch's ReLU backward
    out = xp.asarray(np.array([0.0, -0.0, 1.0, 2.5, np.nan], dtype=np.float32))
    grad = xp.asarray(np.array([3.0, -3.0, 4.0, -5.0, 6.0], dtype=np.float32))
    np.testing.assert_array_equal(to_np(fused.relu_backward(grad, out)),
                                  [0.0, 0.0, 4.0, -5.0, 6.0])
    assert fused.relu_backward(grad, out, dx=grad) is grad


# --------------------------------------------------------------------------------------------
# softmax_xent
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
# C > 16 matters: a reduction that covers only half a warp is right for C <= 16 (C = 17 and 33
# also leave lanes without a column in the last stride).
@pytest.mark.parametrize("shape", [(96, 10), (1, 10), (128, 10), (7, 3), (4, 1), (5, 17),
                                   (6, 33), (3, 100)])
@pytest.mark.parametrize("label_dtype", [np.uint8, np.int32, np.int64])
def test_softmax_xent(xp, dtype, shape, label_dtype):
    rng = np.random.default_rng(2)
    n, c = shape
    logits = (3 * rng.standard_normal(shape)).astype(dtype)
    labels = rng.integers(0, c, n).astype(label_dtype)
    (loss, dlogits, correct), _ = run(xp, fused.softmax_xent, logits, labels)
    ref_loss, ref_dlogits, ref_correct = ref_softmax_xent(logits, labels)
    assert loss.dtype == dtype and loss.shape == (n,)
    assert dlogits.dtype == dtype and dlogits.shape == shape
    assert_close(loss, ref_loss, dtype)
    assert_close(dlogits, ref_dlogits, dtype)
    assert correct.shape == () and correct.dtype.kind == "i"
    assert int(correct) == ref_correct


@pytest.mark.parametrize("shape", [(1, 10), (4, 1), (5, 3)])
def test_softmax_xent_leaves_logits_untouched(xp, shape):
    # N == 1 or C == 1: the twin's transposed working copy must still be a copy.
    logits = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    x = xp.asarray(logits.copy())
    fused.softmax_xent(x, xp.asarray(np.zeros(shape[0], dtype=np.int64)))
    np.testing.assert_array_equal(to_np(x), logits)


def test_softmax_xent_correct_stays_on_device(xp):
    logits = xp.asarray(np.eye(4, dtype=np.float32))
    labels = xp.asarray(np.array([0, 1, 3, 3]))
    _, _, correct = fused.softmax_xent(logits, labels)
    assert isinstance(correct, xp.ndarray) and correct.shape == ()
    assert int(correct) == 3


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_xent_is_stable_for_huge_logits(xp, dtype):
    logits = np.array(
        [[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [-1e4, 0.0, 1e4]], dtype=dtype
    )
    labels = np.array([0, 1, 2, 2])
    (loss, dlogits, correct), _ = run(xp, fused.softmax_xent, logits, labels)
    assert np.isfinite(loss).all() and np.isfinite(dlogits).all()
    ref_loss, ref_dlogits, ref_correct = ref_softmax_xent(logits, labels)
    assert_close(loss, ref_loss, dtype)
    assert_close(dlogits, ref_dlogits, dtype)
    assert loss[2] > 1e4  # log 2 + 2e4: large, and still finite
    assert int(correct) == ref_correct == 2  # rows 1 and 2 tie: argmax 0, not the label


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_xent_reports_out_of_range_labels(xp, dtype):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 4)).astype(dtype)
    logits[1] = [0, 0, 0, 9]  # argmax 3: a wrapped label -1 would count as correct
    labels = np.array([0, -1, 4, 2, 1000, 3], dtype=np.int64)
    (loss, dlogits, correct), _ = run(xp, fused.softmax_xent, logits, labels)
    bad = np.array([False, True, True, False, True, False])
    assert np.isnan(loss[bad]).all() and np.isnan(dlogits[bad]).all()
    assert np.isfinite(loss[~bad]).all() and np.isfinite(dlogits[~bad]).all()
    ref_loss, ref_dlogits, ref_correct = ref_softmax_xent(logits, labels)
    assert_close(loss, ref_loss, dtype)
    assert_close(dlogits, ref_dlogits, dtype)
    assert int(correct) == ref_correct
    # Valid rows are untouched by the bad ones: the gradient still uses the full N.
    good_loss, good_dlogits, _ = ref_softmax_xent(logits[~bad], labels[~bad])
    assert_close(loss[~bad], good_loss, dtype)
    assert_close(dlogits[~bad] * len(labels), good_dlogits * (~bad).sum(), dtype)


def test_softmax_xent_unsigned_labels_never_wrap(xp):
    logits = xp.asarray(np.zeros((2, 3), dtype=np.float32))
    labels = xp.asarray(np.array([255, 2**64 - 1], dtype=np.uint64))
    loss, dlogits, correct = fused.softmax_xent(logits, labels)
    assert np.isnan(to_np(loss)).all() and np.isnan(to_np(dlogits)).all()
    assert int(correct) == 0


def test_softmax_xent_argmax_ties_take_first_index(xp):
    logits = np.array([[1, 3, 3, 0], [1, 3, 3, 0], [5, 5, 5, 5], [5, 5, 5, 5]], dtype=np.float32)
    for labels, expected in [([1, 2, 0, 3], 2), ([2, 1, 3, 0], 2), ([1, 1, 0, 0], 4),
                             ([2, 2, 1, 1], 0)]:
        (_, _, correct), _ = run(xp, fused.softmax_xent, logits, np.array(labels))
        assert int(correct) == expected == ref_softmax_xent(logits, np.array(labels))[2]


# --------------------------------------------------------------------------------------------
# sgd_step
# --------------------------------------------------------------------------------------------

P0 = np.array([1.0, -2.0])
G = np.array([0.5, 1.0])


def _steps(xp, dtype, grads, lr, **kwargs):
    param = xp.asarray(P0.astype(dtype))
    buf = xp.zeros(param.shape, dtype=dtype) if kwargs.get("momentum") else None
    for g in grads:
        out = fused.sgd_step(param, xp.asarray(g.astype(dtype)), lr, buf=buf, **kwargs)
        assert out is param
    return to_np(param), None if buf is None else to_np(buf)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("as_array", [False, True], ids=["lr_float", "lr_0d_array"])
def test_sgd_step_hand_computed(xp, dtype, as_array):
    lr = xp.asarray(np.array(0.1, dtype=dtype)) if as_array else 0.1
    # plain: p - 0.1 * g
    assert_close(_steps(xp, dtype, [G], lr)[0], [0.95, -2.1], dtype)
    # momentum 0.9, two steps: buf = g, then 1.9 g; p = 1 - 0.05 - 0.095, -2 - 0.1 - 0.19
    param, buf = _steps(xp, dtype, [G, G], lr, momentum=0.9)
    assert_close(param, [0.855, -2.29], dtype)
    assert_close(buf, [0.95, 1.9], dtype)
    # nesterov: step 1 uses g + 0.9 * g = 1.9 g; step 2 g + 0.9 * 1.9 g = 2.71 g
    assert_close(_steps(xp, dtype, [G], lr, momentum=0.9, nesterov=True)[0], [0.905, -2.19], dtype)
    param, _ = _steps(xp, dtype, [G, G], lr, momentum=0.9, nesterov=True)
    assert_close(param, [0.905 - 0.1355, -2.19 - 0.271], dtype)
    # weight decay 0.1: g = [0.5 + 0.1, 1.0 - 0.2]
    assert_close(_steps(xp, dtype, [G], lr, weight_decay=0.1)[0], [0.94, -2.08], dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"weight_decay": 1e-2},
        {"momentum": 0.9},
        {"momentum": 0.9, "weight_decay": 5e-4},
        {"momentum": 0.5, "nesterov": True},
        {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
    ],
    ids=["plain", "wd", "momentum", "momentum_wd", "nesterov", "nesterov_wd"],
)
def test_sgd_step_matches_reference(xp, dtype, kwargs):
    rng = np.random.default_rng(4)
    shape = (37, 11)
    param = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(3)]
    buf = np.zeros(shape, dtype=dtype)

    def steps(p, b, *gs):
        for g in gs:
            fused.sgd_step(p, g, 0.05, buf=b if kwargs.get("momentum") else None, **kwargs)
        return p

    got, _ = run(xp, steps, param, buf, *grads)
    assert got.dtype == dtype
    assert_close(got, ref_sgd(param, grads, 0.05, **kwargs).reshape(shape), dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_sgd_step_large_param(xp, dtype):
    # Larger than one chunk of the NumPy twin and than one kernel block: every element updated.
    rng = np.random.default_rng(5)
    shape = (301, 233)
    param = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(2)]
    kwargs = dict(momentum=0.9, nesterov=True, weight_decay=1e-2)

    def steps(p, b, *gs):
        for g in gs:
            fused.sgd_step(p, g, 0.05, buf=b, **kwargs)
        return p

    got, (_, buf, *_) = run(xp, steps, param, np.zeros(shape, dtype), *grads)
    # The same formulas on whole float64 arrays.
    p, b = param.astype(np.float64), np.zeros(shape)
    for g in grads:
        g = g + 1e-2 * p
        b = 0.9 * b + g
        p = p - 0.05 * (g + 0.9 * b)
    assert_close(got, p, dtype)
    assert_close(buf, b, dtype)


def test_sgd_step_reads_lr_array_at_each_call(xp):
    # The GPU kernel reads lr through a pointer: a new value in the same array takes effect.
    param = xp.asarray(np.array([1.0], dtype=np.float32))
    grad = xp.asarray(np.array([1.0], dtype=np.float32))
    lr = xp.asarray(np.array(0.1, dtype=np.float32))
    fused.sgd_step(param, grad, lr)
    lr.fill(0.25)
    fused.sgd_step(param, grad, lr)
    assert_close(param, [0.65], np.float32)


@pytest.mark.parametrize("dtype", FLOATS)
def test_grid_stride_loops_wrap(xp, dtype, monkeypatch):
    # At most 3 blocks: every grid-stride loop goes round many times (bias_relu over rows,
    # relu_backward and both SGD kernels over elements); each element must be visited once.
    monkeypatch.setattr(fused, "_MAX_BLOCKS", 3)
    rng = np.random.default_rng(6)
    shape = (37, 301)  # 11137 elements: 3 blocks of 256 threads cover 768 per round
    y, g = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    b = rng.standard_normal(shape[1]).astype(dtype)
    out, _ = run(xp, fused.bias_relu, y, b)
    assert_close(out, np.maximum(y.astype(np.float64) + b, 0), dtype)
    dx, _ = run(xp, fused.relu_backward, g, out)
    assert_close(dx, ref_relu_backward(g, out), dtype)
    p, _ = run(xp, lambda p, g: fused.sgd_step(p, g, 0.5), y, g)
    assert_close(p, y.astype(np.float64) - 0.5 * g, dtype)
    p, (_, _, buf) = run(xp, lambda p, g, b: fused.sgd_step(p, g, 0.5, momentum=0.9, buf=b),
                         y, g, np.ones(shape, dtype))
    assert_close(buf, 0.9 + g.astype(np.float64), dtype)
    assert_close(p, y - 0.5 * (0.9 + g.astype(np.float64)), dtype)


@pytest.mark.gpu
def test_sgd_step_float_lr_reuses_one_device_scalar():
    if not device.gpu_available():
        pytest.skip("no CUDA device")
    xp = device.check_gpu()
    lr1 = fused._lr_on_device(0.1, xp.zeros(3, dtype=np.float32), xp)
    lr2 = fused._lr_on_device(0.1, xp.zeros(5, dtype=np.float32), xp)
    assert lr1 is lr2 and lr1.shape == () and lr1.dtype == np.float32


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_float16_is_rejected_by_name(xp):
    h = xp.zeros((2, 3), dtype=np.float16)
    with pytest.raises(TypeError, match="float16"):
        fused.bias_relu(h, xp.zeros(3, dtype=np.float16))
    with pytest.raises(TypeError, match="float16"):
        fused.relu_backward(h, h)
    with pytest.raises(TypeError, match="float16"):
        fused.softmax_xent(h, xp.zeros(2, dtype=np.int64))
    with pytest.raises(TypeError, match="float16"):
        fused.sgd_step(h, h, 0.1)
    with pytest.raises(TypeError, match="int32"):
        fused.bias_relu(xp.zeros((2, 3), dtype=np.int32), xp.zeros(3, dtype=np.int32))


def test_bad_arguments_are_named(xp):
    y = xp.zeros((2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="b has dtype float64"):
        fused.bias_relu(y, xp.zeros(3, dtype=np.float64))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        fused.bias_relu(y, xp.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        fused.bias_relu(xp.zeros((3, 2), dtype=np.float32).T, xp.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="labels must be integer"):
        fused.softmax_xent(y, xp.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="buf"):
        fused.sgd_step(y, y, 0.1, momentum=0.9)
    with pytest.raises(TypeError, match="lr has dtype float64"):
        fused.sgd_step(y, y, xp.asarray(np.array(0.1)))
    with pytest.raises(ValueError, match="0-d"):
        fused.sgd_step(y, y, xp.asarray(np.array([0.1], dtype=np.float32)))
    with pytest.raises(TypeError, match="NumPy or CuPy array"):
        fused.bias_relu([[1.0]], xp.zeros(1, dtype=np.float32))


@pytest.mark.gpu
def test_mixed_devices_are_rejected():
    if not device.gpu_available():
        pytest.skip("no CUDA device")
    cupy = device.check_gpu()
    gpu, host = cupy.zeros((2, 3), dtype=np.float32), np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match="b is a numpy.ndarray, expected an array of cupy"):
        fused.bias_relu(gpu, np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="out is a numpy.ndarray"):
        fused.relu_backward(gpu, host)
    with pytest.raises(TypeError, match="dx is a numpy.ndarray"):
        fused.relu_backward(gpu, gpu, dx=host)
    with pytest.raises(TypeError, match="labels is a numpy.ndarray"):
        fused.softmax_xent(gpu, np.zeros(2, dtype=np.int64))
    with pytest.raises(TypeError, match="grad is a numpy.ndarray"):
        fused.sgd_step(gpu, host, 0.1)
    with pytest.raises(TypeError, match="lr is a numpy.ndarray"):
        fused.sgd_step(gpu, gpu, np.array(0.1, dtype=np.float32))
    with pytest.raises(TypeError, match="cupy.ndarray, expected an array of numpy"):
        fused.bias_relu(host, cupy.zeros(3, dtype=np.float32))


# --------------------------------------------------------------------------------------------
# Kernel sources: found from anywhere, built by CuPy (static checks: test_kernel_static.py)
# --------------------------------------------------------------------------------------------

ENTRY_POINTS = {
    "bias_relu.cu": ["bias_relu", "relu_backward"],
    "softmax_xent.cu": ["softmax_xent"],
    "sgd.cu": ["sgd_step", "sgd_momentum_step"],
}


def test_kernel_sources_are_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fused.kernel_sources.cache_clear()
    try:
        sources = fused.kernel_sources()
    finally:
        fused.kernel_sources.cache_clear()
    assert sorted(sources) == KERNEL_FILES == sorted(ENTRY_POINTS)
    for name, entries in ENTRY_POINTS.items():
        for entry in entries:
            assert re.search(rf'extern "C" __global__ void {entry}\(', sources[name]), entry


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
def test_every_kernel_builds_with_cupy(dtype):
    if not device.gpu_available():
        pytest.skip("no CUDA device")
    real = "float" if dtype == np.float32 else "double"
    for name, entries in ENTRY_POINTS.items():
        for entry in entries:
            assert fused._kernel(name, entry, real) is fused._kernel(name, entry, real)  # cached
