"""The CPU CUDA simulator (tests/gpusim): each feature on its own, the real kernels against their
NumPy twins, and deliberately broken copies of the kernels that the simulator or a sanitizer
must catch."""

import functools
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

from tinygrad_mlp import fused

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None, reason="the CUDA simulator needs g++, which is not on PATH"
)

from gpusim import simulator  # noqa: E402
from gpusim.simulator import SimModule, SimulatorError  # noqa: E402

FULL = 0xFFFFFFFF
REALS = [(np.float32, "float"), (np.float64, "double")]


class Dev:
    """A minimal device-array holder: CuPy's ``.data.ptr`` over host memory (plus ``nbytes``,
    which sanitizer launches use to copy the array)."""

    def __init__(self, a, dtype=None):
        self.array = np.array(a, dtype=dtype, order="C")
        self.nbytes = self.array.nbytes
        self.data = SimpleNamespace(ptr=self.array.ctypes.data)


def line_of(code: str, marker: str) -> int:
    """The 1-based line of ``code`` holding ``marker``."""
    return next(i for i, text in enumerate(code.splitlines(), 1) if marker in text)


@functools.cache
def module(code: str, options=(), name="test.cu", sanitizer=None) -> SimModule:
    return SimModule(code, options, name=name, sanitizer=sanitizer)


@functools.cache
def real_kernel(filename: str, name: str, real: str, sanitizer=None):
    return module(fused.kernel_sources()[filename], (f"-DREAL={real}",), filename,
                  sanitizer).get_function(name)


# ---------------------------------------------------------------------------------------------
# Fibers and warp shuffles
# ---------------------------------------------------------------------------------------------

STAMPS = r"""
extern "C" __global__ void stamps(unsigned* counter, unsigned* before, unsigned* after,
                                  int* kept)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const int mine = t * 7 + 3;  // lives on this thread's own stack across the sync
    before[t] = atomicAdd(counter, 1u);
    __syncwarp();
    after[t] = atomicAdd(counter, 1u);
    kept[t] = mine;
}
"""


def test_lanes_interleave_at_warp_primitives():
    # Every lane of a warp reaches __syncwarp before any lane goes past it; a sequential
    # thread-by-thread loop would interleave before/after stamps instead.
    fn = module(STAMPS).get_function("stamps")
    counter, before, after, kept = (Dev(np.zeros(n, np.uint32)) for n in (1, 128, 128, 128))
    kept = Dev(np.zeros(128, np.int32))
    fn((2,), (64,), (counter, before, after, kept))
    b = before.array.reshape(4, 32)
    a = after.array.reshape(4, 32)
    assert (b.max(axis=1) < a.min(axis=1)).all()
    assert (a.max(axis=1)[:-1] < b.min(axis=1)[1:]).all()  # warps run one after another
    assert counter.array[0] == 256
    np.testing.assert_array_equal(kept.array, np.arange(128) * 7 + 3)


BUILTINS = r"""
__device__ __forceinline__ int linear(uint3 i, dim3 n) { return i.x + n.x * (i.y + n.y * i.z); }

extern "C" __global__ void __launch_bounds__(64) where(int* __restrict__ out)
{
    const int thread = linear(threadIdx, blockDim);
    const int t = linear(blockIdx, gridDim) * (blockDim.x * blockDim.y * blockDim.z) + thread;
    const int v[8] = {(int)threadIdx.x, (int)threadIdx.y, (int)threadIdx.z, (int)blockIdx.x,
                      (int)blockIdx.y, (int)blockIdx.z, warpSize,
                      __shfl_sync(0xffffffffu, thread, 0)};  // warps: 32 consecutive ids
    for (int k = 0; k < 8; ++k) out[8 * t + k] = v[k];
}
"""


def test_thread_and_block_indices_in_three_dimensions():
    grid, block = (2, 3, 5), (8, 4, 2)  # no two sizes alike: a swapped axis shows
    out = Dev(np.zeros((30, 64, 8), np.int32))
    module(BUILTINS).get_function("where")(grid, block, (out,))
    bz, by, bx, tz, ty, tx = np.meshgrid(*(np.arange(n) for n in (*grid[::-1], *block[::-1])),
                                         indexing="ij")
    thread = tx + 8 * (ty + 4 * tz)
    expected = np.stack([tx, ty, tz, bx, by, bz, np.full_like(tx, 32), thread // 32 * 32], -1)
    np.testing.assert_array_equal(out.array, expected.reshape(30, 64, 8))


SHUFFLE = r"""
extern "C" __global__ void shuffle(const int* in, int* out, int mode, int b, int width)
{
    const int v = in[threadIdx.x];
    int r;
    if (mode == 0) r = __shfl_sync(0xffffffffu, v, b, width);
    else if (mode == 1) r = __shfl_up_sync(0xffffffffu, v, (unsigned)b, width);
    else if (mode == 2) r = __shfl_down_sync(0xffffffffu, v, (unsigned)b, width);
    else r = __shfl_xor_sync(0xffffffffu, v, b, width);
    out[threadIdx.x] = r;
}

extern "C" __global__ void shuffle64(const double* x, const long long* y, double* ox,
                                     long long* oy, int lane_mask)
{
    ox[threadIdx.x] = __shfl_xor_sync(0xffffffffu, x[threadIdx.x], lane_mask);
    oy[threadIdx.x] = __shfl_xor_sync(0xffffffffu, y[threadIdx.x], lane_mask);
}
"""

MODES = ["idx", "up", "down", "bfly"]


def ptx_source_lane(mode: str, lane: int, b: int, width: int) -> int:
    """The PTX ISA's pseudo-code for shfl.sync, with the c operand CUDA's __shfl*_sync
    intrinsics pass: ((32 - width) << 8) | (0 for up, 0x1f otherwise). Returns the lane whose
    value `lane` receives (its own when the source is out of range)."""
    c = ((32 - width) << 8) | (0 if mode == "up" else 0x1F)
    bval, cval, segmask = b & 0x1F, c & 0x1F, (c >> 8) & 0x1F
    max_lane = (lane & segmask) | (cval & ~segmask)
    min_lane = lane & segmask
    if mode == "up":
        j, pval = lane - bval, lane - bval >= max_lane
    elif mode == "down":
        j, pval = lane + bval, lane + bval <= max_lane
    elif mode == "bfly":
        j, pval = lane ^ bval, (lane ^ bval) <= max_lane
    else:
        j = min_lane | (bval & ~segmask)
        pval = j <= max_lane
    return j if pval else lane


@pytest.mark.parametrize("mode", MODES)
def test_shuffles_follow_the_ptx_rules(mode):
    fn = module(SHUFFLE).get_function("shuffle")
    values = np.arange(64, dtype=np.int32) * 10 + 1000
    for width in (1, 2, 4, 8, 16, 32):
        for b in (0, 1, 2, 3, 5, 8, 15, 16, 17, 31, 32, 33):
            inp, out = Dev(values), Dev(np.zeros(64, np.int32))
            fn((1,), (64,), (inp, out, np.int32(MODES.index(mode)), np.int32(b),
                             np.int32(width)))
            expected = [values[(t & ~31) + ptx_source_lane(mode, t & 31, b, width)]
                        for t in range(64)]
            np.testing.assert_array_equal(out.array, expected, err_msg=f"{mode} b={b} w={width}")


def test_shuffles_match_the_cuda_guide_examples():
    fn = module(SHUFFLE).get_function("shuffle")
    lanes = np.arange(32, dtype=np.int32)

    def run(mode, b, width=32):
        out = Dev(np.zeros(32, np.int32))
        fn((1,), (32,), (Dev(lanes), out, np.int32(MODES.index(mode)), np.int32(b),
                         np.int32(width)))
        return out.array

    np.testing.assert_array_equal(run("idx", 0), np.zeros(32))  # broadcast from lane 0
    np.testing.assert_array_equal(run("idx", 19, 16), np.repeat([3, 19], 16))  # 19 mod 16
    np.testing.assert_array_equal(run("up", 1), np.r_[0, np.arange(31)])  # lane 0 keeps its own
    np.testing.assert_array_equal(run("down", 1), np.r_[np.arange(1, 32), 31])
    np.testing.assert_array_equal(run("down", 2, 8)[:8], [2, 3, 4, 5, 6, 7, 6, 7])
    np.testing.assert_array_equal(run("bfly", 1)[:4], [1, 0, 3, 2])


def test_shuffles_move_64_bit_values():
    fn = module(SHUFFLE).get_function("shuffle64")
    x = Dev(np.arange(32) + 0.25)
    y = Dev(np.arange(32, dtype=np.int64) << 40)
    ox, oy = Dev(np.zeros(32)), Dev(np.zeros(32, np.int64))
    fn((1,), (32,), (x, y, ox, oy, np.int32(5)))
    np.testing.assert_array_equal(ox.array, x.array[np.arange(32) ^ 5])
    np.testing.assert_array_equal(oy.array, y.array[np.arange(32) ^ 5])


VOTE = r"""
extern "C" __global__ void vote(const int* pred, unsigned* ballot, int* any, int* all,
                                unsigned* active)
{
    const int p = pred[threadIdx.x];
    const unsigned m = __activemask();
    ballot[threadIdx.x] = __ballot_sync(0xffffffffu, p);
    any[threadIdx.x] = __any_sync(0xffffffffu, p);
    all[threadIdx.x] = __all_sync(0xffffffffu, p);
    active[threadIdx.x] = m;
}
"""


@pytest.mark.parametrize("pattern", ["none", "some", "every"])
def test_ballot_any_all(pattern):
    pred = {"none": np.zeros(64), "some": np.arange(64) % 3 == 1, "every": np.ones(64)}[pattern]
    ballot, any_, all_, active = (Dev(np.zeros(64, t)) for t in (np.uint32, np.int32, np.int32,
                                                                  np.uint32))
    module(VOTE).get_function("vote")((1,), (64,), (Dev(pred, np.int32), ballot, any_, all_,
                                                     active))
    for w in range(2):
        p = pred[32 * w: 32 * w + 32].astype(bool)
        bits = sum(1 << k for k in range(32) if p[k])
        assert (ballot.array[32 * w: 32 * w + 32] == bits).all()
        assert (any_.array[32 * w: 32 * w + 32] == int(p.any())).all()
        assert (all_.array[32 * w: 32 * w + 32] == int(p.all())).all()
    assert (active.array == FULL).all()


# ---------------------------------------------------------------------------------------------
# Member masks: an exited lane, a lane past the end of the block, lanes outside the mask
# ---------------------------------------------------------------------------------------------

MASKS = r"""
extern "C" __global__ void masked(int* out, int keep, unsigned mask, int lane_mask)
{
    const int lane = threadIdx.x % 32;
    if (lane >= keep) return;
    out[threadIdx.x] = __shfl_xor_sync(mask, (int)threadIdx.x, lane_mask);  // SHUFFLE
}
"""


def run_masked(block, keep, mask, lane_mask=1):
    out = Dev(np.full(block, -1, np.int32))
    module(MASKS, name="masks.cu").get_function("masked")(
        (1,), (block,), (out, np.int32(keep), np.uint32(mask), np.int32(lane_mask)))
    return out.array


def test_full_mask_and_partial_mask_shuffles_work():
    np.testing.assert_array_equal(run_masked(64, 32, FULL), np.arange(64) ^ 1)
    # Only lanes 0-15 remain and the mask names exactly them: valid CUDA.
    out = run_masked(32, 16, 0x0000FFFF)
    np.testing.assert_array_equal(out[:16], np.arange(16) ^ 1)
    assert (out[16:] == -1).all()


def test_mask_naming_an_exited_lane_is_an_error_with_file_and_line():
    line = line_of(MASKS, "SHUFFLE")
    with pytest.raises(SimulatorError, match=rf"masks\.cu:{line}: __shfl_xor_sync: mask "
                                             r"0xffffffff names lane 16, which has exited"):
        run_masked(32, 16, FULL)


def test_mask_naming_a_lane_past_the_end_of_the_block_is_an_error():
    line = line_of(MASKS, "SHUFFLE")
    with pytest.raises(SimulatorError, match=rf"masks\.cu:{line}: .*names lane 16, which lies "
                                             r"past the end of the block"):
        run_masked(48, 32, FULL)


def test_shuffle_reading_a_lane_outside_the_mask_is_an_error():
    with pytest.raises(SimulatorError, match=r"lane 0 reads lane 16, which is not in the mask"):
        run_masked(32, 32, 0x0000FFFF, lane_mask=16)


def test_mask_without_the_calling_lane_is_an_error():
    with pytest.raises(SimulatorError, match=r"does not include the calling lane 0"):
        run_masked(32, 32, 0xFFFFFFFE)


def test_lanes_with_different_masks_are_an_error():
    code = MASKS.replace("__shfl_xor_sync(mask,", "__shfl_xor_sync(lane == 5 ? 0xffffu : mask,")
    with pytest.raises(SimulatorError, match=r"pass different masks 0xffffffff and 0x0000ffff"):
        module(code).get_function("masked")((1,), (32,), (
            Dev(np.zeros(32, np.int32)), np.int32(32), np.uint32(FULL), np.int32(1)))


# ---------------------------------------------------------------------------------------------
# Barriers and divergence
# ---------------------------------------------------------------------------------------------

BARRIERS = r"""
extern "C" __global__ void split_syncwarp(int* out)
{
    if (threadIdx.x % 2) __syncwarp();  // ODD
    else __syncwarp();                  // EVEN
    out[threadIdx.x] = 1;
}

extern "C" __global__ void split_syncthreads(int* out)
{
    if (threadIdx.x < 64) __syncthreads();  // LOW
    else __syncthreads();                   // HIGH
    out[threadIdx.x] = 1;
}

extern "C" __global__ void shuffle_vs_barrier(int* out)
{
    if (threadIdx.x == 3) __syncthreads();  // LONE BARRIER
    else out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1, 1);  // WARP SHUFFLE
}

extern "C" __global__ void exit_then_sync(int* out)
{
    if (threadIdx.x >= 40) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}

extern "C" __global__ void block_sum(const float* x, float* out, int n, int with_barrier)
{
    __shared__ float s[256];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    s[threadIdx.x] = i < n ? x[i] : 0.f;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k /= 2) {
        if (threadIdx.x < k) s[threadIdx.x] += s[threadIdx.x + k];
        if (with_barrier) __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

extern "C" __global__ void reverse_in_block(int* out)
{
    extern __shared__ int buf[];
    buf[threadIdx.x] = blockIdx.x * 1000 + threadIdx.x;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = buf[blockDim.x - 1 - threadIdx.x];
}
"""


def barriers(name):
    return module(BARRIERS, name="barriers.cu").get_function(name)


def test_lanes_at_different_syncwarp_calls_are_divergence_errors():
    odd, even = line_of(BARRIERS, "// ODD"), line_of(BARRIERS, "// EVEN")
    with pytest.raises(SimulatorError, match=rf"barriers\.cu:{even}: __syncwarp: divergence: "
                                             rf"lane 0 .* lane 1 .*barriers\.cu:{odd}"):
        barriers("split_syncwarp")((1,), (32,), (Dev(np.zeros(32, np.int32)),))


def test_threads_at_different_syncthreads_calls_are_divergence_errors():
    low, high = line_of(BARRIERS, "// LOW"), line_of(BARRIERS, "// HIGH")
    with pytest.raises(SimulatorError, match=rf"barriers\.cu:{high}: __syncthreads: divergence"
                                             rf".*barriers\.cu:{low}"):
        barriers("split_syncthreads")((1,), (128,), (Dev(np.zeros(128, np.int32)),))


def test_a_lane_at_syncthreads_while_its_warp_shuffles_is_an_error():
    line = line_of(BARRIERS, "// WARP SHUFFLE")
    with pytest.raises(SimulatorError, match=rf"barriers\.cu:{line}: __shfl_down_sync: "
                                             r"divergence: .*lane 3 waits at __syncthreads"):
        barriers("shuffle_vs_barrier")((1,), (32,), (Dev(np.zeros(32, np.int32)),))


def test_exited_threads_count_as_arrived_at_syncthreads():
    # PTX: "exit ... if the exiting threads are holding up the barrier, the barrier is released".
    out = Dev(np.zeros(64, np.int32))
    barriers("exit_then_sync")((1,), (64,), (out,))
    np.testing.assert_array_equal(out.array, (np.arange(64) < 40).astype(np.int32))


def test_static_shared_memory_and_syncthreads_reduce_per_block():
    x = np.arange(1000, dtype=np.float32) % 17  # small integers: float sums are exact
    out = Dev(np.zeros(4, np.float32))
    barriers("block_sum")((4,), (256,), (Dev(x), out, np.int32(1000), np.int32(1)))
    np.testing.assert_array_equal(out.array, np.pad(x, (0, 24)).reshape(4, 256).sum(axis=1))
    # Without the barrier in the loop, thread 0 runs ahead of the others: a wrong sum, as on a
    # GPU (where the race makes it nondeterministic instead).
    barriers("block_sum")((4,), (256,), (Dev(x), out, np.int32(1000), np.int32(0)))
    assert not np.array_equal(out.array, np.pad(x, (0, 24)).reshape(4, 256).sum(axis=1))


def test_dynamic_shared_memory_is_per_block_and_sized_by_shared_mem():
    out = Dev(np.zeros(3 * 96, np.int32))
    barriers("reverse_in_block")((3,), (96,), (out,), shared_mem=96 * 4)
    expected = [b * 1000 + 95 - t for b in range(3) for t in range(96)]
    np.testing.assert_array_equal(out.array, expected)
    with pytest.raises(SimulatorError, match="shared_mem must be 0..49152 bytes"):
        barriers("reverse_in_block")((1,), (96,), (out,), shared_mem=49153)


# ---------------------------------------------------------------------------------------------
# Atomics, floating point, faults
# ---------------------------------------------------------------------------------------------

ATOMICS = r"""
extern "C" __global__ void atomics(float* f, double* d, int* i, unsigned* u,
                                   unsigned long long* ull, int* mx, int* cas)
{
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(f, 1.0f);
    atomicAdd(d, 0.5);
    atomicAdd(i, -1);
    atomicAdd(u, 2u);
    atomicAdd(ull, 3ull);
    atomicMax(mx, t);
    atomicCAS(cas, 0, t + 1);  // only the first thread's swap succeeds
}
"""


def test_atomics():
    bufs = [Dev(np.zeros(1, t)) for t in (np.float32, np.float64, np.int32, np.uint32,
                                          np.uint64, np.int32, np.int32)]
    module(ATOMICS).get_function("atomics")((3,), (100,), tuple(bufs))
    assert [b.array[0] for b in bufs] == [300.0, 150.0, -300, 600, 900, 299, 1]


DENORMALS = r"""
extern "C" __global__ void multiply(float* x, double* y)
{
    x[0] = x[1] * x[2];
    x[3] = x[4] * x[5];
    y[0] = y[1] * y[2];
}
"""


def run_multiply(options):
    # x[0] = 1e-20 * 1e-20: a denormal result; x[3] = denormal input * 1e10.
    x = Dev(np.array([0, 1e-20, 1e-20, 0, 1e-40, 1e10], np.float32))
    y = Dev(np.array([0, 1e-160, 1e-160]))
    module(DENORMALS, options).get_function("multiply")((1,), (1,), (x, y))
    return x.array, y.array


def test_denormals_follow_nvrtc_ftz_option():
    # NVRTC's default is -ftz=false (it emits mul.f32, not mul.ftz.f32): denormals are kept.
    x, y = run_multiply(())
    assert x[0] == np.float32(1e-20) * np.float32(1e-20) != 0
    assert x[3] == np.float32(1e-40) * np.float32(1e10) != 0
    assert y[0] != 0
    for opt in ("-ftz=true", "--use_fast_math"):
        x, _ = run_multiply((opt,))
        assert x[0] == 0 and x[3] == 0  # denormal results and inputs flushed, as mul.ftz.f32


def test_invalid_memory_access_is_an_error_not_a_crash():
    code = 'extern "C" __global__ void wild(int* p) { p[threadIdx.x] = 1; }'
    null = SimpleNamespace(data=SimpleNamespace(ptr=0))
    with pytest.raises(SimulatorError, match="wild: invalid memory access at address"):
        module(code).get_function("wild")((1,), (32,), (null,))
    out = Dev(np.zeros(32, np.int32))  # and the simulator still works afterwards
    module(code).get_function("wild")((1,), (32,), (out,))
    assert (out.array == 1).all()


def test_trap_is_an_error_with_file_and_line():
    code = r"""
    extern "C" __global__ void checked(const int* x)
    {
        if (x[threadIdx.x] < 0) __trap();  // TRAP
    }
    """
    fn = module(code, name="trap.cu").get_function("checked")
    fn((1,), (32,), (Dev(np.zeros(32, np.int32)),))
    with pytest.raises(SimulatorError, match=rf"trap\.cu:{line_of(code, 'TRAP')}: __trap\(\) "
                                             r"called \(block \(0,0,0\), thread \(7,0,0\)\)"):
        fn((1,), (32,), (Dev(np.where(np.arange(32) == 7, -1, 0), np.int32),))


def test_launches_from_several_python_threads_stay_correct():
    fn = module(STAMPS).get_function("stamps")

    def launch(_):
        counter, before, after = (Dev(np.zeros(n, np.uint32)) for n in (1, 64, 64))
        kept = Dev(np.zeros(64, np.int32))
        for _ in range(20):
            fn((1,), (64,), (counter, before, after, kept))
        return int(counter.array[0]), kept.array.copy()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(launch, range(8)))
    for count, kept in results:
        assert count == 20 * 128
        np.testing.assert_array_equal(kept, np.arange(64) * 7 + 3)


def test_stack_overflow_is_an_error_not_a_crash():
    code = r"""
    extern "C" __global__ void deep(int* out)
    {
        volatile int big[40000];  // 160 KB of locals: past the 64 KiB fiber stack
        big[threadIdx.x * 1000] = 1;
        out[threadIdx.x] = big[threadIdx.x * 1000];
    }
    """
    with pytest.raises(SimulatorError, match=r"deep: stack overflow .* thread \(0,0,0\)"):
        module(code).get_function("deep")((1,), (2,), (Dev(np.zeros(2, np.int32)),))


# ---------------------------------------------------------------------------------------------
# Argument packing (CuPy's rules) and its checks against the C signature
# ---------------------------------------------------------------------------------------------

PACK = r"""
extern "C" __global__ void pack(long long* out, int a, long long b, float c, double d,
                                unsigned char e, bool f)
{
    out[0] = a; out[1] = b; out[2] = (long long)c; out[3] = (long long)d; out[4] = e;
    out[5] = f;
}
"""

GOOD = (np.int32(-7), np.int64(1 << 40), np.float32(3), 4.0, np.uint8(255), np.bool_(True))


def pack(*scalars, out=None):
    out = out if out is not None else Dev(np.zeros(6, np.int64))
    module(PACK, name="pack.cu").get_function("pack")(1, 1, (out, *scalars))
    return out.array


def test_arguments_packed_as_cupy_does():
    np.testing.assert_array_equal(pack(*GOOD), [-7, 1 << 40, 3, 4, 255, 1])
    # A Python int is an int64, a float a float64; a size-1 NumPy array passes by value.
    np.testing.assert_array_equal(pack(np.array([5], np.int32), 9, *GOOD[2:]),
                                  [5, 9, 3, 4, 255, 1])


@pytest.mark.parametrize("index, value, expect", [
    (0, np.int64(1), r"argument 1 \(`int a`\) is int \(4 bytes; pass numpy.int32\), got "
                     r"numpy.int64"),
    (0, 1, r"argument 1 \(`int a`\) is int .* got builtins.int packed as numpy.int64"),
    (0, np.uint32(1), r"argument 1 \(`int a`\) is int .* numpy.uint32"),
    (2, 3.0, r"argument 3 \(`float c`\) is float .* got builtins.float packed as numpy.float64"),
    (3, np.float32(4), r"argument 4 \(`double d`\) is double .* numpy.float32"),
    (5, True, r"argument 6 \(`bool f`\) is bool .* packed as numpy.int64"),  # bool is an int
    (0, Dev(np.zeros(1, np.int32)), r"argument 1 \(`int a`\) is a scalar \(int\), got a device "
                                   r"array"),
    (0, np.zeros(2, np.int32), r"argument 1 \(`int a`\): a numpy.ndarray of shape \(2,\) "
                               r"cannot be passed by value"),
    (0, "1", r"argument 1 \(`int a`\): unsupported argument type str"),
])
def test_argument_type_errors_name_the_kernel_and_parameter(index, value, expect):
    args = list(GOOD)
    args[index] = value
    with pytest.raises(SimulatorError, match=r"pack\.cu: kernel pack: " + expect):
        pack(*args)


def test_pointer_and_count_errors():
    with pytest.raises(SimulatorError, match=r"argument 0 \(`long long\* out`\) is a pointer"):
        pack(*GOOD, out=np.int64(0))
    with pytest.raises(SimulatorError, match=r"kernel pack: takes 7 arguments \(long long\* out,"
                                             r" int a, .*\), got 6"):
        pack(*GOOD[:-1])


def test_launch_configuration_errors():
    fn = module(PACK, name="pack.cu").get_function("pack")
    args = (Dev(np.zeros(6, np.int64)), *GOOD)
    for grid, block, expect in [
        (0, 1, r"grid \(0,\) is an invalid configuration"),
        (1, (1025,), "invalid configuration"),
        (1, (32, 32, 2), r"has 2048 threads; the limit is 1024"),
        (1, (1, 1, 1, 1), "a tuple of 1 to 3 ints"),
        ((1, 65536), 1, "invalid configuration"),
    ]:
        with pytest.raises(SimulatorError, match=expect):
            fn(grid, block, args)


def test_unknown_kernel_option_and_build_errors():
    mod = module(PACK, name="pack.cu")
    with pytest.raises(SimulatorError, match=r"pack\.cu: no kernel named 'packs' .*: pack\)"):
        mod.get_function("packs")
    with pytest.raises(SimulatorError, match="unsupported NVRTC option '--frobnicate'"):
        SimModule(PACK, ("--frobnicate",))
    with pytest.raises(SimulatorError, match=r"(?s)could not compile broken\.cu:.*broken\.cu:2"):
        SimModule('extern "C" __global__ void k(int n)\n{ undeclared(n); }', name="broken.cu")


def test_builds_are_cached_by_source_and_options():
    code = f"// {uuid.uuid4()}\n" + PACK  # a source no earlier run has built
    before = simulator.compile_count
    first = SimModule(code, ("-DUNUSED=1",))
    assert simulator.compile_count == before + 1
    libs = list(simulator.cache_dir().glob("kernel-plain-*.so"))
    mtimes = {p: p.stat().st_mtime_ns for p in libs}
    second = SimModule(code, ("-DUNUSED=1",))
    assert simulator.compile_count == before + 1  # no second g++ run
    assert {p: p.stat().st_mtime_ns for p in libs} == mtimes
    SimModule(code, ("-DUNUSED=2",))
    assert simulator.compile_count == before + 2  # other options: another build
    out = Dev(np.zeros(6, np.int64))
    second.get_function("pack")(1, 1, (out, *GOOD))
    assert out.array[0] == -7 and first.get_function("pack") is not None


# ---------------------------------------------------------------------------------------------
# The real kernels against their NumPy twins (float and double, odd sizes, wrapping loops)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, real", REALS)
@pytest.mark.parametrize("n, f, rows_grid", [(1, 1, 1), (5, 3, 5), (37, 300, 37), (37, 300, 4),
                                             (128, 512, 128)])
def test_bias_relu_kernel_equals_numpy_twin(dtype, real, n, f, rows_grid):
    rng = np.random.default_rng(n * f)
    y = rng.standard_normal((n, f)).astype(dtype)
    y[0, 0] = np.nan
    b = rng.standard_normal(f).astype(dtype)
    dev = Dev(y)
    # rows_grid < n forces the grid-stride loop over rows to wrap.
    real_kernel("bias_relu.cu", "bias_relu", real)(
        (-(-f // 256), rows_grid), (256,), (dev, Dev(b), np.int32(n), np.int32(f)))
    np.testing.assert_array_equal(dev.array, fused.bias_relu(y.copy(), b))


@pytest.mark.parametrize("dtype, real", REALS)
@pytest.mark.parametrize("n, blocks", [(1, 1), (1000, 4), (1000, 1), (65536, 256)])
def test_relu_backward_kernel_equals_numpy_twin(dtype, real, n, blocks):
    rng = np.random.default_rng(n)
    grad = rng.standard_normal(n).astype(dtype)
    out = np.maximum(rng.standard_normal(n), 0).astype(dtype)
    grad[:3] = [np.nan, np.inf, 1.0][:n]
    out[:3] = 0.0
    dx = Dev(np.zeros(n, dtype))
    real_kernel("bias_relu.cu", "relu_backward", real)(
        (blocks,), (256,), (Dev(grad), Dev(out), dx, np.int64(n)))
    with np.errstate(invalid="ignore"):  # nan/inf * 0, on purpose
        expected = fused.relu_backward(grad, out)
    np.testing.assert_array_equal(dx.array, expected)


def run_softmax_xent(fn, logits, labels, block=128):
    n, c = logits.shape
    loss, dlogits = Dev(np.zeros(n, logits.dtype)), Dev(np.zeros((n, c), logits.dtype))
    correct = Dev(np.zeros((), np.uint64))
    rows = block // 32
    fn((max(1, -(-n // rows)),), (block,), (
        Dev(logits), Dev(labels, np.int64), loss, dlogits, correct, np.int32(n), np.int32(c),
        logits.dtype.type(1.0 / n)))
    return loss.array, dlogits.array, int(correct.array)


def assert_matches_twin(got, logits, labels):
    with np.errstate(invalid="ignore"):  # the all -inf row: -inf - -inf, on purpose
        loss, dlogits, correct = fused.softmax_xent(logits, labels)
    tol = 1e-5 if logits.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(got[0], loss, rtol=tol, atol=tol)
    np.testing.assert_allclose(got[1], dlogits, rtol=tol, atol=tol)
    assert got[2] == int(correct)


def softmax_inputs(n, c, dtype, seed=0):
    rng = np.random.default_rng(seed + 100 * c + n)
    logits = (rng.standard_normal((n, c)) * 3).astype(dtype)
    labels = rng.integers(0, c, n)
    labels[: n // 2] = logits[: n // 2].argmax(axis=1)  # some rows right, so `correct` counts
    return logits, labels


@pytest.mark.parametrize("dtype, real", REALS)
@pytest.mark.parametrize("n, c", [(1, 1), (7, 10), (37, 16), (37, 17), (13, 20), (9, 33),
                                  (5, 70)])
def test_softmax_xent_kernel_equals_numpy_twin(dtype, real, n, c):
    logits, labels = softmax_inputs(n, c, dtype)
    if n > 4:
        labels[3], labels[4] = -1, c  # reported as NaN rows, never followed
        logits[2, :] = -np.inf if c > 1 else 0  # an all -inf row: argmax 0, as numpy
    fn = real_kernel("softmax_xent.cu", "softmax_xent", real)
    assert_matches_twin(run_softmax_xent(fn, logits, labels), logits, labels)


SGD_CASES = [(n, blocks, *opts) for n, blocks in [(1, 1), (1001, 2)]
             for opts in [(0.0, False, 0.0), (0.0, False, 1e-3), (0.9, False, 0.0),
                          (0.9, True, 5e-4)]] + [(784 * 512, 1568, 0.0, False, 0.0)]


@pytest.mark.parametrize("dtype, real", REALS)
@pytest.mark.parametrize("n, blocks, momentum, nesterov, wd", SGD_CASES)
def test_sgd_kernels_equal_numpy_twin(dtype, real, n, blocks, momentum, nesterov, wd):
    rng = np.random.default_rng(n)
    param, grad = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    buf = rng.standard_normal(n).astype(dtype)
    lr = 0.05
    p_dev, buf_dev, lr_dev = Dev(param), Dev(buf), Dev(np.array(lr, dtype))
    scalar = np.dtype(dtype).type
    if momentum:
        real_kernel("sgd.cu", "sgd_momentum_step", real)((blocks,), (256,), (
            p_dev, Dev(grad), buf_dev, lr_dev, scalar(momentum), scalar(wd),
            np.int32(nesterov), np.int64(n)))
    else:
        real_kernel("sgd.cu", "sgd_step", real)((blocks,), (256,), (
            p_dev, Dev(grad), lr_dev, scalar(wd), np.int64(n)))
    expected_buf = buf.copy()
    expected = fused.sgd_step(param.copy(), grad, lr, momentum=momentum, buf=expected_buf,
                              nesterov=nesterov, weight_decay=wd)
    # The twin's large updates run as BLAS axpy passes, which may fuse the multiply-add (as a
    # GPU build with NVRTC's default --fmad=true does): equal to the last bit or two.
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(p_dev.array, expected, rtol=2 * eps, atol=eps)
    if momentum:
        np.testing.assert_allclose(buf_dev.array, expected_buf, rtol=2 * eps, atol=eps)


# ---------------------------------------------------------------------------------------------
# Proof that it can fail: broken copies of the real kernels, each caught
# ---------------------------------------------------------------------------------------------

SOFTMAX = fused.kernel_sources()["softmax_xent.cu"]


def broken(source: str, old: str, new: str, count: int = 1) -> str:
    assert source.count(old) == count, f"the kernel no longer contains {old!r}"
    return source.replace(old, new)


def test_injected_lanes_returning_before_a_full_mask_shuffle():
    code = broken(SOFTMAX, "if (row >= n) return;", "if (row >= n || lane >= c) return;")
    fn = module(code, ("-DREAL=float",), "softmax_xent.cu").get_function("softmax_xent")
    logits, labels = softmax_inputs(6, 10, np.float32)
    line = line_of(SOFTMAX, "const real ov = __shfl_xor_sync")
    with pytest.raises(SimulatorError, match=rf"softmax_xent\.cu:{line}: __shfl_xor_sync: mask "
                                             r"0xffffffff names lane 10, which has exited"):
        run_softmax_xent(fn, logits, labels)


def test_injected_block_size_not_a_multiple_of_32():
    fn = real_kernel("softmax_xent.cu", "softmax_xent", "float")
    logits, labels = softmax_inputs(8, 10, np.float32)
    with pytest.raises(SimulatorError, match=r"softmax_xent\.cu:\d+: __shfl_xor_sync: mask "
                                             r"0xffffffff names lane 16, which lies past the end"):
        run_softmax_xent(fn, logits, labels, block=48)


def test_injected_wrong_scalar_type():
    fn = real_kernel("softmax_xent.cu", "softmax_xent", "float")
    logits, labels = softmax_inputs(4, 10, np.float32)
    args = [Dev(logits), Dev(labels, np.int64), Dev(np.zeros(4, np.float32)),
            Dev(np.zeros((4, 10), np.float32)), Dev(np.zeros((), np.uint64)), np.int32(4),
            np.int32(10), np.float32(0.25)]
    for i, wrong, expect in [(5, np.int64(4), "`int n`"), (6, 10, "`int c`"),
                             (7, 0.25, "`real inv_n`")]:
        bad = list(args)
        bad[i] = wrong
        with pytest.raises(SimulatorError, match=rf"kernel softmax_xent: argument {i} \({expect}"):
            fn((1,), (128,), tuple(bad))


HALF_WARP = broken(SOFTMAX, "for (int offset = WARP_SIZE / 2;", "for (int offset = 8;", count=2)


@pytest.mark.parametrize("dtype, real", REALS)
def test_injected_reduction_over_half_a_warp_shows_only_past_16_classes(dtype, real):
    fn = module(HALF_WARP, (f"-DREAL={real}",), "softmax_xent.cu").get_function("softmax_xent")
    for c in (10, 16):  # every column sits in lanes 0-15: the broken reduction still agrees
        logits, labels = softmax_inputs(9, c, dtype)
        assert_matches_twin(run_softmax_xent(fn, logits, labels), logits, labels)
    logits, labels = softmax_inputs(9, 20, dtype)  # columns 16-19 live in lanes 16-19
    with pytest.raises(AssertionError):
        assert_matches_twin(run_softmax_xent(fn, logits, labels), logits, labels)


def softmax_under(sanitizer, code, logits, labels):
    fn = module(code, ("-DREAL=float",), "softmax_xent.cu", sanitizer).get_function(
        "softmax_xent")
    return run_softmax_xent(fn, logits, labels)


@pytest.mark.slow
def test_injected_non_atomic_counter_is_a_thread_sanitizer_race():
    logits, labels = softmax_inputs(16, 10, np.float32)
    labels[:] = logits.argmax(axis=1)  # every row correct: every warp's lane 0 counts
    got = softmax_under("thread", SOFTMAX, logits, labels)  # the real kernel: clean
    assert got[2] == 16
    code = broken(SOFTMAX, "atomicAdd(correct, 1ull);", "*correct += 1ull;")
    line = line_of(code, "*correct += 1ull;")
    with pytest.raises(SimulatorError, match=rf"(?s)ThreadSanitizer: data race.*"
                                             rf"softmax_xent\.cu:{line}"):
        softmax_under("thread", code, logits, labels)


@pytest.mark.slow
def test_thread_sanitizer_sees_races_between_blocks():
    # Thread 0 of every block bumps one counter; blocks run one after another here, so only the
    # sanitizer (each block's threads its own fibers, nothing ordering blocks) can see it.
    code = r"""
    extern "C" __global__ void count_blocks(unsigned* counter)
    {
        __syncwarp();
        if (threadIdx.x == 0) *counter += 1;  // RACE
    }
    """
    counter = Dev(np.zeros(1, np.uint32))
    fn = module(code, name="blocks.cu", sanitizer="thread").get_function("count_blocks")
    with pytest.raises(SimulatorError, match=rf"(?s)data race.*blocks\.cu:{line_of(code, 'RACE')}"):
        fn((4,), (32,), (counter,))


@pytest.mark.slow
def test_injected_out_of_bounds_label_read_is_an_address_sanitizer_error():
    logits, labels = softmax_inputs(8, 10, np.float32)
    labels[-1] = 10  # one past the last class of the last row: the first byte after logits
    loss, _, _ = softmax_under("address", SOFTMAX, logits, labels)  # the real kernel: clean
    assert np.isnan(loss[-1]) and not np.isnan(loss[:-1]).any()
    code = broken(SOFTMAX, "const bool valid = label >= 0 && label < c;",
                  "const bool valid = true;")
    line = line_of(code, "loss[row] = valid ? real_log(sum) - (x[lab] - m)")
    with pytest.raises(SimulatorError, match=rf"(?s)AddressSanitizer: heap-buffer-overflow.*"
                                             rf"READ of size 4.*softmax_xent\.cu:{line}"):
        softmax_under("address", code, logits, labels)


@pytest.mark.slow
def test_out_of_bounds_write_is_an_address_sanitizer_error():
    code = broken(fused.kernel_sources()["bias_relu.cu"], "if (col >= f) return;", "")
    fn = module(code, ("-DREAL=double",), "bias_relu.cu", "address").get_function("bias_relu")
    y, b = Dev(np.ones((3, 300))), Dev(np.ones(512))  # b is wide enough; y is not
    line = line_of(code, "const real v = y[i] + bias;")  # row 2 reads past the end first
    with pytest.raises(SimulatorError, match=rf"(?s)heap-buffer-overflow.*"
                                             rf"READ of size 8.*bias_relu\.cu:{line}"):
        fn((2, 3), (256,), (y, b, np.int32(3), np.int32(300)))


@pytest.mark.slow
def test_sanitizer_launch_copies_results_back():
    y = np.random.default_rng(0).standard_normal((5, 40))
    b = np.linspace(-1, 1, 40)
    dev = Dev(y)
    real_kernel("bias_relu.cu", "bias_relu", "double", "address")(
        (1, 5), (64,), (dev, Dev(b), np.int32(5), np.int32(40)))
    np.testing.assert_array_equal(dev.array, np.maximum(y + b, 0))

