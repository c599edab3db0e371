"""Learning-rate schedules with torch.optim.lr_scheduler's names, arguments and values.

Each scheduler sets ``optimizer.lr`` (a single learning rate for all parameters); call
:meth:`step` once per epoch after ``optimizer.step()``, as in torch. The optimizer keeps lr in
device memory where a captured CUDA graph reads it, so a schedule needs no re-capture.
"""

from __future__ import annotations

import math


class LRScheduler:
    """Base: ``lr_at(epoch)`` gives the learning rate after `epoch` calls of :meth:`step`."""

    def __init__(self, optimizer):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: expected an optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer, self.base_lr, self.last_epoch = optimizer, optimizer.lr, 0

    def lr_at(self, epoch: int) -> float:
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def get_last_lr(self) -> list[float]:
        return [self.optimizer.lr]

    def state_dict(self) -> dict:
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict):
        self.base_lr, self.last_epoch = float(state["base_lr"]), int(state["last_epoch"])
        self.optimizer.lr = self.lr_at(self.last_epoch)


class StepLR(LRScheduler):
    """lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if int(step_size) != step_size or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        super().__init__(optimizer)
        self.step_size, self.gamma = int(step_size), gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """lr * gamma ** (how many milestones are <= epoch)."""

    def __init__(self, optimizer, milestones, gamma: float = 0.1):
        super().__init__(optimizer)
        self.milestones, self.gamma = sorted(int(m) for m in milestones), gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** sum(m <= epoch for m in self.milestones)


class ExponentialLR(LRScheduler):
    """lr * gamma ** epoch."""

    def __init__(self, optimizer, gamma: float):
        super().__init__(optimizer)
        self.gamma = gamma

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """eta_min + (lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (torch's closed form)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):  # noqa: N803 - torch's name
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be > 0, got {T_max!r}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, epoch):
        return self.eta_min + (self.base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LambdaLR(LRScheduler):
    """lr * lr_lambda(epoch)."""

    def __init__(self, optimizer, lr_lambda):
        if not callable(lr_lambda):
            raise TypeError("LambdaLR: lr_lambda must be callable")
        super().__init__(optimizer)
        self.lr_lambda = lr_lambda
        optimizer.lr = self.lr_at(0)  # torch applies lr_lambda(0) at construction

    def lr_at(self, epoch):
        return self.base_lr * self.lr_lambda(epoch)
