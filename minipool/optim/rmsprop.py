"""RMSprop (Hinton's lecture 6e), with PyTorch's update rule."""
from typing import Any, Dict, Iterable

import numpy as np

from minipool.optim.optimizer import (PerParameterOptimizer, check_group_numbers, state_buffer,
                                      state_scalar)

__all__ = ["RMSprop"]


class RMSprop(PerParameterOptimizer):
    """RMSprop as ``torch.optim.RMSprop``.  For each parameter p with gradient g::

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        centered:  m = m + (1 - alpha) * (g - m);  d = sqrt(v - m * m) + eps
        otherwise: d = sqrt(v) + eps
        momentum > 0: b = momentum * b + g / d;  p = p - lr * b
        otherwise:    p = p - lr * g / d

    State per parameter: "step", "square_avg", and "momentum_buffer" / "grad_avg"
    when momentum > 0 / centered (PyTorch's names).

    >>> import minipool as mp
    >>> w = mp.nn.Parameter(mp.tensor([1.0, -2.0], dtype="float64"))
    >>> opt = mp.optim.RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.numpy().round(4)
    array([ 0.9, -1.9])
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def check_group(self, group: Dict[str, Any]) -> None:
        check_group_numbers("RMSprop", group, ("lr", "alpha", "eps", "weight_decay", "momentum"),
                            low=0)

    def init_state(self, p: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        state["step"] = state_scalar(0)
        state["square_avg"] = state_buffer(np.zeros_like(p._data))
        if group["momentum"] > 0:
            state["momentum_buffer"] = state_buffer(np.zeros_like(p._data))
        if group["centered"]:
            state["grad_avg"] = state_buffer(np.zeros_like(p._data))

    def update(self, p: Any, g: np.ndarray, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        alpha, weight_decay = group["alpha"], group["weight_decay"]
        if weight_decay != 0:
            g = g + weight_decay * p._data
        square_avg = state["square_avg"]._data
        square_avg *= alpha
        square_avg += (1 - alpha) * g * g
        if group["centered"]:
            grad_avg = state["grad_avg"]._data
            grad_avg += (1 - alpha) * (g - grad_avg)
            avg = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]._data
            buf *= group["momentum"]
            buf += g / avg
            p._data -= group["lr"] * buf
        else:
            p._data -= group["lr"] * (g / avg)
