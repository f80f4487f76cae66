"""Logical and bitwise ops on masks and integers (``&``, ``|``, ``^``, ``~``), as PyTorch's:
no gradient flows through them (their outputs are bool or integer)."""
import numpy as np

from minipool._typing import TensorLike
from minipool._promotion import promoted
from minipool.ops.elementwise import _check_broadcast, as_tensor
from minipool.tensor import Tensor

__all__ = ["bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
           "logical_and", "logical_or", "logical_xor", "logical_not"]


def _operands(a, b, name):
    a, b = promoted(a, b)  # PyTorch's result dtype: bool & 1 is int64, int8 & int16 tensors int16
    _check_broadcast(a, b, name)
    return a, b


def _integral(t, name):
    if t.dtype.kind not in "biu":
        raise TypeError(f"{name}: needs bool or integer tensors, got {t.dtype} (as in PyTorch); "
                        f"for a mask of a float tensor compare first, e.g. (x > 0) & (x < 1)")
    return t._data


def _bitwise(fn, a, b, name):
    a, b = _operands(a, b, name)
    return Tensor(fn(_integral(a, name), _integral(b, name)))


def bitwise_and(input: TensorLike, other: TensorLike) -> Tensor:
    """``input & other`` for bool or integer tensors, as ``torch.bitwise_and``.

    >>> import minipool as mp
    >>> (mp.tensor([True, True, False]) & mp.tensor([True, False, False])).tolist()
    [True, False, False]
    """
    return _bitwise(np.bitwise_and, input, other, "bitwise_and")


def bitwise_or(input: TensorLike, other: TensorLike) -> Tensor:
    """``input | other`` for bool or integer tensors, as ``torch.bitwise_or``.

    >>> import minipool as mp
    >>> mp.bitwise_or(mp.tensor([1, 4]), 2).tolist()
    [3, 6]
    """
    return _bitwise(np.bitwise_or, input, other, "bitwise_or")


def bitwise_xor(input: TensorLike, other: TensorLike) -> Tensor:
    """``input ^ other`` for bool or integer tensors, as ``torch.bitwise_xor``.

    >>> import minipool as mp
    >>> (mp.tensor([True, False]) ^ True).tolist()
    [False, True]
    """
    return _bitwise(np.bitwise_xor, input, other, "bitwise_xor")


def bitwise_not(input: TensorLike) -> Tensor:
    """``~input``: logical not of a bool tensor, bitwise not of an integer one, as
    ``torch.bitwise_not``.

    >>> import minipool as mp
    >>> (~mp.tensor([True, False])).tolist(), (~mp.tensor([0, 5])).tolist()
    ([False, True], [-1, -6])
    """
    x = as_tensor(input)
    return Tensor(np.invert(_integral(x, "bitwise_not")))


def _logical(fn, a, b, name):
    a, b = _operands(a, b, name)
    return Tensor(fn(a._data, b._data))


def logical_and(input: TensorLike, other: TensorLike) -> Tensor:
    """Elementwise ``input != 0 and other != 0`` of any dtype, a bool tensor (NaN is true),
    as ``torch.logical_and``.

    >>> import minipool as mp
    >>> mp.logical_and(mp.tensor([0.0, 2.0, float("nan")]), mp.tensor([1, 1, 1])).tolist()
    [False, True, True]
    """
    return _logical(np.logical_and, input, other, "logical_and")


def logical_or(input: TensorLike, other: TensorLike) -> Tensor:
    """Elementwise ``input != 0 or other != 0``, a bool tensor, as ``torch.logical_or``.

    >>> import minipool as mp
    >>> mp.logical_or(mp.tensor([0.0, 0.0]), mp.tensor([0, 3])).tolist()
    [False, True]
    """
    return _logical(np.logical_or, input, other, "logical_or")


def logical_xor(input: TensorLike, other: TensorLike) -> Tensor:
    """Elementwise ``(input != 0) != (other != 0)``, a bool tensor, as ``torch.logical_xor``.

    >>> import minipool as mp
    >>> mp.logical_xor(mp.tensor([1.0, 0.0]), mp.tensor([1, 1])).tolist()
    [False, True]
    """
    return _logical(np.logical_xor, input, other, "logical_xor")


def logical_not(input: TensorLike) -> Tensor:
    """Elementwise ``input == 0``, a bool tensor, as ``torch.logical_not``.

    >>> import minipool as mp
    >>> mp.logical_not(mp.tensor([0.0, -1.5])).tolist()
    [True, False]
    """
    return Tensor(np.logical_not(as_tensor(input)._data))
