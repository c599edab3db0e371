"""Load CUDA sources as CPU shared libraries and launch their kernels like ``cupy.RawKernel``.

``SimModule(code, options)`` stands where ``cupy.RawModule(code=..., options=...)`` would: g++
compiles the source against ``cuda_sim.h`` (cached on disk by a hash of everything that goes into
the build), and ``get_function(name)(grid, block, args, shared_mem=0)`` runs a launch on the
calling thread. Arguments are packed as CuPy packs them (an object with ``.data.ptr`` is a device
pointer, a NumPy scalar its own bytes, a Python int an int64, a float a float64), then checked
against the kernel's C signature, which CuPy never does: a wrong scalar type is an error naming
the parameter instead of silently wrong bytes.

With ``sanitizer="address"`` or ``"thread"`` the launch runs in a subprocess that preloads the
sanitizer runtime, on copies of the argument arrays (copied back afterwards); a sanitizer report
becomes a SimulatorError.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import pickle
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

__all__ = ["SimModule", "SimFunction", "SimulatorError", "compiler", "cache_dir"]

HEADER = Path(__file__).with_name("cuda_sim.h")
MAX_THREADS_PER_BLOCK = 1024
MAX_SHARED_BYTES = 49152  # without the opt-in attribute, as CuPy launches
_ERR_BYTES = 4096
_LAUNCH_LOCK = threading.Lock()  # the simulator's state is per process: one launch at a time

compile_count = 0  # g++ runs in this process (the cache test reads it)


class SimulatorError(RuntimeError):
    """A build, argument or launch error of the simulated GPU."""


# --------------------------------------------------------------------------------------------
# Compiler, cache
# --------------------------------------------------------------------------------------------


def compiler() -> str | None:
    """The g++ used for builds, or None when there is none."""
    return shutil.which("g++")


@functools.cache
def _compiler_id() -> str:
    gxx = compiler()
    if gxx is None:
        raise SimulatorError("the CUDA simulator needs g++, which is not on PATH")
    out = subprocess.run([gxx, "--version"], capture_output=True, text=True, check=False)
    return f"{os.path.realpath(gxx)}\n{out.stdout.splitlines()[0] if out.stdout else ''}"


@functools.cache
def cache_dir() -> Path:
    """Where built libraries live: $XDG_CACHE_HOME/tinygrad_mlp-gpusim (else ~/.cache/...), or
    a folder in the temp dir when that cannot be created (a read-only home)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(root) / "tinygrad_mlp-gpusim"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    folder = Path(tempfile.gettempdir()) / f"tinygrad_mlp-gpusim-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    return folder


# NVRTC options that change nothing in a CPU build.
_IGNORED_OPTION = re.compile(
    r"(--?(arch|gpu-architecture|std|fmad|prec-div|prec-sqrt|rdc|relocatable-device-code|"
    r"dopt|maxrregcount|split-compile|minimal)(=.*)?|-lineinfo|--generate-line-info|-G|"
    r"--device-debug|-default-device|--device-as-default-execution-space|-ewp|"
    r"--extensible-whole-program|-dlto|-w|--disable-warnings|-Werror=?.*|--restrict|"
    r"-restrict|--device-int128|-device-int128)"
)


def _translate_options(options) -> tuple[list[str], bool]:
    """(g++ flags, flush-to-zero) for NVRTC-style options; an unknown option is an error, as
    NVRTC makes it one."""
    if isinstance(options, str) or not isinstance(options, (tuple, list)):
        raise SimulatorError(f"options must be a tuple of strings, got {options!r}")
    flags, ftz = [], False
    for opt in options:
        if not isinstance(opt, str):
            raise SimulatorError(f"options must be strings, got {opt!r}")
        if m := re.fullmatch(r"(?:-D|--define-macro=)\s*(\w+(?:=.*)?)", opt):
            flags.append(f"-D{m[1]}")
        elif m := re.fullmatch(r"(?:-U|--undefine-macro=)\s*(\w+)", opt):
            flags.append(f"-U{m[1]}")
        elif m := re.fullmatch(r"(?:-I|--include-path=)\s*(.+)", opt):
            flags.append(f"-I{m[1]}")
        elif m := re.fullmatch(r"--?ftz(?:=(true|false))?", opt):
            ftz = m[1] != "false"
        elif re.fullmatch(r"--?use[_-]fast[_-]math", opt):
            ftz = True  # fast math implies -ftz=true; its approximate intrinsics are not modeled
        elif not _IGNORED_OPTION.fullmatch(opt):
            raise SimulatorError(f"unsupported NVRTC option {opt!r}")
    return flags, ftz


# --------------------------------------------------------------------------------------------
# Reading kernels out of the source
# --------------------------------------------------------------------------------------------

_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_BOUNDS = r"(?:__launch_bounds__\s*\([^()]*\)\s*)?"
_KERNEL = re.compile(
    r'(extern\s+"C"\s+)?' + _BOUNDS + r"__global__\s+" + _BOUNDS + r"void\s+" + _BOUNDS
    + r"(\w+)\s*\(([^)]*)\)\s*\{"
)
_DYN_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([\w\s:]+?)\s+(\w+)\s*\[\s*\]"
)


def _kernels_in(code: str) -> dict[str, tuple[bool, list[str]]]:
    """name -> (extern "C", declared parameters as written) for each __global__ definition."""
    kernels = {}
    for m in _KERNEL.finditer(_COMMENTS.sub(" ", code)):
        params = [" ".join(p.split()) for p in m[3].split(",") if p.strip()]
        if params == ["void"]:
            params = []
        kernels[m[2]] = (bool(m[1]), params)
    return kernels


def _footer(code: str, kernels) -> str:
    lines = ['#line 1 "<cuda_sim footer>"']
    for ctype, name in dict.fromkeys(_DYN_SHARED.findall(_COMMENTS.sub(" ", code))):
        lines.append(
            f"__attribute__((aligned(16))) thread_local {ctype} {name}"
            f"[CUDA_SIM_MAX_SHARED / sizeof({ctype})];"
        )
    names = [name for name, (extern_c, _) in kernels.items() if extern_c]
    entries = ", ".join(f'cuda_sim::make_entry("{n}", &{n})' for n in names)
    lines += [
        f"static const cuda_sim::KernelEntry cuda_sim_kernels[] = {{{entries}}};" if names
        else "static const cuda_sim::KernelEntry* const cuda_sim_kernels = nullptr;",
        f"CUDA_SIM_API int cuda_sim_kernel_count(void) {{ return {len(names)}; }}",
        "CUDA_SIM_API const cuda_sim::KernelEntry* cuda_sim_kernel(int i) "
        "{ return &cuda_sim_kernels[i]; }",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

_SANITIZER_FLAGS = {
    None: ["-O2"],
    "address": ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"],
    "thread": ["-O1", "-g", "-fsanitize=thread"],
}
_SANITIZER_LIB = {"address": "libasan.so", "thread": "libtsan.so"}


def _base_flags(sanitizer: str | None) -> list[str]:
    return [
        compiler() or "g++", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-ffp-contract=off",
        "-fno-strict-aliasing", "-U_FORTIFY_SOURCE", "-w",
        "-fstack-clash-protection",  # big frames touch every page: an overflow hits the guard
        *_SANITIZER_FLAGS[sanitizer],
    ]


def _write_atomic(path: Path, make) -> None:
    """Create ``path`` by ``make(temporary_path)`` and a rename: parallel test processes never
    see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    os.close(fd)
    try:
        make(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _header(sanitizer: str | None, header: str) -> Path:
    """A cached copy of cuda_sim.h with its precompiled form beside it (g++ uses the .gch
    when its flags match and silently reads the header otherwise): about half of each build's
    time is parsing the header's C++ library includes."""
    digest = hashlib.sha256(json.dumps([header, _compiler_id()]).encode()).hexdigest()[:16]
    path = cache_dir() / f"cuda_sim-{sanitizer or 'plain'}-{digest}.h"
    if not path.exists():
        _write_atomic(path, lambda tmp: Path(tmp).write_text(header, encoding="utf-8"))
    gch = path.with_name(path.name + ".gch")
    if not gch.exists():
        def make(tmp):
            subprocess.run([*_base_flags(sanitizer), "-x", "c++-header", str(path), "-o", tmp],
                           capture_output=True, check=True)
        try:
            _write_atomic(gch, make)
        except subprocess.CalledProcessError:
            pass  # builds then parse the header itself
    return path


def _build(code: str, options: tuple, name: str, sanitizer: str | None) -> Path:
    """The cached shared library for this source and options (compiled on a miss)."""
    flags, _ = _translate_options(options)
    header = HEADER.read_text(encoding="utf-8")
    key = hashlib.sha256(
        json.dumps([header, code, list(options), name, sanitizer, _compiler_id()]).encode()
    ).hexdigest()[:24]
    stem = re.sub(r"[^\w.-]", "_", Path(name).stem)[:40] or "kernel"
    lib = cache_dir() / f"{stem}-{sanitizer or 'plain'}-{key}.so"
    if lib.exists():
        return lib
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    text = f'#line 1 "{quoted}"\n{code}\n{_footer(code, _kernels_in(code))}'
    include = _header(sanitizer, header)

    def make(tmp_lib):
        global compile_count
        with tempfile.NamedTemporaryFile("w", dir=lib.parent, prefix=f".{stem}-", suffix=".cpp",
                                         encoding="utf-8") as src:
            src.write(text)
            src.flush()
            cmd = [*_base_flags(sanitizer), "-shared", "-include", str(include), *flags,
                   "-x", "c++", src.name, "-o", tmp_lib]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        compile_count += 1
        if result.returncode:
            raise SimulatorError(f"g++ could not compile {name}:\n{result.stderr[-4000:]}")

    _write_atomic(lib, make)
    return lib


class _Entry(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("fn", ctypes.c_void_p),
        ("invoke", ctypes.c_void_p),
        ("nparams", ctypes.c_int),
        ("kinds", ctypes.c_char_p),
        ("sizes", ctypes.POINTER(ctypes.c_ubyte)),
    ]


@functools.cache
def _load(lib: Path):
    dll = ctypes.CDLL(str(lib))
    dll.cuda_sim_kernel.restype = ctypes.POINTER(_Entry)
    dll.cuda_sim_kernel.argtypes = [ctypes.c_int]
    dll.cuda_sim_launch.restype = ctypes.c_int
    dll.cuda_sim_launch.argtypes = [
        ctypes.POINTER(_Entry), ctypes.POINTER(ctypes.c_uint64),
        ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint), ctypes.c_int,
        ctypes.c_char_p, ctypes.c_size_t,
    ]
    return dll


# --------------------------------------------------------------------------------------------
# Modules and functions
# --------------------------------------------------------------------------------------------


class SimModule:
    """``cupy.RawModule(code=..., options=...)`` on the CPU simulator.

    code: CUDA C source; options: NVRTC-style options (``-DNAME=value``, ``-U``, ``-I``,
    ``-ftz=true``, ``-use_fast_math``; architecture and debug options are accepted and
    ignored); name: the file name errors report (``__FILE__``); sanitizer: None, "address" or
    "thread".
    """

    def __init__(self, code: str, options: tuple[str, ...] = (), name: str = "kernel.cu",
                 sanitizer: str | None = None):
        if sanitizer not in _SANITIZER_FLAGS:
            raise SimulatorError(
                f"sanitizer must be None, 'address' or 'thread', got {sanitizer!r}"
            )
        self.code, self.options, self.name, self.sanitizer = code, tuple(options), name, sanitizer
        self._ftz = _translate_options(self.options)[1]
        self._kernels = _kernels_in(code)
        # The parent always loads the plain build: it holds the signatures (and runs launches
        # when no sanitizer is asked for).
        self._dll = _load(_build(code, self.options, name, None))
        self.library = _build(code, self.options, name, sanitizer) if sanitizer else None
        self._entries = {}
        for i in range(self._dll.cuda_sim_kernel_count()):
            entry = self._dll.cuda_sim_kernel(i)
            self._entries[entry.contents.name.decode()] = entry
        self._functions: dict[str, SimFunction] = {}

    def get_function(self, name: str) -> SimFunction:
        fn = self._functions.get(name)
        if fn is not None:
            return fn
        entry = self._entries.get(name)
        if entry is None:
            if name in self._kernels:
                raise SimulatorError(
                    f"{self.name}: kernel {name!r} is not extern \"C\" (CuPy would need its "
                    "mangled name; declare it extern \"C\")"
                )
            known = ", ".join(sorted(self._entries)) or "none"
            raise SimulatorError(
                f"{self.name}: no kernel named {name!r} (extern \"C\" kernels: {known})"
            )
        fn = self._functions[name] = SimFunction(self, name, entry)
        return fn


_C_NAMES = {
    ("b", 1): "bool", ("i", 1): "signed char", ("u", 1): "unsigned char", ("i", 2): "short",
    ("u", 2): "unsigned short", ("i", 4): "int", ("u", 4): "unsigned int",
    ("i", 8): "long long", ("u", 8): "unsigned long long", ("f", 2): "half",
    ("f", 4): "float", ("f", 8): "double",
}


class _Param:
    __slots__ = ("index", "kind", "size", "decl", "dtype")

    def __init__(self, index, kind, size, decl):
        self.index, self.kind, self.size, self.decl = index, kind, size, decl
        self.dtype = None if kind == "p" else np.dtype(f"{kind}{size}")

    def describe(self) -> str:
        return f"argument {self.index} (`{self.decl}`)"


class SimFunction:
    """One kernel: ``fn(grid, block, args, shared_mem=0)``, the ``cupy.RawKernel`` call."""

    def __init__(self, module: SimModule, name: str, entry):
        self.module, self.name, self._entry = module, name, entry
        e = entry.contents
        if e.nparams > 64:
            raise self._error(f"has {e.nparams} parameters; the simulator takes at most 64")
        kinds = e.kinds.decode()
        decls = module._kernels.get(name, (True, []))[1]
        if len(decls) != e.nparams:
            decls = [f"parameter {i}" for i in range(e.nparams)]
        self.params = [
            _Param(i, kinds[i], e.sizes[i], decls[i]) for i in range(e.nparams)
        ]

    # -- argument packing --------------------------------------------------------------------

    def _error(self, msg: str) -> SimulatorError:
        return SimulatorError(f"{self.module.name}: kernel {self.name}: {msg}")

    def _pack(self, args):
        if not isinstance(args, (tuple, list)):
            raise self._error(f"args must be a tuple, got {type(args).__name__}")
        if len(args) != len(self.params):
            sig = ", ".join(p.decl for p in self.params)
            raise self._error(f"takes {len(self.params)} arguments ({sig}), got {len(args)}")
        slots = (ctypes.c_uint64 * max(1, len(args)))()
        arrays = []  # (slot index, holder) for the pointer arguments
        for i, (p, a) in enumerate(zip(self.params, args)):
            data = getattr(a, "data", None)
            ptr = getattr(data, "ptr", None) if data is not None else None
            if isinstance(ptr, int) and not isinstance(a, np.ndarray):
                if p.kind != "p":
                    raise self._error(
                        f"{p.describe()} is a scalar ({_C_NAMES.get((p.kind, p.size), '?')}), "
                        f"got a device array ({type(a).__name__})"
                    )
                slots[i] = ptr
                arrays.append((i, a))
                continue
            scalar = self._scalar(p, a)
            if p.kind == "p":
                raise self._error(
                    f"{p.describe()} is a pointer (pass a device array), got the scalar "
                    f"{scalar!r} ({type(a).__name__})"
                )
            if scalar.dtype.kind != p.kind or scalar.dtype.itemsize != p.size:
                raise self._error(
                    f"{p.describe()} is {_C_NAMES.get((p.kind, p.size), '?')} "
                    f"({p.size} bytes; pass numpy.{p.dtype.name}), got "
                    f"{type(a).__module__}.{type(a).__name__} packed as numpy."
                    f"{scalar.dtype.name} ({scalar.dtype.itemsize} bytes)"
                )
            slots[i] = int.from_bytes(scalar.tobytes(), "little")
        return slots, arrays

    def _scalar(self, p: _Param, a):
        """The NumPy scalar CuPy would pass for a non-array argument."""
        if isinstance(a, np.generic):
            return a
        if isinstance(a, np.ndarray):
            if a.size != 1:
                raise self._error(
                    f"{p.describe()}: a numpy.ndarray of shape {a.shape} cannot be passed by "
                    "value (only size-1 arrays can); pass a device array for a pointer"
                )
            return a.reshape(())[()]
        if isinstance(a, int):  # bool too: CuPy tests int first, and bool is an int
            try:
                return np.int64(a)
            except OverflowError:
                raise self._error(f"{p.describe()}: {a} does not fit an int64") from None
        if isinstance(a, float):
            return np.float64(a)
        if isinstance(a, complex):
            return np.complex128(a)
        raise self._error(f"{p.describe()}: unsupported argument type {type(a).__name__}")

    # -- launch -----------------------------------------------------------------------------

    def _dims(self, what: str, dims, limits) -> tuple[int, int, int]:
        if isinstance(dims, (int, np.integer)):
            dims = (dims,)
        if not isinstance(dims, (tuple, list)) or not 1 <= len(dims) <= 3:
            raise self._error(f"{what} must be an int or a tuple of 1 to 3 ints, got {dims!r}")
        out = []
        for d, limit in zip(dims, limits):
            if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
                raise self._error(f"{what} must hold ints, got {dims!r}")
            if not 1 <= d <= limit:
                raise self._error(f"{what} {tuple(dims)} is an invalid configuration "
                                  f"(each dimension in [1, {limit}] here)")
            out.append(int(d))
        return (*out, *([1] * (3 - len(out))))

    def __call__(self, grid, block, args, *, shared_mem: int = 0):
        g = self._dims("grid", grid, (2**31 - 1, 65535, 65535))
        b = self._dims("block", block, (1024, 1024, 64))
        if b[0] * b[1] * b[2] > MAX_THREADS_PER_BLOCK:
            raise self._error(f"block {b} has {b[0] * b[1] * b[2]} threads; the limit is "
                              f"{MAX_THREADS_PER_BLOCK}")
        if not isinstance(shared_mem, (int, np.integer)) or not (
            0 <= shared_mem <= MAX_SHARED_BYTES
        ):
            raise self._error(f"shared_mem must be 0..{MAX_SHARED_BYTES} bytes, got {shared_mem}")
        slots, arrays = self._pack(args)
        if self.module.sanitizer:
            return _run_sanitized(self, g, b, slots, arrays)
        grid_c, block_c = (ctypes.c_uint * 3)(*g), (ctypes.c_uint * 3)(*b)
        err = ctypes.create_string_buffer(_ERR_BYTES)
        with _LAUNCH_LOCK:
            rc = self.module._dll.cuda_sim_launch(
                self._entry, slots, grid_c, block_c, int(self.module._ftz), err, _ERR_BYTES
            )
        if rc:
            raise self._error(err.value.decode(errors="replace"))


# --------------------------------------------------------------------------------------------
# Sanitizer launches: a subprocess with the sanitizer runtime preloaded
# --------------------------------------------------------------------------------------------

_CHILD = r"""
import ctypes, pickle, sys
job = pickle.load(open(sys.argv[1], "rb"))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
lib = ctypes.CDLL(job["library"])
lib.cuda_sim_kernel.restype = ctypes.c_void_p
lib.cuda_sim_launch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
entry = None
for i in range(lib.cuda_sim_kernel_count()):
    e = lib.cuda_sim_kernel(i)
    if ctypes.cast(e, ctypes.POINTER(ctypes.c_char_p))[0].decode() == job["kernel"]:
        entry = e
# Each array gets its own malloc block of its exact size: the sanitizer's redzones sit at its ends.
blocks = []
for data in job["buffers"]:
    p = libc.malloc(max(1, len(data)))
    ctypes.memmove(p, data, len(data))
    blocks.append(p)
slots = (ctypes.c_uint64 * max(1, len(job["slots"])))(
    *[blocks[v] + off if kind == "array" else v for kind, v, off in job["slots"]])
err = ctypes.create_string_buffer(4096)
rc = lib.cuda_sim_launch(entry, slots, (ctypes.c_uint * 3)(*job["grid"]),
                         (ctypes.c_uint * 3)(*job["block"]), job["ftz"], err, 4096)
out = [ctypes.string_at(p, len(d)) for p, d in zip(blocks, job["buffers"])]
with open(job["result"], "wb") as f:
    pickle.dump((rc, err.value.decode(errors="replace"), out), f)
"""

_REPORT = re.compile(
    r"^(==\d+==ERROR: AddressSanitizer|WARNING: ThreadSanitizer).*?^SUMMARY:[^\n]*", re.S | re.M
)


@functools.cache
def _runtime(sanitizer: str) -> str:
    out = subprocess.run([compiler() or "g++", f"-print-file-name={_SANITIZER_LIB[sanitizer]}"],
                         capture_output=True, text=True, check=False).stdout.strip()
    if not out or not os.path.isabs(out):
        raise SimulatorError(f"g++ has no {_SANITIZER_LIB[sanitizer]} runtime")
    return os.path.realpath(out)


def _run_sanitized(fn: SimFunction, grid, block, slots, arrays):
    """Run one launch in a subprocess under the module's sanitizer, on copies of the arrays."""
    buffers, where = [], {}  # one copy per distinct base pointer (aliasing arguments share it)
    job_slots = [("value", int(v), 0) for v in slots[: len(fn.params)]]
    for i, holder in arrays:
        nbytes = getattr(holder, "nbytes", None)
        if not isinstance(nbytes, (int, np.integer)):
            raise fn._error(
                f"{fn.params[i].describe()}: a sanitizer launch copies arrays to a subprocess "
                f"and needs their size (.nbytes); {type(holder).__name__} has none"
            )
        ptr = slots[i]
        if ptr not in where:
            where[ptr] = len(buffers)
            buffers.append((ptr, int(nbytes)))
        job_slots[i] = ("array", where[ptr], 0)
    with tempfile.TemporaryDirectory(prefix="gpusim-") as tmp:
        job_path, result_path = os.path.join(tmp, "job"), os.path.join(tmp, "result")
        job = {
            "library": str(fn.module.library), "kernel": fn.name, "grid": grid, "block": block,
            "ftz": int(fn.module._ftz), "slots": job_slots, "result": result_path,
            "buffers": [ctypes.string_at(p, n) for p, n in buffers],
        }
        with open(job_path, "wb") as f:
            pickle.dump(job, f)
        env = dict(os.environ, LD_PRELOAD=_runtime(fn.module.sanitizer),
                   ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:exitcode=86",
                   TSAN_OPTIONS="halt_on_error=1:exitcode=66:report_signal_unsafe=0")
        cmd = [sys.executable, "-c", _CHILD, job_path]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        if "unexpected memory mapping" in proc.stderr and shutil.which("setarch"):
            # Old ThreadSanitizer runtimes reject high-entropy ASLR layouts: run without ASLR.
            proc = subprocess.run(["setarch", platform.machine(), "-R", *cmd], env=env,
                                  capture_output=True, text=True, timeout=600, check=False)
        report = _REPORT.search(proc.stderr)
        if report:
            raise fn._error(f"{fn.module.sanitizer} sanitizer report:\n{report[0]}")
        if proc.returncode or not os.path.exists(result_path):
            raise fn._error(
                f"sanitizer subprocess failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
            )
        with open(result_path, "rb") as f:
            rc, message, out = pickle.load(f)
    if rc:
        raise fn._error(message)
    for (ptr, _), data in zip(buffers, out):
        ctypes.memmove(ptr, data, len(data))
