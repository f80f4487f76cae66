"""Padding layers, as PyTorch's: ``ZeroPad1d/2d``, ``ConstantPad1d/2d``, ``ReflectionPad1d/2d``,
``ReplicationPad1d/2d``, ``CircularPad1d/2d`` (``padding``: one int for every side, or
(left, right) for 1-d, (left, right, top, bottom) for 2-d)."""
from typing import Sequence, Union

from minipool.nn.module import Module
from minipool.ops.padding import pad
from minipool.tensor import Tensor

__all__ = ["ZeroPad1d", "ConstantPad1d", "ReflectionPad1d", "ReplicationPad1d", "CircularPad1d",
           "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d"]


class _PadNd(Module):
    mode = "constant"
    dims = 2  # the trailing dims padded
    _sides = "(left, right, top, bottom)"

    def __init__(self, padding: Union[int, Sequence[int]]) -> None:
        super().__init__()
        name, count = type(self).__name__, 2 * self.dims
        if isinstance(padding, int) and not isinstance(padding, bool):
            padding = (padding,) * count
        elif not (isinstance(padding, (tuple, list)) and len(padding) == count and all(
                isinstance(p, int) and not isinstance(p, bool) for p in padding)):
            raise TypeError(f"{name}: padding must be an int or {count} ints {self._sides}, "
                            f"got {padding!r}")
        self.padding = tuple(padding)

    def forward(self, x: Tensor) -> Tensor:
        return pad(x, self.padding, mode=self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _Pad2d(_PadNd):
    dims = 2


class _Pad1d(_PadNd):
    dims = 1
    _sides = "(left, right)"


class _ConstantPad:
    """``value`` for the constant pads (a mixin before the _PadNd of their size)."""

    def __init__(self, padding: Union[int, Sequence[int]], value: float) -> None:
        super().__init__(padding)
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        return pad(x, self.padding, mode="constant", value=self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ZeroPad2d(_Pad2d):
    """Pad the last two dims with zeros (negative amounts crop).

    >>> import minipool as mp
    >>> mp.nn.ZeroPad2d(1)(mp.ones(1, 1, 2, 2)).shape
    (1, 1, 4, 4)
    """


class ConstantPad2d(_ConstantPad, _Pad2d):
    """Pad the last two dims with ``value``."""


class ReflectionPad2d(_Pad2d):
    """Pad the last two dims of a 3-d or 4-d input by mirroring (without repeating the edge)."""
    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pad the last two dims of a 3-d or 4-d input by repeating the edge values."""
    mode = "replicate"


class CircularPad2d(_Pad2d):
    """Pad the last two dims by wrapping around (the other edge's values)."""
    mode = "circular"


class ZeroPad1d(_Pad1d):
    """Pad the last dim with zeros (negative amounts crop).

    >>> import minipool as mp
    >>> mp.nn.ZeroPad1d((1, 2))(mp.ones(1, 2, 3)).shape
    (1, 2, 6)
    """


class ConstantPad1d(_ConstantPad, _Pad1d):
    """Pad the last dim with ``value``."""


class ReflectionPad1d(_Pad1d):
    """Pad the last dim of a 2-d or 3-d input by mirroring (without repeating the edge)."""
    mode = "reflect"


class ReplicationPad1d(_Pad1d):
    """Pad the last dim of a 2-d or 3-d input by repeating the edge values."""
    mode = "replicate"


class CircularPad1d(_Pad1d):
    """Pad the last dim by wrapping around (the other edge's values)."""
    mode = "circular"
