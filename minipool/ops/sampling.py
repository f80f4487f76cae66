"""Random draws shaped like a tensor: bernoulli and randint_like.  ``generator`` follows
minipool's one rule (``minipool._random.resolve``): None, an int seed or a Generator."""
from typing import Any, Optional

import numpy as np

from minipool import _random
from minipool._typing import DTypeLike, TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.tensor import Tensor

__all__ = ["bernoulli", "randint_like"]


def _probabilities(op, p):
    values = np.asarray(p._data if isinstance(p, Tensor) else p)
    if values.dtype.kind != "f":
        raise RuntimeError(f"{op}: the probabilities must be floating point, got {values.dtype}")
    if values.size and not ((values >= 0) & (values <= 1)).all():  # NaN fails too
        raise RuntimeError(f"{op}: every probability must be in [0, 1]")
    return values


def bernoulli(input: TensorLike, p: Optional[float] = None, *, generator: Any = None) -> Tensor:
    """1 with probability ``input`` (elementwise; or with the number ``p`` for every
    element), else 0, in input's dtype.  No gradient, as in PyTorch.

    >>> import minipool as mp
    >>> mp.bernoulli(mp.tensor([0.0, 1.0, 1.0]), generator=0).tolist()
    [0.0, 1.0, 1.0]
    """
    x = as_tensor(input)
    if x.dtype.kind != "f":
        raise NotImplementedError(f"bernoulli: input must be a float tensor of probabilities, "
                                  f"got {x.dtype} (as in PyTorch); cast it, e.g. x.float()")
    probs = _probabilities("bernoulli", x if p is None else np.asarray(p, np.float64))
    draws = _random.resolve(generator, "bernoulli").random(x.shape)
    return Tensor((draws < probs).astype(x.dtype))


def randint_like(input: Tensor, low: int = 0, high: Optional[int] = None, *,
                 dtype: Optional[DTypeLike] = None, generator: Any = None,
                 requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from [low, high) in input's shape and dtype (or ``dtype``);
    ``randint_like(x, high)`` starts at 0.

    >>> import minipool as mp
    >>> x = mp.randint_like(mp.zeros(2, 3, dtype=mp.int64), 5, generator=0)
    >>> x.shape, x.dtype, bool(((x >= 0) & (x < 5)).all())
    ((2, 3), dtype('int64'), True)
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"randint_like: input must be a Tensor, got {type(input).__name__}")
    if high is None:
        low, high = 0, low
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"randint_like: {name} must be an int, got {v!r}")
    if high <= low:
        raise RuntimeError(f"randint_like: high must be > low, got low={low}, high={high}")
    dtype = input.dtype if dtype is None else np.dtype(dtype)
    values = _random.resolve(generator, "randint_like").integers(low, high, input.shape)
    return Tensor(values.astype(dtype), requires_grad=requires_grad)
