"""The trainer CLI: log format, flags, checkpoints and resume, NaN stop, a real 3-epoch run."""

import json
import re

import numpy as np
import pytest
from helpers import learnable_mnist

from tinygrad_mlp import data, train

LINE = re.compile(r"^loss: \d+\.\d{4} / \d+\.\d{4}\taccuracy: \d\.\d{4} / \d\.\d{4}\t"
                  r"step (\d+)  \d+\.\d{2} sec$")


@pytest.fixture
def small_mnist(monkeypatch):
    """A small learnable stand-in for MNIST, given to the trainer in place of the real one."""
    fake = learnable_mnist(600, 200, noise=60, signal=150)
    monkeypatch.setattr(data, "load_mnist", lambda *a, **k: fake)
    return fake


def run(capsys, *argv):
    code = train.main(["--quiet", *argv])
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def test_log_lines_match_reference_format(small_mnist, capsys):
    code, lines, _ = run(capsys, "--epochs", "3", "--batch-size", "64")
    assert code == 0
    assert [int(LINE.match(line).group(1)) for line in lines] == [1, 2, 3]


def test_reference_format_string():
    line = train.LOG_FORMAT.format(0.6773, 0.3326, 0.8974, 0.8973, 1, 88.5)
    assert line == "loss: 0.6773 / 0.3326\taccuracy: 0.8974 / 0.8973\tstep 1  88.50 sec"


@pytest.mark.parametrize("argv, message", [
    (["--lr", "0"], "--lr: 0 must be > 0"),
    (["--lr", "-1"], "--lr: -1 must be > 0"),
    (["--batch-size", "0"], "--batch-size: 0 must be >= 1"),
    (["--epochs", "x"], "--epochs: 'x' is not an integer"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["--hidden", "0"], "--hidden: 0 must be >= 1"),
    (["--resume", "no-such-file.npz"], "no such file"),
    (["--target-acc", "96"], "--target-acc: 96 is not a fraction in (0, 1]"),
    (["--target-acc", "0"], "--target-acc: 0 is not a fraction in (0, 1]"),
    (["--target-acc", "nan"], "--target-acc: nan is not a fraction in (0, 1]"),
    (["--target-acc", "high"], "--target-acc: 'high' is not a number"),
])
def test_invalid_flags_exit_2_with_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_gpu_flag_without_gpu_is_a_clear_error(capsys, monkeypatch):
    from tinygrad_mlp import device

    monkeypatch.setattr(device, "_cupy", None)
    monkeypatch.setattr(device, "_cupy_error", ImportError("No module named 'cupy'"))
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--device", "gpu"])
    assert exit_info.value.code == 2
    assert "needs CuPy" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.parametrize("flags", [[], ["--no-jit", "--momentum", "0.9", "--shuffle"],
                                   ["--optimizer", "adam", "--lr", "0.001"]],
                         ids=["jit-sgd", "eager-momentum-shuffle", "adam"])
def test_gpu_training_equals_cpu_training(small_mnist, capsys, tmp_path, flags):
    # 300 steps (4 epochs of 75 batches) through the trainer, on the GPU and on the CPU.
    common = ["--epochs", "4", "--batch-size", "8", "--hidden", "32", "--lr", "0.05", *flags]
    records = {}
    for device in ("cpu", "gpu"):
        metrics, ckpt = tmp_path / f"{device}.json", tmp_path / f"{device}.npz"
        code, lines, err = run(capsys, *common, "--device", device, "--metrics-json",
                               str(metrics), "--save", str(ckpt))
        assert code == 0 and len(lines) == 4, err
        records[device] = json.loads(metrics.read_text()), np.load(ckpt)
    (cpu, cpu_ckpt), (gpu, gpu_ckpt) = records["cpu"], records["gpu"]
    assert gpu["device"] == "cuda:0" and "cupy" in gpu["versions"]
    assert gpu["device_pool_peak_bytes"] > 0
    for want, got in zip(cpu["epochs"], gpu["epochs"], strict=True):
        for key in ("train_loss", "test_loss"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, err_msg=key)
        assert abs(got["train_acc"] - want["train_acc"]) <= 1 / 600
        assert abs(got["test_acc"] - want["test_acc"]) <= 1 / 200
    # A replayed graph runs no Python, so the optimizer's step counter (which its math never
    # reads; Adam's per-parameter counts are device work) advances only on the calls that ran
    # the step: compare it only where no graph was used.
    replayed = "--no-jit" not in flags
    for key in cpu_ckpt.files:
        if key != "meta" and not (replayed and key == "optim.step"):
            np.testing.assert_allclose(gpu_ckpt[key], cpu_ckpt[key], rtol=1e-4, atol=1e-5,
                                       err_msg=key)


def test_gpu_epoch_keeps_data_on_the_device(small_mnist, simulated_gpu):
    # The simulated GPU counts host transfers: after the one upload of the dataset, an epoch and
    # an evaluation copy nothing to the device and sync only for their final numbers.
    from tinygrad_mlp import Tensor, nn, optim

    x, y, x_test, y_test = train.to_device_dataset(small_mnist, "gpu")
    assert all(isinstance(a, simulated_gpu.ndarray) for a in (x, y, x_test, y_test))
    Tensor.manual_seed(0)
    model = nn.MLP([784, 16, 10], init_scale=0.01).to("gpu")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for jit in (False, True):
        before = dict(simulated_gpu.cuda._transfers)
        train.train_epoch(model, opt, x, y, 64, step=train.make_step(model, opt, jit=jit))
        train.evaluate(model, x_test, y_test)
        after = simulated_gpu.cuda._transfers
        assert after["host_to_device"] == before["host_to_device"], f"jit={jit}"
        assert after["host_sync"] - before["host_sync"] == 4, f"jit={jit}"  # 2 + 2 results


def test_checkpoint_resume_equals_uninterrupted_run(small_mnist, capsys, tmp_path):
    common = ["--batch-size", "50", "--shuffle", "--momentum", "0.9", "--lr", "0.1"]
    _, full, _ = run(capsys, *common, "--epochs", "3", "--save", str(tmp_path / "full.npz"))
    ckpt = tmp_path / "ckpt.npz"
    _, first, _ = run(capsys, *common, "--epochs", "2", "--save", str(ckpt))
    resumed = tmp_path / "resumed.npz"
    code, rest, _ = run(capsys, *common, "--epochs", "3", "--resume", str(ckpt),
                        "--save", str(resumed))
    assert code == 0
    strip = [line.rsplit("\t", 1)[0] for line in full]  # all but the seconds
    assert [line.rsplit("\t", 1)[0] for line in first + rest] == strip
    with np.load(tmp_path / "full.npz", allow_pickle=False) as a, np.load(resumed) as b:
        for key in a.files:
            if key != "meta":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_checkpoint_of_other_architecture_is_rejected(small_mnist, capsys, tmp_path):
    ckpt = tmp_path / "c.npz"
    run(capsys, "--epochs", "1", "--hidden", "32", "--save", str(ckpt))
    code, _, err = run(capsys, "--epochs", "2", "--hidden", "64", "--resume", str(ckpt))
    assert code == 2 and "--hidden 64 (sizes [784, 64, 10]) contradicts" in err
    assert "trained with --hidden 32 (sizes [784, 32, 10])" in err
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "--epochs", "2", "--resume", str(tmp_path / "junk.npz"))
    assert code == 1 and "junk.npz is not a checkpoint (not an .npz archive)" in err


def test_nan_loss_stops_naming_epoch_and_step(small_mnist, capsys):
    code, lines, err = run(capsys, "--epochs", "3", "--lr", "1e30", "--init-scale", "1")
    assert code == 3
    assert re.search(r"diverged in epoch 1: loss became (nan|inf) at step \d+", err)
    assert lines == []


def test_metrics_json_and_plot(small_mnist, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    metrics, png = tmp_path / "m.json", tmp_path / "curve.png"
    code, _, _ = run(capsys, "--epochs", "2", "--metrics-json", str(metrics), "--plot", str(png))
    assert code == 0
    record = json.loads(metrics.read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert record["config"]["sizes"] == [784, 512, 512, 10] and "numpy" in record["versions"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_curves_ship_with_the_package():
    curves = train.reference_curves()
    assert set(curves) == {"keras_cpu", "tensorflow_gpu", "neural_networks_cpu"}
    assert all(len(rows) == 30 for rows in curves.values())


def test_target_acc_gates_learning(small_mnist, capsys):
    # Three epochs learn the fixture (test accuracy 1.0); one epoch does not (about 0.1).
    code, lines, err = run(capsys, "--epochs", "3", "--batch-size", "16", "--target-acc", "0.95")
    assert code == 0 and len(lines) == 3 and "error" not in err
    code, lines, err = run(capsys, "--epochs", "1", "--batch-size", "16", "--target-acc", "0.95")
    final = LINE.match(lines[-1]).group(0).split("accuracy: ")[1].split(" / ")[1][:6]
    assert code == 4 and f"final test accuracy {final} is below --target-acc 0.9500" in err


def test_dry_run_is_one_batch_each_and_one_line(small_mnist, capsys, monkeypatch):
    seen, real_train, real_eval = [], train.train_epoch, train.evaluate
    monkeypatch.setattr(train, "train_epoch", lambda model, opt, x, *a, **k: (
        seen.append(("train_epoch", len(x))) or real_train(model, opt, x, *a, **k)))
    monkeypatch.setattr(train, "evaluate", lambda model, x, *a, **k: (
        seen.append(("evaluate", len(x))) or real_eval(model, x, *a, **k)))
    code, lines, _ = run(capsys, "--dry-run", "--epochs", "5", "--batch-size", "32")
    assert code == 0 and len(lines) == 1 and LINE.match(lines[0]).group(1) == "1"
    assert seen == [("train_epoch", 32), ("evaluate", 128)]


def test_profile_prints_the_last_epoch_table(small_mnist, capsys, tmp_path):
    metrics = tmp_path / "m.json"
    code, lines, err = run(capsys, "--epochs", "2", "--hidden", "32", "--profile",
                           "--metrics-json", str(metrics))
    assert code == 0 and len(lines) == 2
    assert "profile of epoch 2 (training and test pass)" in err and "epoch 1" not in err
    for name in ("LinearReLU", "SoftmaxCrossEntropy", "matmul", "sgd_step",
                 "GEMM (matmul, gemm_into)"):
        assert name in err
    ops = {(r["name"], r["phase"]): r["calls"]
           for r in json.loads(metrics.read_text())["profile"]["ops"]}
    # 600 training rows in 5 batches of 128; 200 test rows in 2 batches (forward only).
    assert ops[("LinearReLU", "forward")] == 5 + 2
    assert ops[("SoftmaxCrossEntropy", "backward")] == 5


def test_dump_graph_writes_the_step_graph(small_mnist, capsys, tmp_path):
    path = tmp_path / "step.dot"
    code, _, _ = run(capsys, "--epochs", "1", "--hidden", "32", "--dump-graph", str(path))
    dot = path.read_text()
    assert code == 0 and dot.startswith("digraph")
    assert dot.count('label="LinearReLU') == 1 and dot.count('label="SoftmaxCrossEntropy') == 1
    assert "layers.0.weight\\n(784, 32) float32 cpu" in dot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step.dot"]
    with pytest.raises(SystemExit) as info:  # checked with the other outputs, before the data
        run(capsys, "--epochs", "1", "--dump-graph", str(tmp_path / "missing" / "g.dot"))
    out = capsys.readouterr()
    assert info.value.code == 2 and out.out == ""
    assert f"--dump-graph {tmp_path / 'missing' / 'g.dot'}: the folder" in out.err


@pytest.mark.slow
def test_three_epochs_on_real_mnist_reach_reference_band(capsys):
    code, lines, err = run(capsys, "--epochs", "3", "--target-acc", "0.96")
    assert code == 0 and len(lines) == 3, (lines, err)
