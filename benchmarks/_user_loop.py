"""One library's plain training or inference loop, as a user writes it (run by bench_user_loop.py).

    python benchmarks/_user_loop.py LIBRARY NET MODE THREADS SECONDS

LIBRARY is ``minipool`` or ``torch``; NET ``lenet``, ``cifar`` or ``mlp``; MODE ``train``
or ``infer``.  The script does only what a user's script does: import the
library, set its thread count, build an ``nn.Sequential``, loop.  No BLAS or
malloc settings, no internals.  It prints images/s (the median of several
timed windows after a warm-up) as its last line.
"""
import sys
import time

import numpy as np

library, net, mode, threads, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
BATCH = 64

if library == "minipool":
    import minipool as lib
    to_tensor = lib.tensor
else:
    import torch as lib
    to_tensor = lib.from_numpy
lib.set_num_threads(threads)
nn = lib.nn

if net == "lenet":  # LeNet-5 (ReLU, max pooling) on 1x28x28
    shape = (1, 28, 28)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
elif net == "mlp":  # a multilayer perceptron on flattened 1x28x28: 784 -> 512 -> 512 -> 10
    shape = (784,)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
else:  # CIFAR-shaped: 3x32x32, conv3x3 32/64/128 + ReLU + 2x2 max pooling, linear 2048 -> 10
    shape = (3, 32, 32)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(2048, 10))

rng = np.random.default_rng(0)
batches = [(to_tensor(rng.standard_normal((BATCH,) + shape).astype(np.float32)),
            to_tensor(rng.integers(0, 10, BATCH))) for _ in range(8)]
optimizer = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()


def train_step(x, y):
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()


def infer_step(x, y):
    with lib.no_grad():
        model(x)


if mode == "infer":
    model.eval()
step = train_step if mode == "train" else infer_step


def window(duration):
    """Images/s over whole steps lasting at least ``duration`` seconds."""
    start, steps = time.perf_counter(), 0
    while True:
        x, y = batches[steps % len(batches)]
        step(x, y)
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= duration:
            return steps * BATCH / elapsed


window(min(1.0, seconds / 4))  # warm-up: first-touch of memory, caches, plans
rates = sorted(window(seconds / 5) for _ in range(5))
print(f"{rates[2]:.1f}")
