"""Upsampling ops: ``interpolate`` (nearest, nearest-exact, linear, bilinear,
bicubic, trilinear, area), the ``upsample*`` helpers and pixel (un)shuffle.

PyTorch 2.x is the contract (docs/semantics.md sections 10-17).  A call builds,
for each spatial axis, a small table with PyTorch's formulas *and* its float
precision: source indices for the nearest modes, source indices plus weights
("taps") for the linear family and bicubic.  The Cython kernels in
``minipool._kernels.upsampling`` then only gather and multiply-add; the
backward runs the transposed tables.  Tables are cached per axis.

Where PyTorch disagrees with itself, minipool follows PyTorch's main NCHW
kernel and keeps the backward the exact transpose of its own forward:

* nearest: ``src = min(floor(dst * scale), in - 1)``, with ``scale`` and the
  product in the input's precision (float32 or float64) and the floor taken
  after rounding to float32 (``floorf``), as ATen's generic kernel does.
  ATen's 2-D kernel for small outputs (H_out + W_out <= 128), its
  channels_last kernels and all its nearest backward kernels use another
  index function (float32 scale, plus shortcuts for out == in and
  out == 2 * in); the two differ for a few fractional factors, e.g. 5 -> 10
  with scale_factor=2.1 (the "2.1" scale says floor(o / 2.1), the shortcut
  says o // 2).  In those cases PyTorch's gradient is not the derivative of
  its own forward; minipool's is.

Also copied from PyTorch's x86-64 build: the half-pixel coordinate
``scale * (dst + 0.5) - 0.5`` is rounded once (its compiler emits a fused
multiply-add), so float32 linear weights and nearest-exact indices are
bit-identical to PyTorch's.  ``area`` is adaptive average pooling, done by the
pooling family's op.
"""
import functools
import math
from typing import Optional, Tuple, Union

import numpy as np

from minipool._config import kernel_threads
from minipool._kernels import upsampling as _k
from minipool._typing import IntOrTuple, TensorLike
from minipool._validate import int_tuple, is_int, is_real, parse_data_format, single_int
from minipool.ops._layout import Layout
from minipool.ops.elementwise import as_tensor
from minipool.ops.shape import permute, reshape
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
           "pixel_shuffle", "pixel_unshuffle", "repeat_upsample", "upsampling2d",
           "upsampling2d_arguments", "channel_shuffle"]

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
MAX_SIDE = 2 ** 31 - 1  # longest output axis (PyTorch's int32 geometry limit; tables are O(side))
ALLOCATION_LIMIT = 2 ** 62  # bytes; NumPy refuses anything near 2**63 with an unnamed error
_INTERPOLATING = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}  # mode -> input rank
_NEAREST_DTYPES = FLOAT_DTYPES + (np.dtype(np.uint8),)  # PyTorch also gathers uint8 images


# --------------------------------------------------------------------------- argument rules
def _per_axis(value, n, name):
    """``value`` (scalar or sequence) as an n-tuple, checking the length."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"interpolate: {name} {tuple(value)} has {len(value)} entries but the "
                             f"input has {n} spatial dimension(s)")
        return tuple(value)
    return (value,) * n


def check_output_sides(op, name, value, sides):
    """Refuse output axes longer than MAX_SIDE, naming the argument that asked for them."""
    for side in sides:
        if side > MAX_SIDE:
            raise ValueError(f"{op}: {name}={value!r} asks for an output axis of length {side}; "
                             f"output axes must be <= {MAX_SIDE}")


def output_size_and_scales(in_sizes, size, scale_factor, recompute_scale_factor, mode):
    """Output sizes and the scale factors the kernels see (None = use in/out).

    PyTorch's rules: exactly one of ``size`` and ``scale_factor``; the output
    is ``floor(in * scale_factor)``; the given factor is used as is unless
    ``recompute_scale_factor`` is true (always for ``area``), then in/out.
    """
    n = len(in_sizes)
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor, "
                         f"got size={size!r} and scale_factor={scale_factor!r}")
    flag_ok = recompute_scale_factor is None or isinstance(recompute_scale_factor, (bool, np.bool_))
    if not flag_ok:
        raise TypeError("interpolate: recompute_scale_factor must be None, True or False, "
                        f"got {recompute_scale_factor!r}")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("interpolate: recompute_scale_factor=True is meaningless with an "
                             "explicit size; pass scale_factor instead")
        sizes = _per_axis(size, n, "size")
        for s in sizes:
            if not is_int(s):
                raise TypeError(f"interpolate: size entries must be ints, got {size!r}")
            if s <= 0:
                raise ValueError(f"interpolate: size entries must be >= 1, got {size!r}")
        check_output_sides("interpolate", "size", size, sizes)
        return tuple(int(s) for s in sizes), (None,) * n
    factors = _per_axis(scale_factor, n, "scale_factor")
    for f in factors:
        if not is_real(f):
            raise TypeError(f"interpolate: scale_factor must be a number or a tuple of numbers, "
                            f"got {scale_factor!r}")
        if not (math.isfinite(f) and f > 0):
            raise ValueError(f"interpolate: scale_factor must be finite and > 0, "
                             f"got {scale_factor!r}")
    factors = tuple(float(f) for f in factors)
    check_output_sides("interpolate", "scale_factor", scale_factor,
                       (i * f for i, f in zip(in_sizes, factors)))
    out = tuple(int(math.floor(i * f)) for i, f in zip(in_sizes, factors))
    for i, f, o in zip(in_sizes, factors, out):
        if o < 1:
            raise ValueError(f"interpolate: scale_factor {f} turns an input size of {i} into an "
                             f"output size of {o}; the output size must be >= 1")
    if recompute_scale_factor or mode == "area":
        return out, (None,) * n
    return out, factors


# --------------------------------------------------------------------------- per-axis formulas
# They mirror ATen's UpSample.h: every step happens in `ft`, the input's
# precision (float32 or float64), and every floor is floorf (after rounding to
# float32), because that decides which source pixel is picked.
def _scale(n_in, n_out, scale_factor, align_corners, ft):
    """Source step per output index (ATen's area_pixel_compute_scale)."""
    if align_corners:
        return ft(n_in - 1) / ft(n_out - 1) if n_out > 1 else ft(0)
    if scale_factor is not None:
        return ft(1.0 / scale_factor)
    return ft(n_in) / ft(n_out)


def _source_coordinate(scale, n_out, align_corners, clamp_negative, ft):
    dst = np.arange(n_out).astype(ft)
    if align_corners:
        return scale * dst
    # ATen's compiled kernels fuse scale * (dst + 0.5) - 0.5 into one multiply-add (one
    # rounding).  In float32 that matters (the coordinate's last bit moves the weights by
    # ~1e-6); float64 holds the exact float32 product, so rounding once emulates the fma.
    # For float64 inputs the difference is ~1e-16 and never changes a floorf'd index.
    src = (scale.astype(np.float64) * (dst + ft(0.5)).astype(np.float64) - 0.5).astype(ft)
    return np.maximum(src, ft(0)) if clamp_negative else src


def _floorf(values):
    return np.floor(values.astype(np.float32)).astype(np.intp)


def nearest_source(n_in, n_out, scale_factor, exact, ft):
    """Source index of each output index along one axis, nearest or nearest-exact."""
    scale = _scale(n_in, n_out, scale_factor, False, ft)
    if exact:
        # half-pixel centre, then "+ 0.5" with a double literal before the floorf
        src = _source_coordinate(scale, n_out, False, True, ft).astype(np.float64) + 0.5
    else:
        src = scale * np.arange(n_out).astype(ft)
    return np.minimum(_floorf(src), n_in - 1)


def _fused(a, b, c):
    """a * b + c rounded once, like a float32 fused multiply-add (exact in float64)."""
    if np.asarray(b).dtype != np.float32:
        return a * b + c
    return (np.float64(a) * np.asarray(b, np.float64) + np.float64(c)).astype(np.float32)


def _cubic_near(t, a):  # Keys' kernel for |x| <= 1
    return ((a + 2) * t - (a + 3)) * t * t + 1


def _cubic_far(t, a):  # Keys' kernel for 1 < |x| < 2; ATen's build fuses the first two steps
    return _fused(_fused(a, t, -5 * a), t, 8 * a) * t - 4 * a


def linear_taps(n_in, n_out, scale_factor, align_corners, cubic, ft):
    """(idx, w) of shape (n_out, K): out[o] = sum_k w[o, k] * in[idx[o, k]]; K = 2 or 4."""
    o = np.arange(n_out)
    if not cubic and n_out == n_in:
        # ATen copies (weights 1 and 0 on the same pixel): inf * 0 still gives NaN there
        return np.stack([o, o], 1).astype(np.intp), np.stack(
            [np.ones(n_out, ft), np.zeros(n_out, ft)], 1)
    scale = _scale(n_in, n_out, scale_factor, align_corners, ft)
    src = _source_coordinate(scale, n_out, align_corners, not cubic, ft)
    i0 = np.minimum(_floorf(src), n_in - 1)
    t = np.clip(src - i0.astype(ft), ft(0), ft(1))
    if not cubic:
        i1 = i0 + (i0 < n_in - 1)
        return np.stack([i0, i1], 1).astype(np.intp), np.stack([ft(1) - t, t], 1)
    a = ft(-0.75)
    one = ft(1)
    w = np.stack([_cubic_far(t + one, a), _cubic_near(t, a),
                  _cubic_near(one - t, a), _cubic_far((one - t) + one, a)], 1)
    idx = np.clip(i0[:, None] + np.arange(-1, 3)[None, :], 0, n_in - 1)
    return idx.astype(np.intp), w.astype(ft)


# --------------------------------------------------------------------------- antialiasing
# PyTorch's antialiased bilinear/bicubic (Pillow's filters): when an axis
# shrinks by ``scale`` = in/out > 1, the filter widens by ``scale`` (support =
# K/2 * scale, K = 2 linear / 4 cubic) and is evaluated at
# (j - centre + 0.5) / scale; the weights of each output are normalised to sum
# 1.  Upscaling keeps the plain support K/2 (then it equals no antialias up to
# rounding).  ``align_corners`` changes only the scale ((in-1)/(out-1)); the
# centre stays ``scale * (o + 0.5)``.  Every step is done in ATen's precision.
def _fma(a, b, c, ft):
    """a * b + c rounded once in ``ft`` (the C library's fma; ATen's build fuses these)."""
    shape = np.broadcast_shapes(np.shape(a), np.shape(b), np.shape(c))
    a, b, c = (np.ascontiguousarray(np.broadcast_to(np.asarray(v, ft), shape))
               for v in (a, b, c))
    out = np.empty(shape, ft)
    _k.fma_arrays(a.ravel(), b.ravel(), c.ravel(), out.reshape(-1))
    return out


def aa_filter(x, cubic, ft):
    """PyTorch's antialias filter on |x| (triangle, or Keys' cubic with a = -0.5), in ``ft``
    with the multiply-adds of the cubic fused as in ATen's x86-64 build."""
    x = np.abs(np.asarray(x, ft))
    if not cubic:
        return np.where(x < 1, ft(1) - x, ft(0)).astype(ft)
    a = ft(-0.5)
    near = _fma(_fma(a + 2, x, -(a + 3), ft) * x, x, ft(1), ft)
    far = _fma(_fma(_fma(a, x, -5 * a, ft), x, 8 * a, ft), x, -4 * a, ft)
    return np.where(x < 1, near, np.where(x < 2, far, ft(0))).astype(ft)


def aa_taps(n_in, n_out, scale_factor, align_corners, cubic, ft):
    """(start, count, w): output o = sum_j w[o, j] * in[start[o] + j], j < count[o];
    ``w`` is zero-padded to the widest window (ATen's ceil(support) * 2 + 1 taps)."""
    scale = _scale(n_in, n_out, scale_factor, align_corners, ft)
    half = 2.0 if cubic else 1.0
    wide = float(scale) >= 1.0
    support = ft(half * float(scale)) if wide else ft(half)
    width = int(math.ceil(support)) * 2 + 1
    invscale = ft(1.0 / float(scale)) if wide else ft(1)
    centre = (float(scale) * (np.arange(n_out) + 0.5)).astype(ft)
    # int64 casts truncate toward zero, as C's static_cast does
    lo = np.trunc((centre - support).astype(np.float64) + 0.5).astype(np.int64)
    hi = np.trunc((centre + support).astype(np.float64) + 0.5).astype(np.int64)
    start = np.maximum(lo, 0)
    count = np.clip(np.minimum(hi, n_in) - start, 0, width)
    j = np.arange(width)
    cell = (start[:, None] + j[None, :]).astype(ft)
    arg = (((cell - centre[:, None]).astype(np.float64) + 0.5) * float(invscale)).astype(ft)
    inside = j[None, :] < count[:, None]
    w = np.where(inside, aa_filter(arg, cubic, ft), ft(0)).astype(ft)
    total = np.zeros(n_out, ft)
    for k in range(width):  # ATen sums the weights one by one in ft
        total = (total + w[:, k]).astype(ft)
    nz = total != 0
    w[nz] = (w[nz] / total[nz, None]).astype(ft)
    return start.astype(np.intp), count.astype(np.intp), np.ascontiguousarray(w, dtype=ft)


class AATapAxis:
    """Ragged tap table of one axis and its CSR transpose (outputs reading each input,
    ascending)."""

    def __init__(self, n_in, start, count, w, active):
        self.n_in, self.n_out = n_in, len(start)
        self.start, self.count, self.w, self.active = start, count, w, active
        rows = np.repeat(np.arange(self.n_out), count)
        cols = np.concatenate([np.arange(s, s + c) for s, c in zip(start, count)]
                              ) if self.n_out else np.zeros(0, np.intp)
        vals = np.concatenate([w[o, :c] for o, c in enumerate(count)]) if self.n_out else w[:0, 0]
        order = np.lexsort((rows, cols))  # by input, then ascending output
        self.t_src = np.ascontiguousarray(rows[order], dtype=np.intp)
        self.t_w = np.ascontiguousarray(vals[order], dtype=w.dtype)
        counts = np.bincount(cols.astype(np.intp), minlength=n_in)
        self.t_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
        _frozen(self.start, self.count, self.w, self.t_src, self.t_w, self.t_ptr)


@functools.lru_cache(maxsize=256)
def aa_axis(n_in, n_out, scale_factor, align_corners, cubic, dtype_name):
    ft = np.dtype(dtype_name).type
    return AATapAxis(n_in, *aa_taps(n_in, n_out, scale_factor, align_corners, cubic, ft),
                     active=n_in != n_out)


class AntialiasTaps(Function):
    """Antialiased bilinear/bicubic (2-D): ragged separable taps forward, ATen's
    non-separable scatter (as a gather) backward."""

    @staticmethod
    def forward(ctx, x, axes, channels_last=False):
        layout = Layout(x.shape, x.ndim - 2, channels_last)
        ah, aw = axes
        out_spatial = (ah.n_out, aw.n_out)
        ctx.meta = (layout, out_spatial, axes)
        v = layout.view5()
        x4 = np.ascontiguousarray(x).reshape(v[0], v[2], v[3], v[4])
        if not (ah.active or aw.active):  # ATen copies when nothing changes size
            return np.array(x, copy=True)
        ov = layout.view5(out_spatial)
        out = np.empty((ov[0], ov[2], ov[3], ov[4]), dtype=x.dtype)
        threads = kernel_threads(x4.shape[0], x4.size + out.size)
        rows = x4.shape[1] * out.shape[2] * x4.shape[3] if (ah.active and aw.active) else 0
        work = np.empty((threads, rows + 1), dtype=x.dtype)
        vec = 16 // x.dtype.itemsize  # ATen's vectorised in-order adds: 4 float32, 2 float64
        _k.aa_forward(x4, out, work, ah.start, ah.count, ah.w, ah.active,
                      aw.start, aw.count, aw.w, aw.active, vec, threads)
        return out.reshape(layout.out_shape(out_spatial))

    @staticmethod
    def backward(ctx, grad):
        layout, out_spatial, (ah, aw) = ctx.meta
        ov = layout.view5(out_spatial)
        g4 = np.ascontiguousarray(grad).reshape(ov[0], ov[2], ov[3], ov[4])
        v = layout.view5()
        gx = np.empty((v[0], v[2], v[3], v[4]), dtype=g4.dtype)
        threads = kernel_threads(gx.shape[0], gx.size + g4.size)
        _k.aa_backward(g4, gx, ah.t_ptr, ah.t_src, ah.t_w, aw.t_ptr, aw.t_src, aw.t_w, threads)
        return gx.reshape(layout.shape), None, None


# --------------------------------------------------------------------------- uint8 images
# PyTorch resizes uint8 images with bilinear/bicubic in fixed point: per axis,
# float64 weights become int16 with the most fractional bits that keep the
# largest weight below 2**15; each pass (W, then H, skipping an axis whose size
# does not change) sums pixel * weight in integers from 2**(bits-1), shifts
# right by ``bits`` and clamps to 0..255.  Without antialias, the weights are
# the plain linear/cubic ones (cubic a = -0.75) with taps beyond the border
# folded onto the edge pixel.
def _cubic_keys(x, a):
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def _source_index_f64(scale, n_out, align_corners, cubic):
    """ATen's area_pixel_compute_source_index in float64, the half-pixel step fused."""
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        return scale * dst
    src = _fma(np.full(n_out, scale), dst + 0.5, np.full(n_out, -0.5), np.float64)
    return src if cubic else np.maximum(src, 0.0)


def uint8_taps(n_in, n_out, scale_factor, align_corners, cubic, antialias):
    """(start, count, int16-valued weights as int64, bits) of one axis, as ATen's uint8 path."""
    if antialias:
        start, count, w = aa_taps(n_in, n_out, scale_factor, align_corners, cubic, np.float64)
        w = np.where(np.arange(w.shape[1])[None, :] < count[:, None], w, 0.0)
    else:
        scale = float(_scale(n_in, n_out, scale_factor, align_corners, np.float64))
        size = 4 if cubic else 2
        src = _source_index_f64(scale, n_out, align_corners, cubic)
        i0 = np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), n_in - 1)  # floorf
        lam = np.clip(src - i0, 0.0, 1.0)
        half = size // 2
        unbound = i0 - half + 1
        start = np.maximum(unbound, 0)
        count = np.clip(np.minimum(i0 + half + 1, n_in) - start, 0, size)
        taps = (np.arange(size)[None, :] + 1 - half) - lam[:, None]
        raw = _cubic_keys(taps, -0.75) if cubic else np.where(np.abs(taps) < 1,
                                                             1 - np.abs(taps), 0.0)
        w = np.zeros((n_out, size))
        slot = np.clip(unbound[:, None] + np.arange(size)[None, :], 0, n_in - 1) - start[:, None]
        for k in range(size):  # border taps fold onto the edge pixel, in tap order
            np.add.at(w, (np.arange(n_out), slot[:, k]), raw[:, k])
    wmax = float(w.max()) if w.size else 0.0
    bits = 0
    while bits < 22 and int(0.5 + wmax * (1 << (bits + 1))) < (1 << 15):
        bits += 1
    v = w * (1 << bits)
    w16 = np.where(v < 0, np.trunc(v - 0.5), np.trunc(v + 0.5)).astype(np.int64)
    return start.astype(np.intp), count.astype(np.intp), w16, bits


def _uint8_pass(x, axis, start, count, w16, bits):
    """One fixed-point pass along ``axis`` of an integer array."""
    x = np.moveaxis(x, axis, -1)
    acc = np.full(x.shape[:-1] + (len(start),), 1 << (bits - 1), dtype=np.int64)
    n_in = x.shape[-1]
    for k in range(w16.shape[1]):
        col = np.minimum(start + k, n_in - 1)
        wk = np.where(k < count, w16[:, k], 0)
        acc += x[..., col].astype(np.int64) * wk
    out = np.clip(acc >> bits, 0, 255).astype(np.uint8)
    return np.moveaxis(out, -1, axis)


class Uint8Taps(Function):
    """bilinear/bicubic on uint8 images (no gradient), bit for bit PyTorch's fixed point."""

    @staticmethod
    def forward(ctx, x, passes, channels_last=False):
        out = x
        for axis, taps in passes:  # W first, then H
            out = _uint8_pass(out, axis + (0 if channels_last else 1), *taps)
        return np.array(out, copy=True) if out is x else np.ascontiguousarray(out)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("interpolate: uint8 inputs have no gradient")


def _resample_uint8(x, mode, in_sizes, out_sizes, scales, align_corners, channels_last,
                    antialias):
    cubic = mode == "bicubic"
    passes = tuple((1 + i, uint8_axis(in_sizes[i], out_sizes[i], scales[i],
                                      bool(align_corners), cubic, bool(antialias)))
                   for i in (1, 0) if in_sizes[i] != out_sizes[i])
    return Uint8Taps.apply(x, passes, channels_last)


@functools.lru_cache(maxsize=256)
def uint8_axis(n_in, n_out, scale_factor, align_corners, cubic, antialias):
    start, count, w16, bits = uint8_taps(n_in, n_out, scale_factor, align_corners, cubic,
                                         antialias)
    return _frozen(start, count, w16) + (bits,)


# --------------------------------------------------------------------------- cached tables
def _frozen(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays if len(arrays) > 1 else arrays[0]


class NearestAxis:
    """Source index per output index of one axis; ``repeat`` > 0 when it is pure replication."""

    def __init__(self, n_in, src):
        self.n_in, self.n_out = n_in, len(src)
        self.src = _frozen(np.ascontiguousarray(src, dtype=np.intp))
        factor = self.n_out // n_in
        replication = (self.n_out == factor * n_in and
                       np.array_equal(src, np.arange(self.n_out) // factor))
        self.repeat = factor if replication else 0


class TapAxis:
    """Tap table of one axis, its transpose (CSR) and what the fast paths need.

    Forward: ``out[o] = sum_k w[o, k] * in[idx[o, k]]``.  Transpose: input i
    collects ``w[e] * grad[t_src[e]]`` for e in ``t_ptr[i]:t_ptr[i+1]``, in
    ascending output order (the order a scatter-add would use).
    """

    def __init__(self, n_in, idx, w, active=True):
        self.n_in = n_in
        self.idx = np.ascontiguousarray(idx, dtype=np.intp)
        self.w = np.ascontiguousarray(w)
        self.n_out, self.K = self.idx.shape
        self.active = active
        self.need = np.zeros(n_in, np.uint8)
        self.need[self.idx.ravel()] = 1
        flat = self.idx.ravel()
        order = np.argsort(flat, kind="stable")
        self.t_src = (order // self.K).astype(np.intp)
        self.t_w = np.ascontiguousarray(self.w.ravel()[order])
        counts = np.bincount(flat, minlength=n_in)
        self.t_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
        self.x2 = self._x2_forward_range()
        self.x2_t = self._x2_transpose_range() if self.x2[0] < self.x2[1] else (0, 0)
        _frozen(self.idx, self.w, self.need, self.t_src, self.t_w, self.t_ptr)

    @classmethod
    def identity(cls, n):
        return cls(n, np.arange(n)[:, None], np.ones((n, 1)), active=False)

    def _x2_forward_range(self):
        """Pairs m whose outputs 2m, 2m+1 read (m-1, m), (m, m+1) with one fixed weight set."""
        n = self.n_in
        if self.K != 2 or self.n_out != 2 * n or n < 3:
            return (0, 0)
        m = np.arange(1, n - 1)
        idx, w = self.idx, self.w
        ok = (np.array_equal(idx[2 * m], np.stack([m - 1, m], 1))
              and np.array_equal(idx[2 * m + 1], np.stack([m, m + 1], 1))
              and np.all(w[2 * m] == w[2]) and np.all(w[2 * m + 1] == w[3]))
        return (1, n - 1) if ok else (0, 0)

    def _x2_transpose_range(self):
        """Inputs i whose CSR row is exactly outputs 2i-1 .. 2i+2 with one fixed weight set."""
        n = self.n_in
        lo, hi = 2, n - 2
        if hi <= lo:
            return (0, 0)
        i = np.arange(lo, hi)
        start = self.t_ptr[i]
        ok = np.all(self.t_ptr[i + 1] - start == 4)
        if ok:
            rows = start[:, None] + np.arange(4)
            ok = (np.array_equal(self.t_src[rows], 2 * i[:, None] + np.arange(-1, 3))
                  and np.all(self.t_w[rows] == self.t_w[rows[0]]))
        return (lo, hi) if ok else (0, 0)


@functools.lru_cache(maxsize=512)
def nearest_axis(n_in, n_out, scale_factor, exact, dtype_name):
    ft = np.dtype(dtype_name).type
    return NearestAxis(n_in, nearest_source(n_in, n_out, scale_factor, exact, ft))


@functools.lru_cache(maxsize=8)
def _identity_nearest(n):
    return NearestAxis(n, np.arange(n))


@functools.lru_cache(maxsize=512)
def tap_axis(n_in, n_out, scale_factor, align_corners, cubic, dtype_name):
    ft = np.dtype(dtype_name).type
    return TapAxis(n_in, *linear_taps(n_in, n_out, scale_factor, align_corners, cubic, ft))


@functools.lru_cache(maxsize=16)
def _identity_taps(n, dtype_name):
    ax = TapAxis.identity(n)
    ax.w = _frozen(ax.w.astype(dtype_name))
    ax.t_w = _frozen(ax.t_w.astype(dtype_name))
    return ax


def _pad_axes(axes, identity):
    """Three axes (D, H, W): the missing outer ones of 1-D/2-D inputs are identities."""
    return (identity(),) * (3 - len(axes)) + tuple(axes)


# --------------------------------------------------------------------------- Functions
class _Separable(Function):
    """The frame of the separable resamplers (``Nearest``, ``Taps``): view the input as
    (planes, D, H, W, C) blocks, fill a missing outer axis with an identity table, run the
    subclass's kernel on per-axis tables, and run its transposed kernel backward."""

    @staticmethod
    def forward(ctx, x, axes, channels_last=False, layout=None):
        if layout is None:  # callers that already built the input's Layout pass it
            layout = Layout(x.shape, x.ndim - 2, channels_last)
        out_spatial = tuple(a.n_out for a in axes)
        axes3 = _pad_axes(axes, lambda: ctx._identity_axis(x.dtype))
        ctx.meta = (layout, out_spatial, axes3)
        if x.dtype not in FLOAT_DTYPES:  # uint8 images (nearest modes only): no kernel, no gradient
            out = ctx._integer_forward(x, layout, axes3)
        else:
            x5 = np.ascontiguousarray(x).reshape(layout.view5())
            out = np.empty(layout.view5(out_spatial), dtype=x.dtype)
            threads = kernel_threads(x5.shape[0], x5.size + out.size)
            ctx._kernel_forward(x5, out, axes3, threads)
        return out.reshape(layout.out_shape(out_spatial))

    @staticmethod
    def backward(ctx, grad):
        layout, out_spatial, axes3 = ctx.meta
        g5 = np.ascontiguousarray(grad).reshape(layout.view5(out_spatial))
        gx = np.empty(layout.view5(), dtype=g5.dtype)
        threads = kernel_threads(gx.shape[0], gx.size + g5.size)
        ctx._kernel_backward(g5, gx, axes3, threads)
        return gx.reshape(layout.shape), None, None


class Nearest(_Separable):
    """Nearest / nearest-exact: a gather forward, a scatter-add backward."""

    def _identity_axis(self, dtype):
        return _identity_nearest(1)

    def _integer_forward(self, x, layout, axes3):
        d, h, w = axes3  # a plain NumPy gather
        picked = x.reshape(layout.view5())[:, d.src[:, None, None], h.src[:, None], w.src]
        return np.ascontiguousarray(picked)

    def _kernel_forward(self, x5, out, axes3, threads):
        d, h, w = axes3
        _k.nearest_forward(x5, out, d.src, h.src, w.src, w.repeat, threads)

    def _kernel_backward(self, g5, gx, axes3, threads):
        d, h, w = axes3
        _k.nearest_backward(g5, gx, d.src, h.src, w.src, w.repeat, threads)


class Taps(_Separable):
    """Linear family and bicubic: separable tap tables, transposed for the backward."""

    def _identity_axis(self, dtype):
        return _identity_taps(1, dtype.name)

    def _kernel_forward(self, x5, out, axes3, threads):
        d, h, w = axes3
        work = np.empty((threads, _scratch(x5.shape, out.shape)), dtype=x5.dtype)
        _k.taps_forward(x5, out, work,
                        d.idx, d.w, d.need, d.active,
                        h.idx, h.w, h.need, h.active,
                        w.idx, w.w, w.active, w.x2[0], w.x2[1], threads)

    def _kernel_backward(self, g5, gx, axes3, threads):
        d, h, w = axes3
        work = np.empty((threads, _scratch(gx.shape, g5.shape)), dtype=g5.dtype)
        _k.taps_backward(g5, gx, work,
                         d.t_ptr, d.t_src, d.t_w, d.active,
                         h.t_ptr, h.t_src, h.t_w, h.active,
                         w.t_ptr, w.t_src, w.t_w, w.active, w.x2_t[0], w.x2_t[1], threads)


def _scratch(in5, out5):
    """Per-thread scratch of the tap kernels: (D, H, W_out, C) and (D, H_out, W_out, C) buffers."""
    _, d, h, _, c = in5
    _, _, oh, ow, _ = out5
    return (d * h * ow + d * oh * ow) * c + 1


def _area(x, out_sizes, data_format):
    """``area`` mode is adaptive average pooling (docs/semantics.md section 14): the pooling
    family's op, kernels and backward."""
    from minipool.ops import pooling

    pool = (pooling.adaptive_avg_pool1d, pooling.adaptive_avg_pool2d,
            pooling.adaptive_avg_pool3d)[len(out_sizes) - 1]
    return pool(x, out_sizes, data_format=data_format)


# --------------------------------------------------------------------------- public API
def _check_dtype(x, mode):
    uint8_ok = mode in ("nearest", "nearest-exact", "bilinear", "bicubic")
    allowed = _NEAREST_DTYPES if uint8_ok else FLOAT_DTYPES
    if x.dtype not in allowed:
        names = ", ".join(d.name for d in allowed)
        raise TypeError(f"interpolate: mode={mode!r} needs an input of dtype {names}, "
                        f"got {x.dtype}")


def interpolate(input: TensorLike, size: Optional[IntOrTuple] = None,
                scale_factor: Optional[Union[float, Tuple[float, ...]]] = None,
                mode: str = "nearest", align_corners: Optional[bool] = None,
                recompute_scale_factor: Optional[bool] = None, antialias: bool = False,
                data_format: str = "channels_first") -> Tensor:
    """Resize the spatial dimensions of an (N, C, *spatial) tensor, as PyTorch does.

    ``mode`` is one of nearest, nearest-exact, linear (3-D input), bilinear and
    bicubic (4-D), trilinear (5-D) or area (adaptive average pooling).  Give
    exactly one of ``size`` (int or per-axis tuple) and ``scale_factor`` (number
    or per-axis tuple; output = floor(in * factor), down- or upsampling).
    ``align_corners`` (linear modes only, default False) maps the corner pixel
    centres onto each other; ``recompute_scale_factor=True`` uses in/out as the
    step instead of 1/scale_factor.  4-D inputs may be ``data_format=
    "channels_last"`` (NHWC); the result then is NHWC too.  ``antialias=True``
    (bilinear and bicubic, 4-D) applies PyTorch's Pillow-style filter, widened by the
    scale when an axis shrinks.  uint8 images are accepted by nearest, nearest-exact,
    bilinear and bicubic (PyTorch's fixed-point rounding; no gradient).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    >>> F.interpolate(x, scale_factor=2).numpy()[0, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]], dtype=float32)
    >>> F.interpolate(mp.tensor([[[0.0, 10.0]]]), size=4, mode="linear").numpy()
    array([[[ 0. ,  2.5,  7.5, 10. ]]], dtype=float32)
    """
    x = as_tensor(input)
    channels_last = parse_data_format("interpolate", data_format)
    if channels_last and x.ndim != 4:
        raise ValueError(f"interpolate: data_format='channels_last' needs a 4-D (N, H, W, C) "
                         f"input, got {x.ndim}-D")
    if mode not in MODES:
        raise ValueError(f"interpolate: mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not isinstance(antialias, (bool, np.bool_)):
        raise TypeError(f"interpolate: antialias must be True or False, got {antialias!r}")
    if antialias and (mode not in ("bilinear", "bicubic") or x.ndim != 4):
        raise ValueError(f"interpolate: antialias=True is restricted to the bilinear and bicubic "
                         f"modes and needs a 4-D input, got mode={mode!r} with a {x.ndim}-D input")
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"interpolate: input must be 3-D, 4-D or 5-D (N, C, *spatial), "
                         f"got {x.ndim}-D with shape {x.shape}")
    if mode in _INTERPOLATING and x.ndim != _INTERPOLATING[mode]:
        raise ValueError(f"interpolate: mode={mode!r} needs a {_INTERPOLATING[mode]}-D input, "
                         f"got {x.ndim}-D with shape {x.shape}")
    if mode in _INTERPOLATING:
        if align_corners is None:
            align_corners = False
        elif not isinstance(align_corners, (bool, np.bool_)):
            raise TypeError(f"interpolate: align_corners must be True, False or None, "
                            f"got {align_corners!r}")
    elif align_corners is not None:
        raise ValueError(f"interpolate: align_corners can only be set with the interpolating "
                         f"modes linear, bilinear, bicubic and trilinear, not mode={mode!r}")
    _check_dtype(x, mode)
    layout = Layout(x.shape, x.ndim - 2, channels_last)
    in_sizes = layout.spatial
    if min(in_sizes) < 1:
        raise ValueError(f"interpolate: the spatial dimensions of input must be >= 1, "
                         f"got shape {x.shape}")
    out_sizes, scales = output_size_and_scales(in_sizes, size, scale_factor,
                                               recompute_scale_factor, mode)
    asked = f"size={size!r}" if size is not None else f"scale_factor={scale_factor!r}"
    out_shape = layout.out_shape(out_sizes)
    if math.prod(out_shape) * x.dtype.itemsize > ALLOCATION_LIMIT:
        raise ValueError(f"interpolate: {asked} asks for an output of shape {out_shape}, more "
                         f"than can be allocated")
    if mode == "area" and math.prod(out_sizes) > MAX_SIDE:
        # Checked here so the message names the caller's argument, not adaptive pooling's.
        raise ValueError(f"interpolate: {asked} asks for area-mode planes of "
                         f"{math.prod(out_sizes)} cells, more than the limit {MAX_SIDE}")
    try:
        return _resample(x, mode, in_sizes, out_sizes, scales, align_corners, channels_last,
                         data_format, bool(antialias), layout)
    except MemoryError:
        raise ValueError(f"interpolate: {asked} asks for an output of shape {out_shape}, which "
                         f"cannot be allocated") from None


def _resample(x, mode, in_sizes, out_sizes, scales, align_corners, channels_last, data_format,
              antialias=False, layout=None):
    if mode == "area":
        return _area(x, out_sizes, data_format)
    if mode in ("bilinear", "bicubic") and x.dtype == np.uint8:
        return _resample_uint8(x, mode, in_sizes, out_sizes, scales, align_corners,
                               channels_last, antialias)
    if antialias:
        axes = tuple(aa_axis(i, o, s, bool(align_corners), mode == "bicubic", x.dtype.name)
                     for i, o, s in zip(in_sizes, out_sizes, scales))
        return AntialiasTaps.apply(x, axes, channels_last)
    dtype_name = "float64" if x.dtype == np.float64 else "float32"  # uint8 indexes like float32
    if mode in ("nearest", "nearest-exact"):
        exact = mode == "nearest-exact"
        axes = tuple(nearest_axis(i, o, s, exact, dtype_name)
                     for i, o, s in zip(in_sizes, out_sizes, scales))
        return Nearest.apply(x, axes, channels_last, layout=layout)
    axes = tuple(tap_axis(i, o, s, bool(align_corners), mode == "bicubic", dtype_name)
                 for i, o, s in zip(in_sizes, out_sizes, scales))
    return Taps.apply(x, axes, channels_last, layout=layout)


def upsample(input: TensorLike, size: Optional[IntOrTuple] = None,
             scale_factor: Optional[Union[float, Tuple[float, ...]]] = None, mode: str = "nearest",
             align_corners: Optional[bool] = None) -> Tensor:
    """``interpolate`` under its older name (same arguments, same results).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.upsample(mp.ones(1, 1, 2, 3), scale_factor=2).shape
    (1, 1, 4, 6)
    """
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: TensorLike, size: Optional[IntOrTuple] = None,
                     scale_factor: Optional[Union[float, Tuple[float, ...]]] = None) -> Tensor:
    """Nearest-neighbour upsampling: ``interpolate(..., mode="nearest")``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.upsample_nearest(mp.tensor([[[1.0, 2.0]]]), scale_factor=2).numpy()
    array([[[1., 1., 2., 2.]]], dtype=float32)
    """
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: TensorLike, size: Optional[IntOrTuple] = None,
                      scale_factor: Optional[Union[float, Tuple[float, ...]]] = None) -> Tensor:
    """Bilinear upsampling with ``align_corners=True``, as PyTorch's helper does.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.upsample_bilinear(mp.tensor([[[[0.0, 3.0]]]]), size=(1, 4)).numpy()
    array([[[[0., 1., 2., 3.]]]], dtype=float32)
    """
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def repeat_upsample(input, factors, data_format="channels_first"):
    """Repeat each pixel ``factors[i]`` times along spatial axis i (Keras' nearest
    UpSampling): an exact copy whatever the factor, with no index arithmetic.

    >>> import minipool as mp
    >>> from minipool.ops.upsampling import repeat_upsample
    >>> repeat_upsample(mp.tensor([[[1.0, 2.0]]]), (3,)).numpy()
    array([[[1., 1., 1., 2., 2., 2.]]], dtype=float32)
    """
    x = as_tensor(input)
    channels_last = parse_data_format("repeat_upsample", data_format)
    if x.ndim not in (3, 4, 5) or (channels_last and x.ndim != 4) or len(factors) != x.ndim - 2:
        raise ValueError(f"repeat_upsample: needs one factor per spatial axis of a 3-D to 5-D "
                         f"input (4-D for channels_last), got factors {tuple(factors)} for shape "
                         f"{x.shape}")
    factors = tuple(single_int(f, "factors", "repeat_upsample") for f in factors)
    _check_dtype(x, "nearest")
    layout = Layout(x.shape, x.ndim - 2, channels_last)
    spatial = layout.spatial
    check_output_sides("repeat_upsample", "factors", factors,
                       (n * f for n, f in zip(spatial, factors)))
    axes = tuple(_repeat_axis(n, f) for n, f in zip(spatial, factors))
    try:
        return Nearest.apply(x, axes, channels_last, layout=layout)
    except MemoryError:
        raise ValueError(f"repeat_upsample: factors={factors} give an output too large to "
                         f"allocate") from None


KERAS_INTERPOLATIONS = ("nearest", "bilinear")


def upsampling2d_arguments(size, data_format, interpolation, op="UpSampling2D"):
    """Keras UpSampling2D's arguments checked and normalised:
    ``((rows, cols), "channels_last" | "channels_first", interpolation)``."""
    factors = int_tuple(size, 2, "size", op, 1, exact=True)
    if interpolation not in KERAS_INTERPOLATIONS:
        raise ValueError(f"{op}: interpolation must be 'nearest' or 'bilinear', "
                         f"got {interpolation!r}")
    channels_last = parse_data_format(op, data_format, default="channels_last")
    return factors, "channels_last" if channels_last else "channels_first", interpolation


def upsampling2d(input, size=(2, 2), data_format="channels_last", interpolation="nearest"):
    """Keras's UpSampling2D as a function: integer factors ``size`` (int or (rows, cols)),
    "nearest" (each pixel repeated: an exact copy) or "bilinear" (half-pixel centres, i.e.
    ``align_corners=False``) to exactly (H * rows, W * cols); NHWC unless
    ``data_format="channels_first"`` (None means channels_last, Keras's default).

    >>> import minipool as mp
    >>> from minipool.ops.upsampling import upsampling2d
    >>> upsampling2d(mp.tensor([[[[1.0], [2.0]]]]), (1, 2)).numpy()[0, 0, :, 0]
    array([1., 1., 2., 2.], dtype=float32)
    """
    op = "UpSampling2D"
    (fh, fw), data_format, interpolation = upsampling2d_arguments(size, data_format,
                                                                  interpolation, op)
    x = as_tensor(input)
    if x.ndim != 4:
        raise ValueError(f"{op}: expects a 4-D input, got shape {x.shape}")
    h, w = x.shape[1:3] if data_format == "channels_last" else x.shape[2:4]
    check_output_sides(op, "size", (fh, fw), (h * fh, w * fw))
    if interpolation == "nearest":
        return repeat_upsample(x, (fh, fw), data_format)
    return interpolate(x, size=(h * fh, w * fw), mode="bilinear", align_corners=False,
                       data_format=data_format)


@functools.lru_cache(maxsize=64)
def _repeat_axis(n_in, factor):
    return NearestAxis(n_in, np.arange(n_in * factor) // factor)


def pixel_shuffle(input: TensorLike, upscale_factor: int) -> Tensor:
    """Rearrange (*, C*r*r, H, W) into (*, C, H*r, W*r):
    ``out[c, h*r + i, w*r + j] = in[c*r*r + i*r + j, h, w]``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.arange(8.0).reshape(1, 8, 1, 1)
    >>> F.pixel_shuffle(x, 2).numpy()[0, 1]
    array([[4., 5.],
           [6., 7.]], dtype=float32)
    """
    x = as_tensor(input)
    r = single_int(upscale_factor, "upscale_factor", "pixel_shuffle")
    if x.ndim < 3:
        raise ValueError(f"pixel_shuffle: input must have at least 3 dimensions (*, C, H, W), "
                         f"got shape {x.shape}")
    *batch, c, h, w = x.shape
    if c % (r * r):
        raise ValueError(f"pixel_shuffle: the channel dimension ({c}) must be divisible by "
                         f"upscale_factor**2 = {r * r}")
    check_output_sides("pixel_shuffle", "upscale_factor", r, (h * r, w * r))
    nb = len(batch)
    y = reshape(x, (*batch, c // (r * r), r, r, h, w))
    y = permute(y, (*range(nb), nb, nb + 3, nb + 1, nb + 4, nb + 2))
    return reshape(y, (*batch, c // (r * r), h * r, w * r))


def pixel_unshuffle(input: TensorLike, downscale_factor: int) -> Tensor:
    """The inverse of ``pixel_shuffle``: (*, C, H*r, W*r) -> (*, C*r*r, H, W).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.arange(16.0).reshape(1, 1, 4, 4)
    >>> F.pixel_unshuffle(x, 2).shape
    (1, 4, 2, 2)
    >>> bool((F.pixel_shuffle(F.pixel_unshuffle(x, 2), 2).numpy() == x.numpy()).all())
    True
    """
    x = as_tensor(input)
    r = single_int(downscale_factor, "downscale_factor", "pixel_unshuffle")
    if x.ndim < 3:
        raise ValueError(f"pixel_unshuffle: input must have at least 3 dimensions (*, C, H, W), "
                         f"got shape {x.shape}")
    *batch, c, h, w = x.shape
    if h % r or w % r:
        raise ValueError(f"pixel_unshuffle: height ({h}) and width ({w}) must be divisible by "
                         f"downscale_factor = {r}")
    check_output_sides("pixel_unshuffle", "downscale_factor", r, (c * r * r,))
    nb = len(batch)
    y = reshape(x, (*batch, c, h // r, r, w // r, r))
    y = permute(y, (*range(nb), nb, nb + 2, nb + 4, nb + 1, nb + 3))
    return reshape(y, (*batch, c * r * r, h // r, w // r))


def channel_shuffle(input: TensorLike, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` groups (ShuffleNet's shuffle): (N, C, *) with
    channel ``g * (C // groups) + k`` moved to ``k * groups + g``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.channel_shuffle(mp.arange(6.0).reshape(1, 6, 1), 2).reshape(-1).tolist()
    [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
    """
    x = as_tensor(input)
    g = single_int(groups, "groups", "channel_shuffle", minimum=-2 ** 63)
    if g <= 0:  # PyTorch's class for it
        raise RuntimeError(f"channel_shuffle: groups must be positive, got {g}")
    if x.ndim < 3:
        raise RuntimeError(f"channel_shuffle: input must have at least 3 dimensions (N, C, *), "
                           f"got shape {x.shape}")
    n, c, *rest = x.shape
    if c % g:
        raise RuntimeError(f"channel_shuffle: the number of channels ({c}) must be divisible by "
                           f"groups ({g})")
    y = reshape(x, (n, g, c // g, *rest))
    return reshape(permute(y, (0, 2, 1, *range(3, y.ndim))), (n, c, *rest))
