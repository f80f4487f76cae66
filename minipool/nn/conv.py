"""Convolution layers: Conv1d, Conv2d and ConvTranspose2d, thin holders over F.conv1d,
F.conv2d and F.conv_transpose2d that make and initialise the weight."""
from typing import Optional, Union

import numpy as np

import minipool.nn.functional as F
from minipool._typing import DTypeLike, GeneratorLike, IntOrTuple
from minipool.nn import init
from minipool.nn.module import Module, Parameter
from minipool._validate import (check_device, check_parameter_shape, int_tuple, parse_data_format,
                                single_int)
from minipool.ops.conv import MAX_GEOMETRY, conv1d_padding_argument, padding_argument, pair
from minipool.ops.conv_transpose import output_padding_for, transposed_padding
from minipool.tensor import Tensor, get_default_dtype

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]


def _channels_and_groups(where, in_channels, out_channels, groups):
    """(in_channels, out_channels, groups) as ints; both channel counts divisible by groups."""
    counts = {name: single_int(value, name, where) for name, value in
              (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups))}
    for name in ("in_channels", "out_channels"):
        if counts[name] % counts["groups"]:
            raise ValueError(f"{where}: {name}={counts[name]} must be divisible by groups={groups}")
    return counts["in_channels"], counts["out_channels"], counts["groups"]


PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _check_padding_mode(where, padding_mode, modes=PADDING_MODES):
    """PyTorch checks it at construction too."""
    if padding_mode not in modes:
        raise ValueError(f"{where}: padding_mode must be one of {modes}, got {padding_mode!r}")
    return padding_mode


def _pad_by_mode(layer, input):
    """``input`` padded by ``F.pad(mode=layer.padding_mode)`` as PyTorch's non-"zeros"
    padding modes do before a convolution with padding 0 ("same": the odd cell on the
    right/bottom)."""
    if layer.padding == "same":
        totals = [d * (k - 1) for d, k in zip(layer.dilation, layer.kernel_size)]
        pairs = [(t // 2, t - t // 2) for t in totals]
    elif layer.padding == "valid":
        return input
    else:
        pairs = [(p, p) for p in layer.padding]
    widths = [w for pair in reversed(pairs) for w in pair]  # last axis first, as F.pad reads
    channels_last = getattr(layer, "data_format", "channels_first") == "channels_last"
    if channels_last:
        input = input.permute(0, 3, 1, 2)
    padded = F.pad(input, widths, mode=layer.padding_mode)
    return padded.permute(0, 2, 3, 1) if channels_last else padded


def _init_weight_and_bias(layer, channels, bias, dtype, generator, where):
    """``layer.weight`` of shape ``channels + layer.kernel_size`` and ``layer.bias`` (one per
    output channel, or None), made in ``dtype`` (the default dtype if None) and initialised."""
    shape = check_parameter_shape(channels + layer.kernel_size,
                                  "in_channels, out_channels and kernel_size", where)
    dtype = get_default_dtype() if dtype is None else dtype
    layer.weight = Parameter(np.empty(shape, dtype=dtype))
    layer.bias = Parameter(np.empty(layer.out_channels, dtype=dtype)) if bias else None
    layer.reset_parameters(generator)


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share, as PyTorch's ``_ConvNd``: the channel counts
    and groups checked at construction (the weight's shape depends on them), the geometry
    kept as pairs, the weight and bias made and initialised.  The checks of the geometry
    against an input happen in the functional op, at every call."""

    def __init__(self, where: str, in_channels: int, out_channels: int,
                 kernel_size: IntOrTuple, stride: IntOrTuple, padding: Union[IntOrTuple, str],
                 dilation: IntOrTuple, transposed: bool, output_padding: IntOrTuple, groups: int,
                 bias: bool, padding_mode: str, dtype: DTypeLike, generator: GeneratorLike,
                 data_format: str) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.groups = _channels_and_groups(
            where, in_channels, out_channels, groups)
        self.kernel_size = pair(kernel_size, "kernel_size", 1, where)
        self.stride = pair(stride, "stride", 1, where)
        self.padding = transposed_padding(padding, where) if transposed else \
            padding_argument(padding, self.stride, where)
        self.dilation = pair(dilation, "dilation", 1, where)
        # checked against stride and dilation in forward, as PyTorch does
        self.output_padding = pair(output_padding, "output_padding", 0, where)
        # PyTorch's transposed convolutions pad with zeros only
        self.padding_mode = _check_padding_mode(where, padding_mode,
                                                ("zeros",) if transposed else PADDING_MODES)
        self.data_format = "channels_last" if parse_data_format(where, data_format) \
            else "channels_first"
        channels = (self.in_channels, self.out_channels // self.groups) if transposed else \
            (self.out_channels, self.in_channels // self.groups)
        _init_weight_and_bias(self, channels, bias, dtype, generator, where)

    def reset_parameters(self, generator: GeneratorLike = None) -> None:
        # the fan-in of either layout is weight.shape[1] * kh * kw, as PyTorch's
        init.default_layer_init_(self.weight, self.bias, generator)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        if self.data_format != "channels_first":
            s += f", data_format={self.data_format!r}"
        return s


class Conv2d(_ConvNd):
    """2-d convolution with a learnable (out_channels, in_channels // groups, kh, kw)
    weight and optional bias, as ``torch.nn.Conv2d`` (every ``padding_mode``: the others
    pad with ``F.pad`` first, as PyTorch does).

    Initialised as in PyTorch (``init.default_layer_init_``); ``generator`` makes
    the initial values reproducible.  ``data_format="channels_last"`` (keyword only,
    minipool's) takes (N, H, W, C) inputs and gives (N, Ho, Wo, out_channels); the
    weight stays in PyTorch's layout, so a state_dict moves between the two formats.

    >>> import numpy as np, minipool as mp
    >>> conv = mp.nn.Conv2d(1, 6, 5, generator=np.random.default_rng(0))
    >>> conv
    Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
    >>> conv(mp.zeros(2, 1, 32, 32)).shape
    (2, 6, 28, 28)
    >>> sorted(conv.state_dict())
    ['bias', 'weight']
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: Union[IntOrTuple, str] = 0,
                 dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", *, dtype: Optional[DTypeLike] = None,
                 generator: GeneratorLike = None, data_format: str = "channels_first") -> None:
        super().__init__("Conv2d", in_channels, out_channels, kernel_size, stride, padding,
                         dilation, False, 0, groups, bias, padding_mode, dtype, generator,
                         data_format)

    def forward(self, input: Tensor) -> Tensor:
        padding = self.padding
        if self.padding_mode != "zeros":
            input, padding = _pad_by_mode(self, input), 0
        return F.conv2d(input, self.weight, self.bias, self.stride, padding, self.dilation,
                        self.groups, data_format=self.data_format)


class ConvTranspose2d(_ConvNd):
    """2-d transposed convolution with a learnable (in_channels, out_channels // groups,
    kh, kw) weight (PyTorch's layout) and optional bias, as ``torch.nn.ConvTranspose2d``
    (``padding_mode='zeros'`` only, as in PyTorch).

    Initialised as in PyTorch: ``kaiming_uniform_(a=sqrt(5))`` with the fan-in of this
    weight layout (out_channels // groups * kh * kw), and the bias from the same fan-in.
    ``forward(input, output_size=None)``: an ``output_size`` picks the output_padding
    that reaches it, as in PyTorch.  ``data_format="channels_last"`` (keyword only,
    minipool's) takes (N, H, W, C) inputs.

    >>> import numpy as np, minipool as mp
    >>> up = mp.nn.ConvTranspose2d(16, 6, 4, stride=2, padding=1, generator=np.random.default_rng(0))
    >>> up
    ConvTranspose2d(16, 6, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))
    >>> up(mp.zeros(2, 16, 7, 7)).shape
    (2, 6, 14, 14)
    >>> up.weight.shape
    (16, 6, 4, 4)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: IntOrTuple = 0,
                 output_padding: IntOrTuple = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrTuple = 1, padding_mode: str = "zeros", *,
                 dtype: Optional[DTypeLike] = None, generator: GeneratorLike = None,
                 data_format: str = "channels_first") -> None:
        super().__init__("ConvTranspose2d", in_channels, out_channels, kernel_size, stride,
                         padding, dilation, True, output_padding, groups, bias, padding_mode,
                         dtype, generator, data_format)

    def forward(self, input: Tensor, output_size: Optional[IntOrTuple] = None) -> Tensor:
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = output_padding_for(
                output_size, tuple(input.shape), self.kernel_size, self.stride, self.padding,
                self.dilation, self.data_format == "channels_last")
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  output_padding, self.groups, self.dilation,
                                  data_format=self.data_format)


class Conv1d(Module):
    """1-d convolution with a learnable (out_channels, in_channels // groups, kernel_size)
    weight and optional bias, as ``torch.nn.Conv1d`` (every ``padding_mode``, as Conv2d);
    ``F.conv1d`` runs it on the conv2d kernel.  Arguments are kept as 1-tuples, as PyTorch's.

    >>> import numpy as np, minipool as mp
    >>> conv = mp.nn.Conv1d(4, 8, 3, padding="same", generator=np.random.default_rng(0))
    >>> conv
    Conv1d(4, 8, kernel_size=(3,), stride=(1,), padding=same)
    >>> conv(mp.zeros(2, 4, 10)).shape
    (2, 8, 10)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple,
                 stride: IntOrTuple = 1, padding: Union[IntOrTuple, str] = 0,
                 dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Optional[str] = None,
                 dtype: Optional[DTypeLike] = None, *, generator: GeneratorLike = None) -> None:
        super().__init__()
        where = "Conv1d"
        self.in_channels, self.out_channels, self.groups = _channels_and_groups(
            where, in_channels, out_channels, groups)
        self.kernel_size = int_tuple(kernel_size, 1, "kernel_size", where, 1, MAX_GEOMETRY)
        self.stride = int_tuple(stride, 1, "stride", where, 1, MAX_GEOMETRY)
        self.dilation = int_tuple(dilation, 1, "dilation", where, 1, MAX_GEOMETRY)
        padding = conv1d_padding_argument(padding, self.stride[0], where)
        self.padding = padding if isinstance(padding, str) else (padding,)
        self.padding_mode = _check_padding_mode(where, padding_mode)
        check_device(device, where)
        _init_weight_and_bias(self, (self.out_channels, self.in_channels // self.groups), bias,
                              dtype, generator, where)

    def reset_parameters(self, generator: GeneratorLike = None) -> None:
        init.default_layer_init_(self.weight, self.bias, generator)

    def forward(self, input: Tensor) -> Tensor:
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        if self.padding_mode != "zeros":
            input, padding = _pad_by_mode(self, input), 0
        return F.conv1d(input, self.weight, self.bias, self.stride[0], padding, self.dilation[0],
                        self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,):
            s += f", padding={self.padding}"
        if self.dilation != (1,):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
