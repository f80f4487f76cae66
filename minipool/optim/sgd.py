"""Stochastic gradient descent with momentum, dampening, weight decay and Nesterov."""
from typing import Any, Callable, Dict, Iterable, Optional

import numpy as np

from minipool.ops import optimizer_steps
from minipool.optim.optimizer import Optimizer, check_number, state_buffer

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD with PyTorch's update rule, for each parameter p with gradient g::

        g = g + weight_decay * p
        b = g                                  (first step)
        b = momentum * b + (1 - dampening) * g (later steps)
        g = g + momentum * b if nesterov else b    (only when momentum != 0)
        p = p - lr * g

    >>> import minipool as mp
    >>> w = mp.nn.Parameter(mp.tensor([1.0, -2.0]))
    >>> opt = mp.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.numpy()
    array([ 0.8, -1.6], dtype=float32)
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def check_group(self, group: Dict[str, Any]) -> None:
        check_number("SGD", "lr", group["lr"], low=0)  # lr=0 freezes, as PyTorch allows
        check_number("SGD", "momentum", group["momentum"], low=0)
        check_number("SGD", "dampening", group["dampening"])
        check_number("SGD", "weight_decay", group["weight_decay"], low=0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                raw = self._grad(p)
                if raw is None:
                    continue
                state = self.state.setdefault(p, {}) if momentum != 0 else None
                buf = None if state is None else state.get("momentum_buffer")
                first = state is not None and buf is None
                buf_data = np.empty_like(p._data) if first else None if buf is None else buf._data
                if optimizer_steps.sgd_step(p._data, raw, buf_data, lr, momentum, dampening,
                                            weight_decay, nesterov, group["maximize"], first):
                    if first:
                        state["momentum_buffer"] = state_buffer(buf_data)
                    continue
                g = -raw if group["maximize"] else raw  # the same update in NumPy
                if weight_decay != 0:
                    g = g + weight_decay * p._data
                if momentum != 0:
                    if buf is None:
                        buf = np.array(g, dtype=p.dtype, copy=True)
                        state["momentum_buffer"] = state_buffer(buf)
                    else:
                        buf = buf._data
                        buf *= momentum
                        if dampening == 0:
                            buf += g
                        else:
                            buf += (1 - dampening) * g
                    g = g + momentum * buf if nesterov else buf
                p._data -= lr * g
        return loss
