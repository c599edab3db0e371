"""TinyJit: capture a whole training step as a CUDA graph once, replay it every later step.

At batch 128 a training step is ~20 small kernels; launched one by one from Python, launch overhead
sets the speed. ``TinyJit(step)`` (the name and idea of tinygrad's) runs the step eagerly on call 1
(kernels compile, memory pools grow), captures call 2 into a CUDA graph, and replays that graph
from then on. On the CPU it simply calls the function.

Rules (the graph cannot change after capture; tests/test_jit.py documents each):
- Array arguments (Tensors or arrays) are copied into static device buffers before each replay;
  anything else (Python numbers, strings) is frozen at capture and must not change.
- The return value lives in static buffers that each replay overwrites: read or copy it before
  the next call.
- A call with other shapes, dtypes or devices gets a capture of its own (e.g. the last batch of
  96), up to ``max_captures``; beyond that, a clear error.
- If a capture fails (an operation CUDA graphs refuse), TinyJit warns once with the reason and
  runs that step eagerly from then on, so training goes on at eager speed.
- Inside the step: no host sync (``.item()``, ``float(x)``, printing values), no host-to-device
  copies, no ``cupy.random``. Learning rates of ``optim.SGD`` live in device memory, so changing
  ``optimizer.lr`` needs no re-capture; Adam's step counts (one per parameter) are host numbers
  and would be frozen unless it is built with ``capturable=True`` (counts, bias corrections and
  lr on the device), so ``train.make_step`` captures only optimizers whose ``capturable`` is
  true (SGD, and Adam built so).
- GEMMs run through our own cuBLAS handle while capturing (:mod:`tinygrad_mlp.cublas`), since
  CuPy refuses cuBLAS calls during stream capture.
"""

from __future__ import annotations

import contextlib
import warnings

from . import device as _dev
from .tensor import Tensor


def _arrays_of(args):
    return [a.data if isinstance(a, Tensor) else a for a in args]


def _signature(args):
    sig = []
    for a in args:
        data = a.data if isinstance(a, Tensor) else a
        if hasattr(data, "shape") and hasattr(data, "dtype"):
            sig.append(("array", data.shape, str(data.dtype), _dev.device_of(data)))
        else:
            sig.append(("value", repr(a)))
    return tuple(sig)


class _Capture:
    """One CUDA graph with its static inputs, outputs and the memory pool they live in.

    The warm-up call and the capture both allocate from a pool of their own (CuPy #9655): a block
    freed inside the graph is never handed to an array outside it, which a replay would clobber.
    """

    def __init__(self, cupy):
        self.cupy, self.graph, self.error = cupy, None, None
        self.pool = cupy.cuda.MemoryPool()
        # Warm-up and capture share one side stream (CuPy captures only off the default stream),
        # so the pool's blocks for that stream exist before capture and no cudaMalloc runs in it.
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def _on_side_stream(self, work):
        cupy = self.cupy
        caller = cupy.cuda.get_current_stream()
        self.stream.wait_event(caller.record())
        try:
            with cupy.cuda.using_allocator(self.pool.malloc), self.stream:
                return work()
        finally:
            caller.wait_event(self.stream.record())

    def warm_up(self, fn, args):
        return self._on_side_stream(lambda: fn(*args))

    def capture(self, fn, args):
        cupy = self.cupy
        self.inputs = self._on_side_stream(lambda: [
            cupy.array(a) if isinstance(a, cupy.ndarray) else a for a in _arrays_of(args)])
        static_args = [Tensor._wrap(s, a.device, a.requires_grad) if isinstance(a, Tensor)
                       else s for a, s in zip(args, self.inputs)]

        def record():
            self.stream.begin_capture()
            try:
                self.output = fn(*static_args)
            except BaseException:
                with contextlib.suppress(Exception):  # keep the first error, not end_capture's
                    self.stream.end_capture()
                raise
            self.graph = self.stream.end_capture()

        previous, _dev.capturing = _dev.capturing, True
        try:
            self._on_side_stream(record)
        except Exception as e:
            self.graph, self.error = None, e
        finally:
            _dev.capturing = previous
        if self.error is not None:  # nothing ran: redo this step, and later ones, eagerly
            warnings.warn(f"TinyJit: capture failed, running eagerly instead: "
                          f"{type(self.error).__name__}: {self.error}", RuntimeWarning,
                          stacklevel=3)
            return self.warm_up(fn, args)
        return self.replay(args)

    def replay(self, args):
        stream = self.cupy.cuda.get_current_stream()
        with stream:
            for static, a in zip(self.inputs, _arrays_of(args)):
                if isinstance(static, self.cupy.ndarray) and static is not a:
                    static[...] = a  # device-to-device copy into the captured buffer
        self.graph.launch(stream)  # on the caller's stream: later eager work is ordered after
        return self.output


class TinyJit:
    """Wrap a step function: eager on call 1, captured on call 2, replayed afterwards (GPU)."""

    def __init__(self, fn, max_captures: int = 4):
        self.fn, self.max_captures = fn, max_captures
        self.captures = {}

    def reset(self):
        """Drop every capture (e.g. after replacing parameters or the optimizer)."""
        self.captures.clear()

    def pool_bytes(self) -> int:
        """Device memory held by the captures' own memory pools."""
        return sum(int(c.pool.total_bytes()) for c in self.captures.values())

    def __call__(self, *args):
        devices = {_dev.device_of(a) for a in _arrays_of(args) if hasattr(a, "dtype")}
        if not devices or devices == {"cpu"}:
            return self.fn(*args)  # nothing to capture on the CPU
        key = _signature(args)
        capture = self.captures.get(key)
        if capture is None:
            if len(self.captures) >= self.max_captures:
                raise RuntimeError(f"TinyJit: already {self.max_captures} captures for other "
                                   f"shapes; this call has {key}")
            capture = self.captures[key] = _Capture(_dev.check_gpu(devices.pop()))
            return capture.warm_up(self.fn, args)  # call 1: compile kernels, grow the pool
        if capture.error is not None:
            return capture.warm_up(self.fn, args)  # capture failed once: stay eager
        if capture.graph is None:
            return capture.capture(self.fn, args)  # call 2: record, then replay once
        return capture.replay(args)
