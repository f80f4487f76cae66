"""F.layer_norm / group_norm / instance_norm, F.normalize, F.cosine_similarity and the
LayerNorm, GroupNorm, InstanceNorm1d/2d layers: loop references written here, PyTorch
parity (forward, gradients of input, weight and bias; float32 and float64; running
statistics in train and eval), float64 gradcheck, hypothesis over shapes and arguments,
NaN/inf, and bad input named."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


# ----------------------------------------------------------------------------- loop references
def slice_stats(values):
    """Mean and biased variance of a list of floats, summed one by one."""
    m = len(values)
    mean = sum(values) / m
    return mean, sum((v - mean) ** 2 for v in values) / m


def loop_layer_norm(x, normalized_shape, w, b, eps):
    x = np.asarray(x, np.float64)
    k = len(normalized_shape)
    rows = x.reshape((-1,) + tuple(normalized_shape))
    out = np.empty_like(rows)
    for r in range(rows.shape[0]):
        values = [float(v) for v in rows[r].ravel()]
        mean, var = slice_stats(values)
        for i, index in enumerate(np.ndindex(*normalized_shape)):
            y = (values[i] - mean) / math.sqrt(var + eps)
            if w is not None:
                y *= float(w[index])
            if b is not None:
                y += float(b[index])
            out[r][index] = y
    assert k >= 1
    return out.reshape(x.shape)


def loop_group_norm(x, groups, w, b, eps):
    x = np.asarray(x, np.float64)
    N, C = x.shape[:2]
    out = np.empty_like(x)
    per = C // groups
    for n in range(N):
        for g in range(groups):
            channels = range(g * per, (g + 1) * per)
            values = [float(v) for c in channels for v in x[n, c].ravel()]
            mean, var = slice_stats(values)
            for c in channels:
                plane = (x[n, c] - mean) / math.sqrt(var + eps)
                out[n, c] = plane * (1.0 if w is None else float(w[c])) + (0.0 if b is None else float(b[c]))
    return out


def loop_instance_norm(x, w, b, eps, running=None, momentum=0.1):
    """Returns (y, new running mean, new running var) -- the running statistics move
    towards the batch average of each plane's mean and unbiased variance."""
    x = np.asarray(x, np.float64)
    N, C = x.shape[:2]
    out = np.empty_like(x)
    means, unbiased = np.zeros((N, C)), np.zeros((N, C))
    for n in range(N):
        for c in range(C):
            values = [float(v) for v in x[n, c].ravel()]
            mean, var = slice_stats(values)
            means[n, c], unbiased[n, c] = mean, var * len(values) / (len(values) - 1)
            plane = (x[n, c] - mean) / math.sqrt(var + eps)
            out[n, c] = plane * (1.0 if w is None else float(w[c])) + (0.0 if b is None else float(b[c]))
    if running is None:
        return out, None, None
    rm, rv = (np.asarray(r, np.float64) for r in running)
    return (out, (1 - momentum) * rm + momentum * means.mean(0),
            (1 - momentum) * rv + momentum * unbiased.mean(0))


def loop_normalize(x, p, dim, eps):
    x = np.asarray(x, np.float64)
    moved = np.moveaxis(x, dim, -1)
    out = np.empty_like(moved)
    for index in np.ndindex(*moved.shape[:-1]):
        values = [abs(float(v)) for v in moved[index]]
        norm = max(values) if p == math.inf else sum(v ** p for v in values) ** (1 / p)
        out[index] = moved[index] / max(norm, eps)
    return np.moveaxis(out, -1, dim)


def loop_cosine(a, b, dim, eps):
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    a, b = np.moveaxis(a, dim, -1), np.moveaxis(b, dim, -1)
    out = np.empty(a.shape[:-1])
    for index in np.ndindex(*a.shape[:-1]):
        na = max(math.sqrt(sum(float(v) ** 2 for v in a[index])), eps)
        nb = max(math.sqrt(sum(float(v) ** 2 for v in b[index])), eps)
        out[index] = sum(float(u) / na * float(v) / nb for u, v in zip(a[index], b[index]))
    return out


def arr(rng, shape, dtype=np.float64, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


# ----------------------------------------------------------------------------- references
@pytest.mark.parametrize("shape,normalized", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((3, 2, 2, 3), (3,)),
                                              ((6,), (6,)), ((2, 1, 7), (1, 7))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_loop_reference(shape, normalized, affine):
    rng = np.random.default_rng(1)
    x = arr(rng, shape, scale=3.0, shift=2.0)
    w = arr(rng, normalized) if affine else None
    b = arr(rng, normalized) if affine else None
    out = F.layer_norm(mp.tensor(x), normalized, None if w is None else mp.tensor(w),
                       None if b is None else mp.tensor(b), eps=1e-5)
    np.testing.assert_allclose(out.numpy(), loop_layer_norm(x, normalized, w, b, 1e-5), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("shape,groups", [((2, 4, 3), 2), ((3, 6, 2, 2), 3), ((2, 4), 4), ((1, 6, 5), 1),
                                          ((2, 3, 2, 2, 2), 3)])
def test_group_norm_matches_loop_reference(shape, groups):
    rng = np.random.default_rng(2)
    x = arr(rng, shape, scale=2.0, shift=-1.0)
    w, b = arr(rng, shape[1]), arr(rng, shape[1])
    out = F.group_norm(mp.tensor(x), groups, mp.tensor(w), mp.tensor(b), eps=1e-4)
    np.testing.assert_allclose(out.numpy(), loop_group_norm(x, groups, w, b, 1e-4), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("shape", [(2, 3, 5), (3, 2, 4, 4), (1, 1, 2)])
def test_instance_norm_matches_loop_reference_with_running_stats(shape):
    rng = np.random.default_rng(3)
    x = arr(rng, shape, scale=2.0, shift=1.0)
    C = shape[1]
    w, b = arr(rng, C), arr(rng, C)
    rm, rv = arr(rng, C), np.abs(arr(rng, C)) + 0.5
    want, want_rm, want_rv = loop_instance_norm(x, w, b, 1e-5, (rm, rv), momentum=0.3)
    rm_t, rv_t = mp.tensor(rm.copy()), mp.tensor(rv.copy())
    out = F.instance_norm(mp.tensor(x), rm_t, rv_t, mp.tensor(w), mp.tensor(b), True, 0.3, 1e-5)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(rm_t.numpy(), want_rm, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rv_t.numpy(), want_rv, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, 0.5, math.inf])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_normalize_matches_loop_reference(p, dim):
    rng = np.random.default_rng(4)
    x = arr(rng, (3, 4, 2))
    x[1, :, 0] = 0.0  # a zero vector along dim 1 (its norm is clamped to eps)
    np.testing.assert_allclose(F.normalize(mp.tensor(x), p, dim).numpy(), loop_normalize(x, p, dim, 1e-12),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sa,sb,dim", [((4, 3), (4, 3), 1), ((2, 3, 4), (1, 3, 4), 1), ((5, 3), (3,), -1),
                                       ((2, 3), (2, 3), 0)])
def test_cosine_similarity_matches_loop_reference(sa, sb, dim):
    rng = np.random.default_rng(5)
    a, b = arr(rng, sa), arr(rng, sb)
    np.testing.assert_allclose(F.cosine_similarity(mp.tensor(a), mp.tensor(b), dim).numpy(),
                               loop_cosine(a, b, dim, 1e-8), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- torch parity
def both(x, requires_grad=True):
    return mp.tensor(x, requires_grad=requires_grad), torch.tensor(x, requires_grad=requires_grad)


def assert_parity(mp_out, t_out, tensors, dtype, grad_seed=0):
    """Forward equal to torch's; then backward of a random cotangent, gradient by gradient."""
    tol = TOL[dtype]
    np.testing.assert_allclose(mp_out.numpy(), t_out.detach().numpy(), **tol)
    assert mp_out.dtype == np.dtype(dtype)
    g = np.random.default_rng(grad_seed).standard_normal(mp_out.shape).astype(dtype)
    mp_out.backward(mp.tensor(g))
    t_out.backward(torch.tensor(g))
    for name, (a, t) in tensors.items():
        assert a.grad is not None, name
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), err_msg=name,
                                   rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,normalized,affine,bias", [((4, 5), (5,), True, True), ((2, 3, 4), (3, 4), True, False),
                                                           ((3, 2, 6), (6,), False, False),
                                                           ((2, 2, 3, 3), (2, 3, 3), True, True)])
def test_layer_norm_torch_parity(dtype, shape, normalized, affine, bias):
    rng = np.random.default_rng(6)
    x, xt = both(arr(rng, shape, dtype, 2.0, 1.0))
    tensors = {"input": (x, xt)}
    w = wt = b = bt = None
    if affine:
        w, wt = both(arr(rng, normalized, dtype))
        tensors["weight"] = (w, wt)
    if bias:
        b, bt = both(arr(rng, normalized, dtype))
        tensors["bias"] = (b, bt)
    assert_parity(F.layer_norm(x, normalized, w, b, 1e-5), TF.layer_norm(xt, normalized, wt, bt, 1e-5),
                  tensors, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,groups,affine", [((2, 4, 5), 2, True), ((3, 6, 3, 3), 3, True), ((2, 6, 4, 4), 6, False),
                                                  ((4, 3), 1, True), ((2, 4, 2, 2, 2), 4, True)])
def test_group_norm_torch_parity(dtype, shape, groups, affine):
    rng = np.random.default_rng(7)
    x, xt = both(arr(rng, shape, dtype, 3.0, -2.0))
    tensors = {"input": (x, xt)}
    w = wt = b = bt = None
    if affine:
        (w, wt), (b, bt) = both(arr(rng, shape[1], dtype)), both(arr(rng, shape[1], dtype))
        tensors.update(weight=(w, wt), bias=(b, bt))
    assert_parity(F.group_norm(x, groups, w, b, 1e-5), TF.group_norm(xt, groups, wt, bt, 1e-5), tensors, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 7), (3, 2, 4, 5), (1, 4, 2, 2)])
@pytest.mark.parametrize("stats", [False, True])
def test_instance_norm_torch_parity(dtype, shape, stats):
    rng = np.random.default_rng(8)
    C = shape[1]
    x, xt = both(arr(rng, shape, dtype, 2.0, 0.5))
    (w, wt), (b, bt) = both(arr(rng, C, dtype)), both(arr(rng, C, dtype))
    rm, rv = arr(rng, C, dtype), (np.abs(arr(rng, C)) + 0.5).astype(dtype)
    mp_stats = (mp.tensor(rm.copy()), mp.tensor(rv.copy())) if stats else (None, None)
    t_stats = (torch.tensor(rm.copy()), torch.tensor(rv.copy())) if stats else (None, None)
    out = F.instance_norm(x, *mp_stats, w, b, True, 0.2, 1e-5)
    t_out = TF.instance_norm(xt, *t_stats, wt, bt, True, 0.2, 1e-5)
    assert_parity(out, t_out, {"input": (x, xt), "weight": (w, wt), "bias": (b, bt)}, dtype)
    if stats:
        for ours, theirs in zip(mp_stats, t_stats):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_instance_norm_eval_uses_running_stats_as_torch(dtype):
    rng = np.random.default_rng(9)
    x, xt = both(arr(rng, (2, 3, 4, 4), dtype))
    (w, wt), (b, bt) = both(arr(rng, 3, dtype)), both(arr(rng, 3, dtype))
    rm, rv = arr(rng, 3, dtype), (np.abs(arr(rng, 3)) + 0.5).astype(dtype)
    out = F.instance_norm(x, mp.tensor(rm), mp.tensor(rv), w, b, use_input_stats=False)
    t_out = TF.instance_norm(xt, torch.tensor(rm), torch.tensor(rv), wt, bt, use_input_stats=False)
    assert_parity(out, t_out, {"input": (x, xt), "weight": (w, wt), "bias": (b, bt)}, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, 0), (3.0, -1), (math.inf, 1), (2.0, (1, 2)), (1.5, 1),
                                   (0.5, -1)])
def test_normalize_torch_parity(dtype, p, dim):
    rng = np.random.default_rng(10)
    data = arr(rng, (3, 4, 5), dtype)
    data[0, :, 1] = 0  # a zero vector: the clamped norm and its zero gradient
    if p == math.inf:
        data[1, 2, 0] = data[1, 0, 0] = 5.0  # a tie for the largest entry shares the gradient
    x, xt = both(data)
    assert_parity(F.normalize(x, p, dim), TF.normalize(xt, p, dim), {"input": (x, xt)}, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa,sb,dim", [((4, 6), (4, 6), 1), ((2, 3, 4), (1, 3, 4), 1), ((5, 3), (3,), -1),
                                       ((3, 2), (3, 2), 0)])
def test_cosine_similarity_torch_parity(dtype, sa, sb, dim):
    rng = np.random.default_rng(11)
    da, db = arr(rng, sa, dtype), arr(rng, sb, dtype)
    da.reshape(-1)[:sa[-1]] = 0  # a zero vector somewhere (or a zero entry)
    (a, at), (b, bt) = both(da), both(db)
    assert_parity(F.cosine_similarity(a, b, dim), TF.cosine_similarity(at, bt, dim),
                  {"x1": (a, at), "x2": (b, bt)}, dtype)


def test_cosine_similarity_of_zero_vectors_as_torch():
    a, at = both(np.zeros((2, 3)))
    b, bt = both(np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]]))
    assert_parity(F.cosine_similarity(a, b), TF.cosine_similarity(at, bt), {"x1": (a, at), "x2": (b, bt)},
                  np.float64)


def test_nan_and_inf_flow_as_torch():
    x = np.array([[1.0, np.nan, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0], [np.inf, 1.0, 0.0, 2.0]])
    for ours, theirs in [(lambda t: F.layer_norm(t, (4,)), lambda t: TF.layer_norm(t, (4,))),
                         (lambda t: F.group_norm(t.reshape(3, 4, 1), 2), lambda t: TF.group_norm(t.reshape(3, 4, 1), 2)),
                         (lambda t: F.instance_norm(t.reshape(1, 3, 4)), lambda t: TF.instance_norm(t.reshape(1, 3, 4))),
                         (lambda t: F.normalize(t), lambda t: TF.normalize(t))]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got, want = ours(mp.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy()
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- layers vs torch
def copy_params(ours, theirs):
    for name, value in theirs.state_dict().items():
        getattr(ours, name).numpy()[...] = value.numpy()


@pytest.mark.parametrize("make", [
    lambda m: m.LayerNorm(6), lambda m: m.LayerNorm((3, 4), eps=1e-3, bias=False),
    lambda m: m.LayerNorm([4], elementwise_affine=False), lambda m: m.GroupNorm(2, 4),
    lambda m: m.GroupNorm(1, 3, affine=False), lambda m: m.GroupNorm(2, 4, bias=False),
    lambda m: m.InstanceNorm1d(3), lambda m: m.InstanceNorm2d(3, affine=True),
    lambda m: m.InstanceNorm2d(3, track_running_stats=True),
    lambda m: m.InstanceNorm1d(3, affine=True, track_running_stats=True, momentum=None)])
def test_layer_state_dict_keys_and_repr_as_torch(make):
    ours, theirs = make(nn), make(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(np.asarray(ours.state_dict()[key]), value.numpy())
        assert np.asarray(ours.state_dict()[key]).dtype == np.dtype(str(value.dtype).replace("torch.", ""))


INPUTS = {"LayerNorm": (2, 3, 6), "GroupNorm": (2, 4, 5, 5), "InstanceNorm1d": (2, 3, 9),
          "InstanceNorm2d": (2, 3, 5, 4)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind,kwargs", [("LayerNorm", dict(normalized_shape=6)),
                                         ("GroupNorm", dict(num_groups=2, num_channels=4)),
                                         ("InstanceNorm1d", dict(num_features=3, affine=True, track_running_stats=True)),
                                         ("InstanceNorm2d", dict(num_features=3, affine=True, track_running_stats=True,
                                                                 momentum=0.3)),
                                         ("InstanceNorm2d", dict(num_features=3, affine=True, momentum=None,
                                                                 track_running_stats=True)),
                                         ("InstanceNorm2d", dict(num_features=3))])
def test_layer_training_steps_and_eval_as_torch(dtype, kind, kwargs):
    """Three training steps (output, gradients, running statistics), then eval mode."""
    rng = np.random.default_rng(12)
    theirs = getattr(torch.nn, kind)(**kwargs).to(getattr(torch, np.dtype(dtype).name))
    ours = getattr(nn, kind)(**kwargs, dtype=dtype)
    for p in theirs.parameters():  # away from the ones/zeros start, so a swapped weight shows
        p.data = torch.tensor(arr(rng, tuple(p.shape), dtype))
    copy_params(ours, theirs)
    for step in range(3):
        data = arr(rng, INPUTS[kind], dtype, 2.0, step)
        x, xt = both(data)
        out, t_out = ours(x), theirs(xt)
        tensors = {"input": (x, xt)}
        tensors.update({name: (getattr(ours, name), p) for name, p in theirs.named_parameters()})
        for a, _ in tensors.values():
            a.grad = None
        theirs.zero_grad()
        assert_parity(out, t_out, tensors, dtype, grad_seed=step)
        for key, value in theirs.state_dict().items():
            np.testing.assert_allclose(np.asarray(ours.state_dict()[key]), value.numpy(), **TOL[dtype], err_msg=key)
    ours.eval(), theirs.eval()
    data = arr(rng, INPUTS[kind], dtype)
    with torch.no_grad():
        np.testing.assert_allclose(ours(mp.tensor(data)).numpy(), theirs(torch.tensor(data)).numpy(), **TOL[dtype])


@pytest.mark.parametrize("kind,shape", [("InstanceNorm1d", (3, 7)), ("InstanceNorm2d", (3, 4, 5))])
def test_instance_norm_unbatched_input_as_torch(kind, shape):
    rng = np.random.default_rng(13)
    data = arr(rng, shape)
    ours, theirs = getattr(nn, kind)(3, affine=True, dtype=np.float64), getattr(torch.nn, kind)(3, affine=True).double()
    np.testing.assert_allclose(ours(mp.tensor(data)).numpy(), theirs(torch.tensor(data)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_instance_norm_warns_when_channels_differ_without_affine():
    with pytest.warns(UserWarning, match="num_features"):
        nn.InstanceNorm1d(5)(mp.ones(2, 3, 4))
    with pytest.raises(ValueError, match="num_features"):
        nn.InstanceNorm1d(5, affine=True)(mp.ones(2, 3, 4))


def test_layers_load_torch_state_dict_and_convert_both_ways():
    from minipool import interop
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.InstanceNorm1d(4, affine=True, track_running_stats=True),
                          nn.GroupNorm(2, 4), nn.LayerNorm(6))
    model(mp.tensor(np.random.default_rng(14).standard_normal((3, 2, 8)).astype(np.float32)))
    twin = interop.to_torch(model, torch)
    data = np.random.default_rng(15).standard_normal((2, 2, 8)).astype(np.float32)
    model.eval(), twin.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(mp.tensor(data)).numpy(), twin(torch.tensor(data)).numpy(),
                                   rtol=1e-5, atol=1e-5)
    back = interop.from_torch(twin, torch)
    assert [type(m).__name__ for m in back] == ["Conv1d", "InstanceNorm1d", "GroupNorm", "LayerNorm"]
    np.testing.assert_array_equal(back(mp.tensor(data)).numpy(), model(mp.tensor(data)).numpy())


# ----------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("case", ["layer", "layer_2d", "group", "instance", "normalize2", "normalize3",
                                  "normalize1", "normalize_inf", "cosine"])
def test_gradcheck_float64(case):
    rng = np.random.default_rng(16)

    def t(shape, scale=1.0):
        return mp.tensor(arr(rng, shape, scale=scale), requires_grad=True)

    if case == "layer":
        inputs, fn = [t((3, 5)), t(5), t(5)], lambda x, w, b: F.layer_norm(x, 5, w, b, 1e-3)
    elif case == "layer_2d":
        inputs, fn = [t((2, 3, 4)), t((3, 4)), t((3, 4))], lambda x, w, b: F.layer_norm(x, (3, 4), w, b)
    elif case == "group":
        inputs, fn = [t((2, 4, 3)), t(4), t(4)], lambda x, w, b: F.group_norm(x, 2, w, b, 1e-3)
    elif case == "instance":
        inputs, fn = [t((2, 3, 2, 3)), t(3), t(3)], lambda x, w, b: F.instance_norm(x, None, None, w, b, eps=1e-3)
    elif case.startswith("normalize"):
        p = {"normalize2": 2.0, "normalize3": 3.0, "normalize1": 1.0, "normalize_inf": math.inf}[case]
        inputs, fn = [t((3, 4))], lambda x: F.normalize(x, p, 1)
    else:
        inputs, fn = [t((3, 4)), t((3, 4))], lambda a, b: F.cosine_similarity(a, b, 1)
    assert mp.gradcheck(fn, inputs)


# ----------------------------------------------------------------------------- hypothesis
def affine_operands(rng, affine, shape, tensors):
    """Random weight and bias of ``shape`` as (minipool, torch) pairs, added to ``tensors``
    (checked gradient by gradient); (w, wt, b, bt), all None without ``affine``."""
    if not affine:
        return None, None, None, None
    (w, wt), (b, bt) = both(arr(rng, shape)), both(arr(rng, shape))
    tensors.update(weight=(w, wt), bias=(b, bt))
    return w, wt, b, bt


def check_hypothesis_case_as_torch(rng, out, t_out, tensors, backward=True):
    """``out`` as torch's ``t_out`` (1e-7); with ``backward``, the gradients of a random
    cotangent for every (minipool, torch) pair in ``tensors`` (1e-6)."""
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-7, atol=1e-7)
    if backward:
        g = rng.standard_normal(out.shape)
        out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
        for name, (a, tt) in tensors.items():
            np.testing.assert_allclose(a.grad.numpy(), tt.grad.numpy(), rtol=1e-6, atol=1e-6, err_msg=name)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(0, 3), extra=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       k=st.integers(1, 3), affine=st.booleans(), eps=st.sampled_from([1e-5, 1e-2, 0.0]),
       seed=st.integers(0, 2 ** 31), ties=st.booleans())
def test_hypothesis_layer_norm_as_torch(batch, extra, k, affine, eps, seed, ties):
    rng = np.random.default_rng(seed)
    shape = (batch,) + tuple(extra)
    normalized = shape[-min(k, len(extra)):]
    data = arr(rng, shape)
    if ties:
        data = np.round(data)  # repeated values and constant rows
    if eps == 0.0:
        data += np.arange(data.size).reshape(shape) * 1e-3  # no constant row: 0 / 0 otherwise
    x, xt = both(data)
    tensors = {"input": (x, xt)}
    w, wt, b, bt = affine_operands(rng, affine, normalized, tensors)
    out, t_out = F.layer_norm(x, normalized, w, b, eps), TF.layer_norm(xt, normalized, wt, bt, eps)
    check_hypothesis_case_as_torch(rng, out, t_out, tensors, backward=data.size and eps > 0)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), per=st.integers(1, 3), groups=st.integers(1, 3),
       spatial=st.lists(st.integers(1, 4), max_size=2), seed=st.integers(0, 2 ** 31),
       affine=st.booleans(), ties=st.booleans())
def test_hypothesis_group_norm_as_torch(N, per, groups, spatial, seed, affine, ties):
    rng = np.random.default_rng(seed)
    C = per * groups
    if N * per * int(np.prod(spatial)) == 1:
        N = 2  # one value per group is refused (tested with the bad input)
    data = arr(rng, (N, C) + tuple(spatial), scale=3.0)
    if ties:
        data = np.round(data)
    x, xt = both(data)
    tensors = {"input": (x, xt)}
    w, wt, b, bt = affine_operands(rng, affine, C, tensors)
    out, t_out = F.group_norm(x, groups, w, b), TF.group_norm(xt, groups, wt, bt)
    check_hypothesis_case_as_torch(rng, out, t_out, tensors)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), C=st.integers(1, 4), spatial=st.lists(st.integers(1, 4), min_size=1, max_size=2),
       seed=st.integers(0, 2 ** 31), momentum=st.floats(0, 1), stats=st.booleans())
def test_hypothesis_instance_norm_as_torch(N, C, spatial, seed, momentum, stats):
    if int(np.prod(spatial)) == 1:
        spatial = spatial + [2]
    rng = np.random.default_rng(seed)
    x, xt = both(arr(rng, (N, C) + tuple(spatial)))
    rm, rv = arr(rng, C), np.abs(arr(rng, C)) + 0.1
    ours = (mp.tensor(rm.copy()), mp.tensor(rv.copy())) if stats else (None, None)
    theirs = (torch.tensor(rm.copy()), torch.tensor(rv.copy())) if stats else (None, None)
    out = F.instance_norm(x, *ours, momentum=momentum)
    t_out = TF.instance_norm(xt, *theirs, momentum=momentum)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-7, atol=1e-7)
    if stats:
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2 ** 31),
       p=st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, math.inf]), zeros=st.booleans(),
       special=st.sampled_from([None, np.nan, np.inf]))
def test_hypothesis_normalize_as_torch(shape, seed, p, zeros, special):
    rng = np.random.default_rng(seed)
    data = np.round(arr(rng, shape)) if zeros else arr(rng, shape)  # rounding makes zeros and ties
    if special is not None:
        data.reshape(-1)[rng.integers(data.size)] = special
    dim = int(rng.integers(-len(shape), len(shape)))
    x, xt = both(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, t_out = F.normalize(x, p, dim), TF.normalize(xt, p, dim)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    if special is None:
        g = rng.standard_normal(out.shape)
        out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2 ** 31),
       broadcast=st.booleans(), eps=st.sampled_from([1e-8, 0.5]))
def test_hypothesis_cosine_similarity_as_torch(shape, seed, broadcast, eps):
    rng = np.random.default_rng(seed)
    dim = int(rng.integers(-len(shape), len(shape)))
    other = [1] + shape[1:] if broadcast else shape
    (a, at), (b, bt) = both(arr(rng, shape, scale=0.5)), both(arr(rng, other, scale=0.5))
    out, t_out = F.cosine_similarity(a, b, dim, eps), TF.cosine_similarity(at, bt, dim, eps)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
    np.testing.assert_allclose(a.grad.numpy(), at.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(b.grad.numpy(), bt.grad.numpy(), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,error,match", [
    (lambda: F.layer_norm(mp.ones(2, 3), (4,)), ValueError, "normalized_shape"),
    (lambda: F.layer_norm(mp.ones(3), (2, 3)), ValueError, "normalized_shape"),
    (lambda: F.layer_norm(mp.ones(2, 3), "3"), TypeError, "normalized_shape"),
    (lambda: F.layer_norm(mp.ones(2, 3), 3, mp.ones(4)), ValueError, "weight"),
    (lambda: F.layer_norm(mp.ones(2, 3), 3, None, mp.ones(3, dtype="float64")), TypeError, "bias"),
    (lambda: F.layer_norm(mp.ones(2, 3), 3, eps=-1.0), ValueError, "eps"),
    (lambda: F.layer_norm(mp.tensor([[1, 2]]), 2), TypeError, "input"),
    (lambda: F.group_norm(mp.ones(2, 6, 3), 4), ValueError, "num_groups"),
    (lambda: F.group_norm(mp.ones(2, 6, 3), 0), ValueError, "num_groups"),
    (lambda: F.group_norm(mp.ones(6), 2), ValueError, "input"),
    (lambda: F.group_norm(mp.ones(1, 2), 2), ValueError, "more than 1 value per group"),
    (lambda: F.group_norm(mp.ones(2, 6), 2, mp.ones(3)), ValueError, "weight"),
    (lambda: F.instance_norm(mp.ones(2, 3)), ValueError, "input"),
    (lambda: F.instance_norm(mp.ones(2, 3, 1)), ValueError, "spatial"),
    (lambda: F.instance_norm(mp.ones(2, 3, 4), mp.zeros(3)), ValueError, "running_var"),
    (lambda: F.instance_norm(mp.ones(2, 3, 4), mp.zeros(2), mp.ones(2)), ValueError, "running_mean"),
    (lambda: F.instance_norm(mp.ones(2, 3, 4), use_input_stats=False), ValueError, "running_mean"),
    (lambda: F.instance_norm(mp.ones(2, 3, 4), momentum=2.0), ValueError, "momentum"),
    (lambda: F.normalize(mp.ones(2, 3), p=0), ValueError, "p"),
    (lambda: F.normalize(mp.ones(2, 3), dim=2), ValueError, "dim"),
    (lambda: F.cosine_similarity(mp.ones(2, 3), mp.ones(2, 4)), ValueError, "x1"),
    (lambda: F.cosine_similarity(mp.ones(2, 3), mp.ones(2, 3, dtype="float64")), TypeError, "x2"),
    (lambda: nn.LayerNorm(0.5), TypeError, "normalized_shape"),
    (lambda: nn.LayerNorm(4, dtype="float16"), TypeError, "dtype"),
    (lambda: nn.GroupNorm(4, 6), ValueError, "num_groups"),
    (lambda: nn.GroupNorm(2, 4, eps=-1), ValueError, "eps"),
    (lambda: nn.InstanceNorm2d(3)(mp.ones(2, 3)), ValueError, "3D"),
    (lambda: nn.InstanceNorm1d(3)(mp.ones(2, 3, 4, 5)), ValueError, "2D"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ----------------------------------------------------------------------------- kernel threads
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["layer", "group", "instance"])
def test_one_and_two_threads_give_identical_bits(dtype, case):
    """The kernel's threads take whole slices: forward and all gradients keep their bits."""
    from minipool import _config
    from minipool._kernels import openmp_helpers
    rng = np.random.default_rng(18)
    shape = (64, 8, 12, 12)
    data = arr(rng, shape, dtype, 2.0, 1.0)
    data.reshape(-1)[rng.integers(0, data.size, 10)] = np.nan  # NaN stays in its slices
    weight, bias, g = arr(rng, 8, dtype), arr(rng, 8, dtype), arr(rng, shape, dtype)

    def run():
        x, w, b = (mp.tensor(a, requires_grad=True) for a in (data, weight, bias))
        if case == "layer":
            w, b = (mp.tensor(arr(np.random.default_rng(19), (12, 12), dtype), requires_grad=True)
                    for _ in range(2))
            out = F.layer_norm(x, (12, 12), w, b)
        elif case == "group":
            out = F.group_norm(x, 4, w, b)
        else:
            out = F.instance_norm(x, None, None, w, b)
        out.backward(mp.tensor(g))
        return [a.tobytes() for a in (out.numpy(), x.grad.numpy(), w.grad.numpy(), b.grad.numpy())]

    from minipool import _cpu_load
    before, adaptive_before = mp.get_num_threads(), _cpu_load.adaptive()
    mp.set_adaptive_threads(False)  # the full team even while other processes keep cores busy
    try:
        mp.set_num_threads(1)
        reference = run()
        mp.set_num_threads(2)
        if openmp_helpers.openmp_enabled():  # else the kernels stay serial and this proves less
            assert _config.kernel_threads(64 * 8, data.size) == 2
        for _ in range(2):
            assert run() == reference
    finally:
        mp.set_num_threads(before)
        mp.set_adaptive_threads(adaptive_before)


@pytest.mark.parametrize("fn", [lambda x, w, b: F.layer_norm(x, (3, 4), w.reshape(3, 4), b.reshape(3, 4)),
                                lambda x, w, b: F.group_norm(x.reshape(0, 12, 1), 3, w, b)])
def test_empty_batch_gives_empty_output_and_zero_parameter_gradients(fn):
    x = mp.tensor(np.zeros((0, 3, 4)), requires_grad=True)
    w, b = mp.tensor(np.ones(12), requires_grad=True), mp.tensor(np.zeros(12), requires_grad=True)
    out = fn(x, w, b)
    assert out.numpy().size == 0
    out.sum().backward()
    assert x.grad.shape == (0, 3, 4)
    np.testing.assert_array_equal(w.grad.numpy(), 0)
    np.testing.assert_array_equal(b.grad.numpy(), 0)
