"""Adam and AdamW."""
from typing import Any, Dict, Iterable, Tuple

import numpy as np

from minipool.ops import optimizer_steps
from minipool.optim.optimizer import (PerParameterOptimizer, check_betas, check_number,
                                      state_buffer, state_scalar)

__all__ = ["Adam", "AdamW"]


def _lerp_(start, end, weight):
    """start += weight * (end - start) in place, with PyTorch's two-sided lerp formula."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def _decay(p, g, lr, weight_decay, decoupled):
    """The gradient after weight decay: L2 (``g + wd * p``), or decoupled (AdamW: ``p`` shrinks
    in place by ``1 - lr * wd`` and ``g`` is unchanged)."""
    if weight_decay != 0:
        if decoupled:
            p._data *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p._data
    return g


def _update_moments(state, g, beta1, beta2):
    """Adam's running moments, in place: exp_avg lerps toward g, exp_avg_sq toward g*g."""
    exp_avg, exp_avg_sq = state["exp_avg"]._data, state["exp_avg_sq"]._data
    _lerp_(exp_avg, g, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    return exp_avg, exp_avg_sq


class Adam(PerParameterOptimizer):
    """Adam (Kingma and Ba, 2015) with PyTorch's update rule.  For step t::

        g = g + weight_decay * p            (Adam; AdamW instead does p *= 1 - lr * weight_decay)
        m = m + (1 - beta1) * (g - m)
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    With ``amsgrad`` the running maximum of v replaces v in the denominator.

    >>> import minipool as mp
    >>> w = mp.nn.Parameter(mp.tensor([1.0, -2.0]))
    >>> opt = mp.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.numpy().round(4)
    array([ 0.9, -1.9], dtype=float32)
    """

    decoupled_weight_decay = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
        super().__init__(params, defaults)

    def check_group(self, group: Dict[str, Any]) -> None:
        name = type(self).__name__
        check_number(name, "lr", group["lr"], low=0)  # lr=0 freezes, as PyTorch allows
        check_number(name, "eps", group["eps"], low=0)
        check_number(name, "weight_decay", group["weight_decay"], low=0)
        check_betas(name, group)

    def init_state(self, p: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        state["step"] = state_scalar(0)
        state["exp_avg"] = state_buffer(np.zeros_like(p._data))
        state["exp_avg_sq"] = state_buffer(np.zeros_like(p._data))
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = state_buffer(np.zeros_like(p._data))

    def update(self, p: Any, g: np.ndarray, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        lr, eps, (beta1, beta2), step = group["lr"], group["eps"], group["betas"], state["step"].item()
        step_size, bias_root = lr / (1 - beta1 ** step), (1 - beta2 ** step) ** 0.5
        if optimizer_steps.adam_step(p._data, g, state["exp_avg"]._data, state["exp_avg_sq"]._data,
                                     state["max_exp_avg_sq"]._data if group["amsgrad"] else None,
                                     lr, beta1, beta2, eps, group["weight_decay"],
                                     self.decoupled_weight_decay, False, step_size, bias_root):
            return  # the same update in one pass; below, in NumPy
        g = _decay(p, g, lr, group["weight_decay"], self.decoupled_weight_decay)
        exp_avg, exp_avg_sq = _update_moments(state, g, beta1, beta2)
        if group["amsgrad"]:
            second = state["max_exp_avg_sq"]._data
            np.maximum(second, exp_avg_sq, out=second)
        else:
            second = exp_avg_sq
        denom = np.sqrt(second)
        denom /= bias_root
        denom += eps
        update = -step_size * exp_avg
        update /= denom
        p._data += update


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019): before the
    Adam update, ``p *= 1 - lr * weight_decay`` (default weight_decay=1e-2)."""

    decoupled_weight_decay = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
