"""Tensor, Function and the reverse-mode engine.

A Tensor wraps a NumPy array.  Every differentiable op is a Function: its
``forward`` works on NumPy arrays and records what ``backward`` needs on the
context object; ``Function.apply`` wires the result into the graph.  Calling
``backward()`` on a result walks that graph once, in reverse topological
order, adding each contribution into ``.grad`` of the leaves.
"""
from __future__ import annotations  # hints name Tensor inside its own class body

import builtins
import importlib
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

from minipool import _memory, _random
from minipool._numpy_errors import QUIET as _QUIET_NUMPY, state as _numpy_errors
from minipool import _device

if TYPE_CHECKING:  # minipool._typing imports this module
    from minipool._typing import Dims, DTypeLike, PoolOutput, TensorLike

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "tensor",
           "zeros", "ones", "zeros_like", "ones_like", "randn", "rand", "arange", "full"]

_CPU = _device.device("cpu")
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_default_dtype = FLOAT_DTYPES[0]


def get_default_dtype() -> np.dtype:
    """The float dtype that factories (``zeros``, ``randn``, ...), ``tensor`` of Python floats
    and new layers' parameters use when no dtype is given: float32 unless changed.

    >>> import minipool as mp
    >>> mp.get_default_dtype()
    dtype('float32')
    """
    return _default_dtype


def set_default_dtype(dtype: DTypeLike) -> None:
    """Make ``dtype`` (float32 or float64) the default float dtype, as ``torch.set_default_dtype``
    (per process; gradcheck scripts set float64).  Tensors already made keep their dtype.

    >>> import minipool as mp
    >>> mp.set_default_dtype(mp.float64); mp.tensor([0.5]).dtype
    dtype('float64')
    >>> mp.set_default_dtype(mp.float32); mp.tensor([0.5]).dtype
    dtype('float32')
    """
    global _default_dtype
    try:
        d = None if dtype is None else np.dtype(dtype)
    except TypeError:
        d = None
    if d is None or d not in FLOAT_DTYPES:  # (np.dtype("float64") == None is True)
        raise TypeError(f"set_default_dtype: dtype must be mp.float32 or mp.float64, got {dtype!r}")
    _default_dtype = d


# --------------------------------------------------------------------------- grad mode
class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()`` (per Python thread).

    >>> import minipool as mp
    >>> with mp.no_grad():
    ...     mp.is_grad_enabled()
    False
    """
    return _grad_mode.enabled


class _SetGradMode:
    """Context manager and decorator that sets grad mode and restores it."""

    _mode = True
    _bare_decorator = True  # @mp.no_grad without parentheses decorates, as in PyTorch 2

    def __new__(cls, *args, **kwargs):
        if cls._bare_decorator and len(args) == 1 and not kwargs and callable(args[0]):
            return cls()(args[0])
        return super().__new__(cls)

    def __init__(self) -> None:
        """No arguments (``no_grad(5)`` is a TypeError); set_grad_enabled and inference_mode
        take their mode."""

    def __enter__(self):
        self._previous = _grad_mode.enabled
        _grad_mode.enabled = self._mode
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self._previous
        return False

    def __call__(self, func):
        import functools

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return func(*args, **kwargs)

        return wrapper


class no_grad(_SetGradMode):
    """Record no graph inside this block (or decorated function).

    >>> import minipool as mp
    >>> x = mp.tensor([1.0, 2.0], requires_grad=True)
    >>> with mp.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _mode = False


class enable_grad(_SetGradMode):
    """Record the graph again inside a ``no_grad`` block."""

    _mode = True


class inference_mode(_SetGradMode):
    """PyTorch's ``inference_mode``: here the same as :class:`no_grad` (``mode=False``: as
    :class:`enable_grad`).  Context manager or decorator.

    >>> import minipool as mp
    >>> with mp.inference_mode():
    ...     mp.is_grad_enabled()
    False
    """

    def __init__(self, mode: bool = True) -> None:
        self._mode = not bool(mode)

    def __call__(self, func):
        import functools

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with inference_mode(not self._mode):
                return func(*args, **kwargs)

        return wrapper


class set_grad_enabled(_SetGradMode):
    """Turn graph recording on or off: as a call it sets the mode from now on; as a context
    manager (or decorator) it restores the previous mode at the end, as in PyTorch.

    >>> import minipool as mp
    >>> with mp.set_grad_enabled(False):
    ...     mp.is_grad_enabled()
    False
    >>> mp.is_grad_enabled()
    True
    """

    _bare_decorator = False  # it takes the mode

    def __init__(self, mode: bool) -> None:
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"set_grad_enabled: mode must be a bool, got {type(mode).__name__}")
        self._previous = _grad_mode.enabled
        self._mode = bool(mode)
        _grad_mode.enabled = self._mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _grad_mode.enabled = self._previous
        return False

    def __call__(self, func):
        _grad_mode.enabled = self._previous  # as a decorator, only the function's calls change
        import functools
        mode = self._mode

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return func(*args, **kwargs)

        return wrapper


# --------------------------------------------------------------------------- versions
class _Version:
    """The version counter of a tensor's memory, shared with the tensors that view it
    (reshape, indexing, detach): every in-place change bumps it, and backward checks
    that the values an op saved were not changed since (PyTorch's rule)."""

    # Class defaults, set on the instance when they change: creation stays cheap.
    value = 0
    op = None        # the last in-place op, for the error message
    shared = False   # another tensor views the same memory


def _version_of(t):
    box = t._vbox
    if box is None:  # created on first need: most tensors never get one
        box = t._vbox = _Version()
    return box


def _same_memory(a, b):
    """True when two arrays are one array, or views of one base (NumPy keeps views'
    ``base`` pointing at the owner): identity tests only, cheap enough for every op."""
    if a is b:
        return True
    ab, bb = a.base, b.base
    return ab is b or bb is a or (ab is not None and ab is bb)


def _saved_versions(saved, args, raw, out, result):
    """(version counter, value now, which) for each input/output whose memory the op
    saved for backward (-1: the output).  Runs for every recorded op that saves
    arrays, so identity tests first: an input saved as it is, the result, or a view
    of either (NumPy points a view's ``base`` at the array owning the memory)."""
    checks = []
    for s in saved:
        i = 0
        for r in raw:
            if r is s:
                break
            i += 1
        else:
            if s is result or (s is not None and s is result.base):  # the output views s
                i = -1
            else:
                sb = getattr(s, "base", None)
                if sb is None:  # a fresh array made by the op: no tensor's memory
                    continue
                if sb is result or sb is result.base:
                    i = -1
                else:
                    i = 0
                    for r in raw:
                        if type(r) is np.ndarray and (r is sb or r.base is sb):
                            break
                        i += 1
                    else:
                        continue
        t = out if i < 0 else args[i]
        if not isinstance(t, Tensor):  # an array passed as a plain argument
            continue
        box = t._vbox
        if box is None:
            box = t._vbox = _Version()
        checks.append((box, box.value, i))
    return tuple(checks)


def _share_view_version(out, result, args):
    """An op result that views an input's memory shares that input's version counter."""
    for a in args:
        if isinstance(a, Tensor) and _same_memory(result, a._data):
            box = out._vbox = _version_of(a)
            box.shared = True
            return


def check_saved_versions(ctx):
    """Raise if a value ``ctx`` saved for backward was modified in place since."""
    for box, value, which in ctx._checks:
        if box.value != value:
            what = "its output" if which < 0 else f"its input {which}"
            by = f" by {box.op}" if box.op else ""
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: {ctx.name()} saved {what} at version {value}, which was changed"
                f"{by} and is now at version {box.value}; use the out-of-place op (e.g. "
                "y = y.mul(2) instead of y.mul_(2)) or .clone() the tensor before changing it")


# --------------------------------------------------------------------------- Function
class Function:
    """Base class of every differentiable op; subclass it for custom ops.

    ``forward(ctx, *inputs, **kwargs)`` receives NumPy arrays in place of the
    Tensor arguments (other arguments pass through unchanged) and returns a
    NumPy array, or a tuple whose first element is the differentiable output
    and whose other elements (e.g. indices) are returned as constant Tensors.
    ``backward(ctx, grad)`` receives the gradient of the output as a NumPy
    array and returns one gradient (array or None) per positional input.

    >>> import numpy as np, minipool as mp
    >>> class Square(mp.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...     @staticmethod
    ...     def backward(ctx, grad):
    ...         (x,) = ctx.saved_tensors
    ...         return 2 * x * grad
    >>> x = mp.tensor([3.0], requires_grad=True)
    >>> Square.apply(x).sum().backward()
    >>> x.grad.numpy()
    array([6.], dtype=float32)
    """

    # Class defaults, so apply() sets only what a recorded op needs.
    _inputs = ()   # per positional input: the node its gradient goes to (the producing
    #               Function, or the leaf Tensor), or None (no gradient wanted)
    _checks = ()   # (version counter, version at forward, which) of each saved tensor
    _shape = None  # the output's shape

    def __init__(self) -> None:
        self.saved_tensors = ()
        self.needs_input_grad = ()
        self._freed = False

    def save_for_backward(self, *arrays: np.ndarray) -> None:
        self.saved_tensors = arrays

    @staticmethod
    def forward(ctx, *args, **kwargs) -> Any:
        raise NotImplementedError("a Function subclass must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx, grad: np.ndarray) -> Any:
        raise NotImplementedError("a Function subclass must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args, **kwargs) -> Any:
        ctx = cls()
        # One plain loop instead of comprehensions: apply runs for every op of every step.
        raw = []
        needs = []
        edges = []  # where each input's gradient goes (see _inputs)
        any_needs = False
        for a in args:
            if isinstance(a, Tensor):
                raw.append(a._data)
                flag = a._requires_grad
                needs.append(flag)
                if flag:
                    any_needs = True
                    # The producing node as it is now: an in-place op that later gives
                    # ``a`` a new grad_fn does not reroute this op's gradient.
                    edges.append(a if a._ctx is None else a._ctx)
                else:
                    edges.append(None)
            else:
                raw.append(a)
                needs.append(False)
                edges.append(None)
        record = any_needs and _grad_mode.enabled
        ctx.needs_input_grad = tuple(needs)
        ctx.requires_grad = record  # ops may skip saving state (e.g. argmax) when False
        previous = _memory.activate()  # the op's arrays come from minipool's memory cache
        errors = _numpy_errors.set(_QUIET_NUMPY)  # inf - inf is NaN without a warning, as in PyTorch
        try:
            result = cls.forward(ctx, *raw, **kwargs)
        finally:
            _numpy_errors.reset(errors)
            _memory.restore(previous)
        extras = ()
        if isinstance(result, tuple):
            result, *extras = result
        if type(result) is not np.ndarray:
            result = np.asarray(result)
        record = record and result.dtype in FLOAT_DTYPES
        out = Tensor._from_result(result, record)
        if result.base is not None:
            _share_view_version(out, result, args)
        if record:
            ctx._inputs = tuple(edges)
            ctx._shape = result.shape
            if ctx.saved_tensors:
                ctx._checks = _saved_versions(ctx.saved_tensors, args, raw, out, result)
            out._ctx = ctx
        if extras:
            return (out, *(Tensor(e) for e in extras))
        return out

    def _release(self):
        """Drop everything saved for backward; the node can't be walked again."""
        self.__dict__.clear()
        self._freed = True

    def name(self) -> str:
        """PyTorch's name for the op's backward node, as ``grad_fn.name()``: ``'MulBackward0'``
        for minipool's ops, ``'<Class>Backward'`` for a user's Function subclass (PyTorch's
        rule for custom Functions).  :meth:`op_name` is minipool's short name.

        >>> import minipool as mp
        >>> y = mp.ones(1, requires_grad=True) * 2
        >>> y.grad_fn.name(), y.grad_fn.op_name()
        ('MulBackward0', 'Mul')
        """
        cls = type(self)
        if not cls.__module__.startswith("minipool."):
            return cls.__name__ + "Backward"
        short = cls.__name__
        return _TORCH_NODE_NAMES.get(short) or short.strip("_").removesuffix("Fn") + "Backward0"

    def op_name(self) -> str:
        """minipool's name for the op (its Function class): ``'Mul'``, ``'Conv2dFn'``, ..."""
        return type(self).__name__


# PyTorch's node names where minipool's op class is named otherwise (the rest: <Name>Backward0).
# Some of PyTorch's depend on the arguments (sum over a dim is SumBackward1, a tensor exponent
# PowBackward1, indexing SelectBackward0 / SliceBackward0 / IndexBackward0); these give the
# commonest one.
_TORCH_NODE_NAMES = {
    "Reshape": "ViewBackward0", "MatMul": "MmBackward0", "Conv2dFn": "ConvolutionBackward0",
    "Clip": "ClampBackward1", "Cast": "ToCopyBackward0", "Square": "PowBackward0",
    "MseFn": "MseLossBackward0", "ClassLossFn": "NllLossBackward0", "_MaxAt": "MaxBackward0",
    "_MinAt": "MinBackward0", "GetItem": "SelectBackward0", "DropoutFn": "MulBackward0",
}


# --------------------------------------------------------------------------- Tensor
class _OpModules:
    """``_ops.elementwise`` is ``minipool.ops.elementwise``, imported on first use.

    Tensor's methods are one-line calls into the op modules, but those modules import
    this one (for Tensor and Function), so it cannot import them at its top.  A local
    import in each of ~80 methods would repeat a line and cost an import statement per
    call; here the first use imports the module and stores it as a plain attribute, so
    every later call is two attribute reads.
    """

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        module = importlib.import_module(f"minipool.ops.{name}")
        setattr(self, name, module)
        return module


_ops = _OpModules()


def _as_array(data, dtype=None):
    if isinstance(data, Tensor):
        data = data._data
    if dtype is not None:
        dtype = np.dtype(dtype)
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        arr = np.asarray(data, dtype=dtype)
    else:
        arr = np.asarray(data, dtype=dtype)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(_default_dtype)  # Python floats: the default dtype, as in PyTorch
    if arr.dtype == object:
        raise TypeError(f"cannot make a Tensor from {type(data).__name__} holding Python objects")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"unsupported dtype {arr.dtype}: minipool tensors hold bool, integer "
                        "or floating-point numbers")
    return arr


_new_tensor = object.__new__

# What to use for PyTorch Tensor methods minipool leaves out (AttributeError messages).
_MISSING_METHODS = {
    **dict.fromkeys(("t_", "transpose_", "squeeze_", "unsqueeze_", "swapaxes_", "swapdims_",
                     "resize_", "resize_as_", "set_", "as_strided", "as_strided_"),
                    "minipool changes no tensor's shape in place: reassign the result, e.g. "
                    "t = t.transpose(0, 1) / t.unsqueeze(0) / t.reshape(...)"),
    **dict.fromkeys(("apply_", "map_", "map2_"),
                    "no per-element Python callbacks: compute on t.numpy() (shared memory) "
                    "under mp.no_grad(), or compose tensor ops"),
    **dict.fromkeys(("storage", "untyped_storage", "storage_offset", "storage_type", "is_shared",
                     "share_memory_", "pin_memory", "is_pinned", "record_stream"),
                    "a minipool tensor is a NumPy array in CPU memory: t.numpy() is it "
                    "(its .base, .strides, .ctypes.data describe the memory)"),
    **dict.fromkeys(("bfloat16", "cfloat", "cdouble", "chalf"),
                    "minipool tensors are bool, integer or float16/32/64: use .float(), .double(), "
                    ".half(), .long(), .int(), .bool() or .to(dtype) with a NumPy dtype "
                    "(e.g. t.to('uint8'))"),
    "register_post_accumulate_grad_hook": "use p.register_hook(fn) (called with each gradient "
                                          "before it is added) or read p.grad after backward()",
    "new": "use t.new_empty(*size), t.new_zeros(*size) or t.new_tensor(data)",
    "output_nr": "minipool ops have one differentiable output: it is always 0",
    **dict.fromkeys(("to_sparse", "to_sparse_coo", "to_sparse_csr", "to_dense", "dequantize",
                     "int_repr"), "minipool tensors are dense and unquantized"),
}


class _Missing:
    """A Tensor method PyTorch has and minipool leaves out: reading it raises an AttributeError
    saying what to use instead (so ``hasattr`` stays False).  A class attribute rather than a
    ``__getattr__``, which NumPy's probes (``__array_interface__`` ...) would slow down."""

    def __init__(self, name, hint):
        self.name, self.hint = name, hint

    def __get__(self, obj, owner=None):
        raise AttributeError(f"'Tensor' object has no attribute {self.name!r}: {self.hint}")




class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    >>> import minipool as mp
    >>> x = mp.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.numpy()
    array([[2., 4.],
           [6., 8.]], dtype=float32)
    """

    __array_priority__ = 1000  # ndarray op Tensor -> Tensor's reflected method
    _vbox = None  # the _Version counter, made on first need
    _shape = None  # (a Function node's output shape; None marks a Tensor node for backward)

    def __init__(self, data: Any = (), dtype: Optional[DTypeLike] = None,
                 requires_grad: bool = False, *more_sizes: int) -> None:
        if type(data) is int and (dtype is None or type(dtype) in (int, float)):
            # PyTorch's legacy constructor: Tensor(3, 4) is an uninitialised float tensor
            sizes = (data,) + ((dtype,) if dtype is not None else ()) + \
                ((requires_grad,) if requires_grad is not False else ()) + more_sizes
            if not all(type(s) is int for s in sizes):
                raise TypeError(f"Tensor(*sizes): every size must be an int, got {sizes!r}; "
                                "mp.empty(*sizes) makes an uninitialised tensor of that shape")
            if min(sizes) < 0:
                raise RuntimeError(f"Tensor(*sizes): negative dimension in {sizes!r}")
            data, dtype, requires_grad = np.empty(sizes, _default_dtype), None, False
        elif more_sizes:
            raise TypeError("Tensor(data, dtype=None, requires_grad=False): too many arguments; "
                            "mp.empty(*sizes) makes a tensor of a shape, mp.tensor(data) one of values")
        elif dtype is None and type(data) in (list, tuple):
            dtype = _default_dtype  # PyTorch's Tensor(sequence) is always of the default dtype
        self._data = _as_array(data, dtype)
        self._grad = None
        self._ctx = None
        self.requires_grad = requires_grad

    @staticmethod
    def _from_result(array, requires_grad):
        """Wrap an op's ndarray result without re-checking it (``requires_grad`` only if
        it is float32/float64); anything unusual goes through the checking constructor."""
        if array.dtype.kind not in "biuf":
            return Tensor(array, requires_grad=requires_grad)
        t = _new_tensor(Tensor)
        t._data = array
        t._grad = None
        t._ctx = None
        t._requires_grad = requires_grad
        return t

    # -- gradient bookkeeping ---------------------------------------------------
    @property
    def grad(self) -> Optional["Tensor"]:
        """The gradient accumulated by ``backward()`` (None until then, or after
        ``zero_grad()``)."""
        return self._grad

    @grad.setter
    def grad(self, value: Optional["Tensor"]) -> None:
        # checked as PyTorch does: a wrong shape would broadcast into the next backward's sum
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got "
                                f"{type(value).__name__} (wrap it: mp.tensor(values))")
            if value._data.shape != self._data.shape:
                raise RuntimeError(f"attempting to assign a gradient of size {value.shape} to a "
                                   f"tensor of size {self.shape}: they must be the same size")
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(f"attempting to assign a gradient with dtype {value.dtype} to "
                                   f"a tensor of dtype {self.dtype}: the gradient must match the "
                                   f"tensor's dtype (convert it: g.to({self.dtype}))")
        self._grad = value

    @grad.deleter
    def grad(self) -> None:
        self._grad = None

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        flag = bool(flag)
        if flag and self._data.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"only float32/float64 tensors can require gradients, got dtype {self._data.dtype}")
        if not flag and self._ctx is not None:
            raise RuntimeError("requires_grad can only be switched off on a leaf tensor; "
                               "use .detach() on a result")
        self._requires_grad = flag

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Optional[Function]:
        return self._ctx

    @property
    def data(self) -> Tensor:
        """PyTorch's ``.data``: a Tensor sharing this tensor's memory, outside any graph, with its
        own version counter, so in-place changes through it (``w.data.normal_(0, 0.02)``) are not
        seen by autograd's saved-value check.  ``numpy()`` gives the NumPy array.

        >>> import minipool as mp
        >>> w = mp.zeros(2, requires_grad=True)
        >>> w.data.fill_(3.0).requires_grad, w.tolist()
        (False, [3.0, 3.0])
        """
        return Tensor._from_result(self._data, False)

    @data.setter
    def data(self, value: Tensor) -> None:
        # PyTorch: swaps in another tensor's memory (any shape/dtype), no version bump
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__} "
                            "(wrap an array with mp.from_numpy(array))")
        if self._requires_grad and value._data.dtype not in FLOAT_DTYPES:
            raise RuntimeError("Tensor.data: a tensor that requires gradients must keep a float "
                               f"dtype, got {value._data.dtype}")
        self._data = value._data

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data (and its version counter), outside any graph."""
        t = Tensor(self._data)
        box = t._vbox = _version_of(self)
        box.shared = True
        return t

    def detach_(self) -> Tensor:
        """Make this tensor a leaf outside the graph, in place."""
        if self._vbox is not None and self._vbox.shared and self._ctx is not None:
            raise RuntimeError("detach_() of a view of another tensor: use detach() (a new tensor)")
        self._ctx = None
        self._requires_grad = False
        return self

    @property
    def _version(self):
        """How many in-place changes this tensor's memory has seen (PyTorch's ``_version``)."""
        box = self._vbox
        return 0 if box is None else box.value

    def zero_grad(self) -> None:
        self.grad = None

    def requires_grad_(self, flag: bool = True) -> Tensor:
        self.requires_grad = flag
        return self

    def backward(self, gradient: Optional[TensorLike] = None, retain_graph: Optional[bool] = None,
                 create_graph: bool = False, inputs: Optional[Sequence["Tensor"]] = None) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad
        (PyTorch's signature).

        ``gradient`` (Tensor or array, same shape as self) is required unless self
        holds a single element.  The graph is freed afterwards unless
        ``retain_graph=True``.  ``inputs``: accumulate only into these tensors' ``.grad``
        (leaves or not).  ``create_graph=True`` (higher-order gradients) is not supported.
        """
        from minipool import autograd

        if create_graph:
            raise NotImplementedError("backward: create_graph=True (gradients of gradients) is not "
                                      "supported: minipool's backward is first-order")
        if inputs is None:
            autograd.run_backward(self, gradient, bool(retain_graph))
            return
        inputs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
        if not inputs:
            raise RuntimeError("backward: inputs= must not be empty (leave it out for every leaf)")
        grads = autograd.grad(self, inputs, gradient, retain_graph=retain_graph, allow_unused=True)
        for t, g in zip(inputs, grads):
            if g is None:
                continue
            if t.grad is None:
                t.grad = g
            else:
                autograd.add_into_grad(t, g._data)

    def register_hook(self, hook: Callable[["Tensor"], Optional["Tensor"]]) -> Any:
        """Call ``hook(grad)`` each time this tensor's gradient is computed; a returned tensor
        replaces the gradient.  Returns a handle whose ``remove()`` takes the hook off."""
        from minipool import autograd

        return autograd.register_hook(self, hook)

    def retain_grad(self) -> None:
        """Keep this (non-leaf) tensor's gradient in ``.grad`` after backward, as PyTorch."""
        from minipool import autograd

        autograd.retain_grad(self)

    # -- array-like views -------------------------------------------------------
    @property
    def shape(self) -> Tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def size(self, dim: Optional[int] = None) -> Union[Tuple[int, ...], int]:
        """The shape as a :class:`Size` (a tuple), or the length of dimension ``dim``.

        >>> import minipool as mp
        >>> t = mp.zeros(2, 3)
        >>> t.size(), t.size(-1)
        (Size([2, 3]), 3)
        """
        shape = self._data.shape
        if dim is None:
            return Size(shape)
        if not shape and isinstance(dim, (int, np.integer)) and not isinstance(dim, bool):
            raise IndexError(f"size: dimension specified as {dim} but the tensor has no dimensions")
        return shape[_dim_index(dim, len(shape), "size")]

    def dim(self) -> int:
        """The number of dimensions (``ndim``)."""
        return self._data.ndim

    ndimension = dim

    def numel(self) -> int:
        """The number of elements."""
        return self._data.size

    nelement = numel

    def element_size(self) -> int:
        """Bytes per element."""
        return self._data.itemsize

    @property
    def itemsize(self) -> int:
        """Bytes per element, as ``element_size()``.

        >>> import minipool as mp
        >>> mp.zeros(3).itemsize, mp.zeros(3, dtype=mp.float64).nbytes
        (4, 24)
        """
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes the elements take (``numel() * element_size()``; a view counts its own)."""
        return self._data.size * self._data.itemsize

    def is_contiguous(self, memory_format: Any = None) -> bool:
        """Whether the elements lie in row-major order (or in ``memory_format``'s order)."""
        if memory_format is None:
            return self._data.flags.c_contiguous
        from minipool import _memory_format
        return _memory_format.is_contiguous(self, memory_format)

    @property
    def device(self) -> "_device.device":
        """Always the CPU, as a ``device`` (``x.device.type == "cpu"``; equal to ``"cpu"``)."""
        return _CPU

    @property
    def is_cuda(self) -> bool:
        return False

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        # without it Python iterates by indexing until an IndexError: a 0-d tensor then looked
        # empty (sum(t) == 0, list(t) == [])
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __index__(self):
        # a 0-d integer tensor where Python wants an int: [10, 20][t], range(t),
        # mp.zeros(labels.max() + 1) (PyTorch takes any one-element integer tensor)
        if self._data.ndim != 0 or self._data.dtype.kind not in "iub":
            raise TypeError(f"only 0-d integer tensors can be used as an index (this one: "
                            f"shape {self.shape}, {self._data.dtype}); use int(t.item())")
        return int(self._data)

    def numpy(self) -> np.ndarray:
        """The underlying NumPy array (shared, not copied)."""
        return self._data

    def item(self) -> Union[float, int, bool]:
        if self._data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self._data.item()

    def tolist(self) -> Any:
        return self._data.tolist()

    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self._data if copy is not True else self._data.copy()
        return self._data.astype(dtype, copy=bool(copy) or self._data.dtype != dtype)

    def __repr__(self):
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extra = ""
        if self._data.dtype != _default_dtype:
            extra += f", dtype={self._data.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn=<{self._ctx.name()}>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __format__(self, spec: str) -> str:
        # PyTorch: a 0-d tensor formats as its Python number (f"{loss:.4f}"); any other
        # tensor only with an empty spec (its repr), else object.__format__'s TypeError.
        if self._data.ndim == 0 and type(self) is Tensor:
            return self._data.item().__format__(spec)
        return object.__format__(self, spec)

    def __bool__(self):
        if self._data.size != 1:
            raise ValueError("the truth value of a tensor with more than one element is ambiguous")
        return bool(self._data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def astype(self, dtype: DTypeLike) -> Tensor:
        """A differentiable cast (float32 <-> float64) or a plain one for other dtypes."""
        from minipool.ops import elementwise

        return elementwise.cast(self, dtype)

    def to(self, *args, **kwargs) -> Tensor:
        """This tensor in another dtype: ``to(mp.float64)``, ``to(other_tensor)``,
        ``to("cpu", dtype)``; self when nothing changes (unless ``copy=True``).
        minipool runs on the CPU only: a device other than "cpu" is an error.

        >>> import minipool as mp
        >>> mp.tensor([1.5]).to("float64").dtype
        dtype('float64')
        """
        copy = kwargs.pop("copy", False)
        kwargs.pop("non_blocking", None)
        memory_format = kwargs.pop("memory_format", None)
        dtype = _parse_to_args("to", args, kwargs)
        out = self if dtype is None else self.astype(dtype)
        if memory_format is not None:
            from minipool import _memory_format
            out = _memory_format.contiguous(out, memory_format, "to")
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self) -> Tensor:
        return self

    def cuda(self, *args, **kwargs) -> Tensor:
        raise RuntimeError("minipool runs on the CPU only (NumPy arrays): there is no CUDA "
                           "device; leave the tensor where it is (or call .cpu())")

    def type_as(self, other: Tensor) -> Tensor:
        """This tensor cast to ``other``'s dtype."""
        return self.astype(other.dtype)

    # -- arithmetic (differentiable, broadcasting; minipool.ops.elementwise) ------
    def __add__(self, other: TensorLike) -> Tensor:
        """``self + other``."""
        return _ops.elementwise.add(self, other)

    def __radd__(self, other: TensorLike) -> Tensor:
        """``other + self``."""
        return _ops.elementwise.add(other, self)

    def __sub__(self, other: TensorLike) -> Tensor:
        """``self - other``."""
        return _ops.elementwise.sub(self, other)

    def __rsub__(self, other: TensorLike) -> Tensor:
        """``other - self``."""
        return _ops.elementwise.sub(other, self)

    def __mul__(self, other: TensorLike) -> Tensor:
        """``self * other``."""
        return _ops.elementwise.mul(self, other)

    def __rmul__(self, other: TensorLike) -> Tensor:
        """``other * self``."""
        return _ops.elementwise.mul(other, self)

    def __truediv__(self, other: TensorLike) -> Tensor:
        """``self / other``."""
        return _ops.elementwise.div(self, other)

    def __rtruediv__(self, other: TensorLike) -> Tensor:
        """``other / self``."""
        return _ops.elementwise.div(other, self)

    def __pow__(self, other: TensorLike) -> Tensor:
        """``self ** other``."""
        return _ops.elementwise.pow(self, other)

    def __mod__(self, other: TensorLike) -> Tensor:
        """``self % other`` (``torch.remainder``: the sign of ``other``)."""
        return _ops.elementwise.remainder(self, other)

    def __rmod__(self, other: TensorLike) -> Tensor:
        """``other % self``."""
        return _ops.elementwise.remainder(other, self)

    def __and__(self, other: TensorLike) -> Tensor:
        """``self & other`` (bool or integer tensors, ``torch.bitwise_and``)."""
        return _ops.logical.bitwise_and(self, other)

    def __rand__(self, other: TensorLike) -> Tensor:
        """``other & self``."""
        return _ops.logical.bitwise_and(other, self)

    def __or__(self, other: TensorLike) -> Tensor:
        """``self | other`` (``torch.bitwise_or``)."""
        return _ops.logical.bitwise_or(self, other)

    def __ror__(self, other: TensorLike) -> Tensor:
        """``other | self``."""
        return _ops.logical.bitwise_or(other, self)

    def __xor__(self, other: TensorLike) -> Tensor:
        """``self ^ other`` (``torch.bitwise_xor``)."""
        return _ops.logical.bitwise_xor(self, other)

    def __rxor__(self, other: TensorLike) -> Tensor:
        """``other ^ self``."""
        return _ops.logical.bitwise_xor(other, self)

    def __invert__(self) -> Tensor:
        """``~self`` (``torch.bitwise_not``: logical not of a bool tensor)."""
        return _ops.logical.bitwise_not(self)

    def logical_not(self) -> Tensor:
        """``self == 0`` as a bool tensor, as ``Tensor.logical_not``."""
        return _ops.logical.logical_not(self)

    def __floordiv__(self, other: TensorLike) -> Tensor:
        """``self // other`` (``torch.floor_divide``; not differentiable)."""
        return _ops.elementwise.floor_divide(self, other)

    def __rfloordiv__(self, other: TensorLike) -> Tensor:
        """``other // self``."""
        return _ops.elementwise.floor_divide(other, self)

    def remainder(self, other: TensorLike) -> Tensor:
        """``self % other``, as ``Tensor.remainder`` (the sign of ``other``).

        >>> import minipool as mp
        >>> mp.tensor([-1, 4]).remainder(3).tolist()
        [2, 1]
        """
        return _ops.elementwise.remainder(self, other)

    def fmod(self, other: TensorLike) -> Tensor:
        """``self`` modulo ``other`` with the sign of ``self``, as ``Tensor.fmod``.

        >>> import minipool as mp
        >>> mp.tensor([-1, 4]).fmod(3).tolist()
        [-1, 1]
        """
        return _ops.elementwise.fmod(self, other)

    def floor_divide(self, other: TensorLike) -> Tensor:
        """``self // other``, as ``Tensor.floor_divide`` (rounds toward -inf).

        >>> import minipool as mp
        >>> mp.tensor([-1, 4]).floor_divide(3).tolist()
        [-1, 1]
        """
        return _ops.elementwise.floor_divide(self, other)

    def __rpow__(self, other: TensorLike) -> Tensor:
        """``other ** self``."""
        return _ops.elementwise.pow(other, self)

    def __matmul__(self, other: TensorLike) -> Tensor:
        """``self @ other``."""
        return _ops.linalg.matmul(self, other)

    def __rmatmul__(self, other: TensorLike) -> Tensor:
        """``other @ self``."""
        return _ops.linalg.matmul(_ops.elementwise.as_tensor(other, like=self), self)

    def __neg__(self) -> Tensor:
        """``-self``."""
        return _ops.elementwise.neg(self)

    def __getitem__(self, index: Any) -> Tensor:
        """``self[index]``: NumPy indexing (ints, slices, None, ..., int/bool arrays or tensors)."""
        return _ops.shape.getitem(self, index)

    def __setitem__(self, index: Any, value: TensorLike) -> None:
        """``self[index] = value``, in place (PyTorch's rules; see ``minipool.ops.inplace.setitem``)."""
        _ops.inplace.setitem(self, index, value)

    def add(self, other: TensorLike, *, alpha: Union[int, float] = 1) -> Tensor:
        """``self + alpha * other``."""
        return _ops.elementwise.add(self, other, alpha=alpha)

    def sub(self, other: TensorLike, *, alpha: Union[int, float] = 1) -> Tensor:
        """``self - alpha * other``."""
        return _ops.elementwise.sub(self, other, alpha=alpha)

    def mul(self, other: TensorLike) -> Tensor:
        """``self * other``."""
        return _ops.elementwise.mul(self, other)

    def div(self, other: TensorLike, *, rounding_mode: Optional[str] = None) -> Tensor:
        """``self / other``: true division, or rounded with ``rounding_mode="trunc"``/``"floor"``."""
        return _ops.elementwise.div(self, other, rounding_mode=rounding_mode)

    def pow(self, exponent: TensorLike) -> Tensor:
        """``self ** exponent``."""
        return _ops.elementwise.pow(self, exponent)

    def matmul(self, other: TensorLike) -> Tensor:
        """Matrix product ``self @ other`` (NumPy's matmul rules)."""
        return _ops.linalg.matmul(self, other)

    def neg(self) -> Tensor:
        """``-self``."""
        return _ops.elementwise.neg(self)

    def exp(self) -> Tensor:
        """Elementwise e ** self."""
        return _ops.elementwise.exp(self)

    def log(self) -> Tensor:
        """Elementwise natural logarithm."""
        return _ops.elementwise.log(self)

    def sqrt(self) -> Tensor:
        """Elementwise square root."""
        return _ops.elementwise.sqrt(self)

    def abs(self) -> Tensor:
        """Elementwise absolute value (``abs(t)``)."""
        return _ops.elementwise.abs(self)

    __abs__ = abs

    def tanh(self) -> Tensor:
        """Elementwise hyperbolic tangent."""
        return _ops.elementwise.tanh(self)

    def sigmoid(self) -> Tensor:
        """Elementwise logistic function 1 / (1 + e ** -self)."""
        return _ops.elementwise.sigmoid(self)

    def relu(self) -> Tensor:
        """Elementwise max(self, 0)."""
        return _ops.elementwise.relu(self)

    def clip(self, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:
        """Values clamped into ``[min, max]`` (either may be None)."""
        return _ops.elementwise.clip(self, min, max)

    clamp = clip

    def square(self) -> Tensor:
        """Elementwise ``x * x``."""
        return _ops.elementwise.square(self)

    def rsqrt(self) -> Tensor:
        """Elementwise ``1 / sqrt(x)``."""
        return _ops.elementwise.rsqrt(self)

    def reciprocal(self) -> Tensor:
        """Elementwise ``1 / self`` (a float; inf at 0)."""
        return _ops.elementwise.reciprocal(self)

    def sin(self) -> Tensor:
        """Elementwise sine (radians)."""
        return _ops.elementwise.sin(self)

    def cos(self) -> Tensor:
        """Elementwise cosine (radians)."""
        return _ops.elementwise.cos(self)

    def floor(self) -> Tensor:
        """Elementwise floor (gradient 0)."""
        return _ops.elementwise.floor(self)

    def ceil(self) -> Tensor:
        """Elementwise ceiling (gradient 0)."""
        return _ops.elementwise.ceil(self)

    def round(self, *, decimals: int = 0) -> Tensor:
        """Elementwise round to ``decimals`` places, halves to even (gradient 0)."""
        return _ops.elementwise.round(self, decimals=decimals)

    def sign(self) -> Tensor:
        """Elementwise -1, 0 or 1 (gradient 0)."""
        return _ops.elementwise.sign(self)

    # -- more maths (minipool.ops.math_more) -------------------------------------
    def log1p(self) -> Tensor:
        """Elementwise ``log(1 + x)``."""
        return _ops.math_more.log1p(self)

    def expm1(self) -> Tensor:
        """Elementwise ``exp(x) - 1``."""
        return _ops.math_more.expm1(self)

    def log2(self) -> Tensor:
        """Elementwise base-2 logarithm."""
        return _ops.math_more.log2(self)

    def log10(self) -> Tensor:
        """Elementwise base-10 logarithm."""
        return _ops.math_more.log10(self)

    def erf(self) -> Tensor:
        """Elementwise error function."""
        return _ops.math_more.erf(self)

    def erfc(self) -> Tensor:
        """Elementwise ``1 - erf(x)``."""
        return _ops.math_more.erfc(self)

    def erfinv(self) -> Tensor:
        """Elementwise inverse error function."""
        return _ops.math_more.erfinv(self)

    def sinh(self) -> Tensor:
        """Elementwise hyperbolic sine."""
        return _ops.math_more.sinh(self)

    def cosh(self) -> Tensor:
        """Elementwise hyperbolic cosine."""
        return _ops.math_more.cosh(self)

    def tan(self) -> Tensor:
        """Elementwise tangent."""
        return _ops.math_more.tan(self)

    def asin(self) -> Tensor:
        """Elementwise inverse sine."""
        return _ops.math_more.asin(self)

    def acos(self) -> Tensor:
        """Elementwise inverse cosine."""
        return _ops.math_more.acos(self)

    def atan(self) -> Tensor:
        """Elementwise inverse tangent."""
        return _ops.math_more.atan(self)

    arcsin, arccos, arctan = asin, acos, atan

    def atan2(self, other: TensorLike) -> Tensor:
        """Elementwise angle of (other, self)."""
        return _ops.math_more.atan2(self, other)

    arctan2 = atan2

    def hypot(self, other: TensorLike) -> Tensor:
        """Elementwise ``sqrt(self**2 + other**2)``."""
        return _ops.math_more.hypot(self, other)

    def cumprod(self, dim: int, *, dtype: Optional[DTypeLike] = None) -> Tensor:
        """Running product along ``dim``."""
        return _ops.math_more.cumprod(self, dim, dtype=dtype)

    def diff(self, n: int = 1, dim: int = -1, prepend: Optional[TensorLike] = None,
             append: Optional[TensorLike] = None) -> Tensor:
        """The ``n``-th forward difference along ``dim``."""
        return _ops.math_more.diff(self, n, dim, prepend, append)

    def nan_to_num(self, nan: float = 0.0, posinf: Optional[float] = None,
                   neginf: Optional[float] = None) -> Tensor:
        """NaN, +inf, -inf replaced by finite numbers."""
        return _ops.math_more.nan_to_num(self, nan, posinf, neginf)

    # -- comparisons (bool tensors, no gradient) -------------------------------
    # The operators give NotImplemented for an operand that is no tensor, number or array
    # (so ``t == None`` is False, as in PyTorch); the methods raise a TypeError instead.
    def __lt__(self, other: TensorLike) -> Tensor:
        """``self < other``: a bool tensor."""
        return _ops.elementwise.compare_operator(np.less, self, other)

    def __le__(self, other: TensorLike) -> Tensor:
        """``self <= other``: a bool tensor."""
        return _ops.elementwise.compare_operator(np.less_equal, self, other)

    def __gt__(self, other: TensorLike) -> Tensor:
        """``self > other``: a bool tensor."""
        return _ops.elementwise.compare_operator(np.greater, self, other)

    def __ge__(self, other: TensorLike) -> Tensor:
        """``self >= other``: a bool tensor."""
        return _ops.elementwise.compare_operator(np.greater_equal, self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        """``self == other``: a bool tensor (elementwise, as NumPy and PyTorch)."""
        return _ops.elementwise.compare_operator(np.equal, self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        """``self != other``: a bool tensor."""
        return _ops.elementwise.compare_operator(np.not_equal, self, other)

    __hash__ = object.__hash__  # defining __eq__ would otherwise make tensors unhashable

    def lt(self, other: TensorLike) -> Tensor:
        """``self < other``: a bool tensor."""
        return _ops.elementwise.compare(np.less, self, other)

    def le(self, other: TensorLike) -> Tensor:
        """``self <= other``: a bool tensor."""
        return _ops.elementwise.compare(np.less_equal, self, other)

    def gt(self, other: TensorLike) -> Tensor:
        """``self > other``: a bool tensor."""
        return _ops.elementwise.compare(np.greater, self, other)

    def ge(self, other: TensorLike) -> Tensor:
        """``self >= other``: a bool tensor."""
        return _ops.elementwise.compare(np.greater_equal, self, other)

    def eq(self, other: TensorLike) -> Tensor:
        """``self == other``: a bool tensor."""
        return _ops.elementwise.compare(np.equal, self, other)

    def ne(self, other: TensorLike) -> Tensor:
        """``self != other``: a bool tensor."""
        return _ops.elementwise.compare(np.not_equal, self, other)

    def isnan(self) -> Tensor:
        """Elementwise: is NaN (bool tensor)."""
        return _ops.elementwise.isnan(self)

    def isinf(self) -> Tensor:
        """Elementwise: is +inf or -inf (bool tensor)."""
        return _ops.elementwise.isinf(self)

    def isfinite(self) -> Tensor:
        """Elementwise: neither inf nor NaN (bool tensor)."""
        return _ops.elementwise.isfinite(self)

    def isclose(self, other: TensorLike, rtol: float = 1e-05, atol: float = 1e-08,
                equal_nan: bool = False) -> Tensor:
        """Elementwise ``|self - other| <= atol + rtol * |other|`` (bool tensor)."""
        return _ops.elementwise.isclose(self, other, rtol, atol, equal_nan)

    def allclose(self, other: TensorLike, rtol: float = 1e-05, atol: float = 1e-08,
                 equal_nan: bool = False) -> "builtins.bool":
        """Whether every element is close to ``other`` (see :meth:`isclose`)."""
        return _ops.elementwise.allclose(self, other, rtol, atol, equal_nan)

    def equal(self, other: TensorLike) -> "builtins.bool":
        """Whether both have the same shape and equal elements."""
        return _ops.elementwise.equal(self, other)

    # -- in place (PyTorch's rules; minipool.ops.inplace) ----------------------
    def add_(self, other: TensorLike, *, alpha: float = 1) -> Tensor:
        """In place: ``self += alpha * other`` (raises on a leaf that requires grad)."""
        return _ops.inplace.add_(self, other, alpha)

    def sub_(self, other: TensorLike, *, alpha: float = 1) -> Tensor:
        """In place: ``self -= alpha * other``."""
        return _ops.inplace.sub_(self, other, alpha)

    def mul_(self, other: TensorLike) -> Tensor:
        """In place: ``self *= other``."""
        return _ops.inplace.mul_(self, other)

    def div_(self, other: TensorLike, *, rounding_mode: Optional[str] = None) -> Tensor:
        """In place: ``self /= other`` (``rounding_mode`` as in :meth:`div`)."""
        return _ops.inplace.div_(self, other, rounding_mode)

    __iadd__, __isub__, __imul__, __itruediv__ = add_, sub_, mul_, div_

    def neg_(self) -> Tensor:
        """In place: ``self = -self``."""
        return _ops.inplace.neg_(self)

    def fill_(self, value: TensorLike) -> Tensor:
        """In place: every element set to ``value`` (a number or a 0-d tensor)."""
        return _ops.inplace.fill_(self, value)

    def zero_(self) -> Tensor:
        """In place: every element set to 0."""
        return _ops.inplace.zero_(self)

    def copy_(self, src: TensorLike) -> Tensor:
        """In place: ``src``'s values, broadcast to self's shape and cast to its dtype."""
        return _ops.inplace.copy_(self, src)

    def clamp_(self, min: Optional[float] = None, max: Optional[float] = None) -> Tensor:
        """In place: values clamped into ``[min, max]`` (either may be None)."""
        return _ops.inplace.clamp_(self, min, max)

    clip_ = clamp_

    def clamp_min_(self, min: float) -> Tensor:
        """In place: values below ``min`` set to ``min``."""
        return _ops.inplace.clamp_(self, min, None)

    def clamp_max_(self, max: float) -> Tensor:
        """In place: values above ``max`` set to ``max``."""
        return _ops.inplace.clamp_(self, None, max)

    # In-place forms of pointwise ops: each runs the out-of-place op and writes its result
    # back (recorded in the graph when needed), with add_'s rules (minipool.ops.inplace).
    def sqrt_(self) -> Tensor:
        """In place: elementwise the square root (any in-place op on a leaf that requires grad
        raises, as in PyTorch; on a result it is recorded in the graph).

        >>> import minipool as mp
        >>> mp.tensor([4.0, 9.0]).sqrt_().tolist()
        [2.0, 3.0]
        """
        return _ops.inplace._pointwise_(self, "sqrt_", _ops.elementwise.sqrt)

    def exp_(self) -> Tensor:
        """In place: elementwise e ** self."""
        return _ops.inplace._pointwise_(self, "exp_", _ops.elementwise.exp)

    def log_(self) -> Tensor:
        """In place: elementwise the natural log."""
        return _ops.inplace._pointwise_(self, "log_", _ops.elementwise.log)

    def abs_(self) -> Tensor:
        """In place: elementwise the absolute value."""
        return _ops.inplace._pointwise_(self, "abs_", _ops.elementwise.abs)

    def sigmoid_(self) -> Tensor:
        """In place: elementwise the logistic function."""
        return _ops.inplace._pointwise_(self, "sigmoid_", _ops.elementwise.sigmoid)

    def tanh_(self) -> Tensor:
        """In place: elementwise tanh."""
        return _ops.inplace._pointwise_(self, "tanh_", _ops.elementwise.tanh)

    def relu_(self) -> Tensor:
        """In place: elementwise max(self, 0)."""
        return _ops.inplace._pointwise_(self, "relu_", _ops.elementwise.relu)

    def floor_(self) -> Tensor:
        """In place: elementwise floor (gradient 0)."""
        return _ops.inplace._pointwise_(self, "floor_", _ops.elementwise.floor)

    def ceil_(self) -> Tensor:
        """In place: elementwise ceil (gradient 0)."""
        return _ops.inplace._pointwise_(self, "ceil_", _ops.elementwise.ceil)

    def sign_(self) -> Tensor:
        """In place: elementwise -1, 0 or 1 (gradient 0)."""
        return _ops.inplace._pointwise_(self, "sign_", _ops.elementwise.sign)

    def trunc_(self) -> Tensor:
        """In place: elementwise rounded towards zero (gradient 0)."""
        return _ops.inplace._pointwise_(self, "trunc_", _ops.pointwise.trunc)

    def frac_(self) -> Tensor:
        """In place: elementwise the fractional part."""
        return _ops.inplace._pointwise_(self, "frac_", _ops.pointwise.frac)

    def square_(self) -> Tensor:
        """In place: elementwise self * self."""
        return _ops.inplace._pointwise_(self, "square_", _ops.elementwise.square)

    def rsqrt_(self) -> Tensor:
        """In place: elementwise 1 / sqrt(self)."""
        return _ops.inplace._pointwise_(self, "rsqrt_", _ops.elementwise.rsqrt)

    def reciprocal_(self) -> Tensor:
        """In place: elementwise 1 / self (an integer tensor raises, as in PyTorch)."""
        return _ops.inplace._pointwise_(self, "reciprocal_", _ops.elementwise.reciprocal)

    def sin_(self) -> Tensor:
        """In place: elementwise the sine."""
        return _ops.inplace._pointwise_(self, "sin_", _ops.elementwise.sin)

    def cos_(self) -> Tensor:
        """In place: elementwise the cosine."""
        return _ops.inplace._pointwise_(self, "cos_", _ops.elementwise.cos)

    def round_(self, *, decimals: int = 0) -> Tensor:
        """In place: round to ``decimals`` places, halves to even (gradient 0)."""
        return _ops.inplace._pointwise_(self, "round_", lambda t: _ops.elementwise.round(
            t, decimals=decimals))

    def masked_fill_(self, mask: TensorLike, value: Union[float, "Tensor"]) -> Tensor:
        """In place: ``value`` where the bool ``mask`` is True (``x.masked_fill_(pad, -inf)``)."""
        return _ops.inplace._pointwise_(self, "masked_fill_", lambda t, m, v: _ops.indexing.masked_fill(
            t, m, v), mask, value)

    def fmod_(self, other: TensorLike) -> Tensor:
        """In place: :meth:`fmod`."""
        return _ops.inplace._pointwise_(self, "fmod_", _ops.elementwise.fmod, other)

    def remainder_(self, other: TensorLike) -> Tensor:
        """In place: :meth:`remainder` (``%=``)."""
        return _ops.inplace._pointwise_(self, "remainder_", _ops.elementwise.remainder, other)

    def log1p_(self) -> Tensor:
        """In place: :meth:`log1p`."""
        return _ops.inplace._pointwise_(self, "log1p_", _ops.math_more.log1p)

    def expm1_(self) -> Tensor:
        """In place: :meth:`expm1`."""
        return _ops.inplace._pointwise_(self, "expm1_", _ops.math_more.expm1)

    def nan_to_num_(self, nan: float = 0.0, posinf: Optional[float] = None,
                    neginf: Optional[float] = None) -> Tensor:
        """In place: :meth:`nan_to_num`."""
        return _ops.inplace._pointwise_(self, "nan_to_num_", lambda t: _ops.math_more.nan_to_num(
            t, nan, posinf, neginf))

    def pow_(self, exponent: TensorLike) -> Tensor:
        """In place: ``self ** exponent`` (``**=``)."""
        return _ops.inplace._pointwise_(self, "pow_", _ops.elementwise.pow, exponent)

    def floor_divide_(self, other: TensorLike) -> Tensor:
        """In place: :meth:`__floordiv__` (``//=``)."""
        return _ops.inplace._pointwise_(self, "floor_divide_", _ops.elementwise.floor_divide, other)

    def bitwise_and_(self, other: TensorLike) -> Tensor:
        """In place: ``self & other`` (``&=``)."""
        return _ops.inplace._pointwise_(self, "bitwise_and_", _ops.logical.bitwise_and, other)

    def bitwise_or_(self, other: TensorLike) -> Tensor:
        """In place: ``self | other`` (``|=``)."""
        return _ops.inplace._pointwise_(self, "bitwise_or_", _ops.logical.bitwise_or, other)

    def bitwise_xor_(self, other: TensorLike) -> Tensor:
        """In place: ``self ^ other`` (``^=``)."""
        return _ops.inplace._pointwise_(self, "bitwise_xor_", _ops.logical.bitwise_xor, other)

    # without these Python would rebind the name to a new tensor: the original (a parameter
    # updated under no_grad, a mask shared elsewhere) silently unchanged
    __ipow__, __imod__, __ifloordiv__ = pow_, remainder_, floor_divide_
    __iand__, __ior__, __ixor__ = bitwise_and_, bitwise_or_, bitwise_xor_

    def addcmul_(self, tensor1: TensorLike, tensor2: TensorLike, *,
                 value: Union[int, float] = 1) -> Tensor:
        """In place: ``self += value * tensor1 * tensor2``."""
        return _ops.inplace._pointwise_(self, "addcmul_", lambda t, a, b: _ops.pointwise.addcmul(
            t, a, b, value=value), tensor1, tensor2)

    def addcdiv_(self, tensor1: TensorLike, tensor2: TensorLike, *,
                 value: Union[int, float] = 1) -> Tensor:
        """In place: ``self += value * tensor1 / tensor2``."""
        return _ops.inplace._pointwise_(self, "addcdiv_", lambda t, a, b: _ops.pointwise.addcdiv(
            t, a, b, value=value), tensor1, tensor2)

    def lerp_(self, end: TensorLike, weight: Union[float, TensorLike]) -> Tensor:
        """In place: ``self += weight * (end - self)``."""
        return _ops.inplace._pointwise_(self, "lerp_", _ops.pointwise.lerp, end, weight)

    def trunc(self) -> Tensor:
        """Elementwise rounding towards zero (gradient 0)."""
        return _ops.pointwise.trunc(self)

    fix = trunc

    def frac(self) -> Tensor:
        """Elementwise fractional part ``self - self.trunc()``."""
        return _ops.pointwise.frac(self)

    def addcmul(self, tensor1: TensorLike, tensor2: TensorLike, *,
                value: Union[int, float] = 1) -> Tensor:
        """``self + value * tensor1 * tensor2``."""
        return _ops.pointwise.addcmul(self, tensor1, tensor2, value=value)

    def addcdiv(self, tensor1: TensorLike, tensor2: TensorLike, *,
                value: Union[int, float] = 1) -> Tensor:
        """``self + value * tensor1 / tensor2``."""
        return _ops.pointwise.addcdiv(self, tensor1, tensor2, value=value)

    def lerp(self, end: TensorLike, weight: Union[float, TensorLike]) -> Tensor:
        """``self + weight * (end - self)``."""
        return _ops.pointwise.lerp(self, end, weight)

    def clamp_min(self, min: float) -> Tensor:
        """Values below ``min`` set to ``min``."""
        return _ops.elementwise.clip(self, min, None)

    def clamp_max(self, max: float) -> Tensor:
        """Values above ``max`` set to ``max``."""
        return _ops.elementwise.clip(self, None, max)

    # -- reductions (minipool.ops.reduce) --------------------------------------
    def sum(self, dim: Dims = None, keepdim: bool = False, *,
            dtype: Optional[DTypeLike] = None) -> Tensor:
        """Sum over ``dim`` (all axes when None), in ``dtype`` when given (cast first, as PyTorch)."""
        return _ops.reduce.sum(self, dim, keepdim, dtype=dtype)

    def mean(self, dim: Dims = None, keepdim: bool = False, *,
             dtype: Optional[DTypeLike] = None) -> Tensor:
        """Mean over ``dim`` (all axes when None); an integer tensor needs ``dtype``, as in PyTorch."""
        return _ops.reduce.mean(self, dim, keepdim, dtype=dtype)

    def max(self, dim: Dims = None, keepdim: bool = False) -> PoolOutput:
        """The largest value, or (values, indices) along an int ``dim``, as ``torch.max``."""
        return _ops.reduce.max(self, dim, keepdim)

    def min(self, dim: Dims = None, keepdim: bool = False) -> PoolOutput:
        """The smallest value, or (values, indices) along an int ``dim``, as ``torch.min``."""
        return _ops.reduce.min(self, dim, keepdim)

    def median(self, dim: Optional[int] = None, keepdim: bool = False) -> PoolOutput:
        """The lower median, or (values, indices) along an int ``dim``, as ``torch.median``."""
        return _ops.reduce.median(self, dim, keepdim)

    def nansum(self, dim: Dims = None, keepdim: bool = False, *,
               dtype: Optional[DTypeLike] = None) -> Tensor:
        """The sum with NaN read as 0, as ``torch.nansum``."""
        return _ops.reduce.nansum(self, dim, keepdim, dtype=dtype)

    def unique(self, sorted: bool = True, return_inverse: bool = False,
               return_counts: bool = False, dim: Optional[int] = None) -> Any:
        """The distinct values (see ``mp.unique``)."""
        return _ops.discrete.unique(self, sorted, return_inverse, return_counts, dim)

    def nanmean(self, dim: Dims = None, keepdim: bool = False, *,
                dtype: Optional[DTypeLike] = None) -> Tensor:
        """The mean of the values that are not NaN, as ``torch.nanmean``."""
        return _ops.reduce.nanmean(self, dim, keepdim, dtype=dtype)

    def amax(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The largest values over ``dim``; ties share the gradient."""
        return _ops.reduce.amax(self, dim, keepdim)

    def amin(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The smallest values over ``dim``; ties share the gradient."""
        return _ops.reduce.amin(self, dim, keepdim)

    def argmax(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """int64 index of the largest value (of the flattened tensor when ``dim`` is None)."""
        return _ops.reduce.argmax(self, dim, keepdim)

    def argmin(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """int64 index of the smallest value (of the flattened tensor when ``dim`` is None)."""
        return _ops.reduce.argmin(self, dim, keepdim)

    def maximum(self, other: TensorLike) -> Tensor:
        """Elementwise larger of self and ``other`` (NaN wins)."""
        return _ops.reduce.maximum(self, other)

    def minimum(self, other: TensorLike) -> Tensor:
        """Elementwise smaller of self and ``other`` (NaN wins)."""
        return _ops.reduce.minimum(self, other)

    def std(self, dim: Dims = None, unbiased: Optional[bool] = None, keepdim: bool = False, *,
            correction: Optional[float] = None) -> Tensor:
        """Standard deviation over ``dim`` (Bessel's correction by default, as PyTorch)."""
        return _ops.reduce.std(self, dim, unbiased, keepdim, correction=correction)

    def var(self, dim: Dims = None, unbiased: Optional[bool] = None, keepdim: bool = False, *,
            correction: Optional[float] = None) -> Tensor:
        """Variance over ``dim`` (Bessel's correction by default, as PyTorch)."""
        return _ops.reduce.var(self, dim, unbiased, keepdim, correction=correction)

    def softmax(self, dim: int, dtype: Optional[DTypeLike] = None) -> Tensor:
        """Softmax along ``dim`` (required, as in PyTorch's ``Tensor.softmax``)."""
        return _ops.reduce.softmax(self, dim, dtype=dtype)

    def log_softmax(self, dim: int, dtype: Optional[DTypeLike] = None) -> Tensor:
        """Log of the softmax along ``dim`` (required, as in PyTorch), computed stably."""
        return _ops.reduce.log_softmax(self, dim, dtype=dtype)

    def logsumexp(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """log(sum(exp(self))) over ``dim``, computed stably."""
        return _ops.reduce.logsumexp(self, dim, keepdim)

    def prod(self, dim: Optional[int] = None, keepdim: bool = False, *,
             dtype: Optional[DTypeLike] = None) -> Tensor:
        """Product over ``dim`` (an int, or None for all)."""
        return _ops.reduce.prod(self, dim, keepdim, dtype=dtype)

    def cumsum(self, dim: int, *, dtype: Optional[DTypeLike] = None) -> Tensor:
        """Running sum along ``dim``."""
        return _ops.reduce.cumsum(self, dim, dtype=dtype)

    def norm(self, p: Union[str, float] = "fro", dim: Dims = None, keepdim: bool = False,
             dtype: Optional[DTypeLike] = None) -> Tensor:
        """The p-norm over ``dim`` ('fro' and 2 are the Euclidean norm; 1, inf, -inf, 0, any p)."""
        return _ops.reduce.norm(self, p, dim, keepdim, dtype)

    def all(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """Whether every element is non-zero, over ``dim``."""
        return _ops.reduce.all(self, dim, keepdim)

    def any(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """Whether some element is non-zero, over ``dim``."""
        return _ops.reduce.any(self, dim, keepdim)

    # -- indexing and sorting (minipool.ops.indexing) ---------------------------
    def gather(self, dim: int, index: TensorLike) -> Tensor:
        """Values picked along ``dim`` by ``index``."""
        return _ops.indexing.gather(self, dim, index)

    def where(self, condition: TensorLike, other: TensorLike) -> Tensor:
        """``self`` where ``condition`` holds, else ``other`` (``mp.where(condition, self,
        other)``, as ``Tensor.where``)."""
        return _ops.elementwise.where(condition, self, other)

    def masked_fill(self, mask: TensorLike, value: Union[float, "Tensor"]) -> Tensor:
        """``value`` where the bool ``mask`` is True, self elsewhere."""
        return _ops.indexing.masked_fill(self, mask, value)

    def nonzero(self, *, as_tuple: bool = False) -> Union[Tensor, Tuple[Tensor, ...]]:
        """The indices of the non-zero elements."""
        return _ops.indexing.nonzero(self, as_tuple=as_tuple)

    def sort(self, dim: int = -1, descending: bool = False, *,
             stable: Optional[bool] = None) -> Tuple[Tensor, Tensor]:
        """``(values, indices)`` sorted along ``dim`` (stable; NaN largest)."""
        return _ops.indexing.sort(self, dim, descending, stable=stable)

    def argsort(self, dim: int = -1, descending: bool = False, *,
                stable: Optional[bool] = None) -> Tensor:
        """The indices that sort along ``dim``."""
        return _ops.indexing.argsort(self, dim, descending, stable=stable)

    def topk(self, k: int, dim: int = -1, largest: bool = True,
             sorted: bool = True) -> Tuple[Tensor, Tensor]:
        """``(values, indices)`` of the ``k`` largest (or smallest) along ``dim``."""
        return _ops.indexing.topk(self, k, dim, largest, sorted)

    # -- scatter, index_*, masks, triangles (minipool.ops.indexing_more) -------
    def scatter(self, dim: int, index: TensorLike, src: Any = None, value: Any = None, *,
                reduce: Optional[str] = None) -> Tensor:
        """A copy with ``src`` (or the number ``value``) written at ``index`` along ``dim``."""
        return _ops.indexing_more.scatter(self, dim, index, src, value, reduce=reduce)

    def scatter_(self, dim: int, index: TensorLike, src: Any = None, value: Any = None, *,
                 reduce: Optional[str] = None) -> Tensor:
        """In place: :meth:`scatter`."""
        return _ops.indexing_more.run_in_place(
            self, "scatter_", lambda t, s: _ops.indexing_more.scatter(t, dim, index, s, reduce=reduce),
            src if value is None else value)

    def scatter_add(self, dim: int, index: TensorLike, src: Tensor) -> Tensor:
        """A copy with ``src`` added at ``index`` along ``dim``."""
        return _ops.indexing_more.scatter_add(self, dim, index, src)

    def scatter_add_(self, dim: int, index: TensorLike, src: Tensor) -> Tensor:
        """In place: :meth:`scatter_add`."""
        return _ops.indexing_more.run_in_place(
            self, "scatter_add_", lambda t, s: _ops.indexing_more.scatter_add(t, dim, index, s), src)

    def scatter_reduce(self, dim: int, index: TensorLike, src: Tensor, reduce: str, *,
                       include_self: bool = True) -> Tensor:
        """A copy where each indexed cell becomes the ``reduce`` of the src values landing there."""
        return _ops.indexing_more.scatter_reduce(self, dim, index, src, reduce,
                                                 include_self=include_self)

    def scatter_reduce_(self, dim: int, index: TensorLike, src: Tensor, reduce: str, *,
                        include_self: bool = True) -> Tensor:
        """In place: :meth:`scatter_reduce`."""
        return _ops.indexing_more.run_in_place(
            self, "scatter_reduce_", lambda t, s: _ops.indexing_more.scatter_reduce(
                t, dim, index, s, reduce, include_self=include_self), src)

    def index_select(self, dim: int, index: TensorLike) -> Tensor:
        """The slices along ``dim`` at the integer vector ``index``."""
        return _ops.indexing_more.index_select(self, dim, index)

    def index_add(self, dim: int, index: TensorLike, source: TensorLike, *,
                  alpha: float = 1) -> Tensor:
        """A copy with ``alpha * source`` added into the slices at ``index`` along ``dim``."""
        return _ops.indexing_more.index_add(self, dim, index, source, alpha=alpha)

    def index_add_(self, dim: int, index: TensorLike, source: TensorLike, *,
                   alpha: float = 1) -> Tensor:
        """In place: :meth:`index_add`."""
        return _ops.indexing_more.run_in_place(
            self, "index_add_", lambda t, s: _ops.indexing_more.index_add(t, dim, index, s, alpha=alpha),
            source)

    def index_copy(self, dim: int, index: TensorLike, source: TensorLike) -> Tensor:
        """A copy with the slices at ``index`` along ``dim`` replaced by ``source``'s."""
        return _ops.indexing_more.index_copy(self, dim, index, source)

    def index_copy_(self, dim: int, index: TensorLike, source: TensorLike) -> Tensor:
        """In place: :meth:`index_copy`."""
        return _ops.indexing_more.run_in_place(
            self, "index_copy_", lambda t, s: _ops.indexing_more.index_copy(t, dim, index, s), source)

    def index_fill(self, dim: int, index: TensorLike, value: Any) -> Tensor:
        """A copy with the slices at ``index`` along ``dim`` set to ``value``."""
        return _ops.indexing_more.index_fill(self, dim, index, value)

    def index_fill_(self, dim: int, index: TensorLike, value: Any) -> Tensor:
        """In place: :meth:`index_fill`."""
        return _ops.indexing_more.run_in_place(
            self, "index_fill_", lambda t, v: _ops.indexing_more.index_fill(t, dim, index, v), value)

    def masked_select(self, mask: TensorLike) -> Tensor:
        """The elements where the bool ``mask`` is true, as a 1-d tensor."""
        return _ops.indexing_more.masked_select(self, mask)

    def take_along_dim(self, indices: TensorLike, dim: Optional[int] = None) -> Tensor:
        """Values picked along ``dim`` by ``indices`` (other dims broadcast)."""
        return _ops.indexing_more.take_along_dim(self, indices, dim)

    def repeat_interleave(self, repeats: Any, dim: Optional[int] = None, *,
                          output_size: Optional[int] = None) -> Tensor:
        """Each element (or slice along ``dim``) repeated ``repeats`` times in place."""
        return _ops.indexing_more.repeat_interleave(self, repeats, dim, output_size=output_size)

    def unbind(self, dim: int = 0) -> Tuple[Tensor, ...]:
        """The slices along ``dim``, that dimension removed."""
        return _ops.indexing_more.unbind(self, dim)

    def tril(self, diagonal: int = 0) -> Tensor:
        """The lower triangle of the last two dims, the rest 0."""
        return _ops.indexing_more.tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Tensor:
        """The upper triangle of the last two dims, the rest 0."""
        return _ops.indexing_more.triu(self, diagonal)

    def tril_(self, diagonal: int = 0) -> Tensor:
        """In place: :meth:`tril`."""
        return _ops.indexing_more.run_in_place(
            self, "tril_", lambda t: _ops.indexing_more.tril(t, diagonal))

    def triu_(self, diagonal: int = 0) -> Tensor:
        """In place: :meth:`triu`."""
        return _ops.indexing_more.run_in_place(
            self, "triu_", lambda t: _ops.indexing_more.triu(t, diagonal))

    def count_nonzero(self, dim: Dims = None) -> Tensor:
        """The number of non-zero elements over ``dim`` (int64)."""
        return _ops.indexing_more.count_nonzero(self, dim)

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        """Elements ``start .. start + length - 1`` along ``dim``."""
        return _ops.indexing_more.narrow(self, dim, start, length)

    def movedim(self, source: Union[int, Sequence[int]], destination: Union[int, Sequence[int]]) -> Tensor:
        """The dims ``source`` moved to ``destination``."""
        return _ops.indexing_more.movedim(self, source, destination)

    moveaxis = movedim

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
        """The diagonal of the planes (dim1, dim2), ``offset`` above or below it."""
        return _ops.indexing_more.diagonal(self, offset, dim1, dim2)

    def trace(self) -> Tensor:
        """The sum of the main diagonal of a 2-d tensor."""
        return _ops.indexing_more.trace(self)

    def bernoulli(self, p: Optional[float] = None, *, generator: Any = None) -> Tensor:
        """1 with probability self (or ``p``) elementwise, else 0 (see ``mp.bernoulli``)."""
        return _ops.sampling.bernoulli(self, p, generator=generator)

    # -- shape and copies (minipool.ops.shape, minipool.ops.inplace) -----------
    def reshape(self, *shape: Union[int, Sequence[int]]) -> Tensor:
        """The same values in a new shape (one entry may be -1)."""
        return _ops.shape.reshape(self, *shape)

    def view(self, *shape: Union[int, Sequence[int]]) -> Tensor:
        """The same memory in a new shape (one entry may be -1); a RuntimeError where that
        would need a copy (then :meth:`reshape`), as PyTorch."""
        return _ops.shape.view(self, *shape)

    def permute(self, *dims: Union[int, Sequence[int]]) -> Tensor:
        """The axes in the order ``dims``."""
        return _ops.shape.permute(self, *dims)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        """Axes ``dim0`` and ``dim1`` swapped."""
        return _ops.shape.transpose(self, dim0, dim1)

    @property
    def T(self) -> Tensor:
        """The axes in reverse order (a matrix's transpose)."""
        return _ops.shape.permute(self, tuple(reversed(range(self._data.ndim))))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Axes ``start_dim`` to ``end_dim`` merged into one."""
        return _ops.shape.flatten(self, start_dim, end_dim)

    def unflatten(self, dim: int, sizes: Sequence[int]) -> Tensor:
        """Axis ``dim`` split into ``sizes`` (one may be -1), as ``Tensor.unflatten``."""
        return _ops.shape.unflatten(self, dim, sizes)

    def squeeze(self, dim: Dims = None) -> Tensor:
        """Size-1 axes removed (only ``dim`` when given)."""
        return _ops.shape.squeeze(self, dim)

    def unsqueeze(self, dim: int) -> Tensor:
        """A size-1 axis inserted at ``dim``."""
        return _ops.shape.unsqueeze(self, dim)

    def broadcast_to(self, shape: Sequence[int]) -> Tensor:
        """A broadcast view of ``shape`` (NumPy's rules)."""
        return _ops.shape.broadcast_to(self, shape)

    def expand(self, *sizes: Union[int, Sequence[int]]) -> Tensor:
        """A broadcast view of ``sizes``; -1 keeps that dimension's size, as in PyTorch."""
        return _ops.shape.expand(self, *sizes)

    def flip(self, *dims: Union[int, Sequence[int]]) -> Tensor:
        """A copy reversed along ``dims`` (``x.flip(3)`` or ``x.flip([2, 3])``), as torch."""
        return _ops.shape.flip(self, dims[0] if len(dims) == 1 else dims)

    def roll(self, shifts: Union[int, Sequence[int]],
             dims: Union[int, Sequence[int], None] = None) -> Tensor:
        """Elements shifted cyclically along ``dims`` (see ``mp.roll``)."""
        return _ops.shape.roll(self, shifts, dims)

    @property
    def mT(self) -> Tensor:
        """The last two dims swapped (a batch of matrices transposed); needs 2 dims or more."""
        if self._data.ndim < 2:
            raise ValueError(f"mT: needs a tensor of at least 2 dims, got shape {self.shape}")
        return _ops.shape.transpose(self, -2, -1)

    def normal_(self, mean: float = 0.0, std: float = 1.0, *,
                generator: Any = None) -> Tensor:
        """Fill in place with N(mean, std**2) samples, as ``Tensor.normal_`` (e.g.
        ``m.weight.data.normal_(0.0, 0.02)``); ``generator`` as in ``mp.randn``.
        ``nn.init.normal_`` is this, without the requires-grad check."""
        self._check_random_fill("normal_")
        if std < 0:
            raise ValueError(f"normal_: std must be >= 0, got {std}")
        self._data[...] = _random.resolve(generator, "normal_").normal(mean, std, self.shape)
        return self

    def uniform_(self, *bounds: float, generator: Any = None, **named: float) -> Tensor:
        """Fill in place with U(from, to) samples (default 0, 1), as ``Tensor.uniform_(from, to)``
        (``from`` is a Python keyword: give the bounds by position, or as ``**{"from": a}``).
        ``nn.init.uniform_`` is this, without the requires-grad check."""
        unknown = set(named) - {"from", "to"}
        if unknown or len(bounds) > 2:
            raise TypeError(f"uniform_: takes (from=0, to=1), got {len(bounds)} positional and "
                            f"{sorted(named)} keyword bounds")
        low, high = (list(bounds) + [None, None])[:2]
        low = named.get("from", 0.0 if low is None else low)
        high = named.get("to", 1.0 if high is None else high)
        self._check_random_fill("uniform_")
        if not low <= high:
            raise ValueError(f"uniform_: needs from <= to, got from={low}, to={high}")
        self._data[...] = _random.resolve(generator, "uniform_").uniform(low, high, self.shape)
        return self

    def _check_random_fill(self, op):
        if self._data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: tensor must be float32 or float64, got {self._data.dtype}")
        if self._requires_grad and _grad_mode.enabled:  # PyTorch refuses it too
            raise RuntimeError(f"{op}: a tensor that requires grad cannot be filled in place while "
                               f"gradients are recorded; wrap it in `with mp.no_grad():` (or use "
                               f"nn.init.{op}, which does)")

    def expand_as(self, other: Tensor) -> Tensor:
        """``self.expand(other.shape)``."""
        return _ops.shape.expand(self, tuple(other.shape))

    def view_as(self, other: Tensor) -> Tensor:
        """``self.view(other.shape)``."""
        return self.view(tuple(other.shape))

    def is_floating_point(self) -> "builtins.bool":
        """True for float16/32/64 tensors."""
        return self._data.dtype.kind == "f"

    def clone(self) -> Tensor:
        """A differentiable copy that owns its memory."""
        return _ops.inplace.clone(self)

    def contiguous(self, memory_format: Any = None) -> Tensor:
        """Self when already C-contiguous, else a differentiable contiguous copy;
        ``memory_format=mp.channels_last``: a 4-d tensor with its elements in NHWC order."""
        if memory_format is None:
            return _ops.inplace.contiguous(self)
        from minipool import _memory_format
        return _memory_format.contiguous(self, memory_format)

    def t(self) -> Tensor:
        """A matrix's transpose (0-d and 1-d tensors unchanged)."""
        return _ops.shape.t(self)

    def repeat(self, *sizes: Union[int, Sequence[int]]) -> Tensor:
        """Tiled ``sizes`` times along each axis."""
        return _ops.shape.repeat(self, *sizes)

    def split(self, split_size: Union[int, Sequence[int]], dim: int = 0) -> Tuple[Tensor, ...]:
        """Pieces of ``split_size`` along ``dim`` (or of the listed sizes)."""
        return _ops.shape.split(self, split_size, dim)

    def tensor_split(self, indices_or_sections: Union[int, Sequence[int]],
                     dim: int = 0) -> Tuple[Tensor, ...]:
        """Pieces as even as can be, or cut at indices (see ``mp.tensor_split``)."""
        return _ops.shape.tensor_split(self, indices_or_sections, dim)

    def chunk(self, chunks: int, dim: int = 0) -> Tuple[Tensor, ...]:
        """``chunks`` nearly equal pieces along ``dim``."""
        return _ops.shape.chunk(self, chunks, dim)

    def new_zeros(self, *size: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
                  requires_grad: "builtins.bool" = False) -> Tensor:
        """Zeros of ``size``, with this tensor's dtype unless ``dtype`` is given.

        >>> import minipool as mp
        >>> mp.tensor([1, 2]).new_zeros(2, 3).dtype
        dtype('int64')
        """
        return self._new(size, 0, dtype, requires_grad)

    def new_ones(self, *size: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
                 requires_grad: "builtins.bool" = False) -> Tensor:
        """Ones of ``size``, with this tensor's dtype unless ``dtype`` is given."""
        return self._new(size, 1, dtype, requires_grad)

    def new_full(self, size: Sequence[int], fill_value: float, *,
                 dtype: Optional[DTypeLike] = None, requires_grad: "builtins.bool" = False) -> Tensor:
        """``size`` filled with ``fill_value``, with this tensor's dtype unless ``dtype`` is given.

        >>> import minipool as mp
        >>> mp.zeros(1).new_full((2,), 7.0).numpy()
        array([7., 7.], dtype=float32)
        """
        return self._new((size,), fill_value, dtype, requires_grad)

    def new_empty(self, *size: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
                  requires_grad: "builtins.bool" = False) -> Tensor:
        """An uninitialised tensor of ``size``, with this tensor's dtype unless ``dtype`` is given.

        >>> import minipool as mp
        >>> mp.tensor([1, 2]).new_empty((2, 3)).shape
        (2, 3)
        """
        return self._new(size, None, dtype, requires_grad)

    def new_tensor(self, data: Any, dtype: Optional[DTypeLike] = None,
                   requires_grad: "builtins.bool" = False) -> Tensor:
        """A new tensor holding a copy of ``data``, in this tensor's dtype unless ``dtype`` is
        given (a float ``data`` on an integer tensor is truncated, as in PyTorch); outside any graph.

        >>> import minipool as mp
        >>> mp.tensor([1, 2]).new_tensor([3.7, -1.5]).tolist()
        [3, -1]
        """
        if isinstance(data, Tensor):
            data = data._data
        made = Tensor(np.array(data, dtype=self.dtype if dtype is None else np.dtype(dtype)))
        return made.requires_grad_(requires_grad)

    def _new(self, size, value, dtype, requires_grad):
        if len(size) == 1 and isinstance(size[0], (tuple, list)):
            size = tuple(size[0])
        dtype = self.dtype if dtype is None else dtype
        made = empty(size, dtype=dtype) if value is None else full(size, value, dtype=dtype)
        return made.requires_grad_(requires_grad)

    def half(self) -> Tensor:
        """Cast to float16.  minipool does not differentiate float16 tensors: the result carries
        no gradient (PyTorch's does); cast back with ``.float()`` for training."""
        with np.errstate(over="ignore"):  # beyond 65504 is inf, quietly as in PyTorch
            return self.astype(np.float16)

    # PyTorch's other names for the same ops
    multiply, divide, true_divide, subtract, negative, absolute = mul, div, div, sub, neg, abs
    multiply_, divide_, true_divide_, subtract_, negative_, absolute_ = mul_, div_, div_, sub_, neg_, abs_
    fix_ = trunc_
    greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
    swapaxes = swapdims = transpose

    def reshape_as(self, other: Tensor) -> Tensor:
        """``self.reshape(other.shape)``.

        >>> import minipool as mp
        >>> mp.arange(6).reshape_as(mp.zeros(2, 3)).shape
        (2, 3)
        """
        return self.reshape(other.shape)

    def stride(self, dim: Optional[int] = None) -> Union[Tuple[int, ...], int]:
        """Steps between elements along each dimension, in elements (NumPy's ``strides`` are
        in bytes), or along ``dim``.

        >>> import minipool as mp
        >>> mp.zeros(2, 3).stride(), mp.zeros(2, 3).t().stride(0)
        ((3, 1), 1)
        """
        steps = tuple(s // self._data.itemsize for s in self._data.strides)
        return steps if dim is None else steps[_dim_index(dim, self._data.ndim, "stride")]

    def byte(self) -> Tensor:
        """Cast to uint8 (no gradient)."""
        return self.astype(np.uint8)

    def char(self) -> Tensor:
        """Cast to int8 (no gradient)."""
        return self.astype(np.int8)

    def short(self) -> Tensor:
        """Cast to int16 (no gradient)."""
        return self.astype(np.int16)

    def data_ptr(self) -> int:
        """The address of the first element (NumPy's ``__array_interface__`` data pointer)."""
        return self._data.__array_interface__["data"][0]

    def is_signed(self) -> "builtins.bool":
        """Whether the dtype holds negative numbers (floats and signed integers)."""
        return self._data.dtype.kind in "if"

    def is_complex(self) -> "builtins.bool":
        """False: minipool has no complex tensors."""
        return False

    def get_device(self) -> int:
        """-1, PyTorch's number for the CPU (minipool's only device)."""
        return -1

    @property
    def is_cpu(self) -> "builtins.bool":
        return True

    @property
    def retains_grad(self) -> "builtins.bool":
        """Whether ``retain_grad()`` was called on this non-leaf tensor (False for a leaf)."""
        ctx = self._ctx
        return ctx is not None and ctx.__dict__.get("_retained") is not None

    # Named after Python types, so defined last: the class body below this line
    # would see these methods under those names.
    def float(self) -> Tensor:
        """Cast to float32 (differentiable)."""
        return self.astype(np.float32)

    def double(self) -> Tensor:
        """Cast to float64 (differentiable)."""
        return self.astype(np.float64)

    def long(self) -> Tensor:
        """Cast to int64 (truncating toward zero, as PyTorch; no gradient)."""
        return self.astype(np.int64)

    def int(self) -> Tensor:
        """Cast to int32 (no gradient)."""
        return self.astype(np.int32)

    def bool(self) -> Tensor:
        """Cast to bool (nonzero is True; no gradient)."""
        return self.astype(np.bool_)

    def type(self, dtype: Optional[Union[DTypeLike, str]] = None,
             non_blocking: bool = False) -> Union[str, Tensor]:
        """With no argument, the type's name in PyTorch's style ('minipool.FloatTensor' for
        float32, 'minipool.LongTensor' for int64, ...); with a dtype or such a name
        ('torch.DoubleTensor' works too) this tensor cast to it, self if it already is.

        >>> import minipool as mp
        >>> x = mp.zeros(2); x.type(), x.type(mp.float64).dtype, x.type("torch.LongTensor").type()
        ('minipool.FloatTensor', dtype('float64'), 'minipool.LongTensor')
        """
        if dtype is None:
            name = _TENSOR_TYPE_NAMES.get(self._data.dtype)
            if name is None:  # float16 and uint16/32/64 have no torch CPU tensor type name
                return f"minipool.Tensor[{self._data.dtype}]"
            return f"minipool.{name}"
        if isinstance(dtype, str) and dtype.endswith("Tensor"):
            by_name = {v: k for k, v in _TENSOR_TYPE_NAMES.items()}
            wanted = by_name.get(dtype.rsplit(".", 1)[-1])
            if wanted is None or dtype.count(".") != 1 or dtype.split(".")[0] not in ("torch", "minipool"):
                raise ValueError(f"type: unknown tensor type {dtype!r}; give a dtype (e.g. "
                                 f"mp.float64) or one of {sorted('minipool.' + n for n in by_name)}")
            dtype = wanted
        dtype = _to_dtype(dtype, "type")
        return self if dtype == self._data.dtype else self.astype(dtype)


# Tensor.type()'s names: PyTorch's legacy CPU tensor types, by dtype
_TENSOR_TYPE_NAMES = {np.dtype(t): n for t, n in (
    (np.float32, "FloatTensor"), (np.float64, "DoubleTensor"), (np.float16, "HalfTensor"),
    (np.int64, "LongTensor"), (np.int32, "IntTensor"), (np.int16, "ShortTensor"),
    (np.int8, "CharTensor"), (np.uint8, "ByteTensor"), (np.bool_, "BoolTensor"))}


for _name, _hint in _MISSING_METHODS.items():
    setattr(Tensor, _name, _Missing(_name, _hint))


class Size(tuple):
    """A tensor's shape, as ``Tensor.size()`` returns it: a tuple of ints.

    >>> Size([2, 3]).numel()
    6
    """

    def __repr__(self):
        return f"Size({list(self)})"

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


def _dim_index(dim, ndim, op):
    """``dim`` (negative counts from the end) as an index into a shape of ``ndim`` entries."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    n = ndim if ndim else 1  # a 0-d tensor accepts dim 0 and -1, as in PyTorch
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of "
                         f"[{-n}, {n - 1}], but got {dim})")
    return int(dim) % n


def _check_device(device, op):
    name = device if isinstance(device, str) else str(device)
    if name.split(":")[0] != "cpu":
        raise RuntimeError(f"{op}: minipool runs on the CPU only (NumPy arrays), so device "
                           f"{device!r} is not available; use 'cpu' or leave the device out")


def _to_dtype(value, op):
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{op}: {value!r} is neither a dtype nor a device") from None
    if dtype.kind not in "biuf":
        raise TypeError(f"{op}: unsupported dtype {dtype}: minipool tensors hold bool, integer "
                        "or floating-point numbers")
    return dtype


def _looks_like_device(value):
    if isinstance(value, str):
        try:
            np.dtype(value)
            return False
        except TypeError:
            return True
    return type(value).__name__ == "device"


def _parse_to_args(op, args, kwargs):
    """The dtype requested by ``to(...)`` (None to keep it), checking any device given."""
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise TypeError(f"{op}: unexpected keyword argument(s) {', '.join(kwargs)}")
    if len(args) > 2:
        raise TypeError(f"{op}: expected at most a device and a dtype, got {len(args)} arguments")
    for a in args:
        if isinstance(a, Tensor):
            dtype = a.dtype
        elif _looks_like_device(a):
            device = a
        elif isinstance(a, bool) or a is None:
            raise TypeError(f"{op}: {a!r} is neither a dtype nor a device")
        else:
            dtype = a
    if device is not None:
        _check_device(device, op)
    return None if dtype is None else _to_dtype(dtype, op)


# --------------------------------------------------------------------------- creation
def tensor(data: Any, dtype: Optional[DTypeLike] = None, requires_grad: bool = False) -> Tensor:
    """Make a Tensor from a list, scalar, array or Tensor (the data is copied).

    Python floats become the default dtype (float32; see :func:`set_default_dtype`); NumPy
    arrays keep their dtype.

    >>> import minipool as mp
    >>> mp.tensor([1.5, 2.0]).dtype
    dtype('float32')
    """
    arr = _as_array(data, dtype)
    return Tensor(arr.copy(), requires_grad=requires_grad)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    # a tensor entry counts as the int it stands for (mp.zeros(labels.max() + 1)), by the rule
    # of Tensor.__index__, as in PyTorch
    shape = tuple(s.__index__() if isinstance(s, Tensor) else s for s in shape)
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"shape entries must be non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def zeros(*shape: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
          requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (the default float dtype unless ``dtype`` is given).

    >>> import minipool as mp
    >>> mp.zeros(2, 3).shape, mp.zeros((2,), dtype=mp.int64).tolist()
    ((2, 3), [0, 0])
    """
    return Tensor(np.zeros(_shape_arg(shape), dtype=_dtype_of(dtype, _default_dtype)), requires_grad=requires_grad)


def ones(*shape: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
         requires_grad: bool = False) -> Tensor:
    """A tensor of ones (the default float dtype unless ``dtype`` is given).

    >>> import minipool as mp
    >>> mp.ones(2).tolist()
    [1.0, 1.0]
    """
    return Tensor(np.ones(_shape_arg(shape), dtype=_dtype_of(dtype, _default_dtype)), requires_grad=requires_grad)


def full(shape: Union[int, Sequence[int]], fill_value: Any, dtype: Optional[DTypeLike] = None,
         requires_grad: bool = False) -> Tensor:
    """``shape`` filled with ``fill_value``; without ``dtype`` the type follows the value, as
    in PyTorch: bool -> bool, int -> int64, float -> the default float dtype.

    >>> import minipool as mp
    >>> mp.full((2,), 7).tolist(), mp.full((2,), 7).dtype
    ([7, 7], dtype('int64'))
    """
    if dtype is None:
        value = fill_value.item() if isinstance(fill_value, (Tensor, np.generic)) else fill_value
        dtype = (np.bool_ if isinstance(value, (bool, np.bool_)) else
                 np.int64 if isinstance(value, int) else _default_dtype)
    return Tensor(np.full(_shape_arg((shape,) if isinstance(shape, int) else (tuple(shape),)),
                          fill_value, dtype=_dtype_of(dtype, _default_dtype)), requires_grad=requires_grad)


def _like(where, t, dtype, float_only=False):
    """The shape and dtype (``input``'s unless given) of a ``*_like`` factory's result."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{where}: input must be a Tensor, got {type(t).__name__}")
    dtype = t.dtype if dtype is None else np.dtype(dtype)
    if float_only and dtype.kind != "f":
        raise TypeError(f"{where}: draws floats, so input (or dtype) must be a float tensor, got "
                        f"{dtype}; pass dtype=mp.float32")
    return t.shape, dtype


def randn_like(input: Tensor, *, dtype: Optional[DTypeLike] = None,
               requires_grad: bool = False) -> Tensor:
    """``randn`` of ``input``'s shape and dtype (from the shared generator, as PyTorch's).

    >>> import minipool as mp
    >>> mp.randn_like(mp.zeros(2, 3, dtype=mp.float64)).dtype
    dtype('float64')
    """
    shape, dtype = _like("randn_like", input, dtype, float_only=True)
    return randn(*shape, dtype=dtype, requires_grad=requires_grad)


def rand_like(input: Tensor, *, dtype: Optional[DTypeLike] = None,
              requires_grad: bool = False) -> Tensor:
    """``rand`` of ``input``'s shape and dtype.

    >>> import minipool as mp
    >>> mp.rand_like(mp.zeros(2, 3)).shape
    (2, 3)
    """
    shape, dtype = _like("rand_like", input, dtype, float_only=True)
    return rand(*shape, dtype=dtype, requires_grad=requires_grad)


def full_like(input: Tensor, fill_value: Any, *, dtype: Optional[DTypeLike] = None,
              requires_grad: bool = False) -> Tensor:
    """``fill_value`` in ``input``'s shape and dtype (a float value truncates into an int dtype,
    as PyTorch).

    >>> import minipool as mp
    >>> mp.full_like(mp.zeros(2, dtype=mp.int64), 2.7).tolist()
    [2, 2]
    """
    shape, dtype = _like("full_like", input, dtype)
    return full(shape, fill_value, dtype=dtype, requires_grad=requires_grad)


def empty_like(input: Tensor, *, dtype: Optional[DTypeLike] = None,
               requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor of ``input``'s shape and dtype.

    >>> import minipool as mp
    >>> mp.empty_like(mp.zeros(2, 3)).shape
    (2, 3)
    """
    shape, dtype = _like("empty_like", input, dtype)
    return empty(*shape, dtype=dtype, requires_grad=requires_grad)


def numel(input: Tensor) -> int:
    """The number of elements of ``input``, as ``torch.numel``.

    >>> import minipool as mp
    >>> mp.numel(mp.zeros(2, 3))
    6
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"numel: input must be a Tensor, got {type(input).__name__}")
    return input.numel()


def is_tensor(obj: Any) -> bool:
    """True when ``obj`` is a minipool Tensor (Parameters included), as ``torch.is_tensor``.

    >>> import minipool as mp
    >>> mp.is_tensor(mp.zeros(1)), mp.is_tensor([0.0])
    (True, False)
    """
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:
    """True when ``input`` is a float16/32/64 Tensor, as ``torch.is_floating_point``.

    >>> import minipool as mp
    >>> mp.is_floating_point(mp.zeros(1)), mp.is_floating_point(mp.arange(3))
    (True, False)
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"is_floating_point: input must be a Tensor, got {type(input).__name__}")
    return input.is_floating_point()


def finfo(type: Optional[DTypeLike] = None) -> np.finfo:
    """Machine limits of a float dtype (the default dtype if None): ``eps``, ``max``, ``min``,
    ``tiny``, ``bits``, ``resolution`` -- NumPy's ``finfo``, which has torch.finfo's fields.

    >>> import minipool as mp
    >>> mp.finfo().bits, mp.finfo(mp.float64).bits
    (32, 64)
    """
    return np.finfo(_default_dtype if type is None else type)


def iinfo(type: DTypeLike) -> np.iinfo:
    """Limits of an integer dtype (``min``, ``max``, ``bits``): NumPy's ``iinfo``.

    >>> import minipool as mp
    >>> int(mp.iinfo(mp.uint8).max)
    255
    """
    return np.iinfo(type)


def zeros_like(t: TensorLike, dtype: Optional[DTypeLike] = None,
               requires_grad: bool = False) -> Tensor:
    """Zeros of ``t``'s shape and dtype (``dtype`` overrides the dtype).

    >>> import minipool as mp
    >>> mp.zeros_like(mp.ones(2)).tolist()
    [0.0, 0.0]
    """
    return Tensor(np.zeros_like(np.asarray(t), dtype=dtype), requires_grad=requires_grad)


def ones_like(t: TensorLike, dtype: Optional[DTypeLike] = None,
              requires_grad: bool = False) -> Tensor:
    """Ones of ``t``'s shape and dtype (``dtype`` overrides the dtype).

    >>> import minipool as mp
    >>> mp.ones_like(mp.zeros(2, dtype=mp.int64)).tolist()
    [1, 1]
    """
    return Tensor(np.ones_like(np.asarray(t), dtype=dtype), requires_grad=requires_grad)


def _float_sample_dtype(name, dtype):
    """``dtype`` (the default float dtype if None) for rand/randn: a float one, as PyTorch
    refuses the others (the samples truncated to 0 or -1 before)."""
    dtype = _dtype_of(dtype, _default_dtype)
    if np.dtype(dtype).kind != "f":
        raise NotImplementedError(f"{name}: not implemented for dtype {np.dtype(dtype)} (as in "
                                  f"PyTorch): draw floats and convert, e.g. mp.randint(...) for "
                                  f"integers or mp.rand(...) < 0.5 for bools")
    return dtype


def randn(*shape: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
          requires_grad: bool = False, generator: Any = None) -> Tensor:
    """Standard normal samples; ``generator``: None (the default, see ``mp.manual_seed``), an int
    seed, an ``mp.Generator`` or a ``np.random.Generator``.

    >>> import minipool as mp
    >>> bool((mp.randn(3, generator=5) == mp.randn(3, generator=5)).all())
    True
    """
    rng = _random.resolve(generator, "randn")
    dtype = _float_sample_dtype("randn", dtype)
    return Tensor(rng.standard_normal(_shape_arg(shape)).astype(dtype), requires_grad=requires_grad)


def rand(*shape: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
         requires_grad: bool = False, generator: Any = None) -> Tensor:
    """Uniform samples in [0, 1); ``generator`` as in :func:`randn`.

    >>> import minipool as mp
    >>> x = mp.rand(2, 3, generator=0).numpy(); x.shape, bool(((x >= 0) & (x < 1)).all())
    ((2, 3), True)
    """
    rng = _random.resolve(generator, "rand")
    dtype = _float_sample_dtype("rand", dtype)
    return Tensor(rng.random(_shape_arg(shape)).astype(dtype), requires_grad=requires_grad)


def arange(start: float, stop: Optional[float] = None, step: float = 1,
           dtype: Optional[DTypeLike] = None, requires_grad: bool = False) -> Tensor:
    """Like ``np.arange``; float arguments give the default dtype (float32).

    >>> import minipool as mp
    >>> mp.arange(3).tolist(), mp.arange(0, 1, 0.5).tolist()
    ([0, 1, 2], [0.0, 0.5])
    """
    arr = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None and arr.dtype == np.float64:
        dtype = _default_dtype
    return Tensor(arr if dtype is None else arr.astype(dtype), requires_grad=requires_grad)



def _dtype_of(dtype, default):
    return np.dtype(default if dtype is None else dtype)


def randint(low: int, high: Optional[int] = None, size: Optional[Sequence[int]] = None, *,
            dtype: Optional[DTypeLike] = None, generator: Any = None,
            requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from [low, high) (``randint(high, size)`` starts at 0), int64
    unless ``dtype`` says otherwise; ``generator`` as in :func:`randn`.

    >>> import minipool as mp
    >>> x = mp.randint(0, 10, (3, 4), generator=0)
    >>> tuple(x.shape), x.dtype, bool((x.numpy() >= 0).all() and (x.numpy() < 10).all())
    ((3, 4), dtype('int64'), True)
    """
    if size is None:  # randint(high, size), PyTorch's two-argument form
        if high is None:
            raise TypeError("randint: give randint(low, high, size) or randint(high, size)")
        low, high, size = 0, low, high
    if isinstance(size, (int, np.integer)):
        raise TypeError(f"randint: size must be a tuple of ints, e.g. ({size},), got {size!r}")
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"randint: {name} must be an int, got {v!r}")
    if high <= low:
        raise ValueError(f"randint: high must be > low, got low={low}, high={high}")
    rng = _random.resolve(generator, "randint")
    values = rng.integers(low, high, _shape_arg(tuple(size)), dtype=np.int64)
    return Tensor(values.astype(_dtype_of(dtype, np.int64)), requires_grad=requires_grad)


def randperm(n: int, *, dtype: Optional[DTypeLike] = None, generator: Any = None) -> Tensor:
    """A random permutation of 0 .. n-1 (int64); ``generator`` as in :func:`randn`.

    >>> import minipool as mp
    >>> sorted(mp.randperm(5, generator=1).tolist())
    [0, 1, 2, 3, 4]
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"randperm: n must be an int >= 0, got {n!r}")
    perm = _random.resolve(generator, "randperm").permutation(int(n))
    return Tensor(perm.astype(_dtype_of(dtype, np.int64)))


def empty(*shape: Union[int, Sequence[int]], dtype: Optional[DTypeLike] = None,
          requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor, as in PyTorch: its values are whatever the memory held.

    >>> import minipool as mp
    >>> mp.empty(2, 3).shape
    (2, 3)
    """
    return Tensor(np.empty(_shape_arg(shape), dtype=_dtype_of(dtype, _default_dtype)), requires_grad=requires_grad)


def eye(n: int, m: Optional[int] = None, *, dtype: Optional[DTypeLike] = None,
        requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (m = n by default).

    >>> import minipool as mp
    >>> mp.eye(2).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    m = n if m is None else m
    return Tensor(np.eye(_shape_arg((n,))[0], _shape_arg((m,))[0], dtype=_dtype_of(dtype, _default_dtype)),
                  requires_grad=requires_grad)


def linspace(start: float, end: float, steps: int, *, dtype: Optional[DTypeLike] = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (the default dtype).

    >>> import minipool as mp
    >>> mp.linspace(0, 1, 5).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be an int >= 0, got {steps!r}")
    return Tensor(np.linspace(start, end, int(steps)).astype(_dtype_of(dtype, _default_dtype)),
                  requires_grad=requires_grad)


def as_tensor(data: Any, dtype: Optional[DTypeLike] = None) -> Tensor:
    """A Tensor sharing memory with ``data`` when it is already a NumPy array or Tensor of that
    dtype (as PyTorch's ``as_tensor``); otherwise a new one, as :func:`tensor` makes.

    >>> import numpy as np, minipool as mp
    >>> a = np.zeros(3, np.float32)
    >>> t = mp.as_tensor(a); a[0] = 7; t.tolist()
    [7.0, 0.0, 0.0]
    """
    if isinstance(data, Tensor) and (dtype is None or np.dtype(dtype) == data.dtype):
        return data
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(dtype) == data.dtype):
        return Tensor(data)
    return Tensor(_as_array(data, dtype))