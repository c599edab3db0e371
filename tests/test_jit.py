"""TinyJit: transparent on the CPU; on the GPU, replays equal eager steps (and the footguns)."""

import numpy as np
import pytest

from tinygrad_mlp import Tensor, nn, optim
from tinygrad_mlp import functional as F
from tinygrad_mlp.jit import TinyJit
from tinygrad_mlp.train import make_step


def _setup(device, seed=0):
    Tensor.manual_seed(seed)
    model = nn.MLP([20, 32, 32, 10], init_scale=0.1).to(device)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt


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
