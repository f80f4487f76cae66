"""Hypothesis strategies and comparison helpers shared by the pooling tests.

Only *valid* argument combinations are generated: kernel >= 1, stride >= 1,
padding <= half the effective kernel, and an input at least as large as the
(dilated) kernel minus the padding, so every output dimension is >= 1.
``torch_limits=True`` narrows padding to PyTorch 2.13's check (``p <= k // 2``,
ignoring dilation); callers that send a case to torch must also skip cases
with a window holding no real input cell (docs/semantics.md section 7).
"""
import os
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

import minipool as mp

# Examples per property; raise it for a deep run: MINIPOOL_POOLING_EXAMPLES=500 pytest ...
EXAMPLES = int(os.environ.get("MINIPOOL_POOLING_EXAMPLES", "30"))
SPATIAL_LIMIT = {1: 9, 2: 7, 3: 5}   # keep the loop reference quick
KERNEL_LIMIT = {1: 4, 2: 4, 3: 3}
DILATION_LIMIT = {1: 3, 2: 3, 3: 2}
VALUE_KINDS = ("distinct", "ties", "special", "normal", "constant")
FLOAT_DTYPES = (np.float32, np.float64)


@dataclass
class PoolCase:
    """One generated pooling call: the input layout and the arguments as the user passes them."""

    nd: int
    shape: tuple                  # shape of the input as passed (batched or not)
    batched: bool
    kernel_size: object           # int or tuple
    stride: object                # None, int or tuple
    padding: object
    dilation: object = 1
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: object = None
    extra: dict = field(default_factory=dict)

    def as_batched(self, array):
        """The ``(N, C, *spatial)`` view the reference works on."""
        return array if self.batched else array[None]

    def from_batched(self, array):
        return array if self.batched else array[0]

    def max_args(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    dilation=self.dilation, ceil_mode=self.ceil_mode)

    def avg_args(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad,
                    divisor_override=self.divisor_override)

    def sum_args(self):
        return dict(kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    ceil_mode=self.ceil_mode)


def _arg(draw, values, allow_int=True):
    """Pass equal per-dim values as a plain int half of the time."""
    if allow_int and len(set(values)) == 1 and draw(st.booleans()):
        return values[0]
    return tuple(values)


@st.composite
def pool_cases(draw, nd, *, dilation=True, torch_limits=False, divisor=False, batch=True):
    """A valid max/min/avg/sum pooling call on a small ``nd``-d input."""
    kernels, strides, paddings, dilations, sizes = [], [], [], [], []
    for _ in range(nd):
        k = draw(st.integers(1, KERNEL_LIMIT[nd]))
        d = draw(st.integers(1, DILATION_LIMIT[nd])) if dilation else 1
        effective = d * (k - 1) + 1
        max_pad = k // 2 if torch_limits else effective // 2
        p = draw(st.integers(0, max_pad))
        s = draw(st.integers(1, 3))
        smallest = max(1, effective - 2 * p)
        size = draw(st.integers(smallest, max(smallest, SPATIAL_LIMIT[nd])))
        kernels.append(k), strides.append(s), paddings.append(p), dilations.append(d)
        sizes.append(size)
    if draw(st.integers(0, 4)) == 0:  # stride=None means stride = kernel
        stride_arg = None
    else:
        stride_arg = _arg(draw, strides)
    channels = draw(st.integers(1, 2))
    if batch:
        n = draw(st.sampled_from([None, 1, 2, 0]) if nd < 3 else st.sampled_from([None, 1, 2]))
    else:
        n = 1
    shape = ((channels,) if n is None else (n, channels)) + tuple(sizes)
    case = PoolCase(nd=nd, shape=shape, batched=n is not None, kernel_size=_arg(draw, kernels),
                    stride=stride_arg, padding=_arg(draw, paddings),
                    dilation=_arg(draw, dilations), ceil_mode=draw(st.booleans()))
    if divisor:
        case.count_include_pad = draw(st.booleans())
        case.divisor_override = draw(st.sampled_from([None, None, 1, 3, 5]))
    return case


def has_empty_window(case):
    """Does some window of this case hold no real input cell?"""
    from tests.references import pooling_reference as R

    return R.has_empty_window(case.shape[-case.nd:], case.kernel_size, case.stride,
                              case.padding, case.dilation, case.ceil_mode)


def make_input(seed, shape, dtype, kind):
    """Test data of a given flavour; every kind is exactly representable in float32."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    if kind == "distinct":  # no ties anywhere: a shuffled ladder of quarter steps
        values = (rng.permutation(size) - size / 2) * 0.25
    elif kind == "ties":
        values = rng.integers(-2, 3, size).astype(np.float64)
    elif kind == "special":
        values = rng.integers(-2, 3, size).astype(np.float64)
        specials = rng.choice([np.nan, np.inf, -np.inf], size)
        values = np.where(rng.random(size) < 0.2, specials, values)
    elif kind == "constant":  # every window all-equal (possibly all -inf or all +inf)
        values = np.full(size, rng.choice([0.0, 1.5, -np.inf, np.inf]))
    elif kind == "normal":
        values = np.round(rng.standard_normal(size), 3)
    else:
        raise ValueError(kind)
    return values.reshape(shape).astype(dtype)


inputs = st.tuples(st.integers(0, 2**32 - 1), st.sampled_from(FLOAT_DTYPES),
                   st.sampled_from(VALUE_KINDS))


def upstream_gradient(seed, shape):
    """Small integer cotangents: sums of them are exact, so gradients compare bit for bit."""
    return np.random.default_rng(seed + 7).integers(-4, 5, shape).astype(np.float64)


def leaf(array, requires_grad=True):
    """A minipool leaf tensor holding a copy of ``array``."""
    return mp.tensor(array, requires_grad=requires_grad and array.dtype.kind == "f")


def to_numpy(value):
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def assert_identical(actual, expected, what="values"):
    """Same shape, same dtype and the same numbers (NaN matches NaN); arrays or tensors."""
    actual, expected = to_numpy(actual), to_numpy(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    np.testing.assert_array_equal(actual, expected, err_msg=what, strict=True)


def tolerance(dtype):
    return (1e-5, 1e-5) if np.dtype(dtype) == np.float32 else (1e-11, 1e-12)


def assert_near(actual, expected, dtype=None, what="values", rtol=None, atol=None):
    """Same shape (and dtype when ``dtype`` is given); numbers within the dtype's tolerance."""
    actual, expected = to_numpy(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if dtype is not None:
        assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype} != {np.dtype(dtype)}"
    default_rtol, default_atol = tolerance(dtype or actual.dtype)
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=default_rtol if rtol is None else rtol,
                               atol=default_atol if atol is None else atol, err_msg=what)
