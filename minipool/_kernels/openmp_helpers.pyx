"""What the OpenMP runtime offers, and a parallel self-test of the build."""
from cython.parallel cimport prange

from minipool._kernels._openmp cimport (
    MINIPOOL_HAVE_OPENMP, omp_get_max_threads, omp_get_num_procs, omp_get_thread_num)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(MINIPOOL_HAVE_OPENMP)


def runtime_max_threads():
    """The OpenMP runtime's default team size (1 without OpenMP)."""
    return omp_get_max_threads()


def num_procs():
    return omp_get_num_procs()


def threads_used(int num_threads):
    """Run a parallel loop on ``num_threads`` and count the distinct threads
    that took part: proves prange, nogil and the OpenMP link work end to end."""
    cdef int i, n = max(num_threads, 1) * 64
    cdef int seen[256]
    cdef int total = 0
    for i in range(256):
        seen[i] = 0
    for i in prange(n, nogil=True, num_threads=num_threads, schedule="static"):
        seen[omp_get_thread_num() % 256] = 1
    for i in range(256):
        total += seen[i]
    return total
