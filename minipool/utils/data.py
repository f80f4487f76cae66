"""``torch.utils.data``'s names, so ``from minipool.utils.data import DataLoader, TensorDataset``
works as it does in PyTorch.  They live in :mod:`minipool.data`.

>>> import minipool as mp
>>> from minipool.utils.data import DataLoader, TensorDataset
>>> ds = TensorDataset(mp.randn(10, 3), mp.arange(10))
>>> [tuple(x.shape) for x, y in DataLoader(ds, batch_size=4)]
[(4, 3), (4, 3), (2, 3)]
"""
from minipool.data.generic import (ConcatDataset, Dataset, Subset, TensorDataset,  # noqa: F401
                                   default_collate, random_split)
from minipool.data.loader import DataLoader  # noqa: F401
from minipool.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,  # noqa: F401
                                   SubsetRandomSampler, WeightedRandomSampler)

__all__ = ["DataLoader", "Dataset", "TensorDataset", "Subset", "ConcatDataset", "random_split",
           "default_collate", "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]
