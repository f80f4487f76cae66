# The load-tolerant team (load_team.h): the caller returns when every claimed
# chunk is done, without waiting for a descheduled thread to check in.
from cython.parallel cimport prange, threadid
from libc.stdint cimport uint64_t

cdef extern from "load_team.h" nogil:
    ctypedef void (*mp_chunk_fn)(void* context, Py_ssize_t chunk, int worker) noexcept nogil
    void mp_team_run(mp_chunk_fn fn, void* context, Py_ssize_t chunks, int threads)
    int mp_team_helpers()
    void mp_team_set_helper_delay_us(long delay)
    void mp_team_take_stats(uint64_t* out)
    void mp_team_set_pull_after_ns(long ns, int place)


cdef inline void _launch(mp_chunk_fn chunk, void* context, Py_ssize_t chunks, int num_threads,
                         bint load_team) noexcept nogil:
    """Run ``chunk`` for each of ``chunks``: inline on one thread, on the load-tolerant
    team, or in an OpenMP region (dynamic: it moves whole chunks between threads, so
    the bits do not change)."""
    cdef Py_ssize_t c
    if num_threads <= 1 or chunks <= 1:
        for c in range(chunks):
            chunk(context, c, 0)
    elif load_team:
        mp_team_run(chunk, context, chunks, num_threads)
    else:
        for c in prange(chunks, schedule="dynamic", num_threads=num_threads):
            chunk(context, c, threadid())
