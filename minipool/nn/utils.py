"""``torch.nn.utils``' helpers: gradient clipping (``clip_grad_norm_``, ``clip_grad_value_``,
in place on ``p.grad`` of every parameter that has one, skipping the others) and
``parameters_to_vector`` / ``vector_to_parameters``.
"""
import math
import numbers
from typing import Iterable, Optional, Union

import numpy as np

from minipool.tensor import Tensor

#: One tensor, or an iterable of them (``model.parameters()``), as torch.nn.utils takes.
Parameters = Union[Tensor, Iterable[Tensor]]

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
           "parameters_to_vector", "vector_to_parameters"]


def _iterable(parameters, where):
    try:
        return iter(parameters)
    except TypeError:
        raise TypeError(f"{where}: parameters must be a Tensor or an iterable of Tensors, "
                        f"got {type(parameters).__name__}") from None


def _tensors(parameters, where):
    """``parameters`` (one Tensor or an iterable of them) as a list, each checked."""
    parameters = [parameters] if isinstance(parameters, Tensor) else list(_iterable(parameters, where))
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"{where}: parameters[{i}] is a {type(p).__name__}, not a Tensor")
    return parameters


def _grads(parameters, where):
    """The gradient arrays of those ``parameters`` that have one."""
    return [p.grad._data for p in _tensors(parameters, where) if p.grad is not None]


def _number(value, name, where):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ValueError(f"{where}: {name} must be a real number, got {value!r}")
    return float(value)


def _vector_norm(a, norm_type):
    a = np.abs(a.reshape(-1))
    if norm_type == math.inf:
        return a.max() if a.size else a.dtype.type(0)
    if norm_type == -math.inf:
        return a.min() if a.size else a.dtype.type(math.inf)
    if norm_type == 0:
        return a.dtype.type(np.count_nonzero(a))
    if norm_type == 2:
        return np.sqrt(np.dot(a, a))
    if norm_type == 1:
        return a.sum()
    return np.power(np.power(a, norm_type).sum(), 1.0 / norm_type)


def _norm_type(value, where):
    """``norm_type`` as a float: a number, or a string float() reads ("inf"), as PyTorch."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{where}: norm_type must be a real number or 'inf', got {value!r}") from None
    return _number(value, "norm_type", where)


def get_total_norm(tensors: Parameters, norm_type: Union[float, str] = 2.0,
                   error_if_nonfinite: bool = False, foreach: Optional[bool] = None) -> Tensor:
    """The ``norm_type``-norm of ``tensors`` taken together (the norm of their norms), as a
    0-d Tensor, as ``torch.nn.utils.get_total_norm``; ``error_if_nonfinite``: a NaN or
    infinite total raises RuntimeError.  ``foreach`` has no effect.

    >>> import minipool as mp
    >>> mp.nn.utils.get_total_norm([mp.tensor([3.0]), mp.tensor([4.0])]).item()
    5.0
    """
    where = "get_total_norm"
    arrays = [t._data for t in _tensors(tensors, where)]
    return Tensor(np.asarray(_total_norm(arrays, _norm_type(norm_type, where), error_if_nonfinite,
                                         where)))


def _total_norm(arrays, norm_type, error_if_nonfinite, where):
    if not arrays:
        return np.asarray(0.0, dtype=np.float32)
    dtype = np.result_type(*arrays)
    norms = np.array([_vector_norm(a, norm_type) for a in arrays], dtype=dtype)
    total = np.asarray(_vector_norm(norms, norm_type), dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"{where}: the total norm of order {norm_type} is {float(total)}; pass "
                           "error_if_nonfinite=False to go on anyway (clipped gradients become NaN)")
    return total


def _scale(grads, max_norm, total):
    """Every gradient array times ``min(max_norm / (total + 1e-6), 1)``, in place."""
    if not grads:
        return
    dtype = total.dtype if total.dtype.kind == "f" else np.result_type(*grads)
    coef = np.asarray(max_norm, dtype) / (total.astype(dtype) + np.asarray(1e-6, dtype))
    coef = np.minimum(coef, np.asarray(1.0, dtype))
    with np.errstate(invalid="ignore"):  # an infinite gradient times 0 is NaN, as in PyTorch
        for g in grads:
            g *= coef.astype(g.dtype)


def clip_grads_with_norm_(parameters: Parameters, max_norm: float, total_norm: Tensor,
                          foreach: Optional[bool] = None) -> None:
    """Scale the gradients in place by ``min(max_norm / (total_norm + 1e-6), 1)``, as
    ``torch.nn.utils.clip_grads_with_norm_`` (``total_norm`` from :func:`get_total_norm`).

    >>> import minipool as mp
    >>> w = mp.nn.Parameter(mp.zeros(2))
    >>> w.grad = mp.tensor([3.0, 4.0])
    >>> mp.nn.utils.clip_grads_with_norm_([w], 1.0, mp.tensor(5.0))
    >>> w.grad.numpy().round(4)
    array([0.6, 0.8], dtype=float32)
    """
    where = "clip_grads_with_norm_"
    grads = _grads(parameters, where)
    max_norm = _number(max_norm, "max_norm", where)
    _scale(grads, max_norm, np.asarray(total_norm._data if isinstance(total_norm, Tensor)
                                       else total_norm))


def clip_grad_norm_(parameters: Parameters, max_norm: float, norm_type: Union[float, str] = 2.0,
                    error_if_nonfinite: bool = False, foreach: Optional[bool] = None) -> Tensor:
    """Scale the gradients in place so that their joint ``norm_type``-norm is at most ``max_norm``.

    The total norm is the norm of the per-parameter gradient norms (``inf`` or "inf": the
    largest absolute entry).  As PyTorch, every gradient is multiplied by
    ``min(max_norm / (total + 1e-6), 1)``, and the total norm from before clipping
    is returned as a 0-d Tensor.  With ``error_if_nonfinite`` a NaN or infinite
    total raises RuntimeError (otherwise the gradients become NaN, as in PyTorch).
    ``foreach`` is accepted for PyTorch compatibility and has no effect.

    >>> import minipool as mp
    >>> w = mp.nn.Parameter(mp.tensor([3.0, 4.0]))
    >>> (w * w).sum().backward()
    >>> mp.nn.utils.clip_grad_norm_([w], max_norm=1.0).item()
    10.0
    >>> w.grad.numpy().round(4)
    array([0.6, 0.8], dtype=float32)
    """
    where = "clip_grad_norm_"
    grads = _grads(parameters, where)
    max_norm = _number(max_norm, "max_norm", where)
    total = _total_norm(grads, _norm_type(norm_type, where), error_if_nonfinite, where)
    _scale(grads, max_norm, total)
    return Tensor(total)


def clip_grad_value_(parameters: Parameters, clip_value: float,
                     foreach: Optional[bool] = None) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]`` in place (NaN stays NaN).

    >>> import minipool as mp
    >>> w = mp.nn.Parameter(mp.tensor([3.0, -0.5]))
    >>> (w * w).sum().backward()
    >>> mp.nn.utils.clip_grad_value_([w], 1.0)
    >>> w.grad.numpy()
    array([ 1., -1.], dtype=float32)
    """
    where = "clip_grad_value_"
    grads = _grads(parameters, where)
    clip_value = _number(clip_value, "clip_value", where)
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)


def _parameter_list(parameters, where):
    if isinstance(parameters, Tensor):
        raise TypeError(f"{where}: parameters must be an iterable of Tensors (e.g. "
                        "model.parameters()), got a single Tensor")
    try:
        parameters = list(parameters)
    except TypeError:
        raise TypeError(f"{where}: parameters must be an iterable of Tensors, "
                        f"got {type(parameters).__name__}") from None
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"{where}: parameters[{i}] is a {type(p).__name__}, not a Tensor")
    return parameters


def parameters_to_vector(parameters: Parameters) -> Tensor:
    """Every parameter flattened and concatenated into one 1-d Tensor (differentiable:
    a gradient of the vector reaches the parameters).

    >>> import minipool as mp
    >>> net = mp.nn.Linear(3, 2)
    >>> mp.nn.utils.parameters_to_vector(net.parameters()).shape
    (8,)
    """
    from minipool.ops.shape import cat, reshape
    parameters = _parameter_list(parameters, "parameters_to_vector")
    if not parameters:
        raise ValueError("parameters_to_vector: parameters is empty (nothing to concatenate)")
    dtypes = {p.dtype for p in parameters}
    if len(dtypes) > 1:
        raise TypeError(f"parameters_to_vector: the parameters mix dtypes {sorted(map(str, dtypes))}")
    return cat([reshape(p, (-1,)) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Parameters) -> None:
    """Copy consecutive slices of the 1-d ``vec`` into the parameters' values (in place,
    outside autograd: each parameter stays the same object, so optimisers keep it).

    >>> import minipool as mp
    >>> net = mp.nn.Linear(1, 1)
    >>> mp.nn.utils.vector_to_parameters(mp.tensor([2.0, 3.0]), net.parameters())
    >>> net.weight.item(), net.bias.item()
    (2.0, 3.0)
    """
    where = "vector_to_parameters"
    if not isinstance(vec, Tensor):
        raise TypeError(f"{where}: vec must be a Tensor, got {type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"{where}: vec must be 1-d, got shape {vec.shape}")
    parameters = _parameter_list(parameters, where)
    total = sum(p._data.size for p in parameters)
    if vec.shape[0] != total:
        raise ValueError(f"{where}: vec has {vec.shape[0]} values but the parameters hold {total}")
    offset = 0
    for p in parameters:
        n = p._data.size
        p._data[...] = vec._data[offset:offset + n].reshape(p.shape)
        offset += n


_REPARAMETRISATIONS = ("weight_norm", "spectral_norm", "parametrize", "parametrizations",
                       "remove_weight_norm", "remove_spectral_norm")


def __getattr__(name):
    if name in _REPARAMETRISATIONS:
        raise AttributeError(f"module 'minipool.nn.utils' has no attribute {name!r}: minipool has "
                             "no weight re-parametrisation; normalise activations instead "
                             "(nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm) or clip gradients "
                             "(nn.utils.clip_grad_norm_)")
    raise AttributeError(f"module 'minipool.nn.utils' has no attribute {name!r}")
