"""The backward pass: one walk over the graph in reverse topological order."""
import sys

import numpy as np

from minipool import _memory
from minipool.tensor import Function, Tensor, check_saved_versions, no_grad

__all__ = ["run_backward", "grad"]


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
                f"trying to backward through the graph a second time (through {node.name}): "
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
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() needs a grad argument for a non-scalar output (shape {root.shape}); "
                "pass grad=ones of that shape, or reduce it first, e.g. y.sum().backward()")
        return np.ones_like(root.data)
    g = grad.data if isinstance(grad, Tensor) else np.asarray(grad)
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
        shape = node.data.shape
    if g.shape != shape:
        raise RuntimeError(f"internal error: {source.name}.backward gave a gradient of shape "
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
    g = g.astype(leaf.data.dtype, copy=False)
    if leaf.grad is not None:
        total = leaf.grad.data + g
    elif _SOLE_OWNER_REFS is not None and g.base is None and g.flags.writeable \
            and sys.getrefcount(g) <= _SOLE_OWNER_REFS:
        total = g
    else:
        total = g.copy()
    leaf.grad = Tensor._from_result(total, False)


def run_backward(root, grad=None, retain_graph=False):
    if not root.requires_grad:
        raise RuntimeError("backward(): this tensor does not require grad and has no grad_fn "
                           "(did you forget requires_grad=True, or compute it under no_grad?)")
    start = root if root._ctx is None else root._ctx
    order, leaves = _topological_order(start)
    grads = {id(start): _initial_grad(root, grad)}
    with no_grad(), _memory.scope():  # gradients come from minipool's memory cache
        for ctx in reversed(order):
            g = grads.pop(id(ctx), None)
            if g is None:
                continue
            for box, value, _ in ctx._checks:
                if box.value != value:
                    check_saved_versions(ctx)
            input_grads = ctx.backward(ctx, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            inputs = ctx._inputs
            if len(input_grads) < len(inputs):
                raise RuntimeError(f"{ctx.name}.backward returned {len(input_grads)} gradients "
                                   f"for {len(inputs)} inputs")
            for parent, pg in zip(inputs, input_grads):
                if pg is not None and parent is not None:
                    _accumulate(grads, parent, pg, ctx)
            input_grads = pg = None  # grads now holds the only references (see _store_leaf_grad)
            if not retain_graph:
                ctx._release()
        for leaf in leaves:
            if id(leaf) in grads:
                _store_leaf_grad(leaf, grads.pop(id(leaf)))


def grad(output, inputs, grad_output=None, retain_graph=False):
    """Return d(output)/d(input) for each input without touching their ``.grad``."""
    saved = [t.grad for t in inputs]
    for t in inputs:
        t.grad = None
    try:
        run_backward(output, grad_output, retain_graph)
        return [t.grad if t.grad is not None else Tensor(np.zeros_like(t.data)) for t in inputs]
    finally:
        for t, s in zip(inputs, saved):
            t.grad = s
