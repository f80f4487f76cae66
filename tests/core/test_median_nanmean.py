"""median and nanmean: a loop reference, PyTorch parity (values, indices, gradients, NaN,
ties, integer input), float64 finite differences."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minipool as mp

torch = pytest.importorskip("torch")


def reference_median(row):
    """The lower median of a 1-d list by hand: NaN if any, else the ((n - 1) // 2)-th
    smallest."""
    values = list(row)
    if any(isinstance(v, float) and math.isnan(v) for v in values):
        return float("nan")
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def rows_of(array, axis):
    moved = np.moveaxis(array, axis, -1)
    return moved.reshape(-1, moved.shape[-1]), moved.shape[:-1]


values = st.sampled_from([0.0, 1.0, -1.0, 2.5, 2.5, -0.0, np.nan, np.inf, -np.inf, 7.0])


@settings(max_examples=80, deadline=None)
@given(shape=st.sampled_from([(5,), (4,), (3, 4), (2, 3, 5), (1, 6), (6, 1)]),
       data=st.data(), keepdim=st.booleans())
def test_median_dim_against_reference_and_torch(shape, data, keepdim):
    x = np.array(data.draw(st.lists(values, min_size=int(np.prod(shape)),
                                    max_size=int(np.prod(shape)))), np.float64).reshape(shape)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    got = mp.median(mp.tensor(x), dim, keepdim=keepdim)
    want = torch.median(torch.tensor(x), dim, keepdim=keepdim)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    rows, lead = rows_of(x, dim)
    expected = np.array([reference_median(r) for r in rows]).reshape(lead)
    values_ = got.values.numpy() if not keepdim else np.squeeze(got.values.numpy(), dim)
    np.testing.assert_array_equal(values_, expected)
    # the index points at an element with the median's value (torch does not fix which one
    # among ties), or at a NaN
    picked = np.take_along_axis(x, got.indices.numpy() if keepdim
                                else np.expand_dims(got.indices.numpy(), dim), dim)
    np.testing.assert_array_equal(np.squeeze(picked, dim), expected)
    assert got.indices.dtype == np.int64


@pytest.mark.parametrize("x", [[3.0, 1.0, 4.0, 2.0], [5.0], [2.0, np.nan, 1.0], [np.inf, -np.inf, 0.0],
                               [[1.0, 9.0], [4.0, 3.0]]])
def test_median_whole_tensor_as_torch(x):
    x = np.array(x, np.float32)
    np.testing.assert_array_equal(mp.median(mp.tensor(x)).numpy(), torch.median(torch.tensor(x)).numpy())
    assert mp.tensor(x).median().shape == ()


def test_median_of_integers_keeps_the_dtype():
    x = np.array([[4, 1, 3, 2], [7, 7, 0, 9]], np.int64)
    got, want = mp.median(mp.tensor(x), 1), torch.median(torch.tensor(x), 1)
    np.testing.assert_array_equal(got.values.numpy(), want.values.numpy())
    assert got.values.dtype == np.int64


def test_median_gradient_goes_to_the_index_as_torch():
    x = np.array([[3.0, 1.0, 2.0, 5.0], [0.5, 0.25, 4.0, 1.0]])
    mx, tx = mp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g = np.array([2.0, -3.0])
    mp.median(mx, 1).values.backward(mp.tensor(g))
    torch.median(tx, 1).values.backward(torch.tensor(g))
    np.testing.assert_array_equal(mx.grad.numpy(), tx.grad.numpy())
    mw, tw = mp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    mp.median(mw).backward()
    torch.median(tw).backward()
    np.testing.assert_array_equal(mw.grad.numpy(), tw.grad.numpy())


def test_median_bad_arguments_are_named():
    x = mp.tensor([[1.0, 2.0]])
    with pytest.raises(TypeError, match="median: dim must be one int"):
        mp.median(x, (0, 1))
    with pytest.raises(TypeError, match="keepdim needs a dim"):
        mp.median(x, keepdim=True)
    with pytest.raises(IndexError, match="median"):
        mp.median(mp.zeros(2, 0), 1)


@settings(max_examples=60, deadline=None)
@given(shape=st.sampled_from([(5,), (3, 4), (2, 3, 2)]), data=st.data(), keepdim=st.booleans())
def test_nanmean_against_torch(shape, data, keepdim):
    x = np.array(data.draw(st.lists(st.sampled_from([0.5, -1.0, 3.0, np.nan, 2.0]),
                                    min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                 np.float64).reshape(shape)
    dim = data.draw(st.sampled_from([None, 0, -1] + ([(0, 1)] if len(shape) > 1 else [])))
    mx, tx = mp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    if dim is None:
        got, want = mp.nanmean(mx), torch.nanmean(tx)
    else:
        got, want = mp.nanmean(mx, dim, keepdim=keepdim), torch.nanmean(tx, dim, keepdim=keepdim)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-13, equal_nan=True)
    g = np.ones(want.shape)
    got.backward(mp.tensor(g))
    want.backward(torch.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-13, equal_nan=True)


def test_nanmean_by_hand_and_integer_refusal():
    x = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]], np.float32)
    got = mp.tensor(x).nanmean(1).numpy()
    assert got[0] == 2.0 and np.isnan(got[1])
    with pytest.raises(RuntimeError, match="nanmean"):
        mp.nanmean(mp.tensor([1, 2, 3]))
    with pytest.raises(RuntimeError):
        torch.nanmean(torch.tensor([1, 2, 3]))
    np.testing.assert_allclose(mp.nanmean(mp.tensor([1, 2, 4]), dtype=mp.float64).numpy(), 7 / 3)


def test_nanmean_gradcheck_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    x[0, 1] = np.nan
    mask = ~np.isnan(x)

    def f(values):
        y = x.copy()
        y[mask] = values
        return float(mp.nanmean(mp.tensor(y), 1).numpy() @ np.arange(1.0, 4.0))

    t = mp.tensor(x, requires_grad=True)
    (mp.nanmean(t, 1) * mp.tensor(np.arange(1.0, 4.0))).sum().backward()
    base, eps = x[mask], 1e-6
    numeric = np.array([(f(base + eps * e) - f(base - eps * e)) / (2 * eps)
                        for e in np.eye(base.size)])
    np.testing.assert_allclose(t.grad.numpy()[mask], numeric, rtol=1e-7, atol=1e-9)
    assert t.grad.numpy()[0, 1] == 0
