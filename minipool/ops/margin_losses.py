"""Distances and the margin losses of metric learning, as PyTorch composes them.

cdist and the five margin/embedding losses are compositions of differentiable ops (the
p-norm, clamp, where), written in PyTorch's order so the kinks get PyTorch's gradients:
``clamp(min=0)`` passes the gradient at 0 (margin_ranking, hinge_embedding,
cosine_embedding, triplet), multi_margin's hinge does not (its kernel tests ``z > 0``, so a
NaN score adds nothing there, as in PyTorch).
"""
import math
import numbers
from typing import Optional

import numpy as np

from minipool._typing import TensorLike
from minipool.ops.elementwise import clip, sqrt, tensor_argument, where
from minipool.ops.loss import check_reduction
from minipool.ops.normalization import vector_norm
from minipool.ops.reduce import mean as reduce_mean, minimum, sum as reduce_sum
from minipool.ops.shape import squeeze, unsqueeze
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["cdist", "margin_ranking_loss", "hinge_embedding_loss", "cosine_embedding_loss",
           "triplet_margin_loss", "multi_margin_loss"]


def _floats(op, **tensors):
    out = []
    for name, value in tensors.items():
        t = tensor_argument(op, name, value)
        if t.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: {name} must be float32 or float64, got {t.dtype}")
        out.append(t)
    if len({t.dtype for t in out}) > 1:
        raise TypeError(f"{op}: " + ", ".join(f"{n} is {t.dtype}" for n, t in zip(tensors, out))
                        + "; give them one float dtype")
    return out


def _real(op, name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "mean" and loss.numel() == 0:  # NaN, as PyTorch, without NumPy's warning
        return reduce_sum(loss) * math.nan
    return reduce_sum(loss) if reduction == "sum" else reduce_mean(loss)


def _broadcast(op, **tensors):
    try:
        return np.broadcast_shapes(*(t.shape for t in tensors.values()))
    except ValueError:
        shapes = ", ".join(f"{n} {t.shape}" for n, t in tensors.items())
        raise ValueError(f"{op}: the shapes {shapes} cannot be broadcast together") from None


class CountNonzeroFn(Function):
    """The count of non-zero differences along the last axis (cdist's p=0): a step function,
    whose gradient is 0 everywhere (PyTorch's too)."""

    @staticmethod
    def forward(ctx, diff):
        ctx.shape = diff.shape
        return np.count_nonzero(diff, axis=-1).astype(diff.dtype)

    @staticmethod
    def backward(ctx, grad):
        return np.zeros(ctx.shape, grad.dtype)


def cdist(x1: TensorLike, x2: TensorLike, p: float = 2.0, compute_mode: Optional[str] = None) -> Tensor:
    """The ``p``-norm distance between every row of ``x1`` (..., P, M) and every row of ``x2``
    (..., R, M): a (..., P, R) tensor, batch dims broadcast, as ``torch.cdist``.  ``p=0``
    counts the differing entries (a zero gradient), ``p=math.inf`` is the largest difference.
    Computed from the differences (PyTorch's exact mode; its default switches to a matrix
    product for p=2 beyond 25 rows, which rounds differently).

    >>> import minipool as mp
    >>> mp.cdist(mp.tensor([[0.0, 0.0]]), mp.tensor([[3.0, 4.0], [1.0, 0.0]])).tolist()
    [[5.0, 1.0]]
    """
    op = "cdist"
    a, b = _floats(op, x1=x1, x2=x2)
    if a.ndim < 2 or b.ndim < 2:
        raise RuntimeError(f"{op}: x1 and x2 must have at least 2 dims (rows, columns), got "
                           f"shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-1]:
        raise RuntimeError(f"{op}: x1 and x2 must have the same number of columns, got "
                           f"{a.shape[-1]} and {b.shape[-1]}")
    p = _real(op, "p", p)
    if p < 0:
        raise RuntimeError(f"{op}: p must be >= 0 (or math.inf), got {p}")
    if compute_mode not in (None, "use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                            "donot_use_mm_for_euclid_dist"):
        raise ValueError(f"{op}: {compute_mode!r} is not a valid compute_mode")
    diff = unsqueeze(a, -2) - unsqueeze(b, -3)  # (..., P, R, M)
    if p == 0:
        return CountNonzeroFn.apply(diff)
    if diff.shape[-1] == 0:  # no columns: every distance is 0
        return Tensor(np.zeros(diff.shape[:-1], a.dtype))
    return squeeze(vector_norm(diff, p, -1, op), -1)


def margin_ranking_loss(input1: TensorLike, input2: TensorLike, target: TensorLike,
                        margin: float = 0.0, size_average: None = None, reduce: None = None,
                        reduction: str = "mean") -> Tensor:
    """``max(0, -target * (input1 - input2) + margin)``: target 1 asks input1 to rank higher,
    -1 lower, as ``F.margin_ranking_loss``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.margin_ranking_loss(mp.tensor([1.0, 0.0]), mp.tensor([0.0, 1.0]), mp.tensor([1.0, 1.0])).item()
    0.5
    """
    op = "margin_ranking_loss"
    _legacy(op, size_average, reduce)
    check_reduction(reduction, op)
    x1, x2, y = _floats(op, input1=input1, input2=input2, target=target)
    if not x1.ndim == x2.ndim == y.ndim:
        raise RuntimeError(f"{op}: input1, input2 and target must have the same number of dims, "
                           f"got shapes {x1.shape}, {x2.shape}, {y.shape}")
    _broadcast(op, input1=x1, input2=x2, target=y)
    return _reduce(clip(-y * (x1 - x2) + _real(op, "margin", margin), 0.0), reduction)


def hinge_embedding_loss(input: TensorLike, target: TensorLike, margin: float = 1.0,
                         size_average: None = None, reduce: None = None,
                         reduction: str = "mean") -> Tensor:
    """``input`` where target is 1, ``max(0, margin - input)`` where it is -1 (a value of
    ``input`` is usually a distance), as ``F.hinge_embedding_loss``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> round(F.hinge_embedding_loss(mp.tensor([0.3, 0.4]), mp.tensor([1.0, -1.0]), reduction="sum").item(), 4)
    0.9
    """
    op = "hinge_embedding_loss"
    _legacy(op, size_average, reduce)
    check_reduction(reduction, op)
    x, y = _floats(op, input=input, target=target)
    _broadcast(op, input=x, target=y)
    zero = Tensor(np.zeros((), x.dtype))
    margin_part = where(y != 1, clip(_real(op, "margin", margin) - x, 0.0), zero)
    self_part = where(y != -1, x, zero)  # (a target neither 1 nor -1 gets both, as in PyTorch)
    return _reduce(margin_part + self_part, reduction)


def cosine_embedding_loss(input1: TensorLike, input2: TensorLike, target: TensorLike,
                          margin: float = 0.0, size_average: None = None, reduce: None = None,
                          reduction: str = "mean") -> Tensor:
    """``1 - cos(input1, input2)`` where target is 1, ``max(0, cos - margin)`` where it is -1,
    over rows of (N, D) inputs or one pair of (D,) vectors, as ``F.cosine_embedding_loss``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.cosine_embedding_loss(mp.tensor([[1.0, 0.0]]), mp.tensor([[0.0, 1.0]]), mp.tensor([1.0])).item()
    1.0
    """
    op = "cosine_embedding_loss"
    _legacy(op, size_average, reduce)
    check_reduction(reduction, op)
    a, b = _floats(op, input1=input1, input2=input2)
    y = tensor_argument(op, "target", target)
    if a.ndim not in (1, 2) or a.shape != b.shape:
        raise RuntimeError(f"{op}: input1 and input2 must have one shape, (N, D) or (D,), got "
                           f"{a.shape} and {b.shape}")
    if y.ndim != a.ndim - 1 or (y.ndim == 1 and y.shape[0] != a.shape[0]):
        raise RuntimeError(f"{op}: target must have shape {a.shape[:-1]} for inputs of shape "
                           f"{a.shape}, got {y.shape}")
    dim = a.ndim - 1
    tiny = 1e-12  # PyTorch's EPSILON, so zero vectors give cos 0 rather than NaN
    dot = reduce_sum(a * b, dim)
    denominator = sqrt((reduce_sum(a * a, dim) + tiny) * (reduce_sum(b * b, dim) + tiny))
    cos = dot / denominator
    zero = Tensor(np.zeros((), a.dtype))
    positive = where(y == 1, 1.0 - cos, zero)
    negative = where(y == -1, clip(cos - _real(op, "margin", margin), 0.0), zero)
    return _reduce(positive + negative, reduction)


def _pairwise_distance(x1, x2, p, eps, op):
    # PyTorch's pairwise_distance: ||x1 - x2 + eps||_p over the last dim
    return squeeze(vector_norm(x1 - x2 + eps, p, -1, op), -1)


def triplet_margin_loss(anchor: TensorLike, positive: TensorLike, negative: TensorLike,
                        margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                        size_average: None = None, reduce: None = None,
                        reduction: str = "mean") -> Tensor:
    """``max(d(anchor, positive) - d(anchor, negative) + margin, 0)`` with d PyTorch's
    ``pairwise_distance`` (``||a - b + eps||_p``); ``swap`` uses the smaller of d(anchor,
    negative) and d(positive, negative), as ``F.triplet_margin_loss``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> a, pos, neg = mp.tensor([[0.0, 0.0]]), mp.tensor([[0.0, 1.0]]), mp.tensor([[3.0, 0.0]])
    >>> round(F.triplet_margin_loss(a, pos, neg, eps=0.0).item(), 4)
    0.0
    """
    op = "triplet_margin_loss"
    _legacy(op, size_average, reduce)
    check_reduction(reduction, op)
    a, pos, neg = _floats(op, anchor=anchor, positive=positive, negative=negative)
    if not a.ndim == pos.ndim == neg.ndim or a.ndim not in (1, 2):
        raise RuntimeError(f"{op}: anchor, positive and negative must all be (N, D) or (D,), got "
                           f"shapes {a.shape}, {pos.shape}, {neg.shape}")
    _broadcast(op, anchor=a, positive=pos, negative=neg)
    p = _real(op, "p", p)
    if not p > 0:
        raise ValueError(f"{op}: p must be > 0, got {p}")
    eps = _real(op, "eps", eps)
    if not isinstance(swap, (bool, np.bool_)):
        raise TypeError(f"{op}: swap must be a bool, got {swap!r}")
    d_pos = _pairwise_distance(a, pos, p, eps, op)
    d_neg = _pairwise_distance(a, neg, p, eps, op)
    if swap:
        d_neg = minimum(d_neg, _pairwise_distance(pos, neg, p, eps, op))
    return _reduce(clip(_real(op, "margin", margin) + d_pos - d_neg, 0.0), reduction)


def multi_margin_loss(input: TensorLike, target: TensorLike, p: int = 1, margin: float = 1.0,
                      weight: Optional[TensorLike] = None, size_average: None = None,
                      reduce: None = None, reduction: str = "mean") -> Tensor:
    """The multi-class hinge loss of (N, C) scores (or one (C,) row) and int64 class targets:
    ``sum over i != y of weight[y] * max(0, margin - x[y] + x[i]) ** p / C``, p 1 or 2, as
    ``F.multi_margin_loss``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> round(F.multi_margin_loss(mp.tensor([[0.1, 0.2, 0.4, 0.8]]), mp.tensor([3])).item(), 4)
    0.325
    """
    op = "multi_margin_loss"
    _legacy(op, size_average, reduce)
    check_reduction(reduction, op)
    (x,) = _floats(op, input=input)
    y = tensor_argument(op, "target", target)
    if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p not in (1, 2):
        raise ValueError(f"{op}: p must be 1 or 2, got {p!r}")
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[1] == 0) or x.shape[-1:] == (0,):
        raise RuntimeError(f"{op}: input must be (N, C) or (C,) with C > 0, got shape {x.shape}")
    if y.dtype.kind not in "iu":
        raise RuntimeError(f"{op}: target must hold int64 class indices, got dtype {y.dtype}")
    rows = x if x.ndim == 2 else unsqueeze(x, 0)
    n, c = rows.shape
    labels = y.numpy().reshape(-1).astype(np.int64)
    if labels.shape != (n,) or y.ndim != x.ndim - 1:
        raise RuntimeError(f"{op}: target must have shape {x.shape[:-1]} for input of shape "
                           f"{x.shape}, got {y.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        raise IndexError(f"{op}: target values must be class indices in [0, {c - 1}], got "
                         f"{labels.min()}..{labels.max()}")
    others = np.ones((n, c), dtype=bool)
    others[np.arange(n), labels] = False  # the target's own term is left out
    chosen = rows[Tensor(np.arange(n)), Tensor(labels)]
    z = _real(op, "margin", margin) - unsqueeze(chosen, 1) + rows
    zero = Tensor(np.zeros((), rows.dtype))
    # PyTorch's kernel adds a term only where z > 0 and skips the target's own: a select, not a
    # product, so an inf or NaN there adds nothing (NaN > 0 is false) and gets no gradient
    hinge = where(Tensor(others & (z.numpy() > 0)), z, zero)
    terms = hinge * hinge if p == 2 else hinge
    if weight is not None:
        (w,) = _floats(op, weight=weight)
        if w.dtype != x.dtype:
            raise TypeError(f"{op}: weight dtype {w.dtype} must equal the input's {x.dtype}")
        if w.shape != (c,):
            raise RuntimeError(f"{op}: weight must have shape ({c},) (one per class), got {w.shape}")
        if w.requires_grad:  # PyTorch refuses it too, when called
            raise RuntimeError(f"{op}: is not differentiable with respect to weight; pass "
                               "weight.detach() (it must not require grad)")
        terms = terms * unsqueeze(w[Tensor(labels)], 1)
    loss = reduce_sum(terms, 1) / c
    if x.ndim == 1:
        loss = squeeze(loss, 0)
    return _reduce(loss, reduction)


def _legacy(op, size_average, reduce):
    if size_average is not None or reduce is not None:
        raise ValueError(f"{op}: size_average and reduce are PyTorch's deprecated arguments; "
                         "use reduction='mean', 'sum' or 'none'")
