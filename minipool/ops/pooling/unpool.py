"""Max unpooling: the partial inverse of max pooling, driven by its indices.

The output is zero-filled and each input value lands at its index (a flat
position in its output plane).  Differences from PyTorch, both deliberate:
an index of -1 (a window with no real cell, see docs/semantics.md section 7)
is skipped; repeated indices resolve deterministically (the later element in
scan order wins), where PyTorch's result is unspecified.
"""
import math
from typing import Optional, Union

import numpy as np

from minipool._typing import IntOrTuple, TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.ops.pooling._functions import MaxUnpool
from minipool.ops.pooling._geometry import MAX_DTYPES, check_dtype, int_tuple, layout_of
from minipool.tensor import Tensor

__all__ = ["max_unpool1d", "max_unpool2d", "max_unpool3d"]

ALLOCATION_LIMIT = 2**62        # bytes; NumPy refuses anything near 2**63 with an unnamed error


def _output_spatial(op, rank, spatial, kernel, stride, padding, output_size):
    default = tuple((n - 1) * s + k - 2 * p for n, k, s, p in zip(spatial, kernel, stride, padding))
    if output_size is None:
        if min(default) <= 0:
            raise ValueError(f"{op}: the default output size {default} is not positive; "
                             f"check kernel_size, stride and padding")
        return default
    if not isinstance(output_size, (tuple, list)):
        raise TypeError(f"{op}: output_size must be a tuple of {rank} ints (or {rank + 2} with N "
                        f"and C), got {output_size!r}")
    sizes = tuple(output_size)
    if len(sizes) == rank + 2:
        sizes = sizes[2:]
    if len(sizes) != rank or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                     for v in sizes):
        raise ValueError(f"{op}: output_size must hold {rank} ints (or {rank + 2} with N and C), "
                         f"got {output_size!r}")
    if min(sizes) < 1:  # the range check below lets 0 and negative sizes through for small defaults
        raise ValueError(f"{op}: output_size entries must be >= 1, got {tuple(sizes)}")
    for size, d, s in zip(sizes, default, stride):
        if not d - s < size < d + s:
            raise ValueError(f"{op}: output_size {tuple(sizes)} is out of range: each size must be "
                             f"strictly between default - stride and default + stride, "
                             f"default {default}, stride {stride}")
    return tuple(int(v) for v in sizes)


def _unpool(op, rank, input, indices, kernel_size, stride, padding, output_size):
    x = as_tensor(input)
    check_dtype(op, x.dtype, MAX_DTYPES)
    layout = layout_of(op, x.shape, rank, zero_size="planes")  # PyTorch's rule
    idx = indices.numpy() if isinstance(indices, Tensor) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer array (as max_pool returns), "
                        f"got dtype {idx.dtype}")
    if idx.shape != x.shape:
        raise ValueError(f"{op}: indices shape {idx.shape} must equal the input shape {x.shape}")
    kernel = int_tuple(kernel_size, rank, "kernel_size", op, 1)
    stride = kernel if stride is None else int_tuple(stride, rank, "stride", op, 1)
    padding = int_tuple(padding, rank, "padding", op, 0)
    out_spatial = _output_spatial(op, rank, layout.spatial, kernel, stride, padding, output_size)
    plane = math.prod(out_spatial)
    if plane * max(1, math.prod(x.shape[:-rank])) * x.dtype.itemsize > ALLOCATION_LIMIT:
        raise ValueError(f"{op}: the output would have planes of {plane} cells "
                         f"({'x'.join(map(str, out_spatial))}), more than can be allocated; "
                         f"check kernel_size, stride, padding and output_size")
    if idx.size:
        low, high = int(idx.min()), int(idx.max())
        if low < -1 or high >= plane:
            bad = low if low < -1 else high
            raise ValueError(f"{op}: index {bad} is out of range for an output plane of {plane} "
                             f"cells ({'x'.join(map(str, out_spatial))}); indices must lie in "
                             f"[-1, {plane}) - pass output_size= the pooled input's size")
    planes = math.prod(x.shape[:-rank])
    try:
        return MaxUnpool.apply(x, indices=idx, planes=planes, out_shape=x.shape[:-rank] + out_spatial)
    except MemoryError:
        raise ValueError(f"{op}: an output of planes {'x'.join(map(str, out_spatial))} cannot be "
                         f"allocated; check output_size, kernel_size, stride and padding") from None


def max_unpool1d(input: TensorLike, indices: TensorLike, kernel_size: IntOrTuple,
                 stride: Optional[IntOrTuple] = None, padding: Union[IntOrTuple, str] = 0,
                 output_size: Optional[IntOrTuple] = None) -> Tensor:
    """Inverse of :func:`max_pool1d` given its indices; see :func:`max_unpool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> y, i = F.max_pool1d(mp.tensor([[1.0, 3.0, 2.0, 5.0]]), 2, return_indices=True)
    >>> F.max_unpool1d(y, i, 2).numpy()
    array([[0., 3., 0., 5.]], dtype=float32)
    """
    return _unpool("max_unpool1d", 1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input: TensorLike, indices: TensorLike, kernel_size: IntOrTuple,
                 stride: Optional[IntOrTuple] = None, padding: Union[IntOrTuple, str] = 0,
                 output_size: Optional[IntOrTuple] = None) -> Tensor:
    """Zero-filled (N, C, H_out, W_out) with each value placed at its index.

    The default output size is ``(in - 1) * stride + kernel - 2 * padding``
    per dim; ``output_size`` (2 ints, or 4 with N and C) must lie strictly
    within one stride of it.  Pool a 5x5 input with kernel 2 and unpool
    with ``output_size=(5, 5)``, or index 17 is out of range of 4x4.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> y, i = F.max_pool2d(mp.arange(16.0).reshape(1, 1, 4, 4), 2, return_indices=True)
    >>> F.max_unpool2d(y, i, 2).numpy()[0, 0]
    array([[ 0.,  0.,  0.,  0.],
           [ 0.,  5.,  0.,  7.],
           [ 0.,  0.,  0.,  0.],
           [ 0., 13.,  0., 15.]], dtype=float32)
    """
    return _unpool("max_unpool2d", 2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input: TensorLike, indices: TensorLike, kernel_size: IntOrTuple,
                 stride: Optional[IntOrTuple] = None, padding: Union[IntOrTuple, str] = 0,
                 output_size: Optional[IntOrTuple] = None) -> Tensor:
    """Inverse of :func:`max_pool3d` given its indices; see :func:`max_unpool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> y, i = F.max_pool3d(mp.arange(8.0).reshape(1, 2, 2, 2), 2, return_indices=True)
    >>> F.max_unpool3d(y, i, 2).numpy().ravel()
    array([0., 0., 0., 0., 0., 0., 0., 7.], dtype=float32)
    """
    return _unpool("max_unpool3d", 3, input, indices, kernel_size, stride, padding, output_size)
