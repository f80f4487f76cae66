"""Fractional max pooling kernels (Graham 2014), forward and backward.

Fractional max pooling draws one sample per (n, c) plane, so every plane has
its own window starts: the shared WindowTables (pool_windows.pyx) cannot
express it.  These two entries take per-plane start tables instead.  A plane
is (b, c) of the (B, S, C) view (NCHW: B = N*C planes, C = 1; NHWC: B = N, C
channels), numbered p = b * C + c.  Windows are whole (kd x kh x kw cells,
always inside the input), scanned row-major with PyTorch's rule (v > best or
v is NaN, from -inf, the first cell's index kept when nothing beats -inf).
Each plane is one unit of work, walked in output order by one thread, so
results are bit-identical for any thread count.
"""
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t

from minipool._kernels.pool_windows cimport floating


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
