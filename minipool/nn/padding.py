"""Padding layers, as PyTorch's: ``ZeroPad2d``, ``ConstantPad2d``, ``ReflectionPad2d``,
``ReplicationPad2d`` (``padding``: one int for all four sides, or (left, right, top, bottom))."""
from typing import Sequence, Union

from minipool.nn.module import Module
from minipool.ops.padding import pad
from minipool.tensor import Tensor

__all__ = ["ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d"]


class _Pad2d(Module):
    mode = "constant"

    def __init__(self, padding: Union[int, Sequence[int]]) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(padding, int) and not isinstance(padding, bool):
            padding = (padding,) * 4
        elif not (isinstance(padding, (tuple, list)) and len(padding) == 4 and all(
                isinstance(p, int) and not isinstance(p, bool) for p in padding)):
            raise TypeError(f"{name}: padding must be an int or 4 ints (left, right, top, bottom), "
                            f"got {padding!r}")
        self.padding = tuple(padding)

    def forward(self, x: Tensor) -> Tensor:
        return pad(x, self.padding, mode=self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(_Pad2d):
    """Pad the last two dims with zeros (negative amounts crop).

    >>> import minipool as mp
    >>> mp.nn.ZeroPad2d(1)(mp.ones(1, 1, 2, 2)).shape
    (1, 1, 4, 4)
    """


class ConstantPad2d(_Pad2d):
    """Pad the last two dims with ``value``."""

    def __init__(self, padding: Union[int, Sequence[int]], value: float) -> None:
        super().__init__(padding)
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        return pad(x, self.padding, mode="constant", value=self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ReflectionPad2d(_Pad2d):
    """Pad the last two dims of a 3-d or 4-d input by mirroring (without repeating the edge)."""
    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pad the last two dims of a 3-d or 4-d input by repeating the edge values."""
    mode = "replicate"
