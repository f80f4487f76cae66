"""Reductions (sum, mean, max, min, amax, amin, argmax, argmin, var, std) and the softmax family.

The public functions shadow Python's sum/max/min here, so the builtins are
reached through ``builtins``.
"""
import builtins
from collections import namedtuple
from typing import Optional, Tuple, Union

import numpy as np

from minipool._typing import Dims, DTypeLike, PoolOutput, TensorLike
from minipool._promotion import promoted
from minipool._validate import flag
from minipool.ops.elementwise import as_tensor, cast, unbroadcast
from minipool.tensor import FLOAT_DTYPES, Function, Tensor, _dim_index, get_default_dtype

__all__ = ["sum", "mean", "var_mean", "std_mean", "max", "min", "amax", "amin", "argmax", "argmin", "maximum", "minimum",
           "var", "std", "softmax", "log_softmax", "logsumexp", "normalize_dims",
           "prod", "cumsum", "norm", "all", "any", "median", "nanmean", "nansum"]

# What max(x, dim)/min(x, dim) return, as PyTorch's torch.return_types.max/min.
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])
MedianResult = namedtuple("median", ["values", "indices"])


def normalize_dims(dim, ndim, op):
    """``dim`` (None, int or sequence) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (int, np.integer)):
        dims = (dim,)
    elif isinstance(dim, (tuple, list)):
        dims = tuple(dim)
    else:
        raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        if not -builtins.max(ndim, 1) <= d < builtins.max(ndim, 1):
            raise ValueError(f"{op}: dim {d} is out of range for a {ndim}-d tensor")
        out.append(int(d) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim!r} repeats an axis")
    return tuple(sorted(out)) if ndim else ()


def _expand_back(grad, shape, dims, keepdim):
    """Re-insert reduced axes so ``grad`` broadcasts against the input."""
    if not keepdim:
        grad = np.expand_dims(grad, dims)
    return np.broadcast_to(grad, shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.meta = (x.shape, dims, keepdim)
        return np.sum(x, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        shape, dims, keepdim = ctx.meta
        return np.array(_expand_back(grad, shape, dims, keepdim)), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        ctx.meta = (x.shape, dims, keepdim)
        ctx.count = int(np.prod([x.shape[d] for d in dims]))
        if ctx.count == 0:  # NaN, as PyTorch, without NumPy's "Mean of empty slice" warning
            return np.full(np.sum(x, axis=dims, keepdims=keepdim).shape, np.nan, x.dtype)
        return np.mean(x, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, grad):
        shape, dims, keepdim = ctx.meta
        return np.array(_expand_back(grad, shape, dims, keepdim)) / ctx.count, None, None


class _Extreme(Function):
    """max/min over dims; ties share the gradient equally (PyTorch's amax/amin rule)."""

    reduce = None

    @classmethod
    def forward(cls, ctx, x, dims, keepdim):
        out = cls.reduce(x, axis=dims, keepdims=True)
        ctx.meta = (x.shape, dims, keepdim)
        ctx.save_for_backward(x, out)
        return out if keepdim else np.squeeze(out, axis=dims)

    @classmethod
    def backward(cls, ctx, grad):
        shape, dims, keepdim = ctx.meta
        x, out = ctx.saved_tensors
        hit = (x == out) | (np.isnan(x) & np.isnan(out))
        share = hit / hit.sum(axis=dims, keepdims=True)
        return _expand_back(grad, shape, dims, keepdim) * share.astype(grad.dtype), None, None


class Max(_Extreme):
    reduce = staticmethod(np.max)


class Min(_Extreme):
    reduce = staticmethod(np.min)


def every_dim_if_empty(dim):
    """``dim`` with an empty list or tuple read as None: PyTorch's sum, mean, var, ... over
    ``dim=[]`` reduce every dim (not none)."""
    return None if isinstance(dim, (tuple, list)) and len(dim) == 0 else dim


def _reduction(fn, x, dim, keepdim, name):
    x = as_tensor(x)
    dims = normalize_dims(every_dim_if_empty(dim), x.ndim, name)
    if fn in (Max, Min) and x.numel() == 0:
        raise ValueError(f"{name}: cannot reduce an empty tensor of shape {x.shape}")
    return fn.apply(x, dims, flag(keepdim, "keepdim", name))


def sum(x: TensorLike, dim: Dims = None, keepdim: bool = False, *,
        dtype: Optional[DTypeLike] = None) -> Tensor:
    """Sum over ``dim`` (an int, a tuple, or None for all); ``dtype`` casts the input first,
    and bools and integers sum in int64 without one, as in PyTorch.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sum(mp.tensor([[1.0, 2.0], [3.0, 4.0]]), 1).numpy()
    array([3., 7.], dtype=float32)
    >>> mp.sum(mp.tensor([1.5, 2.5]), dtype=mp.float64).dtype
    dtype('float64')
    """
    if dtype is not None or (isinstance(x, Tensor) and x.dtype.kind in "biu"):
        x = _accumulating_dtype(as_tensor(x), dtype)
    return _reduction(Sum, x, dim, keepdim, "sum")


def _float_input(name, x, dtype, refusal=RuntimeError):
    """``x`` cast to ``dtype`` when one is given (PyTorch casts before the op); an integer or
    bool input without one is refused, as PyTorch does, rather than silently made float64."""
    x = as_tensor(x)
    if dtype is not None:
        try:
            wanted = np.dtype(dtype)
        except TypeError:
            wanted = None
        if wanted is None or wanted not in FLOAT_DTYPES:  # (np.dtype("float64") == None is True)
            raise TypeError(f"{name}: dtype must be mp.float32 or mp.float64, got {dtype!r}")
        return cast(x, wanted)
    if x.dtype.kind != "f":
        raise refusal(f"{name}(): could not infer output dtype. Input dtype must be a floating "
                      f"point dtype, got {x.dtype} (as in PyTorch): use x.float().{name}(...) "
                      f"or {name}(..., dtype=mp.float32)")
    return x


def mean(x: TensorLike, dim: Dims = None, keepdim: bool = False, *,
         dtype: Optional[DTypeLike] = None) -> Tensor:
    """Mean over ``dim`` (an int, a tuple, or None for all); a float input, or ``dtype`` to
    cast to first (an integer tensor is refused, as in PyTorch).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.mean(mp.tensor([[1.0, 2.0], [3.0, 4.0]]), 0).numpy()
    array([2., 3.], dtype=float32)
    """
    return _reduction(Mean, _float_input("mean", x, dtype), dim, keepdim, "mean")


def amax(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Largest value over ``dim`` (an int, a tuple, or None for all); the gradient is
    shared equally among tied maxima (PyTorch's amax).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.amax(mp.tensor([[1.0, 5.0], [3.0, 2.0]]), 1).numpy()
    array([5., 3.], dtype=float32)
    """
    return _reduction(Max, x, dim, keepdim, "amax")


def amin(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Smallest value over ``dim``; ties share the gradient equally (PyTorch's amin).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.amin(mp.tensor([[1.0, 5.0], [3.0, 2.0]]), 1).numpy()
    array([1., 2.], dtype=float32)
    """
    return _reduction(Min, x, dim, keepdim, "amin")


class _ExtremeAt(Function):
    """max/min along one axis with the index of the winner: the first one among ties,
    the first NaN if there is one (its value is NaN).  All the gradient goes to the
    element at that index, as in PyTorch's max(dim)/min(dim)."""

    pick = None

    @classmethod
    def forward(cls, ctx, x, axis, keepdim):
        idx = cls.pick(x, axis=axis, keepdims=True).astype(np.int64, copy=False)
        values = np.take_along_axis(x, idx, axis)
        if ctx.requires_grad:
            ctx.meta = (x.shape, axis, keepdim, idx)
        if not keepdim:
            values, idx = np.squeeze(values, axis), np.squeeze(idx, axis)
        return values, idx

    @staticmethod
    def backward(ctx, grad):
        shape, axis, keepdim, idx = ctx.meta
        if not keepdim:
            grad = np.expand_dims(grad, axis)
        out = np.zeros(shape, dtype=grad.dtype)
        np.put_along_axis(out, idx, grad, axis)
        return out, None, None


class _MaxAt(_ExtremeAt):
    pick = staticmethod(np.argmax)  # NumPy's argmax: first of ties, first NaN wins


class _MinAt(_ExtremeAt):
    pick = staticmethod(np.argmin)


class _Binary(Function):
    """Elementwise maximum/minimum (NaN wins).  Where the two are equal each gets half
    the gradient; where one is NaN, both get all of it (PyTorch's rule)."""

    pick = None

    @classmethod
    def forward(cls, ctx, a, b):
        if ctx.requires_grad:
            ctx.save_for_backward(a, b)
        return cls.pick(a, b)

    @classmethod
    def backward(cls, ctx, grad):
        a, b = ctx.saved_tensors
        half = np.where(a == b, grad / 2, grad)
        a_wins = a > b if cls.pick is np.maximum else a < b
        b_wins = b > a if cls.pick is np.maximum else b < a
        zero = np.zeros((), grad.dtype)
        ga = unbroadcast(np.where(b_wins, zero, half), a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(np.where(a_wins, zero, half), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class _Maximum(_Binary):
    pick = staticmethod(np.maximum)


class _Minimum(_Binary):
    pick = staticmethod(np.minimum)


def _pairwise(fn, a, b, name):
    a, b = promoted(a, b)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
    return fn.apply(a, b)


def maximum(a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise larger of ``a`` and ``b`` (broadcast); NaN if either is NaN.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.maximum(mp.tensor([1.0, 5.0]), mp.tensor([3.0, 2.0])).numpy()
    array([3., 5.], dtype=float32)
    """
    return _pairwise(_Maximum, a, b, "maximum")


def minimum(a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise smaller of ``a`` and ``b`` (broadcast); NaN if either is NaN.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.minimum(mp.tensor([1.0, 5.0]), mp.tensor([3.0, 2.0])).numpy()
    array([1., 2.], dtype=float32)
    """
    return _pairwise(_Minimum, a, b, "minimum")


def _extreme(name, x, dim, keepdim, whole, at, pair, result):
    if isinstance(dim, Tensor):  # max(x, other): the elementwise maximum, as torch.max(a, b)
        if keepdim is not False:
            raise TypeError(f"{name}(input, other) takes no keepdim")
        return pair(x, dim)
    x = as_tensor(x)
    keepdim = flag(keepdim, "keepdim", name)
    if dim is None:
        if keepdim:
            raise TypeError(f"{name}: keepdim needs a dim; use a{name}(x, keepdim=True) "
                            "to keep every axis")
        return _reduction(whole, x, None, False, name)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{name}: dim must be one int (values and indices along it); "
                        f"use a{name}(x, dim={tuple(dim)!r}) to reduce several axes")
    axis = _dim_index(dim, x.ndim, name)
    if x.ndim == 0:  # a 0-d tensor is its own maximum, at index 0
        values = x.clone()
        return result(values, Tensor(np.zeros((), np.int64)))
    if x.shape[axis] == 0:
        raise IndexError(f"{name}: dim {dim} has size 0 in a tensor of shape {x.shape}: "
                         "an empty reduction has no value")
    values, indices = at.apply(x, axis, keepdim)
    return result(values, indices)


def max(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> PoolOutput:
    """PyTorch's three forms: ``max(x)`` the largest value (0-d; tied maxima share the
    gradient); ``max(x, dim, keepdim=False)`` the named tuple ``(values, indices)``
    along ``dim`` (indices int64: the first maximum, or the first NaN; the gradient
    goes to that element); ``max(x, other)`` the elementwise maximum.

    >>> import minipool as mp
    >>> values, indices = mp.tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 2.0]]).max(dim=1)
    >>> values.numpy(), indices.numpy()
    (array([5., 7.], dtype=float32), array([1, 0]))
    """
    return _extreme("max", x, dim, keepdim, Max, _MaxAt, maximum, MaxResult)


def min(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> PoolOutput:
    """As :func:`max`, for the smallest value: ``min(x)``, ``min(x, dim)`` -> (values,
    indices), ``min(x, other)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.min(mp.tensor([[1.0, 5.0], [3.0, 2.0]])).numpy()
    array(1., dtype=float32)
    """
    return _extreme("min", x, dim, keepdim, Min, _MinAt, minimum, MinResult)


def _lower_median_index(x, axis, keepdims):
    """Index of the lower median along ``axis`` (of n values the ((n - 1) // 2)-th smallest,
    the first of ties in a stable sort), or of the first NaN where there is one."""
    order = np.argsort(x, axis=axis, kind="stable")  # NaN sorts last
    n = x.shape[axis]
    idx = np.take(order, [(n - 1) // 2], axis=axis)
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        has_nan = nan.any(axis=axis, keepdims=True)
        idx = np.where(has_nan, np.argmax(nan, axis=axis, keepdims=True), idx)
    return idx if keepdims else np.squeeze(idx, axis)


class _MedianAt(_ExtremeAt):
    pick = staticmethod(_lower_median_index)


class _Median(Function):
    """The whole tensor's lower median; its gradient is shared equally among the elements
    equal to it (among the NaNs when it is NaN), as PyTorch's median()."""

    @staticmethod
    def forward(ctx, x):
        flat = x.reshape(-1)
        value = flat[_lower_median_index(flat, 0, False)]
        if ctx.requires_grad:
            ctx.meta = (x, value)
        return np.asarray(value)

    @staticmethod
    def backward(ctx, grad):
        x, value = ctx.meta
        same = np.isnan(x) if np.isnan(value) else x == value
        return np.where(same, grad / np.count_nonzero(same), 0).astype(x.dtype, copy=False)


def median(x: TensorLike, dim: Optional[int] = None, keepdim: bool = False) -> PoolOutput:
    """PyTorch's ``median``: the lower median (of n values the ((n - 1) // 2)-th smallest,
    not the mean of the middle two), NaN if there is one.  ``median(x)`` is 0-d;
    ``median(x, dim)`` the named tuple ``(values, indices)`` (int64); the gradient goes
    to the element at the index.  (Among equal medians PyTorch does not promise which
    index it returns; minipool returns the first in a stable sort.)

    >>> import minipool as mp
    >>> mp.median(mp.tensor([3.0, 1.0, 4.0, 2.0])).numpy()
    array(2., dtype=float32)
    >>> mp.tensor([[3.0, 1.0, 2.0], [9.0, 8.0, 7.0]]).median(dim=1).indices.numpy()
    array([2, 1])
    """
    x = as_tensor(x)
    if dim is None:
        if keepdim:
            raise TypeError("median: keepdim needs a dim")
        if x.numel() == 0:
            return Tensor(np.full((), np.nan, x.dtype))
        return _Median.apply(x)
    if isinstance(dim, (tuple, list, Tensor)):
        raise TypeError("median: dim must be one int (values and indices along it)")
    return _extreme("median", x, dim, keepdim, None, _MedianAt, None, MedianResult)


def nansum(x: TensorLike, dim: Dims = None, keepdim: bool = False, *,
           dtype: Optional[DTypeLike] = None) -> Tensor:
    """Sum over ``dim`` treating NaN as 0, as ``torch.nansum``; the NaNs get gradient 0.

    >>> import minipool as mp
    >>> mp.nansum(mp.tensor([1.0, float("nan"), 3.0])).numpy()
    array(4., dtype=float32)
    """
    from minipool.ops.elementwise import where
    x = as_tensor(x)
    if x.dtype.kind == "f":
        x = where(Tensor(np.isnan(x._data)), Tensor(np.zeros((), x.dtype)), x)
    return sum(x, dim, keepdim, dtype=dtype)


def nanmean(x: TensorLike, dim: Dims = None, keepdim: bool = False, *,
            dtype: Optional[DTypeLike] = None) -> Tensor:
    """Mean over ``dim`` of the values that are not NaN (NaN where all are), as
    ``torch.nanmean``; the gradient is 1/count for each counted value, 0 for the NaNs.
    An integer tensor is refused, as in PyTorch, unless ``dtype`` is given.

    >>> import minipool as mp
    >>> mp.nanmean(mp.tensor([1.0, float("nan"), 3.0])).numpy()
    array(2., dtype=float32)
    """
    return _reduction(NanMean, _float_input("nanmean", x, dtype), dim, keepdim, "nanmean")


class NanMean(Function):
    """nansum / count over ``dims``; backward (grad / count) * (x is not NaN), so an all-NaN
    slice (count 0) gets NaN gradients, as PyTorch's (its nanmean is that quotient)."""

    @staticmethod
    def forward(ctx, x, dims, keepdim):
        kept = ~np.isnan(x)
        count = np.sum(kept, axis=dims, keepdims=True).astype(x.dtype)
        out = np.sum(np.where(kept, x, 0), axis=dims, keepdims=True) / count
        if ctx.requires_grad:
            ctx.meta = (kept, count, dims, keepdim)
        return out if keepdim else np.squeeze(out, axis=dims)

    @staticmethod
    def backward(ctx, grad):
        kept, count, dims, keepdim = ctx.meta
        if not keepdim:
            grad = np.expand_dims(grad, dims)
        return (grad / count) * kept, None, None


def _arg(name, pick, x, dim, keepdim):
    x = as_tensor(x)
    keepdim = flag(keepdim, "keepdim", name)
    if x.numel() == 0:
        raise ValueError(f"{name}: cannot take the {name} of an empty tensor of shape {x.shape}")
    if dim is None:
        out = pick(x._data.reshape(-1))
        if keepdim:
            out = np.reshape(out, (1,) * x.ndim)
    else:
        axis = _dim_index(dim, x.ndim, name)
        if x.ndim == 0:
            return Tensor(np.zeros((), np.int64))
        out = pick(x._data, axis=axis, keepdims=keepdim)
    return Tensor(np.asarray(out, dtype=np.int64))


def argmax(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Index (int64) of the largest value along ``dim``, or in the flattened tensor
    when ``dim`` is None; the first one among ties, the first NaN if any.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.argmax(mp.tensor([[1.0, 5.0], [3.0, 2.0]]), 1).numpy()
    array([1, 0])
    """
    return _arg("argmax", np.argmax, x, dim, keepdim)


def argmin(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Index (int64) of the smallest value along ``dim`` (or flattened); first among ties.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.argmin(mp.tensor([[1.0, 5.0], [3.0, 2.0]]), 1).numpy()
    array([0, 1])
    """
    return _arg("argmin", np.argmin, x, dim, keepdim)


class Var(Function):
    """Variance over ``dims`` with ``correction`` subtracted from the count (1: the
    unbiased estimate, 0: the population one).  A divisor <= 0 gives inf or NaN, as in
    PyTorch."""

    @staticmethod
    def forward(ctx, x, dims, correction, keepdim, take_sqrt):
        n = int(np.prod([x.shape[d] for d in dims]))
        divisor = builtins.max(n - correction, 0)
        centred = x - np.mean(x, axis=dims, keepdims=True)
        out = np.sum(centred * centred, axis=dims, keepdims=True) / np.asarray(divisor, x.dtype)
        if take_sqrt:
            out = np.sqrt(out)
        if ctx.requires_grad:
            if take_sqrt:
                ctx.save_for_backward(out)
            ctx.meta = (centred, divisor, dims, keepdim, take_sqrt)
        return out if keepdim else np.squeeze(out, axis=dims)

    @staticmethod
    def backward(ctx, grad):
        centred, divisor, dims, keepdim, take_sqrt = ctx.meta
        if not keepdim:
            grad = np.expand_dims(grad, dims)
        if take_sqrt:  # d std = d var / (2 std); 0 where std is 0, as PyTorch
            (out,) = ctx.saved_tensors
            grad = np.where(out == 0, np.zeros((), grad.dtype), grad / (2 * out))
        if divisor == 0 and not take_sqrt:
            # No valid divisor (N <= correction): the forward is inf/NaN and PyTorch's
            # gradient is inf with the sign of grad, NaN where x equals the mean.
            return np.inf * grad * np.abs(centred), None, None, None, None
        scale = 2 * grad / np.asarray(divisor, grad.dtype)
        return scale * centred, None, None, None, None


def _var(name, x, dim, unbiased, keepdim, correction, take_sqrt):
    x = as_tensor(x)
    if isinstance(dim, bool):  # var(x, False): PyTorch's var(input, unbiased)
        if unbiased is not None or correction is not None or keepdim is not False:
            raise TypeError(f"{name}: dim={dim} reads as PyTorch's {name}(input, unbiased), which "
                            "takes no unbiased, correction or keepdim besides; give dim as an int")
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{name}: give either unbiased or correction, not both")
    if correction is None:
        correction = 1 if unbiased is None or flag(unbiased, "unbiased", name) else 0
    if isinstance(correction, bool) or not isinstance(correction, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: correction must be a number, got {correction!r}")
    if x.dtype.kind != "f":
        raise RuntimeError(f"{name}: needs a floating-point tensor, got dtype {x.dtype} (PyTorch's "
                           f"RuntimeError too): use x.float().{name}(...)")
    dims = normalize_dims(every_dim_if_empty(dim), x.ndim, name)
    return Var.apply(x, dims, correction, flag(keepdim, "keepdim", name), take_sqrt)


def var(x: TensorLike, dim: Dims = None, unbiased: Optional[bool] = None, keepdim: bool = False, *,
        correction: Optional[float] = None) -> Tensor:
    """Variance over ``dim`` (int, tuple or None for all) divided by N - ``correction``
    (default 1; ``unbiased=False`` means 0), differentiable.

    >>> import minipool as mp
    >>> mp.tensor([1.0, 2.0, 3.0, 4.0]).var().item()
    1.6666666269302368
    """
    return _var("var", x, dim, unbiased, keepdim, correction, False)


def std(x: TensorLike, dim: Dims = None, unbiased: Optional[bool] = None, keepdim: bool = False, *,
        correction: Optional[float] = None) -> Tensor:
    """Standard deviation: the square root of :func:`var` (same arguments).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.std(mp.tensor([1.0, 3.0])).numpy()
    array(1.4142135, dtype=float32)
    """
    return _var("std", x, dim, unbiased, keepdim, correction, True)


def var_mean(x: TensorLike, dim: Dims = None, unbiased: Optional[bool] = None,
             keepdim: bool = False, *, correction: Optional[float] = None) -> Tuple[Tensor, Tensor]:
    """``(var(x, ...), mean(x, dim, keepdim))`` in one call, as ``torch.var_mean``.

    >>> import minipool as mp
    >>> [t.item() for t in mp.var_mean(mp.tensor([1.0, 3.0]))]
    [2.0, 2.0]
    """
    return (_var("var_mean", x, dim, unbiased, keepdim, correction, False),
            mean(x, dim, keepdim))


def std_mean(x: TensorLike, dim: Dims = None, unbiased: Optional[bool] = None,
             keepdim: bool = False, *, correction: Optional[float] = None) -> Tuple[Tensor, Tensor]:
    """``(std(x, ...), mean(x, dim, keepdim))`` in one call, as ``torch.std_mean``.

    >>> import minipool as mp
    >>> [round(t.item(), 4) for t in mp.std_mean(mp.tensor([1.0, 3.0]))]
    [1.4142, 2.0]
    """
    return (_var("std_mean", x, dim, unbiased, keepdim, correction, True),
            mean(x, dim, keepdim))


def _log_softmax(x, axis):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        y = np.exp(_log_softmax(x, axis))
        ctx.save_for_backward(y)
        ctx.axis = axis
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return y * (grad - np.sum(grad * y, axis=ctx.axis, keepdims=True)), None


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = _log_softmax(x, axis)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad - np.exp(out) * np.sum(grad, axis=ctx.axis, keepdims=True), None


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, dims, keepdim):
        m = np.max(x, axis=dims, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        out = m + np.log(np.sum(np.exp(x - m), axis=dims, keepdims=True))
        ctx.save_for_backward(x, out)
        ctx.meta = (x.shape, dims, keepdim)
        return out if keepdim else np.squeeze(out, axis=dims)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        shape, dims, keepdim = ctx.meta
        return _expand_back(grad, shape, dims, keepdim) * np.exp(x - out), None, None


def _softmax_axis(x, dim, name):
    if x.ndim == 0:
        raise ValueError(f"{name}: needs at least 1 dimension")
    if dim is None:
        # PyTorch's deprecated implicit dim is the last one up to 2-D, dim 1 or 0 beyond:
        # follow it where it is the last dim, say so where a silent choice would differ
        if x.ndim > 2:
            raise ValueError(f"{name}: pass dim for a {x.ndim}-D input (PyTorch's deprecated "
                             f"implicit choice would be dim {0 if x.ndim == 3 else 1}); "
                             f"e.g. {name}(x, dim=1) over the channels")
        dim = -1
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name}: dim must be an int (one dimension), got {dim!r}")
    return normalize_dims(dim, x.ndim, name)[0]


def softmax(x: TensorLike, dim: Optional[int] = None, _stacklevel: int = 3,
            dtype: Optional[DTypeLike] = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed from the max-shifted values (stable);
    ``dtype`` casts the input first (an integer input needs it, as in PyTorch).

    Without ``dim``: the last dim of a 1-D or 2-D input (what PyTorch picks); beyond 2-D
    ``dim`` is required.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.softmax(mp.tensor([0.0, 0.0]), 0).numpy()
    array([0.5, 0.5], dtype=float32)
    """
    x = _float_input("softmax", x, dtype, NotImplementedError)
    return Softmax.apply(x, _softmax_axis(x, dim, "softmax"))


def log_softmax(x: TensorLike, dim: Optional[int] = None, _stacklevel: int = 3,
                dtype: Optional[DTypeLike] = None) -> Tensor:
    """x - logsumexp(x) along ``dim`` (stable for large inputs); ``dim`` and ``dtype`` as for
    softmax.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.log_softmax(mp.tensor([0.0, 0.0]), 0).numpy()
    array([-0.6931472, -0.6931472], dtype=float32)
    """
    x = _float_input("log_softmax", x, dtype, NotImplementedError)
    return LogSoftmax.apply(x, _softmax_axis(x, dim, "log_softmax"))


def logsumexp(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` over ``dim``, computed from the max-shifted values (stable).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.logsumexp(mp.tensor([1000.0, 1000.0]), 0).numpy()
    array(1000.6932, dtype=float32)
    """
    x = as_tensor(x)
    if x.dtype.kind != "f":  # PyTorch: an integer or bool input gives the default float dtype
        x = cast(x, get_default_dtype())
    return _reduction(LogSumExp, x, dim, keepdim, "logsumexp")


# --------------------------------------------------------------------------- prod, cumsum, norm, all, any
def _accumulating_dtype(x, dtype):
    """PyTorch's result dtype for sum-like ops: ``dtype`` if given, else int64 for bools
    and integers, else the input's own."""
    if dtype is not None:
        return cast(x, np.dtype(dtype))
    if x.dtype.kind in "biu":
        return Tensor(x._data.astype(np.int64))
    return x


def _exclusive_products(x, axis):
    """For each element, the product of the others along ``axis`` (no division, so zeros are fine)."""
    n = x.shape[axis]
    ones = np.ones_like(np.take(x, [0], axis=axis)) if n else np.ones_like(x)
    before = np.concatenate([ones, np.cumprod(np.take(x, range(n - 1), axis=axis), axis=axis)], axis)
    flipped = np.flip(x, axis)
    after = np.concatenate([ones, np.cumprod(np.take(flipped, range(n - 1), axis=axis), axis=axis)], axis)
    return before * np.flip(after, axis)


class Prod(Function):
    """Product along one axis (or of every element).  The gradient is out / x when the
    input has no zero (PyTorch's rule, so inf inputs give NaN as there), else the product
    of the other elements, which is right however many zeros there are."""

    @staticmethod
    def forward(ctx, x, axis, keepdim):
        flat = x.reshape(-1) if axis is None else x
        out = np.prod(flat, axis=0 if axis is None else axis, keepdims=True)
        if ctx.requires_grad:
            ctx.save_for_backward(x, out)
            ctx.meta = (axis, keepdim)
        if axis is None:
            return out.reshape(()) if not keepdim else out.reshape((1,) * x.ndim)
        return out if keepdim else np.squeeze(out, axis)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        axis, keepdim = ctx.meta
        if axis is None:
            grad = grad.reshape(1)
        elif not keepdim:
            grad = np.expand_dims(grad, axis)
        flat = x.reshape(-1) if axis is None else x
        if not np.any(flat == 0):
            local = out / flat
        else:
            local = _exclusive_products(flat, 0 if axis is None else axis)
        return (grad * local).reshape(x.shape), None, None


def prod(x: TensorLike, dim: Optional[int] = None, keepdim: bool = False, *,
         dtype: Optional[DTypeLike] = None) -> Tensor:
    """Product of all elements, or along one ``dim`` (an int, as in PyTorch).  Bools and
    integers give int64 unless ``dtype`` says otherwise; the gradient handles zeros.

    >>> import minipool as mp
    >>> mp.prod(mp.tensor([[1.0, 2.0], [3.0, 4.0]]), 1).numpy()
    array([ 2., 12.], dtype=float32)
    >>> mp.tensor([2, 3, 4]).prod().item()
    24
    """
    x = _accumulating_dtype(as_tensor(x), dtype)
    if dim is None:
        if keepdim:
            raise TypeError("prod: keepdim needs a dim (PyTorch's prod takes no keepdim without one)")
        return Prod.apply(x, None, False)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"prod: dim must be one int, got {dim!r}; reduce one axis at a time")
    axis = _dim_index(dim, x.ndim, "prod")
    if x.ndim == 0:
        return Prod.apply(x, None, False)
    return Prod.apply(x, axis, flag(keepdim, "keepdim", "prod"))


class CumSum(Function):
    """Running sum along one axis; the gradient is the running sum of the gradient taken
    from the other end."""

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return np.cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return np.flip(np.cumsum(np.flip(grad, ctx.axis), axis=ctx.axis), ctx.axis), None


def cumsum(x: TensorLike, dim: int, *, dtype: Optional[DTypeLike] = None) -> Tensor:
    """Running sum along ``dim`` (required, as in PyTorch).  Bools and integers give int64
    unless ``dtype`` says otherwise.

    >>> import minipool as mp
    >>> mp.cumsum(mp.tensor([1.0, 2.0, 3.0]), 0).numpy()
    array([1., 3., 6.], dtype=float32)
    """
    x = _accumulating_dtype(as_tensor(x), dtype)
    axis = _dim_index(dim, x.ndim, "cumsum")
    if x.ndim == 0:
        return CumSum.apply(x.reshape(1), 0).reshape(())
    return CumSum.apply(x, axis)


def _vector_norm(a, p, dims, dtype):
    """The p-norm of ``a`` = |x| over ``dims``, kept as length-1 axes."""
    if p != 0 and builtins.all(a.shape[d] == 1 for d in dims):
        # one value per norm: |x| itself, as PyTorch gives (|x| ** p ** (1/p) would underflow
        # to 0 in float32 for |x| below about 1e-13 with p = 3)
        return a.copy()
    if p == np.inf:
        return np.max(a, axis=dims, keepdims=True)
    if p == -np.inf:
        return np.min(a, axis=dims, keepdims=True)
    if p == 0:
        return np.sum(a != 0, axis=dims, keepdims=True).astype(dtype)
    if p == 1:
        return np.sum(a, axis=dims, keepdims=True)
    if p == 2:
        return np.sqrt(np.sum(a * a, axis=dims, keepdims=True))
    power = np.asarray(p, dtype=dtype)
    return np.sum(a ** power, axis=dims, keepdims=True) ** (1 / power)


class Norm(Function):
    """The vector p-norm over ``dims``: (sum |x|^p)^(1/p); p=inf the largest |x|, -inf the
    smallest, 0 the count of non-zeros.  Gradients as PyTorch's: 0 where the norm is 0
    (and at x == 0), tied extremes share it equally for p=+-inf, 0 for p=0."""

    @staticmethod
    def forward(ctx, x, p, dims, keepdim):
        a = np.abs(x)
        out = _vector_norm(a, p, dims, x.dtype)
        if ctx.requires_grad:
            ctx.save_for_backward(x, out)
            ctx.meta = (p, dims, keepdim)
        return out if keepdim else np.squeeze(out, axis=dims)

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        p, dims, keepdim = ctx.meta
        if not keepdim:
            grad = np.expand_dims(grad, dims)
        return _norm_backward(x, out, p, dims, grad), None, None, None


def _norm_backward(x, out, p, dims, grad):
    """grad times d norm / d x, with ``out`` the norm kept as length-1 axes (see Norm)."""
    if p == 0:
        return np.zeros_like(x)
    if p == 1:
        return grad * np.sign(x)
    if p in (np.inf, -np.inf):
        hit = np.abs(x) == out
        share = hit / np.sum(hit, axis=dims, keepdims=True)
        return (grad * np.sign(x) * share).astype(x.dtype, copy=False)
    if p == 2:
        local = x / out
    else:
        power = np.asarray(p, dtype=x.dtype)
        local = np.sign(x) * np.abs(x) ** (power - 1) / out ** (power - 1)
    return grad * np.where((out == 0) | (x == 0), np.zeros((), x.dtype), local)


def norm(x: TensorLike, p: Union[str, float] = "fro", dim: Dims = None, keepdim: bool = False,
         dtype: Optional[DTypeLike] = None) -> Tensor:
    """The vector p-norm of all elements, or over ``dim`` (an int or a tuple), as
    ``torch.norm`` (which is ``torch.linalg.vector_norm`` for these): ``p`` is "fro" (= 2),
    a number, ``inf`` or ``-inf``.  ``dtype`` casts the input first.  ``p="nuc"`` (the
    nuclear norm) is not supported.

    >>> import minipool as mp
    >>> mp.norm(mp.tensor([3.0, -4.0])).item()
    5.0
    >>> mp.tensor([[3.0, -4.0], [1.0, 0.0]]).norm(p=1, dim=1).numpy()
    array([7., 1.], dtype=float32)
    """
    x = as_tensor(x)
    if dtype is not None:
        x = cast(x, np.dtype(dtype))
    if x.dtype.kind != "f":
        raise TypeError(f"norm: expected a floating-point input, got dtype {x.dtype}; cast "
                        "it first, e.g. x.float()")
    if isinstance(p, str):
        if p != "fro":
            raise ValueError(f"norm: p={p!r} is not supported; use 'fro' or a number")
        if dim is not None and not isinstance(dim, (int, np.integer)) and len(dim) > 2:
            raise ValueError(f"norm: p='fro' takes at most 2 dims, got dim={dim!r}")
        p = 2
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or np.isnan(p):
        raise TypeError(f"norm: p must be 'fro' or a number, got {p!r}")
    dims = normalize_dims(every_dim_if_empty(dim), x.ndim, "norm")
    if p in (np.inf, -np.inf) and builtins.any(x.shape[d] == 0 for d in dims):
        raise ValueError(f"norm: the {p} norm of an empty tensor (shape {x.shape}) has no value")
    return Norm.apply(x, float(p), dims, flag(keepdim, "keepdim", "norm"))


def _logical(name, fn, x, dim, keepdim):
    x = as_tensor(x)
    dims = normalize_dims(dim, x.ndim, name)
    out = fn(x._data != 0, axis=dims, keepdims=bool(keepdim))  # NaN is non-zero: true
    return Tensor(np.asarray(out, dtype=np.uint8 if x.dtype == np.uint8 else np.bool_))


def all(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Whether every element is non-zero, over ``dim`` (int, tuple or None for all): a
    bool tensor (uint8 for a uint8 input, as in PyTorch).

    >>> import minipool as mp
    >>> mp.all(mp.tensor([[1.0, 0.0], [2.0, 3.0]]), dim=1).numpy()
    array([False,  True])
    """
    return _logical("all", np.all, x, dim, keepdim)


def any(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Whether some element is non-zero, over ``dim`` (int, tuple or None for all): a bool
    tensor (uint8 for a uint8 input, as in PyTorch).

    >>> import minipool as mp
    >>> mp.tensor([0.0, 0.0, 2.0]).any().item()
    True
    """
    return _logical("any", np.any, x, dim, keepdim)
