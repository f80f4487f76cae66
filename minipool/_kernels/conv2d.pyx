"""2-d convolution (NCHW), float32 and float64: im2col + GEMM, an image (or a few) at a time,
or register tiles straight from the planes.

Each thread takes whole images.  For an image it lays the receptive fields of
a block of output rows out as a small column matrix ``cols`` (C*kh*kw rows,
one column per output pixel of the block; it stays in cache), multiplies it
by the weight with one GEMM per group straight into the image's NCHW output,
and adds the bias.  Nothing is reordered and no batch-sized buffer exists.
Small planes put a few images' column blocks side by side, one GEMM for all
(see ``plan_batch`` and the "images" section): the numbers below then count
GEMMs where they say images.

Backward, per image and block, with ``G`` the image's output gradient seen
as (O, Ho*Wo) (NCHW already is that layout):
  weight: ``cols @ G.T`` (the weight gradient transposed, (C*kh*kw, O) per
          group) accumulated into one of S partial sums (image n goes to slot
          n % S, a slot's images in order), which the caller adds in slot
          order: the same bits for any thread count;
  input:  ``col2im(W.T @ G)``, scattered into the image's own gradient planes
          (the thread owns them: no atomics);
``cols`` is rebuilt from the input rather than kept from the forward pass: it
is as cheap as reading it back, and a batch of it would not fit in cache.

The GEMMs call the BLAS that NumPy was built with (its ``cblas_?gemm``
address, found by ``minipool/_blas.py``, one thread per call: the threads here
already cover the cores).  Without one, a plain loop GEMM gives the same
results, slowly.  ``im2col`` and ``col2im`` over a whole batch are exposed
for tests and benchmarks.

The forward product has a second engine, ``conv2d_tiles.h`` (section "tiles"):
6 output channels by 2 AVX vectors of output pixels held in registers, each
output ONE chain of fma over its (c, ki, kj) products in order, so the bits
depend on the shape alone (not on the thread count, nor on the AVX2 or the
baseline build).  With stride 1 the tiles read the padded planes themselves,
output row by output row when rows are whole 8-pixel vectors (no column block,
no pixel computed and dropped, straight into the NCHW output); else over the
column block.  ``_tiles_win`` picks them where they measured faster than BLAS
(3x3 and 5x5 layers with 64+ products per output on 8x8-64x64 planes, and
LeNet's conv1).  minipool/ops/conv.py also runs a stride-1 input gradient as a
forward convolution on the tiles (see ``_input_grad_on_tiles`` there).

The weight gradient has tiles of its own, ``conv2d_wgrad.h`` (section "weight
gradient on tiles"): 3 output channels by 4 taps, each a sum over pixels in
vector lanes, straight from one image's padded planes (or over the column
block), in an order fixed by the shape; ``_wgrad_tiles_win`` picks them where
they measured faster (one image per product: first layers, LeNet's conv1,
16x16 and larger planes).

Two later sections reuse these passes: the transposed convolution (its forward
is the input-gradient pass above) and the channels-last (NHWC) kernels, whose
column blocks hold one row per output pixel.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdint cimport int64_t, uintptr_t
from posix.unistd cimport usleep
from libc.string cimport memcpy, memset

import numpy as np

from minipool._kernels._load_team cimport (mp_chunk_fn, mp_team_helpers, mp_team_run,
                                           mp_team_set_helper_delay_us)

# Row-major CBLAS enum values (cblas.h)
cdef enum:
    ROW_MAJOR = 101
    NO_TRANS = 111
    TRANS = 112
    INT32_LIMIT = 2147483647

ctypedef void (*sgemm64_t)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t,
                           const float*, int64_t, float, float*, int64_t) noexcept nogil
ctypedef void (*dgemm64_t)(int, int, int, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t) noexcept nogil
ctypedef void (*sgemm32_t)(int, int, int, int, int, int, float, const float*, int,
                           const float*, int, float, float*, int) noexcept nogil
ctypedef void (*dgemm32_t)(int, int, int, int, int, int, double, const double*, int,
                           const double*, int, double, double*, int) noexcept nogil

cdef extern from "conv2d_tiles.h" nogil:
    void mp_conv_product_f(const float* w, Py_ssize_t O, const float* src, Py_ssize_t channels,
                           Py_ssize_t channel_stride, const Py_ssize_t* tap_offset,
                           Py_ssize_t taps, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t src_row,
                           float* out, Py_ssize_t ldo, Py_ssize_t out_row)
    void mp_conv_product_d(const double* w, Py_ssize_t O, const double* src, Py_ssize_t channels,
                           Py_ssize_t channel_stride, const Py_ssize_t* tap_offset,
                           Py_ssize_t taps, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t src_row,
                           double* out, Py_ssize_t ldo, Py_ssize_t out_row)
    int mp_pick_conv_tiles(int allow)
    Py_ssize_t mp_conv_panel_width(Py_ssize_t O, Py_ssize_t o0)
    enum: TILE_ROWS "MP_CONV_MR"
    enum: TILE_SLACK "MP_CONV_SLACK"

# weight gradient on tiles (conv2d_wgrad.h; see "weight gradient on tiles" below)
cdef extern from "conv2d_wgrad.h" nogil:
    void mp_wgrad_product_f(const float* src, Py_ssize_t channels, Py_ssize_t channel_stride,
                            Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t tap_row, Py_ssize_t tap_col,
                            const float* g, Py_ssize_t ldg, Py_ssize_t O, Py_ssize_t n,
                            float* out, Py_ssize_t ldo, int accumulate)
    void mp_wgrad_product_d(const double* src, Py_ssize_t channels, Py_ssize_t channel_stride,
                            Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t tap_row, Py_ssize_t tap_col,
                            const double* g, Py_ssize_t ldg, Py_ssize_t O, Py_ssize_t n,
                            double* out, Py_ssize_t ldo, int accumulate)
    int mp_pick_wgrad_tiles(int allow)

cdef void* _sgemm = NULL
cdef void* _dgemm = NULL
cdef bint _ilp64 = False


def use_blas(uintptr_t sgemm_address, uintptr_t dgemm_address, bint ilp64):
    """Route GEMMs to CBLAS's ``cblas_sgemm``/``cblas_dgemm`` at these addresses
    (0, 0: the loop GEMM).  ``ilp64``: the BLAS takes 64-bit integers."""
    global _sgemm, _dgemm, _ilp64
    _sgemm = <void*>sgemm_address
    _dgemm = <void*>dgemm_address
    _ilp64 = ilp64


def blas_in_use():
    return _sgemm != NULL and _dgemm != NULL


cdef void _loop_gemm(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                     const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
                     bint accumulate, floating* C, Py_ssize_t ldc) noexcept nogil:
    """C (+)= op(A) @ op(B), row-major: the stand-in when no BLAS is reachable."""
    cdef Py_ssize_t i, j, p
    cdef floating a
    cdef floating* c_row
    for i in range(M):
        c_row = C + i * ldc
        if not accumulate:
            for j in range(N):
                c_row[j] = 0
        for p in range(K):
            a = A[p * lda + i] if trans_a else A[i * lda + p]
            if trans_b:
                for j in range(N):
                    c_row[j] += a * B[j * ldb + p]
            else:
                for j in range(N):
                    c_row[j] += a * B[p * ldb + j]


cdef void _gemm(bint trans_a, bint trans_b, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
                bint accumulate, floating* C, Py_ssize_t ldc) noexcept nogil:
    """C = op(A) @ op(B), or C += ... with ``accumulate``; all matrices row-major."""
    cdef int ta = TRANS if trans_a else NO_TRANS, tb = TRANS if trans_b else NO_TRANS
    cdef void* blas = _sgemm if floating is float else _dgemm
    cdef floating beta = 1 if accumulate else 0  # BLAS ignores C's old values when beta == 0
    cdef bint fits32 = (M <= INT32_LIMIT and N <= INT32_LIMIT and K <= INT32_LIMIT and
                        lda <= INT32_LIMIT and ldb <= INT32_LIMIT and ldc <= INT32_LIMIT)
    if M == 0 or N == 0:
        return
    if K == 0:
        if not accumulate:
            _loop_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, accumulate, C, ldc)
        return
    if blas != NULL and (_ilp64 or fits32):
        if floating is float:
            if _ilp64:
                (<sgemm64_t>blas)(ROW_MAJOR, ta, tb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc)
            else:
                (<sgemm32_t>blas)(ROW_MAJOR, ta, tb, <int>M, <int>N, <int>K, 1, A, <int>lda,
                                  B, <int>ldb, beta, C, <int>ldc)
        else:
            if _ilp64:
                (<dgemm64_t>blas)(ROW_MAJOR, ta, tb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc)
            else:
                (<dgemm32_t>blas)(ROW_MAJOR, ta, tb, <int>M, <int>N, <int>K, 1, A, <int>lda,
                                  B, <int>ldb, beta, C, <int>ldc)
        return
    _loop_gemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, accumulate, C, ldc)


# ---------------------------------------------------------------- tiles
# The forward product can also run on conv2d_tiles.h's register tiles instead of
# BLAS: TILE_ROWS output channels by 2 vectors of output pixels, each output one
# running sum over its (c, ki, kj) products in order.  With stride 1 (shifted
# columns, one image per product) the tiles read the padded planes directly, so
# no column block is built.  ``_tile_mode`` 0: never; 1: where ``_tiles_win``
# says; 2: always (tests).
cdef int _tile_mode = 1
cdef Py_ssize_t[1] _NO_TAP_OFFSET = [0]  # a column block: one "tap" per row


def use_tiles(int mode):
    """0: BLAS for every forward product; 1: tiles where they measured faster; 2: tiles
    for every forward product (tests).  Returns the previous mode."""
    global _tile_mode
    if mode not in (0, 1, 2):
        raise ValueError(f"use_tiles: mode must be 0, 1 or 2, got {mode}")
    previous, _tile_mode = _tile_mode, mode
    return previous


cdef bint _avx2_tiles = False  # mode 1 needs them: the baseline build calls libc fma() per lane


def use_cpu_avx2(bint allow=True):
    """Run the tiles on AVX2 registers when ``allow`` and the CPU has AVX2 (the
    default), else the baseline x86-64 build: the same bits either way.  Returns
    whether AVX2 is now in use.  Without AVX2, mode 1 keeps every product on BLAS
    (the baseline tiles are for tests and exotic CPUs, and slow)."""
    global _avx2_tiles
    _avx2_tiles = mp_pick_conv_tiles(allow) == 1
    mp_pick_wgrad_tiles(allow)  # weight gradient on tiles: the same CPU test
    return _avx2_tiles


use_cpu_avx2(True)


cdef bint _tiles_win(const Geometry* g) noexcept nogil:
    """Where the tiles measured faster than BLAS (1 thread, CPU time, batch 64): straight
    from the planes (stride 1), row by row (rows of whole 8-pixel vectors) or one image
    at a time on rows of 16+ pixels, with 64+ steps per sum or a single panel of output
    channels.  (The sweep's 3x3 and 5x5 layers on 8x8-64x64 planes: 1.2-1.6x; LeNet's
    conv1 1.2x; LeNet's conv2 (rows of 10), 3x3 first layers (27 steps) and 4x4 planes
    stay on BLAS: 0.75-0.95x there.)"""
    return (g.shiftable and (g.Wo % 8 == 0 or (g.shifted and g.images == 1 and g.Wo >= 16))
            and (g.K_group >= 64 or g.O_group <= TILE_ROWS))


def uses_tiles(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
               Py_ssize_t block_rows, Py_ssize_t images, bint float64=False):
    """Whether ``conv2d_forward`` runs this shape's products on the tiles (with the
    current ``use_tiles`` mode)."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, block_rows)
    _set_images(&g, images)
    return _on_tiles(&g, float64)


cdef bint _on_tiles(const Geometry* g, bint float64) noexcept nogil:
    """Mode 1 keeps float64 on BLAS (the tiles were measured in float32 only), and
    everything on BLAS without the AVX2 build."""
    return g.K_group > 0 and (_tile_mode == 2 or (_tile_mode == 1 and not float64
                                                  and _avx2_tiles and _tiles_win(g)))


cdef void _pack_weight(const floating* weight, floating* packed, Py_ssize_t groups,
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
    if floating is float:
        mp_conv_product_f(packed, O, src, channels, channel_stride, tap_offset, taps, rows, n,
                          src_row, out, ldo, out_row)
    else:
        mp_conv_product_d(packed, O, src, channels, channel_stride, tap_offset, taps, rows, n,
                          src_row, out, ldo, out_row)


# ---------------------------------------------------------------- weight gradient on tiles
# The weight gradient's product dW.T (K, O) (+)= X (K, n) @ G.T can run on
# conv2d_wgrad.h's tiles instead of BLAS: 3 output channels by 4 taps in
# registers, summing over pixels, every sum in an order fixed by the shape (see
# the header).  Stride 1 reads the padded planes themselves (no column block);
# otherwise the gathered column block.  ``_wgrad_mode`` 0: never; 1: where
# ``_wgrad_tiles_win`` says; 2: always (tests).
cdef int _wgrad_mode = 1


def use_wgrad_tiles(int mode):
    """0: BLAS for every weight-gradient product; 1: tiles where they measured faster;
    2: tiles for every one (tests).  Returns the previous mode."""
    global _wgrad_mode
    if mode not in (0, 1, 2):
        raise ValueError(f"use_wgrad_tiles: mode must be 0, 1 or 2, got {mode}")
    previous, _wgrad_mode = _wgrad_mode, mode
    return previous


cdef bint _wgrad_tiles_win(const Geometry* g) noexcept nogil:
    """Where the tiles measured faster than BLAS (1 thread, CPU time, batch 64, the
    weight gradient alone): one image at a time straight from its planes (first layers
    1.0-1.7x, LeNet's conv1 1.3x, 32x32 and 16x16 planes even to 1.06x).  Several
    small images per product (column blocks: LeNet's conv2, 8x8 and 4x4 planes) stay
    on BLAS: 0.7-0.85x there."""
    return g.shifted and g.images == 1


cdef bint _wgrad_on_tiles(const Geometry* g, bint float64) noexcept nogil:
    """Mode 1: float32 on the AVX2 build only (as ``_on_tiles``)."""
    return g.K_group > 0 and (_wgrad_mode == 2 or (_wgrad_mode == 1 and not float64
                                                   and _avx2_tiles and _wgrad_tiles_win(g)))


def uses_wgrad_tiles(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
                     Py_ssize_t block_rows, Py_ssize_t images, bint float64=False):
    """Whether ``conv2d_backward`` runs this shape's weight gradient on the tiles (with
    the current ``use_wgrad_tiles`` mode)."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, block_rows)
    _set_images(&g, images)
    return _wgrad_on_tiles(&g, float64)


cdef inline void _wgrad_product(const floating* src, Py_ssize_t channels,
                                Py_ssize_t channel_stride, Py_ssize_t kh, Py_ssize_t kw,
                                Py_ssize_t tap_row, Py_ssize_t tap_col, const floating* G,
                                Py_ssize_t ldg, Py_ssize_t O, Py_ssize_t n, floating* out,
                                Py_ssize_t ldo, bint accumulate) noexcept nogil:
    """out (channels*kh*kw, O), row stride ``ldo``, (+)= the source rows times G.T (see
    conv2d_wgrad.h)."""
    if floating is float:
        mp_wgrad_product_f(src, channels, channel_stride, kh, kw, tap_row, tap_col, G, ldg, O,
                           n, out, ldo, accumulate)
    else:
        mp_wgrad_product_d(src, channels, channel_stride, kh, kw, tap_row, tap_col, G, ldg, O,
                           n, out, ldo, accumulate)


# ---------------------------------------------------------------- geometry
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


cdef Geometry _geometry(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
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
    g.shiftable, g.by_rows, g.wgrad_tiles = g.shifted, False, False
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


cdef inline Py_ssize_t _source_size(const Geometry* g) noexcept nogil:
    return g.C * g.Hs * g.Ws if g.padded else 0


cdef inline Py_ssize_t _forward_planes(const Geometry* g) noexcept nogil:
    """The forward pass's copy of an image's planes: padded ones, or any stride-1
    image on tiles (whose last vectors read past the last plane: TILE_SLACK)."""
    return g.C * g.Hs * g.Ws if g.shifted else 0


cdef Py_ssize_t _forward_workspace(const Geometry* g) noexcept nogil:
    """The forward workspace: enough for BLAS and for tiles by rows (planes and slack)."""
    return max(_workspace_elements(g, False),
               g.C * g.Hs * g.Ws + TILE_SLACK if g.shiftable else 0)


cdef Py_ssize_t _workspace_elements(const Geometry* g, bint backward) noexcept nogil:
    """What one thread's workspace row holds (see _forward_images / _backward_images):
    forward:  planes | cols | wide output (shifted or several images only) | tiles' slack
    backward: padded planes | padded gradient planes | cols | grad_cols | wide G | G.T | ones"""
    cdef Py_ssize_t width = _block_width(g, g.block_rows) if g.Ho and g.Wo else 0
    cdef Py_ssize_t taps = g.C * g.kh * g.kw, ld = g.images * width
    if backward:
        return 2 * _source_size(g) + 2 * taps * ld + 2 * g.O * ld + width
    return (_forward_planes(g) + taps * ld + (g.O * ld if g.shifted or g.images > 1 else 0)
            + TILE_SLACK)


def plan(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
         Py_ssize_t block_elements):
    """(block_rows, forward workspace, backward workspace): output rows per column
    block, so that a block's columns stay under ``block_elements``, and the
    elements each thread needs then (one image per GEMM)."""
    block_rows, _, forward, backward = plan_batch(1, C, H, W, O, geometry, block_elements, 0, 1)
    return block_rows, forward, backward


def plan_batch(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O,
               object geometry, Py_ssize_t block_elements, Py_ssize_t gemm_columns,
               Py_ssize_t min_gemms):
    """(block_rows, images, forward workspace, backward workspace) for a batch of N.

    ``block_rows`` as in ``plan``, except that a block over ``block_elements`` is
    only halved while the halves keep ``gemm_columns // 2`` columns (BLAS runs
    narrow products slowly: 128 channels on 8x8 planes are one 64-column block, not
    two of 32), up to 4x ``block_elements``.  When one block holds a whole image,
    ``images`` images share one GEMM, their column blocks side by side: as many as
    give at most ``gemm_columns`` columns (and 4x ``block_elements``), keeping at
    least ``min_gemms`` GEMMs per batch (work for every thread).  Only the shape
    decides: the bits do not depend on the thread count."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    cdef Py_ssize_t taps = C * g.kh * g.kw, rows = g.Ho, width, cap = 4 * block_elements
    while rows > 1 and taps * _block_width(&g, rows) > block_elements:
        if (taps * _block_width(&g, rows) <= cap
                and 2 * _block_width(&g, (rows + 1) // 2) < gemm_columns):
            break
        rows = (rows + 1) // 2
    g.block_rows = max(rows, 1)
    if g.block_rows == g.Ho and g.Ho and g.Wo:
        width = _block_width(&g, g.Ho)
        g.images = max(1, min(gemm_columns // width, N // max(min_gemms, 1),
                              cap // max(taps * width, 1)))
    return g.block_rows, g.images, _forward_workspace(&g), _workspace_elements(&g, True)


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


cdef bint _all_finite(const floating* values, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef bint finite = True
    for i in range(n):
        finite &= values[i] - values[i] == 0  # inf - inf and NaN - NaN are NaN
    return finite


# ------------------------------------------- gathered columns (any stride)
cdef void _gathered_taps(floating* cols, Py_ssize_t ld, floating* image, const Geometry* g,
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
cdef void _pad_planes(const floating* image, floating* padded, const Geometry* g) noexcept nogil:
    """The image's planes inside zero borders: (C, Hs, Ws), pixel (h, w) at (h+ph, w+pw)."""
    cdef Py_ssize_t c, h
    cdef floating* d
    memset(padded, 0, g.C * g.Hs * g.Ws * sizeof(floating))
    for c in range(g.C):
        for h in range(g.H):
            d = padded + (c * g.Hs + h + g.ph) * g.Ws + g.pw
            memcpy(d, image + (c * g.H + h) * g.W, g.W * sizeof(floating))


cdef void _shifted_cols(const floating* planes, floating* cols, Py_ssize_t width, Py_ssize_t ld,
                        const Geometry* g, Py_ssize_t oh0) noexcept nogil:
    """cols (C*kh*kw, width), row stride ``ld``: tap (ki, kj) of channel c is the run of
    ``width`` plane pixels from (oh0 + ki*dh, kj*dw)."""
    cdef Py_ssize_t c, ki, kj
    cdef floating* d
    cdef const floating* s
    for c in range(g.C):
        for ki in range(g.kh):
            for kj in range(g.kw):
                d = cols + ((c * g.kh + ki) * g.kw + kj) * ld
                s = planes + (c * g.Hs + oh0 + ki * g.dh) * g.Ws + kj * g.dw
                memcpy(d, s, width * sizeof(floating))  # libc's copy uses the CPU's widest stores


cdef void _shifted_col2im(const floating* cols, Py_ssize_t width, Py_ssize_t ld,
                          floating* planes_grad, const Geometry* g, Py_ssize_t oh0) noexcept nogil:
    """The adjoint of ``_shifted_cols``: add each tap's run back where it was cut."""
    cdef Py_ssize_t c, ki, kj, j
    cdef floating* d
    cdef const floating* s
    for c in range(g.C):
        for ki in range(g.kh):
            for kj in range(g.kw):
                s = cols + ((c * g.kh + ki) * g.kw + kj) * ld
                d = planes_grad + (c * g.Hs + oh0 + ki * g.dh) * g.Ws + kj * g.dw
                for j in range(width):
                    d[j] += s[j]


cdef void _widen_rows(const floating* narrow, Py_ssize_t ld, floating* wide, Py_ssize_t wide_ld,
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


cdef void _transpose_rows(const floating* narrow, Py_ssize_t ld, floating* dst,
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


# ---------------------------------------------------------------- images
# A GEMM over one image's block of a small plane is narrow (a 4x4 plane: 16-22
# columns), and BLAS runs narrow products far below its peak.  When a whole image
# is one block, ``count`` images (plan_batch's choice) lay their column blocks side
# by side, image i in columns [i*width, (i+1)*width) of a block of row stride
# ld = count*width, and one GEMM serves them all; its output goes through the wide
# block (the images' outputs are not adjacent in NCHW).
cdef void _forward_images(const floating* images, Py_ssize_t count, const floating* weight,
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
    cdef bint direct = count == 1 and not g.shifted  # the product lands in ``out`` itself
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
            if direct:
                dst, ldd = out + grp * g.O_group * L + oh0 * g.Wo, L
            else:
                dst, ldd = wide_out + grp * g.O_group * ld, ld
            if from_planes:  # one run per tap, the Ws - Wo pixels between rows dropped later
                _tile_product(packed + grp * panel, g.O_group, planes + grp * Cg * plane + oh0 * g.Ws,
                              Cg, plane, tap_offset, taps, 1, width, 0, dst, ldd, 0)
            elif packed != NULL:
                _tile_product(packed + grp * panel, g.O_group, cols + grp * g.K_group * ld,
                              g.K_group, ld, _NO_TAP_OFFSET, 1, 1, ld, 0, dst, ldd, 0)
            else:  # not direct: the wide block, whose first Wo of every row_stride columns are kept
                _gemm(False, False, g.O_group, ld, g.K_group,
                      weight + grp * g.O_group * g.K_group, g.K_group,
                      cols + grp * g.K_group * ld, ld, False, dst, ldd)
        if direct:
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


cdef void _forward_rows(const floating* images, Py_ssize_t count, const floating* packed,
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


cdef void _crop_planes(const floating* planes_grad, floating* image_grad,
                       const Geometry* g) noexcept nogil:
    """The (C, H, W) image inside padded (C, Hs, Ws) planes: their borders cut off."""
    cdef Py_ssize_t c, h
    for c in range(g.C):
        for h in range(g.H):
            memcpy(image_grad + (c * g.H + h) * g.W,
                   planes_grad + (c * g.Hs + h + g.ph) * g.Ws + g.pw, g.W * sizeof(floating))


cdef void _backward_images(const floating* images, Py_ssize_t count, const floating* weight,
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


# ---------------------------------------------------------------- chunks and the load-tolerant team
# The entry points' parallel loops run chunks: a GEMM of images (forward) or a
# slot (backward), described by an ``ImagesJob``.  An OpenMP region runs them, or,
# with ``load_team``, load_team.h's team: its caller does not wait for a thread
# the OS has descheduled (another process busy on its core) unless that thread
# holds a chunk.  A chunk is the same GEMM (or slot) whoever runs it; the worker
# index only picks the workspace row.  (Both loops call the chunk functions, so
# each pass has one call site and the compiler inlines it as before.)
cdef struct ImagesJob:
    const void* x
    const void* weight
    const void* bias          # forward
    const void* packed        # forward on tiles: the packed weight (else NULL: BLAS)
    const Py_ssize_t* tap_offset
    const void* grad          # backward
    void* out                 # forward output or backward grad_x (may be NULL)
    void* slots
    void* bias_slots
    void* workspace
    Py_ssize_t N, images, gemms, S, per_thread, slot_size
    bint weight_finite
    const Geometry* g


cdef void _forward_gemm(const floating* xp, const floating* wp, const floating* packed,
                        const Py_ssize_t* tap_offset, const floating* bias_ptr,
                        floating* op, floating* wsp, Py_ssize_t n, Py_ssize_t N,
                        Py_ssize_t images, const Geometry* g) noexcept nogil:
    """GEMM ``n`` of the forward: images [n*images, min((n+1)*images, N))."""
    cdef Py_ssize_t in_image = g.C * g.H * g.W, out_image = g.O * g.Ho * g.Wo
    _forward_images(xp + n * images * in_image, min(images, N - n * images), wp, packed,
                    tap_offset, bias_ptr, op + n * images * out_image, wsp, g)


cdef void _backward_slot(const floating* xp, const floating* wp, bint weight_finite,
                         const floating* gp, floating* gxp, floating* slotp,
                         floating* bslotp, floating* wsp, Py_ssize_t s, Py_ssize_t S,
                         Py_ssize_t gemms, Py_ssize_t N, Py_ssize_t images,
                         Py_ssize_t slot_size, const Geometry* g) noexcept nogil:
    """Slot ``s`` of the backward: GEMMs s, s + S, ... in that order."""
    cdef Py_ssize_t in_image = g.C * g.H * g.W, out_image = g.O * g.Ho * g.Wo, n = s
    while n < gemms:
        _backward_images(xp + n * images * in_image, min(images, N - n * images), wp,
                         weight_finite, gp + n * images * out_image,
                         gxp + n * images * in_image if gxp != NULL else NULL,
                         slotp + s * slot_size if slotp != NULL else NULL,
                         bslotp + s * g.O if bslotp != NULL else NULL, n >= S, wsp, g)
        n = n + S


cdef void _forward_chunk_f32(void* context, Py_ssize_t n, int worker) noexcept nogil:
    cdef ImagesJob* job = <ImagesJob*>context
    _forward_gemm(<const float*>job.x, <const float*>job.weight, <const float*>job.packed,
                  job.tap_offset, <const float*>job.bias,
                  <float*>job.out, <float*>job.workspace + worker * job.per_thread
                  if job.workspace != NULL else NULL, n, job.N, job.images, job.g)


cdef void _forward_chunk_f64(void* context, Py_ssize_t n, int worker) noexcept nogil:
    cdef ImagesJob* job = <ImagesJob*>context
    _forward_gemm(<const double*>job.x, <const double*>job.weight, <const double*>job.packed,
                  job.tap_offset, <const double*>job.bias,
                  <double*>job.out, <double*>job.workspace + worker * job.per_thread
                  if job.workspace != NULL else NULL, n, job.N, job.images, job.g)


cdef void _backward_chunk_f32(void* context, Py_ssize_t s, int worker) noexcept nogil:
    cdef ImagesJob* job = <ImagesJob*>context
    _backward_slot(<const float*>job.x, <const float*>job.weight, job.weight_finite,
                   <const float*>job.grad, <float*>job.out, <float*>job.slots,
                   <float*>job.bias_slots, <float*>job.workspace + worker * job.per_thread,
                   s, job.S, job.gemms, job.N, job.images, job.slot_size, job.g)


cdef void _backward_chunk_f64(void* context, Py_ssize_t s, int worker) noexcept nogil:
    cdef ImagesJob* job = <ImagesJob*>context
    _backward_slot(<const double*>job.x, <const double*>job.weight, job.weight_finite,
                   <const double*>job.grad, <double*>job.out, <double*>job.slots,
                   <double*>job.bias_slots, <double*>job.workspace + worker * job.per_thread,
                   s, job.S, job.gemms, job.N, job.images, job.slot_size, job.g)


def load_team_helpers():
    """Helper threads the load-tolerant team has started in this process (for tests)."""
    return mp_team_helpers()


def set_load_team_helper_delay(double seconds):
    """Tests: every helper sleeps ``seconds`` after taking a job, before claiming
    a chunk (a thread the OS descheduled at the worst moment); 0 turns it off."""
    mp_team_set_helper_delay_us(<long>(seconds * 1e6))


cdef struct SelfTestJob:
    long* runs        # per chunk: times it ran
    int* workers      # per chunk: who ran it last
    int chunk_us      # every chunk sleeps this long ...
    int helper_us     # ... and this much longer on a helper


cdef void _self_test_chunk(void* context, Py_ssize_t c, int worker) noexcept nogil:
    cdef SelfTestJob* job = <SelfTestJob*>context
    cdef int pause = job.chunk_us + (job.helper_us if worker != 0 else 0)
    if pause > 0:
        usleep(pause)
    job.runs[c] += 1
    job.workers[c] = worker


def load_team_self_test(long[::1] runs, int[::1] workers, int threads, int chunk_us=0,
                        int helper_us=0):
    """Tests: run the team over ``runs.shape[0]`` chunks that count their runs in
    ``runs``, record their worker in ``workers`` and sleep ``chunk_us`` (+ ``helper_us``
    on a helper) microseconds."""
    cdef SelfTestJob job
    if workers.shape[0] != runs.shape[0]:
        raise ValueError("load_team_self_test: runs and workers must have the same length")
    if runs.shape[0] == 0:
        return
    job.runs, job.workers, job.chunk_us, job.helper_us = &runs[0], &workers[0], chunk_us, helper_us
    with nogil:
        mp_team_run(_self_test_chunk, &job, runs.shape[0], threads)


# ---------------------------------------------------------------- entry points
def _dims(view):
    """A typed memoryview's shape as a tuple (for error messages)."""
    return tuple(view.shape)


def _check_workspace(workspace, Py_ssize_t threads, Py_ssize_t per_thread):
    if workspace.shape[0] < threads or workspace.shape[1] < per_thread:
        raise ValueError(f"conv2d kernel: workspace of shape {_dims(workspace)} is smaller "
                         f"than ({threads}, {per_thread})")


cdef void _set_images(Geometry* g, Py_ssize_t images) except *:
    if images < 1:
        raise ValueError(f"conv2d kernel: images must be >= 1, got {images}")
    if images > 1 and g.block_rows < g.Ho:
        raise ValueError(f"conv2d kernel: {images} images per GEMM need whole-image blocks "
                         f"(block_rows {g.block_rows} < {g.Ho} output rows)")
    g.images = images


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] weight, bias,
                   floating[:, :, :, ::1] out, object geometry, Py_ssize_t block_rows,
                   floating[:, ::1] workspace, int num_threads, Py_ssize_t images=1,
                   bint load_team=False):
    """out (N, O, Ho, Wo) = conv(x (N, C, H, W), weight (O, C/groups*kh*kw)) + bias.

    ``block_rows``, ``images`` (per GEMM) and the workspace per thread come from
    ``plan_batch`` (or ``plan``, one image): ``workspace`` is (num_threads, forward
    elements) at least.  ``load_team``: share the GEMMs out on the load-tolerant
    team (same bits) instead of an OpenMP region."""
    cdef Py_ssize_t N = x.shape[0], n, t
    cdef Geometry g = _geometry(x.shape[1], x.shape[2], x.shape[3], weight.shape[0], geometry,
                                block_rows)
    _set_images(&g, images)
    cdef Py_ssize_t per_thread = _forward_workspace(&g)
    cdef const floating* bias_ptr = NULL
    num_threads = max(num_threads, 1)
    if ((out.shape[0], out.shape[1], out.shape[2], out.shape[3]) != (N, g.O, g.Ho, g.Wo)
            or weight.shape[1] != g.K_group):
        raise ValueError(f"conv2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"out {_dims(out)} do not match geometry {geometry}")
    bias_ptr = _bias_pointer(bias, g.O, <floating*>NULL, "conv2d")
    if N == 0 or g.O == 0 or g.Ho * g.Wo == 0:
        return
    _check_workspace(workspace, num_threads, per_thread)
    cdef const floating* xp = &x[0, 0, 0, 0] if x.size else NULL
    cdef const floating* wp = &weight[0, 0] if weight.size else NULL
    cdef floating* op = &out[0, 0, 0, 0]
    cdef floating* wsp = &workspace[0, 0] if workspace.size else NULL
    cdef Py_ssize_t gemms = (N + images - 1) // images
    cdef floating[::1] packed_view
    cdef Py_ssize_t[::1] tap_offset_view
    cdef const floating* packed = NULL
    cdef const Py_ssize_t* tap_offset = NULL
    cdef Py_ssize_t ki, kj
    if _on_tiles(&g, floating is double):
        if g.shiftable and g.Wo % 8 == 0:  # rows of whole 8-pixel vectors: see _forward_images
            g.by_rows = g.shifted = True
            g.padded = g.Hs != g.H or g.Ws != g.W
        packed_view = np.empty(g.groups * _packed_group(g.O_group, g.K_group),
                               np.float32 if floating is float else np.float64)
        packed = &packed_view[0]
        _pack_weight(wp, &packed_view[0], g.groups, g.O_group, g.K_group)
        tap_offset_view = np.empty(g.kh * g.kw, np.intp)
        for ki in range(g.kh):
            for kj in range(g.kw):
                tap_offset_view[ki * g.kw + kj] = ki * g.dh * g.Ws + kj * g.dw
        tap_offset = &tap_offset_view[0]
    cdef ImagesJob job
    job.x, job.weight, job.bias, job.out, job.workspace = xp, wp, bias_ptr, op, wsp
    job.packed, job.tap_offset = packed, tap_offset
    job.N, job.images, job.per_thread, job.g = N, images, per_thread, &g
    cdef mp_chunk_fn chunk = _forward_chunk_f64 if floating is double else _forward_chunk_f32
    if load_team and num_threads > 1:
        with nogil:
            mp_team_run(chunk, &job, gemms, num_threads)
        return
    for n in prange(gemms, nogil=True, schedule="static", num_threads=num_threads):
        if floating is double:
            _forward_chunk_f64(&job, n, threadid())
        else:
            _forward_chunk_f32(&job, n, threadid())


cdef const floating* _bias_pointer(object bias, Py_ssize_t channels, floating* like,
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


cdef floating* _first(object array, floating* like, str name) except? NULL:
    """The first element of ``array``, C-contiguous, writable and of ``like``'s type
    (checked: a reshaped copy would take the writes); NULL for None or an empty array.
    The caller holds the array."""
    cdef floating[::1] flat
    if array is None:
        return NULL
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        raise ValueError(f"conv2d kernel: {name} must be C-contiguous")
    flat = array.reshape(-1)
    return &flat[0] if flat.shape[0] else NULL


def _backward_buffers(x, grad_x, weight_slots, bias_slots, tuple slot_shape, Py_ssize_t O,
                      Py_ssize_t used):
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


def conv2d_backward(const floating[:, :, :, ::1] x, const floating[:, ::1] weight,
                    const floating[:, :, :, ::1] grad, grad_x, weight_slots, bias_slots,
                    object geometry, Py_ssize_t block_rows, floating[:, ::1] workspace,
                    int num_threads, Py_ssize_t images=1, bint load_team=False):
    """Fill ``grad_x`` (N, C, H, W), ``weight_slots`` (S, groups, C/groups*kh*kw,
    O/groups) -- the weight gradient transposed per group -- and ``bias_slots``
    (S, O); any may be None.  The images go ``images`` per GEMM (as in
    ``conv2d_forward``); slot s receives the sum over GEMMs m = s, s + S, s + 2S,
    ... in that order (the caller adds the slots in order).
    ``workspace``: (num_threads, backward elements from ``plan_batch``) at least.
    ``load_team``: share the slots out on the load-tolerant team (same bits)."""
    # without slots every GEMM is a "slot" of its own (shared out freely)
    cdef Py_ssize_t N = x.shape[0], s, n, t, o, j, S = max(x.shape[0], 1)
    cdef Geometry g = _geometry(x.shape[1], x.shape[2], x.shape[3], weight.shape[0], geometry,
                                block_rows)
    _set_images(&g, images)
    cdef Py_ssize_t per_thread = _workspace_elements(&g, True)
    cdef Py_ssize_t gemms = (N + images - 1) // images
    cdef floating[:, ::1] bslots
    cdef floating* gxp = NULL
    cdef floating* slotp = NULL
    cdef floating* bslotp = NULL
    num_threads = max(num_threads, 1)
    if ((grad.shape[0], grad.shape[1], grad.shape[2], grad.shape[3]) != (N, g.O, g.Ho, g.Wo)
            or weight.shape[1] != g.K_group):
        raise ValueError(f"conv2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"grad {_dims(grad)} do not match geometry {geometry}")
    S = _backward_buffers(x, grad_x, weight_slots, bias_slots, (g.groups, g.K_group, g.O_group),
                          g.O, gemms)
    gxp = _first(grad_x, <floating*>NULL, "grad_x")
    slotp = _first(weight_slots, <floating*>NULL, "weight_slots")
    bslotp = _first(bias_slots, <floating*>NULL, "bias_slots")
    cdef Py_ssize_t L = g.Ho * g.Wo
    if N == 0 or g.O == 0 or L == 0 or g.K_group == 0:  # no products: zero gradients ...
        if gxp != NULL:
            grad_x[...] = 0
        if slotp != NULL:
            weight_slots[...] = 0
        if bslotp != NULL:  # ... but for the bias (no input channels at all)
            bslots = bias_slots
            for n in range(N):
                for o in range(g.O):
                    for j in range(L):
                        bslots[n % S, o] += grad[n, o, j // g.Wo, j % g.Wo]
        return
    _check_workspace(workspace, num_threads, per_thread)
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* wp = &weight[0, 0]
    cdef bint weight_finite = _all_finite(wp, weight.shape[0] * weight.shape[1])
    cdef const floating* gp = &grad[0, 0, 0, 0]
    cdef floating* wsp = &workspace[0, 0]
    cdef Py_ssize_t slot_size = g.O * g.K_group
    cdef Py_ssize_t busy_slots = min(S, gemms)
    g.wgrad_tiles = slotp != NULL and _wgrad_on_tiles(&g, floating is double)  # weight gradient on tiles
    cdef ImagesJob job
    # Slots, not GEMMs, are shared out: a slot's GEMMs must be added in order.
    # Dynamic scheduling balances slots with unequal GEMM counts; it moves
    # whole slots between threads, so the sums do not change.
    job.x, job.weight, job.grad, job.out, job.workspace = xp, wp, gp, gxp, wsp
    job.slots, job.bias_slots, job.weight_finite = slotp, bslotp, weight_finite
    job.N, job.images, job.gemms, job.S, job.g = N, images, gemms, S, &g
    job.per_thread, job.slot_size = per_thread, slot_size
    cdef mp_chunk_fn chunk = _backward_chunk_f64 if floating is double else _backward_chunk_f32
    if load_team and num_threads > 1:
        with nogil:
            mp_team_run(chunk, &job, busy_slots, num_threads)
        return
    for s in prange(busy_slots, nogil=True, schedule="dynamic", num_threads=num_threads):
        if floating is double:
            _backward_chunk_f64(&job, s, threadid())
        else:
            _backward_chunk_f32(&job, s, threadid())


def im2col(const floating[:, :, :, ::1] x, floating[:, ::1] cols, object geometry, int num_threads=1):
    """``cols`` (C*kh*kw, N*Ho*Wo) of a whole batch (image n in columns
    [n*Ho*Wo, (n+1)*Ho*Wo)), gathered as conv2d does for strides > 1; for tests
    and benchmarks."""
    cdef Py_ssize_t N = x.shape[0], n
    cdef Geometry g = _geometry(x.shape[1], x.shape[2], x.shape[3], 1, geometry, 1)
    cdef Py_ssize_t L = g.Ho * g.Wo
    if g.groups != 1:
        raise ValueError("im2col: geometry must have groups=1")
    if (cols.shape[0], cols.shape[1]) != (g.C * g.kh * g.kw, N * L):
        raise ValueError(f"im2col: cols has shape {_dims(cols)}, expected "
                         f"{(g.C * g.kh * g.kw, N * L)} for input {_dims(x)}")
    if N * L == 0 or cols.shape[0] == 0:
        return
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef floating* cp = &cols[0, 0]
    for n in prange(N, nogil=True, schedule="static", num_threads=max(num_threads, 1)):
        _im2col_block(xp + n * g.C * g.H * g.W, cp + n * L, N * L, &g, 0, g.Ho)


def col2im(const floating[:, ::1] cols, floating[:, :, :, ::1] grad_x, object geometry,
           int num_threads=1):
    """Overwrite ``grad_x`` (N, C, H, W) with the sum of the taps in ``cols``: the adjoint
    of ``im2col``; for tests and benchmarks."""
    cdef Py_ssize_t N = grad_x.shape[0], n, i
    cdef Geometry g = _geometry(grad_x.shape[1], grad_x.shape[2], grad_x.shape[3], 1, geometry, 1)
    cdef Py_ssize_t L = g.Ho * g.Wo, image = g.C * g.H * g.W
    if g.groups != 1:
        raise ValueError("col2im: geometry must have groups=1")
    if (cols.shape[0], cols.shape[1]) != (g.C * g.kh * g.kw, N * L):
        raise ValueError(f"col2im: cols has shape {_dims(cols)}, expected "
                         f"{(g.C * g.kh * g.kw, N * L)} for grad_x {_dims(grad_x)}")
    if N * image == 0:
        return
    cdef floating* gp = &grad_x[0, 0, 0, 0]
    cdef const floating* cp = &cols[0, 0] if cols.size else NULL
    for n in prange(N, nogil=True, schedule="static", num_threads=max(num_threads, 1)):
        for i in range(image):
            gp[n * image + i] = 0
        if cp != NULL:
            _col2im_block(cp + n * L, N * L, gp + n * image, &g, 0, g.Ho)


# ================================================================ transposed convolution
# A transposed convolution is conv2d's input-gradient pass run forward: its input
# x (N, Cin, Hin, Win) plays conv2d's output gradient, its weight (Cin, Cout/groups,
# kh, kw) is conv2d's weight (O = Cin), and its output (N, Cout, Hout, Wout) is the
# gradient planes col2im(W.T @ x) fills.  Its input gradient is then conv2d's
# forward of the output gradient, and its weight gradient conv2d's weight-gradient
# pass with the output gradient as input and x as output gradient: the two entry
# points above, called by minipool/ops/conv_transpose.py.  Only the forward needs
# an entry point of its own (no conv2d input exists to pass, and the bias is added
# per output channel).
def conv_transpose2d_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] weight, bias,
                             floating[:, :, :, ::1] out, object geometry, Py_ssize_t block_rows,
                             floating[:, ::1] workspace, int num_threads, bint channels_last=False):
    """out (N, Cout, Hout, Wout) = col2im(W.T @ x) + bias for x (N, Cin, Hin, Win), weight
    (Cin, Cout/groups*kh*kw); ``geometry`` is conv2d's from out to x (Ho, Wo = Hin, Win).

    ``channels_last``: x is (N, Hin, Win, Cin), out (N, Hout, Wout, Cout) and the weight
    (Cin, kh*kw*Cout/groups) (see the channels-last section).  ``block_rows`` and the
    workspace come from ``plan`` (its backward size) or ``plan_channels_last``."""
    cdef Py_ssize_t N = out.shape[0], n, t, i, o, pixels
    cdef Py_ssize_t C = out.shape[3] if channels_last else out.shape[1]
    cdef Py_ssize_t H = out.shape[1] if channels_last else out.shape[2]
    cdef Py_ssize_t W = out.shape[2] if channels_last else out.shape[3]
    cdef Geometry g = _geometry(C, H, W, weight.shape[0], geometry, block_rows)
    cdef Py_ssize_t per_thread = _cl_workspace(&g, True) if channels_last else _workspace_elements(&g, True)
    cdef tuple x_shape = (N, g.Ho, g.Wo, g.O) if channels_last else (N, g.O, g.Ho, g.Wo)
    cdef const floating* bias_ptr = NULL
    cdef floating* op
    num_threads = max(num_threads, 1)
    if _dims(x) != x_shape or weight.shape[1] != g.K_group:
        raise ValueError(f"conv_transpose2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"out {_dims(out)} do not match geometry {geometry}")
    bias_ptr = _bias_pointer(bias, g.C, <floating*>NULL, "conv_transpose2d")
    cdef Py_ssize_t in_image = g.O * g.Ho * g.Wo, out_image = g.C * g.H * g.W
    if N == 0 or out_image == 0:
        return
    op = &out[0, 0, 0, 0]
    if g.O == 0 or g.Ho * g.Wo == 0 or g.K_group == 0:  # no products: only the bias
        for n in range(N):
            for i in range(out_image):
                o = i % g.C if channels_last else i // (g.H * g.W)
                op[n * out_image + i] = bias_ptr[o] if bias_ptr != NULL else 0
        return
    _check_workspace(workspace, num_threads, per_thread)
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* wp = &weight[0, 0]
    cdef bint weight_finite = _all_finite(wp, weight.shape[0] * weight.shape[1])
    cdef floating* wsp = &workspace[0, 0]
    pixels = g.H * g.W
    for n in prange(N, nogil=True, schedule="static", num_threads=num_threads):
        t = threadid()
        if channels_last:
            _cl_backward_image(NULL, wp, xp + n * in_image, op + n * out_image, NULL, NULL, False,
                               wsp + t * per_thread, &g)
        else:
            _backward_images(NULL, 1, wp, weight_finite, xp + n * in_image, op + n * out_image,
                             NULL, NULL, False, wsp + t * per_thread, &g)
        if bias_ptr != NULL:
            _add_bias(op + n * out_image, bias_ptr, g.C, pixels, channels_last)


cdef void _add_bias(floating* image, const floating* bias, Py_ssize_t C, Py_ssize_t pixels,
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


# ================================================================ channels last (NHWC)
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
cdef Py_ssize_t _cl_workspace(const Geometry* g, bint backward) noexcept nogil:
    """forward: cols; backward: cols | grad_cols | ones."""
    cdef Py_ssize_t width = g.block_rows * g.Wo, taps = g.C * g.kh * g.kw
    if backward:
        return 2 * taps * width + width
    return taps * width


def plan_channels_last(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
                       Py_ssize_t block_elements):
    """As ``plan``, for the channels-last kernels."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    cdef Py_ssize_t taps = C * g.kh * g.kw, rows = g.Ho
    while rows > 1 and taps * rows * g.Wo > block_elements:
        rows = (rows + 1) // 2
    g.block_rows = max(rows, 1)
    return g.block_rows, _cl_workspace(&g, False), _cl_workspace(&g, True)


cdef void _cl_taps(floating* cols, floating* image, const Geometry* g, Py_ssize_t oh0,
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


cdef void _cl_runs(floating* cols, floating* image, const Geometry* g, Py_ssize_t oh0,
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


cdef void _cl_forward_image(const floating* image, const floating* weight, const floating* bias,
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


cdef void _cl_backward_image(const floating* image, const floating* weight, const floating* grad,
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


def conv2d_forward_channels_last(const floating[:, :, :, ::1] x, const floating[:, ::1] weight, bias,
                                 floating[:, :, :, ::1] out, object geometry, Py_ssize_t block_rows,
                                 floating[:, ::1] workspace, int num_threads):
    """out (N, Ho, Wo, O) = conv(x (N, H, W, C), weight (O, kh*kw*C/groups)) + bias;
    ``block_rows`` and the workspace (forward size) from ``plan_channels_last``."""
    cdef Py_ssize_t N = x.shape[0], n, t
    cdef Geometry g = _geometry(x.shape[3], x.shape[1], x.shape[2], weight.shape[0], geometry,
                                block_rows)
    cdef Py_ssize_t per_thread = _cl_workspace(&g, False)
    cdef const floating* bias_ptr = NULL
    num_threads = max(num_threads, 1)
    if _dims(out) != (N, g.Ho, g.Wo, g.O) or weight.shape[1] != g.K_group:
        raise ValueError(f"conv2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"out {_dims(out)} do not match geometry {geometry}")
    bias_ptr = _bias_pointer(bias, g.O, <floating*>NULL, "conv2d")
    if N == 0 or g.O == 0 or g.Ho * g.Wo == 0:
        return
    _check_workspace(workspace, num_threads, per_thread)
    cdef const floating* xp = &x[0, 0, 0, 0] if x.size else NULL
    cdef const floating* wp = &weight[0, 0] if weight.size else NULL
    cdef floating* op = &out[0, 0, 0, 0]
    cdef floating* wsp = &workspace[0, 0] if workspace.size else NULL
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
    cdef Py_ssize_t N = x.shape[0], s, n, t, S = max(x.shape[0], 1)
    cdef Geometry g = _geometry(x.shape[3], x.shape[1], x.shape[2], weight.shape[0], geometry,
                                block_rows)
    cdef Py_ssize_t per_thread = _cl_workspace(&g, True)
    cdef floating[:, ::1] bslots
    cdef floating* gxp = NULL
    cdef floating* slotp = NULL
    cdef floating* bslotp = NULL
    num_threads = max(num_threads, 1)
    if _dims(grad) != (N, g.Ho, g.Wo, g.O) or weight.shape[1] != g.K_group:
        raise ValueError(f"conv2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"grad {_dims(grad)} do not match geometry {geometry}")
    S = _backward_buffers(x, grad_x, weight_slots, bias_slots, (g.groups, g.O_group, g.K_group),
                          g.O, N)
    gxp = _first(grad_x, <floating*>NULL, "grad_x")
    slotp = _first(weight_slots, <floating*>NULL, "weight_slots")
    bslotp = _first(bias_slots, <floating*>NULL, "bias_slots")
    cdef Py_ssize_t L = g.Ho * g.Wo
    if N == 0 or g.O == 0 or L == 0 or g.K_group == 0:
        if gxp != NULL:
            grad_x[...] = 0
        if slotp != NULL:
            weight_slots[...] = 0
        if bslotp != NULL and N and L:  # no input channels: the bias still has a gradient
            bslots = bias_slots
            for n in range(N):
                for s in range(L):
                    for t in range(g.O):
                        bslots[n % S, t] += grad[n, s // g.Wo, s % g.Wo, t]
        return
    _check_workspace(workspace, num_threads, per_thread)
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* wp = &weight[0, 0]
    cdef const floating* gp = &grad[0, 0, 0, 0]
    cdef floating* wsp = &workspace[0, 0]
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
