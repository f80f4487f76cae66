"""Loss layers: thin Modules over the losses of ``minipool.nn.functional``."""
from typing import Optional

import numpy as np

import minipool.nn.functional as F
from minipool._typing import TensorLike
from minipool.nn.module import Module
from minipool.tensor import Tensor

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCELoss", "BCEWithLogitsLoss", "L1Loss",
           "SmoothL1Loss", "HuberLoss", "KLDivLoss", "MarginRankingLoss", "HingeEmbeddingLoss",
           "CosineEmbeddingLoss", "TripletMarginLoss", "MultiMarginLoss"]


# The loss layers hold their arguments; the functional losses check them at every call
# (PyTorch's layers do not check them at construction either).
class _WeightedLoss(Module):
    def __init__(self, weight: TensorLike, reduction: str) -> None:
        super().__init__()
        self.reduction = reduction
        if weight is None:
            self.weight = None
        else:  # a buffer, as in PyTorch, so it travels with state_dict()
            self.register_buffer("weight", weight if isinstance(weight, Tensor) else np.asarray(weight))


class CrossEntropyLoss(_WeightedLoss):
    """``F.cross_entropy(input, target, ...)`` as a layer.

    >>> import minipool as mp
    >>> loss_fn = mp.nn.CrossEntropyLoss(label_smoothing=0.1)
    >>> loss_fn
    CrossEntropyLoss()
    >>> round(loss_fn(mp.tensor([[0.0, 0.0]]), mp.tensor([1])).item(), 4)
    0.6931
    """

    def __init__(self, weight: Optional[TensorLike] = None, *, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """``F.nll_loss(input, target, ...)`` as a layer (input: log-probabilities)."""

    def __init__(self, weight: Optional[TensorLike] = None, *, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(Module):
    """``F.mse_loss(input, target, reduction=...)`` as a layer."""

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """``F.binary_cross_entropy(input, target, weight, reduction)`` as a layer
    (input: probabilities in [0, 1]).

    >>> import minipool as mp
    >>> round(mp.nn.BCELoss()(mp.tensor([0.5]), mp.tensor([1.0])).item(), 4)
    0.6931
    """

    def __init__(self, weight: Optional[TensorLike] = None, *, reduction: str = "mean") -> None:
        super().__init__(weight, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """``F.binary_cross_entropy_with_logits(input, target, weight, reduction, pos_weight)``
    as a layer; ``weight`` and ``pos_weight`` are buffers, as in PyTorch."""

    def __init__(self, weight: Optional[TensorLike] = None, *, reduction: str = "mean",
                 pos_weight: Optional[TensorLike] = None) -> None:
        super().__init__(weight, reduction)
        if pos_weight is None:
            self.pos_weight = None
        else:
            self.register_buffer("pos_weight", pos_weight if isinstance(pos_weight, Tensor)
                                 else np.asarray(pos_weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class _ReducedLoss(Module):
    def __init__(self, reduction: str) -> None:
        super().__init__()
        self.reduction = reduction


class L1Loss(_ReducedLoss):
    """``F.l1_loss(input, target, reduction)`` as a layer."""

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_ReducedLoss):
    """``F.smooth_l1_loss(input, target, reduction, beta)`` as a layer."""

    def __init__(self, *, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_ReducedLoss):
    """``F.huber_loss(input, target, reduction, delta)`` as a layer."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(Module):
    """``F.kl_div(input, target, reduction=..., log_target=...)`` as a layer (input:
    log-probabilities; ``reduction="batchmean"`` gives the KL divergence per sample).

    >>> import numpy as np, minipool as mp
    >>> loss_fn = mp.nn.KLDivLoss(reduction="batchmean")
    >>> loss_fn(mp.tensor(np.log([[0.5, 0.5]])), mp.tensor([[0.5, 0.5]])).item()
    0.0
    """

    def __init__(self, *, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__()
        if reduction not in ("mean", "batchmean", "sum", "none"):
            raise ValueError(f"KLDivLoss: reduction must be one of ('mean', 'batchmean', 'sum', "
                             f"'none'), got {reduction!r}")
        self.reduction, self.log_target = reduction, log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class _MarginLoss(_ReducedLoss):
    def __init__(self, margin: float, size_average: None, reduce: None, reduction: str) -> None:
        super().__init__(reduction)
        if size_average is not None or reduce is not None:
            raise ValueError(f"{type(self).__name__}: size_average and reduce are PyTorch's "
                             "deprecated arguments; use reduction='mean', 'sum' or 'none'")
        self.margin = margin


class MarginRankingLoss(_MarginLoss):
    """``F.margin_ranking_loss(input1, input2, target, margin)`` as a layer.

    >>> import minipool as mp
    >>> mp.nn.MarginRankingLoss(0.5)(mp.tensor([1.0]), mp.tensor([1.0]), mp.tensor([1.0])).item()
    0.5
    """

    def __init__(self, margin: float = 0.0, size_average: None = None, reduce: None = None,
                 reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return F.margin_ranking_loss(input1, input2, target, self.margin, reduction=self.reduction)


class HingeEmbeddingLoss(_MarginLoss):
    """``F.hinge_embedding_loss(input, target, margin)`` as a layer.

    >>> import minipool as mp
    >>> mp.nn.HingeEmbeddingLoss()(mp.tensor([0.25]), mp.tensor([-1.0])).item()
    0.75
    """

    def __init__(self, margin: float = 1.0, size_average: None = None, reduce: None = None,
                 reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.hinge_embedding_loss(input, target, self.margin, reduction=self.reduction)


class CosineEmbeddingLoss(_MarginLoss):
    """``F.cosine_embedding_loss(input1, input2, target, margin)`` as a layer.

    >>> import minipool as mp
    >>> mp.nn.CosineEmbeddingLoss()(mp.tensor([[1.0, 0.0]]), mp.tensor([[2.0, 0.0]]), mp.tensor([1.0])).item()
    0.0
    """

    def __init__(self, margin: float = 0.0, size_average: None = None, reduce: None = None,
                 reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)

    def forward(self, input1: Tensor, input2: Tensor, target: Tensor) -> Tensor:
        return F.cosine_embedding_loss(input1, input2, target, self.margin, reduction=self.reduction)


class TripletMarginLoss(_MarginLoss):
    """``F.triplet_margin_loss(anchor, positive, negative, margin, p, eps, swap)`` as a layer.

    >>> import minipool as mp
    >>> x = mp.tensor([[0.0, 0.0]])
    >>> mp.nn.TripletMarginLoss(margin=1.0, eps=0.0)(x, x, x).item()
    1.0
    """

    def __init__(self, margin: float = 1.0, p: float = 2.0, eps: float = 1e-6, swap: bool = False,
                 size_average: None = None, reduce: None = None, reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)
        self.p, self.eps, self.swap = p, eps, swap

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return F.triplet_margin_loss(anchor, positive, negative, self.margin, self.p, self.eps,
                                     self.swap, reduction=self.reduction)


class MultiMarginLoss(_MarginLoss):
    """``F.multi_margin_loss(input, target, p, margin, weight)`` as a layer (``weight`` a buffer).

    >>> import minipool as mp
    >>> mp.nn.MultiMarginLoss()(mp.tensor([[0.0, 2.0]]), mp.tensor([1])).item()
    0.0
    """

    def __init__(self, p: int = 1, margin: float = 1.0, weight: Optional[TensorLike] = None,
                 size_average: None = None, reduce: None = None, reduction: str = "mean") -> None:
        super().__init__(margin, size_average, reduce, reduction)
        self.p = p
        if weight is None:
            self.weight = None
        else:
            self.register_buffer("weight", weight if isinstance(weight, Tensor) else np.asarray(weight))

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.multi_margin_loss(input, target, self.p, self.margin, self.weight,
                                   reduction=self.reduction)
