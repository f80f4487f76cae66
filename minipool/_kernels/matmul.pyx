"""Matrix products on minipool's own threads: C (+)= op(A) @ op(B), cut into blocks.

``linear`` and ``matmul`` used to call NumPy's matmul with OpenBLAS held to one
thread (its own threads spinning beside minipool's OpenMP team made a training
loop 6x slower), so a network of linear layers ran on one core at any thread
count.  Here the product is cut into blocks of C's columns (or rows, whichever
C has more of), each one call of the BLAS GEMM conv2d uses (conv_gemm.pxd, still
on one OpenBLAS thread), and minipool's threads share the blocks out.

The cut depends on the shape alone (``matmul_blocks``), never on the thread
count, so every element is the same computation whatever thread computes its
block: the bits do not change with the thread count.  A block is at least
MIN_BLOCK_EXTENT columns (rows) and BLOCK_MULTIPLY_ADDS multiply-adds, and the
blocks are a power of two in number (an even share for 1, 2, 4 ... threads).
Each extra block packs the other operand once more: measured on one thread,
64 x 784 @ 784 x 512 as 1, 2, 4 and 8 blocks of columns took 666, 673, 683 and
700 us (OpenBLAS, Zen 4), and at 2 threads 2 blocks beat 4 (359 against 397 us),
hence the 256-wide floor.
"""
from cython cimport floating

from minipool._kernels._load_team cimport _launch
from minipool._kernels.conv_gemm cimport _gemm

cdef enum:
    MIN_BLOCK_EXTENT = 256
    BLOCK_MULTIPLY_ADDS = 1 << 20
    MAX_BLOCKS = 16


cdef struct Product:
    const void* A
    const void* B
    void* C
    Py_ssize_t M, N, K, lda, ldb, ldc, blocks
    bint trans_a, trans_b, accumulate, by_columns, float64


cdef Py_ssize_t _blocks(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t extent = max(M, N), work = M * N * K, blocks = 1
    while (blocks < MAX_BLOCKS and extent // (2 * blocks) >= MIN_BLOCK_EXTENT
           and work // (2 * blocks) >= BLOCK_MULTIPLY_ADDS):
        blocks *= 2
    return blocks


cdef inline void _product_block(Product* p, Py_ssize_t block, floating* kind) noexcept nogil:
    """Block ``block`` of C: its share of the columns (or rows), by an exact division."""
    cdef Py_ssize_t extent = p.N if p.by_columns else p.M
    cdef Py_ssize_t begin = extent * block // p.blocks, end = extent * (block + 1) // p.blocks
    cdef const floating* A = <const floating*>p.A
    cdef const floating* B = <const floating*>p.B
    cdef floating* C = <floating*>p.C
    if p.by_columns:  # columns [begin, end) of op(B) and of C
        _gemm(p.trans_a, p.trans_b, p.M, end - begin, p.K, A, p.lda,
              B + (begin * p.ldb if p.trans_b else begin), p.ldb, p.accumulate, C + begin, p.ldc)
    else:             # rows [begin, end) of op(A) and of C
        _gemm(p.trans_a, p.trans_b, end - begin, p.N, p.K,
              A + (begin if p.trans_a else begin * p.lda), p.lda, B, p.ldb, p.accumulate,
              C + begin * p.ldc, p.ldc)


cdef void _product_chunk(void* context, Py_ssize_t block, int worker) noexcept nogil:
    if (<Product*>context).float64:
        _product_block(<Product*>context, block, <double*>NULL)
    else:
        _product_block(<Product*>context, block, <float*>NULL)


def matmul_blocks(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K):
    """The blocks an (M x K) @ (K x N) product is cut into (from the shape alone)."""
    if M < 0 or N < 0 or K < 0:
        raise ValueError(f"matmul_blocks: sizes must be >= 0, got M={M}, N={N}, K={K}")
    return _blocks(M, N, K)


def matmul_into(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] C,
                bint trans_a=False, bint trans_b=False, bint accumulate=False,
                int num_threads=1):
    """C = op(A) @ op(B), or C += ... with ``accumulate``; op(X) is X.T when its flag is
    set.  All three C-contiguous, one dtype (float32 or float64); C must not overlap A
    or B.  The blocks go to an OpenMP region of ``num_threads`` (``_config.kernel_threads``:
    fewer on a busy machine), never to the load-tolerant team: each module that calls
    that team gets its own copy of it (load_team.h is compiled into each), with helper
    threads of its own that conv2d's placement settings do not reach."""
    cdef Product p
    cdef Py_ssize_t M = A.shape[1] if trans_a else A.shape[0]
    cdef Py_ssize_t K = A.shape[0] if trans_a else A.shape[1]
    cdef Py_ssize_t N = B.shape[0] if trans_b else B.shape[1]
    cdef Py_ssize_t K_b = B.shape[1] if trans_b else B.shape[0]
    if K_b != K:
        raise ValueError(f"matmul_into: op(A) is {M} x {K} but op(B) has {K_b} rows")
    if C.shape[0] != M or C.shape[1] != N:
        raise ValueError(f"matmul_into: C must be {M} x {N}, got {C.shape[0]} x {C.shape[1]}")
    if M == 0 or N == 0:
        return
    p.A, p.B, p.C = &A[0, 0] if K else NULL, &B[0, 0] if K else NULL, &C[0, 0]
    p.M, p.N, p.K = M, N, K
    p.lda, p.ldb, p.ldc = max(1, A.shape[1]), max(1, B.shape[1]), C.shape[1]
    p.trans_a, p.trans_b, p.accumulate = trans_a, trans_b, accumulate
    p.by_columns, p.blocks = N >= M, _blocks(M, N, K)
    p.float64 = floating is double
    with nogil:
        _launch(_product_chunk, &p, p.blocks, num_threads, False)
