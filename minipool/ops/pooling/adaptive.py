"""Adaptive and global pooling: the same kernels as window pooling, other tables.

Output position ``i`` of an axis of length ``in`` pooled to ``out`` reads the
window ``[floor(i*in/out), ceil((i+1)*in/out))`` (PyTorch and Keras 3), so
windows may overlap and differ in size; average divides by the true window
size.  Global pooling is adaptive pooling to size 1.
"""
from typing import Optional

from minipool._typing import IntOrTuple, PoolOutput, TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.ops.pooling._functions import ExtremePool, PowerSumPool
from minipool.ops.pooling._geometry import (FLOAT_DTYPES, MAX_DTYPES, adaptive_plan,
                                            check_dtype, parse_data_format)
from minipool.tensor import Tensor

__all__ = ["adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
           "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
           "global_max_pool2d", "global_avg_pool2d"]


def _adaptive_max(op, input, rank, output_size, return_indices, data_format):
    x = as_tensor(input)
    check_dtype(op, x.dtype, MAX_DTYPES)
    plan = adaptive_plan(op, x.shape, rank, output_size, data_format)
    return ExtremePool.apply(x, plan=plan, return_indices=bool(return_indices))


def _adaptive_avg(op, input, rank, output_size, data_format):
    x = as_tensor(input)
    check_dtype(op, x.dtype, FLOAT_DTYPES)
    # PyTorch 2.13 refuses 0 channels in batched 3-d input only (1-d/2-d return empty)
    zero_size = "planes" if rank == 3 else "any"
    plan = adaptive_plan(op, x.shape, rank, output_size, data_format, zero_size)
    return PowerSumPool.apply(x, plan=plan)


def adaptive_max_pool1d(input: TensorLike, output_size: IntOrTuple, return_indices: bool = False,
                        data_format: Optional[str] = None) -> PoolOutput:
    """Adaptive max pooling of (C, L) or (N, C, L) to length ``output_size``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> y, idx = F.adaptive_max_pool1d(mp.arange(5.0).reshape(1, 5), 3, return_indices=True)
    >>> y.numpy(), idx.numpy()
    (array([[1., 3., 4.]], dtype=float32), array([[1, 3, 4]]))
    """
    return _adaptive_max("adaptive_max_pool1d", input, 1, output_size, return_indices,
                         data_format)


def adaptive_max_pool2d(input: TensorLike, output_size: IntOrTuple, return_indices: bool = False,
                        data_format: Optional[str] = None) -> PoolOutput:
    """Adaptive max pooling of (C, H, W) or (N, C, H, W) to ``output_size``
    (an int, or a pair where None keeps that input size); max pooling's NaN
    and tie rules; indices as :func:`max_pool2d` returns them.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.adaptive_max_pool2d(mp.arange(16.0).reshape(1, 4, 4), (1, 2)).numpy()
    array([[[13., 15.]]], dtype=float32)
    """
    return _adaptive_max("adaptive_max_pool2d", input, 2, output_size, return_indices,
                         data_format)


def adaptive_max_pool3d(input: TensorLike, output_size: IntOrTuple, return_indices: bool = False,
                        data_format: Optional[str] = None) -> PoolOutput:
    """Adaptive max pooling of (C, D, H, W) or (N, C, D, H, W).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.adaptive_max_pool3d(mp.arange(8.0).reshape(1, 2, 2, 2), 1).numpy().ravel()
    array([7.], dtype=float32)
    """
    return _adaptive_max("adaptive_max_pool3d", input, 3, output_size, return_indices,
                         data_format)


def adaptive_avg_pool1d(input: TensorLike, output_size: IntOrTuple,
                        data_format: Optional[str] = None) -> Tensor:
    """Adaptive average pooling of (C, L) or (N, C, L).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.adaptive_avg_pool1d(mp.arange(5.0).reshape(1, 5), 3).numpy()
    array([[0.5, 2. , 3.5]], dtype=float32)
    """
    return _adaptive_avg("adaptive_avg_pool1d", input, 1, output_size, data_format)


def adaptive_avg_pool2d(input: TensorLike, output_size: IntOrTuple,
                        data_format: Optional[str] = None) -> Tensor:
    """Adaptive average pooling of (C, H, W) or (N, C, H, W); each window is
    divided by its own size.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.adaptive_avg_pool2d(mp.arange(16.0).reshape(1, 4, 4), 2).numpy()
    array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
    """
    return _adaptive_avg("adaptive_avg_pool2d", input, 2, output_size, data_format)


def adaptive_avg_pool3d(input: TensorLike, output_size: IntOrTuple,
                        data_format: Optional[str] = None) -> Tensor:
    """Adaptive average pooling of (C, D, H, W) or (N, C, D, H, W).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.adaptive_avg_pool3d(mp.arange(8.0).reshape(1, 2, 2, 2), 1).numpy().ravel()
    array([3.5], dtype=float32)
    """
    return _adaptive_avg("adaptive_avg_pool3d", input, 3, output_size, data_format)


def _squeeze_spatial(op, y, rank, keepdim, data_format):
    if keepdim:
        return y
    channels_last = parse_data_format(op, data_format)
    shape = y.shape[:-rank - 1] + y.shape[-1:] if channels_last else y.shape[:-rank]
    return y.reshape(shape)


def global_max_pool2d(input: TensorLike, keepdim: bool = False,
                      data_format: Optional[str] = None) -> Tensor:
    """Max over all spatial positions of each plane: (N, C, H, W) -> (N, C)
    (or (N, C, 1, 1) with keepdim; NHWC -> (N, C) or (N, 1, 1, C)).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.global_max_pool2d(mp.arange(8.0).reshape(1, 2, 2, 2)).numpy()
    array([[3., 7.]], dtype=float32)
    """
    y = _adaptive_max("global_max_pool2d", input, 2, 1, False, data_format)
    return _squeeze_spatial("global_max_pool2d", y, 2, keepdim, data_format)


def global_avg_pool2d(input: TensorLike, keepdim: bool = False,
                      data_format: Optional[str] = None) -> Tensor:
    """Mean over all spatial positions of each plane; see :func:`global_max_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.global_avg_pool2d(mp.arange(8.0).reshape(1, 2, 2, 2), keepdim=True).shape
    (1, 2, 1, 1)
    """
    y = _adaptive_avg("global_avg_pool2d", input, 2, 1, data_format)
    return _squeeze_spatial("global_avg_pool2d", y, 2, keepdim, data_format)
