"""The trainer's checkpoints: ``.npz`` without pickle, written atomically, read with care.

A checkpoint holds the model (``model.<name>``), the optimizer state with its momentum or Adam
buffers (``optim.<name>``) and one JSON string, ``meta``: the epochs done, the per-epoch curve,
the shuffling RNG state and the configuration that trained it. A resumed run continues that
configuration: :func:`resolve_config` refuses a flag that contradicts it, naming both values.
Every way a file can be unreadable ends in one :class:`CheckpointError` line naming the file.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import __version__
from .data import atomic_open

# The settings that decide the numbers of a run, with the flag that sets each. Older checkpoints
# may lack some: resolve_config says which, and uses the flag given or the default.
CONFIG_FLAGS = {
    "optimizer": "--optimizer", "lr": "--lr", "momentum": "--momentum",
    "nesterov": None, "weight_decay": None,  # no flags (yet): recorded for an honest resume
    "batch_size": "--batch-size", "dataset": "--dataset", "sizes": "--hidden",
    "init_scale": "--init-scale", "seed": "--seed", "shuffle": "--shuffle", "fused": "--no-fused",
}
_ZIP_MAGIC, _NPY_MAGIC = b"PK", b"\x93NUMPY"


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
    damaged metadata.
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
    if not isinstance(meta["epoch"], int) or not isinstance(meta["config"], dict):
        raise CheckpointError(f"checkpoint {path} has damaged metadata (epoch or config)")
    return meta, arrays


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


def restore(path, meta, arrays, model, optimizer, rng):
    """Load the arrays into `model` and `optimizer`, and the RNG state into `rng`."""
    try:
        model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model.")})
        optimizer.load_state_dict({k[6:]: v for k, v in arrays.items()
                                   if k.startswith("optim.")})
        rng.bit_generator.state = meta["rng"]
    except (KeyError, ValueError, TypeError) as e:
        what = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        raise CheckpointError(f"checkpoint {path} does not fit the model it describes: "
                              f"{what}") from None
