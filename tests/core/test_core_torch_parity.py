"""Forward values and gradients of composite expressions agree with PyTorch (when installed)."""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F

torch = pytest.importorskip("torch")


def both(data, seed_shape=None):
    m = mp.tensor(data, requires_grad=True)
    t = torch.tensor(data, requires_grad=True)
    return m, t


EXPRESSIONS = {
    "mlp_softmax": (lambda x, w, lib: lib["log_softmax"](lib["tanh"](x @ w) * 2.0 + 1.0)),
    "broadcast_div_pow": (lambda x, w, lib: ((x.sum(0) / (w.abs() + 1.0)) ** 2).mean()),
    "reuse": (lambda x, w, lib: (lambda h: (h * h.sigmoid() + h).max(1))(x @ w)),
    "index_cat": (lambda x, w, lib: lib["cat"]([x[:, 1:], (x @ w)[::2, :2]], 0).exp()),
}


def mp_lib():
    return {"log_softmax": lambda t: F.log_softmax(t, -1), "tanh": F.tanh, "cat": lambda ts, d: mp.cat(ts, d)}


def torch_lib():
    return {"log_softmax": lambda t: torch.log_softmax(t, -1), "tanh": torch.tanh,
            "cat": lambda ts, d: torch.cat(ts, d)}


def _max_values(out):
    return out.values if isinstance(out, tuple) else out  # max(dim): (values, indices)


@pytest.mark.parametrize("name", sorted(EXPRESSIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_composite_expression_matches_torch(name, dtype):
    rng = np.random.default_rng(42)
    x_np = rng.standard_normal((4, 3)).astype(dtype)
    w_np = rng.standard_normal((3, 3)).astype(dtype)
    expr = EXPRESSIONS[name]
    xm, xt = both(x_np)
    wm, wt = both(w_np)
    out_m = _max_values(expr(xm, wm, mp_lib()))
    out_t = _max_values(expr(xt, wt, torch_lib()))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), rtol=rtol, atol=rtol)
    g = rng.standard_normal(out_m.shape).astype(dtype)
    out_m.backward(g)
    out_t.backward(torch.tensor(g))
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=rtol * 10, atol=rtol)
    np.testing.assert_allclose(wm.grad.numpy(), wt.grad.numpy(), rtol=rtol * 10, atol=rtol)


def test_softmax_cross_entropy_by_hand_matches_torch():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 10))
    labels = rng.integers(0, 10, 5)
    m = mp.tensor(logits, requires_grad=True)
    loss_m = -F.log_softmax(m, -1)[np.arange(5), labels].mean()
    t = torch.tensor(logits, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(t, torch.tensor(labels))
    loss_m.backward()
    loss_t.backward()
    assert loss_m.item() == pytest.approx(loss_t.item(), rel=1e-12)
    np.testing.assert_allclose(m.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bounds", [(0.0, 1.0), (0.0, None), (None, 0.0), (2.0, 1.0)])
def test_clamp_backward_gives_zero_not_nan_where_clamped(bounds, dtype):
    # PyTorch selects the incoming gradient where the value was inside the (inclusive)
    # bounds and 0 elsewhere: a NaN/inf gradient at a clamped element gives 0, and a NaN
    # input (outside every comparison) gets 0 too.
    values = [-2.0, 0.0, 0.5, 1.0, 3.0, np.nan, -np.inf, np.inf]
    upstream = [np.nan, np.inf, np.nan, -np.inf, np.nan, np.nan, 5.0, 7.0]
    lo, hi = bounds
    x = mp.tensor(values, dtype=dtype, requires_grad=True)
    x.clamp(lo, hi).backward(mp.tensor(upstream, dtype=dtype))
    xt = torch.tensor(values, dtype=getattr(torch, dtype), requires_grad=True)
    xt.clamp(lo, hi).backward(torch.tensor(upstream, dtype=getattr(torch, dtype)))
    np.testing.assert_array_equal(x.grad.numpy(), xt.grad.numpy())
    assert x.grad.dtype == np.dtype(dtype)
    # the in-place clamp_ records the same backward
    y = mp.tensor(values, dtype=dtype, requires_grad=True)
    z = y * 1
    z.clamp_(lo, hi)
    z.backward(mp.tensor(upstream, dtype=dtype))
    np.testing.assert_array_equal(y.grad.numpy(), xt.grad.numpy())
