"""conv2d's Winograd F(2x2, 3x3) forward engine (minipool/_kernels/conv2d_winograd.h).

``use_winograd(2)`` puts every float32 3x3, stride-1, dilation-1, one-group forward on
it (``0``: never, ``1``: where it measured faster).  Its sums are not the direct
products' (the transforms mix a 4x4 patch), so it is checked against a loop reference of
its own here (float64, the direct definition, no transforms) within a rounding bound,
against PyTorch, for bits that do not depend on the thread count, the chunking or the
build, and for falling back to the other engines wherever an inf or NaN (or an
overflow) would make its mixing differ from the direct sums.
"""
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from minipool.ops import conv as conv_module
from tests.conv.conv_checks import (check_avx2_and_baseline_builds_agree,
                                    check_forward_matches_torch_float32, forward, forward_result)
from tests.helpers import with_threads

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
WINOGRAD_CASES = [
    (3, 5, 7, 9, 7, 3, 1, 1, 1, 1, True),          # odd plane: a half tile on the right and bottom
    (2, 16, 4, 4, 16, 3, 1, 1, 1, 1, False),       # 4x4: 2x2 tiles
    (4, 17, 11, 13, 13, 3, 1, 2, 1, 1, True),      # padding 2, odd channel counts
    (5, 3, 6, 5, 10, 3, 1, 0, 1, 1, True),         # no padding: 4x3 output
    (1, 2, 3, 3, 1, 3, 1, 0, 1, 1, False),         # one output pixel: one tile, 3 of 4 dropped
    (9, 8, 20, 19, 33, 3, 1, 1, 1, 1, True),       # tile rows of 10 (a vector + 2), 33 channels
    (2, 40, 2, 17, 6, 3, 1, (2, 1), 1, 1, True),   # uneven padding, a plane of 2 rows
    (64, 6, 4, 4, 5, 3, 1, 1, 1, 1, True),         # chunks of 16 images, 8 a vector
    (12, 4, 10, 10, 7, 3, 1, 1, 1, 1, False),      # tile rows of 5: chunks of 3 images by rows
]
WINOGRAD_IDS = [f"winograd{i}" for i in range(len(WINOGRAD_CASES))]

# the 3x3 rows of benchmarks/bench_conv.py's sweep (batch 2 here: the sums do not depend on it)
SWEEP_3X3 = [(2, 3, 32, 32, 32), (2, 32, 16, 16, 64), (2, 64, 8, 8, 128), (2, 1, 28, 28, 16),
             (2, 16, 32, 32, 16), (2, 32, 32, 32, 32), (2, 128, 8, 8, 128),
             (2, 128, 4, 4, 256), (2, 256, 4, 4, 256)]
EPS32 = float(np.finfo(np.float32).eps) / 2  # the unit roundoff u


@contextmanager
def winograd_mode(mode):
    previous = kernels.use_winograd(mode)
    try:
        yield
    finally:
        kernels.use_winograd(previous)


@pytest.fixture
def winograd():
    """Every forward the engine can take on it."""
    with winograd_mode(2):
        yield


def padding_pair(padding):
    return (padding, padding) if np.isscalar(padding) else tuple(padding)


def make32(case, seed=0, kernel=3):
    N, C, H, W, O, k, s, p, d, g, bias = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((O, C, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32) if bias else None
    return x, w, b, p


def loop_reference(x, w, b, padding):
    """The direct definition in float64 (a k x k kernel), one tap and channel at a time:
    out[n, o, i, j] = b[o] + sum over c, ki, kj of w[o, c, ki, kj] * x[n, c, i + ki - ph,
    j + kj - pw]."""
    (ph, pw), (N, C, H, W), (O, _, k, _) = padding_pair(padding), x.shape, w.shape
    Ho, Wo = H + 2 * ph - k + 1, W + 2 * pw - k + 1
    padded = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    padded[:, :, ph:ph + H, pw:pw + W] = x
    out = np.zeros((N, O, Ho, Wo))
    for o in range(O):
        for c in range(C):
            for ki in range(k):
                for kj in range(k):
                    out[:, o] += float(w[o, c, ki, kj]) * padded[:, c, ki:ki + Ho, kj:kj + Wo]
        if b is not None:
            out[:, o] += float(b[o])
    return out


def rounding_bound(x, w, b, padding):
    """A bound on |Winograd in float32 - exact|, per output (first order in u).

    An output of tile (i, j) is y = sum over 9 (a, k) of +-M[a, k], M = sum over c of
    U[c] V[c] (one fma chain: relative error <= C u of sum |U| |V|).  |U| <= S_c, the sum of
    |w| over the 3x3 kernel (each entry of U is sum G[a,i] G[b,j] w[i,j], |G| <= 1), and
    |V| <= P_c, the sum of |x| over the tile's 4x4 patch (each row of B^T has two entries
    of magnitude 1).  The transforms add at most 2 (input), 4 (weight) and 5 (output and
    bias) roundings to each term: so |error| <= 9 (C + 11) u sum_c S_c P_c + u |b|.  Loose
    (the real error is ~100x smaller) but a wrong tile, tap or channel is O(1) off."""
    (ph, pw), (N, C, H, W) = padding_pair(padding), x.shape
    Ho, Wo = H + 2 * ph - 2, W + 2 * pw - 2
    th, tw = (Ho + 1) // 2, (Wo + 1) // 2
    padded = np.zeros((N, C, 2 * th + 2, 2 * tw + 2))
    rows, cols = min(H, 2 * th + 2 - ph), min(W, 2 * tw + 2 - pw)
    padded[:, :, ph:ph + rows, pw:pw + cols] = np.abs(x[:, :, :rows, :cols])
    patch = np.zeros((N, C, th, tw))
    for r in range(4):
        for q in range(4):
            patch += padded[:, :, r:r + 2 * th:2, q:q + 2 * tw:2]
    weight_sums = np.abs(w.astype(np.float64)).sum(axis=(2, 3))  # (O, C)
    per_tile = np.einsum("oc,nctu->notu", weight_sums, patch)
    per_pixel = np.repeat(np.repeat(per_tile, 2, axis=2), 2, axis=3)[:, :, :Ho, :Wo]
    bias = 0 if b is None else np.abs(b.astype(np.float64))[None, :, None, None]
    return 9 * (C + 11) * EPS32 * per_pixel + EPS32 * bias


def check_within_bound(x, w, b, padding):
    got = forward(x, w, b, padding=padding)
    want = loop_reference(x, w, b, padding)
    excess = np.abs(got - want) - rounding_bound(x, w, b, padding)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert excess.max() <= 0, f"worst output {np.unravel_index(excess.argmax(), excess.shape)}"


def geometry_of(x, padding):
    ph, pw = padding_pair(padding)
    return conv_module.ConvGeometry(3, 3, 1, 1, ph, pw, 1, 1, x.shape[2] + 2 * ph - 2,
                                    x.shape[3] + 2 * pw - 2, 1)


@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=WINOGRAD_IDS)
def test_winograd_takes_these_cases(case, winograd):
    """The cases test the engine only if it takes them (float64 never does)."""
    x, w, b, p = make32(case)
    args = (x.shape[1], x.shape[2], x.shape[3], w.shape[0], geometry_of(x, p))
    assert kernels.uses_winograd(*args) and not kernels.uses_winograd(*args, float64=True)


@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=WINOGRAD_IDS)
def test_winograd_within_rounding_of_loop_reference(case, winograd):
    check_within_bound(*make32(case))


@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=WINOGRAD_IDS)
def test_winograd_differs_from_direct_sums(case):
    """Not a tautology: the engine's bits are its own (the direct sums round differently)
    on at least some outputs of a case with several channels."""
    x, w, b, p = make32(case)
    with winograd_mode(2):
        on_winograd = forward(x, w, b, padding=p)
    with winograd_mode(0):
        direct = forward(x, w, b, padding=p)
    np.testing.assert_allclose(on_winograd, direct, rtol=1e-4, atol=1e-4)
    if x.shape[1] >= 5:
        assert (on_winograd != direct).any()


@pytest.mark.parametrize("shape", SWEEP_3X3, ids=[f"sweep{i}" for i in range(len(SWEEP_3X3))])
@pytest.mark.parametrize("mode", [1, 2])
def test_winograd_matches_torch_on_the_sweep(shape, mode):
    """PyTorch's parity (rtol 1e-5, atol 1e-5 x max|out|) with the engine where it is
    picked (mode 1) and everywhere (mode 2)."""
    N, C, H, W, O = shape
    with winograd_mode(mode):
        check_forward_matches_torch_float32((N, C, H, W, O, 3, 1, 1, 1, 1, True), forward,
                                            atol_scales_with_output=True)


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 9), C=st.integers(1, 40), O=st.integers(1, 40),
       H=st.integers(1, 20), W=st.integers(1, 20), ph=st.integers(0, 2), pw=st.integers(0, 2),
       bias=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_winograd_random_geometry(N, C, O, H, W, ph, pw, bias, seed):
    if H + 2 * ph < 3 or W + 2 * pw < 3:
        return  # no output pixel: the argument checks' business
    case = (N, C, H, W, O, 3, 1, (ph, pw), 1, 1, bias)
    with winograd_mode(2):
        check_within_bound(*make32(case, seed))


def test_winograd_adversarial_values_within_bound(winograd):
    """Values over 12 orders of magnitude, 256 channels: the bound still holds."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((2, 256, 6, 6)) * 10.0 ** rng.integers(-6, 6, (2, 256, 6, 6)))
    w = (rng.standard_normal((8, 256, 3, 3)) * 10.0 ** rng.integers(-6, 6, (8, 256, 3, 3)))
    check_within_bound(x.astype(np.float32), w.astype(np.float32), None, 1)


@pytest.mark.parametrize("case", WINOGRAD_CASES[:6], ids=WINOGRAD_IDS[:6])
def test_winograd_one_and_two_threads_bit_identical(case, winograd):
    x, w, b, p = make32(case, seed=5)
    one, two = (with_threads(t, lambda: forward(x, w, b, padding=p)) for t in (1, 2))
    np.testing.assert_array_equal(one, two)


def test_winograd_bits_do_not_depend_on_the_chunking(winograd):
    """A batch of 64 goes in chunks of 16 images of 4x4 (4 tiles each), 3 images in one
    chunk: each image's output is the same bits alone as in either batch."""
    x, w, b, p = make32((64, 12, 4, 4, 20, 3, 1, 1, 1, 1, True), seed=8)
    batch = forward(x, w, b, padding=p)
    np.testing.assert_array_equal(forward(x[:3], w, b, padding=p), batch[:3])
    for n in (0, 17, 63):
        np.testing.assert_array_equal(forward(x[n:n + 1], w, b, padding=p), batch[n:n + 1])


@pytest.mark.parametrize("case", WINOGRAD_CASES[:3], ids=WINOGRAD_IDS[:3])
def test_winograd_avx2_and_baseline_builds_agree(case, winograd):
    check_avx2_and_baseline_builds_agree(case, np.float32, forward_result)


def forward_both_ways(x, w, b, padding):
    with winograd_mode(2):
        on_winograd = forward(x, w, b, padding=padding)
    with winograd_mode(0):
        direct = forward(x, w, b, padding=padding)
    return on_winograd, direct


@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_winograd_non_finite_values_fall_back(where, value):
    """inf - inf in a transform would turn outputs that never see the inf into NaN: an
    inf or NaN in the input or the weight gives the other engines' result, bit for bit,
    with the same non-finite pattern."""
    x, w, b, p = make32((3, 6, 9, 8, 7, 3, 1, 1, 1, 1, True), seed=9)
    (x if where == "input" else w)[1, 2, 1, 1] = value
    on_winograd, direct = forward_both_ways(x, w, b, p)
    np.testing.assert_array_equal(on_winograd, direct)
    assert np.isfinite(direct).any() and not np.isfinite(direct).all()


def test_winograd_overflow_falls_back():
    """Huge finite values can overflow inside the transforms (sums of 4 inputs) where the
    direct sums do not: the whole call then runs on the other engines."""
    x, w, b, p = make32((2, 4, 6, 6, 3, 3, 1, 1, 1, 1, False), seed=10)
    x[0, 1, 2:4, 2:4] = 3e38
    w[:] = np.abs(w) * 1e-3
    on_winograd, direct = forward_both_ways(x, w, b, p)
    np.testing.assert_array_equal(on_winograd, direct)
    assert np.isfinite(direct).all()


def test_winograd_input_gradient_on_the_engine():
    """A stride-1 3x3 input gradient runs as a forward convolution (conv.py's
    ``_input_grad_on_tiles``): with the engine forced on, it still matches the loop
    reference's input gradient (the adjoint, computed here from its definition)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 9, 7, 6)).astype(np.float32)
    w = rng.standard_normal((11, 9, 3, 3)).astype(np.float32)
    g = rng.standard_normal((3, 11, 7, 6)).astype(np.float32)
    with winograd_mode(2):
        xt = mp.tensor(x, requires_grad=True)
        F.conv2d(xt, mp.tensor(w), None, padding=1).backward(g)
    # grad_x = the correlation of g (padded by 1) with the flipped, transposed weight
    want = loop_reference(g, np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)),
                          None, 1)
    bound = rounding_bound(g, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), None, 1)
    assert (np.abs(xt.grad.numpy() - want) <= bound).all()


def test_use_winograd_switch_restores_and_checks():
    previous = kernels.use_winograd(0)
    try:
        assert kernels.use_winograd(2) == 0
        assert kernels.use_winograd(1) == 2
        with pytest.raises(ValueError, match="use_winograd"):
            kernels.use_winograd(3)
    finally:
        kernels.use_winograd(previous)
    assert previous == 1  # the default: where it measured faster


def test_use_winograd_zero_keeps_the_direct_bits():
    """Mode 0 gives exactly what the engines before it give (the tiles, forced)."""
    x, w, b, p = make32((2, 32, 8, 8, 32, 3, 1, 1, 1, 1, True), seed=13)
    with winograd_mode(0):
        off = forward(x, w, b, padding=p)
    previous = kernels.use_tiles(2), kernels.use_direct(0)
    try:
        with winograd_mode(0):
            tiles = forward(x, w, b, padding=p)
    finally:
        kernels.use_tiles(previous[0]), kernels.use_direct(previous[1])
    np.testing.assert_array_equal(off, tiles)


# The weight's transform runs in pieces of 12 channels that the chunks share out in the
# same launch; a piece starts on a panel of the packed weight (6 channels, 4 near the end).
def kernel_forward(x, w, b, threads, load_team):
    """conv2d_forward at the kernel level (padding 1), with the plan conv2d uses."""
    N, C, H, W = x.shape
    geometry = geometry_of(x, 1)
    block_rows, images, per_thread, _ = kernels.plan_batch(N, C, H, W, w.shape[0], geometry,
                                                          1 << 16, 512, 8)
    out = np.full((N, w.shape[0], H, W), -7.0, np.float32)
    kernels.conv2d_forward(x, np.ascontiguousarray(w.reshape(w.shape[0], -1)), b, out, geometry,
                           block_rows, np.empty((threads, per_thread), np.float32), threads,
                           images, load_team=load_team)
    return out


@pytest.mark.parametrize("O", [49, 50, 62, 97, 98, 110, 13, 14])
def test_winograd_weight_pieces_end_on_panels(O, winograd):
    """Output channel counts whose last 1-2 channels sit in the 4-wide panel before a
    piece boundary (50 = 42 + 4 + 4: no panel starts at 48): within the bound of the loop
    reference (the start build packed channels 48-49 of 50 twice, wrongly)."""
    x, w, b, p = make32((3, 33, 5, 6, O, 3, 1, 1, 1, 1, True), seed=20)
    check_within_bound(x, w, b, p)


@pytest.mark.parametrize("N", [1, 2, 64])
@pytest.mark.parametrize("helper_delay", [0.0, 0.003])
def test_winograd_one_launch_gives_the_same_bits_whoever_transforms(N, helper_delay):
    """A 256->50 weight (22 pieces) transformed by whichever threads claim its pieces, a
    batch of 1 or 2 (fewer image chunks than threads: the other thread only helps with the
    pieces), a helper that joins late: the same bits as one thread, on the team and OpenMP."""
    x, w, b, _ = make32((N, 256, 4, 4, 50, 3, 1, 1, 1, 1, True), seed=21)
    with winograd_mode(2):
        alone = kernel_forward(x, w, b, 1, False)
        kernels.set_load_team_helper_delay(helper_delay)
        try:
            for threads, team in [(2, True), (3, True), (2, False)]:
                np.testing.assert_array_equal(kernel_forward(x, w, b, threads, team), alone,
                                              err_msg=f"{threads} threads, team {team}")
        finally:
            kernels.set_load_team_helper_delay(0)
    check_within_bound(x, w, b, 1)


@pytest.mark.parametrize("team", [False, True])
@pytest.mark.parametrize("channel", [0, 100, 255])
def test_winograd_non_finite_weight_in_any_piece_falls_back(team, channel):
    """A NaN in any piece of the weight: no chunk computes (they wait for every piece),
    the call falls back, and the output is the other engines' (the -7 fill never shows)."""
    x, w, b, _ = make32((8, 64, 4, 4, 256, 3, 1, 1, 1, 1, True), seed=22)
    w[channel, 5, 1, 1] = np.nan
    with winograd_mode(0):
        want = kernel_forward(x, w, b, 1, False)
    with winograd_mode(2):
        got = kernel_forward(x, w, b, 2, team)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[:, channel]).all() and np.isfinite(np.delete(got, channel, axis=1)).all()
