"""Ops of the fully connected layers: ``linear`` (x @ W.T + b) and inverted ``dropout``."""
from typing import Optional

import numpy as np

from minipool import _random
from minipool._typing import GeneratorLike, TensorLike
from minipool.ops._gemm import as_rows, product
from minipool.ops.elementwise import as_tensor
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["linear", "dropout"]


class LinearFn(Function):
    """y = x @ W.T + b in one node: one GEMM forward, two backward, bias added in place.

    The GEMMs run on minipool's threads (``minipool.ops._gemm.product``), in blocks:
    float32 on minipool's register tiles where the CPU has AVX-512, otherwise OpenBLAS
    held to one thread inside each block (its own threads spinning beside minipool's
    OpenMP team made a plain training loop 6x slower)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        x2 = as_rows(x)
        out = product(x2, weight, trans_b=True)
        if bias is not None:
            out += bias
        if ctx.requires_grad:
            ctx.save_for_backward(x2, weight)
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, grad):
        x2, weight = ctx.saved_tensors
        grad2d = as_rows(grad)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = product(grad2d, weight).reshape(grad.shape[:-1] + (weight.shape[1],))
        if ctx.needs_input_grad[1]:
            grad_w = product(grad2d, x2, trans_a=True)
        if ctx.needs_input_grad[2]:
            grad_b = grad2d.sum(axis=0)
        return grad_x, grad_w, grad_b


def linear(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None) -> Tensor:
    """``input @ weight.T + bias`` over the last axis, as ``torch.nn.functional.linear``.

    ``input`` is (..., in_features), ``weight`` (out_features, in_features),
    ``bias`` (out_features,) or None.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> x = mp.tensor([[1.0, 2.0]])
    >>> w = mp.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    >>> F.linear(x, w, mp.tensor([0.5, 0.5, 0.5])).numpy()
    array([[ 1.5,  3.5, -1.5]], dtype=float32)
    """
    input, weight = as_tensor(input), as_tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be (out_features, in_features), got shape {weight.shape}")
    if input.ndim == 0:
        raise ValueError("linear: input must have at least 1 dimension (..., in_features)")
    if input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {input.shape[-1]} features in its last dimension "
                         f"(shape {input.shape}) but weight expects in_features={weight.shape[1]}")
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"linear: input must be float32 or float64, got {input.dtype}")
    if weight.dtype != input.dtype:
        raise TypeError(f"linear: weight dtype {weight.dtype} differs from input dtype {input.dtype}")
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {bias.shape}")
        if bias.dtype != input.dtype:
            raise TypeError(f"linear: bias dtype {bias.dtype} differs from input dtype {input.dtype}")
    return LinearFn.apply(input, weight, bias)


def inverted_dropout_mask(shape, p, generator, dtype):
    """One draw per element of ``shape``: kept with probability 1 - p and scaled by
    1 / (1 - p), so the expected output equals the input (inverted dropout); 0 where dropped."""
    draw = generator.random(shape, dtype=dtype)
    scale = np.asarray(0.0 if p == 1 else 1.0 / (1.0 - p), dtype=dtype)
    return (draw >= p) * scale


class DropoutFn(Function):
    """Dropout of each element; the gradient passes through the same mask."""

    @staticmethod
    def forward(ctx, x, p, generator):
        ctx.mask = inverted_dropout_mask(x.shape, p, generator, x.dtype)
        return x * ctx.mask

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.mask, None, None


def dropout(input: TensorLike, p: float = 0.5, training: bool = True, inplace: bool = False,
            generator: GeneratorLike = None) -> Tensor:
    """Zero each element with probability ``p`` while ``training``, scaling the rest by 1/(1-p).

    ``generator`` (a ``np.random.Generator``) makes the mask reproducible; without
    one the shared default from ``minipool._random`` is used.  With
    ``training=False`` or ``p=0`` the input is returned unchanged.  ``inplace=True``
    writes the result over ``input`` and returns it, as PyTorch's.

    >>> import numpy as np, minipool as mp
    >>> import minipool.nn.functional as F
    >>> y = F.dropout(mp.ones(8), p=0.5, generator=np.random.default_rng(0))
    >>> sorted(set(y.numpy().tolist()))
    [0.0, 2.0]
    """
    input = as_tensor(input)
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    generator = _random.resolve(generator, "dropout")
    if not training or p == 0:
        return input
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"dropout: input must be float32 or float64, got {input.dtype}")
    if inplace:
        from minipool.ops.activations import write_over  # it imports this module
        return write_over(input, "dropout", lambda x: DropoutFn.apply(x, float(p), generator))
    return DropoutFn.apply(input, float(p), generator)
