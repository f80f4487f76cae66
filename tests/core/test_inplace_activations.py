"""In-place activations and residual adds inside a graph, as a ResNet block writes them:
``nn.ReLU(inplace=True)`` after a batch norm, ``out += identity`` on a batch norm's output.
PyTorch records both; minipool refused both (a ValueError, and a RuntimeError about shared
memory because batch_norm's output was a reshape view of an internal tensor)."""
import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F

torch = pytest.importorskip("torch")


def _block(lib, x, w1, w2):
    """conv -> bn -> relu_ -> conv -> bn -> += x -> relu(inplace=True), training mode."""
    F_ = F if lib is mp else torch.nn.functional
    c = x.shape[1]
    out = F_.conv2d(x, w1, padding=1)
    out = F_.batch_norm(out, None, None, training=True)
    out = F_.relu(out, inplace=True)
    out = F_.conv2d(out, w2, padding=1)
    out = F_.batch_norm(out, lib.zeros(c, dtype=lib.float64), lib.ones(c, dtype=lib.float64), training=True)
    out += x
    return F_.relu(out, inplace=True)


def test_residual_block_with_inplace_relu_and_add_matches_torch():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in ((2, 3, 5, 5), (3, 3, 3, 3), (3, 3, 3, 3))]
    weight = rng.standard_normal((2, 3, 5, 5))
    results = {}
    for lib in (mp, torch):
        ts = [lib.tensor(a.copy(), requires_grad=True) for a in arrays]
        x = ts[0] * 1.0  # a result, as a block's input is inside a network
        out = _block(lib, x, ts[1], ts[2])
        (out * lib.tensor(weight)).sum().backward()
        results[lib.__name__] = [out.detach().numpy()] + [t.grad.numpy() for t in ts]
    for mine, theirs in zip(results["minipool"], results["torch"]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("layer", ["ReLU", "ReLU6", "LeakyReLU", "ELU", "Hardtanh", "SiLU"])
def test_inplace_activation_layer_after_batchnorm_trains_as_torch(layer):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    grads = {}
    for lib in (mp, torch):
        model = lib.nn.Sequential(lib.nn.BatchNorm2d(3), getattr(lib.nn, layer)(inplace=True))
        xt = lib.tensor(x.copy(), requires_grad=True)
        out = model(xt)
        (out * lib.tensor(np.arange(out.numel(), dtype=np.float32).reshape(out.shape))).sum().backward()
        grads[lib.__name__] = (out.detach().numpy(), xt.grad.numpy(), model[0].weight.grad.numpy())
    for mine, theirs in zip(grads["minipool"], grads["torch"]):
        np.testing.assert_allclose(mine, theirs, rtol=2e-5, atol=2e-5)


def test_inplace_relu_over_a_saved_output_raises_as_torch():
    for lib in (mp, torch):
        x = lib.tensor([1.0, -2.0], requires_grad=True)
        y = x.sigmoid()  # sigmoid's backward needs its output
        (F if lib is mp else torch.nn.functional).relu(y, inplace=True)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_inplace_relu_on_a_leaf_that_requires_grad_raises_as_torch():
    for lib in (mp, torch):
        with pytest.raises(RuntimeError, match="leaf"):
            (F if lib is mp else torch.nn.functional).relu(lib.ones(2, requires_grad=True), inplace=True)


def test_dropout_inplace_writes_over_its_input():
    x = mp.ones(1000)
    out = nn.Dropout(0.5, inplace=True)(x)
    assert out is x  # PyTorch's F.dropout(inplace=True) returns its input, changed
    kept = x.numpy() != 0
    assert 300 < kept.sum() < 700 and np.all(x.numpy()[kept] == 2.0)
    z = mp.ones(8, requires_grad=True) * 1.0
    y = F.dropout(z, 0.5, inplace=True, generator=np.random.default_rng(3))
    assert y is z
    y.sum().backward()  # recorded: the gradient is the mask, as out of place


def test_batch_norm_output_can_be_changed_in_place():
    bn = nn.BatchNorm2d(2)
    x = mp.randn(3, 2, 2, 2, requires_grad=True)
    y = bn(x)
    y += 1.0  # once a RuntimeError: shared memory (a reshape view)
    y.sum().backward()
    # d/dx sum(bn(x) + 1) is 0 (the batch mean absorbs a constant); the weight gets sum(xhat) = 0
    np.testing.assert_allclose(x.grad.numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(bn.bias.grad.numpy(), [12.0, 12.0])
