"""log1p expm1 log2 log10 erf erfc erfinv sinh cosh tan asin acos atan atan2 hypot trunc
cumprod diff nan_to_num logspace meshgrid: scalar (math-module) references, PyTorch parity
under hypothesis (NaN/+-inf/-0, int/bool inputs, float32/float64 promotion), float64
finite differences, errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minipool as mp
from tests.core.parity_helpers import assert_parity

torch = pytest.importorskip("torch")

specials = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 0.999, -0.999, 2.0, -3.5, 1e-7, 30.0, -30.0,
            np.nan, np.inf, -np.inf]

# name -> the scalar function of Python's math module (the loop reference), NaN outside its domain
SCALAR = {"log1p": math.log1p, "expm1": math.expm1, "log2": math.log2, "log10": math.log10,
          "erf": math.erf, "erfc": math.erfc, "sinh": math.sinh, "cosh": math.cosh, "tan": math.tan,
          "asin": math.asin, "acos": math.acos, "atan": math.atan, "trunc": math.trunc}


def scalar_reference(fn, values):
    out = []
    for v in values:
        try:
            out.append(float(fn(v)))
        except ValueError:  # outside the domain: PyTorch's NaN or -inf
            out.append(-math.inf if v == (-1 if fn is math.log1p else 0) else math.nan)
        except OverflowError:
            out.append(math.copysign(math.inf, v) if fn is not math.cosh else math.inf)
    return np.array(out)


@pytest.mark.parametrize("name", sorted(SCALAR) + ["erfinv"])
def test_unary_against_scalar_reference_and_torch(name):
    x = np.array(specials)
    with np.errstate(all="ignore"):
        got = getattr(mp, name)(mp.tensor(x)).numpy()
    if name != "erfinv":
        finite = np.isfinite(x) | (name in ("erf", "erfc", "atan", "trunc"))
        want = scalar_reference(SCALAR[name], [v if np.isfinite(v) else v for v in x])
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-14, equal_nan=True)
    for dtype in (np.float64, np.float32):
        assert_parity(lambda lib, a: getattr(lib, name)(a), [x.astype(dtype)], grads=(0,),
                      rtol=2e-6 if dtype == np.float32 else 1e-12, atol=1e-30)
        assert_parity(lambda lib, a: getattr(a, name)(), [x.astype(dtype)])
    np.testing.assert_array_equal(np.signbit(got[:2]), np.signbit(getattr(torch, name)(torch.tensor(x[:2])).numpy()))


@pytest.mark.parametrize("name", sorted(SCALAR) + ["erfinv"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_unary_integer_input_gives_torch_dtype(name, dtype):
    x = np.array([0, 1, 2, 1]).astype(dtype)
    if name in ("asin", "acos", "erfinv"):
        x = np.array([0, 1, 0, 1]).astype(dtype)
    try:
        getattr(torch, name)(torch.tensor(x))
    except RuntimeError:  # trunc of bool: refused by both
        with pytest.raises((RuntimeError, TypeError), match=name):
            getattr(mp, name)(mp.tensor(x))
        return
    assert_parity(lambda lib, a: getattr(lib, name)(a), [x], rtol=2e-6)


def test_erfinv_inverts_erf_to_float64_accuracy():
    y = np.linspace(-0.999999, 0.999999, 2001)
    x = mp.erfinv(mp.tensor(y)).numpy()
    np.testing.assert_allclose([math.erf(v) for v in x], y, rtol=0, atol=4e-16)
    np.testing.assert_allclose(x, torch.erfinv(torch.tensor(y)).numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["log1p", "expm1", "log2", "log10", "erf", "erfc", "erfinv",
                                  "sinh", "cosh", "tan", "asin", "acos", "atan"])
def test_unary_float64_gradcheck(name):
    points = [0.1, 0.45, 0.8, 2.5] if name in ("log2", "log10") else [-0.7, -0.2, 0.1, 0.45, 0.8]
    assert mp.gradcheck(getattr(mp, name), [mp.tensor(np.array(points), requires_grad=True)])


# --------------------------------------------------------------------------- binary
pairs = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, -3.0, np.nan, np.inf, -np.inf, 1e-300])


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shapes=st.sampled_from([((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 4)), ((), (2,))]))
def test_atan2_hypot_against_reference_and_torch(data, shapes):
    a = np.array(data.draw(st.lists(pairs, min_size=int(np.prod(shapes[0])),
                                    max_size=int(np.prod(shapes[0]))))).reshape(shapes[0])
    b = np.array(data.draw(st.lists(pairs, min_size=int(np.prod(shapes[1])),
                                    max_size=int(np.prod(shapes[1]))))).reshape(shapes[1])
    got = mp.atan2(mp.tensor(a), mp.tensor(b)).numpy()
    aa, bb = np.broadcast_arrays(a, b)
    want = np.array([math.atan2(p, q) for p, q in zip(aa.ravel(), bb.ravel())]).reshape(aa.shape)
    np.testing.assert_allclose(got, want, rtol=4e-16, atol=0)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))  # -0.0 and the quadrant
    np.testing.assert_array_equal(mp.hypot(mp.tensor(a), mp.tensor(b)).numpy(),
                                  np.array([math.hypot(p, q) for p, q in zip(aa.ravel(), bb.ravel())]
                                           ).reshape(aa.shape))
    for name in ("atan2", "hypot"):
        assert_parity(lambda lib, x, y: getattr(lib, name)(x, y), [a, b], grads=(0, 1), rtol=1e-12)
        assert_parity(lambda lib, x, y: getattr(x, name)(y), [a.astype(np.float32), b], grads=(0, 1),
                      rtol=1e-6)


def test_binary_promotion_and_numbers_match_torch():
    a32, a64, ints = np.array([1.0, -2.0], np.float32), np.array([0.5, 3.0]), np.array([1, -2])
    assert_parity(lambda lib, x, y: lib.atan2(x, y), [a32, ints])
    assert_parity(lambda lib, x, y: lib.atan2(x, y), [ints, ints])
    assert_parity(lambda lib, x, y: lib.atan2(x, y), [a32, a64], grads=(0, 1))
    assert_parity(lambda lib, x: lib.atan2(x, lib.tensor(2.0)), [a32], grads=(0,))
    np.testing.assert_array_equal(mp.atan2(mp.tensor(a32), 2.0).numpy(),  # a number: the tensor's dtype
                                  mp.atan2(mp.tensor(a32), mp.tensor(2.0)).numpy())
    assert_parity(lambda lib, x: lib.hypot(x, lib.tensor(2.0)), [a32], grads=(0,))
    assert_parity(lambda lib, x, y: lib.hypot(x, y), [ints, a32], grads=(1,))
    with pytest.raises(RuntimeError, match="hypot: input or other must be a float tensor"):
        mp.hypot(mp.tensor(ints), mp.tensor(ints))
    with pytest.raises(RuntimeError):
        torch.hypot(torch.tensor(ints), torch.tensor(ints))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        mp.atan2(mp.ones(2), mp.ones(3))


def test_binary_float64_gradcheck():
    a = mp.tensor(np.array([[0.3, -1.2, 2.0]]), requires_grad=True)
    b = mp.tensor(np.array([[0.7], [-0.4]]), requires_grad=True)
    assert mp.gradcheck(mp.atan2, [a, b]) and mp.gradcheck(mp.hypot, [a, b])


# --------------------------------------------------------------------------- cumprod
def reference_cumprod(row):
    out, running = [], 1.0
    for v in row:
        running = running * v
        out.append(running)
    return out


@settings(max_examples=60, deadline=None)
@given(data=st.data(), shape=st.sampled_from([(5,), (3, 4), (2, 3, 4), (1,), (4, 1)]))
def test_cumprod_against_reference_and_torch_incl_zeros(data, shape):
    n = int(np.prod(shape))
    x = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.0, 1.5, -2.0, 0.5, 3.0, -1.0]),
                                    min_size=n, max_size=n))).reshape(shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    got = mp.cumprod(mp.tensor(x), dim).numpy()
    rows = np.moveaxis(x, dim, -1).reshape(-1, shape[dim])
    want = np.array([reference_cumprod(r) for r in rows]).reshape(np.moveaxis(x, dim, -1).shape)
    np.testing.assert_array_equal(got, np.moveaxis(want, -1, dim))
    assert_parity(lambda lib, a: lib.cumprod(a, dim), [x], grads=(0,), rtol=1e-12)
    assert mp.gradcheck(lambda a: mp.cumprod(a, dim), [mp.tensor(x, requires_grad=True)])


def test_cumprod_specials_dtypes_and_dtype_argument():
    x = np.array([[2.0, np.nan, 0.0, np.inf], [-0.0, np.inf, 3.0, -1.0]])
    assert_parity(lambda lib, a: lib.cumprod(a, 1), [x])
    for dtype in (np.int32, np.int64, np.bool_):
        assert_parity(lambda lib, a: a.cumprod(0), [np.array([1, 2, 0, 3]).astype(dtype)])
    assert_parity(lambda lib, a: lib.cumprod(a, 0, dtype=lib.float64), [np.array([1, 2, 3], np.int32)])
    assert_parity(lambda lib, a: lib.cumprod(a, 0), [np.array(2.5)], grads=(0,))
    with pytest.raises(IndexError, match="dimension out of range"):
        mp.cumprod(mp.ones(2), 1)


# --------------------------------------------------------------------------- diff
@settings(max_examples=60, deadline=None)
@given(data=st.data(), shape=st.sampled_from([(5,), (3, 4), (2, 3, 4)]), n=st.integers(0, 4))
def test_diff_against_reference_and_torch(data, shape, n):
    count = int(np.prod(shape))
    x = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, -2.5, 4.0, np.nan, np.inf]),
                                    min_size=count, max_size=count))).reshape(shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    got = mp.diff(mp.tensor(x), n, dim).numpy()
    want = np.moveaxis(x, dim, -1)
    for _ in range(n):
        want = np.stack([want[..., i + 1] - want[..., i] for i in range(want.shape[-1] - 1)], -1) \
            if want.shape[-1] > 1 else want[..., :0]
    np.testing.assert_array_equal(got, np.moveaxis(want, -1, dim))
    assert_parity(lambda lib, a: lib.diff(a, n, dim), [x], grads=(0,))
    side = list(shape)
    side[dim] = 2
    extra = np.arange(np.prod(side), dtype=np.float64).reshape(side)
    assert_parity(lambda lib, a, p, q: a.diff(n, dim, prepend=p, append=q), [x, extra, extra[..., :]],
                  grads=(0, 1, 2))


def test_diff_int_bool_and_errors_match_torch():
    assert_parity(lambda lib, a: lib.diff(a), [np.array([1, 5, 2, 2])])
    assert_parity(lambda lib, a: lib.diff(a, 2), [np.array([True, False, False, True])])
    assert_parity(lambda lib, a: lib.diff(a, 1, 0, a[:1]), [np.array([1.0, 4.0])])
    for call, torch_call in [(lambda: mp.diff(mp.tensor(1.0)), lambda: torch.diff(torch.tensor(1.0))),
                             (lambda: mp.diff(mp.ones(3), -1), lambda: torch.diff(torch.ones(3), -1)),
                             (lambda: mp.diff(mp.ones(3), prepend=mp.ones(1, 1)),
                              lambda: torch.diff(torch.ones(3), prepend=torch.ones(1, 1)))]:
        with pytest.raises(RuntimeError):
            torch_call()
        with pytest.raises(RuntimeError, match="diff"):
            call()


# --------------------------------------------------------------------------- nan_to_num
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", [{}, {"nan": 2.0}, {"posinf": 1e3, "neginf": -5.0}, {"posinf": 1e300}])
def test_nan_to_num_matches_reference_and_torch(dtype, kwargs):
    x = np.array([np.nan, np.inf, -np.inf, -0.0, 1.5]).astype(dtype)
    assert_parity(lambda lib, a: lib.nan_to_num(a, **kwargs), [x], grads=(0,))
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        want = [dtype(kwargs.get("nan", 0.0)), dtype(kwargs.get("posinf", info.max)),
                dtype(kwargs.get("neginf", info.min)), -0.0, 1.5]
    np.testing.assert_array_equal(mp.tensor(x).nan_to_num(**kwargs).numpy(), np.array(want, dtype))
    assert_parity(lambda lib, a: lib.nan_to_num(a), [np.array([1, 2])])


# --------------------------------------------------------------------------- factories
@pytest.mark.parametrize("args, kwargs", [((0, 3, 4), {}), ((-2, 2, 5), {"base": 2.0}), ((1, 0, 3), {}),
                                          ((0, 1, 1), {}), ((0, 1, 0), {}), ((0, 2, 3), {"dtype": "float64"}),
                                          ((0, 2, 3), {"dtype": "int64"}), ((0.5, 2.5, 7), {"base": 3})])
def test_logspace_matches_torch(args, kwargs):
    got = mp.logspace(*args, **kwargs)
    want = torch.logspace(*args, **{k: getattr(torch, v) if k == "dtype" else v for k, v in kwargs.items()})
    assert got.dtype == want.numpy().dtype and got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="steps"):
        mp.logspace(0, 1, -1)


@pytest.mark.parametrize("indexing", ["ij", "xy"])
def test_meshgrid_matches_torch_and_gradients_sum(indexing):
    a, b, c = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0]), np.array([7.0, 8.0, 9.0, 10.0])
    assert_parity(lambda lib, x, y, z: lib.meshgrid(x, y, z, indexing=indexing), [a, b, c], grads=(0, 1, 2))
    assert_parity(lambda lib, x, y: lib.meshgrid([x, y], indexing=indexing), [a, b])
    assert_parity(lambda lib, x: lib.meshgrid(x, indexing=indexing), [a], grads=(0,))
    assert_parity(lambda lib, x, y: lib.meshgrid(x, y, indexing=indexing), [np.array([1, 2]), np.array(3)])
    gx, gy = mp.meshgrid(mp.tensor(a), mp.tensor(b), indexing=indexing)
    for i, j in np.ndindex(*gx.shape):
        rows, cols = (i, j) if indexing == "ij" else (j, i)
        assert gx.numpy()[i, j] == a[rows] and gy.numpy()[i, j] == b[cols]


def test_meshgrid_default_warns_and_errors():
    with pytest.warns(UserWarning, match="indexing"):
        x, y = mp.meshgrid(mp.tensor([1, 2]), mp.tensor([3, 4, 5]))
    assert x.shape == (2, 3)
    with pytest.raises(RuntimeError, match="indexing must be"):
        mp.meshgrid(mp.ones(2), indexing="ji")
    with pytest.raises(RuntimeError, match="same dtype"):
        mp.meshgrid(mp.ones(2), mp.tensor([1, 2]), indexing="ij")
    with pytest.raises(RuntimeError, match="0-d or 1-d"):
        mp.meshgrid(mp.ones(2, 2), indexing="ij")
