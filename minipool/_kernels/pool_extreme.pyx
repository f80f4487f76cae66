"""Max and min pooling kernels: forward, backward (gradient routing), argmax indices.

The window tables, the (B, S, C) layout and the units of parallel work are
described in pool_windows.pyx.  Python picks the path once per geometry
(``PoolPlan.forward_path`` / ``backward_path``); each entry switches on it:

    path                  extreme_forward (per unit)     extreme_backward (per unit)
    PATH_ROWS             _extreme_rows: _extreme_scalar  _route_rows: zero, then
                          at the borders, _extreme_row_    _route_row += per output row
                          pass over the W span (unrolled
                          2x2 / 3x3 rows: _unrolled_span)
    PATH_CHANNELS         _extreme_channel_rows:           _route_rows
                          _extreme_channels per row
                          (whole 2x2 / 3x3 windows:
                          _extreme_window; 3x3 with 4-15
                          channels: _window_groups_3x3)
    PATH_PLANE_GROUP      _plane_group (pool_kinds.pxd)    (forward only)
    PATH_QUADS_PLANE      _quads_plane(KeepMax/KeepMin)    _route_quads_plane (writes
                          (pool_quads.pxd, shared with     every cell, gradient bits;
                          avg/sum/LP)                      pool_quads.pxd)
    PATH_QUADS_CHANNELS   _quads_channels(KeepMax/KeepMin) _route_quads_channels
                          (pool_quads.pxd, shared)         (pool_quads.pxd)

``codes_to_indices`` turns stored codes into PyTorch's int64 indices (any path).
"""
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

from minipool._kernels._openmp cimport omp_get_thread_num
from minipool._kernels.pool_windows cimport (CHUNK, FAST_2X2, FAST_3X3, FAST_NONE, MAX_GROUP,
                                             NO_CELL_U8, PATH_CHANNELS, PATH_PLANE_GROUP,
                                             PATH_QUADS_CHANNELS, PATH_QUADS_PLANE, PATH_ROWS,
                                             Path, Unit, WindowCursor, WindowTables, Windows,
                                             _before_first_window, _cells, _next_window,
                                             _out_row, _row_parts, _rows, _thread_rows, _unit,
                                             _units, _zero_unit, code_t, floating,
                                             noinline_void, pool_t, thread_scratch)
from minipool._kernels.pool_quads cimport (_quads_channels, _quads_plane, _route_quads_channels,
                                           _route_quads_plane)
from minipool._kernels.pool_kinds cimport (PLAIN_MIN, KeepMax, KeepMin, _beats, _extreme_2x2,
                                           _extreme_3x3, _extreme_window_channels, _first_code,
                                           _flip, _key, _lowest, _plane_group, _take)

import numpy as np

NO_CELL_CODE = NO_CELL_U8  # the uint8 code of "no cell" (windows holding no input cell)


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


cdef inline void _start_chunk(pool_t* acc, int* chunk_codes, int first,
                              Py_ssize_t n) noexcept nogil:
    """n running maxima before their windows' first cell: the lowest key, code ``first``."""
    cdef Py_ssize_t i
    for i in range(n):
        acc[i] = _lowest(acc)
        chunk_codes[i] = first


cdef inline void _store_codes(code_t* codes, const int* chunk_codes, Py_ssize_t n) noexcept nogil:
    """The chunk's int codes to the caller's storage (none if ``codes`` is NULL)."""
    cdef Py_ssize_t i
    if codes != NULL:
        for i in range(n):
            codes[i] = <code_t>chunk_codes[i]


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
            _start_chunk(acc, chunk_codes, 0, n)
            for r in range(nr):
                for j in range(kw):
                    _extreme_pass_strided(
                        x + rows[r] + w.span_origin + start * stride + j * sw, stride, flip,
                        acc, kp, <int>(r * kw + j), n)
            for i in range(n):
                out[o_row + start + i] = _key(acc[i], flip)
        _store_codes(codes + o_row + start if codes != NULL else NULL, chunk_codes, n)
        start += n


cdef void _extreme_channels(const pool_t* x, pool_t* out, code_t* codes, Py_ssize_t C,
                            Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                            const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t o_row,
                            pool_t flip) noexcept nogil:
    """Every window of one output row, channels [c0, c0+nc) of one NHWC image:
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
                _start_chunk(acc, chunk_codes, first, n)
                for r in range(nr):
                    for j in range(nw):
                        s = rows[r] + w0 + j * sw
                        _extreme_pass(x + s * C + cstart, 1, flip, acc, kp,
                                      <int>(r * nw + j) if code_t is uint8_t else <int>s, n)
                for i in range(n):
                    out[o + cstart + i] = _key(acc[i], flip)
            _store_codes(codes + o + cstart if codes != NULL else NULL, chunk_codes, n)
            cstart += n


cdef void _window_groups_3x3(const pool_t* p0, const pool_t* p1, const pool_t* p2,
                             Py_ssize_t C, Py_ssize_t n, pool_t flip, pool_t* out,
                             int* codes) noexcept nogil:
    """4 <= n < PLAIN_MIN channels of a whole 3x3 NHWC window, four at a time: the
    exact rule (as _extreme_window_channels) in loops of constant length 4, which
    GCC turns into straight-line vector code.  When n is not a multiple of 4 the
    last group overlaps the previous one (its channels get the same values again),
    so LeNet's 6 channels are two vector groups instead of one and a scalar
    remainder of 2 (3x3 s2 p1 forward, LeNet NHWC: 0.85x the time).  Out of line:
    inlined, GCC stops inlining its caller.  (2x2 windows keep the plain loop: GCC
    leaves this one scalar and branchy for them, 6x slower.)"""
    cdef Py_ssize_t i = 0, g, j
    cdef int unused
    while i < n:
        g = min(i, n - 4)
        if codes == NULL:
            for j in range(g, g + 4):
                out[j] = _key(_extreme_3x3(p0, p1, p2, j, C, flip, &unused), flip)
        else:
            for j in range(g, g + 4):
                out[j] = _key(_extreme_3x3(p0, p1, p2, j, C, flip, &codes[j]), flip)
        i += 4


cdef inline void _extreme_window(const pool_t* p0, const pool_t* p1, const pool_t* p2,
                                 Py_ssize_t C, Py_ssize_t n, int fast, pool_t flip, pool_t* out,
                                 int* codes) noexcept nogil:
    """_extreme_window_channels compiled for constant flips and window shapes (3x3
    windows of 4-15 channels: _window_groups_3x3)."""
    if fast == FAST_2X2 and flip == _flip(p0, False):
        _extreme_window_channels(p0, p1, p1, C, n, FAST_2X2, _flip(p0, False), out, codes)
    elif fast == FAST_2X2:
        _extreme_window_channels(p0, p1, p1, C, n, FAST_2X2, _flip(p0, True), out, codes)
    elif 4 <= n < PLAIN_MIN and flip == _flip(p0, False):
        _window_groups_3x3(p0, p1, p2, C, n, _flip(p0, False), out, codes)
    elif 4 <= n < PLAIN_MIN:
        _window_groups_3x3(p0, p1, p2, C, n, _flip(p0, True), out, codes)
    elif flip == _flip(p0, False):
        _extreme_window_channels(p0, p1, p2, C, n, FAST_3X3, _flip(p0, False), out, codes)
    else:
        _extreme_window_channels(p0, p1, p2, C, n, FAST_3X3, _flip(p0, True), out, codes)


cdef noinline_void _extreme_rows(const pool_t* x, pool_t* out, code_t* codes, const Windows* w,
                                 Py_ssize_t* rows, pool_t flip) noexcept nogil:
    """PATH_ROWS: one plane, row by row: scalar windows left and right of the W
    span, row passes (uint8 codes only) over it.  Out of line (noinline_void): inlined
    into extreme_forward's OpenMP body, the scalar windows' loop kept its pointer and
    counters on the stack (max 5x5 s1 p2 / 3x3 s2 p1 LeNet NCHW: 1.04x / 1.03x)."""
    cdef Py_ssize_t od, oh, nr, o_row, lo, hi
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            o_row = _out_row(w, od, oh)
            lo = 0
            hi = 0
            if code_t is uint8_t:  # row passes keep uint8 ordinals only
                _row_parts(w, nr, True, &lo, &hi)
            _extreme_scalar(x, out, codes, w, rows, nr, o_row, 0, lo, flip)
            if code_t is uint8_t:
                _extreme_row_pass(x, out, codes, w, rows, nr, o_row, lo, hi, flip)
            _extreme_scalar(x, out, codes, w, rows, nr, o_row, hi, w.size_out[2], flip)


cdef void _extreme_channel_rows(const pool_t* x, pool_t* out, code_t* codes, Py_ssize_t C,
                                Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                                Py_ssize_t* rows, pool_t flip) noexcept nogil:
    """PATH_CHANNELS: channels [c0, c0+nc) of one NHWC image, row by row."""
    cdef Py_ssize_t od, oh, nr
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            _extreme_channels(x, out, codes, C, c0, nc, w, rows, nr, _out_row(w, od, oh), flip)


cdef void _extreme_quads_plane(const pool_t* x, pool_t* out, uint8_t* codes, int* wide,
                               const Windows* w, bint is_min) noexcept nogil:
    """PATH_QUADS_PLANE: pool_quads' walk for max or min pooling (out of line)."""
    cdef KeepMax keep_max
    cdef KeepMin keep_min
    if is_min:
        _quads_plane(x, out, codes, wide, w, keep_min)
    else:
        _quads_plane(x, out, codes, wide, w, keep_max)


cdef void _extreme_quads_channels(const pool_t* x, pool_t* out, uint8_t* codes, Py_ssize_t C,
                                  Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                                  bint is_min) noexcept nogil:
    """PATH_QUADS_CHANNELS: pool_quads' walk for max or min pooling (out of line)."""
    cdef KeepMax keep_max
    cdef KeepMin keep_min
    if is_min:
        _quads_channels(x, out, codes, C, c0, nc, w, keep_min)
    else:
        _quads_channels(x, out, codes, C, c0, nc, w, keep_max)


def extreme_forward(const pool_t[:, :, ::1] x, pool_t[:, :, ::1] out, code_t[:, :, ::1] codes,
                    WindowTables tables, Path path, bint is_min, bint store,
                    Py_ssize_t unit_size, int num_threads):
    """Max (``is_min`` False) or min pooling of x (B, S_in, C) into out (B, S_out, C),
    along ``path`` (PoolPlan.forward_path; see the module docstring).

    With ``store`` the winning cell of each output goes to ``codes`` (same shape
    as out); without it ``codes`` is ignored (pass any 1x1x1 uint8 array).
    ``unit_size``: channels (planes, for PATH_PLANE_GROUP) per unit of work.
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], u, b
    cdef Py_ssize_t* scratch = NULL     # the paths that walk rows: per-thread rows
    cdef int* plane_codes = NULL     # PATH_QUADS_PLANE with codes: per-thread int codes
    cdef list keep = []
    cdef Unit unit
    cdef const pool_t* type_tag = NULL
    cdef pool_t flip = _flip(type_tag, is_min)
    cdef KeepMax keep_max
    cdef KeepMin keep_min
    tables.check_path(path, C)
    if code_t is int32_t and (path == PATH_QUADS_PLANE or path == PATH_QUADS_CHANNELS):
        raise ValueError("extreme_forward: the QUADS paths keep uint8 codes")
    if store and path == PATH_QUADS_PLANE:
        plane_codes = <int*>thread_scratch(out.shape[1], num_threads, np.intc, keep)
    if path != PATH_QUADS_PLANE and path != PATH_QUADS_CHANNELS:
        scratch = tables.row_scratch(num_threads, keep)
    if path == PATH_PLANE_GROUP:
        unit_size = min(unit_size, <Py_ssize_t>MAX_GROUP)
        for u in prange((B + unit_size - 1) // unit_size, nogil=True, schedule="static",
                        num_threads=num_threads):
            b = u * unit_size
            if is_min:
                _plane_group(&x[b, 0, 0], &out[b, 0, 0], &codes[b, 0, 0] if store else NULL,
                             min(unit_size, B - b), x.shape[1], out.shape[1], &w,
                             _thread_rows(scratch, &w), keep_min)
            else:
                _plane_group(&x[b, 0, 0], &out[b, 0, 0], &codes[b, 0, 0] if store else NULL,
                             min(unit_size, B - b), x.shape[1], out.shape[1], &w,
                             _thread_rows(scratch, &w), keep_max)
        return
    for u in prange(_units(B, C, unit_size), nogil=True, schedule="static",
                    num_threads=num_threads):
        unit = _unit(u, C, unit_size)
        if path == PATH_ROWS:
            _extreme_rows(&x[unit.b, 0, 0], &out[unit.b, 0, 0],
                          &codes[unit.b, 0, 0] if store else NULL, &w,
                          _thread_rows(scratch, &w), flip)
        elif path == PATH_CHANNELS:
            _extreme_channel_rows(&x[unit.b, 0, 0], &out[unit.b, 0, 0],
                                  &codes[unit.b, 0, 0] if store else NULL, C, unit.c0, unit.nc,
                                  &w, _thread_rows(scratch, &w), flip)
        elif code_t is uint8_t and path == PATH_QUADS_PLANE:
            _extreme_quads_plane(&x[unit.b, 0, 0], &out[unit.b, 0, 0],
                                 &codes[unit.b, 0, 0] if store else NULL,
                                 plane_codes + omp_get_thread_num() * out.shape[1]
                                 if plane_codes != NULL else NULL, &w, is_min)
        elif code_t is uint8_t:
            _extreme_quads_channels(&x[unit.b, 0, 0], &out[unit.b, 0, 0],
                                    &codes[unit.b, 0, 0] if store else NULL, C, unit.c0,
                                    unit.nc, &w, is_min)


cdef void _route_row(const floating* grad_out, const code_t* codes, floating* grad_in,
                     Py_ssize_t C, Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                     const Py_ssize_t* rows, Py_ssize_t nr, Py_ssize_t o_row) noexcept nogil:
    """grad_in[winner] += grad_out for every window of one output row, windows in
    order (so overlapping windows add up in one fixed order)."""
    cdef Py_ssize_t ow, nw, c, table_width = -1
    cdef Py_ssize_t rel[NO_CELL_U8]      # element offsets (cell * C) by ordinal, windows nw wide
    cdef const floating* g
    cdef const code_t* k
    cdef floating* window                # uint8 codes: the window's first cell, channel 0
    for ow in range(w.size_out[2]):
        g = grad_out + (o_row + ow) * C
        k = codes + (o_row + ow) * C
        if code_t is uint8_t:
            nw = w.count[2][ow]
            if nr == 0 or nw == 0:
                continue
            if nw != table_width:
                _cells(rows, nr, nw, w.step[2], C, rel)
                table_width = nw
            window = grad_in + w.first[2][ow] * C
            # the offset scaled once per table, not per channel: the loop is a load of
            # the code, a test and one add (LeNet NHWC 3x3 s2 backward: 1.2x)
            for c in range(c0, c0 + nc):
                if k[c] != NO_CELL_U8:
                    window[rel[k[c]] + c] += g[c]
        else:
            for c in range(c0, c0 + nc):
                if k[c] >= 0:
                    grad_in[k[c] * C + c] += g[c]


cdef void _route_rows(const floating* grad_out, const code_t* codes, floating* grad_in,
                      Py_ssize_t S, Py_ssize_t C, Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                      Py_ssize_t* rows) noexcept nogil:
    """PATH_ROWS / PATH_CHANNELS: grad_in zeroed, then grad_in[winner] += grad_out,
    row by row, windows in order (any geometry)."""
    cdef Py_ssize_t od, oh, nr
    _zero_unit(grad_in, S, C, c0, nc)
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            nr = _rows(w, od, oh, rows)
            _route_row(grad_out, codes, grad_in, C, c0, nc, w, rows, nr, _out_row(w, od, oh))


def extreme_backward(const floating[:, :, ::1] grad_out, const code_t[:, :, ::1] codes,
                     floating[:, :, ::1] grad_in, WindowTables tables, Path path,
                     Py_ssize_t unit_size, int num_threads):
    """Route grad_out (B, S_out, C) to the cells recorded in ``codes`` along ``path``
    (PoolPlan.backward_path; see the module docstring).

    The QUADS paths (2x2 stride 2 windows tiling the input exactly) write every
    input cell once, the gradient at each window's winner and 0 elsewhere.  They
    move the gradients' bits (uint32 / uint64): routing only moves values, so
    integer masks do it exactly (NaN payloads and signed zeros included) and
    vectorise without selects.
    """
    cdef Windows w = tables.w
    cdef Py_ssize_t B = grad_out.shape[0], C = grad_out.shape[2], S = grad_in.shape[1], u
    cdef Py_ssize_t rows_out = w.size_out[0] * w.size_out[1], oW = w.size_out[2]
    cdef Py_ssize_t* scratch = NULL     # the paths that walk rows: per-thread rows
    cdef int* wide = NULL            # QUADS paths: per-thread codes widened to int
    cdef Py_ssize_t wide_width = rows_out * oW if path == PATH_QUADS_PLANE else oW * C
    cdef list keep = []
    cdef Unit unit
    tables.check_path(path, C)
    if path == PATH_PLANE_GROUP:
        raise ValueError("extreme_backward: PATH_PLANE_GROUP is a forward path only")
    if path == PATH_QUADS_PLANE or path == PATH_QUADS_CHANNELS:
        if code_t is int32_t or S != 4 * rows_out * oW:
            raise ValueError("extreme_backward: the QUADS paths need uint8 codes and 2x2 "
                             "stride 2 windows tiling the input exactly")
        wide = <int*>thread_scratch(wide_width, num_threads, np.intc, keep)
    else:
        scratch = tables.row_scratch(num_threads, keep)
    for u in prange(_units(B, C, unit_size), nogil=True, schedule="static",
                    num_threads=num_threads):
        unit = _unit(u, C, unit_size)
        if path == PATH_ROWS or path == PATH_CHANNELS:
            _route_rows(&grad_out[unit.b, 0, 0], &codes[unit.b, 0, 0], &grad_in[unit.b, 0, 0], S,
                        C, unit.c0, unit.nc, &w, _thread_rows(scratch, &w))
        elif code_t is uint8_t and floating is float and path == PATH_QUADS_PLANE:
            _route_quads_plane(<const uint32_t*>&grad_out[unit.b, 0, 0], &codes[unit.b, 0, 0],
                               <uint32_t*>&grad_in[unit.b, 0, 0], rows_out, oW,
                               wide + omp_get_thread_num() * wide_width)
        elif code_t is uint8_t and floating is double and path == PATH_QUADS_PLANE:
            _route_quads_plane(<const uint64_t*>&grad_out[unit.b, 0, 0], &codes[unit.b, 0, 0],
                               <uint64_t*>&grad_in[unit.b, 0, 0], rows_out, oW,
                               wide + omp_get_thread_num() * wide_width)
        elif code_t is uint8_t and floating is float:
            _route_quads_channels(<const uint32_t*>&grad_out[unit.b, 0, 0], &codes[unit.b, 0, 0],
                                  <uint32_t*>&grad_in[unit.b, 0, 0], C, unit.c0, unit.nc,
                                  rows_out, oW, wide + omp_get_thread_num() * wide_width)
        elif code_t is uint8_t and floating is double:
            _route_quads_channels(<const uint64_t*>&grad_out[unit.b, 0, 0], &codes[unit.b, 0, 0],
                                  <uint64_t*>&grad_in[unit.b, 0, 0], C, unit.c0, unit.nc,
                                  rows_out, oW, wide + omp_get_thread_num() * wide_width)


cdef void _indices_of(const code_t* codes, int64_t* indices, Py_ssize_t C, const Windows* w,
                         Py_ssize_t* rows) noexcept nogil:
    cdef Py_ssize_t c, o, table_width = -1
    cdef Py_ssize_t rel[NO_CELL_U8]
    cdef code_t k
    cdef WindowCursor cur = _before_first_window()
    while _next_window(w, rows, &cur):
        o = cur.o * C
        if cur.ow == 0:
            table_width = -1            # new rows: the cell table is stale
        if code_t is uint8_t:
            if cur.nw > 0 and cur.nw != table_width:
                _cells(rows, cur.nr, cur.nw, w.step[2], 1, rel)
                table_width = cur.nw
        for c in range(C):
            k = codes[o + c]
            if code_t is uint8_t:
                indices[o + c] = -1 if k == NO_CELL_U8 else cur.w0 + rel[k]
            else:
                indices[o + c] = k


def codes_to_indices(const code_t[:, :, ::1] codes, int64_t[:, :, ::1] indices,
                     WindowTables tables, int num_threads):
    """PyTorch's int64 indices (flat position in the input plane, -1 for no cell)."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = codes.shape[0], C = codes.shape[2], b
    cdef list keep = []
    cdef Py_ssize_t* scratch = tables.row_scratch(num_threads, keep)
    for b in prange(B, nogil=True, schedule="static", num_threads=num_threads):
        _indices_of(&codes[b, 0, 0], &indices[b, 0, 0], C, &w,
                       _thread_rows(scratch, &w))

