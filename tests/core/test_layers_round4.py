"""The layer forms of the functional activations, nn.CosineSimilarity / PairwiseDistance
(+ F.pairwise_distance), the 1-d/3-d adaptive pooling layers, nn.ChannelShuffle /
F.channel_shuffle, and mp.bernoulli / mp.randint_like: PyTorch parity (values, gradients,
reprs), loop references, float64 finite differences, errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minipool as mp
import minipool.nn.functional as F
from tests.core.parity_helpers import assert_parity

torch = pytest.importorskip("torch")

LAYERS = [("Softsign", ()), ("Tanhshrink", ()), ("LogSigmoid", ()), ("Threshold", (0.1, 20.0)),
          ("Hardshrink", ()), ("Hardshrink", (1.5,)), ("Softshrink", (0.3,)), ("Softmin", (1,)),
          ("Softmin", (-1,)), ("GLU", ()), ("GLU", (0,)), ("Mish", ()), ("Hardswish", ()),
          ("Hardsigmoid", ()), ("SELU", ()), ("CELU", ()), ("CELU", (2.0,)), ("Threshold", (1, 2, True)),
          ("SELU", (True,)), ("Mish", (True,)), ("Hardswish", (True,)), ("CELU", (0.5, True))]


@pytest.mark.parametrize("name, args", LAYERS)
def test_activation_layers_match_torch(name, args):
    x = np.array([[-4.0, -1.0, -0.2, 0.0], [0.2, 1.0, 3.5, np.nan], [np.inf, -np.inf, 0.1, -0.0],
                  [-3.0, 3.0, 0.5, -0.5]])
    mp_layer, torch_layer = getattr(mp.nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(mp_layer) == repr(torch_layer)
    build = (lambda lib, a: (mp_layer if lib is mp else torch_layer)(a))
    # values with NaN and +-inf; gradients without NaN (PyTorch's gradient at NaN depends on
    # whether the element falls in its vectorised loop or the scalar tail)
    in_place = bool(args) and args[-1] is True
    # in place on a result (x * 1.0) is recorded in the graph, as PyTorch's
    recorded = (lambda lib, a: build(lib, a * 1.0)) if in_place else build
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        assert_parity(build, [x.astype(dtype)], rtol=rtol)
        assert_parity(recorded, [np.where(np.isnan(x), 0.7, x).astype(dtype)], grads=(0,), rtol=rtol)
    if in_place:
        with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
            mp_layer(mp.tensor(x, requires_grad=True))  # PyTorch refuses a leaf too
        y = mp.tensor(x)
        assert mp_layer(y) is y  # outside a graph it writes over its input, as PyTorch


@pytest.mark.parametrize("name, args", [("Softsign", ()), ("Tanhshrink", ()), ("LogSigmoid", ()),
                                        ("Softmin", (1,)), ("GLU", ()), ("Mish", ()), ("SELU", ()),
                                        ("CELU", (0.7,)), ("Softshrink", (0.3,))])
def test_activation_layers_float64_gradcheck(name, args):
    x = mp.tensor(np.array([[-2.1, -0.45, 0.6, 1.7], [0.05, -1.2, 2.4, -0.9]]), requires_grad=True)
    assert mp.gradcheck(getattr(mp.nn, name)(*args), [x])


# --------------------------------------------------------------------------- distances
def reference_pairwise(a, b, p, eps):
    out = np.empty(a.shape[:-1])
    for pos in np.ndindex(*out.shape):
        d = [abs(u - v + eps) for u, v in zip(a[pos], b[pos])]
        out[pos] = max(d) if p == math.inf else sum(t ** p for t in d) ** (1 / p)
    return out


@settings(max_examples=40, deadline=None)
@given(shape=st.sampled_from([(3,), (2, 4), (2, 3, 5)]), p=st.sampled_from([1.0, 2.0, 3.0, 0.5, math.inf]),
       keepdim=st.booleans(), eps=st.sampled_from([1e-6, 0.0, 0.1]), seed=st.integers(0, 99),
       broadcast=st.booleans())
def test_pairwise_distance_against_reference_and_torch(shape, p, keepdim, eps, seed, broadcast):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    b = rng.standard_normal(shape[-1:] if broadcast else shape)
    want = reference_pairwise(*np.broadcast_arrays(a, b), p, eps)
    got = F.pairwise_distance(mp.tensor(a), mp.tensor(b), p, eps, keepdim).numpy()
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-12)
    assert_parity(lambda lib, x, y: (mp.nn if lib is mp else torch.nn).PairwiseDistance(p, eps, keepdim)(x, y),
                  [a, b], grads=(0, 1), rtol=1e-10)
    assert_parity(lambda lib, x, y: (mp.nn if lib is mp else torch.nn).CosineSimilarity(-1)(x, y),
                  [a, b], grads=(0, 1), rtol=1e-10)
    assert mp.gradcheck(lambda x, y: F.pairwise_distance(x, y, p if p > 1 else 2.0, 0.1),
                        [mp.tensor(a, requires_grad=True), mp.tensor(b, requires_grad=True)])


def test_distance_layers_reprs_dtype_and_errors():
    assert repr(mp.nn.PairwiseDistance()) == repr(torch.nn.PairwiseDistance()) == "PairwiseDistance()"
    assert repr(mp.nn.CosineSimilarity(0)) == repr(torch.nn.CosineSimilarity(0))
    a = np.array([[1.0, np.nan], [np.inf, 2.0]], np.float32)
    assert_parity(lambda lib, x, y: lib.nn.functional.pairwise_distance(x, y), [a, a[::-1].copy()])
    with pytest.raises(TypeError, match="x1 dtype"):
        F.pairwise_distance(mp.ones(2, 3), mp.ones(2, 3, dtype=mp.float64))
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        F.pairwise_distance(mp.ones(2, 3), mp.ones(2, 4))
    with pytest.raises(ValueError, match="p must be"):
        F.pairwise_distance(mp.ones(2, 3), mp.ones(2, 3), p=-1)


# --------------------------------------------------------------------------- adaptive pooling
@pytest.mark.parametrize("name, shape, size", [
    ("AdaptiveAvgPool1d", (2, 3, 7), 3), ("AdaptiveAvgPool1d", (3, 5), 5), ("AdaptiveMaxPool1d", (2, 3, 7), 4),
    ("AdaptiveMaxPool1d", (3, 5), 2), ("AdaptiveAvgPool3d", (1, 2, 5, 4, 6), (2, None, 3)),
    ("AdaptiveAvgPool3d", (2, 4, 4, 5), 2), ("AdaptiveMaxPool3d", (1, 2, 5, 4, 6), (3, 2, None)),
    ("AdaptiveMaxPool3d", (2, 3, 3, 3), 1)])
def test_adaptive_pool_layers_match_torch(name, shape, size):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    mp_layer, torch_layer = getattr(mp.nn, name)(size), getattr(torch.nn, name)(size)
    assert repr(mp_layer) == repr(torch_layer)
    assert_parity(lambda lib, a: (mp_layer if lib is mp else torch_layer)(a), [x], grads=(0,))
    if "Max" in name:
        mp_layer, torch_layer = getattr(mp.nn, name)(size, True), getattr(torch.nn, name)(size, True)
        assert_parity(lambda lib, a: (mp_layer if lib is mp else torch_layer)(a), [x], grads=(0,))


# --------------------------------------------------------------------------- channel shuffle
@pytest.mark.parametrize("shape, groups", [((2, 6, 3, 3), 2), ((1, 6, 4), 3), ((2, 4, 2, 2, 2), 4),
                                           ((3, 5, 2), 1), ((1, 8, 1, 1), 8)])
def test_channel_shuffle_against_reference_and_torch(shape, groups):
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    got = F.channel_shuffle(mp.tensor(x), groups).numpy()
    per_group = shape[1] // groups
    for c in range(shape[1]):
        g, k = divmod(c, per_group)
        np.testing.assert_array_equal(got[:, k * groups + g], x[:, c])
    assert_parity(lambda lib, a: lib.nn.functional.channel_shuffle(a, groups), [x], grads=(0,))
    assert_parity(lambda lib, a: lib.nn.ChannelShuffle(groups)(a), [x.astype(np.int64)])
    assert repr(mp.nn.ChannelShuffle(groups)) == repr(torch.nn.ChannelShuffle(groups))
    assert mp.gradcheck(lambda a: F.channel_shuffle(a, groups), [mp.tensor(x, requires_grad=True)])


@pytest.mark.parametrize("args, text", [(((1, 6, 2), 4), "divisible by groups"), (((1, 6, 2), 0), "positive"),
                                        (((6, 2), 2), "at least 3 dimensions")])
def test_channel_shuffle_errors_match_torch_class(args, text):
    shape, groups = args
    with pytest.raises(RuntimeError):
        torch.nn.functional.channel_shuffle(torch.ones(shape), groups)
    with pytest.raises(RuntimeError, match=text):
        F.channel_shuffle(mp.ones(*shape), groups)


# --------------------------------------------------------------------------- random
def test_bernoulli_probabilities_generator_and_dtype():
    p = mp.tensor(np.array([0.0, 0.25, 0.5, 1.0] * 5000, np.float64))
    draws = mp.bernoulli(p, generator=0)
    assert draws.dtype == np.float64 and set(np.unique(draws.numpy())) <= {0.0, 1.0}
    means = draws.numpy().reshape(-1, 4).mean(axis=0)
    np.testing.assert_allclose(means, [0.0, 0.25, 0.5, 1.0], atol=0.02)  # 5000 draws: 3.5 sigma < 0.025
    assert mp.bernoulli(p, generator=3).tolist() == mp.bernoulli(p, generator=3).tolist()
    assert mp.bernoulli(p, generator=3).tolist() != mp.bernoulli(p, generator=4).tolist()
    mp.manual_seed(7)
    first = p.bernoulli().tolist()
    mp.manual_seed(7)
    assert mp.bernoulli(p).tolist() == first  # the shared generator, reseeded
    half = mp.zeros(4000).bernoulli(0.5, generator=1)
    assert half.dtype == np.float32 and abs(half.numpy().mean() - 0.5) < 0.03
    assert not mp.bernoulli(mp.tensor([0.5], requires_grad=True)).requires_grad  # no gradient, as torch


@pytest.mark.parametrize("call, torch_call, err, text", [
    (lambda: mp.bernoulli(mp.tensor([1.5])), lambda: torch.bernoulli(torch.tensor([1.5])), RuntimeError, "in \\[0, 1\\]"),
    (lambda: mp.bernoulli(mp.tensor([np.nan])), lambda: torch.bernoulli(torch.tensor([np.nan])), RuntimeError, "in \\[0, 1\\]"),
    (lambda: mp.bernoulli(mp.tensor([1, 0])), lambda: torch.bernoulli(torch.tensor([1, 0])), NotImplementedError, "float tensor"),
    (lambda: mp.randint_like(mp.ones(2), 3, 3), lambda: torch.randint_like(torch.ones(2), 3, 3), RuntimeError, "high must be > low"),
])
def test_random_errors_match_torch_class(call, torch_call, err, text):
    with pytest.raises(err):
        torch_call()
    with pytest.raises(err, match=text):
        call()


@pytest.mark.parametrize("dtype", [mp.float32, mp.int64, mp.int32, mp.float64])
def test_randint_like_range_dtype_and_generator(dtype):
    x = mp.zeros(50, 40, dtype=dtype)
    y = mp.randint_like(x, 3, 9, generator=0)
    assert y.shape == (50, 40) and y.dtype == dtype == torch.randint_like(
        torch.tensor(x.numpy()), 3, 9).numpy().dtype
    assert set(np.unique(y.numpy()).tolist()) == {3, 4, 5, 6, 7, 8}
    assert set(np.unique(mp.randint_like(x, 4, generator=1).numpy()).tolist()) == {0, 1, 2, 3}
    assert mp.randint_like(x, 9, generator=5).tolist() == mp.randint_like(x, 9, generator=5).tolist()
    assert mp.randint_like(x, 2, dtype=mp.int64).dtype == np.int64
    with pytest.raises(TypeError, match="low must be an int"):
        mp.randint_like(x, 0.5, 3)
