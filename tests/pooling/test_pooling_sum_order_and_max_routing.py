"""The pooling kernels' faster paths against their promises, on inputs where the
summation order and tie/NaN rules are visible (random non-integer floats):

* window sums follow one documented order in every path and both layouts:
  from 0 in scan order for windows of at most 64 cells; in larger ones
  (global and adaptive average, large kernels, LP) cell k (scan order) goes
  to partial sum k % 16, each partial sum runs from 0, and the partial sums
  are added from 0 in order; checked against a loop reference of that order
  and across layouts, paths and thread counts;
* NHWC max pooling of whole 2x2 / 3x3 windows (register path) gives the
  NCHW result transposed, with NaN, ties and -0/+0 mixed in;
* 2x2 stride 2 max-pool backward (the tiled write path) routes the gradient
  exactly as the generic zero-and-add path does.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels.pool_sum import SCAN_SUM_MAX_CELLS, SUM_LANES
from minipool.ops.pooling._functions import ExtremePool, PowerSumPool
from minipool.ops.pooling._geometry import adaptive_plan, window_plan
from tests.helpers import fixed_threads
from tests.pooling.pooling_cases import assert_identical as same

SOME = settings(max_examples=40, deadline=None)


def spread_floats(rng, shape, dtype):
    """Floats over many magnitudes, so a different summation order changes the bits."""
    x = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, size=shape)
    return x.astype(dtype)


def lane_sum(cells, dtype):
    """The promised order: in scan order up to SCAN_SUM_MAX_CELLS (64) cells; else cell k
    into partial sum k % SUM_LANES (16), partial sums added in order."""
    if len(cells) <= SCAN_SUM_MAX_CELLS:
        total = dtype.type(0)
        for v in cells:
            total = dtype.type(total + v)
        return total
    lanes = [dtype.type(0)] * SUM_LANES
    for k, v in enumerate(cells):
        lanes[k % SUM_LANES] = dtype.type(lanes[k % SUM_LANES] + v)
    total = dtype.type(0)
    for lane in lanes:
        total = dtype.type(total + lane)
    return total


def adaptive_avg_reference(x, out_hw):
    """Adaptive average of NCHW x summed in the promised order (loops, no kernels)."""
    n, c, h, w = x.shape
    oh_n, ow_n = out_hw
    out = np.empty((n, c, oh_n, ow_n), dtype=x.dtype)
    for oh in range(oh_n):
        h0, h1 = oh * h // oh_n, -(-(oh + 1) * h // oh_n)
        for ow in range(ow_n):
            w0, w1 = ow * w // ow_n, -(-(ow + 1) * w // ow_n)
            for b in range(n):
                for ch in range(c):
                    cells = x[b, ch, h0:h1, w0:w1].ravel()     # scan order
                    total = lane_sum(cells, x.dtype)
                    out[b, ch, oh, ow] = x.dtype.type(total / x.dtype.type(cells.size))
    return out


@SOME
@given(h=st.integers(1, 23), w=st.integers(1, 23), out_h=st.integers(1, 3),
       out_w=st.integers(1, 3), seed=st.integers(0, 2**31),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_adaptive_average_sums_in_the_promised_order_in_both_layouts(h, w, out_h, out_w, seed,
                                                                    dtype):
    out_h, out_w = min(out_h, h), min(out_w, w)
    x = spread_floats(np.random.default_rng(seed), (2, 3, h, w), dtype)
    expected = adaptive_avg_reference(x, (out_h, out_w))
    same(F.adaptive_avg_pool2d(mp.tensor(x), (out_h, out_w)), expected, "NCHW")
    last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    got = F.adaptive_avg_pool2d(mp.tensor(last), (out_h, out_w), data_format="channels_last")
    same(got.numpy().transpose(0, 3, 1, 2), expected, "NHWC")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_average_is_the_same_in_every_path_layout_and_thread_count(dtype):
    rng = np.random.default_rng(3)
    x = spread_floats(rng, (3, 7, 29, 31), dtype)      # 21 planes: a partial group of 8
    expected = adaptive_avg_reference(x[:1, :2], (1, 1))
    plan = adaptive_plan("adaptive_avg_pool2d", x.shape, 2, 1, None)
    assert plan.plane_group > 1
    results = {}
    for threads in (1, 2):
        with fixed_threads(threads):
            results[f"grouped, {threads} threads"] = PowerSumPool.apply(mp.tensor(x), plan=plan).numpy()
            results[f"one plane at a time, {threads} threads"] = PowerSumPool.apply(
                mp.tensor(x), plan=plan.variant(False, False)).numpy()
            last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            got = F.global_avg_pool2d(mp.tensor(last), keepdim=True, data_format="channels_last")
            results[f"NHWC, {threads} threads"] = got.numpy().transpose(0, 3, 1, 2)
    first = results.pop("grouped, 1 threads")
    same(first[:1, :2], expected, "against the loop reference")
    for name, other in results.items():
        same(other, first, name)


@SOME
@given(k=st.sampled_from([4, 7, (9, 8), 9]), s=st.integers(1, 3), ceil=st.booleans(),
       h=st.integers(4, 16), w=st.integers(4, 30), seed=st.integers(0, 2**31),
       p=st.sampled_from([1.0, 2.0, 2.5]))
def test_large_windows_agree_across_paths_and_layouts(k, s, ceil, h, w, seed, p):
    rng = np.random.default_rng(seed)
    x = np.abs(spread_floats(rng, (2, 3, h, w), np.float32))
    try:
        plan = window_plan("avg_pool2d", x.shape, 2, k, s, 0, 1, ceil, None, "count")
    except ValueError:
        return                                                  # input smaller than the kernel
    grad = rng.standard_normal(plan.out_shape).astype(np.float32)
    out = [PowerSumPool.apply(mp.tensor(x, requires_grad=True), plan=c, p=p)
           for c in (plan, plan.variant(False, False))]
    same(out[1], out[0], "row passes vs one window at a time")
    last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    plan_last = window_plan("avg_pool2d", last.shape, 2, k, s, 0, 1, ceil, "channels_last",
                            "count")
    leaf = mp.tensor(last, requires_grad=True)
    got = PowerSumPool.apply(leaf, plan=plan_last, p=p)
    same(got.numpy().transpose(0, 3, 1, 2), out[0], "NHWC vs NCHW")
    first = mp.tensor(x, requires_grad=True)
    PowerSumPool.apply(first, plan=plan, p=p).backward(grad)
    got.backward(np.ascontiguousarray(grad.transpose(0, 2, 3, 1)))
    same(leaf.grad.numpy().transpose(0, 3, 1, 2), first.grad, "gradient, NHWC vs NCHW")


def nasty_floats(rng, shape, dtype):
    """Few distinct values (ties), signed zeros, NaN and infinities."""
    x = rng.choice(np.array([-2.5, -1.0, -0.0, 0.0, 1.0, 2.5]), size=shape)
    special = rng.random(shape)
    x[special < 0.03] = np.nan
    x[(special >= 0.03) & (special < 0.05)] = np.inf
    x[(special >= 0.05) & (special < 0.07)] = -np.inf
    return x.astype(dtype)


@SOME
@given(kind=st.sampled_from([(2, 2, 0), (3, 2, 1)]), ceil=st.booleans(), h=st.integers(2, 13),
       w=st.integers(2, 13), channels=st.sampled_from([1, 3, 8, 70, 300]),
       seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64, np.int32]),
       is_min=st.booleans())
def test_channels_last_whole_windows_match_channels_first(kind, ceil, h, w, channels, seed,
                                                          dtype, is_min):
    k, s, p = kind
    rng = np.random.default_rng(seed)
    if dtype == np.int32:
        x = rng.integers(-3, 4, size=(2, channels, h, w)).astype(dtype)
    else:
        x = nasty_floats(rng, (2, channels, h, w), dtype)
    pool = F.min_pool2d if is_min else F.max_pool2d
    first = mp.tensor(x, requires_grad=dtype != np.int32)
    out, idx = pool(first, k, s, p, ceil_mode=ceil, return_indices=True)
    last = mp.tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), requires_grad=dtype != np.int32)
    out_l, idx_l = pool(last, k, s, p, ceil_mode=ceil, return_indices=True,
                        data_format="channels_last")
    same(out_l.numpy().transpose(0, 3, 1, 2), out, "values")
    same(idx_l.numpy().transpose(0, 3, 1, 2), idx, "indices")
    if dtype != np.int32:
        grad = rng.integers(-4, 5, out.shape).astype(dtype)
        out.backward(grad)
        out_l.backward(np.ascontiguousarray(grad.transpose(0, 2, 3, 1)))
        same(last.grad.numpy().transpose(0, 3, 1, 2), first.grad, "gradient")


def route_reference(x, grad, k):
    """Max-pool backward by loops: each window's gradient to its first max (last NaN)."""
    n, c, h, w = x.shape
    out = np.zeros_like(grad, shape=x.shape)
    for b in range(n):
        for ch in range(c):
            for oh in range(h // k):
                for ow in range(w // k):
                    best, where = -np.inf, (oh * k, ow * k)
                    for dh in range(k):
                        for dw in range(k):
                            v = x[b, ch, oh * k + dh, ow * k + dw]
                            if v > best or np.isnan(v):
                                best, where = v, (oh * k + dh, ow * k + dw)
                    out[(b, ch) + where] += grad[b, ch, oh, ow]
    return out


@SOME
@given(h=st.integers(1, 9).map(lambda v: 2 * v), w=st.integers(1, 21).map(lambda v: 2 * v),
       planes=st.integers(1, 5), seed=st.integers(0, 2**31),
       dtype=st.sampled_from([np.float32, np.float64]), layout=st.sampled_from(["first", "last"]))
def test_tiled_max_backward_routes_like_the_loop_reference(h, w, planes, seed, dtype, layout):
    rng = np.random.default_rng(seed)
    x = nasty_floats(rng, (2, planes, h, w), dtype)
    grad = spread_floats(rng, (2, planes, h // 2, w // 2), dtype)
    grad[rng.random(grad.shape) < 0.05] = np.nan                 # NaN gradients pass through
    expected = route_reference(x, grad, 2)
    if layout == "first":
        leaf = mp.tensor(x, requires_grad=True)
        F.max_pool2d(leaf, 2).backward(grad)
        got = leaf.grad.numpy()
    else:
        leaf = mp.tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), requires_grad=True)
        F.max_pool2d(leaf, 2, data_format="channels_last").backward(
            np.ascontiguousarray(grad.transpose(0, 2, 3, 1)))
        got = leaf.grad.numpy().transpose(0, 3, 1, 2)
    same(got, expected, f"{layout} gradient")
    plan = window_plan("max_pool2d", x.shape, 2, 2, 2, 0, 1, False, None, "one")
    assert plan.tiled == (w > 2)        # (one window per row: no W stride, no quads path)
    general = mp.tensor(x, requires_grad=True)
    ExtremePool.apply(general, plan=plan.variant(False, False)).backward(grad)
    same(general.grad, expected, "generic zero-and-add path")


BITS = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def same_bits(actual, expected, what):
    """Equal to the bit (so -0.0 != +0.0 and NaN payloads must match)."""
    actual = actual.numpy() if hasattr(actual, "numpy") else np.asarray(actual)
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    bits = BITS[expected.dtype]
    np.testing.assert_array_equal(np.ascontiguousarray(actual).view(bits),
                                  np.ascontiguousarray(expected).view(bits), err_msg=what)


def nasty_gradient(rng, shape, dtype):
    """Gradients with NaN (one with a payload), infinities and signed zeros."""
    g = spread_floats(rng, shape, dtype)
    pick = rng.random(shape)
    g[pick < 0.05] = np.nan
    g[(pick >= 0.05) & (pick < 0.08)] = -np.inf
    g[(pick >= 0.08) & (pick < 0.12)] = -0.0
    g[(pick >= 0.12) & (pick < 0.15)] = 0.0
    if g.size:
        payload = np.array([0x7FC01234 if dtype == np.float32 else 0x7FF8000000005678],
                           dtype=BITS[np.dtype(dtype)]).view(dtype)[0]
        g.reshape(-1)[rng.integers(g.size)] = payload
    return g


def scatter_reference(grad, indices, plane_size):
    """NCHW input gradient by loops from per-plane flat argmax indices: +0.0
    everywhere, each window's gradient added at its argmax (so a -0.0 gradient
    lands as +0.0, as in PyTorch).  The tiled write path stores instead of adding
    (its windows do not overlap) and must give the same bits; NaN payloads
    survive both."""
    n, c = grad.shape[:2]
    out = np.zeros((n, c, plane_size), dtype=grad.dtype)
    g = grad.reshape(n, c, -1)
    idx = indices.reshape(n, c, -1)
    for b in range(n):
        for ch in range(c):
            for o in range(g.shape[2]):
                out[b, ch, idx[b, ch, o]] += g[b, ch, o]
    return out


@SOME
@given(oh=st.integers(1, 6), ow=st.integers(1, 9), odd=st.sampled_from([(0, 0), (1, 0), (0, 1)]),
       batch=st.integers(1, 3), channels=st.sampled_from([2, 3, 4, 5, 6, 7, 8, 13, 64]),
       seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64]),
       is_min=st.booleans())
def test_channels_last_max_backward_routes_bits_like_the_loop_reference(oh, ow, odd, batch,
                                                                        channels, seed, dtype,
                                                                        is_min):
    """NHWC 2x2 stride 2 backward (the tiled channel-group kernel when the windows
    tile the input, the general zero-and-add path when an odd row/column is left
    over) against loops over the forward's argmax; 1 and 2 threads, every channel
    split, bit for bit."""
    rng = np.random.default_rng(seed)
    h, w = 2 * oh + odd[0], 2 * ow + odd[1]
    x = nasty_floats(rng, (batch, channels, h, w), dtype)
    grad = nasty_gradient(rng, (batch, channels, oh, ow), dtype)
    pool = F.min_pool2d if is_min else F.max_pool2d
    _, indices = pool(mp.tensor(x), 2, return_indices=True)
    if not is_min:
        same(indices, _argmax_indices(x, 2), "forward argmax against loops")
    last = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    grad_last = np.ascontiguousarray(grad.transpose(0, 2, 3, 1))
    plan = window_plan(pool.__name__, last.shape, 2, 2, 2, 0, 1, False, "channels_last", "one")
    tiled = plan.tiled
    assert tiled == (odd == (0, 0) and ow > 1)        # (one window per row: no W span)
    expected = scatter_reference(grad, indices.numpy(), h * w).reshape(x.shape)
    expected_last = np.ascontiguousarray(expected.transpose(0, 2, 3, 1))
    for threads in (1, 2):
        with fixed_threads(threads):
            leaf = mp.tensor(last, requires_grad=True)
            pool(leaf, 2, data_format="channels_last").backward(grad_last)
            same_bits(leaf.grad, expected_last, f"public op, {threads} threads")
    # the kernel itself, every thread count and channel slice (as the op splits
    # channels when there are fewer images than threads)
    from minipool._kernels import pool_extreme as K
    view = plan.layout.view
    codes = np.empty(plan.out_view, dtype=np.uint8)
    out = np.empty(plan.out_view, dtype=dtype)
    K.extreme_forward(last.reshape(view), out, codes, plan.tables, plan.forward_path, is_min,
                      True, channels, 1)
    g = grad_last.reshape(plan.out_view)
    for threads, channel_slice in ((1, channels), (2, channels), (2, -(-channels // 2)), (2, 1),
                                   (2, 5)):
        got = np.full(view, np.nan, dtype=dtype)                # every cell must be written
        K.extreme_backward(g, codes, got, plan.tables, plan.backward_path, channel_slice,
                           threads)
        same_bits(got.reshape(last.shape), expected_last,
                  f"{threads} threads, slices of {channel_slice}")


def _argmax_indices(x, k):
    """PyTorch's flat per-plane argmax of k x k stride k windows, by loops: the
    first maximum in scan order, but a later NaN always takes over (the last NaN
    wins); the first cell if nothing beats -inf."""
    n, c, h, w = x.shape
    out = np.empty((n, c, h // k, w // k), dtype=np.int64)
    for b in range(n):
        for ch in range(c):
            for oh in range(h // k):
                for ow in range(w // k):
                    best, where = -np.inf, oh * k * w + ow * k
                    for dh in range(k):
                        for dw in range(k):
                            v = x[b, ch, oh * k + dh, ow * k + dw]
                            if v > best or np.isnan(v):
                                best, where = v, (oh * k + dh) * w + ow * k + dw
                    out[b, ch, oh, ow] = where
    return out


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_negative_zero_gradient_lands_as_positive_zero_on_every_path(layout, dtype):
    """PyTorch fills the input gradient with zeros and adds, so a -0.0 output gradient
    arrives as +0.0; the tiled paths store instead of adding and must agree."""
    x = np.arange(2 * 3 * 4 * 6, dtype=dtype).reshape(2, 3, 4, 6)   # 2x2 windows tile it
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    leaf = mp.tensor(x, requires_grad=True)
    out = F.max_pool2d(leaf, 2, data_format=layout)
    out.backward(np.full(out.shape, -0.0, dtype=dtype))
    assert not np.signbit(leaf.grad.numpy()).any()
