/* conv2d's register-tiled product (see conv2d.pyx, "tiles"): in C so that it
 * can be compiled twice, for baseline x86-64 and for CPUs with AVX2, picked
 * once at import (as antialias_loops.h does).
 *
 *   out[r][p] = sum over c < channels, t < taps, in that order, of
 *               w[(c*taps + t)*MR + r] * src[c*channel_stride + tap_offset[t] + p]
 *
 * for r < rows (<= MR output channels) and p < n (output pixels).  With
 * taps = 1 and tap_offset = {0} the src rows are a column block (row stride
 * channel_stride); with the kernel's taps they are the padded input planes
 * themselves (stride 1: a tap's pixels are one contiguous run), and no column
 * block is built at all.
 *
 * Every output is ONE running sum, from 0, over its products in the order
 * above, each step a fused multiply-add (one rounding, as PyTorch's oneDNN
 * kernels do).  fma is correctly rounded by definition and a vector lane is
 * one output computed on its own, so the bits depend on the shape alone: not
 * on the tile an output falls in, not on the build (AVX2 fma instructions on
 * 32-byte vectors, or the C library's fma() lane by lane on 16-byte ones), not
 * on the thread count.  (Unfused multiply-then-add reached only ~90 GFLOP/s
 * per core here: twice the instructions for the front end.)
 *
 * The weight is packed by the caller, a panel's MR (6 or 4) output channels
 * side by side per product step, as above (see mp_conv_panel_width; zero rows
 * past the last channel: computed, not stored).
 *
 * The tile is 6 (or 4) output channels by 2 vectors of pixels in registers:
 * per step, 2 loads of pixels and 6 broadcast weights feed 12 fma (12 of the
 * 16 AVX registers hold the sums).
 *
 * Needs Python.h (for Py_ssize_t) and <string.h>, included before this file by
 * Cython's generated C. */
#ifndef MINIPOOL_CONV2D_TILES_H
#define MINIPOOL_CONV2D_TILES_H
#include <math.h>
#include <string.h>
#include "cpu_features.h" /* mp_cpu_avx2_fma: the package's one CPU test */

#define MP_CONV_MR 6 /* the widest panel */

/* The output channels go in panels of 6 rows, or 4 where 6 would leave rows
 * computed for nothing (16 channels: 6+6+4; 32: 6+6+6+6+4+4): the width of the
 * panel starting at channel o0 of O.  The weight is packed panel after panel,
 * panel o0 at o0*K.  (A 4-row tile holds 8 sums: still enough to hide the fma
 * latency.) */
static inline Py_ssize_t mp_conv_panel_width(Py_ssize_t O, Py_ssize_t o0) {
    Py_ssize_t left = O - o0;
    return left <= 4 || left == 7 || left == 8 ? 4 : 6;
}

/* SSE vectors in the baseline build, AVX ones in the AVX2 build */
typedef float mp_vf16 __attribute__((vector_size(16)));
typedef double mp_vd16 __attribute__((vector_size(16)));
typedef float mp_vf32 __attribute__((vector_size(32)));
typedef double mp_vd32 __attribute__((vector_size(32)));

/* How far past its n pixels a panel reads its src rows (the last tile's whole
 * vectors; the lanes past n are dropped): the caller leaves this many readable
 * elements after the last src row. */
#define MP_CONV_SLACK 16

/* One tile: rows (<= MR) output channels by NV vectors of pixels, vector v
 * read at p + v*src_step and written at p + v*out_step (the next run of the
 * row, or the next row when a row is one vector); `valid` < NV*VL: only that
 * many pixels (one contiguous run) are stored.  `resume`: the sums continue
 * from the values in out (exactly as if never stored: a stored value is the
 * sum itself).  KW = 3: the taps come in rows of 3 adjacent pixels (tap_offset
 * t, t + 1, t + 2 for t = 0, 3, ...: see mp_conv_rows_of_3), a row's 3 steps
 * unrolled with constant offsets (the same steps in the same order, fewer
 * instructions: see mp_conv_product3); KW = 0: any taps. */
#define MP_CONV_TILE(T, V, NAME, MADD, ATTR, KW)                                           \
    ATTR static inline __attribute__((always_inline)) void NAME(                           \
        const T *restrict w, const T *restrict src, Py_ssize_t channels,                   \
        Py_ssize_t channel_stride, const Py_ssize_t *restrict tap_offset, Py_ssize_t taps, \
        Py_ssize_t src_step, Py_ssize_t valid, T *restrict out, Py_ssize_t ldo,            \
        Py_ssize_t out_step, Py_ssize_t rows, int resume, const int MR, const int NV) {    \
        enum { VL = sizeof(V) / sizeof(T) };                                               \
        V acc[MP_CONV_MR][2];                                                              \
        for (int r = 0; r < MR; r++)                                                       \
            for (int v = 0; v < NV; v++) acc[r][v] = (V){0};                               \
        if (resume)                                                                        \
            for (Py_ssize_t r = 0; r < rows; r++) {                                        \
                if (valid == NV * VL)                                                      \
                    for (int v = 0; v < NV; v++)                                           \
                        memcpy(&acc[r][v], out + r * ldo + v * out_step, sizeof(V));       \
                else                                                                       \
                    memcpy(acc[r], out + r * ldo, valid * sizeof(T));                      \
            }                                                                              \
        for (Py_ssize_t c = 0; c < channels; c++) {                                        \
            const T *s_c = src + c * channel_stride;                                       \
            for (Py_ssize_t t = 0; t < taps; t += (KW ? KW : 1)) {                         \
                const T *s = s_c + tap_offset[t];                                          \
                for (int kj = 0; kj < (KW ? KW : 1); kj++, w += MR) {                      \
                    V x[2];                                                                \
                    for (int v = 0; v < NV; v++)                                           \
                        memcpy(&x[v], s + kj + v * src_step, sizeof(V));                   \
                    for (int r = 0; r < MR; r++) {                                         \
                        const T wr = w[r];                                                 \
                        for (int v = 0; v < NV; v++) acc[r][v] = MADD(x[v], wr, acc[r][v]); \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        for (Py_ssize_t r = 0; r < rows; r++) {                                            \
            if (valid == NV * VL)                                                          \
                for (int v = 0; v < NV; v++)                                               \
                    memcpy(out + r * ldo + v * out_step, &acc[r][v], sizeof(V));           \
            else                                                                           \
                memcpy(out + r * ldo, acc[r], valid * sizeof(T));                          \
        }                                                                                  \
    }

/* out (O, rows x n pixels), channel stride ldo, row stride out_row: the whole
 * product, pixel row i read from src + i*src_row (one row: a column block or
 * the planes' shifted runs; several: the planes' rows, no pixel wasted between
 * them).  Blocked as a GEMM is: a chunk of about MP_CONV_STEPS product steps
 * at a time (its src tile stays in L1 while every panel of output channels
 * passes over it, its weights in L2), each sum resumed where the previous
 * chunk left it: the order of every output's steps does not change. */
#define MP_CONV_STEPS 256
#define MP_CONV_PRODUCT(T, V, NAME, TILE, ATTR)                                            \
    ATTR static void NAME(const T *restrict w, Py_ssize_t O, const T *restrict src,        \
                          Py_ssize_t channels, Py_ssize_t channel_stride,                  \
                          const Py_ssize_t *restrict tap_offset, Py_ssize_t taps,          \
                          Py_ssize_t rows, Py_ssize_t n, Py_ssize_t src_row,               \
                          T *restrict out, Py_ssize_t ldo, Py_ssize_t out_row) {           \
        enum { VL = sizeof(V) / sizeof(T) };                                               \
        /* channels per chunk: the fewest chunks of <= MP_CONV_STEPS steps, evened out */  \
        Py_ssize_t most = MP_CONV_STEPS / taps > 1 ? MP_CONV_STEPS / taps : 1;             \
        Py_ssize_t chunks = (channels + most - 1) / most;                                  \
        Py_ssize_t chunk = chunks > 1 ? (channels + chunks - 1) / chunks : most;           \
        Py_ssize_t K = channels * taps;                                                    \
        for (Py_ssize_t c0 = 0; c0 < channels; c0 += chunk) {                              \
            Py_ssize_t cn = channels - c0 < chunk ? channels - c0 : chunk;                 \
            const T *s0 = src + c0 * channel_stride;                                       \
            Py_ssize_t i = 0;                                                              \
            if (n == VL) /* rows of one vector: two rows per tile */                       \
                for (; i + 1 < rows; i += 2)                                               \
                    for (Py_ssize_t o0 = 0, wd; o0 < O; o0 += wd) {                        \
                        wd = mp_conv_panel_width(O, o0);                                   \
                        const T *wk = w + o0 * K + c0 * taps * wd;                         \
                        const T *s = s0 + i * src_row;                                     \
                        T *d = out + o0 * ldo + i * out_row;                               \
                        Py_ssize_t nr = O - o0 < wd ? O - o0 : wd;                         \
                        if (wd == 6)                                                       \
                            TILE(wk, s, cn, channel_stride, tap_offset, taps, src_row,     \
                                 2 * VL, d, ldo, out_row, nr, c0 > 0, 6, 2);               \
                        else                                                               \
                            TILE(wk, s, cn, channel_stride, tap_offset, taps, src_row,     \
                                 2 * VL, d, ldo, out_row, nr, c0 > 0, 4, 2);               \
                    }                                                                      \
            for (; i < rows; i++)                                                          \
                for (Py_ssize_t p = 0; p < n; p += 2 * VL) {                               \
                    /* a row's last pixels: whole vectors read (MP_CONV_SLACK) */          \
                    Py_ssize_t valid = n - p < 2 * VL ? n - p : 2 * VL;                    \
                    for (Py_ssize_t o0 = 0, wd; o0 < O; o0 += wd) {                        \
                        wd = mp_conv_panel_width(O, o0);                                   \
                        const T *wk = w + o0 * K + c0 * taps * wd;                         \
                        const T *s = s0 + i * src_row + p;                                 \
                        T *d = out + o0 * ldo + i * out_row + p;                           \
                        Py_ssize_t nr = O - o0 < wd ? O - o0 : wd;                         \
                        if (wd == 6 && valid > VL)                                         \
                            TILE(wk, s, cn, channel_stride, tap_offset, taps, VL, valid,   \
                                 d, ldo, VL, nr, c0 > 0, 6, 2);                            \
                        else if (wd == 6)                                                  \
                            TILE(wk, s, cn, channel_stride, tap_offset, taps, VL, valid,   \
                                 d, ldo, VL, nr, c0 > 0, 6, 1);                            \
                        else if (valid > VL)                                               \
                            TILE(wk, s, cn, channel_stride, tap_offset, taps, VL, valid,   \
                                 d, ldo, VL, nr, c0 > 0, 4, 2);                            \
                        else                                                               \
                            TILE(wk, s, cn, channel_stride, tap_offset, taps, VL, valid,   \
                                 d, ldo, VL, nr, c0 > 0, 4, 1);                            \
                    }                                                                      \
                }                                                                          \
        }                                                                                  \
    }

/* fma(x, w, acc) lane by lane: baseline x86-64 has no fma instruction, so each
 * is a call into the C library (the same bits, slowly: this build is for CPUs
 * without AVX2 and for the tests that compare the two). */
static inline mp_vf16 mp_madd_f16(mp_vf16 x, float w, mp_vf16 acc) {
    for (int l = 0; l < 4; l++) acc[l] = fmaf(x[l], w, acc[l]);
    return acc;
}
static inline mp_vd16 mp_madd_d16(mp_vd16 x, double w, mp_vd16 acc) {
    for (int l = 0; l < 2; l++) acc[l] = fma(x[l], w, acc[l]);
    return acc;
}
/* Each build twice: the tiles for any taps (mp_conv_product_*), and for taps in
 * rows of 3 (mp_conv_product3_*: 3x3 kernels at dilation 1), each product its own
 * function (one body with both tiles measured 0.85x on Winograd's products). */
#define MP_CONV_BUILD(T, V, SUFFIX, MADD, ATTR)                                                 \
    MP_CONV_TILE(T, V, mp_conv_tile_##SUFFIX, MADD, ATTR, 0)                                   \
    MP_CONV_TILE(T, V, mp_conv_tile3_##SUFFIX, MADD, ATTR, 3)                                  \
    MP_CONV_PRODUCT(T, V, mp_conv_product_any_##SUFFIX, mp_conv_tile_##SUFFIX, ATTR)           \
    MP_CONV_PRODUCT(T, V, mp_conv_product3_##SUFFIX, mp_conv_tile3_##SUFFIX, ATTR)
#define MP_PORTABLE_CONV
MP_CONV_BUILD(float, mp_vf16, f_portable, mp_madd_f16, MP_PORTABLE_CONV)
MP_CONV_BUILD(double, mp_vd16, d_portable, mp_madd_d16, MP_PORTABLE_CONV)

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MP_CONV_HAVE_X86_DISPATCH 1
#define MP_CONV_AVX2 __attribute__((target("avx2,fma")))
#define mp_madd_f32(x, w, acc) ((mp_vf32)_mm256_fmadd_ps((__m256)(x), _mm256_set1_ps(w), (__m256)(acc)))
#define mp_madd_d32(x, w, acc) ((mp_vd32)_mm256_fmadd_pd((__m256d)(x), _mm256_set1_pd(w), (__m256d)(acc)))
MP_CONV_BUILD(float, mp_vf32, f_avx2, mp_madd_f32, MP_CONV_AVX2)
MP_CONV_BUILD(double, mp_vd32, d_avx2, mp_madd_d32, MP_CONV_AVX2)
#else
#define MP_CONV_HAVE_X86_DISPATCH 0
#endif

/* The one CPU test of the conv engines (tiles, direct, weight gradient): 1 when
 * `allow` and the CPU has AVX2 and FMA.  Tests call the picks with allow = 0 and
 * 1 and compare the bits. */
static inline int mp_conv_cpu_avx2(int allow) {
#if MP_CONV_HAVE_X86_DISPATCH
    return mp_cpu_avx2_fma(allow);
#else
    (void)allow;
    return 0;
#endif
}

/* FN = its AVX2 build (FN##_avx2) or its portable one (FN##_portable) */
#if MP_CONV_HAVE_X86_DISPATCH
#define MP_CONV_PICK(avx2, FN) ((FN) = (avx2) ? FN##_avx2 : FN##_portable)
#else
#define MP_CONV_PICK(avx2, FN) ((FN) = FN##_portable)
#endif

/* A conv engine's entry points FN##_f and FN##_d (float, double): pointers that start
 * at the portable builds; PICK(allow) points them at the AVX2 builds when `allow`
 * and the CPU has AVX2 and FMA, and returns 1 if so.  Each engine also names the
 * pair once for Cython (FN, see float_or_double.h). */
#define MP_CONV_ENGINE(FN, PICK)                                  \
    static __typeof__(&FN##_f_portable) FN##_f = FN##_f_portable; \
    static __typeof__(&FN##_d_portable) FN##_d = FN##_d_portable; \
    static inline int PICK(int allow) {                           \
        int avx2 = mp_conv_cpu_avx2(allow);                       \
        MP_CONV_PICK(avx2, FN##_f);                               \
        MP_CONV_PICK(avx2, FN##_d);                               \
        return avx2;                                              \
    }

#include "float_or_double.h"
MP_CONV_ENGINE(mp_conv_product_any, mp_pick_conv_tiles_any)
MP_CONV_ENGINE(mp_conv_product3, mp_pick_conv_tiles3)
static inline int mp_pick_conv_tiles(int allow) {
    mp_pick_conv_tiles3(allow);
    return mp_pick_conv_tiles_any(allow);
}

/* Whether the taps come in rows of 3 adjacent pixels (mp_conv_product3 runs them) */
static inline int mp_conv_rows_of_3(const Py_ssize_t *tap_offset, Py_ssize_t taps) {
    if (taps % 3) return 0;
    for (Py_ssize_t t = 0; t < taps; t += 3)
        if (tap_offset[t + 1] != tap_offset[t] + 1 || tap_offset[t + 2] != tap_offset[t] + 2)
            return 0;
    return 1;
}

/* The product (MP_CONV_PRODUCT's arguments) on the tiles for its taps: in rows of
 * 3 (3x3 at dilation 1; the same bits) on mp_conv_product3, else on the tiles for
 * any taps.  AVX2 (Zen 2), 1 thread, CPU time: one image's product in cache 1.13x
 * (16->16 on 32x32, 83 -> 94 GFLOP/s); the layer's forward at batch 64 (kernel
 * level, min of 11 interleaved, A/B in one process) 1.045x, 16->32 on 16x16 1.05x,
 * 16->16 on 16x16 1.02x, 8->16 on 64x64 1.01x, 16->32 on 32x32 1.01x (its input
 * comes from memory: the product waits on it). */
#define mp_conv_product(w, O, src, channels, channel_stride, tap_offset, taps, ...)          \
    (mp_conv_rows_of_3(tap_offset, taps)                                                    \
         ? MP_FLOAT_OR_DOUBLE(w, mp_conv_product3_f, mp_conv_product3_d)                    \
         : MP_FLOAT_OR_DOUBLE(w, mp_conv_product_any_f, mp_conv_product_any_d))(            \
        w, O, src, channels, channel_stride, tap_offset, taps, __VA_ARGS__)
#endif
