"""Reductions (sum, mean, max, min, amax, amin, argmax, argmin, var, std) and the softmax family.

The public functions shadow Python's sum/max/min here, so the builtins are
reached through ``builtins``.
"""
import builtins
from collections import namedtuple
from typing import Optional

import numpy as np

from minipool._typing import Dims, PoolOutput, TensorLike
from minipool._validate import flag
from minipool.ops.elementwise import as_tensor, unbroadcast
from minipool.tensor import Function, Tensor, _dim_index

__all__ = ["sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "maximum", "minimum",
           "var", "std", "softmax", "log_softmax", "logsumexp", "normalize_dims"]

# What max(x, dim)/min(x, dim) return, as PyTorch's torch.return_types.max/min.
MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


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


def _reduction(fn, x, dim, keepdim, name):
    x = as_tensor(x)
    dims = normalize_dims(dim, x.ndim, name)
    if fn in (Max, Min) and x.numel() == 0:
        raise ValueError(f"{name}: cannot reduce an empty tensor of shape {x.shape}")
    return fn.apply(x, dims, flag(keepdim, "keepdim", name))


def sum(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Sum over ``dim`` (an int, a tuple, or None for all).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sum(mp.tensor([[1.0, 2.0], [3.0, 4.0]]), 1).numpy()
    array([3., 7.], dtype=float32)
    """
    return _reduction(Sum, x, dim, keepdim, "sum")


def mean(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Mean over ``dim`` (an int, a tuple, or None for all).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.mean(mp.tensor([[1.0, 2.0], [3.0, 4.0]]), 0).numpy()
    array([2., 3.], dtype=float32)
    """
    return _reduction(Mean, x, dim, keepdim, "mean")


def amax(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Largest value over ``dim`` (an int, a tuple, or None for all); the gradient is
    shared equally among tied maxima (PyTorch's amax).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.amax(mp.tensor([[1.0, 5.0], [3.0, 2.0]]), 1).numpy()
    array([5., 3.], dtype=float32)
    """
    return _reduction(Max, x, None if dim == () else dim, keepdim, "amax")


def amin(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """Smallest value over ``dim``; ties share the gradient equally (PyTorch's amin).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.amin(mp.tensor([[1.0, 5.0], [3.0, 2.0]]), 1).numpy()
    array([1., 2.], dtype=float32)
    """
    return _reduction(Min, x, None if dim == () else dim, keepdim, "amin")


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
    a = a if isinstance(a, Tensor) else as_tensor(a, like=b if isinstance(b, Tensor) else None)
    b = b if isinstance(b, Tensor) else as_tensor(b, like=a)
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


def _arg(name, pick, x, dim, keepdim):
    x = as_tensor(x)
    keepdim = flag(keepdim, "keepdim", name)
    if x.numel() == 0:
        raise ValueError(f"{name}: cannot take the {name} of an empty tensor of shape {x.shape}")
    if dim is None:
        out = pick(x.data.reshape(-1))
        if keepdim:
            out = np.reshape(out, (1,) * x.ndim)
    else:
        axis = _dim_index(dim, x.ndim, name)
        if x.ndim == 0:
            return Tensor(np.zeros((), np.int64))
        out = pick(x.data, axis=axis, keepdims=keepdim)
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
        with np.errstate(divide="ignore", invalid="ignore"):  # inf/NaN inputs give NaN, quietly
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
        with np.errstate(divide="ignore", invalid="ignore"):
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
        raise TypeError(f"{name}: needs a floating-point tensor, got dtype {x.dtype}")
    dims = normalize_dims(dim, x.ndim, name)
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
    return normalize_dims(dim, x.ndim, name)[0]


def softmax(x: TensorLike, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed from the max-shifted values (stable).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.softmax(mp.tensor([0.0, 0.0]), 0).numpy()
    array([0.5, 0.5], dtype=float32)
    """
    x = as_tensor(x)
    return Softmax.apply(x, _softmax_axis(x, dim, "softmax"))


def log_softmax(x: TensorLike, dim: int = -1) -> Tensor:
    """x - logsumexp(x) along ``dim`` (stable for large inputs).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.log_softmax(mp.tensor([0.0, 0.0]), 0).numpy()
    array([-0.6931472, -0.6931472], dtype=float32)
    """
    x = as_tensor(x)
    return LogSoftmax.apply(x, _softmax_axis(x, dim, "log_softmax"))


def logsumexp(x: TensorLike, dim: Dims = None, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` over ``dim``, computed from the max-shifted values (stable).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.logsumexp(mp.tensor([1000.0, 1000.0]), 0).numpy()
    array(1000.6932, dtype=float32)
    """
    return _reduction(LogSumExp, x, dim, keepdim, "logsumexp")
