"""Determinism and threads.

* Every kernel (pooling, unpooling, upsampling, im2col/col2im) gives
  bit-identical forward results and gradients with 1 and 2 OpenMP threads and
  on repeated runs.  Inputs are large enough that ``_config.kernel_threads``
  really picks 2 threads (checked), and hold ties, NaN and -0.0 where they
  matter; results are compared byte for byte.
* Four Python threads calling kernels at the same time (each kernel call
  releases the GIL and may start its own OpenMP team) all get the results a
  lone single-threaded call gives.
"""
import threading

import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool import _config
from minipool._kernels import openmp_helpers
from tests.helpers import fixed_threads

SHAPE = (2, 8, 48, 48)            # 36,864 elements: above the parallel work threshold
SHAPE_1D = (2, 8, 2400)
SHAPE_3D = (2, 4, 16, 24, 24)
SHAPE_NHWC = (2, 48, 48, 8)


def _unpool(x):
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    return F.max_unpool2d(y, idx, 2, output_size=x.shape[-2:])


def _conv(x):
    w = mp.tensor(np.random.default_rng(1).standard_normal((6, 8, 3, 3)).astype(x.dtype),
                  requires_grad=True)
    return F.conv2d(x, w, stride=1, padding=1)


# name -> (input shape, op); the op's tuple results (values, indices) are all compared
OPS = {
    "max_pool2d_2x2": (SHAPE, lambda x: F.max_pool2d(x, 2, return_indices=True)),
    "max_pool2d_3x3s2p1": (SHAPE, lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True)),
    "max_pool2d_general": (SHAPE, lambda x: F.max_pool2d(x, (3, 2), (2, 3), 1, (2, 1),
                                                         ceil_mode=True, return_indices=True)),
    "max_pool2d_big_window": (SHAPE, lambda x: F.max_pool2d(x, 17, 3, return_indices=True)),
    "min_pool2d": (SHAPE, lambda x: F.min_pool2d(x, 3, 2, return_indices=True)),
    "max_pool1d": (SHAPE_1D, lambda x: F.max_pool1d(x, 5, 3, 2, return_indices=True)),
    "max_pool3d": (SHAPE_3D, lambda x: F.max_pool3d(x, 2, return_indices=True)),
    "avg_pool2d": (SHAPE, lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True,
                                                 count_include_pad=False)),
    "avg_pool3d": (SHAPE_3D, lambda x: F.avg_pool3d(x, 3, 2, 1)),
    "sum_pool2d": (SHAPE, lambda x: F.sum_pool2d(x, 2)),
    "lp_pool2d": (SHAPE, lambda x: F.lp_pool2d(x, 3.0, 3, 2)),
    "adaptive_max_pool2d": (SHAPE, lambda x: F.adaptive_max_pool2d(x, (7, 5), return_indices=True)),
    "adaptive_avg_pool2d": (SHAPE, lambda x: F.adaptive_avg_pool2d(x, (7, 5))),
    "stochastic_train": (SHAPE, lambda x: F.stochastic_pool2d(abs_(x), 2, generator=3)),
    "stochastic_eval": (SHAPE, lambda x: F.stochastic_pool2d(abs_(x), 3, 2, training=False)),
    "max_unpool2d": (SHAPE, _unpool),
    "nhwc_max_pool2d": (SHAPE_NHWC, lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True,
                                                           data_format="channels_last")),
    "nhwc_avg_pool2d": (SHAPE_NHWC, lambda x: F.avg_pool2d(x, 2, data_format="channels_last")),
    "nearest": (SHAPE, lambda x: F.interpolate(x, scale_factor=2)),
    "nearest_fraction": (SHAPE, lambda x: F.interpolate(x, size=(71, 33))),
    "nearest_exact": (SHAPE, lambda x: F.interpolate(x, scale_factor=1.7, mode="nearest-exact")),
    "linear": (SHAPE_1D, lambda x: F.interpolate(x, scale_factor=2.5, mode="linear")),
    "bilinear": (SHAPE, lambda x: F.interpolate(x, scale_factor=2, mode="bilinear")),
    "bilinear_down_ac": (SHAPE, lambda x: F.interpolate(x, size=(31, 20), mode="bilinear",
                                                        align_corners=True)),
    "bicubic": (SHAPE, lambda x: F.interpolate(x, scale_factor=1.5, mode="bicubic")),
    "trilinear": (SHAPE_3D, lambda x: F.interpolate(x, scale_factor=(1, 1.5, 2), mode="trilinear")),
    "area": (SHAPE, lambda x: F.interpolate(x, size=(20, 13), mode="area")),
    "nhwc_bilinear": (SHAPE_NHWC, lambda x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                                          data_format="channels_last")),
    "conv2d": (SHAPE, _conv),
}


def abs_(x):
    return mp.clip(x, 0.0, None)


def input_data(shape, dtype, seed=0):
    """Values with many ties (a few levels), some NaN and -0.0, plus a fresh gradient seed."""
    rng = np.random.default_rng(seed)
    data = np.round(rng.standard_normal(shape) * 2) / 2
    flat = data.reshape(-1)
    flat[rng.integers(0, flat.size, 20)] = -0.0
    return data.astype(dtype)


def with_nan(data, seed=1):
    data = data.copy()
    flat = data.reshape(-1)
    flat[np.random.default_rng(seed).integers(0, flat.size, 15)] = np.nan
    return data


def run(name, data, threads):
    """Forward + backward of op ``name`` with ``threads`` kernel threads: every output's bytes."""
    with fixed_threads(threads):
        return run_concurrent(name, data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPS))
def test_one_and_two_threads_give_identical_bits(name, dtype):
    shape, _ = OPS[name]
    n_planes = shape[0] if name.startswith("nhwc") else int(np.prod(shape[:2]))
    if openmp_helpers.openmp_enabled():  # the test is meaningless if the kernels stay serial
        with fixed_threads(2):
            assert _config.kernel_threads(n_planes, int(np.prod(shape))) == 2
    data = input_data(shape, dtype)
    if not name.startswith(("stochastic", "lp", "conv")):  # NaN keeps its meaning there too,
        data = with_nan(data)                              # but lp/conv would only spread it
    reference = run(name, data, 1)
    for threads in (2, 1, 2):
        assert run(name, data, threads) == reference, f"{name} changed with {threads} threads"


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_integer_max_pool_is_thread_independent(dtype):
    data = np.random.default_rng(0).integers(0, 9, SHAPE).astype(dtype)
    results = []
    for threads in (1, 2, 2):
        with fixed_threads(threads):
            y, idx = F.max_pool2d(mp.tensor(data), 3, 2, 1, return_indices=True)
            results.append((y.numpy().tobytes(), idx.numpy().tobytes()))
    assert results[0] == results[1] == results[2]


def test_openmp_team_really_has_two_threads():
    if not openmp_helpers.openmp_enabled():
        pytest.skip("serial build: no OpenMP team")  # the build's choice, reported by show_config
    assert openmp_helpers.threads_used(2) == 2


def test_four_python_threads_calling_kernels_at_once():
    """Each Python thread runs its own ops repeatedly on its own inputs; all start together
    behind a barrier and every result must equal a lone single-threaded run's bytes."""
    names = ["max_pool2d_3x3s2p1", "avg_pool2d", "bilinear", "max_unpool2d", "bicubic",
             "adaptive_max_pool2d", "nhwc_max_pool2d", "conv2d"]
    plans = [names[i::4] for i in range(4)]
    inputs = {n: input_data(OPS[n][0], np.float32, seed=i) for i, n in enumerate(names)}
    expected = {n: run(n, inputs[n], 1) for n in names}
    barrier = threading.Barrier(4)
    errors, done = [], []

    def worker(plan):
        try:
            barrier.wait(timeout=60)
            for _ in range(20):
                for n in plan:
                    if run_concurrent(n, inputs[n]) != expected[n]:
                        errors.append(n)
            done.append(plan)
        except Exception as e:  # noqa: BLE001 - report it in the main thread
            errors.append(f"{type(e).__name__}: {e}")

    with fixed_threads(2):
        threads = [threading.Thread(target=worker, args=(p,)) for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert not errors, errors
    assert len(done) == 4


def run_concurrent(name, data):
    """``run`` without touching the process-wide thread count (other threads use it)."""
    _, fn = OPS[name]
    x = mp.tensor(data, requires_grad=True)
    result = fn(x)
    outputs = result if isinstance(result, tuple) else (result,)
    y = outputs[0]
    y.backward(np.random.default_rng(7).standard_normal(y.shape).astype(y.dtype))
    return [(a.dtype.str, a.shape, a.tobytes()) for a in [o.numpy() for o in outputs] + [x.grad.numpy()]]
