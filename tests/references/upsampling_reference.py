"""Loop-based NumPy references for upsampling, written from the formulas.

Nothing here is shared with minipool: each output position is visited in a
Python loop, its source pixels and weights are worked out one scalar at a
time from PyTorch's formulas (docs/semantics.md sections 6, 10-17), and the
weighted sum is taken over the full tensor product of the per-axis taps in
float64 (vectorised only over the batch and channel dimensions).

The float precision of the *index* arithmetic is part of the contract (it
decides which pixel nearest picks), so those steps run on NumPy scalars of
the input's precision: ``ft`` is np.float32 for float32 inputs, np.float64
for float64 ones, and every floor is taken after rounding to float32 (ATen's
``floorf``).
"""
import itertools
import math

import numpy as np

KEYS_A = -0.75  # PyTorch's bicubic convolution parameter


def precision(dtype):
    return np.float64 if np.dtype(dtype) == np.float64 else np.float32


def output_sizes(in_sizes, size=None, scale_factor=None):
    """floor(in * factor) per axis, or the explicit size."""
    if size is not None:
        return tuple(size) if isinstance(size, (tuple, list)) else (size,) * len(in_sizes)
    n = len(in_sizes)
    factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * n
    return tuple(int(math.floor(n * f)) for n, f in zip(in_sizes, factors))


def step(n_in, n_out, factor, align_corners, ft):
    """Input pixels per output pixel: (in-1)/(out-1) for align_corners, else 1/factor
    when the factor is used, else in/out."""
    if align_corners:
        if n_out == 1:
            return ft(0)
        return ft(n_in - 1) / ft(n_out - 1)
    if factor is None:
        return ft(n_in) / ft(n_out)
    return ft(1.0 / factor)


def floorf(value):
    return int(math.floor(float(np.float32(value))))


def half_pixel_centre(s, o, ft):
    """s * (o + 0.5) - 0.5 rounded once: ATen's compiled kernels use a fused multiply-add
    here.  For float32, float64 holds the exact product, so rounding at the end is the
    fma; for float64 the plain expression is within an ulp (and floorf hides that)."""
    exact = float(s) * float(ft(o) + ft(0.5)) - 0.5
    return ft(exact)


# --------------------------------------------------------------------------- per-axis rules
def nearest_source(o, n_in, n_out, factor, ft):
    """nearest: floor(o * step), clamped to the last pixel."""
    s = step(n_in, n_out, factor, False, ft)
    return min(floorf(s * ft(o)), n_in - 1)


def nearest_exact_source(o, n_in, n_out, factor, ft):
    """nearest-exact: the pixel whose centre is nearest the output pixel centre."""
    s = step(n_in, n_out, factor, False, ft)
    centre = half_pixel_centre(s, o, ft)
    if centre < 0:
        centre = ft(0)
    return min(floorf(float(centre) + 0.5), n_in - 1)


def linear_taps(o, n_in, n_out, factor, align_corners, ft):
    """[(pixel, weight), (pixel, weight)] of one output index."""
    if n_in == n_out:
        return [(o, 1.0), (o, 0.0)]
    s = step(n_in, n_out, factor, align_corners, ft)
    if align_corners:
        x = s * ft(o)
    else:
        x = half_pixel_centre(s, o, ft)
        if x < 0:
            x = ft(0)
    left = min(floorf(x), n_in - 1)
    frac = min(max(x - ft(left), ft(0)), ft(1))
    right = left + 1 if left < n_in - 1 else left
    return [(left, float(ft(1) - frac)), (right, float(frac))]


def keys_cubic(distance):
    """Keys' cubic convolution kernel W(d) with a = -0.75."""
    d = abs(distance)
    a = KEYS_A
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    if d < 2:
        return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
    return 0.0


def cubic_taps(o, n_in, n_out, factor, align_corners, ft):
    """Four (pixel, weight) pairs; pixels beyond the edge repeat the edge pixel."""
    s = step(n_in, n_out, factor, align_corners, ft)
    x = s * ft(o) if align_corners else half_pixel_centre(s, o, ft)  # not clamped
    left = min(floorf(x), n_in - 1)
    t = min(max(x - ft(left), ft(0)), ft(1))
    taps = []
    for j in (-1, 0, 1, 2):
        pixel = min(max(left + j, 0), n_in - 1)
        # the distance to each tap is rounded to the input's precision first (ATen takes
        # t + 1, t, 1 - t and 2 - t in scalar_t): a t of 1e-8 then gives exact 0/1 weights
        # in float32, which decides whether an inf next door turns into NaN (0 * inf)
        distance = t - ft(j) if j <= 0 else ft(j) - t
        taps.append((pixel, keys_cubic(float(distance))))
    return taps


def area_window(o, n_in, n_out):
    """Adaptive-pooling window [floor(o*in/out), ceil((o+1)*in/out)), divided in float32."""
    start = int(math.floor(np.float32(o * n_in) / np.float32(n_out)))
    end = int(math.ceil(np.float32((o + 1) * n_in) / np.float32(n_out)))
    return start, end


def axis_taps(mode, o, n_in, n_out, factor, align_corners, ft):
    """(pixel, weight) pairs of one output index along one axis."""
    if mode == "nearest":
        return [(nearest_source(o, n_in, n_out, factor, ft), 1.0)]
    if mode == "nearest-exact":
        return [(nearest_exact_source(o, n_in, n_out, factor, ft), 1.0)]
    if mode in ("linear", "bilinear", "trilinear"):
        return linear_taps(o, n_in, n_out, factor, align_corners, ft)
    if mode == "bicubic":
        return cubic_taps(o, n_in, n_out, factor, align_corners, ft)
    if mode == "area":
        start, end = area_window(o, n_in, n_out)
        return [(i, 1.0 / (end - start)) for i in range(start, end)]
    raise ValueError(mode)


# --------------------------------------------------------------------------- whole op
def _all_taps(x_shape, dtype, mode, size, scale_factor, align_corners, recompute_scale_factor):
    ft = precision(dtype)
    in_sizes = x_shape[2:]
    out = output_sizes(in_sizes, size, scale_factor)
    n = len(in_sizes)
    if size is not None or recompute_scale_factor or mode == "area":
        factors = (None,) * n
    else:
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * n
    taps = [[axis_taps(mode, o, i, no, f, align_corners, ft) for o in range(no)]
            for i, no, f in zip(in_sizes, out, factors)]
    return out, taps


def _contributions(out, taps, position):
    """(weight, input pixel) of every tap of one output position: the tensor product."""
    for combo in itertools.product(*(taps[a][position[a]] for a in range(len(out)))):
        weight = 1.0
        for _, w in combo:
            weight *= w
        yield weight, tuple(p for p, _ in combo)


def interpolate(x, mode, size=None, scale_factor=None, align_corners=False,
                recompute_scale_factor=False):
    """Reference ``interpolate`` of an (N, C, *spatial) array; float64 sums, cast back."""
    x = np.asarray(x)
    out, taps = _all_taps(x.shape, x.dtype, mode, size, scale_factor, align_corners,
                          recompute_scale_factor)
    batch = (slice(None), slice(None))
    source = x.astype(np.float64)
    result = np.zeros(x.shape[:2] + out, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # inf * 0 and inf - inf give NaN, as in the kernels
        for position in itertools.product(*(range(no) for no in out)):
            acc = np.zeros(x.shape[:2])
            for weight, pixel in _contributions(out, taps, position):
                acc = acc + weight * source[batch + pixel]
            result[batch + position] = acc
    return result.astype(x.dtype)


def interpolate_backward(grad, x_shape, dtype, mode, size=None, scale_factor=None,
                         align_corners=False, recompute_scale_factor=False):
    """The gradient of ``sum(interpolate(x) * grad)`` with respect to x: every output
    sends ``weight * grad`` to each pixel it read (float64)."""
    out, taps = _all_taps(x_shape, dtype, mode, size, scale_factor, align_corners,
                          recompute_scale_factor)
    batch = (slice(None), slice(None))
    g = np.asarray(grad, dtype=np.float64)
    result = np.zeros(x_shape, dtype=np.float64)
    for position in itertools.product(*(range(no) for no in out)):
        for weight, pixel in _contributions(out, taps, position):
            result[batch + pixel] += weight * g[batch + position]
    return result


def nearest_gather(x, mode, size=None, scale_factor=None, recompute_scale_factor=False):
    """Nearest modes by picking pixels (no arithmetic, so exact for any dtype)."""
    x = np.asarray(x)
    ft = precision(x.dtype)
    in_sizes = x.shape[2:]
    out = output_sizes(in_sizes, size, scale_factor)
    n = len(in_sizes)
    factors = (None,) * n if (size is not None or recompute_scale_factor) else (
        scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * n)
    pick = nearest_exact_source if mode == "nearest-exact" else nearest_source
    result = np.empty(x.shape[:2] + out, dtype=x.dtype)
    for position in itertools.product(*(range(no) for no in out)):
        pixel = tuple(pick(o, i, no, f, ft)
                      for o, i, no, f in zip(position, in_sizes, out, factors))
        result[(slice(None), slice(None)) + position] = x[(slice(None), slice(None)) + pixel]
    return result


def pixel_shuffle(x, r):
    """out[..., c, h*r + i, w*r + j] = in[..., c*r*r + i*r + j, h, w]."""
    x = np.asarray(x)
    *batch, channels, height, width = x.shape
    out = np.empty((*batch, channels // (r * r), height * r, width * r), dtype=x.dtype)
    for c in range(channels // (r * r)):
        for h in range(height):
            for w in range(width):
                for i in range(r):
                    for j in range(r):
                        out[..., c, h * r + i, w * r + j] = x[..., c * r * r + i * r + j, h, w]
    return out


def pixel_unshuffle(x, r):
    """out[..., c*r*r + i*r + j, h, w] = in[..., c, h*r + i, w*r + j]."""
    x = np.asarray(x)
    *batch, channels, height, width = x.shape
    out = np.empty((*batch, channels * r * r, height // r, width // r), dtype=x.dtype)
    for c in range(channels):
        for h in range(height // r):
            for w in range(width // r):
                for i in range(r):
                    for j in range(r):
                        out[..., c * r * r + i * r + j, h, w] = x[..., c, h * r + i, w * r + j]
    return out
