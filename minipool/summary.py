"""``mp.summary``: a torchinfo-style table of a model's layers, shapes, parameters and work.

One forward pass on zeros (in eval mode, without recording a graph) with a
forward hook on every module records each layer's output shape; parameters
are counted from the module tree.  Multiply-adds count the weight products
of the layers that have them, per call:

* ``Linear``: output elements x ``in_features``;
* ``Conv1d/2d/3d``: output elements x (in_channels / groups x kernel cells);
* ``ConvTranspose*``: input elements x (out_channels / groups x kernel cells);

every other layer counts 0 (element-wise work, pooling, normalisation and
bias additions are not multiply-adds of weights).  The model is left as it
was: training flags restored, no random numbers drawn, no running statistics
updated, every hook removed.

>>> import minipool as mp
>>> net = mp.nn.Sequential(mp.nn.Conv2d(1, 2, 3), mp.nn.ReLU(), mp.nn.Flatten(), mp.nn.Linear(8, 3))
>>> s = mp.summary(net, (1, 1, 4, 4), verbose=0)
>>> s.total_params, s.total_mult_adds
(47, 96)
>>> print(s)
=====================================================
Layer (type)     Output Shape    Param #    Mult-Adds
=====================================================
Sequential       [1, 3]          --         --
  0 (Conv2d)     [1, 2, 2, 2]    20         72
  1 (ReLU)       [1, 2, 2, 2]    --         --
  2 (Flatten)    [1, 8]          --         --
  3 (Linear)     [1, 3]          27         24
=====================================================
Total params: 47
Trainable params: 47
Non-trainable params: 0
Total mult-adds: 96 (0.00 M)
Params size (MB): 0.00
=====================================================
"""
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from minipool.tensor import FLOAT_DTYPES, Tensor, get_default_dtype, no_grad

__all__ = ["summary", "ModelSummary", "LayerInfo"]


@dataclass
class LayerInfo:
    """One row: a module at ``depth`` in the tree (0 is the model itself)."""
    name: str                    # the attribute name ("" for the model)
    type: str
    depth: int
    path: str = ""               # the dotted name, as in named_modules()
    output_shapes: list = field(default_factory=list)   # one entry per call
    num_params: int = 0          # its own parameters (plus hidden descendants' past ``depth``)
    trainable_params: int = 0
    mult_adds: int = 0           # summed over its calls (plus hidden descendants')
    calls: int = 0
    is_leaf: bool = True


def _shape_of(value):
    if isinstance(value, Tensor):
        return list(value.shape)
    if isinstance(value, (tuple, list)):
        return [_shape_of(v) for v in value]
    if isinstance(value, np.ndarray):
        return list(value.shape)
    return None


def _numel(value):
    if isinstance(value, Tensor):
        return int(value._data.size)
    if isinstance(value, (tuple, list)) and value:
        return _numel(value[0])  # e.g. (values, indices): the values
    return 0


def _mult_adds(module, args, output):
    """Weight multiply-adds of one call (see the module docstring)."""
    weight = module._parameters.get("weight")
    if weight is None:
        return 0
    kind = type(module).__name__
    per_element = int(np.prod(weight.shape[1:])) if weight.ndim > 1 else 0
    if "Transpose" in kind and kind.startswith("Conv"):
        return _numel(args[0] if args else None) * per_element
    if kind.startswith("Conv") or kind == "Linear":
        return _numel(output) * per_element
    return 0


class ModelSummary:
    """What :func:`summary` returns: ``layers`` (a list of :class:`LayerInfo`), the totals, and
    the table as ``str(summary)``."""

    def __init__(self, layers, total_params, trainable_params, total_mult_adds, params_bytes,
                 input_shapes):
        self.layers = layers
        self.total_params = total_params
        self.trainable_params = trainable_params
        self.non_trainable_params = total_params - trainable_params
        self.total_mult_adds = total_mult_adds
        self.params_bytes = params_bytes
        self.input_shapes = input_shapes

    def _cells(self, row):
        label = "  " * row.depth + (f"{row.name} ({row.type})" if row.depth else row.type)
        if not row.output_shapes:
            shape = "--"
        elif all(s == row.output_shapes[0] for s in row.output_shapes):
            shape = str(row.output_shapes[0])
        else:
            shape = ", ".join(str(s) for s in row.output_shapes)
        if row.calls > 1:
            shape += f" (x{row.calls})"
        params = f"{row.num_params:,}" if row.num_params else "--"
        work = f"{row.mult_adds:,}" if row.mult_adds else "--"
        return [label, shape, params, work]

    def __str__(self):
        head = ["Layer (type)", "Output Shape", "Param #", "Mult-Adds"]
        rows = [self._cells(r) for r in self.layers]
        widths = [max(len(r[i]) for r in rows + [head]) + 4 for i in range(4)]
        width = sum(widths) - 4
        line = "=" * width

        def fmt(cells):
            return "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        out = [line, fmt(head), line] + [fmt(r) for r in rows] + [
            line,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Total mult-adds: {self.total_mult_adds:,} ({self.total_mult_adds / 1e6:.2f} M)",
            f"Params size (MB): {self.params_bytes / 1e6:.2f}",
            line]
        return "\n".join(out)

    __repr__ = __str__


def _check_sizes(input_size):
    """A list of shapes from one shape (tuple of ints) or a list of shapes."""
    def is_shape(s):
        return isinstance(s, (tuple, list)) and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in s)
    if is_shape(input_size) and len(input_size) > 0:
        shapes = [tuple(int(d) for d in input_size)]
    elif isinstance(input_size, (tuple, list)) and input_size and all(
            is_shape(s) and len(s) > 0 for s in input_size):
        shapes = [tuple(int(d) for d in s) for s in input_size]
    else:
        raise ValueError(f"summary: input_size must be a shape such as (1, 1, 32, 32) (batch "
                         f"included) or a list of shapes, got {input_size!r}")
    for s in shapes:
        if min(s) < 1:
            raise ValueError(f"summary: input_size dimensions must be >= 1, got {s}")
        if math.prod(s) > 2 ** 28:
            raise ValueError(f"summary: input_size {s} has {math.prod(s):,} elements; the limit "
                             f"is 2**28 (the pass allocates the input); use batch size 1")
    return shapes


def summary(model: Any, input_size: Optional[Union[Sequence[int], Sequence[Sequence[int]]]] = None,
            *, input_data: Any = None, dtype: Any = None, depth: int = 3,
            verbose: int = 1) -> "ModelSummary":
    """Print and return a table of ``model``'s layers (see the module docstring).

    ``input_size`` is the full input shape, batch included (``(1, 1, 32, 32)``),
    or a list of shapes for a model taking several inputs; the pass runs on
    zeros of ``dtype`` (default: the dtype of the model's first floating
    parameter, else float32).  ``input_data`` (a Tensor, array or a list of
    them) is used instead when given.  Rows deeper than ``depth`` are folded
    into their ancestor's counts.  ``verbose=0`` returns without printing.

    >>> import minipool as mp
    >>> table = mp.summary(mp.nn.Linear(4, 2), (1, 4), verbose=0)
    >>> table.total_params
    10
    """
    from minipool.nn.module import Module
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be a minipool.nn.Module, got {type(model).__name__}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"summary: depth must be an int >= 0, got {depth!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"summary: verbose must be 0 (silent), 1 or 2, got {verbose!r}")
    if (input_size is None) == (input_data is None):
        raise ValueError("summary: give exactly one of input_size and input_data")
    if input_data is not None:
        items = input_data if isinstance(input_data, (list, tuple)) else [input_data]
        inputs = [x if isinstance(x, Tensor) else Tensor(np.asarray(x)) for x in items]
    else:
        shapes = _check_sizes(input_size)
        if dtype is None:
            dtype = next((p.dtype for p in model.parameters() if p.dtype in FLOAT_DTYPES),
                         get_default_dtype())
        dtype = np.dtype(dtype)
        if dtype.kind not in "biuf":
            raise TypeError(f"summary: dtype must be a numeric dtype, got {dtype}")
        inputs = [Tensor(np.zeros(s, dtype=dtype)) for s in shapes]

    rows, by_module = [], {}
    for name, module in model.named_modules():
        if id(module) in by_module:
            continue  # a module reachable twice gets one row
        row = LayerInfo(name=name.rsplit(".", 1)[-1] if name else "", type=type(module).__name__,
                        depth=name.count(".") + 1 if name else 0, path=name,
                        is_leaf=not module._modules)
        rows.append(row)
        by_module[id(module)] = (module, row)

    executed = []

    def record(module, args, output):
        row = by_module[id(module)][1]
        row.calls += 1
        row.output_shapes.append(_shape_of(output))
        row.mult_adds += _mult_adds(module, args, output)
        executed.append(row.path or row.type)

    modes = [(m, m.training) for m, _ in by_module.values()]
    handles = [m.register_forward_hook(record) for m, _ in by_module.values()]
    try:
        model.eval()  # no dropout or stochastic draws, no running-statistics updates
        with no_grad():
            model(*inputs)
    except Exception as e:
        raise RuntimeError(f"summary: the forward pass of {type(model).__name__} on inputs of "
                           f"shape {[x.shape for x in inputs]} failed after the layers "
                           f"{executed}: {type(e).__name__}: {e}") from e
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            object.__setattr__(m, "training", mode)

    # parameters: each counted once, on the first row that owns it
    seen = set()
    for module, row in by_module.values():
        for p in module._parameters.values():
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            row.num_params += int(p._data.size)
            row.trainable_params += int(p._data.size) if p.requires_grad else 0
    total = sum(r.num_params for r in rows)
    trainable = sum(r.trainable_params for r in rows)
    total_mult_adds = sum(r.mult_adds for r in rows)
    params_bytes = sum(p._data.nbytes for p in {id(p): p for p in model.parameters()}.values())

    # fold rows deeper than ``depth`` into their ancestor at ``depth``
    shown = []
    for r in rows:
        if r.depth <= depth:
            shown.append(r)
        else:
            anc = shown[-1]  # pre-order: the last shown row is r's ancestor at ``depth``
            anc.num_params += r.num_params
            anc.trainable_params += r.trainable_params
            anc.mult_adds += r.mult_adds
    result = ModelSummary(shown, total, trainable, total_mult_adds, params_bytes,
                          [list(x.shape) for x in inputs])
    if verbose:
        print(result)
    return result
