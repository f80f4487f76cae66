"""minipool's pooling ops against the loop reference in ``tests/references/pooling_reference.py``.

Hypothesis draws valid shapes, kernels, strides, paddings (up to half the
*dilated* kernel, beyond torch 2.13's limit), dilations and ceil_mode, over
float32/float64 inputs with ties, NaN, +-inf, all-equal windows, one-cell
planes, batch 0 and unbatched inputs.  Max/min values, indices and gradients
must be bit-identical to the reference (cotangents are small integers, so the
scatter-add is exact); sums and averages agree to float rounding.
Also: windows with no input cell (docs/semantics.md section 7), channels_last,
Keras "same"/"valid", stochastic pooling, thread-count independence,
no_grad, non-contiguous input, and the nn layers.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from tests.helpers import fixed_threads
from tests.pooling.pooling_cases import (EXAMPLES, assert_identical, assert_near, inputs, make_input,
                                         pool_cases, upstream_gradient)
from tests.references import pooling_reference as R

FAST = settings(max_examples=EXAMPLES, deadline=None)


def forward_backward(fn, x, seed, *extra):
    """Run ``fn(tensor, *extra)`` and backprop integer cotangents.

    Returns (output arrays..., input gradient, cotangent)."""
    leaf = mp.tensor(x, requires_grad=True)
    result = fn(leaf, *extra)
    outputs = result if isinstance(result, tuple) else (result,)
    g = upstream_gradient(seed, outputs[0].shape)
    outputs[0].backward(g.astype(x.dtype))
    grad = leaf.grad.numpy() if leaf.grad is not None else np.zeros_like(x)
    return tuple(o.numpy() for o in outputs) + (grad, g)


# ------------------------------------------------------------------ max / min
@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("nd", [1, 2, 3])
@FAST
@given(data=st.data())
def test_max_and_min_pool_match_reference(kind, nd, data):
    case = data.draw(pool_cases(nd))
    seed, dtype, values = data.draw(inputs)
    x = make_input(seed, case.shape, dtype, values)
    pool = getattr(F, f"{kind}_pool{nd}d")
    out, idx, grad, g = forward_backward(
        lambda t: pool(t, **case.max_args(), return_indices=True), x, seed)

    reference = R.max_pool if kind == "max" else R.min_pool
    a = case.max_args()
    ref_out, ref_idx = reference(case.as_batched(x), a["kernel_size"], a["stride"], a["padding"],
                                 a["dilation"], a["ceil_mode"])
    ref_grad = R.max_pool_grad(case.as_batched(x).shape, ref_idx, case.as_batched(g))
    assert_identical(out, case.from_batched(ref_out), f"{kind} values")
    assert_identical(idx, case.from_batched(ref_idx), f"{kind} indices")
    assert_identical(grad, case.from_batched(ref_grad).astype(dtype), f"{kind} gradient")


@pytest.mark.parametrize("nd", [1, 2, 3])
@FAST
@given(data=st.data())
def test_max_pool_without_indices_returns_the_same_values(nd, data):
    case = data.draw(pool_cases(nd))
    seed, dtype, values = data.draw(inputs)
    x = make_input(seed, case.shape, dtype, values)
    with_indices, _ = getattr(F, f"max_pool{nd}d")(mp.tensor(x), **case.max_args(),
                                                    return_indices=True)
    plain = getattr(F, f"max_pool{nd}d")(mp.tensor(x), **case.max_args())
    assert isinstance(plain, mp.Tensor)
    assert_identical(plain, with_indices.numpy(), "max values with and without indices")


def test_window_without_input_cells_gives_minus_inf_index_minus_one_and_no_gradient():
    # docs/semantics.md section 7: along W the only window samples columns -1 and 1 of a
    # 1-wide input
    x = np.arange(15, dtype=np.float64).reshape(3, 5, 1)
    args = dict(kernel_size=(2, 2), padding=(0, 1), dilation=(1, 2), ceil_mode=True)
    out, idx, grad, g = forward_backward(
        lambda t: F.max_pool2d(t, **args, return_indices=True), x, 0)
    ref_out, ref_idx = R.max_pool(x[None], (2, 2), None, (0, 1), (1, 2), True)
    assert np.all(ref_out == -np.inf) and np.all(ref_idx == -1)  # the reference agrees with the rule
    assert_identical(out, ref_out[0])
    assert_identical(idx, ref_idx[0])
    assert_identical(grad, np.zeros_like(x))
    low, low_idx = F.min_pool2d(mp.tensor(x), **args, return_indices=True)
    assert np.all(low.numpy() == np.inf) and np.all(low_idx.numpy() == -1)


# ------------------------------------------------------------------ avg / sum
@pytest.mark.parametrize("nd", [1, 2, 3])
@FAST
@given(data=st.data())
def test_avg_pool_matches_reference(nd, data):
    case = data.draw(pool_cases(nd, dilation=False, divisor=True))
    seed, dtype, values = data.draw(inputs)
    x = make_input(seed, case.shape, dtype, values)
    out, grad, g = forward_backward(lambda t: getattr(F, f"avg_pool{nd}d")(t, **case.avg_args()),
                                    x, seed)
    args = list(case.avg_args().values())
    xb = case.as_batched(x)
    assert_near(out, case.from_batched(R.avg_pool(xb, *args)), dtype, "avg values")
    assert_near(grad, case.from_batched(R.avg_pool_grad(xb.shape, case.as_batched(g), *args)),
                dtype, "avg gradient")


@pytest.mark.parametrize("nd", [1, 2, 3])
@FAST
@given(data=st.data())
def test_sum_pool_matches_reference(nd, data):
    case = data.draw(pool_cases(nd, dilation=False))
    seed, dtype, values = data.draw(inputs)
    x = make_input(seed, case.shape, dtype, values)
    out, grad, g = forward_backward(lambda t: getattr(F, f"sum_pool{nd}d")(t, **case.sum_args()),
                                    x, seed)
    args = list(case.sum_args().values())
    xb = case.as_batched(x)
    assert_near(out, case.from_batched(R.sum_pool(xb, *args)), dtype, "sum values")
    assert_identical(grad, case.from_batched(
        R.sum_pool_grad(xb.shape, case.as_batched(g), *args)).astype(dtype), "sum gradient")


# ------------------------------------------------------------------ LP
@pytest.mark.parametrize("nd", [1, 2])
@FAST
@given(data=st.data())
def test_lp_pool_matches_reference_including_partial_ceil_windows(nd, data):
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(nd))
    stride = data.draw(st.none() | st.just(tuple(data.draw(st.integers(1, 3)) for _ in range(nd))))
    sizes = tuple(data.draw(st.integers(k, 8)) for k in kernel)
    lead = data.draw(st.sampled_from([(), (1,), (2,)])) + (data.draw(st.integers(1, 2)),)
    norm_type = data.draw(st.sampled_from([1, 2, 3, 1.5, 4.0]))
    ceil_mode = data.draw(st.booleans())
    seed, dtype = data.draw(st.integers(0, 2**32 - 1)), data.draw(st.sampled_from([np.float32, np.float64]))
    x = (np.random.default_rng(seed).random(lead + sizes) + 0.25).astype(dtype)
    k_arg = kernel[0] if nd == 1 else kernel
    s_arg = None if stride is None else (stride[0] if nd == 1 else stride)
    out, grad, g = forward_backward(
        lambda t: getattr(F, f"lp_pool{nd}d")(t, norm_type, k_arg, s_arg, ceil_mode), x, seed)
    batched = len(lead) == 2
    xb, gb = (x, g) if batched else (x[None], g[None])
    ref = R.lp_pool(xb, norm_type, k_arg, s_arg, ceil_mode)
    ref_grad = R.lp_pool_grad(xb, gb, norm_type, k_arg, s_arg, ceil_mode)
    assert_near(out, ref if batched else ref[0], dtype, "lp values")
    assert_near(grad, ref_grad if batched else ref_grad[0], dtype, "lp gradient")


# ------------------------------------------------------------------ adaptive / global
@pytest.mark.parametrize("nd", [1, 2])
@FAST
@given(data=st.data())
def test_adaptive_pools_match_reference(nd, data):
    sizes = tuple(data.draw(st.integers(1, 8)) for _ in range(nd))
    output_size = tuple(data.draw(st.integers(1, s + 2)) for s in sizes)
    lead = (data.draw(st.integers(0, 2)), data.draw(st.integers(1, 2)))
    seed, dtype, values = data.draw(inputs)
    x = make_input(seed, lead + sizes, dtype, values)
    arg = output_size[0] if nd == 1 else output_size
    out, idx, grad, g = forward_backward(
        lambda t: getattr(F, f"adaptive_max_pool{nd}d")(t, arg, return_indices=True), x, seed)
    ref, ref_idx = R.adaptive_max_pool(x, output_size)
    assert_identical(out, ref, "adaptive max values")
    assert_identical(idx, ref_idx, "adaptive max indices")
    assert_identical(grad, R.max_pool_grad(x.shape, ref_idx, g).astype(dtype), "adaptive max gradient")

    avg, avg_grad, g = forward_backward(lambda t: getattr(F, f"adaptive_avg_pool{nd}d")(t, arg), x, seed)
    assert_near(avg, R.adaptive_avg_pool(x, output_size), dtype, "adaptive avg values")
    assert_near(avg_grad, R.adaptive_avg_pool_grad(x.shape, g, output_size), dtype,
                "adaptive avg gradient")


@FAST
@given(data=st.data())
def test_global_pools_match_reference(data):
    shape = (data.draw(st.integers(0, 2)), data.draw(st.integers(1, 3)),
             data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)))
    seed, dtype, values = data.draw(inputs)
    keepdim = data.draw(st.booleans())
    x = make_input(seed, shape, dtype, values)
    got_max, max_grad, g = forward_backward(lambda t: F.global_max_pool2d(t, keepdim=keepdim), x, seed)
    assert_identical(got_max, R.global_max_pool(x, keepdim), "global max")
    _, ref_idx = R.adaptive_max_pool(x, (1, 1))
    assert_identical(max_grad, R.max_pool_grad(x.shape, ref_idx, g.reshape(shape[:2] + (1, 1)))
                     .astype(dtype), "global max gradient")
    got_avg, avg_grad, g = forward_backward(lambda t: F.global_avg_pool2d(t, keepdim=keepdim), x, seed)
    assert_near(got_avg, R.global_avg_pool(x, keepdim), dtype, "global avg")
    assert_near(avg_grad, R.adaptive_avg_pool_grad(x.shape, g.reshape(shape[:2] + (1, 1)), (1, 1)),
                dtype, "global avg gradient")


# ------------------------------------------------------------------ unpool
@pytest.mark.parametrize("nd", [1, 2])
@FAST
@given(data=st.data())
def test_max_unpool_of_max_pool_matches_reference(nd, data):
    case = data.draw(pool_cases(nd, dilation=False))
    case.ceil_mode = False
    seed, dtype, values = data.draw(inputs)
    x = make_input(seed, case.shape, dtype, values)
    pooled, indices = getattr(F, f"max_pool{nd}d")(mp.tensor(x), **case.max_args(),
                                                    return_indices=True)
    spatial = case.shape[-nd:]
    out, grad, g = forward_backward(
        lambda t: getattr(F, f"max_unpool{nd}d")(t, indices, case.kernel_size, case.stride,
                                                 case.padding, output_size=spatial),
        pooled.numpy(), seed)
    # where overlapping windows chose the same cell they carry the same value, so order is moot
    pb, ib = case.as_batched(pooled.numpy()), case.as_batched(indices.numpy())
    assert_identical(out, case.from_batched(R.max_unpool(pb, ib, spatial)), "unpool values")
    assert_identical(grad, case.from_batched(R.max_unpool_grad(ib, case.as_batched(g)))
                     .astype(dtype), "unpool gradient")


def test_max_unpool_default_output_size_and_full_shape_output_size():
    x = make_input(3, (2, 3, 6, 8), np.float64, "distinct")
    pooled, indices = F.max_pool2d(mp.tensor(x), 2, return_indices=True)
    default = F.max_unpool2d(pooled, indices, 2)
    full_shape = F.max_unpool2d(pooled, indices, 2, output_size=(2, 3, 6, 8))
    expected = R.max_unpool(pooled.numpy(), indices.numpy(), (6, 8))
    assert_identical(default, expected)
    assert_identical(full_shape, expected)


# ------------------------------------------------------------------ channels_last and Keras padding
def nhwc(a):
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def nchw(a):
    return np.moveaxis(a, -1, 1)


@pytest.mark.parametrize("kind", ["max", "min", "avg", "sum"])
@FAST
@given(data=st.data())
def test_channels_last_equals_nchw_result_transposed(kind, data):
    case = data.draw(pool_cases(2, dilation=kind in ("max", "min"), divisor=kind == "avg", batch=False))
    seed, dtype, values = data.draw(inputs)
    x = make_input(seed, case.shape, dtype, values)
    args = case.max_args() if kind in ("max", "min") else \
        case.avg_args() if kind == "avg" else case.sum_args()
    if kind in ("max", "min"):
        args["return_indices"] = True
    pool = getattr(F, f"{kind}_pool2d")
    first = forward_backward(lambda t: pool(t, **args), x, seed)
    leaf = mp.tensor(nhwc(x), requires_grad=True)
    result = pool(leaf, **args, data_format="channels_last")
    result = result if isinstance(result, tuple) else (result,)
    result[0].backward(nhwc(first[-1]).astype(dtype))
    for got, expected in zip(result, first[:-2]):
        assert_identical(got, nhwc(expected), f"{kind} channels_last output")
    assert_identical(leaf.grad, nhwc(first[-2]), f"{kind} channels_last gradient")


@st.composite
def keras_cases(draw, dilation):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    padding = draw(st.sampled_from(["same", "valid"]))
    sizes = []
    for k, d in zip(kernel, dil):
        smallest = 1 if padding == "same" else d * (k - 1) + 1
        sizes.append(draw(st.integers(smallest, smallest + 6)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + tuple(sizes)
    return shape, kernel, stride, dil, padding


@pytest.mark.parametrize("kind", ["max", "min", "avg", "sum"])
@FAST
@given(data=st.data())
def test_keras_same_and_valid_padding_match_reference(kind, data):
    shape, kernel, stride, dilation, padding = data.draw(keras_cases(kind in ("max", "min")))
    seed, dtype, values = data.draw(inputs)
    x = make_input(seed, shape, dtype, values)
    pool = getattr(F, f"{kind}_pool2d")
    extra = dict(dilation=dilation) if kind in ("max", "min") else {}
    channels_last = data.draw(st.booleans())
    source = nhwc(x) if channels_last else x
    layout = dict(data_format="channels_last") if channels_last else {}
    out = pool(mp.tensor(source), kernel, stride, padding, **extra, **layout).numpy()
    out = nchw(out) if channels_last else out
    if kind in ("max", "min"):
        expected, _ = getattr(R, f"{kind}_pool")(x, kernel, stride, padding, dilation)
        assert_identical(out, expected, f"{kind} {padding}")
    else:
        expected = getattr(R, f"{kind}_pool")(x, kernel, stride, padding)
        assert_near(out, expected, dtype, f"{kind} {padding}")
    expected_sizes = [-(-n // s) if padding == "same" else (n - d * (k - 1) - 1) // s + 1
                      for n, k, s, d in zip(shape[2:], kernel, stride, dilation)]
    assert out.shape[2:] == tuple(expected_sizes)


def test_same_average_excludes_the_padded_cells():
    x = np.ones((1, 1, 5, 5))
    out = F.avg_pool2d(mp.tensor(x), 3, 2, "same").numpy()
    # TF SAME: out = ceil(5/2) = 3, pad_total = 2*2 + 3 - 5 = 2 -> one cell before, one after
    np.testing.assert_array_equal(out, np.ones((1, 1, 3, 3)))
    x = np.arange(1.0, 5.0).reshape(1, 1, 1, 4)
    # W: out = 2, pad_total = max(0, 1*2 + 3 - 4) = 1 -> none before, one after (the extra cell)
    out = F.avg_pool2d(mp.tensor(x), (1, 3), (1, 2), "same").numpy()
    np.testing.assert_array_equal(out, [[[[2.0, 3.5]]]])


# ------------------------------------------------------------------ larger planes (fast paths)
# The shapes that dominate real networks may take vectorised paths: check them on planes wide
# enough for several vector lanes, with odd sizes so that partial tails are exercised.
FAST_PATH_GEOMETRIES = [  # kernel, stride, padding, ceil_mode
    (2, 2, 0, False), (2, 2, 0, True), (3, 2, 1, False), (3, 2, 1, True),
    (3, 1, 1, False), (2, 1, 0, False), ((2, 3), (2, 1), (1, 1), True),
]


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("geometry", FAST_PATH_GEOMETRIES, ids=str)
@pytest.mark.parametrize("kind", ["max", "min", "avg", "sum"])
def test_network_shapes_on_larger_planes_match_reference(kind, geometry, channels_last):
    kernel, stride, padding, ceil_mode = geometry
    dtype = np.float32 if kind in ("max", "avg") else np.float64
    x = make_input(21, (2, 3, 17, 23), dtype, "special" if kind in ("max", "min") else "normal")
    args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    pool = getattr(F, f"{kind}_pool2d")
    if kind in ("max", "min"):
        args["return_indices"] = True
    source = nhwc(x) if channels_last else x
    layout = dict(data_format="channels_last") if channels_last else {}
    got = forward_backward(lambda t: pool(t, **args, **layout), source, 21)
    outputs = [nchw(a) if channels_last else a for a in got[:-2]]
    grad, g = (nchw(got[-2]), nchw(got[-1])) if channels_last else got[-2:]
    if kind in ("max", "min"):
        ref, ref_idx = getattr(R, f"{kind}_pool")(x, kernel, stride, padding, 1, ceil_mode)
        assert_identical(outputs[0], ref, f"{kind} values")
        assert_identical(outputs[1], ref_idx, f"{kind} indices")
        assert_identical(grad, R.max_pool_grad(x.shape, ref_idx, g).astype(dtype), f"{kind} gradient")
    else:
        ref_args = (kernel, stride, padding, ceil_mode)
        ref = getattr(R, f"{kind}_pool")(x, *ref_args)
        ref_grad = getattr(R, f"{kind}_pool_grad")(x.shape, g, *ref_args)
        assert_near(outputs[0], ref, dtype, f"{kind} values")
        assert_near(grad, ref_grad, dtype, f"{kind} gradient")


# 4, 6 and 11 channels: whole 3x3 windows go in groups of four channels, the last group
# overlapping the one before (pool_extreme's _window_groups_3x3)
@pytest.mark.parametrize("channels", [1, 3, 4, 6, 8, 11, 17])
def test_channels_last_with_various_channel_counts(channels):
    x = make_input(22, (2, channels, 9, 11), np.float32, "special")
    out, idx = F.max_pool2d(mp.tensor(nhwc(x)), 3, 2, 1, return_indices=True,
                            data_format="channels_last")
    ref, ref_idx = R.max_pool(x, 3, 2, 1)
    assert_identical(out, nhwc(ref))
    assert_identical(idx, nhwc(ref_idx))
    values_only = F.max_pool2d(mp.tensor(nhwc(x)), 3, 2, 1, data_format="channels_last")
    assert_identical(values_only, nhwc(ref))
    low, low_idx = F.min_pool2d(mp.tensor(nhwc(x)), 3, 2, 1, return_indices=True,
                                data_format="channels_last")
    ref_low, ref_low_idx = R.max_pool(-x, 3, 2, 1)   # min is max of the negated input
    assert_identical(low, nhwc(-ref_low))
    assert_identical(low_idx, nhwc(ref_low_idx))
    avg = F.avg_pool2d(mp.tensor(nhwc(x)), 2, data_format="channels_last")
    assert_near(avg, nhwc(R.avg_pool(x, 2)), np.float32)


CHANNELS_LAST_OTHER_OPS = {
    "lp_pool2d": (lambda t, **kw: F.lp_pool2d(t, 2, 3, 2, True, **kw), True),
    "adaptive_max_pool2d": (lambda t, **kw: F.adaptive_max_pool2d(t, (3, 4), True, **kw), False),
    "adaptive_avg_pool2d": (lambda t, **kw: F.adaptive_avg_pool2d(t, (4, 3), **kw), False),
    "global_max_pool2d": (lambda t, **kw: F.global_max_pool2d(t, True, **kw), False),
    "global_avg_pool2d": (lambda t, **kw: F.global_avg_pool2d(t, True, **kw), False),
    "stochastic_eval": (lambda t, **kw: F.stochastic_pool2d(t, 2, training=False, **kw), True),
}


@pytest.mark.parametrize("name", sorted(CHANNELS_LAST_OTHER_OPS))
def test_channels_last_for_the_other_2d_ops(name):
    fn, needs_positive = CHANNELS_LAST_OTHER_OPS[name]
    x = make_input(23, (2, 3, 7, 6), np.float64, "distinct")
    if needs_positive:
        x = x - x.min() + 0.5
    first = forward_backward(fn, x, 23)
    leaf = mp.tensor(nhwc(x), requires_grad=True)
    result = fn(leaf, data_format="channels_last")
    result = result if isinstance(result, tuple) else (result,)
    result[0].backward(nhwc(first[-1]))
    for got, expected in zip(result, first[:-2]):
        assert_identical(got, nhwc(expected), f"{name} channels_last output")
    assert_identical(leaf.grad, nhwc(first[-2]), f"{name} channels_last gradient")


# ------------------------------------------------------------------ big windows, long signals
BIG_WINDOW_CASES = [  # (shape, kernel, stride, padding, dilation): windows of 256+ cells
    ((1, 2, 20, 21), (16, 17), 2, 0, 1),
    ((1, 1, 40, 40), 20, 10, 10, 1),
    ((1, 1, 9, 9, 9), 7, 1, 3, 1),
    ((2, 1, 700), 300, 100, 150, 1),
    ((1, 2, 30, 30), 16, 7, 8, 2),
]


@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("case", BIG_WINDOW_CASES, ids=str)
def test_windows_with_hundreds_of_cells(kind, case):
    shape, kernel, stride, padding, dilation = case
    nd = len(shape) - 2
    x = make_input(24, shape, np.float32, "distinct")
    pool = getattr(F, f"{kind}_pool{nd}d")
    out, idx, grad, g = forward_backward(
        lambda t: pool(t, kernel, stride, padding, dilation, return_indices=True), x, 24)
    ref, ref_idx = getattr(R, f"{kind}_pool")(x, kernel, stride, padding, dilation)
    assert_identical(out, ref)
    assert_identical(idx, ref_idx)
    assert_identical(grad, R.max_pool_grad(x.shape, ref_idx, g).astype(np.float32))


@pytest.mark.parametrize("corner", ["first", "last"])
def test_global_and_adaptive_max_over_a_large_plane(corner):
    x = np.zeros((2, 2, 70, 80), np.float32)
    position = (0, 0) if corner == "first" else (69, 79)
    x[:, :, position[0], position[1]] = 5.0
    flat = position[0] * 80 + position[1]
    out, idx = F.adaptive_max_pool2d(mp.tensor(x), 1, return_indices=True)
    assert np.all(out.numpy() == 5.0) and np.all(idx.numpy() == flat)
    leaf = mp.tensor(x, requires_grad=True)
    F.global_max_pool2d(leaf).sum().backward()
    assert_identical(leaf.grad, (x == 5.0).astype(np.float32))
    low, low_idx = F.min_pool2d(mp.tensor(-x), (70, 80), return_indices=True)
    assert np.all(low.numpy() == -5.0) and np.all(low_idx.numpy() == flat)


def test_long_1d_signal():
    x = make_input(25, (2, 3, 1001), np.float64, "ties")
    for k, s, p, d, ceil in ((2, 2, 0, 1, True), (3, 2, 1, 1, False), (5, 3, 2, 2, True)):
        out, idx = F.max_pool1d(mp.tensor(x), k, s, p, d, ceil, return_indices=True)
        ref, ref_idx = R.max_pool(x, k, s, p, d, ceil)
        assert_identical(out, ref)
        assert_identical(idx, ref_idx)
        avg = F.avg_pool1d(mp.tensor(x), k, s, min(p, k // 2), ceil)
        assert_near(avg, R.avg_pool(x, k, s, min(p, k // 2), ceil), np.float64)


def test_float32_averages_of_large_windows_stay_accurate():
    x = (np.random.default_rng(26).random((2, 2, 64, 64)) + 100.0).astype(np.float32)
    ref = R.avg_pool(x, 64)
    np.testing.assert_allclose(F.avg_pool2d(mp.tensor(x), 64).numpy(), ref, rtol=2e-6)
    np.testing.assert_allclose(F.global_avg_pool2d(mp.tensor(x), keepdim=True).numpy(), ref,
                               rtol=2e-6)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(mp.tensor(x), 1).numpy(), ref, rtol=2e-6)


# ------------------------------------------------------------------ stochastic pooling
def rng(seed):
    return np.random.default_rng(seed)


@FAST
@given(data=st.data())
def test_stochastic_eval_matches_probability_weighted_reference(data):
    kernel = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    stride = data.draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    sizes = (data.draw(st.integers(kernel[0], 7)), data.draw(st.integers(kernel[1], 7)))
    lead = data.draw(st.sampled_from([(2,), (1, 2), (2, 1)]))
    seed, dtype = data.draw(st.integers(0, 2**32 - 1)), data.draw(st.sampled_from([np.float32, np.float64]))
    x = np.random.default_rng(seed).random(lead + sizes)
    x[x < 0.2] = 0.0  # some zero cells and, now and then, an all-zero window
    x = x.astype(dtype)
    out, grad, g = forward_backward(
        lambda t: F.stochastic_pool2d(t, kernel, stride, training=False), x, seed)
    xb, gb = (x, g) if len(lead) == 2 else (x[None], g[None])
    ref = R.stochastic_pool_eval(xb, kernel, stride)
    ref_grad = R.stochastic_pool_eval_grad(xb, gb, kernel, stride)
    assert_near(out, ref if len(lead) == 2 else ref[0], dtype, "stochastic eval values")
    assert_near(grad, ref_grad if len(lead) == 2 else ref_grad[0], dtype, "stochastic eval gradient")


@FAST
@given(data=st.data())
def test_stochastic_training_picks_a_nonzero_cell_of_its_window_and_routes_the_gradient_there(data):
    kernel = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    sizes = (data.draw(st.integers(kernel[0], 7)), data.draw(st.integers(kernel[1], 7)))
    seed = data.draw(st.integers(0, 2**32 - 1))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    x = make_input(seed, (2, 2) + sizes, np.float64, "distinct")
    x = (x - x.min() + 0.25).astype(dtype)          # distinct and strictly positive
    x[0, 0] = 0.0                                    # an all-zero plane outputs 0
    x[1, 1, ::2] = 0.0                               # some zero cells that must never be drawn
    leaf = mp.tensor(x, requires_grad=True)
    out = F.stochastic_pool2d(leaf, kernel, training=True, generator=rng(seed))
    g = upstream_gradient(seed, out.shape)
    out.backward(g.astype(dtype))
    out_spatial, windows = R.stochastic_windows(sizes, kernel)
    assert out.shape == (2, 2) + out_spatial
    expected_grad = np.zeros(x.shape)
    for n in range(2):
        for c in range(2):
            for position, cells in windows:
                value = out.numpy()[(n, c) + position]
                window = [x[(n, c) + cell] for cell in cells]
                # Caffe's rule (docs/semantics.md section 8): the first cell is "drawn"
                if not any(window):
                    assert value == 0.0
                    expected_grad[(n, c) + cells[0]] += g[(n, c) + position]
                    continue
                assert value != 0.0, "a zero cell (probability 0) was sampled"
                chosen = [cell for cell in cells if x[(n, c) + cell] == value]
                assert len(chosen) == 1, f"{value} is not a value of window {window}"
                expected_grad[(n, c) + chosen[0]] += g[(n, c) + position]
    assert_identical(leaf.grad, expected_grad.astype(dtype), "stochastic training gradient")


def test_stochastic_planes_and_overlapping_windows_draw_independently():
    # 2000 planes holding the same window [[1, 2], [3, 4]]: p = 0.1, 0.2, 0.3, 0.4 in each
    x = np.tile(np.array([[1.0, 2.0], [3.0, 4.0]]), (500, 4, 1, 1))
    out = F.stochastic_pool2d(mp.tensor(x), 2, training=True, generator=rng(9)).numpy().ravel()
    for value, p in ((1.0, 0.1), (2.0, 0.2), (3.0, 0.3), (4.0, 0.4)):
        assert abs(np.mean(out == value) - p) < 0.045, (value, np.mean(out == value))
    # overlapping windows (stride 1) on one row [1, 1, 1, ...]: window j covers cells j and j+1;
    # each window is drawn on its own, so cell j+1 is chosen half of the time
    x = mp.tensor(np.ones((1, 1, 1, 20001)), requires_grad=True)
    out = F.stochastic_pool2d(x, (1, 2), 1, training=True, generator=rng(10))
    out.sum().backward()
    interior = x.grad.numpy().ravel()[1:-1]          # 0, 1 or 2 draws per interior cell
    assert abs(interior.mean() - 1.0) < 0.02
    assert abs(np.mean(interior == 2) - 0.25) < 0.02   # both neighbours chose it: 1/4


def test_stochastic_training_is_reproducible_with_the_same_generator_seed():
    x = np.random.default_rng(1).random((2, 3, 8, 8)).astype(np.float32)
    first = F.stochastic_pool2d(mp.tensor(x), 2, generator=rng(42)).numpy()
    again = F.stochastic_pool2d(mp.tensor(x), 2, generator=rng(42)).numpy()
    assert_identical(first, again)
    draws = [F.stochastic_pool2d(mp.tensor(x), 2, generator=rng(seed)).numpy() for seed in range(5)]
    assert any(not np.array_equal(draws[0], d) for d in draws[1:]), "the seed changes nothing"


def test_stochastic_training_frequencies_follow_a_over_sum_a():
    # 20000 copies of the window [[0, 1], [3, 6]]: p = (0, 0.1, 0.3, 0.6)
    windows = 20000
    x = np.tile(np.array([[0.0, 1.0], [3.0, 6.0]]), (1, windows)).reshape(1, 1, 2, 2 * windows)
    out = F.stochastic_pool2d(mp.tensor(x), 2, 2, training=True, generator=rng(7)).numpy().ravel()
    assert out.size == windows
    frequencies = {v: np.mean(out == v) for v in (0.0, 1.0, 3.0, 6.0)}
    assert frequencies[0.0] == 0.0
    # standard error <= sqrt(0.25 / 20000) = 0.0035; allow about 4 of them
    for value, p in ((1.0, 0.1), (3.0, 0.3), (6.0, 0.6)):
        assert abs(frequencies[value] - p) < 0.015, (value, frequencies)


def test_stochastic_training_draws_equal_cells_uniformly():
    # 3x3 windows of equal values: each cell has p = 1/9; the gradient shows which was drawn
    x = mp.tensor(np.ones((1, 1, 3, 3 * 20000)), requires_grad=True)
    out = F.stochastic_pool2d(x, 3, training=True, generator=rng(8))
    out.sum().backward()
    per_cell = x.grad.numpy().reshape(3, 20000, 3).sum(axis=1) / 20000
    assert per_cell.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(per_cell, np.full((3, 3), 1 / 9), atol=0.012)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stochastic_never_draws_a_trailing_zero_cell(dtype):
    # inverse-CDF sampling must stop at the last positive cell even when u * sum rounds up
    windows = 20000
    window = np.array([[0.1, 0.7], [0.3, 0.0]])
    x = np.tile(window, (1, windows)).reshape(1, 1, 2, 2 * windows).astype(dtype)
    out = F.stochastic_pool2d(mp.tensor(x), 2, training=True, generator=rng(3)).numpy().ravel()
    assert np.all(out != 0), "a zero-probability cell was drawn"
    single = np.zeros((1, 1, 2, 2 * windows), dtype)
    single[0, 0, 0, ::2] = 3.0                      # one positive cell first, three zeros after
    out = F.stochastic_pool2d(mp.tensor(single), 2, training=True, generator=rng(4)).numpy()
    assert np.all(out == 3.0)


def test_stochastic_all_zero_window_outputs_zero_in_both_modes():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, 2.0], [3.0, 4.0]]
    train = F.stochastic_pool2d(mp.tensor(x), 2, training=True, generator=rng(0)).numpy()
    evaluate = F.stochastic_pool2d(mp.tensor(x), 2, training=False).numpy()
    assert train[0, 0, 0, 0] == 0 and train[0, 0, 0, 1] == 0 and train[0, 0, 1, 0] == 0
    assert train[0, 0, 1, 1] in (1.0, 2.0, 3.0, 4.0)
    np.testing.assert_allclose(evaluate, [[[[0, 0], [0, 30 / 10]]]])


def test_stochastic_layer_follows_train_and_eval_modes():
    x = np.random.default_rng(5).random((2, 2, 6, 6))
    layer = nn.StochasticPool2d(2)
    layer.eval()
    assert_near(layer(mp.tensor(x)), R.stochastic_pool_eval(x, 2), np.float64)
    layer.train()
    sampled = layer(mp.tensor(x)).numpy()
    for position, cells in R.stochastic_windows((6, 6), 2)[1]:
        for n in range(2):
            for c in range(2):
                assert sampled[(n, c) + position] in [x[(n, c) + cell] for cell in cells]


# ------------------------------------------------------------------ threads, no_grad, layout
THREADED_OPS = {
    "max_pool2d": lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True),
    "max_pool3d": lambda t: F.max_pool3d(t.reshape(4, 8, 16, 16, 16), 3, 2, 1, 2, True),
    "min_pool1d": lambda t: F.min_pool1d(t.reshape(32, 64, 64), 3, 2, 1, return_indices=True),
    "avg_pool2d": lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    "avg_pool1d": lambda t: F.avg_pool1d(t.reshape(32, 64, 64), 4, 3, 2, True),
    "avg_pool3d": lambda t: F.avg_pool3d(t.reshape(4, 8, 16, 16, 16), 2),
    "sum_pool2d": lambda t: F.sum_pool2d(t, 2),
    "lp_pool2d": lambda t: F.lp_pool2d(t, 2, 3, 2),
    "adaptive_max_pool2d": lambda t: F.adaptive_max_pool2d(t, (7, 5), return_indices=True),
    "adaptive_avg_pool2d": lambda t: F.adaptive_avg_pool2d(t, (7, 5)),
    "global_avg_pool2d": lambda t: F.global_avg_pool2d(t),
    "stochastic_eval": lambda t: F.stochastic_pool2d(t.abs(), 2, training=False),
    "stochastic_train": lambda t: F.stochastic_pool2d(t.abs(), 3, 2, generator=5),
    "max_pool2d_channels_last": lambda t: F.max_pool2d(t, 2, data_format="channels_last"),
    "avg_pool2d_channels_last": lambda t: F.avg_pool2d(t, 3, 2, 1, data_format="channels_last"),
    "unpool2d": lambda t: F.max_unpool2d(*F.max_pool2d(t, 2, return_indices=True), 2),
}


@pytest.mark.parametrize("name", sorted(THREADED_OPS))
def test_one_and_two_threads_are_bit_identical(name):
    x = make_input(11, (4, 8, 64, 64), np.float32, "normal")  # well above the parallel threshold
    results = []
    for threads in (1, 2):
        with fixed_threads(threads):
            results.append(forward_backward(THREADED_OPS[name], x, 11))
    for one, two in zip(*results):
        assert_identical(two, one, f"{name} with 2 threads")


@pytest.mark.parametrize("name", sorted(THREADED_OPS))
def test_forward_under_no_grad_matches_and_records_nothing(name):
    x = make_input(12, (4, 8, 64, 64), np.float32, "normal")
    leaf = mp.tensor(x, requires_grad=True)
    recorded = THREADED_OPS[name](leaf)
    with mp.no_grad():
        plain = THREADED_OPS[name](leaf)
    recorded = recorded if isinstance(recorded, tuple) else (recorded,)
    plain = plain if isinstance(plain, tuple) else (plain,)
    assert not plain[0].requires_grad and recorded[0].requires_grad
    for a, b in zip(plain, recorded):
        assert_identical(a, b.numpy())


@pytest.mark.parametrize("name", sorted(THREADED_OPS))
def test_retained_graph_backward_twice_accumulates(name):
    x = make_input(27, (4, 8, 8, 16), np.float64, "distinct")
    small_ops = {"max_pool3d": lambda t: F.max_pool3d(t.reshape(2, 2, 8, 8, 16), 3, 2, 1, 2, True),
                 "min_pool1d": lambda t: F.min_pool1d(t.reshape(4, 8, 128), 3, 2, 1),
                 "avg_pool1d": lambda t: F.avg_pool1d(t.reshape(4, 8, 128), 4, 3, 2, True),
                 "avg_pool3d": lambda t: F.avg_pool3d(t.reshape(2, 2, 8, 8, 16), 2)}
    fn = small_ops.get(name, THREADED_OPS[name])
    leaf = mp.tensor(x, requires_grad=True)
    out = fn(leaf)
    out = out[0] if isinstance(out, tuple) else out
    g = upstream_gradient(27, out.shape)
    out.backward(g, retain_graph=True)
    once = leaf.grad.numpy().copy()
    out.backward(g)
    assert_identical(leaf.grad, 2 * once, f"{name}: second backward of a retained graph")


@pytest.mark.parametrize("name", sorted(THREADED_OPS))
def test_outputs_are_fresh_arrays_and_indices_carry_no_gradient(name):
    x = make_input(28, (4, 8, 64, 64), np.float32, "normal")
    leaf = mp.tensor(x, requires_grad=True)
    result = THREADED_OPS[name](leaf)
    result = result if isinstance(result, tuple) else (result,)
    for tensor in result:
        assert not np.shares_memory(tensor.numpy(), leaf.numpy())
    for indices in result[1:]:
        assert indices.dtype == np.int64 and not indices.requires_grad


NONCONTIGUOUS_OPS = {
    "max_pool2d": lambda t: F.max_pool2d(t, 3, 2, 1, return_indices=True),
    "min_pool2d": lambda t: F.min_pool2d(t, 2, 1, return_indices=True),
    "avg_pool2d": lambda t: F.avg_pool2d(t, 3, 2, 1, ceil_mode=True),
    "sum_pool2d": lambda t: F.sum_pool2d(t, 2, 1),
    "lp_pool2d": lambda t: F.lp_pool2d(t, 2, 2),
    "adaptive_max_pool2d": lambda t: F.adaptive_max_pool2d(t, 3, return_indices=True),
    "adaptive_avg_pool2d": lambda t: F.adaptive_avg_pool2d(t, 3),
    "global_max_pool2d": lambda t: F.global_max_pool2d(t),
    "max_pool1d": lambda t: F.max_pool1d(t[0], 2, return_indices=True),
    "avg_pool1d": lambda t: F.avg_pool1d(t[0], 2),
    "stochastic_eval": lambda t: F.stochastic_pool2d(t.abs(), 2, training=False),
    "max_pool2d_channels_last": lambda t: F.max_pool2d(t, 2, 1, data_format="channels_last"),
}


@pytest.mark.parametrize("name", sorted(NONCONTIGUOUS_OPS))
@pytest.mark.parametrize("view", ["reversed_strided", "transposed"])
def test_non_contiguous_input_equals_contiguous_copy(name, view):
    base = make_input(13, (3, 4, 11, 9), np.float64, "distinct")
    x = base[::-1, :, 1::2, ::-1] if view == "reversed_strided" else base.transpose(0, 1, 3, 2)
    assert not x.flags.c_contiguous
    fn = NONCONTIGUOUS_OPS[name]
    expected = forward_backward(fn, np.ascontiguousarray(x), 13)
    leaf = mp.Tensor(x, requires_grad=True)   # wraps the view without copying it
    assert not leaf.numpy().flags.c_contiguous
    result = fn(leaf)
    result = result if isinstance(result, tuple) else (result,)
    result[0].backward(expected[-1])
    for got, want in zip(result, expected[:-2]):
        assert_identical(got, want, f"{name} on a {view} view")
    assert_identical(leaf.grad, expected[-2], f"{name} gradient on a {view} view")
    if view == "transposed":  # also through a graph op that hands the pool a permuted view
        source = mp.tensor(base, requires_grad=True)
        result = fn(F.permute(source, (0, 1, 3, 2)))
        result = result if isinstance(result, tuple) else (result,)
        result[0].backward(expected[-1])
        assert_identical(result[0], expected[0], f"{name} of a permuted tensor")
        assert_identical(source.grad, expected[-2].transpose(0, 1, 3, 2),
                         f"{name} gradient through permute")


@pytest.mark.parametrize("name", sorted(NONCONTIGUOUS_OPS))
def test_non_contiguous_incoming_gradient(name):
    # a permute after the pool hands its backward a transposed (non-contiguous) gradient
    x = make_input(19, (3, 4, 11, 9), np.float64, "distinct")
    fn = NONCONTIGUOUS_OPS[name]
    expected = forward_backward(fn, x, 19)
    leaf = mp.tensor(x, requires_grad=True)
    out = fn(leaf)
    out = out[0] if isinstance(out, tuple) else out
    axes = tuple(range(out.ndim - 2)) + (out.ndim - 1, out.ndim - 2)
    F.permute(out, axes).backward(np.ascontiguousarray(np.transpose(expected[-1], axes)))
    assert_identical(leaf.grad, expected[-2], f"{name} gradient from a permuted output")


def test_unpool_with_non_contiguous_values_and_indices():
    x = make_input(20, (2, 3, 8, 10), np.float64, "distinct")
    pooled, indices = F.max_pool2d(mp.tensor(x), 2, return_indices=True)
    expected = F.max_unpool2d(pooled, indices, 2).numpy()
    flipped_values = np.ascontiguousarray(pooled.numpy()[:, ::-1])[:, ::-1]     # same numbers,
    flipped_indices = np.ascontiguousarray(indices.numpy()[:, ::-1])[:, ::-1]   # negative strides
    assert not flipped_values.flags.c_contiguous
    out = F.max_unpool2d(mp.Tensor(flipped_values), mp.Tensor(flipped_indices), 2)
    assert_identical(out, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_are_kept_and_indices_are_int64(dtype):
    x = make_input(14, (2, 3, 6, 6), dtype, "normal")
    for fn in (F.max_pool2d, F.min_pool2d):
        out, idx = fn(mp.tensor(x), 2, return_indices=True)
        assert out.dtype == dtype and idx.dtype == np.int64
    for out in (F.avg_pool2d(mp.tensor(x), 2), F.sum_pool2d(mp.tensor(x), 2),
                F.lp_pool2d(mp.tensor(np.abs(x)), 2, 2), F.adaptive_avg_pool2d(mp.tensor(x), 2),
                F.global_avg_pool2d(mp.tensor(x)),
                F.stochastic_pool2d(mp.tensor(np.abs(x)), 2, training=False)):
        assert out.dtype == dtype
    _, idx = F.adaptive_max_pool2d(mp.tensor(x), 2, return_indices=True)
    assert idx.dtype == np.int64


# ------------------------------------------------------------------ layers
def test_layers_match_the_reference():
    x = make_input(15, (2, 3, 7, 7), np.float64, "ties")
    t = mp.tensor(x)
    ref_max, ref_idx = R.max_pool(x, 3, 2, 1, 1, True)
    assert_identical(nn.MaxPool2d(3, 2, 1, ceil_mode=True)(t), ref_max)
    out, idx = nn.MaxPool2d(3, 2, 1, ceil_mode=True, return_indices=True)(t)
    assert_identical(idx, ref_idx)
    assert_identical(nn.MinPool2d(2, 1)(t), R.min_pool(x, 2, 1)[0])
    assert_near(nn.AvgPool2d(3, 2, 1, count_include_pad=False)(t),
                R.avg_pool(x, 3, 2, 1, False, False), np.float64)
    assert_near(nn.AvgPool2d(2, divisor_override=3)(t), R.avg_pool(x, 2, None, 0, False, True, 3),
                np.float64)
    assert_near(nn.SumPool2d(2, 1)(t), R.sum_pool(x, 2, 1), np.float64)
    positive = np.abs(x) + 1
    assert_near(nn.LPPool2d(2, 3, 2)(mp.tensor(positive)), R.lp_pool(positive, 2, 3, 2), np.float64)
    assert_identical(nn.AdaptiveMaxPool2d((3, 4))(t), R.adaptive_max_pool(x, (3, 4))[0])
    assert_near(nn.AdaptiveAvgPool2d(3)(t), R.adaptive_avg_pool(x, 3), np.float64)
    assert_identical(nn.GlobalMaxPool2d()(t), R.global_max_pool(x))
    assert_near(nn.GlobalAvgPool2d()(t), R.global_avg_pool(x), np.float64)
    pooled, indices = nn.MaxPool2d(2, return_indices=True)(t)
    assert_identical(nn.MaxUnpool2d(2)(pooled, indices, output_size=(7, 7)),
                     R.max_unpool(pooled.numpy(), indices.numpy(), (7, 7)))

    x1 = x[:, :, 0]
    assert_identical(nn.MaxPool1d(3, 2, 1)(mp.tensor(x1)), R.max_pool(x1, 3, 2, 1)[0])
    assert_near(nn.AvgPool1d(3, 2, 1)(mp.tensor(x1)), R.avg_pool(x1, 3, 2, 1), np.float64)
    x3 = make_input(16, (1, 2, 5, 5, 5), np.float64, "ties")
    assert_identical(nn.MaxPool3d(2, 1)(mp.tensor(x3)), R.max_pool(x3, 2, 1)[0])
    assert_near(nn.AvgPool3d(3, 2, 1)(mp.tensor(x3)), R.avg_pool(x3, 3, 2, 1), np.float64)


def test_layers_pass_gradients_back():
    x = make_input(17, (2, 2, 6, 6), np.float64, "distinct")
    leaf = mp.tensor(x, requires_grad=True)
    nn.MaxPool2d(2)(leaf).sum().backward()
    _, idx = R.max_pool(x, 2)
    assert_identical(leaf.grad, R.max_pool_grad(x.shape, idx, np.ones(idx.shape)))


def test_keras_layers_match_the_reference_in_channels_last():
    x = make_input(18, (2, 9, 9, 3), np.float32, "ties")   # NHWC, Keras' default layout
    x_first = nchw(x)
    for layer_cls in (nn.MaxPooling2D, nn.MaxPool2D):
        out = layer_cls(pool_size=(3, 3), strides=2, padding="same")(mp.tensor(x)).numpy()
        assert_identical(out, nhwc(R.max_pool(x_first, 3, 2, "same")[0]))
    out = nn.MaxPooling2D()(mp.tensor(x)).numpy()            # pool_size (2, 2), strides = pool_size
    assert_identical(out, nhwc(R.max_pool(x_first, 2)[0]))
    out = nn.AveragePooling2D(pool_size=3, strides=2, padding="same")(mp.tensor(x)).numpy()
    assert_near(out, nhwc(R.avg_pool(x_first, 3, 2, "same")), np.float32)
    out = nn.AveragePooling2D(pool_size=2, strides=1, padding="valid")(mp.tensor(x)).numpy()
    assert_near(out, nhwc(R.avg_pool(x_first, 2, 1)), np.float32)
    out = nn.MaxPooling2D(2, data_format="channels_first")(mp.tensor(x_first)).numpy()
    assert_identical(out, R.max_pool(x_first, 2)[0])

    assert_near(nn.GlobalAveragePooling2D()(mp.tensor(x)), R.global_avg_pool(x_first), np.float32)
    assert_near(nn.GlobalAveragePooling2D(keepdims=True)(mp.tensor(x)),
                nhwc(R.global_avg_pool(x_first, keepdim=True)), np.float32)
    assert_identical(nn.GlobalMaxPooling2D()(mp.tensor(x)), R.global_max_pool(x_first))
    assert_identical(nn.GlobalMaxPooling2D(keepdims=True)(mp.tensor(x)),
                     nhwc(R.global_max_pool(x_first, keepdim=True)))
