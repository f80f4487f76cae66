"""Adagrad, Adadelta, Adamax, NAdam, RAdam and ASGD, with PyTorch's update rules (its single-tensor
CPU path, operation for operation, so float64 trajectories agree to rounding).

Each keeps PyTorch's state names ("step", "sum", "square_avg", "acc_delta", "exp_avg",
"exp_avg_sq", "exp_inf", "mu_product", "eta", "mu", "ax"), so a state_dict reads the same.
"""
from typing import Any, Dict, Iterable, Tuple

import numpy as np

from minipool.optim.adam import _decay, _lerp_, _update_moments
from minipool.optim.optimizer import (PerParameterOptimizer, check_betas, check_group_numbers,
                                      check_number, state_buffer, state_scalar)

__all__ = ["Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD"]


class Adagrad(PerParameterOptimizer):
    """Adagrad (Duchi et al., 2011) as ``torch.optim.Adagrad``.  For step t::

        g = g + weight_decay * p
        sum = sum + g * g                      (starts at initial_accumulator_value)
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)

    >>> import minipool as mp
    >>> w = mp.nn.Parameter(mp.tensor([1.0, -2.0], dtype="float64"))
    >>> opt = mp.optim.Adagrad([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.numpy().round(4)
    array([ 0.9, -1.9])
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0, eps: float = 1e-10,
                 *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:  # PyTorch makes the state at construction
            for p in group["params"]:
                self.init_state(p, self.state.setdefault(p, {}), group)

    def check_group(self, group: Dict[str, Any]) -> None:
        check_group_numbers("Adagrad", group, ("lr", "lr_decay", "weight_decay",
                                               "initial_accumulator_value", "eps"), low=0)

    def init_state(self, p: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        state["step"] = state_scalar(0)
        state["sum"] = state_buffer(np.full_like(p._data, group["initial_accumulator_value"]))

    def update(self, p: Any, g: np.ndarray, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p._data
        clr = group["lr"] / (1 + (state["step"].item() - 1) * group["lr_decay"])
        total = state["sum"]._data
        total += g * g
        std = np.sqrt(total)
        std += group["eps"]
        p._data += -clr * (g / std)


class Adadelta(PerParameterOptimizer):
    """Adadelta (Zeiler, 2012) as ``torch.optim.Adadelta``::

        g = g + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        d = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * d * d
        p = p - lr * d
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def check_group(self, group: Dict[str, Any]) -> None:
        check_number("Adadelta", "lr", group["lr"], low=0)
        check_number("Adadelta", "rho", group["rho"], low=0, high=1)
        check_number("Adadelta", "eps", group["eps"], low=0)
        check_number("Adadelta", "weight_decay", group["weight_decay"], low=0)

    def init_state(self, p: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        state["step"] = state_scalar(0)
        state["square_avg"] = state_buffer(np.zeros_like(p._data))
        state["acc_delta"] = state_buffer(np.zeros_like(p._data))

    def update(self, p: Any, g: np.ndarray, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        rho, eps = group["rho"], group["eps"]
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p._data
        square_avg, acc_delta = state["square_avg"]._data, state["acc_delta"]._data
        square_avg *= rho
        square_avg += (1 - rho) * g * g
        std = np.sqrt(square_avg + eps)
        delta = np.sqrt(acc_delta + eps)
        delta /= std
        delta *= g
        acc_delta *= rho
        acc_delta += (1 - rho) * delta * delta
        p._data += -group["lr"] * delta


class Adamax(PerParameterOptimizer):
    """Adamax (the infinity-norm Adam variant) as ``torch.optim.Adamax``::

        g = g + weight_decay * p
        m = m + (1 - beta1) * (g - m)
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1**t) * m / u
    """

    def __init__(self, params: Iterable[Any], lr: float = 2e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def check_group(self, group: Dict[str, Any]) -> None:
        check_group_numbers("Adamax", group, ("lr", "eps", "weight_decay"), low=0)
        check_betas("Adamax", group)

    def init_state(self, p: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        state["step"] = state_scalar(0)
        state["exp_avg"] = state_buffer(np.zeros_like(p._data))
        state["exp_inf"] = state_buffer(np.zeros_like(p._data))

    def update(self, p: Any, g: np.ndarray, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p._data
        exp_avg, exp_inf = state["exp_avg"]._data, state["exp_inf"]._data
        _lerp_(exp_avg, g, 1 - beta1)
        exp_inf *= beta2
        bound = np.abs(g)
        bound += group["eps"]
        np.maximum(exp_inf, bound, out=exp_inf)
        clr = group["lr"] / (1 - beta1 ** state["step"].item())
        p._data += -clr * (exp_avg / exp_inf)


class NAdam(PerParameterOptimizer):
    """NAdam (Dozat, 2016: Adam with Nesterov momentum) as ``torch.optim.NAdam``, with its
    momentum schedule mu_t = beta1 (1 - 0.96^(t momentum_decay) / 2) and, with
    ``decoupled_weight_decay``, AdamW-style decay (NAdamW)."""

    def __init__(self, params: Iterable[Any], lr: float = 2e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def check_group(self, group: Dict[str, Any]) -> None:
        check_group_numbers("NAdam", group, ("lr", "eps", "weight_decay", "momentum_decay"), low=0)
        check_betas("NAdam", group)

    def init_state(self, p: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        state["step"] = state_scalar(0)
        state["mu_product"] = state_scalar(1.0)
        state["exp_avg"] = state_buffer(np.zeros_like(p._data))
        state["exp_avg_sq"] = state_buffer(np.zeros_like(p._data))

    def update(self, p: Any, g: np.ndarray, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        lr, (beta1, beta2), step = group["lr"], group["betas"], state["step"].item()
        g = _decay(p, g, lr, group["weight_decay"], group["decoupled_weight_decay"])
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * group["momentum_decay"])))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * group["momentum_decay"])))
        # PyTorch keeps the product in a tensor of the default dtype (float32 unless changed)
        product = state["mu_product"]._data
        product[()] = product * product.dtype.type(mu)
        mu_product = product.item()
        exp_avg, exp_avg_sq = _update_moments(state, g, beta1, beta2)
        denom = np.sqrt(exp_avg_sq / (1 - beta2 ** step))
        denom += group["eps"]
        p._data += (-lr * (1.0 - mu) / (1.0 - mu_product)) * (g / denom)
        p._data += ((-lr * mu_next) / (1.0 - mu_product * mu_next)) * (exp_avg / denom)


class RAdam(PerParameterOptimizer):
    """RAdam (Liu et al., 2019: Adam with the variance of its adaptive rate rectified) as
    ``torch.optim.RAdam``; while the rectification is undefined (rho_t <= 5) the step is
    plain momentum SGD.  ``decoupled_weight_decay``: AdamW-style decay."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize))

    def check_group(self, group: Dict[str, Any]) -> None:
        check_group_numbers("RAdam", group, ("lr", "eps", "weight_decay"), low=0)
        check_betas("RAdam", group)

    def init_state(self, p: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        state["step"] = state_scalar(0)
        state["exp_avg"] = state_buffer(np.zeros_like(p._data))
        state["exp_avg_sq"] = state_buffer(np.zeros_like(p._data))

    def update(self, p: Any, g: np.ndarray, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        lr, (beta1, beta2), step = group["lr"], group["betas"], state["step"].item()
        g = _decay(p, g, lr, group["weight_decay"], group["decoupled_weight_decay"])
        exp_avg, exp_avg_sq = _update_moments(state, g, beta1, beta2)
        bias_correction2 = 1 - beta2 ** step
        corrected = exp_avg / (1 - beta1 ** step)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            root = np.sqrt(exp_avg_sq)
            root += group["eps"]
            p._data -= corrected * lr * (bias_correction2 ** 0.5 / root) * rect
        else:
            p._data -= corrected * lr


class ASGD(PerParameterOptimizer):
    """Averaged SGD (Polyak and Juditsky, 1992) as ``torch.optim.ASGD``: an SGD step with a
    decaying rate ``eta_t = lr / (1 + lambd * lr * t) ** alpha`` (and a ``1 - lambd * eta``
    shrink of p), plus a running average ``ax`` of the parameters from step ``t0`` on.
    As PyTorch, eta and mu are held in the default dtype (float32 unless changed)."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lambd: float = 1e-4,
                 alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0, *,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                                      weight_decay=weight_decay, maximize=maximize))

    def check_group(self, group: Dict[str, Any]) -> None:
        check_number("ASGD", "lr", group["lr"], low=0)
        check_number("ASGD", "weight_decay", group["weight_decay"], low=0)
        for name in ("lambd", "alpha", "t0"):
            check_number("ASGD", name, group[name])

    def init_state(self, p: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        state["step"] = state_scalar(0)
        state["eta"] = state_scalar(group["lr"])
        state["mu"] = state_scalar(1.0)
        state["ax"] = state_buffer(np.zeros_like(p._data))

    def update(self, p: Any, g: np.ndarray, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        lr, lambd, eta = group["lr"], group["lambd"], state["eta"].item()
        if group["weight_decay"] != 0:
            g = g + group["weight_decay"] * p._data
        p._data *= 1 - lambd * eta
        p._data += -eta * g
        ax, mu = state["ax"]._data, state["mu"].item()
        if mu != 1:
            ax += (p._data - ax) * mu
        else:
            ax[...] = p._data
        step = state["step"].item()
        state["eta"]._data[...] = lr / ((1 + lambd * lr * step) ** group["alpha"])
        state["mu"]._data[...] = 1 / max(1, step - group["t0"])
