/* conv2d's direct forward (see conv2d.pyx, "direct"): output channels in the
 * vector lanes, a few output pixels in registers, each input pixel broadcast
 * straight from the image: no padded planes, no column block, and the taps
 * that fall in the padding are skipped, not multiplied by zero.  For small
 * planes (3x3 padded on 4x4: 31% of the taps are padding) and rows that do
 * not fill whole pixel vectors (LeNet's 10-pixel rows).
 *
 *   out[o][p] = bias[o] + sum over c < channels, then t < taps with bit t of
 *               pixel_taps[p] set, in that order, of
 *               w[o][c][t] * x[c*plane + pixel_base[p] + tap_offset[t]]
 *
 * Each output is ONE running sum from 0 over its real products in (c, ki, kj)
 * order, each step a fused multiply-add, then one add of the bias: the same
 * sum conv2d_tiles.h takes, less the products with a padding zero.  Those add
 * exactly nothing there (fma(0, w, s) = s for a finite w: s starts at +0 and
 * a sum of +0 and -0 is +0, so s is never -0), so for a finite weight the two
 * give the same bits; the caller keeps a weight with inf or NaN off this path
 * (0 * inf is NaN: the padding must meet it).  A lane is one output channel
 * on its own, so the bits depend on the shape alone (not on the tile, the
 * build or the thread count).
 *
 * The weight is packed by the caller in blocks of output channels
 * (mp_direct_block_width: 2 AVX vectors, or 1 for the last few channels),
 * the block starting at channel o0 at o0*K as (K, width), lanes past the last
 * channel zero (computed, not stored).  pixel_base / pixel_taps / pixel_order
 * come from mp_direct_pixels, once per shape.
 *
 * Each tile's points share their taps (a group of pixels with the same taps
 * inside the plane, in one image or across the images of a call: a 4x4 plane's
 * corner pixels of 6 images make one tile), so the loop over taps has no branch
 * and each weight load serves every point.  In the AVX2 float32 build a full tile
 * of 6 points by 16 channels whose group's taps come in runs of 5+ (a 5x5 kernel's
 * rows inside the plane: mp_direct_tap_runs) steps one pointer per tap instead of
 * reading the tap table (2 loads and 3 adds per 12 fma fewer: 32->64 5x5 on 8x8
 * 1.04x, 64->64 and 128->128 1.05x, LeNet's conv2 1.10x; the same order, so the
 * same bits).  The outputs leave a tile
 * transposed: NCHW outputs of up to 64 pixels through a scratch of whole vectors
 * and one pass per block of channels (MP_DIRECT_SCRATCH_OUT); larger ones by
 * scalar stores (6 points on one run of an output row: two 8x8 transposes in
 * registers, see mp_direct_store_run_f_avx2): that is why first layers, with
 * 9-75 products per output, stay on the tiles.  On CPUs with AVX-512
 * (conv2d_direct_avx512.h) the float32 tile of 32 channels for 3x3 and 5x5 on 4x4
 * planes, and the row tiles: stride-1 3x3 and 5x5 "same" layers on rows of 4-64
 * pixels, a whole output row per tile, the padding taps left out at compile time.
 *
 * Needs Python.h (Py_ssize_t), included before this file by Cython's C. */
#ifndef MINIPOOL_CONV2D_DIRECT_H
#define MINIPOOL_CONV2D_DIRECT_H
#include "conv2d_tiles.h" /* the vector types, the fma and the CPU choice it shares */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The widest block: 2 AVX vectors (16 floats, 8 doubles); the baseline build
 * holds the same block in 4 SSE vectors. */
#define MP_DIRECT_MAX_VECTORS 4
#define MP_DIRECT_MAX_TAPS 64 /* a pixel's valid taps are one 64-bit mask */
#define MP_DIRECT_PIXELS 12   /* points per tile at most (one vector of channels) */
/* pixel groups at most: (kh(kh+1)/2 + 1) row intervals times (kw(kw+1)/2 + 1) column
 * ones, largest for a 64x1 kernel (2081 x 2) */
#define MP_DIRECT_GROUPS 4162

/* Output channels per block at channel o0 of O: 2 32-byte vectors of T (by 6
 * points: 12 sums, 2 weights and a broadcast in the 16 AVX registers), or 1 (by
 * 12 points) for the last channels when they fit.  (3 vectors by 4 points need
 * all 16: gcc kept one sum in memory, 4x slower.) */
static inline Py_ssize_t mp_direct_block_width(Py_ssize_t O, Py_ssize_t o0, Py_ssize_t item) {
    Py_ssize_t lanes = 32 / item, left = O - o0;
    return left <= lanes ? lanes : 2 * lanes;
}

/* The packed weight's size for O channels (its blocks round O up). */
static inline Py_ssize_t mp_direct_packed_size(Py_ssize_t O, Py_ssize_t K, Py_ssize_t item) {
    Py_ssize_t lanes = 32 / item;
    return (O + lanes - 1) / lanes * lanes * K;
}

/* Output channels [o_begin, o_end) (block boundaries) of one group's packed weight
 * (mp_direct_packed_size elements) from its O rows of K = channels*taps: block by
 * block (mp_direct_block_width), the block at channel o0 at o0*K as (K, width),
 * k = c*taps + t, lanes past the last channel zero.  `channels_last`: a row holds
 * (t, c) instead (conv2d_channels_last.pyx's weight), packed in the same (c, t)
 * order.  Every element is written (no memset first), each k's lanes side by side:
 * the writes run contiguously and the rows are read as `width` sequential streams
 * (the transposed order, a store per cache line, took 5% of a 128->256 layer's
 * forward on 4x4 planes).  The caller splits the channels into ranges over threads. */
#define MP_DIRECT_PACK(T, NAME, PACK_FULL)                                                     \
    static void NAME(const T *restrict weight, T *restrict packed, Py_ssize_t O,              \
                     Py_ssize_t o_begin, Py_ssize_t o_end, Py_ssize_t channels,               \
                     Py_ssize_t taps, int channels_last) {                                    \
        Py_ssize_t K = channels * taps;                                                        \
        for (Py_ssize_t o0 = o_begin, wd; o0 < o_end; o0 += wd) {                              \
            wd = mp_direct_block_width(O, o0, sizeof(T));                                      \
            Py_ssize_t rows = O - o0 < wd ? O - o0 : wd;                                       \
            const T *src = weight + o0 * K;                                                    \
            T *d = packed + o0 * K;                                                            \
            if (!channels_last && rows == wd && PACK_FULL(src, d, K, wd)) continue;            \
            for (Py_ssize_t c = 0; c < channels; c++)                                          \
                for (Py_ssize_t t = 0; t < taps; t++, d += wd) {                               \
                    const T *s = src + (channels_last ? t * channels + c : c * taps + t);      \
                    Py_ssize_t r = 0;                                                          \
                    for (; r < rows; r++) d[r] = s[r * K];                                     \
                    for (; r < wd; r++) d[r] = 0;                                              \
                }                                                                              \
        }                                                                                      \
    }
/* A full block of `wd` rows of K (not channels last) packed 4 k by 4 rows at a time: four
 * 16-byte loads, a 4x4 transpose in registers, four stores (the scalar copy, one load and
 * one store per element, was 2-3% of a 128->256 3x3 forward on 4x4 planes).  Returns 0
 * where it does not apply (the scalar loop packs the block then). */
#if MP_CONV_HAVE_X86_DISPATCH
static inline int mp_direct_pack_full_f(const float *restrict src, float *restrict d,
                                        Py_ssize_t K, Py_ssize_t wd) {
    Py_ssize_t k = 0;
    for (; k + 4 <= K; k += 4)
        for (Py_ssize_t r = 0; r < wd; r += 4) {
            __m128 a = _mm_loadu_ps(src + r * K + k), b = _mm_loadu_ps(src + (r + 1) * K + k);
            __m128 c = _mm_loadu_ps(src + (r + 2) * K + k), e = _mm_loadu_ps(src + (r + 3) * K + k);
            _MM_TRANSPOSE4_PS(a, b, c, e);
            _mm_storeu_ps(d + k * wd + r, a);
            _mm_storeu_ps(d + (k + 1) * wd + r, b);
            _mm_storeu_ps(d + (k + 2) * wd + r, c);
            _mm_storeu_ps(d + (k + 3) * wd + r, e);
        }
    for (; k < K; k++)
        for (Py_ssize_t r = 0; r < wd; r++) d[k * wd + r] = src[r * K + k];
    return 1;
}
#else
#define mp_direct_pack_full_f(src, d, K, wd) 0
#endif
#define mp_direct_pack_full_d(src, d, K, wd) 0
MP_DIRECT_PACK(float, mp_direct_pack_f, mp_direct_pack_full_f)
MP_DIRECT_PACK(double, mp_direct_pack_d, mp_direct_pack_full_d)
#define mp_direct_pack(w, ...) MP_FLOAT_OR_DOUBLE(w, mp_direct_pack_f, mp_direct_pack_d)(w, __VA_ARGS__)

/* Per output pixel p (row-major over Ho x Wo): where its window starts in the
 * unpadded (H, W) plane (may be outside it) and which of the kh*kw taps land
 * inside (bit ki*kw + kj); and pixel_order: the pixels grouped by that mask
 * (the groups in order of first appearance, each in row-major order). */
static void mp_direct_pixels(Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                             Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Ho, Py_ssize_t Wo,
                             Py_ssize_t *pixel_base, uint64_t *pixel_taps,
                             Py_ssize_t *pixel_order) {
    Py_ssize_t L = Ho * Wo, placed = 0;
    for (Py_ssize_t oh = 0; oh < Ho; oh++)
        for (Py_ssize_t ow = 0; ow < Wo; ow++) {
            Py_ssize_t h0 = oh * sh - ph, w0 = ow * sw - pw;
            uint64_t mask = 0;
            for (Py_ssize_t ki = 0; ki < kh; ki++)
                for (Py_ssize_t kj = 0; kj < kw; kj++) {
                    Py_ssize_t h = h0 + ki * dh, w = w0 + kj * dw;
                    if (h >= 0 && h < H && w >= 0 && w < W) mask |= (uint64_t)1 << (ki * kw + kj);
                }
            pixel_base[oh * Wo + ow] = h0 * W + w0;
            pixel_taps[oh * Wo + ow] = mask;
        }
    /* a pixel starts a group unless an earlier pixel has its mask: checked against the
     * groups found so far (a row's valid taps are an interval of ki, a column's of kj, so
     * there are at most MP_DIRECT_GROUPS: linear in L, not quadratic) */
    uint64_t seen[MP_DIRECT_GROUPS];
    Py_ssize_t groups = 0;
    for (Py_ssize_t p = 0, q; p < L; p++) {
        for (q = 0; q < groups && seen[q] != pixel_taps[p]; q++) {}
        if (q < groups) continue;
        if (groups == MP_DIRECT_GROUPS) { /* not reached (see above); stay correct anyway */
            for (q = 0; q < p && pixel_taps[q] != pixel_taps[p]; q++) {}
            if (q < p) continue;
        } else
            seen[groups++] = pixel_taps[p];
        for (q = p; q < L; q++)
            if (pixel_taps[q] == pixel_taps[p]) pixel_order[placed++] = q;
    }
}

/* One tile: NV vectors of output channels (the block at w, `rows` of them
 * stored) by NP points, each an output pixel of one image that have the same
 * taps inside the plane: point p reads x[at[p] + c*plane + tap[2j]] for its
 * j < valid taps (weight at c*taps*width + tap[2j + 1]: one table, one
 * register) and writes out[put[p] + r*out_channel]; only the first `count`
 * points are real (the others repeat point 0: computed, not stored). */
#define MP_DIRECT_TILE(T, V, NAME, MADD, STORE_RUN, ATTR)                                     \
    ATTR static inline __attribute__((always_inline)) void NAME(                              \
        const T *restrict w, const T *restrict x, Py_ssize_t channels, Py_ssize_t plane,      \
        Py_ssize_t taps, const Py_ssize_t *restrict tap, Py_ssize_t valid,                    \
        const Py_ssize_t *at,                                                                 \
        const Py_ssize_t *put, Py_ssize_t count, const T *restrict bias, T *restrict out,     \
        Py_ssize_t out_channel, Py_ssize_t rows, const int RUN, const int NV, const int NP,   \
        const int COLS) {                                                                     \
        enum { VL = sizeof(V) / sizeof(T) };                                                  \
        typedef V VU __attribute__((aligned(sizeof(T)), may_alias)); /* unaligned loads */   \
        V acc[MP_DIRECT_PIXELS][MP_DIRECT_MAX_VECTORS];                                       \
        /* each point's own base, one shared index: base + index addressing, no adds */     \
        const T *point[MP_DIRECT_PIXELS];                                                     \
        for (int p = 0; p < NP; p++) {                                                        \
            point[p] = x + at[p < count ? p : 0];                                             \
            for (int v = 0; v < NV; v++) acc[p][v] = (V){0};                                  \
        }                                                                                     \
        for (Py_ssize_t c = 0; c < channels; c++) {                                           \
            const T *wc = w + c * taps * (NV * VL);                                           \
            const Py_ssize_t xc = c * plane;                                                  \
            /* COLS > 0: `valid` runs of COLS taps, each tap's pixel and weight the next    \
             * after the one before (tap[2r], tap[2r + 1]: the run's first): the same order, \
             * no table load per tap (a loop, not unrolled: unrolled, gcc spilled sums) */   \
            if (COLS)                                                                         \
                for (Py_ssize_t r = 0; r < valid; r++) {                                      \
                    const T *wr = wc + tap[2 * r + 1];                                        \
                    Py_ssize_t xr = xc + tap[2 * r];                                          \
                    _Pragma("GCC unroll 1") for (int kj = 0; kj < COLS;                       \
                                                 kj++, wr += NV * VL, xr++) {                 \
                        V wv[MP_DIRECT_MAX_VECTORS];                                          \
                        for (int v = 0; v < NV; v++) wv[v] = ((const VU *)wr)[v];             \
                        for (int p = 0; p < NP; p++) {                                        \
                            const T xs = point[p][xr];                                        \
                            for (int v = 0; v < NV; v++)                                      \
                                acc[p][v] = MADD(wv[v], xs, acc[p][v]);                       \
                        }                                                                     \
                    }                                                                         \
                }                                                                             \
            else                                                                              \
            for (Py_ssize_t j = 0; j < valid; j++) {                                          \
                const VU *wt = (const VU *)(wc + tap[2 * j + 1]);                             \
                V wv[MP_DIRECT_MAX_VECTORS];                                                  \
                for (int v = 0; v < NV; v++) wv[v] = wt[v];                                   \
                const Py_ssize_t xt = xc + tap[2 * j];                                        \
                for (int p = 0; p < NP; p++) {                                                \
                    const T xs = point[p][xt];                                                \
                    for (int v = 0; v < NV; v++) acc[p][v] = MADD(wv[v], xs, acc[p][v]);      \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        if (out_channel == 1 && rows == NV * VL) { /* channels last: whole vectors out */     \
            V bv[MP_DIRECT_MAX_VECTORS];                                                      \
            for (int v = 0; v < NV; v++) {                                                    \
                bv[v] = (V){0};                                                               \
                if (bias) memcpy(&bv[v], bias + v * VL, sizeof(V));                           \
            }                                                                                 \
            for (int p = 0; p < NP && p < count; p++)                                         \
                for (int v = 0; v < NV; v++) {                                                \
                    V s = acc[p][v] + bv[v];                                                  \
                    memcpy(out + put[p] + v * VL, &s, sizeof(V));                             \
                }                                                                             \
            return;                                                                           \
        }                                                                                     \
        if (RUN && NP == 6 && NV * VL == 16) { /* the caller checked rows and count */      \
            V sum[2][6]; /* [vector][point] */                                               \
            for (int v = 0; v < 2; v++)                                                       \
                for (int q = 0; q < 6; q++) sum[v][q] = acc[q < NP ? q : 0][v];               \
            if (STORE_RUN(sum, bias, out + put[0], out_channel)) return;                      \
        }                                                                                     \
        T sums[MP_DIRECT_PIXELS][MP_DIRECT_MAX_VECTORS * VL];                                 \
        if (count == NP && rows == NV * VL) { /* a full tile: fixed trip counts */            \
            V bv[MP_DIRECT_MAX_VECTORS];                                                      \
            for (int v = 0; v < NV; v++) {                                                    \
                bv[v] = (V){0};                                                               \
                if (bias) memcpy(&bv[v], bias + v * VL, sizeof(V));                           \
            }                                                                                 \
            T *o[MP_DIRECT_PIXELS];                                                           \
            for (int p = 0; p < NP; p++) {                                                    \
                o[p] = out + put[p];                                                          \
                for (int v = 0; v < NV; v++) {                                                \
                    V s = acc[p][v] + bv[v];                                                  \
                    memcpy(&sums[p][v * VL], &s, sizeof(V));                                  \
                }                                                                             \
            }                                                                                 \
            for (int r = 0; r < NV * VL; r++)                                                 \
                for (int p = 0; p < NP; p++) o[p][r * out_channel] = sums[p][r];              \
            return;                                                                           \
        }                                                                                     \
        for (int p = 0; p < NP; p++)                                                          \
            for (int v = 0; v < NV; v++) memcpy(&sums[p][v * VL], &acc[p][v], sizeof(V));     \
        for (Py_ssize_t r = 0; r < rows; r++) {                                               \
            const T b = bias ? bias[r] : 0;                                                   \
            for (Py_ssize_t p = 0; p < count; p++)                                            \
                out[put[p] + r * out_channel] = sums[p][r] + b;                               \
        }                                                                                     \
    }

/* The strided entry's parameters and arguments, in one place (every build and copy of
 * it, and the dispatchers that pick one, share them). */
#define MP_DIRECT_STRIDED_PARAMS(T)                                                            \
    const T *restrict w, Py_ssize_t O, const T *restrict x, Py_ssize_t count,                 \
        Py_ssize_t channels, Py_ssize_t image, Py_ssize_t channel_stride,                      \
        const Py_ssize_t *restrict tap_offset, Py_ssize_t taps,                                \
        const Py_ssize_t *restrict pixel_base, Py_ssize_t pixel_step,                          \
        const uint64_t *restrict pixel_taps, const Py_ssize_t *restrict pixel_order,           \
        Py_ssize_t L, const T *restrict bias, T *restrict out, Py_ssize_t out_image,           \
        Py_ssize_t out_pixel, Py_ssize_t out_channel
#define MP_DIRECT_STRIDED_ARGS                                                                 \
    w, O, x, count, channels, image, channel_stride, tap_offset, taps, pixel_base, pixel_step, \
        pixel_taps, pixel_order, L, bias, out, out_image, out_pixel, out_channel

/* The scratch of NCHW outputs of a few pixels: a tile's points (one pixel of one image
 * each) are NCHW values a plane apart, a cache line each: 96 lines touched per tile of
 * 6 points by 16 channels.  In the scratch, as (image, pixel, channel), a point's
 * channels are whole vectors; one pass per block then writes out NCHW rows (the same
 * value, the same one add of the bias). */
#define MP_DIRECT_SCRATCH_BYTES (12 * 64 * 16 * 4) /* 12 images of 64 pixels, 16 floats */
#define MP_DIRECT_SCRATCH_OUT(T, NAME)                                                         \
    static inline void NAME(const T *restrict scratch, Py_ssize_t wd, Py_ssize_t count,       \
                            Py_ssize_t L, Py_ssize_t rows, const T *restrict bias,            \
                            T *restrict out, Py_ssize_t out_image, Py_ssize_t out_channel) {  \
        for (Py_ssize_t i = 0; i < count; i++)                                                 \
            for (Py_ssize_t r = 0; r < rows; r++) {                                            \
                const T b = bias ? bias[r] : 0;                                                \
                const T *s = scratch + i * L * wd + r;                                         \
                T *d = out + i * out_image + r * out_channel;                                  \
                for (Py_ssize_t p = 0; p < L; p++) d[p] = s[p * wd] + b;                       \
            }                                                                                  \
    }
MP_DIRECT_SCRATCH_OUT(float, mp_direct_scratch_out_f)
MP_DIRECT_SCRATCH_OUT(double, mp_direct_scratch_out_d)
#define mp_direct_scratch_out(s, ...) \
    MP_FLOAT_OR_DOUBLE(s, mp_direct_scratch_out_f, mp_direct_scratch_out_d)(s, __VA_ARGS__)

/* A pixel group's `valid` taps (tap: pairs of pixel offset and weight place) as runs of
 * `cols` taps, each tap's pixel and weight the next after the previous one's (a kernel
 * row's taps inside the plane, NCHW undilated; a group's rows have the same taps, so its
 * runs the same length): writes each run's first pair to run[] (*runs of them) and
 * returns cols when every maximal run has that length and it is 5 or more, else 0 (the
 * tile then reads the taps one by one).  Shorter runs measured slower (1 thread, CPU
 * time: runs of 3-4, 5x5 on 4x4 planes, 0.96-0.98x; 3x3 on 4x4 and 8x8 ~1.0x): the run's
 * own setup weighs more. */
#define MP_DIRECT_MIN_RUN 5
static inline int mp_direct_tap_runs(const Py_ssize_t *tap, Py_ssize_t valid, Py_ssize_t wd,
                                     Py_ssize_t *run, Py_ssize_t *runs) {
    Py_ssize_t cols = 0;
    *runs = 0;
    for (Py_ssize_t j = 0, length; j < valid; j += length) {
        for (length = 1; j + length < valid && tap[2 * (j + length)] == tap[2 * j] + length &&
                         tap[2 * (j + length) + 1] == tap[2 * j + 1] + length * wd;
             length++) {}
        if (length < MP_DIRECT_MIN_RUN || (cols && length != cols)) return 0;
        cols = length;
        run[2 * *runs] = tap[2 * j], run[2 * *runs + 1] = tap[2 * j + 1];
        ++*runs;
    }
    return (int)cols;
}
/* A full tile of 6 points on the group's runs of `cols` taps where it has them, else tap
 * by tap (MP_DIRECT_IMAGES's names) */
#define MP_DIRECT_TILE_6(TILE, STORE_RUN)                                                      \
    TILE(wk, x, channels, channel_stride, taps, cols ? run : tap, cols ? runs : valid, at,     \
         put, n, bk, out, out_channel, rows, STORE_RUN, 2 * LANES / VL, 6, cols)

/* out (count images of O channels by L pixels, out_image apart; a pixel out_pixel
 * apart, a channel out_channel) from x (count images of `channels` channels,
 * image apart; a channel channel_stride apart, pixel p's window at pixel_base[p]
 * * pixel_step): NCHW is (out_pixel, out_channel) = (1, L), channel_stride =
 * plane, pixel_step = 1; NHWC (O, 1), 1 and C, the tap offsets scaled by C too.
 * Block by block of output channels; in a block, group by group of pixels with
 * the same taps (pixel_order), the group's points (pixel, image) in tiles of
 * NP: the products with padding are never issued, and a tile's points share
 * every weight load. */
#define MP_DIRECT_IMAGES(T, V, NAME, TILE, RUNS, BY_COLS, ATTR)                               \
    ATTR static void NAME(MP_DIRECT_STRIDED_PARAMS(T)) {                                      \
        enum { VL = sizeof(V) / sizeof(T), LANES = 32 / sizeof(T) };                          \
        Py_ssize_t K = channels * taps, tap[2 * MP_DIRECT_MAX_TAPS];                          \
        Py_ssize_t run[2 * MP_DIRECT_MAX_TAPS], runs = 0;                                     \
        Py_ssize_t at[MP_DIRECT_PIXELS], put[MP_DIRECT_PIXELS];                               \
        /* NCHW outputs of a few pixels: each block's sums go to `scratch` as (image,        \
         * pixel, channel), whole vectors, then out (see mp_direct_scratch_out) */           \
        T scratch[MP_DIRECT_SCRATCH_BYTES / sizeof(T)];                                       \
        const int via_scratch = !RUNS && out_pixel == 1 &&                                    \
                                count * L * 2 * LANES * (Py_ssize_t)sizeof(T) <=              \
                                    MP_DIRECT_SCRATCH_BYTES;                                  \
        T *const out_nchw = out;                                                              \
        const T *const bias_nchw = bias;                                                      \
        const Py_ssize_t out_image_nchw = out_image, out_channel_nchw = out_channel;          \
        if (via_scratch) bias = NULL, out = scratch;                                          \
        for (Py_ssize_t o0 = 0, wd; o0 < O; o0 += wd) {                                       \
            wd = mp_direct_block_width(O, o0, sizeof(T));                                     \
            const T *wk = w + o0 * K;                                                         \
            const T *bk = bias ? bias + o0 : NULL;                                            \
            Py_ssize_t rows = O - o0 < wd ? O - o0 : wd;                                      \
            const int np = wd == 2 * LANES ? 6 : 12;                                          \
            if (via_scratch) out_image = L * wd, out_pixel = wd, out_channel = 1, rows = wd;  \
            for (Py_ssize_t g0 = 0, g1; g0 < L; g0 = g1) {                                    \
                const uint64_t mask = pixel_taps[pixel_order[g0]];                            \
                for (g1 = g0 + 1; g1 < L && pixel_taps[pixel_order[g1]] == mask; g1++) {}     \
                Py_ssize_t valid = 0, pixels = g1 - g0;                                       \
                for (Py_ssize_t t = 0; t < taps; t++)                                         \
                    if ((mask >> t) & 1) {                                                    \
                        tap[2 * valid] = tap_offset[t]; /* then its weight's place */        \
                        tap[2 * valid++ + 1] = t * wd;                                        \
                    }                                                                         \
                /* BY_COLS: full tiles of 6 on runs of taps (A/B: conv2d_direct_rows.h) */    \
                const int cols = BY_COLS ? mp_direct_tap_runs(tap, valid, wd, run, &runs) : 0; \
                /* point q0 + q is (image i, the group's pixel k): counted, not divided */   \
                for (Py_ssize_t q0 = 0, i = 0, k = 0; q0 < pixels * count; q0 += np) {       \
                    Py_ssize_t n = pixels * count - q0 < np ? pixels * count - q0 : np;       \
                    int in_run = out_pixel == 1; /* the points one run of the output? */    \
                    for (Py_ssize_t q = 0; q < n; q++) {                                      \
                        Py_ssize_t pixel = pixel_order[g0 + k];                               \
                        at[q] = i * image + pixel_base[pixel] * pixel_step;                   \
                        put[q] = i * out_image + pixel * out_pixel +                          \
                                 (via_scratch ? 0 : o0 * out_channel);                         \
                        in_run &= put[q] == put[0] + q;                                       \
                        if (++k == pixels) k = 0, i++;                                        \
                    }                                                                         \
                    if (RUNS && np == 6 && in_run && n == 6 && rows == 2 * LANES)           \
                        MP_DIRECT_TILE_6(TILE, 1);                                            \
                    else if (np == 6 && n > 4)                                                \
                        MP_DIRECT_TILE_6(TILE, 0);                                            \
                    else if (np == 6) /* a last tile of 4 points or fewer: 8 sums */          \
                        TILE(wk, x, channels, channel_stride, taps, tap, valid,               \
                             at, put, n, bk, out, out_channel, rows, 0, 2 * LANES / VL, 4, 0);\
                    else if (n <= 8) /* 8 sums of 12 */                                       \
                        TILE(wk, x, channels, channel_stride, taps, tap, valid,               \
                             at, put, n, bk, out, out_channel, rows, 0, LANES / VL, 8, 0);    \
                    else                                                                      \
                        TILE(wk, x, channels, channel_stride, taps, tap, valid,               \
                             at, put, n, bk, out, out_channel, rows, 0, LANES / VL, 12, 0);   \
                }                                                                             \
            }                                                                                 \
            if (via_scratch)                                                                  \
                mp_direct_scratch_out(scratch, wd, count, L, O - o0 < wd ? O - o0 : wd,       \
                                      bias_nchw ? bias_nchw + o0 : NULL,                      \
                                      out_nchw + o0 * out_channel_nchw, out_image_nchw,       \
                                      out_channel_nchw);                                      \
        }                                                                                     \
    }

/* The tiles' fma (a weight vector times a broadcast pixel here: the same product).
 * STORE_RUN: a full tile of 16 channels whose points are one run of an NCHW output row
 * (put[p] = put[0] + p) may be stored transposed in registers instead of scalar by
 * scalar (AVX2 float only: 0 = not taken, the scalar stores run) */
#define MP_DIRECT_NO_STORE_RUN(sum, bias, out, ld) ((void)(sum), 0)
#define MP_PORTABLE_DIRECT
MP_DIRECT_TILE(float, mp_vf16, mp_direct_tile_f_portable, mp_madd_f16, MP_DIRECT_NO_STORE_RUN,
               MP_PORTABLE_DIRECT)
MP_DIRECT_TILE(double, mp_vd16, mp_direct_tile_d_portable, mp_madd_d16, MP_DIRECT_NO_STORE_RUN,
               MP_PORTABLE_DIRECT)
MP_DIRECT_IMAGES(float, mp_vf16, mp_direct_strided_f_portable, mp_direct_tile_f_portable, 0, 0,
                 MP_PORTABLE_DIRECT)
MP_DIRECT_IMAGES(double, mp_vd16, mp_direct_strided_d_portable, mp_direct_tile_d_portable, 0, 0,
                 MP_PORTABLE_DIRECT)

#if MP_CONV_HAVE_X86_DISPATCH
/* The first n (0-4, a compile-time constant) floats of v at o: whole 16- and 8-byte stores
 * (a masked store is slow on AMD). */
MP_CONV_AVX2 static inline __attribute__((always_inline)) void mp_direct_store_first(
        float *o, __m128 v, const int n) {
    if (n == 4) _mm_storeu_ps(o, v);
    if (n == 2 || n == 3) _mm_storel_pi((__m64 *)o, v);
    if (n == 3) _mm_store_ss(o + 2, _mm_movehl_ps(v, v));
    if (n == 1) _mm_store_ss(o, v);
}
/* Channel k (< 8) of a block transposed by mp_transpose8_halves_ps: its first n points
 * (a compile-time constant, up to 8) at o. */
MP_CONV_AVX2 static inline __attribute__((always_inline)) void mp_direct_store_channel(
        float *o, const __m256 s[8], int k, const int n) {
    const __m128 lo = k < 4 ? _mm256_castps256_ps128(s[k]) : _mm256_extractf128_ps(s[k - 4], 1);
    mp_direct_store_first(o, lo, n < 4 ? n : 4);
    if (n > 4)
        mp_direct_store_first(o + 4, k < 4 ? _mm256_castps256_ps128(s[k + 4])
                                           : _mm256_extractf128_ps(s[k], 1), n - 4);
}

/* 6 points by 16 channels (sum[0..1][p]) plus the bias (the same one add per output as
 * the scalar stores), each 8 channels transposed as an 8x8 block (points 6 and 7 zero),
 * channel r's 6 points stored at out + r*ld.  A stored value is the same sum either way:
 * only the stores change. */
MP_CONV_AVX2 static inline int mp_direct_store_run_f_avx2(const mp_vf32 sum[2][6],
                                                          const float *bias, float *out,
                                                          Py_ssize_t ld) {
    for (int v = 0; v < 2; v++) {
        __m256 b = bias ? _mm256_loadu_ps(bias + 8 * v) : _mm256_setzero_ps();
        __m256 r[8], s[8];
        for (int p = 0; p < 8; p++)
            r[p] = p < 6 ? _mm256_add_ps((__m256)sum[v][p], b) : _mm256_setzero_ps();
        mp_transpose8_halves_ps(r, s);
        for (int k = 0; k < 8; k++) mp_direct_store_channel(out + (8 * v + k) * ld, s, k, 6);
    }
    return 1;
}
MP_DIRECT_TILE(float, mp_vf32, mp_direct_tile_f_avx2, mp_madd_f32, mp_direct_store_run_f_avx2,
               MP_CONV_AVX2)
MP_DIRECT_TILE(double, mp_vd32, mp_direct_tile_d_avx2, mp_madd_d32, MP_DIRECT_NO_STORE_RUN,
               MP_CONV_AVX2)
MP_DIRECT_IMAGES(float, mp_vf32, mp_direct_strided_f_avx2_tiles, mp_direct_tile_f_avx2, 0, 1,
                 MP_CONV_AVX2)
MP_DIRECT_IMAGES(float, mp_vf32, mp_direct_strided_f_avx2_runs, mp_direct_tile_f_avx2, 1, 1,
                 MP_CONV_AVX2)
MP_DIRECT_IMAGES(double, mp_vd32, mp_direct_strided_d_avx2, mp_direct_tile_d_avx2, 0, 0, MP_CONV_AVX2)
/* The copy that stores runs in registers where it measured faster: NCHW outputs of
 * 100+ pixels (A/B in one process, 1 thread, CPU time: LeNet's conv2 1.06-1.13x,
 * 16->32 5x5 on 16x16 ~1.02-1.05x).  On 4x4 and 8x8 planes (no runs, or 1,152+
 * products per output) the copy without that branch is 1-4% faster: the branch alone
 * changes how the compiler lays out the loops around the tile. */
MP_CONV_AVX2 static void mp_direct_strided_f_avx2(MP_DIRECT_STRIDED_PARAMS(float)) {
    (out_pixel == 1 && L >= 100 ? mp_direct_strided_f_avx2_runs
                                : mp_direct_strided_f_avx2_tiles)(MP_DIRECT_STRIDED_ARGS);
}
#endif

#if MP_CONV_HAVE_X86_DISPATCH
#include "conv2d_direct_rows.h"
#include "conv2d_direct_avx512.h"
/* mp_direct_strided_f's AVX2 build with its row tiles (conv2d_direct_rows.h) where they win */
MP_CONV_AVX2 static void mp_direct_strided_f_avx2_rows(MP_DIRECT_STRIDED_PARAMS(float)) {
    if (!mp_direct_rows_f_avx2(MP_DIRECT_STRIDED_ARGS))
        mp_direct_strided_f_avx2(MP_DIRECT_STRIDED_ARGS);
}
#endif

/* mp_direct_strided_f/_d as the tiles' (conv2d_tiles.h), picked by mp_pick_conv_direct:
 * AVX2 when allowed and the CPU has it, then float32 on AVX-512 (conv2d_direct_avx512.h:
 * the shapes where it measured faster) when the CPU has that too and
 * mp_use_direct_avx512 allows it. */
MP_CONV_ENGINE(mp_direct_strided, mp_pick_conv_direct_avx2)
static int mp_direct_avx2_allowed = 1;
static inline int mp_pick_conv_direct(int allow) {
    int avx2 = mp_pick_conv_direct_avx2(allow);
    mp_direct_avx2_allowed = allow;
#if MP_CONV_HAVE_X86_DISPATCH
    if (avx2 && mp_direct_rows_avx2_mode) mp_direct_strided_f = mp_direct_strided_f_avx2_rows;
    if (avx2 && mp_direct_avx512_mode && mp_direct_cpu_avx512())
        mp_direct_strided_f = mp_direct_strided_f_avx512;
#endif
    return avx2;
}
/* The AVX-512 build's mode: 0 never (AVX2 only: the tests compare the two on one
 * machine), 1 where it measured faster (the default), 2 for every float32 shape
 * (tests).  Returns 1 if float32 now runs on it. */
static inline int mp_use_direct_avx512(int mode) {
#if MP_CONV_HAVE_X86_DISPATCH
    mp_direct_avx512_mode = mode;
    mp_pick_conv_direct(mp_direct_avx2_allowed);
    return mp_direct_strided_f == mp_direct_strided_f_avx512;
#else
    (void)mode;
    return 0;
#endif
}
/* The AVX2 row tiles' mode (conv2d_direct_rows.h: 0 never, 1 where they measured faster,
 * 2 on every row-tile shape; AVX-512's row tiles, where picked, come first).  Returns 1 if
 * float32 now runs on them. */
static inline int mp_use_direct_rows_avx2(int mode) {
#if MP_CONV_HAVE_X86_DISPATCH
    mp_direct_rows_avx2_mode = mode;
    mp_pick_conv_direct(mp_direct_avx2_allowed);
    return mp_direct_strided_f == mp_direct_strided_f_avx2_rows;
#else
    (void)mode;
    return 0;
#endif
}
/* Whether a float32 call with O output channels per group, `taps` and L output pixels
 * runs on the AVX-512 tiles now (tests). */
static inline int mp_direct_avx512_runs(Py_ssize_t O, Py_ssize_t taps, Py_ssize_t L) {
#if MP_CONV_HAVE_X86_DISPATCH
    return mp_direct_strided_f == mp_direct_strided_f_avx512 && mp_direct_avx512_wins(O, taps, L);
#else
    (void)O, (void)taps, (void)L;
    return 0;
#endif
}
/* Which row tiles a float32 NCHW call with `channels` input and O output channels per group
 * and this geometry runs on now: 1 AVX-512's (conv2d_direct_avx512.h: a block of 16
 * channels, 9+ of them), 2 AVX2's (conv2d_direct_rows.h, where they win), else 0. */
static inline int mp_direct_rows_run(Py_ssize_t channels, Py_ssize_t O, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                     Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                                     Py_ssize_t dw, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho,
                                     Py_ssize_t Wo) {
#if MP_CONV_HAVE_X86_DISPATCH
    const int K = mp_direct_rows_kernel(kh, kw, sh, sw, ph, pw, dh, dw, H, W, Ho, Wo);
    if (!K) return 0;
    if (mp_direct_strided_f == mp_direct_strided_f_avx512) return O > 8;
    return mp_direct_strided_f == mp_direct_strided_f_avx2_rows &&
                   mp_direct_rows_avx2_wins(K, W, channels, O)
               ? 2
               : 0;
#else
    (void)channels, (void)O, (void)kh, (void)kw, (void)sh, (void)sw, (void)ph, (void)pw, (void)dh, (void)dw;
    (void)H, (void)W, (void)Ho, (void)Wo;
    return 0;
#endif
}
#define mp_direct_strided(w, ...) \
    MP_FLOAT_OR_DOUBLE(w, mp_direct_strided_f, mp_direct_strided_d)(w, __VA_ARGS__)
#endif
