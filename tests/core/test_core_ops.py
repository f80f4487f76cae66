"""Every core op: float64 gradcheck, forward against NumPy, and bad input."""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F


def rand(*shape, seed=0, positive=False, distinct=False):
    rng = np.random.default_rng(seed)
    if distinct:  # no ties, so max/min/abs/relu are differentiable everywhere sampled
        data = rng.permutation(np.prod(shape)).reshape(shape) * 0.37 - 3.1
    else:
        data = rng.standard_normal(shape)
    if positive:
        data = np.abs(data) + 0.5
    return mp.tensor(data, dtype="float64", requires_grad=True)


UNARY = {
    "neg": (lambda t: -t, np.negative, {}),
    "exp": (lambda t: t.exp(), np.exp, {}),
    "log": (lambda t: t.log(), np.log, {"positive": True}),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, {"positive": True}),
    "abs": (lambda t: abs(t), np.abs, {"distinct": True}),
    "tanh": (lambda t: t.tanh(), np.tanh, {}),
    "sigmoid": (lambda t: t.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), {}),
    "relu": (lambda t: t.relu(), lambda a: np.maximum(a, 0), {"distinct": True}),
    "pow_scalar": (lambda t: t ** 3, lambda a: a ** 3, {}),
    "pow_fractional": (lambda t: t ** 0.5, np.sqrt, {"positive": True}),
    "rpow": (lambda t: 2.0 ** t, lambda a: 2.0 ** a, {}),
    "clip": (lambda t: t.clip(-0.5, 0.7), lambda a: np.clip(a, -0.5, 0.7), {"distinct": True}),
    "softmax": (lambda t: t.softmax(-1), lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True), {}),
    "log_softmax": (lambda t: F.log_softmax(t, 0),
                    lambda a: a - np.log(np.exp(a).sum(0, keepdims=True)), {}),
    "logsumexp": (lambda t: t.logsumexp(1), lambda a: np.log(np.exp(a).sum(1)), {}),
    "sum_all": (lambda t: t.sum(), np.sum, {}),
    "sum_dim": (lambda t: t.sum(dim=1, keepdim=True), lambda a: a.sum(1, keepdims=True), {}),
    "mean_dims": (lambda t: t.mean(dim=(0, 2)), lambda a: a.mean((0, 2)), {}),
    "max_dim": (lambda t: t.max(dim=1).values, lambda a: a.max(1), {"distinct": True}),
    "amax_dim": (lambda t: t.amax(dim=1), lambda a: a.max(1), {"distinct": True}),
    "min_all": (lambda t: t.min(), np.min, {"distinct": True}),
    "reshape": (lambda t: t.reshape(4, -1), lambda a: a.reshape(4, -1), {}),
    "view": (lambda t: t.view(-1), lambda a: a.reshape(-1), {}),
    "transpose": (lambda t: t.transpose(0, 2), lambda a: a.swapaxes(0, 2), {}),
    "permute": (lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1), {}),
    "T": (lambda t: t.T, lambda a: a.T, {}),
    "flatten": (lambda t: t.flatten(1), lambda a: a.reshape(a.shape[0], -1), {}),
    "squeeze_unsqueeze": (lambda t: t.unsqueeze(1).squeeze(1), lambda a: a, {}),
    "getitem_slice": (lambda t: t[1:, ::2], lambda a: a[1:, ::2], {}),
    "getitem_repeated": (lambda t: t[[0, 0, 1]], lambda a: a[[0, 0, 1]], {}),
    "getitem_mask": (lambda t: t[t.numpy() > 0], lambda a: a[a > 0], {}),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_op_values_and_gradcheck(name):
    fn, ref, kw = UNARY[name]
    x = rand(2, 3, 4, **kw)
    np.testing.assert_allclose(fn(x).numpy(), ref(x.numpy()), rtol=1e-12, atol=1e-12)
    assert mp.gradcheck(fn, [x])


BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a ** b, np.power),
    "where": (lambda a, b: mp.where(a.numpy() > 1, a, b), lambda a, b: np.where(a > 1, a, b)),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_op_values_and_gradcheck(name):
    fn, ref = BINARY[name]
    a, b = rand(3, 4, seed=1, positive=True), rand(4, seed=2, positive=True)
    np.testing.assert_allclose(fn(a, b).numpy(), ref(a.numpy(), b.numpy()), rtol=1e-12)
    assert mp.gradcheck(fn, [a, b])


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                   ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_shapes_values_gradcheck(sa, sb):
    a, b = rand(*sa, seed=3), rand(*sb, seed=4)
    np.testing.assert_allclose((a @ b).numpy(), a.numpy() @ b.numpy(), rtol=1e-12)
    assert mp.gradcheck(lambda p, q: p @ q, [a, b])


def test_cat_and_stack_gradcheck():
    a, b = rand(2, 3, seed=5), rand(2, 5, seed=6)
    np.testing.assert_array_equal(mp.cat([a, b], dim=1).numpy(), np.concatenate([a.numpy(), b.numpy()], 1))
    assert mp.gradcheck(lambda p, q: mp.cat([p, q * q], dim=-1), [a, b])
    c = rand(2, 3, seed=7)
    assert mp.stack([a, c], dim=1).shape == (2, 2, 3)
    assert mp.gradcheck(lambda p, q: mp.stack([p, q], dim=2), [a, c])


def test_ties_share_gradient_in_amax_and_amin():
    # amax/amin (PyTorch's names) share among ties; max(dim)/min(dim) pick one index.
    x = mp.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 0.0]], requires_grad=True)
    x.amax(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0.5, 0.5], [1, 0, 0]])
    x.grad = None
    x.amin(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 0, 0], [0, 0.5, 0.5]])


def test_softmax_family_is_stable_for_huge_inputs():
    x = mp.tensor([[1000.0, 1001.0, -1000.0]], dtype="float64", requires_grad=True)
    s = x.softmax(-1).numpy()
    assert np.all(np.isfinite(s)) and s.sum() == pytest.approx(1.0)
    ls = F.log_softmax(x, -1).numpy()
    np.testing.assert_allclose(ls, [[-1.3132616875182228, -0.31326168751822286, -2001.3132616875182]])
    assert F.logsumexp(x, 1).item() == pytest.approx(1001.3132616875182)
    assert mp.gradcheck(lambda t: t.softmax(-1) * t, [x])


def test_sigmoid_does_not_overflow():
    x = mp.tensor([-1000.0, 0.0, 1000.0])
    np.testing.assert_array_equal(x.sigmoid().numpy(), [0.0, 0.5, 1.0])


@pytest.mark.parametrize("fn,match", [
    (lambda: mp.ones(2, 3) @ mp.ones(2, 3), "inner sizes 3 and 2"),
    (lambda: mp.ones(3) @ mp.tensor(2.0), "at least 1 dimension"),
    (lambda: mp.ones(2, 3) + mp.ones(4), r"shapes \(2, 3\) and \(4,\)"),
    (lambda: mp.ones(2, 3) * mp.ones(3, 2), "cannot be broadcast"),
    (lambda: mp.ones(2, 3).reshape(4, 2), r"cannot reshape .*\(2, 3\) into \(4, 2\)"),
    (lambda: mp.ones(2, 3).sum(dim=2), "dim 2 is out of range"),
    (lambda: mp.ones(2, 3).permute(0, 0), "repeats an axis"),
    (lambda: mp.cat([mp.ones(2, 3), mp.ones(3, 3)], dim=1), "does not match"),
    (lambda: mp.stack([mp.ones(2), mp.ones(3)]), "expected"),
    (lambda: mp.ones(2)[5], "invalid for a tensor of shape"),
    (lambda: mp.zeros(0).max(), "empty"),
    (lambda: mp.ones(2).clip(), "min and max"),
])
def test_bad_input_is_a_clear_error(fn, match):
    with pytest.raises((ValueError, TypeError, IndexError), match=match):
        fn()


def test_float64_everywhere_and_float32_default():
    x = rand(3, 3)
    for op in (lambda t: t.exp(), lambda t: t @ t, lambda t: t.softmax(0), lambda t: t.sum()):
        assert op(x).dtype == np.float64
        assert op(mp.tensor(x.numpy().astype(np.float32))).dtype == np.float32
