/* The direct kernel's row tiles (conv2d_direct.h), the part every x86 build shares: which
 * calls are their shape (below), and their AVX2 build ("AVX2 row tiles"); the AVX-512
 * build is conv2d_direct_avx512.h's.  A stride-1 KxK convolution padded by K/2 (3x3, 5x5:
 * the output plane the input's), undilated, on rows of 4-64 pixels: a tile's points lie on
 * one output row, so they share their kernel rows, and which kernel columns each point has
 * is known at compile time from K, W and the tile's first column: a kernel row's taps are
 * unrolled, a point's pixel is an immediate offset from one pointer, and the padding taps
 * are never issued.  Each output is still one running sum from +0 over its real products
 * in (c, ki, kj) order, each step one fma, then one add of the bias (0 without one): the
 * bits of the pixel-group tiles (and so of conv2d_tiles.h for a finite weight).
 * Included from conv2d_direct.h inside its x86 block. */
#ifndef MINIPOOL_CONV2D_DIRECT_ROWS_H
#define MINIPOOL_CONV2D_DIRECT_ROWS_H

/* The row tiles' shapes: K (3 or 5) for a KxK convolution, stride 1, undilated, padded
 * by K/2 (the output plane the input's) on rows of W = 4, 8, 16, 32 or 64 pixels, else 0. */
static inline int mp_direct_rows_kernel(Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                        Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                                        Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t H, Py_ssize_t W,
                                        Py_ssize_t Ho, Py_ssize_t Wo) {
    return (kh == 3 || kh == 5) && kw == kh && sh == 1 && sw == 1 && dh == 1 && dw == 1 &&
                   ph == kh / 2 && pw == kh / 2 &&
                   (W == 4 || W == 8 || W == 16 || W == 32 || W == 64) && H > 0 && Ho == H &&
                   Wo == W
               ? (int)kh
               : 0;
}

/* Each build's row-tile functions, PREFIX_KxW for K = 3, 5 and W = 4, 8, 16, 32, 64: M(K, W)
 * for each (one such function defined), and the one for a call's K and W. */
#define MP_DIRECT_ROWS_EACH(M) \
    M(5, 64) M(5, 32) M(5, 16) M(5, 8) M(5, 4) M(3, 64) M(3, 32) M(3, 16) M(3, 8) M(3, 4)
#define MP_DIRECT_ROWS_OF(PREFIX, K, W)                                                        \
    ((K) == 5 ? ((W) == 64   ? PREFIX##_5x64                                                   \
                 : (W) == 32 ? PREFIX##_5x32                                                   \
                 : (W) == 16 ? PREFIX##_5x16                                                   \
                 : (W) == 8  ? PREFIX##_5x8                                                    \
                             : PREFIX##_5x4)                                                   \
              : ((W) == 64   ? PREFIX##_3x64                                                   \
                 : (W) == 32 ? PREFIX##_3x32                                                   \
                 : (W) == 16 ? PREFIX##_3x16                                                   \
                 : (W) == 8  ? PREFIX##_3x8                                                    \
                             : PREFIX##_3x4))

/* K of a call (NCHW in and out) whose tables are exactly those of a row-tile shape (K from
 * the taps, W from the offset of tap (1, 0), then every output's window and its taps inside
 * the plane checked), its rows' width in *width; else 0. */
static int mp_direct_rows_shape(MP_DIRECT_STRIDED_PARAMS(float), Py_ssize_t *width) {
    const Py_ssize_t K = taps == 9 ? 3 : taps == 25 ? 5 : 0, P = K / 2;
    (void)w, (void)O, (void)x, (void)count, (void)channels, (void)image, (void)bias;
    (void)out, (void)out_image, (void)out_channel;
    if (!K || pixel_step != 1 || out_pixel != 1 || L != channel_stride) return 0;
    const Py_ssize_t W = tap_offset[K], H = W > 0 ? L / W : 0;
    if (!mp_direct_rows_kernel(K, K, 1, 1, P, P, 1, 1, H, W, H, W) || L != H * W) return 0;
    /* (ki, kj) by nested loops, not t / K and t % K: a division per tap (idiv, once per
     * chunk per call) was 1.3% of a 16->32 5x5 forward on 16x16 planes */
    for (Py_ssize_t ki = 0, t = 0; ki < K; ki++)
        for (Py_ssize_t kj = 0; kj < K; kj++, t++)
            if (tap_offset[t] != ki * W + kj) return 0;
    /* a pixel's taps: those of its row's kernel rows inside the plane and of its column's
     * kernel columns inside (one mask each, ANDed: O(L), not O(L*taps)); kernel row ki's
     * taps are the K bits from ki*K, column kj's every K-th bit from kj */
    uint64_t column_taps[64], kernel_row = ((uint64_t)1 << K) - 1, kernel_column = 0;
    for (Py_ssize_t ki = 0; ki < K; ki++) kernel_column |= (uint64_t)1 << (ki * K);
    for (Py_ssize_t ow = 0; ow < W; ow++) {
        column_taps[ow] = 0;
        for (Py_ssize_t kj = 0; kj < K; kj++)
            if (ow - P + kj >= 0 && ow - P + kj < W) column_taps[ow] |= kernel_column << kj;
    }
    for (Py_ssize_t oh = 0, p = 0; oh < H; oh++) {
        uint64_t row_taps = 0;
        for (Py_ssize_t ki = 0; ki < K; ki++)
            if (oh - P + ki >= 0 && oh - P + ki < H) row_taps |= kernel_row << (ki * K);
        for (Py_ssize_t ow = 0; ow < W; ow++, p++)
            if (pixel_base[p] != (oh - P) * W + ow - P ||
                pixel_taps[p] != (row_taps & column_taps[ow]))
                return 0;
    }
    *width = W;
    return (int)K;
}

/* ---- AVX2 row tiles: NP (4-6) neighbouring pixels of one output row by NV (1 or 2)
 * vectors of 8 output channels (the packed block: 16 channels, or the last 8): up to 12
 * sums, the kernel row's 2 weight vectors and a broadcast pixel in the 16 ymm registers
 * (12 independent sums hide the fma's latency: 8 would not).  Each pixel broadcast serves
 * NV fma, each weight load NP; the outputs leave through an 8x8 transpose in registers,
 * as runs of the output row.  A row of W pixels: 4; on rows of 8, 3 + 3 + 2 pixels of 2
 * images a tile (4 + 4 for a last single image); else a first tile of 6, tiles of 6 and 5
 * inside (every tap inside the plane: one copy, its column at run time) and a last tile of
 * 5 (W = 16) or 6, the edge tiles' columns compile-time constants.  (The inner loops need
 * their registers: see the pointer laundering and the unroll pragmas below.) */

/* Output row oh's NP pixels from column q0 (EDGE_Q0 when that is >= 0: an edge tile, its
 * padding taps left out; -1: inside, every tap real) by NV vectors of the packed block at
 * w (K*K taps a channel, 8*NV lanes each), `rows` channels stored (bias16: their 16 biases,
 * zero-padded), of NI (1 or 2; 2 only with NP <= 4) images `image` apart, their outputs
 * `out_image` apart; K, W, EDGE_Q0, NP, NV and NI are compile-time constants. */
MP_CONV_AVX2 static inline __attribute__((always_inline)) void mp_direct_row_tile_f_avx2(
        const float *restrict w, const float *restrict x, Py_ssize_t channels, Py_ssize_t plane,
        Py_ssize_t image, Py_ssize_t H, Py_ssize_t oh, Py_ssize_t q0,
        const float *restrict bias16, Py_ssize_t rows, float *restrict out, Py_ssize_t out_image,
        Py_ssize_t out_channel, const int K, const int W, const int EDGE_Q0, const int NP,
        const int NV, const int NI) {
    const int P = K / 2;
    if (EDGE_Q0 >= 0) q0 = EDGE_Q0;
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int q = 0; q < NI * NP; q++)
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) acc[q][v] = _mm256_setzero_ps();
    /* the kernel rows inside the plane: 0 <= oh - P + ki < H */
    const Py_ssize_t ki_begin = oh < P ? P - oh : 0, ki_end = oh + P >= H ? H + P - oh : K;
    const float *xq = x + (oh - P) * W + q0 - P; /* + c*plane + ki*W + q + kj: point q's pixel */
    /* a kernel row's taps: its weights at wr, the pixels of point q's tap kj at xr[q + kj] */
#define MP_DIRECT_ROW_TAPS(wr, xr)                                                             \
    _Pragma("GCC unroll 8") for (int kj = 0; kj < K; kj++) {                                   \
        const __m256 w0 = _mm256_loadu_ps((wr) + kj * 8 * NV),                                  \
                     w1 = NV == 2 ? _mm256_loadu_ps((wr) + kj * 16 + 8) : w0;                   \
        /* tap kj's pixels through a pointer gcc cannot see through: else it keeps each      \
         * pixel for its K taps, more than the 16 registers hold (sums spilled) */           \
        const float *xk = (xr) + kj;                                                           \
        __asm__("" : "+r"(xk));                                                                \
        /* point q (column q0 + q) has tap kj when 0 <= q0 + q - P + kj < W */               \
        const int q_begin = EDGE_Q0 >= 0 && P - kj - EDGE_Q0 > 0 ? P - kj - EDGE_Q0 : 0;       \
        const int q_end = EDGE_Q0 >= 0 && W + P - kj - EDGE_Q0 < NP ? W + P - kj - EDGE_Q0 : NP; \
        _Pragma("GCC unroll 2") for (int i = 0; i < NI; i++)                                   \
        _Pragma("GCC unroll 8") for (int q = q_begin; q < q_end; q++) {                        \
            const __m256 xs = _mm256_broadcast_ss(xk + i * image + q);                         \
            acc[i * NP + q][0] = _mm256_fmadd_ps(w0, xs, acc[i * NP + q][0]);                  \
            if (NV == 2) acc[i * NP + q][1] = _mm256_fmadd_ps(w1, xs, acc[i * NP + q][1]);     \
        }                                                                                      \
    }
    if (ki_begin == 0 && ki_end == K) { /* every kernel row inside: a channel's taps unrolled */
        for (Py_ssize_t c = 0; c < channels; c++) {
            const float *wc = w + c * K * K * 8 * NV, *xc = xq + c * plane;
#pragma GCC unroll 8
            for (int ki = 0; ki < K; ki++) MP_DIRECT_ROW_TAPS(wc + ki * K * 8 * NV, xc + ki * W)
        }
    } else
        for (Py_ssize_t c = 0; c < channels; c++) {
            const float *wc = w + c * K * K * 8 * NV, *xc = xq + c * plane;
            for (Py_ssize_t ki = ki_begin; ki < ki_end; ki++)
                MP_DIRECT_ROW_TAPS(wc + ki * K * 8 * NV, xc + ki * W)
        }
#undef MP_DIRECT_ROW_TAPS
    float *o = out + oh * W + q0;
    /* unrolled (the sums in registers need constant indices) */
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) {
        const __m256 b = _mm256_loadu_ps(bias16 + 8 * v);
        __m256 r[8], s[8];
        /* 1 image: point q in r[q]; 2: image i's point q in r[4i + q] (NP <= 4), so a
         * channel's points 0-3 and 4-7 after the transpose are the two images' */
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) {
            const int i = NI == 1 ? 0 : p / 4, q = NI == 1 ? p : p % 4;
            r[p] = q < NP && i < NI ? _mm256_add_ps(acc[i * NP + q][v], b) : _mm256_setzero_ps();
        }
        mp_transpose8_halves_ps(r, s);
        const Py_ssize_t stored = rows - 8 * v; /* channels of this vector stored */
#define MP_DIRECT_ROW_STORE(k)                                                                 \
    do {                                                                                       \
        float *ok = o + (8 * v + (k)) * out_channel;                                           \
        if (NI == 1) mp_direct_store_channel(ok, s, k, NP);                                    \
        else {                                                                                 \
            mp_direct_store_first(ok, (k) < 4 ? _mm256_castps256_ps128(s[k])                   \
                                              : _mm256_extractf128_ps(s[(k) - 4], 1), NP);     \
            mp_direct_store_first(ok + out_image, (k) < 4 ? _mm256_castps256_ps128(s[(k) + 4]) \
                                                          : _mm256_extractf128_ps(s[k], 1), NP); \
        }                                                                                      \
    } while (0)
        if (stored >= 8) {
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) MP_DIRECT_ROW_STORE(k);
        } else
            for (int k = 0; k < stored; k++) MP_DIRECT_ROW_STORE(k);
#undef MP_DIRECT_ROW_STORE
    }
}

#define MP_DIRECT_ROW_TILE_AVX2(K, W, EDGE_Q0, NP, NV, q0)                                     \
    mp_direct_row_tile_f_avx2(wk, xi, channels, channel_stride, image, H, oh, q0, bias16, rows, \
                              oi, out_image, out_channel, K, W, EDGE_Q0, NP, NV, TILE_IMAGES)
/* One output row: its first tile, the inside ones (W - 6 - LAST = 6*n6 + 5*n5), its last */
#define MP_DIRECT_ROW_AVX2(K, W, NV, NI)                                                       \
    do {                                                                                       \
        enum { TILE_IMAGES = NI };                                                             \
        if (W == 8 && NI == 2) { /* 2 images by 3 pixels (12 sums), then by 2 */              \
            MP_DIRECT_ROW_TILE_AVX2(K, W, 0, 3, NV, 0);                                        \
            MP_DIRECT_ROW_TILE_AVX2(K, W, -1, 3, NV, 3);                                       \
            MP_DIRECT_ROW_TILE_AVX2(K, W, 6, 2, NV, 0);                                        \
            break;                                                                             \
        }                                                                                      \
        if (W <= 8) {                                                                          \
            MP_DIRECT_ROW_TILE_AVX2(K, W, 0, 4, NV, 0);                                        \
            if (W == 8) MP_DIRECT_ROW_TILE_AVX2(K, W, 4, 4, NV, 4);                            \
            break;                                                                             \
        }                                                                                      \
        enum { LAST = W == 16 ? 5 : 6, INSIDE = W - 6 - LAST, N5 = (6 - INSIDE % 6) % 6,      \
               N6 = (INSIDE - 5 * N5) / 6 };                                                   \
        MP_DIRECT_ROW_TILE_AVX2(K, W, 0, 6, NV, 0);                                            \
        Py_ssize_t q0 = 6;                                                                     \
        for (int t = 0; t < N6; t++, q0 += 6) MP_DIRECT_ROW_TILE_AVX2(K, W, -1, 6, NV, q0);    \
        for (int t = 0; t < N5; t++, q0 += 5) MP_DIRECT_ROW_TILE_AVX2(K, W, -1, 5, NV, q0);    \
        MP_DIRECT_ROW_TILE_AVX2(K, W, W - LAST, LAST, NV, 0);                                  \
    } while (0)
/* Every row of `count` images, block by block of output channels (16, or the last 8). */
#define MP_DIRECT_ROWS_AVX2(K, W)                                                              \
    MP_CONV_AVX2 static void mp_direct_rows_f_avx2_##K##x##W(MP_DIRECT_STRIDED_PARAMS(float),  \
                                                            Py_ssize_t H) {                    \
        const Py_ssize_t KK = channels * K * K;                                                \
        (void)tap_offset, (void)pixel_base, (void)pixel_step, (void)pixel_taps;               \
        (void)pixel_order, (void)L, (void)out_pixel;                                           \
        for (Py_ssize_t o0 = 0, wd; o0 < O; o0 += wd) {                                        \
            wd = mp_direct_block_width(O, o0, sizeof(float));                                  \
            const Py_ssize_t rows = O - o0 < wd ? O - o0 : wd;                                 \
            float bias16[16] = {0};                                                            \
            if (bias) memcpy(bias16, bias + o0, rows * sizeof(float));                         \
            const float *wk = w + o0 * KK;                                                     \
            /* rows of 8: two images a tile, the last one alone */                          \
            for (Py_ssize_t i = 0, ni; i < count; i += ni) {                                   \
                ni = W == 8 && count - i >= 2 ? 2 : 1;                                         \
                const float *xi = x + i * image;                                               \
                float *oi = out + i * out_image + o0 * out_channel;                            \
                for (Py_ssize_t oh = 0; oh < H; oh++) {                                        \
                    if (ni == 2 && wd == 16) MP_DIRECT_ROW_AVX2(K, W, 2, 2);                   \
                    else if (ni == 2) MP_DIRECT_ROW_AVX2(K, W, 1, 2);                          \
                    else if (wd == 16) MP_DIRECT_ROW_AVX2(K, W, 2, 1);                         \
                    else MP_DIRECT_ROW_AVX2(K, W, 1, 1);                                       \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }
MP_DIRECT_ROWS_EACH(MP_DIRECT_ROWS_AVX2)

/* The AVX2 row tiles' mode (mp_use_direct_rows_avx2): 0 never, 1 where they measured
 * faster (mp_direct_rows_avx2_wins), 2 on every row-tile shape (tests). */
static int mp_direct_rows_avx2_mode = 1;
/* Where the AVX2 row tiles (mode 1) measured faster than the engine picked before them, a
 * KxK layer with `channels` input and O output channels per group on rows of W pixels
 * (AVX2 (Zen 2), A/B in one process, 1 thread, CPU time, batch 64, min of 11-15
 * interleaved, against the pixel-group tiles or conv2d_tiles.h where those ran): 5x5 with
 * 9+ output channels on 16x16 planes with 4+ input channels (4->16 1.11x, 8->16 1.06x,
 * 16->32 1.07x, 32->32 1.03x) and 32x32 with 8+ (8->16 1.04x, 16->16 1.11x, 16->32 1.10x,
 * 32->32 1.11x).  Not: 4->16 on 32x32 0.94x, 64x64 planes 0.62x (each channel's plane a
 * multiple of 4 KiB apart: the tile's rows share L1 sets), 8x8 planes 0.92-0.96x (2 images
 * by 3 pixels a tile; the pixel-group tiles fill 6 points of equal taps across images),
 * 3x3: 0.74-1.04x (16x16 0.98-1.04x, 32x32 0.87-0.93x: 9 taps a channel, the tile's fixed
 * costs weigh more). */
static inline int mp_direct_rows_avx2_wins(int K, Py_ssize_t W, Py_ssize_t channels,
                                           Py_ssize_t O) {
    return mp_direct_rows_avx2_mode == 2 ||
           (mp_direct_rows_avx2_mode == 1 && K == 5 && O > 8 &&
            ((W == 16 && channels >= 4) || (W == 32 && channels >= 8)));
}

/* The AVX2 row tiles for a call of their shape where they win; returns whether they ran. */
MP_CONV_AVX2 static int mp_direct_rows_f_avx2(MP_DIRECT_STRIDED_PARAMS(float)) {
    Py_ssize_t W = 0;
    const int K = mp_direct_rows_shape(MP_DIRECT_STRIDED_ARGS, &W);
    if (!K || !mp_direct_rows_avx2_wins(K, W, channels, O)) return 0;
    MP_DIRECT_ROWS_OF(mp_direct_rows_f_avx2, K, W)(MP_DIRECT_STRIDED_ARGS, L / W);
    return 1;
}
#endif
