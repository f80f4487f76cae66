"""Results at a domain's edge (log(0), sqrt(-1), x / 0, the gradient of asin at 1, inf + -inf
in scatter_add, inf - inf, 0 * inf, overflow) are inf or NaN silently in PyTorch; minipool gives
the same values and raises no NumPy RuntimeWarning (a script run with -W error must not stop),
while the user's own NumPy code (outside the ops, inside a gradient hook) keeps the user's error
settings (minipool/_numpy_errors.py)."""
import importlib
import warnings

import numpy as np
import pytest

import minipool as mp
from minipool._numpy_errors import _PublicErrstate

torch = pytest.importorskip("torch")

EDGE = [0.0, -1.0, 1.0, -0.0, float("inf"), float("-inf"), float("nan")]


@pytest.mark.parametrize("name", ["log", "sqrt", "asin", "acos", "log2", "log10", "log1p",
                                  "rsqrt", "erfinv"])
def test_unary_edges_are_quiet_and_match_torch(name):
    x = mp.tensor(EDGE, dtype=mp.float64, requires_grad=True)
    t = torch.tensor(EDGE, dtype=torch.float64, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = getattr(mp, name)(x)
        y.backward(mp.ones(len(EDGE), dtype=mp.float64))
    getattr(torch, name)(t).backward(torch.ones(len(EDGE), dtype=torch.float64))
    # the same inf / NaN / signed-zero places; finite values to the last bits (log10's gradient
    # is 1/(x ln 10) there, rounded differently by 1 ulp)
    np.testing.assert_allclose(y.detach().numpy(), getattr(torch, name)(t).detach().numpy(),
                               rtol=1e-15, atol=0)
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-15, atol=0)


def test_division_by_zero_is_quiet_and_matches_torch():
    a = mp.tensor([1.0, -1.0, 0.0], requires_grad=True)
    ta = torch.tensor([1.0, -1.0, 0.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = a / 0.0
        y.sum().backward()
    (ta / 0.0).sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), (ta / 0.0).detach().numpy())
    np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())


def test_scatter_add_of_opposite_infinities_is_quiet():
    index, src = [0, 0], [float("inf"), float("-inf")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = mp.zeros(2).scatter_add(0, mp.tensor(index), mp.tensor(src))
    theirs = torch.zeros(2).scatter_add(0, torch.tensor(index), torch.tensor(src))
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_a_hook_keeps_the_users_numpy_error_settings():
    x = mp.tensor([4.0], requires_grad=True)
    y = mp.sqrt(x)

    def hook(g):
        np.log(np.zeros(1))  # the user's own NumPy code: warns as the user asked
        return g

    y.register_hook(hook)
    with np.errstate(divide="raise"):
        with pytest.raises(FloatingPointError):
            y.backward()


@pytest.mark.parametrize("name", ["exp", "pow", "logsumexp", "reciprocal"])
def test_overflow_and_zero_powers_are_quiet_and_match_torch(name):
    values = [0.0, -1.0, 2.0, 1e30, -1e30, 100.0, float("inf"), float("nan")]
    call = {"exp": lambda L, x: L.exp(x), "pow": lambda L, x: x ** (x - 1.0),
            "logsumexp": lambda L, x: L.logsumexp(x[:6], 0), "reciprocal": lambda L, x: L.reciprocal(x)}[name]
    x = mp.tensor(values, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = call(mp, x)
    theirs = call(torch, torch.tensor(values)).numpy()
    np.testing.assert_allclose(y.detach().numpy(), theirs, rtol=1e-6, atol=0)


tensor_module = importlib.import_module("minipool.tensor")

INF = float("inf")
EDGES = [INF, -INF, 3e38, 0.0, -0.0, 1.0]

# name -> (minipool op, torch op): each meets inf - inf, 0 * inf or an overflow below
OPS = {
    "add": (lambda m, a, b: a + b, lambda t, a, b: a + b),
    "sub": (lambda m, a, b: a - b, lambda t, a, b: a - b),
    "mul": (lambda m, a, b: a * b, lambda t, a, b: a * b),
    "div": (lambda m, a, b: a / b, lambda t, a, b: a / b),
    "sum": (lambda m, a, b: (a * b).sum(), lambda t, a, b: (a * b).sum()),
    "mean": (lambda m, a, b: a.mean(), lambda t, a, b: a.mean()),
    "softmax": (lambda m, a, b: m.nn.functional.softmax(a, dim=0),
                lambda t, a, b: t.softmax(a, dim=0)),
    "mse_loss": (lambda m, a, b: m.nn.functional.mse_loss(a, b),
                 lambda t, a, b: t.nn.functional.mse_loss(a, b)),
    "matmul": (lambda m, a, b: a.reshape(1, -1) @ b.reshape(-1, 1),
               lambda t, a, b: a.reshape(1, -1) @ b.reshape(-1, 1)),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_ops_are_silent_at_inf_and_overflow_and_match_torch(name):
    ours, theirs = OPS[name]
    a = np.array(EDGES, dtype=np.float32)
    b = np.array(EDGES[::-1], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any NumPy RuntimeWarning fails the test
        got = ours(mp, mp.tensor(a, requires_grad=True), mp.tensor(b, requires_grad=True))
        got.sum().backward()
    want = theirs(torch, torch.tensor(a), torch.tensor(b))
    np.testing.assert_array_equal(got.detach().numpy(), want.numpy())


def test_the_users_numpy_settings_are_kept_outside_minipool():
    before = np.geterr()
    try:
        np.seterr(all="raise")
        out = mp.tensor([INF]) - mp.tensor([INF])  # silent inside minipool, as torch
        assert np.isnan(out.numpy()).all()
        assert np.geterr()["invalid"] == "raise"
        with pytest.raises(FloatingPointError):
            np.array([INF]) - np.array([INF])  # the user's own NumPy still raises
    finally:
        np.seterr(**before)
    assert np.geterr() == before


class _Fails(mp.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        assert np.geterr()["invalid"] == "ignore"  # a user's Function runs quiet too
        raise ArithmeticError("inside the op")


def test_the_setting_is_restored_when_an_op_raises():
    before = np.geterr()
    with pytest.raises(ArithmeticError, match="inside the op"):
        _Fails.apply(mp.ones(2))
    assert np.geterr() == before


def test_the_public_errstate_fallback_gives_the_same(monkeypatch):
    """A NumPy without the context variable: the np.errstate stand-in, same results."""
    monkeypatch.setattr(tensor_module, "_numpy_errors", _PublicErrstate())
    monkeypatch.setattr(tensor_module, "_QUIET_NUMPY", {"all": "ignore"})
    before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = mp.tensor([INF, 3e38]) * mp.tensor([0.0, 10.0])
    assert np.isnan(out.numpy()[0]) and out.numpy()[1] == INF
    assert np.geterr() == before
