/* conv2d's forward for first layers (1-3 input channels, 3x3 or 5x5, stride 1, no
 * dilation, float32; see conv2d.pyx, "first layers"): few products per output (9-75),
 * so the general tiles (conv2d_tiles.h) spend a large share of their time around the
 * sums -- the loops over channels and taps read from tables, the column block or
 * wide block of rows that are not whole vectors, the bias in a second pass.  Here
 * the channels and taps are compile-time constants (every step unrolled, each tap a
 * fixed offset from one of kh row pointers), a tile of 4 or 6 output channels by
 * MP_FIRST_V vectors of pixels walks one output row (a row's last tile moved back to
 * end at the row's end: the pixels it shares with the tile before get the same sums
 * again; a row narrower than a tile stored under a mask), and the bias is added as a
 * tile is stored.
 *
 *   out[o][i][j] = sum over c < C, ki < kh, kj < kw, in that order, of
 *                  w[o][c][ki][kj] * planes[c][i + ki][j + kj]   (+ bias[o])
 *
 * over the padded planes (zero borders, read as the tiles read them).  Every output
 * is ONE chain of fma from 0 in that order, then + bias: the same bits as the tiles
 * (conv2d_tiles.h) and the direct kernel, for any weight (a padding tap meets the
 * weight as there: inf * 0 = NaN).
 *
 * The weight is packed by mp_first_pack: panel after panel of R = mp_first_panel(O)
 * output channels, the panel at o0 at o0*K as (K, R), zero past the last channel.
 * AVX2 + FMA only (mp_pick_conv_tiles's CPU test): conv2d.pyx runs it only there.
 *
 * Needs Python.h (for Py_ssize_t), included before this file by Cython's C. */
#ifndef MINIPOOL_CONV2D_FIRST_H
#define MINIPOOL_CONV2D_FIRST_H
#include <string.h>
#include "cpu_features.h"

#define MP_FIRST_V 2 /* 8-float vectors of pixels per tile */
/* How far past its row a tile reads the planes (a row narrower than a tile: its last
 * vector's lanes past Wo, computed and not stored): the caller leaves this many
 * readable floats after them. */
#define MP_FIRST_SLACK (8 * MP_FIRST_V)

/* Output channels per tile: 4 (8 sums), or 6 (12 sums) where 4 would leave a
 * mostly empty last tile and 6 none (LeNet's conv1: 6 channels, 1.2x). */
static inline Py_ssize_t mp_first_panel(Py_ssize_t O) {
    return O % 4 != 0 && O % 6 == 0 ? 6 : 4;
}

static inline Py_ssize_t mp_first_packed_size(Py_ssize_t O, Py_ssize_t K) {
    Py_ssize_t R = mp_first_panel(O);
    return (O + R - 1) / R * R * K;
}

static inline void mp_first_pack(const float *weight, float *packed, Py_ssize_t O,
                                 Py_ssize_t K) {
    Py_ssize_t R = mp_first_panel(O);
    memset(packed, 0, mp_first_packed_size(O, K) * sizeof(float));
    for (Py_ssize_t o = 0; o < O; o++)
        for (Py_ssize_t k = 0; k < K; k++)
            packed[(o - o % R) * K + k * R + o % R] = weight[o * K + k];
}

#if MP_CPU_X86_DISPATCH
#include <immintrin.h>
#define MP_FIRST_AVX2 __attribute__((target("avx2,fma")))

/* One tile: `rows` (<= R) output channels from `w` (a panel) by V vectors of pixels
 * from `src` (the planes at the tile's first output pixel), `valid` of them stored
 * at `out` (channel stride ldo), plus bias[r] when bias is not NULL. */
MP_FIRST_AVX2 static inline __attribute__((always_inline)) void mp_first_tile(
    const float *restrict w, const float *restrict src, Py_ssize_t plane, Py_ssize_t Ws,
    const int C, const int KH, const int KW, const float *restrict bias, Py_ssize_t rows,
    float *restrict out, Py_ssize_t ldo, Py_ssize_t valid, const int R) {
    enum { V = MP_FIRST_V };
    __m256 acc[6][V];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) acc[r][v] = _mm256_setzero_ps();
    for (int c = 0; c < C; c++)
        for (int ki = 0; ki < KH; ki++) {
            const float *s = src + c * plane + ki * Ws;
            for (int kj = 0; kj < KW; kj++, w += R) {
                __m256 x[V];
                for (int v = 0; v < V; v++) x[v] = _mm256_loadu_ps(s + kj + 8 * v);
                for (int r = 0; r < R; r++) {
                    __m256 wr = _mm256_broadcast_ss(w + r);
                    for (int v = 0; v < V; v++) acc[r][v] = _mm256_fmadd_ps(x[v], wr, acc[r][v]);
                }
            }
        }
    for (Py_ssize_t r = 0; r < rows; r++) {
        if (bias != NULL) {
            __m256 b = _mm256_set1_ps(bias[r]);
            for (int v = 0; v < V; v++) acc[r][v] = _mm256_add_ps(acc[r][v], b);
        }
        for (int v = 0; v < V; v++) {
            Py_ssize_t left = valid - 8 * v;
            if (left >= 8) {
                _mm256_storeu_ps(out + r * ldo + 8 * v, acc[r][v]);
            } else if (left > 0) {
                __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), lane);
                _mm256_maskstore_ps(out + r * ldo + 8 * v, mask, acc[r][v]);
            }
        }
    }
}

/* One image: out (O, Ho*Wo) from its padded planes (C, Hs, Ws) with the packed weight. */
MP_FIRST_AVX2 static inline __attribute__((always_inline)) void mp_first_image_body(
    const float *restrict planes, Py_ssize_t plane, Py_ssize_t Ws, const int C,
    const int KH, const int KW, const float *restrict packed, Py_ssize_t O,
    const float *restrict bias, Py_ssize_t Ho, Py_ssize_t Wo, float *restrict out,
    const int R) {
    Py_ssize_t K = C * KH * KW, L = Ho * Wo;
    for (Py_ssize_t o0 = 0; o0 < O; o0 += R) {
        Py_ssize_t rows = O - o0 < R ? O - o0 : R;
        const float *w = packed + o0 * K;
        const float *b = bias != NULL ? bias + o0 : NULL;
        for (Py_ssize_t i = 0; i < Ho; i++) {
            Py_ssize_t j = 0;
            for (; j + 8 * MP_FIRST_V <= Wo; j += 8 * MP_FIRST_V)
                mp_first_tile(w, planes + i * Ws + j, plane, Ws, C, KH, KW, b, rows,
                              out + o0 * L + i * Wo + j, L, 8 * MP_FIRST_V, R);
            if (j < Wo) {
                /* the row's last pixels: a whole tile ending at the row's end where the
                 * row has one (the pixels it shares with the previous tile get the same
                 * sums again), else stored under a mask */
                if (Wo >= 8 * MP_FIRST_V)
                    j = Wo - 8 * MP_FIRST_V;
                mp_first_tile(w, planes + i * Ws + j, plane, Ws, C, KH, KW, b, rows,
                              out + o0 * L + i * Wo + j, L, Wo - j, R);
            }
        }
    }
}

#define MP_FIRST_IMAGE(C, KH, KW)                                                          \
    MP_FIRST_AVX2 static void mp_first_image_##C##_##KH##x##KW(                            \
        const float *planes, Py_ssize_t plane, Py_ssize_t Ws, const float *packed,         \
        Py_ssize_t O, const float *bias, Py_ssize_t Ho, Py_ssize_t Wo, float *out) {       \
        if (mp_first_panel(O) == 6)                                                        \
            mp_first_image_body(planes, plane, Ws, C, KH, KW, packed, O, bias, Ho, Wo, out,\
                                6);                                                        \
        else                                                                               \
            mp_first_image_body(planes, plane, Ws, C, KH, KW, packed, O, bias, Ho, Wo, out,\
                                4);                                                        \
    }
/* An image's output staged as (O, L) written pixel by pixel as (L, O) (channels last),
 * 8 pixels by 8 channels at a time.  Under 8 channels each pixel's 8-float store runs
 * into the next pixel's slot, which the next store overwrites: so that nothing past
 * the image is touched, those blocks stop 8 floats short of its end; above 8 the last
 * channel block moves back to end at O (the same values stored twice).  The rest of
 * the pixels one by one. */
MP_FIRST_AVX2 static void mp_first_to_pixels(const float *restrict staged,
                                             float *restrict out, Py_ssize_t O, Py_ssize_t L) {
    Py_ssize_t p = 0;
    __m256 r[8];
    if (O < 8) {
        for (; (p + 7) * O + 8 <= L * O && p + 8 <= L; p += 8) {
            for (int o = 0; o < 8; o++)
                r[o] = o < O ? _mm256_loadu_ps(staged + o * L + p) : _mm256_setzero_ps();
            mp_transpose8_ps(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(out + (p + i) * O, r[i]);
        }
    } else {
        for (; p + 8 <= L; p += 8)
            for (Py_ssize_t o0 = 0; o0 < O; o0 += 8) {
                Py_ssize_t first = o0 + 8 <= O ? o0 : O - 8;
                for (int o = 0; o < 8; o++) r[o] = _mm256_loadu_ps(staged + (first + o) * L + p);
                mp_transpose8_ps(r);
                for (int i = 0; i < 8; i++) _mm256_storeu_ps(out + (p + i) * O + first, r[i]);
            }
    }
    for (; p < L; p++)
        for (Py_ssize_t o = 0; o < O; o++) out[p * O + o] = staged[o * L + p];
}

MP_FIRST_IMAGE(1, 3, 3)
MP_FIRST_IMAGE(2, 3, 3)
MP_FIRST_IMAGE(3, 3, 3)
MP_FIRST_IMAGE(1, 5, 5)
MP_FIRST_IMAGE(2, 5, 5)
MP_FIRST_IMAGE(3, 5, 5)
#endif

/* Whether mp_first_image has a build for C channels and a kh x kw kernel. */
static inline int mp_first_fits(Py_ssize_t C, Py_ssize_t kh, Py_ssize_t kw) {
#if MP_CPU_X86_DISPATCH
    return C >= 1 && C <= 3 && kh == kw && (kh == 3 || kh == 5);
#else
    (void)C, (void)kh, (void)kw;
    return 0;
#endif
}

/* mp_first_to_pixels where the tiles run (an AVX2 CPU); elsewhere nothing calls it. */
static inline void mp_first_nhwc(const float *staged, float *out, Py_ssize_t O,
                                 Py_ssize_t L) {
#if MP_CPU_X86_DISPATCH
    mp_first_to_pixels(staged, out, O, L);
#else
    for (Py_ssize_t p = 0; p < L; p++)
        for (Py_ssize_t o = 0; o < O; o++) out[p * O + o] = staged[o * L + p];
#endif
}

/* One image's output (see the top); only where mp_first_fits, on an AVX2 CPU. */
static inline void mp_first_image(const float *planes, Py_ssize_t C, Py_ssize_t plane,
                                  Py_ssize_t Ws, Py_ssize_t k, const float *packed,
                                  Py_ssize_t O, const float *bias, Py_ssize_t Ho,
                                  Py_ssize_t Wo, float *out) {
#if MP_CPU_X86_DISPATCH
    switch (C * 10 + k) {
    case 13: mp_first_image_1_3x3(planes, plane, Ws, packed, O, bias, Ho, Wo, out); break;
    case 23: mp_first_image_2_3x3(planes, plane, Ws, packed, O, bias, Ho, Wo, out); break;
    case 33: mp_first_image_3_3x3(planes, plane, Ws, packed, O, bias, Ho, Wo, out); break;
    case 15: mp_first_image_1_5x5(planes, plane, Ws, packed, O, bias, Ho, Wo, out); break;
    case 25: mp_first_image_2_5x5(planes, plane, Ws, packed, O, bias, Ho, Wo, out); break;
    case 35: mp_first_image_3_5x5(planes, plane, Ws, packed, O, bias, Ho, Wo, out); break;
    }
#else
    (void)planes, (void)C, (void)plane, (void)Ws, (void)k, (void)packed, (void)O;
    (void)bias, (void)Ho, (void)Wo, (void)out;
#endif
}
#endif
