"""conv2d's direct forward kernel (minipool/_kernels/conv2d_direct.h).

``use_direct(2)`` puts every forward with a finite weight on it (``0``: never, ``1``:
where it measured faster).  Checked against the loop reference in
``tests/references/conv_reference.py``, PyTorch, the register tiles bit for bit (the
same sums, less the products with padding zeros), 1 vs 2 threads and the baseline vs
the AVX2 build bit for bit, on shapes whose output channels end inside a block of 8 or
16, whose pixel groups (same taps inside the plane) end inside a tile of 6 or 12
points, and whose images share tiles.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minipool._kernels import conv2d as kernels
from minipool.ops import conv as conv_module
from tests.conv.conv_checks import (check_automatic_direct_choice,
                                    check_avx2_and_baseline_builds_agree,
                                    check_direct_carries_a_non_finite_input,
                                    check_forward_matches_torch_float32,
                                    check_matches_loop_reference,
                                    check_non_finite_weight_meets_the_padding,
                                    check_random_geometry, forward, forward_result, make,
                                    reference, run)
from tests.conv.test_conv import check_one_and_two_threads_bit_identical

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
DIRECT_CASES = [
    (3, 5, 4, 4, 7, 3, 1, 1, 1, 1, True),          # 4x4, 3x3 pad 1: 9 pixel groups, 7 channels
    (5, 4, 4, 4, 17, 5, 1, 2, 1, 1, True),         # 5x5 pad 2: a block of 16 and one of 8
    (2, 6, 14, 14, 16, 5, 1, 0, 1, 1, True),       # LeNet's conv2: one group of 100 pixels
    (1, 3, 7, 11, 9, 2, 1, 2, 1, 1, False),        # 2x2 pad 2: corner pixels with no tap at all
    (2, 4, 9, 13, 33, 3, 2, 1, 1, 1, True),        # stride 2, 33 channels: 16 + 16 + 8 (1 real)
    (2, 6, 8, 8, 12, 3, 1, 2, 2, 2, True),         # dilated and grouped
    (4, 2, 3, 5, 8, (2, 3), (1, 2), (1, 0), 1, 1, True),  # uneven kernel and stride
    (1, 1, 6, 6, 1, 1, 1, 0, 1, 1, True),          # 1x1 kernel, one channel each way
    (13, 4, 4, 4, 9, 3, 1, 1, 1, 1, True),         # calls of 6 images: 6 + 6 + 1
    (14, 5, 4, 4, 5, 3, 1, 1, 1, 1, False),        # calls of 12 images (8 or fewer channels)
]
DIRECT_IDS = [f"direct{i}" for i in range(len(DIRECT_CASES))]


def geometry_of(x, w, stride, padding, dilation, groups):
    """conv_module's ConvGeometry for symmetric int-pair arguments (the cases above)."""
    two = lambda v: (v, v) if np.isscalar(v) else tuple(v)  # noqa: E731
    (sh, sw), (ph, pw), (dh, dw) = two(stride), two(padding), two(dilation)
    kh, kw = w.shape[2:]
    Ho = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return conv_module.ConvGeometry(kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, groups)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
def test_direct_runs_these_cases(case, direct):
    """The cases below test the direct kernel only if it takes them."""
    x, w, b, kw = make(case)
    assert kernels.uses_direct(x.shape[1], x.shape[2], x.shape[3], w.shape[0],
                               geometry_of(x, w, **kw), True)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
def test_direct_matches_loop_reference(case, direct):
    check_matches_loop_reference(case, tol=1e-11)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
def test_direct_matches_torch_float32(case, direct):
    check_forward_matches_torch_float32(case, forward, atol_scales_with_output=False)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_gives_the_tiles_bits(case, dtype):
    """The same fma chain per output, without the padding's products (which add exactly
    nothing for a finite weight): bit for bit the tiles' result."""
    x, w, b, kw = make(case, dtype, seed=4)
    previous = kernels.use_direct(2), kernels.use_tiles(2)
    try:
        on_direct = forward(x, w, b, **kw)
        kernels.use_direct(0)
        on_tiles = forward(x, w, b, **kw)
    finally:
        kernels.use_direct(previous[0])
        kernels.use_tiles(previous[1])
    np.testing.assert_array_equal(on_direct, on_tiles)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_one_and_two_threads_are_bit_identical(case, dtype, direct):
    check_one_and_two_threads_bit_identical(case, dtype)


@pytest.mark.parametrize("case", DIRECT_CASES, ids=DIRECT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_baseline_and_avx2_builds_give_the_same_bits(case, dtype, direct):
    check_avx2_and_baseline_builds_agree(case, dtype, forward_result)


def test_direct_rounds_each_step_once_in_channel_tap_order(direct):
    """Bit for bit the documented sum with padding 1 (its taps skipped).  Integers below
    2**20 and 2**12: every product and partial sum is exact in float64, so rounding
    each step to float32 there is the fma's one rounding."""
    rng = np.random.default_rng(9)
    x = rng.integers(-2 ** 20, 2 ** 20, (3, 5, 4, 6)).astype(np.float32)
    w = rng.integers(-2 ** 12, 2 ** 12, (11, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(11).astype(np.float32)
    N, C, H, W = x.shape
    want = np.empty((N, 11, H, W), np.float32)
    for n in range(N):
        for o in range(11):
            for i in range(H):
                for j in range(W):
                    acc = np.float32(0)
                    for c in range(C):
                        for ki in range(3):
                            for kj in range(3):
                                h, v = i + ki - 1, j + kj - 1
                                if 0 <= h < H and 0 <= v < W:
                                    exact = np.float64(w[o, c, ki, kj]) * np.float64(x[n, c, h, v])
                                    acc = np.float32(exact + np.float64(acc))
                    want[n, o, i, j] = acc + b[o]
    np.testing.assert_array_equal(forward(x, w, b, padding=1), want)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_direct_carries_a_non_finite_input(value, direct):
    check_direct_carries_a_non_finite_input(forward, value)


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_a_non_finite_weight_meets_the_padding(value, direct):
    """0 * inf is NaN: the padding must meet such a weight, so it takes the tiles or
    BLAS, which multiply the padding's zeros (the border outputs become NaN)."""
    check_non_finite_weight_meets_the_padding(forward, value)


@pytest.mark.parametrize("shape,out_channels,k,pad,on_direct", [
    ((64, 6, 14, 14), 16, 5, 0, True),      # LeNet's conv2: rows of 10 pixels
    ((64, 256, 4, 4), 256, 3, 1, True),     # 4x4 planes
    ((64, 64, 4, 4), 64, 5, 2, True),
    ((64, 64, 8, 8), 128, 3, 1, True),      # 8x8 planes
    ((64, 16, 16, 16), 32, 5, 2, True),     # 16x16, 5x5, 8+ in and 16+ out channels
    ((64, 16, 16, 16), 8, 5, 2, False),     # 16x16 onto 8 channels: the tiles
    ((64, 32, 16, 16), 64, 3, 1, "rows"),   # 3x3 on 16x16: the AVX-512 row tiles only
    ((64, 1, 32, 32), 6, 5, 0, False),      # first layers: tiles or BLAS
    ((64, 3, 32, 32), 32, 3, 1, False),
])
def test_automatic_choice_is_the_measured_one(shape, out_channels, k, pad, on_direct):
    check_automatic_direct_choice(kernels.uses_direct, shape, out_channels, k, pad, on_direct)


def test_use_direct_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="use_direct: mode"):
        kernels.use_direct(3)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), groups=st.sampled_from([1, 2]), cpg=st.integers(1, 3),
       opg=st.integers(1, 18), H=st.integers(1, 9), W=st.integers(1, 12),
       k=st.integers(1, 5), stride=st.integers(1, 2), pad=st.integers(0, 3),
       dilation=st.integers(1, 2), ties=st.booleans(),
       special=st.sampled_from([None, np.inf, -np.inf, np.nan]), seed=st.integers(0, 99))
def test_random_geometry_on_direct_matches_reference(N, groups, cpg, opg, H, W, k, stride, pad,
                                                     dilation, ties, special, seed):
    """Any geometry, small integer values (ties: equal products and sums) or one inf/NaN in
    the input: forward and gradients as the loop reference."""
    check_random_geometry(kernels.use_direct, N, groups, cpg, opg, H, W, k, stride, pad, dilation, ties,
                          special, seed)


@pytest.mark.parametrize("shape, out_channels, k, pad, stride, on_direct", [
    ((64, 8, 16, 16), 16, 5, 2, 1, True),    # 5x5 on 16x16: the padding's taps skipped
    ((64, 64, 16, 16), 32, 5, 2, 1, True),
    ((64, 4, 16, 16), 16, 5, 2, 1, "rows"),  # 4 channels: the tiles, or the row tiles
    ((64, 32, 16, 16), 64, 3, 1, 1, "rows"),  # 3x3 on 16x16: as 4 channels (not AVX2's)
    ((64, 16, 32, 32), 16, 5, 2, 1, "rows"),  # 32x32 planes: the tiles, or the row tiles
    ((64, 16, 32, 32), 16, 5, 2, 2, False),  # stride 2 onto 16x16: not measured, not taken
])
def test_automatic_choice_on_16x16_planes(shape, out_channels, k, pad, stride, on_direct):
    N, C, H, W = shape
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    geometry = conv_module.ConvGeometry(k, k, stride, stride, pad, pad, 1, 1, Ho, Wo, 1)
    previous = kernels.use_direct(1), kernels.use_tiles(1)
    avx2 = kernels.use_cpu_avx2(True)
    if on_direct == "rows":  # only where the AVX-512 or the AVX2 row tiles run
        on_direct = (kernels.direct_rows_run(C, H, W, out_channels, geometry)
                     or kernels.direct_rows_run(C, H, W, out_channels, geometry, avx2=True))
    try:
        assert kernels.uses_direct(C, H, W, out_channels, geometry) == (on_direct and avx2)
        assert not kernels.uses_direct(C, H, W, out_channels, geometry, True)  # float64
    finally:
        kernels.use_direct(previous[0])
        kernels.use_tiles(previous[1])


def test_16x16_5x5_on_direct_gives_the_tiles_bits_and_torch_values():
    """The automatic choice (direct) against the tiles and PyTorch on a 16x16 5x5 layer."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((16, 8, 5, 5)) * 0.1).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    previous = kernels.use_direct(1)
    try:
        automatic = forward(x, w, b, padding=2)
        kernels.use_direct(0)
        on_tiles = forward(x, w, b, padding=2)
    finally:
        kernels.use_direct(previous)
    np.testing.assert_array_equal(automatic, on_tiles)
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b),
                                      padding=2).numpy()
    np.testing.assert_allclose(automatic, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("N, C, H, O, k, pad, bias", [
    (7, 6, 14, 16, 5, 0, True),    # LeNet's conv2: rows of 10, runs of 6 pixels in a row
    (7, 6, 14, 16, 5, 0, False),
    (3, 8, 16, 20, 5, 2, True),    # 16x16: a full block of 16 (runs) and one of 4 (scalar)
    (2, 4, 12, 32, 3, 1, False),   # 12x12: runs across two blocks
])
@pytest.mark.parametrize("avx2", [True, False])
def test_direct_output_runs_give_the_tiles_bits(N, C, H, O, k, pad, bias, avx2):
    """Tiles whose 6 points are one run of an output row are stored transposed in
    registers (AVX2, outputs of 100+ pixels): the same bits as the tiles, bias or not,
    and as the baseline build's scalar stores."""
    rng = np.random.default_rng(N * 100 + O)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((O, C, k, k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32) if bias else None
    previous = kernels.use_direct(2), kernels.use_tiles(2)
    try:
        kernels.use_cpu_avx2(avx2)
        on_direct = forward(x, w, b, padding=pad)
        kernels.use_direct(0)  # every product on the tiles
        kernels.use_cpu_avx2(True)
        on_tiles = forward(x, w, b, padding=pad)
    finally:
        kernels.use_direct(previous[0])
        kernels.use_tiles(previous[1])
        kernels.use_cpu_avx2(True)
    np.testing.assert_array_equal(on_direct, on_tiles)
    want = reference(x.astype(np.float64), w.astype(np.float64),
                     None if b is None else b.astype(np.float64), stride=1, padding=pad,
                     dilation=1, groups=1)[0]
    np.testing.assert_allclose(on_direct, want, rtol=1e-4, atol=1e-4)


def test_direct_on_16x16_planes_with_5x5_kernels_gives_the_tiles_bits():
    """16->32 5x5 on 16x16 runs its forward and its input gradient (a forward 32->16)
    on the direct kernel: the same bits as on the tiles, and the reference's values."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 16, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 5, 5)) * 0.1).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    geometry = conv_module.ConvGeometry(5, 5, 1, 1, 2, 2, 1, 1, 16, 16, 1)
    flipped = conv_module.ConvGeometry(5, 5, 1, 1, 2, 2, 1, 1, 16, 16, 1)
    avx2 = kernels.use_cpu_avx2(True)
    assert kernels.uses_direct(16, 16, 16, 32, geometry) == avx2
    assert kernels.uses_direct(32, 16, 16, 16, flipped) == avx2
    direct = run(x, w, b, dict(padding=2))
    previous = kernels.use_direct(0)
    try:
        tiles = run(x, w, b, dict(padding=2))
    finally:
        kernels.use_direct(previous)
    for name, got, want in zip(["out", "grad_x", "grad_w", "grad_b"], direct, tiles):
        np.testing.assert_array_equal(got, want, err_msg=name)
    want = reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, 2, 1, 1,
                     grad_out=direct[4].astype(np.float64))
    for name, got, ref in zip(["out", "grad_x", "grad_w", "grad_b"], direct, want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3, err_msg=name)


@pytest.mark.parametrize("N, C, H, O, k, pad, bias", [
    (7, 5, 4, 40, 3, 1, True),     # K = 45 (packed 4 by 4, one left), 16 + 16 + 8 or 32 + 8
    (13, 3, 8, 17, 5, 2, False),   # 64 pixels, calls of 6 + 6 + 1 images: tiles of 4 points
    (5, 6, 6, 24, 3, 1, True),     # 36 pixels, a block of 16 and one of 8
    (14, 4, 4, 5, 3, 1, True),     # one block of 8: calls of 12 + 2 images, tiles of 8 points
])
@pytest.mark.parametrize("avx512", [0, 2])
def test_direct_scratch_stores_and_remainder_tiles_give_the_tiles_bits(N, C, H, O, k, pad, bias,
                                                                       avx512):
    """float32 NCHW outputs of up to 64 pixels leave the direct tiles through a scratch of
    whole vectors (AVX2 and AVX-512 builds), a group's last few points run in smaller
    tiles, the weight is packed 4 by 4: bit for bit the tiles' result, the reference's
    values."""
    rng = np.random.default_rng(N * 100 + O)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = (rng.standard_normal((O, C, k, k)) * 0.3).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32) if bias else None
    previous = kernels.use_direct(2), kernels.use_tiles(2), kernels.use_cpu_avx512(1)
    try:
        kernels.use_cpu_avx512(avx512)
        on_direct = forward(x, w, b, padding=pad)
        kernels.use_direct(0)
        on_tiles = forward(x, w, b, padding=pad)
    finally:
        kernels.use_direct(previous[0])
        kernels.use_tiles(previous[1])
        kernels.use_cpu_avx512(1)
    np.testing.assert_array_equal(on_direct, on_tiles)
    want = reference(x.astype(np.float64), w.astype(np.float64),
                     None if b is None else b.astype(np.float64), stride=1, padding=pad,
                     dilation=1, groups=1)[0]
    np.testing.assert_allclose(on_direct, want, rtol=1e-4, atol=1e-4)
