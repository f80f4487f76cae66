"""BlurPool and MaxBlurPool (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019).

``blur_pool2d(x, kernel_size=3, stride=2)`` is a depthwise convolution with
the normalised binomial filter of that size (the outer product of
``[1, 2, 1] / 4`` for 3, ``[1, 3, 3, 1] / 8`` for 4, ...), after reflect
padding of ``(k-1)//2`` before and ``ceil((k-1)/2)`` after on each spatial
axis (as the paper's reference code pads), then subsampling by ``stride``:
``Ho = (H - 1) // stride + 1``.  In PyTorch terms it equals
``F.conv2d(F.pad(x, (pw0, pw1, ph0, ph1), mode="reflect"), filt.expand(C, 1, k, k),
stride=stride, groups=C)`` up to rounding; minipool sums in the order that
``minipool/_kernels/blur_pool.pyx`` documents (separable, vertical then
horizontal), which gives the same bits for any thread count and layout.

``max_blur_pool2d`` is the paper's MaxBlurPool: max pooling with stride 1
and then BlurPool with stride 2 (in place of max pooling with stride 2).

Reflect padding needs each spatial size to be larger than its padding (as
PyTorch's reflect pad): smaller planes are refused with the size named.
"""
import functools
import math
from typing import Optional

import numpy as np

from minipool import _config
from minipool._kernels import blur_pool as K
from minipool._typing import IntOrTuple, TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.ops.pooling._geometry import (FLOAT_DTYPES, check_dtype, int_tuple, layout_of,
                                            parse_data_format)
from minipool.ops.pooling.window import max_pool2d
from minipool.tensor import Function, Tensor

__all__ = ["blur_pool2d", "max_blur_pool2d", "binomial_filter"]

MAX_KERNEL = 15     # the binomial weights and their 2-d products stay exact in float32
MAX_STRIDE = 2**31 - 1


@functools.lru_cache(maxsize=32)
def _filter(k):
    """The binomial row C(k-1, t) / 2**(k-1), float64 (exact)."""
    return np.array([math.comb(k - 1, t) for t in range(k)], dtype=np.float64) / 2.0 ** (k - 1)


def binomial_filter(kernel_size: int) -> np.ndarray:
    """The 2-d BlurPool filter of ``kernel_size`` (outer product of the normalised binomial row).

    >>> from minipool.ops.pooling.blur import binomial_filter
    >>> binomial_filter(3) * 16
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    (k,) = int_tuple(kernel_size, 1, "kernel_size", "binomial_filter", 1, MAX_KERNEL)
    f = _filter(k)
    return np.outer(f, f)


def _pads(k):
    return (k - 1) // 2, k - 1 - (k - 1) // 2


def _reflect(q, n):
    if q < 0:
        return -q
    if q >= n:
        return 2 * (n - 1) - q
    return q


@functools.lru_cache(maxsize=256)
def _axis_tables(n, k, s):
    """One axis's tables: the forward source index of every (output, tap) and, per input
    index, the (output, tap) pairs that read it, in the backward's summation order
    (padded position ascending, then output ascending)."""
    before, _ = _pads(k)
    n_out = (n - 1) // s + 1
    src = np.empty((n_out, k), dtype=np.int64)
    readers = [[] for _ in range(n)]
    for o in range(n_out):
        for t in range(k):
            p = o * s + t
            q = _reflect(p - before, n)
            src[o, t] = q
            readers[q].append((p, o, t))
    start = np.zeros(n + 1, dtype=np.int64)
    outs, taps = [], []
    for q in range(n):
        entries = sorted(readers[q])
        start[q + 1] = start[q] + len(entries)
        outs += [o for _, o, _ in entries]
        taps += [t for _, _, t in entries]
    return n_out, src, start, np.array(outs, np.int64), np.array(taps, np.int64)


class _BlurPlan:
    """A checked blur_pool2d geometry: the (B, H, W, C) view, tables and filters."""

    __slots__ = ("shape", "view", "out_shape", "out_view", "rows", "cols", "fh", "fw")

    def __init__(self, op, shape, kernel, stride, channels_last):
        layout = layout_of(op, shape, 2, channels_last)
        H, W = layout.spatial
        for name, n, k in (("height", H, kernel[0]), ("width", W, kernel[1])):
            pad = max(_pads(k))
            if n <= pad:
                raise ValueError(
                    f"{op}: reflect padding {_pads(k)} of kernel_size {k} needs an input {name} "
                    f"> {pad}, got {name} {n} (input {'x'.join(map(str, shape))})")
        if channels_last:
            channels = shape[-1]
            view = (layout.view[0], H, W, channels)
        else:
            channels = shape[-3]
            view = (layout.view[0], H, W, 1)
        if channels == 0:
            raise ValueError(f"{op}: the input has 0 channels (shape {tuple(shape)}); "
                             f"channels must be >= 1")
        self.rows = _axis_tables(H, kernel[0], stride[0])
        self.cols = _axis_tables(W, kernel[1], stride[1])
        Ho, Wo = self.rows[0], self.cols[0]
        self.shape, self.view = tuple(shape), view
        self.out_shape = layout.out_shape((Ho, Wo))
        self.out_view = (view[0], Ho, Wo, view[3])
        self.fh, self.fw = _filter(kernel[0]), _filter(kernel[1])


def _schedule(view, out_view):
    """Threads and the channel slice: a unit of parallel work is one (H, W, C) block and a
    slice of its channels; with fewer blocks than threads (channels-last, small batch) the
    channels are split into slices of ``channel_slice`` channels."""
    B, H, W, C = view
    work = B * H * W * C + math.prod(out_view)
    threads = _config.kernel_threads(B * C, work)
    channel_slice = C
    if C > 1 and 0 < B < threads:
        channel_slice = max(1, -(-C // -(-threads // B)))
    return threads, channel_slice


class BlurPool(Function):
    """The separable binomial blur with reflect padding and stride; backward is its transpose."""

    @staticmethod
    def forward(ctx, x, *, plan):
        xk = np.ascontiguousarray(x).reshape(plan.view)
        out = np.empty(plan.out_view, dtype=x.dtype)
        threads, channel_slice = _schedule(plan.view, plan.out_view)
        fh, fw = plan.fh.astype(x.dtype), plan.fw.astype(x.dtype)
        K.blur_forward(xk, out, plan.rows[1], plan.cols[1], fh, fw, channel_slice, threads)
        if ctx.requires_grad:
            ctx.plan = plan
        return out.reshape(plan.out_shape)

    @staticmethod
    def backward(ctx, grad):
        plan = ctx.plan
        dtype = grad.dtype if grad.dtype in FLOAT_DTYPES else np.dtype(np.float64)
        g = np.ascontiguousarray(grad, dtype=dtype).reshape(plan.out_view)
        grad_in = np.empty(plan.view, dtype=dtype)
        threads, channel_slice = _schedule(plan.view, plan.out_view)
        _, _, hstart, hout, htap = plan.rows
        _, _, wstart, wout, wtap = plan.cols
        K.blur_backward(g, grad_in, hstart, hout, htap, wstart, wout, wtap,
                        plan.fh.astype(dtype), plan.fw.astype(dtype), channel_slice, threads)
        return grad_in.reshape(plan.shape)


def blur_pool2d(input: TensorLike, kernel_size: IntOrTuple = 3, stride: IntOrTuple = 2,
                data_format: Optional[str] = None) -> Tensor:
    """BlurPool of (C, H, W) or (N, C, H, W) input (NHWC with data_format="channels_last").

    ``kernel_size`` (1..15, or an (h, w) pair) picks the binomial filter,
    ``stride`` (an int or a pair) the subsampling; the output is
    ``((H - 1) // sh + 1, (W - 1) // sw + 1)``.  float32/float64 only.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.tensor([[[0.0, 0.0, 4.0, 0.0]]])
    >>> F.blur_pool2d(x, (1, 3)).numpy()     # (0 + 2*4 + 0) / 4 at the second output
    array([[[0., 2.]]], dtype=float32)
    """
    op = "blur_pool2d"
    x = as_tensor(input)
    check_dtype(op, x.dtype, FLOAT_DTYPES)
    kernel = int_tuple(kernel_size, 2, "kernel_size", op, 1, MAX_KERNEL)
    strides = int_tuple(stride, 2, "stride", op, 1, MAX_STRIDE)
    channels_last = parse_data_format(op, data_format)
    plan = _BlurPlan(op, x.shape, kernel, strides, channels_last)
    return BlurPool.apply(x, plan=plan)


def max_blur_pool2d(input: TensorLike, kernel_size: IntOrTuple = 2,
                    blur_kernel_size: IntOrTuple = 3, stride: IntOrTuple = 2,
                    data_format: Optional[str] = None) -> Tensor:
    """MaxBlurPool: ``max_pool2d(kernel_size, stride=1)`` then ``blur_pool2d(blur_kernel_size, stride)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.max_blur_pool2d(mp.ones(1, 2, 8, 8)).shape
    (1, 2, 4, 4)
    """
    x = as_tensor(input)
    check_dtype("max_blur_pool2d", x.dtype, FLOAT_DTYPES)
    pooled = max_pool2d(x, kernel_size, 1, data_format=data_format)
    return blur_pool2d(pooled, blur_kernel_size, stride, data_format=data_format)
