"""Module, Parameter and Sequential: the containers layers are built from."""
from collections import OrderedDict

import numpy as np

from minipool.tensor import Tensor

__all__ = ["Parameter", "Module", "Sequential"]


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (requires_grad by default)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter(" + super().__repr__() + ")"


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``remove()`` takes the hook out again."""

    _next_id = 0

    def __init__(self, registry, hook):
        self._registry, self.id = registry, RemovableHandle._next_id
        RemovableHandle._next_id += 1
        registry[self.id] = hook

    def remove(self):
        self._registry.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class Module:
    """Base class of layers and models.

    Assigning a Parameter, a Module or a buffer (``register_buffer``) as an
    attribute registers it; ``parameters()``, ``state_dict()`` and ``train()``
    then reach it.

    >>> import minipool as mp
    >>> class Scale(mp.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.weight = mp.nn.Parameter(mp.ones(3))
    ...     def forward(self, x):
    ...         return x * self.weight
    >>> m = Scale()
    >>> [name for name, _ in m.named_parameters()]
    ['weight']
    >>> m(mp.tensor([1.0, 2.0, 3.0])).numpy()
    array([1., 2., 3.], dtype=float32)
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name, value):
        """A non-trainable array saved in state_dict (e.g. fixed RBF prototypes)."""
        value = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
        object.__setattr__(self, name, value)
        self._buffers[name] = value

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        hooks = self.__dict__.get("_forward_hooks")  # None until a hook is registered
        if not hooks:
            return self.forward(*args, **kwargs)
        for pre in tuple(hooks["pre"].values()):
            changed = pre(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        result = self.forward(*args, **kwargs)
        for post in tuple(hooks["post"].values()):
            changed = post(self, args, result)
            if changed is not None:
                result = changed
        return result

    # -- hooks (as torch.nn.Module's; used by mp.summary) ---------------------------
    def _add_hook(self, kind, hook):
        if not callable(hook):
            raise TypeError(f"register_forward_{'pre_' if kind == 'pre' else ''}hook: hook must be "
                            f"callable, got {type(hook).__name__}")
        hooks = self.__dict__.get("_forward_hooks")
        if hooks is None:
            hooks = {"pre": OrderedDict(), "post": OrderedDict()}
            object.__setattr__(self, "_forward_hooks", hooks)
        return RemovableHandle(hooks[kind], hook)

    def register_forward_hook(self, hook):
        """Call ``hook(module, args, output)`` after each forward; a non-None return
        replaces the output.  Returns a handle: ``handle.remove()`` unregisters it.

        >>> import minipool as mp
        >>> relu = mp.nn.ReLU()
        >>> seen = []
        >>> handle = relu.register_forward_hook(lambda m, args, out: seen.append(out.shape))
        >>> _ = relu(mp.zeros(2, 3)); handle.remove(); _ = relu(mp.zeros(4))
        >>> seen
        [(2, 3)]
        """
        return self._add_hook("post", hook)

    def register_forward_pre_hook(self, hook):
        """Call ``hook(module, args)`` before each forward; a non-None return replaces
        the positional arguments (a tuple, or a single value)."""
        return self._add_hook("pre", hook)

    # -- traversal -----------------------------------------------------------
    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix=""):
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self):
        for mod_name, mod in self.named_modules():
            for name, b in mod._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    # -- modes and gradients ---------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # -- persistence -------------------------------------------------------------
    def state_dict(self):
        """Name -> NumPy array copy of every parameter and buffer (PyTorch's key names)."""
        state = OrderedDict()
        for name, p in self.named_parameters():
            state[name] = p.data.copy()
        for name, b in self.named_buffers():
            state[name] = b.data.copy()
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays (or Tensors) into the parameters and buffers, in place.

        Nothing is changed unless every key and shape fits (when ``strict``);
        the error lists the missing, unexpected and mismatched entries.
        """
        own = OrderedDict(self.named_parameters())
        own.update(self.named_buffers())
        incoming = {k: np.asarray(v.data if isinstance(v, Tensor) else v) for k, v in state.items()}
        missing = [k for k in own if k not in incoming]
        unexpected = [k for k in incoming if k not in own]
        mismatched = [f"{k}: checkpoint {incoming[k].shape} vs model {own[k].shape}"
                      for k in own if k in incoming and incoming[k].shape != own[k].shape]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed: " + " | ".join(problems))
        for k, t in own.items():
            if k in incoming:
                t.data = incoming[k].astype(t.dtype, copy=True)

    # -- display -------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            for name, child in self._modules.items():
                child_repr = repr(child).replace("\n", "\n  ")
                lines.append(f"  ({name}): {child_repr}")
            return "\n".join(lines) + "\n)"
        return lines[0] + ")"


class Sequential(Module):
    """Apply modules in order.

    >>> import minipool as mp
    >>> net = mp.nn.Sequential(mp.nn.ReLU(), mp.nn.Flatten())
    >>> net(mp.tensor([[[-1.0, 2.0]]])).shape
    (1, 2)
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            modules = modules[0].items()
        else:
            modules = ((str(i), m) for i, m in enumerate(modules))
        for name, m in modules:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: entry {name} is a {type(m).__name__}, not a Module")
            setattr(self, name, m)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x
