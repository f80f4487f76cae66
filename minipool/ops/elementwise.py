"""Elementwise ops: arithmetic with broadcasting, unary maths, activations, where/clip."""
from typing import Any, Optional

import numpy as np

from minipool import _config
from minipool._kernels import activation
from minipool._typing import TensorLike
from minipool._validate import is_real_operand
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "tanh",
           "sigmoid", "relu", "where", "clip", "cast", "compare", "unbroadcast", "as_tensor"]


def as_tensor(x, like=None):
    """Tensors pass through; numbers and arrays become constant Tensors.

    A Python number takes ``like``'s dtype so float32 stays float32.
    """
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool)) and not isinstance(x, np.generic):
        return Tensor(np.asarray(x, dtype=like.dtype if like.dtype in FLOAT_DTYPES else None))
    return Tensor(x)


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def _check_broadcast(a, b, op):
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return np.add(a, b)

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return unbroadcast(grad, sa), unbroadcast(grad, sb)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        return unbroadcast(grad, sa), unbroadcast(-grad, sb)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(grad * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.divide(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-grad * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = np.power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(grad * b * np.power(a, b - 1), a.shape)
        if ctx.needs_input_grad[1]:
            # d/db a^b = a^b log a; defined as 0 where a == 0 (the limit for b > 0).
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a > 0, np.log(np.where(a > 0, a, 1)), np.where(a == 0, 0, np.nan))
            gb = unbroadcast(grad * out * log_a, b.shape)
        return ga, gb


def _binary(fn, a, b, name):
    if not isinstance(a, Tensor):
        a = as_tensor(a, like=b)
    if not isinstance(b, Tensor):
        b = as_tensor(b, like=a)
    _check_broadcast(a, b, name)
    return fn.apply(a, b)


def add(a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise ``a + b`` with NumPy broadcasting; a number takes the tensor's dtype.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.add(mp.tensor([1.0, 2.0]), 0.5).numpy()
    array([1.5, 2.5], dtype=float32)
    """
    return _binary(Add, a, b, "add")


def sub(a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise ``a - b`` with NumPy broadcasting.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sub(mp.tensor([1.0, 2.0]), mp.tensor([[1.0], [2.0]])).numpy()
    array([[ 0.,  1.],
           [-1.,  0.]], dtype=float32)
    """
    return _binary(Sub, a, b, "sub")


def mul(a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise ``a * b`` with NumPy broadcasting.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.mul(mp.tensor([1.0, 2.0]), 3).numpy()
    array([3., 6.], dtype=float32)
    """
    return _binary(Mul, a, b, "mul")


def div(a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise ``a / b`` with NumPy broadcasting.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.div(mp.tensor([1.0, 3.0]), 2).numpy()
    array([0.5, 1.5], dtype=float32)
    """
    return _binary(Div, a, b, "div")


def pow(a: TensorLike, b: TensorLike) -> Tensor:
    """``a ** b``; gradients flow to both (``b`` may be a number).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.pow(mp.tensor([2.0, 3.0]), 2).numpy()
    array([4., 9.], dtype=float32)
    """
    return _binary(Pow, a, b, "pow")


class _Unary(Function):
    """y = f(x) with dy/dx computed from x and y; subclasses set ``f`` and ``df``."""

    @classmethod
    def forward(cls, ctx, x):
        y = cls.f(x)
        ctx.save_for_backward(x, y)
        return y

    @classmethod
    def backward(cls, ctx, grad):
        x, y = ctx.saved_tensors
        return grad * cls.df(x, y)


class Neg(_Unary):
    f = staticmethod(np.negative)
    df = staticmethod(lambda x, y: -np.ones_like(x))


class Exp(_Unary):
    f = staticmethod(np.exp)
    df = staticmethod(lambda x, y: y)


class Log(_Unary):
    f = staticmethod(np.log)
    df = staticmethod(lambda x, y: 1 / x)


class Sqrt(_Unary):
    f = staticmethod(np.sqrt)
    df = staticmethod(lambda x, y: 0.5 / y)


class Abs(_Unary):
    f = staticmethod(np.abs)
    df = staticmethod(lambda x, y: np.sign(x))  # 0 at x == 0, as PyTorch


class Tanh(_Unary):
    f = staticmethod(np.tanh)
    df = staticmethod(lambda x, y: 1 - y * y)


def _sigmoid(x):
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(_Unary):
    f = staticmethod(_sigmoid)
    df = staticmethod(lambda x, y: y * (1 - y))


class Relu(Function):
    """PyTorch's ReLU: ``0 if x < 0 else x`` (NaN and -0.0 pass), gradient ``+0`` where
    the output is <= 0 and the incoming gradient's bits unchanged elsewhere.

    Float tensors go through ``minipool/_kernels/activation.pyx``: one parallel
    pass each way, and backward reads the saved output (no mask is kept)."""

    @staticmethod
    def forward(ctx, x):
        if x.dtype not in FLOAT_DTYPES:
            return np.maximum(x, 0)
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)  # (never for a 0-d array, which it would make 1-d)
        y = np.empty_like(x)
        activation.relu_forward(x.reshape(-1), y.reshape(-1), _threads(x.size))
        if ctx.requires_grad:
            ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        grad = np.asarray(grad, dtype=y.dtype)
        if not grad.flags.c_contiguous:
            grad = np.ascontiguousarray(grad)
        out = np.empty_like(y)
        activation.relu_backward(y.reshape(-1), grad.reshape(-1), out.reshape(-1), _threads(y.size))
        return out


def _threads(n):
    return _config.kernel_threads(activation.blocks(n), 2 * n)


def _unary(fn, x):
    return fn.apply(as_tensor(x))


def neg(x: TensorLike) -> Tensor:
    """Elementwise ``-x``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.neg(mp.tensor([1.0, -2.0])).numpy()
    array([-1.,  2.], dtype=float32)
    """
    return _unary(Neg, x)


def exp(x: TensorLike) -> Tensor:
    """Elementwise ``e ** x``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.exp(mp.tensor([0.0, 1.0])).numpy()
    array([1.      , 2.718282], dtype=float32)
    """
    return _unary(Exp, x)


def log(x: TensorLike) -> Tensor:
    """Elementwise natural logarithm (``-inf`` at 0, NaN below, as NumPy).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.log(mp.tensor([1.0, 4.0])).numpy()
    array([0.       , 1.3862944], dtype=float32)
    """
    return _unary(Log, x)


def sqrt(x: TensorLike) -> Tensor:
    """Elementwise square root.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sqrt(mp.tensor([4.0, 9.0])).numpy()
    array([2., 3.], dtype=float32)
    """
    return _unary(Sqrt, x)


def abs(x: TensorLike) -> Tensor:
    """Elementwise absolute value ``|x|``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.abs(mp.tensor([-1.5, 0.0, 2.0])).numpy()
    array([1.5, 0. , 2. ], dtype=float32)
    """
    return _unary(Abs, x)


def tanh(x: TensorLike) -> Tensor:
    """Elementwise hyperbolic tangent.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.tanh(mp.tensor([0.0])).numpy()
    array([0.], dtype=float32)
    """
    return _unary(Tanh, x)


def sigmoid(x: TensorLike) -> Tensor:
    """Elementwise logistic function ``1 / (1 + exp(-x))``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sigmoid(mp.tensor([0.0])).numpy()
    array([0.5], dtype=float32)
    """
    return _unary(Sigmoid, x)


def relu(x: TensorLike) -> Tensor:
    """Elementwise ``max(x, 0)``; the gradient is 0 for ``x <= 0``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.relu(mp.tensor([-1.0, 0.0, 2.0])).numpy()
    array([0., 0., 2.], dtype=float32)
    """
    return _unary(Relu, x)


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = cond
        ctx.shapes = (a.shape, b.shape)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        sa, sb = ctx.shapes
        zero = np.zeros((), grad.dtype)
        return (None, unbroadcast(np.where(ctx.cond, grad, zero), sa),
                unbroadcast(np.where(ctx.cond, zero, grad), sb))


def where(condition: TensorLike, a: TensorLike, b: TensorLike) -> Tensor:
    """Pick ``a`` where ``condition`` holds, else ``b`` (broadcast); gradient follows the pick.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.where(mp.tensor([True, False]), mp.tensor([1.0, 2.0]), 0.0).numpy()
    array([1., 0.], dtype=float32)
    """
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    a = a if isinstance(a, Tensor) else as_tensor(a, like=b if isinstance(b, Tensor) else None)
    b = b if isinstance(b, Tensor) else as_tensor(b, like=a)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: condition {cond.shape}, a {a.shape} and b {b.shape} "
                         "cannot be broadcast together") from None
    return Where.apply(cond, a, b)


class Clip(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        out = np.clip(x, lo, hi)
        # Gradient passes where the value was not clipped (PyTorch's clamp rule: bounds inclusive).
        mask = np.ones(x.shape, dtype=bool)
        if lo is not None:
            mask &= x >= lo
        if hi is not None:
            mask &= x <= hi
        ctx.mask = mask
        return out

    @staticmethod
    def backward(ctx, grad):
        # A select, not a multiply: a NaN or inf gradient at a clamped element gives 0
        # (NaN * 0 would be NaN), as PyTorch's clamp backward does.
        return np.where(ctx.mask, grad, grad.dtype.type(0)), None, None


def clip(x: TensorLike, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:
    """Clamp into ``[min, max]`` (either may be None).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.clip(mp.tensor([-2.0, 0.5, 3.0]), 0.0, 1.0).numpy()
    array([0. , 0.5, 1. ], dtype=float32)
    """
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    return Clip.apply(as_tensor(x), min, max)


COMPARISONS = {np.less: "lt", np.less_equal: "le", np.greater: "gt", np.greater_equal: "ge",
               np.equal: "eq", np.not_equal: "ne"}


def compare(ufunc: np.ufunc, a: Tensor, b: TensorLike) -> Tensor:
    """``ufunc`` (np.less, np.equal, ...) elementwise with broadcasting: a bool tensor,
    no gradient (the comparison operators and ``lt``/``eq``/... methods).  ``b`` is a
    tensor, a real number or an array of them.

    >>> import numpy as np, minipool as mp
    >>> from minipool.ops.elementwise import compare
    >>> compare(np.less, mp.tensor([1.0, 3.0]), 2).numpy()
    array([ True, False])
    """
    op = COMPARISONS[ufunc]
    if isinstance(b, Tensor):
        b = b.data
    elif not is_real_operand(b):
        raise TypeError(f"{op}: other must be a tensor, a real number or an array of them, "
                        f"got {type(b).__name__}")
    try:
        np.broadcast_shapes(a.shape, np.shape(b))
    except ValueError:
        raise ValueError(f"{op}: other of shape {np.shape(b)} cannot be broadcast with the "
                         f"tensor's shape {a.shape}") from None
    return Tensor(np.asarray(ufunc(a.data, b), dtype=np.bool_))


def compare_operator(ufunc: np.ufunc, a: Tensor, b: Any) -> Any:
    """``a < b``, ``a == b``, ...: as :func:`compare`, but NotImplemented for a ``b`` that is
    no tensor, number or array, so Python answers (``t == None`` is False, ``t < "a"``
    a TypeError), as with PyTorch's tensors."""
    if not isinstance(b, Tensor) and not is_real_operand(b):
        return NotImplemented
    return compare(ufunc, a, b)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.source_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.astype(ctx.source_dtype), None


def cast(x, dtype):
    if dtype is None:  # np.dtype(None) would quietly mean float64
        raise TypeError("astype: dtype must be a dtype (e.g. mp.float32 or 'int64'), got None")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"astype: dtype must be a dtype (e.g. mp.float32 or 'int64'), "
                        f"got {dtype!r}") from None
    if x.dtype == dtype:
        return x
    if x.requires_grad and dtype not in FLOAT_DTYPES:
        return Tensor(x.data.astype(dtype))  # integer results carry no gradient
    return Cast.apply(x, dtype)
