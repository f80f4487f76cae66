"""Stochastic pooling (Zeiler & Fergus 2013) and max unpooling kernels.

The window tables and the layout they walk are described in pool_windows.pyx.
"""
from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.string cimport memset

from minipool._kernels.pool_windows cimport (WindowCursor, WindowTables, Windows,
                                             _before_first_window, _next_window, _thread_rows,
                                             _zero_unit, code_t, floating, pool_t)



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


cdef inline floating _window_total(const floating* x, Py_ssize_t C, const Py_ssize_t* rows,
                                   Py_ssize_t nr, Py_ssize_t w0, Py_ssize_t nw, Py_ssize_t sw,
                                   floating* squares) noexcept nogil:
    """Sum of one window's cells (channel-offset ``x``, cells C apart), from 0 in scan
    order; the sum of their squares goes to ``squares`` unless it is NULL."""
    cdef Py_ssize_t r, j
    cdef floating total = 0, v
    for r in range(nr):
        for j in range(nw):
            v = x[(rows[r] + w0 + j * sw) * C]
            total = total + v
            if squares != NULL:
                squares[0] = squares[0] + v * v
    return total


# The two forwards differ only in what one window gives: a compile-time tag.
cdef struct DrawCell:       # training: one cell drawn per window (see _sample_cell)
    char unused
cdef struct SquareRatio:    # inference: sum(a^2) / sum(a) (0 for a zero window)
    char unused

ctypedef fused stochastic_t:
    DrawCell
    SquareRatio


cdef void _stochastic_image(const floating* x, const double* uniforms, floating* out,
                            code_t* codes, Py_ssize_t C, const Windows* w, Py_ssize_t* rows,
                            stochastic_t kind) noexcept nogil:
    """Every window of one (S, C) image, channel by channel: DrawCell writes the
    drawn cell's value (and its code, if ``codes`` is not NULL) from the
    window's uniform; SquareRatio writes sum(a^2) / sum(a)."""
    cdef Py_ssize_t c, o, s
    cdef int k
    cdef floating s1, s2
    cdef WindowCursor cur = _before_first_window()
    while _next_window(w, rows, &cur):
        for c in range(C):
            o = cur.o * C + c
            if stochastic_t is DrawCell:
                k = 0
                s = _sample_cell(x + c, C, rows, cur.nr, cur.w0, cur.nw, w.step[2], uniforms[o],
                                 &k)
                out[o] = x[s * C + c]
                if codes != NULL:
                    if code_t is uint8_t:
                        codes[o] = <uint8_t>k
                    else:
                        codes[o] = <int32_t>s
            else:
                s2 = 0
                s1 = _window_total(x + c, C, rows, cur.nr, cur.w0, cur.nw, w.step[2], &s2)
                out[o] = s2 / s1 if s1 != 0 else 0


cdef int _forward(const floating* x, const double* uniforms, floating* out, code_t* codes,
                  Py_ssize_t B, Py_ssize_t S_in, Py_ssize_t S_out, Py_ssize_t C,
                  WindowTables tables, int num_threads, stochastic_t kind) except -1:
    """Both forwards: (B, S_in, C) images into (B, S_out, C) outputs, ``uniforms`` and
    ``codes`` laid out as the outputs (or NULL), an image per unit of work."""
    cdef Windows w = tables.w
    cdef list keep = []
    cdef Py_ssize_t* scratch = tables.row_scratch(num_threads, keep)
    cdef Py_ssize_t b
    for b in prange(B, nogil=True, schedule="static", num_threads=num_threads):
        _stochastic_image(x + b * S_in * C, uniforms + b * S_out * C if uniforms != NULL else NULL,
                          out + b * S_out * C, codes + b * S_out * C if codes != NULL else NULL,
                          C, &w, _thread_rows(scratch, &w), kind)
    return 0


def stochastic_train_forward(const floating[:, :, ::1] x, const double[:, :, ::1] uniforms,
                             floating[:, :, ::1] out, code_t[:, :, ::1] codes,
                             WindowTables tables, bint store, int num_threads):
    """Stochastic pooling, training: one cell per window drawn with p_i = a_i / sum(a)
    (see _sample_cell), from the caller's uniforms (same shape as out).  The
    codes route the gradient exactly like max pooling's."""
    cdef DrawCell draw
    if out.size == 0:       # no windows (and no element [0, 0, 0] to address)
        return
    _forward(&x[0, 0, 0], &uniforms[0, 0, 0], &out[0, 0, 0], &codes[0, 0, 0] if store else NULL,
             x.shape[0], x.shape[1], out.shape[1], x.shape[2], tables, num_threads, draw)


def stochastic_eval_forward(const floating[:, :, ::1] x, floating[:, :, ::1] out,
                            WindowTables tables, int num_threads):
    """Stochastic pooling, inference: sum(a^2) / sum(a) per window (0 for a zero window)."""
    cdef SquareRatio ratio
    if out.size == 0:
        return
    _forward(&x[0, 0, 0], NULL, &out[0, 0, 0], <uint8_t*>NULL, x.shape[0], x.shape[1],
             out.shape[1], x.shape[2], tables, num_threads, ratio)


def stochastic_eval_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] out,
                             const floating[:, :, ::1] grad_out, floating[:, :, ::1] grad_in,
                             WindowTables tables, int num_threads):
    """d/da_i of sum(a^2)/sum(a) = (2 a_i - out) / sum(a); nothing for a zero window."""
    cdef Windows w = tables.w
    cdef Py_ssize_t B = x.shape[0], C = x.shape[2], S = x.shape[1]
    cdef Py_ssize_t b, r, j, c, s
    cdef list keep = []
    cdef Py_ssize_t* scratch = tables.row_scratch(num_threads, keep)
    cdef Py_ssize_t* rows
    cdef WindowCursor cur
    cdef floating s1, q, y
    for b in prange(B, nogil=True, schedule="static", num_threads=num_threads):
        rows = _thread_rows(scratch, &w)
        _zero_unit(&grad_in[b, 0, 0], S, C, 0, C)
        cur = _before_first_window()
        while _next_window(&w, rows, &cur):
            for c in range(C):
                s1 = _window_total(&x[b, 0, c], C, rows, cur.nr, cur.w0, cur.nw, w.step[2], NULL)
                if s1 == 0:
                    continue
                q = grad_out[b, cur.o, c] / s1
                y = out[b, cur.o, c]
                for r in range(cur.nr):
                    for j in range(cur.nw):
                        s = rows[r] + cur.w0 + j * w.step[2]
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

