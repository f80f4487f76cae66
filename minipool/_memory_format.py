"""``torch.channels_last`` and its kin: the memory order of a 4-d tensor's elements.

minipool's ops read any strides, so the order changes memory only, never a value or a
gradient, as in PyTorch.  ``x.contiguous(memory_format=mp.channels_last)`` (or
``x.to(memory_format=...)``) gives an (N, C, H, W) tensor whose elements lie in NHWC
order; ``x.is_contiguous(memory_format=...)`` tells which order a tensor has.  (For
layers and kernels that take NHWC *shapes*, minipool's way is ``data_format="channels_last"``.)

>>> import minipool as mp
>>> x = mp.zeros(2, 3, 4, 5).contiguous(memory_format=mp.channels_last)
>>> x.shape, x.is_contiguous(memory_format=mp.channels_last), x.is_contiguous()
((2, 3, 4, 5), True, False)
"""
import numpy as np

from minipool.tensor import Function

__all__ = ["memory_format", "contiguous_format", "channels_last", "preserve_format"]


class memory_format:
    """One of ``mp.contiguous_format``, ``mp.channels_last``, ``mp.preserve_format``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"minipool.{self.name}"


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
preserve_format = memory_format("preserve_format")


def check(value, where):
    """``value`` as one of the three formats, or a TypeError naming them."""
    if not isinstance(value, memory_format):
        raise TypeError(f"{where}: memory_format must be mp.contiguous_format, mp.channels_last "
                        f"or mp.preserve_format, got {value!r}")
    return value


def _channels_last_strides(a):
    return a.transpose(0, 2, 3, 1).flags.c_contiguous


class ToChannelsLast(Function):
    """A copy whose elements lie in NHWC order; the gradient passes through."""

    @staticmethod
    def forward(ctx, x):
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):
        return grad


def contiguous(x, fmt, where="contiguous"):
    """``x`` in memory order ``fmt`` (itself when it already is)."""
    from minipool.ops import inplace

    fmt = check(fmt, where)
    if fmt is channels_last:
        if x.ndim != 4:
            raise RuntimeError(f"{where}: mp.channels_last needs a 4-d (N, C, H, W) tensor, got "
                               f"shape {x.shape}")
        return x if _channels_last_strides(x._data) else ToChannelsLast.apply(x)
    if fmt is preserve_format:
        return x
    return inplace.contiguous(x)


def is_contiguous(x, fmt):
    fmt = check(fmt, "is_contiguous")
    if fmt is channels_last:
        return x.ndim == 4 and _channels_last_strides(x._data)
    return x._data.flags.c_contiguous
