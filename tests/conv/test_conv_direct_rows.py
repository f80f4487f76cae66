"""The direct kernel's AVX-512 row tiles (minipool/_kernels/conv2d_direct_avx512.h): a
stride-1 3x3 or 5x5 convolution padded by k//2 on rows of 4, 8 or 16 pixels, a whole output
row of 16/W images (or a 16-pixel part of a row of 32 or 64) by 16 channels per tile, each
point's padding taps left out at compile time.

They run in ``use_cpu_avx512`` modes 1 and 2 and never in mode 0 (the AVX2 tiles) or on the
baseline build: the bits are compared between those on shapes at the borders of the tiles
(planes of 1-7 rows, 1-5 images: tiles of fewer images; 9-40 output channels: a block of
16 not full, a last block of 8 on AVX2; groups), NCHW, with and without a bias, with
inf/NaN inputs, on 1 and 2 threads, against a NumPy emulation of the documented fma chain
and the float64 loop reference.  Their rule (``direct_rows_run``) and the automatic
choice it widens (3x3 on 16x16 planes on the direct kernel) are checked too.  Skipped (with
the reason) on a CPU without AVX-512.
"""
import numpy as np
import pytest

from minipool._kernels import conv2d as kernels
from minipool.ops.conv import ConvGeometry
from tests.conv.test_conv_direct_avx512 import has_avx512
from tests.conv.engine_checks import (check_baseline_bits, check_bits_of_the_replaced_engine,
                                        check_fma_chain, check_loop_reference,
                                        check_non_finite_input, check_threads)

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias): row-tile shapes
ROW_CASES = [
    (3, 4, 16, 16, 16, 5, 1, 2, 1, 1, True),    # 16x16, one image a tile
    (5, 6, 8, 8, 24, 5, 1, 2, 1, 1, True),      # 8x8: tiles of 2 images and a last of 1; 16 + 8
    (7, 5, 4, 4, 33, 5, 1, 2, 1, 1, False),     # 4x4: 4 images + 3; 16 + 16 + a block of 8
    (2, 4, 4, 4, 12, 3, 1, 1, 1, 1, True),      # 12 channels: a block of 16, 12 stored
    (3, 4, 1, 8, 9, 3, 1, 1, 1, 1, True),       # one row: only the middle kernel row
    (2, 5, 2, 16, 20, 5, 1, 2, 1, 1, True),     # two rows: every row has 2-3 kernel rows
    (3, 4, 7, 8, 16, 3, 1, 1, 1, 1, False),     # 7 rows of 8
    (1, 4, 5, 4, 40, 5, 1, 2, 1, 1, True),      # 5 rows of 4, one image (a tile of 1 of 4)
    (2, 8, 8, 8, 32, 3, 1, 1, 1, 2, True),      # grouped: 16 output channels per group
    (2, 4, 16, 16, 16, 3, 1, 1, 1, 1, True),    # 3x3 on 16x16
    (2, 4, 5, 32, 17, 5, 1, 2, 1, 1, True),     # rows of 32: two tiles of 16 pixels a row
    (2, 4, 3, 64, 16, 3, 1, 1, 1, 1, False),    # rows of 64: four
    (2, 3, 16, 16, 32, 5, 1, 2, 1, 1, True),    # a first layer: 3 channels, 5x5
]
ROW_IDS = [f"rows{i}" for i in range(len(ROW_CASES))]
# direct shapes that are not row-tile shapes (the pixel-group tiles run them)
NOT_ROW_CASES = [
    (2, 4, 8, 8, 16, 5, 2, 2, 1, 1, True),      # stride 2
    (2, 4, 8, 8, 16, 3, 1, 2, 2, 1, True),      # dilation 2
    (2, 4, 8, 8, 16, 5, 1, 1, 1, 1, True),      # padding 1 with 5x5
    (2, 4, 12, 12, 16, 3, 1, 1, 1, 1, True),    # rows of 12
    (2, 4, 8, 8, 16, (3, 5), 1, (1, 2), 1, 1, True),  # not square
    (2, 4, 8, 8, 8, 3, 1, 1, 1, 1, True),       # 8 output channels: one block of 8
]
NOT_ROW_IDS = [f"not_rows{i}" for i in range(len(NOT_ROW_CASES))]


def geometry(case):
    N, C, H, W, O, k, s, p, d, g, _ = case
    kh, kw = (k, k) if isinstance(k, int) else k
    ph, pw = (p, p) if isinstance(p, int) else p
    Ho, Wo = (H + 2 * ph - d * (kh - 1) - 1) // s + 1, (W + 2 * pw - d * (kw - 1) - 1) // s + 1
    return ConvGeometry(kh, kw, s, s, ph, pw, d, d, Ho, Wo, g)


def rows_run(case):
    N, C, H, W, O = case[:5]
    return kernels.direct_rows_run(C, H, W, O, geometry(case))


@pytest.fixture
def rows_or_avx2(direct):
    """``pick(on)``: every float32 forward on the direct kernel, on the AVX-512 build (the
    row tiles where they apply: on) or on AVX2 (off); the automatic mode after.  Skips
    without AVX-512."""
    if not has_avx512():
        pytest.skip("this CPU has no AVX-512F+VL (or no AVX2): the row tiles never run")

    def pick(on):
        assert kernels.use_cpu_avx512(2 if on else 0) == on

    try:
        yield pick
    finally:
        kernels.use_cpu_avx512(1)


def test_the_rule_takes_the_row_shapes_only(rows_or_avx2):
    for mode in (1, 2):
        kernels.use_cpu_avx512(mode)
        for case in ROW_CASES:
            assert rows_run(case), case
        for case in NOT_ROW_CASES:
            assert not rows_run(case), case
    rows_or_avx2(False)
    assert not any(rows_run(case) for case in ROW_CASES)
    try:
        kernels.use_cpu_avx512(1)
        kernels.use_cpu_avx2(False)  # the baseline build: no AVX-512 either
        assert not any(rows_run(case) for case in ROW_CASES)
    finally:
        kernels.use_cpu_avx2(True)


def test_the_automatic_choice_takes_16x16_to_64x64_with_the_row_tiles():
    """16x16-64x64 planes (rows that are whole vectors: the tiles' shape) go from the tiles
    to the direct kernel where the row tiles run (64x64 with 8+ input channels); 5x5 on
    16x16 with 8+ channels went there before."""
    if not has_avx512():
        pytest.skip("this CPU has no AVX-512F+VL")

    def same(k, size):
        return ConvGeometry(k, k, 1, 1, k // 2, k // 2, 1, 1, size, size, 1)
    try:
        kernels.use_cpu_avx512(1)
        assert kernels.uses_direct(16, 16, 16, 32, same(3, 16))
        assert kernels.uses_direct(4, 16, 16, 16, same(5, 16))    # 4 input channels: rows only
        assert kernels.uses_direct(16, 32, 32, 16, same(3, 32))
        assert kernels.uses_direct(4, 32, 32, 16, same(5, 32))
        assert kernels.uses_direct(8, 64, 64, 16, same(3, 64))
        assert not kernels.uses_direct(4, 64, 64, 16, same(5, 64))  # 4 channels on 64x64
        assert not kernels.uses_direct(16, 24, 24, 16, same(3, 24))  # rows of 24: not theirs
        assert not kernels.uses_direct(16, 16, 16, 8, same(3, 16))   # 8 output channels
        # 3 input channels, 5x5, planes up to 32 wide: ahead of the first-layer kernel
        assert kernels.uses_direct(3, 32, 32, 16, same(5, 32))
        assert kernels.uses_direct(3, 16, 16, 32, same(5, 16))
        assert not kernels.uses_direct(3, 64, 64, 16, same(5, 64))  # 64x64: the first-layer kernel
        assert not kernels.uses_direct(3, 32, 32, 16, same(3, 32))  # 3x3: the first-layer kernel
        assert not kernels.uses_direct(1, 32, 32, 16, same(5, 32))  # 1 channel: likewise
        assert not kernels.uses_direct(3, 32, 32, 8, same(5, 32))   # 8 output channels
        # 36 products per output to 16 channels: on BLAS (its own rounding), kept there
        assert not kernels.uses_tiles(4, 32, 32, 16, same(3, 32), 32, 1)
        assert not kernels.uses_direct(4, 32, 32, 16, same(3, 32))
        kernels.use_cpu_avx512(0)
        kernels.use_direct_rows_avx2(0)  # AVX2 as before its own row tiles
        assert not kernels.uses_direct(16, 16, 16, 32, same(3, 16))
        assert not kernels.uses_direct(4, 16, 16, 16, same(5, 16))
        assert not kernels.uses_direct(16, 32, 32, 16, same(3, 32))
        assert kernels.uses_direct(16, 16, 16, 32, same(5, 16))   # as before the row tiles
        assert not kernels.uses_direct(3, 32, 32, 16, same(5, 32))  # the first-layer kernel
    finally:
        kernels.use_direct_rows_avx2(1)
        kernels.use_cpu_avx512(1)


@pytest.mark.parametrize("case", ROW_CASES + NOT_ROW_CASES, ids=ROW_IDS + NOT_ROW_IDS)
def test_the_row_tiles_give_the_avx2_bits(case, rows_or_avx2):
    check_bits_of_the_replaced_engine(case, rows_or_avx2, seed=21)


@pytest.mark.parametrize("case", ROW_CASES, ids=ROW_IDS)
def test_the_row_tiles_give_the_baseline_bits(case, rows_or_avx2):
    check_baseline_bits(case, rows_or_avx2, seed=22)


@pytest.mark.parametrize("case", ROW_CASES, ids=ROW_IDS)
def test_the_row_tiles_match_the_loop_reference(case, rows_or_avx2):
    check_loop_reference(case, rows_or_avx2, seed=23)


@pytest.mark.parametrize("N, C, H, W, O, k", [(3, 5, 16, 16, 16, 5), (5, 4, 8, 8, 24, 3),
                                              (6, 3, 4, 4, 40, 5), (2, 4, 3, 16, 16, 3)])
def test_the_row_tiles_round_each_step_once_in_channel_tap_order(N, C, H, W, O, k,
                                                                 rows_or_avx2):
    check_fma_chain(N, C, H, W, O, k, rows_or_avx2, seed=24)


@pytest.mark.parametrize("case", ROW_CASES, ids=ROW_IDS)
def test_the_row_tiles_one_and_two_threads_are_bit_identical(case, rows_or_avx2):
    check_threads(case, rows_or_avx2)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_the_row_tiles_carry_a_non_finite_input(value, rows_or_avx2):
    """One inf or NaN at an 8x8 plane's corner."""
    check_non_finite_input(value, rows_or_avx2, (3, 4, 8, 8), 16, seed=25)
