"""Convolutions, transposed convolutions, batch normalisation and padding."""
import numpy as np

from minipool.onnx._graph import channels_first_around
from minipool.onnx.table import converts
from minipool.ops import batchnorm, padding
from minipool.ops.conv import Conv2dChannelsLastFn, Conv2dFn
from minipool.ops.conv_transpose import ConvTranspose2dFn


def _conv_pads(size, kernel, stride, before, dilation, out):
    """(before, after): the padding after is whatever the last window reaches past the input
    (never negative: ONNX floors the output size as PyTorch does)."""
    reach = (out - 1) * stride + dilation * (kernel - 1) + 1
    return before, max(0, reach - size - before)


@converts(Conv2dFn, Conv2dChannelsLastFn)
def conv2d(g, event):
    """Conv with the resolved geometry conv2d hands its Function (so "same", "valid" and
    asymmetric padding are all plain pads here)."""
    x, weight, bias, geometry = event.args["args"][:4]
    kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, groups = tuple(geometry)[:11]
    channels_last = event.key is Conv2dChannelsLastFn
    H, W = x.shape[1:3] if channels_last else x.shape[2:4]
    top, bottom = _conv_pads(H, kh, sh, ph, dh, Ho)
    left, right = _conv_pads(W, kw, sw, pw, dw, Wo)
    inputs = [g.value(weight)] + ([g.value(bias)] if bias is not None else [])

    def body(name):
        return g.node("Conv", [name] + inputs, kernel_shape=[kh, kw], strides=[sh, sw],
                      dilations=[dh, dw], pads=[top, left, bottom, right], group=int(groups))
    return channels_first_around(g, g.value(x), 4, 2, channels_last, body)


@converts(ConvTranspose2dFn)
def conv_transpose2d(g, event):
    """ConvTranspose: ONNX's output size formula is PyTorch's, output_padding included.

    PyTorch accepts an output_padding below the stride *or* the dilation; onnxruntime only
    below the stride.  Beyond it, the extra rows are what the padding would have cropped
    (pads after shrunk by output_padding) and, past that, rows no input reaches (zeros, then
    the bias): a Pad between the bias-free ConvTranspose and the bias.
    """
    x, weight, bias, geometry, out_chw, channels_last = event.args["args"][:6]
    kh, kw, sh, sw, ph, pw, dh, dw, H, W, groups = tuple(geometry)[:11]
    _, Hout, Wout = out_chw
    extra, after, tail = [], [], []
    for n, k, s, p, d, o in ((H, kh, sh, ph, dh, Hout), (W, kw, sw, pw, dw, Wout)):
        op = o - ((n - 1) * s - 2 * p + d * (k - 1) + 1)
        if op < s:
            extra.append(op), after.append(p), tail.append(0)
        else:
            extra.append(0), after.append(max(0, p - op)), tail.append(max(0, op - p))
    split_bias = any(tail) and bias is not None
    inputs = [g.value(weight)] + ([g.value(bias)] if bias is not None and not split_bias else [])

    def body(name):
        out = g.node("ConvTranspose", [name] + inputs, kernel_shape=[kh, kw], strides=[sh, sw],
                     dilations=[dh, dw], pads=[ph, pw] + after, output_padding=extra,
                     group=int(groups))
        if any(tail):
            out = g.node("Pad", [out, g.ints([0, 0, 0, 0, 0, 0] + tail)])
        if split_bias:
            b = g.const(np.asarray(bias._data).reshape(-1, 1, 1), "bias")
            out = g.node("Add", [out, b])
        return out
    return channels_first_around(g, g.value(x), 4, 2, bool(channels_last), body)


@converts(batchnorm.normalize_over_axis)
def batch_norm(g, event):
    """BatchNormalization (inference form) over the channel axis; another axis than 1
    (channels_last, Keras's axis) is moved to 1 and back with Transpose."""
    a = event.args
    x = a["input"]
    if a["training"]:
        g.fail("batch_norm with training=True (batch statistics) has no inference form; "
               "export calls model.eval(), so pass training=self.training")
    axis = int(a["axis"]) % x.ndim
    C = x.shape[axis]
    dt = x.dtype

    def channel(value, fill):
        if value is None:
            return g.const(np.full(C, fill, dtype=dt), "bn")
        return g.value(value)
    inputs = [channel(a["weight"], 1.0), channel(a["bias"], 0.0),
              channel(a["running_mean"], 0.0), channel(a["running_var"], 1.0)]
    name = g.value(x)
    if x.ndim == 2 or axis == 1:
        return g.node("BatchNormalization", [name] + inputs, epsilon=float(a["eps"]))
    perm = [0, axis] + [d for d in range(1, x.ndim) if d != axis]
    back = list(np.argsort(perm))
    if axis == 0:
        g.fail("batch_norm over axis 0 (the batch) has no ONNX form here")
    name = g.node("Transpose", [name], perm=perm)
    name = g.node("BatchNormalization", [name] + inputs, epsilon=float(a["eps"]))
    return g.node("Transpose", [name], perm=[int(p) for p in back])


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@converts(padding.pad)
def pad(g, event):
    """Pad; PyTorch's (last dim first) pairs become ONNX's begins-then-ends over every axis."""
    a = event.args
    x = a["input"]
    pairs = padding._pad_pairs(a["pad"], x.ndim)
    mode = a["mode"]
    if mode == "circular" and g.opset < 19:
        g.fail("pad(mode='circular') needs ONNX's Pad mode 'wrap', opset >= 19; pass opset=19")
    if pairs and pairs[0] != (0, 0) and g.batch_of(x) == 0:
        g.fail("padding the batch axis fixes the batch size; export with dynamic_batch=False")
    pads = [int(lo) for lo, _ in pairs] + [int(hi) for _, hi in pairs]
    inputs = [g.value(x), g.ints(pads)]
    if mode == "constant":
        inputs.append(g.scalar(0 if a["value"] is None else a["value"], x.dtype))
    return g.node("Pad", inputs, mode=_PAD_MODES[mode])
