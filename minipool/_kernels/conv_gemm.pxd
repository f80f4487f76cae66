# The GEMM every convolution family calls: C (+)= op(A) @ op(B), row-major, through
# the BLAS NumPy was built with (its ``cblas_?gemm``, found by minipool/_blas.py) or,
# without one, a plain loop that gives the same results, slowly.
#
# The BLAS addresses are process state, set once by ``use_blas`` (conv_gemm.pyx):
# the three variables below are that module's, and every module that cimports them
# reads the same ones (Cython shares a .pxd's module variables through pointers);
# there is no second copy.  ``_gemm`` is an inline function: it is compiled into each
# module that cimports it, and inlined with its callers there as before the split.
from cython cimport floating
from libc.stdint cimport int64_t

# Cython declares every function of a .pxd ``inline``, and with that hint gcc inlined
# the column builders and the GEMM call into the large OpenMP bodies of their callers:
# register spills in col2im's inner loop made conv_transpose2d's forward 1.3x slower.
# The functions that were compiled out of line before the split (gcc's own choice
# then) return ``noinline_void`` instead: the same C void, kept out of line.
cdef extern from *:
    """
    #if defined(__GNUC__)
    #pragma GCC diagnostic ignored "-Wattributes"  /* inline (Cython's) and noinline (ours) */
    #define MP_NOINLINE_VOID __attribute__((noinline)) void
    #else
    #define MP_NOINLINE_VOID void
    #endif
    """
    ctypedef void noinline_void "MP_NOINLINE_VOID"

# Row-major CBLAS enum values (cblas.h)
cdef enum:
    ROW_MAJOR = 101
    NO_TRANS = 111
    TRANS = 112
    INT32_LIMIT = 2147483647

ctypedef void (*sgemm64_t)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t,
                           const float*, int64_t, float, float*, int64_t) noexcept nogil
ctypedef void (*dgemm64_t)(int, int, int, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t) noexcept nogil
ctypedef void (*sgemm32_t)(int, int, int, int, int, int, float, const float*, int,
                           const float*, int, float, float*, int) noexcept nogil
ctypedef void (*dgemm32_t)(int, int, int, int, int, int, double, const double*, int,
                           const double*, int, double, double*, int) noexcept nogil

# Set by conv_gemm.use_blas; NULL: the loop GEMM.
cdef void* _sgemm
cdef void* _dgemm
cdef bint _ilp64          # the BLAS takes 64-bit integers


cdef inline void _loop_gemm(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                            const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
                            bint accumulate, floating* C, Py_ssize_t ldc) noexcept nogil:
    """C (+)= op(A) @ op(B), row-major: the stand-in when no BLAS is reachable."""
    cdef Py_ssize_t i, j, p
    cdef floating a
    cdef floating* c_row
    for i in range(M):
        c_row = C + i * ldc
        if not accumulate:
            for j in range(N):
                c_row[j] = 0
        for p in range(K):
            a = A[p * lda + i] if trans_a else A[i * lda + p]
            if trans_b:
                for j in range(N):
                    c_row[j] += a * B[j * ldb + p]
            else:
                for j in range(N):
                    c_row[j] += a * B[p * ldb + j]


cdef inline noinline_void _gemm(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                       const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
                       bint accumulate, floating* C, Py_ssize_t ldc) noexcept nogil:
    """C = op(A) @ op(B), or C += ... with ``accumulate``; all matrices row-major."""
    cdef int ta = TRANS if trans_a else NO_TRANS, tb = TRANS if trans_b else NO_TRANS
    cdef void* blas = _sgemm if floating is float else _dgemm
    cdef floating beta = 1 if accumulate else 0  # BLAS ignores C's old values when beta == 0
    cdef bint fits32 = (M <= INT32_LIMIT and N <= INT32_LIMIT and K <= INT32_LIMIT and
                        lda <= INT32_LIMIT and ldb <= INT32_LIMIT and ldc <= INT32_LIMIT)
    if M == 0 or N == 0:
        return
    if K == 0:
        if not accumulate:
            _loop_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, accumulate, C, ldc)
        return
    if blas != NULL and (_ilp64 or fits32):
        if floating is float:
            if _ilp64:
                (<sgemm64_t>blas)(ROW_MAJOR, ta, tb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc)
            else:
                (<sgemm32_t>blas)(ROW_MAJOR, ta, tb, <int>M, <int>N, <int>K, 1, A, <int>lda,
                                  B, <int>ldb, beta, C, <int>ldc)
        else:
            if _ilp64:
                (<dgemm64_t>blas)(ROW_MAJOR, ta, tb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc)
            else:
                (<dgemm32_t>blas)(ROW_MAJOR, ta, tb, <int>M, <int>N, <int>K, 1, A, <int>lda,
                                  B, <int>ldb, beta, C, <int>ldc)
        return
    _loop_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, accumulate, C, ldc)
