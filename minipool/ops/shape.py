"""Ops that move data without arithmetic: reshape, permute, indexing, concatenation."""
import math
from typing import Sequence, Tuple, Union

import numpy as np

from minipool._typing import Dims, TensorLike
from minipool._promotion import promoted
from minipool._validate import is_int, single_int
from minipool.ops.elementwise import as_tensor
from minipool.ops.reduce import normalize_dims
from minipool.tensor import Function, Tensor, _dim_index

__all__ = ["reshape", "view", "transpose", "permute", "flatten", "unflatten", "getitem", "cat", "stack",
           "squeeze", "unsqueeze", "broadcast_to", "expand", "t", "repeat", "split", "chunk",
           "tensor_split",
           "flip", "roll"]


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.in_shape), None


def reshape(x: TensorLike, *shape: Union[int, Sequence[int]]) -> Tensor:
    """The same values in a new shape (one entry may be -1).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.reshape(mp.arange(6.0), 2, 3).shape
    (2, 3)
    """
    x = as_tensor(x)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        return Reshape.apply(x, tuple(shape))
    except (ValueError, TypeError) as e:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} into "
                         f"{tuple(shape)} ({e})") from None


def view(x: TensorLike, *shape: Union[int, Sequence[int]]) -> Tensor:
    """``x.view(shape)``: :func:`reshape` where the result shares ``x``'s memory, as
    PyTorch's ``view``; where it would need a copy (a transposed or sliced tensor whose
    strides cannot take the shape) a RuntimeError names ``reshape``, as PyTorch does --
    writes through a copy would never reach ``x``.

    >>> import minipool as mp
    >>> mp.arange(6.0).view(2, 3).shape
    (2, 3)
    """
    x = as_tensor(x)
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list)) and not is_int(shape[0]):
        raise TypeError(f"view: expected a shape (ints), got {shape[0]!r}; view(dtype) (the same "
                        f"bits read as another dtype) is not supported: convert the values with "
                        f".to(dtype), or reinterpret t.numpy().view(dtype)")
    out = reshape(x, *shape)
    if x._data.size and not np.may_share_memory(out._data, x._data):
        raise RuntimeError(f"view size is not compatible with input tensor's size and stride "
                           f"(shape {x.shape}, strides in elements "
                           f"{tuple(s // x._data.itemsize for s in x._data.strides)}): at least "
                           f"one dimension spans across two contiguous subspaces. Use "
                           f".reshape(...) instead (as PyTorch says)")
    return out


class Permute(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.transpose(grad, np.argsort(ctx.axes)), None


def permute(x: TensorLike, *axes: Union[int, Sequence[int]]) -> Tensor:
    """Reorder the axes: ``permute(x, 2, 0, 1)`` or ``permute(x, (2, 0, 1))``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.permute(mp.zeros(2, 3, 4), 2, 0, 1).shape
    (4, 2, 3)
    """
    x = as_tensor(x)
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if len(axes) != x.ndim:
        raise ValueError(f"permute: needs {x.ndim} axes for a {x.ndim}-d tensor, got {axes}")
    norm = normalize_dims(axes, x.ndim, "permute")
    if len(norm) != x.ndim:
        raise ValueError(f"permute: {axes} is not a permutation of {x.ndim} axes")
    return Permute.apply(x, tuple(int(a) % x.ndim for a in axes))


def transpose(x: TensorLike, dim0: int = -2, dim1: int = -1) -> Tensor:
    """Swap two axes (by default the last two).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.transpose(mp.zeros(2, 3)).shape
    (3, 2)
    """
    x = as_tensor(x)
    if x.ndim < 2:
        return x
    d0, d1 = (normalize_dims(d, x.ndim, "transpose")[0] for d in (dim0, dim1))
    axes = list(range(x.ndim))
    axes[d0], axes[d1] = axes[d1], axes[d0]
    return Permute.apply(x, tuple(axes))


def flatten(x: TensorLike, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim`` .. ``end_dim`` (inclusive) into one.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.flatten(mp.zeros(2, 3, 4), 1).shape
    (2, 12)
    """
    x = as_tensor(x)
    if x.ndim == 0:
        return reshape(x, (1,))
    s = normalize_dims(start_dim, x.ndim, "flatten")[0]
    e = normalize_dims(end_dim, x.ndim, "flatten")[0]
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    # math.prod: exact Python ints, and a tenth of np.prod's call cost
    shape = x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:]
    return Reshape.apply(x, shape)


def check_unflatten_sizes(sizes: Sequence[int], op: str = "unflatten",
                          name: str = "sizes") -> Tuple[int, ...]:
    """``sizes`` as a non-empty tuple of ints >= 0 with at most one -1 (the size inferred);
    nn.Unflatten checks its ``unflattened_size`` with it at construction, as PyTorch's."""
    if not isinstance(sizes, (tuple, list)) or not all(is_int(n) for n in sizes):
        raise TypeError(f"{op}: {name} must be a tuple of ints, got {sizes!r}")
    if not sizes or any(n < -1 for n in sizes) or list(sizes).count(-1) > 1:
        raise ValueError(f"{op}: {name} must be non-empty sizes >= 0 with at most one -1, "
                         f"got {sizes!r}")
    return tuple(int(n) for n in sizes)


def unflatten(x: TensorLike, dim: int, sizes: Sequence[int]) -> Tensor:
    """Split axis ``dim`` into ``sizes`` (one entry may be -1), as ``torch.unflatten``: the
    inverse of :func:`flatten`.

    >>> import minipool as mp
    >>> mp.unflatten(mp.zeros(4, 6), 1, (2, -1)).shape
    (4, 2, 3)
    """
    x = as_tensor(x)
    if not is_int(dim):
        raise TypeError(f"unflatten: dim must be an int, got {dim!r}")
    given = sizes
    sizes = list(check_unflatten_sizes(sizes))
    shape = x.shape
    if not -len(shape) <= dim < len(shape):
        raise IndexError(f"unflatten: dim {dim} is out of range for an input of {len(shape)} dims")
    d = dim % len(shape)
    known = math.prod(n for n in sizes if n != -1)
    if -1 in sizes and known and shape[d] % known == 0:
        sizes[sizes.index(-1)] = shape[d] // known
    if -1 in sizes or math.prod(sizes) != shape[d]:
        raise ValueError(f"unflatten: sizes {tuple(given)} do not multiply up to dim {dim}'s size "
                         f"{shape[d]} (input shape {tuple(shape)})")
    return Reshape.apply(x, shape[:d] + tuple(sizes) + shape[d + 1:])


def squeeze(x: TensorLike, dim: Dims = None) -> Tensor:
    """Drop length-1 axes (all of them, or only ``dim``).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.squeeze(mp.zeros(1, 3, 1)).shape
    (3,)
    """
    x = as_tensor(x)
    dims = tuple(i for i, n in enumerate(x.shape) if n == 1) if dim is None else \
        tuple(d for d in normalize_dims(dim, x.ndim, "squeeze") if x.shape[d] == 1)
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in dims))


def unsqueeze(x: TensorLike, dim: int) -> Tensor:
    """Insert a length-1 axis at ``dim``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.unsqueeze(mp.zeros(3), 0).shape
    (1, 3)
    """
    x = as_tensor(x)
    if not -(x.ndim + 1) <= dim <= x.ndim:
        raise ValueError(f"unsqueeze: dim {dim} is out of range for a {x.ndim}-d tensor")
    dim = dim % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


class BroadcastTo(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, grad):
        from minipool.ops.elementwise import unbroadcast

        return unbroadcast(grad, ctx.in_shape), None


def broadcast_to(x: TensorLike, shape: Sequence[int]) -> Tensor:
    """View ``x`` broadcast to ``shape`` (NumPy's rules); the gradient sums back.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.broadcast_to(mp.tensor([1.0, 2.0]), (2, 2)).numpy()
    array([[1., 2.],
           [1., 2.]], dtype=float32)
    """
    x = as_tensor(x)
    try:
        np.broadcast_shapes(x.shape, tuple(shape))
        np.broadcast_to(np.empty(x.shape, dtype=bool), shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {tuple(shape)}") from None
    return BroadcastTo.apply(x, tuple(shape))


def expand(x: Tensor, *sizes: Union[int, Sequence[int]]) -> Tensor:
    """A broadcast view of ``sizes`` (``expand(2, 3)`` or ``expand((2, 3))``); -1 keeps
    that dimension's size, as in PyTorch."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: {len(sizes)} sizes given for a {x.ndim}-d tensor; "
                         "give at least one per dimension")
    full = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    return broadcast_to(x, full)


def plain_index(idx):
    """Tensors inside an index become arrays."""
    if isinstance(idx, Tensor):
        return idx._data
    if isinstance(idx, tuple):
        return tuple(plain_index(i) for i in idx)
    return idx


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, idx):
        ctx.meta = (x.shape, x.dtype, idx)
        return x[idx]

    @staticmethod
    def backward(ctx, grad):
        shape, dtype, idx = ctx.meta
        out = np.zeros(shape, dtype=grad.dtype)
        np.add.at(out, idx, grad)  # unbuffered, so repeated indices accumulate
        return out, None


def getitem(x, idx):
    x = as_tensor(x)
    idx = plain_index(idx)
    try:
        x._data[idx]
    except IndexError as e:
        raise IndexError(f"index {idx!r} is invalid for a tensor of shape {x.shape}: {e}") from None
    return GetItem.apply(x, idx)


class Cat(Function):
    @staticmethod
    def forward(ctx, axis, *xs):
        ctx.axis = axis
        ctx.splits = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        return (None, *np.split(grad, ctx.splits, axis=ctx.axis))


def cat(tensors: Sequence[TensorLike], dim: int = 0) -> Tensor:
    """Join tensors along an existing axis (``concatenate``).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.cat([mp.zeros(2, 3), mp.ones(1, 3)]).shape
    (3, 3)
    """
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: needs at least one tensor")
    tensors = promoted(*tensors)
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated; use stack")
    axis = normalize_dims(dim, ndim, "cat")[0]
    for i, t in enumerate(tensors):
        if t.ndim != ndim or t.shape[:axis] + t.shape[axis + 1:] != \
                tensors[0].shape[:axis] + tensors[0].shape[axis + 1:]:
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, which does not match "
                             f"{tensors[0].shape} outside dim {axis}")
    return Cat.apply(axis, *tensors)


def stack(tensors: Sequence[TensorLike], dim: int = 0) -> Tensor:
    """Join same-shape tensors along a new axis.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.stack([mp.zeros(2, 3), mp.ones(2, 3)]).shape
    (2, 2, 3)
    """
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, expected {tensors[0].shape}")
    return cat([unsqueeze(t, dim) for t in tensors], dim=dim)


def t(x: TensorLike) -> Tensor:
    """A matrix's transpose; a 0-d or 1-d tensor comes back as it is (a view), as in PyTorch.

    >>> import minipool as mp
    >>> mp.t(mp.zeros(2, 3)).shape
    (3, 2)
    """
    x = as_tensor(x)
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor with <= 2 dimensions, got {x.ndim} (shape "
                         f"{x.shape}); use transpose(dim0, dim1) or permute")
    return transpose(x, 0, 1) if x.ndim == 2 else Reshape.apply(x, x.shape)


class Repeat(Function):
    """Tile the input ``reps`` times along each axis; the gradient sums over the tiles."""

    @staticmethod
    def forward(ctx, x, reps):
        ctx.in_shape = x.shape
        ctx.reps = reps
        return np.tile(x.reshape((1,) * (len(reps) - x.ndim) + x.shape), reps)

    @staticmethod
    def backward(ctx, grad):
        reps, in_shape = ctx.reps, ctx.in_shape
        tile = (1,) * (len(reps) - len(in_shape)) + in_shape
        # output axis i is (tile number, position in the tile): sum over the tile numbers
        split = [d for r, n in zip(reps, tile) for d in (r, n)]
        summed = grad.reshape(split).sum(axis=tuple(range(0, 2 * len(reps), 2)))
        return summed.reshape(in_shape), None


def repeat(x: TensorLike, *sizes: Union[int, Sequence[int]]) -> Tensor:
    """Tile ``x``: ``repeat(x, 2, 3)`` repeats it twice along dim 0 and three times along
    dim 1 (``np.tile``); ``sizes`` may be longer than x's dims (new leading dims).

    >>> import minipool as mp
    >>> mp.tensor([1.0, 2.0]).repeat(2, 2).numpy()
    array([[1., 2., 1., 2.],
           [1., 2., 1., 2.]], dtype=float32)
    """
    x = as_tensor(x)
    if not sizes:
        raise TypeError("repeat: missing the sizes (one per dimension, e.g. x.repeat(2, 1))")
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"repeat: sizes must be non-negative ints, got {tuple(sizes)}")
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} sizes given for a {x.ndim}-d tensor; the number "
                         "of repeat sizes can not be smaller than the number of dimensions")
    return Repeat.apply(x, tuple(int(s) for s in sizes))


class Narrow(Function):
    """Elements ``start:stop`` along ``axis`` (a view); the gradient lands in that slice."""

    @staticmethod
    def forward(ctx, x, axis, start, stop):
        ctx.meta = (x.shape, axis, start, stop)
        return x[(slice(None),) * axis + (slice(start, stop),)]

    @staticmethod
    def backward(ctx, grad):
        shape, axis, start, stop = ctx.meta
        out = np.zeros(shape, dtype=grad.dtype)
        out[(slice(None),) * axis + (slice(start, stop),)] = grad
        return out, None, None, None


def _pieces(x, axis, sizes):
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    return tuple(Narrow.apply(x, axis, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]))


def _split_axis(x, dim, name):
    if x.ndim == 0:
        raise ValueError(f"{name}: a 0-d tensor cannot be split; it has no dimension")
    return _dim_index(dim, x.ndim, name)


def split(x: TensorLike, split_size_or_sections: Union[int, Sequence[int]],
          dim: int = 0) -> Tuple[Tensor, ...]:
    """Cut ``x`` along ``dim`` into pieces of ``split_size_or_sections`` elements (an int:
    the last piece may be shorter) or of the listed sizes (which must add up to the
    length of ``dim``).  A tuple of views; each piece's gradient lands in its slice.

    >>> import minipool as mp
    >>> [p.tolist() for p in mp.arange(5.0).split(2)]
    [[0.0, 1.0], [2.0, 3.0], [4.0]]
    >>> [p.shape for p in mp.zeros(2, 5).split([1, 4], dim=1)]
    [(2, 1), (2, 4)]
    """
    x = as_tensor(x)
    axis = _split_axis(x, dim, "split")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)) and not isinstance(split_size_or_sections, bool):
        size = int(split_size_or_sections)
        if size < 0 or (size == 0 and n != 0):
            raise ValueError(f"split: split_size must be positive (0 only for a dimension of "
                             f"size 0), got {size} for dim {dim} of size {n}")
        count = max(-(-n // size), 1) if size else 1
        sizes = [size] * (count - 1) + [n - size * (count - 1)]
    else:
        if not isinstance(split_size_or_sections, (list, tuple, np.ndarray)):
            raise TypeError(f"split: split_size_or_sections must be an int or a list of ints, "
                            f"got {split_size_or_sections!r}")
        sizes = list(split_size_or_sections)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in sizes):
            raise ValueError(f"split: split_size_or_sections must be an int or a list of "
                             f"non-negative ints, got {split_size_or_sections!r}")
        if sum(sizes) != n:
            raise ValueError(f"split: split_size_or_sections {sizes} must add up to {n}, the "
                             f"size of dim {dim}, but add up to {sum(sizes)}")
    return _pieces(x, axis, sizes)


def tensor_split(x: TensorLike, indices_or_sections: Union[int, Sequence[int]],
                 dim: int = 0) -> Tuple[Tensor, ...]:
    """Cut ``x`` along ``dim`` into ``n`` pieces as even as can be (an int: the first
    ``size % n`` one element longer), or at the listed indices (``x[:i0]``, ``x[i0:i1]``,
    ..., ``x[ik:]``, clamped as slices), as ``torch.tensor_split``.  Views, as :func:`split`.

    >>> import minipool as mp
    >>> [p.tolist() for p in mp.arange(5.0).tensor_split(3)]
    [[0.0, 1.0], [2.0, 3.0], [4.0]]
    >>> [p.tolist() for p in mp.arange(5.0).tensor_split([1, 4])]
    [[0.0], [1.0, 2.0, 3.0], [4.0]]
    """
    x = as_tensor(x)
    axis = _split_axis(x, dim, "tensor_split")
    n = x.shape[axis]
    if is_int(indices_or_sections):
        sections = int(indices_or_sections)
        if sections < 1:
            raise ValueError(f"tensor_split: the number of sections must be >= 1, got {sections}")
        sizes = [n // sections + (i < n % sections) for i in range(sections)]
        return _pieces(x, axis, sizes)
    if not isinstance(indices_or_sections, (list, tuple)) or not all(
            is_int(i) for i in indices_or_sections):
        raise TypeError(f"tensor_split: indices_or_sections must be an int or a list of ints, "
                        f"got {indices_or_sections!r}")
    cuts = [0] + [min(max(int(i) + (n if i < 0 else 0), 0), n) for i in indices_or_sections] + [n]
    return tuple(Narrow.apply(x, axis, a, max(a, b)) for a, b in zip(cuts[:-1], cuts[1:]))


def chunk(x: TensorLike, chunks: int, dim: int = 0) -> Tuple[Tensor, ...]:
    """Cut ``x`` along ``dim`` into ``chunks`` pieces of ``ceil(size / chunks)`` elements;
    as in PyTorch there may be fewer pieces than asked (6 in 4 chunks gives 3 of 2).

    >>> import minipool as mp
    >>> [p.tolist() for p in mp.arange(5.0).chunk(3)]
    [[0.0, 1.0], [2.0, 3.0], [4.0]]
    """
    x = as_tensor(x)
    chunks = single_int(chunks, "chunks", "chunk")
    axis = _split_axis(x, dim, "chunk")
    n = x.shape[axis]
    if n == 0:  # PyTorch gives `chunks` empty pieces here
        return _pieces(x, axis, [0] * int(chunks))
    return split(x, -(-n // int(chunks)), axis)


def _each_dim(dims, ndim, op):
    """Every entry of ``dims`` (an int or a sequence) as an axis index, repeats kept."""
    dims = [dims] if isinstance(dims, (int, np.integer)) else list(dims)
    return tuple(normalize_dims(d, ndim, op)[0] for d in dims)


class Flip(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return np.flip(x, axes).copy()  # a copy, as PyTorch's flip

    @staticmethod
    def backward(ctx, grad):
        return np.flip(grad, ctx.axes).copy(), None


def flip(x: TensorLike, dims: Union[int, Sequence[int]]) -> Tensor:
    """Reverse the order of elements along ``dims`` (a copy), as ``torch.flip``.

    >>> import minipool as mp
    >>> mp.flip(mp.tensor([[1, 2], [3, 4]]), [1]).tolist()
    [[2, 1], [4, 3]]
    """
    x = as_tensor(x)
    axes = _each_dim(dims, x.ndim, "flip")
    if len(set(axes)) != len(axes):
        raise ValueError(f"flip: dims has duplicates: {dims}")
    return Flip.apply(x, tuple(axes))


class Roll(Function):
    @staticmethod
    def forward(ctx, x, shifts, axes):
        ctx.shifts, ctx.axes = shifts, axes
        return np.roll(x, shifts, axes)

    @staticmethod
    def backward(ctx, grad):
        return np.roll(grad, tuple(-s for s in ctx.shifts), ctx.axes), None, None


def roll(x: TensorLike, shifts: Union[int, Sequence[int]],
         dims: Union[int, Sequence[int], None] = None) -> Tensor:
    """Shift elements along ``dims`` by ``shifts`` (cyclically); with ``dims=None`` the
    flattened tensor is rolled and the shape restored, as ``torch.roll``.

    >>> import minipool as mp
    >>> mp.roll(mp.tensor([1, 2, 3, 4]), 1).tolist()
    [4, 1, 2, 3]
    """
    x = as_tensor(x)
    shift_list = list(shifts) if isinstance(shifts, (tuple, list)) else [shifts]
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in shift_list):
        raise TypeError(f"roll: shifts must be an int or a sequence of ints, got {shifts!r}")
    if dims is None:
        if len(shift_list) != 1:
            raise ValueError(f"roll: without dims, shifts must be one int, got {shifts!r}")
        return reshape(Roll.apply(reshape(x, (-1,)), (int(shift_list[0]),), (0,)), x.shape)
    axes = _each_dim(dims, x.ndim, "roll")  # a repeated dim rolls twice, as PyTorch
    if len(axes) != len(shift_list):
        raise ValueError(f"roll: shifts and dims must have the same length, got {len(shift_list)} "
                         f"and {len(axes)}")
    return Roll.apply(x, tuple(int(s) for s in shift_list), tuple(axes))
