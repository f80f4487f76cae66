"""2-d convolution (cross-correlation, as in PyTorch) by im2col + BLAS GEMM.

Forward: ``im2col`` (Cython + OpenMP, ``minipool/_kernels/im2col.pyx``) lays the
receptive fields out as ``cols`` of shape (C*kh*kw, N*Ho*Wo): the batch is folded
into the columns, so the batch is a few GEMMs ``W2 @ cols`` with
``W2 = weight.reshape(O, C*kh*kw)`` (one per group, batched through
``np.matmul``, and one per chunk of images, see ``image_chunks``; with 2+
threads two OpenMP threads share the chunks).  The bias is added to the
(O, N*Ho*Wo) product, which is then reordered to NCHW.

Backward, with ``G`` the output gradient as (O, N*Ho*Wo):
  weight: ``(cols @ G.T).T``  -- one GEMM per image chunk, summed in chunk
          order.  Written this way
          round because OpenBLAS is ~2x faster for the long-K shape
          (K = N*Ho*Wo) when the long operand is the row-major left factor.
  input:  ``col2im(W2.T @ G)``, the scatter-add run per input plane (no atomics,
          bit-identical for any thread count); skipped when the input needs no
          gradient (the first layer of a network).
  bias:   row sums of ``G``.

Threads.  Our kernels take their thread count from ``minipool._config`` (1 for
small jobs).  The GEMMs run on NumPy's OpenBLAS with its own pthread pool
(``OPENBLAS_NUM_THREADS``, default: every core); NumPy offers no call to change
it, so we leave it alone.  The two pools never run at the same time -- every
kernel returns before the next GEMM starts -- but neither goes to sleep at
once: measured here, an OpenBLAS worker keeps polling (with sched_yield) for
~50 ms after a GEMM and a libgomp worker spins for ~8 ms after a parallel
region.  On an otherwise idle machine the pools take turns; on a machine shared
with other jobs multi-threading collapses (LeNet's two convolutions, forward +
backward: ~4 ms on one thread, 60-300 ms with 2 threads at a load average of
8 on 2 cores).  There, pin everything to one thread before starting Python:
``OPENBLAS_NUM_THREADS=1 MINIPOOL_NUM_THREADS=1``; ``OMP_WAIT_POLICY=PASSIVE``
stops the libgomp spinning.  ``benchmarks/bench_conv.py`` runs each thread
count in its own process with all pools pinned to it.
"""
import numpy as np

from minipool import _config
from minipool._blas import blas_num_threads
from minipool._kernels.im2col import col2im, im2col, run_on_team
from minipool.ops._workspace import scratch
from minipool.ops.elementwise import as_tensor
from minipool.ops.shape import reshape
from minipool.tensor import FLOAT_DTYPES, Function

__all__ = ["conv2d", "conv_output_size", "pair"]


MAX_GEOMETRY = 2 ** 31 - 1  # kernel sizes, strides, paddings and dilations (as PyTorch's int32 limit)


def pair(value, name, minimum):
    """``value`` (int or sequence of 2 ints) as a 2-tuple of ints >= ``minimum``."""
    items = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"conv2d: {name} must be an int or a pair of ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"conv2d: {name} must be >= {minimum}, got {value!r}")
        if v > MAX_GEOMETRY:
            raise ValueError(f"conv2d: {name} must be <= {MAX_GEOMETRY}, got {value!r}")
    return int(items[0]), int(items[1])


def conv_output_size(size, kernel, stride, pad_before, pad_after, dilation):
    """Output length along one axis (may be <= 0 when the kernel does not fit)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


# Image chunks.  The batch is cut into chunks of whole images; each chunk's
# columns of cols are filled, multiplied and reordered on their own.  Two reasons:
#  - OpenBLAS is slow on the long, skinny GEMMs of a layer with few output
#    channels per group (LeNet's conv1: 6 x 25 times 25 x 50176): it packs the
#    whole long operand through L3.  Chunks of ~4096 columns keep each packed
#    block in L2 (2-2.5x faster products on one thread).
#  - With 2+ threads the chunks are shared out between the calling thread and a
#    second OpenMP thread (see ``run_on_team``), each running its chunks' im2col, GEMMs and col2im on one
#    core (NumPy releases the GIL in BLAS, our kernels in prange).  BLAS itself
#    stays single-threaded.
# The chunks depend only on the shapes, never on the thread count, and the weight
# gradient sums the chunks' partial products in chunk order, so results are
# bit-identical for any number of threads.
COLUMN_BLOCK = 4096
SKINNY_OUT_CHANNELS = 16
MIN_SPLIT_COLUMNS = 2048  # below this a second chunk costs more than it saves


def _even_split(start, stop, pieces):
    """[start, stop) cut into ``pieces`` ranges whose lengths differ by at most one."""
    size, extra = divmod(stop - start, pieces)
    bounds = [start]
    for k in range(pieces):
        bounds.append(bounds[-1] + size + (k < extra))
    return [(bounds[k], bounds[k + 1]) for k in range(pieces) if bounds[k + 1] > bounds[k]]


def image_chunks(n_images, L, out_per_group):
    """[start, stop) image ranges processed as units (see above).  The first half of
    the images and the second are chunked separately, so two threads (each taking
    one half, see ``_run_lanes``) get equal work."""
    if n_images * L < MIN_SPLIT_COLUMNS or n_images < 2:
        return [(0, n_images)]
    mid = (n_images + 1) // 2
    pieces = 1
    if out_per_group < SKINNY_OUT_CHANNELS and n_images * L > 2 * COLUMN_BLOCK:
        pieces = -(-mid * L // COLUMN_BLOCK)
    return _even_split(0, mid, pieces) + _even_split(mid, n_images, pieces)


def _run_lanes(lane, chunks, parallel):
    """Call ``lane(first, stop)`` on chunk index ranges: once over every chunk, or with
    ``parallel`` on two OpenMP threads (this one takes the chunks of the first half
    of the images)."""
    n_chunks = len(chunks)
    if not parallel or n_chunks < 2 or blas_num_threads() != 1:  # see minipool/_blas.py
        lane(0, n_chunks)
        return
    mid = (chunks[-1][1] + 1) // 2
    half = next(i for i, (start, _) in enumerate(chunks) if start >= mid)
    run_on_team([lambda: lane(0, half), lambda: lane(half, n_chunks)], 2)


class Conv2dFn(Function):
    """The differentiable op behind ``conv2d``; ``geometry`` is a plain tuple
    ``(kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, groups)`` (ph/pw: top/left padding).

    Matrices carry a leading groups axis, so one code path serves groups == 1
    (a batch of one GEMM) and grouped convolution (np.matmul loops the groups).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, geometry):
        kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, groups = geometry
        x = np.ascontiguousarray(x)
        weight = np.ascontiguousarray(weight)
        N, C, H, W = x.shape
        O = weight.shape[0]
        O_group, K_group, L = O // groups, (C // groups) * kh * kw, Ho * Wo
        NL = N * L
        # cols and the other big temporaries come from a pool of recycled buffers: fresh
        # multi-megabyte arrays cost a page fault per 4 KiB (see ops/_workspace.py)
        cols = scratch.empty((C * kh * kw, NL), x.dtype)
        weight3 = weight.reshape(groups, O_group, K_group)
        cols3 = cols.reshape(groups, K_group, NL)
        out3 = scratch.empty((groups, O_group, NL), x.dtype)
        out2d = out3.reshape(O, NL)
        out = np.empty((N, O, Ho, Wo), dtype=x.dtype)
        bias_column = None if bias is None else bias.reshape(O, 1)
        chunks = image_chunks(N, L, O_group)
        parallel = _config.get_num_threads() > 1 and cols.size >= _config.PARALLEL_WORK_THRESHOLD
        # on two lanes each im2col runs on its lane's thread; else it may use the OpenMP team
        im2col_threads = 1 if parallel else _config.kernel_threads(cols.shape[0], cols.size)

        def lane(first, stop):
            # gathers and copies once per lane (any split gives the same bits); GEMMs per chunk
            n0, n1 = chunks[first][0], chunks[stop - 1][1]
            c0, c1 = n0 * L, n1 * L
            im2col(x[n0:n1], cols, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, im2col_threads, c0)
            for start, end in chunks[first:stop]:
                np.matmul(weight3, cols3[:, :, start * L:end * L], out=out3[:, :, start * L:end * L])
            if bias_column is not None:
                out2d[:, c0:c1] += bias_column  # on the product: ~2x faster than during the reorder
            np.copyto(out[n0:n1].reshape(n1 - n0, O, L),
                      out2d[:, c0:c1].reshape(O, n1 - n0, L).transpose(1, 0, 2))

        _run_lanes(lane, chunks, parallel)
        if ctx.requires_grad:
            ctx.geometry = geometry
            ctx.x_shape = x.shape
            ctx.weight3 = weight3 if ctx.needs_input_grad[0] else None
            ctx.cols3 = cols3 if ctx.needs_input_grad[1] else None
        return out

    @staticmethod
    def backward(ctx, grad):
        kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, groups = ctx.geometry
        N, C, H, W = ctx.x_shape
        O = grad.shape[1]
        O_group, K_group, L = O // groups, (C // groups) * kh * kw, Ho * Wo
        NL = N * L
        chunks = image_chunks(N, L, O_group)
        parallel = _config.get_num_threads() > 1 and C * kh * kw * NL >= _config.PARALLEL_WORK_THRESHOLD
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # G: (O, N*L), contiguous; every product below reads it (or its transpose) in place.
        G = scratch.empty((O, NL), grad.dtype)
        G3 = G.reshape(groups, O_group, NL)
        cols3, weight3 = ctx.cols3, ctx.weight3
        # (cols @ G.T), not (G @ cols.T): OpenBLAS is ~2x faster with the long
        # operand on the left for this long-K product.
        w_parts = np.empty((len(chunks), groups, K_group, O_group), dtype=grad.dtype) if need_w else None
        grad_x = np.empty((N, C, H, W), dtype=grad.dtype) if need_x else None
        col2im_threads = 1 if parallel else _config.kernel_threads(N * C, C * kh * kw * NL)

        def lane(first, stop):
            n0, n1 = chunks[first][0], chunks[stop - 1][1]
            np.copyto(G[:, n0 * L:n1 * L].reshape(O, n1 - n0, L),
                      grad[n0:n1].reshape(n1 - n0, O, L).transpose(1, 0, 2))
            for i in range(first, stop):
                c0, c1 = chunks[i][0] * L, chunks[i][1] * L
                G_chunk = G3[:, :, c0:c1]
                if need_w:
                    np.matmul(cols3[:, :, c0:c1], G_chunk.transpose(0, 2, 1), out=w_parts[i])
                if need_x:
                    grad_cols3 = scratch.empty((groups, K_group, c1 - c0), grad.dtype)
                    np.matmul(weight3.transpose(0, 2, 1), G_chunk, out=grad_cols3)
                    col2im(grad_cols3.reshape(C * kh * kw, c1 - c0), grad_x[chunks[i][0]:chunks[i][1]],
                           kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, col2im_threads)

        _run_lanes(lane, chunks, parallel)
        grad_w = grad_b = None
        if ctx.needs_input_grad[2]:
            grad_b = G.sum(axis=1)
        if need_w:
            grad_w3 = w_parts[0]
            for part in w_parts[1:]:  # in chunk order: the same bits for any thread count
                grad_w3 += part
            grad_w = np.ascontiguousarray(grad_w3.transpose(0, 2, 1)).reshape(O, C // groups, kh, kw)
        return grad_x, grad_w, grad_b, None


def _padding(padding, kernel, stride, dilation):
    """(top, bottom, left, right) padding from an int, a pair, or 'same'/'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"conv2d: padding='same' needs stride 1, got stride={stride}")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]  # the odd one out goes after, as PyTorch
            return tuple(pads)
        raise ValueError(f"conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    ph, pw = pair(padding, "padding", 0)
    return ph, ph, pw, pw


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d convolution over an (N, C, H, W) or (C, H, W) input, as ``torch.nn.functional.conv2d``.

    ``weight`` is (out_channels, in_channels // groups, kh, kw), ``bias`` is
    (out_channels,) or None.  ``stride``, ``padding`` and ``dilation`` are an
    int or a pair; ``padding`` may also be ``"same"`` (stride 1 only; an odd
    total pads one more at the bottom/right) or ``"valid"`` (no padding).

    >>> import numpy as np, minipool as mp
    >>> import minipool.nn.functional as F
    >>> x = mp.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> w = mp.tensor(np.ones((1, 1, 2, 2)))
    >>> F.conv2d(x, w, stride=2).numpy()
    array([[[[10., 18.],
             [42., 50.]]]])
    """
    input, weight = as_tensor(input), as_tensor(weight)
    if input.ndim not in (3, 4):
        raise ValueError(f"conv2d: input must be (N, C, H, W) or (C, H, W), got shape {input.shape}")
    if weight.ndim != 4:
        raise ValueError("conv2d: weight must be (out_channels, in_channels/groups, kh, kw), "
                         f"got shape {weight.shape}")
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"conv2d: input must be float32 or float64, got {input.dtype}")
    if weight.dtype != input.dtype:
        raise TypeError(f"conv2d: weight dtype {weight.dtype} differs from input dtype {input.dtype}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"conv2d: groups must be an int >= 1, got {groups!r}")
    groups = int(groups)
    unbatched = input.ndim == 3
    C, H, W = input.shape[-3:]
    if H == 0 or W == 0:  # as PyTorch; padding would otherwise make outputs out of no input
        raise ValueError(f"conv2d: input spatial size must be >= 1, got shape {input.shape}")
    O, C_group, kh, kw = weight.shape
    if O == 0 or kh == 0 or kw == 0:
        raise ValueError(f"conv2d: weight shape {weight.shape} has an empty dimension")
    if O % groups:
        raise ValueError(f"conv2d: out_channels {O} (weight.shape[0]) must be divisible by groups={groups}")
    if C != C_group * groups:
        raise ValueError(f"conv2d: input has {C} channels but weight expects "
                         f"{C_group} x groups={groups} = {C_group * groups}")
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (O,):
            raise ValueError(f"conv2d: bias must have shape ({O},), got {bias.shape}")
        if bias.dtype != input.dtype:
            raise TypeError(f"conv2d: bias dtype {bias.dtype} differs from input dtype {input.dtype}")
    stride = pair(stride, "stride", 1)
    dilation = pair(dilation, "dilation", 1)
    top, bottom, left, right = _padding(padding, (kh, kw), stride, dilation)
    Ho = conv_output_size(H, kh, stride[0], top, bottom, dilation[0])
    Wo = conv_output_size(W, kw, stride[1], left, right, dilation[1])
    if Ho < 1 or Wo < 1:
        raise ValueError(f"conv2d: input of spatial size ({H}, {W}) padded by ({top}+{bottom}, "
                         f"{left}+{right}) is smaller than the dilated kernel "
                         f"({dilation[0] * (kh - 1) + 1}, {dilation[1] * (kw - 1) + 1})")
    batch = 1 if unbatched else input.shape[0]
    largest_buffer = max(C * kh * kw, O) * batch * Ho * Wo * input.dtype.itemsize  # cols or output
    if largest_buffer > np.iinfo(np.intp).max:
        raise ValueError(f"conv2d: output size ({Ho}, {Wo}) from padding {(top, bottom, left, right)} "
                         f"and stride {stride} is too large to compute")
    geometry = (kh, kw, stride[0], stride[1], top, left, dilation[0], dilation[1], Ho, Wo, groups)
    x = reshape(input, (1, C, H, W)) if unbatched else input
    out = Conv2dFn.apply(x, weight, bias, geometry)
    return reshape(out, out.shape[1:]) if unbatched else out
