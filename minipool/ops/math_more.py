"""More maths with PyTorch's dtypes and gradients: log1p, expm1, log2, log10, the error
functions, hyperbolic and inverse trigonometric functions, atan2, hypot, cumprod, diff,
nan_to_num, logspace and meshgrid.

Integer and bool inputs give the default float dtype (float32), as in PyTorch; two
float tensors of different precision give the wider one.
"""
import math
import warnings
from typing import Optional, Tuple

import numpy as np

from minipool._typing import DTypeLike, TensorLike
from minipool._promotion import promoted_float
from minipool.ops.activations import _erf
from minipool.ops.elementwise import (_Unary, _as_float, _check_broadcast,
                                      as_tensor, unbroadcast)
from minipool.tensor import Function, Tensor, _dim_index, get_default_dtype

__all__ = ["log1p", "expm1", "log2", "log10", "erf", "erfc", "erfinv", "sinh", "cosh", "tan",
           "asin", "acos", "atan", "atan2", "hypot", "cumprod", "diff", "nan_to_num",
           "logspace", "meshgrid"]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_erfc64 = np.vectorize(math.erfc, otypes=[np.float64])  # (no kernel: 1 - erf loses its digits)


def _erf64(x):
    return _erf(np.asarray(x, np.float64))  # libm's erf, the parallel kernel gelu uses


def _in_dtype(fn):
    """``fn`` computed in float64, rounded once to the input's dtype: NumPy's float32
    loops can be an ulp or more off (log10(100) is 2.0000002)."""
    return lambda x: fn(x.astype(np.float64)).astype(x.dtype, copy=False)


def _erfinv64(y):
    """The inverse of erf in float64: Giles's single-precision approximation, then two
    Newton steps on math.erf (each doubles the correct digits)."""
    y = np.asarray(y, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = -np.log((1.0 - y) * (1.0 + y))
        small = w < 5.0
        ws, wl = w - 2.5, np.sqrt(w) - 3.0
        ps = 2.81022636e-08
        for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
                  -0.00417768164, 0.246640727, 1.50140941):
            ps = c + ps * ws
        pl = -0.000200214257
        for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                  0.00943887047, 1.00167406, 2.83297682):
            pl = c + pl * wl
        x = np.where(small, ps, pl) * y
        inside = np.isfinite(x)
        for _ in range(2):
            step = (_erf64(np.where(inside, x, 0.0)) - y) / (_TWO_OVER_SQRT_PI * np.exp(-x * x))
            x = np.where(inside, x - step, x)
    x = np.where(y == 1, np.inf, np.where(y == -1, -np.inf, x))
    return np.where(np.abs(y) > 1, np.nan, x)


def _unary(cls, x):
    return cls.apply(_as_float(x))


def _math(name, f, df, doc):
    """A differentiable unary op ``name``: y = f(x), dy/dx = df(x, y)."""
    cls = type(name.capitalize(), (_Unary,), {"f": staticmethod(_in_dtype(f)), "df": staticmethod(df)})

    def op(input: TensorLike) -> Tensor:
        return _unary(cls, input)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return op


def _ln(base):
    return lambda x, y: 1 / (x * np.log(np.asarray(base, x.dtype)))


log1p = _math("log1p", np.log1p, lambda x, y: 1 / (1 + x), """``log(1 + x)``, exact for tiny x.

    >>> import minipool as mp
    >>> mp.log1p(mp.tensor([0.0, 1e-10], dtype=mp.float64)).tolist()
    [0.0, 9.999999999500001e-11]
    """)
expm1 = _math("expm1", np.expm1, lambda x, y: y + 1, """``exp(x) - 1``, exact for tiny x.

    >>> import minipool as mp
    >>> mp.expm1(mp.tensor([0.0, 1e-10], dtype=mp.float64)).tolist()
    [0.0, 1.00000000005e-10]
    """)
log2 = _math("log2", np.log2, _ln(2), """Base-2 logarithm (``-inf`` at 0, NaN below).

    >>> import minipool as mp
    >>> mp.log2(mp.tensor([1.0, 8.0])).tolist()
    [0.0, 3.0]
    """)
log10 = _math("log10", np.log10, _ln(10), """Base-10 logarithm (``-inf`` at 0, NaN below).

    >>> import minipool as mp
    >>> mp.log10(mp.tensor([1.0, 100.0])).tolist()
    [0.0, 2.0]
    """)
erf = _math("erf", _erf64, lambda x, y: _TWO_OVER_SQRT_PI * np.exp(-x * x),
            """The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``.

    >>> import minipool as mp
    >>> mp.erf(mp.tensor([0.0, float("inf")])).tolist()
    [0.0, 1.0]
    """)
erfc = _math("erfc", _erfc64, lambda x, y: -_TWO_OVER_SQRT_PI * np.exp(-x * x),
             """``1 - erf(x)``, accurate where erf is close to 1.

    >>> import minipool as mp
    >>> mp.erfc(mp.tensor([0.0, float("inf")])).tolist()
    [1.0, 0.0]
    """)
erfinv = _math("erfinv", _erfinv64,
               lambda x, y: (0.5 * math.sqrt(math.pi)) * np.exp(y * y),
               """The inverse of erf on [-1, 1] (``+-inf`` at +-1, NaN outside).

    >>> import minipool as mp
    >>> mp.erfinv(mp.tensor([0.0, 1.0, 2.0])).tolist()
    [0.0, inf, nan]
    """)
sinh = _math("sinh", np.sinh, lambda x, y: np.cosh(x), """Hyperbolic sine.

    >>> import minipool as mp
    >>> mp.sinh(mp.tensor([0.0])).tolist()
    [0.0]
    """)
cosh = _math("cosh", np.cosh, lambda x, y: np.sinh(x), """Hyperbolic cosine.

    >>> import minipool as mp
    >>> mp.cosh(mp.tensor([0.0])).tolist()
    [1.0]
    """)
tan = _math("tan", np.tan, lambda x, y: 1 + y * y, """Tangent (radians).

    >>> import minipool as mp
    >>> mp.tan(mp.tensor([0.0])).tolist()
    [0.0]
    """)
asin = _math("asin", np.arcsin, lambda x, y: 1 / np.sqrt(1 - x * x),
             """Inverse sine (NaN outside [-1, 1]).

    >>> import minipool as mp
    >>> mp.asin(mp.tensor([0.0, 2.0])).tolist()
    [0.0, nan]
    """)
acos = _math("acos", np.arccos, lambda x, y: -1 / np.sqrt(1 - x * x),
             """Inverse cosine (NaN outside [-1, 1]).

    >>> import minipool as mp
    >>> mp.acos(mp.tensor([1.0])).tolist()
    [0.0]
    """)
atan = _math("atan", np.arctan, lambda x, y: 1 / (1 + x * x), """Inverse tangent.

    >>> import minipool as mp
    >>> mp.atan(mp.tensor([0.0])).tolist()
    [0.0]
    """)


# --------------------------------------------------------------------------- binary
def _float_pair(op, a, b):
    """Both operands as tensors of PyTorch's result dtype, the default float one for integers."""
    a, b = promoted_float(a, b)
    _check_broadcast(a, b, op)
    return a, b


class Atan2(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.arctan2(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        squared = a * a + b * b
        scale = np.where(squared == 0, 0, grad / squared).astype(grad.dtype, copy=False)
        return unbroadcast(scale * b, a.shape), unbroadcast(-scale * a, b.shape)


class Hypot(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = np.hypot(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved_tensors
        scale = grad / out
        return unbroadcast(scale * a, a.shape), unbroadcast(scale * b, b.shape)


def atan2(input: TensorLike, other: TensorLike) -> Tensor:
    """The angle of the point (other, input), ``atan(input / other)`` in the right
    quadrant, elementwise with broadcasting.

    >>> import minipool as mp
    >>> round(mp.atan2(mp.tensor([1.0]), mp.tensor([-1.0])).item(), 4)
    2.3562
    """
    a, b = _float_pair("atan2", input, other)
    return Atan2.apply(a, b)


def hypot(input: TensorLike, other: TensorLike) -> Tensor:
    """``sqrt(input**2 + other**2)`` without overflow, elementwise with broadcasting.
    Floats only, as in PyTorch.

    >>> import minipool as mp
    >>> mp.hypot(mp.tensor([3.0]), mp.tensor([4.0])).tolist()
    [5.0]
    """
    kinds = [np.asarray(v._data if isinstance(v, Tensor) else v).dtype.kind for v in (input, other)]
    if "f" not in kinds:
        raise RuntimeError("hypot: input or other must be a float tensor, got only integers "
                           "(PyTorch refuses them too); cast one, e.g. t.float()")
    a, b = _float_pair("hypot", input, other)
    return Hypot.apply(a, b)


# --------------------------------------------------------------------------- cumprod, diff
def _cumprod_grad_row(x, grad):
    """d/dx_i of sum_k grad_k * prod_{j<=k} x_j for one 1-d row that holds a zero: the
    elements after the first zero get 0; before it, the usual quotient rule; the zero
    itself gets the products that skip it."""
    z = int(np.flatnonzero(x == 0)[0])
    out = np.zeros_like(x)
    out_k = np.cumprod(x)
    if z:
        tail = np.cumsum((grad[:z] * out_k[:z])[::-1])[::-1]
        out[:z] = tail / x[:z]
    before = out_k[z - 1] if z else x.dtype.type(1)
    after = np.concatenate(([1], np.cumprod(x[z + 1:]))).astype(x.dtype)
    out[z] = np.sum(grad[z:] * before * after)
    return out


class CumProd(Function):
    @staticmethod
    def forward(ctx, x, axis):
        out = np.cumprod(x, axis=axis)
        ctx.save_for_backward(x, out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out = ctx.saved_tensors
        axis = ctx.axis
        if x.size == 0:
            return np.zeros_like(x), None
        rows_x = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
        rows_g = np.moveaxis(grad, axis, -1).reshape(rows_x.shape)
        rows_o = np.moveaxis(out, axis, -1).reshape(rows_x.shape)
        result = np.cumsum((rows_g * rows_o)[:, ::-1], axis=1)[:, ::-1] / rows_x
        for r in np.flatnonzero((rows_x == 0).any(axis=1)):
            result[r] = _cumprod_grad_row(rows_x[r], rows_g[r])
        moved = np.moveaxis(x, axis, -1).shape
        return np.moveaxis(result.reshape(moved), -1, axis), None


def cumprod(input: TensorLike, dim: int, *, dtype: Optional[DTypeLike] = None) -> Tensor:
    """Running product along ``dim``; integers and bools give int64 (as in PyTorch),
    ``dtype`` casts first.  The gradient is exact with zeros in the input.

    >>> import minipool as mp
    >>> mp.cumprod(mp.tensor([1.0, 2.0, 3.0, 0.0, 5.0]), dim=0).tolist()
    [1.0, 2.0, 6.0, 0.0, 0.0]
    """
    x = as_tensor(input)
    if dtype is not None:
        x = x.to(np.dtype(dtype)) if x.dtype.kind == "f" and np.dtype(dtype).kind == "f" \
            else Tensor(x._data.astype(dtype))
    elif x.dtype.kind in "biu":
        x = Tensor(x._data.astype(np.int64))
    axis = _dim_index(dim, x.ndim, "cumprod")
    if x.ndim == 0:
        return CumProd.apply(x.reshape(1), 0).reshape(())
    return CumProd.apply(x, axis)


def diff(input: TensorLike, n: int = 1, dim: int = -1, prepend: Optional[TensorLike] = None,
         append: Optional[TensorLike] = None) -> Tensor:
    """The ``n``-th forward difference along ``dim`` (``x[i+1] - x[i]``, bools: ``!=``),
    after ``prepend``/``append`` (same dims; sizes match outside ``dim``) are joined on.

    >>> import minipool as mp
    >>> mp.diff(mp.tensor([1, 4, 9, 16])).tolist()
    [3, 5, 7]
    >>> mp.diff(mp.tensor([1, 4, 9, 16]), n=2, prepend=mp.tensor([0])).tolist()
    [2, 2, 2]
    """
    from minipool.ops.shape import cat
    x = as_tensor(input)
    if x.ndim == 0:
        raise RuntimeError("diff: expects input to be at least one-dimensional")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise RuntimeError(f"diff: n must be a non-negative int, got {n!r}")
    axis = _dim_index(dim, x.ndim, "diff")
    if n == 0:  # PyTorch returns the input itself, prepend/append unused
        return x
    parts = []
    for name, extra in (("prepend", prepend), (None, x), ("append", append)):
        if extra is None:
            continue
        extra = as_tensor(extra)
        if name is not None:
            if extra.ndim == 0:  # a number: one slice of it
                extra = Tensor(np.full(x.shape[:axis] + (1,) + x.shape[axis + 1:], extra._data,
                                       extra.dtype))
            if extra.ndim != x.ndim:
                raise RuntimeError(f"diff: {name} must have the same number of dimensions as "
                                   f"input ({x.ndim}), got {extra.ndim}")
        parts.append(extra)
    if len(parts) > 1:
        x = cat(parts, dim=axis)
    lead = (slice(None),) * axis
    for _ in range(int(n)):
        if x.shape[axis] == 0:
            break
        later, earlier = x[lead + (slice(1, None),)], x[lead + (slice(None, -1),)]
        x = Tensor(later._data != earlier._data) if x.dtype == np.bool_ else later - earlier
    return x


# --------------------------------------------------------------------------- nan_to_num
class NanToNum(Function):
    """Finite values pass with their gradient; replaced NaN/inf get gradient 0."""

    @staticmethod
    def forward(ctx, x, nan, posinf, neginf):
        ctx.finite = np.isfinite(x)
        return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    @staticmethod
    def backward(ctx, grad):
        return np.where(ctx.finite, grad, np.zeros((), grad.dtype)), None, None, None


def nan_to_num(input: TensorLike, nan: float = 0.0, posinf: Optional[float] = None,
               neginf: Optional[float] = None) -> Tensor:
    """NaN, +inf and -inf replaced by ``nan``, ``posinf`` and ``neginf`` (by default 0 and
    the dtype's largest and lowest finite values); integers are returned unchanged.

    >>> import minipool as mp
    >>> mp.nan_to_num(mp.tensor([float("nan"), 1.0, float("-inf")]), neginf=-9.0).tolist()
    [0.0, 1.0, -9.0]
    """
    x = as_tensor(input)
    if x.dtype.kind != "f":
        return Tensor(x._data.copy())
    return NanToNum.apply(x, nan, posinf, neginf)


# --------------------------------------------------------------------------- factories
def logspace(start: float, end: float, steps: int, base: float = 10.0, *,
             dtype: Optional[DTypeLike] = None, requires_grad: bool = False) -> Tensor:
    """``steps`` values ``base ** t`` for t evenly spaced from ``start`` to ``end``
    (float32 unless ``dtype`` says otherwise).

    >>> import minipool as mp
    >>> mp.logspace(0, 3, 4).tolist()
    [1.0, 10.0, 100.0, 1000.0]
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise RuntimeError(f"logspace: steps must be a non-negative int, got {steps!r}")
    dtype = get_default_dtype() if dtype is None else np.dtype(dtype)
    exponents = np.linspace(start, end, int(steps), dtype=np.float64)
    with np.errstate(over="ignore"):
        values = np.power(float(base), exponents)
    if dtype.kind in "iu":
        values = np.trunc(values)
    return Tensor(values.astype(dtype), requires_grad=requires_grad)


def meshgrid(*tensors: TensorLike, indexing: Optional[str] = None) -> Tuple[Tensor, ...]:
    """Coordinate grids from 1-d tensors: with ``indexing='ij'`` output i varies along
    dim i; ``'xy'`` swaps the first two dims (NumPy's and MATLAB's convention).  No
    ``indexing`` means 'ij' with PyTorch's warning.  Gradients sum back over the grid.

    >>> import minipool as mp
    >>> xs, ys = mp.meshgrid(mp.tensor([1, 2, 3]), mp.tensor([7, 8]), indexing="ij")
    >>> xs.tolist(), ys.tolist()
    ([[1, 1], [2, 2], [3, 3]], [[7, 8], [7, 8], [7, 8]])
    """
    from minipool.ops.shape import broadcast_to
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if not tensors:
        raise RuntimeError("meshgrid: expects a non-empty list of tensors")
    if indexing is None:
        warnings.warn("meshgrid: in an upcoming release, it will be required to pass the "
                      "indexing argument (minipool follows torch.meshgrid: 'ij' now)",
                      UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    ts = [as_tensor(t) for t in tensors]
    for i, t in enumerate(ts):
        if t.ndim > 1:
            raise RuntimeError(f"meshgrid: tensor {i} must be 0-d or 1-d, got shape {tuple(t.shape)}")
        if t.dtype != ts[0].dtype:
            raise RuntimeError(f"meshgrid: all tensors must have the same dtype, got {ts[0].dtype} "
                               f"and {t.dtype} (tensor {i})")
    ts = [t.reshape(-1) for t in ts]
    swap = indexing == "xy" and len(ts) >= 2
    order = list(range(len(ts)))
    if swap:
        order[0], order[1] = 1, 0
    shape = tuple(ts[k].shape[0] for k in order)
    grids = []
    for i, t in enumerate(ts):
        position = order.index(i)
        view = [1] * len(ts)
        view[position] = t.shape[0]
        grids.append(broadcast_to(t.reshape(*view), shape))
    return tuple(grids)

