"""The Embedding layer: a learnable (num_embeddings, embedding_dim) table, as ``torch.nn.Embedding``."""
from typing import Optional

import numpy as np

import minipool.nn.functional as F
from minipool._typing import DTypeLike, GeneratorLike
from minipool._validate import check_parameter_shape, single_int
from minipool.nn import init
from minipool.nn.module import Module, Parameter
from minipool._validate import float_dtype
from minipool.ops.embedding import padding_index
from minipool.tensor import Tensor, no_grad

__all__ = ["Embedding"]


class Embedding(Module):
    """``F.embedding(input, self.weight, ...)``: one row of ``weight`` per integer index.

    ``weight`` starts as N(0, 1) samples (PyTorch's init; ``generator`` makes them
    reproducible) with the ``padding_idx`` row zeroed; that row gets no gradient.
    ``_weight`` gives the table, ``_freeze`` stops its gradient (as PyTorch's
    private arguments; see :meth:`from_pretrained`).

    >>> import numpy as np, minipool as mp
    >>> emb = mp.nn.Embedding(10, 3, padding_idx=0, generator=np.random.default_rng(0))
    >>> emb
    Embedding(10, 3, padding_idx=0)
    >>> emb(mp.tensor([[0, 4, 4]])).shape, emb.weight.numpy()[0]
    ((1, 3, 3), array([0., 0., 0.], dtype=float32))
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None,
                 max_norm: Optional[float] = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False,
                 _weight: Optional[Tensor] = None, _freeze: bool = False,
                 device: Optional[str] = None, dtype: Optional[DTypeLike] = None, *,
                 generator: GeneratorLike = None) -> None:
        super().__init__()
        where = "Embedding"
        self.num_embeddings = single_int(num_embeddings, "num_embeddings", where)
        self.embedding_dim = single_int(embedding_dim, "embedding_dim", where)
        self.padding_idx = padding_index(padding_idx, self.num_embeddings, where)
        if sparse:
            raise ValueError(f"{where}: sparse=True is not supported (minipool has dense "
                             "gradients only); pass sparse=False")
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        shape = check_parameter_shape((self.num_embeddings, self.embedding_dim),
                                      "num_embeddings and embedding_dim", where)
        if _weight is None:
            self.weight = Parameter(np.empty(shape, float_dtype(dtype, device, where)),
                                    requires_grad=not _freeze)
            self.reset_parameters(generator)
        else:
            data = _weight._data if isinstance(_weight, Tensor) else np.asarray(_weight)
            if data.shape != shape:
                raise ValueError(f"{where}: _weight must have shape {shape} (num_embeddings, "
                                 f"embedding_dim), got {data.shape}")
            data = data.astype(float_dtype(dtype or data.dtype, device, where), copy=True)
            self.weight = Parameter(data, requires_grad=not _freeze)

    def reset_parameters(self, generator: GeneratorLike = None) -> None:
        init.normal_(self.weight, generator=generator)
        if self.padding_idx is not None:
            with no_grad():
                self.weight._data[self.padding_idx] = 0

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True,
                        padding_idx: Optional[int] = None, max_norm: Optional[float] = None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding holding a copy of the 2-d ``embeddings``; ``freeze`` (the default)
        keeps it out of training (``weight.requires_grad=False``)."""
        shape = getattr(embeddings, "shape", None)
        if shape is None or len(shape) != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-d, got shape {shape}")
        return cls(shape[0], shape[1], padding_idx, max_norm, norm_type, scale_grad_by_freq,
                   sparse, _weight=embeddings, _freeze=freeze)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s
