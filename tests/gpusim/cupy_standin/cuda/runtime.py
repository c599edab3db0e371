"""``cupy.cuda.runtime`` of the stand-in: one simulated device and the queries the package makes."""

from __future__ import annotations

DEVICE_NAME = b"Simulated GPU (CPU)"
TOTAL_MEMORY = 16 << 30  # what memGetInfo and the properties report; nothing is reserved

streamCaptureModeGlobal = 0  # noqa: N816 - CuPy's names
streamCaptureModeThreadLocal = 1  # noqa: N816
streamCaptureModeRelaxed = 2  # noqa: N816
is_hip = False
_is_hip_environment = False


class CUDARuntimeError(RuntimeError):
    """A CUDA runtime error, worded as CuPy words them: ``<cudaError name>: <message>``."""

    def __init__(self, name: str, message: str):
        self.status_name = name
        super().__init__(f"{name}: {message}")


def _check_device(device: int) -> int:
    if not isinstance(device, int) or not 0 <= device < getDeviceCount():
        raise CUDARuntimeError("cudaErrorInvalidDevice", f"invalid device ordinal ({device!r})")
    return device


def getDeviceCount() -> int:  # noqa: N802 - CuPy's names
    return 1


def getDevice() -> int:  # noqa: N802
    return 0


def setDevice(device: int) -> None:  # noqa: N802
    _check_device(device)


def deviceSynchronize() -> None:  # noqa: N802
    from . import _host_sync

    _host_sync("cudaDeviceSynchronize")


def getDeviceProperties(device: int) -> dict:  # noqa: N802
    _check_device(device)
    return {
        "name": DEVICE_NAME, "totalGlobalMem": TOTAL_MEMORY, "major": 9, "minor": 0,
        "multiProcessorCount": 1, "warpSize": 32, "maxThreadsPerBlock": 1024,
        "maxThreadsDim": (1024, 1024, 64), "maxGridSize": (2**31 - 1, 65535, 65535),
        "sharedMemPerBlock": 48 << 10, "regsPerBlock": 65536, "clockRate": 1000000,
        "memoryClockRate": 1000000, "memoryBusWidth": 64, "l2CacheSize": 0,
        "pciBusID": 0, "pciDeviceID": 0, "pciDomainID": 0,
    }


def runtimeGetVersion() -> int:  # noqa: N802
    return 13000


def driverGetVersion() -> int:  # noqa: N802
    return 13000


def memGetInfo() -> tuple[int, int]:  # noqa: N802
    from . import _default_pool

    return TOTAL_MEMORY - _default_pool().total_bytes(), TOTAL_MEMORY
