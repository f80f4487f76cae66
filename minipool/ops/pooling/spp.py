"""Spatial pyramid pooling (He, Zhang, Ren & Sun, "Spatial Pyramid Pooling in Deep
Convolutional Networks for Visual Recognition", 2014, arXiv:1406.4729).

Each pyramid level ``l`` is an adaptive max (or average) pool of every plane to
``l x l`` bins (PyTorch's adaptive windows ``[floor(i*in/l), ceil((i+1)*in/l))``),
flattened; the levels are concatenated, so any input size gives a vector of the
same length: (N, C, H, W) -> (N, C * sum(l*l)).  Order: level by level, each
level flattened channel-major as ``torch.flatten(pooled, 1)`` of (N, C, l, l),
whatever the input layout (NHWC input is pooled as is and reordered).
"""
from typing import Optional, Sequence

import numpy as np

from minipool._typing import TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.ops.pooling.adaptive import adaptive_avg_pool2d, adaptive_max_pool2d
from minipool.ops.pooling._geometry import (FLOAT_DTYPES, INT32_PLANE_LIMIT, check_dtype,
                                            parse_data_format)
from minipool.ops.shape import cat
from minipool.tensor import Tensor

__all__ = ["spatial_pyramid_pool2d"]


def check_levels(op, levels):
    """A non-empty tuple of ints in [1, 2**31 - 1]; a single int is one level."""
    if isinstance(levels, (int, np.integer)) and not isinstance(levels, (bool, np.bool_)):
        levels = (levels,)
    if not isinstance(levels, (tuple, list)) or len(levels) == 0 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
            for v in levels):
        raise TypeError(f"{op}: levels must be a non-empty tuple of ints (bins per side), "
                        f"got {levels!r}")
    for v in levels:
        if not 1 <= v <= INT32_PLANE_LIMIT:
            raise ValueError(f"{op}: levels must be >= 1 (bins per side), got {tuple(levels)}")
    return tuple(int(v) for v in levels)


def spatial_pyramid_pool2d(input: TensorLike, levels: Sequence[int] = (1, 2, 4), mode: str = "max",
                           data_format: Optional[str] = None) -> Tensor:
    """Spatial pyramid pooling of (N, C, H, W) or unbatched (C, H, W) into
    (N, C * sum(l*l)) (or (C * sum(l*l),)): adaptive ``mode`` ("max" or "avg")
    pools to ``l x l`` for every ``l`` in ``levels``, each flattened as
    (C, l, l), concatenated level by level.  Gradients flow through the
    adaptive pools (max: to each bin's first maximal cell; avg: spread).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.arange(16.0).reshape(1, 1, 4, 4)
    >>> F.spatial_pyramid_pool2d(x, levels=(1, 2)).numpy()
    array([[15.,  5.,  7., 13., 15.]], dtype=float32)
    """
    op = "spatial_pyramid_pool2d"
    if not isinstance(mode, str) or mode not in ("max", "avg"):
        raise ValueError(f"{op}: mode must be 'max' or 'avg', got {mode!r}")
    levels = check_levels(op, levels)
    x = as_tensor(input)
    check_dtype(op, x.dtype, FLOAT_DTYPES)
    channels_last = parse_data_format(op, data_format)
    if x.ndim not in (3, 4):
        form = "(N, H, W, C) or (H, W, C)" if channels_last else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"{op}: expected a 3-d or 4-d {form} input, got shape {x.shape}")
    pool = adaptive_max_pool2d if mode == "max" else adaptive_avg_pool2d
    batched = x.ndim == 4
    parts = []
    for level in levels:
        y = pool(x, level, data_format=data_format)
        if channels_last:  # (.., l, l, C) -> (.., C, l, l): channel-major as torch.flatten
            y = y.permute(0, 3, 1, 2) if batched else y.permute(2, 0, 1)
        cells = y.shape[-3] * level * level      # explicit sizes: N may be 0
        parts.append(y.reshape(y.shape[0], cells) if batched else y.reshape(cells))
    return cat(parts, dim=1 if batched else 0)
