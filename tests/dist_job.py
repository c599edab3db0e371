"""A job for tests/test_distributed.py, started with or without mpiexec.

    python dist_job.py train [trainer flags]    the trainer on a small learnable stand-in for MNIST
    python dist_job.py steps OUT.npy N B [--distributed] [--mnist]
                                                N single-batch epochs of B rows through
                                                train.train_epoch (784-32-10 on the stand-in,
                                                or with --mnist the reference 784-512-512-10 on
                                                MNIST); rank 0 saves the N losses

Test-only failure injection (read here, never by the package): on the rank named by
DIST_JOB_FAIL_RANK, DIST_JOB_FAIL=data makes loading the data fail, DIST_JOB_FAIL=step raises
from the 5th training step (while the other ranks wait in the all-reduce).
"""

import os
import sys

import numpy as np
from helpers import learnable_mnist

from tinygrad_mlp import Tensor, data, nn, optim, train
from tinygrad_mlp import distributed as dist


def small_mnist():
    """The same stand-in on every rank."""
    return learnable_mnist(3200, 300, noise=100, signal=80)


def failing_here():
    rank = os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0"
    return os.environ.get("DIST_JOB_FAIL_RANK") == rank and os.environ.get("DIST_JOB_FAIL")


def load(*args, **kwargs):
    if failing_here() == "data":
        raise data.DataError("injected: rank-local data file is corrupt")
    return small_mnist()


def failing_step(make_step):
    def make(*args, **kwargs):
        step, calls = make_step(*args, **kwargs), [0]

        def wrapped(xb, yb):
            calls[0] += 1
            if calls[0] == 5:
                raise RuntimeError("injected: step 5 failed on this rank")
            return step(xb, yb)

        return wrapped

    return make


def steps(out, n_steps, batch, distributed, mnist):
    ds = data.load_mnist(log=lambda _: None) if mnist else small_mnist()
    world = dist.init() if distributed else None
    x, y, _, _ = train.to_device_dataset(ds, "cpu")
    Tensor.manual_seed(0)
    model = nn.MLP([784, 512, 512, 10] if mnist else [784, 32, 10], init_scale=0.01)
    opt = optim.SGD(model.parameters(), lr=0.5)
    if world is not None:
        world.broadcast_parameters(model.parameters())
    losses = [train.train_epoch(model, opt, x[i * batch:(i + 1) * batch],
                                y[i * batch:(i + 1) * batch], batch, world=world)[0]
              for i in range(n_steps)]
    if world is None or world.rank == 0:
        np.save(out, np.array(losses))


if __name__ == "__main__":
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode == "steps":
        steps(argv[0], int(argv[1]), int(argv[2]), "--distributed" in argv, "--mnist" in argv)
    else:
        data.load_mnist = load
        if failing_here() == "step":
            train.make_step = failing_step(train.make_step)
        sys.exit(train.main(argv))
