"""2-d convolution, channels last (NHWC), float32 and float64: im2col + GEMM per image, or
the direct kernel (forward, section "direct" at the end).

The column blocks, the passes over an image and the (ki, kj, c) order of the sums
are described in conv_nhwc.pxd.  Each thread takes whole images (forward) or
weight-gradient slots (backward: image n goes to slot n % S, a slot's images in
order, as in conv2d.pyx), so the bits do not depend on the thread count.
minipool/ops/conv.py plans the blocks (``plan_channels_last``) and calls:

    entry point                      per image (conv_nhwc.pxd)
    conv2d_forward_channels_last     _cl_forward_image: one input channel: the
                                     NCHW column block (K, P), _im2col_block, one
                                     GEMM read transposed; else pixel rows of
                                     taps, _cl_taps (one group and no horizontal
                                     dilation: _cl_runs), one GEMM per group;
                                     then _add_bias
    conv2d_backward_channels_last    _cl_backward_image: bias (ones @ G), weight
                                     (G.T @ cols) and input (G @ W, added back by
                                     _cl_taps or _col2im_block) per block

The transposed convolution's NHWC forward is in conv_transpose2d.pyx.  (This file
was split out of conv2d.pyx; conv2d re-exports its entry points.)
"""
from cython cimport floating
from cython.parallel cimport prange, threadid

from minipool._kernels.conv_columns cimport (ConvArrays, Geometry, _backward_arrays,
                                             _bias_pointer, _dims, _forward_arrays, _geometry)
from minipool._kernels.conv_nhwc cimport _cl_backward_image, _cl_forward_image, _cl_workspace


def plan_channels_last(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
                       Py_ssize_t block_elements):
    """As conv2d's ``plan``, for the channels-last kernels."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    cdef Py_ssize_t taps = C * g.kh * g.kw, rows = g.Ho
    while rows > 1 and taps * rows * g.Wo > block_elements:
        rows = (rows + 1) // 2
    g.block_rows = max(rows, 1)
    return g.block_rows, _cl_workspace(&g, False), _cl_workspace(&g, True)


def conv2d_forward_channels_last(const floating[:, :, :, ::1] x, const floating[:, ::1] weight, bias,
                                 floating[:, :, :, ::1] out, object geometry, Py_ssize_t block_rows,
                                 floating[:, ::1] workspace, int num_threads):
    """out (N, Ho, Wo, O) = conv(x (N, H, W, C), weight (O, kh*kw*C/groups)) + bias;
    ``block_rows`` and the workspace (forward size) from ``plan_channels_last``."""
    cdef Py_ssize_t N = x.shape[0], n, t
    cdef Geometry g = _geometry(x.shape[3], x.shape[1], x.shape[2], weight.shape[0], geometry,
                                block_rows)
    cdef Py_ssize_t per_thread = _cl_workspace(&g, False)
    cdef ConvArrays arrays
    num_threads = max(num_threads, 1)
    if not _forward_arrays(x, weight, bias, out, (N, g.Ho, g.Wo, g.O), workspace, num_threads,
                           per_thread, &g, geometry, &arrays):
        return
    cdef const floating* xp = <const floating*>arrays.x
    cdef const floating* wp = <const floating*>arrays.weight
    cdef const floating* bias_ptr = <const floating*>arrays.bias
    cdef floating* op = <floating*>arrays.out
    cdef floating* wsp = <floating*>arrays.workspace
    cdef Py_ssize_t in_image = g.C * g.H * g.W, out_image = g.O * g.Ho * g.Wo
    for n in prange(N, nogil=True, schedule="static", num_threads=num_threads):
        t = threadid()
        _cl_forward_image(xp + n * in_image, wp, bias_ptr, op + n * out_image,
                          wsp + t * per_thread if wsp != NULL else NULL, &g)


def conv2d_backward_channels_last(const floating[:, :, :, ::1] x, const floating[:, ::1] weight,
                                  const floating[:, :, :, ::1] grad, grad_x, weight_slots, bias_slots,
                                  object geometry, Py_ssize_t block_rows, floating[:, ::1] workspace,
                                  int num_threads):
    """As ``conv2d_backward`` for NHWC: x (N, H, W, C), grad (N, Ho, Wo, O), ``grad_x``
    like x, ``weight_slots`` (S, groups, O/groups, kh*kw*C/groups) -- the weight gradient
    in the permuted layout, NOT transposed -- and ``bias_slots`` (S, O); any may be None."""
    cdef Py_ssize_t N = x.shape[0], s, n, t, S
    cdef Geometry g = _geometry(x.shape[3], x.shape[1], x.shape[2], weight.shape[0], geometry,
                                block_rows)
    cdef Py_ssize_t per_thread = _cl_workspace(&g, True)
    cdef Py_ssize_t L = g.Ho * g.Wo
    cdef floating[:, ::1] bslots
    cdef ConvArrays arrays
    num_threads = max(num_threads, 1)
    if not _backward_arrays(x, weight, grad, (N, g.Ho, g.Wo, g.O), grad_x, weight_slots,
                            bias_slots, (g.groups, g.O_group, g.K_group), N, workspace,
                            num_threads, per_thread, &g, geometry, &arrays):
        if bias_slots is not None:  # no input channels: the bias still has a gradient
            bslots, S = bias_slots, arrays.S
            for n in range(N):
                for s in range(L):
                    for t in range(g.O):
                        bslots[n % S, t] += grad[n, s // g.Wo, s % g.Wo, t]
        return
    S = arrays.S
    cdef const floating* xp = <const floating*>arrays.x
    cdef const floating* wp = <const floating*>arrays.weight
    cdef const floating* gp = <const floating*>arrays.grad
    cdef floating* gxp = <floating*>arrays.out
    cdef floating* slotp = <floating*>arrays.slots
    cdef floating* bslotp = <floating*>arrays.bias_slots
    cdef floating* wsp = <floating*>arrays.workspace
    cdef Py_ssize_t in_image = g.C * g.H * g.W, out_image = g.O * L, slot_size = g.O * g.K_group
    cdef Py_ssize_t busy_slots = min(S, N)
    for s in prange(busy_slots, nogil=True, schedule="dynamic", num_threads=num_threads):
        t = threadid()
        n = s
        while n < N:
            _cl_backward_image(xp + n * in_image, wp, gp + n * out_image,
                               gxp + n * in_image if gxp != NULL else NULL,
                               slotp + s * slot_size if slotp != NULL else NULL,
                               bslotp + s * g.O if bslotp != NULL else NULL, n >= S,
                               wsp + t * per_thread, &g)
            n = n + S


# ---------------------------------------------------------------- direct
# conv2d_direct.h's engine on NHWC: output channels in the vector lanes are the NHWC
# output's own runs (whole-vector stores), an input pixel's channels one run.  The same
# sums (in (c, ki, kj) order, padding taps skipped) as the NCHW direct kernel, so the
# same bits as channels-first there.  conv2d.pyx owns the switch and the CPU choice
# (``uses_direct_channels_last``); minipool/ops/conv.py calls this where it says so.
from minipool._kernels.conv_first cimport _first_fits, _forward_on_first
from minipool._kernels.conv_direct cimport (_forward_on_direct, mp_pick_conv_direct,
                                            mp_use_direct_avx512)


cdef extern from "cpu_features.h" nogil:
    int mp_cpu_avx2_fma(int allow)


def conv2d_first_channels_last(const float[:, :, :, ::1] x, const float[:, ::1] weight, bias,
                               float[:, :, :, ::1] out, object geometry, int num_threads):
    """out (N, Ho, Wo, O) = conv(x (N, H, W, 1), weight (O, kh*kw)) + bias on conv2d's
    first-layer kernel (conv_first.pxd): one input channel is NCHW memory too, so only the
    output is written pixel by pixel.  Where ``conv2d.uses_first`` says (the caller asks);
    the NCHW forward's bits."""
    cdef Py_ssize_t N = x.shape[0]
    cdef Geometry g = _geometry(x.shape[3], x.shape[1], x.shape[2], weight.shape[0], geometry, 1)
    if _dims(out) != (N, g.Ho, g.Wo, g.O) or weight.shape[1] != g.K_group:
        raise ValueError(f"conv2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"out {_dims(out)} do not match geometry {geometry}")
    if g.C != 1 or not _first_fits(&g) or not mp_cpu_avx2_fma(1):
        raise ValueError("conv2d first-layer kernel (channels last): one input channel, a "
                         "3x3 or 5x5 kernel at stride 1 and an AVX2 CPU only")
    cdef const float* bias_ptr = _bias_pointer(bias, g.O, <float*>NULL, "conv2d")
    if N == 0 or g.O == 0:
        return
    _forward_on_first(&g, &x[0, 0, 0, 0], N, &weight[0, 0], bias_ptr, &out[0, 0, 0, 0],
                      max(num_threads, 1), False, True)


def use_cpu_avx2_direct(bint allow=True):
    """This module's copy of the direct kernel's build (conv2d.use_cpu_avx2 calls it)."""
    return mp_pick_conv_direct(allow) == 1


def use_cpu_avx512_direct(int mode=1):
    """This module's copy of the direct kernel's AVX-512 mode (conv2d.use_cpu_avx512 calls it)."""
    return mp_use_direct_avx512(mode) == 1


def conv2d_direct_channels_last(const floating[:, :, :, ::1] x, const floating[:, ::1] weight,
                                bias, floating[:, :, :, ::1] out, object geometry,
                                int num_threads, bint by_planes=False):
    """out (N, Ho, Wo, O) = conv(x (N, H, W, C), weight (O, kh*kw*C/groups)) + bias on the
    direct kernel; the weight must be finite (a padding tap must meet inf or NaN: the
    caller keeps such weights on ``conv2d_forward_channels_last``).  ``by_planes``: the
    images are first copied as NCHW planes (a tile's points, spread over 6 images and
    the taps, then read few cache lines: NHWC pixels 4 KiB apart share L1 sets), the
    output still written NHWC; the same sums, so the same bits.  The chunks and their
    one launch are conv2d's (conv_direct.pxd, "the launch")."""
    cdef Py_ssize_t N = x.shape[0]
    cdef Geometry g = _geometry(x.shape[3], x.shape[1], x.shape[2], weight.shape[0], geometry, 1)
    cdef const floating* bias_ptr = NULL
    if _dims(out) != (N, g.Ho, g.Wo, g.O) or weight.shape[1] != g.K_group:
        raise ValueError(f"conv2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"out {_dims(out)} do not match geometry {geometry}")
    if g.kh * g.kw > 64 or g.K_group == 0:
        raise ValueError(f"conv2d direct kernel: {g.kh}x{g.kw} taps (at most 64) and "
                         f"{g.K_group} products per output (at least 1)")
    bias_ptr = _bias_pointer(bias, g.O, <floating*>NULL, "conv2d")
    if N == 0 or g.O == 0 or g.Ho * g.Wo == 0:
        return
    if not _forward_on_direct(&g, &x[0, 0, 0, 0], N, &weight[0, 0], bias_ptr, &out[0, 0, 0, 0],
                              max(num_threads, 1), False, True, by_planes):
        raise ValueError("conv2d direct kernel: the weight must be finite")
