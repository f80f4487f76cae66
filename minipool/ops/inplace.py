"""In-place ops (``add_``, ``mul_``, ``+=``, ``fill_``, ``copy_``, ``clamp_``, ...) with
PyTorch's safety rules, and the copies (``clone``, ``contiguous``) with the small
Functions they need.  Tensor's methods of the same names call these.
"""
from typing import Optional

import numpy as np

from minipool._promotion import check_inplace
from minipool._typing import TensorLike
from minipool._validate import is_real, is_real_operand
from minipool.ops import elementwise as ew
from minipool.ops.shape import plain_index
from minipool.tensor import FLOAT_DTYPES, Function, Tensor, _grad_mode, _version_of, no_grad

__all__ = ["clone", "contiguous", "add_", "sub_", "mul_", "div_", "neg_", "fill_", "zero_",
           "copy_", "clamp_", "setitem"]


# --------------------------------------------------------------------------- copies
class Clone(Function):
    """A copy in new memory; the gradient passes through unchanged."""

    @staticmethod
    def forward(ctx, x):
        return np.array(x, order="C", copy=True)

    @staticmethod
    def backward(ctx, grad):
        return grad


def clone(x: TensorLike) -> Tensor:
    """A differentiable copy that owns its memory (changing one leaves the other alone).

    >>> import minipool as mp
    >>> a = mp.tensor([1.0, 2.0])
    >>> b = a.clone()
    >>> _ = b.add_(1)
    >>> a.numpy(), b.numpy()
    (array([1., 2.], dtype=float32), array([2., 3.], dtype=float32))
    """
    return Clone.apply(x)


def contiguous(x: TensorLike) -> Tensor:
    """Self when already C-contiguous, else a differentiable contiguous copy."""
    return x if x._data.flags.c_contiguous else Clone.apply(x)


class Fill(Function):
    """Every element set to one value: no gradient to the old values; a 0-d tensor
    value gets the sum of the gradient."""

    @staticmethod
    def forward(ctx, x, value):
        return np.full(x.shape, value, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return np.zeros_like(grad), np.asarray(grad.sum())


class CopyFrom(Function):
    """The values of ``src`` (broadcast, cast to x's dtype) in place of x's."""

    @staticmethod
    def forward(ctx, x, src):
        ctx.meta = (src.shape, src.dtype)
        return np.broadcast_to(src, x.shape).astype(x.dtype, copy=True)

    @staticmethod
    def backward(ctx, grad):
        src_shape, src_dtype = ctx.meta
        gs = ew.unbroadcast(grad, src_shape)
        return np.zeros_like(grad), np.asarray(gs, dtype=src_dtype if src_dtype in FLOAT_DTYPES else None)


class SetItem(Function):
    """A copy of x with ``x[index] = value`` (value broadcast, cast to x's dtype): no
    gradient to the overwritten elements; ``value`` gets the gradient gathered at
    ``index``, summed over what was broadcast."""

    @staticmethod
    def forward(ctx, x, value, index):
        out = x.copy()
        out[index] = value
        ctx.meta = (index, value.shape, value.dtype)
        return out

    @staticmethod
    def backward(ctx, grad):
        index, value_shape, value_dtype = ctx.meta
        grad_value = grad[index]  # a gather: a repeated index hands its gradient to each entry
        lead = len(value_shape) - grad_value.ndim
        if lead > 0:  # a value with extra leading 1s (allowed, as in NumPy and PyTorch)
            grad_value = grad_value.reshape((1,) * lead + grad_value.shape)
        grad_value = ew.unbroadcast(grad_value, value_shape)
        grad_x = grad.copy()
        grad_x[index] = 0
        if value_dtype not in FLOAT_DTYPES:
            return grad_x, None, None
        return grad_x, np.asarray(grad_value, dtype=value_dtype), None


# --------------------------------------------------------------------------- in-place
def _records(t, name, others):
    """Whether an in-place op on ``t`` must be recorded in the graph (else it only
    changes the array); raises where PyTorch does."""
    if not _grad_mode.enabled:
        return False
    if t._requires_grad and t._ctx is None:
        raise RuntimeError(
            f"{name}: a leaf tensor that requires grad is being used in an in-place operation "
            "(its gradient would no longer match its value); change it inside "
            "`with mp.no_grad():` as optimisers do, or use the out-of-place op on a new tensor")
    if not t._requires_grad and not any(isinstance(o, Tensor) and o._requires_grad for o in others):
        return False
    box = t._vbox
    if box is not None and box.shared:
        raise RuntimeError(
            f"{name}: this tensor shares its memory with another tensor (a view from reshape, "
            "indexing or detach), and minipool cannot record an in-place change of shared "
            f"memory in the graph; use the out-of-place op instead (y = y.{name.rstrip('_')}(...))")
    return True


def _bump(t, name):
    box = _version_of(t)
    box.value += 1
    box.op = name + "()"


def _write_error(t, name, err):
    if not t._data.flags.writeable:
        return RuntimeError(f"{name}: this tensor's memory is read-only (an expand/broadcast_to "
                            "view, or a read-only array): clone() it before changing it in place")
    if isinstance(err, OverflowError):  # a Python int beyond the dtype: PyTorch's error type
        return OverflowError(f"{name}: the value does not fit the {t.dtype} tensor ({err})")
    if isinstance(err, TypeError):
        return RuntimeError(f"{name}: the result cannot be stored in a {t.dtype} tensor in place "
                            f"({err}); use the out-of-place op, or cast first (e.g. t.float())")
    return RuntimeError(f"{name}: the result cannot be written into a tensor of shape {t.shape} "
                        f"({err}); an in-place op keeps its tensor's shape")


def _checked(name, what, value):
    """``value`` as an operand of an in-place op: a tensor, a real number or an array of
    them (a TypeError naming ``what`` otherwise, before anything is written)."""
    if isinstance(value, Tensor) or is_real_operand(value):
        return value
    raise TypeError(f"{name}: {what} must be a tensor, a real number or an array of them, "
                    f"got {type(value).__name__}")


def _raw(other):
    if isinstance(other, Tensor):
        return other._data
    return other if isinstance(other, (int, float, bool, np.generic, np.ndarray)) else np.asarray(other)


def _mutate(t, name, ufunc, *operands):
    """Apply ``ufunc`` into t's own array (NumPy same_kind casting: float64 into float32
    is fine, a float into an int tensor is refused, as in PyTorch)."""
    try:
        ufunc(t._data, *operands, out=t._data, casting="same_kind")
    except (TypeError, ValueError, OverflowError) as e:
        raise _write_error(t, name, e) from None
    _bump(t, name)
    return t


def _record(t, name, op, others, keep_self):
    """Run the out-of-place ``op`` on t's current value and make t its output: t's
    array is overwritten and t takes the op's node as its grad_fn (the op's inputs
    keep pointing at t's previous node).  ``keep_self`` copies the old values when
    the op's backward needs them."""
    src = Tensor._from_result(t._data.copy() if keep_self else t._data, t._requires_grad)
    src._ctx = t._ctx
    cast = []
    for o in others:
        if isinstance(o, Tensor) and o.dtype != t.dtype and o.dtype in FLOAT_DTYPES and t.dtype in FLOAT_DTYPES:
            o = o.astype(t.dtype)  # differentiable: the result lands in t's dtype anyway
        cast.append(o)
    res = op(src, *cast)
    _write_result(t, name, res)
    t._ctx = res._ctx
    t._requires_grad = res._requires_grad
    return t


def _write_result(t, name, res):
    """Copy the out-of-place result ``res`` into t's array (same shape; a dtype t can hold)."""
    if res.shape != t.shape:
        raise RuntimeError(f"{name}: output with shape {t.shape} doesn't match the broadcast "
                           f"shape {res.shape}; an in-place op keeps its tensor's shape")
    check_inplace(name, res.dtype, t.dtype)
    try:
        np.copyto(t._data, res._data, casting="unsafe")  # (int16 into uint8 wraps, as PyTorch)
    except (TypeError, ValueError) as e:
        raise _write_error(t, name, e) from None
    _bump(t, name)


def _pointwise_(x, name, op, *others):
    """``x = op(x, *others)`` in place for any out-of-place op: recorded in the graph (the op
    sees a copy of x's old values, which its backward may need), or, when nothing records,
    computed and written into x's array.  Same rules as every op here."""
    if _records(x, name, others):
        return _record(x, name, op, others, keep_self=True)
    with no_grad():
        res = op(x, *others)
    _write_result(x, name, res)
    return x


def _arith_(x, name, ufunc, op, other, alpha, keep_self):
    """``x = op(x, alpha * other)`` in place: recorded in the graph, or written into the array."""
    other = _checked(name, "other", other)
    if not is_real(alpha):
        raise TypeError(f"{name}: alpha must be a real number, got {alpha!r}")
    if isinstance(alpha, np.generic):  # a NumPy float32 scalar would round a Python-float
        alpha = alpha.item()           # `other` to float32 (PyTorch keeps it a double)
    if alpha != 1:
        other = other * alpha
    if _records(x, name, (other,)):
        return _record(x, name, op, (other,), keep_self)
    kind = type(other)
    if (other._data.dtype is x._data.dtype if kind is Tensor else kind is float or kind is int) \
            and x._data.dtype.kind == "f":
        return _mutate(x, name, ufunc, other._data if kind is Tensor else other)  # x's own dtype
    try:
        with no_grad():
            res = op(x, other)  # PyTorch's result dtype (and its refusals: a bool in sub_ ...)
    except OverflowError as e:  # a Python int beyond the dtype
        raise _write_error(x, name, e) from None
    _write_result(x, name, res)
    return x


def add_(x: Tensor, other: TensorLike, alpha: float = 1) -> Tensor:
    """In place: ``x = x + alpha * other``.  Inside ``no_grad`` (or when nothing requires
    grad) it writes into the array; on a result that requires grad it is recorded in the
    graph; on a leaf that requires grad it raises, as in PyTorch (same for every op here)."""
    return _arith_(x, "add_", np.add, ew.add, other, alpha, keep_self=False)


def sub_(x: Tensor, other: TensorLike, alpha: float = 1) -> Tensor:
    """In place: ``x = x - alpha * other``."""
    return _arith_(x, "sub_", np.subtract, ew.sub, other, alpha, keep_self=False)


def mul_(x: Tensor, other: TensorLike) -> Tensor:
    """In place: ``x = x * other``."""
    return _arith_(x, "mul_", np.multiply, ew.mul, other, 1, keep_self=True)


def div_(x: Tensor, other: TensorLike, rounding_mode: Optional[str] = None) -> Tensor:
    """In place: ``x = x / other`` (true division; integer tensors refuse it, as in
    PyTorch), or ``x = div(x, other, rounding_mode=...)`` ("trunc" or "floor")."""
    if rounding_mode is not None:
        def rounded(t, o):
            return ew.div(t, o, rounding_mode=rounding_mode)
        return _pointwise_(x, "div_", rounded, _checked("div_", "other", other))
    return _arith_(x, "div_", np.divide, ew.div, other, 1, keep_self=True)


def neg_(x: Tensor) -> Tensor:
    """In place: ``x = -x``."""
    if _records(x, "neg_", ()):
        return _record(x, "neg_", ew.neg, (), False)
    return _mutate(x, "neg_", np.negative)


def fill_(x: Tensor, value: TensorLike) -> Tensor:
    """In place: every element set to ``value`` (a number, or a 0-d tensor)."""
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(f"fill_: value must be a number or a 0-d tensor, got shape {value.shape}")
    elif not (isinstance(value, (bool, np.bool_)) or is_real(value)):
        raise TypeError(f"fill_: value must be a number or a 0-d tensor, got {value!r}")
    if _records(x, "fill_", (value,)):
        v = value if isinstance(value, Tensor) and value._requires_grad else _raw(value)
        return _record(x, "fill_", Fill.apply, (v,), False)
    try:
        np.copyto(x._data, _raw(value), casting="unsafe")
    except (TypeError, ValueError, OverflowError) as e:
        raise _write_error(x, "fill_", e) from None
    _bump(x, "fill_")
    return x


def zero_(x: Tensor) -> Tensor:
    """In place: every element set to 0."""
    return fill_(x, 0)


def copy_(x: Tensor, src: TensorLike) -> Tensor:
    """In place: the values of ``src`` (broadcast to x's shape, cast to x's dtype)."""
    if isinstance(src, Tensor):
        src_t = src
    else:
        _checked("copy_", "src", src)
        try:
            src_t = Tensor(np.asarray(src))
        except TypeError as e:  # e.g. an int beyond int64
            raise TypeError(f"copy_: src cannot be read as numbers ({e})") from None
    try:
        if np.broadcast_shapes(src_t.shape, x.shape) != x.shape:
            raise ValueError
    except ValueError:
        raise RuntimeError(f"copy_: the source of shape {src_t.shape} cannot be broadcast to "
                           f"the destination's shape {x.shape}") from None
    if _records(x, "copy_", (src_t,)):
        return _record(x, "copy_", CopyFrom.apply, (src_t,), False)
    try:
        np.copyto(x._data, src_t._data, casting="unsafe")
    except (TypeError, ValueError) as e:
        raise _write_error(x, "copy_", e) from None
    _bump(x, "copy_")
    return x


def clamp_(x: Tensor, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:
    """In place: values clamped into ``[min, max]`` (either may be None; NaN stays NaN)."""
    if min is None and max is None:
        raise ValueError("clamp_: at least one of min and max must be given")
    for bound, label in ((min, "min"), (max, "max")):
        if isinstance(bound, Tensor):
            raise TypeError(f"clamp_: {label} must be a number in minipool, got a Tensor")
        if bound is not None and not (is_real(bound) or isinstance(bound, (bool, np.bool_))):
            raise TypeError(f"clamp_: {label} must be a real number or None, got {bound!r}")
    if _records(x, "clamp_", ()):
        return _record(x, "clamp_", lambda t: ew.clip(t, min, max), (), False)
    if x._data.dtype.kind == "f" and all(type(b) in (float, int) or b is None for b in (min, max)):
        np.clip(x._data, min, max, out=x._data)  # x's own dtype: no promotion to check
        _bump(x, "clamp_")
        return x
    with no_grad():
        res = ew.clip(x, min, max)
    _write_result(x, "clamp_", res)
    return x


def _is_advanced(index):
    """True when ``index`` selects by arrays (ints or a bool mask), not only by ints,
    slices, None and Ellipsis."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (np.ndarray, list)) for p in parts)


def _value_tensor(x, value):
    if isinstance(value, Tensor):
        return value
    try:
        return ew.as_tensor(value, like=x)
    except (TypeError, ValueError) as e:  # not numbers, or a ragged list
        raise TypeError(f"setitem: value must be a number, a Tensor or an array of numbers, got "
                        f"{type(value).__name__} ({e})") from None


def setitem(x: Tensor, index: object, value: TensorLike) -> Tensor:
    """In place: ``x[index] = value`` (``value`` broadcast to the indexed shape and cast to
    x's dtype).  Recorded in the graph when x or value requires grad: the overwritten
    elements get no gradient, ``value`` gets the gradient gathered at ``index``.  A leaf
    that requires grad raises, as in PyTorch; so does an array index (ints or a mask)
    with a value tensor of another dtype (a bool mask with a 0-d value is fine)."""
    index = plain_index(index)
    v = _value_tensor(x, value)
    if isinstance(value, Tensor) and value.dtype != x.dtype and _is_advanced(index) and \
            not (value.ndim == 0 and isinstance(index, np.ndarray) and index.dtype == np.bool_):
        raise RuntimeError(f"setitem: indexing by an array needs a value of the tensor's dtype "
                           f"{x.dtype}, got {value.dtype} (as PyTorch's index_put); cast the "
                           f"value first, e.g. value.to({str(x.dtype)!r})")
    try:
        if _records(x, "setitem", (v,)):
            return _record(x, "setitem", lambda s, val: SetItem.apply(s, val, index), (v,), False)
        x._data[index] = v._data
    except IndexError as e:
        raise IndexError(f"setitem: index {index!r} is invalid for a tensor of shape "
                         f"{x.shape}: {e}") from None
    except TypeError as e:  # e.g. slice("a")
        raise TypeError(f"setitem: cannot write value into the tensor at index {index!r} "
                        f"({e})") from None
    except ValueError as e:
        if not x._data.flags.writeable:
            raise _write_error(x, "setitem", e) from None
        raise RuntimeError(f"setitem: the value of shape {v.shape} cannot be broadcast to the "
                           f"shape {x.shape} indexed by {index!r} ({e})") from None
    _bump(x, "setitem")
    return x
