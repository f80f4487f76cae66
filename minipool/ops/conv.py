"""2-d convolution (cross-correlation, as in PyTorch): im2col + GEMM per image.

The work is done by ``minipool/_kernels/conv2d.pyx``: each thread takes whole
images, lays one image's receptive fields out as a small column matrix that
stays in cache (small planes: a few images' side by side, ``GEMM_COLUMNS``), and
multiplies it with the weight (one GEMM per group, through
the ``cblas_?gemm`` of NumPy's OpenBLAS, called from the kernel without the
GIL) straight into the NCHW output.  Backward recomputes the columns per image
for the weight gradient and sums the output gradient's rows for the bias (both
summed over images in fixed slots, so the bits do not depend on the thread
count), and scatters ``W.T @ G`` back into the input gradient planes the thread
owns.

Where they measured faster, the forward product runs on the kernel's register
tiles instead (stride 1: straight from the padded planes, no column block; see
the kernel's docstring), and so does a stride-1 input gradient, computed as the
forward convolution of the output gradient with the flipped weight
(``_input_grad_on_tiles``), and the weight gradient (the kernel's own tiles,
``conv2d_wgrad.h``: a sum over pixels per weight element, in a fixed order; or,
for many channels on small planes, its outer products that skip the padding,
``conv2d_weight_grad_outer``, which need no slots).

Threads: our OpenMP threads cover the cores, so OpenBLAS is held to one thread
while a kernel runs (``minipool._blas.single_threaded``; NumPy's own setting is
restored afterwards) -- also when the kernel itself runs on one thread, since a
multi-threaded OpenBLAS GEMM can round differently and the results must not
depend on the thread count.
"""
import contextlib
import functools
from typing import NamedTuple, Optional, Union

import numpy as np

from minipool import _config
from minipool._blas import gemm_backend, single_threaded  # noqa: F401 (gemm_backend re-exported)
from minipool._kernels import conv2d as kernels
from minipool._kernels.conv2d_weight_grad import flip_weight
from minipool._typing import IntOrTuple, TensorLike
from minipool._validate import conv_bias, conv_operands, int_tuple, parse_data_format, single_int
from minipool.ops import _gemm  # noqa: F401 (it hands NumPy's OpenBLAS to the kernels)
from minipool.ops._workspace import scratch
from minipool.ops.elementwise import as_tensor
from minipool.ops.shape import reshape
from minipool.tensor import FLOAT_DTYPES, Function, Tensor

__all__ = ["conv1d", "conv2d", "conv_output_size", "pair", "gemm_backend"]


MAX_GEOMETRY = 2 ** 31 - 1  # kernel sizes, strides, paddings and dilations (as PyTorch's int32 limit)
BLOCK_ELEMENTS = 1 << 16  # a thread's column block (256 KiB in float32): meant to stay in L2
WEIGHT_SLOTS = 16  # partial weight gradients (independent of the thread count; see the kernel)
# Small planes: images share a GEMM up to this many columns (BLAS runs narrow
# products slowly), while the batch still makes MIN_GEMMS GEMMs (work for every thread)
GEMM_COLUMNS = 512
MIN_GEMMS = 8

def pair(value, name, minimum, op="conv2d"):
    """``value`` (int or sequence of 2 ints) as a 2-tuple of ints in [minimum, MAX_GEOMETRY]."""
    return int_tuple(value, 2, name, op, minimum, MAX_GEOMETRY, exact=True)


def conv_output_size(size, kernel, stride, pad_before, pad_after, dilation):
    """Output length along one axis (may be <= 0 when the kernel does not fit)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


@functools.lru_cache(maxsize=256)
def _blocks(C, H, W, O, geometry, budget):
    return kernels.plan(C, H, W, O, geometry, budget)


@functools.lru_cache(maxsize=256)
def _batch_blocks(N, C, H, W, O, geometry, budget, gemm_columns, min_gemms):
    return kernels.plan_batch(N, C, H, W, O, geometry, budget, gemm_columns, min_gemms)


def _plan(x_shape, O, geometry):
    """(output rows per column block, images per GEMM, forward and backward workspace per
    thread, threads, load_team: run on the load-tolerant team, see ``_config.kernel_team``)."""
    N, C, H, W = x_shape
    block_rows, images, forward, backward = _batch_blocks(N, C, H, W, O, geometry, BLOCK_ELEMENTS,
                                                          GEMM_COLUMNS, MIN_GEMMS)
    kh, kw, Ho, Wo = geometry.kh, geometry.kw, geometry.Ho, geometry.Wo
    columns = C * kh * kw * N * Ho * Wo
    threads, load_team = _config.kernel_team(N, columns, columns * (O // geometry.groups))
    return block_rows, images, forward, backward, threads, load_team


class ConvGeometry(NamedTuple):
    """Everything the conv2d kernel needs besides the arrays; the kernel reads it in this order.
    ``ph``/``pw`` are the top/left padding (bottom/right follow from ``Ho``/``Wo``); for a
    transposed convolution ``Ho``/``Wo`` are the sizes of its input (conv2d's output)."""

    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    Ho: int
    Wo: int
    groups: int


def _input_grad_scatter_wins(C_group, kh, kw):
    """Whether the kernel's own input gradient (``W.T @ G`` on BLAS, scattered) beats the
    flipped forward for a layer with ``C_group`` input channels per group: the flipped
    forward then has as few output channels, a mostly empty tile (1 thread, CPU time,
    batch 64, float32, min of 5: 1 channel 1.6-2.0x (1->6 5x5 to 1->64 3x3, 16x16-64x64
    planes), 2-3 channels 3x3 1.08-1.19x; 3->16 5x5 0.82x stays on the flipped forward)."""
    return C_group == 1 or (C_group <= 3 and kh * kw <= 9)


def _input_grad_on_tiles(x_shape, weight2, grad, geometry, grad_x):
    """Fill ``grad_x`` as a forward convolution on the kernel's tiles, its direct
    kernel or its Winograd engine (3x3; 5x5 once opted in), if they would run it (see
    ``kernels.uses_tiles``, ``kernels.uses_direct``, ``kernels.uses_winograd``); returns
    whether it did.

    With stride 1, input pixel h gets G[h + ph - ki*dh] W[ki] over the taps ki: the
    output gradient G, padded by q = dh*(kh-1) - ph on top (and left), correlated with
    the weight flipped in both axes and with input and output channels swapped.  The
    padding's zeros then meet every weight value, so a weight with inf or NaN keeps the
    kernel's own scatter (which adds only the taps that exist)."""
    kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, groups = geometry
    N, C, H, W = x_shape
    O = weight2.shape[0]
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if (sh != 1 or sw != 1 or qh < 0 or qw < 0 or 0 in x_shape or O == 0
            or (kernels.forward_engines_automatic()
                and _input_grad_scatter_wins(C // groups, kh, kw))):
        return False
    flipped = ConvGeometry(kh, kw, 1, 1, qh, qw, dh, dw, H, W, groups)
    block_rows, images, per_thread, _, threads, load_team = _plan((N, O, Ho, Wo), C, flipped)
    if not (kernels.uses_tiles(O, Ho, Wo, C, flipped, block_rows, images,
                               grad.dtype == np.float64)
            or kernels.uses_direct(O, Ho, Wo, C, flipped, grad.dtype == np.float64)
            or kernels.uses_winograd(O, Ho, Wo, C, flipped, grad.dtype == np.float64)):
        return False
    weight_t = scratch.empty((C, O // groups * kh * kw), grad.dtype)
    # An OpenMP region under load waits for a descheduled thread: one thread then.
    if not flip_weight(weight2, weight_t, groups, kh * kw, 1 if load_team else threads):
        return False
    workspace = scratch.empty((threads, per_thread), grad.dtype)
    with _blas_pinned(weight_t, O, Ho, Wo, flipped, block_rows, images):
        kernels.conv2d_forward(grad, weight_t, None, grad_x, flipped,
                               block_rows, workspace, threads, images, load_team=load_team)
    return True


def _blas_pinned(weight2, C, H, W, geometry, block_rows, images):
    """``single_threaded()`` around a forward that may call BLAS, else nothing to do
    (``kernels.forward_uses_blas``: the direct, Winograd, first-layer and tile engines
    never do)."""
    if kernels.forward_uses_blas(weight2, C, H, W, geometry, block_rows, images):
        return single_threaded()
    return contextlib.nullcontext()


class Conv2dFn(Function):
    """The differentiable op behind ``conv2d``; ``geometry`` is a :class:`ConvGeometry`."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry):
        x = np.ascontiguousarray(x)
        weight2 = np.ascontiguousarray(weight).reshape(weight.shape[0], -1)
        N, O, Ho, Wo = x.shape[0], weight.shape[0], geometry.Ho, geometry.Wo
        out = np.empty((N, O, Ho, Wo), dtype=x.dtype)
        block_rows, images, per_thread, _, threads, load_team = _plan(x.shape, O, geometry)
        workspace = scratch.empty((threads, per_thread), x.dtype)
        bias = None if bias is None else np.ascontiguousarray(bias)
        with _blas_pinned(weight2, *x.shape[1:], geometry, block_rows, images):
            kernels.conv2d_forward(x, weight2, bias, out, geometry, block_rows, workspace, threads,
                                   images, load_team=load_team)
        if ctx.requires_grad:
            ctx.geometry, ctx.weight_shape = geometry, weight.shape
            ctx.save_for_backward(x, weight2)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight2 = ctx.saved_tensors
        geometry = ctx.geometry
        groups = geometry.groups
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad = np.ascontiguousarray(grad, dtype=x.dtype)
        block_rows, images, _, per_thread, threads, load_team = _plan(x.shape, weight2.shape[0],
                                                                      geometry)
        grad_x = np.empty(x.shape, dtype=x.dtype) if need_x else None
        if need_x and _input_grad_on_tiles(x.shape, weight2, grad, geometry, grad_x):
            need_x, grad_x_kernel = False, None
        else:
            grad_x_kernel = grad_x
        O_group, K_group = weight2.shape[0] // groups, weight2.shape[1]
        grad_w = np.empty(weight2.shape, x.dtype) if need_w else None
        grad_b = np.empty(weight2.shape[0], x.dtype) if need_b else None
        if need_w and kernels.conv2d_weight_grad_outer(x, grad, grad_w, geometry, threads,
                                                       load_team=load_team, bias=grad_b):
            need_w = need_b = False  # done on the outer products (see the kernel), no slots
        # slot s sums GEMMs s, s + S, ...: with fewer GEMMs than WEIGHT_SLOTS the slots past
        # them would stay zero (only the shape decides: the same bits for any thread count)
        used = max(1, min(WEIGHT_SLOTS, -(-x.shape[0] // images)))
        slots = scratch.empty((used, groups, K_group, O_group), x.dtype) if need_w else None
        bias_slots = np.empty((used, weight2.shape[0]), x.dtype) if need_b else None
        if need_x or need_w or need_b:
            workspace = scratch.empty((threads, per_thread), x.dtype)
            with single_threaded():
                kernels.conv2d_backward(x, weight2, grad, grad_x_kernel, slots, bias_slots,
                                        geometry, block_rows, workspace, threads, images,
                                        load_team=load_team)
        if need_w:  # the slots added in slot order and transposed, in one pass
            kernels.add_weight_slots(slots, grad_w.reshape(groups, O_group, K_group), threads)
        if grad_w is not None:
            grad_w = grad_w.reshape(ctx.weight_shape)
        if need_b:
            grad_b = bias_slots[0].copy()
            for part in bias_slots[1:]:
                grad_b += part
        return grad_x, grad_w, grad_b, None


@functools.lru_cache(maxsize=256)
def _blocks_channels_last(C, H, W, O, geometry, budget):
    return kernels.plan_channels_last(C, H, W, O, geometry, budget)


def _plan_channels_last(x_shape, O, geometry):
    """As ``_plan``, for an (N, H, W, C) input."""
    N, H, W, C = x_shape
    block_rows, forward, backward = _blocks_channels_last(C, H, W, O, geometry, BLOCK_ELEMENTS)
    kh, kw, Ho, Wo = geometry.kh, geometry.kw, geometry.Ho, geometry.Wo
    threads = _config.kernel_threads(N, C * kh * kw * N * Ho * Wo)
    return block_rows, forward, backward, threads


def channels_last_weight(weight):
    """A PyTorch-layout weight (O, C/groups, kh, kw) as the channels-last kernels read
    it: (O, kh*kw*C/groups), the taps of an input pixel's channel run side by side."""
    return np.ascontiguousarray(weight.transpose(0, 2, 3, 1)).reshape(weight.shape[0], int(np.prod(weight.shape[1:])))


def weight_from_channels_last(slots, weight_shape):
    """Add the kernels' weight-gradient slots (S, groups, O/groups, kh*kw*C/groups) in slot
    order (the same bits for any thread count) and return them in the weight's layout."""
    total = slots[0].copy()
    for part in slots[1:]:
        total += part
    O, C_group, kh, kw = weight_shape
    return np.ascontiguousarray(total.reshape(O, kh, kw, C_group).transpose(0, 3, 1, 2))


def forward_channels_last(x, weight2, bias, out, geometry, block_rows, per_thread, threads,
                          by_planes=None):
    """out (N, Ho, Wo, O) = the channels-last conv2d of x (N, H, W, C) with ``weight2``
    (``channels_last_weight``), on the direct kernel where it measured faster
    (``uses_direct_channels_last``; a weight with inf or NaN keeps the column path: a
    padding tap must meet it), one input channel on the first-layer kernel
    (``uses_first(channels_last=True)``: LeNet's conv1 3.3x the column block), else
    im2col + BLAS.  Also the channels-last transposed
    convolution's input gradient (1 thread, CPU time: 1.7x for 32->16 4x4 stride 2).
    ``by_planes``: the direct kernel's choice (None: ``kernels.direct_by_planes``)."""
    N, H, W, C = x.shape
    O, Ho, Wo = out.shape[3], out.shape[1], out.shape[2]
    if kernels.uses_first(C, H, W, O, geometry, x.dtype == np.float64, channels_last=True):
        kernels.conv2d_first_channels_last(x, weight2, bias, out, geometry, threads)
    elif (kernels.uses_direct_channels_last(C, H, W, O, geometry, x.dtype == np.float64)
            and np.isfinite(weight2).all()):
        kernels.conv2d_direct_channels_last(x, weight2, bias, out, geometry, threads,
                                            kernels.direct_by_planes(Ho, Wo)
                                            if by_planes is None else by_planes)
    else:
        workspace = scratch.empty((threads, per_thread), x.dtype)
        with single_threaded():
            kernels.conv2d_forward_channels_last(x, weight2, bias, out, geometry, block_rows,
                                                 workspace, threads)


def gradient_by_planes(channels, Ho, Wo):
    """Whether the direct kernel copies a channels-last output gradient of ``channels``
    channels as NCHW planes before an input-gradient pass (``by_planes``).  Up to 32
    channels it reads the gradient in place (the same bits; 1 thread, CPU time: 1.04-1.16x
    on 4x4 and 8x8 planes, 1.05-1.44x for the transposed conv); with 64-256 the copy won
    where conv2d's own choice makes it (``kernels.direct_by_planes``; 0.51-0.91x without)."""
    return channels > 32 and kernels.direct_by_planes(Ho, Wo)


def _input_grad_channels_last(x_shape, weight2, grad, geometry, grad_x):
    """``_input_grad_on_tiles`` for channels-last: fill ``grad_x`` (N, H, W, C) as the
    channels-last forward of the output gradient with the flipped weight, if that forward
    would run on the direct kernel (``uses_direct_channels_last``) and the weight is
    finite (the padding's zeros meet every weight value), on planes up to 32x32; returns
    whether it did.  ``weight2`` is (O, kh*kw*C/groups) (``channels_last_weight``).
    Measured fwd+bwd against the column scatter (1 thread, CPU time, batch 64, min of 5):
    1.04-1.17x on 3x3 and 5x5 layers with 16-256 channels on 4x4-32x32 planes (LeNet's
    conv2 even); 8->16 on 64x64 0.96x."""
    kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, groups = geometry
    N, H, W, C = x_shape
    O = weight2.shape[0]
    qh, qw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if sh != 1 or sw != 1 or qh < 0 or qw < 0 or 0 in x_shape or O == 0 or H * W > 1024:
        return False
    flipped = ConvGeometry(kh, kw, 1, 1, qh, qw, dh, dw, H, W, groups)
    if not (kernels.uses_direct_channels_last(O, Ho, Wo, C, flipped, grad.dtype == np.float64)
            and np.isfinite(weight2).all()):
        return False
    O_group, C_group = O // groups, C // groups
    weight_t = (weight2.reshape(groups, O_group, kh, kw, C_group)[:, :, ::-1, ::-1]
                .transpose(0, 4, 2, 3, 1).reshape(C, kh * kw * O_group))
    threads = _config.kernel_threads(N, O * kh * kw * N * H * W)
    kernels.conv2d_direct_channels_last(grad, np.ascontiguousarray(weight_t), None, grad_x,
                                        flipped, threads, gradient_by_planes(O, H, W))
    return True


def _channels_last_outer_wins(H, W, kh, kw):
    """Where transposing a channels-last batch for the outer products measured faster than
    the channels-last column slots (fwd+bwd, 1 thread, CPU time, batch 64, min of 5):
    planes up to 14x14 (LeNet's conv2 1.19x, 8x8 1.04-1.14x, 4x4 1.26-1.31x) and 5x5
    kernels on 16x16 (1.11x); 3x3 on 16x16 0.96x, 32x32 and up 0.92x."""
    return H * W <= 196 or (H * W <= 256 and kh * kw >= 25)


def _weight_grad_outer_channels_last(x, grad, geometry, weight_shape, threads, need_b):
    """(weight gradient in the weight's layout, bias gradient or None) on conv2d's outer
    products, which read NCHW: the batch and the output gradient are transposed first
    (cheaper than the channels-last column slots where the outer products run at all);
    (None, None) where they do not run (see ``uses_wgrad_outer``; also an output gradient
    with inf or NaN)."""
    N, H, W, C = x.shape
    kh, kw = weight_shape[2:]
    if not (_channels_last_outer_wins(H, W, kh, kw) and kernels.uses_wgrad_outer(
            C, H, W, weight_shape[0], geometry, x.dtype == np.float64)):
        return None, None
    grad_w = np.empty((weight_shape[0], int(np.prod(weight_shape[1:]))), x.dtype)
    grad_b = np.empty(weight_shape[0], x.dtype) if need_b else None
    if kernels.conv2d_weight_grad_outer(np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
                                        np.ascontiguousarray(grad.transpose(0, 3, 1, 2)), grad_w,
                                        geometry, threads, bias=grad_b):
        return grad_w.reshape(weight_shape), grad_b
    return None, None


class Conv2dChannelsLastFn(Function):
    """``Conv2dFn`` for an (N, H, W, C) input and (N, Ho, Wo, O) output: the kernel cuts its
    column rows from the input's pixel rows and writes the output's pixel rows, so the
    batch is never transposed.  The weight keeps PyTorch's layout outside the kernel.
    The forward runs on the direct kernel where it measured faster (``uses_direct_channels_last``;
    a weight with inf or NaN keeps the column path: a padding tap must meet it); so does a
    stride-1 input gradient (``_input_grad_channels_last``), and the weight gradient runs on
    the outer products where they pay for transposing the batch
    (``_weight_grad_outer_channels_last``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry):
        x = np.ascontiguousarray(x)
        weight2 = channels_last_weight(weight)
        N, O, Ho, Wo = x.shape[0], weight.shape[0], geometry.Ho, geometry.Wo
        out = np.empty((N, Ho, Wo, O), dtype=x.dtype)
        block_rows, per_thread, _, threads = _plan_channels_last(x.shape, O, geometry)
        bias = None if bias is None else np.ascontiguousarray(bias)
        forward_channels_last(x, weight2, bias, out, geometry, block_rows, per_thread, threads)
        if ctx.requires_grad:
            ctx.geometry, ctx.weight_shape = geometry, weight.shape
            ctx.save_for_backward(x, weight2)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight2 = ctx.saved_tensors
        geometry = ctx.geometry
        groups = geometry.groups
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad = np.ascontiguousarray(grad, dtype=x.dtype)
        O = weight2.shape[0]
        block_rows, _, per_thread, threads = _plan_channels_last(x.shape, O, geometry)
        grad_x = np.empty(x.shape, dtype=x.dtype) if need_x else None
        if need_x and _input_grad_channels_last(x.shape, weight2, grad, geometry, grad_x):
            need_x, grad_x_kernel = False, None
        else:
            grad_x_kernel = grad_x
        grad_w = grad_b = None
        if need_w:
            grad_w, grad_b = _weight_grad_outer_channels_last(x, grad, geometry, ctx.weight_shape,
                                                              threads, need_b)
            if grad_w is not None:
                need_w = need_b = False
        slots = scratch.empty((WEIGHT_SLOTS, groups, O // groups, weight2.shape[1]), x.dtype) \
            if need_w else None
        bias_slots = np.empty((WEIGHT_SLOTS, O), x.dtype) if need_b else None
        if need_x or need_w or need_b:
            workspace = scratch.empty((threads, per_thread), x.dtype)
            with single_threaded():
                kernels.conv2d_backward_channels_last(x, weight2, grad, grad_x_kernel, slots,
                                                      bias_slots, geometry, block_rows, workspace,
                                                      threads)
        if need_w:
            grad_w = weight_from_channels_last(slots, ctx.weight_shape)
        if need_b:
            grad_b = bias_slots[0].copy()
            for part in bias_slots[1:]:
                grad_b += part
        return grad_x, grad_w, grad_b, None


def padding_argument(padding, stride, op="conv2d"):
    """``padding`` checked: "same" (stride (1, 1) only), "valid" or a (ph, pw) pair.
    Shared by ``conv2d`` and the ``Conv2d`` layer (which checks it at construction)."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', "
                             f"got {padding!r}")
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"{op}: padding='same' needs stride 1, got stride={stride}")
        return padding
    return pair(padding, "padding", 0, op)


def _padding(padding, kernel, stride, dilation):
    """(top, bottom, left, right) padding from an int, a pair, or 'same'/'valid'."""
    padding = padding_argument(padding, stride)
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]  # the odd one out goes after, as PyTorch
        return tuple(pads)
    ph, pw = padding
    return ph, ph, pw, pw


def conv2d(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None,
           stride: IntOrTuple = 1, padding: Union[IntOrTuple, str] = 0, dilation: IntOrTuple = 1,
           groups: int = 1, *, data_format: str = "channels_first") -> Tensor:
    """2-d convolution over an (N, C, H, W) or (C, H, W) input, as ``torch.nn.functional.conv2d``.

    ``weight`` is (out_channels, in_channels // groups, kh, kw), ``bias`` is
    (out_channels,) or None.  ``stride``, ``padding`` and ``dilation`` are an
    int or a pair; ``padding`` may also be ``"same"`` (stride 1 only; an odd
    total pads one more at the bottom/right) or ``"valid"`` (no padding).

    ``data_format="channels_last"`` (keyword only; minipool's, not PyTorch's) takes an
    (N, H, W, C) or (H, W, C) input and returns (N, Ho, Wo, out_channels) without
    transposing the batch; the weight keeps PyTorch's (out_channels, in_channels //
    groups, kh, kw) layout.  The values agree with channels-first to rounding (the
    taps are summed in another order), not bit for bit -- except where the forward runs on
    the direct kernel (``kernels.uses_direct_channels_last``), which sums as channels-first.

    >>> import numpy as np, minipool as mp
    >>> import minipool.nn.functional as F
    >>> x = mp.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> w = mp.tensor(np.ones((1, 1, 2, 2)))
    >>> F.conv2d(x, w, stride=2).numpy()
    array([[[[10., 18.],
             [42., 50.]]]])
    """
    channels_last = parse_data_format("conv2d", data_format)
    input, weight = as_tensor(input), as_tensor(weight)
    groups, (C, H, W) = conv_operands("conv2d", input, weight, groups, channels_last,
                                      "(out_channels, in_channels/groups, kh, kw)")
    unbatched = input.ndim == 3
    O, C_group, kh, kw = weight.shape
    if O == 0 or kh == 0 or kw == 0:
        raise ValueError(f"conv2d: weight shape {weight.shape} has an empty dimension")
    if O % groups:
        raise ValueError(f"conv2d: out_channels {O} (weight.shape[0]) must be divisible by groups={groups}")
    if C != C_group * groups:
        raise ValueError(f"conv2d: input has {C} channels but weight expects "
                         f"{C_group} x groups={groups} = {C_group * groups}")
    bias = None if bias is None else as_tensor(bias)
    conv_bias("conv2d", bias, O, input.dtype)
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
                         f"and stride {stride}, times {max(C * kh * kw, O)} columns or channels, "
                         "is too large to compute")
    geometry = ConvGeometry(kh, kw, stride[0], stride[1], top, left, dilation[0], dilation[1], Ho, Wo, groups)
    x = reshape(input, (1,) + input.shape) if unbatched else input
    out = (Conv2dChannelsLastFn if channels_last else Conv2dFn).apply(x, weight, bias, geometry)
    return reshape(out, out.shape[1:]) if unbatched else out


def conv1d_padding_argument(padding, stride, op="conv1d"):
    """``padding`` of a 1-d convolution checked: "same" (stride 1 only), "valid" or one int
    (or a 1-tuple).  Shared by ``conv1d`` and the ``Conv1d`` layer."""
    if isinstance(padding, str):
        return padding_argument(padding, (1, stride), op)
    return int_tuple(padding, 1, "padding", op, 0, MAX_GEOMETRY)[0]


def conv1d(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None,
           stride: IntOrTuple = 1, padding: Union[IntOrTuple, str] = 0, dilation: IntOrTuple = 1,
           groups: int = 1) -> Tensor:
    """1-d convolution over an (N, C, L) or (C, L) input, as ``torch.nn.functional.conv1d``.

    ``weight`` is (out_channels, in_channels // groups, k), ``bias`` (out_channels,)
    or None; ``stride``, ``padding`` and ``dilation`` are ints (or 1-tuples),
    ``padding`` may be ``"same"`` (stride 1) or ``"valid"``.  It runs as ``conv2d``
    over a height-1 image with a height-1 kernel (same kernel, same gradients).

    >>> import numpy as np, minipool as mp, minipool.nn.functional as F
    >>> x = mp.tensor(np.arange(5.0).reshape(1, 1, 5))
    >>> F.conv1d(x, mp.tensor(np.ones((1, 1, 2))), padding=1).numpy()
    array([[[0., 1., 3., 5., 7., 4.]]])
    """
    op = "conv1d"
    input, weight = as_tensor(input), as_tensor(weight)
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: input must be (N, C, L) or (C, L), got shape {input.shape}")
    if weight.ndim != 3:
        raise ValueError(f"{op}: weight must be (out_channels, in_channels/groups, k), "
                         f"got shape {weight.shape}")
    if input.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: input must be float32 or float64, got {input.dtype}")
    if weight.dtype != input.dtype:
        raise TypeError(f"{op}: weight dtype {weight.dtype} differs from input dtype {input.dtype}")
    groups = single_int(groups, "groups", op)
    stride = int_tuple(stride, 1, "stride", op, 1, MAX_GEOMETRY)[0]
    dilation = int_tuple(dilation, 1, "dilation", op, 1, MAX_GEOMETRY)[0]
    padding = conv1d_padding_argument(padding, stride, op)
    C, L = input.shape[-2:]
    O, C_group, k = weight.shape
    if O == 0 or k == 0:
        raise ValueError(f"{op}: weight shape {weight.shape} has an empty dimension")
    if O % groups:
        raise ValueError(f"{op}: out_channels {O} (weight.shape[0]) must be divisible by "
                         f"groups={groups}")
    if C != C_group * groups:
        raise ValueError(f"{op}: input has {C} channels but weight expects "
                         f"{C_group} x groups={groups} = {C_group * groups}")
    if L == 0:
        raise ValueError(f"{op}: input length must be >= 1, got shape {input.shape}")
    pads = 0 if padding == "valid" else padding
    if not isinstance(pads, str) and conv_output_size(L, k, stride, pads, pads, dilation) < 1:
        raise ValueError(f"{op}: input of length {L} padded by {pads} on each side is shorter "
                         f"than the dilated kernel ({dilation * (k - 1) + 1})")
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (O,):
            raise ValueError(f"{op}: bias must have shape ({O},), got {bias.shape}")
    padding2 = padding if isinstance(padding, str) else (0, padding)
    x4 = reshape(input, input.shape[:-1] + (1, L))  # a height-1 image
    out = conv2d(x4, reshape(weight, (O, C_group, 1, k)), bias, (1, stride), padding2,
                 (1, dilation), groups)
    return reshape(out, out.shape[:-2] + out.shape[-1:])
