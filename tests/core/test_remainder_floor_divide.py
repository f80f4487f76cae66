"""``%`` / ``//`` / fmod (torch.remainder / torch.floor_divide / torch.fmod) against torch and
Python's own rules (``%`` and ``math.fmod``)."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp


@pytest.mark.parametrize("a, b", [
    ([5, -5, 7, -7, 0], [3, 3, -2, -2, 4]), ([5.5, -5.5, 0.0, -0.0, 7.25], [2.0, 2.0, -1.5, 3.0, -0.5]),
    ([5, -5, 9], 2), ([1.5, -2.5], 0.75), ([5, -3], 2.5), ([1.0, -1.0, 0.0], [0.0, 0.0, 0.0]),
    ([np.inf, np.nan, 3.0], [2.0, 2.0, np.inf]),
])
def test_remainder_and_floor_divide_match_torch_and_python(a, b):
    for op, py in (("__mod__", lambda u, v: u % v), ("__floordiv__", lambda u, v: u // v)):
        ta = torch.tensor(a)
        tb = torch.tensor(b) if isinstance(b, list) else b
        ma = mp.tensor(a)
        mb = mp.tensor(b) if isinstance(b, list) else b
        theirs, ours = getattr(ta, op)(tb), getattr(ma, op)(mb)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), op
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
        if all(isinstance(v, int) for v in a) and isinstance(b, int):  # Python's rule, element by element
            assert ours.tolist() == [py(v, b) for v in a]


def test_reflected_forms_and_functions():
    x = mp.tensor([3, 4])
    assert (7 % x).tolist() == (7 % torch.tensor([3, 4])).tolist() == [1, 3]
    assert (7 // x).tolist() == [2, 1] and mp.remainder(x, 3).tolist() == [0, 1]
    assert mp.floor_divide(x, 3).tolist() == x.floor_divide(3).tolist() == [1, 1]


def test_remainder_gradients_match_torch():
    a, b = np.array([5.5, -2.5, 7.0]), np.array([2.0, 2.0, -3.0])
    am, bm = mp.tensor(a, requires_grad=True), mp.tensor(b, requires_grad=True)
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (am % bm).sum().backward()
    (at % bt).sum().backward()
    np.testing.assert_array_equal(am.grad.numpy(), at.grad.numpy())
    np.testing.assert_array_equal(bm.grad.numpy(), bt.grad.numpy())
    assert mp.gradcheck(lambda u, v: u % v, (mp.tensor([0.3, 1.7], dtype=mp.float64, requires_grad=True),
                                              mp.tensor([0.7, 0.6], dtype=mp.float64, requires_grad=True)))


def test_integer_division_by_zero_raises_like_torch():
    with pytest.raises(RuntimeError):
        torch.tensor([1]) % 0
    with pytest.raises(ZeroDivisionError, match="remainder: integer division by zero"):
        mp.tensor([1]) % 0
    with pytest.raises(ZeroDivisionError, match="floor_divide: integer division by zero"):
        mp.tensor([1, 2]) // mp.tensor([1, 0])


def test_floor_divide_of_a_tensor_that_requires_grad_is_refused():
    x = mp.tensor([1.5], requires_grad=True)
    with pytest.raises(RuntimeError, match="floor_divide: the derivative is not implemented"):
        x // 2
    with mp.no_grad():
        assert (x // 2).tolist() == [0.0]
    assert (x.detach() // 2).tolist() == [0.0]


FMOD_CASES = [
    ([5, -5, 7, -7, 0], [3, 3, -2, -2, 4]), ([5.5, -5.5, 0.0, -0.0, 7.25], [2.0, 2.0, -1.5, 3.0, -0.5]),
    ([5, -5, 9], 2), ([1.5, -2.5], 0.75), ([5, -3], 2.5), ([1.0, -1.0, 0.0], [0.0, 0.0, 0.0]),
    ([np.inf, np.nan, 3.0, -3.0], [2.0, 2.0, np.inf, -np.inf]),
]


@pytest.mark.parametrize("a, b", FMOD_CASES)
def test_fmod_matches_torch_and_c_rule(a, b):
    ma, ta = mp.tensor(a), torch.tensor(a)
    mb, tb = (mp.tensor(b), torch.tensor(b)) if isinstance(b, list) else (b, b)
    ours, theirs = mp.fmod(ma, mb), torch.fmod(ta, tb)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ma.fmod(mb).numpy(), ours.numpy())
    divisors = b if isinstance(b, list) else [b] * len(a)
    if all(isinstance(v, float) for v in a + divisors) and 0.0 not in divisors:
        want = [math.fmod(u, v) if math.isfinite(u) else math.nan for u, v in zip(a, divisors)]
        np.testing.assert_array_equal(ours.numpy(), np.array(want, dtype=ours.numpy().dtype))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e3, 1e3).filter(lambda v: v != 0)),
                min_size=1, max_size=8))
def test_fmod_keeps_the_sign_of_the_dividend_and_matches_c(pairs):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    got = mp.fmod(mp.tensor(a, dtype=mp.float64), mp.tensor(b, dtype=mp.float64)).numpy()
    for value, u, v in zip(got, a, b):
        assert value == math.fmod(u, v)
        assert value == 0 or math.copysign(1, value) == math.copysign(1, u)


def test_fmod_gradients_match_torch():
    a, b = np.array([5.5, -2.5, 7.0]), np.array([2.0, 2.0, -3.0])
    am, bm = mp.tensor(a, requires_grad=True), mp.tensor(b, requires_grad=True)
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (mp.fmod(am, bm) * mp.tensor([1.0, 2.0, 3.0], dtype=mp.float64)).sum().backward()
    (torch.fmod(at, bt) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    np.testing.assert_array_equal(am.grad.numpy(), at.grad.numpy())
    np.testing.assert_array_equal(bm.grad.numpy(), bt.grad.numpy())  # -trunc(a / b), not -floor
    assert bm.grad.tolist() == [-2.0, 2.0, 6.0]
    assert mp.gradcheck(mp.fmod, (mp.tensor([0.3, -1.7], dtype=mp.float64, requires_grad=True),
                                  mp.tensor([0.7, 0.6], dtype=mp.float64, requires_grad=True)))


def test_fmod_refuses_integer_zero_and_bool_like_torch():
    with pytest.raises(RuntimeError):
        torch.fmod(torch.tensor([1]), 0)
    with pytest.raises(ZeroDivisionError, match="fmod: integer division by zero"):
        mp.fmod(mp.tensor([1]), 0)
    with pytest.raises(NotImplementedError, match="fmod: not implemented for bool"):
        mp.fmod(mp.tensor([True]), mp.tensor([True]))
