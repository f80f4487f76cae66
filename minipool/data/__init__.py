"""Datasets, batching and augmentation for image classification (pure NumPy).

>>> from minipool.data import SyntheticDigits, DataLoader, transforms
>>> loader = DataLoader(SyntheticDigits(32, seed=0), batch_size=16,
...                     transform=transforms.Pad(2))
>>> images, labels = next(iter(loader))
>>> images.shape, labels.shape
((16, 1, 32, 32), (16,))
"""
from minipool.data import transforms  # noqa: F401
from minipool.data.cifar import CIFAR10, CIFAR100, CIFARError  # noqa: F401
from minipool.data.dataset import ArrayDataset  # noqa: F401
from minipool.data.generic import (ConcatDataset, Dataset, Subset, TensorDataset,  # noqa: F401
                                   default_collate, random_split)
from minipool.data.idx import IDXError, read_idx, write_idx  # noqa: F401
from minipool.data.loader import DataLoader  # noqa: F401
from minipool.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler,  # noqa: F401
                                   SubsetRandomSampler, WeightedRandomSampler)
from minipool.data.mnist import MNIST, DatasetNotFoundError, FashionMNIST, default_data_dir  # noqa: F401
from minipool.data.synthetic import SyntheticDigits  # noqa: F401

__all__ = ["ArrayDataset", "DataLoader", "MNIST", "FashionMNIST", "SyntheticDigits", "IDXError",
           "DatasetNotFoundError", "read_idx", "write_idx", "default_data_dir", "transforms",
           "CIFAR10", "CIFAR100", "CIFARError", "Dataset", "TensorDataset", "Subset", "ConcatDataset",
           "random_split", "default_collate", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler"]
