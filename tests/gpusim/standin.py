"""Put the NumPy-backed CuPy stand-in (``cupy_standin/``) in place of ``cupy`` for a while.

:func:`installed` swaps ``sys.modules["cupy"]`` (and its submodules) for the stand-in, gives
tinygrad_mlp.cublas the reference GEMM of :mod:`gpusim.reference_cublas` in place of libcublas,
and resets what tinygrad_mlp cached about CuPy (the module, its device check, compiled kernels,
device scalars, the cuBLAS handle), so the package imports the stand-in as it would import CuPy;
on exit everything is put back. The stand-in is loaded once per process, so its arrays, pools
and compiled kernels outlive one test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent / "cupy_standin"
_modules: dict = {}


def available() -> bool:
    """The stand-in's kernels need g++ (the simulator compiles them)."""
    return shutil.which("g++") is not None


def _is_cupy(name: str) -> bool:
    return name == "cupy" or name.startswith("cupy.")


def load():
    """The stand-in package, loaded under the name ``cupy`` (once); returns the module."""
    if not _modules:
        saved = {name: sys.modules.pop(name) for name in list(sys.modules) if _is_cupy(name)}
        try:
            spec = importlib.util.spec_from_file_location(
                "cupy", _PACKAGE / "__init__.py", submodule_search_locations=[str(_PACKAGE)])
            module = importlib.util.module_from_spec(spec)
            sys.modules["cupy"] = module
            spec.loader.exec_module(module)
            _modules.update({name: sys.modules[name] for name in sys.modules if _is_cupy(name)})
        finally:
            for name in [n for n in sys.modules if _is_cupy(n)]:
                del sys.modules[name]
            sys.modules.update(saved)
    return _modules["cupy"]


def _reset_package_caches() -> None:
    from tinygrad_mlp import cublas, fused
    from tinygrad_mlp import device as dev

    dev._checked.clear()
    for cached in (fused._module, fused._kernel, fused._device_scalar, cublas.handle):
        cached.cache_clear()


@contextlib.contextmanager
def installed():
    """Within the block, ``import cupy`` and tinygrad_mlp's GPU path get the stand-in."""
    from tinygrad_mlp import cublas
    from tinygrad_mlp import device as dev

    from .reference_cublas import ReferenceCublas

    cupy = load()
    library = ReferenceCublas(cupy)
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if _is_cupy(name)}
    saved_state = dev._cupy, dev._cupy_error
    sys.modules.update(_modules)
    dev._cupy, dev._cupy_error = None, None  # the next use imports the stand-in
    saved_lib, cublas._lib = cublas._lib, lambda: library
    _reset_package_caches()
    try:
        yield cupy
    finally:
        for name in _modules:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
        dev._cupy, dev._cupy_error = saved_state
        cublas._lib = saved_lib
        _reset_package_caches()
