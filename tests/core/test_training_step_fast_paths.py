"""The training step's fast paths give the same bits as the general code they bypass.

* cross-entropy with plain class indices (no weight, no smoothing, nothing
  ignored) against ClassLossFn's general formulation (forced with all_kept=False);
* relu against PyTorch's rule (0 where x < 0, else x), and its gradient against PyTorch's rule written
  out (and PyTorch itself) on inf/NaN gradients and inputs;
* SGD's in-place update against the textbook formula in float32 arithmetic.
"""
import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool import autograd, optim
from minipool.ops.loss import ClassLossFn
from tests.helpers import fixed_threads


def bits(a):
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _class_loss(x, t, reduction, all_kept):
    xt = mp.tensor(x, requires_grad=True)
    out = ClassLossFn.apply(xt, t, None, True, False, -100, reduction, 0.0, all_kept=all_kept)
    out.backward(np.full(out.shape, 0.75, dtype=x.dtype))
    return out.numpy(), xt.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 10), (7, 3, 4, 5), (5,)])
def test_plain_cross_entropy_is_bit_identical_to_the_general_path(reduction, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    x = (rng.normal(size=shape) * 8).astype(dtype)
    x.reshape(-1)[::13] = -np.inf   # impossible classes: their probability is exactly 0
    classes = shape[1] if len(shape) > 1 else shape[0]
    t_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    t = rng.integers(0, classes, size=t_shape)
    fast_out, fast_grad = _class_loss(x, t, reduction, True)
    slow_out, slow_grad = _class_loss(x, t, reduction, False)
    assert fast_out.dtype == slow_out.dtype == dtype
    np.testing.assert_array_equal(bits(fast_out), bits(slow_out))
    np.testing.assert_array_equal(bits(fast_grad), bits(slow_grad))


def test_cross_entropy_takes_the_general_path_when_an_entry_is_ignored():
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    t = np.array([0, 3, 2, 1, 3, 0])
    xt = mp.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, mp.tensor(t), ignore_index=3)
    loss.backward()
    keep = t != 3
    logp = x - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)) - x.max(1, keepdims=True)
    expected = -logp[np.arange(6), t][keep].mean()
    assert loss.item() == pytest.approx(float(expected), rel=1e-6)
    assert (xt.grad.numpy()[~keep] == 0).all()


@pytest.mark.parametrize("bad", [10, -1, -101])
def test_cross_entropy_still_refuses_out_of_range_indices(bad):
    x = mp.zeros(3, 10)
    with pytest.raises(ValueError, match=f"class index {bad}, outside"):
        F.cross_entropy(x, mp.tensor([1, bad, 2]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 6, 14, 14), (3,), ()])
def test_relu_bits_and_gradient_mask(dtype, shape):
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape).astype(dtype)
    if x.ndim:
        x.reshape(-1)[:6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, -np.nan][:x.size]
    xt = mp.tensor(x, requires_grad=True)
    y = F.relu(xt)
    # PyTorch's rule (clamp_min): 0 where x < 0, x itself elsewhere (NaN and -0.0 pass)
    expected = np.array([dtype(0) if v < 0 else v for v in x.reshape(-1)], dtype).reshape(shape)
    assert y.dtype == dtype
    np.testing.assert_array_equal(bits(y.numpy()), bits(expected))
    g = rng.normal(size=shape).astype(dtype)
    if g.ndim:
        g.reshape(-1)[6:12] = [np.inf, -np.inf, np.nan, -3.0, np.inf, np.nan][:max(g.size - 6, 0)]
    y.backward(g)
    # PyTorch's rule: +0 where the output is <= 0, the gradient itself elsewhere (NaN inputs too)
    want = np.where(expected <= 0, dtype(0), g)
    np.testing.assert_array_equal(bits(xt.grad.numpy()), bits(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_gradient_matches_torch_on_special_values(dtype):
    torch = pytest.importorskip("torch")
    x = np.array([-2, -0.0, 0, 1, np.nan, np.inf, -np.inf, 3, -1, 2], dtype)
    g = np.array([np.inf, np.nan, -1, np.nan, 5, -np.inf, np.inf, -2, -4, np.nan], dtype)
    xt = mp.tensor(x, requires_grad=True)
    F.relu(xt).backward(g)
    ref = torch.tensor(x, requires_grad=True)
    torch.relu(ref).backward(torch.tensor(g))
    np.testing.assert_array_equal(bits(xt.grad.numpy()), bits(ref.grad.numpy()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_forward_matches_torch_bits_on_special_values(dtype):
    torch = pytest.importorskip("torch")
    x = np.array([-2, -0.0, 0, 1, np.nan, -np.nan, np.inf, -np.inf, 3, -1e-45], dtype)
    ours = F.relu(mp.tensor(x)).numpy()
    np.testing.assert_array_equal(bits(ours), bits(torch.relu(torch.tensor(x)).numpy()))


@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
def test_relu_is_the_same_for_any_thread_count(layout):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(32, 16, 40, 40)).astype(np.float32)  # many kernel blocks
    x.reshape(-1)[::97] = np.nan
    if layout == "transposed":
        x = x.transpose(0, 2, 3, 1)  # a non-contiguous input
    g = rng.normal(size=x.shape).astype(np.float32)
    results = []
    for threads in (1, 2):
        with fixed_threads(threads):
            xt = mp.tensor(x, requires_grad=True)
            F.relu(xt).backward(g)
            results.append((bits(F.relu(mp.tensor(x)).numpy()), bits(xt.grad.numpy())))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    want = np.where(x < 0, np.float32(0), x)
    np.testing.assert_array_equal(results[0][0], bits(want))


def test_relu_of_integers_keeps_the_dtype():
    y = F.relu(mp.tensor(np.array([-3, 0, 5], dtype=np.int32)))
    assert y.dtype == np.int32 and y.tolist() == [0, 0, 5]


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd_update_bits_match_the_formula(nesterov, weight_decay):
    rng = np.random.default_rng(3)
    p0 = rng.normal(size=(5, 7)).astype(np.float32)
    grads = [rng.normal(size=(5, 7)).astype(np.float32) for _ in range(3)]
    p = mp.nn.Parameter(p0.copy())
    lr, momentum = 0.05, 0.9
    opt = optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    ref, buf = p0.copy(), None
    for g in grads:
        p.grad = mp.tensor(g)
        opt.step()
        d = g + np.float32(weight_decay) * ref if weight_decay else g
        buf = d.copy() if buf is None else buf * np.float32(momentum) + d
        step = d + np.float32(momentum) * buf if nesterov else buf
        ref = ref - np.float32(lr) * step
        np.testing.assert_array_equal(p.numpy(), ref)


class _Handout(mp.Function):
    """Identity whose backward returns ``handed[0]`` (if set) or a fresh copy of the gradient."""
    handed = []

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, grad):
        if _Handout.handed:
            return _Handout.handed[0]
        fresh = grad * 1
        _Handout.fresh_id = id(fresh)
        return fresh


def test_leaf_grad_adopts_a_fresh_gradient_but_copies_one_held_elsewhere():
    x = mp.tensor(np.arange(4.0), requires_grad=True)
    _Handout.handed.clear()
    _Handout.apply(x).backward(np.ones(4))
    assert x.grad.numpy().tolist() == [1.0] * 4
    if autograd._SOLE_OWNER_REFS is not None:  # CPython: the fresh array is adopted, not copied
        assert id(x.grad.numpy()) == _Handout.fresh_id
    kept = np.full(4, 2.0)
    _Handout.handed.append(kept)          # still referenced by the list: must not be adopted
    x.grad = None
    _Handout.apply(x).backward(np.ones(4))
    x.grad.numpy()[:] = 7                 # writing into .grad must not reach the op's array
    assert kept.tolist() == [2.0] * 4
    _Handout.handed[0] = np.arange(8.0)[::2]  # a view: its memory belongs to another array
    base = _Handout.handed[0].base
    x.grad = None
    _Handout.apply(x).backward(np.ones(4))
    x.grad.numpy()[:] = -1
    assert base.tolist() == list(np.arange(8.0))
    _Handout.handed.clear()


def test_leaf_used_twice_gets_the_sum_and_the_incoming_grad_is_untouched():
    x = mp.tensor(np.array([1.0, 2.0]), requires_grad=True)
    g = np.array([3.0, 5.0])
    (x * 2 + x).backward(g)
    assert x.grad.numpy().tolist() == [9.0, 15.0]
    assert g.tolist() == [3.0, 5.0]
    y = x * 1.0
    y.backward(g)                         # accumulates into the existing .grad
    assert x.grad.numpy().tolist() == [12.0, 20.0] and g.tolist() == [3.0, 5.0]
