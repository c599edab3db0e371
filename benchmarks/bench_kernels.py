"""GPU micro-benchmark: each fused kernel against the same math as a chain of CuPy array ops.

Shapes are the training shapes of the MNIST MLP (784-512-512-10, batch 128, last batch 96):

    python benchmarks/bench_kernels.py --out benchmarks/results/kernels-<gpu>.json

Times are CUDA-event times from ``cupyx.profiler.benchmark`` (median over --repeat runs after
--warmup), plus the host time per call, which is where launch overhead shows. Each pair is first
checked for equal results. Needs CuPy and a CUDA device; without them it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

try:
    from tinygrad_mlp import device, fused
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tinygrad_mlp import device, fused


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON to this path")
    parser.add_argument("--repeat", type=int, default=1000, help="timed runs per case (>= 200)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed runs first")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args(argv)
    if args.repeat < 200:
        parser.error("--repeat must be at least 200 (the median needs enough samples)")
    return args


def unfused_softmax_xent(cp, logits, labels):
    """The primitive chain the fused kernel replaces: max, sub, exp, sum, div, log, one-hot."""
    n, c = logits.shape
    rows = cp.arange(n)
    m = logits.max(axis=1, keepdims=True)
    e = cp.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    loss = cp.log(s[:, 0]) + m[:, 0] - logits[rows, labels]
    onehot = cp.zeros_like(logits)
    onehot[rows, labels] = 1
    dlogits = (e / s - onehot) / n
    correct = (logits.argmax(axis=1) == labels).sum()
    return loss, dlogits, correct


def cases(cp, dtype):
    """(op, shape, fused_fn, unfused_fn, check) for every benchmark case.

    check() runs each side once on fresh copies and returns the two results to compare.
    """
    rng = np.random.default_rng(0)

    def arr(*shape, scale=1.0):
        return cp.asarray((scale * rng.standard_normal(shape)).astype(dtype))

    out = []
    for n in (128, 96):
        y, b = arr(n, 512), arr(512)

        def unfused_bias_relu(y, b):
            y += b
            cp.maximum(y, 0, out=y)
            return y

        out.append(("bias_relu", (n, 512), lambda y=y, b=b: fused.bias_relu(y, b),
                    lambda y=y, b=b: unfused_bias_relu(y, b),
                    lambda y=y, b=b: (fused.bias_relu(y.copy(), b),
                                      unfused_bias_relu(y.copy(), b))))

    for n in (128, 96):
        grad, act = arr(n, 512), cp.maximum(arr(n, 512), 0)
        dx = cp.empty_like(grad)
        out.append(("relu_backward", (n, 512),
                    lambda g=grad, a=act, d=dx: fused.relu_backward(g, a, dx=d),
                    lambda g=grad, a=act, d=dx: cp.multiply(g, a > 0, out=d),
                    lambda g=grad, a=act: (fused.relu_backward(g, a), g * (a > 0))))

    for n in (128, 96):
        logits = arr(n, 10, scale=3.0)
        labels = cp.asarray(rng.integers(0, 10, n).astype(np.uint8))
        labels64 = labels.astype(cp.int64)  # the unfused chain indexes with it
        out.append(("softmax_xent", (n, 10),
                    lambda x=logits, t=labels: fused.softmax_xent(x, t),
                    lambda x=logits, t=labels64: unfused_softmax_xent(cp, x, t),
                    lambda x=logits, t=labels, t64=labels64: (
                        fused.softmax_xent(x, t), unfused_softmax_xent(cp, x, t64))))

    shape = (784, 512)
    param, grad, buf = arr(*shape, scale=0.05), arr(*shape, scale=1e-3), cp.zeros(shape, dtype)
    lr = cp.asarray(np.array(0.01, dtype=dtype))

    def unfused_sgd(p, g, b):
        p -= lr * g
        return p

    def unfused_momentum(p, g, b):
        b *= 0.9
        b += g
        p -= lr * b
        return p

    out.append(("sgd_step", shape,
                lambda: fused.sgd_step(param, grad, lr),
                lambda: unfused_sgd(param, grad, buf),
                lambda: (fused.sgd_step(param.copy(), grad, lr),
                         unfused_sgd(param.copy(), grad, buf))))
    out.append(("sgd_step momentum=0.9", shape,
                lambda: fused.sgd_step(param, grad, lr, momentum=0.9, buf=buf),
                lambda: unfused_momentum(param, grad, buf),
                lambda: (fused.sgd_step(param.copy(), grad, lr, momentum=0.9, buf=buf.copy()),
                         unfused_momentum(param.copy(), grad, buf.copy()))))
    return out


def _same(cp, a, b):
    if isinstance(a, tuple):
        return all(_same(cp, x, y) for x, y in zip(a, b, strict=True))
    return bool(cp.allclose(a, b, rtol=1e-4, atol=1e-6))


def main(argv=None) -> int:
    args = parse_args(argv)
    if not device.gpu_available():
        print(
            "bench_kernels: needs CuPy and a CUDA device, and found none "
            f"({device.GPU_INSTALL_HINT}); nothing was measured.",
            file=sys.stderr,
        )
        return 2
    cp = device.check_gpu()
    from cupyx.profiler import benchmark

    dtype = np.dtype(args.dtype)
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    rows = []
    print(f"{name}, {dtype.name}, median of {args.repeat} runs after {args.warmup} warm-up")
    header = f"{'op':<24}{'shape':>12}{'fused us':>11}{'unfused us':>12}{'speedup':>9}"
    print(header + f"{'host fused':>12}{'host unf.':>11}")
    print("-" * (len(header) + 23))
    for op, shape, fused_fn, unfused_fn, check in cases(cp, dtype):
        got, want = check()
        if not _same(cp, got, want):
            print(f"bench_kernels: {op} {shape}: fused and unfused results differ", file=sys.stderr)
            return 1
        timings = {}
        for label, fn in (("fused", fused_fn), ("unfused", unfused_fn)):
            r = benchmark(fn, n_repeat=args.repeat, n_warmup=args.warmup)
            timings[label] = (float(np.median(r.gpu_times[0])) * 1e6,
                              float(np.median(r.cpu_times)) * 1e6)
        (f_gpu, f_cpu), (u_gpu, u_cpu) = timings["fused"], timings["unfused"]
        rows.append({
            "op": op, "shape": list(shape),
            "fused_gpu_us": f_gpu, "unfused_gpu_us": u_gpu, "speedup_gpu": u_gpu / f_gpu,
            "fused_host_us": f_cpu, "unfused_host_us": u_cpu, "speedup_host": u_cpu / f_cpu,
        })
        print(f"{op:<24}{'x'.join(map(str, shape)):>12}{f_gpu:>11.2f}{u_gpu:>12.2f}"
              f"{u_gpu / f_gpu:>8.2f}x{f_cpu:>12.2f}{u_cpu:>11.2f}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "device": name,
            "cupy": cp.__version__,
            "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(),
            "python": platform.python_version(),
            "dtype": dtype.name,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "timer": "cupyx.profiler.benchmark: median CUDA-event time (gpu) and host time",
            "results": rows,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
