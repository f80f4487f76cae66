"""conv2d at 2 threads: the serial pieces around the kernels' launches.

OpenBLAS is pinned to one thread (``minipool._blas.single_threaded``: a set and a reset,
15-20 us when it runs on 2) only around a forward that may call BLAS
(``kernels.forward_uses_blas``): the direct, Winograd, first-layer and tile engines never
do; the shapes whose last resort is BLAS keep the pin when the direct kernel cannot take
the weight (inf or NaN), or when the weight is too large to scan for that.  The bits do not change either way: checked against the pinned
forward with OpenBLAS left on 2 threads.
"""
import contextlib

import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool._blas import blas_num_threads, set_blas_num_threads
from minipool._kernels import conv2d as kernels
from minipool.ops import conv as conv_module
from tests.helpers import with_threads

# (N, C, H, O, kernel, padding): the engine the forward runs on, and whether that forward
# may reach BLAS with a finite weight / with an inf in it (float32)
PIN_CASES = [
    ((8, 64, 4, 64, 5, 2), "direct, BLAS last", False, True),
    ((8, 16, 16, 32, 5, 2), "direct, tiles last", False, False),
    ((8, 64, 4, 128, 3, 1), "Winograd, BLAS last", False, True),
    ((8, 1, 28, 16, 3, 1), "first layer", False, False),
    ((8, 16, 32, 16, 3, 1), "tiles", False, False),
    ((8, 6, 14, 16, 5, 0), "direct (LeNet's conv2), BLAS last", False, True),
    # 589,824 weight values, past FINITE_SCAN_LIMIT: not scanned, so "may" even when finite
    ((2, 256, 4, 256, 3, 1), "Winograd, BLAS last, weight too large to scan", True, True),
]
PIN_IDS = [f"pin{i}" for i in range(len(PIN_CASES))]


def geometry_of(H, k, padding):
    Ho = H + 2 * padding - k + 1
    return conv_module.ConvGeometry(k, k, 1, 1, padding, padding, 1, 1, Ho, Ho, 1)


def make(case, dtype=np.float32, seed=0):
    N, C, H, O, k, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, H)).astype(dtype)
    w = (rng.standard_normal((O, C, k, k)) * 0.1).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    return x, w, b, padding


def uses_blas(case, w, dtype=np.float32):
    N, C, H, O, k, padding = case
    geometry = geometry_of(H, k, padding)
    block_rows, images = conv_module._plan((N, C, H, H), O, geometry)[:2]
    return kernels.forward_uses_blas(np.ascontiguousarray(w.reshape(O, -1), dtype), C, H, H,
                                     geometry, block_rows, images)


@pytest.mark.parametrize("case,engine,finite_blas,inf_blas", PIN_CASES, ids=PIN_IDS)
def test_forward_uses_blas_follows_the_engines_last_resort(case, engine, finite_blas, inf_blas):
    x, w, b, _ = make(case)
    assert uses_blas(case, w) == finite_blas, engine
    w[1, 0, 1, 1] = np.inf
    assert uses_blas(case, w) == inf_blas, engine
    assert uses_blas(case, w, np.float64)  # float64 stays on BLAS in mode 1


def test_forward_uses_blas_follows_the_switches():
    case = PIN_CASES[0][0]
    x, w, b, _ = make(case)
    previous = kernels.use_direct(0)
    try:
        assert uses_blas(case, w)  # 4x4 planes: BLAS once the direct kernel is off
    finally:
        kernels.use_direct(previous)
    previous = kernels.use_tiles(2)
    try:
        assert not uses_blas(case, w) and not uses_blas(case, w, np.float64)
    finally:
        kernels.use_tiles(previous)


@contextlib.contextmanager
def counting_pins(counter):
    """conv.py's ``single_threaded`` counted."""
    original = conv_module.single_threaded

    @contextlib.contextmanager
    def counted():
        counter.append(1)
        with original():
            yield

    conv_module.single_threaded = counted
    try:
        yield
    finally:
        conv_module.single_threaded = original


@pytest.mark.parametrize("case,engine,finite_blas,inf_blas", PIN_CASES, ids=PIN_IDS)
def test_a_forward_pins_openblas_only_when_it_may_call_it(case, engine, finite_blas, inf_blas):
    x, w, b, padding = make(case, seed=1)
    for weight, expected in ((w, finite_blas), (np.where(np.arange(w.size).reshape(w.shape) == 7,
                                                         np.inf, w).astype(np.float32), inf_blas)):
        pins = []
        with counting_pins(pins), mp.no_grad():
            F.conv2d(mp.tensor(x), mp.tensor(weight), mp.tensor(b), padding=padding)
        assert len(pins) == int(expected), engine


@pytest.mark.parametrize("case", [c for c, *_ in PIN_CASES] + [(3, 40, 4, 50, 3, 1)], ids=PIN_IDS + ["odd"])
@pytest.mark.parametrize("inf_in_weight", [False, True])
def test_unpinned_forwards_give_the_pinned_bits_with_openblas_on_two_threads(case, inf_in_weight):
    """The forward and its gradients at 1 and 2 threads with OpenBLAS left on 2, against
    every forward pinned (the start build's way): the same bits."""
    before = blas_num_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS minipool can reach")
    x, w, b, padding = make(case, seed=2)
    if inf_in_weight:
        w[0, 0, 0, 0] = np.inf
    g = np.random.default_rng(3).standard_normal(
        (x.shape[0], w.shape[0]) + (x.shape[2] + 2 * padding - w.shape[2] + 1,) * 2).astype(np.float32)

    def run():
        xt, wt, bt = (mp.tensor(a, requires_grad=True) for a in (x, w, b))
        out = F.conv2d(xt, wt, bt, padding=padding)
        out.backward(g)
        return [out.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()]

    original = conv_module._blas_pinned
    try:
        set_blas_num_threads(2)
        results = [with_threads(t, run) for t in (1, 2)]
        conv_module._blas_pinned = lambda *args: conv_module.single_threaded()
        pinned = with_threads(2, run)
        assert blas_num_threads() == 2
    finally:
        conv_module._blas_pinned = original
        set_blas_num_threads(before)
    for got in results:
        for name, a, want in zip(["out", "grad_x", "grad_w", "grad_b"], got, pinned):
            np.testing.assert_array_equal(a, want, err_msg=name)


# The direct launch on 2+ threads: where a range of output channels is a single block (it
# cannot be halved), the last chunks run as two halves of their images, as long as the
# halves' tiles hold at most 1/8 more slots (16x16 planes with a 5x5 kernel: 6% more;
# 4x4 and 8x8 planes: every pixel has taps of its own, a half would fill half a tile).
# (N, C, H, W, O, kernel, padding): the image halves taken at 2 threads or not
TAIL_CASES = [
    ((64, 16, 16, 16, 32, 5, 2), True),     # 16->32 5x5 on 16x16: 2 ranges of one block
    ((64, 32, 16, 16, 16, 5, 2), True),     # its input gradient's forward: one range
    ((64, 8, 10, 12, 16, 3, 1), True),      # channels-last by planes (120 pixels)
    ((64, 4, 10, 10, 8, 3, 1), True),       # 12-image chunks (one-vector block): halves of 6
    ((7, 16, 16, 16, 32, 5, 2), True),      # a batch of 2 chunks: the tail is all of them
    ((1, 32, 16, 16, 16, 5, 2), True),      # one image: an empty second half
    ((64, 64, 4, 4, 64, 5, 2), False),      # 4x4 planes: whole chunks
    ((64, 32, 8, 8, 64, 5, 2), False),      # 8x8 planes
    ((64, 6, 14, 14, 16, 5, 0), False),     # LeNet's conv2: 3-image chunks, halves of 2 and 1
    ((64, 128, 8, 8, 128, 3, 1), False),    # ranges of 2 blocks: halves of channels as before
]
TAIL_IDS = [f"tail{i}" for i in range(len(TAIL_CASES))]


def direct_case(case):
    N, C, H, W, O, k, padding = case
    Ho, Wo = H + 2 * padding - k + 1, W + 2 * padding - k + 1
    geometry = conv_module.ConvGeometry(k, k, 1, 1, padding, padding, 1, 1, Ho, Wo, 1)
    return (N, C, H, W, O, geometry)


@pytest.mark.parametrize("case,halves", TAIL_CASES, ids=TAIL_IDS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_direct_chunks_cover_every_output_once_on_any_team(case, halves, threads):
    """Every image and output channel in exactly one chunk; image halves only where the
    case says, only on 2+ threads, only in the last DIRECT_TAIL_CHUNKS whole chunks."""
    N, C, H, W, O, geometry = direct_case(case)
    chunks, _ = kernels.direct_chunks(N, C, H, W, O, geometry, False, threads)
    count = kernels.direct_split(N, C, H, W, O, geometry)[0]
    seen = np.zeros((N, O), int)
    for first, images, o_begin, o_end in chunks:
        seen[first:first + images, o_begin:o_end] += 1
    assert (seen == 1).all()
    short = [c for c, (first, images, _, _) in enumerate(chunks)
             if images < min(count, N - first)]  # (an empty half starts past the batch)
    whole_chunks = -(-N // count) * kernels.direct_split(N, C, H, W, O, geometry)[1]
    if halves and threads > 1:  # the last (up to) 4 whole chunks as 8 halves of images
        tail = min(4, whole_chunks)
        assert len(chunks) == whole_chunks + tail
        assert all(c >= len(chunks) - 2 * tail for c in short)
        assert all(o_end - o_begin == chunks[0][3] - chunks[0][2]
                   for _, _, o_begin, o_end in chunks if o_end < O)
    else:
        assert not short


def kernel_forward(x, w, b, geometry, threads, load_team=False):
    N, C, H, W = x.shape
    w2 = np.ascontiguousarray(w.reshape(w.shape[0], -1))
    block_rows, images, per_thread, _ = kernels.plan_batch(N, C, H, W, w.shape[0], geometry,
                                                          1 << 16, 512, 8)
    out = np.full((N, w.shape[0], geometry.Ho, geometry.Wo), -7.0, x.dtype)
    kernels.conv2d_forward(x, w2, b, out, geometry, block_rows,
                           np.empty((threads, per_thread), x.dtype), threads, images,
                           load_team=load_team)
    return out


@pytest.mark.parametrize("case,halves", TAIL_CASES[:6] + TAIL_CASES[8:9], ids=TAIL_IDS[:6] + TAIL_IDS[8:9])
@pytest.mark.parametrize("helper_delay", [0.0, 0.003])
def test_direct_image_halves_give_the_one_thread_bits(case, halves, helper_delay):
    """The same bits on 1 thread (whole chunks), on 2-3 (halves), OpenMP or the team with
    a helper that joins late, NCHW and channels-last (by planes where it copies them)."""
    N, C, H, W, O, geometry = direct_case(case)
    rng = np.random.default_rng(30)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = (rng.standard_normal((O, C, geometry.kh, geometry.kw)) * 0.1).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    previous = kernels.use_direct(2)
    kernels.set_load_team_helper_delay(helper_delay)
    try:
        alone = kernel_forward(x, w, b, geometry, 1)
        for threads, team in [(2, False), (2, True), (3, True)]:
            np.testing.assert_array_equal(kernel_forward(x, w, b, geometry, threads, team), alone,
                                          err_msg=f"{threads} threads, team {team}")
        x_nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        w_nhwc = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(O, -1)
        for threads in (1, 2, 3):
            for by_planes in (False, True):
                out = np.full((N, geometry.Ho, geometry.Wo, O), -7.0, np.float32)
                kernels.conv2d_direct_channels_last(x_nhwc, w_nhwc, b, out, geometry, threads,
                                                    by_planes)
                np.testing.assert_array_equal(out, alone.transpose(0, 2, 3, 1),
                                              err_msg=f"NHWC {threads} threads, planes {by_planes}")
    finally:
        kernels.set_load_team_helper_delay(0)
        kernels.use_direct(previous)
