"""``pad`` (constant, reflect, replicate, circular; negative amounts crop) and ``one_hot``.

Padding follows PyTorch's convention: ``pad`` lists (left, right) amounts for
the last dimension first, then for the one before it, and so on.  The
non-constant modes map every output position along a padded dimension to an
input position (reflect about the edges without repeating them, repeat the
edge, or wrap around), so one index vector per dimension describes the whole
op: forward gathers with it and backward adds back along it.  A negative amount
simply starts or ends that vector inside the input, which is cropping.
"""
import numbers
from typing import Optional, Sequence

import numpy as np

from minipool._typing import TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["pad", "one_hot"]

MODES = ("constant", "reflect", "replicate", "circular")


def _source_index(size, left, right, mode):
    """Input position feeding each output position of one dimension."""
    positions = np.arange(-left, size + right)
    if mode == "replicate":
        return np.clip(positions, 0, size - 1)
    if mode == "circular":
        # PyTorch crops first, then wraps around what is left
        start = max(-left, 0)
        kept = size - start - max(-right, 0)
        return start + np.mod(np.arange(-max(left, 0), kept + max(right, 0)), kept)
    # reflect: period 2 * (size - 1), folded back; size 1 only arises with no padding
    if size == 1:
        return np.zeros_like(positions)
    period = 2 * (size - 1)
    folded = np.mod(positions, period)
    return np.where(folded < size, folded, period - folded)


class PadFn(Function):
    """Constant padding: a zero-filled (or ``value``-filled) output with the kept
    part of the input copied into its middle; backward slices that part out."""

    @staticmethod
    def forward(ctx, x, pairs, value):
        out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pairs))
        out = np.full(out_shape, value, dtype=x.dtype)
        src = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for n, (lo, hi) in zip(x.shape, pairs))
        dst = tuple(slice(max(lo, 0), m - max(hi, 0)) for m, (lo, hi) in zip(out_shape, pairs))
        out[dst] = x[src]
        ctx.slices = (src, dst, x.shape)
        return out

    @staticmethod
    def backward(ctx, grad):
        src, dst, shape = ctx.slices
        g = np.zeros(shape, dtype=grad.dtype)
        g[src] = grad[dst]
        return g, None, None


class IndexPadFn(Function):
    """Reflect / replicate / circular: a gather along each padded dim; backward scatters-adds."""

    @staticmethod
    def forward(ctx, x, indices):
        out = x
        for axis, index in indices:
            out = np.take(out, index, axis=axis)
        ctx.meta = (x.shape, indices)
        return np.ascontiguousarray(out)

    @staticmethod
    def backward(ctx, grad):
        shape, indices = ctx.meta
        g = grad
        for axis, index in reversed(indices):
            moved = np.moveaxis(g, axis, 0)
            acc = np.zeros((shape[axis],) + moved.shape[1:], dtype=grad.dtype)
            np.add.at(acc, index, moved)
            g = np.moveaxis(acc, 0, axis)
        return np.ascontiguousarray(g), None


def _pad_pairs(pad, ndim):
    """(left, right) per dimension of the input from PyTorch's last-dim-first flat tuple."""
    if isinstance(pad, (Tensor, np.ndarray)):
        pad = np.asarray(pad._data if isinstance(pad, Tensor) else pad).tolist()
    if not isinstance(pad, (tuple, list)):
        raise TypeError(f"pad: pad must be a tuple of ints, got {type(pad).__name__}")
    for amount in pad:
        if isinstance(amount, bool) or not isinstance(amount, numbers.Integral):
            raise TypeError(f"pad: pad must hold ints, got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"pad: the pad tuple needs an even length (left, right per dimension), got {pad!r}")
    if len(pad) // 2 > ndim:
        raise ValueError(f"pad: pad of length {len(pad)} pads {len(pad) // 2} dimensions, but the input "
                         f"has only {ndim} (the length must be <= 2 * input.ndim)")
    pairs = [(0, 0)] * ndim
    for k in range(len(pad) // 2):
        pairs[ndim - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    return pairs


def pad(input: TensorLike, pad: Sequence[int], mode: str = "constant",
        value: Optional[float] = None) -> Tensor:
    """Pad (or, with negative amounts, crop) ``input`` as ``torch.nn.functional.pad``.

    ``pad`` is (left, right) for the last dimension, then (top, bottom) for the one
    before, and so on; up to ``input.ndim`` pairs for mode "constant" (filled with
    ``value``, default 0).  "reflect" (mirror without repeating the edge),
    "replicate" (repeat the edge) and "circular" (wrap around) pad the last 1, 2 or
    3 dimensions of a 2-D/3-D, 3-D/4-D or 4-D/5-D input respectively, as PyTorch.
    Limits as PyTorch: reflect amounts must be < the dimension's size, circular
    ones <= it (after the crop by any negative amount, which circular applies
    first); reflect and replicate need one padded dimension left non-empty.
    Differentiable.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> x = mp.tensor([[[1.0, 2.0, 3.0]]])
    >>> F.pad(x, (2, 1), mode="reflect").numpy()
    array([[[3., 2., 1., 2., 3., 2.]]], dtype=float32)
    >>> F.pad(x, (1, -1), value=9.0).numpy()
    array([[[9., 1., 2.]]], dtype=float32)
    """
    input = as_tensor(input)
    if mode not in MODES:
        raise ValueError(f"pad: mode must be one of {MODES}, got {mode!r}")
    pairs = _pad_pairs(pad, input.ndim)
    count = len(pad) // 2
    if mode == "constant":
        fill = 0 if value is None else value
        if isinstance(fill, bool) or not isinstance(fill, numbers.Real):
            raise TypeError(f"pad: value must be a real number, got {value!r}")
        for axis, (n, (lo, hi)) in enumerate(zip(input.shape, pairs)):
            kept = n - max(-lo, 0) - max(-hi, 0)
            if kept < 0:  # PyTorch crops first: cropping more than there is is an error
                raise ValueError(f"pad: padding ({lo}, {hi}) of dimension {axis} (size {n}) crops "
                                 f"{n - kept} elements, more than there are (a negative size {kept})")
        fill = np.asarray(fill).astype(input.dtype) if input.dtype.kind != "b" else bool(fill)
        return PadFn.apply(input, tuple(pairs), fill)
    if value is not None and value != 0:
        raise ValueError(f"pad: mode {mode!r} takes no value (got value={value!r}); only "
                         "mode='constant' fills with a value")
    if count not in (1, 2, 3) or input.ndim not in (count + 1, count + 2):
        raise ValueError(f"pad: mode {mode!r} with a pad of length {len(pad)} needs a "
                         f"{count + 1}-D or {count + 2}-D input, got {input.ndim}-D (supported: length 2 "
                         "for 2-D/3-D, 4 for 3-D/4-D, 6 for 4-D/5-D inputs)")
    batched = input.ndim == count + 2
    for axis, n in enumerate(input.shape):
        if n == 0 and not (batched and axis == 0):
            raise ValueError(f"pad: mode {mode!r} needs non-empty dimensions (only a batch dimension "
                             f"may be 0), got shape {input.shape}")
    indices, out_sizes = [], []
    for axis in range(input.ndim - count, input.ndim):
        n, (lo, hi) = input.shape[axis], pairs[axis]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(f"pad: reflect padding ({lo}, {hi}) of dimension {axis} must be less than "
                             f"its size {n}")
        out_size = n + lo + hi
        kept = n - max(-lo, 0) - max(-hi, 0)
        if mode == "circular" and (max(lo, 0) > kept or max(hi, 0) > kept) and out_size >= 0:
            # (PyTorch checks against n and then reads overlapping or unset memory)
            raise ValueError(f"pad: circular padding ({lo}, {hi}) of dimension {axis} (size {n}, "
                             f"{max(kept, 0)} left after cropping) must be at most what is left "
                             "after cropping (it would wrap around more than once)")
        if out_size < 0:
            raise ValueError(f"pad: padding ({lo}, {hi}) of dimension {axis} (size {n}) leaves "
                             f"{out_size} elements, a negative size")
        out_sizes.append(out_size)
        if (lo, hi) != (0, 0):
            indices.append((axis, _source_index(n, lo, hi, mode)))
    if mode != "circular" and max(out_sizes) < 1:  # PyTorch's rule: some padded dim stays non-empty
        raise ValueError(f"pad: padding {tuple(pad)} leaves padded dimensions of sizes {out_sizes}; "
                         f"mode {mode!r} needs at least 1 element in one of them")
    if not indices:
        return IndexPadFn.apply(input, ())
    return IndexPadFn.apply(input, tuple(indices))


def one_hot(tensor: TensorLike, num_classes: int = -1) -> Tensor:
    """Int64 one-hot encoding: ``tensor``'s shape plus a last dimension of ``num_classes``
    (-1: ``tensor.max() + 1``), as ``torch.nn.functional.one_hot``.

    >>> import minipool as mp
    >>> import minipool.nn.functional as F
    >>> F.one_hot(mp.tensor([0, 2])).numpy()
    array([[1, 0, 0],
           [0, 0, 1]])
    """
    t = np.asarray(tensor._data if isinstance(tensor, Tensor) else tensor)
    if t.dtype.kind not in "iu":
        raise TypeError(f"one_hot: tensor must hold integer class indices, got dtype {t.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < -1:
        raise ValueError(f"one_hot: num_classes must be -1 or a non-negative int, got {num_classes!r}")
    if t.size and t.min() < 0:
        raise ValueError(f"one_hot: class values must be non-negative, got {int(t.min())}")
    if num_classes == -1:
        if t.size == 0:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass num_classes")
        num_classes = int(t.max()) + 1
    elif t.size and t.max() >= num_classes:
        raise ValueError(f"one_hot: class values must be smaller than num_classes={num_classes}, "
                         f"got {int(t.max())}")
    out = (t[..., None] == np.arange(num_classes)).astype(np.int64)
    return Tensor(out)
