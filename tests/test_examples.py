"""The examples are documentation: each runs, on a small slice, and says what it should."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tinygrad_mlp

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, cwd):
    # The package the tests import, installed or not, is the one the example gets.
    env = {**os.environ, "PYTHONPATH": str(Path(tinygrad_mlp.__file__).parent.parent)}
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_gradcheck_example(tmp_path):
    out = run_example("gradcheck_custom.py", cwd=tmp_path)
    assert "Softplus passes gradcheck: True" in out
    assert "BrokenSoftplus caught: gradcheck: input 0" in out


@pytest.mark.slow
def test_train_then_predict_examples(tmp_path):
    out = run_example("train_mlp.py", "--epochs", "1", "--limit", "20000", "--out", "m.npz",
                      cwd=tmp_path)
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.8, out
    out = run_example("predict.py", "m.npz", "--count", "5", cwd=tmp_path)
    assert out.count("predicted") == 5
