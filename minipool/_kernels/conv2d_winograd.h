/* conv2d's Winograd engine, F(2x2, 3x3) and F(2x2, 5x5), float32 (see conv2d.pyx,
 * "winograd", and conv_winograd.pxd): a 3x3 (or 5x5, below), stride-1, dilation-1
 * convolution computed tile by tile,
 * a tile being 2x2 output pixels of one output channel, from the 4x4 input patch
 * that covers them:
 *
 *     U = G g G^T        (per output channel o and input channel c: 4x4 from the 3x3 weight)
 *     V = B^T d B        (per input channel and tile: 4x4 from the 4x4 patch d)
 *     M[e] = U[e] V[e]   (e < 16: 16 independent products (O x C) @ (C x tiles))
 *     Y = A^T M A (+ b)  (per output channel and tile: the 2x2 outputs)
 *
 * 16 multiplications per (input channel, output channel, tile) instead of 36.
 *
 *     G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *     A^T = [1 1 1 0; 0 1 -1 -1]
 *
 * Every value is computed by the same operations in the same order wherever it falls
 * (tile, vector lane, chunk, thread, build): the transforms are fixed sequences of
 * additions (and halvings: exact above the subnormals) with no fused multiply-add
 * (setup.py compiles with -ffp-contract=off), and the 16 products run on
 * conv2d_tiles.h's register tiles, each sum one chain of fma over the input channels
 * in order.  So the bits depend on the shape alone.  They are not the direct products'
 * bits: see docs/differences.md.
 *
 * 5x5 (r = 5): F(2x2, 5x5) on the 6x6 patch, 36 products per tile instead of 100, with
 * the interpolation points 0, 1, -1, 1/2, -2 and infinity (of the sets measured in
 * float32, the one with the smallest error: 0, +-1, +-2 had 2.4-3.8x its largest error),
 * B^T's rows scaled to integers (G's rows by the inverse), U computed in double and
 * rounded once:
 *
 *     B^T = [2 -3 -4  3 2 0]    G = [ 1/2    0     0     0     0  ]    A^T = [1 1  1  1   1 0]
 *           [0 -2  1  5 2 0]        [ 1/6   1/6   1/6   1/6   1/6 ]          [0 1 -1 1/2 -2 1]
 *           [0  2 -5  1 2 0]        [-1/6   1/6  -1/6   1/6  -1/6 ]
 *           [0 -2 -1  2 1 0]        [-16/15 -8/15 -4/15 -2/15 -1/15]
 *           [0  1 -2 -1 2 0]        [ 1/30 -2/30  4/30 -8/30 16/30]
 *           [0  2 -3 -4 3 2]        [ 0     0     0     0    1/2 ]
 *
 * Below, "e" counts the transformed values of a tile: MP_WINO_E(r), 16 or 36.
 *
 * Layouts, per chunk of images (T tiles in all, ld >= T + MP_WINO_SLACK), for e
 * transformed values a tile:
 *   V: e x (C rows of ld): V[e][c][t], tile t = image*tiles + i*tw + j (small planes:
 *      (i*tw + j)*lanes + image, see "by images"), the e mp_wino_e_stride(C, ld) apart
 *   M: e x (O rows of ld), mp_wino_e_stride(O, ld) apart
 *   U: e x the packed weight of conv2d_tiles.h (panels of 6 or 4 output channels,
 *      each (C, width)), mp_wino_packed(O, C) elements apart.
 *
 * Needs Python.h (for Py_ssize_t) and <string.h>, included before this file by
 * Cython's generated C. */
#ifndef MINIPOOL_CONV2D_WINOGRAD_H
#define MINIPOOL_CONV2D_WINOGRAD_H
#include <string.h>
#include "conv2d_tiles.h" /* the products' tiles, mp_conv_panel_width, the AVX2 pick */

/* How far past T a row of V or M is written or read: the transforms' last 8-lane
 * vector, the tiles' last vectors (MP_CONV_SLACK). */
#define MP_WINO_SLACK 16

/* The transformed values of a tile, kernel r x r (3 or 5): (r + 1)^2. */
#define MP_WINO_E(r) (((r) + 1) * ((r) + 1))

typedef float mp_wf8 __attribute__((vector_size(32)));

/* The elements of one of the e packed weights. */
static inline Py_ssize_t mp_wino_packed(Py_ssize_t O, Py_ssize_t C) {
    return (O + MP_CONV_MR - 1) / MP_CONV_MR * MP_CONV_MR * C;
}

/* A row of V or M: T tiles, rounded up to whole vectors, and the slack. */
static inline Py_ssize_t mp_wino_ld(Py_ssize_t T) { return (T + 7) / 8 * 8 + MP_WINO_SLACK; }

/* The distance between V[e] and V[e + 1] (or M's), `rows` rows of ld: 64 bytes past a
 * multiple of 4 KiB, so that the e streams the transforms read or write side by side
 * fall in different L1 sets (a multiple of 4 KiB puts them all in one). */
static inline Py_ssize_t mp_wino_e_stride(Py_ssize_t rows, Py_ssize_t ld) {
    return (rows * ld + 1023) / 1024 * 1024 + 16;
}

/* The deinterleaved padded plane of one input channel (see mp_wino_input): 2*th + r - 1
 * rows, each split into rows of even and odd columns `mp_wino_half_row(tw, r)` long (a
 * multiple of 8: a tile's patch reaches (r - 1) / 2 columns past its own in each). */
static inline Py_ssize_t mp_wino_half_row(Py_ssize_t tw, Py_ssize_t r) {
    return (tw + (r - 1) / 2 + 8 + 7) / 8 * 8;
}
static inline Py_ssize_t mp_wino_plane(Py_ssize_t th, Py_ssize_t tw, Py_ssize_t r) {
    /* the rows, and one row before its split */
    return (2 * (2 * th + r - 1) + 2) * mp_wino_half_row(tw, r);
}

/* u[e][l] = G g G^T of the 3x3 kernels g + l*stride, l < n <= MP_WINO_LANES (all in
 * float32: halvings and additions), lane by lane: with n the constant MP_WINO_LANES the
 * compiler turns the lane loops into vector instructions (8 kernels: about a third of
 * the time of 8 single ones); every lane's operations, and so its bits, are the same. */
#define MP_WINO_LANES 8
static inline __attribute__((always_inline)) void mp_wino_weight3(
        const float *restrict g, Py_ssize_t stride, int n, float u[16][MP_WINO_LANES]) {
    float v[9][MP_WINO_LANES], t[4][3][MP_WINO_LANES];
    for (int k = 0; k < 9; k++)
        for (int l = 0; l < n; l++) v[k][l] = g[l * stride + k];
    for (int k = 0; k < 3; k++) /* G g: over the rows */
        for (int l = 0; l < n; l++) {
            t[0][k][l] = v[k][l];
            t[1][k][l] = ((v[k][l] + v[3 + k][l]) + v[6 + k][l]) * 0.5f;
            t[2][k][l] = ((v[k][l] - v[3 + k][l]) + v[6 + k][l]) * 0.5f;
            t[3][k][l] = v[6 + k][l];
        }
    for (int a = 0; a < 4; a++) /* (G g) G^T: over the columns */
        for (int l = 0; l < n; l++) {
            u[4 * a + 0][l] = t[a][0][l];
            u[4 * a + 1][l] = ((t[a][0][l] + t[a][1][l]) + t[a][2][l]) * 0.5f;
            u[4 * a + 2][l] = ((t[a][0][l] - t[a][1][l]) + t[a][2][l]) * 0.5f;
            u[4 * a + 3][l] = t[a][2][l];
        }
}

/* u = G g G^T of one 5x5 kernel g (the header's G, F(2x2, 5x5)): the integer rows of G
 * (times 2, 6, 6, 15, 30, 2) in double (its few roundings far below float32's), then
 * scaled by the two rows' 1 / (den_a den_b) and rounded to float32 once. */
#define MP_WINO5_G(g0, g1, g2, g3, g4, t0, t1, t2, t3, t4, t5)                              \
    do {                                                                                   \
        double even_ = (g0 + g2) + g4, odd_ = g1 + g3;                                     \
        t0 = g0;                                                                           \
        t1 = even_ + odd_;                                                                 \
        t2 = odd_ - even_;                                                                 \
        t3 = -((((16 * g0 + 8 * g1) + 4 * g2) + 2 * g3) + g4);                            \
        t4 = (((g0 - 2 * g1) + 4 * g2) - 8 * g3) + 16 * g4;                                \
        t5 = g4;                                                                           \
    } while (0)
static const double mp_wino5_g_scale[6] = {1.0 / 2,  1.0 / 6,  1.0 / 6,
                                           1.0 / 15, 1.0 / 30, 1.0 / 2};
static inline void mp_wino_weight5(const float *restrict g, float *restrict u) {
    double t[6][5];
    for (int k = 0; k < 5; k++) /* G g: over the rows */
        MP_WINO5_G((double)g[k], (double)g[5 + k], (double)g[10 + k], (double)g[15 + k],
                   (double)g[20 + k], t[0][k], t[1][k], t[2][k], t[3][k], t[4][k], t[5][k]);
    for (int a = 0; a < 6; a++) { /* (G g) G^T: over the columns */
        double v[6];
        MP_WINO5_G(t[a][0], t[a][1], t[a][2], t[a][3], t[a][4], v[0], v[1], v[2], v[3], v[4],
                   v[5]);
        for (int b = 0; b < 6; b++)
            u[6 * a + b] = (float)(v[b] * (mp_wino5_g_scale[a] * mp_wino5_g_scale[b]));
    }
}

/* Channels per block of the weight's transform (see mp_wino_weight). */
#define MP_WINO_WEIGHT_BLOCK 16

/* U for output channels [o_begin, o_end) (panel boundaries) from the weight (O, C*r*r):
 * U[e] packed as conv2d_tiles.h's panels, zero rows past O in the last panel.
 * A panel's transforms go to a small staging block first, MP_WINO_WEIGHT_BLOCK channels
 * at a time, which then leaves as one contiguous run per e: stored straight, each pair's
 * e values went to addresses mp_wino_packed(O, C) apart, 16 or 36 streams in one L1 set
 * whenever that is a multiple of 4 KiB (256->128 on 4x4 planes: a fifth of the call,
 * 3x the time per pair of 128->256).  Returns 1 when those weights are all finite. */
static int mp_wino_weight(const float *restrict weight, Py_ssize_t O, Py_ssize_t C,
                          Py_ssize_t r, Py_ssize_t o_begin, Py_ssize_t o_end, float *restrict U) {
    Py_ssize_t packed = mp_wino_packed(O, C), taps = r * r, values = MP_WINO_E(r);
    float block[MP_WINO_E(5)][MP_WINO_WEIGHT_BLOCK * MP_CONV_MR];
    int finite = 1;
    for (Py_ssize_t o0 = o_begin, wd; o0 < o_end; o0 += wd) {
        wd = mp_conv_panel_width(O, o0);
        for (Py_ssize_t c0 = 0; c0 < C; c0 += MP_WINO_WEIGHT_BLOCK) {
            Py_ssize_t cn = C - c0 < MP_WINO_WEIGHT_BLOCK ? C - c0 : MP_WINO_WEIGHT_BLOCK;
            for (Py_ssize_t c = 0; c < cn; c += MP_WINO_LANES) { /* n channels at once */
                int n = cn - c < MP_WINO_LANES ? (int)(cn - c) : MP_WINO_LANES;
                for (Py_ssize_t o = o0; o < o0 + wd; o++) {
                    float u[MP_WINO_E(5)][MP_WINO_LANES];
                    const float *g = weight + (o * C + c0 + c) * taps; /* n kernels in a row */
                    if (o >= O) /* rows past O: computed by the tiles, never stored */
                        memset(u, 0, sizeof u);
                    else {
                        for (Py_ssize_t k = 0; k < taps * n; k++) finite &= g[k] - g[k] == 0;
                        if (r == 3 && n == MP_WINO_LANES)
                            mp_wino_weight3(g, taps, MP_WINO_LANES, u);
                        else if (r == 3)
                            mp_wino_weight3(g, taps, n, u);
                        else
                            for (int l = 0; l < n; l++) {
                                float one[MP_WINO_E(5)];
                                mp_wino_weight5(g + l * taps, one);
                                for (Py_ssize_t e = 0; e < values; e++) u[e][l] = one[e];
                            }
                    }
                    for (Py_ssize_t e = 0; e < values; e++)
                        for (int l = 0; l < n; l++) block[e][(c + l) * wd + (o - o0)] = u[e][l];
                }
            }
            for (Py_ssize_t e = 0; e < values; e++)
                memcpy(U + e * packed + o0 * C + c0 * wd, block[e],
                       (size_t)(cn * wd) * sizeof(float));
        }
    }
    return finite;
}

/* Lanes 0-7 of the pair (a, b) picked by the index vector (0-7: a's, 8-15: b's). */
typedef int mp_wi8 __attribute__((vector_size(32)));
#if defined(__clang__)
#define MP_WINO_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define MP_WINO_ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#define MP_WINO_LOW(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11)
#define MP_WINO_HIGH(a, b) __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15)
#else
#define MP_WINO_EVEN(a, b) __builtin_shuffle(a, b, (mp_wi8){0, 2, 4, 6, 8, 10, 12, 14})
#define MP_WINO_ODD(a, b) __builtin_shuffle(a, b, (mp_wi8){1, 3, 5, 7, 9, 11, 13, 15})
#define MP_WINO_LOW(a, b) __builtin_shuffle(a, b, (mp_wi8){0, 8, 1, 9, 2, 10, 3, 11})
#define MP_WINO_HIGH(a, b) __builtin_shuffle(a, b, (mp_wi8){4, 12, 5, 13, 6, 14, 7, 15})
#endif

/* The input transform's second half, B^T (d B) over the rows of h (d B, 4 rows of 4 vectors
 * of 8 lanes), stored as the 16 transformed values at dst + e * e_stride: one place for both
 * input transforms below. */
#define MP_WINO_STORE_ROWS(h, dst, e_stride)                                               \
    for (int k = 0; k < 4; k++) {                                                          \
        mp_wf8 t0 = h[0][k] - h[2][k], t1 = h[1][k] + h[2][k];                             \
        mp_wf8 t2 = h[2][k] - h[1][k], t3 = h[1][k] - h[3][k];                             \
        memcpy(dst + k * e_stride, &t0, 32);                                               \
        memcpy(dst + (4 + k) * e_stride, &t1, 32);                                         \
        memcpy(dst + (8 + k) * e_stride, &t2, 32);                                         \
        memcpy(dst + (12 + k) * e_stride, &t3, 32);                                        \
    }

/* The output transform's first half, A^T M over the rows: s[r][k] (2 rows of 4 vectors)
 * from the 16 products of 8 tiles at m + e * e_stride; both output transforms below. */
#define MP_WINO_LOAD_ROWS(s, m, e_stride)                                                  \
    for (int k = 0; k < 4; k++) {                                                          \
        mp_wf8 m0, m1, m2, m3;                                                             \
        const float *p = (m) + k * (e_stride);                                             \
        memcpy(&m0, p, 32), memcpy(&m1, p + 4 * (e_stride), 32);                           \
        memcpy(&m2, p + 8 * (e_stride), 32), memcpy(&m3, p + 12 * (e_stride), 32);         \
        s[0][k] = (m0 + m1) + m2;                                                          \
        s[1][k] = (m1 - m2) - m3;                                                          \
    }

/* F(2x2, 5x5)'s B^T on the 6 vectors d0-d5 (a row or a column of 8 patches), into
 * x0-x5 (the header's B^T: products by 2 as additions, exact). */
#define MP_WINO5_B(d0, d1, d2, d3, d4, d5, x0, x1, x2, x3, x4, x5)                         \
    do {                                                                                   \
        mp_wf8 a_ = d1 - d3, b_ = d4 - d2, s_ = d2 + d3, t_ = d3 - d2;                     \
        mp_wf8 p_ = (d0 - d2) + b_, q_ = b_ - a_, r_ = a_ + b_, u_ = a_ + (d5 - d3);       \
        x0 = (p_ + p_) - 3.0f * a_;                                                        \
        x1 = (q_ + q_) + 3.0f * s_;                                                        \
        x2 = (r_ + r_) + 3.0f * t_;                                                        \
        x3 = b_ - (a_ + a_);                                                               \
        x4 = (b_ + b_) + a_;                                                               \
        x5 = (u_ + u_) + 3.0f * b_;                                                        \
    } while (0)

/* F(2x2, 5x5)'s A^T on the 6 vectors m0-m5: the two outputs y0, y1. */
#define MP_WINO5_A(m0, m1, m2, m3, m4, m5, y0, y1)                                         \
    do {                                                                                   \
        y0 = (m0 + (m1 + m2)) + (m3 + m4);                                                 \
        y1 = ((m1 - m2) + (m3 * 0.5f - (m4 + m4))) + m5;                                   \
    } while (0)

/* B^T (d B) over the rows of h (d B: 6 rows of 6 vectors, F(2x2, 5x5)), stored as the
 * 36 transformed values at dst + e * e_stride (both input transforms). */
#define MP_WINO5_STORE_ROWS(h, dst, e_stride)                                              \
    for (int k = 0; k < 6; k++) {                                                          \
        mp_wf8 x0, x1, x2, x3, x4, x5;                                                     \
        MP_WINO5_B(h[0][k], h[1][k], h[2][k], h[3][k], h[4][k], h[5][k], x0, x1, x2, x3,   \
                   x4, x5);                                                                \
        float *e = (dst) + k * (e_stride);                                                 \
        memcpy(e, &x0, 32), memcpy(e + 6 * (e_stride), &x1, 32);                           \
        memcpy(e + 12 * (e_stride), &x2, 32), memcpy(e + 18 * (e_stride), &x3, 32);        \
        memcpy(e + 24 * (e_stride), &x4, 32), memcpy(e + 30 * (e_stride), &x5, 32);        \
    }

/* The whole output transform A^T M A of 8 tiles, kernel r x r: q0[q], q1[q] (the tiles'
 * two outputs of row q) from the products at m + e * e_stride, s (2 rows of 6 vectors)
 * its scratch (both output transforms). */
#define MP_WINO_COLUMNS(s, q0, q1, m, e_stride, r)                                         \
    do {                                                                                   \
        if ((r) == 3) {                                                                    \
            MP_WINO_LOAD_ROWS(s, m, e_stride);                                             \
            for (int q = 0; q < 2; q++) { /* (A^T M) A: over the columns */                \
                q0[q] = (s[q][0] + s[q][1]) + s[q][2];                                     \
                q1[q] = (s[q][1] - s[q][2]) - s[q][3];                                     \
            }                                                                              \
            break;                                                                         \
        }                                                                                  \
        for (int k = 0; k < 6; k++) { /* A^T M: over the rows */                           \
            mp_wf8 v0, v1, v2, v3, v4, v5;                                                 \
            const float *e = (m) + k * (e_stride);                                         \
            memcpy(&v0, e, 32), memcpy(&v1, e + 6 * (e_stride), 32);                       \
            memcpy(&v2, e + 12 * (e_stride), 32), memcpy(&v3, e + 18 * (e_stride), 32);    \
            memcpy(&v4, e + 24 * (e_stride), 32), memcpy(&v5, e + 30 * (e_stride), 32);    \
            MP_WINO5_A(v0, v1, v2, v3, v4, v5, s[0][k], s[1][k]);                          \
        }                                                                                  \
        for (int q = 0; q < 2; q++) /* (A^T M) A: over the columns */                      \
            MP_WINO5_A(s[q][0], s[q][1], s[q][2], s[q][3], s[q][4], s[q][5], q0[q], q1[q]); \
    } while (0)

/* V for `count` images (C, H, W each) of a chunk, image n's tiles from column
 * n*th*tw of V, kernel r x r (3 or 5).  Each image's channel is first laid out in
 * `plane`, padded (zeros: ph rows on top, pw columns on the left, the rest to whole
 * tiles plus a vector) and split into its even and odd columns, so that 8 neighbouring
 * tiles of a tile row read contiguous vectors there; then B^T d B, 8 tiles at a time.
 * A vector's lanes past the row's last tile land in the next tile row's slots (which
 * that row then overwrites) or in the slack.  Returns 1 when the images are all finite. */
#define MP_WINO_INPUT(NAME, ATTR)                                                          \
    ATTR static int NAME(const float *restrict x, Py_ssize_t count, Py_ssize_t C,          \
                         Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw,         \
                         Py_ssize_t r, Py_ssize_t th, Py_ssize_t tw, float *restrict V,    \
                         Py_ssize_t ld, Py_ssize_t e_stride, float *restrict plane) {      \
        Py_ssize_t half = mp_wino_half_row(tw, r), rows = 2 * th + r - 1;                  \
        Py_ssize_t tiles = th * tw, copied = W < 2 * half - pw ? W : 2 * half - pw;        \
        float *line = plane + 2 * rows * half; /* one padded row, before the split */      \
        int finite = 1;                                                                    \
        for (Py_ssize_t n = 0; n < count; n++)                                             \
            for (Py_ssize_t c = 0; c < C; c++) {                                           \
                const float *src = x + (n * C + c) * H * W;                                \
                for (Py_ssize_t q = 0; q < rows; q++) {                                    \
                    float *even = plane + 2 * q * half, *odd = even + half;                \
                    Py_ssize_t y = q - ph;                                                 \
                    if (y < 0 || y >= H) {                                                 \
                        memset(even, 0, 2 * half * sizeof(float));                         \
                        continue;                                                          \
                    }                                                                      \
                    const float *row = src + y * W;                                        \
                    for (Py_ssize_t k = 0; k < W; k++) finite &= row[k] - row[k] == 0;     \
                    memset(line, 0, 2 * half * sizeof(float));                            \
                    memcpy(line + pw, row, copied * sizeof(float));                        \
                    for (Py_ssize_t j = 0; j < half; j += 8) {                             \
                        mp_wf8 a, b, ve, vo;                                               \
                        memcpy(&a, line + 2 * j, 32), memcpy(&b, line + 2 * j + 8, 32);    \
                        ve = MP_WINO_EVEN(a, b), vo = MP_WINO_ODD(a, b);                   \
                        memcpy(even + j, &ve, 32), memcpy(odd + j, &vo, 32);               \
                    }                                                                      \
                }                                                                          \
                float *v = V + c * ld + n * tiles;                                         \
                for (Py_ssize_t i = 0; i < th; i++)                                        \
                    for (Py_ssize_t j = 0; j < tw; j += 8) {                               \
                        float *dst = v + i * tw + j;                                       \
                        if (r == 3) {                                                      \
                            mp_wf8 h[4][4], e0, e1, o0, o1;                                \
                            for (int q = 0; q < 4; q++) { /* d B: over the columns */      \
                                const float *even = plane + 2 * (2 * i + q) * half + j;    \
                                const float *odd = even + half;                            \
                                memcpy(&e0, even, 32), memcpy(&e1, even + 1, 32);          \
                                memcpy(&o0, odd, 32), memcpy(&o1, odd + 1, 32);            \
                                h[q][0] = e0 - e1;                                         \
                                h[q][1] = o0 + e1;                                         \
                                h[q][2] = e1 - o0;                                         \
                                h[q][3] = o0 - o1;                                         \
                            }                                                              \
                            MP_WINO_STORE_ROWS(h, dst, e_stride);                          \
                            continue;                                                      \
                        }                                                                  \
                        mp_wf8 h[6][6], d0, d1, d2, d3, d4, d5;                            \
                        for (int q = 0; q < 6; q++) { /* d B: over the columns */          \
                            const float *even = plane + 2 * (2 * i + q) * half + j;        \
                            const float *odd = even + half;                                \
                            memcpy(&d0, even, 32), memcpy(&d1, odd, 32);                   \
                            memcpy(&d2, even + 1, 32), memcpy(&d3, odd + 1, 32);           \
                            memcpy(&d4, even + 2, 32), memcpy(&d5, odd + 2, 32);           \
                            MP_WINO5_B(d0, d1, d2, d3, d4, d5, h[q][0], h[q][1], h[q][2],  \
                                       h[q][3], h[q][4], h[q][5]);                         \
                        }                                                                  \
                        MP_WINO5_STORE_ROWS(h, dst, e_stride);                             \
                    }                                                                      \
            }                                                                              \
        return finite;                                                                     \
    }

/* out (count images of O planes Ho x Wo) = A^T M A (+ bias), 8 tiles of a tile row at
 * a time (their 2x2 outputs interleaved back into 16 pixels of each of 2 rows), the
 * pixels past Ho, Wo dropped; kernel r x r (3 or 5).  Returns 1 when every output is
 * finite (huge finite values can overflow in the transforms: the caller then falls
 * back). */
#define MP_WINO_OUTPUT(NAME, ATTR)                                                         \
    ATTR static int NAME(const float *restrict M, Py_ssize_t ld, Py_ssize_t e_stride,      \
                         Py_ssize_t count, Py_ssize_t O, Py_ssize_t r, Py_ssize_t th,      \
                         Py_ssize_t tw, Py_ssize_t Ho, Py_ssize_t Wo,                      \
                         const float *restrict bias, float *restrict out) {                \
        Py_ssize_t tiles = th * tw;                                                        \
        mp_wf8 ok = {0};                                                                   \
        int finite = 1;                                                                    \
        for (Py_ssize_t n = 0; n < count; n++)                                             \
            for (Py_ssize_t o = 0; o < O; o++) {                                           \
                const float *m = M + o * ld + n * tiles;                                   \
                float *y = out + (n * O + o) * Ho * Wo, b = bias ? bias[o] : 0.0f;         \
                for (Py_ssize_t i = 0; i < th; i++)                                        \
                    for (Py_ssize_t j = 0; j < tw; j += 8) {                               \
                        mp_wf8 s[2][6], q0[2], q1[2];                                      \
                        MP_WINO_COLUMNS(s, q0, q1, m + i * tw + j, e_stride, r);           \
                        Py_ssize_t pixels = Wo - 2 * j < 16 ? Wo - 2 * j : 16;             \
                        for (int q = 0; q < 2 && 2 * i + q < Ho; q++) {                    \
                            if (bias) q0[q] += b, q1[q] += b;                              \
                            mp_wf8 lo = MP_WINO_LOW(q0[q], q1[q]);                         \
                            mp_wf8 hi = MP_WINO_HIGH(q0[q], q1[q]);                        \
                            float *d = y + (2 * i + q) * Wo + 2 * j;                       \
                            if (pixels == 16) {                                            \
                                memcpy(d, &lo, 32), memcpy(d + 8, &hi, 32);                \
                                ok += (lo - lo) + (hi - hi);                               \
                            } else {                                                       \
                                float both[16];                                            \
                                memcpy(both, &lo, 32), memcpy(both + 8, &hi, 32);          \
                                for (Py_ssize_t l = 0; l < pixels; l++) {                  \
                                    d[l] = both[l];                                        \
                                    finite &= both[l] - both[l] == 0;                      \
                                }                                                          \
                            }                                                              \
                        }                                                                  \
                    }                                                                      \
            }                                                                              \
        for (int l = 0; l < 8; l++) finite &= ok[l] == 0;                                  \
        return finite;                                                                     \
    }

/* By images: small planes (up to 4 tiles a row), 8 images side by side in the vector
 * lanes, the tile order of a chunk position-major, t = (i*tw + j)*lanes + n, lanes =
 * `count` rounded up to 8 (the lanes past the chunk's images compute zeros, dropped).
 * The same operations per value as above (so the same bits), on full vectors where a
 * tile row would fill 2 or 4 of 8 lanes.  Each image's padded channel plane is first
 * laid out in `plane` pixel by pixel, 8 images a pixel. */
static inline Py_ssize_t mp_wino_lanes(Py_ssize_t count) { return (count + 7) / 8 * 8; }
static inline Py_ssize_t mp_wino_plane_images(Py_ssize_t th, Py_ssize_t tw, Py_ssize_t r) {
    Py_ssize_t in = (2 * th + r - 1) * (2 * tw + r - 1) * 8, out = 4 * th * tw * 8;
    return in > out ? in : out;
}

#define MP_WINO_INPUT_IMAGES(NAME, ATTR)                                                   \
    ATTR static int NAME(const float *restrict x, Py_ssize_t count, Py_ssize_t C,          \
                         Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw,         \
                         Py_ssize_t r, Py_ssize_t th, Py_ssize_t tw, float *restrict V,    \
                         Py_ssize_t ld, Py_ssize_t e_stride, float *restrict plane) {      \
        Py_ssize_t pr = 2 * th + r - 1, pc = 2 * tw + r - 1, lanes = mp_wino_lanes(count); \
        Py_ssize_t rows = H < pr - ph ? H : pr - ph, cols = W < pc - pw ? W : pc - pw;     \
        int finite = 1;                                                                    \
        for (Py_ssize_t n0 = 0; n0 < count; n0 += 8) {                                     \
            Py_ssize_t valid = count - n0 < 8 ? count - n0 : 8;                            \
            for (Py_ssize_t c = 0; c < C; c++) {                                           \
                memset(plane, 0, pr * pc * 8 * sizeof(float));                             \
                for (Py_ssize_t l = 0; l < valid; l++) {                                   \
                    const float *src = x + ((n0 + l) * C + c) * H * W;                     \
                    for (Py_ssize_t k = 0; k < H * W; k++) finite &= src[k] - src[k] == 0; \
                    for (Py_ssize_t y = 0; y < rows; y++)                                  \
                        for (Py_ssize_t q = 0; q < cols; q++)                              \
                            plane[((y + ph) * pc + q + pw) * 8 + l] = src[y * W + q];      \
                }                                                                          \
                float *v = V + c * ld + n0;                                                \
                for (Py_ssize_t i = 0; i < th; i++)                                        \
                    for (Py_ssize_t j = 0; j < tw; j++) {                                  \
                        float *dst = v + (i * tw + j) * lanes;                             \
                        if (r == 3) {                                                      \
                            mp_wf8 h[4][4], d0, d1, d2, d3;                                \
                            for (int q = 0; q < 4; q++) { /* d B: over the columns */      \
                                const float *p = plane + ((2 * i + q) * pc + 2 * j) * 8;   \
                                memcpy(&d0, p, 32), memcpy(&d1, p + 8, 32);                \
                                memcpy(&d2, p + 16, 32), memcpy(&d3, p + 24, 32);          \
                                h[q][0] = d0 - d2;                                         \
                                h[q][1] = d1 + d2;                                         \
                                h[q][2] = d2 - d1;                                         \
                                h[q][3] = d1 - d3;                                         \
                            }                                                              \
                            MP_WINO_STORE_ROWS(h, dst, e_stride);                          \
                            continue;                                                      \
                        }                                                                  \
                        mp_wf8 h[6][6], d0, d1, d2, d3, d4, d5;                            \
                        for (int q = 0; q < 6; q++) { /* d B: over the columns */          \
                            const float *p = plane + ((2 * i + q) * pc + 2 * j) * 8;       \
                            memcpy(&d0, p, 32), memcpy(&d1, p + 8, 32);                    \
                            memcpy(&d2, p + 16, 32), memcpy(&d3, p + 24, 32);              \
                            memcpy(&d4, p + 32, 32), memcpy(&d5, p + 40, 32);              \
                            MP_WINO5_B(d0, d1, d2, d3, d4, d5, h[q][0], h[q][1], h[q][2],  \
                                       h[q][3], h[q][4], h[q][5]);                         \
                        }                                                                  \
                        MP_WINO5_STORE_ROWS(h, dst, e_stride);                             \
                    }                                                                      \
            }                                                                              \
        }                                                                                  \
        return finite;                                                                     \
    }

#define MP_WINO_OUTPUT_IMAGES(NAME, ATTR)                                                  \
    ATTR static int NAME(const float *restrict M, Py_ssize_t ld, Py_ssize_t e_stride,      \
                         Py_ssize_t count, Py_ssize_t O, Py_ssize_t r, Py_ssize_t th,      \
                         Py_ssize_t tw, Py_ssize_t Ho, Py_ssize_t Wo,                      \
                         const float *restrict bias, float *restrict out,                  \
                         float *restrict plane) {                                          \
        Py_ssize_t lanes = mp_wino_lanes(count), pc = 2 * tw;                              \
        /* even planes: every value of the staged plane is an output, checked as vectors */ \
        int finite = 1, even = Ho == 2 * th && Wo == 2 * tw;                               \
        for (Py_ssize_t n0 = 0; n0 < count; n0 += 8) {                                     \
            Py_ssize_t valid = count - n0 < 8 ? count - n0 : 8;                            \
            mp_wi8 ok = {-1, -1, -1, -1, -1, -1, -1, -1};                                  \
            for (Py_ssize_t o = 0; o < O; o++) {                                           \
                float b = bias ? bias[o] : 0.0f;                                           \
                for (Py_ssize_t i = 0; i < th; i++)                                        \
                    for (Py_ssize_t j = 0; j < tw; j++) {                                  \
                        mp_wf8 s[2][6], q0[2], q1[2];                                      \
                        MP_WINO_COLUMNS(s, q0, q1, M + o * ld + (i * tw + j) * lanes + n0, \
                                        e_stride, r);                                      \
                        for (int q = 0; q < 2; q++) {                                      \
                            if (bias) q0[q] += b, q1[q] += b;                              \
                            ok &= (q0[q] - q0[q] == 0) & (q1[q] - q1[q] == 0);             \
                            float *d = plane + ((2 * i + q) * pc + 2 * j) * 8;             \
                            memcpy(d, &q0[q], 32), memcpy(d + 8, &q1[q], 32);              \
                        }                                                                  \
                    }                                                                      \
                for (Py_ssize_t l = 0; l < valid; l++) {                                   \
                    float *y = out + ((n0 + l) * O + o) * Ho * Wo;                         \
                    for (Py_ssize_t r = 0; r < Ho; r++)                                    \
                        for (Py_ssize_t q = 0; q < Wo; q++)                                \
                            y[r * Wo + q] = plane[(r * pc + q) * 8 + l];                   \
                    if (!even)                                                             \
                        for (Py_ssize_t k = 0; k < Ho * Wo; k++)                           \
                            finite &= y[k] - y[k] == 0;                                    \
                }                                                                          \
            }                                                                              \
            for (Py_ssize_t l = 0; even && l < valid; l++) finite &= ok[l] != 0;           \
        }                                                                                  \
        return finite;                                                                     \
    }

MP_WINO_INPUT(mp_wino_input_portable, )
MP_WINO_OUTPUT(mp_wino_output_portable, )
MP_WINO_INPUT_IMAGES(mp_wino_input_images_portable, )
MP_WINO_OUTPUT_IMAGES(mp_wino_output_images_portable, )
#if MP_CONV_HAVE_X86_DISPATCH
MP_WINO_INPUT(mp_wino_input_avx2, MP_CONV_AVX2)
MP_WINO_OUTPUT(mp_wino_output_avx2, MP_CONV_AVX2)
MP_WINO_INPUT_IMAGES(mp_wino_input_images_avx2, MP_CONV_AVX2)
MP_WINO_OUTPUT_IMAGES(mp_wino_output_images_avx2, MP_CONV_AVX2)
#endif

static __typeof__(&mp_wino_input_portable) mp_wino_input = mp_wino_input_portable;
static __typeof__(&mp_wino_output_portable) mp_wino_output = mp_wino_output_portable;
static __typeof__(&mp_wino_input_images_portable) mp_wino_input_images =
    mp_wino_input_images_portable;
static __typeof__(&mp_wino_output_images_portable) mp_wino_output_images =
    mp_wino_output_images_portable;

/* The transforms' build follows the tiles' (conv2d.use_cpu_avx2): the same bits. */
static inline int mp_pick_conv_winograd(int allow) {
    int avx2 = mp_conv_cpu_avx2(allow);
    MP_CONV_PICK(avx2, mp_wino_input);
    MP_CONV_PICK(avx2, mp_wino_output);
    MP_CONV_PICK(avx2, mp_wino_input_images);
    MP_CONV_PICK(avx2, mp_wino_output_images);
    return avx2;
}

/* M[e] = U[e] V[e] for the e (16 or 36: MP_WINO_E(r)), on the tiles for any taps
 * (mp_conv_product_any_f: AVX2 or portable, as picked for the tiles). */
static void mp_wino_products(const float *U, Py_ssize_t O, Py_ssize_t C, Py_ssize_t r,
                             const float *V, Py_ssize_t v_stride, Py_ssize_t T, Py_ssize_t ld,
                             float *M, Py_ssize_t m_stride) {
    static const Py_ssize_t no_offset = 0;
    for (Py_ssize_t e = 0; e < MP_WINO_E(r); e++)
        mp_conv_product_any_f(U + e * mp_wino_packed(O, C), O, V + e * v_stride, C, ld,
                              &no_offset, 1, 1, T, 0, M + e * m_stride, ld, 0);
}
#endif
