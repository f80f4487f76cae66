"""The float32 register tiles behind linear and matmul (minipool/_kernels/gemm_tiles.h, run by
matmul.pyx): each output one chain of fma over k in order from +0, then one add of C's
old value with ``accumulate``.

That claim is checked bit for bit against a model written here in exact rational
arithmetic, for all four transposes, both builds (AVX-512 and AVX2) and any thread
count; a hypothesis property test adds ties, signed zeros, NaN and +-inf; and linear's
gradients on the tiles are checked against PyTorch and by finite differences in the
linear tests (tests/core/test_matmul_kernel.py, which run on whichever path a shape
takes)."""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import matmul as kernel

BUILDS = {2: "AVX-512", 1: "AVX2"}


@pytest.fixture(params=sorted(BUILDS, reverse=True), ids=lambda b: BUILDS[b])
def build(request):
    """Run the test on one build of the tiles, then restore the default."""
    got = kernel.use_tiles(request.param)
    try:
        if got != request.param:
            pytest.skip(f"this CPU has no {BUILDS[request.param]} (the tiles' build here: {got})")
        yield got
    finally:
        kernel.use_tiles(2)


def to_float32(value):
    """The float32 nearest the rational ``value``, ties to even: exact, where rounding
    through float64 first could round twice."""
    guess = np.float32(float(value))
    candidates = [guess, np.nextafter(guess, np.float32(np.inf)),
                  np.nextafter(guess, np.float32(-np.inf))]
    best = min(abs(Fraction(float(c)) - value) for c in candidates)
    near = [c for c in candidates if abs(Fraction(float(c)) - value) == best]
    return min(near, key=lambda c: int(np.array(c).view(np.uint32)) & 1)


def chain_model(a, b, c_old, accumulate):
    """op(A) @ op(B) (already applied: a is M x K, b is K x N) the tiles' way: per output
    acc = +0, then acc = round(a[i, k] * b[k, j] + acc) for k in order (one fma), then
    round(acc + c_old) with ``accumulate``."""
    M, K = a.shape
    N = b.shape[1]
    out = np.empty((M, N), np.float32)
    for i in range(M):
        for j in range(N):
            acc = np.float32(0.0)
            for k in range(K):
                acc = to_float32(Fraction(float(a[i, k])) * Fraction(float(b[k, j]))
                                 + Fraction(float(acc)))
            out[i, j] = np.float32(acc + c_old[i, j]) if accumulate else acc
    return out


def operands(rng, M, N, K, trans_a, trans_b):
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    A = np.ascontiguousarray(a.T if trans_a else a)
    B = np.ascontiguousarray(b.T if trans_b else b)
    return a, b, A, B


# (M, N, K) per transpose pair: D's columns (N; for A.T @ B.T, M) at least 64, and for
# A @ B.T both sides; tails past whole vectors and past whole 6-row tiles included
SHAPES = {(False, False): (7, 70, 9), (True, False): (13, 65, 5),
          (False, True): (64, 67, 6), (True, True): (66, 5, 7)}


@pytest.mark.parametrize("trans_a,trans_b", sorted(SHAPES))
@pytest.mark.parametrize("accumulate", [False, True])
def test_each_output_is_one_fma_chain_bit_for_bit(build, trans_a, trans_b, accumulate):
    M, N, K = SHAPES[trans_a, trans_b]
    rng = np.random.default_rng(M * N + K)
    a, b, A, B = operands(rng, M, N, K, trans_a, trans_b)
    assert kernel.uses_tiles(trans_a, trans_b, M, N, K)
    c_old = rng.standard_normal((M, N)).astype(np.float32)
    want = chain_model(a, b, c_old, accumulate)
    for threads in (1, 2, 3):
        C = c_old.copy()
        kernel.matmul_into(A, B, C, trans_a, trans_b, accumulate, threads)
        assert np.array_equal(C.view(np.uint32), want.view(np.uint32)), (threads, build)


def test_the_builds_and_thread_counts_give_the_same_bits():
    if kernel.use_tiles(1) == 0:
        pytest.skip("this CPU has no AVX2: the BLAS computes every product")
    rng = np.random.default_rng(3)
    try:
        for trans_a, trans_b, (M, N, K) in [(False, True, (64, 512, 784)),
                                            (False, True, (520, 96, 300)),
                                            (False, False, (64, 784, 512)),
                                            (True, False, (512, 784, 64)),
                                            (True, True, (200, 90, 33))]:
            _, _, A, B = operands(rng, M, N, K, trans_a, trans_b)
            runs = []
            for build in sorted(BUILDS):
                if kernel.use_tiles(build) != build:
                    continue
                for threads in (1, 2, 3):
                    C = np.full((M, N), np.nan, np.float32)
                    kernel.matmul_into(A, B, C, trans_a, trans_b, False, threads)
                    runs.append(C)
            assert len(runs) >= 3 and kernel.uses_tiles(trans_a, trans_b, M, N, K)
            for other in runs[1:]:
                assert np.array_equal(runs[0].view(np.uint32), other.view(np.uint32))
    finally:
        kernel.use_tiles(2)


@pytest.mark.parametrize("trans_a,trans_b", sorted(SHAPES))
def test_larger_products_against_a_float64_reference(build, trans_a, trans_b):
    M, N, K = 70, 130, 257
    rng = np.random.default_rng(5)
    a, b, A, B = operands(rng, M, N, K, trans_a, trans_b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    C = np.full((M, N), np.nan, np.float32)
    kernel.matmul_into(A, B, C, trans_a, trans_b, False, 2)
    # a chain of K fma in float32: |error| <= K * eps * sum |a| |b| (a loose bound)
    bound = K * np.finfo(np.float32).eps * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert np.all(np.abs(C - want) <= bound)


def test_which_products_the_tiles_take(build):
    assert kernel.uses_tiles(False, True, 64, 512, 784)      # linear's forward, batch 64
    assert kernel.uses_tiles(False, False, 64, 784, 512)     # its input gradient
    assert kernel.uses_tiles(True, False, 512, 784, 64)      # its weight gradient
    assert not kernel.uses_tiles(False, True, 32, 512, 784)  # batch 32: the BLAS
    assert not kernel.uses_tiles(False, True, 64, 10, 2048)  # 10 outputs: the BLAS
    assert not kernel.uses_tiles(False, False, 64, 10, 84)   # fewer than 64 columns
    assert not kernel.uses_tiles(False, False, 64, 512, 0)   # nothing to sum
    assert not kernel.uses_tiles(False, True, 64, 512, 784, float64=True)
    try:
        assert kernel.use_tiles(0) == 0 and not kernel.uses_tiles(False, True, 64, 512, 784)
    finally:
        kernel.use_tiles(2)
    with pytest.raises(ValueError, match="mode must be 0, 1 or 2"):
        kernel.use_tiles(3)


def test_linear_on_the_tiles_matches_the_blas(build):
    rng = np.random.default_rng(8)
    x = mp.tensor(rng.standard_normal((64, 300)).astype(np.float32), requires_grad=True)
    w = mp.tensor(rng.standard_normal((200, 300)).astype(np.float32), requires_grad=True)
    g = mp.tensor(rng.standard_normal((64, 200)).astype(np.float32))
    results = []
    try:
        for mode in (build, 0):
            kernel.use_tiles(mode)
            x.grad = w.grad = None
            y = F.linear(x, w)
            y.backward(g)
            results.append([y.numpy(), x.grad.numpy(), w.grad.numpy()])
    finally:
        kernel.use_tiles(2)
    for tiles, blas in zip(*results):
        np.testing.assert_allclose(tiles, blas, rtol=1e-5, atol=1e-4)


special = st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -3.0, np.inf, -np.inf, np.nan])


@settings(max_examples=30, deadline=None)
@given(M=st.integers(1, 8), N=st.integers(64, 72), K=st.integers(0, 5),
       transposes=st.sampled_from(sorted(SHAPES)), accumulate=st.booleans(), data=st.data())
def test_property_ties_signed_zeros_nan_and_inf(M, N, K, transposes, accumulate, data):
    # Small values: every fma is exact, so the chain from +0 is plain float64 arithmetic
    # in the same order (signed zeros included: -0 * 1 + (+0) is +0), and inf and NaN
    # follow IEEE there as in the fma.
    trans_a, trans_b = transposes
    if trans_a and trans_b:
        M, N = N, M                     # A.T @ B.T: C's rows are D's columns
    if not trans_a and trans_b:
        M = 64 + M                      # A @ B.T: both sides 64 wide
    draw = lambda n: np.array(data.draw(st.lists(special, min_size=n, max_size=n)), np.float32)
    a, b = draw(M * K).reshape(M, K), draw(K * N).reshape(K, N)
    c_old = draw(M * N).reshape(M, N)
    want = np.empty((M, N), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for i in range(M):
            for j in range(N):
                acc = 0.0
                for k in range(K):
                    acc = float(a[i, k]) * float(b[k, j]) + acc
                want[i, j] = acc + float(c_old[i, j]) if accumulate else acc
    builds = [b for b in sorted(BUILDS) if kernel.use_tiles(b) == b]
    kernel.use_tiles(2)
    if not builds:
        pytest.skip("this CPU has no AVX2: the BLAS computes every product")
    A = np.ascontiguousarray(a.T if trans_a else a)
    B = np.ascontiguousarray(b.T if trans_b else b)
    try:
        for build in builds:
            kernel.use_tiles(build)
            C = c_old.copy()
            kernel.matmul_into(A, B, C, trans_a, trans_b, accumulate, 2)
            if K > 0:
                assert kernel.uses_tiles(trans_a, trans_b, M, N, K)
                np.testing.assert_array_equal(np.signbit(C) | np.isnan(C),
                                              np.signbit(want) | np.isnan(want))
            np.testing.assert_array_equal(C, want)
    finally:
        kernel.use_tiles(2)
