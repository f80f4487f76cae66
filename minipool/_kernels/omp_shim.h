/* The one place OpenMP's runtime is touched.  Without OpenMP the same names
 * resolve to serial stand-ins, so the kernels compile and give identical
 * results on one thread. */
#ifndef MINIPOOL_OMP_SHIM_H
#define MINIPOOL_OMP_SHIM_H
#ifdef _OPENMP
#include <omp.h>
#define MINIPOOL_HAVE_OPENMP 1
#else
#define MINIPOOL_HAVE_OPENMP 0
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_procs(void) { return 1; }
#endif
#endif
