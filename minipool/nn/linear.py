"""Fully connected layer and dropout."""
from typing import Optional

import numpy as np

import minipool.nn.functional as F
from minipool._typing import DTypeLike, GeneratorLike
from minipool import _random
from minipool._validate import check_parameter_shape, single_int
from minipool.nn import init
from minipool.nn.module import Module, Parameter
from minipool.tensor import Tensor, get_default_dtype

__all__ = ["Linear", "Dropout"]


class Linear(Module):
    """y = x @ weight.T + bias, with weight (out_features, in_features).

    Initialised as in PyTorch (``init.default_layer_init_``); ``generator``
    makes the initial values reproducible.

    >>> import numpy as np, minipool as mp
    >>> fc = mp.nn.Linear(400, 120, generator=np.random.default_rng(0))
    >>> fc
    Linear(in_features=400, out_features=120, bias=True)
    >>> fc(mp.zeros(64, 400)).shape
    (64, 120)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 dtype: Optional[DTypeLike] = None, generator: GeneratorLike = None) -> None:
        super().__init__()
        self.in_features = single_int(in_features, "in_features", "Linear")
        self.out_features = single_int(out_features, "out_features", "Linear")
        shape = check_parameter_shape((self.out_features, self.in_features),
                                      "in_features and out_features", "Linear")
        dtype = get_default_dtype() if dtype is None else dtype
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype=dtype)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: GeneratorLike = None) -> None:
        init.default_layer_init_(self.weight, self.bias, generator)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Dropout(Module):
    """Zero elements with probability ``p`` in training mode (scaling the rest by
    1/(1-p)); the identity after ``.eval()``.

    >>> import numpy as np, minipool as mp
    >>> drop = mp.nn.Dropout(0.25, generator=np.random.default_rng(0))
    >>> drop
    Dropout(p=0.25, inplace=False)
    >>> drop.eval()(mp.ones(3)).numpy()
    array([1., 1., 1.], dtype=float32)
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 generator: GeneratorLike = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p = p
        self.inplace = inplace
        self.generator = _random.kept(generator, "Dropout")

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
