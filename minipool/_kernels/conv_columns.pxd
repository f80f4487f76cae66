# What every convolution family shares besides the GEMM: the call geometry
# (``Geometry``), the column builders that lay an NCHW image's receptive fields out
# as a column block and add them back (gathered for any stride, shifted runs for
# stride 1; see conv2d.pyx's docstring), the bias and the checks of the entry
# points' arguments.
#
# Inline functions only: each is compiled into the module that cimports it
# (conv2d, conv2d_channels_last, conv_transpose2d) and inlined with its callers
# there, as when they all lived in one conv2d.pyx.  (A cdef function cimported
# from another .pyx would be called through a pointer instead: never inlined.)
from cython cimport floating
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset

from minipool._kernels.conv_gemm cimport noinline_void


cdef struct Geometry:
    Py_ssize_t C, H, W        # input planes
    Py_ssize_t kh, kw, sh, sw, dh, dw
    Py_ssize_t ph, pw         # top and left padding; bottom and right follow from Ho, Wo
    Py_ssize_t Ho, Wo         # output planes
    Py_ssize_t groups, O      # output channels (all groups)
    Py_ssize_t K_group, O_group
    Py_ssize_t block_rows     # output rows per column block
    Py_ssize_t images         # images per GEMM (> 1 only when one block holds a whole image)
    bint shifted              # stride 1: columns are shifted copies of whole plane rows
    Py_ssize_t Hs, Ws         # the (padded) planes the shifted columns are cut from
    bint padded               # ... which then differ from the input planes
    bint shiftable            # stride 1 and a reach within the output: planes usable as above
    bint by_rows              # forward on tiles row by row from the planes (conv2d_forward)
    bint wgrad_tiles          # weight gradient on conv2d_wgrad.h's tiles (conv2d_backward)
    bint direct               # forward on the direct kernel (conv_direct.pxd): then these
    const Py_ssize_t* pixel_base  # ... per output pixel: its window's start in the plane
    const uint64_t* pixel_taps    # ... and its taps inside the plane
    const Py_ssize_t* pixel_order # ... the pixels grouped by those taps


cdef inline Geometry _geometry(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
                               Py_ssize_t block_rows) except *:
    cdef Geometry g
    g.C, g.H, g.W, g.O = C, H, W, O
    g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.Ho, g.Wo, g.groups = geometry
    if (g.kh < 1 or g.kw < 1 or g.sh < 1 or g.sw < 1 or g.dh < 1 or g.dw < 1 or g.groups < 1
            or g.Ho < 0 or g.Wo < 0 or g.ph < 0 or g.pw < 0):
        raise ValueError(f"conv2d kernel: invalid geometry {geometry}")
    if C % g.groups or O % g.groups:
        raise ValueError(f"conv2d kernel: {C} input and {O} output channels are not divisible "
                         f"by groups={g.groups}")
    if block_rows < 1:
        raise ValueError(f"conv2d kernel: block_rows must be >= 1, got {block_rows}")
    g.K_group = (C // g.groups) * g.kh * g.kw
    g.O_group = O // g.groups
    g.block_rows = block_rows
    g.images = 1
    # Shifted columns compute Ws/Wo times the output columns and copy the padded
    # planes (Hs x Ws): worth it only while the kernel's reach is at most the output
    # size (LeNet's 5x5 on 14x14 -> 10x10: 1.4x); huge padding or dilation gathers.
    g.Hs = g.Ho + (g.kh - 1) * g.dh  # with stride 1: H + top + bottom padding
    g.Ws = g.Wo + (g.kw - 1) * g.dw
    # A transposed convolution's output_padding beyond its padding leaves input rows
    # (the transposed output's last rows) that no window reads: a negative bottom
    # padding, which shifted planes cannot hold; gathered columns read only what they need.
    g.shifted = (g.sh == 1 and g.sw == 1 and (g.kh - 1) * g.dh <= g.Ho
                 and (g.kw - 1) * g.dw <= g.Wo and g.Hs >= H + g.ph and g.Ws >= W + g.pw)
    g.shiftable, g.by_rows, g.wgrad_tiles, g.direct = g.shifted, False, False, False
    g.pixel_base, g.pixel_taps, g.pixel_order = NULL, NULL, NULL
    # With 16+ channels the GEMM outweighs the copies: columns computed and dropped
    # then cost more than gathering saves once they pass 20% of the output (3x3 and
    # 5x5 kernels on 4x4 and 8x8 planes: gathered 1.1-1.2x faster; 16x16 and up: even)
    if g.shifted and C >= 16 and 5 * _block_width(&g, g.Ho) > 6 * g.Ho * g.Wo:
        g.shifted = False
    g.padded = g.shifted and (g.Hs != H or g.Ws != W)
    return g


cdef inline Py_ssize_t _block_width(const Geometry* g, Py_ssize_t rows) noexcept nogil:
    """Columns of a block of ``rows`` output rows: shifted columns also span the
    Ws - Wo pixels between two output rows (computed, then dropped)."""
    if g.shifted:
        return (rows - 1) * g.Ws + g.Wo
    return rows * g.Wo


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


cdef inline bint _all_finite(const floating* values, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef bint finite = True
    for i in range(n):
        finite &= values[i] - values[i] == 0  # inf - inf and NaN - NaN are NaN
    return finite


# ------------------------------------------- gathered columns (any stride)
cdef inline noinline_void _gathered_taps(floating* cols, Py_ssize_t ld, floating* image, const Geometry* g,
                                Py_ssize_t oh0, Py_ssize_t oh1, bint to_cols) noexcept nogil:
    """The column block of output rows [oh0, oh1) of one image, either way round.

    ``to_cols`` (im2col): row (c*kh + ki)*kw + kj of ``cols`` (row stride ``ld``)
    gets what tap (ki, kj) of channel c sees at each output pixel of the block, 0
    in the padding; ``image`` is only read.  Otherwise (col2im, the adjoint):
    every tap of ``cols`` is added back into the gradient planes ``image``, in a
    fixed order."""
    cdef Py_ssize_t c, ki, kj, oh, ow, oh_lo, oh_hi, ow_lo, ow_hi, row_off, col_off
    cdef Py_ssize_t Wo = g.Wo, sw = g.sw
    cdef floating* row
    cdef floating* r
    cdef floating* p
    for c in range(g.C):
        for ki in range(g.kh):
            row_off = ki * g.dh - g.ph
            _valid_span(g.Ho, g.sh, row_off, g.H, &oh_lo, &oh_hi)
            oh_lo = min(max(oh_lo, oh0), oh1)
            oh_hi = min(max(oh_hi, oh_lo), oh1)
            for kj in range(g.kw):
                col_off = kj * g.dw - g.pw
                _valid_span(Wo, sw, col_off, g.W, &ow_lo, &ow_hi)
                row = cols + ((c * g.kh + ki) * g.kw + kj) * ld
                if to_cols:
                    for ow in range((oh_lo - oh0) * Wo):  # rows of the block above the image
                        row[ow] = 0
                    for ow in range((oh_hi - oh0) * Wo, (oh1 - oh0) * Wo):  # and below it
                        row[ow] = 0
                for oh in range(oh_lo, oh_hi):
                    r = row + (oh - oh0) * Wo
                    p = image + (c * g.H + oh * g.sh + row_off) * g.W + col_off
                    if to_cols:
                        for ow in range(ow_lo):
                            r[ow] = 0
                        for ow in range(ow_lo, ow_hi):
                            r[ow] = p[ow * sw]
                        for ow in range(ow_hi, Wo):
                            r[ow] = 0
                    elif sw == 1:
                        for ow in range(ow_lo, ow_hi):
                            p[ow] += r[ow]
                    else:
                        for ow in range(ow_lo, ow_hi):
                            p[ow * sw] += r[ow]


cdef inline void _im2col_block(const floating* image, floating* cols, Py_ssize_t ld,
                               const Geometry* g, Py_ssize_t oh0, Py_ssize_t oh1) noexcept nogil:
    _gathered_taps(cols, ld, <floating*>image, g, oh0, oh1, True)  # reads image only


cdef inline void _col2im_block(const floating* cols, Py_ssize_t ld, floating* image_grad,
                               const Geometry* g, Py_ssize_t oh0, Py_ssize_t oh1) noexcept nogil:
    _gathered_taps(<floating*>cols, ld, image_grad, g, oh0, oh1, False)  # reads cols only


# ------------------------------------------- shifted columns (stride 1)
# With stride 1, output pixel (oh, ow) of tap (ki, kj) reads plane pixel
# (oh + ki*dh, ow + kj*dw).  Number the output pixels oh*Ws + ow instead of
# oh*Wo + ow, and a tap's whole row of columns becomes ONE contiguous run of
# the plane, starting at ki*dh*Ws + kj*dw: one long copy per tap instead of one
# short copy per tap and output row.  The Ws - Wo columns after each output
# row (ow >= Wo) hold pixels no window of that row reads: the forward pass
# computes and drops them; backward gives them a zero gradient, which adds
# nothing as long as the values they meet are finite (checked; otherwise the
# image takes the gathered path).
cdef inline noinline_void _pad_planes(const floating* image, floating* padded, const Geometry* g) noexcept nogil:
    """The image's planes inside zero borders: (C, Hs, Ws), pixel (h, w) at (h+ph, w+pw)."""
    cdef Py_ssize_t c, h
    cdef floating* d
    memset(padded, 0, g.C * g.Hs * g.Ws * sizeof(floating))
    for c in range(g.C):
        for h in range(g.H):
            d = padded + (c * g.Hs + h + g.ph) * g.Ws + g.pw
            memcpy(d, image + (c * g.H + h) * g.W, g.W * sizeof(floating))


cdef inline void _shifted_runs(floating* cols, Py_ssize_t width, Py_ssize_t ld, floating* planes,
                               const Geometry* g, Py_ssize_t oh0, bint add_back) noexcept nogil:
    """Row (c, ki, kj) of cols (row stride ``ld``) and its run of ``width`` plane pixels
    from (oh0 + ki*dh, kj*dw) of channel c: copy each run into its row, or (``add_back``,
    the adjoint) add each row onto its run.  Always called with a constant ``add_back``:
    inlined, each caller keeps only its own loop."""
    cdef Py_ssize_t c, ki, kj, j
    cdef floating* row
    cdef floating* run
    for c in range(g.C):
        for ki in range(g.kh):
            for kj in range(g.kw):
                row = cols + ((c * g.kh + ki) * g.kw + kj) * ld
                run = planes + (c * g.Hs + oh0 + ki * g.dh) * g.Ws + kj * g.dw
                if add_back:
                    for j in range(width):
                        run[j] += row[j]
                else:
                    memcpy(row, run, width * sizeof(floating))  # libc's copy: the CPU's widest stores


cdef inline void _shifted_cols(const floating* planes, floating* cols, Py_ssize_t width, Py_ssize_t ld,
                               const Geometry* g, Py_ssize_t oh0) noexcept nogil:
    """cols (C*kh*kw, width), row stride ``ld``: tap (ki, kj) of channel c is the run of
    ``width`` plane pixels from (oh0 + ki*dh, kj*dw)."""
    _shifted_runs(cols, width, ld, <floating*>planes, g, oh0, False)  # planes are only read


cdef inline noinline_void _shifted_col2im(const floating* cols, Py_ssize_t width, Py_ssize_t ld,
                                 floating* planes_grad, const Geometry* g, Py_ssize_t oh0) noexcept nogil:
    """The adjoint of ``_shifted_cols``: add each tap's run back where it was cut."""
    _shifted_runs(<floating*>cols, width, ld, planes_grad, g, oh0, True)  # cols are only read


cdef inline void _widen_rows(const floating* narrow, Py_ssize_t ld, floating* wide, Py_ssize_t wide_ld,
                             Py_ssize_t row_stride, const Geometry* g, Py_ssize_t rows) noexcept nogil:
    """(O, rows*Wo) with row stride ``ld`` -> (O, ...) with row stride ``wide_ld``, output
    row r starting at column r*row_stride, row_stride - Wo zeros in between."""
    cdef Py_ssize_t o, r
    cdef floating* d
    cdef const floating* s
    for o in range(g.O):
        for r in range(rows):
            d = wide + o * wide_ld + r * row_stride
            s = narrow + o * ld + r * g.Wo
            memcpy(d, s, g.Wo * sizeof(floating))
            if r + 1 < rows and row_stride > g.Wo:
                memset(d + g.Wo, 0, (row_stride - g.Wo) * sizeof(floating))


cdef inline noinline_void _transpose_rows(const floating* narrow, Py_ssize_t ld, floating* dst,
                                 Py_ssize_t row_stride, const Geometry* g, Py_ssize_t rows) noexcept nogil:
    """(O, rows*Wo) with row stride ``ld`` -> its transpose (width, O), output row r
    starting at column r*row_stride, zeros in between: the right-hand factor of the
    weight-gradient GEMM, which OpenBLAS multiplies fastest untransposed."""
    cdef Py_ssize_t o, ow0, ow1, r, ow
    cdef const floating* s
    cdef floating* d
    for r in range(rows):
        if r + 1 < rows and row_stride > g.Wo:
            memset(dst + (r * row_stride + g.Wo) * g.O, 0, (row_stride - g.Wo) * g.O * sizeof(floating))
        # 8 pixels at a time: their 8 rows of O values are written while in L1 (all the
        # pixels of one channel at a time wrote floats O apart over the whole block: the
        # weight gradient of 3->32 3x3 on 32x32 without a bias took 2.3 or 4.2 ms,
        # depending on the run; batch 64, 1 thread)
        for ow0 in range(0, g.Wo, 8):
            ow1 = min(ow0 + 8, g.Wo)
            d = dst + (r * row_stride) * g.O
            for o in range(g.O):
                s = narrow + o * ld + r * g.Wo
                for ow in range(ow0, ow1):
                    d[ow * g.O + o] = s[ow]


cdef inline void _crop_planes(const floating* planes_grad, floating* image_grad,
                              const Geometry* g) noexcept nogil:
    """The (C, H, W) image inside padded (C, Hs, Ws) planes: their borders cut off."""
    cdef Py_ssize_t c, h
    for c in range(g.C):
        for h in range(g.H):
            memcpy(image_grad + (c * g.H + h) * g.W,
                   planes_grad + (c * g.Hs + h + g.ph) * g.Ws + g.pw, g.W * sizeof(floating))


cdef inline void _add_bias(floating* image, const floating* bias, Py_ssize_t C, Py_ssize_t pixels,
                           bint channels_last) noexcept nogil:
    cdef Py_ssize_t c, i
    cdef floating b
    if channels_last:
        for i in range(pixels):
            for c in range(C):
                image[i * C + c] += bias[c]
    else:
        for c in range(C):
            b = bias[c]
            for i in range(pixels):
                image[c * pixels + i] += b


# ---------------------------------------------------------------- argument checks
# The entry points' checks that hold the GIL (never inside a loop).
cdef inline tuple _dims(view):
    """A typed memoryview's shape as a tuple (for error messages)."""
    return tuple(view.shape)


cdef inline _check_workspace(workspace, Py_ssize_t threads, Py_ssize_t per_thread):
    if workspace.shape[0] < threads or workspace.shape[1] < per_thread:
        raise ValueError(f"conv2d kernel: workspace of shape {_dims(workspace)} is smaller "
                         f"than ({threads}, {per_thread})")


cdef inline const floating* _bias_pointer(object bias, Py_ssize_t channels, floating* like,
                                          str op) except? NULL:
    """The first of ``bias``'s ``channels`` entries (checked), of ``like``'s type; NULL for
    None or no channels."""
    cdef const floating[::1] view
    if bias is None:
        return NULL
    view = bias
    if view.shape[0] != channels:
        raise ValueError(f"{op} kernel: bias has {view.shape[0]} entries, expected {channels}")
    return &view[0] if channels else NULL


cdef inline floating* _first(object array, floating* like, str name) except? NULL:
    """The first element of ``array``, C-contiguous, writable and of ``like``'s type
    (checked: a reshaped copy would take the writes); NULL for None or an empty array.
    The caller holds the array."""
    cdef floating[::1] flat
    if array is None:
        return NULL
    if not array.flags.c_contiguous:
        raise ValueError(f"conv2d kernel: {name} must be C-contiguous")
    flat = array.reshape(-1)
    return &flat[0] if flat.shape[0] else NULL


cdef struct ConvArrays:
    # An entry point's arrays after its checks (``_forward_arrays``, ``_backward_arrays``):
    # first elements, NULL where absent or empty.
    const void* x
    const void* weight
    const void* bias       # forward
    const void* grad       # backward
    void* out              # forward output, or the input gradient
    void* slots            # backward: weight and bias slots
    void* bias_slots
    void* workspace
    Py_ssize_t S           # backward: slots


cdef inline bint _forward_arrays(const floating[:, :, :, ::1] x, const floating[:, ::1] weight,
                                 bias, floating[:, :, :, ::1] out, tuple out_dims,
                                 floating[:, ::1] workspace, Py_ssize_t threads,
                                 Py_ssize_t per_thread, const Geometry* g, object geometry,
                                 ConvArrays* arrays) except -1:
    """The forward entry points' checks (``out`` of shape ``out_dims`` and the weight rows
    against the geometry, the bias, then the workspace) and their arrays' first elements;
    False when there is no output to compute."""
    if _dims(out) != out_dims or weight.shape[1] != g.K_group:
        raise ValueError(f"conv2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"out {_dims(out)} do not match geometry {geometry}")
    arrays.bias = _bias_pointer(bias, g.O, <floating*>NULL, "conv2d")
    if x.shape[0] == 0 or g.O == 0 or g.Ho * g.Wo == 0:
        return False
    _check_workspace(workspace, threads, per_thread)
    arrays.x = &x[0, 0, 0, 0] if x.size else NULL
    arrays.weight = &weight[0, 0] if weight.size else NULL
    arrays.out = &out[0, 0, 0, 0]
    arrays.workspace = &workspace[0, 0] if workspace.size else NULL
    return True


cdef inline bint _backward_arrays(const floating[:, :, :, ::1] x, const floating[:, ::1] weight,
                                  const floating[:, :, :, ::1] grad, tuple grad_dims, grad_x,
                                  weight_slots, bias_slots, tuple slot_shape, Py_ssize_t used,
                                  floating[:, ::1] workspace, Py_ssize_t threads,
                                  Py_ssize_t per_thread, const Geometry* g, object geometry,
                                  ConvArrays* arrays) except -1:
    """The backward entry points' checks (``grad`` of shape ``grad_dims``, the weight rows,
    the optional buffers: see ``_backward_buffers``, then the workspace) and their arrays'
    first elements; False when no product exists (no pixel, channel or tap): then the
    input and weight gradients are zeroed and the caller sums the bias gradient."""
    if _dims(grad) != grad_dims or weight.shape[1] != g.K_group:
        raise ValueError(f"conv2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"grad {_dims(grad)} do not match geometry {geometry}")
    arrays.S = _backward_buffers(x, grad_x, weight_slots, bias_slots, slot_shape, g.O, used)
    arrays.out = _first(grad_x, <floating*>NULL, "grad_x")
    arrays.slots = _first(weight_slots, <floating*>NULL, "weight_slots")
    arrays.bias_slots = _first(bias_slots, <floating*>NULL, "bias_slots")
    if x.shape[0] == 0 or g.O == 0 or g.Ho * g.Wo == 0 or g.K_group == 0:
        if grad_x is not None:
            grad_x[...] = 0
        if weight_slots is not None:
            weight_slots[...] = 0
        return False
    _check_workspace(workspace, threads, per_thread)
    arrays.x, arrays.weight, arrays.grad = &x[0, 0, 0, 0], &weight[0, 0], &grad[0, 0, 0, 0]
    arrays.workspace = &workspace[0, 0]
    return True


cdef inline _backward_buffers(x, grad_x, weight_slots, bias_slots, tuple slot_shape,
                              Py_ssize_t O, Py_ssize_t used):
    """Check the backward entries' optional buffers (``slot_shape``: a weight slot's),
    zero the weight slots past the first ``used`` (no product reaches them) and the bias
    slots; return the number of slots S (the batch's images when there are none)."""
    cdef Py_ssize_t S = max(x.shape[0], 1)
    if grad_x is not None and _dims(grad_x) != _dims(x):
        raise ValueError(f"conv2d kernel: grad_x has shape {_dims(grad_x)}, expected {_dims(x)}")
    if weight_slots is not None:
        S = weight_slots.shape[0]
        if S < 1 or _dims(weight_slots)[1:] != slot_shape:
            raise ValueError(f"conv2d kernel: weight_slots has shape {_dims(weight_slots)}, "
                             f"expected (S >= 1, {', '.join(map(str, slot_shape))})")
        weight_slots[used:] = 0
    if bias_slots is not None:
        if bias_slots.shape[1] != O or (weight_slots is not None and bias_slots.shape[0] != S):
            raise ValueError(f"conv2d kernel: bias_slots has shape {_dims(bias_slots)}, expected "
                             f"({S if weight_slots is not None else 'S'}, {O})")
        S = bias_slots.shape[0]
        if S < 1:
            raise ValueError("conv2d kernel: bias_slots needs at least one slot")
        bias_slots[...] = 0
    return S
