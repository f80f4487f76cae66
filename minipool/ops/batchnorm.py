"""Batch normalisation: ``batch_norm`` as ``torch.nn.functional.batch_norm``, one fused op.

Per channel c (axis 1, or the last axis with ``data_format="channels_last"``):

* training: ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the
  batch mean and the *biased* batch variance over every axis but the channel
  axis (M values per channel); the running statistics, when given, are
  updated in place: ``running = (1 - momentum) * running + momentum * batch``,
  the variance with Bessel's correction ``var * M / (M - 1)`` (PyTorch's rule;
  Keras's BatchNormalization uses the biased one: ``normalize_over_axis(keras=True)``).
* evaluation: the running statistics take the batch statistics' place.

Statistics, the normalised values and both passes are computed in float64
(and rounded once to the input's dtype), as PyTorch's CPU kernel accumulates
float32 in double.  The backward is the textbook batch-norm gradient in one
node, ``dx = weight * invstd * (g - mean(g) - xhat * mean(g * xhat))``, rather
than a chain of small ops: it runs for every BN layer of every training step.
The running statistics are constants to autograd (as PyTorch's buffers).
"""
import numbers
from typing import Optional

import numpy as np

from minipool._typing import TensorLike
from minipool._validate import parse_data_format
from minipool.ops.elementwise import as_tensor
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["batch_norm"]


class BatchNormFn(Function):
    """The differentiable op behind ``batch_norm``.  ``x`` arrives in its own shape and is
    viewed as (pre, C, post) inside (``axis`` is the channel axis), so the output is a fresh
    tensor that in-place ops may change, as PyTorch's (``out += x`` in a residual block);
    ``running`` is ``None`` or ``(running_mean, running_var)`` arrays updated in place."""

    @staticmethod
    def forward(ctx, x, weight, bias, *, axis, running, training, momentum, eps, unbiased):
        shape = x.shape
        pre = int(np.prod(shape[:axis], dtype=np.int64))
        post = int(np.prod(shape[axis + 1:], dtype=np.int64))
        x3 = x.reshape(pre, shape[axis], post)
        ctx.shape = shape
        out = BatchNormFn._forward(ctx, x3, weight, bias, running, training, momentum, eps,
                                   unbiased)
        return out.reshape(shape)

    @staticmethod
    def _forward(ctx, x, weight, bias, running, training, momentum, eps, unbiased):
        pre, C, post = x.shape
        count = pre * post
        view = (1, C, 1)
        if training:
            xd = x.astype(np.float64)  # a copy for float32; float64 is copied too (we scale it in place)
            if count:
                mean = xd.sum(axis=(0, 2)) / count
                xd -= mean.reshape(view)
                var = np.einsum("ijk,ijk->j", xd, xd) / count
            else:  # an empty batch: nothing to normalise, running statistics untouched (PyTorch)
                mean = var = np.zeros(C)
            invstd = 1.0 / np.sqrt(var + eps)
            xd *= invstd.reshape(view)
            xhat = xd
            if running is not None and count:
                running_mean, running_var = running
                batch_var = var * (count / (count - 1)) if unbiased else var
                running_mean[...] = (1.0 - momentum) * running_mean.astype(np.float64) + momentum * mean
                running_var[...] = (1.0 - momentum) * running_var.astype(np.float64) + momentum * batch_var
        else:
            running_mean, running_var = running
            invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
            xhat = (x - running_mean.astype(np.float64).reshape(view)) * invstd.reshape(view)
        out = xhat
        if weight is not None:
            out = out * weight.astype(np.float64).reshape(view)
        if bias is not None:
            out = out + bias.astype(np.float64).reshape(view)
        if ctx.requires_grad:
            ctx.training, ctx.invstd = training, invstd
            ctx.save_for_backward(xhat.astype(x.dtype, copy=False), weight)
        out = out.astype(x.dtype, copy=False)
        # float64 without weight and bias: out is xhat, which backward needs; a copy keeps an
        # in-place change of the output (relu_, +=) away from it
        return out.copy() if out is xhat and ctx.requires_grad else out

    @staticmethod
    def backward(ctx, grad):
        grad_x, grad_w, grad_b = BatchNormFn._backward(ctx, grad.reshape(ctx.saved_tensors[0].shape))
        return None if grad_x is None else grad_x.reshape(ctx.shape), grad_w, grad_b

    @staticmethod
    def _backward(ctx, grad):
        xhat, weight = ctx.saved_tensors
        pre, C, post = xhat.shape
        view = (1, C, 1)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        sum_g = grad.sum(axis=(0, 2), dtype=np.float64)
        sum_g_xhat = np.einsum("ijk,ijk->j", grad, xhat, dtype=np.float64)
        grad_x = grad_w = grad_b = None
        if need_x:
            scale = ctx.invstd if weight is None else ctx.invstd * weight.astype(np.float64)
            if ctx.training:
                count = pre * post
                # The batch mean and variance depend on every x: the two subtracted terms.
                gx = grad - (sum_g / count).reshape(view)
                gx -= xhat * (sum_g_xhat / count).reshape(view)
                gx *= scale.reshape(view)
            else:
                gx = grad * scale.reshape(view)
            grad_x = gx.astype(xhat.dtype, copy=False)
        if need_w:
            grad_w = sum_g_xhat.astype(xhat.dtype)
        if need_b:
            grad_b = sum_g.astype(xhat.dtype)
        return grad_x, grad_w, grad_b


def _number(op, value, name, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"{op}: {name} must be a finite number, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        limits = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{op}: {name} must be {limits}, got {value!r}")
    return float(value)


def _channel_array(op, value, name, C, dtype, axis_text):
    """``value`` (Tensor or array) checked to be a (C,) array of ``dtype``; returns (tensor, array)."""
    if value is None:
        return None, None
    if not isinstance(value, (Tensor, np.ndarray)):
        raise TypeError(f"{op}: {name} must be a Tensor or None, got {type(value).__name__}")
    data = value._data if isinstance(value, Tensor) else value
    if data.shape != (C,):
        raise ValueError(f"{op}: {name} must have shape ({C},) for an input with {C} channels "
                         f"({axis_text}), got shape {data.shape}")
    if data.dtype != dtype:
        raise TypeError(f"{op}: {name} dtype {data.dtype} differs from input dtype {dtype}")
    return value, data


def normalize_over_axis(op, input, running_mean, running_var, weight, bias, training, momentum,
                        eps, axis, keras=False):
    """``batch_norm`` with the channel axis given as an int (shared with Keras's
    BatchNormalization, whose ``axis`` may be any axis).

    ``keras=True`` follows Keras 3's rules instead of PyTorch's: the running
    variance moves towards the *biased* batch variance, and neither one value
    per channel nor ``eps=0`` is refused in training (no Bessel factor to
    divide by zero)."""
    x = as_tensor(input)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: input must be float32 or float64, got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{op}: input must have at least 2 dimensions (N, C, ...), "
                         f"got shape {x.shape}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{op}: training must be a bool, got {training!r}")
    training = bool(training)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or \
            not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{op}: channel axis must be an int in [{-x.ndim}, {x.ndim - 1}] for "
                         f"an input of shape {x.shape}, got {axis!r}")
    axis = int(axis) % x.ndim
    C = x.shape[axis]
    axis_text = f"axis {axis} of shape {x.shape}"
    momentum = _number(op, momentum, "momentum", 0.0, 1.0)
    eps = _number(op, eps, "eps", 0.0)
    if training and eps == 0 and not keras:  # PyTorch's rule: a constant channel would divide 0 by 0
        raise ValueError(f"{op}: eps must be > 0 when training, got {eps!r}")
    running_mean, rm = _channel_array(op, running_mean, "running_mean", C, x.dtype, axis_text)
    running_var, rv = _channel_array(op, running_var, "running_var", C, x.dtype, axis_text)
    if (rm is None) != (rv is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    if not training and rm is None:
        raise ValueError(f"{op}: running_mean and running_var must be given in evaluation mode "
                         "(training=False)")
    weight = _channel_array(op, weight, "weight", C, x.dtype, axis_text)[0]
    bias = _channel_array(op, bias, "bias", C, x.dtype, axis_text)[0]
    count = x._data.size // C if C else 0
    if training and count == 1 and not keras:
        raise ValueError(f"{op}: expected more than 1 value per channel when training, got input "
                         f"of shape {x.shape} (one value per channel has no variance)")
    if rm is not None and not (rm.flags.writeable and rv.flags.writeable) and training:
        raise ValueError(f"{op}: running_mean and running_var must be writeable arrays "
                         "(they are updated in place)")
    return BatchNormFn.apply(x, weight, bias, axis=axis, running=None if rm is None else (rm, rv),
                             training=training, momentum=momentum, eps=eps, unbiased=not keras)


def batch_norm(input: TensorLike, running_mean: TensorLike, running_var: TensorLike,
               weight: Optional[TensorLike] = None, bias: Optional[TensorLike] = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5, *,
               data_format: Optional[str] = None) -> Tensor:
    """Batch normalisation over the channel axis, as ``torch.nn.functional.batch_norm``.

    ``input`` is (N, C, ...) (or (N, ..., C) with ``data_format="channels_last"``);
    ``running_mean``, ``running_var``, ``weight`` and ``bias`` are (C,) or None.
    With ``training=True`` the batch statistics normalise and, if given, the
    running statistics are updated in place (unbiased variance, as PyTorch);
    else the running statistics normalise (they must be given).  Training with
    one value per channel, or with ``eps=0``, is a ValueError, as in PyTorch.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.tensor([[100.0, 1000.0], [300.0, 3000.0]])
    >>> rm, rv = mp.zeros(2), mp.ones(2)
    >>> F.batch_norm(x, rm, rv, training=True).numpy()
    array([[-1., -1.],
           [ 1.,  1.]], dtype=float32)
    >>> rm.numpy(), rv.numpy()  # 0.9 * old + 0.1 * batch (unbiased variance 2e4 and 2e6)
    (array([ 20., 200.], dtype=float32), array([  2000.9, 200000.9], dtype=float32))
    """
    axis = -1 if parse_data_format("batch_norm", data_format) else 1
    return normalize_over_axis("batch_norm", input, running_mean, running_var, weight, bias,
                               training, momentum, eps, axis)
