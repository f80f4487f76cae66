"""Gradient checks and comparisons for your own pytest suites.

>>> import minipool as mp
>>> from minipool.testing import assert_grad_close
>>> x = mp.tensor([0.5, -1.0, 2.0], dtype="float64", requires_grad=True)
>>> assert_grad_close(lambda t: (t * t.tanh()).sum(), [x])
"""
from typing import Any, Callable, Optional, Sequence

import numpy as np

from minipool.tensor import Tensor, no_grad

__all__ = ["gradcheck", "GradcheckError", "assert_grad_close", "assert_close",
           "numerical_grad"]


class GradcheckError(AssertionError):
    """Analytic and numerical gradients disagree (an AssertionError, so pytest shows it)."""


def _output_tensor(out, where):
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, {where} it returned {type(out).__name__}")
    return out


def _projection(shape, seed):
    """A fixed random cotangent: checks v^T J, which catches a wrong Jacobian with probability 1."""
    return np.random.default_rng(seed).uniform(0.5, 1.5, size=shape) * \
        np.random.default_rng(seed + 1).choice([-1.0, 1.0], size=shape)


def numerical_grad(fn, inputs, index, v, eps):
    """Central-difference estimate of d(sum(v * fn(*inputs)))/d(inputs[index])."""
    x = inputs[index]
    flat = x._data.reshape(-1)  # a view: the inputs are contiguous float64 copies
    grad = np.zeros(flat.shape, dtype=np.float64)
    with no_grad():
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            plus = np.sum(v * _output_tensor(fn(*inputs), "")._data)
            flat[i] = orig - eps
            minus = np.sum(v * _output_tensor(fn(*inputs), "")._data)
            flat[i] = orig
            grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(x.shape)


def gradcheck(fn: Callable[..., Any], inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0, names: Optional[Sequence[str]] = None) -> bool:
    """Check the analytic gradient of ``fn`` against float64 central differences.

    ``inputs`` is a sequence of Tensors (or non-tensor arguments passed through);
    every Tensor with ``requires_grad`` is checked.  They are copied to float64
    first, so the check is exact enough whatever the dtype you built them with.
    The output may have any shape: the check compares ``v . J`` for a fixed
    random ``v`` of the output's shape.

    Returns True, or raises GradcheckError naming the input, its worst element
    and both values.

    >>> import minipool as mp
    >>> x = mp.tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float64", requires_grad=True)
    >>> mp.gradcheck(lambda t: t.exp() / t.sum(), [x])
    True
    """
    if isinstance(inputs, Tensor):
        inputs = [inputs]
    inputs = [Tensor(np.array(t._data, dtype=np.float64), requires_grad=t.requires_grad)
              if isinstance(t, Tensor) else t for t in inputs]
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    names = names or [f"input {i}" for i in range(len(inputs))]

    out = _output_tensor(fn(*inputs), "for the unperturbed inputs")
    if not out.requires_grad:
        raise GradcheckError("gradcheck: the output does not require grad; fn cut the graph "
                             "(no_grad, detach, or a non-differentiable op)")
    v = _projection(out.shape, seed)
    out.backward(v)
    for i in checked:
        x = inputs[i]
        analytic = np.zeros(x.shape) if x.grad is None else np.asarray(x.grad._data, np.float64)
        numeric = numerical_grad(fn, inputs, i, v, eps)
        _compare(analytic, numeric, atol, rtol, f"gradient of {names[i]} (shape {x.shape})",
                 "analytic", "numerical")
    return True


def _compare(actual, expected, atol, rtol, what, actual_name="actual", expected_name="expected"):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise GradcheckError(f"{what}: shapes differ, {actual_name} {actual.shape} vs "
                             f"{expected_name} {expected.shape}")
    if actual.size == 0:
        return
    same_nan = np.isnan(actual) & np.isnan(expected)
    same_inf = np.isinf(actual) & (actual == expected)
    with np.errstate(invalid="ignore"):
        excess = np.abs(actual - expected) - (atol + rtol * np.abs(expected))
    excess = np.where(same_nan | same_inf, -np.inf, np.nan_to_num(excess, nan=np.inf))
    if np.all(excess <= 0):
        return
    worst = np.unravel_index(int(np.argmax(excess)), actual.shape)
    bad = int(np.count_nonzero(excess > 0))
    raise GradcheckError(
        f"{what} mismatch at {tuple(int(i) for i in worst)} ({bad} of {actual.size} elements "
        f"out of tolerance atol={atol}, rtol={rtol}): {actual_name} {float(actual[worst])!r}, "
        f"{expected_name} {float(expected[worst])!r}")


def assert_grad_close(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3):
    """pytest-friendly gradcheck: raises AssertionError with the details, returns None."""
    gradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol)


def assert_close(actual, expected, rtol=1e-6, atol=0.0, what="values"):
    """Assert two arrays/Tensors match elementwise (NaN equals NaN, infinities must match)."""
    actual = actual._data if isinstance(actual, Tensor) else actual
    expected = expected._data if isinstance(expected, Tensor) else expected
    _compare(actual, expected, atol, rtol, what)
