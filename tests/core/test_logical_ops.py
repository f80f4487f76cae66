"""& | ^ ~ and the logical_* / bitwise_* functions against PyTorch and NumPy's truth tables."""
import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")

BOOLS = np.array([True, False, True, False])
OTHER = np.array([True, True, False, False])
INTS = np.array([0, 5, -3, 12], np.int64)
INTS2 = np.array([7, 1, -1, 4], np.int64)


@pytest.mark.parametrize("a, b", [(BOOLS, OTHER), (INTS, INTS2)])
@pytest.mark.parametrize("op", ["and", "or", "xor"])
def test_bitwise_ops_as_torch(a, b, op):
    symbol = {"and": lambda x, y: x & y, "or": lambda x, y: x | y, "xor": lambda x, y: x ^ y}[op]
    got = symbol(mp.tensor(a), mp.tensor(b))
    want = symbol(torch.tensor(a), torch.tensor(b))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert got.dtype == want.numpy().dtype
    fn = getattr(mp, f"bitwise_{op}")
    np.testing.assert_array_equal(fn(mp.tensor(a), mp.tensor(b)).numpy(), want.numpy())
    # a Python scalar on either side
    np.testing.assert_array_equal(symbol(mp.tensor(a), a[0].item()).numpy(),
                                  symbol(torch.tensor(a), a[0].item()).numpy())
    np.testing.assert_array_equal(symbol(a[1].item(), mp.tensor(b)).numpy(),
                                  symbol(a[1].item(), torch.tensor(b)).numpy())


@pytest.mark.parametrize("a", [BOOLS, INTS])
def test_invert_as_torch(a):
    np.testing.assert_array_equal((~mp.tensor(a)).numpy(), (~torch.tensor(a)).numpy())


def test_masks_from_comparisons_combine():
    x = np.array([-1.0, 0.5, 2.0, np.nan], np.float32)
    got = (mp.tensor(x) > 0) & (mp.tensor(x) < 1) | ~(mp.tensor(x) == mp.tensor(x))
    want = (torch.tensor(x) > 0) & (torch.tensor(x) < 1) | ~(torch.tensor(x) == torch.tensor(x))
    np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("op", ["and", "or", "xor"])
def test_logical_ops_as_torch(op):
    a = np.array([0.0, -0.0, 2.0, np.nan, np.inf, 0.0], np.float32)
    b = np.array([1, 0, 0, 1, 1, 0], np.int64)
    got = getattr(mp, f"logical_{op}")(mp.tensor(a), mp.tensor(b))
    want = getattr(torch, f"logical_{op}")(torch.tensor(a), torch.tensor(b))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert got.dtype == np.bool_
    # NumPy's truth table, written out: nonzero (NaN included) is true
    truth_a, truth_b = [v != 0 or v != v for v in a], [v != 0 for v in b]
    table = {"and": lambda p, q: p and q, "or": lambda p, q: p or q, "xor": lambda p, q: p != q}[op]
    assert got.tolist() == [table(p, q) for p, q in zip(truth_a, truth_b)]


def test_logical_not_as_torch():
    a = np.array([0.0, 3.0, np.nan], np.float64)
    np.testing.assert_array_equal(mp.logical_not(mp.tensor(a)).numpy(),
                                  torch.logical_not(torch.tensor(a)).numpy())
    np.testing.assert_array_equal(mp.tensor(a).logical_not().numpy(),
                                  torch.tensor(a).logical_not().numpy())


def test_float_bitwise_is_refused_by_name_as_torch():
    x = mp.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="bitwise_and: needs bool or integer tensors"):
        x & x
    with pytest.raises(TypeError, match="bitwise_not"):
        ~x
    with pytest.raises(RuntimeError):
        torch.tensor([1.0]) & torch.tensor([1.0])


def test_shapes_that_do_not_broadcast_are_named():
    with pytest.raises(ValueError, match="bitwise_or"):
        mp.tensor([True, False]) | mp.tensor([True, False, True])
