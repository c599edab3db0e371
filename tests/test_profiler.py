"""The per-op profiler: one MLP step's table, clocks, exports, and no hooks left behind."""

import json
import time
import types

import numpy as np
import pytest

import tinygrad_mlp
import tinygrad_mlp.functional as F
from tinygrad_mlp import Tensor, nn, optim, profiler
from tinygrad_mlp import device as _dev
from tinygrad_mlp import fused as _fused
from tinygrad_mlp import tensor as _tensor

SIZES = [784, 512, 512, 10]
BATCH = 128


def make_step(device, sizes=SIZES, batch=BATCH):
    Tensor.manual_seed(0)
    model = nn.MLP(sizes, init_scale=0.01).to(device)
    opt = optim.SGD(model.parameters(), lr=0.5)
    rng = np.random.default_rng(0)
    x = Tensor(rng.random((batch, sizes[0])), device=device)
    y = _dev.to_device(rng.integers(0, sizes[-1], batch), x.device)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        opt.backward(loss)
        opt.step()
        return loss
    return step


def originals():
    return [getattr(module, name) for module, name in profiler.KERNELS]


def test_profile_is_the_package_function_and_profiler_the_module():
    assert tinygrad_mlp.profile is profiler.profile and callable(tinygrad_mlp.profile)
    assert isinstance(tinygrad_mlp.profile(), profiler.Profile)


def test_one_mlp_step_table(device):
    step = make_step(device)
    step()  # warm-up
    start = time.perf_counter()
    with tinygrad_mlp.profile() as prof:
        step()
    wall = time.perf_counter() - start

    ops = {(r["name"], r["phase"]): r for r in prof.rows("op")}
    assert {k: r["calls"] for k, r in ops.items()} == {
        ("LinearReLU", "forward"): 2, ("LinearReLU", "backward"): 2,
        ("Linear", "forward"): 1, ("Linear", "backward"): 1,
        ("SoftmaxCrossEntropy", "forward"): 1, ("SoftmaxCrossEntropy", "backward"): 1}
    kernels = {(r["name"], r["phase"]): r["calls"] for r in prof.rows("kernel")}
    assert kernels == {("matmul", "forward"): 3, ("matmul", "backward"): 5,
                       ("bias_relu", "forward"): 2, ("relu_backward", "backward"): 2,
                       ("bias_grad", "backward"): 3, ("softmax_xent", "forward"): 1,
                       ("sgd_step", "other"): 6}
    for kind in ("op", "kernel"):
        rows = prof.rows(kind)
        assert all(r["total_seconds"] > 0 for r in rows)
        assert [r["total_seconds"] for r in rows] == sorted(
            (r["total_seconds"] for r in rows), reverse=True)
        assert sum(r["total_seconds"] for r in rows) <= prof.wall_seconds <= wall
    # GFLOP/s where GEMMs ran: the last layer's forward is one 128x512 @ 512x10 GEMM.
    last = ops[("Linear", "forward")]
    flops = last["gflops_per_second"] * 1e9 * last["total_seconds"]
    assert flops == pytest.approx(2 * BATCH * 512 * 10, rel=1e-9)
    assert ops[("SoftmaxCrossEntropy", "forward")]["gflops_per_second"] is None
    assert 0 < prof.gemm_seconds() <= prof.wall_seconds

    table = str(prof)
    assert table == prof.table() and "GFLOP/s" in table and "% wall" in table
    for name in ("LinearReLU", "SoftmaxCrossEntropy", "matmul", "sgd_step"):
        assert name in table
    assert table.index("LinearReLU") < table.index("kernels")  # ops first


def test_json_export(tmp_path):
    step = make_step("cpu", [6, 5, 3], 4)
    with tinygrad_mlp.profile() as prof:
        step()
    path = tmp_path / "prof.json"
    prof.to_json(path)
    record = json.loads(path.read_text())
    assert record == json.loads(json.dumps(prof.as_dict()))
    assert record["clocks"] == ["HostClock"]
    assert {r["name"] for r in record["ops"]} == {"LinearReLU", "Linear", "SoftmaxCrossEntropy"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prof.json"]  # no temp file left


def test_primitive_ops_and_matmul_flops():
    a = Tensor(np.ones((4, 3)), requires_grad=True)
    b = Tensor(np.ones((3, 5)), requires_grad=True)
    with tinygrad_mlp.profile() as prof:
        ((a @ b).relu() * 2.0).sum().backward()
    ops = {(r["name"], r["phase"]): r for r in prof.rows("op")}
    assert set(ops) == {(n, p) for n in ("MatMul", "ReLU", "Mul", "Sum")
                        for p in ("forward", "backward")}
    for phase, gemms in (("forward", 1), ("backward", 2)):
        row = ops[("MatMul", phase)]
        flops = row["gflops_per_second"] * 1e9 * row["total_seconds"]
        assert flops == pytest.approx(gemms * 2 * 4 * 3 * 5)


def test_no_hooks_left_behind_also_on_error():
    before = originals()
    assert _tensor._profiler is None
    with tinygrad_mlp.profile() as prof:
        assert _tensor._profiler is prof and originals() != before
    assert _tensor._profiler is None and originals() == before
    with pytest.raises(ZeroDivisionError), tinygrad_mlp.profile():
        raise ZeroDivisionError("inside the block")
    assert _tensor._profiler is None and originals() == before
    assert _fused.bias_relu is before[2] and _dev.matmul is before[0]
    # Work after the block is not recorded.
    step = make_step("cpu", [6, 5, 3], 4)
    with tinygrad_mlp.profile() as prof:
        step()
    rows = [dict(r) for r in prof.rows("op")]
    step()
    assert prof.rows("op") == rows


def test_profiles_do_not_nest():
    with tinygrad_mlp.profile() as outer:
        with pytest.raises(RuntimeError, match="already active"), tinygrad_mlp.profile():
            pass
        assert _tensor._profiler is outer
    assert _tensor._profiler is None and originals() == [
        getattr(m, n) for m, n in profiler.KERNELS]


def test_results_only_after_the_block():
    with tinygrad_mlp.profile() as prof:
        with pytest.raises(RuntimeError, match="once its `with` block has ended"):
            prof.rows()
    with pytest.raises(ValueError, match="'op' or 'kernel'"):
        prof.rows("ops")


class FakeCuda:
    """A stand-in for cupy.cuda's events: a fake GPU clock that advances 1 ms per record."""

    def __init__(self):
        self.now, self.syncs, self.reads, self.log = 0.0, 0, 0, []
        fake = self

        class Event:
            def __init__(self):
                self.time = None

            def record(self):
                fake.now += 1.0
                self.time = fake.now
                fake.log.append("record")

            def synchronize(self):
                fake.syncs += 1
                fake.log.append("sync")

        self.Event = Event

    def get_elapsed_time(self, start, end):
        assert start.time is not None and end.time is not None
        self.reads += 1
        self.log.append("read")
        return end.time - start.time


def test_event_clock_reads_events_once_at_exit_and_never_syncs_per_op():
    cuda = FakeCuda()
    step = make_step("cpu", [6, 5, 3], 4)
    prof = tinygrad_mlp.profile()
    # Route CPU work through the event clock: the recording logic runs as it would on a GPU.
    prof._clocks["cpu"] = profiler.EventClock(types.SimpleNamespace(cuda=cuda))
    with prof:
        step()
        assert cuda.syncs == 0 and cuda.reads == 0  # nothing read while recording
    records = cuda.log.index("sync")
    assert set(cuda.log[:records]) == {"record"} and cuda.reads > 0
    ops = {(r["name"], r["phase"]): r for r in prof.rows("op")}
    # Each record advances the clock 1 ms: an op spans its nested kernels' 2 records each + 1.
    assert ops[("SoftmaxCrossEntropy", "forward")]["total_seconds"] == pytest.approx(3e-3)
    assert ops[("SoftmaxCrossEntropy", "backward")]["total_seconds"] == pytest.approx(1e-3)
    # The first layer: forward matmul + bias_relu; backward relu_backward + the weight's matmul
    # + bias_grad (its input needs no gradient); the last layer's backward also makes dX.
    assert ops[("LinearReLU", "forward")]["total_seconds"] == pytest.approx(5e-3)
    assert ops[("LinearReLU", "backward")]["total_seconds"] == pytest.approx(7e-3)
    assert ops[("Linear", "backward")]["total_seconds"] == pytest.approx(7e-3)
    kernels = {(r["name"], r["phase"]): r for r in prof.rows("kernel")}
    assert kernels[("sgd_step", "other")]["mean_seconds"] == pytest.approx(1e-3)
    assert prof.as_dict()["clocks"] == ["EventClock"]


def test_nothing_is_timed_while_a_cuda_graph_is_captured(monkeypatch):
    step = make_step("cpu", [6, 5, 3], 4)
    monkeypatch.setattr(_dev, "capturing", True)
    with tinygrad_mlp.profile() as prof:
        loss = step()
    assert prof.rows("op") == [] and prof.rows("kernel") == [] and np.isfinite(loss.item())


@pytest.mark.parametrize("a, b, flops", [((4, 3), (3, 5), 2 * 4 * 3 * 5), ((3,), (3, 5), 2 * 3 * 5),
                                         ((4, 3), (3,), 2 * 4 * 3), ((3,), (3,), 2 * 3),
                                         ((2, 4, 3), (3, 5), 2 * 2 * 4 * 3 * 5)])
def test_gemm_flops(a, b, flops):
    assert profiler._gemm_flops(np.ones(a), np.ones(b)) == flops


def test_gemm_with_the_sgd_update_counts_as_gemm():
    # SGD.backward_step folds a large weight's update into its gradient GEMM (blas.gemm_into):
    # that GEMM is timed as one, with its flops, and counted in gemm_seconds.
    from tinygrad_mlp import blas

    if not blas.available:
        pytest.skip("NumPy's OpenBLAS was not found: no update-in-GEMM path")
    model = nn.MLP([784, 64, 10], init_scale=0.01)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = Tensor(np.random.default_rng(0).random((BATCH, 784)))
    y = np.arange(BATCH) % 10
    with tinygrad_mlp.profile() as prof:
        opt.backward_step(F.cross_entropy(model(x), y))
    rows = {(r["name"], r["phase"]): r for r in prof.rows("kernel")}
    fused_gemm = rows[("gemm_into", "backward")]
    assert fused_gemm["calls"] == 1  # layer 1 only: 64 x 10 is below blas.MIN_SIZE
    flops = fused_gemm["gflops_per_second"] * 1e9 * fused_gemm["total_seconds"]
    assert flops == pytest.approx(2 * BATCH * 784 * 64)
    matmuls = sum(r["total_seconds"] for (name, _), r in rows.items() if name == "matmul")
    assert prof.gemm_seconds() == pytest.approx(matmuls + fused_gemm["total_seconds"])
    assert "gemm_into" in str(prof)
