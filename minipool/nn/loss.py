"""Loss layers: thin Modules over ``F.cross_entropy``, ``F.nll_loss`` and ``F.mse_loss``."""
import numpy as np

import minipool.nn.functional as F
from minipool.nn.module import Module
from minipool.ops.loss import check_reduction
from minipool.tensor import Tensor

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss"]


class _WeightedLoss(Module):
    def __init__(self, weight, reduction):
        super().__init__()
        check_reduction(reduction, type(self).__name__)
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

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """``F.nll_loss(input, target, ...)`` as a layer (input: log-probabilities)."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(Module):
    """``F.mse_loss(input, target, reduction=...)`` as a layer."""

    def __init__(self, *, reduction="mean"):
        super().__init__()
        check_reduction(reduction, "MSELoss")
        self.reduction = reduction

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)
