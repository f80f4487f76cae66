"""minipool: a small, fast, honest deep-learning core.

NumPy tensors with reverse-mode autograd, Cython + OpenMP kernels for pooling
and upsampling, and a from-scratch LeNet-5 trainer.

>>> import minipool as mp
>>> x = mp.tensor([1.0, -2.0, 3.0], requires_grad=True)
>>> y = (x.relu() * x).sum()
>>> y.backward()
>>> x.grad.numpy()
array([2., 0., 6.], dtype=float32)
"""
__version__ = "0.1.0"

from minipool.tensor import (Function, Tensor, arange, enable_grad, full, is_grad_enabled,  # noqa: E402
                             no_grad, ones, ones_like, rand, randn, tensor, zeros, zeros_like)
from minipool._config import get_num_threads, set_adaptive_threads, set_num_threads, show_config  # noqa: E402
from minipool._memory import empty_memory_cache, memory_cache_info, set_memory_cache  # noqa: E402
from minipool.testing import gradcheck  # noqa: E402
from minipool.ops.elementwise import where, clip  # noqa: E402
from minipool.ops.shape import cat, stack  # noqa: E402
from minipool import nn  # noqa: E402
from minipool import optim  # noqa: E402
from minipool import data, models  # noqa: E402

concatenate = cat

__all__ = [
    "Tensor", "Function", "tensor", "zeros", "ones", "zeros_like", "ones_like", "full", "randn",
    "rand", "arange", "no_grad", "enable_grad", "is_grad_enabled", "gradcheck", "where", "clip",
    "cat", "concatenate", "stack", "nn", "get_num_threads", "set_num_threads", "set_adaptive_threads", "show_config",
    "set_memory_cache", "empty_memory_cache", "memory_cache_info",
]

# Seeding, dtype names, NumPy interop (issue 12, part 3).
from minipool._random import (Generator, default_generator, get_rng_state, initial_seed,  # noqa: E402
                              manual_seed, set_rng_state)
from minipool.tensor import get_default_dtype, set_default_dtype  # noqa: E402
from minipool._promotion import can_cast, promote_types, result_type  # noqa: E402
__all__ += ["result_type", "promote_types", "can_cast"]
__all__ += ["manual_seed", "initial_seed", "default_generator", "Generator", "get_rng_state",
            "set_rng_state", "get_default_dtype",
            "set_default_dtype"]
from minipool.serialization import load, save  # noqa: E402
__all__ += ["save", "load"]
# Tensor habits: reductions and copies as module functions, torch.max style (issue 12, part 2).
from minipool.ops.reduce import (amax, amin, argmax, argmin, max, maximum, mean, median,  # noqa: E402
                                 min, minimum, nanmean, std, sum, var)
from minipool.ops.inplace import clone  # noqa: E402
from minipool.tensor import Size  # noqa: E402
__all__ += ["max", "min", "amax", "amin", "argmax", "argmin", "maximum", "minimum", "std", "var",
            "sum", "mean", "median", "nanmean", "clone", "Size"]
from minipool.ops.logical import (bitwise_and, bitwise_not, bitwise_or, bitwise_xor,  # noqa: E402
                                  logical_and, logical_not, logical_or, logical_xor)
__all__ += ["bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
            "logical_and", "logical_or", "logical_xor", "logical_not"]
from minipool.autograd import is_anomaly_check_nan_enabled, is_anomaly_enabled  # noqa: E402
__all__ += ["is_anomaly_enabled", "is_anomaly_check_nan_enabled"]
from minipool.ops.pointwise import addcdiv, addcmul, frac, lerp, trunc  # noqa: E402
__all__ += ["addcmul", "addcdiv", "lerp", "trunc", "frac"]
from minipool.summary import summary  # noqa: E402  (the function; the module stays minipool.summary in sys.modules)
__all__ += ["summary"]
from minipool import interop  # noqa: E402
from minipool.interop import from_numpy  # noqa: E402
import numpy as _np  # noqa: E402
# dtype names, usable wherever a dtype is taken (they are NumPy dtypes; torch's aliases too)
float16 = half = _np.dtype(_np.float16)
float32 = _np.dtype(_np.float32)
float64 = double = _np.dtype(_np.float64)
int8, int16, int32, uint8 = (_np.dtype(t) for t in (_np.int8, _np.int16, _np.int32, _np.uint8))
int64 = long = _np.dtype(_np.int64)
bool_ = _np.dtype(_np.bool_)
bool = bool_  # noqa: A001  (mp.bool as torch.bool; shadows the builtin only in this file, below here)
__all__ += ["interop", "from_numpy", "float16", "half", "float32", "float64", "double", "int8",
            "int16", "int32", "int64", "long", "uint8", "bool_", "bool"]
# PyTorch habits from a user's own script: factories, grad modes, devices, torch.utils.data.
from minipool.tensor import (as_tensor, empty, eye, inference_mode, linspace, randint,  # noqa: E402
                             randperm, set_grad_enabled)
from minipool._device import compile, device  # noqa: E402,A004
from minipool._memory_format import (channels_last, contiguous_format, memory_format,  # noqa: E402
                                     preserve_format)
from minipool import autograd, cuda, utils  # noqa: E402
__all__ += ["autograd", "as_tensor", "empty", "eye", "linspace", "randint", "randperm", "inference_mode",
            "set_grad_enabled", "device", "compile", "cuda", "utils"]
__all__ += ["memory_format", "contiguous_format", "channels_last", "preserve_format"]

# torch.* names for the ops (torch.exp, torch.sort, ...), and Tensor methods' function forms.
from minipool.ops.elementwise import (abs, add, allclose, ceil, cos, div, equal, exp, floor,  # noqa: E402
                                      isclose, isfinite, isinf, isnan, log, mul, neg, pow, relu,
                                      reciprocal, round, rsqrt, sigmoid, sign, sin, sqrt, square,
                                      sub, tanh)
from minipool.ops.elementwise import clip as clamp  # noqa: E402
from minipool.ops.indexing import argsort, gather, masked_fill, nonzero, sort, topk  # noqa: E402
from minipool.ops.linalg import bmm, dot, einsum, matmul, mm, mv, outer  # noqa: E402
from minipool.tensor import (empty_like, finfo, full_like, iinfo, is_floating_point,  # noqa: E402
                             is_tensor, numel, rand_like, randn_like)
from minipool.ops.reduce import std_mean, var_mean  # noqa: E402
from minipool.ops.shape import flip, roll  # noqa: E402
from minipool.ops.discrete import bincount, multinomial, unique  # noqa: E402
from minipool.ops.margin_losses import cdist  # noqa: E402
from minipool.ops.elementwise import floor_divide, fmod, remainder  # noqa: E402
from minipool.ops.reduce import (all, any, cumsum, log_softmax, logsumexp, nansum, norm,  # noqa: E402
                                 prod, softmax)
from minipool.ops.shape import (chunk, flatten, permute, reshape, split, squeeze, t,  # noqa: E402
                                tensor_split, transpose, unflatten, unsqueeze)
__all__ += ["abs", "add", "allclose", "ceil", "cos", "div", "equal", "exp", "floor", "isclose",
            "isfinite", "isinf", "isnan", "log", "mul", "neg", "pow", "relu", "reciprocal", "round", "rsqrt",
            "sigmoid", "sign", "sin", "sqrt", "square", "sub", "tanh", "clamp", "argsort",
            "gather", "masked_fill", "nonzero", "sort", "topk", "matmul", "all", "any", "cumsum",
            "log_softmax", "logsumexp", "norm", "prod", "softmax", "chunk", "flatten", "permute",
            "reshape", "split", "squeeze", "t", "transpose", "unflatten", "unsqueeze", "bmm",
            "einsum", "std_mean", "var_mean", "mm", "mv", "dot", "outer", "empty_like", "full_like",
            "rand_like", "randn_like", "finfo", "iinfo", "is_floating_point", "is_tensor", "numel",
            "eq", "ne", "lt", "le", "gt", "ge", "flip", "roll", "unique", "bincount", "multinomial", "cdist",
            "remainder", "fmod", "floor_divide", "tensor_split", "nansum"]

# Indexing, maths and random habits (round 4, part B).
from minipool.ops.indexing_more import (count_nonzero, index_add, index_copy, index_fill,  # noqa: E402
                                        index_select, masked_select, repeat_interleave, scatter,
                                        scatter_add, scatter_reduce, take_along_dim, tril, triu,
                                        unbind, narrow, movedim, swapaxes, diagonal, trace)
from minipool.ops.shape import broadcast_to  # noqa: E402
from minipool.ops.math_more import (acos, asin, atan, atan2, cosh, cumprod, diff, erf, erfc,  # noqa: E402
                                    erfinv, expm1, hypot, log1p, log2, log10, logspace, meshgrid,
                                    nan_to_num, sinh, tan)
from minipool.ops.sampling import bernoulli, randint_like  # noqa: E402
arcsin, arccos, arctan, arctan2 = asin, acos, atan, atan2
moveaxis, swapdims = movedim, swapaxes
__all__ += ["scatter", "scatter_add", "scatter_reduce", "index_select", "index_add", "index_copy",
            "index_fill", "masked_select", "take_along_dim", "repeat_interleave", "unbind", "tril",
            "triu", "count_nonzero", "broadcast_to", "log1p", "expm1", "log2", "log10", "erf",
            "erfc", "erfinv", "sinh", "cosh", "tan", "asin", "acos", "atan", "arcsin", "arccos",
            "arctan", "atan2", "arctan2", "hypot", "cumprod", "diff", "nan_to_num",
            "logspace", "meshgrid", "bernoulli", "randint_like", "narrow", "movedim", "moveaxis",
            "swapaxes", "swapdims", "diagonal", "trace"]


from minipool._typing import TensorLike as _TensorLike  # noqa: E402


def _comparison(name):
    def compare(input: _TensorLike, other: _TensorLike) -> Tensor:
        if not isinstance(input, Tensor):
            input = tensor(input)
        return getattr(input, name)(other)
    compare.__name__ = compare.__qualname__ = name
    expected = {"eq": "[False, True]", "ne": "[True, False]", "lt": "[True, False]",
                "le": "[True, True]", "gt": "[False, False]", "ge": "[False, True]"}[name]
    compare.__doc__ = (f"``input.{name}(other)``: an elementwise comparison giving a bool tensor, "
                       f"as torch.{name}.\n\n    >>> import minipool as mp\n"
                       f"    >>> mp.{name}(mp.tensor([1, 2]), 2).tolist()\n    {expected}\n")
    return compare


eq, ne, lt, le, gt, ge = (_comparison(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))

# PyTorch names minipool does not have: say so, and where to look, instead of a bare AttributeError.
_NOT_HERE = {
    "autocast": "minipool computes in float32 or float64 only (no mixed precision); remove autocast",
    "amp": "minipool computes in float32 or float64 only (no mixed precision); remove the amp scaler",
    "jit": "minipool runs eagerly; there is no TorchScript (export a model with minipool.onnx)",
    "backends": "minipool has no backend switches (its kernels are its own; see mp.show_config())",
    "distributed": "minipool trains in one process (parallel experiments: python -m minipool "
                   "experiment --jobs/--scheduler)",
    "linalg": "minipool has no linear-algebra module (mp.norm, mp.matmul, mp.einsum are there; "
              "for decompositions use NumPy on t.numpy())",
    "set_printoptions": "minipool prints through NumPy: use numpy.set_printoptions",
}
for _legacy, _dtype_name in (("FloatTensor", "float32"), ("DoubleTensor", "float64"),
                             ("LongTensor", "int64"), ("IntTensor", "int32"), ("ByteTensor", "uint8"),
                             ("BoolTensor", "bool"), ("HalfTensor", "float16")):
    _NOT_HERE[_legacy] = (f"the legacy typed constructors are not there: make one with "
                          f"mp.tensor(data, dtype=mp.{_dtype_name}); test the type with "
                          f"x.dtype == mp.{_dtype_name}")


def __getattr__(name):
    reason = _NOT_HERE.get(name)
    if reason is None:
        reason = ("minipool implements the part of PyTorch's API that tiny CNNs use: see the README's "
                  "tables and docs/differences.md")
    raise AttributeError(f"module 'minipool' has no attribute {name!r}: {reason}")
