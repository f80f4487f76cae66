"""conv2d's weight gradient as outer products that skip the padding
(minipool/_kernels/conv2d_wgrad_outer.h, ``conv2d_weight_grad_outer``).

``use_wgrad_outer(2)`` runs every weight gradient whose output gradient is finite
there (``0``: never, ``1``: where it measured faster).  Checked against the loop
reference in ``tests/references/conv_reference.py``, PyTorch, float64 central
differences, 1 vs 2 threads and the baseline vs the AVX2 build bit for bit, a numpy
emulation of the documented summation order, and inf/NaN, on shapes whose channels
end inside a tile or a vector, whose pixels span several blocks, with taps wholly in
the padding, strides, dilation and groups.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import (check_avx2_and_baseline_builds_agree,
                                    check_matches_loop_reference, check_random_geometry, make,
                                    reference, weight_and_bias_grads)
from tests.conv.test_conv import (check_one_and_two_threads_bit_identical,
                                  check_weight_grad_finite_differences,
                                  check_weight_grad_matches_torch_float32, weight_grad)

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
OUTER_CASES = [
    (3, 7, 4, 4, 13, 3, 1, 1, 1, 1, True),       # 7 channels: tiles of 6 and 1; 13 = 8 + 5 lanes
    (2, 6, 4, 4, 20, 5, 1, 2, 1, 1, False),      # 5x5 on 4x4: half the taps in the padding; 2 panels
    (5, 12, 3, 3, 8, 3, 1, 3, 1, 1, True),       # padding wider than the kernel: whole taps outside
    (2, 8, 20, 20, 17, 3, 1, 1, 1, 1, True),     # 400 pixels: blocks of rows; 17 = 16 + 1
    (1, 6, 2, 300, 9, 3, 1, 1, 1, 1, False),     # rows of 300 pixels: one row per block
    (2, 12, 9, 9, 20, 3, 2, 1, 1, 1, False),     # stride 2
    (2, 8, 12, 12, 8, 3, 1, 2, 2, 2, True),      # dilated and grouped
    (64, 16, 4, 4, 16, 3, 1, 1, 1, 1, True),     # many images per block, chunks of channels
]
OUTER_IDS = [f"outer{i}" for i in range(len(OUTER_CASES))]
# conv2d_wgrad_outer.h's blocks of whole images (tests/conv/test_conv_wgrad_outer_blocks.py)
PACKED_CASES = [
    (20, 64, 4, 4, 16, 3, 1, 1, 1, 1, True),    # 4 KB between images: 16 per block, packed
    (5, 13, 5, 5, 17, 3, 1, 1, 1, 1, False),    # tiles of 6, 4 and 3 channels; 17 = 16 + 1
    (6, 9, 9, 7, 10, 3, 2, 0, 1, 1, True),      # stride 2, no padding: planes larger than outputs
    (4, 8, 6, 6, 12, 5, 1, 2, 1, 2, True),      # 5x5 on 6x6, grouped: 4 channels per group
    (3, 6, 8, 8, 8, 3, 1, 2, 2, 1, False),      # dilated: 4 images of 64 pixels per block
    (2, 20, 20, 20, 8, 3, 1, 1, 1, 1, True),    # 400 pixels: blocks of rows, not packed
]
PACKED_IDS = [f"packed{i}" for i in range(len(PACKED_CASES))]
# the checks every case takes
ALL_CASES, ALL_IDS = OUTER_CASES + PACKED_CASES, OUTER_IDS + PACKED_IDS


def geometry_of(x, w, out_shape, stride, padding, dilation, groups):
    from minipool.ops.conv import ConvGeometry
    kh, kw = w.shape[2:]
    return ConvGeometry(kh, kw, stride, stride, padding, padding, dilation, dilation,
                        out_shape[2], out_shape[3], groups)


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
def test_outer_products_match_loop_reference(case, wgrad_outer):
    check_matches_loop_reference(case)


@pytest.mark.parametrize("case", OUTER_CASES, ids=OUTER_IDS)
def test_outer_products_run_the_weight_gradient(case, wgrad_outer):
    """The entry point takes these calls (and writes what the conv op returns)."""
    x, w, b, kw = make(case, np.float32, seed=2)
    with mp.no_grad():
        out_shape = F.conv2d(mp.tensor(x), mp.tensor(w), **kw).shape
    g = np.random.default_rng(2).standard_normal(out_shape).astype(np.float32)
    geometry = geometry_of(x, w, out_shape, kw["stride"], kw["padding"], kw["dilation"],
                           kw["groups"])
    got = np.full((w.shape[0], w[0].size), np.nan, np.float32)
    got_bias = np.full(w.shape[0], np.nan, np.float32)
    assert kernels.conv2d_weight_grad_outer(x, g, got, geometry, 1, bias=got_bias)
    wt, bt = mp.tensor(w, requires_grad=True), mp.tensor(np.zeros(w.shape[0], np.float32),
                                                         requires_grad=True)
    F.conv2d(mp.tensor(x), wt, bt, **kw).backward(g)
    np.testing.assert_array_equal(got.reshape(w.shape), wt.grad.numpy())
    np.testing.assert_array_equal(got_bias, bt.grad.numpy())
    np.testing.assert_allclose(got_bias, g.astype(np.float64).sum((0, 2, 3)), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
def test_outer_products_match_torch_float32(case, wgrad_outer):
    check_weight_grad_matches_torch_float32(case)


@pytest.mark.parametrize("case", OUTER_CASES[:7] + PACKED_CASES[1:5],
                         ids=OUTER_IDS[:7] + PACKED_IDS[1:5])
def test_outer_products_gradcheck_float64(case, wgrad_outer):
    check_weight_grad_finite_differences(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outer_products_one_and_two_threads_are_bit_identical(case, dtype, wgrad_outer):
    check_one_and_two_threads_bit_identical(case, dtype)


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outer_baseline_and_avx2_builds_give_the_same_bits(case, dtype, wgrad_outer):
    check_avx2_and_baseline_builds_agree(case, dtype, weight_and_bias_grads)


def documented_order(x, g, kh, kw, stride, padding, dilation):
    """conv2d_wgrad_outer.h's order for groups=1: per (o, c, ki, kj), the batch in
    ``parts`` consecutive parts (conv2d_weight_grad_outer's choice: 4 where panels of 16
    output channels x tiles of 6 input channels are fewer than 4, else 1; at most N), each ONE fma chain from 0
    over its images in order and their output pixels row by row whose tap lies inside
    the input; the parts added in order.  The values are integers whose products and
    chain sums float64 holds exactly, so float64's add rounded to float32 is the fma's
    one rounding.  The bias: per o, the same parts, each one chain of adds over all the
    part's output pixels."""
    N, C, H, W = x.shape
    _, O, Ho, Wo = g.shape
    tiles = -(-O // 16) * -(-C // 6)
    parts = min(N, 4) if tiles < 4 else 1
    out = np.empty((O, C, kh, kw), np.float32)
    for o in range(O):
        for c in range(C):
            for ki in range(kh):
                for kj in range(kw):
                    total = None
                    for part in range(parts):
                        acc = np.float32(0)
                        for n in range(part * N // parts, (part + 1) * N // parts):
                            for oh in range(Ho):
                                ih = oh * stride + ki * dilation - padding
                                for ow in range(Wo):
                                    iw = ow * stride + kj * dilation - padding
                                    if 0 <= ih < H and 0 <= iw < W:
                                        exact = np.float64(g[n, o, oh, ow]) * np.float64(x[n, c, ih, iw])
                                        acc = np.float32(exact + np.float64(acc))
                        total = acc if total is None else np.float32(total + acc)
                    out[o, c, ki, kj] = total
    bias = np.empty(O, np.float32)
    for o in range(O):
        total = None
        for part in range(parts):
            acc = np.float32(0)
            for n in range(part * N // parts, (part + 1) * N // parts):
                for value in g[n, o].reshape(-1):
                    acc = np.float32(acc + value)
            total = acc if total is None else np.float32(total + acc)
        bias[o] = total
    return out, bias


@pytest.mark.parametrize("N,C,H,O,k,stride,padding,dilation", [
    (3, 6, 5, 5, 3, 1, 1, 1),     # one tile: the batch in 3 parts
    (2, 7, 6, 3, 3, 2, 2, 1),     # stride 2, 2 tiles: a part per image
    (1, 25, 18, 2, 3, 1, 1, 2),   # 324 pixels: two blocks of rows resumed; one part
])
def test_outer_products_sum_in_the_documented_order(N, C, H, O, k, stride, padding, dilation,
                                                    wgrad_outer):
    """Bit for bit the documented order; another order or unfused steps would round
    elsewhere, and the order shows in the bits (float64's exact sums differ)."""
    x, g, want = check_documented_order(N, C, H, O, k, stride, padding, dilation, seed=9)
    exact = reference(x.astype(np.float64), np.zeros((O, C, k, k)), None, stride, padding,
                      dilation, 1, grad_out=g.astype(np.float64))[2]
    assert not np.array_equal(want, exact.astype(np.float32))


def check_documented_order(N, C, H, O, k, stride, padding, dilation, seed):
    """The conv op's weight and bias gradients bit for bit as ``documented_order`` on
    integers below 2**12 (products below 2**24, chain sums past it: float32 rounds them);
    returns x, the output gradient and the weight gradient."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2 ** 12, 2 ** 12, (N, C, H, H)).astype(np.float32)
    w = np.zeros((O, C, k, k), np.float32)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    with mp.no_grad():
        shape = F.conv2d(mp.tensor(x), mp.tensor(w), **kwargs).shape
    g = rng.integers(-2 ** 12, 2 ** 12, shape).astype(np.float32)
    want, want_bias = documented_order(x, g, k, k, stride, padding, dilation)
    wt, bt = mp.tensor(w, requires_grad=True), mp.tensor(np.zeros(O, np.float32), requires_grad=True)
    F.conv2d(mp.tensor(x), wt, bt, **kwargs).backward(g)
    np.testing.assert_array_equal(wt.grad.numpy(), want)
    np.testing.assert_array_equal(bt.grad.numpy(), want_bias)
    return x, g, want


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["input", "grad"])
@pytest.mark.parametrize("padding", [0, 1])
def test_outer_products_carry_non_finite_values_as_the_reference(value, where, padding,
                                                                 wgrad_outer):
    """An inf or NaN in the input meets only the taps inside (the outer products run); one
    in the output gradient also meets the padding's zeros (NaN, as the reference): the
    outer products decline it and the other engines run."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 7, 5, 6))
    w = rng.standard_normal((9, 7, 3, 3))
    with mp.no_grad():
        g = rng.standard_normal(F.conv2d(mp.tensor(x), mp.tensor(w), padding=padding).shape)
    if where == "input":
        x[1, 0, 2, 3] = value
    else:
        g[0, 2, 1, 2] = value
    got = weight_grad(x, w, dict(padding=padding), g)
    with np.errstate(invalid="ignore"):
        want = reference(x, w, None, 1, padding, 1, 1, grad_out=g)[2]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.isfinite(got).sum() > 0 and not np.isfinite(got).all()
    geometry = geometry_of(x, w, g.shape, 1, padding, 1, 1)
    taken = kernels.conv2d_weight_grad_outer(x, g, np.empty((9, 63)), geometry, 1)
    assert taken == (where == "input")


@pytest.mark.parametrize("shape,out_channels,k,pad,on_outer", [
    ((64, 64, 4, 4), 64, 5, 2, True),      # 4x4 planes
    ((64, 128, 8, 8), 128, 3, 1, True),    # 8x8 planes
    ((64, 16, 16, 16), 32, 5, 2, True),    # 16x16 planes
    ((64, 6, 14, 14), 16, 5, 0, True),     # LeNet's conv2
    ((64, 32, 32, 32), 32, 3, 1, True),    # 32x32 planes
    ((64, 8, 64, 64), 16, 3, 1, True),     # 64x64 planes
    ((64, 3, 32, 32), 16, 5, 2, True),     # a first layer with 75 products per output
    ((64, 3, 32, 32), 32, 3, 1, True),     # first layers with fewer: 16+ output channels
    ((64, 1, 28, 28), 16, 3, 1, True),
    ((64, 4, 16, 16), 16, 3, 1, True),
    ((64, 1, 28, 28), 12, 3, 1, False),    # ... else the tiles
    ((64, 1, 32, 32), 8, 3, 1, False),
    ((64, 1, 32, 32), 6, 5, 0, False),     # LeNet's conv1
    ((64, 16, 8, 8), 4, 3, 1, False),      # 4 output channels: a vector half empty
])
def test_automatic_outer_choice_is_the_measured_one(shape, out_channels, k, pad, on_outer):
    from minipool.ops.conv import ConvGeometry
    N, C, H, W = shape
    geometry = ConvGeometry(k, k, 1, 1, pad, pad, 1, 1, H + 2 * pad - k + 1, W + 2 * pad - k + 1, 1)
    args = (C, H, W, out_channels, geometry)
    previous = kernels.use_wgrad_outer(1)
    avx2 = kernels.use_cpu_avx2(True)
    try:
        assert kernels.uses_wgrad_outer(*args) == (on_outer and avx2)
        assert not kernels.uses_wgrad_outer(*args, float64=True)  # float64 keeps its path
        kernels.use_cpu_avx2(False)  # the baseline build is slow: automatic mode declines
        assert not kernels.uses_wgrad_outer(*args)
        kernels.use_cpu_avx2(True)
        for tiles_mode in (0, 2):  # BLAS for every weight gradient, or the tiles
            tiles_previous = kernels.use_wgrad_tiles(tiles_mode)
            try:
                assert not kernels.uses_wgrad_outer(*args)
            finally:
                kernels.use_wgrad_tiles(tiles_previous)
        kernels.use_wgrad_outer(0)
        assert not kernels.uses_wgrad_outer(*args)
        kernels.use_wgrad_outer(2)
        assert kernels.uses_wgrad_outer(*args)
    finally:
        kernels.use_wgrad_outer(previous)
        kernels.use_cpu_avx2(True)


def test_use_wgrad_outer_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="use_wgrad_outer: mode"):
        kernels.use_wgrad_outer(-1)


def test_weight_grad_outer_rejects_mismatched_shapes(wgrad_outer):
    x = np.zeros((2, 6, 4, 4), np.float32)
    g = np.zeros((2, 8, 4, 4), np.float32)
    geometry = geometry_of(x, np.zeros((8, 6, 3, 3)), g.shape, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="conv2d_weight_grad_outer: shapes"):
        kernels.conv2d_weight_grad_outer(x, g, np.zeros((8, 53), np.float32), geometry, 1)
    with pytest.raises(ValueError, match="conv2d_weight_grad_outer: shapes"):
        kernels.conv2d_weight_grad_outer(x, g[:1], np.zeros((8, 54), np.float32), geometry, 1)
    with pytest.raises(ValueError, match="conv2d_weight_grad_outer: shapes"):
        kernels.conv2d_weight_grad_outer(x, g, np.zeros((8, 54), np.float32), geometry, 1,
                                         bias=np.zeros(7, np.float32))


def test_add_weight_slots_adds_in_slot_order_and_transposes():
    """The conv op's slot sum: slot 0 + slot 1 + ... (float32 rounds the order), as
    (groups, O/groups, K); any thread count gives these bits."""
    rng = np.random.default_rng(12)
    slots = (rng.standard_normal((5, 2, 37, 19)) * 10.0 ** rng.integers(-3, 4, (5, 2, 37, 19))
             ).astype(np.float32)
    want = slots[0].copy()
    for part in slots[1:]:
        want = want + part
    want = want.transpose(0, 2, 1)
    for threads in (1, 2):
        got = np.empty((2, 19, 37), np.float32)
        kernels.add_weight_slots(slots, got, threads)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="add_weight_slots: out has shape"):
        kernels.add_weight_slots(slots, np.empty((2, 37, 19), np.float32))


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), groups=st.sampled_from([1, 2]), cpg=st.integers(1, 8),
       opg=st.integers(1, 18), H=st.integers(1, 9), W=st.integers(1, 20),
       k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 2),
       dilation=st.integers(1, 2), ties=st.booleans(),
       special=st.sampled_from([None, np.inf, -np.inf, np.nan]), seed=st.integers(0, 99))
def test_random_geometry_wgrad_on_outer_products_matches_reference(N, groups, cpg, opg, H, W, k,
                                                                   stride, pad, dilation, ties,
                                                                   special, seed):
    """Any geometry, small integer values (ties) or one inf/NaN in the input: every
    gradient as the loop reference."""
    check_random_geometry(kernels.use_wgrad_outer, N, groups, cpg, opg, H, W, k, stride, pad,
                          dilation, ties, special, seed)


@settings(max_examples=60, deadline=None)
@given(channels=st.integers(1, 3), O=st.integers(1, 20), H=st.integers(1, 9), W=st.integers(1, 12),
       kh=st.integers(1, 5), kw=st.integers(1, 7), stride=st.integers(1, 2),
       pad=st.integers(0, 3), dilation=st.integers(1, 2), N=st.integers(1, 3),
       double=st.booleans(), avx2=st.booleans(), seed=st.integers(0, 99))
def test_few_channel_tiles_give_the_one_tap_tiles_bits(channels, O, H, W, kh, kw, stride, pad,
                                                       dilation, N, double, avx2, seed):
    """A tile of 1-3 input channels takes several taps of a kernel row at once (the pixels
    only some of them reach one tap at a time): each output's sum keeps its order, so the
    bits are those of the same channels in 8-channel tiles (4 + 4, one tap per tile) --
    an output depends only on its own channel -- for any geometry, build and dtype.  (With
    fewer than 4 tiles the batch is split in parts, which 1 and 8 channels would make alike
    only for one image: one image then.)"""
    from minipool.ops.conv import ConvGeometry, conv_output_size
    if O <= 16:
        N = 1
    else:
        O += 32  # 4 panels: no split of the batch for either
    Ho = conv_output_size(H, kh, stride, pad, pad, dilation)
    Wo = conv_output_size(W, kw, stride, pad, pad, dilation)
    if Ho < 1 or Wo < 1:
        return
    dtype = np.float64 if double else np.float32
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 8, H, W)).astype(dtype)
    g = rng.standard_normal((N, O, Ho, Wo)).astype(dtype)
    geometry = ConvGeometry(kh, kw, stride, stride, pad, pad, dilation, dilation, Ho, Wo, 1)
    previous = kernels.use_wgrad_outer(2)
    kernels.use_cpu_avx2(avx2)
    try:
        few = np.empty((O, channels * kh * kw), dtype)
        eight = np.empty((O, 8 * kh * kw), dtype)
        assert kernels.conv2d_weight_grad_outer(np.ascontiguousarray(x[:, :channels]), g, few,
                                                geometry, 1)
        assert kernels.conv2d_weight_grad_outer(x, g, eight, geometry, 1)
    finally:
        kernels.use_wgrad_outer(previous)
        kernels.use_cpu_avx2(True)
    np.testing.assert_array_equal(few, eight[:, :channels * kh * kw])
