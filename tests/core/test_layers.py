"""Linear, Dropout, Conv2d layers, F.linear / F.dropout and nn.init."""
import math

import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from minipool.nn import init


def rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ F.linear
@pytest.mark.parametrize("x_shape", [(5, 4), (4,), (2, 3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_formula_and_gradcheck(x_shape, bias):
    r = rng(1)
    x = r.standard_normal(x_shape)
    w = r.standard_normal((3, 4))
    b = r.standard_normal(3) if bias else None
    out = F.linear(mp.tensor(x), mp.tensor(w), None if b is None else mp.tensor(b))
    expected = np.einsum("...i,oi->...o", x, w) + (0 if b is None else b)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-13)
    inputs = [mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)]
    if bias:
        inputs.append(mp.tensor(b, requires_grad=True))
    assert mp.gradcheck(lambda *t: F.linear(*t), inputs)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_linear_matches_torch(dtype, rtol):
    torch = pytest.importorskip("torch")
    r = rng(2)
    x, w, b = (r.standard_normal(s).astype(dtype) for s in ((64, 400), (120, 400), (120,)))
    g = r.standard_normal((64, 120)).astype(dtype)
    mx, mw, mb = (mp.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    F.linear(mx, mw, mb).backward(g)
    ref = torch.nn.functional.linear(tx, tw, tb)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(F.linear(mx, mw, mb).numpy(), ref.detach().numpy(), rtol=rtol, atol=rtol * 10)
    for got, want in ((mx, tx), (mw, tw), (mb, tb)):
        scale = np.abs(want.grad.numpy()).max()
        np.testing.assert_allclose(got.grad.numpy(), want.grad.numpy(), rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("args,error,match", [
    ((mp.zeros(2, 5), mp.zeros(3, 4)), ValueError, "in_features=4"),
    ((mp.zeros(2, 4), mp.zeros(3, 4, 1)), ValueError, "weight"),
    ((mp.zeros(2, 4), mp.zeros(3, 4), mp.zeros(4)), ValueError, "bias"),
    ((mp.zeros(2, 4), mp.zeros(3, 4, dtype=np.float64)), TypeError, "weight dtype"),
    ((mp.tensor(1.0), mp.zeros(3, 4)), ValueError, "input"),
])
def test_linear_bad_arguments(args, error, match):
    with pytest.raises(error, match=match):
        F.linear(*args)


# ------------------------------------------------------------------ F.dropout
def test_dropout_mask_scaling_and_gradient():
    x = mp.tensor(rng(3).standard_normal((200, 50)), requires_grad=True)
    y = F.dropout(x, p=0.3, generator=rng(4))
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y.numpy()[kept], x.numpy()[kept] / 0.7, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-12)
    # the same generator state gives the same mask; another state another one
    again = F.dropout(x, p=0.3, generator=rng(4)).numpy()
    np.testing.assert_array_equal(again, y.numpy())
    assert not np.array_equal(F.dropout(x, p=0.3, generator=rng(5)).numpy(), y.numpy())


def test_dropout_gradcheck_with_fixed_generator():
    x = mp.tensor(rng(6).standard_normal((3, 5)), requires_grad=True)
    assert mp.gradcheck(lambda t: F.dropout(t, 0.4, generator=rng(7)), [x])


def test_dropout_edge_probabilities_and_eval():
    x = mp.tensor(rng(8).standard_normal(100).astype(np.float32), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    zero = F.dropout(x, 1.0, generator=rng(0))
    np.testing.assert_array_equal(zero.numpy(), 0)
    assert zero.dtype == np.float32
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match="p must be"):
            F.dropout(x, bad)
    with pytest.raises(TypeError, match="generator"):
        F.dropout(x, 0.5, generator=4.2)  # an int is a seed (minipool._random.resolve)


def test_dropout_layer_respects_training_mode():
    drop = nn.Dropout(0.5, generator=rng(9))
    x = mp.ones(1000)
    y = drop(x).numpy()
    assert set(np.unique(y)) == {0.0, 2.0}
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), 1.0)
    drop.train()
    assert (drop(x).numpy() == 0).any()
    assert repr(drop) == "Dropout(p=0.5, inplace=False)"
    with pytest.raises(ValueError, match="p must be"):
        nn.Dropout(2)


# ------------------------------------------------------------------ layers
def test_linear_layer_init_bounds_and_state_dict():
    fc = nn.Linear(400, 120, generator=rng(10))
    bound = 1 / math.sqrt(400)
    for p in (fc.weight, fc.bias):
        assert p.dtype == np.float32 and p.requires_grad
        assert np.abs(p.numpy()).max() <= bound
    # uniform over the whole range: extremes near the bound, variance bound^2 / 3
    w = fc.weight.numpy()
    assert w.max() > 0.99 * bound and w.min() < -0.99 * bound
    assert abs(w.var() - bound ** 2 / 3) < 0.03 * bound ** 2
    assert list(fc.state_dict()) == ["weight", "bias"]
    assert [k for k, _ in fc.named_parameters()] == ["weight", "bias"]
    no_bias = nn.Linear(3, 2, bias=False)
    assert no_bias.bias is None and list(no_bias.state_dict()) == ["weight"]
    assert repr(no_bias) == "Linear(in_features=3, out_features=2, bias=False)"
    same = nn.Linear(400, 120, generator=rng(10))
    np.testing.assert_array_equal(same.weight.numpy(), w)


def test_conv_layer_init_bounds_state_dict_and_repr():
    conv = nn.Conv2d(6, 16, 5, generator=rng(11))
    bound = 1 / math.sqrt(6 * 25)
    assert conv.weight.shape == (16, 6, 5, 5) and conv.bias.shape == (16,)
    assert np.abs(conv.weight.numpy()).max() <= bound
    assert conv.weight.numpy().max() > 0.95 * bound
    assert np.abs(conv.bias.numpy()).max() <= bound
    assert list(conv.state_dict()) == ["weight", "bias"]
    grouped = nn.Conv2d(4, 8, (3, 2), stride=2, padding=1, dilation=(2, 1), groups=2, bias=False)
    assert grouped.weight.shape == (8, 2, 3, 2) and grouped.bias is None
    assert np.abs(grouped.weight.numpy()).max() <= 1 / math.sqrt(2 * 6)
    y = grouped(mp.zeros(1, 4, 9, 9))
    assert y.shape == (1, 8, 4, 5)
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(3, 4, 0)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="same"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")


@pytest.mark.parametrize("make_args", [
    ((1, 6, 5), {}),
    ((4, 8, (3, 2)), dict(stride=2, padding=1, dilation=(2, 1), groups=2, bias=False)),
    ((3, 3, 3), dict(padding="same")),
])
def test_conv_repr_matches_torch(make_args):
    torch = pytest.importorskip("torch")
    args, kwargs = make_args
    assert repr(nn.Conv2d(*args, **kwargs)) == repr(torch.nn.Conv2d(*args, **kwargs))


def test_layer_reprs_match_torch():
    torch = pytest.importorskip("torch")
    assert repr(nn.Linear(400, 120)) == repr(torch.nn.Linear(400, 120))
    assert repr(nn.Dropout(0.25)) == repr(torch.nn.Dropout(0.25))


def test_layers_give_torch_results_with_torch_weights():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t_conv, t_fc = torch.nn.Conv2d(1, 6, 5), torch.nn.Linear(24, 3)
    m_conv, m_fc = nn.Conv2d(1, 6, 5), nn.Linear(24, 3)
    m_conv.load_state_dict({k: v.detach().numpy() for k, v in t_conv.state_dict().items()})
    m_fc.load_state_dict({k: v.detach().numpy() for k, v in t_fc.state_dict().items()})
    x = rng(12).standard_normal((2, 1, 8, 8)).astype(np.float32)
    ref = t_fc(t_conv(torch.tensor(x))[:, :, ::2, ::2].reshape(2, 24)).detach().numpy()
    got = m_fc(F.reshape(m_conv(mp.tensor(x))[:, :, ::2, ::2], (2, 24))).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_torch_default_init_has_the_same_bounds():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for make in (lambda m: m.Linear(50, 7), lambda m: m.Conv2d(3, 4, 3)):
        t_layer, m_layer = make(torch.nn), make(nn)
        for name in ("weight", "bias"):
            t_bound = np.abs(getattr(t_layer, name).detach().numpy()).max()
            m_bound = np.abs(getattr(m_layer, name).numpy()).max()
            fan_in = np.prod(m_layer.weight.shape[1:])
            assert t_bound <= 1 / np.sqrt(fan_in) and m_bound <= 1 / np.sqrt(fan_in)


# ------------------------------------------------------------------ nn.init
def test_init_distributions():
    w = mp.zeros(256, 128, 3, 3)
    fan_in, fan_out = 128 * 9, 256 * 9
    init.kaiming_uniform_(w, generator=rng(13))  # leaky_relu gain with a=0: sqrt(2)
    bound = math.sqrt(2) * math.sqrt(3 / fan_in)
    assert np.abs(w.numpy()).max() <= bound and w.numpy().max() > 0.999 * bound
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=rng(14))
    assert abs(w.numpy().std() - math.sqrt(2 / fan_out)) < 0.01 * math.sqrt(2 / fan_out)
    init.xavier_uniform_(w, gain=2.0, generator=rng(15))
    bound = 2.0 * math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(w.numpy()).max() <= bound and w.numpy().max() > 0.999 * bound
    init.xavier_normal_(w, generator=rng(16))
    assert abs(w.numpy().std() - math.sqrt(2 / (fan_in + fan_out))) < 0.01 * math.sqrt(2 / (fan_in + fan_out))
    init.normal_(w, mean=3.0, std=0.5, generator=rng(17))
    assert abs(w.numpy().mean() - 3.0) < 0.01 and abs(w.numpy().std() - 0.5) < 0.01
    init.uniform_(w, -2.0, 1.0, generator=rng(18))
    assert w.numpy().min() >= -2.0 and w.numpy().max() < 1.0 and abs(w.numpy().mean() + 0.5) < 0.01
    init.zeros_(w)
    assert not w.numpy().any()
    init.ones_(w)
    assert (w.numpy() == 1).all()


def test_init_is_in_place_reproducible_and_validated():
    w = nn.Parameter(np.zeros((4, 3), np.float32))
    buffer = w.numpy()
    assert init.uniform_(w, generator=rng(19)) is w
    assert w.numpy() is buffer and w.dtype == np.float32
    first = w.numpy().copy()
    init.uniform_(w, generator=rng(19))
    np.testing.assert_array_equal(w.numpy(), first)
    init.manual_seed(5)
    a = init.normal_(mp.zeros(5)).numpy().copy()
    init.manual_seed(5)
    np.testing.assert_array_equal(init.normal_(mp.zeros(5)).numpy(), a)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(mp.zeros(5))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(w, mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(TypeError, match="Tensor"):
        init.zeros_(np.zeros(3))
    with pytest.raises(ValueError, match="std"):
        init.normal_(w, std=-1.0)


@pytest.mark.parametrize("name,param", [("linear", None), ("conv2d", None), ("sigmoid", None),
                                        ("tanh", None), ("relu", None), ("leaky_relu", None),
                                        ("leaky_relu", 0.2), ("selu", None)])
def test_calculate_gain_matches_torch(name, param):
    torch = pytest.importorskip("torch")
    assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param), rel=1e-15)


# Layers hold their arguments; the functional op checks them at each call.  Where PyTorch's
# layer checks an argument at construction, minipool's does too (both lists below were
# checked against torch 2.13): a bad argument fails at the same moment in both libraries.
_X4 = np.zeros((1, 2, 4, 4), np.float32)
_PAIR = (np.zeros(3, np.float32), np.ones(3, np.float32))
CHECKED_AT_THE_CALL = [  # (name, args, kwargs, inputs, words of minipool's message)
    ("Upsample", (), dict(scale_factor=2, mode="box"), (_X4,), "mode"),
    ("Upsample", (), dict(mode="bilinear"), (_X4,), "exactly one of size and scale_factor"),
    ("Upsample", (), dict(size=2, scale_factor=2), (_X4,), "exactly one of size and scale_factor"),
    ("GELU", ("fast",), {}, (_X4,), "approximate"),
    ("SmoothL1Loss", (), dict(beta=-1.0), _PAIR, "beta"),
    ("HuberLoss", (), dict(delta=0.0), _PAIR, "delta"),
    ("L1Loss", (), dict(reduction="avg"), _PAIR, "reduction"),
    ("MSELoss", (), dict(reduction="avg"), _PAIR, "reduction"),
    ("ConvTranspose2d", (2, 2, 3), dict(output_padding=2), (_X4,), "output_padding"),
]
CHECKED_AT_CONSTRUCTION = [
    ("Conv2d", (3, 2, 3), dict(groups=2), "divisible by groups"),
    ("Conv2d", (2, 2, 3), dict(padding_mode="circle"), "padding_mode"),
    ("Conv2d", (2, 2, 3), dict(stride=2, padding="same"), "padding='same'"),
    ("ConvTranspose2d", (2, 2, 3), dict(padding_mode="reflect"), "padding_mode"),
    ("Dropout", (1.5,), {}, "p"),
    ("Hardtanh", (1.0, -1.0), {}, "min_val"),
]


@pytest.mark.parametrize("name, args, kwargs, inputs, words", CHECKED_AT_THE_CALL)
def test_layers_check_arguments_at_the_call_as_torch(name, args, kwargs, inputs, words):
    torch = pytest.importorskip("torch")
    layer, torch_layer = getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    with pytest.raises(ValueError, match=words):
        layer(*(mp.tensor(x) for x in inputs))
    with pytest.raises((ValueError, RuntimeError, NotImplementedError)):
        torch_layer(*(torch.tensor(x) for x in inputs))


@pytest.mark.parametrize("name, args, kwargs, words", CHECKED_AT_CONSTRUCTION)
def test_layers_check_arguments_at_construction_where_torch_does(name, args, kwargs, words):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=words):
        getattr(nn, name)(*args, **kwargs)
    with pytest.raises((ValueError, AssertionError)):
        getattr(torch.nn, name)(*args, **kwargs)


def test_conv_layers_share_one_constructor():
    # Conv2d and ConvTranspose2d differ only in the weight's layout and in output_padding
    conv, up = nn.Conv2d(4, 6, 3, groups=2), nn.ConvTranspose2d(4, 6, 3, groups=2)
    assert conv.weight.shape == (6, 2, 3, 3) and up.weight.shape == (4, 3, 3, 3)
    assert conv.output_padding == (0, 0) and up.output_padding == (0, 0)
    for cls in (nn.Conv2d, nn.ConvTranspose2d):
        with pytest.raises(ValueError, match=f"{cls.__name__}: out_channels=5 must be divisible"):
            cls(4, 5, 3, groups=2)
