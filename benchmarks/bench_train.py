"""Time MNIST MLP training with tinygrad_mlp and with peers, in one process, as ratios.

Every row trains the reference MLP (784-512-512-10, ReLU, softmax cross-entropy, SGD lr 0.5,
batch 128, no shuffling) from the same initial weights on the same batches, for --warmup
untimed epochs and then --epochs timed ones; an epoch is the training pass plus the test pass.
A `gemm-floor` row times only the GEMMs of one epoch at the same shapes, in the same run, on
the same BLAS: no implementation can beat it, and gemm_fraction says how close each row gets.

    python benchmarks/bench_train.py --device cpu --out bench-cpu.json
    python benchmarks/bench_train.py --device gpu --peers tinygrad,torch,torch-graph,gemm

See benchmarks/README.md for the rows and the JSON written to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# An installed tinygrad_mlp wins; the checkout is the fallback when it is not installed.
sys.path.append(str(REPO))

from peers import (  # noqa: E402  (needs the path above when run as a script)
    SIZES,
    GemmFloor,
    NumpyMLP,
    TorchCudaGraphPeer,
    init_params,
    onehot_transposed,
    torch_eager_peer,
    torch_evaluate,
    torch_parameters,
    torch_train_epoch,
)

PEERS = ("tinygrad", "numpy", "torch", "torch-graph", "gemm")
LR = 0.5
BATCH = 128


# --------------------------------------------------------------------------------------------
# clocks: host time on the CPU, CUDA events on the GPU (recorded on the current stream)


class HostClock:
    def mark(self):
        return time.perf_counter()

    def seconds(self, a, b) -> float:
        return b - a


class TorchClock:
    def __init__(self):
        import torch

        self.torch = torch

    def mark(self):
        event = self.torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, a, b) -> float:
        b.synchronize()
        return a.elapsed_time(b) / 1e3


class CupyClock:
    def __init__(self):
        import cupy

        self.cupy = cupy

    def mark(self):
        event = self.cupy.cuda.Event()
        event.record()
        return event

    def seconds(self, a, b) -> float:
        b.synchronize()
        return self.cupy.cuda.get_elapsed_time(a, b) / 1e3


def time_epochs(clock, warmup: int, epochs: int, train, test) -> dict:
    """Run warmup + epochs of train() then test(); time the last `epochs` with `clock`.

    train() and test() may return device values; they are read (host sync) only after the
    epoch's last mark, so the marks see no sync inside the epoch.
    """
    train_s, test_s, epoch_s = [], [], []
    result = None
    for i in range(warmup + epochs):
        t0 = clock.mark()
        train_out = train()
        t1 = clock.mark()
        test_out = test()
        t2 = clock.mark()
        tr, te = clock.seconds(t0, t1), clock.seconds(t1, t2)
        result = (train_out, test_out)
        if i >= warmup:
            train_s.append(tr)
            test_s.append(te)
            epoch_s.append(tr + te)
    return {
        "epoch_s": statistics.median(epoch_s),
        "train_s": statistics.median(train_s),
        "test_s": statistics.median(test_s),
        "epochs_s": [round(t, 6) for t in epoch_s],
        "_last": result,
    }


def same_init(got, want) -> bool:
    """True when every parameter equals the shared init bit for bit."""
    return len(got) == len(want) and all(
        np.asarray(g).shape == w.shape and np.array_equal(np.asarray(g), w)
        for g, w in zip(got, want, strict=True)
    )


def error_row(name: str, exc: BaseException) -> dict:
    msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {"name": name, "epoch_s": None, "train_s": None, "test_acc": None, "error": msg}


# --------------------------------------------------------------------------------------------
# rows


class _TorchArrays:
    """The two array-module calls GemmFloor makes, for torch tensors on one device."""

    def __init__(self, torch, device):
        self.torch, self.device = torch, device

    def asarray(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def empty_like(self, t):
        return self.torch.empty_like(t)


def gemm_row(data, params, clock, args, backend: str) -> dict:
    """The GEMM floor through `backend`: "numpy", "cupy" or "torch" (on --device)."""
    if backend == "torch":
        import torch

        xp = _TorchArrays(torch, "cuda" if args.device == "gpu" else "cpu")

        def matmul(a, b, out):
            torch.matmul(a, b, out=out)

        name, note = "gemm-floor torch", f"torch.matmul ({torch_blas(torch, args.device)})"
    elif backend == "cupy":
        import cupy as xp

        matmul, name, note = None, "gemm-floor", "cupy (cuBLAS)"
    else:
        xp, matmul, name, note = np, None, "gemm-floor", "numpy (" + blas_name() + ")"
    x_train, x_test = xp.asarray(data["x_train"]), xp.asarray(data["x_test"])
    floor = GemmFloor(x_train, x_test, params, BATCH, xp=xp, matmul=matmul, seed=args.seed)
    row = time_epochs(clock, args.warmup, args.epochs, floor.train_pass, floor.test_pass)
    row.pop("_last")
    flop = floor.flop()
    row.update(name=name, test_acc=None, gflop_per_epoch=round(flop / 1e9, 3),
               gflops=round(flop / row["epoch_s"] / 1e9, 1), note=note)
    return row


def torch_blas(torch, device: str) -> str:
    if device == "gpu":
        return "cuBLAS"
    config = torch.__config__.show()
    return "MKL" if "MKL" in config and "USE_MKL=ON" in config else "torch's CPU BLAS"


def numpy_row(data, params, args) -> dict:
    model = NumpyMLP(params, lr=LR, batch_size=BATCH)
    oh_train = onehot_transposed(data["y_train"])
    oh_test = onehot_transposed(data["y_test"])
    identical = same_init(model.parameters(), params)
    row = time_epochs(
        HostClock(), args.warmup, args.epochs,
        lambda: model.train_epoch(data["x_train"], oh_train),
        lambda: model.evaluate(data["x_test"], data["y_test"], oh_test),
    )
    train_loss, (test_loss, test_acc) = row.pop("_last")
    row.update(name="numpy-by-hand", test_acc=test_acc, test_loss=test_loss,
               train_loss=train_loss, same_init=identical,
               note="" if args.device == "cpu" else "runs on the CPU whatever --device")
    return row


def torch_rows(data, params, gpu: bool, args, want_eager: bool, want_graph: bool,
               want_gemm: bool) -> list[dict]:
    try:
        import torch
    except ImportError as e:
        rows = [error_row("torch eager", e)] if want_eager else []
        if gpu and want_graph:
            rows.append(error_row("torch cuda-graph", e))
        for r in rows:
            r["error"] = "skipped: torch is not installed (" + r["error"] + ")"
        return rows
    if gpu and not torch.cuda.is_available():
        e = RuntimeError(f"torch {torch.__version__}: torch.cuda.is_available() is False")
        return [error_row(n, e) for n, w in (("torch eager", want_eager),
                                              ("torch cuda-graph", want_graph)) if w]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if gpu else "cpu"
    clock = TorchClock() if gpu else HostClock()
    x_train, y_train = (torch.from_numpy(data[k]).to(device) for k in ("x_train", "y_train"))
    x_test, y_test = (torch.from_numpy(data[k]).to(device) for k in ("x_test", "y_test"))
    n_train, n_test = x_train.shape[0], x_test.shape[0]
    extra = {"torch_threads": torch.get_num_threads(),
             "matmul_precision": torch.get_float32_matmul_precision()}
    rows = []

    def finish(name, row, identical):
        train_loss, (test_loss, correct) = row.pop("_last")
        row.update(name=name, test_acc=correct.item() / n_test,
                   test_loss=test_loss.item() / n_test, train_loss=train_loss.item() / n_train,
                   same_init=identical, **extra)
        return row

    if want_gemm and not gpu:
        # torch's CPU GEMMs are not NumPy's (MKL vs OpenBLAS): its own floor, for scale
        try:
            rows.append(gemm_row(data, params, clock, args, "torch"))
        except Exception as e:
            rows.append(error_row("gemm-floor torch", e))
    if want_eager:
        try:
            model, opt = torch_eager_peer(params, LR, device)
            identical = same_init(torch_parameters(model), params)
            row = time_epochs(clock, args.warmup, args.epochs,
                              lambda: torch_train_epoch(model, opt, x_train, y_train, BATCH),
                              lambda: torch_evaluate(model, x_test, y_test, BATCH))
            rows.append(finish("torch eager", row, identical))
        except Exception as e:
            rows.append(error_row("torch eager", e))
    if gpu and want_graph:
        try:
            peer = TorchCudaGraphPeer(params, LR, BATCH, n_train, device)
            identical = same_init(torch_parameters(peer.model), params)
            row = time_epochs(clock, args.warmup, args.epochs,
                              lambda: peer.train_epoch(x_train, y_train),
                              lambda: peer.evaluate(x_test, y_test))
            rows.append(finish("torch cuda-graph", row, identical))
        except Exception as e:
            rows.append(error_row("torch cuda-graph", e))
    return rows


def tinygrad_rows(data, params, gpu: bool, args) -> list[dict]:
    """`tinygrad_mlp eager` and `tinygrad_mlp graph`: the trainer's own step and epoch loop
    (tinygrad_mlp.train.make_step / train_epoch / evaluate), without and with TinyJit."""
    device = "gpu" if gpu else "cpu"
    try:
        from tinygrad_mlp import nn, optim
        from tinygrad_mlp import train as trainer

        xp = np
        if gpu:
            import cupy as xp
    except Exception as e:
        return [error_row("tinygrad_mlp eager", e)]
    # device-resident arrays (not Tensors), as tinygrad_mlp.train.train_epoch takes them
    x_train, y_train = xp.asarray(data["x_train"]), xp.asarray(data["y_train"])
    x_test, y_test = xp.asarray(data["x_test"]), xp.asarray(data["y_test"])
    clock = CupyClock() if gpu else HostClock()

    def build():
        model = nn.MLP(list(SIZES)).to(device)
        got = []
        for p, a in zip(model.parameters(), params, strict=True):
            if tuple(p.shape) != a.shape:
                raise ValueError(f"parameter shape {tuple(p.shape)} != shared init {a.shape}")
            p.data[...] = xp.asarray(a)
            got.append(p.data.get() if gpu else p.data.copy())
        return model, optim.SGD(model.parameters(), lr=LR), same_init(got, params)

    rows = []
    for name, jit in (("tinygrad_mlp eager", False), ("tinygrad_mlp graph", True)):
        how = f"tinygrad_mlp.train.make_step(jit={jit}) + train_epoch"
        if jit and not gpu:
            how += "; on the CPU TinyJit calls the step eagerly"
        try:
            model, opt, identical = build()
            step = trainer.make_step(model, opt, jit=jit)
            train = partial(trainer.train_epoch, model, opt, x_train, y_train, BATCH, step=step)
            test = partial(trainer.evaluate, model, x_test, y_test, BATCH)
            row = time_epochs(clock, args.warmup, args.epochs, train, test)
            (train_loss, train_acc), (test_loss, test_acc) = row.pop("_last")
            row.update(name=name, train_loss=train_loss, train_acc=train_acc, test_acc=test_acc,
                       test_loss=test_loss, same_init=identical, note=how)
            rows.append(row)
        except Exception as e:
            rows.append(error_row(name, e))
    return rows


def cli_row(args) -> dict:
    """The whole CLI, start-up included, in a subprocess: total wall seconds, not per epoch."""
    cmd = [sys.executable, "-m", "tinygrad_mlp.train", "--epochs", str(args.epochs),
           "--device", args.device, "--quiet"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    row = {"name": "tinygrad_mlp cli", "epoch_s": None, "train_s": None, "test_acc": None,
           "command": " ".join(["python"] + cmd[1:]), "epochs": args.epochs}
    t0 = time.perf_counter()
    env = dict(os.environ)
    if args.threads:
        env.update(OPENBLAS_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env,
                              timeout=600 + 120 * args.epochs)
    except Exception as e:
        row.update(error_row(row["name"], e), command=row["command"])
        return row
    row["wall_s"] = round(time.perf_counter() - t0, 3)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        row["error"] = f"exit {proc.returncode}: " + (lines[-1] if lines else "no output")
    return row


# --------------------------------------------------------------------------------------------
# environment


def blas_name() -> str:
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info.get('name')} {info.get('version')}"
    except Exception:
        return "unknown BLAS"


def device_name(gpu: bool) -> str:
    if gpu:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30).stdout
            if out.strip():
                return out.strip().splitlines()[0]
        except Exception:
            pass
        return "unknown GPU"
    from tinygrad_mlp.train import cpu_name  # the name the trainer records, read one way

    return cpu_name()


def version_of(module: str, dists=()) -> str | None:
    for dist in dists or (module,):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    mod = sys.modules.get(module)
    return getattr(mod, "__version__", None)


def versions(gpu: bool) -> dict:
    cupy_dists = [d.metadata["Name"] for d in importlib.metadata.distributions()
                  if (d.metadata["Name"] or "").lower().startswith("cupy")]
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_name(),
        "cupy": version_of("cupy", cupy_dists) if cupy_dists else None,
        "torch": version_of("torch"),
        "tinygrad_mlp": version_of("tinygrad_mlp", ("tinygrad_mlp", "tinygrad-mlp")),
    }


def threads() -> dict:
    info = {"cpu_count": os.cpu_count(),
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                               "MKL_NUM_THREADS") if k in os.environ}}
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads")}
                               for p in threadpool_info()]
    except ImportError:
        pass
    if "torch" in sys.modules:
        info["torch"] = sys.modules["torch"].get_num_threads()
    return info


# --------------------------------------------------------------------------------------------
# data, table, main


def load_data(data_dir):
    from tinygrad_mlp.data import load_mnist

    d = load_mnist(data_dir=data_dir)

    def field(name):
        return d[name] if isinstance(d, dict) else getattr(d, name)

    out = {}
    for split in ("train", "test"):
        x = np.asarray(field("x_" + split))
        # every row gets the same float32 x / 255 (division, not * (1/255): bit-identical inputs)
        out["x_" + split] = x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(255)
        out["y_" + split] = np.asarray(field("y_" + split)).astype(np.int64)
    return out


def add_ratios(rows) -> None:
    by_name = {r["name"]: r.get("epoch_s") for r in rows}
    floor = by_name.get("gemm-floor")
    for r in rows:
        t = r.get("epoch_s")
        for key, ref in (("ratio_vs_numpy", "numpy-by-hand"), ("ratio_vs_torch", "torch eager")):
            if t and by_name.get(ref) and r["name"] != ref:
                r[key] = round(t / by_name[ref], 3)
        if t and floor:
            r["gemm_fraction"] = round(floor / t, 3)


def table(rows) -> str:
    def f(v, spec):
        return "" if v is None else format(v, spec)

    lines = ["| row | epoch s (median) | train s | test acc | vs numpy | vs torch | GEMM fraction "
             "| note |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        note = r.get("error") or r.get("note") or ""
        for key, what in (("paired_vs_numpy", "NumPy"), ("paired_vs_floor", "floor")):
            if r.get(key) is not None:  # see add_paired_ratios
                low, high = r[key + "_range"]
                note = f"÷ {what} within rounds {r[key]:.3f} ({low:.2f}-{high:.2f}); " + note
        if r.get("wall_s") is not None:
            note = f"{r['wall_s']:.2f} s wall for {r['epochs']} epochs, start-up included. " + note
        if r.get("gflops"):
            note = f"{r['gflops']} GFLOP/s, {r['gflop_per_epoch']} GFLOP/epoch, " + note
        lines.append(
            f"| {r['name']} | {f(r.get('epoch_s'), '.3f')} | {f(r.get('train_s'), '.3f')} "
            f"| {f(r.get('test_acc'), '.4f')} | {f(r.get('ratio_vs_numpy'), '.2f')} "
            f"| {f(r.get('ratio_vs_torch'), '.2f')} | {f(r.get('gemm_fraction'), '.2f')} "
            f"| {note[:160]} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed epochs before them")
    p.add_argument("--peers", default=",".join(PEERS),
                   help=f"comma-separated rows to run, from: {', '.join(PEERS)}")
    p.add_argument("--cli", action=argparse.BooleanOptionalAction, default=True,
                   help="also time `python -m tinygrad_mlp.train` end to end (default: on)")
    p.add_argument("--out", help="JSON path (default: benchmarks/results/<date>-<device>.json)")
    p.add_argument("--data-dir", help="passed to tinygrad_mlp.data.load_mnist")
    p.add_argument("--seed", type=int, default=0, help="seed of the shared initial weights")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for every row: NumPy's BLAS through threadpoolctl, "
                        "torch.set_num_threads, and OPENBLAS/OMP_NUM_THREADS for the CLI row "
                        "(default: leave each library's own default)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the whole sequence of rows this many times and report medians over "
                        "all timed epochs: drift of a shared machine then hits every row alike")
    args = p.parse_args(argv)
    args.peers = [s.strip() for s in args.peers.split(",") if s.strip()]
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        p.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    if args.epochs < 1 or args.warmup < 0 or args.rounds < 1 or (args.threads or 1) < 1:
        p.error("--epochs, --rounds and --threads must be >= 1 and --warmup >= 0")
    return args


def run_rows(args, data, params, clock, gpu) -> list[dict]:
    """One pass over every requested row (gemm first and torch last: torch's OpenMP threads
    spin after its parallel regions)."""
    rows = []
    if "gemm" in args.peers:
        try:
            backend = "numpy"
            if gpu:
                backend = "cupy" if isinstance(clock, CupyClock) else "torch"
            rows.append(gemm_row(data, params, clock, args, backend))
            if backend == "torch":
                rows[-1]["name"] = "gemm-floor"  # the only GPU floor without CuPy
        except Exception as e:
            rows.append(error_row("gemm-floor", e))
    if "numpy" in args.peers:
        rows.append(numpy_row(data, params, args))
    if "tinygrad" in args.peers:
        rows += tinygrad_rows(data, params, gpu, args)
    if "torch" in args.peers or "torch-graph" in args.peers:
        rows += torch_rows(data, params, gpu, args, "torch" in args.peers,
                           "torch-graph" in args.peers, "gemm" in args.peers)
    return rows


def merge_rounds(rounds) -> list[dict]:
    """One row per name: medians over the timed epochs of every round; the rest from the last."""
    merged = []
    for row in rounds[-1]:
        same = [r for rnd in rounds for r in rnd if r["name"] == row["name"]]
        epochs = [t for r in same for t in r.get("epochs_s") or []]
        if len(rounds) > 1 and epochs:
            row = dict(row, epochs_s=epochs, epoch_s=statistics.median(epochs), rounds=len(same))
            for key in ("train_s", "test_s"):
                values = [r[key] for r in same if r.get(key) is not None]
                if values:
                    row[key] = statistics.median(values)
        merged.append(row)
    return merged


def add_paired_ratios(rows, rounds) -> None:
    """Per round, each row's median epoch over the reference's in that same round; the median
    and range of those ratios over rounds go into ``paired_vs_numpy`` / ``paired_vs_floor``.
    On a host whose speed drifts, a ratio taken within one round is steadier than a ratio of
    medians taken over all rounds (the rows of a round run minutes apart at most)."""
    if len(rounds) < 2:
        return
    per_round = [{r["name"]: statistics.median(r["epochs_s"]) for r in rnd if r.get("epochs_s")}
                 for rnd in rounds]
    for row in rows:
        for key, ref in (("paired_vs_numpy", "numpy-by-hand"), ("paired_vs_floor", "gemm-floor")):
            ratios = [rnd[row["name"]] / rnd[ref] for rnd in per_round
                      if row["name"] in rnd and rnd.get(ref) and row["name"] != ref]
            if ratios:
                row[key] = round(statistics.median(ratios), 3)
                row[key + "_range"] = [round(min(ratios), 3), round(max(ratios), 3)]


def main(argv=None) -> dict:
    args = parse_args(argv)
    gpu = args.device == "gpu"
    # other processes on the machine skew every row: keep the load average beside the numbers
    load_before = os.getloadavg()
    data = load_data(args.data_dir)
    params = init_params(args.seed)
    clock = HostClock()
    if gpu:  # CUDA events from CuPy, else from torch; the GPU rows report what is missing
        for make in (CupyClock, TorchClock):
            try:
                clock = make()
                break
            except ImportError:
                pass

    limits = contextlib.nullcontext()
    if args.threads:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)
    with limits:
        rounds = [run_rows(args, data, params, clock, gpu) for _ in range(args.rounds)]
        info = threads()  # inside the limits: the thread counts the rows ran with
    rows = merge_rounds(rounds)
    if args.cli:
        rows.append(cli_row(args))
    add_ratios(rows)
    add_paired_ratios(rows, rounds)

    result = {
        "date": datetime.date.today().isoformat(),
        "device": device_name(gpu),
        "kind": args.device,
        "versions": versions(gpu),
        "threads": dict(info, requested=args.threads),
        "epochs": args.epochs,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "batch_size": BATCH,
        "seed": args.seed,
        "load_avg": {"before": [round(v, 2) for v in load_before],
                     "after": [round(v, 2) for v in os.getloadavg()]},
        "rows": rows,
    }
    tag = f"-t{args.threads}" if args.threads else ""
    out = (Path(args.out) if args.out else
           HERE / "results" / f"{result['date']}-{args.device}{tag}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['device']}, {args.rounds} round(s) of {args.epochs} timed epochs after "
          f"{args.warmup} warm-up; threads {result['threads']}")
    print(table(rows))
    md = out.with_suffix(".md")
    md.write_text(f"{result['date']}, {result['device']}, threads {args.threads or 'default'}, "
                  f"{args.rounds} round(s) of {args.epochs} timed epochs after {args.warmup} "
                  f"warm-up, load average {result['load_avg']}\n\n{table(rows)}\n")
    print(f"wrote {out} and {md}")
    return result


if __name__ == "__main__":
    main()
