"""Batches from a dataset: shuffled and augmented reproducibly from one seed.

The order and the augmentation of every batch depend only on ``(seed, epoch,
batch index)``, never on how many batches were drawn before, so a run resumed
in the middle of an epoch sees exactly the batches an uninterrupted run sees.
Without ``seed``, each ``iter(loader)`` draws that epoch's seed from
``generator`` (None: the shared default that ``mp.manual_seed`` reseeds; an int
seed; an ``mp.Generator`` or a ``np.random.Generator``), as PyTorch draws its
shuffle when the epoch starts: a loader built before ``mp.manual_seed`` follows
the seed.
"""
from typing import Any, Iterator, Optional

import numpy as np

from minipool import _random

from minipool._validate import is_int
from minipool.data.generic import default_collate
from minipool.tensor import Tensor

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate over ``dataset`` in batches.

    A dataset with ``get_batch(indices)`` (the image datasets of
    :mod:`minipool.data`) gives ``(images, labels)``: float32 and int64 Tensors.
    Any other dataset (``TensorDataset``, your own ``Dataset``) is read sample by
    sample and batched by ``collate_fn`` (default: :func:`default_collate`, as
    in PyTorch).  ``transform(images, rng)`` (optional, see
    :mod:`minipool.data.transforms`) is applied to each float32 batch (n, 1, H, W)
    of an ``(images, labels)`` dataset.

    PyTorch's loading options: ``num_workers`` must be 0 (batches are read in
    this process: minipool's datasets are NumPy arrays in memory); ``sampler`` (an
    iterable of indices, e.g. :class:`~minipool.data.sampler.WeightedRandomSampler`) replaces
    ``shuffle``, ``batch_sampler`` (an iterable of index lists) replaces ``batch_size``,
    ``shuffle``, ``sampler`` and ``drop_last``, as in PyTorch (a resumed epoch then needs the
    sampler to draw the same order again); ``pin_memory`` has no effect (CPU only, as in PyTorch without an accelerator).  Each ``iter()`` is one
    epoch; the epoch number advances by itself, or set it with
    :meth:`set_epoch` (a resumed run does).  ``start_batch`` in
    :meth:`batches` skips the first batches of the epoch without computing them.
    Without ``seed``, each ``iter()`` draws the epoch's seed (kept in ``loader.seed``)
    from ``generator``, as PyTorch does; give ``seed`` to resume a run exactly.

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
                 *, generator=None, collate_fn=None, num_workers=0, pin_memory=False, sampler=None,
                 batch_sampler=None, worker_init_fn=None, persistent_workers=False,
                 prefetch_factor=None, timeout=0):
        _refuse_worker_options(num_workers, worker_init_fn, persistent_workers, prefetch_factor, timeout)
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle (the "
                             "sampler gives the order; use RandomSampler for a shuffled one)")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, "
                             "shuffle, sampler, and drop_last (the batch sampler decides all four)")
        for name, value in (("sampler", sampler), ("batch_sampler", batch_sampler)):
            if value is not None and not hasattr(value, "__iter__"):
                raise TypeError(f"DataLoader: {name} must be an iterable of "
                                f"{'indices' if name == 'sampler' else 'lists of indices'}, "
                                f"got {type(value).__name__}")
        self.sampler, self.batch_sampler = sampler, batch_sampler
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {type(collate_fn).__name__}")
        self.collate_fn = collate_fn
        self.pin_memory = bool(pin_memory)
        self.dataset = dataset
        if not is_int(batch_size) or batch_size < 1:  # any bad value is a ValueError, as PyTorch's
            raise ValueError(f"DataLoader: batch_size must be an int >= 1, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: give seed or generator, not both")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"DataLoader: seed must be an int >= 0, got {seed!r}")
        # Without seed=, each epoch's seed is drawn when it starts (in __iter__), as PyTorch
        # draws its shuffle at iter(loader): a loader built before mp.manual_seed follows it.
        # An int generator is resolved once here, so its epochs still differ.
        self._generator = _random.kept(generator, "DataLoader")
        self._fixed_seed = seed is not None
        self.seed = int(seed) if seed is not None else None  # the current epoch's seed
        self.drop_last = bool(drop_last)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {type(transform).__name__}")
        self.transform = transform
        self.epoch = 0

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.dataset if self.sampler is None else self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _key(self, epoch):
        """(seed, epoch) that key an epoch's draws.  A drawn seed is new each epoch, so it keys
        the epoch alone (epoch 0): reseeding before ``iter()`` repeats an order, as in PyTorch.
        ``batches``/``order`` used before any ``iter()`` draw the seed as ``iter()`` would."""
        if self.seed is None:
            self.seed = _random.fresh_seed(self._generator, "DataLoader")
        return self.seed, (int(epoch) if self._fixed_seed else 0)

    def order(self, epoch: int) -> np.ndarray:
        """The example indices of ``epoch`` in the order they are served (a sampler's draw when
        the loader has one)."""
        seed, epoch = self._key(epoch)
        return self._order(epoch, seed)

    def _order(self, epoch, seed):
        if self.sampler is not None:
            return np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([seed, epoch, 0]).permutation(n)

    def batches(self, epoch: Optional[int] = None, start_batch: int = 0) -> Iterator[Any]:
        """Yield the batches of ``epoch`` (default: the current one) from ``start_batch`` on."""
        # epoch and seed are read now, not at the first batch: a later iter() redraws the seed
        seed, epoch = self._key(self.epoch if epoch is None else epoch)
        return self._batches(epoch, seed, start_batch)

    def _batches(self, epoch, seed, start_batch):
        get_batch = getattr(self.dataset, "get_batch", None) if self.collate_fn is None else None
        for b, idx in enumerate(self._index_batches(epoch, seed)):
            if b < start_batch:
                continue
            if get_batch is None:
                batch = (self.collate_fn or default_collate)([self.dataset[int(i)] for i in idx])
                if self.transform is None:
                    yield batch
                    continue
                images, labels = self._pair(batch)
            else:
                images, labels = get_batch(idx)
            if self.transform is not None:
                rng = np.random.default_rng([seed, epoch, b + 1])
                images = self.transform(images, rng)
            yield Tensor(np.ascontiguousarray(images, dtype=np.float32)), Tensor(np.asarray(labels, np.int64))

    def _index_batches(self, epoch, seed):
        if self.batch_sampler is not None:
            for indices in self.batch_sampler:
                yield np.fromiter((int(i) for i in indices), dtype=np.int64)
            return
        order = self._order(epoch, seed)
        for b in range(len(order) // self.batch_size if self.drop_last else -(-len(order) // self.batch_size)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size]

    @staticmethod
    def _pair(batch):
        if not isinstance(batch, (list, tuple)) or len(batch) != 2:
            raise ValueError("DataLoader: transform= needs batches of (images, labels); this "
                             "dataset's batches are not pairs (apply the transform in the dataset)")
        images, labels = batch
        images = images._data if isinstance(images, Tensor) else np.asarray(images)
        labels = labels._data if isinstance(labels, Tensor) else np.asarray(labels)
        if labels.dtype.kind not in "iub":
            raise ValueError(f"DataLoader: transform= needs integer class labels, got {labels.dtype}")
        return images, labels

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        if not self._fixed_seed:  # a new draw per epoch, now, not at construction
            self.seed = _random.fresh_seed(self._generator, "DataLoader")
        return self.batches(epoch)



def _refuse_worker_options(num_workers, worker_init_fn, persistent_workers, prefetch_factor, timeout):
    """PyTorch's multi-process loading options, refused by name instead of ignored."""
    if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
        raise ValueError(f"DataLoader: num_workers must be an int >= 0, got {num_workers!r}")
    if num_workers:
        raise ValueError(f"DataLoader: num_workers={num_workers} is not supported: minipool reads "
                         f"batches in this process (its datasets are arrays in memory); use "
                         f"num_workers=0")
    for name, value, default in (("worker_init_fn", worker_init_fn, None),
                                 ("persistent_workers", persistent_workers, False),
                                 ("prefetch_factor", prefetch_factor, None), ("timeout", timeout, 0)):
        if value != default:
            raise ValueError(f"DataLoader: {name} is an option of worker processes, and minipool's "
                             f"DataLoader has none (num_workers=0); leave it out")
