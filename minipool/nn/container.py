"""ModuleList and ModuleDict (sub-modules), ParameterList and ParameterDict (parameters): hold
them so parameters(), state_dict(), to() and train() reach them, without defining how they are
called (write your own forward)."""
import operator
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Tuple

from minipool.nn.module import Module, Parameter, delete_at, position, renumber
from minipool.tensor import Tensor

__all__ = ["ModuleList", "ModuleDict", "ParameterList", "ParameterDict"]


def _check_module(value, where):
    if not isinstance(value, Module):
        raise TypeError(f"{where}: expected a Module, got {type(value).__name__}")
    return value


class ModuleList(Module):
    """A list of modules registered under the names "0", "1", ... (PyTorch's state_dict keys).

    >>> import minipool as mp
    >>> layers = mp.nn.ModuleList([mp.nn.Linear(2, 2) for _ in range(3)])
    >>> layers.append(mp.nn.ReLU())
    ModuleList(...)
    >>> len(layers), sorted(layers.state_dict())[:2]
    (4, ['0.bias', '0.weight'])
    """

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, idx):
        return position(idx, len(self), "ModuleList")

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(self._index(idx))]

    def __setitem__(self, idx, module):
        setattr(self, str(self._index(idx)), _check_module(module, "ModuleList.__setitem__"))

    def __delitem__(self, idx):
        delete_at(self, idx, "ModuleList")

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))

    def __iadd__(self, modules):
        return self.extend(modules)

    def __add__(self, other):
        if not isinstance(other, ModuleList):
            raise TypeError(f"ModuleList + {type(other).__name__}: only a ModuleList can be added")
        return ModuleList(list(self) + list(other))

    def append(self, module: Module) -> "ModuleList":
        """Add ``module`` at the end; returns self."""
        setattr(self, str(len(self)), _check_module(module, "ModuleList.append"))
        return self

    def extend(self, modules: Any) -> "ModuleList":
        """Append every module of an iterable; returns self."""
        if not isinstance(modules, Iterable) or isinstance(modules, Module) and not isinstance(
                modules, (ModuleList,)):
            raise TypeError(f"ModuleList.extend: expected an iterable of Modules, "
                            f"got {type(modules).__name__}")
        for m in list(modules):
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index`` (list semantics)."""
        modules = list(self._modules.values())
        modules.insert(operator.index(index), _check_module(module, "ModuleList.insert"))
        renumber(self, modules)

    def forward(self, *args, **kwargs) -> Any:
        raise NotImplementedError("ModuleList has no forward(): iterate over it in your module's forward")


class ModuleDict(Module):
    """An ordered dict of modules registered under their keys.

    >>> import minipool as mp
    >>> heads = mp.nn.ModuleDict({"a": mp.nn.Linear(2, 1), "b": mp.nn.Linear(2, 3)})
    >>> list(heads.keys()), heads["b"].out_features
    (['a', 'b'], 3)
    """

    def __init__(self, modules: Optional[Mapping[str, Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def _key(self, key):
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict keys must be strings, got {type(key).__name__}")
        if not key or "." in key:
            raise KeyError(f"ModuleDict key {key!r} must be a non-empty string without '.'")
        if hasattr(self, key) and key not in self._modules:
            raise KeyError(f"ModuleDict key {key!r} clashes with an attribute of ModuleDict")
        return key

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        setattr(self, self._key(key), _check_module(module, "ModuleDict.__setitem__"))

    def __delitem__(self, key):
        if key not in self._modules:
            raise KeyError(key)
        delattr(self, key)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules))

    def __contains__(self, key):
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def items(self) -> Iterable[Tuple[str, Module]]:
        return self._modules.items()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def clear(self) -> None:
        for key in list(self._modules):
            delattr(self, key)

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def update(self, modules: Any) -> None:
        """Add (or replace) entries from a mapping or an iterable of (key, module) pairs."""
        if isinstance(modules, (Mapping, ModuleDict)):
            pairs = list(modules.items())
        elif isinstance(modules, Iterable):
            pairs = []
            for i, pair in enumerate(modules):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise ValueError(f"ModuleDict.update: entry {i} must be a (key, module) pair, "
                                     f"got {pair!r}")
                pairs.append(tuple(pair))
        else:
            raise TypeError(f"ModuleDict.update: expected a mapping or an iterable of (key, module) "
                            f"pairs, got {type(modules).__name__}")
        for key, module in pairs:
            self[key] = module

    def forward(self, *args, **kwargs) -> Any:
        raise NotImplementedError("ModuleDict has no forward(): pick entries in your module's forward")


def _as_parameter(value, where):
    """A Tensor becomes a Parameter (requires_grad=True), as PyTorch's containers do."""
    if isinstance(value, Parameter):
        return value
    if isinstance(value, Tensor):
        return Parameter(value)
    raise TypeError(f"{where}: expected a Tensor or Parameter, got {type(value).__name__}")


def _parameter_lines(name, items):
    """PyTorch's repr of a parameter container: one line per entry, dtype and size."""
    lines = [f"    ({key}): Parameter containing: [{p.dtype} of size "
             f"{'x'.join(str(n) for n in p.shape)}]" for key, p in items]
    return f"{name}(\n" + "\n".join(lines) + "\n)" if lines else f"{name}()"


class ParameterList(Module):
    """A list of parameters registered under the names "0", "1", ... (PyTorch's state_dict
    keys); a plain Tensor put in becomes a Parameter.

    >>> import minipool as mp
    >>> weights = mp.nn.ParameterList([mp.zeros(2, 3), mp.nn.Parameter(mp.ones(3))])
    >>> len(weights), [name for name, _ in weights.named_parameters()], weights[0].requires_grad
    (2, ['0', '1'], True)
    """

    def __init__(self, values: Optional[Iterable[Tensor]] = None) -> None:
        super().__init__()
        if values is not None:
            self.extend(values)

    def _index(self, idx):
        try:
            idx = operator.index(idx)
        except TypeError:
            raise TypeError(f"ParameterList indices must be integers or slices, "
                            f"not {type(idx).__name__}") from None
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range")
        return idx % n

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ParameterList(list(self._parameters.values())[idx])
        return self._parameters[str(self._index(idx))]

    def __setitem__(self, idx, value):
        setattr(self, str(self._index(idx)), _as_parameter(value, "ParameterList.__setitem__"))

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(list(self._parameters.values()))

    def __iadd__(self, values):
        return self.extend(values)

    def append(self, value: Tensor) -> "ParameterList":
        """Add ``value`` (a Parameter, or a Tensor made one) at the end; returns self."""
        setattr(self, str(len(self)), _as_parameter(value, "ParameterList.append"))
        return self

    def extend(self, values: Iterable[Tensor]) -> "ParameterList":
        """Append every tensor of an iterable; returns self."""
        if isinstance(values, Tensor) or not isinstance(values, Iterable):
            raise TypeError(f"ParameterList.extend: expected an iterable of Tensors, "
                            f"got {type(values).__name__}")
        for v in list(values):
            self.append(v)
        return self

    def __repr__(self):
        return _parameter_lines("ParameterList", self._parameters.items())

    def forward(self, *args, **kwargs) -> Any:
        raise NotImplementedError("ParameterList has no forward(): use its entries in your "
                                  "module's forward")


class _MissingKey(KeyError, AttributeError):
    """A missing ParameterDict key: PyTorch raises AttributeError there, dicts KeyError; this
    is both, so either habit's ``except`` catches it."""


class ParameterDict(Module):
    """An ordered dict of parameters registered under their keys; a plain Tensor put in
    becomes a Parameter.  As PyTorch, a plain dict's entries are added in sorted key order
    (an OrderedDict's or a list of pairs' in their own order).

    >>> import minipool as mp
    >>> scales = mp.nn.ParameterDict({"b": mp.ones(2), "a": mp.zeros(1)})
    >>> list(scales.keys()), list(scales.state_dict())
    (['a', 'b'], ['a', 'b'])
    """

    def __init__(self, parameters: Any = None) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def _key(self, key):
        if not isinstance(key, str):
            raise TypeError(f"ParameterDict keys must be strings, got {type(key).__name__}")
        if not key or "." in key:
            raise KeyError(f"ParameterDict key {key!r} must be a non-empty string without '.'")
        if hasattr(self, key) and key not in self._parameters:
            raise KeyError(f"ParameterDict key {key!r} clashes with an attribute of ParameterDict")
        return key

    def __getitem__(self, key):
        try:
            return self._parameters[key]
        except (KeyError, TypeError):
            raise _MissingKey(f"ParameterDict has no key {key!r}") from None

    def __setitem__(self, key, value):
        setattr(self, self._key(key), _as_parameter(value, "ParameterDict.__setitem__"))

    def __delitem__(self, key):
        if key not in self._parameters:
            raise _MissingKey(f"ParameterDict has no key {key!r}")
        delattr(self, key)

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(list(self._parameters))

    def __contains__(self, key):
        return key in self._parameters

    def keys(self) -> Iterable[str]:
        return self._parameters.keys()

    def items(self) -> Iterable[Tuple[str, Parameter]]:
        return self._parameters.items()

    def values(self) -> Iterable[Parameter]:
        return self._parameters.values()

    def get(self, key: str, default: Any = None) -> Any:
        """The parameter under ``key``, or ``default``."""
        return self._parameters.get(key, default)

    def clear(self) -> None:
        for key in list(self._parameters):
            delattr(self, key)

    def pop(self, key: str) -> Parameter:
        param = self[key]
        del self[key]
        return param

    def update(self, parameters: Any) -> None:
        """Add (or replace) entries from a mapping (a plain dict's in sorted key order, as
        PyTorch) or an iterable of (key, tensor) pairs."""
        if isinstance(parameters, (OrderedDict, ParameterDict)):
            pairs = list(parameters.items())
        elif isinstance(parameters, Mapping):
            pairs = sorted(parameters.items(), key=lambda kv: kv[0])
        elif isinstance(parameters, Iterable) and not isinstance(parameters, (str, Tensor)):
            pairs = []
            for i, pair in enumerate(parameters):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise ValueError(f"ParameterDict.update: entry {i} must be a (key, tensor) "
                                     f"pair, got {pair!r}")
                pairs.append(tuple(pair))
        else:
            raise TypeError(f"ParameterDict.update: expected a mapping or an iterable of "
                            f"(key, tensor) pairs, got {type(parameters).__name__}")
        for key, value in pairs:
            self[key] = value

    def __repr__(self):
        return _parameter_lines("ParameterDict", self._parameters.items())

    def forward(self, *args, **kwargs) -> Any:
        raise NotImplementedError("ParameterDict has no forward(): use its entries in your "
                                  "module's forward")
