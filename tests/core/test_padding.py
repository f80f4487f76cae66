"""F.pad (constant, reflect, replicate, circular; negative amounts crop) and F.one_hot.

A loop reference that computes every output element's source position from the
mode's definition, PyTorch parity (values and gradients, float32/float64, every
mode and the limits PyTorch accepts), float64 gradchecks, hypothesis properties
(PyTorch accepts exactly the pads we accept, and then agrees), and named errors.
"""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F


def _source(o, n, mode):
    """Input position for (unpadded-coordinate) output position ``o`` of a size-n dim, or None."""
    if 0 <= o < n:
        return o
    if mode == "constant":
        return None
    if mode == "replicate":
        return 0 if o < 0 else n - 1
    if mode == "circular":
        raise AssertionError("circular has its own reference")
    while not 0 <= o < n:  # reflect: mirror about the end points until inside
        o = -o if o < 0 else 2 * (n - 1) - o
    return o


def _circular_pairs_reference(x, pairs):
    """Circular, PyTorch's way: crop by the negative amounts, then wrap the rest around."""
    for axis, (lo, hi) in enumerate(pairs):
        n = x.shape[axis]
        kept = np.take(x, range(max(-lo, 0), n - max(-hi, 0)), axis=axis)
        m = kept.shape[axis]
        idx = [(p % m) for p in range(-max(lo, 0), m + max(hi, 0))]
        x = np.take(kept, idx, axis=axis)
    return x


def reference_pad(x, pad, mode="constant", value=0.0):
    if mode == "circular":
        pairs = [(0, 0)] * x.ndim
        for k in range(len(pad) // 2):
            pairs[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
        return _circular_pairs_reference(x, pairs)
    pairs = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        pairs[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    out_shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pairs))
    out = np.empty(out_shape, dtype=x.dtype)
    for idx in itertools.product(*(range(m) for m in out_shape)):
        src = []
        for i, n, (lo, _) in zip(idx, x.shape, pairs):
            src.append(_source(i - lo, n, mode))
        out[idx] = value if any(s is None for s in src) else x[tuple(src)]
    return out


def reference_pad_grad(shape, pad, mode, g):
    """Adjoint of the (linear) reference: d<g, pad(x)>/dx_i = <g, pad(e_i)>."""
    out = np.zeros(shape)
    for idx in itertools.product(*(range(m) for m in shape)):
        e = np.zeros(shape)
        e[idx] = 1.0
        out[idx] = np.sum(reference_pad(e, pad, mode) * g)
    return out


CASES = [
    ((2, 3, 5), (2, 1), "reflect"),
    ((2, 3, 5), (4, 4), "reflect"),
    ((2, 3, 5), (-2, 3), "reflect"),
    ((3, 5), (1, 2), "reflect"),
    ((1, 2, 4, 5), (1, 2, 3, 1), "reflect"),
    ((2, 4, 5), (1, 2, 3, -1), "reflect"),
    ((1, 1, 3, 4, 5), (1, 2, 2, 1, 1, 2), "reflect"),
    ((2, 3, 5), (3, 7), "replicate"),
    ((2, 3, 5), (-6, 7), "replicate"),
    ((1, 2, 4, 5), (2, -1, -3, 2), "replicate"),
    ((2, 1, 3, 4, 2), (1, 1, 2, 0, 0, 3), "replicate"),
    ((2, 3, 5), (5, 5), "circular"),
    ((2, 3, 5), (-2, 3), "circular"),
    ((2, 3, 5), (2, -1), "circular"),
    ((2, 3, 5), (-5, 0), "circular"),
    ((1, 2, 4, 5), (3, 1, -2, 2), "circular"),
    ((1, 1, 3, 4, 5), (1, 2, 2, 1, 3, 3), "circular"),
    ((2, 3, 5), (2, 1), "constant"),
    ((2, 3, 5), (-2, 1, 1, -3), "constant"),
    ((2, 3, 5), (1, 1, 1, 1, 1, 1), "constant"),
    ((4,), (3, 0), "constant"),
    ((2, 3, 5), (-5, 0), "constant"),
    ((2, 3), (0, 0, -1, -1), "constant"),
]


@pytest.mark.parametrize("shape,pad,mode", CASES)
def test_matches_loop_reference_and_its_adjoint(shape, pad, mode):
    r = np.random.default_rng(0)
    x = r.standard_normal(shape)
    value = 0.0 if mode != "constant" else 2.5
    got = F.pad(mp.tensor(x), pad, mode=mode, **({"value": value} if mode == "constant" else {}))
    np.testing.assert_array_equal(got.numpy(), reference_pad(x, pad, mode, value))
    xt = mp.tensor(x, requires_grad=True)
    y = F.pad(xt, pad, mode=mode)
    g = r.standard_normal(y.shape)
    y.backward(mp.tensor(g))
    np.testing.assert_allclose(xt.grad.numpy(), reference_pad_grad(shape, pad, mode, g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,pad,mode", CASES[:16:3] + CASES[16:18])
def test_gradcheck_float64(shape, pad, mode):
    x = mp.tensor(np.random.default_rng(1).standard_normal(shape), requires_grad=True)
    assert mp.gradcheck(lambda a: F.pad(a, pad, mode=mode), [x])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,pad,mode", CASES)
def test_torch_parity(shape, pad, mode, dtype):
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(2)
    x = r.standard_normal(shape).astype(dtype)
    xt = mp.tensor(x, requires_grad=True)
    y = F.pad(xt, pad, mode=mode)
    g = r.standard_normal(y.shape).astype(dtype)
    y.backward(mp.tensor(g))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.pad(tx, pad, mode=mode)
    ty.backward(torch.tensor(g))
    assert y.shape == tuple(ty.shape) and y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    tol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=tol, atol=tol)


def test_constant_value_nan_inf_and_integer_inputs():
    torch = pytest.importorskip("torch")
    x = np.array([[1.0, np.nan, -np.inf]])
    for value in (np.nan, -np.inf, 7.0):
        got = F.pad(mp.tensor(x), (1, 2), value=value).numpy()
        want = torch.nn.functional.pad(torch.tensor(x), (1, 2), value=value).numpy()
        np.testing.assert_array_equal(got, want)
    xi = np.array([1, 2], dtype=np.int64)
    got = F.pad(mp.tensor(xi), (1, 1), value=3.7)
    want = torch.nn.functional.pad(torch.tensor(xi), (1, 1), value=3.7)
    assert got.dtype == np.int64 and got.numpy().tolist() == want.tolist()


PAD_AMOUNTS = st.integers(-6, 6)


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       ndim=st.integers(1, 5), data=st.data())
def test_property_accepts_what_torch_accepts_and_agrees(mode, ndim, data):
    """Whatever random pad we try, minipool and PyTorch both refuse it, or both give
    the same values and gradients."""
    torch = pytest.importorskip("torch")
    shape = tuple(data.draw(st.lists(st.integers(0 if mode == "constant" else 1, 4),
                                     min_size=ndim, max_size=ndim)))
    count = data.draw(st.integers(1, min(3, ndim)))
    pad = tuple(data.draw(st.lists(PAD_AMOUNTS, min_size=2 * count, max_size=2 * count)))
    x = np.random.default_rng(len(pad)).standard_normal(shape)
    try:
        ty = torch.nn.functional.pad(torch.tensor(x, requires_grad=True), pad, mode=mode)
        torch_ok = True
    except (RuntimeError, NotImplementedError, ValueError):
        torch_ok = False
    pairs = [(pad[2 * k], pad[2 * k + 1]) for k in range(count)]
    dims = [shape[ndim - 1 - k] for k in range(count)]
    # circular wrapping past the cropped size: PyTorch reads overlapping or unset memory
    undefined = mode == "circular" and any(
        max(lo, 0) > n - max(-lo, 0) - max(-hi, 0) or max(hi, 0) > n - max(-lo, 0) - max(-hi, 0)
        for (lo, hi), n in zip(pairs, dims))
    if not torch_ok or undefined:
        with pytest.raises(ValueError, match="pad"):
            F.pad(mp.tensor(x), pad, mode=mode)
        return
    xt = mp.tensor(x, requires_grad=True)
    y = F.pad(xt, pad, mode=mode)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    if y.numpy().size:
        g = np.arange(y.numpy().size, dtype=np.float64).reshape(y.shape)
        y.backward(mp.tensor(g))
        tx = torch.tensor(x, requires_grad=True)
        torch.nn.functional.pad(tx, pad, mode=mode).backward(torch.tensor(g))
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("call,exc,words", [
    (lambda: F.pad(mp.ones((2, 3)), (1,)), ValueError, "even length"),
    (lambda: F.pad(mp.ones((2, 3)), (1, 1, 1, 1, 1, 1)), ValueError, "2 \\* input.ndim"),
    (lambda: F.pad(mp.ones((2, 3)), (1.5, 1)), TypeError, "ints"),
    (lambda: F.pad(mp.ones((2, 3)), 1), TypeError, "tuple"),
    (lambda: F.pad(mp.ones((2, 3)), (1, 1), mode="zeros"), ValueError, "mode"),
    (lambda: F.pad(mp.ones((2, 3)), (1, 1), mode="reflect", value=1.0), ValueError, "value"),
    (lambda: F.pad(mp.ones((1, 2, 3)), (3, 0), mode="reflect"), ValueError, "less than"),
    (lambda: F.pad(mp.ones((1, 2, 3)), (0, 4), mode="circular"), ValueError, "wrap"),
    (lambda: F.pad(mp.ones((1, 2, 5)), (-2, 4), mode="circular"), ValueError, "after cropping"),
    (lambda: F.pad(mp.ones((1, 2, 3)), (-2, -1), mode="replicate"), ValueError, "at least 1"),
    (lambda: F.pad(mp.ones((1, 2, 2)), (0, -2, -1, -1), mode="reflect"), ValueError, "at least 1"),
    (lambda: F.pad(mp.ones((1, 2, 3)), (-4, 0), mode="circular"), ValueError, "negative size"),
    (lambda: F.pad(mp.ones((1, 2, 3)), (-4, 0)), ValueError, "negative size"),
    (lambda: F.pad(mp.ones(3), (1, 1), mode="reflect"), ValueError, "2-D or 3-D"),
    (lambda: F.pad(mp.ones((1, 2, 3, 4)), (1, 1), mode="replicate"), ValueError, "2-D or 3-D"),
    (lambda: F.pad(mp.ones((1, 0, 3)), (1, 1), mode="reflect"), ValueError, "non-empty"),
    (lambda: F.pad(mp.ones((2, 3)), (1, 1), value="x"), TypeError, "value"),
])
def test_bad_pads_raise_named_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_empty_batch_is_allowed_for_non_constant_modes():
    for mode in ("reflect", "replicate", "circular"):
        assert F.pad(mp.ones((0, 2, 3)), (1, 1), mode=mode).shape == (0, 2, 5)


# --------------------------------------------------------------------------- one_hot
def test_one_hot_matches_loop_reference_and_torch():
    torch = pytest.importorskip("torch")
    t = np.array([[0, 3, 1], [2, 2, 0]])
    got = F.one_hot(mp.tensor(t))
    assert got.dtype == np.int64 and got.shape == (2, 3, 4)
    want = np.zeros((2, 3, 4), np.int64)
    for i in range(2):
        for j in range(3):
            want[i, j, t[i, j]] = 1
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(got.numpy(), torch.nn.functional.one_hot(torch.tensor(t)).numpy())
    np.testing.assert_array_equal(F.one_hot(mp.tensor(t), 6).numpy(),
                                  torch.nn.functional.one_hot(torch.tensor(t), 6).numpy())
    assert F.one_hot(mp.tensor(np.zeros(0, np.int64)), 3).shape == (0, 3)
    assert F.one_hot(mp.tensor(np.int64(2)), 3).numpy().tolist() == [0, 0, 1]
    assert not F.one_hot(mp.tensor([1])).requires_grad


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=12), st.integers(-1, 9))
def test_property_one_hot_rows_sum_to_one_or_refused_like_torch(values, num_classes):
    torch = pytest.importorskip("torch")
    t = np.array(values, np.int64)
    try:
        want = torch.nn.functional.one_hot(torch.tensor(t), num_classes).numpy()
    except RuntimeError:
        with pytest.raises(ValueError, match="num_classes"):
            F.one_hot(mp.tensor(t), num_classes)
        return
    got = F.one_hot(mp.tensor(t), num_classes).numpy()
    np.testing.assert_array_equal(got, want)
    assert np.all(got.sum(axis=-1) == 1) and np.all(got.argmax(axis=-1) == t)


@pytest.mark.parametrize("call,exc,words", [
    (lambda: F.one_hot(mp.tensor([1.0, 0.0])), TypeError, "integer"),
    (lambda: F.one_hot(mp.tensor([-1, 0])), ValueError, "non-negative"),
    (lambda: F.one_hot(mp.tensor([3]), 3), ValueError, "smaller than num_classes"),
    (lambda: F.one_hot(mp.tensor(np.zeros(0, np.int64))), ValueError, "empty"),
    (lambda: F.one_hot(mp.tensor([1]), -2), ValueError, "num_classes"),
    (lambda: F.one_hot(mp.tensor([1]), 2.0), ValueError, "num_classes"),
])
def test_one_hot_bad_inputs(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
