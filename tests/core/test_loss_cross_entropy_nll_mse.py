"""cross_entropy, nll_loss, mse_loss and their layers.

An explicit per-sample NumPy reference (written from the textbook definitions,
row by row), float64 gradchecks, PyTorch parity over weights, ignore_index,
label smoothing, probability targets and reductions, and named errors.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F


def reference_cross_entropy(x, target, weight=None, ignore_index=-100, reduction="mean",
                            label_smoothing=0.0):
    """Row-by-row definition for (N, C) logits and integer targets."""
    n, c = x.shape
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    losses, weights = [], []
    for i in range(n):
        row = x[i].astype(np.float64)
        logp = row - (row.max() + np.log(np.sum(np.exp(row - row.max()))))
        if target[i] == ignore_index:
            losses.append(0.0)
            continue
        y = target[i]
        nll = -w[y] * logp[y]
        uniform = -np.sum(w * logp) / c
        losses.append((1 - label_smoothing) * nll + label_smoothing * uniform)
        weights.append(w[y])
    losses = np.array(losses)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / np.sum(weights)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
def test_cross_entropy_matches_row_reference_and_gradcheck(reduction, weighted, label_smoothing):
    r = np.random.default_rng(0)
    x = r.standard_normal((6, 5)) * 3
    t = r.integers(0, 5, 6)
    t[2] = -100
    w = r.uniform(0.2, 2.0, 5) if weighted else None
    got = F.cross_entropy(mp.tensor(x), mp.tensor(t), None if w is None else mp.tensor(w),
                          reduction=reduction, label_smoothing=label_smoothing)
    np.testing.assert_allclose(got.numpy(), reference_cross_entropy(x, t, w, -100, reduction, label_smoothing),
                               rtol=1e-12, atol=1e-14)
    xt = mp.tensor(x, requires_grad=True)
    assert mp.gradcheck(lambda a: F.cross_entropy(a, t, w, reduction=reduction,
                                                  label_smoothing=label_smoothing), [xt])


def test_cross_entropy_is_stable_for_huge_logits():
    x = mp.tensor(np.array([[1e4, 0.0, -1e4], [-5e3, 5e3, 0.0]], np.float32), requires_grad=True)
    loss = F.cross_entropy(x, mp.tensor([2, 1]))
    assert np.isfinite(loss.item())
    assert loss.item() == pytest.approx(1e4, rel=1e-6)  # row 0 pays 2e4, row 1 pays ~0
    loss.backward()
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy(), [[0.5, 0, -0.5], [0, 0, 0]], atol=1e-6)


def test_nll_of_log_softmax_equals_cross_entropy_and_gradcheck():
    r = np.random.default_rng(1)
    x, t = r.standard_normal((7, 4)), r.integers(0, 4, 7)
    a = F.cross_entropy(mp.tensor(x), t).item()
    b = F.nll_loss(F.log_softmax(mp.tensor(x), 1), t).item()
    assert a == pytest.approx(b, rel=1e-14)
    w = r.uniform(0.5, 1.5, 4)
    t[0] = 9  # ignored below
    assert mp.gradcheck(lambda v: F.nll_loss(v, t, mp.tensor(w), ignore_index=9), [mp.tensor(x, requires_grad=True)])
    rows = [i for i in range(7) if t[i] != 9]
    expected = -sum(w[t[i]] * x[i, t[i]] for i in rows) / sum(w[t[i]] for i in rows)
    assert F.nll_loss(mp.tensor(x), t, w, ignore_index=9).item() == pytest.approx(expected, rel=1e-13)


def test_spatial_targets_and_probability_targets_gradcheck():
    r = np.random.default_rng(2)
    x = r.standard_normal((2, 3, 2, 2))
    t = r.integers(0, 3, (2, 2, 2))
    assert mp.gradcheck(lambda v: F.cross_entropy(v, t, label_smoothing=0.1, reduction="none"),
                        [mp.tensor(x, requires_grad=True)])
    probs = r.dirichlet(np.ones(3), size=(2, 2, 2)).transpose(0, 3, 1, 2)
    assert mp.gradcheck(lambda v: F.cross_entropy(v, probs, np.array([1.0, 2.0, 0.5])),
                        [mp.tensor(x, requires_grad=True)])
    # one-hot probabilities are the same as indices
    onehot = np.eye(3)[t].transpose(0, 3, 1, 2)
    assert F.cross_entropy(mp.tensor(x), onehot).item() == pytest.approx(F.cross_entropy(mp.tensor(x), t).item(),
                                                                         rel=1e-13)


CE_CASES = [
    dict(shape=(8, 10)), dict(shape=(8, 10), weight=True), dict(shape=(8, 10), label_smoothing=0.1),
    dict(shape=(8, 10), weight=True, label_smoothing=0.3, ignore=True),
    dict(shape=(5,)), dict(shape=(3, 4, 2, 5), weight=True, ignore=True),
    dict(shape=(6, 4), probabilities=True), dict(shape=(3, 4, 5), probabilities=True, weight=True,
                                                   label_smoothing=0.2),
]


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", CE_CASES, ids=[str(i) for i in range(len(CE_CASES))])
def test_cross_entropy_matches_torch(case, reduction, dtype, rtol):
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(3)
    shape = case["shape"]
    c = shape[1] if len(shape) > 1 else shape[0]
    x = (r.standard_normal(shape) * 2).astype(dtype)
    if case.get("probabilities"):
        t = r.dirichlet(np.ones(c), size=(shape[0],) + shape[2:])
        t = np.moveaxis(t, -1, 1).astype(dtype)
    else:
        t = r.integers(0, c, shape[:1] + shape[2:] if len(shape) > 1 else ())
        if case.get("ignore"):
            t.reshape(-1)[:2] = -100
    w = r.uniform(0.3, 2.0, c).astype(dtype) if case.get("weight") else None
    ls = case.get("label_smoothing", 0.0)
    mx, tx = mp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    got = F.cross_entropy(mx, t, w, reduction=reduction, label_smoothing=ls)
    want = torch.nn.functional.cross_entropy(tx, torch.tensor(t), None if w is None else torch.tensor(w),
                                             reduction=reduction, label_smoothing=ls)
    assert got.dtype == dtype and got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=rtol, atol=rtol)
    g = r.standard_normal(got.shape).astype(dtype)
    got.backward(g)
    want.backward(torch.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_and_mse_match_torch(reduction):
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(4)
    x = r.standard_normal((6, 3, 2))
    t = r.integers(0, 3, (6, 2))
    t[0, 0] = 1000
    w = r.uniform(0.5, 2, 3)
    mx, tx = mp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    got = F.nll_loss(mx, t, w, ignore_index=1000, reduction=reduction)
    want = torch.nn.functional.nll_loss(tx, torch.tensor(t), torch.tensor(w), ignore_index=1000,
                                        reduction=reduction)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-13)
    got.backward(np.ones(got.shape))
    want.backward(torch.ones(want.shape, dtype=torch.float64))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-13)

    y = r.standard_normal(x.shape)
    ma, mb = mp.tensor(x, requires_grad=True), mp.tensor(y, requires_grad=True)
    ta, tb = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    got = F.mse_loss(ma, mb, reduction=reduction)
    want = torch.nn.functional.mse_loss(ta, tb, reduction=reduction)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-13)
    got.backward(np.ones(got.shape))
    want.backward(torch.ones(want.shape, dtype=torch.float64))
    np.testing.assert_allclose(ma.grad.numpy(), ta.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(mb.grad.numpy(), tb.grad.numpy(), rtol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_reference_and_gradcheck(reduction):
    r = np.random.default_rng(5)
    x, y = r.standard_normal((4, 3)), r.standard_normal((4, 3))
    squares = (x - y) ** 2
    expected = {"mean": squares.mean(), "sum": squares.sum(), "none": squares}[reduction]
    np.testing.assert_allclose(F.mse_loss(mp.tensor(x), mp.tensor(y), reduction=reduction).numpy(), expected,
                               rtol=1e-14)
    assert mp.gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction),
                        [mp.tensor(x, requires_grad=True), mp.tensor(y, requires_grad=True)])
    # a plain array target is a constant of the input's dtype
    out = F.mse_loss(mp.tensor(x.astype(np.float32)), y)
    assert out.dtype == np.float32


def test_loss_layers_call_the_functions():
    r = np.random.default_rng(6)
    x, t = mp.tensor(r.standard_normal((5, 4))), r.integers(0, 4, 5)
    w = r.uniform(0.5, 2, 4)
    layer = nn.CrossEntropyLoss(weight=w, label_smoothing=0.1, reduction="sum")
    assert layer(x, t).item() == F.cross_entropy(x, t, w, label_smoothing=0.1, reduction="sum").item()
    assert list(layer.state_dict()) == ["weight"]
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    logp = F.log_softmax(x, 1)
    assert nn.NLLLoss(ignore_index=t[0])(logp, t).item() == F.nll_loss(logp, t, ignore_index=t[0]).item()
    y = mp.tensor(r.standard_normal((5, 4)))
    assert nn.MSELoss(reduction="none")(x, y).shape == (5, 4)
    # the layers hold reduction; the functional loss refuses a bad one at the call, as PyTorch's
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")(x, y)
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="batchmean")(x, t)


@pytest.mark.parametrize("call,error,match", [
    (lambda: F.cross_entropy(mp.zeros(3, 4), np.array([0, 1, 4])), ValueError, "target holds class index 4"),
    (lambda: F.cross_entropy(mp.zeros(3, 4), np.array([0, -1, 2])), ValueError, "target holds class index -1"),
    (lambda: F.cross_entropy(mp.zeros(3, 4), np.array([0, 1])), ValueError, "target must have shape"),
    (lambda: F.cross_entropy(mp.zeros(3, 4), np.zeros(3)), TypeError, "target must hold integer"),
    (lambda: F.cross_entropy(mp.zeros(3, 4), np.array([0, 1, 2]), reduction="avg"), ValueError, "reduction"),
    (lambda: F.cross_entropy(mp.zeros(3, 4), np.array([0, 1, 2]), np.ones(3)), ValueError, "weight"),
    (lambda: F.cross_entropy(mp.zeros(3, 4), np.array([0, 1, 2]), label_smoothing=1.5), ValueError,
     "label_smoothing"),
    (lambda: F.cross_entropy(mp.tensor(1.0), np.array(0)), ValueError, "input"),
    (lambda: F.cross_entropy(mp.zeros(3, 4, dtype=np.int64), np.array([0, 1, 2])), TypeError, "input"),
    (lambda: F.nll_loss(mp.zeros(3, 4), np.full((3, 4), 0.25)), TypeError, "target"),
    (lambda: F.nll_loss(mp.zeros(3, 4), np.array([0, 1, 7])), ValueError, "target holds class index 7"),
    (lambda: F.mse_loss(mp.zeros(3), mp.zeros(3, 1)), ValueError, "target shape"),
    (lambda: F.mse_loss(mp.zeros(3), mp.zeros(3), reduction="mean_sum"), ValueError, "reduction"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
