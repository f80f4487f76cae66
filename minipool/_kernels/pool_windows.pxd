# The pieces every pooling kernel family shares (pool_extreme, pool_sum,
# pool_stochastic): element types, the window tables and the inline helpers
# that walk them.  See pool_windows.pyx for what a window table is.
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memset

from minipool._kernels._openmp cimport omp_get_thread_num

ctypedef fused pool_t:      # max/min (and unpooling) also take integer inputs, like PyTorch
    float
    double
    int32_t
    int64_t
    uint8_t

ctypedef fused floating:
    float
    double

ctypedef fused code_t:      # compact argmax storage
    uint8_t
    int32_t

ctypedef fused bits_t:      # the bits of a float32 / float64 gradient, moved as integers
    uint32_t
    uint64_t

# A kernel function whose loops gcc would otherwise inline into a large OpenMP body
# returns ``noinline_void`` (a plain C void, kept out of line): there its loop
# variables compete with the caller's for registers, and spill to the stack.
cdef extern from *:
    """
    #if defined(__GNUC__)
    #define MP_POOL_NOINLINE_VOID __attribute__((noinline)) void
    #else
    #define MP_POOL_NOINLINE_VOID void
    #endif
    """
    ctypedef void noinline_void "MP_POOL_NOINLINE_VOID"

cdef enum:
    NO_CELL_U8 = 255        # uint8 code of a window with no real cell
    FAST_NONE = 0
    FAST_2X2 = 1            # kernel 2, stride 2, no padding, dilation 1 (H and W)
    FAST_3X3 = 2            # kernel 3, stride 2, padding 1, dilation 1 (H and W)
    CHUNK = 256             # outputs (row passes) or channels (NHWC) buffered on the stack
    MIN_ROW_PASS = 4        # shorter spans run the scalar loop (same results, less overhead)
    MAX_GROUP = 16          # planes walked side by side when each has few, large windows

# Which loop nest a kernel entry runs.  Python decides it once per geometry
# (``PoolPlan.forward_path`` / ``backward_path``, the same values); every
# entry switches on it, and each family's module docstring maps path to function.
cpdef enum Path:
    PATH_ROWS = 0           # NCHW planes (C == 1), one output row at a time
    PATH_CHANNELS = 1       # NHWC (C > 1), one output row at a time, runs of channels
    PATH_PLANE_GROUP = 2    # NCHW planes with few, large windows, several side by side
    PATH_QUADS_PLANE = 3    # NCHW planes whose windows are all whole 2x2 stride 2
    PATH_QUADS_CHANNELS = 4  # NHWC, the same


cdef struct Windows:
    Py_ssize_t size_in[3]
    Py_ssize_t size_out[3]
    Py_ssize_t step[3]              # dilation per axis
    const Py_ssize_t* first[3]      # first real cell of each output position, per axis
    const Py_ssize_t* count[3]      # number of real cells, per axis
    const double* divisor[3]        # divisor factor, per axis (product = window divisor)
    # Along W, outputs [span_lo, span_hi) have whole windows on a regular grid:
    # window ow starts at span_origin + ow * span_stride and has span_cells cells.
    Py_ssize_t span_lo
    Py_ssize_t span_hi
    Py_ssize_t span_origin
    Py_ssize_t span_stride
    Py_ssize_t span_cells
    Py_ssize_t max_rows             # largest count_d * count_h: scratch length per thread
    int fast                        # FAST_2X2 / FAST_3X3 apply to rows with fast_rows rows
    Py_ssize_t fast_rows
    bint whole_plane                # FAST_2X2 and every window whole: plane-level loops


cdef class WindowTables:
    cdef Windows w
    cdef object _keep           # the arrays the pointers in ``w`` point into
    cdef readonly Py_ssize_t max_rows
    cdef readonly bint whole_plane
    cdef int check_path(self, Path path, Py_ssize_t C) except -1
    cdef Py_ssize_t* row_scratch(self, int num_threads, list keep) except NULL


# ----------------------------------------------------------------------------- window walking
cdef inline Py_ssize_t _rows(const Windows* w, Py_ssize_t od, Py_ssize_t oh,
                             Py_ssize_t* rows) noexcept nogil:
    """Fill ``rows`` with the spatial offset of column 0 of every (d, h) row of
    the windows at (od, oh, *), in scan order; return how many there are."""
    cdef Py_ssize_t jd, jh, n = 0, d
    cdef Py_ssize_t nd = w.count[0][od], nh = w.count[1][oh]
    for jd in range(nd):
        d = w.first[0][od] + jd * w.step[0]
        for jh in range(nh):
            rows[n] = (d * w.size_in[1] + w.first[1][oh] + jh * w.step[1]) * w.size_in[2]
            n += 1
    return n


cdef void* thread_scratch(Py_ssize_t width, int num_threads, object dtype,
                          list keep) except NULL


cdef inline Py_ssize_t* _thread_rows(Py_ssize_t* scratch, const Windows* w) noexcept nogil:
    """This thread's room in ``WindowTables.row_scratch``."""
    return scratch + omp_get_thread_num() * w.max_rows


cdef inline Py_ssize_t _out_row(const Windows* w, Py_ssize_t od, Py_ssize_t oh) noexcept nogil:
    """Spatial offset of output (od, oh, 0)."""
    return (od * w.size_out[1] + oh) * w.size_out[2]


cdef inline double _divisor(const Windows* w, Py_ssize_t od, Py_ssize_t oh,
                            Py_ssize_t ow) noexcept nogil:
    return w.divisor[0][od] * w.divisor[1][oh] * w.divisor[2][ow]


cdef inline Py_ssize_t _cells(const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t nw,
                              Py_ssize_t sw, Py_ssize_t scale, Py_ssize_t* rel) noexcept nogil:
    """``rel[k]``: offset of the window cell with ordinal k from the window's first column,
    times ``scale`` (1: in cells; C: in elements of a (S, C) block)."""
    cdef Py_ssize_t r, j, n = 0
    for r in range(nr):
        for j in range(nw):
            rel[n] = (rows[r] + j * sw) * scale
            n += 1
    return n


cdef inline void _row_parts(const Windows* w, Py_ssize_t nr, bint enabled, Py_ssize_t* lo,
                            Py_ssize_t* hi) noexcept nogil:
    """The outputs [lo, hi) of a plane's row that take row passes (none if the
    row has no real cells or the span is too short to pay off)."""
    if enabled and nr > 0 and w.span_hi - w.span_lo >= MIN_ROW_PASS:
        lo[0] = w.span_lo
        hi[0] = w.span_hi
    else:
        lo[0] = 0
        hi[0] = 0


# One window at a time, in output order (the walk of the kernels whose loops run
# per window: stochastic, LP backward, argmax indices, plane groups):
#     cur = _before_first_window()
#     while _next_window(w, rows, &cur): ... cur.o, cur.nr rows in ``rows``, cur.w0, cur.nw
# (``cur`` is assigned, not only written through &cur, so prange makes it private.)
cdef struct WindowCursor:
    Py_ssize_t od, oh, ow   # the window's output position
    Py_ssize_t o            # its spatial output offset
    Py_ssize_t nr           # its (d, h) rows, listed in ``rows`` (-1 before the first)
    Py_ssize_t w0, nw       # its first real W column and real W cells (0 if nr is 0)


cdef inline WindowCursor _before_first_window() noexcept nogil:
    cdef WindowCursor cur
    cur.od = 0
    cur.oh = 0
    cur.ow = -1
    cur.o = -1
    cur.nr = -1
    cur.w0 = 0
    cur.nw = 0
    return cur


cdef inline bint _next_window(const Windows* w, Py_ssize_t* rows,
                              WindowCursor* cur) noexcept nogil:
    """Step ``cur`` to the next window (refilling ``rows`` when the output row
    changes); False after the last one."""
    cur.ow += 1
    if cur.ow == w.size_out[2]:
        cur.ow = 0
        cur.oh += 1
        if cur.oh == w.size_out[1]:
            cur.oh = 0
            cur.od += 1
            if cur.od == w.size_out[0]:
                return False
        cur.nr = _rows(w, cur.od, cur.oh, rows)
    elif cur.nr < 0:
        cur.nr = _rows(w, cur.od, cur.oh, rows)
    cur.o += 1                  # output offsets run in the same order
    cur.w0 = w.first[2][cur.ow]
    cur.nw = w.count[2][cur.ow] if cur.nr > 0 else 0
    return True


# ----------------------------------------------------------------------------- units of work
# The OpenMP team splits a call into units: one index b of the (B, S, C) view and
# a slice of ``unit_size`` channels (one plane for NCHW, where C == 1).
cdef struct Unit:
    Py_ssize_t b            # image (NHWC) or plane (NCHW)
    Py_ssize_t c0           # first channel of the slice
    Py_ssize_t nc           # channels in the slice


cdef inline Py_ssize_t _units(Py_ssize_t B, Py_ssize_t C, Py_ssize_t unit_size) noexcept nogil:
    return B * ((C + unit_size - 1) // unit_size) if C > 0 else 0


cdef inline Unit _unit(Py_ssize_t u, Py_ssize_t C, Py_ssize_t unit_size) noexcept nogil:
    """Unit number u of a call (numbered b-major, as ``_units`` counts them)."""
    cdef Unit unit
    cdef Py_ssize_t slices = (C + unit_size - 1) // unit_size
    unit.b = u // slices
    unit.c0 = (u % slices) * unit_size
    unit.nc = min(unit_size, C - unit.c0)
    return unit


cdef inline void _zero_unit(floating* grad_in, Py_ssize_t S, Py_ssize_t C, Py_ssize_t c0,
                             Py_ssize_t nc) noexcept nogil:
    cdef Py_ssize_t s
    if nc == C:
        memset(grad_in, 0, S * C * sizeof(floating))
    else:
        for s in range(S):
            memset(grad_in + s * C + c0, 0, nc * sizeof(floating))
