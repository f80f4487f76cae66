"""leaky_relu, gelu, silu, elu, relu6, hardtanh, softplus, dropout2d and their layers.

Per-element references written with the math module (values and derivatives from
the textbook formulas, PyTorch's conventions at the kinks), PyTorch parity on
values and gradients (float32 and float64, kinks, NaN and infinities included),
float64 gradchecks, hypothesis properties, and named errors.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from minipool.testing import assert_close


# --------------------------------------------------------------------------- references
def _phi(v):
    return 0.5 * (1 + math.erf(v / math.sqrt(2)))


def _sig(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def ref_leaky(v, s):
    return (v if v > 0 else s * v), (1.0 if v > 0 else s)


def ref_hardtanh(v, lo, hi):
    val = min(max(v, lo), hi)
    return val, (1.0 if lo < v < hi else 0.0)


def ref_elu(v, a):
    return (v if v > 0 else a * (math.exp(v) - 1)), (1.0 if v > 0 else a * math.exp(v))


def ref_gelu(v):
    pdf = math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
    return v * _phi(v), _phi(v) + v * pdf


def ref_gelu_tanh(v):
    c = math.sqrt(2 / math.pi)
    u = c * (v + 0.044715 * v ** 3)
    t = math.tanh(u)
    return 0.5 * v * (1 + t), 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v)


def ref_silu(v):
    s = _sig(v)
    return v * s, s + v * s * (1 - s)


def ref_softplus(v, beta, threshold):
    if beta * v > threshold:
        return v, 1.0
    z = beta * v
    return (max(z, 0) + math.log1p(math.exp(-abs(z)))) / beta, _sig(z)


CASES = [
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.1), lambda v: ref_leaky(v, 0.1), "leaky_relu", {"negative_slope": 0.1}),
    ("leaky_relu_default", lambda x: F.leaky_relu(x), lambda v: ref_leaky(v, 0.01), "leaky_relu", {}),
    ("hardtanh", lambda x: F.hardtanh(x, -0.5, 2.0), lambda v: ref_hardtanh(v, -0.5, 2.0), "hardtanh",
     {"min_val": -0.5, "max_val": 2.0}),
    ("hardtanh_default", lambda x: F.hardtanh(x), lambda v: ref_hardtanh(v, -1.0, 1.0), "hardtanh", {}),
    ("relu6", lambda x: F.relu6(x), lambda v: ref_hardtanh(v, 0.0, 6.0), "relu6", {}),
    ("elu", lambda x: F.elu(x, 0.7), lambda v: ref_elu(v, 0.7), "elu", {"alpha": 0.7}),
    ("elu_default", lambda x: F.elu(x), lambda v: ref_elu(v, 1.0), "elu", {}),
    ("gelu", lambda x: F.gelu(x), ref_gelu, "gelu", {}),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), ref_gelu_tanh, "gelu", {"approximate": "tanh"}),
    ("silu", lambda x: F.silu(x), ref_silu, "silu", {}),
    ("softplus", lambda x: F.softplus(x), lambda v: ref_softplus(v, 1.0, 20.0), "softplus", {}),
    ("softplus_beta", lambda x: F.softplus(x, beta=2.0, threshold=5.0),
     lambda v: ref_softplus(v, 2.0, 5.0), "softplus", {"beta": 2.0, "threshold": 5.0}),
    ("softplus_negbeta", lambda x: F.softplus(x, beta=-1.5, threshold=3.0),
     lambda v: ref_softplus(v, -1.5, 3.0), "softplus", {"beta": -1.5, "threshold": 3.0}),
]
IDS = [c[0] for c in CASES]

# kinks of every op, points near them, and a spread of ordinary values
SPECIAL = np.array([-30.0, -6.0, -2.5, -1.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0, 2.0, 2.5, 2.6, 5.0,
                    6.0, 6.5, 10.0, 10.1, 19.9, 20.0, 20.5, 45.0, -0.0])


def assert_matches_math_reference(fn, ref, points):
    """Values and derivatives of ``fn`` at ``points`` (float64) against ``ref(v) -> (value,
    derivative)``; shared with test_activations_more.py."""
    x = mp.tensor(points, dtype="float64", requires_grad=True)
    y = fn(x)
    y.sum().backward()
    want = [ref(float(v)) for v in points]
    np.testing.assert_allclose(y.numpy(), [w[0] for w in want], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), [w[1] for w in want], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("name,fn,ref,_tname,_kw", CASES, ids=IDS)
def test_matches_math_reference_values_and_derivatives(name, fn, ref, _tname, _kw):
    assert_matches_math_reference(fn, ref, SPECIAL)


@pytest.mark.parametrize("name,fn,ref,_tname,_kw", CASES, ids=IDS)
def test_gradcheck_float64_away_from_kinks(name, fn, ref, _tname, _kw):
    r = np.random.default_rng(1)
    v = r.uniform(-4, 4, (3, 5))
    v[np.abs(v) < 0.05] = 0.3  # keep the finite differences off the kink at 0
    for kink in (-0.5, 1.0, 6.0, 2.0, -1.0):
        v[np.abs(v - kink) < 0.05] += 0.2
    x = mp.tensor(v, dtype="float64", requires_grad=True)
    assert mp.gradcheck(fn, [x])


torch = None


def _torch():
    global torch
    torch = pytest.importorskip("torch")
    return torch


WITH_NONFINITE = np.concatenate([SPECIAL, [np.nan, np.inf, -np.inf]])


def _torch_fn(tname, kw):
    t = _torch()
    return lambda a: getattr(t.nn.functional, tname)(a, **kw)


def torch_values_and_grads(tname, kw, v, g):
    """PyTorch's values and input gradients for ``v`` (cotangent ``g``), each element
    repeated 64 times so every one goes through the kernels' vectorised body (the
    scalar tail differs for NaN: see minipool/ops/activations.py)."""
    t = _torch()
    rep = 64
    tx = t.tensor(np.repeat(v.reshape(-1), rep), requires_grad=True)
    ty = _torch_fn(tname, kw)(tx)
    ty.backward(t.tensor(np.repeat(g.reshape(-1), rep)))
    return (ty.detach().numpy()[::rep].reshape(v.shape), tx.grad.numpy()[::rep].reshape(v.shape))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,ref,tname,kw", CASES, ids=IDS)
def test_torch_parity_values_and_gradients(name, fn, ref, tname, kw, dtype):
    t = _torch()
    r = np.random.default_rng(2)
    v = np.concatenate([WITH_NONFINITE, r.standard_normal(40) * 4]).astype(dtype)
    if name == "gelu" and dtype == "float32":
        v = v[v != np.inf]  # PyTorch's float32 gelu(+inf) is NaN (ours +inf): own test below
    assert_torch_parity(name, fn, tname, kw, v, r.standard_normal(v.shape).astype(dtype))


def assert_torch_parity(name, fn, tname, kw, v, g):
    """``fn``'s values and gradients (cotangent ``g``) against PyTorch's on ``v``, at the
    tolerance of v's dtype; shared with test_activations_more.py."""
    x = mp.tensor(v, requires_grad=True)
    y = fn(x)
    y.backward(mp.tensor(g))
    ty, tgrad = torch_values_and_grads(tname, kw, v, g)
    tol = 1e-6 if v.dtype == np.float32 else 1e-13
    assert y.dtype == v.dtype and x.grad.dtype == v.dtype
    assert_close(y.numpy(), ty, rtol=tol, atol=tol, what=f"{name} forward")
    assert_close(x.grad.numpy(), tgrad, rtol=tol * 10, atol=tol, what=f"{name} backward")


def test_gelu_of_infinity_is_infinite_in_both_dtypes():
    t = _torch()
    for dtype in ("float32", "float64"):
        x = mp.tensor(np.array([np.inf, -np.inf], dtype), requires_grad=True)
        y = F.gelu(x)
        assert y.numpy()[0] == np.inf and np.isnan(y.numpy()[1])
    # the float64 PyTorch value we follow
    assert t.nn.functional.gelu(t.tensor([np.inf], dtype=t.float64)).item() == np.inf


@pytest.mark.parametrize("name,fn,ref,tname,kw", CASES, ids=IDS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_property_torch_parity_over_shapes_and_ties(name, fn, ref, tname, kw, data):
    t = _torch()
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    # values drawn mostly from the kinks, so ties with the thresholds are frequent
    elements = st.one_of(st.sampled_from([0.0, -0.0, 6.0, 1.0, -1.0, 2.0, -0.5, 20.0, 5.0, 2.5,
                                          np.nan, np.inf, -np.inf]),
                         st.floats(-50, 50, width=64))
    v = data.draw(hnp.arrays(np.float64, shape, elements=elements))
    x = mp.tensor(v, requires_grad=True)
    y = fn(x)
    g = np.ones(v.shape)
    y.backward(mp.tensor(g) if y.ndim else None)
    ty, tgrad = torch_values_and_grads(tname, kw, v, g)
    assert y.shape == v.shape
    assert_close(y.numpy(), ty, rtol=1e-12, atol=1e-14, what="forward")
    assert_close(x.grad.numpy(), tgrad, rtol=1e-11, atol=1e-14, what="backward")


def test_kink_gradients_are_pytorchs():
    """Spelled out: the value the gradient takes exactly at each kink."""
    x = mp.tensor([0.0], dtype="float64", requires_grad=True)
    F.leaky_relu(x, 0.2).sum().backward()
    assert x.grad.numpy().tolist() == [0.2]
    x = mp.tensor([0.0, 6.0], dtype="float64", requires_grad=True)
    F.relu6(x).sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 0.0]
    x = mp.tensor([-1.0, 1.0], dtype="float64", requires_grad=True)
    F.hardtanh(x).sum().backward()
    assert x.grad.numpy().tolist() == [0.0, 0.0]
    x = mp.tensor([0.0], dtype="float64", requires_grad=True)
    F.elu(x, 0.5).sum().backward()
    assert x.grad.numpy().tolist() == [0.5]
    x = mp.tensor([np.nan], dtype="float64", requires_grad=True)
    F.relu6(x).sum().backward()
    assert x.grad.numpy().tolist() == [0.0]  # NaN is not strictly inside (0, 6)
    x = mp.tensor([np.nan, -np.inf], dtype="float64", requires_grad=True)
    F.elu(x).sum().backward()
    assert np.isnan(x.grad.numpy()[0]) and x.grad.numpy()[1] == 0.0


def test_float32_stays_float32_and_large_inputs_do_not_overflow():
    x = mp.tensor(np.array([-1e4, -100.0, 100.0, 1e4], np.float32), requires_grad=True)
    for fn in (F.elu, F.silu, F.softplus, F.gelu, lambda a: F.gelu(a, approximate="tanh")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = fn(x)
            y.sum().backward()
        assert y.dtype == np.float32 and x.grad.dtype == np.float32
        assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(x.grad.numpy()))
        x.grad = None


def test_inplace_is_honoured_without_grad_and_refused_with_grad():
    x = mp.tensor([-2.0, 3.0])
    out = F.leaky_relu(x, 0.5, inplace=True)
    assert out is x and x.numpy().tolist() == [-1.0, 3.0]
    x = mp.tensor([-2.0, 9.0])
    assert F.relu6(x, inplace=True) is x and x.numpy().tolist() == [0.0, 6.0]
    layer = nn.ELU(inplace=True)
    x = mp.tensor([0.0, 1.0])
    assert layer(x) is x
    w = mp.tensor([1.0], requires_grad=True)
    for call in (lambda: F.leaky_relu(w, inplace=True), lambda: F.elu(w, inplace=True),
                 lambda: F.hardtanh(w, inplace=True), lambda: F.silu(w, inplace=True),
                 lambda: nn.ReLU6(inplace=True)(w)):
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            call()  # as PyTorch: a leaf refuses; a result records (test_inplace_activations.py)
    with mp.no_grad():
        assert F.silu(w, inplace=True) is w


@pytest.mark.parametrize("call,exc,words", [
    (lambda: F.leaky_relu(mp.tensor([1, 2])), TypeError, "float32 or float64"),
    (lambda: F.gelu(mp.tensor([1.0]), approximate="erf"), ValueError, "approximate"),
    (lambda: F.gelu(mp.tensor([1, 2])), TypeError, "float32"),
    (lambda: F.softplus(mp.tensor([1.0]), beta=0), ValueError, "beta"),
    (lambda: F.softplus(mp.tensor([1.0]), threshold="x"), TypeError, "threshold"),
    (lambda: F.hardtanh(mp.tensor([1.0]), 2.0, 1.0), ValueError, "min_val"),
    (lambda: F.hardtanh(mp.tensor([1.0]), float("nan"), 1.0), TypeError, "min_val"),
    (lambda: F.elu(mp.tensor([1.0]), alpha=None), TypeError, "alpha"),
    (lambda: F.leaky_relu(mp.tensor([1.0]), negative_slope=True), TypeError, "negative_slope"),
    (lambda: nn.GELU("fast")(mp.tensor([1.0])), ValueError, "approximate"),
    (lambda: nn.Hardtanh(1.0, -1.0), ValueError, "min_val"),
])
def test_bad_arguments_raise_named_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_layers_match_functional_and_torch_repr():
    t = _torch()
    pairs = [(nn.LeakyReLU(), t.nn.LeakyReLU()), (nn.LeakyReLU(0.2), t.nn.LeakyReLU(0.2)),
             (nn.GELU(), t.nn.GELU()), (nn.GELU("tanh"), t.nn.GELU("tanh")), (nn.SiLU(), t.nn.SiLU()),
             (nn.ELU(), t.nn.ELU()), (nn.ELU(0.5), t.nn.ELU(0.5)), (nn.ReLU6(), t.nn.ReLU6()),
             (nn.Hardtanh(), t.nn.Hardtanh()), (nn.Hardtanh(-2.0, 3.0), t.nn.Hardtanh(-2.0, 3.0)),
             (nn.Softplus(), t.nn.Softplus()), (nn.Softplus(2.0, 10.0), t.nn.Softplus(2.0, 10.0)),
             (nn.ReLU(), t.nn.ReLU())]
    v = np.linspace(-8, 8, 33)
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        np.testing.assert_allclose(ours(mp.tensor(v)).numpy(), theirs(t.tensor(v)).numpy(), rtol=1e-12, atol=1e-15)
    assert nn.ReLU6().parameters is not None and list(nn.ReLU6().parameters()) == []


# --------------------------------------------------------------------------- dropout2d
def test_dropout2d_zeroes_whole_channels_and_scales_the_rest():
    rng = np.random.default_rng(0)
    x = mp.tensor(rng.uniform(1, 2, (8, 16, 5, 5)), dtype="float64", requires_grad=True)
    y = F.dropout2d(x, 0.4, generator=np.random.default_rng(3))
    out = y.numpy()
    xs = x.numpy()
    kept_any = dropped_any = False
    for n in range(8):  # loop reference: each (n, c) plane is all zero or x / (1 - p)
        for c in range(16):
            plane = out[n, c]
            if np.all(plane == 0):
                dropped_any = True
            else:
                kept_any = True
                np.testing.assert_allclose(plane, xs[n, c] / 0.6, rtol=1e-15)
    assert kept_any and dropped_any
    g = rng.standard_normal(out.shape)
    y.backward(mp.tensor(g))
    mask = (out != 0) / 0.6
    np.testing.assert_allclose(x.grad.numpy(), g * mask, rtol=1e-15)


def test_dropout2d_rate_generator_and_modes():
    x = mp.ones((200, 50, 2, 2))
    y = F.dropout2d(x, 0.3, generator=np.random.default_rng(1)).numpy()
    dropped = np.mean(np.all(y == 0, axis=(2, 3)))
    assert abs(dropped - 0.3) < 0.02  # 10000 channels: 4.6 standard deviations
    same = F.dropout2d(x, 0.3, generator=np.random.default_rng(1)).numpy()
    assert np.array_equal(y, same)
    assert F.dropout2d(x, 0.3, training=False) is x
    assert F.dropout2d(x, 0.0) is x
    assert np.all(F.dropout2d(x, 1.0).numpy() == 0)
    layer = nn.Dropout2d(0.5, generator=np.random.default_rng(5))
    assert repr(layer) == "Dropout2d(p=0.5, inplace=False)"
    assert layer.eval()(x) is x
    layer.train()
    z = layer(mp.ones((4, 6, 3, 3))).numpy()
    assert set(np.unique(z)) <= {0.0, 2.0}
    mp.manual_seed(11)
    a = F.dropout2d(x, 0.5).numpy()
    mp.manual_seed(11)
    b = F.dropout2d(x, 0.5).numpy()
    assert np.array_equal(a, b)


def test_dropout2d_other_ranks_follow_pytorch():
    """3-D is (N, C, L) with PyTorch's warning; 2-D and 5-D warn; 1-D is an error."""
    with pytest.warns(UserWarning, match="3D input"):
        y = F.dropout2d(mp.ones((6, 7, 9)), 0.5, generator=np.random.default_rng(0)).numpy()
    assert np.all((y == 0).all(axis=2) | (y == 2).all(axis=2))
    with pytest.warns(UserWarning, match="deprecated"):
        F.dropout2d(mp.ones((2, 3)), 0.5)
    with pytest.warns(UserWarning, match="deprecated"):
        y = F.dropout2d(mp.ones((3, 4, 2, 2, 2)), 0.5).numpy()
    assert np.all((y == 0).all(axis=(2, 3, 4)) | (y == 2).all(axis=(2, 3, 4)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        F.dropout2d(mp.ones(5), 0.5)


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True, float("nan")])
def test_dropout2d_bad_p(p):
    with pytest.raises(ValueError, match="p must be a probability"):
        F.dropout2d(mp.ones((2, 2, 2, 2)), p)
    with pytest.raises(ValueError, match="p must be a probability"):
        nn.Dropout2d(p)


def test_dropout2d_bad_generator_and_dtype():
    with pytest.raises(TypeError, match="generator"):
        F.dropout2d(mp.ones((2, 2, 2, 2)), 0.5, generator="seed please")
    with pytest.raises(TypeError, match="float32 or float64"):
        F.dropout2d(mp.tensor(np.ones((2, 2, 2, 2), np.int64)), 0.5)
