"""The layer forms of the functional activations (``F.softsign`` -> ``nn.Softsign``, ...),
with PyTorch's arguments and reprs.  The maths lives in ``minipool.ops.activations_more``.

>>> import minipool as mp
>>> mp.nn.Softshrink(0.5)(mp.tensor([-1.0, 0.2, 2.0])).tolist()
[-0.5, 0.0, 1.5]
"""
from typing import Optional

import minipool.nn.functional as F
from minipool.nn.module import Module
from minipool.tensor import Tensor

__all__ = ["Softsign", "Tanhshrink", "LogSigmoid", "Threshold", "Hardshrink", "Softshrink",
           "Softmin", "GLU", "Mish", "Hardswish", "Hardsigmoid", "SELU", "CELU"]


class _Plain(Module):
    """An activation without arguments: ``forward`` is the functional op ``fn``."""

    fn = None

    def forward(self, input: Tensor) -> Tensor:
        return type(self).fn(input)


class Softsign(_Plain):
    """``x / (1 + |x|)``, as ``torch.nn.Softsign``."""

    fn = staticmethod(F.softsign)


class Tanhshrink(_Plain):
    """``x - tanh(x)``, as ``torch.nn.Tanhshrink``."""

    fn = staticmethod(F.tanhshrink)


class LogSigmoid(_Plain):
    """``log(sigmoid(x))``, as ``torch.nn.LogSigmoid``."""

    fn = staticmethod(F.logsigmoid)


class _Inplace(Module):
    """An activation with only PyTorch's ``inplace`` flag (shown in the repr when set)."""

    fn = None
    show_inplace = True

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        if not isinstance(inplace, bool):
            raise TypeError(f"{type(self).__name__}: inplace must be a bool, got {inplace!r}")
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return type(self).fn(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace and self.show_inplace else ""


class Mish(_Inplace):
    """``x * tanh(softplus(x))``, as ``torch.nn.Mish``."""

    fn = staticmethod(F.mish)


class Hardswish(_Inplace):
    """``x * relu6(x + 3) / 6``, as ``torch.nn.Hardswish``."""

    fn = staticmethod(F.hardswish)
    show_inplace = False  # PyTorch's repr leaves it out


class Hardsigmoid(_Inplace):
    """``relu6(x + 3) / 6``, as ``torch.nn.Hardsigmoid``."""

    fn = staticmethod(F.hardsigmoid)
    show_inplace = False


class SELU(_Inplace):
    """``scale * elu(x, alpha)`` with the self-normalising constants, as ``torch.nn.SELU``."""

    fn = staticmethod(F.selu)


class CELU(Module):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``, as ``torch.nn.CELU``.

    >>> import minipool as mp
    >>> mp.nn.CELU(2.0)
    CELU(alpha=2.0)
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.celu(input, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Threshold(Module):
    """``x if x > threshold else value``, as ``torch.nn.Threshold``.

    >>> import minipool as mp
    >>> mp.nn.Threshold(0.1, 20.0)(mp.tensor([0.0, 0.5])).tolist()
    [20.0, 0.5]
    """

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold, self.value, self.inplace = threshold, value, inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.threshold(input, self.threshold, self.value, self.inplace)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, value={self.value}" + (", inplace=True" if self.inplace else "")


class Hardshrink(Module):
    """``x if |x| > lambd else 0``, as ``torch.nn.Hardshrink``."""

    def __init__(self, lambd: float = 0.5) -> None:
        super().__init__()
        self.lambd = lambd

    def forward(self, input: Tensor) -> Tensor:
        return F.hardshrink(input, self.lambd)

    def extra_repr(self) -> str:
        return f"{self.lambd}"


class Softshrink(Hardshrink):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0, as
    ``torch.nn.Softshrink``."""

    def forward(self, input: Tensor) -> Tensor:
        return F.softshrink(input, self.lambd)


class Softmin(Module):
    """``softmax(-x, dim)``, as ``torch.nn.Softmin``."""

    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.softmin(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class GLU(Module):
    """The gated linear unit ``a * sigmoid(b)`` of the two halves of ``dim``, as
    ``torch.nn.GLU``."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return F.glu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
