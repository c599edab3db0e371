// In-place SGD updates with PyTorch's formulas (dampening 0), one pass over each parameter.
//
// lr is read from device memory through a pointer, not passed by value, so a captured CUDA graph
// sees a new learning rate without re-capture. momentum and weight_decay are by value: they are
// fixed for the life of an optimizer. Compiled by NVRTC: no host headers.
// -DREAL=float or -DREAL=double (float when unset).

#ifndef REAL
#define REAL float
#endif
typedef REAL real;

// param -= lr * (grad + weight_decay * param), n elements.
extern "C" __global__ void sgd_step(real* __restrict__ param, const real* __restrict__ grad,
                                    const real* __restrict__ lr, real weight_decay, long long n)
{
    const real rate = *lr;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const real p = param[i];
        const real g = grad[i] + weight_decay * p;
        param[i] = p - rate * g;
    }
}

// g = grad + weight_decay * param; buf = momentum * buf + g;
// g = g + momentum * buf if nesterov else buf; param -= lr * g.
// buf starts at zeros, which gives PyTorch's buf = g on the first step (dampening is 0).
extern "C" __global__ void sgd_momentum_step(real* __restrict__ param,
                                             const real* __restrict__ grad,
                                             real* __restrict__ buf,
                                             const real* __restrict__ lr,
                                             real momentum, real weight_decay, int nesterov,
                                             long long n)
{
    const real rate = *lr;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const real p = param[i];
        real g = grad[i] + weight_decay * p;
        const real v = momentum * buf[i] + g;
        buf[i] = v;
        g = nesterov ? g + momentum * v : v;
        param[i] = p - rate * g;
    }
}
