"""LeNet-5 in two forms: the common modern one and the 1998 original.

:class:`LeNet5` is the network most tutorials call LeNet-5 (ReLU, max pooling,
softmax cross-entropy).  Its ``state_dict`` has the same keys and shapes as
the same network written with PyTorch layers under the same attribute names,
so weights move both ways: :meth:`LeNet5.to_torch` (or :func:`lenet5_torch`)
builds that PyTorch twin and :meth:`LeNet5.from_torch` reads one back.
minipool never imports torch: these take the ``torch`` module as an argument.

:class:`LeNet5Classic` follows LeCun, Bottou, Bengio and Haffner, "Gradient-Based
Learning Applied to Document Recognition" (Proc. IEEE, 1998): the scaled tanh
squashing function, trainable subsampling layers, the partial C3 connection
table, C5 as a convolution, and Euclidean RBF output units with fixed +1/-1
prototypes drawn as 7x12 bitmaps (or a softmax output layer).
"""
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

import minipool.nn as nn
import minipool.nn.functional as F
from minipool import _random, interop
from minipool.tensor import Tensor

__all__ = ["LeNet5", "LeNet5Classic", "C3_TABLE", "RBF_BITMAPS", "c3_connections", "lenet5_torch",
           "rbf_prototypes", "scaled_tanh"]


def _uniform_(param, bound, rng):
    param._data = rng.uniform(-bound, bound, param.shape).astype(param.dtype)


def _add_layers(module, nn, num_classes):
    """LeNet-5's layers, by name, built from ``nn`` (minipool.nn or torch.nn: the same
    constructor signatures), so both frameworks get one architecture and one set of
    state_dict keys."""
    module.conv1 = nn.Conv2d(1, 6, 5)
    module.conv2 = nn.Conv2d(6, 16, 5)
    module.fc1 = nn.Linear(16 * 5 * 5, 120)
    module.fc2 = nn.Linear(120, 84)
    module.fc3 = nn.Linear(84, num_classes)


class LeNet5(nn.Module):
    """Modern LeNet-5 for 1x32x32 inputs (pad 28x28 digits by 2 pixels).

    conv1 5x5 -> 6 maps, ReLU, 2x2 max pool; conv2 5x5 -> 16 maps, ReLU, 2x2
    max pool; fc1 400 -> 120, ReLU; fc2 120 -> 84, ReLU; fc3 84 -> 10 logits
    (train with ``F.cross_entropy``).  ``seed`` initialises the weights
    reproducibly with PyTorch's default distributions
    (uniform +-1/sqrt(fan_in)).

    >>> import minipool as mp
    >>> net = LeNet5(seed=0)
    >>> net(mp.zeros(2, 1, 32, 32)).shape
    (2, 10)
    >>> [k for k in net.state_dict()][:3]
    ['conv1.weight', 'conv1.bias', 'conv2.weight']
    """

    name = "lenet5"

    def __init__(self, num_classes=10, seed=None):
        super().__init__()
        _add_layers(self, nn, num_classes)
        self.num_classes = num_classes
        if seed is not None:
            self.reset_parameters(np.random.default_rng(seed))

    @property
    def config(self):
        return {"num_classes": self.num_classes}

    def reset_parameters(self, rng):
        """PyTorch's default init: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2, self.fc3):
            fan_in = int(np.prod(layer.weight.shape[1:]))
            _uniform_(layer.weight, 1 / np.sqrt(fan_in), rng)
            _uniform_(layer.bias, 1 / np.sqrt(fan_in), rng)

    def feature_maps(self, x):
        """Activations after each pooling layer, by name."""
        # relu(max_pool(x)) == max_pool(relu(x)), values and gradients alike (ReLU is monotonic
        # and zero-gradient where it clips); pooling first runs the ReLU on 4x fewer elements.
        maps = OrderedDict()
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        maps["pool1"] = x
        maps["pool2"] = F.relu(F.max_pool2d(self.conv2(x), 2))
        return maps

    def forward(self, x):
        x = self.feature_maps(x)["pool2"]
        x = F.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def loss(self, logits, targets):
        return F.cross_entropy(logits, targets)

    def first_layer_filters(self):
        return self.conv1.weight._data

    def trainable_parameter_count(self):
        return sum(p._data.size for p in self.parameters())

    def to_torch(self, torch):
        """This network as a ``torch.nn.Module`` holding a copy of its weights.

        Call it as ``net.to_torch(torch)`` after ``import torch``: minipool
        never imports torch itself.  The PyTorch model has the same
        ``state_dict`` keys and computes the same function (see
        :func:`lenet5_torch`); changing one model's weights leaves the other's
        alone.  Anything but the torch module is a TypeError:

        >>> LeNet5(seed=0).to_torch("torch")
        Traceback (most recent call last):
            ...
        TypeError: LeNet5.to_torch: torch must be the torch module itself (import torch, then pass it), got str
        """
        _check_is_torch(torch, "LeNet5.to_torch")
        return interop.to_torch(self, torch)  # builds lenet5_torch (registered below), copies weights

    @classmethod
    def from_torch(cls, weights):
        """A LeNet5 with the weights of a PyTorch LeNet-5: ``weights`` is the ``torch.nn.Module``
        (e.g. from :func:`lenet5_torch`) or its ``state_dict``; the number of classes is read
        from ``fc3.weight``.  Any mapping of arrays works too, so no torch is needed here:

        >>> net = LeNet5(seed=0)
        >>> copy = LeNet5.from_torch(net.state_dict())
        >>> all((copy.state_dict()[k] == v).all() for k, v in net.state_dict().items())
        True
        """
        if callable(getattr(weights, "state_dict", None)):
            weights = weights.state_dict()
        if not isinstance(weights, Mapping):
            raise TypeError(f"LeNet5.from_torch: weights must be a torch.nn.Module or a state_dict "
                            f"(a mapping of name -> tensor), got {type(weights).__name__}")
        arrays = {name: _numpy_copy(value) for name, value in weights.items()}
        model = cls(num_classes=len(arrays["fc3.weight"]) if "fc3.weight" in arrays else 10)
        model.load_state_dict(arrays)  # a ValueError lists any missing or misshapen weight
        return model


# --------------------------------------------------------------------------- its PyTorch twin
def _numpy_copy(value):
    """A NumPy copy of a torch tensor (any device, with or without grad), a Tensor or an array."""
    if isinstance(value, Tensor):
        value = value._data
    elif callable(getattr(value, "detach", None)):
        value = value.detach().cpu().numpy()
    return np.array(value, copy=True)


_check_is_torch = interop.check_is_torch


def lenet5_torch(torch, state_dict=None, num_classes=None):
    """:class:`LeNet5` written with PyTorch layers: a new ``torch.nn.Module``.

    Call it as ``lenet5_torch(torch)`` (fresh weights, PyTorch's own
    initialisation) or ``lenet5_torch(torch, net.state_dict())`` (a copy of
    minipool weights; torch tensors work too).  ``torch`` is the torch module
    itself, which minipool never imports.  ``num_classes`` defaults to the
    rows of ``state_dict["fc3.weight"]``, else 10.  The layers and
    ``state_dict`` keys are LeNet5's: conv1 and conv2 (5x5) each followed by
    ReLU and 2x2 max pooling, then fc1, fc2 with ReLU and fc3; pooling before
    or after the ReLU gives the same values, so the two frameworks compute
    the same function.  Anything but the torch module is a TypeError:

    >>> lenet5_torch(np)
    Traceback (most recent call last):
        ...
    TypeError: lenet5_torch: torch must be the torch module itself (import torch, then pass it), got module numpy
    """
    _check_is_torch(torch, "lenet5_torch")
    if state_dict is not None and not isinstance(state_dict, Mapping):
        raise TypeError(f"lenet5_torch: state_dict must be a mapping of name -> array, "
                        f"got {type(state_dict).__name__}")
    if num_classes is None:
        num_classes = len(state_dict["fc3.weight"]) if state_dict and "fc3.weight" in state_dict else 10
    nn = torch.nn

    class LeNet5Torch(nn.Module):
        _minipool_class = LeNet5  # lets minipool.interop.from_torch read it back

        def __init__(self):
            super().__init__()
            _add_layers(self, nn, num_classes)

        def forward(self, x):
            x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
            x = torch.flatten(x, 1)
            return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    model = LeNet5Torch()
    if state_dict is not None:
        try:
            model.load_state_dict({name: torch.from_numpy(_numpy_copy(value)) for name, value in state_dict.items()})
        except RuntimeError as e:  # torch lists the missing, unexpected and misshapen keys (on one line here)
            raise ValueError(f"lenet5_torch: state_dict does not fit LeNet-5 with {num_classes} classes: "
                             + " ".join(str(e).split())) from None
    return model


interop.register_twin(LeNet5, lambda torch, net: lenet5_torch(torch, num_classes=net.num_classes),
                      LeNet5.from_torch)


# --------------------------------------------------------------------------- the 1998 network
def scaled_tanh(a):
    """LeCun's squashing function f(a) = 1.7159 tanh(2a/3): f(+-1) = +-1, max gain near 0."""
    return F.tanh(a * (2.0 / 3.0)) * 1.7159


# Table I of the paper: column = C3 feature map, row = S2 feature map, X = connected.
C3_TABLE = """
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
0   X       X X X     X  X  X  X     X  X
1   X X       X X X      X  X  X  X     X
2   X X X       X X X       X     X  X  X
3     X X X     X X X X        X     X  X
4       X X X     X X X  X     X  X     X
5         X X X     X X  X  X     X  X  X
"""


def c3_connections():
    """The C3 table as a (16, 6) 0/1 array: [c3_map, s2_map] = 1 when connected.

    >>> c = c3_connections()
    >>> int(c.sum()), c[:6].sum(axis=1).astype(int).tolist(), c[15].astype(int).tolist()
    (60, [3, 3, 3, 3, 3, 3], [1, 1, 1, 1, 1, 1])
    """
    lines = [line for line in C3_TABLE.splitlines() if line.strip()]
    header = lines[0]
    # each column's label ends at a fixed character position; an X there marks a connection
    column_ends = [i for i, ch in enumerate(header) if ch.isdigit() and (i + 1 == len(header) or header[i + 1] == " ")]
    table = np.zeros((len(column_ends), len(lines) - 1), np.float32)
    for row, line in enumerate(lines[1:]):
        for col, end in enumerate(column_ends):
            if end < len(line) and line[end] == "X":
                table[col, row] = 1
    return table


# The RBF output units' fixed prototypes: a 7 wide x 12 tall stylised bitmap per digit,
# '#' = +1 and '.' = -1 (the paper draws them the same way, in the ASCII character set).
RBF_BITMAPS = {
    0: """
..###..
.#...#.
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
#.....#
.#...#.
..###..""",
    1: """
...#...
..##...
.#.#...
...#...
...#...
...#...
...#...
...#...
...#...
...#...
...#...
.#####.""",
    2: """
.####..
#....#.
.....#.
.....#.
....#..
...#...
..#....
.#.....
#......
#......
#......
######.""",
    3: """
.####..
#....#.
.....#.
.....#.
....#..
..##...
....#..
.....#.
.....#.
.....#.
#....#.
.####..""",
    4: """
....#..
...##..
..#.#..
..#.#..
.#..#..
.#..#..
#...#..
#######
....#..
....#..
....#..
....#..""",
    5: """
######.
#......
#......
#......
####...
....#..
.....#.
.....#.
.....#.
.....#.
#...#..
.###...""",
    6: """
...##..
..#....
.#.....
#......
#......
####...
#...#..
#....#.
#....#.
#....#.
.#..#..
..##...""",
    7: """
#######
......#
.....#.
.....#.
....#..
....#..
...#...
...#...
..#....
..#....
..#....
..#....""",
    8: """
..###..
.#...#.
#.....#
.#...#.
..###..
.#...#.
#.....#
#.....#
#.....#
#.....#
.#...#.
..###..""",
    9: """
..###..
.#...#.
#.....#
#.....#
.#...##
..###.#
......#
......#
.....#.
....#..
...#...
.##....""",
}


def rbf_prototypes():
    """(10, 84) float32 array of +1/-1: row d is digit d's 7x12 bitmap, row by row.

    >>> p = rbf_prototypes()
    >>> p.shape, sorted(set(p.ravel().tolist()))
    ((10, 84), [-1.0, 1.0])
    """
    rows = []
    for digit in range(10):
        lines = RBF_BITMAPS[digit].strip().splitlines()
        if len(lines) != 12 or any(len(line) != 7 for line in lines):
            raise AssertionError(f"RBF bitmap for {digit} must be 12 lines of 7 characters")
        rows.append([1.0 if ch == "#" else -1.0 for ch in "".join(lines)])
    return np.asarray(rows, np.float32)


class Subsampling(nn.Module):
    """S2/S4: each map's 2x2 sums times a trainable coefficient plus a trainable bias."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(np.ones(channels, np.float32))
        self.bias = nn.Parameter(np.zeros(channels, np.float32))

    def forward(self, x):
        c = self.weight.shape[0]
        window_sum = F.avg_pool2d(x, 2) * 4.0
        return window_sum * F.reshape(self.weight, (1, c, 1, 1)) + F.reshape(self.bias, (1, c, 1, 1))


class PartialConv2d(nn.Module):
    """A convolution where output map i sees only the input maps ``connections[i]`` marks.

    The weights of missing connections are kept at zero (the mask also zeroes
    their gradient), so ``weight`` is exactly the effective kernel.
    """

    def __init__(self, connections, kernel_size):
        super().__init__()
        out_channels, in_channels = connections.shape
        self.weight = nn.Parameter(np.zeros((out_channels, in_channels, kernel_size, kernel_size), np.float32))
        self.bias = nn.Parameter(np.zeros(out_channels, np.float32))
        self.register_buffer("connections", connections.reshape(out_channels, in_channels, 1, 1).astype(np.float32))

    def forward(self, x):
        return F.conv2d(x, self.weight * self.connections, self.bias)


class EuclideanRBF(nn.Module):
    """Output units y_i = sum_j (x_j - w_ij)^2 with fixed prototypes w; returns -y (higher = closer)."""

    def __init__(self, prototypes):
        super().__init__()
        self.register_buffer("prototypes", prototypes)

    def forward(self, x):
        diff = F.unsqueeze(x, 1) - F.unsqueeze(self.prototypes, 0)   # (n, classes, 84)
        return -F.sum(diff * diff, dim=2)


class LeNet5Classic(nn.Module):
    """LeNet-5 as published in 1998, for 1x32x32 inputs.

    C1 conv 5x5 -> 6 maps; S2 trainable subsampling; C3 conv 5x5 -> 16 maps
    through the paper's partial connection table; S4 subsampling; C5 conv 5x5
    -> 120 maps (1x1); F6 120 -> 84; every layer up to F6 is followed by
    1.7159 tanh(2a/3).  ``output="rbf"`` (default) ends in ten Euclidean RBF
    units with fixed +-1 prototypes and trains with the paper's MAP criterion
    (see :meth:`loss`); ``output="softmax"`` ends in a Linear 84 -> 10 layer
    and softmax cross-entropy.  Weights start uniform in +-2.4/fan_in, as in
    the paper's appendix.  The forward pass returns class scores: the
    predicted class is the argmax for both outputs.

    >>> import minipool as mp
    >>> net = LeNet5Classic(seed=0)
    >>> net(mp.zeros(2, 1, 32, 32)).shape
    (2, 10)
    """

    name = "lenet5-classic"

    def __init__(self, output="rbf", seed=None, rubbish_penalty=10.0):
        super().__init__()
        if output not in ("rbf", "softmax"):
            raise ValueError(f"LeNet5Classic: output must be 'rbf' or 'softmax', got {output!r}")
        self.output_kind = output
        self.rubbish_penalty = float(rubbish_penalty)
        self.c1 = nn.Conv2d(1, 6, 5)
        self.s2 = Subsampling(6)
        self.c3 = PartialConv2d(c3_connections(), 5)
        self.s4 = Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.output = EuclideanRBF(rbf_prototypes()) if output == "rbf" else nn.Linear(84, 10)
        # seed=None draws from the shared default generator, so mp.manual_seed fixes it
        self.reset_parameters(np.random.default_rng(seed) if seed is not None
                              else _random.default_generator())

    @property
    def config(self):
        return {"output": self.output_kind, "rubbish_penalty": self.rubbish_penalty}

    def reset_parameters(self, rng):
        """Uniform in +-2.4 / fan_in (weights and biases), fan_in counted per unit."""
        for layer in (self.c1, self.c5, self.f6) + ((self.output,) if self.output_kind == "softmax" else ()):
            bound = 2.4 / int(np.prod(layer.weight.shape[1:]))
            _uniform_(layer.weight, bound, rng)
            _uniform_(layer.bias, bound, rng)
        for layer in (self.s2, self.s4):  # four inputs per unit
            _uniform_(layer.weight, 2.4 / 4, rng)
            _uniform_(layer.bias, 2.4 / 4, rng)
        mask = self.c3.connections._data
        fan_in = mask.sum(axis=(1, 2, 3)) * 25                   # 75, 100 or 150 per C3 map
        bound = (2.4 / fan_in).astype(np.float32)
        self.c3.weight._data = (rng.uniform(-1, 1, self.c3.weight.shape).astype(np.float32)
                               * bound[:, None, None, None] * mask)
        self.c3.bias._data = (rng.uniform(-1, 1, 16) * bound).astype(np.float32)

    def feature_maps(self, x):
        maps = OrderedDict()
        x = scaled_tanh(self.s2(scaled_tanh(self.c1(x))))
        maps["S2"] = x
        maps["S4"] = scaled_tanh(self.s4(scaled_tanh(self.c3(x))))
        return maps

    def forward(self, x):
        x = self.feature_maps(x)["S4"]
        x = scaled_tanh(self.c5(x))
        x = scaled_tanh(self.f6(F.flatten(x, 1)))
        return self.output(x)

    def loss(self, scores, targets):
        """Softmax output: cross-entropy.  RBF output: the paper's MAP criterion (eq. 9),
        mean of y_correct + log(exp(-j) + sum_i exp(-y_i)) with y = -scores and j the
        ``rubbish_penalty``; it is cross-entropy over the scores plus a constant "rubbish"
        class scored -j, which keeps the prototypes from being reached by collapse."""
        if self.output_kind == "softmax":
            return F.cross_entropy(scores, targets)
        n = scores.shape[0]
        rubbish = Tensor(np.full((n, 1), -self.rubbish_penalty, dtype=scores.dtype))
        return F.cross_entropy(F.cat([scores, rubbish], dim=1), targets)

    def first_layer_filters(self):
        return self.c1.weight._data

    def trainable_parameter_count(self):
        """Parameters that can change: the unconnected C3 kernels do not count (60,000 with
        the RBF output, the paper's number)."""
        unconnected = self.c3.weight._data.size - int(
            np.broadcast_to(self.c3.connections._data, self.c3.weight.shape).sum())
        return sum(p._data.size for p in self.parameters()) - unconnected
