"""conv2d_wgrad_outer.h's blocks of whole images and its finite check: a block's tile
planes packed side by side before the taps pass (small planes; images 4 KB apart with
64 channels of 4x4), and the output gradient's inf/NaN found while it is laid out
(the AVX2 layout's 8x8 transposes and its scalar tail, in any chunk of a 2-thread
call) rather than in a pass of its own.

Their shapes (PACKED_CASES) take test_conv_wgrad_outer.py's checks: the loop reference
(float64), PyTorch (float32), float64 central differences, 1 vs 2 threads and the
baseline vs the AVX2 build bit for bit.  Here: the documented summation order (that
file's integer emulation) and the finite check.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import reference
from tests.conv.test_conv_wgrad_outer import check_documented_order, geometry_of
from tests.helpers import with_threads


@pytest.mark.parametrize("N,C,H,O,k,stride,padding,dilation", [
    (4, 7, 5, 3, 3, 1, 1, 1),     # 4 images of 25 pixels, tiles of 6 and 1: a part per image
    (6, 5, 9, 4, 3, 2, 0, 1),     # stride 2, no padding: 81-pixel planes, 16-pixel outputs
    (3, 9, 4, 20, 3, 1, 1, 1),    # 2 panels x 2 tiles: one part of 3 images
])
def test_packed_blocks_sum_in_the_documented_order(N, C, H, O, k, stride, padding, dilation,
                                                   wgrad_outer):
    """Bit for bit the documented order (integers whose chain sums float32 rounds)."""
    check_documented_order(N, C, H, O, k, stride, padding, dilation, seed=11)


# where the inf/NaN goes in an output gradient of (3, 40, 3, 11): 40 = 3 panels; 33
# pixels per plane = 4 of the AVX2 layout's 8-pixel transposes and a scalar tail of 1
NON_FINITE_SPOTS = {
    "first": (0, 0, 0, 0),
    "transposed": (1, 17, 1, 2),   # second panel, inside an 8x8 transpose
    "tail": (2, 39, 2, 10),        # last image, channel and pixel: the scalar tail
    "padded_lane": (2, 35, 0, 7),  # the last panel's 8 channels, beside its zero lanes
}


@pytest.mark.parametrize("spot", list(NON_FINITE_SPOTS))
@pytest.mark.parametrize("value", [np.inf, np.nan])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_output_gradient_is_found_in_any_chunk(spot, value, threads, dtype,
                                                          wgrad_outer):
    """Any chunk's inf or NaN sends the call back (False), and the conv op's weight
    gradient is then the reference's (inf where it meets the input, NaN where it meets
    the padding's zeros or an opposite inf)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 10, 3, 11)).astype(dtype)
    w = rng.standard_normal((40, 10, 3, 3)).astype(dtype)
    g = rng.standard_normal((3, 40, 3, 11)).astype(dtype)
    g[NON_FINITE_SPOTS[spot]] = value
    geometry = geometry_of(x, w, g.shape, 1, 1, 1, 1)
    out = np.empty((40, 90), dtype)
    assert not with_threads(threads, lambda: kernels.conv2d_weight_grad_outer(
        x, g, out, geometry, threads, bias=np.empty(40, dtype)))
    g[NON_FINITE_SPOTS[spot]] = 1.0  # finite again: the products run
    assert with_threads(threads, lambda: kernels.conv2d_weight_grad_outer(
        x, g, out, geometry, threads))
    g[NON_FINITE_SPOTS[spot]] = value
    wt, bt = mp.tensor(w, requires_grad=True), mp.tensor(np.zeros(40, dtype), requires_grad=True)
    with_threads(threads, lambda: F.conv2d(mp.tensor(x), wt, bt, padding=1).backward(g))
    with np.errstate(invalid="ignore"):
        want = reference(x.astype(np.float64), w.astype(np.float64), None, 1, 1, 1, 1,
                         grad_out=g.astype(np.float64))[2]
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(wt.grad.numpy(), want, rtol=tol, atol=tol)
    assert np.isfinite(wt.grad.numpy()).any() and not np.isfinite(wt.grad.numpy()).all()
