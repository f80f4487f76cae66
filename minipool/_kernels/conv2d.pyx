"""2-d convolution (NCHW), float32 and float64: im2col + GEMM, an image (or a few) at a time,
register tiles straight from the planes, a direct kernel, or Winograd F(2x2, 3x3)/(5x5).

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
results, slowly.  ``im2col`` / ``col2im`` over a batch are for tests and benchmarks.

Beside BLAS the forward has four engines, each picked where it measured faster
(conv_picks.pxd, with the numbers) and each output one fixed chain of fma, so the bits
depend on the shape alone (not on the thread count, nor on the AVX2, AVX-512 or
baseline build); each header says how its loops go:
  tiles (``conv2d_tiles.h``): 6 output channels by 2 vectors of output pixels in
      registers, from the padded planes or the column block; 8x8-64x64 planes.
  direct (``conv2d_direct.h``, conv_direct.pxd): output channels in the vector lanes,
      the taps that fall in the padding skipped: the tiles' bits for a finite weight;
      small planes, rows that are not whole vectors (LeNet's conv2), 5x5 on 16x16; also
      NHWC forwards (conv2d_channels_last.pyx).  Its row tiles (AVX-512F+VL:
      ``use_cpu_avx512``, conv2d_direct_avx512.h; AVX2: ``use_direct_rows_avx2``,
      conv2d_direct_rows.h) run stride-1 3x3/5x5 "same" layers a part of a row at a time.
  first layers (``conv2d_first.h``, conv_first.pxd): 1-3 input channels, every step
      unrolled, the bias fused: the tiles' bits.
  winograd (``conv2d_winograd.h``, conv_winograd.pxd): float32 3x3 stride 1 as F(2x2,
      3x3), 16 products per (input channel, output channel, 2x2 tile) instead of 36; its
      own rounding (docs/differences.md), inf or NaN anywhere sends the call to the
      others; 32+ channels each way; ``use_winograd(0)``: off.  5x5 as F(2x2, 5x5) only
      on ``use_winograd_5x5(1)``.
minipool/ops/conv.py also runs a stride-1 input gradient as a forward on these
(``_input_grad_on_tiles``).  The weight gradient has tiles of its own
(``conv2d_wgrad.h``, section "weight gradient on tiles": 3 output channels by 4 taps,
sums over pixels in lanes, from one image's planes or the column block); where 6+
input channels meet small planes and large (LeNet's conv2 too),
``conv2d_weight_grad_outer`` (conv2d_weight_grad.pyx, ``conv2d_wgrad_outer.h``)
computes the whole weight gradient first: 6 input by 16 output channels in
registers, summed over the batch, padding taps skipped, no slots.

Files.  This module holds the NCHW entry points, the engines' switches and the
load-tolerant team's test hooks; what they run is in .pxd files of inline functions
compiled into each module that cimports them (as pool_windows.pxd for pooling):
conv_gemm.pxd (``_gemm``; the BLAS addresses live in conv_gemm.pyx), conv_columns.pxd
(``Geometry``, column builders, argument checks), conv_nchw.pxd (the passes over
images below, their workspace and chunks), conv_picks.pxd, conv_direct.pxd,
conv_first.pxd, conv_winograd.pxd.  The transposed convolution's forward is
conv_transpose2d.pyx, the channels-last kernels conv2d_channels_last.pyx; their entry
points and ``use_blas`` are re-exported here, so callers import this one module.

Paths.  Each entry point decides its path once per call, from the plan
(``plan_batch``: block rows, images per GEMM) and the shape; each thread then
runs whole chunks of it (the engines' launches share the weight's packing or
transform out to the first chunks, so a call is one parallel region):

    entry point / case                     per chunk
    conv2d_forward, winograd (_on_winograd) conv_winograd.pxd: unclaimed pieces of the
                                           weight's transform, then images: input
                                           transform, 16/36 products, output transform
                                           (+ bias); all again below at a non-finite value
    conv2d_forward, direct (_on_direct)    conv_direct.pxd: unclaimed weight pieces, then
                                           _forward_direct on a few images by one range
    conv2d_forward, first layers           conv_first.pxd: _pad_planes, conv2d_first.h's
                                           tiles straight into the output, bias fused
    conv2d_forward, tiles (_on_tiles)      _forward_rows (stride 1, whole 8-pixel rows) or
                                           _forward_images: _pad_planes / _im2col_block /
                                           _shifted_cols, then _tile_product
    conv2d_forward, BLAS                   _forward_images: _shifted_cols (stride 1
                                           within the output) or _im2col_block, _gemm
                                           into the output or the wide block of several
                                           images, rows copied out with the bias
    conv2d_backward                        _backward_images: bias _gemm (G @ ones);
                                           weight from _shifted_cols / _im2col_block by
                                           _gemm or _wgrad_product (wgrad tiles); input
                                           _gemm (W.T @ G), then _shifted_col2im (while
                                           the dropped columns' values are finite) or
                                           _col2im_block
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdint cimport uint64_t
from posix.unistd cimport usleep
from libc.stdlib cimport free, malloc

import numpy as np

from minipool._kernels._load_team cimport (mp_team_helpers, mp_team_run,
                                           mp_team_set_helper_delay_us, mp_team_set_pull_after_ns,
                                           mp_team_take_stats)
from minipool._kernels.conv_columns cimport (Geometry, _all_finite,
                                             _backward_arrays, _block_width, _col2im_block,
                                             _dims, _forward_arrays, _geometry, _im2col_block)
from minipool._kernels.conv_direct cimport (DIRECT_MAX_TAPS, DirectJob, _direct_tables,
                                            _chunk_images, _forward_on_direct, _split_direct,
                                            _whole_chunk, mp_direct_avx512_runs,
                                            mp_direct_rows_run, mp_pick_conv_direct,
                                            mp_use_direct_avx512, mp_use_direct_rows_avx2)
from minipool._kernels.conv_first cimport _first_fits, _forward_on_first
from minipool._kernels.conv_nchw cimport (TILE_ROWS, ImagesJob, _backward_chunk,
                                          _forward_chunk, _forward_workspace, _pack_weight,
                                          _packed_group, _run_chunks, _workspace_elements,
                                          mp_pick_conv_tiles, mp_pick_wgrad_tiles)
from minipool._kernels.conv_picks cimport (_direct_win, _direct_win_channels_last, _first_win,
                                           _first_win_channels_last,
                                           _tiles_win, _wgrad_tiles_win, _winograd5_win,
                                           _winograd_win)
from minipool._kernels.conv_winograd cimport (_forward_on_winograd, _winograd_fits,
                                              mp_pick_conv_winograd)

# The other families and the BLAS switch, re-exported: callers use this one module.
from minipool._kernels.conv2d_channels_last import (conv2d_backward_channels_last,  # noqa: F401
                                                    conv2d_direct_channels_last,
                                                    conv2d_first_channels_last,
                                                    conv2d_forward_channels_last,
                                                    plan_channels_last, use_cpu_avx2_direct,
                                                    use_cpu_avx512_direct)
from minipool._kernels.conv_gemm import blas_in_use, use_blas  # noqa: F401
from minipool._kernels.conv_transpose2d import conv_transpose2d_forward  # noqa: F401
from minipool._kernels.conv2d_weight_grad import (add_weight_slots, conv2d_weight_grad_outer,  # noqa: F401
                                                  use_wgrad_outer, uses_wgrad_outer)
from minipool._kernels.conv2d_weight_grad import _follow_wgrad_tiles, use_cpu_avx2_outer


# ---------------------------------------------------------------- tiles
# ``_tile_mode`` 0: never; 1: where ``_tiles_win`` says; 2: always (tests).
cdef int _tile_mode = 1


def _engine_mode(str name, int mode):
    """An engine switch's mode (use_tiles, use_direct, use_wgrad_tiles): 0 never, 1 where
    it measured faster, 2 always (tests)."""
    if mode not in (0, 1, 2):
        raise ValueError(f"{name}: mode must be 0, 1 or 2, got {mode}")
    return mode


def use_tiles(int mode):
    """0: BLAS for every forward product; 1: tiles where they measured faster; 2: tiles
    for every forward product (tests).  Returns the previous mode."""
    global _tile_mode
    previous, _tile_mode = _tile_mode, _engine_mode("use_tiles", mode)
    return previous


cdef bint _avx2_tiles = False  # mode 1 needs them: the baseline build calls libc fma() per lane


def use_cpu_avx2(bint allow=True):
    """Run the tiles on AVX2 registers when ``allow`` and the CPU has AVX2 (the
    default), else the baseline x86-64 build: the same bits either way.  Returns
    whether AVX2 is now in use.  Without AVX2, mode 1 keeps every product on BLAS
    (the baseline tiles are for tests and exotic CPUs, and slow)."""
    global _avx2_tiles
    _avx2_tiles = mp_pick_conv_tiles(allow) == 1
    mp_pick_conv_direct(allow)  # the direct kernel (section "direct") follows the same choice
    use_cpu_avx2_direct(allow)  # its channels-last copy too
    mp_pick_wgrad_tiles(allow)  # and so do the weight-gradient tiles
    mp_pick_conv_winograd(allow)  # and the Winograd engine's transforms (section "winograd")
    use_cpu_avx2_outer(allow)  # and the weight gradient's outer products (their own module)
    return _avx2_tiles


use_cpu_avx2(True)


def use_cpu_avx512(int mode=1):
    """The direct kernel's float32 tiles (section "direct") on AVX-512 registers, when the
    AVX2 build is in use and the CPU has AVX-512F+VL: 0 never (AVX2), 1 for the shapes
    where they measured faster (the default), 2 for every shape (tests).  The same bits
    either way (conv2d_direct_avx512.h).  Returns whether the AVX-512 build is now picked;
    ``use_cpu_avx2`` keeps this mode."""
    mode = _engine_mode("use_cpu_avx512", mode)
    use_cpu_avx512_direct(mode)  # the channels-last copy too
    return mp_use_direct_avx512(mode) == 1


def direct_avx512_runs(Py_ssize_t O_group, Py_ssize_t taps, Py_ssize_t pixels):
    """Whether a float32 direct forward with ``O_group`` output channels per group, ``taps``
    kernel taps and ``pixels`` output pixels runs on the AVX-512 tiles now (tests)."""
    return mp_direct_avx512_runs(O_group, taps, pixels) == 1


def use_direct_rows_avx2(int mode=1):
    """The direct kernel's AVX2 row tiles (conv2d_direct_rows.h, float32, the same bits): 0
    never, 1 where they measured faster, 2 always (tests).  Returns whether now picked."""
    return mp_use_direct_rows_avx2(_engine_mode("use_direct_rows_avx2", mode)) == 1


def direct_rows_run(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
                    bint avx2=False):
    """Whether a float32 NCHW direct forward of this shape runs on the AVX-512 row tiles
    (``avx2``: the AVX2 ones) now (conv2d_direct_avx512.h, conv2d_direct_rows.h; tests)."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    return mp_direct_rows_run(g.C // g.groups, g.O_group, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw,
                              g.dh, g.dw, g.H, g.W, g.Ho, g.Wo) == (2 if avx2 else 1)


def uses_tiles(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
               Py_ssize_t block_rows, Py_ssize_t images, bint float64=False):
    """Whether ``conv2d_forward`` runs this shape's products on the tiles (with the
    current ``use_tiles`` mode)."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, block_rows)
    _set_images(&g, images)
    return _on_tiles(&g, float64)


# The largest weight forward_uses_blas scans for inf and NaN (about 13 us of scanning: a
# pin of OpenBLAS costs 15-20 us).
cdef enum:
    FINITE_SCAN_LIMIT = 1 << 17


def forward_uses_blas(const floating[:, ::1] weight, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                      object geometry, Py_ssize_t block_rows, Py_ssize_t images):
    """Whether ``conv2d_forward`` with this weight (O, C/groups*kh*kw) may call BLAS: not
    when its last resort is the first-layer kernel or the tiles, nor on the direct kernel
    with a finite weight (it then computes the call, also after the Winograd engine
    meets inf or NaN).  The caller then skips pinning OpenBLAS to one thread (a set and
    a reset: 15-20 us a call when it runs on 2).  A weight of more than
    FINITE_SCAN_LIMIT values is not scanned for that: the answer is "may", since the
    scan would cost more than the pin it saves (256->256 3x3: about 60 us)."""
    cdef Geometry g = _geometry(C, H, W, weight.shape[0], geometry, block_rows)
    cdef Py_ssize_t size = weight.shape[0] * weight.shape[1]
    _set_images(&g, images)
    if (floating is float and _on_first(&g)) or _on_tiles(&g, floating is double):
        return False
    return not (_on_direct(&g, floating is double) and 0 < size <= FINITE_SCAN_LIMIT
                and _all_finite(&weight[0, 0], size))


cdef bint _on_tiles(const Geometry* g, bint float64) noexcept nogil:
    """Mode 1 keeps float64 on BLAS (the tiles were measured in float32 only), and
    everything on BLAS without the AVX2 build."""
    return g.K_group > 0 and (_tile_mode == 2 or (_tile_mode == 1 and not float64
                                                  and _avx2_tiles and _tiles_win(g)))


# ---------------------------------------------------------------- direct
# The tiles' bits for a finite weight, so only such weights take it.  ``_direct_mode``
# 0: never; 1: where ``_direct_win`` says (unless ``use_tiles(0)``); 2: always (tests).
cdef int _direct_mode = 1


def use_direct(int mode):
    """0: never the direct kernel; 1: where it measured faster (the default); 2: for
    every forward with a finite weight and at most 64 taps (tests).  Returns the
    previous mode."""
    global _direct_mode
    previous, _direct_mode = _direct_mode, _engine_mode("use_direct", mode)
    return previous


def forward_engines_automatic():
    """Whether ``use_tiles`` and ``use_direct`` are both in mode 1 (where they measured
    faster): minipool/ops/conv.py then also picks the input gradient's path by measure."""
    return _tile_mode == 1 and _direct_mode == 1


cdef bint _on_direct(const Geometry* g, bint float64) noexcept nogil:
    """Mode 1: float32 with the AVX2 build only (as ``_on_tiles``).  The caller also
    checks that the weight is finite."""
    return (g.K_group > 0 and g.kh * g.kw <= DIRECT_MAX_TAPS and
            (_direct_mode == 2 or (_direct_mode == 1 and _tile_mode != 0 and not float64
                                   and _avx2_tiles and _direct_win(g))))


def direct_by_planes(Py_ssize_t Ho, Py_ssize_t Wo):
    """Whether ``conv2d_direct_channels_last`` should copy each call's images as NCHW
    planes first: measured as fast or faster up to 100-pixel outputs (4x4 1.06-1.46x, 8x8
    1.0-1.06x, LeNet's conv2 1.13x), mixed on 16x16 (0.92-1.03x) and up to 0.54x on 32x32."""
    return Ho * Wo <= 128


def uses_direct_channels_last(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O,
                              object geometry, bint float64=False):
    """Whether a channels-last forward of this shape runs on the direct kernel
    (``conv2d_direct_channels_last``; the caller also checks the weight is finite)."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    return (g.K_group > 0 and g.kh * g.kw <= DIRECT_MAX_TAPS and
            (_direct_mode == 2 or (_direct_mode == 1 and _tile_mode != 0 and not float64
                                   and _avx2_tiles and _direct_win_channels_last(&g))))


cdef object _split_for_tests(DirectJob* job, Geometry* g, Py_ssize_t N, bint float64,
                             int threads, str name):
    """``job`` split as ``_forward_on_direct`` splits it; returns the pixel tables ``g``
    points into (the caller keeps them alive while it reads the job)."""
    cdef Py_ssize_t taps = g.kh * g.kw, L = g.Ho * g.Wo
    if taps > DIRECT_MAX_TAPS or L == 0 or g.O_group == 0 or N < 1:
        raise ValueError(f"{name}: no direct forward for {N} images of {g.C}x{g.H}x{g.W} "
                         f"to {g.O} channels")
    cdef Py_ssize_t[::1] tables = np.empty(taps + 3 * L, np.intp)  # as _forward_on_direct's
    _direct_tables(g, &tables[0], &tables[taps], <uint64_t*>&tables[taps + 2 * L], False)
    job.g, job.N, job.float64, job.threads = g, N, float64, threads
    _split_direct(job)
    return tables


def direct_split(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O,
                 object geometry, bint float64=False):
    """(images per chunk, output-channel ranges, channels per range, range-major) of a
    forward of N images on the direct kernel (conv_direct.pxd, "the launch"); for
    tests and benchmarks."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    cdef DirectJob job
    tables = _split_for_tests(&job, &g, N, float64, 1, "direct_split")
    return job.count, job.ranges, job.range_channels, bool(job.range_major)


def direct_chunks(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O,
                  object geometry, bint float64=False, int threads=1):
    """The direct forward's launch chunks in claim order on ``threads`` threads, each
    (first image, images, first channel, end channel) within a group, and its packing
    pieces, each (first channel, end channel) (conv_direct.pxd, "the launch"); for tests."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    cdef DirectJob job
    cdef Py_ssize_t c, whole, o_begin, o_end, count
    tables = _split_for_tests(&job, &g, N, float64, threads, "direct_chunks")
    chunks = []
    for c in range(job.chunks):
        whole = _whole_chunk(&job, c, &o_begin, &o_end)
        first = _chunk_images(&job, c, whole, &count)
        chunks.append((first, count, o_begin, o_end))
    pieces = [(p * job.piece_channels, min(g.O_group, (p + 1) * job.piece_channels))
              for p in range(job.pack_pieces)]
    return chunks, pieces


def uses_direct(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
                bint float64=False):
    """Whether ``conv2d_forward`` runs this shape on the direct kernel (with the current
    modes; a weight with inf or NaN never does)."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    return _on_direct(&g, float64)


# ---------------------------------------------------------------- first layers
# ``_first_mode`` 0: never; 1: where ``_first_win`` says; 2: wherever it fits (tests).
cdef int _first_mode = 1


def use_first(int mode):
    """0: never the first-layer kernel; 1: where it measured faster (the default); 2:
    for every float32 forward it fits (tests).  Returns the previous mode."""
    global _first_mode
    previous, _first_mode = _first_mode, _engine_mode("use_first", mode)
    return previous


cdef bint _on_first(const Geometry* g) noexcept nogil:
    """Float32 on the AVX2 build only (mode 1 also needs ``use_tiles`` on)."""
    return _avx2_tiles and _first_fits(g) and (
        _first_mode == 2 or (_first_mode == 1 and _tile_mode != 0 and _first_win(g)))


def uses_first(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
               bint float64=False, bint channels_last=False):
    """Whether ``conv2d_forward`` runs this shape on the first-layer kernel (with the
    current modes); ``channels_last``: whether ``conv2d_first_channels_last`` should."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    return not float64 and _on_first(&g) and (
        not channels_last or (C == 1 and (_first_mode == 2 or _first_win_channels_last(&g))))


# ---------------------------------------------------------------- winograd
# conv_winograd.pxd's engine (see the module docstring).  ``_winograd_mode`` (3x3),
# ``_winograd5_mode`` (5x5) 0: never; 1: where ``_winograd_win`` (``_winograd5_win``) says,
# while the other forward engines are automatic too; 2: every shape it can run (tests).
cdef int _winograd_mode = 1, _winograd5_mode = 0


def use_winograd(int mode):
    """0: never the Winograd engine (the direct products' rounding everywhere); 1: where
    it measured faster (the default); 2: every float32 3x3 stride-1 forward it can run
    (tests).  Returns the previous mode."""
    global _winograd_mode
    previous, _winograd_mode = _winograd_mode, _engine_mode("use_winograd", mode)
    return previous


def use_winograd_5x5(int mode):
    """Winograd for float32 5x5 stride 1, an opt-in: 0 never (the default: 3-8x the direct
    engine's typical rounding error, docs/differences.md), 1 where it measured faster, 2
    always (tests); ``use_winograd(0)`` turns it off too.  Returns the previous mode."""
    global _winograd5_mode
    previous, _winograd5_mode = _winograd5_mode, _engine_mode("use_winograd_5x5", mode)
    return previous


cdef bint _on_winograd(const Geometry* g, bint float64) noexcept nogil:
    """Mode 1 only while the tiles and the direct kernel are automatic too."""
    cdef int mode = _winograd5_mode if g.kh == 5 else _winograd_mode
    return (not float64 and _winograd_fits(g) and _winograd_mode != 0 and (mode == 2 or (
        mode == 1 and _tile_mode == 1 and _direct_mode == 1 and _avx2_tiles
        and (_winograd5_win(g) if g.kh == 5 else _winograd_win(g)))))


def uses_winograd(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, object geometry,
                  bint float64=False):
    """Whether ``conv2d_forward`` tries this shape on the Winograd engine (with the
    current mode; a weight, input or output with inf or NaN then falls back)."""
    cdef Geometry g = _geometry(C, H, W, O, geometry, 1)
    return _on_winograd(&g, float64)


# ---------------------------------------------------------------- weight gradient on tiles
# The product dW.T (K, O) (+)= X (K, n) @ G.T on conv2d_wgrad.h's tiles
# (conv_nchw.pxd's ``_wgrad_product``) instead of BLAS, every sum in an order fixed by
# the shape.  ``_wgrad_mode`` 0: never; 1: where ``_wgrad_tiles_win`` says; 2: always.
cdef int _wgrad_mode = 1


def use_wgrad_tiles(int mode):
    """0: BLAS for every weight-gradient product; 1: tiles where they measured faster;
    2: tiles for every one (tests).  Returns the previous mode."""
    global _wgrad_mode
    previous, _wgrad_mode = _wgrad_mode, _engine_mode("use_wgrad_tiles", mode)
    _follow_wgrad_tiles(_wgrad_mode == 1)  # the outer products run only while it is automatic
    return previous


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


# ---------------------------------------------------------------- the load-tolerant team
# The entry points' chunks run on ``_run_chunks`` (conv_nchw.pxd): an OpenMP region
# or load_team.h's team, whose caller does not wait for a thread the OS has
# descheduled.  Its switches and tests:


def load_team_helpers():
    """Helper threads the load-tolerant team has started in this process (for tests)."""
    return mp_team_helpers()


def load_team_stats():
    """(jobs, chunks the helpers ran, seconds in jobs, seconds the caller waited for a
    helper's claimed chunk, times it moved helpers to its core) since the last call
    (diagnostics for benchmarks)."""
    cdef uint64_t stats[5]
    mp_team_take_stats(stats)
    return stats[0], stats[1], stats[2] * 1e-9, stats[3] * 1e-9, stats[4]


def set_load_team_placement(double pull_after, bint keep_off=True):
    """Experiments (load_team.h): how long the team's caller waits for a helper's last
    chunk before it moves the helper onto its own core (negative: never), and whether
    each job keeps the helpers off the caller's core."""
    mp_team_set_pull_after_ns(<long>(pull_after * 1e9), keep_off)


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
    cdef Py_ssize_t N = x.shape[0]
    cdef Geometry g = _geometry(x.shape[1], x.shape[2], x.shape[3], weight.shape[0], geometry,
                                block_rows)
    _set_images(&g, images)
    cdef Py_ssize_t per_thread = _forward_workspace(&g)
    cdef ImagesJob job
    num_threads = max(num_threads, 1)
    if not _forward_arrays(x, weight, bias, out, (N, g.O, g.Ho, g.Wo), workspace, num_threads,
                           per_thread, &g, geometry, &job.arrays):
        return
    cdef const floating* wp = <const floating*>job.arrays.weight
    cdef Py_ssize_t gemms = (N + images - 1) // images
    cdef const floating* packed = NULL
    cdef Py_ssize_t* tap_offset = NULL
    cdef Py_ssize_t ki, kj, taps = g.kh * g.kw, packed_size
    if floating is float:
        if _on_winograd(&g, False) and _forward_on_winograd(  # "winograd" (conv_winograd.pxd)
                &g, <const float*>job.arrays.x, N, <const float*>wp,
                <const float*>job.arrays.bias, <float*>job.arrays.out, num_threads, load_team):
            return  # (False: inf or NaN somewhere: the engines below compute it all again)
    if _on_direct(&g, floating is double) and _forward_on_direct(  # "direct" (conv_direct.pxd)
            &g, <const floating*>job.arrays.x, N, wp, <const floating*>job.arrays.bias,
            <floating*>job.arrays.out, num_threads, load_team, False, False):
        return  # (False: a weight with inf or NaN, which must meet the padding)
    if floating is float:
        if _on_first(&g):  # "first layers" (conv_first.pxd)
            _forward_on_first(&g, <const float*>job.arrays.x, N, wp, <const float*>job.arrays.bias,
                              <float*>job.arrays.out, num_threads, load_team)
            return
    if _on_tiles(&g, floating is double):
        if g.shiftable and g.Wo % 8 == 0:  # rows of whole 8-pixel vectors: see _forward_images
            g.by_rows = g.shifted = True
            g.padded = g.Hs != g.H or g.Ws != g.W
        packed_size = g.groups * _packed_group(g.O_group, g.K_group)
        tap_offset = <Py_ssize_t*>malloc(taps * sizeof(Py_ssize_t) + packed_size * sizeof(floating))
        if tap_offset == NULL:
            raise MemoryError("conv2d kernel: no memory for the packed weight")
        packed = <const floating*>(tap_offset + taps)
        _pack_weight(wp, <floating*>packed, g.groups, g.O_group, g.K_group)
        for ki in range(g.kh):
            for kj in range(g.kw):
                tap_offset[ki * g.kw + kj] = ki * g.dh * g.Ws + kj * g.dw
    job.packed, job.tap_offset = packed, tap_offset
    try:
        _run_chunks(&job, _forward_chunk, gemms, N, images, per_thread, &g, floating is double,
                    num_threads, load_team)
    finally:
        free(tap_offset)


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
    cdef Py_ssize_t N = x.shape[0], n, o, j, S
    cdef Geometry g = _geometry(x.shape[1], x.shape[2], x.shape[3], weight.shape[0], geometry,
                                block_rows)
    _set_images(&g, images)
    cdef Py_ssize_t per_thread = _workspace_elements(&g, True)
    cdef Py_ssize_t gemms = (N + images - 1) // images
    cdef floating[:, ::1] bslots
    cdef ImagesJob job
    num_threads = max(num_threads, 1)
    if not _backward_arrays(x, weight, grad, (N, g.O, g.Ho, g.Wo), grad_x, weight_slots,
                            bias_slots, (g.groups, g.K_group, g.O_group), gemms, workspace,
                            num_threads, per_thread, &g, geometry, &job.arrays):
        if bias_slots is not None:  # no products, but the bias (no input channels at all)
            bslots, S = bias_slots, job.arrays.S
            for n in range(N):
                for o in range(g.O):
                    for j in range(g.Ho * g.Wo):
                        bslots[n % S, o] += grad[n, o, j // g.Wo, j % g.Wo]
        return
    job.weight_finite = _all_finite(<const floating*>job.arrays.weight,
                                    weight.shape[0] * weight.shape[1])
    g.wgrad_tiles = (job.arrays.slots != NULL  # the weight gradient on tiles
                     and _wgrad_on_tiles(&g, floating is double))
    job.gemms, job.slot_size = gemms, g.O * g.K_group
    # Slots, not GEMMs, are shared out: a slot's GEMMs must be added in order.
    _run_chunks(&job, _backward_chunk, min(job.arrays.S, gemms), N, images, per_thread, &g,
                floating is double, num_threads, load_team)


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


