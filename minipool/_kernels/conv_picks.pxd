# Where each conv2d engine runs, decided by the shape alone: every rule comes from an A/B
# measurement (1 thread, CPU time, batch 64), quoted in its docstring.  conv2d.pyx
# combines them with the switches (``use_tiles``, ``use_direct``, ...: the modes) in its
# ``_on_*`` functions; the engines themselves are described there.  Inline functions
# only (see conv_columns.pxd).
from minipool._kernels.conv_columns cimport Geometry
from minipool._kernels.conv_direct cimport mp_direct_rows_run
from minipool._kernels.conv_nchw cimport TILE_ROWS

cdef inline bint _tiles_win(const Geometry* g) noexcept nogil:
    """Where the tiles measured faster than BLAS (1 thread, CPU time, batch 64): straight
    from the planes (stride 1), row by row (rows of whole 8-pixel vectors) or one image
    at a time on rows of 16+ pixels, with 64+ steps per sum or a single panel of output
    channels.  (The sweep's 3x3 and 5x5 layers on 8x8-64x64 planes: 1.2-1.6x; LeNet's
    conv1 1.2x; LeNet's conv2 (rows of 10), 3x3 first layers (27 steps) and 4x4 planes
    stay on BLAS: 0.75-0.95x there; ``_direct_win`` takes LeNet's conv2, 4x4 and 8x8.)"""
    return (g.shiftable and (g.Wo % 8 == 0 or (g.shifted and g.images == 1 and g.Wo >= 16))
            and (g.K_group >= 64 or g.O_group <= TILE_ROWS))


cdef inline bint _direct_win(const Geometry* g) noexcept nogil:
    """Where the direct kernel measured faster than tiles and BLAS (1 thread, CPU time,
    batch 64, float32): 4+ input channels per group on planes of up to 64 output pixels
    (4x4: 1.4x (3x3) and 2.4x (5x5) BLAS; 8x8: 1.1x the tiles), or rows that are not
    whole 8-pixel vectors on up to 256 (LeNet's conv2: 1.4x BLAS), or 5x5 (25+ taps)
    at stride 1 with 8+ input and 16+ output channels per group on up to 256 (16x16
    padded by 2, 14-23% of the taps in the padding: 1.04-1.17x the tiles for 8-64
    channels, also as the input gradient of 16->32 5x5, ``_input_grad_on_tiles``; 4
    input channels 0.87-0.9x, 16->8 0.71x).  First layers (1-3 channels, 9-75 products
    per output: the scalar stores of the transposed tile cost too much), 3x3 on 16x16
    (0.96-0.98x) and 32x32 planes and up stay on the tiles or BLAS (0.5-1.0x there).
    Where its AVX-512 row tiles run (a CPU with AVX-512F+VL: stride-1 3x3/5x5 "same" on
    rows of 4-64 pixels, 9+ output channels per group) it takes from the tiles (the same
    bits; BLAS keeps its shapes and its own rounding) the planes of up to 32x32 with 4+
    input channels and 64x64 with 8+, whatever the kernel (1 thread, CPU time, batch 64,
    min of 7-11 interleaved, ``use_winograd(0)``, against the tiles):
    16x16 3x3 16->16 1.27x, 16->32 1.17x, 32->64 1.16x, 64->64 1.15x, 8->16 1.30x, 5x5
    4->16 and 4->32 1.21-1.23x; 32x32 3x3 16->16 1.14-1.16x, 32->32 1.14x, 8->16 1.09x,
    5x5 16->16 1.15x, 4->16 1.05x; 64x64 3x3 8->16 1.00-1.11x, 16->16 1.09x, 5x5
    16->16 1.14x, 8->32 1.37x, but 4->16 0.98-1.03x.  On AVX2 (Zen 2) it takes the shapes
    where its AVX2 row tiles run (conv2d_direct_rows.h's ``mp_direct_rows_avx2_wins``, with
    the numbers: 5x5 on 16x16 with 4+ input channels, 32x32 with 8+; 1.03-1.11x the
    pixel-group tiles or conv2d_tiles.h, 1 thread, CPU time, batch 64, min of 11-15).
    Re-measured on AVX2 (Zen 2) once the pixel-group tiles read 5-tap runs (conv2d_direct.h,
    ``mp_direct_tap_runs``; 1 thread, CPU time, batch 64, min of 15, one process): against
    the row tiles on 16x16, 8->16 1.02x, 16->16 1.00x, 16->32 0.98x, 32->32 0.99x, 32->64
    and 64->64 1.00x (2 threads, wall, min of 21: 0.97-1.01x): no margin, the row tiles
    keep 16x16.  Three input channels with a 5x5 kernel on planes up to 32 wide go to the
    AVX-512 row tiles too, ahead of the first-layer kernel (the same bits; Zen 4, forward,
    median of 31 in turns, 1 / 2 threads: 3->16 on 16x16 1.16x / 1.23x, on 24x24 1.15x /
    1.08x, on 32x32 1.06-1.07x / 1.03-1.07x, 3->32 on 16x16 1.19x / 1.30x, on 32x32 1.10x
    / 1.08x, 3->64 1.00x / 1.13x); 1 channel (0.61-0.75x), 2 (1.03x / 0.99x), 3x3 (0.96-0.99x)
    and 64x64 planes (1.00-1.02x) stay there."""
    if (g.C // g.groups == 3 and g.kh * g.kw >= 25 and g.W <= 32
            and mp_direct_rows_run(3, g.O_group, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                                   g.H, g.W, g.Ho, g.Wo) == 1):
        return True
    return g.C // g.groups >= 4 and (
        g.Ho * g.Wo <= 64 or (g.Ho * g.Wo <= 256 and (
            g.Wo % 8 != 0 or (g.kh * g.kw >= 25 and g.sh == 1 and g.sw == 1
                              and g.C // g.groups >= 8 and g.O_group >= 16)))
        or (_tiles_win(g) and (g.W <= 32 or g.C // g.groups >= 8)
            and mp_direct_rows_run(g.C // g.groups, g.O_group, g.kh, g.kw, g.sh, g.sw, g.ph,
                                   g.pw, g.dh, g.dw, g.H, g.W, g.Ho, g.Wo) == 1)
        or mp_direct_rows_run(g.C // g.groups, g.O_group, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw,
                              g.dh, g.dw, g.H, g.W, g.Ho, g.Wo) == 2)


cdef inline bint _direct_win_channels_last(const Geometry* g) noexcept nogil:
    """Where the direct kernel on NHWC measured faster than the NHWC im2col + BLAS path
    (1 thread, CPU time, batch 64, float32, min of 5): every layer tried with 3+ input
    channels per group, 3x3 and 5x5 on 4x4-32x32 planes (1.3-3.0x; LeNet's conv2 2.2x).
    One input channel (1 thread, CPU time, batch 64, min of 3x15, 3x3 and 5x5 "same" on
    28x28 and 64x64): 16 or 32 output channels at stride 1 on rows of 16+ pixels: 1.0-1.2x
    the first-layer kernel, 1.6-1.9x the column block; other channel counts take the
    first-layer kernel (``_first_win_channels_last``), the rest keeps the NCHW column
    block (conv2d_channels_last.pyx)."""
    return g.C // g.groups >= 3 or (g.C == 1 and g.groups == 1 and g.O % 16 == 0
                                    and g.sh == 1 and g.sw == 1 and g.Wo >= 16)


cdef inline bint _first_win_channels_last(const Geometry* g) noexcept nogil:
    """Where an NHWC forward with one input channel (the same memory as NCHW) measured
    faster on the first-layer kernel, its output staged per image and written pixel by
    pixel, than on the direct kernel and the column block (1 thread, CPU time, batch 64,
    min of 3x15): wherever ``_first_win`` takes the NCHW shape, but for 16 and 32 output
    channels (0.82-0.96x the direct kernel there).  4-12 and 24 channels on 28x28 and
    64x64, 3x3 and 5x5: 1.1-4.5x the direct kernel, 1.4-5.4x the column block; LeNet's
    conv1 (6 channels, 5x5 on 32x32) 2.6x the direct kernel, 3.3x the column block."""
    return g.O % 16 != 0


cdef inline bint _first_win(const Geometry* g) noexcept nogil:
    """Where the first-layer kernel measured faster than the tiles and BLAS (1 thread,
    CPU time, batch 64, min of 5, 1 and 3 channels, 3x3 p0/p1 and 5x5 p2 on 8x8-64x64
    planes, 6-64 output channels): rows of 16+ output pixels (a whole tile), with one
    input channel or 16+ output channels: 1.1-2.1x (3->32 3x3 on 32x32 1.5x, 1->16 on
    28x28 1.3x, 3->16 5x5 on 32x32 1.1x, LeNet's conv1 1.3x); rows under 16 pixels
    (tiles stored under a mask) 0.6-0.9x, 3 channels to 6 0.83-1.2x."""
    return g.Wo >= 16 and (g.C == 1 or g.O >= 16)


cdef inline bint _winograd_win(const Geometry* g) noexcept nogil:
    """Where the engine measured faster than the one picked before it (1 thread, CPU
    time, batch 64, min of 5 interleaved): 32+ channels each way and 2^18+ products
    of a channel pair by an output pixel (32->32 on 32x32 1.34x, 64->64 on 16x16 1.5x,
    64->64 and 128->128 on 8x8 1.2x and 1.5x, 128->256 and 256->256 on 4x4 1.2x).
    Fewer (32->32 on 8x8 0.98x, 64->64 on 4x4 0.96x) or 16 channels (16->16 on 32x32
    0.9x) stay put: the transforms cost more than the products saved."""
    return (g.C >= 32 and g.O >= 32 and g.Ho * g.Wo <= 64 * 64
            and g.C * g.O * g.Ho * g.Wo >= 1 << 18)


cdef inline bint _winograd5_win(const Geometry* g) noexcept nogil:
    """5x5, once opted in (``use_winograd_5x5(1)``): where F(2x2, 5x5) measured faster
    than the engine picked before it (1 thread, CPU time, batch 64, padding 2, min of 7
    interleaved): 32+ channels each way on 8x8-64x64 planes (8x8: 32->32 1.1x,
    32->64 1.1-1.3x, 64->64 1.3x; 16x16: 1.2-1.6x; 32x32: 1.4-2.0x), or 512+ channel
    pairs on 32x32-64x64 (16->32, 32->16: 1.2x).  4x4 planes (0.5-0.9x), 16->32 on 16x16
    (1.03-1.07x: no margin) and 16 channels or fewer each way (0.6-1.0x) stay put."""
    return g.Ho * g.Wo <= 64 * 64 and (
        (g.C >= 32 and g.O >= 32 and g.Ho * g.Wo >= 64)
        or (g.C * g.O >= 512 and g.Ho * g.Wo >= 32 * 32))


cdef inline bint _wgrad_tiles_win(const Geometry* g) noexcept nogil:
    """Where the tiles measured faster than BLAS (1 thread, CPU time, batch 64, the
    weight gradient alone): one image at a time straight from its planes (first layers
    1.0-1.7x, LeNet's conv1 1.3x, 32x32 and 16x16 planes even to 1.06x).  Several
    small images per product (column blocks: LeNet's conv2, 8x8 and 4x4 planes) stay
    on BLAS: 0.7-0.85x there.  (``conv2d_weight_grad_outer`` takes most layers with 6+
    input channels first: see "weight gradient by outer products".)"""
    return g.shifted and g.images == 1
