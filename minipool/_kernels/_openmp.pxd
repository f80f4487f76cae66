# OpenMP runtime queries, cimported by kernels that need them.  They come from
# omp_shim.h so a build without OpenMP still compiles (serial stand-ins).
cdef extern from "omp_shim.h" nogil:
    int MINIPOOL_HAVE_OPENMP
    int omp_get_max_threads()
    int omp_get_thread_num()
    int omp_get_num_procs()
