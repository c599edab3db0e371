"""A plain (non-editable) build ships the CUDA sources, and the installed package finds them.

The top-level ``kernels/`` folder is mapped to the package ``tinygrad_mlp.kernels`` by setup.cfg;
this builds a real wheel and checks its file list, then installs it into a scratch folder and
loads the sources through ``importlib.resources`` from there (not from the source tree).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _version(dist: str) -> tuple[int, ...]:
    try:
        parts = importlib.metadata.version(dist).split(".")[:2]
        return tuple(int("".join(ch for ch in p if ch.isdigit()) or 0) for p in parts)
    except importlib.metadata.PackageNotFoundError:
        return ()


def _isolation_args() -> list[str]:
    """Build without isolation when this environment can (faster, offline): setuptools >= 64
    (pyproject's floor) with a bdist_wheel, which is built in from setuptools 70.1 and otherwise
    comes from the `wheel` package. A fresh venv often has neither (Python 3.12+ venvs have no
    setuptools; 3.11's bundled one is older than 70.1 and has no `wheel`): then let pip build in
    an isolated environment, which fetches the build requirements from the package index."""
    setuptools = _version("setuptools")
    has_bdist_wheel = setuptools >= (70, 1) or importlib.util.find_spec("wheel") is not None
    if setuptools >= (64,) and has_bdist_wheel:
        return ["--no-build-isolation"]
    return []


def _source_copy(dest: Path) -> Path:
    """What a build reads (top-level files, the package, kernels/), copied so that the build's
    `build/` and `*.egg-info` land in a scratch folder, not in the checkout."""
    dest.mkdir()
    for entry in ROOT.iterdir():
        if entry.is_file():
            shutil.copy2(entry, dest / entry.name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("tinygrad_mlp", "kernels"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = _source_copy(tmp / "src")
    out = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", *_isolation_args(),
           "-w", str(out), str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout}\n{result.stderr}"
    wheels = list(out.glob("tinygrad_mlp-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contains_kernel_sources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    kernels = sorted(p.name for p in (ROOT / "kernels").glob("*.cu"))
    assert kernels, "no .cu files in kernels/"
    for name in kernels:
        assert f"tinygrad_mlp/kernels/{name}" in names, name
    if (ROOT / "tinygrad_mlp" / "reference_curves.json").exists():
        assert "tinygrad_mlp/reference_curves.json" in names
    # Mapped into the package, not shipped as a stray top-level `kernels` package.
    assert not any(n.startswith("kernels/") for n in names)


def test_installed_wheel_loads_kernels_through_importlib_resources(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
         str(site), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    probe = (
        "import json; from tinygrad_mlp import fused; "
        "print(json.dumps([fused.__file__, str(fused._kernel_dir()), "
        "sorted(fused.kernel_sources())]))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run_dir = tmp_path / "elsewhere"  # not the checkout: the source tree must not be importable
    run_dir.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=run_dir, env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    module_file, kernel_dir, names = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(module_file).resolve().is_relative_to(site.resolve())
    assert str(site) in kernel_dir or str(site.resolve()) in kernel_dir
    assert names == sorted(p.name for p in (ROOT / "kernels").glob("*.cu"))
