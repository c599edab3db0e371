"""Builds of ``kernels/*.cu`` without a GPU, and what ptxas reports about them.

Two compilers: NVRTC with the options CuPy adds (the build a ``cupy.RawModule`` makes at run time)
and ``nvcc``. Each build yields the PTX, the cubin and ptxas's ``-v`` report, with spills and
local memory turned into errors. Used by ``tests/test_kernel_static.py`` and
``benchmarks/kernel_report.py``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import os
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent.parent / "kernels"
KERNEL_FILES = sorted(p.name for p in KERNEL_DIR.glob("*.cu"))
REALS = ("float", "double")
ARCH = "90"  # H100, the GPU the benchmarks run on

# What cupy.RawModule(code=..., options=user_options) adds for NVRTC on CUDA 13 (CuPy's source
# read at cupy/cupy 6b6d9563, August 2026), after the user's options (fused.py: only -DREAL=...):
#   cupy/_core/core.pyx, assemble_cupy_compiler_options() (via compile_with_cache()):
#       "--std=c++17" (no -std given), plus -I for CuPy's bundled CCCL (put first), CuPy's
#       include dir and the CUDA headers (left out here: no kernel has an #include, which
#       tests/test_kernel_static.py checks); RawModule prepends no CuPy headers to the source;
#   cupy/cuda/compiler.py, _compile_with_cache_cuda(): "-ftz=true" (CuPy never passes
#       --use_fast_math; "--device-debug --generate-line-info" only with
#       CUPY_CUDA_COMPILE_WITH_DEBUG=1; "-DCUPY_USE_JITIFY" only with jitify=True);
#   cupy/cuda/compiler.py, _compile_using_nvrtc_no_warning() via
#       _get_arch_for_options_for_nvrtc(): "-arch=sm_XX" with XX the device's compute capability
#       capped at NVRTC's maximum (a cubin; "-arch=compute_XX", PTX, only with
#       CUPY_COMPILE_WITH_PTX=1), then "--device-as-default-execution-space" (no jitify);
#       "--pch" only with CUPY_NVRTC_USE_PCH=1.
CUPY_NVRTC_OPTIONS = ("--std=c++17", "-ftz=true", f"-arch=sm_{ARCH}",
                      "--device-as-default-execution-space")

# Checks on top of the build options; they change no generated code. ptxas: the per-kernel
# report, and spills / any local memory as errors. Front end: every warning an error, and NVRTC's
# -Wconversion, which names the source line of an implicit double -> float narrowing.
PTXAS_OPTIONS = ("-v", "-warn-spills", "-warn-lmem-usage", "-Werror")
NVRTC_PTXAS_CHECKS = tuple(o for option in PTXAS_OPTIONS for o in ("-Xptxas", option))
NVRTC_CHECKS = ("-Werror=all-warnings", "-Wconversion") + NVRTC_PTXAS_CHECKS
NVCC_PTXAS_CHECKS = ("-Xptxas", ",".join(PTXAS_OPTIONS))
NVCC_CHECKS = ("--Werror", "all-warnings") + NVCC_PTXAS_CHECKS  # nvcc 13 has no -Wconversion


def fused_options(real: str) -> tuple[str, ...]:
    """The options tinygrad_mlp.fused gives RawModule (held equal to fused by a test)."""
    return (f"-DREAL={real}",)


def cupy_nvrtc_options(real: str) -> tuple[str, ...]:
    return fused_options(real) + CUPY_NVRTC_OPTIONS


class CompileError(RuntimeError):
    """A build failed; the message carries the compiler's log."""


@dataclass
class Build:
    compiler: str  # "nvrtc 13.5" or "nvcc 13.0"
    log: str  # ptxas -v report (and any warnings)
    ptx: str
    cubin: bytes
    report: dict = field(default_factory=dict)  # kernel -> resource usage, see ptxas_report


# --------------------------------------------------------------------------------------------
# NVRTC (through ctypes: the nvidia-cuda-nvrtc wheel or a system libnvrtc)
# --------------------------------------------------------------------------------------------


@functools.cache
def find_nvrtc():
    """libnvrtc from the system, or from the nvidia-cuda-nvrtc wheel; None when absent."""
    candidates = []
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    try:
        import nvidia

        for root in nvidia.__path__:
            candidates += sorted(glob.glob(os.path.join(root, "*", "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    for path in candidates:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def nvrtc_version(lib) -> str:
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return f"{major.value}.{minor.value}"


def _nvrtc_bytes(lib, prog, size_fn, get_fn) -> bytes:
    size = ctypes.c_size_t()
    if getattr(lib, size_fn)(prog, ctypes.byref(size)) != 0:
        return b""
    buf = ctypes.create_string_buffer(size.value)
    getattr(lib, get_fn)(prog, buf)
    return buf.raw[: size.value]


def nvrtc_build(source: str, name: str, options, checks=NVRTC_CHECKS) -> Build:
    """Compile with NVRTC and the ``checks``; CompileError with the log on failure."""
    lib = find_nvrtc()
    if lib is None:
        raise CompileError("libnvrtc not found (the nvidia-cuda-nvrtc wheel provides it)")
    options = list(options) + list(checks)
    prog = ctypes.c_void_p()
    status = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0,
                                    None, None)
    if status != 0:
        raise CompileError(f"nvrtcCreateProgram failed with status {status}")
    try:
        encoded = [o.encode() for o in options]
        status = lib.nvrtcCompileProgram(prog, len(encoded),
                                         (ctypes.c_char_p * len(encoded))(*encoded))
        log = _nvrtc_bytes(lib, prog, "nvrtcGetProgramLogSize", "nvrtcGetProgramLog")
        log = log.rstrip(b"\0").decode(errors="replace")
        if status != 0:
            raise CompileError(f"NVRTC {' '.join(options)}: {name} failed (status {status}):\n"
                               f"{log}\n{_spill_summary(log)}")
        ptx = _nvrtc_bytes(lib, prog, "nvrtcGetPTXSize", "nvrtcGetPTX")
        cubin = _nvrtc_bytes(lib, prog, "nvrtcGetCUBINSize", "nvrtcGetCUBIN")
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return Build(f"nvrtc {nvrtc_version(lib)}", log, ptx.rstrip(b"\0").decode(), cubin,
                 ptxas_report(log, cubin))


def _spill_summary(log: str) -> str:
    """NVRTC's log drops ptxas's error line for a spill: name what the report shows instead."""
    bad = [f"{k}: {r['stack']} bytes stack frame (local memory), {r['spill_stores']} bytes "
           f"spill stores, {r['spill_loads']} bytes spill loads"
           for k, r in ptxas_report(log).items()
           if r["stack"] or r["spill_stores"] or r["spill_loads"]]
    return "\n".join(bad)


# --------------------------------------------------------------------------------------------
# nvcc
# --------------------------------------------------------------------------------------------


@functools.cache
def nvcc_version() -> str | None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"release (\d+\.\d+)", out)
    return match.group(1) if match else "unknown"


def nvcc_options(real: str) -> tuple[str, ...]:
    """CuPy's code-generation options for nvcc (its NVRTC-only execution-space flag aside)."""
    return fused_options(real) + ("--std=c++17", "-ftz=true", f"-arch=sm_{ARCH}")


def nvcc_build(source: str, name: str, options, checks=NVCC_CHECKS) -> Build:
    """Compile with nvcc and the ``checks`` to a cubin (keeping its PTX); CompileError with the
    log on failure."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise CompileError("nvcc is not on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / name
        src.write_text(source)
        cmd = [nvcc, "-cubin", *options, *checks, "--keep", "--keep-dir", tmp,
               "-o", str(src.with_suffix(".cubin")), str(src)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        log = result.stdout + result.stderr
        if result.returncode != 0:
            raise CompileError(f"{' '.join(cmd[1:])} failed:\n{log}")
        ptx = src.with_suffix(".ptx").read_text()
        cubin = src.with_suffix(".cubin").read_bytes()
    return Build(f"nvcc {nvcc_version()}", log, ptx, cubin, ptxas_report(log, cubin))


@functools.cache
def build(compiler: str, filename: str, real: str) -> Build:
    """One kernel file, one dtype, built as the project builds it (cached for the session)."""
    source = (KERNEL_DIR / filename).read_text()
    if compiler == "nvrtc":
        return nvrtc_build(source, filename, cupy_nvrtc_options(real))
    return nvcc_build(source, filename, nvcc_options(real))


# --------------------------------------------------------------------------------------------
# Reading the results
# --------------------------------------------------------------------------------------------

_ENTRY = re.compile(r"Function properties for (\w+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(.*)")


def ptxas_report(log: str, cubin: bytes = b"") -> dict:
    """ptxas -v's lines -> {kernel: {registers, stack, spill_stores, spill_loads, smem, cmem}}.

    ``stack`` is the per-thread stack frame (local memory). ptxas 13 no longer prints constant
    memory, so ``cmem`` (bytes of constant bank 0: launch parameters and driver data) comes from
    the cubin's ``.nv.constant0.<kernel>`` section when a cubin is given, else None.
    """
    report, kernel = {}, None
    for line in log.splitlines():
        if match := _ENTRY.search(line):
            kernel = match.group(1)
            report[kernel] = dict(registers=None, stack=0, spill_stores=0, spill_loads=0,
                                  smem=0, cmem=None)
        elif kernel and (match := _FRAME.search(line)):
            report[kernel].update(stack=int(match.group(1)), spill_stores=int(match.group(2)),
                                  spill_loads=int(match.group(3)))
        elif kernel and (match := _USED.search(line)):
            report[kernel]["registers"] = int(match.group(1))
            smem = re.search(r"(\d+) bytes smem", match.group(2))
            report[kernel]["smem"] = int(smem.group(1)) if smem else 0
            cmem = re.search(r"(\d+) bytes cmem\[0\]", match.group(2))
            if cmem:
                report[kernel]["cmem"] = int(cmem.group(1))
    for name, size in elf_section_sizes(cubin).items():
        if name.startswith(".nv.constant0.") and name[14:] in report:
            report[name[14:]]["cmem"] = size
    return report


def elf_section_sizes(elf: bytes) -> dict[str, int]:
    """Section name -> size for a 64-bit little-endian ELF (a cubin); {} for anything else."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        return {}
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx][4]
    sizes = {}
    for name_at, _type, _flags, _addr, _offset, size in headers:
        end = elf.index(b"\0", strtab + name_at)
        sizes[elf[strtab + name_at:end].decode()] = size
    return sizes


_FUNC = re.compile(r"^\s*(?:\.visible\s+|\.weak\s+)?\.(?:entry|func)\s+(?:\([^)]*\)\s*)?(\w+)")


def f64_lines(ptx: str) -> list[tuple[str, int, str]]:
    """(kernel, line number, line) for each PTX line with a double-precision type or register."""
    found, kernel = [], "<module>"
    for number, line in enumerate(ptx.splitlines(), 1):
        if match := _FUNC.match(line):
            kernel = match.group(1)
        code = line.split("//", 1)[0]
        if re.search(r"\.f64\b|%fd\d", code):
            found.append((kernel, number, line.strip()))
    return found
