"""TinyJit: transparent on the CPU; on the GPU, replays equal eager steps (and the footguns)."""

import numpy as np
import pytest

from tinygrad_mlp import Tensor, nn, optim
from tinygrad_mlp import functional as F
from tinygrad_mlp.jit import TinyJit
from tinygrad_mlp.train import make_step


def _setup(device, seed=0, make_opt=lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9)):
    Tensor.manual_seed(seed)
    model = nn.MLP([20, 32, 32, 10], init_scale=0.1).to(device)
    return model, make_opt(model.parameters())


def _batches(device, n=6, batch=16):
    from tinygrad_mlp import device as dev

    rng = np.random.default_rng(0)
    return [(dev.to_device(rng.standard_normal((batch, 20)).astype(np.float32), device),
             dev.to_device(rng.integers(0, 10, batch), device)) for _ in range(n)]


def test_cpu_wrapper_is_transparent():
    calls = []

    def fn(x, scale):
        calls.append(scale)
        return x * scale

    jitted = TinyJit(fn)
    x = np.arange(3.0)
    for scale in (1.0, 2.0, 3.0):  # on the CPU nothing is frozen: every call runs fn
        np.testing.assert_array_equal(jitted(x, scale), x * scale)
    assert calls == [1.0, 2.0, 3.0] and jitted.captures == {}


def test_cpu_jitted_training_equals_plain_training():
    results = []
    for jit in (False, True):
        model, opt = _setup("cpu")
        step = make_step(model, opt, jit=jit)
        losses = [float(step(x, y)[0]) for x, y in _batches("cpu")]
        results.append((losses, [p.numpy().copy() for p in model.parameters()]))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.gpu
def test_replayed_steps_equal_eager_steps():
    eager_model, eager_opt = _setup("gpu")
    jit_model, jit_opt = _setup("gpu")
    eager, jitted = make_step(eager_model, eager_opt, jit=False), make_step(jit_model, jit_opt)
    for x, y in _batches("gpu", n=8):
        want_loss, want_correct = eager(x, y)
        got_loss, got_correct = jitted(x, y)
        np.testing.assert_allclose(float(got_loss), float(want_loss), rtol=1e-5)
        assert int(got_correct) == int(want_correct)
    assert len(jitted.captures) == 1 and next(iter(jitted.captures.values())).graph is not None
    for a, b in zip(eager_model.parameters(), jit_model.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_changing_lr_needs_no_recapture():
    (m1, o1), (m2, o2) = _setup("gpu"), _setup("gpu")
    eager, jitted = make_step(m1, o1, jit=False), make_step(m2, o2)
    batches = _batches("gpu", n=6)
    for i, (x, y) in enumerate(batches):
        if i == 4:
            o1.lr = o2.lr = 0.01
        eager(x, y)
        jitted(x, y)
    assert len(jitted.captures) == 1
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
def test_outputs_are_static_buffers_overwritten_by_the_next_replay():
    import cupy

    jitted = TinyJit(lambda x: (Tensor(x) * 2).data)
    a, b = cupy.ones(4, cupy.float32), cupy.full(4, 5.0, cupy.float32)
    jitted(a)
    jitted(a)  # captured
    first = jitted(a)
    kept = first.copy()
    second = jitted(b)
    assert second is first  # the same static buffer ...
    np.testing.assert_array_equal(cupy.asnumpy(first), [10.0] * 4)  # ... now holds b's result
    np.testing.assert_array_equal(cupy.asnumpy(kept), [2.0] * 4)  # copy before the next call


@pytest.mark.gpu
def test_python_values_are_frozen_and_new_shapes_get_new_captures():
    import cupy

    jitted = TinyJit(lambda x, s: (Tensor(x) * s).data, max_captures=2)
    x = cupy.ones(3, cupy.float32)
    jitted(x, 2.0)
    jitted(x, 2.0)
    # A different Python value is a different signature: warm-up, not a silently stale replay.
    np.testing.assert_array_equal(cupy.asnumpy(jitted(x, 3.0)), [3.0] * 3)
    with pytest.raises(RuntimeError, match="already 2 captures"):
        jitted(cupy.ones(5, cupy.float32), 2.0)


@pytest.mark.gpu
def test_loss_matches_unjitted_cross_entropy_on_last_small_batch():
    model, opt = _setup("gpu")
    step = make_step(model, opt)
    x, y = _batches("gpu", n=1, batch=7)[0]
    for _ in range(3):
        loss, _ = step(x, y)
    ref = F.cross_entropy(model(Tensor(x)), y)
    assert np.isfinite(float(loss)) and np.isfinite(ref.item())


@pytest.mark.gpu
def test_host_sync_in_step_fails_capture_and_falls_back_to_eager():
    import cupy

    def step(x):
        y = (Tensor(x) * 2).data
        if float(y.sum()) > 0:  # a host sync: CUDA graph capture refuses it
            y += 1
        return y

    jitted = TinyJit(step)
    x = cupy.ones(3, cupy.float32)
    jitted(x)
    with pytest.warns(RuntimeWarning, match="capture failed, running eagerly"):
        out = jitted(x)
    np.testing.assert_array_equal(cupy.asnumpy(out), [3.0] * 3)
    np.testing.assert_array_equal(cupy.asnumpy(jitted(x)), [3.0] * 3)  # eager from now on
    assert next(iter(jitted.captures.values())).graph is None


# ---- TinyJit's control flow against a stand-in for CuPy (runs everywhere, CI included) ------
# The fake keeps CUDA's capture semantics: work launched while a stream captures is recorded,
# not run, and the graph runs the recorded work on every launch.
class _FakeCuda:
    def __init__(self):
        self.capturing, self.current = None, None

        class FakeArray:
            device = type("Device", (), {"id": 0})

            def __init__(self, a):
                self.a = np.array(a, dtype=np.float32)
                self.shape, self.dtype = self.a.shape, self.a.dtype

            def __setitem__(self, key, value):  # a device-to-device copy: runs in stream order
                fake.launch(lambda: self.a.__setitem__(key, value.a))

        fake = self
        self.ndarray = FakeArray
        self.cuda = self
        self.runtime = type("Runtime", (), {"getDeviceCount": staticmethod(lambda: 1)})

    # cupy-like API used by tinygrad_mlp.device and tinygrad_mlp.jit
    def array(self, a):
        copy = self.ndarray(np.zeros(a.shape))
        copy[...] = a
        return copy

    def launch(self, work):
        if self.capturing is not None:
            self.capturing.recorded.append(work)
        else:
            work()

    def sync(self):
        if self.capturing is not None:
            raise RuntimeError("operation not permitted when stream is capturing")

    def MemoryPool(self):  # noqa: N802
        return type("Pool", (), {"malloc": None, "total_bytes": lambda self: 0})()

    def using_allocator(self, allocator):
        import contextlib
        return contextlib.nullcontext()

    def get_current_stream(self):
        return self.current or self.Stream()

    def Stream(self, non_blocking=False):  # noqa: N802
        fake = self

        class FakeStream:
            recorded = None

            def __enter__(self):
                self.previous, fake.current = fake.current, self
                return self

            def __exit__(self, *exc):
                fake.current = self.previous

            def record(self):
                return None

            def wait_event(self, event):
                pass

            def begin_capture(self):
                self.recorded, fake.capturing = [], self

            def end_capture(self):
                fake.capturing, work = None, list(self.recorded)
                return type("Graph", (), {"launch": lambda g, stream=None: [w() for w in work]})()

        return FakeStream()


@pytest.fixture
def fake_cupy(monkeypatch):
    from tinygrad_mlp import device as dev

    fake = _FakeCuda()
    monkeypatch.setattr(dev, "_cupy", fake)
    monkeypatch.setattr(dev, "_cupy_error", None)
    return fake


def _double(fake):
    calls = []

    def step(x):
        calls.append(1)
        out = fake.ndarray(np.zeros(x.shape))
        fake.launch(lambda: np.multiply(x.a, 2, out=out.a))
        return out
    return step, calls


def test_jit_warms_up_captures_then_replays_with_new_inputs(fake_cupy):
    step, calls = _double(fake_cupy)
    jitted = TinyJit(step)
    x = fake_cupy.ndarray([1.0, 2.0])
    assert list(jitted(x).a) == [2.0, 4.0]  # call 1: eager
    assert list(jitted(x).a) == [2.0, 4.0]  # call 2: captured, then replayed once
    out = jitted(fake_cupy.ndarray([5.0, 6.0]))  # later calls: replay, fn not called
    assert list(out.a) == [10.0, 12.0] and len(calls) == 2
    assert jitted(fake_cupy.ndarray([0.0, 1.0])) is out  # one static output buffer


def test_jit_gives_each_shape_its_own_capture_up_to_the_limit(fake_cupy):
    step, _ = _double(fake_cupy)
    jitted = TinyJit(step, max_captures=2)
    for n in (2, 3):
        for _ in range(3):
            out = jitted(fake_cupy.ndarray(np.ones(n)))
        assert list(out.a) == [2.0] * n
    with pytest.raises(RuntimeError, match="already 2 captures"):
        jitted(fake_cupy.ndarray(np.ones(4)))


def test_jit_falls_back_to_eager_when_capture_fails(fake_cupy):
    calls = []

    def step(x):
        calls.append(1)
        fake_cupy.sync()  # a host sync: refused while capturing
        out = fake_cupy.ndarray(np.zeros(x.shape))
        fake_cupy.launch(lambda: np.add(x.a, 1, out=out.a))
        return out

    jitted = TinyJit(step)
    x = fake_cupy.ndarray([1.0])
    jitted(x)
    with pytest.warns(RuntimeWarning, match="capture failed, running eagerly.*capturing"):
        assert list(jitted(x).a) == [2.0]  # the failed call is redone eagerly
    assert list(jitted(fake_cupy.ndarray([5.0])).a) == [6.0] and len(calls) == 4


def test_adam_is_captured_only_when_capturable():
    # Host step counts would freeze in a replayed graph: make_step wraps only capturable Adam.
    model, opt = _setup("cpu", make_opt=lambda ps: optim.Adam(ps))
    assert not isinstance(make_step(model, opt), TinyJit)
    model, opt = _setup("cpu", make_opt=lambda ps: optim.Adam(ps, capturable=True))
    assert isinstance(make_step(model, opt), TinyJit)


@pytest.mark.gpu
def test_capturable_adam_replays_equal_eager_adam_and_follow_lr_changes():
    # The step counts and bias corrections are device work inside the graph: every replay
    # advances them, as eager Adam (host counts) does; lr lives in device memory.
    (m1, o1) = _setup("gpu", make_opt=lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01))
    (m2, o2) = _setup("gpu", make_opt=lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01,
                                                             capturable=True))
    eager, jitted = make_step(m1, o1, jit=False), make_step(m2, o2)
    for i, (x, y) in enumerate(_batches("gpu", n=8)):
        if i == 5:
            o1.lr = o2.lr = 0.003
        want, _ = eager(x, y)
        got, _ = jitted(x, y)
        np.testing.assert_allclose(float(got), float(want), rtol=1e-4)
    assert len(jitted.captures) == 1 and next(iter(jitted.captures.values())).graph is not None
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(o2.state_dict()["param_step.0"], [8] * 6)


def test_adam_step_counts_survive_state_dict_between_capturable_and_not(device):
    # A checkpoint written by either kind of Adam restores into the other, counts included.
    import tinygrad_mlp.device as dev

    model, opt = _setup(device, make_opt=lambda ps: optim.Adam(ps, capturable=True))
    step = make_step(model, opt, jit=False)
    x, y = _batches(device, n=1)[0]
    for _ in range(3):
        step(x, y)
    state = opt.state_dict()
    np.testing.assert_array_equal(state["param_step.0"], [3] * 6)
    host = optim.Adam(model.parameters()).load_state_dict(state)
    np.testing.assert_array_equal(host.param_steps, [3] * 6)
    again = optim.Adam(model.parameters(), capturable=True).load_state_dict(host.state_dict())
    assert [float(dev.to_device(s, "cpu")) for s in again.device_steps] == [3.0] * 6
    with pytest.raises(ValueError, match="param_step.0"):
        again.load_state_dict({**state, "param_step.0": np.zeros(2)})
