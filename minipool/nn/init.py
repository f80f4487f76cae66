"""Parameter initialisation, in place, with PyTorch's formulas (``torch.nn.init``).

Every function fills ``tensor`` in place and returns ``tensor``.  Pass
``generator`` (a ``np.random.Generator`` or an int seed) for reproducible
values; without one the shared default from ``minipool._random`` is used
(``mp.manual_seed`` reseeds it).

>>> import numpy as np, minipool as mp
>>> from minipool.nn import init
>>> w = mp.zeros(120, 400)
>>> _ = init.kaiming_uniform_(w, a=5 ** 0.5, generator=np.random.default_rng(0))
>>> bool(np.abs(w.numpy()).max() <= 1 / 400 ** 0.5)
True
"""
import math
import statistics
from typing import Optional, Tuple

import numpy as np

from minipool import _random
from minipool._random import manual_seed  # noqa: F401  (re-exported for convenience)
from minipool._typing import GeneratorLike
from minipool.tensor import FLOAT_DTYPES, Tensor, no_grad

__all__ = ["calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
           "fan_in_and_fan_out", "default_layer_init_", "manual_seed", "trunc_normal_",
           "orthogonal_", "eye_", "dirac_"]


def _target(tensor, where):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{where}: tensor must be a minipool Tensor or Parameter, "
                        f"got {type(tensor).__name__}")
    if tensor.dtype not in FLOAT_DTYPES:
        raise TypeError(f"init.{where}: tensor must be float32 or float64, got {tensor.dtype}")
    return tensor


def _fill(tensor, values):
    tensor._data[...] = values  # in place: views of the parameter see the new values
    return tensor


def calculate_gain(nonlinearity: str, param: Optional[float] = None) -> float:
    """The recommended gain for ``nonlinearity`` (PyTorch's table).

    >>> calculate_gain("relu") == 2 ** 0.5, calculate_gain("tanh")
    (True, 1.6666666666666667)
    """
    linear_like = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                   "conv_transpose2d", "conv_transpose3d", "sigmoid")
    if nonlinearity in linear_like:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, (int, float)):
            raise ValueError(f"calculate_gain: param must be a number for leaky_relu, got {param!r}")
        else:
            slope = param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def fan_in_and_fan_out(tensor: Tensor) -> Tuple[int, int]:
    """(fan_in, fan_out) of a weight: dims 1 and 0 times the receptive field size.

    >>> import minipool as mp
    >>> fan_in_and_fan_out(mp.zeros(6, 1, 5, 5))
    (25, 150)
    """
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, "
                         f"got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


_calculate_fan_in_and_fan_out = fan_in_and_fan_out  # PyTorch's (private) name, used in the wild


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: GeneratorLike = None) -> Tensor:
    """Fill with samples from U(a, b): ``tensor.uniform_(a, b)``, also on a parameter.

    >>> import minipool as mp
    >>> w = uniform_(mp.zeros(4), 2.0, 3.0, generator=0).numpy()
    >>> bool(((w >= 2) & (w < 3)).all())
    True
    """
    _target(tensor, "uniform_")
    if not a <= b:
        raise ValueError(f"init.uniform_: needs a <= b, got a={a}, b={b}")
    with no_grad():
        return tensor.uniform_(a, b, generator=generator)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: GeneratorLike = None) -> Tensor:
    """Fill with samples from N(mean, std**2): ``tensor.normal_(mean, std)``, also on a parameter.

    >>> import minipool as mp
    >>> normal_(mp.zeros(3), std=0.0).tolist()
    [0.0, 0.0, 0.0]
    """
    _target(tensor, "normal_")
    if std < 0:
        raise ValueError(f"init.normal_: std must be >= 0, got {std}")
    with no_grad():
        return tensor.normal_(mean, std, generator=generator)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``.

    >>> import minipool as mp
    >>> constant_(mp.zeros(2), 0.5).tolist()
    [0.5, 0.5]
    """
    return _fill(_target(tensor, "constant_"), val)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-d tensor with the identity (ones on the main diagonal), as PyTorch's ``eye_``.

    >>> import minipool as mp
    >>> eye_(mp.zeros(2, 3)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    tensor = _target(tensor, "eye_")
    if tensor.ndim != 2:
        raise ValueError(f"init.eye_: needs a 2-d tensor, got shape {tensor.shape}")
    return _fill(tensor, np.eye(*tensor.shape))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-d convolution weight with the Dirac delta: each of the first output
    channels of a group passes its input channel through unchanged (the kernel's centre tap),
    as PyTorch's ``dirac_``.

    >>> import minipool as mp
    >>> dirac_(mp.ones(2, 2, 3))[:, :, 1].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    tensor = _target(tensor, "dirac_")
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"init.dirac_: needs a 3-, 4- or 5-d tensor, got shape {tensor.shape}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 \
            or tensor.shape[0] % groups:
        raise ValueError(f"init.dirac_: groups must be an int >= 1 dividing dim 0 "
                         f"({tensor.shape[0]}), got {groups!r}")
    per_group = tensor.shape[0] // groups
    values = np.zeros(tensor.shape)
    centre = tuple(size // 2 for size in tensor.shape[2:])
    for g in range(groups):
        for d in range(min(per_group, tensor.shape[1])):
            values[(g * per_group + d, d) + centre] = 1.0
    return _fill(tensor, values)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros.

    >>> import minipool as mp
    >>> zeros_(mp.ones(2)).tolist()
    [0.0, 0.0]
    """
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones.

    >>> import minipool as mp
    >>> ones_(mp.zeros(2)).tolist()
    [1.0, 1.0]
    """
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: GeneratorLike = None) -> Tensor:
    """U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010).

    >>> import minipool as mp
    >>> bool(abs(xavier_uniform_(mp.zeros(3, 5), generator=0).numpy()).max() <= 0.75 ** 0.5)
    True
    """
    fan_in, fan_out = fan_in_and_fan_out(_target(tensor, "xavier_uniform_"))
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: GeneratorLike = None) -> Tensor:
    """N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out)).

    >>> import minipool as mp
    >>> xavier_normal_(mp.zeros(300, 500), generator=0).numpy().std().round(3)
    np.float32(0.05)
    """
    fan_in, fan_out = fan_in_and_fan_out(_target(tensor, "xavier_normal_"))
    std = gain * math.sqrt(2.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor, a, mode, nonlinearity, where):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init.{where}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(_target(tensor, where))
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        return 0.0
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator: GeneratorLike = None) -> Tensor:
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al., 2015).

    PyTorch's default for Conv2d and Linear weights is ``a=sqrt(5)``, which makes
    b = 1 / sqrt(fan_in).

    >>> import minipool as mp
    >>> w = kaiming_uniform_(mp.zeros(4, 16), a=5 ** 0.5, generator=0).numpy()
    >>> bool(abs(w).max() <= 0.25)
    True
    """
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator: GeneratorLike = None) -> Tensor:
    """N(0, std**2) with std = gain / sqrt(fan).

    >>> import minipool as mp
    >>> kaiming_normal_(mp.zeros(500, 200), nonlinearity="relu", generator=0).numpy().std().round(2)
    np.float32(0.1)
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    return normal_(tensor, 0.0, std, generator)


def default_layer_init_(weight: Tensor, bias: Optional[Tensor] = None,
                        generator: GeneratorLike = None) -> None:
    """PyTorch's default for Linear and Conv2d: ``kaiming_uniform_(weight, a=sqrt(5))``
    (i.e. U(+-1/sqrt(fan_in))) and bias ~ U(+-1/sqrt(fan_in)).

    >>> import minipool as mp
    >>> w, b = mp.zeros(3, 4), mp.zeros(3)
    >>> default_layer_init_(w, b, generator=0); bool(abs(b.numpy()).max() <= 0.5)
    True
    """
    # Resolved once: an int seed must give one stream for weight then bias, not two equal ones.
    generator = _random.resolve(generator, "init.default_layer_init_")
    kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        fan_in, _ = fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound, generator)


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: GeneratorLike = None) -> Tensor:
    """Fill with samples from N(mean, std**2) truncated to [a, b] (absolute bounds, as
    PyTorch's).  Drawn by redrawing the samples that fall outside while the interval
    holds a fair share of the mass, else by the inverse normal CDF of a uniform sample
    over the interval's probability range; both give exactly the truncated law.

    >>> import minipool as mp
    >>> w = trunc_normal_(mp.zeros(1000), a=-0.5, b=0.5, generator=0).numpy()
    >>> bool(w.min() >= -0.5 and w.max() <= 0.5)
    True
    """
    _target(tensor, "trunc_normal_")
    for name, value in (("mean", mean), ("std", std), ("a", a), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(f"init.trunc_normal_: {name} must be a number, got {value!r}")
    if not std > 0:
        raise ValueError(f"init.trunc_normal_: std must be > 0, got {std}")
    if not a < b:
        raise ValueError(f"init.trunc_normal_: needs a < b, got a={a}, b={b}")
    rng = _random.resolve(generator, "init.trunc_normal_")
    unit = statistics.NormalDist()
    low, high = unit.cdf((a - mean) / std), unit.cdf((b - mean) / std)
    n = int(np.prod(tensor.shape))
    if high - low >= 0.25:  # on average fewer than 4 draws per sample
        values = np.empty(0)
        while values.size < n:
            draws = rng.normal(mean, std, 2 * (n - values.size) + 16)
            values = np.concatenate([values, draws[(draws >= a) & (draws <= b)]])
        values = values[:n]
    else:  # a far tail: sample the CDF range (one Python call per value; rare and small)
        u = rng.uniform(low, high, n)
        values = np.array([mean + std * unit.inv_cdf(min(max(p, 1e-300), 1 - 1e-16)) for p in u])
        values = np.clip(values, a, b)
    return _fill(tensor, values.reshape(tensor.shape))


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: GeneratorLike = None) -> Tensor:
    """Fill with a (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2013), as PyTorch's:
    the tensor is seen as (shape[0], rest); its rows (or columns, whichever are fewer)
    are orthonormal.  Q of the QR decomposition of a Gaussian matrix, with the signs of
    R's diagonal folded in so the law is uniform (Haar).

    >>> import numpy as np, minipool as mp
    >>> q = orthogonal_(mp.zeros(3, 5, dtype=mp.float64), generator=0).numpy()
    >>> np.allclose(q @ q.T, np.eye(3))
    True
    """
    _target(tensor, "orthogonal_")
    if tensor.ndim < 2:
        raise ValueError(f"init.orthogonal_: tensor must have at least 2 dimensions, "
                         f"got shape {tensor.shape}")
    if tensor._data.size == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor._data.size // rows
    rng = _random.resolve(generator, "init.orthogonal_")
    flat = rng.normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(tensor.shape))
