"""backward adds into an existing ``.grad`` in place, as PyTorch's AccumulateGrad does: code
that holds ``g = p.grad`` (a gradient-accumulation loop, ``p.grad.zero_()`` instead of
``zero_grad()``, a logger) sees the new values.  minipool replaced ``.grad`` with a new
tensor, so the held one kept stale (e.g. zeroed) values."""
import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")


def _run(lib):
    x = lib.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    held = x.grad
    first = held.numpy().copy()
    held.zero_()  # the PyTorch 1.x way to clear a gradient
    (x * 3).sum().backward()
    after_zero = (held is x.grad, held.numpy().copy())
    mine = lib.tensor([5.0, 5.0])
    x.grad = mine
    (x * 2).sum().backward()
    y = lib.tensor([1.0, 2.0], requires_grad=True)
    z = y * 2
    z.retain_grad()
    z.sum().backward(retain_graph=True)
    kept = z.grad
    z.sum().backward()
    return first, after_zero, (x.grad is mine, mine.numpy().copy()), (kept is z.grad, kept.numpy().copy())


def test_held_gradients_see_accumulation_as_in_torch():
    mp_result, torch_result = _run(mp), _run(torch)
    assert mp_result[1][0] and mp_result[2][0]  # the same objects (a retained non-leaf grad: new)
    for mine, theirs in zip(mp_result, torch_result):
        if isinstance(mine, tuple):
            assert mine[0] == theirs[0]
            mine, theirs = mine[1], theirs[1]
        np.testing.assert_array_equal(mine, theirs)


def test_backward_inputs_accumulate_in_place():
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    (x * 2).sum().backward(inputs=[x])
    held = x.grad
    (x * 3).sum().backward(inputs=[x])
    assert held is x.grad and held.tolist() == [5.0, 5.0]


def test_accumulation_keeps_the_parameter_dtype_and_refuses_nothing_new():
    w = mp.tensor([1.0, 2.0], dtype=mp.float64, requires_grad=True)
    (w * mp.tensor([1.0, 1.0])).sum().backward()  # float32 factor: the gradient is float64
    held = w.grad
    (w * 2).sum().backward()
    assert held is w.grad and held.dtype == mp.float64 and held.tolist() == [3.0, 3.0]
