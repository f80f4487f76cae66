"""Fuzz worker: drive minipool's public ops and layers with random, mostly invalid, arguments.

Run by ``tests/reliability/test_reliability_fuzz.py`` in a subprocess (so a segfault or an
abort kills only this process and shows up as its return code)::

    python -m tests.reliability._fuzz_worker SEED N_CALLS    # from the checkout root

Each call starts from a random *valid* call of one op (small input, random
geometry, dtype, layout) and applies 0-2 random *mutations*: wrong rank,
empty, wrong dtype, non-contiguous or negatively strided input, NaN/inf
values; zero, negative, huge, fractional, NaN, bool, None, string or
wrongly-sized kernel/stride/padding/dilation/sizes; mismatched or
out-of-range unpooling indices; bad modes, flags and factors.  The Tensor methods
(comparisons, argmax/argmin, max(dim), std/var, in-place ops, casts, item
assignment) get bad operands, dims, flags, dtypes, devices and indices.  The newer
functional names (the activations of activations_more, softmin/glu, the per-sample
norms, normalize/cosine_similarity, embedding, kl_div, dropout1d/3d) and the torch.*
tensor ops (sort/argsort/topk, gather, masked_fill, nonzero, cumsum, prod, norm,
split, chunk) get bad arguments too, their results checked against NumPy; so do
prelu/rrelu, unfold/fold, cdist, unique/bincount/multinomial and the margin losses.

Output is one JSON object per line, flushed at once:

* ``{"event": "start", ...}``: where minipool was imported from;
* ``{"event": "call", "i": i, "op": ..., "mutations": [...]}`` *before* the call
  (so if the process dies, the parent knows which call killed it);
* ``{"event": "result", "i": i, "outcome": "ok" | "error", ...}`` after it, with
  the exception type and message, the words an error message must contain
  (one of ``names`` per mutated argument), and for a returned result the list of
  failed checks (``problems``).

A returned result is checked here against independent facts: the shape from
the output-size formulas (written again below), the slow loop-based
references in ``tests/references/`` for the values (all inputs are small),
bit-identical results for a non-contiguous input and its contiguous copy,
and a backward pass whose gradient has the input's shape and is finite.
"""
import json
import math
import os
import resource
import sys
import traceback

import numpy as np

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from tests.helpers import SELU_ALPHA, SELU_SCALE
from tests.references import conv_reference
from tests.references import pooling_reference as pref
from tests.references import upsampling_reference as uref

# ----------------------------------------------------------------------------- bad values
HUGE = [2 ** 31, 2 ** 40, 2 ** 62, 2 ** 63, 2 ** 64, 10 ** 30]
BAD_SCALARS = [0, -1, -7, 1.5, 2.0, float("nan"), float("inf"), True, False, None, "2",
               np.int64(-3), np.float32(2.0), object()] + HUGE
BAD_SEQUENCES = [(), (2,) * 4, (0, 1), [-1, 2], (2, None), (2, "a"), (2.5, 2), (1, 2 ** 63),
                 (2 ** 40,) * 3, np.array([2, 2])]
BAD_DTYPES = [np.int8, np.int16, np.uint16, np.uint32, np.float16, np.bool_, np.complex64,
              np.int32, np.int64, np.uint8]


class Call:
    """One generated call: the function, its arguments, and what the checks need."""

    def __init__(self, op, fn, args, kwargs, meta):
        self.op, self.fn, self.args, self.kwargs, self.meta = op, fn, list(args), dict(kwargs), meta
        self.mutations = []   # (argument, description)
        self.names = []       # per mutation: words one of which an error must contain


def as_array(value):
    """The array minipool makes of an argument (mp.tensor's rules: Python floats become
    float32, ints int64; not the legacy mp.Tensor(list), which is always float as PyTorch's)."""
    if isinstance(value, mp.Tensor):
        return value.numpy()
    if isinstance(value, np.ndarray):
        return value
    return mp.tensor(value).numpy()


def describe(value):
    if isinstance(value, np.ndarray):
        return f"array{value.shape}:{value.dtype}:strides{value.strides}"
    if isinstance(value, mp.Tensor):
        return f"tensor{value.shape}:{value.dtype}:strides{value.numpy().strides}"
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


# ----------------------------------------------------------------------------- inputs
def random_values(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "c":
        return (rng.standard_normal(shape) + 1j).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -100), min(info.max, 100), size=shape).astype(dtype)


def odd_layout(rng, array):
    """The same values in a non-contiguous or negatively strided view (or as they are)."""
    kind = rng.integers(3)
    if kind == 0 or array.ndim == 0:
        return array, None
    if kind == 1:  # reversed along every axis, then reversed back: same values, negative strides
        flipped = np.ascontiguousarray(array[(slice(None, None, -1),) * array.ndim])
        return flipped[(slice(None, None, -1),) * array.ndim], "negative strides"
    bigger = np.zeros(tuple(2 * s for s in array.shape), dtype=array.dtype)
    bigger[(slice(None, None, 2),) * array.ndim] = array
    return bigger[(slice(None, None, 2),) * array.ndim], "non-contiguous"


def empty_shape(rng, shape):
    shape = list(shape) or [1]
    shape[rng.integers(len(shape))] = 0
    return tuple(shape)


# ----------------------------------------------------------------------------- geometry
def as_ints(value, rank):
    """Independent reading of an int-or-tuple argument: the tuple, or None if invalid."""
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
    if is_int(value):
        return (int(value),) * rank
    if isinstance(value, (tuple, list)) and len(value) in (1, rank) and all(map(is_int, value)):
        return tuple(int(v) for v in value) * (rank if len(value) == 1 else 1)
    return None


def pooled_size(n, k, s, p, d, ceil_mode):
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def window_geometry(spatial, kernel, stride, padding, dilation, ceil_mode, max_padding=True):
    """Expected output spatial size of a sliding-window pool, or None if the call is invalid."""
    rank = len(spatial)
    k = as_ints(kernel, rank)
    # like PyTorch, an empty stride sequence means "the kernel size"
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else as_ints(stride, rank)
    d = as_ints(dilation, rank)
    if k is None or s is None or d is None or not isinstance(ceil_mode, (bool, np.bool_)):
        return None
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        return None
    if isinstance(padding, str):
        if padding.lower() == "valid":
            p = (0,) * rank
        elif padding.lower() == "same" and not ceil_mode:
            return tuple(-(-n // st) for n, st in zip(spatial, s))
        else:
            return None
    else:
        p = as_ints(padding, rank)
        if p is None or min(p) < 0:
            return None
        if max_padding and any(pi > (di * (ki - 1) + 1) // 2 for pi, ki, di in zip(p, k, d)):
            return None
    out = tuple(pooled_size(n, ki, si, pi, di, bool(ceil_mode))
                for n, ki, si, pi, di in zip(spatial, k, s, p, d))
    return out if min(out) >= 1 else None


# ----------------------------------------------------------------------------- layouts
def to_reference_layout(array, rank, batched, channels_last):
    """(N, C, *spatial) channels-first view of an input or output array."""
    a = np.asarray(array)
    if not batched:
        a = a[None]
    if channels_last:
        a = np.moveaxis(a, -1, 1)
    return a


def close(actual, expected, dtype, exact=False):
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return False
    if exact or np.dtype(dtype).kind != "f":
        return bool(np.array_equal(actual, expected, equal_nan=np.dtype(dtype).kind == "f"))
    tol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    return bool(np.allclose(actual, expected, rtol=tol, atol=tol, equal_nan=True))


# ----------------------------------------------------------------------------- op families
WINDOW_OPS = {  # name: (rank, kind)
    "max_pool1d": (1, "max"), "max_pool2d": (2, "max"), "max_pool3d": (3, "max"),
    "min_pool1d": (1, "min"), "min_pool2d": (2, "min"), "min_pool3d": (3, "min"),
    "avg_pool1d": (1, "avg"), "avg_pool2d": (2, "avg"), "avg_pool3d": (3, "avg"),
    "sum_pool1d": (1, "sum"), "sum_pool2d": (2, "sum"), "sum_pool3d": (3, "sum"),
    "lp_pool1d": (1, "lp"), "lp_pool2d": (2, "lp"), "stochastic_pool2d": (2, "stochastic"),
}
ADAPTIVE_OPS = {
    "adaptive_max_pool1d": (1, "max"), "adaptive_max_pool2d": (2, "max"),
    "adaptive_max_pool3d": (3, "max"), "adaptive_avg_pool1d": (1, "avg"),
    "adaptive_avg_pool2d": (2, "avg"), "adaptive_avg_pool3d": (3, "avg"),
    "global_max_pool2d": (2, "gmax"), "global_avg_pool2d": (2, "gavg"),
}
UNPOOL_OPS = {"max_unpool1d": 1, "max_unpool2d": 2, "max_unpool3d": 3}
MODES = {"nearest": (3, 4, 5), "nearest-exact": (3, 4, 5), "area": (3, 4, 5), "linear": (3,),
         "bilinear": (4,), "bicubic": (4,), "trilinear": (5,)}

INPUT_NAMES = ("input", "dtype")


def pool_input(rng, rank, dtypes, channels_last_ok=True):
    batched = bool(rng.integers(4))
    channels_last = channels_last_ok and rng.random() < 0.25
    spatial = tuple(int(v) for v in rng.integers(1, 8 - rank, size=rank))
    n, c = int(rng.integers(1, 3)), int(rng.choice([1, 3]))
    if channels_last:
        shape = ((n,) if batched else ()) + spatial + (c,)
    else:
        shape = ((n,) if batched else ()) + (c,) + spatial
    dtype = dtypes[rng.integers(len(dtypes))]
    return random_values(rng, shape, dtype), dict(rank=rank, batched=batched,
                                                  channels_last=channels_last)


def make_window_call(rng, op):
    rank, kind = WINDOW_OPS[op]
    dtypes = ([np.float32, np.float64, np.int32, np.int64, np.uint8] if kind in ("max", "min")
              else [np.float32, np.float64])
    for _ in range(100):
        x, meta = pool_input(rng, rank, dtypes)
        spatial = x.shape[-rank - 1:-1] if meta["channels_last"] else x.shape[-rank:]
        k = tuple(int(v) for v in rng.integers(1, 4, size=rank))
        s = None if rng.random() < 0.3 else tuple(int(v) for v in rng.integers(1, 4, size=rank))
        d = tuple(int(v) for v in rng.integers(1, 3, size=rank)) if kind in ("max", "min") \
            else (1,) * rank
        p = tuple(int(rng.integers(0, (di * (ki - 1) + 1) // 2 + 1)) for ki, di in zip(k, d))
        ceil_mode = bool(rng.integers(2))
        if kind in ("lp", "stochastic"):
            p = (0,) * rank
        if kind == "stochastic":
            ceil_mode = False
        if window_geometry(spatial, k, s, p, d, ceil_mode) is not None:
            break
    fn = getattr(F, op)
    kw = {}
    if meta["channels_last"]:
        kw["data_format"] = "channels_last"
    if kind in ("max", "min"):
        kw.update(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode,
                  return_indices=bool(rng.integers(2)))
    elif kind in ("avg", "sum"):
        kw.update(kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode)
        if kind == "avg":
            kw["count_include_pad"] = bool(rng.integers(2))
            if rng.random() < 0.2:
                kw["divisor_override"] = int(rng.choice([1, 2, 3, -2]))
    elif kind == "lp":
        kw.update(norm_type=float(rng.choice([1.0, 2.0, 3.0, 0.5])), kernel_size=k, stride=s,
                  ceil_mode=ceil_mode)
        x = np.abs(x)  # LP of negative values with fractional p is NaN by definition
    else:
        kw.update(kernel_size=k, stride=s, training=bool(rng.integers(2)), generator=int(rng.integers(99)))
        x = np.abs(x)
    return Call(op, fn, [x], kw, dict(meta, family="window", kind=kind))


def make_adaptive_call(rng, op):
    rank, kind = ADAPTIVE_OPS[op]
    x, meta = pool_input(rng, rank, [np.float32, np.float64] if "avg" in kind else
                         [np.float32, np.float64, np.int32, np.uint8])
    kw = {}
    if meta["channels_last"]:
        kw["data_format"] = "channels_last"
    if kind in ("gmax", "gavg"):
        kw["keepdim"] = bool(rng.integers(2))
    else:
        sizes = tuple(int(v) for v in rng.integers(1, 6, size=rank))
        kw["output_size"] = sizes[0] if rng.random() < 0.3 else sizes
        if kind == "max":
            kw["return_indices"] = bool(rng.integers(2))
    return Call(op, getattr(F, op), [x], kw, dict(meta, family="adaptive", kind=kind))


def make_unpool_call(rng, op):
    rank = UNPOOL_OPS[op]
    for _ in range(100):
        x, meta = pool_input(rng, rank, [np.float32, np.float64], channels_last_ok=False)
        spatial = x.shape[-rank:]
        k = tuple(int(v) for v in rng.integers(1, 4, size=rank))
        s = tuple(int(v) for v in rng.integers(1, 4, size=rank))
        p = tuple(int(rng.integers(0, ki // 2 + 1)) for ki in k)
        if window_geometry(spatial, k, s, p, 1, False) is not None:
            break
    pool = getattr(F, f"max_pool{rank}d")
    y, idx = pool(mp.tensor(x), k, s, p, return_indices=True)
    kw = dict(kernel_size=k, stride=s, padding=p, output_size=spatial)
    return Call(op, getattr(F, op), [y.numpy(), idx.numpy()], kw,
                dict(meta, family="unpool", spatial=spatial))


def make_interpolate_call(rng, op):
    mode = list(MODES)[rng.integers(len(MODES))]
    ndim = int(rng.choice(MODES[mode]))
    rank = ndim - 2
    batch = (int(rng.integers(1, 3)), int(rng.choice([1, 2])))
    spatial = tuple(int(v) for v in rng.integers(1, 6 if rank < 3 else 4, size=rank))
    uint8_ok = mode.startswith("nearest") or mode in ("bilinear", "bicubic")
    dtypes = [np.float32, np.float64] + ([np.uint8] if uint8_ok else [])
    x = random_values(rng, batch + spatial, dtypes[rng.integers(len(dtypes))])
    kw = {"mode": mode}
    if mode in ("bilinear", "bicubic") and rng.random() < 0.4:
        kw["antialias"] = True
    if rng.random() < 0.5:
        size = tuple(int(v) for v in rng.integers(1, 8, size=rank))
        kw["size"] = size[0] if rng.random() < 0.3 else size
    else:
        factors = tuple(float(rng.choice([0.5, 1.0, 1.5, 2.0, 2.7, 3.0])) for _ in range(rank))
        kw["scale_factor"] = factors[0] if rng.random() < 0.3 else factors
        if rng.random() < 0.3:
            kw["recompute_scale_factor"] = bool(rng.integers(2))
    if mode in ("linear", "bilinear", "bicubic", "trilinear") and rng.random() < 0.5:
        kw["align_corners"] = bool(rng.integers(2))
    meta = dict(family="interpolate", rank=rank, batched=True, channels_last=False, mode=mode)
    # make sure the base call is valid (tiny factors can round an axis to 0)
    if "scale_factor" in kw:
        f = kw["scale_factor"]
        f = f if isinstance(f, tuple) else (f,) * rank
        if min(math.floor(n * fi) for n, fi in zip(spatial, f)) < 1:
            kw.pop("scale_factor")
            kw.pop("recompute_scale_factor", None)
            kw["size"] = spatial
    return Call(op, F.interpolate, [x], kw, meta)


def make_shuffle_call(rng, op):
    r = int(rng.integers(1, 4))
    batch = tuple(int(v) for v in rng.integers(1, 3, size=rng.integers(0, 3)))
    if op == "pixel_shuffle":
        shape = batch + (int(rng.integers(1, 3)) * r * r, int(rng.integers(1, 4)),
                         int(rng.integers(1, 4)))
    else:
        shape = batch + (int(rng.integers(1, 3)), int(rng.integers(1, 3)) * r,
                         int(rng.integers(1, 3)) * r)
    x = random_values(rng, shape, [np.float32, np.float64][rng.integers(2)])
    return Call(op, getattr(F, op), [x, r], {}, dict(family="shuffle"))


def make_conv_call(rng, op):
    groups = int(rng.choice([1, 1, 2]))
    n, cg, og = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
    kh, kw_ = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    h, w = int(rng.integers(kh, 7)), int(rng.integers(kw_, 7))
    dtype = [np.float32, np.float64][rng.integers(2)]
    x = random_values(rng, (n, cg * groups, h, w), dtype)
    weight = random_values(rng, (og * groups, cg, kh, kw_), dtype)
    bias = random_values(rng, (og * groups,), dtype) if rng.integers(2) else None
    kw = dict(stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, 2)),
              dilation=1, groups=groups)
    return Call(op, F.conv2d, [x, weight, bias], kw, dict(family="conv"))


def make_conv_variant_call(rng, op):
    """conv_transpose2d, or conv2d on an (N, H, W, C) input (data_format="channels_last")."""
    groups = int(rng.choice([1, 1, 2]))
    n, cg, og = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
    kh, kw_ = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dtype = [np.float32, np.float64][rng.integers(2)]
    bias = random_values(rng, (og * groups,), dtype) if rng.integers(2) else None
    if op == "conv2d_channels_last":
        h, w = int(rng.integers(kh, 7)), int(rng.integers(kw_, 7))
        x = random_values(rng, (n, h, w, cg * groups), dtype)
        weight = random_values(rng, (og * groups, cg, kh, kw_), dtype)
        kw = dict(stride=int(rng.integers(1, 3)), padding=int(rng.integers(0, 2)), dilation=1,
                  groups=groups, data_format="channels_last")
        return Call(op, F.conv2d, [x, weight, bias], kw, dict(family="conv"))
    h, w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride, dilation = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    output_padding = int(rng.integers(0, max(stride, dilation)))
    # padding may not eat the whole output: 2p <= (size - 1) * s + d * (k - 1) + op
    room = min((size - 1) * stride + dilation * (k - 1) + output_padding for size, k in ((h, kh), (w, kw_)))
    padding = min(int(rng.integers(0, 2)), room // 2)
    x = random_values(rng, (n, cg * groups, h, w), dtype)
    weight = random_values(rng, (cg * groups, og, kh, kw_), dtype)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
              groups=groups)
    return Call(op, F.conv_transpose2d, [x, weight, bias], kw, dict(family="conv", variant="transposed"))


def make_misc_call(rng, op):
    dtype = [np.float32, np.float64][rng.integers(2)]
    if op == "linear":
        x = random_values(rng, (int(rng.integers(1, 4)), 3), dtype)
        return Call(op, F.linear, [x, random_values(rng, (2, 3), dtype),
                                   random_values(rng, (2,), dtype)], {}, dict(family="linear"))
    if op == "dropout":
        x = random_values(rng, (3, 4), dtype)
        return Call(op, F.dropout, [x], dict(p=float(rng.choice([0.0, 0.3, 1.0])), training=True,
                                             generator=np.random.default_rng(1)),
                    dict(family="dropout"))
    if op in ("cross_entropy", "nll_loss"):
        n, c = int(rng.integers(1, 5)), int(rng.integers(2, 5))
        x = random_values(rng, (n, c), dtype)
        target = rng.integers(0, c, size=n)
        return Call(op, getattr(F, op), [x, target], {}, dict(family="loss", classes=c))
    x = random_values(rng, (3, 2), dtype)
    return Call(op, F.mse_loss, [x, random_values(rng, (3, 2), dtype)], {}, dict(family="loss"))


LAYERS = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "LPPool2d",
          "MaxUnpool2d", "Upsample", "PixelShuffle", "Conv2d", "Linear", "Dropout",
          "StochasticPool2d", "MaxPooling2D", "UpSampling2D"]
LAYERS += ["LeakyReLU", "ELU", "Softplus", "ReLU6", "Dropout2d"]  # activations (issue 12)
LAYER_ARGS = {  # valid constructor arguments and a valid input shape
    "MaxPool2d": ((2,), {}, (1, 2, 4, 4)), "AvgPool2d": ((2,), {}, (1, 2, 4, 4)),
    "AdaptiveAvgPool2d": ((2,), {}, (1, 2, 5, 5)), "AdaptiveMaxPool2d": ((3,), {}, (1, 2, 5, 5)),
    "LPPool2d": ((2, 2), {}, (1, 2, 4, 4)), "MaxUnpool2d": ((2,), {}, None),
    "Upsample": ((), {"scale_factor": 2}, (1, 2, 3, 3)), "PixelShuffle": ((2,), {}, (1, 4, 2, 2)),
    "Conv2d": ((2, 3, 3), {}, (1, 2, 5, 5)), "Linear": ((3, 2), {}, (4, 3)),
    "Dropout": ((0.5,), {}, (2, 3)), "StochasticPool2d": ((2,), {}, (1, 2, 4, 4)),
    "MaxPooling2D": (((2, 2),), {}, (1, 4, 4, 2)), "UpSampling2D": (((2, 2),), {}, (1, 3, 3, 2)),
}
LAYER_ARGS.update({
    "LeakyReLU": ((0.1,), {}, (2, 3)), "ELU": ((0.5,), {}, (2, 3)), "Softplus": ((2.0, 5.0), {}, (2, 3)),
    "ReLU6": ((), {}, (2, 3)), "Dropout2d": ((0.5,), {}, (1, 2, 3, 3)),
})

# batch normalisation and the Keras-named layers (issue 12)
LAYERS += ["BatchNorm2d", "BatchNorm1d", "Dense", "Conv2D", "BatchNormalization", "ZeroPadding2D"]
LAYER_ARGS.update({
    "BatchNorm2d": ((3,), {}, (2, 3, 4, 4)), "BatchNorm1d": ((3,), {}, (4, 3)),
    "Dense": ((3,), {}, (2, 5)), "Conv2D": ((2, 3), {}, (1, 5, 5, 2)),
    "BatchNormalization": ((-1,), {}, (4, 3)), "ZeroPadding2D": ((1,), {}, (1, 3, 3, 2)),
})


def make_layer_call(rng, op):
    args, kwargs, shape = LAYER_ARGS[op]
    if op == "MaxUnpool2d":
        y, idx = F.max_pool2d(mp.tensor(random_values(rng, (1, 2, 4, 4), np.float32)), 2,
                              return_indices=True)
        inputs = [y, idx]
    else:
        x = random_values(rng, shape, np.float32)
        inputs = [np.abs(x) if op == "StochasticPool2d" else x]
    call = Call(op, None, inputs, {}, dict(family="layer", layer=op, ctor_args=list(args),
                                           ctor_kwargs=dict(kwargs)))
    return call


FAMILIES = ([(op, make_window_call) for op in WINDOW_OPS]
            + [(op, make_adaptive_call) for op in ADAPTIVE_OPS]
            + [(op, make_unpool_call) for op in UNPOOL_OPS]
            + [("interpolate", make_interpolate_call)] * 4
            + [("pixel_shuffle", make_shuffle_call), ("pixel_unshuffle", make_shuffle_call)]
            + [("conv2d", make_conv_call)] * 2
            + [(op, make_misc_call) for op in ("linear", "dropout", "cross_entropy",
                                              "nll_loss", "mse_loss")]
            + [(op, make_layer_call) for op in LAYERS])

FAMILIES += [("conv_transpose2d", make_conv_variant_call), ("conv2d_channels_last", make_conv_variant_call)]

# ----------------------------------------------------------------------------- mutations
# a mutated input can leave the other arguments unfit (a dim, a shape, a second input)
FUNCTIONAL_INPUT_NAMES = INPUT_NAMES + ("dim", "size", "shape", "broadcast", "index", "empty",
                                        "channels", "group", "more than 1", "0-d", "range", "k=")


def mutate_input(rng, call, position=0):
    x = call.args[position]
    x = x.numpy() if isinstance(x, mp.Tensor) else np.asarray(x)
    if isinstance(call.args[position], list):  # an earlier mutation made it a list
        x = mp.tensor(call.args[position]).numpy()
    what = rng.integers(6)
    if what == 0:    # wrong rank
        x = x.reshape(x.shape + (1,)) if rng.integers(2) or x.ndim < 2 else x.reshape(-1)
        if rng.integers(3) == 0:
            x = np.float32(1.5) if rng.integers(2) else x.reshape(x.shape + (1, 1))
        desc = f"input rank -> {np.ndim(x)}"
    elif what == 1:  # empty
        x = np.zeros(empty_shape(rng, x.shape), dtype=x.dtype)
        desc = f"empty input {x.shape}"
    elif what == 2:  # another dtype
        dtype = BAD_DTYPES[rng.integers(len(BAD_DTYPES))]
        x = random_values(rng, x.shape, dtype)
        desc = f"input dtype -> {np.dtype(dtype)}"
    elif what == 3:  # NaN / inf values (valid)
        x = x.astype(x.dtype, copy=True)
        if x.dtype.kind == "f" and x.size:
            flat = x.reshape(-1)
            for v in (np.nan, np.inf, -np.inf):
                flat[rng.integers(flat.size)] = v
        desc = "nan/inf values"
    elif what == 4:  # a Python list (valid)
        x = x.tolist()
        desc = "nested list input"
    else:
        x, desc = odd_layout(rng, x)
        call.meta["layout_mutated"] = desc is not None
        desc = desc or "plain input"
    call.args[position] = x
    if call.meta["family"] == "shuffle":  # a reshaped input is refused for its sizes
        return "input", desc, INPUT_NAMES + ("channel", "height", "width")
    if call.meta["family"] == "habit":  # the other arguments may no longer fit the input
        return "input", desc, HABIT_INPUT_NAMES
    if call.meta["family"] in ("functional", "tensor_op"):
        return "input", desc, FUNCTIONAL_INPUT_NAMES
    if call.meta["family"] == "habit3":  # the first argument under its PyTorch name
        return "input", desc, FUNCTIONAL_INPUT_NAMES + (HABIT3_FIRST.get(call.op, "input"),)
    return "input", desc, INPUT_NAMES


def pick_bad(rng, sequences=True):
    pool = BAD_SCALARS + (BAD_SEQUENCES if sequences else [])
    return pool[rng.integers(len(pool))]


def mutate_argument(rng, call, name, names=None):
    value = pick_bad(rng)
    if name in ("padding",) and rng.random() < 0.25:
        value = ["same", "valid", "full", "SAME", ""][rng.integers(5)]
    call.kwargs[name] = value
    return name, f"{name}={describe(value)}", names or (name,)


def window_mutations(call):
    kind = call.meta["kind"]
    options = ["kernel_size", "stride", "ceil_mode", "data_format"]
    if kind in ("max", "min", "avg", "sum"):
        options.append("padding")
    if kind in ("max", "min"):
        options.append("dilation")
    if kind == "avg":
        options += ["divisor_override", "count_include_pad"]
    if kind == "lp":
        options.append("norm_type")
    if kind == "stochastic":
        options.append("generator")
    return options


def apply_mutation(rng, call):
    family = call.meta["family"]
    if rng.random() < 0.3 and family != "layer":
        return mutate_input(rng, call)
    if family == "blur":
        return blur_mutation(rng, call)
    if family in EXTRA_MUTATIONS:   # fractional, spp (issue 13 part A)
        return EXTRA_MUTATIONS[family](rng, call)
    if family == "window":
        name = rng.choice(window_mutations(call))
        if name == "ceil_mode":
            call.kwargs["ceil_mode"] = [None, "yes", 2, 0.0][rng.integers(4)]
            return name, f"ceil_mode={call.kwargs['ceil_mode']!r}", ("ceil_mode",)
        if name == "data_format":
            call.kwargs["data_format"] = ["NCHW", 3, "channels-last", "CHANNELS_FIRST"][rng.integers(4)]
            # a valid other layout moves the spatial axes: the error may be about their sizes
            return name, f"data_format={call.kwargs['data_format']!r}", ("data_format", "kernel",
                                                                          "input")
        if name == "count_include_pad":
            call.kwargs["count_include_pad"] = [None, "no", 0][rng.integers(3)]
            return name, "count_include_pad odd", ("count_include_pad",)
        if name == "generator":
            call.kwargs["generator"] = ["seed", 1.5, -1, object()][rng.integers(4)]
            return name, f"generator={describe(call.kwargs['generator'])}", ("generator",)
        names = {"kernel_size": ("kernel_size", "kernel"), "norm_type": ("norm_type",),
                 "divisor_override": ("divisor_override",)}.get(name)
        return mutate_argument(rng, call, name, names)
    if family == "adaptive":
        if call.meta["kind"] in ("gmax", "gavg") or rng.random() < 0.2:
            call.kwargs["data_format"] = ["NHWC", 0][rng.integers(2)]
            return "data_format", "data_format odd", ("data_format",)
        return mutate_argument(rng, call, "output_size")
    if family == "unpool":
        which = rng.integers(5)
        if which <= 1:
            idx = np.array(call.args[1], dtype=np.int64)  # (an earlier mutation may have
            #                                               narrowed or listed it)
            how = rng.integers(6)
            if how == 0 and idx.size:
                idx.reshape(-1)[rng.integers(idx.size)] = [-2, 10 ** 9, 2 ** 62, -(2 ** 40)][rng.integers(4)]
                desc = "index out of range"
            elif how == 1:
                idx = idx.reshape(-1)[:-1] if idx.size > 1 else idx.reshape(idx.shape + (1,))[..., :0]
                desc = f"indices shape {idx.shape}"
            elif how == 2:
                idx = idx.astype([np.float32, np.bool_, np.int8, np.uint64, np.int32][rng.integers(5)])
                desc = f"indices dtype {idx.dtype}"
            elif how == 3 and idx.size:
                idx = np.full_like(idx, int(np.prod(call.meta["spatial"])))
                desc = "indices one past the plane"
            elif how == 4:
                idx, desc = odd_layout(rng, idx)
                desc = f"indices {desc or 'plain'}"
            else:
                idx = idx.tolist()
                desc = "indices as a list"
            call.args[1] = idx
            return "indices", desc, ("indices", "index")
        if which == 2:
            value = [(0,) * 3, (-1, -1, -1), (2 ** 40,) * 3, 7, "a", (1,), None][rng.integers(7)]
            if isinstance(value, tuple):
                value = value[:UNPOOL_OPS[call.op]]
            call.kwargs["output_size"] = value
            # None asks for the default size, which kernel_size/stride/padding decide
            names = ("output_size", "kernel_size") if value is None else ("output_size",)
            return "output_size", f"output_size={describe(value)}", names
        # the error may name output_size: the geometry only sets its default and range
        name = ["kernel_size", "stride", "padding"][rng.integers(3)]
        return mutate_argument(rng, call, name, (name, "kernel", "output_size"))
    if family == "interpolate":
        name = ["size", "scale_factor", "mode", "align_corners", "recompute_scale_factor",
                "antialias", "data_format", "both"][rng.integers(8)]
        if name == "both":
            call.kwargs["size"], call.kwargs["scale_factor"] = 2, 2.0
            return "size", "size and scale_factor", ("size", "scale_factor")
        if name == "mode":
            call.kwargs["mode"] = ["cubic", None, 3, "NEAREST", "bilinear", "trilinear",
                                   "linear"][rng.integers(7)]
            return "mode", f"mode={call.kwargs['mode']!r}", ("mode",)
        if name in ("align_corners", "recompute_scale_factor", "antialias"):
            call.kwargs[name] = [True, False, "yes", 1, None][rng.integers(5)]
            return name, f"{name}={call.kwargs[name]!r}", (name,)
        if name == "data_format":
            call.kwargs[name] = ["channels_last", "NHWC", None][rng.integers(3)]
            # channels_last moves the spatial axes, so sizes may be refused instead
            return name, f"data_format={call.kwargs[name]!r}", ("data_format", "channels_last",
                                                                "size", "scale_factor")
        other = "scale_factor" if name == "size" else "size"
        call.kwargs.pop(other, None)
        call.kwargs.pop("recompute_scale_factor", None)
        value = pick_bad(rng)
        if name == "scale_factor" and rng.random() < 0.5:
            value = [1e-9, 1e30, -2.5, float("inf"), 1e6][rng.integers(5)]
        call.kwargs[name] = value
        return name, f"{name}={describe(value)}", (name,)
    if family == "shuffle":
        call.args[1] = pick_bad(rng, sequences=False)
        return "factor", f"factor={describe(call.args[1])}", ("upscale_factor", "downscale_factor")
    if family == "conv":
        which = rng.integers(6)
        if which == 0:
            w = call.args[1]
            shapes = [w.shape[:3], w.shape + (1,), (w.shape[0], w.shape[1] + 1) + w.shape[2:],
                      (0,) + w.shape[1:], w.shape[:2] + (0, 1), w.shape[:2] + (9, 9)]
            call.args[1] = random_values(rng, shapes[rng.integers(len(shapes))], w.dtype)
            return "weight", f"weight shape {call.args[1].shape}", ("weight", "kernel", "channels")
        if which == 1:
            call.args[1] = call.args[1].astype(np.float64 if call.args[1].dtype == np.float32
                                               else np.float32)
            return "weight", "weight dtype mismatch", ("weight", "dtype")
        if which == 2:
            call.args[2] = np.zeros(int(rng.integers(0, 5)), as_array(call.args[0]).dtype)
            return "bias", f"bias shape {call.args[2].shape}", ("bias",)
        if which == 3:
            call.kwargs["groups"] = pick_bad(rng, sequences=False)
            return "groups", f"groups={describe(call.kwargs['groups'])}", ("groups",)
        name = ["stride", "padding", "dilation"][rng.integers(3)]
        return mutate_argument(rng, call, name, (name, "dilated") if name == "dilation" else None)
    if family == "linear":
        which = rng.integers(3)
        if which == 0:
            call.args[1] = random_values(rng, [(3,), (2, 4), (2, 3, 1), (0, 3)][rng.integers(4)],
                                         as_array(call.args[0]).dtype)
            return "weight", f"weight shape {call.args[1].shape}", ("weight", "in_features", "bias")
        if which == 1:
            call.args[2] = np.zeros([(3,), (2, 1), ()][rng.integers(3)], as_array(call.args[0]).dtype)
            return "bias", f"bias shape {call.args[2].shape}", ("bias",)
        call.args[1] = call.args[1].astype(np.int32)
        return "weight", "weight dtype int32", ("weight", "dtype")
    if family == "dropout":
        call.kwargs["p"] = [-0.1, 1.5, float("nan"), "0.5", True, None][rng.integers(6)]
        return "p", f"p={call.kwargs['p']!r}", ("p",)
    if family == "loss":
        which = rng.integers(4)
        if call.op == "mse_loss":
            if which < 2:
                call.args[1] = np.zeros((4, 5), as_array(call.args[0]).dtype)
                return "target", "target shape", ("target", "shape")
            call.kwargs["reduction"] = ["avg", None, 3][rng.integers(3)]
            return "reduction", "reduction odd", ("reduction",)
        c = call.meta["classes"]
        if which == 0:
            t = np.array(call.args[1]).copy()
            t[rng.integers(t.size)] = [c, -1, -7, 2 ** 40, 10 ** 6][rng.integers(5)]
            call.args[1] = t
            return "target", "target out of range", ("target",)
        if which == 1:
            call.args[1] = [np.zeros(7, np.int64), np.array(call.args[1], np.float32)[:, None],
                            np.array(call.args[1], np.bool_)][rng.integers(3)]
            return "target", f"target {describe(call.args[1])}", ("target",)
        if which == 2:
            call.kwargs["weight"] = np.ones(int(rng.integers(0, 6)), as_array(call.args[0]).dtype)
            return "weight", "class weight shape", ("weight",)
        name, value = [("reduction", "avg"), ("ignore_index", 1.5), ("label_smoothing", 2.0)][
            rng.integers(3)]
        if call.op == "nll_loss" and name == "label_smoothing":
            name, value = "reduction", None
        call.kwargs[name] = value
        return name, f"{name}={value!r}", (name,)
    # layers: a bad constructor argument
    args = call.meta["ctor_args"]
    kwargs = call.meta["ctor_kwargs"]
    if args and rng.random() < 0.8:
        i = int(rng.integers(len(args)))
        args[i] = pick_bad(rng)
        return f"arg{i}", f"{call.op} argument {i} = {describe(args[i])}", LAYER_NAMES[call.op][i]
    kwargs["scale_factor" if call.op == "Upsample" else "bogus_option"] = pick_bad(rng, False)
    return "kwarg", f"{call.op} keyword {describe(kwargs)}", ("scale_factor", "bogus_option",
                                                              "unexpected keyword")


LAYER_NAMES = {  # constructor position -> words an error may use to name it
    "MaxPool2d": [("kernel_size", "kernel")], "AvgPool2d": [("kernel_size", "kernel")],
    "AdaptiveAvgPool2d": [("output_size",)], "AdaptiveMaxPool2d": [("output_size",)],
    "LPPool2d": [("norm_type",), ("kernel_size", "kernel")],
    "MaxUnpool2d": [("kernel_size", "kernel")], "Upsample": [],
    "PixelShuffle": [("upscale_factor",)],
    "Conv2d": [("in_channels", "channels"), ("out_channels", "channels"),
               ("kernel_size", "kernel")],
    "Linear": [("in_features", "features"), ("out_features", "features")], "Dropout": [("p",)],
    "StochasticPool2d": [("kernel_size", "kernel")],
    "MaxPooling2D": [("pool_size", "kernel_size", "kernel")],
    "UpSampling2D": [("size",)],
}
LAYER_NAMES.update({
    "LeakyReLU": [("negative_slope",)], "ELU": [("alpha",)], "Softplus": [("beta",), ("threshold",)],
    "ReLU6": [], "Dropout2d": [("p",)],
})

LAYER_NAMES.update({
    "BatchNorm2d": [("num_features",)], "BatchNorm1d": [("num_features",)], "Dense": [("units",)],
    "Conv2D": [("filters",), ("kernel_size", "kernel")], "BatchNormalization": [("axis",)],
    "ZeroPadding2D": [("padding",)],
})


# ----------------------------------------------------------------------------- BlurPool (issue 13)
BLUR_OPS = ("blur_pool2d", "max_blur_pool2d")


def blur_pads(k):
    return (k - 1) // 2, k // 2


def make_blur_call(rng, op):
    """blur_pool2d / max_blur_pool2d on a small input, with a geometry that fits when one does."""
    x, meta = pool_input(rng, 2, [np.float32, np.float64])
    spatial = x.shape[-3:-1] if meta["channels_last"] else x.shape[-2:]
    kw = {"data_format": "channels_last"} if meta["channels_last"] else {}
    mk = int(rng.integers(1, min(3, min(spatial)) + 1)) if op == "max_blur_pool2d" else 1
    room = min(spatial) - mk + 1          # the blurred size (after the stride-1 max pool)
    k = int(rng.choice([k for k in range(1, 8) if room > max(blur_pads(k))]))   # 1 always fits
    s = int(rng.integers(1, 4))
    if op == "max_blur_pool2d":
        kw.update(kernel_size=mk, blur_kernel_size=k, stride=s)
    else:
        kw.update(kernel_size=k, stride=s)
    return Call(op, getattr(F, op), [x], kw, dict(meta, family="blur", rank=2))


def blur_reference(x, k, s):
    """(N, C, H, W) float64: reflect pad, the binomial filter's correlation, then stride."""
    row = np.array([math.comb(k - 1, t) for t in range(k)], np.float64) / 2 ** (k - 1)
    pb, pa = blur_pads(k)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pb, pa), (pb, pa)), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return np.einsum("nchwij,i,j->nchw", windows, row, row)


def check_blur(call, x, result):
    out = array_of(result)
    kw = call.kwargs
    channels_last = kw.get("data_format") == "channels_last"
    k, s = as_ints(kw.get("blur_kernel_size", kw.get("kernel_size")), 1), as_ints(kw["stride"], 1)
    mk = as_ints(kw.get("kernel_size"), 1) if call.op == "max_blur_pool2d" else (1,)
    if x.ndim not in (3, 4) or None in (k, s, mk) or min(k + s + mk) < 1:
        return [f"accepted {x.ndim}-d input with {describe(kw)}"]
    x4 = x if x.ndim == 4 else x[None]
    if channels_last:
        x4 = np.moveaxis(x4, -1, 1)
    if mk[0] > 1:   # stride-1 max pool first (NaN wins, as in max_pool2d)
        x4 = np.lib.stride_tricks.sliding_window_view(x4, (mk[0], mk[0]), axis=(2, 3))
        x4 = np.where(np.isnan(x4).any(axis=(-2, -1)), np.nan, x4.max(axis=(-2, -1)))
    H, W = x4.shape[2:]
    if min(H, W) <= max(blur_pads(k[0])):
        return [f"accepted a {H}x{W} plane for kernel {k[0]} (reflect padding needs more)"]
    ref = blur_reference(x4, k[0], s[0])
    if channels_last:
        ref = np.moveaxis(ref, 1, -1)
    if x.ndim == 3:
        ref = ref[0]
    if out.shape != ref.shape:
        return [f"{call.op} output shape {out.shape}, expected {ref.shape}"]
    if not close(out, ref, x.dtype):
        return [f"{call.op} values differ from the reference"]
    return check_same_as_contiguous(call, result) if call.meta.get("layout_mutated") else []


def blur_mutation(rng, call):
    name = ["kernel_size", "stride", "data_format"] + (["blur_kernel_size"]
                                                       if call.op == "max_blur_pool2d" else [])
    name = name[rng.integers(len(name))]
    if name == "data_format":
        call.kwargs["data_format"] = ["NHWC", 3, "channels-last", "CHANNELS_FIRST"][rng.integers(4)]
        # a valid other layout moves the spatial axes: the sizes may be refused instead
        return name, f"data_format={call.kwargs['data_format']!r}", (
            "data_format", "kernel", "input", "height", "width", "channels")
    # a valid but larger kernel is refused for the plane it no longer fits ("height"/"width")
    return mutate_argument(rng, call, name, (name, "kernel", "height", "width"))


FAMILIES += [(op, make_blur_call) for op in BLUR_OPS]
FAMILIES += [(op, make_layer_call) for op in ("BlurPool2d", "MaxBlurPool2d")]
LAYERS += ["BlurPool2d", "MaxBlurPool2d"]
LAYER_ARGS.update({"BlurPool2d": ((2, 3, 2), {}, (1, 2, 6, 6)),
                   "MaxBlurPool2d": ((2, 3, 2, 2), {}, (1, 2, 7, 7))})
LAYER_NAMES.update({
    "BlurPool2d": [("channels",), ("kernel_size", "kernel", "height", "width"), ("stride",)],
    "MaxBlurPool2d": [("kernel_size", "kernel", "height", "width"),
                      ("kernel_size", "kernel", "height", "width"), ("stride",), ("channels",)],
})


# ----------------------------------------------------------------------------- running
def run_call(call):
    if call.meta["family"] != "layer":
        return call.fn(*call.args, **call.kwargs)
    layer = getattr(nn, call.op)(*call.meta["ctor_args"], **call.meta["ctor_kwargs"])
    return layer(*call.args)


def first(result):
    return result[0] if isinstance(result, tuple) else result


def array_of(value):
    if isinstance(value, mp.Tensor):
        return value.numpy()
    return np.asarray(value)


def check_result(call, result):
    """Problems with a returned result (empty list: it is right)."""
    problems = []
    family = call.meta["family"]
    x = as_array(call.args[0])
    out = array_of(first(result))
    if family == "window":
        problems += check_window(call, x, result)
    elif family == "adaptive":
        problems += check_adaptive(call, x, result)
    elif family == "unpool":
        problems += check_unpool(call, x, out)
    elif family == "interpolate":
        problems += check_interpolate(call, x, out)
    elif family == "shuffle":
        ref = (uref.pixel_shuffle if call.op == "pixel_shuffle" else uref.pixel_unshuffle)(
            x, int(call.args[1]))
        if not close(out, ref, x.dtype, exact=True):
            problems.append(f"{call.op} differs from the reference")
    elif family == "conv":
        problems += check_conv(call, x, out)
    elif family == "blur":
        problems += check_blur(call, x, result)
    elif family in EXTRA_CHECKS:    # fractional, spp (issue 13 part A)
        problems += EXTRA_CHECKS[family](call, x, result)
    elif family == "linear":
        w, b = (np.asarray(a, np.float64) for a in call.args[1:3])
        if not close(out, x.astype(np.float64) @ w.T + b, x.dtype):
            problems.append("linear differs from x @ W.T + b")
    elif family == "dropout":
        p = call.kwargs["p"]
        kept = (out != 0) & np.isfinite(x)   # inf * 0 is NaN, as in x * mask
        scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
        if out.shape != x.shape or not close(out[kept], x[kept] * scale, x.dtype):
            problems.append("dropout is not x * mask / (1 - p)")
    elif family == "loss":
        if out.shape != () or (np.isfinite(x).all() and not np.isfinite(out)):
            problems.append(f"loss is not a finite scalar: {out!r}")
    if family in ("window", "adaptive", "unpool", "interpolate", "conv") \
            and call.meta.get("layout_mutated"):
        problems += check_same_as_contiguous(call, result)
    if not problems:
        problems += check_backward(call, result)
    return problems


def spatial_of(call, x):
    rank = call.meta["rank"]
    return x.shape[-rank - 1:-1] if call.meta["channels_last"] else x.shape[-rank:]


def check_window(call, x, result):
    kw, kind, rank = call.kwargs, call.meta["kind"], call.meta["rank"]
    out = array_of(first(result))
    channels_last = call.kwargs.get("data_format") == "channels_last"
    batched = x.ndim == rank + 2
    if x.ndim not in (rank + 1, rank + 2):
        return [f"accepted a {x.ndim}-d input"]
    meta = dict(call.meta, channels_last=channels_last)
    spatial = x.shape[-rank - 1:-1] if channels_last else x.shape[-rank:]
    padding = kw.get("padding", 0)
    dilation = kw.get("dilation", 1)
    expected = window_geometry(spatial, kw["kernel_size"], kw.get("stride"), padding, dilation,
                               kw.get("ceil_mode", False))
    if expected is None:
        return [f"accepted invalid geometry {describe(kw)} for spatial size {spatial}"]
    if channels_last:
        want = x.shape[:-rank - 1] + expected + x.shape[-1:]
    else:
        want = x.shape[:-rank] + expected
    if out.shape != want:
        return [f"output shape {out.shape}, expected {want}"]
    if out.dtype != x.dtype:
        return [f"output dtype {out.dtype}, input {x.dtype}"]
    if x.size == 0 or isinstance(padding, str):
        return []
    ref_x = to_reference_layout(x, rank, batched, channels_last)
    got = to_reference_layout(out, rank, batched, channels_last)
    k, s = kw["kernel_size"], kw.get("stride")
    if isinstance(s, (tuple, list)) and len(s) == 0:
        s = None
    if max(as_ints(k, rank)) * max(as_ints(dilation, rank)) > 64:
        return []  # a huge kernel is valid with ceil_mode; the loop reference would not end
    ceil_mode = bool(kw.get("ceil_mode", False))
    if kind in ("max", "min"):
        ref, ref_idx = (pref.max_pool if kind == "max" else pref.min_pool)(
            ref_x, k, s, padding, dilation, ceil_mode)
        problems = [] if close(got, ref, x.dtype, exact=True) else [f"{kind} values differ"]
        if isinstance(result, tuple):
            idx = to_reference_layout(array_of(result[1]), rank, batched, channels_last)
            if idx.dtype != np.int64 or not np.array_equal(idx, ref_idx):
                problems.append("indices differ from the reference")
        return problems
    if kind == "avg":
        ref = pref.avg_pool(ref_x, k, s, padding, ceil_mode, bool(kw.get("count_include_pad", True)),
                            kw.get("divisor_override"))
    elif kind == "sum":
        ref = pref.sum_pool(ref_x, k, s, padding, ceil_mode)
    elif kind == "lp" and isinstance(kw["norm_type"], (float, np.floating)) \
            and np.isinf(kw["norm_type"]):   # PyTorch's limits: max (+inf) / min (-inf) of |x|
        ref = (pref.max_pool if kw["norm_type"] > 0 else pref.min_pool)(
            np.abs(ref_x), k, s, 0, 1, ceil_mode)[0]
    elif kind == "lp":
        ref = pref.lp_pool(ref_x, kw["norm_type"], k, s, ceil_mode)
    elif kw.get("training", True):  # stochastic draw: each output is a value of its window
        flat = ref_x.reshape(ref_x.shape[:2] + (-1,))
        ok = all(np.isin(got[n, c], flat[n, c]).all() for n in range(got.shape[0])
                 for c in range(got.shape[1]))
        return [] if ok else ["stochastic output is not one of its window's values"]
    else:
        ref = pref.stochastic_pool_eval(ref_x, k, s)
    del meta
    return [] if close(got, ref, x.dtype) else [f"{kind} values differ from the reference"]


def check_adaptive(call, x, result):
    kind, rank = call.meta["kind"], call.meta["rank"]
    out = array_of(first(result))
    channels_last = call.kwargs.get("data_format") == "channels_last"
    if x.ndim not in (rank + 1, rank + 2):
        return [f"accepted a {x.ndim}-d input"]
    batched = x.ndim == rank + 2
    spatial = x.shape[-rank - 1:-1] if channels_last else x.shape[-rank:]
    if kind in ("gmax", "gavg"):
        sizes = (1,) * rank
    else:
        size = call.kwargs["output_size"]
        sizes = size if isinstance(size, (tuple, list)) else (size,) * rank
        if len(sizes) == 1:
            sizes = tuple(sizes) * rank
        sizes = tuple(n if o is None else o for o, n in zip(sizes, spatial))
        if as_ints(sizes, rank) is None or min(sizes) < 1:
            return [f"accepted output_size {describe(size)}"]
    if kind in ("gmax", "gavg") and not call.kwargs.get("keepdim"):
        want = x.shape[:-rank - 1] + x.shape[-1:] if channels_last else x.shape[:-rank]
        ref_out = out.reshape(want + (1,) * rank) if not channels_last else \
            out.reshape(want[:-1] + (1,) * rank + want[-1:])
    else:
        want = (x.shape[:-rank - 1] + tuple(sizes) + x.shape[-1:] if channels_last
                else x.shape[:-rank] + tuple(sizes))
        ref_out = out
    if out.shape != want:
        return [f"output shape {out.shape}, expected {want}"]
    if x.size == 0:
        return []
    ref_x = to_reference_layout(x, rank, batched, channels_last)
    got = to_reference_layout(ref_out, rank, batched, channels_last)
    if kind in ("max", "gmax"):
        ref, ref_idx = pref.adaptive_max_pool(ref_x, tuple(sizes))
        problems = [] if close(got, ref, x.dtype, exact=True) else ["adaptive max values differ"]
        if isinstance(result, tuple):
            idx = to_reference_layout(array_of(result[1]), rank, batched, channels_last)
            if not np.array_equal(idx, ref_idx):
                problems.append("adaptive max indices differ")
        return problems
    ref = pref.adaptive_avg_pool(ref_x, tuple(sizes))
    return [] if close(got, ref, x.dtype) else ["adaptive avg values differ"]


def check_unpool(call, x, out):
    rank = UNPOOL_OPS[call.op]
    idx = np.asarray(call.args[1])
    if idx.shape != x.shape or idx.dtype.kind not in "iu":
        return [f"accepted indices {describe(idx)} for input {describe(x)}"]
    size = call.kwargs.get("output_size")
    sizes = tuple(size)[-rank:] if size is not None else None
    if sizes is None:
        k, s, p = (as_ints(call.kwargs[n], rank) for n in ("kernel_size", "stride", "padding"))
        sizes = tuple((n - 1) * si + ki - 2 * pi for n, ki, si, pi in zip(x.shape[-rank:], k, s, p))
    if as_ints(sizes, rank) is None or min(sizes) < 1:
        return [f"accepted output size {sizes}"]
    want = x.shape[:-rank] + tuple(sizes)
    if out.shape != want:
        return [f"output shape {out.shape}, expected {want}"]
    plane = math.prod(sizes)
    if idx.size and (idx.min() < -1 or idx.max() >= plane):
        return ["accepted out-of-range indices"]
    batched = x.ndim == rank + 2
    ref_x = to_reference_layout(x, rank, batched, False)
    ref_idx = to_reference_layout(idx, rank, batched, False)
    if (ref_idx < 0).any() or len(np.unique(ref_idx.reshape(ref_idx.shape[:2] + (-1,))[0, 0])) \
            != ref_idx[0, 0].size:
        return []  # the reference has no "-1" rule and no tie rule for repeats: shape only
    ref = pref.max_unpool(ref_x, ref_idx, sizes)
    got = to_reference_layout(out, rank, batched, False)
    return [] if close(got, ref, x.dtype, exact=True) else ["unpool values differ"]


def check_interpolate_antialias(call, x, out, sizes):
    """antialias=True (float) against the filter formula; uint8 bilinear/bicubic only for its
    range (the bit-exact checks live in tests/upsampling/test_interpolate_uint8.py)."""
    if x.dtype == np.uint8:
        return []  # uint8 outputs are 0..255 by construction of the dtype; shape checked above
    if call.kwargs.get("align_corners") or call.kwargs.get("scale_factor") is not None:
        return []  # the formula below assumes scale = in / out
    cubic = call.kwargs["mode"] == "bicubic"

    def matrix(n_in, n_out):
        if n_in == n_out:
            return np.eye(n_in)
        scale = n_in / n_out
        stretch = max(scale, 1.0)
        support = (2.0 if cubic else 1.0) * stretch
        m = np.zeros((n_out, n_in))
        for o in range(n_out):
            c = scale * (o + 0.5)
            for j in range(max(int(c - support + 0.5), 0), min(int(c + support + 0.5), n_in)):
                t = abs((j - c + 0.5) / stretch)
                m[o, j] = (((1.5 * t - 2.5) * t * t + 1 if t < 1 else
                            ((-0.5 * t + 2.5) * t - 4) * t + 2 if t < 2 else 0.0)
                           if cubic else max(1.0 - t, 0.0))
            m[o] /= m[o].sum()
        return m

    if not np.isfinite(x).all():
        return []
    ref = np.einsum("ih,jw,nchw->ncij", matrix(x.shape[2], sizes[0]), matrix(x.shape[3], sizes[1]),
                    x.astype(np.float64))
    return [] if close(out, ref, x.dtype) else ["interpolate antialias values differ"]


def check_interpolate(call, x, out):
    kw, mode = call.kwargs, call.kwargs.get("mode", "nearest")
    rank = x.ndim - 2
    if mode not in MODES or x.ndim not in MODES[mode]:
        return [f"accepted mode {mode!r} for a {x.ndim}-d input"]
    if kw.get("data_format") not in (None, "channels_first"):
        return [] if kw.get("data_format") == "channels_last" and x.ndim == 4 else \
            ["accepted an odd data_format"]
    size, factor = kw.get("size"), kw.get("scale_factor")
    if (size is None) == (factor is None):
        return ["accepted both or neither of size and scale_factor"]
    spatial = x.shape[2:]
    if size is not None:
        sizes = as_ints(size, rank) if not isinstance(size, (tuple, list)) or len(size) == rank \
            else None
        if sizes is None or min(sizes) < 1:
            return [f"accepted size {describe(size)}"]
    else:
        f = factor if isinstance(factor, (tuple, list)) else (factor,) * rank
        if len(f) != rank or not all(isinstance(v, (int, float, np.floating, np.integer))
                                     and not isinstance(v, bool) and math.isfinite(v) and v > 0
                                     for v in f):
            return [f"accepted scale_factor {describe(factor)}"]
        sizes = tuple(int(math.floor(n * v)) for n, v in zip(spatial, f))
        if min(sizes) < 1:
            return [f"accepted scale_factor {describe(factor)} giving size {sizes}"]
    want = x.shape[:2] + sizes
    if out.shape != want:
        return [f"output shape {out.shape}, expected {want}"]
    if x.size == 0 or out.size > 4096:
        return []
    if out.dtype != x.dtype:
        return [f"interpolate {mode}: dtype {out.dtype} from {x.dtype}"]
    if kw.get("antialias") is True or (x.dtype == np.uint8 and not mode.startswith("nearest")):
        return check_interpolate_antialias(call, x, out, sizes)
    ac = bool(kw.get("align_corners") or False)
    recompute = bool(kw.get("recompute_scale_factor") or False)
    scale = tuple(factor) if isinstance(factor, (tuple, list)) else factor
    ref_size = tuple(size) if isinstance(size, (tuple, list)) else size
    if mode.startswith("nearest"):
        ref = uref.nearest_gather(x, mode, ref_size, scale, recompute)
        exact = True
    else:
        ref = uref.interpolate(x, mode, ref_size, scale, ac, recompute)
        exact = False
        if not np.isfinite(x).all():
            # inf * (weights of both signs, e.g. on a clamped bicubic edge) is NaN in
            # minipool and PyTorch, inf in the reference's merged sums: compare where finite
            finite = np.isfinite(out) & np.isfinite(ref)
            if (np.isfinite(out) != np.isfinite(ref)).any() and not np.isinf(x).any():
                return [f"interpolate {mode}: non-finite values in other places"]
            out, ref = out[finite], ref[finite]
    return [] if close(out, ref, x.dtype, exact) else [f"interpolate {mode} values differ"]


def check_conv(call, x, out):
    if call.meta.get("variant") == "transposed":
        return check_conv_transpose(call, x, out)
    if x.ndim == out.ndim == 3:  # an unbatched input: checked as a batch of one
        x, out = x[None], out[None]
    if call.kwargs.get("data_format") == "channels_last" and x.ndim == out.ndim == 4:
        x, out = np.moveaxis(x, -1, 1), np.moveaxis(out, -1, 1)  # checked as NCHW
    weight, bias = call.args[1], call.args[2]
    kw = call.kwargs
    padding = kw.get("padding", 0)
    s, d = (as_ints(kw.get(n, 1), 2) for n in ("stride", "dilation"))
    kh, kw_ = weight.shape[2:]
    if padding == "valid":
        padding = 0
    if padding == "same" and s == (1, 1) and d is not None:
        # PyTorch's rule: total d*(k-1) per axis, the odd cell after
        p = (d[0] * (kh - 1) // 2, d[1] * (kw_ - 1) // 2)
        pad_after = (d[0] * (kh - 1) - p[0], d[1] * (kw_ - 1) - p[1])
    else:
        p = as_ints(padding, 2)
        pad_after = p
    if None in (s, p, d) or min(s) < 1 or min(d) < 1 or min(p) < 0:
        return [f"accepted {describe(kw)}"]
    ho = (x.shape[2] + p[0] + pad_after[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (x.shape[3] + p[1] + pad_after[1] - d[1] * (kw_ - 1) - 1) // s[1] + 1
    want = (x.shape[0], weight.shape[0], ho, wo)
    if out.shape != want:
        return [f"conv output shape {out.shape}, expected {want}"]
    if out.size > 2000:
        return []
    ref = conv_reference.conv2d_with_grads(x, weight, bias, s, p[0], p[1], (ho, wo), d,
                                           kw.get("groups", 1))[0]
    return [] if close(out, ref, x.dtype) else ["conv values differ from the loop reference"]


def check_conv_transpose(call, x, out):
    """conv_transpose2d: PyTorch's output size, and the values of conv2d's input gradient
    (the loop reference) for the output gradient x, plus the bias."""
    if x.ndim == out.ndim == 3:  # an unbatched input: checked as a batch of one
        x, out = x[None], out[None]
    weight, bias = call.args[1], call.args[2]
    kw = call.kwargs
    s, p, o, d = (as_ints(kw.get(name, default), 2) for name, default in
                  (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1)))
    if None in (s, p, o, d) or min(s) < 1 or min(d) < 1 or min(p) < 0 or min(o) < 0 \
            or any(oo >= ss and oo >= dd for oo, ss, dd in zip(o, s, d)):
        return [f"accepted {describe(kw)}"]
    groups = kw.get("groups", 1)
    size = tuple((n - 1) * ss - 2 * pp + dd * (k - 1) + oo + 1
                 for n, ss, pp, dd, k, oo in zip(x.shape[2:], s, p, d, weight.shape[2:], o))
    want = (x.shape[0], weight.shape[1] * groups) + size
    if out.shape != want:
        return [f"conv_transpose2d output shape {out.shape}, expected {want}"]
    if out.size > 2000:
        return []
    ref = conv_reference.conv2d_with_grads(np.zeros(want), weight, None, s, p[0], p[1], x.shape[2:],
                                           d, groups, grad_out=x)[1]
    if bias is not None:
        ref = ref + np.asarray(bias, np.float64)[None, :, None, None]
    return [] if close(out, ref, x.dtype) else ["conv_transpose2d differs from conv2d's input gradient"]


def check_same_as_contiguous(call, result):
    """A non-contiguous or reversed input must give exactly the contiguous input's result."""
    args = [np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a for a in call.args]
    again = call.fn(*args, **call.kwargs)
    pairs = zip(result, again) if isinstance(result, tuple) else [(result, again)]
    for a, b in pairs:
        if not close(array_of(a), array_of(b), array_of(a).dtype, exact=True):
            return ["non-contiguous input gives another result than its contiguous copy"]
    return []


def check_backward(call, result):
    """Run backward with a random (sometimes reversed) upstream gradient through a leaf."""
    if call.meta["family"] in ("layer", "loss", "dropout", "shuffle", "linear") or \
            call.meta["family"] == "habit" and call.op not in HABIT_DIFFERENTIABLE:
        return []
    if call.meta["family"] == "tensor_op" and call.op in ("argsort", "nonzero") or call.meta.get("no_grad"):
        return []  # integer results (or ops without a gradient)
    p = call.kwargs.get("p")
    if call.op in ("normalize", "triplet_margin_loss") and isinstance(p, (int, float)) and abs(p) > 1e3:
        return []  # |x| ** p overflows: PyTorch's gradient is NaN there too
    x0 = as_array(call.args[0])
    if x0.dtype not in (np.float32, np.float64) or x0.size == 0 or not np.isfinite(x0).all():
        return []
    leaf = mp.Tensor(x0, requires_grad=True)
    out = first(run_with_input(call, leaf))
    if not out.requires_grad:
        return ["result of a float input with requires_grad does not require grad"]
    rng = np.random.default_rng(array_of(out).size)   # (Tensor.size is a method now, as torch)
    grad = rng.standard_normal(out.shape).astype(out.dtype)
    if grad.ndim:
        grad = np.ascontiguousarray(grad[(slice(None, None, -1),) * grad.ndim])[
            (slice(None, None, -1),) * grad.ndim]
    out.backward(grad)
    g = leaf.grad
    if g is None or g.shape != x0.shape or g.dtype != x0.dtype:
        return [f"gradient {None if g is None else (g.shape, g.dtype)} for input {x0.shape}"]
    if np.isfinite(array_of(out)).all() and not np.isfinite(g.numpy()).all():
        return ["non-finite gradient for a finite input and output"]
    return []


def run_with_input(call, leaf):
    args = [leaf] + call.args[1:]
    return call.fn(*args, **call.kwargs)


def generate(rng):
    op, make = FAMILIES[rng.integers(len(FAMILIES))]
    call = make(rng, op)
    n_mutations = int(rng.choice([0, 1, 1, 1, 2]))
    for _ in range(n_mutations):
        arg, desc, names = apply_mutation(rng, call)
        call.mutations.append((arg, desc))
        call.names.append(list(names))
    return call


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def limit_memory():
    """A wrongly-huge allocation must fail fast here, not eat a shared machine's memory.
    (AddressSanitizer reserves terabytes of address space for its shadow memory, so
    under it the debug script caps allocations with ASAN_OPTIONS instead.)"""
    limit = int(os.environ.get("MINIPOOL_FUZZ_MEMORY_LIMIT", str(6 << 30)))
    if "asan" not in os.environ.get("LD_PRELOAD", ""):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main():
    limit_memory()
    seed, n_calls = int(sys.argv[1]), int(sys.argv[2])
    from minipool._build_info import BUILD_INFO
    emit({"event": "start", "minipool": os.path.dirname(os.path.abspath(mp.__file__)),
          "debug_build": BUILD_INFO.get("debug_build"), "seed": seed, "threads": mp.get_num_threads()})
    rng = np.random.default_rng(seed)
    for i in range(n_calls):
        call = generate(rng)
        emit({"event": "call", "i": i, "op": call.op, "mutations": call.mutations,
              "args": [describe(a) for a in call.args],
              "kwargs": {k: describe(v) for k, v in call.kwargs.items()}})
        record = {"event": "result", "i": i, "op": call.op, "names": call.names}
        if "allowed" in call.meta:  # exception types other than ValueError/TypeError it may raise
            record["allowed"] = call.meta["allowed"]
        try:
            with np.errstate(all="ignore"):
                result = run_call(call)
        except Exception as e:  # noqa: BLE001 - the parent judges every exception type
            record.update(outcome="error", exc=type(e).__name__, message=str(e)[:500],
                          where=traceback.extract_tb(e.__traceback__)[-1].filename)
        else:
            try:
                with np.errstate(all="ignore"):
                    problems = check_result(call, result)
            except Exception as e:  # noqa: BLE001
                problems = [f"checking raised {type(e).__name__}: {e}"
                            f" at {traceback.format_exc().splitlines()[-3].strip()}"]
            record.update(outcome="ok", problems=problems)
        emit(record)
    emit({"event": "end"})


# ----------------------------------------------------------------------------- issue 13 part A
# fractional max pooling, lp_pool3d, spatial pyramid pooling
WINDOW_OPS["lp_pool3d"] = (3, "lp")        # checked by check_window (pref.lp_pool is any-rank)
FAMILIES += [("lp_pool3d", make_window_call)]
FRACTIONAL_OPS = {"fractional_max_pool2d": 2, "fractional_max_pool3d": 3}


def make_fractional_call(rng, op):
    rank = FRACTIONAL_OPS[op]
    x, meta = pool_input(rng, rank, [np.float32, np.float64])
    channels_last = meta["channels_last"]
    spatial = x.shape[-rank - 1:-1] if channels_last else x.shape[-rank:]
    slack = 1 if rank == 2 else 0          # PyTorch: 2-d out + k - 1 <= in, 3-d out + k <= in
    kernel = tuple(int(rng.integers(1, n + 1)) for n in spatial)
    out = tuple(int(rng.integers(0, max(0, n - k + slack) + 1)) for n, k in zip(spatial, kernel))
    kw = dict(kernel_size=kernel, return_indices=bool(rng.integers(2)))
    if channels_last:
        kw["data_format"] = "channels_last"
    if rng.random() < 0.3:                 # a ratio that truncates to the same sizes
        kw["output_ratio"] = tuple((o + 0.5) / n for o, n in zip(out, spatial))
    else:
        kw["output_size"] = out
    n = x.shape[0] if x.ndim == rank + 2 else 1
    c = x.shape[-1] if channels_last else x.shape[-rank - 1]
    if rng.random() < 0.5:
        kw["_random_samples"] = rng.random((n, c, rank), dtype=x.dtype)
    else:
        kw["generator"] = int(rng.integers(99))
    return Call(op, getattr(F, op), [x], kw, dict(meta, family="fractional", rank=rank))


def fractional_reference(x, kernel, out, samples):
    """(N, C, *spatial) -> values, indices: the interval starts written again from
    PyTorch's formula in the input's dtype, the max rule v > best or NaN."""
    rank, dt = len(kernel), x.dtype.type
    values = np.empty(x.shape[:2] + tuple(out), x.dtype)
    indices = np.empty(values.shape, np.int64)
    axis_sample = (1, 0) if rank == 2 else (0, 1, 2)
    for n_, c_ in np.ndindex(*x.shape[:2]):
        starts = []
        for a, size, o, k in zip(axis_sample, x.shape[2:], out, kernel):
            u = dt(samples[n_, c_, a])
            seq = []
            if o > 1:
                alpha = dt(size - k) / dt(o - 1)
                seq = [int(np.trunc((dt(i) + u) * alpha)) - int(np.trunc(u * alpha))
                       for i in range(o - 1)]
            starts.append(seq + [size - k] if o > 0 else [])
        for pos in np.ndindex(*out):
            first = [starts[a][pos[a]] for a in range(rank)]
            best, best_i = -np.inf, int(np.ravel_multi_index(first, x.shape[2:]))
            for off in np.ndindex(*kernel):
                cell = tuple(f + j for f, j in zip(first, off))
                v = x[(n_, c_) + cell]
                if v > best or np.isnan(v):
                    best, best_i = v, int(np.ravel_multi_index(cell, x.shape[2:]))
            values[(n_, c_) + pos], indices[(n_, c_) + pos] = best, best_i
    return values, indices


def check_fractional(call, x, result):
    kw, rank = call.kwargs, call.meta["rank"]
    channels_last = kw.get("data_format") == "channels_last"
    if x.ndim not in (rank + 1, rank + 2) or x.dtype not in (np.float32, np.float64):
        return [f"accepted a {x.ndim}-d {x.dtype} input"]
    batched = x.ndim == rank + 2
    spatial = x.shape[-rank - 1:-1] if channels_last else x.shape[-rank:]
    kernel = as_ints(kw.get("kernel_size"), rank)
    if "output_size" in kw and kw["output_size"] is not None:
        out = as_ints(kw["output_size"], rank)
    else:
        ratio = kw.get("output_ratio")
        ratio = tuple(ratio) * (rank if len(ratio) == 1 else 1) if isinstance(ratio, (tuple, list)) \
            else (ratio,) * rank
        out = tuple(int(n * float(r)) for n, r in zip(spatial, ratio))
    slack = 1 if rank == 2 else 0
    if kernel is None or out is None or min(kernel) < 1 or min(out) < 0 \
            or any(o + k - slack > n or k > n for o, k, n in zip(out, kernel, spatial)):
        return [f"accepted kernel {kw.get('kernel_size')!r} / output {out} for {spatial}"]
    ref_x = to_reference_layout(x, rank, batched, channels_last)
    samples = kw.get("_random_samples")
    if samples is None:
        samples = np.random.default_rng(kw["generator"]).random(ref_x.shape[:2] + (rank,),
                                                                 dtype=x.dtype)
    samples = as_array(samples)
    if samples.shape != ref_x.shape[:2] + (rank,) or not ((samples >= 0) & (samples <= 1)).all():
        return [f"accepted _random_samples {describe(samples)}"]
    got = to_reference_layout(array_of(first(result)), rank, batched, channels_last)
    ref, ref_idx = fractional_reference(ref_x, kernel, out, samples)
    problems = [] if close(got, ref, x.dtype, exact=True) else [f"{call.op} values differ"]
    if isinstance(result, tuple):
        idx = to_reference_layout(array_of(result[1]), rank, batched, channels_last)
        if idx.dtype != np.int64 or not np.array_equal(idx, ref_idx):
            problems.append(f"{call.op} indices differ from the reference")
    if not problems and call.meta.get("layout_mutated"):
        problems += check_same_as_contiguous(call, result)
    return problems


def fractional_mutation(rng, call):
    name = ["kernel_size", "output_size", "output_ratio", "_random_samples", "generator",
            "data_format"][rng.integers(6)]
    kw = call.kwargs
    if name == "output_ratio":
        kw.pop("output_size", None)
        kw["output_ratio"] = pick_bad(rng)
        return name, f"output_ratio={describe(kw['output_ratio'])}", ("output_ratio",
                                                                       "output_size")
    if name == "_random_samples":
        u = np.asarray(kw.get("_random_samples", np.zeros((1, 1, call.meta["rank"]))))
        how = rng.integers(5)
        if how == 0:
            u = u[..., :-1] if rng.integers(2) else np.concatenate([u, u], axis=0)
        elif how == 1:
            u = u.astype(np.float32 if u.dtype == np.float64 else np.float64)
        elif how == 2:
            u = u.copy()
            u.reshape(-1)[:1] = [np.nan, 1.5, -0.25, np.inf][rng.integers(4)]
        elif how == 3:
            u = u.tolist()
        else:
            kw["generator"] = 3
        kw["_random_samples"] = u
        return name, f"_random_samples {describe(u)} (how {how})", ("_random_samples",
                                                                     "generator", "input")
    if name == "generator":
        kw["generator"] = ["seed", 1.5, -1, object()][rng.integers(4)]
        return name, f"generator={describe(kw['generator'])}", ("generator",)
    if name == "data_format":
        kw["data_format"] = ["NHWC", 3, "channels-last", "CHANNELS_FIRST"][rng.integers(4)]
        # a valid other layout moves the axes: sizes or samples may be refused instead
        return name, f"data_format={kw['data_format']!r}", (
            "data_format", "kernel", "input", "output_size", "_random_samples")
    if name == "output_size":
        kw.pop("output_ratio", None)
    # a valid but larger value is refused for the input it no longer fits
    return mutate_argument(rng, call, name, (name, "kernel", "output_size", "input"))


def make_spp_call(rng, op):
    x, meta = pool_input(rng, 2, [np.float32, np.float64])
    kw = dict(levels=tuple(int(v) for v in rng.integers(1, 6, size=int(rng.integers(1, 4)))),
              mode=["max", "avg"][rng.integers(2)])
    if meta["channels_last"]:
        kw["data_format"] = "channels_last"
    return Call(op, F.spatial_pyramid_pool2d, [x], kw, dict(meta, family="spp", rank=2))


def check_spp(call, x, result):
    kw = call.kwargs
    levels = kw["levels"]
    levels = (levels,) if isinstance(levels, (int, np.integer)) else levels
    channels_last = kw.get("data_format") == "channels_last"
    if x.ndim not in (3, 4) or kw["mode"] not in ("max", "avg"):
        return [f"accepted a {x.ndim}-d input / mode {kw['mode']!r}"]
    ref_x = to_reference_layout(x, 2, x.ndim == 4, channels_last)
    parts = []
    for level in levels:
        y = pref.adaptive_max_pool(ref_x, (level, level))[0] if kw["mode"] == "max" else \
            pref.adaptive_avg_pool(ref_x, (level, level))
        parts.append(y.reshape(y.shape[0], y.shape[1] * level * level))
    ref = np.concatenate(parts, axis=1)
    if x.ndim == 3:
        ref = ref[0]
    out = array_of(first(result))
    if out.shape != ref.shape:
        return [f"spatial_pyramid_pool2d output shape {out.shape}, expected {ref.shape}"]
    if not close(out, ref, x.dtype, exact=kw["mode"] == "max"):
        return ["spatial_pyramid_pool2d differs from the adaptive-pool reference"]
    return check_same_as_contiguous(call, result) if call.meta.get("layout_mutated") else []


def spp_mutation(rng, call):
    name = ["levels", "mode", "data_format"][rng.integers(3)]
    if name == "mode":
        call.kwargs["mode"] = ["min", None, 3, "MAX", "average"][rng.integers(5)]
        return name, f"mode={call.kwargs['mode']!r}", ("mode",)
    if name == "data_format":
        call.kwargs["data_format"] = ["NHWC", 3, "channels-last", "CHANNELS_FIRST"][rng.integers(4)]
        return name, f"data_format={call.kwargs['data_format']!r}", ("data_format", "input")
    return mutate_argument(rng, call, name, ("levels", "output_size"))


EXTRA_MUTATIONS = {"fractional": fractional_mutation, "spp": spp_mutation}
EXTRA_CHECKS = {"fractional": check_fractional, "spp": check_spp}
FAMILIES += [(op, make_fractional_call) for op in FRACTIONAL_OPS]
FAMILIES += [("spatial_pyramid_pool2d", make_spp_call)]
FAMILIES += [(op, make_layer_call) for op in ("FractionalMaxPool2d", "LPPool3d",
                                              "SpatialPyramidPool2d")]
LAYERS += ["FractionalMaxPool2d", "LPPool3d", "SpatialPyramidPool2d"]
LAYER_ARGS.update({"FractionalMaxPool2d": ((2,), {"output_size": 2}, (1, 2, 5, 5)),
                   "LPPool3d": ((2, 2), {}, (1, 2, 4, 4, 4)),
                   "SpatialPyramidPool2d": (((1, 2),), {}, (1, 2, 5, 5))})
LAYER_NAMES.update({
    "FractionalMaxPool2d": [("kernel_size", "kernel", "output_size")],
    "LPPool3d": [("norm_type",), ("kernel_size", "kernel")],
    "SpatialPyramidPool2d": [("levels",)],
})


# ----------------------------------------------------------------------------- tensor habits
# The Tensor methods PyTorch users reach for (issue 12): comparisons, argmax/argmin,
# max(dim), std/var, in-place ops, casts and item assignment.  Each call makes a fresh
# tensor from the input, so in-place ops change no argument.  They raise PyTorch's
# exception types, so IndexError (a dim or index out of range), RuntimeError (the in-place
# rules, a device) and OverflowError (an int beyond the tensor's dtype) are accepted here
# besides ValueError/TypeError.
HABIT_ALLOWED = ["ValueError", "TypeError", "IndexError", "RuntimeError", "OverflowError"]
HABIT_DIFFERENTIABLE = ("max_dim", "std", "var")
# an input mutation can leave the other arguments unfit: the error may name those
HABIT_INPUT_NAMES = INPUT_NAMES + ("dim", "dimension", "empty", "shape", "broadcast", "index",
                                   "floating-point", "float32")


def _set(t, index, value):
    t[index] = value
    return t


HABIT_FUNCS = {
    "lt": lambda t, other: t.lt(other),
    "eq": lambda t, other: t == other,   # the operator: a non-operand gives Python's False
    "argmax": lambda t, **kw: t.argmax(**kw),
    "argmin": lambda t, **kw: t.argmin(**kw),
    "max_dim": lambda t, **kw: t.max(**kw),
    "std": lambda t, **kw: t.std(**kw),
    "var": lambda t, **kw: t.var(**kw),
    "add_": lambda t, other, **kw: t.add_(other, **kw),
    "mul_": lambda t, other: t.mul_(other),
    "fill_": lambda t, value: t.fill_(value),
    "copy_": lambda t, src: t.copy_(src),
    "clamp_": lambda t, **kw: t.clamp_(**kw),
    "to": lambda t, *args, **kw: t.to(*args, **kw),
    "astype": lambda t, dtype: t.astype(dtype),
    "setitem": _set,
}
HABIT_DTYPES = [np.float32, np.float64, "float64", "int64", np.int32, np.bool_, mp.float32]


def make_habit_call(rng, op):
    shape = tuple(int(n) for n in rng.integers(1, 5, size=int(rng.integers(1, 4))))
    dtype = [np.float32, np.float64, np.float32, np.int64][rng.integers(4)]
    if op in ("std", "var", "add_", "mul_", "clamp_") or op == "max_dim":
        dtype = [np.float32, np.float64][rng.integers(2)]
    x = random_values(rng, shape, dtype)
    meta = dict(family="habit", allowed=HABIT_ALLOWED)

    def fn(x, *args, **kwargs):
        t = x if isinstance(x, mp.Tensor) else mp.tensor(x)
        if meta.get("leaf"):
            t.requires_grad_(True)
        return HABIT_FUNCS[op](t, *args, **kwargs)

    ndim = len(shape)
    some_dim = int(rng.integers(-ndim, ndim))
    args, kwargs = [x], {}
    if op in ("lt", "eq", "add_", "mul_", "copy_"):
        other_shape = [(), shape[-1:], shape][rng.integers(3)]
        args.append(random_values(rng, other_shape, dtype) if other_shape else float(rng.standard_normal()))
        if op == "add_" and rng.integers(2):
            kwargs["alpha"] = float(rng.choice([0.5, 2.0, -1.0]))
    elif op in ("argmax", "argmin", "max_dim"):
        kwargs["dim"] = some_dim if op == "max_dim" or rng.integers(3) else None
        if kwargs["dim"] is not None or rng.integers(2):
            kwargs["keepdim"] = bool(rng.integers(2))
    elif op in ("std", "var"):
        kwargs["dim"] = [None, some_dim, tuple(range(ndim))][rng.integers(3)]
        kwargs["keepdim"] = bool(rng.integers(2))
        if rng.integers(2):
            kwargs["correction"] = int(rng.integers(0, 3))
        else:
            kwargs["unbiased"] = bool(rng.integers(2))
    elif op == "fill_":
        args.append(float(rng.standard_normal()))
    elif op == "clamp_":
        kwargs["min"], kwargs["max"] = sorted(float(v) for v in rng.standard_normal(2))
        if rng.integers(3) == 0:
            kwargs.pop(["min", "max"][rng.integers(2)])
    elif op in ("to", "astype"):
        args.append(HABIT_DTYPES[rng.integers(len(HABIT_DTYPES))])
    elif op == "setitem":
        kind = rng.integers(4)
        if kind == 0:
            index = tuple(int(rng.integers(-n, n)) for n in shape[:int(rng.integers(1, ndim + 1))])
        elif kind == 1:
            index = tuple(slice(int(rng.integers(-n, n)), None, int(rng.integers(1, 3))) for n in shape)
        elif kind == 2:
            index = rng.integers(-shape[0], shape[0], size=int(rng.integers(1, 4)))
        else:
            index = rng.random(shape) < 0.5
        args += [index, float(rng.standard_normal())]
    return Call(op, fn, args, kwargs, meta)


def habit_mutation(rng, call):
    op = call.op
    kw = call.kwargs
    if op in ("add_", "mul_", "fill_", "copy_", "clamp_", "setitem") and rng.random() < 0.15:
        call.meta["leaf"] = True   # in place on a leaf that requires grad: PyTorch's error
        return "input", "a leaf that requires grad", ("leaf", "require")
    bad_operands = ["a", None, object(), 1 + 2j, [[1.0, 2.0], [3.0]], np.ones(7),
                    np.ones((5, 1, 1)), 2 ** 70, float("nan"), np.array(["x"])]
    if op in ("lt", "eq", "add_", "mul_", "copy_", "fill_"):
        if op == "add_" and rng.random() < 0.3:
            kw["alpha"] = pick_bad(rng, sequences=False)
            return "alpha", f"alpha={describe(kw['alpha'])}", ("alpha",)
        call.args[1] = bad_operands[rng.integers(len(bad_operands))]
        what = {"copy_": "src", "fill_": "value"}.get(op, "other")
        return what, f"{what}={describe(call.args[1])}", (what, "source", "shape", "broadcast",
                                                          "stored", "written")
    if op in ("argmax", "argmin", "max_dim", "std", "var"):
        name = ["dim", "keepdim"] + (["correction", "unbiased"] if op in ("std", "var") else [])
        name = name[rng.integers(len(name))]
        if name == "dim":
            kw["dim"] = [5, -9, 2 ** 63, 1.5, "0", (0, 0), [0, 7], True, np.float32(0)][rng.integers(9)]
            return "dim", f"dim={describe(kw['dim'])}", ("dim", "dimension")
        if name == "correction":
            kw.pop("unbiased", None)
            kw["correction"] = ["1", None, object(), [1]][rng.integers(4)]
            if kw["correction"] is None:  # and unbiased too: refused as "not both"
                kw["unbiased"] = True
                kw["correction"] = 1
            return "correction", f"correction={describe(kw['correction'])}", ("correction", "unbiased")
        kw[name] = ["yes", None, 1, 2.5, np.array([True])][rng.integers(5)]
        return name, f"{name}={describe(kw[name])}", (name,)
    if op == "clamp_":
        name = ["min", "max", "both"][rng.integers(3)]
        if name == "both":
            kw.pop("min", None)
            kw.pop("max", None)
            return "min", "no min and no max", ("min and max",)
        kw[name] = ["a", mp.ones(2), object(), 1 + 1j, [0.5]][rng.integers(5)]
        return name, f"{name}={describe(kw[name])}", (name,)
    if op in ("to", "astype"):
        value = ["cuda", "cuda:0", None, 1.5, "float7", np.complex64, "complex64", object(), True,
                 "U4", str][rng.integers(11)]
        call.args[1] = value
        return "dtype", f"dtype={describe(value)}", ("dtype", "device")
    # setitem
    if rng.integers(2):
        call.args[1] = [99, -99, 1.5, "a", (0,) * 5, np.array([7]), np.array([True] * 9),
                        np.array([0.5]), slice("a"), object()][rng.integers(10)]
        return "index", f"index={describe(call.args[1])}", ("index", "indices")
    call.args[2] = bad_operands[rng.integers(len(bad_operands))]
    return "value", f"value={describe(call.args[2])}", ("value", "shape", "broadcast", "dtype")


def _habit_reference(call, x):
    """The expected result from NumPy (float64 arithmetic, cast back), or None when the
    call's arguments are not ones to recompute (a mutation made them unusual)."""
    op, args, kw = call.op, call.args, call.kwargs
    if op in ("lt", "eq"):
        other = np.asarray(as_array(args[1]) if isinstance(args[1], mp.Tensor) else args[1])
        return (np.less if op == "lt" else np.equal)(x, other)
    if op in ("argmax", "argmin"):
        pick = np.argmax if op == "argmax" else np.argmin
        dim, keepdim = kw.get("dim"), kw.get("keepdim", False)
        if dim is None:
            out = pick(x.reshape(-1))
            return np.reshape(out, (1,) * x.ndim) if keepdim else out
        return pick(x, axis=dim, keepdims=keepdim) if x.ndim else np.int64(0)
    if op == "max_dim":
        return np.max(x, axis=kw["dim"], keepdims=kw.get("keepdim", False)) if x.ndim else x
    if op in ("std", "var"):
        correction = kw.get("correction")
        if correction is None:  # unbiased None (the default) or True: 1
            correction = 0 if kw.get("unbiased") is False else 1
        dim = kw.get("dim")
        if isinstance(dim, bool):  # std(x, True): PyTorch's std(input, unbiased)
            dim, correction = None, int(dim)
        axes = None if dim is None else (tuple(dim) if isinstance(dim, tuple) else dim)
        if x.ndim == 0:
            axes = None
        with np.errstate(all="ignore"):
            value = np.var(x.astype(np.float64), axis=axes, ddof=correction, keepdims=kw.get("keepdim", False))
            return np.sqrt(value) if op == "std" else value
    if op in ("add_", "mul_", "fill_", "copy_", "clamp_"):
        with np.errstate(all="ignore"):
            if op == "add_":
                other = np.asarray(args[1], np.float64) * kw.get("alpha", 1)
                return (x.astype(np.float64) + other).astype(x.dtype)
            if op == "mul_":
                return (x.astype(np.float64) * np.asarray(args[1], np.float64)).astype(x.dtype)
            if op == "fill_":
                return np.full(x.shape, args[1]).astype(x.dtype)
            if op == "copy_":
                return np.broadcast_to(np.asarray(args[1]), x.shape).astype(x.dtype)
            return np.clip(x, kw.get("min"), kw.get("max"))
    if op in ("to", "astype"):
        return x.astype(np.dtype(args[1]))
    expected = x.copy()  # setitem: a number is cast as an array (no Python range check), as torch
    with np.errstate(all="ignore"):
        expected[args[1]] = np.asarray(args[2])
    return expected


def check_habit(call, x, result):
    if call.op == "eq" and not isinstance(result, mp.Tensor):
        return [] if result is False else [f"t == {describe(call.args[1])} gave {result!r}"]
    out = first(result)
    if not isinstance(out, mp.Tensor):
        return [f"{call.op} returned {type(out).__name__}, not a Tensor"]
    expected = np.asarray(_habit_reference(call, x))
    got = out.numpy()
    if call.op in ("to", "astype") and got.dtype.kind in "iub" and not np.isfinite(x).all():
        return []  # NaN/inf cast to an integer is undefined (in NumPy and PyTorch)
    if got.shape != expected.shape:
        return [f"{call.op} shape {got.shape}, expected {expected.shape}"]
    tol = {np.dtype(np.float16): 5e-2, np.dtype(np.float32): 1e-4}.get(got.dtype, 1e-10)
    if got.dtype.kind == "f":
        same = np.allclose(got, expected.astype(np.float64), rtol=tol, atol=tol, equal_nan=True)
    else:
        same = np.array_equal(got, expected)
    problems = [] if same else [f"{call.op} differs from NumPy"]
    if call.op == "max_dim" and not problems and got.ndim and x.ndim:
        dim, idx = call.kwargs["dim"], first(result[1:]).numpy()
        taken = np.take_along_axis(x, idx if call.kwargs.get("keepdim") else np.expand_dims(idx, dim), dim)
        if not np.array_equal(np.squeeze(taken, dim) if not call.kwargs.get("keepdim") else taken,
                              got, equal_nan=True):
            problems.append("max(dim) indices do not point at the values")
    return problems


HABIT_OPS = list(HABIT_FUNCS)
EXTRA_MUTATIONS["habit"] = habit_mutation
EXTRA_CHECKS["habit"] = check_habit
FAMILIES += [(op, make_habit_call) for op in HABIT_OPS]


# ----------------------------------------------------------------------------- functional additions
# The torch.nn.functional names added since issue 12: the pointwise activations, softmin/glu,
# the per-sample norms, normalize/cosine_similarity, embedding, kl_div and channel dropout.
# Results are checked against NumPy written again here (float64, cast back).
def _np_sig(v):
    return 1 / (1 + np.exp(-v))


def _np_softplus(v):
    return np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))


POINTWISE = {  # op: (numpy reference of float64 x and the kwargs, {kwarg: valid values})
    "hardsigmoid": (lambda v, kw: np.clip(v + 3, 0, 6) / 6, {}),  # (celu: in _functional_reference)
    "hardswish": (lambda v, kw: v * np.clip(v + 3, 0, 6) / 6, {}),
    "logsigmoid": (lambda v, kw: np.minimum(v, 0) - np.log1p(np.exp(-np.abs(v))), {}),
    "mish": (lambda v, kw: v * np.tanh(_np_softplus(v)), {}),
    "selu": (lambda v, kw: SELU_SCALE * np.where(v > 0, v, SELU_ALPHA * np.expm1(v)), {}),
    # (exp - 1, not expm1: PyTorch's formula, whose rounding a huge alpha shows)
    "celu": (lambda v, kw: np.where(v > 0, v, (np.exp(v / kw.get("alpha", 1.0)) - 1) * kw.get("alpha", 1.0)),
             {"alpha": [0.5, 1.0, 2.0]}),
    "threshold": (lambda v, kw: np.where(v <= kw["threshold"], kw["value"], v),  # NaN passes
                  {"threshold": [-0.5, 0.0, 1.0], "value": [-1.0, 0.0, 3.0]}),
    "hardshrink": (lambda v, kw: np.where(np.abs(v) <= kw.get("lambd", 0.5), 0, v),
                   {"lambd": [0.0, 0.5, 1.5]}),
    "softshrink": (lambda v, kw: np.sign(v) * np.maximum(np.abs(v) - kw.get("lambd", 0.5), 0),
                   {"lambd": [0.0, 0.5, 1.5]}),
    "softsign": (lambda v, kw: v / (1 + np.abs(v)), {}),
    "tanhshrink": (lambda v, kw: v - np.tanh(v), {}),
}
FUNCTIONAL_OPS = list(POINTWISE) + ["softmin", "glu", "layer_norm", "group_norm", "instance_norm",
                                    "normalize", "cosine_similarity", "embedding", "kl_div",
                                    "dropout1d", "dropout3d"]
FUNCTIONAL_ARGS = {  # op: the keyword arguments a mutation may spoil
    "softmin": ["dim"], "glu": ["dim"], "layer_norm": ["normalized_shape", "eps"],
    "group_norm": ["num_groups", "eps"], "instance_norm": ["eps", "momentum"],
    "normalize": ["p", "dim", "eps"], "cosine_similarity": ["dim", "eps"],
    "embedding": ["padding_idx", "max_norm"], "kl_div": ["reduction", "log_target"],
    "dropout1d": ["p", "training"], "dropout3d": ["p", "training"],
}


def make_functional_call(rng, op):
    dtype = [np.float32, np.float64][rng.integers(2)]
    meta = dict(family="functional")
    if op in POINTWISE:
        shape = tuple(int(n) for n in rng.integers(1, 5, size=int(rng.integers(0, 4))))
        kwargs = {k: float(rng.choice(v)) for k, v in POINTWISE[op][1].items()
                  if k in ("threshold", "value") or rng.integers(2)}
        return Call(op, getattr(F, op), [random_values(rng, shape, dtype) * 3], kwargs, meta)
    if op in ("softmin", "glu"):
        shape = (int(rng.integers(1, 4)), 2 * int(rng.integers(1, 4)))
        return Call(op, getattr(F, op), [random_values(rng, shape, dtype)],
                    dict(dim=int(rng.choice([0, 1, -1])) if op == "softmin" else 1), meta)
    if op in ("layer_norm", "group_norm", "instance_norm"):
        n, c, length = int(rng.integers(1, 4)), 2 * int(rng.integers(1, 3)), int(rng.integers(2, 5))
        x = random_values(rng, (n, c, length), dtype)
        if op == "layer_norm":
            return Call(op, F.layer_norm, [x], dict(normalized_shape=(c, length)[-int(rng.integers(1, 3)):],
                                                    eps=1e-5), meta)
        if op == "group_norm":
            return Call(op, F.group_norm, [x], dict(num_groups=int(rng.choice([1, 2])), eps=1e-5), meta)
        return Call(op, F.instance_norm, [x], dict(eps=1e-5, momentum=0.1), meta)
    if op in ("normalize", "cosine_similarity"):
        x = random_values(rng, (int(rng.integers(1, 4)), 3), dtype)
        if op == "normalize":
            return Call(op, F.normalize, [x], dict(p=float(rng.choice([1.0, 2.0])), dim=1, eps=1e-12), meta)
        return Call(op, F.cosine_similarity, [x, random_values(rng, x.shape, dtype)],
                    dict(dim=1, eps=1e-8), meta)
    if op == "embedding":
        weight = random_values(rng, (6, 3), dtype)
        idx = rng.integers(0, 6, size=(int(rng.integers(1, 4)), 2))
        meta.update(weight=weight, allowed=["ValueError", "TypeError", "IndexError"])  # as torch
        return Call(op, lambda i, **kw: F.embedding(i, weight, **kw), [idx], {}, meta)
    if op == "kl_div":
        x = np.log(np.abs(random_values(rng, (2, 3), dtype)) + 0.1)
        t = np.abs(random_values(rng, (2, 3), dtype))
        return Call(op, F.kl_div, [x, t / t.sum(1, keepdims=True)],
                    dict(reduction=str(rng.choice(["mean", "sum", "batchmean", "none"]))), meta)
    rank = 1 if op == "dropout1d" else 3
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + (2,) * rank
    return Call(op, getattr(F, op), [random_values(rng, shape, dtype)],
                dict(p=float(rng.choice([0.0, 0.5, 1.0])), training=True,
                     generator=np.random.default_rng(int(rng.integers(100)))), meta)


def functional_mutation(rng, call):
    names = list(FUNCTIONAL_ARGS.get(call.op, POINTWISE.get(call.op, (None, {}))[1]))
    if call.op in ("embedding", "kl_div") and rng.random() < 0.4:
        if call.op == "embedding":  # an index outside the table
            call.args[0] = np.array([[0, [6, -7, 2 ** 40][rng.integers(3)]]])
            return "input", "index out of range", ("index", "indices", "range", "num_embeddings")
        call.args[1] = np.ones((3, 2))
        return "target", "target of another shape", ("target", "shape")
    if not names:
        return mutate_input(rng, call)
    name = names[rng.integers(len(names))]
    value = pick_bad(rng)
    if name in ("reduction",):
        value = ["average", None, 1, "MEAN"][rng.integers(4)]
    call.kwargs[name] = value
    return name, f"{name}={describe(value)}", (name,) + {
        "normalized_shape": ("shape",), "num_groups": ("group", "channels"), "p": ("probability",),
        "dim": ("dimension",), "lambd": ("lambd",)}.get(name, ())


def _functional_reference(call, x):
    op, kw = call.op, call.kwargs
    v = x.astype(np.float64)
    if op == "celu":  # in the input's dtype: a huge alpha makes exp(x / alpha) - 1 cancel,
        a, dt = kw.get("alpha", 1.0), x.dtype.type  # as it does in PyTorch's kernel
        return np.where(x > 0, x, (np.exp(x * dt(1.0 / a)) - 1) * dt(a))
    if op in POINTWISE:
        return POINTWISE[op][0](v, kw)
    if op == "softmin":
        axis = -1 if kw["dim"] is None else kw["dim"]  # None: the last dim up to 2-D
        e = np.exp(-v - np.max(-v, axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
    if op == "glu":
        a, b = np.split(v, 2, axis=kw["dim"])
        return a * _np_sig(b)
    if op in ("layer_norm", "group_norm", "instance_norm"):
        if op == "layer_norm":
            axes = tuple(range(v.ndim - len(kw["normalized_shape"]), v.ndim))
            grouped = v
        else:
            groups = kw["num_groups"] if op == "group_norm" else v.shape[1]
            if v.size == 0:
                return v
            grouped, axes = v.reshape(v.shape[0], groups, -1), (2,)
        mean = grouped.mean(axis=axes, keepdims=True)
        var = ((grouped - mean) ** 2).mean(axis=axes, keepdims=True)
        return ((grouped - mean) / np.sqrt(var + kw["eps"])).reshape(v.shape)
    if op in ("normalize", "cosine_similarity") and not isinstance(kw["dim"], (int, np.integer)):
        return None  # a dims tuple the op took: no second formula here
    if op == "normalize":
        norm = np.linalg.norm(v, ord=float(kw["p"]), axis=int(kw["dim"]), keepdims=True)  # inf, 0, ...
        return v / np.maximum(norm, kw["eps"])
    if op == "cosine_similarity":  # each input over its own norm clamped to eps, as PyTorch
        v, y = np.broadcast_arrays(v, as_array(call.args[1]).astype(np.float64))
        axis = int(kw["dim"])
        nx = np.maximum(np.linalg.norm(v, axis=axis, keepdims=True), kw["eps"])
        ny = np.maximum(np.linalg.norm(y, axis=axis, keepdims=True), kw["eps"])
        return (v / nx * (y / ny)).sum(axis=axis)
    if op == "embedding":
        return call.meta["weight"][x]
    if op == "kl_div":
        t = as_array(call.args[1]).astype(np.float64)
        with np.errstate(all="ignore"):
            if kw.get("log_target"):
                terms = np.exp(t) * (t - v)
            else:
                terms = np.where(t > 0, t * (np.log(t) - v), 0.0)
        return {"none": terms, "sum": terms.sum(), "mean": terms.mean(),
                "batchmean": terms.sum() / v.shape[0]}[kw["reduction"]]
    return None  # channel dropout: checked by its own rule


def check_functional(call, x, result):
    out = array_of(first(result))
    if call.op in ("dropout1d", "dropout3d"):
        p = call.kwargs["p"]
        if call.kwargs["training"] is False or p == 0:  # (False is among the bad values)
            return [] if close(out, x, x.dtype, exact=True) else [f"{call.op} changed its input"]
        cells = int(np.prod(x.shape[2:], dtype=np.int64))
        ratio = np.where(x != 0, out / np.where(x == 0, 1, x), 0).reshape(x.shape[:2] + (cells,))
        scale = 0.0 if p == 1 else 1 / (1 - p)
        finite = np.isfinite(x).reshape(ratio.shape).all(axis=2)
        ok = np.isclose(ratio, 0) | np.isclose(ratio, scale, rtol=1e-5)
        return [] if out.shape == x.shape and ok[finite].all() else [f"{call.op} is not x * mask"]
    expected = _functional_reference(call, x)
    if expected is None:
        return []
    dtype = call.meta["weight"].dtype if call.op == "embedding" else x.dtype
    if out.dtype != dtype or out.shape != np.shape(expected):
        return [f"{call.op} gave {out.dtype}{out.shape}, expected {dtype}{np.shape(expected)}"]
    tol = 1e-4 if dtype == np.float32 else 1e-9
    if not np.allclose(out, expected, rtol=tol, atol=tol, equal_nan=True):
        return [f"{call.op} differs from NumPy"]
    return []


EXTRA_MUTATIONS["functional"] = functional_mutation
EXTRA_CHECKS["functional"] = check_functional
FAMILIES += [(op, make_functional_call) for op in FUNCTIONAL_OPS]


# ----------------------------------------------------------------------------- the torch.* tensor ops
# sort/argsort/topk, gather, masked_fill, nonzero, cumsum, prod, norm, split, chunk (the top-level
# torch.* forms), each against NumPy (stable sorts: NumPy's kind="stable", NaN last).
TENSOR_OPS = ["sort", "argsort", "topk", "gather", "masked_fill", "nonzero", "cumsum", "prod",
              "norm", "split", "chunk"]
TENSOR_ARGS = {"sort": ["dim", "descending"], "argsort": ["dim", "descending"],
               "topk": ["k", "dim", "largest"], "gather": ["dim", "index"], "masked_fill": ["mask", "value"],
               "nonzero": ["as_tuple"], "cumsum": ["dim"], "prod": ["dim", "keepdim"],
               "norm": ["p", "dim", "keepdim"], "split": ["split_size_or_sections", "dim"],
               "chunk": ["chunks", "dim"]}


def make_tensor_op_call(rng, op):
    dtype = [np.float32, np.float64][rng.integers(2)]
    shape = tuple(int(n) for n in rng.integers(1, 5, size=int(rng.integers(1, 4))))
    x = random_values(rng, shape, dtype)
    dim = int(rng.integers(-len(shape), len(shape)))
    meta = dict(family="tensor_op", allowed=["ValueError", "TypeError", "IndexError"])  # torch's
    kw = {}
    if op in ("sort", "argsort"):
        kw = dict(dim=dim, descending=bool(rng.integers(2)))
    elif op == "topk":
        kw = dict(k=int(rng.integers(0, shape[dim] + 1)), dim=dim, largest=bool(rng.integers(2)))
    elif op == "gather":
        index = rng.integers(0, shape[dim], size=shape)
        kw = dict(dim=dim, index=index)
    elif op == "masked_fill":
        kw = dict(mask=rng.random(shape) < 0.5, value=float(rng.standard_normal()))
    elif op == "nonzero":
        x = np.where(rng.random(shape) < 0.5, 0, x).astype(dtype)
    elif op in ("cumsum", "prod"):
        kw = dict(dim=dim)
    elif op == "norm":
        kw = dict(p=float(rng.choice([1.0, 2.0, 3.0])), dim=dim)
    elif op == "split":
        kw = dict(split_size_or_sections=int(rng.integers(1, shape[dim] + 1)), dim=dim)
    else:
        kw = dict(chunks=int(rng.integers(1, 5)), dim=dim)
    return Call(op, getattr(mp, op), [x], kw, meta)


def tensor_op_mutation(rng, call):
    name = TENSOR_ARGS[call.op][rng.integers(len(TENSOR_ARGS[call.op]))]
    value = pick_bad(rng)
    if name in ("index", "mask"):
        value = [np.ones((7, 7), np.int64) * 9, np.array([1.5]), "a", None, np.ones(3, np.int64) * -9,
                 np.zeros((2, 2, 2, 2, 2), np.bool_)][rng.integers(6)]
    call.kwargs[name] = value
    return name, f"{name}={describe(value)}", (name, "dimension", "index", "shape", "broadcast",
                                               "size", "range", "section", "chunk", "bool", "k")


def _tensor_op_reference(call, x):
    op, kw = call.op, call.kwargs
    if any(not isinstance(kw.get(k, 0), (int, np.integer)) or isinstance(kw.get(k), bool)
           for k in ("dim", "k", "chunks", "split_size_or_sections")) \
            or x.dtype not in (np.float32, np.float64) or x.ndim == 0:
        return None  # an odd argument or input the op took: no second formula here
    if op in ("sort", "argsort", "topk"):
        descending = kw.get("descending", op == "topk" and kw.get("largest", True))
        if np.isnan(x).any() or not isinstance(descending, (bool, np.bool_)):
            return None  # NaN's place is checked by the sort tests
        order = np.argsort(-x if descending else x, axis=kw["dim"], kind="stable")
        if op == "argsort":
            return [order]
        values = np.take_along_axis(x, order, kw["dim"])
        return [np.take(values, range(kw["k"]), axis=kw["dim"]) if op == "topk" else values]
    if op == "gather":
        return [np.take_along_axis(x, np.asarray(kw["index"]), kw["dim"])]
    if op == "masked_fill":
        return [np.where(kw["mask"], x.dtype.type(kw["value"]), x)]
    if op == "nonzero":
        return list(np.nonzero(np.atleast_1d(x))) if kw.get("as_tuple") is True else [np.argwhere(x != 0)]
    if op == "cumsum":
        return [np.cumsum(x, axis=kw["dim"])]
    if op == "prod":
        return [np.prod(x.astype(np.float64), axis=kw["dim"], keepdims=kw.get("keepdim") is True)]
    if op == "norm" and kw["p"] == 0:  # PyTorch's 0-"norm": how many entries are non-zero
        return [np.sum(x != 0, axis=kw["dim"], keepdims=kw.get("keepdim") is True).astype(np.float64)]
    if op == "norm":
        return [np.sum(np.abs(x.astype(np.float64)) ** kw["p"], axis=kw["dim"],
                       keepdims=kw.get("keepdim") is True) ** (1 / kw["p"])]
    size = x.shape[kw["dim"]]
    if size == 0:  # PyTorch: one empty piece from split, `chunks` empty pieces from chunk
        return [x] * (1 if op == "split" else kw["chunks"])
    step = kw["split_size_or_sections"] if op == "split" else -(-size // kw["chunks"])
    return [np.take(x, range(i, min(i + step, size)), axis=kw["dim"]) for i in range(0, size, step)]


def check_tensor_op(call, x, result):
    expected = _tensor_op_reference(call, x)
    if expected is None:
        return []
    got = [result] if isinstance(result, mp.Tensor) else list(result)
    got = got[:1] if call.op in ("sort", "topk") else got
    if len(got) != len(expected):
        return [f"{call.op} gave {len(got)} results, expected {len(expected)}"]
    for g, e in zip(got, expected):
        g = array_of(g)
        if g.shape != e.shape or not np.allclose(g, e, rtol=1e-4, atol=1e-5, equal_nan=True):
            return [f"{call.op} differs from NumPy"]
    return []


EXTRA_MUTATIONS["tensor_op"] = tensor_op_mutation
EXTRA_CHECKS["tensor_op"] = check_tensor_op
FAMILIES += [(op, make_tensor_op_call) for op in TENSOR_OPS]


# ----------------------------------------------------------------------------- habits, round 3
# prelu/rrelu, unfold/fold, cdist, unique/bincount/multinomial and the margin losses, each
# result against NumPy written again here (small inputs: plain loops where it is clearer).
HABIT3_ARGS = {
    "prelu": ["weight"], "rrelu": ["lower", "upper", "training"],
    "unfold": ["kernel_size", "dilation", "padding", "stride"],
    "fold": ["output_size", "kernel_size", "dilation", "padding", "stride"], "cdist": ["x2", "p"],
    "unique": ["dim", "return_counts", "return_inverse"], "bincount": ["minlength", "weights"],
    "multinomial": ["num_samples", "replacement"],
    "margin_ranking_loss": ["margin", "reduction", "target"], "hinge_embedding_loss": ["margin", "reduction", "target"],
    "cosine_embedding_loss": ["margin", "reduction", "target"],
    "triplet_margin_loss": ["margin", "p", "eps", "swap", "reduction"],
    "multi_margin_loss": ["p", "margin", "weight", "reduction", "target"],
}
HABIT3_OPS = list(HABIT3_ARGS)
HABIT3_FIRST = {"cdist": "x1", "margin_ranking_loss": "input1", "cosine_embedding_loss": "input1",
                "triplet_margin_loss": "anchor"}
HABIT3_NO_GRAD = ("unique", "bincount", "multinomial")


def make_habit3_call(rng, op):
    dtype = [np.float32, np.float64][rng.integers(2)]
    meta = dict(family="habit3", no_grad=op in HABIT3_NO_GRAD,
                allowed=["ValueError", "TypeError", "RuntimeError", "IndexError", "NotImplementedError"])
    n, d = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    fn = getattr(mp, op) if op in ("cdist", "unique", "bincount", "multinomial") else getattr(F, op)
    if op == "prelu":
        x = random_values(rng, (n, d, 3), dtype)
        return Call(op, fn, [x], dict(weight=random_values(rng, (int(rng.choice([1, d])),), dtype)), meta)
    if op == "rrelu":
        return Call(op, fn, [random_values(rng, (n, d), dtype)], dict(lower=0.1, upper=0.3, training=False), meta)
    if op in ("unfold", "fold"):
        size, kernel = (int(rng.integers(2, 6)), int(rng.integers(2, 6))), int(rng.integers(1, 3))
        geometry = dict(kernel_size=kernel, dilation=1, padding=int(rng.integers(0, 2)), stride=int(rng.integers(1, 3)))
        x = random_values(rng, (n, d) + size, dtype)
        if op == "unfold":
            return Call(op, fn, [x], geometry, meta)
        cols = random_values(rng, F.unfold(mp.Tensor(x), **geometry).shape, dtype)
        return Call(op, fn, [cols], dict(output_size=size, **geometry), meta)
    if op == "cdist":
        return Call(op, fn, [random_values(rng, (n, d), dtype)],
                    dict(x2=random_values(rng, (int(rng.integers(1, 4)), d), dtype),
                         p=float(rng.choice([0.0, 1.0, 2.0, 3.0, np.inf]))), meta)
    if op == "unique":
        x = rng.integers(0, 4, size=(n, d)).astype([np.int64, dtype][rng.integers(2)])
        return Call(op, fn, [x], dict(return_inverse=bool(rng.integers(2)), return_counts=bool(rng.integers(2)),
                                      dim=[None, 0, 1][rng.integers(3)]), meta)
    if op == "bincount":
        x = rng.integers(0, 6, size=int(rng.integers(0, 8)))
        return Call(op, fn, [x], dict(minlength=int(rng.integers(0, 8)),
                                      weights=None if rng.integers(2) else random_values(rng, x.shape, dtype)), meta)
    if op == "multinomial":
        w = np.abs(random_values(rng, (n, d), dtype)) + dtype(0.01)
        return Call(op, fn, [w], dict(num_samples=int(rng.integers(1, d + 1)), replacement=bool(rng.integers(2)),
                                      generator=int(rng.integers(100))), meta)
    reduction = str(rng.choice(["mean", "sum", "none"]))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(dtype)
    if op == "margin_ranking_loss":
        return Call(op, fn, [random_values(rng, (n,), dtype)],
                    dict(input2=random_values(rng, (n,), dtype), target=sign, margin=0.2, reduction=reduction), meta)
    if op == "hinge_embedding_loss":
        return Call(op, fn, [np.abs(random_values(rng, (n,), dtype))], dict(target=sign, margin=1.0, reduction=reduction), meta)
    if op == "cosine_embedding_loss":
        return Call(op, fn, [random_values(rng, (n, d), dtype)],
                    dict(input2=random_values(rng, (n, d), dtype), target=sign, margin=0.1, reduction=reduction), meta)
    if op == "triplet_margin_loss":
        return Call(op, fn, [random_values(rng, (n, d), dtype)],
                    dict(positive=random_values(rng, (n, d), dtype), negative=random_values(rng, (n, d), dtype),
                         margin=1.0, p=2.0, eps=1e-6, swap=bool(rng.integers(2)), reduction=reduction), meta)
    return Call(op, fn, [random_values(rng, (n, d), dtype)],
                dict(target=rng.integers(0, d, size=n), p=int(rng.choice([1, 2])), margin=1.0,
                     weight=None if rng.integers(2) else np.abs(random_values(rng, (d,), dtype)),
                     reduction=reduction), meta)


def habit3_mutation(rng, call):
    names = HABIT3_ARGS[call.op]
    name = names[rng.integers(len(names))]
    value = pick_bad(rng)
    if name == "reduction":
        value = ["average", None, 1, "MEAN"][rng.integers(4)]
    elif name in ("weight", "target", "weights", "x2") and rng.random() < 0.6:
        value = [np.ones((7, 7)), np.array([1.5]), np.zeros((0,)), np.ones(3, np.int64) * -9, "a"][rng.integers(5)]
    call.kwargs[name] = value
    return name, f"{name}={describe(value)}", (name, "shape", "dims", "dtype", "int", "float", "size", "columns",
                                               "bool", "number", "class", "channels", "slopes", "blocks")


def _unfold_loop(x, k, pad, stride):
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.zeros((n, c * k * k, oh * ow), x.dtype)
    for ch in range(c):
        for i in range(k):
            for j in range(k):
                for r in range(oh):
                    for q in range(ow):
                        y, z = r * stride - pad + i, q * stride - pad + j
                        if 0 <= y < h and 0 <= z < w:
                            out[:, (ch * k + i) * k + j, r * ow + q] = x[:, ch, y, z]
    return out


def _reduced(loss, reduction):
    return {"none": loss, "sum": loss.sum(), "mean": loss.mean() if loss.size else np.nan}[reduction]


def _habit3_reference(call, x):
    op, kw = call.op, call.kwargs
    v = x.astype(np.float64)
    if op == "prelu":
        w = as_array(kw["weight"]).astype(np.float64)
        slope = w.reshape(()) if w.size == 1 else w.reshape((1, -1) + (1,) * (x.ndim - 2))
        return np.where(v > 0, v, slope * v)
    if op == "rrelu":
        if kw["training"] is not False:
            return None  # random slopes: the layer's own test checks their law
        return np.where(v > 0, v, (float(kw["lower"]) + float(kw["upper"])) / 2 * v)
    if op == "unfold":
        plain = all(type(kw[k]) is int for k in ("kernel_size", "padding", "stride")) and kw["dilation"] == 1
        return _unfold_loop(v, kw["kernel_size"], kw["padding"], kw["stride"]) if x.ndim == 4 and plain else None
    if op == "cdist":
        d = np.abs(v[:, None, :] - as_array(kw["x2"]).astype(np.float64)[None, :, :])
        p = kw["p"]
        return np.count_nonzero(d, -1) if p == 0 else d.max(-1, initial=0) if p == np.inf else (d ** p).sum(-1) ** (1 / p)
    if op == "unique":
        return np.unique(x, axis=kw["dim"]) if not np.isnan(v).any() else None
    if op == "bincount":
        w = kw["weights"]
        return np.bincount(x, None if w is None else as_array(w).astype(np.float64), kw["minlength"])
    if op == "margin_ranking_loss":
        y = as_array(kw["target"]).astype(np.float64)
        return _reduced(np.maximum(-y * (v - as_array(kw["input2"])) + kw["margin"], 0), kw["reduction"])
    if op == "hinge_embedding_loss":
        y = as_array(kw["target"])  # a target neither 1 nor -1 gets both parts, as in PyTorch
        return _reduced(np.where(y != 1, np.maximum(kw["margin"] - v, 0), 0) + np.where(y != -1, v, 0),
                        kw["reduction"])
    if op == "cosine_embedding_loss":
        b = as_array(kw["input2"]).astype(np.float64)
        cos = (v * b).sum(1) / np.sqrt(((v * v).sum(1) + 1e-12) * ((b * b).sum(1) + 1e-12))
        y = as_array(kw["target"])  # a target neither 1 nor -1 gives 0, as in PyTorch
        return _reduced(np.where(y == 1, 1 - cos, 0) + np.where(y == -1, np.maximum(cos - kw["margin"], 0), 0),
                        kw["reduction"])
    if op == "triplet_margin_loss":
        pos, neg = (as_array(kw[k]).astype(np.float64) for k in ("positive", "negative"))
        if x.ndim != 2 or not all(isinstance(kw[k], float) for k in ("p", "eps", "margin")):
            return None
        def dist(a, b):
            return np.linalg.norm(a - b + kw["eps"], ord=kw["p"], axis=1)
        d_pos, d_neg = dist(v, pos), dist(v, neg)
        if kw["swap"] is True:
            d_neg = np.minimum(d_neg, dist(pos, neg))
        return _reduced(np.maximum(d_pos - d_neg + kw["margin"], 0), kw["reduction"])
    if op == "multi_margin_loss" and x.ndim == 2:
        y, w = np.asarray(kw["target"]), kw["weight"]
        losses = []
        for row, t in zip(x, y):  # in the input's dtype: a huge margin squared overflows there too
            z = x.dtype.type(kw["margin"]) - row[t] + row
            hinge = np.where(z > 0, z, 0) ** kw["p"]  # PyTorch's kernel tests z > 0: NaN adds 0
            hinge[t] = 0
            losses.append(hinge.sum() * (1.0 if w is None else float(as_array(w)[t])) / row.size)
        return _reduced(np.array(losses), kw["reduction"])
    return None  # fold (its own test checks values) and multinomial (checked below)


def check_habit3(call, x, result):
    out = array_of(first(result))
    if call.op == "multinomial":
        n = call.kwargs["num_samples"]
        rows = out.reshape(-1, n) if out.size else out
        ok = out.dtype == np.int64 and out.shape == x.shape[:-1] + (n,) and ((out >= 0) & (out < x.shape[-1])).all()
        if ok and call.kwargs["replacement"] is False:
            ok = all(len(set(r)) == n for r in rows)
        return [] if ok else [f"multinomial gave {out.dtype}{out.shape}: {out.tolist()}"]
    if call.op == "fold":
        size = call.kwargs["output_size"]
        return [] if out.shape[-2:] == tuple(size) else [f"fold gave shape {out.shape}, not {size}"]
    if any(not isinstance(a, np.ndarray) for a in call.args) or x.dtype.kind not in "fiu":
        return []  # a list input the op took: no second formula here
    expected = _habit3_reference(call, x)
    if expected is None:
        return []
    tol = 1e-4 if out.dtype == np.float32 else 1e-9
    if out.shape != np.shape(expected) or not np.allclose(out, expected, rtol=tol, atol=tol, equal_nan=True):
        return [f"{call.op} differs from NumPy: {out.shape} vs {np.shape(expected)}"]
    return []


EXTRA_MUTATIONS["habit3"] = habit3_mutation
EXTRA_CHECKS["habit3"] = check_habit3
FAMILIES += [(op, make_habit3_call) for op in HABIT3_OPS]


if __name__ == "__main__":
    main()
