"""Layers: thin Modules holding parameters and calling ``minipool.nn.functional``."""
from minipool.nn import functional  # noqa: F401
from minipool.nn.module import Module, Parameter, Sequential  # noqa: F401
from minipool.nn.activation import Flatten, Identity, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh  # noqa: F401
