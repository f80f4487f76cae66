"""The nearest backward's block path (channels last, integer factors on every axis)
against an independent scatter-add: ``np.add.at`` into +0, one output cell at a
time in ascending (d, h, w) order, which is the order (and so the float rounding)
the kernel promises.  Cotangents mix magnitudes so that a different summation
order changes bits, and some blocks are all -0 (a +0-started sum stays +0).
"""
import numpy as np
import pytest

from minipool._kernels import upsampling as kernels


def scatter_reference(g, in_shape, src_d, src_h, src_w):
    gx = np.zeros(in_shape, dtype=g.dtype)
    p, od, oh, ow, c = np.meshgrid(*(np.arange(n) for n in g.shape), indexing="ij")
    np.add.at(gx, (p.ravel(), src_d[od.ravel()], src_h[oh.ravel()], src_w[ow.ravel()],
                   c.ravel()), g.ravel())
    return gx


def order_sensitive(rng, shape, dtype):
    """Values whose sum depends on the order of the adds; some blocks all -0."""
    g = rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 7, shape)
    g = g.astype(dtype)
    g[..., 0] = -0.0  # a whole channel of negative zeros
    return g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("factors", [(1, 2, 2), (1, 3, 2), (1, 1, 2), (1, 2, 1), (1, 3, 3),
                                     (2, 2, 2), (3, 1, 3), (1, 1, 1)])
def test_block_path_is_the_ordered_scatter_add(dtype, factors):
    rng = np.random.default_rng(sum(factors))
    rd, rh, rw = factors
    planes, D, H, W, C = 3, 2, 4, 5, 6
    g = order_sensitive(rng, (planes, D * rd, H * rh, W * rw, C), dtype)
    src = [np.arange(n * r) // r for n, r in zip((D, H, W), factors)]
    expected = scatter_reference(g, (planes, D, H, W, C), *src)
    for threads in (1, 2):
        gx = np.full((planes, D, H, W, C), np.nan, dtype)  # every cell must be written
        kernels.nearest_backward(g, gx, *src, rw, threads)
        assert gx.tobytes() == expected.tobytes()
    assert np.signbit(expected[..., 0]).sum() == 0  # the -0 blocks summed to +0


def test_general_path_still_taken_for_fractional_factors():
    # H is not a replication (5 -> 8): the kernel must fall back to the scatter loop
    rng = np.random.default_rng(5)
    g = order_sensitive(rng, (2, 1, 8, 6, 4), np.float32)
    src_h = np.minimum(np.floor(np.arange(8) * np.float32(5 / 8)).astype(np.intp), 4)
    src = [np.zeros(1, np.intp), src_h, np.arange(6) // 2]
    expected = scatter_reference(g, (2, 1, 5, 3, 4), *src)
    gx = np.full((2, 1, 5, 3, 4), np.nan, np.float32)
    kernels.nearest_backward(g, gx, *src, 2, 2)
    assert gx.tobytes() == expected.tobytes()
