# The direct forward engine (conv2d_direct.h): output channels in the vector lanes, a
# few output pixels in registers, input pixels broadcast from the image itself, the
# taps in the padding skipped (31-51% of all taps on 4x4 planes).  The same bits as
# the tiles for a finite weight (see the header), so only such weights take it;
# conv2d.pyx decides where (``_direct_win``); ``_forward_on_direct`` ("the launch") prepares
# the tables once per call and runs the packing and the product on the threads, in one launch.
# Inline functions only, compiled into each module that cimports them (conv_columns.pxd).
from cython cimport floating
from libc.stdint cimport uint64_t, uintptr_t
from libc.stdlib cimport free, malloc

from minipool._kernels.conv_columns cimport Geometry, _all_finite
from minipool._kernels.conv_gemm cimport noinline_void
from minipool._kernels._load_team cimport _launch

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
    void mp_direct_pack(const void* weight, void* packed, Py_ssize_t O, Py_ssize_t o_begin,
                        Py_ssize_t o_end, Py_ssize_t channels, Py_ssize_t taps,
                        int channels_last)
    int mp_pick_conv_direct(int allow)
    int mp_use_direct_avx512(int mode)
    int mp_use_direct_rows_avx2(int mode)
    int mp_direct_avx512_runs(Py_ssize_t O, Py_ssize_t taps, Py_ssize_t L)
    int mp_direct_rows_run(Py_ssize_t channels, Py_ssize_t O, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                           Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                           Py_ssize_t dw, Py_ssize_t H, Py_ssize_t W, Py_ssize_t Ho, Py_ssize_t Wo)
    enum: DIRECT_MAX_TAPS "MP_DIRECT_MAX_TAPS"


cdef inline void _direct_tables(Geometry* g, Py_ssize_t* tap_offset, Py_ssize_t* pixel_base,
                                uint64_t* pixel_taps, bint nhwc_offsets) noexcept nogil:
    """The taps' offsets in the unpadded plane, the pixel tables (``pixel_base``: 2 x
    Ho*Wo, the bases then the order); and ``g`` set to use them.  ``nhwc_offsets``: the
    taps' offsets count NHWC values (times C)."""
    cdef Py_ssize_t ki, kj
    for ki in range(g.kh):
        for kj in range(g.kw):
            tap_offset[ki * g.kw + kj] = ((ki * g.dh * g.W + kj * g.dw) * g.C if nhwc_offsets
                                          else ki * g.dh * g.W + kj * g.dw)
    mp_direct_pixels(g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.Ho, g.Wo,
                     pixel_base, pixel_taps, pixel_base + g.Ho * g.Wo)
    g.direct, g.pixel_base, g.pixel_taps = True, pixel_base, pixel_taps
    g.pixel_order = pixel_base + g.Ho * g.Wo


cdef inline bint _pack_direct(const Geometry* g, const floating* weight, floating* packed,
                              Py_ssize_t grp, Py_ssize_t o_begin, Py_ssize_t o_end,
                              bint channels_last) noexcept nogil:
    """Group ``grp``'s channels [o_begin, o_end) (block boundaries) of the packed weight
    (conv2d_direct.h's ``mp_direct_pack``: the block at o0 at o0*K_group as (K_group,
    width), lanes past the last channel zero); returns whether those weight rows are
    finite.  ``channels_last``: the weight is (O, kh*kw*C/groups)
    (conv2d_channels_last.pyx's), packed in the same (c, ki, kj) order."""
    cdef const floating* rows = weight + grp * g.O_group * g.K_group
    cdef bint finite = _all_finite(rows + o_begin * g.K_group, (o_end - o_begin) * g.K_group)
    mp_direct_pack(rows, packed + grp * mp_direct_packed_size(g.O_group, g.K_group,
                                                              sizeof(floating)),
                   g.O_group, o_begin, o_end, g.C // g.groups, g.kh * g.kw, channels_last)
    return finite


cdef inline noinline_void _forward_direct(const floating* images, Py_ssize_t count,
                                          const floating* packed, const Py_ssize_t* tap_offset,
                                          const floating* bias, floating* out, const Geometry* g,
                                          Py_ssize_t o_begin, Py_ssize_t o_end,
                                          bint channels_last, bint planes) noexcept nogil:
    """Output channels [o_begin, o_end) (block boundaries) of every group of ``count``
    consecutive images, on the direct kernel: NCHW images into NCHW output, or
    (``channels_last``) NHWC images -- NCHW planes with ``planes`` -- into NHWC output
    (tables from ``_direct_tables(..., nhwc_offsets=not planes)``, the weight packed
    with ``channels_last``): the same sums either way, so the same bits."""
    cdef Py_ssize_t L = g.Ho * g.Wo, plane = g.H * g.W, Cg = g.C // g.groups, grp
    cdef Py_ssize_t group_size = mp_direct_packed_size(g.O_group, g.K_group, sizeof(floating))
    cdef bint nhwc_in = channels_last and not planes
    cdef Py_ssize_t channel_stride = 1 if nhwc_in else plane, pixel_step = g.C if nhwc_in else 1
    cdef Py_ssize_t out_pixel = g.O if channels_last else 1
    cdef Py_ssize_t out_channel = 1 if channels_last else L
    for grp in range(g.groups):
        mp_direct_strided(packed + grp * group_size + o_begin * g.K_group, o_end - o_begin,
                          images + grp * Cg * channel_stride, count, Cg, g.C * plane,
                          channel_stride, tap_offset, g.kh * g.kw, g.pixel_base, pixel_step,
                          g.pixel_taps, g.pixel_order, L,
                          bias + grp * g.O_group + o_begin if bias != NULL else NULL,
                          out + (grp * g.O_group + o_begin) * out_channel, g.O * L,
                          out_pixel, out_channel)


# ---------------------------------------------------------------- the launch
# A forward on the direct kernel is one parallel launch (an OpenMP region or
# load_team.h's team) over chunks of ``count`` images by one range of output
# channels.  Before its product every chunk first claims and runs "preparing" pieces
# left unclaimed: the packed weight in pieces of a few blocks of output channels
# (each checking its weight rows are finite) and, for channels-last by planes, the
# images copied as NCHW planes (unless each call's images have one chunk: it copies
# its own, just before use); then it waits until every piece is finished (the first
# chunks' threads share them out, as a first region did) and computes only when the
# whole weight was finite, so a weight with inf or NaN writes nothing.  One launch
# instead of two saves a region's start and end (a wake of the team's sleeping helper
# under load).  Each output is the same sum whatever chunk computes it (a lane is one
# output channel), so the split changes no bit; it is chosen from the shape.
cdef enum:
    DIRECT_CHUNKS = 48        # forward chunks wanted per call: <= 1/24 of it left over
    # chunks range by range above this packed weight (half of this machine's 2 MiB L2,
    # 1 thread, CPU time: 128->256 and 256->256 on 4x4, 1.2 and 2.4 MB, 2-3% faster
    # range-major; 64->128 and 128->128 on 8x8, 0.3 and 0.6 MB, 4-6% faster image-major)
    DIRECT_RANGE_MAJOR_BYTES = 1 << 20
    # the last chunks in claim order run as two halves of their range (whole blocks), or,
    # on 2+ threads, of their images where a range is one block: a thread that runs out
    # of chunks then waits at most a half chunk for the other (which may also be a
    # helper on a busy core, load_team.h), not a whole one
    DIRECT_TAIL_CHUNKS = 4
    # ... halves of images only while their tiles hold at most 1/8 more slots than the
    # whole's (16x16 planes, 5x5: 6%; 4x4: every pixel alone, a half fills half a tile)
    DIRECT_HALF_SLACK = 8
    DIRECT_PACK_PIECES = 16   # at most this many packing pieces per group (whole blocks)


# The preparing pieces' counters, shared by the launch's threads (GCC atomics: Cython
# has none).  A chunk waiting for a piece another thread holds spins for about a
# piece's time (the pieces are short: at most a 16th of a group's packed weight),
# then sleeps in short naps, leaving its core to that thread if the OS put both on one core.
cdef extern from *:
    """
    #include <time.h>
    static inline Py_ssize_t mp_direct_claim(Py_ssize_t *next) {
        return __atomic_fetch_add(next, 1, __ATOMIC_RELAXED);
    }
    static inline Py_ssize_t mp_direct_seen(Py_ssize_t *counter) {
        return __atomic_load_n(counter, __ATOMIC_ACQUIRE);
    }
    static inline void mp_direct_finished(Py_ssize_t *done) {
        __atomic_fetch_add(done, 1, __ATOMIC_RELEASE);  /* the piece's writes come first */
    }
    static inline void mp_direct_flag(char *flag) { __atomic_store_n(flag, 1, __ATOMIC_RELAXED); }
    static inline void mp_direct_wait(Py_ssize_t *done, Py_ssize_t target) {
        struct timespec start, now, nap = {0, 20000};
        long spins = 0;
        int sleeping = 0;
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (__atomic_load_n(done, __ATOMIC_ACQUIRE) < target) {
            if (sleeping) { nanosleep(&nap, NULL); continue; }
    #if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
    #endif
            if (++spins % 256 == 0) {  /* ~250 us of spinning, then naps */
                clock_gettime(CLOCK_MONOTONIC, &now);
                sleeping = (now.tv_sec - start.tv_sec) * 1000000000L
                           + (now.tv_nsec - start.tv_nsec) > 250000L;
            }
        }
    }
    """
    Py_ssize_t mp_direct_claim(Py_ssize_t* next) nogil
    Py_ssize_t mp_direct_seen(Py_ssize_t* counter) nogil
    void mp_direct_finished(Py_ssize_t* done) nogil
    void mp_direct_flag(char* flag) nogil
    void mp_direct_wait(Py_ssize_t* done, Py_ssize_t target) nogil


cdef struct DirectJob:
    const void* x               # the images (NCHW; NHWC when channels_last and not planes)
    const void* weight          # (O, K_group); channels last (O, kh*kw*C/groups)
    const void* bias
    void* out
    void* packed
    void* planes                # channels last by planes: the batch as NCHW planes
    const Py_ssize_t* tap_offset
    const Geometry* g
    Py_ssize_t N, count, calls, ranges, range_channels
    Py_ssize_t chunks           # ranges*calls, the last ``tail`` of them run as two halves
    Py_ssize_t tail, half_channels
    bint tail_by_images         # the tail's halves split its images (half_count first)
    Py_ssize_t half_count
    int threads                 # the launch's (image halves only for 2+)
    Py_ssize_t pack_pieces, piece_channels  # per group: packing pieces of piece_channels
    Py_ssize_t pieces           # preparing pieces: groups*pack_pieces (+ calls copies)
    bint own_planes             # by planes, one chunk per call: it copies its own images
    Py_ssize_t next_piece       # the next unclaimed piece (shared)
    Py_ssize_t pieces_done      # pieces finished (shared)
    char not_finite             # set by a pack that met inf or NaN (shared)
    bint float64, channels_last, by_planes, range_major


cdef inline Py_ssize_t _gcd(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    while b:
        a, b = b, a % b
    return a


cdef inline Py_ssize_t _tile_slots(const Geometry* g, Py_ssize_t count,
                                    Py_ssize_t points) noexcept nogil:
    """Tiles of ``points`` slots that ``count`` images take, summed over the pixel groups
    (pixels with the same taps, consecutive in pixel_order): the kernel's work, roughly."""
    cdef Py_ssize_t L = g.Ho * g.Wo, p, run = 1, tiles = 0
    for p in range(1, L):
        if g.pixel_taps[g.pixel_order[p]] == g.pixel_taps[g.pixel_order[p - 1]]:
            run += 1
        else:
            tiles, run = tiles + (run * count + points - 1) // points, 1
    return tiles + (run * count + points - 1) // points


cdef inline void _split_direct(DirectJob* job) noexcept nogil:
    """``count`` images per chunk: the fewest whose points fill whole tiles in every
    pixel group (6 points a tile, 12 with a last block of one vector: as many tile
    slots computed and dropped as with 6 or 12 images, often none); then the output
    channels in ranges of whole 2-vector blocks, enough for about DIRECT_CHUNKS chunks
    (balanced threads: a batch of 64 on 4x4 planes was 11 chunks of 6 images).  The
    last chunks run as halves (see DIRECT_TAIL_CHUNKS; ``job.threads`` set first)."""
    cdef const Geometry* g = job.g
    cdef Py_ssize_t lanes = 32 // (8 if job.float64 else 4), L = g.Ho * g.Wo, p, run = 1
    cdef Py_ssize_t points = 12 if 0 < g.O_group % (2 * lanes) <= lanes else 6
    cdef Py_ssize_t common = points, blocks = (g.O_group + 2 * lanes - 1) // (2 * lanes), per
    for p in range(1, L):
        if g.pixel_taps[g.pixel_order[p]] == g.pixel_taps[g.pixel_order[p - 1]]:
            run += 1
        else:
            common, run = _gcd(common, run), 1
    common = _gcd(common, run)
    job.count = points // common
    job.half_count = (job.count + 1) // 2
    job.calls = (job.N + job.count - 1) // job.count
    job.ranges = min(blocks, max(1, (DIRECT_CHUNKS + job.calls - 1) // job.calls))
    per = (blocks + job.ranges - 1) // job.ranges
    job.ranges = (blocks + per - 1) // per
    job.range_channels = per * 2 * lanes
    job.range_major = (g.groups * mp_direct_packed_size(g.O_group, g.K_group, 32 // lanes)
                       * (32 // lanes) > DIRECT_RANGE_MAJOR_BYTES)
    # the tail: halves of whole blocks (a range of one block stays whole, or, on 2+
    # threads, runs as halves of its images where their tiles fill: DIRECT_HALF_SLACK)
    job.tail = min(DIRECT_TAIL_CHUNKS, job.ranges * job.calls) if per > 1 else 0
    job.half_channels = (per + 1) // 2 * 2 * lanes
    job.tail_by_images = (per == 1 and job.threads > 1 and job.count > 1 and
                          2 * _tile_slots(g, job.half_count, points) * DIRECT_HALF_SLACK
                          <= _tile_slots(g, job.count, points) * (DIRECT_HALF_SLACK + 1))
    if job.tail_by_images:
        job.tail = min(DIRECT_TAIL_CHUNKS, job.ranges * job.calls)
    job.chunks = job.ranges * job.calls + job.tail
    per = (blocks + DIRECT_PACK_PIECES - 1) // DIRECT_PACK_PIECES
    job.piece_channels = per * 2 * lanes
    job.pack_pieces = (blocks + per - 1) // per


cdef inline void _direct_range(const DirectJob* job, Py_ssize_t j, Py_ssize_t* o_begin,
                               Py_ssize_t* o_end) noexcept nogil:
    o_begin[0] = j * job.range_channels
    o_end[0] = min(job.g.O_group, o_begin[0] + job.range_channels)


cdef inline Py_ssize_t _whole_chunk(const DirectJob* job, Py_ssize_t c, Py_ssize_t* o_begin,
                                    Py_ssize_t* o_end) noexcept nogil:
    """The (image call, range) chunk that launch chunk ``c`` is, or is half of (the last
    ``tail`` whole chunks run as two: their range's first ``half_channels``, then the
    rest; a half may be empty), as ``i * ranges + j``; its channels in [o_begin, o_end)
    (the whole range when the halves split images: ``_chunk_images``)."""
    cdef Py_ssize_t whole = c, first_tail = job.ranges * job.calls - job.tail, j
    if c >= first_tail:
        whole = first_tail + (c - first_tail) // 2
    cdef Py_ssize_t i = whole % job.calls if job.range_major else whole // job.ranges
    j = whole // job.calls if job.range_major else whole % job.ranges
    _direct_range(job, j, o_begin, o_end)
    if c >= first_tail and not job.tail_by_images:
        if (c - first_tail) % 2 == 0:
            o_end[0] = min(o_end[0], o_begin[0] + job.half_channels)
        else:
            o_begin[0] = min(o_end[0], o_begin[0] + job.half_channels)
    return i * job.ranges + j


cdef inline Py_ssize_t _chunk_images(const DirectJob* job, Py_ssize_t c, Py_ssize_t whole,
                                    Py_ssize_t* count) noexcept nogil:
    """The first image of launch chunk ``c`` (whole chunk ``whole``, ``_whole_chunk``)
    and, in ``count``, how many (0: the empty second half of a short last call)."""
    cdef Py_ssize_t n = whole // job.ranges * job.count
    count[0] = min(job.count, job.N - n)
    if job.tail_by_images and c >= job.ranges * job.calls - job.tail:
        if (c - (job.ranges * job.calls - job.tail)) % 2 == 0:
            count[0] = min(count[0], job.half_count)
        else:
            n, count[0] = n + job.half_count, max(0, count[0] - job.half_count)
    return n


cdef inline void _planes_of(const floating* images, Py_ssize_t count, floating* planes,
                            Py_ssize_t pixels, Py_ssize_t C) noexcept nogil:
    """``count`` NHWC images (pixels, C) copied as NCHW planes (C, pixels)."""
    cdef Py_ssize_t i, p, c
    cdef const floating* src
    cdef floating* dst
    for i in range(count):
        src = images + i * pixels * C
        dst = planes + i * pixels * C
        for p in range(pixels):
            for c in range(C):
                dst[c * pixels + p] = src[p * C + c]


cdef inline void _prepare_piece(DirectJob* job, Py_ssize_t c, floating* like) noexcept nogil:
    """Preparing piece ``c``: group c // pack_pieces, channels from (c % pack_pieces) *
    piece_channels, of the packed weight (flagging a weight with inf or NaN); past
    the groups' pieces, channels-last by planes: image call c - groups*pack_pieces
    copied as planes."""
    cdef const Geometry* g = job.g
    cdef Py_ssize_t o_begin, o_end, n, in_image = g.C * g.H * g.W
    if c < g.groups * job.pack_pieces:
        o_begin = c % job.pack_pieces * job.piece_channels
        o_end = min(g.O_group, o_begin + job.piece_channels)
        if not _pack_direct(g, <const floating*>job.weight, <floating*>job.packed,
                            c // job.pack_pieces, o_begin, o_end, job.channels_last):
            mp_direct_flag(&job.not_finite)
        return
    n = (c - g.groups * job.pack_pieces) * job.count
    _planes_of(<const floating*>job.x + n * in_image, min(job.count, job.N - n),
               <floating*>job.planes + n * in_image, g.H * g.W, g.C)


cdef inline void _compute_chunk(DirectJob* job, Py_ssize_t c, floating* like) noexcept nogil:
    """Forward chunk ``c``: first the preparing pieces still unclaimed, then, once every
    piece is finished and the weight finite, images [i*count, (i+1)*count) by range
    j (or half of it, ``_whole_chunk``), consecutive chunks on the same images (i =
    c // ranges), or, for a weight too large to stay in L2 beside them
    (``range_major``), on the same range (j = c // calls)."""
    cdef const Geometry* g = job.g
    cdef Py_ssize_t o_begin, o_end, n, piece, count, whole
    cdef Py_ssize_t in_image = g.C * g.H * g.W, out_image = g.O * g.Ho * g.Wo
    cdef const floating* x = <const floating*>job.x
    if mp_direct_seen(&job.pieces_done) < job.pieces:
        while mp_direct_seen(&job.next_piece) < job.pieces:
            piece = mp_direct_claim(&job.next_piece)
            if piece >= job.pieces:
                break
            _prepare_piece(job, piece, like)
            mp_direct_finished(&job.pieces_done)
        mp_direct_wait(&job.pieces_done, job.pieces)
    if job.not_finite:
        return
    if job.by_planes:
        x = <const floating*>job.planes
    whole = _whole_chunk(job, c, &o_begin, &o_end)
    n = _chunk_images(job, c, whole, &count)
    if o_begin == o_end or count == 0:
        return
    if job.own_planes:  # copied just before use, still in cache
        _planes_of(<const floating*>job.x + n * in_image, count,
                   <floating*>job.planes + n * in_image, g.H * g.W, g.C)
    _forward_direct(x + n * in_image, count, <const floating*>job.packed,
                    job.tap_offset, <const floating*>job.bias, <floating*>job.out + n * out_image,
                    g, o_begin, o_end, job.channels_last, job.by_planes)


# the team's chunk signature (no float type in it): the job says which
cdef inline void _direct_chunk(void* context, Py_ssize_t c, int worker) noexcept nogil:
    if (<DirectJob*>context).float64:
        _compute_chunk(<DirectJob*>context, c, <double*>NULL)
    else:
        _compute_chunk(<DirectJob*>context, c, <float*>NULL)


cdef inline bint _forward_on_direct(Geometry* g, const floating* x, Py_ssize_t N,
                                    const floating* weight, const floating* bias,
                                    floating* out, int num_threads, bint load_team,
                                    bint channels_last, bint by_planes) except -1:
    """out = the convolution on the direct kernel (layouts as ``_forward_direct``;
    ``by_planes``: channels-last images copied as NCHW planes first); returns False,
    having written nothing, when the weight is not finite (a padding tap must meet
    inf or NaN: the caller takes another path).  One allocation for the tables, the
    packed weight and the planes, freed here."""
    cdef DirectJob job
    cdef Py_ssize_t L = g.Ho * g.Wo, taps = g.kh * g.kw
    cdef Py_ssize_t item = sizeof(floating)
    cdef Py_ssize_t packed_size = g.groups * mp_direct_packed_size(g.O_group, g.K_group, item)
    cdef Py_ssize_t planes_size = N * g.C * g.H * g.W if by_planes else 0
    cdef Py_ssize_t floats = ((packed_size + planes_size) * item + 7) // 8 * 8  # bytes
    cdef char* memory = <char*>malloc(63 + floats + (taps + 3 * L) * sizeof(Py_ssize_t))
    if memory == NULL:
        raise MemoryError("conv2d direct kernel: no memory for its tables")
    # the packed weight first, on a cache line (its blocks are whole 64-byte lines)
    job.packed = <void*>(memory + (64 - <uintptr_t>memory % 64) % 64)
    job.planes = <void*>(<floating*>job.packed + packed_size)
    cdef Py_ssize_t* tap_offset = <Py_ssize_t*>(<char*>job.packed + floats)
    cdef Py_ssize_t* pixel_base = tap_offset + taps
    cdef uint64_t* pixel_taps = <uint64_t*>(pixel_base + 2 * L)
    job.x, job.weight, job.bias, job.out, job.tap_offset, job.g = x, weight, bias, out, tap_offset, g
    job.N, job.float64, job.channels_last, job.by_planes = N, floating is double, channels_last, by_planes
    job.threads = num_threads
    job.next_piece, job.pieces_done, job.not_finite = 0, 0, 0
    try:
        with nogil:
            _direct_tables(g, tap_offset, pixel_base, pixel_taps, channels_last and not by_planes)
            _split_direct(&job)
            # (image halves of one range: each chunk still holds images of its own)
            job.own_planes = by_planes and job.ranges == 1 and (job.tail == 0
                                                                or job.tail_by_images)
            job.pieces = g.groups * job.pack_pieces + (job.calls if by_planes and not
                                                       job.own_planes else 0)
            _launch(_direct_chunk, &job, job.chunks, num_threads, load_team)
    finally:
        free(memory)
    return not job.not_finite
