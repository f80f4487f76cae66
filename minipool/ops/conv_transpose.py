"""2-d transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

A transposed convolution is the input-gradient pass of a convolution run
forward, so it is built from conv2d's kernel (``minipool/_kernels/conv2d.pyx``)
with the roles swapped.  Seen as a conv2d from the transposed output (N, Cout,
Hout, Wout) to the input (N, Cin, Hin, Win) with the same weight (Cin, Cout /
groups, kh, kw), stride, padding and dilation:

* forward:        out = col2im(W.T @ x) + bias    (conv2d's input gradient of x)
* input gradient: conv2d forward of the output gradient
* weight gradient: conv2d's weight-gradient pass with the output gradient as its
  input and x as its output gradient (the same 16 fixed slots: the bits do not
  depend on the thread count), or, where conv2d runs it there, its outer products
  (``conv2d_weight_grad_outer``, NCHW: no slots; only while x is finite; 1.14-1.38x
  fwd+bwd on 4x4 stride-2 and 3x3/5x5 layers, 1 thread, CPU time; the channels-last
  slots are as fast as transposing the batch for them)

Each thread takes whole images; no batch-sized buffer is made besides the
result.  ``output_padding`` adds rows/columns at the bottom/right that only the
input of a larger stride could have reached; there, conv2d's view has a
negative bottom padding, which its gathered columns handle.
"""
from typing import Optional, Union

import numpy as np

from minipool import _config
from minipool._blas import single_threaded
from minipool._kernels import conv2d as kernels
from minipool._kernels.conv2d_weight_grad import sum_rows
from minipool._typing import IntOrTuple, TensorLike
from minipool._validate import conv_bias, conv_operands, parse_data_format
from minipool.ops._workspace import scratch
from minipool.ops.conv import (BLOCK_ELEMENTS, MAX_GEOMETRY, WEIGHT_SLOTS, ConvGeometry, _blocks,
                               _blocks_channels_last, channels_last_weight, forward_channels_last,
                               gradient_by_planes, pair, weight_from_channels_last)
from minipool.ops.elementwise import as_tensor
from minipool.ops.shape import reshape
from minipool.tensor import Function, Tensor

__all__ = ["conv_transpose2d", "conv_transpose_output_size", "output_padding_for",
           "transposed_padding"]


def conv_transpose_output_size(size, kernel, stride, padding, output_padding, dilation):
    """Output length along one axis, PyTorch's rule (may be <= 0 for too much padding)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def output_padding_for(output_size, input_shape, kernel, stride, padding, dilation,
                       channels_last=False, op="ConvTranspose2d"):
    """The output_padding that gives ``output_size``: (H, W), or the whole output shape
    of a batched input (as PyTorch accepts), whose sizes must lie between the smallest
    output and that plus stride - 1."""
    sizes = tuple(output_size)
    full = len(input_shape)
    if len(sizes) == full:
        sizes = sizes[-3:-1] if channels_last else sizes[-2:]
    elif len(sizes) != 2:
        raise ValueError(f"{op}: for a {full}-d input, output_size must have 2 or {full} "
                         f"elements, got {output_size!r}")
    in_hw = input_shape[-3:-1] if channels_last else input_shape[-2:]
    result, smallest, largest = [], [], []
    for want, size, k, s, p, d in zip(sizes, in_hw, kernel, stride, padding, dilation):
        if isinstance(want, bool) or not isinstance(want, (int, np.integer)):
            raise TypeError(f"{op}: output_size must hold ints, got {output_size!r}")
        smallest.append(conv_transpose_output_size(size, k, s, p, 0, d))
        largest.append(smallest[-1] + s - 1)
        result.append(int(want) - smallest[-1])
    if not all(lo <= want <= hi for want, lo, hi in zip(sizes, smallest, largest)):
        raise ValueError(f"{op}: output_size {tuple(sizes)} is out of reach: valid sizes range "
                         f"from {tuple(smallest)} to {tuple(largest)} for an input of spatial "
                         f"size {tuple(in_hw)}")
    return tuple(result)


def transposed_padding(padding, op):
    """``padding`` as a pair of ints >= 0: a transposed convolution has no 'same' or 'valid'.
    Shared by ``conv_transpose2d`` and the ``ConvTranspose2d`` layer (which keeps the pair)."""
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a pair of ints (no 'same' or 'valid' "
                         f"for a transposed convolution), got {padding!r}")
    return pair(padding, "padding", 0, op)


def _plan(N, out_chw, Cin, geometry, channels_last):
    """(block rows, conv2d-forward workspace, conv2d-backward workspace, threads)."""
    C, H, W = out_chw
    if channels_last:
        block_rows, forward, backward = _blocks_channels_last(C, H, W, Cin, geometry, BLOCK_ELEMENTS)
    else:
        block_rows, forward, backward = _blocks(C, H, W, Cin, geometry, BLOCK_ELEMENTS)
    kh, kw, Hin, Win = geometry.kh, geometry.kw, geometry.Ho, geometry.Wo
    threads = _config.kernel_threads(N, C * kh * kw * N * Hin * Win)
    return block_rows, forward, backward, threads


class ConvTranspose2dFn(Function):
    """The differentiable op behind ``conv_transpose2d``.  ``geometry`` is conv2d's from the
    output to the input, ``(kh, kw, sh, sw, ph, pw, dh, dw, Hin, Win, groups)``; ``out_chw``
    is the output's (channels, height, width)."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry, out_chw, channels_last):
        x = np.ascontiguousarray(x)
        Cin = weight.shape[0]
        weight2 = channels_last_weight(weight) if channels_last else \
            np.ascontiguousarray(weight).reshape(Cin, int(np.prod(weight.shape[1:])))
        C, H, W = out_chw
        N = x.shape[0]
        out = np.empty((N, H, W, C) if channels_last else (N, C, H, W), dtype=x.dtype)
        block_rows, _, per_thread, threads = _plan(N, out_chw, Cin, geometry, channels_last)
        workspace = scratch.empty((threads, per_thread), x.dtype)
        bias = None if bias is None else np.ascontiguousarray(bias)
        with single_threaded():
            kernels.conv_transpose2d_forward(x, weight2, bias, out, geometry, block_rows,
                                             workspace, threads, channels_last)
        if ctx.requires_grad:
            ctx.geometry, ctx.weight_shape = geometry, weight.shape
            ctx.out_chw, ctx.channels_last = out_chw, channels_last
            ctx.save_for_backward(x, weight2)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight2 = ctx.saved_tensors
        geometry, channels_last = ctx.geometry, ctx.channels_last
        groups = geometry.groups
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad = np.ascontiguousarray(grad, dtype=x.dtype)
        Cin = weight2.shape[0]
        block_rows, forward, backward, threads = _plan(x.shape[0], ctx.out_chw, Cin, geometry,
                                                       channels_last)
        grad_x = grad_w = grad_b = None
        with single_threaded():
            if need_x and channels_last:  # conv2d of the output gradient
                grad_x = np.empty(x.shape, dtype=x.dtype)
                forward_channels_last(grad, weight2, None, grad_x, geometry, block_rows, forward,
                                      threads, gradient_by_planes(grad.shape[3], *x.shape[1:3]))
            elif need_x:
                grad_x = np.empty(x.shape, dtype=x.dtype)
                workspace = scratch.empty((threads, forward), x.dtype)
                kernels.conv2d_forward(grad, weight2, None, grad_x, geometry, block_rows,
                                       workspace, threads)
            if need_w and not channels_last:  # on the outer products where they run
                grad_w = np.empty(weight2.shape, x.dtype)
                if kernels.conv2d_weight_grad_outer(grad, x, grad_w, geometry, threads):
                    grad_w, need_w = grad_w.reshape(ctx.weight_shape), False
                else:
                    grad_w = None
            if need_w:  # conv2d's weight gradient, input and output gradient swapped
                K_group, O_group = weight2.shape[1], Cin // groups
                shape = (WEIGHT_SLOTS, groups, O_group, K_group) if channels_last else \
                    (WEIGHT_SLOTS, groups, K_group, O_group)
                slots = scratch.empty(shape, x.dtype)
                workspace = scratch.empty((threads, backward), x.dtype)
                run = kernels.conv2d_backward_channels_last if channels_last else kernels.conv2d_backward
                run(grad, weight2, x, None, slots, None, geometry, block_rows, workspace, threads)
                if channels_last:
                    grad_w = weight_from_channels_last(slots, ctx.weight_shape)
                else:
                    total = slots[0].copy()
                    for part in slots[1:]:  # in slot order: the same bits for any thread count
                        total += part
                    grad_w = np.ascontiguousarray(total.transpose(0, 2, 1)).reshape(ctx.weight_shape)
        if need_b and channels_last:  # NumPy's order (its sum's bits), without its call per pixel
            grad_b = np.empty(grad.shape[3], grad.dtype)
            sum_rows(grad.reshape(-1, grad.shape[3]), grad_b)
        elif need_b:  # NumPy's sum: one thread, a fixed order
            grad_b = grad.sum(axis=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None


def conv_transpose2d(input: TensorLike, weight: TensorLike, bias: Optional[TensorLike] = None,
                     stride: IntOrTuple = 1, padding: Union[IntOrTuple, str] = 0,
                     output_padding: IntOrTuple = 0, groups: int = 1, dilation: IntOrTuple = 1, *,
                     data_format: str = "channels_first") -> Tensor:
    """2-d transposed convolution ("deconvolution") over an (N, C, H, W) or (C, H, W)
    input, as ``torch.nn.functional.conv_transpose2d``.

    ``weight`` is (in_channels, out_channels // groups, kh, kw) (PyTorch's layout),
    ``bias`` (out_channels,) or None.  ``stride``, ``padding``, ``output_padding`` and
    ``dilation`` are an int or a pair; the output size is ``(H - 1) * stride - 2 *
    padding + dilation * (k - 1) + output_padding + 1``, and ``output_padding`` must be
    smaller than the stride or the dilation.  ``data_format="channels_last"`` (keyword
    only; minipool's, not PyTorch's) takes (N, H, W, C) / (H, W, C) and returns
    (N, Hout, Wout, out_channels); the weight keeps PyTorch's layout.

    >>> import numpy as np, minipool as mp
    >>> import minipool.nn.functional as F
    >>> x = mp.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    >>> F.conv_transpose2d(x, mp.tensor(np.ones((1, 1, 2, 2))), stride=2).numpy()[0, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]])
    """
    op = "conv_transpose2d"
    channels_last = parse_data_format(op, data_format)
    input, weight = as_tensor(input), as_tensor(weight)
    groups, (C, H, W) = conv_operands(op, input, weight, groups, channels_last,
                                      "(in_channels, out_channels/groups, kh, kw)")
    unbatched = input.ndim == 3
    Cin, Cout_group, kh, kw = weight.shape
    if Cout_group == 0 or kh == 0 or kw == 0:
        raise ValueError(f"{op}: weight shape {weight.shape} has an empty dimension")
    if Cin % groups:
        raise ValueError(f"{op}: in_channels {Cin} (weight.shape[0]) must be divisible by groups={groups}")
    if C != Cin:
        raise ValueError(f"{op}: input has {C} channels but weight expects {Cin} "
                         "(weight.shape[0] = in_channels)")
    Cout = Cout_group * groups
    bias = None if bias is None else as_tensor(bias)
    conv_bias(op, bias, Cout, input.dtype, " (weight.shape[1] x groups)")
    stride = pair(stride, "stride", 1, op)
    padding = transposed_padding(padding, op)
    output_padding = pair(output_padding, "output_padding", 0, op)
    dilation = pair(dilation, "dilation", 1, op)
    for o, s, d in zip(output_padding, stride, dilation):
        if not (o < s or o < d):
            raise ValueError(f"{op}: output_padding must be smaller than either stride or "
                             f"dilation, got output_padding={output_padding}, stride={stride}, "
                             f"dilation={dilation}")
    Hout = conv_transpose_output_size(H, kh, stride[0], padding[0], output_padding[0], dilation[0])
    Wout = conv_transpose_output_size(W, kw, stride[1], padding[1], output_padding[1], dilation[1])
    if Hout < 1 or Wout < 1:
        raise ValueError(f"{op}: output size ({Hout}, {Wout}) is too small: input ({H}, {W}), "
                         f"kernel ({kh}, {kw}), stride {stride}, padding {padding}, "
                         f"output_padding {output_padding}, dilation {dilation}")
    batch = 1 if unbatched else input.shape[0]
    largest = max(Cout * Hout * Wout, Cout * kh * kw * W, Cin * H * W) * batch  # output, cols, input
    if Hout > MAX_GEOMETRY or Wout > MAX_GEOMETRY or largest * input.dtype.itemsize > np.iinfo(np.intp).max:
        raise ValueError(f"{op}: output size ({Hout}, {Wout}) with {Cout} channels is too large "
                         f"to compute: input ({H}, {W}), kernel ({kh}, {kw}), stride {stride}, "
                         f"padding {padding}, output_padding {output_padding}, dilation {dilation}")
    geometry = ConvGeometry(kh, kw, stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
                H, W, groups)
    x = reshape(input, (1,) + input.shape) if unbatched else input
    out = ConvTranspose2dFn.apply(x, weight, bias, geometry, (Cout, Hout, Wout), channels_last)
    return reshape(out, out.shape[1:]) if unbatched else out
