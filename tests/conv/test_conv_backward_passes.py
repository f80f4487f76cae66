"""conv2d's and conv_transpose2d's backward helpers in conv2d_weight_grad.pyx:
``flip_weight`` (the stride-1 input gradient's weight, with the finite check) and
``sum_rows`` (a channels-last transposed convolution's bias gradient in NumPy's order).

Checked against loop references, NumPy's own bits, PyTorch, float64 central
differences, and 1 / 2 / 3 threads bit for bit.
"""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels.conv2d_weight_grad import flip_weight, sum_rows
from tests.conv.conv_checks import reference
from tests.helpers import fixed_threads


def flip_by_loops(weight, groups):
    """The flipped weight element by element: out[c, o*taps + t] = w[o, c', taps-1-t]."""
    O, Cg, kh, kw = weight.shape
    Og, taps = O // groups, kh * kw
    out = np.empty((Cg * groups, Og * taps), weight.dtype)
    for grp in range(groups):
        for o in range(Og):
            for c in range(Cg):
                for ki in range(kh):
                    for kj in range(kw):
                        out[grp * Cg + c, o * taps + ki * kw + kj] = \
                            weight[grp * Og + o, c, kh - 1 - ki, kw - 1 - kj]
    return out


@settings(max_examples=40, deadline=None)
@given(groups=st.sampled_from([1, 2, 3]), opg=st.integers(1, 9), cpg=st.integers(1, 40),
       kh=st.integers(1, 5), kw=st.integers(1, 5), threads=st.sampled_from([1, 2, 3]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_flip_weight_matches_the_loop_reference(groups, opg, cpg, kh, kw, threads, dtype):
    """Channel blocks of 16 that end inside a group, 1-25 taps, any thread count."""
    rng = np.random.default_rng(opg * 100 + cpg)
    weight = rng.standard_normal((groups * opg, cpg, kh, kw)).astype(dtype)
    out = np.full((groups * cpg, opg * kh * kw), np.nan, dtype)
    assert flip_weight(weight.reshape(groups * opg, -1), out, groups, kh * kw, threads)
    np.testing.assert_array_equal(out, flip_by_loops(weight, groups))


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_flip_weight_reports_a_non_finite_weight(value):
    weight = np.ones((4, 3, 3, 3), np.float32)
    weight[3, 2, 2, 1] = value
    out = np.empty((3, 4 * 9), np.float32)
    assert not flip_weight(weight.reshape(4, -1), out, 1, 9)
    np.testing.assert_array_equal(out, flip_by_loops(weight, 1))  # copied all the same


def test_flip_weight_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="out has shape"):
        flip_weight(np.ones((4, 27), np.float32), np.empty((4, 36), np.float32), 1, 9)
    with pytest.raises(ValueError, match="does not split"):
        flip_weight(np.ones((4, 26), np.float32), np.empty((3, 36), np.float32), 1, 9)


@pytest.mark.parametrize("k,padding,value", [(3, 1, np.inf), (5, 2, np.nan)])
def test_input_gradient_with_a_non_finite_weight_matches_the_loop_reference(k, padding, value):
    """float32 16->32 on 6x6 planes runs its input gradient as the flipped forward; a
    weight with inf or NaN keeps the scatter there (the flipped forward's padding zeros
    would meet it): the input gradient is still the reference's, inf or NaN where it has them."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 16, 6, 6)).astype(np.float32)
    w = rng.standard_normal((32, 16, k, k)).astype(np.float32)
    g = rng.standard_normal((3, 32, 6, 6)).astype(np.float32)
    finite = mp.tensor(x, requires_grad=True)
    F.conv2d(finite, mp.tensor(w), padding=padding).backward(g)
    w[5, 7, 1, 2] = value
    xt = mp.tensor(x, requires_grad=True)
    F.conv2d(xt, mp.tensor(w), padding=padding).backward(g)
    with np.errstate(invalid="ignore"):
        want = reference(x, w, None, 1, padding, 1, 1, grad_out=g)[1]
    got = xt.grad.numpy()
    assert not np.isfinite(want).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)  # inf and NaN where it has them
    # the other input channels: the finite weight's values (another engine: not its bits)
    np.testing.assert_allclose(got[:, 8:], finite.grad.numpy()[:, 8:], rtol=1e-4, atol=1e-4)


def test_sum_rows_gives_numpys_bits():
    """NumPy sums a C-contiguous array over its leading axes row after row from +0:
    the same bits, with values of wildly different size (any other order rounds
    elsewhere), inf, NaN and -0 (all -0 sums to +0)."""
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        g = rng.standard_normal((7, 5, 6, 19)).astype(dtype)
        g.reshape(-1)[::11] *= 1e7
        g[2, 1, 3, 4], g[0, 0, 0, 5], g[1, 1, 1, 6] = np.inf, np.nan, -np.inf
        g[:, :, :, 7] = -0.0
        out = np.empty(19, dtype)
        sum_rows(g.reshape(-1, 19), out)
        want = g.sum(axis=(0, 1, 2))
        np.testing.assert_array_equal(out, want)
        assert not np.signbit(out[7])
        loop = np.zeros(19, dtype)
        for row in g.reshape(-1, 19):
            loop = loop + row
        np.testing.assert_array_equal(out, loop)


def test_sum_rows_of_no_rows_is_zero_and_shapes_are_checked():
    out = np.full(3, np.nan, np.float32)
    sum_rows(np.empty((0, 3), np.float32), out)
    np.testing.assert_array_equal(out, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="out has 2 elements"):
        sum_rows(np.ones((4, 3), np.float32), np.empty(2, np.float32))


def transposed_grads(x, w, b, g, channels_last, threads):
    xt = mp.tensor(x, requires_grad=True)
    wt, bt = mp.tensor(w, requires_grad=True), mp.tensor(b, requires_grad=True)
    fmt = dict(data_format="channels_last") if channels_last else {}
    with fixed_threads(threads):
        F.conv_transpose2d(xt, wt, bt, stride=2, padding=1, **fmt).backward(g)
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channels_last_transposed_bias_gradient(dtype):
    """The channels-last transposed convolution's bias gradient: NumPy's sum's bits, 1 and
    2 threads alike, PyTorch's values and the channels-first result's."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 7, 6, 32)).astype(dtype)   # NHWC
    w = rng.standard_normal((32, 16, 4, 4)).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    g = rng.standard_normal((5, 14, 12, 16)).astype(dtype)  # NHWC output gradient
    one = transposed_grads(x, w, b, g, True, 1)
    two = transposed_grads(x, w, b, g, True, 2)
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(one[2], g.sum(axis=(0, 1, 2)))
    first = transposed_grads(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), w, b,
                             np.ascontiguousarray(g.transpose(0, 3, 1, 2)), False, 1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(one[2], first[2], rtol=tol, atol=tol)
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    tb = torch.from_numpy(b).requires_grad_()
    torch.nn.functional.conv_transpose2d(tx, torch.from_numpy(w), tb, stride=2, padding=1) \
        .backward(torch.from_numpy(g.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(one[2], tb.grad.numpy(), rtol=tol, atol=tol)


def test_channels_last_transposed_bias_gradchecks_in_float64():
    rng = np.random.default_rng(7)
    x = mp.tensor(rng.standard_normal((2, 3, 3, 4)))
    w = mp.tensor(rng.standard_normal((4, 3, 3, 3)))
    b = mp.tensor(rng.standard_normal(3), requires_grad=True)
    assert mp.autograd.gradcheck(
        lambda bias: F.conv_transpose2d(x, w, bias, stride=2, padding=1,
                                        data_format="channels_last"), (b,))


# (N, C, H, O, k, padding): at 2 threads the outer products' chunks of input channels
# would not share out evenly, so the blocks become fewer and even (16 = 8 + 8, tiles of 4)
EVEN_BLOCK_CASES = [
    (4, 16, 8, 16, 3, 1),     # one panel: 2 blocks of 8 instead of 6 + 6 + 4
    (3, 16, 6, 48, 3, 1),     # three panels: 6 chunks instead of 9
    (2, 30, 5, 16, 5, 2),     # 30 channels: 8 + 8 + 8 + 6 instead of 5 blocks of 6
]


@pytest.mark.parametrize("case", EVEN_BLOCK_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outer_product_chunks_give_the_same_bits_for_any_thread_count(case, dtype):
    from minipool._kernels.conv2d_weight_grad import conv2d_weight_grad_outer, use_wgrad_outer
    from minipool.ops.conv import ConvGeometry
    N, C, H, O, k, padding = case
    rng = np.random.default_rng(8)
    x = rng.standard_normal((N, C, H, H)).astype(dtype)
    g = rng.standard_normal((N, O, H, H)).astype(dtype)
    geometry = ConvGeometry(k, k, 1, 1, padding, padding, 1, 1, H, H, 1)
    previous = use_wgrad_outer(2)
    try:
        results = []
        for threads in (1, 2, 3, 4):
            out = np.full((O, C * k * k), np.nan, dtype)
            bias = np.full(O, np.nan, dtype)
            assert conv2d_weight_grad_outer(x, g, out, geometry, threads, bias=bias)
            results.append((out, bias))
    finally:
        use_wgrad_outer(previous)
    for out, bias in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(bias, results[0][1])
    want = reference(x.astype(np.float64), np.zeros((O, C, k, k)), np.zeros(O), 1, padding, 1,
                     1, grad_out=g.astype(np.float64))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(results[0][0].reshape(O, C, k, k), want[2], rtol=tol, atol=tol)
    np.testing.assert_allclose(results[0][1], want[3], rtol=tol, atol=tol)


def test_channels_last_transposed_input_gradient_reads_the_gradient_in_place(monkeypatch):
    """The measured choice: a gradient of 16 channels goes to the direct kernel straight from
    NHWC (not copied as planes first), with the bits of the planes copy and of 1 thread;
    one of 64 channels keeps conv2d's own choice (copied as planes for a 4x4 output)."""
    from minipool._kernels import conv2d as kernels
    rng = np.random.default_rng(10)
    x = rng.standard_normal((6, 7, 7, 32)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 4, 4)) * 0.1).astype(np.float32)
    g = rng.standard_normal((6, 14, 14, 16)).astype(np.float32)
    seen, direct = [], kernels.conv2d_direct_channels_last

    def recording(*args):
        seen.append(args[-1])
        return direct(*args)

    monkeypatch.setattr(kernels, "conv2d_direct_channels_last", recording)
    got = transposed_grads(x, w, np.zeros(16, np.float32), g, True, 2)[0]
    assert seen == ([False] if kernels.use_cpu_avx2(True) else [])
    if seen:
        from minipool.ops.conv import ConvGeometry, channels_last_weight
        planes = np.empty_like(got)
        geometry = ConvGeometry(4, 4, 2, 2, 1, 1, 1, 1, 7, 7, 1)
        direct(g, channels_last_weight(w), None, planes, geometry, 1, True)
        np.testing.assert_array_equal(got, planes)
    seen.clear()
    transposed_grads(x[..., :16], np.ascontiguousarray(w[:16, :, :, :].repeat(4, axis=1)),
                     np.zeros(64, np.float32), g.repeat(4, axis=3), True, 1)
    assert seen == ([kernels.direct_by_planes(7, 7)] if kernels.use_cpu_avx2(True) else [])


@pytest.mark.parametrize("out_channels,in_place", [(32, True), (64, False)])
def test_channels_last_input_gradient_copies_planes_only_for_wide_gradients(
        monkeypatch, out_channels, in_place):
    """conv2d's channels-last stride-1 input gradient on 8x8 planes: a 32-channel output
    gradient is read in place, a 64-channel one copied as planes (the measured choice);
    either way the input gradient has the planes copy's bits."""
    from minipool._kernels import conv2d as kernels
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 8, 8, 16)).astype(np.float32)
    w = (rng.standard_normal((out_channels, 16, 3, 3)) * 0.1).astype(np.float32)
    g = rng.standard_normal((5, 8, 8, out_channels)).astype(np.float32)
    seen, direct = [], kernels.conv2d_direct_channels_last

    def recording(*args):
        seen.append(args[-1])
        return direct(*args)

    monkeypatch.setattr(kernels, "conv2d_direct_channels_last", recording)
    xt = mp.tensor(x, requires_grad=True)
    F.conv2d(xt, mp.tensor(w), padding=1, data_format="channels_last").backward(g)
    if not kernels.use_cpu_avx2(True):
        return
    assert len(seen) == 2 and seen[1] == (not in_place)  # forward, then the input gradient
    from minipool.ops.conv import ConvGeometry, channels_last_weight
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    planes = np.empty_like(x)
    direct(g, channels_last_weight(flipped), None, planes,
           ConvGeometry(3, 3, 1, 1, 1, 1, 1, 1, 8, 8, 1), 1, True)
    np.testing.assert_array_equal(xt.grad.numpy(), planes)
    want = reference(np.moveaxis(x, -1, 1), w, None, 1, 1, 1, 1, grad_out=np.moveaxis(g, -1, 1))
    np.testing.assert_allclose(xt.grad.numpy(), np.moveaxis(want[1], 1, -1), rtol=1e-4, atol=1e-4)
