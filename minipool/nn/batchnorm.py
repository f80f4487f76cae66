"""Batch normalisation layers: BatchNorm1d and BatchNorm2d, as PyTorch's.

The running statistics are buffers (``register_buffer``): ``running_mean``
(zeros), ``running_var`` (ones) and ``num_batches_tracked`` (an int64
count), saved in ``state_dict`` under PyTorch's keys.  In training mode the
layer normalises with the batch statistics and updates the running ones
(``momentum=None``: a cumulative average, ``1 / num_batches_tracked``); in
eval mode it normalises with the running statistics.  With
``track_running_stats=False`` there are no buffers and the batch statistics
are used in both modes.  The math is ``F.batch_norm``.

>>> import minipool as mp
>>> bn = mp.nn.BatchNorm2d(3)
>>> bn
BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
>>> list(bn.state_dict())
['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
>>> bn(mp.ones(2, 3, 4, 4)).shape
(2, 3, 4, 4)
>>> int(bn.num_batches_tracked.item())
1
"""
from typing import Optional

import numpy as np

import minipool.nn.functional as F
from minipool._typing import DTypeLike
from minipool._validate import check_parameter_shape, float_dtype, parse_data_format, single_int
from minipool.nn.module import Module, Parameter
from minipool.tensor import Tensor

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    _ranks = ()  # the input ranks the layer accepts
    _expected = ""
    _optional_state = ("num_batches_tracked",)  # checkpoints of PyTorch before 0.4.1 lack it

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 device: Optional[str] = None, dtype: Optional[DTypeLike] = None, *,
                 bias: bool = True, data_format: Optional[str] = None) -> None:
        super().__init__()
        where = type(self).__name__
        self.num_features = single_int(num_features, "num_features", where)
        check_parameter_shape((self.num_features,), "num_features", where)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
            raise ValueError(f"{where}: eps must be a number >= 0, got {eps!r}")
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, (int, float))
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"{where}: momentum must be a number in [0, 1] or None "
                             f"(cumulative average), got {momentum!r}")
        dtype = float_dtype(dtype, device, where)
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.data_format = "channels_last" if parse_data_format(where, data_format) else "channels_first"
        C = self.num_features
        self.weight = Parameter(np.ones(C, dtype)) if self.affine else None
        self.bias = Parameter(np.zeros(C, dtype)) if self.affine and bias else None
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(C, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(C, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, np.int64)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean._data[...] = 0
            self.running_var._data[...] = 1
            self.num_batches_tracked._data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            self.weight._data[...] = 1
        if self.bias is not None:
            self.bias._data[...] = 0

    def _check_input_dim(self, input):
        ndim = getattr(input, "ndim", None)
        if ndim not in self._ranks:
            raise ValueError(f"{type(self).__name__}: expected {self._expected} input "
                             f"(got {ndim}D input)")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats
        if counting:
            batches = int(self.num_batches_tracked._data) + 1
            if self.momentum is None:  # cumulative moving average over the batches seen
                factor = 1.0 / batches
        use_batch_stats = self.training or self.running_mean is None
        # training with track_running_stats switched off after construction: the buffers
        # stay as they are (PyTorch passes no running statistics then)
        keep = not self.training or self.track_running_stats
        out = F.batch_norm(input, self.running_mean if keep else None,
                           self.running_var if keep else None, self.weight, self.bias,
                           use_batch_stats, factor, self.eps, data_format=self.data_format)
        if counting:  # counted once the batch went through (a refused batch leaves no trace)
            self.num_batches_tracked._data[...] = batches
        return out

    def extra_repr(self) -> str:
        s = (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
             f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")
        if self.data_format == "channels_last":
            s += ", data_format='channels_last'"
        return s


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input (channels last: (N, L, C)).

    >>> import minipool as mp
    >>> bn = mp.nn.BatchNorm1d(2, affine=False)
    >>> bn(mp.tensor([[100.0, 400.0], [300.0, 0.0]])).numpy()
    array([[-1.,  1.],
           [ 1., -1.]], dtype=float32)
    """

    _ranks = (2, 3)
    _expected = "2D or 3D"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input (channels last: (N, H, W, C)).

    >>> import minipool as mp
    >>> bn = mp.nn.BatchNorm2d(4, data_format="channels_last").eval()
    >>> bn(mp.ones(2, 5, 5, 4)).shape
    (2, 5, 5, 4)
    """

    _ranks = (4,)
    _expected = "4D"
