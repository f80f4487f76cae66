"""Resizing: interpolate (every mode) as Resize, pixel (un)shuffle as DepthToSpace /
SpaceToDepth.

Resize's attributes that reproduce PyTorch's numbers:

* nearest: ``asymmetric`` coordinates and ``floor`` rounding (src = floor(dst / scale));
* nearest-exact: ``half_pixel`` and ``round_prefer_ceil`` (src = floor((dst + 0.5) / scale));
* linear/bilinear/trilinear/bicubic: ``align_corners``, or ``half_pixel`` (PyTorch's
  src = (dst + 0.5) / scale - 0.5, also for an output of size 1, which
  ``pytorch_half_pixel`` would send to 0); bicubic with ``cubic_coeff_a=-0.75``;
* a given scale_factor is passed as Resize's scales (PyTorch then steps by
  1 / scale_factor, not in/out), a size as Resize's sizes;
* area: adaptive average pooling (a plain AveragePool when the sizes divide).
"""
import numpy as np

from minipool.onnx._graph import channels_first_around
from minipool.onnx.table import converts
from minipool.ops import upsampling

_MODES = {"nearest": "nearest", "nearest-exact": "nearest", "linear": "linear",
          "bilinear": "linear", "trilinear": "linear", "bicubic": "cubic"}


@converts(upsampling._resample)
def resample(g, event):
    a = event.args
    x, mode = a["x"], a["mode"]
    in_sizes, out_sizes, scales = tuple(a["in_sizes"]), tuple(a["out_sizes"]), a["scales"]
    channels_last, antialias = bool(a["channels_last"]), bool(a.get("antialias", False))
    rank = len(in_sizes)
    if x.dtype == np.uint8:
        g.fail("interpolate of uint8 images (fixed-point rounding) has no ONNX form here; "
               "convert to float32 first")
    if mode == "area":
        return _area(g, x, in_sizes, out_sizes, channels_last)
    attrs = {"mode": _MODES[mode]}
    if mode == "nearest":
        attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif mode == "nearest-exact":
        attrs.update(coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil")
    else:
        attrs["coordinate_transformation_mode"] = "align_corners" if a["align_corners"] else "half_pixel"
        if mode == "bicubic":
            attrs.update(cubic_coeff_a=-0.75, exclude_outside=0)
    if antialias:
        # Resize's antialias filter (opset 18) gives other numbers than PyTorch's (checked
        # against onnxruntime: up to 0.1 apart), so it is refused rather than exported wrong.
        g.fail("interpolate(antialias=True) has no ONNX form that reproduces PyTorch's numbers; "
               "export the model with antialias=False")
    given = all(s is not None for s in scales)
    nd = x.ndim
    spatial = list(range(1, nd - 1)) if channels_last else list(range(2, nd))
    name = g.value(x)
    # An axis whose size a scale_factor keeps (e.g. 4 * 1.1 -> 4): PyTorch copies it in
    # linear modes and resamples it with step 1 / scale_factor in the others; onnxruntime
    # does neither reliably.  Such an axis gets scale 1 in the Resize (an exact copy) and,
    # in the other modes, its own Gather of minipool's source table afterwards.
    kept = [i for i, (n, o, s) in enumerate(zip(in_sizes, out_sizes, scales))
            if given and n == o and s != 1.0]
    if kept:
        scales = tuple(1.0 if i in kept else s for i, s in enumerate(scales))
        if all(s == 1.0 for s in scales):
            out = g.node("Identity", [name])
        else:
            out = _resize(g, name, nd, spatial, True, scales, out_sizes, attrs)
        if mode in ("linear", "bilinear", "trilinear"):
            return out
        for i in kept:
            out = _resample_axis(g, out, spatial[i], in_sizes[i], a["scales"][i], mode,
                                 bool(a["align_corners"]), x.dtype, nd)
        return out
    return _resize(g, name, nd, spatial, given, scales, out_sizes, attrs)


def _resample_axis(g, name, axis, n, scale_factor, mode, align_corners, dtype, nd):
    """One axis resampled from ``n`` to ``n`` cells with step 1 / scale_factor, by Gather of
    minipool's own source indices (nearest) or taps and weights (bicubic)."""
    ft = np.float64 if dtype == np.float64 else np.float32
    if mode in ("nearest", "nearest-exact"):
        idx = upsampling.nearest_source(n, n, scale_factor, mode == "nearest-exact", ft)
        return g.node("Gather", [name, g.const(np.asarray(idx, np.int64), "source")], axis=axis)
    idx, w = upsampling.linear_taps(n, n, scale_factor, align_corners, True, ft)
    total = None
    for k in range(idx.shape[1]):
        taps = g.node("Gather", [name, g.const(np.asarray(idx[:, k], np.int64), "taps")], axis=axis)
        weight = g.const(w[:, k].astype(dtype).reshape((n,) + (1,) * (nd - 1 - axis)), "weights")
        term = g.node("Mul", [taps, weight])
        total = term if total is None else g.node("Add", [total, term])
    return total


def _resize(g, name, nd, spatial, given, scales, out_sizes, attrs):
    # Resize works axis by axis, so channels_last needs no Transpose: the spatial axes are
    # 1..nd-2.  Full-rank scales (1 on batch and channels) or sizes (batch and channels read
    # at run time) leave the batch free in every opset; Resize's ``axes`` is avoided (an
    # onnxruntime graph optimisation mishandles it next to a Transpose).
    if given:
        full = np.ones(nd, np.float32)
        full[spatial] = scales
        return g.node("Resize", [name, "", g.const(full, "scales")], **attrs)
    shape = g.node("Shape", [name])
    known = np.zeros(nd, np.int64)
    known[spatial] = out_sizes
    keep = np.ones(nd, np.int64)
    keep[spatial] = 0
    sizes = g.node("Add", [g.node("Mul", [shape, g.const(keep, "keep")]), g.const(known, "sizes")])
    return g.node("Resize", [name, "", "", sizes], **attrs)


def _area(g, x, in_sizes, out_sizes, channels_last):
    rank = len(in_sizes)
    if all(o == 1 for o in out_sizes):
        return channels_first_around(g, g.value(x), x.ndim, rank, channels_last,
                                     lambda name: g.node("GlobalAveragePool", [name]))
    if any(n % o for n, o in zip(in_sizes, out_sizes)):
        g.fail(f"interpolate(mode='area') from {in_sizes} to {out_sizes} has no ONNX form: the "
               "input size must be a multiple of the output size")
    kernel = [n // o for n, o in zip(in_sizes, out_sizes)]
    return channels_first_around(
        g, g.value(x), x.ndim, rank, channels_last,
        lambda name: g.node("AveragePool", [name], kernel_shape=kernel, strides=kernel))


def _shuffle_input(g, x, op):
    if x.ndim not in (3, 4):
        g.fail(f"{op} of a {x.ndim}-D input has no ONNX form here (3-D or 4-D only)")


@converts(upsampling.pixel_shuffle)
def pixel_shuffle(g, event):
    """DepthToSpace in CRD mode is exactly PyTorch's channel order."""
    x, r = event.args["input"], int(event.args["upscale_factor"])
    _shuffle_input(g, x, "pixel_shuffle")
    return channels_first_around(g, g.value(x), x.ndim, 2, False,
                                 lambda name: g.node("DepthToSpace", [name], blocksize=r, mode="CRD"))


@converts(upsampling.pixel_unshuffle)
def pixel_unshuffle(g, event):
    """SpaceToDepth orders its outputs (block offset, channel); PyTorch orders them (channel,
    block offset): a Gather over the channels reorders them."""
    x, r = event.args["input"], int(event.args["downscale_factor"])
    _shuffle_input(g, x, "pixel_unshuffle")
    C = x.shape[-3]
    order = np.array([k * C + c for c in range(C) for k in range(r * r)], dtype=np.int64)

    def body(name):
        s2d = g.node("SpaceToDepth", [name], blocksize=r)
        return g.node("Gather", [s2d, g.const(order, "channel_order")], axis=1)
    return channels_first_around(g, g.value(x), x.ndim, 2, False, body)
