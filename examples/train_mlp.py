"""Train the reference MLP on MNIST through the library API, then save a checkpoint.

    python examples/train_mlp.py [--device gpu] [--epochs 3] [--limit N] [--out mlp.npz]
"""

import argparse

import numpy as np

import tinygrad_mlp.functional as F
from tinygrad_mlp import Tensor, nn, no_grad, optim
from tinygrad_mlp.data import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cpu")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--limit", type=int, default=None, help="use only the first N train images")
parser.add_argument("--out", default="mlp.npz")
args = parser.parse_args()

mnist = load_mnist()
x_train = Tensor(mnist.x_train[:args.limit] / 255.0, device=args.device)  # float32, on device
y_train = mnist.y_train[:args.limit].astype(np.int64)
x_test = Tensor(mnist.x_test / 255.0, device=args.device)

Tensor.manual_seed(0)
model = nn.MLP([784, 512, 512, 10], init_scale=0.01).to(args.device)
opt = optim.SGD(model.parameters(), lr=0.5)

for epoch in range(1, args.epochs + 1):
    for i in range(0, len(y_train), 128):
        loss = F.cross_entropy(model(x_train[i:i + 128]), y_train[i:i + 128])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with no_grad():
        predictions = model(x_test).numpy().argmax(axis=1)
    print(f"epoch {epoch}: last loss {loss.item():.4f}, "
          f"test accuracy {(predictions == mnist.y_test).mean():.4f}")

np.savez(args.out, **model.state_dict())
print(f"saved {args.out}")
