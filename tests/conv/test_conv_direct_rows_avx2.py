"""The direct kernel's AVX2 row tiles (minipool/_kernels/conv2d_direct_rows.h): a stride-1
3x3 or 5x5 convolution padded by k//2 on rows of 4-64 pixels, 4-6 pixels of one output row
by 16 (or the last 8) output channels per tile, each point's padding taps left out at
compile time.  They promise the bits of the pixel-group tiles they replace (and so of the
baseline build): float32 only; float64 keeps the pixel-group tiles.

Forced on (``use_direct_rows_avx2(2)``, the direct kernel for every forward, AVX-512 off so
they run on any AVX2 CPU) and off (0), compared on shapes at the borders of the tiles: rows
of 4, 8, 16, 32 and 64 pixels (every split of a row into tiles), planes of 1-7 rows and
64x64, output channels 1, 7, 9, 17, 20, 24, 33 (a block of 8 or 16 not full), groups, bias
on and off; against the baseline build, a NumPy emulation of the documented fma chain,
the float64 loop reference and PyTorch; 1 and 2 threads; inf/NaN inputs; float64; a
non-contiguous input.  Skipped (with the reason) without AVX2.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from minipool.ops.conv import ConvGeometry
from tests.conv.conv_checks import check_forward_matches_torch_float32, make, reference
from tests.conv.conv_checks import forward as forward_nchw
from tests.conv.engine_checks import (check_baseline_bits, check_bits_of_the_replaced_engine,
                                        check_fma_chain, check_loop_reference,
                                        check_non_finite_input, check_threads)
from tests.conv.test_conv_direct_rows import NOT_ROW_CASES, NOT_ROW_IDS, geometry

# the AVX-512 tests' shapes that are not row-tile shapes by their geometry (their last, 8
# output channels, is one here: a tile of one vector of channels)
NOT_ROW_CASES, NOT_ROW_IDS = NOT_ROW_CASES[:5], NOT_ROW_IDS[:5]

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
ROW_CASES = [
    (3, 4, 16, 16, 16, 5, 1, 2, 1, 1, True),    # rows of 16: tiles of 6, 5 and 5 pixels
    (2, 6, 8, 8, 24, 5, 1, 2, 1, 1, True),      # rows of 8: 4 + 4; a block of 16 and one of 8
    (3, 5, 4, 4, 33, 5, 1, 2, 1, 1, False),     # 4x4: every tap row cut; 16 + 16 + 1 of 8
    (2, 4, 5, 32, 17, 5, 1, 2, 1, 1, True),     # rows of 32: 6 + 4 x 5 + 6; 16 + 1
    (2, 3, 3, 64, 9, 3, 1, 1, 1, 1, False),     # rows of 64: 6 + 7 x 6 + 2 x 5 + 6; 9 channels
    (2, 4, 1, 8, 7, 3, 1, 1, 1, 1, True),       # one row (the middle kernel row); 7 of 8
    (2, 5, 2, 16, 1, 5, 1, 2, 1, 1, True),      # two rows; one output channel
    (2, 8, 7, 16, 32, 3, 1, 1, 1, 2, True),     # 2 groups of 16 output channels, 7 rows
    (1, 6, 64, 64, 9, 3, 1, 1, 1, 3, True),     # 64x64, 3 groups of 3 output channels
    (2, 16, 32, 32, 16, 3, 1, 1, 1, 1, False),  # the sweep's 16->16 on 32x32
    (2, 4, 6, 16, 20, 5, 1, 2, 1, 1, True),     # 16 + a block of 8 with 4
]
ROW_IDS = [f"rows{i}" for i in range(len(ROW_CASES))]


def rows_run(case):
    N, C, H, W, O = case[:5]
    return kernels.direct_rows_run(C, H, W, O, geometry(case), avx2=True)


@pytest.fixture
def rows_avx2(direct):
    """``pick(on)``: every float32 forward on the direct kernel's AVX2 build, with its row
    tiles where they apply (on) or its pixel-group tiles (off); the automatic modes after.
    Skips without AVX2."""
    if not kernels.use_cpu_avx2(True):
        pytest.skip("this CPU has no AVX2 and FMA: the row tiles never run")
    kernels.use_cpu_avx512(0)  # AVX-512's own row tiles would come first

    def pick(on):
        assert kernels.use_direct_rows_avx2(2 if on else 0) == on

    try:
        yield pick
    finally:
        kernels.use_direct_rows_avx2(1)
        kernels.use_cpu_avx512(1)


def test_the_rule_takes_the_row_shapes_only(rows_avx2):
    rows_avx2(True)
    for case in ROW_CASES:
        assert rows_run(case), case
    for case in NOT_ROW_CASES:
        assert not rows_run(case), case
    rows_avx2(False)
    assert not any(rows_run(case) for case in ROW_CASES)
    try:
        kernels.use_direct_rows_avx2(2)
        kernels.use_cpu_avx2(False)  # the baseline build: no row tiles
        assert not any(rows_run(case) for case in ROW_CASES)
    finally:
        kernels.use_cpu_avx2(True)
    with pytest.raises(ValueError):
        kernels.use_direct_rows_avx2(3)


def test_the_automatic_choice_takes_5x5_on_16x16_and_32x32():
    """Mode 1 (AVX-512 off): 5x5 on 16x16 with 4+ input channels and 32x32 with 8+, 9+
    output channels, on the direct kernel's row tiles; 3x3, 8x8 and 64x64 planes, 4
    channels on 32x32 and 8 output channels keep their engines."""
    if not kernels.use_cpu_avx2(True):
        pytest.skip("this CPU has no AVX2 and FMA")

    def same(k, size):
        return ConvGeometry(k, k, 1, 1, k // 2, k // 2, 1, 1, size, size, 1)
    taken = [(4, 16, 16, 5), (16, 16, 32, 5), (32, 16, 32, 5), (8, 32, 16, 5), (16, 32, 32, 5)]
    kept = [(16, 16, 32, 3), (16, 32, 16, 3), (32, 8, 64, 5), (8, 64, 16, 5), (4, 32, 16, 5),
            (16, 16, 8, 5), (3, 16, 16, 5)]
    try:
        kernels.use_cpu_avx512(0)
        assert kernels.use_direct_rows_avx2(1)
        for C, size, O, k in taken:
            assert kernels.direct_rows_run(C, size, size, O, same(k, size), avx2=True), (C, size)
            assert kernels.uses_direct(C, size, size, O, same(k, size)), (C, size, O, k)
        for C, size, O, k in kept:
            assert not kernels.direct_rows_run(C, size, size, O, same(k, size), avx2=True)
        kernels.use_direct_rows_avx2(0)  # as before them: the tiles for these two
        assert not kernels.uses_direct(4, 16, 16, 16, same(5, 16))
        assert not kernels.uses_direct(16, 32, 32, 32, same(5, 32))
        assert kernels.uses_direct(16, 16, 16, 32, same(5, 16))
    finally:
        kernels.use_direct_rows_avx2(1)
        kernels.use_cpu_avx512(1)


@pytest.mark.parametrize("case", ROW_CASES + NOT_ROW_CASES, ids=ROW_IDS + NOT_ROW_IDS)
def test_the_row_tiles_give_the_pixel_group_bits(case, rows_avx2):
    check_bits_of_the_replaced_engine(case, rows_avx2, seed=31)


@pytest.mark.parametrize("case", ROW_CASES, ids=ROW_IDS)
def test_the_row_tiles_give_the_baseline_bits(case, rows_avx2):
    check_baseline_bits(case, rows_avx2, seed=32)


@pytest.mark.parametrize("case", ROW_CASES, ids=ROW_IDS)
def test_the_row_tiles_match_the_loop_reference(case, rows_avx2):
    check_loop_reference(case, rows_avx2, seed=33)


@pytest.mark.parametrize("case", ROW_CASES, ids=ROW_IDS)
def test_the_row_tiles_match_torch(case, rows_avx2):
    rows_avx2(True)
    check_forward_matches_torch_float32(case, forward_nchw, atol_scales_with_output=True)


@pytest.mark.parametrize("N, C, H, W, O, k", [(3, 5, 16, 16, 16, 5), (2, 4, 8, 8, 24, 3),
                                              (2, 3, 4, 32, 9, 5), (1, 3, 3, 64, 17, 3)])
def test_the_row_tiles_round_each_step_once_in_channel_tap_order(N, C, H, W, O, k, rows_avx2):
    check_fma_chain(N, C, H, W, O, k, rows_avx2, seed=34, avx2=True)


@pytest.mark.parametrize("case", ROW_CASES, ids=ROW_IDS)
def test_the_row_tiles_one_and_two_threads_are_bit_identical(case, rows_avx2):
    check_threads(case, rows_avx2)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_the_row_tiles_carry_a_non_finite_input(value, rows_avx2):
    """One inf or NaN at a 16x16 plane's corner."""
    check_non_finite_input(value, rows_avx2, (3, 4, 16, 16), 20, seed=35)


@pytest.mark.parametrize("case", ROW_CASES[:4], ids=ROW_IDS[:4])
def test_float64_keeps_the_pixel_group_tiles(case, rows_avx2):
    """The row tiles are float32's: float64 gives the same bits with them on or off, and
    the loop reference's values."""
    x, w, b, kw = make(case, np.float64, seed=36)
    rows_avx2(True)
    on = forward_nchw(x, w, b, **kw)
    rows_avx2(False)
    np.testing.assert_array_equal(on, forward_nchw(x, w, b, **kw))
    np.testing.assert_allclose(on, reference(x, w, b, **kw)[0], rtol=1e-12, atol=1e-12)


def test_a_non_contiguous_input_gives_the_same_bits(rows_avx2):
    rng = np.random.default_rng(37)
    x = rng.standard_normal((2, 16, 16, 4)).astype(np.float32).transpose(0, 3, 1, 2)
    w = rng.standard_normal((24, 4, 3, 3)).astype(np.float32)
    rows_avx2(True)
    with mp.no_grad():
        got = F.conv2d(mp.tensor(x), mp.tensor(w), None, padding=1).numpy()
    rows_avx2(False)
    np.testing.assert_array_equal(got, forward_nchw(np.ascontiguousarray(x), w, None, padding=1))
