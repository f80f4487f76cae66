"""conv2d's register tiles on taps in rows of 3 (minipool/_kernels/conv2d_tiles.h,
``mp_conv_product3``: 3x3 kernels at dilation 1, a kernel row's 3 steps unrolled).

They replace the tiles for any taps on those kernels with the same fma chains.  Their
shapes (ROWS3_CASES) take test_conv_tiles.py's checks (the loop reference, PyTorch,
float64 central differences, 1 vs 2 threads, the AVX2 vs baseline builds); here they
are checked bit for bit against the tiles for any taps (the same layer as a 3x4 kernel whose last column is zero: its extra steps add
exactly 0, and its taps are not rows of 3) and against the direct kernel (which
promises the tiles' bits for a finite weight).  Odd channel counts, planes of 4-64,
groups, padding 0-2, bias or not, non-contiguous input, inf and NaN.
"""
import numpy as np
import pytest

from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import (check_bias_free_matches_loop_reference, engine_forced_on,
                                    forward, inputs_with_inf_and_nan, make)
from tests.conv.test_conv_tiles import ROWS3_CASES, ROWS3_IDS



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
