"""The backward pass: one walk over the graph in reverse topological order."""
import sys
import weakref
from typing import Any, Callable

import numpy as np

from minipool import _memory
from minipool.ops.elementwise import add_in_place
from minipool.tensor import Function, Tensor, check_saved_versions, no_grad

__all__ = ["run_backward", "grad", "Function", "gradcheck", "register_hook", "retain_grad", "RemovableHandle",
           "set_detect_anomaly", "detect_anomaly", "is_anomaly_enabled", "is_anomaly_check_nan_enabled"]


def _topological_order(root):
    """The recorded ops (Function nodes) reachable from ``root`` (a node: a Function,
    or a leaf Tensor), inputs before outputs, and the leaves requiring grad met on
    the way (they need no place in the order: each only collects its gradient).

    Iterative depth-first search, so a chain of any length is fine.
    """
    order, leaves, visited = [], [], set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None:  # marker: the node below it has all its inputs placed
            order.append(stack.pop())
            continue
        key = id(node)
        if key in visited:
            continue
        visited.add(key)
        if not isinstance(node, Function):
            leaves.append(node)
            continue
        if node._freed:
            raise RuntimeError(
                f"trying to backward through the graph a second time (through {node.name()}): "
                "its saved values were freed by the first backward(); "
                "call backward(retain_graph=True) the first time if you need to")
        stack.append(node)
        stack.append(None)
        for parent in node._inputs:
            if parent is not None and id(parent) not in visited:
                stack.append(parent)
    return order, leaves


def _initial_grad(root, grad):
    if grad is None:
        if root._data.size != 1:
            raise RuntimeError(
                f"backward() needs a grad argument for a non-scalar output (shape {root.shape}); "
                "pass grad=ones of that shape, or reduce it first, e.g. y.sum().backward()")
        return np.ones_like(root._data)
    g = grad._data if isinstance(grad, Tensor) else np.asarray(grad)
    if g.shape != root.shape:
        raise ValueError(f"backward(): grad has shape {g.shape} but the output has shape {root.shape}")
    return g.astype(root.dtype, copy=False)


def _accumulate(grads, node, g, source):
    """Add ``g`` into the gradient collected for ``node`` (a node used twice gets both)."""
    if g is None:
        return
    if type(g) is not np.ndarray:
        g = np.asarray(g)
    shape = node._shape
    if shape is None:  # a leaf Tensor
        shape = node._data.shape
    if g.shape != shape:
        raise RuntimeError(f"internal error: {source.op_name()}.backward gave a gradient of shape "
                           f"{g.shape} for an input of shape {shape}")
    key = id(node)
    previous = grads.get(key)
    grads[key] = g if previous is None else previous + g


def _local_refcount():
    """References an array has when only one local variable holds it (CPython), else None."""
    if not hasattr(sys, "getrefcount"):
        return None
    probe = np.empty(1)
    return sys.getrefcount(probe)


_SOLE_OWNER_REFS = _local_refcount()


def _store_leaf_grad(leaf, g):
    """Add the collected gradient into ``leaf.grad``: a new array, or ``g`` itself when
    nothing else can see it (it owns its memory and no one else refers to it -- the
    case for the fresh arrays ops return -- so adopting it saves a copy per parameter)."""
    g = g.astype(leaf._data.dtype, copy=False)
    if leaf.grad is not None:
        add_into_grad(leaf, g)
        return
    if _SOLE_OWNER_REFS is not None and g.base is None and g.flags.writeable \
            and sys.getrefcount(g) <= _SOLE_OWNER_REFS:
        total = g
    else:
        total = g.copy()
    leaf.grad = Tensor._from_result(total, False)


def add_into_grad(t, g):
    """``t.grad += g``: in place, as PyTorch accumulates, so a reference to ``t.grad`` (a
    ``g = p.grad`` kept across steps, a zeroed ``p.grad.zero_()``) sees the new values.
    Large float gradients are added on minipool's threads (``add_in_place``)."""
    old = t.grad._data
    if old.shape == g.shape and old.flags.writeable and np.can_cast(g.dtype, old.dtype, "same_kind"):
        if not add_in_place(old, g):
            np.add(old, g, out=old, casting="same_kind")
    else:
        t.grad = Tensor._from_result(old + g, False)


def run_backward(root, grad=None, retain_graph=False, capture=None):
    """Backpropagate from ``root`` into the leaves' ``.grad``.  With ``capture`` (a set of node
    ids: Functions or leaf Tensors) return {id: gradient} for those nodes instead, and leave
    every ``.grad`` untouched (what ``autograd.grad`` needs)."""
    if not root.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn "
                           "(did you forget requires_grad=True, or compute it under no_grad?)")
    start = root if root._ctx is None else root._ctx
    order, leaves = _topological_order(start)
    grads = {id(start): _initial_grad(root, grad)}
    captured = {}
    check_nan = _anomaly.enabled and _anomaly.check_nan
    users_errors = np.geterr()
    # Gradients at a domain's edge (1/x at 0, 1/sqrt(1 - x*x) at 1, inf - inf) are inf or NaN
    # silently, as PyTorch's: NumPy's warnings stay off here, on for the user's hooks.
    with no_grad(), _memory.scope(), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for ctx in reversed(order):
            g = grads.pop(id(ctx), None)
            if g is None:
                continue
            extra = ctx.__dict__  # hooks and retain_grad() of the tensor ctx produced, if any
            if "_hooks" in extra or "_retained" in extra:
                with np.errstate(**users_errors):
                    g = _tensor_hooks(ctx, g, capture is None)
            if capture is not None and id(ctx) in capture:
                captured[id(ctx)] = g
            for box, value, _ in ctx._checks:
                if box.value != value:
                    check_saved_versions(ctx)
            input_grads = ctx.backward(ctx, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if check_nan:
                _check_nan(ctx, input_grads)
            inputs = ctx._inputs
            if len(input_grads) < len(inputs):
                raise RuntimeError(f"{ctx.op_name()}.backward returned {len(input_grads)} gradients "
                                   f"for {len(inputs)} inputs")
            for parent, pg in zip(inputs, input_grads):
                if pg is not None and parent is not None:
                    _accumulate(grads, parent, pg, ctx)
            input_grads = pg = None  # grads now holds the only references (see _store_leaf_grad)
            if not retain_graph:
                ctx._release()
        for leaf in leaves:
            key = id(leaf)
            if key in grads:
                if "_hooks" in leaf.__dict__:
                    grads[key] = _tensor_hooks(leaf, grads[key], False)
                if capture is None:  # no local name holds the array (see _store_leaf_grad)
                    _store_leaf_grad(leaf, grads.pop(key))
                elif key in capture:
                    captured[key] = grads.pop(key)
    return captured if capture is not None else None


# --------------------------------------------------------------------------- anomaly mode
class _AnomalyMode:
    """Process-wide, as PyTorch's: whether backward checks every op's gradients for NaN."""

    enabled = False
    check_nan = True


_anomaly = _AnomalyMode()


def _check_nan(ctx, input_grads):
    for i, g in enumerate(input_grads):
        if g is not None and np.asarray(g).dtype.kind == "f" and np.isnan(g).any():
            raise RuntimeError(f"Function '{ctx.name()}' returned nan values in its {i}th output "
                               f"(its gradient for input {i}; found by anomaly detection)")


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on (see :class:`detect_anomaly`).

    >>> import minipool as mp
    >>> mp.autograd.is_anomaly_enabled()
    False
    """
    return _anomaly.enabled


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly detection checks the gradients for NaN (its only check here).

    >>> import minipool as mp
    >>> mp.autograd.is_anomaly_check_nan_enabled()
    True
    """
    return _anomaly.check_nan


class set_detect_anomaly:
    """Turn anomaly detection on or off, as a call (from now on) or as a context manager (restored
    at its end), as PyTorch's.  When on (with ``check_nan``), backward raises a RuntimeError naming
    the op whose backward first produced a NaN gradient.  Unlike PyTorch it keeps no forward
    stack traces: the op's name is the clue.

    >>> import minipool as mp
    >>> x = mp.tensor([0.0], requires_grad=True)
    >>> with mp.autograd.set_detect_anomaly(True):
    ...     try:
    ...         (x.sqrt() * 0).sum().backward()  # 0 * (d sqrt at 0 = inf) is NaN
    ...     except RuntimeError as e:
    ...         print(str(e).split(" (")[0])
    Function 'SqrtBackward0' returned nan values in its 0th output
    """

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"set_detect_anomaly: mode must be a bool, got {type(mode).__name__}")
        self._previous = (_anomaly.enabled, _anomaly.check_nan)
        _anomaly.enabled, _anomaly.check_nan = bool(mode), bool(check_nan)

    def __enter__(self) -> "set_detect_anomaly":
        return self

    def __exit__(self, *exc: object) -> bool:
        _anomaly.enabled, _anomaly.check_nan = self._previous
        return False


class detect_anomaly:
    """Anomaly detection on inside this block (or decorated function): see
    :class:`set_detect_anomaly`.

    >>> import minipool as mp
    >>> with mp.autograd.detect_anomaly():
    ...     mp.autograd.is_anomaly_enabled()
    True
    """

    def __init__(self, check_nan: bool = True) -> None:
        self._check_nan = bool(check_nan)

    def __enter__(self) -> "detect_anomaly":
        self._previous = (_anomaly.enabled, _anomaly.check_nan)
        _anomaly.enabled, _anomaly.check_nan = True, self._check_nan
        return self

    def __exit__(self, *exc: object) -> bool:
        _anomaly.enabled, _anomaly.check_nan = self._previous
        return False

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self._check_nan):
                return func(*args, **kwargs)

        return wrapper


# --------------------------------------------------------------------------- hooks
class RemovableHandle:
    """What ``register_hook`` returns: ``handle.remove()`` takes the hook off again."""

    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def register_hook(tensor, hook):
    """Call ``hook(grad)`` with the gradient of ``tensor`` each time one is computed, before it
    is used; a hook that returns a Tensor (or array) replaces the gradient, as in PyTorch."""
    if not callable(hook):
        raise TypeError(f"register_hook: hook must be callable, got {type(hook).__name__}")
    if not tensor.requires_grad:
        raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't "
                           "require gradient")
    node = tensor if tensor._ctx is None else tensor._ctx
    hooks = node.__dict__.setdefault("_hooks", [])
    hooks.append(hook)
    return RemovableHandle(hooks, hook)


def retain_grad(tensor):
    """Keep the gradient of a non-leaf ``tensor`` in its ``.grad`` after backward (a leaf
    keeps it anyway), as PyTorch's ``retain_grad``."""
    if not tensor.requires_grad:
        raise RuntimeError("retain_grad: can't retain_grad on a tensor that doesn't require gradient")
    if tensor._ctx is not None:
        tensor._ctx.__dict__["_retained"] = weakref.ref(tensor)


def _tensor_hooks(node, g, retain):
    for hook in list(node.__dict__.get("_hooks", ())):
        result = hook(Tensor(g))
        if result is not None:
            result = result._data if isinstance(result, Tensor) else np.asarray(result)
            if result.shape != g.shape:
                raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} returned a gradient "
                                   f"of shape {result.shape}; the tensor's gradient has shape "
                                   f"{g.shape}")
            g = result.astype(g.dtype, copy=False)
    ref = node.__dict__.get("_retained")
    tensor = ref() if (retain and ref is not None) else None
    if tensor is not None:
        # a non-leaf's retained gradient is replaced, not added into (PyTorch's rule too)
        total = g.copy() if tensor.grad is None else tensor.grad._data + g
        tensor.grad = Tensor._from_result(total, False)
    return g


# --------------------------------------------------------------------------- autograd.grad
def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """The gradients of ``outputs`` with respect to ``inputs`` (leaf or intermediate tensors),
    as a tuple, without touching any ``.grad``: PyTorch's ``torch.autograd.grad``.

    >>> import minipool as mp
    >>> x = mp.tensor([1.0, 2.0], requires_grad=True)
    >>> y = x * x
    >>> mp.autograd.grad(y.sum(), (x, y))[0].tolist()
    [2.0, 4.0]
    """
    if create_graph:
        raise NotImplementedError("autograd.grad: create_graph=True (gradients of gradients) is not "
                                  "supported: minipool's backward is first-order; check second "
                                  "derivatives with finite differences of the first (mp.gradcheck)")
    if is_grads_batched:
        raise NotImplementedError("autograd.grad: is_grads_batched is not supported; loop over the "
                                  "grad_outputs")
    if allow_unused is None:
        allow_unused = materialize_grads
    elif materialize_grads and not allow_unused:
        raise ValueError("autograd.grad: materialize_grads=True needs allow_unused True or None")
    outputs = _as_tuple(outputs, "outputs")
    inputs = _as_tuple(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    else:
        grad_outputs = _as_tuple(grad_outputs, "grad_outputs", allow_none=True)
        if len(grad_outputs) != len(outputs):
            raise ValueError(f"autograd.grad: grad_outputs has {len(grad_outputs)} entries for "
                             f"{len(outputs)} outputs")
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("autograd.grad: one of the differentiated Tensors does not require grad")
    nodes = [t if t._ctx is None else t._ctx for t in inputs]
    wanted = {id(n) for n in nodes}
    totals = {}
    for k, (out, g_out) in enumerate(zip(outputs, grad_outputs)):
        last = k == len(outputs) - 1
        keep = True if not last else bool(retain_graph)
        for key, g in run_backward(out, g_out, keep, capture=wanted).items():
            totals[key] = g if key not in totals else totals[key] + g
    result = []
    for t, node in zip(inputs, nodes):
        g = totals.get(id(node))
        if g is None:
            if not allow_unused:
                raise RuntimeError("autograd.grad: one of the differentiated Tensors appears to not "
                                   "have been used in the graph; set allow_unused=True if this is "
                                   "what you want")
            result.append(Tensor(np.zeros_like(t._data)) if materialize_grads else None)
        else:
            result.append(Tensor._from_result(np.array(g, dtype=t.dtype), False))
    return tuple(result)


def _as_tuple(value, name, allow_none=False):
    items = (value,) if isinstance(value, Tensor) or value is None else tuple(value)
    for v in items:
        if not isinstance(v, Tensor) and not (allow_none and v is None):
            raise TypeError(f"autograd.grad: {name} must be Tensors, got {type(v).__name__}")
    return items


from minipool.testing import gradcheck  # noqa: E402  (torch.autograd.gradcheck's place)
