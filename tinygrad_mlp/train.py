"""The MNIST trainer: ``python -m tinygrad_mlp.train`` reproduces the reference runs.

Defaults are the reference configuration: 784-512-512-10 ReLU MLP, U(-0.01, 0.01) weights, zero
biases, SGD lr 0.5, batch 128, no shuffling, 30 epochs. One line per epoch in the reference format
goes to stdout; a progress bar for the current epoch goes to stderr when it is a terminal.

This is the only module that parses flags, prints progress or writes files for the user.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__, data, nn, optim
from . import device as _dev
from . import functional as F
from .data import atomic_open
from .jit import TinyJit
from .tensor import Tensor, no_grad

LOG_FORMAT = "loss: {:.4f} / {:.4f}\taccuracy: {:.4f} / {:.4f}\tstep {}  {:.2f} sec"


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


# ---- the training loop (also used by benchmarks) -------------------------------------------
def to_device_dataset(ds: data.MNIST, device: str):
    """Move the whole dataset to `device` once, as float32 pixels in [0, 1] and int64 labels."""
    def pixels(x):
        return (_dev.to_device(x, device).astype(np.float32) / np.float32(255.0))

    def labels(y):
        return _dev.to_device(y, device).astype(np.int64)

    return pixels(ds.x_train), labels(ds.y_train), pixels(ds.x_test), labels(ds.y_test)


def make_step(model, optimizer, jit=True):
    """One training step ``step(xb, yb) -> (loss, correct)`` on device arrays (0-d results).

    With ``jit`` the step is wrapped in :class:`TinyJit` (captured and replayed as a CUDA graph on
    the GPU; called as is on the CPU). Labels must already be validated (no sync per step).
    """
    def step(xb, yb):
        logits = model(Tensor._wrap(xb, _dev.device_of(xb)))
        loss, correct = F.cross_entropy(logits, yb, check_labels=False, return_correct=True)
        optimizer.zero_grad()
        optimizer.backward_step(loss)  # backward, step, zero_grad: SGD may fuse them
        return loss.data, correct

    return TinyJit(step) if jit else step


def train_epoch(model, optimizer, x, y, batch_size, *, progress=None, step=None):
    """One pass over (x, y) in order, in batches of `batch_size` (the last may be smaller).

    `x` (N, features) float and `y` (N,) int are arrays already on the model's device: each batch
    is a view, never a host copy. Per-step loss and correct counts stay on the device; the host
    reads them once, at the end. `step` is a :func:`make_step` function (made here if None; pass
    one to keep a CUDA-graph capture across epochs). Returns (mean loss, accuracy). Raises
    TrainingDiverged naming the first step (1-based) whose loss was not finite.
    """
    xp = _dev.module_of(x)
    step_fn = step if step is not None else make_step(model, optimizer, jit=False)
    n = len(x)
    steps = math.ceil(n / batch_size)
    step_loss = xp.empty(steps, dtype=np.float32)
    step_correct = xp.empty(steps, dtype=np.int64)
    for i, start in enumerate(range(0, n, batch_size)):
        loss, correct = step_fn(x[start:start + batch_size], y[start:start + batch_size])
        step_loss[i] = loss  # one device copy per value; no arithmetic in the loop
        step_correct[i] = correct
        if progress is not None:
            progress.update(1)
    losses = _dev.to_device(step_loss, "cpu")  # the epoch's one host sync
    bad = np.flatnonzero(~np.isfinite(losses))
    if len(bad):
        raise TrainingDiverged(f"loss became {losses[bad[0]]} at step {bad[0] + 1}")
    # Batch means weighted by batch size, so the last, smaller batch counts right.
    sizes = np.minimum(batch_size, n - batch_size * np.arange(steps))
    return float(losses @ sizes.astype(np.float64) / n), float(step_correct.sum()) / n


@no_grad()
def evaluate(model, x, y, batch_size=128):
    """Mean loss and accuracy of `model` on (x, y), in batches; one host sync at the end."""
    xp, device = _dev.module_of(x), _dev.device_of(x)
    loss_sum, correct = xp.zeros((), np.float64), xp.zeros((), np.int64)
    for start in range(0, len(x), batch_size):
        yb = y[start:start + batch_size]
        loss, right = F.cross_entropy(model(Tensor._wrap(x[start:start + batch_size], device)),
                                      yb, check_labels=False, return_correct=True)
        loss_sum += loss.data * len(yb)
        correct += right
    return float(loss_sum) / len(x), int(correct) / len(x)


# ---- checkpoints: .npz without pickle, written atomically -----------------------------------
def save_checkpoint(path, model, optimizer, epoch, history, rng, config):
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
    meta = {"epoch": epoch, "history": history, "rng": rng.bit_generator.state,
            "config": config, "version": __version__}
    arrays["meta"] = np.array(json.dumps(meta))
    path = Path(path)
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def load_checkpoint(path, model, optimizer, rng, config):
    """Restore model, optimizer and RNG from `path`; returns (epoch, history)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"cannot read checkpoint {path}: {e}") from None
    saved = meta["config"]
    for key in ("sizes", "optimizer"):
        if saved.get(key) != config[key]:
            raise ValueError(f"checkpoint {path} was saved with {key}={saved.get(key)}, "
                             f"but this run uses {key}={config[key]}")
    model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
    optimizer.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim.")})
    rng.bit_generator.state = meta["rng"]
    return meta["epoch"], meta["history"]


# ---- flags ----------------------------------------------------------------------------------
def _number(kind, low, inclusive=False, what="a number"):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (value >= low if inclusive else value > low) or not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"{text} must be {'>=' if inclusive else '>'} {low}")
        return value
    return parse


def _device_flag(text):
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _dev.canonical(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m tinygrad_mlp.train",
        description="Train the reference MNIST MLP (defaults reproduce the reference runs).")
    p.add_argument("--device", type=_device_flag, default="cpu",
                   help="cpu, gpu, cuda, cuda:N or auto (gpu when available) [cpu]")
    p.add_argument("--epochs", type=_number(int, 1, True, "an integer"), default=30,
                   help="[30]")
    p.add_argument("--batch-size", type=_number(int, 1, True, "an integer"), default=128,
                   help="the last batch takes the remainder [128]")
    p.add_argument("--lr", type=_number(float, 0), default=None,
                   help="learning rate [0.5 for sgd, 0.001 for adam]")
    p.add_argument("--momentum", type=_number(float, 0, True), default=0.0,
                   help="SGD momentum [0]")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--hidden", type=_number(int, 1, True, "an integer"), nargs="*",
                   default=[512, 512], help="hidden layer sizes [512 512]")
    p.add_argument("--init-scale", type=_number(float, 0), default=0.01,
                   help="weights ~ U(-s, s), zero biases [0.01]")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the initial weights and the shuffling [0]")
    p.add_argument("--shuffle", action="store_true", help="shuffle the training set every epoch")
    p.add_argument("--dataset", choices=data.DATASETS, default="mnist")
    p.add_argument("--data-dir", help="folder with the four IDX files (else cache / download)")
    p.add_argument("--no-fused", action="store_true",
                   help="use the unfused reference ops (to measure what fusion buys)")
    p.add_argument("--no-jit", action="store_true",
                   help="GPU: launch every kernel eagerly instead of replaying a CUDA graph")
    p.add_argument("--metrics-json", metavar="PATH", help="write the curve and run info as JSON")
    p.add_argument("--plot", metavar="PATH", help="PNG of the test curve beside the references")
    p.add_argument("--save", metavar="PATH", help="checkpoint (.npz) written after every epoch")
    p.add_argument("--resume", metavar="PATH", help="continue from a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no data messages")
    return p


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda:0" if _dev.gpu_available() else "cpu"
    elif args.device != "cpu":
        try:
            _dev.check_gpu(args.device)
        except RuntimeError as e:
            parser.error(f"--device {args.device}: {e}")
    if args.lr is None:
        args.lr = 0.5 if args.optimizer == "sgd" else 1e-3
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'tinygrad_mlp[plot]'")
    if args.resume and not Path(args.resume).is_file():
        parser.error(f"--resume: no such file: {args.resume}")
    return args


# ---- outputs --------------------------------------------------------------------------------
def reference_curves() -> dict:
    """The three published runs (Keras CPU, TensorFlow GPU, C++ CPU), parsed per epoch."""
    text = resources.files("tinygrad_mlp").joinpath("reference_curves.json").read_text()
    return json.loads(text)


def run_info(args) -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "tinygrad_mlp": __version__}
    name = platform.processor() or platform.machine()
    if args.device != "cpu":
        cupy = _dev.check_gpu(args.device)
        versions["cupy"] = cupy.__version__
        name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    return {"device": args.device, "device_name": name, "versions": versions}


def write_json(path, obj):
    with atomic_open(Path(path)) as f:
        f.write(json.dumps(obj, indent=1).encode())


def write_plot(path, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    curves = {"tinygrad_mlp": history, **reference_curves()}
    for name, rows in curves.items():
        epochs = [r["epoch"] for r in rows]
        style = dict(linewidth=2.5) if name == "tinygrad_mlp" else dict(linestyle="--")
        ax_acc.plot(epochs, [r["test_acc"] for r in rows], label=name, **style)
        ax_loss.plot(epochs, [r["test_loss"] for r in rows], label=name, **style)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", ylim=(0.85, 0.99))
    ax_loss.set(xlabel="epoch", ylabel="test loss (log scale)", yscale="log")
    ax_acc.legend()
    fig.tight_layout()
    with atomic_open(Path(path)) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def _progress_bar(total, epoch, quiet):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}", file=sys.stderr, leave=False, unit="step")


# ---- main -----------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    log = (lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        ds = data.load_mnist(args.dataset, args.data_dir, log=log)
    except (data.DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    x_train, y_train, x_test, y_test = to_device_dataset(ds, args.device)
    sizes = [x_train.shape[1], *args.hidden, 10]
    config = {"sizes": sizes, "optimizer": args.optimizer, "lr": args.lr,
              "momentum": args.momentum, "batch_size": args.batch_size, "epochs": args.epochs,
              "init_scale": args.init_scale, "seed": args.seed, "shuffle": args.shuffle,
              "dataset": args.dataset, "fused": not args.no_fused, "jit": not args.no_jit}

    Tensor.manual_seed(args.seed)
    fused = False if args.no_fused else None
    model = nn.MLP(sizes, init_scale=args.init_scale, fused=fused).to(args.device)
    if args.optimizer == "sgd":
        optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, fused=fused)
    else:
        optimizer = optim.Adam(model.parameters(), lr=args.lr)
    shuffle_rng = np.random.default_rng(args.seed)
    first_epoch, history = 1, []
    if args.resume:
        try:
            done, history = load_checkpoint(args.resume, model, optimizer, shuffle_rng, config)
        except (ValueError, KeyError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        first_epoch = done + 1
        log(f"resumed from {args.resume} after epoch {done}")

    xp = _dev.module_of(x_train)
    steps = math.ceil(len(x_train) / args.batch_size)
    step = make_step(model, optimizer, jit=not args.no_jit)
    elapsed = history[-1]["elapsed_seconds"] if history else 0.0
    pool_peak = 0
    for epoch in range(first_epoch, args.epochs + 1):
        start = time.perf_counter()
        xs, ys = x_train, y_train
        if args.shuffle:  # one gather per epoch on the device; batches stay views
            order = xp.asarray(shuffle_rng.permutation(len(x_train)))
            xs, ys = x_train[order], y_train[order]
        bar = _progress_bar(steps, epoch, args.quiet)
        try:
            train_loss, train_acc = train_epoch(model, optimizer, xs, ys, args.batch_size,
                                                progress=bar, step=step)
        except TrainingDiverged as e:
            print(f"error: training diverged in epoch {epoch}: {e}; try a smaller --lr",
                  file=sys.stderr)
            return 3
        finally:
            if bar is not None:
                bar.close()
        test_loss, test_acc = evaluate(model, x_test, y_test, 128)
        elapsed += time.perf_counter() - start
        print(LOG_FORMAT.format(train_loss, test_loss, train_acc, test_acc, epoch, elapsed),
              flush=True)
        history.append({"epoch": epoch, "elapsed_seconds": round(elapsed, 4),
                        "train_loss": train_loss, "test_loss": test_loss,
                        "train_acc": train_acc, "test_acc": test_acc})
        # Memory pools only grow, so their size after an epoch is the peak (0 on the CPU).
        pool_peak = max(pool_peak, _dev.pool_bytes(args.device)
                        + (step.pool_bytes() if isinstance(step, TinyJit) else 0))
        if args.save:
            save_checkpoint(args.save, model, optimizer, epoch, history, shuffle_rng, config)

    if args.metrics_json:
        write_json(args.metrics_json, {"config": config, **run_info(args), "data": ds.source,
                                       "device_pool_peak_bytes": pool_peak, "epochs": history})
    if args.plot:
        write_plot(args.plot, history)
    return 0


if __name__ == "__main__":
    sys.exit(main())
