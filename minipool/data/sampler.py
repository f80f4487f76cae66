"""``torch.utils.data``'s samplers: which dataset indices a DataLoader serves, in what order.

A sampler is any iterable of ints (with ``__len__`` to give the DataLoader a length); a batch
sampler is an iterable of lists of ints.  ``generator``: None (the shared default that
``mp.manual_seed`` reseeds), an ``mp.Generator`` or ``np.random.Generator`` (each epoch draws on),
or an int seed (the same draws every epoch).  The orders are random and reproducible, but not
the ones PyTorch draws from the same seed (different generators).
"""
import numbers
from typing import Any, Iterable, Iterator, List, Optional, Sized

import numpy as np

from minipool import _random
from minipool._validate import named_allocation
from minipool.ops.discrete import multinomial
from minipool.tensor import Tensor

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]


def _count(value, name, where, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{where}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _bool(value, name, where, error=TypeError):
    if not isinstance(value, (bool, np.bool_)):  # (PyTorch's error class differs by sampler)
        raise error(f"{where}: {name} must be a bool, got {value!r}")
    return bool(value)


class Sampler:
    """Base class: define ``__iter__`` (indices) and, for ``len(loader)``, ``__len__``."""

    def __init__(self, data_source: Optional[Sized] = None) -> None:
        pass

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__()")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1.

    >>> list(SequentialSampler(range(3)))
    [0, 1, 2]
    """

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random permutation of the dataset's indices (``num_samples`` of them: whole
    permutations, then part of one), or ``num_samples`` uniform draws with ``replacement``.

    >>> sorted(RandomSampler(range(4), generator=0))
    [0, 1, 2, 3]
    """

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: Optional[int] = None,
                 generator: Any = None) -> None:
        where = "RandomSampler"
        self.data_source = data_source
        self.replacement = _bool(replacement, "replacement", where)
        self._num_samples = None if num_samples is None else _count(num_samples, "num_samples", where)
        _count(self.num_samples, "num_samples (the dataset's length by default)", where)
        _random.resolve(generator, where)  # a bad generator is named now, not at the first epoch
        self.generator = generator

    @property
    def num_samples(self) -> int:
        """How many indices an epoch gives (the dataset's length unless given)."""
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, rng = len(self.data_source), _random.resolve(self.generator, "RandomSampler")
        if self.replacement and n == 0:
            raise ValueError("RandomSampler: cannot draw with replacement from an empty dataset")
        with named_allocation("RandomSampler", f"num_samples={self.num_samples}"):
            if self.replacement:
                return iter(rng.integers(0, n, self.num_samples).tolist())
            whole, rest = divmod(self.num_samples, n) if n else (0, 0)
            parts = [rng.permutation(n) for _ in range(whole)] + [rng.permutation(n)[:rest]]
            return iter(np.concatenate(parts).tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order (a new one each epoch).

    >>> sorted(SubsetRandomSampler([5, 7, 9], generator=0))
    [5, 7, 9]
    """

    def __init__(self, indices: Iterable[int], generator: Any = None) -> None:
        self.indices = list(indices.tolist() if isinstance(indices, (Tensor, np.ndarray)) else indices)
        _random.resolve(generator, "SubsetRandomSampler")
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        order = _random.resolve(self.generator, "SubsetRandomSampler").permutation(len(self.indices))
        return iter([self.indices[i] for i in order])

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probability proportional to ``weights`` (one per
    sample; with ``replacement``, the default, an index may repeat), as ``mp.multinomial``.

    >>> list(WeightedRandomSampler([0.0, 1.0, 0.0], 3, generator=0))
    [1, 1, 1]
    """

    def __init__(self, weights: Any, num_samples: int, replacement: bool = True,
                 generator: Any = None) -> None:
        where = "WeightedRandomSampler"
        self.num_samples = _count(num_samples, "num_samples", where)
        self.replacement = _bool(replacement, "replacement", where, ValueError)
        w = np.asarray(weights.numpy() if isinstance(weights, Tensor) else weights, dtype=np.float64)
        if w.ndim != 1:
            raise ValueError(f"{where}: weights must be a 1-D sequence, got shape {w.shape}")
        self.weights = Tensor(w)
        _random.resolve(generator, where)
        self.generator = generator
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            raise ValueError(f"{where}: weights must be finite, >= 0 and not all 0")
        if not self.replacement and self.num_samples > w.size:
            raise ValueError(f"{where}: num_samples={self.num_samples} without replacement needs as "
                             f"many weights, there are {w.size}")

    def __iter__(self) -> Iterator[int]:
        drawn = multinomial(self.weights, self.num_samples, self.replacement,
                            generator=_random.resolve(self.generator, "WeightedRandomSampler"))
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler`` (the last one shorter unless ``drop_last``).

    >>> list(BatchSampler(SequentialSampler(range(5)), batch_size=2, drop_last=False))
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = _count(batch_size, "batch_size", "BatchSampler")
        self.drop_last = _bool(drop_last, "drop_last", "BatchSampler", ValueError)

    def __iter__(self) -> Iterator[List[int]]:
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
