"""A slow, loop-based NumPy reference for every pooling op, written for the tests.

Everything here is computed with explicit Python loops over windows and
cells, straight from the written rules (docs/semantics.md, PyTorch's
documented behaviour), so a student can check each line by hand.  It never
calls minipool and shares no code with its kernels.

Conventions
-----------
* Arrays are batched: ``(N, C, *spatial)`` with 1, 2 or 3 spatial dims.
* A "window" is the list of real input cells (tuples of spatial coordinates)
  that one output element reads, in row-major scan order (d, then h, then w).
* Max/min follow PyTorch: start from -inf (+inf for min; the dtype's lowest/
  highest value for integers) with the index of the window's first real
  cell, then ``replace if v > m or v is NaN``.  So NaN propagates and points
  at the last NaN, and the first of tied maxima wins.  A window with no real
  cell (possible with dilation, see docs/semantics.md section 7) gives -inf/+inf
  and index -1, and receives no gradient.
* Indices are flat positions in the unpadded input plane (``h * W + w``).
* Sums are accumulated in Python floats (float64); results are cast back to
  the input dtype.
"""
import itertools

import numpy as np

__all__ = [
    "as_tuple", "pool_output_size", "same_padding", "Geometry", "pool_geometry",
    "max_pool", "min_pool", "max_pool_grad", "avg_pool", "avg_pool_grad",
    "sum_pool", "sum_pool_grad", "lp_pool", "lp_pool_grad",
    "adaptive_windows", "adaptive_max_pool", "adaptive_avg_pool", "adaptive_avg_pool_grad",
    "global_max_pool", "global_avg_pool",
    "stochastic_pool_eval", "stochastic_pool_eval_grad", "stochastic_windows",
    "max_unpool", "max_unpool_grad", "has_empty_window",
]


# ----------------------------------------------------------------------------- sizes
def as_tuple(value, nd):
    """An int or a sequence as an ``nd``-tuple of ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * nd
    value = tuple(int(v) for v in value)
    assert len(value) == nd, (value, nd)
    return value


def pool_output_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """PyTorch's pooling output length for one dim.

    ``out = floor((in + 2p - d(k-1) - 1 [+ s-1 if ceil]) / s) + 1``; with
    ceil_mode the last window must start inside the input or the left
    padding, so a window starting at ``>= in + p`` is dropped.
    """
    effective_kernel = dilation * (kernel - 1) + 1
    numerator = size + 2 * padding - effective_kernel
    if ceil_mode:
        numerator += stride - 1
    out = numerator // stride + 1  # Python // is floor division, as in PyTorch
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def same_padding(size, kernel, stride, dilation=1):
    """TensorFlow/Keras SAME: ``(out, pad_before, pad_after)``, the odd cell going after."""
    effective_kernel = dilation * (kernel - 1) + 1
    out = -(-size // stride)  # ceil(size / stride)
    total = max(0, (out - 1) * stride + effective_kernel - size)
    return out, total // 2, total - total // 2


class Geometry:
    """Per-dim pooling geometry: output length, padding before/after, kernel, stride, dilation."""

    def __init__(self, size, out, kernel, stride, pad_before, pad_after, dilation):
        self.size, self.out = size, out
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.pad_before, self.pad_after = pad_before, pad_after

    def taps(self, o):
        """Input positions (possibly outside the input) sampled by output position ``o``."""
        start = o * self.stride - self.pad_before
        return [start + j * self.dilation for j in range(self.kernel)]

    def real_cells(self, o):
        return [t for t in self.taps(o) if 0 <= t < self.size]

    def padded_span(self, o):
        """PyTorch's count_include_pad divisor for one dim (dilation 1): the window
        clipped to the *padded* input, so the ceil_mode overhang never counts."""
        start = o * self.stride - self.pad_before
        end = min(start + self.kernel, self.size + self.pad_after)
        return end - start


def pool_geometry(spatial_shape, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
    """One Geometry per spatial dim; ``padding`` may be an int, a tuple, "valid" or "same"."""
    nd = len(spatial_shape)
    kernel = as_tuple(kernel, nd)
    stride = kernel if stride is None else as_tuple(stride, nd)
    dilation = as_tuple(dilation, nd)
    dims = []
    for i in range(nd):
        size, k, s, d = spatial_shape[i], kernel[i], stride[i], dilation[i]
        if isinstance(padding, str) and padding == "same":
            out, before, after = same_padding(size, k, s, d)
        else:
            p = 0 if isinstance(padding, str) else as_tuple(padding, nd)[i]
            out, before, after = pool_output_size(size, k, s, p, d, ceil_mode), p, p
        dims.append(Geometry(size, out, k, s, before, after, d))
    return dims


def _windows(geometry):
    """Yield ``(output position, [real input cells in row-major order])`` for every output."""
    for position in itertools.product(*[range(g.out) for g in geometry]):
        per_dim = [g.real_cells(o) for g, o in zip(geometry, position)]
        yield position, list(itertools.product(*per_dim))


def has_empty_window(spatial_shape, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
    """True when some window holds no real input cell (PyTorch mishandles those)."""
    geometry = pool_geometry(spatial_shape, kernel, stride, padding, dilation, ceil_mode)
    return any(not cells for _, cells in _windows(geometry))


def _flat_index(cell, spatial_shape):
    flat = 0
    for coordinate, length in zip(cell, spatial_shape):
        flat = flat * length + coordinate
    return flat


def _unflat_index(flat, spatial_shape):
    cell = []
    for length in reversed(spatial_shape):
        cell.append(flat % length)
        flat //= length
    return tuple(reversed(cell))


def _is_nan(value):
    return value != value


# ----------------------------------------------------------------------------- max / min
def _extreme_over(plane, cells, spatial_shape, find_max):
    """The max (or min) of ``plane`` over ``cells`` and its flat index, PyTorch's rule."""
    dtype = plane.dtype
    if np.issubdtype(dtype, np.floating):
        best = -np.inf if find_max else np.inf
    else:
        best = np.iinfo(dtype).min if find_max else np.iinfo(dtype).max
    best = dtype.type(best)
    if not cells:
        return best, -1
    best_index = _flat_index(cells[0], spatial_shape)
    for cell in cells:
        value = plane[cell]
        better = value > best if find_max else value < best
        if better or _is_nan(value):
            best, best_index = value, _flat_index(cell, spatial_shape)
    return best, best_index


def _extreme_pool(x, geometry, find_max):
    spatial = x.shape[2:]
    out_shape = x.shape[:2] + tuple(g.out for g in geometry)
    out = np.empty(out_shape, dtype=x.dtype)
    indices = np.empty(out_shape, dtype=np.int64)
    windows = list(_windows(geometry))
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            plane = x[n, c]
            for position, cells in windows:
                value, index = _extreme_over(plane, cells, spatial, find_max)
                out[(n, c) + position] = value
                indices[(n, c) + position] = index
    return out, indices


def max_pool(x, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Max pooling of ``(N, C, *spatial)``: returns ``(values, int64 flat indices)``."""
    geometry = pool_geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    return _extreme_pool(x, geometry, find_max=True)


def min_pool(x, kernel, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Min pooling: replace if ``v < m or v is NaN``; +inf padding; first tie wins."""
    geometry = pool_geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    return _extreme_pool(x, geometry, find_max=False)


def max_pool_grad(input_shape, indices, grad_out):
    """Scatter-add ``grad_out`` to the chosen cells (index -1 gets nothing)."""
    grad = np.zeros(input_shape, dtype=np.float64)
    spatial = tuple(input_shape[2:])
    for n in range(indices.shape[0]):
        for c in range(indices.shape[1]):
            for position in itertools.product(*[range(o) for o in indices.shape[2:]]):
                index = int(indices[(n, c) + position])
                if index >= 0:
                    grad[(n, c) + _unflat_index(index, spatial)] += grad_out[(n, c) + position]
    return grad


# ----------------------------------------------------------------------------- avg / sum
def _avg_divisor(geometry, position, cells, count_include_pad, divisor_override, same_padding_mode):
    if divisor_override is not None:
        return divisor_override
    if same_padding_mode or not count_include_pad:
        return len(cells)  # real cells only (TF SAME ignores padded cells)
    divisor = 1
    for g, o in zip(geometry, position):
        divisor *= g.padded_span(o)
    return divisor


def _linear_windows(x_shape, kernel, stride, padding, ceil_mode, count_include_pad,
                    divisor_override, with_divisor):
    """``(output position, cells, divisor)`` for avg, or divisor 1 for sum."""
    geometry = pool_geometry(x_shape[2:], kernel, stride, padding, 1, ceil_mode)
    same_mode = isinstance(padding, str) and padding == "same"
    result = []
    for position, cells in _windows(geometry):
        divisor = 1
        if with_divisor:
            divisor = _avg_divisor(geometry, position, cells, count_include_pad,
                                   divisor_override, same_mode)
        result.append((position, cells, divisor))
    return geometry, result


def _apply_linear(x, geometry, windows):
    out = np.empty(x.shape[:2] + tuple(g.out for g in geometry), dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for position, cells, divisor in windows:
                total = 0.0
                for cell in cells:
                    total += float(x[(n, c) + cell])
                out[(n, c) + position] = total / divisor
    return out


def _apply_linear_grad(x_shape, windows, grad_out):
    grad = np.zeros(x_shape, dtype=np.float64)
    for n in range(x_shape[0]):
        for c in range(x_shape[1]):
            for position, cells, divisor in windows:
                for cell in cells:
                    grad[(n, c) + cell] += float(grad_out[(n, c) + position]) / divisor
    return grad


def avg_pool(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
    """Average pooling with PyTorch's divisor rules (SAME padding: real cells only)."""
    geometry, windows = _linear_windows(x.shape, kernel, stride, padding, ceil_mode,
                                        count_include_pad, divisor_override, True)
    return _apply_linear(x, geometry, windows)


def avg_pool_grad(x_shape, grad_out, kernel, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None):
    _, windows = _linear_windows(x_shape, kernel, stride, padding, ceil_mode,
                                 count_include_pad, divisor_override, True)
    return _apply_linear_grad(x_shape, windows, grad_out)


def sum_pool(x, kernel, stride=None, padding=0, ceil_mode=False):
    """Sum over the real cells of each window (padding adds nothing)."""
    geometry, windows = _linear_windows(x.shape, kernel, stride, padding, ceil_mode,
                                        True, None, False)
    return _apply_linear(x, geometry, windows)


def sum_pool_grad(x_shape, grad_out, kernel, stride=None, padding=0, ceil_mode=False):
    _, windows = _linear_windows(x_shape, kernel, stride, padding, ceil_mode, True, None, False)
    return _apply_linear_grad(x_shape, windows, grad_out)


# ----------------------------------------------------------------------------- LP
def lp_pool(x, norm_type, kernel, stride=None, ceil_mode=False):
    """``(sum over real window cells of x**p) ** (1/p)``; no padding, no rescaling."""
    p = float(norm_type)
    geometry = pool_geometry(x.shape[2:], kernel, stride, 0, 1, ceil_mode)
    out = np.empty(x.shape[:2] + tuple(g.out for g in geometry), dtype=x.dtype)
    with np.errstate(all="ignore"):
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                for position, cells in _windows(geometry):
                    total = np.float64(0.0)
                    for cell in cells:
                        total += np.float64(x[(n, c) + cell]) ** p
                    out[(n, c) + position] = total ** (1.0 / p)
    return out


def lp_pool_grad(x, grad_out, norm_type, kernel, stride=None, ceil_mode=False):
    """d out / d x_i = x_i**(p-1) * S**(1/p - 1) with S the window's sum of x**p."""
    p = float(norm_type)
    geometry = pool_geometry(x.shape[2:], kernel, stride, 0, 1, ceil_mode)
    grad = np.zeros(x.shape, dtype=np.float64)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for position, cells in _windows(geometry):
                values = [np.float64(x[(n, c) + cell]) for cell in cells]
                total = sum(v ** p for v in values)
                outer = float(grad_out[(n, c) + position]) * total ** (1.0 / p - 1.0)
                for cell, v in zip(cells, values):
                    grad[(n, c) + cell] += outer * v ** (p - 1.0)
    return grad


# ----------------------------------------------------------------------------- adaptive / global
def adaptive_windows(size, out):
    """Adaptive pooling windows along one dim: ``[floor(i*in/out), ceil((i+1)*in/out))``."""
    windows = []
    for i in range(out):
        start = (i * size) // out
        end = -((-(i + 1) * size) // out)  # ceil with integers
        windows.append(list(range(start, end)))
    return windows


def _adaptive_cells(spatial_shape, output_size):
    per_dim = [adaptive_windows(size, out) for size, out in zip(spatial_shape, output_size)]
    for position in itertools.product(*[range(out) for out in output_size]):
        yield position, list(itertools.product(*[w[o] for w, o in zip(per_dim, position)]))


def adaptive_max_pool(x, output_size):
    """Adaptive max pooling: ``(values, int64 flat indices)``."""
    spatial = x.shape[2:]
    output_size = as_tuple(output_size, len(spatial))
    out = np.empty(x.shape[:2] + output_size, dtype=x.dtype)
    indices = np.empty(out.shape, dtype=np.int64)
    windows = list(_adaptive_cells(spatial, output_size))
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for position, cells in windows:
                value, index = _extreme_over(x[n, c], cells, spatial, find_max=True)
                out[(n, c) + position] = value
                indices[(n, c) + position] = index
    return out, indices


def _adaptive_avg_windows(spatial, output_size):
    return [(position, cells, len(cells))
            for position, cells in _adaptive_cells(spatial, output_size)]


def adaptive_avg_pool(x, output_size):
    """Adaptive average pooling: each window divided by its own size."""
    spatial = x.shape[2:]
    output_size = as_tuple(output_size, len(spatial))
    out = np.empty(x.shape[:2] + output_size, dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for position, cells, divisor in _adaptive_avg_windows(spatial, output_size):
                out[(n, c) + position] = sum(float(x[(n, c) + cell]) for cell in cells) / divisor
    return out


def adaptive_avg_pool_grad(x_shape, grad_out, output_size):
    spatial = tuple(x_shape[2:])
    windows = _adaptive_avg_windows(spatial, as_tuple(output_size, len(spatial)))
    return _apply_linear_grad(x_shape, windows, grad_out)


def global_max_pool(x, keepdim=False):
    """Max over all spatial positions of each plane (PyTorch's NaN/tie rule)."""
    out, _ = adaptive_max_pool(x, (1,) * (x.ndim - 2))
    return out if keepdim else out.reshape(x.shape[:2])


def global_avg_pool(x, keepdim=False):
    out = adaptive_avg_pool(x, (1,) * (x.ndim - 2))
    return out if keepdim else out.reshape(x.shape[:2])


# ----------------------------------------------------------------------------- stochastic
def stochastic_windows(spatial_shape, kernel, stride=None):
    """``(output shape, windows)`` of stochastic pooling: no padding, floor output size."""
    geometry = pool_geometry(spatial_shape, kernel, stride, 0, 1, False)
    return tuple(g.out for g in geometry), list(_windows(geometry))


def stochastic_pool_eval(x, kernel, stride=None):
    """Eval-mode stochastic pooling: ``sum(a**2) / sum(a)`` per window, 0 for an all-zero window."""
    out_spatial, windows = stochastic_windows(x.shape[2:], kernel, stride)
    out = np.empty(x.shape[:2] + out_spatial, dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for position, cells in windows:
                values = [float(x[(n, c) + cell]) for cell in cells]
                total = sum(values)
                out[(n, c) + position] = sum(v * v for v in values) / total if total else 0.0
    return out


def stochastic_pool_eval_grad(x, grad_out, kernel, stride=None):
    """d/da_i of sum(a^2)/sum(a) = (2 a_i sum(a) - sum(a^2)) / sum(a)^2 (all-zero window: 0)."""
    grad = np.zeros(x.shape, dtype=np.float64)
    _, windows = stochastic_windows(x.shape[2:], kernel, stride)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for position, cells in windows:
                values = [float(x[(n, c) + cell]) for cell in cells]
                total, squares = sum(values), sum(v * v for v in values)
                if not total:
                    continue
                upstream = float(grad_out[(n, c) + position])
                for cell, v in zip(cells, values):
                    grad[(n, c) + cell] += upstream * (2 * v * total - squares) / total ** 2
    return grad


# ----------------------------------------------------------------------------- unpool
def max_unpool(x, indices, output_spatial):
    """Zero-filled output of spatial shape ``output_spatial``; ``out_plane[index] = value``."""
    out = np.zeros(x.shape[:2] + tuple(output_spatial), dtype=x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for position in itertools.product(*[range(s) for s in x.shape[2:]]):
                cell = _unflat_index(int(indices[(n, c) + position]), tuple(output_spatial))
                out[(n, c) + cell] = x[(n, c) + position]
    return out


def max_unpool_grad(indices, grad_out):
    """Each input element receives the output gradient at its index."""
    output_spatial = grad_out.shape[2:]
    grad = np.zeros(indices.shape, dtype=np.float64)
    for n in range(indices.shape[0]):
        for c in range(indices.shape[1]):
            for position in itertools.product(*[range(s) for s in indices.shape[2:]]):
                cell = _unflat_index(int(indices[(n, c) + position]), output_spatial)
                grad[(n, c) + position] = grad_out[(n, c) + cell]
    return grad
