"""The device backend: device names, and the array module (NumPy or CuPy) behind each.

Nothing here knows about autodiff. CuPy is imported lazily, once, and only when a GPU is asked for;
the failure is kept and reported with an install hint (as Chainer's ``check_cuda_available`` does).
"""

from __future__ import annotations

import numpy as np

GPU_INSTALL_HINT = (
    "install the GPU extra: pip install 'tinygrad_mlp[gpu]' "
    "(CuPy for CUDA 13; on CUDA 12 use: pip install cupy-cuda12x)"
)

_cupy = None
_cupy_error: Exception | None = None


def _import_cupy():
    global _cupy, _cupy_error
    if _cupy is None and _cupy_error is None:
        try:
            import cupy

            _cupy = cupy
        except Exception as e:  # ImportError, or a broken CUDA runtime raising at import
            _cupy_error = e
    return _cupy


def canonical(device: str) -> str:
    """Parse a device name: "cpu", or "gpu" / "cuda" / "cuda:N" / "gpu:N" -> "cuda:N".

    Only the name is checked here; whether the GPU exists is checked by :func:`array_module`.
    """
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'gpu', got {device!r}")
    name = device.strip().lower()
    if name == "cpu":
        return "cpu"
    if name in ("gpu", "cuda"):
        return "cuda:0"
    kind, sep, index = name.partition(":")
    if kind in ("gpu", "cuda") and sep and index.isdigit():
        return f"cuda:{int(index)}"
    raise ValueError(f"unknown device {device!r}: expected 'cpu', 'gpu', 'cuda' or 'cuda:N'")


def is_gpu(device: str) -> bool:
    return canonical(device) != "cpu"


def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    cupy = _import_cupy()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def check_gpu(device: str = "cuda:0"):
    """Return CuPy after checking that it imports and that `device` exists; else one clear error."""
    cupy = _import_cupy()
    if cupy is None:
        raise RuntimeError(
            f"device {device!r} needs CuPy, which could not be imported ({_cupy_error}); "
            f"{GPU_INSTALL_HINT}"
        )
    if (cupy, device) in _checked:  # the device query once, not on every transfer
        return cupy
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        raise RuntimeError(
            f"device {device!r}: CuPy is installed but no CUDA device is visible ({e}); "
            "check the NVIDIA driver and CUDA_VISIBLE_DEVICES, or use device='cpu'"
        ) from None
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        raise RuntimeError(f"device {device!r} does not exist: {count} CUDA device(s) visible")
    _checked.add((cupy, device))
    return cupy


_checked: set = set()


def array_module(device: str):
    """The array module for a device: numpy for "cpu", cupy for a GPU (checked on first use)."""
    device = canonical(device)
    if device == "cpu":
        return np
    return check_gpu(device)


def device_of(array) -> str:
    """The canonical device of a NumPy or CuPy array."""
    if isinstance(array, np.ndarray) or np.isscalar(array):
        return "cpu"
    cupy = _import_cupy()
    if cupy is not None and isinstance(array, cupy.ndarray):
        return f"cuda:{array.device.id}"
    raise TypeError(f"expected a NumPy or CuPy array, got {type(array).__name__}")


def module_of(array):
    """numpy or cupy, whichever owns `array` (cheap: no device query)."""
    return np if isinstance(array, (np.ndarray, np.generic)) else _import_cupy()


def to_device(array, device: str):
    """Copy `array` (NumPy, CuPy, or what np.asarray takes) to `device`; no copy if there."""
    if device == "cpu" and isinstance(array, np.ndarray):
        return array  # the common case, without parsing the name
    device = canonical(device)
    if device == "cpu":
        cupy = _cupy
        if cupy is not None and isinstance(array, cupy.ndarray):
            return cupy.asnumpy(array)
        return np.asarray(array)
    cupy = check_gpu(device)
    index = int(device.partition(":")[2])
    if isinstance(array, cupy.ndarray) and array.device.id == index:
        return array
    with cupy.cuda.Device(index):
        return cupy.asarray(array)


capturing = False  # set by jit while a CUDA graph is being recorded


def matmul(a, b):
    """``a @ b``; while a CUDA graph is being captured, 2-D GPU GEMMs go through our own cuBLAS
    handle, since CuPy refuses cuBLAS calls during capture."""
    if capturing and a.ndim == 2 and b.ndim == 2 and not isinstance(a, np.ndarray):
        from . import cublas

        return cublas.matmul(a, b)
    return a @ b


def pool_bytes(device: str) -> int:
    """Bytes CuPy's default memory pool holds on `device` (0 on the CPU)."""
    if not is_gpu(device):
        return 0
    return int(check_gpu(device).get_default_memory_pool().total_bytes())


def synchronize(device: str) -> None:
    """Wait for queued GPU work on `device` (no-op on the CPU)."""
    if is_gpu(device):
        check_gpu(device).cuda.get_current_stream().synchronize()
