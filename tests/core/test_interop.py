"""minipool.interop: from_numpy, dtype names, and any Sequential/layer model to and from PyTorch
(outputs and gradients equal after conversion both ways, float64 tight and float32)."""
from collections import OrderedDict

import numpy as np
import pytest

import minipool as mp
from minipool import interop
from minipool.models import LeNet5

nn = mp.nn


# ------------------------------------------------------------------ from_numpy and dtype names
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                   np.int64, np.uint8, np.bool_, ">f8"])
def test_from_numpy_shares_memory_both_ways(dtype):
    a = np.zeros((2, 3), dtype=dtype)
    t = mp.from_numpy(a)
    assert t.dtype == a.dtype and t.shape == (2, 3) and np.shares_memory(t.numpy(), a)
    a[1, 2] = 1
    assert t.numpy()[1, 2] == 1
    t.numpy()[0, 0] = 1
    assert a[0, 0] == 1


def test_from_numpy_keeps_views_and_rejects_other_things():
    base = np.arange(12.0).reshape(3, 4)
    t = mp.from_numpy(base[:, ::2])
    base[0, 2] = -1
    assert t.numpy()[0, 1] == -1
    for bad in ([1.0], 3.0, mp.ones(2)):
        with pytest.raises(TypeError, match="from_numpy: expected an np.ndarray"):
            mp.from_numpy(bad)
    for bad in (np.array(["a"]), np.array([1j]), np.array([object()])):
        with pytest.raises(TypeError, match="unsupported dtype"):
            mp.from_numpy(bad)


def test_dtype_names_work_wherever_a_dtype_is_taken():
    names = {"float16": np.float16, "float32": np.float32, "float64": np.float64, "int32": np.int32,
             "int64": np.int64, "uint8": np.uint8, "int8": np.int8, "int16": np.int16,
             "bool": np.bool_, "bool_": np.bool_, "double": np.float64, "half": np.float16,
             "long": np.int64}
    for name, np_type in names.items():
        dt = getattr(mp, name)
        assert dt == np.dtype(np_type), name
        assert mp.zeros(2, dtype=dt).dtype == np.dtype(np_type)
        assert mp.tensor([1, 0], dtype=dt).dtype == np.dtype(np_type)
        assert mp.ones(3).astype(dt).dtype == np.dtype(np_type)
    assert mp.randn(2, dtype=mp.float64).dtype == np.float64
    assert nn.Linear(2, 2, dtype=mp.float64).weight.dtype == np.float64
    torch = pytest.importorskip("torch")
    for name in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool", "int8", "int16"):
        assert str(getattr(torch, name)).replace("torch.", "") == str(getattr(mp, name)), name


# ------------------------------------------------------------------ models to and from torch
def small_cnn(dtype=np.float64, dropout=0.0):
    layers = OrderedDict([
        ("conv1", nn.Conv2d(1, 4, 3, padding=1, dtype=dtype)),
        ("act1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("block", nn.Sequential(nn.Conv2d(4, 6, 3, stride=1, groups=2, bias=False, dtype=dtype),
                                nn.Tanh(), nn.AvgPool2d(2, count_include_pad=False))),
        ("flat", nn.Flatten()),
        ("drop", nn.Dropout(dropout)),
        ("fc", nn.Linear(6, 5, dtype=dtype)),
        ("out", nn.LogSoftmax(dim=1)),
    ])
    return nn.Sequential(layers)


def wide_cnn(dtype=np.float64):
    """Every optional layer that exists in this minipool, in one Sequential."""
    layers = [nn.Conv2d(2, 4, 3, padding=1, dtype=dtype)]
    if hasattr(nn, "BatchNorm2d"):
        layers.append(nn.BatchNorm2d(4, dtype=dtype))
    layers += [nn.LeakyReLU(0.2) if hasattr(nn, "LeakyReLU") else nn.ReLU(),
               nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)]
    if hasattr(nn, "ConvTranspose2d"):
        layers.append(nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, dtype=dtype))
    else:
        layers.append(nn.Conv2d(4, 3, 1, dtype=dtype))
    for name, args in (("ELU", (0.7,)), ("GELU", ("tanh",)), ("SiLU", ()), ("Hardtanh", (-0.5, 0.8)),
                       ("Softplus", (2.0, 5.0)), ("ReLU6", ())):
        if hasattr(nn, name):
            layers.append(getattr(nn, name)(*args))
    layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
               nn.LPPool2d(2, 2), nn.AdaptiveAvgPool2d((3, 2)), nn.Sigmoid(), nn.Flatten(),
               nn.Linear(18, 4, dtype=dtype), nn.Identity(), nn.Softmax(dim=-1)]
    return nn.Sequential(*layers)


def lenet_f64(seed=0):
    net = LeNet5(seed=seed)
    for p in net.parameters():
        p.data = p.data.astype(np.float64)
    return net


def _input(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _compare(ours, theirs, torch, x, dtype, train=False):
    """Forward and backward of both on x: outputs, input gradients and parameter gradients."""
    rtol, atol = (1e-12, 1e-12) if dtype == np.float64 else (2e-5, 2e-6)
    ours.train(train)
    theirs.train(train)
    xo = mp.tensor(x, requires_grad=True)
    yo = ours(xo)
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    np.testing.assert_allclose(yo.numpy(), yt.detach().numpy(), rtol=rtol, atol=atol)
    w = _input(yo.shape, dtype, 7)
    (yo * mp.tensor(w)).sum().backward()
    (yt * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), rtol=rtol * 100, atol=atol * 100)
    their_grads = {k: p.grad for k, p in theirs.named_parameters()}
    for k, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), their_grads[k].numpy(), rtol=rtol * 100,
                                   atol=atol * 100, err_msg=k)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("build,shape", [(lenet_f64, (3, 1, 32, 32)), (small_cnn, (2, 1, 8, 8)),
                                         (wide_cnn, (2, 2, 9, 9))])
def test_to_torch_computes_the_same_function(build, shape, dtype):
    torch = pytest.importorskip("torch")
    ours = build() if dtype == np.float64 else _as_f32(build())
    theirs = interop.to_torch(ours, torch)
    assert isinstance(theirs, torch.nn.Module)
    theirs_sd = theirs.state_dict()
    assert sorted(theirs_sd) == sorted(ours.state_dict())        # same keys
    for k, v in ours.state_dict().items():
        assert theirs_sd[k].numpy().dtype == v.dtype, k
        np.testing.assert_array_equal(theirs_sd[k].numpy(), v, err_msg=k)
    _compare(ours, theirs, torch, _input(shape, dtype), dtype, train=False)
    _compare(ours, theirs, torch, _input(shape, dtype, 1), dtype, train=True)


def _as_f32(model):
    for p in model.parameters():
        p.data = p.data.astype(np.float32)
    for name, b in model.named_buffers():
        if b is not None and b.numpy().dtype == np.float64:
            b.data = b.data.astype(np.float32)
    return model


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_from_torch_computes_the_same_function(dtype):
    torch = pytest.importorskip("torch")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(0)
    tnn = torch.nn
    theirs = tnn.Sequential(OrderedDict([
        ("features", tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.ReLU(inplace=True),
                                    tnn.MaxPool2d(2, 2), tnn.Conv2d(4, 8, 3), tnn.ReLU())),
        ("pool", tnn.AdaptiveAvgPool2d(2)),
        ("flatten", tnn.Flatten()),
        ("classifier", tnn.Sequential(tnn.Dropout(0.0), tnn.Linear(32, 10), tnn.Tanh(), tnn.Linear(10, 3))),
    ])).to(tdtype)
    if hasattr(nn, "BatchNorm2d"):
        theirs.features.add_module("bn", tnn.BatchNorm2d(8).to(tdtype))
        with torch.no_grad():
            theirs.features.bn.running_mean.uniform_(-1, 1)
            theirs.features.bn.running_var.uniform_(0.5, 2)
            theirs.features.bn.weight.uniform_(0.5, 2)
    ours = interop.from_torch(theirs, torch)
    assert isinstance(ours, nn.Sequential) and isinstance(ours.features[0], nn.Conv2d)
    assert ours.features[0].weight.dtype == dtype
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    _compare(ours, theirs, torch, _input((2, 1, 10, 10), dtype), dtype, train=False)
    _compare(ours, theirs, torch, _input((2, 1, 10, 10), dtype, 3), dtype, train=True)


def test_lenet5_both_ways_keeps_the_old_functions():
    torch = pytest.importorskip("torch")
    from minipool.models.lenet import lenet5_torch
    ours = lenet_f64(seed=2)
    theirs = interop.to_torch(ours, torch)
    assert type(theirs).__name__ == "LeNet5Torch"
    back = interop.from_torch(theirs, torch)
    assert isinstance(back, LeNet5)
    x = _input((2, 1, 32, 32), np.float32)
    # the old entry points: LeNet5.to_torch (float32 weights) and lenet5_torch / LeNet5.from_torch
    old = LeNet5(seed=2)
    for t in (old.to_torch(torch), lenet5_torch(torch, old.state_dict())):
        np.testing.assert_allclose(t(torch.from_numpy(x)).detach().numpy(), old(mp.tensor(x)).numpy(),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(LeNet5.from_torch(old.to_torch(torch))(mp.tensor(x)).numpy(),
                               old(mp.tensor(x)).numpy(), rtol=0, atol=0)
    # float64 both ways, tight
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(back(mp.tensor(x64)).numpy(), ours(mp.tensor(x64)).numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(theirs(torch.from_numpy(x64)).detach().numpy(), ours(mp.tensor(x64)).numpy(),
                               rtol=1e-12, atol=1e-13)


def test_round_trips_and_independent_copies():
    torch = pytest.importorskip("torch")
    ours = small_cnn()
    theirs = interop.to_torch(ours, torch)
    again = interop.from_torch(theirs, torch)
    for (k, a), b in zip(ours.state_dict().items(), again.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=k)
    assert [(n, type(m)) for n, m in again.named_modules()] == [(n, type(m)) for n, m in ours.named_modules()]
    x = mp.tensor(_input((2, 1, 8, 8), np.float64))
    np.testing.assert_array_equal(again.eval()(x).numpy(), ours.eval()(x).numpy())
    # the copies do not share memory: changing one leaves the others alone
    with torch.no_grad():
        theirs.conv1.weight.fill_(0)
    assert np.abs(ours.conv1.weight.numpy()).sum() > 0 and np.abs(again.conv1.weight.numpy()).sum() > 0
    ours.fc.weight.numpy()[...] = 0
    assert np.abs(again.fc.weight.numpy()).sum() > 0


def test_modes_are_copied():
    torch = pytest.importorskip("torch")
    ours = small_cnn()
    ours.train()
    ours.block.eval()
    theirs = interop.to_torch(ours, torch)
    assert theirs.training and not theirs.block.training and not theirs.block[0].training
    assert theirs.conv1.training
    back = interop.from_torch(theirs, torch)
    assert [m.training for m in back.modules()] == [m.training for m in ours.modules()]


def test_layer_arguments_survive_both_ways():
    torch = pytest.importorskip("torch")
    layers = [nn.MaxPool2d(3, stride=2, padding=1, dilation=1, ceil_mode=True),
              nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False, divisor_override=2),
              nn.Conv2d(2, 4, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2),
              nn.Flatten(2, 3), nn.Dropout(0.3), nn.Softmax(dim=0), nn.PixelShuffle(2),
              nn.AdaptiveMaxPool2d((2, 3)), nn.Upsample(size=(4, 5), mode="nearest")]
    for layer in layers:
        t = interop.to_torch(nn.Sequential(layer), torch)[0]
        assert type(t).__name__ == type(layer).__name__
        back = interop.from_torch(t, torch)
        assert type(back) is type(layer)
        for attr in ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "count_include_pad",
                     "divisor_override", "groups", "start_dim", "end_dim", "p", "dim", "upscale_factor",
                     "output_size", "size", "mode"):
            if hasattr(layer, attr):
                a, b = getattr(layer, attr), getattr(t, attr)
                norm = (lambda v: tuple(v) if isinstance(v, (list, tuple)) else v)
                if attr in ("kernel_size", "stride", "padding", "dilation") and a is None:
                    continue
                assert norm(a) == norm(b) or (isinstance(b, tuple) and len(set(b)) == 1 and b[0] == a), \
                    (type(layer).__name__, attr, a, b)


def test_unsupported_layers_raise_naming_them():
    torch = pytest.importorskip("torch")

    class Custom(nn.Module):
        def forward(self, x):
            return x
    cases = [(nn.Sequential(nn.ReLU(), nn.Sequential(nn.MinPool2d(2))), r"layer '1\.0' is a MinPool2d"),
             (nn.Sequential(nn.GlobalAvgPool2d()), r"layer '0' is a GlobalAvgPool2d"),
             (Custom(), "the model is a Custom"),
             (nn.Sequential(nn.StochasticPool2d(2)), "StochasticPool2d")]
    for model, msg in cases:
        with pytest.raises(TypeError, match=msg):
            interop.to_torch(model, torch)
    with pytest.raises(TypeError, match=r"data_format='channels_last'"):
        interop.to_torch(nn.Sequential(nn.MaxPool2d(2, data_format="channels_last")), torch)
    # data_format is read by the one parser the layers use: any case of channels_first is
    # torch's layout, and an unknown spelling is named rather than taken as channels_last
    assert isinstance(interop.to_torch(nn.Sequential(nn.MaxPool2d(2, data_format="Channels_First")),
                                       torch)[0], torch.nn.MaxPool2d)
    with pytest.raises(TypeError, match=r"data_format='CHANNELS_LAST'"):
        interop.to_torch(nn.Sequential(nn.MaxPool2d(2, data_format="CHANNELS_LAST")), torch)
    with pytest.raises(ValueError, match=r"to_torch: layer '0' \(MaxPool2d\): data_format must be"):
        interop.to_torch(nn.Sequential(nn.MaxPool2d(2, data_format="NHWC")), torch)

    class TorchCustom(torch.nn.Module):
        def forward(self, x):
            return x
    for module, msg in [(torch.nn.Sequential(torch.nn.GRU(2, 2)), r"layer '0' is a GRU"),
                        (TorchCustom(), "the model is a TorchCustom"),
                        (torch.nn.Sequential(torch.nn.Sequential(torch.nn.Bilinear(2, 2, 2))),
                         r"layer '0\.0' is a Bilinear")]:
        with pytest.raises(TypeError, match=msg):
            interop.from_torch(module, torch)
    reflect = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 3, padding_mode="reflect"))  # converts now
    assert interop.from_torch(reflect, torch)[0].padding_mode == "reflect"
    with pytest.raises(TypeError, match="float16 weights"):
        interop.from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2).half()), torch)


def test_bad_arguments():
    torch = pytest.importorskip("torch")
    import numpy
    for not_torch in ("torch", numpy, None, torch.nn):
        with pytest.raises(TypeError, match="to_torch: torch must be the torch module itself"):
            interop.to_torch(small_cnn(), not_torch)
        with pytest.raises(TypeError, match="from_torch: torch must be the torch module itself"):
            interop.from_torch(torch.nn.ReLU(), not_torch)
    with pytest.raises(TypeError, match="model must be a minipool.nn.Module"):
        interop.to_torch(torch.nn.ReLU(), torch)
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        interop.from_torch(small_cnn(), torch)
    mixed = nn.Sequential(nn.Linear(2, 2, dtype=np.float32), nn.Linear(2, 2, dtype=np.float64))
    with pytest.raises(TypeError, match="mixes parameter dtypes"):
        interop.to_torch(mixed, torch)
    assert interop.supported_layers()[0] == "Sequential" and "Conv2d" in interop.supported_layers()
