"""LP pooling in 3-d (lp_pool3d, LPPool3d), the +-inf norms of every lp_pool, and the
rule for cells that no window reads.

Oracles: a loop reference written here ((sum over the window of x**p) ** (1/p),
gradient x**(p-1) / out**(p-1)), PyTorch 2.13 (whole windows to rounding; the
+-inf norms bit for bit, since both are max/min pooling of |x|), float64 finite
differences, hypothesis over shapes/strides/norms.  PyTorch differences checked
as claims: ceil_mode partial windows (PyTorch rescales by kernel/count) and the
NaN gradient PyTorch gives a negative cell that no window reads.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from tests.pooling.pooling_cases import FLOAT_DTYPES

TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def out_len(n, k, s, ceil):
    o = (n - k + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= n:
        o -= 1
    return o


def ref_lp3d(x, p, kernel, stride, ceil=False):
    """(N, C, D, H, W) -> values and the gradient of sum(out * g) for a given g (float64)."""
    N, C = x.shape[:2]
    out_shape = tuple(out_len(n, k, s, ceil) for n, k, s in zip(x.shape[2:], kernel, stride))
    out = np.empty((N, C) + out_shape)
    cells = {}
    for n in range(N):
        for c in range(C):
            for pos in np.ndindex(*out_shape):
                lo = [i * s for i, s in zip(pos, stride)]
                hi = [min(a + k, size) for a, k, size in zip(lo, kernel, x.shape[2:])]
                win = x[n, c, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float64)
                if math.isinf(p):
                    out[(n, c) + pos] = np.abs(win).max() if p > 0 else np.abs(win).min()
                else:
                    out[(n, c) + pos] = np.sum(win ** p) ** (1.0 / p)
                cells[(n, c) + pos] = (lo, hi)
    return out, cells


def ref_grad(x, p, out, cells, g):
    grad = np.zeros(x.shape)
    for key, (lo, hi) in cells.items():
        y = out[key]
        if y == 0:
            continue
        n, c = key[:2]
        win = x[n, c, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float64)
        grad[n, c, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] += g[key] * win ** (p - 1) / y ** (p - 1)
    return grad


CASES = [((2, 3, 6, 5, 7), (2, 2, 2), None), ((1, 2, 7, 7, 7), (3, 2, 3), (2, 1, 2)),
         ((2, 1, 4, 6, 5), 3, 1), ((1, 1, 5, 5, 5), (1, 5, 2), (1, 1, 3))]


def triple(v):
    return (v,) * 3 if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("p", [1, 2, 3, 1.5, 0.7])
@pytest.mark.parametrize("shape,kernel,stride", CASES)
def test_matches_loop_reference(shape, kernel, stride, p, dtype):
    rng = np.random.default_rng(7)
    x = (rng.random(shape) + 0.1).astype(dtype)
    k3, s3 = triple(kernel), triple(stride if stride is not None else kernel)
    out, cells = ref_lp3d(x, p, k3, s3)
    t = mp.tensor(x, requires_grad=True)
    y = F.lp_pool3d(t, p, kernel, stride)
    np.testing.assert_allclose(y.numpy(), out, **TOL[dtype])
    g = rng.standard_normal(out.shape).astype(dtype)
    y.backward(mp.tensor(g))
    np.testing.assert_allclose(t.grad.numpy(), ref_grad(x, p, out, cells, g),
                               **{**TOL[dtype], "atol": 1e-5 if dtype == np.float32 else 1e-11})


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
@pytest.mark.parametrize("shape,kernel,stride", CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_parity_whole_windows(shape, kernel, stride, p, dtype, channels_last):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    if p != int(p):
        x = np.abs(x) + 0.05                         # x ** 1.5 of negatives is NaN in both
    g = None
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.lp_pool3d(tx, p, kernel, stride)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(g))
    data = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
    t = mp.tensor(data, requires_grad=True)
    y = F.lp_pool3d(t, p, kernel, stride, data_format="channels_last" if channels_last else None)
    gg = np.ascontiguousarray(np.moveaxis(g, 1, -1)) if channels_last else g
    y.backward(mp.tensor(gg))
    back = (lambda a: np.moveaxis(a, -1, 1)) if channels_last else (lambda a: a)
    ty_np = ty.detach().numpy()
    # PyTorch averages and multiplies back by the kernel volume: rounding only
    np.testing.assert_allclose(back(y.numpy()), ty_np, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               equal_nan=True)
    np.testing.assert_allclose(back(t.grad.numpy()), tx.grad.numpy(),
                               rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-5 if dtype == np.float32 else 1e-12, equal_nan=True)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("p", [math.inf, -math.inf])
@pytest.mark.parametrize("op,rank", [("lp_pool1d", 1), ("lp_pool2d", 2), ("lp_pool3d", 3)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_infinite_norms_equal_torch_bit_for_bit(op, rank, p, dtype, ceil_mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(rank)
    shape = (2, 3) + (7,) * rank
    x = rng.integers(-3, 4, size=shape).astype(dtype)      # ties, zeros of both signs
    x.reshape(-1)[::9] = np.nan
    x.reshape(-1)[4::11] = -np.inf
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, op)(tx, p, 2, ceil_mode=ceil_mode)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.tensor(g))
    t = mp.tensor(x, requires_grad=True)
    y = getattr(F, op)(t, p, 2, ceil_mode=ceil_mode)
    y.backward(mp.tensor(g))
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    np.testing.assert_array_equal(t.grad.numpy(), tx.grad.numpy())


def test_ceil_mode_partial_windows_differ_from_torch_as_documented():
    """minipool: the norm of the real cells.  PyTorch: that norm times
    (kernel volume / real cells) ** (1/p) (its average times the full kernel)."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((1, 1, 5, 4, 3)) + 0.5
    p = 2
    y = F.lp_pool3d(mp.tensor(x), p, 2, ceil_mode=True).numpy()
    ty = torch.nn.functional.lp_pool3d(torch.tensor(x), p, 2, ceil_mode=True).numpy()
    out, cells = ref_lp3d(x, p, (2, 2, 2), (2, 2, 2), ceil=True)
    np.testing.assert_allclose(y, out, rtol=1e-12)
    counts = np.zeros(out.shape)
    for key, (lo, hi) in cells.items():
        counts[key] = np.prod(np.subtract(hi, lo))
    np.testing.assert_allclose(ty, out * (8 / counts) ** (1 / p), rtol=1e-12)
    whole = counts == 8
    assert whole.any() and (~whole).any()
    np.testing.assert_allclose(y[whole], ty[whole], rtol=1e-12)


@pytest.mark.parametrize("op,x,kernel", [
    ("lp_pool1d", [[0.5, -1.0, 2.0, 3.0, -4.0]], 2),          # the example
    ("lp_pool2d", np.full((1, 3, 3), -2.0), 2),
    ("lp_pool3d", np.full((1, 3, 3, 3), -2.0), 2),
    ("lp_pool1d", [[1.0, 1.0, 1.0, 2.0, 0.0]], 2),           # 0 with p < 1 (below)
])
def test_cells_no_window_reads_get_zero_gradient(op, x, kernel):
    """A cell outside every window cannot change the output: its gradient is 0.
    PyTorch returns NaN there (0 * p * x**(p-1), with x**(p-1) NaN for negative x
    and a fractional p, or inf for x = 0 and p < 1): documented difference."""
    torch = pytest.importorskip("torch")
    x = np.asarray(x, dtype=np.float64)
    p = 0.5 if x.ravel()[-1] == 0 else 1.5
    t = mp.tensor(x, requires_grad=True)
    getattr(F, op)(t, p, kernel).sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    getattr(torch.nn.functional, op)(tx, p, kernel).sum().backward()
    read = np.zeros(x.shape, bool)
    rank = int(op[-2])
    region = tuple(slice(0, (n // kernel) * kernel) for n in x.shape[-rank:])
    read[(Ellipsis,) + region] = True
    assert (t.grad.numpy()[~read] == 0).all()
    assert np.isnan(tx.grad.numpy()[~read]).all()            # PyTorch's NaN, verified
    np.testing.assert_allclose(t.grad.numpy()[read], tx.grad.numpy()[read], equal_nan=True)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("p", [1, 2, 2.5])
def test_gradcheck(p, channels_last):
    rng = np.random.default_rng(1)
    shape = (2, 2, 5, 4, 5)
    x = rng.random(shape) + 0.2
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    t = mp.tensor(x, requires_grad=True)
    fmt = "channels_last" if channels_last else None
    assert mp.gradcheck(lambda v: F.lp_pool3d(v, p, (2, 3, 2), (1, 1, 2), ceil_mode=True,
                                              data_format=fmt), [t])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_hypothesis_against_reference(data):
    spatial = tuple(data.draw(st.integers(1, 6)) for _ in range(3))
    kernel = tuple(data.draw(st.integers(1, n)) for n in spatial)
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(3))
    ceil = data.draw(st.booleans())
    p = data.draw(st.sampled_from([1, 2, 3, 0.5, 1.5, 4.0, math.inf, -math.inf]))
    shape = (data.draw(st.integers(0, 2)), data.draw(st.integers(1, 2))) + spatial
    values = st.sampled_from([0.0, 0.25, 1.0, 2.0, 3.5]) if not math.isinf(p) else \
        st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, np.nan, np.inf, -np.inf])
    x = np.array(data.draw(st.lists(values, min_size=math.prod(shape),
                                    max_size=math.prod(shape)))).reshape(shape)
    out, _ = ref_lp3d(x, p, kernel, stride, ceil)
    y = F.lp_pool3d(mp.tensor(x), p, kernel, stride, ceil_mode=ceil)
    np.testing.assert_allclose(y.numpy(), out, rtol=1e-12, equal_nan=True)


def test_layers():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((2, 3, 6, 6, 6))
    layer = nn.LPPool3d(2, (2, 3, 2), stride=(2, 1, 2))
    ty = torch.nn.LPPool3d(2, (2, 3, 2), stride=(2, 1, 2))(torch.tensor(x)).numpy()
    np.testing.assert_allclose(layer(mp.tensor(x)).numpy(), ty, rtol=1e-12)
    assert "norm_type=2" in repr(layer)
    x1 = np.random.default_rng(1).random((2, 3, 9))
    ty1 = torch.nn.LPPool1d(3, 2)(torch.tensor(x1)).numpy()
    np.testing.assert_allclose(nn.LPPool1d(3, 2)(mp.tensor(x1)).numpy(), ty1, rtol=1e-12)


X = np.ones((1, 2, 4, 4, 4))


@pytest.mark.parametrize("call,error,match", [
    (lambda: F.lp_pool3d(X, 0, 2), ValueError, "norm_type"),
    (lambda: F.lp_pool3d(X, -2, 2), ValueError, "norm_type"),
    (lambda: F.lp_pool3d(X, float("nan"), 2), ValueError, "norm_type"),
    (lambda: F.lp_pool3d(X, "2", 2), TypeError, "norm_type"),
    (lambda: F.lp_pool3d(X, True, 2), TypeError, "norm_type"),
    (lambda: F.lp_pool3d(X, 2, 0), ValueError, "kernel_size"),
    (lambda: F.lp_pool3d(X, 2, 5), ValueError, "too small"),
    (lambda: F.lp_pool3d(X, 2, (2, 2)), TypeError, "kernel_size"),
    (lambda: F.lp_pool3d(X, 2, 2, stride=0), ValueError, "stride"),
    (lambda: F.lp_pool3d(X, 2, 2, ceil_mode=1), TypeError, "ceil_mode"),
    (lambda: F.lp_pool3d(np.ones((4, 4, 4)), 2, 2), ValueError, "4-d"),
    (lambda: F.lp_pool3d(np.ones((1, 2, 4, 4, 4), np.int64), 2, 2), TypeError, "dtype"),
    (lambda: F.lp_pool3d(np.ones((2, 0, 4, 4, 4)), 2, 2), ValueError, "empty non-batch"),
    (lambda: F.lp_pool3d(np.ones((0, 4, 4, 4)), 2, 2), ValueError, "empty non-batch"),
    (lambda: F.lp_pool3d(np.ones((1, 2, 4, 4, 4)), math.inf, 2, ceil_mode="yes"), TypeError,
     "ceil_mode"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
