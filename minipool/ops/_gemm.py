"""The GEMM behind ``linear`` and ``matmul``: op(a) @ op(b) on minipool's threads.

NumPy's OpenBLAS, found once here (``minipool._blas.gemm_addresses``), is handed
to the kernels (``conv_gemm.use_blas``), which call its ``cblas_?gemm`` from
their own threads with OpenBLAS held to one thread (``single_threaded``).  The
matrix kernel (``minipool/_kernels/matmul.pyx``) cuts a product into blocks by
its shape alone, so the bits do not depend on the thread count; float32 products
wide enough for its register tiles (``kernel.uses_tiles``) call no BLAS at all.
Anything it does not take (other dtypes, no BLAS found) goes to ``np.matmul`` on
one OpenBLAS thread.
"""
import contextlib
import math

import numpy as np

from minipool import _config
from minipool._blas import gemm_addresses, single_threaded
from minipool._kernels import conv_gemm, matmul as kernel

__all__ = ["BLAS", "product", "as_rows"]

# a @ b.T as (b @ a.T).T (see ``product``) from this many multiply-adds, up to this many
# outputs (the copy's cost).  1 thread, Zen 4, A/B in one process: batch-64 products
# 784->512 1.16x, 512->512 1.14x, 400->120 1.10x; below the work 120->84 0.93x, above the
# outputs 1024->1024 at batch 256 0.96x
TRANSPOSED_MIN_WORK = 1 << 21
TRANSPOSED_MAX_OUTPUT = 1 << 17

BLAS = gemm_addresses()  # (sgemm, dgemm, ilp64) or None: the kernels' loop GEMM
if BLAS is not None:
    conv_gemm.use_blas(*BLAS)


def as_rows(x: np.ndarray) -> np.ndarray:
    """``x`` (..., n) as a matrix (rows, n), its leading axes flattened: how ``linear`` and
    ``x @ W`` hand a stack of rows to ``product`` (explicit sizes: ``reshape(-1, 0)`` fails)."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _c_operand(x, transposed):
    """(``x`` or ``x.T``, flag) with the array C-contiguous, copying only when neither is."""
    if x.flags.c_contiguous:
        return x, transposed
    if x.T.flags.c_contiguous:
        return x.T, not transposed
    return np.ascontiguousarray(x), transposed


def product(a: np.ndarray, b: np.ndarray, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """``op(a) @ op(b)`` for 2-d arrays, op(x) being ``x.T`` where its flag is set: a new
    C-contiguous array."""
    if (a.dtype != b.dtype or a.dtype not in (np.float32, np.float64)
            or not conv_gemm.blas_in_use()):
        with single_threaded():
            return np.matmul(a.T if trans_a else a, b.T if trans_b else b)
    a, trans_a = _c_operand(a, trans_a)
    b, trans_b = _c_operand(b, trans_b)
    M, K = a.shape[::-1] if trans_a else a.shape
    N = b.shape[0] if trans_b else b.shape[1]
    float64 = a.dtype == np.float64
    tiles = kernel.uses_tiles(trans_a, trans_b, M, N, K, float64)
    if (not tiles and trans_b and not trans_a and M < N and M * N <= TRANSPOSED_MAX_OUTPUT
            and M * N * K >= TRANSPOSED_MIN_WORK):
        # a @ b.T with fewer rows than columns (linear's forward: batch < out_features) runs
        # faster in OpenBLAS as (b @ a.T).T, the copy included (the tiles take it as it is;
        # the swapped product is not theirs either: their rule for a @ b.T is symmetric)
        return np.ascontiguousarray(_blocked(b, a, False, True, N, M, K, False).T)
    return _blocked(a, b, trans_a, trans_b, M, N, K, tiles)


def _blocked(a, b, trans_a, trans_b, M, N, K, tiles):
    """op(a) @ op(b), (M x K) @ (K x N), on the matrix kernel (C-contiguous operands of one
    float dtype); ``tiles``: ``kernel.uses_tiles`` for it, so no BLAS pin is needed."""
    out = np.empty((M, N), a.dtype)
    blocks = kernel.product_blocks(trans_a, trans_b, M, N, K, a.dtype == np.float64)
    threads = _config.kernel_threads(blocks, M * K + K * N + M * N)
    with contextlib.nullcontext() if tiles else single_threaded():
        kernel.matmul_into(a, b, out, trans_a, trans_b, False, threads)
    return out
