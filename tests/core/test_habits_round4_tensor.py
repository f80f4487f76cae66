"""Tensor habits, round 4: f"{loss:.4f}", the legacy Tensor(3, 4) constructor, sum(dtype=),
new_empty/new_tensor, nbytes/itemsize, grad_fn.name(), add/sub(alpha=) and anomaly detection,
each checked against PyTorch (values, dtypes, shapes, error classes) and by hand."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minipool as mp

torch = pytest.importorskip("torch")

SPECS = ["", ".4f", ".2e", "g", "10.3f", "<8", "+.1f", ".0%"]


def outcome(fn):
    """("ok", value) or ("error", exception class name)."""
    try:
        return "ok", fn()
    except Exception as e:  # noqa: BLE001  (comparing which error each library raises)
        return "error", type(e).__name__


# --------------------------------------------------------------------------- __format__
@settings(max_examples=60, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                       st.sampled_from([0.0, -0.0, 1e-8, 12345.678])),
       spec=st.sampled_from(SPECS), requires_grad=st.booleans())
def test_0d_float_formats_as_its_python_number_like_torch(value, spec, requires_grad):
    ours = mp.tensor(value, requires_grad=requires_grad)
    theirs = torch.tensor(value, requires_grad=requires_grad)
    want = format(np.float32(value).item(), spec)  # the float32 value as Python formats it
    assert format(ours, spec) == format(theirs, spec) == want
    assert f"{ours * 1 if requires_grad else ours:{spec}}" == want  # a result with a grad_fn too


@pytest.mark.parametrize("value, spec", [(3, "d"), (3, "05d"), (-7, "x"), (3, ""), (True, ""),
                                         (True, "d"), (2.5, "d")])
def test_0d_int_bool_and_mismatched_specs_match_torch(value, spec):
    ours = outcome(lambda: format(mp.tensor(value), spec))
    theirs = outcome(lambda: format(torch.tensor(value), spec))
    assert ours == theirs


@pytest.mark.parametrize("shape", [(3,), (2, 2), (1,), (0,)])
def test_other_shapes_take_only_an_empty_spec_like_torch(shape):
    ours, theirs = mp.ones(*shape), torch.ones(*shape)
    assert format(ours, "") == repr(ours) and format(theirs, "") == repr(theirs)
    for spec in (".4f", "d"):
        with pytest.raises(TypeError, match="unsupported format string"):
            format(ours, spec)
        with pytest.raises(TypeError, match="unsupported format string"):
            format(theirs, spec)


def test_a_0d_parameter_formats_like_torchs_subclass_rule():
    # PyTorch formats only an exact Tensor through item(); a Parameter goes to object.__format__
    ours, theirs = mp.nn.Parameter(mp.tensor(1.5)), torch.nn.Parameter(torch.tensor(1.5))
    assert outcome(lambda: format(ours, ".2f")) == outcome(lambda: format(theirs, ".2f"))


# --------------------------------------------------------------------------- Tensor(...)
@pytest.mark.parametrize("args", [(2, 3), (4,), (1, 2, 3), (0, 5), (2, 3, 4, 5)])
def test_legacy_sizes_constructor_matches_torch(args):
    ours, theirs = mp.Tensor(*args), torch.Tensor(*args)
    assert ours.shape == tuple(theirs.shape) == args
    assert ours.dtype == np.float32 and theirs.dtype == torch.float32
    assert not ours.requires_grad and ours.is_leaf


@pytest.mark.parametrize("data", [[1, 2], [[1, 2], [3, 4]], [True, False], (1.5, 2), [], ()])
def test_legacy_sequence_constructor_is_default_float_like_torch(data):
    ours, theirs = mp.Tensor(data), torch.Tensor(data)
    assert ours.dtype == np.float32 and theirs.dtype == torch.float32
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert mp.Tensor().shape == tuple(torch.Tensor().shape) == (0,)


def test_legacy_constructor_follows_the_default_dtype():
    mp.set_default_dtype(mp.float64)
    try:
        assert mp.Tensor(2, 2).dtype == np.float64 and mp.Tensor([1, 2]).dtype == np.float64
    finally:
        mp.set_default_dtype(mp.float32)


def test_arrays_and_explicit_dtypes_keep_minipools_meaning():
    # documented difference: an ndarray keeps its dtype (as mp.from_numpy); torch.Tensor casts it
    assert mp.Tensor(np.array([1, 2])).dtype == np.int64
    assert mp.Tensor([1, 2], mp.int64).dtype == np.int64
    assert mp.Tensor(3.5).shape == () and mp.Tensor(np.int64(3)).shape == ()


@pytest.mark.parametrize("args, error", [((2, 3.5), TypeError), ((-1,), RuntimeError),
                                         ((2, "a"), TypeError)])
def test_bad_sizes_raise_like_torch_and_name_the_minipool_way(args, error):
    with pytest.raises(error) as ours:
        mp.Tensor(*args)
    with pytest.raises(error):
        torch.Tensor(*args)
    if error is TypeError:
        assert "mp.empty" in str(ours.value) or "dtype" in str(ours.value)


# --------------------------------------------------------------------------- sum(dtype=)
@pytest.mark.parametrize("dtype_in", ["float32", "float64", "int32", "uint8", "bool"])
@pytest.mark.parametrize("dtype", [None, "float64", "float32", "int64"])
@pytest.mark.parametrize("dim", [None, 0, (0, 1)])
def test_sum_dtype_matches_torch(dtype_in, dtype, dim):
    x = np.array([[1.5, -2.25, 3.0], [4.0, 0.5, 7.75]]).astype(dtype_in)
    kwargs = {} if dtype is None else {"dtype": np.dtype(dtype)}
    t_kwargs = {} if dtype is None else {"dtype": getattr(torch, dtype)}
    args = () if dim is None else (dim,)
    for ours in (mp.tensor(x).sum(*args, **kwargs), mp.sum(mp.tensor(x), *args, **kwargs)):
        theirs = torch.tensor(x).sum(*args, **t_kwargs)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    # by hand: cast first (a float summed as int64 loses its fractions first), then add
    want = x.astype(dtype if dtype else (np.int64 if x.dtype.kind in "biu" else x.dtype))
    np.testing.assert_allclose(mp.tensor(x).sum(*args, **kwargs).numpy(),
                               want.sum(axis=dim), rtol=1e-6)


def test_sum_dtype_gradient_flows_back_in_the_input_dtype():
    x = mp.tensor([[0.3, -1.2], [2.0, 0.7]], dtype=mp.float32, requires_grad=True)
    y = x.sum(1, dtype=mp.float64)
    assert y.dtype == np.float64
    (y * mp.tensor([2.0, -3.0], dtype=mp.float64)).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, 2.0], [-3.0, -3.0]])
    w = mp.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert mp.gradcheck(lambda t: (t * t).sum(0, dtype=mp.float64), [w])


# --------------------------------------------------------------------------- new_*, sizes
@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool"])
def test_new_empty_and_new_tensor_match_torch(dtype):
    ours, theirs = mp.zeros(2, dtype=dtype), torch.zeros(2, dtype=getattr(torch, dtype))
    for size in ((2, 3), ((4,),), ([1, 2],)):
        a, b = ours.new_empty(*size), theirs.new_empty(*size)
        assert a.shape == tuple(b.shape) and str(a.dtype) == str(b.dtype).replace("torch.", "")
    data = [[1.7, -2.2], [0.0, 3.0]]
    a, b = ours.new_tensor(data), theirs.new_tensor(data)
    assert str(a.dtype) == str(b.dtype).replace("torch.", "")
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    a = ours.new_tensor(data, dtype=mp.float64, requires_grad=True)
    assert a.dtype == np.float64 and a.requires_grad and a.is_leaf
    assert ours.new_empty(3, dtype=mp.float64, requires_grad=True).requires_grad


def test_new_tensor_copies_its_data():
    src = mp.tensor([1.0, 2.0], requires_grad=True)
    made = mp.zeros(1).new_tensor(src)
    made.numpy()[0] = 9.0
    assert src.tolist() == [1.0, 2.0] and not made.requires_grad and made.grad_fn is None


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int8", "bool", "float16"])
def test_nbytes_itemsize_element_size_match_torch(dtype):
    ours, theirs = mp.zeros(3, 5, dtype=dtype), torch.zeros(3, 5, dtype=getattr(torch, dtype))
    assert ours.itemsize == theirs.itemsize == ours.element_size() == np.dtype(dtype).itemsize
    assert ours.nbytes == theirs.nbytes == 15 * np.dtype(dtype).itemsize
    assert ours[1:, 2].nbytes == theirs[1:, 2].nbytes  # a view counts its own elements


# --------------------------------------------------------------------------- grad_fn.name()
def test_grad_fn_name_is_a_method_like_torch():
    x = mp.tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    assert y.grad_fn.name() == "SumBackward0" and callable(y.grad_fn.name)
    assert torch.tensor([1.0], requires_grad=True).sum().grad_fn.name() == "SumBackward0"
    assert "grad_fn=<SumBackward0>" in repr(y) and y.grad_fn.op_name() == "Sum"

    class Twice(mp.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    assert Twice.apply(x).grad_fn.name() == "TwiceBackward"


@pytest.mark.parametrize("make", [
    lambda L, x: x + x, lambda L, x: x * 2, lambda L, x: x / x, lambda L, x: x ** 2, lambda L, x: -x,
    lambda L, x: x.exp(), lambda L, x: x.log(), lambda L, x: x.tanh(), lambda L, x: x.sigmoid(),
    lambda L, x: x.relu(), lambda L, x: x.sum(), lambda L, x: x.mean(), lambda L, x: x.reshape(-1),
    lambda L, x: x @ x.T, lambda L, x: x.clamp(0.1, 0.5), lambda L, x: x.abs(), lambda L, x: x.sqrt(),
    lambda L, x: L.cat([x, x]), lambda L, x: L.where(x > 0.5, x, x * 2), lambda L, x: x.double(),
    lambda L, x: x.square(), lambda L, x: x.permute(1, 0), lambda L, x: x.max(0)[0],
    lambda L, x: x.reciprocal(), lambda L, x: x[0], lambda L, x: L.maximum(x, x * 2),
])
def test_grad_fn_names_are_torchs(make):
    data = np.array([[0.25, 0.5], [0.75, 1.5]], dtype=np.float32)
    ours = make(mp, mp.tensor(data, requires_grad=True)).grad_fn.name()
    assert ours == make(torch, torch.tensor(data, requires_grad=True)).grad_fn.name()


# --------------------------------------------------------------------------- add/sub(alpha=)
@pytest.mark.parametrize("op", ["add", "sub"])
@pytest.mark.parametrize("alpha", [1, 2, -0.5, 3.25])
def test_add_sub_alpha_match_torch_and_by_hand(op, alpha):
    a = np.array([[1.5, -2.0, 0.25]], np.float32)
    b = np.array([[0.5], [4.0]], np.float32)
    ours = [getattr(mp, op)(mp.tensor(a), mp.tensor(b), alpha=alpha),
            getattr(mp.tensor(a), op)(mp.tensor(b), alpha=alpha)]
    theirs = getattr(torch, op)(torch.tensor(a), torch.tensor(b), alpha=alpha)
    by_hand = a + alpha * b if op == "add" else a - alpha * b
    for o in ours:
        assert o.dtype == np.float32
        np.testing.assert_allclose(o.numpy(), theirs.numpy(), rtol=1e-6)
        np.testing.assert_allclose(o.numpy(), by_hand, rtol=1e-6)
    x = mp.tensor(a.astype(np.float64), requires_grad=True)
    y = mp.tensor(b.astype(np.float64), requires_grad=True)
    assert mp.gradcheck(lambda s, t: getattr(mp, op)(s, t, alpha=alpha), [x, y])


def test_alpha_errors_match_torch():
    ints = (np.array([1, 2]), np.array([3, 4]))
    assert outcome(lambda: mp.add(*map(mp.tensor, ints), alpha=0.5))[0] == "error"
    with pytest.raises(RuntimeError):
        torch.add(*map(torch.tensor, ints), alpha=0.5)
    with pytest.raises(RuntimeError, match="alpha must not be a floating point"):
        mp.add(*map(mp.tensor, ints), alpha=0.5)
    assert mp.add(*map(mp.tensor, ints), alpha=2).tolist() == torch.add(
        *map(torch.tensor, ints), alpha=2).tolist()
    with pytest.raises(TypeError, match="alpha must be a real number"):
        mp.add(mp.ones(1), mp.ones(1), alpha="2")


# --------------------------------------------------------------------------- anomaly mode
def _nan_backward(lib):
    x = lib.tensor([0.0, 4.0], requires_grad=True)
    (x.sqrt() * lib.tensor([0.0, 1.0])).sum().backward()  # d sqrt at 0 is inf; inf * 0 is NaN
    return x.grad


def test_anomaly_mode_names_the_op_that_made_a_nan_like_torch():
    assert np.isnan(_nan_backward(mp).numpy()[0])  # off: the NaN reaches .grad quietly
    assert not mp.autograd.is_anomaly_enabled() and not torch.is_anomaly_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.autograd.detect_anomaly(), pytest.raises(RuntimeError, match="SqrtBackward0"):
            _nan_backward(torch)
    with mp.autograd.detect_anomaly():
        assert mp.autograd.is_anomaly_enabled() and mp.is_anomaly_enabled()
        with pytest.raises(RuntimeError, match="Function 'SqrtBackward0' returned nan values in its 0th output"):
            _nan_backward(mp)
    assert not mp.autograd.is_anomaly_enabled()


def test_set_detect_anomaly_as_call_context_and_decorator():
    mp.autograd.set_detect_anomaly(True)
    try:
        assert mp.autograd.is_anomaly_enabled() and mp.autograd.is_anomaly_check_nan_enabled()
        with pytest.raises(RuntimeError, match="'SqrtBackward0'"):
            _nan_backward(mp)
        with mp.autograd.set_detect_anomaly(False):
            assert not mp.autograd.is_anomaly_enabled()
            _nan_backward(mp)
        assert mp.autograd.is_anomaly_enabled()
        with mp.autograd.set_detect_anomaly(True, check_nan=False):
            assert not mp.autograd.is_anomaly_check_nan_enabled()
            _nan_backward(mp)  # no NaN check: nothing raised
    finally:
        mp.autograd.set_detect_anomaly(False)

    @mp.autograd.detect_anomaly()
    def run():
        return _nan_backward(mp)

    with pytest.raises(RuntimeError, match="'SqrtBackward0'"):
        run()
    assert not mp.autograd.is_anomaly_enabled()
    with pytest.raises(TypeError, match="mode must be a bool"):
        mp.autograd.set_detect_anomaly("yes")


def test_anomaly_mode_passes_finite_gradients_unchanged():
    x = mp.tensor([[1.0, 2.0], [3.0, -4.0]], requires_grad=True)
    with mp.autograd.detect_anomaly():
        (x.exp() * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (np.exp(x.numpy()) * (1 + x.numpy())), rtol=1e-6)


# --------------------------------------------------------------------------- more Tensor names
@pytest.mark.parametrize("alias, name", [("multiply", "mul"), ("divide", "div"), ("true_divide", "div"),
                                         ("subtract", "sub"), ("greater", "gt"), ("less_equal", "le"),
                                         ("not_equal", "ne"), ("greater_equal", "ge"), ("less", "lt")])
def test_torch_alias_names_give_the_same_results(alias, name):
    a, b = np.array([1.5, -2.0, 3.0], np.float32), np.array([1.5, 2.0, -1.0], np.float32)
    ours = getattr(mp.tensor(a), alias)(mp.tensor(b))
    theirs = getattr(torch.tensor(a), alias)(torch.tensor(b))
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(ours.numpy(), getattr(mp.tensor(a), name)(mp.tensor(b)).numpy())


def test_in_place_and_shape_aliases_match_torch():
    for alias in ("negative_", "absolute_", "fix_"):
        ours, theirs = mp.tensor([-1.5, 2.5]), torch.tensor([-1.5, 2.5])
        getattr(ours, alias)()
        getattr(theirs, alias)()
        assert ours.tolist() == theirs.tolist()
    x = np.arange(24.0).reshape(2, 3, 4)
    for alias in ("swapaxes", "swapdims"):
        assert getattr(mp.tensor(x), alias)(0, 2).shape == tuple(getattr(torch.tensor(x), alias)(0, 2).shape)
    assert mp.arange(6).reshape_as(mp.zeros(3, 2)).tolist() == torch.arange(6).reshape_as(
        torch.zeros(3, 2)).tolist()


@pytest.mark.parametrize("shape, view", [((2, 3), None), ((2, 3, 4), "t"), ((4, 6), "slice")])
def test_stride_and_data_ptr_match_torch(shape, view):
    ours, theirs = mp.zeros(*shape), torch.zeros(*shape)
    if view == "t":
        ours, theirs = ours.transpose(0, 2), theirs.transpose(0, 2)
    elif view == "slice":
        ours, theirs = ours[1:, ::2], theirs[1:, ::2]
    assert ours.stride() == theirs.stride()
    assert [ours.stride(d) for d in range(-ours.ndim, ours.ndim)] == \
        [theirs.stride(d) for d in range(-theirs.ndim, theirs.ndim)]
    base = mp.zeros(4, 6)
    assert base[1:].data_ptr() - base.data_ptr() == 6 * base.element_size()


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "int8", "uint8", "bool", "float16"])
def test_dtype_questions_and_small_int_casts_match_torch(dtype):
    ours, theirs = mp.zeros(2, dtype=dtype), torch.zeros(2, dtype=getattr(torch, dtype))
    assert ours.is_signed() == theirs.is_signed()
    assert ours.is_complex() == theirs.is_complex() is False
    assert ours.get_device() == theirs.get_device() == -1 and ours.is_cpu
    data = np.array([1.7, -2.2, 100.0])
    for cast, want in (("byte", "uint8"), ("char", "int8"), ("short", "int16")):
        a = getattr(mp.tensor(data[2:]), cast)()
        b = getattr(torch.tensor(data[2:]), cast)()
        assert str(a.dtype) == str(b.dtype).replace("torch.", "") == want
        assert a.tolist() == b.tolist()


def test_retains_grad_matches_torch():
    for lib in (mp, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x * 2
        assert not x.retains_grad and not y.retains_grad
        y.retain_grad()
        assert y.retains_grad and not x.retains_grad


@pytest.mark.parametrize("name, words", [("t_", "t = t.transpose"), ("unsqueeze_", "in place"),
                                         ("apply_", "t.numpy()"), ("storage", "NumPy array"),
                                         ("bfloat16", ".float()"), ("to_sparse", "dense"),
                                         ("register_post_accumulate_grad_hook", "register_hook"),
                                         ("new", "new_empty")])
def test_left_out_tensor_methods_name_the_minipool_way(name, words):
    t = mp.ones(2)
    assert hasattr(torch.ones(2), name) and not hasattr(t, name)
    with pytest.raises(AttributeError, match=f"no attribute '{name}'") as info:
        getattr(t, name)
    assert words in str(info.value)
    with pytest.raises(AttributeError):
        mp.ones(2).nonexistent_thing


def test_ops_read_lists_and_ints_as_data_not_as_legacy_sizes():
    # mp.Tensor(3) is a shape now; operands and targets given as numbers/lists stay data
    assert (mp.tensor([1, 2]) + [1, 2]).tolist() == [2, 4] and (mp.tensor([1, 2]) + [1, 2]).dtype == np.int64
    assert mp.where(mp.tensor([True, False]), 3, mp.tensor([1, 2])).tolist() == [3, 2]
    logits = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 2.0]], np.float32)
    np.testing.assert_allclose(mp.nn.functional.cross_entropy(mp.tensor(logits), [0, 2]).item(),
                               torch.nn.functional.cross_entropy(torch.tensor(logits),
                                                                 torch.tensor([0, 2])).item(), rtol=1e-6)
