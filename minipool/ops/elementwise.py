"""Elementwise ops: arithmetic with broadcasting, unary maths, activations, where/clip."""
import builtins
from typing import Any, Optional, Tuple, Union

import numpy as np

from minipool import _config
from minipool._promotion import promoted, result_type
from minipool._kernels import activation
from minipool._typing import TensorLike
from minipool._validate import is_real_operand
from minipool.tensor import FLOAT_DTYPES, Function, Tensor, _as_array, get_default_dtype, is_grad_enabled

__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "tanh",
           "sigmoid", "relu", "where", "clip", "cast", "compare", "unbroadcast", "as_tensor",
           "square", "rsqrt", "sin", "cos", "floor", "ceil", "round", "sign", "isnan", "isinf",
           "isfinite", "isclose", "allclose", "equal", "reciprocal"]


def as_tensor(x, like=None):
    """Tensors pass through; numbers and arrays become constant Tensors.

    A Python number takes ``like``'s dtype so float32 stays float32.
    """
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool)) and not isinstance(x, np.generic):
        return Tensor(np.asarray(x, dtype=like.dtype if like.dtype in FLOAT_DTYPES else None))
    return Tensor(_as_array(x))  # as mp.tensor reads data (mp.Tensor(3) would be a shape)


def tensor_argument(op, name, value):
    """``as_tensor(value)``, or a TypeError naming ``op``'s argument ``name`` when ``value``
    (None, a string, a ragged list, ...) is no array of numbers."""
    try:
        return as_tensor(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{op}: {name} must be a tensor (or an array of numbers), got "
                        f"{type(value).__name__}: {e}") from None


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
    """A ValueError naming ``op`` when the shapes of ``a`` and ``b`` cannot broadcast."""
    if a._data.shape == b._data.shape or not b._data.ndim or not a._data.ndim:
        return  # (the common cases, without NumPy's broadcast_shapes call)
    try:
        np.broadcast_shapes(a.shape, b.shape)
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
        if a.dtype.kind != "f":  # (a and b share a dtype) int / int is a float, as in PyTorch
            a, b = a.astype(get_default_dtype()), b.astype(get_default_dtype())
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
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.needs_input_grad[0]:
                # PyTorch's rule: 0 where b == 0 (x ** 0 is constant; b * 0 ** -1 would be NaN)
                ga = unbroadcast(np.where(b == 0, 0, grad * b * np.power(a, b - 1)), a.shape)
            if ctx.needs_input_grad[1]:
                # d/db a^b = a^b log a: 0 where a == 0 and b >= 0 (the limit), as PyTorch; a < 0
                # gives NaN (no real log), a == 0 with b < 0 infinity
                gb = unbroadcast(np.where((a == 0) & (b >= 0), 0, grad * out * np.log(a)), b.shape)
        return ga, gb


def _binary(fn, a, b, name):
    """``fn`` on ``a`` and ``b`` converted to PyTorch's result dtype (``minipool._promotion``).
    The common cases -- two tensors of one dtype, a float tensor with a Python number -- keep
    their dtype with no promotion lookup."""
    if type(a) is Tensor:
        dtype = a._data.dtype
        if type(b) is Tensor:
            if b._data.dtype is not dtype and b._data.dtype != dtype:
                a, b = promoted(a, b)
        elif dtype.kind == "f" and (type(b) is float or type(b) is int):
            b = Tensor._from_result(np.asarray(b, dtype), False)
        else:
            a, b = promoted(a, b)
    elif type(b) is Tensor and b._data.dtype.kind == "f" and (type(a) is float or type(a) is int):
        a = Tensor._from_result(np.asarray(a, b._data.dtype), False)
    else:
        a, b = promoted(a, b)
    _check_broadcast(a, b, name)
    return fn.apply(a, b)


def _is_bool(x):
    return isinstance(x, bool) or (isinstance(x, Tensor) and x._data.dtype == np.bool_)


def _refuse_bool_result(name, a, b):
    """PyTorch implements pow, remainder and floor_divide for no bool result dtype."""
    if result_type(a, b) == np.bool_:
        raise NotImplementedError(f"{name}: not implemented for bool operands (as in PyTorch); "
                                  "cast first, e.g. x.long()")


def _times_alpha(a, b, alpha, name):
    """``b * alpha`` for add/sub's ``alpha`` (b itself when alpha is 1), as PyTorch's."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: alpha must be a real number, got {alpha!r}")
    if alpha == 1:
        return b
    if isinstance(alpha, (float, np.floating)) and all(
            not isinstance(t, Tensor) or t.dtype.kind != "f" for t in (a, b)) and \
            not isinstance(b, float):
        raise RuntimeError(f"{name}: for integral input tensors, argument alpha must not be a "
                           "floating point number (as in PyTorch)")
    if not isinstance(b, Tensor):
        b = as_tensor(b, like=a if isinstance(a, Tensor) else None)
    return mul(b, alpha.item() if isinstance(alpha, np.generic) else alpha)


def add(a: TensorLike, b: TensorLike, *, alpha: Union[int, float] = 1) -> Tensor:
    """Elementwise ``a + alpha * b`` with NumPy broadcasting; a number takes the tensor's dtype.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.add(mp.tensor([1.0, 2.0]), 0.5).numpy()
    array([1.5, 2.5], dtype=float32)
    >>> mp.add(mp.tensor([1.0, 2.0]), mp.tensor([1.0, 1.0]), alpha=3).numpy()
    array([4., 5.], dtype=float32)
    """
    if alpha != 1 or type(alpha) is not int:
        b = _times_alpha(a, b, alpha, "add")
    return _binary(Add, a, b, "add")


def sub(a: TensorLike, b: TensorLike, *, alpha: Union[int, float] = 1) -> Tensor:
    """Elementwise ``a - alpha * b`` with NumPy broadcasting.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sub(mp.tensor([1.0, 2.0]), mp.tensor([[1.0], [2.0]])).numpy()
    array([[ 0.,  1.],
           [-1.,  0.]], dtype=float32)
    """
    if alpha != 1 or type(alpha) is not int:
        b = _times_alpha(a, b, alpha, "sub")
    if _is_bool(a) or _is_bool(b):
        raise RuntimeError("sub: subtraction, the `-` operator, with a bool tensor is not supported "
                           "(as in PyTorch); to invert a mask use `~` or logical_not(), else cast "
                           "first, e.g. x.long()")
    return _binary(Sub, a, b, "sub")


def mul(a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise ``a * b`` with NumPy broadcasting.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.mul(mp.tensor([1.0, 2.0]), 3).numpy()
    array([3., 6.], dtype=float32)
    """
    return _binary(Mul, a, b, "mul")


def div(a: TensorLike, b: TensorLike, *, rounding_mode: Optional[str] = None) -> Tensor:
    """Elementwise ``a / b`` with NumPy broadcasting, as ``torch.div``: true division, or
    with ``rounding_mode="trunc"`` (toward 0) / ``"floor"`` (toward -inf, as ``//``) a
    rounded quotient in the operands' result dtype (integers stay integers) whose
    gradient is 0, as PyTorch's.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.div(mp.tensor([1.0, 3.0]), 2).numpy()
    array([0.5, 1.5], dtype=float32)
    >>> mp.div(mp.tensor([-7, 7]), 2, rounding_mode="trunc").tolist()
    [-3, 3]
    """
    if rounding_mode is None:
        return _binary(Div, a, b, "div")
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    _refuse_bool_result("div", a, b)
    a, b = _integer_division_operands(a, b, "div")
    return RoundedDiv.apply(a, b, rounding_mode)


class RoundedDiv(Function):
    """``a / b`` rounded toward 0 or -inf; the gradient is 0 for both (PyTorch's rule)."""

    @staticmethod
    def forward(ctx, a, b, rounding_mode):
        ctx.shapes = (a.shape, b.shape)
        floor = np.floor_divide(a, b)  # Python's // (NumPy's divmod rule for floats too)
        if rounding_mode == "floor":
            return floor
        if a.dtype.kind == "f":
            return np.trunc(a / b)
        # integers: the floor quotient moves up by one where the division was inexact and negative
        return floor + ((floor * b != a) & ((a < 0) != (b < 0)))

    @staticmethod
    def backward(ctx, grad):
        shape_a, shape_b = ctx.shapes
        return np.zeros(shape_a, grad.dtype), np.zeros(shape_b, grad.dtype), None


class Remainder(Function):
    """``a - floor(a / b) * b`` (Python's ``%``: the sign of ``b``), as ``torch.remainder``;
    :class:`Fmod` swaps in C's rule."""
    _values = staticmethod(np.remainder)
    _quotient = staticmethod(np.floor)  # the rounding of a / b the result subtracts

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.save_for_backward(a, b)
        return cls._values(a, b)

    @classmethod
    def backward(cls, ctx, grad):
        a, b = ctx.saved_tensors
        ga = unbroadcast(grad, a.shape) if ctx.needs_input_grad[0] else None
        gb = None
        if ctx.needs_input_grad[1]:
            gb = unbroadcast(-grad * cls._quotient(a / b), b.shape)
        return ga, gb


class Fmod(Remainder):
    """``a - trunc(a / b) * b`` (C's ``fmod``: the sign of ``a``), as ``torch.fmod``."""
    _values = staticmethod(np.fmod)
    _quotient = staticmethod(np.trunc)


def _integer_division_operands(a, b, name):
    """Tensors for ``a`` and ``b`` of their result dtype (PyTorch's promotion); an integer
    divisor of 0 is PyTorch's ZeroDivisionError."""
    a, b = promoted(a, b)
    if a.dtype.kind in "biu" and np.any(b._data == 0):
        raise ZeroDivisionError(f"{name}: integer division by zero (as in PyTorch); divide floats "
                                "for inf/NaN")
    _check_broadcast(a, b, name)
    return a, b


def remainder(input: TensorLike, other: TensorLike) -> Tensor:
    """``input % other`` with the sign of ``other`` (Python's and ``torch.remainder``'s rule);
    differentiable in both for floats (d/dother = -floor(input / other)).

    >>> import minipool as mp
    >>> mp.remainder(mp.tensor([5, -5]), 3).tolist()
    [2, 1]
    """
    _refuse_bool_result("remainder", input, other)
    a, b = _integer_division_operands(input, other, "remainder")
    return Remainder.apply(a, b)


def fmod(input: TensorLike, other: TensorLike) -> Tensor:
    """``input`` modulo ``other`` with the sign of ``input`` (C's ``fmod``, ``torch.fmod``);
    differentiable in both for floats (d/dother = -trunc(input / other)).

    >>> import minipool as mp
    >>> mp.fmod(mp.tensor([5, -5]), 3).tolist()
    [2, -2]
    """
    _refuse_bool_result("fmod", input, other)
    a, b = _integer_division_operands(input, other, "fmod")
    return Fmod.apply(a, b)


def floor_divide(input: TensorLike, other: TensorLike) -> Tensor:
    """``floor(input / other)``, as ``input // other`` and ``torch.floor_divide``.  Not
    differentiable: a tensor that requires grad is refused here (PyTorch refuses at backward).

    >>> import minipool as mp
    >>> mp.floor_divide(mp.tensor([5, -5]), 2).tolist()
    [2, -3]
    """
    _refuse_bool_result("floor_divide", input, other)
    a, b = _integer_division_operands(input, other, "floor_divide")
    if (a.requires_grad or b.requires_grad) and is_grad_enabled():
        raise RuntimeError("floor_divide: the derivative is not implemented (in PyTorch either); "
                           "divide x.detach(), or use (x / y).floor() for a zero gradient")
    with np.errstate(divide="ignore", invalid="ignore"):
        return Tensor(np.floor_divide(a.numpy(), b.numpy()))


def pow(a: TensorLike, b: TensorLike) -> Tensor:
    """``a ** b``; gradients flow to both (``b`` may be a number).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.pow(mp.tensor([2.0, 3.0]), 2).numpy()
    array([4., 9.], dtype=float32)
    """
    if type(a) is not Tensor or a._data.dtype.kind != "f":  # (a float tensor: _binary's fast path)
        if result_type(a, b) == np.bool_:
            if not isinstance(b, bool):  # PyTorch has bool ** Python bool only
                _refuse_bool_result("pow", a, b)
            return Tensor(np.logical_or(as_tensor(a)._data, not b))  # x ** True = x, x ** False = 1
    return _binary(Pow, a, b, "pow")


class _Unary(Function):
    """y = f(x) with dy/dx computed from x and y; subclasses set ``f`` and ``df``.
    ``uses_input = False`` (df reads only y) saves y alone, so changing x in place
    afterwards is fine, as in PyTorch (whose exp, sqrt, tanh, sigmoid save their result)."""

    uses_input = True

    @classmethod
    def forward(cls, ctx, x):
        y = cls.f(x)
        if cls.uses_input:
            ctx.save_for_backward(x, y)
        else:
            ctx.save_for_backward(y)
        return y

    @classmethod
    def backward(cls, ctx, grad):
        if cls.uses_input:
            x, y = ctx.saved_tensors
        else:
            x, (y,) = None, ctx.saved_tensors
        return grad * cls.df(x, y)


class Neg(Function):
    """-x: its gradient needs nothing saved."""

    @staticmethod
    def forward(ctx, x):
        return np.negative(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Exp(_Unary):
    f = staticmethod(np.exp)
    df = staticmethod(lambda x, y: y)
    uses_input = False


class Log(_Unary):
    f = staticmethod(np.log)
    df = staticmethod(lambda x, y: 1 / x)


class Sqrt(_Unary):
    f = staticmethod(np.sqrt)
    df = staticmethod(lambda x, y: 0.5 / y)
    uses_input = False


class Abs(_Unary):
    f = staticmethod(np.abs)
    df = staticmethod(lambda x, y: np.sign(x))  # 0 at x == 0, as PyTorch


class Tanh(_Unary):
    f = staticmethod(np.tanh)
    df = staticmethod(lambda x, y: 1 - y * y)
    uses_input = False


def _sigmoid(x):
    # Split by sign so exp never overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(_Unary):
    f = staticmethod(_sigmoid)
    df = staticmethod(lambda x, y: y * (1 - y))
    uses_input = False


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


def _threads(n, arrays=2):
    """Threads for a flat ``activation`` kernel over ``n`` elements of ``arrays`` arrays."""
    return _config.kernel_threads(activation.blocks(n), arrays * n)


def flat_in_place_operands(written, read) -> bool:
    """Whether a flat in-place kernel (``add_into``, the optimizer steps) can take these
    arrays: one float dtype and shape, C-contiguous, ``written`` writeable, no two sharing
    memory (else the caller runs NumPy)."""
    arrays = list(written) + list(read)
    dtype, shape = arrays[0].dtype, arrays[0].shape
    if dtype not in FLOAT_DTYPES:
        return False
    for a in arrays:
        if a.dtype != dtype or a.shape != shape or not a.flags.c_contiguous:
            return False
    if not all(a.flags.writeable for a in written):
        return False
    return not any(np.may_share_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])


def add_in_place(out: np.ndarray, g: np.ndarray) -> bool:
    """``out += g`` on minipool's threads (``activation.add_into``: NumPy's bits, one
    rounding per element) when ``flat_in_place_operands`` and the size calls for threads
    (a 4 MiB gradient: 104 us on one thread, 57 us on two); returns whether it did, else
    the caller adds with NumPy."""
    if not flat_in_place_operands([out], [g]):
        return False
    threads = _threads(out.size, 3)
    if threads > 1:
        activation.add_into(out.reshape(-1), g.reshape(-1), threads)
    return threads > 1


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
    return _unary(Exp, _as_float(x))


def log(x: TensorLike) -> Tensor:
    """Elementwise natural logarithm (``-inf`` at 0, NaN below, as NumPy).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.log(mp.tensor([1.0, 4.0])).numpy()
    array([0.       , 1.3862944], dtype=float32)
    """
    return _unary(Log, _as_float(x))


def sqrt(x: TensorLike) -> Tensor:
    """Elementwise square root.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sqrt(mp.tensor([4.0, 9.0])).numpy()
    array([2., 3.], dtype=float32)
    """
    return _unary(Sqrt, _as_float(x))


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
    return _unary(Tanh, _as_float(x))


def sigmoid(x: TensorLike) -> Tensor:
    """Elementwise logistic function ``1 / (1 + exp(-x))``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sigmoid(mp.tensor([0.0])).numpy()
    array([0.5], dtype=float32)
    """
    return _unary(Sigmoid, _as_float(x))


def relu(x: TensorLike, inplace: bool = False) -> Tensor:
    """Elementwise ``max(x, 0)``; the gradient is 0 for ``x <= 0``.

    ``inplace=True`` writes the result over ``x`` (a tensor no graph records, as for
    the other activations) and returns it.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.relu(mp.tensor([-1.0, 0.0, 2.0])).numpy()
    array([0., 0., 2.], dtype=float32)
    """
    if not inplace:
        return _unary(Relu, x)
    from minipool.ops.activations import _finish  # it imports this module
    return _finish(Relu, as_tensor(x), True, "relu")


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


def where(condition: TensorLike, a: Optional[TensorLike] = None,
          b: Optional[TensorLike] = None) -> Union[Tensor, Tuple[Tensor, ...]]:
    """Pick ``a`` where ``condition`` holds, else ``b`` (broadcast); gradient follows the pick.

    With ``condition`` alone, as ``torch.where(condition)``: the indices where it is
    non-zero, one int64 tensor per dimension (``nonzero(condition, as_tuple=True)``).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.where(mp.tensor([True, False]), mp.tensor([1.0, 2.0]), 0.0).numpy()
    array([1., 0.], dtype=float32)
    >>> mp.where(mp.tensor([0, 3, 5]))[0].tolist()
    [1, 2]
    """
    if a is None and b is None:
        from minipool.ops.indexing import nonzero
        return nonzero(condition, as_tuple=True)
    if a is None or b is None:
        raise TypeError("where: give both a and b (values where condition holds and where it "
                        "does not), or neither (the indices where condition is non-zero)")
    cond = np.asarray(condition._data if isinstance(condition, Tensor) else condition, dtype=bool)
    if type(a) is not Tensor or type(b) is not Tensor or a._data.dtype is not b._data.dtype:
        a, b = promoted(a, b)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: condition {cond.shape}, a {a.shape} and b {b.shape} "
                         "cannot be broadcast together") from None
    return Where.apply(cond, a, b)


class Clip(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        out = np.clip(x, lo, hi)  # (tensor bounds may broadcast x to a larger shape)
        # Gradient passes where the value was not clipped (PyTorch's clamp rule: bounds inclusive).
        ctx.shape = x.shape
        mask = np.ones(out.shape, dtype=bool)
        if lo is not None:
            mask &= x >= lo
        if hi is not None:
            mask &= x <= hi
        ctx.mask = mask
        if any(ctx.needs_input_grad[1:]):  # tensor bounds that require grad
            ctx.bounds = (x, lo, hi)
        return out

    @staticmethod
    def backward(ctx, grad):
        # A select, not a multiply: a NaN or inf gradient at a clamped element gives 0
        # (NaN * 0 would be NaN), as PyTorch's clamp backward does.
        zero = grad.dtype.type(0)
        grad_x = unbroadcast(np.where(ctx.mask, grad, zero), ctx.shape)
        if not any(ctx.needs_input_grad[1:]):
            return grad_x, None, None
        # A bound gets the gradient where it is the output (PyTorch: where min > max, max wins).
        x, lo, hi = ctx.bounds
        grad_lo = grad_hi = None
        if ctx.needs_input_grad[1]:
            takes = x < lo if hi is None else (x < lo) & (lo < hi)
            grad_lo = unbroadcast(np.where(takes, grad, zero), lo.shape)
        if ctx.needs_input_grad[2]:
            takes = x > hi if lo is None else (x > hi) | (hi < lo)
            grad_hi = unbroadcast(np.where(takes, grad, zero), hi.shape)
        return grad_x, grad_lo, grad_hi


def clip(x: TensorLike, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:
    """Clamp into ``[min, max]`` (either may be None).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.clip(mp.tensor([-2.0, 0.5, 3.0]), 0.0, 1.0).numpy()
    array([0. , 0.5, 1. ], dtype=float32)
    """
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    if type(x) is Tensor and x._data.dtype.kind == "f" and \
            (min is None or type(min) is float or type(min) is int) and \
            (max is None or type(max) is float or type(max) is int):
        return Clip.apply(x, min, max)  # number bounds keep a float tensor's dtype
    bounds = [v for v in (min, max) if v is not None]
    x, *bounds = promoted(x, *bounds)
    if x.dtype == np.bool_ and not any(isinstance(v, Tensor) for v in (min, max)):
        raise NotImplementedError("clamp: not implemented for bool tensors with number bounds (as "
                                  "in PyTorch); cast first, e.g. x.long()")
    lo, hi = (bounds.pop(0) if v is not None else None for v in (min, max))
    return Clip.apply(x, lo, hi)


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
    if not isinstance(b, Tensor) and not is_real_operand(b):
        raise TypeError(f"{op}: other must be a tensor, a real number or an array of them, "
                        f"got {type(b).__name__}")
    if isinstance(b, Tensor) and b._data.dtype == a._data.dtype:
        b = b._data
    elif a._data.dtype.kind == "f" and (type(b) is float or type(b) is int):
        pass  # NumPy compares a Python number in the tensor's float dtype, as PyTorch
    else:  # compared in PyTorch's result dtype: float32 0.1 == float64 0-d 0.1 is True
        a, b = promoted(a, b)
        b = b._data
    try:
        if type(b) is not float and type(b) is not int:  # (a number broadcasts anywhere)
            np.broadcast_shapes(a.shape, np.shape(b))
    except ValueError:
        raise ValueError(f"{op}: other of shape {np.shape(b)} cannot be broadcast with the "
                         f"tensor's shape {a.shape}") from None
    return Tensor(np.asarray(ufunc(a._data, b), dtype=np.bool_))


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
        return Tensor(x._data.astype(dtype))  # integer results carry no gradient
    return Cast.apply(x, dtype)


# --------------------------------------------------------------------------- more unary maths
class Square(_Unary):
    f = staticmethod(np.square)
    df = staticmethod(lambda x, y: 2 * x)


class Rsqrt(_Unary):
    f = staticmethod(lambda x: 1 / np.sqrt(x))
    df = staticmethod(lambda x, y: -0.5 * y * y * y)  # d x^(-1/2) = -x^(-3/2) / 2
    uses_input = False


class Reciprocal(_Unary):
    f = staticmethod(np.reciprocal)  # 1 / 0 is inf, quietly as in PyTorch
    df = staticmethod(lambda x, y: -y * y)  # d(1/x) = -1/x^2
    uses_input = False


class Sin(_Unary):
    f = staticmethod(np.sin)
    df = staticmethod(lambda x, y: np.cos(x))


class Cos(_Unary):
    f = staticmethod(np.cos)
    df = staticmethod(lambda x, y: -np.sin(x))


def _as_float(x):
    """Integers and bools become the default dtype (float32, as PyTorch) for maths with real results."""
    x = as_tensor(x)
    return x if x.dtype.kind == "f" else Tensor(x._data.astype(get_default_dtype()))


def square(x: TensorLike) -> Tensor:
    """Elementwise ``x * x`` (integers stay integers, bools become int64, as in PyTorch).

    >>> import minipool as mp
    >>> mp.square(mp.tensor([-2.0, 3.0])).numpy()
    array([4., 9.], dtype=float32)
    """
    x = as_tensor(x)
    if x.dtype == np.bool_:
        x = Tensor(x._data.astype(np.int64))
    return Square.apply(x)


def rsqrt(x: TensorLike) -> Tensor:
    """Elementwise ``1 / sqrt(x)`` (inf at 0, NaN below; integers give float32).

    >>> import minipool as mp
    >>> mp.rsqrt(mp.tensor([4.0, 0.25])).numpy()
    array([0.5, 2. ], dtype=float32)
    """
    return Rsqrt.apply(_as_float(x))


def reciprocal(x: TensorLike) -> Tensor:
    """Elementwise ``1 / x`` (inf at 0; integers and bools give the default float dtype, as
    ``torch.reciprocal``).

    >>> import minipool as mp
    >>> mp.reciprocal(mp.tensor([2.0, -0.5])).numpy()
    array([ 0.5, -2. ], dtype=float32)
    >>> mp.reciprocal(mp.tensor([4])).numpy()
    array([0.25], dtype=float32)
    """
    return Reciprocal.apply(_as_float(x))


def sin(x: TensorLike) -> Tensor:
    """Elementwise sine (radians; integers give float32).

    >>> import minipool as mp
    >>> mp.sin(mp.tensor([0.0])).numpy()
    array([0.], dtype=float32)
    """
    return Sin.apply(_as_float(x))


def cos(x: TensorLike) -> Tensor:
    """Elementwise cosine (radians; integers give float32).

    >>> import minipool as mp
    >>> mp.cos(mp.tensor([0.0])).numpy()
    array([1.], dtype=float32)
    """
    return Cos.apply(_as_float(x))


class _Step(Function):
    """A piecewise-constant function ``f``: the gradient is 0 everywhere, as in PyTorch."""

    @classmethod
    def forward(cls, ctx, x, *args):
        return cls.f(x, *args)

    @staticmethod
    def backward(ctx, grad):
        return np.zeros_like(grad), None  # (None: round's decimals)


def _round_half_even(x, decimals):
    if decimals == 0:
        return np.rint(x)  # halves go to the even neighbour, as in PyTorch
    # PyTorch's formula, with the power of ten in the tensor's dtype
    scale = np.asarray(10.0 ** builtins.abs(decimals), dtype=x.dtype)
    return np.rint(x * scale) / scale if decimals > 0 else np.rint(x / scale) * scale


def _sign(a):
    return (a > 0).astype(a.dtype) - (a < 0).astype(a.dtype)  # False at NaN, so NaN gives 0


class Floor(_Step):
    f = staticmethod(np.floor)


class Ceil(_Step):
    f = staticmethod(np.ceil)


class Round(_Step):
    f = staticmethod(_round_half_even)


class Sign(_Step):
    f = staticmethod(_sign)


def _rounding(name, fn, x, *args):
    x = as_tensor(x)
    if x.dtype == np.bool_:
        raise TypeError(f"{name}: not implemented for bool tensors (as in PyTorch); cast first, "
                        "e.g. x.float()")
    if x.dtype.kind != "f":
        return Tensor(x._data.copy())  # an integer is already whole
    return fn.apply(x, *args)


def floor(x: TensorLike) -> Tensor:
    """Elementwise largest whole number <= x (integers unchanged); gradient 0.

    >>> import minipool as mp
    >>> mp.floor(mp.tensor([-1.5, 1.5])).numpy()
    array([-2.,  1.], dtype=float32)
    """
    return _rounding("floor", Floor, x)


def ceil(x: TensorLike) -> Tensor:
    """Elementwise smallest whole number >= x (integers unchanged); gradient 0.

    >>> import minipool as mp
    >>> mp.ceil(mp.tensor([-1.5, 1.5])).numpy()
    array([-1.,  2.], dtype=float32)
    """
    return _rounding("ceil", Ceil, x)


def round(x: TensorLike, *, decimals: int = 0) -> Tensor:
    """Elementwise round to ``decimals`` places, halves to even (``round(2.5) == 2``);
    gradient 0.  Integers are returned unchanged (only with ``decimals=0``, as in PyTorch).

    >>> import minipool as mp
    >>> mp.round(mp.tensor([0.5, 1.5, 2.5, -0.5])).numpy()
    array([ 0.,  2.,  2., -0.], dtype=float32)
    >>> mp.round(mp.tensor([1.26]), decimals=1).numpy()
    array([1.3], dtype=float32)
    """
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise TypeError(f"round: decimals must be an int, got {decimals!r}")
    x = as_tensor(x)
    if decimals != 0 and x.dtype.kind != "f":
        raise TypeError(f"round: decimals={decimals} needs a floating-point tensor, got {x.dtype}")
    return _rounding("round", Round, x, int(decimals))


def sign(x: TensorLike) -> Tensor:
    """Elementwise -1, 0 or 1 (0 at +-0 and NaN, bools unchanged, as in PyTorch); gradient 0.

    >>> import minipool as mp
    >>> mp.sign(mp.tensor([-2.0, 0.0, 3.0, float("nan")])).numpy()
    array([-1.,  0.,  1.,  0.], dtype=float32)
    """
    x = as_tensor(x)
    if x.dtype == np.bool_:
        return Tensor(x._data.copy())
    if x.dtype.kind != "f":
        return Tensor(_sign(x._data))
    return Sign.apply(x)


def _test(fn, x):
    x = as_tensor(x)
    return Tensor(np.asarray(fn(x._data), dtype=np.bool_))


def isnan(x: TensorLike) -> Tensor:
    """Elementwise ``x != x``: a bool tensor.

    >>> import minipool as mp
    >>> mp.isnan(mp.tensor([1.0, float("nan")])).numpy()
    array([False,  True])
    """
    return _test(np.isnan, x)


def isinf(x: TensorLike) -> Tensor:
    """Elementwise ``x`` is +inf or -inf: a bool tensor.

    >>> import minipool as mp
    >>> mp.isinf(mp.tensor([1.0, float("-inf")])).numpy()
    array([False,  True])
    """
    return _test(np.isinf, x)


def isfinite(x: TensorLike) -> Tensor:
    """Elementwise neither inf nor NaN: a bool tensor.

    >>> import minipool as mp
    >>> mp.isfinite(mp.tensor([1.0, float("inf"), float("nan")])).numpy()
    array([ True, False, False])
    """
    return _test(np.isfinite, x)


def _close_operands(name, a, b):
    a, b = as_tensor(a), as_tensor(b)
    if a.dtype != b.dtype:
        raise TypeError(f"{name}: input and other must have the same dtype, got {a.dtype} "
                        f"and {b.dtype} (as in PyTorch); cast one, e.g. other.to(input.dtype)")
    _check_broadcast(a, b, name)
    return a._data, b._data


def isclose(input: TensorLike, other: TensorLike, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Tensor:
    """Elementwise ``|input - other| <= atol + rtol * |other|`` (broadcast): a bool tensor.
    Infinities are close only to themselves.

    >>> import minipool as mp
    >>> mp.isclose(mp.tensor([1.0, 2.0]), mp.tensor([1.0 + 1e-7, 2.1])).numpy()
    array([ True, False])
    """
    a, b = _close_operands("isclose", input, other)
    return Tensor(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=bool(equal_nan)))


def allclose(input: TensorLike, other: TensorLike, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """Whether every element of ``input`` is close to ``other`` (see :func:`isclose`):
    a Python bool.

    >>> import minipool as mp
    >>> mp.allclose(mp.tensor([1.0, 2.0]), mp.tensor([1.0, 2.0 + 1e-6]))
    True
    """
    return builtins.bool(np.all(isclose(input, other, rtol, atol, equal_nan)._data))


def equal(input: TensorLike, other: TensorLike) -> bool:
    """True if both have the same shape and equal elements (compared after type promotion;
    NaN is not equal to itself): a Python bool, as ``torch.equal``.

    >>> import minipool as mp
    >>> mp.equal(mp.tensor([1.0, 2.0]), mp.tensor([1.0, 2.0])), mp.equal(mp.tensor([1.0]), mp.tensor([[1.0]]))
    (True, False)
    """
    a, b = as_tensor(input), as_tensor(other)
    return a.shape == b.shape and builtins.bool(np.all(a._data == b._data))
