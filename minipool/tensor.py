"""Tensor, Function and the reverse-mode engine.

A Tensor wraps a NumPy array.  Every differentiable op is a Function: its
``forward`` works on NumPy arrays and records what ``backward`` needs on the
context object; ``Function.apply`` wires the result into the graph.  Calling
``backward()`` on a result walks that graph once, in reverse topological
order, adding each contribution into ``.grad`` of the leaves.
"""
import threading

import numpy as np

from minipool import _memory, _random

__all__ = ["Tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled", "tensor",
           "zeros", "ones", "zeros_like", "ones_like", "randn", "rand", "arange", "full"]

DEFAULT_DTYPE = np.dtype(np.float32)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------- grad mode
class _GradMode(threading.local):
    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled():
    """True unless inside ``no_grad()`` (per Python thread)."""
    return _grad_mode.enabled


class _SetGradMode:
    """Context manager and decorator that sets grad mode and restores it."""

    _mode = True

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

    def __init__(self):
        self.saved_tensors = ()
        self.needs_input_grad = ()
        self._inputs = ()  # the positional Tensor inputs, or None for non-tensors
        self._freed = False

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("a Function subclass must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("a Function subclass must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = cls()
        # One plain loop instead of comprehensions: apply runs for every op of every step.
        raw = []
        needs = []
        any_needs = False
        for a in args:
            if isinstance(a, Tensor):
                raw.append(a.data)
                flag = a._requires_grad
                needs.append(flag)
                any_needs = any_needs or flag
            else:
                raw.append(a)
                needs.append(False)
        record = any_needs and _grad_mode.enabled
        ctx.needs_input_grad = tuple(needs)
        ctx.requires_grad = record  # ops may skip saving state (e.g. argmax) when False
        previous = _memory.activate()  # the op's arrays come from minipool's memory cache
        try:
            result = cls.forward(ctx, *raw, **kwargs)
        finally:
            _memory.restore(previous)
        extras = ()
        if isinstance(result, tuple):
            result, *extras = result
        if type(result) is not np.ndarray:
            result = np.asarray(result)
        record = record and result.dtype in FLOAT_DTYPES
        out = Tensor._from_result(result, record)
        if record:
            ctx._inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
            out._ctx = ctx
        if extras:
            return (out, *(Tensor(e) for e in extras))
        return out

    def _release(self):
        """Drop everything saved for backward; the node can't be walked again."""
        self.__dict__.clear()
        self._freed = True
        self._inputs = ()

    @property
    def name(self):
        return type(self).__name__


# --------------------------------------------------------------------------- Tensor
def _as_array(data, dtype=None):
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = np.dtype(dtype)
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        arr = np.asarray(data, dtype=dtype)
    else:
        arr = np.asarray(data, dtype=dtype)
        if dtype is None and arr.dtype == np.float64:
            arr = arr.astype(DEFAULT_DTYPE)  # Python floats default to float32, as in PyTorch
    if arr.dtype == object:
        raise TypeError(f"cannot make a Tensor from {type(data).__name__} holding Python objects")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"unsupported dtype {arr.dtype}: minipool tensors hold bool, integer "
                        "or floating-point numbers")
    return arr


_new_tensor = object.__new__


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

    def __init__(self, data, dtype=None, requires_grad=False):
        self.data = _as_array(data, dtype)
        self.grad = None
        self._ctx = None
        self.requires_grad = requires_grad

    @staticmethod
    def _from_result(array, requires_grad):
        """Wrap an op's ndarray result without re-checking it (``requires_grad`` only if
        it is float32/float64); anything unusual goes through the checking constructor."""
        if array.dtype.kind not in "biuf":
            return Tensor(array, requires_grad=requires_grad)
        t = _new_tensor(Tensor)
        t.data = array
        t.grad = None
        t._ctx = None
        t._requires_grad = requires_grad
        return t

    # -- gradient bookkeeping ---------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        flag = bool(flag)
        if flag and self.data.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"only float32/float64 tensors can require gradients, got dtype {self.data.dtype}")
        if not flag and self._ctx is not None:
            raise RuntimeError("requires_grad can only be switched off on a leaf tensor; "
                               "use .detach() on a result")
        self._requires_grad = flag

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    def detach(self):
        """A new leaf sharing this tensor's data, outside any graph."""
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    def requires_grad_(self, flag=True):
        self.requires_grad = flag
        return self

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` (Tensor or array, same shape as self) is required unless self
        holds a single element.  The graph is freed afterwards unless
        ``retain_graph=True``.
        """
        from minipool.autograd import run_backward

        run_backward(self, grad, retain_graph)

    # -- array-like views -------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    def numel(self):
        return self.data.size

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def numpy(self):
        """The underlying NumPy array (shared, not copied)."""
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        if dtype is None:
            return self.data if copy is not True else self.data.copy()
        return self.data.astype(dtype, copy=bool(copy) or self.data.dtype != dtype)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype != DEFAULT_DTYPE:
            extra += f", dtype={self.data.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError("the truth value of a tensor with more than one element is ambiguous")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    __hash__ = object.__hash__

    def astype(self, dtype):
        """A differentiable cast (float32 <-> float64) or a plain one for other dtypes."""
        from minipool.ops import elementwise

        return elementwise.cast(self, dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)


# --------------------------------------------------------------------------- creation
def tensor(data, dtype=None, requires_grad=False):
    """Make a Tensor from a list, scalar, array or Tensor (the data is copied).

    Python floats become float32 (the working dtype); NumPy arrays keep their dtype.

    >>> import minipool as mp
    >>> mp.tensor([1.5, 2.0]).dtype
    dtype('float32')
    """
    arr = _as_array(data, dtype)
    return Tensor(arr.copy(), requires_grad=requires_grad)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
            raise ValueError(f"shape entries must be non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def zeros(*shape, dtype=DEFAULT_DTYPE, requires_grad=False):
    return Tensor(np.zeros(_shape_arg(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_DTYPE, requires_grad=False):
    return Tensor(np.ones(_shape_arg(shape), dtype=dtype), requires_grad=requires_grad)


def full(shape, fill_value, dtype=DEFAULT_DTYPE, requires_grad=False):
    return Tensor(np.full(_shape_arg((shape,) if isinstance(shape, int) else (tuple(shape),)),
                          fill_value, dtype=dtype), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return Tensor(np.zeros_like(np.asarray(t), dtype=dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return Tensor(np.ones_like(np.asarray(t), dtype=dtype), requires_grad=requires_grad)


def randn(*shape, dtype=DEFAULT_DTYPE, requires_grad=False, generator=None):
    """Standard normal samples; ``generator``: None (the default, see ``mp.manual_seed``), an int
    seed or a ``np.random.Generator``."""
    rng = _random.resolve(generator, "randn")
    return Tensor(rng.standard_normal(_shape_arg(shape)).astype(dtype), requires_grad=requires_grad)


def rand(*shape, dtype=DEFAULT_DTYPE, requires_grad=False, generator=None):
    """Uniform samples in [0, 1); ``generator`` as in :func:`randn`."""
    rng = _random.resolve(generator, "rand")
    return Tensor(rng.random(_shape_arg(shape)).astype(dtype), requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad=False):
    """Like ``np.arange``; float arguments give float32."""
    arr = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None and arr.dtype == np.float64:
        dtype = DEFAULT_DTYPE
    return Tensor(arr if dtype is None else arr.astype(dtype), requires_grad=requires_grad)
