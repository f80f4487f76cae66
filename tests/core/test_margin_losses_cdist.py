"""mp.cdist and the margin / embedding losses: torch parity (values and gradients, every
reduction, kinks, NaN/inf), loop references and float64 gradchecks."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import minipool as mp
import minipool.nn.functional as F

REDUCTIONS = ["mean", "sum", "none"]


def _arr(shape, seed, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


def _both(arrays, grad=True):
    ours = [mp.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    theirs = [torch.tensor(a, requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    return ours, theirs


def _compare(ours_fn, theirs_fn, arrays, rtol=1e-10, atol=1e-12):
    ours, theirs = _both(arrays)
    out, tout = ours_fn(*ours), theirs_fn(*theirs)
    assert out.shape == tuple(tout.shape) and out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=atol, equal_nan=True)
    g = _arr(out.shape, 99) if out.shape else np.array(1.3)
    out.backward(mp.tensor(g))
    tout.backward(torch.tensor(g))
    for a, b in zip(ours, theirs):
        if b.requires_grad:
            assert (a.grad is None) == (b.grad is None)
            if b.grad is not None:
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=atol, equal_nan=True)


# --------------------------------------------------------------------------- cdist
def _cdist_by_loop(a, b, p):
    out = np.zeros(a.shape[:-1] + (b.shape[-2],))
    for idx in np.ndindex(*out.shape):
        batch, i, j = idx[:-2], idx[-2], idx[-1]
        d = np.abs(a[batch + (i,)] - b[batch + (j,)])
        out[idx] = (np.count_nonzero(d) if p == 0 else d.max(initial=0) if p == math.inf
                    else (d ** p).sum() ** (1 / p))
    return out


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, math.inf])
@pytest.mark.parametrize("shapes", [((4, 3), (5, 3)), ((2, 4, 3), (2, 6, 3)), ((1, 3, 2), (4, 5, 2)),
                                    ((3, 1), (2, 1)), ((0, 3), (2, 3))])
def test_cdist_matches_a_loop_and_torch(p, shapes):
    a, b = _arr(shapes[0], 1), _arr(shapes[1], 2)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    want = _cdist_by_loop(np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:]), p)
    ours = mp.cdist(mp.tensor(a), mp.tensor(b), p)
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-12, atol=1e-12)
    if p == 0:
        theirs = torch.cdist(torch.tensor(a), torch.tensor(b), p)
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    else:
        _compare(lambda x, y: mp.cdist(x, y, p), lambda x, y: torch.cdist(x, y, p), [a, b], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
def test_cdist_gradcheck(p):
    a = mp.tensor(_arr((3, 4), 3), requires_grad=True)
    b = mp.tensor(_arr((5, 4), 4), requires_grad=True)
    assert mp.gradcheck(lambda x, y: mp.cdist(x, y, p), (a, b))


def test_cdist_equal_rows_give_zero_distance_and_zero_gradient_like_torch():
    a = np.array([[1.0, 2.0], [0.0, 0.0]])
    _compare(lambda x, y: mp.cdist(x, y), lambda x, y: torch.cdist(x, y), [a, a.copy()])


def test_cdist_nan_and_inf_propagate_like_torch():
    a = np.array([[np.nan, 0.0], [np.inf, 1.0]])
    b = np.array([[1.0, 1.0]])
    for p in (1.0, 2.0):
        theirs = torch.cdist(torch.tensor(a), torch.tensor(b), p).numpy()
        np.testing.assert_array_equal(mp.cdist(mp.tensor(a), mp.tensor(b), p).numpy(), theirs)


@pytest.mark.parametrize("call, error, text", [
    (lambda lib: lib.cdist(lib.ones(3), lib.ones(2, 3)), RuntimeError, "at least 2 dims"),
    (lambda lib: lib.cdist(lib.ones(2, 3), lib.ones(2, 4)), RuntimeError, "same number of columns"),
    (lambda lib: lib.cdist(lib.ones(2, 3), lib.ones(2, 3), -1.0), RuntimeError, "p must be >= 0"),
])
def test_cdist_bad_input_is_named(call, error, text):
    with pytest.raises(error):
        call(torch)
    with pytest.raises(error, match=f"cdist: .*{text}"):
        call(mp)


def test_cdist_refuses_integers():
    with pytest.raises(TypeError, match="cdist: x1 must be float32 or float64"):
        mp.cdist(mp.tensor([[1, 2]]), mp.tensor([[1.0, 2.0]]))


# --------------------------------------------------------------------------- margin_ranking
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking_loss_matches_torch(reduction, margin):
    x1, x2 = _arr(8, 1), _arr(8, 2)
    y = np.array([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0])
    x2[0] = x1[0] + margin  # exactly at the kink: clamp_min passes the gradient there
    _compare(lambda a, b, t: F.margin_ranking_loss(a, b, t, margin, reduction=reduction),
             lambda a, b, t: TF.margin_ranking_loss(a, b, t, margin, reduction=reduction), [x1, x2, y])


def test_margin_ranking_loss_gradcheck_and_errors():
    x1 = mp.tensor(_arr(5, 1), requires_grad=True)
    x2 = mp.tensor(_arr(5, 2), requires_grad=True)
    y = mp.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=mp.float64)
    assert mp.gradcheck(lambda a, b: F.margin_ranking_loss(a, b, y, 0.3), (x1, x2))
    with pytest.raises(RuntimeError):
        TF.margin_ranking_loss(torch.ones(3), torch.ones(3), torch.ones(1, 3))
    with pytest.raises(RuntimeError, match="margin_ranking_loss: input1, input2 and target must have the same"):
        F.margin_ranking_loss(mp.ones(3), mp.ones(3), mp.ones(1, 3))
    with pytest.raises(ValueError, match="margin_ranking_loss: reduction must be one of"):
        F.margin_ranking_loss(mp.ones(3), mp.ones(3), mp.ones(3), reduction="avg")


# --------------------------------------------------------------------------- hinge_embedding
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_embedding_loss_matches_torch(reduction):
    x = np.abs(_arr((3, 4), 1)) * 1.5
    y = np.array([[1.0, -1.0, 1.0, -1.0], [-1.0, -1.0, 1.0, 1.0], [0.0, -1.0, 2.0, 1.0]])  # 0, 2: both parts
    x[0, 1] = 1.0  # margin - x == 0: at the kink
    _compare(lambda a, t: F.hinge_embedding_loss(a, t, reduction=reduction),
             lambda a, t: TF.hinge_embedding_loss(a, t, reduction=reduction), [x, y])


def test_hinge_embedding_loss_by_hand_and_gradcheck():
    x = np.array([0.2, 0.7, 1.4])
    y = np.array([1.0, -1.0, -1.0])
    out = F.hinge_embedding_loss(mp.tensor(x), mp.tensor(y), margin=1.0, reduction="none")
    np.testing.assert_allclose(out.numpy(), [0.2, 0.3, 0.0])
    xm = mp.tensor(x + 0.01, requires_grad=True)
    assert mp.gradcheck(lambda a: F.hinge_embedding_loss(a, mp.tensor(y), margin=0.9), (xm,))


# --------------------------------------------------------------------------- cosine_embedding
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.2, -0.5])
def test_cosine_embedding_loss_matches_torch(reduction, margin):
    a, b = _arr((6, 5), 1), _arr((6, 5), 2)
    b[1] = 0.0  # a zero vector: cos 0 through PyTorch's epsilon
    y = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 1.0])
    # the zero vector's gradient is ~1e5 (1 / sqrt(eps)): equal to ~1e-9 relative, not bits
    _compare(lambda p, q, t: F.cosine_embedding_loss(p, q, t, margin, reduction=reduction),
             lambda p, q, t: TF.cosine_embedding_loss(p, q, t, margin, reduction=reduction), [a, b, y],
             rtol=1e-8)


def test_cosine_embedding_loss_one_pair_and_gradcheck():
    a, b = _arr(4, 3), _arr(4, 4)
    _compare(lambda p, q, t: F.cosine_embedding_loss(p, q, t), lambda p, q, t: TF.cosine_embedding_loss(p, q, t),
             [a, b, np.array(-1.0)])
    am, bm = mp.tensor(_arr((3, 4), 5), requires_grad=True), mp.tensor(_arr((3, 4), 6), requires_grad=True)
    y = mp.tensor([1.0, -1.0, -1.0], dtype=mp.float64)
    assert mp.gradcheck(lambda p, q: F.cosine_embedding_loss(p, q, y, -0.9), (am, bm))
    with pytest.raises(RuntimeError, match="cosine_embedding_loss: target must have shape"):
        F.cosine_embedding_loss(mp.ones(3, 2), mp.ones(3, 2), mp.ones(2))
    with pytest.raises(RuntimeError):
        TF.cosine_embedding_loss(torch.ones(3, 2), torch.ones(3, 2), torch.ones(2))


# --------------------------------------------------------------------------- triplet_margin
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p, swap", [(2.0, False), (1.0, False), (3.0, True), (2.0, True)])
def test_triplet_margin_loss_matches_torch(reduction, p, swap):
    a, pos, neg = _arr((7, 4), 1), _arr((7, 4), 2), _arr((7, 4), 3)
    pos[0] = a[0]  # d(anchor, positive) from the eps alone
    _compare(lambda x, y, z: F.triplet_margin_loss(x, y, z, margin=0.8, p=p, swap=swap, reduction=reduction),
             lambda x, y, z: TF.triplet_margin_loss(x, y, z, margin=0.8, p=p, swap=swap, reduction=reduction),
             [a, pos, neg])


def test_triplet_margin_loss_vectors_gradcheck_and_errors():
    a, pos, neg = _arr(5, 1), _arr(5, 2), _arr(5, 3)
    _compare(lambda x, y, z: F.triplet_margin_loss(x, y, z), lambda x, y, z: TF.triplet_margin_loss(x, y, z),
             [a, pos, neg])
    ts = [mp.tensor(_arr((3, 4), s), requires_grad=True) for s in (4, 5, 6)]
    assert mp.gradcheck(lambda x, y, z: F.triplet_margin_loss(x, y, z, margin=2.0), ts)
    with pytest.raises(RuntimeError):
        TF.triplet_margin_loss(torch.ones(2, 3), torch.ones(3), torch.ones(2, 3))
    with pytest.raises(RuntimeError, match="triplet_margin_loss: anchor, positive and negative"):
        F.triplet_margin_loss(mp.ones(2, 3), mp.ones(3), mp.ones(2, 3))
    with pytest.raises(ValueError, match="triplet_margin_loss: p must be > 0"):
        F.triplet_margin_loss(mp.ones(3), mp.ones(3), mp.ones(3), p=0)


# --------------------------------------------------------------------------- multi_margin
def _multi_margin_by_loop(x, y, p, margin, w):
    x = np.atleast_2d(x)
    out = []
    for n in range(x.shape[0]):
        t = int(np.atleast_1d(y)[n])
        total = 0.0
        for i in range(x.shape[1]):
            if i != t:
                z = max(0.0, margin - x[n, t] + x[n, i]) ** p
                total += z * (1.0 if w is None else w[t])
        out.append(total / x.shape[1])
    return np.array(out)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_multi_margin_loss_matches_a_loop_and_torch(reduction, p, weighted):
    x = _arr((6, 4), 1)
    y = np.array([0, 3, 1, 1, 2, 0])
    x[0, 2] = x[0, 0] - 1.0  # z == 0: the kink, where the kernel gives no gradient
    w = np.array([0.5, 1.0, 2.0, 0.25]) if weighted else None
    want = _multi_margin_by_loop(x, y, p, 1.0, w)
    ours = F.multi_margin_loss(mp.tensor(x), mp.tensor(y), p, weight=None if w is None else mp.tensor(w),
                               reduction="none")
    np.testing.assert_allclose(ours.numpy(), want, rtol=1e-12)
    _compare(lambda a, t: F.multi_margin_loss(a, t, p, weight=None if w is None else mp.tensor(w),
                                              reduction=reduction),
             lambda a, t: TF.multi_margin_loss(a, t, p, weight=None if w is None else torch.tensor(w),
                                               reduction=reduction), [x, y])


def test_multi_margin_loss_one_row_gradcheck_and_errors():
    _compare(lambda a, t: F.multi_margin_loss(a, t, margin=0.7), lambda a, t: TF.multi_margin_loss(a, t, margin=0.7),
             [_arr(5, 2), np.array(3)])
    x = mp.tensor(_arr((3, 5), 3) * 0.2, requires_grad=True)
    assert mp.gradcheck(lambda a: F.multi_margin_loss(a, mp.tensor([0, 4, 2]), p=2), (x,))
    with pytest.raises(ValueError):
        TF.multi_margin_loss(torch.ones(2, 3), torch.tensor([0, 1]), p=3)
    with pytest.raises(ValueError, match="multi_margin_loss: p must be 1 or 2"):
        F.multi_margin_loss(mp.ones(2, 3), mp.tensor([0, 1]), p=3)
    with pytest.raises(IndexError, match="multi_margin_loss: target values must be class indices in \\[0, 2\\]"):
        F.multi_margin_loss(mp.ones(2, 3), mp.tensor([0, 3]))
    with pytest.raises(RuntimeError, match="multi_margin_loss: weight must have shape \\(3,\\)"):
        F.multi_margin_loss(mp.ones(2, 3), mp.tensor([0, 1]), weight=mp.ones(2))
    with pytest.raises(RuntimeError):
        TF.multi_margin_loss(torch.ones(2, 3), torch.tensor([0, 1]), weight=torch.ones(3, requires_grad=True))
    with pytest.raises(RuntimeError, match="multi_margin_loss: is not differentiable with respect to weight"):
        F.multi_margin_loss(mp.ones(2, 3), mp.tensor([0, 1]), weight=mp.ones(3, requires_grad=True))
    with pytest.raises(RuntimeError, match="multi_margin_loss: target must hold int64"):
        F.multi_margin_loss(mp.ones(2, 3), mp.tensor([0.0, 1.0]))


@pytest.mark.parametrize("name, args", [
    ("margin_ranking_loss", lambda lib: (lib.zeros(0), lib.zeros(0), lib.zeros(0))),
    ("hinge_embedding_loss", lambda lib: (lib.zeros(0), lib.zeros(0))),
    ("triplet_margin_loss", lambda lib: (lib.zeros(0, 3), lib.zeros(0, 3), lib.zeros(0, 3))),
])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batches_reduce_like_torch(name, args, reduction):
    ours = getattr(F, name)(*args(mp), reduction=reduction)
    theirs = getattr(TF, name)(*args(torch), reduction=reduction)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_nan_inputs_propagate_like_torch():
    x1 = np.array([np.nan, 1.0, np.inf])
    x2 = np.array([0.0, np.nan, 1.0])
    y = np.array([1.0, -1.0, -1.0])
    np.testing.assert_array_equal(
        F.margin_ranking_loss(mp.tensor(x1), mp.tensor(x2), mp.tensor(y), reduction="none").numpy(),
        TF.margin_ranking_loss(torch.tensor(x1), torch.tensor(x2), torch.tensor(y), reduction="none").numpy())
    np.testing.assert_array_equal(
        F.hinge_embedding_loss(mp.tensor(x1), mp.tensor(y), reduction="none").numpy(),
        TF.hinge_embedding_loss(torch.tensor(x1), torch.tensor(y), reduction="none").numpy())


def test_deprecated_size_average_and_reduce_are_named():
    with pytest.raises(ValueError, match="hinge_embedding_loss: size_average and reduce are PyTorch's deprecated"):
        F.hinge_embedding_loss(mp.ones(2), mp.ones(2), size_average=True)


@pytest.mark.parametrize("name, kwargs, arrays", [
    ("MarginRankingLoss", dict(margin=0.2), lambda: [_arr(4, 1), _arr(4, 2), np.array([1.0, -1.0, 1.0, -1.0])]),
    ("HingeEmbeddingLoss", dict(margin=0.5, reduction="sum"), lambda: [_arr(4, 1), np.array([1.0, -1.0, 1.0, -1.0])]),
    ("CosineEmbeddingLoss", dict(margin=0.1), lambda: [_arr((3, 2), 1), _arr((3, 2), 2), np.array([1.0, -1.0, -1.0])]),
    ("TripletMarginLoss", dict(margin=0.5, p=1.0, swap=True), lambda: [_arr((3, 2), s) for s in (1, 2, 3)]),
    ("MultiMarginLoss", dict(p=2, margin=0.5, reduction="none"), lambda: [_arr((3, 4), 1), np.array([0, 3, 1])]),
])
def test_loss_layers_match_torchs(name, kwargs, arrays):
    arrays = arrays()
    ours, theirs = getattr(mp.nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    _compare(ours, theirs, arrays)


def test_multi_margin_loss_layer_keeps_weight_as_a_buffer():
    layer = mp.nn.MultiMarginLoss(weight=np.array([1.0, 2.0, 0.5]))
    assert list(layer.state_dict()) == list(torch.nn.MultiMarginLoss(weight=torch.ones(3)).state_dict()) == ["weight"]
