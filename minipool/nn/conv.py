"""2-d convolution layer."""
import numpy as np

import minipool.nn.functional as F
from minipool.nn import init
from minipool.nn.module import Module, Parameter
from minipool._validate import check_parameter_shape, positive_int
from minipool.ops.conv import pair

__all__ = ["Conv2d"]


class Conv2d(Module):
    """2-d convolution with a learnable (out_channels, in_channels // groups, kh, kw)
    weight and optional bias, as ``torch.nn.Conv2d`` (``padding_mode='zeros'`` only).

    Initialised as in PyTorch (``init.default_layer_init_``); ``generator`` makes
    the initial values reproducible.

    >>> import numpy as np, minipool as mp
    >>> conv = mp.nn.Conv2d(1, 6, 5, generator=np.random.default_rng(0))
    >>> conv
    Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
    >>> conv(mp.zeros(2, 1, 32, 32)).shape
    (2, 6, 28, 28)
    >>> sorted(conv.state_dict())
    ['bias', 'weight']
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", *, dtype=np.float32, generator=None):
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels", "Conv2d")
        self.out_channels = positive_int(out_channels, "out_channels", "Conv2d")
        self.groups = positive_int(groups, "groups", "Conv2d")
        if self.in_channels % self.groups:
            raise ValueError(f"Conv2d: in_channels={in_channels} must be divisible by groups={groups}")
        if self.out_channels % self.groups:
            raise ValueError(f"Conv2d: out_channels={out_channels} must be divisible by groups={groups}")
        self.kernel_size = pair(kernel_size, "kernel_size", 1)
        self.stride = pair(stride, "stride", 1)
        self.dilation = pair(dilation, "dilation", 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"Conv2d: padding='same' needs stride 1, got stride={stride}")
            self.padding = padding
        else:
            self.padding = pair(padding, "padding", 0)
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: padding_mode must be 'zeros' (the only mode minipool "
                             f"implements), got {padding_mode!r}")
        self.padding_mode = padding_mode
        shape = check_parameter_shape(
            (self.out_channels, self.in_channels // self.groups) + self.kernel_size,
            "in_channels, out_channels and kernel_size", "Conv2d")
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dtype)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None):
        init.default_layer_init_(self.weight, self.bias, generator)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s
