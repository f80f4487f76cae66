"""conv2d's register tiles on taps in rows of 3 (minipool/_kernels/conv2d_tiles.h,
``mp_conv_product3``: 3x3 kernels at dilation 1, a kernel row's 3 steps unrolled).

They replace the tiles for any taps on those kernels with the same fma chains, so
beside the loop reference, PyTorch, float64 central differences, 1 vs 2 threads and
the AVX2 vs baseline builds, they are checked bit for bit against the tiles for any
taps (the same layer as a 3x4 kernel whose last column is zero: its extra steps add
exactly 0, and its taps are not rows of 3) and against the direct kernel (which
promises the tiles' bits for a finite weight).  Odd channel counts, planes of 4-64,
groups, padding 0-2, bias or not, non-contiguous input, inf and NaN.
"""
import numpy as np
import pytest

from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import (check_avx2_and_baseline_builds_agree,
                                    check_bias_free_matches_loop_reference,
                                    check_central_differences,
                                    check_forward_matches_torch_float32,
                                    check_matches_loop_reference, engine_forced_on, forward,
                                    forward_result, inputs_with_inf_and_nan, make)
from tests.conv.test_conv import check_one_and_two_threads_bit_identical

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias): all 3x3 at dilation 1
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


@pytest.mark.parametrize("case", ROWS3_CASES, ids=ROWS3_IDS)
def test_rows3_match_loop_reference(case, tiles):
    """Forward and all gradients (the input gradient runs on the tiles too, flipped 3x3)."""
    check_matches_loop_reference(case)


@pytest.mark.parametrize("case", ROWS3_CASES, ids=ROWS3_IDS)
def test_rows3_match_torch_float32(case, tiles):
    check_forward_matches_torch_float32(case, forward, atol_scales_with_output=True)


@pytest.mark.parametrize("case", ROWS3_CASES[:4], ids=ROWS3_IDS[:4])
def test_rows3_gradcheck_float64(case, tiles):
    check_central_differences(case)


@pytest.mark.parametrize("case", ROWS3_CASES, ids=ROWS3_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows3_one_and_two_threads_are_bit_identical(case, dtype, tiles):
    check_one_and_two_threads_bit_identical(case, dtype)


@pytest.mark.parametrize("case", ROWS3_CASES, ids=ROWS3_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows3_avx2_and_baseline_builds_agree(case, dtype, tiles):
    check_avx2_and_baseline_builds_agree(case, dtype, forward_result)


@pytest.mark.parametrize("case", ROWS3_CASES, ids=ROWS3_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows3_bits_as_the_tiles_for_any_taps(case, dtype, tiles):
    """The 3x3 layer unpadded, and as a 3x4 kernel with a zero last column (taps not in
    rows of 3: the tiles for any taps; its 4th step of a row adds exactly 0): the same
    bits on the output columns both have."""
    x, w, b, kw = make(case, dtype, seed=7)
    kw = dict(kw, padding=0)
    if min(x.shape[2:]) < 4:
        pytest.skip("no output column left for the 3x4 kernel")
    w4 = np.concatenate([w, np.zeros(w.shape[:3] + (1,), dtype)], axis=3)
    rows3 = forward(x, w, b, **kw)
    any_taps = forward(x, w4, b, **kw)
    np.testing.assert_array_equal(rows3[..., :any_taps.shape[3]], any_taps)


@pytest.mark.parametrize("case", ROWS3_CASES, ids=ROWS3_IDS)
def test_rows3_bits_as_the_direct_kernel(case):
    """float32, a finite weight: the direct kernel's chains are the tiles' (conv2d.pyx)."""
    x, w, b, kw = make(case, np.float32, seed=9)
    previous_winograd = kernels.use_winograd(0)
    try:
        with engine_forced_on(kernels.use_tiles):
            previous_direct = kernels.use_direct(0)
            try:
                on_tiles = forward(x, w, b, **kw)
            finally:
                kernels.use_direct(previous_direct)
        with engine_forced_on(kernels.use_direct):
            on_direct = forward(x, w, b, **kw)
    finally:
        kernels.use_winograd(previous_winograd)
    np.testing.assert_array_equal(on_tiles, on_direct)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows3_non_contiguous_input(dtype, tiles):
    """A strided view of the input: the same bits as its contiguous copy."""
    x, w, b, kw = make((2, 13, 24, 32, 9, 3, 1, 1, 1, 1, True), dtype, seed=11)
    view = np.concatenate([x, x], axis=3)[..., ::2]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(forward(view, w, b, **kw),
                                  forward(np.ascontiguousarray(view), w, b, **kw))


@pytest.mark.parametrize("where", ["input", "weight"])
def test_rows3_carry_inf_and_nan(where, tiles):
    """inf, -inf and NaN in the input or the weight: as the loop reference (no
    finite-check fallback on the tiles: the padding's zeros meet the values)."""
    x, w = inputs_with_inf_and_nan(where)
    check_bias_free_matches_loop_reference(x, w, padding=1)
