"""The GEMM behind ``linear`` and ``matmul``: op(a) @ op(b) on minipool's threads.

NumPy's OpenBLAS, found once here (``minipool._blas.gemm_addresses``), is handed
to the kernels (``conv_gemm.use_blas``), which call its ``cblas_?gemm`` from
their own threads with OpenBLAS held to one thread (``single_threaded``).  The
matrix kernel (``minipool/_kernels/matmul.pyx``) cuts a product into blocks by
its shape alone, so the bits do not depend on the thread count.  Anything it does
not take (other dtypes, no BLAS found) goes to ``np.matmul`` on one OpenBLAS thread.
"""
import numpy as np

from minipool import _config
from minipool._blas import gemm_addresses, single_threaded
from minipool._kernels import conv_gemm, matmul as kernel

__all__ = ["BLAS", "product"]

BLAS = gemm_addresses()  # (sgemm, dgemm, ilp64) or None: the kernels' loop GEMM
if BLAS is not None:
    conv_gemm.use_blas(*BLAS)


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
    out = np.empty((M, N), a.dtype)
    blocks = kernel.matmul_blocks(M, N, K)
    threads = _config.kernel_threads(blocks, M * K + K * N + M * N)
    with single_threaded():
        kernel.matmul_into(a, b, out, trans_a, trans_b, False, threads)
    return out
