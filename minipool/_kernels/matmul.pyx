"""Matrix products on minipool's own threads: C (+)= op(A) @ op(B), cut into blocks.

``linear`` and ``matmul`` used to call NumPy's matmul with OpenBLAS held to one
thread (its own threads spinning beside minipool's OpenMP team made a training
loop 6x slower), so a network of linear layers ran on one core at any thread
count.  Here the product is cut into blocks, and minipool's threads share the
blocks out.  float32 products whose output rows are at least 64 wide run on
register tiles where the CPU has AVX-512 (gemm_tiles.h: 0.9-3.5x OpenBLAS per GEMM,
1.46x on batch-64 linear forwards, Zen 4; ``use_tiles``), each block a range of the tiles' rows or
columns; the others call the BLAS GEMM conv2d uses (conv_gemm.pxd, still on one
OpenBLAS thread), each block a range of C's columns (or rows, whichever C has
more of).

The BLAS cut depends on the shape alone (``matmul_blocks``), never on the thread
count, so every element is the same computation whatever thread computes its
block: the bits do not change with the thread count.  (The tiles' bits do not
depend on any cut: there each product runs as one block per thread, up to
``_tile_blocks``.)  A BLAS block is at least
MIN_BLOCK_EXTENT columns (rows) and BLOCK_MULTIPLY_ADDS multiply-adds, and the
blocks are a power of two in number (an even share for 1, 2, 4 ... threads).
Each extra BLAS block packs the other operand once more: measured on one thread,
64 x 784 @ 784 x 512 as 1, 2, 4 and 8 blocks of columns took 666, 673, 683 and
700 us (OpenBLAS, Zen 4), and at 2 threads 2 blocks beat 4 (359 against 397 us),
hence the 256-wide floor.
"""
from cython cimport floating
from libc.stdlib cimport free, malloc

from minipool._kernels._load_team cimport _launch
from minipool._kernels.conv_gemm cimport _gemm

cdef extern from "gemm_tiles.h" nogil:
    ctypedef struct mp_gemm_job:
        Py_ssize_t rows, cols
    int mp_gemm_pick(int allow)
    int mp_gemm_fits(int trans_a, int trans_b, Py_ssize_t M, Py_ssize_t N)
    int mp_gemm_d_transposed(int trans_a, int trans_b, Py_ssize_t M, Py_ssize_t N)
    Py_ssize_t mp_gemm_work(int trans_a, int trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K)
    mp_gemm_job mp_gemm_plan(int trans_a, int trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                             const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
                             int accumulate, float* C, Py_ssize_t ldc, float* work)
    void mp_gemm_block(const mp_gemm_job* g, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t c0,
                       Py_ssize_t c1, int pick)

cdef enum:
    MIN_BLOCK_EXTENT = 256
    BLOCK_MULTIPLY_ADDS = 1 << 20
    MAX_BLOCKS = 16
    # the tiles' blocks: at least this many multiply-adds (2 threads, Zen 4: LeNet-5's
    # fc1 at batch 64, 3M of them, 57 -> 40 us as 2 blocks; 16 blocks of 1M on 64 x 512
    # @ 512 x 512 cost 3-11% against 2)
    TILE_BLOCK_MULTIPLY_ADDS = 1 << 19


cdef struct Product:
    const void* A
    const void* B
    void* C
    Py_ssize_t M, N, K, lda, ldb, ldc, blocks
    bint trans_a, trans_b, accumulate, by_columns, float64
    int tiles                # float32 on gemm_tiles.h's build (2 AVX-512, 1 AVX2), 0: the BLAS
    mp_gemm_job job          # ... its job, cut into blocks of D's rows or columns (by_columns)


# gemm_tiles.h's build for float32 products (``use_tiles``): 2 AVX-512, 1 AVX2, 0 the BLAS
cdef int _tiles = mp_gemm_pick(2)


def use_tiles(int mode=2):
    """float32 products on gemm_tiles.h's register tiles: 2 (the default) the AVX-512
    tiles where the CPU has AVX-512, else the BLAS; 1 the AVX2 tiles (slower than
    OpenBLAS on some shapes: for tests and trials); 0 the BLAS.  Returns the build now
    in use (0 where the CPU lacks the one asked for)."""
    global _tiles
    if mode not in (0, 1, 2):
        raise ValueError(f"use_tiles: mode must be 0, 1 or 2, got {mode}")
    _tiles = mp_gemm_pick(mode)
    return _tiles


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


cdef inline Py_ssize_t _tile_edge(Py_ssize_t extent, Py_ssize_t block, Py_ssize_t blocks,
                                  Py_ssize_t step) noexcept nogil:
    """Where block ``block`` of ``blocks`` begins along ``extent``: the exact share,
    rounded to a multiple of ``step`` (whole tiles), the last block ending at ``extent``."""
    if block >= blocks:
        return extent
    return min(extent, (extent * block // blocks + step // 2) // step * step)


cdef void _product_chunk(void* context, Py_ssize_t block, int worker) noexcept nogil:
    cdef Product* p = <Product*>context
    if p.tiles:  # a block of D's rows or of its columns (panels of 64: whole vectors)
        if p.by_columns:
            mp_gemm_block(&p.job, 0, p.job.rows, _tile_edge(p.job.cols, block, p.blocks, 64),
                          _tile_edge(p.job.cols, block + 1, p.blocks, 64), p.tiles)
        else:
            mp_gemm_block(&p.job, _tile_edge(p.job.rows, block, p.blocks, 6),
                          _tile_edge(p.job.rows, block + 1, p.blocks, 6), 0, p.job.cols,
                          p.tiles)
    elif p.float64:
        _product_block(p, block, <double*>NULL)
    else:
        _product_block(p, block, <float*>NULL)


cdef Py_ssize_t _tile_blocks(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t K) noexcept nogil:
    """The most blocks the tiles cut a product into: whole tiles each (6 of D's rows or
    64 of its columns, along the longer), TILE_BLOCK_MULTIPLY_ADDS each, at most MAX_BLOCKS.
    The tiles' bits do not depend on the cut (each output one chain whatever block holds
    it), so a product runs as one block per thread up to this."""
    cdef Py_ssize_t pieces = (cols + 63) // 64 if cols > rows else (rows + 5) // 6
    return max(1, min(MAX_BLOCKS, pieces, rows * cols * K // TILE_BLOCK_MULTIPLY_ADDS))


def product_blocks(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                   bint float64=False):
    """The blocks ``matmul_into`` cuts this product into at most (the thread count it can
    use): on the tiles, up to ``_tile_blocks``; on the BLAS, ``matmul_blocks``."""
    if not _on_tiles(trans_a, trans_b, M, N, K, float64):
        return _blocks(M, N, K)
    if mp_gemm_d_transposed(trans_a, trans_b, M, N):
        return _tile_blocks(N, M, K)
    return _tile_blocks(M, N, K)


cdef inline bint _on_tiles(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                           bint float64) noexcept nogil:
    return (not float64 and _tiles != 0 and K > 0
            and mp_gemm_fits(trans_a, trans_b, M, N) == 1)


def uses_tiles(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
               bint float64=False):
    """Whether ``matmul_into`` computes this product on the register tiles (else the BLAS)."""
    return _on_tiles(trans_a, trans_b, M, N, K, float64)


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
    p.tiles = _tiles if _on_tiles(trans_a, trans_b, M, N, K, floating is double) else 0
    cdef float* work = NULL
    cdef Py_ssize_t work_size = mp_gemm_work(trans_a, trans_b, M, N, K) if p.tiles else 0
    if work_size:
        work = <float*>malloc(work_size * sizeof(float))
        if work == NULL:
            raise MemoryError("matmul_into: no memory for the tiles' workspace")
    try:
        with nogil:
            if p.tiles:
                p.job = mp_gemm_plan(trans_a, trans_b, M, N, K, <const float*>p.A, p.lda,
                                     <const float*>p.B, p.ldb, accumulate, <float*>p.C, p.ldc,
                                     work)
                p.by_columns = p.job.cols > p.job.rows
                p.blocks = min(max(1, num_threads), _tile_blocks(p.job.rows, p.job.cols, K))
            _launch(_product_chunk, &p, p.blocks, num_threads, False)
    finally:
        free(work)
