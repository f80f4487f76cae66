"""Two tensor habits a PyTorch user program met:

* ``torch.div(a, b, rounding_mode="floor"|"trunc")`` (index arithmetic, bucketing): minipool's
  ``div`` took no ``rounding_mode`` (a TypeError naming no alternative; ``div_`` refused it).
* ``x.clamp(min=lo, max=hi)`` with tensor bounds that require grad (learned clipping ranges):
  PyTorch sends the bounds their gradient; minipool returned None for them.
"""
import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")

INTS = np.array([-7, -6, -1, 0, 1, 5, 7, 9])
FLOATS = np.array([-7.5, -1.0, -0.3, 0.0, 1.0, 0.7, 5.25, 1.0])


@pytest.mark.parametrize("mode", ["trunc", "floor"])
@pytest.mark.parametrize("a,b", [(INTS, 2), (INTS, -3), (INTS, (INTS[::-1] + 10 * (INTS[::-1] == 0)).copy()),
                                 (FLOATS, 0.1), (FLOATS, -0.3), (FLOATS, FLOATS[::-1].copy()),
                                 (FLOATS.astype(np.float32), 3), (INTS, 2.5), (FLOATS, 0.0)])
def test_div_rounding_mode_matches_torch(mode, a, b):
    theirs = torch.div(torch.tensor(a), torch.tensor(b) if isinstance(b, np.ndarray) else b,
                       rounding_mode=mode)
    mine = mp.div(mp.tensor(a), mp.tensor(b) if isinstance(b, np.ndarray) else b, rounding_mode=mode)
    assert mine.dtype == np.dtype(str(theirs.dtype).replace("torch.", ""))
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    np.testing.assert_array_equal(mp.tensor(a).div(b, rounding_mode=mode).numpy(), theirs.numpy())


def test_rounded_div_has_zero_gradient_and_works_in_place():
    x = mp.tensor([3.5, -2.5], requires_grad=True)
    y = mp.tensor([2.0, 2.0], requires_grad=True)
    (mp.div(x, y, rounding_mode="floor") * 3).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0] and y.grad.tolist() == [0.0, 0.0]  # as torch
    t = mp.tensor([-7, 7])
    assert t.div_(2, rounding_mode="trunc") is t and t.tolist() == [-3, 3] and t.dtype == mp.int64
    with pytest.raises(ValueError, match="rounding_mode must be None, 'trunc' or 'floor'"):
        mp.div(t, 2, rounding_mode="round")


@pytest.mark.parametrize("bounds", [{"min": "lo"}, {"max": "hi"}, {"min": "lo", "max": "hi"},
                                    {"min": "hi", "max": "lo"}])  # min > max somewhere: max wins
def test_clamp_tensor_bounds_get_torch_gradients(bounds):
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((3, 4)), "lo": rng.standard_normal(4) - 0.5,
              "hi": rng.standard_normal((3, 1)) + 0.3}
    weight = np.arange(12.0).reshape(3, 4)
    results = []
    for lib in (mp, torch):
        ts = {k: lib.tensor(v.copy(), requires_grad=True) for k, v in arrays.items()}
        out = ts["x"].clamp(**{k: ts[v] for k, v in bounds.items()})
        (out * lib.tensor(weight)).sum().backward()
        results.append([out.detach().numpy()] + [ts[k].grad for k in ("x", "lo", "hi")])
    for mine, theirs in zip(*results):
        if theirs is None:
            assert mine is None
        else:
            np.testing.assert_array_equal(np.asarray(mine.numpy() if hasattr(mine, "numpy") else mine),
                                          theirs.numpy() if hasattr(theirs, "numpy") else theirs)
