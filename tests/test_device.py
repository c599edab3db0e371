"""Device names and the clear errors for a missing GPU."""

import numpy as np
import pytest

from tinygrad_mlp import Tensor
from tinygrad_mlp import device as dev


@pytest.mark.parametrize("name, want", [("cpu", "cpu"), ("CPU", "cpu"), ("gpu", "cuda:0"),
                                        ("cuda", "cuda:0"), ("cuda:1", "cuda:1"),
                                        ("gpu:2", "cuda:2")])
def test_canonical_names(name, want):
    assert dev.canonical(name) == want


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "cuda:", ""])
def test_unknown_device_is_named(name):
    with pytest.raises(ValueError, match="unknown device"):
        dev.canonical(name)


def test_cpu_array_module_is_numpy():
    assert dev.array_module("cpu") is np


def test_gpu_without_cupy_says_what_is_missing(monkeypatch):
    monkeypatch.setattr(dev, "_cupy", None)
    monkeypatch.setattr(dev, "_cupy_error", ImportError("No module named 'cupy'"))
    with pytest.raises(RuntimeError, match=r"needs CuPy.*pip install 'tinygrad_mlp\[gpu\]'"):
        Tensor([1.0], device="gpu")
    assert dev.gpu_available() is False


def test_gpu_without_device_says_so(monkeypatch):
    class FakeRuntime:
        @staticmethod
        def getDeviceCount():
            raise RuntimeError("cudaErrorNoDevice")

    class FakeCupy:
        class cuda:
            runtime = FakeRuntime

    monkeypatch.setattr(dev, "_cupy", FakeCupy)
    with pytest.raises(RuntimeError, match="no CUDA device is visible"):
        dev.array_module("cuda:0")


@pytest.mark.gpu
def test_gpu_round_trip():
    t = Tensor([1.0, 2.0], device="gpu")
    assert t.device == "cuda:0" and type(t.data).__module__.startswith("cupy")
    np.testing.assert_array_equal(t.to("cpu").numpy(), [1.0, 2.0])
