/* The direct kernel's float32 tiles on AVX-512 registers (conv2d_direct.h, included
 * from there inside its x86 block), and its row tiles (below: "row tiles").  The tiles:
 * the same packed weight, pixel groups and sums, only wider registers.  A zmm holds one packed block of 16 output channels; a
 * tile is NV such blocks (2 neighbouring ones: 32 channels, the second block 16*K
 * further on; or 1) by up to 8 points (16 sums and 2 weights of the 32 zmm
 * registers; each broadcast pixel serves 2 fma, each weight load 8).  (One block by 12 points, each
 * pixel folded into its fma as {1to16}, measured 0.82-0.90x AVX2 on 3x3 layers.)
 *
 * The bits: every lane is still one output channel, one running sum from +0 over
 * its real products in (c, ki, kj) order, each step one fma, then one add of the
 * bias (0 without one), as the AVX2 and the baseline builds: only how many lanes
 * and points share an instruction changes.  Blocks of 8 channels (the last few)
 * keep the AVX2 tile. */
#ifndef MINIPOOL_CONV2D_DIRECT_AVX512_H
#define MINIPOOL_CONV2D_DIRECT_AVX512_H

#define MP_CONV_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define MP_DIRECT_AVX512_PIXELS 12 /* points per tile at most */
/* points per tile taken: 8 (16 sums); 12 measured no faster (their 12 pixel pointers
 * do not fit the 16 general registers: gcc keeps some on the stack) */
#define MP_DIRECT_AVX512_STEP 8

/* 1 when the CPU runs AVX-512F and VL (the OS saving the zmm state included:
 * __builtin_cpu_supports checks it) */
static inline int mp_direct_cpu_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
}

/* NV blocks of 16 channels (block v at w + v*block_stride, `rows` channels stored in
 * all) by NP points; the arguments otherwise as MP_DIRECT_TILE's. */
MP_CONV_AVX512 static inline __attribute__((always_inline)) void mp_direct_tile_f_avx512(
        const float *restrict w, Py_ssize_t block_stride, const float *restrict x,
        Py_ssize_t channels, Py_ssize_t plane, Py_ssize_t taps, const Py_ssize_t *restrict tap,
        Py_ssize_t valid, const Py_ssize_t *at, const Py_ssize_t *put, Py_ssize_t count,
        const float *restrict bias, float *restrict out, Py_ssize_t out_channel,
        Py_ssize_t rows, const int NV, const int NP) {
    __m512 acc[MP_DIRECT_AVX512_PIXELS][2];
    const float *point[MP_DIRECT_AVX512_PIXELS];
    for (int p = 0; p < NP; p++) {
        point[p] = x + at[p < count ? p : 0];
        for (int v = 0; v < NV; v++) acc[p][v] = _mm512_setzero_ps();
    }
    for (Py_ssize_t c = 0; c < channels; c++) {
        const float *wc = w + c * taps * 16;
        const Py_ssize_t xc = c * plane;
        for (Py_ssize_t j = 0; j < valid; j++) {
            const float *wt = wc + tap[2 * j + 1];
            __m512 wv[2];
            for (int v = 0; v < NV; v++) wv[v] = _mm512_loadu_ps(wt + v * block_stride);
            const Py_ssize_t xt = xc + tap[2 * j];
            for (int p = 0; p < NP; p++) {
                const __m512 xs = _mm512_set1_ps(point[p][xt]);
                for (int v = 0; v < NV; v++) acc[p][v] = _mm512_fmadd_ps(wv[v], xs, acc[p][v]);
            }
        }
    }
    if (out_channel == 1 && rows == 16 * NV) { /* channels last: whole vectors out */
        for (int v = 0; v < NV; v++) {
            const __m512 b = bias ? _mm512_loadu_ps(bias + 16 * v) : _mm512_setzero_ps();
            for (int p = 0; p < NP && p < count; p++)
                _mm512_storeu_ps(out + put[p] + 16 * v, _mm512_add_ps(acc[p][v], b));
        }
        return;
    }
    float sums[MP_DIRECT_AVX512_PIXELS][32];
    for (int p = 0; p < NP; p++)
        for (int v = 0; v < NV; v++) _mm512_storeu_ps(&sums[p][16 * v], acc[p][v]);
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float b = bias ? bias[r] : 0;
        for (Py_ssize_t p = 0; p < count; p++) out[put[p] + r * out_channel] = sums[p][r] + b;
    }
}

/* One tile of n points (n <= 12) with the fewest points computed for nothing. */
#define MP_DIRECT_AVX512_TILE(NV, ...)                                   \
    do {                                                                 \
        if (n > 8) mp_direct_tile_f_avx512(__VA_ARGS__, NV, 12);         \
        else if (n > 6) mp_direct_tile_f_avx512(__VA_ARGS__, NV, 8);     \
        else if (n > 4) mp_direct_tile_f_avx512(__VA_ARGS__, NV, 6);     \
        else mp_direct_tile_f_avx512(__VA_ARGS__, NV, 4);                \
    } while (0)

/* MP_DIRECT_IMAGES's loops with tiles of up to 12 points on 32 channels (two packed
 * blocks of 16), 16 (one) or 8 (the last block: the AVX2 tile). */
MP_CONV_AVX512 static void mp_direct_strided_f_avx512_tiles(MP_DIRECT_STRIDED_PARAMS(float)) {
    Py_ssize_t K = channels * taps, tap[2 * MP_DIRECT_MAX_TAPS];
    Py_ssize_t at[MP_DIRECT_AVX512_PIXELS], put[MP_DIRECT_AVX512_PIXELS];
    /* NCHW outputs of a few pixels through a scratch of whole vectors, as the AVX2 loops */
    float scratch[MP_DIRECT_SCRATCH_BYTES / sizeof(float)];
    const int via_scratch = out_pixel == 1 && count * L * 32 * (Py_ssize_t)sizeof(float) <=
                                                  MP_DIRECT_SCRATCH_BYTES;
    float *const out_nchw = out;
    const float *const bias_nchw = bias;
    const Py_ssize_t out_image_nchw = out_image, out_channel_nchw = out_channel;
    if (via_scratch) bias = NULL, out = scratch;
    for (Py_ssize_t o0 = 0, step; o0 < O; o0 += step) {
        const Py_ssize_t wd = mp_direct_block_width(O, o0, sizeof(float)), left = O - o0;
        const int pair = wd == 16 && left > 24; /* the next block is one of 16 too */
        step = pair ? 32 : wd;
        const float *wk = w + o0 * K;
        const float *bk = bias ? bias + o0 : NULL;
        Py_ssize_t rows = left < step ? left : step;
        if (via_scratch) out_image = L * step, out_pixel = step, out_channel = 1, rows = step;
        for (Py_ssize_t g0 = 0, g1; g0 < L; g0 = g1) {
            const uint64_t mask = pixel_taps[pixel_order[g0]];
            for (g1 = g0 + 1; g1 < L && pixel_taps[pixel_order[g1]] == mask; g1++) {}
            Py_ssize_t valid = 0, pixels = g1 - g0;
            for (Py_ssize_t t = 0; t < taps; t++)
                if ((mask >> t) & 1) {
                    tap[2 * valid] = tap_offset[t];
                    tap[2 * valid++ + 1] = t * wd;
                }
            for (Py_ssize_t q0 = 0, i = 0, k = 0; q0 < pixels * count; q0 += MP_DIRECT_AVX512_STEP) {
                Py_ssize_t n = pixels * count - q0;
                if (n > MP_DIRECT_AVX512_STEP) n = MP_DIRECT_AVX512_STEP;
                for (Py_ssize_t q = 0; q < n; q++) {
                    Py_ssize_t pixel = pixel_order[g0 + k];
                    at[q] = i * image + pixel_base[pixel] * pixel_step;
                    put[q] = i * out_image + pixel * out_pixel + (via_scratch ? 0 : o0 * out_channel);
                    if (++k == pixels) k = 0, i++;
                }
                if (pair)
                    MP_DIRECT_AVX512_TILE(2, wk, 16 * K, x, channels, channel_stride, taps, tap,
                                          valid, at, put, n, bk, out, out_channel, rows);
                else if (wd == 16)
                    MP_DIRECT_AVX512_TILE(1, wk, 16 * K, x, channels, channel_stride, taps, tap,
                                          valid, at, put, n, bk, out, out_channel, rows);
                else /* the last block of 8: the AVX2 tile, 12 points at most */
                    mp_direct_tile_f_avx2(wk, x, channels, channel_stride, taps, tap, valid, at,
                                          put, n, bk, out, out_channel, rows, 0, 1, 12, 0);
            }
        }
        if (via_scratch)
            mp_direct_scratch_out(scratch, step, count, L, left < step ? left : step,
                                  bias_nchw ? bias_nchw + o0 : NULL,
                                  out_nchw + o0 * out_channel_nchw, out_image_nchw,
                                  out_channel_nchw);
    }
}
/* Where the AVX-512 tiles measured faster than AVX2's, again and again (A/B in one
 * process, 1 thread, CPU time, batch 64, min of 9-21 interleaved rounds, repeated): 3x3
 * and 5x5 with 32+ output channels on outputs of up to 16 pixels (5x5 64->64 and 256->256
 * on 4x4: 1.11-1.26x; every pixel there is its own group of 6 points, 9-25 taps: 32
 * channels per broadcast halve the pixel loads, and each weight line serves 8 points, not
 * 6: the weight does not stay in L1 and comes from L2).  3x3 on 4x4 measured 0.97-1.06x
 * while the AVX2 loops alone stored through the scratch; with the scratch here too, 1.00-
 * 1.08x (32->32 1.01-1.02x, 64->64 1.00x, 64->128 1.00-1.08x, 128->128 1.04-1.06x,
 * 128->256 1.01-1.05x, 256->256 1.03-1.04x).  Elsewhere no robust gain, so AVX2 stays:
 * 5x5 on 8x8 0.94-0.98x, 3x3 on 8x8 0.97-1.02x, 16x16 0.95-1.01x, one block of 16
 * channels (by 8-12 points) 0.82-0.98x, LeNet's conv2 0.93x.  Zen 4 runs a zmm fma as
 * two halves: the same peak as AVX2's. */
static int mp_direct_avx512_mode = 1; /* 2: every shape (tests); see mp_use_direct_avx512 */
static inline int mp_direct_avx512_wins(Py_ssize_t O, Py_ssize_t taps, Py_ssize_t L) {
    return mp_direct_avx512_mode == 2 || (O >= 32 && taps >= 9 && L <= 16);
}

/* ---- row tiles: a whole output row of W = 4, 8 or 16 pixels of 16/W images (rows of
 * 32 or 64 pixels: 2 or 4 tiles of 16) by 16 channels, for a stride-1 KxK convolution
 * padded by K/2 (3x3 and 5x5: the output plane the input's).  A tile's points share
 * their kernel rows (ki: the output row's), and which kernel columns (kj) each point has
 * is known at compile time from K, W and the tile's first column: a kernel row's taps
 * are unrolled, a point's pixel is an immediate offset from one index shared by the
 * tile, each pixel of an input row is broadcast once for the up to K fma that use it,
 * and a point's padding taps are never issued.  16 sums per weight load, no pointer per
 * point; the outputs leave as rows (a 16x16 transpose in registers), no scratch.  Each
 * output is still one running sum over its real products in (c, ki, kj) order, then the
 * bias: the bits of the pixel-group tiles.  (Measured 93-97% of the FMA peak on 5x5
 * 16->32 on 16x16, 32->64 on 8x8 and 64->64 on 4x4, against 79-86% there before.)  Which
 * calls are their shape: conv2d_direct_rows.h (shared with the AVX2 row tiles). */

/* 16 vectors (point p: its 16 channels) transposed in place (channel r: its 16 points) */
MP_CONV_AVX512 static inline __attribute__((always_inline)) void mp_direct_transpose16(
        __m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* r[4g + e], 128-bit lane l: points 4g..4g+3, channel 4l + e */
    for (int i = 0; i < 16; i += 4) {
        r[i] = (__m512)_mm512_unpacklo_pd((__m512d)t[i], (__m512d)t[i + 2]);
        r[i + 1] = (__m512)_mm512_unpackhi_pd((__m512d)t[i], (__m512d)t[i + 2]);
        r[i + 2] = (__m512)_mm512_unpacklo_pd((__m512d)t[i + 1], (__m512d)t[i + 3]);
        r[i + 3] = (__m512)_mm512_unpackhi_pd((__m512d)t[i + 1], (__m512d)t[i + 3]);
    }
    for (int e = 0; e < 4; e++) { /* the four 128-bit lanes of r[e], r[4+e], r[8+e], r[12+e] */
        __m512 ab_lo = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x44);
        __m512 ab_hi = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xEE);
        __m512 cd_lo = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x44);
        __m512 cd_hi = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xEE);
        t[e] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0x88);
        t[4 + e] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0xDD);
        t[8 + e] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0x88);
        t[12 + e] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* Output row oh of NI images (image i at x + i*image, its outputs at out + i*out_image),
 * its RL = min(W, 16) pixels from column Q0, by one packed block of 16 channels at w
 * (`rows` of them stored); K, W, NI <= 16/RL and Q0 are compile-time constants (the
 * caller's always-inline copies). */
MP_CONV_AVX512 static inline __attribute__((always_inline)) void mp_direct_row_tile_f(
        const float *restrict w, const float *restrict x, Py_ssize_t image, Py_ssize_t channels,
        Py_ssize_t plane, Py_ssize_t H, Py_ssize_t oh, const float *restrict bias,
        Py_ssize_t rows, float *restrict out, Py_ssize_t out_image, Py_ssize_t out_channel,
        const int K, const int W, const int NI, const int Q0) {
    const int P = K / 2, RL = W < 16 ? W : 16;
    __m512 acc[16];
    for (int p = 0; p < 16; p++) acc[p] = _mm512_setzero_ps();
    const float *in[16];
    for (int i = 0; i < NI; i++) in[i] = x + i * image;
    /* the kernel rows inside the plane: 0 <= oh - P + ki < H */
    const Py_ssize_t ki_begin = oh < P ? P - oh : 0, ki_end = oh + P >= H ? H + P - oh : K;
    for (Py_ssize_t c = 0; c < channels; c++) {
        const float *wc = w + c * K * K * 16;
        for (Py_ssize_t ki = ki_begin; ki < ki_end; ki++) {
            const float *wr = wc + ki * K * 16;
            const Py_ssize_t row = c * plane + (oh - P + ki) * W - P; /* + q + kj: point q's pixel */
            /* unrolled whole (gcc keeps the sums in registers only then) */
#pragma GCC unroll 8
            for (int kj = 0; kj < K; kj++) {
                const __m512 wv = _mm512_loadu_ps(wr + kj * 16);
                /* point q (column Q0 + q) has tap kj when 0 <= Q0 + q - P + kj < W */
                const int q_begin = P - kj - Q0 > 0 ? P - kj - Q0 : 0,
                          q_end = W + P - kj - Q0 < RL ? W + P - kj - Q0 : RL;
#pragma GCC unroll 16
                for (int i = 0; i < NI; i++)
#pragma GCC unroll 16
                    for (int q = q_begin; q < q_end; q++)
                        acc[i * RL + q] = _mm512_fmadd_ps(
                            wv, _mm512_set1_ps(in[i][row + Q0 + q + kj]), acc[i * RL + q]);
            }
        }
    }
    const __m512 b = bias ? _mm512_maskz_loadu_ps((__mmask16)((1u << rows) - 1), bias)
                          : _mm512_setzero_ps();
    for (int p = 0; p < 16; p++) acc[p] = _mm512_add_ps(acc[p], b);
    mp_direct_transpose16(acc); /* acc[r]: channel r, lanes i*RL + q */
    for (Py_ssize_t r = 0; r < rows; r++) {
        float *o = out + r * out_channel + oh * W + Q0;
        for (int i = 0; i < NI; i++) {
            if (RL == 16) _mm512_storeu_ps(o, acc[r]);
            else if (W == 8)
                _mm256_storeu_ps(o + i * out_image,
                                 i ? _mm256_castpd_ps(_mm512_extractf64x4_pd((__m512d)acc[r], 1))
                                   : _mm512_castps512_ps256(acc[r]));
            else
                _mm_storeu_ps(o + i * out_image, i == 0   ? _mm512_castps512_ps128(acc[r])
                                                 : i == 1 ? _mm512_extractf32x4_ps(acc[r], 1)
                                                 : i == 2 ? _mm512_extractf32x4_ps(acc[r], 2)
                                                          : _mm512_extractf32x4_ps(acc[r], 3));
        }
    }
}

/* Every row of `count` images, block by block of 16 channels (16/W images a tile, or
 * W/16 tiles a row); a last block of 8 on the AVX2 loops. */
#define MP_DIRECT_ROWS(K, W)                                                                   \
    MP_CONV_AVX512 static void mp_direct_rows_f_avx512_##K##x##W(                             \
            MP_DIRECT_STRIDED_PARAMS(float), Py_ssize_t H) {                                   \
        const Py_ssize_t KK = channels * K * K, TILE_IMAGES = W < 16 ? 16 / W : 1;            \
        for (Py_ssize_t o0 = 0, wd; o0 < O; o0 += wd) {                                        \
            wd = mp_direct_block_width(O, o0, sizeof(float));                                  \
            if (wd != 16) { /* the last block of 8 */                                        \
                mp_direct_strided_f_avx2(w + o0 * KK, O - o0, x, count, channels, image,      \
                                         channel_stride, tap_offset, taps, pixel_base,         \
                                         pixel_step, pixel_taps, pixel_order, L,               \
                                         bias ? bias + o0 : NULL, out + o0 * out_channel,      \
                                         out_image, out_pixel, out_channel);                   \
                break;                                                                         \
            }                                                                                  \
            const Py_ssize_t rows = O - o0 < 16 ? O - o0 : 16;                                 \
            const float *wk = w + o0 * KK, *bk = bias ? bias + o0 : NULL;                      \
            float *ok = out + o0 * out_channel;                                                \
            for (Py_ssize_t i = 0; i < count; i += TILE_IMAGES)                                \
                for (Py_ssize_t oh = 0; oh < H; oh++) {                                        \
                    const float *xi = x + i * image;                                           \
                    float *oi = ok + i * out_image;                                            \
                    switch (count - i < TILE_IMAGES ? count - i : TILE_IMAGES) {               \
                    case 1: MP_DIRECT_ROW_TILES(K, W, 1); break;                               \
                    case 2: MP_DIRECT_ROW_TILES(K, W, 2 < TILE_IMAGES ? 2 : TILE_IMAGES); break; \
                    case 3: MP_DIRECT_ROW_TILES(K, W, 3 < TILE_IMAGES ? 3 : TILE_IMAGES); break; \
                    default: MP_DIRECT_ROW_TILES(K, W, TILE_IMAGES);                           \
                    }                                                                          \
                }                                                                              \
        }                                                                                      \
    }
/* a row's tiles (rows of 32 or 64 pixels: 2 or 4 of 16) */
#define MP_DIRECT_ROW_TILE(K, W, NI, Q0)                                                       \
    mp_direct_row_tile_f(wk, xi, image, channels, channel_stride, H, oh, bk, rows, oi,        \
                         out_image, out_channel, K, W, NI, Q0)
#define MP_DIRECT_ROW_TILES(K, W, NI)                                                          \
    do {                                                                                       \
        MP_DIRECT_ROW_TILE(K, W, NI, 0);                                                       \
        if (W >= 32) MP_DIRECT_ROW_TILE(K, W, NI, 16);                                         \
        if (W == 64) MP_DIRECT_ROW_TILE(K, W, NI, 32), MP_DIRECT_ROW_TILE(K, W, NI, 48);       \
    } while (0)
MP_DIRECT_ROWS_EACH(MP_DIRECT_ROWS)

/* The row tiles for a call of their shape (conv2d_direct_rows.h); returns whether they ran. */
MP_CONV_AVX2 static int mp_direct_rows_f_avx512(MP_DIRECT_STRIDED_PARAMS(float)) {
    Py_ssize_t W = 0;
    const int K = mp_direct_rows_shape(MP_DIRECT_STRIDED_ARGS, &W);
    if (!K) return 0;
    MP_DIRECT_ROWS_OF(mp_direct_rows_f_avx512, K, W)(MP_DIRECT_STRIDED_ARGS, L / W);
    return 1;
}

/* mp_direct_strided_f's AVX-512 build: the row tiles where the call is their shape (in
 * modes 1 and 2: faster on every shape measured, 1.08-1.19x the tiles below or AVX2's),
 * else its tiles where mp_direct_avx512_wins, AVX2's elsewhere.  Itself an AVX2 function: the AVX2 kernel inlined into an AVX-512 one
 * would be compiled anew for AVX-512 (not what was measured). */
MP_CONV_AVX2 static void mp_direct_strided_f_avx512(MP_DIRECT_STRIDED_PARAMS(float)) {
    if (mp_direct_rows_f_avx512(MP_DIRECT_STRIDED_ARGS)) return;
    (mp_direct_avx512_wins(O, taps, L) ? mp_direct_strided_f_avx512_tiles
                                       : mp_direct_strided_f_avx2)(MP_DIRECT_STRIDED_ARGS);
}
#endif
