"""Pooling kernels: max/min, avg/sum/LP, stochastic and unpooling, forward and backward.

Every pooling kind walks the same thing: *windows*.  Python builds, once per
call geometry, per-axis tables (``WindowTables``): for each output position
along an axis, the first real (in-bounds) input cell, the number of real
cells (stepping by the dilation) and the divisor factor.  A window is the
product of its three axes' cell lists, scanned row-major (d, h, w).  1-d and
2-d pooling are 3-d pooling with size-1 axes; adaptive and global pooling are
just other tables.  For one output row (od, oh) the (d, h) rows of its
windows are the same for every ow, so ``_rows`` lists them once per row.

Layout.  Every kernel sees its input as ``(B, S, C)``: B independent blocks,
S = D*H*W spatial cells, C channels innermost.  Channels-last data (NHWC) is
that layout as is: each window is walked once and the inner loops run over
contiguous channels (the compiler vectorises them).  Channels-first data
(NCHW) is B = N*C planes with C = 1; there the inner loops run along an
output row instead ("row passes"): for the outputs whose windows are whole
along W and lie on a regular grid, each window cell is visited for all of
them at once.  Two shapes that dominate real networks (2x2 stride 2; 3x3
stride 2 padding 1) have fully unrolled row passes, and a plane whose
windows are all whole 2x2 stride 2 is done in plane-level loops with no
per-row bookkeeping.  Border windows go through a scalar loop.  Planes with
a few large windows (global pooling) are walked several side by side.
Every path visits a window's cells in scan order and accumulates from 0 in
that order (sums of windows with more than SCAN_SUM_MAX cells go to LANES
partial sums by cell ordinal, see _window_sum), so all paths and both
layouts give bit-identical results.

Parallelism.  The OpenMP team splits the work into *units*: one block b and
a slice of channels (NHWC) or one plane (NCHW).  A unit owns every output
and every gradient cell of its slice, so backward scatters are plain ``+=``
without atomics and the result is bit-identical for any thread count.

Argmax storage ("codes").  Max/min/stochastic forward store, per output, which
cell won: a uint8 *ordinal* among the window's real cells in scan order when
every window has at most 255 cells (255 marks "no cell"), else the int32
offset in the plane (-1 marks "no cell").  ``codes_to_indices`` turns them
into PyTorch's int64 plane indices only when a caller asks for indices.
"""
from cython.parallel cimport prange
from libc.math cimport INFINITY, pow, sqrt
from libc.stdint cimport (INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, int32_t, int64_t,
                          uint8_t, uint32_t, uint64_t)
from libc.string cimport memcpy, memset

from minipool._kernels._openmp cimport omp_get_thread_num

import numpy as np

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

cdef enum:
    NO_CELL_U8 = 255        # uint8 code of a window with no real cell
    FAST_NONE = 0
    FAST_2X2 = 1            # kernel 2, stride 2, no padding, dilation 1 (H and W)
    FAST_3X3 = 2            # kernel 3, stride 2, padding 1, dilation 1 (H and W)
    POWER_GENERAL = 0       # LP pooling with any p: pow(x, p) and pow(s, 1/p)
    POWER_ONE = 1           # plain sums (avg, sum, LP with p = 1)
    POWER_TWO = 2           # x*x and sqrt
    CHUNK = 256             # outputs (row passes) or channels (NHWC) buffered on the stack
    MIN_ROW_PASS = 4        # shorter spans run the scalar loop (same results, less overhead)
    PLAIN_MIN = 16          # fewest channels for _window_max_plain (same results either way)
    MAX_GROUP = 16          # planes walked side by side when each has few, large windows
    SCAN_SUM_MAX = 64       # windows up to this many cells are summed in scan order,
    LANES = 16              # larger ones in LANES partial sums (see _window_sum)
    LANE_CHUNK = 64         # channels per lane buffer (NHWC sums of large windows)
    LANE_GAP = 8            # padding between lane buffers: 64 channels of float32 would
                            # put 16 lanes exactly 4 KiB apart, in step with the input's
                            # cells (4K aliasing: loads stall on unrelated stores)

NO_CELL_CODE = NO_CELL_U8
# the summation order's two numbers, for the tests that re-derive the order (see _window_sum)
SCAN_SUM_MAX_CELLS = SCAN_SUM_MAX
SUM_LANES = LANES


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
    """The per-axis window tables of one call geometry, in the form the kernels read.

    ``first``, ``count`` (intp) and ``divisor`` (float64) are three arrays each
    (axes d, h, w) of that axis's output length.  ``span`` is the W-axis
    regular span ``(lo, hi, origin, stride, cells)`` (``lo == hi`` if none);
    ``fast`` is 0, 1 (2x2 stride 2) or 2 (3x3 stride 2 padding 1).
    """
    cdef Windows w
    cdef object _keep           # the arrays the pointers in ``w`` point into
    cdef readonly Py_ssize_t max_rows
    cdef readonly bint whole_plane

    def __init__(self, first, count, divisor, size_in, step, span, int fast):
        cdef const Py_ssize_t[::1] ints
        cdef const double[::1] reals
        cdef int a
        keep = []
        for a in range(3):
            f = np.ascontiguousarray(first[a], dtype=np.intp)
            n = np.ascontiguousarray(count[a], dtype=np.intp)
            dv = np.ascontiguousarray(divisor[a], dtype=np.float64)
            if not (f.ndim == n.ndim == dv.ndim == 1 and f.size == n.size == dv.size >= 1):
                raise ValueError("window tables must be 1-d arrays of one non-zero length per axis")
            keep += [f, n, dv]
            ints = f
            self.w.first[a] = &ints[0]
            ints = n
            self.w.count[a] = &ints[0]
            reals = dv
            self.w.divisor[a] = &reals[0]
            self.w.size_in[a] = size_in[a]
            self.w.size_out[a] = f.size
            self.w.step[a] = step[a]
        lo, hi, origin, stride, cells = span
        if not 0 <= lo <= hi <= self.w.size_out[2]:
            raise ValueError(f"bad W span {span}")
        self.w.span_lo, self.w.span_hi = lo, hi
        self.w.span_origin, self.w.span_stride, self.w.span_cells = origin, stride, cells
        self.w.max_rows = max(1, int(np.max(keep[1])) * int(np.max(keep[4])))
        # the unrolled loops assume their exact window shape along W: else no fast path
        if fast == FAST_2X2 and (stride, cells, origin, self.w.step[2]) != (2, 2, 0, 1):
            fast = FAST_NONE
        if fast == FAST_3X3 and (stride, cells, origin, self.w.step[2]) != (2, 3, -1, 1):
            fast = FAST_NONE
        self.w.fast = fast
        self.w.fast_rows = 2 if fast == FAST_2X2 else 3
        self.w.whole_plane = (fast == FAST_2X2 and bool((keep[1] == 1).all())
                              and bool((keep[4] == 2).all()) and bool((keep[7] == 2).all())
                              and lo == 0 and hi == self.w.size_out[2])
        self.max_rows = self.w.max_rows
        self.whole_plane = self.w.whole_plane
        self._keep = keep


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


cdef inline Py_ssize_t _out_row(const Windows* w, Py_ssize_t od, Py_ssize_t oh) noexcept nogil:
    """Spatial offset of output (od, oh, 0)."""
    return (od * w.size_out[1] + oh) * w.size_out[2]


cdef inline double _divisor(const Windows* w, Py_ssize_t od, Py_ssize_t oh,
                            Py_ssize_t ow) noexcept nogil:
    return w.divisor[0][od] * w.divisor[1][oh] * w.divisor[2][ow]


cdef inline Py_ssize_t _cells(const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t nw,
                              Py_ssize_t sw, Py_ssize_t* rel) noexcept nogil:
    """``rel[k]``: offset of the window cell with ordinal k from the window's first column."""
    cdef Py_ssize_t r, j, n = 0
    for r in range(nr):
        for j in range(nw):
            rel[n] = rows[r] + j * sw
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


cdef inline Py_ssize_t _units(Py_ssize_t B, Py_ssize_t C, Py_ssize_t block) noexcept nogil:
    return B * ((C + block - 1) // block) if C > 0 else 0


def _scratch(WindowTables tables, int num_threads):
    return np.empty((max(1, num_threads), tables.max_rows), dtype=np.intp)


def _plane_scratch(WindowTables tables, Py_ssize_t plane_out, Py_ssize_t C, bint needed,
                   int num_threads):
    """Per-thread int codes of one output plane (for _extreme_plane_2x2)."""
    if needed and C == 1 and tables.whole_plane:
        return np.empty((max(1, num_threads), max(1, plane_out)), dtype=np.intc)
    return np.empty((1, 1), dtype=np.intc)


def _row_scratch(Py_ssize_t row_out, bint needed, int num_threads):
    """Per-thread int codes of one NHWC output row (for _route_quads_channels)."""
    return np.empty((max(1, num_threads), max(1, row_out) if needed else 1), dtype=np.intc)


cdef void _zero_block(floating* grad_in, Py_ssize_t S, Py_ssize_t C, Py_ssize_t c0,
                      Py_ssize_t nc) noexcept nogil:
    cdef Py_ssize_t s
    if nc == C:
        memset(grad_in, 0, S * C * sizeof(floating))
    else:
        for s in range(S):
            memset(grad_in + s * C + c0, 0, nc * sizeof(floating))


# ----------------------------------------------------------------------------- max / min
# Min pooling is max pooling in "key space": every value is mapped through an
# order-reversing bijection (x -> -x for floats, x -> ~x for integers), the
# max rule runs unchanged, and the winner is mapped back.  Both maps are exact
# and involutions, keep NaN a NaN, and keep the first of tied values first,
# so min inherits PyTorch's rules mirrored; and the loops hold one plain
# comparison, whichever the kind.

cdef inline pool_t _flip(const pool_t* type_tag, bint is_min) noexcept nogil:
    """The key-space map's parameter: a sign for floats, a bit mask for integers."""
    if pool_t is float or pool_t is double:
        return -1 if is_min else 1
    else:
        return <pool_t>(-1) if is_min else 0


cdef inline pool_t _key(pool_t v, pool_t flip) noexcept nogil:
    if pool_t is float or pool_t is double:
        return v * flip
    else:
        return v ^ flip


cdef inline pool_t _lowest(const pool_t* type_tag) noexcept nogil:
    """Where a max scan starts: -inf, or the integer type's lowest value."""
    if pool_t is float or pool_t is double:
        return -INFINITY
    elif pool_t is int32_t:
        return INT32_MIN
    elif pool_t is int64_t:
        return INT64_MIN
    else:
        return 0


cdef inline bint _beats(pool_t v, pool_t best) noexcept nogil:
    """PyTorch's rule: strictly greater (so the first tie wins) or NaN (so NaN
    propagates).  Bitwise |, not a branch, so loops become vector blends."""
    if pool_t is float or pool_t is double:
        return (v > best) | (v != v)
    else:
        return v > best


cdef inline int _first_code(const code_t* type_tag, Py_ssize_t n_cells,
                            Py_ssize_t first_cell) noexcept nogil:
    """The code a window starts with: its first cell, or "no cell"."""
    if code_t is uint8_t:
        return 0 if n_cells > 0 else NO_CELL_U8
    else:
        return <int>first_cell if n_cells > 0 else -1


cdef inline void _take(pool_t v, int code, pool_t* best, int* best_code) noexcept nogil:
    # every select picks between values already loaded: GCC does not speculate
    # a load hidden in one arm, and would leave the loop scalar
    cdef pool_t m = best[0]
    cdef int k = best_code[0]
    cdef bint better = _beats(v, m)
    best[0] = v if better else m
    best_code[0] = code if better else k


cdef inline void _extreme_pass(const pool_t* xs, Py_ssize_t stride, pool_t flip, pool_t* acc,
                               int* codes, int cell, Py_ssize_t n) noexcept nogil:
    """One cell of n windows: keys acc[i] vs xs[i * stride]; codes (if any) get
    ``cell`` where it wins.  Codes are ints so the vector blends stay 32-bit."""
    cdef Py_ssize_t i
    cdef pool_t v, m
    cdef int k
    cdef bint better
    if codes == NULL:
        for i in range(n):
            v = _key(xs[i * stride], flip)
            m = acc[i]
            acc[i] = v if _beats(v, m) else m
    else:
        for i in range(n):
            v = _key(xs[i * stride], flip)
            m = acc[i]
            k = codes[i]
            better = _beats(v, m)
            acc[i] = v if better else m
            codes[i] = cell if better else k


cdef inline void _extreme_pass_strided(const pool_t* xs, Py_ssize_t stride, pool_t flip,
                                       pool_t* acc, int* codes, int cell,
                                       Py_ssize_t n) noexcept nogil:
    """_extreme_pass with the common strides spelled out, so each call is compiled
    for a constant stride."""
    if stride == 1:
        _extreme_pass(xs, 1, flip, acc, codes, cell, n)
    elif stride == 2:
        _extreme_pass(xs, 2, flip, acc, codes, cell, n)
    else:
        _extreme_pass(xs, stride, flip, acc, codes, cell, n)


cdef inline pool_t _extreme_2x2(const pool_t* r0, const pool_t* r1, Py_ssize_t c,
                                Py_ssize_t right, pool_t flip, int* code) noexcept nogil:
    """Max key of the 2x2 window whose top-left cell is r0[c] (its right neighbour
    is ``right`` further: 1 in a plane, C in NHWC); its ordinal goes to code."""
    cdef pool_t m = _key(r0[c], flip)
    code[0] = 0
    _take(_key(r0[c + right], flip), 1, &m, code)
    _take(_key(r1[c], flip), 2, &m, code)
    _take(_key(r1[c + right], flip), 3, &m, code)
    return m


cdef inline pool_t _extreme_3x3(const pool_t* r0, const pool_t* r1, const pool_t* r2,
                                Py_ssize_t c, Py_ssize_t right, pool_t flip,
                                int* code) noexcept nogil:
    """Max key of the 3x3 window whose top-left cell is r0[c] (its right neighbours
    are ``right`` and ``2 * right`` further); its ordinal goes to code."""
    cdef pool_t m = _key(r0[c], flip)
    code[0] = 0
    _take(_key(r0[c + right], flip), 1, &m, code)
    _take(_key(r0[c + 2 * right], flip), 2, &m, code)
    _take(_key(r1[c], flip), 3, &m, code)
    _take(_key(r1[c + right], flip), 4, &m, code)
    _take(_key(r1[c + 2 * right], flip), 5, &m, code)
    _take(_key(r2[c], flip), 6, &m, code)
    _take(_key(r2[c + right], flip), 7, &m, code)
    _take(_key(r2[c + 2 * right], flip), 8, &m, code)
    return m


cdef inline void _unrolled_span(const pool_t* x, const Py_ssize_t* rows, Py_ssize_t c,
                                Py_ssize_t n, int fast, pool_t flip, pool_t* out,
                                int* codes) noexcept nogil:
    """n whole 2x2 (3x3) windows, window i starting at column c + 2i of the rows:
    values to out, ordinals to codes (if not NULL)."""
    cdef Py_ssize_t i
    cdef int unused
    # row pointers in locals: the compiler cannot tell that stores to out leave rows alone
    cdef const pool_t* r0 = x + rows[0] + c
    cdef const pool_t* r1 = x + rows[1] + c
    cdef const pool_t* r2 = x + rows[2] + c if fast == FAST_3X3 else r1
    if fast == FAST_2X2 and codes == NULL:
        for i in range(n):
            out[i] = _key(_extreme_2x2(r0, r1, 2 * i, 1, flip, &unused), flip)
    elif fast == FAST_2X2:
        for i in range(n):
            out[i] = _key(_extreme_2x2(r0, r1, 2 * i, 1, flip, &codes[i]), flip)
    elif codes == NULL:
        for i in range(n):
            out[i] = _key(_extreme_3x3(r0, r1, r2, 2 * i, 1, flip, &unused), flip)
    else:
        for i in range(n):
            out[i] = _key(_extreme_3x3(r0, r1, r2, 2 * i, 1, flip, &codes[i]), flip)


cdef void _extreme_scalar(const pool_t* x, pool_t* out, code_t* codes, const Windows* w,
                          const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t o_row,
                          Py_ssize_t lo, Py_ssize_t hi, pool_t flip) noexcept nogil:
    """Windows lo..hi of one row of a plane, one window at a time (any window)."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], r, j, s
    cdef pool_t m, v
    cdef int code
    cdef bint better
    for ow in range(lo, hi):
        w0 = w.first[2][ow]
        nw = w.count[2][ow] if nr > 0 else 0
        m = _lowest(x)
        code = _first_code(codes, nw, rows[0] + w0 if nw > 0 else 0)
        for r in range(nr):
            for j in range(nw):
                s = rows[r] + w0 + j * sw
                v = _key(x[s], flip)
                better = _beats(v, m)
                m = v if better else m
                if code_t is uint8_t:
                    code = <int>(r * nw + j) if better else code
                else:
                    code = <int>s if better else code
        out[o_row + ow] = _key(m, flip)
        if codes != NULL:
            codes[o_row + ow] = <code_t>code


cdef void _extreme_row_pass(const pool_t* x, pool_t* out, uint8_t* codes, const Windows* w,
                            const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t o_row,
                            Py_ssize_t lo, Py_ssize_t hi, pool_t flip) noexcept nogil:
    """Windows lo..hi of one row of a plane, all inside the W span: a row pass per
    window cell (vectorised along W), or the unrolled 2x2 / 3x3 loops."""
    cdef Py_ssize_t start, n, i, r, j, c
    cdef Py_ssize_t stride = w.span_stride, kw = w.span_cells, sw = w.step[2]
    cdef pool_t acc[CHUNK]
    cdef int chunk_codes[CHUNK]
    cdef int* kp = chunk_codes if codes != NULL else NULL
    cdef bint unrolled = w.fast != FAST_NONE and nr == w.fast_rows
    start = lo
    while start < hi:
        n = min(<Py_ssize_t>CHUNK, hi - start)
        c = 2 * start + w.span_origin  # unrolled: window start + i begins at column c + 2i
        if unrolled and flip == _flip(x, False):  # constant flips fold away (max pooling)
            _unrolled_span(x, rows, c, n, w.fast, _flip(x, False), out + o_row + start, kp)
        elif unrolled:
            _unrolled_span(x, rows, c, n, w.fast, _flip(x, True), out + o_row + start, kp)
        else:
            for i in range(n):
                acc[i] = _lowest(x)
                chunk_codes[i] = 0
            for r in range(nr):
                for j in range(kw):
                    _extreme_pass_strided(
                        x + rows[r] + w.span_origin + start * stride + j * sw, stride, flip,
                        acc, kp, <int>(r * kw + j), n)
            for i in range(n):
                out[o_row + start + i] = _key(acc[i], flip)
        if codes != NULL:
            for i in range(n):
                codes[o_row + start + i] = <uint8_t>chunk_codes[i]
        start += n


cdef void _extreme_channels(const pool_t* x, pool_t* out, code_t* codes, Py_ssize_t C,
                            Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                            const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t o_row,
                            pool_t flip) noexcept nogil:
    """Every window of one output row, channels [c0, c0+nc) of one NHWC block:
    each window cell is a contiguous run of channels (vectorised along C).  Whole
    2x2 / 3x3 windows (the W span of a fast geometry's full rows) keep their max
    in registers; other windows take one buffer pass per cell."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], r, j, s, cstart, n, i, o
    cdef pool_t acc[CHUNK]
    cdef int chunk_codes[CHUNK]
    cdef int* kp = chunk_codes if codes != NULL else NULL
    cdef int first
    # unrolled windows have at most 9 cells: their codes are always uint8 ordinals
    cdef bint unrolled = code_t is uint8_t and w.fast != FAST_NONE and nr == w.fast_rows
    cdef Py_ssize_t last_row = rows[w.fast_rows - 1] if unrolled else 0
    for ow in range(w.size_out[2]):
        w0 = w.first[2][ow]
        nw = w.count[2][ow] if nr > 0 else 0
        first = _first_code(codes, nw, rows[0] + w0 if nw > 0 else 0)
        o = (o_row + ow) * C
        cstart = c0
        while cstart < c0 + nc:
            n = min(<Py_ssize_t>CHUNK, c0 + nc - cstart)
            if unrolled and w.span_lo <= ow < w.span_hi:
                _extreme_window(x + (rows[0] + w0) * C + cstart, x + (rows[1] + w0) * C + cstart,
                                x + (last_row + w0) * C + cstart, C, n, w.fast, flip,
                                out + o + cstart, kp)
            else:
                for i in range(n):
                    acc[i] = _lowest(x)
                    chunk_codes[i] = first
                for r in range(nr):
                    for j in range(nw):
                        s = rows[r] + w0 + j * sw
                        _extreme_pass(x + s * C + cstart, 1, flip, acc, kp,
                                      <int>(r * nw + j) if code_t is uint8_t else <int>s, n)
                for i in range(n):
                    out[o + cstart + i] = _key(acc[i], flip)
            if codes != NULL:
                for i in range(n):
                    codes[o + cstart + i] = <code_t>chunk_codes[i]
            cstart += n


cdef void _extreme_plane_group(const pool_t* x, pool_t* out, code_t* codes, Py_ssize_t n_planes,
                               Py_ssize_t S_in, Py_ssize_t S_out, const Windows* w,
                               Py_ssize_t* rows, pool_t flip) noexcept nogil:
    """n_planes planes walked side by side, for planes with a few large windows
    (global and coarse adaptive pooling): each plane keeps its own running max,
    updated in scan order, but the planes' independent updates interleave
    instead of waiting on one another."""
    cdef Py_ssize_t od, oh, ow, nr, w0, nw, r, j, s, p, o
    cdef pool_t acc[MAX_GROUP]
    cdef int code[MAX_GROUP]
    cdef pool_t v, m
    cdef int k, cell, first
    cdef bint better
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            for ow in range(w.size_out[2]):
                o = _out_row(w, od, oh) + ow
                w0 = w.first[2][ow]
                nw = w.count[2][ow] if nr > 0 else 0
                first = _first_code(codes, nw, rows[0] + w0 if nw > 0 else 0)
                for p in range(n_planes):
                    acc[p] = _lowest(x)
                    code[p] = first
                for r in range(nr):
                    for j in range(nw):
                        s = rows[r] + w0 + j * w.step[2]
                        cell = <int>(r * nw + j) if code_t is uint8_t else <int>s
                        for p in range(n_planes):
                            v = _key(x[p * S_in + s], flip)
                            m = acc[p]
                            k = code[p]
                            better = _beats(v, m)
                            acc[p] = v if better else m
                            code[p] = cell if better else k
                for p in range(n_planes):
                    out[p * S_out + o] = _key(acc[p], flip)
                    if codes != NULL:
                        codes[p * S_out + o] = <code_t>code[p]


cdef void _extreme_plane_2x2(const pool_t* x, pool_t* out, uint8_t* codes, const Windows* w,
                             pool_t flip, int* plane_codes) noexcept nogil:
    """A plane whose windows are all whole 2x2 stride 2 (no border windows): one
    unrolled loop per output row and no other per-row work; the codes of the
    whole plane are packed to uint8 at once (small planes, e.g. LeNet's, are
    dominated by per-row overheads otherwise)."""
    cdef Py_ssize_t od, oh, o_row, i, W = w.size_in[2], oW = w.size_out[2]
    cdef Py_ssize_t rows[2]
    cdef int* kp = plane_codes if codes != NULL else NULL
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            rows[0] = (w.first[0][od] * w.size_in[1] + w.first[1][oh]) * W
            rows[1] = rows[0] + W
            o_row = _out_row(w, od, oh)
            if flip == _flip(x, False):  # constant flips fold away (max pooling)
                _unrolled_span(x, rows, 0, oW, FAST_2X2, _flip(x, False), out + o_row,
                               kp + o_row if kp != NULL else NULL)
            else:
                _unrolled_span(x, rows, 0, oW, FAST_2X2, _flip(x, True), out + o_row,
                               kp + o_row if kp != NULL else NULL)
    if codes != NULL:
        for i in range(w.size_out[0] * w.size_out[1] * oW):
            codes[i] = <uint8_t>plane_codes[i]


cdef inline pool_t _tap(const pool_t* p0, const pool_t* p1, const pool_t* p2, Py_ssize_t i,
                        Py_ssize_t C, int t, int kw) noexcept nogil:
    """Channel i of cell t (scan order) of a whole kw x kw NHWC window with rows p0, p1, p2."""
    cdef const pool_t* row = p0 if t < kw else (p1 if t < 2 * kw else p2)
    return row[i + (t % kw) * C]


cdef inline bint _window_max_plain(const pool_t* p0, const pool_t* p1, const pool_t* p2,
                                   Py_ssize_t C, Py_ssize_t n, int kw, pool_t flip,
                                   pool_t* out, int* codes) noexcept nogil:
    """Floats: n channels of one whole kw x kw NHWC window, for windows without NaN.

    Without NaN, PyTorch's rule (``v > m or isnan(v)``, first tie wins) is a plain
    ``v > m`` (one max instruction), and the winner is the first cell equal to
    the max (-0 == +0 and ``>`` treats them alike), found in a second pass that
    counts the cells before it.  A NaN among the cells (or +inf with -inf) makes
    their running sum NaN: then nothing is trusted and False is returned (the
    caller redoes the chunk with the exact rule)."""
    cdef Py_ssize_t i
    cdef int t, cells = kw * kw, found, before
    cdef pool_t m, v, total
    cdef bint bad = False
    for i in range(n):
        m = _key(p0[i], flip)
        total = m
        for t in range(1, cells):
            v = _key(_tap(p0, p1, p2, i, C, t, kw), flip)
            m = v if v > m else m
            total = total + v
        out[i] = _key(m, flip)
        bad = bad | (total != total)
    if bad:
        return False
    if codes != NULL:
        for i in range(n):
            m = _key(out[i], flip)      # the key again (negation is exact)
            found = 0
            before = cells
            for t in range(cells):
                found = found | -(<int>(_key(_tap(p0, p1, p2, i, C, t, kw), flip) == m))
                before = before + found  # -1 for the winner and every cell after it
            codes[i] = before
    return True


cdef inline void _extreme_window_channels(const pool_t* p0, const pool_t* p1,
                                          const pool_t* p2, Py_ssize_t C, Py_ssize_t n,
                                          int fast, pool_t flip, pool_t* out,
                                          int* codes) noexcept nogil:
    """n channels of one whole 2x2 (3x3) NHWC window whose rows start at p0, p1 (, p2):
    every cell is a run of channels, so the loop runs along C (vectorised) with the
    running max and ordinal in registers instead of a buffer pass per cell.  Float
    windows without NaN take _window_max_plain."""
    cdef Py_ssize_t i
    cdef int unused
    if pool_t is float or pool_t is double:
        # (two passes pay off only over enough channels: fewer run the exact loop at once)
        if n >= PLAIN_MIN and _window_max_plain(p0, p1, p2, C, n, 2 if fast == FAST_2X2 else 3,
                                                flip, out, codes):
            return
    if fast == FAST_2X2 and codes == NULL:
        for i in range(n):
            out[i] = _key(_extreme_2x2(p0, p1, i, C, flip, &unused), flip)
    elif fast == FAST_2X2:
        for i in range(n):
            out[i] = _key(_extreme_2x2(p0, p1, i, C, flip, &codes[i]), flip)
    elif codes == NULL:
        for i in range(n):
            out[i] = _key(_extreme_3x3(p0, p1, p2, i, C, flip, &unused), flip)
    else:
        for i in range(n):
            out[i] = _key(_extreme_3x3(p0, p1, p2, i, C, flip, &codes[i]), flip)


cdef inline void _extreme_window(const pool_t* p0, const pool_t* p1, const pool_t* p2,
                                 Py_ssize_t C, Py_ssize_t n, int fast, pool_t flip, pool_t* out,
                                 int* codes) noexcept nogil:
    """_extreme_window_channels compiled for constant flips and window shapes."""
    if fast == FAST_2X2 and flip == _flip(p0, False):
        _extreme_window_channels(p0, p1, p1, C, n, FAST_2X2, _flip(p0, False), out, codes)
    elif fast == FAST_2X2:
        _extreme_window_channels(p0, p1, p1, C, n, FAST_2X2, _flip(p0, True), out, codes)
    elif flip == _flip(p0, False):
        _extreme_window_channels(p0, p1, p2, C, n, FAST_3X3, _flip(p0, False), out, codes)
    else:
        _extreme_window_channels(p0, p1, p2, C, n, FAST_3X3, _flip(p0, True), out, codes)


cdef void _extreme_channels_2x2(const pool_t* x, pool_t* out, uint8_t* codes, Py_ssize_t C,
                                Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                                pool_t flip) noexcept nogil:
    """An NHWC block whose windows are all whole 2x2 stride 2: each window's four
    cells are four runs of channels, compared channel-wise (vectorised along C)."""
    cdef Py_ssize_t od, oh, ow, i, n, cstart, o, W = w.size_in[2]
    cdef const pool_t* r0
    cdef int chunk_codes[CHUNK]
    cdef int* kp = chunk_codes if codes != NULL else NULL
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            r0 = x + (w.first[0][od] * w.size_in[1] + w.first[1][oh]) * W * C
            for ow in range(w.size_out[2]):
                o = (_out_row(w, od, oh) + ow) * C
                cstart = c0
                while cstart < c0 + nc:
                    n = min(<Py_ssize_t>CHUNK, c0 + nc - cstart)
                    _extreme_window(r0 + 2 * ow * C + cstart, r0 + (W + 2 * ow) * C + cstart,
                                    NULL, C, n, FAST_2X2, flip, out + o + cstart, kp)
                    if codes != NULL:
                        for i in range(n):
                            codes[o + cstart + i] = <uint8_t>chunk_codes[i]
                    cstart += n


def extreme_forward(const pool_t[:, :, ::1] x, pool_t[:, :, ::1] out, code_t[:, :, ::1] codes,
                    WindowTables tables, bint is_min, bint store, Py_ssize_t block,
                    int num_threads):
    """Max (``is_min`` False) or min pooling of x (B, S_in, C) into out (B, S_out, C).

    With ``store`` the winning cell of each output goes to ``codes`` (same shape
    as out); without it ``codes`` is ignored (pass any 1x1x1 uint8 array).
    ``block``: channels per unit of work (NHWC), or planes walked side by side
    per unit (NCHW, C == 1; see ``_extreme_plane_group``).
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], u, b, c0, nc, od, oh, nr, o_row, lo, hi
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef int[:, ::1] plane_codes = _plane_scratch(tables, out.shape[1], C, store, num_threads)
    cdef Py_ssize_t* rows
    cdef code_t* kp
    cdef const pool_t* type_tag = NULL
    cdef pool_t flip = _flip(type_tag, is_min)
    if C == 1 and block > 1:  # planes walked side by side, ``block`` per unit
        block = min(block, <Py_ssize_t>MAX_GROUP)
        for u in prange((B + block - 1) // block, nogil=True, schedule="static",
                        num_threads=num_threads):
            b = u * block
            _extreme_plane_group(&x[b, 0, 0], &out[b, 0, 0], &codes[b, 0, 0] if store else NULL,
                                 min(block, B - b), x.shape[1], out.shape[1], &w,
                                 &scratch[omp_get_thread_num(), 0], flip)
        return
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        rows = &scratch[omp_get_thread_num(), 0]
        kp = &codes[b, 0, 0] if store else NULL
        if code_t is uint8_t:
            if C == 1 and w.whole_plane:
                _extreme_plane_2x2(&x[b, 0, 0], &out[b, 0, 0], kp, &w, flip,
                                   &plane_codes[omp_get_thread_num(), 0])
                continue
            if w.whole_plane:
                _extreme_channels_2x2(&x[b, 0, 0], &out[b, 0, 0], kp, C, c0, nc, &w, flip)
                continue
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                o_row = _out_row(&w, od, oh)
                if C > 1:
                    _extreme_channels(&x[b, 0, 0], &out[b, 0, 0], kp, C, c0, nc, &w, rows, nr,
                                      o_row, flip)
                    continue
                lo = 0
                hi = 0
                if code_t is uint8_t:  # row passes keep uint8 ordinals only
                    _row_parts(&w, nr, True, &lo, &hi)
                _extreme_scalar(&x[b, 0, 0], &out[b, 0, 0], kp, &w, rows, nr, o_row, 0, lo,
                                flip)
                if code_t is uint8_t:
                    _extreme_row_pass(&x[b, 0, 0], &out[b, 0, 0], kp, &w, rows, nr, o_row,
                                      lo, hi, flip)
                _extreme_scalar(&x[b, 0, 0], &out[b, 0, 0], kp, &w, rows, nr, o_row, hi,
                                w.size_out[2], flip)


cdef void _route_row(const floating* grad_out, const code_t* codes, floating* grad_in,
                     Py_ssize_t C, Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                     const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t o_row) noexcept nogil:
    """grad_in[winner] += grad_out for every window of one output row, windows in
    order (so overlapping windows add up in one fixed order)."""
    cdef Py_ssize_t ow, w0, nw, o, c, s, table_width = -1
    cdef Py_ssize_t rel[NO_CELL_U8]      # cell offsets by ordinal, for windows nw wide
    cdef code_t k
    for ow in range(w.size_out[2]):
        w0 = w.first[2][ow]
        nw = w.count[2][ow]
        if code_t is uint8_t:
            if nr == 0 or nw == 0:
                continue
            if nw != table_width:
                _cells(rows, nr, nw, w.step[2], rel)
                table_width = nw
        o = (o_row + ow) * C
        for c in range(c0, c0 + nc):
            k = codes[o + c]
            if code_t is uint8_t:
                if k == NO_CELL_U8:
                    continue
                s = w0 + rel[k]
            else:
                if k < 0:
                    continue
                s = k
            grad_in[s * C + c] += grad_out[o + c]


def extreme_backward(const floating[:, :, ::1] grad_out, const code_t[:, :, ::1] codes,
                     floating[:, :, ::1] grad_in, WindowTables tables, Py_ssize_t block,
                     int num_threads):
    """Route grad_out (B, S_out, C) to the cells recorded in ``codes``: grad_in is
    zeroed, then grad_in[winner] += grad_out, windows in order (any geometry;
    inputs tiled by 2x2 stride 2 windows have ``route_tiled``)."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = grad_out.shape[0], C = grad_out.shape[2], S = grad_in.shape[1]
    cdef Py_ssize_t u, b, c0, nc, od, oh, nr, o_row
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        rows = &scratch[omp_get_thread_num(), 0]
        _zero_block(&grad_in[b, 0, 0], S, C, c0, nc)
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                o_row = _out_row(&w, od, oh)
                _route_row(&grad_out[b, 0, 0], &codes[b, 0, 0], &grad_in[b, 0, 0], C, c0, nc,
                           &w, rows, nr, o_row)


cdef inline bits_t _keep_if(bits_t v, int code, int cell) noexcept nogil:
    """The bits of 0.0 + v if the window's winner is ``cell``, else 0 (the bits of
    +0.0): an AND with an all-ones / all-zeros mask, which vectorises without any
    select.  0.0 + v is v except that -0.0 becomes +0.0, as in PyTorch (and our
    general path), which fill the gradient with zeros and add."""
    cdef bits_t sign = (<bits_t>1) << (8 * sizeof(bits_t) - 1)
    v = v & ~(sign & (<bits_t>0 - <bits_t>(v == sign)))  # -0.0 -> +0.0
    return v & (<bits_t>0 - <bits_t>(code == cell))


cdef inline void _route_quads_four(const bits_t* gr, const int* kr, bits_t* r0, bits_t* r1,
                                   Py_ssize_t i) noexcept nogil:
    """Outputs i..i+3 of one row: all loads first, then the 16 stores, in straight
    code the compiler turns into a few vector operations (no alias checks)."""
    cdef bits_t g0 = gr[i], g1 = gr[i + 1], g2 = gr[i + 2], g3 = gr[i + 3]
    cdef int k0 = kr[i], k1 = kr[i + 1], k2 = kr[i + 2], k3 = kr[i + 3]
    cdef bits_t* t = r0 + 2 * i
    cdef bits_t* b = r1 + 2 * i
    t[0] = _keep_if(g0, k0, 0)
    t[1] = _keep_if(g0, k0, 1)
    t[2] = _keep_if(g1, k1, 0)
    t[3] = _keep_if(g1, k1, 1)
    t[4] = _keep_if(g2, k2, 0)
    t[5] = _keep_if(g2, k2, 1)
    t[6] = _keep_if(g3, k3, 0)
    t[7] = _keep_if(g3, k3, 1)
    b[0] = _keep_if(g0, k0, 2)
    b[1] = _keep_if(g0, k0, 3)
    b[2] = _keep_if(g1, k1, 2)
    b[3] = _keep_if(g1, k1, 3)
    b[4] = _keep_if(g2, k2, 2)
    b[5] = _keep_if(g2, k2, 3)
    b[6] = _keep_if(g3, k3, 2)
    b[7] = _keep_if(g3, k3, 3)


cdef void _route_quads_plane(const bits_t* g, const uint8_t* codes, bits_t* grad_in,
                             Py_ssize_t rows_out, Py_ssize_t oW, int* wide) noexcept nogil:
    """A plane tiled by 2x2 stride 2 windows (rows_out output rows of oW): write
    each window's four cells, the gradient at the winner and 0 elsewhere, as
    two whole input rows per output row (no zeroing pass, no adds, no branch).
    The codes are widened to int for the whole plane first (``wide``); rows go
    four outputs at a time, the last four of a row overlapping the previous
    ones when oW is not a multiple of 4 (they write the same values again), so
    short rows (LeNet's 14) have no scalar remainder."""
    cdef Py_ssize_t R, i, W = 2 * oW
    cdef bits_t* r0
    cdef bits_t* r1
    cdef const bits_t* gr
    cdef const int* kr
    cdef bits_t v
    cdef int k
    for i in range(rows_out * oW):
        wide[i] = codes[i]
    for R in range(rows_out):
        r0 = grad_in + 2 * R * W
        r1 = r0 + W
        gr = g + R * oW
        kr = wide + R * oW
        if oW >= 4:
            i = 0
            while i + 4 <= oW:
                _route_quads_four(gr, kr, r0, r1, i)
                i += 4
            if i < oW:
                _route_quads_four(gr, kr, r0, r1, oW - 4)
            continue
        for i in range(oW):
            v = gr[i]
            k = kr[i]
            r0[2 * i] = _keep_if(v, k, 0)
            r0[2 * i + 1] = _keep_if(v, k, 1)
            r1[2 * i] = _keep_if(v, k, 2)
            r1[2 * i + 1] = _keep_if(v, k, 3)


cdef inline void _route_channels_four(const bits_t* gr, const int* kr, bits_t* p0, bits_t* p1,
                                      Py_ssize_t C, Py_ssize_t c) noexcept nogil:
    """Channels c..c+3 of one NHWC window (cells at p0, p0 + C, p1, p1 + C): loads
    first, then four runs of four stores, which the compiler turns into vector
    operations without alias checks (a loop over few channels would not be)."""
    cdef bits_t g0 = gr[c], g1 = gr[c + 1], g2 = gr[c + 2], g3 = gr[c + 3]
    cdef int k0 = kr[c], k1 = kr[c + 1], k2 = kr[c + 2], k3 = kr[c + 3]
    cdef bits_t* t0 = p0 + c
    cdef bits_t* t1 = p0 + C + c
    cdef bits_t* b0 = p1 + c
    cdef bits_t* b1 = p1 + C + c
    t0[0] = _keep_if(g0, k0, 0)
    t0[1] = _keep_if(g1, k1, 0)
    t0[2] = _keep_if(g2, k2, 0)
    t0[3] = _keep_if(g3, k3, 0)
    t1[0] = _keep_if(g0, k0, 1)
    t1[1] = _keep_if(g1, k1, 1)
    t1[2] = _keep_if(g2, k2, 1)
    t1[3] = _keep_if(g3, k3, 1)
    b0[0] = _keep_if(g0, k0, 2)
    b0[1] = _keep_if(g1, k1, 2)
    b0[2] = _keep_if(g2, k2, 2)
    b0[3] = _keep_if(g3, k3, 2)
    b1[0] = _keep_if(g0, k0, 3)
    b1[1] = _keep_if(g1, k1, 3)
    b1[2] = _keep_if(g2, k2, 3)
    b1[3] = _keep_if(g3, k3, 3)


cdef void _route_quads_channels(const bits_t* g, const uint8_t* codes, bits_t* grad_in,
                                Py_ssize_t C, Py_ssize_t c0, Py_ssize_t nc,
                                Py_ssize_t rows_out, Py_ssize_t oW, int* wide) noexcept nogil:
    """An NHWC block tiled by 2x2 stride 2 windows, channels [c0, c0+nc): output
    row R writes input rows 2R and 2R+1 (each window's cells are four runs of
    channels, p0, p0 + C, p1, p1 + C), the gradient at the winner and 0
    elsewhere.  A row's codes are widened to int first (``wide``, oW * C); the
    channels go four at a time, the last four overlapping the
    previous ones when nc is not a multiple of 4 (same values rewritten, inside
    the block), so LeNet's 6 channels are two vector groups, not a loop of 6;
    blocks of 1-3 channels take the scalar loop."""
    cdef Py_ssize_t R, ow, i, c, o, end = c0 + nc, W = 2 * oW
    cdef bits_t* p0
    cdef bits_t* p1
    cdef const bits_t* gr
    cdef const int* kr
    cdef const uint8_t* kb
    cdef bits_t v
    cdef int k
    for R in range(rows_out):
        kb = codes + R * oW * C
        gr = g + R * oW * C
        if nc == C:
            for i in range(oW * C):
                wide[i] = kb[i]
        else:
            for ow in range(oW):
                for c in range(c0, end):
                    wide[ow * C + c] = kb[ow * C + c]
        for ow in range(oW):
            o = ow * C
            gr = g + R * oW * C + o
            kr = wide + o
            p0 = grad_in + (2 * R * W + 2 * ow) * C
            p1 = p0 + W * C
            if nc >= 4:
                c = c0
                while c + 4 <= end:
                    _route_channels_four(gr, kr, p0, p1, C, c)
                    c += 4
                if c < end:
                    _route_channels_four(gr, kr, p0, p1, C, end - 4)
                continue
            for c in range(c0, end):
                v = gr[c]
                k = kr[c]
                p0[c] = _keep_if(v, k, 0)
                p0[C + c] = _keep_if(v, k, 1)
                p1[c] = _keep_if(v, k, 2)
                p1[C + c] = _keep_if(v, k, 3)


def route_tiled(const bits_t[:, :, ::1] grad_out, const uint8_t[:, :, ::1] codes,
                bits_t[:, :, ::1] grad_in, WindowTables tables, Py_ssize_t block,
                int num_threads):
    """Max-pool backward for inputs tiled by 2x2 stride 2 windows (``tables.whole_plane``
    and the caller's ``tiled``): every input cell is written once, the gradient
    at each window's winner (uint8 ordinal) and 0 elsewhere.

    The gradients come as their bits (uint32 / uint64 views of float32 /
    float64 arrays): routing only moves values, so integer masks do it exactly
    (NaN payloads and signed zeros included) and vectorise without selects.
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t B = grad_out.shape[0], C = grad_out.shape[2], u, b, c0, nc
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t rows_out = w.size_out[0] * w.size_out[1], oW = w.size_out[2]
    cdef int[:, ::1] wide = _plane_scratch(tables, rows_out * oW, C, True, num_threads)
    cdef int[:, ::1] row_wide = _row_scratch(oW * C, C > 1, num_threads)
    if not w.whole_plane or grad_in.shape[1] != 4 * rows_out * oW:
        raise ValueError("route_tiled needs 2x2 stride 2 windows tiling the input exactly")
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        if C == 1:
            _route_quads_plane(&grad_out[b, 0, 0], &codes[b, 0, 0], &grad_in[b, 0, 0], rows_out,
                               oW, &wide[omp_get_thread_num(), 0])
        else:
            _route_quads_channels(&grad_out[b, 0, 0], &codes[b, 0, 0], &grad_in[b, 0, 0], C, c0,
                                  nc, rows_out, oW, &row_wide[omp_get_thread_num(), 0])


cdef void _indices_block(const code_t* codes, int64_t* indices, Py_ssize_t C, const Windows* w,
                         Py_ssize_t* rows) noexcept nogil:
    cdef Py_ssize_t od, oh, ow, c, nr, o, w0, nw, table_width
    cdef Py_ssize_t rel[NO_CELL_U8]
    cdef code_t k
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            table_width = -1
            for ow in range(w.size_out[2]):
                o = (_out_row(w, od, oh) + ow) * C
                w0 = w.first[2][ow]
                nw = w.count[2][ow]
                if code_t is uint8_t:
                    if nr > 0 and nw > 0 and nw != table_width:
                        _cells(rows, nr, nw, w.step[2], rel)
                        table_width = nw
                for c in range(C):
                    k = codes[o + c]
                    if code_t is uint8_t:
                        indices[o + c] = -1 if k == NO_CELL_U8 else w0 + rel[k]
                    else:
                        indices[o + c] = k


def codes_to_indices(const code_t[:, :, ::1] codes, int64_t[:, :, ::1] indices,
                     WindowTables tables, int num_threads):
    """PyTorch's int64 indices (flat position in the input plane, -1 for no cell)."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = codes.shape[0], C = codes.shape[2], b
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    for b in prange(B, nogil=True, schedule="static", num_threads=num_threads):
        _indices_block(&codes[b, 0, 0], &indices[b, 0, 0], C, &w,
                       &scratch[omp_get_thread_num(), 0])


# ----------------------------------------------------------------------------- avg / sum / LP
cdef inline floating _raise(floating v, int power, double p) noexcept nogil:
    if power == POWER_ONE:
        return v
    if power == POWER_TWO:
        return v * v
    return <floating>pow(v, p)


cdef inline floating _root(floating s, int power, double p) noexcept nogil:
    if power == POWER_ONE:
        return s
    if power == POWER_TWO:
        return <floating>sqrt(s)
    return <floating>pow(s, 1.0 / p)


cdef inline void _sum_pass(const floating* xs, Py_ssize_t stride, floating* acc, Py_ssize_t n,
                           int power, double p) noexcept nogil:
    """One cell of n windows: acc[i] += xs[i * stride] ** p."""
    cdef Py_ssize_t i
    if power == POWER_ONE:
        for i in range(n):
            acc[i] += xs[i * stride]
    elif power == POWER_TWO:
        for i in range(n):
            acc[i] += xs[i * stride] * xs[i * stride]
    else:
        for i in range(n):
            acc[i] += <floating>pow(xs[i * stride], p)


cdef inline void _sum_pass_strided(const floating* xs, Py_ssize_t stride, floating* acc,
                                   Py_ssize_t n, int power, double p) noexcept nogil:
    if stride == 1:
        _sum_pass(xs, 1, acc, n, power, p)
    elif stride == 2:
        _sum_pass(xs, 2, acc, n, power, p)
    else:
        _sum_pass(xs, stride, acc, n, power, p)


cdef inline void _lanes_add_run(const floating* a, Py_ssize_t n, Py_ssize_t lane0,
                               floating* lanes, int power, double p) noexcept nogil:
    """lanes[(lane0 + j) % LANES] += a[j] ** p for j < n, in order of j.  The whole
    blocks of LANES cells run on local accumulators (no aliasing with ``a``), so
    they stay in vector registers."""
    cdef floating acc[LANES]
    cdef Py_ssize_t j = 0, t, lane = lane0
    while lane != 0 and j < n:          # up to the next lane-0 cell
        lanes[lane] += _raise(a[j], power, p)
        j += 1
        lane = (lane + 1) % LANES
    if j + LANES <= n:
        for t in range(LANES):
            acc[t] = lanes[t]
        while j + LANES <= n:
            for t in range(LANES):
                acc[t] += _raise(a[j + t], power, p)
            j += LANES
        for t in range(LANES):
            lanes[t] = acc[t]
    t = 0
    while j < n:
        lanes[t] += _raise(a[j], power, p)
        j += 1
        t += 1


cdef inline floating _window_sum(const floating* x, const Py_ssize_t* rows, Py_ssize_t nr,
                                 Py_ssize_t w0, Py_ssize_t nw, Py_ssize_t sw, int power,
                                 double p) noexcept nogil:
    """Sum of x ** p over one window of a plane.

    The summation order every path and both layouts share: a window of at
    most SCAN_SUM_MAX cells is summed from 0 in scan order; in a larger one
    (global pooling) the cell with ordinal k (scan order) goes to partial sum
    k % LANES, each partial sum runs from 0 in scan order, and the partial
    sums are added from 0 in lane order: LANES independent chains instead of
    one.  Consecutive rows that touch in memory are one run."""
    cdef Py_ssize_t r, j, k, run
    cdef floating total = 0
    cdef floating lanes[LANES]
    if nr * nw <= SCAN_SUM_MAX:
        for r in range(nr):
            for j in range(nw):
                total += _raise(x[rows[r] + w0 + j * sw], power, p)
        return total
    for j in range(LANES):
        lanes[j] = 0
    k = 0
    r = 0
    while r < nr:
        if sw == 1:
            run = nw
            while r + 1 < nr and rows[r + 1] == rows[r] + nw:   # rows touch: one run
                run += nw
                r += 1
            if power == POWER_ONE:  # constant power: the block loop vectorises
                _lanes_add_run(x + rows[r] - (run - nw) + w0, run, k % LANES, lanes,
                               POWER_ONE, p)
            else:
                _lanes_add_run(x + rows[r] - (run - nw) + w0, run, k % LANES, lanes, power, p)
            k += run
        else:
            for j in range(nw):
                lanes[(k + j) % LANES] += _raise(x[rows[r] + w0 + j * sw], power, p)
            k += nw
        r += 1
    for j in range(LANES):
        total += lanes[j]
    return total


cdef void _sum_scalar(const floating* x, floating* out, const Windows* w,
                      const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t od, Py_ssize_t oh,
                      Py_ssize_t lo, Py_ssize_t hi, int power, double p) noexcept nogil:
    """out = (sum over real cells of x^p)^(1/p) / divisor, one window at a time
    (summed as _window_sum says, like every path)."""
    cdef Py_ssize_t ow, nw
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    for ow in range(lo, hi):
        nw = w.count[2][ow] if nr > 0 else 0
        out[o_row + ow] = (_root(_window_sum(x, rows, nr, w.first[2][ow], nw, w.step[2], power,
                                             p), power, p)
                           / <floating>_divisor(w, od, oh, ow))


cdef void _sum_row_pass(const floating* x, floating* out, const Windows* w,
                        const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t od, Py_ssize_t oh,
                        Py_ssize_t lo, Py_ssize_t hi, int power, double p) noexcept nogil:
    """Windows lo..hi of one row of a plane, inside the W span: a row pass per cell
    (into one of LANES partial sums per output for windows of > SCAN_SUM_MAX cells)."""
    cdef Py_ssize_t start, n, i, r, j, c
    cdef Py_ssize_t stride = w.span_stride, kw = w.span_cells, sw = w.step[2]
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    cdef floating acc[CHUNK]
    cdef floating s
    cdef const floating* r0
    cdef const floating* r1
    cdef const floating* r2
    cdef bint unrolled = w.fast != FAST_NONE and nr == w.fast_rows and power == POWER_ONE
    # windows of more than SCAN_SUM_MAX cells: LANES partial sums per output (_window_sum)
    cdef bint laned = nr * kw > SCAN_SUM_MAX
    cdef floating lanes[LANES * (LANE_CHUNK + LANE_GAP)]
    cdef Py_ssize_t width = <Py_ssize_t>LANE_CHUNK if laned else <Py_ssize_t>CHUNK, ls
    start = lo
    while start < hi:
        n = min(width, hi - start)
        c = 2 * start + w.span_origin
        if laned:
            ls = n + LANE_GAP
            for i in range(LANES * ls):
                lanes[i] = 0
            for r in range(nr):
                for j in range(kw):
                    _sum_pass_strided(x + rows[r] + w.span_origin + start * stride + j * sw,
                                      stride, lanes + ((r * kw + j) % LANES) * ls, n, power, p)
            for i in range(n):
                s = 0
                for j in range(LANES):
                    s += lanes[j * ls + i]
                acc[i] = s
        elif unrolled and w.fast == FAST_2X2:
            r0 = x + rows[0] + c
            r1 = x + rows[1] + c
            for i in range(n):
                s = 0
                s += r0[2 * i]
                s += r0[2 * i + 1]
                s += r1[2 * i]
                s += r1[2 * i + 1]
                acc[i] = s
        elif unrolled:
            r0 = x + rows[0] + c
            r1 = x + rows[1] + c
            r2 = x + rows[2] + c
            for i in range(n):
                s = 0
                s += r0[2 * i]
                s += r0[2 * i + 1]
                s += r0[2 * i + 2]
                s += r1[2 * i]
                s += r1[2 * i + 1]
                s += r1[2 * i + 2]
                s += r2[2 * i]
                s += r2[2 * i + 1]
                s += r2[2 * i + 2]
                acc[i] = s
        else:
            for i in range(n):
                acc[i] = 0
            for r in range(nr):
                for j in range(kw):
                    _sum_pass_strided(x + rows[r] + w.span_origin + start * stride + j * sw,
                                      stride, acc, n, power, p)
        for i in range(n):
            out[o_row + start + i] = (_root(acc[i], power, p)
                                      / <floating>_divisor(w, od, oh, start + i))
        start += n


cdef void _sum_channels(const floating* x, floating* out, Py_ssize_t C, Py_ssize_t c0,
                        Py_ssize_t nc, const Windows* w, const Py_ssize_t* rows, Py_ssize_t nr,
                        Py_ssize_t od, Py_ssize_t oh, int power, double p) noexcept nogil:
    """Every window of one output row, channels [c0, c0+nc) of one NHWC block, summed
    channel-wise in _window_sum's order (cell k into lane buffer k % LANES)."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], r, j, cstart, n, i, o, k, lane, width
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    cdef floating acc[CHUNK]
    cdef floating lanes[LANES * (LANE_CHUNK + LANE_GAP)]
    cdef floating div, total
    cdef Py_ssize_t ls
    for ow in range(w.size_out[2]):
        w0 = w.first[2][ow]
        nw = w.count[2][ow] if nr > 0 else 0
        div = <floating>_divisor(w, od, oh, ow)
        o = (o_row + ow) * C
        cstart = c0
        # windows of more than SCAN_SUM_MAX cells: LANES partial sums per channel
        width = <Py_ssize_t>CHUNK if nr * nw <= SCAN_SUM_MAX else <Py_ssize_t>LANE_CHUNK
        while cstart < c0 + nc:
            n = min(width, c0 + nc - cstart)
            if nr * nw <= SCAN_SUM_MAX:
                for i in range(n):
                    acc[i] = 0
                for r in range(nr):
                    for j in range(nw):
                        _sum_pass(x + (rows[r] + w0 + j * sw) * C + cstart, 1, acc, n, power, p)
                for i in range(n):
                    out[o + cstart + i] = _root(acc[i], power, p) / div
            else:
                ls = n + LANE_GAP
                for i in range(LANES * ls):
                    lanes[i] = 0
                k = 0
                for r in range(nr):
                    for j in range(nw):
                        lane = k % LANES
                        _sum_pass(x + (rows[r] + w0 + j * sw) * C + cstart, 1, lanes + lane * ls,
                                  n, power, p)
                        k += 1
                for i in range(n):
                    total = 0
                    for lane in range(LANES):
                        total += lanes[lane * ls + i]
                    out[o + cstart + i] = _root(total, power, p) / div
            cstart += n


cdef void _sum_plane_group(const floating* x, floating* out, Py_ssize_t n_planes,
                           Py_ssize_t S_in, Py_ssize_t S_out, const Windows* w, Py_ssize_t* rows,
                           int power, double p) noexcept nogil:
    """n_planes planes walked side by side (see _extreme_plane_group): each plane's
    sum in _window_sum's order.  Windows of more than SCAN_SUM_MAX cells have LANES
    independent chains already, so their planes go one at a time (contiguous runs)."""
    cdef Py_ssize_t od, oh, ow, nr, w0, nw, r, j, s, q, o
    cdef floating acc[MAX_GROUP]
    cdef floating div
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            for ow in range(w.size_out[2]):
                o = _out_row(w, od, oh) + ow
                w0 = w.first[2][ow]
                nw = w.count[2][ow] if nr > 0 else 0
                div = <floating>_divisor(w, od, oh, ow)
                if nr * nw > SCAN_SUM_MAX:
                    for q in range(n_planes):
                        out[q * S_out + o] = (_root(_window_sum(x + q * S_in, rows, nr, w0, nw,
                                                                w.step[2], power, p), power, p)
                                              / div)
                    continue
                for q in range(n_planes):
                    acc[q] = 0
                for r in range(nr):
                    for j in range(nw):
                        s = rows[r] + w0 + j * w.step[2]
                        for q in range(n_planes):
                            acc[q] += _raise(x[q * S_in + s], power, p)
                for q in range(n_planes):
                    out[q * S_out + o] = _root(acc[q], power, p) / div


cdef void _sum_plane_2x2(const floating* x, floating* out, const Windows* w) noexcept nogil:
    """A plane whose windows are all whole 2x2 stride 2: plain sums / divisor, one
    loop per output row and no other per-row work (same sum order as every path)."""
    cdef Py_ssize_t od, oh, i, o_row, W = w.size_in[2], oW = w.size_out[2]
    cdef const floating* r0
    cdef const floating* r1
    cdef floating s
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            r0 = x + (w.first[0][od] * w.size_in[1] + w.first[1][oh]) * W
            r1 = r0 + W
            o_row = _out_row(w, od, oh)
            for i in range(oW):
                s = 0
                s += r0[2 * i]
                s += r0[2 * i + 1]
                s += r1[2 * i]
                s += r1[2 * i + 1]
                out[o_row + i] = s / <floating>_divisor(w, od, oh, i)


cdef void _sum_channels_2x2(const floating* x, floating* out, Py_ssize_t C, Py_ssize_t c0,
                            Py_ssize_t nc, const Windows* w) noexcept nogil:
    """An NHWC block whose windows are all whole 2x2 stride 2: channel-wise sums of
    the four cells / divisor (same order as every path)."""
    cdef Py_ssize_t od, oh, ow, i, o, W = w.size_in[2]
    cdef const floating* p0
    cdef const floating* p1
    cdef floating s, div
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            for ow in range(w.size_out[2]):
                p0 = x + ((w.first[0][od] * w.size_in[1] + w.first[1][oh]) * W + 2 * ow) * C
                p1 = p0 + W * C
                o = (_out_row(w, od, oh) + ow) * C
                div = <floating>_divisor(w, od, oh, ow)
                for i in range(c0, c0 + nc):
                    s = 0
                    s += p0[i]
                    s += p0[C + i]
                    s += p1[i]
                    s += p1[C + i]
                    out[o + i] = s / div


def sum_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out, WindowTables tables,
                int power, double p, Py_ssize_t block, int num_threads):
    """Average / sum / LP pooling of x (B, S_in, C) into out (B, S_out, C).

    ``power`` 1: sum / divisor (avg; sum pooling has divisor 1); 2: sqrt of the
    sum of squares; 0: (sum x^p)^(1/p).  LP tables have divisor 1.
    ``block``: channels per unit (NHWC), or planes walked side by side (C == 1).
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], u, b, c0, nc, od, oh, nr, lo, hi
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    if C == 1 and block > 1:  # planes walked side by side, ``block`` per unit
        block = min(block, <Py_ssize_t>MAX_GROUP)
        for u in prange((B + block - 1) // block, nogil=True, schedule="static",
                        num_threads=num_threads):
            b = u * block
            _sum_plane_group(&x[b, 0, 0], &out[b, 0, 0], min(block, B - b), x.shape[1],
                             out.shape[1], &w, &scratch[omp_get_thread_num(), 0], power, p)
        return
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        rows = &scratch[omp_get_thread_num(), 0]
        if C == 1 and w.whole_plane and power == POWER_ONE:
            _sum_plane_2x2(&x[b, 0, 0], &out[b, 0, 0], &w)
            continue
        if w.whole_plane and power == POWER_ONE:
            _sum_channels_2x2(&x[b, 0, 0], &out[b, 0, 0], C, c0, nc, &w)
            continue
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                if C > 1:
                    _sum_channels(&x[b, 0, 0], &out[b, 0, 0], C, c0, nc, &w, rows, nr, od, oh,
                                  power, p)
                    continue
                lo = 0
                hi = 0
                _row_parts(&w, nr, power != POWER_GENERAL, &lo, &hi)
                _sum_scalar(&x[b, 0, 0], &out[b, 0, 0], &w, rows, nr, od, oh, 0, lo, power, p)
                _sum_row_pass(&x[b, 0, 0], &out[b, 0, 0], &w, rows, nr, od, oh, lo, hi, power,
                              p)
                _sum_scalar(&x[b, 0, 0], &out[b, 0, 0], &w, rows, nr, od, oh, hi,
                            w.size_out[2], power, p)


cdef inline void _add_pass(floating* gs, Py_ssize_t stride, const floating* q,
                           Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        gs[i * stride] += q[i]


cdef void _spread_row(const floating* grad_out, floating* grad_in, const Windows* w,
                      const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t od,
                      Py_ssize_t oh) noexcept nogil:
    """grad_in[cell] += grad_out / divisor for every real cell of every window of one
    row of a plane.  Each input cell receives its windows' shares in window order
    in every path: scalar windows left of the span, then row passes over the span
    with the window cells taken right to left, then scalar windows on the right."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], r, j, lo = 0, hi = 0, start, n, i, c
    cdef Py_ssize_t stride = w.span_stride, kw = w.span_cells
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    cdef floating q[CHUNK]
    cdef floating g
    _row_parts(w, nr, True, &lo, &hi)
    for ow in range(w.size_out[2]):
        if ow == lo and lo < hi:  # the span, in row passes
            start = lo
            while start < hi:
                n = min(<Py_ssize_t>CHUNK, hi - start)
                for i in range(n):
                    q[i] = grad_out[o_row + start + i] / <floating>_divisor(w, od, oh, start + i)
                for r in range(nr):
                    for j in range(kw - 1, -1, -1):
                        c = rows[r] + w.span_origin + start * stride + j * sw
                        if stride == 1:
                            _add_pass(grad_in + c, 1, q, n)
                        elif stride == 2:
                            _add_pass(grad_in + c, 2, q, n)
                        else:
                            _add_pass(grad_in + c, stride, q, n)
                start += n
        if lo <= ow < hi:
            continue
        w0 = w.first[2][ow]
        nw = w.count[2][ow] if nr > 0 else 0
        g = grad_out[o_row + ow] / <floating>_divisor(w, od, oh, ow)
        for r in range(nr):
            for j in range(nw):
                grad_in[rows[r] + w0 + j * sw] += g


cdef void _spread_tiled_plane(const floating* grad_out, floating* grad_in,
                              const Windows* w) noexcept nogil:
    """A plane tiled by 2x2 stride 2 windows: write grad_out / divisor to all four
    cells of each window (no zeroing pass, no adds)."""
    cdef Py_ssize_t od, oh, i, o_row, W = w.size_in[2], oW = w.size_out[2]
    cdef floating* r0
    cdef floating* r1
    cdef floating q
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            r0 = grad_in + (w.first[0][od] * w.size_in[1] + w.first[1][oh]) * W
            r1 = r0 + W
            o_row = _out_row(w, od, oh)
            for i in range(oW):
                q = grad_out[o_row + i] / <floating>_divisor(w, od, oh, i)
                r0[2 * i] = q
                r0[2 * i + 1] = q
                r1[2 * i] = q
                r1[2 * i + 1] = q


cdef void _spread_channels_tiled(const floating* grad_out, floating* grad_in, Py_ssize_t C,
                                 Py_ssize_t c0, Py_ssize_t nc, const Windows* w) noexcept nogil:
    """An NHWC block tiled by 2x2 stride 2 windows: write grad_out / divisor to the
    four cells of each window, channel-wise."""
    cdef Py_ssize_t od, oh, ow, i, o, W = w.size_in[2]
    cdef floating* p0
    cdef floating* p1
    cdef floating q, div
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            for ow in range(w.size_out[2]):
                p0 = grad_in + ((w.first[0][od] * w.size_in[1] + w.first[1][oh]) * W + 2 * ow) * C
                p1 = p0 + W * C
                o = (_out_row(w, od, oh) + ow) * C
                div = <floating>_divisor(w, od, oh, ow)
                for i in range(c0, c0 + nc):
                    q = grad_out[o + i] / div
                    p0[i] = q
                    p0[C + i] = q
                    p1[i] = q
                    p1[C + i] = q


cdef void _spread_channels(const floating* grad_out, floating* grad_in, Py_ssize_t C,
                           Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                           const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t od,
                           Py_ssize_t oh) noexcept nogil:
    """NHWC: grad_in[cell, c] += grad_out[c] / divisor, windows in order."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], r, j, cstart, n, i, o
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    cdef floating q[CHUNK]
    cdef floating div
    cdef floating* gp
    for ow in range(w.size_out[2]):
        w0 = w.first[2][ow]
        nw = w.count[2][ow] if nr > 0 else 0
        div = <floating>_divisor(w, od, oh, ow)
        o = (o_row + ow) * C
        cstart = c0
        while cstart < c0 + nc:
            n = min(<Py_ssize_t>CHUNK, c0 + nc - cstart)
            for i in range(n):
                q[i] = grad_out[o + cstart + i] / div
            for r in range(nr):
                for j in range(nw):
                    gp = grad_in + (rows[r] + w0 + j * sw) * C + cstart
                    for i in range(n):
                        gp[i] += q[i]
            cstart += n


def sum_backward(const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                 WindowTables tables, bint tiled, Py_ssize_t block, int num_threads):
    """Gradient of avg/sum pooling: every real cell gets grad_out / divisor."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = grad_out.shape[0], C = grad_out.shape[2], S = grad_in.shape[1]
    cdef Py_ssize_t u, b, c0, nc, od, oh, nr
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    cdef bint write = tiled and w.whole_plane
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        rows = &scratch[omp_get_thread_num(), 0]
        if write and C == 1:
            _spread_tiled_plane(&grad_out[b, 0, 0], &grad_in[b, 0, 0], &w)
            continue
        if write:
            _spread_channels_tiled(&grad_out[b, 0, 0], &grad_in[b, 0, 0], C, c0, nc, &w)
            continue
        _zero_block(&grad_in[b, 0, 0], S, C, c0, nc)
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                if C > 1:
                    _spread_channels(&grad_out[b, 0, 0], &grad_in[b, 0, 0], C, c0, nc, &w, rows,
                                     nr, od, oh)
                else:
                    _spread_row(&grad_out[b, 0, 0], &grad_in[b, 0, 0], &w, rows, nr, od, oh)


def lp_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] out,
                const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                WindowTables tables, double p, Py_ssize_t block, int num_threads):
    """Gradient of LP pooling: d out / d x_i = x_i^(p-1) / out^(p-1).

    A window whose output is 0 passes no gradient (the derivative is undefined
    there; PyTorch returns NaN)."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], S = x.shape[1]
    cdef Py_ssize_t u, b, c0, nc, od, oh, ow, nr, r, j, c, w0, nw, s, o
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    cdef floating y, q, v
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        rows = &scratch[omp_get_thread_num(), 0]
        _zero_block(&grad_in[b, 0, 0], S, C, c0, nc)
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                for ow in range(w.size_out[2]):
                    o = _out_row(&w, od, oh) + ow
                    w0 = w.first[2][ow]
                    nw = w.count[2][ow]
                    for c in range(c0, c0 + nc):
                        y = out[b, o, c]
                        if y == 0:
                            continue
                        if p == 1.0:
                            q = grad_out[b, o, c]
                        elif p == 2.0:
                            q = grad_out[b, o, c] / y
                        else:
                            q = grad_out[b, o, c] / <floating>pow(y, p - 1.0)
                        for r in range(nr):
                            for j in range(nw):
                                s = rows[r] + w0 + j * w.step[2]
                                v = x[b, s, c]
                                if p == 1.0:
                                    grad_in[b, s, c] += q
                                elif p == 2.0:
                                    grad_in[b, s, c] += q * v
                                else:
                                    grad_in[b, s, c] += q * <floating>pow(v, p - 1.0)


# ----------------------------------------------------------------------------- stochastic
cdef inline Py_ssize_t _sample_cell(const floating* x, Py_ssize_t C, const Py_ssize_t* rows,
                                    Py_ssize_t nr, Py_ssize_t w0, Py_ssize_t nw, Py_ssize_t sw,
                                    double u, int* code) noexcept nogil:
    """The cell of one window (channel-offset ``x``) drawn with p_i = a_i / sum(a).

    Inverse-CDF sampling with u in [0, 1): the first cell whose running sum
    (double, scan order) exceeds u * sum(a).  Only a positive cell can be that
    first crossing, so zero cells are never drawn.  If rounding leaves the
    threshold at the total, the last positive cell; a window of zeros draws
    its first cell (Caffe's rule).  Selects, not branches: the outcome is random."""
    cdef Py_ssize_t r, j, s, pick = rows[0] + w0, last = pick
    cdef double total = 0, running = 0, threshold, a
    cdef int k = 0, pick_code = 0, last_code = 0
    cdef bint found = False, now
    for r in range(nr):
        for j in range(nw):
            total = total + x[(rows[r] + w0 + j * sw) * C]
    threshold = u * total
    for r in range(nr):
        for j in range(nw):
            s = rows[r] + w0 + j * sw
            a = x[s * C]
            running = running + a
            now = (running > threshold) & (not found)
            pick = s if now else pick
            pick_code = k if now else pick_code
            found = found | now
            last = s if a > 0 else last
            last_code = k if a > 0 else last_code
            k += 1
    code[0] = pick_code if found else last_code
    return pick if found else last


def stochastic_train_forward(const floating[:, :, ::1] x, const double[:, :, ::1] uniforms,
                             floating[:, :, ::1] out, code_t[:, :, ::1] codes,
                             WindowTables tables, bint store, int num_threads):
    """Stochastic pooling, training: one cell per window drawn with p_i = a_i / sum(a)
    (see _sample_cell), from the caller's uniforms (same shape as out).  The
    codes route the gradient exactly like max pooling's."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], b, od, oh, ow, nr, c, o, s
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    cdef int k
    for b in prange(B, nogil=True, schedule="static", num_threads=num_threads):
        rows = &scratch[omp_get_thread_num(), 0]
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                for ow in range(w.size_out[2]):
                    o = _out_row(&w, od, oh) + ow
                    for c in range(C):
                        # Assigned here so Cython makes k thread-private: it is otherwise only
                        # written through &k, and a shared k raced between threads.
                        k = 0
                        s = _sample_cell(&x[b, 0, c], C, rows, nr, w.first[2][ow],
                                         w.count[2][ow], w.step[2], uniforms[b, o, c], &k)
                        out[b, o, c] = x[b, s, c]
                        if store:
                            if code_t is uint8_t:
                                codes[b, o, c] = <uint8_t>k
                            else:
                                codes[b, o, c] = <int32_t>s


def stochastic_eval_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                            WindowTables tables, int num_threads):
    """Stochastic pooling, inference: sum(a^2) / sum(a) per window (0 for a zero window)."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], b, od, oh, ow, nr, r, j, c, w0, nw, o
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    cdef floating s1, s2, v
    for b in prange(B, nogil=True, schedule="static", num_threads=num_threads):
        rows = &scratch[omp_get_thread_num(), 0]
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                for ow in range(w.size_out[2]):
                    o = _out_row(&w, od, oh) + ow
                    w0 = w.first[2][ow]
                    nw = w.count[2][ow]
                    for c in range(C):
                        s1 = 0
                        s2 = 0
                        for r in range(nr):
                            for j in range(nw):
                                v = x[b, rows[r] + w0 + j * w.step[2], c]
                                s1 = s1 + v
                                s2 = s2 + v * v
                        out[b, o, c] = s2 / s1 if s1 != 0 else 0


def stochastic_eval_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] out,
                             const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                             WindowTables tables, int num_threads):
    """d/da_i of sum(a^2)/sum(a) = (2 a_i - out) / sum(a); nothing for a zero window."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], S = x.shape[1]
    cdef Py_ssize_t b, od, oh, ow, nr, r, j, c, w0, nw, o, s
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    cdef floating s1, q, y
    for b in prange(B, nogil=True, schedule="static", num_threads=num_threads):
        rows = &scratch[omp_get_thread_num(), 0]
        _zero_block(&grad_in[b, 0, 0], S, C, 0, C)
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                for ow in range(w.size_out[2]):
                    o = _out_row(&w, od, oh) + ow
                    w0 = w.first[2][ow]
                    nw = w.count[2][ow]
                    for c in range(C):
                        s1 = 0
                        for r in range(nr):
                            for j in range(nw):
                                s1 = s1 + x[b, rows[r] + w0 + j * w.step[2], c]
                        if s1 == 0:
                            continue
                        q = grad_out[b, o, c] / s1
                        y = out[b, o, c]
                        for r in range(nr):
                            for j in range(nw):
                                s = rows[r] + w0 + j * w.step[2]
                                grad_in[b, s, c] += q * (2 * x[b, s, c] - y)


# ----------------------------------------------------------------------------- unpooling
def unpool_forward(const pool_t[:, ::1] x, const int64_t[:, ::1] indices, pool_t[:, ::1] out,
                   int num_threads):
    """out_plane[indices] = x (out zero-filled first); index -1 (no cell) is skipped.

    Later elements win when indices repeat (scan order), deterministically.
    The caller has checked every index is in [-1, plane size); the bound is
    tested here again so no index can ever write outside the plane."""
    cdef Py_ssize_t P = x.shape[0], n = x.shape[1], S = out.shape[1], p, i, k
    for p in prange(P, nogil=True, schedule="static", num_threads=num_threads):
        memset(&out[p, 0], 0, S * sizeof(pool_t))
        for i in range(n):
            k = indices[p, i]
            if 0 <= k < S:
                out[p, k] = x[p, i]


def unpool_backward(const floating[:, ::1] grad_out, const int64_t[:, ::1] indices,
                    floating[:, ::1] grad_in, int num_threads):
    """grad_in = grad_out gathered at the indices (0 where the index is -1)."""
    cdef Py_ssize_t P = grad_in.shape[0], n = grad_in.shape[1], S = grad_out.shape[1], p, i, k
    for p in prange(P, nogil=True, schedule="static", num_threads=num_threads):
        for i in range(n):
            k = indices[p, i]
            grad_in[p, i] = grad_out[p, k] if 0 <= k < S else 0


# ============================================================================= fractional max pooling
# Fractional max pooling (Graham 2014) draws one sample per (n, c) plane, so every
# plane has its own window starts: the shared WindowTables above cannot express it.
# These two entries take per-plane start tables instead.  A plane is (b, c) of the
# (B, S, C) view (NCHW: B = N*C planes, C = 1; NHWC: B = N, C channels), numbered
# p = b * C + c.  Windows are whole (kd x kh x kw cells, always inside the input),
# scanned row-major with PyTorch's rule (v > best or v is NaN, from -inf, the
# first cell's index kept when nothing beats -inf).  Each plane is one unit of
# work, walked in output order by one thread, so results are bit-identical for
# any thread count.

cdef bint _starts_fit(const int64_t[:, ::1] starts, Py_ssize_t last) noexcept nogil:
    """Every start in [0, last]?"""
    cdef Py_ssize_t i, j
    for i in range(starts.shape[0]):
        for j in range(starts.shape[1]):
            if starts[i, j] < 0 or starts[i, j] > last:
                return False
    return True


cdef void _fractional_plane(const floating* x, floating* out, int64_t* indices, Py_ssize_t C,
                            const int64_t* sd, const int64_t* sh, const int64_t* sw,
                            Py_ssize_t od_n, Py_ssize_t oh_n, Py_ssize_t ow_n,
                            Py_ssize_t size_h, Py_ssize_t size_w, Py_ssize_t kd, Py_ssize_t kh,
                            Py_ssize_t kw) noexcept nogil:
    """One plane: x, out and indices point at its first element, consecutive cells C apart.
    Raw pointers and locals only, so the compiler keeps everything in registers; the
    select is branch-free (random data would mispredict a branch half of the time)."""
    cdef Py_ssize_t od, oh, ow, jd, jh, jw, o = 0, row, s, first, best_s
    cdef floating v, best
    cdef bint better
    for od in range(od_n):
        for oh in range(oh_n):
            for ow in range(ow_n):
                first = (sd[od] * size_h + sh[oh]) * size_w + sw[ow]
                best = -INFINITY
                best_s = first
                for jd in range(kd):
                    for jh in range(kh):
                        row = first + (jd * size_h + jh) * size_w
                        for jw in range(kw):
                            s = row + jw
                            v = x[s * C]
                            better = (v > best) | (v != v)
                            best = v if better else best
                            best_s = s if better else best_s
                out[o * C] = best
                indices[o * C] = best_s
                o += 1


def fractional_max_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                           int64_t[:, :, ::1] indices, const int64_t[:, ::1] start_d,
                           const int64_t[:, ::1] start_h, const int64_t[:, ::1] start_w,
                           Py_ssize_t size_d, Py_ssize_t size_h, Py_ssize_t size_w,
                           Py_ssize_t kd, Py_ssize_t kh, Py_ssize_t kw, int num_threads):
    """Max of each window of x (B, D*H*W, C) into out (B, Do*Ho*Wo, C), the flat
    plane index of the winner into ``indices`` (same shape as out).

    ``start_*[p, i]``: first cell along that axis of output position i of plane p
    (p = b * C + c); the caller guarantees ``0 <= start <= size - k``, checked
    here again so no window can read outside its plane.
    """
    cdef Py_ssize_t B = x.shape[0], S = x.shape[1], C = x.shape[2]
    cdef Py_ssize_t od_n = start_d.shape[1], oh_n = start_h.shape[1], ow_n = start_w.shape[1]
    cdef Py_ssize_t P = B * C, p, b, c
    if (S != size_d * size_h * size_w or out.shape[0] != B or out.shape[2] != C
            or out.shape[1] != od_n * oh_n * ow_n or indices.shape[0] != B
            or indices.shape[1] != out.shape[1] or indices.shape[2] != C
            or start_d.shape[0] != P or start_h.shape[0] != P or start_w.shape[0] != P):
        raise ValueError("fractional_max_forward: mismatched shapes")
    if min(kd, kh, kw) < 1:
        raise ValueError("fractional_max_forward: kernel sizes must be >= 1")
    if not (_starts_fit(start_d, size_d - kd) and _starts_fit(start_h, size_h - kh)
            and _starts_fit(start_w, size_w - kw)):
        raise ValueError("fractional_max_forward: a window start is out of range")
    if P == 0 or out.shape[1] == 0:
        return
    for p in prange(P, nogil=True, schedule="static", num_threads=num_threads):
        b = p // C
        c = p % C
        _fractional_plane(&x[b, 0, c], &out[b, 0, c], &indices[b, 0, c], C, &start_d[p, 0],
                          &start_h[p, 0], &start_w[p, 0], od_n, oh_n, ow_n, size_h, size_w,
                          kd, kh, kw)


cdef void _fractional_route(const floating* grad_out, const int64_t* indices, floating* grad_in,
                            Py_ssize_t C, Py_ssize_t O, Py_ssize_t S) noexcept nogil:
    cdef Py_ssize_t o, s, k
    for s in range(S):
        grad_in[s * C] = 0
    for o in range(O):
        k = indices[o * C]
        if 0 <= k < S:
            grad_in[k * C] += grad_out[o * C]


def fractional_max_backward(const floating[:, :, ::1] grad_out, const int64_t[:, :, ::1] indices,
                            floating[:, :, ::1] grad_in, int num_threads):
    """grad_in (B, S, C) zeroed, then grad_in[b, indices[b, o, c], c] += grad_out[b, o, c]
    for every output o in order (one plane per unit of work).  Indices outside
    [0, S) (none come from the forward) are skipped."""
    cdef Py_ssize_t B = grad_in.shape[0], S = grad_in.shape[1], C = grad_in.shape[2]
    cdef Py_ssize_t O = grad_out.shape[1], P = B * C, p, b, c
    if (grad_out.shape[0] != B or grad_out.shape[2] != C or indices.shape[0] != B
            or indices.shape[1] != O or indices.shape[2] != C):
        raise ValueError("fractional_max_backward: mismatched shapes")
    if P == 0 or S == 0:
        return
    for p in prange(P, nogil=True, schedule="static", num_threads=num_threads):
        b = p // C
        c = p % C
        _fractional_route(&grad_out[b, 0, c] if O else NULL, &indices[b, 0, c] if O else NULL,
                          &grad_in[b, 0, c], C, O, S)
