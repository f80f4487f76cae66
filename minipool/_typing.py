"""Type aliases used in the public API's hints (``minipool`` ships ``py.typed``).

>>> from minipool._typing import IntOrTuple
>>> IntOrTuple
typing.Union[int, typing.Tuple[int, ...]]
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from minipool._random import Generator
from minipool.tensor import Tensor

__all__ = ["TensorLike", "IntOrTuple", "Dims", "GeneratorLike", "PoolOutput", "DTypeLike"]

#: What ops accept as a tensor argument: a Tensor, or anything ``mp.tensor`` takes.
TensorLike = Union[Tensor, np.ndarray, float, int, Sequence]
#: One int for every axis, or one per axis (kernel sizes, strides, paddings, ...).
IntOrTuple = Union[int, Tuple[int, ...]]
#: The axes of a reduction: one, several, or None for all.
Dims = Optional[Union[int, Tuple[int, ...]]]
#: None (minipool's shared generator), an int seed, an mp.Generator or a NumPy Generator.
GeneratorLike = Optional[Union[int, Generator, np.random.Generator]]
#: A pool's output, with its indices when ``return_indices=True``.
PoolOutput = Union[Tensor, Tuple[Tensor, Tensor]]
#: A dtype as NumPy takes it: np.float32, np.dtype("float64"), "float32".
DTypeLike = Union[np.dtype, type, str]
