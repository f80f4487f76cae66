"""The engine: accumulation, broadcasting, graph lifetime, no_grad, deep chains, Function."""
import gc
import weakref

import numpy as np
import pytest

import minipool as mp


def test_reused_subexpression_accumulates_both_paths():
    x = mp.tensor(3.0, dtype="float64", requires_grad=True)
    y = x * x          # used twice below
    z = y * y + y      # z = x^4 + x^2, dz/dx = 4x^3 + 2x
    z.backward()
    assert x.grad.item() == pytest.approx(4 * 27 + 6)


def test_gradients_accumulate_across_backward_calls_until_cleared():
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6, 6])
    x.zero_grad()
    assert x.grad is None


@pytest.mark.parametrize("sa,sb", [((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((5, 1, 1), (1, 2, 3)), ((), (2, 2))])
def test_broadcast_gradients_are_unbroadcast(sa, sb):
    rng = np.random.default_rng(0)
    a = mp.tensor(rng.standard_normal(sa), requires_grad=True)
    b = mp.tensor(rng.standard_normal(sb), requires_grad=True)
    for fn in (lambda p, q: p + q, lambda p, q: p - q, lambda p, q: p * q, lambda p, q: p / (q * q + 1)):
        assert mp.gradcheck(fn, [a, b])
    (a * b).sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    # Independent check: d/da sum(a*b) = sum of b over the broadcast axes.
    full = np.broadcast_to(b.numpy(), np.broadcast_shapes(sa, sb))
    expected = full.sum(axis=tuple(range(full.ndim - len(sa)))) if len(sa) < full.ndim else full
    for axis, n in enumerate(sa):
        if n == 1:
            expected = expected.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(a.grad.numpy(), expected.reshape(sa))


def test_deep_chain_does_not_hit_recursion_limit():
    x = mp.tensor([1.0, -1.0], dtype="float64", requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_backward_twice_through_freed_graph_raises():
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = mp.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)


def test_graph_is_freed_after_backward():
    x = mp.tensor(np.ones(4), requires_grad=True)
    y = x * 2
    z = (y.tanh() * y).sum()
    ref = weakref.ref(y._ctx)
    saved = weakref.ref(z._ctx)
    del y
    z.backward()
    gc.collect()
    assert ref() is None or ref().saved_tensors == ()
    assert saved()._freed


def test_non_scalar_backward_needs_grad_and_accepts_array_or_tensor():
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    with pytest.raises(RuntimeError, match="non-scalar"):
        y.backward()
    y.backward(np.array([1.0, 0.5]), retain_graph=True)
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
    x.grad = None
    y.backward(mp.tensor([0.0, 1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 4.0])
    with pytest.raises(ValueError, match="shape"):
        (x * x).backward(np.ones(3))


def test_backward_on_tensor_without_grad_is_a_clear_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mp.tensor([1.0]).sum().backward()


def test_no_grad_context_and_decorator_record_nothing():
    x = mp.tensor([1.0], requires_grad=True)
    with mp.no_grad():
        y = x * 2
        assert not mp.is_grad_enabled()
    assert mp.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None

    @mp.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    assert (x * 3).requires_grad


def test_no_grad_restores_mode_after_exception():
    with pytest.raises(ZeroDivisionError):
        with mp.no_grad():
            1 / 0
    assert mp.is_grad_enabled()


def test_custom_function_subclass():
    class Cube(mp.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 3 * x * x * grad

    x = mp.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    assert mp.gradcheck(lambda t: Cube.apply(t), [x])
    Cube.apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])


def test_function_with_constant_extra_outputs():
    class ArgmaxValue(mp.Function):
        @staticmethod
        def forward(ctx, x):
            i = np.argmax(x)
            ctx.index, ctx.shape = i, x.shape
            return x.max(keepdims=True), np.array([i])

        @staticmethod
        def backward(ctx, grad):
            g = np.zeros(ctx.shape, grad.dtype)
            g[ctx.index] = grad[0]
            return g

    x = mp.tensor([1.0, 5.0, 2.0], requires_grad=True)
    value, index = ArgmaxValue.apply(x)
    assert index.numpy()[0] == 1 and not index.requires_grad
    value.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 0])


def test_wrong_number_of_gradients_from_custom_backward_is_reported():
    class Bad(mp.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return (grad,)

    a = mp.tensor([1.0], requires_grad=True)
    b = mp.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Bad.backward returned 1 gradients for 2 inputs"):
        Bad.apply(a, b).sum().backward()


def test_grad_of_only_some_inputs():
    a = mp.tensor([2.0], requires_grad=True)
    b = mp.tensor([3.0])
    (a * b).sum().backward()
    assert a.grad.item() == 3.0 and b.grad is None
