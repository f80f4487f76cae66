/* The package's one CPU test: the kernels that carry a second build of their loops
 * for AVX2 + FMA (antialias_loops.h, conv2d_tiles.h and the conv engines that include
 * it) ask here, once, whether to use it.  Both builds give the same bits (fma is
 * correctly rounded whichever unit computes it), so the test only picks a speed.
 *
 * MP_CPU_X86_DISPATCH is 1 where a function can be compiled for AVX2 + FMA with
 * __attribute__((target("avx2,fma"))) (GCC or Clang on x86-64), else 0.  The register
 * helpers those builds share (8x8 transposes) live here too. */
#ifndef MINIPOOL_CPU_FEATURES_H
#define MINIPOOL_CPU_FEATURES_H

#if defined(__GNUC__) && defined(__x86_64__)
#define MP_CPU_X86_DISPATCH 1
#else
#define MP_CPU_X86_DISPATCH 0
#endif

/* 1 when `allow` and the CPU has AVX2 and FMA, else 0.  The kernels' use_cpu_* switches
 * pass allow = 0 to force the portable build (the tests compare the two builds' bits). */
static inline int mp_cpu_avx2_fma(int allow) {
#if MP_CPU_X86_DISPATCH
    __builtin_cpu_init();
    return allow && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    (void)allow;
    return 0;
#endif
}

#if MP_CPU_X86_DISPATCH
#include <immintrin.h>
/* r[p] (row p's 8 floats, p < 8) transposed by halves: column k < 4 has its rows 0-3 in
 * the low half of s[k], 4-7 in the low half of s[k + 4]; column k + 4 the high halves
 * (for stores that take a column's floats from them: no cross-lane permute). */
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
mp_transpose8_halves_ps(const __m256 r[8], __m256 s[8]) {
    __m256 t[8];
    for (int p = 0; p < 8; p += 2) {
        t[p] = _mm256_unpacklo_ps(r[p], r[p + 1]);
        t[p + 1] = _mm256_unpackhi_ps(r[p], r[p + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        s[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
        s[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
        s[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
        s[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
    }
}

/* Rows r[0..7] of 8 floats transposed in place, r[i][j] -> r[j][i]. */
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
mp_transpose8_ps(__m256 r[8]) {
    __m256 s[8];
    mp_transpose8_halves_ps(r, s);
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
    }
}
#endif
#endif
