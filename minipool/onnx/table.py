"""The op table: which traced op (a functional or a Function class) becomes which ONNX nodes.

Each family module (``_basic``, ``_conv``, ``_norm``, ``_pool``, ``_resize``) registers its
converters with :func:`converts`.  A converter takes the Graph and the traced
event and returns the output's value name (or a tuple of names for a tuple
output).  An op missing from the table makes the export fail naming the op
and the layer it ran in.

>>> from minipool.onnx.table import converters
>>> from minipool.ops.conv import Conv2dFn
>>> Conv2dFn in converters()
True
"""
import inspect

_TABLE = {}


def converts(*keys):
    """Register the decorated converter for each key (a Function subclass or a function;
    a decorated function is registered under the function it wraps)."""
    def register(fn):
        for key in keys:
            _TABLE[inspect.unwrap(key) if inspect.isfunction(key) else key] = fn
        return fn
    return register


def converters() -> dict:
    """The table (op key -> converter), loading every family on first use."""
    from minipool.onnx import _basic, _conv, _norm, _pool, _resize  # noqa: F401  (they register)
    return _TABLE


def traced_codes() -> dict:
    """Code object -> key for the functional ops in the table (Function classes are seen
    through ``Function.apply``)."""
    return {key.__code__: key for key in converters() if inspect.isfunction(key)}
