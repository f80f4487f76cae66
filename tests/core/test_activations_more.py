"""hardsigmoid, hardswish, logsigmoid, mish, selu, celu, threshold, hardshrink, softshrink,
softsign, tanhshrink, softmin and glu (minipool/ops/activations_more.py).

Per-element references written with the math module, PyTorch parity on values and
gradients (float32 and float64, kinks, NaN and infinities), float64 gradchecks away
from the kinks, hypothesis properties with ties, and named errors.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minipool as mp
import minipool.nn.functional as F
from minipool.testing import assert_close
from tests.helpers import SELU_ALPHA, SELU_SCALE
from tests.core.test_activations import (assert_matches_math_reference, assert_torch_parity,
                                         torch_values_and_grads)



def _sig(v):
    return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))


def ref_hardsigmoid(v):
    return min(max(v + 3, 0), 6) / 6, (float(np.float32(1) / np.float32(6)) if -3 < v < 3 else 0.0)


def ref_hardswish(v):
    slope = 0.0 if v <= -3 else (1.0 if v >= 3 else v / 3 + 0.5)
    return v * min(max(v + 3, 0), 6) / 6, slope


def ref_logsigmoid(v):
    return min(v, 0) - math.log1p(math.exp(-abs(v))), 1 - _sig(v)


def ref_mish(v):
    sp = max(v, 0) + math.log1p(math.exp(-abs(v)))
    t = math.tanh(sp)
    return v * t, t + v * _sig(v) * (1 - t * t)


def ref_scaled_elu(v, alpha, scale, input_scale, backward_scale=None):
    """elu's formula; ``backward_scale``: the input scale of PyTorch's derivative (celu's
    is 1 / float32(alpha), so its slope is off the exact one by ~1e-8 relative)."""
    if v > 0:
        return scale * v, scale
    b = input_scale if backward_scale is None else backward_scale
    return alpha * scale * (math.exp(v * input_scale) - 1), alpha * scale * b * math.exp(v * b)


def ref_threshold(v, t, value):
    return (v, 1.0) if v > t else (value, 0.0)


def ref_hardshrink(v, lam):
    return (0.0, 0.0) if -lam <= v <= lam else (v, 1.0)


def ref_softshrink(v, lam):
    if v > lam:
        return v - lam, 1.0
    if v < -lam:
        return v + lam, 1.0
    return 0.0, 0.0


def ref_softsign(v):
    return v / (1 + abs(v)), 1 / (1 + abs(v)) ** 2


def ref_tanhshrink(v):
    return v - math.tanh(v), math.tanh(v) ** 2


CASES = [
    ("hardsigmoid", F.hardsigmoid, ref_hardsigmoid, "hardsigmoid", {}),
    ("hardswish", F.hardswish, ref_hardswish, "hardswish", {}),
    ("logsigmoid", F.logsigmoid, ref_logsigmoid, "logsigmoid", {}),
    ("mish", F.mish, ref_mish, "mish", {}),
    ("selu", F.selu, lambda v: ref_scaled_elu(v, SELU_ALPHA, SELU_SCALE, 1.0), "selu", {}),
    ("celu", lambda x: F.celu(x, 0.7), lambda v: ref_scaled_elu(v, 0.7, 1.0, 1 / 0.7, 1 / float(np.float32(0.7))), "celu",
     {"alpha": 0.7}),
    ("celu_default", F.celu, lambda v: ref_scaled_elu(v, 1.0, 1.0, 1.0), "celu", {}),
    ("threshold", lambda x: F.threshold(x, 0.5, -2.0), lambda v: ref_threshold(v, 0.5, -2.0),
     "threshold", {"threshold": 0.5, "value": -2.0}),
    ("hardshrink", F.hardshrink, lambda v: ref_hardshrink(v, 0.5), "hardshrink", {}),
    ("softshrink", lambda x: F.softshrink(x, 1.0), lambda v: ref_softshrink(v, 1.0), "softshrink",
     {"lambd": 1.0}),
    ("softsign", F.softsign, ref_softsign, "softsign", {}),
    ("tanhshrink", F.tanhshrink, ref_tanhshrink, "tanhshrink", {}),
]
IDS = [c[0] for c in CASES]
KINKS = [-3.0, 3.0, -1.0, 1.0, -0.5, 0.5, 0.0, -0.0]
SPECIAL = np.array(KINKS + [-30.0, -6.0, -2.5, -1e-3, 1e-3, 2.0, 2.5, 3.5, 6.0, 20.0, 45.0])
WITH_NONFINITE = np.concatenate([SPECIAL, [np.nan, np.inf, -np.inf]])


@pytest.mark.parametrize("name,fn,ref,_tname,_kw", CASES, ids=IDS)
def test_matches_math_reference_values_and_derivatives(name, fn, ref, _tname, _kw):
    assert_matches_math_reference(fn, ref, SPECIAL)


@pytest.mark.parametrize("name,fn,ref,_tname,_kw", CASES, ids=IDS)
def test_gradcheck_float64_away_from_kinks(name, fn, ref, _tname, _kw):
    v = np.random.default_rng(1).uniform(-5, 5, (3, 5))
    for kink in KINKS:
        v[np.abs(v - kink) < 0.05] += 0.2
    assert mp.gradcheck(fn, [mp.tensor(v, dtype="float64", requires_grad=True)])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,fn,ref,tname,kw", CASES, ids=IDS)
def test_torch_parity_values_and_gradients(name, fn, ref, tname, kw, dtype):
    pytest.importorskip("torch")
    r = np.random.default_rng(2)
    v = np.concatenate([WITH_NONFINITE, r.standard_normal(40) * 4]).astype(dtype)
    assert_torch_parity(name, fn, tname, kw, v, r.standard_normal(v.shape).astype(dtype))


@pytest.mark.parametrize("name,fn,ref,tname,kw", CASES, ids=IDS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_property_torch_parity_over_shapes_and_ties(name, fn, ref, tname, kw, data):
    pytest.importorskip("torch")
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    elements = st.one_of(st.sampled_from(KINKS + [2.0, np.nan, np.inf, -np.inf]),
                         st.floats(-50, 50, width=64))
    v = data.draw(hnp.arrays(np.float64, shape, elements=elements))
    x = mp.tensor(v, requires_grad=True)
    y = fn(x)
    y.backward(mp.tensor(np.ones(v.shape)) if y.ndim else None)
    ty, tgrad = torch_values_and_grads(tname, kw, v, np.ones(v.shape))
    assert y.shape == v.shape
    assert_close(y.numpy(), ty, rtol=1e-12, atol=1e-14, what="forward")
    assert_close(x.grad.numpy(), tgrad, rtol=1e-11, atol=1e-14, what="backward")


# --------------------------------------------------------------------------- softmin, glu
def _loop_softmin(a, axis):
    out = np.empty_like(a)
    moved, dst = np.moveaxis(a, axis, -1), np.moveaxis(out, axis, -1)
    for idx in np.ndindex(moved.shape[:-1]):
        row = [-float(v) for v in moved[idx]]
        m = max(row)
        e = [math.exp(v - m) for v in row]
        dst[idx] = [v / sum(e) for v in e]
    return out


def _loop_glu(a, axis):
    moved = np.moveaxis(a, axis, 0)
    half = moved.shape[0] // 2
    out = np.empty((half,) + moved.shape[1:])
    for i in range(half):
        for idx in np.ndindex(moved.shape[1:]):
            out[(i,) + idx] = moved[(i,) + idx] * _sig(float(moved[(half + i,) + idx]))
    return np.moveaxis(out, 0, axis)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmin_and_glu_match_loop_references(dim):
    a = np.random.default_rng(3).standard_normal((4, 6, 2))
    assert_close(F.softmin(mp.tensor(a), dim=dim).numpy(), _loop_softmin(a, dim), rtol=1e-12)
    assert_close(F.glu(mp.tensor(a), dim=dim if dim != -1 else 1).numpy(),
                 _loop_glu(a, dim if dim != -1 else 1), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmin_and_glu_torch_parity_with_nonfinite(dtype):
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(4)
    a = r.standard_normal((3, 8)).astype(dtype)
    a[0, 1], a[1, 2], a[2, 3] = np.nan, np.inf, -np.inf
    g = r.standard_normal((3, 4)).astype(dtype)
    for fn, tfn, gg in ((lambda t: F.glu(t, 1), lambda t: torch.nn.functional.glu(t, 1), g),
                        (lambda t: F.softmin(t, 1), lambda t: torch.nn.functional.softmin(t, 1),
                         np.tile(g, 2))):
        x = mp.tensor(a, requires_grad=True)
        y = fn(x)
        y.backward(mp.tensor(gg))
        tx = torch.tensor(a, requires_grad=True)
        ty = tfn(tx)
        ty.backward(torch.tensor(gg))
        tol = 1e-6 if dtype == "float32" else 1e-13
        assert_close(y.numpy(), ty.detach().numpy(), rtol=tol, atol=tol)
        assert_close(x.grad.numpy(), tx.grad.numpy(), rtol=10 * tol, atol=tol)


def test_softmin_and_glu_gradcheck():
    a = mp.tensor(np.random.default_rng(5).standard_normal((3, 4)), requires_grad=True)
    assert mp.gradcheck(lambda t: F.softmin(t, 0), [a])
    assert mp.gradcheck(lambda t: F.glu(t, 1), [a])


def test_softmax_family_without_dim_follows_torch_up_to_2d_and_asks_beyond():
    a = np.random.default_rng(6).standard_normal((2, 3))
    for fn in (F.softmax, F.log_softmax, F.softmin):
        assert_close(fn(mp.tensor(a)).numpy(), fn(mp.tensor(a), dim=1).numpy(), rtol=0)
        with pytest.raises(ValueError, match="pass dim for a 4-D input.*dim 1"):
            fn(mp.ones((1, 2, 3, 3)))


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="celu: alpha must be non-zero"):
        F.celu(mp.ones(2), alpha=0.0)
    with pytest.raises(ValueError, match="softshrink: lambd must be >= 0"):
        F.softshrink(mp.ones(2), -1.0)
    with pytest.raises(ValueError, match="glu: the size of dim 1 must be even"):
        F.glu(mp.ones((2, 3)), 1)
    with pytest.raises(ValueError, match="glu: dim must be an int"):
        F.glu(mp.ones((2, 4)), 2)
    with pytest.raises(TypeError, match="hardswish: input must be float32 or float64"):
        F.hardswish(mp.tensor([1, 2]))
    with pytest.raises(TypeError, match="threshold: value must be a real number"):
        F.threshold(mp.ones(2), 0.0, "x")
    x = mp.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        F.hardsigmoid(x, inplace=True)
    y = mp.tensor([-4.0, 4.0])
    assert F.hardswish(y, inplace=True) is y and y.numpy().tolist() == [0.0, 4.0]


# --------------------------------------------------------------------------- in-place forms, dropout1d/3d
@pytest.mark.parametrize("name,call,out_of_place", [
    ("relu_", lambda x: F.relu_(x), lambda x: F.relu(x)),
    ("elu_", lambda x: F.elu_(x, 0.5), lambda x: F.elu(x, 0.5)),
    ("leaky_relu_", lambda x: F.leaky_relu_(x, 0.2), lambda x: F.leaky_relu(x, 0.2)),
    ("hardtanh_", lambda x: F.hardtanh_(x, -0.5, 0.5), lambda x: F.hardtanh(x, -0.5, 0.5)),
    ("celu_", lambda x: F.celu_(x, 2.0), lambda x: F.celu(x, 2.0)),
    ("selu_", lambda x: F.selu_(x), lambda x: F.selu(x)),
    ("threshold_", lambda x: F.threshold_(x, 0.1, 7.0), lambda x: F.threshold(x, 0.1, 7.0)),
    ("relu(inplace=True)", lambda x: F.relu(x, inplace=True), lambda x: F.relu(x)),
])
def test_inplace_forms_write_over_the_input_and_refuse_leaves(name, call, out_of_place):
    v = np.random.default_rng(7).standard_normal(9)
    want = out_of_place(mp.tensor(v)).numpy()
    x = mp.tensor(v)
    assert call(x) is x
    assert_close(x.numpy(), want, rtol=0)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        call(mp.tensor(v, requires_grad=True))


@pytest.mark.parametrize("fn,shape", [(F.dropout1d, (4, 5, 6)), (F.dropout1d, (5, 6)),
                                      (F.dropout3d, (2, 5, 2, 3, 2)), (F.dropout3d, (5, 2, 3, 2))])
def test_channel_dropout_zeroes_whole_channels_and_scales_the_rest(fn, shape):
    x = mp.tensor(np.random.default_rng(8).uniform(1, 2, shape), requires_grad=True)
    y = fn(x, 0.4, generator=np.random.default_rng(9))
    lead = shape[:2] if len(shape) in (3, 5) else (shape[0],)
    ratio = (y.numpy() / x.numpy()).reshape(lead + (-1,))
    assert np.allclose(ratio, ratio[..., :1], rtol=1e-6)  # one draw per channel
    assert set(np.unique(ratio).round(6)) <= {0.0, round(1 / 0.6, 6)}
    y.sum().backward()
    assert_close(x.grad.numpy(), y.numpy() / x.numpy(), rtol=1e-6)
    assert fn(x, 0.4, training=False) is x


def test_channel_dropout_errors():
    with pytest.raises(ValueError, match="dropout1d: input must be 3-D"):
        F.dropout1d(mp.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="dropout3d: p must be a probability"):
        F.dropout3d(mp.ones((2, 3, 4, 5, 6)), 1.5)


# --------------------------------------------------------------------------- the rest of torch's names
TYPING_NAMES = {"Callable", "DType", "Optional", "Tensor", "ScalingType", "SwizzleType", "List",
                "Union", "Tuple", "BroadcastingList1", "BroadcastingList2", "BroadcastingList3"}


def test_every_torch_functional_name_exists_or_says_what_to_use():
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    generic = []
    for name in sorted(n for n in dir(TF) if not n.startswith("_") and callable(getattr(TF, n))):
        if name in TYPING_NAMES or hasattr(F, name):
            continue
        with pytest.raises(AttributeError, match=f"has no attribute '{name}': ") as err:
            getattr(F, name)
        if "see the README" in str(err.value):
            generic.append(name)
    assert generic == []


def test_missing_names_keep_hasattr_false_and_the_hint_runs():
    assert not hasattr(F, "grid_sample") and not hasattr(F, "conv3d")
    x = mp.tensor(np.arange(24.0).reshape(1, 4, 2, 3))  # the channel_shuffle hint, g = 2
    y = x.reshape(1, 2, 2, 2, 3).transpose(1, 2).reshape(1, 4, 2, 3)
    assert y.numpy()[0, :, 0, 0].tolist() == [0.0, 12.0, 6.0, 18.0]
    v = np.random.default_rng(10).standard_normal((3, 5))
    rms = mp.tensor(v) * ((mp.tensor(v) * mp.tensor(v)).mean(-1, keepdim=True) + 1e-6).rsqrt()
    assert_close(rms.numpy(), v / np.sqrt((v * v).mean(-1, keepdims=True) + 1e-6), rtol=1e-6)


def test_softmax_family_takes_one_int_dim():
    # a dims tuple used to be cut to its first entry (found by the reliability fuzz)
    for fn in (F.softmax, F.log_softmax, F.softmin):
        with pytest.raises(TypeError, match="dim must be an int"):
            fn(mp.ones((2, 3)), dim=(0, 1))


# --------------------------------------------------------------------------- found by the fuzz's new families
@pytest.mark.parametrize("call,name", [
    (lambda x: mp.sort(x, descending=2.0), "descending"),
    (lambda x: mp.argsort(x, descending="yes"), "descending"),
    (lambda x: mp.topk(x, 1, largest=1), "largest"),
    (lambda x: mp.topk(x, 1, sorted=None), "sorted"),
    (lambda x: mp.nonzero(x, as_tuple=1.5), "as_tuple"),
    (lambda x: mp.prod(x, 0, keepdim=2.0), "keepdim"),
    (lambda x: mp.norm(x, 2.0, 0, keepdim=(2, None)), "keepdim"),
])
def test_tensor_op_flags_must_be_bools(call, name):
    # a truthy non-bool used to be taken as True (PyTorch raises a TypeError)
    with pytest.raises(TypeError, match=f"{name} must be a bool"):
        call(mp.tensor([3.0, 1.0, 2.0]))


def test_split_names_a_non_int_size_and_add_keeps_a_numpy_alpha_exact():
    with pytest.raises(TypeError, match="split_size_or_sections must be an int or a list"):
        mp.split(mp.ones(4), 2.0)
    torch = pytest.importorskip("torch")
    x = mp.tensor(np.array([0.5]))
    x.add_(-0.25783711941954557, alpha=np.float32(2.0))  # was rounded through float32
    t = torch.tensor([0.5], dtype=torch.float64).add_(-0.25783711941954557, alpha=np.float32(2.0))
    assert x.numpy().tolist() == t.tolist()
