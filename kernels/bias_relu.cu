// Fused bias + ReLU forward, and the ReLU-mask backward.
//
// Compiled by NVRTC (through CuPy's RawModule), so no host headers. The element type is chosen
// at compile time: -DREAL=float or -DREAL=double (float when unset, so plain nvcc builds it).

#ifndef REAL
#define REAL float
#endif
typedef REAL real;

// y (n, f) C-contiguous, in place: y = max(y + b, 0); b (f,).
// Grid: x covers columns (no modulo per element), y covers rows with a grid-stride loop so any
// n works even past the 65535 limit of gridDim.y.
extern "C" __global__ void bias_relu(real* __restrict__ y, const real* __restrict__ b,
                                     int n, int f)
{
    const int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= f) return;
    const real bias = b[col];
    for (long long row = blockIdx.y; row < n; row += gridDim.y) {
        const long long i = row * f + col;
        const real v = y[i] + bias;
        // `v < 0 ? 0 : v` rather than fmax: a NaN propagates, as numpy.maximum does.
        y[i] = v < (real)0 ? (real)0 : v;
    }
}

// dx = grad * (out != 0), n elements; out is the ReLU's output (>= 0, or NaN). dx may alias
// grad, so neither is __restrict__. The gradient at out == 0 is 0, and it passes where out is
// NaN, as in PyTorch (threshold_backward masks only out <= 0).
extern "C" __global__ void relu_backward(const real* grad, const real* __restrict__ out,
                                         real* dx, long long n)
{
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        // A multiply, not a select, so it matches the NumPy twin `grad * (out != 0)` bit for
        // bit, including a NaN/inf grad where out == 0 (NaN either way).
        dx[i] = grad[i] * (real)(out[i] != (real)0);
    }
}
