"""F.conv1d / nn.Conv1d, F.embedding / nn.Embedding, nn.Softmax2d, F.kl_div / nn.KLDivLoss,
Sequential.append/extend/insert, init.trunc_normal_ / orthogonal_,
nn.utils.parameters_to_vector / vector_to_parameters and Module.half: loop references
written here, PyTorch parity (forward and gradients, float32 and float64), float64
gradcheck, hypothesis over shapes and arguments, and bad input named."""
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from minipool.nn import init

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=3e-5, atol=3e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def arr(rng, shape, dtype=np.float64, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def both(x, requires_grad=True):
    return mp.tensor(x, requires_grad=requires_grad), torch.tensor(x, requires_grad=requires_grad)


def check_grads(tensors, dtype, scale=10):
    for name, (a, t) in tensors.items():
        assert a.grad is not None, name
        np.testing.assert_allclose(a.grad.numpy(), t.grad.numpy(), err_msg=name,
                                   rtol=TOL[dtype]["rtol"] * scale, atol=TOL[dtype]["atol"] * scale)


# ----------------------------------------------------------------------------- conv1d
def loop_conv1d(x, w, b, stride, padding, dilation, groups):
    """Direct sums, output position by output position."""
    N, C, L = x.shape
    O, Cg, k = w.shape
    if padding == "valid":
        left = right = 0
    elif padding == "same":
        total = dilation * (k - 1)
        left, right = total // 2, total - total // 2
    else:
        left = right = padding
    xp = np.zeros((N, C, L + left + right))
    xp[:, :, left:left + L] = x
    Lo = (L + left + right - dilation * (k - 1) - 1) // stride + 1
    out = np.zeros((N, O, Lo))
    per_group = O // groups
    for n in range(N):
        for o in range(O):
            g = o // per_group
            for i in range(Lo):
                total = 0.0 if b is None else float(b[o])
                for c in range(Cg):
                    for j in range(k):
                        total += float(w[o, c, j]) * float(xp[n, g * Cg + c, i * stride + j * dilation])
                out[n, o, i] = total
    return out


CONV_CASES = [dict(), dict(stride=2), dict(padding=2, dilation=2), dict(padding="same", dilation=3),
              dict(padding="valid", stride=3), dict(groups=2, padding=1), dict(groups=4, stride=2, dilation=2)]


@pytest.mark.parametrize("kwargs", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv1d_matches_loop_reference(kwargs, bias):
    rng = np.random.default_rng(1)
    groups = kwargs.get("groups", 1)
    x, w = arr(rng, (2, 4, 11)), arr(rng, (8, 4 // groups, 3))
    b = arr(rng, 8) if bias else None
    out = F.conv1d(mp.tensor(x), mp.tensor(w), None if b is None else mp.tensor(b), **kwargs)
    want = loop_conv1d(x, w, b, kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1), groups)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", CONV_CASES)
def test_conv1d_torch_parity_with_gradients(dtype, kwargs):
    rng = np.random.default_rng(2)
    groups = kwargs.get("groups", 1)
    (x, xt), (w, wt), (b, bt) = both(arr(rng, (3, 4, 13), dtype)), both(arr(rng, (8, 4 // groups, 3), dtype)), \
        both(arr(rng, 8, dtype))
    out, t_out = F.conv1d(x, w, b, **kwargs), TF.conv1d(xt, wt, bt, **kwargs)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), **TOL[dtype])
    assert out.dtype == np.dtype(dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
    check_grads({"input": (x, xt), "weight": (w, wt), "bias": (b, bt)}, dtype)


def test_conv1d_unbatched_and_layer_as_torch():
    rng = np.random.default_rng(3)
    theirs = torch.nn.Conv1d(3, 6, 5, stride=2, padding=2, dilation=1, groups=3).double()
    ours = nn.Conv1d(3, 6, 5, stride=2, padding=2, groups=3, dtype=np.float64)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for shape in [(3, 10), (2, 3, 10)]:
        data = arr(rng, shape)
        with torch.no_grad():
            np.testing.assert_allclose(ours(mp.tensor(data)).numpy(), theirs(torch.tensor(data)).numpy(),
                                       rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on even kernels
@pytest.mark.parametrize("kwargs", [dict(padding="same"), dict(padding=(1,), stride=(2,), dilation=(2,)),
                                    dict(bias=False, padding="valid"), dict(kernel_size=(4,), padding="same")])
def test_conv1d_layer_repr_and_init_bounds_as_torch(kwargs):
    kwargs = dict(dict(kernel_size=3), **kwargs)
    ours, theirs = nn.Conv1d(4, 6, **kwargs), torch.nn.Conv1d(4, 6, **kwargs)
    assert repr(ours) == repr(theirs)
    bound = 1 / math.sqrt(4 * ours.kernel_size[0])  # PyTorch's default init: U(+-1/sqrt(fan_in))
    assert np.abs(ours.weight.numpy()).max() <= bound and ours.weight.numpy().std() > bound / 4
    out = ours(mp.zeros(2, 4, 9))
    assert out.shape == tuple(theirs(torch.zeros(2, 4, 9)).shape)


def test_conv1d_gradcheck():
    rng = np.random.default_rng(4)
    x, w, b = (mp.tensor(arr(rng, s), requires_grad=True) for s in [(2, 4, 7), (6, 2, 3), (6,)])
    assert mp.gradcheck(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2), [x, w, b])


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 3), groups=st.integers(1, 3), cg=st.integers(1, 2), og=st.integers(1, 2),
       k=st.integers(1, 4), L=st.integers(1, 12), stride=st.integers(1, 3), dilation=st.integers(1, 3),
       padding=st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"])), seed=st.integers(0, 2 ** 31))
def test_hypothesis_conv1d_as_torch(N, groups, cg, og, k, L, stride, dilation, padding, seed):
    if padding == "same":
        stride = 1
    pads = 0 if padding == "valid" else (dilation * (k - 1) if padding == "same" else 2 * padding)
    if L + pads < dilation * (k - 1) + 1:
        L = dilation * (k - 1) + 1  # too short: refused (tested with the bad input)
    rng = np.random.default_rng(seed)
    C, O = cg * groups, og * groups
    (x, xt), (w, wt), (b, bt) = both(arr(rng, (N, C, L))), both(arr(rng, (O, cg, k))), both(arr(rng, O))
    out = F.conv1d(x, w, b, stride, padding, dilation, groups)
    t_out = TF.conv1d(xt, wt, bt, stride, padding, dilation, groups)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(out.shape)
    out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
    check_grads({"input": (x, xt), "weight": (w, wt), "bias": (b, bt)}, np.float64)


# ----------------------------------------------------------------------------- embedding
def loop_embedding_grad(indices, g, num, padding_idx, scale_grad_by_freq):
    flat = [int(i) for i in np.ravel(indices)]
    rows = g.reshape(len(flat), -1)
    grad = np.zeros((num, rows.shape[1]))
    for position, i in enumerate(flat):
        if i == padding_idx:
            continue
        scale = 1.0 / flat.count(i) if scale_grad_by_freq else 1.0
        grad[i] += rows[position] * scale
    return grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding_idx,scale", [(None, False), (2, False), (-1, True), (None, True)])
def test_embedding_matches_loop_reference_and_torch(dtype, padding_idx, scale):
    rng = np.random.default_rng(5)
    table = arr(rng, (6, 4), dtype)
    indices = np.array([[0, 2, 2, 5], [2, 3, 0, 2], [5, 5, 5, 1]])  # repeated indices add up
    (w, wt) = both(table)
    out = F.embedding(mp.tensor(indices), w, padding_idx, scale_grad_by_freq=scale)
    t_out = TF.embedding(torch.tensor(indices), wt, padding_idx, scale_grad_by_freq=scale)
    np.testing.assert_array_equal(out.numpy(), table[indices])
    np.testing.assert_array_equal(out.numpy(), t_out.detach().numpy())
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
    pad = None if padding_idx is None else padding_idx % 6
    np.testing.assert_allclose(w.grad.numpy(), loop_embedding_grad(indices, g, 6, pad, scale), **TOL[dtype])
    check_grads({"weight": (w, wt)}, dtype)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_embedding_max_norm_renormalises_rows_in_place_as_torch(norm_type):
    rng = np.random.default_rng(6)
    table = arr(rng, (7, 3), scale=3.0)
    ours, theirs = mp.tensor(table.copy()), torch.tensor(table.copy())
    indices = np.array([1, 4, 4, 6])
    out = F.embedding(mp.tensor(indices), ours, max_norm=1.5, norm_type=norm_type)
    t_out = TF.embedding(torch.tensor(indices), theirs, max_norm=1.5, norm_type=norm_type)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), t_out.numpy(), rtol=1e-12, atol=1e-12)
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(ours.numpy()[untouched], table[untouched])


def test_embedding_layer_as_torch():
    ours, theirs = nn.Embedding(10, 3, padding_idx=0, generator=np.random.default_rng(7)), \
        torch.nn.Embedding(10, 3, padding_idx=0)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    np.testing.assert_array_equal(ours.weight.numpy()[0], 0)
    assert ours.weight.dtype == np.float32
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    indices = np.array([[1, 0, 9], [9, 9, 4]])
    out, t_out = ours(mp.tensor(indices)), theirs(torch.tensor(indices))
    np.testing.assert_array_equal(out.numpy(), t_out.detach().numpy())
    out.sum().backward(), t_out.sum().backward()
    np.testing.assert_array_equal(ours.weight.grad.numpy(), theirs.weight.grad.numpy())
    assert ours.weight.grad.numpy()[9].tolist() == [3.0, 3.0, 3.0] and ours.weight.grad.numpy()[0].tolist() == [0, 0, 0]


def test_embedding_from_pretrained_freezes_and_copies():
    table = np.arange(12.0).reshape(4, 3)
    emb = nn.Embedding.from_pretrained(mp.tensor(table))
    assert not emb.weight.requires_grad and emb.weight.dtype == np.float64
    table[0, 0] = 99  # a copy: the layer does not see later changes of the source
    assert emb.weight.numpy()[0, 0] == 0
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    assert list(emb.parameters()) == [emb.weight]


def test_embedding_trains_in_a_tiny_net():
    """Embedding -> mean over tokens -> Linear learns to tell two token sets apart."""
    rng = np.random.default_rng(8)
    model = nn.Sequential(nn.Embedding(8, 4, generator=rng), nn.Flatten(), nn.Linear(12, 2))
    tokens = np.concatenate([rng.integers(0, 4, (32, 3)), rng.integers(4, 8, (32, 3))])
    labels = np.array([0] * 32 + [1] * 32)
    opt = mp.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(mp.tensor(tokens)), mp.tensor(labels))
        loss.backward()
        opt.step()
    accuracy = (model(mp.tensor(tokens)).numpy().argmax(1) == labels).mean()
    assert accuracy == 1.0 and loss.item() < 0.1


@settings(max_examples=50, deadline=None)
@given(num=st.integers(1, 6), dim=st.integers(1, 4), shape=st.lists(st.integers(0, 4), max_size=3),
       padding=st.booleans(), scale=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_hypothesis_embedding_as_torch(num, dim, shape, padding, scale, seed):
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, num, shape)
    padding_idx = int(rng.integers(-num, num)) if padding else None
    (w, wt) = both(arr(rng, (num, dim)))
    out = F.embedding(mp.tensor(indices), w, padding_idx, scale_grad_by_freq=scale)
    t_out = TF.embedding(torch.tensor(indices), wt, padding_idx, scale_grad_by_freq=scale)
    np.testing.assert_array_equal(out.numpy(), t_out.detach().numpy())
    assert out.shape == tuple(shape) + (dim,)
    g = rng.standard_normal(out.shape)
    out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
    np.testing.assert_allclose(w.grad.numpy(), wt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_embedding_gradcheck():
    """Repeated indices; (padding_idx and scale_grad_by_freq change the gradient on purpose,
    so they are checked against torch and the loop reference above instead)."""
    w = mp.tensor(np.random.default_rng(9).standard_normal((5, 3)), requires_grad=True)
    assert mp.gradcheck(lambda w: F.embedding(mp.tensor([[4, 1, 4], [0, 4, 2]]), w), [w])


# ----------------------------------------------------------------------------- Softmax2d
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 2)])
def test_softmax2d_as_torch(dtype, shape):
    rng = np.random.default_rng(10)
    x, xt = both(arr(rng, shape, dtype, 3.0))
    out, t_out = nn.Softmax2d()(x), torch.nn.Softmax2d()(xt)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(out.numpy().sum(axis=-3), 1.0, rtol=1e-6)
    g = rng.standard_normal(shape).astype(dtype)
    out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
    check_grads({"input": (x, xt)}, dtype)
    assert repr(nn.Softmax2d()) == repr(torch.nn.Softmax2d())


# ----------------------------------------------------------------------------- kl_div
def loop_kl_div(x, t, reduction, log_target):
    x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
    pointwise = np.empty_like(x)
    for index in np.ndindex(*x.shape):
        xi, ti = float(x[index]), float(t[index])
        if log_target:
            pointwise[index] = math.exp(ti) * (ti - xi)
        else:
            pointwise[index] = (ti * math.log(ti) if ti > 0 else 0.0) - ti * xi
    total = sum(float(v) for v in pointwise.ravel())
    return {"none": pointwise, "sum": total, "mean": total / max(x.size, 1),
            "batchmean": total / x.shape[0] if x.ndim else total}[reduction]


REDUCTIONS = ["mean", "batchmean", "sum", "none"]


def kl_inputs(rng, shape, dtype, log_target, zeros=True):
    logq = np.log(rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]))
    p = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    if zeros:
        p.reshape(-1, shape[-1])[0, 0] = 0.0  # a zero target probability counts 0 (xlogy)
    target = np.log(p + 1e-3) if log_target else p
    return logq.astype(dtype), target.astype(dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_loop_reference(reduction, log_target):
    x, t = kl_inputs(np.random.default_rng(11), (3, 2, 5), np.float64, log_target)
    out = F.kl_div(mp.tensor(x), mp.tensor(t), reduction=reduction, log_target=log_target)
    np.testing.assert_allclose(out.numpy(), loop_kl_div(x, t, reduction, log_target), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_torch_parity_with_gradients(dtype, reduction, log_target):
    rng = np.random.default_rng(12)
    data_x, data_t = kl_inputs(rng, (4, 6), dtype, log_target, zeros=log_target)  # target grad at 0 is nan
    (x, xt), (t, tt) = both(data_x), both(data_t)
    with pytest.warns(UserWarning) if reduction == "mean" else _nothing():
        t_out = TF.kl_div(xt, tt, reduction=reduction, log_target=log_target)
    out = nn.KLDivLoss(reduction=reduction, log_target=log_target)(x, t)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), **TOL[dtype])
    assert out.dtype == np.dtype(dtype)
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
    check_grads({"input": (x, xt), "target": (t, tt)}, dtype)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_kl_div_zero_target_counts_zero_and_gradients_as_torch():
    """A zero target probability adds 0 and gives the input gradient 0; the target's own
    gradient there is NaN in PyTorch (xlogy's t / t), and so here."""
    x, xt = both(np.log([[0.5, 0.25, 0.25]]))
    t, tt = both(np.array([[0.0, 0.5, 0.5]]))
    out, t_out = F.kl_div(x, t, reduction="sum"), TF.kl_div(xt, tt, reduction="sum")
    assert out.item() == pytest.approx(t_out.item()) and out.item() == pytest.approx(math.log(2))
    out.backward(), t_out.backward()
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], 0.0)
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12)  # NaN where both NaN
    assert np.isnan(t.grad.numpy()[0, 0])


@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_gradcheck(log_target):
    x, t = kl_inputs(np.random.default_rng(13), (3, 4), np.float64, log_target, zeros=False)
    inputs = [mp.tensor(x, requires_grad=True), mp.tensor(t, requires_grad=True)]
    assert mp.gradcheck(lambda a, b: F.kl_div(a, b, reduction="batchmean", log_target=log_target), inputs)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), reduction=st.sampled_from(REDUCTIONS),
       log_target=st.booleans(), seed=st.integers(0, 2 ** 31))
def test_hypothesis_kl_div_as_torch(shape, reduction, log_target, seed):
    rng = np.random.default_rng(seed)
    x, xt = both(arr(rng, shape))
    target = arr(rng, shape) if log_target else np.abs(np.round(arr(rng, shape), 1))  # rounding makes zeros
    t, tt = mp.tensor(target), torch.tensor(target)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_out = TF.kl_div(xt, tt, reduction=reduction, log_target=log_target)
    out = F.kl_div(x, t, reduction=reduction, log_target=log_target)
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(mp.tensor(g)), t_out.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- Sequential
def test_sequential_append_extend_insert_as_torch():
    def build(m):
        net = m.Sequential(m.Linear(2, 3))
        assert net.append(m.ReLU()) is net
        net.extend([m.Linear(3, 4), m.Tanh()])
        net.extend(m.Sequential(m.Linear(4, 5)))
        net.insert(1, m.Linear(3, 3))
        net.insert(-1, m.Identity())
        net.insert(len(net), m.Sigmoid())
        return net

    ours, theirs = build(nn), build(torch.nn)
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert repr(ours) == repr(theirs)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    data = np.random.default_rng(14).standard_normal((3, 2)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ours(mp.tensor(data)).numpy(), theirs(torch.tensor(data)).numpy(), rtol=1e-6)


def test_sequential_grows_its_parameters():
    net = nn.Sequential()
    net.append(nn.Linear(2, 2))
    assert len(list(net.parameters())) == 2
    net.insert(0, nn.Linear(2, 2))
    assert list(net.state_dict())[:2] == ["0.weight", "0.bias"] and len(net) == 2


@pytest.mark.parametrize("call,error,match", [
    (lambda s: s.append(3), TypeError, "module"),
    (lambda s: s.extend(5), TypeError, "iterable"),
    (lambda s: s.extend([nn.ReLU(), "x"]), TypeError, "entry 1"),
    (lambda s: s.insert(3, nn.ReLU()), IndexError, "index"),
    (lambda s: s.insert(-3, nn.ReLU()), IndexError, "index"),
    (lambda s: s.insert(0, None), TypeError, "module"),
])
def test_sequential_growth_bad_input(call, error, match):
    net = nn.Sequential(nn.ReLU(), nn.Tanh())
    with pytest.raises(error, match=match):
        call(net)
    assert len(net) == 2  # a refused call changes nothing


# ----------------------------------------------------------------------------- init
def truncated_normal_moments(mean, std, a, b):
    unit = statistics.NormalDist()
    alpha, beta = (a - mean) / std, (b - mean) / std
    mass = unit.cdf(beta) - unit.cdf(alpha)
    pa, pb = unit.pdf(alpha), unit.pdf(beta)
    m = mean + std * (pa - pb) / mass
    var = std ** 2 * (1 + (alpha * pa - beta * pb) / mass - ((pa - pb) / mass) ** 2)
    return m, math.sqrt(var)


@pytest.mark.parametrize("mean,std,a,b", [(0.0, 1.0, -2.0, 2.0), (0.0, 0.02, -0.04, 0.04), (1.0, 2.0, 0.0, 5.0),
                                          (0.0, 1.0, 3.0, 4.0)])  # the last one: a far tail
def test_trunc_normal_bounds_and_moments(mean, std, a, b):
    w = mp.zeros(200, 100)
    assert init.trunc_normal_(w, mean, std, a, b, generator=np.random.default_rng(15)) is w
    values = w.numpy().astype(np.float64)
    assert values.min() >= a and values.max() <= b
    want_mean, want_std = truncated_normal_moments(mean, std, a, b)
    assert abs(values.mean() - want_mean) < 5 * want_std / math.sqrt(values.size)
    assert abs(values.std() - want_std) < 0.03 * want_std
    same = init.trunc_normal_(mp.zeros(200, 100), mean, std, a, b, generator=np.random.default_rng(15))
    np.testing.assert_array_equal(same.numpy(), w.numpy())


@pytest.mark.parametrize("shape", [(4, 6), (6, 4), (5, 5), (8, 2, 3, 3), (3, 12)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal_gives_orthonormal_rows_or_columns(shape, gain):
    w = mp.zeros(*shape, dtype="float64")
    assert init.orthogonal_(w, gain, generator=np.random.default_rng(16)) is w
    flat = w.numpy().reshape(shape[0], -1) / gain
    rows, cols = flat.shape
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)
    # the same law as PyTorch's: a torch-initialised matrix is orthonormal the same way
    t = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64), gain).reshape(rows, -1).numpy() / gain
    t_gram = t @ t.T if rows <= cols else t.T @ t
    np.testing.assert_allclose(t_gram, np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_is_uniform_over_signs():
    """The sign fix makes Q Haar-distributed: first entries are positive half of the time."""
    signs = [init.orthogonal_(mp.zeros(3, 3, dtype="float64"), generator=np.random.default_rng(s)).numpy()[0, 0] > 0
             for s in range(400)]
    assert 160 < sum(signs) < 240


@pytest.mark.parametrize("call,error,match", [
    (lambda: init.trunc_normal_(mp.zeros(3), std=0.0), ValueError, "std"),
    (lambda: init.trunc_normal_(mp.zeros(3), a=1.0, b=1.0), ValueError, "a < b"),
    (lambda: init.trunc_normal_(mp.zeros(3), mean=float("nan")), ValueError, "mean"),
    (lambda: init.trunc_normal_(np.zeros(3)), TypeError, "tensor"),
    (lambda: init.orthogonal_(mp.zeros(3)), ValueError, "2 dimensions"),
    (lambda: init.orthogonal_(mp.zeros(3, 3, dtype="int64")), TypeError, "float32"),
])
def test_init_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ----------------------------------------------------------------------------- nn.utils
def test_parameters_to_vector_and_back_as_torch():
    theirs = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    ours = nn.Sequential(nn.Conv1d(2, 3, 3), nn.LayerNorm(4), nn.Linear(4, 2))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    vec = nn.utils.parameters_to_vector(ours.parameters())
    t_vec = torch.nn.utils.parameters_to_vector(theirs.parameters())
    np.testing.assert_array_equal(vec.numpy(), t_vec.detach().numpy())
    new = np.arange(vec.shape[0], dtype=np.float32)
    weights_before = [p for p in ours.parameters()]
    nn.utils.vector_to_parameters(mp.tensor(new), ours.parameters())
    torch.nn.utils.vector_to_parameters(torch.tensor(new), theirs.parameters())
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), tp.detach().numpy(), err_msg=name)
    assert [p for p in ours.parameters()] == weights_before  # the same objects: optimisers keep them


def test_parameters_to_vector_is_differentiable():
    net = nn.Linear(3, 2)
    (nn.utils.parameters_to_vector(net.parameters()) ** 2).sum().backward()
    np.testing.assert_allclose(net.weight.grad.numpy(), 2 * net.weight.numpy(), rtol=1e-6)
    np.testing.assert_allclose(net.bias.grad.numpy(), 2 * net.bias.numpy(), rtol=1e-6)


@pytest.mark.parametrize("call,error,match", [
    (lambda net: nn.utils.vector_to_parameters(np.zeros(8), net.parameters()), TypeError, "vec"),
    (lambda net: nn.utils.vector_to_parameters(mp.zeros(7), net.parameters()), ValueError, "7 values"),
    (lambda net: nn.utils.vector_to_parameters(mp.zeros(2, 4), net.parameters()), ValueError, "1-d"),
    (lambda net: nn.utils.parameters_to_vector(net.weight), TypeError, "single Tensor"),
    (lambda net: nn.utils.parameters_to_vector([net.weight, 3]), TypeError, r"parameters\[1\]"),
    (lambda net: nn.utils.parameters_to_vector([]), ValueError, "empty"),
])
def test_nn_utils_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(nn.Linear(3, 2))


# ----------------------------------------------------------------------------- Module.half
def test_half_is_refused_naming_float16():
    """minipool's ops refuse float16 (conv2d says so), so half() refuses up front rather than
    build a model that fails at its first layer; the model is left unchanged."""
    with pytest.raises(TypeError, match="float32 or float64"):
        F.conv2d(mp.zeros(1, 1, 3, 3, dtype="float16"), mp.zeros(1, 1, 2, 2, dtype="float16"))
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(2, 2))
    with pytest.raises(TypeError, match="float16 is not supported"):
        net.half()
    assert all(p.dtype == np.float32 for p in net.parameters())


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,error,match", [
    (lambda: F.conv1d(mp.ones(2, 3, 4, 5), mp.ones(2, 3, 1)), ValueError, "input"),
    (lambda: F.conv1d(mp.ones(2, 3, 5), mp.ones(2, 3, 1, 1)), ValueError, "weight"),
    (lambda: F.conv1d(mp.ones(2, 3, 5), mp.ones(2, 2, 3)), ValueError, "channels"),
    (lambda: F.conv1d(mp.ones(2, 4, 5), mp.ones(3, 2, 3), groups=2), ValueError, "groups"),
    (lambda: F.conv1d(mp.ones(2, 3, 2), mp.ones(2, 3, 3)), ValueError, "kernel"),
    (lambda: F.conv1d(mp.ones(2, 3, 5), mp.ones(2, 3, 3), padding="same", stride=2), ValueError, "stride"),
    (lambda: F.conv1d(mp.ones(2, 3, 5), mp.ones(2, 3, 3), padding="full"), ValueError, "padding"),
    (lambda: F.conv1d(mp.ones(2, 3, 5), mp.ones(2, 3, 3), stride=(1, 2)), TypeError, "stride"),
    (lambda: F.conv1d(mp.ones(2, 3, 5), mp.ones(2, 3, 3), dilation=0), ValueError, "dilation"),
    (lambda: F.conv1d(mp.ones(2, 3, 5), mp.ones(2, 3, 3), mp.ones(3)), ValueError, "bias"),
    (lambda: F.conv1d(mp.ones(2, 3, 5), mp.ones(2, 3, 3, dtype="float64")), TypeError, "weight"),
    (lambda: nn.Conv1d(3, 4, 3, groups=2), ValueError, "groups"),
    (lambda: nn.Conv1d(3, 4, 0), ValueError, "kernel_size"),
    (lambda: nn.Conv1d(3, 4, 3, padding_mode="mirror"), ValueError, "padding_mode"),
    (lambda: F.embedding(mp.tensor([0, 5]), mp.ones(5, 2)), IndexError, "index 5"),
    (lambda: F.embedding(mp.tensor([-1, 2]), mp.ones(5, 2)), IndexError, "index -1"),
    (lambda: F.embedding(mp.tensor([0.0, 1.0]), mp.ones(5, 2)), TypeError, "integer"),
    (lambda: F.embedding(mp.tensor([0]), mp.ones(5)), ValueError, "weight"),
    (lambda: F.embedding(mp.tensor([0]), mp.ones(5, 2), padding_idx=5), ValueError, "padding_idx"),
    (lambda: F.embedding(mp.tensor([0]), mp.ones(5, 2), sparse=True), ValueError, "sparse"),
    (lambda: F.embedding(mp.tensor([0]), mp.ones(5, 2), max_norm=-1.0), ValueError, "max_norm"),
    (lambda: nn.Embedding(0, 3), ValueError, "num_embeddings"),
    (lambda: nn.Embedding(4, 3, padding_idx=-5), ValueError, "padding_idx"),
    (lambda: nn.Embedding(4, 3, _weight=np.zeros((3, 3))), ValueError, "_weight"),
    (lambda: nn.Softmax2d()(mp.ones(2, 3)), ValueError, "Softmax2d"),
    (lambda: F.kl_div(mp.ones(2, 3), mp.ones(2, 3), reduction="avg"), ValueError, "reduction"),
    (lambda: F.kl_div(mp.ones(2, 3), mp.ones(3, 2)), ValueError, "target shape"),
    (lambda: F.kl_div(mp.ones(2, 3), mp.ones(2, 3), log_target=1), TypeError, "log_target"),
    (lambda: nn.KLDivLoss(reduction="batch"), ValueError, "reduction"),
])
def test_bad_input_is_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ----------------------------------------------------------------------------- ONNX export
@pytest.mark.parametrize("layer,shape", [(lambda: nn.Conv1d(2, 4, 3, padding=1, stride=2), (2, 9)),
                                         (lambda: nn.Softmax2d(), (3, 4, 4)),
                                         (lambda: nn.LayerNorm(6), (6,)), (lambda: nn.GroupNorm(2, 4), (4, 3)),
                                         (lambda: nn.InstanceNorm1d(4), (4, 3))])
def test_onnx_export_of_conv1d_softmax2d_and_the_norms_runs_in_onnxruntime(layer, shape):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import minipool.onnx as mo
    model = nn.Sequential(layer()).eval()
    rng = np.random.default_rng(17)
    proto = mo.build(model, mp.tensor(rng.standard_normal((2,) + shape).astype(np.float32)))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = rng.standard_normal((batch,) + shape).astype(np.float32)
        np.testing.assert_allclose(session.run(None, {"input": x})[0], model(mp.tensor(x)).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_onnx_export_refuses_an_embedding_with_max_norm_by_name():
    # (the norms export since this session: see tests/core/test_onnx_export.py)
    import minipool.onnx as mo
    model = nn.Sequential(nn.Embedding(5, 2, max_norm=1.0))
    with pytest.raises(mo.UnsupportedOpError, match="Embedding"):
        mo.build(model, mp.zeros(2, 3, dtype="int64"))


def test_summary_counts_the_new_layers():
    """Parameters as torch counts them; Conv1d's multiply-adds are output x (C/groups x k);
    an Embedding model is summarised on integer zeros (dtype="int64")."""
    net = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.LayerNorm(12), nn.Linear(12, 2))
    s = mp.summary(net, (2, 3), dtype="int64", verbose=0)
    assert s.total_params == 40 + 24 + 26 and s.total_mult_adds == 2 * 2 * 12
    conv = nn.Sequential(nn.Conv1d(2, 4, 3), nn.GroupNorm(2, 4), nn.InstanceNorm1d(4, affine=True))
    s = mp.summary(conv, (1, 2, 8), verbose=0)
    twin = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.GroupNorm(2, 4), torch.nn.InstanceNorm1d(4, affine=True))
    assert s.total_params == sum(p.numel() for p in twin.parameters())
    assert s.total_mult_adds == 4 * 6 * (2 * 3)


def test_a_users_tiny_net_trains_step_for_step_as_torch():
    """Embedding -> Conv1d -> GroupNorm -> InstanceNorm1d -> LayerNorm -> Linear, five SGD steps
    with a KL-divergence loss: the loss and every parameter follow PyTorch's (float64)."""
    def build(m):
        body = m.Sequential(m.Conv1d(4, 6, 3, padding="same"), m.GroupNorm(3, 6), m.ReLU(),
                            m.InstanceNorm1d(6, affine=True, track_running_stats=True), m.Flatten(),
                            m.LayerNorm(6 * 7), m.Linear(6 * 7, 5))
        return m.Embedding(9, 4, padding_idx=0), body

    theirs = [mod.double() for mod in build(torch.nn)]
    ours = [mod.double() for mod in build(nn)]
    for a, t in zip(ours, theirs):
        a.load_state_dict({k: v.numpy().copy() for k, v in t.state_dict().items()})
    opt = mp.optim.SGD([p for mod in ours for p in mod.parameters()], lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD([p for mod in theirs for p in mod.parameters()], lr=0.1, momentum=0.9)
    rng = np.random.default_rng(20)
    for step in range(5):
        tokens = rng.integers(0, 9, (8, 7))
        target = rng.dirichlet(np.ones(5), size=8)

        def forward(emb, body, tensor):
            return body(emb(tensor(tokens)).permute(0, 2, 1))  # (N, L, C) -> (N, C, L)

        out = forward(*ours, mp.tensor)
        t_out = forward(*theirs, torch.tensor)
        loss = F.kl_div(F.log_softmax(out, 1), mp.tensor(target), reduction="batchmean")
        t_loss = TF.kl_div(TF.log_softmax(t_out, 1), torch.tensor(target), reduction="batchmean")
        assert loss.item() == pytest.approx(t_loss.item(), rel=1e-10)
        opt.zero_grad(), t_opt.zero_grad()
        loss.backward(), t_loss.backward()
        opt.step(), t_opt.step()
        for a, t in zip(ours, theirs):
            for key, value in t.state_dict().items():
                np.testing.assert_allclose(np.asarray(a.state_dict()[key]), value.numpy(), rtol=1e-9, atol=1e-11,
                                           err_msg=f"step {step}: {key}")
