"""More pointwise ops PyTorch users call as methods: ``trunc``, ``frac``, the fused
``addcmul``/``addcdiv`` (optimiser-style updates) and ``lerp`` (moving averages).  The in-place
forms (``addcmul_`` ...) are in ``minipool.ops.inplace``.
"""
from typing import Union

import numpy as np

from minipool._promotion import result_type
from minipool._typing import TensorLike
from minipool._validate import is_real
from minipool.ops import elementwise as ew
from minipool.tensor import Function, Tensor

__all__ = ["trunc", "frac", "addcmul", "addcdiv", "lerp"]


class Trunc(ew._Step):
    f = staticmethod(np.trunc)


class Frac(Function):
    """``x - trunc(x)`` (PyTorch's formula, so +-inf gives NaN); the gradient passes through."""

    @staticmethod
    def forward(ctx, x):
        return x - np.trunc(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def trunc(x: TensorLike) -> Tensor:
    """Elementwise rounding towards zero (integers unchanged); gradient 0, as in PyTorch.

    >>> import minipool as mp
    >>> mp.trunc(mp.tensor([-1.7, 1.7])).numpy()
    array([-1.,  1.], dtype=float32)
    """
    return ew._rounding("trunc", Trunc, x)


def frac(x: TensorLike) -> Tensor:
    """Elementwise fractional part ``x - trunc(x)`` (keeps x's sign); the gradient is 1.

    >>> import minipool as mp
    >>> mp.frac(mp.tensor([-1.25, 2.5])).numpy()
    array([-0.25,  0.5 ], dtype=float32)
    """
    x = ew.as_tensor(x)
    if x.dtype.kind != "f":
        raise NotImplementedError(f"frac: not implemented for {x.dtype} tensors (as in PyTorch); "
                           "an integer has no fractional part -- cast first, e.g. x.float()")
    return Frac.apply(x)


def _fused_operands(name, input, tensor1, tensor2, value):
    if not is_real(value):
        raise TypeError(f"{name}: value must be a real number, got {value!r}")
    if isinstance(value, np.generic):
        value = value.item()
    operands = [ew.tensor_argument(name, label, t) for label, t in
                (("input", input), ("tensor1", tensor1), ("tensor2", tensor2))]
    try:
        np.broadcast_shapes(*(t.shape for t in operands))
    except ValueError:
        raise ValueError(f"{name}: shapes {', '.join(str(t.shape) for t in operands)} cannot be "
                         "broadcast together") from None
    return operands, value


def addcmul(input: TensorLike, tensor1: TensorLike, tensor2: TensorLike, *,
            value: Union[int, float] = 1) -> Tensor:
    """``input + value * tensor1 * tensor2`` (broadcast; the product taken in that order, as in
    PyTorch); differentiable in all three tensors.

    >>> import minipool as mp
    >>> mp.addcmul(mp.tensor([1.0, 1.0]), mp.tensor([2.0, 3.0]), mp.tensor([4.0, 5.0]), value=0.5).numpy()
    array([5. , 8.5], dtype=float32)
    """
    (x, t1, t2), value = _fused_operands("addcmul", input, tensor1, tensor2, value)
    if result_type(x, t1, t2) == np.bool_:
        raise NotImplementedError("addcmul: not implemented for bool tensors (as in PyTorch); "
                                  "cast first, e.g. x.long()")
    if all(t.dtype.kind != "f" for t in (x, t1, t2)):
        value = int(value)  # PyTorch casts value to the integer dtype (0.5 -> 0)
    return ew.add(x, ew.mul(ew.mul(t1, value) if value != 1 else t1, t2))


def addcdiv(input: TensorLike, tensor1: TensorLike, tensor2: TensorLike, *,
            value: Union[int, float] = 1) -> Tensor:
    """``input + value * tensor1 / tensor2`` (broadcast, true division; integer tensors are
    refused, as in PyTorch); differentiable in all three tensors.

    >>> import minipool as mp
    >>> mp.addcdiv(mp.tensor([1.0, 1.0]), mp.tensor([2.0, 3.0]), mp.tensor([4.0, 6.0]), value=2).numpy()
    array([2., 2.], dtype=float32)
    """
    (x, t1, t2), value = _fused_operands("addcdiv", input, tensor1, tensor2, value)
    if t1.dtype.kind != "f" and t2.dtype.kind != "f":
        raise RuntimeError("addcdiv: integer division with addcdiv is not supported (as in "
                           "PyTorch); cast tensor1 or tensor2 to a float dtype first, or use "
                           "input + value * (tensor1 // tensor2)")
    with np.errstate(divide="ignore", invalid="ignore"):
        return ew.add(x, ew.div(ew.mul(t1, value) if value != 1 else t1, t2))


class Lerp(Function):
    """PyTorch's two-sided formula (exact at both ends): ``x + w * (end - x)`` where
    ``|w| < 0.5``, else ``end - (end - x) * (1 - w)``."""

    @staticmethod
    def forward(ctx, x, end, weight):
        diff = end - x
        out = np.where(np.abs(weight) < 0.5, x + weight * diff, end - diff * (1 - weight))
        ctx.save_for_backward(diff, weight)
        ctx.shapes = (x.shape, end.shape, np.shape(weight))
        return out.astype(np.result_type(x, end), copy=False)

    @staticmethod
    def backward(ctx, grad):
        diff, weight = ctx.saved_tensors
        x_shape, end_shape, w_shape = ctx.shapes
        gx = ew.unbroadcast(grad * (1 - weight), x_shape) if ctx.needs_input_grad[0] else None
        gend = ew.unbroadcast(grad * weight, end_shape) if ctx.needs_input_grad[1] else None
        gw = ew.unbroadcast(grad * diff, w_shape) if ctx.needs_input_grad[2] else None
        return gx, gend, gw


def lerp(input: TensorLike, end: TensorLike, weight: Union[float, TensorLike]) -> Tensor:
    """Linear interpolation ``input + weight * (end - input)`` (a number or a tensor weight,
    broadcast); float tensors of one dtype, as PyTorch requires.  Differentiable in all three.

    >>> import minipool as mp
    >>> mp.lerp(mp.tensor([0.0, 10.0]), mp.tensor([10.0, 20.0]), 0.25).numpy()
    array([ 2.5, 12.5], dtype=float32)
    """
    x = ew.tensor_argument("lerp", "input", input)
    end = ew.tensor_argument("lerp", "end", end)
    if isinstance(weight, Tensor):
        tensors = (("input", x), ("end", end), ("weight", weight))
    elif is_real(weight):
        tensors = (("input", x), ("end", end))
        weight = np.asarray(weight.item() if isinstance(weight, np.generic) else weight, x.dtype)
    else:
        raise TypeError(f"lerp: weight must be a number or a Tensor, got {type(weight).__name__}")
    for label, t in tensors:
        if t.dtype.kind != "f":
            raise NotImplementedError(f"lerp: {label} must be a float tensor (as in PyTorch), "
                                      f"got {t.dtype}; cast first, e.g. .float()")
        if t.dtype != x.dtype:
            raise RuntimeError(f"lerp: expected dtype {x.dtype} for `{label}` but got dtype "
                               f"{t.dtype} (as in PyTorch); cast it first, e.g. .to({str(x.dtype)!r})")
    try:
        np.broadcast_shapes(*(t.shape for _, t in tensors), np.shape(weight))
    except ValueError:
        raise ValueError(f"lerp: shapes {x.shape}, {end.shape} and {np.shape(weight)} cannot be "
                         "broadcast together") from None
    return Lerp.apply(x, end, weight)
