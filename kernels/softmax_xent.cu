// Fused softmax + cross-entropy: per-row loss, the gradient (softmax - onehot) / N, and the
// number of rows whose argmax equals the label, in one launch.
//
// One warp per row (C is small: 10 for MNIST), columns strided over the 32 lanes so any C works;
// max/argmax and sum are reduced with warp shuffles, so no shared memory and no __syncthreads.
// Compiled by NVRTC: no host headers. -DREAL=float or -DREAL=double (float when unset).

#ifndef REAL
#define REAL float
#endif
typedef REAL real;

#define WARP_SIZE 32
#define FULL_MASK 0xffffffffu

// Overloads so one source serves both precisions (expf/logf for float, exp/log for double).
__device__ __forceinline__ float real_exp(float x) { return expf(x); }
__device__ __forceinline__ double real_exp(double x) { return exp(x); }
__device__ __forceinline__ float real_log(float x) { return logf(x); }
__device__ __forceinline__ double real_log(double x) { return log(x); }

// INFINITY / NAN without <cmath>: bit patterns, widened to double when REAL is double.
__device__ __forceinline__ real real_inf() { return (real)__int_as_float(0x7f800000); }
__device__ __forceinline__ real real_nan() { return (real)__int_as_float(0x7fc00000); }

// The argmax order of numpy.argmax: NaN wins (the first NaN), then the larger value, and a tie
// goes to the smaller index. Returns true when (av, ai) should replace (bv, bi).
__device__ __forceinline__ bool better(real av, int ai, real bv, int bi)
{
    const bool a_nan = av != av;
    const bool b_nan = bv != bv;
    if (a_nan || b_nan) return a_nan && (!b_nan || ai < bi);
    return av > bv || (av == bv && ai < bi);
}

// logits (n, c), labels (n,) int64, loss (n,), dlogits (n, c); *correct must be zeroed before the
// launch. Launch with blockDim.x a multiple of 32; rows_per_block = blockDim.x / 32.
// A label outside [0, c) is reported, never followed: its row's loss and dlogits are NaN, the
// logits are not read at that index, and the row is not counted as correct.
extern "C" __global__ void softmax_xent(const real* __restrict__ logits,
                                        const long long* __restrict__ labels,
                                        real* __restrict__ loss,
                                        real* __restrict__ dlogits,
                                        unsigned long long* __restrict__ correct,
                                        int n, int c, real inv_n)
{
    const int lane = threadIdx.x % WARP_SIZE;
    const long long row = (long long)blockIdx.x * (blockDim.x / WARP_SIZE)
                          + threadIdx.x / WARP_SIZE;
    // `row` is the same for all lanes of a warp, so a warp leaves whole and the full-mask
    // shuffles below always see all 32 lanes.
    if (row >= n) return;
    const real* x = logits + row * c;
    real* dx = dlogits + row * c;

    // Pass 1: max and argmax. Lanes with no column keep (-inf, INT_MAX), which every real
    // column beats, so an all -inf row still gives index 0 as numpy does.
    real best = -real_inf();
    int best_i = 0x7fffffff;
    for (int j = lane; j < c; j += WARP_SIZE) {
        const real v = x[j];
        if (better(v, j, best, best_i)) { best = v; best_i = j; }
    }
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        const real ov = __shfl_xor_sync(FULL_MASK, best, offset);
        const int oi = __shfl_xor_sync(FULL_MASK, best_i, offset);
        if (better(ov, oi, best, best_i)) { best = ov; best_i = oi; }
    }
    const real m = best;  // subtracting the max keeps exp() <= 1: finite for logits of 1e4

    // Pass 2: sum of exp(x - max).
    real sum = 0;
    for (int j = lane; j < c; j += WARP_SIZE) sum += real_exp(x[j] - m);
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2)
        sum += __shfl_xor_sync(FULL_MASK, sum, offset);

    const long long label = labels[row];
    const bool valid = label >= 0 && label < c;
    const int lab = valid ? (int)label : -1;

    // Pass 3: gradient; the exp is recomputed rather than kept, since c is unbounded.
    const real inv_sum = (real)1 / sum;
    for (int j = lane; j < c; j += WARP_SIZE) {
        const real p = real_exp(x[j] - m) * inv_sum;
        dx[j] = valid ? (p - (j == lab ? (real)1 : (real)0)) * inv_n : real_nan();
    }
    if (lane == 0) {
        // loss = logsumexp(x) - x[label] = log(sum) - (x[label] - max)
        loss[row] = valid ? real_log(sum) - (x[lab] - m) : real_nan();
        if (valid && best_i == lab) atomicAdd(correct, 1ull);
    }
}
