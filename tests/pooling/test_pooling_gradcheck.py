"""float64 central-difference gradient checks (minipool.gradcheck) for every pooling op.

Max/min inputs are shuffled ladders of distinct values (steps of 0.25, far
larger than the finite-difference step), so no perturbation changes an argmax
and the numerical gradient is well defined.  LP and stochastic inputs are
strictly positive.  Configurations cover overlapping windows, padding,
ceil_mode with partial windows, dilation, unbatched input, channels_last and
Keras "same" padding.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from tests.pooling.pooling_cases import make_input


def distinct(shape, seed=0):
    return mp.tensor(make_input(seed, shape, np.float64, "distinct"), requires_grad=True)


def positive(shape, seed=0):
    values = np.random.default_rng(seed).random(shape) + 0.5
    return mp.tensor(values, requires_grad=True)


def check(fn, x):
    assert mp.gradcheck(fn, [x])


# (function name, shape, keyword arguments)
MAX_MIN_CASES = [
    ("1d", (2, 2, 9), dict(kernel_size=3, stride=1)),                          # overlapping
    ("1d", (2, 9), dict(kernel_size=4, stride=2, padding=2, ceil_mode=True)),  # unbatched, padding
    ("1d", (1, 2, 10), dict(kernel_size=3, stride=2, padding=2, dilation=2)),  # dilation
    ("2d", (2, 2, 6, 7), dict(kernel_size=3, stride=1, padding=1)),
    ("2d", (1, 2, 7, 6), dict(kernel_size=(3, 2), stride=2, ceil_mode=True)),
    ("2d", (2, 7, 7), dict(kernel_size=2, stride=(2, 1), padding=1, dilation=(2, 3))),
    ("2d", (1, 2, 6, 5), dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)),
    ("3d", (1, 2, 4, 5, 4), dict(kernel_size=2, stride=1)),
    ("3d", (2, 5, 4, 5), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("3d", (1, 1, 5, 5, 5), dict(kernel_size=2, stride=2, padding=1, dilation=2)),
]


@pytest.mark.parametrize("kind", ["max", "min"])
@pytest.mark.parametrize("dims,shape,kwargs", MAX_MIN_CASES)
def test_max_and_min_pool_gradcheck(kind, dims, shape, kwargs):
    pool = getattr(F, f"{kind}_pool{dims}")
    check(lambda t: pool(t, **kwargs), distinct(shape))


AVG_CASES = [
    ("1d", (2, 2, 9), dict(kernel_size=3, stride=1, padding=1)),
    ("1d", (2, 8), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("1d", (1, 2, 7), dict(kernel_size=2, ceil_mode=True, divisor_override=3)),
    ("2d", (2, 2, 6, 7), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("2d", (1, 2, 7, 6), dict(kernel_size=(3, 2), stride=1, padding=(1, 0), count_include_pad=False)),
    ("2d", (2, 5, 5), dict(kernel_size=2, stride=1, divisor_override=2)),
    ("3d", (1, 2, 4, 5, 4), dict(kernel_size=2, stride=1, padding=1)),
    ("3d", (2, 5, 4, 5), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                              count_include_pad=False)),
]


@pytest.mark.parametrize("dims,shape,kwargs", AVG_CASES)
def test_avg_pool_gradcheck(dims, shape, kwargs):
    pool = getattr(F, f"avg_pool{dims}")
    check(lambda t: pool(t, **kwargs), positive(shape))


@pytest.mark.parametrize("dims,shape,kwargs", [
    (dims, shape, {k: v for k, v in kwargs.items()
                   if k not in ("count_include_pad", "divisor_override")})
    for dims, shape, kwargs in AVG_CASES])
def test_sum_pool_gradcheck(dims, shape, kwargs):
    pool = getattr(F, f"sum_pool{dims}")
    check(lambda t: pool(t, **kwargs), positive(shape))


@pytest.mark.parametrize("norm_type", [1, 2, 3, 1.5])
@pytest.mark.parametrize("dims,shape,kwargs", [
    ("1d", (2, 2, 9), dict(kernel_size=3, stride=1)),
    ("1d", (2, 9), dict(kernel_size=2, stride=2, ceil_mode=True)),          # partial last window
    ("2d", (2, 2, 6, 7), dict(kernel_size=3, stride=2, ceil_mode=True)),
    ("2d", (2, 5, 6), dict(kernel_size=(2, 3), stride=1)),
])
def test_lp_pool_gradcheck(norm_type, dims, shape, kwargs):
    pool = getattr(F, f"lp_pool{dims}")
    check(lambda t: pool(t, norm_type, **kwargs), positive(shape))


@pytest.mark.parametrize("dims,shape,output_size", [
    ("1d", (2, 2, 5), 3),        # overlapping windows of unequal size
    ("1d", (2, 4), 7),           # more outputs than inputs
    ("2d", (1, 2, 7, 5), (4, 3)),
    ("2d", (2, 3, 3), (5, 2)),
])
def test_adaptive_pools_gradcheck(dims, shape, output_size):
    max_pool = getattr(F, f"adaptive_max_pool{dims}")
    avg_pool = getattr(F, f"adaptive_avg_pool{dims}")
    check(lambda t: max_pool(t, output_size), distinct(shape))
    check(lambda t: avg_pool(t, output_size), positive(shape))


@pytest.mark.parametrize("keepdim", [False, True])
def test_global_pools_gradcheck(keepdim):
    check(lambda t: F.global_max_pool2d(t, keepdim=keepdim), distinct((2, 3, 4, 5)))
    check(lambda t: F.global_avg_pool2d(t, keepdim=keepdim), positive((2, 3, 4, 5)))


@pytest.mark.parametrize("shape,kernel,stride", [
    ((2, 2, 6, 6), 2, None),
    ((2, 7, 5), (3, 2), (2, 1)),     # overlapping windows
    ((1, 2, 5, 7), 3, 1),
])
def test_stochastic_pool_eval_gradcheck(shape, kernel, stride):
    check(lambda t: F.stochastic_pool2d(t, kernel, stride, training=False), positive(shape))


# Windows must not overlap: where two pooled values point at one cell, the forward keeps one
# of them while backward gathers for both (as in torch), which no finite difference sees.
@pytest.mark.parametrize("dims,shape,kwargs", [
    ("1d", (2, 2, 9), dict(kernel_size=2, stride=3, padding=1)),
    ("2d", (1, 2, 6, 7), dict(kernel_size=2, stride=2)),
    ("2d", (2, 7, 7), dict(kernel_size=3, stride=3, padding=1)),
])
def test_max_unpool_gradcheck(dims, shape, kwargs):
    source = make_input(1, shape, np.float64, "distinct")
    pooled, indices = getattr(F, f"max_pool{dims}")(mp.tensor(source), **kwargs, return_indices=True)
    unpool = getattr(F, f"max_unpool{dims}")
    spatial = shape[-int(dims[0]):]
    check(lambda t: unpool(t, indices, **kwargs, output_size=spatial),
          mp.tensor(pooled.numpy(), requires_grad=True))


@pytest.mark.parametrize("kind", ["max", "min", "avg", "sum"])
@pytest.mark.parametrize("padding", ["same", "valid", 1])
def test_channels_last_and_keras_padding_gradcheck(kind, padding):
    x = distinct((2, 6, 7, 3)) if kind in ("max", "min") else positive((2, 6, 7, 3))
    pool = getattr(F, f"{kind}_pool2d")
    check(lambda t: pool(t, 3, 2, padding, data_format="channels_last"), x)
    x_first = distinct((2, 3, 6, 7)) if kind in ("max", "min") else positive((2, 3, 6, 7))
    check(lambda t: pool(t, 3, 2, padding), x_first)


def test_max_pool_gradcheck_with_dilated_same_padding():
    check(lambda t: F.max_pool2d(t, 2, 1, "same", dilation=2), distinct((1, 2, 5, 6)))
