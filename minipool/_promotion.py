"""PyTorch's type promotion: the dtype of an op on mixed operands, in one place.

The rule (``torch.result_type``): dtypes fall in categories bool < integer < floating.
Operands rank by kind: tensors with dimensions, then 0-d tensors, then plain numbers
(Python or NumPy scalars).  The result is the promotion of the highest-ranked kind's
dtypes; a lower-ranked kind changes it only when its category is higher (float32 tensor
+ float64 0-d tensor is float32, int32 tensor + 2.5 is a float).  A float number counts
as the default float dtype (``mp.get_default_dtype()``), an int as int64, a bool as bool.
NumPy's own rule differs (float32 + int64 is float64 there), so every op that mixes dtypes
asks here first.
"""
from typing import Any

import numpy as np

from minipool.tensor import Tensor, get_default_dtype

__all__ = ["promote_types", "result_type", "can_cast"]

_BOOL = np.dtype(np.bool_)
_INT64 = np.dtype(np.int64)
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}
_WIDE_UNSIGNED = frozenset(np.dtype(t) for t in (np.uint16, np.uint32, np.uint64))

# PyTorch's names, for errors a PyTorch user will recognise ("Float", "Long", ...)
TORCH_NAMES = {np.dtype(k): v for k, v in (
    (np.bool_, "Bool"), (np.uint8, "Byte"), (np.int8, "Char"), (np.int16, "Short"),
    (np.int32, "Int"), (np.int64, "Long"), (np.float16, "Half"), (np.float32, "Float"),
    (np.float64, "Double"), (np.uint16, "UInt16"), (np.uint32, "UInt32"), (np.uint64, "UInt64"))}


def _dtype(d, name):
    if isinstance(d, Tensor):
        return d.dtype
    try:
        dt = np.dtype(d)
    except TypeError:
        dt = None
    if d is None or dt is None or dt.kind not in _CATEGORY:
        raise TypeError(f"{name}: expected a dtype (e.g. mp.float32, mp.int64), got {d!r}")
    return dt


def _promote(a, b):
    """``promote_types`` of two np.dtypes, unchecked (the hot path)."""
    if a == b:
        return a
    ka, kb = _CATEGORY[a.kind], _CATEGORY[b.kind]
    if ka != kb:
        return a if ka > kb else b
    if (a in _WIDE_UNSIGNED or b in _WIDE_UNSIGNED) and ka == 1:
        raise RuntimeError(f"Promotion for uint16, uint32, uint64 types is not supported, attempted "
                           f"to promote {a} and {b} (as in PyTorch); cast one first, e.g. .long()")
    return np.promote_types(a, b)  # same category: NumPy's lattice is PyTorch's there


def promote_types(type1: Any, type2: Any) -> np.dtype:
    """The smallest dtype both ``type1`` and ``type2`` convert to without leaving their
    category, as ``torch.promote_types`` (int64 with float32 is float32, not NumPy's float64).

    >>> import minipool as mp
    >>> mp.promote_types(mp.int64, mp.float32), mp.promote_types(mp.uint8, mp.int8)
    (dtype('float32'), dtype('int16'))
    """
    return _promote(_dtype(type1, "promote_types"), _dtype(type2, "promote_types"))


def can_cast(from_: Any, to: Any) -> bool:
    """Whether PyTorch's in-place ops may write a ``from_`` result into a ``to`` tensor: only a
    cast to a lower category is refused (float to integer or bool, integer to bool), as
    ``torch.can_cast``.

    >>> import minipool as mp
    >>> mp.can_cast(mp.float64, mp.float32), mp.can_cast(mp.float32, mp.int64)
    (True, False)
    """
    a, b = _dtype(from_, "can_cast"), _dtype(to, "can_cast")
    return _CATEGORY[a.kind] <= _CATEGORY[b.kind]


def _scalar_dtype(x):
    """The dtype a plain number counts as, or None when ``x`` is no number."""
    if isinstance(x, bool):
        return _BOOL
    if isinstance(x, (float, np.floating)):  # (np.float64 is a float)
        return get_default_dtype()
    if isinstance(x, (int, np.integer)):
        return _INT64
    if isinstance(x, np.bool_):
        return get_default_dtype()  # PyTorch reads a NumPy bool as a float number
    return None


def _combine(higher, lower):
    """PyTorch's rule for two ranks: ``lower`` counts only when its category is higher."""
    if higher is None:
        return lower
    if lower is None or higher.kind == "f":
        return higher
    if higher.kind == "b" or lower.kind == "f":
        return _promote(higher, lower)
    return higher


def operand_dtype(x):
    """(rank, dtype) of one operand: rank 2 a tensor with dimensions, 1 a 0-d tensor,
    0 a plain number."""
    if isinstance(x, Tensor):
        d = x._data
        return (2 if d.ndim else 1), d.dtype
    if isinstance(x, np.ndarray) and x.dtype.kind in _CATEGORY:
        return (2 if x.ndim else 1), x.dtype
    dt = _scalar_dtype(x)
    if dt is not None:
        return 0, dt
    arr = np.asarray(x)  # a list: as mp.tensor reads it (Python floats: the default dtype)
    if arr.dtype == np.float64:
        arr = arr.astype(get_default_dtype())
    if arr.dtype.kind not in _CATEGORY:
        raise TypeError(f"expected a tensor or a real number, got {type(x).__name__}")
    return (2 if arr.ndim else 1), arr.dtype


def result_type(*operands: Any) -> np.dtype:
    """The dtype of an op on ``operands`` (tensors and numbers), by PyTorch's rule (see the
    module's doc), as ``torch.result_type``.

    >>> import minipool as mp
    >>> mp.result_type(mp.tensor([1, 2]), 2.5), mp.result_type(mp.ones(2), mp.tensor(1.0).double())
    (dtype('float32'), dtype('float32'))
    """
    if not operands:
        raise TypeError("result_type: give at least one tensor or number")
    by_rank = [None, None, None]
    for x in operands:
        rank, dt = operand_dtype(x)
        seen = by_rank[rank]
        by_rank[rank] = dt if seen is None else _promote(seen, dt)
    numbers, zero_dim, dimensioned = by_rank
    return _combine(dimensioned, _combine(zero_dim, numbers))


def as_dtype(x, dtype, name="operand"):
    """Operand ``x`` as a Tensor of ``dtype``: a tensor through a differentiable cast (so its
    gradient comes back in its own dtype, as PyTorch's), a number as a 0-d constant (an int
    wraps around a narrower integer dtype, as in PyTorch: uint8 tensor + 300 adds 44)."""
    if isinstance(x, Tensor):
        return x if x._data.dtype == dtype else x.to(dtype)
    if type(x) is int and not -2 ** 63 <= x < 2 ** 64:
        raise OverflowError(f"{name} {x} does not fit the {dtype} of the op (int too big to "
                            "convert, as in PyTorch)")
    arr = np.asarray(x.item() if isinstance(x, np.generic) else x)
    if arr.dtype != dtype:
        with np.errstate(over="ignore", invalid="ignore"):  # 1e300 in float16 is inf quietly
            arr = arr.astype(dtype)
    return Tensor._from_result(arr, False)


def promoted(*operands):
    """Every operand as a Tensor of their :func:`result_type`."""
    for x in operands:  # one dtype: nothing to promote (the common case)
        if type(x) is not Tensor or x._data.dtype != operands[0]._data.dtype:
            break
    else:
        return operands
    dtype = result_type(*operands)
    names = _OPERAND_NAMES if len(operands) == 2 else [f"operand {i}" for i in range(len(operands))]
    return tuple(as_dtype(x, dtype, n) for x, n in zip(operands, names))


_OPERAND_NAMES = ("input", "other")


def promoted_float(*operands):
    """As :func:`promoted`, but an integer or bool result becomes the default float dtype (true
    division, atan2, ...: int / int is float32, as in PyTorch)."""
    dtype = result_type(*operands)
    if dtype.kind != "f":
        dtype = get_default_dtype()
    return tuple(as_dtype(x, dtype, n) for x, n in zip(operands, _OPERAND_NAMES))


def check_inplace(name: str, result: np.dtype, out: np.dtype) -> None:
    """PyTorch's RuntimeError when an in-place op's result can't be written into its tensor."""
    if _CATEGORY[result.kind] > _CATEGORY[out.kind]:
        raise RuntimeError(
            f"{name}: result type {TORCH_NAMES.get(result, result)} can't be cast to the desired "
            f"output type {TORCH_NAMES.get(out, out)} (as in PyTorch: the result's dtype is {result}, "
            f"the tensor's {out}); use the out-of-place op, or cast the tensor first (e.g. t.float())")
