"""Upsampling layers: thin Modules over ``minipool.nn.functional.interpolate`` and pixel shuffle."""
import minipool.nn.functional as F
from minipool.nn.module import Module
from minipool.ops.upsampling import MODES, check_output_sides, repeat_upsample

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
           "PixelUnshuffle", "UpSampling2D"]


class Upsample(Module):
    """Resize with ``F.interpolate`` (same arguments, fixed at construction).

    >>> import minipool as mp
    >>> mp.nn.Upsample(scale_factor=2, mode="bilinear")(mp.ones(1, 3, 4, 5)).shape
    (1, 3, 8, 10)
    """

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Upsample: mode must be one of {', '.join(MODES)}; got {mode!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor, "
                             f"got size={size!r} and scale_factor={scale_factor!r}")
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        extra = f", align_corners={self.align_corners}" if self.align_corners is not None else ""
        return f"{what}, mode={self.mode!r}{extra}"


class UpsamplingNearest2d(Upsample):
    """2-D nearest-neighbour upsampling (``Upsample(mode="nearest")``)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """2-D bilinear upsampling with ``align_corners=True``, as PyTorch's layer does."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r); see ``F.pixel_shuffle``.

    >>> import minipool as mp
    >>> mp.nn.PixelShuffle(3)(mp.ones(2, 18, 4, 4)).shape
    (2, 2, 12, 12)
    """

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, x):
        return F.pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W); see ``F.pixel_unshuffle``."""

    def __init__(self, downscale_factor):
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, x):
        return F.pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"


class UpSampling2D(Module):
    """Keras' 2-D upsampling: ``size`` (int or (rows, cols)) integer factors,
    ``interpolation`` "nearest" (each pixel repeated, an exact copy) or
    "bilinear" (half-pixel centres, i.e. ``align_corners=False``), on NHWC
    input by default (``data_format="channels_last"``; None means the same).

    >>> import minipool as mp
    >>> mp.nn.UpSampling2D(size=3)(mp.ones(1, 7, 7, 4)).shape
    (1, 21, 21, 4)
    """

    def __init__(self, size=(2, 2), data_format="channels_last", interpolation="nearest"):
        super().__init__()
        pair = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in pair):
            raise TypeError(f"UpSampling2D: size must be an int or a pair of ints, got {size!r}")
        if min(pair) < 1:
            raise ValueError(f"UpSampling2D: size entries must be >= 1, got {size!r}")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"UpSampling2D: interpolation must be 'nearest' or 'bilinear', "
                             f"got {interpolation!r}")
        data_format = "channels_last" if data_format is None else data_format  # Keras' default
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"UpSampling2D: data_format must be 'channels_last' or "
                             f"'channels_first', got {data_format!r}")
        self.size, self.data_format, self.interpolation = pair, data_format, interpolation

    def forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"UpSampling2D: expects a 4-D input, got shape {x.shape}")
        h, w = (x.shape[1:3] if self.data_format == "channels_last" else x.shape[2:4])
        check_output_sides("UpSampling2D", "size", self.size, (h * self.size[0], w * self.size[1]))
        if self.interpolation == "nearest":
            return repeat_upsample(x, self.size, self.data_format)
        return F.interpolate(x, size=(h * self.size[0], w * self.size[1]), mode="bilinear",
                             align_corners=False, data_format=self.data_format)

    def extra_repr(self):
        return (f"size={self.size}, data_format={self.data_format!r}, "
                f"interpolation={self.interpolation!r}")
