"""Per-sample normalisation layers: LayerNorm, GroupNorm, InstanceNorm1d/2d, as PyTorch's.

They hold the arguments, the affine parameters (``weight`` ones, ``bias``
zeros) and, for InstanceNorm with ``track_running_stats=True``, the running
statistics as buffers under PyTorch's ``state_dict`` keys; the math and the
argument checks are ``F.layer_norm``, ``F.group_norm`` and ``F.instance_norm``.

>>> import minipool as mp
>>> mp.nn.LayerNorm(4)
LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)
>>> mp.nn.GroupNorm(2, 4)
GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)
>>> list(mp.nn.InstanceNorm2d(3, affine=True, track_running_stats=True).state_dict())
['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
"""
import warnings
from typing import Optional, Sequence, Union

import numpy as np

import minipool.nn.functional as F
from minipool._typing import DTypeLike
from minipool._validate import check_parameter_shape, float_dtype, single_int
from minipool.nn.batchnorm import _BatchNorm
from minipool.nn.module import Module, Parameter
from minipool.ops.normalization import normalized_shape_argument
from minipool.tensor import Tensor

__all__ = ["LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "float_dtype"]


def _eps(eps, where):
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ValueError(f"{where}: eps must be a number >= 0, got {eps!r}")
    return eps


class _AffineNorm(Module):
    """What LayerNorm and GroupNorm share: an optional weight (ones) and bias (zeros) of
    ``shape``, and resetting them."""

    def _make_affine(self, shape, affine, bias, dtype):
        self.weight = Parameter(np.ones(shape, dtype)) if affine else None
        self.bias = Parameter(np.zeros(shape, dtype)) if affine and bias else None

    def reset_parameters(self) -> None:
        if self.weight is not None:
            self.weight._data[...] = 1
        if self.bias is not None:
            self.bias._data[...] = 0


class LayerNorm(_AffineNorm):
    """``F.layer_norm`` over the last ``len(normalized_shape)`` axes, with an elementwise
    ``weight`` and ``bias`` of ``normalized_shape`` (``elementwise_affine``, ``bias``).

    >>> import minipool as mp
    >>> ln = mp.nn.LayerNorm((2, 3), bias=False)
    >>> sorted(ln.state_dict()), ln(mp.ones(5, 2, 3)).shape
    (['weight'], (5, 2, 3))
    """

    def __init__(self, normalized_shape: Union[int, Sequence[int]], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Optional[str] = None,
                 dtype: Optional[DTypeLike] = None) -> None:
        super().__init__()
        where = "LayerNorm"
        self.normalized_shape = normalized_shape_argument(normalized_shape, where)
        self.eps = _eps(eps, where)
        self.elementwise_affine = bool(elementwise_affine)
        dtype = float_dtype(dtype, device, where)
        check_parameter_shape(self.normalized_shape, "normalized_shape", where)
        self._make_affine(self.normalized_shape, self.elementwise_affine, bias, dtype)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine="
                f"{self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(_AffineNorm):
    """``F.group_norm`` with ``num_groups`` groups of ``num_channels`` channels and a
    per-channel ``weight`` and ``bias`` (``affine``).

    >>> import minipool as mp
    >>> gn = mp.nn.GroupNorm(3, 6)
    >>> gn(mp.ones(2, 6, 4, 4)).shape, gn.weight.shape
    ((2, 6, 4, 4), (6,))
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device: Optional[str] = None, dtype: Optional[DTypeLike] = None, *,
                 bias: bool = True) -> None:
        super().__init__()
        where = "GroupNorm"
        self.num_groups = single_int(num_groups, "num_groups", where)
        self.num_channels = single_int(num_channels, "num_channels", where)
        if self.num_channels % self.num_groups:
            raise ValueError(f"{where}: num_groups={num_groups} must divide "
                             f"num_channels={num_channels}")
        self.eps = _eps(eps, where)
        self.affine = bool(affine)
        dtype = float_dtype(dtype, device, where)
        C = check_parameter_shape((self.num_channels,), "num_channels", where)
        self._make_affine(C, self.affine, bias, dtype)

    def forward(self, input: Tensor) -> Tensor:
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class _InstanceNorm(_BatchNorm):
    """BatchNorm's arguments and buffers with PyTorch's InstanceNorm defaults (no affine,
    no running statistics).  ``num_batches_tracked`` exists with the running statistics
    but is never counted, as in PyTorch."""

    _batched_rank = 0

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = False, track_running_stats: bool = False,
                 device: Optional[str] = None, dtype: Optional[DTypeLike] = None, *,
                 bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype,
                         bias=bias)

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        where = type(self).__name__
        channel_axis = 1 if input.ndim == self._batched_rank else 0
        if input.shape[channel_axis] != self.num_features:
            if self.affine:
                raise ValueError(f"{where}: expected the input's size at dim={channel_axis} to "
                                 f"match num_features ({self.num_features}), got input of shape "
                                 f"{input.shape}")
            warnings.warn(f"{where}: the input's size at dim={channel_axis} does not match "
                          f"num_features ({self.num_features}); num_features is not used "
                          "because affine=False", stacklevel=2)
        unbatched = input.ndim < self._batched_rank
        x = F.unsqueeze(input, 0) if unbatched else input
        momentum = 0.0 if self.momentum is None else self.momentum
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training or not self.track_running_stats, momentum, self.eps)
        return F.squeeze(out, 0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) or unbatched (C, L) input.

    >>> import minipool as mp
    >>> mp.nn.InstanceNorm1d(2)(mp.tensor([[[0.0, 2.0], [5.0, 1.0]]])).numpy().round(4)
    array([[[-1.,  1.],
            [ 1., -1.]]], dtype=float32)
    """

    _ranks = (2, 3)
    _expected = "2D (unbatched) or 3D"
    _batched_rank = 3


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) or unbatched (C, H, W) input.

    >>> import minipool as mp
    >>> mp.nn.InstanceNorm2d(3)(mp.ones(2, 3, 4, 4)).shape
    (2, 3, 4, 4)
    """

    _ranks = (3, 4)
    _expected = "3D (unbatched) or 4D"
    _batched_rank = 4
