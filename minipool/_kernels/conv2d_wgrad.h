/* conv2d's weight-gradient product on register tiles (see conv2d.pyx, "weight
 * gradient on tiles"), in C so that it can be compiled twice, for baseline
 * x86-64 and for CPUs with AVX2, picked once at import (as conv2d_tiles.h).
 *
 *   out[k*ldo + o] (+)= sum over p < n of src_k[p] * g[o*ldg + p]
 *
 * for k < K = channels*kh*kw and o < O, where row k = (c, ki, kj) of the source
 * is src + c*channel_stride + ki*tap_row + kj*tap_col: with the padded input
 * planes (stride 1) a tap's pixels are one contiguous run, so no column block
 * is built; with kh = kw = 1 the rows are a column block's (channel_stride
 * apart).  g is the output gradient (O rows of n pixels).
 *
 * The order of every sum is fixed by n alone (not by the tile an element falls
 * in, the build, or the thread count):
 *   - the pixels go in chunks of MP_WG_CHUNK; within a chunk, pixel p goes to
 *     lane p % LANES (8 for float, 4 for double) of ONE running sum per lane,
 *     from 0, each step a fused multiply-add, in pixel order;
 *   - a chunk's lanes are added by pairs: ((l0+l1)+(l2+l3))+((l4+l5)+(l6+l7));
 *   - out = (accumulate ? out + chunk 0 : chunk 0), then out += chunk 1, ...
 * The baseline build runs the same 32-byte vectors (the compiler splits them
 * into SSE halves) with the C library's fma() per lane: the same bits, slowly.
 *
 * The tile is 3 output channels by 4 source rows: per vector of pixels, 3
 * gradient vectors stay in registers and each source vector feeds 3 fma (12
 * sums; 16 AVX registers in all).  7 loads per 12 fma.
 *
 * Needs Python.h (for Py_ssize_t) and <string.h>, included before this file by
 * Cython's generated C. */
#ifndef MINIPOOL_CONV2D_WGRAD_H
#define MINIPOOL_CONV2D_WGRAD_H
#include <math.h>
#include <string.h>
#include "conv2d_tiles.h" /* the CPU choice the conv engines share (mp_pick_wgrad_tiles) */

#define MP_WG_MO 3       /* output channels per tile */
#define MP_WG_NT 4       /* source rows per tile */
#define MP_WG_CHUNK 512  /* pixels per chunk: a multiple of every lane count */

/* 32-byte vectors in both builds (the lane count is part of the order); the
 * helpers below are macros, so no function passes or returns them (which the
 * baseline build's ABI does differently) */
typedef float mp_wg_vf __attribute__((vector_size(32)));
typedef double mp_wg_vd __attribute__((vector_size(32)));
/* the same, loaded from anywhere (unaligned, any pointer type) */
typedef float mp_wg_uf __attribute__((vector_size(32), aligned(4), may_alias));
typedef double mp_wg_ud __attribute__((vector_size(32), aligned(8), may_alias));

/* The lane sums of one chunk, by pairs (the documented order). */
#define mp_wg_lanes_f(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3])) + (((v)[4] + (v)[5]) + ((v)[6] + (v)[7]))
#define mp_wg_lanes_d(v) (((v)[0] + (v)[1]) + ((v)[2] + (v)[3]))

/* One tile: sums[o][t] = the chunk sum of rows o < MO of g and t < NT of the
 * source (pointers xs[t]), over n <= MP_WG_CHUNK pixels.  The last vector,
 * when partial, is copied into zeroed vectors (0 * 0 adds +0, which changes no
 * lane: a lane started at +0 is never -0). */
#define MP_WG_TILE(T, V, U, NAME, MADD, PARTIAL, LANES4, ATTR)                                           \
    ATTR static inline __attribute__((always_inline)) void NAME(                            \
        const T *const *xs, const T *restrict g, Py_ssize_t ldg, Py_ssize_t n,              \
        T sums[MP_WG_MO][MP_WG_NT], const int MO, const int NT) {                           \
        enum { VL = sizeof(V) / sizeof(T) };                                                \
        V acc[MP_WG_MO][MP_WG_NT];                                                          \
        for (int o = 0; o < MP_WG_MO; o++)                                                  \
            for (int t = 0; t < MP_WG_NT; t++) acc[o][t] = (V){0};                          \
        Py_ssize_t p = 0;                                                                   \
        for (; p + VL <= n; p += VL) {                                                      \
            V gv[MP_WG_MO];                                                                 \
            _Pragma("GCC unroll 4")                                                         \
            for (int o = 0; o < MO; o++) gv[o] = *(const U *)(g + o * ldg + p);             \
            _Pragma("GCC unroll 4")                                                         \
            for (int t = 0; t < NT; t++) {                                                  \
                V x = *(const U *)(xs[t] + p);                                              \
                _Pragma("GCC unroll 4")                                                     \
                for (int o = 0; o < MO; o++) acc[o][t] = MADD(gv[o], x, acc[o][t]);         \
            }                                                                               \
        }                                                                                   \
        if (p < n) {                                                                        \
            V gv[MP_WG_MO];                                                                 \
            for (int o = 0; o < MO; o++) gv[o] = PARTIAL(g + o * ldg + p, n - p);           \
            for (int t = 0; t < NT; t++) {                                                  \
                V x = PARTIAL(xs[t] + p, n - p);                                            \
                for (int o = 0; o < MO; o++) acc[o][t] = MADD(gv[o], x, acc[o][t]);         \
            }                                                                               \
        }                                                                                   \
        for (int o = 0; o < MO; o++) LANES4(acc[o], sums[o]);                               \
    }

/* The whole product (see the top of this file): chunk by chunk, each chunk's
 * 3 gradient rows kept in L1 while every group of 4 source rows passes. */
#define MP_WG_PRODUCT(T, NAME, TILE, ATTR)                                                  \
    ATTR static void NAME(const T *restrict src, Py_ssize_t channels,                       \
                          Py_ssize_t channel_stride, Py_ssize_t kh, Py_ssize_t kw,          \
                          Py_ssize_t tap_row, Py_ssize_t tap_col, const T *restrict g,      \
                          Py_ssize_t ldg, Py_ssize_t O, Py_ssize_t n, T *restrict out,      \
                          Py_ssize_t ldo, int accumulate) {                                 \
        Py_ssize_t K = channels * kh * kw;                                                  \
        for (Py_ssize_t p0 = 0; p0 < n; p0 += MP_WG_CHUNK) {                                \
            Py_ssize_t pn = n - p0 < MP_WG_CHUNK ? n - p0 : MP_WG_CHUNK;                    \
            int add = accumulate || p0 > 0;                                                 \
            for (Py_ssize_t o0 = 0; o0 < O; o0 += MP_WG_MO) {                               \
                int mo = O - o0 < MP_WG_MO ? (int)(O - o0) : MP_WG_MO;                      \
                const T *go = g + o0 * ldg + p0;                                            \
                /* row k = (c, ki, kj), counted along (no division per tile) */             \
                Py_ssize_t c = 0, ki = 0, kj = 0;                                           \
                for (Py_ssize_t k0 = 0; k0 < K; k0 += MP_WG_NT) {                           \
                    int nt = K - k0 < MP_WG_NT ? (int)(K - k0) : MP_WG_NT;                  \
                    const T *xs[MP_WG_NT];                                                  \
                    T sums[MP_WG_MO][MP_WG_NT];                                             \
                    for (int t = 0; t < nt; t++) {                                          \
                        xs[t] = src + c * channel_stride + ki * tap_row + kj * tap_col + p0; \
                        if (++kj == kw) {                                                   \
                            kj = 0;                                                         \
                            if (++ki == kh) ki = 0, c++;                                    \
                        }                                                                   \
                    }                                                                       \
                    switch (mo * 8 + nt) {                                                  \
                    case 3 * 8 + 4: TILE(xs, go, ldg, pn, sums, 3, 4); break;               \
                    case 3 * 8 + 3: TILE(xs, go, ldg, pn, sums, 3, 3); break;               \
                    case 3 * 8 + 2: TILE(xs, go, ldg, pn, sums, 3, 2); break;               \
                    case 3 * 8 + 1: TILE(xs, go, ldg, pn, sums, 3, 1); break;               \
                    case 2 * 8 + 4: TILE(xs, go, ldg, pn, sums, 2, 4); break;               \
                    case 2 * 8 + 3: TILE(xs, go, ldg, pn, sums, 2, 3); break;               \
                    case 2 * 8 + 2: TILE(xs, go, ldg, pn, sums, 2, 2); break;               \
                    case 2 * 8 + 1: TILE(xs, go, ldg, pn, sums, 2, 1); break;               \
                    case 1 * 8 + 4: TILE(xs, go, ldg, pn, sums, 1, 4); break;               \
                    case 1 * 8 + 3: TILE(xs, go, ldg, pn, sums, 1, 3); break;               \
                    case 1 * 8 + 2: TILE(xs, go, ldg, pn, sums, 1, 2); break;               \
                    default: TILE(xs, go, ldg, pn, sums, 1, 1); break;                      \
                    }                                                                       \
                    for (int o = 0; o < mo; o++)                                            \
                        for (int t = 0; t < nt; t++) {                                      \
                            T *d = out + (k0 + t) * ldo + o0 + o;                           \
                            *d = add ? *d + sums[o][t] : sums[o][t];                        \
                        }                                                                   \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }

/* fma lane by lane: the baseline build's (the C library's correctly rounded fma) */
#define mp_wg_madd_f_portable(a, b, acc) __extension__({                                   \
    mp_wg_vf a_ = (a), b_ = (b), r_ = (acc);                                                \
    for (int l_ = 0; l_ < 8; l_++) r_[l_] = fmaf(a_[l_], b_[l_], r_[l_]);                    \
    r_; })
#define mp_wg_madd_d_portable(a, b, acc) __extension__({                                   \
    mp_wg_vd a_ = (a), b_ = (b), r_ = (acc);                                                \
    for (int l_ = 0; l_ < 4; l_++) r_[l_] = fma(a_[l_], b_[l_], r_[l_]);                     \
    r_; })
/* The first `count` < lanes values at `ptr`, zeros after them */
#define MP_WG_PARTIAL(T, V)                                                                 \
    static inline __attribute__((always_inline)) void mp_wg_partial_##T(                   \
        V *v, const T *ptr, Py_ssize_t count) {                                             \
        *v = (V){0};                                                                        \
        memcpy(v, ptr, (size_t)count * sizeof(T));                                          \
    }
MP_WG_PARTIAL(float, mp_wg_vf)
MP_WG_PARTIAL(double, mp_wg_vd)
#define mp_wg_partial_f_portable(ptr, count) __extension__({                               \
    mp_wg_vf v_; mp_wg_partial_float(&v_, ptr, count); v_; })
#define mp_wg_partial_d_portable(ptr, count) __extension__({                               \
    mp_wg_vd v_; mp_wg_partial_double(&v_, ptr, count); v_; })
/* four sums' lanes at once, each in the documented order */
#define mp_wg_lanes4_f_portable(acc, out)                                                   \
    for (int t_ = 0; t_ < MP_WG_NT; t_++) (out)[t_] = mp_wg_lanes_f((acc)[t_])
#define mp_wg_lanes4_d(acc, out)                                                            \
    for (int t_ = 0; t_ < MP_WG_NT; t_++) (out)[t_] = mp_wg_lanes_d((acc)[t_])
#define MP_WG_PORTABLE
MP_WG_TILE(float, mp_wg_vf, mp_wg_uf, mp_wg_tile_f_portable, mp_wg_madd_f_portable,
           mp_wg_partial_f_portable, mp_wg_lanes4_f_portable, MP_WG_PORTABLE)
MP_WG_TILE(double, mp_wg_vd, mp_wg_ud, mp_wg_tile_d_portable, mp_wg_madd_d_portable,
           mp_wg_partial_d_portable, mp_wg_lanes4_d, MP_WG_PORTABLE)
MP_WG_PRODUCT(float, mp_wgrad_product_f_portable, mp_wg_tile_f_portable, MP_WG_PORTABLE)
MP_WG_PRODUCT(double, mp_wgrad_product_d_portable, mp_wg_tile_d_portable, MP_WG_PORTABLE)

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MP_WG_HAVE_X86_DISPATCH 1
#define MP_WG_AVX2 __attribute__((target("avx2,fma")))
#define mp_wg_madd_f_avx2(a, b, acc) \
    ((mp_wg_vf)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(acc)))
#define mp_wg_madd_d_avx2(a, b, acc) \
    ((mp_wg_vd)_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(acc)))
/* masked loads: no call per partial vector; lanes past `count` are 0 */
#define mp_wg_partial_f_avx2(ptr, count)                                                    \
    ((mp_wg_vf)_mm256_maskload_ps((ptr), _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(count)), \
                                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))))
#define mp_wg_partial_d_avx2(ptr, count)                                                    \
    ((mp_wg_vd)_mm256_maskload_pd((ptr), _mm256_cmpgt_epi64(_mm256_set1_epi64x(count),        \
                                                            _mm256_setr_epi64x(0, 1, 2, 3))))
/* hadd adds neighbouring lanes: three of them give, for each of the 4 sums, its
 * (l0+l1)+(l2+l3) in the low half and (l4+l5)+(l6+l7) in the high half */
#define mp_wg_lanes4_f_avx2(acc, out) do {                                                  \
    __m256 h01_ = _mm256_hadd_ps((__m256)(acc)[0], (__m256)(acc)[1]);                       \
    __m256 h23_ = _mm256_hadd_ps((__m256)(acc)[2], (__m256)(acc)[3]);                       \
    __m256 h_ = _mm256_hadd_ps(h01_, h23_);                                                 \
    __m128 r_ = _mm_add_ps(_mm256_castps256_ps128(h_), _mm256_extractf128_ps(h_, 1));       \
    _mm_storeu_ps((out), r_);                                                               \
} while (0)
MP_WG_TILE(float, mp_wg_vf, mp_wg_uf, mp_wg_tile_f_avx2, mp_wg_madd_f_avx2, mp_wg_partial_f_avx2,
           mp_wg_lanes4_f_avx2, MP_WG_AVX2)
MP_WG_TILE(double, mp_wg_vd, mp_wg_ud, mp_wg_tile_d_avx2, mp_wg_madd_d_avx2, mp_wg_partial_d_avx2,
           mp_wg_lanes4_d, MP_WG_AVX2)
MP_WG_PRODUCT(float, mp_wgrad_product_f_avx2, mp_wg_tile_f_avx2, MP_WG_AVX2)
MP_WG_PRODUCT(double, mp_wgrad_product_d_avx2, mp_wg_tile_d_avx2, MP_WG_AVX2)
#else
#define MP_WG_HAVE_X86_DISPATCH 0
#endif

/* mp_wgrad_product_f/_d and mp_pick_wgrad_tiles, as the tiles' (conv2d_tiles.h) */
MP_CONV_ENGINE(mp_wgrad_product, mp_pick_wgrad_tiles)
#define mp_wgrad_product(src, ...) \
    MP_FLOAT_OR_DOUBLE(src, mp_wgrad_product_f, mp_wgrad_product_d)(src, __VA_ARGS__)
#endif
