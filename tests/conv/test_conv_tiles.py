"""conv2d's register-tiled forward product (minipool/_kernels/conv2d_tiles.h).

``use_tiles(2)`` puts every forward product on the tiles (``0``: BLAS, ``1``:
where they measured faster).  Checked against the loop reference in
``tests/references/conv_reference.py``, PyTorch, float64 central differences, 1
vs 2 threads and the baseline vs the AVX2 build bit for bit, on shapes whose
output channels, pixel runs and sums end inside a tile, a vector or a chunk.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import (check_avx2_and_baseline_builds_agree,
                                    check_bias_free_matches_loop_reference,
                                    check_central_differences,
                                    check_forward_matches_torch_float32,
                                    check_matches_loop_reference, check_random_geometry, forward,
                                    forward_result, reference)
from tests.conv.test_conv import check_one_and_two_threads_bit_identical

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
TILE_CASES = [
    (2, 3, 9, 21, 7, 3, 1, 1, 1, 1, True),        # 7 channels: a tile of 6 and one row
    (1, 2, 5, 5, 13, 3, 1, 0, 1, 1, False),       # 3 output pixels: only a partial vector
    (2, 5, 11, 37, 6, 5, 1, 2, 1, 1, True),       # rows of 37: 2 full tiles and a tail
    (1, 40, 6, 10, 9, 3, 1, 1, 1, 1, True),       # 360 steps: a sum resumed after a chunk
    (2, 300, 3, 4, 5, 1, 1, 0, 1, 1, True),       # 1x1 kernel, 300 channels: chunks of taps=1
    (2, 4, 12, 12, 8, 3, 1, 2, 2, 2, True),       # dilated and grouped
    (2, 6, 9, 9, 12, 3, 2, 1, 1, 3, False),       # stride 2: tiles over gathered columns
    (64, 2, 4, 4, 7, 3, 1, 1, 1, 1, True),        # 4x4 planes: several images per product
]
TILE_IDS = [f"tile{i}" for i in range(len(TILE_CASES))]
# 3x3 at dilation 1: the tiles for taps in rows of 3 (mp_conv_product3; test_conv_tiles_rows3.py)
ROWS3_CASES = [
    (2, 5, 8, 8, 1, 3, 1, 1, 1, 1, True),         # one output channel
    (2, 13, 9, 16, 7, 3, 1, 1, 1, 1, False),      # 7 channels: 4 + 4 rows, odd plane height
    (3, 5, 4, 4, 9, 3, 1, 1, 1, 1, True),         # 4x4 planes: several images per product
    (2, 16, 32, 32, 15, 3, 1, 1, 1, 1, True),     # the sweep's plane, 15 channels
    (1, 13, 64, 64, 17, 3, 1, 1, 1, 1, False),    # 64x64, 17 channels: 6 + 6 + 4 + 4 rows
    (2, 10, 12, 12, 14, 3, 1, 1, 1, 2, True),     # groups
    (2, 5, 11, 19, 9, 3, 1, 0, 1, 1, True),       # no padding, rows of 17: a vector's tail
    (1, 7, 10, 10, 9, 3, 1, 2, 1, 1, False),      # padding 2
    (1, 40, 6, 10, 5, 3, 1, 1, 1, 1, True),       # 360 steps: a sum resumed after a chunk
]
ROWS3_IDS = [f"rows3_{i}" for i in range(len(ROWS3_CASES))]
ALL_CASES, ALL_IDS = TILE_CASES + ROWS3_CASES, TILE_IDS + ROWS3_IDS


@pytest.fixture
def no_tiles():
    previous = kernels.use_tiles(0)
    try:
        yield
    finally:
        kernels.use_tiles(previous)


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
def test_tiles_match_loop_reference(case, tiles):
    """Forward and all gradients (the input gradient runs on the tiles too)."""
    check_matches_loop_reference(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
def test_tiles_match_torch_float32(case, tiles):
    check_forward_matches_torch_float32(case, forward, atol_scales_with_output=True)


@pytest.mark.parametrize("case", TILE_CASES[:4] + ROWS3_CASES[:4],
                         ids=TILE_IDS[:4] + ROWS3_IDS[:4])
def test_tiles_gradcheck_float64(case, tiles):
    check_central_differences(case)


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiles_one_and_two_threads_are_bit_identical(case, dtype, tiles):
    """Forward and all gradients (the input gradient also runs on the tiles)."""
    check_one_and_two_threads_bit_identical(case, dtype)


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_baseline_and_avx2_builds_give_the_same_bits(case, dtype, tiles):
    check_avx2_and_baseline_builds_agree(case, dtype, forward_result)


def fma_sums(x, w, b):
    """The tiles' own order for a valid stride-1 convolution, one output at a time:
    acc = fma(w, x, acc) over (c, ki, kj) from 0, then + bias (float64 math on float32
    values: every fma here is exact before its one rounding to float32)."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    out = np.empty((N, O, H - kh + 1, W - kw + 1), np.float32)
    for n in range(N):
        for o in range(O):
            for i in range(out.shape[2]):
                for j in range(out.shape[3]):
                    acc = np.float32(0)
                    for c in range(C):
                        for ki in range(kh):
                            for kj in range(kw):
                                exact = np.float64(w[o, c, ki, kj]) * np.float64(x[n, c, i + ki, j + kj])
                                acc = np.float32(exact + np.float64(acc))
                    out[n, o, i, j] = acc + b[o]
    return out


def test_tiles_round_each_step_once_in_channel_tap_order(tiles):
    """Bit for bit the documented sum.  Integers below 2**20 and 2**12: a product needs
    up to 32 bits (float32 would round it, float64 holds it) and a sum stays below
    2**40, so float64's add is exact and its rounding to float32 is the fma's one
    rounding.  Unfused steps, or another order, would round elsewhere."""
    rng = np.random.default_rng(9)
    x = rng.integers(-2 ** 20, 2 ** 20, (2, 3, 6, 19)).astype(np.float32)
    w = rng.integers(-2 ** 12, 2 ** 12, (7, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    np.testing.assert_array_equal(forward(x, w, b), fma_sums(x, w, b))


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["input", "weight"])
def test_tiles_carry_non_finite_values_where_blas_does(value, where, tiles):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 7, 20))
    w = rng.standard_normal((7, 3, 3, 3))
    if where == "input":
        x[1, 0, 3, 0] = value
    else:
        w[1, 0, 2, 0] = value
    got = forward(x, w, None, padding=1)
    with np.errstate(invalid="ignore"):
        want = reference(x, w, None, 1, 1, 1, 1)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.isfinite(got).sum() > 0


@pytest.mark.parametrize("shape,out_channels,k,on_tiles", [
    ((64, 16, 32, 32), 16, 3, True),   # 16->16 3x3 on 32x32: measured faster on tiles
    ((64, 1, 32, 32), 6, 5, True),     # LeNet's conv1: one panel of output channels
    ((64, 6, 14, 14), 16, 5, False),   # LeNet's conv2: rows of 10 pixels (the direct kernel)
    ((64, 3, 32, 32), 32, 3, False),   # 3x3 first layer: 27 steps per sum
    ((64, 64, 8, 8), 128, 3, True),    # 8x8 planes: row by row, one image at a time
    ((64, 64, 4, 4), 64, 5, False),    # 4x4 planes: half-vector rows (the direct kernel)
])
def test_automatic_choice_is_the_measured_one(shape, out_channels, k, on_tiles):
    from minipool.ops import conv as conv_module
    N, C, H, W = shape
    pad = k // 2 if C > 1 else 0
    geometry = conv_module.ConvGeometry(k, k, 1, 1, pad, pad, 1, 1, H + 2 * pad - k + 1,
                                        W + 2 * pad - k + 1, 1)
    block_rows, images = conv_module._plan(shape, out_channels, geometry)[:2]
    previous = kernels.use_tiles(1)
    avx2 = kernels.use_cpu_avx2(True)
    try:
        assert kernels.uses_tiles(C, H, W, out_channels, geometry, block_rows, images) == (
            on_tiles and avx2)
        kernels.use_cpu_avx2(False)  # the baseline build is slow: automatic mode keeps BLAS
        assert not kernels.uses_tiles(C, H, W, out_channels, geometry, block_rows, images)
        kernels.use_cpu_avx2(True)
        kernels.use_tiles(0)
        assert not kernels.uses_tiles(C, H, W, out_channels, geometry, block_rows, images)
        kernels.use_tiles(2)
        assert kernels.uses_tiles(C, H, W, out_channels, geometry, block_rows, images)
    finally:
        kernels.use_tiles(previous)
        kernels.use_cpu_avx2(True)


def test_use_tiles_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        kernels.use_tiles(3)


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_input_gradient_keeps_the_scatter_for_a_non_finite_weight(value, tiles):
    """On tiles the input gradient is a convolution of the padded output gradient, whose
    zeros would meet the inf: only a finite weight takes that path."""
    from minipool.ops import conv as conv_module
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 3, 6, 8))
    w = rng.standard_normal((5, 3, 3, 3))
    w[2, 1, 0, 0] = value
    out, gx, gw, g = check_bias_free_matches_loop_reference(x, w, 1)
    assert np.isfinite(gx).sum() > 0
    geometry = conv_module.ConvGeometry(3, 3, 1, 1, 1, 1, 1, 1, 6, 8, 1)
    grad_x = np.empty_like(x)
    assert not conv_module._input_grad_on_tiles(x.shape, w.reshape(5, -1), g, geometry, grad_x)
    w[2, 1, 0, 0] = 0.5
    assert conv_module._input_grad_on_tiles(x.shape, w.reshape(5, -1), g, geometry, grad_x)
    np.testing.assert_allclose(grad_x, reference(x, w, None, 1, 1, 1, 1, grad_out=g)[1],
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 2), groups=st.sampled_from([1, 2]), cpg=st.integers(1, 3),
       opg=st.integers(1, 8), H=st.integers(1, 9), W=st.integers(1, 20),
       k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 2),
       dilation=st.integers(1, 2), ties=st.booleans(),
       special=st.sampled_from([None, np.inf, -np.inf, np.nan]), seed=st.integers(0, 99))
def test_random_geometry_on_tiles_matches_reference(N, groups, cpg, opg, H, W, k, stride, pad,
                                                    dilation, ties, special, seed):
    """Any geometry, small integer values (ties: equal products and sums) or one inf/NaN in
    the input: forward and gradients as the loop reference."""
    check_random_geometry(kernels.use_tiles, N, groups, cpg, opg, H, W, k, stride, pad, dilation, ties,
                          special, seed)


@pytest.mark.parametrize("C,O,k,pad,flipped", [
    (1, 16, 3, 1, False),  # one input channel: the kernel's scatter (1.6-2.0x)
    (3, 32, 3, 1, False),  # 2-3 channels with a 3x3 kernel: the scatter too
    (3, 16, 5, 2, True),   # 3 channels, 5x5: the flipped forward
    (8, 16, 3, 1, True),
])
def test_input_gradient_path_is_the_measured_one(C, O, k, pad, flipped):
    """With the engines automatic, layers with 1-3 input channels (3x3) keep the kernel's
    scatter for the input gradient; forced tiles still take the flipped forward (so the
    tests above reach it); the gradient is the loop reference's either way."""
    from minipool.ops import conv as conv_module
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, C, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((O, C, k, k)) * 0.1).astype(np.float32)
    g = rng.standard_normal((2, O, 16, 16)).astype(np.float32)
    geometry = conv_module.ConvGeometry(k, k, 1, 1, pad, pad, 1, 1, 16, 16, 1)
    avx2 = kernels.use_cpu_avx2(True)
    want = reference(x.astype(np.float64), w.astype(np.float64), None, 1, pad, 1, 1,
                     grad_out=g.astype(np.float64))[1]
    grad_x = np.empty_like(x)
    assert conv_module._input_grad_on_tiles(x.shape, w.reshape(O, -1), g, geometry,
                                            grad_x) == (flipped and avx2)
    previous = kernels.use_tiles(2)
    try:
        assert conv_module._input_grad_on_tiles(x.shape, w.reshape(O, -1), g, geometry, grad_x)
        np.testing.assert_allclose(grad_x, want, rtol=1e-4, atol=1e-4)
    finally:
        kernels.use_tiles(previous)
    xt, wt = mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)
    F.conv2d(xt, wt, padding=pad).backward(g)
    np.testing.assert_allclose(xt.grad.numpy(), want, rtol=1e-4, atol=1e-4)
