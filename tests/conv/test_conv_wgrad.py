"""conv2d's weight gradient on register tiles (minipool/_kernels/conv2d_wgrad.h).

``use_wgrad_tiles(2)`` puts every weight-gradient product on the tiles (``0``:
BLAS, ``1``: where they measured faster).  Checked against the loop reference in
``tests/references/conv_reference.py``, PyTorch, float64 central differences, 1
vs 2 threads and the baseline vs the AVX2 build bit for bit, a numpy emulation of
the documented summation order, and inf/NaN, on shapes whose output channels,
taps and pixel runs end inside a tile, a vector or a chunk.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import (check_avx2_and_baseline_builds_agree,
                                    check_matches_loop_reference, check_random_geometry, reference,
                                    weight_and_bias_grads)
from tests.conv.test_conv import (check_one_and_two_threads_bit_identical,
                                  check_weight_grad_finite_differences,
                                  check_weight_grad_matches_torch_float32, weight_grad)

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
WGRAD_CASES = [
    (2, 3, 9, 21, 7, 3, 1, 1, 1, 1, True),       # 7 channels: tiles of 3, 3, 1; 27 taps: 4 x 6 + 3
    (1, 2, 5, 5, 5, 3, 1, 0, 1, 1, False),       # 9 output pixels: a vector and one pixel; 5 = 3 + 2
    (2, 1, 30, 40, 2, 5, 1, 2, 1, 1, True),      # runs of 1316 pixels: chunks of 512 and a tail
    (64, 2, 4, 4, 7, 3, 1, 1, 1, 1, True),       # 4x4 planes: several images per product (columns)
    (2, 4, 12, 12, 8, 3, 1, 2, 2, 2, True),      # dilated and grouped, from the planes
    (2, 6, 9, 9, 12, 3, 2, 1, 1, 3, False),      # stride 2: tiles over gathered columns
    (2, 20, 8, 8, 16, 3, 1, 1, 1, 1, True),      # 16+ channels on 8x8: gathered, G.T not copied
    (1, 32, 20, 20, 4, 3, 1, 1, 1, 1, False),    # column blocks of a few rows: sums resumed
]
WGRAD_IDS = [f"wgrad{i}" for i in range(len(WGRAD_CASES))]


@pytest.mark.parametrize("case", WGRAD_CASES, ids=WGRAD_IDS)
def test_wgrad_tiles_match_loop_reference(case, wgrad_tiles):
    check_matches_loop_reference(case)


@pytest.mark.parametrize("case", WGRAD_CASES, ids=WGRAD_IDS)
def test_wgrad_tiles_match_torch_float32(case, wgrad_tiles):
    check_weight_grad_matches_torch_float32(case)


@pytest.mark.parametrize("case", WGRAD_CASES[:6], ids=WGRAD_IDS[:6])
def test_wgrad_tiles_gradcheck_float64(case, wgrad_tiles):
    check_weight_grad_finite_differences(case)


@pytest.mark.parametrize("case", WGRAD_CASES, ids=WGRAD_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wgrad_tiles_one_and_two_threads_are_bit_identical(case, dtype, wgrad_tiles):
    check_one_and_two_threads_bit_identical(case, dtype)


@pytest.mark.parametrize("case", WGRAD_CASES, ids=WGRAD_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wgrad_baseline_and_avx2_builds_give_the_same_bits(case, dtype, wgrad_tiles):
    """The weight and bias gradients (the forward and input gradient may take BLAS in the
    baseline build's automatic mode)."""
    check_avx2_and_baseline_builds_agree(case, dtype, weight_and_bias_grads)


def lane_order_sums(x, g, kh, kw):
    """conv2d_wgrad.h's documented order for one image, stride 1, no padding, one product
    from the planes: per (o, c, ki, kj), over the run of pixels oh*W + ow (the W - Wo
    pixels after each output row meet a zero gradient), chunks of 512 pixels, lane
    p % 8 one fma chain each, lanes added by pairs, chunk sums added in order.  The
    values are integers whose products and lane sums float64 holds exactly, so
    float64's add rounded to float32 is the fma's one rounding."""
    _, C, H, W = x.shape
    _, O, Ho, Wo = g.shape
    width = (Ho - 1) * W + Wo
    wide = np.zeros((O, Ho, W), np.float32)
    wide[:, :, :Wo] = g[0]
    wide = wide.reshape(O, -1)[:, :width]
    out = np.empty((O, C, kh, kw), np.float32)
    for o in range(O):
        for c in range(C):
            plane = x[0, c].reshape(-1)
            for ki in range(kh):
                for kj in range(kw):
                    run_ = plane[ki * W + kj:ki * W + kj + width]
                    total = None
                    for p0 in range(0, width, 512):
                        lanes = [np.float32(0)] * 8
                        for p in range(p0, min(p0 + 512, width)):
                            exact = np.float64(wide[o, p]) * np.float64(run_[p])
                            lanes[p % 8] = np.float32(exact + np.float64(lanes[p % 8]))
                        chunk = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + \
                                ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
                        total = chunk if total is None else np.float32(total + chunk)
                    out[o, c, ki, kj] = total
    return out


def test_wgrad_tiles_sum_in_the_documented_order(wgrad_tiles):
    """Bit for bit the documented order, over two chunks (a run of 598 pixels).  Integers
    below 2**10: products below 2**20, lane sums up to ~2**27 (float32 rounds them,
    float64 does not); another order or unfused steps would round elsewhere."""
    rng = np.random.default_rng(9)
    x = rng.integers(-2 ** 10, 2 ** 10, (1, 2, 12, 60)).astype(np.float32)
    w = np.zeros((5, 2, 3, 3), np.float32)
    g = rng.integers(-2 ** 10, 2 ** 10, (1, 5, 10, 58)).astype(np.float32)
    want = lane_order_sums(x, g, 3, 3)
    wt, bt = mp.tensor(w, requires_grad=True), mp.tensor(np.zeros(5, np.float32), requires_grad=True)
    F.conv2d(mp.tensor(x), wt, bt).backward(g)
    np.testing.assert_array_equal(wt.grad.numpy(), want)
    # the bias: the same sums over a source of ones (the run of the first tap)
    ones = np.ones((1, 1, 12, 60), np.float32)
    np.testing.assert_array_equal(bt.grad.numpy(), lane_order_sums(ones, g, 1, 1).reshape(5))
    exact = reference(x.astype(np.float64), w.astype(np.float64), None, 1, 0, 1, 1,
                      grad_out=g.astype(np.float64))[2]
    assert not np.array_equal(want, exact.astype(np.float32))  # the order shows in the bits


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("where", ["input", "grad"])
@pytest.mark.parametrize("padding", [0, 1])
def test_wgrad_tiles_carry_non_finite_values_as_the_reference(value, where, padding, wgrad_tiles):
    """An inf or NaN in the input (its image leaves the planes for gathered columns, whose
    dropped pixels meet nothing) or in the output gradient."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 3, 7, 20))
    w = rng.standard_normal((7, 3, 3, 3))
    with mp.no_grad():
        g = rng.standard_normal(F.conv2d(mp.tensor(x), mp.tensor(w), padding=padding).shape)
    if where == "input":
        x[1, 0, 3, 5] = value
    else:
        g[0, 2, 2, 4] = value
    got = weight_grad(x, w, dict(padding=padding), g)
    with np.errstate(invalid="ignore"):
        want = reference(x, w, None, 1, padding, 1, 1, grad_out=g)[2]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.isfinite(got).sum() > 0 and not np.isfinite(got).all()


def test_transposed_convolution_weight_gradient_on_tiles(wgrad_tiles):
    """conv_transpose2d's weight gradient is conv2d's weight-gradient pass."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4, 6, 7))
    w = rng.standard_normal((4, 5, 3, 3))
    g = rng.standard_normal((3, 5, 8, 9))
    wt = mp.tensor(w, requires_grad=True)
    F.conv_transpose2d(mp.tensor(x), wt).backward(g)
    tw = torch.from_numpy(w).requires_grad_()
    torch.nn.functional.conv_transpose2d(torch.from_numpy(x), tw).backward(torch.from_numpy(g))
    np.testing.assert_allclose(wt.grad.numpy(), tw.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,out_channels,k,on_tiles", [
    ((64, 1, 32, 32), 6, 5, True),     # LeNet's conv1: one image from its planes
    ((64, 1, 28, 28), 16, 3, True),    # 1->16 3x3 first layer
    ((64, 32, 32, 32), 32, 3, True),   # 32x32 planes, column blocks of rows
    ((64, 6, 14, 14), 16, 5, False),   # LeNet's conv2: several images per product
    ((64, 64, 4, 4), 64, 5, False),    # 4x4 planes: gathered columns
])
def test_automatic_wgrad_choice_is_the_measured_one(shape, out_channels, k, on_tiles):
    from minipool.ops import conv as conv_module
    N, C, H, W = shape
    pad = k // 2 if C > 1 else 0
    geometry = conv_module.ConvGeometry(k, k, 1, 1, pad, pad, 1, 1, H + 2 * pad - k + 1,
                                        W + 2 * pad - k + 1, 1)
    block_rows, images = conv_module._plan(shape, out_channels, geometry)[:2]
    args = (C, H, W, out_channels, geometry, block_rows, images)
    previous = kernels.use_wgrad_tiles(1)
    avx2 = kernels.use_cpu_avx2(True)
    try:
        assert kernels.uses_wgrad_tiles(*args) == (on_tiles and avx2)
        assert not kernels.uses_wgrad_tiles(*args, float64=True)  # float64 stays on BLAS
        kernels.use_cpu_avx2(False)  # the baseline build is slow: automatic mode keeps BLAS
        assert not kernels.uses_wgrad_tiles(*args)
        kernels.use_cpu_avx2(True)
        kernels.use_wgrad_tiles(0)
        assert not kernels.uses_wgrad_tiles(*args)
        kernels.use_wgrad_tiles(2)
        assert kernels.uses_wgrad_tiles(*args)
    finally:
        kernels.use_wgrad_tiles(previous)
        kernels.use_cpu_avx2(True)


def test_use_wgrad_tiles_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="use_wgrad_tiles: mode"):
        kernels.use_wgrad_tiles(3)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), groups=st.sampled_from([1, 2]), cpg=st.integers(1, 3),
       opg=st.integers(1, 8), H=st.integers(1, 9), W=st.integers(1, 20),
       k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 2),
       dilation=st.integers(1, 2), ties=st.booleans(),
       special=st.sampled_from([None, np.inf, -np.inf, np.nan]), seed=st.integers(0, 99))
def test_random_geometry_wgrad_on_tiles_matches_reference(N, groups, cpg, opg, H, W, k, stride,
                                                          pad, dilation, ties, special, seed):
    """Any geometry, small integer values (ties) or one inf/NaN in the input: every
    gradient as the loop reference."""
    check_random_geometry(kernels.use_wgrad_tiles, N, groups, cpg, opg, H, W, k, stride, pad, dilation, ties,
                          special, seed)
