"""minipool's upsampling against PyTorch (skipped when torch is not installed).

Nearest modes are bit-identical to PyTorch's NCHW kernels, forward and
backward.  PyTorch has a second nearest index function (float32 step,
shortcuts for out == in and out == 2 * in) that its 2-D kernels use for small
outputs, its channels_last kernels and all its nearest backwards; where it
picks other pixels than the main formula, the tests assert that PyTorch
matches that other function (so the divergence stays documented, not
skipped) and minipool matches its own reference.  The linear family agrees
to 1e-6 relative (scaled by the input's magnitude), gradients likewise;
bicubic gradients to 2e-6 (ATen's bicubic backward is a separate kernel),
except where that kernel copies the gradient at equal sizes although the
forward resampled (a PyTorch defect, asserted as such below).
"""
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from tests.upsampling.upsampling_cases import FRACTIONS, RANKS

torch = pytest.importorskip("torch")
TF = torch.nn.functional

PARITY = settings(max_examples=40, deadline=None)
MAX_SIDE = {1: 40, 2: 24, 3: 9}


@st.composite
def torch_cases(draw, mode):
    n = draw(st.sampled_from(RANKS[mode])) - 2
    side = MAX_SIDE[n]
    in_sizes = tuple(draw(st.integers(1, side)) for _ in range(n))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + in_sizes
    kwargs = {}
    if draw(st.booleans()):
        kwargs["size"] = tuple(draw(st.integers(1, 2 * side)) for _ in range(n))
    else:
        factor = st.one_of(st.integers(1, 4), st.sampled_from(FRACTIONS), st.floats(0.2, 4.0))
        factors = tuple(draw(factor) for _ in range(n))
        kwargs["scale_factor"] = factors if draw(st.booleans()) or n == 1 else factors[0]
        per_axis = factors if isinstance(kwargs["scale_factor"], tuple) else (factors[0],) * n
        assume(all(math.floor(i * f) >= 1 for i, f in zip(in_sizes, per_axis)))
        if mode != "area":
            kwargs["recompute_scale_factor"] = draw(st.sampled_from([None, False, True]))
    if mode in ("linear", "bilinear", "bicubic", "trilinear"):
        kwargs["align_corners"] = draw(st.sampled_from([None, False, True]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return shape, kwargs, dtype, draw(st.integers(0, 2 ** 16))


def both(x, mode, kwargs, g, channels_last=False):
    """(minipool out, minipool grad, torch out, torch grad) for input x and cotangent g."""
    leaf = mp.tensor(x, requires_grad=True)
    if channels_last:
        out = F.interpolate(leaf, mode=mode, data_format="channels_last", **kwargs)
        xt = torch.tensor(x.transpose(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)
        xt.requires_grad_(True)
        yt = TF.interpolate(xt, mode=mode, **kwargs)
        gt = torch.tensor(g.transpose(0, 3, 1, 2)).contiguous(memory_format=torch.channels_last)
        yt.backward(gt)
        torch_out = yt.detach().numpy().transpose(0, 2, 3, 1)
        torch_grad = xt.grad.numpy().transpose(0, 2, 3, 1)
    else:
        out = F.interpolate(leaf, mode=mode, **kwargs)
        xt = torch.tensor(x, requires_grad=True)
        yt = TF.interpolate(xt, mode=mode, **kwargs)
        yt.backward(torch.tensor(g))
        torch_out, torch_grad = yt.detach().numpy(), xt.grad.numpy()
    out.backward(g)
    return out.numpy(), leaf.grad.numpy(), torch_out, torch_grad


def output_shape(x_shape, kwargs):
    n = len(x_shape) - 2
    if "size" in kwargs:
        return tuple(x_shape[:2]) + tuple(kwargs["size"])
    f = kwargs["scale_factor"]
    factors = f if isinstance(f, tuple) else (f,) * n
    return tuple(x_shape[:2]) + tuple(math.floor(i * s) for i, s in zip(x_shape[2:], factors))


# --------------------------------------------------------------------------- nearest
def shortcut_source(n_in, n_out, factor, exact):
    """ATen's second nearest index function: float32 step, floorf, and for nearest the
    shortcuts out == in -> o and out == 2 * in -> o // 2."""
    o = np.arange(n_out)
    if not exact and n_out == n_in:
        return o
    if not exact and n_out == 2 * n_in:
        return o >> 1
    step = np.float32(1.0 / factor) if factor is not None else np.float32(n_in) / np.float32(n_out)
    if exact:
        src = ((o + 0.5) * np.float64(step)).astype(np.float32)
    else:
        src = o.astype(np.float32) * step
    return np.minimum(np.floor(src).astype(np.intp), n_in - 1)


def our_source(n_in, n_out, factor, exact, dtype):
    from minipool.ops.upsampling import nearest_source  # the formula under test

    return nearest_source(n_in, n_out, factor, exact, np.dtype(dtype).type)


def per_axis_factors(kwargs, n):
    if "size" in kwargs or kwargs.get("recompute_scale_factor"):
        return (None,) * n
    f = kwargs["scale_factor"]
    return tuple(float(v) for v in f) if isinstance(f, tuple) else (float(f),) * n


def gather(x, tables):
    return x[(slice(None), slice(None)) + np.ix_(*tables)]


def scatter(g, in_shape, tables):
    out = np.zeros(in_shape, dtype=np.float64)
    np.add.at(out, (slice(None), slice(None)) + np.ix_(*tables), g.astype(np.float64))
    return out


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@PARITY
@given(data=st.data())
def test_nearest_modes_bit_identical_to_torch(mode, data):
    shape, kwargs, dtype, seed = data.draw(torch_cases(mode))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    out_shape = output_shape(shape, kwargs)
    g = rng.integers(-4, 5, out_shape).astype(dtype)
    out, grad, t_out, t_grad = both(x, mode, kwargs, g)
    exact = mode == "nearest-exact"
    factors = per_axis_factors(kwargs, len(shape) - 2)
    ours = [our_source(i, o, f, exact, dtype) for i, o, f in zip(shape[2:], out_shape[2:], factors)]
    alt = [shortcut_source(i, o, f, exact) for i, o, f in zip(shape[2:], out_shape[2:], factors)]
    np.testing.assert_array_equal(out, gather(x, ours))
    if all(np.array_equal(a, b) for a, b in zip(ours, alt)):
        np.testing.assert_array_equal(out, t_out)
        np.testing.assert_array_equal(grad, t_grad)
    else:  # PyTorch's two index functions disagree here
        assert np.array_equal(t_out, out) or np.array_equal(t_out, gather(x, alt))
        np.testing.assert_array_equal(t_grad, scatter(g, shape, alt).astype(dtype))
        np.testing.assert_array_equal(grad, scatter(g, shape, ours).astype(dtype))


def test_where_torch_disagrees_with_itself():
    # 5 -> 10 with scale_factor=2.1: the main formula reads floor(o / 2.1), the shortcut o // 2
    ours = our_source(5, 10, 2.1, False, np.float32)
    alt = shortcut_source(5, 10, 2.1, False)
    assert not np.array_equal(ours, alt)
    x1 = np.arange(5, dtype=np.float32).reshape(1, 1, 5)
    # powers of two: the gradient says which outputs fed which input
    g1 = (2.0 ** np.arange(10)).astype(np.float32).reshape(1, 1, 10)
    out, grad, t_out, t_grad = both(x1, "nearest", dict(scale_factor=2.1), g1)
    np.testing.assert_array_equal(t_out, out)  # 1-D forward: PyTorch's main formula
    np.testing.assert_array_equal(t_grad, scatter(g1, x1.shape, [alt]))  # its backward: the other
    np.testing.assert_array_equal(grad, scatter(g1, x1.shape, [ours]))  # ours: the transpose
    x2 = np.arange(5, dtype=np.float32).reshape(1, 1, 1, 5)
    t2 = TF.interpolate(torch.tensor(x2), scale_factor=(1.0, 2.1)).numpy()
    np.testing.assert_array_equal(t2.ravel(), alt)  # small 2-D output: the shortcut


def test_nearest_bit_identical_to_torch_with_float_cotangent():
    # same loop order as ATen's scatter-add, so even rounded sums agree bit for bit
    rng = np.random.default_rng(0)
    for shape, kwargs in [((2, 3, 30, 41), dict(scale_factor=2)),
                          ((1, 2, 9, 70), dict(size=(20, 33))),
                          ((2, 2, 5, 6, 7), dict(scale_factor=(1.5, 2, 0.5)))]:
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(output_shape(shape, kwargs)).astype(np.float32)
        out, grad, t_out, t_grad = both(x, "nearest", kwargs, g)
        assert out.tobytes() == t_out.tobytes()
        assert grad.tobytes() == t_grad.tobytes()


# --------------------------------------------------------------------------- interpolating
def assert_near(actual, expected, dtype, magnitude, eps32, what):
    eps = eps32 if np.dtype(dtype) == np.float32 else 1e-12
    np.testing.assert_allclose(actual, expected, rtol=eps, atol=eps * max(magnitude, 1e-30),
                               err_msg=what)


@pytest.mark.parametrize("mode", ["linear", "bilinear", "bicubic", "trilinear", "area"])
@PARITY
@given(data=st.data())
def test_interpolating_modes_match_torch(mode, data):
    shape, kwargs, dtype, seed = data.draw(torch_cases(mode))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    g = rng.standard_normal(output_shape(shape, kwargs)).astype(dtype)
    out, grad, t_out, t_grad = both(x, mode, kwargs, g)
    assert out.shape == t_out.shape
    assert_near(out, t_out, dtype, float(np.abs(x).max()), 1e-6, "forward")
    if mode == "bicubic" and out.shape == x.shape and not np.array_equal(out, x):
        # ATen's bicubic backward copies the gradient whenever the sizes are equal, even
        # when the forward was not the identity (scale_factor != 1): see the test below
        np.testing.assert_array_equal(t_grad, g)
        return
    # A cell's gradient is a sum of many products, added in another order by PyTorch: the
    # rounding error scales with the sum of their magnitudes (the backward of |g|), not
    # with the result (1 cell upsampled to 200 can sum to much less than its terms).
    magnitude = max(float(np.abs(t_grad).max()), float(np.abs(both(x, mode, kwargs, np.abs(g))[3]).max()))
    assert_near(grad, t_grad, dtype, magnitude, 2e-6 if mode == "bicubic" else 1e-6, "gradient")


def test_torch_bicubic_backward_is_wrong_at_equal_size_and_ours_is_not():
    # 3x4 with scale_factor=1.1 stays 3x4 but is resampled with step 1/1.1; PyTorch's
    # backward copies the gradient as if nothing happened, so its own gradcheck fails
    x = np.random.default_rng(7).standard_normal((1, 1, 3, 4))
    xt = torch.tensor(x, requires_grad=True)
    assert not torch.autograd.gradcheck(
        lambda t: TF.interpolate(t, scale_factor=1.1, mode="bicubic"), (xt,),
        raise_exception=False)
    leaf = mp.tensor(x, requires_grad=True)
    assert mp.gradcheck(lambda t: F.interpolate(t, scale_factor=1.1, mode="bicubic"), [leaf])
    g = np.random.default_rng(8).standard_normal(x.shape)
    out, grad, t_out, t_grad = both(x, "bicubic", dict(scale_factor=1.1), g)
    np.testing.assert_allclose(out, t_out, rtol=1e-12, atol=1e-12)  # same forward
    np.testing.assert_array_equal(t_grad, g)  # PyTorch: a copy
    assert not np.allclose(grad, g)  # minipool: the real transpose


@pytest.mark.parametrize("mode, kwargs", [
    ("nearest", dict(scale_factor=2)), ("nearest", dict(size=(13, 40))),
    ("nearest-exact", dict(scale_factor=1.5)), ("bilinear", dict(scale_factor=2)),
    ("bilinear", dict(size=(9, 30), align_corners=True)), ("bicubic", dict(scale_factor=0.6)),
    ("area", dict(size=(5, 7)))])
def test_channels_last_matches_torch_channels_last(mode, kwargs):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 11, 17, 5)).astype(np.float32)  # NHWC
    out_nchw = output_shape((2, 5, 11, 17), kwargs)
    g = rng.integers(-4, 5, (2,) + out_nchw[2:] + (5,)).astype(np.float32)
    out, grad, t_out, t_grad = both(x, mode, kwargs, g, channels_last=True)
    assert_near(out, t_out, np.float32, float(np.abs(x).max()), 1e-6, "forward")
    assert_near(grad, t_grad, np.float32, float(np.abs(t_grad).max()), 2e-6, "gradient")


def test_bilinear_float32_weights_equal_torch_bit_for_bit():
    # interpolating one-hot inputs reads the weights out; the half-pixel coordinate is
    # rounded once (ATen's fused multiply-add), so they agree to the last bit
    for n_in, kwargs in [(17, dict(scale_factor=2.5)), (50, dict(scale_factor=1.7)),
                         (40, dict(size=97, align_corners=True)), (100, dict(scale_factor=0.3))]:
        eye = np.eye(n_in, dtype=np.float32).reshape(n_in, 1, n_in)
        ours = F.interpolate(eye, mode="linear", **kwargs).numpy()
        theirs = TF.interpolate(torch.tensor(eye), mode="linear", **kwargs).numpy()
        assert ours.tobytes() == theirs.tobytes()


# --------------------------------------------------------------------------- other ops
@pytest.mark.parametrize("shape, r", [((2, 12, 3, 4), 2), ((1, 27, 2, 2), 3), ((9, 5, 5), 3)])
def test_pixel_shuffle_and_unshuffle_match_torch(shape, r):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(F.pixel_shuffle(x, r).numpy(),
                                  TF.pixel_shuffle(torch.tensor(x), r).numpy())
    y = TF.pixel_shuffle(torch.tensor(x), r).numpy()
    np.testing.assert_array_equal(F.pixel_unshuffle(y, r).numpy(),
                                  TF.pixel_unshuffle(torch.tensor(y), r).numpy())


def test_layers_match_torch_layers():
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 6)).astype(np.float32)
    xt = torch.tensor(x)
    pairs = [(nn.Upsample(scale_factor=1.5, mode="bicubic"),
              torch.nn.Upsample(scale_factor=1.5, mode="bicubic")),
             (nn.UpsamplingNearest2d(size=(7, 9)), torch.nn.UpsamplingNearest2d(size=(7, 9))),
             (nn.UpsamplingBilinear2d(scale_factor=2),
              torch.nn.UpsamplingBilinear2d(scale_factor=2))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(mp.tensor(x)).numpy(), theirs(xt).numpy(),
                                   rtol=1e-6, atol=1e-6 * float(np.abs(x).max()))
    y = np.random.default_rng(4).standard_normal((1, 8, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(nn.PixelShuffle(2)(mp.tensor(y)).numpy(),
                                  torch.nn.PixelShuffle(2)(torch.tensor(y)).numpy())


@pytest.mark.parametrize("mode, rank", [("nearest", 4), ("nearest-exact", 4), ("bilinear", 4),
                                        ("bicubic", 4), ("linear", 3), ("trilinear", 5),
                                        ("area", 4), ("nearest", 3)])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_dtypes_torch_refuses_are_refused(mode, rank, dtype):
    x = np.ones((1, 1) + (4,) * (rank - 2), dtype=dtype)
    with pytest.raises(Exception):
        TF.interpolate(torch.from_numpy(x), scale_factor=2, mode=mode)
    with pytest.raises(TypeError, match="dtype"):
        F.interpolate(x, scale_factor=2, mode=mode)


def test_uint8_nearest_matches_torch():
    x = np.random.default_rng(5).integers(0, 256, (1, 3, 7, 9)).astype(np.uint8)
    for mode in ("nearest", "nearest-exact"):
        np.testing.assert_array_equal(
            F.interpolate(x, size=(20, 11), mode=mode).numpy(),
            TF.interpolate(torch.from_numpy(x), size=(20, 11), mode=mode).numpy())
