"""prelu (a learned slope per channel) and rrelu (a random slope while training).

Both are leaky_relu with another slope: x where x > 0, else slope * x.  The gradient
follows PyTorch's kernels: d/dx is 1 where x > 0, else the slope (at 0 too); prelu's
d/dweight sums x * grad over the non-positive elements of each channel.
"""
import builtins

import numpy as np

from minipool import _random
from minipool._typing import GeneratorLike, TensorLike
from minipool.ops.activations import _float_input, _real, write_over
from minipool.ops.elementwise import tensor_argument
from minipool.tensor import Function, Tensor

__all__ = ["prelu", "rrelu", "rrelu_"]


class PreluFn(Function):
    @staticmethod
    def forward(ctx, x, weight, shape):
        slope = weight.reshape(shape)
        positive = x > 0
        if ctx.requires_grad:
            ctx.save_for_backward(x, slope)
            ctx.meta = (positive, weight.shape)
        return np.where(positive, x, slope * x)

    @staticmethod
    def backward(ctx, grad):
        x, slope = ctx.saved_tensors
        positive, weight_shape = ctx.meta
        gx = np.where(positive, grad, slope * grad) if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            per_element = np.where(positive, 0, x * grad)
            axes = tuple(i for i in range(x.ndim) if slope.shape[i] == 1)
            gw = per_element.sum(axis=axes).reshape(weight_shape)
        return gx, gw, None


def prelu(input: TensorLike, weight: TensorLike) -> Tensor:
    """``x`` where x > 0, else ``weight * x``, with one learned slope (``weight`` of 1 element)
    or one per channel (dim 1 of ``input``), as ``F.prelu``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.prelu(mp.tensor([-2.0, 3.0]), mp.tensor([0.25])).numpy()
    array([-0.5,  3. ], dtype=float32)
    """
    x = _float_input(input, "prelu")
    w = tensor_argument("prelu", "weight", weight)
    if w.dtype != x.dtype:
        raise TypeError(f"prelu: weight dtype {w.dtype} must equal the input's dtype {x.dtype}")
    if w.ndim > 1:
        raise RuntimeError(f"prelu: weight must be 0-d or 1-D (one slope per channel), got shape {w.shape}")
    channels = x.shape[1] if x.ndim >= 2 else 1
    if w.numel() != 1 and w.numel() != channels:
        raise RuntimeError(f"prelu: weight has {w.numel()} slopes, the input has {channels} channels "
                           f"(dim 1 of shape {x.shape}); give 1 slope or one per channel")
    shape = (1,) * x.ndim
    if w.numel() != 1:
        shape = (1, channels) + (1,) * (x.ndim - 2)
    return PreluFn.apply(x, w, shape)


class RreluFn(Function):
    @staticmethod
    def forward(ctx, x, slope):
        slope = np.where(x > 0, np.asarray(1, x.dtype), slope)  # 1 where the input passes
        if ctx.requires_grad:
            ctx.save_for_backward(slope)
        return x * slope

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return grad * slope, None


def _rrelu_slopes(x, lower, upper, training, generator, where):
    lower, upper = _real(lower, "lower", where), _real(upper, "upper", where)
    if not lower <= upper:
        raise ValueError(f"{where}: lower must be <= upper, got lower={lower}, upper={upper}")
    if not training:
        return np.asarray((lower + upper) / 2, dtype=x.dtype)
    rng = _random.resolve(generator, where)
    return rng.uniform(lower, upper, x.shape).astype(x.dtype)


def rrelu(input: TensorLike, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False, *, generator: GeneratorLike = None) -> Tensor:
    """Randomized leaky ReLU (Xu et al., 2015), as ``F.rrelu``: while ``training`` each negative
    element gets its own slope drawn from U(lower, upper) (the gradient uses the same slope);
    otherwise the slope is (lower + upper) / 2.  ``generator`` as in ``mp.randn`` (the draws are
    minipool's, not PyTorch's).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.rrelu(mp.tensor([-3.0, 2.0]), 0.1, 0.3).numpy()
    array([-0.6,  2. ], dtype=float32)
    """
    x = _float_input(input, "rrelu")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"rrelu: training must be a bool, got {training!r}")
    slope = _rrelu_slopes(x, lower, upper, builtins.bool(training), generator, "rrelu")
    if not inplace:
        return RreluFn.apply(x, slope)
    return write_over(x, "rrelu", lambda t: RreluFn.apply(t, slope))


def rrelu_(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False, *,
           generator: GeneratorLike = None) -> Tensor:
    """``rrelu`` written over ``input`` (which must not need a gradient), as ``F.rrelu_``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.rrelu_(mp.tensor([-4.0, 1.0]), 0.25, 0.25).numpy()
    array([-1.,  1.], dtype=float32)
    """
    return rrelu(input, lower, upper, training, True, generator=generator)
