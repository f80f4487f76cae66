# The load-tolerant team (load_team.h): the caller returns when every claimed
# chunk is done, without waiting for a descheduled thread to check in.
from libc.stdint cimport uint64_t

cdef extern from "load_team.h" nogil:
    ctypedef void (*mp_chunk_fn)(void* context, Py_ssize_t chunk, int worker) noexcept nogil
    void mp_team_run(mp_chunk_fn fn, void* context, Py_ssize_t chunks, int threads)
    int mp_team_helpers()
    void mp_team_set_helper_delay_us(long delay)
    void mp_team_take_stats(uint64_t* out)
    void mp_team_set_pull_after_ns(long ns, int place)
