"""F.batch_norm and nn.BatchNorm1d/2d: a loop reference, PyTorch parity (forward, backward,
running statistics, 50 training steps), float64 gradcheck, properties and bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from minipool.nn.module import Module

torch = pytest.importorskip("torch")
TF = torch.nn.functional

SHAPES = [(4, 3), (5, 2, 7), (3, 4, 5, 6), (2, 3, 1, 1), (1, 2, 3, 3)]


def rng_array(rng, shape, dtype, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


# ----------------------------------------------------------------------------- loop reference
def loop_reference(x, rm, rv, w, b, training, momentum, eps):
    """Channel by channel, element by element in float64; returns (y, new rm, new rv)."""
    x = np.asarray(x, np.float64)
    C = x.shape[1]
    y = np.empty_like(x)
    rm = None if rm is None else np.array(rm, np.float64)
    rv = None if rv is None else np.array(rv, np.float64)
    for c in range(C):
        values = [float(v) for v in np.moveaxis(x, 1, 0)[c].ravel()]
        m = len(values)
        if training:
            mean = sum(values) / m
            var = sum((v - mean) ** 2 for v in values) / m
            if rm is not None:
                rm[c] = (1 - momentum) * rm[c] + momentum * mean
                rv[c] = (1 - momentum) * rv[c] + momentum * var * m / (m - 1)
        else:
            mean, var = rm[c], rv[c]
        scale = 1.0 if w is None else float(w[c])
        shift = 0.0 if b is None else float(b[c])
        plane = np.moveaxis(y, 1, 0)
        plane[c] = (np.moveaxis(x, 1, 0)[c] - mean) / np.sqrt(var + eps) * scale + shift
    return y, rm, rv


def jacobian_reference_grad(x, w, g, eps):
    """Training-mode input gradient from the explicit Jacobian of each channel
    (d xhat_i / d x_j = invstd * (delta_ij - 1/M - xhat_i xhat_j / M))."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        xc = np.moveaxis(x, 1, 0)[c].ravel()
        gc = np.moveaxis(np.asarray(g, np.float64), 1, 0)[c].ravel()
        m = xc.size
        mean = xc.mean()
        invstd = 1 / np.sqrt(((xc - mean) ** 2).mean() + eps)
        xhat = (xc - mean) * invstd
        jac = invstd * (np.eye(m) - 1.0 / m - np.outer(xhat, xhat) / m)
        scale = 1.0 if w is None else float(w[c])
        np.moveaxis(out, 1, 0)[c] = (scale * gc @ jac).reshape(np.moveaxis(x, 1, 0)[c].shape)
    return out


@pytest.mark.parametrize("shape", SHAPES[:4])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_matches_loop_reference(shape, training, affine):
    rng = np.random.default_rng(hash((shape, training, affine)) % 2 ** 32)
    C = shape[1]
    x = rng_array(rng, shape, np.float64, 2.0, 0.5)
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    w = rng.standard_normal(C) if affine else None
    b = rng.standard_normal(C) if affine else None
    want, want_rm, want_rv = loop_reference(x, rm, rv, w, b, training, 0.3, 1e-3)
    mrm, mrv = mp.tensor(rm.copy()), mp.tensor(rv.copy())
    got = F.batch_norm(mp.tensor(x), mrm, mrv, None if w is None else mp.tensor(w),
                       None if b is None else mp.tensor(b), training, 0.3, 1e-3)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mrm.numpy(), want_rm, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mrv.numpy(), want_rv, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_weight", [True, False])
def test_training_gradient_matches_jacobian(shape, with_weight):
    rng = np.random.default_rng(7)
    C = shape[1]
    x = rng_array(rng, shape, np.float64, 1.5)
    w = rng.standard_normal(C) if with_weight else None
    g = rng.standard_normal(shape)
    xt = mp.tensor(x, requires_grad=True)
    F.batch_norm(xt, None, None, None if w is None else mp.tensor(w), None, True,
                 eps=1e-4).backward(g)
    np.testing.assert_allclose(xt.grad.numpy(), jacobian_reference_grad(x, w, g, 1e-4),
                               rtol=1e-9, atol=1e-11)


def test_eval_gradient_is_scale():
    rng = np.random.default_rng(1)
    x = rng_array(rng, (3, 2, 4), np.float64)
    rm, rv, w = np.array([0.5, -1.0]), np.array([4.0, 0.25]), np.array([2.0, -3.0])
    xt = mp.tensor(x, requires_grad=True)
    g = rng.standard_normal(x.shape)
    F.batch_norm(xt, mp.tensor(rm), mp.tensor(rv), mp.tensor(w), None, False, eps=0.0).backward(g)
    np.testing.assert_allclose(xt.grad.numpy(), g * (w / np.sqrt(rv))[None, :, None], rtol=1e-14)


# ----------------------------------------------------------------------------- PyTorch parity


def torch_run(x, rm, rv, w, b, training, momentum, eps, g):
    tx = torch.tensor(x, requires_grad=True)
    tw = None if w is None else torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    trm = None if rm is None else torch.tensor(rm)
    trv = None if rv is None else torch.tensor(rv)
    y = TF.batch_norm(tx, trm, trv, tw, tb, training, momentum, eps)
    y.backward(torch.tensor(g))
    grads = [None if t is None else t.grad.numpy() for t in (tx, tw, tb)]
    stats = [None if t is None else t.numpy() for t in (trm, trv)]
    return y.detach().numpy(), grads, stats


def minipool_run(x, rm, rv, w, b, training, momentum, eps, g, channels_last=False):
    if channels_last:  # the same numbers with the channel axis moved last
        x, g = np.moveaxis(x, 1, -1).copy(), np.moveaxis(g, 1, -1).copy()
    mx = mp.tensor(x, requires_grad=True)
    mw = None if w is None else mp.tensor(w, requires_grad=True)
    mb = None if b is None else mp.tensor(b, requires_grad=True)
    mrm = None if rm is None else mp.tensor(rm.copy())
    mrv = None if rv is None else mp.tensor(rv.copy())
    y = F.batch_norm(mx, mrm, mrv, mw, mb, training, momentum, eps,
                     data_format="channels_last" if channels_last else None)
    y.backward(g)
    out, gx = y.numpy(), mx.grad.numpy()
    if channels_last:
        out, gx = np.moveaxis(out, -1, 1), np.moveaxis(gx, -1, 1)
    grads = [gx] + [None if t is None else t.grad.numpy() for t in (mw, mb)]
    stats = [None if t is None else t.numpy() for t in (mrm, mrv)]
    return out, grads, stats


TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from(SHAPES + [(8, 1), (2, 5, 3), (6, 3, 2, 2)]),
       dtype=st.sampled_from([np.float32, np.float64]),
       training=st.booleans(), affine=st.booleans(), stats=st.booleans(),
       channels_last=st.booleans(), momentum=st.sampled_from([0.1, 0.0, 1.0, 0.37]),
       eps=st.sampled_from([1e-5, 1e-3, 0.0]), scale=st.sampled_from([1e-3, 1.0, 50.0]),
       seed=st.integers(0, 2 ** 16))
def test_torch_parity(shape, dtype, training, affine, stats, channels_last, momentum, eps, scale,
                      seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    if not training:
        stats = True
    x = rng_array(rng, shape, dtype, scale, 3.0 * scale)
    if training and shape[0] * int(np.prod(shape[2:])) == 1:
        return
    if eps == 0.0 and training:  # refused in training (tested below)
        eps = 1e-5
    rm = rng.standard_normal(C).astype(dtype) if stats else None
    rv = rng.uniform(0.5, 2, C).astype(dtype) if stats else None
    w = rng.standard_normal(C).astype(dtype) if affine else None
    b = rng.standard_normal(C).astype(dtype) if affine else None
    g = rng_array(rng, shape, dtype)
    want = torch_run(x, rm, rv, w, b, training, momentum, eps, g)
    got = minipool_run(x, rm, rv, w, b, training, momentum, eps, g, channels_last)
    tol = TOL[dtype]
    # float32 on a nearly constant channel (e.g. 2 values a rounding apart) is ill-conditioned:
    # there both libraries are judged against float64 torch, and minipool must be as close to it
    # as float32 torch is (within 2x) or within the tolerance of torch
    exact = None
    if dtype == np.float32:
        up = [None if a is None else a.astype(np.float64) for a in (x, rm, rv, w, b, g)]
        exact = torch_run(up[0], up[1], up[2], up[3], up[4], training, momentum, eps, up[5])
    for k, (mine, theirs) in enumerate(zip([got[0]] + got[1] + got[2],
                                           [want[0]] + want[1] + want[2])):
        assert (mine is None) == (theirs is None)
        if mine is None:
            continue
        assert mine.dtype == dtype
        atol = tol["atol"] * max(1.0, float(np.abs(theirs).max()))
        close = np.isclose(mine, theirs, rtol=tol["rtol"], atol=atol, equal_nan=True)
        if exact is not None and not close.all():
            truth = ([exact[0]] + exact[1] + exact[2])[k]
            close |= np.abs(mine - truth) <= 2 * np.abs(theirs.astype(np.float64) - truth) + atol
        assert close.all(), (k, mine[~close], theirs[~close])


def test_empty_batch_as_torch():
    x = np.zeros((0, 3, 4), np.float32)
    rm, rv = mp.zeros(3), mp.ones(3)
    y = F.batch_norm(mp.tensor(x), rm, rv, training=True)
    assert y.shape == (0, 3, 4)
    np.testing.assert_array_equal(rm.numpy(), np.zeros(3))
    np.testing.assert_array_equal(rv.numpy(), np.ones(3))
    tm, tv = torch.zeros(3), torch.ones(3)
    TF.batch_norm(torch.tensor(x), tm, tv, training=True)
    np.testing.assert_array_equal(tm.numpy(), rm.numpy())
    np.testing.assert_array_equal(tv.numpy(), rv.numpy())


def test_nan_and_inf_stay_in_their_channel():
    x = np.ones((4, 3, 2), np.float64)
    x[:, 0] = np.arange(8.0).reshape(4, 2)
    x[0, 1, 0] = np.nan
    x[1, 2, 1] = np.inf
    x[:, 2, 0] = 2.0
    got = F.batch_norm(mp.tensor(x), None, None, training=True).numpy()
    want = TF.batch_norm(torch.tensor(x), None, None, training=True).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isfinite(got[:, 0]).all() and np.isnan(got[:, 1]).all()
    np.testing.assert_allclose(got[:, 0], want[:, 0], rtol=1e-12)


# ----------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("data_format", [None, "channels_last"])
@pytest.mark.parametrize("shape", [(3, 2), (3, 2, 4), (2, 3, 2, 3)])
def test_gradcheck(training, data_format, shape):
    rng = np.random.default_rng(3)
    C = shape[-1] if data_format else shape[1]
    x = mp.tensor(rng_array(rng, shape, np.float64, 2.0), requires_grad=True)
    w = mp.tensor(rng.standard_normal(C), requires_grad=True)
    b = mp.tensor(rng.standard_normal(C), requires_grad=True)
    rm, rv = mp.tensor(rng.standard_normal(C)), mp.tensor(rng.uniform(0.5, 2, C))
    stats = (None, None) if training else (rm, rv)
    assert mp.gradcheck(lambda x, w, b: F.batch_norm(x, *stats, w, b, training, 0.1, 1e-3,
                                                     data_format=data_format), [x, w, b])


# ----------------------------------------------------------------------------- properties
@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 6), c=st.integers(1, 4), length=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2 ** 16))
def test_normalised_channels_have_zero_mean_unit_variance(n, c, length, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng_array(rng, (n, c, length), dtype, 10.0, -4.0)
    y = F.batch_norm(mp.tensor(x), None, None, training=True, eps=1e-20).numpy().astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.mean(axis=(0, 2)), 0.0, atol=tol)
    np.testing.assert_allclose(y.var(axis=(0, 2)), 1.0, rtol=10 * tol)


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from([(3, 4), (2, 3, 5), (2, 2, 3, 4)]), seed=st.integers(0, 2 ** 16),
       training=st.booleans())
def test_channels_last_equals_channels_first(shape, seed, training):
    rng = np.random.default_rng(seed)
    x = rng_array(rng, shape, np.float32, 3.0)
    C = shape[1]
    rm, rv = rng.standard_normal(C).astype(np.float32), rng.uniform(0.5, 2, C).astype(np.float32)
    first = F.batch_norm(mp.tensor(x), mp.tensor(rm), mp.tensor(rv), training=training).numpy()
    last = F.batch_norm(mp.tensor(np.moveaxis(x, 1, -1).copy()), mp.tensor(rm), mp.tensor(rv),
                        training=training, data_format="channels_last").numpy()
    np.testing.assert_allclose(np.moveaxis(last, -1, 1), first, rtol=1e-6, atol=1e-6)


def test_constant_channel_gives_bias():
    x = np.full((4, 2, 3), 7.0, np.float32)
    y = F.batch_norm(mp.tensor(x), None, None, None, mp.tensor([0.5, -2.0]), True).numpy()
    np.testing.assert_array_equal(y[:, 0], 0.5)
    np.testing.assert_array_equal(y[:, 1], -2.0)


# ----------------------------------------------------------------------------- bad input
def test_bad_input_errors():
    x = mp.randn(4, 3)
    rm, rv = mp.zeros(3), mp.ones(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(mp.randn(1, 3), rm, rv, training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(mp.randn(1, 3, 1, 1), None, None, training=True)
    F.batch_norm(mp.randn(1, 3), rm, rv, training=False)  # eval with one value is fine (as torch)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        F.batch_norm(x, mp.zeros(4), mp.ones(4), training=True)
    with pytest.raises(ValueError, match="evaluation mode"):
        F.batch_norm(x, None, None, training=False)
    with pytest.raises(ValueError, match="both running_mean and running_var"):
        F.batch_norm(x, rm, None, training=True)
    with pytest.raises(TypeError, match="running_var dtype float64 differs"):
        F.batch_norm(x, rm, mp.ones(3, dtype="float64"), training=True)
    with pytest.raises(TypeError, match="weight dtype"):
        F.batch_norm(x, rm, rv, mp.ones(3, dtype="float64"), training=True)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        F.batch_norm(x, rm, rv, None, mp.ones(2), training=True)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        F.batch_norm(mp.randn(3), rm, rv, training=True)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.batch_norm(mp.tensor(np.ones((2, 3), np.int64)), rm, rv, training=True)
    with pytest.raises(ValueError, match=r"momentum must be in \[0.0, 1.0\]"):
        F.batch_norm(x, rm, rv, training=True, momentum=1.5)
    with pytest.raises(TypeError, match="eps must be a finite number"):
        F.batch_norm(x, rm, rv, training=True, eps=float("nan"))
    with pytest.raises(ValueError, match="eps must be >= 0.0"):
        F.batch_norm(x, rm, rv, training=False, eps=-1.0)
    with pytest.raises(ValueError, match="eps must be > 0 when training"):
        F.batch_norm(x, rm, rv, training=True, eps=0.0)
    with pytest.raises(ValueError, match="eps must be positive"):  # torch's own rule
        TF.batch_norm(torch.randn(4, 3), torch.zeros(3), torch.ones(3), training=True, eps=0.0)
    F.batch_norm(x, rm, rv, training=False, eps=0.0)  # allowed in evaluation, as torch
    with pytest.raises(TypeError, match="training must be a bool"):
        F.batch_norm(x, rm, rv, training="yes")
    with pytest.raises(ValueError, match="data_format"):
        F.batch_norm(x, rm, rv, training=True, data_format="NHWC")
    with pytest.raises(TypeError, match="running_mean must be a Tensor"):
        F.batch_norm(x, [0.0, 0.0, 0.0], rv, training=True)
    np.testing.assert_array_equal(rm.numpy(), 0.0)  # no refused call touched the statistics
    np.testing.assert_array_equal(rv.numpy(), 1.0)


def test_layer_bad_arguments():
    with pytest.raises(ValueError, match="num_features must be >= 1, got 0"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="momentum must be a number in"):
        nn.BatchNorm2d(3, momentum=-0.1)
    with pytest.raises(ValueError, match="eps must be a number >= 0"):
        nn.BatchNorm1d(3, eps=-1)
    with pytest.raises(ValueError, match="num_features give a weight"):
        nn.BatchNorm2d(2 ** 40)
    with pytest.raises(ValueError, match="CPU only"):
        nn.BatchNorm1d(3, device="cuda")
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        nn.BatchNorm2d(3)(mp.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        nn.BatchNorm1d(3)(mp.randn(2, 3, 4, 4))
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(mp.randn(1, 3, 1, 1))
    assert int(bn.num_batches_tracked.item()) == 0  # the refused batch was not counted


# ----------------------------------------------------------------------------- layers
def test_layer_state_dict_and_repr_match_torch():
    for kwargs in ({}, {"affine": False}, {"track_running_stats": False}, {"bias": False},
                   {"momentum": None, "eps": 1e-3}):
        mine, theirs = nn.BatchNorm2d(5, **kwargs), torch.nn.BatchNorm2d(5, **kwargs)
        assert list(mine.state_dict()) == list(theirs.state_dict())
        for k, v in theirs.state_dict().items():
            np.testing.assert_array_equal(mine.state_dict()[k], v.numpy())
            assert mine.state_dict()[k].dtype == v.numpy().dtype
        assert [k for k, _ in mine.named_parameters()] == [k for k, _ in theirs.named_parameters()]
        assert repr(mine) == repr(theirs)


@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                       ("BatchNorm2d", (4, 3, 2, 5))])
@pytest.mark.parametrize("track", [True, False])
def test_layer_steps_match_torch(momentum, cls, shape, track):
    rng = np.random.default_rng(11)
    mine = getattr(nn, cls)(3, momentum=momentum, track_running_stats=track, dtype=np.float64)
    theirs = getattr(torch.nn, cls)(3, momentum=momentum, track_running_stats=track).double()
    for step in range(5):
        x = rng_array(rng, shape, np.float64, 1 + step, step)
        np.testing.assert_allclose(mine(mp.tensor(x)).numpy(),
                                   theirs(torch.tensor(x)).detach().numpy(), rtol=1e-11, atol=1e-12)
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(mine.state_dict()[k], v.numpy(), rtol=1e-12, atol=1e-14)
    mine.eval()
    theirs.eval()
    x = rng_array(rng, shape, np.float64)
    np.testing.assert_allclose(mine(mp.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-11, atol=1e-12)


def test_channels_last_layer_equals_channels_first():
    rng = np.random.default_rng(2)
    first, last = nn.BatchNorm2d(3), nn.BatchNorm2d(3, data_format="channels_last")
    for _ in range(3):
        x = rng_array(rng, (4, 3, 5, 5), np.float32, 2.0, 1.0)
        a = first(mp.tensor(x)).numpy()
        b = last(mp.tensor(np.moveaxis(x, 1, -1).copy())).numpy()
        np.testing.assert_allclose(np.moveaxis(b, -1, 1), a, rtol=1e-6, atol=1e-6)
    for k in ("running_mean", "running_var"):
        np.testing.assert_allclose(last.state_dict()[k], first.state_dict()[k], rtol=1e-6)


def test_load_torch_state_and_eval():
    theirs = torch.nn.BatchNorm2d(4)
    for _ in range(3):
        theirs(torch.randn(5, 4, 3, 3) * 3 + 1)
    mine = nn.BatchNorm2d(4)
    mine.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert int(mine.num_batches_tracked.item()) == 3
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(mine.eval()(mp.tensor(x)).numpy(),
                               theirs.eval()(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    # the layer keeps updating the loaded arrays (state is read through the buffers each call)
    mine.train()(mp.tensor(x))
    assert int(mine.num_batches_tracked.item()) == 4


@pytest.mark.skipif(not hasattr(Module, "double"), reason="Module.double() not in minipool yet "
                    "(another helper adds Module.to/double)")
def test_buffers_move_with_double():
    bn = nn.BatchNorm2d(3).double()
    assert bn.running_mean.dtype == np.float64 and bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    bn(mp.randn(2, 3, 2, 2, dtype="float64"))
    assert int(bn.num_batches_tracked.item()) == 1


# ----------------------------------------------------------------------------- 50 training steps
def _nets(dtype, seed=0):
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    torch.manual_seed(seed)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                 torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3),
                                 torch.nn.BatchNorm1d(3, momentum=None)).to(tdtype)
    mine = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3, dtype=dtype),
                         nn.BatchNorm1d(3, momentum=None, dtype=dtype))
    mine.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return mine, theirs


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-9), (np.float32, 2e-3)])
def test_fifty_sgd_steps_match_torch(dtype, rtol):
    mine, theirs = _nets(dtype)
    opt_mine = mp.optim.SGD(list(mine.parameters()), lr=0.05, momentum=0.9)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(5)
    for step in range(50):
        x = rng_array(rng, (8, 2, 6, 6), dtype, 1.5, 0.5)
        y = rng.integers(0, 3, 8)
        loss = F.cross_entropy(mine(mp.tensor(x)), mp.tensor(y))
        opt_mine.zero_grad()
        loss.backward()
        opt_mine.step()
        tloss = TF.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y))
        opt_theirs.zero_grad()
        tloss.backward()
        opt_theirs.step()
        assert abs(loss.item() - tloss.item()) <= rtol * max(1.0, abs(tloss.item())) * 10
    state = mine.state_dict()
    for k, v in theirs.state_dict().items():
        np.testing.assert_allclose(state[k], v.numpy(), rtol=rtol, atol=rtol, err_msg=k)
    assert int(state["1.num_batches_tracked"]) == 50
    mine.eval()
    theirs.eval()
    x = rng_array(rng, (4, 2, 6, 6), dtype)
    np.testing.assert_allclose(mine(mp.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=rtol, atol=rtol)


def test_track_running_stats_switched_off_after_construction_as_torch():
    # test-time adaptation recipes: bn.track_running_stats = False on a built layer; training
    # then normalises by the batch and leaves the buffers alone, eval still uses them
    rng = np.random.default_rng(21)
    x = rng_array(rng, (6, 3, 4, 4), np.float32, scale=2.0, shift=1.0)
    mine, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    mine(mp.tensor(x))
    theirs(torch.tensor(x))
    mine.track_running_stats = theirs.track_running_stats = False
    for training in (True, False):
        mine.train(training)
        theirs.train(training)
        out = mine(mp.tensor(x * 3))
        expected = theirs(torch.tensor(x * 3)).detach().numpy()
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(mine.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-6)
        np.testing.assert_allclose(mine.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-6)
        assert int(mine.num_batches_tracked.item()) == int(theirs.num_batches_tracked) == 1


@pytest.mark.parametrize("lib", ["minipool", "torch"])
def test_a_checkpoint_without_num_batches_tracked_loads_as_in_torch(lib):
    # checkpoints from before PyTorch 0.4.1 have no num_batches_tracked: the layer keeps its own
    L, T = (nn, mp) if lib == "minipool" else (torch.nn, torch)
    bn = L.BatchNorm1d(2)
    bn.num_batches_tracked += 3
    old = {"weight": T.ones(2), "bias": T.zeros(2), "running_mean": T.full((2,), 4.0),
           "running_var": T.ones(2)}
    result = bn.load_state_dict(old)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    assert int(bn.num_batches_tracked.item()) == 3
    np.testing.assert_array_equal(np.asarray(bn.running_mean.numpy()), [4.0, 4.0])
    partial = L.Sequential(L.BatchNorm1d(2)).load_state_dict({"0.weight": T.ones(2)}, strict=False)
    assert list(partial.missing_keys) == ["0.bias", "0.running_mean", "0.running_var"]
    with pytest.raises((ValueError, RuntimeError), match="running_var"):
        L.BatchNorm1d(2).load_state_dict({k: v for k, v in old.items() if k != "running_var"})
