"""Checks shared by the files of the direct kernel's float32 forward paths (the AVX-512
and AVX2 row tiles: test_conv_direct_rows*.py; the tap runs: test_conv_direct_tap_runs.py).
Each takes ``pick``, the file's fixture or None (the file's fixture has set the path up
already): ``pick(True)`` puts every float32 forward on the path under test where it
applies, ``pick(False)`` on the engine it replaces, whose bits it promises."""
import numpy as np

from minipool._kernels import conv2d as kernels
from minipool.ops.conv import ConvGeometry
from tests.conv.conv_checks import forward, make, reference
from tests.conv.test_conv import check_one_and_two_threads_bit_identical
from tests.conv.test_conv_direct_avx512 import fma_chain


def _on(pick):
    if pick is not None:
        pick(True)


def check_bits_of_the_replaced_engine(case, pick, seed):
    x, w, b, kw = make(case, np.float32, seed=seed)
    pick(True)
    rows = forward(x, w, b, **kw)
    pick(False)
    np.testing.assert_array_equal(rows, forward(x, w, b, **kw))


def check_baseline_bits(case, pick, seed):
    x, w, b, kw = make(case, np.float32, seed=seed)
    _on(pick)
    rows = forward(x, w, b, **kw)
    try:
        kernels.use_cpu_avx2(False)
        np.testing.assert_array_equal(rows, forward(x, w, b, **kw))
    finally:
        kernels.use_cpu_avx2(True)


def check_loop_reference(case, pick, seed):
    """float32 as the float64 loop reference, to float32's rounding."""
    x, w, b, kw = make(case, np.float32, seed=seed)
    _on(pick)
    got = forward(x, w, b, **kw)
    want = reference(x.astype(np.float64), w.astype(np.float64),
                     None if b is None else b.astype(np.float64), **kw)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def check_fma_chain(N, C, H, W, O, k, pick, seed, **rule):
    """Integer data: the bits of one fma chain per output in (channel, tap) order;
    ``rule``: direct_rows_run's keywords (avx2=True for the AVX2 tiles)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2 ** 20, 2 ** 20, (N, C, H, W)).astype(np.float32)
    w = rng.integers(-2 ** 12, 2 ** 12, (O, C, k, k)).astype(np.float32)
    b = rng.standard_normal(O).astype(np.float32)
    _on(pick)
    assert kernels.direct_rows_run(C, H, W, O, ConvGeometry(k, k, 1, 1, k // 2, k // 2, 1, 1,
                                                            H, W, 1), **rule)
    np.testing.assert_array_equal(forward(x, w, b, padding=k // 2), fma_chain(x, w, b, k // 2))


def check_threads(case, pick):
    _on(pick)
    check_one_and_two_threads_bit_identical(case, np.float32)


def check_non_finite_input(value, pick, x_shape, O, seed, at=(1, 2, 0, -1)):
    """One inf or NaN at ``at`` (the top right corner of a plane) of x, 5x5 "same": every
    output whose window holds it gets it, as the loop reference; the others stay finite."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((O, x_shape[1], 5, 5)).astype(np.float32)
    x[at] = value
    _on(pick)
    got = forward(x, w, None, padding=2)
    with np.errstate(invalid="ignore"):
        want = reference(x.astype(np.float64), w.astype(np.float64), None, 1, 2, 1, 1)[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    reached = ~np.isfinite(want)
    assert reached.any() and (~np.isfinite(got) == reached).all()
