"""Tensor's operators and methods: each is a one-line call into an op module.

Kept apart from tensor.py so the engine does not import the ops that use it.
"""
import numpy as np

from minipool.ops import elementwise as ew
from minipool.ops import linalg, reduce, shape
from minipool.tensor import Tensor


def _reflected(fn):
    return lambda self, other: fn(ew.as_tensor(other, like=self), self)


def _compare(op):
    def method(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))
    return method


_METHODS = {
    "__add__": ew.add, "__radd__": _reflected(ew.add),
    "__sub__": ew.sub, "__rsub__": _reflected(ew.sub),
    "__mul__": ew.mul, "__rmul__": _reflected(ew.mul),
    "__truediv__": ew.div, "__rtruediv__": _reflected(ew.div),
    "__pow__": ew.pow, "__rpow__": _reflected(ew.pow),
    "__matmul__": linalg.matmul, "__rmatmul__": _reflected(linalg.matmul),
    "__neg__": ew.neg, "__abs__": ew.abs,
    "__getitem__": shape.getitem,
    "__lt__": _compare(np.less), "__le__": _compare(np.less_equal),
    "__gt__": _compare(np.greater), "__ge__": _compare(np.greater_equal),
    "__eq__": _compare(np.equal), "__ne__": _compare(np.not_equal),
    "add": ew.add, "sub": ew.sub, "mul": ew.mul, "div": ew.div, "pow": ew.pow,
    "neg": ew.neg, "exp": ew.exp, "log": ew.log, "sqrt": ew.sqrt, "abs": ew.abs,
    "tanh": ew.tanh, "sigmoid": ew.sigmoid, "relu": ew.relu,
    "clip": ew.clip, "clamp": ew.clip, "matmul": linalg.matmul,
    "sum": reduce.sum, "mean": reduce.mean, "max": reduce.max, "min": reduce.min,
    "softmax": reduce.softmax, "log_softmax": reduce.log_softmax, "logsumexp": reduce.logsumexp,
    "reshape": shape.reshape, "view": shape.reshape, "permute": shape.permute,
    "transpose": shape.transpose, "flatten": shape.flatten, "squeeze": shape.squeeze,
    "unsqueeze": shape.unsqueeze, "broadcast_to": shape.broadcast_to, "expand": shape.broadcast_to,
}


def _argmax(self, dim=None, keepdim=False):
    return Tensor(np.argmax(self.data, axis=dim, keepdims=keepdim))


def _argmin(self, dim=None, keepdim=False):
    return Tensor(np.argmin(self.data, axis=dim, keepdims=keepdim))


def install():
    for name, fn in _METHODS.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(lambda self: shape.permute(self, tuple(reversed(range(self.ndim)))))
    Tensor.argmax = _argmax
    Tensor.argmin = _argmin
