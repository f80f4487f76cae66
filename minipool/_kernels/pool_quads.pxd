# The QUADS paths: windows of 2x2 stride 2 tiling the input exactly (the common
# pooling layer).  Their forward walks, one per layout, serve every kind through
# pool_kinds' compile-time tags (max, min, avg/sum/LP, and the avg/sum backward
# that writes each window's share): the walk is written once, and each
# specialisation holds only its kind's window loop.  Max / min pooling's backward
# writes every input cell once, the gradient at its window's winner and 0
# elsewhere, as integer bit masks (uint32 / uint64 views of the gradient).
# An inline function of a .pxd is compiled into each module that cimports it
# (pool_extreme, pool_sum), so these loops are inlined and optimised with their
# callers exactly as when they were written there.  (A cdef function cimported
# from another .pyx module is called through a pointer instead: never inlined.)
from libc.stdint cimport uint8_t

from minipool._kernels.pool_kinds cimport (KeepMax, KeepMin, Spread, _extreme_2x2,
                                           _extreme_window_channels, _key, _kind_flip, _quad,
                                           quad_op_t)
from minipool._kernels.pool_windows cimport (CHUNK, FAST_2X2, Windows, _divisor, _out_row,
                                             bits_t, pool_t)


cdef inline void _quads_plane(const pool_t* src, pool_t* dst, uint8_t* codes, int* wide,
                              const Windows* w, quad_op_t op) noexcept nogil:
    """PATH_QUADS_PLANE forward (and Spread, the avg/sum backward) for one plane whose
    windows are all whole 2x2 stride 2: one loop per output row, no other per-row work.

    Max / min: dst[o] = the window's extreme of src; with ``codes`` its ordinal, kept
    as int in ``wide`` (a plane of scratch) and packed to uint8 for the whole plane at
    the end (LeNet's small planes are dominated by per-row costs otherwise).  A power
    kind: dst[o] = (sum of the window's cells of src raised to p, scan order)^(1/p) /
    divisor.  Spread: each window's four cells of dst = src[o] / divisor (the windows
    tile the input: no zeroing pass, no adds)."""
    cdef Py_ssize_t od, oh, i, o_row, corner, W = w.size_in[2], oW = w.size_out[2]
    cdef pool_t flip = _kind_flip(src, op)
    cdef const pool_t* r0
    cdef const pool_t* r1
    cdef pool_t* out
    cdef pool_t* cells
    cdef const pool_t* grad
    cdef const double* d2
    cdef double d01
    cdef int* kp
    cdef int unused
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            corner = (w.first[0][od] * w.size_in[1] + w.first[1][oh]) * W
            o_row = _out_row(w, od, oh)
            if quad_op_t is KeepMax or quad_op_t is KeepMin:
                # row pointers in locals: the compiler cannot tell that stores to out
                # leave them alone
                r0 = src + corner
                r1 = r0 + W
                out = dst + o_row
                if codes == NULL:
                    for i in range(oW):
                        out[i] = _key(_extreme_2x2(r0, r1, 2 * i, 1, flip, &unused), flip)
                else:
                    kp = wide + o_row
                    for i in range(oW):
                        out[i] = _key(_extreme_2x2(r0, r1, 2 * i, 1, flip, &kp[i]), flip)
            elif quad_op_t is Spread:
                # the row's tables and pointers in locals, as above: stores to the cells
                # would otherwise reload them per window.  (d0 * d1) * d2 is _divisor's
                # product in its order: the same bits.
                cells = dst + corner
                grad = src + o_row
                d2 = w.divisor[2]
                d01 = w.divisor[0][od] * w.divisor[1][oh]
                for i in range(oW):
                    _quad(grad, NULL, cells + 2 * i, cells + W + 2 * i, i, 1,
                          <pool_t>(d01 * d2[i]), op)
            else:
                cells = <pool_t*>src + corner   # the cells are read
                for i in range(oW):
                    _quad(src, dst, cells + 2 * i, cells + W + 2 * i, o_row + i, 1,
                          <pool_t>_divisor(w, od, oh, i), op)
    if quad_op_t is KeepMax or quad_op_t is KeepMin:
        if codes != NULL:
            for i in range(w.size_out[0] * w.size_out[1] * oW):
                codes[i] = <uint8_t>wide[i]


cdef inline void _four(pool_t* run, pool_t q0, pool_t q1, pool_t q2, pool_t q3) noexcept nogil:
    run[0] = q0
    run[1] = q1
    run[2] = q2
    run[3] = q3


cdef inline void _spread_groups(const pool_t* g, pool_t* top, pool_t* bottom, Py_ssize_t C,
                                Py_ssize_t c0, Py_ssize_t nc, pool_t div) noexcept nogil:
    """The avg/sum backward of one NHWC window, channels [c0, c0+nc) with nc >= 4: each of
    its four cells (runs of channels at top, top + C, bottom, bottom + C) gets g / div.
    Four channels at a time, the four quotients first, then the 16 stores: straight-line
    vector code, no alias checks or remainder loops (LeNet's 6 channels paid both per
    window).  When nc is not a multiple of 4 the last group overlaps the previous one
    and writes the same values again."""
    cdef Py_ssize_t c = c0, end = c0 + nc
    cdef pool_t q0, q1, q2, q3
    while c < end:
        c = min(c, end - 4)
        # the casts: the debug build (no cdivision) divides integers as Python does
        q0 = <pool_t>(g[c] / div)
        q1 = <pool_t>(g[c + 1] / div)
        q2 = <pool_t>(g[c + 2] / div)
        q3 = <pool_t>(g[c + 3] / div)
        _four(top + c, q0, q1, q2, q3)
        _four(top + C + c, q0, q1, q2, q3)
        _four(bottom + c, q0, q1, q2, q3)
        _four(bottom + C + c, q0, q1, q2, q3)
        c += 4


cdef inline void _quads_channels(const pool_t* src, pool_t* dst, uint8_t* codes, Py_ssize_t C,
                                 Py_ssize_t c0, Py_ssize_t nc, const Windows* w,
                                 quad_op_t op) noexcept nogil:
    """PATH_QUADS_CHANNELS: _quads_plane for channels [c0, c0+nc) of an NHWC image whose
    windows are all whole 2x2 stride 2; each window cell is a run of channels, so the
    loops run along C (vectorised).  Max / min go a chunk of channels at a time
    (_extreme_window_channels: running max and ordinal in registers); the avg/sum
    backward four channels at a time (_spread_groups)."""
    cdef Py_ssize_t od, oh, ow, i, n, o, o_row, p, corner, cstart, W = w.size_in[2]
    cdef pool_t flip = _kind_flip(src, op)
    cdef pool_t div
    cdef pool_t* cells
    cdef int chunk_codes[CHUNK]
    cdef int* kp = chunk_codes if codes != NULL else NULL
    for od in range(w.size_out[0]):
        for oh in range(w.size_out[1]):
            # once per row: the compiler cannot tell that stores to dst leave the tables
            # alone, and would reload them per window (LeNet NHWC: 7% more instructions)
            corner = (w.first[0][od] * w.size_in[1] + w.first[1][oh]) * W * C
            o_row = _out_row(w, od, oh)
            for ow in range(w.size_out[2]):
                p = corner + 2 * ow * C
                o = (o_row + ow) * C
                if quad_op_t is KeepMax or quad_op_t is KeepMin:
                    cstart = c0
                    while cstart < c0 + nc:
                        n = min(<Py_ssize_t>CHUNK, c0 + nc - cstart)
                        # (the third row: unused by 2x2 windows)
                        _extreme_window_channels(src + p + cstart, src + p + W * C + cstart,
                                                 src + p + W * C + cstart, C, n, FAST_2X2, flip,
                                                 dst + o + cstart, kp)
                        if codes != NULL:
                            for i in range(n):
                                codes[o + cstart + i] = <uint8_t>chunk_codes[i]
                        cstart += n
                elif quad_op_t is Spread and nc >= 4:
                    _spread_groups(src + o, dst + p, dst + p + W * C, C, c0, nc,
                                   <pool_t>_divisor(w, od, oh, ow))
                else:
                    if quad_op_t is Spread:
                        cells = dst + p
                    else:
                        cells = <pool_t*>src + p
                    div = <pool_t>_divisor(w, od, oh, ow)
                    for i in range(c0, c0 + nc):
                        _quad(src, dst, cells + i, cells + W * C + i, o + i, C, div, op)


# ----------------------------------------------------------------------------- max / min backward


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
