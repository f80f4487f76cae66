"""Pooling layers: thin Modules over ``minipool.nn.functional`` (no math here).

PyTorch-named layers take PyTorch's arguments (channels-first by default);
the Keras-named ones (MaxPooling2D, AveragePooling2D, Global*Pooling2D) take
Keras's (pool_size, strides, padding="valid"/"same", data_format defaulting
to "channels_last", keepdims).

>>> import minipool as mp
>>> net = mp.nn.Sequential(mp.nn.MaxPool2d(2), mp.nn.GlobalAvgPool2d())
>>> net(mp.ones(4, 3, 8, 8)).shape
(4, 3)
"""
from typing import Optional, Sequence, Tuple, Union

import minipool.nn.functional as F
from minipool import _random
from minipool._typing import GeneratorLike, IntOrTuple, PoolOutput, TensorLike
from minipool._validate import parse_data_format
from minipool.nn.module import Module
from minipool.tensor import Tensor

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "MinPool2d", "AvgPool1d", "AvgPool2d",
           "AvgPool3d", "SumPool2d", "LPPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
           "AdaptiveMaxPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
           "GlobalMaxPool2d", "GlobalAvgPool2d", "StochasticPool2d", "MaxUnpool2d",
           "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "GlobalAveragePooling2D",
           "GlobalMaxPooling2D"]


def _describe(layer, names):
    return ", ".join(f"{n}={getattr(layer, n)!r}" for n in names)


class _MaxPoolNd(Module):
    _pool = None
    _shown = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                 padding: Union[IntOrTuple, str] = 0, dilation: IntOrTuple = 1,
                 return_indices: bool = False, ceil_mode: bool = False,
                 data_format: Optional[str] = None) -> None:
        super().__init__()
        # stride None means the kernel size, stored as such (PyTorch's layers do it too)
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode
        self.data_format = data_format

    def forward(self, input: Tensor) -> PoolOutput:
        return type(self)._pool(input, self.kernel_size, self.stride, self.padding, self.dilation,
                                self.ceil_mode, self.return_indices, data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, self._shown)


class MaxPool1d(_MaxPoolNd):
    """Max pooling over (N, C, L); see :func:`minipool.nn.functional.max_pool1d`."""

    _pool = staticmethod(F.max_pool1d)


class MaxPool2d(_MaxPoolNd):
    """Max pooling over (N, C, H, W); see :func:`minipool.nn.functional.max_pool2d`.

    >>> import minipool as mp
    >>> mp.nn.MaxPool2d(3, stride=2, padding=1)(mp.ones(1, 1, 6, 6)).shape
    (1, 1, 3, 3)
    """

    _pool = staticmethod(F.max_pool2d)


class MaxPool3d(_MaxPoolNd):
    """Max pooling over (N, C, D, H, W); see :func:`minipool.nn.functional.max_pool3d`."""

    _pool = staticmethod(F.max_pool3d)


class MinPool2d(_MaxPoolNd):
    """Min pooling (max pooling's rules mirrored); see :func:`minipool.nn.functional.min_pool2d`."""

    _pool = staticmethod(F.min_pool2d)


class _AvgPoolNd(Module):
    _pool = None
    _shown = ("kernel_size", "stride", "padding")

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                 padding: Union[IntOrTuple, str] = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: Optional[int] = None,
                 data_format: Optional[str] = None) -> None:
        super().__init__()
        # stride None means the kernel size, stored as such (PyTorch's layers do it too)
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override, self.data_format = divisor_override, data_format

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._pool(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad, self.divisor_override,
                                data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, self._shown)


class AvgPool1d(_AvgPoolNd):
    """Average pooling over (N, C, L); see :func:`minipool.nn.functional.avg_pool1d`."""

    _pool = staticmethod(F.avg_pool1d)


class AvgPool2d(_AvgPoolNd):
    """Average pooling over (N, C, H, W); see :func:`minipool.nn.functional.avg_pool2d`.

    >>> import minipool as mp
    >>> mp.nn.AvgPool2d(2)(mp.ones(1, 1, 4, 4)).numpy()[0, 0]
    array([[1., 1.],
           [1., 1.]], dtype=float32)
    """

    _pool = staticmethod(F.avg_pool2d)


class AvgPool3d(_AvgPoolNd):
    """Average pooling over (N, C, D, H, W); see :func:`minipool.nn.functional.avg_pool3d`."""

    _pool = staticmethod(F.avg_pool3d)


class SumPool2d(Module):
    """Sum pooling; see :func:`minipool.nn.functional.sum_pool2d`."""

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                 padding: Union[IntOrTuple, str] = 0, ceil_mode: bool = False,
                 data_format: Optional[str] = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.data_format = ceil_mode, data_format

    def forward(self, input: Tensor) -> Tensor:
        return F.sum_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("kernel_size", "stride", "padding"))


class LPPool2d(Module):
    """Power-average pooling; see :func:`minipool.nn.functional.lp_pool2d` (which
    documents the ceil_mode difference from PyTorch)."""

    def __init__(self, norm_type: float, kernel_size: IntOrTuple,
                 stride: Optional[IntOrTuple] = None, ceil_mode: bool = False,
                 data_format: Optional[str] = None) -> None:
        super().__init__()
        self.norm_type, self.kernel_size, self.stride = norm_type, kernel_size, stride
        self.ceil_mode, self.data_format = ceil_mode, data_format

    def forward(self, input: Tensor) -> Tensor:
        return F.lp_pool2d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode,
                           data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("norm_type", "kernel_size", "stride", "ceil_mode"))


class _AdaptiveMaxPoolNd(Module):
    """Adaptive max pooling to ``output_size`` over the last 1, 2 or 3 dims; see
    :func:`minipool.nn.functional.adaptive_max_pool2d` (and its 1d/3d forms)."""

    pool = None

    def __init__(self, output_size: IntOrTuple, return_indices: bool = False,
                 data_format: Optional[str] = None) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices
        self.data_format = data_format

    def forward(self, input: Tensor) -> PoolOutput:
        return type(self).pool(input, self.output_size, self.return_indices,
                               data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("output_size",))


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Adaptive max pooling of (C, L) or (N, C, L); see ``F.adaptive_max_pool1d``."""

    pool = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Adaptive max pooling of (C, H, W) or (N, C, H, W); see ``F.adaptive_max_pool2d``."""

    pool = staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Adaptive max pooling of (C, D, H, W) or (N, C, D, H, W); see ``F.adaptive_max_pool3d``."""

    pool = staticmethod(F.adaptive_max_pool3d)


class _AdaptiveAvgPoolNd(Module):
    """Adaptive average pooling to ``output_size`` over the last 1, 2 or 3 dims; see
    :func:`minipool.nn.functional.adaptive_avg_pool2d` (and its 1d/3d forms)."""

    pool = None

    def __init__(self, output_size: IntOrTuple, data_format: Optional[str] = None) -> None:
        super().__init__()
        self.output_size, self.data_format = output_size, data_format

    def forward(self, input: Tensor) -> Tensor:
        return type(self).pool(input, self.output_size, data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("output_size",))


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Adaptive average pooling of (C, L) or (N, C, L); see ``F.adaptive_avg_pool1d``."""

    pool = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Adaptive average pooling of (C, H, W) or (N, C, H, W); see ``F.adaptive_avg_pool2d``."""

    pool = staticmethod(F.adaptive_avg_pool2d)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Adaptive average pooling of (C, D, H, W) or (N, C, D, H, W); see
    ``F.adaptive_avg_pool3d``."""

    pool = staticmethod(F.adaptive_avg_pool3d)


class GlobalMaxPool2d(Module):
    """Max over H and W: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with keepdim."""

    def __init__(self, keepdim: bool = False, data_format: Optional[str] = None) -> None:
        super().__init__()
        self.keepdim, self.data_format = keepdim, data_format

    def forward(self, input: Tensor) -> Tensor:
        return F.global_max_pool2d(input, self.keepdim, data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("keepdim",))


class GlobalAvgPool2d(GlobalMaxPool2d):
    """Mean over H and W: (N, C, H, W) -> (N, C), or (N, C, 1, 1) with keepdim."""

    def forward(self, input: Tensor) -> Tensor:
        return F.global_avg_pool2d(input, self.keepdim, data_format=self.data_format)


class StochasticPool2d(Module):
    """Stochastic pooling (Zeiler & Fergus 2013): samples in training mode,
    probability-weighted average in eval mode.

    ``generator`` (an int seed or a ``numpy.random.Generator``) is turned into
    one Generator at construction, so a seeded layer draws a reproducible
    sequence of samples across calls.

    >>> import minipool as mp
    >>> layer = mp.nn.StochasticPool2d(2, generator=0)
    >>> layer.eval()(mp.tensor([[[1.0, 3.0], [0.0, 0.0]]])).numpy()
    array([[[2.5]]], dtype=float32)
    """

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                 generator: GeneratorLike = None, data_format: Optional[str] = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.data_format = kernel_size, stride, data_format
        self.generator = _random.kept(generator, "StochasticPool2d")

    def forward(self, input: Tensor) -> Tensor:
        return F.stochastic_pool2d(input, self.kernel_size, self.stride, training=self.training,
                                   generator=self.generator, data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("kernel_size", "stride"))


class MaxUnpool2d(Module):
    """Inverse of MaxPool2d given its indices; see :func:`minipool.nn.functional.max_unpool2d`.

    >>> import minipool as mp
    >>> y, idx = mp.nn.MaxPool2d(2, return_indices=True)(mp.arange(16.0).reshape(1, 1, 4, 4))
    >>> mp.nn.MaxUnpool2d(2)(y, idx).shape
    (1, 1, 4, 4)
    """

    def __init__(self, kernel_size: IntOrTuple, stride: Optional[IntOrTuple] = None,
                 padding: Union[IntOrTuple, str] = 0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, input: Tensor, indices: Tensor,
                output_size: Optional[IntOrTuple] = None) -> PoolOutput:
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self) -> str:
        return _describe(self, ("kernel_size", "stride", "padding"))


# ----------------------------------------------------------------------------- Keras names
def _keras_format(data_format):
    return "channels_last" if data_format is None else data_format


class MaxPooling2D(Module):
    """Keras's MaxPooling2D: ``pool_size``, ``strides`` (default pool_size),
    ``padding`` "valid"/"same", ``data_format`` "channels_last" by default.

    >>> import minipool as mp
    >>> mp.nn.MaxPooling2D(padding="same")(mp.ones(1, 5, 5, 3)).shape
    (1, 3, 3, 3)
    """

    _pool = staticmethod(F.max_pool2d)

    def __init__(self, pool_size: IntOrTuple = (2, 2), strides: Optional[IntOrTuple] = None,
                 padding: Union[IntOrTuple, str] = "valid",
                 data_format: Optional[str] = None) -> None:
        super().__init__()
        self.pool_size, self.strides, self.padding = pool_size, strides, padding
        self.data_format = _keras_format(data_format)

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._pool(input, self.pool_size, self.strides, self.padding,
                                data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("pool_size", "strides", "padding", "data_format"))


MaxPool2D = MaxPooling2D


class AveragePooling2D(MaxPooling2D):
    """Keras's AveragePooling2D; padding="same" divides by the real cells only."""

    _pool = staticmethod(F.avg_pool2d)


class GlobalAveragePooling2D(Module):
    """Keras's GlobalAveragePooling2D: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims."""

    _pool = staticmethod(F.global_avg_pool2d)

    def __init__(self, data_format: Optional[str] = None, keepdims: bool = False) -> None:
        super().__init__()
        self.data_format, self.keepdims = _keras_format(data_format), keepdims

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._pool(input, self.keepdims, data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("data_format", "keepdims"))


class GlobalMaxPooling2D(GlobalAveragePooling2D):
    """Keras's GlobalMaxPooling2D: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims."""

    _pool = staticmethod(F.global_max_pool2d)


# ----------------------------------------------------------------------------- BlurPool (Zhang 2019)
class BlurPool2d(Module):
    """BlurPool: binomial blur with reflect padding, then subsampling; see
    :func:`minipool.nn.functional.blur_pool2d`.  ``channels`` (as the paper's
    ``Downsample(channels)``) is optional; when given, inputs must have that many.

    >>> import minipool as mp
    >>> mp.nn.BlurPool2d(4)(mp.ones(2, 4, 8, 8)).shape
    (2, 4, 4, 4)
    """

    def __init__(self, channels: Optional[int] = None, kernel_size: IntOrTuple = 3,
                 stride: IntOrTuple = 2, data_format: Optional[str] = None) -> None:
        super().__init__()
        if channels is not None and (isinstance(channels, bool) or not isinstance(channels, int)
                                     or channels < 1):
            raise ValueError(f"BlurPool2d: channels must be None or an int >= 1, got {channels!r}")
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.data_format = data_format

    def _check_channels(self, input):
        if self.channels is None:
            return
        shape = getattr(input, "shape", None)
        if shape is None or len(shape) not in (3, 4):
            return  # the functional names the rank problem
        try:
            last = parse_data_format(type(self).__name__, self.data_format)
        except ValueError:
            return  # the functional names the bad data_format
        got = shape[-1] if last else shape[-3]
        if got != self.channels:
            raise ValueError(f"{type(self).__name__}: expected {self.channels} channels "
                             f"(channels={self.channels}), got input of shape {tuple(shape)}")

    def forward(self, input: Tensor) -> Tensor:
        self._check_channels(input)
        return F.blur_pool2d(input, self.kernel_size, self.stride, data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("channels", "kernel_size", "stride"))


class MaxBlurPool2d(BlurPool2d):
    """MaxBlurPool (Zhang 2019): ``MaxPool2d(kernel_size, stride=1)`` then
    ``BlurPool2d(blur_kernel_size, stride)``, the paper's replacement for
    ``MaxPool2d(2)``; see :func:`minipool.nn.functional.max_blur_pool2d`.

    >>> import minipool as mp
    >>> mp.nn.MaxBlurPool2d()(mp.ones(1, 3, 28, 28)).shape
    (1, 3, 14, 14)
    """

    def __init__(self, kernel_size: IntOrTuple = 2, blur_kernel_size: IntOrTuple = 3,
                 stride: IntOrTuple = 2, channels: Optional[int] = None,
                 data_format: Optional[str] = None) -> None:
        super().__init__(channels, blur_kernel_size, stride, data_format)
        self.kernel_size, self.blur_kernel_size = kernel_size, blur_kernel_size

    def forward(self, input: Tensor) -> Tensor:
        self._check_channels(input)
        return F.max_blur_pool2d(input, self.kernel_size, self.blur_kernel_size, self.stride,
                                 data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("kernel_size", "blur_kernel_size", "stride", "channels"))


__all__ += ["BlurPool2d", "MaxBlurPool2d"]


# ------------------------------------------------------------------- fractional, LP 3-d, SPP
class _FractionalMaxPoolNd(Module):
    _pool = None

    def __init__(self, kernel_size: IntOrTuple, output_size: Optional[IntOrTuple] = None,
                 output_ratio: Optional[Union[float, Tuple[float, ...]]] = None,
                 return_indices: bool = False, _random_samples: Optional[TensorLike] = None,
                 generator: GeneratorLike = None, data_format: Optional[str] = None) -> None:
        super().__init__()
        name = type(self).__name__
        if output_size is None and output_ratio is None:
            raise ValueError(f"{name} needs output_size or output_ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError(f"{name}: give only one of output_size and output_ratio")
        if output_ratio is not None:
            ratios = output_ratio if isinstance(output_ratio, (tuple, list)) else (output_ratio,)
            if not all(isinstance(r, (int, float)) and not isinstance(r, bool) and 0 < r < 1
                       for r in ratios):
                raise ValueError(f"{name}: output_ratio must be between 0 and 1 (exclusive), "
                                 f"got {output_ratio!r}")
        self.kernel_size, self.output_size = kernel_size, output_size
        self.output_ratio = output_ratio
        self.return_indices, self.data_format = return_indices, data_format
        self.register_buffer("_random_samples", _random_samples)  # as PyTorch: in state_dict
        # a seed becomes one Generator here, so a seeded layer draws a reproducible sequence
        self.generator = _random.kept(generator, name)

    def forward(self, input: Tensor) -> PoolOutput:
        return type(self)._pool(input, self.kernel_size, self.output_size, self.output_ratio,
                                self.return_indices, _random_samples=self._random_samples,
                                generator=self.generator, data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("kernel_size", "output_size", "output_ratio"))


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """Fractional max pooling (Graham 2014); see
    :func:`minipool.nn.functional.fractional_max_pool2d`.  ``output_ratio``
    must lie in (0, 1), as in PyTorch.  Fixed ``_random_samples`` (PyTorch's
    argument) give the same windows on every call; else each call draws new
    ones from ``generator`` (None: the shared generator ``mp.manual_seed`` seeds).

    >>> import minipool as mp
    >>> mp.nn.FractionalMaxPool2d(2, output_ratio=0.5)(mp.ones(1, 3, 10, 10)).shape
    (1, 3, 5, 5)
    """

    _pool = staticmethod(F.fractional_max_pool2d)


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """Fractional max pooling over (N, C, D, H, W); see :class:`FractionalMaxPool2d`."""

    _pool = staticmethod(F.fractional_max_pool3d)


class LPPool1d(LPPool2d):
    """1-d power-average pooling; see :func:`minipool.nn.functional.lp_pool1d`."""

    def forward(self, input: Tensor) -> Tensor:
        return F.lp_pool1d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode,
                           data_format=self.data_format)


class LPPool3d(LPPool2d):
    """3-d power-average pooling; see :func:`minipool.nn.functional.lp_pool3d`.

    >>> import minipool as mp
    >>> mp.nn.LPPool3d(2, 2)(mp.ones(1, 1, 4, 4, 4)).shape
    (1, 1, 2, 2, 2)
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.lp_pool3d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode,
                           data_format=self.data_format)


class SpatialPyramidPool2d(Module):
    """Spatial pyramid pooling (He et al. 2014): (N, C, H, W) of any H, W ->
    (N, C * sum(l*l)); see :func:`minipool.nn.functional.spatial_pyramid_pool2d`.

    >>> import minipool as mp
    >>> mp.nn.SpatialPyramidPool2d((1, 2, 4))(mp.ones(2, 3, 13, 9)).shape
    (2, 63)
    """

    def __init__(self, levels: Sequence[int] = (1, 2, 4), mode: str = "max",
                 data_format: Optional[str] = None) -> None:
        super().__init__()
        # F.spatial_pyramid_pool2d checks them at each call
        self.levels, self.mode, self.data_format = levels, mode, data_format

    def forward(self, input: Tensor) -> Tensor:
        return F.spatial_pyramid_pool2d(input, self.levels, self.mode,
                                        data_format=self.data_format)

    def extra_repr(self) -> str:
        return _describe(self, ("levels", "mode"))

__all__ += ["FractionalMaxPool2d", "FractionalMaxPool3d", "LPPool1d", "LPPool3d",
            "SpatialPyramidPool2d"]
