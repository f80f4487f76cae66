"""Record one forward pass: which ops ran, on which tensors, with which arguments.

No hook lives in minipool's core: the tracer is a ``sys.setprofile`` callback
installed only for the one traced call, so ordinary forward passes pay nothing.
It watches three kinds of Python frames:

* ``Module.__call__``: the stack of layers, so an error can name the layer;
* a functional op the table knows (``conv2d``'s arguments are richer than its
  Function's, e.g. ``padding="same"`` or a pooling divisor rule): recorded with
  its bound arguments, and every op it calls inside is *not* recorded;
* ``Function.apply`` outside such a call (``x + y``, ``F.reshape``, ...):
  recorded as (Function class, positional args, keyword args).

An event's output is the call's return value (a Tensor or a tuple of them).
"""
import sys

from minipool.nn.module import Module
from minipool.tensor import Function

_MODULE_CALL = Module.__call__.__code__
_APPLY_CODE = Function.apply.__func__.__code__


class Event:
    """One recorded op: ``key`` (a function or a Function class), ``args`` (name -> value),
    ``output`` and the innermost ``layer`` (a Module, or None) it ran in."""

    __slots__ = ("key", "args", "output", "layer")

    def __init__(self, key, args, layer):
        self.key, self.args, self.layer, self.output = key, args, layer, None

    @property
    def op_name(self) -> str:
        op = self.args.get("op")  # pooling helpers name the public op they serve
        return op if isinstance(op, str) else getattr(self.key, "__name__", repr(self.key))


class Tracer:
    """A ``sys.setprofile`` callback; ``codes`` maps a function's code object to its key."""

    def __init__(self, codes):
        self.codes = codes
        self.events = []
        self._stack = []    # (frame, Event or None for a layer)
        self._inside = 0    # recorded op frames open: their inner ops are not recorded
        self._layers = []

    def __call__(self, frame, event, arg):
        if event == "call":
            code = frame.f_code
            if code is _MODULE_CALL:
                self._layers.append(frame.f_locals.get("self"))
                self._stack.append((frame, None))
                return
            if self._inside:
                return
            if code is _APPLY_CODE:
                local = frame.f_locals
                record = Event(local["cls"], {"args": local["args"], "kwargs": local["kwargs"]},
                               self._layers[-1] if self._layers else None)
            else:
                key = self.codes.get(code)
                if key is None:
                    return
                record = Event(key, dict(frame.f_locals), self._layers[-1] if self._layers else None)
            self._stack.append((frame, record))
            self._inside += 1
        elif event == "return" and self._stack and self._stack[-1][0] is frame:
            _, record = self._stack.pop()
            if record is None:
                self._layers.pop()
            else:
                self._inside -= 1
                record.output = arg
                self.events.append(record)


def trace(fn, codes, *args):
    """``fn(*args)`` and the events of the ops it ran (see :class:`Tracer`)."""
    tracer = Tracer(codes)
    previous = sys.getprofile()
    sys.setprofile(tracer)
    try:
        result = fn(*args)
    finally:
        sys.setprofile(previous)
    return result, tracer.events
