"""More ops that pick or place elements by index: scatter (+ add/reduce), index_select /
index_add / index_fill / index_copy, masked_select, take_along_dim, repeat_interleave,
unbind, tril/triu, count_nonzero, narrow, movedim, swapaxes, diagonal and trace, with
PyTorch's rules and gradients (docs/tensor_ops.md).

Indices are never wrapped: a negative or too-large index raises the exception class
PyTorch raises for that op (take_along_dim too, which PyTorch checks only for dim=None).
A repeated index accumulates gradient (the cell is read twice); a repeated index that
*writes* (scatter, index_copy) keeps the last write, where PyTorch leaves the winner
undefined.
"""
from typing import Optional, Tuple, Union

import numpy as np

from minipool._typing import Dims, TensorLike
from minipool.ops import inplace as _inplace
from minipool.ops.elementwise import as_tensor, unbroadcast
from minipool.ops.indexing import _gather_cells, bool_mask
from minipool.ops.reduce import every_dim_if_empty, normalize_dims
from minipool.tensor import Function, Tensor, _dim_index
from minipool.ops import shape as _shape

__all__ = ["scatter", "scatter_add", "scatter_reduce", "index_select", "index_add", "index_fill",
           "index_copy", "masked_select", "take_along_dim", "repeat_interleave", "unbind", "tril",
           "triu", "count_nonzero", "narrow", "movedim", "swapaxes", "diagonal", "trace",
           "run_in_place"]


# --------------------------------------------------------------------------- helpers
def _index_array(op, index, name="index"):
    """``index`` as an intp array; a float or bool index is PyTorch's RuntimeError."""
    idx = np.asarray(index._data if isinstance(index, Tensor) else index)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"{op}: {name} must be an integer tensor (int64 or int32), got "
                           f"dtype {idx.dtype}")
    return idx.astype(np.intp, copy=False)


def _check_range(op, idx, size, dim, error=RuntimeError):
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise error(f"{op}: index {bad} is out of bounds for dimension {dim} with size {size} "
                    "(indices are not wrapped: 0 <= index < size)")


def run_in_place(x: Tensor, name: str, op, *others) -> Tensor:
    """``x = op(x, *others)`` in place, with PyTorch's in-place rules (a leaf that requires
    grad raises; inside a graph the op is recorded, else x's array is overwritten)."""
    if _inplace._records(x, name, others):  # keep_self: scatter_reduce's backward reads x
        return _inplace._record(x, name, op, others, True)
    result = op(x.detach(), *(o.detach() if isinstance(o, Tensor) else o for o in others))
    try:
        np.copyto(x._data, result._data, casting="same_kind")
    except (TypeError, ValueError) as e:
        raise _inplace._write_error(x, name, e) from None
    _inplace._bump(x, name)
    return x


def _as_1d(x):
    """PyTorch treats a 0-d tensor as holding one element along dim 0 or -1."""
    return x.reshape(1) if x.ndim == 0 else x


# --------------------------------------------------------------------------- scatter
def _src_part(src, index_shape):
    return src[tuple(slice(0, n) for n in index_shape)]


class _Scatter(Function):
    """``out = x`` with ``out[cells(index)] = src`` (or ``value``); with ``accumulate``
    the src values are added.  Gradient: x gets grad (zeroed at written cells unless
    accumulating), src gets grad gathered at index (every duplicate gets its share)."""

    @staticmethod
    def forward(ctx, x, src, axis, index, accumulate):
        cells = _gather_cells(index, axis)
        out = x.copy()
        values = src if np.ndim(src) == 0 else _src_part(src, index.shape)
        if accumulate:
            np.add.at(out, cells, values)
        else:
            out[cells] = values
        ctx.meta = (cells, np.shape(src), index.shape, accumulate)
        return out

    @staticmethod
    def backward(ctx, grad):
        cells, src_shape, index_shape, accumulate = ctx.meta
        grad_x = grad
        if not accumulate:
            grad_x = grad.copy()
            grad_x[cells] = 0
        grad_src = None
        if ctx.needs_input_grad[1]:
            grad_src = np.zeros(src_shape, grad.dtype)
            grad_src[tuple(slice(0, n) for n in index_shape)] = grad[cells]
        return grad_x, grad_src, None, None, None


def _scatter_operands(op, x, dim, index, src):
    """Checked (x, axis, index, src) for the scatter family, PyTorch's rules and errors."""
    x = as_tensor(x)
    idx = _index_array(op, index)
    axis = _dim_index(dim, x.ndim, op)
    src_is_tensor = isinstance(src, Tensor)
    if src_is_tensor and src.dtype != x.dtype:
        raise RuntimeError(f"{op}: src must have the input's dtype {x.dtype}, got {src.dtype} "
                           "(as in PyTorch); cast it, e.g. src.to(input.dtype)")
    if x.ndim == 0 or idx.ndim == 0:  # 0-d tensors count as 1-d, as in PyTorch
        if x.ndim > 1 or idx.ndim > 1:
            raise RuntimeError(f"{op}: index ({idx.ndim}-d) must have as many dimensions as "
                               f"input ({x.ndim}-d)")
        idx = idx.reshape(-1)
        if src_is_tensor and src.ndim == 0:
            src = src.reshape(1)
    xs = x.shape if x.ndim else (1,)
    if idx.ndim != len(xs) or (src_is_tensor and src.ndim != idx.ndim):
        raise RuntimeError(f"{op}: index ({idx.ndim}-d), input ({x.ndim}-d)"
                           f"{f' and src ({src.ndim}-d)' if src_is_tensor else ''} must have "
                           "the same number of dimensions")
    for d in range(idx.ndim):
        if (d != axis and idx.shape[d] > xs[d]) or (src_is_tensor and idx.shape[d] > src.shape[d]):
            raise RuntimeError(f"{op}: index of shape {tuple(idx.shape)} must be no larger than "
                               f"input {tuple(x.shape)} apart from dimension {dim}, and no larger "
                               f"than src {tuple(src.shape) if src_is_tensor else '(a number)'}")
    _check_range(op, idx, xs[axis], dim)
    return x, axis, idx, src


def _scatter(op, x, dim, index, src, accumulate):
    shape = as_tensor(x).shape
    x, axis, idx, src = _scatter_operands(op, x, dim, index, src)
    if not isinstance(src, Tensor):
        src = np.asarray(src).astype(x.dtype)
    out = _Scatter.apply(_as_1d(x), src, axis, idx, accumulate)
    return out.reshape(shape) if out.shape != shape else out


def _src_or_value(op, src, value):
    if (src is None) == (value is None):
        raise TypeError(f"{op}: give exactly one of src (a tensor) and value (a number)")
    src = value if src is None else src
    if isinstance(src, Tensor) or isinstance(src, (bool, int, float, np.generic)):
        return src
    raise TypeError(f"{op}: src must be a tensor or a number, got {type(src).__name__}")


def scatter(input: TensorLike, dim: int, index: TensorLike, src: Optional[TensorLike] = None,
            value: Optional[float] = None, *, reduce: Optional[str] = None) -> Tensor:
    """A copy of ``input`` with ``src`` written at ``index`` along ``dim`` (dim 0:
    ``out[index[i][j]][j] = src[i][j]``), or the number ``value`` (``src`` may be a
    number too).  ``reduce='add'``/``'multiply'`` combines with what is there (PyTorch's
    legacy form of :func:`scatter_reduce`).  ``index`` is an integer tensor with input's
    number of dims, no larger than src and (outside ``dim``) than input.

    >>> import minipool as mp
    >>> mp.zeros(2, 3).scatter(1, mp.tensor([[2], [0]]), mp.tensor([[5.0], [7.0]])).numpy()
    array([[0., 0., 5.],
           [7., 0., 0.]], dtype=float32)
    """
    src = _src_or_value("scatter", src, value)
    if reduce is not None:
        legacy = {"add": "sum", "multiply": "prod"}
        if reduce not in legacy:
            raise ValueError(f"scatter: reduce must be 'add' or 'multiply', got {reduce!r}")
        if not isinstance(src, Tensor):
            src = as_tensor(input).detach().new_full(np.shape(index._data if isinstance(index, Tensor)
                                                              else index), src)
        return scatter_reduce(input, dim, index, src, legacy[reduce])
    return _scatter("scatter", input, dim, index, src, accumulate=False)


def scatter_add(input: TensorLike, dim: int, index: TensorLike, src: TensorLike) -> Tensor:
    """A copy of ``input`` with ``src`` added at ``index`` along ``dim`` (a repeated
    index adds each of its values).  Gradient: all of it to input, gathered at index to src.

    >>> import minipool as mp
    >>> mp.zeros(3).scatter_add(0, mp.tensor([0, 2, 0]), mp.tensor([1.0, 2.0, 3.0])).numpy()
    array([4., 0., 2.], dtype=float32)
    """
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_add: src must be a tensor, got {type(src).__name__}")
    return _scatter("scatter_add", input, dim, index, src, accumulate=True)


_REDUCTIONS = {"sum": np.add, "prod": np.multiply, "amax": np.fmax, "amin": np.fmin, "mean": np.add}


class _ScatterReduce(Function):
    """``out[cell] = reduce(x[cell] (if include_self), src values landing on the cell)``;
    cells nothing lands on keep x.  amax/amin share the gradient equally among the
    values equal to the result, prod's gradient is the product of the others (zeros too),
    as in PyTorch."""

    @staticmethod
    def forward(ctx, x, src, axis, index, reduce, include_self):
        cells = _gather_cells(index, axis)
        values = _src_part(src, index.shape)
        hit = np.zeros(x.shape, bool)
        hit[cells] = True
        out = x.copy()
        if not include_self:  # start each hit cell from the reduction's identity
            out[hit] = {"sum": 0, "mean": 0, "prod": 1, "amax": -np.inf, "amin": np.inf}[reduce] \
                if x.dtype.kind == "f" else _int_identity(reduce, x.dtype)
        ufunc = _REDUCTIONS[reduce]
        if reduce in ("amax", "amin"):
            ufunc = {"amax": np.maximum, "amin": np.minimum}[reduce]  # NaN wins, as in PyTorch
        ufunc.at(out, cells, values)
        count = None
        if reduce == "mean":
            count = np.full(x.shape, 1 if include_self else 0, np.int64)
            np.add.at(count, cells, 1)
            count = np.maximum(count, 1)
            out = (out / count if x.dtype.kind == "f" else out // count).astype(x.dtype)
        ctx.meta = (cells, hit, src.shape, index.shape, reduce, include_self, count)
        if ctx.requires_grad:
            ctx.save_for_backward(x, values, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        cells, hit, src_shape, index_shape, reduce, include_self, count = ctx.meta
        x, values, out = ctx.saved_tensors
        if reduce == "sum":
            grad_x_hit, grad_values = grad, grad[cells]
        elif reduce == "mean":
            grad_x_hit = grad / count
            grad_values = grad_x_hit[cells]
        elif reduce in ("amax", "amin"):  # shared equally by every value equal to the result;
            picked_x = (x == out) & hit  # PyTorch counts the old value even when excluded
            picked_values = values == out[cells]
            ties = picked_x.astype(grad.dtype)
            np.add.at(ties, cells, picked_values)
            share = grad / np.maximum(ties, 1)
            grad_x_hit = np.where(picked_x, share, 0)
            grad_values = np.where(picked_values, share[cells], 0)
        else:  # prod: the product of every other factor on the cell, zeros included
            x_counts = hit & include_self
            zeros = ((x == 0) & x_counts).astype(np.int64)
            np.add.at(zeros, cells, values == 0)
            nonzero_prod = np.where((x == 0) | ~x_counts, 1, x).astype(grad.dtype)
            np.multiply.at(nonzero_prod, cells, np.where(values == 0, 1, values))

            def others(v, z, nz, o, g):
                return g * np.where(v != 0, np.where(z == 0, o / np.where(v != 0, v, 1), 0),
                                    np.where(z == 1, nz, 0))
            grad_x_hit = others(x, zeros, nonzero_prod, out, grad)
            grad_values = others(values, zeros[cells], nonzero_prod[cells], out[cells], grad[cells])
        grad_x = np.where(hit, grad_x_hit if include_self else 0, grad).astype(grad.dtype, copy=False)
        grad_src = np.zeros(src_shape, grad.dtype)
        grad_src[tuple(slice(0, n) for n in index_shape)] = grad_values
        return grad_x, grad_src, None, None, None, None


def _int_identity(reduce, dtype):
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if info is None:  # bool
        return reduce == "amin"
    return info.min if reduce == "amax" else info.max


def scatter_reduce(input: TensorLike, dim: int, index: TensorLike, src: TensorLike, reduce: str,
                   *, include_self: bool = True) -> Tensor:
    """A copy of ``input`` where each cell ``index`` points at (along ``dim``) becomes
    the ``reduce`` ('sum', 'prod', 'mean', 'amax', 'amin') of the src values landing
    there, and of the input's value with ``include_self=True``.  Integer 'mean' rounds
    down, as in PyTorch; NaN wins amax/amin.

    >>> import minipool as mp
    >>> x = mp.tensor([1.0, 10.0])
    >>> x.scatter_reduce(0, mp.tensor([0, 0, 1]), mp.tensor([5.0, 3.0, 2.0]), "amax").numpy()
    array([ 5., 10.], dtype=float32)
    """
    if reduce not in _REDUCTIONS:
        raise ValueError(f"scatter_reduce: reduce must be one of 'sum', 'prod', 'mean', 'amax', "
                         f"'amin', got {reduce!r}")
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_reduce: src must be a tensor, got {type(src).__name__}")
    shape = as_tensor(input).shape
    x, axis, idx, src = _scatter_operands("scatter_reduce", input, dim, index, src)
    out = _ScatterReduce.apply(_as_1d(x), src, axis, idx, reduce, bool(include_self))
    return out.reshape(shape) if out.shape != shape else out


# --------------------------------------------------------------------------- index_*
def _vector_index(op, x, dim, index, error=IndexError):
    axis = _dim_index(dim, x.ndim, op)
    idx = _index_array(op, index)
    if idx.ndim > 1:
        raise IndexError(f"{op}: index must be a vector (0-d or 1-d), got shape {tuple(idx.shape)}")
    idx = idx.reshape(-1)
    size = x.shape[axis] if x.ndim else 1
    _check_range(op, idx, size, dim, error)
    return axis, idx


class _IndexSelect(Function):
    """``np.take`` along axis; the gradient adds back (a repeated index gets each share)."""

    @staticmethod
    def forward(ctx, x, axis, idx):
        ctx.meta = (x.shape, axis, idx)
        return np.take(x, idx, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        shape, axis, idx = ctx.meta
        out = np.zeros(shape, grad.dtype)
        np.add.at(np.moveaxis(out, axis, 0), idx, np.moveaxis(grad, axis, 0))
        return out, None, None


def index_select(input: TensorLike, dim: int, index: TensorLike) -> Tensor:
    """The slices of ``input`` along ``dim`` at the integer vector ``index`` (in order,
    repeats allowed).

    >>> import minipool as mp
    >>> mp.index_select(mp.tensor([[1, 2], [3, 4], [5, 6]]), 0, mp.tensor([2, 0, 2])).tolist()
    [[5, 6], [1, 2], [5, 6]]
    """
    x = as_tensor(input)
    axis, idx = _vector_index("index_select", x, dim, index)
    if x.ndim == 0:
        if idx.size != 1:
            raise IndexError(f"index_select: a 0-d input takes one index, got {idx.size}")
        return _IndexSelect.apply(x.reshape(1), 0, idx).reshape(())
    return _IndexSelect.apply(x, axis, idx)


class _IndexPut(Function):
    """x with slices at ``idx`` along ``axis`` replaced by ``source`` (``accumulate``: added,
    times ``alpha``).  Gradient: x's is grad (zeroed at replaced slices), source's the
    slices of grad at idx (times alpha)."""

    @staticmethod
    def forward(ctx, x, source, axis, idx, accumulate, alpha):
        out = x.copy()
        moved = np.moveaxis(out, axis, 0)
        src = np.moveaxis(np.asarray(source), axis, 0) if np.ndim(source) else source
        if accumulate:
            np.add.at(moved, idx, src * alpha if alpha != 1 else src)
        else:
            moved[idx] = src
        ctx.meta = (axis, idx, accumulate, alpha, np.shape(source))
        return out

    @staticmethod
    def backward(ctx, grad):
        axis, idx, accumulate, alpha, source_shape = ctx.meta
        grad_x = grad
        if not accumulate:
            grad_x = grad.copy()
            np.moveaxis(grad_x, axis, 0)[idx] = 0
        grad_source = None
        if ctx.needs_input_grad[1]:
            taken = np.take(grad, idx, axis=axis)
            if len(source_shape) == 0:  # a 0-d value: one gradient per filled slice element
                grad_source = np.asarray(taken.sum(), grad.dtype)
            else:
                grad_source = taken * alpha if alpha != 1 else taken
        return grad_x, grad_source, None, None, None, None


def _index_put(op, input, dim, index, source, accumulate, alpha=1):
    x = as_tensor(input)
    axis, idx = _vector_index(op, x, dim, index, RuntimeError if accumulate else IndexError)
    source = as_tensor(source) if not isinstance(source, Tensor) else source
    if source.dtype != x.dtype:
        raise RuntimeError(f"{op}: source must have the input's dtype {x.dtype}, got "
                           f"{source.dtype} (as in PyTorch); cast it, e.g. source.to(input.dtype)")
    xs, ss = (x.shape or (1,)), (source.shape or (1,))
    expected = xs[:axis] + (idx.size,) + xs[axis + 1:]
    if len(ss) != len(xs) or ss != expected:
        raise RuntimeError(f"{op}: source of shape {tuple(source.shape)} must have input's shape "
                           f"{tuple(x.shape)} with {idx.size} (the number of indices) in "
                           f"dimension {dim}, i.e. {expected}")
    out = _IndexPut.apply(_as_1d(x), _as_1d(source), axis, idx, accumulate, alpha)
    return out.reshape(x.shape) if out.shape != x.shape else out


def index_add(input: TensorLike, dim: int, index: TensorLike, source: TensorLike, *,
              alpha: float = 1) -> Tensor:
    """A copy of ``input`` with ``alpha * source`` added into the slices at ``index``
    along ``dim`` (a repeated index adds each slice).  ``source`` has input's shape
    with ``len(index)`` in ``dim``.

    >>> import minipool as mp
    >>> mp.zeros(3).index_add(0, mp.tensor([0, 0, 2]), mp.tensor([1.0, 2.0, 3.0])).numpy()
    array([3., 0., 3.], dtype=float32)
    """
    return _index_put("index_add", input, dim, index, source, True, alpha)


def index_copy(input: TensorLike, dim: int, index: TensorLike, source: TensorLike) -> Tensor:
    """A copy of ``input`` with the slices at ``index`` along ``dim`` replaced by
    ``source``'s (input's shape with ``len(index)`` in ``dim``).

    >>> import minipool as mp
    >>> mp.zeros(3).index_copy(0, mp.tensor([2, 0]), mp.tensor([5.0, 7.0])).numpy()
    array([7., 0., 5.], dtype=float32)
    """
    return _index_put("index_copy", input, dim, index, source, False)


def index_fill(input: TensorLike, dim: int, index: TensorLike, value: Union[float, Tensor]) -> Tensor:
    """A copy of ``input`` with the slices at ``index`` along ``dim`` set to ``value``
    (a number, or a 0-d tensor, which gets the gradient of the filled elements).

    >>> import minipool as mp
    >>> mp.ones(2, 3).index_fill(1, mp.tensor([0, 2]), -1.0).numpy()
    array([[-1.,  1., -1.],
           [-1.,  1., -1.]], dtype=float32)
    """
    x = as_tensor(input)
    axis, idx = _vector_index("index_fill", x, dim, index)
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"index_fill: value must be a number or a 0-d tensor, got a "
                               f"tensor of shape {tuple(value.shape)}")
        if value.dtype != x.dtype:
            value = value.to(x.dtype) if value.dtype.kind == "f" and x.dtype.kind == "f" \
                else Tensor(value._data.astype(x.dtype))
    elif isinstance(value, (bool, int, float, np.generic)):
        value = np.asarray(value).astype(x.dtype)
    else:
        raise TypeError(f"index_fill: value must be a number or a 0-d tensor, got "
                        f"{type(value).__name__}")
    idx = np.unique(idx)  # a slice filled twice is one slice (its gradient counted once)
    out = _IndexPut.apply(_as_1d(x), value, axis, idx, False, 1)
    return out.reshape(x.shape) if out.shape != x.shape else out


# --------------------------------------------------------------------------- masks, along-dim
class _MaskedSelect(Function):
    @staticmethod
    def forward(ctx, x, mask):
        shape = np.broadcast_shapes(x.shape, mask.shape)
        full_mask = np.broadcast_to(mask, shape)
        ctx.meta = (x.shape, full_mask)
        return np.broadcast_to(x, shape)[full_mask]

    @staticmethod
    def backward(ctx, grad):
        shape, full_mask = ctx.meta
        out = np.zeros(full_mask.shape, grad.dtype)
        out[full_mask] = grad
        return unbroadcast(out, shape), None


def masked_select(input: TensorLike, mask: TensorLike) -> Tensor:
    """The elements of ``input`` where the bool ``mask`` is true (both broadcast), as a
    1-d tensor in row-major order; the gradient goes back to the selected elements.

    >>> import minipool as mp
    >>> x = mp.tensor([[1.0, -2.0], [3.0, -4.0]])
    >>> mp.masked_select(x, x > 0).numpy()
    array([1., 3.], dtype=float32)
    """
    x = as_tensor(input)
    m = bool_mask("masked_select", mask, x.shape, RuntimeError, RuntimeError)
    return _MaskedSelect.apply(x, m)


class _TakeAlong(Function):
    @staticmethod
    def forward(ctx, x, idx, axis):
        ctx.meta = (x.shape, idx, axis)
        return np.take_along_axis(x, idx, axis)

    @staticmethod
    def backward(ctx, grad):
        shape, idx, axis = ctx.meta
        out = np.zeros(shape, grad.dtype)
        np.add.at(out, _gather_cells(idx, axis), grad)  # repeats accumulate
        return out, None, None


def take_along_dim(input: TensorLike, indices: TensorLike, dim: Optional[int] = None) -> Tensor:
    """Pick along ``dim`` by ``indices`` (same number of dims as input; the other dims
    broadcast), as NumPy's ``take_along_axis``; ``dim=None`` picks from the flattened
    input.  An index out of [0, size) raises (PyTorch checks only with ``dim=None``
    and reads other memory otherwise).

    >>> import minipool as mp
    >>> x = mp.tensor([[10.0, 30.0, 20.0], [5.0, 4.0, 6.0]])
    >>> mp.take_along_dim(x, x.argmax(dim=1, keepdim=True), dim=1).numpy()
    array([[30.],
           [ 6.]], dtype=float32)
    """
    x = as_tensor(input)
    idx = np.asarray(indices._data if isinstance(indices, Tensor) else indices)
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"take_along_dim: indices must be an integer tensor (int64), got "
                           f"dtype {idx.dtype}")
    idx = idx.astype(np.intp, copy=False)
    if dim is None:
        flat = x.reshape(-1)
        _check_range("take_along_dim", idx, flat.shape[0], 0)
        return _TakeAlong.apply(flat, idx.reshape(-1), 0)
    axis = _dim_index(dim, x.ndim, "take_along_dim")
    if x.ndim == 0:
        x = x.reshape(1)
    if idx.ndim != x.ndim:
        raise RuntimeError(f"take_along_dim: input ({x.ndim}-d) and indices ({idx.ndim}-d) must "
                           "have the same number of dimensions")
    try:
        x_shape = list(np.broadcast_shapes(x.shape[:axis] + (1,) + x.shape[axis + 1:],
                                           idx.shape[:axis] + (1,) + idx.shape[axis + 1:]))
    except ValueError:
        raise RuntimeError(f"take_along_dim: input {tuple(x.shape)} and indices "
                           f"{tuple(idx.shape)} cannot be broadcast outside dimension {dim}") from None
    idx_shape = list(x_shape)
    x_shape[axis], idx_shape[axis] = x.shape[axis], idx.shape[axis]
    _check_range("take_along_dim", idx, x.shape[axis], dim)
    from minipool.ops.shape import broadcast_to
    if tuple(x_shape) != x.shape:
        x = broadcast_to(x, tuple(x_shape))
    return _TakeAlong.apply(x, np.broadcast_to(idx, tuple(idx_shape)), axis)


# --------------------------------------------------------------------------- repeat_interleave
def repeat_interleave(input: TensorLike, repeats: Optional[Union[int, TensorLike]] = None,
                      dim: Optional[int] = None, *, output_size: Optional[int] = None) -> Tensor:
    """Each element (``dim=None``: of the flattened input) or slice along ``dim``
    repeated ``repeats`` times in place (an int, or one count per element); the
    gradient sums over the copies.  ``repeat_interleave(counts)`` alone gives
    ``arange(len(counts))`` repeated by counts, as in PyTorch.

    >>> import minipool as mp
    >>> mp.repeat_interleave(mp.tensor([1, 2]), 2).tolist()
    [1, 1, 2, 2]
    >>> mp.tensor([[1, 2], [3, 4]]).repeat_interleave(mp.tensor([1, 2]), dim=0).tolist()
    [[1, 2], [3, 4], [3, 4]]
    """
    if repeats is None:  # torch.repeat_interleave(repeats)
        counts = as_tensor(input)
        if counts.ndim > 1 or counts.dtype.kind not in "iu":
            raise RuntimeError("repeat_interleave: repeats alone must be a 0-d or 1-d integer tensor")
        return repeat_interleave(Tensor(np.arange(counts.reshape(-1).shape[0], dtype=np.int64)),
                                 counts.reshape(-1), 0)
    x = as_tensor(input)
    if dim is None:
        x, axis = x.reshape(-1), 0
    else:
        axis = _dim_index(dim, x.ndim, "repeat_interleave")
        x = _as_1d(x)
    if isinstance(repeats, bool):
        raise TypeError("repeat_interleave: repeats must be an int or an integer tensor, got a bool")
    if isinstance(repeats, (int, np.integer)):
        if repeats < 0:
            raise RuntimeError(f"repeat_interleave: repeats must be non-negative, got {repeats}")
        counts = np.full(x.shape[axis], int(repeats), np.intp)
    else:
        counts = np.asarray(repeats._data if isinstance(repeats, Tensor) else repeats)
        if counts.dtype.kind not in "iu":
            raise RuntimeError(f"repeat_interleave: repeats must be an int or an integer tensor, "
                               f"got dtype {counts.dtype}")
        if counts.ndim > 1:
            raise RuntimeError(f"repeat_interleave: repeats must be 0-d or 1-d, got shape "
                               f"{tuple(counts.shape)}")
        counts = counts.reshape(-1)
        if counts.size == 1:
            counts = np.full(x.shape[axis], counts[0])
        if counts.size != x.shape[axis]:
            raise RuntimeError(f"repeat_interleave: repeats has {counts.size} entries but input "
                               f"has {x.shape[axis]} along dimension {dim if dim is not None else 0}")
        if counts.size and counts.min() < 0:
            raise RuntimeError("repeat_interleave: repeats must be non-negative")
    where = np.repeat(np.arange(x.shape[axis]), counts.astype(np.intp))
    if output_size is not None and output_size != where.size:
        raise RuntimeError(f"repeat_interleave: output_size={output_size} but the repeats sum "
                           f"to {where.size}")
    return _IndexSelect.apply(x, axis, where.astype(np.intp))


# --------------------------------------------------------------------------- unbind, tril/triu
def unbind(input: TensorLike, dim: int = 0) -> Tuple[Tensor, ...]:
    """The slices along ``dim``, that dimension removed: ``tuple(x[i] for i ...)``.

    >>> import minipool as mp
    >>> [t.tolist() for t in mp.unbind(mp.tensor([[1, 2], [3, 4]]), dim=1)]
    [[1, 3], [2, 4]]
    """
    x = as_tensor(input)
    if x.ndim == 0:
        raise IndexError("unbind: a 0-d tensor has no dimension to unbind")
    axis = _dim_index(dim, x.ndim, "unbind")
    lead = (slice(None),) * axis
    return tuple(x[lead + (i,)] for i in range(x.shape[axis]))


class _Triangle(Function):
    @staticmethod
    def forward(ctx, x, keep):
        ctx.keep = keep
        return np.where(keep, x, np.zeros((), x.dtype))

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.keep, grad, np.zeros((), grad.dtype)), None


def _triangle(op, input, diagonal, lower):
    x = as_tensor(input)
    if x.ndim < 2:
        raise RuntimeError(f"{op}: input must have at least 2 dimensions, got {x.ndim}")
    if isinstance(diagonal, bool) or not isinstance(diagonal, (int, np.integer)):
        raise TypeError(f"{op}: diagonal must be an int, got {diagonal!r}")
    rows, cols = x.shape[-2:]
    offset = np.arange(cols)[None, :] - np.arange(rows)[:, None]  # column - row
    keep = offset <= diagonal if lower else offset >= diagonal
    return _Triangle.apply(x, keep)


def tril(input: TensorLike, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (elements with ``column - row <=
    diagonal``), the rest 0.

    >>> import minipool as mp
    >>> mp.tril(mp.ones(3, 3, dtype=mp.int64)).tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    return _triangle("tril", input, diagonal, True)


def triu(input: TensorLike, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two dims (``column - row >= diagonal``), the rest 0.

    >>> import minipool as mp
    >>> mp.triu(mp.ones(2, 3, dtype=mp.int64), diagonal=1).tolist()
    [[0, 1, 1], [0, 0, 1]]
    """
    return _triangle("triu", input, diagonal, False)


def count_nonzero(input: TensorLike, dim: Dims = None) -> Tensor:
    """The number of non-zero elements (NaN counts), over ``dim`` (an int, a tuple, or
    None for all): an int64 tensor.

    >>> import minipool as mp
    >>> mp.count_nonzero(mp.tensor([[0.0, 1.0], [2.0, 3.0]]), dim=1).tolist()
    [1, 2]
    """
    x = as_tensor(input)
    dims = normalize_dims(every_dim_if_empty(dim), x.ndim, "count_nonzero")
    return Tensor(np.asarray(np.count_nonzero(x._data, axis=dims), dtype=np.int64))


# --------------------------------------------------------------------------- narrow, movedim, diagonal
def narrow(input: TensorLike, dim: int, start: int, length: int) -> Tensor:
    """Elements ``start .. start + length - 1`` along ``dim`` (a negative start counts
    from the end); the gradient lands in that slice.

    >>> import minipool as mp
    >>> mp.narrow(mp.tensor([[1, 2, 3], [4, 5, 6]]), 1, 1, 2).tolist()
    [[2, 3], [5, 6]]
    """
    x = as_tensor(input)
    if x.ndim == 0:
        raise RuntimeError("narrow: cannot be applied to a 0-d tensor")
    axis = _dim_index(dim, x.ndim, "narrow")
    for name, v in (("start", start), ("length", length)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"narrow: {name} must be an int, got {v!r}")
    size = x.shape[axis]
    if not -size <= start <= size:
        raise IndexError(f"narrow: start ({start}) is out of range for dimension {dim} of size {size}")
    start = start + size if start < 0 else start
    if length < 0 or start + length > size:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension {dim} "
                           f"of size {size}")
    return _shape.Narrow.apply(x, axis, int(start), int(start + length))


def _dim_list(op, dims, ndim):
    dims = [dims] if isinstance(dims, (int, np.integer)) else list(dims)
    axes = [_dim_index(d, ndim, op) for d in dims]
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"{op}: repeated dim in {dims}")
    return axes


def movedim(input: TensorLike, source: Union[int, Tuple[int, ...]],
            destination: Union[int, Tuple[int, ...]]) -> Tensor:
    """The dims ``source`` moved to the positions ``destination`` (the others keep their
    order), as ``torch.movedim`` / NumPy's ``moveaxis``.

    >>> import minipool as mp
    >>> mp.movedim(mp.zeros(2, 3, 4), 0, -1).shape
    (3, 4, 2)
    """
    x = as_tensor(input)
    src, dst = _dim_list("movedim", source, x.ndim), _dim_list("movedim", destination, x.ndim)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: source ({len(src)} dims) and destination ({len(dst)} dims) "
                           "must have the same number of dims")
    if x.ndim == 0:
        return x
    order = [d for d in range(x.ndim) if d not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return _shape.permute(x, tuple(order))


def swapaxes(input: TensorLike, axis0: int, axis1: int) -> Tensor:
    """Dims ``axis0`` and ``axis1`` swapped (``transpose(input, axis0, axis1)``).

    >>> import minipool as mp
    >>> mp.swapaxes(mp.zeros(2, 3, 4), 0, 2).shape
    (4, 3, 2)
    """
    x = as_tensor(input)
    for d in (axis0, axis1):
        _dim_index(d, x.ndim, "swapaxes")
    return _shape.transpose(x, axis0, axis1)


class _Diagonal(Function):
    @staticmethod
    def forward(ctx, x, offset, axis1, axis2):
        ctx.meta = (x.shape, offset, axis1, axis2)
        view = np.diagonal(x, offset, axis1, axis2)
        if not x.flags.writeable:  # a read-only input (np.broadcast_to ...): a copy
            return view.copy()
        # a writable view, as PyTorch's diagonal: a.diagonal().fill_(v) writes into a
        view.flags.writeable = True
        return view

    @staticmethod
    def backward(ctx, grad):
        shape, offset, axis1, axis2 = ctx.meta
        out = np.zeros(shape, grad.dtype)
        view = np.diagonal(out, offset, axis1, axis2)
        view.flags.writeable = True  # np.diagonal gives a read-only view of out
        view[...] = grad
        return out, None, None, None


def diagonal(input: TensorLike, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """The diagonal of the planes (dim1, dim2), ``offset`` above (> 0) or below it, as
    the last dimension of the result.

    >>> import minipool as mp
    >>> mp.diagonal(mp.tensor([[1, 2, 3], [4, 5, 6]]), 1).tolist()
    [2, 6]
    """
    x = as_tensor(input)
    if x.ndim < 2:
        raise RuntimeError(f"diagonal: input must have at least 2 dimensions, got {x.ndim}")
    a1, a2 = _dim_index(dim1, x.ndim, "diagonal"), _dim_index(dim2, x.ndim, "diagonal")
    if a1 == a2:
        raise RuntimeError(f"diagonal: dim1 and dim2 cannot be the same dimension ({dim1}, {dim2})")
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)):
        raise TypeError(f"diagonal: offset must be an int, got {offset!r}")
    return _Diagonal.apply(x, int(offset), a1, a2)


def trace(input: TensorLike) -> Tensor:
    """The sum of the main diagonal of a 2-d tensor (integers give int64, as in PyTorch).

    >>> import minipool as mp
    >>> mp.trace(mp.tensor([[1, 2], [3, 4]])).item()
    5
    """
    x = as_tensor(input)
    if x.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix (2-d), got {x.ndim}-d")
    if x.dtype.kind in "bui":
        return Tensor(np.asarray(np.trace(x._data), dtype=np.int64))
    from minipool.ops.reduce import sum as reduce_sum
    return reduce_sum(diagonal(x))
