"""Index arithmetic is 64-bit; compact argmax storage is used only where it provably fits.

The kernels compute every offset in ``Py_ssize_t`` (64-bit).  The only 32-bit
integers are thread counts and the argmax *codes* max/min/stochastic pooling
keep for backward: a uint8 ordinal within the window when every window has at
most 255 cells, else an int32 offset within the plane, which
``ops/pooling/_geometry.py`` allows only for planes of at most 2**31 - 1 cells
(per plane: NHWC codes index the spatial cells, not channels).  Beyond that
the call is refused with a ValueError naming the limit.

* The choice is checked on the geometry helper with shapes far beyond 2**31
  elements, which costs no memory (only per-axis window tables are built).
* One real run: a uint8 plane of 2**31 + 2**23 cells (2 GiB; uint8 max pooling
  needs no float copy) is max-pooled with 128-cell windows and unpooled again;
  values and int64 indices past 2**31 must be exact.  About 2.2 GiB peak RSS,
  a few seconds.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels.pool_extreme import NO_CELL_CODE
from minipool.ops.pooling import _geometry

def max_pool_plan(shape, kernel, data_format=None):
    return _geometry.window_plan("max_pool2d", shape, 2, kernel, None, 0, 1, False,
                                 data_format, "one")


@pytest.mark.parametrize("shape,kernel,dtype", [
    ((1, 1, 46341, 46341), 15, np.uint8),        # plane > 2**31 cells, 225-cell windows
    ((1, 1, 46340, 46340), 16, np.int32),        # 256-cell windows, plane 2,147,395,600 cells
    ((2, 3, 4, 4), 4, np.uint8),
    ((1, 1, 2, 2 ** 20), (2, 128), np.int32),
    ((1, 1000, 1000, 5000), 16, np.int32),       # NHWC: 5e9 elements, but 1e6 cells a plane
])
def test_argmax_codes_are_compact_only_where_they_fit(shape, kernel, dtype):
    data_format = "channels_last" if shape[-1] == 5000 else None
    plan = max_pool_plan(shape, kernel, data_format)
    assert plan.code_dtype == np.dtype(dtype)
    spatial = shape[1:3] if data_format else shape[2:]
    cells = int(np.prod(np.broadcast_to(kernel, 2)))
    if dtype == np.int32:   # an int32 plane offset must be able to name every cell
        assert int(np.prod(spatial)) <= np.iinfo(np.int32).max
    else:                   # uint8 ordinals 0..cells-1 must stay below the kernel's "no cell" code
        assert cells <= NO_CELL_CODE


@pytest.mark.parametrize("shape,data_format", [((1, 1, 46341, 46341), None),
                                               ((1, 46341, 46341, 1), "channels_last")])
def test_planes_too_large_for_int32_codes_are_refused_with_the_limit(shape, data_format):
    with pytest.raises(ValueError, match=str(_geometry.INT32_PLANE_LIMIT)):
        max_pool_plan(shape, 16, data_format)


def test_adaptive_windows_of_a_huge_plane_are_refused():
    with pytest.raises(ValueError, match=str(_geometry.INT32_PLANE_LIMIT)):
        _geometry.adaptive_plan("adaptive_max_pool2d", (1, 1, 50000, 50000), 2, (1, 1), None)


def test_refusal_happens_before_anything_is_allocated():
    """The public op refuses a >2**31-cell plane with >255-cell windows from the shape alone:
    a broadcast view (no memory) of that shape is enough to get the error."""
    x = np.broadcast_to(np.zeros((1, 1, 1, 1), np.uint8), (1, 1, 46341, 46341))
    with pytest.raises(ValueError, match="too large"):
        F.max_pool2d(mp.Tensor(x), 16)


def test_a_plane_beyond_2_to_31_cells_pools_and_unpools_exactly():
    H, W = 2 ** 16, 2 ** 15 + 128             # 2**31 + 2**23 cells, uint8: 2 GiB
    x = np.zeros((1, 1, H, W), np.uint8)
    marks = {(H - 1, W - 5): 200, (H - 3, 7): 100, (0, W - 1): 50, (H // 2, W // 2): 25}
    for (h, w), v in marks.items():
        x[0, 0, h, w] = v
    y, idx = F.max_pool2d(mp.Tensor(x), (1, 128), return_indices=True)
    assert y.shape == (1, 1, H, W // 128)
    values, indices = y.numpy()[0, 0], idx.numpy()[0, 0]
    assert indices.dtype == np.int64
    for (h, w), v in marks.items():
        assert values[h, w // 128] == v
        assert indices[h, w // 128] == h * W + w   # up to 2**31 + 2**23: no wrap-around
    assert int(values.sum(dtype=np.int64)) == sum(marks.values())
    # an all-zero window's argmax is its first cell
    assert indices[H - 2, 3] == (H - 2) * W + 3 * 128
    del x
    out = F.max_unpool2d(y, idx, (1, 128), output_size=(H, W)).numpy()[0, 0]
    for (h, w), v in marks.items():
        assert out[h, w] == v
    assert int(out[H - 1].sum(dtype=np.int64)) == 200 and int(out[-3:].sum(dtype=np.int64)) == 300
