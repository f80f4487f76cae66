"""BlurPool kernels (Zhang, ICML 2019): a separable binomial blur with reflect padding and stride.

Every call sees its input as ``(B, H, W, C)``: channels-first data is
``B = N*C`` planes with ``C = 1``, channels-last data is ``B = N`` images.
A *unit* of parallel work is one block b and a slice ``[c0, c1)`` of its
channels; it owns its output and gradient cells, so the team needs no atomics
and every cell sees the same operations whatever the thread count.

The Python side (``minipool/ops/pooling/blur.py``) passes, per axis, the
reflected source index of each tap and, for backward, the transposed lists.
For an axis of length n with kernel k, stride s and padding
``pb = (k-1)//2`` before, ``pa = k-1-pb`` after, padded position p holds the
input cell ``R(p - pb)`` where ``R(q) = -q`` for q < 0, ``2(n-1) - q`` for
q >= n, q otherwise (PyTorch's "reflect", no edge repeat).  Output o, tap t
reads ``R(o*s + t - pb)``.  The filter f is the binomial row normalised to sum
1 (``C(k-1, t) / 2**(k-1)``, exact in float32), so its 2-d outer product is
the paper's filter.

Order of summation (it defines the bits; ``tests/pooling/test_blur_pool.py`` follows
it).  ``+`` runs left to right and starts from the first product, not 0:

* forward, vertical then horizontal, through one row buffer per unit::

      row[w]       = f_0 * x[R(oh*s+0), w] + f_1 * x[R(oh*s+1), w] + ...   (taps i ascending)
      out[oh, ow]  = f_0 * row[R(ow*s+0)] + f_1 * row[R(ow*s+1)] + ...     (taps j ascending)

* backward, the transpose of both passes as gathers (horizontal then
  vertical, through a (Ho, W) buffer per unit).  For an input index q of an
  axis its *list* is every (o, t) with ``R(o*s + t - pb) == q``, ordered by
  padded position ``o*s + t`` ascending, then by o ascending::

      gw[oh, w]  = sum over (ow, j) in list_W(w) of f_j * g[oh, ow]
      gx[h, w]   = sum over (oh, i) in list_H(h) of f_i * gw[oh, w]

  An empty list (a cell no window reads, when the stride exceeds the
  kernel) gives +0.

No -ffast-math (setup.py), so the compiler keeps this order exactly.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from minipool._kernels._openmp cimport omp_get_thread_num

import numpy as np


cdef void _vertical(const floating* x, floating* row, const int64_t* src, const floating* f,
                    Py_ssize_t k, Py_ssize_t W, Py_ssize_t C, Py_ssize_t c0,
                    Py_ssize_t c1) noexcept nogil:
    """row[w, c - c0] = sum_i f_i * x[src_i, w, c] (one output row; x is one (H, W, C) block)."""
    cdef Py_ssize_t i, w, c, n = c1 - c0, line = W * C
    cdef const floating* xr
    cdef floating fi
    if n == C:              # the whole (w, c) row is contiguous: one flat loop
        xr = x + src[0] * line
        fi = f[0]
        for w in range(line):
            row[w] = fi * xr[w]
        for i in range(1, k):
            xr = x + src[i] * line
            fi = f[i]
            for w in range(line):
                row[w] = row[w] + fi * xr[w]
        return
    for w in range(W):
        xr = x + src[0] * line + w * C + c0
        fi = f[0]
        for c in range(n):
            row[w * n + c] = fi * xr[c]
    for i in range(1, k):
        fi = f[i]
        for w in range(W):
            xr = x + src[i] * line + w * C + c0
            for c in range(n):
                row[w * n + c] = row[w * n + c] + fi * xr[c]


cdef void _forward_unit(const floating* x, floating* out, floating* row,
                        const int64_t* rows, const int64_t* cols, const floating* fh,
                        const floating* fw, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t Ho,
                        Py_ssize_t Wo, Py_ssize_t W, Py_ssize_t C, Py_ssize_t c0,
                        Py_ssize_t c1) noexcept nogil:
    """One unit: x is its (H, W, C) block, out its (Ho, Wo, C) block."""
    cdef Py_ssize_t oh, ow, j, c, n = c1 - c0
    cdef const int64_t* cj
    cdef floating* o
    cdef floating acc, fj
    for oh in range(Ho):
        _vertical(x, row, rows + oh * kh, fh, kh, W, C, c0, c1)
        if n == 1:
            for ow in range(Wo):
                cj = cols + ow * kw
                acc = fw[0] * row[cj[0]]
                for j in range(1, kw):
                    acc = acc + fw[j] * row[cj[j]]
                out[(oh * Wo + ow) * C + c0] = acc
        else:
            for ow in range(Wo):
                cj = cols + ow * kw
                o = out + (oh * Wo + ow) * C + c0
                fj = fw[0]
                for c in range(n):
                    o[c] = fj * row[cj[0] * n + c]
                for j in range(1, kw):
                    fj = fw[j]
                    for c in range(n):
                        o[c] = o[c] + fj * row[cj[j] * n + c]


cdef void _backward_unit(const floating* g, floating* gx, floating* gw,
                         const int64_t* hstart, const int64_t* hout, const int64_t* htap,
                         const int64_t* wstart, const int64_t* wout, const int64_t* wtap,
                         const floating* fh, const floating* fw, Py_ssize_t H, Py_ssize_t W,
                         Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t C, Py_ssize_t c0,
                         Py_ssize_t c1) noexcept nogil:
    """One unit: g is its (Ho, Wo, C) block, gx its (H, W, C) block, gw a (Ho, W, c1-c0) buffer."""
    cdef Py_ssize_t oh, w, h, e, c, n = c1 - c0
    cdef const floating* gr
    cdef floating* t
    cdef floating* dst
    cdef floating fj
    cdef floating acc
    # horizontal transpose: gw[oh, w] gathers from the outputs that read column w
    if n == 1:              # one channel (channels-first planes): a scalar gather per cell
        for oh in range(Ho):
            gr = g + oh * Wo * C + c0
            t = gw + oh * W
            for w in range(W):
                if wstart[w] == wstart[w + 1]:
                    t[w] = 0
                    continue
                e = wstart[w]
                acc = fw[wtap[e]] * gr[wout[e] * C]
                for e in range(wstart[w] + 1, wstart[w + 1]):
                    acc = acc + fw[wtap[e]] * gr[wout[e] * C]
                t[w] = acc
    for oh in range(Ho if n > 1 else 0):
        for w in range(W):
            t = gw + (oh * W + w) * n
            if wstart[w] == wstart[w + 1]:
                for c in range(n):
                    t[c] = 0
                continue
            e = wstart[w]
            gr = g + (oh * Wo + wout[e]) * C + c0
            fj = fw[wtap[e]]
            for c in range(n):
                t[c] = fj * gr[c]
            for e in range(wstart[w] + 1, wstart[w + 1]):
                gr = g + (oh * Wo + wout[e]) * C + c0
                fj = fw[wtap[e]]
                for c in range(n):
                    t[c] = t[c] + fj * gr[c]
    # vertical transpose: gx[h] gathers gw rows, all (w, c) of a row at once
    for h in range(H):
        if n == C:
            dst = gx + h * W * C
            if hstart[h] == hstart[h + 1]:
                for w in range(W * C):
                    dst[w] = 0
                continue
            e = hstart[h]
            gr = gw + hout[e] * W * C
            fj = fh[htap[e]]
            for w in range(W * C):
                dst[w] = fj * gr[w]
            for e in range(hstart[h] + 1, hstart[h + 1]):
                gr = gw + hout[e] * W * C
                fj = fh[htap[e]]
                for w in range(W * C):
                    dst[w] = dst[w] + fj * gr[w]
        else:
            for w in range(W):
                dst = gx + (h * W + w) * C + c0
                if hstart[h] == hstart[h + 1]:
                    for c in range(n):
                        dst[c] = 0
                    continue
                e = hstart[h]
                gr = gw + (hout[e] * W + w) * n
                fj = fh[htap[e]]
                for c in range(n):
                    dst[c] = fj * gr[c]
                for e in range(hstart[h] + 1, hstart[h + 1]):
                    gr = gw + (hout[e] * W + w) * n
                    fj = fh[htap[e]]
                    for c in range(n):
                        dst[c] = dst[c] + fj * gr[c]


cdef Py_ssize_t _channel_slices(Py_ssize_t B, Py_ssize_t C, Py_ssize_t* cblock) noexcept:
    """How many slices of ``cblock`` channels each block is cut into (0: no work);
    a ``cblock`` outside 1..C becomes C (whole blocks)."""
    if cblock[0] < 1 or cblock[0] > C:
        cblock[0] = C
    if B == 0 or C == 0:
        return 0
    return (C + cblock[0] - 1) // cblock[0]


cdef struct Unit:           # one unit of parallel work: block b, channels [c0, c1)
    Py_ssize_t b, c0, c1


cdef inline Unit _unit(Py_ssize_t u, Py_ssize_t slices, Py_ssize_t cblock,
                       Py_ssize_t C) noexcept nogil:
    """Unit u of the blocks cut into ``slices`` slices of ``cblock`` channels."""
    cdef Unit unit
    unit.b = u // slices
    unit.c0 = (u % slices) * cblock
    unit.c1 = min(unit.c0 + cblock, C)
    return unit


cdef floating[:, ::1] _thread_rows(int threads, Py_ssize_t size, floating tag):
    """One work buffer of ``size`` elements per thread, allocated with the GIL (a failure
    is a MemoryError); ``tag`` only picks the float type."""
    return np.empty((threads, size), dtype=np.float32 if floating is float else np.float64)


def _check_tables(const int64_t[:, ::1] rows, const int64_t[:, ::1] cols, Py_ssize_t H,
                  Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t kh, Py_ssize_t kw):
    cdef Py_ssize_t a, b
    if rows.shape[0] != Ho or rows.shape[1] != kh or cols.shape[0] != Wo or cols.shape[1] != kw:
        raise ValueError("blur_pool kernel: tap tables do not match the output and kernel sizes")
    for a in range(Ho):
        for b in range(kh):
            if not 0 <= rows[a, b] < H:
                raise ValueError("blur_pool kernel: a row tap lies outside the input")
    for a in range(Wo):
        for b in range(kw):
            if not 0 <= cols[a, b] < W:
                raise ValueError("blur_pool kernel: a column tap lies outside the input")


def blur_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
                 const int64_t[:, ::1] rows, const int64_t[:, ::1] cols,
                 const floating[::1] fh, const floating[::1] fw, Py_ssize_t cblock, int threads):
    """out[b, oh, ow, c] = sum_j fw_j * sum_i fh_i * x[b, rows[oh, i], cols[ow, j], c].

    ``rows`` (Ho, kh) and ``cols`` (Wo, kw) hold the reflected source index of
    each tap; units are (block, channel slice of ``cblock``)."""
    cdef Py_ssize_t B = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t Ho = out.shape[1], Wo = out.shape[2]
    cdef Py_ssize_t kh = rows.shape[1], kw = cols.shape[1]
    cdef Py_ssize_t slices, u
    cdef Unit unit
    cdef floating[:, ::1] work
    if out.shape[0] != B or out.shape[3] != C:
        raise ValueError("blur_forward: input and output blocks or channels differ")
    if fh.shape[0] != kh or fw.shape[0] != kw or kh < 1 or kw < 1:
        raise ValueError("blur_forward: filters do not match the tap tables")
    _check_tables(rows, cols, H, W, Ho, Wo, kh, kw)
    slices = _channel_slices(B, C, &cblock)
    if slices == 0:
        return
    threads = max(1, min(threads, B * slices))
    work = _thread_rows(threads, W * cblock, fh[0])  # one row buffer
    for u in prange(B * slices, nogil=True, num_threads=threads, schedule="static"):
        unit = _unit(u, slices, cblock, C)
        _forward_unit(&x[unit.b, 0, 0, 0], &out[unit.b, 0, 0, 0], &work[omp_get_thread_num(), 0],
                      &rows[0, 0], &cols[0, 0], &fh[0], &fw[0], kh, kw, Ho, Wo, W, C,
                      unit.c0, unit.c1)


def blur_backward(const floating[:, :, :, ::1] g, floating[:, :, :, ::1] gx,
                  const int64_t[::1] hstart, const int64_t[::1] hout, const int64_t[::1] htap,
                  const int64_t[::1] wstart, const int64_t[::1] wout, const int64_t[::1] wtap,
                  const floating[::1] fh, const floating[::1] fw, Py_ssize_t cblock, int threads):
    """The transpose of ``blur_forward``: gx[b] = A_h^T g[b] A_w, as gathers.

    Per input index q of an axis, entries ``start[q]:start[q+1]`` of ``out``/
    ``tap`` list the (output, tap) pairs that read q, in summation order."""
    cdef Py_ssize_t B = gx.shape[0], H = gx.shape[1], W = gx.shape[2], C = gx.shape[3]
    cdef Py_ssize_t Ho = g.shape[1], Wo = g.shape[2]
    cdef Py_ssize_t slices, u, q, e
    cdef Unit unit
    cdef floating[:, ::1] work
    if g.shape[0] != B or g.shape[3] != C:
        raise ValueError("blur_backward: gradient and input blocks or channels differ")
    if hstart.shape[0] != H + 1 or wstart.shape[0] != W + 1:
        raise ValueError("blur_backward: gather tables do not match the input size")
    if hstart[0] != 0 or hstart[H] != hout.shape[0] or hout.shape[0] != htap.shape[0] \
            or wstart[0] != 0 or wstart[W] != wout.shape[0] or wout.shape[0] != wtap.shape[0]:
        raise ValueError("blur_backward: gather tables are inconsistent")
    for q in range(H):
        if hstart[q + 1] < hstart[q]:
            raise ValueError("blur_backward: gather tables are inconsistent")
    for q in range(W):
        if wstart[q + 1] < wstart[q]:
            raise ValueError("blur_backward: gather tables are inconsistent")
    if hout.shape[0] == 0 or wout.shape[0] == 0:
        raise ValueError("blur_backward: empty gather tables")
    for e in range(hout.shape[0]):
        if not (0 <= hout[e] < Ho and 0 <= htap[e] < fh.shape[0]):
            raise ValueError("blur_backward: a row entry lies outside the gradient or filter")
    for e in range(wout.shape[0]):
        if not (0 <= wout[e] < Wo and 0 <= wtap[e] < fw.shape[0]):
            raise ValueError("blur_backward: a column entry lies outside the gradient or filter")
    slices = _channel_slices(B, C, &cblock)
    if slices == 0:
        return
    threads = max(1, min(threads, B * slices))
    work = _thread_rows(threads, Ho * W * cblock, fh[0])  # one (Ho, W) buffer
    for u in prange(B * slices, nogil=True, num_threads=threads, schedule="static"):
        unit = _unit(u, slices, cblock, C)
        _backward_unit(&g[unit.b, 0, 0, 0], &gx[unit.b, 0, 0, 0], &work[omp_get_thread_num(), 0],
                       &hstart[0], &hout[0], &htap[0], &wstart[0], &wout[0], &wtap[0],
                       &fh[0], &fw[0], H, W, Ho, Wo, C, unit.c0, unit.c1)
