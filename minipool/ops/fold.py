"""unfold (im2col) and fold (col2im), as ``F.unfold`` / ``F.fold``.

unfold copies every sliding ``kernel_size`` block of a (N, C, H, W) input into a column:
(N, C * kh * kw, L) with the channel slowest and the kernel column fastest, L blocks in
row-major order.  fold sums such columns back into an image, overlaps added.  Each is the
other's adjoint, so each one's backward is the other.  One NumPy slice per kernel offset
(kh * kw of them), every block at once: plain and readable, not a conv kernel.
"""
from typing import Tuple

import numpy as np

from minipool._typing import TensorLike
from minipool._validate import int_tuple, named_allocation
from minipool.ops.elementwise import tensor_argument
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["unfold", "fold"]


def _geometry(op, kernel_size, dilation, padding, stride):
    return (int_tuple(kernel_size, 2, "kernel_size", op, 1, exact=True),
            int_tuple(dilation, 2, "dilation", op, 1, exact=True),
            int_tuple(padding, 2, "padding", op, 0, exact=True),
            int_tuple(stride, 2, "stride", op, 1, exact=True))


def _blocks(op, size, kernel, dilation, padding, stride):
    """Blocks along each spatial axis (each must be at least one)."""
    counts = tuple((size[a] + 2 * padding[a] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1
                   for a in (0, 1))
    if min(counts) < 1:
        raise RuntimeError(f"{op}: an input of spatial size {tuple(size)} with kernel_size "
                           f"{kernel}, dilation {dilation}, padding {padding}, stride {stride} "
                           f"has {counts} sliding blocks; each must be at least 1")
    return counts


def _window(offset, dilation, stride, count):
    return slice(offset * dilation, offset * dilation + stride * (count - 1) + 1, stride)


def _unfold_array(x, kernel, dilation, padding, stride, counts):
    n, c = x.shape[:2]
    (ph, pw), (kh, kw), (oh, ow) = padding, kernel, counts
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        rows = _window(i, dilation[0], stride[0], oh)
        for j in range(kw):
            cols[:, :, i, j] = padded[:, :, rows, _window(j, dilation[1], stride[1], ow)]
    return cols.reshape(n, c * kh * kw, oh * ow)


def _fold_array(cols, size, kernel, dilation, padding, stride, counts):
    n = cols.shape[0]
    (ph, pw), (kh, kw), (oh, ow) = padding, kernel, counts
    c = cols.shape[1] // (kh * kw)
    blocks = cols.reshape(n, c, kh, kw, oh, ow)
    padded = np.zeros((n, c, size[0] + 2 * ph, size[1] + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        rows = _window(i, dilation[0], stride[0], oh)
        for j in range(kw):
            padded[:, :, rows, _window(j, dilation[1], stride[1], ow)] += blocks[:, :, i, j]
    return np.ascontiguousarray(padded[:, :, ph:ph + size[0], pw:pw + size[1]])


class UnfoldFn(Function):
    @staticmethod
    def forward(ctx, x, geometry, counts):
        ctx.meta = (x.shape[2:], geometry, counts)
        return _unfold_array(x, *geometry, counts)

    @staticmethod
    def backward(ctx, grad):
        size, geometry, counts = ctx.meta
        return _fold_array(grad, size, *geometry, counts), None, None


class FoldFn(Function):
    @staticmethod
    def forward(ctx, cols, size, geometry, counts):
        ctx.meta = (geometry, counts)
        return _fold_array(cols, size, *geometry, counts)

    @staticmethod
    def backward(ctx, grad):
        geometry, counts = ctx.meta
        return _unfold_array(grad, *geometry, counts), None, None, None


def _float(op, input, ranks, form):
    x = tensor_argument(op, "input", input)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: input must be float32 or float64, got {x.dtype}")
    if x.ndim not in ranks:
        raise RuntimeError(f"{op}: input must be {form}, got shape {x.shape}")
    return x


def unfold(input: TensorLike, kernel_size: int, dilation: int = 1, padding: int = 0,
           stride: int = 1) -> Tensor:
    """Every sliding block of a (N, C, H, W) or (C, H, W) input as a column: (N, C * kh * kw, L)
    (or (C * kh * kw, L)), as ``F.unfold``; sizes are ints or pairs.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.unfold(mp.arange(9.0).reshape(1, 1, 3, 3), 2).numpy()[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]], dtype=float32)
    """
    op = "unfold"
    x = _float(op, input, (3, 4), "(N, C, H, W) or (C, H, W)")
    geometry = _geometry(op, kernel_size, dilation, padding, stride)
    batched = x if x.ndim == 4 else x.reshape((1,) + x.shape)
    counts = _blocks(op, x.shape[-2:], *geometry)
    with named_allocation(op, f"kernel_size={kernel_size}, padding={padding}, stride={stride}"):
        out = UnfoldFn.apply(batched, geometry, counts)
    return out if x.ndim == 4 else out.reshape(out.shape[1:])


def fold(input: TensorLike, output_size: Tuple[int, int], kernel_size: int, dilation: int = 1,
         padding: int = 0, stride: int = 1) -> Tensor:
    """Sum columns (N, C * kh * kw, L) (or (C * kh * kw, L)) of sliding blocks back into a
    (N, C, *output_size) image, overlaps added, as ``F.fold`` (the adjoint of ``unfold``).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.fold(mp.ones(1, 4, 4), (3, 3), 2).numpy()[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]], dtype=float32)
    """
    op = "fold"
    x = _float(op, input, (2, 3), "(N, C * kh * kw, L) or (C * kh * kw, L)")
    size = int_tuple(output_size, 2, "output_size", op, 1, exact=True)
    geometry = _geometry(op, kernel_size, dilation, padding, stride)
    kernel = geometry[0]
    per_channel = kernel[0] * kernel[1]
    if x.shape[-2] % per_channel:
        raise RuntimeError(f"{op}: dim {x.ndim - 2} of the input ({x.shape[-2]}) must be divisible "
                           f"by the product of kernel_size {kernel} ({per_channel})")
    counts = _blocks(op, size, *geometry)
    if x.shape[-1] != counts[0] * counts[1]:
        raise RuntimeError(f"{op}: the input has {x.shape[-1]} blocks in its last dim, but "
                           f"output_size {size} with kernel_size {kernel}, dilation {geometry[1]}, "
                           f"padding {geometry[2]}, stride {geometry[3]} makes "
                           f"{counts[0]} * {counts[1]} = {counts[0] * counts[1]}")
    batched = x if x.ndim == 3 else x.reshape((1,) + x.shape)
    with named_allocation(op, f"output_size={output_size}, padding={padding}"):
        out = FoldFn.apply(batched, size, geometry, counts)
    return out if x.ndim == 3 else out.reshape(out.shape[1:])
