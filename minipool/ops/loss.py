"""Losses: cross-entropy (fused, stable log-softmax), negative log-likelihood, mean squared error.

Cross-entropy and NLL share one formulation.  With the class axis moved last
and the other axes flattened into rows, every row i gets a non-negative
"target weight" vector q_i over the classes, and

    loss_i = -sum_c q_ic * logp_ic,      d loss_i / d x_ic = p_ic * sum_c' q_ic' - q_ic

(p = softmax; for NLL the input already is logp and the gradient is -q_ic).
Class-index targets give q_i = (1 - eps) * w[y_i] * onehot(y_i) + (eps / C) * w
(eps = label_smoothing, w = class weights, q_i = 0 for ignored rows); "mean"
divides by sum_i w[y_i] over the rows kept, as PyTorch does.  Probability
targets give q_i = w * ((1 - eps) * t_i + eps / C) and "mean" divides by the
number of rows.
"""
import numbers
from typing import Optional

import numpy as np

from minipool._typing import TensorLike
from minipool.ops.elementwise import as_tensor, div
from minipool.ops.reduce import mean, sum as reduce_sum
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "l1_loss", "smooth_l1_loss", "huber_loss",
           "kl_div"]

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(reduction, where):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{where}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _rows(a, num_classes):
    """(N, C, d1..dk) -> (N*d1*..*dk, C); (C,) -> (1, C); (N, C) unchanged."""
    if a.ndim == 1:
        return a.reshape(1, num_classes)
    if a.ndim == 2:
        return a
    return np.moveaxis(a, 1, -1).reshape(-1, num_classes)


def _unrows(rows, shape):
    """The inverse of ``_rows`` for an array of the input's ``shape``."""
    if len(shape) <= 2:
        return rows.reshape(shape)
    moved = rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return np.ascontiguousarray(np.moveaxis(moved, -1, 1))


def _log_softmax_rows(x2):
    shifted = x2 - x2.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _reduce_rows(loss, x, reduction, denominator):
    """The per-row losses as ``reduction`` asks: unreduced in the input's batch shape,
    summed, or summed and divided by ``denominator``."""
    if reduction == "none":
        return loss.reshape(x.shape[:1] + x.shape[2:] if x.ndim >= 2 else ())
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / denominator


def _plain_cross_entropy(ctx, x, n_rows, logp, t, reduction):
    """ClassLossFn's forward for the common case -- logits, class indices all kept, no
    weight, no smoothing: q is one-hot, so the loss is -logp at the targets.  Same
    arithmetic as the general path (which multiplies by weights of exactly 1)."""
    rows = np.arange(n_rows)
    loss = -logp[rows, t]
    denominator = x.dtype.type(n_rows)  # >= 1 here, so no errstate needed for the division
    out = _reduce_rows(loss, x, reduction, denominator)
    if ctx.requires_grad:
        ctx.meta = (x.shape, reduction, denominator, True)
        ctx.q = None
        ctx.logp, ctx.target = logp, t
    return np.asarray(out, dtype=x.dtype)


def _plain_cross_entropy_backward(ctx, grad):
    """softmax - onehot, scaled: the general backward with q one-hot (q.sum = 1 per row)."""
    shape, reduction, denominator, _ = ctx.meta
    t = ctx.target
    d_rows = np.exp(ctx.logp)
    d_rows[np.arange(t.shape[0]), t] -= 1
    if reduction == "none":
        d_rows *= grad.reshape(-1, 1)
    elif reduction == "sum":
        d_rows *= grad
    else:
        d_rows *= grad / np.asarray(denominator, dtype=grad.dtype)
    return (_unrows(d_rows, shape),) + (None,) * 7


class ClassLossFn(Function):
    """Cross-entropy (``from_logits=True``) or NLL over rows of class scores.

    Positional inputs: ``x`` (differentiable), then constants ``target``
    (int indices or probabilities) and ``weight`` (per-class or None).
    """

    @staticmethod
    def forward(ctx, x, target, weight, from_logits, probabilities, ignore_index,
                reduction, label_smoothing, all_kept=False):
        num_classes = x.shape[1] if x.ndim >= 2 else x.shape[0]
        x2 = _rows(x, num_classes)
        logp = _log_softmax_rows(x2) if from_logits else x2
        if all_kept and from_logits and weight is None and not label_smoothing \
                and not probabilities:
            return _plain_cross_entropy(ctx, x, x2.shape[0], logp, target.reshape(-1), reduction)
        rows = np.arange(x2.shape[0])
        smooth = label_smoothing / num_classes
        w = None if weight is None else weight.astype(x.dtype, copy=False)
        if probabilities:
            t2 = _rows(target, num_classes).astype(x.dtype, copy=False)
            q = t2 * (1 - label_smoothing) + smooth if label_smoothing else t2
            if w is not None:
                q = q * w
            loss = -(q * logp).sum(axis=1)
            denominator = x2.shape[0]
        else:
            t = target.reshape(-1)
            keep = t != ignore_index
            safe_t = np.where(keep, t, 0)
            row_weight = (w[safe_t] if w is not None else np.ones(t.shape, x.dtype)) * keep
            picked = logp[rows, safe_t]
            # where() rather than a product, so an ignored row's -inf score gives 0, not nan
            loss = -np.where(keep, row_weight * picked, 0) * (1 - label_smoothing)
            q = np.zeros_like(x2)
            q[rows, safe_t] = (1 - label_smoothing) * row_weight
            if label_smoothing:
                class_weight = w if w is not None else np.ones(num_classes, x.dtype)
                spread = smooth * class_weight * keep[:, None]
                loss = loss - np.where(keep, (class_weight * logp).sum(axis=1), 0) * smooth
                q += spread
            denominator = row_weight.sum()
        out = _reduce_rows(loss, x, reduction, denominator)
        if ctx.requires_grad:
            ctx.meta = (x.shape, reduction, denominator, from_logits)
            ctx.q = q
            ctx.logp = logp if from_logits else None
            ctx.keep = None if probabilities else keep
            ctx.target_scale = ctx.logp_rows = None
            if probabilities and ctx.needs_input_grad[1]:  # d loss / d t = -(1 - s) w logp
                ctx.target_scale = (1 - label_smoothing) * (1 if w is None else w)
                ctx.logp_rows = logp
        return np.asarray(out, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        shape, reduction, denominator, from_logits = ctx.meta
        q = ctx.q
        if q is None:
            return _plain_cross_entropy_backward(ctx, grad)
        if reduction == "none":
            row_grad = grad.reshape(-1, 1)
        elif reduction == "sum":
            row_grad = grad
        else:
            row_grad = grad / np.asarray(denominator, dtype=grad.dtype)
        if from_logits:
            d_rows = np.exp(ctx.logp) * q.sum(axis=1, keepdims=True) - q
        else:
            d_rows = -q
        d_rows *= row_grad
        grad_target = None
        if ctx.target_scale is not None:  # probabilities that require grad (distillation):
            grad_target = _unrows(-ctx.target_scale * ctx.logp_rows * row_grad, shape)
        if ctx.keep is not None and denominator == 0:
            # the mean over no weight is 0/0: kept rows get nan (0 * inf), ignored rows keep
            # gradient 0, as in PyTorch (a batch whose targets are all ignore_index)
            d_rows[~ctx.keep] = 0
        return (_unrows(d_rows, shape), grad_target) + (None,) * 6


def _validated_class_args(where, input, target, weight, reduction, label_smoothing,
                          allow_probabilities):
    input = as_tensor(input)
    check_reduction(reduction, where)
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where}: input must be float32 or float64, got {input.dtype}")
    if input.ndim == 0:
        raise ValueError(f"{where}: input must be (C,), (N, C) or (N, C, d1, ...), got a 0-d tensor")
    num_classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    if num_classes == 0:
        raise ValueError(f"{where}: input has no classes (shape {input.shape})")
    t = np.asarray(target._data if isinstance(target, Tensor) else target)
    probabilities = False
    if t.dtype.kind == "f" and allow_probabilities and t.shape == input.shape:
        probabilities = True
    elif t.dtype.kind not in "iu":
        raise TypeError(f"{where}: target must hold integer class indices"
                        + (" (or class probabilities of the input's shape)" if allow_probabilities else "")
                        + f", got dtype {t.dtype} and shape {t.shape}")
    else:
        expected = input.shape[:1] + input.shape[2:] if input.ndim >= 2 else ()
        if t.shape != expected:
            raise ValueError(f"{where}: target must have shape {expected} for input of shape "
                             f"{input.shape}, got {t.shape}")
    if not isinstance(label_smoothing, (int, float, np.floating)) or isinstance(label_smoothing, bool) \
            or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{where}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if weight is not None:
        weight = np.asarray(weight._data if isinstance(weight, Tensor) else weight)
        if weight.shape != (num_classes,) or weight.dtype.kind not in "fiu":
            raise ValueError(f"{where}: weight must be a float vector of shape ({num_classes},), "
                             f"got shape {weight.shape} and dtype {weight.dtype}")
    return input, t, weight, probabilities, num_classes


def _check_indices(where, t, num_classes, ignore_index):
    """Refuse class indices outside [0, num_classes) other than ``ignore_index``.

    Returns True when every entry is a class index and none equals
    ``ignore_index`` (every row counts, the common case), from two reductions.
    """
    if t.size:
        lo, hi = int(t.min()), int(t.max())
        if lo >= 0 and hi < num_classes:
            return not lo <= ignore_index <= hi
    bad = (t != ignore_index) & ((t < 0) | (t >= num_classes))
    if np.any(bad):
        value = t[bad].reshape(-1)[0]
        raise ValueError(f"{where}: target holds class index {int(value)}, outside [0, {num_classes}) "
                         f"(and not ignore_index={ignore_index})")
    return False


def cross_entropy(input: TensorLike, target: TensorLike, weight: Optional[TensorLike] = None, *,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of logits ``input`` against ``target``, as ``torch.nn.functional.cross_entropy``.

    ``input``: (N, C), (C,) or (N, C, d1, ...) logits.  ``target``: integer class
    indices of shape (N,), () or (N, d1, ...) -- entries equal to
    ``ignore_index`` are skipped -- or float class probabilities of the
    input's shape.  ``weight``: optional per-class weights (C,).
    ``reduction``: "mean" (weighted mean over kept entries), "sum" or "none".
    ``label_smoothing`` in [0, 1] mixes the target with the uniform distribution.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> logits = mp.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)
    >>> loss = F.cross_entropy(logits, mp.tensor([0, 2]))
    >>> round(loss.item(), 4)
    0.6691
    >>> loss.backward()
    >>> logits.grad.numpy().round(4)
    array([[-0.1065,  0.0533,  0.0533],
           [ 0.1667,  0.1667, -0.3333]], dtype=float32)
    """
    input, t, weight, probabilities, num_classes = _validated_class_args(
        "cross_entropy", input, target, weight, reduction, label_smoothing, True)
    all_kept = False
    if not probabilities:
        all_kept = _check_indices("cross_entropy", t, num_classes, ignore_index)
    elif ignore_index >= 0:  # a class to ignore means nothing for probabilities (PyTorch raises)
        raise ValueError(f"cross_entropy: ignore_index={ignore_index} is not supported for class-"
                         f"probability (floating point) targets, as in PyTorch")
    if probabilities and isinstance(target, Tensor) and target.requires_grad:
        t = target.to(input.dtype)  # soft targets that require grad get their gradient, as in PyTorch
    return ClassLossFn.apply(input, t, weight, True, probabilities, ignore_index, reduction,
                             float(label_smoothing), all_kept=all_kept)


def nll_loss(input: TensorLike, target: TensorLike, weight: Optional[TensorLike] = None, *,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` at class indices ``target``.

    Shapes, ``weight``, ``ignore_index`` and ``reduction`` as in ``cross_entropy``;
    ``F.nll_loss(F.log_softmax(x, 1), y)`` equals ``F.cross_entropy(x, y)``.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> logp = mp.tensor([[-0.5, -1.0], [-2.0, -0.25]])
    >>> F.nll_loss(logp, mp.tensor([1, 1]), reduction="sum").item()
    1.25
    """
    input, t, weight, _, num_classes = _validated_class_args(
        "nll_loss", input, target, weight, reduction, 0.0, False)
    _check_indices("nll_loss", t, num_classes, ignore_index)
    return ClassLossFn.apply(input, t, weight, False, False, ignore_index, reduction, 0.0)


class MseFn(Function):
    @staticmethod
    def forward(ctx, x, target, reduction):
        diff = x - target
        squared = diff * diff
        if reduction == "none":
            out = squared
        elif reduction == "sum":
            out = squared.sum()
        else:
            out = squared.mean() if squared.size else np.asarray(np.nan, x.dtype)
        if ctx.requires_grad:
            ctx.diff = diff
            ctx.reduction = reduction
        return np.asarray(out, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        diff = ctx.diff
        scale = 2.0 / diff.size if ctx.reduction == "mean" and diff.size else 2.0
        grad_x = (grad * np.asarray(scale, grad.dtype)) * diff
        grad_t = -grad_x if ctx.needs_input_grad[1] else None
        return grad_x, grad_t, None


def mse_loss(input: TensorLike, target: TensorLike, *, reduction: str = "mean") -> Tensor:
    """Mean squared error ``(input - target) ** 2`` reduced by ``reduction``.

    ``input`` and ``target`` must have the same shape (PyTorch would broadcast
    with a warning; that is almost always a bug, so minipool refuses it).
    Gradients flow to both when they require them.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.mse_loss(mp.tensor([1.0, 2.0, 3.0]), mp.tensor([1.0, 0.0, 5.0])).item()
    2.6666667461395264
    """
    check_reduction(reduction, "mse_loss")
    input = as_tensor(input)
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"mse_loss: input must be float32 or float64, got {input.dtype}")
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    elif target.dtype != input.dtype:
        if target.requires_grad:
            raise TypeError(f"mse_loss: target dtype {target.dtype} differs from input dtype {input.dtype}")
        target = Tensor(target._data.astype(input.dtype))
    if target.shape != input.shape:
        raise ValueError(f"mse_loss: target shape {target.shape} differs from input shape {input.shape}")
    return MseFn.apply(input, target, reduction)


# -- elementwise losses: BCE, BCE with logits, L1, smooth L1, Huber ---------------------
#
# Each is loss_i = f(x_i, t_i) (times a broadcast weight) reduced by "mean" (over all
# elements; nan for an empty input, as PyTorch), "sum" or "none".  The Functions keep
# d loss_i / d x_i and d loss_i / d t_i and scale them by the reduction in backward.


def _reduce_elements(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if loss.size == 0:
        return np.asarray(np.nan, loss.dtype)
    return loss.mean()


def _reduction_scale(grad, reduction, size):
    """The upstream gradient as each element sees it."""
    if reduction == "mean":
        return grad / np.asarray(size, grad.dtype) if size else grad
    return grad


class ElementwiseLossFn(Function):
    """loss = f(x, t); ``kernel(x, t)`` returns (loss, d/dx, d/dt) arrays."""

    @staticmethod
    def forward(ctx, x, target, kernel, reduction):
        loss, dx, dt = kernel(x, target, ctx.requires_grad, ctx.needs_input_grad[1])
        out = _reduce_elements(loss, reduction)
        if ctx.requires_grad:
            ctx.d = (dx, dt)
            ctx.reduction = reduction
        return np.asarray(out, dtype=x.dtype)

    @staticmethod
    def backward(ctx, grad):
        dx, dt = ctx.d
        g = _reduction_scale(grad, ctx.reduction, dx.size)
        gx = g * dx if ctx.needs_input_grad[0] else None
        gt = g * dt if ctx.needs_input_grad[1] and dt is not None else None
        return gx, gt, None, None


def _float_pair(where, input, target, *, target_grad=True):
    """``input`` as a float Tensor and ``target`` as a Tensor of the same dtype and shape."""
    input = as_tensor(input)
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where}: input must be float32 or float64, got {input.dtype}")
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    elif target.dtype != input.dtype:
        if target.requires_grad:
            raise TypeError(f"{where}: target dtype {target.dtype} differs from input dtype {input.dtype}")
        target = Tensor(target._data.astype(input.dtype))
    if target.shape != input.shape:
        raise ValueError(f"{where}: target shape {target.shape} differs from input shape {input.shape} "
                         "(PyTorch would broadcast or refuse; minipool needs the same shape)")
    return input, target


def _constant_weight(where, name, weight, dtype):
    """A weight array (no gradient flows to it), or None."""
    if weight is None:
        return None
    if isinstance(weight, Tensor):
        if weight.requires_grad:
            raise ValueError(f"{where}: {name} requires grad, but minipool treats {name} as a constant; "
                             f"pass {name}.detach() (or a NumPy array)")
        weight = weight._data
    weight = np.asarray(weight)
    if weight.dtype.kind not in "fiu":
        raise TypeError(f"{where}: {name} must hold numbers, got dtype {weight.dtype}")
    return weight.astype(dtype, copy=False)


def _check_weight_shape(where, name, weight, shape):
    try:
        if np.broadcast_shapes(weight.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"{where}: {name} of shape {weight.shape} does not broadcast to the "
                         f"input's shape {tuple(shape)}") from None


_LOG_FLOOR = -100.0  # PyTorch clamps each log term of BCE at -100
_BCE_EPS = float(np.float32(1e-12))  # and divides by max(x (1 - x), 1e-12) in its gradient (a float32 constant there)


def binary_cross_entropy(input: TensorLike, target: TensorLike,
                         weight: Optional[TensorLike] = None, *,
                         reduction: str = "mean") -> Tensor:
    """``-w * (t log x + (1 - t) log(1 - x))`` for probabilities ``input`` in [0, 1],
    as ``torch.nn.functional.binary_cross_entropy``.

    Each log is clamped at -100 (so x = 0 or 1 gives a finite loss); the input
    gradient is ``w (x - t) / max(x (1 - x), 1e-12)``, as PyTorch.  ``weight``
    broadcasts to the input's shape; ``target`` must have the input's shape.
    Gradients reach ``target`` too when it requires them.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> round(F.binary_cross_entropy(mp.tensor([0.5, 0.9]), mp.tensor([1.0, 1.0])).item(), 4)
    0.3993
    """
    check_reduction(reduction, "binary_cross_entropy")
    input, target = _float_pair("binary_cross_entropy", input, target)
    x = input._data
    if x.size and not np.all((x >= 0) & (x <= 1)):
        raise ValueError("binary_cross_entropy: all elements of input must be probabilities in [0, 1] "
                         "(NaN is refused too); for logits use binary_cross_entropy_with_logits")
    t = target._data
    if t.size and not np.all((t >= 0) & (t <= 1)):
        raise ValueError("binary_cross_entropy: all elements of target must be in [0, 1] (NaN is "
                         "refused too), as PyTorch checks")
    w = _constant_weight("binary_cross_entropy", "weight", weight, input.dtype)
    if w is not None:
        _check_weight_shape("binary_cross_entropy", "weight", w, input.shape)

    def kernel(x, t, need_grad, need_target_grad):
        log_x = np.maximum(np.log(x), _LOG_FLOOR)
        log_1mx = np.maximum(np.log1p(-x), _LOG_FLOOR)
        loss = (t - 1) * log_1mx - t * log_x
        dx = dt = None
        if need_grad:
            denom = np.maximum((1 - x) * x, np.asarray(_BCE_EPS, x.dtype))
            dx = (x - t) / denom
            if need_target_grad:
                dt = np.log1p(-x) - np.log(x)  # unclamped, as PyTorch's target gradient
        if w is not None:
            loss = loss * w
            dx = None if dx is None else np.broadcast_to(dx * w, x.shape)
            dt = None if dt is None else np.broadcast_to(dt * w, x.shape)
        return loss, dx, dt

    return ElementwiseLossFn.apply(input, target, kernel, reduction)


def binary_cross_entropy_with_logits(input: TensorLike, target: TensorLike,
                                     weight: Optional[TensorLike] = None, *,
                                     reduction: str = "mean",
                                     pos_weight: Optional[TensorLike] = None) -> Tensor:
    """BCE of ``sigmoid(input)`` against ``target``, computed stably from the logits,
    as ``torch.nn.functional.binary_cross_entropy_with_logits``::

        loss = w * ((1 - t) x + (1 + (pos_weight - 1) t) * softplus(-x))

    ``weight`` broadcasts to the input's shape, ``pos_weight`` (weight of the
    positive term, one per class) broadcasts along the last dimension.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> round(F.binary_cross_entropy_with_logits(mp.tensor([0.0, 100.0]), mp.tensor([1.0, 0.0])).item(), 4)
    50.3466
    """
    where = "binary_cross_entropy_with_logits"
    check_reduction(reduction, where)
    input, target = _float_pair(where, input, target)
    w = _constant_weight(where, "weight", weight, input.dtype)
    if w is not None:
        _check_weight_shape(where, "weight", w, input.shape)
    pw = _constant_weight(where, "pos_weight", pos_weight, input.dtype)
    if pw is not None:
        _check_weight_shape(where, "pos_weight", pw, input.shape)

    def kernel(x, t, need_grad, need_target_grad):
        # softplus(-x) = max(-x, 0) + log1p(exp(-|x|)), finite for every finite x
        soft = np.maximum(-x, 0) + np.log1p(np.exp(-np.abs(x)))
        log_weight = 1 if pw is None else 1 + (pw - 1) * t
        loss = (1 - t) * x + log_weight * soft
        dx = dt = None
        if need_grad:
            e = np.exp(-np.abs(x))
            sig_neg = np.where(x >= 0, e / (1 + e), 1 / (1 + e))  # sigmoid(-x), stable
            dx = (1 - t) - log_weight * sig_neg
            if need_target_grad:
                dt = -x if pw is None else (pw - 1) * soft - x
        if w is not None:
            loss = loss * w
            dx = None if dx is None else dx * w
            dt = None if dt is None else dt * w
        shape = x.shape
        return (np.broadcast_to(loss, shape),
                None if dx is None else np.broadcast_to(dx, shape),
                None if dt is None else np.broadcast_to(dt, shape))

    return ElementwiseLossFn.apply(input, target, kernel, reduction)


def _sign_no_nan(d):
    # PyTorch's abs backward gives 0 (not NaN) at a NaN difference
    return np.where(np.isnan(d), np.zeros((), d.dtype), np.sign(d))


def l1_loss(input: TensorLike, target: TensorLike, *, reduction: str = "mean") -> Tensor:
    """Mean absolute error ``|input - target|`` reduced by ``reduction``.

    The gradient is sign(input - target): 0 where they are equal (and, as
    PyTorch, 0 where the difference is NaN).

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.l1_loss(mp.tensor([1.0, 2.0]), mp.tensor([0.0, 4.0])).item()
    1.5
    """
    check_reduction(reduction, "l1_loss")
    input, target = _float_pair("l1_loss", input, target)

    def kernel(x, t, need_grad, need_target_grad):
        d = x - t
        dx = _sign_no_nan(d) if need_grad else None
        return np.abs(d), dx, (None if dx is None else -dx)

    return ElementwiseLossFn.apply(input, target, kernel, reduction)


def _check_positive(where, name, value, allow_zero):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{where}: {name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def smooth_l1_loss(input: TensorLike, target: TensorLike, *, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (d = input - target);
    ``beta=0`` is the L1 loss, as ``torch.nn.functional.smooth_l1_loss``.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.smooth_l1_loss(mp.tensor([0.5, 3.0]), mp.tensor([0.0, 0.0]), reduction="none").numpy()
    array([0.125, 2.5  ], dtype=float32)
    """
    check_reduction(reduction, "smooth_l1_loss")
    beta = _check_positive("smooth_l1_loss", "beta", beta, allow_zero=True)
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    input, target = _float_pair("smooth_l1_loss", input, target)

    def kernel(x, t, need_grad, need_target_grad):
        d = x - t
        b = np.asarray(beta, x.dtype)
        a = np.abs(d)
        inside = a < b
        loss = np.where(inside, 0.5 * d * d / b, a - 0.5 * b)
        dx = None
        if need_grad:  # PyTorch: -1 below -beta, 1 above beta, d / beta between (NaN stays NaN)
            dx = np.where(d < -b, -1, np.where(d > b, 1, d / b)).astype(x.dtype, copy=False)
        return loss, dx, (None if dx is None else -dx)

    return ElementwiseLossFn.apply(input, target, kernel, reduction)


def huber_loss(input: TensorLike, target: TensorLike, reduction: str = "mean",
               delta: float = 1.0) -> Tensor:
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)`` (d = input - target),
    as ``torch.nn.functional.huber_loss`` (delta must be > 0).

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.huber_loss(mp.tensor([0.5, 3.0]), mp.tensor([0.0, 0.0]), reduction="none", delta=2.0).numpy()
    array([0.125, 4.   ], dtype=float32)
    """
    check_reduction(reduction, "huber_loss")
    delta = _check_positive("huber_loss", "delta", delta, allow_zero=False)
    input, target = _float_pair("huber_loss", input, target)

    def kernel(x, t, need_grad, need_target_grad):
        d = x - t
        k = np.asarray(delta, x.dtype)
        a = np.abs(d)
        loss = np.where(a < k, 0.5 * d * d, k * (a - 0.5 * k))
        dx = None
        if need_grad:
            dx = np.where(d < -k, -k, np.where(d > k, k, d)).astype(x.dtype, copy=False)
        return loss, dx, (None if dx is None else -dx)

    return ElementwiseLossFn.apply(input, target, kernel, reduction)


# -- Kullback-Leibler divergence -------------------------------------------------------
class KLDivFn(Function):
    """Pointwise ``target * (log(target) - input)`` (0 where target is 0, as ``xlogy``), or
    with ``log_target`` ``exp(target) * (target - input)``; ``input`` is log-probabilities."""

    @staticmethod
    def forward(ctx, x, t, *, log_target):
        if log_target:
            p = np.exp(t)
            loss = p * (t - x)
        else:
            p = t
            loss = np.where(t == 0, 0, t * np.log(np.where(t == 0, 1, t))) - t * x
        if ctx.requires_grad:
            ctx.log_target = log_target
            ctx.save_for_backward(x, t, p)
        return loss.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, t, p = ctx.saved_tensors
        grad_x = -grad * p if ctx.needs_input_grad[0] else None
        grad_t = None
        if ctx.needs_input_grad[1]:
            if ctx.log_target:  # d/dt exp(t) (t - x) = exp(t) (t - x + 1)
                grad_t = grad * p * (t - x + 1)
            else:  # d/dt (t log t - t x) = log t + 1 - x; NaN at t = 0, as PyTorch's xlogy
                grad_t = grad * np.where(t == 0, np.nan, np.log(t) + 1 - x)
        return grad_x, grad_t


def kl_div(input: TensorLike, target: TensorLike, *, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence of ``input`` (log-probabilities) from ``target``
    (probabilities, or log-probabilities with ``log_target=True``), as
    ``torch.nn.functional.kl_div``.

    ``reduction``: "mean" (over every element, PyTorch's default, which is not the
    mathematical KL divergence), "batchmean" (the sum divided by the batch size
    ``input.shape[0]``: the KL divergence per sample), "sum" or "none".

    >>> import numpy as np, minipool as mp, minipool.nn.functional as F
    >>> logq = mp.tensor(np.log([[0.5, 0.5]]))
    >>> round(F.kl_div(logq, mp.tensor([[0.25, 0.75]]), reduction="batchmean").item(), 4)
    0.1308
    """
    op = "kl_div"
    if reduction not in REDUCTIONS + ("batchmean",):
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS + ('batchmean',)}, "
                         f"got {reduction!r}")
    if not isinstance(log_target, (bool, np.bool_)):
        raise TypeError(f"{op}: log_target must be a bool, got {log_target!r}")
    input = as_tensor(input)
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: input must be float32 or float64, got {input.dtype}")
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    elif target.dtype != input.dtype:
        if target.requires_grad or target.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: target dtype {target.dtype} differs from input dtype {input.dtype}")
        target = Tensor(target._data.astype(input.dtype))
    if target.shape != input.shape:
        raise ValueError(f"{op}: target shape {target.shape} differs from input shape {input.shape}")
    loss = KLDivFn.apply(input, target, log_target=bool(log_target))
    if reduction == "none":
        return loss
    if reduction == "mean":
        return mean(loss)
    total = reduce_sum(loss)
    if reduction == "batchmean" and input.ndim:
        with np.errstate(invalid="ignore"):  # an empty batch: 0 / 0 = nan, as PyTorch
            return div(total, Tensor(np.asarray(input.shape[0], input.dtype)))
    return total
