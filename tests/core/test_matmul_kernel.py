"""The matrix kernel behind linear and 2-d matmul (minipool/_kernels/matmul.pyx): cut into
blocks by the shape alone and run on minipool's threads.

Proven three ways: a loop reference written here (float64 sums), PyTorch parity, and a
float64 finite-difference check of linear's gradient through a product of several
blocks; plus the bits for any thread count, and the cut's rule."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import matmul as kernel


def loop_product(a, b):
    """(M x K) @ (K x N) by three loops, summed in float64 (small operands)."""
    M, K = a.shape
    N = b.shape[1]
    out = np.zeros((M, N))
    for i in range(M):
        for j in range(N):
            total = 0.0
            for p in range(K):
                total += float(a[i, p]) * float(b[p, j])
            out[i, j] = total
    return out


def row_column_product(a, b):
    """The same, an element at a time: row i of a dotted with column j of b in float64."""
    out = np.zeros((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            out[i, j] = np.dot(a[i].astype(np.float64), b[:, j].astype(np.float64))
    return out


@pytest.fixture
def threads():
    """Set minipool's thread count for one test, then restore it."""
    before = mp.get_num_threads()
    yield mp.set_num_threads
    mp.set_num_threads(before)


def test_the_cut_depends_on_the_shape_alone():
    assert kernel.matmul_blocks(64, 120, 400) == 1          # LeNet's fc1: too small to cut
    assert kernel.matmul_blocks(64, 512, 784) == 2          # 256+ columns a block
    assert kernel.matmul_blocks(64, 1024, 784) == 4
    assert kernel.matmul_blocks(1024, 64, 784) == 4         # the longer side: rows
    assert kernel.matmul_blocks(64, 8192, 4096) == 16       # at most 16
    assert kernel.matmul_blocks(2, 512, 1024) == 1          # 1M multiply-adds: one block
    assert kernel.matmul_blocks(4, 512, 1024) == 2
    assert kernel.matmul_blocks(0, 0, 0) == 1
    for M, N, K in [(1, 1, 1), (7, 3000, 50), (3000, 7, 50), (300, 300, 300)]:
        blocks = kernel.matmul_blocks(M, N, K)
        assert blocks & (blocks - 1) == 0 and max(M, N) // blocks >= 256 or blocks == 1
    with pytest.raises(ValueError, match="sizes must be >= 0"):
        kernel.matmul_blocks(-1, 2, 3)


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("M,N,K", [(3, 5, 4), (64, 600, 200), (600, 64, 200), (1, 1, 0)])
def test_every_transpose_against_the_loop_reference(trans_a, trans_b, M, N, K):
    rng = np.random.default_rng(M + N + K)
    a = rng.standard_normal((M, K))
    b = rng.standard_normal((K, N))
    want = row_column_product(a, b)
    for dtype, tol in [(np.float64, 1e-12), (np.float32, 1e-4)]:
        A = np.ascontiguousarray(a.T if trans_a else a, dtype)
        B = np.ascontiguousarray(b.T if trans_b else b, dtype)
        C = np.full((M, N), np.nan, dtype)  # every element written, none left from before
        kernel.matmul_into(A, B, C, trans_a, trans_b, False, 2)
        np.testing.assert_allclose(C, want, rtol=tol, atol=tol * max(1, K) ** 0.5)
        D = np.ones((M, N), dtype)
        kernel.matmul_into(A, B, D, trans_a, trans_b, True, 2)  # accumulate: C += ...
        np.testing.assert_allclose(D, want + 1, rtol=tol, atol=tol * max(1, K) ** 0.5)


def test_bad_operands_name_the_mismatch():
    a, b = np.ones((3, 4), np.float32), np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match="op\\(A\\) is 3 x 4 but op\\(B\\) has 5 rows"):
        kernel.matmul_into(a, b, np.empty((3, 6), np.float32))
    with pytest.raises(ValueError, match="C must be 3 x 5"):
        kernel.matmul_into(a, np.ones((4, 5), np.float32), np.empty((5, 3), np.float32))
    with pytest.raises(ValueError):  # one dtype for all three
        kernel.matmul_into(a, np.ones((4, 5)), np.empty((3, 5), np.float32))
    with pytest.raises(ValueError):  # C-contiguous only
        kernel.matmul_into(a, np.ones((5, 4), np.float32).T, np.empty((3, 5), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_bits_do_not_depend_on_the_thread_count(threads, dtype):
    rng = np.random.default_rng(1)
    x = mp.tensor(rng.standard_normal((96, 784)).astype(dtype), requires_grad=True)
    w = mp.tensor(rng.standard_normal((512, 784)).astype(dtype), requires_grad=True)
    b = mp.tensor(rng.standard_normal(512).astype(dtype), requires_grad=True)
    g = rng.standard_normal((96, 512)).astype(dtype)
    assert kernel.matmul_blocks(96, 512, 784) > 1 and kernel.matmul_blocks(512, 784, 96) > 1
    runs = []
    for n in (1, 2, 3):
        threads(n)
        x.grad = w.grad = b.grad = None
        y = F.linear(x, w, b)
        y.backward(mp.tensor(g))
        z = x @ w.T
        runs.append([y.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy(), z.numpy()])
    for other in runs[1:]:
        for first, second in zip(runs[0], other):
            assert np.array_equal(first, second)


def test_linear_matches_pytorch_through_several_blocks():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 40, 784)).astype(np.float32)  # leading dimensions flatten
    w = (rng.standard_normal((512, 784)) / 28).astype(np.float32)
    b = rng.standard_normal(512).astype(np.float32)
    g = rng.standard_normal((2, 40, 512)).astype(np.float32)
    ours = [mp.tensor(v, requires_grad=True) for v in (x, w, b)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (x, w, b)]
    y = F.linear(*ours)
    y.backward(mp.tensor(g))
    t = torch.nn.functional.linear(*theirs)
    t.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), t.detach().numpy(), rtol=1e-4, atol=1e-4)
    for mine, peer in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad.numpy(), peer.grad.numpy(), rtol=1e-4, atol=2e-3)


def test_linear_gradient_by_finite_differences_over_several_blocks():
    # Directional derivatives in float64: (f(v + h d) - f(v - h d)) / 2h against <grad, d>,
    # for each operand, through products the kernel cuts into 2-4 blocks.
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((8, 1024)), rng.standard_normal((512, 1024)), rng.standard_normal(512)
    r = rng.standard_normal((8, 512))
    assert kernel.matmul_blocks(8, 512, 1024) == 2 and kernel.matmul_blocks(512, 1024, 8) == 4

    def loss(*values):
        return float((F.linear(*(mp.tensor(v) for v in values)).numpy() * r).sum())

    tensors = [mp.tensor(v, requires_grad=True) for v in (x, w, b)]
    (F.linear(*tensors) * mp.tensor(r)).sum().backward()
    h = 1e-6
    for i, value in enumerate((x, w, b)):
        d = rng.standard_normal(value.shape)
        plus = [x, w, b]
        minus = [x, w, b]
        plus[i], minus[i] = value + h * d, value - h * d
        numeric = (loss(*plus) - loss(*minus)) / (2 * h)
        analytic = float((tensors[i].grad.numpy() * d).sum())
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic))


def test_matmul_gradient_of_a_transposed_operand(threads):
    threads(2)
    rng = np.random.default_rng(4)
    a = mp.tensor(rng.standard_normal((600, 200)), requires_grad=True)
    b = mp.tensor(rng.standard_normal((520, 200)), requires_grad=True)
    g = rng.standard_normal((600, 520))
    (a @ b.T).backward(mp.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), g @ b.numpy(), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(b.grad.numpy(), g.T @ a.numpy(), rtol=1e-12, atol=1e-10)


special = st.sampled_from([0.0, -0.0, 1.0, -2.5, 3.0, np.inf, -np.inf, np.nan])


@settings(max_examples=40, deadline=None)
@given(M=st.integers(1, 6), N=st.integers(1, 6), K=st.integers(0, 6),
       trans_a=st.booleans(), trans_b=st.booleans(), data=st.data())
def test_property_small_products_with_ties_nan_and_inf(M, N, K, trans_a, trans_b, data):
    # Small integers and specials: every product and partial sum is exact in float32, so
    # the kernel must give the loop's value exactly, inf and NaN where the loop has them.
    a = np.array(data.draw(st.lists(special, min_size=M * K, max_size=M * K))).reshape(M, K)
    b = np.array(data.draw(st.lists(special, min_size=K * N, max_size=K * N))).reshape(K, N)
    with np.errstate(invalid="ignore"):
        want = loop_product(a, b)
    for dtype in (np.float32, np.float64):
        A = np.ascontiguousarray(a.T if trans_a else a, dtype)
        B = np.ascontiguousarray(b.T if trans_b else b, dtype)
        C = np.empty((M, N), dtype)
        kernel.matmul_into(A, B, C, trans_a, trans_b, False, 2)
        np.testing.assert_array_equal(C, want.astype(dtype))


@pytest.mark.parametrize("trans_a,trans_b", [(False, True), (True, False), (False, False)])
def test_the_kernel_gives_the_same_bits_on_any_thread_count(trans_a, trans_b):
    # The kernel called directly on 1, 2 and 3 threads (the ops above may run on fewer
    # when the machine is busy).
    rng = np.random.default_rng(5)
    M, N, K = 96, 1024, 300
    assert kernel.matmul_blocks(M, N, K) == 4
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    B = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    outs = []
    for threads in (1, 2, 3):
        C = np.empty((M, N), np.float32)
        kernel.matmul_into(A, B, C, trans_a, trans_b, False, threads)
        outs.append(C)
    for other in outs[1:]:
        assert np.array_equal(outs[0].view(np.uint32), other.view(np.uint32))


@pytest.mark.parametrize("tiles", [2, 0], ids=["tiles", "blas"])
@pytest.mark.parametrize("M,N,K,transposed", [(64, 512, 784, True), (64, 84, 120, False),
                                              (256, 1024, 1024, False), (64, 10, 2048, False)])
def test_a_times_b_transposed_takes_the_faster_orientation(monkeypatch, tiles, M, N, K, transposed):
    # On the BLAS, product(a, b, trans_b=True) computes (b @ a.T).T where OpenBLAS measured
    # faster: the rule (ops._gemm) picks by the shape.  The float32 tiles (gemm_tiles.h)
    # take a @ b.T as it is.  Either way the values are the loop's.
    from minipool.ops import _gemm
    calls = []
    blocked = _gemm._blocked
    monkeypatch.setattr(_gemm, "_blocked", lambda *args: calls.append(args[0].shape) or blocked(*args))
    rng = np.random.default_rng(6)
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32)
    try:
        kernel.use_tiles(tiles)
        on_tiles = kernel.uses_tiles(False, True, M, N, K)
        out = _gemm.product(a, b, trans_b=True)
    finally:
        kernel.use_tiles(2)
    assert out.flags.c_contiguous and out.shape == (M, N)
    assert calls == [(N, K) if transposed and not on_tiles else (M, K)]
    rows = slice(0, 3)  # the loop reference on a few rows is enough for the orientation
    np.testing.assert_allclose(out[rows], row_column_product(a[rows], b.T), rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- a stack of matrices by one
# (..., M, K) @ (K, N) runs as one (rows, K) @ (K, N) product on the kernel (ops.linalg).

@pytest.mark.parametrize("shape_a,shape_b", [((3, 5, 7), (7, 4)), ((2, 3, 4, 6), (6, 70)),
                                             ((4, 70, 80), (80, 96)), ((0, 5, 7), (7, 4)),
                                             ((3, 0, 7), (7, 4)), ((3, 5, 0), (0, 4)),
                                             ((3, 5, 7), (7, 0))])
def test_stack_by_matrix_against_the_loop_reference(shape_a, shape_b):
    rng = np.random.default_rng(11)
    a = mp.tensor(rng.standard_normal(shape_a), requires_grad=True)
    b = mp.tensor(rng.standard_normal(shape_b), requires_grad=True)
    g = rng.standard_normal(shape_a[:-1] + shape_b[-1:])
    out = a @ b
    assert out.shape == shape_a[:-1] + shape_b[-1:]
    rows = int(np.prod(shape_a[:-1]))
    a2, g2 = a.numpy().reshape(rows, shape_a[-1]), g.reshape(rows, shape_b[-1])
    N, K = shape_b[-1], shape_a[-1]
    np.testing.assert_allclose(out.numpy().reshape(rows, N), loop_product(a2, b.numpy()),
                               rtol=1e-12, atol=1e-12)
    out.backward(mp.tensor(g))
    np.testing.assert_allclose(a.grad.numpy().reshape(rows, K), loop_product(g2, b.numpy().T),
                               rtol=1e-12, atol=1e-12)
    # b's gradient sums over every matrix of the stack: one product over all their rows
    np.testing.assert_allclose(b.grad.numpy(), loop_product(a2.T, g2), rtol=1e-12, atol=1e-12)


def test_stack_by_matrix_gradcheck_on_a_transposed_view():
    rng = np.random.default_rng(12)
    base = mp.tensor(rng.standard_normal((2, 6, 5)), requires_grad=True)
    b = mp.tensor(rng.standard_normal((6, 3)), requires_grad=True)
    assert mp.gradcheck(lambda p, q: p.transpose(1, 2) @ q, [base, b])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stack_by_matrix_bits_for_any_thread_count_and_pytorch(threads, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    a_np = rng.standard_normal((4, 64, 300)).astype(dtype)
    b_np = rng.standard_normal((300, 256)).astype(dtype)
    g_np = rng.standard_normal((4, 64, 256)).astype(dtype)
    results = []
    for n in (1, 2, 3):
        threads(n)
        a, b = mp.tensor(a_np, requires_grad=True), mp.tensor(b_np, requires_grad=True)
        out = a @ b
        out.backward(mp.tensor(g_np))
        results.append((out.numpy(), a.grad.numpy(), b.grad.numpy()))
    for other in results[1:]:
        for x, y in zip(results[0], other):
            np.testing.assert_array_equal(x, y)
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    (ta @ tb).backward(torch.tensor(g_np))
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(results[0][0], (ta @ tb).detach().numpy(), **tol)
    np.testing.assert_allclose(results[0][1], ta.grad.numpy(), **tol)
    np.testing.assert_allclose(results[0][2], tb.grad.numpy(), **tol)


@pytest.mark.parametrize("x_shape,w_shape", [((3, 0), (5, 0)), ((3, 4), (0, 4)), ((0, 4), (5, 4)),
                                             ((2, 0, 4), (5, 4)), ((4,), (5, 4))])
def test_linear_with_empty_sizes_as_pytorch(x_shape, w_shape):
    # no features in or out: PyTorch gives the bias (or nothing) and zero gradients; minipool
    # once failed in a reshape(-1, 0)
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    x_np = rng.standard_normal(x_shape)
    w_np, b_np = rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    x, w, b = (mp.tensor(v, requires_grad=True) for v in (x_np, w_np, b_np))
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x_np, w_np, b_np))
    y, ty = F.linear(x, w, b), torch.nn.functional.linear(tx, tw, tb)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    y.sum().backward()
    ty.sum().backward()
    for mine, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-12)
