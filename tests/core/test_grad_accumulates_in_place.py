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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_large_gradient_accumulates_in_place_with_numpys_bits(dtype, threads, monkeypatch):
    """Past the parallel threshold the add runs on minipool's threads
    (``activation.add_into``): still in place, each element numpy's one rounding,
    inf and NaN included, for any thread count."""
    from minipool._kernels import activation
    from tests.helpers import with_threads
    calls = []
    kernel = activation.add_into
    monkeypatch.setattr(activation, "add_into",
                        lambda *args: (calls.append(args[2]), kernel(*args))[1])
    rng = np.random.default_rng(3)
    n = 300_001  # 37 blocks of 8,192 and a partial one
    base = rng.standard_normal(n).astype(dtype)
    base[:4] = [np.inf, -np.inf, np.nan, 1e300 if dtype == np.float64 else 3e38]
    step = rng.standard_normal(n).astype(dtype)
    step[4:8] = [np.inf, np.nan, -0.0, 3e38]

    def run():
        x = mp.tensor(np.zeros(n, dtype), requires_grad=True)
        (x * mp.tensor(base)).sum().backward()
        held = x.grad
        (x * mp.tensor(step)).sum().backward()
        return held is x.grad, held.numpy().copy()

    same_object, got = with_threads(threads, run)
    want = base.copy()
    with np.errstate(all="ignore"):
        np.add(want, step, out=want)
    assert same_object
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert calls == ([2] if threads == 2 else [])  # the kernel ran, on 2 threads


def test_a_large_strided_or_mixed_dtype_gradient_takes_numpys_add():
    """A non-contiguous ``.grad`` (set by the user) or a float32 gradient into a float64
    ``.grad`` still accumulates in place, through NumPy."""
    n = 200_000
    x = mp.tensor(np.zeros(n, np.float32), requires_grad=True)
    strided = mp.tensor(np.ones(2 * n, np.float32)[::2])
    x.grad = strided
    (x * 2).sum().backward()
    assert x.grad is strided and set(np.unique(strided.numpy())) == {3.0}
    w = mp.tensor(np.zeros(n), dtype=mp.float64, requires_grad=True)
    (w * 2).sum().backward()
    held = w.grad
    (w * mp.tensor(np.full(n, 0.5, np.float32))).sum().backward()
    assert held is w.grad and held.dtype == mp.float64 and set(np.unique(held.numpy())) == {2.5}
