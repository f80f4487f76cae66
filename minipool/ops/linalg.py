"""Matrix products (NumPy's BLAS, held to one thread while minipool calls it: see ``minipool._blas``)."""
import numpy as np

from minipool._blas import single_threaded
from minipool._typing import TensorLike
from minipool.ops.elementwise import as_tensor, unbroadcast
from minipool.tensor import Function, Tensor

__all__ = ["matmul"]


class MatMul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        with single_threaded():
            return np.matmul(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        # Treat 1-d operands as matrices so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = grad.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        with single_threaded():
            if ctx.needs_input_grad[0]:
                ga = g2 @ np.swapaxes(b2, -1, -2)
                ga = unbroadcast(ga, a2.shape).reshape(a.shape)
            if ctx.needs_input_grad[1]:
                gb = np.swapaxes(a2, -1, -2) @ g2
                gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """Matrix product with NumPy's broadcasting rules (``a @ b``).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.matmul(mp.ones(2, 3), mp.ones(3, 4)).shape
    (2, 4)
    """
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not line up "
                         f"(inner sizes {k_a} and {k_b} differ)")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {a.shape} and {b.shape} cannot be broadcast") from None
    return MatMul.apply(a, b)
