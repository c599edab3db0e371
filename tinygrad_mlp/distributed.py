"""Data-parallel training: rank and world size from the launcher, the gradient all-reduce and the
parameter broadcast through an existing engine.

Backends, picked from the arrays' module: MPI through ``mpi4py`` for NumPy arrays, NCCL through
CuPy (``cupy.cuda.nccl``) for CuPy arrays. Both are optional (``pip install 'tinygrad_mlp[dist]'``
for MPI) and imported only when a job asks for them.

Launch with ``mpiexec -n N python -m tinygrad_mlp.train --distributed`` (CPUs or GPUs), or on GPUs
with a torchrun-style launcher that sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. A process
started without a launcher is a job of one.

GPU collectives are enqueued on the current CUDA stream and use buffers that live as long as the
:class:`World`, with no host synchronisation, so the same step can be captured as a CUDA graph
(NCCL 2.9.6 and later support capture): the all-reduce then replays inside the graph.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
import traceback

import numpy as np

from . import device as _dev
from .tensor import Tensor

DIST_INSTALL_HINT = (
    "install the distributed extra: pip install 'tinygrad_mlp[dist]' "
    "(mpi4py with the MPICH wheel; on a cluster, mpi4py built against its own MPI)"
)

# Set by MPI launchers: MPICH/Intel MPI (hydra), Open MPI, PMIx, MVAPICH.
_MPI_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK",
                      "MV2_COMM_WORLD_RANK")


class DistributedError(RuntimeError):
    """The job cannot run as asked: a missing extra, a launcher we cannot read, a bad split."""


def _import_mpi():
    try:
        from mpi4py import MPI
    except Exception as e:  # ImportError, or mpi4py present but no MPI library to load
        raise DistributedError(f"MPI is needed (mpi4py could not be imported: {e}); "
                               f"{DIST_INSTALL_HINT}") from None
    return MPI


def _import_nccl(cupy):
    try:  # a submodule that ``import cupy`` leaves unloaded
        nccl = importlib.import_module(f"{cupy.__name__}.cuda.nccl")
    except Exception as e:  # ImportError, or a CuPy-like module without it
        nccl, why = None, e
    else:
        why = "NCCL library not found"
    if nccl is None or not getattr(nccl, "available", False):
        raise DistributedError(f"GPU arrays need NCCL through cupy.cuda.nccl ({why}); install "
                               "NCCL for your CUDA, e.g. pip install nvidia-nccl-cu13")
    return nccl


class World:
    """This process's place in a data-parallel job (``rank`` of ``size``) and its collectives.

    Make one with :func:`init`. ``mpi`` is the ``MPI.COMM_WORLD`` communicator, or None for a
    torchrun-style launch (GPU arrays only) or a job of one without mpi4py.
    """

    def __init__(self, rank: int, size: int, local_rank: int, mpi=None):
        self.rank, self.size, self.local_rank, self.mpi = rank, size, local_rank, mpi
        self._flat = {}     # (device, dtype) -> the flat gradient buffer, reused every step
        self._nccl = {}     # device -> (all_reduce, broadcast) functions
        self._weights = {}  # (device, dtype, value) -> 0-d device array (a step's loss weight)

    def __repr__(self):
        backend = "MPI" if self.mpi is not None else "no MPI"
        return f"World(rank={self.rank}, size={self.size}, local_rank={self.local_rank}, {backend})"

    # ---- splitting a global batch -------------------------------------------------------
    def share(self, n: int) -> slice:
        """This rank's contiguous share of `n` rows: ``n // size`` each, and one more for the
        first ``n % size`` ranks (as ``np.array_split``)."""
        q, rem = divmod(n, self.size)
        start = self.rank * q + min(self.rank, rem)
        return slice(start, start + q + (self.rank < rem))

    def _rows(self, n: int) -> int:
        part = self.share(n)
        return part.stop - part.start

    def shard(self, x, y):
        """(x, y, weight): this rank's share of a global batch, and the weight of its mean loss
        in the global mean, ``local rows / global rows``, as a 0-d array on x's device (cached,
        so a captured step reads it from memory that stays put)."""
        part = self.share(len(x))
        weight = self._rows(len(x)) / len(x)
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)
        key = (_dev.device_of(x), dtype, weight)
        if key not in self._weights:
            self._weights[key] = _dev.module_of(x).full((), weight, dtype=dtype)
        return x[part], y[part], self._weights[key]

    def check_batches(self, n: int, batch_size: int) -> None:
        """Every batch of an epoch of `n` rows must give every rank at least one row."""
        last = n % batch_size or batch_size
        if min(last, batch_size) < self.size:
            raise DistributedError(
                f"{self.size} ranks cannot share a batch of {min(last, batch_size)} rows "
                f"({n} rows in batches of {batch_size}): every rank needs at least one row; "
                "use a larger batch size or fewer ranks")

    def global_step_metrics(self, step_loss, step_correct, sizes):
        """Per-step global mean losses and correct counts from this rank's local ones.

        `step_loss` holds each step's local mean loss, `step_correct` its local correct count,
        `sizes` (host ints) each step's global batch size. One collective per array; the counts
        are summed in place."""
        local = np.array([self._rows(int(b)) for b in sizes])
        weights = _dev.module_of(step_loss).asarray((local / sizes).astype(step_loss.dtype))
        return self.sum(step_loss * weights), self.sum(step_correct)

    # ---- collectives --------------------------------------------------------------------
    def sum(self, array):
        """Sum `array` (a C-contiguous NumPy or CuPy array) over the ranks, in place; returns it."""
        if isinstance(array, np.ndarray):
            if self._host_collectives():
                self.mpi.Allreduce(_import_mpi().IN_PLACE, array)
        else:
            self._nccl_for(array)[0](array)
        return array

    def all_reduce_grads(self, params, average: bool = True) -> None:
        """Sum every parameter's gradient over the ranks (then divide by ``size`` when
        `average`), in one collective per device and dtype.

        The gradients are copied into one flat buffer, reduced there, and each ``p.grad`` becomes
        a view of that buffer (as DDP's ``gradient_as_bucket_view``): the next call overwrites
        them. A parameter without a gradient contributes zeros and gets the reduced gradient."""
        groups = {}
        for p in params:
            groups.setdefault((p.device, p.dtype), []).append(p)
        for key, group in groups.items():
            flat = self._flat_buffer(key, group)
            offset = 0
            for p in group:
                view = flat[offset:offset + p.data.size].reshape(p.shape)
                if p.grad is None:
                    view.fill(0)
                else:
                    view[...] = p.grad.data
                offset += p.data.size
            self.sum(flat)
            if average and self.size > 1:
                flat *= flat.dtype.type(1 / self.size)
            offset = 0
            for p in group:
                p.grad = Tensor._wrap(flat[offset:offset + p.data.size].reshape(p.shape),
                                      p.device)
                offset += p.data.size

    def broadcast_parameters(self, params) -> None:
        """Copy rank 0's parameter values to every rank, in place (one collective per device
        and dtype). With MPI, first checks that every rank has the same parameter shapes."""
        params = list(params)
        if self.mpi is not None and self.size > 1:
            shapes = [(p.shape, str(p.dtype)) for p in params]
            for rank, theirs in enumerate(self.mpi.allgather(shapes)):
                if theirs != shapes:
                    raise DistributedError(f"rank {rank} has parameters {theirs}, rank "
                                           f"{self.rank} has {shapes}: run the same model on "
                                           "every rank")
        groups = {}
        for p in params:
            groups.setdefault((p.device, p.dtype), []).append(p)
        for group in groups.values():
            xp = _dev.module_of(group[0].data)
            flat = xp.concatenate([p.data.ravel() for p in group])
            if isinstance(flat, np.ndarray):
                if self._host_collectives():
                    self.mpi.Bcast(flat, root=0)
            else:
                self._nccl_for(flat)[1](flat)
            offset = 0
            for p in group:
                p.data[...] = flat[offset:offset + p.data.size].reshape(p.shape)
                offset += p.data.size

    def local_device(self, device: str) -> str:
        """The device this rank trains on: "cpu", or GPU number ``local_rank`` (one GPU per rank
        on each node), made CuPy's current device."""
        if not _dev.is_gpu(device):
            return "cpu"
        name = f"cuda:{self.local_rank}"
        _dev.check_gpu(name).cuda.Device(self.local_rank).use()
        return name

    def abort(self, code: int) -> None:
        """End every rank of the job now (MPI_Abort; without MPI, exit and let the launcher end
        the others, as torchrun does)."""
        print(f"rank {self.rank} of {self.size} failed (exit code {code}): ending the job",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        time.sleep(0.5)  # the launcher forwards output from a pipe: let it pass the error on
        if self.mpi is not None:
            self.mpi.Abort(code)
        os._exit(code)

    # ---- helpers --------------------------------------------------------------------------
    def _host_collectives(self) -> bool:
        """Whether NumPy arrays go through MPI (False: a job of one without it, a no-op)."""
        if self.mpi is None and self.size > 1:
            raise DistributedError("NumPy arrays go through MPI: launch the job with mpiexec "
                                   "(a torchrun-style launch serves GPU arrays only)")
        return self.mpi is not None

    def _flat_buffer(self, key, group):
        total = sum(p.data.size for p in group)
        flat = self._flat.get(key)
        if flat is None or flat.size != total:
            flat = self._flat[key] = _dev.module_of(group[0].data).empty(total, dtype=key[1])
        return flat

    def _nccl_for(self, array):
        """(all_reduce, broadcast) for `array`'s GPU: NCCL calls on the current stream, in place.

        The communicator is made on first use (a collective step: every rank gets here at the same
        point). Its id travels through MPI where the job has it, else through
        ``cupyx.distributed``'s TCP rendezvous (``CUPYX_DISTRIBUTED_HOST``/``_PORT``)."""
        device = _dev.device_of(array)
        if device in self._nccl:
            return self._nccl[device]
        cupy = _dev.check_gpu(device)
        nccl = _import_nccl(cupy)
        with cupy.cuda.Device(array.device.id):
            if self.mpi is None and self.size > 1:
                import cupyx.distributed

                comm = cupyx.distributed.init_process_group(self.size, self.rank)
                ops = (lambda a: comm.all_reduce(a, a, "sum"), lambda a: comm.broadcast(a, 0))
            else:
                uid = nccl.get_unique_id() if self.rank == 0 else None
                uid = self.mpi.bcast(uid, root=0) if self.mpi is not None else uid
                comm = nccl.NcclCommunicator(self.size, uid, self.rank)
                types = {np.dtype(t): getattr(nccl, f"NCCL_{n}") for t, n in _NCCL_TYPES}

                def all_reduce(a):
                    comm.allReduce(a.data.ptr, a.data.ptr, a.size, types[a.dtype],
                                   nccl.NCCL_SUM, cupy.cuda.get_current_stream().ptr)

                def broadcast(a):
                    comm.broadcast(a.data.ptr, a.data.ptr, a.size, types[a.dtype], 0,
                                   cupy.cuda.get_current_stream().ptr)

                ops = (all_reduce, broadcast)
        self._nccl[device] = ops
        return ops


_NCCL_TYPES = (("float16", "FLOAT16"), ("float32", "FLOAT32"), ("float64", "FLOAT64"),
               ("int32", "INT32"), ("int64", "INT64"), ("uint8", "UINT8"))

_world: World | None = None


def _env_int(*names):
    for name in names:
        if os.environ.get(name, "").strip().isdigit():
            return int(os.environ[name])
    return None


def init() -> World:
    """The job this process belongs to, read from its launcher (once; later calls return it).

    Under an MPI launcher (``mpiexec``/``mpirun``/``srun`` with PMI): ``MPI.COMM_WORLD``, with
    the local rank from its shared-memory split. Else with ``RANK`` and ``WORLD_SIZE`` set
    (torchrun style): those, and ``LOCAL_RANK``; NCCL only, so GPU arrays only. Else a job of one
    (through MPI when mpi4py is installed)."""
    global _world
    if _world is not None:
        return _world
    launched_by_mpi = any(name in os.environ for name in _MPI_LAUNCHER_VARS)
    rank, size = _env_int("RANK"), _env_int("WORLD_SIZE")
    if launched_by_mpi or rank is None or size is None:
        try:
            mpi = _import_mpi()
        except DistributedError:
            if launched_by_mpi:
                raise
            _world = World(0, 1, 0)  # a job of one needs no engine
            return _world
        comm = mpi.COMM_WORLD
        local = comm.Split_type(mpi.COMM_TYPE_SHARED).Get_rank()
        _world = World(comm.Get_rank(), comm.Get_size(), local, comm)
    else:
        if not 0 <= rank < size:
            raise DistributedError(f"RANK={rank} is not in [0, WORLD_SIZE={size})")
        _world = World(rank, size, _env_int("LOCAL_RANK") or 0)
    return _world


def is_initialized() -> bool:
    return _world is not None


def all_reduce_grads(params, average: bool = True) -> None:
    """:meth:`World.all_reduce_grads` of the job from :func:`init`."""
    init().all_reduce_grads(params, average)


def broadcast_parameters(params) -> None:
    """:meth:`World.broadcast_parameters` of the job from :func:`init`."""
    init().broadcast_parameters(params)


def abort_job_on_failure(main):
    """Decorate a ``main() -> exit code``: in a job of several ranks, a rank that fails (an
    exception, ``sys.exit`` or a non-zero return) prints its error and ends the whole job, since
    the other ranks would otherwise wait forever in their next collective."""
    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            code = main(*args, **kwargs)
        except SystemExit as e:
            if _world is None or _world.size == 1 or e.code in (0, None):
                raise
            if not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            if _world is None or _world.size == 1:
                raise
            sys.stderr.write(traceback.format_exc())
            code = 1
        if code and _world is not None and _world.size > 1:
            _world.abort(code)
        return code

    return run
