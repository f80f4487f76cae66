"""In-place Tensor methods a PyTorch program calls that minipool lacked (an AttributeError
naming nothing): ``masked_fill_`` (attention and padding masks), ``fmod_``, ``remainder_``,
``log1p_``, ``expm1_``, ``nan_to_num_``.  Each is its out-of-place op written over the
tensor, recorded in the graph on a result that requires grad, as in PyTorch."""
import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")

CASES = [
    ("masked_fill_ number", lambda L, y: y.masked_fill_(y < 0, 0.5)),
    ("masked_fill_ broadcast mask", lambda L, y: y.masked_fill_(L.tensor([True, False, False, True]), -1.0)),
    ("masked_fill_ 0-d tensor value", lambda L, y: y.masked_fill_(y > 1, L.tensor(-3.0))),
    ("fmod_", lambda L, y: y.fmod_(1.5)),
    ("remainder_", lambda L, y: y.remainder_(-1.5)),
    ("log1p_", lambda L, y: (y * y).log1p_()),
    ("expm1_", lambda L, y: y.expm1_()),
    ("nan_to_num_", lambda L, y: (y / L.tensor([0.0, 1.0, 0.0, 1.0])).nan_to_num_(7.0, 100.0, -100.0)),
]


@pytest.mark.parametrize("name,call", CASES)
def test_inplace_methods_match_torch(name, call):
    x = np.array([[1.25, -2.0, 3.5, -0.75], [0.0, 2.5, -1.0, 4.0]])
    weight = np.arange(1.0, 9.0).reshape(2, 4)
    results = []
    for lib in (mp, torch):
        leaf = lib.tensor(x, requires_grad=True)
        y = leaf * 1.0
        out = call(lib, y)
        (out * lib.tensor(weight)).sum().backward()
        results.append((out.detach().numpy(), leaf.grad.numpy()))
    for mine, theirs in zip(*results):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


def test_masked_fill_inplace_on_a_plain_tensor_and_a_leaf():
    z = mp.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert z.masked_fill_(mp.tensor([True, False]), -1.0) is z
    assert z.tolist() == [[-1.0, 2.0], [-1.0, 4.0]]
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        mp.ones(2, requires_grad=True).masked_fill_(mp.tensor([True, False]), 0.0)
