# The NCHW passes over whole images that conv2d.pyx's entry points share out to
# threads: the forward product of one image's column blocks (or a few images' side
# by side) on BLAS or on conv2d_tiles.h's register tiles, and the backward's
# weight, bias and input gradients of the same blocks; plus the workspace each
# needs; and the chunks those passes are shared out in (``_run_chunks``).
# conv_transpose2d.pyx runs the backward's input-gradient pass as its
# forward.  Inline functions only, compiled into (and inlined within) each module
# that cimports them; see conv_columns.pxd.
from cython cimport floating
from libc.string cimport memset

from minipool._kernels.conv_columns cimport (ConvArrays, Geometry, _all_finite, _block_width,
                                             _col2im_block, _crop_planes, _im2col_block, _pad_planes,
                                             _shifted_col2im, _shifted_cols, _transpose_rows,
                                             _widen_rows)
from minipool._kernels.conv_gemm cimport _gemm, noinline_void
from minipool._kernels._load_team cimport _launch, mp_chunk_fn

# conv2d_tiles.h: the register tiles' product, their panel width and the build they run
# on (AVX2 or baseline, picked by conv2d.use_cpu_avx2).  A product takes float or double
# pointers, all of one type: the C header picks the float or double build by them
# (float_or_double.h); void pointers here only let Cython pass either through.
cdef extern from "conv2d_tiles.h" nogil:
    void mp_conv_product(const void* w, Py_ssize_t O, const void* src, Py_ssize_t channels,
                         Py_ssize_t channel_stride, const Py_ssize_t* tap_offset,
                         Py_ssize_t taps, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t src_row,
                         void* out, Py_ssize_t ldo, Py_ssize_t out_row)
    int mp_pick_conv_tiles(int allow)
    Py_ssize_t mp_conv_panel_width(Py_ssize_t O, Py_ssize_t o0)
    enum: TILE_ROWS "MP_CONV_MR"
    enum: TILE_SLACK "MP_CONV_SLACK"

# conv2d_wgrad.h: the weight gradient's tiles (conv2d.pyx, "weight gradient on tiles")
cdef extern from "conv2d_wgrad.h" nogil:
    void mp_wgrad_product(const void* src, Py_ssize_t channels, Py_ssize_t channel_stride,
                          Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t tap_row, Py_ssize_t tap_col,
                          const void* g, Py_ssize_t ldg, Py_ssize_t O, Py_ssize_t n,
                          void* out, Py_ssize_t ldo, int accumulate)
    int mp_pick_wgrad_tiles(int allow)


cdef inline void _wgrad_product(const floating* src, Py_ssize_t channels,
                                Py_ssize_t channel_stride, Py_ssize_t kh, Py_ssize_t kw,
                                Py_ssize_t tap_row, Py_ssize_t tap_col, const floating* G,
                                Py_ssize_t ldg, Py_ssize_t O, Py_ssize_t n, floating* out,
                                Py_ssize_t ldo, bint accumulate) noexcept nogil:
    """out (channels*kh*kw, O), row stride ``ldo``, (+)= the source rows times G.T (see
    conv2d_wgrad.h)."""
    mp_wgrad_product(src, channels, channel_stride, kh, kw, tap_row, tap_col, G, ldg, O, n,
                     out, ldo, accumulate)


cdef inline Py_ssize_t _packed_group(Py_ssize_t O_group, Py_ssize_t K_group) noexcept nogil:
    """A group's packed weight: its panels cover at most O_group rounded up to 6 rows."""
    return (O_group + TILE_ROWS - 1) // TILE_ROWS * TILE_ROWS * K_group


cdef inline void _tile_product(const floating* packed, Py_ssize_t O, const floating* src,
                               Py_ssize_t channels, Py_ssize_t channel_stride,
                               const Py_ssize_t* tap_offset, Py_ssize_t taps, Py_ssize_t rows,
                               Py_ssize_t n, Py_ssize_t src_row, floating* out, Py_ssize_t ldo,
                               Py_ssize_t out_row) noexcept nogil:
    """out (O, rows x n), channel stride ``ldo``, = the packed weight of O channels times
    the src rows (see conv2d_tiles.h)."""
    mp_conv_product(packed, O, src, channels, channel_stride, tap_offset, taps, rows, n,
                    src_row, out, ldo, out_row)


cdef inline Py_ssize_t _source_size(const Geometry* g) noexcept nogil:
    return g.C * g.Hs * g.Ws if g.padded else 0


cdef inline Py_ssize_t _forward_planes(const Geometry* g) noexcept nogil:
    """The forward pass's copy of an image's planes: padded ones, or any stride-1
    image on tiles (whose last vectors read past the last plane: TILE_SLACK)."""
    return g.C * g.Hs * g.Ws if g.shifted else 0


cdef inline Py_ssize_t _forward_workspace(const Geometry* g) noexcept nogil:
    """The forward workspace: enough for BLAS and for tiles by rows (planes and slack)."""
    return max(_workspace_elements(g, False),
               g.C * g.Hs * g.Ws + TILE_SLACK if g.shiftable else 0)


cdef inline Py_ssize_t _workspace_elements(const Geometry* g, bint backward) noexcept nogil:
    """What one thread's workspace row holds (see _forward_images / _backward_images):
    forward:  planes | cols | wide output (shifted or several images only) | tiles' slack
    backward: padded planes | padded gradient planes | cols | grad_cols | wide G | G.T | ones"""
    cdef Py_ssize_t width = _block_width(g, g.block_rows) if g.Ho and g.Wo else 0
    cdef Py_ssize_t taps = g.C * g.kh * g.kw, ld = g.images * width
    if backward:
        return 2 * _source_size(g) + 2 * taps * ld + 2 * g.O * ld + width
    return (_forward_planes(g) + taps * ld + (g.O * ld if g.shifted or g.images > 1 else 0)
            + TILE_SLACK)


# ---------------------------------------------------------------- images
# A GEMM over one image's block of a small plane is narrow (a 4x4 plane: 16-22
# columns), and BLAS runs narrow products far below its peak.  When a whole image
# is one block, ``count`` images (plan_batch's choice) lay their column blocks side
# by side, image i in columns [i*width, (i+1)*width) of a block of row stride
# ld = count*width, and one GEMM serves them all; its output goes through the wide
# block (the images' outputs are not adjacent in NCHW).
cdef inline noinline_void _forward_images(const floating* images, Py_ssize_t count, const floating* weight,
                                 const floating* packed, const Py_ssize_t* tap_offset,
                                 const floating* bias, floating* out, floating* work,
                                 const Geometry* g) noexcept nogil:
    """out (O, Ho*Wo) of ``count`` consecutive images (count > 1: whole-image blocks).
    With a ``packed`` weight the products run on tiles (one image on shifted columns:
    straight from the planes, at ``tap_offset``), else on BLAS."""
    cdef Py_ssize_t L = g.Ho * g.Wo, in_image = g.C * g.H * g.W, out_image = g.O * L
    cdef Py_ssize_t oh0, oh1, width, ld, grp, o, r, ow, i
    cdef Py_ssize_t row_stride = g.Ws if g.shifted else g.Wo
    cdef Py_ssize_t max_ld = _block_width(g, g.block_rows) * count
    cdef bint from_planes = packed != NULL and count == 1 and g.shifted
    cdef bint into_out = count == 1 and not g.shifted  # the product lands in ``out`` itself
    cdef Py_ssize_t Cg = g.C // g.groups, taps = g.kh * g.kw, plane = g.Hs * g.Ws
    cdef Py_ssize_t panel = _packed_group(g.O_group, g.K_group)
    cdef floating* dst
    cdef Py_ssize_t ldd
    cdef const floating* planes = images
    cdef floating* cols = work + _forward_planes(g)
    cdef floating* wide_out = cols + g.C * g.kh * g.kw * max_ld
    cdef floating* d
    cdef const floating* s
    cdef floating b
    cdef Py_ssize_t no_tap_offset = 0  # a column block: one "tap" per row
    if packed != NULL and g.by_rows:
        _forward_rows(images, count, packed, tap_offset, bias, out, work, g)
        return
    oh0 = 0
    while oh0 < g.Ho:
        oh1 = min(oh0 + g.block_rows, g.Ho)
        width = _block_width(g, oh1 - oh0)
        ld = count * width
        for i in range(count):
            planes = images + i * in_image
            if g.shifted:
                if g.padded or from_planes:
                    if count > 1 or oh0 == 0:  # one image: padded once for all its blocks
                        _pad_planes(planes, work, g)
                    planes = work
                if not from_planes:
                    _shifted_cols(planes, cols + i * width, width, ld, g, oh0)
            else:
                _im2col_block(planes, cols + i * width, ld, g, oh0, oh1)
        for grp in range(g.groups):
            if into_out:
                dst, ldd = out + grp * g.O_group * L + oh0 * g.Wo, L
            else:
                dst, ldd = wide_out + grp * g.O_group * ld, ld
            if from_planes:  # one run per tap, the Ws - Wo pixels between rows dropped later
                _tile_product(packed + grp * panel, g.O_group, planes + grp * Cg * plane + oh0 * g.Ws,
                              Cg, plane, tap_offset, taps, 1, width, 0, dst, ldd, 0)
            elif packed != NULL:
                _tile_product(packed + grp * panel, g.O_group, cols + grp * g.K_group * ld,
                              g.K_group, ld, &no_tap_offset, 1, 1, ld, 0, dst, ldd, 0)
            else:  # not into_out: the wide block, whose first Wo of every row_stride columns are kept
                _gemm(False, False, g.O_group, ld, g.K_group,
                      weight + grp * g.O_group * g.K_group, g.K_group,
                      cols + grp * g.K_group * ld, ld, False, dst, ldd)
        if into_out:
            if bias != NULL:  # the product is already in place
                for o in range(g.O):
                    b = bias[o]
                    d = out + o * L + oh0 * g.Wo
                    for ow in range((oh1 - oh0) * g.Wo):
                        d[ow] += b
        else:  # copy each image's output rows out of the wide block, adding the bias
            for i in range(count):
                for o in range(g.O):
                    b = bias[o] if bias != NULL else 0
                    d = out + i * out_image + o * L + oh0 * g.Wo
                    for r in range(oh1 - oh0):
                        s = wide_out + o * ld + i * width + r * row_stride
                        for ow in range(g.Wo):
                            d[r * g.Wo + ow] = s[ow] + b
        oh0 = oh1


cdef inline void _forward_rows(const floating* images, Py_ssize_t count, const floating* packed,
                               const Py_ssize_t* tap_offset, const floating* bias, floating* out,
                               floating* work, const Geometry* g) noexcept nogil:
    """``_forward_images`` on tiles going row by row (output rows of whole 8-pixel
    vectors): each image's padded planes, then the whole product straight into ``out``
    (no column block, no pixel computed and dropped), then the bias."""
    cdef Py_ssize_t L = g.Ho * g.Wo, in_image = g.C * g.H * g.W, out_image = g.O * L
    cdef Py_ssize_t Cg = g.C // g.groups, plane = g.Hs * g.Ws, i, grp, o, j
    cdef Py_ssize_t panel = _packed_group(g.O_group, g.K_group)
    cdef floating* d
    cdef floating b
    for i in range(count):
        _pad_planes(images + i * in_image, work, g)
        for grp in range(g.groups):
            _tile_product(packed + grp * panel, g.O_group, work + grp * Cg * plane, Cg, plane,
                          tap_offset, g.kh * g.kw, g.Ho, g.Wo, g.Ws,
                          out + i * out_image + grp * g.O_group * L, L, g.Wo)
        if bias != NULL:
            for o in range(g.O):
                b = bias[o]
                d = out + i * out_image + o * L
                for j in range(L):
                    d[j] += b


cdef inline void _backward_images(const floating* images, Py_ssize_t count, const floating* weight,
                                  bint weight_finite, const floating* grads, floating* image_grads,
                                  floating* weight_grad_t, floating* bias_grad, bint accumulate,
                                  floating* work, const Geometry* g) noexcept nogil:
    """``count`` consecutive images' share of the gradients: ``weight_grad_t`` (groups,
    K_group, O_group) (+)= cols @ G.T and ``bias_grad`` (O,) (+)= G @ ones, when given;
    ``image_grads`` (count, C, H, W) = col2im(W.T @ G) when given.  G is the images'
    output gradient, (O, Ho*Wo) each; count > 1 only with whole-image blocks."""
    cdef Py_ssize_t L = g.Ho * g.Wo, in_image = g.C * g.H * g.W, out_image = g.O * L
    cdef Py_ssize_t oh0, oh1, width, ld, grp, h, i, row_stride
    cdef Py_ssize_t max_width = _block_width(g, g.block_rows), taps = g.C * g.kh * g.kw
    cdef Py_ssize_t max_ld = max_width * count
    cdef bint shifted = g.shifted, widen
    cdef const floating* planes = images
    cdef floating* planes_grad
    cdef floating* image_grad
    cdef floating* padded_grad = work + _source_size(g)
    cdef floating* cols = work + 2 * _source_size(g)
    cdef floating* grad_cols = cols + taps * max_ld
    cdef floating* wide_grad = grad_cols + taps * max_ld
    cdef floating* grad_t = wide_grad + g.O * max_ld
    cdef floating* ones = grad_t + g.O * max_ld
    cdef const floating* grad
    cdef const floating* G
    cdef Py_ssize_t ldg
    # OpenBLAS multiplies cols @ G.T up to ~1.5x faster from a copied G.T when there are
    # 16+ output channels per group; with fewer the copy costs more than it saves
    # (measured on LeNet's conv1 and conv2 and a few other shapes)
    cdef bint transposed_grad = g.O_group >= 16 and not g.wgrad_tiles
    cdef Py_ssize_t Cg = g.C // g.groups, plane = g.Hs * g.Ws
    # the dropped columns must meet finite values to add exactly nothing
    for i in range(count):
        if shifted and weight_grad_t != NULL and not _all_finite(images + i * in_image, in_image):
            shifted = False
    if shifted and image_grads != NULL and not weight_finite:
        shifted = False
    row_stride = g.Ws if shifted else g.Wo
    widen = shifted or count > 1  # G from a wide block, else read in place
    # padded gradient planes: one image's at a time (count > 1: a single block)
    cdef bint pad_grad = shifted and g.padded and image_grads != NULL
    if bias_grad != NULL:
        for h in range(max_width):
            ones[h] = 1
    if image_grads != NULL:
        if pad_grad and count == 1:
            memset(padded_grad, 0, g.C * g.Hs * g.Ws * sizeof(floating))
        elif not pad_grad:
            memset(image_grads, 0, count * in_image * sizeof(floating))
    oh0 = 0
    while oh0 < g.Ho:
        oh1 = min(oh0 + g.block_rows, g.Ho)
        width = (oh1 - oh0 - 1) * row_stride + g.Wo
        ld = count * width
        for i in range(count):
            grad = grads + i * out_image + oh0 * g.Wo
            if weight_grad_t != NULL:
                planes = images + i * in_image
                if shifted:
                    if g.padded:
                        if count > 1 or oh0 == 0:
                            _pad_planes(planes, work, g)
                        planes = work
                    if not g.wgrad_tiles or count > 1:  # one image on tiles: from its planes (below)
                        _shifted_cols(planes, cols + i * width, width, ld, g, oh0)
                else:
                    _im2col_block(planes, cols + i * width, ld, g, oh0, oh1)
            if widen and (image_grads != NULL or (weight_grad_t != NULL and not transposed_grad)):
                _widen_rows(grad, L, wide_grad + i * width, ld, row_stride, g, oh1 - oh0)
            if weight_grad_t != NULL and g.wgrad_tiles and shifted and count == 1:  # from the planes
                for grp in range(g.groups):
                    _wgrad_product(planes + grp * Cg * plane + oh0 * g.Ws, Cg, plane, g.kh, g.kw,
                                   g.dh * g.Ws, g.dw, wide_grad + grp * g.O_group * ld + i * width,
                                   ld, g.O_group, width, weight_grad_t + grp * g.K_group * g.O_group,
                                   g.O_group, accumulate or oh0 > 0 or i > 0)
                if bias_grad != NULL:  # the bias too: G's rows times a source row of ones
                    _wgrad_product(ones, 1, 0, 1, 1, 0, 0, wide_grad + i * width, ld, g.O, width,
                                   bias_grad, 1, accumulate or oh0 > 0 or i > 0)
            elif bias_grad != NULL:  # row sums of G as a GEMM: BLAS's wide loads, in a fixed order
                _gemm(False, False, g.O, 1, (oh1 - oh0) * g.Wo, grad, L, ones, 1,
                      accumulate or oh0 > 0 or i > 0, bias_grad, 1)
            if weight_grad_t != NULL and transposed_grad:
                _transpose_rows(grad, L, grad_t + i * width * g.O, row_stride, g, oh1 - oh0)
        if widen:
            G, ldg = wide_grad, ld
        else:
            G, ldg = grads + oh0 * g.Wo, L
        for grp in range(g.groups):
            if weight_grad_t != NULL:  # (K, ld) @ (ld, O); G.T copied or read transposed
                if g.wgrad_tiles:
                    if not shifted or count > 1:  # over the column block (several images: long sums)
                        _wgrad_product(cols + grp * g.K_group * ld, g.K_group, ld, 1, 1, 0, 0,
                                       G + grp * g.O_group * ldg, ldg, g.O_group, ld,
                                       weight_grad_t + grp * g.K_group * g.O_group, g.O_group,
                                       accumulate or oh0 > 0)
                elif transposed_grad:
                    _gemm(False, False, g.K_group, g.O_group, ld,
                          cols + grp * g.K_group * ld, ld,
                          grad_t + grp * g.O_group, g.O,
                          accumulate or oh0 > 0, weight_grad_t + grp * g.K_group * g.O_group, g.O_group)
                else:
                    _gemm(False, True, g.K_group, g.O_group, ld,
                          cols + grp * g.K_group * ld, ld,
                          G + grp * g.O_group * ldg, ldg,
                          accumulate or oh0 > 0, weight_grad_t + grp * g.K_group * g.O_group, g.O_group)
            if image_grads != NULL:
                _gemm(True, False, g.K_group, ld, g.O_group,
                      weight + grp * g.O_group * g.K_group, g.K_group,
                      G + grp * g.O_group * ldg, ldg,
                      False, grad_cols + grp * g.K_group * ld, ld)
        if image_grads != NULL:
            for i in range(count):
                image_grad = image_grads + i * in_image
                if not shifted:
                    _col2im_block(grad_cols + i * width, ld, image_grad, g, oh0, oh1)
                    continue
                planes_grad = padded_grad if pad_grad else image_grad
                if pad_grad and count > 1:
                    memset(padded_grad, 0, g.C * g.Hs * g.Ws * sizeof(floating))
                _shifted_col2im(grad_cols + i * width, width, ld, planes_grad, g, oh0)
                if pad_grad and (count > 1 or oh1 == g.Ho):  # crop the borders off
                    _crop_planes(padded_grad, image_grad, g)
        oh0 = oh1


# ---------------------------------------------------------------- chunks
# The entry points' parallel loops run chunks: a GEMM of images (forward) or a
# slot (backward), described by an ``ImagesJob``.  An OpenMP region runs them, or,
# with ``load_team``, load_team.h's team: its caller does not wait for a thread
# the OS has descheduled (another process busy on its core) unless that thread
# holds a chunk.  A chunk is the same GEMM (or slot) whoever runs it; the worker
# index only picks the workspace row.  ``_run_chunks`` is the one launch: both
# loops call the chunk function through the team's pointer type (a chunk is a
# whole GEMM or slot: the indirect call costs nothing next to it).
cdef struct ImagesJob:
    ConvArrays arrays         # checked by the entry point (conv_columns.pxd)
    const void* packed        # forward on tiles: the packed weight (else NULL: BLAS)
    const Py_ssize_t* tap_offset
    Py_ssize_t N, images, gemms, per_thread, slot_size
    bint weight_finite
    bint float64              # the arrays hold doubles (else floats)
    const Geometry* g


cdef inline void _run_chunks(ImagesJob* job, mp_chunk_fn chunk, Py_ssize_t chunks, Py_ssize_t N,
                             Py_ssize_t images, Py_ssize_t per_thread, const Geometry* g, bint float64,
                             int num_threads, bint load_team) except *:
    """Run ``chunk`` for each of ``chunks`` on ``num_threads`` threads (conv_direct.pxd's
    ``_launch``: the load-tolerant team or a dynamic OpenMP region; backward slots may
    hold unequal GEMM counts)."""
    job.N, job.images, job.per_thread, job.g, job.float64 = N, images, per_thread, g, float64
    with nogil:
        _launch(chunk, job, chunks, num_threads, load_team)


# The chunk functions have the team's signature (mp_chunk_fn: no float type in it), so
# each reads the type from the job and calls the fused pass, whose ``like`` argument
# (a NULL of the type) picks the specialisation.
cdef inline void _forward_chunk(void* context, Py_ssize_t n, int worker) noexcept nogil:
    if (<ImagesJob*>context).float64:
        _forward_gemm(<ImagesJob*>context, n, worker, <double*>NULL)
    else:
        _forward_gemm(<ImagesJob*>context, n, worker, <float*>NULL)


cdef inline void _backward_chunk(void* context, Py_ssize_t s, int worker) noexcept nogil:
    if (<ImagesJob*>context).float64:
        _backward_slot(<ImagesJob*>context, s, worker, <double*>NULL)
    else:
        _backward_slot(<ImagesJob*>context, s, worker, <float*>NULL)


cdef inline void _forward_gemm(const ImagesJob* job, Py_ssize_t n, int worker,
                               floating* like) noexcept nogil:
    """GEMM ``n`` of the forward: images [n*images, min((n+1)*images, N))."""
    cdef const Geometry* g = job.g
    cdef Py_ssize_t in_image = g.C * g.H * g.W, out_image = g.O * g.Ho * g.Wo
    cdef Py_ssize_t first = n * job.images
    cdef const ConvArrays* a = &job.arrays
    _forward_images(<const floating*>a.x + first * in_image, min(job.images, job.N - first),
                    <const floating*>a.weight, <const floating*>job.packed, job.tap_offset,
                    <const floating*>a.bias, <floating*>a.out + first * out_image,
                    <floating*>a.workspace + worker * job.per_thread
                    if a.workspace != NULL else NULL, g)


cdef inline void _backward_slot(const ImagesJob* job, Py_ssize_t s, int worker,
                                floating* like) noexcept nogil:
    """Slot ``s`` of the backward: GEMMs s, s + S, ... in that order."""
    cdef const Geometry* g = job.g
    cdef Py_ssize_t in_image = g.C * g.H * g.W, out_image = g.O * g.Ho * g.Wo, n = s
    cdef Py_ssize_t images = job.images, S = job.arrays.S
    cdef floating* gxp = <floating*>job.arrays.out
    cdef floating* slotp = <floating*>job.arrays.slots
    cdef floating* bslotp = <floating*>job.arrays.bias_slots
    while n < job.gemms:
        _backward_images(<const floating*>job.arrays.x + n * images * in_image,
                         min(images, job.N - n * images), <const floating*>job.arrays.weight,
                         job.weight_finite, <const floating*>job.arrays.grad + n * images * out_image,
                         gxp + n * images * in_image if gxp != NULL else NULL,
                         slotp + s * job.slot_size if slotp != NULL else NULL,
                         bslotp + s * g.O if bslotp != NULL else NULL, n >= S,
                         <floating*>job.arrays.workspace + worker * job.per_thread, g)
        n = n + S


cdef inline void _pack_weight(const floating* weight, floating* packed, Py_ssize_t groups,
                       Py_ssize_t O_group, Py_ssize_t K_group) noexcept nogil:
    """(O, K_group) -> per group (``_packed_group`` elements apart), panel after panel
    (conv2d_tiles.h's widths: 6 or 4 channels), the panel starting at channel o0 at
    o0*K_group as (K_group, width), zero rows past the last channel."""
    cdef Py_ssize_t group_size = _packed_group(O_group, K_group), grp, o, o0 = 0, width, k
    cdef floating* d
    memset(packed, 0, groups * group_size * sizeof(floating))
    while o0 < O_group:
        width = mp_conv_panel_width(O_group, o0)
        for grp in range(groups):
            for o in range(o0, min(o0 + width, O_group)):
                d = packed + grp * group_size + o0 * K_group + (o - o0)
                for k in range(K_group):
                    d[k * width] = weight[(grp * O_group + o) * K_group + k]
        o0 += width
