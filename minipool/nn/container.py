"""ModuleList and ModuleDict: hold sub-modules so parameters(), state_dict(), train()
and eval() reach them, without defining how they are called (write your own forward)."""
import operator
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Tuple

from minipool.nn.module import Module

__all__ = ["ModuleList", "ModuleDict"]


def _put(container, name, module):
    """Register ``module`` under ``name``, keeping the position of an existing entry
    (Module.__setattr__ would move a re-assigned name to the end)."""
    container._modules[name] = module
    object.__setattr__(container, name, module)


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
        try:
            idx = operator.index(idx)
        except TypeError:
            raise TypeError(f"ModuleList indices must be integers or slices, "
                            f"not {type(idx).__name__}") from None
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"ModuleList index {idx} is out of range for length {n}")
        return idx % n if n else idx

    def _renumber(self, modules):
        """Re-register ``modules`` as "0", "1", ... (after a delete or insert)."""
        for name in list(self._modules):
            object.__delattr__(self, name)
        self._modules.clear()
        for i, m in enumerate(modules):
            _put(self, str(i), m)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(self._index(idx))]

    def __setitem__(self, idx, module):
        _put(self, str(self._index(idx)), _check_module(module, "ModuleList.__setitem__"))

    def __delitem__(self, idx):
        modules = list(self._modules.values())
        if isinstance(idx, slice):
            del modules[idx]
        else:
            del modules[self._index(idx)]
        self._renumber(modules)

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
        _put(self, str(len(self)), _check_module(module, "ModuleList.append"))
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
        self._renumber(modules)

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
        _put(self, self._key(key), _check_module(module, "ModuleDict.__setitem__"))

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
