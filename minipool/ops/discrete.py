"""Ops on integer values and categories, as PyTorch has them: unique, bincount, multinomial.

None of them is differentiable (their results are indices and counts; ``unique`` of a float
tensor gives values without a graph, as PyTorch's does).
"""
import builtins
from typing import Any, Optional, Tuple, Union

import numpy as np

from minipool import _random
from minipool._typing import TensorLike
from minipool._validate import named_allocation
from minipool.ops.elementwise import tensor_argument
from minipool.tensor import Tensor

__all__ = ["unique", "bincount", "multinomial"]


def _flag(value, name, op):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")
    return builtins.bool(value)


def unique(input: TensorLike, sorted: bool = True, return_inverse: bool = False,
           return_counts: bool = False, dim: Optional[int] = None) -> Union[Tensor, Tuple[Tensor, ...]]:
    """The distinct values of ``input`` in ascending order (flattened when ``dim`` is None, else
    the distinct slices along ``dim``), with the int64 ``inverse`` indices (input's shape, or
    ``input.shape[dim]`` long) and ``counts`` when asked, in that order, as ``torch.unique``.
    NaNs are all distinct, as in PyTorch.

    >>> import minipool as mp
    >>> values, counts = mp.unique(mp.tensor([3, 1, 3, 2]), return_counts=True)
    >>> values.tolist(), counts.tolist()
    ([1, 2, 3], [1, 1, 2])
    """
    op = "unique"
    x = tensor_argument(op, "input", input)
    _flag(sorted, "sorted", op)  # the result is sorted either way (PyTorch's CPU result is too)
    want_inverse, want_counts = _flag(return_inverse, "return_inverse", op), _flag(return_counts, "return_counts", op)
    a = x.numpy()
    if dim is None:
        flat = a.reshape(-1)
        order = np.argsort(flat, kind="stable")
        ordered = flat[order]
        # a new group starts where the value changes; NaN != NaN, so every NaN is its own group
        starts = np.ones(ordered.size, dtype=builtins.bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        inverse_shape = a.shape
    else:
        if isinstance(dim, builtins.bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{op}: dim must be an int or None, got {dim!r}")
        if a.ndim == 0 or not -a.ndim <= dim < a.ndim:
            raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {a.ndim} dimensions")
        moved = np.moveaxis(a, int(dim), 0)
        rows = moved.reshape(moved.shape[0], -1)
        order = np.lexsort(rows.T[::-1]) if rows.shape[1] else np.arange(rows.shape[0])
        ordered_rows = rows[order]
        starts = np.ones(rows.shape[0], dtype=builtins.bool)
        starts[1:] = np.any(ordered_rows[1:] != ordered_rows[:-1], axis=1)
        inverse_shape = (rows.shape[0],)
    group = np.cumsum(starts) - 1
    firsts = order[starts]
    if dim is None:
        values = flat[firsts]
    else:
        values = np.moveaxis(np.take(moved, firsts, axis=0), 0, int(dim))
    out = [Tensor(np.ascontiguousarray(values))]
    if want_inverse:
        inverse = np.empty(order.size, dtype=np.int64)
        inverse[order] = group
        out.append(Tensor(inverse.reshape(inverse_shape)))
    if want_counts:
        out.append(Tensor(np.bincount(group, minlength=firsts.size).astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(input: TensorLike, weights: Optional[TensorLike] = None, minlength: int = 0) -> Tensor:
    """How often each value 0, 1, ..., max(input) occurs in the 1-D non-negative integer
    ``input`` (at least ``minlength`` bins), or the sum of ``weights`` per value, as
    ``torch.bincount`` (int64 counts; sums in float32 for float32 weights, else float64).

    >>> import minipool as mp
    >>> mp.bincount(mp.tensor([0, 2, 2, 5])).tolist()
    [1, 0, 2, 0, 0, 1]
    """
    op = "bincount"
    x = tensor_argument(op, "input", input)
    if x.ndim != 1:
        raise RuntimeError(f"{op}: input must be 1-D, got shape {x.shape}")
    if x.dtype.kind not in "iu":  # PyTorch's NotImplementedError (a RuntimeError) for float/bool
        raise NotImplementedError(f"{op}: input must be an integer tensor, got dtype {x.dtype}")
    if isinstance(minlength, builtins.bool) or not isinstance(minlength, (int, np.integer)) or minlength < 0:
        raise RuntimeError(f"{op}: minlength must be an int >= 0, got {minlength!r}")
    a = x.numpy().astype(np.int64)
    if a.size and a.min() < 0:
        raise RuntimeError(f"{op}: input must hold non-negative values, found {int(a.min())}")
    asked = f"minlength={minlength} and max(input)={int(a.max()) if a.size else None}"
    w = None if weights is None else tensor_argument(op, "weights", weights)
    if w is not None and w.shape != x.shape:
        raise RuntimeError(f"{op}: weights must have the input's shape {x.shape}, got {w.shape}")
    if w is None or a.size == 0:  # PyTorch: an empty input gives int64 zeros, weights or not
        with named_allocation(op, asked):
            return Tensor(np.bincount(a, minlength=int(minlength)).astype(np.int64))
    # PyTorch: float32 weights give float32 sums, anything else float64
    dtype = np.float32 if w.dtype == np.float32 else np.float64
    with named_allocation(op, asked):
        sums = np.zeros(builtins.max(int(minlength), int(a.max()) + 1), dtype=np.float64)
    np.add.at(sums, a, w.numpy().astype(np.float64))
    return Tensor(sums.astype(dtype))


def multinomial(input: TensorLike, num_samples: int, replacement: bool = False, *,
                generator: Any = None) -> Tensor:
    """``num_samples`` int64 category indices per row of the non-negative weights ``input``
    (1-D, or 2-D: one draw per row), each category with probability proportional to its
    weight, as ``torch.multinomial``.  Without replacement a category is drawn at most once
    (in the order drawn; once the non-zero weights are used up, the zero-weight categories
    follow in a random order, as in PyTorch), so ``num_samples`` may not exceed the categories.
    ``generator`` as in ``mp.randn``; the draws follow minipool's generator, not PyTorch's.

    >>> import minipool as mp
    >>> mp.multinomial(mp.tensor([0.0, 1.0, 0.0]), 2, replacement=True).tolist()
    [1, 1]
    """
    op = "multinomial"
    x = tensor_argument(op, "input", input)
    if x.dtype.kind != "f":
        raise RuntimeError(f"{op}: input must be a float tensor of weights, got dtype {x.dtype}")
    if x.ndim not in (1, 2):
        raise RuntimeError(f"{op}: input must be 1-D or 2-D (rows of weights), got shape {x.shape}")
    if isinstance(num_samples, builtins.bool) or not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
        raise RuntimeError(f"{op}: num_samples must be an int > 0, got {num_samples!r}")
    with_replacement = _flag(replacement, "replacement", op)
    w = x.numpy().astype(np.float64).reshape(-1, x.shape[-1])
    if w.shape[1] == 0:
        raise RuntimeError(f"{op}: input has no categories (its last dimension is 0)")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise RuntimeError(f"{op}: input (the weights) must be finite and >= 0; found inf, NaN or "
                           "a negative weight")
    totals = w.sum(axis=1)
    if np.any(totals <= 0):
        raise RuntimeError(f"{op}: every row of weights needs a positive sum; a row sums to 0")
    if not with_replacement and num_samples > w.shape[1]:
        raise RuntimeError(f"{op}: cannot draw num_samples={num_samples} > {w.shape[1]} categories "
                           "without replacement (pass replacement=True)")
    rng = _random.resolve(generator, op)
    n = int(num_samples)
    with named_allocation(op, f"num_samples={n}"):
        return Tensor(_draw(rng, w, n, with_replacement).reshape(x.shape[:-1] + (n,)))


def _draw(rng, w, n, with_replacement):
    """(rows, n) int64 category indices drawn from the rows of weights ``w``."""
    if with_replacement:
        cdf = np.cumsum(w, axis=1)
        u = rng.random((w.shape[0], n)) * cdf[:, -1:]
        out = np.empty((w.shape[0], n), dtype=np.int64)
        for r in range(w.shape[0]):
            idx = np.searchsorted(cdf[r], u[r], side="right")
            # rounding may put u at the very top: that draw belongs to the last non-zero weight
            out[r] = np.minimum(idx, np.flatnonzero(w[r])[-1])
    else:
        # exponential race: weight / Exp(1) keys, largest first, is drawing without replacement
        # in proportion to the weights left; zero weights get negative keys: last, in random order
        keys = np.where(w > 0, w / rng.exponential(size=w.shape), -rng.random(w.shape))
        out = np.argsort(-keys, axis=1, kind="stable")[:, :n].astype(np.int64)
    return out
