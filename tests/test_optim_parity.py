"""50 training steps of a small MLP, ours beside torch's, for every optimizer configuration.

The same weights, batches and loss go to both; after every step the losses must agree, and after
50 steps every parameter. Add a configuration by adding one line to OPTIMIZERS.
"""

import numpy as np
import pytest

from tinygrad_mlp import Tensor, nn, optim
from tinygrad_mlp import functional as F

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny layers: threads only contend with the test runner

# name: (our optimizer, torch's), each built from its framework's parameter list
OPTIMIZERS = {
    "adam": (lambda ps: optim.Adam(ps, lr=1e-2),
             lambda ps: torch.optim.Adam(ps, lr=1e-2)),
    "adam_weight_decay": (lambda ps: optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6,
                                                weight_decay=0.05),
                          lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), eps=1e-6,
                                                      weight_decay=0.05)),
    "adamw": (lambda ps: optim.AdamW(ps, lr=1e-2),
              lambda ps: torch.optim.AdamW(ps, lr=1e-2)),
    "adamw_capturable": (lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.1, capturable=True),
                         lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1)),
    "adam_decoupled": (lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=0.1,
                                             decoupled_weight_decay=True),
                       lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.1,
                                                   decoupled_weight_decay=True)),
    # step counts on the device (torch allows capturable only on accelerators: same math)
    "adam_capturable": (lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=0.05, capturable=True),
                        lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=0.05)),
}
SIZES, STEPS, BATCH = [12, 16, 16, 5], 50, 32


def _torch_mlp(model):
    """torch's copy of `model`: the same weights (torch stores them as (out, in))."""
    layers = []
    for i, layer in enumerate(model.layers):
        linear = torch.nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.weight.numpy().T.copy()))
            linear.bias.copy_(torch.from_numpy(layer.bias.numpy()))
        layers += [linear] + ([torch.nn.ReLU()] if i < len(model.layers) - 1 else [])
    return torch.nn.Sequential(*layers)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_fifty_steps_match_torch(name, fused):
    make_ours, make_theirs = OPTIMIZERS[name]
    Tensor.manual_seed(0)
    model = nn.MLP(SIZES, fused=fused)
    theirs = _torch_mlp(model)
    opt, topt = make_ours(model.parameters()), make_theirs(list(theirs.parameters()))
    rng = np.random.default_rng(0)
    for step in range(STEPS):
        x = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)
        y = rng.integers(0, SIZES[-1], BATCH)
        loss = F.cross_entropy(model(Tensor(x)), y, fused=fused)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-4,
                                   err_msg=f"loss at step {step}")
    tparams = [p for layer in theirs if isinstance(layer, torch.nn.Linear)
               for p in (layer.weight.T, layer.bias)]
    for (pname, p), tp in zip(model.named_parameters(), tparams):
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=f"{pname} after {STEPS} steps")
