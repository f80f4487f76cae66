"""Gradient unit tests for your own ops: copy this file into your project's tests/.

It is the pytest version of examples/gradient_unit_tests.py.  Replace ``Swish``
with your op; keep the three kinds of check:
  1. the forward against an independent formula,
  2. the backward against finite differences (minipool.gradcheck, in float64),
  3. a deliberately wrong backward is rejected (so the check itself can fail).
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool.testing import GradcheckError, assert_close


class Swish(mp.Function):
    """swish(x) = x * sigmoid(x)."""

    @staticmethod
    def forward(ctx, x):
        s = 1.0 / (1.0 + np.exp(-x))
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * (s + x * s * (1.0 - s))


class SwishWrongBackward(Swish):
    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * s  # misses the x * s'(x) term


def random_input(shape, dtype="float64", seed=0):
    data = np.random.default_rng(seed).normal(scale=2.0, size=shape)
    return mp.tensor(data, dtype=dtype, requires_grad=True)


def test_forward_matches_the_formula():
    x = random_input((3, 4))
    expected = x.numpy() / (1.0 + np.exp(-x.numpy()))
    assert_close(Swish.apply(x), expected, rtol=1e-12)


def test_forward_keeps_float32():
    x = random_input((5,), dtype="float32")
    assert Swish.apply(x).dtype == np.float32


@pytest.mark.parametrize("shape", [(1,), (7,), (2, 3), (2, 1, 4, 4)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backward_matches_finite_differences(shape, dtype):
    # gradcheck copies the inputs to float64 itself, so float32 tensors are fine too.
    assert mp.gradcheck(Swish.apply, [random_input(shape, dtype)], names=["x"])


def test_gradient_accumulates_when_the_op_is_used_twice():
    x = random_input((4,))
    (Swish.apply(x) + 3 * Swish.apply(x)).sum().backward()
    s = 1.0 / (1.0 + np.exp(-x.numpy()))
    assert_close(x.grad, 4 * (s + x.numpy() * s * (1 - s)), rtol=1e-10)


def test_wrong_backward_is_caught_with_a_useful_message():
    with pytest.raises(GradcheckError, match=r"gradient of x .*analytic .*numerical"):
        mp.gradcheck(SwishWrongBackward.apply, [random_input((2, 3))], names=["x"])


def test_op_inside_a_pooling_block():
    """Your op between built-in ops: gradients must flow through all of them."""
    x = mp.tensor(np.random.default_rng(1).permutation(36).reshape(1, 1, 6, 6) / 9.0,
                  requires_grad=True)  # distinct values: no max-pooling ties

    def block(t):
        pooled = F.max_pool2d(Swish.apply(t), kernel_size=2)
        return F.interpolate(pooled, scale_factor=2, mode="bilinear", align_corners=False)

    assert mp.gradcheck(block, [x], names=["x"])
