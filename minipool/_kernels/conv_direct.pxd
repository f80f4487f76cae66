# The direct forward engine (conv2d_direct.h): output channels in the vector lanes, a
# few output pixels in registers, input pixels broadcast from the image itself, the
# taps in the padding skipped (31-51% of all taps on 4x4 planes).  The same bits as
# the tiles for a finite weight (see the header), so only such weights take it;
# conv2d.pyx decides where (``_direct_win``) and prepares the tables once per call.
# Inline functions only, compiled into each module that cimports them (conv_columns.pxd).
from cython cimport floating
from libc.stdint cimport uint64_t

from minipool._kernels.conv_columns cimport Geometry
from minipool._kernels.conv_gemm cimport noinline_void

cdef extern from "conv2d_direct.h" nogil:
    # float or double pointers, all of one type: the header picks the build by them
    # (float_or_double.h; void pointers here only let Cython pass either through).
    # NCHW: channel stride a plane, pixel step 1, output pixel step 1, channel step L;
    # NHWC: channel stride 1, pixel step C, output pixel step O, channel step 1.
    void mp_direct_strided(const void* w, Py_ssize_t O, const void* x, Py_ssize_t count,
                           Py_ssize_t channels, Py_ssize_t image, Py_ssize_t channel_stride,
                           const Py_ssize_t* tap_offset, Py_ssize_t taps,
                           const Py_ssize_t* pixel_base, Py_ssize_t pixel_step,
                           const uint64_t* pixel_taps, const Py_ssize_t* pixel_order,
                           Py_ssize_t L, const void* bias, void* out, Py_ssize_t out_image,
                           Py_ssize_t out_pixel, Py_ssize_t out_channel)
    void mp_direct_pixels(Py_ssize_t H, Py_ssize_t W, Py_ssize_t kh, Py_ssize_t kw,
                          Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                          Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t Ho, Py_ssize_t Wo,
                          Py_ssize_t* pixel_base, uint64_t* pixel_taps, Py_ssize_t* pixel_order)
    Py_ssize_t mp_direct_block_width(Py_ssize_t O, Py_ssize_t o0, Py_ssize_t item)
    Py_ssize_t mp_direct_packed_size(Py_ssize_t O, Py_ssize_t K, Py_ssize_t item)
    void mp_direct_pack(const void* weight, void* packed, Py_ssize_t groups, Py_ssize_t O,
                        Py_ssize_t channels, Py_ssize_t taps, int channels_last)
    int mp_pick_conv_direct(int allow)
    int mp_use_direct_avx512(int mode)
    int mp_direct_avx512_runs(Py_ssize_t O, Py_ssize_t taps, Py_ssize_t L)
    enum: DIRECT_MAX_TAPS "MP_DIRECT_MAX_TAPS"


cdef inline noinline_void _prepare_direct(Geometry* g, const floating* weight, floating* packed,
                                          Py_ssize_t* tap_offset, Py_ssize_t* pixel_base,
                                          uint64_t* pixel_taps, bint channels_last=False,
                                          bint nhwc_offsets=False) noexcept nogil:
    """The packed weight (conv2d_direct.h's blocks, per group), the taps' offsets in
    the unpadded plane, the pixel tables (``pixel_base``: 2 x Ho*Wo, the bases then
    the order); and ``g`` set to use them.  ``channels_last``: the weight is (O,
    kh*kw*C/groups) (conv2d_channels_last.pyx's), packed in the same (c, ki, kj)
    order; ``nhwc_offsets``: the taps' offsets count NHWC values (times C)."""
    cdef Py_ssize_t ki, kj
    mp_direct_pack(weight, packed, g.groups, g.O_group, g.C // g.groups, g.kh * g.kw,
                   channels_last)
    for ki in range(g.kh):
        for kj in range(g.kw):
            tap_offset[ki * g.kw + kj] = ((ki * g.dh * g.W + kj * g.dw) * g.C if nhwc_offsets
                                          else ki * g.dh * g.W + kj * g.dw)
    mp_direct_pixels(g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.Ho, g.Wo,
                     pixel_base, pixel_taps, pixel_base + g.Ho * g.Wo)
    g.direct, g.pixel_base, g.pixel_taps = True, pixel_base, pixel_taps
    g.pixel_order = pixel_base + g.Ho * g.Wo


cdef inline Py_ssize_t _direct_images(const Geometry* g) noexcept nogil:
    """Images per call: a pixel group's points (its pixels in every image of the call) then
    fill whole tiles, 6 points (blocks of 16 channels) or 12 (the last block of up to 8):
    on a 4x4 plane a corner's group is one pixel (5x5: every group)."""
    return 12 if 0 < g.O_group % 16 <= 8 else 6


cdef inline noinline_void _forward_direct(const floating* images, Py_ssize_t count,
                                          const floating* packed, const Py_ssize_t* tap_offset,
                                          const floating* bias, floating* out,
                                          const Geometry* g) noexcept nogil:
    """``count`` consecutive images, group by group, on the direct kernel."""
    cdef Py_ssize_t L = g.Ho * g.Wo, plane = g.H * g.W, Cg = g.C // g.groups, grp
    cdef Py_ssize_t group_size = mp_direct_packed_size(g.O_group, g.K_group, sizeof(floating))
    cdef const floating* x
    cdef const floating* b
    cdef floating* o
    for grp in range(g.groups):
        x = images + grp * Cg * plane
        o = out + grp * g.O_group * L
        b = bias + grp * g.O_group if bias != NULL else NULL
        mp_direct_strided(packed + grp * group_size, g.O_group, x, count, Cg, g.C * plane,
                          plane, tap_offset, g.kh * g.kw, g.pixel_base, 1, g.pixel_taps,
                          g.pixel_order, L, b, o, g.O * L, 1, L)


cdef inline noinline_void _forward_direct_channels_last(
        const floating* images, Py_ssize_t count, const floating* packed,
        const Py_ssize_t* tap_offset, const floating* bias, floating* out,
        const Geometry* g, bint planes) noexcept nogil:
    """``count`` consecutive images, NHWC or (``planes``) NCHW, into NHWC output, group by
    group, on the direct kernel (tables from ``_prepare_direct(..., channels_last=True,
    nhwc_offsets=not planes)``): the same sums as ``_forward_direct``, so the same bits."""
    cdef Py_ssize_t L = g.Ho * g.Wo, Cg = g.C // g.groups, grp, plane = g.H * g.W
    cdef Py_ssize_t group_size = mp_direct_packed_size(g.O_group, g.K_group, sizeof(floating))
    cdef Py_ssize_t channel_stride = plane if planes else 1, pixel_step = 1 if planes else g.C
    cdef const floating* b
    cdef const floating* x
    for grp in range(g.groups):
        b = bias + grp * g.O_group if bias != NULL else NULL
        x = images + grp * Cg * channel_stride
        mp_direct_strided(packed + grp * group_size, g.O_group, x, count, Cg, g.C * plane,
                          channel_stride, tap_offset, g.kh * g.kw, g.pixel_base, pixel_step,
                          g.pixel_taps, g.pixel_order, L, b, out + grp * g.O_group, g.O * L,
                          g.O, 1)
