"""mp.reciprocal / Tensor.reciprocal / reciprocal_: values and gradients by hand, against
PyTorch, float64 finite differences; quiet at 0 as PyTorch."""
import warnings

import numpy as np
import pytest

import minipool as mp

torch = pytest.importorskip("torch")


def test_values_and_gradient_by_hand_and_against_torch():
    data = np.array([2.0, -0.5, 0.0, -0.0, np.inf, np.nan, 3.0], dtype=np.float32)
    x = mp.tensor(data, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1 / 0 is inf without a NumPy warning
        y = mp.reciprocal(x)
        y.sum().backward()
    expected = np.array([1 / v if v != 0 else np.copysign(np.inf, v) for v in data.tolist()], np.float32)
    np.testing.assert_array_equal(y.numpy(), expected)
    np.testing.assert_array_equal(x.grad.numpy(), -expected * expected)  # d(1/x) = -1/x^2
    t = torch.tensor(data, requires_grad=True)
    u = t.reciprocal()
    u.sum().backward()
    np.testing.assert_array_equal(y.numpy(), u.detach().numpy())
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    assert y.grad_fn.name() == t.reciprocal().grad_fn.name() == "ReciprocalBackward0"


def test_gradcheck_float64():
    x = mp.tensor([0.3, -1.7, 2.5], dtype=mp.float64, requires_grad=True)
    assert mp.gradcheck(mp.reciprocal, (x,))


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool", "uint8"])
def test_integers_give_the_default_float_and_refuse_in_place(dtype):
    data = np.array([1, 2, 4], dtype=dtype) if dtype != "bool" else np.array([True, False])
    ours, theirs = mp.tensor(data).reciprocal(), torch.from_numpy(data.copy()).reciprocal()
    assert ours.dtype == np.float32 and str(theirs.dtype) == "torch.float32"
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(RuntimeError):
        torch.from_numpy(data.copy()).reciprocal_()
    with pytest.raises(RuntimeError, match="reciprocal_: result type Float can't be cast"):
        mp.tensor(data).reciprocal_()


def test_in_place_on_a_float_tensor():
    x = mp.tensor([4.0, 0.5])
    assert x.reciprocal_() is x and x.tolist() == [0.25, 2.0]
