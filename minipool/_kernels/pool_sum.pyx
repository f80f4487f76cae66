"""Average, sum and LP pooling kernels, forward and backward.

All three are (sum of x^p over a window's real cells)^(1/p) / divisor: average
(p = 1), sum (p = 1, divisor 1), LP (divisor 1).  The power is a compile-time
kind tag (``power_t``), so each loop is compiled straight-line per kind.  The
window tables, the (B, S, C) layout and the units of parallel work are
described in pool_windows.pyx.  Python picks the path once per geometry
(``PoolPlan.forward_path`` / ``backward_path``); each entry switches on it:

    path                  sum_forward (per unit)          sum_backward (per unit)
    PATH_ROWS             _sum_rows: _sum_scalar at the   _spread_rows: zero, then
                          borders, _sum_row_pass over     _spread_row per row
                          the W span (not for PowerAny)
    PATH_CHANNELS         _sum_channel_rows:              zero, then
                          _channel_windows(power kind)    _channel_windows(Spread)
                          per row                         per row
    PATH_PLANE_GROUP      _plane_group (pool_kinds.pxd)   (forward only)
    PATH_QUADS_PLANE      _quads_plane(power kind)        _quads_plane(Spread)
    PATH_QUADS_CHANNELS   _quads_channels(power kind)     _quads_channels(Spread)
                          (both walks in pool_quads.pxd, shared with max/min pooling)

``lp_backward`` (p != 1) walks one window at a time on every path.  Every path
sums a window in the order _window_sum (pool_kinds.pxd) defines, so all give
the same bits.
"""
from cython.parallel cimport prange
from libc.math cimport pow
from libc.stdint cimport uint8_t

from minipool._kernels.pool_windows cimport (CHUNK, FAST_2X2, FAST_NONE, MAX_GROUP,
                                             PATH_CHANNELS, PATH_PLANE_GROUP,
                                             PATH_QUADS_CHANNELS, PATH_QUADS_PLANE, PATH_ROWS,
                                             Path, Unit, WindowCursor, WindowTables, Windows,
                                             _before_first_window, _divisor, _next_window,
                                             _out_row, _row_parts, _rows, _thread_rows, _unit,
                                             _units, _zero_unit, floating)
from minipool._kernels.pool_kinds cimport (LANES, SCAN_SUM_MAX, PowerAny, PowerOne, PowerTwo,
                                           Spread, _plane_group, _raise, _root, _window_sum,
                                           power_t, sum_op_t)
from minipool._kernels.pool_quads cimport _quads_channels, _quads_plane

cdef enum:
    LANE_CHUNK = 64         # channels per lane buffer (NHWC sums of large windows)
    LANE_GAP = 8            # padding between lane buffers: 64 channels of float32 would
                            # put 16 lanes exactly 4 KiB apart, in step with the input's
                            # cells (4K aliasing: loads stall on unrelated stores)

# the summation order's two numbers, for the tests that re-derive the order (see _window_sum)
SCAN_SUM_MAX_CELLS = SCAN_SUM_MAX
SUM_LANES = LANES


cdef inline void _sum_pass(const floating* xs, Py_ssize_t stride, floating* acc, Py_ssize_t n,
                           power_t pw) noexcept nogil:
    """One cell of n windows: acc[i] += xs[i * stride] ** p."""
    cdef Py_ssize_t i
    for i in range(n):
        # x + acc, not acc + x: GCC keeps the order, and this one runs global average
        # pooling of 32x64x56x56 NHWC 1.25x faster (A/B, min of 75)
        acc[i] = _raise(xs[i * stride], pw) + acc[i]


cdef inline void _sum_pass_strided(const floating* xs, Py_ssize_t stride, floating* acc,
                                   Py_ssize_t n, power_t pw) noexcept nogil:
    if stride == 1:
        _sum_pass(xs, 1, acc, n, pw)
    elif stride == 2:
        _sum_pass(xs, 2, acc, n, pw)
    else:
        _sum_pass(xs, stride, acc, n, pw)


cdef void _sum_scalar(const floating* x, floating* out, const Windows* w,
                      const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t od, Py_ssize_t oh,
                      Py_ssize_t lo, Py_ssize_t hi, power_t pw) noexcept nogil:
    """out = (sum over real cells of x^p)^(1/p) / divisor, one window at a time
    (summed as _window_sum says, like every path)."""
    cdef Py_ssize_t ow, nw
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    for ow in range(lo, hi):
        nw = w.count[2][ow] if nr > 0 else 0
        out[o_row + ow] = (_root(_window_sum(x, rows, nr, w.first[2][ow], nw, w.step[2], pw), pw)
                           / <floating>_divisor(w, od, oh, ow))


cdef inline void _sum_whole_span(const floating* r0, const floating* r1, const floating* r2,
                                 Py_ssize_t n, int k, floating* acc) noexcept nogil:
    """Plain sums of n whole k x k stride 2 windows (k = 2 or 3), window i starting
    at column 2i of rows r0, r1 (, r2), from 0 in scan order, into acc."""
    cdef Py_ssize_t i
    cdef int t
    cdef floating s
    for i in range(n):
        s = 0
        for t in range(k):
            s += r0[2 * i + t]
        for t in range(k):
            s += r1[2 * i + t]
        if k == 3:
            for t in range(k):
                s += r2[2 * i + t]
        acc[i] = s


cdef void _sum_row_pass(const floating* x, floating* out, const Windows* w,
                        const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t od, Py_ssize_t oh,
                        Py_ssize_t lo, Py_ssize_t hi, power_t pw) noexcept nogil:
    """Windows lo..hi of one row of a plane, inside the W span: a row pass per cell
    (into one of LANES partial sums per output for windows of > SCAN_SUM_MAX cells)."""
    cdef Py_ssize_t start, n, i, r, j, c
    cdef Py_ssize_t stride = w.span_stride, kw = w.span_cells, sw = w.step[2]
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    cdef floating acc[CHUNK]
    cdef floating s
    cdef bint unrolled = w.fast != FAST_NONE and nr == w.fast_rows and power_t is PowerOne
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
                                      stride, lanes + ((r * kw + j) % LANES) * ls, n, pw)
            for i in range(n):
                s = 0
                for j in range(LANES):
                    s += lanes[j * ls + i]
                acc[i] = s
        elif unrolled and w.fast == FAST_2X2:   # (constant k: the cell loops unroll)
            _sum_whole_span(x + rows[0] + c, x + rows[1] + c, NULL, n, 2, acc)
        elif unrolled:
            _sum_whole_span(x + rows[0] + c, x + rows[1] + c, x + rows[2] + c, n, 3, acc)
        else:
            for i in range(n):
                acc[i] = 0
            for r in range(nr):
                for j in range(kw):
                    _sum_pass_strided(x + rows[r] + w.span_origin + start * stride + j * sw,
                                      stride, acc, n, pw)
        for i in range(n):
            out[o_row + start + i] = (_root(acc[i], pw)
                                      / <floating>_divisor(w, od, oh, start + i))
        start += n


cdef inline void _lanes_add_cells(const floating* x, Py_ssize_t C, const Py_ssize_t* rows,
                                  Py_ssize_t nr, Py_ssize_t nw, Py_ssize_t sw, floating* lanes,
                                  Py_ssize_t n, Py_ssize_t ls, power_t pw) noexcept nogil:
    """n channels of every cell of one NHWC window (the window's first column at x) into
    lane buffers ls apart, cell k (scan order) into lane k % LANES.  Called with a
    constant n for whole chunks of LANE_CHUNK channels (global pooling): GCC then
    unrolls each cell's pass whole, and no short loop is left whose time depends on
    where it falls in a 64-byte line (see setup.py, pool_sum's placement)."""
    cdef Py_ssize_t r, j, k = 0
    for r in range(nr):
        for j in range(nw):
            _sum_pass(x + (rows[r] + j * sw) * C, 1, lanes + (k % LANES) * ls, n, pw)
            k += 1


cdef void _channel_windows(const floating* src, floating* dst, Py_ssize_t C, Py_ssize_t c0,
                           Py_ssize_t nc, const Windows* w, const Py_ssize_t* rows,
                           Py_ssize_t nr, Py_ssize_t od, Py_ssize_t oh,
                           sum_op_t op) noexcept nogil:
    """PATH_CHANNELS: every window of one output row, channels [c0, c0+nc) of one
    NHWC image, a chunk of channels at a time.  Forward (``op`` a power kind):
    dst = (sum of the window's cells of src ** p)^(1/p) / divisor, summed
    channel-wise in _window_sum's order (cell k into lane buffer k % LANES).
    Backward (Spread): every real cell of dst += src / divisor, windows in order."""
    cdef Py_ssize_t ow, w0, nw, sw = w.step[2], r, j, cstart, n, i, o, lane, width, ls
    cdef Py_ssize_t o_row = _out_row(w, od, oh)
    cdef floating acc[CHUNK]        # forward: the chunk's sums; backward: its shares
    cdef floating lanes[LANES * (LANE_CHUNK + LANE_GAP)]
    cdef floating div, total
    cdef floating* cell
    cdef bint laned
    for ow in range(w.size_out[2]):
        w0 = w.first[2][ow]
        nw = w.count[2][ow] if nr > 0 else 0
        div = <floating>_divisor(w, od, oh, ow)
        o = (o_row + ow) * C
        cstart = c0
        # forward sums of more than SCAN_SUM_MAX cells: LANES partial sums per channel
        if sum_op_t is Spread:
            laned = False
        else:
            laned = nr * nw > SCAN_SUM_MAX
        width = <Py_ssize_t>LANE_CHUNK if laned else <Py_ssize_t>CHUNK
        while cstart < c0 + nc:
            n = min(width, c0 + nc - cstart)
            if sum_op_t is Spread:
                for i in range(n):
                    acc[i] = src[o + cstart + i] / div
                for r in range(nr):
                    for j in range(nw):
                        cell = dst + (rows[r] + w0 + j * sw) * C + cstart
                        for i in range(n):
                            cell[i] += acc[i]
            elif not laned:
                for i in range(n):
                    acc[i] = 0
                for r in range(nr):
                    for j in range(nw):
                        _sum_pass(src + (rows[r] + w0 + j * sw) * C + cstart, 1, acc, n, op)
                for i in range(n):
                    dst[o + cstart + i] = _root(acc[i], op) / div
            else:
                ls = n + LANE_GAP
                for i in range(LANES * ls):
                    lanes[i] = 0
                if n == LANE_CHUNK:     # (a constant count: see _lanes_add_cells)
                    _lanes_add_cells(src + w0 * C + cstart, C, rows, nr, nw, sw, lanes,
                                     LANE_CHUNK, LANE_CHUNK + LANE_GAP, op)
                else:
                    _lanes_add_cells(src + w0 * C + cstart, C, rows, nr, nw, sw, lanes, n, ls,
                                     op)
                for i in range(n):
                    total = 0
                    for lane in range(LANES):
                        total += lanes[lane * ls + i]
                    dst[o + cstart + i] = _root(total, op) / div
            cstart += n


cdef void _sum_quads_plane(const floating* src, floating* dst, const Windows* w,
                           sum_op_t op) noexcept nogil:
    """PATH_QUADS_PLANE: pool_quads' walk for a sum's forward or backward (out of line)."""
    _quads_plane(src, dst, <uint8_t*>NULL, <int*>NULL, w, op)


cdef void _sum_quads_channels(const floating* src, floating* dst, Py_ssize_t C, Py_ssize_t c0,
                              Py_ssize_t nc, const Windows* w, sum_op_t op) noexcept nogil:
    """PATH_QUADS_CHANNELS: pool_quads' walk for a sum's forward or backward (out of line)."""
    _quads_channels(src, dst, <uint8_t*>NULL, C, c0, nc, w, op)


cdef void _sum_rows(const floating* x, floating* out, const Windows* w, Py_ssize_t* rows,
                    power_t pw) noexcept nogil:
    """PATH_ROWS: one plane, row by row: scalar windows left and right of the W
    span, row passes over it (not for PowerAny: pow dominates, passes would not pay)."""
    cdef Py_ssize_t od, oh, nr, lo, hi
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            lo = 0
            hi = 0
            _row_parts(w, nr, not (power_t is PowerAny), &lo, &hi)
            _sum_scalar(x, out, w, rows, nr, od, oh, 0, lo, pw)
            _sum_row_pass(x, out, w, rows, nr, od, oh, lo, hi, pw)
            _sum_scalar(x, out, w, rows, nr, od, oh, hi, w.size_out[2], pw)


cdef void _sum_channel_rows(const floating* x, floating* out, Py_ssize_t C, Py_ssize_t c0,
                            Py_ssize_t nc, const Windows* w, Py_ssize_t* rows,
                            power_t pw) noexcept nogil:
    """PATH_CHANNELS: channels [c0, c0+nc) of one NHWC image, row by row."""
    cdef Py_ssize_t od, oh, nr
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            _channel_windows(x, out, C, c0, nc, w, rows, nr, od, oh, pw)


cdef void _sum_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out, const Windows* w,
                       Path path, power_t pw, Py_ssize_t unit_size,
                       Py_ssize_t* scratch, int num_threads):
    """sum_forward for one power kind (the switch on the path)."""
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], u, b
    cdef Unit unit
    if path == PATH_PLANE_GROUP:
        unit_size = min(unit_size, <Py_ssize_t>MAX_GROUP)
        for u in prange((B + unit_size - 1) // unit_size, nogil=True, schedule="static",
                        num_threads=num_threads):
            b = u * unit_size
            _plane_group(&x[b, 0, 0], &out[b, 0, 0], <uint8_t*>NULL, min(unit_size, B - b),
                         x.shape[1], out.shape[1], w, _thread_rows(scratch, w), pw)
        return
    for u in prange(_units(B, C, unit_size), nogil=True, schedule="static",
                    num_threads=num_threads):
        unit = _unit(u, C, unit_size)
        if path == PATH_ROWS:
            _sum_rows(&x[unit.b, 0, 0], &out[unit.b, 0, 0], w, _thread_rows(scratch, w), pw)
        elif path == PATH_CHANNELS:
            _sum_channel_rows(&x[unit.b, 0, 0], &out[unit.b, 0, 0], C, unit.c0, unit.nc, w,
                              _thread_rows(scratch, w), pw)
        elif path == PATH_QUADS_PLANE:
            _sum_quads_plane(&x[unit.b, 0, 0], &out[unit.b, 0, 0], w, pw)
        else:
            _sum_quads_channels(&x[unit.b, 0, 0], &out[unit.b, 0, 0], C, unit.c0, unit.nc, w, pw)


def sum_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out, WindowTables tables,
                Path path, double p, Py_ssize_t unit_size, int num_threads):
    """(sum over each window's real cells of x^p)^(1/p) / divisor, x (B, S_in, C) into
    out (B, S_out, C), along ``path`` (PoolPlan.forward_path; see the module
    docstring): average (p = 1), sum (p = 1, divisor 1) and LP pooling (divisor 1).
    ``unit_size``: channels (planes, for PATH_PLANE_GROUP) per unit of work.
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t* scratch = NULL     # the paths that walk rows: per-thread rows
    cdef list keep = []
    cdef PowerOne one
    cdef PowerTwo two
    cdef PowerAny any_p
    tables.check_path(path, x.shape[2])
    if path != PATH_QUADS_PLANE and path != PATH_QUADS_CHANNELS:
        scratch = tables.row_scratch(num_threads, keep)
    if p == 1.0:
        _sum_forward(x, out, &w, path, one, unit_size, scratch, num_threads)
    elif p == 2.0:
        _sum_forward(x, out, &w, path, two, unit_size, scratch, num_threads)
    else:
        any_p.p = p
        _sum_forward(x, out, &w, path, any_p, unit_size, scratch, num_threads)


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


cdef void _spread_rows(const floating* grad_out, floating* grad_in, Py_ssize_t S,
                       const Windows* w, Py_ssize_t* rows) noexcept nogil:
    """PATH_ROWS: one plane zeroed, then every real cell += its windows' shares,
    row by row."""
    cdef Py_ssize_t od, oh, nr
    _zero_unit(grad_in, S, 1, 0, 1)
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            _spread_row(grad_out, grad_in, w, rows, nr, od, oh)


def sum_backward(const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                 WindowTables tables, Path path, Py_ssize_t unit_size, int num_threads):
    """Gradient of avg/sum pooling along ``path`` (PoolPlan.backward_path; see the
    module docstring): every real cell gets grad_out / divisor."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = grad_out.shape[0], C = grad_out.shape[2], S = grad_in.shape[1], u
    cdef Py_ssize_t od, oh, nr
    cdef Py_ssize_t* scratch = NULL     # the paths that walk rows: per-thread rows
    cdef list keep = []
    cdef Py_ssize_t* rows
    cdef Unit unit
    cdef Spread spread
    tables.check_path(path, C)
    if path == PATH_ROWS or path == PATH_CHANNELS:
        scratch = tables.row_scratch(num_threads, keep)
    if path == PATH_PLANE_GROUP:
        raise ValueError("sum_backward: PATH_PLANE_GROUP is a forward path only")
    if ((path == PATH_QUADS_PLANE or path == PATH_QUADS_CHANNELS)
            and S != 4 * w.size_out[0] * w.size_out[1] * w.size_out[2]):
        raise ValueError("sum_backward: the QUADS paths need 2x2 stride 2 windows tiling the "
                         "input exactly")
    for u in prange(_units(B, C, unit_size), nogil=True, schedule="static",
                    num_threads=num_threads):
        unit = _unit(u, C, unit_size)
        if path == PATH_QUADS_PLANE:
            _sum_quads_plane(&grad_out[unit.b, 0, 0], &grad_in[unit.b, 0, 0], &w, spread)
        elif path == PATH_QUADS_CHANNELS:
            _sum_quads_channels(&grad_out[unit.b, 0, 0], &grad_in[unit.b, 0, 0], C, unit.c0,
                                unit.nc, &w, spread)
        elif path == PATH_ROWS:
            _spread_rows(&grad_out[unit.b, 0, 0], &grad_in[unit.b, 0, 0], S, &w,
                         _thread_rows(scratch, &w))
        else:
            # PATH_CHANNELS: the row walk stays here; moved into a helper, GCC compiles
            # _channel_windows' backward 1.3x slower (32x64x56x56 NHWC, 3x3 stride 2)
            rows = _thread_rows(scratch, &w)
            _zero_unit(&grad_in[unit.b, 0, 0], S, C, unit.c0, unit.nc)
            for od in range(w.size_out[0]):
                for oh in range(w.size_out[1]):
                    nr = _rows(&w, od, oh, rows)
                    _channel_windows(&grad_out[unit.b, 0, 0], &grad_in[unit.b, 0, 0], C,
                                     unit.c0, unit.nc, &w, rows, nr, od, oh, spread)


def lp_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] out,
                const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                WindowTables tables, double p, Py_ssize_t unit_size, int num_threads):
    """Gradient of LP pooling: d out / d x_i = x_i^(p-1) / out^(p-1).

    A window whose output is 0 passes no gradient (the derivative is undefined
    there; PyTorch returns NaN)."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], S = x.shape[1]
    cdef Py_ssize_t u, b, c0, nc, r, j, c, s, o
    cdef Unit unit
    cdef WindowCursor cur
    cdef list keep = []
    cdef Py_ssize_t* scratch = tables.row_scratch(num_threads, keep)
    cdef Py_ssize_t* rows
    cdef floating y, q, v
    for u in prange(_units(B, C, unit_size), nogil=True, schedule="static",
                    num_threads=num_threads):
        unit = _unit(u, C, unit_size)
        b = unit.b
        c0 = unit.c0
        nc = unit.nc
        rows = _thread_rows(scratch, &w)
        _zero_unit(&grad_in[b, 0, 0], S, C, c0, nc)
        cur = _before_first_window()
        while _next_window(&w, rows, &cur):
            o = cur.o
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
                for r in range(cur.nr):
                    for j in range(cur.nw):
                        s = rows[r] + cur.w0 + j * w.step[2]
                        v = x[b, s, c]
                        if p == 1.0:
                            grad_in[b, s, c] += q
                        elif p == 2.0:
                            grad_in[b, s, c] += q * v
                        else:
                            grad_in[b, s, c] += q * <floating>pow(v, p - 1.0)

