"""Reductions (sum, mean, max, min) and the softmax family.

The public functions shadow Python's sum/max/min here, so the builtins are
reached through ``builtins``.
"""
import builtins

import numpy as np

from minipool.ops.elementwise import as_tensor
from minipool.tensor import Function

__all__ = ["sum", "mean", "max", "min", "softmax", "log_softmax", "logsumexp", "normalize_dims"]


def normalize_dims(dim, ndim, op):
    """``dim`` (None, int or sequence) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
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
    if fn in (Max, Min) and x.size == 0:
        raise ValueError(f"{name}: cannot reduce an empty tensor of shape {x.shape}")
    return fn.apply(x, dims, bool(keepdim))


def sum(x, dim=None, keepdim=False):
    return _reduction(Sum, x, dim, keepdim, "sum")


def mean(x, dim=None, keepdim=False):
    return _reduction(Mean, x, dim, keepdim, "mean")


def max(x, dim=None, keepdim=False):
    return _reduction(Max, x, dim, keepdim, "max")


def min(x, dim=None, keepdim=False):
    return _reduction(Min, x, dim, keepdim, "min")


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


def softmax(x, dim=-1):
    """exp(x) / sum(exp(x)) along ``dim``, computed from the max-shifted values (stable)."""
    x = as_tensor(x)
    return Softmax.apply(x, _softmax_axis(x, dim, "softmax"))


def log_softmax(x, dim=-1):
    """x - logsumexp(x) along ``dim`` (stable for large inputs)."""
    x = as_tensor(x)
    return LogSoftmax.apply(x, _softmax_axis(x, dim, "log_softmax"))


def logsumexp(x, dim=None, keepdim=False):
    return _reduction(LogSumExp, x, dim, keepdim, "logsumexp")
