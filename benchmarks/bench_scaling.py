"""How the cost of a training step grows with the work: steps per second of tinygrad_mlp, PyTorch
eager and the hand-written NumPy MLP, for batch sizes x hidden widths (CPU).

    python benchmarks/bench_scaling.py --threads 1
    python benchmarks/bench_scaling.py --threads 2 --batches 1,32,512 --hidden 512

Every configuration is the reference architecture 784-h-h-10 (ReLU, softmax cross-entropy, plain
SGD lr 0.5, U(-0.01, 0.01) weights, zero biases), trained from the same initial weights by each
row on the same random batches (timing does not depend on the values). A configuration runs a
fixed number of steps (more for small batches, see --steps) after a short warm-up; the rows of a
configuration run one after another and their order rotates each round, and each reported
number is the median over rounds. Results go to benchmarks/results/ as JSON and Markdown.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # run from a checkout without installing

from peers import NumpyMLP, init_params, onehot_transposed, torch_eager_peer  # noqa: E402

ROWS = ("tinygrad_mlp", "torch eager", "numpy-by-hand")
LR = 0.5


def default_steps(batch: int) -> int:
    """Steps timed per configuration: ~25k samples, at least 50 and at most 500 steps."""
    return max(50, min(500, 25_600 // batch))


def _batches(batch, features, classes, pool=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((pool * batch, features), dtype=np.float32)
    y = rng.integers(0, classes, pool * batch)
    return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(pool)]


def _ours(params, sizes):
    from tinygrad_mlp import nn, optim
    from tinygrad_mlp import train as trainer

    model = nn.MLP(list(sizes))
    for p, a in zip(model.parameters(), params, strict=True):
        p.data[...] = a
    return trainer.make_step(model, optim.SGD(model.parameters(), lr=LR), jit=False)


def _torch(params):
    import torch
    import torch.nn.functional as F

    model, opt = torch_eager_peer(params, LR, "cpu")

    def step(xb, yb):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.detach()

    return step, torch


def make_rows(sizes, batch, seed=0):
    """{row name: (step function, list of argument tuples)} for one configuration."""
    params = init_params(seed, sizes)
    data = _batches(batch, sizes[0], sizes[-1], seed=seed)
    rows = {"tinygrad_mlp": (_ours(params, sizes), data)}
    peer = NumpyMLP(params, lr=LR, batch_size=batch)
    rows["numpy-by-hand"] = (peer.train_step,
                             [(x, onehot_transposed(y, sizes[-1])) for x, y in data])
    try:
        step, torch = _torch(params)
        rows["torch eager"] = (step, [(torch.from_numpy(x), torch.from_numpy(y))
                                      for x, y in data])
    except ImportError:
        pass
    return rows


def time_steps(step, data, steps) -> float:
    """Seconds per step over `steps` steps, cycling through `data`."""
    args = [data[i % len(data)] for i in range(steps)]
    t0 = time.perf_counter()
    for a in args:
        step(*a)
    return (time.perf_counter() - t0) / steps


def run(batches, hidden, rounds, steps=None, warmup=5, seed=0, log=print) -> list[dict]:
    results = []
    for h in hidden:
        sizes = (784, h, h, 10)
        for batch in batches:
            n = steps or default_steps(batch)
            rows = make_rows(sizes, batch, seed)
            names = [r for r in ROWS if r in rows]
            per_step = {name: [] for name in names}
            for name in names:
                time_steps(*rows[name], warmup)
            for r in range(rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    per_step[name].append(time_steps(*rows[name], n))
            entry = {"batch": batch, "hidden": h, "steps": n, "rounds": rounds}
            for name in names:
                s = statistics.median(per_step[name])
                entry[name] = {"step_us": round(s * 1e6, 1), "steps_per_s": round(1 / s, 1),
                               "samples_per_s": round(batch / s)}
            ours = entry["tinygrad_mlp"]["step_us"]
            for peer, key in (("numpy-by-hand", "ours_vs_numpy"), ("torch eager", "ours_vs_torch")):
                if peer in entry:
                    entry[key] = round(ours / entry[peer]["step_us"], 3)
            results.append(entry)
            log(f"batch {batch:4d} hidden {h:5d}: " + ", ".join(
                f"{name} {entry[name]['steps_per_s']:.0f} steps/s" for name in names))
    return results


def table(results) -> str:
    lines = ["| batch | hidden | tinygrad_mlp steps/s | torch eager steps/s | NumPy steps/s "
             "| ours / NumPy (time) | ours / torch (time) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(entry, row):
        return f"{entry[row]['steps_per_s']:.0f}" if row in entry else ""

    for e in results:
        lines.append(f"| {e['batch']} | {e['hidden']} | {cell(e, 'tinygrad_mlp')} "
                     f"| {cell(e, 'torch eager')} | {cell(e, 'numpy-by-hand')} "
                     f"| {e.get('ours_vs_numpy', '')} | {e.get('ours_vs_torch', '')} |")
    return "\n".join(lines)


def thread_limits(threads):
    """Limit NumPy's BLAS (threadpoolctl) and torch's intra-op threads to `threads`."""
    if not threads:
        return nullcontext()
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:
        pass
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="1,8,32,128,512", help="comma-separated batch sizes")
    p.add_argument("--hidden", default="256,512,1024", help="comma-separated hidden widths")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS and torch threads (threadpoolctl, torch.set_num_threads)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per configuration (median)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per row and round [~25k samples: 500 at batch <= 51, "
                        "200 at 128, 50 at 512]")
    p.add_argument("--out", help="JSON path [benchmarks/results/<date>-cpu-scaling-t<N>.json]; "
                                 "the Markdown table goes beside it (.md)")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    hidden = [int(h) for h in args.hidden.split(",")]
    if min(batches + hidden) < 1 or args.rounds < 1 or (args.steps is not None and args.steps < 1):
        p.error("batch sizes, widths, --rounds and --steps must be positive")
    date = datetime.date.today().isoformat()
    load_before = os.getloadavg()
    with thread_limits(args.threads):
        results = run(batches, hidden, args.rounds, args.steps)
    result = {
        "date": date,
        "threads": args.threads,
        "numpy": np.__version__,
        "torch": sys.modules["torch"].__version__ if "torch" in sys.modules else None,
        "cpu_count": os.cpu_count(),
        "load_avg": {"before": [round(v, 2) for v in load_before],
                     "after": [round(v, 2) for v in os.getloadavg()]},
        "configs": results,
    }
    tag = f"t{args.threads}" if args.threads else "tdefault"
    out = Path(args.out) if args.out else HERE / "results" / f"{date}-cpu-scaling-{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    md = table(results)
    out.with_suffix(".md").write_text(
        f"{date}, {args.threads or 'default'} thread(s), medians of {args.rounds} rounds\n\n"
        + md + "\n")
    print(md)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
