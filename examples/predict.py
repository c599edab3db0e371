"""Load a checkpoint written by train_mlp.py (or the trainer's --save) and predict digits.

    python examples/predict.py mlp.npz [--count 10]
"""

import argparse

import numpy as np

from tinygrad_mlp import Tensor, nn, no_grad
from tinygrad_mlp.data import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("--count", type=int, default=10)
args = parser.parse_args()

with np.load(args.checkpoint, allow_pickle=False) as saved:
    # The trainer's checkpoints prefix parameters with "model."; train_mlp.py's do not.
    state = {k.removeprefix("model."): saved[k] for k in saved.files
             if k.startswith("model.") or k.startswith("layers.")}
sizes = [state["layers.0.weight"].shape[0]] + [state[f"layers.{i}.weight"].shape[1]
                                              for i in range(len(state) // 2)]
model = nn.MLP(sizes)
model.load_state_dict(state)

mnist = load_mnist()
with no_grad():
    probs = model(Tensor(mnist.x_test[:args.count] / 255.0)).softmax().numpy()
for label, p in zip(mnist.y_test, probs):
    print(f"label {label}  predicted {p.argmax()}  (p={p.max():.3f})")
