# Max / min pooling backward on the QUADS paths (2x2 stride 2 windows tiling the
# input exactly): every input cell is written once, the gradient at its
# window's winner and 0 elsewhere, as integer bit masks (uint32 / uint64
# views of the gradient).  Cimported by pool_extreme only: an inline function
# of a .pxd is compiled into the module that cimports it, so these loops stay
# in pool_extreme's translation unit, inlined and optimised with their caller
# exactly as when they were written there.  (A cdef function cimported from
# another .pyx module is called through a pointer instead: never inlined.)
from libc.stdint cimport uint8_t

from minipool._kernels.pool_windows cimport bits_t


cdef inline bits_t _keep_if(bits_t v, int code, int cell) noexcept nogil:
    """The bits of 0.0 + v if the window's winner is ``cell``, else 0 (the bits of
    +0.0): an AND with an all-ones / all-zeros mask, which vectorises without any
    select.  0.0 + v is v except that -0.0 becomes +0.0, as in PyTorch (and our
    general path), which fill the gradient with zeros and add."""
    cdef bits_t sign = (<bits_t>1) << (8 * sizeof(bits_t) - 1)
    v = v & ~(sign & (<bits_t>0 - <bits_t>(v == sign)))  # -0.0 -> +0.0
    return v & (<bits_t>0 - <bits_t>(code == cell))


cdef inline void _route_cell(bits_t* dst, Py_ssize_t step, int cell, bits_t g0, bits_t g1,
                             bits_t g2, bits_t g3, int k0, int k1, int k2, int k3) noexcept nogil:
    """Cell ``cell`` of four items, step apart: the item's gradient where that
    cell won, else 0."""
    dst[0] = _keep_if(g0, k0, cell)
    dst[step] = _keep_if(g1, k1, cell)
    dst[2 * step] = _keep_if(g2, k2, cell)
    dst[3 * step] = _keep_if(g3, k3, cell)


cdef inline void _route_four(const bits_t* gr, const int* kr, bits_t* top, bits_t* bottom,
                             Py_ssize_t i, Py_ssize_t step, Py_ssize_t right) noexcept nogil:
    """Items i..i+3: four windows of a plane (step 2, right 1) or four channels of
    one NHWC window (step 1, right C).  Item i + m has its gradient at gr[i + m],
    its code at kr[i + m] and its cells at top[(i + m) * step], ``right`` further,
    and the same in ``bottom``.  All loads first, then the 16 stores (cell by
    cell: runs the compiler turns into vector operations without alias checks;
    a loop over few items would not vectorise)."""
    cdef bits_t g0 = gr[i], g1 = gr[i + 1], g2 = gr[i + 2], g3 = gr[i + 3]
    cdef int k0 = kr[i], k1 = kr[i + 1], k2 = kr[i + 2], k3 = kr[i + 3]
    cdef bits_t* t0 = top + i * step
    cdef bits_t* t1 = top + i * step + right
    cdef bits_t* b0 = bottom + i * step
    cdef bits_t* b1 = bottom + i * step + right
    _route_cell(t0, step, 0, g0, g1, g2, g3, k0, k1, k2, k3)
    _route_cell(t1, step, 1, g0, g1, g2, g3, k0, k1, k2, k3)
    _route_cell(b0, step, 2, g0, g1, g2, g3, k0, k1, k2, k3)
    _route_cell(b1, step, 3, g0, g1, g2, g3, k0, k1, k2, k3)


cdef inline void _route_quads_plane(const bits_t* g, const uint8_t* codes, bits_t* grad_in,
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
                _route_four(gr, kr, r0, r1, i, 2, 1)
                i += 4
            if i < oW:
                _route_four(gr, kr, r0, r1, oW - 4, 2, 1)
            continue
        for i in range(oW):
            v = gr[i]
            k = kr[i]
            r0[2 * i] = _keep_if(v, k, 0)
            r0[2 * i + 1] = _keep_if(v, k, 1)
            r1[2 * i] = _keep_if(v, k, 2)
            r1[2 * i + 1] = _keep_if(v, k, 3)


cdef inline void _route_quads_channels(const bits_t* g, const uint8_t* codes, bits_t* grad_in,
                                       Py_ssize_t C, Py_ssize_t c0, Py_ssize_t nc,
                                       Py_ssize_t rows_out, Py_ssize_t oW,
                                       int* wide) noexcept nogil:
    """An NHWC image tiled by 2x2 stride 2 windows, channels [c0, c0+nc): output
    row R writes input rows 2R and 2R+1 (each window's cells are four runs of
    channels, p0, p0 + C, p1, p1 + C), the gradient at the winner and 0
    elsewhere.  A row's codes are widened to int first (``wide``, oW * C); the
    channels go four at a time, the last four overlapping the
    previous ones when nc is not a multiple of 4 (same values rewritten, inside
    the slice), so LeNet's 6 channels are two vector groups, not a loop of 6;
    slices of 1-3 channels take the scalar loop."""
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
                    _route_four(gr, kr, p0, p1, c, 1, C)
                    c += 4
                if c < end:
                    _route_four(gr, kr, p0, p1, end - 4, 1, C)
                continue
            for c in range(c0, end):
                v = gr[c]
                k = kr[c]
                p0[c] = _keep_if(v, k, 0)
                p0[C + c] = _keep_if(v, k, 1)
                p1[c] = _keep_if(v, k, 2)
                p1[C + c] = _keep_if(v, k, 3)
