"""Upsampling layers: thin Modules over ``minipool.nn.functional.interpolate`` and pixel shuffle."""
from typing import Optional, Tuple, Union

import minipool.nn.functional as F
from minipool._typing import IntOrTuple
from minipool.nn.module import Module
from minipool.ops.upsampling import upsampling2d, upsampling2d_arguments
from minipool.tensor import Tensor

__all__ = ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
           "PixelUnshuffle", "UpSampling2D"]


class Upsample(Module):
    """Resize with ``F.interpolate`` (same arguments, fixed at construction and checked by
    ``F.interpolate`` at each call, as in PyTorch).

    >>> import minipool as mp
    >>> mp.nn.Upsample(scale_factor=2, mode="bilinear")(mp.ones(1, 3, 4, 5)).shape
    (1, 3, 8, 10)
    """

    def __init__(self, size: Optional[IntOrTuple] = None,
                 scale_factor: Optional[Union[float, Tuple[float, ...]]] = None,
                 mode: str = "nearest", align_corners: Optional[bool] = None,
                 recompute_scale_factor: Optional[bool] = None) -> None:
        super().__init__()
        # F.interpolate checks them all, in forward: PyTorch's layer does not check them either
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        extra = f", align_corners={self.align_corners}" if self.align_corners is not None else ""
        return f"{what}, mode={self.mode!r}{extra}"


class UpsamplingNearest2d(Upsample):
    """2-D nearest-neighbour upsampling (``Upsample(mode="nearest")``)."""

    def __init__(self, size: Optional[IntOrTuple] = None,
                 scale_factor: Optional[Union[float, Tuple[float, ...]]] = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """2-D bilinear upsampling with ``align_corners=True``, as PyTorch's layer does."""

    def __init__(self, size: Optional[IntOrTuple] = None,
                 scale_factor: Optional[Union[float, Tuple[float, ...]]] = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(Module):
    """(*, C*r*r, H, W) -> (*, C, H*r, W*r); see ``F.pixel_shuffle``.

    >>> import minipool as mp
    >>> mp.nn.PixelShuffle(3)(mp.ones(2, 18, 4, 4)).shape
    (2, 2, 12, 12)
    """

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H*r, W*r) -> (*, C*r*r, H, W); see ``F.pixel_unshuffle``."""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = downscale_factor

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self) -> str:
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

    def __init__(self, size: IntOrTuple = (2, 2), data_format: str = "channels_last",
                 interpolation: str = "nearest") -> None:
        super().__init__()
        self.size, self.data_format, self.interpolation = upsampling2d_arguments(
            size, data_format, interpolation)

    def forward(self, x: Tensor) -> Tensor:
        return upsampling2d(x, self.size, self.data_format, self.interpolation)

    def extra_repr(self) -> str:
        return (f"size={self.size}, data_format={self.data_format!r}, "
                f"interpolation={self.interpolation!r}")


class ChannelShuffle(Module):
    """Interleave the channels of ``groups`` groups; see ``F.channel_shuffle``.

    >>> import minipool as mp
    >>> mp.nn.ChannelShuffle(2)
    ChannelShuffle(groups=2)
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, input: Tensor) -> Tensor:
        return F.channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
