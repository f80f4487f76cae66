/* conv2d's weight gradient as outer products that skip the padding (see
 * conv2d.pyx, "weight gradient by outer products"), in C so that it can be
 * compiled twice, for baseline x86-64 and for CPUs with AVX2, picked once at
 * import (as conv2d_tiles.h).  For one group of `channels` input channels and
 * O output channels, over `images` consecutive images:
 *
 *   out[(c*kh*kw + ki*kw + kj)*ldo + o] (+)= sum over images i and output
 *       pixels (oh, ow) whose tap (ki, kj) lies inside the input of
 *       g[i][o][oh][ow] * x[i][c][oh*sh + ki*dh - ph][ow*sw + kj*dw - pw]
 *
 * Products with a tap in the padding are not computed: on 4x4 planes they are
 * 31% (3x3, padding 1) and 51% (5x5, padding 2) of an im2col GEMM's.  Such a
 * product is 0 * g, so leaving it out changes nothing while g is finite: the
 * product returns whether g was (checked while laying it out), and the caller
 * uses its result only then (an inf or NaN in g makes those products NaN, as in
 * the loop reference).
 *
 * Every output is ONE running sum, each step a fused multiply-add, over the
 * images in order, within an image the output pixels row by row (only those
 * whose tap lies inside), starting from 0 or, with `accumulate`, from the
 * value in out: the bits depend on the shape alone (a vector lane is one
 * output channel computed on its own: not on the tile, the build or the
 * thread count).
 *
 * The tile is 6 input channels (one tap: they share the pixels inside) by a
 * panel of 16 output channels (8 in double): per pixel, the panel's gradient
 * row is 2 AVX vectors (loaded) and each channel's input value is broadcast
 * into 2 fma (12 sums in registers, 8 loads per 12 fma).  The output gradient
 * is first laid out pixel-major per panel (`work`), a block of pixels at a
 * time (whole images, or rows of one image) so that a panel stays in L1.
 *
 * Needs Python.h (for Py_ssize_t) and <string.h>, included before this file by
 * Cython's generated C. */
#ifndef MINIPOOL_CONV2D_WGRAD_OUTER_H
#define MINIPOOL_CONV2D_WGRAD_OUTER_H
#include <string.h>
#include "conv2d_tiles.h" /* the vectors, their fma and the CPU choice (MP_CONV_PICK) */

#define MP_WGO_MR 6          /* input channels per tile */
#define MP_WGO_PANEL_BYTES 64 /* output channels per panel: 16 floats, 8 doubles */
#define MP_WGO_BLOCK 256     /* pixels per block (unless one output row is longer) */
#define MP_WGO_PACK 3072      /* values of a tile's planes packed side by side */

/* `valid` values of a tile row between registers and out: a constant-size copy
 * (moves, inlined) when all `full` lanes are valid, else a memcpy call */
#define MP_WGO_COPY(T, dst, src, valid, full)                                                  \
    do {                                                                                    \
        if ((valid) == (full)) memcpy(dst, src, (full) * sizeof(T));                        \
        else memcpy(dst, src, (valid) * sizeof(T));                                         \
    } while (0)

/* the call's geometry (the input planes, the output planes, the kernel) */
typedef struct {
    Py_ssize_t H, W, Ho, Wo, kh, kw, sh, sw, ph, pw, dh, dw;
} mp_wgo_geometry;

/* Output indices o in [lo, hi) with 0 <= o*stride + offset < size */
static inline void mp_wgo_inside(Py_ssize_t count, Py_ssize_t stride, Py_ssize_t offset,
                                 Py_ssize_t size, Py_ssize_t *lo, Py_ssize_t *hi) {
    Py_ssize_t first = offset < 0 ? (-offset + stride - 1) / stride : 0;
    Py_ssize_t last = size - 1 - offset; /* o*stride <= last */
    *hi = last < 0 ? 0 : (last / stride + 1 < count ? last / stride + 1 : count);
    *lo = first < count ? first : count;
    if (*hi < *lo) *hi = *lo;
}

/* The elements of `work` the product needs for O output channels and rows of
 * Wo pixels (a block of pixels, panel by panel). */
static inline Py_ssize_t mp_wgrad_outer_work(Py_ssize_t O, Py_ssize_t Wo, Py_ssize_t elem_size) {
    Py_ssize_t panel = MP_WGO_PANEL_BYTES / elem_size;
    return (O + panel - 1) / panel * panel * (Wo > MP_WGO_BLOCK ? Wo : MP_WGO_BLOCK);
}

/* The channels of the next tile when `left` remain: 6, or 4 where 6 would leave
 * a tile of 1 or 2 (4 x 2 vectors still hide the fma latency; 32 = 6+6+6+6+4+4) */
static inline int mp_wgo_rows(Py_ssize_t left) {
    return left == 7 || left == 8 ? 4 : left < MP_WGO_MR ? (int)left : MP_WGO_MR;
}

/* A panel of `rows` <= PANEL rows of G (row stride ld) over `pixels` pixels laid
 * out pixel-major: d[j*PANEL + o] = g[o*ld + j], zeros for o >= rows; returns
 * whether those values are all finite (the caller's check, in the pass that reads
 * G anyway: a pass of its own was 7% of 16->16 on 32x32). */
#define MP_WGO_LAYOUT(T, NAME)                                                              \
    static inline int NAME(const T *restrict g, Py_ssize_t ld, Py_ssize_t rows,             \
                           Py_ssize_t pixels, T *restrict d) {                              \
        enum { PANEL = MP_WGO_PANEL_BYTES / sizeof(T) };                                    \
        int finite = 1;                                                                     \
        for (Py_ssize_t j = 0; j < pixels; j++)                                             \
            for (Py_ssize_t o = 0; o < PANEL; o++) {                                        \
                T value = o < rows ? g[o * ld + j] : 0;                                     \
                finite &= value - value == 0; /* inf - inf and NaN - NaN are NaN */         \
                d[j * PANEL + o] = value;                                                   \
            }                                                                               \
        return finite;                                                                      \
    }
MP_WGO_LAYOUT(float, mp_wgo_layout_f)
MP_WGO_LAYOUT(double, mp_wgo_layout_d)

/* One tile: MR channels (plane apart from x) by `valid` output channels of a
 * panel (NV vectors read, only `valid` lanes stored), over the pixels of
 * `images` images (x_image / g_image apart) of `rows` rows (x_row / g_row
 * apart) of `cols` pixels (x_col / PANEL apart). */
#define MP_WGO_TILE(T, V, NAME, MADD, ATTR)                                                 \
    ATTR static inline __attribute__((always_inline)) void NAME(                            \
        const T *restrict x, Py_ssize_t plane, Py_ssize_t x_image, Py_ssize_t x_row,        \
        Py_ssize_t x_col, const T *restrict g, Py_ssize_t g_image, Py_ssize_t g_row,        \
        Py_ssize_t images, Py_ssize_t rows, Py_ssize_t cols, T *restrict out,               \
        Py_ssize_t ldo, Py_ssize_t valid, int resume, const int MR, const int NV) {         \
        enum { VL = sizeof(V) / sizeof(T), PANEL = MP_WGO_PANEL_BYTES / sizeof(T) };        \
        V acc[MP_WGO_MR][MP_WGO_PANEL_BYTES / 16];                                   \
        for (int r = 0; r < MR; r++)                                                        \
            for (int v = 0; v < NV; v++) acc[r][v] = (V){0};                                \
        if (resume)                                                                         \
            for (int r = 0; r < MR; r++) MP_WGO_COPY(T, acc[r], out + r * ldo, valid, NV * VL); \
        for (Py_ssize_t i = 0; i < images; i++)                                             \
            for (Py_ssize_t h = 0; h < rows; h++) {                                         \
                const T *xs = x + i * x_image + h * x_row;                                  \
                const T *gs = g + i * g_image + h * g_row;                                  \
                for (Py_ssize_t q = 0; q < cols; q++, xs += x_col, gs += PANEL) {           \
                    V gv[MP_WGO_PANEL_BYTES / 16];                                   \
                    for (int v = 0; v < NV; v++) memcpy(&gv[v], gs + v * VL, sizeof(V));    \
                    for (int r = 0; r < MR; r++) {                                          \
                        const T xr = xs[r * plane];                                         \
                        for (int v = 0; v < NV; v++) acc[r][v] = MADD(gv[v], xr, acc[r][v]); \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        for (int r = 0; r < MR; r++) MP_WGO_COPY(T, out + r * ldo, acc[r], valid, NV * VL);    \
    }

/* A tile of MRC <= 3 channels by NT taps of one kernel row (MRC*NT <= 6 rows: a
 * first layer's 1-3 channels alone would leave the fma latency exposed), over
 * `images` images of `rows` rows; x: the row's column 0 (channel c at c*plane, tap
 * t's pixel q at q*sw + w_off + t*dw); g: the block's row, pixel q at q*PANEL.
 * Tap t sums pixels [lo[t], hi[t]) of each row: the pixels where only some taps lie
 * inside one tap at a time, those all share in one pass, so every output still adds
 * its pixels in increasing order (the one-tap tile's bits).  Row (c, t) goes to
 * out + c*ldo_c + t*ldo_t. */
#define MP_WGO_TAPS_TILE(T, V, NAME, MADD, ATTR)                                            \
    ATTR static inline __attribute__((always_inline)) void NAME(                            \
        const T *restrict x, Py_ssize_t plane, Py_ssize_t x_image, Py_ssize_t x_row,        \
        Py_ssize_t sw, Py_ssize_t w_off, Py_ssize_t dw, const T *restrict g,                \
        Py_ssize_t g_image, Py_ssize_t g_row, Py_ssize_t images, Py_ssize_t rows,           \
        const Py_ssize_t *lo, const Py_ssize_t *hi, T *restrict out, Py_ssize_t ldo_c,      \
        Py_ssize_t ldo_t, Py_ssize_t valid, int resume, const int MRC, const int NT,        \
        const int NV) {                                                                     \
        enum { VL = sizeof(V) / sizeof(T), PANEL = MP_WGO_PANEL_BYTES / sizeof(T) };        \
        V acc[MP_WGO_MR][MP_WGO_PANEL_BYTES / 16];                                          \
        Py_ssize_t first = lo[0], last = hi[0], all_lo = lo[0], all_hi = hi[0];             \
        for (int t = 1; t < NT; t++) {                                                      \
            first = lo[t] < first ? lo[t] : first;                                          \
            last = hi[t] > last ? hi[t] : last;                                             \
            all_lo = lo[t] > all_lo ? lo[t] : all_lo;                                       \
            all_hi = hi[t] < all_hi ? hi[t] : all_hi;                                       \
        }                                                                                   \
        if (all_hi < all_lo) all_hi = all_lo;                                               \
        for (int r = 0; r < MRC * NT; r++)                                                  \
            for (int v = 0; v < NV; v++) acc[r][v] = (V){0};                                \
        if (resume)                                                                         \
            for (int t = 0; t < NT; t++)                                                    \
                for (int c = 0; c < MRC; c++)                                               \
                    MP_WGO_COPY(T, acc[t * MRC + c], out + c * ldo_c + t * ldo_t, valid, NV * VL); \
        for (Py_ssize_t i = 0; i < images; i++)                                             \
            for (Py_ssize_t h = 0; h < rows; h++) {                                         \
                const T *xs = x + i * x_image + h * x_row + w_off;                          \
                const T *gs = g + i * g_image + h * g_row;                                  \
                for (Py_ssize_t q = first; q < last; q++) {                                 \
                    V gv[MP_WGO_PANEL_BYTES / 16];                                          \
                    if (q == all_lo) /* every tap inside */                                 \
                        for (; q < all_hi; q++) {                                           \
                            for (int v = 0; v < NV; v++)                                    \
                                memcpy(&gv[v], gs + q * PANEL + v * VL, sizeof(V));         \
                            for (int t = 0; t < NT; t++)                                    \
                                for (int c = 0; c < MRC; c++) {                             \
                                    const T xr = xs[c * plane + q * sw + t * dw];           \
                                    for (int v = 0; v < NV; v++)                            \
                                        acc[t * MRC + c][v] =                               \
                                            MADD(gv[v], xr, acc[t * MRC + c][v]);           \
                                }                                                           \
                        }                                                                   \
                    if (q >= last) break;                                                   \
                    for (int v = 0; v < NV; v++) memcpy(&gv[v], gs + q * PANEL + v * VL, sizeof(V)); \
                    for (int t = 0; t < NT; t++)                                            \
                        if (lo[t] <= q && q < hi[t])                                        \
                            for (int c = 0; c < MRC; c++) {                                 \
                                const T xr = xs[c * plane + q * sw + t * dw];               \
                                for (int v = 0; v < NV; v++)                                \
                                    acc[t * MRC + c][v] = MADD(gv[v], xr, acc[t * MRC + c][v]); \
                            }                                                               \
                }                                                                           \
            }                                                                               \
        for (int t = 0; t < NT; t++)                                                        \
            for (int c = 0; c < MRC; c++)                                                   \
                MP_WGO_COPY(T, out + c * ldo_c + t * ldo_t, acc[t * MRC + c], valid, NV * VL); \
    }

/* The taps tile for (mrc, nt), mrc*nt <= 6 and nt >= 2, and `nv` vectors */
#define MP_WGO_TAPS_NV(TILE, mrc, nt, nv, ...)                                              \
    switch (nv) {                                                                           \
    case 4: TILE(__VA_ARGS__, mrc, nt, 4); break;                                           \
    case 3: TILE(__VA_ARGS__, mrc, nt, 3); break;                                           \
    case 2: TILE(__VA_ARGS__, mrc, nt, 2); break;                                           \
    default: TILE(__VA_ARGS__, mrc, nt, 1); break;                                          \
    }
#define MP_WGO_TAPS_CALL(TILE, mrc, nt, nv, ...)                                            \
    switch ((mrc) * 8 + (nt)) {                                                             \
    case 3 * 8 + 2: MP_WGO_TAPS_NV(TILE, 3, 2, nv, __VA_ARGS__) break;                      \
    case 2 * 8 + 3: MP_WGO_TAPS_NV(TILE, 2, 3, nv, __VA_ARGS__) break;                      \
    case 2 * 8 + 2: MP_WGO_TAPS_NV(TILE, 2, 2, nv, __VA_ARGS__) break;                      \
    case 1 * 8 + 6: MP_WGO_TAPS_NV(TILE, 1, 6, nv, __VA_ARGS__) break;                      \
    case 1 * 8 + 5: MP_WGO_TAPS_NV(TILE, 1, 5, nv, __VA_ARGS__) break;                      \
    case 1 * 8 + 4: MP_WGO_TAPS_NV(TILE, 1, 4, nv, __VA_ARGS__) break;                      \
    case 1 * 8 + 3: MP_WGO_TAPS_NV(TILE, 1, 3, nv, __VA_ARGS__) break;                      \
    default: MP_WGO_TAPS_NV(TILE, 1, 2, nv, __VA_ARGS__) break;                             \
    }

/* The tile for `mr` channels and `nv` vectors (the tile's MR and NV are constants) */
#define MP_WGO_CALL(TILE, mr, nv, ...)                                                      \
    switch ((mr) * 8 + (nv)) {                                                              \
    case 6 * 8 + 4: TILE(__VA_ARGS__, 6, 4); break;                                         \
    case 6 * 8 + 3: TILE(__VA_ARGS__, 6, 3); break;                                         \
    case 6 * 8 + 2: TILE(__VA_ARGS__, 6, 2); break;                                         \
    case 6 * 8 + 1: TILE(__VA_ARGS__, 6, 1); break;                                         \
    case 5 * 8 + 4: TILE(__VA_ARGS__, 5, 4); break;                                         \
    case 5 * 8 + 3: TILE(__VA_ARGS__, 5, 3); break;                                         \
    case 5 * 8 + 2: TILE(__VA_ARGS__, 5, 2); break;                                         \
    case 5 * 8 + 1: TILE(__VA_ARGS__, 5, 1); break;                                         \
    case 4 * 8 + 4: TILE(__VA_ARGS__, 4, 4); break;                                         \
    case 4 * 8 + 3: TILE(__VA_ARGS__, 4, 3); break;                                         \
    case 4 * 8 + 2: TILE(__VA_ARGS__, 4, 2); break;                                         \
    case 4 * 8 + 1: TILE(__VA_ARGS__, 4, 1); break;                                         \
    case 3 * 8 + 4: TILE(__VA_ARGS__, 3, 4); break;                                         \
    case 3 * 8 + 3: TILE(__VA_ARGS__, 3, 3); break;                                         \
    case 3 * 8 + 2: TILE(__VA_ARGS__, 3, 2); break;                                         \
    case 3 * 8 + 1: TILE(__VA_ARGS__, 3, 1); break;                                         \
    case 2 * 8 + 4: TILE(__VA_ARGS__, 2, 4); break;                                         \
    case 2 * 8 + 3: TILE(__VA_ARGS__, 2, 3); break;                                         \
    case 2 * 8 + 2: TILE(__VA_ARGS__, 2, 2); break;                                         \
    case 2 * 8 + 1: TILE(__VA_ARGS__, 2, 1); break;                                         \
    case 1 * 8 + 4: TILE(__VA_ARGS__, 1, 4); break;                                         \
    case 1 * 8 + 3: TILE(__VA_ARGS__, 1, 3); break;                                         \
    case 1 * 8 + 2: TILE(__VA_ARGS__, 1, 2); break;                                         \
    default: TILE(__VA_ARGS__, 1, 1); break;                                                \
    }

/* The whole product (see the top of this file).  x: the group's first channel
 * of the first image (x_image apart); g: the group's first output channel
 * (O rows of Ho*Wo, g_image apart); out: (channels*kh*kw, O), row stride ldo.
 * bias (NULL: none) (+)= the sums of g's rows, each ONE chain of adds over the
 * images in order, all their output pixels row by row.  Returns whether g's
 * values were all finite: if not, out and bias hold what the skipped products
 * would have made NaN, and the caller must not use them. */
#define MP_WGO_PRODUCT(T, V, NAME, TILE, TAPS_TILE, LAYOUT, ATTR)                           \
    ATTR static int NAME(const T *restrict x, Py_ssize_t channels, Py_ssize_t x_image,      \
                          Py_ssize_t images, const T *restrict g, Py_ssize_t g_image,       \
                          Py_ssize_t O, const mp_wgo_geometry *geo, T *restrict work,       \
                          T *restrict out, Py_ssize_t ldo, T *restrict bias,                \
                          int accumulate) {                                                 \
        enum { VL = sizeof(V) / sizeof(T), PANEL = MP_WGO_PANEL_BYTES / sizeof(T) };        \
        const Py_ssize_t H = geo->H, W = geo->W, Ho = geo->Ho, Wo = geo->Wo;                \
        const Py_ssize_t L = Ho * Wo, plane = H * W, taps = geo->kh * geo->kw;              \
        const Py_ssize_t panels = (O + PANEL - 1) / PANEL;                                  \
        /* a block: `count` whole images, or rows [r0, r1) of one image */                  \
        Py_ssize_t whole = Wo * Ho <= MP_WGO_BLOCK ? MP_WGO_BLOCK / (Wo * Ho) : 0;          \
        Py_ssize_t block_rows = whole ? Ho : (MP_WGO_BLOCK / Wo > 1 ? MP_WGO_BLOCK / Wo : 1); \
        int first = 1, finite = 1;                                                          \
        T packed[MP_WGO_PACK];                                                              \
        for (Py_ssize_t i0 = 0; i0 < images;) {                                             \
            Py_ssize_t count = whole ? (images - i0 < whole ? images - i0 : whole) : 1;     \
            for (Py_ssize_t r0 = 0; r0 < Ho; r0 += block_rows, first = 0) {                 \
                Py_ssize_t r1 = r0 + block_rows < Ho ? r0 + block_rows : Ho;                \
                Py_ssize_t pixels = (r1 - r0) * Wo, block = count * pixels;                 \
                /* the block's gradient, panel by panel, pixel-major (zeros past O) */      \
                for (Py_ssize_t p = 0; p < panels; p++)                                     \
                    for (Py_ssize_t i = 0; i < count; i++)                                  \
                        finite &= LAYOUT(g + (i0 + i) * g_image + p * PANEL * L + r0 * Wo, L, \
                               O - p * PANEL < PANEL ? O - p * PANEL : PANEL, pixels,       \
                               work + (p * block + i * pixels) * PANEL);                    \
                for (Py_ssize_t p = 0; bias && p < panels; p++) {                           \
                    Py_ssize_t valid = O - p * PANEL < PANEL ? O - p * PANEL : PANEL;       \
                    T sums[PANEL];                                                          \
                    memset(sums, 0, sizeof(sums));                                          \
                    if (accumulate || !first) memcpy(sums, bias + p * PANEL, valid * sizeof(T)); \
                    for (Py_ssize_t j = 0; j < block; j++)                                  \
                        for (int o = 0; o < PANEL; o++)                                     \
                            sums[o] = sums[o] + work[(p * block + j) * PANEL + o];          \
                    memcpy(bias + p * PANEL, sums, valid * sizeof(T));                      \
                }                                                                           \
                /* a tile's channels stay in L1 while its taps pass */                      \
                for (Py_ssize_t p = 0; p < panels; p++) {                                   \
                    Py_ssize_t valid = O - p * PANEL < PANEL ? O - p * PANEL : PANEL;       \
                    int nv = (int)((valid + VL - 1) / VL), resume = accumulate || !first;   \
                    for (Py_ssize_t c0 = 0, mr; c0 < channels; c0 += mr) {                  \
                        mr = mp_wgo_rows(channels - c0);                                    \
                        /* the tile's planes of the block's images (tx_image apart) */      \
                        const T *tx = x + i0 * x_image + c0 * plane;                        \
                        Py_ssize_t tx_image = x_image;                                      \
                        if (count > 1 && count * mr * plane <= MP_WGO_PACK) {               \
                            /* side by side: images a multiple of 4 KB apart (64+          \
                             * channels of 4x4) met in one L1 set and left it at each tap */ \
                            for (Py_ssize_t i = 0; i < count; i++)                          \
                                for (Py_ssize_t r = 0; r < mr; r++)                         \
                                    memcpy(packed + (i * mr + r) * plane,                   \
                                           tx + i * x_image + r * plane, plane * sizeof(T)); \
                            tx = packed;                                                    \
                            tx_image = mr * plane;                                          \
                        }                                                                   \
                        for (Py_ssize_t ki = 0; ki < geo->kh; ki++) {                       \
                            Py_ssize_t h_off = ki * geo->dh - geo->ph, lo_h, hi_h;          \
                            mp_wgo_inside(Ho, geo->sh, h_off, H, &lo_h, &hi_h);             \
                            lo_h = lo_h > r0 ? lo_h : r0;                                   \
                            hi_h = hi_h < r1 ? hi_h : r1;                                   \
                            if (hi_h < lo_h) hi_h = lo_h;                                   \
                            for (Py_ssize_t kj = 0, nt; kj < geo->kw; kj += nt) {           \
                                Py_ssize_t w_off = kj * geo->dw - geo->pw, lo_w, hi_w;      \
                                Py_ssize_t t = ki * geo->kw + kj;                           \
                                nt = mr > 3 ? 1 : 6 / mr < geo->kw - kj ? 6 / mr : geo->kw - kj; \
                                if (nt > 1) { /* 1-3 channels: several taps of the row */   \
                                    Py_ssize_t lo[6], hi[6];                                \
                                    for (Py_ssize_t u = 0; u < nt; u++)                     \
                                        mp_wgo_inside(Wo, geo->sw, w_off + u * geo->dw, W,  \
                                                      &lo[u], &hi[u]);                      \
                                    MP_WGO_TAPS_CALL(TAPS_TILE, mr, nt, nv,                 \
                                        tx + (lo_h * geo->sh + h_off) * W,                  \
                                        plane, tx_image, geo->sh * W, geo->sw, w_off,       \
                                        geo->dw, work + p * block * PANEL                   \
                                            + (lo_h - r0) * Wo * PANEL,                     \
                                        pixels * PANEL, Wo * PANEL, count, hi_h - lo_h, lo, \
                                        hi, out + (c0 * taps + t) * ldo + p * PANEL,        \
                                        taps * ldo, ldo, valid, resume)                     \
                                    continue;                                               \
                                }                                                           \
                                mp_wgo_inside(Wo, geo->sw, w_off, W, &lo_w, &hi_w);         \
                                /* the first inside pixel, in x and in the block */         \
                                const T *x0 = tx                                            \
                                              + (lo_h * geo->sh + h_off) * W                \
                                              + lo_w * geo->sw + w_off;                     \
                                const T *g0 = work + p * block * PANEL                      \
                                              + ((lo_h - r0) * Wo + lo_w) * PANEL;          \
                                MP_WGO_CALL(TILE, mr, nv, x0, plane, tx_image, geo->sh * W, \
                                            geo->sw, g0, pixels * PANEL, Wo * PANEL, count, \
                                            hi_h - lo_h, hi_w - lo_w,                       \
                                            out + (c0 * taps + t) * ldo + p * PANEL,        \
                                            taps * ldo, valid, resume)                      \
                            }                                                               \
                        }                                                                   \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
            i0 += count;                                                                    \
        }                                                                                   \
        return finite;                                                                      \
    }

#define MP_WGO_PORTABLE
MP_WGO_TILE(float, mp_vf16, mp_wgo_tile_f_portable, mp_madd_f16, MP_WGO_PORTABLE)
MP_WGO_TAPS_TILE(float, mp_vf16, mp_wgo_taps_f_portable, mp_madd_f16, MP_WGO_PORTABLE)
MP_WGO_TILE(double, mp_vd16, mp_wgo_tile_d_portable, mp_madd_d16, MP_WGO_PORTABLE)
MP_WGO_TAPS_TILE(double, mp_vd16, mp_wgo_taps_d_portable, mp_madd_d16, MP_WGO_PORTABLE)
MP_WGO_PRODUCT(float, mp_vf16, mp_wgrad_outer_f_portable, mp_wgo_tile_f_portable, mp_wgo_taps_f_portable,
               mp_wgo_layout_f,
               MP_WGO_PORTABLE)
MP_WGO_PRODUCT(double, mp_vd16, mp_wgrad_outer_d_portable, mp_wgo_tile_d_portable, mp_wgo_taps_d_portable,
               mp_wgo_layout_d,
               MP_WGO_PORTABLE)

#if MP_CONV_HAVE_X86_DISPATCH
MP_WGO_TILE(float, mp_vf32, mp_wgo_tile_f_avx2, mp_madd_f32, MP_CONV_AVX2)
MP_WGO_TAPS_TILE(float, mp_vf32, mp_wgo_taps_f_avx2, mp_madd_f32, MP_CONV_AVX2)
MP_WGO_TILE(double, mp_vd32, mp_wgo_tile_d_avx2, mp_madd_d32, MP_CONV_AVX2)
MP_WGO_TAPS_TILE(double, mp_vd32, mp_wgo_taps_d_avx2, mp_madd_d32, MP_CONV_AVX2)
/* The float layout 8 pixels x 8 rows at a time: an 8x8 transpose in registers
 * (the plain loop moved one float per cycle or so: 10-20% of a 16x16 plane's time) */
MP_CONV_AVX2 static inline int mp_wgo_layout_f_avx2(const float *restrict g, Py_ssize_t ld,
                                                    Py_ssize_t rows, Py_ssize_t pixels,
                                                    float *restrict d) {
    enum { PANEL = MP_WGO_PANEL_BYTES / sizeof(float) };
    Py_ssize_t j = 0;
    __m256 nonfinite = _mm256_setzero_ps(); /* ORs of v - v: 0, or NaN bits at inf/NaN */
    for (; j + 8 <= pixels; j += 8)
        for (int o0 = 0; o0 < PANEL; o0 += 8) {
            __m256 r[8];
            for (int o = 0; o < 8; o++) {
                r[o] = o0 + o < rows ? _mm256_loadu_ps(g + (o0 + o) * ld + j) : _mm256_setzero_ps();
                nonfinite = _mm256_or_ps(nonfinite, _mm256_sub_ps(r[o], r[o]));
            }
            mp_transpose8_ps(r); /* r[q]: pixel j + q's 8 rows */
            for (int q = 0; q < 8; q++) _mm256_storeu_ps(d + (j + q) * PANEL + o0, r[q]);
        }
    int finite = mp_wgo_layout_f(g + j, ld, rows, pixels - j, d + j * PANEL);
    return finite && !_mm256_movemask_ps(_mm256_cmp_ps(nonfinite, nonfinite, _CMP_UNORD_Q));
}
MP_WGO_PRODUCT(float, mp_vf32, mp_wgrad_outer_f_avx2, mp_wgo_tile_f_avx2, mp_wgo_taps_f_avx2,
               mp_wgo_layout_f_avx2,
               MP_CONV_AVX2)
MP_WGO_PRODUCT(double, mp_vd32, mp_wgrad_outer_d_avx2, mp_wgo_tile_d_avx2, mp_wgo_taps_d_avx2,
               mp_wgo_layout_d,
               MP_CONV_AVX2)
#endif

/* mp_wgrad_outer_f/_d and mp_pick_wgrad_outer, as the tiles' (conv2d_tiles.h) */
MP_CONV_ENGINE(mp_wgrad_outer, mp_pick_wgrad_outer)
#define mp_wgrad_outer(x, ...) \
    MP_FLOAT_OR_DOUBLE(x, mp_wgrad_outer_f, mp_wgrad_outer_d)(x, __VA_ARGS__)
#endif
