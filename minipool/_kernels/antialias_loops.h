/* The antialiased resampling loops (see upsampling.pyx), in C so that they can
 * be compiled twice: once for baseline x86-64 and once for CPUs with AVX2 and
 * FMA, picked once at import.
 *
 * Why: these loops copy PyTorch's x86-64 build, which fuses some steps into a
 * fused multiply-add (one rounding).  minipool is built without -march, so in
 * baseline code every fma() is a call into the C library, per element.  fma is
 * correctly rounded by definition: the CPU's instruction and the library give
 * the same bits, and so do 1-, 4- and 8-wide vectors (every element is
 * computed on its own, in the same order).  So the AVX2+FMA versions are only
 * faster.  setup.py compiles with -ffp-contract=off: the compiler never fuses
 * a*b+c by itself (the unfused steps must stay two roundings).
 *
 * Needs Python.h (for Py_ssize_t) and <string.h>, included before this file by
 * Cython's generated C. */
#ifndef MINIPOOL_ANTIALIAS_LOOPS_H
#define MINIPOOL_ANTIALIAS_LOOPS_H
#include <math.h>
#include <string.h>

#include "cpu_features.h"

/* dst row o (length L) = the taps of src rows start[o] .. start[o]+count[o]-1
 * with weights w[o*K + j]: acc = s0*w0, then the first vec*floor((count-1)/vec)
 * steps unfused (acc + s*w), the rest fused (fma(s, w, acc)). */
#define MP_AA_COMBINE(T, NAME, FMA, ATTR)                                                  \
    ATTR static void NAME(const T *restrict src, T *restrict dst, Py_ssize_t n,            \
                          Py_ssize_t L, const Py_ssize_t *start, const Py_ssize_t *count,  \
                          const T *w, Py_ssize_t K, Py_ssize_t vec) {                      \
        for (Py_ssize_t o = 0; o < n; o++) {                                               \
            T *restrict d = dst + o * L;                                                   \
            const T *wo = w + o * K;                                                       \
            Py_ssize_t cnt = count[o];                                                     \
            if (cnt <= 0) {                                                                \
                memset(d, 0, (size_t)L * sizeof(T));                                       \
                continue;                                                                  \
            }                                                                              \
            Py_ssize_t m = 1 + ((cnt - 1) / vec) * vec;                                    \
            const T *s = src + start[o] * L;                                               \
            if (L == 1) { /* channels-first rows: one value per tap, kept in a register */ \
                T acc = s[0] * wo[0];                                                      \
                for (Py_ssize_t j = 1; j < cnt; j++)                                       \
                    acc = j < m ? acc + s[j] * wo[j] : FMA(s[j], wo[j], acc);              \
                d[0] = acc;                                                                \
                continue;                                                                  \
            }                                                                              \
            for (Py_ssize_t c = 0; c < L; c++) d[c] = s[c] * wo[0];                        \
            for (Py_ssize_t j = 1; j < cnt; j++) {                                         \
                const T *restrict sj = s + j * L;                                          \
                T wj = wo[j];                                                              \
                if (j < m)                                                                 \
                    for (Py_ssize_t c = 0; c < L; c++) d[c] = d[c] + sj[c] * wj;           \
                else                                                                       \
                    for (Py_ssize_t c = 0; c < L; c++) d[c] = FMA(sj[c], wj, d[c]);        \
            }                                                                              \
        }                                                                                  \
    }

/* The W pass: `rows` rows of n_in pixels (L values each) into rows of n_out,
 * each as MP_AA_COMBINE does.  Channels-first rows (L == 1) are done 8 at a
 * time: one output's tap sum is a chain of dependent steps, and 8 rows give
 * the CPU 8 independent chains to overlap (each element's order is unchanged). */
#define MP_AA_ROW_BLOCK 8
#define MP_AA_ROWS(T, NAME, COMBINE, FMA, ATTR)                                            \
    ATTR static void NAME(const T *restrict src, T *restrict dst, Py_ssize_t rows,         \
                          Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t L,                 \
                          const Py_ssize_t *start, const Py_ssize_t *count, const T *w,    \
                          Py_ssize_t K, Py_ssize_t vec) {                                  \
        Py_ssize_t r = 0;                                                                  \
        if (L == 1)                                                                        \
            for (; r + MP_AA_ROW_BLOCK <= rows; r += MP_AA_ROW_BLOCK) {                    \
                const T *s0 = src + r * n_in;                                              \
                T *d0 = dst + r * n_out;                                                   \
                for (Py_ssize_t o = 0; o < n_out; o++) {                                   \
                    const T *wo = w + o * K;                                               \
                    const T *s = s0 + (count[o] > 0 ? start[o] : 0);                       \
                    Py_ssize_t cnt = count[o], m = 1 + ((cnt - 1) / vec) * vec;            \
                    T acc[MP_AA_ROW_BLOCK];                                                \
                    for (int k = 0; k < MP_AA_ROW_BLOCK; k++)                              \
                        acc[k] = cnt > 0 ? s[k * n_in] * wo[0] : 0;                        \
                    for (Py_ssize_t j = 1; j < cnt; j++) {                                 \
                        const T wj = wo[j];                                                \
                        if (j < m)                                                         \
                            for (int k = 0; k < MP_AA_ROW_BLOCK; k++)                      \
                                acc[k] = acc[k] + s[k * n_in + j] * wj;                    \
                        else                                                               \
                            for (int k = 0; k < MP_AA_ROW_BLOCK; k++)                      \
                                acc[k] = FMA(s[k * n_in + j], wj, acc[k]);                 \
                    }                                                                      \
                    for (int k = 0; k < MP_AA_ROW_BLOCK; k++) d0[k * n_out + o] = acc[k];  \
                }                                                                          \
            }                                                                              \
        for (; r < rows; r++)                                                              \
            COMBINE(src + r * n_in * L, dst + r * n_out * L, n_out, L, start, count, w, K, vec); \
    }

/* One gradient plane (H, W, C) from the output gradient plane (OH, OW, C):
 * each input cell sums, from 0 and in ascending (oh, ow) order, fma(wx * wy,
 * g, acc) over the outputs that read it (CSR tables ptr/src/tw per axis).
 * (Summing a whole row at once, eh outermost, measured 1.8x slower: each
 * step then goes through memory instead of a register.) */
#define MP_AA_BACKWARD_PLANE(T, NAME, FMA, ATTR)                                           \
    ATTR static void NAME(const T *restrict g, T *restrict gx, Py_ssize_t H, Py_ssize_t W, \
                          Py_ssize_t C, Py_ssize_t OW, const Py_ssize_t *ptr_h,            \
                          const Py_ssize_t *src_h, const T *tw_h, const Py_ssize_t *ptr_w, \
                          const Py_ssize_t *src_w, const T *tw_w) {                        \
        for (Py_ssize_t h = 0; h < H; h++)                                                 \
            for (Py_ssize_t x = 0; x < W; x++) {                                           \
                T *restrict d = gx + (h * W + x) * C;                                      \
                if (C == 1) { /* channels-first: the sum stays in a register */            \
                    T acc = 0;                                                             \
                    for (Py_ssize_t eh = ptr_h[h]; eh < ptr_h[h + 1]; eh++)                \
                        for (Py_ssize_t ew = ptr_w[x]; ew < ptr_w[x + 1]; ew++)            \
                            acc = FMA(tw_w[ew] * tw_h[eh], g[src_h[eh] * OW + src_w[ew]],  \
                                      acc);                                                \
                    d[0] = acc;                                                            \
                    continue;                                                              \
                }                                                                          \
                memset(d, 0, (size_t)C * sizeof(T));                                       \
                for (Py_ssize_t eh = ptr_h[h]; eh < ptr_h[h + 1]; eh++)                    \
                    for (Py_ssize_t ew = ptr_w[x]; ew < ptr_w[x + 1]; ew++) {              \
                        const T wxy = tw_w[ew] * tw_h[eh];                                 \
                        const T *restrict gs = g + (src_h[eh] * OW + src_w[ew]) * C;       \
                        for (Py_ssize_t c = 0; c < C; c++) d[c] = FMA(wxy, gs[c], d[c]);   \
                    }                                                                      \
            }                                                                              \
    }

/* `planes` gradient planes (consecutive, plane sizes g_plane and gx_plane).
 * Channels-first (C == 1) planes are done 8 at a time, as the W pass does
 * rows: the same tables, 8 independent chains, each element's order unchanged. */
#define MP_AA_BACKWARD_PLANES(T, NAME, PLANE, FMA, ATTR)                                   \
    ATTR static void NAME(const T *restrict g, T *restrict gx, Py_ssize_t planes,          \
                          Py_ssize_t g_plane, Py_ssize_t gx_plane, Py_ssize_t H,           \
                          Py_ssize_t W, Py_ssize_t C, Py_ssize_t OW,                       \
                          const Py_ssize_t *ptr_h, const Py_ssize_t *src_h, const T *tw_h, \
                          const Py_ssize_t *ptr_w, const Py_ssize_t *src_w, const T *tw_w) { \
        Py_ssize_t p = 0;                                                                  \
        if (C == 1)                                                                        \
            for (; p + MP_AA_ROW_BLOCK <= planes; p += MP_AA_ROW_BLOCK) {                  \
                const T *g0 = g + p * g_plane;                                             \
                T *d0 = gx + p * gx_plane;                                                 \
                for (Py_ssize_t h = 0; h < H; h++)                                         \
                    for (Py_ssize_t x = 0; x < W; x++) {                                   \
                        T acc[MP_AA_ROW_BLOCK] = {0};                                      \
                        for (Py_ssize_t eh = ptr_h[h]; eh < ptr_h[h + 1]; eh++)            \
                            for (Py_ssize_t ew = ptr_w[x]; ew < ptr_w[x + 1]; ew++) {      \
                                const T wxy = tw_w[ew] * tw_h[eh];                         \
                                const T *gs = g0 + src_h[eh] * OW + src_w[ew];             \
                                for (int k = 0; k < MP_AA_ROW_BLOCK; k++)                  \
                                    acc[k] = FMA(wxy, gs[k * g_plane], acc[k]);            \
                            }                                                              \
                        for (int k = 0; k < MP_AA_ROW_BLOCK; k++)                          \
                            d0[k * gx_plane + h * W + x] = acc[k];                         \
                    }                                                                      \
            }                                                                              \
        for (; p < planes; p++)                                                            \
            PLANE(g + p * g_plane, gx + p * gx_plane, H, W, C, OW, ptr_h, src_h, tw_h, ptr_w, \
                  src_w, tw_w);                                                            \
    }

/* Every loop for one dtype and one instruction set: T, the name suffix, its fma and the
 * function attribute (empty for the baseline build). */
#define MP_AA_FAMILY(T, SUFFIX, FMA, ATTR)                                                  \
    MP_AA_COMBINE(T, mp_aa_combine_##SUFFIX, FMA, ATTR)                                     \
    MP_AA_BACKWARD_PLANE(T, mp_aa_backward_plane_##SUFFIX, FMA, ATTR)                       \
    MP_AA_ROWS(T, mp_aa_rows_##SUFFIX, mp_aa_combine_##SUFFIX, FMA, ATTR)                   \
    MP_AA_BACKWARD_PLANES(T, mp_aa_backward_planes_##SUFFIX, mp_aa_backward_plane_##SUFFIX, \
                          FMA, ATTR)

#define MP_PORTABLE
MP_AA_FAMILY(float, f_portable, fmaf, MP_PORTABLE)
MP_AA_FAMILY(double, d_portable, fma, MP_PORTABLE)

#if MP_CPU_X86_DISPATCH
#define MP_AVX2_FMA __attribute__((target("avx2,fma")))
MP_AA_FAMILY(float, f_avx2, __builtin_fmaf, MP_AVX2_FMA)
MP_AA_FAMILY(double, d_avx2, __builtin_fma, MP_AVX2_FMA)
#endif

/* The loops chosen at run time, one list for the pointers and for both ways of setting them. */
#define MP_AA_DISPATCHED(X) \
    X(mp_aa_rows_f) X(mp_aa_rows_d) X(mp_aa_combine_f) X(mp_aa_combine_d) \
    X(mp_aa_backward_planes_f) X(mp_aa_backward_planes_d)

/* The dispatch pointers start at the portable versions (same prototypes by construction). */
#define MP_DISPATCH(NAME) static __typeof__(&NAME##_portable) NAME = NAME##_portable;
MP_AA_DISPATCHED(MP_DISPATCH)
#define MP_USE_PORTABLE(NAME) NAME = NAME##_portable;
#define MP_USE_AVX2(NAME) NAME = NAME##_avx2;

/* Use the AVX2+FMA versions when `allow` and the CPU has both (cpu_features.h);
 * returns 1 if so.  Tests call it with allow = 0 and 1 and compare the bits. */
static int mp_pick_aa_kernels(int allow) {
    MP_AA_DISPATCHED(MP_USE_PORTABLE)
#if MP_CPU_X86_DISPATCH
    if (mp_cpu_avx2_fma(allow)) {
        MP_AA_DISPATCHED(MP_USE_AVX2)
        return 1;
    }
#endif
    (void)allow;
    return 0;
}

/* Each float/double pair by one name, for Cython (float_or_double.h) */
#include "float_or_double.h"
#define mp_aa_rows(src, ...) MP_FLOAT_OR_DOUBLE(src, mp_aa_rows_f, mp_aa_rows_d)(src, __VA_ARGS__)
#define mp_aa_combine(src, ...) \
    MP_FLOAT_OR_DOUBLE(src, mp_aa_combine_f, mp_aa_combine_d)(src, __VA_ARGS__)
#define mp_aa_backward_planes(g, ...) \
    MP_FLOAT_OR_DOUBLE(g, mp_aa_backward_planes_f, mp_aa_backward_planes_d)(g, __VA_ARGS__)
#endif
