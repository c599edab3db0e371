"""Learning-rate schedules against torch.optim.lr_scheduler, epoch by epoch."""

import numpy as np
import pytest

from tinygrad_mlp import Tensor, optim
from tinygrad_mlp.optim import lr_scheduler  # where torch users look for it

torch = pytest.importorskip("torch")

SCHEDULES = {
    "StepLR": (lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5),
               lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    "MultiStepLR": (lambda o: lr_scheduler.MultiStepLR(o, [2, 5, 5, 9], gamma=0.3),
                    lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2, 5, 5, 9], gamma=0.3)),
    "ExponentialLR": (lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9),
                      lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
    "CosineAnnealingLR": (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01),
                          lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7,
                                                                               eta_min=0.01)),
    "LambdaLR": (lambda o: lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e)),
                 lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / (1 + e))),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_torch_for_twelve_epochs(name):
    ours_make, torch_make = SCHEDULES[name]
    opt = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=0.2)
    topt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.2)
    sched, tsched = ours_make(opt), torch_make(topt)
    for epoch in range(12):
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-9), epoch
        opt.step()
        topt.step()
        sched.step()
        tsched.step()


def test_state_dict_resumes_the_schedule():
    opt = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=2)
    for _ in range(5):
        sched.step()
    state = sched.state_dict()
    opt2 = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=1.0)
    again = lr_scheduler.StepLR(opt2, step_size=2)
    again.load_state_dict(state)
    assert opt2.lr == pytest.approx(opt.lr) == pytest.approx(0.01)
    again.step()
    assert opt2.lr == pytest.approx(0.001)


def test_bad_arguments_are_named():
    opt = optim.SGD([Tensor(np.zeros(2), requires_grad=True)], lr=1.0)
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        lr_scheduler.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max must be > 0"):
        lr_scheduler.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(TypeError, match="expected an optimizer, got list"):
        lr_scheduler.ExponentialLR([], gamma=0.5)
