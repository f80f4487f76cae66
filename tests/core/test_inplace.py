"""In-place ops (add_ sub_ mul_ div_ neg_ fill_ zero_ copy_ clamp_, += -= *= /=, x[i] = v) with
PyTorch's safety rules: they mutate the tensor's array; a leaf that requires grad
refuses them under grad mode; on results they are recorded in the graph; version
counters make backward refuse values changed after an op saved them.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp

torch = pytest.importorskip("torch")

DTYPES = [np.float32, np.float64]

# name -> (call on a minipool tensor, call on a torch tensor, NumPy reference on the array)
B = np.array([[0.5, -2.0, 4.0]])
OPS = {
    "add_": (lambda t: t.add_(mp.tensor(B)), lambda t: t.add_(torch.tensor(B)), lambda a: a + B),
    "add_alpha": (lambda t: t.add_(mp.tensor(B), alpha=3), lambda t: t.add_(torch.tensor(B), alpha=3),
                  lambda a: a + 3 * B),
    "sub_": (lambda t: t.sub_(2.5), lambda t: t.sub_(2.5), lambda a: a - 2.5),
    "mul_": (lambda t: t.mul_(mp.tensor(B)), lambda t: t.mul_(torch.tensor(B)), lambda a: a * B),
    "div_": (lambda t: t.div_(mp.tensor(B)), lambda t: t.div_(torch.tensor(B)), lambda a: a / B),
    "neg_": (lambda t: t.neg_(), lambda t: t.neg_(), lambda a: -a),
    "fill_": (lambda t: t.fill_(1.25), lambda t: t.fill_(1.25), lambda a: np.full_like(a, 1.25)),
    "zero_": (lambda t: t.zero_(), lambda t: t.zero_(), np.zeros_like),
    "copy_": (lambda t: t.copy_(mp.tensor(B)), lambda t: t.copy_(torch.tensor(B)),
              lambda a: np.broadcast_to(B, a.shape).astype(a.dtype)),
    "clamp_": (lambda t: t.clamp_(-1.0, 1.5), lambda t: t.clamp_(-1.0, 1.5), lambda a: np.clip(a, -1.0, 1.5)),
    "clamp_min_": (lambda t: t.clamp_min_(0.0), lambda t: t.clamp_min_(0.0), lambda a: np.maximum(a, 0.0)),
    "clamp_max_": (lambda t: t.clamp_max_(0.0), lambda t: t.clamp_max_(0.0), lambda a: np.minimum(a, 0.0)),
    "iadd": (lambda t: t.__iadd__(mp.tensor(B)), lambda t: t.__iadd__(torch.tensor(B)), lambda a: a + B),
    "isub": (lambda t: t.__isub__(mp.tensor(B)), lambda t: t.__isub__(torch.tensor(B)), lambda a: a - B),
    "imul": (lambda t: t.__imul__(3.0), lambda t: t.__imul__(3.0), lambda a: a * 3),
    "idiv": (lambda t: t.__itruediv__(mp.tensor(B)), lambda t: t.__itruediv__(torch.tensor(B)),
             lambda a: a / B),
}
A = np.array([[1.0, -3.0, 0.25], [2.0, 0.0, -0.5]])


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_ops_mutate_the_array_and_bump_the_version_like_torch(name, dtype):
    fm, ft, ref = OPS[name]
    m, t = mp.tensor(A.astype(dtype)), torch.tensor(A.astype(dtype))
    array = m.numpy()
    assert m._version == t._version == 0
    out_m, out_t = fm(m), ft(t)
    assert out_m is m and out_t is t
    assert m.numpy() is array  # the same memory, changed
    np.testing.assert_array_equal(m.numpy(), t.numpy())
    np.testing.assert_allclose(m.numpy(), ref(A.astype(dtype)), rtol=1e-7)
    assert m.dtype == dtype
    assert m._version == t._version == 1


def test_augmented_assignment_keeps_the_object_and_aliases_see_it():
    x = mp.tensor([1.0, 2.0])
    alias = x
    x += 1
    x *= mp.tensor([2.0, 3.0])
    x -= 0.5
    x /= 2
    assert x is alias
    np.testing.assert_allclose(alias.numpy(), ((np.array([1.0, 2.0]) + 1) * [2, 3] - 0.5) / 2)
    assert x._version == 4


def test_no_grad_sgd_update_changes_the_parameter_in_place():
    p = mp.nn.Parameter(mp.tensor([1.0, -2.0, 3.0]))
    tp = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    for step in range(3):
        x = np.array([0.5, 1.0, -1.5], np.float32) * (step + 1)
        (p * mp.tensor(x)).pow(2).sum().backward()
        (tp * torch.tensor(x)).pow(2).sum().backward()
        with mp.no_grad():
            p -= 0.1 * p.grad
        with torch.no_grad():
            tp -= 0.1 * tp.grad
        p.grad = None
        tp.grad = None
    assert isinstance(p, mp.nn.Parameter) and p.requires_grad and p.is_leaf
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-6)
    assert not np.allclose(p.numpy(), [1.0, -2.0, 3.0])


@pytest.mark.parametrize("name", sorted(OPS))
def test_inplace_on_a_leaf_that_requires_grad_raises_under_grad_mode(name):
    fm, ft, _ = OPS[name]
    t = torch.tensor(A, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ft(t)
    m = mp.tensor(A, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad.*no_grad"):
        fm(m)
    np.testing.assert_array_equal(m.numpy(), A)  # unchanged
    assert m._version == 0


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_on_a_result_is_recorded_and_gradients_match_torch(name, dtype):
    fm, ft, _ = OPS[name]
    rng = np.random.default_rng(1)
    w_np = rng.standard_normal(A.shape).astype(dtype)
    wm, wt = mp.tensor(w_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    hm, ht = wm * 2.0, wt * 2.0
    # a use of the old value by an op that saves nothing: its gradient must reach w
    # through h's old node, not through the in-place op recorded later
    used_before_m, used_before_t = hm.sum() * 3.0, ht.sum() * 3.0
    fm(hm)
    ft(ht)
    np.testing.assert_allclose(hm.numpy(), ht.detach().numpy(), rtol=1e-6)
    assert hm.requires_grad and not hm.is_leaf
    g = rng.standard_normal(A.shape).astype(dtype)
    ((hm.exp() * mp.tensor(g)).sum() + used_before_m.sum()).backward()
    ((ht.exp() * torch.tensor(g)).sum() + used_before_t.sum()).backward()
    np.testing.assert_allclose(wm.grad.numpy(), wt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_inplace_with_an_operand_that_requires_grad_makes_a_constant_require_grad():
    for dtype in DTYPES:
        wm = mp.tensor(np.array([1.0, 2.0, 3.0], dtype), requires_grad=True)
        wt = torch.tensor(np.array([1.0, 2.0, 3.0], dtype), requires_grad=True)
        cm, ct = mp.ones(3, dtype=dtype), torch.ones(3, dtype=wt.dtype)
        before_m, before_t = cm * 5, ct * 5  # recorded nothing: cm did not require grad then
        cm.mul_(wm).add_(wm)
        ct.mul_(wt).add_(wt)
        assert cm.requires_grad and not cm.is_leaf and not before_m.requires_grad
        (cm * cm).sum().backward()
        (ct * ct).sum().backward()
        np.testing.assert_allclose(wm.grad.numpy(), wt.grad.numpy())
        np.testing.assert_array_equal(before_m.numpy(), before_t.numpy())


def test_fill_and_copy_from_tensors_that_require_grad_match_torch():
    vm, vt = mp.tensor(np.array(2.0), requires_grad=True), torch.tensor(2.0, requires_grad=True)
    sm, st_ = mp.tensor([[1.0, 2.0, 3.0]], requires_grad=True), torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    am, at = mp.zeros(2, 3), torch.zeros(2, 3)
    bm, bt = mp.zeros(2, 3), torch.zeros(2, 3)
    am.fill_(vm)
    at.fill_(vt)
    bm.copy_(sm)
    bt.copy_(st_)
    ((am * mp.tensor(A.astype(np.float32))).sum() + (bm * bm).sum()).backward()
    ((at * torch.tensor(A, dtype=torch.float32)).sum() + (bt * bt).sum()).backward()
    np.testing.assert_allclose(vm.grad.numpy(), vt.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(sm.grad.numpy(), st_.grad.numpy(), rtol=1e-6)


def test_recorded_inplace_ops_pass_gradcheck():
    rng = np.random.default_rng(2)
    x = mp.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    w = mp.tensor(rng.standard_normal((2, 3)) + 3, requires_grad=True)

    def f(a, b):
        h = a * 1.0
        h.mul_(b)
        h.add_(a, alpha=0.5)
        h.div_(b)
        h.sub_(b * b)
        h.neg_()
        h.clamp_(-20.0, 20.0)
        return h * a

    assert mp.gradcheck(f, [x, w])


# --------------------------------------------------------------------------- version counters
def test_modifying_a_saved_output_raises_in_backward_like_torch():
    xm, xt = mp.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    ym, yt = xm.exp(), xt.exp()
    ym.add_(1)
    yt.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        yt.sum().backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*Exp.*add_"):
        ym.sum().backward()


def test_modifying_a_saved_input_raises_but_an_unsaved_one_does_not():
    w = mp.tensor([1.0, 2.0], requires_grad=True)
    x = mp.tensor([3.0, 4.0])
    y = x * w  # Mul saves x
    with mp.no_grad():
        x.mul_(10)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*Mul.*input 0.*mul_"):
        y.sum().backward()
    # add saves nothing: changing its input afterwards is harmless (as in PyTorch)
    x2 = mp.tensor([3.0, 4.0])
    z = x2 + w
    x2.add_(100)
    z.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1, 1])
    xt2 = torch.tensor([3.0, 4.0])
    wt = torch.tensor([1.0, 2.0], requires_grad=True)
    zt = xt2 + wt
    xt2.add_(100)
    zt.sum().backward()


def test_parameter_updated_between_forward_and_backward_is_caught():
    lin = mp.nn.Linear(3, 2)
    out = lin(mp.ones(4, 3)).sum()
    with mp.no_grad():
        lin.weight -= 0.1  # the weight was saved for backward
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def test_views_share_the_version_counter():
    base = mp.tensor(np.arange(6.0))
    view = base.reshape(2, 3)
    det = base.detach()
    tb = torch.arange(6.0)
    tv = tb.reshape(2, 3)
    tv.mul_(2)
    view.mul_(2)
    assert base._version == view._version == det._version == tb._version == 1
    np.testing.assert_array_equal(base.numpy(), tb.numpy())
    det.zero_()
    assert base._version == 2 and np.all(base.numpy() == 0)
    w = mp.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], requires_grad=True)
    y = w * base  # base saved
    view.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_inplace_on_a_view_of_a_recorded_result_is_refused_with_the_out_of_place_way():
    w = mp.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    h = w * 2
    v = h.reshape(2, 2)
    with pytest.raises(RuntimeError, match="shares its memory.*out-of-place"):
        v.mul_(3)
    with pytest.raises(RuntimeError, match="shares its memory"):
        h.add_(1)  # its memory is viewed by v


def test_second_backward_after_an_inplace_change_raises():
    w = mp.tensor([1.0, 2.0], requires_grad=True)
    y = w.sigmoid()  # saves its output
    loss = y.sum()
    loss.backward(retain_graph=True)
    with mp.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_inplace_op_before_use_is_fine_and_versions_count_each_change():
    x = mp.zeros(3)
    for i in range(5):
        x.add_(1)
    assert x._version == 5
    w = mp.tensor([1.0, 1.0, 1.0], requires_grad=True)
    (x * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [5, 5, 5])


# --------------------------------------------------------------------------- dtypes and bad input
def test_dtype_rules_match_torch():
    m, t = mp.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0])
    m.add_(mp.tensor(np.array([0.1, 0.2])))  # float64 operand into float32: cast
    t.add_(torch.tensor([0.1, 0.2], dtype=torch.float64))
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m.numpy(), t.numpy())
    i, it = mp.tensor([1, 2]), torch.tensor([1, 2])
    with pytest.raises(RuntimeError):
        it.add_(0.5)
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired output type Long"):
        i.add_(0.5)
    with pytest.raises(RuntimeError):
        it.div_(2)
    with pytest.raises(RuntimeError, match="int64"):
        i /= 2
    np.testing.assert_array_equal(i.numpy(), [1, 2])
    assert i._version == 0
    i.mul_(3)
    it.mul_(3)
    np.testing.assert_array_equal(i.numpy(), it.numpy())
    c, ct = mp.zeros(3, dtype=np.int64), torch.zeros(3, dtype=torch.int64)
    c.copy_(mp.tensor([1.7, -1.7, 2.2]))  # copy_ converts, truncating toward zero
    ct.copy_(torch.tensor([1.7, -1.7, 2.2]))
    np.testing.assert_array_equal(c.numpy(), ct.numpy())


def test_shape_changing_and_read_only_writes_are_refused():
    m = mp.zeros(3)
    with pytest.raises(RuntimeError):
        torch.zeros(3).add_(torch.zeros(2, 3))
    with pytest.raises(RuntimeError, match="shape"):
        m.add_(mp.zeros(2, 3))
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        m.copy_(mp.zeros(4))
    e = mp.zeros(1, 3).expand(2, 3)
    with pytest.raises(RuntimeError, match="read-only.*clone"):
        e.add_(1)
    w = mp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = w * 1
    with pytest.raises(RuntimeError, match="shape"):
        h.add_(mp.zeros(2, 3))
    np.testing.assert_array_equal(h.numpy(), [1, 2, 3])
    with pytest.raises(ValueError, match="at least one of min and max"):
        m.clamp_()
    with pytest.raises(ValueError, match="rounding_mode must be None, 'trunc' or 'floor'"):
        m.div_(2, rounding_mode="nearest")
    with pytest.raises(ValueError, match="0-d"):
        m.fill_(mp.zeros(2))


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=st.integers(0, 2 ** 16),
       ops=st.lists(st.sampled_from(["add_", "sub_", "mul_", "div_", "neg_", "clamp_", "copy_"]),
                    min_size=1, max_size=4), special=st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_random_inplace_chains_match_torch_values_and_gradients(shape, seed, ops, special):
    rng = np.random.default_rng(seed)
    w_np = rng.standard_normal(shape)
    o_np = rng.standard_normal(shape[-1:]) + 2.5
    if special is not None:
        o_np[rng.integers(o_np.size)] = special
    wm, wt = mp.tensor(w_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    om, ot = mp.tensor(o_np, requires_grad=True), torch.tensor(o_np, requires_grad=True)
    hm, ht = wm * 1.5, wt * 1.5
    for op in ops:
        if op == "neg_":
            hm.neg_()
            ht.neg_()
        elif op == "clamp_":
            hm.clamp_(-1.0, 2.0)
            ht.clamp_(-1.0, 2.0)
        else:
            getattr(hm, op)(om)
            getattr(ht, op)(ot)
    np.testing.assert_allclose(hm.numpy(), ht.detach().numpy(), rtol=1e-12, equal_nan=True)
    g = rng.standard_normal(shape)
    hm.backward(g)
    ht.backward(torch.tensor(g))
    np.testing.assert_allclose(wm.grad.numpy(), wt.grad.numpy(), rtol=1e-10, atol=1e-12, equal_nan=True)
    if ot.grad is None:  # o never used (only neg_/clamp_): no gradient on either side
        assert om.grad is None
    else:
        np.testing.assert_allclose(om.grad.numpy(), ot.grad.numpy(), rtol=1e-10, atol=1e-12, equal_nan=True)


def test_data_shares_memory_and_changes_through_it_are_not_versioned_like_torch():
    # .data is a Tensor sharing the memory, outside the graph, with its own version counter:
    # writing through it bypasses the saved-value check and the leaf rule, as in torch
    p, tp = mp.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    assert isinstance(p.data, mp.Tensor) and p.data.numpy() is p.numpy()
    ym, yt = p * p, tp * tp
    p.data -= 1.0
    tp.data -= 1.0
    assert p._version == 0 and tp._version == 0
    ym.sum().backward()  # no error: the change was invisible to autograd (both libraries)
    yt.sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())
    np.testing.assert_array_equal(p.numpy(), [0.0, 1.0])


# --------------------------------------------------------------------------- x[index] = value
# index kinds on a (3, 4) tensor -> the value shapes to try (the indexed shape, broadcast forms)
SETITEM_CASES = [
    ((1, 2), [()]),                                     # one element
    ((slice(None), 1), [(3,), (1,), ()]),               # a column
    ((slice(0, 3, 2), slice(1, None, 2)), [(2, 2), (1, 2), (2,), (1, 1, 2)]),  # strided
    ((Ellipsis, None, slice(1, 3)), [(3, 1, 2), (2,)]),
    (np.array([2, 0]), [(2, 4), (4,)]),                 # rows by index
    (np.array([2, 0, 2]), [(3, 4), (4,)]),              # a repeated row index
    ((np.array([0, 1]), np.array([3, 3])), [(2,), ()]),
    ("mask", [(), None]),                               # a bool mask; None: one value per True
]


def _setitem_index(kind, a):
    return a > 0.2 if isinstance(kind, str) else kind


@pytest.mark.parametrize("case", range(len(SETITEM_CASES)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_setitem_values_and_gradients_match_torch(case, dtype):
    kind, value_shapes = SETITEM_CASES[case]
    rng = np.random.default_rng(case)
    a_np = rng.standard_normal((3, 4)).astype(dtype)
    w_np = rng.standard_normal((3, 4)).astype(dtype)
    index = _setitem_index(kind, a_np)
    for shape in value_shapes:
        if shape is None:
            shape = (int(index.sum()),)
        v_np = rng.standard_normal(shape).astype(dtype)
        am, at = mp.tensor(a_np, requires_grad=True), torch.tensor(a_np, requires_grad=True)
        vm, vt = mp.tensor(v_np, requires_grad=True), torch.tensor(v_np, requires_grad=True)
        ym, yt = am * 1, at * 1
        ym[mp.tensor(index) if isinstance(index, np.ndarray) else index] = vm
        yt[torch.tensor(index) if isinstance(index, np.ndarray) else index] = vt
        np.testing.assert_array_equal(ym.numpy(), yt.detach().numpy())
        assert ym._version == yt._version == 1
        (ym * mp.tensor(w_np)).sum().backward()
        (yt * torch.tensor(w_np)).sum().backward()
        np.testing.assert_allclose(am.grad.numpy(), at.grad.numpy(), rtol=1e-6)
        np.testing.assert_allclose(vm.grad.numpy(), vt.grad.numpy(), rtol=1e-6)
        assert vm.grad.shape == vt.grad.shape and vm.grad.dtype == np.dtype(dtype)


# A repeated index writes one element twice: the value's gradient is PyTorch's gather, which
# counts it at every occurrence and is not a derivative (PyTorch leaves such writes undefined).
@pytest.mark.parametrize("case", [i for i, (kind, _) in enumerate(SETITEM_CASES)
                                  if not (isinstance(kind, np.ndarray)
                                          and len(np.unique(kind)) < len(kind))])
def test_setitem_passes_gradcheck(case):
    kind, value_shapes = SETITEM_CASES[case]
    rng = np.random.default_rng(10 + case)
    a = mp.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    index = _setitem_index(kind, a.numpy())
    shape = value_shapes[-1] if value_shapes[-1] is not None else (int(index.sum()),)
    v = mp.tensor(rng.standard_normal(shape), requires_grad=True)

    def f(base, value):
        y = base * base
        y[index] = value * 2.0
        return y.exp()

    assert mp.gradcheck(f, [a, v])


def test_setitem_with_a_scalar_a_constant_or_a_cast_value_matches_torch():
    # a plain tensor becomes part of the graph when the value requires grad
    ym, yt = mp.zeros(3), torch.zeros(3)
    vm, vt = mp.tensor(2.0, requires_grad=True), torch.tensor(2.0, requires_grad=True)
    ym[1] = vm
    yt[1] = vt
    assert ym.requires_grad and not ym.is_leaf
    (ym * mp.tensor([1.0, 3.0, 5.0])).sum().backward()
    (yt * torch.tensor([1.0, 3.0, 5.0])).sum().backward()
    assert vm.grad.item() == vt.grad.item()
    # a float64 value into float32 by slice: cast, its gradient comes back as float64
    am, at = mp.ones(4, requires_grad=True), torch.ones(4, requires_grad=True)
    vm = mp.tensor(np.array([0.5, 1.5]), requires_grad=True)
    vt = torch.tensor([0.5, 1.5], dtype=torch.float64, requires_grad=True)
    ym, yt = am * 2, at * 2
    ym[1:3] = vm
    yt[1:3] = vt
    assert ym.dtype == np.float32 and vm.grad is None
    ym.sum().backward()
    yt.sum().backward()
    np.testing.assert_array_equal(vm.grad.numpy(), vt.grad.numpy())
    assert vm.grad.dtype == np.float64
    np.testing.assert_array_equal(am.grad.numpy(), at.grad.numpy())
    # plain writes: numbers, int tensors (float values truncated, as in PyTorch), bool tensors
    for make_m, make_t, index, value in [
            (lambda: mp.zeros(2, 3), lambda: torch.zeros(2, 3), (slice(None), 1), 7.5),
            (lambda: mp.zeros(4, dtype=mp.int64), lambda: torch.zeros(4, dtype=torch.int64),
             slice(0, 2), 2.9),
            (lambda: mp.zeros(3, dtype=mp.bool_), lambda: torch.zeros(3, dtype=torch.bool), 0, 2.5)]:
        m, t = make_m(), make_t()
        m[index] = value
        t[index] = value
        np.testing.assert_array_equal(m.numpy(), t.numpy())
        assert m._version == t._version == 1 and not m.requires_grad
    m, t = mp.zeros(4, dtype=mp.int64), torch.zeros(4, dtype=torch.int64)
    m[0:2] = mp.tensor([1.7, -2.5])
    t[0:2] = torch.tensor([1.7, -2.5])
    np.testing.assert_array_equal(m.numpy(), t.numpy())


def test_setitem_follows_the_leaf_and_version_rules():
    w, tw = mp.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="setitem: a leaf tensor that requires grad"):
        w[0] = 1.0
    with pytest.raises(RuntimeError, match="leaf"):
        tw[0] = 1.0
    assert w._version == 0 and w.numpy().tolist() == [0, 0, 0]
    with mp.no_grad():
        w[0] = 1.0
    with torch.no_grad():
        tw[0] = 1.0
    assert w.numpy().tolist() == tw.tolist() and w._version == tw._version == 1
    assert w.is_leaf and w.requires_grad
    # a value saved for backward, overwritten afterwards: backward refuses, as in PyTorch
    x, tx = mp.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    ym, yt = x.exp(), tx.exp()
    ym[0] = 5.0
    yt[0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        ym.sum().backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        yt.sum().backward()


@pytest.mark.parametrize("write, torch_write, exc, match", [
    (lambda t: t.__setitem__(5, 1.0), lambda t: t.__setitem__(5, 1.0), IndexError,
     r"setitem: index 5 is invalid for a tensor of shape \(3,\)"),
    (lambda t: t.__setitem__(1.5, 1.0), lambda t: t.__setitem__(1.5, 1.0), IndexError, "index 1.5"),
    (lambda t: t.__setitem__((0, 0), 1.0), lambda t: t.__setitem__((0, 0), 1.0), IndexError,
     "too many indices"),
    (lambda t: t.__setitem__(slice(0, 2), mp.ones(3)),
     lambda t: t.__setitem__(slice(0, 2), torch.ones(3)), RuntimeError,
     r"value of shape \(3,\) cannot be broadcast"),
    (lambda t: t.__setitem__(0, "a"), lambda t: t.__setitem__(0, "a"), TypeError,
     "setitem: value must be a number"),
    (lambda t: t.__setitem__(0, None), lambda t: t.__setitem__(0, None), TypeError, "value"),
    (lambda t: t.__setitem__(mp.tensor([0, 1]), mp.tensor([1.0, 2.0], dtype=mp.float64)),
     lambda t: t.__setitem__(torch.tensor([0, 1]), torch.tensor([1.0, 2.0], dtype=torch.float64)),
     RuntimeError, "indexing by an array needs a value of the tensor's dtype float32, got float64"),
])
def test_setitem_bad_input_raises_what_torch_raises(write, torch_write, exc, match):
    m, t = mp.zeros(3), torch.zeros(3)
    with pytest.raises(exc, match=match):
        write(m)
    with pytest.raises(exc):
        torch_write(t)
    assert m.numpy().tolist() == [0, 0, 0] and m._version == 0


def test_setitem_into_read_only_memory_is_refused():
    e = mp.ones(3).expand(2, 3)
    with pytest.raises(RuntimeError, match="setitem: this tensor's memory is read-only"):
        e[0] = 2.0


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2 ** 16),
       kind=st.sampled_from(["int", "slice", "array", "mask"]),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf]), broadcast=st.booleans())
def test_random_setitem_matches_torch_values_and_gradients(shape, seed, kind, special, broadcast):
    rng = np.random.default_rng(seed)
    a_np = rng.standard_normal(shape)
    if kind == "int":
        index = tuple(int(rng.integers(-n, n)) for n in shape[:int(rng.integers(1, len(shape) + 1))])
    elif kind == "slice":
        # (PyTorch refuses a negative step)
        index = tuple(slice(int(rng.integers(-n, n)), None, int(rng.integers(1, 3))) for n in shape)
    elif kind == "array":  # repeats allowed
        index = rng.integers(-shape[0], shape[0], size=int(rng.integers(1, 5)))
    else:
        index = rng.random(shape) < 0.5
    target = a_np[index].shape
    value_shape = tuple(1 if broadcast and rng.integers(2) else n for n in target)
    if broadcast and value_shape:
        value_shape = value_shape[int(rng.integers(len(value_shape) + 1)):]
    v_np = rng.standard_normal(value_shape)
    if special is not None and v_np.size:
        v_np.reshape(-1)[0] = special
    tidx = torch.tensor(index) if isinstance(index, np.ndarray) else index
    am, at = mp.tensor(a_np, requires_grad=True), torch.tensor(a_np, requires_grad=True)
    vm, vt = mp.tensor(v_np, requires_grad=True), torch.tensor(v_np, requires_grad=True)
    ym, yt = am * 1.0, at * 1.0
    ym[index] = vm
    yt[tidx] = vt
    np.testing.assert_array_equal(ym.numpy(), yt.detach().numpy())
    g = rng.standard_normal(shape)
    ym.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_array_equal(am.grad.numpy(), at.grad.numpy())
    np.testing.assert_allclose(vm.grad.numpy(), vt.grad.numpy(), rtol=1e-12, atol=1e-12)
