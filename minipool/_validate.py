"""Argument checks shared by ops, layers, loaders and schedulers: one wording everywhere.

Every message starts with the op or layer that was called and names the argument and its
limit, e.g. ``max_pool2d: stride must be >= 1, got 0``.  The checks are cheap (a few
isinstance tests); they run on every call, and ops cache what they build from the result.

>>> from minipool._validate import int_tuple, parse_data_format
>>> int_tuple(3, 2, "kernel_size", "max_pool2d", 1)
(3, 3)
>>> parse_data_format("max_pool2d", "NHWC")
Traceback (most recent call last):
  ...
ValueError: max_pool2d: data_format must be 'channels_first' or 'channels_last', got 'NHWC'
"""
import contextlib
import math
import numbers
from typing import Any, Iterator, Optional, Sequence, Tuple

import numpy as np

from minipool.tensor import FLOAT_DTYPES, get_default_dtype

__all__ = ["is_int", "is_real", "flag", "is_real_operand", "single_int", "int_tuple",
           "parse_data_format", "check_parameter_shape", "conv_operands", "conv_bias",
           "check_device", "float_dtype", "MAX_PARAMETER_ELEMENTS", "ARG_LIMIT",
           "named_allocation"]

# A single weight larger than this (8 GiB of float32) is far beyond any model minipool is
# for; refusing it up front beats NumPy's MemoryError that names no argument.
MAX_PARAMETER_ELEMENTS = 2 ** 31 - 1
ARG_LIMIT = 2 ** 62  # window arguments stay clear of int64 overflow in the tables

DATA_FORMATS = ("channels_first", "channels_last")


@contextlib.contextmanager
def named_allocation(op: str, asked: str) -> Iterator[None]:
    """Inside: NumPy's MemoryError (or its "array is too big" ValueError) for a result too large
    to allocate becomes a ValueError naming ``op`` and the arguments that ``asked`` for it."""
    try:
        yield
    except (MemoryError, OverflowError):
        raise ValueError(f"{op}: {asked} asks for a result larger than can be allocated") from None
    except ValueError as e:
        if not any(w in str(e) for w in ("too big", "maximum supported dimension",
                                          "Maximum allowed dimension")):
            raise
        raise ValueError(f"{op}: {asked} asks for a result larger than can be allocated") from None


def is_int(value: Any) -> bool:
    """True for Python and NumPy integers, False for bools (True is not a kernel size)."""
    if type(value) is int:  # the common case, without the ABC check below
        return True
    return isinstance(value, (numbers.Integral, np.integer)) and \
        not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """True for Python/NumPy ints and floats, False for bools."""
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and \
        not isinstance(value, (bool, np.bool_))


def single_int(value: Any, name: str, op: str, minimum: int = 1) -> int:
    """One int >= ``minimum`` (a factor, a count, a layer's channels or features): a
    TypeError for a non-int (bools included), a ValueError below ``minimum``."""
    if not is_int(value):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value}")
    return int(value)


def flag(value: Any, name: str, op: str) -> bool:
    """A bool argument (keepdim, unbiased, ...): True/False or a NumPy bool, else a
    TypeError naming it (PyTorch refuses ints and strings there too)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{op}: {name} must be a bool, got {value!r}")


def is_real_operand(value: Any) -> bool:
    """A number, or an array/sequence NumPy reads as real numbers (bool, int, float)."""
    if isinstance(value, (bool, np.bool_)) or is_real(value):
        return True
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            return np.asarray(value).dtype.kind in "biuf"
        except (ValueError, TypeError):  # ragged or unconvertible
            return False
    return False


def _compact(values: Tuple[int, ...]):
    """An int when every axis has the same value, else the tuple (for messages)."""
    return values[0] if len(set(values)) == 1 else tuple(values)


def int_tuple(value: Any, rank: int, name: str, op: str, minimum: int,
              maximum: int = ARG_LIMIT, *, exact: bool = False) -> Tuple[int, ...]:
    """An int or a sequence of ``rank`` ints, each in [minimum, maximum]: the one checker of
    kernel sizes, strides, paddings, dilations, factors and output sizes.

    bools, floats and arrays are refused by name (TypeError).  A 1-sequence is broadcast, as
    pooling and interpolate take it; with ``exact`` (convolutions, as PyTorch's) a sequence
    must have exactly ``rank`` entries, and another length is a ValueError."""
    if type(value) is int:  # the common case first: this runs on every op call
        values = (value,) * rank
    elif is_int(value):
        values = (int(value),) * rank
    elif isinstance(value, (tuple, list)) and len(value) in ((rank,) if exact else (1, rank)) \
            and all(map(is_int, value)):
        values = tuple(int(v) for v in value) * (rank if len(value) == 1 else 1)
    elif exact and isinstance(value, (tuple, list)) and len(value) != rank:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {rank} ints, got {value!r}")
    else:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {rank} ints, got {value!r}")
    for v in values:
        if v < minimum:
            raise ValueError(f"{op}: {name} must be >= {minimum}, got {_compact(values)}")
        if v > maximum:
            raise ValueError(f"{op}: {name} must be <= {maximum}, got {_compact(values)}")
    return values


def parse_data_format(op: str, data_format: Optional[str],
                      default: str = "channels_first") -> bool:
    """True for channels-last input.  Accepts "channels_first"/"channels_last" in any case;
    None means ``default`` (channels_first for PyTorch-style ops, channels_last for the
    Keras layers)."""
    if data_format is None:
        return default == "channels_last"
    if data_format == "channels_first":  # the spelled-out forms skip .lower() (every op call)
        return False
    if data_format == "channels_last":
        return True
    if isinstance(data_format, str):
        lowered = data_format.lower()
        if lowered in DATA_FORMATS:
            return lowered == "channels_last"
    raise ValueError(f"{op}: data_format must be 'channels_first' or 'channels_last', "
                     f"got {data_format!r}")


def check_parameter_shape(shape: Sequence[int], names: str, where: str) -> Tuple[int, ...]:
    """Refuse a parameter of more than MAX_PARAMETER_ELEMENTS elements, naming the sizes."""
    count = math.prod(int(s) for s in shape)
    if count > MAX_PARAMETER_ELEMENTS:
        raise ValueError(f"{where}: {names} give a weight of shape {tuple(shape)} = {count} "
                         f"elements, more than the limit of {MAX_PARAMETER_ELEMENTS}")
    return tuple(int(s) for s in shape)


def check_device(device: Any, where: str) -> None:
    """A layer's ``device`` argument must be None or 'cpu'."""
    if device not in (None, "cpu"):
        raise ValueError(f"{where}: device must be None or 'cpu' (minipool runs on the CPU only), "
                         f"got {device!r}")


def float_dtype(dtype: Any, device: Any, where: str) -> np.dtype:
    """The parameters' dtype (the default dtype, float32, if None); ``device`` must be None or 'cpu'."""
    check_device(device, where)
    dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dtype}")
    return dtype


def conv_operands(op: str, input: Any, weight: Any, groups: Any, channels_last: bool,
                  weight_layout: str) -> Tuple[int, Tuple[int, int, int]]:
    """The checks conv2d and conv_transpose2d share, on Tensors: a 3-d or 4-d float input
    with non-empty planes, a 4-d weight (``weight_layout`` names its axes) of the same dtype,
    and ``groups`` an int >= 1.  Returns (groups, (channels, height, width) of the input)."""
    if input.ndim not in (3, 4):
        form = "(N, H, W, C) or (H, W, C)" if channels_last else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"{op}: input must be {form}, got shape {input.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be {weight_layout}, got shape {weight.shape}")
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: input must be float32 or float64, got {input.dtype}")
    if weight.dtype != input.dtype:
        raise TypeError(f"{op}: weight dtype {weight.dtype} differs from input dtype {input.dtype}")
    groups = single_int(groups, "groups", op)
    if channels_last:
        H, W, C = input.shape[-3:]
    else:
        C, H, W = input.shape[-3:]
    if H == 0 or W == 0:  # as PyTorch; padding would otherwise make outputs out of no input
        raise ValueError(f"{op}: input spatial size must be >= 1, got shape {input.shape}")
    return groups, (C, H, W)


def conv_bias(op: str, bias: Any, out_channels: int, dtype: np.dtype, counted: str = "") -> None:
    """A convolution's bias (a Tensor, or None): shape (out_channels,) and the input's dtype;
    ``counted`` says where out_channels comes from, for the message."""
    if bias is None:
        return
    if bias.shape != (out_channels,):
        raise ValueError(f"{op}: bias must have shape ({out_channels},){counted}, got {bias.shape}")
    if bias.dtype != dtype:
        raise TypeError(f"{op}: bias dtype {bias.dtype} differs from input dtype {dtype}")
