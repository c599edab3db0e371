"""The trainer's flags: their definitions, and the checks made before any data is loaded.

Every flag is parsed and checked here (values, output and input paths, the device, the launcher
of a --distributed job), so that a mistake exits with status 2 and one line, as argparse's own
errors do, before any data is loaded. :func:`parse_args` returns the checked namespace that
``tinygrad_mlp.train`` runs; the settings a resumed run continues are resolved there.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import __version__, data, viz
from . import device as _dev
from . import distributed as _dist
from . import functional as F

DEFAULT_EPOCHS = 30


def _number(kind, low, inclusive=False, what="a number", high=None):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        bound = f"{'>=' if inclusive else '>'} {low}"
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} must be a finite number {bound}")
        if not (value >= low if inclusive else value > low):
            raise argparse.ArgumentTypeError(f"{text} must be {bound}")
        if high is not None and value > high:  # beyond it NumPy fails with a traceback
            limit = high if kind is int else f"{high:.8g}"
            raise argparse.ArgumentTypeError(f"{text} must be <= {limit}")
        return value
    return parse


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in (0, 1] "
                                         "(write 0.96 for 96%)")
    return value


def _device_flag(text):
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _dev.canonical(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


ENVIRONMENT = """environment variables:
  TINYGRAD_MLP_DATA   a folder with the four IDX files (as --data-dir)
  XDG_CACHE_HOME      the data cache: $XDG_CACHE_HOME/tinygrad_mlp (default: ~/.cache/...)
  TINYGRAD_MLP_FUSED  0 runs the unfused reference ops (as --no-fused)
  OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS
                      BLAS threads at start-up (--threads overrides them)

exit status: 0 done, 1 error (data, checkpoint), 2 bad flags, 3 training diverged,
4 final test accuracy below --target-acc, 130 interrupted (Ctrl-C), 141 stdout closed,
143 terminated (SIGTERM)"""


SCRIPT = "tinygrad-mlp-train"  # the console script of setup.cfg


def build_parser():
    p = argparse.ArgumentParser(
        prog=SCRIPT if Path(sys.argv[0]).name == SCRIPT else "python -m tinygrad_mlp.train",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train the reference MNIST MLP (defaults reproduce the reference runs).\n"
                    "With --resume, flags left out continue the checkpoint's configuration.")
    integer = _number(int, 1, True, "an integer", high=2**31 - 1)
    p.add_argument("--version", action="version", version=version_text())
    p.add_argument("--device", type=_device_flag, default="cpu",
                   help="cpu, gpu, cuda, cuda:N or auto (gpu when available) (default: cpu)")
    p.add_argument("--epochs", type=integer, default=None,
                   help="train until this epoch; with --resume it may extend the run "
                        f"(default: {DEFAULT_EPOCHS}, or the checkpoint's)")
    p.add_argument("--batch-size", type=integer, default=None,
                   help="examples per step; the last batch takes the remainder (default: 128)")
    p.add_argument("--lr", type=_number(float, 0), default=None,
                   help="learning rate (default: 0.5 for sgd, 0.001 for adam)")
    p.add_argument("--momentum", type=_number(float, 0, True), default=None,
                   help="SGD momentum; --optimizer adam refuses it (default: 0)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=None,
                   help="sgd or adam (default: sgd)")
    p.add_argument("--hidden", type=integer, nargs="+", default=None, metavar="SIZE",
                   help="hidden layer sizes, at least one (default: 512 512)")
    p.add_argument("--init-scale", type=_number(float, 0, high=float(np.finfo(np.float32).max)),
                   default=None,
                   help="weights ~ U(-s, s), zero biases (default: 0.01)")
    p.add_argument("--seed", type=_number(int, 0, True, "an integer"), default=None,
                   help="seeds the initial weights and the shuffling (default: 0)")
    p.add_argument("--shuffle", action="store_true", default=None,
                   help="shuffle the training set every epoch (default: off, as the reference)")
    p.add_argument("--dataset", choices=data.DATASETS, default=None,
                   help="mnist or fashion-mnist (default: mnist)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="folder with the four IDX files (default: $TINYGRAD_MLP_DATA, else the "
                        "cache, else downloaded)")
    p.add_argument("--threads", type=integer, default=None, metavar="N",
                   help="BLAS threads for the CPU GEMMs (default: the BLAS library's own, "
                        "usually one per core; see README)")
    p.add_argument("--no-fused", action="store_true", default=None,
                   help="run every op unfused (layers, loss, optimizer), to measure what fusion "
                        "buys (default: fused, unless TINYGRAD_MLP_FUSED=0)")
    p.add_argument("--no-jit", action="store_true",
                   help="GPU: launch every kernel eagerly instead of replaying a CUDA graph "
                        "(default: replay)")
    p.add_argument("--metrics-json", metavar="PATH",
                   help="write the curve and run info as JSON (default: none)")
    p.add_argument("--plot", metavar="PATH",
                   help="PNG of the test curve, beside the reference curves for MNIST "
                        "(needs matplotlib; default: none)")
    p.add_argument("--save", metavar="PATH",
                   help="checkpoint (.npz) written after every epoch (default: none)")
    p.add_argument("--resume", metavar="PATH",
                   help="continue the run saved in a checkpoint (default: start afresh)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bar, no data or device messages (default: off)")
    p.add_argument("--dry-run", action="store_true",
                   help="smoke test: one epoch of one training batch and one test batch "
                        "(default: off)")
    p.add_argument("--target-acc", type=_fraction, metavar="X",
                   help="exit with status 4 when the final test accuracy is below X, "
                        "a fraction in (0, 1] such as 0.97 (default: no target)")
    p.add_argument("--profile", action="store_true",
                   help="time every op and kernel of the last epoch and print the table to "
                        "stderr; earlier epochs are the warm-up (--epochs 2: one warm-up epoch) "
                        "(default: off)")
    p.add_argument("--dump-graph", metavar="PATH",
                   help="write the graph of one training step's loss as DOT text "
                        "(.svg/.png/.pdf: rendered by Graphviz's dot program) (default: none)")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the ranks of mpiexec (or torchrun, GPUs): each rank "
                        "trains on its share of every batch; rank 0 prints and writes files "
                        "(default: off)")
    return p


def version_text() -> str:
    """``tinygrad_mlp X.Y.Z from <folder> (Python A.B.C)``: the version of the code that runs
    (``__version__``, which setup.cfg reads too), and where it was imported from."""
    folder = Path(__file__).resolve().parent
    return f"tinygrad_mlp {__version__} from {folder} (Python {platform.python_version()})"


def _path_kind(parser, flag, path) -> str:
    """"file", "folder", "other" (a device, pipe or socket) or "missing"; exit 2 naming `flag` when
    `path` cannot even be looked up (a name too long, a folder that cannot be searched)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except OSError as e:
        parser.error(f"{flag} {path}: {e.strerror or e}")
    return "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else "other"


def _check_output(parser, flag, path):
    """Exit 2 now, before any data is loaded, when `path` cannot be written."""
    target = Path(path)
    kind = _path_kind(parser, flag, path)
    if kind == "folder" or path.endswith(("/", os.sep)):
        parser.error(f"{flag} {path!r}: is a folder, not a file name")
    if kind == "other":  # renaming over /dev/null would replace it
        parser.error(f"{flag} {path}: not a regular file (a device, pipe or socket); outputs are "
                     "written to a temporary file and renamed into place: give a file name")
    folder = target.parent
    folder_kind = _path_kind(parser, flag, folder)
    if folder_kind != "folder":
        what = "does not exist" if folder_kind == "missing" else "is not a folder"
        parser.error(f"{flag} {path}: the folder {folder} {what}")
    try:  # a probe beside the target, as atomic_open writes it: the one sure test of writability
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe.tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        parser.error(f"{flag} {path}: cannot write into the folder {folder} "
                     f"({e.strerror or e})")


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda:0" if _dev.gpu_available() else "cpu"
        if not args.quiet:
            why = "a CUDA device is visible" if args.device != "cpu" else "no usable CUDA device"
            print(f"--device auto: using {args.device} ({why})", file=sys.stderr, flush=True)
    elif args.device != "cpu":
        try:
            _dev.check_gpu(args.device)
        except RuntimeError as e:
            parser.error(f"--device {args.device}: {e}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'tinygrad_mlp[plot]'")
    for flag in ("data_dir", "resume", "save", "metrics_json", "plot", "dump_graph"):
        if getattr(args, flag) == "":  # an unset shell variable: not the current folder, nor off
            parser.error(f"--{flag.replace('_', '-')}: an empty path; give a "
                         f"{'folder' if flag == 'data_dir' else 'file'}, or leave the flag out")
    try:
        F.use_fused()  # reads TINYGRAD_MLP_FUSED: an unknown value is an error, not a guess
    except ValueError as e:
        parser.error(str(e))
    kind = _path_kind(parser, "--resume", args.resume) if args.resume else "file"
    if kind != "file":
        what = {"folder": "a folder, not a checkpoint", "other": "not a regular file",
                "missing": "no such file"}[kind]
        parser.error(f"--resume: {what}: {args.resume}")
    if args.optimizer == "adam" and args.momentum:
        parser.error(f"--momentum {args.momentum:g} applies to --optimizer sgd only (Adam keeps "
                     "its own moment estimates)")
    suffix = Path(args.dump_graph or "").suffix.lower()
    if suffix not in ("", ".dot", ".gv", *viz.RENDERED):  # DOT text in a .jpg would mislead
        parser.error(f"--dump-graph {args.dump_graph}: {suffix} is not a graph format: write "
                     ".dot or .gv (DOT text), or .svg, .png or .pdf (rendered by Graphviz)")
    if suffix in viz.RENDERED and shutil.which("dot") is None:
        parser.error(f"--dump-graph {args.dump_graph}: {Path(args.dump_graph).suffix} needs "
                     "Graphviz's 'dot' program, which is not installed (apt install graphviz); "
                     "a .dot file needs nothing")
    # Two outputs in one file would overwrite each other (--save may continue --resume's file),
    # and none may overwrite the data it trains on.
    written = {Path(args.resume).resolve(): "--resume"} if args.resume else {}
    for folder in _data_folders(args):
        written.update({(folder / f"{name}{gz}").resolve(): f"a data file in {folder}"
                        for name in data.IDX_NAMES for gz in ("", ".gz")})
    for flag in ("save", "metrics_json", "plot", "dump_graph"):
        path, name = getattr(args, flag), "--" + flag.replace("_", "-")
        if path is None:
            continue
        _check_output(parser, name, path)
        other = written.setdefault(Path(path).resolve(), name)
        if other != name and (name, other) != ("--save", "--resume"):
            parser.error(f"{name} {path}: the same file as {other}")
    if args.distributed:
        _join_job(args, parser)
    return args


def _data_folders(args) -> list[Path]:
    """The folders whose IDX files this run may read: --data-dir (or its variable), the caches."""
    given = args.data_dir or os.environ.get(data.DATA_ENV)
    return [Path(given).expanduser()] if given else [data.cache_dir(d) for d in data.DATASETS]


def _join_job(args, parser):
    """--distributed: join the launcher's job; only rank 0 shows progress and writes files."""
    try:
        world = _dist.init()
        args.device = world.local_device(args.device)
    except (_dist.DistributedError, RuntimeError) as e:
        parser.error(f"--distributed: {e}")
    if world.rank != 0:
        args.quiet, args.metrics_json, args.plot, args.save = True, None, None, None
