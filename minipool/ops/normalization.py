"""Per-sample normalisation: ``layer_norm``, ``group_norm``, ``instance_norm``, as PyTorch's,
plus ``normalize`` and ``cosine_similarity``.

The three norms are one op.  The input is viewed as (R, G, K, P) and each (r, g)
slice of K * P values is normalised by its own mean and *biased* variance; the
affine weight and bias are (G, K), broadcast over R and P:

* ``layer_norm``:    (rows, 1, normalized numel, 1), weight = the normalized shape;
* ``group_norm``:    (N, groups, C / groups, spatial), weight per channel;
* ``instance_norm``: (N, C, 1, spatial), weight per channel.

As ``batch_norm`` (minipool.ops.batchnorm), statistics and both passes run in
float64 and are rounded once to the input's dtype, and the backward is the
fused textbook gradient, per slice:
``dx = invstd * (gy - mean(gy) - xhat * mean(gy * xhat))`` with ``gy = g * weight``.
The loops are ``minipool/_kernels/slice_norm.pyx`` (threads take whole slices).
"""
import math
import numbers
from typing import Optional, Sequence, Union

import numpy as np

from minipool import _config
from minipool._kernels import slice_norm
from minipool._typing import TensorLike
from minipool._validate import single_int
from minipool.ops.batchnorm import batch_norm
from minipool.ops.elementwise import as_tensor, div, mul
from minipool.ops.reduce import normalize_dims, sum as reduce_sum
from minipool.ops.shape import broadcast_to
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["layer_norm", "group_norm", "instance_norm", "normalize", "cosine_similarity",
           "pairwise_distance"]


def _threads(slices, size):
    return _config.kernel_threads(slices, 2 * size)


class SliceNormFn(Function):
    """The differentiable op behind the three norms (the loops: ``_kernels/slice_norm.pyx``).

    ``x`` (any shape) is seen as ``view`` = (R, G, K, P); ``weight`` and ``bias`` (any
    shape of G * K values) as (G, K), or None.  Gradients come back in the inputs' shapes
    (no reshape nodes around the op: it runs for every norm layer of every step).
    ``running`` is None or ``(running_mean, running_var, momentum)``, (G,) arrays moved in
    place towards the slice statistics averaged over R (the variance with Bessel's
    correction), as PyTorch's instance_norm does."""

    @staticmethod
    def forward(ctx, x, weight, bias, *, view, eps, running=None):
        R, G, K, P = view
        count = K * P
        x3 = np.ascontiguousarray(x).reshape(R * G, K, P)
        y = np.empty_like(x3)
        keep = ctx.requires_grad
        xhat = np.empty_like(x3) if keep else _unused(x.dtype, 3)
        mean, var, invstd = (np.empty(R * G) for _ in range(3))
        w = _unused(x.dtype, 2) if weight is None else np.ascontiguousarray(weight).reshape(G, K)
        b = _unused(x.dtype, 2) if bias is None else np.ascontiguousarray(bias).reshape(G, K)
        slice_norm.forward(x3, y, xhat, w, b, G, eps, mean, var, invstd, keep,
                           weight is not None, bias is not None, _threads(R * G, x3.size))
        if running is not None and R and count:
            running_mean, running_var, momentum = running
            unbiased = var.reshape(R, G) * (count / (count - 1))  # instance_norm: count > 1
            running_mean[...] = ((1.0 - momentum) * running_mean.astype(np.float64)
                                 + momentum * mean.reshape(R, G).mean(axis=0))
            running_var[...] = ((1.0 - momentum) * running_var.astype(np.float64)
                                + momentum * unbiased.mean(axis=0))
        if keep:
            ctx.invstd, ctx.groups = invstd, G
            ctx.shapes = (x.shape, None if weight is None else weight.shape,
                          None if bias is None else bias.shape)
            ctx.save_for_backward(xhat, w if weight is not None else None)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        xhat, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        S, K, P = xhat.shape
        G = ctx.groups
        grad3 = np.ascontiguousarray(grad, dtype=xhat.dtype).reshape(S, K, P)
        grad_x = np.empty_like(xhat) if need_x else _unused(xhat.dtype, 3)
        sum_g, sum_g_xhat = np.zeros((S, K)), np.zeros((S, K))
        w = _unused(xhat.dtype, 2) if weight is None else weight
        slice_norm.backward(grad3, xhat, w, G, ctx.invstd, grad_x, sum_g, sum_g_xhat,
                            weight is not None, need_x, _threads(S, xhat.size))
        R = S // G if G else 0
        # over the samples in a fixed order: the same bits for any thread count
        x_shape, w_shape, b_shape = ctx.shapes
        grad_w = grad_b = None
        if need_w:
            grad_w = sum_g_xhat.reshape(R, G, K).sum(axis=0).astype(xhat.dtype).reshape(w_shape)
        if need_b:
            grad_b = sum_g.reshape(R, G, K).sum(axis=0).astype(xhat.dtype).reshape(b_shape)
        return (grad_x.reshape(x_shape) if need_x else None), grad_w, grad_b


def _unused(dtype, ndim):
    """A placeholder for an array the kernel is told not to touch."""
    return np.zeros((1,) * ndim, dtype)


def _float_input(op, input, min_ndim, form):
    x = as_tensor(input)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: input must be float32 or float64, got {x.dtype}")
    if x.ndim < min_ndim:
        raise ValueError(f"{op}: input must be {form}, got shape {x.shape}")
    return x


def _eps(op, eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 <= eps < math.inf:
        raise ValueError(f"{op}: eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def _affine(op, value, name, shape, dtype, what):
    """``weight``/``bias``: None, or a Tensor of ``shape`` and ``dtype``."""
    if value is None:
        return None
    if not isinstance(value, (Tensor, np.ndarray)):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(value).__name__}")
    value = as_tensor(value)
    if value.shape != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)} ({what}), got {value.shape}")
    if value.dtype != dtype:
        raise TypeError(f"{op}: {name} dtype {value.dtype} differs from input dtype {dtype}")
    return value


def normalized_shape_argument(normalized_shape, where):
    """An int or a sequence of ints >= 0 as a tuple (shared with the LayerNorm layer)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else normalized_shape
    if isinstance(shape, (str, bytes)):
        raise TypeError(f"{where}: normalized_shape must be an int or a sequence of ints, "
                        f"got {normalized_shape!r}")
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}: normalized_shape must be an int or a sequence of ints, "
                        f"got {normalized_shape!r}") from None
    if not shape or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0
                        for n in shape):
        raise ValueError(f"{where}: normalized_shape must be a non-empty sequence of ints >= 0, "
                         f"got {normalized_shape!r}")
    return tuple(int(n) for n in shape)


def _apply(x, view, weight, bias, eps, running=None):
    return SliceNormFn.apply(x, weight, bias, view=view, eps=eps, running=running)


def layer_norm(input: TensorLike, normalized_shape: Union[int, Sequence[int]],
               weight: Optional[TensorLike] = None, bias: Optional[TensorLike] = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` axes, as ``torch.nn.functional.layer_norm``.

    Each sample's trailing block, whose shape must equal ``normalized_shape``,
    gets mean 0 and (biased) variance 1, then ``* weight + bias`` elementwise
    (both of ``normalized_shape``, or None).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.layer_norm(mp.tensor([[1.0, 3.0], [10.0, 10.0]]), (2,)).numpy().round(4)
    array([[-1.,  1.],
           [ 0.,  0.]], dtype=float32)
    """
    op = "layer_norm"
    shape = normalized_shape_argument(normalized_shape, op)
    x = _float_input(op, input, 1, "a tensor with at least one dimension")
    if x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
        raise ValueError(f"{op}: normalized_shape {shape} must equal the input's last "
                         f"{len(shape)} dimensions, got input of shape {x.shape}")
    eps = _eps(op, eps)
    weight = _affine(op, weight, "weight", shape, x.dtype, "normalized_shape")
    bias = _affine(op, bias, "bias", shape, x.dtype, "normalized_shape")
    inner = int(np.prod(shape, dtype=np.int64))
    rows = int(np.prod(x.shape[:x.ndim - len(shape)], dtype=np.int64))
    return _apply(x, (rows, 1, inner, 1), weight, bias, eps)


def group_norm(input: TensorLike, num_groups: int, weight: Optional[TensorLike] = None,
               bias: Optional[TensorLike] = None, eps: float = 1e-5) -> Tensor:
    """Normalise each sample's channels in ``num_groups`` groups, as
    ``torch.nn.functional.group_norm``; ``weight`` and ``bias`` are per channel (C,).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.tensor([[[1.0], [3.0], [5.0], [5.0]]])   # (N=1, C=4, L=1), 2 groups
    >>> F.group_norm(x, 2).numpy().ravel().round(4)
    array([-1.,  1.,  0.,  0.], dtype=float32)
    """
    op = "group_norm"
    x = _float_input(op, input, 2, "(N, C, ...)")
    num_groups = single_int(num_groups, "num_groups", op)
    N, C = x.shape[:2]
    if C % num_groups:
        raise ValueError(f"{op}: num_groups={num_groups} must divide the number of channels "
                         f"{C} (input shape {x.shape})")
    eps = _eps(op, eps)
    weight = _affine(op, weight, "weight", (C,), x.dtype, "one per channel")
    bias = _affine(op, bias, "bias", (C,), x.dtype, "one per channel")
    spatial = int(np.prod(x.shape[2:], dtype=np.int64))
    G = int(num_groups)
    if N * (C // G) * spatial == 1:  # PyTorch's rule (it counts the batch too)
        raise ValueError(f"{op}: expected more than 1 value per group, got input of shape "
                         f"{x.shape} with num_groups={num_groups}")
    return _apply(x, (N, G, C // G, spatial), weight, bias, eps)


def instance_norm(input: TensorLike, running_mean: Optional[TensorLike] = None,
                  running_var: Optional[TensorLike] = None, weight: Optional[TensorLike] = None,
                  bias: Optional[TensorLike] = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each (sample, channel) plane on its own, as ``torch.nn.functional.instance_norm``.

    ``input`` is (N, C, L...) with more than one spatial value.  With
    ``use_input_stats`` (the default) the plane's own statistics normalise and the
    running statistics, if given, move towards their average over the batch (unbiased
    variance, as PyTorch); else the running statistics normalise (``batch_norm`` in
    evaluation mode).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.instance_norm(mp.tensor([[[1.0, 3.0], [0.0, 8.0]]])).numpy().round(4)
    array([[[-1.,  1.],
            [-1.,  1.]]], dtype=float32)
    """
    op = "instance_norm"
    x = _float_input(op, input, 3, "(N, C, L, ...) with at least one spatial dimension")
    if not isinstance(use_input_stats, (bool, np.bool_)):
        raise TypeError(f"{op}: use_input_stats must be a bool, got {use_input_stats!r}")
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise ValueError(f"{op}: running_mean and running_var must be given when "
                             "use_input_stats=False")
        return batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps)
    N, C = x.shape[:2]
    spatial = int(np.prod(x.shape[2:], dtype=np.int64))
    if spatial == 1:
        raise ValueError(f"{op}: expected more than 1 spatial element per plane when using the "
                         f"input's statistics, got input of shape {x.shape}")
    eps = _eps(op, eps)
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise ValueError(f"{op}: momentum must be a number in [0, 1], got {momentum!r}")
    weight = _affine(op, weight, "weight", (C,), x.dtype, "one per channel")
    bias = _affine(op, bias, "bias", (C,), x.dtype, "one per channel")
    running = None
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    if running_mean is not None:
        rm = _affine(op, running_mean, "running_mean", (C,), x.dtype, "one per channel")
        rv = _affine(op, running_var, "running_var", (C,), x.dtype, "one per channel")
        running = (rm._data, rv._data, float(momentum))
    return _apply(x, (N, C, 1, spatial), weight, bias, eps, running)


# --------------------------------------------------------------------------- vector norms
class VectorNormFn(Function):
    """The ``p``-norm over ``axes`` (kept as size-1 axes), with PyTorch's gradient: zero
    where the norm is zero, and for ``p=inf`` shared equally by the tied largest entries."""

    @staticmethod
    def forward(ctx, x, *, p, axes):
        a = np.abs(x)
        if p == math.inf:
            norm = a.max(axis=axes, keepdims=True, initial=0)
        elif p == 2:
            norm = np.sqrt(np.sum(a * a, axis=axes, keepdims=True))
        elif p == 1:
            norm = np.sum(a, axis=axes, keepdims=True)
        else:
            norm = np.power(np.sum(np.power(a, p), axis=axes, keepdims=True), 1.0 / p)
        if ctx.requires_grad:
            ctx.p, ctx.axes = p, axes
            ctx.save_for_backward(x, norm)
        return norm.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, norm = ctx.saved_tensors
        p = ctx.p
        if p == math.inf:
            a = np.abs(x)
            tied = (a == norm) | np.isnan(a)
            share = grad / tied.sum(axis=ctx.axes, keepdims=True)
            gx = np.sign(x) * share * tied
        elif p == 1:
            gx = np.sign(x) * grad
        else:
            # d||x||_p / dx = sign(x) |x|^(p-1) / ||x||^(p-1); 0 where x or the norm is 0
            scale = np.where(norm == 0, 0, grad / np.power(norm, p - 1))
            if p == 2:
                gx = x * scale
            else:
                gx = np.where(x == 0, 0, np.sign(x) * np.power(np.abs(x), p - 1)) * scale
        return gx.astype(x.dtype, copy=False)


class ClampMinValueFn(Function):
    """``max(x, minimum)`` whose gradient passes through unchanged, as PyTorch's
    ``cosine_similarity`` clamps the norms in place under ``no_grad``."""

    @staticmethod
    def forward(ctx, x, *, minimum):
        return np.maximum(x, np.asarray(minimum, x.dtype))

    @staticmethod
    def backward(ctx, grad):
        return grad


class ClampMinFn(Function):
    """``max(x, minimum)``; the gradient goes to x where x > minimum (and NaN stays)."""

    @staticmethod
    def forward(ctx, x, *, minimum):
        if ctx.requires_grad:
            ctx.save_for_backward(x)
            ctx.minimum = minimum
        return np.maximum(x, np.asarray(minimum, x.dtype))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return np.where(x < ctx.minimum, 0, grad).astype(grad.dtype, copy=False)


def _norm_order(op, p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not p > 0:
        raise ValueError(f"{op}: p must be a number > 0 (or math.inf), got {p!r}")
    return float(p)


def vector_norm(x, p, dim, op):
    """``||x||_p`` over ``dim`` (an int or a tuple), keeping the axes."""
    axes = normalize_dims(dim, x.ndim, op)
    return VectorNormFn.apply(x, p=p, axes=axes)


def normalize(input: TensorLike, p: float = 2.0, dim: Union[int, Sequence[int]] = 1,
              eps: float = 1e-12) -> Tensor:
    """``input / max(||input||_p, eps)`` along ``dim``, as ``torch.nn.functional.normalize``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.normalize(mp.tensor([[3.0, 4.0], [0.0, 0.0]])).numpy()
    array([[0.6, 0.8],
           [0. , 0. ]], dtype=float32)
    """
    op = "normalize"
    x = _float_input(op, input, 0, "a floating-point tensor")
    p = _norm_order(op, p)
    eps = _eps(op, eps)
    norm = ClampMinFn.apply(vector_norm(x, p, dim, op), minimum=eps)
    return div(x, norm)


def cosine_similarity(x1: TensorLike, x2: TensorLike, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim`` (they broadcast), as
    ``torch.nn.functional.cosine_similarity``: each is divided by its 2-norm clamped
    to at least ``eps`` before the dot product (so the result stays in [-1, 1]).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.cosine_similarity(mp.tensor([[1.0, 0.0]]), mp.tensor([[2.0, 2.0]])).numpy().round(4)
    array([0.7071], dtype=float32)
    """
    op = "cosine_similarity"
    a = _float_input(op, x1, 0, "a floating-point tensor")
    b = _float_input(op, x2, 0, "a floating-point tensor")
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: x1 dtype {a.dtype} differs from x2 dtype {b.dtype}")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: x1 of shape {a.shape} and x2 of shape {b.shape} cannot be "
                         "broadcast together") from None
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    eps = _eps(op, eps)
    a = a if a.shape == shape else broadcast_to(a, shape)
    b = b if b.shape == shape else broadcast_to(b, shape)
    unit_a = div(a, ClampMinValueFn.apply(vector_norm(a, 2.0, dim, op), minimum=eps))
    unit_b = div(b, ClampMinValueFn.apply(vector_norm(b, 2.0, dim, op), minimum=eps))
    return reduce_sum(mul(unit_a, unit_b), dim)


def pairwise_distance(x1: TensorLike, x2: TensorLike, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    """The ``p``-norm of ``x1 - x2 + eps`` over the last dimension (they broadcast), as
    ``torch.nn.functional.pairwise_distance`` (``eps`` keeps the gradient finite where
    the points coincide).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.pairwise_distance(mp.tensor([[1.0, 1.0]]), mp.tensor([[1.0, 1.0]]), eps=0.0).tolist()
    [0.0]
    """
    from minipool.ops.elementwise import add, sub
    from minipool.ops.reduce import norm
    op = "pairwise_distance"
    a = _float_input(op, x1, 0, "a floating-point tensor")
    b = _float_input(op, x2, 0, "a floating-point tensor")
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: x1 dtype {a.dtype} differs from x2 dtype {b.dtype}")
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise RuntimeError(f"{op}: x1 of shape {a.shape} and x2 of shape {b.shape} cannot be "
                           "broadcast together") from None
    p = _norm_order(op, p)
    difference = add(sub(a, b), eps)
    if difference.ndim == 0:
        return norm(difference.reshape(1), p, dim=-1, keepdim=keepdim).reshape(())
    return norm(difference, p, dim=-1, keepdim=keepdim)
