"""More activations (leaky_relu, gelu, silu, elu, relu6, hardtanh, softplus) and channel dropout.

Each op is one Function whose forward and backward follow PyTorch's formulas,
including what happens at the kinks and for NaN/inf inputs:

* leaky_relu: gradient 1 where x > 0, else ``negative_slope`` (so at 0 and at NaN too).
* hardtanh / relu6: gradient 1 strictly inside (min_val, max_val), else 0: at and
  beyond the bounds, and at NaN.
* elu: gradient 1 where x > 0, else ``alpha * exp(x)`` (NaN at NaN).
* softplus: linear (gradient 1) where ``beta * x > threshold``.
* gelu / silu: the plain formulas, so gelu(-inf) and silu(-inf) are NaN as in PyTorch.

For a NaN input PyTorch's CPU kernels disagree with themselves: the vectorised
body of a tensor and its last few elements (a scalar loop) give hardtanh
gradient 0 vs 1 and elu gradient NaN vs 1.  minipool gives what the vectorised
body gives (what every element of a large tensor but its tail sees).  One
deliberate difference: PyTorch's float32 gelu(+inf) is NaN, minipool's is +inf
(the float64 value, and the limit).

``inplace=True`` is honoured when no graph is being recorded for the input (it is
written over and returned); on a tensor that needs a gradient it raises and
names the out-of-place call, since minipool's graph does not track in-place writes.
"""
import math
import numbers
import warnings
from typing import Optional

import numpy as np

from minipool import _config, _random
from minipool._kernels import activation
from minipool._typing import GeneratorLike, TensorLike
from minipool.ops import inplace as _inplace
from minipool.ops.elementwise import as_tensor, relu, where
from minipool.ops.nn_ops import DropoutFn, inverted_dropout_mask
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["leaky_relu", "gelu", "silu", "elu", "relu6", "hardtanh", "softplus", "dropout2d",
           "keras_relu"]


def _float_input(input, where):
    input = as_tensor(input)
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where}: input must be float32 or float64, got {input.dtype}")
    return input


def _real(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")
    return float(value)


def _finish(fn, input, inplace, where, *args):
    """Apply ``fn``; with ``inplace`` write the result over ``input`` and return it."""
    if not inplace:
        return fn.apply(input, *args)
    return write_over(input, where, lambda x: fn.apply(x, *args))


def write_over(input, where, op):
    """``op(input)`` written over ``input`` (PyTorch's ``inplace=True``): recorded in the graph
    when ``input`` is a result that requires grad (``nn.ReLU(inplace=True)`` after a conv or a
    batch norm); a leaf that requires grad refuses, as PyTorch's in-place ops do."""
    return _inplace._pointwise_(input, f"{where}(inplace=True)", op)


def _scalar(value, dtype):
    return np.asarray(value, dtype=dtype)


class LeakyReluFn(Function):
    @staticmethod
    def forward(ctx, x, slope):
        positive = x > 0
        out = np.where(positive, x, x * _scalar(slope, x.dtype))
        if ctx.requires_grad:
            ctx.positive, ctx.slope = positive, slope
        return out

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.positive, grad, grad * _scalar(ctx.slope, grad.dtype)), None


def leaky_relu(input: TensorLike, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` where x > 0, else ``negative_slope * x``, as ``torch.nn.functional.leaky_relu``.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.leaky_relu(mp.tensor([-2.0, 0.0, 3.0]), 0.1).numpy()
    array([-0.2,  0. ,  3. ], dtype=float32)
    """
    input = _float_input(input, "leaky_relu")
    slope = _real(negative_slope, "negative_slope", "leaky_relu")
    return _finish(LeakyReluFn, input, inplace, "leaky_relu", slope)


class HardtanhFn(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        # np.clip keeps NaN, as PyTorch's clamp does
        out = np.clip(x, _scalar(lo, x.dtype), _scalar(hi, x.dtype))
        if ctx.requires_grad:
            # gradient only strictly inside: 0 at the bounds (PyTorch) and at NaN
            ctx.blocked = ~((x > lo) & (x < hi))
        return out

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.blocked, np.zeros((), grad.dtype), grad), None, None


def hardtanh(input: TensorLike, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """Clamp into ``[min_val, max_val]``; gradient 1 strictly inside, 0 at the bounds and outside.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.hardtanh(mp.tensor([-3.0, 0.5, 3.0])).numpy()
    array([-1. ,  0.5,  1. ], dtype=float32)
    """
    input = _float_input(input, "hardtanh")
    lo = _real(min_val, "min_val", "hardtanh")
    hi = _real(max_val, "max_val", "hardtanh")
    if lo > hi:
        raise ValueError(f"hardtanh: min_val must be <= max_val, got min_val={lo}, max_val={hi}")
    return _finish(HardtanhFn, input, inplace, "hardtanh", lo, hi)


def keras_relu(input: TensorLike, max_value: Optional[float] = None, negative_slope: float = 0.0,
               threshold: float = 0.0, inplace: bool = False) -> Tensor:
    """Keras's piecewise ReLU (``nn.ReLU`` with Keras's arguments): ``max_value`` if
    ``x >= max_value``, ``x`` if ``threshold <= x < max_value``, else
    ``negative_slope * (x - threshold)``; each piece carries its own gradient.

    >>> import minipool as mp
    >>> keras_relu(mp.tensor([-2.0, 0.5, 3.0, 8.0]), 6.0, 0.1, 1.0).numpy()
    array([-0.3 , -0.05,  3.  ,  6.  ], dtype=float32)
    """
    x = as_tensor(input)
    if max_value is None and negative_slope == 0 and threshold == 0:
        return relu(x, inplace)
    if inplace:
        return write_over(x, "ReLU", lambda t: keras_relu(t, max_value, negative_slope, threshold))
    below = negative_slope * (x - threshold) if negative_slope else 0.0
    # x == threshold takes the x piece (Keras's formula) unless threshold is 0, where both
    # pieces give 0 and the lower one's slope is the gradient of relu/leaky_relu at 0 (PyTorch,
    # TensorFlow).  NaN propagates: through the sloped piece when there is one (gradient
    # negative_slope, as leaky_relu), else through the x piece (gradient 1, as relu6)
    upper = x._data > threshold if threshold == 0 else x._data >= threshold
    if not negative_slope:
        upper = upper | np.isnan(x._data)
    y = where(upper, x, below)
    if max_value is not None:
        y = where(x._data >= max_value, max_value, y)
    return y


def relu6(input: TensorLike, inplace: bool = False) -> Tensor:
    """``min(max(x, 0), 6)``: hardtanh(x, 0, 6), so the gradient is 0 at 0 and at 6.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.relu6(mp.tensor([-1.0, 3.0, 9.0])).numpy()
    array([0., 3., 6.], dtype=float32)
    """
    input = _float_input(input, "relu6")
    return _finish(HardtanhFn, input, inplace, "relu6", 0.0, 6.0)


class EluFn(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        negative = ~(x > 0)  # NaN takes the exp branch: NaN value and gradient
        e = np.exp(np.where(negative, x, np.zeros((), x.dtype)))
        out = np.where(negative, _scalar(alpha, x.dtype) * (e - 1), x)
        if ctx.requires_grad:
            ctx.negative, ctx.e, ctx.alpha = negative, e, alpha
        return out

    @staticmethod
    def backward(ctx, grad):
        slope = _scalar(ctx.alpha, grad.dtype) * ctx.e
        return np.where(ctx.negative, grad * slope, grad), None


def elu(input: TensorLike, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` where x > 0, else ``alpha * (exp(x) - 1)``, as ``torch.nn.functional.elu``.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.elu(mp.tensor([0.0, 2.0])).numpy()
    array([0., 2.], dtype=float32)
    """
    input = _float_input(input, "elu")
    a = _real(alpha, "alpha", "elu")
    return _finish(EluFn, input, inplace, "elu", a)


def _sigmoid(x):
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class SiluFn(Function):
    @staticmethod
    def forward(ctx, x):
        s = _sigmoid(x)
        if ctx.requires_grad:
            ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * (s * (1 + x * (1 - s)))


def silu(input: TensorLike, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (also called swish).

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.silu(mp.tensor([0.0, 1.0])).numpy().round(4)
    array([0.    , 0.7311], dtype=float32)
    """
    input = _float_input(input, "silu")
    return _finish(SiluFn, input, inplace, "silu")


_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_CUBIC = 0.044715


def _erf(x):
    """Elementwise erf in x's dtype: libm's erf in double precision, rounded (NumPy has no
    erf ufunc; ``minipool/_kernels/activation.pyx`` runs it over the array in parallel)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    activation.erf(flat, out, _config.kernel_threads(activation.blocks(flat.size), 8 * flat.size))
    return out.reshape(x.shape)


class GeluFn(Function):
    @staticmethod
    def forward(ctx, x, approximate):
        if approximate == "tanh":
            inner = _scalar(_SQRT_2_OVER_PI, x.dtype) * (x + _scalar(_GELU_CUBIC, x.dtype) * x * x * x)
            t = np.tanh(inner)
            out = _scalar(0.5, x.dtype) * x * (1 + t)
            if ctx.requires_grad:
                ctx.save_for_backward(x, t)
        else:
            cdf = _scalar(0.5, x.dtype) * (1 + _erf(x * _scalar(_SQRT_HALF, x.dtype)))
            out = x * cdf
            if ctx.requires_grad:
                ctx.save_for_backward(x, cdf)
        ctx.approximate = approximate
        return out

    @staticmethod
    def backward(ctx, grad):
        x, saved = ctx.saved_tensors
        dt = grad.dtype
        if ctx.approximate == "tanh":
            t = saved
            d_inner = _scalar(_SQRT_2_OVER_PI, dt) * (1 + _scalar(3 * _GELU_CUBIC, dt) * x * x)
            d = _scalar(0.5, dt) * (1 + t) + _scalar(0.5, dt) * x * (1 - t * t) * d_inner
        else:
            pdf = _scalar(_INV_SQRT_2PI, dt) * np.exp(_scalar(-0.5, dt) * x * x)
            d = saved + x * pdf
        return grad * d, None


def gelu(input: TensorLike, approximate: str = "none") -> Tensor:
    """``x * Phi(x)`` (Phi: the standard normal CDF, via erf), or with
    ``approximate="tanh"`` ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.gelu(mp.tensor([0.0, 1.0], dtype="float64")).numpy().round(6)
    array([0.      , 0.841345])
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    input = _float_input(input, "gelu")
    return GeluFn.apply(input, approximate)


class SoftplusFn(Function):
    @staticmethod
    def forward(ctx, x, beta, threshold):
        bx = x * _scalar(beta, x.dtype)
        linear = bx > threshold
        # log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)): no overflow for large z
        soft = (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / _scalar(beta, x.dtype)
        out = np.where(linear, x, soft)
        if ctx.requires_grad:
            ctx.bx, ctx.linear = bx, linear
        return out

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.linear, grad, grad * _sigmoid(ctx.bx).astype(grad.dtype, copy=False)), None, None


def softplus(input: TensorLike, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta x)) / beta``, and ``x`` itself where ``beta * x > threshold``.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.softplus(mp.tensor([0.0, 30.0], dtype="float64")).numpy().round(6)
    array([ 0.693147, 30.      ])
    """
    input = _float_input(input, "softplus")
    b = _real(beta, "beta", "softplus")
    if b == 0:
        raise ValueError("softplus: beta must be non-zero (it divides the result), got 0")
    t = _real(threshold, "threshold", "softplus")
    return SoftplusFn.apply(input, b, t)


class ChannelDropoutFn(DropoutFn):
    """Dropout of whole channels (DropoutFn's backward)."""

    @staticmethod
    def forward(ctx, x, p, generator):
        # one draw per (sample, channel), broadcast over the spatial dims
        ctx.mask = inverted_dropout_mask(x.shape[:2] + (1,) * (x.ndim - 2), p, generator, x.dtype)
        return x * ctx.mask


def dropout2d(input: TensorLike, p: float = 0.5, training: bool = True, inplace: bool = False,
              generator: GeneratorLike = None) -> Tensor:
    """Zero whole channels: each ``input[n, c]`` is zeroed with probability ``p``
    while ``training`` and the kept ones are scaled by 1/(1-p).

    ``input`` is (N, C, H, W).  As PyTorch, a 3-D input is taken as (N, C, L)
    (with PyTorch's warning that this is channel-wise 1-D dropout), and 2-D and
    5-D inputs work with a deprecation warning.  ``generator`` (a
    ``np.random.Generator``) makes the mask reproducible; without one the shared
    default from ``minipool._random`` is used.

    >>> import numpy as np, minipool as mp
    >>> import minipool.nn.functional as F
    >>> y = F.dropout2d(mp.ones((2, 3, 4, 4)), 0.5, generator=np.random.default_rng(0))
    >>> bool(np.all(y.numpy().reshape(6, 16).std(axis=1) == 0))
    True
    """
    input = as_tensor(input)
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout2d: p must be a probability in [0, 1], got {p!r}")
    generator = _random.resolve(generator, "dropout2d")
    if input.ndim < 2:
        raise ValueError(f"dropout2d: input must be (N, C, H, W) (at least 2 dimensions), "
                         f"got shape {input.shape}")
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise "
                      "1D dropout behavior is desired - input is interpreted as shape (N, C, L), "
                      "where C is the channel dim (as PyTorch does).", UserWarning, stacklevel=2)
    elif input.ndim != 4:
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated "
                      "in PyTorch; use dropout instead.", UserWarning, stacklevel=2)
    if not training or p == 0:
        return input
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"dropout2d: input must be float32 or float64, got {input.dtype}")
    return _finish(ChannelDropoutFn, input, inplace, "dropout2d", float(p), generator)
