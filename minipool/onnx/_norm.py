"""layer_norm, group_norm, instance_norm, embedding and the activations of activations_more.

* layer_norm: LayerNormalization (opset 17 on); before 17 the same statistics from
  ReduceMean (mean, then the mean of the squared deviations: the biased variance).
* instance_norm: InstanceNormalization with the plane statistics; with the running
  statistics (an InstanceNorm layer tracking them, in eval mode) it is batch_norm's
  inference form, BatchNormalization.
* group_norm: InstanceNormalization over an (N, G, -1) view (each group is one
  "instance"), reshaped back, then the per-channel weight and bias.
* embedding: Gather of the table's rows (axis 0).
* hardsigmoid, hardswish, mish, selu, celu, softsign, hard/softshrink: their ONNX ops
  (HardSwish from opset 14, Mish from 18, compositions before); logsigmoid is
  -Softplus(-x), threshold a Where.
"""
import inspect

import numpy as np

from minipool.onnx.table import converts
from minipool.ops import activations_more as M
from minipool.ops import embedding as E
from minipool.ops import normalization as N


def _affine_or(g, value, shape, fill, dtype, hint):
    """The value of an optional weight/bias, or a constant of ``fill`` of that shape."""
    if value is None:
        return g.const(np.full(shape, fill, dtype=dtype), hint)
    return g.value(value)


def _per_channel(g, name, value, op, ndim):
    """``name * weight`` or ``name + bias`` with a (C,) vector broadcast over (N, C, ...)."""
    if value is None:
        return name
    shaped = g.const(np.asarray(value._data).reshape((-1,) + (1,) * (ndim - 2)), "affine")
    return g.node(op, [name, shaped])


@converts(N.layer_norm)
def layer_norm(g, event):
    a = event.args
    x = a["input"]
    shape = N.normalized_shape_argument(a["normalized_shape"], "layer_norm")
    axes = list(range(x.ndim - len(shape), x.ndim))
    if axes[0] == 0 and g.batch_of(x) == 0:
        g.fail("layer_norm over the batch axis mixes samples; export with dynamic_batch=False")
    eps, name = float(a["eps"]), g.value(x)
    if g.opset >= 17:
        scale = _affine_or(g, a["weight"], shape, 1.0, x.dtype, "ln_weight")
        inputs = [name, scale] + ([] if a["bias"] is None else [g.value(a["bias"])])
        return g.node("LayerNormalization", inputs, axis=axes[0], epsilon=eps)
    mean = g.reduce("ReduceMean", name, axes, True)
    centred = g.node("Sub", [name, mean])
    var = g.reduce("ReduceMean", g.node("Mul", [centred, centred]), axes, True)
    out = g.node("Div", [centred, g.node("Sqrt", [g.node("Add", [var, g.scalar(eps, x.dtype)])])])
    if a["weight"] is not None:
        out = g.node("Mul", [out, g.value(a["weight"])])
    if a["bias"] is not None:
        out = g.node("Add", [out, g.value(a["bias"])])
    return out


@converts(N.instance_norm)
def instance_norm(g, event):
    a = event.args
    x = a["input"]
    C, dt, name = x.shape[1], x.dtype, g.value(x)
    scale = _affine_or(g, a["weight"], (C,), 1.0, dt, "in_weight")
    bias = _affine_or(g, a["bias"], (C,), 0.0, dt, "in_bias")
    if not a["use_input_stats"]:
        stats = [g.value(a["running_mean"]), g.value(a["running_var"])]
        return g.node("BatchNormalization", [name, scale, bias] + stats, epsilon=float(a["eps"]))
    return g.node("InstanceNormalization", [name, scale, bias], epsilon=float(a["eps"]))


@converts(N.group_norm)
def group_norm(g, event):
    a = event.args
    x = a["input"]
    G, dt = int(a["num_groups"]), x.dtype
    grouped = g.node("Reshape", [g.value(x), g.ints([0, G, -1])])  # 0: keep N (dynamic batch)
    normed = g.node("InstanceNormalization",
                    [grouped, g.const(np.ones(G, dt), "gn_one"), g.const(np.zeros(G, dt), "gn_zero")],
                    epsilon=float(a["eps"]))
    out = g.node("Reshape", [normed, g.node("Shape", [g.value(x)])])
    out = _per_channel(g, out, a["weight"], "Mul", x.ndim)
    return _per_channel(g, out, a["bias"], "Add", x.ndim)


@converts(E.embedding)
def embedding(g, event):
    a = event.args
    if a["max_norm"] is not None:
        g.fail("embedding with max_norm (it rescales the table's rows as it reads them) has no "
               "ONNX form here; renormalise the weight once and export with max_norm=None")
    return g.node("Gather", [g.value(a["weight"]), g.value(a["input"])], axis=0)


# ----------------------------------------------------------------------------- more activations
# (minipool/ops/activations_more.py; each functional is traced with its PyTorch arguments)
@converts(M.hardsigmoid)
def hardsigmoid(g, event):
    return g.node("HardSigmoid", [g.value(event.args["input"])], alpha=1.0 / 6, beta=0.5)


@converts(M.hardswish)
def hardswish(g, event):
    x = g.value(event.args["input"])
    if g.opset >= 14:
        return g.node("HardSwish", [x])
    return g.node("Mul", [x, g.node("HardSigmoid", [x], alpha=1.0 / 6, beta=0.5)])


@converts(M.logsigmoid)
def logsigmoid(g, event):
    x = g.value(event.args["input"])
    return g.node("Neg", [g.node("Softplus", [g.node("Neg", [x])])])


@converts(M.mish)
def mish(g, event):
    x = g.value(event.args["input"])
    if g.opset >= 18:
        return g.node("Mish", [x])
    return g.node("Mul", [x, g.node("Tanh", [g.node("Softplus", [x])])])


@converts(M.selu)
def selu(g, event):
    return g.node("Selu", [g.value(event.args["input"])], alpha=M.SELU_ALPHA, gamma=M.SELU_SCALE)


@converts(M.celu)
def celu(g, event):
    return g.node("Celu", [g.value(event.args["input"])], alpha=float(event.args["alpha"]))


@converts(M.softsign)
def softsign(g, event):
    return g.node("Softsign", [g.value(event.args["input"])])


@converts(M.hardshrink, M.softshrink)
def shrink(g, event):
    lambd = float(event.args["lambd"])
    soft = event.key is inspect.unwrap(M.softshrink)
    return g.node("Shrink", [g.value(event.args["input"])], lambd=lambd, bias=lambd if soft else 0.0)


@converts(M.threshold)
def threshold(g, event):
    a = event.args
    x_t = a["input"]
    x = g.value(x_t)
    above = g.node("Greater", [x, g.scalar(a["threshold"], x_t.dtype)])
    return g.node("Where", [above, x, g.scalar(a["value"], x_t.dtype)])
