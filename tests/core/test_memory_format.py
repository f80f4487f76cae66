"""PyTorch's channels_last speed habit: ``model.to(memory_format=torch.channels_last)`` and
``x.contiguous(memory_format=torch.channels_last)``.  minipool had no ``mp.channels_last``
(an AttributeError) and ``contiguous``/``to`` took no ``memory_format`` (a TypeError)."""
import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")


def _net(nn):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, groups=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 2))


def test_a_channels_last_training_step_matches_torch():
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    mine, theirs = _net(mp.nn), _net(torch.nn)
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in mine.state_dict().items()})
    assert mine.to(memory_format=mp.channels_last) is mine
    theirs = theirs.to(memory_format=torch.channels_last)
    results = []
    for lib, model in ((mp, mine), (torch, theirs)):
        leaf = lib.tensor(x, requires_grad=True)
        xs = leaf.contiguous(memory_format=lib.channels_last)
        assert xs.is_contiguous(memory_format=lib.channels_last) and not xs.is_contiguous()
        assert tuple(xs.shape) == x.shape
        out = model(xs)
        (out * lib.tensor(np.array([1.0, -2.0], np.float32))).sum().backward()
        results.append([out.detach().numpy(), leaf.grad.numpy()] + [p.grad.numpy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_formats_and_their_errors():
    x = mp.arange(24.0).reshape(1, 2, 3, 4)
    y = x.to(memory_format=mp.channels_last)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    assert y.is_contiguous(memory_format=mp.channels_last)
    assert y.contiguous(memory_format=mp.channels_last) is y
    assert y.contiguous(memory_format=mp.preserve_format) is y
    assert y.contiguous(memory_format=mp.contiguous_format).is_contiguous()
    assert x.is_contiguous(memory_format=mp.contiguous_format)
    assert repr(mp.channels_last) == "minipool.channels_last"
    with pytest.raises(RuntimeError, match=r"channels_last needs a 4-d \(N, C, H, W\) tensor"):
        mp.zeros(2, 3).contiguous(memory_format=mp.channels_last)  # PyTorch: RuntimeError too
    with pytest.raises(TypeError, match="memory_format must be mp.contiguous_format, mp.channels_last"):
        x.contiguous(memory_format="channels_last")
    with pytest.raises(TypeError, match="Module.to: memory_format must be"):
        mp.nn.Linear(2, 2).to(memory_format="nhwc")
