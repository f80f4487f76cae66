"""The ONNX graph under construction: value names, nodes, initializers.

A traced Tensor is *live* when it depends on the model's input (it was
produced by a converted node); every other Tensor (parameters, buffers, values
folded from them) becomes an initializer the first time a node reads it.
Each live value also knows its batch axis (0 or None), so shapes written into
the graph (Reshape, Expand) leave the batch free when ``dynamic_batch``.
"""
import numpy as np

from minipool.tensor import Tensor


class UnsupportedOpError(NotImplementedError):
    """An op met while tracing has no ONNX form (the message names the op and the layer)."""


# onnx.TensorProto's element types (numbers, so this module imports without onnx)
ONNX_DTYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int32): 6,
               np.dtype(np.int64): 7, np.dtype(np.bool_): 9, np.dtype(np.float64): 11}


class Graph:
    def __init__(self, opset: int, dtype):
        self.opset = opset
        self.dtype = np.dtype(dtype)  # the model's float type, for Python-number constants
        self.nodes, self.initializers = [], []
        self._names = {}       # id(Tensor) -> value name (live tensors)
        self._constants = {}   # id(Tensor or array) -> initializer name
        self._keep = []        # keep traced objects alive so their ids stay unique
        self.batch = {}        # live value name -> batch axis (0) or None
        self.pool_indices = {}  # id(indices Tensor) -> ONNX MaxPool's own (global) indices
        self._count = 0
        self.event = None      # the event being converted (for error messages)
        self.layer_names = {}  # id(Module) -> its dotted name in the exported model

    # ------------------------------------------------------------------ names
    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def live(self, value) -> bool:
        return isinstance(value, Tensor) and id(value) in self._names

    def bind(self, tensor, name: str, batch=None):
        """``tensor`` (a traced output) is the value ``name``."""
        self._keep.append(tensor)
        self._names[id(tensor)] = name
        self.batch[name] = batch

    def batch_of(self, tensor):
        return self.batch.get(self._names.get(id(tensor))) if isinstance(tensor, Tensor) else None

    def value(self, value, dtype=None) -> str:
        """The name of ``value``: a live Tensor, or a constant (Tensor, array or number)."""
        if isinstance(value, Tensor):
            name = self._names.get(id(value))
            if name is not None:
                return name
            return self.const(value._data, key=value)
        if isinstance(value, np.ndarray):
            return self.const(value, key=value)
        return self.const(np.asarray(value, dtype=dtype or self.dtype))

    def const(self, array, hint: str = "const", key=None) -> str:
        if key is not None and id(key) in self._constants:
            return self._constants[id(key)]
        array = np.asarray(array)
        if array.dtype not in ONNX_DTYPES:
            raise UnsupportedOpError(f"a constant of dtype {array.dtype} has no ONNX form here")
        from onnx import numpy_helper
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        if key is not None:
            self._keep.append(key)
            self._constants[id(key)] = name
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(list(values), dtype=np.int64), "ints")

    def scalar(self, value, dtype=None) -> str:
        return self.const(np.asarray(value, dtype=dtype or self.dtype), "scalar")

    # ------------------------------------------------------------------ nodes
    def node(self, op_type: str, inputs, outputs: int = 1, **attrs):
        """Add a node; its output name (or names, if ``outputs`` > 1)."""
        from onnx import helper
        names = [self.fresh(op_type) for _ in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.fresh("n_" + op_type),
                                           **attrs))
        return names[0] if outputs == 1 else names

    # ------------------------------------------------------------------ helpers used by many ops
    def reduce(self, op_type: str, name: str, axes, keepdims: bool) -> str:
        """ReduceSum/Mean/Max/Min/LogSumExp over ``axes`` (an input since opset 13 for
        ReduceSum and 18 for the others, an attribute before)."""
        axes = [int(a) for a in axes]
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.node(op_type, [name, self.ints(axes)], keepdims=int(keepdims))
        return self.node(op_type, [name], axes=axes, keepdims=int(keepdims))

    def unsqueeze(self, name: str, axes) -> str:
        return self.node("Unsqueeze", [name, self.ints(axes)])

    def squeeze(self, name: str, axes) -> str:
        return self.node("Squeeze", [name, self.ints(axes)])

    def reshape(self, name: str, source, shape) -> str:
        """Reshape the value of Tensor ``source`` (named ``name``) to ``shape``; when its batch
        axis is 0 the batch entry is left free (0 = copy it, or -1 if it changes size)."""
        target = [int(s) for s in shape]
        if self.batch_of(source) == 0 and target:
            target[0] = 0 if target[0] == source.shape[0] else -1
        return self.node("Reshape", [name, self.ints(target)])

    def shape_prefix(self, name: str, stop: int) -> str:
        """The first ``stop`` entries of ``name``'s runtime shape (batch and channels)."""
        shape = self.node("Shape", [name])
        return self.node("Slice", [shape, self.ints([0]), self.ints([stop]), self.ints([0])])

    def fail(self, what: str):
        raise UnsupportedOpError(f"{what}{self.where()}")

    def where(self) -> str:
        event = self.event
        if event is None:
            return ""
        return f" (op {event.op_name}{self.layer_text(event.layer)})"

    def layer_text(self, layer) -> str:
        if layer is None:
            return ""
        name = self.layer_names.get(id(layer))
        kind = type(layer).__name__
        if name is None:
            return f", in a {kind} layer"
        return f", in layer '{name}' ({kind})" if name else f", in the {kind} model's own forward"


def channels_first_around(g: Graph, name: str, ndim: int, rank: int, channels_last: bool, body):
    """Run ``body(name) -> name`` on a batched channels-first view of ``name`` (a value of
    ``ndim`` dims with ``rank`` spatial axes): Unsqueeze an unbatched input, Transpose a
    channels-last one, then undo both on the result."""
    unbatched = ndim == rank + 1
    if unbatched:
        name = g.unsqueeze(name, [0])
    n = rank + 2
    if channels_last:
        name = g.node("Transpose", [name], perm=[0, n - 1] + list(range(1, n - 1)))
    out = body(name)
    if channels_last:
        out = g.node("Transpose", [out], perm=[0] + list(range(2, n)) + [1])
    if unbatched:
        out = g.squeeze(out, [0])
    return out
