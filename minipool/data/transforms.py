"""Batch transforms for image batches shaped (n, C, H, W) (a single (C, H, W) image works too).

Every transform is a callable ``t(images, rng=None)``; the random ones draw
from ``rng`` (a ``np.random.Generator``), so a seeded loader reproduces them.
Called without one, they draw from their own ``generator=`` (when given) or
from minipool's shared default generator (see ``minipool._random.manual_seed``).
Random transforms draw independently for each image of a batch.

The images are already float arrays (datasets give float32 in [0, 1], channels
first): there is no ``ToTensor`` step.

>>> import numpy as np
>>> t = Compose([Pad(2), Normalize(0.5, 0.25)])
>>> t(np.zeros((3, 1, 28, 28), np.float32)).shape
(3, 1, 32, 32)
>>> cifar = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(),
...                  Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))])
>>> cifar(np.zeros((8, 3, 32, 32), np.float32), np.random.default_rng(0)).shape
(8, 3, 32, 32)
"""
import numbers

import numpy as np

from minipool._random import kept, resolve

__all__ = ["Compose", "Pad", "Normalize", "RandomShift", "RandomAffine", "RandomCrop",
           "RandomHorizontalFlip"]


def _as_batch(images):
    images = np.asarray(images)
    if images.ndim == 3:
        return images[None], True
    if images.ndim != 4:
        raise ValueError(f"transforms expect images shaped (n, C, H, W) or (C, H, W), got {images.shape}")
    return images, False


def _rng(rng, generator=None, where="transform"):
    """The call's ``rng`` if given, else the transform's own ``generator``, else the shared default."""
    return resolve(rng if rng is not None else generator, where)


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
    """``(x - mean) / std``, with one mean/std for all channels or one per channel.

    The result is float32; ``inplace=True`` writes it into ``images`` when
    that is a writable float32 array (else a new array is returned).
    """

    def __init__(self, mean, std, inplace=False):
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)
        if np.any(self.std <= 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"Normalize: std must be finite and > 0, got {std!r}")
        if not np.all(np.isfinite(self.mean)):
            raise ValueError(f"Normalize: mean must be finite, got {mean!r}")
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(f"Normalize: mean and std must have the same length (or one value), got "
                             f"{len(self.mean)} and {len(self.std)}")
        self.inplace = bool(inplace)

    def __call__(self, images, rng=None):
        channels = np.shape(images)[-3] if np.ndim(images) >= 3 else None
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 1 and len(values) != channels:
                raise ValueError(f"Normalize: {len(values)} {name} values for images with "
                                 f"{channels} channels (shape {np.shape(images)}); give one value or "
                                 f"one per channel")
        if self.inplace and isinstance(images, np.ndarray) and images.dtype == np.float32 and \
                images.flags.writeable:
            images -= self.mean
            images /= self.std
            return images
        return ((np.asarray(images, np.float32) - self.mean) / self.std).astype(np.float32, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class RandomShift:
    """Translate each image by a random whole number of pixels in [-max_shift, max_shift]
    along each axis, filling with ``fill``."""

    def __init__(self, max_shift=2, fill=0.0, generator=None):
        self.generator = kept(generator, "RandomShift")
        if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be an int >= 0, got {max_shift!r}")
        self.max_shift, self.fill = int(max_shift), float(fill)

    def __call__(self, images, rng=None):
        batch, single = _as_batch(images)
        n, c, h, w = batch.shape
        s = self.max_shift
        shifts = _rng(rng, self.generator, "RandomShift").integers(-s, s + 1, size=(n, 2))
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

    def __init__(self, degrees=0.0, translate=(0.0, 0.0), scale=(1.0, 1.0), shear=0.0, fill=0.0,
                 generator=None):
        self.generator = kept(generator, "RandomAffine")
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
        rng = _rng(rng, self.generator, "RandomAffine")
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


def _pair(value, name, where, minimum):
    """``value`` as (h, w): an int, or a sequence of one or two ints, each >= ``minimum``."""
    values = (value,) if isinstance(value, numbers.Integral) else tuple(value) \
        if isinstance(value, (tuple, list)) else None
    if values is None or len(values) not in (1, 2) or \
            not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= minimum
                    for v in values):
        raise ValueError(f"{where}: {name} must be an int >= {minimum} or a sequence of one or two "
                         f"such ints (h, w), got {value!r}")
    return (int(values[0]),) * 2 if len(values) == 1 else (int(values[0]), int(values[1]))


class RandomCrop:
    """Crop a random ``size`` window out of each image, after optional padding (torchvision's
    ``RandomCrop``).

    ``size``: an int (square) or (h, w).  ``padding``: None, an int (every
    side), (left/right, top/bottom) or (left, top, right, bottom).
    ``pad_if_needed`` pads an image smaller than ``size`` as torchvision does
    (by the shortfall on both sides).  ``padding_mode``: ``"constant"`` (with
    ``fill``, one value or one per channel), ``"edge"``, ``"reflect"`` (the
    edge pixel not repeated) or ``"symmetric"`` (repeated).  The window's top
    left corner is uniform over every position, drawn per image.

    >>> import numpy as np
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> RandomCrop(4, padding=1)(x, np.random.default_rng(0)).shape
    (1, 1, 4, 4)
    """

    MODES = ("constant", "edge", "reflect", "symmetric")

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant",
                 generator=None):
        self.size = _pair(size, "size", "RandomCrop", 1)
        if padding is None:
            self.padding = (0, 0, 0, 0)
        else:
            values = (padding,) if isinstance(padding, numbers.Integral) else tuple(padding) \
                if isinstance(padding, (tuple, list)) else ()
            if len(values) not in (1, 2, 4) or not all(
                    isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in values):
                raise ValueError(f"RandomCrop: padding must be None, an int >= 0 or a sequence of 1, 2 "
                                 f"or 4 ints >= 0 (left, top, right, bottom), got {padding!r}")
            if len(values) == 1:
                values = values * 4
            elif len(values) == 2:
                values = values * 2  # (left/right, top/bottom)
            self.padding = tuple(int(v) for v in values)  # left, top, right, bottom
        if padding_mode not in self.MODES:
            raise ValueError(f"RandomCrop: padding_mode must be one of {', '.join(self.MODES)}, "
                             f"got {padding_mode!r}")
        fill_values = np.asarray(fill, np.float64)
        if fill_values.ndim > 1 or not np.all(np.isfinite(fill_values)):
            raise ValueError(f"RandomCrop: fill must be a finite number or one per channel, got {fill!r}")
        self.fill, self.padding_mode = fill, padding_mode
        self.pad_if_needed = bool(pad_if_needed)
        self.generator = kept(generator, "RandomCrop")

    def _pad(self, batch, left, top, right, bottom):
        if not (left or top or right or bottom):
            return batch
        h, w = batch.shape[2:]
        if self.padding_mode in ("reflect", "symmetric"):
            # reflect needs padding < size (the edge pixel is not repeated), symmetric <= size
            limit_h, limit_w = (h - 1, w - 1) if self.padding_mode == "reflect" else (h, w)
            if max(top, bottom) > limit_h or max(left, right) > limit_w:
                raise ValueError(f"RandomCrop: {self.padding_mode} padding (left, top, right, bottom) = "
                                 f"{(left, top, right, bottom)} must be at most {limit_w} horizontally "
                                 f"and {limit_h} vertically for {h}x{w} images")
        widths = ((0, 0), (0, 0), (top, bottom), (left, right))
        if self.padding_mode != "constant":
            return np.pad(batch, widths, mode=self.padding_mode)
        fill = np.asarray(self.fill, np.float64)
        if fill.ndim == 0:
            return np.pad(batch, widths, constant_values=fill.item())
        if fill.size != batch.shape[1]:
            raise ValueError(f"RandomCrop: {fill.size} fill values for images with {batch.shape[1]} channels")
        out = np.empty(batch.shape[:2] + (h + top + bottom, w + left + right), batch.dtype)
        out[...] = fill.astype(batch.dtype).reshape(1, -1, 1, 1)
        out[:, :, top:top + h, left:left + w] = batch
        return out

    def __call__(self, images, rng=None):
        batch, single = _as_batch(images)
        th, tw = self.size
        batch = self._pad(batch, *self.padding)
        n, _, h, w = batch.shape
        if self.pad_if_needed and (w < tw or h < th):
            dw, dh = max(tw - w, 0), max(th - h, 0)
            batch = self._pad(batch, dw, dh, dw, dh)
            n, _, h, w = batch.shape
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: crop size {(th, tw)} is larger than the (padded) image size "
                             f"{(h, w)}; pass a smaller size, more padding or pad_if_needed=True")
        generator = _rng(rng, self.generator, "RandomCrop")
        if (h, w) == (th, tw):
            out = batch.copy()
        else:
            tops = generator.integers(0, h - th + 1, size=n)
            lefts = generator.integers(0, w - tw + 1, size=n)
            windows = np.lib.stride_tricks.sliding_window_view(batch, (th, tw), axis=(2, 3))
            # (n, C, positions_h, positions_w, th, tw) -> one window per image: (n, C, th, tw)
            out = windows[np.arange(n), :, tops, lefts]
        return out[0] if single else out

    def __repr__(self):
        return (f"RandomCrop(size={self.size}, padding={self.padding}, pad_if_needed={self.pad_if_needed}, "
                f"fill={self.fill}, padding_mode={self.padding_mode!r})")


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p`` (drawn per image)."""

    def __init__(self, p=0.5, generator=None):
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.generator = kept(generator, "RandomHorizontalFlip")

    def __call__(self, images, rng=None):
        batch, single = _as_batch(images)
        flip = _rng(rng, self.generator, "RandomHorizontalFlip").random(batch.shape[0]) < self.p
        out = batch.copy()
        out[flip] = batch[flip][..., ::-1]
        return out[0] if single else out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"
