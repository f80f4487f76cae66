"""In-place math methods (sqrt_ ... lerp_) and trunc/frac/addcmul/addcdiv/lerp: PyTorch parity
(values, dtypes, error classes, leaf and version-counter rules, gradients), loop references,
float64 finite differences, hypothesis over values with NaN, +-inf and -0."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minipool as mp

torch = pytest.importorskip("torch")

UNARY_ = ["sqrt_", "exp_", "log_", "abs_", "sigmoid_", "tanh_", "relu_", "floor_", "ceil_",
          "round_", "sign_", "trunc_", "frac_", "square_", "rsqrt_", "sin_", "cos_"]
SMOOTH_ = ["sqrt_", "exp_", "log_", "sigmoid_", "tanh_", "square_", "rsqrt_", "sin_", "cos_",
           "frac_", "abs_", "relu_"]
special = st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 1e-3, 7.25, -3.75,
                           np.nan, np.inf, -np.inf])


def outcome(fn):
    try:
        return "ok", fn()
    except Exception as e:  # noqa: BLE001  (comparing which error each library raises)
        return "error", type(e).__name__


def as_numpy(t):
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.numpy()


def assert_same(ours, theirs, rtol=1e-6):
    assert ours.shape == tuple(theirs.shape)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_allclose(ours.numpy(), as_numpy(theirs), rtol=rtol, atol=1e-7, equal_nan=True)


def reference(name, v):
    """Each op on one Python float, by hand."""
    if name in ("sqrt_", "rsqrt_", "log_") and v < 0 or math.isnan(v) and name != "sign_":
        return math.nan  # (the sign of NaN is 0 in PyTorch: neither > 0 nor < 0)
    table = {
        "sqrt_": lambda: math.sqrt(v), "exp_": lambda: math.exp(v) if v < 700 else math.inf,
        "log_": lambda: math.log(v) if v > 0 else -math.inf, "abs_": lambda: abs(v),
        "sigmoid_": lambda: 1 / (1 + math.exp(-v)) if v > -700 else 0.0,
        "tanh_": lambda: math.tanh(v), "relu_": lambda: max(v, 0.0), "floor_": lambda: math.floor(v)
        if math.isfinite(v) else v, "ceil_": lambda: math.ceil(v) if math.isfinite(v) else v,
        "round_": lambda: float(round(v)) if math.isfinite(v) else v,  # Python rounds half to even
        "sign_": lambda: (v > 0) - (v < 0), "trunc_": lambda: float(math.trunc(v))
        if math.isfinite(v) else v, "frac_": lambda: v - math.trunc(v) if math.isfinite(v) else math.nan,
        "square_": lambda: v * v,
        "rsqrt_": lambda: 1 / math.sqrt(v) if v != 0 else math.copysign(math.inf, v),  # 1/-0 = -inf
        "sin_": lambda: math.sin(v) if math.isfinite(v) else math.nan,
        "cos_": lambda: math.cos(v) if math.isfinite(v) else math.nan,
    }
    return table[name]()


@settings(max_examples=40, deadline=None)
@given(values=st.lists(special, min_size=1, max_size=8), name=st.sampled_from(UNARY_))
def test_unary_in_place_matches_torch_and_a_loop(values, name):
    x = np.array(values, np.float64)
    ours, theirs = mp.tensor(x), torch.tensor(x)
    with np.errstate(all="ignore"):
        result = getattr(ours, name)()
    assert result is ours  # in place: returns self
    getattr(theirs, name)()
    assert_same(ours, theirs, rtol=1e-12)
    want = [reference(name, v) for v in values]
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", UNARY_)
@pytest.mark.parametrize("dtype", ["int64", "int32", "float32"])
def test_unary_in_place_dtypes_and_errors_match_torch(name, dtype):
    data = np.array([1, -2, 3]).astype(dtype)
    ours, theirs = mp.tensor(data), torch.tensor(data)
    with np.errstate(all="ignore"):
        a = outcome(lambda: getattr(ours, name)())
    b = outcome(lambda: getattr(theirs, name)())
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        # the same class, or (floor/round/... of bool, an older minipool choice) a TypeError
        assert a[1] == b[1] or (a[1], b[1]) == ("RuntimeError", "NotImplementedError"), (a, b)
        np.testing.assert_array_equal(ours.numpy(), data)  # nothing written
    else:
        assert_same(ours, theirs)


@pytest.mark.parametrize("name", UNARY_ + ["pow_", "addcmul_", "addcdiv_", "lerp_"])
def test_in_place_on_a_leaf_that_requires_grad_is_refused_like_torch(name):
    args = {"pow_": (2,), "addcmul_": (mp.ones(2), mp.ones(2)), "addcdiv_": (mp.ones(2), mp.ones(2)),
            "lerp_": (mp.ones(2), 0.5)}.get(name, ())
    t_args = tuple(torch.tensor(a.numpy()) if isinstance(a, mp.Tensor) else a for a in args)
    leaf = mp.tensor([0.5, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        getattr(leaf, name)(*args)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        getattr(torch.tensor([0.5, 2.0], requires_grad=True), name)(*t_args)
    with mp.no_grad():  # how optimisers change a leaf
        getattr(leaf, name)(*args)
    assert leaf.requires_grad and leaf.grad_fn is None


@pytest.mark.parametrize("name", SMOOTH_)
def test_recorded_in_place_gradient_matches_torch_and_finite_differences(name):
    x0 = np.array([[0.3, 1.7, 2.5], [0.9, 1.2, 3.1]])
    g = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])
    grads = []
    for lib in (mp, torch):
        x = lib.tensor(x0, requires_grad=True)
        y = x * 1.5
        out = getattr(y, name)()
        assert out is y and not y.is_leaf
        (y * lib.tensor(g)).sum().backward()
        grads.append(as_numpy(x.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10)
    x = mp.tensor(x0, requires_grad=True)
    assert mp.gradcheck(lambda t: getattr(t * 1.5, name)(), [x])


@pytest.mark.parametrize("name", ["floor_", "ceil_", "round_", "sign_", "trunc_"])
def test_step_in_place_gradient_is_zero_like_torch(name):
    for lib in (mp, torch):
        x = lib.tensor([0.3, -1.7, 2.5], requires_grad=True)
        y = x * 2
        getattr(y, name)()
        y.sum().backward()
        np.testing.assert_array_equal(as_numpy(x.grad), [0.0, 0.0, 0.0])


def test_version_counter_rules_match_torch():
    def saved_input_changed(lib):  # log saves its input: changing it breaks backward
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        z = y.log()
        y.exp_()
        z.sum().backward()

    def saved_result_changed(lib):  # exp saves its result
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        z = (x * 2).exp()
        z.sqrt_()
        (z * 1).sum().backward()
        return x.grad

    def unsaved_input_changed(lib):  # exp and sigmoid keep their results only: fine in both
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        z = y.exp() + y.sigmoid() + y.tanh() + y.sqrt() - y
        y.addcmul_(y, y)
        z.sum().backward()
        return as_numpy(x.grad)

    for fn in (saved_input_changed,):
        assert outcome(lambda: fn(mp))[0] == outcome(lambda: fn(torch))[0] == "error"
        with pytest.raises(RuntimeError, match="modified by an inplace operation.*exp_"):
            fn(mp)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved_result_changed(mp)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        saved_result_changed(torch)
    np.testing.assert_allclose(unsaved_input_changed(mp), unsaved_input_changed(torch), rtol=1e-6)


def test_in_place_bumps_the_version_like_torch():
    for lib in (mp, torch):
        t = lib.tensor([1.0, 4.0])
        before = t._version
        t.sqrt_().exp_().lerp_(lib.tensor([0.0, 1.0]), 0.5).addcmul_(t, t)
        assert t._version == before + 4


# --------------------------------------------------------------------------- out-of-place
@settings(max_examples=40, deadline=None)
@given(values=st.lists(special, min_size=1, max_size=8))
def test_trunc_frac_match_torch_and_math(values):
    x = np.array(values, np.float32)
    for name in ("trunc", "frac"):
        ours, theirs = getattr(mp, name)(mp.tensor(x)), getattr(torch, name)(torch.tensor(x))
        assert_same(ours, theirs)
        assert_same(getattr(mp.tensor(x), name)(), theirs)
    want = [math.trunc(v) if math.isfinite(v) else v for v in x.tolist()]
    np.testing.assert_array_equal(mp.trunc(mp.tensor(x)).numpy(), np.array(want, np.float32))
    np.testing.assert_array_equal(mp.tensor(x).fix().numpy(), mp.trunc(mp.tensor(x)).numpy())


def test_trunc_frac_integer_and_gradients():
    assert mp.trunc(mp.tensor([3, -4])).tolist() == [3, -4] == torch.trunc(torch.tensor([3, -4])).tolist()
    for lib in (mp, torch):
        with pytest.raises(NotImplementedError):
            lib.frac(lib.tensor([3, -4]))
    x = mp.tensor([0.3, -1.7, 2.25], dtype=mp.float64, requires_grad=True)
    assert mp.gradcheck(lambda t: mp.frac(t * 1.1), [x])
    mp.trunc(x * 3).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


shapes = st.sampled_from([((3,), (3,), (3,)), ((2, 3), (3,), (2, 1)), ((1,), (2, 2), (2, 1)),
                          ((2, 1, 3), (4, 1), ()), ((), (), ())])


def fused_reference(name, a, b, c, value):
    """addcmul/addcdiv element by element over the broadcast shape, in PyTorch's order."""
    shape = np.broadcast_shapes(a.shape, b.shape, c.shape)
    a, b, c = (np.broadcast_to(t, shape) for t in (a, b, c))
    out = np.empty(shape)
    for i in np.ndindex(*shape):
        out[i] = a[i] + value * b[i] * c[i] if name == "addcmul" else a[i] + value * b[i] / c[i]
    return out


@settings(max_examples=50, deadline=None)
@given(shape=shapes, data=st.data(), name=st.sampled_from(["addcmul", "addcdiv"]),
       value=st.sampled_from([1, 2, -0.5, 0.1, 0]))
def test_addcmul_addcdiv_match_torch_and_a_loop(shape, data, name, value):
    arrays = [np.array(data.draw(st.lists(special, min_size=int(np.prod(s)), max_size=int(np.prod(s)))),
                       np.float64).reshape(s) for s in shape]
    with np.errstate(all="ignore"):
        ours = getattr(mp, name)(*map(mp.tensor, arrays), value=value)
        method = getattr(mp.tensor(arrays[0]), name)(*map(mp.tensor, arrays[1:]), value=value)
        want = fused_reference(name, *arrays, value)
    theirs = getattr(torch, name)(*map(torch.tensor, arrays), value=value)
    assert_same(ours, theirs, rtol=1e-12)
    assert_same(method, theirs, rtol=1e-12)
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("name", ["addcmul", "addcdiv"])
def test_addcmul_addcdiv_gradients(name):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((3,))
    c = rng.uniform(0.5, 2.0, (2, 1))
    ts = [mp.tensor(v, requires_grad=True) for v in (a, b, c)]
    assert mp.gradcheck(lambda x, y, z: getattr(mp, name)(x, y, z, value=-0.7), ts)
    grads = []
    for lib in (mp, torch):
        ts = [lib.tensor(v, requires_grad=True) for v in (a, b, c)]
        getattr(lib, name)(*ts, value=-0.7).sum().backward()
        grads.append([as_numpy(t.grad) for t in ts])
    for g_ours, g_theirs in zip(*grads):
        np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-10)


@pytest.mark.parametrize("case", [
    ("addcmul", ([1, 2], [3, 4], [1, 1]), {"value": 0.5}), ("addcmul", ([1, 2], [3, 4], [1, 1]), {}),
    ("addcmul", ([1.0, 2.0], [3.0], [True, False]), {"value": 2}),
    ("addcdiv", ([1, 2], [3, 4], [2, 2]), {}), ("addcdiv", ([1.0, 2.0], [3.0, 4.0], [2.0, 0.0]), {}),
    ("addcmul", ([1.0, 2.0], [1.0, 2.0, 3.0], [1.0]), {}),
])
def test_fused_dtypes_and_errors_match_torch(case):
    name, arrays, kwargs = case
    ours = outcome(lambda: getattr(mp, name)(*map(mp.tensor, arrays), **kwargs))
    theirs = outcome(lambda: getattr(torch, name)(*map(torch.tensor, arrays), **kwargs))
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "ok":
        assert_same(ours[1], theirs[1])


@settings(max_examples=50, deadline=None)
@given(data=st.data(), shapes_=st.sampled_from([((3,), (3,), ()), ((2, 3), (3,), (2, 1)),
                                                ((1,), (4,), (4,)), ((2, 2), (2, 2), None)]))
def test_lerp_matches_torch_and_the_two_sided_formula(data, shapes_):
    xs, es, ws = shapes_
    draw = lambda s: np.array(data.draw(st.lists(special, min_size=int(np.prod(s)),  # noqa: E731
                                                 max_size=int(np.prod(s)))), np.float32).reshape(s)
    x, end = draw(xs), draw(es)
    weight = float(data.draw(special)) if ws is None else draw(ws)
    with np.errstate(all="ignore"):
        ours = mp.lerp(mp.tensor(x), mp.tensor(end), weight if ws is None else mp.tensor(weight))
    theirs = torch.lerp(torch.tensor(x), torch.tensor(end), weight if ws is None else torch.tensor(weight))
    assert_same(ours, theirs)
    # by hand, in float32: x + w (e - x) for |w| < 0.5, else e - (e - x)(1 - w)
    shape = np.broadcast_shapes(x.shape, end.shape, np.shape(weight))
    bx, be, bw = (np.broadcast_to(np.asarray(v, np.float32), shape) for v in (x, end, weight))
    want = np.empty(shape, np.float32)
    with np.errstate(all="ignore"):
        for i in np.ndindex(*shape):
            w, d = bw[i], be[i] - bx[i]
            want[i] = bx[i] + w * d if abs(w) < 0.5 else be[i] - d * (np.float32(1) - w)
    np.testing.assert_array_equal(ours.numpy(), want)


def test_lerp_gradients_errors_and_in_place():
    rng = np.random.default_rng(5)
    x, e, w = rng.standard_normal((2, 3)), rng.standard_normal((3,)), rng.uniform(-1, 2, (2, 1))
    ts = [mp.tensor(v, requires_grad=True) for v in (x, e, w)]
    assert mp.gradcheck(mp.lerp, ts)
    assert mp.gradcheck(lambda a, b: mp.lerp(a, b, 0.7), ts[:2])
    grads = []
    for lib in (mp, torch):
        ts = [lib.tensor(v, requires_grad=True) for v in (x, e, w)]
        y = ts[0] * 1
        y.lerp_(ts[1], ts[2])
        y.sum().backward()
        grads.append([as_numpy(t.grad) for t in ts])
    for g_ours, g_theirs in zip(*grads):
        np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-10)
    ours = outcome(lambda: mp.lerp(mp.tensor([1.0]), mp.tensor([2.0], dtype=mp.float64), 0.5))
    theirs = outcome(lambda: torch.lerp(torch.tensor([1.0]), torch.tensor([2.0], dtype=torch.float64), 0.5))
    assert ours == theirs == ("error", "RuntimeError")
    ours = outcome(lambda: mp.lerp(mp.tensor([1]), mp.tensor([2]), 0.5))
    theirs = outcome(lambda: torch.lerp(torch.tensor([1]), torch.tensor([2]), 0.5))
    assert ours == theirs == ("error", "NotImplementedError")
    with pytest.raises(TypeError, match="weight must be a number or a Tensor"):
        mp.lerp(mp.ones(1), mp.ones(1), "half")


@pytest.mark.parametrize("name, args", [("addcmul_", ([[1.0], [2.0]], [1.0, 1.0])),
                                        ("lerp_", ([[1.0, 2.0]], 0.5)), ("pow_", ([[2.0], [3.0]],))])
def test_in_place_cannot_grow_its_tensor_like_torch(name, args):
    ours = outcome(lambda: getattr(mp.tensor([1.0, 2.0]), name)(
        *(mp.tensor(a) if isinstance(a, list) else a for a in args)))
    theirs = outcome(lambda: getattr(torch.tensor([1.0, 2.0]), name)(
        *(torch.tensor(a) if isinstance(a, list) else a for a in args)))
    assert ours == theirs == ("error", "RuntimeError")


@pytest.mark.parametrize("exponent", [2, 0.5, -1, [3.0, 0.5]])
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_pow_in_place_matches_torch(exponent, dtype):
    data = np.array([4, 9]).astype(dtype)
    ours, theirs = mp.tensor(data), torch.tensor(data)
    e_ours = mp.tensor(exponent) if isinstance(exponent, list) else exponent
    e_theirs = torch.tensor(exponent) if isinstance(exponent, list) else exponent
    a, b = outcome(lambda: ours.pow_(e_ours)), outcome(lambda: theirs.pow_(e_theirs))
    assert a[0] == b[0], (a, b)
    if a[0] == "ok":
        assert_same(ours, theirs)


def test_clamp_min_max_out_of_place_match_torch():
    x = np.array([-1.0, 0.5, np.nan, 3.0], np.float32)
    assert_same(mp.tensor(x).clamp_min(0.0), torch.tensor(x).clamp_min(0.0))
    assert_same(mp.tensor(x).clamp_max(1.0), torch.tensor(x).clamp_max(1.0))
