"""Spatial pyramid pooling (He et al. 2014): spatial_pyramid_pool2d, SpatialPyramidPool2d.

Oracles: a loop reference written here (adaptive bins [floor(i*in/l), ceil((i+1)*in/l)),
max with max pooling's NaN/first-tie rule or mean, flattened (C, l, l) per level,
levels concatenated); PyTorch's composition torch.cat([torch.flatten(
adaptive_{max,avg}_pool2d(x, l), 1) for l in levels], 1), forward and backward, both
layouts; float64 finite differences; hypothesis over sizes, levels, NaN/inf/ties.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from tests.pooling.pooling_cases import FLOAT_DTYPES


def bins(n, l):
    return [((i * n) // l, -((-(i + 1) * n) // l)) for i in range(l)]


def ref_max(win):
    best = -np.inf
    for v in win.ravel():
        if v > best or np.isnan(v):
            best = v
    return best


def ref_spp(x, levels, mode):
    """(N, C, H, W) -> (N, C * sum(l*l)), float64 sums for the mean."""
    N, C, H, W = x.shape
    parts = []
    for l in levels:
        out = np.empty((N, C, l, l), dtype=x.dtype)
        for i, (h0, h1) in enumerate(bins(H, l)):
            for j, (w0, w1) in enumerate(bins(W, l)):
                for n in range(N):
                    for c in range(C):
                        win = x[n, c, h0:h1, w0:w1]
                        with np.errstate(invalid="ignore"):       # inf - inf is NaN
                            out[n, c, i, j] = ref_max(win) if mode == "max" else \
                                win.astype(np.float64).sum() / win.size
        parts.append(out.reshape(N, C * l * l))
    return np.concatenate(parts, axis=1)


def run(x, levels, mode, grad=None, channels_last=False):
    data = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
    t = mp.tensor(data, requires_grad=True)
    y = F.spatial_pyramid_pool2d(t, levels, mode,
                                 data_format="channels_last" if channels_last else None)
    if grad is None:
        return y.numpy(), None
    y.backward(mp.tensor(grad))
    g = t.grad.numpy()
    return y.numpy(), np.moveaxis(g, -1, 1) if channels_last else g


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("shape,levels", [((2, 3, 13, 9), (1, 2, 4)), ((1, 2, 5, 7), (3, 1)),
                                          ((2, 1, 2, 3), (4,)), ((1, 4, 8, 8), (1, 2, 3, 6))])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_loop_reference(shape, levels, mode, dtype, channels_last):
    rng = np.random.default_rng(shape[2])
    x = rng.integers(-4, 5, size=shape).astype(dtype)
    y, _ = run(x, levels, mode, channels_last=channels_last)
    ref = ref_spp(x, levels, mode)
    assert y.shape == (shape[0], shape[1] * sum(l * l for l in levels))
    if mode == "max":
        np.testing.assert_array_equal(y, ref)
    else:
        np.testing.assert_allclose(y, ref, rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape,levels", [((2, 3, 13, 9), (1, 2, 4)), ((3, 5, 6), (2, 3)),
                                          ((1, 2, 3, 3), (1, 2, 4))])   # levels finer than input
def test_torch_parity(shape, levels, mode, dtype, channels_last):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::7] = x.reshape(-1)[0]           # ties
    tx = torch.tensor(x, requires_grad=True)
    pool = torch.nn.functional.adaptive_max_pool2d if mode == "max" else \
        torch.nn.functional.adaptive_avg_pool2d
    batched = len(shape) == 4
    flat = (lambda t: torch.flatten(t, 1)) if batched else (lambda t: torch.flatten(t))
    ty = torch.cat([flat(pool(tx, l)) for l in levels], dim=1 if batched else 0)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(g))
    if batched:
        y, gin = run(x, levels, mode, g, channels_last)
    else:
        y, gin = run(x[None], levels, mode, g[None], channels_last)
        y, gin = y[0], gin[0]
        unbatched = F.spatial_pyramid_pool2d(mp.tensor(x), levels, mode).numpy()
        np.testing.assert_array_equal(unbatched, y)
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-15)
    if mode == "max":
        np.testing.assert_array_equal(y, ty.detach().numpy())
    else:
        np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(gin, tx.grad.numpy(), **tol)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gradcheck(mode, channels_last):
    rng = np.random.default_rng(2)
    shape = (2, 2, 7, 5)
    x = rng.permutation(math.prod(shape)).reshape(shape).astype(np.float64) * 0.1
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    t = mp.tensor(x, requires_grad=True)
    fmt = "channels_last" if channels_last else None
    assert mp.gradcheck(lambda v: F.spatial_pyramid_pool2d(v, (1, 2, 3), mode,
                                                           data_format=fmt), [t])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_hypothesis_against_reference(data):
    H, W = data.draw(st.integers(1, 10)), data.draw(st.integers(1, 10))
    shape = (data.draw(st.integers(0, 2)), data.draw(st.integers(1, 3)), H, W)
    levels = tuple(data.draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    mode = data.draw(st.sampled_from(["max", "avg"]))
    values = st.sampled_from([0.0, -0.0, 1.0, -2.0, 3.0, np.nan, np.inf, -np.inf])
    x = np.array(data.draw(st.lists(values, min_size=math.prod(shape),
                                    max_size=math.prod(shape))), dtype=np.float64).reshape(shape)
    y, _ = run(x, levels, mode, channels_last=data.draw(st.booleans()))
    ref = ref_spp(x, levels, mode)
    if mode == "max":
        np.testing.assert_array_equal(y, ref)
    else:
        np.testing.assert_allclose(y, ref, rtol=1e-14, equal_nan=True)


def test_layer_gives_one_length_for_any_input_size():
    layer = nn.SpatialPyramidPool2d((1, 2, 4), mode="avg")
    for H, W in ((4, 4), (13, 7), (31, 50)):
        assert layer(mp.ones(2, 5, H, W)).shape == (2, 5 * 21)
    assert "levels=(1, 2, 4)" in repr(layer) and "mode='avg'" in repr(layer)
    # the classic use: features of any size into a fixed Linear
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.SpatialPyramidPool2d((1, 2)), nn.Linear(20, 3))
    assert net(mp.ones(2, 1, 11, 9)).shape == (2, 3)


def test_zero_batch_and_channels_follow_the_adaptive_pools():
    assert F.spatial_pyramid_pool2d(mp.ones(0, 3, 5, 5)).shape == (0, 63)
    assert F.spatial_pyramid_pool2d(mp.ones(2, 0, 5, 5), mode="avg").shape == (2, 0)
    with pytest.raises(ValueError, match="empty non-batch"):
        F.spatial_pyramid_pool2d(mp.ones(2, 0, 5, 5), mode="max")


X = np.ones((1, 2, 6, 6), np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: F.spatial_pyramid_pool2d(X, mode="min"), ValueError, "mode"),
    (lambda: F.spatial_pyramid_pool2d(X, mode=None), ValueError, "mode"),
    (lambda: F.spatial_pyramid_pool2d(X, levels=()), TypeError, "levels"),
    (lambda: F.spatial_pyramid_pool2d(X, levels=(1, 0)), ValueError, "levels"),
    (lambda: F.spatial_pyramid_pool2d(X, levels=(1, 2.0)), TypeError, "levels"),
    (lambda: F.spatial_pyramid_pool2d(X, levels=(True,)), TypeError, "levels"),
    (lambda: F.spatial_pyramid_pool2d(X, levels="124"), TypeError, "levels"),
    (lambda: F.spatial_pyramid_pool2d(X, levels=2**40), ValueError, "levels"),
    (lambda: F.spatial_pyramid_pool2d(np.ones((6, 6), np.float32)), ValueError, "3-d or 4-d"),
    (lambda: F.spatial_pyramid_pool2d(np.ones((1, 1, 2, 6, 6), np.float32)), ValueError,
     "3-d or 4-d"),
    (lambda: F.spatial_pyramid_pool2d(X.astype(np.int32)), TypeError, "dtype"),
    (lambda: F.spatial_pyramid_pool2d(X, data_format="nhwc"), ValueError, "data_format"),
    # the layer holds its arguments; the functional op checks them at the call
    (lambda: nn.SpatialPyramidPool2d((0,))(mp.tensor(X)), ValueError, "levels"),
    (lambda: nn.SpatialPyramidPool2d(mode="sum")(mp.tensor(X)), ValueError, "mode"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_single_int_level():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(F.spatial_pyramid_pool2d(mp.tensor(x), 2).numpy(),
                                  ref_spp(x, (2,), "max"))
