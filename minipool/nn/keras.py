"""Keras-named layers: Dense, Conv2D, Conv2DTranspose, BatchNormalization, ZeroPadding2D,
Activation (the Keras pooling and upsampling names live with their PyTorch kin in
``pooling.py`` and ``upsampling.py``; ``nn.ReLU`` takes Keras's arguments too).

They take Keras's arguments and defaults (``data_format="channels_last"``,
``padding="valid"|"same"`` with TensorFlow's SAME split, ``activation="relu"``
strings, ``use_bias``) and, as in Keras, infer their input size from the first
call (``Dense`` its input features, the convolutions their input channels,
``BatchNormalization`` its channels).  Until then they hold no parameters:
call the model once on a sample batch (or ``layer.build(input_shape)``, or give
``input_shape=`` / ``input_dim=`` at construction) *before* handing
``model.parameters()`` to an optimiser.  Each layer builds its weights in the
first input's dtype unless ``dtype=`` is given.

Weights are stored in PyTorch's layout, not Keras's: ``Dense.weight`` is
(units, in_features) (Keras's kernel is (in_features, units)), ``Conv2D.weight``
(filters, in_channels, kh, kw) (Keras: HWIO (kh, kw, in_channels, filters)) and
``Conv2DTranspose.weight`` (in_channels, filters, kh, kw) (Keras: (kh, kw,
filters, in_channels)).  ``get_weights()`` / ``set_weights()`` convert to and
from Keras's layouts, in Keras's order ([kernel, bias], or [gamma, beta,
moving_mean, moving_variance]).  Initialisation is Keras's default:
Glorot-uniform kernels, zero biases.

Whether a layer trains (batch statistics in BatchNormalization) follows
``model.train()`` / ``model.eval()``, as every minipool layer, not a
``training=`` call argument.

>>> import numpy as np, minipool as mp
>>> net = mp.nn.Sequential(mp.nn.Conv2D(8, 3, padding="same", activation="relu"),
...                        mp.nn.MaxPool2D(2, strides=2), mp.nn.Flatten(), mp.nn.Dense(10))
>>> net(mp.zeros(4, 28, 28, 1)).shape
(4, 10)
>>> net[0].weight.shape, net[0].get_weights()[0].shape  # PyTorch layout inside, HWIO outside
((8, 1, 3, 3), (3, 3, 1, 8))
"""
import numbers
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

import minipool.nn.functional as F
from minipool._typing import DTypeLike, GeneratorLike, IntOrTuple
from minipool.nn import init
from minipool._validate import check_parameter_shape, int_tuple, parse_data_format, single_int
from minipool.nn.module import Module, Parameter
from minipool.ops.batchnorm import normalize_over_axis
from minipool.ops.elementwise import as_tensor
from minipool.tensor import FLOAT_DTYPES, Tensor, get_default_dtype

__all__ = ["Dense", "Conv2D", "Convolution2D", "Conv2DTranspose", "Convolution2DTranspose",
           "BatchNormalization", "ZeroPadding2D", "Activation"]


# ----------------------------------------------------------------------------- shared pieces
def _softmax(x):
    return F.softmax(x, -1)


def _log_softmax(x):
    return F.log_softmax(x, -1)


def _activation_table():
    table = {"linear": None, "relu": F.relu, "sigmoid": F.sigmoid, "tanh": F.tanh,
             "softmax": _softmax, "log_softmax": _log_softmax, "exponential": F.exp}
    # the activations another part of minipool adds, under Keras's names, when present
    for keras_name, name in (("elu", "elu"), ("gelu", "gelu"), ("silu", "silu"),
                             ("swish", "silu"), ("relu6", "relu6"), ("leaky_relu", "leaky_relu"),
                             ("softplus", "softplus")):
        if hasattr(F, name):
            table[keras_name] = getattr(F, name)
    return table


def get_activation(activation, where="Activation"):
    """Keras's ``activation`` argument as a function (None for the identity):
    None, a name such as "relu" (see the error for the list) or a callable."""
    if activation is None:
        return None
    if callable(activation):
        return activation
    table = _activation_table()
    if isinstance(activation, str) and activation.lower() in table:
        return table[activation.lower()]
    raise ValueError(f"{where}: activation must be None, a callable or one of "
                     f"{', '.join(sorted(table))}; got {activation!r}")


def _activation_name(activation):
    if activation is None or isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", type(activation).__name__)


def _keras_padding(padding, where):
    if isinstance(padding, str) and padding.lower() in ("valid", "same"):
        return padding.lower()
    raise ValueError(f"{where}: padding must be 'valid' or 'same', got {padding!r}")


def _keras_format(data_format, where):
    """Keras's data_format (None means channels_last) as its canonical spelling."""
    return "channels_last" if parse_data_format(where, data_format, default="channels_last") \
        else "channels_first"


MAX_PADDING = 2 ** 31 - 1  # as conv2d's geometry limit


def _same_pads(size, kernel, stride, dilation):
    """TensorFlow's SAME padding along one axis: (before, after), the odd one after."""
    effective = dilation * (kernel - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class _Lazy(Module):
    """A Keras-style layer: parameters made by ``build`` from the first input's shape."""

    def __init__(self, dtype: Optional[DTypeLike], generator: GeneratorLike,
                 input_shape: Optional[Sequence[int]] = None) -> None:
        super().__init__()
        self.built = False
        self._dtype = None if dtype is None else np.dtype(dtype)
        if self._dtype is not None and self._dtype not in FLOAT_DTYPES:
            raise TypeError(f"{type(self).__name__}: dtype must be float32 or float64, got {self._dtype}")
        self._generator = generator
        self._pending_shape = input_shape

    def _finish_init(self):
        if self._pending_shape is not None:  # Keras's input_shape= (without the batch axis)
            self.build((None,) + tuple(self._pending_shape))

    def build(self, input_shape: Sequence[Optional[int]],
              dtype: Optional[DTypeLike] = None) -> None:
        """Make the parameters for inputs of ``input_shape`` (the batch entry may be None)."""
        raise NotImplementedError(f"{type(self).__name__} must define build(input_shape, dtype)")

    def _weight_dtype(self, dtype):
        if self._dtype is not None:
            return self._dtype
        dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
        return dtype if dtype in FLOAT_DTYPES else get_default_dtype()

    def forward(self, x: Tensor) -> Tensor:
        x = as_tensor(x)
        if not self.built:
            self.build(x.shape, x.dtype)
        return self.call(x)

    def call(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define call(x)")

    def get_weights(self) -> List[np.ndarray]:
        """The weights as NumPy arrays in Keras's layout and order (empty until built)."""
        return []

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Load arrays given in Keras's layout and order (builds nothing: call after building)."""
        own = self.get_weights()
        weights = [np.asarray(w) for w in weights]
        if not self.built:
            raise ValueError(f"{type(self).__name__}.set_weights: the layer is not built yet; "
                             "call it once (or build(input_shape)) first")
        if len(weights) != len(own) or any(w.shape != o.shape for w, o in zip(weights, own)):
            raise ValueError(f"{type(self).__name__}.set_weights: expected shapes "
                             f"{[o.shape for o in own]}, got {[w.shape for w in weights]}")
        self._load_keras(weights)

    def _load_keras(self, weights):
        raise NotImplementedError(f"{type(self).__name__} must define _load_keras(weights)")


def _apply(fn, x):
    return x if fn is None else fn(x)


# ----------------------------------------------------------------------------- Dense
class Dense(_Lazy):
    """Keras's Dense: ``activation(x @ kernel + bias)`` over the last axis.

    ``weight`` is (units, in_features) (PyTorch's layout; ``get_weights()``
    gives Keras's (in_features, units) kernel).  in_features comes from the
    first call, or from ``input_dim=`` / ``input_shape=``.

    >>> import minipool as mp
    >>> layer = mp.nn.Dense(3, activation="relu", input_dim=4)
    >>> layer
    Dense(units=3, activation='relu', use_bias=True, in_features=4)
    >>> layer(mp.ones(2, 4)).shape
    (2, 3)
    """

    def __init__(self, units: int, activation: Optional[Union[str, Callable[..., Tensor]]] = None,
                 use_bias: bool = True, *, input_dim: Optional[int] = None,
                 input_shape: Optional[Sequence[int]] = None, dtype: Optional[DTypeLike] = None,
                 generator: GeneratorLike = None) -> None:
        if input_dim is not None:
            if input_shape is not None:
                raise ValueError("Dense: give input_dim or input_shape, not both")
            input_shape = (input_dim,)
        super().__init__(dtype, generator, input_shape)
        self.units, self.use_bias = single_int(units, "units", "Dense"), bool(use_bias)
        self.activation = activation
        self._act = get_activation(activation, "Dense")
        self.in_features = None
        self.weight = self.bias = None
        self._finish_init()

    def build(self, input_shape: Sequence[Optional[int]],
              dtype: Optional[DTypeLike] = None) -> None:
        if len(input_shape) < 1 or input_shape[-1] is None or input_shape[-1] < 1:
            raise ValueError(f"Dense: inputs need a last axis of at least 1 feature, "
                             f"got shape {tuple(input_shape)}")
        dtype = self._weight_dtype(dtype)
        self.in_features = int(input_shape[-1])
        shape = check_parameter_shape((self.units, self.in_features), "units and input features",
                                      "Dense")
        self.weight = Parameter(np.empty(shape, dtype))
        init.xavier_uniform_(self.weight, generator=self._generator)
        self.bias = Parameter(np.zeros(self.units, dtype)) if self.use_bias else None
        self.built = True

    def call(self, x: Tensor) -> Tensor:
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Dense: the layer was built for {self.in_features} input features "
                             f"(last axis), got input of shape {x.shape}")
        return _apply(self._act, F.linear(x, self.weight, self.bias))

    def get_weights(self) -> List[np.ndarray]:
        if not self.built:
            return []
        return [self.weight._data.T.copy()] + ([self.bias._data.copy()] if self.use_bias else [])

    def _load_keras(self, weights):
        self.weight._data = np.ascontiguousarray(weights[0].T, dtype=self.weight.dtype)
        if self.use_bias:
            self.bias._data = np.array(weights[1], dtype=self.bias.dtype)

    def extra_repr(self) -> str:
        return (f"units={self.units}, activation={_activation_name(self.activation)!r}, "
                f"use_bias={self.use_bias}, in_features={self.in_features}")


# ----------------------------------------------------------------------------- convolutions
class _KerasConv(_Lazy):
    _where = ""

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple,
                 padding: str, data_format: str, dilation_rate: IntOrTuple,
                 activation: Optional[Union[str, Callable[..., Tensor]]], use_bias: bool,
                 input_shape: Optional[Sequence[int]], dtype: Optional[DTypeLike],
                 generator: GeneratorLike) -> None:
        super().__init__(dtype, generator, input_shape)
        where = self._where
        self.filters = single_int(filters, "filters", where)
        self.kernel_size = int_tuple(kernel_size, 2, "kernel_size", where, 1, exact=True)
        self.strides = int_tuple(strides, 2, "strides", where, 1, exact=True)
        self.dilation_rate = int_tuple(dilation_rate, 2, "dilation_rate", where, 1, exact=True)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{where}: strides > 1 cannot be combined with dilation_rate > 1 "
                             f"(as in Keras), got strides={strides!r}, dilation_rate={dilation_rate!r}")
        self.padding = _keras_padding(padding, where)
        self.data_format = _keras_format(data_format, where)
        self.activation, self.use_bias = activation, bool(use_bias)
        self._act = get_activation(activation, where)
        self.in_channels = None
        self.weight = self.bias = None

    @property
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def _spatial(self, shape):
        return tuple(shape[1:3]) if self.data_format == "channels_last" else tuple(shape[2:4])

    def build(self, input_shape: Sequence[Optional[int]],
              dtype: Optional[DTypeLike] = None) -> None:
        if len(input_shape) != 4 or input_shape[self._channel_axis] is None \
                or input_shape[self._channel_axis] < 1:
            layout = "(N, H, W, C)" if self.data_format == "channels_last" else "(N, C, H, W)"
            raise ValueError(f"{self._where}: expects 4-D {layout} input with at least 1 channel "
                             f"(data_format={self.data_format!r}), got shape {tuple(input_shape)}")
        dtype = self._weight_dtype(dtype)
        self.in_channels = int(input_shape[self._channel_axis])
        shape = check_parameter_shape(self._weight_shape(), "filters, input channels and kernel_size",
                                      self._where)
        self.weight = Parameter(np.empty(shape, dtype))
        init.xavier_uniform_(self.weight, generator=self._generator)
        self.bias = Parameter(np.zeros(self.filters, dtype)) if self.use_bias else None
        self.built = True

    def _check(self, x):
        if x.ndim != 4 or x.shape[self._channel_axis] != self.in_channels:
            raise ValueError(f"{self._where}: the layer was built for 4-D input with "
                             f"{self.in_channels} channels (data_format={self.data_format!r}), "
                             f"got shape {x.shape}")

    def get_weights(self) -> List[np.ndarray]:
        if not self.built:
            return []
        kernel = np.ascontiguousarray(self.weight._data.transpose(2, 3, 1, 0))
        return [kernel] + ([self.bias._data.copy()] if self.use_bias else [])

    def _load_keras(self, weights):
        self.weight._data = np.ascontiguousarray(np.transpose(weights[0], (3, 2, 0, 1)),
                                                dtype=self.weight.dtype)
        if self.use_bias:
            self.bias._data = np.array(weights[1], dtype=self.bias.dtype)

    def extra_repr(self) -> str:
        return (f"filters={self.filters}, kernel_size={self.kernel_size}, strides={self.strides}, "
                f"padding={self.padding!r}, data_format={self.data_format!r}, "
                f"dilation_rate={self.dilation_rate}, activation={_activation_name(self.activation)!r}, "
                f"use_bias={self.use_bias}, in_channels={self.in_channels}")


class Conv2D(_KerasConv):
    """Keras's Conv2D on (N, H, W, C) input by default (``data_format="channels_last"``).

    ``padding="same"`` pads as TensorFlow does (total ``max((ceil(n/s) - 1) * s +
    d(k-1) + 1 - n, 0)`` per axis, the odd cell after), so the output is
    ``ceil(n / s)`` for any stride.  ``weight`` is PyTorch's (filters,
    in_channels, kh, kw); ``get_weights()`` gives Keras's HWIO kernel.

    >>> import minipool as mp
    >>> mp.nn.Conv2D(4, 3, strides=2, padding="same")(mp.ones(1, 7, 7, 2)).shape
    (1, 4, 4, 4)
    """

    _where = "Conv2D"

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
                 padding: str = "valid", data_format: Optional[str] = None,
                 dilation_rate: IntOrTuple = 1,
                 activation: Optional[Union[str, Callable[..., Tensor]]] = None,
                 use_bias: bool = True, *, input_shape: Optional[Sequence[int]] = None,
                 dtype: Optional[DTypeLike] = None, generator: GeneratorLike = None) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, input_shape, dtype, generator)
        self._finish_init()

    def _weight_shape(self):
        return (self.filters, self.in_channels) + self.kernel_size

    def call(self, x: Tensor) -> Tensor:
        self._check(x)
        padding = 0
        if self.padding == "same":
            pads = [_same_pads(n, k, s, d) for n, k, s, d in
                    zip(self._spatial(x.shape), self.kernel_size, self.strides, self.dilation_rate)]
            if all(before == after for before, after in pads):
                padding = (pads[0][0], pads[1][0])
            else:  # TensorFlow's odd cell goes after: pad explicitly, then a valid convolution
                (top, bottom), (left, right) = pads
                spec = (left, right, top, bottom)
                x = F.pad(x, (0, 0) + spec if self.data_format == "channels_last" else spec)
        y = F.conv2d(x, self.weight, self.bias, self.strides, padding, self.dilation_rate,
                     data_format=self.data_format)
        return _apply(self._act, y)


class Conv2DTranspose(_KerasConv):
    """Keras's Conv2DTranspose: the adjoint of a Keras Conv2D with the same arguments,
    on (N, H, W, C) input by default.

    Output side (per axis, ``k`` the dilated kernel): without ``output_padding``,
    ``n * s + max(k - s, 0)`` for "valid" and ``n * s`` for "same"; with it,
    ``(n - 1) * s + k - 2 * pad + output_padding`` (``pad`` 0 or ``k // 2``), as
    Keras.  The values are those of the transposed TensorFlow convolution (SAME's
    odd padding cell at the end).  ``weight`` is PyTorch's (in_channels,
    filters, kh, kw); ``get_weights()`` gives Keras's (kh, kw, filters, in_channels).

    >>> import minipool as mp
    >>> mp.nn.Conv2DTranspose(3, 3, strides=2, padding="same")(mp.ones(1, 4, 4, 2)).shape
    (1, 8, 8, 3)
    """

    _where = "Conv2DTranspose"

    def __init__(self, filters: int, kernel_size: IntOrTuple, strides: IntOrTuple = 1,
                 padding: str = "valid",
                 output_padding: Optional[IntOrTuple] = None, data_format: Optional[str] = None,
                 dilation_rate: IntOrTuple = 1,
                 activation: Optional[Union[str, Callable[..., Tensor]]] = None,
                 use_bias: bool = True, *, input_shape: Optional[Sequence[int]] = None,
                 dtype: Optional[DTypeLike] = None, generator: GeneratorLike = None) -> None:
        super().__init__(filters, kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, input_shape, dtype, generator)
        if output_padding is not None:
            output_padding = int_tuple(output_padding, 2, "output_padding", self._where, 0, exact=True)
            for op, s in zip(output_padding, self.strides):
                if op >= s:
                    raise ValueError(f"{self._where}: output_padding must be smaller than "
                                     f"strides, got output_padding={output_padding}, "
                                     f"strides={self.strides}")
        self.output_padding = output_padding
        self._finish_init()

    def _weight_shape(self):
        return (self.in_channels, self.filters) + self.kernel_size

    def output_sides(self, sides: Sequence[int]) -> Tuple[int, ...]:
        """Keras's output side for each input side."""
        out = []
        for i, (n, k, s, d) in enumerate(zip(sides, self.kernel_size, self.strides,
                                             self.dilation_rate)):
            k = d * (k - 1) + 1
            if self.output_padding is None:
                out.append(n * s + max(k - s, 0) if self.padding == "valid" else n * s)
            else:
                pad = 0 if self.padding == "valid" else k // 2
                out.append((n - 1) * s + k - 2 * pad + self.output_padding[i])
        return tuple(out)

    def call(self, x: Tensor) -> Tensor:
        self._check(x)
        sides = self._spatial(x.shape)
        target = self.output_sides(sides)
        if min(target) < 1:
            raise ValueError(f"{self._where}: input sides {sides} give output sides {target}")
        pads, extra = [], []
        for n, L, k, s, d in zip(sides, target, self.kernel_size, self.strides, self.dilation_rate):
            k = d * (k - 1) + 1
            # the forward convolution this one transposes: input L, TensorFlow's padding
            before = 0 if self.padding == "valid" else _same_pads(L, k, s, 1)[0]
            full = (n - 1) * s + k
            pads.append(before)
            extra.append(L - (full - 2 * before))  # PyTorch's output_padding, if in range
        limit = [max(s, d) for s, d in zip(self.strides, self.dilation_rate)]
        direct = all(0 <= e < m for e, m in zip(extra, limit))
        output_padding = tuple(e if direct else min(max(e, 0), m - 1) for e, m in zip(extra, limit))
        y = F.conv_transpose2d(x, self.weight, self.bias if direct else None, self.strides,
                               tuple(pads), output_padding, 1, self.dilation_rate,
                               data_format=self.data_format)
        if not direct:  # crop the cells PyTorch's symmetric padding keeps, or zero-fill to size
            y = _fit_sides(y, target, self.data_format)
            if self.bias is not None:
                shape = (1, 1, 1, -1) if self.data_format == "channels_last" else (1, -1, 1, 1)
                y = y + F.reshape(self.bias, shape)
        return _apply(self._act, y)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s if self.output_padding is None else s + f", output_padding={self.output_padding}"


def _fit_sides(y, target, data_format):
    """Crop (at the end) or zero-pad (at the end) the spatial sides of ``y`` to ``target``."""
    axes = (1, 2) if data_format == "channels_last" else (2, 3)
    index = [slice(None)] * 4
    spec = []
    for axis, L in zip(axes, target):
        index[axis] = slice(0, min(L, y.shape[axis]))
    y = y[tuple(index)]
    for axis, L in zip(reversed(axes), reversed(target)):
        spec += [0, L - y.shape[axis]]
    if data_format == "channels_last":
        spec = [0, 0] + spec
    return F.pad(y, tuple(spec)) if any(spec) else y


Convolution2D = Conv2D
Convolution2DTranspose = Conv2DTranspose


# ----------------------------------------------------------------------------- normalisation
class BatchNormalization(_Lazy):
    """Keras's BatchNormalization over ``axis`` (default -1: channels last).

    Training mode (``model.train()``) normalises with the batch mean and the
    biased batch variance and updates ``moving_mean`` / ``moving_variance``
    as Keras 3 does: ``moving = moving * momentum + batch * (1 - momentum)``
    with the **biased** batch variance (Keras's ``momentum`` is
    ``1 - PyTorch's momentum``; PyTorch moves towards the unbiased variance;
    tf.keras 2's fused kernel applied Bessel's correction, Keras 3 does not).
    Eval mode normalises with the moving statistics.  ``gamma`` / ``beta`` exist
    when ``scale`` / ``center``; the statistics are buffers in ``state_dict``.

    >>> import minipool as mp
    >>> bn = mp.nn.BatchNormalization(momentum=0.9)
    >>> _ = bn(mp.tensor([[0.0, 10.0], [2.0, 30.0]]))
    >>> bn.moving_mean.numpy(), bn.moving_variance.numpy()
    (array([0.1, 2. ], dtype=float32), array([ 1. , 10.9], dtype=float32))
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, *,
                 input_shape: Optional[Sequence[int]] = None,
                 dtype: Optional[DTypeLike] = None) -> None:
        super().__init__(dtype, None, input_shape)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"BatchNormalization: axis must be an int (minipool normalises over "
                            f"one axis), got {axis!r}")
        for name, value in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
                raise ValueError(f"BatchNormalization: {name} must be a finite number, got {value!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        if epsilon < 0:
            raise ValueError(f"BatchNormalization: epsilon must be >= 0, got {epsilon!r}")
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.num_features = None
        self.gamma = self.beta = None
        self._finish_init()

    def build(self, input_shape: Sequence[Optional[int]],
              dtype: Optional[DTypeLike] = None) -> None:
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim or ndim < 2:
            raise ValueError(f"BatchNormalization: axis={self.axis} is not an axis of an input "
                             f"of shape {tuple(input_shape)} (at least 2 dimensions)")
        C = input_shape[self.axis]
        if C is None or C < 1:
            raise ValueError(f"BatchNormalization: the normalised axis {self.axis} must have a "
                             f"known size >= 1, got shape {tuple(input_shape)}")
        dtype = self._weight_dtype(dtype)
        self.num_features = int(C)
        self.gamma = Parameter(np.ones(C, dtype)) if self.scale else None
        self.beta = Parameter(np.zeros(C, dtype)) if self.center else None
        self.register_buffer("moving_mean", Tensor(np.zeros(C, dtype)))
        self.register_buffer("moving_variance", Tensor(np.ones(C, dtype)))
        self.built = True

    def call(self, x: Tensor) -> Tensor:
        if not -x.ndim <= self.axis < x.ndim or x.shape[self.axis] != self.num_features:
            raise ValueError(f"BatchNormalization: the layer was built for {self.num_features} "
                             f"features on axis {self.axis}, got input of shape {x.shape}")
        return normalize_over_axis("BatchNormalization", x, self.moving_mean, self.moving_variance,
                                   self.gamma, self.beta, self.training, 1.0 - self.momentum,
                                   self.epsilon, self.axis, keras=True)

    def get_weights(self) -> List[np.ndarray]:
        if not self.built:
            return []
        own = [self.gamma, self.beta, self.moving_mean, self.moving_variance]
        return [t._data.copy() for t in own if t is not None]

    def _load_keras(self, weights):
        own = [t for t in (self.gamma, self.beta, self.moving_mean, self.moving_variance)
               if t is not None]
        for t, w in zip(own, weights):
            t._data[...] = w

    def extra_repr(self) -> str:
        return (f"axis={self.axis}, momentum={self.momentum}, epsilon={self.epsilon}, "
                f"center={self.center}, scale={self.scale}, num_features={self.num_features}")


# ----------------------------------------------------------------------------- parameter-free
class ZeroPadding2D(Module):
    """Keras's ZeroPadding2D: ``padding`` an int, (rows, cols) or ((top, bottom), (left, right)),
    on (N, H, W, C) input by default.

    >>> import minipool as mp
    >>> mp.nn.ZeroPadding2D(((1, 0), (2, 3)))(mp.ones(1, 4, 4, 2)).shape
    (1, 5, 9, 2)
    """

    def __init__(self,
                 padding: Union[int, Tuple[int, int], Tuple[Tuple[int, int], Tuple[int, int]]] = 1,
                 data_format: Optional[str] = None) -> None:
        super().__init__()
        if isinstance(padding, (tuple, list)) and len(padding) == 2 and \
                all(isinstance(p, (tuple, list)) for p in padding):
            rows = int_tuple(padding[0], 2, "padding", "ZeroPadding2D", 0, exact=True)
            cols = int_tuple(padding[1], 2, "padding", "ZeroPadding2D", 0, exact=True)
        else:
            rows_each, cols_each = int_tuple(padding, 2, "padding", "ZeroPadding2D", 0, exact=True)
            rows, cols = (rows_each, rows_each), (cols_each, cols_each)
        if max(rows + cols) > MAX_PADDING:
            raise ValueError(f"ZeroPadding2D: padding must be <= {MAX_PADDING}, got {padding!r}")
        self.padding = (rows, cols)
        self.data_format = _keras_format(data_format, "ZeroPadding2D")

    def forward(self, x: Tensor) -> Tensor:
        x = as_tensor(x)
        if x.ndim != 4:
            raise ValueError(f"ZeroPadding2D: expects 4-D input, got shape {x.shape}")
        (top, bottom), (left, right) = self.padding
        sides = (1, 2) if self.data_format == "channels_last" else (2, 3)
        out_shape = list(x.shape)
        out_shape[sides[0]] += top + bottom
        out_shape[sides[1]] += left + right
        if np.prod(out_shape, dtype=np.float64) * x.dtype.itemsize > np.iinfo(np.intp).max:
            raise ValueError(f"ZeroPadding2D: padding {self.padding} makes the output "
                             f"{tuple(out_shape)} too large to allocate")
        spec = (left, right, top, bottom)
        return F.pad(x, (0, 0) + spec if self.data_format == "channels_last" else spec)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, data_format={self.data_format!r}"


class Activation(Module):
    """Keras's Activation layer: ``Activation("relu")``, "softmax" (last axis), a callable, ...

    >>> import minipool as mp
    >>> mp.nn.Activation("sigmoid")(mp.zeros(2)).numpy()
    array([0.5, 0.5], dtype=float32)
    """

    def __init__(self, activation: Union[str, Callable[..., Tensor]]) -> None:
        super().__init__()
        self.activation = activation
        self._act = get_activation(activation, "Activation")

    def forward(self, x: Tensor) -> Tensor:
        return _apply(self._act, as_tensor(x))

    def extra_repr(self) -> str:
        return repr(_activation_name(self.activation))
