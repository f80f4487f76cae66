"""torch.autograd's user API: autograd.grad (leaf and intermediate inputs, several outputs,
allow_unused, materialize_grads), tensor hooks and retain_grad, each against PyTorch."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F

torch = pytest.importorskip("torch")


def graph(lib, x0, w0):
    """A small graph: leaves x, w; intermediates h, y; output z."""
    x = lib.tensor(x0, requires_grad=True)
    w = lib.tensor(w0, requires_grad=True)
    h = x * w
    y = (h.tanh() if lib is torch else h.tanh()) + x
    z = (y * y).sum() + h.sum()
    return x, w, h, y, z


def arrays(seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(5), rng.standard_normal(5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), pick=st.sets(st.sampled_from("xwhy"), min_size=1))
def test_grad_matches_torch_for_leaf_and_intermediate_inputs(seed, pick):
    x0, w0 = arrays(seed)
    ours = dict(zip("xwhyz", graph(mp, x0, w0)))
    theirs = dict(zip("xwhyz", graph(torch, x0, w0)))
    names = sorted(pick)
    got = mp.autograd.grad(ours["z"], [ours[n] for n in names])
    want = torch.autograd.grad(theirs["z"], [theirs[n] for n in names])
    assert isinstance(got, tuple) and len(got) == len(names)
    for g, t in zip(got, want):
        np.testing.assert_allclose(g.numpy(), t.numpy(), rtol=1e-12, atol=1e-12)
    assert ours["x"].grad is None and ours["w"].grad is None  # no .grad touched, as torch


def test_grad_of_several_outputs_with_grad_outputs_sums_them():
    x0, w0 = arrays(1)
    x, w, h, y, z = graph(mp, x0, w0)
    tx, tw, th, ty, tz = graph(torch, x0, w0)
    g = np.linspace(-1, 1, 5)
    got = mp.autograd.grad([y, z], [x, w], grad_outputs=[mp.tensor(g), None])
    want = torch.autograd.grad([ty, tz], [tx, tw], grad_outputs=[torch.tensor(g), None])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_unused_inputs_as_torch():
    x = mp.tensor([1.0], requires_grad=True)
    u = mp.tensor([2.0], requires_grad=True)
    z = (x * 3).sum()
    with pytest.raises(RuntimeError, match="not have been used in the graph"):
        mp.autograd.grad(z, [x, u], retain_graph=True)
    gx, gu = mp.autograd.grad(z, [x, u], allow_unused=True, retain_graph=True)
    assert gx.tolist() == [3.0] and gu is None
    gx, gu = mp.autograd.grad(z, [x, u], materialize_grads=True)
    assert gu.tolist() == [0.0]


@pytest.mark.parametrize("call, err, text", [
    (lambda x, z: mp.autograd.grad(z, x, create_graph=True), NotImplementedError, "first-order"),
    (lambda x, z: mp.autograd.grad(z, mp.tensor([1.0])), RuntimeError, "does not require grad"),
    (lambda x, z: mp.autograd.grad(z, [np.ones(1)]), TypeError, "inputs must be Tensors"),
    (lambda x, z: mp.autograd.grad([z, z], x, grad_outputs=[None]), ValueError, "1 entries for 2"),
])
def test_grad_refuses_what_it_cannot_do(call, err, text):
    x = mp.tensor([1.0], requires_grad=True)
    with pytest.raises(err, match=text):
        call(x, (x * x).sum())


def test_graph_is_freed_after_grad_unless_retained():
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    z = (x * x).sum()
    mp.autograd.grad(z, x, retain_graph=True)
    mp.autograd.grad(z, x)
    with pytest.raises(RuntimeError, match="second time"):
        mp.autograd.grad(z, x)


def run_hooks(lib):
    hook = lambda t, f: t.register_hook(f)  # noqa: E731
    retain = lambda t: t.retain_grad()  # noqa: E731
    x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    h = x * 2
    seen = []
    hook(h, lambda g: seen.append(g.tolist()))        # observes, returns None
    hook(h, lambda g: g * 10)                          # replaces the gradient
    handle = hook(h, lambda g: g * 1000)
    handle.remove()
    hook(x, lambda g: g + 1)                           # leaf hook, before .grad
    y = h.relu() if lib is mp else torch.relu(h)
    retain(y)
    (y * y).sum().backward(retain_graph=True)
    first = (x.grad.tolist(), y.grad.tolist(), list(seen))
    (y * y).sum().backward()
    return first, (x.grad.tolist(), y.grad.tolist(), seen)


def test_hooks_and_retain_grad_match_torch():
    assert run_hooks(mp) == run_hooks(torch)


def test_hooks_check_their_arguments():
    x = mp.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="hook must be callable"):
        mp.autograd.register_hook(x, 3)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        mp.autograd.register_hook(mp.tensor([1.0]), print)
    mp.autograd.register_hook(x, lambda g: mp.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="returned a gradient of shape"):
        (x * 2).sum().backward()


def test_gradcheck_lives_where_torch_has_it():
    assert mp.autograd.gradcheck is mp.gradcheck and mp.autograd.Function is mp.Function
    x = mp.tensor(np.linspace(-1, 1, 6).reshape(1, 1, 2, 3), requires_grad=True)
    assert mp.autograd.gradcheck(lambda t: F.max_pool2d(t, 2, ceil_mode=True), (x,))


def run_backward_options(lib):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
    h = x * w
    y = h * h
    y.backward(gradient=lib.tensor([1.0, 0.5, -1.0]), retain_graph=True)
    first = (x.grad.tolist(), w.grad.tolist())
    x.grad = None
    w.grad = None
    h.retain_grad()
    y.backward(lib.tensor([1.0, 1.0, 1.0]), inputs=[w, h])  # only these get .grad
    return first, x.grad, w.grad.tolist(), h.grad.tolist()


def test_backward_takes_torch_keywords_and_inputs():
    assert run_backward_options(mp) == run_backward_options(torch)
    x = mp.tensor([1.0], requires_grad=True)
    with pytest.raises(NotImplementedError, match="first-order"):
        (x * x).sum().backward(create_graph=True)
