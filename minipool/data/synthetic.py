"""Procedurally drawn handwritten-style digits: the dataset that needs no files.

Each digit 0-9 has one or more *styles*: pen strokes (lines, arcs, quadratic
curves) in a unit box, stored as points plus the segments joining them.  Every
sample draws its own variation, all vectorised over the batch:

* an affine jitter (rotation, italic shear, aspect and size, translation),
* a smooth random displacement of the stroke points (wobbly handwriting),
* a random pen width, soft stroke edges, contrast and pixel noise.

Rendering takes, for every pixel, the distance to the nearest stroke segment
and turns it into ink.  The images are 28x28 uint8 like MNIST's (digit in a
~20 pixel box near the centre), so the same model and transforms apply.

>>> ds = SyntheticDigits(20, seed=0)
>>> ds.images.shape, ds.images.dtype, len(set(ds.labels.tolist())) > 5
((20, 28, 28), dtype('uint8'), True)
"""
import functools

import numpy as np

from minipool.data.dataset import ArrayDataset

__all__ = ["SyntheticDigits", "render_digits", "DIGIT_STYLES"]


# --------------------------------------------------------------------------- stroke shapes
# Unit box: x runs left -> right, y top -> bottom; angles in degrees measured
# from +x towards +y (so 90 points down, as on screen).

def _line(*points):
    return [tuple(map(float, p)) for p in points]


def _arc(cx, cy, rx, ry, start, stop, step=24.0):
    count = max(2, int(np.ceil(abs(stop - start) / step)) + 1)
    angles = np.radians(np.linspace(start, stop, count))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]


def _curve(p0, control, p1, count=7):
    t = np.linspace(0.0, 1.0, count)[:, None]
    p0, control, p1 = (np.asarray(p, dtype=float) for p in (p0, control, p1))
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * control + t ** 2 * p1
    return [tuple(p) for p in pts]


# digit -> list of styles; a style is a list of strokes; a stroke is a polyline.
DIGIT_STYLES = {
    0: [
        [_arc(0.5, 0.5, 0.30, 0.46, -90, 270)],
        [_arc(0.5, 0.5, 0.26, 0.46, -100, 265, step=20)],  # slightly open, narrow
    ],
    1: [
        [_line((0.5, 0.04), (0.5, 0.96))],
        [_line((0.30, 0.22), (0.55, 0.04), (0.55, 0.96))],
        [_line((0.30, 0.22), (0.55, 0.04), (0.55, 0.96)), _line((0.32, 0.96), (0.78, 0.96))],
    ],
    2: [
        [_arc(0.5, 0.30, 0.30, 0.26, 190, 360) + _curve((0.80, 0.30), (0.75, 0.55), (0.14, 0.95))[1:]
         + _line((0.86, 0.95))],
        [_arc(0.48, 0.28, 0.30, 0.24, 180, 380) + _line((0.14, 0.95), (0.88, 0.93))],
        [_arc(0.5, 0.30, 0.30, 0.26, 190, 360) + _curve((0.80, 0.30), (0.70, 0.60), (0.16, 0.90))[1:]
         + _curve((0.16, 0.90), (0.25, 0.78), (0.42, 0.90))[1:] + _line((0.88, 0.96))],
    ],
    3: [
        [_arc(0.48, 0.27, 0.28, 0.23, 200, 450) + _arc(0.48, 0.72, 0.32, 0.25, -90, 160)[1:]],
        [_line((0.18, 0.05), (0.80, 0.05), (0.45, 0.42)) + _arc(0.48, 0.70, 0.32, 0.27, -80, 160)[1:]],
    ],
    4: [
        [_line((0.62, 0.04), (0.12, 0.66), (0.88, 0.66)), _line((0.66, 0.30), (0.66, 0.97))],
        [_line((0.22, 0.04), (0.16, 0.60), (0.86, 0.60)), _line((0.70, 0.08), (0.70, 0.97))],
    ],
    5: [
        [_line((0.82, 0.05), (0.28, 0.05), (0.24, 0.46)) + _arc(0.48, 0.68, 0.32, 0.28, -130, 155)[1:]],
        [_line((0.24, 0.06), (0.22, 0.45)) + _arc(0.48, 0.68, 0.32, 0.28, -130, 150)[1:],
         _line((0.24, 0.06), (0.84, 0.04))],
    ],
    6: [
        [_curve((0.76, 0.04), (0.22, 0.22), (0.20, 0.70)) + _arc(0.50, 0.72, 0.30, 0.25, 180, 540)[1:]],
        [_line((0.66, 0.04), (0.24, 0.62)) + _arc(0.50, 0.72, 0.28, 0.24, 200, 560)[1:]],
    ],
    7: [
        [_line((0.12, 0.05), (0.88, 0.05), (0.40, 0.96))],
        [_line((0.12, 0.05), (0.88, 0.05), (0.44, 0.96)), _line((0.36, 0.52), (0.80, 0.50))],
        [_line((0.14, 0.14), (0.16, 0.05), (0.86, 0.05)) + _curve((0.86, 0.05), (0.56, 0.40), (0.52, 0.96))[1:]],
    ],
    8: [
        [_arc(0.5, 0.27, 0.24, 0.22, -90, 270), _arc(0.5, 0.72, 0.30, 0.24, -90, 270)],
        [_arc(0.5, 0.27, 0.22, 0.22, 90, 450) + _arc(0.5, 0.72, 0.30, 0.24, -90, 270)[1:]],
    ],
    9: [
        [_arc(0.48, 0.30, 0.28, 0.25, 0, 360), _line((0.76, 0.30), (0.70, 0.97))],
        [_arc(0.46, 0.30, 0.27, 0.25, 20, 380) + _curve((0.72, 0.38), (0.72, 0.75), (0.40, 0.97))[1:]],
    ],
}


@functools.lru_cache(maxsize=None)
def _compiled_styles():
    """Pack every style into fixed-size arrays so a batch of mixed digits renders at once.

    Returns points (n_styles, P, 2), segments (n_styles, S, 2) as point indices, and
    the digit of each style.  Short styles repeat their last segment (a duplicate
    changes no nearest distance).
    """
    packed = []
    for digit in range(10):
        for strokes in DIGIT_STYLES[digit]:
            points, segments = [], []
            for stroke in strokes:
                base = len(points)
                points.extend(stroke)
                segments.extend((base + i, base + i + 1) for i in range(len(stroke) - 1))
            packed.append((digit, points, segments))
    n_points = max(len(p) for _, p, _ in packed)
    n_segments = max(len(s) for _, _, s in packed)
    points = np.zeros((len(packed), n_points, 2), np.float32)
    segments = np.zeros((len(packed), n_segments, 2), np.int64)
    digits = np.zeros(len(packed), np.int64)
    for k, (digit, p, s) in enumerate(packed):
        points[k, :len(p)] = p
        points[k, len(p):] = p[-1]
        segments[k, :len(s)] = s
        segments[k, len(s):] = s[-1]
        digits[k] = digit
    styles_of_digit = [np.flatnonzero(digits == d) for d in range(10)]
    return points, segments, styles_of_digit


# --------------------------------------------------------------------------- rendering
def _random_geometry(rng, n, size):
    """Per-sample 2x2 matrices (unit box -> pixels) and offsets, plus pen widths."""
    angle = np.radians(rng.uniform(-15, 15, n))
    shear = rng.uniform(-0.35, 0.15, n)          # handwriting leans right more often
    height = size * rng.uniform(0.62, 0.76, n)   # MNIST digits sit in a ~20 px box
    width = height * rng.uniform(0.70, 1.05, n)
    cos, sin = np.cos(angle), np.sin(angle)
    # pixel = R @ Shear @ diag(width, height) @ (unit - 0.5) + centre
    m = np.empty((n, 2, 2))
    m[:, 0, 0] = cos * width
    m[:, 0, 1] = (cos * shear - sin) * height
    m[:, 1, 0] = sin * width
    m[:, 1, 1] = (sin * shear + cos) * height
    centre = size / 2 + rng.uniform(-2.0, 2.0, (n, 2))
    pen = rng.uniform(0.9, 2.1, n)  # half-width in pixels
    return m, centre, pen


def _wobble(rng, points):
    """Smoothly displace unit-box points: two random low-frequency waves per axis."""
    n = points.shape[0]
    out = points.astype(np.float64)
    for axis in range(2):
        for _ in range(2):
            freq = rng.uniform(1.0, 3.0, (n, 1, 2))
            phase = rng.uniform(0, 2 * np.pi, (n, 1))
            amp = rng.uniform(0.0, 0.05, (n, 1))
            out[..., axis] += amp * np.sin(2 * np.pi * (points * freq).sum(-1) + phase)
    return out


def render_digits(labels, rng, size=28, chunk=256):
    """Draw one image per label (uint8, (n, size, size)) with random style and jitter."""
    labels = np.asarray(labels, dtype=np.int64)
    all_points, all_segments, styles_of_digit = _compiled_styles()
    out = np.empty((labels.size, size, size), np.uint8)
    centres = np.arange(size, dtype=np.float32) + 0.5
    grid_y, grid_x = np.meshgrid(centres, centres, indexing="ij")
    grid_x, grid_y = grid_x.reshape(1, 1, -1), grid_y.reshape(1, 1, -1)
    for start in range(0, labels.size, chunk):
        lab = labels[start:start + chunk]
        n = lab.size
        choice = rng.random(n)
        counts = np.array([len(styles_of_digit[d]) for d in lab])
        style = np.array([styles_of_digit[d][int(c * k)] for d, c, k in zip(lab, choice, counts)],
                         dtype=np.int64)
        unit = _wobble(rng, all_points[style]) - 0.5
        m, centre, pen = _random_geometry(rng, n, size)
        pts = (np.einsum("nij,npj->npi", m, unit) + centre[:, None, :]).astype(np.float32)
        seg = all_segments[style]
        a = np.take_along_axis(pts, seg[..., :1], axis=1)  # (n, S, 2) segment starts
        b = np.take_along_axis(pts, seg[..., 1:], axis=1)
        ab = b - a
        length2 = np.maximum((ab ** 2).sum(-1), 1e-6)[..., None]   # (n, S, 1)
        ax, ay = a[..., 0:1], a[..., 1:2]
        abx, aby = ab[..., 0:1], ab[..., 1:2]
        px = grid_x - ax                                            # (n, S, pixels)
        py = grid_y - ay
        t = np.clip((px * abx + py * aby) / length2, 0.0, 1.0)
        px -= t * abx
        py -= t * aby
        dist = np.sqrt((px * px + py * py).min(axis=1))             # (n, pixels)
        ink = np.clip(pen[:, None] + 0.5 - dist, 0.0, 1.0)          # ~1 px soft edge
        ink *= rng.uniform(0.75, 1.0, (n, 1))                       # pen pressure
        ink += rng.normal(0.0, 0.04, ink.shape) * (rng.random((n, 1)) < 0.7)
        out[start:start + n] = (np.clip(ink, 0.0, 1.0) * 255 + 0.5).astype(np.uint8).reshape(n, size, size)
    return out


class SyntheticDigits(ArrayDataset):
    """``n`` handwritten-style digits 0-9 (28x28 uint8), generated in memory from ``seed``.

    Labels are balanced and shuffled; the same ``(n, seed)`` always gives the
    same images.  Use different seeds for training and held-out sets.

    >>> a = SyntheticDigits(8, seed=3)
    >>> b = SyntheticDigits(8, seed=3)
    >>> bool((a.images == b.images).all())
    True
    """

    def __init__(self, n=10000, seed=0, size=28):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"SyntheticDigits: n must be an int >= 0, got {n!r}")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 8:
            raise ValueError(f"SyntheticDigits: size must be an int >= 8, got {size!r}")
        rng = np.random.default_rng([int(seed), 0x5EED])
        labels = rng.permutation(np.arange(int(n)) % 10)
        images = render_digits(labels, rng, size=int(size))
        self.seed = int(seed)
        super().__init__(images, labels, name=f"synthetic(n={n}, seed={seed})")
