"""The Optimizer base class: parameter groups, zero_grad, state_dict / load_state_dict.

Subclasses implement ``step()``; every update is in place on the parameter's array with
vectorised NumPy (no graph is recorded, no new parameter arrays are made).
"""
import copy
import numbers
from collections import defaultdict
from typing import Any, Callable, Dict, Iterable, Optional

import numpy as np

from minipool.tensor import FLOAT_DTYPES, Tensor, enable_grad, get_default_dtype

__all__ = ["Optimizer", "PerParameterOptimizer", "check_betas", "check_group_numbers", "check_number",
           "state_buffer", "state_scalar", "tick"]

# Per-parameter state entries that are 0-d counters of the default dtype (float32 unless changed),
# as PyTorch keeps them; the others are buffers of the parameter's shape and dtype.
_SCALAR_STATE = ("step", "mu_product", "eta", "mu")


def state_buffer(array: np.ndarray) -> Tensor:
    """An optimiser state buffer: a Tensor owning ``array``, which the step updates in place
    through ``._data`` (so ``opt.state[p]["exp_avg"]`` is a Tensor, as in PyTorch, at no cost)."""
    return Tensor._from_result(array, False)


def state_scalar(value: float) -> Tensor:
    """A 0-d counter of the default dtype (``"step"``, ``"mu_product"``, ...), as PyTorch's."""
    return Tensor._from_result(np.array(value, dtype=get_default_dtype()), False)


def tick(state: Dict[str, Any]) -> float:
    """Add 1 to ``state["step"]`` in place and return the new count."""
    counter = state["step"]._data
    step = counter.item() + 1.0  # (a 0-d ndarray's += costs ~20x this)
    counter[()] = step
    return step


def check_number(where, name, value, low=None, high=None, low_open=False, high_open=False):
    """Raise ValueError naming ``name`` unless ``value`` is a real number in the given range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise ValueError(f"{where}: {name} must be a real number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{where}: {name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{where}: {name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return value


def _plain_lr(where: str, lr: Any) -> Any:
    """A 0-d float Tensor ``lr`` (PyTorch accepts a Tensor) as its Python value; the steps
    and the schedulers then see a plain number, as for ``lr=0.01``."""
    if not isinstance(lr, Tensor):
        return lr
    if lr.ndim != 0 or lr.dtype.kind != "f":
        raise ValueError(f"{where}: lr must be a real number or a 0-d float Tensor, got a "
                         f"{lr.dtype} Tensor of shape {tuple(lr.shape)}")
    return lr.item()


def check_group_numbers(where, group, names, **bounds):
    """``check_number`` on each of ``group``'s entries ``names``, in order, with the same
    ``bounds`` (e.g. ``low=0``)."""
    for name in names:
        check_number(where, name, group[name], **bounds)


def check_betas(where, group):
    """Check ``group["betas"]`` (a pair, each in [0, 1)) and store it as a tuple; errors name
    ``where`` and the beta."""
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
    check_number(where, "betas[0]", betas[0], low=0, high=1, high_open=True)
    check_number(where, "betas[1]", betas[1], low=0, high=1, high_open=True)
    group["betas"] = tuple(betas)


def _saved_state_value(key, value):
    """A state entry as ``state_dict()`` gives it: a Tensor copy of a buffer or counter
    (PyTorch's types), anything else as it is."""
    if isinstance(value, Tensor):
        return Tensor(value._data.copy())
    if isinstance(value, np.ndarray):
        return Tensor(value.copy())
    return value


class Optimizer:
    """Base class: holds ``param_groups`` (dicts with "params" and hyper-parameters
    such as "lr") and per-parameter ``state``.

    ``params`` is an iterable of Parameters or of dicts ``{"params": [...], "lr": ...}``
    (per-group options override the defaults).
    """

    def __init__(self, params: Iterable[Any], defaults: Dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)  # parameter -> {name: Tensor}, as torch.optim's
        self.param_groups = []
        self._step_calls = 0
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors or of dicts, "
                            "not a single Tensor (wrap it in a list)")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: params is an empty list; nothing to optimise")
        if not isinstance(groups[0], dict):  # tensors, or (name, tensor) pairs
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- groups ---------------------------------------------------------------
    def check_group(self, group: Dict[str, Any]) -> None:
        """Validate one group's hyper-parameters (subclasses override)."""

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Add a group of parameters, filling unspecified options from the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"{type(self).__name__}: a parameter group must be a dict, "
                            f"got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{type(self).__name__}: a parameter group needs a 'params' entry")
        params = [params] if isinstance(params, Tensor) else list(params)
        named = [isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in params]
        if any(named):  # model.named_parameters(): the names go to "param_names", as PyTorch
            if not all(named) or ("param_names" in group and group["param_names"] is not None):
                raise ValueError(f"{type(self).__name__}: give a group's params all with names "
                                 f"((name, tensor) pairs) or all without")
            group["param_names"] = [name for name, _ in params]
            params = [p for _, p in params]
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: params[{i}] is a {type(p).__name__}, not a Tensor")
            if p.dtype not in FLOAT_DTYPES:
                raise TypeError(f"{type(self).__name__}: params[{i}] has dtype {p.dtype}; "
                                "only float32/float64 parameters can be optimised")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__}: params[{i}] is not a leaf tensor "
                                 "(it was computed by an op); optimise the leaves")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: params[{i}] appears more than once "
                                 "(in this group or an earlier one)")
            seen.add(id(p))
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        if "lr" in group:
            group["lr"] = _plain_lr(type(self).__name__, group["lr"])
        self.check_group(group)
        self.param_groups.append(group)

    # -- gradients and steps ---------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: set ``p.grad`` to None (default) or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad._data[...] = 0

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define step()")

    def _run_closure(self, closure):
        self._step_calls += 1
        if closure is None:
            return None
        with enable_grad():
            return closure()

    @staticmethod
    def _grad(p, maximize=False):
        """The gradient array of ``p`` (negated when maximising), or None when it has none."""
        if p.grad is None:
            return None
        g = p.grad._data if isinstance(p.grad, Tensor) else np.asarray(p.grad)
        if g.shape != p.shape:
            raise ValueError(f"gradient of shape {g.shape} for a parameter of shape {p.shape}")
        return -g if maximize else g

    # -- persistence -----------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """{"state": {index: {name: value}}, "param_groups": [{..., "params": [index, ...]}]}.

        Parameters are numbered across groups in order, as in PyTorch; the state's buffers and
        counters are Tensors (``"step"`` a 0-d one, as PyTorch's) holding copies, so later steps
        do not change a saved dict.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: _saved_state_value(k, v) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by ``state_dict()`` (checked before anything changes)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the saved state has {len(saved_groups)} parameter "
                             f"groups, this optimizer has {len(self.param_groups)}")
        by_index = {}
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: group {gi} has {len(saved['params'])} "
                                 f"parameters in the saved state and {len(group['params'])} here")
            by_index.update(zip(saved["params"], group["params"]))
        new_state = {}
        for key, values in state_dict["state"].items():
            if key not in by_index:
                raise ValueError(f"{name}.load_state_dict: state for unknown parameter index {key}")
            p = by_index[key]
            entry = {}
            for k, v in values.items():
                if k in _SCALAR_STATE and isinstance(v, numbers.Real) and not isinstance(v, bool):
                    entry[k] = state_scalar(v)
                    continue
                if isinstance(v, (np.ndarray, Tensor)):
                    v = np.asarray(v._data if isinstance(v, Tensor) else v)
                    if v.ndim == 0 and (k in _SCALAR_STATE or p.ndim > 0):  # a 0-d counter
                        entry[k] = state_scalar(v.item())
                        continue
                    if v.shape != p.shape:
                        raise ValueError(f"{name}.load_state_dict: state '{k}' of parameter {key} has "
                                         f"shape {v.shape}, the parameter has shape {p.shape}")
                    v = state_buffer(v.astype(p.dtype, copy=True))
                entry[k] = v
            new_state[p] = entry
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = copy.deepcopy(v)
        self.state = defaultdict(dict, new_state)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        return "\n".join(lines) + "\n)"


class PerParameterOptimizer(Optimizer):
    """The loop most optimisers share: per parameter with a gradient, fresh state on the
    first step (``init_state(p, state, group)``), the step counter ticked, then
    ``update(p, g, state, group)`` on the (maximize-negated) gradient."""

    def init_state(self, p: Any, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define init_state()")

    def update(self, p: Any, g: np.ndarray, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define update()")

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                g = self._grad(p, group["maximize"])
                if g is None:
                    continue
                state = self.state.setdefault(p, {})
                if not state:
                    self.init_state(p, state, group)
                tick(state)
                self.update(p, g, state, group)
        return loss
