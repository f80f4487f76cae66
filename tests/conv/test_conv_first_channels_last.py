"""One input channel, channels last, on the first-layer kernel (conv2d_first_channels_last).

(N, H, W, 1) is the same memory as (N, 1, H, W), so the NCHW first-layer tiles run it into
a worker's buffer and ``mp_first_to_pixels`` writes each image's output pixel by pixel
(8x8 register transposes; under 8 channels each pixel's store runs into the next pixel's
slot and the blocks stop short of the image's end).  Checked: the NCHW forward's bits, a
loop reference written here, PyTorch, 1 vs 2 threads, every image of a batch (no store
past an image), rows and channel counts that end inside a block, inf and NaN, and which
engine the default picks (16 and 32 channels: the direct kernel).
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from tests.conv.test_conv_first import geometry_of


def loop_conv_nhwc(x, w, b, padding):
    """out[n, i, j, o] = sum over ki, kj of w[o, 0, ki, kj] * x[n, i + ki - p, j + kj - p, 0]
    (+ b[o]), in float64, one output at a time."""
    N, H, W, _ = x.shape
    O, _, k, _ = w.shape
    Ho, Wo = H + 2 * padding - k + 1, W + 2 * padding - k + 1
    padded = np.zeros((N, H + 2 * padding, W + 2 * padding), np.float64)
    padded[:, padding:padding + H, padding:padding + W] = x[..., 0]
    out = np.zeros((N, Ho, Wo, O), np.float64)
    for n in range(N):
        for i in range(Ho):
            for j in range(Wo):
                for o in range(O):
                    total = 0.0 if b is None else float(b[o])
                    for ki in range(k):
                        for kj in range(k):
                            total += float(w[o, 0, ki, kj]) * padded[n, i + ki, j + kj]
                    out[n, i, j, o] = total
    return out


def inputs(N, H, W, O, k, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, 1)).astype(np.float32)
    w = rng.standard_normal((O, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32) if bias else None
    return x, w, b


def nhwc(x, w, b, padding, threads=None):
    previous = mp.get_num_threads()
    if threads is not None:
        mp.set_num_threads(threads)
    try:
        with mp.no_grad():
            return F.conv2d(mp.tensor(x), mp.tensor(w), None if b is None else mp.tensor(b),
                            padding=padding, data_format="channels_last").numpy()
    finally:
        mp.set_num_threads(previous)


def nchw(x, w, b, padding):
    with mp.no_grad():
        y = F.conv2d(mp.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), mp.tensor(w),
                     None if b is None else mp.tensor(b), padding=padding)
    return y.numpy().transpose(0, 2, 3, 1)


def on_first(H, W, O, k, padding):
    x = np.empty((1, 1, H, W), np.float32)
    return kernels.uses_first(1, H, W, O, geometry_of(x, np.empty((O, 1, k, k)), padding),
                              channels_last=True)


# (N, H, W, O, k, padding, bias): LeNet's conv1; 8-pixel blocks ending inside a row and
# images whose pixel count is not a multiple of 8; 1-7 channels (stores into the next
# pixel's slot), 9-15 and 24 (the last channel block moved back)
CASES = [(3, 32, 32, 6, 5, 0, True), (2, 28, 28, 12, 3, 1, True), (2, 17, 19, 7, 3, 1, True),
         (3, 16, 21, 1, 5, 2, True), (2, 20, 18, 3, 3, 0, False), (2, 18, 23, 9, 5, 2, True),
         (2, 16, 16, 24, 3, 1, True), (1, 19, 17, 15, 3, 1, False)]


@pytest.mark.parametrize("case", CASES)
def test_nhwc_first_layer_gives_the_nchw_bits_and_the_loop_sums(case):
    N, H, W, O, k, padding, bias = case
    assert on_first(H, W, O, k, padding)
    x, w, b = inputs(N, H, W, O, k, bias, seed=O)
    got = nhwc(x, w, b, padding)
    np.testing.assert_array_equal(got, nchw(x, w, b, padding))
    np.testing.assert_allclose(got, loop_conv_nhwc(x, w, b, padding), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", CASES[:4])
def test_nhwc_first_layer_matches_torch_and_any_thread_count(case):
    import torch
    N, H, W, O, k, padding, bias = case
    x, w, b = inputs(N, H, W, O, k, bias, seed=1)
    one = nhwc(x, w, b, padding, threads=1)
    np.testing.assert_array_equal(nhwc(x, w, b, padding, threads=2), one)
    with torch.no_grad():
        t = torch.nn.functional.conv2d(
            torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(w),
            None if b is None else torch.from_numpy(b), padding=padding)
    np.testing.assert_allclose(one, t.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-5)


def test_nhwc_first_layer_writes_every_image_and_nothing_else():
    """Images given distinct constant planes: each image's output is its own (a store
    running past an image's end would overwrite the next image's first pixels)."""
    N, H, W, O, k = 5, 16, 17, 5, 3
    x = np.broadcast_to(np.arange(1, N + 1, dtype=np.float32)[:, None, None, None],
                        (N, H, W, 1)).copy()
    w = np.ones((O, 1, k, k), np.float32)
    got = nhwc(x, w, None, 0)
    for n in range(N):
        np.testing.assert_array_equal(got[n], np.full((H - 2, W - 2, O), 9.0 * (n + 1)))


@pytest.mark.parametrize("where", ["input", "weight"])
def test_nhwc_first_layer_carries_inf_and_nan_as_nchw(where):
    x, w, b = inputs(2, 18, 20, 6, 3, seed=5)
    target = x if where == "input" else w
    target.flat[np.random.default_rng(6).choice(target.size, 3, replace=False)] = \
        [np.inf, -np.inf, np.nan]
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(nhwc(x, w, b, 1), nchw(x, w, b, 1))


def test_default_pick_for_one_channel_nhwc():
    """First-layer kernel for LeNet's conv1 and 4-12 or 24 channels on rows of 16+;
    16 and 32 channels go to the direct kernel; rows under 16 and float64 keep the
    others (the same pick as NCHW's ``_first_win`` there)."""
    for H, O, k, p in [(32, 6, 5, 0), (28, 4, 3, 1), (28, 12, 5, 2), (64, 24, 3, 1)]:
        assert on_first(H, H, O, k, p)
    for H, O, k, p in [(28, 16, 3, 1), (64, 32, 5, 2), (12, 6, 3, 1)]:
        assert not on_first(H, H, O, k, p)
    x = np.empty((1, 1, 28, 28))
    assert not kernels.uses_first(1, 28, 28, 6, geometry_of(x, np.empty((6, 1, 3, 3)), 1),
                                  float64=True, channels_last=True)
    assert kernels.uses_direct_channels_last(1, 28, 28, 16,
                                             geometry_of(x, np.empty((16, 1, 3, 3)), 1))


def test_float64_and_the_direct_pick_still_match_the_loop():
    for O, dtype in [(6, np.float64), (16, np.float32)]:
        x, w, b = inputs(2, 20, 20, O, 3, seed=O)
        x, w, b = x.astype(dtype), w.astype(dtype), b.astype(dtype)
        np.testing.assert_allclose(nhwc(x, w, b, 1), loop_conv_nhwc(x, w, b, 1),
                                   rtol=1e-5, atol=1e-5)


def test_kernel_entry_refuses_what_it_cannot_run():
    x = np.zeros((1, 8, 8, 2), np.float32)
    w = np.zeros((4, 18), np.float32)
    geometry = geometry_of(np.zeros((1, 2, 8, 8)), np.zeros((4, 2, 3, 3)), 1)
    with pytest.raises(ValueError, match="one input channel"):
        kernels.conv2d_first_channels_last(x, w, None, np.zeros((1, 8, 8, 4), np.float32),
                                           geometry, 1)
    with pytest.raises(ValueError, match="do not match"):
        kernels.conv2d_first_channels_last(np.zeros((1, 8, 8, 1), np.float32),
                                           np.zeros((4, 9), np.float32), None,
                                           np.zeros((1, 8, 8, 3), np.float32), geometry, 1)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), O=st.integers(1, 26), H=st.integers(6, 24), W=st.integers(16, 40),
       k=st.sampled_from([3, 5]), pad=st.integers(0, 2), seed=st.integers(0, 2 ** 16))
def test_random_nhwc_first_layers_give_the_nchw_bits(N, O, H, W, k, pad, seed):
    previous = kernels.use_first(2)
    try:
        x, w, b = inputs(N, H, W, O, k, seed=seed)
        assume(on_first(H, W, O, k, pad))  # not: planes the tiles cannot read
        np.testing.assert_array_equal(nhwc(x, w, b, pad), nchw(x, w, b, pad))
    finally:
        kernels.use_first(previous)
