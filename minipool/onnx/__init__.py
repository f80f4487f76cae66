"""Export a minipool model to ONNX: ``minipool.onnx.export(model, example_input, path)``.

One forward pass of ``model`` in eval mode is traced op by op (see
``_trace``); each op becomes its standard ONNX nodes through the op table
(``table`` and the family modules), parameters become initializers, and the
result passes ``onnx.checker.check_model(full_check=True)``.  Needs the
optional extra: ``pip install minipool[onnx]`` (onnx; onnxruntime to run it).

This module imports without onnx (so ``import minipool`` and doctest runs never need
it); :func:`export` raises ImportError naming the extra when onnx is missing.  A
full example (export, then run with onnxruntime) is in the README.

>>> import minipool.onnx
>>> minipool.onnx.DEFAULT_OPSET, minipool.onnx.MIN_OPSET
(18, 13)
"""
import numpy as np

from minipool.onnx._graph import ONNX_DTYPES, Graph, UnsupportedOpError
from minipool.onnx._trace import trace
from minipool.onnx.table import converters, traced_codes
from minipool.tensor import Tensor, no_grad

__all__ = ["export", "build", "UnsupportedOpError", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 18   # Resize's axes, Reduce* axes as inputs; Gelu needs 20, Pad 'wrap' 19
MIN_OPSET = 13


def _onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError("minipool.onnx needs the onnx package: pip install minipool[onnx] "
                          "(or pip install onnx onnxruntime)") from e
    return onnx


def _check_opset(opset):
    onnx = _onnx()
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or \
            not MIN_OPSET <= opset <= newest:
        raise ValueError(f"export: opset must be an int in [{MIN_OPSET}, {newest}] (this onnx "
                         f"package's newest), got {opset!r}")
    return int(opset)


def _tensors(value):
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v)


def _value_info(g, name, array, batch):
    from onnx import helper
    dims = list(array.shape)
    if batch == 0 and dims:
        dims[0] = "batch"
    return helper.make_tensor_value_info(name, ONNX_DTYPES[array.dtype], dims)


def build(model, example_input, opset=None, dynamic_batch=True, input_name="input",
          output_name="output"):
    """The ONNX ModelProto of ``model`` traced on ``example_input`` (see :func:`export`)."""
    onnx = _onnx()
    from onnx import helper
    opset = _check_opset(opset)
    if not callable(model):
        raise TypeError(f"export: model must be a minipool Module (or callable), got "
                        f"{type(model).__name__}")
    x = example_input if isinstance(example_input, Tensor) else Tensor(np.asarray(example_input))
    if x.dtype not in (np.float32, np.float64, np.int32, np.int64):
        raise TypeError(f"export: example_input must be float32 or float64 (or int32/int64 "
                        f"indices, for a model that starts with an Embedding), got {x.dtype}")
    if x.ndim < 1:
        raise ValueError("export: example_input must have a batch axis (at least 1-D)")
    if not isinstance(dynamic_batch, (bool, np.bool_)):
        raise TypeError(f"export: dynamic_batch must be True or False, got {dynamic_batch!r}")
    table = converters()
    modes = [(m, m.training) for m in model.modules()] if hasattr(model, "modules") else []
    if modes:
        model.eval()
    try:
        with no_grad():
            result, events = trace(model, traced_codes(), x)
    finally:
        for m, mode in modes:  # each layer's own mode back, as it was
            object.__setattr__(m, "training", mode)
    outputs = list(_tensors(result))
    if not outputs:
        raise TypeError(f"export: the model must return a Tensor (or a tuple of them), got "
                        f"{type(result).__name__}")
    float_dtype = x.dtype  # for Python-number constants: an index input takes the weights' type
    if x.dtype.kind != "f":
        params = list(model.parameters()) if hasattr(model, "parameters") else []
        float_dtype = params[0].dtype if params else np.dtype(np.float32)
    g = Graph(opset, float_dtype)
    if hasattr(model, "named_modules"):
        g.layer_names = {id(m): name for name, m in model.named_modules()}
    g.bind(x, input_name, 0 if dynamic_batch else None)
    for event in events:
        outs = list(_tensors(event.output))
        inputs = list(_tensors(list(event.args.values())))
        if not any(g.live(t) for t in inputs):
            continue  # computed from parameters alone: read later as a constant
        g.event = event
        convert = table.get(event.key)
        if convert is None:
            g.fail(f"{event.op_name} has no ONNX export")
        names = convert(g, event)
        names = names if isinstance(names, tuple) else (names,)
        batch = 0 if dynamic_batch and any(g.batch_of(t) == 0 for t in inputs) else None
        for tensor, name in zip(outs, names):
            if name is None:
                continue
            keeps = batch == 0 and tensor.ndim and any(
                g.batch_of(t) == 0 and t.ndim and t.shape[0] == tensor.shape[0] for t in inputs)
            g.bind(tensor, name, 0 if keeps else None)
    g.event = None
    out_infos = []
    for k, tensor in enumerate(outputs):
        name = output_name if len(outputs) == 1 else f"{output_name}_{k}"
        g.nodes.append(helper.make_node("Identity", [g.value(tensor)], [name], name=g.fresh("n_out")))
        out_infos.append(_value_info(g, name, tensor._data, g.batch_of(tensor)))
    graph = helper.make_graph(g.nodes, type(model).__name__, [_value_info(g, input_name, x._data, g.batch_of(x))],
                              out_infos, initializer=g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="minipool")
    proto.ir_version = min(proto.ir_version, 10)  # readable by older runtimes
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, example_input, path, opset=None, dynamic_batch=True):
    """Trace ``model`` on ``example_input`` and write it to ``path`` as an ONNX model.

    ``model`` runs once in eval mode (its mode is restored afterwards), without
    recording gradients; every op it calls is written as standard ONNX nodes
    (default opset :data:`DEFAULT_OPSET`; ``opset`` may be any from
    :data:`MIN_OPSET` to the installed onnx package's newest).  With
    ``dynamic_batch`` the first axis of the input (and of every value that
    carries it) is a free dimension named "batch".  The graph's input is named
    "input", its output "output" ("output_0", ... for a tuple).  An op with no
    ONNX form raises :class:`UnsupportedOpError` naming the op and the layer.
    Returns the ``onnx.ModelProto`` (already checked with ``full_check=True``).
    """
    proto = build(model, example_input, opset, dynamic_batch)
    _onnx().save(proto, str(path))
    return proto
