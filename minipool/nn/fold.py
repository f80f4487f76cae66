"""nn.Unfold and nn.Fold: ``F.unfold`` / ``F.fold`` as layers."""
from typing import Tuple, Union

import minipool.nn.functional as F
from minipool.nn.module import Module
from minipool.tensor import Tensor

__all__ = ["Unfold", "Fold"]

Size2 = Union[int, Tuple[int, int]]


class Unfold(Module):
    """``F.unfold(x, kernel_size, dilation, padding, stride)`` as a layer.

    >>> import minipool as mp
    >>> mp.nn.Unfold(2)(mp.ones(1, 3, 4, 4)).shape
    (1, 12, 9)
    """

    def __init__(self, kernel_size: Size2, dilation: Size2 = 1, padding: Size2 = 0,
                 stride: Size2 = 1) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.padding, self.stride = kernel_size, dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}, "
                f"stride={self.stride}")


class Fold(Module):
    """``F.fold(x, output_size, kernel_size, dilation, padding, stride)`` as a layer.

    >>> import minipool as mp
    >>> mp.nn.Fold((4, 4), 2, stride=2)(mp.ones(1, 12, 4)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, output_size: Size2, kernel_size: Size2, dilation: Size2 = 1,
                 padding: Size2 = 0, stride: Size2 = 1) -> None:
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input: Tensor) -> Tensor:
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding,
                      self.stride)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}")
