"""The direct kernel's tap runs (minipool/_kernels/conv2d_direct.h, ``mp_direct_tap_runs``):
in its AVX2 float32 build a full tile of 6 points by 16 output channels whose pixel group's
taps fall in runs of 5+ neighbouring taps (a 5x5 kernel's rows inside the plane, NCHW,
undilated) steps one pointer per tap instead of reading a table.  The same fma chain (one
running sum per output over (channel, tap) in order, then the bias), so the same bits as
the tap-by-tap tiles: the baseline build (no runs), conv2d_tiles.h, and the documented chain.

The direct kernel forced on (AVX-512 and the AVX2 row tiles off, so 16x16 planes take the
pixel-group tiles too), on shapes where runs occur (5x5 on 5-16 pixel planes, 7x7, 1x5,
rows merged into one run where the plane is as wide as the kernel, stride 2) and where
they must not (dilation 2, 3x3: runs of 3), output channels 1, 7, 9, 17, 24 and 32-64
(blocks of 16 full or not), input channels 1, 3, 5, groups, bias on and off; against the
loop reference, PyTorch, 1 and 2 threads, a non-contiguous input, float64, inf and NaN.
Skipped (with the reason) without AVX2.
"""
import numpy as np
import pytest

from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import check_forward_matches_torch_float32, make, reference
from tests.conv.conv_checks import forward as forward_nchw
from tests.conv.engine_checks import (check_baseline_bits, check_loop_reference,
                                      check_non_finite_input, check_threads)
from tests.conv.test_conv_direct_avx512 import fma_chain

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
RUN_CASES = [
    (7, 32, 8, 8, 64, 5, 1, 2, 1, 1, True),     # the sweep's 32->64 on 8x8 (a 7th image)
    (6, 16, 16, 16, 32, 5, 1, 2, 1, 1, True),   # the sweep's 16->32 on 16x16
    (3, 5, 8, 8, 17, 5, 1, 2, 1, 1, False),     # 16 + a last block of 8 (12-point tiles)
    (4, 3, 9, 11, 24, 5, 1, 2, 1, 1, True),     # odd planes; 16 + 8
    (2, 1, 12, 12, 9, 5, 1, 2, 1, 1, True),     # one input channel; 9 outputs
    (3, 5, 6, 7, 16, 5, 1, 0, 1, 1, True),      # valid padding: one group, 5 runs of 5
    (3, 4, 5, 5, 16, 5, 1, 0, 1, 1, False),     # a plane as wide as the kernel: one run of 25
    (2, 6, 14, 14, 16, 5, 1, 0, 1, 1, True),    # LeNet's conv2
    (3, 4, 10, 10, 32, 7, 1, 3, 1, 1, True),    # 7x7: runs of 7
    (3, 4, 8, 12, 16, (1, 5), 1, (0, 2), 1, 1, True),  # 1x5: runs of one kernel row
    (3, 6, 12, 12, 32, 5, 2, 2, 1, 1, True),    # stride 2
    (2, 8, 8, 8, 32, 5, 1, 2, 1, 2, True),      # 2 groups of 16 output channels
    (2, 6, 8, 8, 48, 5, 1, 2, 1, 3, False),     # 3 groups of 16
    (3, 4, 8, 8, 1, 5, 1, 2, 1, 1, True),       # one output channel
    (3, 4, 8, 8, 7, 5, 1, 2, 1, 1, False),      # 7 output channels
    (2, 4, 16, 16, 16, 5, 1, 4, 2, 1, True),    # dilation 2: no runs (taps 2 apart)
    (3, 8, 8, 8, 32, 3, 1, 1, 1, 1, True),      # 3x3: runs of 3, read tap by tap
    (2, 5, 4, 4, 32, 5, 1, 2, 1, 1, True),      # 4x4: runs of 3-4, tap by tap
]
RUN_IDS = [f"runs{i}" for i in range(len(RUN_CASES))]


@pytest.fixture
def direct_avx2(direct):
    """Every float32 forward on the direct kernel's AVX2 pixel-group tiles (AVX-512 and the
    AVX2 row tiles off); the automatic modes after.  Skips without AVX2."""
    if not kernels.use_cpu_avx2(True):
        pytest.skip("this CPU has no AVX2 and FMA: the tap runs never run")
    kernels.use_cpu_avx512(0)
    kernels.use_direct_rows_avx2(0)
    try:
        yield
    finally:
        kernels.use_direct_rows_avx2(1)
        kernels.use_cpu_avx512(1)


@pytest.mark.parametrize("case", RUN_CASES, ids=RUN_IDS)
def test_the_tap_runs_give_the_baseline_bits(case, direct_avx2):
    """The baseline build reads every tap from the table: the tap-by-tap bits."""
    check_baseline_bits(case, None, seed=41)


@pytest.mark.parametrize("case", RUN_CASES[:12], ids=RUN_IDS[:12])
def test_the_tap_runs_give_the_tiles_bits(case, direct_avx2):
    """conv2d_tiles.h (the engine the direct kernel replaced) gives the same bits for a
    finite weight: its padding products add exactly nothing."""
    x, w, b, kw = make(case, np.float32, seed=42)
    got = forward_nchw(x, w, b, **kw)
    previous = kernels.use_direct(0), kernels.use_tiles(2)
    try:
        np.testing.assert_array_equal(got, forward_nchw(x, w, b, **kw))
    finally:
        kernels.use_direct(previous[0])
        kernels.use_tiles(previous[1])


@pytest.mark.parametrize("N, C, H, O", [(7, 5, 8, 32), (6, 3, 16, 16), (3, 4, 5, 16),
                                        (2, 2, 12, 24)])
def test_the_tap_runs_round_each_step_once_in_channel_tap_order(N, C, H, O, direct_avx2):
    """Integer inputs (every product and partial sum exact in float64): each fma rounds
    once, in (c, ki, kj) order, the padding taps skipped, then the bias."""
    rng = np.random.default_rng(43)
    x = rng.integers(-2 ** 20, 2 ** 20, (N, C, H, H)).astype(np.float32)
    w = rng.integers(-2 ** 12, 2 ** 12, (O, C, 5, 5)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    pad = 0 if H == 5 else 2
    np.testing.assert_array_equal(forward_nchw(x, w, b, padding=pad), fma_chain(x, w, b, pad))


@pytest.mark.parametrize("case", RUN_CASES[2:], ids=RUN_IDS[2:])
def test_the_tap_runs_match_the_loop_reference(case, direct_avx2):
    check_loop_reference(case, None, seed=44)


@pytest.mark.parametrize("case", RUN_CASES[2:], ids=RUN_IDS[2:])
def test_the_tap_runs_match_torch(case, direct_avx2):
    check_forward_matches_torch_float32(case, forward_nchw, atol_scales_with_output=True)


@pytest.mark.parametrize("case", RUN_CASES[2:4] + RUN_CASES[10:13],
                         ids=RUN_IDS[2:4] + RUN_IDS[10:13])
def test_the_tap_runs_one_and_two_threads_are_bit_identical(case, direct_avx2):
    check_threads(case, None)


def test_a_non_contiguous_input_gives_the_contiguous_bits(direct_avx2):
    x, w, b, kw = make((4, 16, 8, 8, 32, 5, 1, 2, 1, 1, True), np.float32, seed=45)
    wide = np.zeros((4, 16, 8, 16), np.float32)
    wide[..., ::2] = x
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(forward_nchw(view, w, b, **kw), forward_nchw(x, w, b, **kw))


@pytest.mark.parametrize("case", RUN_CASES[2:4] + RUN_CASES[6:7], ids=RUN_IDS[2:4] + RUN_IDS[6:7])
def test_float64_keeps_its_tiles_and_the_loop_reference(case, direct_avx2):
    """float64 has no tap runs: the baseline build's bits and the loop reference."""
    x, w, b, kw = make(case, np.float64, seed=46)
    got = forward_nchw(x, w, b, **kw)
    np.testing.assert_allclose(got, reference(x, w, b, **kw)[0], rtol=1e-12, atol=1e-12)
    try:
        kernels.use_cpu_avx2(False)
        np.testing.assert_array_equal(got, forward_nchw(x, w, b, **kw))
    finally:
        kernels.use_cpu_avx2(True)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_the_tap_runs_carry_a_non_finite_input(value, direct_avx2):
    """One inf or NaN inside an 8x8 plane."""
    check_non_finite_input(value, None, (6, 4, 8, 8), 16, seed=47, at=(2, 1, 4, 3))


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_a_non_finite_weight_still_meets_the_padding(value, direct_avx2):
    """0 * inf is NaN: a weight with inf or NaN leaves the direct kernel (and its runs) for
    an engine that multiplies the padding, as the loop reference."""
    rng = np.random.default_rng(48)
    x = rng.standard_normal((6, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((16, 4, 5, 5)).astype(np.float32)
    w[3, 2, 0, 0] = value
    got = forward_nchw(x, w, None, padding=2)
    with np.errstate(invalid="ignore"):
        want = reference(x.astype(np.float64), w.astype(np.float64), None, 1, 2, 1, 1)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert np.isnan(got[:, 3, :2, :]).all()  # tap (0, 0) is in the padding on rows 0-1
