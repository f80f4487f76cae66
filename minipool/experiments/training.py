"""What every experiment shares: the data, a LeNet-5-style network with a pluggable
pooling layer, and a small seeded training loop.

Every random draw here comes from an explicit generator built from the run's
seed (weights, batch order, stochastic and fractional pooling), never from the
shared default generator, so a run gives the same numbers in this process, in a
worker process or in a Dask worker thread next to other runs.

>>> net = PooledLeNet("avg", seed=0)
>>> import minipool as mp
>>> net(mp.zeros(2, 1, 32, 32)).shape
(2, 10)
"""
import functools
import time
import zlib

import numpy as np

import minipool.nn as nn
import minipool.nn.functional as F
from minipool.tensor import Tensor, no_grad

__all__ = ["POOLINGS", "available_poolings", "PooledLeNet", "load_digits", "train_classifier",
           "predict", "error_rate", "variant_seed"]

SYNTHETIC_TRAIN_SEED = 1          # one fixed synthetic training set; seeds vary weights and order
SYNTHETIC_TEST_SEED = 2 ** 31 - 1  # the trainer's held-out synthetic set


def variant_seed(seed: int, name: str) -> list:
    """A SeedSequence entropy list for (seed, name): different per variant, stable across runs.

    >>> variant_seed(0, "max") == variant_seed(0, "max"), variant_seed(0, "max") == variant_seed(0, "avg")
    (True, False)
    """
    return [int(seed), zlib.crc32(name.encode())]


# --------------------------------------------------------------------------- pooling kinds
class MaxAvgPool2d(nn.Module):
    """Mixed pooling with a fixed mix: (max + average) / 2 over 2x2 windows."""

    def forward(self, x):
        return (F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)) * 0.5


class TrainableSubsampling(nn.Module):
    """LeNet-5's 1998 S-layer (:class:`minipool.models.lenet.Subsampling`: each map's 2x2 sum
    times a trainable coefficient plus a trainable bias), followed by the network's
    activation as in the paper, where a squashing function follows every S-layer."""

    def __init__(self, channels, rng):
        super().__init__()
        from minipool.models.lenet import Subsampling

        self.sub = Subsampling(channels)
        # the paper's init: uniform +-2.4/fan_in with 4 inputs per unit
        self.sub.weight._data = rng.uniform(-0.6, 0.6, channels).astype(np.float32)
        self.sub.bias._data = rng.uniform(-0.6, 0.6, channels).astype(np.float32)

    def forward(self, x):
        return F.relu(self.sub(x))


def _fractional(channels, out, rng):
    return nn.FractionalMaxPool2d(2, output_size=(out, out), generator=rng)


# name -> (description, builder(channels, output_size, rng) -> Module, needs: nn attribute or None)
POOLINGS = {
    "max": ("2x2 max pooling (the baseline)", lambda c, o, rng: nn.MaxPool2d(2), None),
    "avg": ("2x2 average pooling", lambda c, o, rng: nn.AvgPool2d(2), None),
    "l2": ("2x2 L2 pooling (lp_pool2d, norm 2)", lambda c, o, rng: nn.LPPool2d(2, 2), None),
    "stochastic": ("stochastic pooling (Zeiler & Fergus 2013): sampled in training, "
                   "probability-weighted in evaluation",
                   lambda c, o, rng: nn.StochasticPool2d(2, generator=rng), None),
    "maxavg": ("(max + average) / 2", lambda c, o, rng: MaxAvgPool2d(), None),
    "subsampling": ("LeNet-5 1998 trainable subsampling (2x2 sum x coefficient + bias, then ReLU)",
                    lambda c, o, rng: TrainableSubsampling(c, rng), None),
    "blurmax": ("max (stride 1) then 3x3 binomial blur, stride 2 (Zhang 2019)",
                lambda c, o, rng: nn.MaxBlurPool2d(2, 3, 2), "MaxBlurPool2d"),
    "fractional": ("fractional max pooling (Graham 2014), 2x2 pseudo-random windows",
                   _fractional, "FractionalMaxPool2d"),
}


def available_poolings() -> dict:
    """{name: None} for the pooling kinds minipool has, {name: reason} for the missing ones."""
    return {name: (None if need is None or hasattr(nn, need) else f"minipool.nn has no {need} yet")
            for name, (_, _, need) in POOLINGS.items()}


class PooledLeNet(nn.Module):
    """Modern LeNet-5 (ReLU, 5x5 convs 6 and 16 maps, 400-120-84-10) with ``pooling`` in
    both pooling places, for 1x32x32 inputs.  Weights start as LeNet5's
    (uniform +-1/sqrt(fan_in)), drawn from ``seed``."""

    def __init__(self, pooling="max", seed=0):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of: {', '.join(POOLINGS)}")
        missing = available_poolings()[pooling]
        if missing:
            raise ValueError(f"pooling {pooling!r} is not available: {missing}")
        rng = np.random.default_rng(variant_seed(seed, pooling))
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2, self.fc3):
            bound = 1 / np.sqrt(np.prod(layer.weight.shape[1:]))
            layer.weight._data = rng.uniform(-bound, bound, layer.weight.shape).astype(np.float32)
            layer.bias._data = rng.uniform(-bound, bound, layer.bias.shape).astype(np.float32)
        build = POOLINGS[pooling][1]
        # the pooling layers get generators of their own (stochastic, fractional draws)
        self.pool1 = build(6, 14, np.random.default_rng(variant_seed(seed, pooling + "/pool1")))
        self.pool2 = build(16, 5, np.random.default_rng(variant_seed(seed, pooling + "/pool2")))
        self.pooling = pooling

    def feature_maps(self, x):
        """The two pooled maps: pool1 (6x14x14) and pool2 (16x5x5)."""
        p1 = self.pool1(F.relu(self.conv1(x)))
        p2 = self.pool2(F.relu(self.conv2(p1)))
        return p1, p2

    def forward(self, x):
        p2 = self.feature_maps(x)[1]
        x = F.relu(self.fc1(F.flatten(p2, 1)))
        return self.fc3(F.relu(self.fc2(x)))


# --------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=4)
def _raw_digits(dataset, data_dir, train_count, test_count):
    """(train images, train labels, test images, test labels) as uint8 (n, 28, 28) / int64."""
    from minipool import data

    if dataset == "synthetic":
        train = data.SyntheticDigits(train_count, seed=SYNTHETIC_TRAIN_SEED)
        test = data.SyntheticDigits(test_count, seed=SYNTHETIC_TEST_SEED)
    elif dataset == "mnist":
        train = data.MNIST(data_dir, train=True)
        test = data.MNIST(data_dir, train=False)
    else:
        raise ValueError(f"dataset must be 'synthetic' or 'mnist', got {dataset!r}")
    out = []
    for ds, count in ((train, train_count), (test, test_count)):
        images, labels = np.asarray(ds.images), np.asarray(ds.labels, np.int64)
        if count is not None and count < len(labels):
            # a fixed class-mixed subset: the first `count` of one fixed permutation
            keep = np.sort(np.random.default_rng(0xDA7A).permutation(len(labels))[:count])
            images, labels = images[keep], labels[keep]
        out += [images, labels]
    for a in out:
        a.setflags(write=False)
    return tuple(out)


def load_digits(dataset, data_dir=None, train_count=None, test_count=None):
    """28x28 digits as float32 in [0, 1]: (x_train, y_train, x_test, y_test), images (n, 1, 28, 28).

    ``train_count``/``test_count`` keep a fixed subset (the same for every seed); synthetic
    digits need both.  Cached per process, so a grid loads its data once per worker.
    """
    xtr, ytr, xte, yte = _raw_digits(dataset, data_dir, train_count, test_count)
    return (xtr[:, None].astype(np.float32) / 255, ytr, xte[:, None].astype(np.float32) / 255, yte)


def lenet_input(images, mean=0.1307, std=0.3081):
    """Pad 28x28 digits to LeNet's 32x32 and normalise (MNIST's mean and std)."""
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)))
    return ((padded - mean) / std).astype(np.float32)


# --------------------------------------------------------------------------- training
def train_classifier(model, x, y, epochs, seed, batch_size=64, lr=0.05, momentum=0.9, progress=None):
    """SGD with momentum and a one-cycle schedule; the batch order of epoch e comes from
    (seed, e).  Returns the mean seconds per epoch."""
    from minipool import optim

    opt = optim.SGD(list(model.parameters()), lr=lr, momentum=momentum)
    steps = -(-len(y) // batch_size)
    sched = optim.OneCycleLR(opt, max_lr=lr, total_steps=max(1, epochs * steps))
    model.train()
    seconds = []
    for epoch in range(epochs):
        order = np.random.default_rng([int(seed), epoch, 0x0DE7]).permutation(len(y))
        tick = time.perf_counter()
        for b in range(steps):
            idx = order[b * batch_size:(b + 1) * batch_size]
            loss = F.cross_entropy(model(Tensor(x[idx])), Tensor(y[idx]))
            if not np.isfinite(loss.item()):
                raise FloatingPointError(f"the loss became {loss.item()} in epoch {epoch + 1}")
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        seconds.append(time.perf_counter() - tick)
        if progress is not None:
            progress(epoch + 1)
    return float(np.mean(seconds)) if seconds else 0.0


def predict(model, x, batch_size=500):
    """Predicted classes of prepared inputs, in evaluation mode."""
    model.eval()
    preds = []
    with no_grad():
        for start in range(0, len(x), batch_size):
            preds.append(model(Tensor(x[start:start + batch_size]))._data.argmax(axis=1))
    model.train()
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)


def error_rate(model, x, y):
    """Fraction of wrong predictions."""
    return float((predict(model, x) != y).mean()) if len(y) else 0.0
