"""Worked examples with hand-computed answers, and the public API's shape.

Each expected value below is worked out by hand in the comment beside it
(from the rules in docs/semantics.md), not taken from any implementation.
"""
import inspect
import math

import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from tests.pooling.pooling_cases import assert_identical

nan, inf = math.nan, math.inf


def t(values, dtype=np.float32, requires_grad=False):
    return mp.tensor(np.asarray(values, dtype=dtype), requires_grad=requires_grad)


# ------------------------------------------------------------------ the examples
SIGNAL = [[[1, 2, -1, 0, 2, 3, -2, 0]]]


def test_1d_signal_window_2():
    # pairs (1,2) (-1,0) (2,3) (-2,0)
    out, idx = F.max_pool1d(t(SIGNAL), 2, return_indices=True)
    assert_identical(out, np.array([[[2, 0, 3, 0]]], np.float32))
    assert_identical(idx, np.array([[[1, 3, 5, 7]]], np.int64))
    assert_identical(F.avg_pool1d(t(SIGNAL), 2), np.array([[[1.5, -0.5, 2.5, -1]]], np.float32))
    assert_identical(F.min_pool1d(t(SIGNAL), 2), np.array([[[1, -1, 2, -2]]], np.float32))
    assert_identical(F.sum_pool1d(t(SIGNAL), 2), np.array([[[3, -1, 5, -2]]], np.float32))
    # unbatched (C, L) gives (C, out)
    assert_identical(F.max_pool1d(t(SIGNAL[0]), 2), np.array([[2, 0, 3, 0]], np.float32))


STAIRS = [[[[1, 3, 2, 4], [1, 3, 2, 4], [5, 7, 6, 8], [5, 7, 6, 8]]]]


def test_4x4_max_pool_2x2_stride_1_with_ties():
    x = t(STAIRS, requires_grad=True)
    out, idx = F.max_pool2d(x, 2, 1, return_indices=True)
    assert_identical(out, np.array([[[[3, 3, 4], [7, 7, 8], [7, 7, 8]]]], np.float32))
    # first of tied maxima wins: 3 at (0,1)=1, 4 at (0,3)=3, 7 at (2,1)=9, 8 at (2,3)=11
    assert_identical(idx, np.array([[[[1, 1, 3], [9, 9, 11], [9, 9, 11]]]], np.int64))
    out.sum().backward()
    # overlapping windows accumulate on their argmax: (0,1) twice, (2,1) four times, ...
    expected = np.zeros((1, 1, 4, 4), np.float32)
    expected[0, 0, 0, 1], expected[0, 0, 0, 3] = 2, 1
    expected[0, 0, 2, 1], expected[0, 0, 2, 3] = 4, 2
    assert_identical(x.grad, expected)


def ramp_nhwc():
    # x[0, h, w, c] = 100 c + 14 h + w: grows along h and w, so every window's max is its
    # bottom-right cell and its mean is its centre
    h, w, c = np.meshgrid(np.arange(14), np.arange(14), np.arange(4), indexing="ij")
    return (100.0 * c + 14.0 * h + w)[None].astype(np.float32)


@pytest.mark.parametrize("layer_name", ["MaxPooling2D", "MaxPool2D"])
def test_keras_max_pooling_of_1x14x14x4(layer_name):
    layer_cls = getattr(nn, layer_name)
    x = mp.tensor(ramp_nhwc())
    i, j, c = np.meshgrid(np.arange(7), np.arange(7), np.arange(4), indexing="ij")
    out = layer_cls(pool_size=2, strides=2, padding="valid")(x)
    assert out.shape == (1, 7, 7, 4)
    assert_identical(out, (100.0 * c + 14 * (2 * i + 1) + (2 * j + 1))[None].astype(np.float32))
    i, j, c = np.meshgrid(np.arange(6), np.arange(6), np.arange(4), indexing="ij")
    out = layer_cls(pool_size=3, strides=2, padding="valid")(x)
    assert out.shape == (1, 6, 6, 4)
    assert_identical(out, (100.0 * c + 14 * (2 * i + 2) + (2 * j + 2))[None].astype(np.float32))


def test_keras_average_pooling_of_1x14x14x4():
    x = mp.tensor(ramp_nhwc())
    i, j, c = np.meshgrid(np.arange(7), np.arange(7), np.arange(4), indexing="ij")
    out = nn.AveragePooling2D(pool_size=2, strides=2, padding="valid")(x)
    assert out.shape == (1, 7, 7, 4)
    np.testing.assert_allclose(out.numpy(), (100.0 * c + 14 * (2 * i + 0.5) + (2 * j + 0.5))[None],
                               rtol=1e-6)
    i, j, c = np.meshgrid(np.arange(6), np.arange(6), np.arange(4), indexing="ij")
    out = nn.AveragePooling2D(pool_size=3, strides=2, padding="valid")(x)
    assert out.shape == (1, 6, 6, 4)
    np.testing.assert_allclose(out.numpy(), (100.0 * c + 14 * (2 * i + 1) + (2 * j + 1))[None],
                               rtol=1e-6)


# ------------------------------------------------------------- docs/semantics.md examples
def test_output_sizes_with_ceil_mode():
    # 6x7, k=1, s=2, ceil: ceil(5/2)+1 = 4 rows, but row 3 would start at 6 >= 6 + 0: dropped
    assert F.max_pool2d(mp.zeros(1, 1, 6, 7), 1, 2, ceil_mode=True).shape == (1, 1, 3, 4)
    # L=5, k=2, s=2, p=1, ceil: floor((5+2-2+1)/2)+1 = 4, last start 6 >= 5+1: 3
    assert F.max_pool1d(mp.zeros(1, 5), 2, 2, 1, ceil_mode=True).shape == (1, 3)
    assert F.avg_pool1d(mp.zeros(1, 5), 2, 2, 1, ceil_mode=True).shape == (1, 3)


def test_avg_pool_ceil_overhang_never_counts():
    # windows [1,2] [3,4] [5, overhang]: the overhang is not in the divisor
    out = F.avg_pool1d(t([[1, 2, 3, 4, 5]]), 2, 2, ceil_mode=True)
    assert_identical(out, np.array([[1.5, 3.5, 5.0]], np.float32))


def test_avg_pool_divisors_on_ones_6x6_k3_s2_p1_ceil():
    # per dim: window 0 spans padding+2 real (3 counted), windows 1-2 are 3 real,
    # window 3 is 1 real + 1 padding (2 counted; the ceil overhang is not)
    real = np.array([2, 3, 3, 1.0])
    counted = np.array([3, 3, 3, 2.0])
    out = F.avg_pool2d(mp.ones(1, 1, 6, 6, dtype=np.float64), 3, 2, 1, ceil_mode=True)
    np.testing.assert_allclose(out.numpy()[0, 0], np.outer(real, real) / np.outer(counted, counted),
                               rtol=1e-15)
    assert out.numpy()[0, 0, 0, 0] == pytest.approx(4 / 9)
    assert out.numpy()[0, 0, 3, 3] == 0.25 and out.numpy()[0, 0, 1, 3] == 0.5
    # count_include_pad=False divides by the real cells only: all ones
    out = F.avg_pool2d(mp.ones(1, 1, 6, 6), 3, 2, 1, ceil_mode=True, count_include_pad=False)
    assert_identical(out, np.ones((1, 1, 4, 4), np.float32))
    out = F.avg_pool2d(mp.ones(1, 1, 2, 2, dtype=np.float64), 2, divisor_override=3)
    assert out.numpy()[0, 0, 0, 0] == pytest.approx(4 / 3, rel=1e-15)


def test_sum_pool_adds_real_cells_only():
    # 3x3 ones, k=3, s=1, p=1: a corner window holds 4 real cells, an edge 6, the centre 9
    out = F.sum_pool2d(mp.ones(1, 1, 3, 3), 3, 1, 1)
    assert_identical(out, np.array([[[[4, 6, 4], [6, 9, 6], [4, 6, 4]]]], np.float32))


def test_lp_pool_partial_ceil_window_is_not_rescaled():
    # sqrt(1+4), sqrt(9+16), sqrt(25) = 5 (torch would give sqrt(2*25) = 7.071)
    out = F.lp_pool1d(t([[1, 2, 3, 4, 5]], np.float64), 2, 2, 2, ceil_mode=True)
    np.testing.assert_allclose(out.numpy(), [[math.sqrt(5), 5.0, 5.0]], rtol=1e-15)
    # p=1 on positive input is the plain window sum
    out = F.lp_pool2d(t([[[[1, 2], [3, 4]]]], np.float64), 1, 2)
    np.testing.assert_allclose(out.numpy(), [[[[10.0]]]], rtol=1e-15)


def test_adaptive_5_to_3():
    # windows [0,2) [1,4) [3,5): means 0.5, 2, 3.5; argmax 1, 3, 4
    x = t([[[0, 1, 2, 3, 4]]])
    assert_identical(F.adaptive_avg_pool1d(x, 3), np.array([[[0.5, 2.0, 3.5]]], np.float32))
    out, idx = F.adaptive_max_pool1d(x, 3, return_indices=True)
    assert_identical(out, np.array([[[1, 3, 4]]], np.float32))
    assert_identical(idx, np.array([[[1, 3, 4]]], np.int64))


def test_indices_are_flat_in_the_unpadded_plane_in_both_layouts():
    # 4x4 arange, k=3, s=2, p=1: windows end at rows/cols 1 and 3 -> cells 5, 7, 13, 15
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    _, idx = F.max_pool2d(mp.tensor(x), 3, 2, 1, return_indices=True)
    assert_identical(idx, np.array([[[[5, 7], [13, 15]]]], np.int64))
    _, idx = F.max_pool2d(mp.tensor(x.reshape(1, 4, 4, 1)), 3, 2, 1, return_indices=True,
                          data_format="channels_last")
    assert_identical(idx, np.array([[[[5], [7]], [[13], [15]]]], np.int64))


def test_nan_propagates_and_points_at_the_last_nan():
    out, idx = F.max_pool1d(t([[1, nan, 3, nan]]), 4, return_indices=True)
    assert math.isnan(out.numpy()[0, 0]) and idx.numpy()[0, 0] == 3
    out, idx = F.min_pool1d(t([[1, nan, 0, nan, -1]]), 5, return_indices=True)
    assert math.isnan(out.numpy()[0, 0]) and idx.numpy()[0, 0] == 3
    out = F.avg_pool1d(t([[1, nan, 3, 4]]), 2)
    assert math.isnan(out.numpy()[0, 0]) and out.numpy()[0, 1] == 3.5
    out, idx = F.adaptive_max_pool1d(t([[nan, 2, nan, 1]]), 1, return_indices=True)
    assert math.isnan(out.numpy()[0, 0]) and idx.numpy()[0, 0] == 2
    assert math.isnan(F.global_max_pool2d(t([[[[1, nan], [3, 2]]]])).numpy()[0, 0])


def test_first_tie_wins_and_takes_the_whole_gradient():
    x = t([[5, 5, 1, 5]], np.float64, requires_grad=True)
    out, idx = F.max_pool1d(x, 4, return_indices=True)
    assert idx.numpy()[0, 0] == 0
    out.sum().backward()
    assert_identical(x.grad, np.array([[1.0, 0, 0, 0]]))
    x = t([[2, 1, 7, 1]], np.float64, requires_grad=True)
    out, idx = F.min_pool1d(x, 4, return_indices=True)
    assert idx.numpy()[0, 0] == 1
    out.sum().backward()
    assert_identical(x.grad, np.array([[0, 1.0, 0, 0]]))


def test_infinities():
    # an all -inf window: -inf, index of its first real cell (the padded cell at -1 is skipped)
    out, idx = F.max_pool1d(t([[-inf, -inf, 3]]), 3, 1, 1, return_indices=True)
    assert_identical(out, np.array([[-inf, 3, 3]], np.float32))
    assert_identical(idx, np.array([[0, 2, 2]], np.int64))
    out, idx = F.min_pool1d(t([[inf, inf]]), 2, return_indices=True)
    assert out.numpy()[0, 0] == inf and idx.numpy()[0, 0] == 0
    out = F.avg_pool1d(t([[inf, 1, inf, -inf]]), 2)
    assert out.numpy()[0, 0] == inf and math.isnan(out.numpy()[0, 1])


def test_one_pixel_planes_and_empty_batch():
    x = t(np.arange(3.0).reshape(1, 3, 1, 1))
    for call in (lambda a: F.max_pool2d(a, 1), lambda a: F.avg_pool2d(a, 1),
                 lambda a: F.min_pool2d(a, 1), lambda a: F.adaptive_avg_pool2d(a, 1),
                 lambda a: F.global_max_pool2d(a, keepdim=True)):
        assert_identical(call(x), x.numpy())
    assert_identical(F.max_pool2d(x, 3, 1, 1), x.numpy())   # padding never wins over a real cell
    empty = mp.zeros(0, 3, 5, 5, requires_grad=True)
    out = F.max_pool2d(empty, 2)
    assert out.shape == (0, 3, 2, 2)
    out.sum().backward()
    assert empty.grad.shape == (0, 3, 5, 5)
    assert F.avg_pool2d(empty, 3, 2, 1).shape == (0, 3, 3, 3)
    assert F.adaptive_max_pool2d(empty, 4).shape == (0, 3, 4, 4)


def test_keras_same_padding_puts_the_extra_cell_last():
    # W=5, k=2, s=2: out 3, pad_total 1 -> windows [1,2] [3,4] [5 | pad]
    x = t([[[[1, 2, 3, 4, 5]]]])
    assert_identical(F.avg_pool2d(x, (1, 2), (1, 2), "same"), np.array([[[[1.5, 3.5, 5]]]], np.float32))
    assert_identical(F.max_pool2d(x, (1, 2), (1, 2), "same"), np.array([[[[2, 4, 5]]]], np.float32))
    # W=4, k=3, s=1: pad_total 2 -> one each side; SAME averages ignore the padded cells
    x = t([[[[3, 6, 9, 12]]]])
    assert_identical(F.avg_pool2d(x, (1, 3), 1, "same"), np.array([[[[4.5, 6, 9, 10.5]]]], np.float32))
    assert F.max_pool2d(mp.zeros(1, 1, 7, 7), 3, 2, "valid").shape == (1, 1, 3, 3)
    assert F.max_pool2d(mp.zeros(1, 1, 7, 7), 3, 2, "same").shape == (1, 1, 4, 4)


def test_global_pools_and_keepdim():
    x = t(np.arange(24.0).reshape(2, 3, 2, 2))
    assert_identical(F.global_max_pool2d(x), np.arange(3.0, 24, 4).reshape(2, 3).astype(np.float32))
    assert_identical(F.global_avg_pool2d(x, keepdim=True),
                     np.arange(1.5, 24, 4).reshape(2, 3, 1, 1).astype(np.float32))
    assert_identical(nn.GlobalMaxPool2d()(x), np.arange(3.0, 24, 4).reshape(2, 3).astype(np.float32))
    assert_identical(nn.GlobalAvgPool2d()(x), np.arange(1.5, 24, 4).reshape(2, 3).astype(np.float32))


def test_stochastic_pool_eval_example():
    # window [1, 3, 0, 0]: (1 + 9) / (1 + 3) = 2.5
    x = t([[[[1, 3], [0, 0]]]])
    assert_identical(F.stochastic_pool2d(x, 2, training=False), np.array([[[[2.5]]]], np.float32))


def test_unpool_round_trip():
    x = t([[[[1, 9, 2, 0], [4, 3, 8, 7]]]])
    pooled, idx = F.max_pool2d(x, 2, return_indices=True)
    assert_identical(pooled, np.array([[[[9, 8]]]], np.float32))
    assert_identical(idx, np.array([[[[1, 6]]]], np.int64))
    out = F.max_unpool2d(pooled, idx, 2)
    assert_identical(out, np.array([[[[0, 9, 0, 0], [0, 0, 8, 0]]]], np.float32))
    out = nn.MaxUnpool2d(2)(pooled, idx)
    assert_identical(out, np.array([[[[0, 9, 0, 0], [0, 0, 8, 0]]]], np.float32))
    pooled, idx = F.max_pool1d(t([[3, 1, 5, 6, 2]]), 2, return_indices=True)
    out = F.max_unpool1d(pooled, idx, 2, output_size=(5,))
    assert_identical(out, np.array([[3, 0, 0, 6, 0]], np.float32))


# ------------------------------------------------------------------ the public API
def leading_parameters(fn, count):
    params = list(inspect.signature(fn).parameters.values())[:count]
    return [(p.name, p.default) for p in params]


E = inspect.Parameter.empty
MAX_PARAMS = [("input", E), ("kernel_size", E), ("stride", None), ("padding", 0), ("dilation", 1),
              ("ceil_mode", False), ("return_indices", False)]
AVG_PARAMS = [("input", E), ("kernel_size", E), ("stride", None), ("padding", 0), ("ceil_mode", False),
              ("count_include_pad", True), ("divisor_override", None)]
SIGNATURES = {
    **{f"max_pool{d}d": MAX_PARAMS for d in (1, 2, 3)},
    **{f"min_pool{d}d": MAX_PARAMS for d in (1, 2, 3)},
    **{f"avg_pool{d}d": AVG_PARAMS for d in (1, 2, 3)},
    **{f"sum_pool{d}d": AVG_PARAMS[:5] for d in (1, 2, 3)},
    **{f"lp_pool{d}d": [("input", E), ("norm_type", E), ("kernel_size", E), ("stride", None),
                        ("ceil_mode", False)] for d in (1, 2)},
    **{f"adaptive_max_pool{d}d": [("input", E), ("output_size", E), ("return_indices", False)]
       for d in (1, 2)},
    **{f"adaptive_avg_pool{d}d": [("input", E), ("output_size", E)] for d in (1, 2)},
    "global_max_pool2d": [("input", E), ("keepdim", False)],
    "global_avg_pool2d": [("input", E), ("keepdim", False)],
    "stochastic_pool2d": [("input", E), ("kernel_size", E), ("stride", None), ("training", True),
                          ("generator", None)],
    **{f"max_unpool{d}d": [("input", E), ("indices", E), ("kernel_size", E), ("stride", None),
                           ("padding", 0), ("output_size", None)] for d in (1, 2)},
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_functional_signatures_follow_torch(name):
    expected = SIGNATURES[name]
    assert leading_parameters(getattr(F, name), len(expected)) == expected


def test_positional_arguments_follow_torch_order():
    x = t(np.arange(49.0).reshape(1, 1, 7, 7))
    by_keyword = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)
    assert_identical(F.max_pool2d(x, 3, 2, 1, 2, True), by_keyword.numpy())
    by_keyword = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True,
                              count_include_pad=False, divisor_override=None)
    assert_identical(F.avg_pool2d(x, 3, 2, 1, True, False, None), by_keyword.numpy())


def test_layer_defaults_and_modes():
    layer = nn.StochasticPool2d(2)
    assert layer.training
    assert not layer.eval().training
    x = t(np.arange(16.0).reshape(1, 1, 4, 4))
    # Keras defaults: pool_size (2, 2), strides = pool_size, "valid", channels_last
    assert nn.MaxPooling2D()(mp.zeros(1, 8, 6, 3)).shape == (1, 4, 3, 3)
    assert nn.AveragePooling2D()(mp.zeros(1, 8, 6, 3)).shape == (1, 4, 3, 3)
    assert nn.GlobalAveragePooling2D()(mp.zeros(2, 5, 5, 3)).shape == (2, 3)
    assert nn.GlobalMaxPooling2D(keepdims=True)(mp.zeros(2, 5, 5, 3)).shape == (2, 1, 1, 3)
    assert nn.AdaptiveAvgPool2d(1)(x).shape == (1, 1, 1, 1)
    assert nn.MinPool2d(2)(x).shape == (1, 1, 2, 2)
