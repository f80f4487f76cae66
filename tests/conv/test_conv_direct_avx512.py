"""The direct kernel's AVX-512 float32 tiles (minipool/_kernels/conv2d_direct_avx512.h).

``use_cpu_avx512(2)`` puts every float32 direct forward on them, ``0`` keeps the AVX2
tiles: both run on a CPU with AVX-512F+VL, so their bits are compared here on the direct
kernel's shapes (test_conv_direct.py) and on shapes that pair blocks of 16 channels (32+
channels per group, ending in a block of 16 or of 8), NCHW and channels last, with and
without a bias, with inf/NaN inputs, on 1 and 2 threads, and against a NumPy emulation of
the documented fma chain.  The automatic mode's choice and the CPU test are checked too.
Skipped (with the reason) on a CPU without AVX-512.
"""
import numpy as np
import pytest

from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import (check_direct_carries_a_non_finite_input, forward, make,
                                    reference)
from tests.conv.test_conv import check_one_and_two_threads_bit_identical
from tests.conv.test_conv_direct import DIRECT_CASES, DIRECT_IDS, geometry_of
from tests.conv.test_conv_direct_channels_last import forward as forward_channels_last

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias): 32+ output channels per
# group, so the tiles of 2 zmm (a pair of packed blocks of 16) run
PAIRED_CASES = [
    (3, 8, 4, 4, 64, 3, 1, 1, 1, 1, True),         # 4x4 3x3: two pairs, 9 pixel groups
    (2, 5, 4, 4, 40, 3, 1, 1, 1, 1, False),        # a pair and a last block of 8
    (2, 4, 4, 4, 48, 5, 1, 2, 1, 1, True),         # 5x5 on 4x4: a pair and one block of 16
    (2, 6, 8, 8, 33, 5, 1, 2, 1, 1, True),         # 5x5 on 8x8: a pair and 1 channel left
    (7, 4, 4, 4, 32, 3, 1, 1, 1, 1, True),         # points of 7 images: tiles of 8, 6 and 4
    (2, 8, 6, 5, 64, 3, 2, 1, 2, 2, True),         # grouped (32 per group), strided, dilated
    (1, 3, 5, 7, 57, (2, 3), 1, (1, 0), 1, 1, True),  # uneven kernel, 57 = 32 + 16 + 8 + 1
]
PAIRED_IDS = [f"paired{i}" for i in range(len(PAIRED_CASES))]
ALL_CASES = DIRECT_CASES + PAIRED_CASES
ALL_IDS = DIRECT_IDS + PAIRED_IDS


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (None off Linux)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def has_avx512():
    return kernels.use_cpu_avx2(True) and kernels.use_cpu_avx512(1)


@pytest.fixture
def avx512_or_avx2(direct):
    """``pick(on)``: the float32 direct forward on the AVX-512 tiles for every shape (on)
    or on the AVX2 tiles (off); back to the automatic mode after.  Skips without AVX-512."""
    if not has_avx512():
        pytest.skip("this CPU has no AVX-512F+VL (or no AVX2): only the AVX2 tiles run")

    def pick(on):
        assert kernels.use_cpu_avx512(2 if on else 0) == on

    try:
        yield pick
    finally:
        kernels.use_cpu_avx512(1)


def on_both(pick, compute):
    """``compute()`` on the AVX-512 tiles, then on the AVX2 ones."""
    pick(True)
    wide = compute()
    pick(False)
    return wide, compute()


def test_the_cpu_test_matches_the_cpu_flags():
    """Picked exactly when the CPU reports avx512f and avx512vl (and AVX2 is in use)."""
    flags = cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo to compare with")
    try:
        avx2 = kernels.use_cpu_avx2(True)
        want = avx2 and {"avx512f", "avx512vl"} <= flags
        assert kernels.use_cpu_avx512(1) == want
        assert not kernels.use_cpu_avx512(0)
        assert kernels.use_cpu_avx512(2) == want
        assert not kernels.use_cpu_avx2(False)  # the baseline build: no AVX-512 either
        assert not kernels.direct_avx512_runs(64, 25, 16)
    finally:
        kernels.use_cpu_avx2(True)
        kernels.use_cpu_avx512(1)


def test_the_automatic_mode_takes_the_measured_shapes():
    """Mode 1: 3x3 and 5x5 with 32+ output channels on up to 16 output pixels; AVX2
    elsewhere."""
    if not has_avx512():
        pytest.skip("this CPU has no AVX-512F+VL")
    assert kernels.direct_avx512_runs(64, 25, 16)      # 5x5 on 4x4
    assert kernels.direct_avx512_runs(256, 25, 16)
    assert kernels.direct_avx512_runs(256, 9, 16)      # 3x3 on 4x4
    assert kernels.direct_avx512_runs(32, 9, 16)
    assert not kernels.direct_avx512_runs(256, 9, 64)  # 3x3 on 8x8: no robust gain
    assert not kernels.direct_avx512_runs(256, 4, 16)  # 2x2: not measured
    assert not kernels.direct_avx512_runs(64, 25, 64)  # 5x5 on 8x8: neither
    assert not kernels.direct_avx512_runs(16, 25, 16)  # one block of 16: slower
    assert not kernels.direct_avx512_runs(32, 25, 256)  # 16x16
    assert not kernels.direct_avx512_runs(16, 25, 100)  # LeNet's conv2
    try:
        kernels.use_cpu_avx512(2)
        assert kernels.direct_avx512_runs(16, 25, 100)
        kernels.use_cpu_avx512(0)
        assert not kernels.direct_avx512_runs(64, 25, 16)
    finally:
        kernels.use_cpu_avx512(1)


def test_use_cpu_avx512_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="use_cpu_avx512: mode must be 0, 1 or 2"):
        kernels.use_cpu_avx512(3)


def test_the_forced_mode_runs_the_shapes_tested_here(avx512_or_avx2):
    """Mode 2 sends each case below to the AVX-512 tiles, mode 0 to AVX2 (the comparisons
    below test something only then)."""
    for case in ALL_CASES:
        x, w, b, kw = make(case)
        geometry = geometry_of(x, w, **kw)
        args = w.shape[0] // kw["groups"], w.shape[2] * w.shape[3], geometry.Ho * geometry.Wo
        avx512_or_avx2(True)
        assert kernels.direct_avx512_runs(*args)
        avx512_or_avx2(False)
        assert not kernels.direct_avx512_runs(*args)


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_avx512_gives_the_avx2_bits(case, layout, avx512_or_avx2):
    x, w, b, kw = make(case, np.float32, seed=11)
    run = forward if layout == "nchw" else forward_channels_last
    wide, narrow = on_both(avx512_or_avx2, lambda: run(x, w, b, **kw))
    np.testing.assert_array_equal(wide, narrow)


@pytest.mark.parametrize("case", PAIRED_CASES, ids=PAIRED_IDS)
def test_avx512_matches_loop_reference(case, avx512_or_avx2):
    """float32 on the AVX-512 tiles as the float64 loop reference, to float32's rounding."""
    x, w, b, kw = make(case, np.float32, seed=3)
    avx512_or_avx2(True)
    got = forward(x, w, b, **kw)
    want = reference(x.astype(np.float64), w.astype(np.float64),
                     None if b is None else b.astype(np.float64), **kw)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("case", ALL_CASES, ids=ALL_IDS)
def test_avx512_one_and_two_threads_are_bit_identical(case, avx512_or_avx2):
    avx512_or_avx2(True)
    check_one_and_two_threads_bit_identical(case, np.float32)


def fma_chain(x, w, b, padding):
    """conv2d (stride 1, square ``padding``) as the direct kernel documents it: per output
    one float32 sum from +0 over its real products in (c, ki, kj) order, each step rounded
    once, then one add of the bias.  Integer inputs small enough that every product and
    partial sum is exact in float64, so rounding there to float32 is the fma's rounding."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    Ho, Wo = H + 2 * padding - kh + 1, W + 2 * padding - kw + 1
    padded = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    padded[:, :, padding:padding + H, padding:padding + W] = x
    inside = np.zeros((H + 2 * padding, W + 2 * padding), bool)
    inside[padding:padding + H, padding:padding + W] = True
    acc = np.zeros((N, O, Ho, Wo), np.float32)
    for c in range(C):
        for ki in range(kh):
            for kj in range(kw):
                window = padded[:, c, ki:ki + Ho, kj:kj + Wo]
                real = inside[ki:ki + Ho, kj:kj + Wo]  # taps in the padding are skipped
                step = (np.float64(w[:, c, ki, kj])[None, :, None, None] * window[:, None]
                        + acc.astype(np.float64)).astype(np.float32)
                acc = np.where(real, step, acc)
    return acc + b[None, :, None, None]


@pytest.mark.parametrize("out_channels, k, H", [(40, 3, 4), (48, 5, 4), (64, 5, 8)])
def test_avx512_rounds_each_step_once_in_channel_tap_order(out_channels, k, H,
                                                           avx512_or_avx2):
    rng = np.random.default_rng(12)
    x = rng.integers(-2 ** 20, 2 ** 20, (3, 5, H, H)).astype(np.float32)
    w = rng.integers(-2 ** 12, 2 ** 12, (out_channels, 5, k, k)).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    avx512_or_avx2(True)
    np.testing.assert_array_equal(forward(x, w, b, padding=k // 2),
                                  fma_chain(x, w, b, k // 2))


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_avx512_carries_a_non_finite_input(value, avx512_or_avx2):
    avx512_or_avx2(True)
    check_direct_carries_a_non_finite_input(forward, value)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_avx512_gives_the_avx2_bits_with_inf_and_nan_inputs(layout, avx512_or_avx2):
    """inf, -inf and NaN (and inf - inf) spread through 40 channels the same way."""
    x, w, b, kw = make(PAIRED_CASES[1], np.float32, seed=13)
    x[0, 1, 0, 0], x[1, 2, 3, 3], x[1, 4, 1, 2], x[0, 3, 2, 1] = np.inf, -np.inf, np.nan, -np.inf
    x[0, 0, 2, 1] = np.inf
    run = forward if layout == "nchw" else forward_channels_last
    wide, narrow = on_both(avx512_or_avx2, lambda: run(x, w, b, **kw))
    assert np.isnan(wide).any() and np.isinf(wide).any() and np.isfinite(wide).any()
    np.testing.assert_array_equal(wide, narrow)
