"""Ops that pick elements by index or by order: gather, masked_fill, sort, argsort, topk, nonzero.

Sorting is stable (ties keep their index order) and puts NaN above +inf, as
PyTorch's ``sort(stable=True)`` does.
"""
from collections import namedtuple
from typing import Optional, Tuple, Union

import numpy as np

from minipool._typing import TensorLike
from minipool._validate import flag
from minipool.ops.elementwise import as_tensor, unbroadcast
from minipool.tensor import Function, Tensor, _dim_index

__all__ = ["gather", "masked_fill", "sort", "argsort", "topk", "nonzero"]

# What sort/topk return, as PyTorch's torch.return_types.sort/topk.
SortResult = namedtuple("sort", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])


# --------------------------------------------------------------------------- gather
def _gather_cells(index, axis):
    """Open-mesh indices that address, for every position of ``index``, the input cell it reads."""
    cells = list(np.ix_(*(np.arange(n) for n in index.shape)))
    cells[axis] = index
    return tuple(cells)


class Gather(Function):
    """``out[i][j] = x[index[i][j]][j]`` (for axis 0); the gradient adds back into the
    cells read (a cell read twice gets both)."""

    @staticmethod
    def forward(ctx, x, axis, index):
        ctx.meta = (x.shape, axis, index)
        if index.size == 0:
            return np.zeros(index.shape, dtype=x.dtype)
        return x[_gather_cells(index, axis)]

    @staticmethod
    def backward(ctx, grad):
        shape, axis, index = ctx.meta
        out = np.zeros(shape, dtype=grad.dtype)
        if index.size:
            np.add.at(out, _gather_cells(index, axis), grad)  # unbuffered: repeats accumulate
        return out, None, None


def gather(x: TensorLike, dim: int, index: TensorLike) -> Tensor:
    """Pick along ``dim`` by ``index`` (integers, same number of dims as ``x``, no larger
    than ``x`` outside ``dim``): ``out[i][j] = x[i][index[i][j]]`` for dim 1.  The result
    has index's shape.

    >>> import minipool as mp
    >>> x = mp.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> mp.gather(x, 1, mp.tensor([[0, 0], [1, 0]])).numpy()
    array([[1., 1.],
           [4., 3.]], dtype=float32)
    """
    x = as_tensor(x)
    idx = np.asarray(index._data if isinstance(index, Tensor) else index)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got dtype {idx.dtype}")
    axis = _dim_index(dim, x.ndim, "gather")
    if x.ndim == 0 or idx.ndim == 0:  # PyTorch treats a 0-d tensor as having one element
        if x.ndim > 1 or idx.ndim > 1:
            raise ValueError(f"gather: index ({idx.ndim}-d) must have as many dimensions as "
                             f"input ({x.ndim}-d)")
        out = gather(x.reshape(1) if x.ndim == 0 else x, 0, idx.reshape(-1))
        return out.reshape(idx.shape)
    if idx.ndim != x.ndim:
        raise ValueError(f"gather: index ({idx.ndim}-d) must have as many dimensions as "
                         f"input ({x.ndim}-d)")
    for d in range(x.ndim):
        if d != axis and idx.shape[d] > x.shape[d]:
            raise ValueError(f"gather: index has size {idx.shape[d]} in dimension {d}, more "
                             f"than input's {x.shape[d]} (only dim {dim} may be larger)")
    if idx.size and (idx.min() < 0 or idx.max() >= x.shape[axis]):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise IndexError(f"gather: index {bad} is out of bounds for dimension {dim} with size "
                         f"{x.shape[axis]}")
    return Gather.apply(x, axis, idx.astype(np.intp, copy=False))


# --------------------------------------------------------------------------- masked_fill
class MaskedFill(Function):
    """``value`` where ``mask`` is true, else x (broadcast together); the gradient of x is
    zero under the mask, a 0-d tensor value gets the sum of the gradient there."""

    @staticmethod
    def forward(ctx, x, value, mask):
        ctx.meta = (x.shape, mask)
        return np.where(mask, np.asarray(value).astype(x.dtype), x)

    @staticmethod
    def backward(ctx, grad):
        shape, mask = ctx.meta
        zero = np.zeros((), grad.dtype)
        under = np.where(mask, grad, zero)
        return unbroadcast(np.where(mask, zero, grad), shape), np.asarray(under.sum()), None


def bool_mask(op, mask, shape, dtype_error, shape_error):
    """``mask`` as a bool array that broadcasts with ``shape``; else ``dtype_error`` or
    ``shape_error`` (the exception types PyTorch's ``op`` raises) naming the mask."""
    m = np.asarray(mask._data if isinstance(mask, Tensor) else mask)
    if m.dtype != np.bool_:
        raise dtype_error(f"{op}: mask must be a bool tensor, got dtype {m.dtype} "
                          "(as in PyTorch); compare to make one, e.g. x > 0")
    try:
        np.broadcast_shapes(shape, m.shape)
    except ValueError:
        raise shape_error(f"{op}: mask of shape {m.shape} cannot be broadcast with the "
                          f"input's shape {shape}") from None
    return m


def masked_fill(x: TensorLike, mask: TensorLike, value: Union[float, Tensor]) -> Tensor:
    """``value`` (a number or 0-d tensor, cast to x's dtype) where the bool ``mask`` is
    true, else ``x``; mask and x broadcast together.

    >>> import minipool as mp
    >>> x = mp.tensor([1.0, 2.0, 3.0])
    >>> x.masked_fill(x > 1.5, 0.0).numpy()
    array([1., 0., 0.], dtype=float32)
    """
    x = as_tensor(x)
    m = bool_mask("masked_fill", mask, x.shape, TypeError, ValueError)
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got a "
                             f"tensor of shape {value.shape}")
    elif isinstance(value, (bool, int, float, np.generic)):
        value = np.asarray(value)
    else:
        raise TypeError(f"masked_fill: value must be a number or a 0-d tensor, got {type(value).__name__}")
    return MaskedFill.apply(x, value, m)


# --------------------------------------------------------------------------- sort, topk
def _stable_order(x, axis, descending):
    """Indices that sort ``x`` along ``axis``, ties in index order, NaN counted largest."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")  # NumPy puts NaN last
    # Sorting the reversed array ascending and reversing the answer gives descending order
    # with ties in reversed-reversed, i.e. original, index order.
    n = x.shape[axis]
    reversed_order = np.argsort(np.flip(x, axis), axis=axis, kind="stable")
    return (n - 1) - np.flip(reversed_order, axis)


class Sort(Function):
    """The first ``k`` elements along ``axis`` in sorted order, and their indices; the
    gradient goes back to the element each value came from."""

    @staticmethod
    def forward(ctx, x, axis, descending, k):
        order = _stable_order(x, axis, descending)
        if k is not None:
            order = np.take(order, np.arange(k), axis=axis)
        order = order.astype(np.int64, copy=False)
        if ctx.requires_grad:
            ctx.meta = (x.shape, axis, order)
        return np.take_along_axis(x, order, axis), order

    @staticmethod
    def backward(ctx, grad):
        shape, axis, order = ctx.meta
        out = np.zeros(shape, dtype=grad.dtype)
        np.put_along_axis(out, order, grad, axis)  # the indices are distinct
        return out, None, None, None


class TopK(Sort):
    """Sort's first k (its own name, so ``grad_fn`` says which op made a tensor)."""


def _sorted(name, x, dim, descending, k=None):
    x = as_tensor(x)
    axis = _dim_index(dim, x.ndim, name)
    op = Sort if k is None else TopK
    if x.ndim == 0:  # a 0-d tensor sorts as one element
        values, indices = op.apply(x.reshape(1), 0, descending, k)
        return values.reshape(()), indices.reshape(())
    return op.apply(x, axis, descending, k)


def sort(x: TensorLike, dim: int = -1, descending: bool = False, *,
         stable: Optional[bool] = None) -> Tuple[Tensor, Tensor]:
    """Sorted values along ``dim`` and their int64 indices, as the named tuple
    ``(values, indices)``.  Always stable (equal values keep their index order, PyTorch's
    ``stable=True``); NaN counts as the largest value.  The gradient flows to the values'
    source elements.

    >>> import minipool as mp
    >>> values, indices = mp.tensor([3.0, 1.0, float("nan"), 1.0]).sort()
    >>> values.numpy(), indices.numpy()
    (array([ 1.,  1.,  3., nan], dtype=float32), array([1, 3, 0, 2]))
    """
    values, indices = _sorted("sort", x, dim, flag(descending, "descending", "sort"))
    return SortResult(values, indices)


def argsort(x: TensorLike, dim: int = -1, descending: bool = False, *,
            stable: Optional[bool] = None) -> Tensor:
    """The int64 indices that sort ``x`` along ``dim`` (stable; NaN largest), as
    ``sort(x, dim, descending).indices``.

    >>> import minipool as mp
    >>> mp.argsort(mp.tensor([3.0, 1.0, 2.0]), descending=True).numpy()
    array([0, 2, 1])
    """
    x = as_tensor(x)
    return _sorted("argsort", x.detach(), dim, flag(descending, "descending", "argsort"))[1]


def topk(x: TensorLike, k: int, dim: int = -1, largest: bool = True,
         sorted: bool = True) -> Tuple[Tensor, Tensor]:
    """The ``k`` largest (or, ``largest=False``, smallest) values along ``dim`` and their
    int64 indices, as the named tuple ``(values, indices)``, largest first (smallest
    first).  NaN counts as the largest value; among equal values the lower index comes
    first.  The result is always in sorted order (``sorted=False`` is accepted).

    >>> import minipool as mp
    >>> values, indices = mp.tensor([1.0, 5.0, 3.0, 4.0]).topk(2)
    >>> values.numpy(), indices.numpy()
    (array([5., 4.], dtype=float32), array([1, 3]))
    """
    x = as_tensor(x)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"topk: k must be an int, got {k!r}")
    n = x.shape[_dim_index(dim, x.ndim, "topk")] if x.ndim else 1
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of size {n} "
                         f"(expected 0 <= k <= {n})")
    flag(sorted, "sorted", "topk")
    values, indices = _sorted("topk", x, dim, flag(largest, "largest", "topk"), int(k))
    return TopkResult(values, indices)


# --------------------------------------------------------------------------- nonzero
def nonzero(x: TensorLike, *, as_tuple: bool = False) -> Union[Tensor, Tuple[Tensor, ...]]:
    """The indices of the non-zero elements (NaN counts as non-zero): an int64 tensor of
    shape (count, ndim), in row-major order, or with ``as_tuple=True`` one 1-d tensor per
    dimension (a 0-d input counts as 1-d there, as in PyTorch).  No gradient.

    >>> import minipool as mp
    >>> mp.nonzero(mp.tensor([[0.0, 1.0], [2.0, 0.0]])).numpy()
    array([[0, 1],
           [1, 0]])
    """
    data = as_tensor(x)._data
    if flag(as_tuple, "as_tuple", "nonzero"):
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(np.atleast_1d(data)))
    return Tensor(np.argwhere(data).astype(np.int64))
