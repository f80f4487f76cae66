"""Tensor construction, properties, dtypes and conversions."""
import numpy as np
import pytest

import minipool as mp


def test_python_floats_default_to_float32_and_arrays_keep_dtype():
    assert mp.tensor([1.0, 2.0]).dtype == np.float32
    assert mp.tensor(np.zeros(3)).dtype == np.float64
    assert mp.tensor([1, 2]).dtype == np.int64
    assert mp.tensor([1, 2], dtype="float64").dtype == np.float64


def test_tensor_copies_but_Tensor_shares():
    a = np.ones(3)
    t = mp.tensor(a)
    a[0] = 5
    assert t.numpy()[0] == 1
    shared = mp.Tensor(a)
    assert shared.numpy() is a


def test_properties_and_conversions():
    t = mp.arange(6.0).reshape(2, 3)
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float32 and t.numel() == 6
    assert t.T.shape == (3, 2)
    np.testing.assert_array_equal(np.asarray(t), np.arange(6.0).reshape(2, 3))
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert mp.tensor([3.5]).item() == 3.5
    assert len(t) == 2
    with pytest.raises(ValueError, match="one element"):
        t.item()


def test_helpers_shapes_and_dtypes():
    assert mp.zeros(2, 3).shape == (2, 3)
    assert mp.ones((4,)).numpy().sum() == 4
    assert mp.randn(3, 4, generator=np.random.default_rng(0)).dtype == np.float32
    g1 = mp.randn(5, generator=np.random.default_rng(1)).numpy()
    g2 = mp.randn(5, generator=np.random.default_rng(1)).numpy()
    np.testing.assert_array_equal(g1, g2)
    assert mp.arange(5).dtype == np.int64
    with pytest.raises(ValueError, match="shape"):
        mp.zeros(-1)


def test_requires_grad_only_for_floats():
    with pytest.raises(TypeError, match="float32/float64"):
        mp.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="Python objects"):
        mp.tensor([object()])


def test_detach_and_leaf_flags():
    x = mp.tensor([1.0], requires_grad=True)
    y = x * 2
    assert x.is_leaf and not y.is_leaf and y.requires_grad
    d = y.detach()
    assert d.is_leaf and not d.requires_grad
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad = False


def test_repr_mentions_grad_fn_and_dtype():
    x = mp.tensor([1.0], dtype="float64", requires_grad=True)
    assert "float64" in repr(x) and "requires_grad=True" in repr(x)
    assert "grad_fn=<MulBackward0>" in repr(x * x)


def test_comparisons_return_boolean_tensors_without_grad():
    x = mp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == bool and not m.requires_grad
    np.testing.assert_array_equal(m.numpy(), [False, True, True])


def test_float32_stays_float32_with_python_scalars():
    x = mp.tensor([1.0, 2.0])
    assert (x * 2.5).dtype == np.float32
    assert (1 / x).dtype == np.float32
    assert (x + mp.tensor([1.0], dtype="float64")).dtype == np.float64


def test_cast_is_differentiable():
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * 3
    y.sum().backward()
    assert y.dtype == np.float64 and x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3, 3])


@pytest.mark.parametrize("data", [["a", "b"], np.array([1 + 2j])])
def test_unsupported_dtypes_are_refused(data):
    with pytest.raises(TypeError, match="unsupported dtype"):
        mp.tensor(data)
