"""The rest of torch.nn.functional's pointwise activations a small CNN may use.

hardsigmoid, hardswish, logsigmoid, mish, selu, celu, threshold, hardshrink,
softshrink, softsign, tanhshrink, softmin and glu.  Each follows PyTorch's CPU
formula and its order of operations where that decides the bits, and the
gradient conventions of its vectorised kernel at the kinks and for NaN
(``minipool/ops/activations.py`` explains why the vectorised body is the one to
follow).  selu and celu are elu with PyTorch's (alpha, scale, input_scale).
softsign, tanhshrink and softmin are compositions in PyTorch too, and here.
Also PyTorch's in-place spellings (relu_, elu_, ...) and dropout1d/dropout3d.
"""
import numbers
from typing import Optional

import numpy as np

from minipool._typing import GeneratorLike, TensorLike
from minipool.ops.activations import (_finish, write_over, _float_input, _real, _scalar, dropout2d,
                                      elu, hardtanh, leaky_relu)
from minipool.ops.elementwise import as_tensor, relu
from minipool.ops.reduce import softmax
from minipool.tensor import Function, Tensor

__all__ = ["hardsigmoid", "hardswish", "logsigmoid", "mish", "selu", "celu", "threshold",
           "hardshrink", "softshrink", "softsign", "tanhshrink", "softmin", "glu", "relu_",
           "elu_", "leaky_relu_", "hardtanh_", "celu_", "selu_", "threshold_", "dropout1d",
           "dropout3d"]

# PyTorch's SELU constants (Klambauer et al., 2017)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class HardsigmoidFn(Function):
    @staticmethod
    def forward(ctx, x):
        three, six = _scalar(3, x.dtype), _scalar(6, x.dtype)
        if ctx.requires_grad:
            ctx.inside = (x > -three) & (x < three)  # 0 at +-3 and at NaN
        return np.clip(x + three, _scalar(0, x.dtype), six) / six

    @staticmethod
    def backward(ctx, grad):
        # PyTorch's kernel multiplies by 1/6 rounded to float32, for float64 too
        one_sixth = _scalar(np.float32(1) / np.float32(6), grad.dtype)
        return np.where(ctx.inside, grad * one_sixth, _scalar(0, grad.dtype))


class HardswishFn(Function):
    @staticmethod
    def forward(ctx, x):
        three, six = _scalar(3, x.dtype), _scalar(6, x.dtype)
        if ctx.requires_grad:
            ctx.save_for_backward(x)
        return x * np.clip(x + three, _scalar(0, x.dtype), six) / six

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        three = _scalar(3, grad.dtype)
        middle = grad * (x / three + _scalar(0.5, grad.dtype))
        # the vectorised kernel: 0 up to -3 (included), grad from 3 on, NaN in the middle
        return np.where(x <= -three, _scalar(0, grad.dtype), np.where(x >= three, grad, middle))


class LogsigmoidFn(Function):
    @staticmethod
    def forward(ctx, x):
        z = np.exp(-np.abs(x))
        if ctx.requires_grad:
            ctx.save_for_backward(x, z)
        return np.minimum(x, _scalar(0, x.dtype)) - np.log1p(z)

    @staticmethod
    def backward(ctx, grad):
        x, z = ctx.saved_tensors
        negative = x < 0
        one, zero = _scalar(1, grad.dtype), _scalar(0, grad.dtype)
        slope = np.where(negative, one, zero) - np.where(negative, one, -one) * (z / (one + z))
        return grad * slope


class MishFn(Function):
    @staticmethod
    def forward(ctx, x):
        t = np.tanh(np.log1p(np.exp(x)))
        if ctx.requires_grad:
            ctx.save_for_backward(x, t)
        return x * t

    @staticmethod
    def backward(ctx, grad):
        x, t = ctx.saved_tensors
        one = _scalar(1, grad.dtype)
        sig = one / (one + np.exp(-x))
        return grad * (t + x * sig * (one - t * t))


class ScaledEluFn(Function):
    """PyTorch's elu kernel with (alpha, scale, input_scale): ``scale * x`` where x > 0,
    else ``(exp(x * input_scale) - 1) * alpha * scale``; NaN takes the exp branch.
    ``backward_scale`` is the input_scale PyTorch's derivative uses: for celu it is
    ``1 / float32(alpha)``, not the forward's double ``1 / alpha``."""

    @staticmethod
    def forward(ctx, x, alpha, scale, input_scale, backward_scale):
        negative = ~(x > 0)
        negcoef = _scalar(alpha, x.dtype) * _scalar(scale, x.dtype)
        kept = np.where(negative, x, np.zeros((), x.dtype))  # no overflow where unused
        e = np.exp(kept * _scalar(input_scale, x.dtype))
        out = np.where(negative, (e - 1) * negcoef, x * _scalar(scale, x.dtype))
        if ctx.requires_grad:
            if backward_scale != input_scale:
                e = np.exp(kept * _scalar(backward_scale, x.dtype))
            ctx.negative, ctx.e, ctx.coefs = negative, e, (alpha, scale, backward_scale)
        return out

    @staticmethod
    def backward(ctx, grad):
        alpha, scale, input_scale = ctx.coefs
        dt = grad.dtype
        negcoef = _scalar(alpha, dt) * _scalar(scale, dt)
        slope_neg = grad * _scalar(input_scale, dt) * negcoef * ctx.e
        return np.where(ctx.negative, slope_neg, grad * _scalar(scale, dt)), None, None, None, None


class ThresholdFn(Function):
    @staticmethod
    def forward(ctx, x, threshold, value):
        below = x <= threshold  # NaN is not: it passes, as its gradient does
        if ctx.requires_grad:
            ctx.below = below
        return np.where(below, _scalar(value, x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.below, _scalar(0, grad.dtype), grad), None, None


class ShrinkFn(Function):
    """hardshrink (``soft=False``): 0 on [-lambd, lambd], x elsewhere; softshrink: x moved
    towards 0 by lambd outside that band.  Gradient 1 outside the closed band, else 0
    (also at NaN, as PyTorch)."""

    @staticmethod
    def forward(ctx, x, lambd, soft):
        lam = _scalar(lambd, x.dtype)
        band = (x >= -lam) & (x <= lam)
        if ctx.requires_grad:
            ctx.band = ~((x < -lam) | (x > lam))
        zero = _scalar(0, x.dtype)
        if not soft:
            return np.where(band, zero, x)
        return np.where(x > lam, x - lam, np.where(x < -lam, x + lam, np.where(band, zero, x)))

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.band, _scalar(0, grad.dtype), grad), None, None


class SoftsignFn(Function):
    """``x / (|x| + 1)``; the gradient is PyTorch's autograd of that composition (div, then
    abs through its sign), so inf and NaN give what it gives."""

    @staticmethod
    def forward(ctx, x):
        d = np.abs(x) + _scalar(1, x.dtype)
        if ctx.requires_grad:
            ctx.save_for_backward(x, d)
        return x / d

    @staticmethod
    def backward(ctx, grad):
        x, d = ctx.saved_tensors
        return grad / d + (-grad * x / (d * d)) * np.sign(x)


class GluFn(Function):
    @staticmethod
    def forward(ctx, x, axis):
        a, b = np.split(x, 2, axis=axis)
        one = _scalar(1, x.dtype)
        sig = one / (one + np.exp(-b))
        if ctx.requires_grad:
            ctx.save_for_backward(a, sig)
            ctx.axis = axis
        return a * sig

    @staticmethod
    def backward(ctx, grad):
        a, sig = ctx.saved_tensors
        one = _scalar(1, grad.dtype)
        return np.concatenate([grad * sig, (one - sig) * sig * a * grad], axis=ctx.axis), None


def hardsigmoid(input: TensorLike, inplace: bool = False) -> Tensor:
    """``relu6(x + 3) / 6``; gradient 1/6 strictly inside (-3, 3), else 0.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.hardsigmoid(mp.tensor([-4.0, 0.0, 1.5, 4.0])).numpy()
    array([0.  , 0.5 , 0.75, 1.  ], dtype=float32)
    """
    input = _float_input(input, "hardsigmoid")
    return _finish(HardsigmoidFn, input, inplace, "hardsigmoid")


def hardswish(input: TensorLike, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6`` (MobileNetV3); gradient ``x/3 + 1/2`` on [-3, 3).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.hardswish(mp.tensor([-4.0, 0.0, 1.5, 4.0])).numpy()
    array([-0.   ,  0.   ,  1.125,  4.   ], dtype=float32)
    """
    input = _float_input(input, "hardswish")
    return _finish(HardswishFn, input, inplace, "hardswish")


def logsigmoid(input: TensorLike) -> Tensor:
    """``log(sigmoid(x))``, as ``min(x, 0) - log1p(exp(-|x|))`` (no overflow).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.logsigmoid(mp.tensor([0.0], dtype="float64")).numpy().round(6)
    array([-0.693147])
    """
    return LogsigmoidFn.apply(_float_input(input, "logsigmoid"))


def mish(input: TensorLike, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))`` (Misra, 2019).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.mish(mp.tensor([0.0, 1.0], dtype="float64")).numpy().round(6)
    array([0.      , 0.865098])
    """
    input = _float_input(input, "mish")
    return _finish(MishFn, input, inplace, "mish")


def selu(input: TensorLike, inplace: bool = False) -> Tensor:
    """``scale * elu(x, alpha)`` with PyTorch's SELU constants (scale ~1.0507, alpha ~1.6733).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.selu(mp.tensor([1.0], dtype="float64")).numpy().round(6)
    array([1.050701])
    """
    input = _float_input(input, "selu")
    return _finish(ScaledEluFn, input, inplace, "selu", SELU_ALPHA, SELU_SCALE, 1.0, 1.0)


def celu(input: TensorLike, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` where x > 0, else ``alpha * (exp(x / alpha) - 1)``; ``alpha`` must be non-zero.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.celu(mp.tensor([-1.0, 2.0], dtype="float64"), alpha=2.0).numpy().round(6)
    array([-0.786939,  2.      ])
    """
    input = _float_input(input, "celu")
    a = _real(alpha, "alpha", "celu")
    if a == 0:
        raise ValueError("celu: alpha must be non-zero (x / alpha is taken), got 0")
    return _finish(ScaledEluFn, input, inplace, "celu", a, 1.0, 1.0 / a, 1.0 / float(np.float32(a)))


def threshold(input: TensorLike, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x`` where ``x > threshold``, else ``value``; gradient 1 above the threshold, else 0.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.threshold(mp.tensor([-1.0, 0.5, 2.0]), 0.5, -9.0).numpy()
    array([-9., -9.,  2.], dtype=float32)
    """
    input = _float_input(input, "threshold")
    t = _real(threshold, "threshold", "threshold")
    v = _real(value, "value", "threshold")
    return _finish(ThresholdFn, input, inplace, "threshold", t, v)


_threshold = threshold  # for threshold_, whose argument of that name hides the function


def _lambd(lambd, where):
    lam = _real(lambd, "lambd", where)
    if lam < 0:
        raise ValueError(f"{where}: lambd must be >= 0, got {lam}")
    return lam


def hardshrink(input: TensorLike, lambd: float = 0.5) -> Tensor:
    """0 on ``[-lambd, lambd]``, ``x`` outside.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.hardshrink(mp.tensor([-1.0, 0.5, 0.7])).numpy()
    array([-1. ,  0. ,  0.7], dtype=float32)
    """
    return ShrinkFn.apply(_float_input(input, "hardshrink"), _lambd(lambd, "hardshrink"), False)


def softshrink(input: TensorLike, lambd: float = 0.5) -> Tensor:
    """``x - lambd`` above lambd, ``x + lambd`` below -lambd, 0 in between.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.softshrink(mp.tensor([-1.0, 0.25, 2.0])).numpy()
    array([-0.5,  0. ,  1.5], dtype=float32)
    """
    return ShrinkFn.apply(_float_input(input, "softshrink"), _lambd(lambd, "softshrink"), True)


def softsign(input: TensorLike) -> Tensor:
    """``x / (1 + |x|)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.softsign(mp.tensor([-3.0, 1.0])).numpy()
    array([-0.75,  0.5 ], dtype=float32)
    """
    return SoftsignFn.apply(_float_input(input, "softsign"))


def tanhshrink(input: TensorLike) -> Tensor:
    """``x - tanh(x)`` (composed, as in PyTorch).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.tanhshrink(mp.tensor([0.0])).numpy()
    array([0.], dtype=float32)
    """
    input = _float_input(input, "tanhshrink")
    return input - input.tanh()


def softmin(input: TensorLike, dim: Optional[int] = None) -> Tensor:
    """``softmax(-x, dim)``; without ``dim`` as softmax (the last dim up to 2-D, else required).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.softmin(mp.tensor([0.0, 0.0]), dim=0).numpy()
    array([0.5, 0.5], dtype=float32)
    """
    input = _float_input(input, "softmin")
    return softmax(-input, dim)


def glu(input: TensorLike, dim: int = -1) -> Tensor:
    """Gated linear unit: split ``input`` in halves a, b along ``dim``; ``a * sigmoid(b)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.glu(mp.tensor([2.0, 0.0])).numpy()
    array([1.], dtype=float32)
    """
    input = _float_input(input, "glu")
    if input.ndim == 0:
        raise ValueError("glu: input must have at least 1 dimension, got a 0-d tensor")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) \
            or not -input.ndim <= dim < input.ndim:
        raise ValueError(f"glu: dim must be an int in [{-input.ndim}, {input.ndim - 1}], got {dim!r}")
    axis = int(dim) % input.ndim
    if input.shape[axis] % 2:
        raise ValueError(f"glu: the size of dim {dim} must be even (it is halved), "
                         f"got {input.shape[axis]} in shape {input.shape}")
    return GluFn.apply(input, axis)


# --------------------------------------------------------------------------- torch's x_ forms
# PyTorch's in-place spellings, each the op with inplace=True: the result is written
# over ``input`` (recorded in the graph when ``input`` is a result that requires grad).
def relu_(input: Tensor) -> Tensor:
    """``relu(input, inplace=True)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.relu_(mp.tensor([-1.0, 2.0])).numpy()
    array([0., 2.], dtype=float32)
    """
    return relu(input, inplace=True)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """``elu(input, alpha, inplace=True)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.elu_(mp.tensor([2.0])).numpy()
    array([2.], dtype=float32)
    """
    return elu(input, alpha, inplace=True)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``leaky_relu(input, negative_slope, inplace=True)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.leaky_relu_(mp.tensor([-1.0]), 0.5).numpy()
    array([-0.5], dtype=float32)
    """
    return leaky_relu(input, negative_slope, inplace=True)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """``hardtanh(input, min_val, max_val, inplace=True)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.hardtanh_(mp.tensor([3.0])).numpy()
    array([1.], dtype=float32)
    """
    return hardtanh(input, min_val, max_val, inplace=True)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """``celu(input, alpha, inplace=True)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.celu_(mp.tensor([2.0])).numpy()
    array([2.], dtype=float32)
    """
    return celu(input, alpha, inplace=True)


def selu_(input: Tensor) -> Tensor:
    """``selu(input, inplace=True)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.selu_(mp.tensor([0.0])).numpy()
    array([0.], dtype=float32)
    """
    return selu(input, inplace=True)


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:
    """``threshold(input, threshold, value, inplace=True)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.threshold_(mp.tensor([0.0, 2.0]), 1.0, -1.0).numpy()
    array([-1.,  2.], dtype=float32)
    """
    return _threshold(input, threshold, value, inplace=True)


# --------------------------------------------------------------------------- channel dropout
def _channel_dropout(input, p, training, inplace, generator, where, spatial):
    """dropout1d / dropout3d: (N, C, *spatial) or unbatched (C, *spatial), whole channels
    zeroed: dropout2d's per-(n, c) mask on an (N, C, -1, 1) view."""
    input = as_tensor(input)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"{where}: p must be a probability in [0, 1], got {p!r}")
    if input.ndim not in (spatial + 1, spatial + 2):
        raise ValueError(f"{where}: input must be {spatial + 2}-D (N, C, ...) or {spatial + 1}-D "
                         f"(C, ...) unbatched, got shape {input.shape}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{where}: training must be True or False, got {training!r}")
    if not training or p == 0:
        return input
    lead = input.shape[:2] if input.ndim == spatial + 2 else (1, input.shape[0])
    cells = int(np.prod(input.shape[input.ndim - spatial:], dtype=np.int64))  # (not -1: size 0)

    def drop(x):
        return dropout2d(x.reshape(lead + (cells, 1)), p, training, False, generator).reshape(x.shape)
    return write_over(input, where, drop) if inplace else drop(input)


def dropout1d(input: TensorLike, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator: GeneratorLike = None) -> Tensor:
    """Zero whole channels of an (N, C, L) or (C, L) input with probability ``p`` while
    ``training``, scaling the rest by 1/(1-p) (dropout2d's mask, one draw per channel).

    >>> import numpy as np, minipool as mp, minipool.nn.functional as F
    >>> y = F.dropout1d(mp.ones((2, 3, 5)), 0.5, generator=np.random.default_rng(0))
    >>> bool(np.all(y.numpy().std(axis=2) == 0))
    True
    """
    return _channel_dropout(input, p, training, inplace, generator, "dropout1d", 1)


def dropout3d(input: TensorLike, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator: GeneratorLike = None) -> Tensor:
    """dropout1d for (N, C, D, H, W) or (C, D, H, W) inputs.

    >>> import numpy as np, minipool as mp, minipool.nn.functional as F
    >>> y = F.dropout3d(mp.ones((2, 3, 2, 2, 2)), 0.5, generator=np.random.default_rng(0))
    >>> bool(np.all(y.numpy().reshape(6, 8).std(axis=1) == 0))
    True
    """
    return _channel_dropout(input, p, training, inplace, generator, "dropout3d", 3)
