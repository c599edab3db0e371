"""Where one training step's time goes: microseconds per step per component, tinygrad_mlp's
trainer step against the hand-written NumPy peer, at the same shapes and BLAS thread count.

    python benchmarks/step_breakdown.py                   # 784-512-512-10, batch 128, 1 thread
    python benchmarks/step_breakdown.py --threads 2 --batch 32 --hidden 1024 1024

Each round times, one after another: our step clean, our step instrumented, the NumPy step clean,
the NumPy step instrumented (so drift of a shared machine hits both alike); every number is the
median over rounds. With one BLAS thread the clock is the process's CPU time (time spent
descheduled by other processes is not counted); with more, wall time. Instrumented runs time
each component with a clock around it (ours: the fused ops and GEMMs wrapped where the package
calls them; NumPy: its step cut into segments);
"everything else" is the clean step minus the components, so the wrappers' own cost is not
counted in it. Inputs are random (timing does not depend on the values); the model is the
reference one (U(-0.01, 0.01) weights, zero biases, plain SGD lr 0.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # run from a checkout without installing

from peers import NumpyMLP, init_params, onehot_transposed  # noqa: E402

COMPONENTS = ("GEMMs", "bias + ReLU", "softmax-xent (+ mean, dlogits * g)", "ReLU backward",
              "bias grads", "SGD update")
OTHER = "everything else (autodiff, glue)"
# CPU time of the process by default: with one BLAS thread all the work is on this thread, and
# time spent descheduled on a shared machine is not counted. --clock wall for several threads.
_now = time.process_time


class Clock:
    """Accumulates seconds per component name."""

    def __init__(self):
        self.total = defaultdict(float)
        self.last = 0.0

    def lap(self, name):
        """Charge the time since the previous lap to `name` (None: just start)."""
        now = _now()
        if name is not None:
            self.total[name] += now - self.last
        self.last = now

    def wrap(self, name, fn):
        total, now = self.total, _now

        def timed(*args, **kwargs):
            t0 = now()
            try:
                return fn(*args, **kwargs)
            finally:
                total[name] += now() - t0
        return timed


def _ours(params, lr, batch):
    from tinygrad_mlp import nn, optim
    from tinygrad_mlp import train as trainer

    sizes = [params[0].shape[0]] + [params[i].shape[1] for i in range(0, len(params), 2)]
    model = nn.MLP(sizes)
    for p, a in zip(model.parameters(), params, strict=True):
        p.data[...] = a
    opt = optim.SGD(model.parameters(), lr=lr)
    return model, opt, trainer.make_step(model, opt, jit=False)


def _instrument(clock, opt):
    """Wrap the package's hot calls with the clock; returns an undo function."""
    from tinygrad_mlp import blas, device, functional, fused

    xent = functional._SoftmaxCrossEntropy
    # blas.gemm_into: the weight-gradient GEMM that also applies the SGD update
    patches = [(device, "matmul", "GEMMs"), (blas, "gemm_into", "GEMMs"),
               (fused, "bias_relu", "bias + ReLU"),
               (fused, "relu_backward", "ReLU backward"), (fused, "bias_grad", "bias grads"),
               (xent, "forward", COMPONENTS[2]), (xent, "backward", COMPONENTS[2]),
               (opt, "step", "SGD update")]
    saved = [(obj, attr, obj.__dict__.get(attr)) for obj, attr, _ in patches]
    for obj, attr, name in patches:
        setattr(obj, attr, clock.wrap(name, getattr(obj, attr)))

    def undo():
        for obj, attr, old in saved:
            if old is None:
                delattr(obj, attr)
            else:
                setattr(obj, attr, old)
    return undo


def _numpy_step_timed(m: NumpyMLP, xb, onehot_t, clock: Clock):
    """NumpyMLP.train_step cut into the same components (same ops, same order)."""
    lap = clock.lap
    n = xb.shape[0]
    h1, h2, zt = m.h1[:n], m.h2[:n], m.zt[:, :n]
    lap(None)
    np.matmul(xb, m.w1, out=h1)
    lap("GEMMs")
    h1 += m.b1
    np.maximum(h1, 0, out=h1)
    lap("bias + ReLU")
    np.matmul(h1, m.w2, out=h2)
    lap("GEMMs")
    h2 += m.b2
    np.maximum(h2, 0, out=h2)
    lap("bias + ReLU")
    np.matmul(m.w3t, h2.T, out=zt)
    lap("GEMMs")
    zt += m.b3c
    lap("bias + ReLU")
    et, s = m._log_softmax_parts(zt, n)
    float(np.log(s).sum() - np.vdot(zt, onehot_t))
    scale = np.float32(m.lr / n)
    np.divide(scale, s, out=s)
    et *= s
    et -= onehot_t * scale
    lap(COMPONENTS[2])
    g1, g2, ones = m.g1[:n], m.g2[:n], m.ones[:n]
    np.matmul(et, h2, out=m.dw3t)
    lap("GEMMs")
    np.matmul(et, ones, out=m.db3c[:, 0])
    lap("bias grads")
    np.matmul(et.T, m.w3t, out=g2)
    lap("GEMMs")
    m.w3t -= m.dw3t
    m.b3c -= m.db3c
    lap("SGD update")
    mask = m.mask[:n, : g2.shape[1]]
    np.greater(h2, 0, out=mask)
    g2 *= mask
    lap("ReLU backward")
    np.matmul(g2, m.w2.T, out=g1)
    np.matmul(h1.T, g2, out=m.dw2)
    lap("GEMMs")
    m.w2 -= m.dw2
    lap("SGD update")
    np.matmul(ones, g2, out=m.db2)
    lap("bias grads")
    m.b2 -= m.db2
    lap("SGD update")
    mask = m.mask[:n, : g1.shape[1]]
    np.greater(h1, 0, out=mask)
    g1 *= mask
    lap("ReLU backward")
    np.matmul(xb.T, g1, out=m.dw1)
    lap("GEMMs")
    m.w1 -= m.dw1
    lap("SGD update")
    np.matmul(ones, g1, out=m.db1)
    lap("bias grads")
    m.b1 -= m.db1
    lap("SGD update")


def _run(fn, batches):
    t0 = _now()
    for args in batches:
        fn(*args)
    return _now() - t0


def breakdown(batch=128, hidden=(512, 512), steps=100, rounds=5, threads=None, seed=0):
    """{"ours": {component: us}, "numpy-by-hand": {...}, "config": {...}} (medians)."""
    from contextlib import nullcontext

    limits = nullcontext()
    if threads:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(threads)
    sizes = (784, *hidden, 10)
    params = init_params(seed, sizes)
    rng = np.random.default_rng(seed)
    pool = 8  # distinct batches, cycled
    xs = rng.random((pool * batch, 784), dtype=np.float32)
    ys = rng.integers(0, 10, pool * batch)
    batches = [(xs[i * batch:(i + 1) * batch], ys[i * batch:(i + 1) * batch])
               for i in range(pool)]
    onehot = onehot_transposed(ys)
    np_batches = [(xs[i * batch:(i + 1) * batch], onehot[:, i * batch:(i + 1) * batch])
                  for i in range(pool)]
    schedule = [i % pool for i in range(steps)]
    results = {"ours": defaultdict(list), "numpy-by-hand": defaultdict(list)}
    with limits:
        model, opt, step = _ours(params, 0.5, batch)
        peer = NumpyMLP(params, lr=0.5, batch_size=batch)
        for _ in range(2):  # warm-up: allocator, caches, BLAS buffers
            _run(step, [batches[i] for i in schedule[:10]])
            _run(peer.train_step, [np_batches[i] for i in schedule[:10]])
        for _ in range(rounds):
            for name, fn, data, timed in (
                    ("ours", step, batches, None),
                    ("numpy-by-hand", peer.train_step, np_batches,
                     partial(_numpy_step_timed, peer))):
                clean = _run(fn, [data[i] for i in schedule])
                clock = Clock()
                if timed is None:
                    undo = _instrument(clock, opt)
                    try:
                        _run(fn, [data[i] for i in schedule])
                    finally:
                        undo()
                else:
                    _run(partial(timed, clock=clock), [data[i] for i in schedule])
                per = {k: clock.total[k] / steps * 1e6 for k in COMPONENTS}
                per["total"] = clean / steps * 1e6
                per[OTHER] = per["total"] - sum(per[k] for k in COMPONENTS)
                per["outside GEMMs"] = per["total"] - per["GEMMs"]
                for k, v in per.items():
                    results[name][k].append(v)
    out = {name: {k: round(statistics.median(v), 1) for k, v in rows.items()}
           for name, rows in results.items()}
    out["config"] = {"batch": batch, "sizes": list(sizes), "steps": steps, "rounds": rounds,
                     "threads": threads}
    return out


def table(result) -> str:
    ours, peer = result["ours"], result["numpy-by-hand"]
    lines = ["| per step (us) | ours | hand-written NumPy |", "|---|---:|---:|"]
    for k in (*COMPONENTS, OTHER, "outside GEMMs", "total"):
        lines.append(f"| {k} | {ours[k]:.0f} | {peer[k]:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 512],
                   help="two hidden widths (the NumPy peer is written for two)")
    p.add_argument("--steps", type=int, default=100, help="steps per timed run")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians)")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads through threadpoolctl (0: leave as is) [1]")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None,
                   help="process CPU time or wall time [cpu with 1 thread, else wall]")
    p.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = p.parse_args(argv)
    global _now
    clock = args.clock or ("cpu" if args.threads == 1 else "wall")
    _now = time.process_time if clock == "cpu" else time.perf_counter
    if len(args.hidden) != 2:
        p.error("--hidden takes two widths")
    result = breakdown(args.batch, tuple(args.hidden), args.steps, args.rounds,
                       args.threads or None)
    print(f"batch {args.batch}, sizes {result['config']['sizes']}, "
          f"{args.threads or 'default'} BLAS thread(s), medians of {args.rounds} rounds of "
          f"{args.steps} steps, {clock} clock")
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
