"""Kernel-level checks of the pooling kernels (minipool/_kernels/pool_*.pyx).

The reference tests (test_pooling_vs_reference.py, references/test_pooling_torch_parity.py) check
*what* every op computes.  These check the kernels' internal promises:

* the unrolled fast paths, the row passes and the one-window-at-a-time scalar
  path give bit-identical results (values, argmax, gradients);
* 1 and 2 threads give bit-identical results;
* channels-last input gives exactly the channels-first result, transposed;
* the argmax is stored compactly (uint8 ordinals or int32 offsets, never
  int64) and not at all when no graph is recorded;
* non-contiguous, negatively strided and read-only inputs give the results
  of their contiguous copies;
* windows with no real cell and windows too big for uint8 codes behave.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool.ops.pooling import _functions
from minipool.ops.pooling._functions import ExtremePool, PowerSumPool
from minipool.ops.pooling._geometry import adaptive_plan, window_plan
from tests.helpers import fixed_threads
from tests.pooling.pooling_cases import assert_identical as same

FAST = settings(max_examples=120, deadline=None)


def with_specials(rng, shape, dtype):
    """Random values with ties, NaN and infinities mixed in."""
    x = rng.integers(-3, 4, size=shape).astype(np.float64)
    special = rng.random(shape)
    x[special < 0.04] = np.nan
    x[(special >= 0.04) & (special < 0.07)] = np.inf
    x[(special >= 0.07) & (special < 0.10)] = -np.inf
    return x.astype(dtype)


def run_extreme(x, plan, is_min, grad):
    """Forward (values + int64 indices) and backward through one PoolPlan."""
    leaf = mp.tensor(x, requires_grad=True)
    out, idx = ExtremePool.apply(leaf, plan=plan, is_min=is_min, return_indices=True)
    out.backward(grad)
    return out.numpy(), idx.numpy(), leaf.grad.numpy()


def run_sum(x, plan, grad, p=1.0):
    leaf = mp.tensor(x, requires_grad=True)
    out = PowerSumPool.apply(leaf, plan=plan, p=p)
    out.backward(grad)
    return out.numpy(), leaf.grad.numpy()


# ----------------------------------------------------------------------------- paths agree
geometries = st.sampled_from([
    # (kernel, stride, padding, dilation, ceil_mode): the fast shapes first
    (2, 2, 0, 1, False), (2, 2, 0, 1, True), (3, 2, 1, 1, False), (3, 2, 1, 1, True),
    (3, 1, 1, 1, False), (2, 1, 0, 2, True), ((2, 3), (1, 2), (1, 0), (2, 1), True),
    (4, 3, 2, 1, True), ((1, 3), 1, (0, 1), 1, False),
])


@FAST
@given(geometry=geometries, h=st.integers(1, 19), w=st.integers(1, 40),
       seed=st.integers(0, 2**31), dtype=st.sampled_from([np.float32, np.float64]),
       is_min=st.booleans())
def test_fast_row_pass_and_scalar_paths_are_bit_identical(geometry, h, w, seed, dtype, is_min):
    k, s, p, d, ceil = geometry
    rng = np.random.default_rng(seed)
    shape = (2, 3, h, w)
    try:
        plan = window_plan("max_pool2d", shape, 2, k, s, p, d, ceil, None, "one")
    except ValueError:
        return  # input too small for this geometry
    x = with_specials(rng, shape, dtype)
    grad = rng.integers(-4, 5, plan.out_shape).astype(dtype)
    results = [run_extreme(x, c, is_min, grad)
               for c in (plan, plan.variant(fast=False), plan.variant(False, False))]
    for name, other in zip(("row passes", "scalar"), results[1:]):
        for what, a, b in zip(("values", "indices", "gradient"), results[0], other):
            same(a, b, f"{name} vs fast path: {what}")
    if d == 1:
        avg = window_plan("avg_pool2d", shape, 2, k, s, p, 1, ceil, None, "span")
        sums = [run_sum(x, c, grad) for c in (avg, avg.variant(fast=False),
                                               avg.variant(False, False))]
        for other in sums[1:]:
            same(other[0], sums[0][0], "average values")
            same(other[1], sums[0][1], "average gradient")


@FAST
@given(geometry=geometries, h=st.integers(1, 12), w=st.integers(1, 12),
       channels=st.integers(1, 300), seed=st.integers(0, 2**31), is_min=st.booleans())
def test_channels_last_fast_and_general_paths_are_bit_identical(geometry, h, w, channels, seed,
                                                                is_min):
    k, s, p, d, ceil = geometry
    rng = np.random.default_rng(seed)
    shape = (2, h, w, channels)                # more than 256 channels crosses a buffer chunk
    try:
        plan = window_plan("max_pool2d", shape, 2, k, s, p, d, ceil, "channels_last", "one")
    except ValueError:
        return
    x = with_specials(rng, shape, np.float32)
    grad = rng.integers(-4, 5, plan.out_shape).astype(np.float32)
    fast = run_extreme(x, plan, is_min, grad)
    plain = run_extreme(x, plan.variant(False, False), is_min, grad)
    for what, a, b in zip(("values", "indices", "gradient"), fast, plain):
        same(a, b, f"channels_last fast vs general: {what}")
    if d == 1:
        avg = window_plan("avg_pool2d", shape, 2, k, s, p, 1, ceil, "channels_last", "span")
        a = run_sum(x, avg, grad)
        b = run_sum(x, avg.variant(False, False), grad)
        same(a[0], b[0], "channels_last average")
        same(a[1], b[1], "channels_last average gradient")


@FAST
@given(kind=st.sampled_from(["max", "min", "avg", "lp"]), geometry=geometries,
       h=st.integers(2, 12), w=st.integers(2, 12), channels=st.integers(1, 20),
       seed=st.integers(0, 2**31))
def test_channels_last_is_the_channels_first_result_transposed(kind, geometry, h, w, channels,
                                                              seed):
    k, s, p, d, ceil = geometry
    rng = np.random.default_rng(seed)
    x = with_specials(rng, (2, channels, h, w), np.float64)
    if kind == "lp":
        x = np.abs(np.nan_to_num(x, posinf=5.0, neginf=-5.0))
    ops = {
        "max": lambda t, fmt: F.max_pool2d(t, k, s, p, d, ceil, True, data_format=fmt),
        "min": lambda t, fmt: F.min_pool2d(t, k, s, p, d, ceil, True, data_format=fmt),
        "avg": lambda t, fmt: F.avg_pool2d(t, k, s, p, ceil, data_format=fmt),
        "lp": lambda t, fmt: F.lp_pool2d(t, 3, k, s, ceil, data_format=fmt),
    }
    try:
        first = mp.tensor(x, requires_grad=True)
        out_first = ops[kind](first, "channels_first")
    except ValueError:
        return
    last = mp.tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), requires_grad=True)
    out_last = ops[kind](last, "channels_last")
    if isinstance(out_first, tuple):
        same(out_last[1].numpy().transpose(0, 3, 1, 2), out_first[1], "indices")
        out_first, out_last = out_first[0], out_last[0]
    same(out_last.numpy().transpose(0, 3, 1, 2), out_first, "values")
    grad = rng.integers(-4, 5, out_first.shape).astype(np.float64)
    out_first.backward(grad)
    out_last.backward(np.ascontiguousarray(grad.transpose(0, 2, 3, 1)))
    same(last.grad.numpy().transpose(0, 3, 1, 2), first.grad, "gradient")


@pytest.mark.parametrize("output_size", [1, (1, 2), (2, 2)])
def test_planes_walked_side_by_side_match_planes_one_at_a_time(output_size):
    # few large windows per plane (global pooling): 8 planes are walked together
    rng = np.random.default_rng(8)
    x = with_specials(rng, (3, 7, 9, 23), np.float64)          # 21 planes: a partial group
    plan = adaptive_plan("adaptive_max_pool2d", x.shape, 2, output_size, None)
    assert plan.plane_group > 1
    grad = rng.integers(-4, 5, plan.out_shape).astype(np.float64)
    grouped = run_extreme(x, plan, False, grad)
    single = run_extreme(x, plan.variant(False, False), False, grad)
    for what, a, b in zip(("values", "indices", "gradient"), grouped, single):
        same(a, b, f"grouped max {what}")
    positive = np.abs(np.nan_to_num(x, posinf=3.0, neginf=-3.0))
    for p in (1.0, 2.0, 2.5):
        a = run_sum(positive, plan, grad, p)
        b = run_sum(positive, plan.variant(False, False), grad, p)
        same(a[0], b[0], f"grouped sum p={p}")
        same(a[1], b[1], f"grouped sum p={p} gradient")


def window_extreme_loops(x, out_w, is_min):
    """Adaptive (1, out_w) max or min pooling by loops: PyTorch's window bounds and
    rule in scan order (a NaN always takes over, so the last NaN wins; a tie keeps
    the first), the winner's value and plane index."""
    n, c, h, w = x.shape
    values = np.empty((n, c, 1, out_w), x.dtype)
    indices = np.empty((n, c, 1, out_w), np.int64)
    for ow in range(out_w):
        w0, w1 = (ow * w) // out_w, -((-(ow + 1) * w) // out_w)
        for b in range(n):
            for ch in range(c):
                best = None
                for r in range(h):
                    for col in range(w0, w1):
                        v = x[b, ch, r, col]
                        m = None if best is None else x[b, ch][best]
                        if m is None or v != v or (v < m if is_min else v > m):
                            best = (r, col)
                values[b, ch, 0, ow] = x[b, ch][best]
                indices[b, ch, 0, ow] = best[0] * w + best[1]
    return values, indices


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("is_min", [False, True])
def test_planes_walked_side_by_side_for_min_max_and_integers(dtype, is_min):
    # the side-by-side walk is compiled per kind (KeepMax / KeepMin) and element type
    rng = np.random.default_rng(10)
    shape = (3, 7, 9, 23)                                       # 21 planes: a partial group
    if np.dtype(dtype).kind == "f":
        x = with_specials(rng, shape, dtype)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(0, 4, size=shape).astype(dtype)         # many ties
        x.flat[::17] = info.min
        x.flat[5::19] = info.max
    plan = adaptive_plan("adaptive_max_pool2d", x.shape, 2, (1, 2), None)
    assert plan.plane_group > 1
    outs = {}
    for name, variant in (("grouped", plan), ("one plane at a time", plan.variant(False, False))):
        out, idx = ExtremePool.apply(mp.tensor(x), plan=variant, is_min=is_min, return_indices=True)
        outs[name] = (out.numpy(), idx.numpy())
    expected = window_extreme_loops(x, 2, is_min)
    for name, (values, indices) in outs.items():
        same(values, expected[0], f"{name} values")
        same(indices, expected[1], f"{name} indices")


# ----------------------------------------------------------------------------- threads
THREAD_CASES = [
    ("max 2x2", lambda t: F.max_pool2d(t, 2, return_indices=True)),
    ("max 3x3 s2 p1", lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True)),
    ("min dilated", lambda t: F.min_pool2d(t, 3, 1, 2, 2, True, return_indices=True)),
    ("avg ceil", lambda t: F.avg_pool2d(t, 3, 2, 1, True, False)),
    ("sum", lambda t: F.sum_pool2d(t, 3, 1, 1)),
    ("lp", lambda t: F.lp_pool2d(t.abs(), 1.5, 3, 2)),
    ("adaptive max", lambda t: F.adaptive_max_pool2d(t, (5, 7), return_indices=True)),
    ("adaptive avg", lambda t: F.adaptive_avg_pool2d(t, (5, 7))),
    ("global max", lambda t: F.global_max_pool2d(t)),
    ("stochastic", lambda t: F.stochastic_pool2d(t, 2, generator=7)),
    ("stochastic eval", lambda t: F.stochastic_pool2d(t, 3, 2, training=False)),
    ("max nhwc", lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True,
                                        data_format="channels_last")),
    ("avg nhwc", lambda t: F.avg_pool2d(t, 2, data_format="channels_last")),
    ("max 3d", lambda t: F.max_pool3d(t.reshape(4, 6, 8, 24, 16), 2, return_indices=True)),
]


@pytest.mark.parametrize("name, op", THREAD_CASES, ids=[c[0] for c in THREAD_CASES])
def test_one_and_two_threads_are_bit_identical(name, op):
    if name.startswith("stochastic"):  # needs non-negative input
        x = np.random.default_rng(3).random((4, 6, 48, 64)).astype(np.float32)
    else:
        x = with_specials(np.random.default_rng(3), (4, 6, 48, 64), np.float32)
    assert x.size >= 2 * mp._config.PARALLEL_WORK_THRESHOLD  # really runs on 2 threads
    results = []
    for threads in (1, 2):
        with fixed_threads(threads):
            leaf = mp.tensor(x, requires_grad=True)
            out = op(leaf)
            outs = out if isinstance(out, tuple) else (out,)
            grad = np.random.default_rng(5).integers(-4, 5, outs[0].shape).astype(np.float32)
            outs[0].backward(grad)
            results.append([o.numpy() for o in outs] + [leaf.grad.numpy()])
    for a, b in zip(*results):
        same(b, a, f"{name}: 2 threads vs 1")


# ----------------------------------------------------------------------------- argmax storage
def test_argmax_is_kept_as_uint8_ordinals_one_byte_per_output():
    x = mp.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)), requires_grad=True)
    out = F.max_pool2d(x, 3, 2, 1)
    codes = out.grad_fn.codes
    assert codes.dtype == np.uint8 and codes.nbytes == out.numel()    # 1/8 of int64 indices
    assert not any(isinstance(v, np.ndarray) and v.dtype == np.int64
                   for v in vars(out.grad_fn).values())


def test_windows_over_255_cells_keep_int32_offsets_and_route_correctly():
    rng = np.random.default_rng(1)
    x = rng.permutation(2 * 3 * 32 * 32).reshape(2, 3, 32, 32).astype(np.float64)
    leaf = mp.tensor(x, requires_grad=True)
    out, idx = F.max_pool2d(leaf, 16, return_indices=True)         # 256-cell windows
    assert out.grad_fn.codes.dtype == np.int32
    blocks = x.reshape(2, 3, 2, 16, 2, 16).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 2, 2, 256)
    np.testing.assert_array_equal(out.numpy(), blocks.max(-1))
    within = blocks.argmax(-1)
    rows = np.arange(2)[:, None] * 16 + within // 16
    cols = np.arange(2)[None, :] * 16 + within % 16
    np.testing.assert_array_equal(idx.numpy(), rows * 32 + cols)
    out.backward(np.ones(out.shape))
    expected = np.zeros(x.shape)
    np.put_along_axis(expected.reshape(2, 3, -1), idx.numpy().reshape(2, 3, -1), 1.0, axis=-1)
    np.testing.assert_array_equal(leaf.grad.numpy(), expected)
    glob = F.global_max_pool2d(mp.tensor(x, requires_grad=True), keepdim=True)  # 1024 cells
    assert glob.grad_fn.codes.dtype == np.int32


def test_no_argmax_is_stored_when_no_graph_is_recorded(monkeypatch):
    stored = []
    kernel = _functions.pool_extreme.extreme_forward

    def spy(x, out, codes, tables, path, is_min, store, unit_size, threads):
        stored.append((store, codes.size))
        return kernel(x, out, codes, tables, path, is_min, store, unit_size, threads)

    monkeypatch.setattr(_functions.pool_extreme, "extreme_forward", spy)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
    with mp.no_grad():
        out = F.max_pool2d(mp.tensor(x, requires_grad=True), 2)
    F.max_pool2d(mp.tensor(x), 2)                                   # no input needs grad
    assert out.grad_fn is None
    assert stored == [(False, 1), (False, 1)]
    F.max_pool2d(mp.tensor(x, requires_grad=True), 2)
    with mp.no_grad():
        F.max_pool2d(mp.tensor(x), 2, return_indices=True)          # asked for: computed
    assert stored[2:] == [(True, 2 * 3 * 4 * 4), (True, 2 * 3 * 4 * 4)]


def test_argmax_buffer_is_freed_after_backward():
    x = mp.tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    out = F.max_pool2d(x, 2)
    ctx = out.grad_fn
    out.sum().backward()
    assert getattr(ctx, "codes", None) is None


# ----------------------------------------------------------------------------- memory layouts
@pytest.mark.parametrize("make_view", [
    lambda a: a.transpose(1, 0, 2, 3),                     # channels and batch swapped
    lambda a: a[:, :, ::-1, ::-1],                         # negative strides
    lambda a: a[:, :, 1::2, :],                            # strided rows
    lambda a: np.broadcast_to(a[:1], a.shape),             # read-only, zero batch stride
], ids=["transposed", "reversed", "strided", "broadcast"])
@pytest.mark.parametrize("name, op", [
    ("max", lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True)),
    ("avg", lambda t: F.avg_pool2d(t, 2, ceil_mode=True)),
    ("adaptive", lambda t: F.adaptive_avg_pool2d(t, 3)),
    ("nhwc", lambda t: F.max_pool2d(t, 2, data_format="channels_last")),
])
def test_views_give_the_results_of_their_contiguous_copies(make_view, name, op):
    base = np.random.default_rng(2).standard_normal((3, 4, 9, 10))
    view = make_view(base)
    expected = op(mp.tensor(np.ascontiguousarray(view)))
    actual = op(mp.Tensor(view))
    for a, e in zip(actual if isinstance(actual, tuple) else (actual,),
                    expected if isinstance(expected, tuple) else (expected,)):
        same(a, e, f"{name} on a view")


# ----------------------------------------------------------------------------- edge windows
def test_a_window_with_no_real_cell_gives_minus_inf_index_minus_one_and_no_gradient():
    # docs/semantics.md section 7: along W the only window samples columns -1 and 1 of a
    # 1-wide input
    x = mp.tensor(np.arange(15.0).reshape(1, 3, 5, 1), requires_grad=True)
    out, idx = F.max_pool2d(x, (2, 2), padding=(0, 1), dilation=(1, 2), ceil_mode=True,
                            return_indices=True)
    assert out.shape == (1, 3, 3, 1)
    assert np.all(out.numpy() == -np.inf) and np.all(idx.numpy() == -1)
    low, low_idx = F.min_pool2d(x, (2, 2), padding=(0, 1), dilation=(1, 2), ceil_mode=True,
                                return_indices=True)
    assert np.all(low.numpy() == np.inf) and np.all(low_idx.numpy() == -1)
    out.backward(np.ones(out.shape))
    same(x.grad, np.zeros(x.shape), "gradient of empty windows")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_integer_max_and_min_pool_like_floats(dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(4)
    x = rng.integers(info.min, info.max, size=(2, 3, 7, 9), endpoint=True, dtype=dtype)
    x[0, 0, :2, :2] = info.min          # the type's extremes, tied
    x[0, 1, :2, :2] = info.max
    for fn in (F.max_pool2d, F.min_pool2d):
        out, idx = fn(mp.Tensor(x), 3, 2, 1, return_indices=True)
        assert out.dtype == dtype
        flat = x.reshape(2, 3, -1)
        chosen = np.take_along_axis(flat, idx.numpy().reshape(2, 3, -1), -1).reshape(out.shape)
        np.testing.assert_array_equal(chosen, out.numpy())
        if dtype != np.int64:  # float64 holds every int32 / uint8 value exactly
            ref, ref_idx = fn(mp.Tensor(x.astype(np.float64)), 3, 2, 1, return_indices=True)
            same(out.numpy().astype(np.float64), ref, f"{fn.__name__} {dtype}")
            same(idx, ref_idx, f"{fn.__name__} {dtype} indices")


def test_long_rows_cross_the_kernel_buffer_boundary():
    # rows of more than 256 outputs are processed in chunks; results must not change
    x = with_specials(np.random.default_rng(6), (1, 2, 6, 1100), np.float32)
    plan = window_plan("max_pool2d", x.shape, 2, 2, None, 0, 1, False, None, "one")
    grad = np.random.default_rng(7).integers(-4, 5, plan.out_shape).astype(np.float32)
    fast = run_extreme(x, plan, False, grad)
    plain = run_extreme(x, plan.variant(False, False), False, grad)
    for what, a, b in zip(("values", "indices", "gradient"), fast, plain):
        same(a, b, what)
    plan = window_plan("avg_pool2d", x.shape, 2, 3, 1, 1, 1, False, None, "span")
    fast = run_sum(x, plan, np.ones(plan.out_shape, np.float32))
    plain = run_sum(x, plan.variant(False, False), np.ones(plan.out_shape, np.float32))
    same(fast[0], plain[0], "avg values")
    same(fast[1], plain[1], "avg gradient")


@pytest.mark.parametrize("channels", [1, 3, 4, 5, 6, 7, 8, 9, 17])
@pytest.mark.parametrize("name", ["avg", "sum"])
@pytest.mark.parametrize("images, threads", [(2, 1), (1, 2)])
def test_2x2_channels_last_backward_gives_every_channel_its_share(channels, name, images,
                                                                   threads):
    """Whole 2x2 stride 2 windows, NHWC: the avg/sum backward writes four channels at a
    time, the last group overlapping the previous one when a slice's channel count is
    not a multiple of 4 (one image on 2 threads: each thread a slice of the channels).
    Every cell gets its window's gradient / 4 (sum: / 1), bit for bit, -0.0 included."""
    rng = np.random.default_rng(channels)
    shape = (images, 64, 64, channels)
    x = rng.standard_normal(shape).astype(np.float32)
    grad = with_specials(rng, (images, 32, 32, channels), np.float32)
    grad[rng.random(grad.shape) < 0.05] = -0.0
    op = F.avg_pool2d if name == "avg" else F.sum_pool2d
    with fixed_threads(threads):
        leaf = mp.tensor(x, requires_grad=True)
        op(leaf, 2, data_format="channels_last").backward(grad)
    share = grad / np.float32(4 if name == "avg" else 1)
    expected = np.repeat(np.repeat(share, 2, axis=1), 2, axis=2)
    got = leaf.grad.numpy()
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), name
