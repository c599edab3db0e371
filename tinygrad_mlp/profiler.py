"""A per-op profiler: ``with tinygrad_mlp.profile() as prof: ...`` then ``print(prof)``.

Two tables. **Ops**: every :class:`~tinygrad_mlp.tensor.Function` call, forward and backward
apart, named by its class (the fused ops appear as themselves: ``LinearReLU``, ``Linear``,
``SoftmaxCrossEntropy``). **Kernels**: the array-level work inside them and in the optimizer:
``matmul`` (every GEMM, through :func:`tinygrad_mlp.device.matmul`) and each fused kernel of
:mod:`tinygrad_mlp.fused`, by the phase of the op that called it (``other`` outside any op, as the
optimizer's ``sgd_step``). Ops and kernels that run GEMMs get a GFLOP/s column.

Clocks: CPU work is timed with ``time.perf_counter_ns``; GPU work with CUDA events recorded on the
current stream before and after each call, whose elapsed times are read once, when the context
exits (no host sync per op). Nothing is recorded while a CUDA graph is being captured, and a
replayed graph runs no Python ops: profile eagerly (the trainer's ``--profile`` does).

Off by default and free when off: the autodiff core tests one module-level hook for None; the
kernel functions are wrapped only inside the ``with`` block and restored on exit, even on errors.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict

import numpy as np

from . import blas as _blas
from . import device as _dev
from . import fused as _fused
from . import tensor as _tensor
from .data import atomic_open

# The array-level functions timed as kernels: (module, attribute name). `gemm_into` is the
# CPU's weight-gradient GEMM that also applies SGD's update (optim.SGD.backward_step).
KERNELS = ((_dev, "matmul"), (_blas, "gemm_into")) + tuple((_fused, name) for name in (
    "bias_relu", "relu_backward", "bias_grad", "softmax_xent", "sgd_step"))
GEMMS = {"matmul": 0, "gemm_into": 1}  # GEMM kernel -> index of its first matrix argument


def op_name(fn: _tensor.Function) -> str:
    """The table name of an op: its class name without a leading underscore."""
    return type(fn).__name__.lstrip("_")


class HostClock:
    """perf_counter_ns around a call; the elapsed time is known at once."""

    def start(self):
        return time.perf_counter_ns()

    def stop(self, start):
        return time.perf_counter_ns() - start

    def seconds(self, measurement) -> float:
        return measurement * 1e-9

    def sync(self):
        pass


class EventClock:
    """CUDA events recorded on the current stream; elapsed times read later, in :meth:`seconds`.

    ``cupy`` is the CuPy module (anything with ``cuda.Event``, ``Event.record``,
    ``Event.synchronize`` and ``cuda.get_elapsed_time(start, end)`` in milliseconds).
    """

    def __init__(self, cupy):
        self.cuda = cupy.cuda

    def start(self):
        event = self.cuda.Event()
        event.record()
        return event

    def stop(self, start):
        end = self.cuda.Event()
        end.record()
        return start, end

    def seconds(self, measurement) -> float:
        start, end = measurement
        end.synchronize()  # returns at once for all but the first: the stream is in order
        return self.cuda.get_elapsed_time(start, end) * 1e-3

    def sync(self):
        """Wait for everything queued on the current stream so far."""
        self.stop(None)[1].synchronize()


def _gemm_flops(a, b) -> int:
    """2 * M * N * K (times the batch) for ``a @ b``; 1-D operands count as a row / a column."""
    k = a.shape[-1]
    out = (np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + a.shape[-2:-1]
           + (b.shape[-1:] if b.ndim > 1 else ()))
    return 2 * int(np.prod(out, dtype=np.int64)) * k


class Profile:
    """What one ``with profile():`` block recorded; see the module docstring.

    ``rows(kind)`` gives the aggregated rows of ``"op"`` or ``"kernel"``, sorted by total time;
    ``table()`` (also ``str(prof)``) formats both; ``as_dict()`` / ``to_json(path)`` export them.
    """

    def __init__(self):
        self._records = []  # (kind, name, phase, clock, measurement, flops)
        self._clocks = {}
        self._phase = "other"  # the phase of the op running now, for the kernels it calls
        self._op_flops = 0  # GEMM flops of the op running now
        self._saved = None
        self.wall_seconds = 0.0
        self._rows = None

    # ---- recording --------------------------------------------------------------------
    def _clock(self, array):
        """The clock for work on `array`'s device; None while a CUDA graph is being captured."""
        if _dev.capturing:
            return None
        if isinstance(array, (np.ndarray, np.generic)):
            return self._clocks.get("cpu") or self._clocks.setdefault("cpu", HostClock())
        cupy = _dev.module_of(array)
        return self._clocks.get(cupy) or self._clocks.setdefault(cupy, EventClock(cupy))

    def wrap(self, fn: _tensor.Function, phase: str):
        """``fn.forward`` or ``fn.backward``, timed (called by the autodiff core)."""
        method = getattr(fn, phase)
        device_array = fn.parents[0].data

        def timed(*args, **kwargs):
            clock = self._clock(device_array)
            if clock is None:
                return method(*args, **kwargs)
            outer_phase, outer_flops = self._phase, self._op_flops
            self._phase, self._op_flops = phase, 0
            start = clock.start()
            try:
                return method(*args, **kwargs)
            finally:
                self._records.append(("op", op_name(fn), phase, clock, clock.stop(start),
                                      self._op_flops))
                self._phase, self._op_flops = outer_phase, outer_flops
        return timed

    def _timed_kernel(self, name, kernel):
        def timed(*args, **kwargs):
            first = GEMMS.get(name, 0)
            clock = self._clock(args[first])
            if clock is None:
                return kernel(*args, **kwargs)
            flops = _gemm_flops(*args[first:first + 2]) if name in GEMMS else 0
            start = clock.start()
            try:
                result = kernel(*args, **kwargs)
                if result is False:  # gemm_into declined (layout): the caller does the work
                    flops = 0
                return result
            finally:
                self._records.append(("kernel", name, self._phase, clock, clock.stop(start),
                                      flops))
                self._op_flops += flops
        return timed

    def __enter__(self):
        if _tensor._profiler is not None:
            raise RuntimeError("profile() is already active; profiles do not nest")
        self._saved = [(module, name, getattr(module, name)) for module, name in KERNELS]
        for module, name, kernel in self._saved:
            setattr(module, name, self._timed_kernel(name, kernel))
        _tensor._profiler = self
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        _tensor._profiler = None
        for module, name, kernel in self._saved:
            setattr(module, name, kernel)
        for clock in self._clocks.values():
            clock.sync()  # the wall time includes the queued GPU work
        self.wall_seconds = time.perf_counter() - self._start
        self._rows = self._aggregate(self._records)  # GPU: the one read of the events
        self._records = []
        return False

    # ---- results ----------------------------------------------------------------------
    @staticmethod
    def _aggregate(records) -> dict:
        sums = defaultdict(lambda: [0, 0.0, 0])  # calls, seconds, flops
        for kind, name, phase, clock, measurement, flops in records:
            row = sums[kind, name, phase]
            row[0] += 1
            row[1] += clock.seconds(measurement)
            row[2] += flops
        rows = {"op": [], "kernel": []}
        for (kind, name, phase), (calls, seconds, flops) in sums.items():
            rows[kind].append({
                "name": name, "phase": phase, "calls": calls, "total_seconds": seconds,
                "mean_seconds": seconds / calls,
                "gflops_per_second": flops / seconds / 1e9 if flops and seconds else None})
        for kind_rows in rows.values():
            kind_rows.sort(key=lambda r: r["total_seconds"], reverse=True)
        return rows

    def rows(self, kind: str = "op") -> list[dict]:
        """Aggregated rows of ``"op"`` or ``"kernel"``: name, phase, calls, total_seconds,
        mean_seconds, gflops_per_second (None where no GEMM ran), by total time, longest first."""
        if kind not in ("op", "kernel"):
            raise ValueError(f"rows: kind must be 'op' or 'kernel', not {kind!r}")
        if self._rows is None:
            raise RuntimeError("the profile has results once its `with` block has ended")
        return self._rows[kind]

    def gemm_seconds(self) -> float:
        """Time in GEMMs (the ``matmul`` and ``gemm_into`` kernel rows)."""
        return sum(r["total_seconds"] for r in self.rows("kernel") if r["name"] in GEMMS)

    def as_dict(self) -> dict:
        return {"wall_seconds": self.wall_seconds, "gemm_seconds": self.gemm_seconds(),
                "clocks": sorted(type(c).__name__ for c in self._clocks.values()),
                "ops": self.rows("op"), "kernels": self.rows("kernel")}

    def to_json(self, path) -> None:
        """Write :meth:`as_dict` as JSON (atomically: a temp file beside ``path``, renamed)."""
        with atomic_open(path) as f:
            f.write(json.dumps(self.as_dict(), indent=1).encode())

    def table(self) -> str:
        wall = self.wall_seconds
        lines = [f"profile: {wall:.3f} s wall"]
        titles = {"op": "ops (Function.forward / backward):",
                  "kernel": "kernels (inside the ops; phase 'other': outside any op, e.g. the "
                            "optimizer):"}
        for kind, title in titles.items():
            lines += ["", title, f"{'name':<24} {'phase':<8} {'calls':>7} {'total ms':>10} "
                                 f"{'mean us':>9} {'% wall':>7} {'GFLOP/s':>8}"]
            total = 0.0
            for r in self.rows(kind):
                total += r["total_seconds"]
                gflops = r["gflops_per_second"]
                lines.append(
                    f"{r['name']:<24} {r['phase']:<8} {r['calls']:>7} "
                    f"{r['total_seconds'] * 1e3:>10.2f} {r['mean_seconds'] * 1e6:>9.1f} "
                    f"{100 * r['total_seconds'] / wall if wall else 0:>7.1f} "
                    f"{'' if gflops is None else f'{gflops:.1f}':>8}".rstrip())
            lines.append(f"{'total':<24} {'':<8} {'':>7} {total * 1e3:>10.2f} {'':>9} "
                         f"{100 * total / wall if wall else 0:>7.1f}")
        gemm = self.gemm_seconds()
        share = 100 * gemm / wall if wall else 0
        lines += ["", f"GEMM (matmul, gemm_into) {gemm:.3f} s = {share:.1f}% of wall; "
                      f"everything else {wall - gemm:.3f} s"]
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def profile() -> Profile:
    """A context manager that times every op and kernel run inside it::

        with tinygrad_mlp.profile() as prof:
            loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()
        print(prof)                 # tables sorted by total time
        prof.to_json("prof.json")   # or prof.as_dict()
    """
    return Profile()
