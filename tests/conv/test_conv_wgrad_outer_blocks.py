"""conv2d_wgrad_outer.h's blocks of whole images and its finite check: a block's tile
planes packed side by side before the taps pass (small planes; images 4 KB apart with
64 channels of 4x4), and the output gradient's inf/NaN found while it is laid out
(the AVX2 layout's 8x8 transposes and its scalar tail, in any chunk of a 2-thread
call) rather than in a pass of its own.

Checked against the loop reference (float64), PyTorch (float32), float64 central
differences, the documented summation order (tests/conv/test_conv_wgrad_outer.py's
integer emulation), 1 vs 2 threads and the baseline vs the AVX2 build bit for bit.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import (check_avx2_and_baseline_builds_agree,
                                    check_matches_loop_reference, reference,
                                    weight_and_bias_grads)
from tests.conv.test_conv import (check_one_and_two_threads_bit_identical,
                                  check_weight_grad_finite_differences,
                                  check_weight_grad_matches_torch_float32)
from tests.conv.test_conv_wgrad_outer import documented_order, geometry_of
from tests.helpers import with_threads

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
PACKED_CASES = [
    (20, 64, 4, 4, 16, 3, 1, 1, 1, 1, True),    # 4 KB between images: 16 per block, packed
    (5, 13, 5, 5, 17, 3, 1, 1, 1, 1, False),    # tiles of 6, 4 and 3 channels; 17 = 16 + 1
    (6, 9, 9, 7, 10, 3, 2, 0, 1, 1, True),      # stride 2, no padding: planes larger than outputs
    (4, 8, 6, 6, 12, 5, 1, 2, 1, 2, True),      # 5x5 on 6x6, grouped: 4 channels per group
    (3, 6, 8, 8, 8, 3, 1, 2, 2, 1, False),      # dilated: 4 images of 64 pixels per block
    (2, 20, 20, 20, 8, 3, 1, 1, 1, 1, True),    # 400 pixels: blocks of rows, not packed
]
PACKED_IDS = [f"packed{i}" for i in range(len(PACKED_CASES))]


@pytest.mark.parametrize("case", PACKED_CASES, ids=PACKED_IDS)
def test_packed_blocks_match_loop_reference(case, wgrad_outer):
    check_matches_loop_reference(case)


@pytest.mark.parametrize("case", PACKED_CASES, ids=PACKED_IDS)
def test_packed_blocks_match_torch_float32(case, wgrad_outer):
    check_weight_grad_matches_torch_float32(case)


@pytest.mark.parametrize("case", PACKED_CASES[1:5], ids=PACKED_IDS[1:5])
def test_packed_blocks_gradcheck_float64(case, wgrad_outer):
    check_weight_grad_finite_differences(case)


@pytest.mark.parametrize("case", PACKED_CASES, ids=PACKED_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_blocks_one_and_two_threads_are_bit_identical(case, dtype, wgrad_outer):
    check_one_and_two_threads_bit_identical(case, dtype)


@pytest.mark.parametrize("case", PACKED_CASES, ids=PACKED_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_blocks_baseline_and_avx2_builds_give_the_same_bits(case, dtype, wgrad_outer):
    check_avx2_and_baseline_builds_agree(case, dtype, weight_and_bias_grads)


@pytest.mark.parametrize("N,C,H,O,k,stride,padding,dilation", [
    (4, 7, 5, 3, 3, 1, 1, 1),     # 4 images of 25 pixels in a block, tiles of 6 and 1: 2 parts
    (6, 5, 9, 4, 3, 2, 0, 1),     # stride 2, no padding: 81-pixel planes, 16-pixel outputs
    (3, 9, 4, 20, 3, 1, 1, 1),    # 2 panels x 2 tiles: one part of 3 images
])
def test_packed_blocks_sum_in_the_documented_order(N, C, H, O, k, stride, padding, dilation,
                                                   wgrad_outer):
    """Bit for bit the documented order (integers whose chain sums float32 rounds)."""
    rng = np.random.default_rng(11)
    x = rng.integers(-2 ** 12, 2 ** 12, (N, C, H, H)).astype(np.float32)
    w = np.zeros((O, C, k, k), np.float32)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    with mp.no_grad():
        shape = F.conv2d(mp.tensor(x), mp.tensor(w), **kwargs).shape
    g = rng.integers(-2 ** 12, 2 ** 12, shape).astype(np.float32)
    want, want_bias = documented_order(x, g, k, k, stride, padding, dilation)
    wt = mp.tensor(w, requires_grad=True)
    bt = mp.tensor(np.zeros(O, np.float32), requires_grad=True)
    F.conv2d(mp.tensor(x), wt, bt, **kwargs).backward(g)
    np.testing.assert_array_equal(wt.grad.numpy(), want)
    np.testing.assert_array_equal(bt.grad.numpy(), want_bias)


# where the inf/NaN goes in an output gradient of (3, 40, 3, 11): 40 = 3 panels; 33
# pixels per plane = 4 of the AVX2 layout's 8-pixel transposes and a scalar tail of 1
NON_FINITE_SPOTS = {
    "first": (0, 0, 0, 0),
    "transposed": (1, 17, 1, 2),   # second panel, inside an 8x8 transpose
    "tail": (2, 39, 2, 10),        # last image, channel and pixel: the scalar tail
    "padded_lane": (2, 35, 0, 7),  # the last panel's 8 channels, beside its zero lanes
}


@pytest.mark.parametrize("spot", list(NON_FINITE_SPOTS))
@pytest.mark.parametrize("value", [np.inf, np.nan])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_output_gradient_is_found_in_any_chunk(spot, value, threads, dtype,
                                                          wgrad_outer):
    """Any chunk's inf or NaN sends the call back (False), and the conv op's weight
    gradient is then the reference's (inf where it meets the input, NaN where it meets
    the padding's zeros or an opposite inf)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 10, 3, 11)).astype(dtype)
    w = rng.standard_normal((40, 10, 3, 3)).astype(dtype)
    g = rng.standard_normal((3, 40, 3, 11)).astype(dtype)
    g[NON_FINITE_SPOTS[spot]] = value
    geometry = geometry_of(x, w, g.shape, 1, 1, 1, 1)
    out = np.empty((40, 90), dtype)
    assert not with_threads(threads, lambda: kernels.conv2d_weight_grad_outer(
        x, g, out, geometry, threads, bias=np.empty(40, dtype)))
    g[NON_FINITE_SPOTS[spot]] = 1.0  # finite again: the products run
    assert with_threads(threads, lambda: kernels.conv2d_weight_grad_outer(
        x, g, out, geometry, threads))
    g[NON_FINITE_SPOTS[spot]] = value
    wt, bt = mp.tensor(w, requires_grad=True), mp.tensor(np.zeros(40, dtype), requires_grad=True)
    with_threads(threads, lambda: F.conv2d(mp.tensor(x), wt, bt, padding=1).backward(g))
    with np.errstate(invalid="ignore"):
        want = reference(x.astype(np.float64), w.astype(np.float64), None, 1, 1, 1, 1,
                         grad_out=g.astype(np.float64))[2]
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(wt.grad.numpy(), want, rtol=tol, atol=tol)
    assert np.isfinite(wt.grad.numpy()).any() and not np.isfinite(wt.grad.numpy()).all()
