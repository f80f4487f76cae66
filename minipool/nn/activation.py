"""Parameter-free layers: activations, channel dropout and Flatten."""
from typing import Optional, Sequence

import minipool.nn.functional as F
from minipool._typing import GeneratorLike
from minipool import _random
from minipool.nn.module import Module
from minipool.ops.activations import keras_relu
from minipool.ops.shape import check_unflatten_sizes, unflatten
from minipool.tensor import Tensor

__all__ = ["ReLU", "Tanh", "Sigmoid", "Softmax", "Softmax2d", "LogSoftmax", "Flatten", "Unflatten", "Identity",
           "LeakyReLU", "GELU", "SiLU", "ELU", "ReLU6", "Hardtanh", "Softplus", "Dropout1d",
           "Dropout2d", "Dropout3d"]


class ReLU(Module):
    """``max(x, 0)`` as ``torch.nn.ReLU()``; with Keras's arguments, Keras's ReLU layer:
    ``max_value`` if ``x >= max_value``, ``x`` if ``threshold <= x < max_value``, else
    ``negative_slope * (x - threshold)`` (the gradient is that piece's slope: 0, 1 or
    ``negative_slope``; at ``x == max_value`` 0; at ``x == threshold > 0`` the ``x``
    piece, as Keras documents it; at ``x == threshold == 0`` ``negative_slope``, as
    relu/leaky_relu in PyTorch and TensorFlow).

    ``ReLU(True)`` / ``ReLU(inplace=True)`` is PyTorch's in-place form: honoured for
    a tensor outside any graph, refused (naming ``inplace=False``) for one that
    records gradients.

    >>> import minipool as mp
    >>> x = mp.tensor([-2.0, 0.5, 3.0, 8.0])
    >>> mp.nn.ReLU()(x).numpy()
    array([0. , 0.5, 3. , 8. ], dtype=float32)
    >>> mp.nn.ReLU(max_value=6.0, negative_slope=0.1, threshold=1.0)(x).numpy()
    array([-0.3 , -0.05,  3.  ,  6.  ], dtype=float32)
    """

    def __init__(self, max_value: Optional[float] = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, *, inplace: bool = False) -> None:
        super().__init__()
        if isinstance(max_value, bool):  # torch.nn.ReLU(True): PyTorch's positional inplace
            max_value, inplace = None, max_value
        for name, value in (("max_value", max_value), ("negative_slope", negative_slope),
                            ("threshold", threshold)):
            if value is None and name == "max_value":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
                    or value < 0 or value == float("inf") and name != "max_value":
                raise ValueError(f"ReLU: {name} must be a number >= 0"
                                 f"{' or None' if name == 'max_value' else ''}, got {value!r}")
        if not isinstance(inplace, bool):
            raise TypeError(f"ReLU: inplace must be a bool, got {inplace!r}")
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return keras_relu(x, self.max_value, self.negative_slope, self.threshold, self.inplace)

    def extra_repr(self) -> str:
        parts = [f"{name}={getattr(self, name)}" for name, default in
                 (("max_value", None), ("negative_slope", 0.0), ("threshold", 0.0))
                 if getattr(self, name) != default]
        return ", ".join(parts + (["inplace=True"] if self.inplace else []))


class Tanh(Module):
    """Elementwise ``tanh`` (``F.tanh``), as ``torch.nn.Tanh``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    """Elementwise logistic sigmoid (``F.sigmoid``), as ``torch.nn.Sigmoid``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Softmax(Module):
    """Softmax along ``dim`` (``F.softmax``), as ``torch.nn.Softmax``.  Without ``dim``,
    as ``F.softmax``: the last dim of a 1-d or 2-d input (PyTorch's implicit choice there),
    a ValueError naming ``dim`` beyond (PyTorch would pick dim 0 or 1 with a warning)."""

    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax2d(Module):
    """Softmax over the channels of each pixel: ``F.softmax(x, dim=-3)`` of a (N, C, H, W)
    or (C, H, W) input, as ``torch.nn.Softmax2d``."""

    def forward(self, x: Tensor) -> Tensor:
        if getattr(x, "ndim", None) not in (3, 4):
            raise ValueError(f"Softmax2d: input must be (N, C, H, W) or (C, H, W), "
                             f"got shape {getattr(x, 'shape', None)}")
        return F.softmax(x, -3)


class LogSoftmax(Softmax):
    """Log-softmax along ``dim`` (``F.log_softmax``), as ``torch.nn.LogSoftmax``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (by default all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size`` (one entry may be -1), as ``torch.nn.Unflatten``:
    the inverse of :class:`Flatten` (e.g. a decoder's Linear output back to (C, H, W)).

    >>> import minipool as mp
    >>> mp.nn.Unflatten(1, (2, 3))(mp.zeros(4, 6)).shape
    (4, 2, 3)
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"Unflatten: dim must be an int, got {type(dim).__name__}")
        check_unflatten_sizes(unflattened_size, "Unflatten", "unflattened_size")  # as PyTorch's
        self.dim, self.unflattened_size = dim, unflattened_size  # kept as given, for the repr

    def forward(self, x: Tensor) -> Tensor:
        return unflatten(x, self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Identity(Module):
    """Returns its input unchanged (a placeholder layer), as ``torch.nn.Identity``."""

    def forward(self, x: Tensor) -> Tensor:
        return x


class LeakyReLU(Module):
    """``F.leaky_relu(x, negative_slope)`` as a layer.

    >>> import minipool as mp
    >>> mp.nn.LeakyReLU(0.2)(mp.tensor([-1.0, 1.0])).numpy()
    array([-0.2,  1. ], dtype=float32)
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """``F.gelu(x, approximate)``: approximate is "none" (erf) or "tanh"."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate  # F.gelu checks it, in forward (as PyTorch)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """``F.silu(x)`` = x * sigmoid(x) as a layer."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ELU(Module):
    """``F.elu(x, alpha)`` as a layer."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha, self.inplace)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Hardtanh(Module):
    """``F.hardtanh(x, min_val, max_val)`` as a layer.

    >>> import minipool as mp
    >>> mp.nn.Hardtanh(-2.0, 2.0)
    Hardtanh(min_val=-2.0, max_val=2.0)
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val must be <= max_val, got min_val={min_val}, "
                             f"max_val={max_val}")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val, self.inplace)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    """``F.relu6(x)`` = hardtanh(x, 0, 6) as a layer."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Softplus(Module):
    """``F.softplus(x, beta, threshold)`` as a layer."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class _DropoutNd(Module):
    """Zero whole channels with probability ``p`` in training mode (``F.dropout1d/2d/3d``);
    the identity after ``.eval()``."""
    _dropout = None  # the functional form, set by each size

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 generator: GeneratorLike = None) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"{name}: p must be a probability in [0, 1], got {p!r}")
        self.p = p
        self.inplace = inplace
        self.generator = _random.kept(generator, name)

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._dropout(input, self.p, self.training, self.inplace,
                                   generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) or (C, L) input (see ``F.dropout1d``)."""
    _dropout = staticmethod(F.dropout1d)


class Dropout2d(_DropoutNd):
    """Zero whole channels with probability ``p`` in training mode (see ``F.dropout2d``);
    the identity after ``.eval()``.

    >>> import numpy as np, minipool as mp
    >>> mp.nn.Dropout2d(0.25, generator=np.random.default_rng(0))
    Dropout2d(p=0.25, inplace=False)
    """
    _dropout = staticmethod(F.dropout2d)


class Dropout3d(_DropoutNd):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) input (see ``F.dropout3d``)."""
    _dropout = staticmethod(F.dropout3d)
