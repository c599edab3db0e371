"""The MNIST trainer: ``python -m tinygrad_mlp.train`` reproduces the reference runs.

Defaults are the reference configuration: 784-512-512-10 ReLU MLP, U(-0.01, 0.01) weights, zero
biases, SGD lr 0.5, batch 128, no shuffling, 30 epochs. One line per epoch in the reference format
goes to stdout; a progress bar for the current epoch goes to stderr when it is a terminal.
Flags are checked before any data is loaded; however a run ends (done, diverged, Ctrl-C, closed
stdout), what it finished is kept (checkpoint, --metrics-json) and the user gets one line, never
a traceback.

With :mod:`tinygrad_mlp.train_flags` (the flags and the checks made before any data is loaded),
this is the only module that parses flags, prints progress or writes files for the user.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__, checkpoint, data, nn, optim, viz
from . import device as _dev
from . import distributed as _dist
from . import functional as F
from .data import atomic_open
from .jit import TinyJit
from .profiler import profile
from .tensor import Tensor, no_grad
from .train_flags import DEFAULT_EPOCHS, SCRIPT, build_parser, parse_args  # noqa: F401 (API)

LOG_FORMAT = "loss: {:.4f} / {:.4f}\taccuracy: {:.4f} / {:.4f}\tstep {}  {:.2f} sec"
# The reference configuration. The flags that set these default to None, so a resumed run can tell
# a flag given on the command line from one left alone (see checkpoint.resolve_config).
DEFAULTS = {"optimizer": "sgd", "lr": None, "momentum": 0.0, "nesterov": False,
            "weight_decay": 0.0, "batch_size": 128, "dataset": "mnist",
            "sizes": [784, 512, 512, 10], "init_scale": 0.01, "seed": 0, "shuffle": False,
            "fused": True}
DEFAULT_LR = {"sgd": 0.5, "adam": 1e-3}
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141  # 128 + SIGINT, 128 + SIGPIPE, as a shell reports
EXIT_TERMINATED = 143  # 128 + SIGTERM


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, a batch scheduler): stopped as Ctrl-C stops a run, what it did kept."""


# ---- the training loop (also used by benchmarks) -------------------------------------------
def to_device_dataset(ds: data.MNIST, device: str):
    """Move the whole dataset to `device` once, as float32 pixels in [0, 1] and int64 labels."""
    def pixels(x):
        return (_dev.to_device(x, device).astype(np.float32) / np.float32(255.0))

    def labels(y):
        return _dev.to_device(y, device).astype(np.int64)

    return pixels(ds.x_train), labels(ds.y_train), pixels(ds.x_test), labels(ds.y_test)


def make_step(model, optimizer, jit=True, fused=None, world=None):
    """One training step ``step(xb, yb) -> (loss, correct)`` on device arrays (0-d results).

    With ``jit`` the step is wrapped in :class:`TinyJit` (captured and replayed as a CUDA graph on
    the GPU; called as is on the CPU), if the optimizer is capturable (SGD, and Adam built with
    ``capturable=True``; a default Adam's host step counts would freeze). Labels must already be
    validated (no sync per step). ``fused`` goes to the loss (the model and optimizer carry their
    own choice). With a :class:`distributed.World`, (xb, yb) is the global batch: the step
    trains on this rank's share and returns its local mean loss and correct count.
    """
    fused = F.use_fused(fused)  # once, not an environment lookup every step

    def step(xb, yb):
        if world is not None:
            xb, yb, weight = world.shard(xb, yb)
        logits = model(Tensor._wrap(xb, _dev.device_of(xb)))
        loss, correct = F.cross_entropy(logits, yb, check_labels=False, return_correct=True,
                                        fused=fused)
        optimizer.zero_grad()
        if world is None:
            optimizer.backward_step(loss)  # backward, step, zero_grad: SGD may fuse them
        else:  # the gradient of the global mean: local ones weighted by share, summed over ranks
            loss.backward(weight)
            world.all_reduce_grads(optimizer.params, average=False)
            optimizer.step()
        return loss.data, correct

    return TinyJit(step) if jit and optimizer.capturable else step


def train_epoch(model, optimizer, x, y, batch_size, *, progress=None, step=None, world=None):
    """One pass over (x, y) in order, in batches of `batch_size` (the last may be smaller).

    `x` (N, features) float and `y` (N,) int are arrays already on the model's device: each batch
    is a view, never a host copy. Per-step loss and correct counts stay on the device; the host
    reads them once, at the end. `step` is a :func:`make_step` function (made here if None; pass
    one to keep a CUDA-graph capture across epochs). Returns (mean loss, accuracy). Raises
    TrainingDiverged naming the first step (1-based) whose loss was not finite. With a `world`,
    every rank passes the same (x, y), trains on its share of each batch, and all get the global
    results (one reduction per epoch).
    """
    xp = _dev.module_of(x)
    step_fn = step if step is not None else make_step(model, optimizer, jit=False, world=world)
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
    sizes = np.minimum(batch_size, n - batch_size * np.arange(steps))
    if world is not None:
        step_loss, step_correct = world.global_step_metrics(step_loss, step_correct, sizes)
    losses = _dev.to_device(step_loss, "cpu")  # the epoch's one host sync
    bad = np.flatnonzero(~np.isfinite(losses))
    if len(bad):
        raise TrainingDiverged(f"loss became {losses[bad[0]]} at step {bad[0] + 1}")
    # Batch means weighted by batch size, so the last, smaller batch counts right.
    return float(losses @ sizes.astype(np.float64) / n), float(step_correct.sum()) / n


@no_grad()
def evaluate(model, x, y, batch_size=128, fused=None, world=None):
    """Mean loss and accuracy of `model` on (x, y), in batches; one host sync at the end.
    With a `world`, each rank evaluates its share of (x, y) and all get the totals."""
    xp, device, n = _dev.module_of(x), _dev.device_of(x), len(x)
    if world is not None:
        x, y, _ = world.shard(x, y)
    loss_sum, correct = xp.zeros((), np.float64), xp.zeros((), np.int64)
    for start in range(0, len(x), batch_size):
        yb = y[start:start + batch_size]
        loss, right = F.cross_entropy(model(Tensor._wrap(x[start:start + batch_size], device)),
                                      yb, check_labels=False, return_correct=True, fused=fused)
        loss_sum += loss.data * len(yb)
        correct += right
    if world is not None:
        world.sum(loss_sum)
        world.sum(correct)
    return float(loss_sum) / n, int(correct) / n


def run_config(args) -> tuple[dict, dict | None, list]:
    """The configuration this run trains with: flags given, else the checkpoint's (--resume),
    else the defaults. Returns (config, (meta, arrays) of the checkpoint or None, notes).
    Raises checkpoint.CheckpointError: an unreadable checkpoint, or a flag contradicting it."""
    requested = {k: getattr(args, k) for k in ("optimizer", "lr", "momentum", "batch_size",
                                                "dataset", "init_scale", "seed", "shuffle")
                 if getattr(args, k) is not None}
    if args.hidden is not None:
        requested["sizes"] = [784, *args.hidden, 10]  # MNIST and Fashion-MNIST: 28x28, 10 classes
    if args.no_fused or not F.use_fused():  # the flag, or TINYGRAD_MLP_FUSED=0
        requested["fused"] = False
    defaults = dict(DEFAULTS, lr=DEFAULT_LR[requested.get("optimizer", "sgd")])
    saved, notes = None, []
    if args.resume:
        saved = checkpoint.read(args.resume)
        config, notes = checkpoint.resolve_config(args.resume, saved[0]["config"], requested,
                                                  defaults)
    else:
        config = {**defaults, **requested}
    if saved and saved[0]["config"].get("dry_run"):
        raise checkpoint.CheckpointError(
            f"checkpoint {args.resume} was written by --dry-run (one batch of training): it "
            "holds no complete epoch to continue; start a new run")
    done = saved[0]["epoch"] if saved else 0
    saved_epochs = saved[0]["config"].get("epochs") if saved else None
    config["epochs"] = args.epochs or saved_epochs or DEFAULT_EPOCHS
    if saved and args.epochs is not None and args.epochs <= done:
        raise checkpoint.FlagConflict(
            f"--epochs {args.epochs} is not above epoch {done}, where the checkpoint "
            f"{args.resume} stopped: nothing to train (pass --epochs {done + 1} or more)")
    config["jit"] = not args.no_jit
    if args.dry_run:  # its checkpoint must not pass for a trained epoch
        config["dry_run"] = True
    return config, saved, notes


# ---- outputs --------------------------------------------------------------------------------
def reference_curves() -> dict:
    """The three published runs (Keras CPU, TensorFlow GPU, C++ CPU), parsed per epoch."""
    text = resources.files("tinygrad_mlp").joinpath("reference_curves.json").read_text()
    return json.loads(text)


def cpu_name() -> str:
    """The CPU model ("AMD EPYC 7B13", from /proc/cpuinfo on Linux), else what platform knows."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    return platform.processor() or platform.machine()


def run_info(args) -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "tinygrad_mlp": __version__}
    name = cpu_name()
    if args.device != "cpu":
        cupy = _dev.check_gpu(args.device)
        versions["cupy"] = cupy.__version__
        name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    ranks = _dist.init().size if args.distributed else 1
    return {"device": args.device, "device_name": name, "ranks": ranks, "versions": versions}


@contextlib.contextmanager
def blas_threads(n):
    """Limit the BLAS thread pools (OpenBLAS, MKL, BLIS) to `n` threads inside the block, through
    threadpoolctl; None leaves the library's own setting."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n, user_api="blas"):
        yield


def blas_thread_counts() -> dict:
    """BLAS library -> its thread count right now, e.g. {"openblas": 2}."""
    from threadpoolctl import threadpool_info

    return {i["internal_api"]: i["num_threads"] for i in threadpool_info()
            if i["user_api"] == "blas"}


def write_json(path, obj):
    with atomic_open(Path(path)) as f:
        f.write(json.dumps(obj, indent=1).encode())


def write_plot(path, history, dataset="mnist"):
    """Test accuracy and loss per epoch; the published reference runs are MNIST runs, so they
    are drawn (with their y-range) only beside an MNIST curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    curves = {f"tinygrad_mlp ({dataset})": history}
    if dataset == "mnist":
        curves.update(reference_curves())
    for i, (name, rows) in enumerate(curves.items()):
        epochs = [r["epoch"] for r in rows]
        # Markers on our curve, so that a run of one epoch is still a visible point.
        style = dict(linewidth=2.5, marker="o", markersize=4) if i == 0 else dict(linestyle="--")
        ax_acc.plot(epochs, [r["test_acc"] for r in rows], label=name, **style)
        ax_loss.plot(epochs, [r["test_loss"] for r in rows], label=name, **style)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy")
    if dataset == "mnist":
        ax_acc.set_ylim(0.85, 0.99)
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


@dataclass
class RunRecord:
    """What a run has done so far: written to --metrics-json however the run ends, and named in
    the one line an interrupted run prints."""

    config: dict | None = None  # None until the data is loaded and the model built
    history: list = field(default_factory=list)
    info: dict = field(default_factory=dict)  # data source, threads, resume, divergence
    status: str = "running"
    epoch: int = 0  # the epoch in progress
    saved: tuple = (None, 0)  # (checkpoint path, the epoch it holds)

    def interrupted_message(self) -> str:
        done = self.history[-1]["epoch"] if self.history else 0
        if not self.epoch:
            return "interrupted before training started: nothing was trained"
        text = f"interrupted {'after' if done == self.epoch else 'in'} epoch {self.epoch}"
        if not done:
            return text + ": no epoch was completed"
        path, saved_epoch = self.saved
        if not path:
            return f"{text}: the last completed epoch is {done} (not saved: pass --save PATH)"
        if saved_epoch == done:
            return (f"{text}: the last completed epoch, {done}, is saved in {path} "
                    f"(continue with --resume {path})")
        return (f"{text}: the last completed epoch is {done}; {path} holds epoch {saved_epoch} "
                f"(continue with --resume {path})")


def divergence_hint(config) -> str:
    """The flag most likely to blame for a diverged run: a large init scale, else the lr."""
    hints = []
    if config["init_scale"] > 0.1:
        hints.append(f"a smaller --init-scale (now {config['init_scale']:g}; the reference "
                     f"uses {DEFAULTS['init_scale']:g})")
    if config["momentum"] >= 1:  # the velocity then grows without bound: the flag is to blame
        hints.append(f"a --momentum below 1 (now {config['momentum']:g})")
    if config["lr"] > DEFAULT_LR[config["optimizer"]] or not hints:
        hints.append(f"a smaller --lr (now {config['lr']:g}; the default for "
                     f"{config['optimizer']} is {DEFAULT_LR[config['optimizer']]:g})")
    return "try " + ", or ".join(hints)


def write_outputs(args, run: RunRecord) -> bool:
    """--metrics-json and --plot, for whatever part of the run was done; False after an error
    (said in one line naming the file)."""
    if run.config is None:
        return True
    record = {"config": run.config, **run_info(args), **run.info, "status": run.status,
              "epochs": run.history}
    outputs = [(args.metrics_json, lambda path: write_json(path, record)),
               (args.plot if run.history else None,
                lambda path: write_plot(path, run.history, run.config["dataset"]))]
    ok = True
    for path, write in outputs:
        try:
            if path:
                write(path)
        except OSError as e:  # checked before the run, so a full disk or a folder gone since
            print(f"error: cannot write {path}: {e.strerror or e}", file=sys.stderr)
            ok = False
    return ok


def _silence_stdout():
    """After a closed pipe: send further output (and the exit-time flush) to /dev/null."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def dump_graph(path, model, x, y, batch_size):
    """Write the graph of the first training batch's loss to `path` (no update is made)."""
    logits = model(Tensor._wrap(x[:batch_size], _dev.device_of(x)))
    loss = F.cross_entropy(logits, y[:batch_size], check_labels=False)
    viz.write_graph(loss, path, dict(model.named_parameters()))


def check_target(history, target) -> int:
    """0, or 4 (saying why on stderr) when the final test accuracy is below `target`."""
    if target is None or (history and history[-1]["test_acc"] >= target):
        return 0
    final = f"{history[-1]['test_acc']:.4f}" if history else "unknown (no epoch ran)"
    print(f"error: final test accuracy {final} is below --target-acc {target:.4f}",
          file=sys.stderr)
    return 4


# ---- main -----------------------------------------------------------------------------------
@_dist.abort_job_on_failure
def main(argv=None) -> int:
    args = parse_args(argv)
    for path in (args.save, args.metrics_json, args.plot, args.dump_graph):
        if path:  # leftovers of a run killed while writing this file
            data.remove_stale_temporaries(path)
    run = RunRecord()
    try:
        # Overflow warnings would only precede the one line a diverged run prints anyway.
        with blas_threads(args.threads), np.errstate(all="ignore"), _sigterm_as_interrupt():
            code = _train(args, run)
        if not write_outputs(args, run) and code == 0:
            return 1
        return code
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        message = run.interrupted_message()
        if terminated:
            message = message.replace("interrupted", "terminated (SIGTERM)", 1)
        print(message, file=sys.stderr, flush=True)
        run.status = "terminated" if terminated else "interrupted"
        with contextlib.suppress(KeyboardInterrupt):
            write_outputs(args, run)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except MemoryError as e:  # NumPy's and CuPy's out-of-memory errors
        print(f"error: out of memory on {args.device}: {e} (try smaller --hidden sizes or "
              "--batch-size)", file=sys.stderr)
        run.status = "out of memory"
        write_outputs(args, run)
        return 1
    except BrokenPipeError:  # e.g. `... | head -1`: stop quietly, keep what was done
        _silence_stdout()
        run.status = "stopped: stdout closed"
        write_outputs(args, run)
        return EXIT_BROKEN_PIPE


def _terminate(signum, frame):
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises Terminated inside the block; the previous handler is back after it."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave SIGTERM alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _interrupts_deferred():
    """Ctrl-C and SIGTERM that arrive inside the block take effect when it ends (a save takes
    milliseconds), so no interrupt falls between a write and the note of what was written.
    (Blocking the signals would not do: the kernel hands them to BLAS threads instead.)"""
    caught = []
    try:
        previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum))
                    for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread, where signals are handled
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught and callable(previous[caught[0]]):  # KeyboardInterrupt, or Terminated
            previous[caught[0]](caught[0], None)
        elif caught and previous[caught[0]] == signal.SIG_DFL:
            os.kill(os.getpid(), caught[0])


def _train(args, run: RunRecord) -> int:
    """The run itself: fills `run` as it goes; returns the exit status."""
    log = (lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        config, saved, notes = run_config(args)
    except checkpoint.CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if isinstance(e, checkpoint.FlagConflict) else 1
    for note in notes:
        print(note, file=sys.stderr, flush=True)
    done = saved[0]["epoch"] if saved else 0
    if done >= config["epochs"]:
        print(f"checkpoint {args.resume} already holds all {done} epochs of its run: nothing "
              f"to train (pass --epochs {done + 1} or more to train further)", file=sys.stderr)
        return 0
    try:
        ds = data.load_mnist(config["dataset"], args.data_dir, log=log)
    except (data.DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a cache or data folder that cannot be read or written
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: cannot load {config['dataset']}: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    x_train, y_train, x_test, y_test = to_device_dataset(ds, args.device)
    if args.dry_run:
        x_train, y_train = x_train[:config["batch_size"]], y_train[:config["batch_size"]]
        x_test, y_test = x_test[:128], y_test[:128]
    sizes, fused = config["sizes"], config["fused"]
    world = _dist.init() if args.distributed else None

    Tensor.manual_seed(config["seed"])
    model = nn.MLP(sizes, init_scale=config["init_scale"], fused=fused).to(args.device)
    if config["optimizer"] == "sgd":
        optimizer = optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"],
                              nesterov=config["nesterov"], weight_decay=config["weight_decay"],
                              fused=fused)
    else:
        # capturable: its step counts on the device, so TinyJit can capture it on the GPU
        optimizer = optim.Adam(model.parameters(), lr=config["lr"],
                               weight_decay=config["weight_decay"], capturable=True)
    shuffle_rng = np.random.default_rng(config["seed"])
    first_epoch, history = 1, []
    if saved:
        try:
            checkpoint.restore(args.resume, *saved, model, optimizer, shuffle_rng)
        except checkpoint.CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        history = saved[0]["history"]
        first_epoch = done + 1
        run.saved = (args.resume, done)
        run.info["resumed_from"] = {"checkpoint": args.resume, "epoch": done}
        log(f"resumed from {args.resume} after epoch {done}")
    if world is not None:  # every batch split among the ranks, all starting from rank 0's model
        try:
            world.check_batches(len(x_train), config["batch_size"])
        except _dist.DistributedError as e:
            print(f"error: --distributed: {e}", file=sys.stderr)
            return 2
        world.broadcast_parameters(model.parameters())
    if args.dump_graph:
        try:
            dump_graph(args.dump_graph, model, x_train, y_train, config["batch_size"])
        except (OSError, RuntimeError) as e:
            print(f"error: --dump-graph: {e}", file=sys.stderr)
            return 1
    run.config, run.history = config, history
    run.info.update(data=ds.source, threads={"requested": args.threads,
                                             "blas": blas_thread_counts()})

    xp = _dev.module_of(x_train)
    steps = math.ceil(len(x_train) / config["batch_size"])
    step = make_step(model, optimizer, jit=not args.no_jit, fused=fused, world=world)
    elapsed = history[-1]["elapsed_seconds"] if history else 0.0
    pool_peak = 0
    last_epoch = first_epoch if args.dry_run else config["epochs"]
    for epoch in range(first_epoch, last_epoch + 1):
        run.epoch = epoch
        profiling = args.profile and epoch == last_epoch
        start = time.perf_counter()
        xs, ys = x_train, y_train
        if config["shuffle"]:  # one gather per epoch on the device; batches stay views
            order = xp.asarray(shuffle_rng.permutation(len(x_train)))
            xs, ys = x_train[order], y_train[order]
        bar = _progress_bar(steps, epoch, args.quiet)
        try:
            # A replayed CUDA graph runs no Python ops, so the profiled epoch runs eagerly.
            with profile() if profiling else contextlib.nullcontext() as prof:
                train_loss, train_acc = train_epoch(
                    model, optimizer, xs, ys, config["batch_size"], progress=bar, world=world,
                    step=make_step(model, optimizer, jit=False, fused=fused, world=world)
                    if profiling else step)
                test_loss, test_acc = evaluate(model, x_test, y_test, 128, fused, world)
            if not math.isfinite(test_loss):  # the epoch's last step broke the weights
                raise TrainingDiverged(f"test loss became {test_loss} after the last step")
        except TrainingDiverged as e:
            print(f"error: training diverged in epoch {epoch}: {e}; {divergence_hint(config)}",
                  file=sys.stderr)
            run.status, run.info["diverged"] = "diverged", {"epoch": epoch, "why": str(e)}
            return 3
        finally:
            if bar is not None:
                bar.close()
        elapsed += time.perf_counter() - start
        history.append({"epoch": epoch, "elapsed_seconds": round(elapsed, 4),
                        "train_loss": train_loss, "test_loss": test_loss,
                        "train_acc": train_acc, "test_acc": test_acc})
        # Memory pools only grow, so their size after an epoch is the peak (0 on the CPU).
        pool_peak = max(pool_peak, _dev.pool_bytes(args.device)
                        + (step.pool_bytes() if isinstance(step, TinyJit) else 0))
        run.info["device_pool_peak_bytes"] = pool_peak
        if args.save:  # before the line is printed: a printed epoch is a saved epoch
            try:
                with _interrupts_deferred():  # the file and what the run says it holds agree
                    checkpoint.save(args.save, model, optimizer, epoch, history, shuffle_rng,
                                    config)
                    run.saved = (args.save, epoch)
            except OSError as e:  # checked before the run, so a full disk or a folder gone since
                print(f"error: cannot save checkpoint {args.save} after epoch {epoch}: "
                      f"{e.strerror or e}", file=sys.stderr)
                return 1
        if world is None or world.rank == 0:
            if sys.stdout is None:  # started with stdout closed (`>&-`): print() would drop it
                raise BrokenPipeError
            try:
                print(LOG_FORMAT.format(train_loss, test_loss, train_acc, test_acc, epoch,
                                        elapsed), flush=True)
            except OSError as e:  # a full disk or a gone device; a closed pipe goes on to main
                if isinstance(e, BrokenPipeError):
                    raise
                _silence_stdout()
                print(f"error: cannot write to stdout after epoch {epoch}: {e.strerror or e}",
                      file=sys.stderr)
                run.status = "stopped: stdout not writable"
                return 1
        if profiling:
            run.info["profile"] = prof.as_dict()
            if world is None or world.rank == 0:
                cold = "" if epoch > first_epoch else (
                    "; no warm-up epoch ran before it, so first-call costs are included"
                    + ("" if args.dry_run else f": --epochs {epoch + 1} gives one"))
                print(f"profile of epoch {epoch} (training and test pass{cold}):\n{prof}",
                      file=sys.stderr)
    run.status = "completed"
    return check_target(history, args.target_acc)


if __name__ == "__main__":
    sys.exit(main())
