"""Distance layers: ``nn.CosineSimilarity`` and ``nn.PairwiseDistance`` over the
functional ops of the same names.

>>> import minipool as mp
>>> mp.nn.PairwiseDistance(eps=0.0)(mp.tensor([[0.0, 0.0]]), mp.tensor([[3.0, 4.0]])).tolist()
[5.0]
"""
import minipool.nn.functional as F
from minipool.nn.module import Module
from minipool.tensor import Tensor

__all__ = ["CosineSimilarity", "PairwiseDistance"]


class CosineSimilarity(Module):
    """``F.cosine_similarity(x1, x2, dim, eps)`` as a layer."""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """``F.pairwise_distance(x1, x2, p, eps, keepdim)`` as a layer."""

    def __init__(self, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> None:
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)
