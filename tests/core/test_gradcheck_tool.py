"""minipool.gradcheck and minipool.testing catch wrong gradients with a useful message."""
import numpy as np
import pytest

import minipool as mp
from minipool.testing import GradcheckError, assert_close, assert_grad_close


class WrongSquare(mp.Function):
    """Forward x^2, backward deliberately off by a factor at one element."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        g = 2 * x * grad
        g.reshape(-1)[-1] *= 1.5
        return g


def test_gradcheck_passes_correct_ops_and_returns_true():
    x = mp.tensor([[0.3, -1.2], [2.0, 0.7]], dtype="float64", requires_grad=True)
    assert mp.gradcheck(lambda t: (t.tanh() @ t).exp(), [x]) is True


def test_gradcheck_names_input_worst_element_and_both_values():
    x = mp.tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float64", requires_grad=True)
    y = mp.tensor([1.0, 1.0], dtype="float64", requires_grad=True)
    with pytest.raises(GradcheckError) as err:
        mp.gradcheck(lambda a, b: WrongSquare.apply(a) * b, [x, y])
    msg = str(err.value)
    assert "input 0" in msg and "(1, 1)" in msg and "analytic" in msg and "numerical" in msg
    assert "1 of 4 elements" in msg


def test_gradcheck_checks_only_inputs_requiring_grad_and_casts_to_float64():
    x = mp.tensor([1.0, 2.0], requires_grad=True)  # float32 in, checked in float64
    c = mp.tensor([5.0, 6.0])
    assert mp.gradcheck(lambda a, b: a * b, [x, c])
    with pytest.raises(ValueError, match="no input has requires_grad"):
        mp.gradcheck(lambda a: a * 2, [c])


def test_gradcheck_detects_a_cut_graph():
    x = mp.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    with pytest.raises(GradcheckError, match="does not require grad"):
        mp.gradcheck(lambda a: a.detach() * 2, [x])


def test_assert_grad_close_is_an_assertion_for_pytest():
    x = mp.tensor([1.0, 3.0], dtype="float64", requires_grad=True)
    assert_grad_close(lambda a: a.sqrt(), [x])
    with pytest.raises(AssertionError):
        assert_grad_close(lambda a: WrongSquare.apply(a), [x])


def test_assert_close_handles_nan_and_inf():
    assert_close(np.array([np.nan, np.inf, 1.0]), np.array([np.nan, np.inf, 1.0]))
    with pytest.raises(AssertionError, match="mismatch"):
        assert_close(np.array([np.inf]), np.array([-np.inf]))
    with pytest.raises(AssertionError, match="shapes differ"):
        assert_close(np.ones(2), np.ones(3))
