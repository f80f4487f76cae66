"""cross_entropy / nll_loss gradients at two edges a training loop meets:

* a batch whose targets are all ``ignore_index`` (padding-only sequences, an unlabelled crop):
  the mean is 0/0 = nan in both libraries, but PyTorch's gradient is 0 for ignored rows, so
  one such batch leaves the model alone; minipool's was nan everywhere (every weight nan
  after ``optimizer.step()``).
* soft targets that require grad (distillation without ``detach``): PyTorch differentiates
  the target; minipool returned None.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F

torch = pytest.importorskip("torch")


def _grads(lib, fn, logits, target, target_grad=False):
    x = lib.tensor(logits.copy(), requires_grad=True)
    t = lib.tensor(target.copy(), requires_grad=target_grad)
    loss = fn(lib, x, t)
    loss.backward()
    return loss.detach().numpy(), x.grad.numpy(), None if t.grad is None else t.grad.numpy()


def _functional(lib):
    return F if lib is mp else torch.nn.functional


@pytest.mark.parametrize("case", [
    dict(target=[-100, -100, -100]),
    dict(target=[-100, -100, -100], label_smoothing=0.2),
    dict(target=[1, 1, 1], ignore_index=1, weight=[1.0, 2.0, 3.0, 4.0]),
    dict(target=[0, 1, -100], weight=[0.0, 0.0, 1.0, 1.0]),  # kept rows weigh 0: nan, ignored 0
])
def test_mean_over_no_weight_gives_torch_gradients(case):
    case = dict(case)
    target = np.array(case.pop("target"))
    weight = case.pop("weight", None)
    logits = np.random.default_rng(0).standard_normal((3, 4))

    def fn(lib, x, t):
        w = None if weight is None else lib.tensor(np.array(weight))
        return _functional(lib).cross_entropy(x, t, w, **case)

    mine, theirs = _grads(mp, fn, logits, target), _grads(torch, fn, logits, target)
    np.testing.assert_array_equal(mine[0], theirs[0])  # nan
    np.testing.assert_array_equal(np.isnan(mine[1]), np.isnan(theirs[1]))
    np.testing.assert_array_equal(np.nan_to_num(mine[1], nan=7.0), np.nan_to_num(theirs[1], nan=7.0))


def test_nll_loss_of_an_all_ignored_batch_has_zero_gradient():
    logits = np.random.default_rng(1).standard_normal((2, 3, 2, 2))  # a segmentation batch
    target = np.full((2, 2, 2), 255)

    def fn(lib, x, t):
        f = _functional(lib)
        return f.nll_loss(f.log_softmax(x, 1), t, ignore_index=255)

    loss, grad, _ = _grads(mp, fn, logits, target)
    assert np.isnan(loss) and np.array_equal(grad, np.zeros_like(grad))
    np.testing.assert_array_equal(grad, _grads(torch, fn, logits, target)[1])


@pytest.mark.parametrize("shape,kwargs", [((5, 4), {}), ((5, 4), {"label_smoothing": 0.3}),
                                          ((2, 4, 3), {"reduction": "sum"}),
                                          ((5, 4), {"weight": True, "reduction": "none"})])
def test_soft_targets_that_require_grad_get_torch_gradient(shape, kwargs):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal(shape)
    target = rng.random(shape)
    target /= target.sum(axis=1, keepdims=True)
    weight = np.array([0.5, 1.0, 2.0, 1.5])

    def fn(lib, x, t):
        args = dict(kwargs)
        if args.pop("weight", False):
            args["weight"] = lib.tensor(weight)
        out = _functional(lib).cross_entropy(x, t, **args)
        return out if out.ndim == 0 else (out * lib.tensor(np.arange(1.0, 6.0))).sum()

    mine, theirs = _grads(mp, fn, logits, target, True), _grads(torch, fn, logits, target, True)
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
