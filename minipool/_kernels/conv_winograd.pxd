# The Winograd F(2x2, 3x3) and F(2x2, 5x5) forward engine (conv2d_winograd.h), float32,
# 3x3 or 5x5, stride 1, dilation 1, groups 1: conv2d.pyx decides where (``_winograd_win``,
# ``_winograd5_win``); ``_forward_on_winograd`` runs one launch of chunks of images, each
# through the input transform, the 16 (36) products and the output transform in its thread's
# workspace, after the weight's transform, which the chunks first share out in pieces (as
# conv_direct.pxd's launch packs its weight).
# Every output is the same sum whatever chunk computes it, so the split changes no bit.
# Inline functions only, compiled into each module that cimports them (conv_columns.pxd).
from libc.stdlib cimport free, malloc

from minipool._kernels.conv_columns cimport Geometry
from minipool._kernels._load_team cimport _launch
from minipool._kernels.conv_direct cimport (mp_direct_claim, mp_direct_finished, mp_direct_flag,
                                            mp_direct_seen, mp_direct_wait)

cdef extern from "conv2d_winograd.h" nogil:
    Py_ssize_t mp_wino_packed(Py_ssize_t O, Py_ssize_t C)
    Py_ssize_t mp_wino_ld(Py_ssize_t T)
    Py_ssize_t mp_wino_e_stride(Py_ssize_t rows, Py_ssize_t ld)
    Py_ssize_t MP_WINO_E(Py_ssize_t r)
    Py_ssize_t mp_wino_plane(Py_ssize_t th, Py_ssize_t tw, Py_ssize_t r)
    int mp_wino_weight(const float* weight, Py_ssize_t O, Py_ssize_t C, Py_ssize_t r,
                       Py_ssize_t o_begin, Py_ssize_t o_end, float* U)
    int mp_wino_input(const float* x, Py_ssize_t count, Py_ssize_t C, Py_ssize_t H,
                      Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t r, Py_ssize_t th,
                      Py_ssize_t tw, float* V, Py_ssize_t ld, Py_ssize_t e_stride, float* plane)
    void mp_wino_products(const float* U, Py_ssize_t O, Py_ssize_t C, Py_ssize_t r,
                          const float* V, Py_ssize_t v_stride, Py_ssize_t T, Py_ssize_t ld,
                          float* M, Py_ssize_t m_stride)
    int mp_wino_output(const float* M, Py_ssize_t ld, Py_ssize_t e_stride, Py_ssize_t count,
                       Py_ssize_t O, Py_ssize_t r, Py_ssize_t th, Py_ssize_t tw, Py_ssize_t Ho,
                       Py_ssize_t Wo, const float* bias, float* out)
    Py_ssize_t mp_wino_lanes(Py_ssize_t count)
    Py_ssize_t mp_wino_plane_images(Py_ssize_t th, Py_ssize_t tw, Py_ssize_t r)
    int mp_wino_input_images(const float* x, Py_ssize_t count, Py_ssize_t C, Py_ssize_t H,
                             Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t r,
                             Py_ssize_t th, Py_ssize_t tw, float* V, Py_ssize_t ld,
                             Py_ssize_t e_stride, float* plane)
    int mp_wino_output_images(const float* M, Py_ssize_t ld, Py_ssize_t e_stride,
                              Py_ssize_t count, Py_ssize_t O, Py_ssize_t r, Py_ssize_t th,
                              Py_ssize_t tw, Py_ssize_t Ho, Py_ssize_t Wo, const float* bias,
                              float* out, float* plane)
    int mp_pick_conv_winograd(int allow)

cdef enum:
    WINO_TILES = 64          # tiles per chunk wanted: the products' width (16 images of 4x4)
    WINO_MIN_CHUNKS = 8      # ... while a batch still makes this many chunks (4x4 planes: 8
                             # images a chunk; 4 chunks of 16 left a thread that started
                             # late a whole chunk behind: 2 threads 1.02-1.26x, 1 thread
                             # 1.02-1.05x on 128-256 channels, Zen 4)
    # output channels per piece of the weight's transform (2 panels of 6): the threads
    # wait for the last piece before their products, so short pieces (256->256: 22 of
    # about 60 us at 1 thread; 48 channels made 3 pieces for 128 channels, 2 on one thread)
    WINO_WEIGHT_RANGE = 12
    WINO_IMAGES_TW = 4       # tile rows of up to this many tiles go by images, 8 a vector
                             # (the header; 4x4 planes: 1.05x -> 1.2x the direct engine)


cdef inline bint _winograd_fits(const Geometry* g) noexcept nogil:
    """The shapes the engine computes: 3x3 or 5x5, stride 1, dilation 1, one group."""
    return ((g.kh == 3 or g.kh == 5) and g.kw == g.kh and g.sh == 1 and g.sw == 1
            and g.dh == 1 and g.dw == 1 and g.groups == 1 and g.C > 0 and g.O > 0
            and g.Ho > 0 and g.Wo > 0)


cdef struct WinogradJob:
    const float* x
    const float* weight
    const float* bias
    float* out
    float* U                 # the e (16 or 36) packed transformed weights
    float* work              # per worker: V, M, the padded plane
    char* finite             # per chunk: its images and outputs were finite
    Py_ssize_t C, H, W, O, ph, pw, Ho, Wo, th, tw, r, e   # r: 3 or 5, e = MP_WINO_E(r)
    Py_ssize_t N, count, chunks, ld, v_stride, m_stride, per_worker
    bint by_images           # 8 images in the vector lanes (small planes)
    Py_ssize_t pieces        # of the weight's transform (``_winograd_pieces``)
    Py_ssize_t next_piece    # the next unclaimed piece (shared)
    Py_ssize_t pieces_done   # pieces finished (shared)
    char not_finite          # set by a piece that met inf or NaN (shared)


cdef inline Py_ssize_t _winograd_count(Py_ssize_t N, Py_ssize_t tiles) noexcept nogil:
    """Images per chunk: WINO_TILES tiles, fewer while the batch makes fewer than
    WINO_MIN_CHUNKS chunks; from the shape only (the bits do not depend on it anyway)."""
    cdef Py_ssize_t count = min((WINO_TILES + tiles - 1) // tiles, N // WINO_MIN_CHUNKS)
    return max(1, min(count, N))


cdef inline Py_ssize_t _winograd_pieces(Py_ssize_t O) noexcept nogil:
    """Pieces of the weight's transform: WINO_WEIGHT_RANGE channels each, the last to O.
    A piece starts on a panel (mp_wino_weight): every multiple of 6 with 3+ channels
    after it is one; 1 or 2 after it sit in the 4-wide panel before (50 channels: 42,
    46), so such a remainder joins the last piece (48 did not: channels 48-49 of 50 were
    packed twice, over panel 46)."""
    cdef Py_ssize_t pieces = (O + WINO_WEIGHT_RANGE - 1) // WINO_WEIGHT_RANGE
    if pieces > 1 and O - (pieces - 1) * WINO_WEIGHT_RANGE < 3:
        pieces -= 1
    return pieces


cdef inline void _winograd_weight_piece(WinogradJob* job, Py_ssize_t r) noexcept nogil:
    cdef Py_ssize_t o_begin = r * WINO_WEIGHT_RANGE
    cdef Py_ssize_t o_end = job.O if r == job.pieces - 1 else o_begin + WINO_WEIGHT_RANGE
    if not mp_wino_weight(job.weight, job.O, job.C, job.r, o_begin, o_end, job.U):
        mp_direct_flag(&job.not_finite)


cdef inline void _winograd_chunk(void* context, Py_ssize_t k, int worker) noexcept nogil:
    """Chunk ``k``: first the weight's pieces still unclaimed, then, once every piece is
    finished and the weight finite, images [k*count, ...) through the three steps; marks
    itself non-finite (and stops) at an input or output that is not finite.  Chunks past
    the images' (a batch of fewer chunks than threads) only share the pieces out."""
    cdef WinogradJob* job = <WinogradJob*>context
    cdef Py_ssize_t piece
    if mp_direct_seen(&job.pieces_done) < job.pieces:
        while mp_direct_seen(&job.next_piece) < job.pieces:
            piece = mp_direct_claim(&job.next_piece)
            if piece >= job.pieces:
                break
            _winograd_weight_piece(job, piece)
            mp_direct_finished(&job.pieces_done)
        if k >= job.chunks:
            return
        mp_direct_wait(&job.pieces_done, job.pieces)
    if k >= job.chunks:
        return
    if job.not_finite:
        job.finite[k] = False
        return
    cdef Py_ssize_t n = k * job.count, count = min(job.count, job.N - n)
    cdef Py_ssize_t T = (mp_wino_lanes(count) if job.by_images else count) * job.th * job.tw
    cdef float* V = job.work + worker * job.per_worker
    cdef float* M = V + job.e * job.v_stride
    cdef float* plane = M + job.e * job.m_stride
    cdef const float* x = job.x + n * job.C * job.H * job.W
    cdef float* out = job.out + n * job.O * job.Ho * job.Wo
    if not (mp_wino_input_images if job.by_images else mp_wino_input)(
            x, count, job.C, job.H, job.W, job.ph, job.pw, job.r, job.th, job.tw, V, job.ld,
            job.v_stride, plane):
        job.finite[k] = False
        return
    mp_wino_products(job.U, job.O, job.C, job.r, V, job.v_stride, T, job.ld, M, job.m_stride)
    if job.by_images:
        job.finite[k] = mp_wino_output_images(M, job.ld, job.m_stride, count, job.O, job.r,
                                              job.th, job.tw, job.Ho, job.Wo, job.bias, out,
                                              plane)
    else:
        job.finite[k] = mp_wino_output(M, job.ld, job.m_stride, count, job.O, job.r, job.th,
                                       job.tw, job.Ho, job.Wo, job.bias, out)


cdef inline bint _forward_on_winograd(const Geometry* g, const float* x, Py_ssize_t N,
                                      const float* weight, const float* bias, float* out,
                                      int num_threads, bint load_team) except -1:
    """out = the convolution on the Winograd engine; returns False when the weight, an
    input or an output is not finite (inf - inf would spread NaN to outputs that never
    see the inf): the caller then computes the whole output on another engine.  One
    launch (one region start and end, the weight's pieces shared out in it) and one
    allocation for the transformed weight, the flags and the workspaces, freed here."""
    cdef WinogradJob job
    cdef Py_ssize_t k, launched
    # whole cache lines
    cdef Py_ssize_t u_size = (MP_WINO_E(g.kh) * mp_wino_packed(g.O, g.C) + 15) // 16 * 16
    cdef int threads = max(1, num_threads)
    cdef bint finite = True
    job.x, job.weight, job.bias, job.out = x, weight, bias, out
    job.C, job.H, job.W, job.O, job.ph, job.pw = g.C, g.H, g.W, g.O, g.ph, g.pw
    job.Ho, job.Wo, job.th, job.tw = g.Ho, g.Wo, (g.Ho + 1) // 2, (g.Wo + 1) // 2
    job.r, job.e = g.kh, MP_WINO_E(g.kh)
    job.N, job.count = N, _winograd_count(N, job.th * job.tw)
    job.by_images = job.tw <= WINO_IMAGES_TW
    if job.by_images:  # whole vectors of 8 images, unless the batch is smaller
        job.count = min(mp_wino_lanes(job.count), N)
    job.chunks = (N + job.count - 1) // job.count
    job.pieces, job.next_piece, job.pieces_done, job.not_finite = _winograd_pieces(g.O), 0, 0, 0
    # fewer image chunks than threads: the others still share a large weight's pieces out
    launched = max(job.chunks, min(threads, job.pieces) if u_size >= 1 << 15 else 1)
    job.ld = mp_wino_ld((mp_wino_lanes(job.count) if job.by_images else job.count)
                        * job.th * job.tw)
    job.v_stride, job.m_stride = mp_wino_e_stride(g.C, job.ld), mp_wino_e_stride(g.O, job.ld)
    job.per_worker = (job.e * (job.v_stride + job.m_stride) + (
        mp_wino_plane_images(job.th, job.tw, job.r) if job.by_images
        else mp_wino_plane(job.th, job.tw, job.r)) + 15) // 16 * 16
    cdef char* memory = <char*>malloc(63 + (u_size + threads * job.per_worker) * sizeof(float)
                                      + job.chunks)
    if memory == NULL:
        raise MemoryError("conv2d Winograd engine: no memory for its workspace")
    job.U = <float*>(memory + (64 - <size_t>memory % 64) % 64)
    job.work = job.U + u_size
    job.finite = <char*>(job.work + threads * job.per_worker)
    try:
        with nogil:
            _launch(_winograd_chunk, &job, launched, threads, load_team)
            finite = not job.not_finite
            for k in range(job.chunks):
                finite &= job.finite[k]
    finally:
        free(memory)
    return finite
