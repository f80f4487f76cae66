"""Fractional max pooling (Graham, "Fractional Max-Pooling", 2014, arXiv:1412.6071).

Each (n, c) plane pools whole ``k``-cell windows whose starts follow a
pseudo-random increasing sequence, so the output size need not divide the
input size.  The sequence is PyTorch's: for an axis of ``in`` cells pooled to
``out`` with kernel ``k`` and the plane's sample ``u`` (one per axis),

    alpha   = (in - k) / (out - 1)                 (in the input's dtype)
    start_i = trunc((i + u) * alpha) - trunc(u * alpha),   i < out - 1
    start_{out-1} = in - k

so with PyTorch's ``_random_samples`` (shape (N, C, 2) or (N, C, 3), axis
order W, H for 2-d and D, H, W for 3-d, as PyTorch reads them) values,
indices and gradients equal PyTorch's bit for bit.  Without it, the samples
are drawn from minipool's generator (``generator=``: None for the shared one
that ``mp.manual_seed`` reseeds, an int seed or a ``numpy.random.Generator``),
one U[0, 1) per plane and axis in the input's dtype, (N, C, axis) order.

The max rule is max pooling's (``v > best or isnan(v)`` from -inf; a window
of -inf keeps its first cell); indices are flat positions in the input plane.
The per-plane starts go to their own kernel entry
(``fractional_max_forward`` in ``minipool/_kernels/pool_fractional.pyx``).
"""
import math
from typing import Optional, Tuple, Union

import numpy as np

from minipool import _config, _random
from minipool._kernels import pool_fractional
from minipool._typing import GeneratorLike, IntOrTuple, PoolOutput, TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.ops.pooling._geometry import (FLOAT_DTYPES, INT32_PLANE_LIMIT, check_dtype,
                                            int_tuple, layout_of, parse_data_format)
from minipool.tensor import Function, Tensor

__all__ = ["fractional_max_pool2d", "fractional_max_pool3d"]


def interval_starts(samples, size, out, kernel, dtype):
    """Window starts (int64, shape ``samples.shape + (out,)``) along one axis,
    computed in ``dtype`` arithmetic as PyTorch does (float32 input: float32)."""
    u = np.asarray(samples, dtype=dtype)[..., None]
    starts = np.empty(u.shape[:-1] + (out,), dtype=np.int64)
    if out > 1:
        alpha = np.asarray(size - kernel, dtype=dtype) / np.asarray(out - 1, dtype=dtype)
        i = np.arange(out - 1, dtype=dtype)
        starts[..., :-1] = (np.trunc((i + u) * alpha).astype(np.int64)
                            - np.trunc(u * alpha).astype(np.int64))
    if out > 0:
        starts[..., -1] = size - kernel
    return starts


class FractionalMaxPool(Function):
    """Forward: the per-plane window kernel; backward routes to the kept indices."""

    @staticmethod
    def forward(ctx, x, *, view, out_view, out_shape, starts, sizes, kernel):
        B, S, C = view
        xk = np.ascontiguousarray(x).reshape(view)
        out = np.empty(out_view, dtype=x.dtype)
        indices = np.empty(out_view, dtype=np.int64)
        n_threads = _config.kernel_threads(B * C, xk.size + 2 * out.size)
        if out.size:
            pool_fractional.fractional_max_forward(xk, out, indices, *starts, *sizes, *kernel,
                                                   n_threads)
        if ctx.requires_grad:
            ctx.indices, ctx.view, ctx.in_shape = indices, view, x.shape
        return out.reshape(out_shape), indices.reshape(out_shape)

    @staticmethod
    def backward(ctx, grad, grad_indices=None):
        indices = ctx.indices
        B, S, C = ctx.view
        g = np.ascontiguousarray(grad).reshape(indices.shape)
        grad_in = np.zeros(ctx.view, dtype=g.dtype)
        if indices.size:
            n_threads = _config.kernel_threads(B * C, grad_in.size + 2 * g.size)
            pool_fractional.fractional_max_backward(g, indices, grad_in, n_threads)
        return grad_in.reshape(ctx.in_shape)


def _output_sizes(op, rank, spatial, kernel, output_size, output_ratio):
    if output_size is None and output_ratio is None:
        raise ValueError(f"{op}: give output_size or output_ratio")
    if output_size is not None and output_ratio is not None:
        raise ValueError(f"{op}: give only one of output_size and output_ratio")
    if output_size is not None:
        sizes = int_tuple(output_size, rank, "output_size", op, 0, INT32_PLANE_LIMIT)
    else:
        if isinstance(output_ratio, (tuple, list)) and len(output_ratio) in (1, rank):
            ratios = tuple(output_ratio) * (rank if len(output_ratio) == 1 else 1)
        else:
            ratios = (output_ratio,) * rank
        for r in ratios:
            if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float, np.integer,
                                                                    np.floating)):
                raise TypeError(f"{op}: output_ratio must be a number or a tuple of {rank} "
                                f"numbers, got {output_ratio!r}")
            try:
                finite = math.isfinite(float(r)) and float(r) > 0
            except OverflowError:      # an int too large for a float
                finite = False
            if not finite:
                raise ValueError(f"{op}: output_ratio must be a finite number > 0, got "
                                 f"{output_ratio!r}")
        # PyTorch: int(input size * ratio), truncated
        sizes = tuple(int(n * float(r)) for n, r in zip(spatial, ratios))
    # PyTorch 2.13's limits: 2-d output + kernel - 1 <= input, 3-d output + kernel <= input
    # (its 3-d check is one stricter; minipool follows each)
    slack = 1 if rank == 2 else 0
    for n, o, k in zip(spatial, sizes, kernel):
        if o + k - slack > n:
            rule = "output + kernel - 1 <= input" if rank == 2 else \
                "output + kernel <= input (PyTorch's 3-d rule)"
            raise ValueError(
                f"{op}: output_size {tuple(sizes)} with kernel_size {tuple(kernel)} is too large "
                f"for input size {tuple(spatial)}: need {rule} on every axis")
    return sizes


def _samples(op, samples, rank, n_batch, channels, dtype, generator, in_shape):
    shape = (n_batch, channels, rank)
    if samples is None:
        rng = _random.resolve(generator, op)
        return rng.random(shape, dtype=dtype)
    if generator is not None:
        raise ValueError(f"{op}: give _random_samples or generator, not both")
    u = samples.numpy() if isinstance(samples, Tensor) else samples
    if not isinstance(u, np.ndarray):
        raise TypeError(f"{op}: _random_samples must be a tensor or array of shape {shape}, "
                        f"got {type(samples).__name__}")
    if u.shape != shape:
        raise ValueError(f"{op}: _random_samples must have shape (N, C, {rank}) = {shape} "
                         f"for an input of shape {tuple(in_shape)}, got {u.shape}")
    if u.dtype != dtype:
        raise TypeError(f"{op}: _random_samples dtype {u.dtype} must equal the input's "
                        f"dtype {dtype} (as in PyTorch)")
    if u.size and not (np.all(u >= 0) and np.all(u <= 1)):  # NaN fails too
        bad = u[~((u >= 0) & (u <= 1))].flat[0]
        raise ValueError(f"{op}: _random_samples must lie in [0, 1] (U[0, 1) draws), "
                         f"found {bad}")
    return u


def _fractional(op, rank, input, kernel_size, output_size, output_ratio, return_indices,
                _random_samples, generator, data_format):
    x = as_tensor(input)
    check_dtype(op, x.dtype, FLOAT_DTYPES)
    channels_last = parse_data_format(op, data_format)
    layout = layout_of(op, x.shape, rank, channels_last, zero_size="planes")
    kernel = int_tuple(kernel_size, rank, "kernel_size", op, 1, INT32_PLANE_LIMIT)
    spatial = layout.spatial
    for n, k in zip(spatial, kernel):
        if k > n:
            raise ValueError(f"{op}: kernel_size {kernel} is larger than the input {spatial}")
    out = _output_sizes(op, rank, spatial, kernel, output_size, output_ratio)
    shape = x.shape
    if channels_last:
        n_batch, channels = (shape[0] if layout.batched else 1), shape[-1]
    else:
        n_batch, channels = (shape[0] if layout.batched else 1), shape[-rank - 1]
    u = _samples(op, _random_samples, rank, n_batch, channels, x.dtype, generator, shape)
    # PyTorch's sample order per plane: (W, H) in 2-d, (D, H, W) in 3-d
    axis_sample = (1, 0) if rank == 2 else (0, 1, 2)
    planes = n_batch * channels
    starts = [interval_starts(u[:, :, a].reshape(planes), n, o, k, x.dtype)
              for a, n, o, k in zip(axis_sample, spatial, out, kernel)]
    sizes, kernel3 = (1,) * (3 - rank) + tuple(spatial), (1,) * (3 - rank) + kernel
    starts = [np.zeros((planes, 1), dtype=np.int64)] * (3 - rank) + starts
    # planes p = n * C + c of the kernel's (B, S, C) view are exactly u's (n, c) order
    values, indices = FractionalMaxPool.apply(
        x, view=layout.view, out_view=layout.out_view(out), out_shape=layout.out_shape(out),
        starts=[np.ascontiguousarray(s) for s in starts], sizes=sizes, kernel=kernel3)
    if return_indices:
        return values, indices
    return values


def fractional_max_pool2d(input: TensorLike, kernel_size: IntOrTuple,
                          output_size: Optional[IntOrTuple] = None,
                          output_ratio: Optional[Union[float, Tuple[float, ...]]] = None,
                          return_indices: bool = False,
                          _random_samples: Optional[TensorLike] = None,
                          generator: GeneratorLike = None,
                          data_format: Optional[str] = None) -> PoolOutput:
    """Fractional max pooling of (C, H, W) or (N, C, H, W) (or NHWC with
    ``data_format="channels_last"``): whole ``kernel_size`` windows at
    pseudo-random increasing starts, one sequence per plane and axis.

    Give ``output_size`` (ints; 0 gives an empty output, as PyTorch) or
    ``output_ratio`` (each > 0; output = ``int(input * ratio)``; a single number
    is taken for both axes, where PyTorch's functional form needs a tuple).
    ``_random_samples`` (N, C, 2) in [0, 1], the input's dtype (axis order W, H),
    reproduces PyTorch's windows exactly; else they come from ``generator``.
    Indices are flat positions ``h * W + w`` in the input plane.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.arange(25.0).reshape(1, 1, 5, 5)
    >>> u = mp.tensor([[[0.5, 0.5]]])
    >>> F.fractional_max_pool2d(x, 2, output_size=3, _random_samples=u).numpy()[0, 0]
    array([[ 6.,  8.,  9.],
           [16., 18., 19.],
           [21., 23., 24.]], dtype=float32)
    """
    return _fractional("fractional_max_pool2d", 2, input, kernel_size, output_size, output_ratio,
                       return_indices, _random_samples, generator, data_format)


def fractional_max_pool3d(input: TensorLike, kernel_size: IntOrTuple,
                          output_size: Optional[IntOrTuple] = None,
                          output_ratio: Optional[Union[float, Tuple[float, ...]]] = None,
                          return_indices: bool = False,
                          _random_samples: Optional[TensorLike] = None,
                          generator: GeneratorLike = None,
                          data_format: Optional[str] = None) -> PoolOutput:
    """Fractional max pooling of (C, D, H, W) or (N, C, D, H, W); see
    :func:`fractional_max_pool2d`.  ``_random_samples`` is (N, C, 3), axis
    order D, H, W; indices are ``(d * H + h) * W + w``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.arange(27.0).reshape(1, 3, 3, 3)
    >>> F.fractional_max_pool3d(x, 2, output_size=1, generator=0).numpy().ravel()
    array([26.], dtype=float32)
    """
    return _fractional("fractional_max_pool3d", 3, input, kernel_size, output_size, output_ratio,
                       return_indices, _random_samples, generator, data_format)
