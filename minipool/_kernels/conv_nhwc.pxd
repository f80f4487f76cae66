# The channels-last (NHWC) passes over one image that conv2d_channels_last.pyx's
# entry points share out to threads (conv_transpose2d.pyx runs the backward's
# input-gradient pass as its forward), and the workspace they need.  Inline
# functions only, compiled into (and inlined within) each module that cimports
# them; see conv_columns.pxd.
#
# An NHWC image is H*W pixel rows of C channels.  Its column block holds one ROW per
# output pixel (ld = C*kh*kw), the taps of group grp in columns [grp*K_group,
# (grp+1)*K_group) in (ki, kj, c) order: a tap is a run of C/groups channels copied
# straight from one input pixel.  The weight is therefore taken as (O, kh*kw*C/groups)
# -- the caller permutes the small PyTorch-layout weight (O, C/groups, kh, kw) once --
# and the GEMM out (pixels, O) = cols @ W.T lands straight in NHWC output rows.  The
# sums run over the taps in (ki, kj, c) order instead of NCHW's (c, ki, kj): the two
# layouts agree to rounding, not bit for bit.
# Backward, per image and block, with G the output gradient's (pixels, O) rows:
#   weight: (O_group, K_group) (+)= G.T @ cols into slot n % S (as NCHW);
#   bias:   (O,) (+)= ones @ G;
#   input:  grad_cols = G @ W, added back pixel by pixel into the image's gradient.
from cython cimport floating
from libc.string cimport memcpy, memset

from minipool._kernels.conv_columns cimport Geometry, _add_bias, _col2im_block, _im2col_block
from minipool._kernels.conv_gemm cimport _gemm, noinline_void


cdef inline Py_ssize_t _cl_workspace(const Geometry* g, bint backward) noexcept nogil:
    """forward: cols; backward: cols | grad_cols | ones."""
    cdef Py_ssize_t width = g.block_rows * g.Wo, taps = g.C * g.kh * g.kw
    if backward:
        return 2 * taps * width + width
    return taps * width


cdef inline noinline_void _cl_taps(floating* cols, floating* image, const Geometry* g, Py_ssize_t oh0,
                          Py_ssize_t oh1, bint to_cols) noexcept nogil:
    """im2col of output rows [oh0, oh1) of an NHWC image into pixel rows of ``cols``
    (padding: zeros), or with ``to_cols`` false its adjoint: every tap added back into
    the gradient ``image`` (padding taps dropped), pixel by pixel in a fixed order."""
    cdef Py_ssize_t Cg = g.C // g.groups, ld = g.C * g.kh * g.kw
    cdef Py_ssize_t oh, ow, ki, kj, ih, iw, grp, c
    cdef floating* r
    cdef floating* d
    cdef floating* p
    if g.groups == 1 and g.dw == 1:
        _cl_runs(cols, image, g, oh0, oh1, to_cols)
        return
    for oh in range(oh0, oh1):
        for ow in range(g.Wo):
            r = cols + ((oh - oh0) * g.Wo + ow) * ld
            for ki in range(g.kh):
                ih = oh * g.sh - g.ph + ki * g.dh
                for kj in range(g.kw):
                    iw = ow * g.sw - g.pw + kj * g.dw
                    d = r + (ki * g.kw + kj) * Cg
                    if 0 <= ih < g.H and 0 <= iw < g.W:
                        p = image + (ih * g.W + iw) * g.C
                        for grp in range(g.groups):
                            if to_cols:
                                for c in range(Cg):
                                    d[grp * g.K_group + c] = p[grp * Cg + c]
                            else:
                                for c in range(Cg):
                                    p[grp * Cg + c] += d[grp * g.K_group + c]
                    elif to_cols:
                        for grp in range(g.groups):
                            for c in range(Cg):
                                d[grp * g.K_group + c] = 0


cdef inline void _cl_runs(floating* cols, floating* image, const Geometry* g, Py_ssize_t oh0,
                          Py_ssize_t oh1, bint to_cols) noexcept nogil:
    """``_cl_taps`` for one group and no horizontal dilation: the kw taps of a kernel row
    are kw neighbouring pixels, so the row is ONE run of kw*C values in the image and in
    ``cols`` (cut at the image's left and right edges): one copy per output pixel and
    kernel row instead of one per tap (LeNet's 1-channel conv1: 5x fewer, 5x longer)."""
    cdef Py_ssize_t C = g.C, ld = g.C * g.kh * g.kw, run = g.kw * g.C
    cdef Py_ssize_t oh, ow, ki, ih, iw0, lo, hi, i
    cdef floating* r
    cdef floating* d
    cdef floating* p
    for oh in range(oh0, oh1):
        for ow in range(g.Wo):
            r = cols + ((oh - oh0) * g.Wo + ow) * ld
            iw0 = ow * g.sw - g.pw
            lo = min(max(-iw0, 0), g.kw) * C  # the run's part inside the image: [lo, hi)
            hi = max(min(g.W - iw0, g.kw) * C, lo)
            for ki in range(g.kh):
                ih = oh * g.sh - g.ph + ki * g.dh
                d = r + ki * run
                if 0 <= ih < g.H and hi > lo:
                    p = image + ih * g.W * C + iw0 * C + lo  # the first value inside the image
                    if to_cols:
                        for i in range(lo):
                            d[i] = 0
                        if hi - lo >= 32:
                            memcpy(d + lo, p, (hi - lo) * sizeof(floating))
                        else:  # short runs (few channels): no call per run
                            for i in range(hi - lo):
                                d[lo + i] = p[i]
                        for i in range(hi, run):
                            d[i] = 0
                    else:
                        for i in range(hi - lo):
                            p[i] += d[lo + i]
                elif to_cols:
                    memset(d, 0, run * sizeof(floating))


cdef inline void _cl_forward_image(const floating* image, const floating* weight, const floating* bias,
                                   floating* out, floating* cols, const Geometry* g) noexcept nogil:
    """out (Ho*Wo, O) of one NHWC image, block of output rows by block.

    One input channel: the image is also its own NCHW plane and both tap orders are
    (ki, kj), so the column block is built as the NCHW kernel does, (K, P), by rows of
    output pixels (kw*C = kw values per pixel run would be copied one short run at a
    time: 4-5x slower on LeNet's conv1) and the GEMM reads it transposed."""
    cdef Py_ssize_t ld = g.C * g.kh * g.kw, oh0 = 0, oh1, P, grp
    cdef floating* dst
    while oh0 < g.Ho:
        oh1 = min(oh0 + g.block_rows, g.Ho)
        P = (oh1 - oh0) * g.Wo
        dst = out + oh0 * g.Wo * g.O
        if g.C == 1:  # the NCHW column block (K, P): see _cl_forward_image's note
            _im2col_block(image, cols, P, g, oh0, oh1)
            _gemm(True, True, P, g.O, ld, cols, P, weight, ld, False, dst, g.O)
        else:
            _cl_taps(cols, <floating*>image, g, oh0, oh1, True)  # reads image only
            for grp in range(g.groups):
                _gemm(False, True, P, g.O_group, g.K_group, cols + grp * g.K_group, ld,
                      weight + grp * g.O_group * g.K_group, g.K_group, False,
                      dst + grp * g.O_group, g.O)
        if bias != NULL:  # after the product, as the NCHW kernel
            _add_bias(dst, bias, g.O, P, True)
        oh0 = oh1


cdef inline void _cl_backward_image(const floating* image, const floating* weight, const floating* grad,
                                    floating* image_grad, floating* weight_grad, floating* bias_grad,
                                    bint accumulate, floating* work, const Geometry* g) noexcept nogil:
    """One NHWC image's share: ``weight_grad`` (groups, O_group, K_group) (+)= G.T @ cols,
    ``bias_grad`` (O,) (+)= ones @ G, ``image_grad`` (H*W, C) = col2im(G @ W); each when
    given (``image`` is read only for the weight gradient)."""
    cdef Py_ssize_t ld = g.C * g.kh * g.kw, max_width = g.block_rows * g.Wo
    cdef Py_ssize_t oh0 = 0, oh1, P, grp, i
    cdef floating* cols = work
    cdef floating* grad_cols = cols + ld * max_width
    cdef floating* ones = grad_cols + ld * max_width
    cdef const floating* G
    if image_grad != NULL:
        memset(image_grad, 0, g.H * g.W * g.C * sizeof(floating))
    if bias_grad != NULL:
        for i in range(max_width):
            ones[i] = 1
    while oh0 < g.Ho:
        oh1 = min(oh0 + g.block_rows, g.Ho)
        P = (oh1 - oh0) * g.Wo
        G = grad + oh0 * g.Wo * g.O
        if bias_grad != NULL:
            _gemm(False, False, 1, g.O, P, ones, max_width, G, g.O, accumulate or oh0 > 0,
                  bias_grad, g.O)
        if g.C == 1:  # (K, P) column blocks, as in _cl_forward_image
            if weight_grad != NULL:
                _im2col_block(image, cols, P, g, oh0, oh1)
                _gemm(True, True, g.O, ld, P, G, g.O, cols, P, accumulate or oh0 > 0,
                      weight_grad, ld)
            if image_grad != NULL:
                _gemm(True, True, ld, P, g.O, weight, ld, G, g.O, False, grad_cols, P)
                _col2im_block(grad_cols, P, image_grad, g, oh0, oh1)
            oh0 = oh1
            continue
        if weight_grad != NULL:
            _cl_taps(cols, <floating*>image, g, oh0, oh1, True)
        for grp in range(g.groups):
            if weight_grad != NULL:
                _gemm(True, False, g.O_group, g.K_group, P, G + grp * g.O_group, g.O,
                      cols + grp * g.K_group, ld, accumulate or oh0 > 0,
                      weight_grad + grp * g.O_group * g.K_group, g.K_group)
            if image_grad != NULL:
                _gemm(False, False, P, g.K_group, g.O_group, G + grp * g.O_group, g.O,
                      weight + grp * g.O_group * g.K_group, g.K_group, False,
                      grad_cols + grp * g.K_group, ld)
        if image_grad != NULL:
            _cl_taps(grad_cols, image_grad, g, oh0, oh1, False)
        oh0 = oh1
