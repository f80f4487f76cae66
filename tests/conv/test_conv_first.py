"""conv2d's forward kernel for first layers (minipool/_kernels/conv2d_first.h).

``use_first(2)`` puts every float32 forward it fits on it (1-3 input channels, one
group, a 3x3 or 5x5 kernel at stride 1 without dilation; ``0``: never, ``1``: where it
measured faster).  Checked against the loop reference, PyTorch, the register tiles bit
for bit (the same fma chain per output, padding products included, then the bias),
1 vs 2 threads bit for bit, with inf and NaN in the input and the weight, on rows of
whole tiles (16 pixels), rows ending inside a tile (the last tile moved back to end at
the row's end), rows narrower than a tile (stored under a mask), panels of 4 and 6
output channels ending inside a panel, and with hypothesis geometries.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minipool._kernels import conv2d as kernels
from minipool.ops import conv as conv_module
from tests.conv.conv_checks import forward, make, reference, run
from tests.conv.test_conv import check_one_and_two_threads_bit_identical

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
FIRST_CASES = [
    (3, 1, 28, 28, 16, 3, 1, 1, 1, 1, True),     # rows of 28: a tile and one moved back
    (2, 3, 32, 32, 32, 3, 1, 1, 1, 1, True),     # rows of two whole tiles
    (2, 3, 32, 32, 16, 5, 1, 2, 1, 1, False),    # 5x5, no bias
    (2, 1, 32, 32, 6, 5, 1, 0, 1, 1, True),      # LeNet's conv1: one panel of 6
    (2, 2, 9, 13, 7, 3, 1, 1, 1, 1, True),       # rows of 13 (under a mask), panels 4 + 3
    (1, 3, 5, 21, 1, 5, 1, 2, 1, 1, True),       # one output channel, rows of 21
    (2, 1, 17, 5, 12, 3, 1, 0, 1, 1, True),      # rows of 3, panels of 4 (12 = 3 x 4)
    (1, 2, 6, 40, 18, 5, 1, 1, 1, 1, True),      # rows of 38, 18 channels: panels of 6
    (2, 3, 3, 3, 5, 3, 1, 1, 1, 1, True),        # 3x3 planes
]
FIRST_IDS = [f"first{i}" for i in range(len(FIRST_CASES))]


def geometry_of(x, w, padding):
    kh, kw = w.shape[2:]
    Ho, Wo = x.shape[2] + 2 * padding - kh + 1, x.shape[3] + 2 * padding - kw + 1
    return conv_module.ConvGeometry(kh, kw, 1, 1, padding, padding, 1, 1, Ho, Wo, 1)


@pytest.fixture
def first_only():
    """Every float32 forward it fits on the first-layer kernel, the others on the tiles
    (not the direct kernel): yields a function that runs a forward with the kernel off."""
    previous = kernels.use_first(2), kernels.use_tiles(2), kernels.use_direct(0)

    def without_first(x, w, b, **kw):
        kernels.use_first(0)
        try:
            return forward(x, w, b, **kw)
        finally:
            kernels.use_first(2)
    try:
        yield without_first
    finally:
        kernels.use_first(previous[0])
        kernels.use_tiles(previous[1])
        kernels.use_direct(previous[2])


@pytest.mark.parametrize("case", FIRST_CASES, ids=FIRST_IDS)
def test_first_runs_these_cases(case, first_only):
    x, w, b, kw = make(case, np.float32)
    assert kernels.uses_first(x.shape[1], x.shape[2], x.shape[3], w.shape[0],
                              geometry_of(x, w, kw["padding"]))
    assert not kernels.uses_first(x.shape[1], x.shape[2], x.shape[3], w.shape[0],
                                  geometry_of(x, w, kw["padding"]), float64=True)


@pytest.mark.parametrize("case", FIRST_CASES, ids=FIRST_IDS)
def test_first_gives_the_tiles_bits(case, first_only):
    x, w, b, kw = make(case, np.float32, seed=4)
    np.testing.assert_array_equal(forward(x, w, b, **kw), first_only(x, w, b, **kw))


@pytest.mark.parametrize("case", FIRST_CASES, ids=FIRST_IDS)
def test_first_matches_loop_reference_and_torch(case, first_only):
    import torch
    x, w, b, kw = make(case, np.float32, seed=2)
    got = forward(x, w, b, **kw)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    want = reference(x64, w64, None if b is None else b.astype(np.float64), **kw)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        t = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                       None if b is None else torch.from_numpy(b),
                                       padding=kw["padding"]).numpy()
    np.testing.assert_allclose(got, t, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", FIRST_CASES, ids=FIRST_IDS)
def test_first_one_and_two_threads_are_bit_identical(case, first_only):
    check_one_and_two_threads_bit_identical(case, np.float32)


@pytest.mark.parametrize("where", ["input", "weight"])
def test_first_carries_inf_and_nan_as_the_tiles(where, first_only):
    """A padding tap meets the weight (inf * 0 = NaN), as on the tiles and in PyTorch."""
    x, w, b, kw = make((2, 3, 20, 19, 9, 3, 1, 1, 1, 1, True), np.float32, seed=7)
    target = x if where == "input" else w
    rng = np.random.default_rng(8)
    target.flat[rng.choice(target.size, 3, replace=False)] = [np.inf, -np.inf, np.nan]
    with np.errstate(invalid="ignore"):
        got = forward(x, w, b, **kw)
        np.testing.assert_array_equal(got, first_only(x, w, b, **kw))
        want = reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                         **kw)[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)


def test_first_gradients_match_loop_reference(first_only):
    """The backward of a forward that ran on the kernel (no input gradient kernel of its
    own: only the forward changed)."""
    x, w, b, kw = make((2, 3, 18, 18, 16, 3, 1, 1, 1, 1, True), np.float32, seed=3)
    out, gx, gw, gb, g = run(x, w, b, kw)
    ref = reference(*(a.astype(np.float64) for a in (x, w, b)), **kw,
                    grad_out=g.astype(np.float64))
    for got, want in zip((out, gx, gw, gb), ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_first_picked_for_the_sweep_first_layers():
    """Mode 1 (the default) takes the benchmark's first layers and LeNet's conv1, and
    leaves rows under 16 pixels and 3 channels to 6 to the other engines."""
    assert kernels.use_first(1) == 1
    for C, H, O, k, p in [(1, 28, 16, 3, 1), (3, 32, 32, 3, 1), (3, 32, 16, 5, 2), (1, 32, 6, 5, 0)]:
        x = np.empty((1, C, H, H), np.float32)
        assert kernels.uses_first(C, H, H, O, geometry_of(x, np.empty((O, C, k, k)), p))
    for C, H, O, k, p in [(3, 8, 16, 3, 1), (3, 32, 6, 3, 1), (4, 32, 16, 3, 1)]:
        x = np.empty((1, C, H, H), np.float32)
        assert not kernels.uses_first(C, H, H, O, geometry_of(x, np.empty((O, C, k, k)), p))


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 3), O=st.integers(1, 20), H=st.integers(1, 24),
       W=st.integers(1, 40), k=st.sampled_from([3, 5]), pad=st.integers(0, 3),
       ties=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_first_random_geometry_gives_the_tiles_bits(N, C, O, H, W, k, pad, ties, seed):
    # planes the tiles read (``g.shifted``): the kernel's reach within the output
    assume(min(H, W) + 2 * pad - k + 1 >= k - 1)
    x, w, b, kw = make((N, C, H, W, O, k, 1, pad, 1, 1, True), np.float32, seed)
    if ties:  # small integers: equal products, sums exact or rounded alike
        x, w = np.round(x * 2), np.round(w * 2)
    previous = kernels.use_first(2), kernels.use_tiles(2), kernels.use_direct(0)
    try:
        assert kernels.uses_first(C, H, W, O, geometry_of(x, w, pad))
        got = forward(x, w, b, **kw)
        kernels.use_first(0)
        np.testing.assert_array_equal(got, forward(x, w, b, **kw))
    finally:
        kernels.use_first(previous[0])
        kernels.use_tiles(previous[1])
        kernels.use_direct(previous[2])
    want = reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kw)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_use_first_rejects_bad_modes():
    with pytest.raises(ValueError, match="use_first"):
        kernels.use_first(3)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_first_on_the_load_team_gives_the_same_bits(threads):
    """The kernel's chunks (one image each, a worker's own planes) on the load-tolerant
    team and in an OpenMP region, at the kernel level: every output written, the same
    bits as one thread."""
    from tests.conv.test_conv_direct_split import kernel_forward
    x, w, b, kw = make((5, 3, 20, 24, 16, 3, 1, 1, 1, 1, True), np.float32, seed=11)
    geometry = geometry_of(x, w, 1)
    assert kernels.uses_first(3, 20, 24, 16, geometry)
    one = kernel_forward(x, w, b, geometry, 1)
    np.testing.assert_allclose(one, reference(*(a.astype(np.float64) for a in (x, w, b)),
                                              **kw)[0], rtol=1e-5, atol=1e-5)
    for load_team in (False, True):
        np.testing.assert_array_equal(kernel_forward(x, w, b, geometry, threads, load_team), one)
