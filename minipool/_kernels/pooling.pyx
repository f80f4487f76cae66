"""Pooling kernels: max/min, avg/sum/LP, stochastic and unpooling, forward and backward.

Every pooling kind walks the same thing: *windows*.  Python builds, once per
call geometry, per-axis tables (``WindowTables``): for each output position
along an axis, the first real (in-bounds) input cell, the number of real
cells (stepping by the dilation) and the divisor contribution.  A window is
the product of its three axes' cell lists, scanned row-major (d, h, w).
1-d and 2-d pooling are 3-d pooling with size-1 axes; adaptive and global
pooling are just other tables.

Layout.  Every general kernel sees its input as ``(B, S, C)``: B independent
blocks (images), S = D*H*W spatial cells, C channels innermost.  Channels-last
data (NHWC) is that layout as is, and the inner loop runs over contiguous
channels (the compiler vectorises it).  Channels-first data (NCHW) is the
same layout with B = N*C planes and C = 1.  For the shapes that dominate real
networks on NCHW data (2x2 stride 2; 3x3 stride 2 padding 1) a fast path walks
whole rows of a plane so the compiler vectorises along W; its border windows
fall back to the general code, so the two can never disagree.

Parallelism.  The OpenMP team splits the work into *units*: one block b and a
slice of channels.  A unit owns every output and every gradient cell of its
(b, channel slice), so backward scatters are plain ``+=`` without atomics and
the result is bit-identical for any thread count.

Argmax storage ("codes").  Max/min/stochastic forward store, per output, which
cell won: a uint8 *ordinal* within the window's real cells when every window
has at most 254 cells (255 marks "no cell"), else the int32 offset in the
plane (-1 marks "no cell").  ``codes_to_indices`` turns uint8 ordinals into
PyTorch's int64 plane indices only when a caller asks for them.
"""
from cython.parallel cimport prange
from libc.math cimport INFINITY, pow, sqrt
from libc.stdint cimport (INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN, int32_t, int64_t,
                          uint8_t)
from libc.string cimport memset

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

cdef enum:
    NO_CELL_U8 = 255        # uint8 code of a window with no real cell
    FAST_NONE = 0
    FAST_2X2 = 1            # kernel 2, stride 2, no padding, dilation 1 (H and W)
    FAST_3X3 = 2            # kernel 3, stride 2, padding 1, dilation 1 (H and W)
    POWER_GENERAL = 0       # LP pooling with any p: pow(x, p) and pow(s, 1/p)
    POWER_ONE = 1           # plain sums (avg, sum, LP with p = 1)
    POWER_TWO = 2           # x*x and sqrt

NO_CELL_CODE = NO_CELL_U8


cdef struct Windows:
    Py_ssize_t size_in[3]
    Py_ssize_t size_out[3]
    Py_ssize_t step[3]
    const Py_ssize_t* first[3]      # first real cell of each output position, per axis
    const Py_ssize_t* count[3]      # number of real cells, per axis
    const double* divisor[3]        # divisor factor, per axis (product = window divisor)
    Py_ssize_t full_lo[3]           # outputs [full_lo, full_hi) have whole windows (fast paths)
    Py_ssize_t full_hi[3]
    Py_ssize_t max_rows             # largest count_d * count_h: scratch length per thread
    int fast


cdef class WindowTables:
    """The per-axis window tables of one call geometry, in the form the kernels read.

    ``first``, ``count`` (intp) and ``divisor`` (float64) are three arrays each
    (axes d, h, w) of the output length of that axis; ``full`` holds per axis
    the range ``(lo, hi)`` of outputs whose window is whole; ``fast`` is 0, 1
    (2x2 stride 2) or 2 (3x3 stride 2 padding 1).
    """
    cdef Windows w
    cdef object _keep           # the arrays the pointers in ``w`` point into
    cdef readonly Py_ssize_t max_rows

    def __init__(self, first, count, divisor, size_in, step, full, int fast):
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
            self.w.full_lo[a] = full[a][0]
            self.w.full_hi[a] = max(full[a][0], full[a][1])
        self.w.max_rows = max(1, int(np.max(keep[1])) * int(np.max(keep[4])))
        self.w.fast = fast
        self.max_rows = self.w.max_rows
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


cdef inline void _fast_span(const Windows* w, Py_ssize_t oh, Py_ssize_t* lo,
                            Py_ssize_t* hi) noexcept nogil:
    """The outputs [lo, hi) of row oh that a fast path may take (none if oh is a border row)."""
    if w.full_lo[1] <= oh < w.full_hi[1]:
        lo[0] = w.full_lo[2]
        hi[0] = w.full_hi[2]
    else:
        lo[0] = 0
        hi[0] = 0


cdef inline double _divisor(const Windows* w, Py_ssize_t od, Py_ssize_t oh,
                            Py_ssize_t ow) noexcept nogil:
    return w.divisor[0][od] * w.divisor[1][oh] * w.divisor[2][ow]


cdef inline Py_ssize_t _cell(const Py_ssize_t* rows, Py_ssize_t code, Py_ssize_t w0,
                             Py_ssize_t nw, Py_ssize_t sw) noexcept nogil:
    """Spatial offset of the window cell with ordinal ``code``."""
    return rows[code // nw] + w0 + (code % nw) * sw


cdef inline Py_ssize_t _units(Py_ssize_t B, Py_ssize_t C, Py_ssize_t block) noexcept nogil:
    return B * ((C + block - 1) // block) if C > 0 else 0


def _scratch(WindowTables tables, int num_threads):
    return np.empty((max(1, num_threads), tables.max_rows), dtype=np.intp)


# ----------------------------------------------------------------------------- max / min
cdef inline bint _beats(pool_t v, pool_t best, bint is_min) noexcept nogil:
    """PyTorch's rule: strictly better (so the first tie wins) or NaN (so NaN propagates)."""
    if pool_t is float or pool_t is double:
        return ((v < best) if is_min else (v > best)) | (v != v)
    else:
        return (v < best) if is_min else (v > best)


cdef inline pool_t _worst(const pool_t* type_tag, bint is_min) noexcept nogil:
    """The start value of a max (min) scan: -inf (+inf), or the integer type's limit."""
    if pool_t is float or pool_t is double:
        return INFINITY if is_min else -INFINITY
    elif pool_t is int32_t:
        return INT32_MAX if is_min else INT32_MIN
    elif pool_t is int64_t:
        return INT64_MAX if is_min else INT64_MIN
    else:
        return 255 if is_min else 0


cdef inline void _take(pool_t v, uint8_t code, pool_t* best, uint8_t* best_code,
                       bint is_min) noexcept nogil:
    """Branch-free update of a running max (min) and its window ordinal (fast paths)."""
    cdef bint better = _beats(v, best[0], is_min)
    best[0] = v if better else best[0]
    best_code[0] = code if better else best_code[0]


cdef void _extreme_windows(const pool_t* x, pool_t* out, code_t* codes, Py_ssize_t C,
                           Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                           const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t o_row,
                           Py_ssize_t ow_lo, Py_ssize_t ow_hi, bint is_min) noexcept nogil:
    """General max/min of windows (od, oh, ow_lo..ow_hi) for channels [c0, c0+nc).

    ``x`` is one block (S_in, C); ``out``/``codes`` one block (S_out, C);
    ``codes`` is NULL when no argmax is kept."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], r, j, s, c, code
    cdef pool_t worst = _worst(x, is_min), v, m
    cdef pool_t* op
    cdef code_t* kp
    cdef code_t stored, none
    cdef const pool_t* xp
    cdef bint better
    if code_t is uint8_t:
        none = NO_CELL_U8
    else:
        none = -1
    for ow in range(ow_lo, ow_hi):
        w0 = w.first[2][ow]
        nw = w.count[2][ow] if nr > 0 else 0
        op = out + (o_row + ow) * C + c0
        kp = codes + (o_row + ow) * C + c0 if codes != NULL else NULL
        for c in range(nc):
            op[c] = worst
        if kp != NULL:
            if nw == 0:
                stored = none
            elif code_t is uint8_t:
                stored = 0
            else:
                stored = <int32_t>(rows[0] + w0)
            for c in range(nc):
                kp[c] = stored
        for r in range(nr):
            for j in range(nw):
                s = rows[r] + w0 + j * sw
                xp = x + s * C + c0
                if kp == NULL:
                    for c in range(nc):
                        v = xp[c]
                        m = op[c]
                        op[c] = v if _beats(v, m, is_min) else m
                else:
                    if code_t is uint8_t:
                        stored = <uint8_t>(r * nw + j)
                    else:
                        stored = <int32_t>s
                    for c in range(nc):
                        v = xp[c]
                        m = op[c]
                        better = _beats(v, m, is_min)
                        op[c] = v if better else m
                        kp[c] = stored if better else kp[c]


cdef void _extreme_fast_span(const pool_t* x, pool_t* out, uint8_t* codes, const Windows* w,
                             Py_ssize_t oh, Py_ssize_t lo, Py_ssize_t hi,
                             bint is_min) noexcept nogil:
    """Whole windows lo..hi of row oh of one plane: 2x2 s2 or 3x3 s2 p1, vectorised along W."""
    cdef Py_ssize_t W = w.size_in[2], ow, c
    cdef pool_t* o = out + oh * w.size_out[2]
    cdef uint8_t* k = codes + oh * w.size_out[2] if codes != NULL else NULL
    cdef const pool_t* r0
    cdef const pool_t* r1
    cdef const pool_t* r2
    cdef pool_t m
    cdef uint8_t code
    if lo >= hi:
        return
    if w.fast == FAST_2X2:
        r0 = x + 2 * oh * W
        r1 = r0 + W
        if k == NULL:
            for ow in range(lo, hi):
                c = 2 * ow
                m = r0[c]
                _take(r0[c + 1], 1, &m, &code, is_min)
                _take(r1[c], 2, &m, &code, is_min)
                _take(r1[c + 1], 3, &m, &code, is_min)
                o[ow] = m
        else:
            for ow in range(lo, hi):
                c = 2 * ow
                m = r0[c]
                code = 0
                _take(r0[c + 1], 1, &m, &code, is_min)
                _take(r1[c], 2, &m, &code, is_min)
                _take(r1[c + 1], 3, &m, &code, is_min)
                o[ow] = m
                k[ow] = code
    else:  # FAST_3X3: window ow covers columns 2*ow - 1 .. 2*ow + 1
        r0 = x + (2 * oh - 1) * W - 1
        r1 = r0 + W
        r2 = r1 + W
        for ow in range(lo, hi):
            c = 2 * ow
            m = r0[c]
            code = 0
            _take(r0[c + 1], 1, &m, &code, is_min)
            _take(r0[c + 2], 2, &m, &code, is_min)
            _take(r1[c], 3, &m, &code, is_min)
            _take(r1[c + 1], 4, &m, &code, is_min)
            _take(r1[c + 2], 5, &m, &code, is_min)
            _take(r2[c], 6, &m, &code, is_min)
            _take(r2[c + 1], 7, &m, &code, is_min)
            _take(r2[c + 2], 8, &m, &code, is_min)
            o[ow] = m
            if k != NULL:
                k[ow] = code


cdef void _extreme_block(const pool_t* x, pool_t* out, code_t* codes, Py_ssize_t C,
                         Py_ssize_t c0, Py_ssize_t nc, const Windows* w, Py_ssize_t* rows,
                         bint is_min) noexcept nogil:
    """Max/min of every window of one unit; planes (C == 1) use the fast path when set."""
    cdef Py_ssize_t od, oh, nr, lo, hi, o_row
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            o_row = _out_row(w, od, oh)
            lo = hi = 0
            if code_t is uint8_t:
                if C == 1 and w.fast != FAST_NONE:
                    _fast_span(w, oh, &lo, &hi)
            # windows in (oh, ow) order: border, fast span, border
            _extreme_windows(x, out, codes, C, c0, nc, w, rows, nr, o_row, 0, lo, is_min)
            if code_t is uint8_t:
                _extreme_fast_span(x, out, codes, w, oh, lo, hi, is_min)
            _extreme_windows(x, out, codes, C, c0, nc, w, rows, nr, o_row, hi,
                             w.size_out[2], is_min)


def extreme_forward(const pool_t[:, :, ::1] x, pool_t[:, :, ::1] out, code_t[:, :, ::1] codes,
                    WindowTables tables, bint is_min, bint store, Py_ssize_t block,
                    int num_threads):
    """Max (``is_min`` False) or min pooling of x (B, S_in, C) into out (B, S_out, C).

    With ``store`` the winning cell of each output goes to ``codes`` (same shape
    as out); without it ``codes`` is ignored (pass any 1x1x1 uint8 array).
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], u, b, c0, nc
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef code_t* kp
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        kp = &codes[b, 0, 0] if store else NULL
        _extreme_block(&x[b, 0, 0], &out[b, 0, 0], kp, C, c0, nc, &w,
                       &scratch[omp_get_thread_num(), 0], is_min)


cdef void _zero_block(floating* grad_in, Py_ssize_t S, Py_ssize_t C, Py_ssize_t c0,
                      Py_ssize_t nc) noexcept nogil:
    cdef Py_ssize_t s
    if nc == C:
        memset(grad_in, 0, S * C * sizeof(floating))
    else:
        for s in range(S):
            memset(grad_in + s * C + c0, 0, nc * sizeof(floating))


cdef void _route_windows(const floating* grad_out, const code_t* codes, floating* grad_in,
                         Py_ssize_t C, Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                         const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t o_row,
                         Py_ssize_t ow_lo, Py_ssize_t ow_hi) noexcept nogil:
    """grad_in[winner] += grad_out for windows (od, oh, ow_lo..ow_hi) (general path)."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], c, s, o
    cdef code_t k
    for ow in range(ow_lo, ow_hi):
        w0 = w.first[2][ow]
        nw = w.count[2][ow]
        o = (o_row + ow) * C + c0
        for c in range(nc):
            k = codes[o + c]
            if code_t is uint8_t:
                if k == NO_CELL_U8 or nr == 0:
                    continue
                s = _cell(rows, k, w0, nw, sw)
            else:
                if k < 0:
                    continue
                s = k
            grad_in[s * C + c0 + c] += grad_out[o + c]


cdef void _route_fast_span(const floating* grad_out, const uint8_t* codes, floating* grad_in,
                           const Windows* w, Py_ssize_t oh, Py_ssize_t lo,
                           Py_ssize_t hi) noexcept nogil:
    """Fast-path windows of one plane row.  2x2 s2 windows tile the plane, so each
    cell is *written* (no zeroing pass needed); 3x3 s2 windows overlap and add."""
    cdef Py_ssize_t W = w.size_in[2], ow, c
    cdef const floating* g = grad_out + oh * w.size_out[2]
    cdef const uint8_t* k = codes + oh * w.size_out[2]
    cdef floating* r0
    cdef floating* r1
    cdef floating gv, zero = 0
    cdef uint8_t kv
    if lo >= hi:
        return
    if w.fast == FAST_2X2:
        r0 = grad_in + 2 * oh * W
        r1 = r0 + W
        for ow in range(lo, hi):
            c = 2 * ow
            gv = g[ow]
            kv = k[ow]
            r0[c] = gv if kv == 0 else zero
            r0[c + 1] = gv if kv == 1 else zero
            r1[c] = gv if kv == 2 else zero
            r1[c + 1] = gv if kv == 3 else zero
    else:
        r0 = grad_in + (2 * oh - 1) * W - 1
        for ow in range(lo, hi):
            kv = k[ow]
            r0[(kv // 3) * W + 2 * ow + kv % 3] += g[ow]


def extreme_backward(const floating[:, :, ::1] grad_out, const code_t[:, :, ::1] codes,
                     floating[:, :, ::1] grad_in, WindowTables tables, bint tiled,
                     Py_ssize_t block, int num_threads):
    """Route grad_out (B, S_out, C) to the cells recorded in ``codes`` (grad_in += ...).

    ``tiled`` (2x2 s2 fast path whose windows cover the plane exactly) lets the
    kernel write every input cell directly instead of zeroing and adding.
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t B = grad_out.shape[0], C = grad_out.shape[2], S = grad_in.shape[1]
    cdef Py_ssize_t u, b, c0, nc, od, oh, nr, lo, hi, o_row
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    cdef bint fast
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        rows = &scratch[omp_get_thread_num(), 0]
        fast = C == 1 and w.fast != FAST_NONE
        if code_t is int32_t:
            fast = False  # fast paths store uint8 ordinals only
        if not (fast and tiled):
            _zero_block(&grad_in[b, 0, 0], S, C, c0, nc)
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                o_row = _out_row(&w, od, oh)
                lo = 0
                hi = 0
                if fast:
                    _fast_span(&w, oh, &lo, &hi)
                # windows in (oh, ow) order, so overlapping windows add up in a fixed order
                _route_windows(&grad_out[b, 0, 0], &codes[b, 0, 0], &grad_in[b, 0, 0], C, c0,
                               nc, &w, rows, nr, o_row, 0, lo)
                if code_t is uint8_t:
                    _route_fast_span(&grad_out[b, 0, 0], &codes[b, 0, 0], &grad_in[b, 0, 0],
                                     &w, oh, lo, hi)
                _route_windows(&grad_out[b, 0, 0], &codes[b, 0, 0], &grad_in[b, 0, 0], C, c0,
                               nc, &w, rows, nr, o_row, hi, w.size_out[2])


def codes_to_indices(const code_t[:, :, ::1] codes, int64_t[:, :, ::1] indices,
                     WindowTables tables, int num_threads):
    """PyTorch's int64 indices (flat position in the input plane, -1 for no cell)."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = codes.shape[0], C = codes.shape[2], b, od, oh, ow, c, nr, o, w0, nw
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    cdef code_t k
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
                        k = codes[b, o, c]
                        if code_t is uint8_t:
                            if k == NO_CELL_U8 or nr == 0 or nw == 0:
                                indices[b, o, c] = -1
                            else:
                                indices[b, o, c] = _cell(rows, k, w0, nw, w.step[2])
                        else:
                            indices[b, o, c] = k


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


cdef void _sum_windows(const floating* x, floating* out, Py_ssize_t C, Py_ssize_t c0,
                       Py_ssize_t nc, const Windows* w, const Py_ssize_t* rows, Py_ssize_t nr,
                       Py_ssize_t od, Py_ssize_t oh, Py_ssize_t ow_lo, Py_ssize_t ow_hi,
                       int power, double p) noexcept nogil:
    """out = (sum over real cells of x^p)^(1/p) / divisor (general path, channels inner).

    Sums start at 0 and run in scan order, in every path, so layouts and fast
    paths agree bit for bit."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], r, j, c
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    cdef floating* op
    cdef const floating* xp
    cdef floating div
    for ow in range(ow_lo, ow_hi):
        w0 = w.first[2][ow]
        nw = w.count[2][ow] if nr > 0 else 0
        op = out + (o_row + ow) * C + c0
        div = <floating>_divisor(w, od, oh, ow)
        for c in range(nc):
            op[c] = 0
        for r in range(nr):
            for j in range(nw):
                xp = x + (rows[r] + w0 + j * sw) * C + c0
                if power == POWER_ONE:
                    for c in range(nc):
                        op[c] += xp[c]
                else:
                    for c in range(nc):
                        op[c] += _raise(xp[c], power, p)
        if power == POWER_ONE:
            for c in range(nc):
                op[c] = op[c] / div
        else:
            for c in range(nc):
                op[c] = _root(op[c], power, p) / div


cdef void _sum_fast_span(const floating* x, floating* out, const Windows* w, Py_ssize_t oh,
                         Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Plain sums / divisor of whole windows lo..hi of row oh (2x2 s2 or 3x3 s2 p1)."""
    cdef Py_ssize_t W = w.size_in[2], ow, c
    cdef floating* o = out + oh * w.size_out[2]
    cdef const floating* r0
    cdef const floating* r1
    cdef const floating* r2
    cdef floating s, div
    if lo >= hi:
        return
    div = <floating>_divisor(w, 0, oh, lo)  # whole windows share one divisor
    if w.fast == FAST_2X2:
        r0 = x + 2 * oh * W
        r1 = r0 + W
        for ow in range(lo, hi):
            c = 2 * ow
            s = 0
            s += r0[c]
            s += r0[c + 1]
            s += r1[c]
            s += r1[c + 1]
            o[ow] = s / div
    else:
        r0 = x + (2 * oh - 1) * W - 1
        r1 = r0 + W
        r2 = r1 + W
        for ow in range(lo, hi):
            c = 2 * ow
            s = 0
            s += r0[c]
            s += r0[c + 1]
            s += r0[c + 2]
            s += r1[c]
            s += r1[c + 1]
            s += r1[c + 2]
            s += r2[c]
            s += r2[c + 1]
            s += r2[c + 2]
            o[ow] = s / div


def sum_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out, WindowTables tables,
                int power, double p, Py_ssize_t block, int num_threads):
    """Average / sum / LP pooling of x (B, S_in, C) into out (B, S_out, C).

    ``power`` 1: sum / divisor (avg; sum pooling has divisor 1); 2: sqrt of the
    sum of squares; 0: (sum x^p)^(1/p).  LP tables have divisor 1.
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], u, b, c0, nc, od, oh, nr, lo, hi
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        rows = &scratch[omp_get_thread_num(), 0]
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                lo = 0
                hi = 0
                if C == 1 and w.fast != FAST_NONE and power == POWER_ONE:
                    _fast_span(&w, oh, &lo, &hi)
                _sum_windows(&x[b, 0, 0], &out[b, 0, 0], C, c0, nc, &w, rows, nr, od, oh, 0, lo,
                             power, p)
                _sum_fast_span(&x[b, 0, 0], &out[b, 0, 0], &w, oh, lo, hi)
                _sum_windows(&x[b, 0, 0], &out[b, 0, 0], C, c0, nc, &w, rows, nr, od, oh, hi,
                             w.size_out[2], power, p)


cdef void _spread_windows(const floating* grad_out, floating* grad_in, Py_ssize_t C,
                          Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                          const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t od, Py_ssize_t oh,
                          Py_ssize_t ow_lo, Py_ssize_t ow_hi) noexcept nogil:
    """grad_in[cell] += grad_out / divisor for every real cell (general path)."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], r, j, c
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    cdef const floating* gp
    cdef floating* ip
    cdef floating div
    for ow in range(ow_lo, ow_hi):
        w0 = w.first[2][ow]
        nw = w.count[2][ow] if nr > 0 else 0
        gp = grad_out + (o_row + ow) * C + c0
        div = <floating>_divisor(w, od, oh, ow)
        for r in range(nr):
            for j in range(nw):
                ip = grad_in + (rows[r] + w0 + j * sw) * C + c0
                for c in range(nc):
                    ip[c] += gp[c] / div


cdef void _spread_fast_span(const floating* grad_out, floating* grad_in, const Windows* w,
                            Py_ssize_t oh, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Fast-path windows of one plane row: 2x2 s2 writes (the windows tile the plane),
    3x3 s2 p1 adds (they overlap)."""
    cdef Py_ssize_t W = w.size_in[2], ow, c, i
    cdef const floating* g = grad_out + oh * w.size_out[2]
    cdef floating* r0
    cdef floating* r1
    cdef floating* r2
    cdef floating q, div
    if lo >= hi:
        return
    div = <floating>_divisor(w, 0, oh, lo)
    if w.fast == FAST_2X2:
        r0 = grad_in + 2 * oh * W
        r1 = r0 + W
        for ow in range(lo, hi):
            c = 2 * ow
            q = g[ow] / div
            r0[c] = q
            r0[c + 1] = q
            r1[c] = q
            r1[c + 1] = q
    else:
        r0 = grad_in + (2 * oh - 1) * W - 1
        r1 = r0 + W
        r2 = r1 + W
        for ow in range(lo, hi):
            c = 2 * ow
            q = g[ow] / div
            for i in range(3):
                r0[c + i] += q
                r1[c + i] += q
                r2[c + i] += q


def sum_backward(const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                 WindowTables tables, bint tiled, Py_ssize_t block, int num_threads):
    """Gradient of avg/sum pooling: every real cell gets grad_out / divisor."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = grad_out.shape[0], C = grad_out.shape[2], S = grad_in.shape[1]
    cdef Py_ssize_t u, b, c0, nc, od, oh, nr, lo, hi
    cdef Py_ssize_t n_blocks = (C + block - 1) // block
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    cdef bint fast
    for u in prange(_units(B, C, block), nogil=True, schedule="static", num_threads=num_threads):
        b = u // n_blocks
        c0 = (u % n_blocks) * block
        nc = min(block, C - c0)
        rows = &scratch[omp_get_thread_num(), 0]
        fast = C == 1 and w.fast != FAST_NONE
        if not (fast and tiled):
            _zero_block(&grad_in[b, 0, 0], S, C, c0, nc)
        for od in range(w.size_out[0]):
            for oh in range(w.size_out[1]):
                nr = _rows(&w, od, oh, rows)
                lo = 0
                hi = 0
                if fast:
                    _fast_span(&w, oh, &lo, &hi)
                _spread_windows(&grad_out[b, 0, 0], &grad_in[b, 0, 0], C, c0, nc, &w, rows, nr,
                                od, oh, 0, lo)
                _spread_fast_span(&grad_out[b, 0, 0], &grad_in[b, 0, 0], &w, oh, lo, hi)
                _spread_windows(&grad_out[b, 0, 0], &grad_in[b, 0, 0], C, c0, nc, &w, rows, nr,
                                od, oh, hi, w.size_out[2])


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
def stochastic_train_forward(const floating[:, :, ::1] x, const double[:, :, ::1] uniforms,
                             floating[:, :, ::1] out, code_t[:, :, ::1] codes,
                             WindowTables tables, bint store, int num_threads):
    """Stochastic pooling, training: sample one cell per window with p_i = a_i / sum(a).

    Inverse-CDF sampling with the caller's uniforms u in [0, 1): the first cell
    whose running sum exceeds u * sum(a), in scan order (sums in double).  Codes
    route the gradient exactly like max pooling's.  A window of zeros draws its
    first cell (Caffe's rule): the output is 0 and the gradient goes there.
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2]
    cdef Py_ssize_t b, od, oh, ow, nr, r, j, c, w0, nw, s, o, pick, pick_code, last, last_code
    cdef Py_ssize_t[:, ::1] scratch = _scratch(tables, num_threads)
    cdef Py_ssize_t* rows
    cdef double total, running, threshold
    cdef bint found
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
                        total = 0
                        for r in range(nr):
                            for j in range(nw):
                                total = total + x[b, rows[r] + w0 + j * w.step[2], c]
                        threshold = uniforms[b, o, c] * total
                        running = 0
                        pick = rows[0] + w0
                        pick_code = 0
                        last = pick
                        last_code = 0
                        found = False
                        for r in range(nr):
                            for j in range(nw):
                                s = rows[r] + w0 + j * w.step[2]
                                if found or x[b, s, c] <= 0:
                                    continue
                                last = s
                                last_code = r * nw + j
                                running = running + x[b, s, c]
                                if running > threshold:
                                    pick = s
                                    pick_code = r * nw + j
                                    found = True
                        if not found:  # rounding left the threshold at the total
                            pick = last
                            pick_code = last_code
                        out[b, o, c] = x[b, pick, c]
                        if store:
                            if code_t is uint8_t:
                                codes[b, o, c] = <uint8_t>pick_code
                            else:
                                codes[b, o, c] = <int32_t>pick


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
    The caller has checked every index is in [-1, plane size)."""
    cdef Py_ssize_t P = x.shape[0], n = x.shape[1], S = out.shape[1], p, i, k
    for p in prange(P, nogil=True, schedule="static", num_threads=num_threads):
        memset(&out[p, 0], 0, S * sizeof(pool_t))
        for i in range(n):
            k = indices[p, i]
            if k >= 0:
                out[p, k] = x[p, i]


def unpool_backward(const floating[:, ::1] grad_out, const int64_t[:, ::1] indices,
                    floating[:, ::1] grad_in, int num_threads):
    """grad_in = grad_out gathered at the indices (0 where the index is -1)."""
    cdef Py_ssize_t P = grad_in.shape[0], n = grad_in.shape[1], p, i, k
    for p in prange(P, nogil=True, schedule="static", num_threads=num_threads):
        for i in range(n):
            k = indices[p, i]
            grad_in[p, i] = grad_out[p, k] if k >= 0 else 0
