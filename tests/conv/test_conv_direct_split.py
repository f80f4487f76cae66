"""The direct forward's launch (minipool/_kernels/conv_direct.pxd, "the launch").

A forward on the direct kernel is one launch of chunks of a few images by one range
of output channels (the last few by half a range); the chunks first pack the weight
in pieces of whole blocks (each checking its own rows are finite) and wait for every
piece.  Each output is the same sum
whatever chunk holds it, so the split must change no bit: checked against the
register tiles (the same sums with the padding's products), 1 vs 2 threads, an
OpenMP region vs the load-tolerant team, and NCHW vs channels-last, on shapes whose
split has several ranges, ranges ending in a block of one vector, range-major order,
groups, and chunks of fewer images than a call used to take.
"""
import numpy as np
import pytest

from minipool._kernels import conv2d as kernels
from tests.conv.test_conv import make
from tests.conv.test_conv_direct import forward, geometry_of

# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias), and what the split
# must have: (ranges > 1, fewer than 6 images per chunk, range-major)
SPLIT_CASES = [
    ((64, 16, 4, 4, 64, 3, 1, 1, 1, 1, True), (True, False, False)),    # 11 calls x 4 ranges
    ((64, 6, 14, 14, 16, 5, 1, 0, 1, 1, True), (False, True, False)),   # LeNet's conv2
    ((13, 8, 4, 4, 40, 3, 1, 1, 1, 1, False), (True, False, False)),   # last range one vector
    ((9, 12, 5, 5, 72, 3, 1, 1, 1, 2, True), (True, False, False)),    # groups of 36 channels
    ((7, 128, 4, 4, 256, 3, 1, 1, 1, 1, True), (True, False, True)),   # a 1.2 MB packed weight
    ((5, 4, 10, 10, 24, 5, 1, 0, 1, 1, True), (True, True, False)),    # 36 pixels: 1 image
]
SPLIT_IDS = [f"split{i}" for i in range(len(SPLIT_CASES))]


def kernel_forward(x, w, b, geometry, threads, load_team=False):
    """conv2d_forward at the kernel level with the plan conv2d uses."""
    N, C, H, W = x.shape
    w2 = np.ascontiguousarray(w.reshape(w.shape[0], -1))
    block_rows, images, per_thread, _ = kernels.plan_batch(N, C, H, W, w.shape[0], geometry,
                                                          1 << 16, 512, 8)
    out = np.full((N, w.shape[0], geometry.Ho, geometry.Wo), -7.0, x.dtype)
    workspace = np.empty((threads, per_thread), x.dtype)
    kernels.conv2d_forward(x, w2, b, out, geometry, block_rows, workspace, threads, images,
                           load_team=load_team)
    return out


@pytest.fixture
def direct():
    previous = kernels.use_direct(2)
    try:
        yield
    finally:
        kernels.use_direct(previous)


@pytest.mark.parametrize("case,wanted", SPLIT_CASES, ids=SPLIT_IDS)
def test_the_cases_split_as_described(case, wanted):
    x, w, b, kw = make(case, np.float32)
    N, C, H, W = x.shape
    count, ranges, range_channels, range_major = kernels.direct_split(
        N, C, H, W, w.shape[0], geometry_of(x, w, **kw))
    assert (ranges > 1, count < 6, range_major) == wanted
    assert range_channels % 16 == 0 and (ranges - 1) * range_channels < w.shape[0] // kw["groups"]


@pytest.mark.parametrize("case,wanted", SPLIT_CASES, ids=SPLIT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_gives_the_tiles_bits_on_any_team(case, wanted, dtype, direct):
    x, w, b, kw = make(case, dtype, seed=11)
    geometry = geometry_of(x, w, **kw)
    runs = {(threads, team): kernel_forward(x, w, b, geometry, threads, team)
            for threads, team in [(1, False), (2, False), (2, True), (3, False)]}
    previous = kernels.use_direct(0), kernels.use_tiles(2)
    try:
        on_tiles = kernel_forward(x, w, b, geometry, 1)
    finally:
        kernels.use_direct(previous[0])
        kernels.use_tiles(previous[1])
    for key, out in runs.items():
        np.testing.assert_array_equal(out, on_tiles, err_msg=str(key))


@pytest.mark.parametrize("case,wanted", SPLIT_CASES, ids=SPLIT_IDS)
@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_a_non_finite_weight_in_the_last_range_leaves_the_direct_kernel(case, wanted, value,
                                                                         direct):
    """The last range's packing finds it: the forward takes the path it takes without
    the direct kernel, where the padding meets it (NaN at pixel (0, 0), as PyTorch)."""
    x, w, b, kw = make(case, np.float32, seed=12)
    w[-1, -1, 0, 0] = value  # the last channel's first tap: in the padding at pixel (0, 0)
    geometry = geometry_of(x, w, **kw)
    out = kernel_forward(x, w, b, geometry, 2)
    previous = kernels.use_direct(0)
    try:
        without_direct = kernel_forward(x, w, b, geometry, 2)
    finally:
        kernels.use_direct(previous)
    np.testing.assert_array_equal(out, without_direct)
    if kw["padding"]:
        assert np.isnan(out[:, -1, 0, 0]).all()


@pytest.mark.parametrize("case,wanted", SPLIT_CASES, ids=SPLIT_IDS)
@pytest.mark.parametrize("by_planes", [False, True])
def test_split_channels_last_gives_the_channels_first_bits(case, wanted, by_planes, direct):
    x, w, b, kw = make(case, np.float32, seed=13)
    geometry = geometry_of(x, w, **kw)
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    w_nhwc = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(w.shape[0], -1)
    channels_first = forward(x, w, b, **kw).transpose(0, 2, 3, 1)
    for threads in (1, 2):
        out = np.full(channels_first.shape, -7.0, np.float32)
        kernels.conv2d_direct_channels_last(x_nhwc, w_nhwc, b, out, geometry, threads, by_planes)
        np.testing.assert_array_equal(out, channels_first, err_msg=f"{threads} threads")


@pytest.mark.parametrize("case,wanted", SPLIT_CASES[:3], ids=SPLIT_IDS[:3])
def test_split_channels_last_refuses_a_non_finite_weight_in_the_last_range(case, wanted):
    x, w, b, kw = make(case, np.float32, seed=14)
    w[-1, -1, -1, -1] = np.nan
    geometry = geometry_of(x, w, **kw)
    out = np.full((x.shape[0], geometry.Ho, geometry.Wo, w.shape[0]), -7.0, np.float32)
    with pytest.raises(ValueError, match="weight must be finite"):
        kernels.conv2d_direct_channels_last(
            np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
            np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(w.shape[0], -1), b, out,
            geometry, 2, True)
    assert (out == -7.0).all()  # nothing written


@pytest.mark.parametrize("layer", [(128, 4, 256, 3), (256, 4, 256, 3), (64, 4, 64, 5),
                                   (64, 8, 128, 3), (128, 8, 128, 3), (32, 8, 64, 5),
                                   (6, 14, 16, 5)])
def test_a_batch_of_64_makes_enough_chunks_for_two_threads(layer):
    """Tiny-CNN layers on the direct kernel (batch 64): at least 22 chunks, so the
    busier of 2 threads has at most 1/22 of the work more than the other (6 whole-image
    calls left 6 against 5)."""
    C, H, O, k = layer
    pad = k // 2 if H < 10 else 0
    x = np.zeros((64, C, H, H), np.float32)
    w = np.zeros((O, C, k, k), np.float32)
    count, ranges, _, _ = kernels.direct_split(64, C, H, H, O, geometry_of(x, w, 1, pad, 1, 1))
    assert ranges * -(-64 // count) >= 22


def test_direct_split_rejects_a_shape_the_kernel_cannot_run():
    x, w = np.zeros((1, 2, 4, 4)), np.zeros((3, 2, 9, 9))
    with pytest.raises(ValueError, match="direct_split"):
        kernels.direct_split(1, 2, 4, 4, 3, geometry_of(x, w, 1, 4, 1, 1))


# One launch: every chunk first runs the preparing pieces still unclaimed (the packed
# weight's ranges, channels-last planes), waits for all of them, then computes.
ONE_LAUNCH_CASES = SPLIT_CASES + [
    ((12, 32, 4, 4, 64, 3, 1, 1, 1, 16, True), None),   # 16 groups: 16 packing pieces
]


@pytest.mark.parametrize("case", [c for c, _ in ONE_LAUNCH_CASES],
                         ids=[f"launch{i}" for i in range(len(ONE_LAUNCH_CASES))])
@pytest.mark.parametrize("helper_delay", [0.0, 0.003])
def test_one_launch_gives_the_same_bits_whoever_prepares(case, helper_delay, direct):
    """A helper that joins late (the caller then packs every range alone) or at once
    (the pieces shared out): the same bits as one thread, on the team and OpenMP."""
    x, w, b, kw = make(case, np.float32, seed=15)
    geometry = geometry_of(x, w, **kw)
    alone = kernel_forward(x, w, b, geometry, 1)
    kernels.set_load_team_helper_delay(helper_delay)
    try:
        for threads, team in [(2, True), (3, True), (2, False)]:
            np.testing.assert_array_equal(kernel_forward(x, w, b, geometry, threads, team), alone,
                                          err_msg=f"{threads} threads, team {team}")
    finally:
        kernels.set_load_team_helper_delay(0)


@pytest.mark.parametrize("team", [False, True])
@pytest.mark.parametrize("channel", [0, 100, 255])
def test_a_non_finite_weight_in_any_range_writes_nothing_on_the_direct_kernel(team, channel,
                                                                             direct):
    """Ranges are packed while other chunks may already wait to compute: none may write
    before every range is known finite (the other path then fills the whole output,
    whose last values were not written by the direct kernel either)."""
    x, w, b, kw = make(((64, 128, 4, 4, 256, 3, 1, 1, 1, 1, True)), np.float32, seed=16)
    w[channel, 5, 1, 1] = np.nan  # the centre tap: no padding meets it, every output does
    geometry = geometry_of(x, w, **kw)
    out = kernel_forward(x, w, b, geometry, 2, team)
    assert np.isnan(out[:, channel]).all() and not np.isnan(np.delete(out, channel, 1)).any()
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    w_nhwc = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(w.shape[0], -1)
    untouched = np.full((64, 4, 4, 256), -7.0, np.float32)
    with pytest.raises(ValueError, match="weight must be finite"):
        kernels.conv2d_direct_channels_last(x_nhwc, w_nhwc, b, untouched, geometry, 2, True)
    assert (untouched == -7.0).all()


COVER_CASES = [(64, 128, 8, 128, 3, 1), (64, 256, 4, 256, 3, 1), (64, 6, 14, 16, 5, 0),
               (13, 16, 4, 40, 3, 1), (7, 128, 4, 256, 3, 1), (5, 4, 10, 24, 5, 0),
               (64, 64, 4, 64, 5, 2), (3, 8, 4, 72, 3, 1), (1, 8, 4, 8, 3, 1), (64, 32, 8, 200, 3, 1)]


@pytest.mark.parametrize("case", COVER_CASES)
@pytest.mark.parametrize("float64", [False, True])
def test_the_launch_chunks_cover_every_output_once(case, float64):
    """The chunks (the last few split into two halves of their range) hold every image
    and output channel exactly once, on whole 2-vector blocks; the packing pieces cover
    every channel once, at most 16 per group."""
    N, C, H, O, k, pad = case
    x, w = np.zeros((N, C, H, H)), np.zeros((O, C, k, k))
    chunks, pieces = kernels.direct_chunks(N, C, H, H, O, geometry_of(x, w, 1, pad, 1, 1), float64)
    block = 8 if float64 else 16
    count, ranges, _, _ = kernels.direct_split(N, C, H, H, O, geometry_of(x, w, 1, pad, 1, 1),
                                               float64)
    assert len(chunks) >= ranges * -(-N // count)
    seen = np.zeros((N, O), int)
    for c, (first, images, o_begin, o_end) in enumerate(chunks):
        if o_begin == o_end:  # the second half of a short last range: nothing to do
            assert c >= len(chunks) - 8 and o_end == O
            continue
        assert images >= 1 and o_begin % block == 0 and (o_end % block == 0 or o_end == O)
        seen[first:first + images, o_begin:o_end] += 1
    assert (seen == 1).all()
    covered = np.zeros(O, int)
    for o_begin, o_end in pieces:
        assert o_begin % block == 0 and o_begin < o_end
        covered[o_begin:o_end] += 1
    assert (covered == 1).all() and len(pieces) <= 16


def test_the_last_chunks_are_halves_of_a_range():
    x, w = np.zeros((64, 128, 8, 8)), np.zeros((128, 128, 3, 3))
    chunks, _ = kernels.direct_chunks(64, 128, 8, 8, 128, geometry_of(x, w, 1, 1, 1, 1))
    widths = [o_end - o_begin for _, _, o_begin, o_end in chunks]
    assert widths[:-8] == [32] * (len(chunks) - 8) and widths[-8:] == [16] * 8


@pytest.mark.parametrize("N", [1, 7, 64])
def test_channels_last_by_planes_copies_each_calls_images_once(N):
    """One range of output channels (LeNet's conv2): each chunk copies its own call's
    images as planes just before its product; any batch (a last call of fewer images),
    any team size: the channels-first bits."""
    x, w, b, kw = make((N, 6, 14, 14, 16, 5, 1, 0, 1, 1, True), np.float32, seed=17)
    geometry = geometry_of(x, w, **kw)
    assert kernels.direct_split(N, 6, 14, 14, 16, geometry)[1] == 1
    x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    w_nhwc = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(w.shape[0], -1)
    channels_first = forward(x, w, b, **kw).transpose(0, 2, 3, 1)
    for threads in (1, 2, 3):
        out = np.full(channels_first.shape, -7.0, np.float32)
        kernels.conv2d_direct_channels_last(x_nhwc, w_nhwc, b, out, geometry, threads, True)
        np.testing.assert_array_equal(out, channels_first, err_msg=f"{threads} threads")
