"""Upsampling kernels: nearest gather and separable tap tables, with their transposes.

Every kernel works on C-contiguous arrays viewed as ``(planes, D, H, W, C)``
(1-D and 2-D inputs have D = H = 1 or D = 1).  Channels-first inputs have
C = 1 and one plane per (n, c); channels-last inputs have one plane per
image and the C channels of a pixel side by side, so every step moves whole
channel vectors.  One OpenMP task per plane: each output or gradient plane
is written by exactly one thread, and the result does not depend on the
thread count (nor on the layout: each element sees the same operations in
the same order).

The index and weight tables come from ``minipool.ops.upsampling``, computed
once per call in NumPy.  Two families:

* nearest: one source index per output index and axis; the forward is a
  gather (consecutive output rows with the same source are memcpy'd), the
  backward a scatter-add in PyTorch's loop order (d, h, w ascending).
* separable taps: along each axis, output ``o`` is ``sum_k w[o, k] *
  in[idx[o, k]]`` (linear K=2, cubic K=4).  The forward applies the axes one
  after the other, innermost first (W, then H, then D), through per-thread
  scratch buffers.  The backward applies the transposed tables (CSR: for each
  input index, the outputs that read it, in ascending order) in reverse
  order, so it is a gather too: no atomics, no zeroing races.

Fast paths: integer nearest factors along W (pure replication), the
channels-last nearest backward with integer factors on every axis (each input
pixel sums its output block directly) and the half-pixel x2 linear pattern
along W (a stencil with implicit indices).  All use the same weights and the
same order of sums as the general loops, so their results are bit-identical.
"""
from cython.parallel cimport prange
from libc.string cimport memcpy, memset
from cython cimport floating

from minipool._kernels._openmp cimport omp_get_thread_num


cdef struct PlaneShape:
    # P planes of (D, H, W, C) in, (OD, OH, OW, C) out
    Py_ssize_t P, D, H, W, C, OD, OH, OW


cdef PlaneShape _plane_shape(const Py_ssize_t* in5, const Py_ssize_t* out5) noexcept:
    """The shapes from the input and output arrays' (planes, D, H, W, C) shapes."""
    cdef PlaneShape s
    s.P, s.D, s.H, s.W, s.C = in5[0], in5[1], in5[2], in5[3], in5[4]
    s.OD, s.OH, s.OW = out5[1], out5[2], out5[3]
    return s


# --------------------------------------------------------------------------- nearest
cdef void _nearest_plane(const floating* x, floating* out, PlaneShape s,
                         const Py_ssize_t* src_d, const Py_ssize_t* src_h,
                         const Py_ssize_t* src_w, Py_ssize_t repeat_w) noexcept nogil:
    cdef Py_ssize_t D = s.D, H = s.H, W = s.W, C = s.C, OD = s.OD, OH = s.OH, OW = s.OW
    cdef Py_ssize_t od, oh, ow, w, r
    cdef Py_ssize_t row = OW * C
    cdef Py_ssize_t slab = OH * row
    cdef floating* dst
    cdef const floating* src
    cdef floating v
    for od in range(OD):
        if od > 0 and src_d[od] == src_d[od - 1]:
            # same source slab as the previous output slab: copy it whole
            memcpy(out + od * slab, out + (od - 1) * slab, slab * sizeof(floating))
            continue
        for oh in range(OH):
            dst = out + od * slab + oh * row
            if oh > 0 and src_h[oh] == src_h[oh - 1]:
                memcpy(dst, dst - row, row * sizeof(floating))
                continue
            src = x + (src_d[od] * H + src_h[oh]) * W * C
            if C > 1:  # channels last: copy channel vectors
                for ow in range(OW):
                    memcpy(dst + ow * C, src + src_w[ow] * C, C * sizeof(floating))
            elif repeat_w == 1:
                memcpy(dst, src, OW * sizeof(floating))
            elif repeat_w == 2:
                for w in range(W):
                    v = src[w]
                    dst[2 * w] = v
                    dst[2 * w + 1] = v
            elif repeat_w > 2:
                for w in range(W):
                    v = src[w]
                    for r in range(repeat_w):
                        dst[w * repeat_w + r] = v
            else:
                for ow in range(OW):
                    dst[ow] = src[src_w[ow]]


cdef Py_ssize_t _replication(const Py_ssize_t* src, Py_ssize_t n_in,
                             Py_ssize_t n_out) noexcept nogil:
    """r when src[o] == o // r for every o and n_out == r * n_in (integer factor r), else 0."""
    cdef Py_ssize_t o, r = n_out // n_in
    if r < 1 or n_out != r * n_in:
        return 0
    for o in range(n_out):
        if src[o] != o // r:
            return 0
    return r


cdef inline void _block_row_sums(floating* dst, const floating* a, const floating* b,
                                 Py_ssize_t W, Py_ssize_t C, Py_ssize_t rw,
                                 bint first) noexcept nogil:
    """Channels last: dst[w, :] = (+0 if first else dst[w, :]) + the rw pixels of
    block w in output row a, left to right, then those of row b (skipped when NULL).

    That is the scatter-add's order for each input cell, so the bits match it;
    starting from +0 (not from the first cell) keeps its sign of a zero sum.
    Two rows per pass: one store per input pixel, every add a whole channel vector.
    """
    cdef Py_ssize_t w, c, r
    cdef floating zero = 0
    cdef floating* d
    cdef const floating* pa
    cdef const floating* pb
    for w in range(W):
        d = dst + w * C
        pa = a + w * rw * C
        pb = b + w * rw * C if b != NULL else NULL
        if rw == 2 and pb != NULL:
            if first:
                for c in range(C):
                    d[c] = (((zero + pa[c]) + pa[C + c]) + pb[c]) + pb[C + c]
            else:
                for c in range(C):
                    d[c] = (((d[c] + pa[c]) + pa[C + c]) + pb[c]) + pb[C + c]
            continue
        r = 0
        if first:
            for c in range(C):
                d[c] = zero + pa[c]
            r = 1
        while r < rw:
            for c in range(C):
                d[c] = d[c] + pa[r * C + c]
            r = r + 1
        if pb != NULL:
            for r in range(rw):
                for c in range(C):
                    d[c] = d[c] + pb[r * C + c]


cdef void _nearest_backward_blocks(const floating* g, floating* gx,
                                   Py_ssize_t D, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                                   Py_ssize_t rd, Py_ssize_t rh, Py_ssize_t rw) noexcept nogil:
    """Channels last, integer factors on every axis: input pixel (d, h, w) is the sum of
    its rd x rh x rw output block in (od, oh, ow) order.  Each input row is written
    once, folding in its rd * rh output rows two at a time (no zero-fill pass)."""
    cdef Py_ssize_t d, h, k, n = rd * rh
    cdef Py_ssize_t OH = H * rh, row_in = W * C, row_out = W * rw * C
    cdef const floating* a
    cdef const floating* b
    for d in range(D):
        for h in range(H):
            k = 0
            while k < n:  # row k of the block: od = d*rd + k // rh, oh = h*rh + k % rh
                a = g + ((d * rd + k // rh) * OH + h * rh + k % rh) * row_out
                b = NULL
                if k + 1 < n:
                    b = g + ((d * rd + (k + 1) // rh) * OH + h * rh + (k + 1) % rh) * row_out
                _block_row_sums(gx + (d * H + h) * row_in, a, b, W, C, rw, k == 0)
                k = k + 2


cdef void _nearest_backward_plane(const floating* g, floating* gx, PlaneShape s,
                                  const Py_ssize_t* src_d, const Py_ssize_t* src_h,
                                  const Py_ssize_t* src_w, Py_ssize_t repeat_w) noexcept nogil:
    """The scatter-add: zero the plane, then add every output cell in order.  For
    channels-first planes this beats folding rows without the zero-fill (the
    memset's full-line stores; measured), so only channels last takes the block path."""
    cdef Py_ssize_t D = s.D, H = s.H, W = s.W, C = s.C, OD = s.OD, OH = s.OH, OW = s.OW
    cdef Py_ssize_t od, oh, ow, w, r, c
    cdef floating* row
    cdef floating* pixel
    cdef const floating* grow
    cdef const floating* gpixel
    cdef floating acc
    memset(gx, 0, D * H * W * C * sizeof(floating))
    for od in range(OD):
        for oh in range(OH):
            row = gx + (src_d[od] * H + src_h[oh]) * W * C
            grow = g + (od * OH + oh) * OW * C
            if C > 1:
                for ow in range(OW):
                    pixel = row + src_w[ow] * C
                    gpixel = grow + ow * C
                    for c in range(C):
                        pixel[c] = pixel[c] + gpixel[c]
            elif repeat_w == 2:
                for w in range(W):
                    row[w] = (row[w] + grow[2 * w]) + grow[2 * w + 1]
            elif repeat_w > 0:
                for w in range(W):
                    acc = row[w]
                    for r in range(repeat_w):
                        acc = acc + grow[w * repeat_w + r]
                    row[w] = acc
            else:
                for ow in range(OW):
                    row[src_w[ow]] = row[src_w[ow]] + grow[ow]


def nearest_forward(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] out,
                    const Py_ssize_t[::1] src_d, const Py_ssize_t[::1] src_h,
                    const Py_ssize_t[::1] src_w, Py_ssize_t repeat_w, int num_threads):
    """out[p, od, oh, ow, c] = x[p, src_d[od], src_h[oh], src_w[ow], c].

    ``repeat_w`` > 0 promises ``src_w[ow] == ow // repeat_w`` (replication).
    """
    cdef Py_ssize_t p
    cdef PlaneShape s = _plane_shape(x.shape, out.shape)
    if s.P == 0 or s.OD * s.OH * s.OW * s.C == 0:
        return
    for p in prange(s.P, nogil=True, num_threads=num_threads, schedule="static"):
        _nearest_plane(&x[p, 0, 0, 0, 0], &out[p, 0, 0, 0, 0], s,
                       &src_d[0], &src_h[0], &src_w[0], repeat_w)


def nearest_backward(const floating[:, :, :, :, ::1] grad, floating[:, :, :, :, ::1] grad_x,
                     const Py_ssize_t[::1] src_d, const Py_ssize_t[::1] src_h,
                     const Py_ssize_t[::1] src_w, Py_ssize_t repeat_w, int num_threads):
    """The transpose of :func:`nearest_forward`: grad_x[p, src(o)] += grad[p, o],
    over o in ascending (d, h, w) order, starting from +0.

    Channels last (C > 1) with integer factors on every axis (``repeat_w`` > 0, D
    and H checked here) sums each input pixel's output block directly, in that order.
    """
    cdef Py_ssize_t p
    cdef PlaneShape s = _plane_shape(grad_x.shape, grad.shape)
    cdef Py_ssize_t rd = 0, rh = 0
    if s.P == 0 or s.D * s.H * s.W * s.C == 0:
        return
    if repeat_w > 0 and s.C > 1:
        rd = _replication(&src_d[0], s.D, s.OD)
        rh = _replication(&src_h[0], s.H, s.OH)
    if rd > 0 and rh > 0:
        for p in prange(s.P, nogil=True, num_threads=num_threads, schedule="static"):
            _nearest_backward_blocks(&grad[p, 0, 0, 0, 0], &grad_x[p, 0, 0, 0, 0],
                                     s.D, s.H, s.W, s.C, rd, rh, repeat_w)
        return
    for p in prange(s.P, nogil=True, num_threads=num_threads, schedule="static"):
        _nearest_backward_plane(&grad[p, 0, 0, 0, 0], &grad_x[p, 0, 0, 0, 0], s,
                                &src_d[0], &src_h[0], &src_w[0], repeat_w)


# --------------------------------------------------------------------------- tap tables
cdef inline void _gather_taps(const floating* src, floating* dst, Py_ssize_t n,
                              const Py_ssize_t* idx, const floating* w,
                              Py_ssize_t K) noexcept nogil:
    """dst[o] = sum_k src[idx[o, k]] * w[o, k] along a contiguous row."""
    cdef Py_ssize_t o, k
    cdef floating acc
    if K == 2:
        for o in range(n):
            dst[o] = src[idx[2 * o]] * w[2 * o] + src[idx[2 * o + 1]] * w[2 * o + 1]
    elif K == 4:
        for o in range(n):
            dst[o] = (src[idx[4 * o]] * w[4 * o] + src[idx[4 * o + 1]] * w[4 * o + 1]
                      + src[idx[4 * o + 2]] * w[4 * o + 2] + src[idx[4 * o + 3]] * w[4 * o + 3])
    else:
        for o in range(n):
            acc = src[idx[o * K]] * w[o * K]
            for k in range(1, K):
                acc = acc + src[idx[o * K + k]] * w[o * K + k]
            dst[o] = acc


cdef inline void _gather_taps_x2(const floating* src, floating* dst, Py_ssize_t n,
                                 const Py_ssize_t* idx, const floating* w,
                                 Py_ssize_t m_lo, Py_ssize_t m_hi) noexcept nogil:
    """_gather_taps with K=2 where, for m in [m_lo, m_hi), outputs 2m and 2m+1
    read (m-1, m) and (m, m+1) with the same weights as row 2*m_lo and 2*m_lo+1."""
    cdef Py_ssize_t m
    cdef floating a0 = w[4 * m_lo], a1 = w[4 * m_lo + 1]
    cdef floating b0 = w[4 * m_lo + 2], b1 = w[4 * m_lo + 3]
    _gather_taps(src, dst, 2 * m_lo, idx, w, 2)
    for m in range(m_lo, m_hi):
        dst[2 * m] = src[m - 1] * a0 + src[m] * a1
        dst[2 * m + 1] = src[m] * b0 + src[m + 1] * b1
    _gather_taps(src, dst + 2 * m_hi, n - 2 * m_hi, idx + 4 * m_hi, w + 4 * m_hi, 2)


cdef inline void _combine_taps(const floating* src, floating* dst, Py_ssize_t n, Py_ssize_t L,
                               const Py_ssize_t* idx, const floating* w,
                               Py_ssize_t K) noexcept nogil:
    """Row o of dst (length L) = sum_k w[o, k] * row idx[o, k] of src: an outer axis."""
    cdef Py_ssize_t o, k, c
    cdef floating* d
    cdef const floating* s0
    cdef const floating* s1
    cdef const floating* s2
    cdef const floating* s3
    cdef floating w0, w1, w2, w3
    for o in range(n):
        d = dst + o * L
        s0 = src + idx[o * K] * L
        w0 = w[o * K]
        if K == 2:
            s1 = src + idx[o * K + 1] * L
            w1 = w[o * K + 1]
            for c in range(L):
                d[c] = s0[c] * w0 + s1[c] * w1
        elif K == 4:
            s1 = src + idx[o * K + 1] * L
            s2 = src + idx[o * K + 2] * L
            s3 = src + idx[o * K + 3] * L
            w1 = w[o * K + 1]
            w2 = w[o * K + 2]
            w3 = w[o * K + 3]
            for c in range(L):
                d[c] = s0[c] * w0 + s1[c] * w1 + s2[c] * w2 + s3[c] * w3
        else:
            for c in range(L):
                d[c] = s0[c] * w0
            for k in range(1, K):
                s1 = src + idx[o * K + k] * L
                w1 = w[o * K + k]
                for c in range(L):
                    d[c] = d[c] + s1[c] * w1


cdef inline void _gather_csr(const floating* src, floating* dst, Py_ssize_t n,
                             const Py_ssize_t* ptr, const Py_ssize_t* sidx,
                             const floating* w) noexcept nogil:
    """dst[i] = 0 + sum over e in [ptr[i], ptr[i+1]) of src[sidx[e]] * w[e], in order."""
    cdef Py_ssize_t i, e
    cdef floating acc
    for i in range(n):
        acc = 0
        for e in range(ptr[i], ptr[i + 1]):
            acc = acc + src[sidx[e]] * w[e]
        dst[i] = acc


cdef inline void _gather_csr_x2(const floating* src, floating* dst, Py_ssize_t n,
                                const Py_ssize_t* ptr, const Py_ssize_t* sidx,
                                const floating* w, Py_ssize_t i_lo, Py_ssize_t i_hi) noexcept nogil:
    """_gather_csr where, for i in [i_lo, i_hi), row i reads 2i-1 .. 2i+2 with the
    weights of row i_lo (the transpose of the half-pixel x2 stencil)."""
    cdef Py_ssize_t i
    cdef Py_ssize_t e = ptr[i_lo]
    cdef floating c0 = w[e], c1 = w[e + 1], c2 = w[e + 2], c3 = w[e + 3]
    _gather_csr(src, dst, i_lo, ptr, sidx, w)
    for i in range(i_lo, i_hi):
        dst[i] = (((<floating>0 + src[2 * i - 1] * c0) + src[2 * i] * c1)
                  + src[2 * i + 1] * c2) + src[2 * i + 2] * c3
    _gather_csr(src, dst + i_hi, n - i_hi, ptr + i_hi, sidx, w)


cdef inline void _combine_csr(const floating* src, floating* dst, Py_ssize_t n, Py_ssize_t L,
                              const Py_ssize_t* ptr, const Py_ssize_t* sidx,
                              const floating* w) noexcept nogil:
    """Row i of dst = 0 + sum over e of w[e] * row sidx[e] of src, in order."""
    cdef Py_ssize_t i, e, c, count
    cdef floating* d
    cdef const floating* s
    cdef const floating* s1
    cdef const floating* s2
    cdef const floating* s3
    cdef floating we, w1, w2, w3
    cdef floating zero = 0
    for i in range(n):
        d = dst + i * L
        e = ptr[i]
        count = ptr[i + 1] - e
        # rows read by 2 or 4 outputs (linear and x2 patterns) in one pass, same order of sums
        if count == 2:
            s = src + sidx[e] * L
            s1 = src + sidx[e + 1] * L
            we = w[e]
            w1 = w[e + 1]
            for c in range(L):
                d[c] = (zero + s[c] * we) + s1[c] * w1
        elif count == 4:
            s = src + sidx[e] * L
            s1 = src + sidx[e + 1] * L
            s2 = src + sidx[e + 2] * L
            s3 = src + sidx[e + 3] * L
            we = w[e]
            w1 = w[e + 1]
            w2 = w[e + 2]
            w3 = w[e + 3]
            for c in range(L):
                d[c] = (((zero + s[c] * we) + s1[c] * w1) + s2[c] * w2) + s3[c] * w3
        else:
            memset(d, 0, L * sizeof(floating))
            for e in range(ptr[i], ptr[i + 1]):
                s = src + sidx[e] * L
                we = w[e]
                for c in range(L):
                    d[c] = d[c] + s[c] * we


cdef inline Py_ssize_t _taps_buf1_size(PlaneShape s) noexcept nogil:
    """A thread's scratch row: buf1 (D, H, OW, C) for the W pass, then buf2 (D, OH, OW, C)."""
    return s.D * s.H * s.OW * s.C


cdef void _taps_plane(const floating* x, floating* out, floating* work, PlaneShape s,
                      const Py_ssize_t* idx_d, const floating* w_d, Py_ssize_t K_d,
                      const unsigned char* need_d, bint act_d,
                      const Py_ssize_t* idx_h, const floating* w_h, Py_ssize_t K_h,
                      const unsigned char* need_h, bint act_h,
                      const Py_ssize_t* idx_w, const floating* w_w, Py_ssize_t K_w, bint act_w,
                      Py_ssize_t x2_lo, Py_ssize_t x2_hi) noexcept nogil:
    """One plane, W axis then H then D; an inactive axis is the identity and is skipped.
    ``need_*`` marks the input rows/slabs some tap reads, so downsampling skips the rest.
    Along W a channels-first row is a gather, a channels-last one combines C-vectors."""
    cdef Py_ssize_t D = s.D, H = s.H, W = s.W, C = s.C, OD = s.OD, OH = s.OH, OW = s.OW
    cdef floating* buf1 = work
    cdef floating* buf2 = work + _taps_buf1_size(s)
    cdef const floating* cur = x
    cdef floating* dst
    cdef Py_ssize_t d, h, r
    cdef Py_ssize_t row_in = W * C, row_out = OW * C
    if act_w:
        dst = buf1 if (act_h or act_d) else out
        for d in range(D):
            if not need_d[d]:
                continue
            for h in range(H):
                if not need_h[h]:
                    continue
                r = d * H + h
                if C > 1:
                    _combine_taps(cur + r * row_in, dst + r * row_out, OW, C, idx_w, w_w, K_w)
                elif x2_lo < x2_hi:
                    _gather_taps_x2(cur + r * row_in, dst + r * row_out, OW,
                                    idx_w, w_w, x2_lo, x2_hi)
                else:
                    _gather_taps(cur + r * row_in, dst + r * row_out, OW, idx_w, w_w, K_w)
        cur = dst
    if act_h:
        dst = buf2 if act_d else out
        for d in range(D):
            if need_d[d]:
                _combine_taps(cur + d * H * row_out, dst + d * OH * row_out, OH, row_out,
                              idx_h, w_h, K_h)
        cur = dst
    if act_d:
        _combine_taps(cur, out, OD, OH * row_out, idx_d, w_d, K_d)


cdef void _taps_backward_plane(const floating* g, floating* gx, floating* work,
                               PlaneShape s,
                               const Py_ssize_t* ptr_d, const Py_ssize_t* src_d,
                               const floating* tw_d, bint act_d,
                               const Py_ssize_t* ptr_h, const Py_ssize_t* src_h,
                               const floating* tw_h, bint act_h,
                               const Py_ssize_t* ptr_w, const Py_ssize_t* src_w,
                               const floating* tw_w, bint act_w,
                               Py_ssize_t x2_lo, Py_ssize_t x2_hi) noexcept nogil:
    """The transpose of _taps_plane: D, then H, then W, through the CSR tables."""
    cdef Py_ssize_t D = s.D, H = s.H, W = s.W, C = s.C, OD = s.OD, OH = s.OH, OW = s.OW
    cdef floating* buf1 = work
    cdef floating* buf2 = work + _taps_buf1_size(s)
    cdef const floating* cur = g
    cdef floating* dst
    cdef Py_ssize_t d, r
    cdef Py_ssize_t row_in = W * C, row_out = OW * C
    if act_d:
        dst = buf2 if (act_h or act_w) else gx
        _combine_csr(cur, dst, D, OH * row_out, ptr_d, src_d, tw_d)
        cur = dst
    if act_h:
        dst = buf1 if act_w else gx
        for d in range(D):
            _combine_csr(cur + d * OH * row_out, dst + d * H * row_out, H, row_out,
                         ptr_h, src_h, tw_h)
        cur = dst
    if act_w:
        for r in range(D * H):
            if C > 1:
                _combine_csr(cur + r * row_out, gx + r * row_in, W, C, ptr_w, src_w, tw_w)
            elif x2_lo < x2_hi:
                _gather_csr_x2(cur + r * row_out, gx + r * row_in, W, ptr_w, src_w, tw_w,
                               x2_lo, x2_hi)
            else:
                _gather_csr(cur + r * row_out, gx + r * row_in, W, ptr_w, src_w, tw_w)


def taps_forward(const floating[:, :, :, :, ::1] x, floating[:, :, :, :, ::1] out,
                 floating[:, ::1] work,
                 const Py_ssize_t[:, ::1] idx_d, const floating[:, ::1] w_d,
                 const unsigned char[::1] need_d, bint act_d,
                 const Py_ssize_t[:, ::1] idx_h, const floating[:, ::1] w_h,
                 const unsigned char[::1] need_h, bint act_h,
                 const Py_ssize_t[:, ::1] idx_w, const floating[:, ::1] w_w, bint act_w,
                 Py_ssize_t x2_lo, Py_ssize_t x2_hi, int num_threads):
    """Separable interpolation through per-axis tap tables (see the module doc).

    ``work`` is scratch: one row of at least (D*H*OW + D*OH*OW) * C elements per thread.
    ``x2_lo < x2_hi`` promises the half-pixel x2 stencil on W for pairs m in that range
    (used when C == 1).
    """
    cdef Py_ssize_t p
    cdef PlaneShape s = _plane_shape(x.shape, out.shape)
    if s.P == 0 or s.OD * s.OH * s.OW * s.C == 0:
        return
    for p in prange(s.P, nogil=True, num_threads=num_threads, schedule="static"):
        _taps_plane(&x[p, 0, 0, 0, 0], &out[p, 0, 0, 0, 0], &work[omp_get_thread_num(), 0], s,
                    &idx_d[0, 0], &w_d[0, 0], idx_d.shape[1], &need_d[0], act_d,
                    &idx_h[0, 0], &w_h[0, 0], idx_h.shape[1], &need_h[0], act_h,
                    &idx_w[0, 0], &w_w[0, 0], idx_w.shape[1], act_w, x2_lo, x2_hi)


def taps_backward(const floating[:, :, :, :, ::1] grad, floating[:, :, :, :, ::1] grad_x,
                  floating[:, ::1] work,
                  const Py_ssize_t[::1] ptr_d, const Py_ssize_t[::1] src_d,
                  const floating[::1] tw_d, bint act_d,
                  const Py_ssize_t[::1] ptr_h, const Py_ssize_t[::1] src_h,
                  const floating[::1] tw_h, bint act_h,
                  const Py_ssize_t[::1] ptr_w, const Py_ssize_t[::1] src_w,
                  const floating[::1] tw_w, bint act_w,
                  Py_ssize_t x2_lo, Py_ssize_t x2_hi, int num_threads):
    """The transpose of :func:`taps_forward` through CSR tables of each axis
    (``ptr`` has n_in + 1 entries; row i lists the outputs reading input i).

    ``work``: one row of at least (D*H*OW + D*OH*OW) * C elements per thread.
    ``x2_lo < x2_hi`` promises the transposed x2 stencil on W for rows in that range.
    """
    cdef Py_ssize_t p
    cdef PlaneShape s = _plane_shape(grad_x.shape, grad.shape)
    if s.P == 0 or s.D * s.H * s.W * s.C == 0:
        return
    for p in prange(s.P, nogil=True, num_threads=num_threads, schedule="static"):
        _taps_backward_plane(&grad[p, 0, 0, 0, 0], &grad_x[p, 0, 0, 0, 0],
                             &work[omp_get_thread_num(), 0], s,
                             &ptr_d[0], &src_d[0], &tw_d[0], act_d,
                             &ptr_h[0], &src_h[0], &tw_h[0], act_h,
                             &ptr_w[0], &src_w[0], &tw_w[0], act_w, x2_lo, x2_hi)


# --------------------------------------------------------------------------- antialiased taps
# PyTorch's antialiased bilinear/bicubic (2-D only).  Each output reads a
# variable number of taps: ``start[o]``, ``count[o]`` and the weights in row o
# of a zero-padded (n_out, K) table.  The order of operations copies what
# ATen's x86-64 build (AVX512 dispatch) does with its scalar loop
# ``acc = t0*w0; acc += t_j*w_j``: the compiler vectorises the first
# ``vec * floor((count-1)/vec)`` additions as in-order multiply-then-add (vec =
# 16 bytes / itemsize) and fuses the remaining ones into fma.  The backward is
# ATen's non-separable scatter, ``gx[h, w] += (wx * wy) * g[oh, ow]`` fused,
# done here as a gather: each input cell sums its outputs in (oh, ow) order.
# The loops themselves are in antialias_loops.h: C compiled twice, for
# baseline x86-64 and for AVX2+FMA, because a baseline fma() is a library call.
from libc.math cimport fma, fmaf

cdef extern from "antialias_loops.h" nogil:
    # float or double pointers, all of one type: the header picks the build by them
    # (float_or_double.h; void pointers here only let Cython pass either through)
    void mp_aa_combine(const void* src, void* dst, Py_ssize_t n, Py_ssize_t L,
                       const Py_ssize_t* start, const Py_ssize_t* count,
                       const void* w, Py_ssize_t K, Py_ssize_t vec)
    void mp_aa_backward_planes(const void* g, void* gx, Py_ssize_t planes,
                               Py_ssize_t g_plane, Py_ssize_t gx_plane, Py_ssize_t H,
                               Py_ssize_t W, Py_ssize_t C, Py_ssize_t OW,
                               const Py_ssize_t* ptr_h, const Py_ssize_t* src_h,
                               const void* tw_h, const Py_ssize_t* ptr_w,
                               const Py_ssize_t* src_w, const void* tw_w)
    void mp_aa_rows(const void* src, void* dst, Py_ssize_t rows, Py_ssize_t n_in,
                    Py_ssize_t n_out, Py_ssize_t L, const Py_ssize_t* start,
                    const Py_ssize_t* count, const void* w, Py_ssize_t K, Py_ssize_t vec)
    int mp_pick_aa_kernels(int allow)
    enum: PLANE_BLOCK "MP_AA_ROW_BLOCK"


def use_cpu_fma(bint allow=True):
    """Run the antialiased loops with the CPU's AVX2+FMA instructions when it has
    them (the default, chosen at import), or with the portable build when
    ``allow`` is False.  Both give the same bits.  Returns True if AVX2+FMA is used."""
    return mp_pick_aa_kernels(allow) == 1


CPU_FMA = use_cpu_fma(True)


cdef inline floating _fused(floating a, floating b, floating c) noexcept nogil:
    if floating is float:
        return fmaf(a, b, c)
    else:
        return fma(a, b, c)


def fma_arrays(const floating[::1] a, const floating[::1] b, const floating[::1] c,
               floating[::1] out):
    """out = a * b + c rounded once (the C library's fma), element by element."""
    cdef Py_ssize_t i, n = out.shape[0]
    if a.shape[0] != n or b.shape[0] != n or c.shape[0] != n:
        raise ValueError("fma_arrays: a, b, c and out must have the same length")
    for i in range(n):
        out[i] = _fused(a[i], b[i], c[i])


cdef inline void _aa_combine(const floating* src, floating* dst, Py_ssize_t n, Py_ssize_t L,
                             const Py_ssize_t* start, const Py_ssize_t* count,
                             const floating* w, Py_ssize_t K, Py_ssize_t vec) noexcept nogil:
    """Row o of dst (length L) = taps of rows start[o] .. start[o]+count[o]-1 of src."""
    mp_aa_combine(src, dst, n, L, start, count, w, K, vec)


def aa_forward(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] out,
               floating[:, ::1] work,
               const Py_ssize_t[::1] start_h, const Py_ssize_t[::1] count_h,
               const floating[:, ::1] w_h, bint act_h,
               const Py_ssize_t[::1] start_w, const Py_ssize_t[::1] count_w,
               const floating[:, ::1] w_w, bint act_w,
               Py_ssize_t vec, int num_threads):
    """Antialiased 2-D resampling of (planes, H, W, C) through ragged tap tables:
    W first (into ``work``: one row of H*OW*C per thread), then H; an inactive
    axis (same size) is skipped, as ATen copies it."""
    cdef Py_ssize_t p, tid, P = x.shape[0]
    cdef Py_ssize_t H = x.shape[1], W = x.shape[2], C = x.shape[3]
    cdef Py_ssize_t OH = out.shape[1], OW = out.shape[2]
    cdef floating* mid
    cdef const floating* cur
    if vec < 1:
        raise ValueError("aa_forward: vec must be >= 1")
    if out.shape[0] != P or out.shape[3] != C:
        raise ValueError("aa_forward: x and out disagree on planes or channels")
    if (not act_w and OW != W) or (not act_h and OH != H):
        raise ValueError("aa_forward: an inactive axis must keep its size")
    if act_w and (start_w.shape[0] != OW or count_w.shape[0] != OW or w_w.shape[0] != OW):
        raise ValueError("aa_forward: the W table must have one row per output column")
    if act_h and (start_h.shape[0] != OH or count_h.shape[0] != OH or w_h.shape[0] != OH):
        raise ValueError("aa_forward: the H table must have one row per output row")
    if act_w and act_h and (work.shape[0] < num_threads or work.shape[1] < H * OW * C):
        raise ValueError("aa_forward: work needs one row of H*OW*C elements per thread")
    if P == 0 or OH * OW * C == 0:
        return
    for p in prange(P, nogil=True, num_threads=num_threads, schedule="static"):
        tid = omp_get_thread_num()
        cur = &x[p, 0, 0, 0]
        if act_w:
            mid = &work[tid, 0] if act_h else &out[p, 0, 0, 0]
            mp_aa_rows(cur, mid, H, W, OW, C, &start_w[0], &count_w[0], &w_w[0, 0],
                       w_w.shape[1], vec)
            cur = mid
        if act_h:
            _aa_combine(cur, &out[p, 0, 0, 0], OH, OW * C,
                        &start_h[0], &count_h[0], &w_h[0, 0], w_h.shape[1], vec)


def aa_backward(const floating[:, :, :, ::1] grad, floating[:, :, :, ::1] grad_x,
                const Py_ssize_t[::1] ptr_h, const Py_ssize_t[::1] src_h,
                const floating[::1] tw_h,
                const Py_ssize_t[::1] ptr_w, const Py_ssize_t[::1] src_w,
                const floating[::1] tw_w, int num_threads):
    """grad_x[p, h, w, c] = 0 + sum over the outputs (oh, ow) reading (h, w), in
    ascending (oh, ow) order, of fma(wx * wy, grad[p, oh, ow, c], acc).  CSR
    tables: row i of an axis lists the outputs reading input i and their weights."""
    cdef Py_ssize_t b, p, nb, P = grad_x.shape[0]
    cdef Py_ssize_t H = grad_x.shape[1], W = grad_x.shape[2], C = grad_x.shape[3]
    cdef Py_ssize_t OW = grad.shape[2]
    cdef Py_ssize_t g_plane = grad.shape[1] * OW * C, gx_plane = H * W * C
    if grad.shape[0] != P or grad.shape[3] != C:
        raise ValueError("aa_backward: grad and grad_x disagree on planes or channels")
    if ptr_h.shape[0] != H + 1 or ptr_w.shape[0] != W + 1:
        raise ValueError("aa_backward: ptr tables need n_in + 1 entries")
    if src_h.shape[0] != ptr_h[H] or tw_h.shape[0] != ptr_h[H] or \
            src_w.shape[0] != ptr_w[W] or tw_w.shape[0] != ptr_w[W]:
        raise ValueError("aa_backward: src and tw tables need ptr[n_in] entries")
    if P == 0 or H * W * C == 0:
        return
    if ptr_h[H] == 0 or ptr_w[W] == 0:  # no output reads an input cell (an empty output)
        grad_x[...] = 0
        return
    # blocks of PLANE_BLOCK planes (the C loops interleave 8 channels-first planes)
    for b in prange((P + PLANE_BLOCK - 1) // PLANE_BLOCK, nogil=True, num_threads=num_threads,
                    schedule="static"):
        p = b * PLANE_BLOCK
        nb = min(PLANE_BLOCK, P - p)
        mp_aa_backward_planes(&grad[p, 0, 0, 0], &grad_x[p, 0, 0, 0], nb, g_plane, gx_plane,
                              H, W, C, OW, &ptr_h[0], &src_h[0], &tw_h[0], &ptr_w[0],
                              &src_w[0], &tw_w[0])
