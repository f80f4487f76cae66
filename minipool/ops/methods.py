"""Tensor's operators and methods: each is a one-line call into an op module.

Kept apart from tensor.py so the engine does not import the ops that use it.
Also here: the in-place methods (``add_``, ``mul_``, ``+=``, ``zero_``, ...) with
PyTorch's safety rules, and the few small Functions they and ``clone`` need.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from minipool._typing import Dims, DTypeLike, TensorLike
from minipool.ops import elementwise as ew
from minipool.ops import indexing, linalg, reduce, shape
from minipool.tensor import FLOAT_DTYPES, Function, Tensor, _grad_mode, _version_of, full


def _reflected(fn):
    return lambda self, other: fn(ew.as_tensor(other, like=self), self)


def _compare(op):
    def method(self, other: TensorLike) -> Tensor:
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(np.asarray(op(self.data, other), dtype=np.bool_))
    method.__doc__ = f"Elementwise ``{op.__name__}`` (broadcast): a bool tensor, no gradient."
    return method


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
    return x if x.data.flags.c_contiguous else Clone.apply(x)


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
    if not t.data.flags.writeable:
        return RuntimeError(f"{name}: this tensor's memory is read-only (an expand/broadcast_to "
                            "view, or a read-only array): clone() it before changing it in place")
    if isinstance(err, TypeError):
        return RuntimeError(f"{name}: the result cannot be stored in a {t.dtype} tensor in place "
                            f"({err}); use the out-of-place op, or cast first (e.g. t.float())")
    return RuntimeError(f"{name}: the result cannot be written into a tensor of shape {t.shape} "
                        f"({err}); an in-place op keeps its tensor's shape")


def _raw(other):
    if isinstance(other, Tensor):
        return other.data
    return other if isinstance(other, (int, float, bool, np.generic, np.ndarray)) else np.asarray(other)


def _mutate(t, name, ufunc, *operands):
    """Apply ``ufunc`` into t's own array (NumPy same_kind casting: float64 into float32
    is fine, a float into an int tensor is refused, as in PyTorch)."""
    try:
        ufunc(t.data, *operands, out=t.data, casting="same_kind")
    except (TypeError, ValueError) as e:
        raise _write_error(t, name, e) from None
    _bump(t, name)
    return t


def _record(t, name, op, others, keep_self):
    """Run the out-of-place ``op`` on t's current value and make t its output: t's
    array is overwritten and t takes the op's node as its grad_fn (the op's inputs
    keep pointing at t's previous node).  ``keep_self`` copies the old values when
    the op's backward needs them."""
    src = Tensor._from_result(t.data.copy() if keep_self else t.data, t._requires_grad)
    src._ctx = t._ctx
    cast = []
    for o in others:
        if isinstance(o, Tensor) and o.dtype != t.dtype and o.dtype in FLOAT_DTYPES and t.dtype in FLOAT_DTYPES:
            o = o.astype(t.dtype)  # differentiable: the result lands in t's dtype anyway
        cast.append(o)
    res = op(src, *cast)
    if res.shape != t.shape:
        raise RuntimeError(f"{name}: output with shape {t.shape} doesn't match the broadcast "
                           f"shape {res.shape}; an in-place op keeps its tensor's shape")
    if not np.can_cast(res.dtype, t.dtype, "same_kind"):
        raise RuntimeError(f"{name}: result type {res.dtype} can't be cast to the desired "
                           f"output type {t.dtype}")
    try:
        np.copyto(t.data, res.data, casting="same_kind")
    except (TypeError, ValueError) as e:
        raise _write_error(t, name, e) from None
    t._ctx = res._ctx
    t._requires_grad = res._requires_grad
    _bump(t, name)
    return t


def _arith_(name, ufunc, op, keep_self):
    def method(self, other: TensorLike, *, alpha: float = 1) -> Tensor:
        if alpha != 1:
            other = other * alpha
        if _records(self, name, (other,)):
            return _record(self, name, op, (ew.as_tensor(other, like=self),), keep_self)
        return _mutate(self, name, ufunc, _raw(other))
    method.__name__ = name
    method.__doc__ = (f"In place: ``self = self {name[:-1]} other`` (``alpha`` scales other). "
                      "Inside ``no_grad`` (or when nothing requires grad) it writes into the "
                      "array; on a result that requires grad it is recorded in the graph; on a "
                      "leaf that requires grad it raises, as in PyTorch.")
    return method


add_ = _arith_("add_", np.add, ew.add, False)
sub_ = _arith_("sub_", np.subtract, ew.sub, False)
mul_ = _arith_("mul_", np.multiply, ew.mul, True)
_div_ = _arith_("div_", np.divide, ew.div, True)


def div_(self, other: TensorLike, *, rounding_mode: Optional[str] = None) -> Tensor:
    """In place: ``self = self / other`` (true division; integer tensors refuse it, as in
    PyTorch).  ``rounding_mode`` is not supported."""
    if rounding_mode is not None:
        raise ValueError("div_: rounding_mode is not supported by minipool; use "
                         "t.div_(other) and then floor/trunc the result")
    return _div_(self, other)


def neg_(self) -> Tensor:
    """In place: ``self = -self``."""
    if _records(self, "neg_", ()):
        return _record(self, "neg_", ew.neg, (), False)
    return _mutate(self, "neg_", np.negative)


def fill_(self, value: float) -> Tensor:
    """In place: every element set to ``value`` (a number, or a 0-d tensor)."""
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ValueError(f"fill_: value must be a number or a 0-d tensor, got shape {value.shape}")
    if _records(self, "fill_", (value,)):
        v = value if isinstance(value, Tensor) and value._requires_grad else _raw(value)
        return _record(self, "fill_", Fill.apply, (v,), False)
    try:
        np.copyto(self.data, _raw(value), casting="unsafe")
    except (TypeError, ValueError) as e:
        raise _write_error(self, "fill_", e) from None
    _bump(self, "fill_")
    return self


def zero_(self) -> Tensor:
    """In place: every element set to 0."""
    return fill_(self, 0)


def copy_(self, src: TensorLike) -> Tensor:
    """In place: the values of ``src`` (broadcast to self's shape, cast to self's dtype)."""
    src_t = src if isinstance(src, Tensor) else Tensor(np.asarray(src))
    try:
        np.broadcast_shapes(src_t.shape, self.shape)
        if np.broadcast_shapes(src_t.shape, self.shape) != self.shape:
            raise ValueError
    except ValueError:
        raise RuntimeError(f"copy_: the source of shape {src_t.shape} cannot be broadcast to "
                           f"the destination's shape {self.shape}") from None
    if _records(self, "copy_", (src_t,)):
        return _record(self, "copy_", CopyFrom.apply, (src_t,), False)
    try:
        np.copyto(self.data, src_t.data, casting="unsafe")
    except (TypeError, ValueError) as e:
        raise _write_error(self, "copy_", e) from None
    _bump(self, "copy_")
    return self


def clamp_(self, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:
    """In place: values clamped into ``[min, max]`` (either may be None; NaN stays NaN)."""
    if min is None and max is None:
        raise ValueError("clamp_: at least one of min and max must be given")
    for bound, label in ((min, "min"), (max, "max")):
        if isinstance(bound, Tensor):
            raise TypeError(f"clamp_: {label} must be a number in minipool, got a Tensor")
    if _records(self, "clamp_", ()):
        return _record(self, "clamp_", lambda x: ew.clip(x, min, max), (), False)
    try:
        np.clip(self.data, min, max, out=self.data, casting="same_kind")
    except (TypeError, ValueError) as e:
        raise _write_error(self, "clamp_", e) from None
    _bump(self, "clamp_")
    return self


def clamp_min_(self, min: float) -> Tensor:
    return clamp_(self, min=min)


def clamp_max_(self, max: float) -> Tensor:
    return clamp_(self, max=max)


def expand(self, *sizes: Union[int, Sequence[int]]) -> Tensor:
    """A broadcast view of ``sizes`` (``expand(2, 3)`` or ``expand((2, 3))``); -1 keeps
    that dimension's size, as in PyTorch."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    lead = len(sizes) - self.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes given for a {self.ndim}-d tensor; "
                         "give at least one per dimension")
    full = tuple(self.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    return shape.broadcast_to(self, full)


# --------------------------------------------------------------------------- reductions
def _std(self, dim: Dims = None, unbiased: Optional[bool] = None, keepdim: bool = False, *,
         correction: Optional[float] = None) -> Tensor:
    return reduce.std(self, dim, unbiased, keepdim, correction=correction)


def _var(self, dim: Dims = None, unbiased: Optional[bool] = None, keepdim: bool = False, *,
         correction: Optional[float] = None) -> Tensor:
    return reduce.var(self, dim, unbiased, keepdim, correction=correction)


_METHODS = {
    "__add__": ew.add, "__radd__": _reflected(ew.add),
    "__sub__": ew.sub, "__rsub__": _reflected(ew.sub),
    "__mul__": ew.mul, "__rmul__": _reflected(ew.mul),
    "__truediv__": ew.div, "__rtruediv__": _reflected(ew.div),
    "__pow__": ew.pow, "__rpow__": _reflected(ew.pow),
    "__matmul__": linalg.matmul, "__rmatmul__": _reflected(linalg.matmul),
    "__neg__": ew.neg, "__abs__": ew.abs,
    "__getitem__": shape.getitem,
    "__lt__": _compare(np.less), "__le__": _compare(np.less_equal),
    "__gt__": _compare(np.greater), "__ge__": _compare(np.greater_equal),
    "__eq__": _compare(np.equal), "__ne__": _compare(np.not_equal),
    "lt": _compare(np.less), "le": _compare(np.less_equal),
    "gt": _compare(np.greater), "ge": _compare(np.greater_equal),
    "eq": _compare(np.equal), "ne": _compare(np.not_equal),
    "__iadd__": add_, "__isub__": sub_, "__imul__": mul_, "__itruediv__": div_,
    "add_": add_, "sub_": sub_, "mul_": mul_, "div_": div_, "neg_": neg_,
    "fill_": fill_, "zero_": zero_, "copy_": copy_,
    "clamp_": clamp_, "clip_": clamp_, "clamp_min_": clamp_min_, "clamp_max_": clamp_max_,
    "add": ew.add, "sub": ew.sub, "mul": ew.mul, "div": ew.div, "pow": ew.pow,
    "neg": ew.neg, "exp": ew.exp, "log": ew.log, "sqrt": ew.sqrt, "abs": ew.abs,
    "tanh": ew.tanh, "sigmoid": ew.sigmoid, "relu": ew.relu,
    "clip": ew.clip, "clamp": ew.clip, "matmul": linalg.matmul,
    "sum": reduce.sum, "mean": reduce.mean, "max": reduce.max, "min": reduce.min,
    "amax": reduce.amax, "amin": reduce.amin, "argmax": reduce.argmax, "argmin": reduce.argmin,
    "maximum": reduce.maximum, "minimum": reduce.minimum, "std": _std, "var": _var,
    "softmax": reduce.softmax, "log_softmax": reduce.log_softmax, "logsumexp": reduce.logsumexp,
    "reshape": shape.reshape, "view": shape.reshape, "permute": shape.permute,
    "transpose": shape.transpose, "flatten": shape.flatten, "squeeze": shape.squeeze,
    "unsqueeze": shape.unsqueeze, "broadcast_to": shape.broadcast_to, "expand": expand,
    "clone": clone, "contiguous": contiguous,
}


# --------------------------------------------------------------------------- new tensors, half
def _new_tensor(self, size, value, dtype, requires_grad):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    t = full(size, value, dtype=self.dtype if dtype is None else dtype)
    return t.requires_grad_(requires_grad)


def new_zeros(self, *size: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
              requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of ``size``, with this tensor's dtype unless ``dtype`` is given.

    >>> import minipool as mp
    >>> mp.tensor([1, 2]).new_zeros(2, 3).dtype
    dtype('int64')
    """
    return _new_tensor(self, size, 0, dtype, requires_grad)


def new_ones(self, *size: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
             requires_grad: bool = False) -> Tensor:
    """A tensor of ones of ``size``, with this tensor's dtype unless ``dtype`` is given."""
    return _new_tensor(self, size, 1, dtype, requires_grad)


def new_full(self, size: Sequence[int], fill_value: float, *, dtype: Optional[DTypeLike] = None,
             requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``, with this tensor's dtype unless
    ``dtype`` is given.

    >>> import minipool as mp
    >>> mp.zeros(1).new_full((2,), 7.0).numpy()
    array([7., 7.], dtype=float32)
    """
    return _new_tensor(self, (size,), fill_value, dtype, requires_grad)


def half(self) -> Tensor:
    """Cast to float16.  minipool does not differentiate float16 tensors: the result carries
    no gradient (PyTorch's does); cast back with ``.float()`` for training."""
    with np.errstate(over="ignore"):  # beyond 65504 is inf, quietly as in PyTorch
        return self.astype(np.float16)


def _round(self, *, decimals: int = 0) -> Tensor:
    return ew.round(self, decimals=decimals)


def _split(self, split_size: Union[int, Sequence[int]], dim: int = 0) -> Tuple[Tensor, ...]:
    return shape.split(self, split_size, dim)  # (Tensor.split names its size argument split_size)


def _gather(self, dim: int, index: Tensor) -> Tensor:
    return indexing.gather(self, dim, index)


_METHODS.update({
    "t": shape.t, "repeat": shape.repeat, "split": _split, "chunk": shape.chunk,
    "gather": _gather, "masked_fill": indexing.masked_fill, "nonzero": indexing.nonzero,
    "sort": indexing.sort, "argsort": indexing.argsort, "topk": indexing.topk,
    "prod": reduce.prod, "cumsum": reduce.cumsum, "norm": reduce.norm,
    "all": reduce.all, "any": reduce.any,
    "square": ew.square, "rsqrt": ew.rsqrt, "sin": ew.sin, "cos": ew.cos, "floor": ew.floor,
    "ceil": ew.ceil, "round": _round, "sign": ew.sign, "isnan": ew.isnan, "isinf": ew.isinf,
    "isfinite": ew.isfinite, "isclose": ew.isclose, "allclose": ew.allclose, "equal": ew.equal,
    "new_zeros": new_zeros, "new_ones": new_ones, "new_full": new_full, "half": half,
})


def _reversed_axes(self) -> Tensor:
    """``x.T``: the axes in reverse order (a matrix's transpose)."""
    return shape.permute(self, tuple(reversed(range(self.ndim))))


def install():
    for name, fn in _METHODS.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(_reversed_axes)
