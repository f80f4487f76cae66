"""``embedding``: rows of a weight table picked by integer indices, as
``torch.nn.functional.embedding``.

The backward scatters the output gradient back into a dense (num_embeddings,
dim) gradient, adding the rows of repeated indices (``np.add.at``), and leaves
the ``padding_idx`` row at zero.  ``max_norm`` rescales, in place and outside
autograd, each looked-up row whose ``norm_type``-norm exceeds it (PyTorch's
``embedding_renorm_``).
"""
import math
import numbers
from typing import Optional

import numpy as np

from minipool._typing import TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["embedding", "padding_index"]


class EmbeddingFn(Function):
    """The differentiable op behind ``embedding`` (differentiable in ``weight`` only)."""

    @staticmethod
    def forward(ctx, weight, indices, *, padding_idx, scale_grad_by_freq):
        if ctx.requires_grad:
            ctx.indices, ctx.num_embeddings = indices, weight.shape[0]
            ctx.padding_idx, ctx.scale_grad_by_freq = padding_idx, scale_grad_by_freq
        return weight[indices]

    @staticmethod
    def backward(ctx, grad):
        indices = ctx.indices.reshape(-1)
        rows = grad.reshape(indices.size, grad.shape[-1])
        if ctx.scale_grad_by_freq:  # each row's gradient divided by its index's count in the batch
            counts = np.bincount(indices, minlength=ctx.num_embeddings)
            rows = rows / counts[indices, None].astype(rows.dtype)
        grad_w = np.zeros((ctx.num_embeddings, grad.shape[-1]), dtype=grad.dtype)
        np.add.at(grad_w, indices, rows)  # repeated indices add up
        if ctx.padding_idx is not None:
            grad_w[ctx.padding_idx] = 0
        return grad_w, None


def padding_index(padding_idx, num_embeddings, where):
    """``padding_idx`` in [-num_embeddings, num_embeddings) as a non-negative int, or None."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"{where}: padding_idx must be an int or None, got {padding_idx!r}")
    if not -num_embeddings <= padding_idx < num_embeddings:
        raise ValueError(f"{where}: padding_idx must be within [-{num_embeddings}, "
                         f"{num_embeddings}) (num_embeddings), got {padding_idx}")
    return int(padding_idx) % num_embeddings


def _renorm_rows(table, indices, max_norm, norm_type):
    """Scale the looked-up rows of ``table`` in place to a ``norm_type``-norm of at most
    ``max_norm`` (PyTorch's factor ``max_norm / (norm + 1e-7)``)."""
    rows = np.unique(indices)
    a = np.abs(table[rows].astype(np.float64))
    if norm_type == math.inf:
        norms = a.max(axis=1, initial=0)
    else:
        norms = np.power(np.power(a, norm_type).sum(axis=1), 1.0 / norm_type)
    too_long = norms > max_norm
    scale = max_norm / (norms[too_long] + 1e-7)
    table[rows[too_long]] = (table[rows[too_long]] * scale[:, None]).astype(table.dtype)


def embedding(input: TensorLike, weight: TensorLike, padding_idx: Optional[int] = None,
              max_norm: Optional[float] = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """``weight[input]``: one row of the (num_embeddings, dim) table per integer index, as
    ``torch.nn.functional.embedding``; the output is ``input.shape + (dim,)``.

    The ``padding_idx`` row gets no gradient; ``scale_grad_by_freq`` divides each
    row's gradient by how often its index occurs in ``input``; ``max_norm`` rescales
    the looked-up rows of ``weight`` in place first.  Gradients are dense
    (``sparse=True`` is refused).

    >>> import numpy as np, minipool as mp, minipool.nn.functional as F
    >>> table = mp.tensor(np.arange(6.0).reshape(3, 2))
    >>> F.embedding(mp.tensor([[2, 0], [2, 2]]), table).numpy()
    array([[[4., 5.],
            [0., 1.]],
    <BLANKLINE>
           [[4., 5.],
            [4., 5.]]])
    """
    op = "embedding"
    if isinstance(input, Tensor):
        indices = input._data
    else:
        indices = np.asarray(input)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{op}: input must hold integer indices, got dtype {indices.dtype}")
    weight = as_tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"{op}: weight must be 2-d (num_embeddings, embedding_dim), "
                         f"got shape {weight.shape}")
    if weight.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: weight must be float32 or float64, got {weight.dtype}")
    num_embeddings = weight.shape[0]
    if indices.size and (indices.min() < 0 or indices.max() >= num_embeddings):
        bad = indices.min() if indices.min() < 0 else indices.max()
        raise IndexError(f"{op}: input holds index {int(bad)}, out of range for a weight of "
                         f"{num_embeddings} rows (num_embeddings)")
    padding_idx = padding_index(padding_idx, num_embeddings, op)
    if sparse:
        raise ValueError(f"{op}: sparse=True is not supported (minipool has dense gradients "
                         "only); pass sparse=False")
    if not isinstance(scale_grad_by_freq, (bool, np.bool_)):
        raise TypeError(f"{op}: scale_grad_by_freq must be a bool, got {scale_grad_by_freq!r}")
    if max_norm is not None:
        if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or not max_norm >= 0:
            raise ValueError(f"{op}: max_norm must be a number >= 0 or None, got {max_norm!r}")
        if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or not norm_type > 0:
            raise ValueError(f"{op}: norm_type must be a number > 0, got {norm_type!r}")
        if indices.size:
            _renorm_rows(weight._data, indices, float(max_norm), float(norm_type))
    indices = indices.astype(np.intp, copy=False)
    return EmbeddingFn.apply(weight, indices, padding_idx=padding_idx,
                             scale_grad_by_freq=bool(scale_grad_by_freq))
