"""PReLU (learned slopes) and RReLU (random slopes while training) as layers."""
from typing import Optional

import numpy as np

import minipool.nn.functional as F
from minipool._typing import DTypeLike
from minipool.nn.module import Module, Parameter
from minipool.tensor import Tensor, get_default_dtype

__all__ = ["PReLU", "RReLU"]


class PReLU(Module):
    """``F.prelu(x, weight)`` with ``num_parameters`` learned slopes (1, or the channel count),
    all starting at ``init``, as ``torch.nn.PReLU``.

    >>> import minipool as mp
    >>> mp.nn.PReLU()(mp.tensor([-4.0, 2.0])).numpy()
    array([-1.,  2.], dtype=float32)
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Optional[str] = None,
                 dtype: Optional[DTypeLike] = None) -> None:
        super().__init__()
        if isinstance(num_parameters, bool) or not isinstance(num_parameters, (int, np.integer)) \
                or num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be an int >= 1, got {num_parameters!r}")
        if device not in (None, "cpu"):
            raise ValueError(f"PReLU: device must be 'cpu' (minipool runs on the CPU), got {device!r}")
        self.num_parameters, self.init = int(num_parameters), init
        self.weight = Parameter(np.full(self.num_parameters, init, dtype=dtype or get_default_dtype()))

    def reset_parameters(self) -> None:
        """Every slope back to ``init``."""
        self.weight.numpy()[...] = self.init

    def forward(self, input: Tensor) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class RReLU(Module):
    """``F.rrelu(x, lower, upper, training)``: random slopes in U(lower, upper) for negative
    inputs while training, (lower + upper) / 2 in eval mode, as ``torch.nn.RReLU``.

    >>> import minipool as mp
    >>> mp.nn.RReLU(0.1, 0.3).eval()(mp.tensor([-5.0, 1.0])).numpy()
    array([-1.,  1.], dtype=float32)
    """

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False) -> None:
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper}" + (", inplace=True" if self.inplace else "")
