"""Register and memory report of every kernel, from ptxas, without a GPU.

Each ``kernels/*.cu`` is built for float and double, for sm_90 (H100), with NVRTC under the
options CuPy adds (what ``cupy.RawModule`` runs) and with nvcc, as ``tests/test_kernel_static.py``
builds them; a compiler that is missing is left out with a note:

    python benchmarks/kernel_report.py
    python benchmarks/kernel_report.py --out benchmarks/results/<date>-kernel-registers.txt

Columns: registers per thread; spill stores / loads and the stack frame (local memory), in bytes
per thread; static shared memory per block; constant bank 0 (launch parameters plus the driver's
part) per kernel, read from the cubin.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the builds live beside the tests that check them
import kernel_compile as kc  # noqa: E402

try:
    from tinygrad_mlp.data import atomic_open
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(REPO))
    from tinygrad_mlp.data import atomic_open

COLUMNS = ("kernel", "file", "dtype", "compiler", "registers", "spill st/ld B", "lmem B",
           "smem B", "cmem[0] B")


def compilers() -> tuple[list[str], list[str]]:
    """The compilers present, and a note for each one that is not."""
    present, notes = [], []
    if kc.find_nvrtc() is not None:
        present.append("nvrtc")
    else:
        notes.append("NVRTC: libnvrtc not found (pip install nvidia-cuda-nvrtc), left out")
    if kc.nvcc_version() is not None:
        present.append("nvcc")
    else:
        notes.append("nvcc: not on PATH, left out")
    return present, notes


def report_lines(today: datetime.date) -> list[str]:
    present, notes = compilers()
    lines = [f"# Kernel register report, {today.isoformat()}, target sm_{kc.ARCH} (H100)"]
    if "nvrtc" in present:
        options = " ".join(kc.cupy_nvrtc_options("<float|double>"))
        checks = " ".join(kc.NVRTC_CHECKS)
        lines.append(f"# NVRTC {kc.nvrtc_version(kc.find_nvrtc())}: {options} "
                     f"(CuPy's RawModule options, its -I paths aside) + checks {checks}")
    if "nvcc" in present:
        options = " ".join(kc.nvcc_options("<float|double>"))
        checks = " ".join(kc.NVCC_CHECKS)
        lines.append(f"# nvcc {kc.nvcc_version()}: {options} + checks {checks}")
    lines += [f"# {note}" for note in notes]
    rows = [COLUMNS]
    for name in kc.KERNEL_FILES:
        for real in kc.REALS:
            for compiler in present:
                build = kc.build(compiler, name, real)
                for kernel, use in sorted(build.report.items()):
                    rows.append((kernel, name, real, build.compiler, str(use["registers"]),
                                 f"{use['spill_stores']}/{use['spill_loads']}",
                                 str(use["stack"]), str(use["smem"]), str(use["cmem"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if not compilers()[0]:
        print("kernel_report: neither NVRTC nor nvcc is available", file=sys.stderr)
        return 2
    try:
        text = "\n".join(report_lines(datetime.date.today())) + "\n"
    except kc.CompileError as e:
        print(f"kernel_report: a kernel failed to build:\n{e}", file=sys.stderr)
        return 1
    print(text, end="")
    if args.out:
        with atomic_open(args.out) as f:
            f.write(text.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
