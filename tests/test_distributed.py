"""Data-parallel training: batch splitting, the collectives, and 2-rank jobs under mpiexec that
must equal the single-process run (tests/dist_job.py is the program each rank runs)."""

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import tinygrad_mlp
from tinygrad_mlp import Tensor, nn, train
from tinygrad_mlp import distributed as dist

JOB = Path(__file__).with_name("dist_job.py")
MPIEXEC = (shutil.which("mpiexec", path=str(Path(sys.executable).parent))
           or shutil.which("mpiexec"))
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs the dist extra (mpi4py and an MPI with mpiexec)")


@pytest.fixture(autouse=True)
def no_world(monkeypatch):
    """Each test starts outside any job."""
    monkeypatch.setattr(dist, "_world", None)


# ---- splitting batches ------------------------------------------------------------------
@pytest.mark.parametrize("n, size", [(128, 2), (96, 2), (63, 2), (10, 3), (7, 7), (100, 8)])
def test_shares_are_contiguous_cover_the_batch_and_differ_by_at_most_one(n, size):
    parts = [dist.World(r, size, 0).share(n) for r in range(size)]
    assert parts[0].start == 0 and parts[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    counts = [p.stop - p.start for p in parts]
    assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)


def test_shard_weights_are_the_shares_of_the_global_batch():
    x, y = np.arange(63 * 2, dtype=np.float32).reshape(63, 2), np.arange(63)
    got = [dist.World(r, 2, 0).shard(x, y) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([g[0] for g in got]), x)
    np.testing.assert_array_equal(np.concatenate([g[1] for g in got]), y)
    assert [float(g[2]) for g in got] == pytest.approx([32 / 63, 31 / 63])
    assert got[0][2].dtype == np.float32 and got[0][2].shape == ()


def test_a_batch_smaller_than_the_ranks_is_refused():
    dist.World(0, 3, 0).check_batches(60000, 128)  # last batch 96: fine
    with pytest.raises(dist.DistributedError, match="3 ranks cannot share a batch of 2 rows"):
        dist.World(0, 3, 0).check_batches(130, 128)
    with pytest.raises(dist.DistributedError, match="batch of 2 rows"):
        dist.World(0, 3, 0).check_batches(60000, 2)


# ---- collectives against a recording stand-in for MPI.COMM_WORLD ---------------------------
class TwinComm:
    """MPI.COMM_WORLD of rank 0 in a 2-rank job whose other rank holds `other` (a function of the
    array being summed); records every call."""

    def __init__(self, other=lambda a: a):
        self.calls, self.other = [], other

    def Allreduce(self, _, array):
        self.calls.append(("Allreduce", array.dtype, array.size))
        array += self.other(array.copy())

    def Bcast(self, array, root):
        self.calls.append(("Bcast", array.dtype, array.size))

    def allgather(self, obj):
        return [obj, obj]


@pytest.fixture
def twin(monkeypatch):
    monkeypatch.setattr(dist, "_import_mpi", lambda: types.SimpleNamespace(IN_PLACE=None))
    comm = TwinComm(other=lambda a: 3 * a)  # the other rank's gradients are 3x ours
    return dist.World(0, 2, 0, mpi=comm), comm


def model_with_grads():
    Tensor.manual_seed(0)
    model = nn.MLP([6, 5, 3])
    x = Tensor(np.random.default_rng(0).random((4, 6)))
    (model(x) * model(x)).sum().backward()
    return model


def test_all_reduce_grads_averages_in_one_call_per_dtype(twin):
    world, comm = twin
    model = model_with_grads()
    params = model.parameters()
    before = [p.grad.numpy().copy() for p in params]
    world.all_reduce_grads(params)
    assert comm.calls == [("Allreduce", np.float32, sum(p.data.size for p in params))]
    for p, g in zip(params, before):
        np.testing.assert_allclose(p.grad.numpy(), (g + 3 * g) / 2, rtol=1e-6)
    world.all_reduce_grads(params, average=False)  # the sum alone, on the already-reduced grads
    np.testing.assert_allclose(params[0].grad.numpy(), 4 * (before[0] + 3 * before[0]) / 2,
                               rtol=1e-6)


def test_a_parameter_without_gradient_takes_part_with_zeros(twin):
    world, comm = twin
    model = model_with_grads()
    params = model.parameters()
    params[1].grad = None
    world.all_reduce_grads(params)
    np.testing.assert_array_equal(params[1].grad.numpy(), np.zeros(params[1].shape))


def test_broadcast_parameters_one_call_and_shape_check(twin):
    world, comm = twin
    params = model_with_grads().parameters()
    values = [p.numpy().copy() for p in params]
    world.broadcast_parameters(params)
    assert comm.calls == [("Bcast", np.float32, sum(p.data.size for p in params))]
    for p, v in zip(params, values):
        np.testing.assert_array_equal(p.numpy(), v)
    comm.allgather = lambda shapes: [shapes, shapes[:1]]
    with pytest.raises(dist.DistributedError, match="rank 1 has parameters .* run the same model"):
        world.broadcast_parameters(params)


def test_step_metrics_are_weighted_by_each_ranks_share(twin):
    world, comm = twin
    comm.other = lambda a: a  # the other rank sends what this one sends
    loss = np.array([1.0, 2.0], np.float32)  # local means of rank 0: 32 of 63 rows, 5 of 9
    correct = np.array([5, 7])
    got_loss, got_correct = world.global_step_metrics(loss, correct, np.array([63, 9]))
    np.testing.assert_allclose(got_loss, [2 * 32 / 63, 2 * 2.0 * 5 / 9], rtol=1e-6)
    np.testing.assert_array_equal(got_correct, [10, 14])


# ---- init: launchers, and the missing extra -----------------------------------------------
def test_torchrun_style_environment(monkeypatch):
    for name in dist._MPI_LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    world = dist.init()
    assert (world.rank, world.size, world.local_rank, world.mpi) == (1, 2, 1, None)
    assert dist.init() is world
    with pytest.raises(dist.DistributedError, match="launch the job with mpiexec"):
        world.sum(np.zeros(3))
    with pytest.raises(dist.DistributedError, match="launch the job with mpiexec"):
        world.broadcast_parameters(nn.MLP([3, 2]).parameters())
    monkeypatch.setattr(dist, "_world", None)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(dist.DistributedError, match=r"RANK=2 is not in \[0, WORLD_SIZE=2\)"):
        dist.init()


def test_missing_mpi4py_under_mpiexec_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import fails
    monkeypatch.setenv("PMI_RANK", "0")
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--distributed"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--distributed: MPI is needed" in err and "pip install 'tinygrad_mlp[dist]'" in err


def test_a_job_of_one_without_mpi4py_needs_no_engine(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    for name in (*dist._MPI_LAUNCHER_VARS, "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    world = dist.init()
    assert (world.rank, world.size, world.mpi) == (0, 1, None)
    params = model_with_grads().parameters()
    grads = [p.grad.numpy().copy() for p in params]
    world.all_reduce_grads(params)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.numpy(), g)


# ---- real jobs under mpiexec ---------------------------------------------------------------
def run_job(args, ranks=None, timeout=120, env=None, command=None):
    """Run tests/dist_job.py with `args` (under mpiexec with `ranks`, else as one process), or
    `command`; a job that outlives `timeout` is killed with its whole process group and fails
    the test."""
    if command is None:
        command = [sys.executable, str(JOB), *args]
        if ranks is not None:
            command = [MPIEXEC, "-n", str(ranks), *command]
    package_root = str(Path(tinygrad_mlp.__file__).resolve().parents[1])
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                       os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"job {command} still running after {timeout} s: a rank hangs")
    return proc.returncode, out, err


def numbers(line):
    """The four metrics of a log line (the seconds left out)."""
    loss, acc = line.split("\t")[:2]
    return [float(v) for part in (loss, acc) for v in part.split(": ")[1].split(" / ")]


@needs_mpi
def test_two_ranks_take_the_same_steps_as_one_process(tmp_path):
    # Batch 63 splits 32/31 (unequal shares); 3200 rows leave a last batch of 50.
    code, _, err = run_job(["steps", str(tmp_path / "one.npy"), "51", "63"])
    assert code == 0, err
    code, _, err = run_job(["steps", str(tmp_path / "two.npy"), "51", "63", "--distributed"], 2)
    assert code == 0, err
    one, two = np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy")
    assert len(one) == 51 and one.min() < one[0] - 0.5  # it learns: the comparison means something
    np.testing.assert_allclose(two[:50], one[:50], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)


@needs_mpi
@pytest.mark.slow
def test_reference_run_on_two_ranks_takes_the_same_first_50_steps(tmp_path):
    # 784-512-512-10 on MNIST, batch 128 (64 rows a rank). Past step ~60 at lr 0.5 any float32
    # reordering (even 1 vs 2 BLAS threads in one process) grows to percents: see README.
    code, _, err = run_job(["steps", str(tmp_path / "one.npy"), "50", "128", "--mnist"])
    assert code == 0, err
    code, _, err = run_job(["steps", str(tmp_path / "two.npy"), "50", "128", "--mnist",
                            "--distributed"], 2)
    assert code == 0, err
    one, two = np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy")
    assert len(one) == 50 and one[-1] < one[0] - 0.1
    np.testing.assert_allclose(two, one, rtol=1e-6)


@needs_mpi
@pytest.mark.parametrize("extra", [["--epochs", "1"], ["--epochs", "2", "--shuffle"]])
def test_two_rank_trainer_prints_the_single_process_epoch_lines(tmp_path, extra):
    flags = ["train", "--quiet", "--hidden", "32", "--batch-size", "63", *extra]
    code, single, err = run_job(flags)
    assert code == 0, err
    metrics = tmp_path / "m.json"
    code, both, err = run_job([*flags, "--distributed", "--metrics-json", str(metrics)], 2)
    assert code == 0, err
    single, both = single.splitlines(), both.splitlines()
    assert len(single) == len(both) == int(extra[1])  # only rank 0 prints
    for one, two in zip(single, both):
        assert [f"{v:.3f}" for v in numbers(two)] == [f"{v:.3f}" for v in numbers(one)]
    assert json.loads(metrics.read_text())["ranks"] == 2


@needs_mpi
@pytest.mark.parametrize("fail, message", [
    ("data", "injected: rank-local data file is corrupt"),
    ("step", "RuntimeError: injected: step 5 failed on this rank"),
])
def test_a_failing_rank_ends_the_whole_job_with_its_message(fail, message):
    flags = ["train", "--quiet", "--epochs", "3", "--hidden", "32", "--distributed"]
    code, _, err = run_job(flags, 2, timeout=60,
                           env={"DIST_JOB_FAIL_RANK": "1", "DIST_JOB_FAIL": fail})
    assert code != 0
    assert message in err and "rank 1 of 2 failed (exit code 1): ending the job" in err


@needs_mpi
def test_ranks_with_different_models_stop_with_a_clear_error():
    rank = [sys.executable, str(JOB), "train", "--quiet", "--distributed", "--hidden"]
    code, _, err = run_job(None, timeout=60, command=[MPIEXEC, "-n", "1", *rank, "32", ":",
                                                      "-n", "1", *rank, "16"])
    assert code != 0 and "run the same model on every rank" in err


# ---- the NCCL calls, against a recording stand-in for CuPy and cupy.cuda.nccl ----------------
class FakeGpuArray:
    """Just what the NCCL path reads of a CuPy array."""

    def __init__(self, values):
        self.values = np.asarray(values)
        self.dtype, self.size, self.shape = self.values.dtype, self.values.size, self.values.shape
        self.data = types.SimpleNamespace(ptr=1000 + id(self) % 997)
        self.device = types.SimpleNamespace(id=0)


@pytest.fixture
def fake_nccl(monkeypatch):
    calls = []

    class Communicator:
        def __init__(self, size, uid, rank):
            calls.append(("init", size, uid, rank))

        def allReduce(self, *args):
            calls.append(("allReduce", *args))

        def broadcast(self, *args):
            calls.append(("broadcast", *args))

    nccl = types.ModuleType("fakecupy.cuda.nccl")
    nccl.__dict__.update(available=True, NcclCommunicator=Communicator, NCCL_SUM=0,
                         get_unique_id=lambda: (7, 7, 7),
                         **{f"NCCL_{n}": i + 10 for i, (_, n) in enumerate(dist._NCCL_TYPES)})
    cuda = types.ModuleType("fakecupy.cuda")
    cuda.__dict__.update(nccl=nccl, Device=lambda i: contextlib.nullcontext(),
                         runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                         get_current_stream=lambda: types.SimpleNamespace(ptr=4242))
    cupy = types.ModuleType("fakecupy")
    cupy.__dict__.update(cuda=cuda, ndarray=FakeGpuArray)
    for name, module in (("fakecupy", cupy), ("fakecupy.cuda", cuda),
                         ("fakecupy.cuda.nccl", nccl)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(dist._dev, "_cupy", cupy)
    return nccl, calls


def test_gpu_arrays_go_through_nccl_on_the_current_stream(fake_nccl, monkeypatch):
    nccl, calls = fake_nccl
    monkeypatch.setattr(dist, "_import_mpi", lambda: types.SimpleNamespace(IN_PLACE=None))
    comm = TwinComm()
    comm.bcast = lambda obj, root: calls.append(("mpi bcast", obj, root)) or obj
    world = dist.World(0, 2, 0, mpi=comm)
    a, b = FakeGpuArray(np.ones(5, np.float32)), FakeGpuArray(np.ones(3, np.int64))
    world.sum(a)
    world.sum(b)
    world._nccl_for(a)[1](a)
    assert calls == [
        ("mpi bcast", (7, 7, 7), 0),  # rank 0's id reaches every rank through MPI
        ("init", 2, (7, 7, 7), 0),     # one communicator, made once
        ("allReduce", a.data.ptr, a.data.ptr, 5, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, 4242),
        ("allReduce", b.data.ptr, b.data.ptr, 3, nccl.NCCL_INT64, nccl.NCCL_SUM, 4242),
        ("broadcast", a.data.ptr, a.data.ptr, 5, nccl.NCCL_FLOAT32, 0, 4242),
    ]
    assert comm.calls == []  # nothing of the GPU arrays went through MPI


def test_a_cupy_without_nccl_is_a_clear_error(fake_nccl, monkeypatch):
    nccl, _ = fake_nccl
    monkeypatch.setattr(nccl, "available", False)
    with pytest.raises(dist.DistributedError, match="GPU arrays need NCCL .* nvidia-nccl-cu13"):
        dist.World(0, 1, 0).sum(FakeGpuArray([1.0]))


# ---- GPU: NCCL with a world of one --------------------------------------------------------
@pytest.mark.gpu
def test_nccl_world_of_one_trains_as_the_plain_gpu_run(monkeypatch, capsys):
    try:
        dist._import_nccl(dist._dev.check_gpu("cuda:0"))
    except dist.DistributedError:
        pytest.skip("needs real GPU hardware: NCCL")
    from dist_job import small_mnist  # tests/ is on sys.path, as for helpers.py

    monkeypatch.setattr(train.data, "load_mnist", lambda *a, **k: small_mnist())
    world = dist.World(0, 1, 0)  # no launcher, no MPI: NCCL alone
    monkeypatch.setattr(dist, "_world", world)
    flags = ["--quiet", "--device", "gpu", "--epochs", "2", "--hidden", "32", "--batch-size", "63"]
    lines = []
    for extra in ([], ["--distributed"]):  # the step is captured as a CUDA graph in both
        assert train.main([*flags, *extra]) == 0
        lines.append([numbers(line) for line in capsys.readouterr().out.splitlines()])
    assert len(lines[1]) == 2 and lines[1] == pytest.approx(lines[0], abs=1e-4)
    assert "cuda:0" in world._nccl  # the collectives went through NCCL
