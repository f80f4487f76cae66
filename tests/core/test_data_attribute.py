"""``Tensor.data`` as in PyTorch: a Tensor sharing the memory, outside the graph, with its own
version counter (DCGAN-style init and WGAN clipping write through it)."""
import pathlib
import re

import numpy as np
import pytest
import torch

import minipool as mp
import minipool.nn as nn


def _pair(values, requires_grad=True):
    return (mp.tensor(values, requires_grad=requires_grad),
            torch.tensor(values, requires_grad=requires_grad))


def test_data_is_a_detached_tensor_sharing_memory():
    p, tp = _pair([[1.0, 2.0], [3.0, 4.0]])
    d, td = p.data, tp.data
    assert isinstance(d, mp.Tensor) and not isinstance(d, np.ndarray)
    assert (d.requires_grad, d.is_leaf, d.grad_fn) == (td.requires_grad, td.is_leaf, td.grad_fn) == (False, True, None)
    assert np.shares_memory(d.numpy(), p.numpy())
    assert d.shape == p.shape and d.dtype == p.dtype and d.data.numpy() is p.numpy()


def test_data_of_a_non_leaf_result_is_outside_the_graph():
    x, tx = _pair([1.0, -2.0, 3.0])
    y, ty = x * 2, tx * 2
    assert (y.data.requires_grad, y.data.grad_fn) == (ty.data.requires_grad, ty.data.grad_fn) == (False, None)
    np.testing.assert_array_equal(y.data.numpy(), ty.data.numpy())


@pytest.mark.parametrize("write", [
    lambda d: d.fill_(0.5),
    lambda d: d.zero_(),
    lambda d: d.copy_(d * 3 - 1),
    lambda d: d.clamp_(-1.5, 2.5),
    lambda d: d.mul_(2).add_(1),
    lambda d: d.__setitem__((0, slice(None)), 7.0),
])
def test_in_place_writes_through_data_change_the_parameter_like_torch(write):
    values = [[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]]
    p, tp = _pair(values)
    write(p.data)
    with torch.no_grad():
        write(tp.data)
    np.testing.assert_array_equal(p.numpy(), tp.detach().numpy())
    assert p.requires_grad and p.is_leaf and p._version == tp._version == 0


def test_dcgan_style_init_loop_then_a_training_step():
    mp.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data.normal_(0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.normal_(1.0, 0.02)
            m.bias.data.fill_(0)
        elif isinstance(m, nn.Linear):
            m.weight.data.uniform_(-0.1, 0.1)
            m.bias.data.zero_()
    w = net[0].weight.numpy()
    assert 0.005 < w.std() < 0.05 and abs(w.mean()) < 0.02  # 36 draws of N(0, 0.02^2)
    assert np.all(net[1].bias.numpy() == 0) and np.all(net[4].bias.numpy() == 0)
    assert np.all(np.abs(net[4].weight.numpy()) <= 0.1)
    opt = mp.optim.SGD(net.parameters(), lr=0.1)
    before = net[4].weight.numpy().copy()
    loss = mp.nn.functional.cross_entropy(net(mp.randn(3, 1, 8, 8)), mp.tensor([0, 1, 0]))
    loss.backward()
    opt.step()
    assert not np.array_equal(before, net[4].weight.numpy())


def test_wgan_clipping_through_data_is_invisible_to_autograd_like_torch():
    p, tp = _pair([0.5, -0.2, 0.03])
    y, ty = (p * p).sum(), (tp * tp).sum()
    p.data.clamp_(-0.01, 0.01)
    tp.data.clamp_(-0.01, 0.01)
    y.backward()  # the saved p was changed, but through .data: no error in either library
    ty.backward()
    np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy())
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy())


def test_array_habits_on_data_still_work():
    p = mp.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert p.data.shape == (2, 2) and p.data.dtype == np.float32 and p.data.ndim == 2
    assert np.asarray(p.data) is p.numpy() and float(np.sum(np.asarray(p.data))) == 10.0
    p.data[...] = np.array([[0.0, 1.0], [2.0, 3.0]], dtype=np.float32)
    np.testing.assert_array_equal(p.numpy(), [[0.0, 1.0], [2.0, 3.0]])
    p.data -= 1.0
    np.testing.assert_array_equal(p.numpy(), [[-1.0, 0.0], [1.0, 2.0]])
    assert p.requires_grad and p.is_leaf


def test_data_setter_swaps_memory_like_torch():
    p, tp = _pair([0.0, 0.0])
    new = mp.arange(12, dtype=mp.float32).reshape(3, 4)
    p.data = new
    tp.data = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    assert p.shape == tuple(tp.shape) and p.requires_grad and p.is_leaf
    assert p.numpy() is new.numpy()
    np.testing.assert_array_equal(p.numpy(), tp.detach().numpy())
    p.data = p.data.astype(np.float64)  # the dtype may change too (Module.double's habit)
    assert p.dtype == np.float64


def test_data_setter_refuses_what_torch_refuses():
    p, tp = _pair([0.0, 0.0])
    with pytest.raises(TypeError, match="Tensor.data must be set to a Tensor.*from_numpy"):
        p.data = np.zeros(2)
    with pytest.raises(TypeError):
        tp.data = np.zeros(2)
    with pytest.raises(RuntimeError, match="float dtype"):
        p.data = mp.tensor([1, 2])
    with pytest.raises(RuntimeError, match="floating point"):
        tp.data = torch.tensor([1, 2])
    q = mp.tensor([1.0, 2.0])  # no gradient: an int tensor may replace it, as in torch
    q.data = mp.tensor([1, 2])
    assert q.dtype == np.int64


def test_integer_tensor_data_keeps_its_dtype():
    i, ti = mp.tensor([1, 2]), torch.tensor([1, 2])
    assert i.data.dtype == np.int64 and ti.data.dtype == torch.int64
    i.data.add_(3)
    assert i.tolist() == [4, 5]


def test_package_code_never_reads_data_as_an_array():
    # Inside minipool the array is ``_data`` (or ``numpy()``): ``.data`` makes a Tensor per read,
    # and code written when ``.data`` was the ndarray would silently get a Tensor instead.
    root = pathlib.Path(mp.__file__).parent
    attribute = re.compile(r"(?<![\w.])(?!minipool\b|mp\b|utils\b|torch\b)[A-Za-z_][\w\]\)\.]*\.data\b(?!\s+import)")
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = re.sub(r"\"[^\"]*\"|'[^']*'", "", line.split("#", 1)[0])  # not in messages
            if attribute.search(code) and "``" not in code and ">>>" not in code and "def data" not in code:
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []
