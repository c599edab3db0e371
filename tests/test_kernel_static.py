"""Static checks of kernels/*.cu that need no GPU: each file builds for float and double with
NVRTC under the options CuPy adds (the build RawModule makes) and with nvcc for sm_90, with no
register spills and no local memory; a float build holds no double-precision PTX.

Every check is also shown to fail on a deliberately broken copy of a kernel. Compilers missing
here skip with the reason; the builds themselves live in ``kernel_compile.py``.
"""

from __future__ import annotations

import datetime
import importlib.util
import re
import types

import kernel_compile as kc
import pytest

from tinygrad_mlp import device, fused

needs_nvrtc = pytest.mark.skipif(
    kc.find_nvrtc() is None,
    reason="libnvrtc not found (install the nvidia-cuda-nvrtc wheel, as .ci/run does)")
needs_nvcc = pytest.mark.skipif(
    kc.nvcc_version() is None,
    reason="nvcc is not on PATH (no CUDA toolkit): the NVRTC builds run the same checks")
COMPILERS = [pytest.param("nvrtc", marks=needs_nvrtc), pytest.param("nvcc", marks=needs_nvcc)]
BUILDERS = {"nvrtc": (kc.nvrtc_build, kc.cupy_nvrtc_options),
            "nvcc": (kc.nvcc_build, kc.nvcc_options)}
PTXAS_ONLY = {"nvrtc": kc.NVRTC_PTXAS_CHECKS, "nvcc": kc.NVCC_PTXAS_CHECKS}


def entry_points(filename):
    return re.findall(r'extern "C" __global__ void (\w+)\(', (kc.KERNEL_DIR / filename).read_text())


def build_variant(compiler, filename, real, old="", new="", extra_options=(), checks=None):
    """Build a copy of ``filename`` with ``old`` replaced by ``new`` (``old`` must occur), under
    the compiler's full checks unless ``checks`` is given."""
    source = (kc.KERNEL_DIR / filename).read_text()
    assert old in source, f"{filename} no longer contains {old!r}: update this test"
    build, options = BUILDERS[compiler]
    kwargs = {} if checks is None else {"checks": checks}
    return build(source.replace(old, new), filename, options(real) + tuple(extra_options),
                 **kwargs)


# --------------------------------------------------------------------------------------------
# The options are CuPy's
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", kc.KERNEL_FILES)
def test_kernel_source_is_nvrtc_clean(name):
    source = (kc.KERNEL_DIR / name).read_text()
    # NVRTC has no host headers; with no #include, CuPy's -I paths cannot matter either.
    assert not re.search(r"^\s*#\s*include\b", source, re.M), f"{name} has an #include"
    assert "#ifndef REAL" in source and "typedef REAL real;" in source
    assert 'extern "C"' in source


@pytest.mark.parametrize("real", kc.REALS)
def test_fused_builds_with_the_options_these_checks_use(real, monkeypatch):
    made = []
    fake_cupy = types.SimpleNamespace(RawModule=lambda **kw: made.append(kw))
    monkeypatch.setattr(device, "check_gpu", lambda: fake_cupy)
    for name in kc.KERNEL_FILES:
        fused._module.__wrapped__(name, real)  # the uncached builder
    assert [m["options"] for m in made] == [kc.fused_options(real)] * len(kc.KERNEL_FILES)
    assert [m["code"] for m in made] == [(kc.KERNEL_DIR / n).read_text() for n in kc.KERNEL_FILES]


# --------------------------------------------------------------------------------------------
# Every kernel builds, with no spills and no local memory
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("real", kc.REALS)
@pytest.mark.parametrize("name", kc.KERNEL_FILES)
@pytest.mark.parametrize("compiler", COMPILERS)
def test_kernel_builds_without_spills_or_local_memory(compiler, name, real):
    build = kc.build(compiler, name, real)  # ptxas -Werror: a spill or lmem fails the build
    entries = entry_points(name)
    assert entries and sorted(build.report) == sorted(entries), build.log
    for entry in entries:
        assert f".entry {entry}(" in build.ptx  # extern "C": unmangled, as get_function expects
        usage = build.report[entry]
        assert 0 < usage["registers"] <= 255, (entry, usage)
        assert usage["stack"] == usage["spill_stores"] == usage["spill_loads"] == 0, (entry, usage)
        assert usage["cmem"] > 0, (entry, usage)  # read from the cubin


@pytest.mark.parametrize("compiler", COMPILERS)
def test_a_register_spill_fails_the_build(compiler):
    # softmax_xent in double needs ~54 registers; 24 (sm_90's lower bound) forces spills.
    with pytest.raises(kc.CompileError, match=r"(?s)softmax_xent.*\d+ bytes spill stores"):
        build_variant(compiler, "softmax_xent.cu", "double", extra_options=["-maxrregcount=24"])


@pytest.mark.parametrize("compiler", COMPILERS)
def test_local_memory_fails_the_build(compiler):
    # A per-thread table indexed at run time cannot live in registers: it goes to local memory.
    table = ("    real table[64];\n"
             "    for (int k = 0; k < 64; ++k) table[k] = b[(col + k) % f];\n"
             "    const real bias = table[n % 64];\n")
    with pytest.raises(kc.CompileError, match=r"(?s)bias_relu.*256 bytes stack frame"):
        build_variant(compiler, "bias_relu.cu", "float", "    const real bias = b[col];\n", table)


# --------------------------------------------------------------------------------------------
# A float build holds no double arithmetic
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", kc.KERNEL_FILES)
@pytest.mark.parametrize("compiler", COMPILERS)
def test_float_build_has_no_double_arithmetic(compiler, name):
    lines = kc.f64_lines(kc.build(compiler, name, "float").ptx)
    assert not lines, f"{name} (-DREAL=float) has double-precision PTX:\n" + "\n".join(
        f"  {kernel}, PTX line {number}: {line}" for kernel, number, line in lines[:10])


@pytest.mark.parametrize("name", kc.KERNEL_FILES)
@pytest.mark.parametrize("compiler", COMPILERS)
def test_double_build_is_seen_as_double(compiler, name):
    # The scanner reads real PTX: every kernel of a double build has .f64 lines.
    lines = kc.f64_lines(kc.build(compiler, name, "double").ptx)
    assert sorted({kernel for kernel, _, _ in lines}) == sorted(entry_points(name))


# `1.0 / sum` instead of `(real)1 / sum`: C promotes the division to double.
DOUBLE_LITERAL = ("softmax_xent.cu", "float", "const real inv_sum = (real)1 / sum;",
                  "const real inv_sum = 1.0 / sum;")


@pytest.mark.parametrize("compiler", COMPILERS)
def test_a_double_literal_in_a_float_build_is_caught_in_the_ptx(compiler):
    # ptxas's checks only: the PTX scan must catch it on its own.
    build = build_variant(compiler, *DOUBLE_LITERAL, checks=PTXAS_ONLY[compiler])
    lines = kc.f64_lines(build.ptx)
    assert lines and {kernel for kernel, _, _ in lines} == {"softmax_xent"}
    assert any(re.match(r"(div|rcp)\.\w+\.f64", line) for _, _, line in lines), lines


@needs_nvrtc
def test_a_double_literal_in_a_float_build_fails_nvrtc_at_its_line():
    # NVRTC's -Wconversion under -Werror names the line of the narrowing.
    with pytest.raises(kc.CompileError, match=r"softmax_xent.cu\(\d+\): error.*conversion"):
        build_variant("nvrtc", *DOUBLE_LITERAL)


@pytest.mark.parametrize("compiler", COMPILERS)
def test_a_front_end_warning_fails_the_build(compiler):
    with pytest.raises(kc.CompileError, match=r'variable "unused" was declared'):
        build_variant(compiler, "sgd.cu", "float", "    const real rate = *lr;\n",
                      "    const real rate = *lr;\n    int unused = 0;\n")


# --------------------------------------------------------------------------------------------
# The report reader
# --------------------------------------------------------------------------------------------


@needs_nvrtc
def test_report_reads_shared_and_constant_memory_per_kernel():
    source = ('extern "C" __global__ void one(float* y)\n'
              "{ __shared__ float tile[64]; tile[threadIdx.x % 64] = y[threadIdx.x];\n"
              "  __syncthreads(); y[threadIdx.x] = tile[(threadIdx.x + 1) % 64]; }\n"
              'extern "C" __global__ void two(float* y, double z) { y[threadIdx.x] = (float)z; }\n')
    report = kc.nvrtc_build(source, "probe.cu", kc.CUPY_NVRTC_OPTIONS).report
    assert report["one"]["smem"] == 64 * 4 and report["two"]["smem"] == 0
    assert report["two"]["cmem"] - report["one"]["cmem"] == 8  # one more 8-byte parameter
    assert report["one"]["registers"] > 0 and report["two"]["registers"] > 0


@needs_nvrtc
def test_kernel_report_lists_every_kernel_and_dtype():
    spec = importlib.util.spec_from_file_location(
        "kernel_report", kc.KERNEL_DIR.parent / "benchmarks" / "kernel_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    lines = report.report_lines(datetime.date(2026, 1, 2))
    assert lines[0].startswith("# Kernel register report, 2026-01-02")
    rows = {tuple(line.split()[:3]) for line in lines if not line.startswith("#")}
    for name in kc.KERNEL_FILES:
        for entry in entry_points(name):
            for real in kc.REALS:
                assert (entry, name, real) in rows, (entry, name, real)
