"""minipool.onnx.export, checked with the real runtime: onnxruntime's outputs equal
minipool's (rtol = atol = 1e-5, float32) for batch 1 and another batch size than the one
traced (dynamic batch), per model, per op family, per pooling attribute and per
interpolate mode.  Skipped as a whole when onnx / onnxruntime are not installed
(``pip install minipool[onnx]``)."""
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import minipool as mp  # noqa: E402
import minipool.nn as nn  # noqa: E402
import minipool.nn.functional as F  # noqa: E402
import minipool.onnx as mo  # noqa: E402
from minipool.models import LeNet5, LeNet5Classic, TinyVGG  # noqa: E402
from tests.helpers import CHECKOUT  # noqa: E402

TOL = 1e-5


class Fn(nn.Module):
    """A model whose forward is ``fn(x)`` (for one functional op)."""

    def __init__(self, fn, *layers):
        super().__init__()
        self.fn = fn
        self.layers = nn.Sequential(*layers) if layers else None

    def forward(self, x):
        return self.fn(self.layers(x) if self.layers is not None else x)


def _data(shape, seed, positive=False):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.abs(x) + 0.1 if positive else x


def roundtrip(model, shape, batches=(1, 3), trace_batch=2, opset=None, positive=False, data=None,
              dynamic_batch=True):
    """Export ``model`` traced on a batch of ``trace_batch`` and compare onnxruntime with
    minipool on each batch size in ``batches``; returns the ModelProto."""
    if data is None:
        data = lambda b, seed: _data((b,) + tuple(shape), seed, positive)  # noqa: E731
    proto = mo.build(model, mp.tensor(data(trace_batch, 0)), opset=opset,
                     dynamic_batch=dynamic_batch)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    model.eval()
    for b in batches:
        x = data(b, 100 + b)
        want = model(mp.tensor(x))
        got = session.run(None, {"input": x})
        wants = want if isinstance(want, tuple) else (want,)
        assert len(got) == len(wants)
        for w, o in zip(wants, got):
            assert o.shape == w.shape, (o.shape, w.shape)
            np.testing.assert_allclose(o, w.numpy(), rtol=TOL, atol=TOL)
    return proto


def op_types(proto):
    return [n.op_type for n in proto.graph.node]


def attrs_of(proto, op_type):
    node = next(n for n in proto.graph.node if n.op_type == op_type)
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


# ----------------------------------------------------------------------------- models
@pytest.mark.parametrize("batches", [(1, 3), (1, 5)])
def test_lenet5(batches):
    proto = roundtrip(LeNet5(seed=0), (1, 32, 32), batches)
    assert op_types(proto).count("Conv") == 2 and "MaxPool" in op_types(proto)


@pytest.mark.parametrize("output", ["rbf", "softmax"])
def test_lenet5_classic(output):
    """The 1998 net: scaled tanh (Mul, Tanh, Mul), trainable subsampling (AveragePool * 4,
    per-channel weight and bias), the partial C3 table (folded into C3's kernel) and the
    RBF output (sum of squared differences to fixed prototypes)."""
    proto = roundtrip(LeNet5Classic(seed=0, output=output), (1, 32, 32))
    kinds = op_types(proto)
    assert "Tanh" in kinds and "AveragePool" in kinds
    if output == "rbf":
        assert "ReduceSum" in kinds and "Gemm" in kinds


def test_tinyvgg():
    roundtrip(TinyVGG(in_channels=3, seed=0), (3, 32, 32))


def test_tiny_unet_if_registered():
    from minipool.models import MODELS
    if "tiny-unet" not in MODELS:
        pytest.skip("no TinyUNet model in minipool.models yet")
    net = MODELS["tiny-unet"](seed=0)
    shape = (getattr(net, "in_channels", 1), 32, 32)
    roundtrip(net, shape)


def test_trained_weights_not_initial_ones():
    """Weights are read at export time: a changed parameter changes the exported model."""
    net = LeNet5(seed=0)
    net.fc3.bias.numpy()[...] = np.arange(10, dtype=np.float32)
    roundtrip(net, (1, 32, 32))


def _decoder(channels_last=False):
    fmt = {"data_format": "channels_last"} if channels_last else {}
    return nn.Sequential(
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, **fmt), nn.ReLU(),
        nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, groups=2, **fmt), nn.Tanh(),
        nn.ConvTranspose2d(4, 2, 3, stride=1, padding=2, dilation=2, bias=False, **fmt))


def test_transposed_conv_decoder():
    proto = roundtrip(_decoder(), (4, 5, 6))
    assert op_types(proto).count("ConvTranspose") == 3
    assert attrs_of(proto, "ConvTranspose")["output_padding"] == [1, 1]


def test_transposed_conv_decoder_channels_last():
    proto = roundtrip(_decoder(channels_last=True), (5, 6, 4))
    assert "Transpose" in op_types(proto)


def test_unet_like_skip_connections():
    """Down (conv + max pool), up (transposed conv / resize), concatenation of skips."""
    class TinyUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Conv2d(2, 4, 3, padding=1)
            self.mid = nn.Conv2d(4, 4, 3, padding=1)
            self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
            self.dec = nn.Conv2d(12, 3, 1)

        def forward(self, x):
            e = F.relu(self.enc(x))
            m = F.relu(self.mid(F.max_pool2d(e, 2)))
            u = self.up(m)
            r = F.interpolate(m, scale_factor=2, mode="bilinear")
            return self.dec(F.cat([e, u, r], dim=1))
    roundtrip(TinyUNet(), (2, 8, 8))


# ----------------------------------------------------------------------------- conv, linear
@pytest.mark.parametrize("kw", [
    dict(), dict(stride=2), dict(padding=1), dict(padding=(2, 0)), dict(dilation=2),
    dict(dilation=(1, 2), padding=2), dict(groups=2), dict(groups=4), dict(bias=False),
    dict(padding="same"), dict(padding="same", dilation=2), dict(padding="valid", stride=3),
])
def test_conv2d(kw):
    k = kw.pop("k", 3)
    roundtrip(nn.Conv2d(4, 8, k, **kw), (4, 9, 10))


@pytest.mark.parametrize("k", [2, 4, (2, 3)])
def test_conv2d_same_even_kernel_pads_after(k):
    """An even kernel's odd total padding goes after (bottom/right), as PyTorch."""
    proto = roundtrip(nn.Conv2d(3, 2, k, padding="same"), (3, 7, 6))
    pads = attrs_of(proto, "Conv")["pads"]
    assert pads[2] >= pads[0] and pads[3] >= pads[1]


def test_conv2d_channels_last_and_unbatched():
    roundtrip(nn.Conv2d(3, 5, 3, stride=2, padding=1, data_format="channels_last"), (8, 8, 3))
    conv = nn.Conv2d(3, 5, 3)
    proto = mo.build(Fn(conv), mp.tensor(_data((3, 7, 7), 0)))
    s = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = _data((3, 7, 7), 1)
    np.testing.assert_allclose(s.run(None, {"input": x})[0], conv(mp.tensor(x)).numpy(), rtol=TOL, atol=TOL)


def test_linear_and_matmul():
    roundtrip(nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3, bias=False)), (6,))
    roundtrip(nn.Linear(6, 4), (5, 6))  # 3-D input: MatMul + Add
    w = mp.tensor(_data((6, 2), 3))
    roundtrip(Fn(lambda x: F.matmul(x, w)), (4, 6))


# ----------------------------------------------------------------------------- element-wise
@pytest.mark.parametrize("name,fn,positive", [
    ("add", lambda x: x + 1.5, False), ("sub", lambda x: 2.0 - x, False),
    ("mul", lambda x: x * x * 0.5, False), ("div", lambda x: x / 3.0, False),
    ("rdiv", lambda x: 1.0 / x, True), ("neg", lambda x: -x, False),
    ("pow", lambda x: x ** 3.0, False), ("pow_frac", lambda x: F.pow(x, 0.5), True),
    ("exp", F.exp, False), ("log", F.log, True), ("sqrt", F.sqrt, True), ("abs", F.abs, False),
    ("broadcast", lambda x: x * mp.tensor(np.arange(5, dtype=np.float32)) + mp.ones(1, 5), False),
    ("maximum", lambda x: F.maximum(x, mp.zeros(5)), False),
    ("clamp", lambda x: F.clamp(x, -0.5, 0.7), False), ("clamp_min", lambda x: F.clamp(x, min=0.1), False),
])
def test_elementwise(name, fn, positive):
    roundtrip(Fn(fn), (4, 5), positive=positive)


@pytest.mark.parametrize("layer", [
    nn.ReLU(), nn.LeakyReLU(0.2), nn.ELU(0.7), nn.Sigmoid(), nn.Tanh(), nn.Softplus(),
    nn.Softplus(beta=2.0, threshold=1.0), nn.ReLU6(), nn.Hardtanh(-0.3, 0.8), nn.SiLU(),
    nn.GELU(), nn.GELU(approximate="tanh"),
], ids=lambda m: repr(m))
def test_activations(layer):
    roundtrip(layer, (3, 4, 5), data=lambda b, s: _data((b, 3, 4, 5), s) * 4)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("opset", [18, 20])
def test_gelu_native_from_opset_20_else_erf_composition(approximate, opset):
    proto = roundtrip(nn.GELU(approximate=approximate), (7,), opset=opset,
                      data=lambda b, s: _data((b, 7), s) * 3)
    assert ("Gelu" in op_types(proto)) == (opset >= 20)
    if opset < 20:
        assert ("Erf" in op_types(proto)) == (approximate == "none")


def test_softmax_logsoftmax_and_reductions():
    roundtrip(nn.Softmax(dim=1), (6,))
    roundtrip(nn.LogSoftmax(dim=-1), (3, 6))
    roundtrip(Fn(lambda x: F.sum(x, dim=(2, 3))), (2, 3, 4))
    roundtrip(Fn(lambda x: F.mean(x, dim=1, keepdim=True)), (2, 3, 4))
    roundtrip(Fn(lambda x: F.amax(x, dim=2) - F.amin(x, dim=2)), (2, 3, 4))
    roundtrip(Fn(lambda x: F.logsumexp(x, dim=1)), (5,))


def test_batchnorm_dropout_eval():
    bn = nn.BatchNorm2d(3)
    bn.running_mean.numpy()[...] = [0.5, -1.0, 2.0]
    bn.running_var.numpy()[...] = [2.0, 0.5, 1.5]
    bn.weight.numpy()[...] = [1.5, 0.5, -1.0]
    bn.bias.numpy()[...] = [0.1, 0.2, 0.3]
    net = nn.Sequential(bn, nn.Dropout(0.5), nn.Dropout2d(0.3), nn.Flatten(), nn.Linear(48, 4),
                        nn.BatchNorm1d(4))
    net.train()
    net[2].eval()
    mo.build(net, mp.ones(2, 3, 4, 4))
    # each layer's mode is restored after the traced eval pass
    assert [m.training for m in net] == [True, True, False, True, True, True]
    proto = roundtrip(net, (3, 4, 4))
    assert "BatchNormalization" in op_types(proto) and "Dropout" not in op_types(proto)


def test_batchnorm_channels_last():
    bn = nn.BatchNorm2d(3, data_format="channels_last") if "data_format" in \
        nn.BatchNorm2d.__init__.__code__.co_varnames else None
    if bn is None:
        x = mp.tensor(_data((3,), 1))
        fn = lambda t: F.batch_norm(t, x * 0, x * 0 + 2, data_format="channels_last")  # noqa: E731
        roundtrip(Fn(fn), (4, 4, 3))
    else:
        roundtrip(bn, (4, 4, 3))


# ----------------------------------------------------------------------------- shapes
def test_shape_ops():
    roundtrip(Fn(lambda x: F.reshape(x, (x.shape[0], 4, 6))), (2, 3, 4))
    roundtrip(Fn(lambda x: F.flatten(x, 1)), (2, 3, 4))
    roundtrip(Fn(lambda x: F.permute(x, (0, 2, 1))), (3, 4))
    roundtrip(Fn(lambda x: F.transpose(x, 1, 2)), (3, 4))
    roundtrip(Fn(lambda x: F.cat([x, x * 2, -x], dim=1)), (2, 3))
    roundtrip(Fn(lambda x: F.unsqueeze(x, 1) + F.unsqueeze(mp.ones(3, 5), 0)), (5,))
    roundtrip(Fn(lambda x: x[:, 1:3, ::2]), (4, 5))
    roundtrip(Fn(lambda x: x[:, :, 0] + F.sum(x[..., -1, None], dim=2)), (4, 5))


@pytest.mark.parametrize("mode,pad,opset", [
    ("constant", (1, 2), None), ("constant", (1, 0, 2, 3), None), ("reflect", (2, 1, 1, 2), None),
    ("replicate", (0, 3, 2, 0), None), ("circular", (1, 2, 2, 1), 19), ("constant", (-1, 1, 0, 0), None),
])
def test_pad(mode, pad, opset):
    value = {"value": 2.5} if mode == "constant" else {}
    roundtrip(Fn(lambda x: F.pad(x, pad, mode=mode, **value)), (2, 5, 6), opset=opset)


def test_pad_circular_needs_opset_19():
    with pytest.raises(mo.UnsupportedOpError, match="opset >= 19"):
        mo.build(Fn(lambda x: F.pad(x, (1, 1), mode="circular")), mp.ones(1, 2, 5))


# ----------------------------------------------------------------------------- pooling, one attribute at a time
MAX_CASES = [
    dict(kernel_size=2), dict(kernel_size=3, stride=1), dict(kernel_size=3, stride=2),
    dict(kernel_size=3, padding=1), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=3, dilation=2), dict(kernel_size=2, dilation=(2, 3), padding=1),
    dict(kernel_size=2, ceil_mode=True), dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True),
    dict(kernel_size=2, stride=3, ceil_mode=True),
]


@pytest.mark.parametrize("kw", MAX_CASES, ids=repr)
@pytest.mark.parametrize("size", [(7, 8), (9, 9)])
def test_max_pool2d(kw, size):
    proto = roundtrip(nn.MaxPool2d(**kw), (2,) + size)
    attrs = attrs_of(proto, "MaxPool")
    if not kw.get("ceil_mode"):
        assert attrs["ceil_mode"] == 0


def test_ceil_mode_window_dropped_by_pytorch_rule():
    """9 wide, kernel 2, stride 3, ceil_mode: ONNX's formula gives 4 windows, PyTorch drops
    the one that would start past the input (3)."""
    proto = roundtrip(nn.MaxPool2d(2, stride=3, ceil_mode=True), (1, 9, 9))
    out = proto.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in out[2:]] == [3, 3]
    roundtrip(nn.AvgPool2d(2, stride=3, padding=1, ceil_mode=True), (1, 7, 7))


@pytest.mark.parametrize("kw", MAX_CASES[:8], ids=repr)
def test_min_pool2d_is_neg_max_neg(kw):
    proto = roundtrip(nn.MinPool2d(**kw), (2, 7, 8))
    assert op_types(proto).count("Neg") == 2


AVG_CASES = [dict(kernel_size=2), dict(kernel_size=3, stride=1), dict(kernel_size=3, stride=2),
             dict(kernel_size=3, padding=1), dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1)),
             dict(kernel_size=2, ceil_mode=True), dict(kernel_size=3, stride=2, ceil_mode=True),
             dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
             dict(kernel_size=2, stride=3, padding=1, ceil_mode=True)]


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kw", AVG_CASES, ids=repr)
@pytest.mark.parametrize("size", [(7, 8), (9, 9)])
def test_avg_pool2d(kw, count_include_pad, size):
    proto = roundtrip(nn.AvgPool2d(count_include_pad=count_include_pad, **kw), (2,) + size)
    if not kw.get("ceil_mode"):
        assert attrs_of(proto, "AveragePool")["count_include_pad"] == int(count_include_pad)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, padding=1, stride=2, ceil_mode=True)])
def test_avg_pool2d_divisor_override(kw):
    roundtrip(Fn(lambda x: F.avg_pool2d(x, divisor_override=3, **kw)), (2, 7, 7))


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, ceil_mode=True),
                                dict(kernel_size=2, stride=3, padding=1, ceil_mode=True)], ids=repr)
def test_sum_pool2d_is_average_times_span(kw):
    proto = roundtrip(nn.SumPool2d(**kw), (2, 7, 8))
    assert "AveragePool" in op_types(proto) and "Mul" in op_types(proto)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("layer", [nn.MaxPooling2D, nn.AveragePooling2D])
def test_keras_pools_same_valid_channels_last(layer, padding):
    roundtrip(layer(pool_size=3, strides=2, padding=padding), (7, 8, 3))


@pytest.mark.parametrize("p", [1, 2, 3, 4, 1.5, float("inf")])
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, ceil_mode=True)], ids=repr)
def test_lp_pool2d(p, kw):
    positive = p == 1.5  # a fractional power of a negative sum is NaN in both
    proto = roundtrip(nn.LPPool2d(p, **kw), (2, 7, 8), positive=positive)
    native = p in (2, 4) and not kw.get("ceil_mode")
    assert ("LpPool" in op_types(proto)) == native


@pytest.mark.parametrize("fn,shape", [
    (lambda x: F.max_pool1d(x, 3, 2, 1, ceil_mode=True), (3, 11)),
    (lambda x: F.avg_pool1d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), (3, 11)),
    (lambda x: F.max_pool3d(x, 2, dilation=(1, 2, 1)), (2, 5, 6, 5)),
    (lambda x: F.avg_pool3d(x, 3, 2, 1, ceil_mode=True), (2, 6, 7, 5)),
    (lambda x: F.lp_pool1d(x, 2, 3), (3, 9)),
    (lambda x: F.sum_pool1d(x, 3, 2, ceil_mode=True), (3, 10)),
], ids=["max1d", "avg1d", "max3d", "avg3d", "lp1d", "sum1d"])
def test_1d_3d_pools(fn, shape):
    roundtrip(Fn(fn), shape)


def test_max_pool_channels_last_and_unbatched():
    roundtrip(nn.MaxPool2d(3, 2, 1, data_format="channels_last"), (7, 8, 3))
    roundtrip(Fn(lambda x: F.max_pool2d(F.reshape(x, x.shape[1:]), 2)), (3, 6, 6), batches=(1,),
              trace_batch=1, dynamic_batch=False)


@pytest.mark.parametrize("out", [1, (1, 1), 2, (3, 2), (6, 4)])
def test_adaptive_pools_that_map(out):
    proto = roundtrip(nn.AdaptiveAvgPool2d(out), (2, 6, 8))
    proto2 = roundtrip(nn.AdaptiveMaxPool2d(out), (2, 6, 8))
    if out in (1, (1, 1)):
        assert "GlobalAveragePool" in op_types(proto) and "GlobalMaxPool" in op_types(proto2)
    else:
        assert "AveragePool" in op_types(proto) and "MaxPool" in op_types(proto2)


def test_global_pools():
    roundtrip(nn.GlobalAvgPool2d(), (3, 5, 4))
    roundtrip(nn.GlobalMaxPool2d(keepdim=True), (3, 5, 4))
    roundtrip(nn.GlobalAveragePooling2D(), (5, 4, 3))   # Keras: channels_last
    roundtrip(nn.GlobalMaxPooling2D(), (5, 4, 3))


def test_stochastic_pool_eval_rule():
    """sum(a^2) / sum(a) per window, 0 for an all-zero window."""
    def data(b, seed):
        x = np.maximum(_data((b, 2, 6, 6), seed), 0)
        x[:, 0, :2, :2] = 0   # one all-zero window per plane 0
        return x
    proto = roundtrip(nn.StochasticPool2d(2), (2, 6, 6), data=data)
    assert "Where" in op_types(proto)


def test_max_pool_indices_and_unpool():
    class Net(nn.Module):
        def forward(self, x):
            y, idx = F.max_pool2d(x, 2, stride=2, return_indices=True)
            return F.max_unpool2d(y * 2.0, idx, 2, stride=2), idx

    roundtrip(Net(), (3, 6, 8))   # indices come back in PyTorch's per-plane form


def test_unpool_with_output_size():
    class Net(nn.Module):
        def forward(self, x):
            y, idx = F.max_pool2d(x, 3, stride=2, return_indices=True)
            return F.max_unpool2d(y, idx, 3, stride=2, output_size=x.shape[-2:])

    roundtrip(Net(), (2, 8, 9))


@pytest.mark.parametrize("kw", [dict(), dict(kernel_size=1), dict(kernel_size=4, stride=1),
                                dict(kernel_size=(3, 5), stride=(2, 3)), dict(kernel_size=5, stride=3)], ids=repr)
def test_blur_pool(kw):
    proto = roundtrip(nn.BlurPool2d(3, **kw), (3, 9, 10))
    assert "Pad" in op_types(proto) and "Conv" in op_types(proto)


def test_blur_pool_channels_last_and_max_blur():
    roundtrip(nn.BlurPool2d(3, data_format="channels_last"), (8, 9, 3))
    roundtrip(nn.MaxBlurPool2d(3), (3, 8, 8))


# ----------------------------------------------------------------------------- interpolate
INTERP = [("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True),
          ("bicubic", False), ("bicubic", True)]
SIZES = [dict(scale_factor=2), dict(scale_factor=3), dict(scale_factor=(1.5, 2.7)),
         dict(scale_factor=0.5), dict(scale_factor=0.6), dict(size=(7, 5)), dict(size=(3, 11)),
         dict(size=(1, 1)), dict(size=(4, 1))]


@pytest.mark.parametrize("how", SIZES, ids=repr)
@pytest.mark.parametrize("mode,align", INTERP)
def test_interpolate_2d(mode, align, how):
    kw = {} if align is None else {"align_corners": align}
    proto = roundtrip(Fn(lambda x: F.interpolate(x, mode=mode, **kw, **how)), (2, 5, 6))
    assert "Resize" in op_types(proto)


@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None),
                                        ("linear", False), ("linear", True)])
@pytest.mark.parametrize("how", [dict(scale_factor=2.5), dict(size=9), dict(size=1)], ids=repr)
def test_interpolate_1d(mode, align, how):
    kw = {} if align is None else {"align_corners": align}
    roundtrip(Fn(lambda x: F.interpolate(x, mode=mode, **kw, **how)), (3, 7))


@pytest.mark.parametrize("mode,align", [("nearest", None), ("nearest-exact", None),
                                        ("trilinear", False), ("trilinear", True)])
@pytest.mark.parametrize("how", [dict(scale_factor=2), dict(size=(3, 5, 2))], ids=repr)
def test_interpolate_3d(mode, align, how):
    kw = {} if align is None else {"align_corners": align}
    roundtrip(Fn(lambda x: F.interpolate(x, mode=mode, **kw, **how)), (2, 3, 4, 3))


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("how", [dict(scale_factor=2), dict(size=(7, 9))], ids=repr)
def test_interpolate_opsets(opset, how):
    roundtrip(Fn(lambda x: F.interpolate(x, mode="bilinear", **how)), (2, 5, 6), opset=opset)


def test_interpolate_recompute_scale_and_channels_last_and_layers():
    roundtrip(Fn(lambda x: F.interpolate(x, scale_factor=1.7, mode="nearest",
                                         recompute_scale_factor=True)), (2, 5, 6))
    roundtrip(Fn(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                         data_format="channels_last")), (5, 6, 3))
    roundtrip(nn.Upsample(scale_factor=2, mode="nearest"), (2, 4, 4))
    roundtrip(nn.UpsamplingBilinear2d(scale_factor=2), (2, 4, 4))


@pytest.mark.parametrize("size", [(2, 3), (1, 1), (4, 6)])
def test_interpolate_area(size):
    roundtrip(Fn(lambda x: F.interpolate(x, size=size, mode="area")), (2, 8, 6))


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolate_antialias_is_refused(mode):
    """Resize's antialias gives other numbers than PyTorch's filter: refused, not exported wrong."""
    net = Fn(lambda x: F.interpolate(x, mode=mode, antialias=True, scale_factor=0.5))
    with pytest.raises(mo.UnsupportedOpError, match="antialias"):
        mo.build(net, mp.ones(1, 2, 8, 8))


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_interpolate_resize_after_transpose(mode):
    """channels_last conv then resize: the Resize works on NHWC axes directly."""
    kw = {} if mode == "nearest" else {"align_corners": False}
    net = Fn(lambda x: F.interpolate(x, size=(7, 9), mode=mode, data_format="channels_last", **kw),
             nn.Conv2d(3, 4, 3, padding=1, data_format="channels_last"))
    roundtrip(net, (5, 6, 3))


def test_pixel_shuffle_unshuffle():
    proto = roundtrip(nn.PixelShuffle(2), (8, 3, 4))
    assert attrs_of(proto, "DepthToSpace")["mode"] == b"CRD"
    proto = roundtrip(nn.PixelUnshuffle(2), (3, 4, 6))
    assert "SpaceToDepth" in op_types(proto)
    roundtrip(Fn(lambda x: F.pixel_unshuffle(F.pixel_shuffle(x, 3), 3)), (9, 2, 2))


# ----------------------------------------------------------------------------- more layers and forms
@pytest.mark.parametrize("name,model,shape", [
    ("keras_layers", lambda: nn.Sequential(
        nn.ZeroPadding2D(1), nn.Conv2D(4, 3, activation="relu"), nn.MaxPooling2D(),
        nn.BatchNormalization(), nn.GlobalAveragePooling2D(), nn.Dense(3, activation="softmax")),
     (8, 8, 2)),
    ("tensor_methods", lambda: Fn(lambda x: (x.relu() * 2).mean(dim=1) + x.sum(dim=1).tanh()), (3, 4)),
    ("inplace_relu6", lambda: Fn(lambda x: F.relu6(x * 3, inplace=True)), (5,)),
    ("inplace_elu", lambda: nn.ELU(inplace=True), (3,)),
    ("adaptive_max_indices", lambda: Fn(lambda x: F.adaptive_max_pool2d(x, 2, return_indices=True)),
     (2, 4, 6)),
    ("lp_minus_inf", lambda: Fn(lambda x: F.lp_pool2d(x, float("-inf"), 2)), (2, 4, 6)),
    ("nearest_5d", lambda: Fn(lambda x: F.interpolate(x, scale_factor=(2, 1, 3))), (2, 2, 3, 2)),
    ("avg_channels_last_ceil", lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, data_format="channels_last"),
     (7, 7, 2)),
    ("nested", lambda: nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Flatten(),
                                     nn.Linear(2 * 4 * 4, 3)), (1, 6, 6)),
])
def test_more_layers(name, model, shape):
    roundtrip(model(), shape)


def test_stochastic_pool_channels_last():
    roundtrip(nn.StochasticPool2d(2, data_format="channels_last"), (4, 6, 2), positive=True)


def test_max_pool_windows_of_padding_only():
    """Dilation can make a window see padding only: -inf (and index -1) as minipool."""
    class Net(nn.Module):
        def forward(self, x):
            return F.max_pool2d(x, (2, 1), 1, (1, 0), (2, 1), return_indices=True)
    proto = roundtrip(Net(), (2, 1, 3))
    assert "Where" in op_types(proto)
    roundtrip(nn.MinPool2d((2, 1), 1, (1, 0), (2, 1)), (2, 1, 3))


# ----------------------------------------------------------------------------- errors, file, CLI
def test_unsupported_op_names_op_and_layer():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.FractionalMaxPool2d(2, output_size=(3, 3)))
    with pytest.raises(mo.UnsupportedOpError, match=r"FractionalMaxPool.*layer '1'.*FractionalMaxPool2d"):
        mo.build(net, mp.ones(1, 1, 9, 9))


def test_custom_function_is_unsupported():
    class Cube(mp.Function):
        @staticmethod
        def forward(ctx, x):
            return x ** 3

        @staticmethod
        def backward(ctx, grad):
            return grad

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return Cube.apply(self.fc(x))
    with pytest.raises(mo.UnsupportedOpError, match=r"Cube.*Net"):
        mo.build(Net(), mp.ones(2, 3))


def test_error_names_nested_layer_path():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.ReLU(), nn.AdaptiveMaxPool2d(4)))
    with pytest.raises(mo.UnsupportedOpError, match=r"adaptive_max_pool2d.*layer '1\.1' \(AdaptiveMaxPool2d\)"):
        mo.build(net, mp.ones(1, 1, 9, 9))


def test_training_only_ops_are_refused():
    with pytest.raises(mo.UnsupportedOpError, match="training mode"):
        mo.build(Fn(lambda x: F.stochastic_pool2d(F.relu(x), 2, training=True)), mp.ones(1, 1, 4, 4))
    with pytest.raises(mo.UnsupportedOpError, match="training=True"):
        mo.build(Fn(lambda x: F.batch_norm(x, None, None, training=True)), mp.ones(2, 3))


def test_adaptive_pool_not_dividing_is_refused():
    with pytest.raises(mo.UnsupportedOpError, match=r"multiple of the output size.*layer ''|adaptive"):
        mo.build(nn.AdaptiveAvgPool2d(3), mp.ones(1, 2, 7, 7))


def test_export_writes_checked_file_and_leaves_no_profiler(tmp_path):
    path = tmp_path / "lenet.onnx"
    before = sys.getprofile()
    returned = mo.export(LeNet5(seed=1), mp.zeros(2, 1, 32, 32), path)
    assert sys.getprofile() is before
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model == returned
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 32, 32]


def test_static_batch():
    proto = roundtrip(LeNet5(seed=0), (1, 32, 32), batches=(2,), trace_batch=2, dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2


@pytest.mark.parametrize("opset", [12, 99, 18.0, True, "18"])
def test_bad_opset(opset):
    with pytest.raises(ValueError, match="opset"):
        mo.build(LeNet5(seed=0), mp.zeros(1, 1, 32, 32), opset=opset)


def test_bad_arguments():
    with pytest.raises(TypeError, match="example_input must be float32 or float64"):
        mo.build(LeNet5(seed=0), np.zeros((1, 1, 32, 32), np.float16))
    # integer inputs are indices (for an Embedding); a conv refuses them by name
    with pytest.raises(TypeError, match="conv2d: input must be float32 or float64, got int64"):
        mo.build(LeNet5(seed=0), np.zeros((1, 1, 32, 32), np.int64))
    with pytest.raises(TypeError, match="dynamic_batch"):
        mo.build(LeNet5(seed=0), mp.zeros(1, 1, 32, 32), dynamic_batch="yes")
    with pytest.raises(TypeError, match="must return a Tensor"):
        mo.build(Fn(lambda x: 3), mp.zeros(1, 2))
    with pytest.raises(TypeError, match="model"):
        mo.build("lenet5", mp.zeros(1, 2))


def _checkpoint(tmp_path, model, name, config):
    from minipool import checkpoint
    path = tmp_path / "best.npz"
    state = {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in model.state_dict().items()}
    checkpoint.save_checkpoint(str(path), {"model": {"name": name, "config": config}}, {"model": state})
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "minipool", *args], capture_output=True, text=True,
                          cwd=CHECKOUT)


def test_cli_export(tmp_path):
    net = TinyVGG(in_channels=3, seed=3)
    ckpt = _checkpoint(tmp_path, net, "tiny-vgg", {"in_channels": 3, "seed": 3})
    out = tmp_path / "model.onnx"
    done = _cli("export", "--checkpoint", str(ckpt), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = _data((4, 3, 32, 32), 7)
    net.eval()
    np.testing.assert_allclose(session.run(None, {"input": x})[0], net(mp.tensor(x)).numpy(),
                               rtol=TOL, atol=TOL)


def test_cli_export_errors(tmp_path):
    done = _cli("export", "--checkpoint", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "m.onnx"))
    assert done.returncode == 2 and "export: error" in done.stderr
    ckpt = _checkpoint(tmp_path, LeNet5(seed=0), "lenet5", {})
    done = _cli("export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--input-shape", "1,32")
    assert done.returncode == 2 and "input-shape" in done.stderr
    done = _cli("export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx"), "--opset", "9")
    assert done.returncode == 2 and "opset" in done.stderr


# ----------------------------------------------------------------------------- properties
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _agree(model, x):
    """onnxruntime equals minipool on ``x`` and on a batch of another size."""
    proto = mo.build(model, mp.tensor(x))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (x, np.concatenate([x, x[:, ::-1] * 0.5, -x])):
        want = model(mp.tensor(np.ascontiguousarray(batch))).numpy()
        got = session.run(None, {"input": np.ascontiguousarray(batch)})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


@_PROPERTY
@given(kind=st.sampled_from(["max", "min", "avg", "avg_nopad", "sum", "lp2", "lp3"]),
       H=st.integers(1, 11), W=st.integers(1, 11), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 2), dw=st.integers(1, 2),
       ph=st.integers(0, 2), pw=st.integers(0, 2), ceil=st.booleans(), ties=st.booleans(),
       seed=st.integers(0, 2**16))
def test_property_window_pools(kind, H, W, kh, kw, sh, sw, dh, dw, ph, pw, ceil, ties, seed):
    """Any valid window geometry (ceil_mode's dropped windows included), ties included."""
    x = _data((2, 2, H, W), seed)
    if ties:
        x = np.round(x * 2) / 2   # many equal values
    if kind in ("avg", "avg_nopad", "sum", "lp2", "lp3"):
        dh = dw = 1
    if kind.startswith("lp"):
        ph = pw = 0
    fns = {
        "max": lambda t: F.max_pool2d(t, (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode=ceil),
        "min": lambda t: F.min_pool2d(t, (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil_mode=ceil),
        "avg": lambda t: F.avg_pool2d(t, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil),
        "avg_nopad": lambda t: F.avg_pool2d(t, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil,
                                            count_include_pad=False),
        "sum": lambda t: F.sum_pool2d(t, (kh, kw), (sh, sw), (ph, pw), ceil_mode=ceil),
        "lp2": lambda t: F.lp_pool2d(t, 2, (kh, kw), (sh, sw), ceil_mode=ceil),
        "lp3": lambda t: F.lp_pool2d(F.abs(t), 3, (kh, kw), (sh, sw), ceil_mode=ceil),
    }
    try:
        fns[kind](mp.tensor(x))
    except ValueError:
        assume(False)   # minipool (as PyTorch) refuses this geometry
    try:
        _agree(Fn(fns[kind]), x)
    except mo.UnsupportedOpError as error:
        # the one refusal allowed here: a pad (dilated-kernel limit, or ceil_mode's grown end
        # padding) that reaches the undilated kernel, which onnxruntime's pools reject
        assert "reaches the kernel size" in str(error)
        assert max(ph, pw) >= min(kh, kw) or ceil or dh > 1 or dw > 1


@_PROPERTY
@given(mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "bilinear_ac", "bicubic",
                             "bicubic_ac"]),
       H=st.integers(1, 9), W=st.integers(1, 9),
       how=st.one_of(st.tuples(st.integers(1, 14), st.integers(1, 14)),
                     st.tuples(st.floats(0.25, 3.5), st.floats(0.25, 3.5))),
       seed=st.integers(0, 2**16))
def test_property_interpolate(mode, H, W, how, seed):
    """Any size or scale factor, every mode, align_corners both ways."""
    align = mode.endswith("_ac")
    mode = mode.replace("_ac", "")
    kw = {"align_corners": align} if mode in ("bilinear", "bicubic") else {}
    if isinstance(how[0], int):
        kw["size"] = how
    else:
        kw["scale_factor"] = tuple(round(f, 3) for f in how)
    fn = lambda t: F.interpolate(t, mode=mode, **kw)  # noqa: E731
    x = _data((1, 2, H, W), seed)
    try:
        fn(mp.tensor(x))
    except ValueError:
        assume(False)
    _agree(Fn(fn), x)


@_PROPERTY
@given(C=st.integers(1, 4), O=st.integers(1, 4), groups=st.sampled_from([1, 2]),
       k=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2), d=st.integers(1, 2),
       op=st.integers(0, 2), H=st.integers(1, 8), transposed=st.booleans(), seed=st.integers(0, 99))
def test_property_convolutions(C, O, groups, k, s, p, d, op, H, transposed, seed):
    C, O = C * groups, O * groups
    try:
        if transposed:
            layer = nn.ConvTranspose2d(C, O, k, stride=s, padding=p, output_padding=op,
                                       groups=groups, dilation=d)
        else:
            layer = nn.Conv2d(C, O, k, stride=s, padding=p, dilation=d, groups=groups)
        x = _data((1, C, H, H + 1), seed)
        layer(mp.tensor(x))
    except ValueError:
        assume(False)
    _agree(layer, x)


def test_pool_padding_that_reaches_the_kernel_is_refused():
    """Found by the property test: max pooling with kernel (1, 2), dilation 2, padding 1 and
    ceil_mode needs an end pad of 2, which onnxruntime's MaxPool rejects (pad < kernel)."""
    pool = Fn(lambda t: F.max_pool2d(t, (1, 2), (2, 2), (0, 1), (1, 2), ceil_mode=True))
    with pytest.raises(mo.UnsupportedOpError, match="reaches the kernel size"):
        mo.build(pool, mp.zeros(2, 2, 2, 2))


# ----------------------------------------------------------------------------- norm layers, Embedding
def _randomise_affine(model, seed=0):
    """Random weights and biases, so a dropped or misplaced affine step shows."""
    r = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.endswith(("weight", "bias")) and p.ndim == 1:
            p.numpy()[...] = r.uniform(0.5, 1.5, p.shape).astype(p.dtype)
    return model


@pytest.mark.parametrize("opset", [13, 17, 18])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_as_layer_normalization_or_reduce_mean(opset, affine):
    model = _randomise_affine(nn.Sequential(nn.Conv2d(3, 4, 3), nn.LayerNorm([4, 6, 6],
                                                                            elementwise_affine=affine)))
    proto = roundtrip(model, (3, 8, 8), opset=opset)
    assert ("LayerNormalization" in op_types(proto)) == (opset >= 17)
    if opset >= 17:
        assert attrs_of(proto, "LayerNormalization")["axis"] == 1


def test_layer_norm_over_the_last_axis_with_bias_only():
    fn = Fn(lambda x: F.layer_norm(x, (8,), bias=mp.tensor(np.linspace(-1, 1, 8, dtype=np.float32)),
                                   eps=1e-3))
    roundtrip(fn, (5, 8))


@pytest.mark.parametrize("groups,affine", [(1, True), (2, True), (4, False)])
def test_group_norm_from_instance_normalization(groups, affine):
    model = _randomise_affine(nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(groups, 4, affine=affine)))
    proto = roundtrip(model, (3, 7, 7))
    assert "InstanceNormalization" in op_types(proto)


def test_group_norm_of_a_sequence_input():
    roundtrip(Fn(lambda x: F.group_norm(x, 3, eps=1e-2)), (6, 10))


@pytest.mark.parametrize("affine", [True, False])
def test_instance_norm_with_plane_statistics(affine):
    model = _randomise_affine(nn.Sequential(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, affine=affine)))
    assert "InstanceNormalization" in op_types(roundtrip(model, (3, 7, 7)))
    roundtrip(nn.InstanceNorm1d(3), (3, 9))


def test_instance_norm_with_running_statistics_is_batch_normalization():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, affine=True, track_running_stats=True))
    _randomise_affine(model)
    model.train()
    for seed in range(3):  # move the running statistics away from (0, 1)
        model(mp.tensor(_data((2, 3, 7, 7), seed)))
    assert "BatchNormalization" in op_types(roundtrip(model, (3, 7, 7)))


def _indices(b, seed):
    return np.random.default_rng(seed).integers(0, 10, (b, 6)).astype(np.int64)


@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_is_gather(padding_idx):
    model = nn.Sequential(nn.Embedding(10, 4, padding_idx=padding_idx, generator=np.random.default_rng(0)),
                          nn.Flatten(), nn.Linear(24, 3))
    proto = roundtrip(model, (6,), data=_indices)
    assert op_types(proto)[0] == "Gather" and attrs_of(proto, "Gather")["axis"] == 0


def test_embedding_with_max_norm_is_refused_by_name():
    model = nn.Sequential(nn.Embedding(10, 4, max_norm=1.0))
    with pytest.raises(mo.UnsupportedOpError, match="embedding with max_norm.*in layer '0' \\(Embedding\\)"):
        mo.build(model, mp.tensor(_indices(2, 0)))


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("name,fn", [
    ("hardsigmoid", F.hardsigmoid), ("hardswish", F.hardswish), ("logsigmoid", F.logsigmoid),
    ("mish", F.mish), ("selu", F.selu), ("celu", lambda x: F.celu(x, 0.7)),
    ("softsign", F.softsign), ("hardshrink", lambda x: F.hardshrink(x, 0.7)),
    ("softshrink", lambda x: F.softshrink(x, 0.7)), ("threshold", lambda x: F.threshold(x, 0.2, -3.0)),
])
def test_more_activations(name, fn, opset):
    data = lambda b, seed: (_data((b, 3, 5, 5), seed) * 4).astype(np.float32)  # noqa: E731  (past the kinks)
    roundtrip(Fn(fn), (3, 5, 5), opset=opset, data=data)
