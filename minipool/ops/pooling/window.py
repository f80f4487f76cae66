"""Sliding-window pooling: max, min, average, sum and LP, in 1, 2 and 3 dims.

Names, argument order and defaults follow ``torch.nn.functional``; every op
also takes ``data_format`` ("channels_first", the default, or
"channels_last" for NHWC-style input, as Keras uses), Keras's string
padding ("valid" or "same", any case: TensorFlow's "VALID"/"SAME" too) and,
as keywords, Keras's ``strides=`` and ``pool_size=`` (TensorFlow's ``ksize=``)
for ``stride`` and ``kernel_size``.  Semantics (PyTorch 2.x is the contract):

* output length ``floor((in + 2p - d(k-1) - 1 [+ s-1 if ceil_mode]) / s) + 1``;
  with ceil_mode the last window must start inside the input or the left
  padding.  padding must be at most half the *effective* kernel
  ``d(k-1)+1`` (PyTorch 2.13's 2-d/3-d check ignores dilation, a known bug);
  stride defaults to kernel_size.
* max: ``v > m or isnan(v)`` from -inf, so NaN propagates and the first tie
  wins; min mirrors it (``v < m or isnan(v)`` from +inf).  Indices are flat
  positions in the unpadded input plane (int64), as PyTorch returns them.
* a window holding no real cell (possible with dilation; PyTorch's defect in
  docs/semantics.md section 7) gives -inf (max) / +inf (min), index -1 and no
  gradient.
* average: sum / divisor_override, or / the window clipped to the padded
  input (count_include_pad=True; the ceil_mode overhang never counts), or /
  the real cells (count_include_pad=False).  padding="same" (TensorFlow's
  split, extra cell after) always divides by the real cells, as Keras does.
"""
import functools
from typing import Optional, Union

import numpy as np

from minipool._typing import IntOrTuple, PoolOutput, TensorLike
from minipool.ops.elementwise import as_tensor
from minipool.ops.pooling._functions import ExtremePool, PowerSumPool
from minipool.ops.pooling._geometry import FLOAT_DTYPES, MAX_DTYPES, check_dtype, window_plan
from minipool.tensor import Function, Tensor

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "min_pool1d", "min_pool2d", "min_pool3d",
           "avg_pool1d", "avg_pool2d", "avg_pool3d", "sum_pool1d", "sum_pool2d", "sum_pool3d",
           "lp_pool1d", "lp_pool2d", "lp_pool3d"]


def _plan(op, input, rank, kernel_size, stride, padding, dilation, ceil_mode, data_format,
          divisor, dtypes):
    x = as_tensor(input)
    check_dtype(op, x.dtype, dtypes)
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"{op}: ceil_mode must be a bool, got {ceil_mode!r}")
    plan = window_plan(op, x.shape, rank, kernel_size, stride, padding, dilation,
                       bool(ceil_mode), data_format, divisor)
    return x, plan


def _extreme(op, is_min, input, rank, kernel_size, stride, padding, dilation, ceil_mode,
             return_indices, data_format):
    x, plan = _plan(op, input, rank, kernel_size, stride, padding, dilation, ceil_mode,
                    data_format, "one", MAX_DTYPES)
    return ExtremePool.apply(x, plan=plan, is_min=is_min, return_indices=bool(return_indices))


def _divisor_rule(op, count_include_pad, divisor_override):
    if divisor_override is None:
        return "span" if count_include_pad else "count"
    if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, np.integer)):
        raise TypeError(f"{op}: divisor_override must be an int or None, got {divisor_override!r}")
    if divisor_override == 0:
        raise ValueError(f"{op}: divisor_override must not be 0")
    return ("override", int(divisor_override))


def _average(op, input, rank, kernel_size, stride, padding, ceil_mode, count_include_pad,
             divisor_override, data_format):
    divisor = _divisor_rule(op, count_include_pad, divisor_override)
    x, plan = _plan(op, input, rank, kernel_size, stride, padding, 1, ceil_mode, data_format,
                    divisor, FLOAT_DTYPES)
    return PowerSumPool.apply(x, plan=plan)


def _sum(op, input, rank, kernel_size, stride, padding, ceil_mode, data_format):
    x, plan = _plan(op, input, rank, kernel_size, stride, padding, 1, ceil_mode, data_format,
                    "one", FLOAT_DTYPES)
    return PowerSumPool.apply(x, plan=plan)


class _LpAbs(Function):
    """|x| for the +-inf LP norms, with PyTorch's abs gradient: grad * sign(x), where
    sign(NaN) is 0 (so a NaN cell that loses passes 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        if ctx.requires_grad:
            ctx.sign = np.nan_to_num(np.sign(x), nan=0.0)
        return np.abs(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.sign


def _lp(op, input, rank, norm_type, kernel_size, stride, ceil_mode, data_format):
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float, np.integer,
                                                                 np.floating)):
        raise TypeError(f"{op}: norm_type must be a number, got {norm_type!r}")
    p = float(norm_type)
    if np.isinf(p):
        # PyTorch's limits: +inf is max pooling of |x|, -inf min pooling of |x|
        # (PyTorch writes it -max_pool(-|x|): the same values, ties and NaN rule)
        x = as_tensor(input)
        check_dtype(op, x.dtype, FLOAT_DTYPES)
        return _extreme(op, p < 0, _LpAbs.apply(x), rank, kernel_size, stride, 0, 1,
                        ceil_mode, False, data_format)
    if not p > 0:
        raise ValueError(f"{op}: norm_type must be > 0 (or +-inf), got {norm_type!r}")
    x, plan = _plan(op, input, rank, kernel_size, stride, 0, 1, ceil_mode, data_format, "one",
                    FLOAT_DTYPES)
    return PowerSumPool.apply(x, plan=plan, p=p)


# Keras / TensorFlow spellings of PyTorch's arguments, taken as keywords: strides=2 or
# pool_size=(2, 2) / ksize=2 reach stride / kernel_size (padding "VALID"/"SAME" is case-free).
_KERAS_NAMES = (("pool_size", "kernel_size"), ("ksize", "kernel_size"), ("strides", "stride"))


def _keras_keywords(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        if "strides" in kwargs or "pool_size" in kwargs or "ksize" in kwargs:
            for keras_name, name in _KERAS_NAMES:
                if keras_name in kwargs:
                    if name in kwargs:
                        raise TypeError(f"{fn.__name__}: got both {keras_name}= (Keras's name) and "
                                        f"{name}= (minipool's and PyTorch's); give one")
                    kwargs[name] = kwargs.pop(keras_name)
        return fn(*args, **kwargs)
    return call


# ----------------------------------------------------------------------------- max
@_keras_keywords
def max_pool1d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False, return_indices: bool = False,
               data_format: Optional[str] = None) -> PoolOutput:
    """1-d max pooling of (C, L) or (N, C, L); see :func:`max_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.max_pool1d(mp.tensor([[1.0, 3.0, 2.0, 5.0, 4.0]]), 2).numpy()
    array([[3., 5.]], dtype=float32)
    """
    return _extreme("max_pool1d", False, input, 1, kernel_size, stride, padding, dilation,
                    ceil_mode, return_indices, data_format)


@_keras_keywords
def max_pool2d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False, return_indices: bool = False,
               data_format: Optional[str] = None) -> PoolOutput:
    """2-d max pooling of (C, H, W) or (N, C, H, W) (or NHWC with data_format="channels_last").

    ``return_indices=True`` also returns int64 indices, each the flat position
    ``h * W + w`` of the chosen cell in its input plane (-1 for a window with
    no real cell), equal to PyTorch's.  Integer inputs (int32, int64, uint8)
    pool like floats; padding is the dtype's lowest value.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> x = mp.arange(16.0).reshape(1, 1, 4, 4)
    >>> y, idx = F.max_pool2d(x, 2, return_indices=True)
    >>> y.numpy()[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> idx.numpy()[0, 0]
    array([[ 5,  7],
           [13, 15]])
    """
    return _extreme("max_pool2d", False, input, 2, kernel_size, stride, padding, dilation,
                    ceil_mode, return_indices, data_format)


@_keras_keywords
def max_pool3d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False, return_indices: bool = False,
               data_format: Optional[str] = None) -> PoolOutput:
    """3-d max pooling of (C, D, H, W) or (N, C, D, H, W); see :func:`max_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.max_pool3d(mp.arange(8.0).reshape(1, 2, 2, 2), 2).numpy().ravel()
    array([7.], dtype=float32)
    """
    return _extreme("max_pool3d", False, input, 3, kernel_size, stride, padding, dilation,
                    ceil_mode, return_indices, data_format)


# ----------------------------------------------------------------------------- min
@_keras_keywords
def min_pool1d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False, return_indices: bool = False,
               data_format: Optional[str] = None) -> PoolOutput:
    """1-d min pooling; see :func:`min_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.min_pool1d(mp.tensor([[1.0, 3.0, 2.0, 5.0]]), 2).numpy()
    array([[1., 2.]], dtype=float32)
    """
    return _extreme("min_pool1d", True, input, 1, kernel_size, stride, padding, dilation,
                    ceil_mode, return_indices, data_format)


@_keras_keywords
def min_pool2d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False, return_indices: bool = False,
               data_format: Optional[str] = None) -> PoolOutput:
    """2-d min pooling: max pooling's rules mirrored (``v < m or isnan(v)`` from +inf,
    so NaN propagates and the first tie wins; padding counts as +inf).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.min_pool2d(mp.arange(16.0).reshape(1, 4, 4), 2).numpy()
    array([[[ 0.,  2.],
            [ 8., 10.]]], dtype=float32)
    """
    return _extreme("min_pool2d", True, input, 2, kernel_size, stride, padding, dilation,
                    ceil_mode, return_indices, data_format)


@_keras_keywords
def min_pool3d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, dilation: IntOrTuple = 1,
               ceil_mode: bool = False, return_indices: bool = False,
               data_format: Optional[str] = None) -> PoolOutput:
    """3-d min pooling; see :func:`min_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.min_pool3d(mp.arange(8.0).reshape(1, 2, 2, 2), 2).numpy().ravel()
    array([0.], dtype=float32)
    """
    return _extreme("min_pool3d", True, input, 3, kernel_size, stride, padding, dilation,
                    ceil_mode, return_indices, data_format)


# ----------------------------------------------------------------------------- average
@_keras_keywords
def avg_pool1d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: Optional[int] = None,
               data_format: Optional[str] = None) -> Tensor:
    """1-d average pooling; see :func:`avg_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.avg_pool1d(mp.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]), 2, ceil_mode=True).numpy()
    array([[1.5, 3.5, 5. ]], dtype=float32)
    """
    return _average("avg_pool1d", input, 1, kernel_size, stride, padding, ceil_mode,
                    count_include_pad, divisor_override, data_format)


@_keras_keywords
def avg_pool2d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: Optional[int] = None,
               data_format: Optional[str] = None) -> Tensor:
    """2-d average pooling with PyTorch's divisor rules.

    The divisor is ``divisor_override`` if given; else, with
    ``count_include_pad=True``, the window clipped to the padded input (so
    padding counts but the ceil_mode overhang does not); else the number of
    real cells.  ``padding="same"`` divides by the real cells (Keras).
    Only float32/float64 (PyTorch's integer average truncates; minipool
    raises TypeError instead).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.avg_pool2d(mp.ones(1, 1, 3, 3), 2, padding=1).numpy()[0, 0]
    array([[0.25, 0.5 ],
           [0.5 , 1.  ]], dtype=float32)
    """
    return _average("avg_pool2d", input, 2, kernel_size, stride, padding, ceil_mode,
                    count_include_pad, divisor_override, data_format)


@_keras_keywords
def avg_pool3d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: Optional[int] = None,
               data_format: Optional[str] = None) -> Tensor:
    """3-d average pooling; see :func:`avg_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.avg_pool3d(mp.arange(8.0).reshape(1, 2, 2, 2), 2).numpy().ravel()
    array([3.5], dtype=float32)
    """
    return _average("avg_pool3d", input, 3, kernel_size, stride, padding, ceil_mode,
                    count_include_pad, divisor_override, data_format)


# ----------------------------------------------------------------------------- sum
@_keras_keywords
def sum_pool1d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, ceil_mode: bool = False,
               data_format: Optional[str] = None) -> Tensor:
    """1-d sum pooling; see :func:`sum_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sum_pool1d(mp.tensor([[1.0, 2.0, 3.0, 4.0]]), 2).numpy()
    array([[3., 7.]], dtype=float32)
    """
    return _sum("sum_pool1d", input, 1, kernel_size, stride, padding, ceil_mode, data_format)


@_keras_keywords
def sum_pool2d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, ceil_mode: bool = False,
               data_format: Optional[str] = None) -> Tensor:
    """2-d sum pooling: the sum of each window's real cells (padding adds nothing).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sum_pool2d(mp.ones(1, 4, 4), 2).numpy()
    array([[[4., 4.],
            [4., 4.]]], dtype=float32)
    """
    return _sum("sum_pool2d", input, 2, kernel_size, stride, padding, ceil_mode, data_format)


@_keras_keywords
def sum_pool3d(input: TensorLike, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
               padding: Union[IntOrTuple, str] = 0, ceil_mode: bool = False,
               data_format: Optional[str] = None) -> Tensor:
    """3-d sum pooling; see :func:`sum_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.sum_pool3d(mp.ones(1, 2, 2, 2), 2).numpy().ravel()
    array([8.], dtype=float32)
    """
    return _sum("sum_pool3d", input, 3, kernel_size, stride, padding, ceil_mode, data_format)


# ----------------------------------------------------------------------------- LP
@_keras_keywords
def lp_pool1d(input: TensorLike, norm_type: float, kernel_size: IntOrTuple,
              stride: Optional[IntOrTuple] = None, ceil_mode: bool = False,
              data_format: Optional[str] = None) -> Tensor:
    """1-d power-average pooling; see :func:`lp_pool2d`.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.lp_pool1d(mp.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]), 2, 2, ceil_mode=True).numpy()
    array([[2.236068, 5.      , 5.      ]], dtype=float32)
    """
    return _lp("lp_pool1d", input, 1, norm_type, kernel_size, stride, ceil_mode, data_format)


@_keras_keywords
def lp_pool2d(input: TensorLike, norm_type: float, kernel_size: IntOrTuple,
              stride: Optional[IntOrTuple] = None, ceil_mode: bool = False,
              data_format: Optional[str] = None) -> Tensor:
    """2-d power-average pooling: ``(sum of x**p over the window's real cells) ** (1/p)``.

    ``norm_type`` inf / -inf is the max / min of ``|x|`` (max/min pooling's
    rules), as in PyTorch.  Deliberate difference from PyTorch: with ``ceil_mode=True`` PyTorch
    rescales a partial window by ``kernel cells / real cells`` (it computes
    an average and multiplies by the full kernel size), so
    ``torch.nn.functional.lp_pool1d([1..5], 2, 2, ceil_mode=True)`` ends with
    7.071 where the norm of ``[5]`` is 5; minipool returns 5.  Whole windows
    agree.  The gradient ``x**(p-1) / out**(p-1)`` is 0 for a window whose
    output is 0 (PyTorch gives NaN there when p < 1).  Negative inputs with a
    non-integer ``p`` give NaN, as ``x ** p`` does; a cell that no window reads
    gets gradient 0 (it cannot change the output), where PyTorch's gradient
    ``0 * p * x**(p-1)`` is NaN for such a cell when it is negative (or 0 with
    ``p < 1``): e.g. the last cell of ``lp_pool1d([0.5, -1, 2, 3, -4], 1.5, 2)``.

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.lp_pool2d(mp.full((1, 2, 2), 2.0), 2, 2).numpy()
    array([[[4.]]], dtype=float32)
    """
    return _lp("lp_pool2d", input, 2, norm_type, kernel_size, stride, ceil_mode, data_format)


@_keras_keywords
def lp_pool3d(input: TensorLike, norm_type: float, kernel_size: IntOrTuple,
              stride: Optional[IntOrTuple] = None, ceil_mode: bool = False,
              data_format: Optional[str] = None) -> Tensor:
    """3-d power-average pooling of (C, D, H, W) or (N, C, D, H, W); see :func:`lp_pool2d`
    (the same rules: PyTorch's for whole windows and for inf/-inf norms).

    >>> import minipool as mp, minipool.nn.functional as F
    >>> F.lp_pool3d(mp.full((1, 2, 2, 2), 1.0), 2, 2).numpy().ravel()
    array([2.828427], dtype=float32)
    """
    return _lp("lp_pool3d", input, 3, norm_type, kernel_size, stride, ceil_mode, data_format)
