/* The package's one CPU test: the kernels that carry a second build of their loops
 * for AVX2 + FMA (antialias_loops.h, conv2d_tiles.h and the conv engines that include
 * it) ask here, once, whether to use it.  Both builds give the same bits (fma is
 * correctly rounded whichever unit computes it), so the test only picks a speed.
 *
 * MP_CPU_X86_DISPATCH is 1 where a function can be compiled for AVX2 + FMA with
 * __attribute__((target("avx2,fma"))) (GCC or Clang on x86-64), else 0. */
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
#endif
