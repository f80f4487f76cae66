"""conv2d's Winograd F(2x2, 5x5) forward engine (minipool/_kernels/conv2d_winograd.h, r = 5).

An opt-in: ``use_winograd_5x5(1)`` puts the float32 5x5, stride-1 forwards where it measured
faster on it, ``2`` every one it can run (the tests), ``0`` (the default) none;
``use_winograd(0)`` turns it off too.  Its sums are not the direct products' (the transforms
mix a 6x6 patch), so it is checked against a float64 loop reference of its own (the direct
definition, no transforms) within a first-order rounding bound, exactly on one-tap kernels
(where any wrong transform constant shows), against PyTorch, for bits that do not depend on
the thread count, the chunking or the build, and for falling back to the other engines
wherever an inf or NaN (or an overflow) would make its mixing differ from the direct sums.
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
from tests.conv.test_conv_winograd import loop_reference, padding_pair
from tests.conv.test_conv_winograd import make32 as make_3x3_or_5x5
from tests.helpers import with_threads

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
CASES = [
    (3, 5, 9, 7, 7, 5, 1, 2, 1, 1, True),          # odd plane: half tiles on the right and bottom
    (2, 16, 16, 16, 32, 5, 1, 2, 1, 1, False),     # tile rows of 8: whole vectors, by rows
    (4, 17, 11, 13, 13, 5, 1, 3, 1, 1, True),      # padding 3, odd channel counts
    (5, 3, 8, 7, 10, 5, 1, 0, 1, 1, True),         # no padding: 4x3 output, by images
    (1, 2, 5, 5, 1, 5, 1, 0, 1, 1, False),         # one output pixel: one tile, 3 of 4 dropped
    (9, 8, 20, 23, 33, 5, 1, 2, 1, 1, True),       # tile rows of 12 (a vector + 4), 33 channels
    (2, 40, 3, 17, 6, 5, 1, (2, 1), 1, 1, True),   # uneven padding, a plane of 3 rows
    (64, 6, 4, 4, 5, 5, 1, 2, 1, 1, True),         # 4x4: chunks of 16 images, 8 a vector
    (12, 4, 10, 10, 7, 5, 1, 1, 1, 1, False),      # tile rows of 4 by images, 3 per chunk
]
IDS = [f"winograd5_{i}" for i in range(len(CASES))]

# the 5x5 rows of benchmarks/bench_conv.py's sweep (batch 2: the sums do not depend on it)
SWEEP_5X5 = [(2, 3, 32, 32, 16), (2, 16, 16, 16, 32), (2, 32, 8, 8, 64), (2, 64, 4, 4, 64)]
EPS32 = float(np.finfo(np.float32).eps) / 2  # the unit roundoff u

# The engine's F(2x2, 5x5) as the header states it (points 0, 1, -1, 1/2, -2, infinity, B^T's
# rows scaled to integers): used for the rounding bound only (magnitudes).
B_T = np.array([[2, -3, -4, 3, 2, 0], [0, -2, 1, 5, 2, 0], [0, 2, -5, 1, 2, 0],
                [0, -2, -1, 2, 1, 0], [0, 1, -2, -1, 2, 0], [0, 2, -3, -4, 3, 2]], float)
G = np.array([[1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [-1, 1, -1, 1, -1], [-16, -8, -4, -2, -1],
              [1, -2, 4, -8, 16], [0, 0, 0, 0, 1]]) / np.array([2, 6, 6, 15, 30, 2.0])[:, None]
A_T = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 0.5, -2, 1]])


@contextmanager
def winograd5_mode(mode):
    previous = kernels.use_winograd_5x5(mode)
    try:
        yield
    finally:
        kernels.use_winograd_5x5(previous)


@pytest.fixture
def winograd5():
    """Every 5x5 forward the engine can take on it."""
    with winograd5_mode(2):
        yield


def make32(case, seed=0):
    return make_3x3_or_5x5(case, seed, kernel=5)


def rounding_bound(x, w, b, padding):
    """A first-order bound on |Winograd in float32 - exact| per output.

    An output of a tile is y = sum over 36 (a, b) of A^T[i, a] A^T[j, b] M[a, b], M = sum
    over c of U_c V_c (one fma chain: error <= C u sum_c |U_c| |V_c|), |U_c| <= |G| |w_c| |G|^T
    and |V_c| <= |B^T| |d_c| |B| elementwise (d_c the tile's 6x6 input patch).  The transforms
    round each value at most 12 (input), 1 (weight, from double) and 12 (output) times more
    on these magnitudes, the bias once: so |error| <= (C + 30) u sum over (a, b) of
    |A^T[i, a]| |A^T[j, b]| sum_c (|G||w_c||G|^T)[a, b] (|B^T||d_c||B|)[a, b] + u |b|."""
    (ph, pw), (N, C, H, W) = padding_pair(padding), x.shape
    Ho, Wo = H + 2 * ph - 4, W + 2 * pw - 4
    th, tw = (Ho + 1) // 2, (Wo + 1) // 2
    padded = np.zeros((N, C, 2 * th + 4, 2 * tw + 4))
    rows, cols = min(H, 2 * th + 4 - ph), min(W, 2 * tw + 4 - pw)
    padded[:, :, ph:ph + rows, pw:pw + cols] = np.abs(x[:, :, :rows, :cols])
    rr = (2 * np.arange(th))[:, None] + np.arange(6)
    cc = (2 * np.arange(tw))[:, None] + np.arange(6)
    patches = padded[:, :, rr[:, None, :, None], cc[None, :, None, :]]  # N C th tw 6 6
    v_bar = np.einsum("ak,nctukl,bl->nctuab", np.abs(B_T), patches, np.abs(B_T), optimize=True)
    u_bar = np.einsum("ai,ocij,bj->ocab", np.abs(G), np.abs(w.astype(np.float64)), np.abs(G),
                      optimize=True)
    m_bar = np.einsum("ocab,nctuab->notuab", u_bar, v_bar, optimize=True)
    y_bar = np.einsum("ia,notuab,jb->notuij", np.abs(A_T), m_bar, np.abs(A_T), optimize=True)
    per_pixel = y_bar.transpose(0, 1, 2, 4, 3, 5).reshape(N, -1, 2 * th, 2 * tw)[:, :, :Ho, :Wo]
    bias = 0 if b is None else np.abs(b.astype(np.float64))[None, :, None, None]
    return (C + 30) * EPS32 * per_pixel + EPS32 * bias


def check_within_bound(x, w, b, padding):
    got = forward(x, w, b, padding=padding)
    want = loop_reference(x, w, b, padding)
    excess = np.abs(got - want) - rounding_bound(x, w, b, padding)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert excess.max() <= 0, f"worst output {np.unravel_index(excess.argmax(), excess.shape)}"


def geometry_of(x, padding):
    ph, pw = padding_pair(padding)
    return conv_module.ConvGeometry(5, 5, 1, 1, ph, pw, 1, 1, x.shape[2] + 2 * ph - 4,
                                    x.shape[3] + 2 * pw - 4, 1)


def forward_both_ways(x, w, b, padding):
    with winograd5_mode(2):
        on_winograd = forward(x, w, b, padding=padding)
    with winograd5_mode(0):
        direct = forward(x, w, b, padding=padding)
    return on_winograd, direct


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_winograd5_takes_these_cases(case, winograd5):
    """The cases test the engine only if it takes them (float64 never does)."""
    x, w, b, p = make32(case)
    args = (x.shape[1], x.shape[2], x.shape[3], w.shape[0], geometry_of(x, p))
    assert kernels.uses_winograd(*args) and not kernels.uses_winograd(*args, float64=True)


def test_winograd5_is_an_opt_in():
    """Off by default; mode 1 takes only the shapes where it measured faster; use_winograd(0)
    turns it off whatever its own mode."""
    geometry = conv_module.ConvGeometry(5, 5, 1, 1, 2, 2, 1, 1, 8, 8, 1)
    assert not kernels.uses_winograd(32, 8, 8, 64, geometry)
    with winograd5_mode(1):
        assert kernels.uses_winograd(32, 8, 8, 64, geometry)
        small = conv_module.ConvGeometry(5, 5, 1, 1, 2, 2, 1, 1, 4, 4, 1)
        assert not kernels.uses_winograd(64, 4, 4, 64, small)  # 4x4 planes: slower there
        previous = kernels.use_winograd(0)
        try:
            assert not kernels.uses_winograd(32, 8, 8, 64, geometry)
        finally:
            kernels.use_winograd(previous)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_winograd5_within_rounding_of_loop_reference(case, winograd5):
    check_within_bound(*make32(case))


@pytest.mark.parametrize("case", CASES[:3], ids=IDS[:3])
def test_winograd5_differs_from_direct_sums(case):
    """Not a tautology: the engine's bits are its own (the direct sums round differently)."""
    x, w, b, p = make32(case)
    on_winograd, direct = forward_both_ways(x, w, b, p)
    np.testing.assert_allclose(on_winograd, direct, rtol=1e-4, atol=1e-4)
    assert (on_winograd != direct).any()


@pytest.mark.parametrize("shape", [(2, 1, 9, 11, 1), (9, 1, 4, 4, 1)], ids=["by_rows", "by_images"])
def test_winograd5_one_tap_kernels_shift_the_input(shape, winograd5):
    """A kernel with a single 1 at tap (ki, kj) shifts the input: every output is one input
    value, computed through all 36 transformed values.  A wrong constant in B^T, G or A^T
    would be off by O(1) somewhere (the 25 taps and 4 tile positions use every one of them);
    what remains is rounding, a few units of |x| (x in [1, 2))."""
    N, C, H, W, O = shape
    x = np.random.default_rng(2).uniform(1, 2, (N, C, H, W)).astype(np.float32)
    padded = np.zeros((N, C, H + 4, W + 4), np.float32)
    padded[:, :, 2:2 + H, 2:2 + W] = x
    for ki in range(5):
        for kj in range(5):
            w = np.zeros((O, C, 5, 5), np.float32)
            w[0, 0, ki, kj] = 1
            got = forward(x, w, None, padding=2)
            np.testing.assert_allclose(got, padded[:, :, ki:ki + H, kj:kj + W], rtol=0,
                                       atol=2e-5, err_msg=f"tap {(ki, kj)}")


@pytest.mark.parametrize("shape", SWEEP_5X5, ids=[f"sweep{i}" for i in range(len(SWEEP_5X5))])
@pytest.mark.parametrize("mode", [1, 2])
def test_winograd5_matches_torch_on_the_sweep(shape, mode):
    """PyTorch's parity (rtol 1e-5, atol 1e-5 x max|out|) with the engine where it is picked
    (mode 1) and everywhere (mode 2)."""
    N, C, H, W, O = shape
    with winograd5_mode(mode):
        check_forward_matches_torch_float32((N, C, H, W, O, 5, 1, 2, 1, 1, True), forward,
                                            atol_scales_with_output=True)


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 9), C=st.integers(1, 40), O=st.integers(1, 40),
       H=st.integers(1, 20), W=st.integers(1, 20), ph=st.integers(0, 3), pw=st.integers(0, 3),
       bias=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_winograd5_random_geometry(N, C, O, H, W, ph, pw, bias, seed):
    if H + 2 * ph < 5 or W + 2 * pw < 5:
        return  # no output pixel: the argument checks' business
    case = (N, C, H, W, O, 5, 1, (ph, pw), 1, 1, bias)
    with winograd5_mode(2):
        check_within_bound(*make32(case, seed))


def test_winograd5_adversarial_values_within_bound(winograd5):
    """Values over 12 orders of magnitude, 96 channels: the bound still holds."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 96, 8, 8)) * 10.0 ** rng.integers(-6, 6, (2, 96, 8, 8))
    w = rng.standard_normal((8, 96, 5, 5)) * 10.0 ** rng.integers(-6, 6, (8, 96, 5, 5))
    check_within_bound(x.astype(np.float32), w.astype(np.float32), None, 2)


@pytest.mark.parametrize("case", CASES[:6] + CASES[7:], ids=IDS[:6] + IDS[7:])
def test_winograd5_one_and_two_threads_bit_identical(case, winograd5):
    x, w, b, p = make32(case, seed=5)
    one, two = (with_threads(t, lambda: forward(x, w, b, padding=p)) for t in (1, 2))
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("hw", [4, 16], ids=["by_images", "by_rows"])
def test_winograd5_bits_do_not_depend_on_the_chunking(hw, winograd5):
    """A batch goes in chunks of several images (4x4: 16, 8 a vector; 16x16: one): each
    image's output is the same bits alone as in the batch."""
    x, w, b, p = make32((40, 12, hw, hw, 20, 5, 1, 2, 1, 1, True), seed=8)
    batch = forward(x, w, b, padding=p)
    np.testing.assert_array_equal(forward(x[:3], w, b, padding=p), batch[:3])
    for n in (0, 17, 39):
        np.testing.assert_array_equal(forward(x[n:n + 1], w, b, padding=p), batch[n:n + 1])


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[5]], ids=[IDS[0], IDS[3], IDS[5]])
def test_winograd5_avx2_and_baseline_builds_agree(case, winograd5):
    check_avx2_and_baseline_builds_agree(case, np.float32, forward_result)


@pytest.mark.parametrize("hw", [4, 9], ids=["by_images", "by_rows"])
@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_winograd5_non_finite_values_fall_back(hw, where, value):
    """inf - inf in a transform would turn outputs that never see the inf into NaN: an inf
    or NaN in the input or the weight gives the other engines' result, bit for bit, with
    the same non-finite pattern."""
    x, w, b, p = make32((3, 6, hw, hw, 7, 5, 1, 2, 1, 1, True), seed=9)
    (x if where == "input" else w)[1, 2, 1, 1] = value
    on_winograd, direct = forward_both_ways(x, w, b, p)
    np.testing.assert_array_equal(on_winograd, direct)
    assert np.isfinite(direct).any() and not np.isfinite(direct).all()


def test_winograd5_overflow_falls_back():
    """Huge finite values can overflow inside the transforms (B^T's rows add up to 14 inputs'
    worth) where the direct sums do not: the whole call then runs on the other engines."""
    x, w, b, p = make32((2, 4, 8, 8, 3, 5, 1, 2, 1, 1, False), seed=10)
    x[0, 1, 2:5, 2:5] = 3e37
    w[:] = np.abs(w) * 1e-3
    on_winograd, direct = forward_both_ways(x, w, b, p)
    np.testing.assert_array_equal(on_winograd, direct)
    assert np.isfinite(direct).all()


def test_winograd5_input_gradient_on_the_engine():
    """A stride-1 5x5 input gradient runs as a forward convolution (conv.py's
    ``_input_grad_on_tiles``): with the engine forced on, it matches the loop reference's
    input gradient (the adjoint, computed here from its definition) and is the engine's
    (not the direct sums' bits)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 9, 8, 7)).astype(np.float32)
    w = rng.standard_normal((11, 9, 5, 5)).astype(np.float32)
    g = rng.standard_normal((3, 11, 8, 7)).astype(np.float32)

    def input_grad():
        xt = mp.tensor(x, requires_grad=True)
        F.conv2d(xt, mp.tensor(w), None, padding=2).backward(g)
        return xt.grad.numpy()

    with winograd5_mode(2):
        on_winograd = input_grad()
    with winograd5_mode(0):
        direct = input_grad()
    # grad_x = the correlation of g (padded by 2) with the flipped, transposed weight
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    want = loop_reference(g, flipped, None, 2)
    assert (np.abs(on_winograd - want) <= rounding_bound(g, flipped, None, 2)).all()
    assert (on_winograd != direct).any()


def test_use_winograd_5x5_switch_restores_and_checks():
    previous = kernels.use_winograd_5x5(0)
    try:
        assert kernels.use_winograd_5x5(2) == 0
        assert kernels.use_winograd_5x5(1) == 2
        with pytest.raises(ValueError, match="use_winograd_5x5"):
            kernels.use_winograd_5x5(3)
    finally:
        kernels.use_winograd_5x5(previous)
    assert previous == 0  # the default: off (its rounding, docs/differences.md)


def test_use_winograd_5x5_zero_keeps_the_direct_bits():
    """Mode 0 gives exactly what the engines before it give (here the direct engine), and
    the 3x3 engine's mode does not change a 5x5 call."""
    x, w, b, p = make32((2, 32, 8, 8, 32, 5, 1, 2, 1, 1, True), seed=13)
    with winograd5_mode(0):
        off = forward(x, w, b, padding=p)
        previous = kernels.use_winograd(0)
        try:
            none = forward(x, w, b, padding=p)
        finally:
            kernels.use_winograd(previous)
    np.testing.assert_array_equal(off, none)
