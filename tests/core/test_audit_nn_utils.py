"""nn.utils and nn.init names a PyTorch user reaches for that minipool lacked (found by an audit
against PyTorch 2.13): clip_grad_norm_(norm_type="inf"), get_total_norm,
clip_grads_with_norm_, init.eye_, init.dirac_ and init._calculate_fan_in_and_fan_out; each
compared with torch's."""
import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("norm_type", [2.0, "inf", float("inf"), 1, "3"])
def test_clip_grad_norm_and_its_two_halves_as_torch(norm_type):
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(shape) for shape in ((3, 4), (5,), (2, 2, 2))]
    totals, clipped = [], []
    for lib, T in ((mp.nn, mp), (torch.nn, torch)):
        params = [lib.Parameter(T.tensor(np.zeros_like(g))) for g in grads]
        for p, g in zip(params, grads):
            p.grad = T.tensor(g)
        totals.append(lib.utils.clip_grad_norm_(params, 0.5, norm_type=norm_type).item())
        clipped.append([p.grad.numpy().copy() for p in params])
        total = lib.utils.get_total_norm([T.tensor(g) for g in grads], norm_type)
        np.testing.assert_allclose(total.item(), totals[-1], rtol=1e-12)
        for p, g in zip(params, grads):
            p.grad = T.tensor(g)
        lib.utils.clip_grads_with_norm_(params, 0.5, total)
        for p, expected in zip(params, clipped[-1]):
            np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(totals[0], totals[1], rtol=1e-12)
    for mine, theirs in zip(*clipped):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12)


def test_a_norm_type_that_is_no_number_is_refused():
    w = mp.nn.Parameter(mp.ones(2))
    w.grad = mp.ones(2)
    with pytest.raises(ValueError, match="norm_type"):
        mp.nn.utils.clip_grad_norm_([w], 1.0, norm_type="fro")


@pytest.mark.parametrize("shape,groups", [((6, 4, 3, 3), 2), ((4, 6, 5), 1), ((2, 2, 3, 4, 5), 1),
                                          ((6, 2, 3, 3), 3), ((3, 5, 4, 4), 1)])
def test_dirac_as_torch(shape, groups):
    mine = mp.nn.init.dirac_(mp.nn.Parameter(mp.ones(*shape)), groups)
    theirs = torch.nn.init.dirac_(torch.ones(*shape), groups)
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    x = np.random.default_rng(0).standard_normal((1, shape[1]) + (7,) * (len(shape) - 2))
    if len(shape) == 4 and groups == 1 and shape[0] >= shape[1]:  # passes the channels through
        out = mp.nn.functional.conv2d(mp.tensor(x), mine.double(), padding=shape[2] // 2)
        np.testing.assert_allclose(out.numpy()[:, :shape[1]], x, rtol=1e-12)
    with pytest.raises(ValueError, match="groups"):
        mp.nn.init.dirac_(mp.ones(*shape), shape[0] + 1)


def test_eye_and_fan_in_as_torch():
    np.testing.assert_array_equal(mp.nn.init.eye_(mp.ones(3, 5)).numpy(),
                                  torch.nn.init.eye_(torch.ones(3, 5)).numpy())
    with pytest.raises(ValueError, match="2-d"):
        mp.nn.init.eye_(mp.ones(2, 2, 2))
    assert mp.nn.init._calculate_fan_in_and_fan_out(mp.zeros(6, 1, 5, 5)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(6, 1, 5, 5))
