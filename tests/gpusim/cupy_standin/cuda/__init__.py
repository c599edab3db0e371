"""``cupy.cuda`` of the stand-in: devices, streams, events, memory pools and stream capture.

Work runs on the host, in order, when it is issued. While a stream captures, work issued on it
is recorded into a graph instead (and runs on each launch of the graph), and what CUDA graph
capture refuses raises here too, with the rule in the message:

- a host sync (``.get()``, ``float()``, ``.item()``, ``stream.synchronize()``, ...): CUDA fails
  with cudaErrorStreamCaptureUnsupported and invalidates the capture;
- a host-to-device copy (``cupy.asarray(numpy_array)``, ``ndarray.set``): the same;
- a cuBLAS call through CuPy: CuPy's own NotImplementedError (cupy/cupy#6290);
- an allocation from the default memory pool: stricter than CUDA (CuPy captures in relaxed mode,
  where cudaMalloc is allowed), because a block the graph writes could be handed to an array
  outside it after capture (cupy/cupy#9655); a graph allocates from a pool of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import weakref

import numpy as np

from . import runtime
from .runtime import CUDARuntimeError

_state = threading.local()
_handles = itertools.count(0x7F0000001000, 0x100)  # fake, distinct stream and event handles


def is_available() -> bool:
    return True


# ---- devices ------------------------------------------------------------------------------
class Device:
    """``cupy.cuda.Device``: only device 0 exists; others fail when used, as on CUDA."""

    def __init__(self, device=None):
        self.id = runtime.getDevice() if device is None else int(device)

    def use(self):
        runtime.setDevice(self.id)

    def __enter__(self):
        self.use()
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        _host_sync("Device.synchronize()")

    @property
    def compute_capability(self) -> str:
        props = runtime.getDeviceProperties(self.id)
        return f"{props['major']}{props['minor']}"

    @property
    def attributes(self) -> dict:
        props = runtime.getDeviceProperties(self.id)
        return {"MultiProcessorCount": props["multiProcessorCount"],
                "MaxThreadsPerBlock": props["maxThreadsPerBlock"], "WarpSize": props["warpSize"]}

    @property
    def mem_info(self) -> tuple[int, int]:
        return runtime.memGetInfo()

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(("Device", self.id))

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


# ---- streams, events, graphs ------------------------------------------------------------------
class Event:
    """``cupy.cuda.Event``: records the host clock (work is done when issued)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.ptr = next(_handles)
        self.disable_timing = disable_timing
        self._time = None

    def record(self, stream=None):
        stream = stream if stream is not None else get_current_stream()

        def stamp():
            self._time = time.perf_counter()

        _submit(stamp, stream)

    def synchronize(self):
        _host_sync("Event.synchronize()")

    @property
    def done(self) -> bool:
        return True


def get_elapsed_time(start_event: Event, end_event: Event) -> float:
    """Milliseconds between two recorded events (host clock, never negative)."""
    for event in (start_event, end_event):
        if event.disable_timing:
            raise CUDARuntimeError("cudaErrorInvalidResourceHandle",
                                   "an event created with disable_timing=True cannot be timed")
        if event._time is None:
            raise CUDARuntimeError("cudaErrorInvalidResourceHandle", "event was never recorded")
    return max(0.0, (end_event._time - start_event._time) * 1e3)


class Graph:
    """A captured graph: the recorded work, run again in order on every launch."""

    def __init__(self, nodes):
        self._nodes = nodes

    def launch(self, stream=None):
        for work in self._nodes:
            _submit(work, stream if stream is not None else get_current_stream())

    def upload(self, stream=None):
        pass


class Stream:
    """``cupy.cuda.Stream``; ``Stream.null`` is the default (legacy) stream, handle 0."""

    null: Stream

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = 0 if null else next(_handles)
        self.device_id = -1 if null else runtime.getDevice()
        self.non_blocking = non_blocking
        self._nodes = None  # the graph being recorded, while capturing
        self._invalid = None  # why a capture was invalidated

    def __enter__(self):
        _stack().append(self)
        return self

    def __exit__(self, *exc):
        _stack().pop()
        return False

    def use(self):
        stack = _stack()
        if stack:
            stack[-1] = self
        else:
            stack.append(self)
        return self

    def synchronize(self):
        _host_sync("Stream.synchronize()")

    @property
    def done(self) -> bool:
        return True

    def record(self, event=None):
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        pass

    def begin_capture(self, mode=None):
        if self.ptr == 0:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if _capturing() is not None:
            raise CUDARuntimeError("cudaErrorIllegalState",
                                   "another stream of this thread is already capturing")
        self._nodes, self._invalid = [], None
        _state.capture = self

    def end_capture(self):
        if _capturing() is not self:
            raise CUDARuntimeError("cudaErrorIllegalState", "the stream is not capturing")
        _state.capture = None
        nodes, self._nodes = self._nodes, None
        if self._invalid is not None:
            raise CUDARuntimeError("cudaErrorStreamCaptureInvalidated",
                                   f"operation failed due to a previous error during capture "
                                   f"({self._invalid})")
        return Graph(nodes)

    def is_capturing(self) -> bool:
        return _capturing() is self

    def __eq__(self, other):
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self):
        return hash(("Stream", self.ptr))

    def __repr__(self):
        return f"<Stream {self.ptr} (device {self.device_id})>"


Stream.null = Stream(null=True)
ExternalStream = Stream


def _stack() -> list:
    if not hasattr(_state, "streams"):
        _state.streams = []
    return _state.streams


def get_current_stream(device_id=None) -> Stream:
    stack = _stack()
    return stack[-1] if stack else Stream.null


def _capturing() -> Stream | None:
    return getattr(_state, "capture", None)


def _submit(work, stream=None) -> None:
    """Issue device work (it writes device memory): run it now, or, issued on a capturing
    stream, only record it (a capture runs nothing; the graph's launches do)."""
    if _on_capture(stream):
        _capturing()._nodes.append(work)
    else:
        work()


def _on_capture(stream=None) -> bool:
    capture = _capturing()
    return capture is not None and (stream or get_current_stream()) is capture




# ---- what capture refuses ---------------------------------------------------------------------
def _refuse(rule: str) -> None:
    capture = _capturing()
    if capture is not None:
        capture._invalid = rule
        raise CUDARuntimeError("cudaErrorStreamCaptureUnsupported",
                               f"operation not permitted when stream is capturing: {rule}")


_transfers = {"host_sync": 0, "host_to_device": 0}  # counted for the tests of data residency


def _host_sync(what: str) -> None:
    """A host sync: refused while a stream captures (a graph cannot wait on the host)."""
    _transfers["host_sync"] += 1
    _refuse(f"{what} is a host sync, which a CUDA graph cannot record")


def _host_to_device(what: str) -> None:
    """A copy from host memory: refused while a stream captures."""
    _transfers["host_to_device"] += 1
    _refuse(f"{what} is a host-to-device copy from pageable memory, which a CUDA graph cannot "
            "record")


def _cublas(what: str) -> None:
    """CuPy refuses every cuBLAS call while the current stream captures (cupy/cupy#6290)."""
    if _capturing() is not None:
        raise NotImplementedError(
            f"calling cuBLAS API during stream capture is currently unsupported ({what})")


# ---- memory -----------------------------------------------------------------------------------
_ALIGN = 256  # cudaMalloc's alignment


class Memory:
    """One device allocation: a NumPy byte buffer at a 256-byte aligned address."""

    def __init__(self, size: int):
        self.size = size
        raw = np.empty(size + _ALIGN, dtype=np.uint8)
        start = (-raw.ctypes.data) % _ALIGN
        self.array = raw[start:start + size]
        self.ptr = self.array.ctypes.data if size else 0
        self.device_id = 0


class PooledMemory:
    """A block lent by a MemoryPool; it goes back to the pool when nothing refers to it."""

    def __init__(self, pool, block: Memory, stream_ptr: int):
        self.block, self.size = block, block.size
        self.array, self.ptr, self.device_id = block.array, block.ptr, 0
        weakref.finalize(self, pool._release, block, stream_ptr)


class MemoryPointer:
    def __init__(self, mem, offset: int = 0):
        self.mem, self.offset = mem, offset

    @property
    def ptr(self) -> int:
        return self.mem.ptr + self.offset

    @property
    def device_id(self) -> int:
        return 0

    @property
    def device(self) -> Device:
        return Device(0)

    def __add__(self, offset: int) -> MemoryPointer:
        return MemoryPointer(self.mem, self.offset + offset)

    def __int__(self):
        return self.ptr


class MemoryPool:
    """CuPy's MemoryPool in miniature: blocks rounded to 512 bytes, kept per stream and reused
    (best fit) once freed; ``used_bytes``/``total_bytes`` as CuPy counts them."""

    _ROUND = 512

    def __init__(self, allocator=None):
        self._free: dict[int, list[Memory]] = {}
        self._used = self._total = 0
        self._lock = threading.Lock()

    def malloc(self, size: int) -> MemoryPointer:
        size = -(-int(size) // self._ROUND) * self._ROUND
        if size == 0:
            return MemoryPointer(Memory(0))
        if _capturing() is not None and self is _default_pool():
            raise RuntimeError(
                "allocation from the default memory pool while a stream is capturing: blocks the "
                "graph writes could later be handed to arrays outside it (cupy/cupy#9655); "
                "allocate from a pool of the graph's own: "
                "cupy.cuda.using_allocator(cupy.cuda.MemoryPool().malloc)")
        stream = get_current_stream().ptr
        with self._lock:
            free = self._free.setdefault(stream, [])
            fits = [b for b in free if b.size >= size]
            if fits:
                block = min(fits, key=lambda b: b.size)
                free.remove(block)
            else:
                block = Memory(size)
                self._total += size
            self._used += block.size
        return MemoryPointer(PooledMemory(self, block, stream))

    def _release(self, block: Memory, stream_ptr: int) -> None:
        with self._lock:
            self._used -= block.size
            self._free.setdefault(stream_ptr, []).append(block)

    def used_bytes(self) -> int:
        return self._used

    def total_bytes(self) -> int:
        return self._total

    def free_bytes(self) -> int:
        return self._total - self._used

    def n_free_blocks(self) -> int:
        return sum(len(blocks) for blocks in self._free.values())

    def free_all_blocks(self, stream=None) -> None:
        with self._lock:
            for blocks in self._free.values():
                self._total -= sum(b.size for b in blocks)
                blocks.clear()

    def set_limit(self, size=None, fraction=None) -> None:
        pass

    def get_limit(self) -> int:
        return 0


class PinnedMemoryPool:
    def n_free_blocks(self) -> int:
        return 0

    def free_all_blocks(self) -> None:
        pass


_pools: dict[str, object] = {}


def _default_pool() -> MemoryPool:
    if "device" not in _pools:
        _pools["device"] = MemoryPool()
    return _pools["device"]


def _default_pinned_pool() -> PinnedMemoryPool:
    if "pinned" not in _pools:
        _pools["pinned"] = PinnedMemoryPool()
    return _pools["pinned"]


def get_allocator():
    return getattr(_state, "allocator", None) or _default_pool().malloc


def set_allocator(allocator=None) -> None:
    _state.allocator = allocator


@contextlib.contextmanager
def using_allocator(allocator=None):
    previous = getattr(_state, "allocator", None)
    _state.allocator = allocator
    try:
        yield
    finally:
        _state.allocator = previous


def alloc(size: int) -> MemoryPointer:
    return get_allocator()(size)

