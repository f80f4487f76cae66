"""Batch transforms for image batches shaped (n, C, H, W) (a single (C, H, W) image works too).

Every transform is a callable ``t(images, rng=None)``; the random ones draw
from ``rng`` (a ``np.random.Generator``), so a seeded loader reproduces them.

>>> import numpy as np
>>> t = Compose([Pad(2), Normalize(0.5, 0.25)])
>>> t(np.zeros((3, 1, 28, 28), np.float32)).shape
(3, 1, 32, 32)
"""
import numpy as np

__all__ = ["Compose", "Pad", "Normalize", "RandomShift", "RandomAffine"]


def _as_batch(images):
    images = np.asarray(images)
    if images.ndim == 3:
        return images[None], True
    if images.ndim != 4:
        raise ValueError(f"transforms expect images shaped (n, C, H, W) or (C, H, W), got {images.shape}")
    return images, False


def _rng(rng):
    return rng if rng is not None else np.random.default_rng()


class Compose:
    """Apply transforms in order (each gets the same ``rng``)."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, images, rng=None):
        for t in self.transforms:
            images = t(images, rng)
        return images

    def __repr__(self):
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


class Pad:
    """Pad H and W by ``padding`` pixels of ``value`` on every side (28 -> 32 as in LeNet-5)."""

    def __init__(self, padding=2, value=0.0):
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"Pad: padding must be an int >= 0, got {padding!r}")
        self.padding, self.value = int(padding), float(value)

    def __call__(self, images, rng=None):
        batch, single = _as_batch(images)
        p = self.padding
        out = np.pad(batch, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=self.value)
        return out[0] if single else out

    def __repr__(self):
        return f"Pad({self.padding})"


class Normalize:
    """``(x - mean) / std``, with one mean/std for all channels or one per channel."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)
        if np.any(self.std <= 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"Normalize: std must be finite and > 0, got {std!r}")

    def __call__(self, images, rng=None):
        return ((np.asarray(images, np.float32) - self.mean) / self.std).astype(np.float32, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class RandomShift:
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift]
    along each axis, filling with ``fill``."""

    def __init__(self, max_shift=2, fill=0.0):
        if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be an int >= 0, got {max_shift!r}")
        self.max_shift, self.fill = int(max_shift), float(fill)

    def __call__(self, images, rng=None):
        batch, single = _as_batch(images)
        n, c, h, w = batch.shape
        s = self.max_shift
        shifts = _rng(rng).integers(-s, s + 1, size=(n, 2))
        padded = np.pad(batch, ((0, 0), (0, 0), (s, s), (s, s)), constant_values=self.fill)
        rows = (s - shifts[:, 0])[:, None] + np.arange(h)[None]          # (n, h)
        cols = (s - shifts[:, 1])[:, None] + np.arange(w)[None]          # (n, w)
        out = padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                     rows[:, None, :, None], cols[:, None, None, :]]
        return out[0] if single else out

    def __repr__(self):
        return f"RandomShift({self.max_shift})"


class RandomAffine:
    """Random rotation (degrees), translation (fraction of size), scale and shear (degrees),
    applied about the image centre with bilinear sampling; outside pixels become ``fill``."""

    def __init__(self, degrees=0.0, translate=(0.0, 0.0), scale=(1.0, 1.0), shear=0.0, fill=0.0):
        self.degrees = float(degrees)
        self.translate = tuple(float(t) for t in translate)
        self.scale = tuple(float(s) for s in scale)
        self.shear = float(shear)
        self.fill = float(fill)
        if self.degrees < 0 or self.shear < 0 or min(self.translate) < 0:
            raise ValueError("RandomAffine: degrees, translate and shear must be >= 0")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"RandomAffine: scale must be (low, high) with 0 < low <= high, got {scale!r}")

    def __call__(self, images, rng=None):
        batch, single = _as_batch(images)
        batch = np.asarray(batch, np.float32)
        n, c, h, w = batch.shape
        rng = _rng(rng)
        angle = np.radians(rng.uniform(-self.degrees, self.degrees, n))
        shear = np.radians(rng.uniform(-self.shear, self.shear, n))
        scale = rng.uniform(self.scale[0], self.scale[1], n)
        tx = rng.uniform(-self.translate[0], self.translate[0], n) * w
        ty = rng.uniform(-self.translate[1], self.translate[1], n) * h
        # forward map M = scale * R(angle) @ Shear_x(shear); sample the source at M^-1 (dst - centre - t)
        cos, sin, tan = np.cos(angle), np.sin(angle), np.tan(shear)
        m = np.empty((n, 2, 2))
        m[:, 0, 0], m[:, 0, 1] = cos, cos * tan - sin
        m[:, 1, 0], m[:, 1, 1] = sin, sin * tan + cos
        m *= scale[:, None, None]
        inv = np.linalg.inv(m)
        cy, cx = (h - 1) / 2, (w - 1) / 2
        yy, xx = np.meshgrid(np.arange(h, dtype=np.float32) - cy, np.arange(w, dtype=np.float32) - cx,
                             indexing="ij")
        inv = inv.astype(np.float32)
        dx = xx.ravel()[None] - tx.astype(np.float32)[:, None]
        dy = yy.ravel()[None] - ty.astype(np.float32)[:, None]
        src_x = inv[:, 0, 0, None] * dx + inv[:, 0, 1, None] * dy + np.float32(cx)
        src_y = inv[:, 1, 0, None] * dx + inv[:, 1, 1, None] * dy + np.float32(cy)
        out = _bilinear(batch, src_y, src_x, self.fill)
        return out[0] if single else out

    def __repr__(self):
        return (f"RandomAffine(degrees={self.degrees}, translate={self.translate}, "
                f"scale={self.scale}, shear={self.shear})")


def _bilinear(batch, src_y, src_x, fill):
    """Sample (n, c, h, w) images at fractional (n, h*w) positions; outside reads ``fill``.

    The images get a one-pixel border of ``fill`` and the positions are clamped
    to [-1, size]: every tap then lands inside the bordered image, and a
    position outside reads only border pixels, so no per-tap bounds test is needed.
    """
    n, c, h, w = batch.shape
    bordered = np.pad(batch, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=fill)
    hb, wb = h + 2, w + 2
    src_y = np.clip(src_y, -1, h)
    src_x = np.clip(src_x, -1, w)
    y0 = np.minimum(np.floor(src_y), h - 1)
    x0 = np.minimum(np.floor(src_x), w - 1)
    fy, fx = src_y - y0, src_x - x0
    # flat index of the top-left tap in the bordered image, one row per (image, channel)
    top_left = (y0.astype(np.intp) + 1) * wb + (x0.astype(np.intp) + 1)
    plane_start = (np.arange(n * c, dtype=np.intp) * (hb * wb)).reshape(n, c, 1)
    index = (plane_start + top_left[:, None, :]).reshape(n * c, -1)
    flat = bordered.ravel()
    fx, fy = fx[:, None, :].repeat(c, 1).reshape(n * c, -1), fy[:, None, :].repeat(c, 1).reshape(n * c, -1)
    top = flat[index] * (1 - fx) + flat[index + 1] * fx
    bottom = flat[index + wb] * (1 - fx) + flat[index + wb + 1] * fx
    out = top * (1 - fy) + bottom * fy
    return out.reshape(n, c, h, w).astype(np.float32, copy=False)
