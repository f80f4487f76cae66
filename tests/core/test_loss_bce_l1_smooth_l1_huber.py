"""binary_cross_entropy, binary_cross_entropy_with_logits, l1_loss, smooth_l1_loss, huber_loss
and their layers.

Per-element references written with the math module from the definitions,
PyTorch parity (values, input and target gradients, float32/float64, every
reduction, weights, pos_weight, edge values 0/1, huge logits, NaN), float64
gradchecks, hypothesis properties, and named errors.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from minipool.testing import assert_close


def _reduce(values, reduction):
    values = np.asarray(values, np.float64)
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    return values.mean() if values.size else np.nan


def ref_bce(x, t, w, reduction):
    out = []
    for xi, ti, wi in zip(x.ravel(), t.ravel(), np.broadcast_to(w, x.shape).ravel()):
        log_x = max(math.log(xi), -100.0) if xi > 0 else -100.0
        log_1mx = max(math.log(1 - xi), -100.0) if xi < 1 else -100.0
        out.append(-wi * (ti * log_x + (1 - ti) * log_1mx))
    return _reduce(np.reshape(out, x.shape), reduction)


def ref_bce_logits(x, t, w, pw, reduction):
    out = []
    pwb = np.broadcast_to(pw, x.shape).ravel()
    for xi, ti, wi, pi in zip(x.ravel(), t.ravel(), np.broadcast_to(w, x.shape).ravel(), pwb):
        # log sigmoid(x) and log(1 - sigmoid(x)), each written stably
        log_sig = -(max(-xi, 0) + math.log1p(math.exp(-abs(xi))))
        log_one_minus = -(max(xi, 0) + math.log1p(math.exp(-abs(xi))))
        out.append(-wi * (pi * ti * log_sig + (1 - ti) * log_one_minus))
    return _reduce(np.reshape(out, x.shape), reduction)


def ref_l1(x, t, reduction):
    return _reduce([abs(a - b) for a, b in zip(x.ravel(), t.ravel())], reduction).reshape(
        x.shape if reduction == "none" else ())


def ref_smooth_l1(x, t, beta, reduction):
    vals = []
    for a, b in zip(x.ravel(), t.ravel()):
        d = abs(a - b)
        vals.append(0.5 * d * d / beta if d < beta else d - 0.5 * beta)
    return _reduce(vals, reduction).reshape(x.shape if reduction == "none" else ())


def ref_huber(x, t, delta, reduction):
    vals = []
    for a, b in zip(x.ravel(), t.ravel()):
        d = abs(a - b)
        vals.append(0.5 * d * d if d < delta else delta * (d - 0.5 * delta))
    return _reduce(vals, reduction).reshape(x.shape if reduction == "none" else ())


REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_matches_reference_and_gradcheck(reduction, weighted):
    r = np.random.default_rng(0)
    x = r.uniform(0.02, 0.98, (4, 3))
    x[0, 0], x[0, 1], x[1, 0], x[1, 1] = 0.0, 1.0, 0.0, 1.0  # the log clamp at -100
    t = r.uniform(0, 1, (4, 3))
    t[0, 0], t[0, 1], t[1, 0], t[1, 1] = 1.0, 0.0, 0.0, 1.0
    w = r.uniform(0.5, 2, (3,)) if weighted else None
    got = F.binary_cross_entropy(mp.tensor(x), mp.tensor(t), None if w is None else mp.tensor(w),
                                 reduction=reduction)
    np.testing.assert_allclose(got.numpy(), ref_bce(x, t, 1.0 if w is None else w, reduction), rtol=1e-13)
    xin = r.uniform(0.05, 0.95, (4, 3))
    xt = mp.tensor(xin, requires_grad=True)
    # targets inside (0, 1): the finite differences step past them, and 1 + h is refused
    tt = mp.tensor(np.clip(t, 0.05, 0.95), requires_grad=True)
    assert mp.gradcheck(lambda a, b: F.binary_cross_entropy(a, b, w, reduction=reduction), [xt, tt])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos", [False, True])
def test_bce_with_logits_matches_reference_and_gradcheck(reduction, weighted, pos):
    r = np.random.default_rng(1)
    x = r.standard_normal((5, 4)) * 4
    x[0, :2] = [80.0, -80.0]
    t = r.uniform(0, 1, (5, 4))
    w = r.uniform(0.5, 2, (5, 1)) if weighted else None
    pw = r.uniform(0.2, 3, (4,)) if pos else None
    got = F.binary_cross_entropy_with_logits(mp.tensor(x), mp.tensor(t), w, reduction=reduction, pos_weight=pw)
    want = ref_bce_logits(x, t, 1.0 if w is None else w, 1.0 if pw is None else pw, reduction)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    xt = mp.tensor(x, requires_grad=True)
    tt = mp.tensor(t, requires_grad=True)
    assert mp.gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, reduction=reduction,
                                                                        pos_weight=pw), [xt, tt])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_l1_smooth_l1_huber_match_references_and_gradcheck(reduction):
    r = np.random.default_rng(2)
    x = r.standard_normal((3, 4)) * 2
    t = r.standard_normal((3, 4))
    np.testing.assert_allclose(F.l1_loss(mp.tensor(x), mp.tensor(t), reduction=reduction).numpy(),
                               ref_l1(x, t, reduction), rtol=1e-13)
    for beta in (0.5, 1.0, 3.0):
        np.testing.assert_allclose(
            F.smooth_l1_loss(mp.tensor(x), mp.tensor(t), reduction=reduction, beta=beta).numpy(),
            ref_smooth_l1(x, t, beta, reduction), rtol=1e-13)
    np.testing.assert_allclose(F.smooth_l1_loss(mp.tensor(x), mp.tensor(t), reduction=reduction, beta=0.0).numpy(),
                               ref_l1(x, t, reduction), rtol=1e-13)
    for delta in (0.5, 1.0, 3.0):
        np.testing.assert_allclose(
            F.huber_loss(mp.tensor(x), mp.tensor(t), reduction=reduction, delta=delta).numpy(),
            ref_huber(x, t, delta, reduction), rtol=1e-13)
    xt = mp.tensor(x, requires_grad=True)
    tt = mp.tensor(t, requires_grad=True)
    assert mp.gradcheck(lambda a, b: F.l1_loss(a, b, reduction=reduction), [xt, tt])
    assert mp.gradcheck(lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=0.7), [xt, tt])
    assert mp.gradcheck(lambda a, b: F.huber_loss(a, b, reduction=reduction, delta=0.7), [xt, tt])


# --------------------------------------------------------------------------- torch parity
def _torch():
    return pytest.importorskip("torch")


def _run(fn, x, t, g_seed=0):
    """Values and (input, target) gradients of ``fn`` for minipool or torch inputs."""
    out = fn(x, t)
    return out


def _parity(ours, theirs, x, t, dtype, reduction, tol):
    torch = _torch()
    r = np.random.default_rng(9)
    xm = mp.tensor(x.astype(dtype), requires_grad=True)
    tm = mp.tensor(t.astype(dtype), requires_grad=True)
    y = ours(xm, tm)
    g = r.uniform(0.5, 1.5, y.shape).astype(dtype)
    y.backward(mp.tensor(g) if y.ndim else mp.tensor(g))
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    tt = torch.tensor(t.astype(dtype), requires_grad=True)
    ty = theirs(xt, tt)
    ty.backward(torch.tensor(g))
    assert y.dtype == np.dtype(dtype) and y.shape == tuple(ty.shape)
    assert_close(y.numpy(), ty.detach().numpy(), rtol=tol, atol=tol, what="loss")
    assert_close(xm.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol, what="input gradient")
    assert_close(tm.grad.numpy(), tt.grad.numpy(), rtol=tol, atol=tol, what="target gradient")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bce_torch_parity(dtype, reduction, weighted):
    torch = _torch()
    r = np.random.default_rng(3)
    x = r.uniform(0.01, 0.99, (6, 5))
    x[0, :3] = [1e-9, 1 - 1e-7, 0.5]
    t = r.uniform(0, 1, (6, 5))
    t[1] = np.round(t[1])
    w = r.uniform(0.5, 2, (5,)).astype(dtype) if weighted else None
    tw = None if w is None else torch.tensor(w)
    tol = 2e-5 if dtype == "float32" else 1e-12
    _parity(lambda a, b: F.binary_cross_entropy(a, b, w, reduction=reduction),
            lambda a, b: torch.nn.functional.binary_cross_entropy(a, b, tw, reduction=reduction),
            x, t, dtype, reduction, tol)


def test_bce_edges_match_torch():
    """x = 0 or 1 exactly: loss clamped at 100, input gradient +-1e12 from the 1e-12
    floor, target gradient infinite (PyTorch does not clamp that one)."""
    torch = _torch()
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.3])
    xm, tm = mp.tensor(x, requires_grad=True), mp.tensor(t, requires_grad=True)
    F.binary_cross_entropy(xm, tm, reduction="sum").backward()
    xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
    torch.nn.functional.binary_cross_entropy(xt, tt, reduction="sum").backward()
    assert_close(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-12, what="input gradient")
    assert_close(tm.grad.numpy(), tt.grad.numpy(), rtol=1e-12, what="target gradient")
    loss = F.binary_cross_entropy(mp.tensor(x), mp.tensor(t), reduction="none").numpy()
    np.testing.assert_allclose(loss[:2], [100.0, 100.0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos", [False, True])
def test_bce_with_logits_torch_parity(dtype, reduction, weighted, pos):
    torch = _torch()
    r = np.random.default_rng(4)
    x = r.standard_normal((2, 3, 4)) * 5
    x[0, 0] = [1e4, -1e4, 40.0, -40.0]  # must stay finite
    t = r.uniform(0, 1, (2, 3, 4))
    w = r.uniform(0.5, 2, (3, 1)).astype(dtype) if weighted else None
    pw = r.uniform(0.2, 3, (4,)).astype(dtype) if pos else None
    tw = None if w is None else torch.tensor(w)
    tpw = None if pw is None else torch.tensor(pw)
    tol = 2e-5 if dtype == "float32" else 1e-12
    _parity(lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, reduction=reduction, pos_weight=pw),
            lambda a, b: torch.nn.functional.binary_cross_entropy_with_logits(a, b, tw, reduction=reduction,
                                                                              pos_weight=tpw),
            x, t, dtype, reduction, tol)


REGRESSION = [
    ("l1", lambda a, b, red: F.l1_loss(a, b, reduction=red), "l1_loss", {}),
    ("smooth_l1", lambda a, b, red: F.smooth_l1_loss(a, b, reduction=red), "smooth_l1_loss", {}),
    ("smooth_l1_beta", lambda a, b, red: F.smooth_l1_loss(a, b, reduction=red, beta=0.3), "smooth_l1_loss",
     {"beta": 0.3}),
    ("smooth_l1_beta0", lambda a, b, red: F.smooth_l1_loss(a, b, reduction=red, beta=0.0), "smooth_l1_loss",
     {"beta": 0.0}),
    ("huber", lambda a, b, red: F.huber_loss(a, b, reduction=red), "huber_loss", {}),
    ("huber_delta", lambda a, b, red: F.huber_loss(a, b, reduction=red, delta=2.5), "huber_loss",
     {"delta": 2.5}),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,fn,tname,kw", REGRESSION, ids=[c[0] for c in REGRESSION])
def test_regression_losses_torch_parity_with_ties_and_nan(name, fn, tname, kw, dtype, reduction):
    torch = _torch()
    r = np.random.default_rng(5)
    x = r.standard_normal((4, 6)) * 3
    t = r.standard_normal((4, 6))
    # differences exactly 0, +-beta (0.3, 1), +-delta (1, 2.5)
    x[0, :6] = t[0, :6] + np.array([0.0, 1.0, -1.0, 0.3, -2.5, 2.5])
    tf = getattr(torch.nn.functional, tname)
    tol = 1e-6 if dtype == "float32" else 1e-13
    _parity(lambda a, b: fn(a, b, reduction), lambda a, b: tf(a, b, reduction=reduction, **kw),
            x, t, dtype, reduction, tol)
    # a NaN difference: NaN loss; gradient NaN for smooth L1 / Huber, 0 for L1 (as PyTorch)
    x[1, 1] = np.nan
    if reduction == "none":
        _parity(lambda a, b: fn(a, b, reduction), lambda a, b: tf(a, b, reduction=reduction, **kw),
                x, t, dtype, reduction, tol)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_property_losses_agree_with_torch_over_shapes(data):
    torch = _torch()
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-30, 30)))
    t = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))
    reduction = data.draw(st.sampled_from(REDUCTIONS))
    p = 1 / (1 + np.exp(-x))
    pairs = [
        (F.binary_cross_entropy_with_logits(mp.tensor(x), mp.tensor(t), reduction=reduction),
         torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(t),
                                                              reduction=reduction)),
        (F.binary_cross_entropy(mp.tensor(p), mp.tensor(t), reduction=reduction),
         torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(t), reduction=reduction)),
        (F.huber_loss(mp.tensor(x), mp.tensor(t), reduction=reduction, delta=0.5),
         torch.nn.functional.huber_loss(torch.tensor(x), torch.tensor(t), reduction=reduction, delta=0.5)),
        (F.smooth_l1_loss(mp.tensor(x), mp.tensor(t), reduction=reduction, beta=2.0),
         torch.nn.functional.smooth_l1_loss(torch.tensor(x), torch.tensor(t), reduction=reduction, beta=2.0)),
        (F.l1_loss(mp.tensor(x), mp.tensor(t), reduction=reduction),
         torch.nn.functional.l1_loss(torch.tensor(x), torch.tensor(t), reduction=reduction)),
    ]
    for ours, theirs in pairs:
        assert ours.shape == tuple(theirs.shape)
        assert_close(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)
    # smooth L1 with beta b is Huber with delta b, divided by b
    a = F.smooth_l1_loss(mp.tensor(x), mp.tensor(t), reduction="none", beta=2.0).numpy()
    b = F.huber_loss(mp.tensor(x), mp.tensor(t), reduction="none", delta=2.0).numpy()
    np.testing.assert_allclose(a, b / 2.0, rtol=1e-12, atol=1e-15)


def test_bce_with_logits_equals_bce_of_sigmoid_where_both_are_accurate():
    x = np.linspace(-8, 8, 17)
    t = np.linspace(0, 1, 17)
    a = F.binary_cross_entropy_with_logits(mp.tensor(x), mp.tensor(t), reduction="none").numpy()
    b = F.binary_cross_entropy(F.sigmoid(mp.tensor(x)), mp.tensor(t), reduction="none").numpy()
    np.testing.assert_allclose(a, b, rtol=1e-10)


def test_layers_match_functional_and_carry_buffers():
    torch = _torch()
    r = np.random.default_rng(6)
    x = r.standard_normal((3, 4))
    p = 1 / (1 + np.exp(-x))
    t = r.uniform(0, 1, (3, 4))
    w = r.uniform(0.5, 2, (4,))
    pw = r.uniform(0.5, 2, (4,))
    pairs = [
        (nn.BCELoss(w, reduction="sum"), torch.nn.BCELoss(torch.tensor(w), reduction="sum"), p),
        (nn.BCEWithLogitsLoss(w, pos_weight=pw), torch.nn.BCEWithLogitsLoss(torch.tensor(w),
                                                                           pos_weight=torch.tensor(pw)), x),
        (nn.L1Loss(reduction="none"), torch.nn.L1Loss(reduction="none"), x),
        (nn.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), x),
        (nn.HuberLoss(delta=0.5), torch.nn.HuberLoss(delta=0.5), x),
        (nn.HuberLoss("sum", 2.0), torch.nn.HuberLoss("sum", 2.0), x),
    ]
    for ours, theirs, inp in pairs:
        assert repr(ours) == repr(theirs)
        np.testing.assert_allclose(ours(mp.tensor(inp), mp.tensor(t)).numpy(),
                                   theirs(torch.tensor(inp), torch.tensor(t)).numpy(), rtol=1e-12)
    state = nn.BCEWithLogitsLoss(w, pos_weight=pw).state_dict()
    assert set(state) == set(torch.nn.BCEWithLogitsLoss(torch.tensor(w), pos_weight=torch.tensor(pw)).state_dict())


def test_empty_mean_is_nan_and_sum_is_zero():
    e = mp.tensor(np.zeros((0, 3)))
    for fn in (F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.binary_cross_entropy,
               F.binary_cross_entropy_with_logits):
        assert np.isnan(fn(e, e).item())
        assert fn(e, e, reduction="sum").item() == 0.0
        assert fn(e, e, reduction="none").shape == (0, 3)


@pytest.mark.parametrize("call,exc,words", [
    (lambda: F.binary_cross_entropy(mp.tensor([1.5]), mp.tensor([1.0])), ValueError, "between|\\[0, 1\\]"),
    (lambda: F.binary_cross_entropy(mp.tensor([np.nan]), mp.tensor([1.0])), ValueError, "NaN"),
    (lambda: F.binary_cross_entropy(mp.tensor([0.2, 0.7]), mp.tensor([1.5, 0.5])), ValueError,
     "target must be in \\[0, 1\\]"),
    (lambda: F.binary_cross_entropy(mp.tensor([0.2, 0.7]), mp.tensor([-0.5, 0.5])), ValueError,
     "target must be in \\[0, 1\\]"),
    (lambda: F.binary_cross_entropy(mp.tensor([0.2]), mp.tensor([np.nan])), ValueError, "target.*NaN"),
    (lambda: F.binary_cross_entropy(mp.tensor([0.5, 0.5]), mp.tensor([1.0])), ValueError, "shape"),
    (lambda: F.binary_cross_entropy(mp.tensor([0.5]), mp.tensor([1.0]), reduction="avg"), ValueError,
     "reduction"),
    (lambda: F.binary_cross_entropy(mp.tensor([0.5, 0.5]), mp.tensor([1.0, 0.0]), mp.tensor([1.0, 2.0, 3.0])),
     ValueError, "weight"),
    (lambda: F.binary_cross_entropy(mp.tensor([0.5]), mp.tensor([1.0]),
                                    mp.tensor([1.0], requires_grad=True)), ValueError, "detach"),
    (lambda: F.binary_cross_entropy_with_logits(mp.tensor([0.5, 0.5]), mp.tensor([1.0])), ValueError, "shape"),
    (lambda: F.binary_cross_entropy_with_logits(mp.tensor([[0.5, 0.5]]), mp.tensor([[1.0, 0.0]]),
                                                pos_weight=mp.tensor([1.0, 2.0, 3.0])), ValueError, "pos_weight"),
    (lambda: F.binary_cross_entropy_with_logits(mp.tensor([1, 2]), mp.tensor([1.0, 0.0])), TypeError,
     "float32 or float64"),
    (lambda: F.l1_loss(mp.tensor([1.0, 2.0]), mp.tensor([1.0])), ValueError, "shape"),
    (lambda: F.smooth_l1_loss(mp.tensor([1.0]), mp.tensor([1.0]), beta=-1.0), ValueError, "beta"),
    (lambda: F.smooth_l1_loss(mp.tensor([1.0]), mp.tensor([1.0]), beta="1"), TypeError, "beta"),
    (lambda: F.huber_loss(mp.tensor([1.0]), mp.tensor([1.0]), delta=0.0), ValueError, "delta"),
    (lambda: F.huber_loss(mp.tensor([1.0]), mp.tensor([1.0]), delta=float("nan")), TypeError, "delta"),
    (lambda: F.huber_loss(mp.tensor([1.0]), mp.tensor([1.0]), reduction="mean!"), ValueError, "reduction"),
    (lambda: nn.HuberLoss(delta=-1)(mp.tensor([1.0]), mp.tensor([1.0])), ValueError, "delta"),
    (lambda: nn.SmoothL1Loss(beta=-1)(mp.tensor([1.0]), mp.tensor([1.0])), ValueError, "beta"),
    (lambda: nn.L1Loss(reduction="avg")(mp.tensor([1.0]), mp.tensor([1.0])), ValueError, "reduction"),
    (lambda: nn.BCELoss(reduction="avg")(mp.tensor([0.5]), mp.tensor([1.0])), ValueError, "reduction"),
])
def test_bad_inputs_raise_named_errors(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
