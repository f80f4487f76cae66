"""F.prelu / nn.PReLU and F.rrelu / nn.RReLU: torch parity, loop references, gradchecks."""
import numpy as np
import pytest
import torch

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F

SPECIAL = np.array([-np.inf, -2.0, -0.0, 0.0, 1.5, np.inf, np.nan])


def _input(shape, seed=0, dtype=np.float64):
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    a.reshape(-1)[:SPECIAL.size] = SPECIAL[:a.size]
    if a.size:
        a.reshape(-1)[-1] = 0.0  # a kink in every case
    return a


def _prelu_by_loop(x, w):
    out = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        slope = w[0] if w.size == 1 else w[idx[1]]
        out[idx] = x[idx] if x[idx] > 0 else slope * x[idx]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, n_weights", [((7,), 1), ((2, 3), 1), ((2, 3), 3), ((2, 4, 3, 3), 4),
                                              ((1, 2, 5), 2), ((), 1), ((0, 3, 2), 3)])
def test_prelu_matches_torch_and_a_loop(shape, n_weights, dtype):
    x = _input(shape, dtype=dtype) if shape else np.array(-1.5, dtype)
    w = np.linspace(-0.5, 0.75, n_weights).astype(dtype)
    xm, wm = mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    out, tout = F.prelu(xm, wm), torch.nn.functional.prelu(xt, wt)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    np.testing.assert_array_equal(out.numpy(), _prelu_by_loop(x, w))
    g = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    out.backward(mp.tensor(g))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(wm.grad.numpy(), wt.grad.numpy(), rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("n_weights", [1, 3])
def test_prelu_gradcheck(n_weights):
    x = mp.tensor(np.random.default_rng(2).standard_normal((2, 3, 4)) + 0.05, requires_grad=True)
    w = mp.tensor(np.linspace(0.1, 0.4, n_weights), requires_grad=True)
    assert mp.gradcheck(F.prelu, (x, w))


def test_prelu_layer_like_torchs():
    ours, theirs = nn.PReLU(3, init=0.1), torch.nn.PReLU(3, init=0.1)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()] == ["weight"]
    assert ours.weight.shape == tuple(theirs.weight.shape) and repr(ours) == repr(theirs)
    x = _input((2, 3, 4), dtype=np.float32)
    np.testing.assert_array_equal(ours(mp.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy())
    assert nn.PReLU(dtype=mp.float64).weight.dtype == np.float64
    assert repr(nn.PReLU()) == repr(torch.nn.PReLU())


@pytest.mark.parametrize("x_shape, w, error, text", [
    ((2, 3), [0.1, 0.2], RuntimeError, "weight has 2 slopes, the input has 3 channels"),
    ((4,), [0.1, 0.2], RuntimeError, "weight has 2 slopes, the input has 1 channels"),
    ((2, 2), [[0.1, 0.2]], RuntimeError, "weight must be 0-d or 1-D"),
])
def test_prelu_bad_weight_is_named_where_torch_refuses(x_shape, w, error, text):
    with pytest.raises(error):
        torch.nn.functional.prelu(torch.ones(x_shape), torch.tensor(w))
    with pytest.raises(error, match=text):
        F.prelu(mp.ones(x_shape), mp.tensor(w))


def test_prelu_refuses_integers_and_mixed_dtypes():
    with pytest.raises(TypeError, match="prelu: input must be float32 or float64"):
        F.prelu(mp.tensor([1, -2]), mp.tensor([0.25]))
    with pytest.raises(TypeError, match="prelu: weight dtype float64 must equal"):
        F.prelu(mp.ones(2), mp.tensor([0.25], dtype=mp.float64))
    with pytest.raises(ValueError, match="PReLU: num_parameters must be an int >= 1"):
        nn.PReLU(0)


@pytest.mark.parametrize("lower, upper", [(1 / 8, 1 / 3), (0.0, 0.0), (0.2, 0.2), (-0.5, 0.5)])
def test_rrelu_eval_matches_torch(lower, upper):
    x = _input((3, 5))
    xm, xt = mp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = F.rrelu(xm, lower, upper)
    tout = torch.nn.functional.rrelu(xt, lower, upper)
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_array_equal(xm.grad.numpy(), xt.grad.numpy())


def test_rrelu_training_slopes_are_uniform_and_the_gradient_uses_them():
    x = mp.tensor(-np.ones(20_000), requires_grad=True)
    out = F.rrelu(x, 0.1, 0.3, training=True, generator=0)
    slopes = -out.numpy()
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and len(np.unique(slopes)) > 19_000
    assert abs(slopes.mean() - 0.2) < 0.003 and abs(slopes.var() - 0.2 ** 2 / 12) < 3e-4
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), slopes)  # d(slope * x)/dx = slope
    tx = torch.tensor(-np.ones(20_000))
    t_slopes = -torch.nn.functional.rrelu(tx, 0.1, 0.3, training=True).numpy()
    assert t_slopes.min() >= 0.1 and t_slopes.max() <= 0.3  # torch's draws: the same law
    pos = mp.tensor([0.5, 2.0, np.inf])
    np.testing.assert_array_equal(F.rrelu(pos, training=True).numpy(), pos.numpy())
    assert np.isnan(F.rrelu(mp.tensor([np.nan]), training=True).numpy()).all()


def test_rrelu_training_gradcheck_with_fixed_draws():
    x = mp.tensor(np.random.default_rng(3).standard_normal(8), requires_grad=True)
    assert mp.gradcheck(lambda t: F.rrelu(t, 0.1, 0.4, training=True, generator=5), (x,))


def test_rrelu_layer_follows_train_and_eval():
    layer, theirs = nn.RReLU(0.1, 0.3), torch.nn.RReLU(0.1, 0.3)
    assert repr(layer) == repr(theirs)
    x = mp.tensor(-np.ones(1000))
    assert len(np.unique(layer(x).numpy())) > 900
    layer.eval()
    np.testing.assert_allclose(layer(x).numpy(), -0.2)


def test_rrelu_inplace_and_bad_arguments():
    x = mp.tensor([-4.0, 1.0])
    assert F.rrelu_(x, 0.25, 0.25) is x and x.tolist() == [-1.0, 1.0]
    with pytest.raises(RuntimeError, match="rrelu.*leaf tensor that requires grad"):
        F.rrelu(mp.tensor([1.0], requires_grad=True), inplace=True)
    with pytest.raises(ValueError, match="rrelu: lower must be <= upper"):
        F.rrelu(mp.ones(2), 0.5, 0.1)
    with pytest.raises(TypeError, match="rrelu: training must be a bool"):
        F.rrelu(mp.ones(2), training="yes")
