"""The Tensor methods and torch.* functions added for PyTorch users' scripts: elementwise maths
(square rsqrt sin cos floor ceil round sign isnan isinf isfinite isclose allclose equal),
reductions (prod cumsum norm all any), shape (t repeat split chunk), indexing (gather
masked_fill sort argsort topk nonzero), new_zeros/new_ones/new_full/half, and the module-level
names (mp.exp, mp.sort, ...).

Each op is checked against a loop or NumPy reference written here, against PyTorch (values,
dtypes, shapes, gradients; dim=None, negative dims, keepdim, empty tensors, ties, NaN, +-inf),
with float64 gradchecks for the differentiable ones, hypothesis over shapes and dims, and bad
input (the message names the argument).
"""
import functools
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp

torch = pytest.importorskip("torch")

FLOATS = [np.float32, np.float64]
SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1.0, -3.25, 7.0, np.inf, -np.inf, np.nan]
rng = np.random.default_rng(0)


def both(a, requires_grad=False):
    a = np.asarray(a)
    grad = requires_grad and a.dtype.kind == "f"
    return mp.tensor(a.copy(), requires_grad=grad), torch.tensor(a.copy(), requires_grad=grad)


def as_numpy(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t.numpy())


def same(m, t, rtol=0.0, atol=0.0):
    """minipool's result has torch's shape, dtype and values (NaN matches NaN)."""
    mn, tn = as_numpy(m), as_numpy(t)
    assert mn.shape == tn.shape, (mn.shape, tn.shape)
    assert mn.dtype == tn.dtype, (mn.dtype, tn.dtype)
    if rtol or atol:
        np.testing.assert_allclose(mn, tn, rtol=rtol, atol=atol)
    else:
        np.testing.assert_array_equal(mn, tn)


def same_grads(m_fn, t_fn, a, rtol=1e-6, atol=0.0, seed=1):
    """The gradients of sum(g * f(x)) for one random g agree with torch's."""
    m, t = both(a, requires_grad=True)
    mo, to = m_fn(m), t_fn(t)
    g = np.random.default_rng(seed).uniform(-1, 1, to.shape).astype(a.dtype)
    mo.backward(g)
    to.backward(torch.tensor(g))
    if t.grad is None:  # torch sends no gradient (e.g. the p=0 norm): minipool sends zeros
        assert not np.any(m.grad.numpy())
        return
    same(m.grad, t.grad, rtol=rtol, atol=atol)


def f64(shape, seed=0, low=-2.0, high=2.0):
    return mp.tensor(np.random.default_rng(seed).uniform(low, high, shape), dtype="float64",
                     requires_grad=True)


# =========================================================================== elementwise maths
UNARY = {  # name: (loop reference of one element, minipool, torch)
    "square": (lambda v: v * v, mp.square, torch.square),
    "rsqrt": (lambda v: 1 / math.sqrt(v) if v > 0 else (math.copysign(math.inf, v) if v == 0 else math.nan),
              mp.rsqrt, torch.rsqrt),
    "sin": (lambda v: math.sin(v) if math.isfinite(v) else math.nan, mp.sin, torch.sin),
    "cos": (lambda v: math.cos(v) if math.isfinite(v) else math.nan, mp.cos, torch.cos),
    "floor": (lambda v: float(math.floor(v)) if math.isfinite(v) else v, mp.floor, torch.floor),
    "ceil": (lambda v: float(math.ceil(v)) if math.isfinite(v) else v, mp.ceil, torch.ceil),
    # Python's round() sends halves to the even neighbour, as torch.round does
    "round": (lambda v: float(round(v)) if math.isfinite(v) else v, mp.round, torch.round),
    "sign": (lambda v: 0.0 if v != v or v == 0 else math.copysign(1.0, v), mp.sign, torch.sign),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", FLOATS)
def test_unary_maths_match_a_loop_and_torch_at_special_values(name, dtype):
    ref, mp_fn, torch_fn = UNARY[name]
    a = np.array(SPECIAL, dtype=dtype)
    m, t = both(a)
    out = mp_fn(m)
    with np.errstate(all="ignore"):
        expected = np.array([ref(float(v)) for v in a]).astype(dtype)
    tight = name in ("floor", "ceil", "round", "sign", "square")
    np.testing.assert_allclose(out.numpy(), expected, rtol=0 if tight else 1e-6, atol=0)
    assert out.dtype == dtype
    same(out, torch_fn(t), rtol=0 if tight else 1e-6)
    same(getattr(m, name)(), getattr(t, name)(), rtol=0 if tight else 1e-6)  # the method


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
def test_unary_maths_on_integers_and_bools_give_torchs_dtype_or_its_refusal(name, dtype):
    _, mp_fn, torch_fn = UNARY[name]
    a = np.array([0, 1, 3, 4], dtype=dtype)
    m, t = both(a)
    try:
        expected = torch_fn(t)
    except (RuntimeError, NotImplementedError):  # torch: floor/ceil/round not implemented for bool
        with pytest.raises(TypeError, match=f"{name}: not implemented for bool"):
            mp_fn(m)
        return
    same(mp_fn(m), expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["square", "rsqrt", "sin", "cos"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_smooth_unary_gradients_match_torch_and_finite_differences(name, dtype):
    _, mp_fn, torch_fn = UNARY[name]
    low = 0.2 if name == "rsqrt" else -3.0
    a = rng.uniform(low, 3.0, (3, 4)).astype(dtype)
    same_grads(mp_fn, torch_fn, a, rtol=1e-5)
    assert mp.gradcheck(mp_fn, [f64((3, 4), low=low if low > 0 else -3.0, high=3.0)])
    assert mp.gradcheck(lambda v: getattr(v, name)(), [f64((5,), seed=3, low=max(low, -3.0), high=3.0)])


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "sign"])
def test_step_functions_have_zero_gradient_as_in_torch(name):
    _, mp_fn, torch_fn = UNARY[name]
    a = np.array(SPECIAL, dtype=np.float64)
    same_grads(mp_fn, torch_fn, a)
    m = mp.tensor(a, requires_grad=True)
    y = mp_fn(m)
    assert y.requires_grad and y.grad_fn is not None
    y.backward(np.full(a.shape, 3.0))
    assert np.all(m.grad.numpy() == 0)


def test_rsqrt_gradient_at_zero_and_below_matches_torch():
    a = np.array([0.0, -1.0, np.inf, 4.0])
    same_grads(mp.rsqrt, torch.rsqrt, a)


@pytest.mark.parametrize("decimals", [-2, -1, 0, 1, 2, 3])
@pytest.mark.parametrize("dtype", FLOATS)
def test_round_with_decimals_matches_torch(decimals, dtype):
    a = np.concatenate([rng.uniform(-500, 500, 200), [0.125, 0.375, 2.5, -2.5, 15.0, 25.0, 150.0,
                                                      np.nan, np.inf, -np.inf]]).astype(dtype)
    m, t = both(a)
    same(mp.round(m, decimals=decimals), torch.round(t, decimals=decimals))
    same(m.round(decimals=decimals), t.round(decimals=decimals))


def test_round_refuses_decimals_on_integers_and_non_int_decimals():
    assert mp.round(mp.tensor([15])).tolist() == torch.round(torch.tensor([15])).tolist() == [15]
    with pytest.raises(NotImplementedError):
        torch.round(torch.tensor([15]), decimals=-1)
    with pytest.raises(TypeError, match="decimals=-1 needs a floating-point tensor"):
        mp.round(mp.tensor([15]), decimals=-1)
    with pytest.raises(TypeError, match="decimals must be an int"):
        mp.round(mp.tensor([1.5]), decimals=1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_isnan_isinf_isfinite_match_a_loop_and_torch(dtype):
    values = SPECIAL if dtype in FLOATS else [0, 1, 5, 1]
    a = np.array(values, dtype=dtype).reshape(-1)
    m, t = both(a)
    for name, ref in (("isnan", math.isnan), ("isinf", math.isinf), ("isfinite", math.isfinite)):
        out = getattr(mp, name)(m)
        assert out.dtype == np.bool_
        assert out.tolist() == [ref(float(v)) for v in a]
        same(out, getattr(torch, name)(t))
        same(getattr(m, name)(), getattr(t, name)())
    same(mp.isnan(mp.tensor(np.zeros((0, 3)))), torch.isnan(torch.zeros(0, 3, dtype=torch.float64)))


def test_isclose_allclose_equal_match_torch():
    a = np.array([1.0, 2.0, np.nan, np.inf, -np.inf, 0.0], dtype=np.float32)
    b = np.array([1.0 + 1e-6, 2.1, np.nan, np.inf, np.inf, 1e-9], dtype=np.float32)
    (ma, ta), (mb, tb) = both(a), both(b)
    for kwargs in ({}, {"equal_nan": True}, {"rtol": 0.1}, {"atol": 0.0, "rtol": 0.0}):
        same(mp.isclose(ma, mb, **kwargs), torch.isclose(ta, tb, **kwargs))
        assert mp.allclose(ma, mb, **kwargs) is torch.allclose(ta, tb, **kwargs)
        assert mp.allclose(ma[:2], ma[:2], **kwargs) is torch.allclose(ta[:2], ta[:2], **kwargs)
    # broadcasting, as torch
    assert mp.allclose(mp.ones(3), mp.ones(2, 3)) is torch.allclose(torch.ones(3), torch.ones(2, 3)) is True
    assert ma.allclose(ma, equal_nan=True) and not ma.allclose(ma)
    pairs = [(a, a), (a[:2], a[:2]), (a[:2], a[:2].astype(np.float64)), (a[:2], a[:2].reshape(1, 2)),
             (np.array([1, 2]), np.array([1, 2])), (np.array([1, 2]), np.array([1, 3])), (a[:0], a[:0]),
             (np.array([1, 2]), np.array([1.0, 2.0])), (a[:2], np.array([1.0, 3.0]))]
    for x, y in pairs:
        assert mp.equal(mp.tensor(x), mp.tensor(y)) is torch.equal(torch.tensor(x), torch.tensor(y))
        assert mp.tensor(x).equal(mp.tensor(y)) is torch.equal(torch.tensor(x), torch.tensor(y))


def test_isclose_refuses_mixed_dtypes_and_unbroadcastable_shapes():
    with pytest.raises(RuntimeError):
        torch.allclose(torch.ones(3), torch.ones(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="input and other must have the same dtype"):
        mp.allclose(mp.ones(3), mp.ones(3, dtype=mp.float64))
    with pytest.raises(ValueError, match=r"isclose: shapes \(3,\) and \(2,\)"):
        mp.isclose(mp.ones(3), mp.ones(2))


# =========================================================================== prod, cumsum
def loop_prod(a, axis):
    """Product along ``axis`` by an explicit loop (axis None: every element)."""
    if axis is None:
        return functools.reduce(lambda p, v: p * v, a.reshape(-1).tolist(), 1)
    moved = np.moveaxis(a, axis, -1)
    out = np.empty(moved.shape[:-1], dtype=np.float64)
    for idx in np.ndindex(out.shape):
        out[idx] = functools.reduce(lambda p, v: p * v, moved[idx].tolist(), 1)
    return out


@pytest.mark.parametrize("dtype", FLOATS)
def test_prod_matches_a_loop_and_torch_over_dims_and_keepdim(dtype):
    a = rng.uniform(-2, 2, (2, 3, 4)).astype(dtype)
    a[0, 1, 2] = 0.0
    m, t = both(a)
    np.testing.assert_allclose(mp.prod(m).item(), loop_prod(a, None), rtol=1e-5)
    same(mp.prod(m), torch.prod(t), rtol=1e-6)
    for dim, keepdim in itertools.product(range(-3, 3), (False, True)):
        out = m.prod(dim, keepdim=keepdim)
        same(out, t.prod(dim, keepdim=keepdim), rtol=1e-6)
        ref = loop_prod(a, dim % 3)
        np.testing.assert_allclose(out.numpy().reshape(ref.shape), ref, rtol=1e-5)


def test_prod_of_integers_bools_empty_and_0d_tensors_match_torch():
    for a in (np.array([2, 3, 4], np.int32), np.array([True, False]), np.array([[3, 4]], np.uint8),
              np.zeros((0, 3), np.float32), np.array(2.5, np.float32), np.array([1e30, 1e30], np.float32)):
        m, t = both(a)
        same(mp.prod(m), torch.prod(t))
        if a.ndim:
            same(m.prod(0), t.prod(0))
            same(m.prod(-1, True), t.prod(-1, True))
    same(mp.prod(mp.tensor(2.5), 0), torch.prod(torch.tensor(2.5), 0))
    same(mp.prod(mp.tensor([2, 3]), dtype=mp.float64), torch.prod(torch.tensor([2, 3]), dtype=torch.float64))
    same(mp.tensor([1.5, 3.0]).prod(0, dtype=mp.float64), torch.tensor([1.5, 3.0]).prod(0, dtype=torch.float64))


@pytest.mark.parametrize("rows", [
    [[1.5, 2.0, -3.0], [0.5, 4.0, 1.0]],          # no zero: out / x
    [[0.0, 2.0, 3.0], [1.0, 2.0, 3.0]],           # one zero: the product of the others
    [[0.0, 2.0, 0.0], [1.0, 2.0, 3.0]],           # two zeros in a row: all 0 there
    [[0.0, 0.0, 0.0], [0.0, -1.0, 2.0]],
    [[np.inf, 2.0, 1.0], [np.nan, 1.0, 2.0]],     # torch's out / x: inf / inf is NaN
    [[np.inf, 0.0, 1.0], [1.0, 1.0, 1.0]],
])
def test_prod_gradient_with_zeros_inf_and_nan_matches_torch(rows):
    a = np.array(rows, dtype=np.float64)
    for dim in (None, 0, 1, -1):
        if dim is None:
            same_grads(torch_fn := (lambda v: v.prod()), torch_fn, a)
        else:
            same_grads(lambda v, d=dim: v.prod(d), lambda v, d=dim: v.prod(d), a)
            same_grads(lambda v, d=dim: v.prod(d, keepdim=True), lambda v, d=dim: v.prod(d, keepdim=True), a)


def test_prod_gradcheck_with_and_without_zeros():
    x = f64((3, 4), seed=5)
    assert mp.gradcheck(lambda v: v.prod(1), [x])
    assert mp.gradcheck(lambda v: v.prod(), [f64((2, 3), seed=6)])
    with mp.no_grad():
        x.numpy()[0, 1] = 0.0
        x.numpy()[2, :2] = 0.0
    assert mp.gradcheck(lambda v: v.prod(1), [x])
    assert mp.gradcheck(lambda v: v.prod(0, keepdim=True), [x])


def test_prod_refuses_a_dim_tuple_and_out_of_range_dims():
    with pytest.raises(TypeError):
        torch.prod(torch.zeros(2, 3), dim=(0, 1))
    with pytest.raises(TypeError, match="prod: dim must be one int"):
        mp.prod(mp.zeros(2, 3), dim=(0, 1))
    with pytest.raises(IndexError, match=r"prod: dimension out of range.*got 2"):
        mp.zeros(2, 3).prod(2)


def loop_cumsum(a, axis):
    moved = np.moveaxis(a.astype(np.float64), axis, -1)
    out = np.empty_like(moved)
    for idx in np.ndindex(moved.shape[:-1]):
        total = 0.0
        for j in range(moved.shape[-1]):
            total += moved[idx + (j,)]
            out[idx + (j,)] = total
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.bool_, np.uint8])
def test_cumsum_matches_a_loop_and_torch(dtype):
    a = (rng.uniform(-3, 3, (2, 3, 4)) if dtype in FLOATS else rng.integers(0, 3, (2, 3, 4))).astype(dtype)
    m, t = both(a)
    for dim in range(-3, 3):
        out = mp.cumsum(m, dim)
        same(out, torch.cumsum(t, dim), rtol=1e-6)
        same(m.cumsum(dim=dim), t.cumsum(dim=dim), rtol=1e-6)
        np.testing.assert_allclose(out.numpy().astype(np.float64), loop_cumsum(a, dim % 3), rtol=1e-5)
    same(mp.cumsum(m, 1, dtype=mp.float64), torch.cumsum(t, 1, dtype=torch.float64), rtol=1e-12)


def test_cumsum_of_0d_empty_and_special_values_matches_torch():
    for a in (np.array(3.0, np.float32), np.zeros((0, 2), np.float32),
              np.array([1.0, np.inf, -np.inf, 2.0, np.nan, 1.0], np.float32)):
        m, t = both(a)
        for dim in ((0, -1) if a.ndim < 2 else (0, 1)):
            same(mp.cumsum(m, dim), torch.cumsum(t, dim))
    with pytest.raises(IndexError, match=r"cumsum: dimension out of range"):
        mp.cumsum(mp.zeros(2, 3), -3)
    with pytest.raises(TypeError):
        mp.zeros(3).cumsum()  # dim is required, as in torch


def test_cumsum_gradient_matches_torch_and_finite_differences():
    a = rng.uniform(-1, 1, (3, 5))
    for dim in (0, 1, -1):
        same_grads(lambda v, d=dim: v.cumsum(d), lambda v, d=dim: v.cumsum(d), a, rtol=1e-12)
    assert mp.gradcheck(lambda v: mp.cumsum(v, 1), [f64((3, 5))])
    assert mp.gradcheck(lambda v: mp.cumsum(v, 0), [f64((4, 2, 3), seed=2)])


# =========================================================================== norm
def loop_norm(a, p):
    values = [abs(float(v)) for v in a.reshape(-1)]
    if p < 0 and 0.0 in values:
        return 0.0  # one term 0 ** p is inf, and inf ** (1 / p) is 0
    if p == math.inf:
        return max(values)
    if p == -math.inf:
        return min(values)
    if p == 0:
        return float(sum(v != 0 for v in values))
    return sum(v ** p for v in values) ** (1 / p)


NORM_PS = ["fro", 2, 1, 3, 0.5, 1.5, math.inf, -math.inf, 0, -1]


@pytest.mark.parametrize("p", NORM_PS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_norm_matches_a_loop_and_torch_over_dims(p, dtype):
    a = rng.uniform(-2, 2, (2, 3, 4)).astype(dtype)
    a[1, 2, 0] = 0.0
    m, t = both(a)
    with np.errstate(divide="ignore"):
        ref = loop_norm(a, 2 if p == "fro" else p)
    np.testing.assert_allclose(mp.norm(m, p).item(), ref, rtol=1e-5)
    same(mp.norm(m, p), torch.norm(t, p), rtol=2e-6)
    dims = [0, -1, (0, 2), (-1, -2)] + ([(0, 1, 2)] if p != "fro" else [])
    for dim, keepdim in itertools.product(dims, (False, True)):
        same(m.norm(p, dim, keepdim), t.norm(p, dim, keepdim), rtol=2e-6)
        same(m.norm(p=p, dim=dim, keepdim=keepdim), torch.norm(t, p=p, dim=dim, keepdim=keepdim), rtol=2e-6)


@pytest.mark.parametrize("p", NORM_PS)
def test_norm_gradient_matches_torch_including_zeros_and_ties(p):
    rows = np.array([[0.0, 1.0, -2.0, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, -0.5, 0.25, 1.0]])
    same_grads(lambda v: v.norm(p), lambda v: v.norm(p), rows, rtol=1e-12, atol=1e-15)
    for dim in (0, 1, -1, (0, 1)):
        same_grads(lambda v, d=dim: v.norm(p, d), lambda v, d=dim: v.norm(p, d), rows, rtol=1e-12, atol=1e-15)
        same_grads(lambda v, d=dim: v.norm(p, d, True), lambda v, d=dim: v.norm(p, d, True), rows,
                   rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("p", ["fro", 2, 1, 3, 0.5, math.inf, -math.inf, -1.5])
def test_norm_gradcheck(p):
    x = mp.tensor(np.random.default_rng(4).uniform(0.3, 2, (3, 4)) * np.sign(rng.uniform(-1, 1, (3, 4))),
                  dtype="float64", requires_grad=True)  # away from 0 and from ties
    assert mp.gradcheck(lambda v: v.norm(p), [x])
    assert mp.gradcheck(lambda v: mp.norm(v, p, dim=1), [x])
    assert mp.gradcheck(lambda v: mp.norm(v, p, dim=(0,), keepdim=True), [x])


def test_norm_of_empty_0d_special_values_and_dtype_argument_match_torch():
    cases = [(np.zeros((0,), np.float32), 2, None), (np.zeros((0, 3), np.float32), math.inf, 1),
             (np.zeros((0, 3), np.float32), 1, 0), (np.array(-3.0, np.float32), 2, None),
             (np.array([1.0, np.inf, 2.0], np.float32), 2, None),
             (np.array([1.0, np.nan, 2.0], np.float32), 1, None),
             (np.array([1.0, -np.inf, 2.0], np.float32), math.inf, None),
             (np.array([[1e30, 1e30]], np.float32), 2, 1)]
    for a, p, dim in cases:
        m, t = both(a)
        same(mp.norm(m, p, dim), torch.norm(t, p, dim))
    same(mp.norm(mp.tensor([3.0, 4.0]), dim=()), torch.norm(torch.tensor([3.0, 4.0]), dim=()))
    same(mp.norm(mp.tensor([1.0, 2.0]), dtype=mp.float64), torch.norm(torch.tensor([1.0, 2.0]), dtype=torch.float64))


def test_norm_refuses_integers_unknown_p_and_an_empty_max():
    with pytest.raises(RuntimeError):
        torch.norm(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="norm: expected a floating-point input, got dtype int64"):
        mp.norm(mp.tensor([1, 2]))
    same(torch.norm(torch.ones(2, 3), "nuc"), torch.tensor(6.0) ** 0.5, rtol=1e-6)  # torch has it
    with pytest.raises(ValueError, match="p='nuc' is not supported"):
        mp.norm(mp.ones(2, 3), "nuc")
    with pytest.raises(ValueError, match="p='abc' is not supported"):
        mp.ones(2, 3).norm("abc")
    with pytest.raises(TypeError, match="p must be 'fro' or a number"):
        mp.ones(2, 3).norm(None)
    with pytest.raises(ValueError, match="p='fro' takes at most 2 dims"):
        mp.norm(mp.zeros(2, 3, 4), "fro", (0, 1, 2))
    with pytest.raises(RuntimeError):
        torch.norm(torch.zeros(0), p=math.inf)
    with pytest.raises(ValueError, match="the inf norm of an empty tensor"):
        mp.norm(mp.zeros(0), math.inf)
    with pytest.raises(ValueError, match="norm: dim 2 is out of range"):
        mp.norm(mp.zeros(2, 3), 2, 2)


# =========================================================================== all, any, nonzero
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8, np.bool_])
def test_all_any_match_a_loop_and_torch(dtype):
    a = rng.integers(0, 2, (3, 4, 2)).astype(dtype)
    a[0] = 1
    if dtype in FLOATS:
        a[1, 0, 0] = np.nan  # NaN is non-zero: true
    m, t = both(a)
    for name, ref in (("all", all), ("any", any)):
        out = getattr(mp, name)(m)
        assert out.item() == ref(bool(v) for v in a.reshape(-1))
        same(out, getattr(torch, name)(t))
        for dim, keepdim in itertools.product([0, 1, -1, (0, 2), (2, -2)], (False, True)):
            same(getattr(m, name)(dim, keepdim), getattr(t, name)(dim, keepdim))
        same(getattr(m, name)(dim=1), getattr(t, name)(dim=1))
        e, te = both(np.zeros((0, 3), dtype))
        same(getattr(mp, name)(e), getattr(torch, name)(te))
        same(getattr(mp, name)(e, 0), getattr(torch, name)(te, 0))
    with pytest.raises(ValueError, match="all: dim 3 is out of range"):
        mp.all(m, 3)


def test_nonzero_matches_a_loop_and_torch():
    for a in (np.array([[0.0, 1.0, np.nan], [-0.0, 0.0, 2.0]], np.float32), np.array([0, 3, 0, 1]),
              rng.integers(0, 2, (2, 3, 2)).astype(np.bool_), np.zeros((0, 2)), np.array(3.0),
              np.array(0.0), np.zeros((2, 2))):
        m, t = both(a)
        out = mp.nonzero(m)
        expected = [list(idx) for idx in np.ndindex(a.shape) if a[idx] != 0]
        assert out.tolist() == expected or (out.numel() == 0 and not expected)
        same(out, torch.nonzero(t))
        same(m.nonzero(), t.nonzero())
        mt, tt = mp.nonzero(m, as_tuple=True), torch.nonzero(t, as_tuple=True)
        assert len(mt) == len(tt)
        for x, y in zip(mt, tt):
            same(x, y)


# =========================================================================== t, repeat, split, chunk
def test_t_matches_torch_and_its_gradient():
    for shape in ((), (3,), (2, 3), (0, 2)):
        a = rng.uniform(-1, 1, shape)
        m, t = both(a)
        same(m.t(), t.t())
        same(mp.t(m), torch.t(t))
    same_grads(lambda v: v.t(), lambda v: v.t(), rng.uniform(-1, 1, (2, 3)))
    assert mp.gradcheck(lambda v: v.t() * mp.tensor([[1.0], [2.0], [3.0]], dtype="float64"), [f64((2, 3))])
    with pytest.raises(ValueError, match="t: expects a tensor with <= 2 dimensions, got 3"):
        mp.zeros(2, 3, 4).t()


def loop_repeat(a, reps):
    a = a.reshape((1,) * (len(reps) - a.ndim) + a.shape)
    out = np.empty([n * r for n, r in zip(a.shape, reps)], a.dtype)
    for idx in np.ndindex(out.shape):
        out[idx] = a[tuple(i % n for i, n in zip(idx, a.shape))]
    return out


@pytest.mark.parametrize("shape, reps", [((3,), (2,)), ((2, 3), (2, 1)), ((2, 3), (1, 2, 3)),
                                         ((), (3,)), ((), (1,)), ((2, 3), (0, 2)), ((0, 2), (2, 2)),
                                         ((2, 1, 2), (1, 3, 1))])
def test_repeat_matches_a_loop_and_torch_with_gradients(shape, reps):
    a = rng.uniform(-1, 1, shape)
    m, t = both(a)
    out = m.repeat(*reps)
    np.testing.assert_array_equal(out.numpy(), loop_repeat(a, reps))
    same(out, t.repeat(*reps))
    same(m.repeat(reps), t.repeat(reps))
    same_grads(lambda v: v.repeat(*reps), lambda v: v.repeat(*reps), a, rtol=1e-12)
    if a.size:
        assert mp.gradcheck(lambda v: v.repeat(reps), [f64(shape)])


def test_repeat_refuses_too_few_or_negative_sizes():
    with pytest.raises(RuntimeError):
        torch.ones(2, 3).repeat(2)
    with pytest.raises(ValueError, match="repeat: 1 sizes given for a 2-d tensor"):
        mp.ones(2, 3).repeat(2)
    with pytest.raises(ValueError, match="repeat: sizes must be non-negative ints"):
        mp.ones(2).repeat(-1)
    with pytest.raises(TypeError):
        torch.tensor(1.0).repeat()
    with pytest.raises(TypeError, match="repeat: missing the sizes"):
        mp.tensor(1.0).repeat()


SPLIT_CASES = [((5,), 2, 0), ((5,), 5, 0), ((5,), 7, 0), ((5,), [2, 3], 0), ((5,), [0, 5, 0], 0),
               ((2, 6), 4, 1), ((2, 6), [1, 1, 4], -1), ((3, 4), 1, 0), ((0,), 2, 0), ((0,), 0, 0),
               ((0, 3), [0], 0), ((2, 0, 3), 1, -2)]


@pytest.mark.parametrize("shape, sizes, dim", SPLIT_CASES)
def test_split_matches_numpy_and_torch_and_the_pieces_gradients_add_up(shape, sizes, dim):
    a = rng.uniform(-1, 1, shape)
    m, t = both(a)
    pieces, expected = m.split(sizes, dim), t.split(sizes, dim)
    assert isinstance(pieces, tuple) and len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        same(p, e)
    if isinstance(sizes, list):  # an independent reference: np.split at the running totals
        for p, r in zip(pieces, np.split(a, np.cumsum(sizes)[:-1], axis=dim)):
            np.testing.assert_array_equal(p.numpy(), r)
    same(mp.cat(list(pieces), dim), t)
    for p, e in zip(m.split(split_size=sizes, dim=dim), mp.split(m, split_size_or_sections=sizes, dim=dim)):
        same(p, e)
    same_grads(lambda v: mp.cat([p * (i + 1) for i, p in enumerate(v.split(sizes, dim))], dim),
               lambda v: torch.cat([p * (i + 1) for i, p in enumerate(v.split(sizes, dim))], dim), a)


@pytest.mark.parametrize("n, chunks", [(5, 3), (6, 4), (6, 3), (1, 3), (4, 1), (0, 3), (7, 7), (2, 5)])
def test_chunk_matches_torch_including_fewer_pieces_than_asked(n, chunks):
    a = rng.uniform(-1, 1, (2, n))
    m, t = both(a)
    for dim in (1, -1):
        pieces, expected = m.chunk(chunks, dim), torch.chunk(t, chunks, dim)
        assert len(pieces) == len(expected)
        for p, e in zip(pieces, expected):
            same(p, e)
        assert [p.shape[1] for p in mp.chunk(m, chunks, dim)] == [e.shape[1] for e in expected]
    if n:
        x = f64((2, n))
        assert mp.gradcheck(lambda v: v.chunk(chunks, 1)[-1], [x])
        assert mp.gradcheck(lambda v: mp.split(v, 1, 1)[0] * 2, [x])


def test_split_and_chunk_refuse_bad_sizes_naming_them():
    x = mp.zeros(5)
    with pytest.raises(RuntimeError):
        torch.zeros(5).split([2, 2])
    with pytest.raises(ValueError, match=r"split_size_or_sections \[2, 2\] must add up to 5"):
        x.split([2, 2])
    with pytest.raises(ValueError, match="split: split_size must be positive"):
        x.split(0)
    with pytest.raises(ValueError, match="split: split_size must be positive"):
        x.split(-1)
    with pytest.raises(ValueError, match="list of non-negative ints"):
        x.split([6, -1])
    with pytest.raises(IndexError, match="split: dimension out of range"):
        x.split(2, dim=1)
    with pytest.raises(ValueError, match="a 0-d tensor cannot be split"):
        mp.tensor(1.0).split(1)
    with pytest.raises(ValueError, match="chunk: chunks must be >= 1, got 0"):
        x.chunk(0)
    with pytest.raises(IndexError, match="chunk: dimension out of range"):
        x.chunk(2, -2)


# =========================================================================== gather
def loop_gather(a, axis, index):
    out = np.empty(index.shape, a.dtype)
    for idx in np.ndindex(index.shape):
        src = list(idx)
        src[axis] = index[idx]
        out[idx] = a[tuple(src)]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_gather_matches_a_loop_and_torch(dtype):
    a = (rng.uniform(-3, 3, (3, 4, 5)) * 10).astype(dtype)
    m, t = both(a)
    for dim in range(-3, 3):
        axis = dim % 3
        shape = [2, 3, 4]
        shape[axis] = 6  # along dim the index may be longer than the input
        index = rng.integers(0, a.shape[axis], shape)
        out = m.gather(dim, mp.tensor(index))
        np.testing.assert_array_equal(out.numpy(), loop_gather(a, axis, index))
        same(out, t.gather(dim, torch.tensor(index)))
        same(mp.gather(m, dim, index.astype(np.int32)), torch.gather(t, dim, torch.tensor(index, dtype=torch.int32)))
    for index in (np.zeros((0, 4, 5), np.int64), np.zeros((3, 0, 1), np.int64)):
        same(mp.gather(m, 1, mp.tensor(index)), torch.gather(t, 1, torch.tensor(index)))
    same(mp.gather(mp.tensor(2.5), 0, mp.tensor(0)), torch.gather(torch.tensor(2.5), 0, torch.tensor(0)))
    same(mp.gather(mp.tensor([1.0, 2.0]), 0, mp.tensor(1)), torch.gather(torch.tensor([1.0, 2.0]), 0, torch.tensor(1)))


def test_gather_gradient_accumulates_repeated_indices_like_torch():
    a = rng.uniform(-1, 1, (3, 4))
    index = np.array([[0, 0, 3], [1, 1, 1], [2, 0, 2]])
    for dim in (1, -1):
        same_grads(lambda v, d=dim: v.gather(d, mp.tensor(index)),
                   lambda v, d=dim: v.gather(d, torch.tensor(index)), a, rtol=1e-12)
    index0 = np.array([[2, 0, 0, 1], [2, 2, 2, 2]])
    same_grads(lambda v: v.gather(0, mp.tensor(index0)), lambda v: v.gather(0, torch.tensor(index0)), a)
    assert mp.gradcheck(lambda v: mp.gather(v, 1, mp.tensor(index)), [f64((3, 4))])
    assert mp.gradcheck(lambda v: mp.gather(v, 0, mp.tensor(index0)), [f64((3, 4), seed=1)])


def test_gather_refuses_bad_index_naming_it():
    x = mp.zeros(2, 3)
    with pytest.raises(RuntimeError):
        torch.gather(torch.zeros(2, 3), 1, torch.tensor([[3]]))
    with pytest.raises(IndexError, match="gather: index 3 is out of bounds for dimension 1 with size 3"):
        x.gather(1, mp.tensor([[3]]))
    with pytest.raises(RuntimeError):
        torch.gather(torch.zeros(2, 3), 1, torch.tensor([[-1]]))
    with pytest.raises(IndexError, match="gather: index -1 is out of bounds"):
        x.gather(1, mp.tensor([[-1]]))
    with pytest.raises(ValueError, match=r"index \(1-d\) must have as many dimensions as input \(2-d\)"):
        x.gather(1, mp.tensor([0]))
    with pytest.raises(ValueError, match="index has size 3 in dimension 0, more than input's 2"):
        x.gather(1, mp.tensor([[0], [0], [0]]))
    with pytest.raises(TypeError, match="gather: index must be an integer tensor, got dtype float32"):
        x.gather(1, mp.tensor([[0.0]]))
    with pytest.raises(IndexError, match="gather: dimension out of range"):
        x.gather(2, mp.tensor([[0]]))


# =========================================================================== masked_fill
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_masked_fill_matches_numpy_and_torch_with_broadcasting(dtype):
    a = (rng.uniform(-3, 3, (2, 3)) * 4).astype(dtype)
    m, t = both(a)
    for mask in (a > 0, np.array([True, False, True]), np.array(True), np.ones((4, 2, 3), bool)):
        for value in (0.0, -1.5, 7, np.inf if dtype in FLOATS else 3):
            out = m.masked_fill(mp.tensor(mask), value)
            np.testing.assert_array_equal(out.numpy(), np.where(mask, np.asarray(value).astype(dtype), a))
            same(out, t.masked_fill(torch.tensor(mask), value))
            same(mp.masked_fill(m, mask, value), torch.masked_fill(t, torch.tensor(mask), value))
    v64 = torch.tensor(2.0, dtype=torch.float64)
    same(m.masked_fill(mp.tensor(a > 0), mp.tensor(2.0, dtype=mp.float64)), t.masked_fill(torch.tensor(a > 0), v64))


def test_masked_fill_gradients_to_input_and_to_a_0d_value_match_torch():
    a = rng.uniform(-1, 1, (2, 3))
    mask = np.array([[True, False, False], [False, True, True]])
    same_grads(lambda v: v.masked_fill(mp.tensor(mask), 0.5), lambda v: v.masked_fill(torch.tensor(mask), 0.5), a)
    bmask = np.array([True, False, True])
    same_grads(lambda v: v.masked_fill(mp.tensor(np.ones((2, 1, 3), bool) & bmask), 0.0),
               lambda v: v.masked_fill(torch.tensor(np.ones((2, 1, 3), bool) & bmask), 0.0), a)
    mv, tv = both(np.array(1.25), requires_grad=True)
    m, t = both(a, requires_grad=True)
    g = rng.uniform(-1, 1, (2, 3))
    m.masked_fill(mp.tensor(mask), mv).backward(g)
    t.masked_fill(torch.tensor(mask), tv).backward(torch.tensor(g))
    same(mv.grad, tv.grad, rtol=1e-12)
    same(m.grad, t.grad)
    value = mp.tensor(0.5, dtype="float64", requires_grad=True)
    assert mp.gradcheck(lambda v, w: v.masked_fill(mp.tensor(mask), w), [f64((2, 3)), value])


def test_masked_fill_refuses_bad_mask_and_value_naming_them():
    x = mp.zeros(2, 3)
    with pytest.raises(RuntimeError):
        torch.zeros(2, 3).masked_fill(torch.tensor([1, 0, 1]), 0.0)
    with pytest.raises(TypeError, match="masked_fill: mask must be a bool tensor, got dtype int64"):
        x.masked_fill(mp.tensor([1, 0, 1]), 0.0)
    with pytest.raises(ValueError, match=r"mask of shape \(2,\) cannot be broadcast with the input's shape \(2, 3\)"):
        x.masked_fill(mp.tensor([True, False]), 0.0)
    with pytest.raises(ValueError, match="value must be a number or a 0-d tensor, got a tensor of shape"):
        x.masked_fill(mp.tensor([True, False, True]), mp.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(TypeError, match="value must be a number or a 0-d tensor, got list"):
        x.masked_fill(mp.tensor([True, False, True]), [1.0])


# =========================================================================== sort, argsort, topk
def loop_sort_order(values, descending):
    """Stable order of a 1-d list with NaN as the largest value, by insertion sort."""
    def before(i, j):  # should element i come before element j?
        a, b = values[i], values[j]
        key_a, key_b = (math.isnan(a), 0.0 if math.isnan(a) else a), (math.isnan(b), 0.0 if math.isnan(b) else b)
        return key_a > key_b if descending else key_a < key_b
    order = []
    for i in range(len(values)):
        pos = len(order)
        while pos > 0 and before(i, order[pos - 1]):
            pos -= 1
        order.insert(pos, i)
    return order


TIES = np.array([1.0, 3.0, np.nan, 3.0, -np.inf, 2.0, np.nan, 1.0, np.inf, -0.0, 0.0, 3.0], np.float32)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_sort_is_stable_with_nan_largest_like_a_loop_and_torchs_stable_sort(descending, dtype):
    a = TIES.astype(dtype) if dtype in FLOATS else rng.integers(0, 3, 12).astype(dtype)
    m, t = both(a)
    values, indices = m.sort(descending=descending)
    order = loop_sort_order([float(v) for v in a], descending)
    assert indices.tolist() == order
    np.testing.assert_array_equal(values.numpy(), a[order])
    expected = torch.sort(t, descending=descending, stable=True)
    same(values, expected.values)
    same(indices, expected.indices)
    same(mp.argsort(m, descending=descending), torch.argsort(t, descending=descending, stable=True))
    # torch's default sort is not stable: same values, and indices that point at them
    default = t.sort(descending=descending)
    same(values, default.values)
    np.testing.assert_array_equal(a[default.indices.numpy()], values.numpy())
    assert type(m.sort()).__name__ == "sort" and m.sort()._fields == ("values", "indices")


def test_sort_and_argsort_along_every_dim_match_torch_stable():
    a = rng.integers(0, 4, (3, 4, 5)).astype(np.float32)
    a[0, 1, 2] = np.nan
    m, t = both(a)
    for dim, descending in itertools.product(range(-3, 3), (False, True)):
        got = mp.sort(m, dim, descending)
        expected = torch.sort(t, dim=dim, descending=descending, stable=True)
        same(got.values, expected.values)
        same(got.indices, expected.indices)
        same(m.argsort(dim, descending), t.argsort(dim=dim, descending=descending, stable=True))
        same(m.sort(dim=dim, descending=descending, stable=True).indices, expected.indices)
    for a in (np.array(2.5, np.float32), np.zeros((0, 3), np.float32), np.zeros((2, 0), np.float32)):
        m, t = both(a)
        for dim in (0, -1):
            got, expected = m.sort(dim), t.sort(dim=dim, stable=True)
            same(got.values, expected.values)
            same(got.indices, expected.indices)
    with pytest.raises(IndexError, match="sort: dimension out of range"):
        mp.zeros(2, 3).sort(2)


def test_sort_gradient_goes_to_the_source_elements_like_torch():
    a = rng.permutation(12).reshape(3, 4).astype(np.float64)
    for dim, descending in itertools.product((0, 1, -1), (False, True)):
        same_grads(lambda v, d=dim, s=descending: v.sort(d, s).values,
                   lambda v, d=dim, s=descending: v.sort(d, s).values, a)
    assert mp.gradcheck(lambda v: v.sort(1).values, [f64((3, 4))])
    assert mp.gradcheck(lambda v: mp.sort(v, 0, descending=True)[0], [f64((3, 4), seed=2)])
    assert mp.argsort(f64((3,))).grad_fn is None


@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_a_loop_and_torch(largest):
    a = rng.permutation(40).reshape(4, 10).astype(np.float32)  # distinct values: one right answer
    m, t = both(a)
    for k, dim in itertools.product((0, 1, 3, 4), (0, 1, -1, -2)):
        got = m.topk(k, dim, largest)
        expected = t.topk(k, dim, largest)
        same(got.values, expected.values)
        same(got.indices, expected.indices)
        moved = np.moveaxis(a, dim, -1)
        for idx in np.ndindex(moved.shape[:-1]):
            row = sorted(moved[idx].tolist(), reverse=largest)[:k]
            assert np.moveaxis(got.values.numpy(), dim, -1)[idx].tolist() == row
    got = mp.topk(m, 2, largest=largest, sorted=False)
    assert type(got).__name__ == "topk"
    same(got.values, torch.topk(t, 2, largest=largest, sorted=True).values)


def test_topk_with_ties_and_nan_gives_torchs_values_and_valid_indices():
    a = TIES
    m, t = both(a)
    for k, largest in itertools.product(range(len(a) + 1), (True, False)):
        got, expected = m.topk(k, largest=largest), t.topk(k, largest=largest)
        same(got.values, expected.values)
        np.testing.assert_array_equal(a[got.indices.numpy()], got.values.numpy())
        order = loop_sort_order([float(v) for v in a], largest)[:k]  # lower index first among ties
        assert got.indices.tolist() == order
    same(mp.topk(mp.tensor(3.0), 1).values, torch.topk(torch.tensor(3.0), 1).values)
    same(mp.topk(mp.tensor(3.0), 1).indices, torch.topk(torch.tensor(3.0), 1).indices)


def test_topk_gradient_matches_torch_and_finite_differences():
    a = rng.permutation(20).reshape(4, 5).astype(np.float64)
    for k, dim, largest in itertools.product((1, 3), (0, 1), (True, False)):
        same_grads(lambda v: v.topk(k, dim, largest).values, lambda v: v.topk(k, dim, largest).values, a)
    assert mp.gradcheck(lambda v: v.topk(2).values, [f64((3, 5))])
    assert mp.gradcheck(lambda v: v.topk(2, dim=0, largest=False)[0], [f64((3, 5), seed=7)])


def test_topk_refuses_k_out_of_range_naming_it():
    with pytest.raises(RuntimeError):
        torch.arange(5.0).topk(6)
    with pytest.raises(ValueError, match="topk: k=6 is out of range for dim -1 of size 5"):
        mp.arange(5.0).topk(6)
    with pytest.raises(ValueError, match="topk: k=-1 is out of range"):
        mp.arange(5.0).topk(-1)
    with pytest.raises(TypeError, match="topk: k must be an int"):
        mp.arange(5.0).topk(1.0)
    with pytest.raises(IndexError, match="topk: dimension out of range"):
        mp.arange(5.0).topk(1, dim=1)


# =========================================================================== new_*, half
def test_new_zeros_ones_full_take_the_tensors_dtype_like_torch():
    for a in (np.zeros(2, np.float32), np.zeros(2, np.float64), np.zeros(2, np.int32), np.zeros(2, np.bool_)):
        m, t = both(a)
        same(m.new_zeros(2, 3), t.new_zeros(2, 3))
        same(m.new_zeros((2, 3)), t.new_zeros((2, 3)))
        same(m.new_ones([3]), t.new_ones([3]))
        same(m.new_ones(()), t.new_ones(()))
        same(m.new_full((2,), 3), t.new_full((2,), 3))
        same(m.new_full((2, 2), fill_value=1), t.new_full((2, 2), fill_value=1))
        same(m.new_zeros(2, dtype=mp.float64), t.new_zeros(2, dtype=torch.float64))
    n = mp.zeros(1).new_ones(3, requires_grad=True)
    assert n.requires_grad and n.is_leaf


def test_half_casts_to_float16_like_torch_but_carries_no_gradient():
    a = np.array([1.0, 2.5, 65504.0, 1e5, -np.inf, np.nan], np.float32)
    m, t = both(a)
    same(m.half(), t.half())
    assert m.half().dtype == mp.float16 == mp.half
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    assert not x.half().requires_grad  # docs/differences.md: minipool differentiates float32/64 only
    assert torch.tensor([1.0, 2.0], requires_grad=True).half().requires_grad


# =========================================================================== module-level names
NEW_NAMES = ["exp", "log", "sigmoid", "tanh", "relu", "clamp", "flatten", "unsqueeze", "squeeze",
             "reshape", "transpose", "permute", "matmul", "abs", "sqrt", "softmax", "log_softmax",
             "isnan", "isinf", "isfinite", "isclose", "allclose", "equal", "topk", "sort",
             "argsort", "gather", "cumsum", "prod", "norm", "split", "chunk", "t", "masked_fill",
             "all", "any", "nonzero", "square", "rsqrt", "sin", "cos", "floor", "ceil", "round",
             "sign", "neg", "add", "sub", "mul", "div", "pow", "logsumexp"]


def test_every_new_module_level_name_is_a_torch_function_and_exported():
    for name in NEW_NAMES:
        assert hasattr(torch, name), name
        assert callable(getattr(mp, name)), name
        assert name in mp.__all__, name


def test_module_level_aliases_compute_what_torch_computes():
    a = rng.uniform(0.5, 2, (2, 3)).astype(np.float32)
    m, t = both(a)
    cases = [("exp", ()), ("log", ()), ("sigmoid", ()), ("tanh", ()), ("relu", ()), ("abs", ()),
             ("sqrt", ()), ("neg", ()), ("softmax", (1,)), ("log_softmax", (0,)), ("flatten", ()),
             ("unsqueeze", (1,)), ("squeeze", ()), ("reshape", ((3, 2),)), ("transpose", (0, 1)),
             ("permute", ((1, 0),)), ("add", (m, )), ("mul", (2.0,)), ("sub", (1.0,)),
             ("div", (2.0,)), ("pow", (2.0,)), ("logsumexp", (1,))]
    for name, args in cases:
        targs = tuple(t if x is m else x for x in args)
        same(getattr(mp, name)(m, *args), getattr(torch, name)(t, *targs), rtol=1e-6)
    same(mp.clamp(m, 0.7, 1.5), torch.clamp(t, 0.7, 1.5))
    same(mp.clamp(m, min=1.0), torch.clamp(t, min=1.0))
    same(mp.matmul(m, m.t()), torch.matmul(t, t.t()), rtol=1e-6)


def test_new_methods_and_functions_have_doctests():
    names = ["square", "rsqrt", "sin", "cos", "floor", "ceil", "round", "sign", "isnan", "isinf",
             "isfinite", "isclose", "allclose", "equal", "prod", "cumsum", "norm", "all", "any",
             "t", "repeat", "split", "chunk", "gather", "masked_fill", "sort", "argsort", "topk", "nonzero"]
    from minipool.ops import elementwise, indexing, reduce, shape
    for name in names:
        fn = next(getattr(mod, name) for mod in (elementwise, reduce, shape, indexing) if hasattr(mod, name))
        assert ">>>" in (fn.__doc__ or ""), name


# =========================================================================== hypothesis
def _array(draw, max_dims=3, max_side=4, min_side=0):
    shape = tuple(draw(st.lists(st.integers(min_side, max_side), min_size=1, max_size=max_dims)))
    pool = draw(st.sampled_from(["ties", "wide", "special"]))
    if pool == "ties":
        elements = st.sampled_from([-1.0, 0.0, 1.0, 2.0])
    elif pool == "wide":
        elements = st.floats(-100, 100, width=32)
    else:
        elements = st.sampled_from([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan])
    values = draw(st.lists(elements, min_size=math.prod(shape), max_size=math.prod(shape)))
    return np.array(values, dtype=np.float32).reshape(shape)


arrays = st.composite(_array)


@settings(max_examples=60, deadline=None)
@given(arrays(), st.data())
def test_hypothesis_sort_topk_argsort_match_torch(a, data):
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    descending = data.draw(st.booleans())
    m, t = both(a)
    got, expected = m.sort(dim, descending), t.sort(dim=dim, descending=descending, stable=True)
    same(got.values, expected.values)
    same(got.indices, expected.indices)
    same(m.argsort(dim, descending), t.argsort(dim=dim, descending=descending, stable=True))
    k = data.draw(st.integers(0, a.shape[dim]))
    got, expected = m.topk(k, dim, descending), t.topk(k, dim, descending)
    same(got.values, expected.values)
    picked = np.take_along_axis(a, got.indices.numpy(), dim)
    np.testing.assert_array_equal(picked, got.values.numpy())


@settings(max_examples=60, deadline=None)
@given(arrays(), st.data())
def test_hypothesis_reductions_match_torch(a, data):
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    keepdim = data.draw(st.booleans())
    m, t = both(a)
    same(m.cumsum(dim), t.cumsum(dim), rtol=1e-5, atol=1e-4)
    with np.errstate(over="ignore"):
        same(m.prod(dim, keepdim), t.prod(dim, keepdim), rtol=1e-5)
    for name in ("all", "any"):
        same(getattr(m, name)(dim, keepdim), getattr(t, name)(dim, keepdim))
    p = data.draw(st.sampled_from([1, 2, 3, math.inf, 0]))
    if not (p == math.inf and a.shape[dim] == 0):
        same(m.norm(p, dim, keepdim), t.norm(p, dim, keepdim), rtol=1e-5, atol=1e-30)
    same(m.nonzero(), t.nonzero())


@settings(max_examples=60, deadline=None)
@given(arrays(min_side=1), st.data())
def test_hypothesis_shape_and_indexing_ops_and_gradients_match_torch(a, data):
    a = np.nan_to_num(a, nan=0.5, posinf=3.0, neginf=-3.0).astype(np.float64)
    dim = data.draw(st.integers(-a.ndim, a.ndim - 1))
    n = a.shape[dim]
    size = data.draw(st.integers(1, n + 1))
    same_grads(lambda v: mp.cat([p * (i + 1) for i, p in enumerate(v.split(size, dim))], dim),
               lambda v: torch.cat([p * (i + 1) for i, p in enumerate(v.split(size, dim))], dim), a)
    chunks = data.draw(st.integers(1, n + 2))
    assert [p.shape for p in mp.chunk(mp.tensor(a), chunks, dim)] == \
        [tuple(p.shape) for p in torch.chunk(torch.tensor(a), chunks, dim)]
    index_shape = [data.draw(st.integers(0, s)) for s in a.shape]
    index_shape[dim % a.ndim] = data.draw(st.integers(0, 5))
    index = np.random.default_rng(data.draw(st.integers(0, 99))).integers(0, n, index_shape)
    same_grads(lambda v: v.gather(dim, mp.tensor(index)), lambda v: v.gather(dim, torch.tensor(index)), a)
    reps = tuple(data.draw(st.lists(st.integers(0, 3), min_size=a.ndim, max_size=a.ndim + 1)))
    same_grads(lambda v: v.repeat(*reps), lambda v: v.repeat(*reps), a, rtol=1e-12)
    mask = a > 0
    same_grads(lambda v: v.masked_fill(mp.tensor(mask), -1.0),
               lambda v: v.masked_fill(torch.tensor(mask), -1.0), a)
    same_grads(lambda v: v.cumsum(dim), lambda v: v.cumsum(dim), a, rtol=1e-12, atol=1e-12)
    same_grads(lambda v: v.prod(dim), lambda v: v.prod(dim), a, rtol=1e-9, atol=1e-12)
    same_grads(lambda v: v.norm(2, dim), lambda v: v.norm(2, dim), a, rtol=1e-9, atol=1e-12)
