"""Module, Parameter and Sequential: the containers layers are built from."""
import operator
import warnings
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator, Mapping, Optional, Tuple

import numpy as np

from minipool._validate import parse_data_format
from minipool.tensor import Function, Tensor

__all__ = ["Parameter", "Module", "Sequential", "IncompatibleKeys"]

# What load_state_dict returns, as PyTorch's ``_IncompatibleKeys``.
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _copy_into(t, values):
    """Write ``values`` into ``t``'s memory (cast to its dtype) and count it as an in-place
    change, as PyTorch's ``param.copy_`` under no_grad does: a graph that saved ``t``
    refuses to backpropagate through the old values."""
    from minipool.tensor import _version_of

    if t._data.flags.writeable:
        np.copyto(t._data, values, casting="unsafe")
        box = _version_of(t)
        box.value += 1
        box.op = "load_state_dict()"
    else:  # a read-only array (e.g. from np.broadcast_to) cannot take the values
        t._data = values.astype(t.dtype, copy=True)


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable (requires_grad by default)."""

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data._data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter(" + super().__repr__() + ")"


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``remove()`` takes the hook out again."""

    _next_id = 0

    def __init__(self, registry: "OrderedDict[int, Callable[..., Any]]",
                 hook: Callable[..., Any]) -> None:
        self._registry, self.id = registry, RemovableHandle._next_id
        RemovableHandle._next_id += 1
        registry[self.id] = hook

    def remove(self) -> None:
        self._registry.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


_LOOP = ("write the PyTorch loop: for x, y in loader: optimizer.zero_grad(); "
         "loss = F.cross_entropy(model(x), y); loss.backward(); optimizer.step() "
         "(the README's 'Your own training loop')")
# Keras Model methods a Keras user reaches for, and the minipool way (an AttributeError says it).
_KERAS_MODEL_WAYS = {
    "compile": "pick an optimiser (mp.optim.Adam(model.parameters())) and a loss function, then "
               + _LOOP,
    "fit": _LOOP,
    "train_on_batch": _LOOP,
    "evaluate": "model.eval(), then compute the loss/accuracy of model(x) under `with mp.no_grad():`",
    "predict": "model.eval(), then `with mp.no_grad(): model(x)`",
    "summary": "mp.summary(model, input_size)",
    "save_weights": "mp.save(model.state_dict(), path)",
    "load_weights": "model.load_state_dict(mp.load(path))",
    "trainable_weights": "[p for p in model.parameters() if p.requires_grad]",
    "layers": "list(model.children()) (or list(model.modules()) for every level)",
}


def _takes_training(forward):
    """Whether a ``forward`` has its own ``training`` parameter (or ``**kwargs``)."""
    code = getattr(forward, "__code__", None)
    if code is None:
        return True
    names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    return "training" in names or bool(code.co_flags & 0x08)  # CO_VARKEYWORDS


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

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "training", True)

    def __getattr__(self, name):
        # only reached for a missing attribute: name the minipool way for Keras's Model methods
        way = _KERAS_MODEL_WAYS.get(name)
        if way is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r} (a Keras "
                             f"Model method; minipool models are PyTorch modules): {way}")

    def __setattr__(self, name, value):
        # PyTorch's rules: a Parameter or a Module registers (taking the old entry's place in
        # the order: a Sequential's layer swapped in by setattr stays where it was); a name
        # registered as a parameter, child module or buffer takes only its own kind or None
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        if isinstance(value, Parameter):
            self._leave_registries(name, keep=self._parameters)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._leave_registries(name, keep=self._modules)
            self._modules[name] = value
        else:
            for registry, kind, expected in ((self._parameters, "parameter", "mp.nn.Parameter"),
                                             (self._modules, "child module", "mp.nn.Module"),
                                             (self._buffers, "buffer", "mp.Tensor")):
                if name not in registry:
                    continue
                if value is not None and (registry is not self._buffers
                                          or not isinstance(value, Tensor)):
                    raise TypeError(f"cannot assign {type(value).__name__!r} as {kind} {name!r} "
                                    f"({expected} or None expected, as in PyTorch)")
                registry[name] = value
                break
        object.__setattr__(self, name, value)

    def _leave_registries(self, name, keep):
        """Take ``name`` out of every registry but ``keep`` (where it keeps its place)."""
        for registry in (self._parameters, self._modules, self._buffers):
            if registry is not keep:
                registry.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __delattr__(self, name):
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        self._non_persistent_buffers.discard(name)
        object.__delattr__(self, name)

    def _check_new_name(self, name, what, registry):
        if not isinstance(name, str):
            raise TypeError(f"{what} name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{what} name must be a non-empty string without '.', got {name!r}")
        if hasattr(self, name) and name not in registry:
            raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}")

    def register_buffer(self, name: str, tensor: Optional[Tensor], persistent: bool = True) -> None:
        """A non-trainable tensor (running statistics, fixed prototypes) that ``to()``
        converts and, if ``persistent``, ``state_dict()`` saves.  ``None`` reserves the
        name (nothing is saved); arrays are wrapped in a Tensor.

        >>> import minipool as mp
        >>> m = mp.nn.Module()
        >>> m.register_buffer("running_mean", mp.zeros(2))
        >>> list(m.state_dict())
        ['running_mean']
        """
        self._check_new_name(name, "buffer", self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(np.asarray(tensor))
        if isinstance(tensor, Parameter):
            raise TypeError(f"register_buffer({name!r}): got a Parameter; use register_parameter")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__setattr__(self, name, tensor)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def register_parameter(self, name: str, param: Optional["Parameter"]) -> None:
        """Register ``param`` (a Parameter, or None to reserve the name) under ``name``."""
        self._check_new_name(name, "parameter", self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, "
                            f"got {type(param).__name__}")
        if param is None:
            self._buffers.pop(name, None)
            self._modules.pop(name, None)
            self._parameters[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        """Register a child module (``None`` reserves the name), as ``setattr`` would."""
        self._check_new_name(name, "module", self._modules)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): {type(module).__name__} is not a Module")
        if module is None:
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
            self._modules[name] = None
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, module)

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        """The module at dotted path ``target`` ("" is self)."""
        mod = self
        for part in target.split(".") if target else ():
            if part not in mod._modules or mod._modules[part] is None:
                raise AttributeError(f"{type(mod).__name__} has no submodule {part!r} (in {target!r})")
            mod = mod._modules[part]
        return mod

    def get_parameter(self, target: str) -> "Parameter":
        """The parameter at dotted path ``target`` (e.g. ``"0.weight"``), as PyTorch's.

        >>> import minipool as mp
        >>> mp.nn.Sequential(mp.nn.Linear(2, 3)).get_parameter("0.bias").shape
        (3,)
        """
        return self._get_member(target, "_parameters", "parameter")

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at dotted path ``target`` (e.g. ``"0.running_mean"``), as PyTorch's."""
        return self._get_member(target, "_buffers", "buffer")

    def _get_member(self, target, registry, what):
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        if name not in getattr(mod, registry):
            raise AttributeError(f"{type(mod).__name__} has no {what} {name!r} (in {target!r})")
        return getattr(mod, registry)[name]

    def forward(self, *args, **kwargs) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        if kwargs and "training" in kwargs and not _takes_training(type(self).forward):
            return self._call_in_mode(kwargs.pop("training"), args, kwargs)
        if "_backward_hooks" in self.__dict__ and any(self._backward_hooks.values()):
            return _call_with_backward_hooks(self, args, kwargs)
        return self._forward_with_hooks(args, kwargs)

    def _call_in_mode(self, training, args, kwargs):
        """Keras's ``model(x, training=False)``: this one call runs with every submodule in
        that mode (``None``: as they are), then each gets its own mode back."""
        if training is None:
            return self(*args, **kwargs)
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}: training must be True, False or None, "
                            f"got {training!r}")
        modes = [(m, m.training) for m in self.modules()]
        self.train(bool(training))
        try:
            return self(*args, **kwargs)
        finally:
            for m, mode in modes:
                object.__setattr__(m, "training", mode)

    def _forward_with_hooks(self, args, kwargs):
        """``forward`` between the forward pre-hooks and hooks, which may replace its
        arguments and its result."""
        hooks = self.__dict__.get("_forward_hooks")  # None until a hook is registered
        if not hooks:
            return self.forward(*args, **kwargs)
        with_kwargs = hooks["with_kwargs"]
        for key, pre in tuple(hooks["pre"].items()):
            if key in with_kwargs:  # hook(module, args, kwargs) -> None or (args, kwargs)
                changed = pre(self, args, kwargs)
                if changed is not None:
                    if not (isinstance(changed, tuple) and len(changed) == 2):
                        raise RuntimeError("forward pre-hook registered with with_kwargs=True must "
                                           f"return None or a tuple (new_args, new_kwargs), got "
                                           f"{type(changed).__name__}")
                    args, kwargs = changed
                continue
            changed = pre(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        result = self.forward(*args, **kwargs)
        for key, post in tuple(hooks["post"].items()):
            changed = post(self, args, kwargs, result) if key in with_kwargs else post(self, args, result)
            if changed is not None:
                result = changed
        return result

    # -- hooks (as torch.nn.Module's; used by mp.summary) ---------------------------
    def _add_hook(self, kind, hook, prepend=False, with_kwargs=False):
        if not callable(hook):
            raise TypeError(f"register_forward_{'pre_' if kind == 'pre' else ''}hook: hook must be "
                            f"callable, got {type(hook).__name__}")
        hooks = self.__dict__.get("_forward_hooks")
        if hooks is None:
            hooks = {"pre": OrderedDict(), "post": OrderedDict(), "with_kwargs": set()}
            object.__setattr__(self, "_forward_hooks", hooks)
        handle = RemovableHandle(hooks[kind], hook)
        if prepend:  # called before the hooks registered earlier, as PyTorch's prepend=True
            hooks[kind].move_to_end(handle.id, last=False)
        if with_kwargs:
            hooks["with_kwargs"].add(handle.id)
        return handle

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each forward (``hook(module, args, kwargs,
        output)`` with ``with_kwargs=True``); a non-None return replaces the output.
        ``prepend=True`` runs it before the hooks registered earlier.  Returns a handle:
        ``handle.remove()`` unregisters it.

        >>> import minipool as mp
        >>> relu = mp.nn.ReLU()
        >>> seen = []
        >>> handle = relu.register_forward_hook(lambda m, args, out: seen.append(out.shape))
        >>> _ = relu(mp.zeros(2, 3)); handle.remove(); _ = relu(mp.zeros(4))
        >>> seen
        [(2, 3)]
        """
        return self._add_hook("post", hook, prepend, with_kwargs)

    def register_forward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before each forward; a non-None return replaces
        the positional arguments (a tuple, or a single value).  With ``with_kwargs=True``:
        ``hook(module, args, kwargs)``, returning None or ``(new_args, new_kwargs)``;
        ``prepend`` as in :meth:`register_forward_hook`."""
        return self._add_hook("pre", hook, prepend, with_kwargs)

    def _add_backward_hook(self, kind, hook, what):
        if not callable(hook):
            raise TypeError(f"{what}: hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__.get("_backward_hooks")
        if hooks is None:
            hooks = {"pre": OrderedDict(), "post": OrderedDict()}
            object.__setattr__(self, "_backward_hooks", hooks)
        return RemovableHandle(hooks[kind], hook)

    def register_full_backward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` when the gradients for the module's
        inputs are computed, as PyTorch: tuples of Tensors (None for an input that needs no
        gradient); a returned tuple replaces ``grad_input``.  minipool supports modules with one
        Tensor output and at most one Tensor input that requires grad (any layer; a loss with
        its target); others raise, naming ``Tensor.register_hook`` as the way.

        >>> import minipool as mp
        >>> lin = mp.nn.Linear(2, 1)
        >>> seen = []
        >>> h = lin.register_full_backward_hook(lambda m, gi, go: seen.append((gi[0].shape, go[0].shape)))
        >>> lin(mp.ones(3, 2, requires_grad=True)).sum().backward()
        >>> seen
        [((3, 2), (3, 1))]
        """
        return self._add_backward_hook("post", hook, "register_full_backward_hook")

    def register_full_backward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Call ``hook(module, grad_output)`` when the gradient of the module's output is
        computed, before it flows into the module; a returned tuple replaces ``grad_output``
        (same support as :meth:`register_full_backward_hook`)."""
        return self._add_backward_hook("pre", hook, "register_full_backward_pre_hook")

    def register_backward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """PyTorch's deprecated non-full backward hook (its grad_input is that of the module's last
        op): not in minipool; raises, naming ``register_full_backward_hook``."""
        raise NotImplementedError("register_backward_hook: PyTorch deprecated it (its grad_input is "
                                  "the last op's, not the module's); use "
                                  "module.register_full_backward_hook(hook) as PyTorch advises")

    # -- traversal -----------------------------------------------------------
    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        """(name, module) of the direct children, each module once."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator["Module"]:
        for _, child in self.named_children():
            yield child

    def named_modules(self, memo: Optional[set] = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, "Module"]]:
        """(dotted name, module) of self and every descendant, depth first; a module
        reachable twice is listed once unless ``remove_duplicate=False``."""
        if isinstance(memo, str):  # the old call named_modules(prefix)
            memo, prefix = None, memo
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                               remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse
                else [(prefix, self)])
        for mod_name, mod in mods:
            for name, t in getattr(mod, registry).items():
                if t is not None and not (remove_duplicate and id(t) in seen):
                    seen.add(id(t))
                    yield (f"{mod_name}.{name}" if mod_name else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[Tuple[str, "Parameter"]]:
        """(dotted name, parameter) of self and (``recurse``) every descendant; a shared
        parameter is listed once unless ``remove_duplicate=False``."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator["Parameter"]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn(module)`` on every child (depth first), then on self; returns self.

        >>> import minipool as mp
        >>> net = mp.nn.Sequential(mp.nn.Linear(2, 2), mp.nn.ReLU())
        >>> names = []
        >>> _ = net.apply(lambda m: names.append(type(m).__name__))
        >>> names
        ['Linear', 'ReLU', 'Sequential']
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Switch gradient recording of every parameter on or off; returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # -- dtype and device ----------------------------------------------------------
    def to(self, *args, **kwargs) -> "Module":
        """Convert the floating-point parameters and buffers in place to a dtype
        (``to(mp.float64)``, ``to(tensor)``); ``to("cpu")`` is accepted and changes
        nothing (minipool runs on the CPU only; any other device is an error), and so is
        ``memory_format=mp.channels_last`` (PyTorch's speed hint; the weights keep their
        memory order, results are the same).
        Parameters stay the same objects, so an optimiser built before keeps working."""
        from minipool import _memory_format
        from minipool.tensor import _parse_to_args

        memory_format = kwargs.pop("memory_format", None)
        if memory_format is not None:  # changes memory order only, never a value: see below
            _memory_format.check(memory_format, "Module.to")
        dtype = _parse_to_args("Module.to", args, kwargs)
        if dtype is not None:
            if dtype.kind != "f":
                raise TypeError(f"Module.to: dtype must be a floating-point dtype "
                                f"(float32 or float64), got {dtype}")
            self._cast_floats(dtype)
        return self

    def _cast_floats(self, dtype):
        for t in list(self.parameters()) + list(self.buffers()):
            if t.dtype.kind == "f" and t.dtype != dtype:
                t._data = t._data.astype(dtype)
                if t.grad is not None:
                    t.grad = Tensor(t.grad._data.astype(dtype))

    def double(self) -> "Module":
        """Floating-point parameters and buffers to float64; returns self."""
        self._cast_floats(np.dtype(np.float64))
        return self

    def float(self) -> "Module":
        """Floating-point parameters and buffers to float32; returns self."""
        self._cast_floats(np.dtype(np.float32))
        return self

    def half(self) -> "Module":
        """Refused: minipool's ops compute in float32 or float64 only (its kernels and
        most ops reject float16 input), so a float16 model could not run."""
        raise TypeError("Module.half: float16 is not supported: minipool's ops and kernels "
                        "compute in float32 or float64 only (conv2d, pooling and the norms refuse "
                        "float16 input); keep the model in float32 (.float()) or use .double()")

    def cpu(self) -> "Module":
        return self

    def cuda(self, device: Any = None) -> "Module":
        raise RuntimeError("minipool runs on the CPU only (NumPy arrays): there is no CUDA "
                           "device; leave the module where it is (or call .cpu())")

    # -- modes and gradients ---------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        if not isinstance(mode, (bool, np.bool_)):  # train("eval") would have meant training
            raise ValueError(f"train: mode is expected to be a bool (as in PyTorch), got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the parameters' gradients: ``None`` (the default, as in PyTorch), or,
        with ``set_to_none=False``, zeros written into the existing gradient tensors."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = p.grad.detach()
                p.grad._data[...] = 0

    # -- persistence -------------------------------------------------------------
    def state_dict(self, *, destination: Optional[dict] = None, prefix: str = "",
                   keep_vars: bool = False) -> "OrderedDict[str, Tensor]":
        """Name -> tensor for every parameter and persistent buffer, in PyTorch's order and
        with its key names (a module reachable under two names appears under both).

        As in PyTorch the tensors are detached views of the live weights (they change when
        the model trains: ``{k: v.clone() ...}`` or ``copy.deepcopy`` keeps a snapshot);
        ``keep_vars=True`` gives the Parameters themselves.

        >>> import minipool as mp
        >>> lin = mp.nn.Linear(2, 1)
        >>> sd = lin.state_dict()
        >>> list(sd), sd["weight"].requires_grad, sd["weight"].numpy() is lin.weight.numpy()
        (['weight', 'bias'], False, True)
        """
        out = OrderedDict() if destination is None else destination
        for name, t in self._state_items(prefix):
            out[name] = t if keep_vars else t.detach()
        return out

    def _state_items(self, prefix=""):
        for name, p in self._parameters.items():
            if p is not None:
                yield prefix + name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                yield prefix + name, b
        for name, child in self._modules.items():
            if child is not None:
                yield from child._state_items(f"{prefix}{name}.")

    # buffers an older checkpoint may lack: loading keeps their current value (PyTorch's
    # BatchNorm num_batches_tracked, added after its first release)
    _optional_state: Tuple[str, ...] = ()

    def _optional_keys(self, prefix=""):
        for name in self._optional_state:
            yield prefix + name
        for name, child in self._modules.items():
            if child is not None:
                yield from child._optional_keys(f"{prefix}{name}.")

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> IncompatibleKeys:
        """Copy arrays (or Tensors) into the parameters and buffers, in place (views from
        ``state_dict()`` see the new values, as in PyTorch).  ``assign=True``: each parameter
        and buffer takes the state's array itself (its memory and dtype, no copy; gradients
        dropped), keeping its own ``requires_grad``, as PyTorch's ``assign``.

        Nothing is changed unless every key and shape fits (when ``strict``);
        the error lists the missing, unexpected and mismatched entries.  Returns
        ``(missing_keys, unexpected_keys)`` as PyTorch does (empty when ``strict``).
        """
        own = OrderedDict(self._state_items())
        incoming = {k: np.asarray(v._data if isinstance(v, Tensor) else v) for k, v in state.items()}
        optional = set(self._optional_keys())
        missing = [k for k in own if k not in incoming and k not in optional]
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
        if assign:
            problems += [f"{k}: a {incoming[k].dtype} array cannot be a parameter that requires "
                         f"grad" for k, t in own.items()
                         if k in incoming and t.requires_grad and incoming[k].dtype.kind != "f"]
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed: " + " | ".join(problems))
        for k, t in own.items():
            if k in incoming:
                if assign:
                    t._data, t._grad = incoming[k], None
                else:
                    _copy_into(t, incoming[k])
        return IncompatibleKeys(missing, unexpected)

    # -- display -------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            for name, child in self._modules.items():
                child_repr = repr(child).replace("\n", "\n  ")
                lines.append(f"  ({name}): {child_repr}")
            return "\n".join(lines) + "\n)"
        return lines[0] + ")"


class _BackwardHookPoint(Function):
    """An identity op on a module's output or input whose backward runs the module's full
    backward (pre-)hooks on the gradient flowing through it (a copy, so the caller's tensor
    and the module's view of it keep separate version counters)."""

    @staticmethod
    def forward(ctx, x, on_grad):
        ctx.on_grad = on_grad
        return np.array(x, copy=True)

    @staticmethod
    def backward(ctx, grad):
        return ctx.on_grad(grad), None


def _hook_grads(module, hooks, grads, grad_output=None):
    """Run ``hooks``: ``hook(module, grads)`` (pre-hooks, on grad_output) or
    ``hook(module, grads, grad_output)`` (hooks, on grad_input); a non-None return replaces
    ``grads`` (a tuple of as many Tensors or None), as PyTorch checks."""
    for hook in tuple(hooks.values()):
        result = hook(module, grads) if grad_output is None else hook(module, grads, grad_output)
        if result is None:
            continue
        result = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        if len(result) != len(grads):
            raise RuntimeError(f"backward hook {getattr(hook, '__name__', hook)!r} returned "
                               f"{len(result)} gradients, expected {len(grads)}")
        grads = result
    return grads


def _raw_grad(value, like):
    if value is None:
        return np.zeros_like(like)
    value = value._data if isinstance(value, Tensor) else np.asarray(value)
    if value.shape != like.shape:
        raise RuntimeError(f"backward hook returned a gradient of shape {value.shape} for one of "
                           f"shape {like.shape}")
    return value.astype(like.dtype, copy=False)


def _call_with_backward_hooks(module, args, kwargs):
    """``module(*args, **kwargs)`` with its forward hooks, and its full backward (pre-)hooks
    wired in through identity points on the output and on the input that requires grad."""
    from minipool.tensor import is_grad_enabled

    hooks = module._backward_hooks
    name = type(module).__name__
    tensor_slots = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    wanting = [i for i in tensor_slots if args[i].requires_grad]
    if len(wanting) > 1 or any(isinstance(v, Tensor) and v.requires_grad for v in kwargs.values()):
        raise NotImplementedError(
            f"{name}: minipool's full backward hooks support modules with at most one positional "
            "Tensor input that requires grad; register Tensor.register_hook on each input "
            "(e.g. in a forward pre-hook) to see their gradients")
    record = {}
    if wanting and is_grad_enabled():
        slot = wanting[0]

        def on_input_grad(grad):
            grad_input = tuple(Tensor(grad) if i == slot else None for i in tensor_slots)
            grad_input = _hook_grads(module, hooks["post"], grad_input, record["grad_output"])
            return _raw_grad(grad_input[tensor_slots.index(slot)], grad)

        args = list(args)
        args[slot] = _BackwardHookPoint.apply(args[slot], on_input_grad)
        args = tuple(args)
    result = module._forward_with_hooks(args, kwargs)
    if not isinstance(result, Tensor):
        raise NotImplementedError(
            f"{name}: minipool's full backward hooks support modules with one Tensor output, this "
            f"one returned {type(result).__name__}; register Tensor.register_hook on its outputs")
    if not result.requires_grad:
        return result

    def on_output_grad(grad):
        grad_output = _hook_grads(module, hooks["pre"], (Tensor(grad),))
        record["grad_output"] = tuple(None if g is None else Tensor(_raw_grad(g, grad))
                                      for g in grad_output)
        if not wanting and hooks["post"]:
            # no input gradient will come: PyTorch calls the hooks now, with None, and warns
            warnings.warn("Full backward hook is firing when gradients are computed with "
                          "respect to module outputs since no inputs require gradients",
                          UserWarning, stacklevel=2)
            _hook_grads(module, hooks["post"], tuple(None for _ in tensor_slots), record["grad_output"])
        return _raw_grad(grad_output[0], grad)

    return _BackwardHookPoint.apply(result, on_output_grad)


def _layout_of(module):
    """The layout a layer reads a 4-d input in ("channels_first"/"channels_last"), or None
    when it works on any (activations, dropout, ...)."""
    d = module.__dict__
    if "data_format" in d:
        return "channels_last" if parse_data_format(type(module).__name__, d["data_format"]) \
            else "channels_first"
    if type(module).__name__ == "BatchNormalization" and d.get("axis") in (-1, 3, 1):
        return "channels_first" if d["axis"] == 1 else "channels_last"
    return None


def _layout_error(name, module, wants, source, layout):
    source_name, source_module = source
    kind = type(module).__name__
    return (f"Sequential: layer {name} ({kind}) reads {wants} input, but layer {source_name} "
            f"({type(source_module).__name__}) gives {layout}: give {kind} "
            f"data_format={layout!r} (or axis= for BatchNormalization). PyTorch-named layers "
            "(Conv2d, MaxPool2d, BatchNorm2d, ...) are channels_first, Keras-named ones (Conv2D, "
            "MaxPooling2D/MaxPool2D, BatchNormalization, ...) channels_last by default")


def position(idx: Any, n: int, what: str) -> int:
    """``idx`` (an int, negative from the end) as a position in a container of ``n``, with
    PyTorch's errors: TypeError for a non-integer, IndexError out of range."""
    try:
        idx = operator.index(idx)
    except TypeError:
        raise TypeError(f"{what} indices must be integers or slices, "
                        f"not {type(idx).__name__}") from None
    if not -n <= idx < n:
        raise IndexError(f"{what} index {idx} is out of range for length {n}")
    return idx % n


def delete_at(container: Module, idx: Any, what: str) -> None:
    """Remove the module(s) at ``idx`` (an int or a slice) and renumber the rest, as
    ``del`` on PyTorch's Sequential and ModuleList."""
    modules = list(container._modules.values())
    if isinstance(idx, slice):
        del modules[idx]
    else:
        del modules[position(idx, len(modules), what)]
    renumber(container, modules)


def renumber(container: Module, modules: Any) -> None:
    """Register ``modules`` in ``container`` as "0", "1", ... in order, as PyTorch renames a
    Sequential's or ModuleList's entries after an insert or a delete."""
    for name in list(container._modules):
        delattr(container, name)
    for i, m in enumerate(modules):
        setattr(container, str(i), m)


class Sequential(Module):
    """Apply modules in order.

    >>> import minipool as mp
    >>> net = mp.nn.Sequential(mp.nn.ReLU(), mp.nn.Flatten())
    >>> net(mp.tensor([[[-1.0, 2.0]]])).shape
    (1, 2)
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            modules = modules[0].items()
        else:
            modules = ((str(i), m) for i, m in enumerate(modules))
        for name, m in modules:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: entry {name} is a {type(m).__name__}, not a Module")
            setattr(self, name, m)

    def _key(self, idx):
        """The name of the module at position ``idx`` (an int, negative from the end)."""
        return list(self._modules)[position(idx, len(self), "Sequential")]

    def __getitem__(self, idx):
        if isinstance(idx, slice):  # a Sequential of those modules, their names kept
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[self._key(idx)]

    def __setitem__(self, idx, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.__setitem__: expected a Module, got {type(module).__name__}")
        setattr(self, self._key(idx), module)

    def __delitem__(self, idx):
        delete_at(self, idx, "Sequential")

    def pop(self, idx: Any) -> Any:
        """Remove and return the module (or Sequential, for a slice) at ``idx``."""
        module = self[idx]
        del self[idx]
        return module

    def __add__(self, other: "Sequential") -> "Sequential":
        if not isinstance(other, Sequential):
            return NotImplemented
        return Sequential(*self, *other)

    def __iadd__(self, other: "Sequential") -> "Sequential":
        if not isinstance(other, Sequential):
            return NotImplemented
        return self.extend(list(other))

    def __mul__(self, times: int) -> "Sequential":
        if isinstance(times, bool) or not isinstance(times, int) or times <= 0:
            raise ValueError(f"Sequential * n: n must be a positive int, got {times!r} "
                             f"(as in PyTorch; the same modules repeat, sharing their parameters)")
        return Sequential(*(list(self) * times))

    __rmul__ = __mul__

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        """Add ``module`` at the end (named by its position); returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: module must be a Module, got {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def add(self, layer: Module) -> None:
        """Keras's ``model.add(layer)``: :meth:`append` (a Keras layer builds on its first call)."""
        self.append(layer)

    def extend(self, modules: Any) -> "Sequential":
        """Append every module of an iterable (another Sequential too); returns self."""
        try:
            modules = list(modules)
        except TypeError:
            raise TypeError(f"Sequential.extend: expected an iterable of Modules, "
                            f"got {type(modules).__name__}") from None
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential.extend: entry {i} is a {type(m).__name__}, not a Module")
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> "Sequential":
        """Insert ``module`` before position ``index`` (-len <= index <= len); the modules
        are renamed "0", "1", ... in their new order, as PyTorch does; returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.insert: module must be a Module, got {type(module).__name__}")
        n = len(self)
        if isinstance(index, bool) or not isinstance(index, int) or not -n <= index <= n:
            raise IndexError(f"Sequential.insert: index must be an int in [{-n}, {n}], got {index!r}")
        modules = list(self._modules.values())
        modules.insert(index, module)
        renumber(self, modules)
        return self

    def forward(self, x: Tensor) -> Any:
        # The memory layout of a 4-d activation, followed from layer to layer, so that a
        # PyTorch-named layer (Conv2d, MaxPool2d, BatchNorm2d: channels_first) after a
        # Keras-named one (Conv2D, MaxPooling2D, BatchNormalization: channels_last), or the
        # reverse, is an error rather than pooling or normalising the wrong axes.
        layout = source = None
        for name, m in self._modules.items():
            wants = _layout_of(m) if type(x) is Tensor and x.ndim == 4 else None
            if wants is not None and layout is not None and wants != layout:
                raise ValueError(_layout_error(name, m, wants, source, layout))
            shape = x.shape if type(x) is Tensor else None
            x = m(x)
            if wants is not None:
                layout, source = wants, (name, m)
            elif layout is not None and not (type(x) is Tensor and x.shape == shape
                                             and type(m).__module__.startswith("minipool.")):
                layout = None  # a shape change by a layer that names no layout: unknown now
        return x
