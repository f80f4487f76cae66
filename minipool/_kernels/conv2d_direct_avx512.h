/* The direct kernel's float32 tile on AVX-512 registers (conv2d_direct.h, included
 * from there inside its x86 block): the same packed weight, pixel groups and sums,
 * only wider registers.  A zmm holds one packed block of 16 output channels; a
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
                                          put, n, bk, out, out_channel, rows, 0, 1, 12);
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

/* mp_direct_strided_f's AVX-512 build: its tiles where mp_direct_avx512_wins, AVX2's
 * elsewhere.  Itself an AVX2 function: the AVX2 kernel inlined into an AVX-512 one
 * would be compiled anew for AVX-512 (not what was measured). */
MP_CONV_AVX2 static void mp_direct_strided_f_avx512(MP_DIRECT_STRIDED_PARAMS(float)) {
    (mp_direct_avx512_wins(O, taps, L) ? mp_direct_strided_f_avx512_tiles
                                       : mp_direct_strided_f_avx2)(MP_DIRECT_STRIDED_ARGS);
}
#endif
