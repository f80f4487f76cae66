"""Batches from a dataset: shuffled and augmented reproducibly from one seed.

The order and the augmentation of every batch depend only on ``(seed, epoch,
batch index)``, never on how many batches were drawn before, so a run resumed
in the middle of an epoch sees exactly the batches an uninterrupted run sees.
Without ``seed`` the loader draws one from ``generator`` (None: the shared
default that ``mp.manual_seed`` reseeds; an int seed; or a
``np.random.Generator``).
"""
import numpy as np

from minipool import _random

from minipool._validate import positive_int
from minipool.tensor import Tensor

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over ``dataset`` in batches of ``(images, labels)`` Tensors.

    ``transform(images, rng)`` (optional, see :mod:`minipool.data.transforms`)
    is applied to each float32 batch (n, 1, H, W).  Each ``iter()`` is one
    epoch; the epoch number advances by itself, or set it with
    :meth:`set_epoch` (a resumed run does).  ``start_batch`` in
    :meth:`batches` skips the first batches of the epoch without computing them.

    >>> import numpy as np
    >>> from minipool.data import ArrayDataset
    >>> ds = ArrayDataset(np.zeros((10, 4, 4), np.uint8), np.arange(10))
    >>> loader = DataLoader(ds, batch_size=4, shuffle=True, seed=1)
    >>> [len(y) for x, y in loader]
    [4, 4, 2]
    >>> len(loader)
    3
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, seed=None, drop_last=False, transform=None,
                 *, generator=None):
        self.dataset = dataset
        self.batch_size = positive_int(batch_size, "batch_size", "DataLoader")
        self.shuffle = bool(shuffle)
        if seed is None:
            # PyTorch draws the shuffling from its global RNG; here the loader's own base
            # seed is drawn once, so mp.manual_seed (or generator=) fixes every epoch's order
            # while resuming mid-epoch still needs only (seed, epoch, batch).
            seed = _random.fresh_seed(generator, "DataLoader")
        elif generator is not None:
            raise ValueError("DataLoader: give seed or generator, not both")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"DataLoader: seed must be an int >= 0, got {seed!r}")
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {type(transform).__name__}")
        self.transform = transform
        self.epoch = 0

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def order(self, epoch):
        """The example indices of ``epoch`` in the order they are served."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, int(epoch), 0]).permutation(n)

    def batches(self, epoch=None, start_batch=0):
        """Yield the batches of ``epoch`` (default: the current one) from ``start_batch`` on."""
        epoch = self.epoch if epoch is None else int(epoch)
        order = self.order(epoch)
        get_batch = getattr(self.dataset, "get_batch", None) or self._stack
        for b in range(int(start_batch), len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            images, labels = get_batch(idx)
            if self.transform is not None:
                rng = np.random.default_rng([self.seed, epoch, b + 1])
                images = self.transform(images, rng)
            yield Tensor(np.ascontiguousarray(images, dtype=np.float32)), Tensor(np.asarray(labels, np.int64))

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)

    def _stack(self, indices):
        pairs = [self.dataset[int(i)] for i in indices]
        return np.stack([np.asarray(p[0], np.float32) for p in pairs]), np.array([p[1] for p in pairs])
