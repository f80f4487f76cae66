"""Element-wise arithmetic, activations, reductions, softmax, shape ops and matmul.

Most of these are traced at the Function level (``x + y`` never passes a
functional); activations with parameters are traced at their functional, whose
arguments are the PyTorch ones.
"""
import math

import numpy as np

from minipool.onnx.table import converts
from minipool.ops import activations as A
from minipool.ops import elementwise as E
from minipool.ops import inplace, linalg, nn_ops, reduce, shape


def _args(event):
    return event.args["args"]


# ----------------------------------------------------------------------------- arithmetic
_BINARY = {E.Add: "Add", E.Sub: "Sub", E.Mul: "Mul", E.Div: "Div", E.Pow: "Pow",
           reduce._Maximum: "Max", reduce._Minimum: "Min", linalg.MatMul: "MatMul"}
_UNARY = {E.Neg: "Neg", E.Exp: "Exp", E.Log: "Log", E.Sqrt: "Sqrt", E.Abs: "Abs", E.Tanh: "Tanh",
          E.Sigmoid: "Sigmoid", E.Relu: "Relu", inplace.Clone: "Identity"}


@converts(*_BINARY)
def binary(g, event):
    a, b = _args(event)[:2]
    return g.node(_BINARY[event.key], [g.value(a), g.value(b)])


@converts(*_UNARY)
def unary(g, event):
    return g.node(_UNARY[event.key], [g.value(_args(event)[0])])


@converts(E.Clip)
def clip(g, event):
    x, lo, hi = _args(event)
    dtype = x.dtype
    bounds = ["" if v is None else g.scalar(v, dtype) for v in (lo, hi)]
    return g.node("Clip", [g.value(x)] + bounds)


# ----------------------------------------------------------------------------- activations
@converts(A.leaky_relu)
def leaky_relu(g, event):
    a = event.args
    return g.node("LeakyRelu", [g.value(a["input"])], alpha=float(a["negative_slope"]))


@converts(A.elu)
def elu(g, event):
    a = event.args
    return g.node("Elu", [g.value(a["input"])], alpha=float(a["alpha"]))


@converts(A.hardtanh)
def hardtanh(g, event):
    a = event.args
    x = a["input"]
    return g.node("Clip", [g.value(x), g.scalar(a["min_val"], x.dtype), g.scalar(a["max_val"], x.dtype)])


@converts(A.relu6)
def relu6(g, event):
    x = event.args["input"]
    return g.node("Clip", [g.value(x), g.scalar(0.0, x.dtype), g.scalar(6.0, x.dtype)])


@converts(A.silu)
def silu(g, event):
    x = g.value(event.args["input"])
    return g.node("Mul", [x, g.node("Sigmoid", [x])])


@converts(A.gelu)
def gelu(g, event):
    """Gelu since opset 20; before, 0.5 x (1 + erf(x / sqrt 2)) or the tanh form."""
    x_t = event.args["input"]
    approximate = event.args["approximate"]
    x = g.value(x_t)
    if g.opset >= 20:
        return g.node("Gelu", [x], approximate=approximate)
    dt = x_t.dtype
    if approximate == "tanh":
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, g.scalar(0.044715, dt)])])
        t = g.node("Tanh", [g.node("Mul", [inner, g.scalar(math.sqrt(2 / math.pi), dt)])])
    else:
        t = g.node("Erf", [g.node("Mul", [x, g.scalar(math.sqrt(0.5), dt)])])
    half_x = g.node("Mul", [x, g.scalar(0.5, dt)])
    return g.node("Mul", [half_x, g.node("Add", [t, g.scalar(1.0, dt)])])


@converts(A.softplus)
def softplus(g, event):
    """PyTorch's softplus: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    a = event.args
    x_t = a["input"]
    dt = x_t.dtype
    x = g.value(x_t)
    beta, threshold = float(a["beta"]), float(a["threshold"])
    bx = x if beta == 1.0 else g.node("Mul", [x, g.scalar(beta, dt)])
    soft = g.node("Softplus", [bx])
    if beta != 1.0:
        soft = g.node("Div", [soft, g.scalar(beta, dt)])
    return g.node("Where", [g.node("Greater", [bx, g.scalar(threshold, dt)]), x, soft])


@converts(nn_ops.dropout, A.dropout2d)
def dropout(g, event):
    if event.args["training"] and event.args["p"] != 0:
        g.fail("dropout in training mode has no deterministic ONNX form; export calls model.eval() "
               "first, so pass training=self.training to F.dropout")
    return g.node("Identity", [g.value(event.args["input"])])


# ----------------------------------------------------------------------------- reductions
_REDUCE = {reduce.Sum: "ReduceSum", reduce.Mean: "ReduceMean", reduce.Max: "ReduceMax",
           reduce.Min: "ReduceMin", reduce.LogSumExp: "ReduceLogSumExp"}


@converts(*_REDUCE)
def reduction(g, event):
    x, dims, keepdim = _args(event)[:3]
    return g.reduce(_REDUCE[event.key], g.value(x), dims, keepdim)


@converts(reduce._MaxAt, reduce._MinAt)
def extreme_at(g, event):
    x, axis, keepdim = _args(event)[:3]
    name = g.value(x)
    kind = "Max" if event.key is reduce._MaxAt else "Min"
    values = g.reduce("Reduce" + kind, name, [axis], keepdim)
    return values, g.node("Arg" + kind, [name], axis=int(axis), keepdims=int(keepdim))


@converts(reduce.Softmax, reduce.LogSoftmax)
def softmax(g, event):
    x, axis = _args(event)[:2]
    op = "Softmax" if event.key is reduce.Softmax else "LogSoftmax"
    return g.node(op, [g.value(x)], axis=int(axis))


# ----------------------------------------------------------------------------- shapes
@converts(shape.Reshape)
def reshape(g, event):
    x = _args(event)[0]
    return g.reshape(g.value(x), x, event.output.shape)


@converts(shape.Permute)
def permute(g, event):
    x, axes = _args(event)[:2]
    return g.node("Transpose", [g.value(x)], perm=[int(a) for a in axes])


@converts(shape.BroadcastTo)
def broadcast_to(g, event):
    x, target = _args(event)[:2]
    target = list(target)
    if g.batch_of(x) == 0 and x.ndim == len(target):
        target[0] = 1  # Expand broadcasts both ways: 1 keeps the runtime batch
    return g.node("Expand", [g.value(x), g.ints(target)])


@converts(shape.Cat)
def cat(g, event):
    axis, *tensors = _args(event)
    return g.node("Concat", [g.value(t) for t in tensors], axis=int(axis))


@converts(shape.GetItem)
def getitem(g, event):
    """Basic indexing (ints, slices with any step, ``...``, None) as Slice, Squeeze, Unsqueeze."""
    x, idx = _args(event)[:2]
    items = idx if isinstance(idx, tuple) else (idx,)
    if any(not (i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer))) or
           isinstance(i, bool) for i in items):
        g.fail("indexing with arrays, masks or booleans has no ONNX form here (use slices and ints)")
    if items.count(Ellipsis) == 1:
        at = items.index(Ellipsis)
        used = sum(i is not None for i in items) - 1
        items = items[:at] + (slice(None),) * (x.ndim - used) + items[at + 1:]
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    axis = 0
    for i in items:
        if i is None:
            continue
        if isinstance(i, slice):
            start, stop, step = i.indices(x.shape[axis])
            if (start, stop, step) != (0, x.shape[axis], 1):
                if axis == 0 and g.batch_of(x) == 0:
                    g.fail("slicing the batch axis fixes the batch size; export with dynamic_batch=False")
                if step < 0 and stop < 0:
                    stop = -x.shape[axis] - 1  # "before index 0" for a negative step
                starts.append(start); ends.append(stop); axes.append(axis); steps.append(step)
        else:
            k = int(i) % x.shape[axis]
            starts.append(k); ends.append(k + 1); axes.append(axis); steps.append(1)
            squeeze.append(axis)
        axis += 1
    name = g.value(x)
    if axes:
        name = g.node("Slice", [name, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    if squeeze:
        name = g.squeeze(name, squeeze)
    out_axis = 0
    for i in items:  # None inserts a new axis where it stands among the kept axes
        if i is None:
            unsqueeze.append(out_axis)
            out_axis += 1
        elif isinstance(i, slice):
            out_axis += 1
    if unsqueeze:
        name = g.unsqueeze(name, unsqueeze)
    return name


# ----------------------------------------------------------------------------- linear
@converts(nn_ops.LinearFn)
def linear(g, event):
    x, weight, bias = _args(event)[:3]
    if x.ndim == 2:
        inputs = [g.value(x), g.value(weight)] + ([g.value(bias)] if bias is not None else [])
        return g.node("Gemm", inputs, transB=1)
    out = g.node("MatMul", [g.value(x), g.const(np.ascontiguousarray(weight._data.T), "weight_t")])
    return out if bias is None else g.node("Add", [out, g.value(bias)])
