"""Bad input raises ValueError/TypeError naming the offending argument, never garbage or a crash.

Plus the dtype rules of PyTorch 2.13: max (and min) pooling work on int32,
int64 and uint8; average-type pooling of integers is refused with TypeError.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from tests.pooling.pooling_cases import assert_identical
from tests.references import pooling_reference as R

X1 = mp.tensor(np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8))
X2 = mp.tensor(np.arange(2 * 3 * 36, dtype=np.float32).reshape(2, 3, 6, 6))
X3 = mp.tensor(np.arange(2 * 2 * 64, dtype=np.float32).reshape(2, 2, 4, 4, 4))
INPUT_FOR = {"1d": X1, "2d": X2, "3d": X3}
WRONG_RANK = {"1d": [X1.numpy()[0, 0], X2.numpy()], "2d": [X1.numpy()[0], X3.numpy()],
              "3d": [X2.numpy()[0], X3.numpy()[None]]}
WINDOW_OPS = ["max_pool", "min_pool", "avg_pool", "sum_pool"]


def pool(name, dims):
    return getattr(F, f"{name}{dims}")


# ------------------------------------------------------------------ rank
@pytest.mark.parametrize("dims", ["1d", "2d", "3d"])
@pytest.mark.parametrize("name", WINDOW_OPS)
def test_wrong_input_rank_names_input(name, dims):
    for bad in WRONG_RANK[dims]:
        with pytest.raises(ValueError, match="input"):
            pool(name, dims)(mp.tensor(bad), 2)


@pytest.mark.parametrize("call", [
    lambda x: F.lp_pool2d(x, 2, 2),
    lambda x: F.adaptive_max_pool2d(x, 2),
    lambda x: F.adaptive_avg_pool2d(x, 2),
    lambda x: F.global_max_pool2d(x),
    lambda x: F.global_avg_pool2d(x),
    lambda x: F.stochastic_pool2d(x, 2, training=False),
])
@pytest.mark.parametrize("bad_shape", [(6,), (3, 6), (1, 2, 3, 4, 4)])
def test_other_2d_ops_reject_wrong_rank(call, bad_shape):
    with pytest.raises(ValueError, match="input"):
        call(mp.tensor(np.ones(bad_shape, dtype=np.float32)))


@pytest.mark.parametrize("bad_shape", [(6,), (1, 2, 3, 4)])
def test_1d_lp_and_adaptive_reject_wrong_rank(bad_shape):
    x = mp.tensor(np.ones(bad_shape, dtype=np.float32))
    for call in (lambda t: F.lp_pool1d(t, 2, 2), lambda t: F.adaptive_max_pool1d(t, 2),
                 lambda t: F.adaptive_avg_pool1d(t, 2)):
        with pytest.raises(ValueError, match="input"):
            call(x)


# ------------------------------------------------------------------ kernel, stride, padding, dilation
@pytest.mark.parametrize("dims", ["1d", "2d", "3d"])
@pytest.mark.parametrize("name", WINDOW_OPS)
def test_bad_window_arguments_name_the_argument(name, dims):
    x, nd = INPUT_FOR[dims], int(dims[0])
    call = pool(name, dims)
    for kernel in (0, -1, (2,) * (nd - 1) + (0,)):
        with pytest.raises(ValueError, match="kernel_size"):
            call(x, kernel)
    with pytest.raises((ValueError, TypeError), match="kernel_size"):
        call(x, (2,) * (nd + 1))                 # one entry too many
    with pytest.raises(TypeError, match="kernel_size"):
        call(x, 2.5)
    for stride in (0, -2, (1,) * (nd - 1) + (0,)):
        with pytest.raises(ValueError, match="stride"):
            call(x, 2, stride)
    with pytest.raises(ValueError, match="padding"):
        call(x, 2, 1, -1)
    with pytest.raises(ValueError, match="padding"):
        call(x, 3, 1, 2)                          # more than half of the kernel
    with pytest.raises(ValueError, match="padding"):
        call(x, 2, 1, (0,) * (nd - 1) + (2,))


@pytest.mark.parametrize("name", ["max_pool2d", "min_pool2d"])
def test_padding_limit_counts_dilation(name):
    call = getattr(F, name)
    for dilation in (0, -1):
        with pytest.raises(ValueError, match="dilation"):
            call(X2, 2, dilation=dilation)
    # effective kernel (3-1)*2+1 = 5, so padding 2 is allowed (torch 2.13 wrongly refuses it) ...
    out, idx = call(X2, 3, 1, 2, dilation=2, return_indices=True)
    ref = (R.max_pool if name == "max_pool2d" else R.min_pool)(X2.numpy(), 3, 1, 2, 2)
    assert_identical(out, ref[0])
    assert_identical(idx, ref[1])
    # ... and padding 3 is not
    with pytest.raises(ValueError, match="padding"):
        call(X2, 3, 1, 3, dilation=2)


@pytest.mark.parametrize("name", WINDOW_OPS)
def test_output_smaller_than_one_is_refused(name):
    tiny = mp.tensor(np.ones((1, 1, 2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="kernel_size|input|output"):
        getattr(F, f"{name}2d")(tiny, 3)
    with pytest.raises(ValueError, match="kernel_size|input|output"):
        getattr(F, f"{name}2d")(tiny, (1, 5), 1, (0, 1))   # W: 2 + 2 - 5 < 0


def test_zero_divisor_override_is_refused():
    with pytest.raises(ValueError, match="divisor_override"):
        F.avg_pool2d(X2, 2, divisor_override=0)


@pytest.mark.parametrize("dtype", [np.float16, np.bool_])
def test_unsupported_dtypes_are_a_type_error(dtype):
    x = mp.tensor(np.zeros((1, 1, 4, 4), dtype=dtype))
    for call in (lambda t: F.max_pool2d(t, 2), lambda t: F.avg_pool2d(t, 2)):
        with pytest.raises(TypeError, match="input|dtype"):
            call(x)


def test_bad_padding_string_and_data_format():
    with pytest.raises(ValueError, match="padding"):
        F.max_pool2d(X2, 2, padding="full")
    with pytest.raises(ValueError, match="data_format"):
        F.max_pool2d(X2, 2, data_format="NCWH")


@pytest.mark.parametrize("norm_type", [0, -1])
def test_lp_pool_rejects_non_positive_norm(norm_type):
    with pytest.raises(ValueError, match="norm_type"):
        F.lp_pool2d(X2, norm_type, 2)


# ------------------------------------------------------------------ adaptive output_size
@pytest.mark.parametrize("call", [F.adaptive_max_pool2d, F.adaptive_avg_pool2d])
def test_adaptive_output_size_must_be_positive(call):
    for size in (0, -1, (2, 0)):
        with pytest.raises(ValueError, match="output_size"):
            call(X2, size)
    with pytest.raises((ValueError, TypeError), match="output_size"):
        call(X2, (2, 2, 2))


@pytest.mark.parametrize("call", [F.adaptive_max_pool1d, F.adaptive_avg_pool1d])
def test_adaptive_1d_output_size_must_be_positive(call):
    with pytest.raises(ValueError, match="output_size"):
        call(X1, 0)


# ------------------------------------------------------------------ max_unpool
def pooled_with_indices():
    return F.max_pool2d(X2, 2, return_indices=True)


def test_unpool_indices_of_wrong_shape():
    pooled, indices = pooled_with_indices()
    with pytest.raises(ValueError, match="indices"):
        F.max_unpool2d(pooled, mp.tensor(indices.numpy()[:, :, :2]), 2)


def test_unpool_indices_out_of_range():
    pooled, indices = pooled_with_indices()
    too_big = indices.numpy().copy()
    too_big[0, 0, 0, 0] = 36                       # a 6x6 plane has indices 0..35
    with pytest.raises(ValueError, match="indices"):
        F.max_unpool2d(pooled, mp.tensor(too_big), 2)
    negative = indices.numpy().copy()
    negative[1, 2, 1, 1] = -2
    with pytest.raises(ValueError, match="indices"):
        F.max_unpool2d(pooled, mp.tensor(negative), 2)


def test_unpool_skips_index_minus_one_the_mark_of_a_window_without_input_cells():
    # max pooling gives index -1 for such windows (docs/semantics.md section 7), so unpooling its
    # result must drop them: nothing written, no gradient
    pooled, indices = pooled_with_indices()
    marked = indices.numpy().copy()
    marked[1, 2, 1, 1] = -1
    leaf = mp.tensor(pooled.numpy(), requires_grad=True)
    out = F.max_unpool2d(leaf, mp.tensor(marked), 2)
    expected = R.max_unpool(pooled.numpy(), indices.numpy(), (6, 6))
    expected[1, 2][np.unravel_index(indices.numpy()[1, 2, 1, 1], (6, 6))] = 0
    assert_identical(out, expected)
    out.sum().backward()
    expected_grad = np.ones(pooled.shape, dtype=np.float32)
    expected_grad[1, 2, 1, 1] = 0
    assert_identical(leaf.grad, expected_grad)


def test_unpool_default_size_too_small_for_the_indices():
    # docs/semantics.md section 9: 5x5 pooled with k=2 unpools to 4x4 by default; index 17
    # (row 3, col 2 of the 5x5 plane) is then out of range, and output_size=(5, 5) fixes it
    x = mp.tensor(np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5))
    pooled, indices = F.max_pool2d(x, 2, return_indices=True)
    assert 18 in indices.numpy()
    with pytest.raises(ValueError, match="indices|output_size"):
        F.max_unpool2d(pooled, indices, 2)
    out = F.max_unpool2d(pooled, indices, 2, output_size=(5, 5))
    assert_identical(out, R.max_unpool(pooled.numpy(), indices.numpy(), (5, 5)))


def test_unpool_output_size_outside_the_allowed_range():
    pooled, indices = pooled_with_indices()
    for size in ((4, 6), (8, 6), (6, 6, 6)):       # default 6x6, stride 2: 4 < size < 8
        with pytest.raises(ValueError, match="output_size"):
            F.max_unpool2d(pooled, indices, 2, output_size=size)


def test_unpool_float_indices_are_refused():
    pooled, indices = pooled_with_indices()
    with pytest.raises(TypeError, match="indices"):
        F.max_unpool2d(pooled, mp.tensor(indices.numpy().astype(np.float32)), 2)


# ------------------------------------------------------------------ stochastic
def test_stochastic_rejects_negative_input():
    x = np.ones((1, 1, 4, 4), dtype=np.float32)
    x[0, 0, 3, 1] = -0.5
    for training in (True, False):
        with pytest.raises(ValueError, match="input|negative"):
            F.stochastic_pool2d(mp.tensor(x), 2, training=training)


# ------------------------------------------------------------------ dtypes
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("dims", ["1d", "2d", "3d"])
def test_max_and_min_pool_work_on_integers(dtype, dims):
    x = np.random.default_rng(0).integers(0, 9, INPUT_FOR[dims].shape).astype(dtype)
    for name, reference in (("max_pool", R.max_pool), ("min_pool", R.min_pool)):
        out, idx = pool(name, dims)(mp.tensor(x), 3, 2, 1, return_indices=True)
        expected, expected_idx = reference(x, 3, 2, 1)
        assert_identical(out, expected, f"{name}{dims} on {np.dtype(dtype)}")
        assert_identical(idx, expected_idx, f"{name}{dims} indices on {np.dtype(dtype)}")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_average_type_pooling_of_integers_is_a_type_error(dtype):
    x = mp.tensor(np.ones((1, 2, 4, 4), dtype=dtype))
    for call in (lambda t: F.avg_pool2d(t, 2), lambda t: F.avg_pool1d(t[0], 2),
                 lambda t: F.lp_pool2d(t, 2, 2), lambda t: F.adaptive_avg_pool2d(t, 2),
                 lambda t: F.global_avg_pool2d(t),
                 lambda t: F.stochastic_pool2d(t, 2, training=False)):
        with pytest.raises(TypeError, match="input|dtype"):
            call(x)


def test_integer_max_pool_pads_with_the_lowest_value_not_zero():
    x = mp.tensor(np.full((1, 1, 3, 3), -7, dtype=np.int32))
    out = F.max_pool2d(x, 3, 1, 1).numpy()
    assert np.all(out == -7)
    u = mp.tensor(np.full((1, 1, 3, 3), 250, dtype=np.uint8))
    assert np.all(F.min_pool2d(u, 3, 1, 1).numpy() == 250)


# ------------------------------------------------------------------ layers
def test_layer_arguments_are_validated():
    with pytest.raises(ValueError, match="kernel_size|pool_size"):
        nn.MaxPool2d(0)(X2)
    with pytest.raises(ValueError, match="stride|strides"):
        nn.MaxPooling2D(pool_size=2, strides=0)(mp.tensor(X2.numpy().transpose(0, 2, 3, 1)))
    with pytest.raises(ValueError, match="padding"):
        nn.AveragePooling2D(pool_size=2, padding="full")(mp.tensor(X2.numpy()))
