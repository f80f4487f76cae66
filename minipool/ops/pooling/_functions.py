"""The differentiable pooling Functions: each runs a kernel forward and backward.

They receive a ``PoolPlan`` (geometry built and checked by ``_geometry``),
view the input as ``(B, S, C)`` (see pool_windows.pyx) and keep only what backward needs:
max/min/stochastic keep the compact argmax codes (uint8 or int32, never
int64), and only when a graph is being recorded.
"""
import math

import numpy as np

from minipool import _config
from minipool._kernels import pool_extreme, pool_stochastic, pool_sum
from minipool.tensor import Function

_NO_CODES = np.zeros((1, 1, 1), dtype=np.uint8)   # passed when no argmax is kept


def _threads(plan):
    """Thread count and unit size for the kernel calls of ``plan``.

    A unit of parallel work is one index b of the (B, S, C) view and a slice
    of ``unit_size`` channels; NHWC inputs with fewer images than threads
    split their channels so every thread gets work (the split never changes
    a result).  NCHW units are one plane, or ``plane_group`` planes walked
    side by side on PATH_PLANE_GROUP.
    """
    B, S, C = plan.layout.view
    work = B * S * C + B * plan.out_view[1] * C
    n_threads = _config.kernel_threads(B * C, work)
    if C == 1:
        return n_threads, plan.plane_group
    unit_size = C
    if C > 1 and B < n_threads:
        slices = -(-n_threads // max(B, 1))
        unit_size = max(1, -(-C // slices))
    return n_threads, max(unit_size, 1)


def _view(array, shape, dtype=None):
    """A C-contiguous array of ``shape`` (copies only non-contiguous or mis-typed input)."""
    return np.ascontiguousarray(array, dtype=dtype).reshape(shape)


def plane_indices(plan, codes, n_threads):
    """PyTorch's int64 indices (flat position in each input plane) from argmax codes."""
    if codes.dtype == np.int32:
        indices = codes.astype(np.int64)
    else:
        indices = np.empty(codes.shape, dtype=np.int64)
        if codes.size:  # (no channels: the kernel would address element [b, 0, 0] of nothing)
            pool_extreme.codes_to_indices(codes, indices, plan.tables, n_threads)
    return indices.reshape(plan.out_shape)


class ExtremePool(Function):
    """Max (or min) pooling; backward routes the gradient to the kept argmax."""

    @staticmethod
    def forward(ctx, x, *, plan, is_min=False, return_indices=False):
        n_threads, unit_size = _threads(plan)
        xk = _view(x, plan.layout.view)
        out = np.empty(plan.out_view, dtype=x.dtype)
        store = ctx.requires_grad or return_indices
        codes = np.empty(plan.out_view, dtype=plan.code_dtype) if store else _NO_CODES
        pool_extreme.extreme_forward(xk, out, codes, plan.tables, plan.forward_path, is_min,
                                     store, unit_size, n_threads)
        if ctx.requires_grad:
            ctx.plan, ctx.codes = plan, codes
        out = out.reshape(plan.out_shape)
        if return_indices:
            return out, plane_indices(plan, codes, n_threads)
        return out

    @staticmethod
    def backward(ctx, grad):
        return route_gradient(ctx.plan, ctx.codes, grad)


def route_gradient(plan, codes, grad):
    """grad_in[argmax] += grad_out: the backward of max/min and stochastic training pools."""
    n_threads, unit_size = _threads(plan)
    dtype = grad.dtype if grad.dtype in (np.float32, np.float64) else np.float64
    g = _view(grad, plan.out_view, dtype)
    grad_in = np.empty(plan.layout.view, dtype=g.dtype)
    pool_extreme.extreme_backward(g, codes, grad_in, plan.tables, plan.backward_path, unit_size,
                                  n_threads)
    return grad_in.reshape(plan.layout.shape)


class PowerSumPool(Function):
    """Average, sum (divisor 1) and LP pooling ((sum x^p)^(1/p), divisor 1)."""

    @staticmethod
    def forward(ctx, x, *, plan, p=1.0):
        n_threads, unit_size = _threads(plan)
        xk = _view(x, plan.layout.view)
        out = np.empty(plan.out_view, dtype=x.dtype)
        pool_sum.sum_forward(xk, out, plan.tables, plan.forward_path, p, unit_size, n_threads)
        if ctx.requires_grad:
            ctx.plan, ctx.p = plan, p
            if p != 1.0:
                ctx.save_for_backward(xk, out)
        return out.reshape(plan.out_shape)

    @staticmethod
    def backward(ctx, grad):
        plan = ctx.plan
        n_threads, unit_size = _threads(plan)
        if ctx.p == 1.0:
            g = _view(grad, plan.out_view, grad.dtype)
            grad_in = np.empty(plan.layout.view, dtype=g.dtype)
            pool_sum.sum_backward(g, grad_in, plan.tables, plan.backward_path, unit_size,
                                  n_threads)
        else:
            xk, out = ctx.saved_tensors
            g = _view(grad, plan.out_view, xk.dtype)
            grad_in = np.empty(plan.layout.view, dtype=xk.dtype)
            pool_sum.lp_backward(xk, out, g, grad_in, plan.tables, ctx.p, unit_size, n_threads)
        return grad_in.reshape(plan.layout.shape)


class StochasticTrainPool(Function):
    """Stochastic pooling, training mode: one sampled cell per window."""

    @staticmethod
    def forward(ctx, x, *, plan, uniforms):
        n_threads, _ = _threads(plan)
        xk = _view(x, plan.layout.view)
        out = np.empty(plan.out_view, dtype=x.dtype)
        store = ctx.requires_grad
        codes = np.empty(plan.out_view, dtype=plan.code_dtype) if store else _NO_CODES
        uniforms = _view(uniforms, plan.out_view, np.float64)
        pool_stochastic.stochastic_train_forward(xk, uniforms, out, codes, plan.tables, store,
                                                 n_threads)
        if store:
            ctx.plan, ctx.codes = plan, codes
        return out.reshape(plan.out_shape)

    @staticmethod
    def backward(ctx, grad):
        return route_gradient(ctx.plan, ctx.codes, grad)


class StochasticEvalPool(Function):
    """Stochastic pooling, inference mode: sum(a^2) / sum(a) per window."""

    @staticmethod
    def forward(ctx, x, *, plan):
        n_threads, _ = _threads(plan)
        xk = _view(x, plan.layout.view)
        out = np.empty(plan.out_view, dtype=x.dtype)
        pool_stochastic.stochastic_eval_forward(xk, out, plan.tables, n_threads)
        if ctx.requires_grad:
            ctx.plan = plan
            ctx.save_for_backward(xk, out)
        return out.reshape(plan.out_shape)

    @staticmethod
    def backward(ctx, grad):
        plan = ctx.plan
        xk, out = ctx.saved_tensors
        n_threads, _ = _threads(plan)
        g = _view(grad, plan.out_view, xk.dtype)
        grad_in = np.empty(plan.layout.view, dtype=xk.dtype)
        pool_stochastic.stochastic_eval_backward(xk, out, g, grad_in, plan.tables, n_threads)
        return grad_in.reshape(plan.layout.shape)


class MaxUnpool(Function):
    """Place each value at its index in a zero-filled plane; backward gathers."""

    @staticmethod
    def forward(ctx, x, *, indices, planes, out_shape):
        # indices: checked int64 array of x's shape; planes: number of (N, C) planes
        n_in = x.size // planes if planes else 0
        # math.prod: np.prod wraps around int64 for huge sizes (a 0-cell buffer the kernel
        # would then write past); Python ints make NumPy refuse the allocation instead
        n_out = math.prod(out_shape) // planes if planes else 0
        xk = _view(x, (planes, n_in))
        ik = _view(indices, (planes, n_in), np.int64)
        out = np.empty((planes, n_out), dtype=x.dtype)
        n_threads = _config.kernel_threads(planes, xk.size + out.size)
        pool_stochastic.unpool_forward(xk, ik, out, n_threads)
        if ctx.requires_grad:
            ctx.indices, ctx.in_shape, ctx.n_out = ik, x.shape, n_out
        return out.reshape(out_shape)

    @staticmethod
    def backward(ctx, grad):
        ik = ctx.indices
        g = _view(grad, (ik.shape[0], ctx.n_out), grad.dtype)
        grad_in = np.empty(ik.shape, dtype=g.dtype)
        n_threads = _config.kernel_threads(ik.shape[0], ik.size + g.size)
        pool_stochastic.unpool_backward(g, ik, grad_in, n_threads)
        return grad_in.reshape(ctx.in_shape)
