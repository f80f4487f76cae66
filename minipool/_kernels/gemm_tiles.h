/* float32 C (+)= op(A) @ op(B) on register tiles (matmul.pyx: linear and matmul),
 * for x86-64 with AVX-512 (6 rows by 4 zmm of 16 columns; AVX2 + FMA, 6 rows by 2 ymm
 * of 8, on request: see mp_gemm_pick).  Otherwise, or for float64, matmul.pyx calls
 * the BLAS.
 *
 * One loop serves all four transposes: D (rows x cols) (+)= P Q, where P is read one
 * element at a time (broadcast: any strides) and Q a row of columns at a time (each
 * row contiguous):
 *     A @ B      P = A, Q = B, D = C
 *     A.T @ B    P = A read down its columns, Q = B, D = C
 *     A.T @ B.T  D = C.T = B @ A: P = B, Q = A
 *     A @ B.T    the smaller of A and B copied transposed into `work` (K x its rows),
 *                then one of the forms above.
 * Where D is C.T, D goes to `work` and each block of it is then written into C
 * transposed, 8x8 at a time.  So no operand is packed except that one copy: linear's
 * forward (batch rows against out_features rows) copies the batch, 64 x 784 of it
 * against a 784 x 512 weight.
 *
 * The bits: each output is one chain of fma over k in order from +0, then, with
 * `accumulate`, one add of C's old value (as a BLAS with beta = 1 rounds it).  The same
 * on either build, any tile position and any cut of C into blocks: the bits depend on
 * the shape alone.  (They are not OpenBLAS's: it splits and orders the sums its way.)
 *
 * Needs Python.h (Py_ssize_t) and <string.h>. */
#ifndef MINIPOOL_GEMM_TILES_H
#define MINIPOOL_GEMM_TILES_H
#include <string.h>
#include "cpu_features.h"

#define MP_GEMM_MR 6 /* rows of a tile */

/* P(r, k) = p[r * p_r + k * p_k]; Q(k, c) = q[k * q_k + c]; D(r, c) = d[r * d_r + c] */
typedef struct {
    const float *p;
    Py_ssize_t p_r, p_k;
    const float *q;
    Py_ssize_t q_k;
    float *d;
    Py_ssize_t d_r;
    Py_ssize_t rows, cols, K;
    int accumulate;   /* D += P Q (else D = P Q) */
    float *c;         /* C, when D is C.T kept in `work` (else NULL) */
    Py_ssize_t ldc;
    int c_accumulate; /* ... C += D.T (else C = D.T) */
} mp_gemm_job;

#if MP_CPU_X86_DISPATCH
#define MP_GEMM_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define MP_GEMM_AVX2 __attribute__((target("avx2,fma")))

/* The tile's sums (rows x n, n <= width) out to D. */
static inline __attribute__((always_inline)) void mp_gemm_store(
        const mp_gemm_job *g, Py_ssize_t r0, Py_ssize_t c0, int rows, Py_ssize_t n,
        const float *tile, int width) {
    for (int r = 0; r < rows; r++) {
        float *d = g->d + (r0 + r) * g->d_r + c0;
        const float *t = tile + r * width;
        if (g->accumulate)
            for (Py_ssize_t c = 0; c < n; c++) d[c] = t[c] + d[c];
        else
            memcpy(d, t, (size_t)n * sizeof(float));
    }
}

/* ROWS x (NV vectors) tile at (r0, c0), n <= NV * lanes valid columns (a masked load
 * past them reads zeros).  VEC/LANES/... name the build's vector type and operations. */
#define MP_GEMM_TILE(NAME, ATTR, VEC, LANES, NV, ZERO, SET1, FMA, LOAD, LOAD_MASKED, STORE,   \
                     MASK_T, MASK_OF, ADD)                                                     \
    ATTR static inline __attribute__((always_inline)) void NAME(                             \
            const mp_gemm_job *g, Py_ssize_t r0, Py_ssize_t c0, Py_ssize_t n, const int ROWS) { \
        VEC acc[MP_GEMM_MR][NV];                                                              \
        for (int r = 0; r < ROWS; r++)                                                        \
            for (int v = 0; v < NV; v++) acc[r][v] = ZERO;                                    \
        const float *p = g->p + r0 * g->p_r, *q = g->q + c0;                                  \
        const Py_ssize_t p_r = g->p_r, p_k = g->p_k, q_k = g->q_k;                            \
        if (n == NV * LANES) {                                                                \
            for (Py_ssize_t k = 0; k < g->K; k++, p += p_k, q += q_k) {                       \
                VEC b[NV];                                                                    \
                for (int v = 0; v < NV; v++) b[v] = LOAD(q + v * LANES);                      \
                for (int r = 0; r < ROWS; r++) {                                              \
                    const VEC a = SET1(p[r * p_r]);                                           \
                    for (int v = 0; v < NV; v++) acc[r][v] = FMA(a, b[v], acc[r][v]);          \
                }                                                                             \
            }                                                                                 \
        } else {                                                                              \
            MASK_T mask[NV];                                                                  \
            for (int v = 0; v < NV; v++) mask[v] = MASK_OF(n - v * LANES);                    \
            for (Py_ssize_t k = 0; k < g->K; k++, p += p_k, q += q_k) {                       \
                VEC b[NV];                                                                    \
                for (int v = 0; v < NV; v++) b[v] = LOAD_MASKED(q + v * LANES, mask[v]);      \
                for (int r = 0; r < ROWS; r++) {                                              \
                    const VEC a = SET1(p[r * p_r]);                                           \
                    for (int v = 0; v < NV; v++) acc[r][v] = FMA(a, b[v], acc[r][v]);          \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        if (n == NV * LANES) { /* whole vectors straight to D */                            \
            for (int r = 0; r < ROWS; r++) {                                                  \
                float *d = g->d + (r0 + r) * g->d_r + c0;                                     \
                for (int v = 0; v < NV; v++)                                                  \
                    STORE(d + v * LANES, g->accumulate ? ADD(acc[r][v], LOAD(d + v * LANES))  \
                                                       : acc[r][v]);                          \
            }                                                                                 \
            return;                                                                           \
        }                                                                                     \
        float tile[MP_GEMM_MR * NV * LANES];                                                  \
        for (int r = 0; r < ROWS; r++)                                                        \
            for (int v = 0; v < NV; v++) STORE(tile + (r * NV + v) * LANES, acc[r][v]);       \
        mp_gemm_store(g, r0, c0, ROWS, n, tile, NV * LANES);                                  \
    }

/* D's rows [r0, r1) by columns [c0, c1): column panels outside (a panel of Q, K x
 * width, stays in L2 while the row tiles pass over it), tiles of MP_GEMM_MR rows inside;
 * the last tile's rows by a switch, so every ROWS is a constant. */
#define MP_GEMM_RUN(NAME, TILE, ATTR, WIDTH)                                                   \
    ATTR static void NAME(const mp_gemm_job *g, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t c0,  \
                          Py_ssize_t c1) {                                                     \
        for (Py_ssize_t c = c0; c < c1; c += WIDTH) {                                         \
            Py_ssize_t n = c1 - c < WIDTH ? c1 - c : WIDTH, r = r0;                           \
            for (; r + MP_GEMM_MR <= r1; r += MP_GEMM_MR) TILE(g, r, c, n, MP_GEMM_MR);       \
            switch (r1 - r) {                                                                 \
            case 5: TILE(g, r, c, n, 5); break;                                               \
            case 4: TILE(g, r, c, n, 4); break;                                               \
            case 3: TILE(g, r, c, n, 3); break;                                               \
            case 2: TILE(g, r, c, n, 2); break;                                               \
            case 1: TILE(g, r, c, n, 1); break;                                               \
            default: break;                                                                   \
            }                                                                                 \
        }                                                                                     \
    }

#define MP_GEMM_M512_MASK(n) ((__mmask16)((n) >= 16 ? 0xFFFF : (n) <= 0 ? 0 : (1u << (n)) - 1))
#define MP_GEMM_M512_LOADM(x, m) _mm512_maskz_loadu_ps(m, x)
MP_GEMM_TILE(mp_gemm_tile_avx512, MP_GEMM_AVX512, __m512, 16, 4, _mm512_setzero_ps(),
             _mm512_set1_ps, _mm512_fmadd_ps, _mm512_loadu_ps, MP_GEMM_M512_LOADM,
             _mm512_storeu_ps, __mmask16, MP_GEMM_M512_MASK, _mm512_add_ps)
MP_GEMM_RUN(mp_gemm_rows_avx512, mp_gemm_tile_avx512, MP_GEMM_AVX512, 64)

/* AVX2's masked load takes the lanes whose int has its top bit set */
MP_GEMM_AVX2 static inline __m256i mp_gemm_m256_mask(Py_ssize_t n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)), lane);
}
#define MP_GEMM_M256_LOADM(x, m) _mm256_maskload_ps(x, m)
MP_GEMM_TILE(mp_gemm_tile_avx2, MP_GEMM_AVX2, __m256, 8, 2, _mm256_setzero_ps(),
             _mm256_set1_ps, _mm256_fmadd_ps, _mm256_loadu_ps, MP_GEMM_M256_LOADM,
             _mm256_storeu_ps, __m256i, mp_gemm_m256_mask, _mm256_add_ps)
MP_GEMM_RUN(mp_gemm_rows_avx2, mp_gemm_tile_avx2, MP_GEMM_AVX2, 16)

/* Y (cols x rows, row stride ldy) (+)= X (rows x cols, row stride ldx) transposed, the
 * add where `accumulate`: 8x8 blocks in registers, the edges one value at a time.  The
 * copy for A @ B.T and the write of D into C where D is C.T.  (Element by element, a row
 * of X at a time, the copy took 40-90 us of a 300 us batch-64 784->512 product; a store
 * of D into C a value at a time, ldc apart, cost 18-40 us on 512->512.) */
MP_GEMM_AVX2 static void mp_gemm_transpose(const float *X, Py_ssize_t rows, Py_ssize_t cols,
                                           Py_ssize_t ldx, float *Y, Py_ssize_t ldy,
                                           int accumulate) {
    Py_ssize_t i0 = 0;
    for (; i0 + 8 <= rows; i0 += 8) {
        Py_ssize_t k0 = 0;
        for (; k0 + 8 <= cols; k0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(X + (i0 + i) * ldx + k0);
            mp_transpose8_ps(r);
            for (int k = 0; k < 8; k++) {
                float *y = Y + (k0 + k) * ldy + i0;
                _mm256_storeu_ps(y, accumulate ? _mm256_add_ps(r[k], _mm256_loadu_ps(y)) : r[k]);
            }
        }
        for (; k0 < cols; k0++)
            for (Py_ssize_t i = i0; i < i0 + 8; i++)
                Y[k0 * ldy + i] = accumulate ? X[i * ldx + k0] + Y[k0 * ldy + i] : X[i * ldx + k0];
    }
    for (; i0 < rows; i0++)
        for (Py_ssize_t k = 0; k < cols; k++)
            Y[k * ldy + i0] = accumulate ? X[i0 * ldx + k] + Y[k * ldy + i0] : X[i0 * ldx + k];
}
#endif /* MP_CPU_X86_DISPATCH */

/* The build `allow` asks for, where the CPU runs it: 2 AVX-512, 1 AVX2 + FMA, else 0
 * (the caller uses the BLAS).  matmul.pyx asks for 2: the AVX2 tiles measured
 * 0.56-1.25x OpenBLAS on Zen 4 (which runs OpenBLAS's AVX-512 kernels), and no AVX2
 * machine has timed them, so they run only when asked for (the tests compare the bits). */
static inline int mp_gemm_pick(int allow) {
#if MP_CPU_X86_DISPATCH
    __builtin_cpu_init();
    if (allow == 2)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                       && mp_cpu_avx2_fma(1) ? 2 : 0;
    return allow == 1 && mp_cpu_avx2_fma(1) ? 1 : 0;
#else
    (void)allow;
    return 0;
#endif
}

/* Whether the tiles take the product: D's columns fill at least one panel of 64 (a
 * whole AVX-512 tile).  A @ B.T also needs both sides that wide: the copy then goes to
 * the smaller side, and fewer rows (a batch of 1-32 against a wide weight) would fill a
 * fraction of the lanes, or copy the weight (measured 0.04-0.84x OpenBLAS).  Otherwise
 * the caller uses the BLAS. */
static inline int mp_gemm_fits(int trans_a, int trans_b, Py_ssize_t M, Py_ssize_t N) {
    if (!trans_a && trans_b) return M >= 64 && N >= 64;
    return (trans_a && trans_b ? M : N) >= 64;
}

/* Whether D is C.T (see the top): A.T @ B.T, and A @ B.T with fewer rows than columns. */
static inline int mp_gemm_d_transposed(int trans_a, int trans_b, Py_ssize_t M, Py_ssize_t N) {
    return trans_b && (trans_a || M < N);
}

/* The floats of `work` mp_gemm_plan needs: the transposed copy for A @ B.T, and D where
 * it is C.T. */
static inline Py_ssize_t mp_gemm_work(int trans_a, int trans_b, Py_ssize_t M, Py_ssize_t N,
                                      Py_ssize_t K) {
    if (!trans_a && trans_b) return K * (M < N ? M : N) + (M < N ? M * N : 0);
    return trans_a && trans_b ? M * N : 0;
}

/* The job for C (M x N, ldc) (+)= op(A) @ op(B), row-major (see the top); A @ B.T first
 * copies the smaller operand transposed into `work` (mp_gemm_work floats), which
 * mp_gemm_block then reads: call this once, before any thread runs a block. */
static inline mp_gemm_job mp_gemm_plan(int trans_a, int trans_b, Py_ssize_t M, Py_ssize_t N,
                                       Py_ssize_t K, const float *A, Py_ssize_t lda,
                                       const float *B, Py_ssize_t ldb, int accumulate,
                                       float *C, Py_ssize_t ldc, float *work) {
    mp_gemm_job g;
    g.K = K, g.accumulate = accumulate, g.c = NULL, g.ldc = ldc, g.c_accumulate = accumulate;
    g.d = C, g.d_r = ldc, g.rows = M, g.cols = N;
    if (!trans_a && trans_b) { /* A @ B.T: copy the smaller of A, B transposed */
        const float *X = M < N ? A : B;
        Py_ssize_t rows = M < N ? M : N, ldx = M < N ? lda : ldb;
#if MP_CPU_X86_DISPATCH /* (elsewhere mp_gemm_pick gives 0: no plan is made) */
        mp_gemm_transpose(X, rows, K, ldx, work, rows, 0);
#else
        (void)X, (void)ldx;
#endif
        if (M < N) /* C.T = B @ (A.T): P = B, Q = the copy */
            g.p = B, g.p_r = ldb, g.p_k = 1, g.q = work, g.q_k = M, g.d = work + K * M;
        else       /* C = A @ (B.T): P = A, Q = the copy */
            g.p = A, g.p_r = lda, g.p_k = 1, g.q = work, g.q_k = N;
    } else if (trans_a && trans_b) { /* C.T = B @ A */
        g.p = B, g.p_r = ldb, g.p_k = 1, g.q = A, g.q_k = lda, g.d = work;
    } else { /* A @ B, A.T @ B */
        g.p = A, g.p_r = trans_a ? 1 : lda, g.p_k = trans_a ? lda : 1, g.q = B, g.q_k = ldb;
    }
    if (mp_gemm_d_transposed(trans_a, trans_b, M, N)) /* D in work: into C block by block */
        g.c = C, g.d_r = M, g.rows = N, g.cols = M, g.accumulate = 0;
    return g;
}

/* The job's rows [r0, r1) by columns [c0, c1) of D (C, or C.T: then written into C
 * here) on the build `pick` (mp_gemm_pick: 1 or 2). */
static inline void mp_gemm_block(const mp_gemm_job *g, Py_ssize_t r0, Py_ssize_t r1,
                                 Py_ssize_t c0, Py_ssize_t c1, int pick) {
#if MP_CPU_X86_DISPATCH
    if (pick == 2)
        mp_gemm_rows_avx512(g, r0, r1, c0, c1);
    else if (pick == 1)
        mp_gemm_rows_avx2(g, r0, r1, c0, c1);
    if (g->c && pick) /* D is C.T: this block of it into C */
        mp_gemm_transpose(g->d + r0 * g->d_r + c0, r1 - r0, c1 - c0, g->d_r,
                          g->c + c0 * g->ldc + r0, g->ldc, g->c_accumulate);
#else
    (void)g, (void)r0, (void)r1, (void)c0, (void)c1, (void)pick;
#endif
}
#endif
