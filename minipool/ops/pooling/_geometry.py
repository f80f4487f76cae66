"""Turn pooling arguments into kernel geometry: the one place for every kind.

Every pooling op passes its user arguments through here:

* ``parse_data_format`` reads the layout and ``layout_of`` checks the input
  rank and sizes and returns its ``Layout`` (``minipool.ops._layout``: the
  input viewed as ``(B, S, C)`` blocks; NCHW: B = N*C planes, C = 1; NHWC:
  B = N);
* ``int_tuple`` checks ints and tuples (kernel, stride, padding, dilation,
  output_size) and names the argument and the limit when one is wrong
  (``parse_data_format`` and ``int_tuple`` live in ``minipool._validate``,
  shared by every op);
* ``pooled_length`` and ``same_padding`` give output sizes (PyTorch's
  ceil_mode rule; TensorFlow's SAME split, for padding="same");
* ``axis_windows`` / ``adaptive_axis`` build one axis's table: first real
  cell, number of real cells and divisor factor per output position;
* ``window_plan`` / ``adaptive_plan`` put it together into a ``PoolPlan``.

The arguments are checked on every call; the ``PoolPlan`` built from the
checked values is cached, so a training loop pays for the tables once.
"""
import functools
import math

import numpy as np

from minipool._kernels.pool_windows import Path, WindowTables
from minipool._validate import ARG_LIMIT, _compact, int_tuple, parse_data_format  # noqa: F401
from minipool.ops._layout import Layout
from minipool.tensor import FLOAT_DTYPES

__all__ = ["PoolPlan", "window_plan", "adaptive_plan", "int_tuple", "layout_of",
           "parse_data_format", "check_dtype", "pooled_length", "same_padding", "MAX_DTYPES",
           "FLOAT_DTYPES"]

# PyTorch 2.13 max-pools these on the CPU; minipool's max/min kernels take the same.
MAX_DTYPES = FLOAT_DTYPES + (np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.uint8))

FAST_NONE, FAST_2X2, FAST_3X3 = 0, 1, 2
UINT8_CODE_LIMIT = 255          # uint8 ordinals 0..254; 255 means "no cell"
INT32_PLANE_LIMIT = 2**31 - 1


def _dims_name(rank):
    return {1: "L", 2: "H, W", 3: "D, H, W"}[rank]


def _size_str(shape):
    return "x".join(str(s) for s in shape)


def check_dtype(op, dtype, allowed):
    """TypeError naming the op and the dtypes it takes."""
    if np.dtype(dtype) not in allowed:
        names = ", ".join(str(d) for d in allowed)
        raise TypeError(f"{op}: input dtype {np.dtype(dtype)} is not supported (use one of {names})")


# ----------------------------------------------------------------------------- layouts
def _check_empty_dims(op, layout, zero_size):
    """PyTorch's rules for size-0 dimensions (spatial sizes are checked apart).

    "window" (max/avg/LP and the other sliding-window pools): only the batch N
    may be 0 (an unbatched input's C is a non-batch dimension);
    "planes" (adaptive max, adaptive_avg_pool3d, fractional, unpooling, which
    PyTorch runs on unbatched input as a batch of C planes): C may be 0 only
    in unbatched input; "any": C may be 0 (adaptive_avg_pool1d/2d).
    """
    if zero_size == "any":
        return
    shape = layout.shape
    channel = len(shape) - 1 if layout.channels_last else len(shape) - layout.rank - 1
    if shape[channel] != 0 or (zero_size == "planes" and not layout.batched):
        return
    raise ValueError(f"{op}: input of shape {tuple(shape)} has an empty non-batch dimension "
                     f"(dimension {channel}, the channels, is 0); only the batch dimension N may "
                     f"be 0, as in PyTorch")


def layout_of(op, shape, rank, channels_last=False, zero_size="window"):
    """Check the input rank, spatial sizes and empty dimensions (``zero_size``,
    see ``_check_empty_dims``); return its Layout."""
    if len(shape) not in (rank + 1, rank + 2):
        dims = _dims_name(rank)
        form = f"(C, {dims}) or (N, C, {dims})" if not channels_last else \
            f"({dims}, C) or (N, {dims}, C)"
        raise ValueError(f"{op}: expected a {rank + 1}-d {form} input, got a "
                         f"{len(shape)}-d input of shape {tuple(shape)}")
    layout = Layout(tuple(shape), rank, channels_last)
    if min(layout.spatial) <= 0:
        raise ValueError(f"{op}: spatial sizes must be >= 1, got input {_size_str(shape)}")
    _check_empty_dims(op, layout, zero_size)
    return layout


# ----------------------------------------------------------------------------- sizes
def pooled_length(size, kernel, stride, pad_before, pad_after, dilation, ceil_mode):
    """PyTorch's output length; with ceil_mode the last window must start inside
    the input or the left padding."""
    effective = dilation * (kernel - 1) + 1
    numerator = size + pad_before + pad_after - effective + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad_before:
        out -= 1
    return out


def same_padding(size, kernel, stride, dilation):
    """TensorFlow's SAME: ``(out, before, after)``, the odd padded cell going after."""
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + dilation * (kernel - 1) + 1 - size)
    return out, total // 2, total - total // 2


# ----------------------------------------------------------------------------- window tables
def axis_windows(size, out, kernel, stride, pad_before, pad_after, dilation, divisor):
    """One axis's table: ``(first, count, divisor factor)`` per output position.

    ``first`` is the first real cell, ``count`` how many real cells the window
    has (stepping by ``dilation``; 0 for a window that holds none).
    ``divisor`` is "one" (max, sum, LP), "count" (real cells only) or "span"
    (PyTorch's count_include_pad: the window clipped to the padded input, so
    the ceil_mode overhang past the right padding never counts).
    """
    start = np.arange(out, dtype=np.intp) * stride - pad_before
    skip = (np.maximum(0, -start) + dilation - 1) // dilation      # taps left of the input
    last = np.minimum(kernel - 1, (size - 1 - start) // dilation)  # last tap inside it
    count = np.maximum(0, last - skip + 1)
    first = np.where(count > 0, start + skip * dilation, 0)
    if divisor == "one":
        factor = np.ones(out)
    elif divisor == "count":
        factor = count.astype(np.float64)
    else:
        factor = (np.minimum(start + kernel, size + pad_after) - start).astype(np.float64)
    return first, count, factor


def adaptive_axis(size, out):
    """Adaptive windows ``[floor(i*in/out), ceil((i+1)*in/out))`` (exact integers)."""
    i = np.arange(out, dtype=np.intp)
    start = (i * size) // out
    end = -((-(i + 1) * size) // out)
    return start, end - start, (end - start).astype(np.float64)


def _regular_span(first, count, step):
    """The W-axis span the kernels' row passes take: the longest run of outputs
    whose windows are whole (the most cells) and start on a regular grid.
    Returns ``(lo, hi, origin, stride, cells)``; ``lo == hi`` when there is none."""
    cells = int(count.max())
    whole = np.flatnonzero(count == cells)
    if cells == 0 or whole.size == 0:
        return (0, 0, 0, 1, 0)
    breaks = np.flatnonzero(np.diff(whole) != 1) + 1          # contiguous runs of outputs
    best = max(np.split(whole, breaks), key=len)
    lo, hi = int(best[0]), int(best[-1]) + 1
    stride = int(first[lo + 1] - first[lo]) if hi - lo > 1 else 1
    if stride < 1 or not np.array_equal(first[lo:hi], first[lo] + stride * np.arange(hi - lo)):
        return (0, 0, 0, 1, 0)
    return (lo, hi, int(first[lo]) - lo * stride, stride, cells)


def _tiles(size, first, count, k):
    """Do this axis's windows, each ``k`` cells, cover its input exactly once?"""
    return bool((count == k).all() and len(first) * k == size
                and np.array_equal(first, k * np.arange(len(first))))


def _unrolled(fast, span, w_dilation):
    """``fast`` if the W span has the exact window shape its unrolled loops read
    (2x2: windows 2 cells at stride 2 from column 0; 3x3: 3 cells at stride 2
    from column -1), else FAST_NONE (e.g. one output column: no stride)."""
    _, _, origin, stride, cells = span
    shape = {FAST_2X2: (2, 2, 0, 1), FAST_3X3: (2, 3, -1, 1)}.get(fast)
    return fast if shape == (stride, cells, origin, w_dilation) else FAST_NONE


class PoolPlan:
    """Everything one call geometry needs: layout, window tables, output shape,
    argmax storage dtype, and the plan: which kernel path runs forward and
    backward (``Path``, decided here once; the kernels switch on it)."""

    __slots__ = ("layout", "tables", "out_spatial", "out_shape", "out_view", "code_dtype",
                 "fast", "tiled", "plane_group", "forward_path", "backward_path", "_axes")

    def __init__(self, layout, axes, fast=FAST_NONE, row_passes=True):
        # axes: per axis d, h, w: (input size, first, count, divisor factor, dilation)
        self.layout, self._axes = layout, axes
        sizes, first, count, factor, step = zip(*axes)
        self.out_spatial = tuple(len(f) for f in first)[3 - layout.rank:]
        self.out_shape = layout.out_shape(self.out_spatial)
        self.out_view = layout.out_view(self.out_spatial)
        span = _regular_span(first[2], count[2], step[2]) if row_passes else (0, 0, 0, 1, 0)
        self.fast = _unrolled(fast, span, step[2]) if row_passes else FAST_NONE
        self.tables = WindowTables(first, count, factor, sizes, step, span, self.fast)
        cells = math.prod(int(c.max()) for c in count)
        if cells <= UINT8_CODE_LIMIT:
            self.code_dtype = np.dtype(np.uint8)
        elif layout.view[1] <= INT32_PLANE_LIMIT:
            self.code_dtype = np.dtype(np.int32)
        else:
            raise ValueError(f"input planes of {layout.view[1]} cells with windows of {cells} "
                             f"cells are too large (limit {INT32_PLANE_LIMIT} cells per plane)")
        # planes with a few large windows (global pooling) are walked 8 side by side
        few_large = math.prod(self.out_spatial) <= 4 and cells >= 16
        self.plane_group = 8 if few_large and not layout.channels_last and row_passes else 1
        # 2x2 stride 2 windows covering the input exactly: backward writes every cell
        self.tiled = self.tables.whole_plane and all(
            _tiles(n, f, c, k) for n, f, c, k in zip(sizes, first, count, (1, 2, 2)))
        self.forward_path, self.backward_path = self._paths(layout.view[2] == 1)

    def _paths(self, planes):
        """(forward, backward) kernel path: the one place that picks a loop nest.
        ``planes``: the (B, S, C) view has C == 1 (NCHW, or one NHWC channel)."""
        general = Path.PATH_ROWS if planes else Path.PATH_CHANNELS
        quads = Path.PATH_QUADS_PLANE if planes else Path.PATH_QUADS_CHANNELS
        if planes and self.plane_group > 1:
            forward = Path.PATH_PLANE_GROUP
        else:
            forward = quads if self.tables.whole_plane else general
        return forward, quads if self.tiled else general

    def variant(self, fast=True, row_passes=True):
        """The same geometry with the unrolled fast paths and/or the row passes
        switched off (``variant(False, False)`` walks one window at a time): the
        plainer kernel paths, to check the others against."""
        return PoolPlan(self.layout, self._axes, self.fast if fast else FAST_NONE, row_passes)


def _trivial_axis():
    zero = np.zeros(1, dtype=np.intp)
    return (1, zero, zero + 1, np.ones(1), 1)


def _fast_kind(kernel, stride, before, after, dilation, layout):
    """FAST_2X2 / FAST_3X3 for inputs pooled over H and W only."""
    if kernel[0] != 1 or layout.rank == 1:
        return FAST_NONE
    hw = list(zip(kernel[1:], stride[1:], before[1:], after[1:], dilation[1:]))
    if all(a == (2, 2, 0, 0, 1) for a in hw):
        return FAST_2X2
    if all(a == (3, 2, 1, 1, 1) for a in hw):
        return FAST_3X3
    return FAST_NONE


def _pad3(values, fill):
    return (fill,) * (3 - len(values)) + tuple(values)


def window_plan(op, shape, rank, kernel_size, stride, padding, dilation, ceil_mode,
                data_format, divisor):
    """The PoolPlan of a sliding-window pool (max/min/avg/sum/LP/stochastic).

    ``divisor`` is "one", "count", "span" or ("override", value).  String
    padding ("valid"/"same") follows Keras; SAME average pools divide by the
    real cells only, whatever ``divisor`` says (unless it is an override).
    The arguments are checked on every call (so the cache below can never
    answer for a value it would refuse, e.g. True for 1); the geometry is
    cached on the checked values.
    """
    channels_last = parse_data_format(op, data_format)
    kernel = int_tuple(kernel_size, rank, "kernel_size", op, 1)
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel
    else:
        stride = int_tuple(stride, rank, "stride", op, 1)
    dilation = int_tuple(dilation, rank, "dilation", op, 1)
    if isinstance(padding, str):
        padding = padding.lower()
        if padding not in ("valid", "same"):
            raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', "
                             f"got {padding!r}")
        if padding == "same" and ceil_mode:
            raise ValueError(f"{op}: ceil_mode=True cannot be combined with padding='same'")
    else:
        padding = int_tuple(padding, rank, "padding", op, 0)
        for p, k, d in zip(padding, kernel, dilation):
            effective = d * (k - 1) + 1
            if p > effective // 2:
                raise ValueError(
                    f"{op}: padding {_compact(padding)} is more than half the effective kernel "
                    f"size {effective} (padding must be <= {effective // 2} for kernel_size "
                    f"{_compact(kernel)}, dilation {_compact(dilation)})")
    return _window_plan(op, tuple(shape), rank, kernel, stride, padding, dilation,
                        bool(ceil_mode), channels_last, divisor)


@functools.lru_cache(maxsize=1024)
def _window_plan(op, shape, rank, kernel, stride, padding, dilation, ceil_mode, channels_last,
                 divisor):
    layout = layout_of(op, shape, rank, channels_last)
    spatial = layout.spatial
    if padding == "same":
        sizes = [same_padding(n, k, s, d) for n, k, s, d in zip(spatial, kernel, stride, dilation)]
        out = [o for o, _, _ in sizes]
        before = [b for _, b, _ in sizes]
        after = [a for _, _, a in sizes]
        if divisor in ("span", "count"):
            divisor = "count"
    else:
        before = after = (0,) * rank if padding == "valid" else padding
        out = [pooled_length(n, k, s, b, a, d, ceil_mode)
               for n, k, s, b, a, d in zip(spatial, kernel, stride, before, after, dilation)]
    if min(out) <= 0:
        raise ValueError(
            f"{op}: input {_size_str(shape)} is too small for kernel {_compact(kernel)} "
            f"(stride {_compact(stride)}, padding {_compact(before)}, dilation "
            f"{_compact(dilation)}): the output size would be {_size_str(out)}")
    override = divisor[1] if isinstance(divisor, tuple) else None
    axes = []
    for n, o, k, s, b, a, d in zip(spatial, out, kernel, stride, before, after, dilation):
        first, count, factor = axis_windows(n, o, k, s, b, a, d, "one" if override else divisor)
        axes.append((n, first, count, factor, d))
    axes = [_trivial_axis()] * (3 - rank) + axes
    if override is not None:
        axes[0] = axes[0][:3] + (axes[0][3] * override,) + axes[0][4:]
    fast = _fast_kind(_pad3(kernel, 1), _pad3(stride, 1), _pad3(before, 0), _pad3(after, 0),
                      _pad3(dilation, 1), layout)
    return PoolPlan(layout, axes, fast)


def adaptive_plan(op, shape, rank, output_size, data_format, zero_size="planes"):
    """The PoolPlan of an adaptive pool; ``None`` in output_size keeps that input size.
    ``zero_size``: which dimensions may be 0 (PyTorch's rule differs by op; see
    ``_check_empty_dims``)."""
    channels_last = parse_data_format(op, data_format)
    layout = layout_of(op, shape, rank, channels_last, zero_size)
    if isinstance(output_size, (tuple, list)) and len(output_size) in (1, rank):
        sizes = tuple(output_size) * (rank if len(output_size) == 1 else 1)
        sizes = tuple(n if o is None else o for o, n in zip(sizes, layout.spatial))
    else:
        sizes = output_size
    sizes = int_tuple(sizes, rank, "output_size", op, 1, INT32_PLANE_LIMIT)
    if math.prod(sizes) > INT32_PLANE_LIMIT:
        raise ValueError(f"{op}: output_size {sizes} makes output planes of {math.prod(sizes)} "
                         f"cells, more than the limit {INT32_PLANE_LIMIT}")
    return _adaptive_plan(op, tuple(shape), rank, sizes, channels_last, zero_size)


@functools.lru_cache(maxsize=256)
def _adaptive_plan(op, shape, rank, sizes, channels_last, zero_size):
    layout = layout_of(op, shape, rank, channels_last, zero_size)
    axes = [_trivial_axis()] * (3 - rank)
    for n, o in zip(layout.spatial, sizes):
        first, count, factor = adaptive_axis(n, o)
        axes.append((n, first, count, factor, 1))
    return PoolPlan(layout, axes)
