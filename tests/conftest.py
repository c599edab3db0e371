"""Shared fixtures: the `device` fixture, the `gpu` marker and the --require-gpu option."""

import pytest

from tinygrad_mlp import device as _dev


def pytest_addoption(parser):
    parser.addoption("--require-gpu", action="store_true",
                     help="fail (instead of skip) every gpu-marked test when no CUDA GPU is usable")


def pytest_runtest_setup(item):
    if item.get_closest_marker("gpu") and not _dev.gpu_available():
        if item.config.getoption("--require-gpu"):
            pytest.fail("--require-gpu: CuPy with a visible CUDA device is required")
        pytest.skip("no CUDA device (CuPy missing or no GPU visible)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # A gpu test that skips itself (e.g. pytest.skip inside) is a failure under --require-gpu.
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and item.get_closest_marker("gpu")
            and item.config.getoption("--require-gpu")):
        report.outcome = "failed"
        report.longrepr = f"--require-gpu: gpu test skipped: {report.longrepr}"


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request):
    """Runs a test on "cpu" and, where CUDA is present, on "gpu"."""
    return request.param
