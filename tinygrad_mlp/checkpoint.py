"""The trainer's checkpoints: ``.npz`` without pickle, written atomically, read with care.

A checkpoint holds the model (``model.<name>``), the optimizer state with its momentum or Adam
buffers (``optim.<name>``) and one JSON string, ``meta``: the epochs done, the per-epoch curve,
the shuffling RNG state and the configuration that trained it. A resumed run continues that
configuration: :func:`resolve_config` refuses a flag that contradicts it, naming both values.
Every way a file can be unreadable ends in one :class:`CheckpointError` line naming the file.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import __version__
from .data import DATASETS, atomic_open

# The settings that decide the numbers of a run, with the flag that sets each. Older checkpoints
# may lack some: resolve_config says which, and uses the flag given or the default.
CONFIG_FLAGS = {
    "optimizer": "--optimizer", "lr": "--lr", "momentum": "--momentum",
    "nesterov": None, "weight_decay": None,  # no flags (yet): recorded for an honest resume
    "batch_size": "--batch-size", "dataset": "--dataset", "sizes": "--hidden",
    "init_scale": "--init-scale", "seed": "--seed", "shuffle": "--shuffle", "fused": "--no-fused",
}
_ZIP_MAGIC, _NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"  # a local file header starts an .npz
_INT_MAX = 2**31 - 1  # the flags' bound


def _integer(low, high=_INT_MAX):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _real(low, inclusive):
    return lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                      and (v >= low if inclusive else v > low))


# What each recorded setting may hold: a crafted or damaged value is named here, not met later
# as a traceback deep inside NumPy.
_SETTINGS = {
    "optimizer": (lambda v: v in ("sgd", "adam"), "sgd or adam"),
    "lr": (_real(0, False), "a finite number > 0"),
    "momentum": (_real(0, True), "a finite number >= 0"),
    "nesterov": (lambda v: isinstance(v, bool), "true or false"),
    "weight_decay": (_real(0, True), "a finite number >= 0"),
    "batch_size": (_integer(1), "an integer in [1, 2**31 - 1]"),
    "dataset": (lambda v: v in DATASETS, " or ".join(DATASETS)),
    "sizes": (lambda v: (isinstance(v, list) and len(v) >= 3 and all(map(_integer(1), v))
                         and v[0] == 784 and v[-1] == 10),
              "784, then the hidden sizes (integers >= 1), then 10"),
    "init_scale": (_real(0, False), "a finite number > 0"),
    "seed": (_integer(0, math.inf), "an integer >= 0"),
    "shuffle": (lambda v: isinstance(v, bool), "true or false"),
    "fused": (lambda v: isinstance(v, bool), "true or false"),
    "epochs": (_integer(1), "an integer in [1, 2**31 - 1]"),
    "jit": (lambda v: isinstance(v, bool), "true or false"),
    "dry_run": (lambda v: isinstance(v, bool), "true or false"),
}
_CURVE = ("elapsed_seconds", "train_loss", "test_loss", "train_acc", "test_acc")


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the run (the message names the file)."""


class FlagConflict(CheckpointError):
    """A flag given on the command line contradicts the checkpoint's configuration."""


def save(path, model, optimizer, epoch, history, rng, config):
    """Write model, optimizer, curve, shuffling RNG and `config` to `path` (atomically)."""
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim.{k}": v for k, v in optimizer.state_dict().items()})
    meta = {"epoch": epoch, "history": history, "rng": rng.bit_generator.state,
            "config": config, "version": __version__}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_open(Path(path)) as f:
        np.savez(f, **arrays)


def read(path) -> tuple[dict, dict]:
    """Read a checkpoint written by :func:`save`: returns (meta, arrays).

    Raises :class:`CheckpointError` in one line naming the file and what is wrong: missing,
    empty, not an ``.npz``, a lone ``.npy`` array, truncated or damaged, pickled objects, no or
    damaged metadata, a setting or curve that no run could have written.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    if head.startswith(_NPY_MAGIC):
        raise CheckpointError(f"{path} is a single NumPy array (.npy), not a checkpoint "
                              "(the .npz archive that --save writes)")
    if not head.startswith(_ZIP_MAGIC):
        raise CheckpointError(f"{path} is not a checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise CheckpointError(f"checkpoint {path} holds pickled objects, which are never "
                                  "loaded (checkpoints written by --save hold none)") from None
        raise CheckpointError(f"checkpoint {path} is damaged ({e})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or damaged ({e})") from None
    if "meta" not in arrays:
        raise CheckpointError(
            f"{path} has no training metadata (epoch, optimizer state, configuration): it is "
            "not a checkpoint written by --save (model weights alone cannot be resumed)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has damaged metadata (not a JSON object)")
    missing = [k for k in ("epoch", "history", "rng", "config") if k not in meta]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)} in its metadata "
                              "(written by an older version?); it cannot be resumed")
    if not _integer(1, _INT_MAX)(meta["epoch"]) or not isinstance(meta["config"], dict):
        raise CheckpointError(f"checkpoint {path} has damaged metadata (epoch or config)")
    _check_meta(path, meta)
    return meta, arrays


def _check_meta(path, meta):
    """Raise CheckpointError naming the first setting or curve entry that a run cannot use."""
    config = meta["config"]
    for key, (valid, expected) in _SETTINGS.items():
        if key in config and not valid(config[key]):
            raise CheckpointError(f"checkpoint {path} has a damaged setting: {key} = "
                                  f"{config[key]!r} (expected {expected})")
    if config.get("nesterov") and not config.get("momentum"):
        raise CheckpointError(f"checkpoint {path} has damaged settings: nesterov without "
                              "momentum")
    history = meta["history"]
    good = isinstance(history, list) and all(
        isinstance(row, dict) and _integer(1)(row.get("epoch"))
        and all(_real(0, True)(row.get(k)) for k in _CURVE) for row in history)
    if not good or (history and history[-1]["epoch"] != meta["epoch"]):
        raise CheckpointError(f"checkpoint {path} has a damaged curve (history): not a list of "
                              f"epochs 1 to {meta['epoch']} with {', '.join(_CURVE)}")


def _show(key, value) -> str:
    """A setting as the command line would say it."""
    if key == "sizes":
        return "--hidden " + " ".join(map(str, value[1:-1])) + f" (sizes {value})"
    if key == "shuffle":
        return "--shuffle" if value else "no --shuffle"
    if key == "fused":
        return "fused ops" if value else "--no-fused"
    flag = CONFIG_FLAGS.get(key)
    return f"{flag} {value}" if flag else f"{key}={value}"


def resolve_config(path, saved: dict, requested: dict, defaults: dict) -> tuple[dict, list]:
    """The configuration a resumed run continues: the checkpoint's `saved` one.

    `requested` holds the settings given explicitly (flags not left at their default); one that
    contradicts `saved` raises :class:`CheckpointError` naming both values. Settings an older
    checkpoint lacks come from `requested`, else `defaults`; returns (config, notes) where the
    notes say so in words.
    """
    config, conflicts, assumed = {}, [], []
    for key in CONFIG_FLAGS:
        if key in saved:
            config[key] = saved[key]
            if key in requested and requested[key] != saved[key]:
                conflicts.append(f"{_show(key, requested[key])} contradicts the checkpoint "
                                 f"{path}, trained with {_show(key, saved[key])}")
        else:
            config[key] = requested.get(key, defaults[key])
            assumed.append(_show(key, config[key]))
    if conflicts:
        raise FlagConflict("; ".join(conflicts) + " (a resumed run keeps its configuration; "
                              "only --epochs may change: drop the flag, or start a new run)")
    notes = []
    if assumed:
        notes.append(f"note: checkpoint {path} predates recording some settings; assuming "
                     f"{', '.join(assumed)}")
    return config, notes


_COUNTERS = ("optim.step", "optim.param_step.0")  # integers; every other array holds floats


def _check_arrays(path, arrays, optimizer):
    """Each array a finite real of the right kind, and no other optimizer's state."""
    for key, a in arrays.items():
        kind = "iu" if key in _COUNTERS else "f"
        if not isinstance(a, np.ndarray) or a.dtype.kind not in kind:
            what = f"dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
            need = "integers" if kind == "iu" else "floating-point numbers"
            raise CheckpointError(f"checkpoint {path}: {key} has {what}, expected {need}")
        if kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"checkpoint {path}: {key} holds NaN or infinite values (saved "
                                  "from a diverged run?); it cannot be resumed")
        if kind == "iu" and (a < 0).any():
            raise CheckpointError(f"checkpoint {path}: {key} holds a negative step count")
    own = {f"optim.{k}" for k in optimizer.state_dict()}
    foreign = sorted(k for k in arrays if k.startswith("optim.") and k not in own)
    if foreign:
        raise CheckpointError(
            f"checkpoint {path} holds optimizer state {foreign[0]!r}, which "
            f"{type(optimizer).__name__} does not have: its settings and its arrays disagree")


def restore(path, meta, arrays, model, optimizer, rng):
    """Load the arrays into `model` and `optimizer`, and the RNG state into `rng`."""
    _check_arrays(path, arrays, optimizer)
    try:
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        optimizer.load_state_dict({k[6:]: v for k, v in arrays.items()
                                   if k.startswith("optim.")})
    except (KeyError, ValueError, TypeError) as e:
        what = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        raise CheckpointError(f"checkpoint {path} does not fit the model it describes: "
                              f"{what}") from None
    try:
        rng.bit_generator.state = meta["rng"]
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} has a damaged shuffling RNG state "
                              f"({e.args[0] if e.args else type(e).__name__})") from None
