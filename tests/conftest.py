"""Shared fixtures: the `device` fixture, the `gpu` and `hardware` markers, --require-gpu.

A `gpu` test runs on a real CUDA GPU where CuPy sees one. Elsewhere, wherever g++ is present, it
runs on a simulated GPU: the NumPy-backed CuPy stand-in (tests/gpusim/cupy_standin) in place of
`cupy`, with the kernels compiled by g++ for the CPU CUDA simulator (tests/gpusim). Tests that
only real hardware can answer (our cuBLAS handle, timings) are marked `hardware` too and skip on
the simulated GPU. --require-gpu means real hardware: without one, every gpu test fails.
"""

import contextlib

import pytest

from tinygrad_mlp import device as _dev

_mode = {}
_standin = pytest.StashKey[contextlib.ExitStack]()  # a gpu test's installed stand-in


def pytest_addoption(parser):
    parser.addoption("--require-gpu", action="store_true",
                     help="fail (instead of skip or simulate) every gpu-marked test when no CUDA "
                          "GPU is usable")


def gpu_mode() -> str | None:
    """"real" (CuPy sees a CUDA device), "simulated" (g++ builds the simulator) or None."""
    if "mode" not in _mode:
        from gpusim import standin

        if _dev.gpu_available():
            _mode["mode"] = "real"
        else:
            _mode["mode"] = "simulated" if standin.available() else None
    return _mode["mode"]


def pytest_report_header(config):
    mode = gpu_mode()
    return f"gpu tests: {mode or 'skipped (no CUDA device, no g++ for the simulator)'}"


def pytest_runtest_setup(item):
    if not item.get_closest_marker("gpu"):
        return
    mode = gpu_mode()
    if mode == "real":
        return
    if item.config.getoption("--require-gpu"):
        pytest.fail("--require-gpu: CuPy with a visible CUDA device is required")
    if mode is None:
        pytest.skip("no CUDA device (CuPy missing or no GPU visible) and no g++ to simulate one")
    hardware = item.get_closest_marker("hardware")
    if hardware:
        pytest.skip(f"needs real GPU hardware: {hardware.args[0]}")
    from gpusim import standin

    item.stash[_standin] = stack = contextlib.ExitStack()
    stack.enter_context(standin.installed())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield  # after the test's fixtures are torn down
    stack = item.stash.get(_standin, None)
    if stack is not None:
        stack.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # A gpu test that skips itself (e.g. pytest.skip inside) is a failure under --require-gpu.
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and item.get_closest_marker("gpu")
            and item.config.getoption("--require-gpu")):
        report.outcome = "failed"
        report.longrepr = f"--require-gpu: gpu test skipped: {report.longrepr}"


@pytest.fixture
def simulated_gpu():
    """The CuPy stand-in on the simulated GPU, whatever the machine has (skips without g++)."""
    from gpusim import standin

    if not standin.available():
        pytest.skip("the simulated GPU needs g++")
    with standin.installed() as cupy:
        yield cupy


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    """Runs a test on "cpu" and on "gpu" (a real CUDA GPU, or the simulated one)."""
    return request.param
