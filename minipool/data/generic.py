"""Datasets of any samples, as ``torch.utils.data`` has them, and the collate step.

A *dataset* is anything with ``__len__`` and ``__getitem__(i)`` returning one
sample; a sample may be a Tensor, a NumPy array, a number, or a tuple, list or
dict of those.  :func:`default_collate` turns a list of samples into one batch
the way PyTorch's does: arrays and Tensors are stacked into a Tensor (dtype
kept); plain numbers become one Tensor with a dtype that fits every element
(float64 when the first is a Python float, else as ``torch.tensor`` infers it:
``[0, 0.7]`` is float32, ``[True, 2]`` int64); tuples and lists are collated
field by field (returned as a list), dicts key by key, strings are left as a
list.

>>> import minipool as mp
>>> ds = TensorDataset(mp.arange(6).reshape(3, 2), mp.tensor([0, 1, 0]))
>>> x, y = default_collate([ds[0], ds[2]])
>>> x.numpy().tolist(), y.numpy().tolist()
([[0, 1], [4, 5]], [0, 0])
"""
import bisect
import collections.abc
import functools
import math
import numbers
from typing import Any, Optional, Sequence

import numpy as np

from minipool import _random
from minipool._promotion import promote_types
from minipool.tensor import Tensor, get_default_dtype

__all__ = ["Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split", "default_collate"]


class Dataset:
    """Base class of a map-style dataset: define ``__getitem__`` and ``__len__``.

    ``a + b`` concatenates two datasets, as in PyTorch."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index)")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__()")

    def __add__(self, other):
        return ConcatDataset([self, other])


class TensorDataset(Dataset):
    """Sample ``i`` is ``tuple(t[i] for t in tensors)``; all tensors share their first dimension.

    >>> import minipool as mp
    >>> ds = TensorDataset(mp.zeros(4, 3), mp.tensor([1, 2, 3, 4]))
    >>> len(ds), ds[1][1].item()
    (4, 2)
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one tensor")
        arrays = [t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in tensors]
        sizes = {a.shape[0] if a.ndim else None for a in arrays}
        if None in sizes or len(sizes) != 1:
            raise ValueError(f"TensorDataset: every tensor needs the same first dimension (size of "
                             f"the dataset), got shapes {[tuple(a.shape) for a in arrays]}")
        self.tensors = tuple(arrays)

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __getitem__(self, index):
        if isinstance(index, (list, tuple, np.ndarray)):
            return [self.dataset[self.indices[int(i)]] for i in index]
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several datasets one after the other."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: give at least one dataset")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self):
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, index):
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"ConcatDataset: index {index} is out of range for {n} samples")
        index = index % n
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = int(self.cumulative_sizes[which - 1]) if which else 0
        return self.datasets[which][index - start]


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into non-overlapping :class:`Subset` s of the given lengths (ints summing
    to ``len(dataset)``, or fractions summing to 1: the remainder goes one by one to the first
    parts, as PyTorch does).  ``generator``: None (the default, see ``mp.manual_seed``), an int
    seed, an ``mp.Generator`` or a ``np.random.Generator``.  The split is random and reproducible, but not the
    same permutation PyTorch draws from the same seed (different generators).

    >>> parts = random_split(list(range(10)), [0.8, 0.2], generator=0)
    >>> [len(p) for p in parts]
    [8, 2]
    """
    n = len(dataset)
    lengths = list(lengths)
    total = sum(lengths)
    if math.isclose(total, 1) and total <= 1:  # fractions, PyTorch's rule (a sum over 1 is not)
        if any(not 0 <= x <= 1 for x in lengths):
            raise ValueError(f"random_split: fractions must be in [0, 1], got {lengths}")
        counts = [math.floor(n * x) for x in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(isinstance(x, bool) or not isinstance(x, numbers.Integral) or x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be ints >= 0 (or fractions summing to 1), "
                         f"got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: lengths sum to {sum(lengths)}, but the dataset has {n} "
                         f"samples")
    order = _random.resolve(generator, "random_split").permutation(n)
    cuts = np.cumsum([0] + lengths)
    return [Subset(dataset, order[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def default_collate(batch: Sequence[Any]) -> Any:
    """One batch from a list of samples, as PyTorch's ``default_collate`` builds it."""
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)) \
            or len(batch) == 0:
        raise TypeError("default_collate: batch must be a non-empty list of samples")
    first = batch[0]
    if isinstance(first, Tensor):
        return Tensor(np.stack([_same_kind(s, Tensor)._data for s in batch]))
    if isinstance(first, np.ndarray):
        if first.dtype.kind in "OSUV":
            raise TypeError(f"default_collate: cannot batch NumPy arrays of dtype {first.dtype}")
        return Tensor(np.stack([_same_kind(s, np.ndarray) for s in batch]))
    if _number_dtype(first) is not None:
        return _collate_numbers(batch)
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, collections.abc.Mapping):
        return {key: default_collate([s[key] for s in batch]) for key in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple keeps its type
        return type(first)(*(default_collate(list(f)) for f in zip(*batch)))
    if isinstance(first, collections.abc.Sequence):
        if any(len(s) != len(first) for s in batch):
            raise ValueError("default_collate: every sample must have the same number of fields, "
                             f"got {sorted({len(s) for s in batch})}")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise TypeError(f"default_collate: samples must be Tensors, NumPy arrays, numbers, strings, "
                    f"or tuples, lists or dicts of those; got {type(first).__name__} (pass "
                    f"collate_fn= to the DataLoader for other samples)")


def _number_dtype(x: Any) -> Optional[np.dtype]:
    """The dtype ``torch.tensor`` reads a plain number as: a NumPy scalar keeps its own, a
    Python int is int64, a Python float the default float dtype; None for anything else."""
    if isinstance(x, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(x, np.generic):  # before float: np.float64 is a Python float too
        return x.dtype if x.dtype.kind in "iuf" else None
    if isinstance(x, numbers.Integral):
        return np.dtype(np.int64)
    if isinstance(x, numbers.Real):
        return get_default_dtype()
    return None


def _collate_numbers(batch: Sequence[Any]) -> Tensor:
    """A batch of plain numbers as PyTorch collates it: float64 when the first is a Python
    float, else the dtype every element promotes to (so ``[0, 0.7]`` is float32, never
    truncated to ints, and ``[True, 2]`` is int64)."""
    dtypes = [_number_dtype(x) for x in batch]
    for x, dt in zip(batch, dtypes):
        if dt is None:
            raise TypeError(f"default_collate: a batch mixes numbers and {type(x).__name__} "
                            f"samples in one field")
    first = batch[0]
    if isinstance(first, numbers.Real) and not isinstance(first, (numbers.Integral, np.generic)):
        dtype = np.dtype(np.float64)
    else:
        dtype = functools.reduce(promote_types, dtypes)
    return Tensor(np.array(batch, dtype=dtype))


def _same_kind(sample, kind):
    if not isinstance(sample, kind):
        raise TypeError(f"default_collate: a batch mixes {kind.__name__} and "
                        f"{type(sample).__name__} samples in one field")
    return sample
