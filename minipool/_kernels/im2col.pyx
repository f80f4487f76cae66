"""im2col / col2im for 2-d convolution (NCHW), float32 and float64.

Layout of the column matrix ``cols`` (shape ``(C*kh*kw, N*Ho*Wo)``, C order):
row ``(c*kh + ki)*kw + kj`` holds, for every image ``n`` and output pixel
``(oh, ow)``, the input value that kernel tap ``(ki, kj)`` of channel ``c``
sees, at column ``n*Ho*Wo + oh*Wo + ow`` (zero where the tap falls into the
padding).  With the batch folded into the columns, a convolution is one GEMM
``weight.reshape(O, C*kh*kw) @ cols`` (per group: a contiguous block of rows),
and the weight gradient is one GEMM ``grad_out2d @ cols.T``, neither needing a
copy of a transposed operand.

``im2col`` runs ``prange`` over the rows of ``cols`` and writes each row front to
back (streaming stores; ~15% faster than writing per input plane on LeNet's
conv2).  It only gathers, so any split gives the same bits.  ``col2im`` runs
``prange`` over the N*C gradient planes: every thread owns whole planes,
zeroes them and adds their taps in a fixed order, so the scatter-add needs no
atomics and the result is bit-identical for any thread count.
"""
from cython cimport floating
from cython.parallel cimport prange


cdef inline void _valid_span(Py_ssize_t out_len, Py_ssize_t stride, Py_ssize_t offset,
                             Py_ssize_t in_len, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Output indices o in [lo, hi) whose input index o*stride + offset is inside [0, in_len)."""
    cdef Py_ssize_t first = 0, last
    if offset < 0:
        first = (-offset + stride - 1) // stride
    last = in_len - 1 - offset
    if last < 0:
        hi[0] = 0
    else:
        hi[0] = min(out_len, last // stride + 1)
    lo[0] = min(first, out_len)
    if hi[0] < lo[0]:
        hi[0] = lo[0]


cdef void _im2col_row(const floating* x, floating* dst, Py_ssize_t N, Py_ssize_t plane_stride,
                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t ki, Py_ssize_t kj,
                      Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                      Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Ho, Py_ssize_t Wo) noexcept nogil:
    """Write one row of ``cols`` (tap (ki, kj) of one channel, every image), front to back.

    ``x`` points at the channel's plane in image 0; planes of later images are
    ``plane_stride`` apart.  Writing a whole row in order keeps the stores
    streaming (the inputs it reads are small and stay in cache).
    """
    cdef Py_ssize_t n, oh, ow, oh_lo, oh_hi, ow_lo, ow_hi, row_off, col_off, L = Ho * Wo
    cdef floating* d
    cdef floating* image_dst
    cdef const floating* s
    row_off = ki * dh - ph
    col_off = kj * dw - pw
    _valid_span(Ho, sh, row_off, H, &oh_lo, &oh_hi)
    _valid_span(Wo, sw, col_off, W, &ow_lo, &ow_hi)
    for n in range(N):
        image_dst = dst + n * L
        # output rows whose input row is padding: all zeros
        for ow in range(oh_lo * Wo):
            image_dst[ow] = 0
        for ow in range(oh_hi * Wo, L):
            image_dst[ow] = 0
        for oh in range(oh_lo, oh_hi):
            d = image_dst + oh * Wo
            s = x + n * plane_stride + (oh * sh + row_off) * W + col_off
            for ow in range(ow_lo):
                d[ow] = 0
            if sw == 1:
                for ow in range(ow_lo, ow_hi):
                    d[ow] = s[ow]
            else:
                for ow in range(ow_lo, ow_hi):
                    d[ow] = s[ow * sw]
            for ow in range(ow_hi, Wo):
                d[ow] = 0


cdef void _col2im_plane(const floating* src, floating* dst, Py_ssize_t row_stride,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw,
                        Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                        Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Ho, Py_ssize_t Wo) noexcept nogil:
    """Zero one gradient plane, then add back every tap of its column block (fixed order)."""
    cdef Py_ssize_t ki, kj, oh, ow, oh_lo, oh_hi, ow_lo, ow_hi, row_off, col_off, i
    cdef floating* d
    cdef const floating* s
    for i in range(H * W):
        dst[i] = 0
    for ki in range(kh):
        row_off = ki * dh - ph
        _valid_span(Ho, sh, row_off, H, &oh_lo, &oh_hi)
        for kj in range(kw):
            col_off = kj * dw - pw
            _valid_span(Wo, sw, col_off, W, &ow_lo, &ow_hi)
            for oh in range(oh_lo, oh_hi):
                s = src + (ki * kw + kj) * row_stride + oh * Wo
                d = dst + (oh * sh + row_off) * W + col_off
                if sw == 1:
                    for ow in range(ow_lo, ow_hi):
                        d[ow] += s[ow]
                else:
                    for ow in range(ow_lo, ow_hi):
                        d[ow * sw] += s[ow]


def _check(x, cols, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
           Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Ho, Py_ssize_t Wo, col_start):
    if kh < 1 or kw < 1 or sh < 1 or sw < 1 or dh < 1 or dw < 1:
        raise ValueError("im2col: kernel size, stride and dilation must be >= 1, got "
                         f"kernel ({kh}, {kw}), stride ({sh}, {sw}), dilation ({dh}, {dw})")
    if Ho < 0 or Wo < 0:
        raise ValueError(f"im2col: output size ({Ho}, {Wo}) must be >= 0")
    N, C = x.shape[0], x.shape[1]
    if col_start is not None and col_start < 0:
        raise ValueError(f"im2col: col_start must be >= 0, got {col_start}")
    if col_start is None:
        expected = (C * kh * kw, N * Ho * Wo)
        if tuple(cols.shape) != expected:
            raise ValueError(f"im2col: cols has shape {tuple(cols.shape)}, expected {expected} "
                             f"for input {tuple(x.shape)}")
    elif cols.shape[0] != C * kh * kw or cols.shape[1] < col_start + N * Ho * Wo:
        raise ValueError(f"im2col: cols has shape {tuple(cols.shape)}, too small for "
                         f"{C * kh * kw} rows and columns [{col_start}, {col_start + N * Ho * Wo}) "
                         f"of input {tuple(x.shape)}")


def im2col(const floating[:, :, :, ::1] x, floating[:, ::1] cols,
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
           Py_ssize_t Ho, Py_ssize_t Wo, int num_threads=1, col_start=None):
    """Fill ``cols`` (C*kh*kw, N*Ho*Wo) from ``x`` (N, C, H, W); see the module docstring.

    With ``col_start`` given, ``x`` may be a slice of the batch: only columns
    ``[col_start, col_start + N*Ho*Wo)`` of a wider ``cols`` are written.
    """
    _check(x, cols, kh, kw, sh, sw, dh, dw, Ho, Wo, col_start)
    cdef Py_ssize_t first_col = 0 if col_start is None else col_start
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t L = Ho * Wo, NL = cols.shape[1], c
    if N * C == 0 or L == 0 or cols.shape[0] == 0:
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* cp = &cols[0, 0] + first_col
    cdef Py_ssize_t row, taps = kh * kw
    # Each thread owns whole rows of cols (pure gathers, so any split is deterministic).
    for row in prange(C * taps, nogil=True, schedule="static", num_threads=max(num_threads, 1)):
        c = row // taps
        _im2col_row(xp + c * H * W, cp + row * NL, N, C * H * W, H, W,
                    (row - c * taps) // kw, (row - c * taps) % kw,
                    sh, sw, ph, pw, dh, dw, Ho, Wo)


def col2im(const floating[:, ::1] cols, floating[:, :, :, ::1] out,
           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
           Py_ssize_t Ho, Py_ssize_t Wo, int num_threads=1):
    """Overwrite ``out`` (N, C, H, W) with the sum of ``cols``' taps: the adjoint of im2col."""
    _check(out, cols, kh, kw, sh, sw, dh, dw, Ho, Wo, None)
    cdef Py_ssize_t N = out.shape[0], C = out.shape[1], H = out.shape[2], W = out.shape[3]
    cdef Py_ssize_t L = Ho * Wo, NL = N * Ho * Wo, plane, n, c
    if N * C * H * W == 0:
        return
    cdef floating* op = &out[0, 0, 0, 0]
    if L == 0:
        for plane in range(N * C * H * W):
            op[plane] = 0
        return
    cdef const floating* cp = &cols[0, 0]
    for plane in prange(N * C, nogil=True, schedule="static", num_threads=max(num_threads, 1)):
        n = plane // C
        c = plane - n * C
        _col2im_plane(cp + c * kh * kw * NL + n * L, op + plane * H * W, NL,
                      H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo)


def run_on_team(list calls, int num_threads):
    """Call every function in ``calls`` (no arguments) on the OpenMP team, ``num_threads``
    threads sharing them out statically (thread 0 is the caller).

    conv2d runs its image chunks this way rather than on a Python thread of its
    own: an OpenMP worker keeps spinning for a while after each parallel region,
    and a second Python thread would fight it for the cores (measured: LeNet
    training at 2 threads 30% slower than with the team).  Each call takes the
    GIL; NumPy's BLAS and our kernels release it for the heavy work.  An
    exception raised by a call is re-raised here after the loop.
    """
    cdef Py_ssize_t i, n = len(calls)
    for i in prange(n, nogil=True, schedule="static", num_threads=max(num_threads, 1)):
        with gil:
            calls[i]()
