"""minipool's upsampling against the loop reference in ``tests/references/upsampling_reference.py``.

Hypothesis draws ranks, sizes, explicit output sizes or scale factors
(integer and fractional, per axis, up and down), align_corners and
recompute_scale_factor, over float32/float64 inputs that sometimes hold
+-inf and NaN.  Nearest modes must be bit-identical to the reference (values
are picked, never computed; integer cotangents make the backward sums exact);
the interpolating modes agree to float rounding.  Also: float64 gradchecks,
PyTorch's documented worked values, thread-count independence, fast paths
against the general loops, channels_last, non-contiguous input, bad
arguments, pixel (un)shuffle and the layers.
"""
import math
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from minipool._kernels import upsampling as kernels
from minipool.ops import upsampling as U
from tests.helpers import fixed_threads
from tests.references import upsampling_reference as R
from tests.upsampling.upsampling_cases import FRACTIONS, RANKS

FAST = settings(max_examples=25, deadline=None)
NEAREST = ("nearest", "nearest-exact")
INTERPOLATING = ("linear", "bilinear", "bicubic", "trilinear")
MAX_SIDE = {1: 9, 2: 6, 3: 4}  # per spatial rank: keeps the Python reference fast


@dataclass
class Case:
    mode: str
    shape: tuple
    dtype: type
    seed: int
    special: bool
    kwargs: dict = field(default_factory=dict)

    def reference_args(self):
        kw = self.kwargs
        return dict(size=kw.get("size"), scale_factor=kw.get("scale_factor"),
                    align_corners=bool(kw.get("align_corners")),
                    recompute_scale_factor=bool(kw.get("recompute_scale_factor")))


@st.composite
def cases(draw, mode, ranks=None):
    rank = draw(st.sampled_from(ranks or RANKS[mode]))
    n = rank - 2
    side = MAX_SIDE[n]
    in_sizes = tuple(draw(st.integers(1, side)) for _ in range(n))
    batch = draw(st.sampled_from([(1, 1), (2, 1), (1, 3)]))
    kwargs = {}
    if draw(st.booleans()):
        sizes = tuple(draw(st.integers(1, 2 * side)) for _ in range(n))
        kwargs["size"] = sizes[0] if (n == 1 and draw(st.booleans())) else sizes
    else:
        factor = st.one_of(st.integers(1, 4), st.sampled_from(FRACTIONS), st.floats(0.2, 4.0))
        if draw(st.booleans()):
            kwargs["scale_factor"] = tuple(draw(factor) for _ in range(n))
        else:
            kwargs["scale_factor"] = draw(factor)
        out = R.output_sizes(in_sizes, scale_factor=kwargs["scale_factor"])
        assume(all(1 <= o <= 3 * side for o in out))
        if mode != "area":
            kwargs["recompute_scale_factor"] = draw(st.sampled_from([None, False, True]))
    if mode in INTERPOLATING:
        kwargs["align_corners"] = draw(st.sampled_from([None, False, True]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return Case(mode, batch + in_sizes, dtype, draw(st.integers(0, 2 ** 16)), draw(st.booleans()),
                kwargs)


def make_input(case):
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal(case.shape).astype(case.dtype)
    if case.special and x.size > 2:
        flat = x.reshape(-1)
        where = rng.choice(flat.size, size=min(3, flat.size), replace=False)
        flat[where] = rng.choice([np.inf, -np.inf, np.nan], size=len(where))
    return x


def integer_cotangent(seed, shape, dtype):
    """Small integers: every partial sum is exact, so summation order cannot matter."""
    return np.random.default_rng(seed + 1).integers(-4, 5, size=shape).astype(dtype)


def run(x, mode, kwargs, g=None):
    leaf = mp.tensor(x, requires_grad=True)
    out = F.interpolate(leaf, mode=mode, **kwargs)
    if g is None:
        return out.numpy(), None
    out.backward(g)
    return out.numpy(), leaf.grad.numpy()


def close(actual, expected, dtype, magnitude, what):
    """Agreement to float rounding, scaled by the size of the values summed."""
    eps = 4e-6 if np.dtype(dtype) == np.float32 else 1e-13
    np.testing.assert_allclose(actual, expected, rtol=eps, atol=eps * max(1.0, magnitude),
                               err_msg=what)


# --------------------------------------------------------------------------- reference
@pytest.mark.parametrize("mode", NEAREST)
@FAST
@given(data=st.data())
def test_nearest_modes_are_bit_identical_to_reference(mode, data):
    case = data.draw(cases(mode))
    x = make_input(case)
    args = case.reference_args()
    ref = R.nearest_gather(x, mode, args["size"], args["scale_factor"],
                           args["recompute_scale_factor"])
    g = integer_cotangent(case.seed, ref.shape, case.dtype)
    out, grad = run(x, mode, case.kwargs, g)
    np.testing.assert_array_equal(out, ref)
    ref_grad = R.interpolate_backward(g, x.shape, x.dtype, mode, **case.reference_args())
    np.testing.assert_array_equal(grad, ref_grad.astype(case.dtype))


@pytest.mark.parametrize("mode", ("linear", "bilinear", "bicubic", "trilinear", "area"))
@FAST
@given(data=st.data())
def test_interpolating_modes_match_reference(mode, data):
    case = data.draw(cases(mode))
    x = make_input(case)
    ref = R.interpolate(x, mode, **case.reference_args())
    g = np.random.default_rng(case.seed + 2).standard_normal(ref.shape).astype(case.dtype)
    out, grad = run(x, mode, case.kwargs, g)
    assert out.shape == ref.shape and out.dtype == case.dtype
    finite = np.isfinite(x)
    close(out, ref, case.dtype, float(np.abs(x[finite]).max(initial=0)), "forward")
    ref_grad = R.interpolate_backward(g, x.shape, x.dtype, mode, **case.reference_args())
    close(grad, ref_grad, case.dtype, 4 * float(np.abs(ref_grad).max(initial=0)), "gradient")


def test_reference_nearest_gather_agrees_with_reference_weights():
    # the reference's two nearest formulations (gather vs one-tap weights) must agree
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 5))
    for mode in NEAREST:
        for sf in (0.5, 1.7, 2.1, 3):
            np.testing.assert_array_equal(R.nearest_gather(x, mode, scale_factor=sf),
                                          R.interpolate(x, mode, scale_factor=sf))


# --------------------------------------------------------------------------- worked values
def test_worked_nearest_example_fills_2x2_blocks():
    out = F.interpolate(mp.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), scale_factor=2).numpy()[0, 0]
    np.testing.assert_array_equal(out, [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])


def test_documented_pytorch_values():
    # values measured with torch 2.13 (docs/semantics.md sections 6 and 10-17)
    ramp3 = mp.tensor([[[0.0, 1.0, 2.0]]], dtype="float64")
    np.testing.assert_allclose(F.interpolate(ramp3, scale_factor=1.7, mode="linear").numpy()[0, 0],
                               [0, 0.382, 0.971, 1.559, 2], atol=6e-4)
    np.testing.assert_allclose(F.interpolate(ramp3, scale_factor=1.7, mode="linear",
                                             recompute_scale_factor=True).numpy()[0, 0],
                               [0, 0.4, 1, 1.6, 2], atol=1e-12)
    two = mp.tensor([[[0.0, 10.0]]])
    np.testing.assert_allclose(F.interpolate(two, size=4, mode="linear").numpy()[0, 0],
                               [0, 2.5, 7.5, 10])
    np.testing.assert_allclose(F.interpolate(two, size=4, mode="linear", align_corners=True)
                               .numpy()[0, 0], [0, 10 / 3, 20 / 3, 10], rtol=1e-6)
    five = mp.arange(5.0).reshape(1, 1, 5)
    assert F.interpolate(five, size=3).numpy().ravel().tolist() == [0, 1, 3]
    assert F.interpolate(five, size=3, mode="nearest-exact").numpy().ravel().tolist() == [0, 2, 4]
    assert F.interpolate(five, size=2).numpy().ravel().tolist() == [0, 2]
    assert F.interpolate(five, size=2, mode="nearest-exact").numpy().ravel().tolist() == [1, 3]
    np.testing.assert_allclose(F.interpolate(five, size=3, mode="area").numpy().ravel(),
                               [0.5, 2.0, 3.5])
    step = mp.tensor([[[[0.0, 0.0, 1.0, 1.0]]]])
    overshoot = F.interpolate(step, size=(1, 8), mode="bicubic").numpy().ravel()
    assert overshoot.min() == pytest.approx(-0.105, abs=1e-3)  # Keys' kernel rings
    channels = mp.arange(8.0).reshape(1, 8, 1, 1)
    shuffled = F.pixel_shuffle(channels, 2).numpy()[0]
    np.testing.assert_array_equal(shuffled[0], [[0, 1], [2, 3]])
    np.testing.assert_array_equal(shuffled[1], [[4, 5], [6, 7]])


@pytest.mark.parametrize("mode, n_in, kwargs", [
    ("nearest", 254, dict(size=354)), ("nearest", 96, dict(size=304)),
    ("nearest", 246, dict(size=102)), ("nearest", 168, dict(scale_factor=3 / 7)),
    ("nearest-exact", 96, dict(size=304)), ("nearest-exact", 214, dict(size=571))])
def test_nearest_index_precision_follows_the_input_dtype(mode, n_in, kwargs):
    # the step and the product are float32 for float32 inputs and float64 for float64 ones,
    # then floorf: these cases pick different pixels in the two precisions
    picked = {}
    for dtype in (np.float32, np.float64):
        ramp = np.arange(n_in, dtype=dtype).reshape(1, 1, n_in)
        picked[dtype] = F.interpolate(ramp, mode=mode, **kwargs).numpy().ravel().astype(int)
        expected = R.nearest_gather(ramp, mode, kwargs.get("size"), kwargs.get("scale_factor"))
        np.testing.assert_array_equal(picked[dtype], expected.ravel().astype(int))
    assert not np.array_equal(picked[np.float32], picked[np.float64])


def test_nearest_uses_the_given_factor_not_a_shortcut():
    # 5 -> 10 with scale_factor=2.1 reads floor(o / 2.1), not o // 2 (see the module doc)
    ramp = mp.arange(5.0).reshape(1, 1, 5)
    out = F.interpolate(ramp, scale_factor=2.1).numpy().ravel()
    assert out.tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4]
    assert F.interpolate(ramp, scale_factor=2).numpy().ravel().tolist() == [0, 0, 1, 1, 2, 2, 3,
                                                                            3, 4, 4]


def test_linear_copy_at_equal_size_keeps_pytorch_nan_next_to_inf():
    # ATen copies with taps (1, 0) on the same pixel: inf * 1 + inf * 0 is NaN
    x = mp.tensor([[[1.0, np.inf, 3.0]]])
    out = F.interpolate(x, size=3, mode="linear").numpy().ravel()
    assert out[0] == 1 and np.isnan(out[1]) and out[2] == 3


def test_upsample_helpers_are_interpolate():
    x = np.random.default_rng(3).standard_normal((1, 2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(F.upsample(x, scale_factor=2, mode="bilinear").numpy(),
                                  F.interpolate(x, scale_factor=2, mode="bilinear").numpy())
    np.testing.assert_array_equal(F.upsample_nearest(x, size=(5, 7)).numpy(),
                                  F.interpolate(x, size=(5, 7)).numpy())
    np.testing.assert_array_equal(F.upsample_bilinear(x, scale_factor=2).numpy(),
                                  F.interpolate(x, scale_factor=2, mode="bilinear",
                                                align_corners=True).numpy())
    np.testing.assert_array_equal(
        F.interpolate(x, scale_factor=2, mode="bicubic").numpy(),
        F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False).numpy())


# --------------------------------------------------------------------------- gradients
GRADCHECK_CASES = [
    ("nearest", (1, 2, 5), dict(scale_factor=1.7)),
    ("nearest", (1, 1, 3, 4), dict(size=(7, 2))),
    ("nearest-exact", (1, 1, 2, 3, 4), dict(scale_factor=(1.5, 0.7, 2))),
    ("linear", (2, 1, 5), dict(scale_factor=2.1)),
    ("linear", (1, 2, 6), dict(size=4, align_corners=True)),
    ("bilinear", (1, 2, 4, 5), dict(scale_factor=2)),
    ("bilinear", (1, 1, 5, 4), dict(size=(3, 7), align_corners=True)),
    ("bicubic", (1, 1, 4, 5), dict(scale_factor=(1.5, 0.6))),
    ("bicubic", (1, 1, 3, 3), dict(size=(5, 4), align_corners=True)),
    ("trilinear", (1, 1, 3, 2, 4), dict(scale_factor=(1.3, 2, 0.5))),
    ("area", (1, 2, 7), dict(size=3)),
    ("area", (1, 1, 5, 6), dict(scale_factor=0.6)),
    ("area", (1, 1, 3, 4, 5), dict(size=(2, 3, 4))),
]


@pytest.mark.parametrize("mode, shape, kwargs", GRADCHECK_CASES)
def test_gradcheck_float64(mode, shape, kwargs):
    x = mp.tensor(np.random.default_rng(5).standard_normal(shape), dtype="float64",
                  requires_grad=True)
    assert mp.gradcheck(lambda t: F.interpolate(t, mode=mode, **kwargs), [x])


def test_gradcheck_pixel_shuffle_and_channels_last():
    rng = np.random.default_rng(6)
    x = mp.tensor(rng.standard_normal((2, 8, 2, 3)), dtype="float64", requires_grad=True)
    assert mp.gradcheck(lambda t: F.pixel_shuffle(t, 2), [x])
    y = mp.tensor(rng.standard_normal((1, 2, 4, 6)), dtype="float64", requires_grad=True)
    assert mp.gradcheck(lambda t: F.pixel_unshuffle(t, 2), [y])
    z = mp.tensor(rng.standard_normal((1, 3, 4, 2)), dtype="float64", requires_grad=True)
    assert mp.gradcheck(lambda t: F.interpolate(t, scale_factor=1.5, mode="bicubic",
                                                data_format="channels_last"), [z])


def test_no_graph_under_no_grad():
    x = mp.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    with mp.no_grad():
        y = F.interpolate(x, scale_factor=2, mode="bilinear")
    assert not y.requires_grad


# --------------------------------------------------------------------------- threads, fast paths
THREAD_CASES = [
    ("nearest", dict(scale_factor=2)),
    ("nearest", dict(scale_factor=(1.7, 0.6))),
    ("nearest-exact", dict(size=(50, 31))),
    ("bilinear", dict(scale_factor=2)),
    ("bilinear", dict(scale_factor=1.3, align_corners=True)),
    ("bicubic", dict(scale_factor=(2, 0.7))),
    ("area", dict(size=(11, 13))),
]


@pytest.mark.parametrize("mode, kwargs", THREAD_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_and_two_threads_are_bit_identical(mode, kwargs, dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 40, 36)).astype(dtype)
    results = []
    for threads in (1, 2):
        with fixed_threads(threads):
            out_shape = F.interpolate(x, mode=mode, **kwargs).shape
            g = np.random.default_rng(8).standard_normal(out_shape).astype(dtype)
            results.append(run(x, mode, kwargs, g))
    for a, b in zip(results[0], results[1]):
        assert a.tobytes() == b.tobytes()


def test_trilinear_one_and_two_threads_are_bit_identical():
    x = np.random.default_rng(9).standard_normal((2, 3, 9, 10, 11))
    results = []
    for threads in (1, 2):
        with fixed_threads(threads):
            g = np.random.default_rng(10).standard_normal((2, 3, 13, 20, 8))
            results.append(run(x, "trilinear", dict(size=(13, 20, 8)), g))
    for a, b in zip(results[0], results[1]):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("mode, kwargs", [("nearest", dict(scale_factor=(2, 1.5))),
                                          ("bilinear", dict(scale_factor=2)),
                                          ("bicubic", dict(size=(30, 50)))])
def test_channels_last_one_and_two_threads_are_bit_identical(mode, kwargs):
    x = np.random.default_rng(23).standard_normal((3, 20, 24, 16)).astype(np.float32)
    results = []
    for threads in (1, 2):
        with fixed_threads(threads):
            leaf = mp.tensor(x, requires_grad=True)
            out = F.interpolate(leaf, mode=mode, data_format="channels_last", **kwargs)
            out.backward(np.random.default_rng(24).standard_normal(out.shape).astype(np.float32))
            results.append((out.numpy(), leaf.grad.numpy()))
    for a, b in zip(results[0], results[1]):
        assert a.tobytes() == b.tobytes()


def test_kernel_threads_really_uses_two_threads_for_the_thread_tests():
    from minipool._config import kernel_threads
    with fixed_threads(2):
        assert kernel_threads(12, 3 * 4 * 40 * 36 * 5) == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [3, 4, 17])
def test_bilinear_x2_fast_path_is_bit_identical_to_general_loop(dtype, width):
    axis = U.tap_axis(width, 2 * width, 2.0, False, False, np.dtype(dtype).name)
    assert axis.x2[0] < axis.x2[1]
    assert width < 5 or axis.x2_t[0] < axis.x2_t[1]
    rows = U.tap_axis(5, 10, 2.0, False, False, np.dtype(dtype).name)
    depth = U._identity_taps(1, np.dtype(dtype).name)
    rng = np.random.default_rng(width)
    x = rng.standard_normal((3, 1, 5, width, 1)).astype(dtype)
    x[0, 0, 1, 1] = np.inf  # zero-weight taps must still see it (0 * inf = NaN)
    g = rng.standard_normal((3, 1, 10, 2 * width, 1)).astype(dtype)
    outs, grads = [], []
    for fwd_range, bwd_range in ((axis.x2, axis.x2_t), ((0, 0), (0, 0))):
        out = np.empty((3, 1, 10, 2 * width, 1), dtype)
        work = np.empty((1, 5 * 2 * width + 10 * 2 * width + 1), dtype)
        kernels.taps_forward(x, out, work, depth.idx, depth.w, depth.need, False,
                             rows.idx, rows.w, rows.need, True,
                             axis.idx, axis.w, True, *fwd_range, 1)
        gx = np.empty_like(x)
        kernels.taps_backward(g, gx, work, depth.t_ptr, depth.t_src, depth.t_w, False,
                              rows.t_ptr, rows.t_src, rows.t_w, True,
                              axis.t_ptr, axis.t_src, axis.t_w, True, *bwd_range, 1)
        outs.append(out)
        grads.append(gx)
    assert outs[0].tobytes() == outs[1].tobytes()
    assert grads[0].tobytes() == grads[1].tobytes()


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_nearest_replication_fast_path_is_bit_identical_to_general_gather(factor):
    rng = np.random.default_rng(factor)
    x = rng.standard_normal((4, 1, 3, 5, 1)).astype(np.float32)
    g = rng.standard_normal((4, 1, 3 * factor, 5 * factor, 1)).astype(np.float32)
    rows = np.arange(3 * factor) // factor
    cols = np.arange(5 * factor) // factor
    depth = np.zeros(1, np.intp)
    outs, grads = [], []
    for repeat in (factor, 0):
        out = np.empty((4, 1, 3 * factor, 5 * factor, 1), np.float32)
        kernels.nearest_forward(x, out, depth, rows, cols, repeat, 1)
        gx = np.empty_like(x)
        kernels.nearest_backward(g, gx, depth, rows, cols, repeat, 1)
        outs.append(out)
        grads.append(gx)
    assert outs[0].tobytes() == outs[1].tobytes()
    assert grads[0].tobytes() == grads[1].tobytes()
    np.testing.assert_array_equal(outs[0], np.repeat(np.repeat(x, factor, 2), factor, 3))


# --------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "bilinear", "bicubic"])
@FAST
@given(data=st.data())
def test_channels_last_is_bit_identical_to_channels_first(mode, data):
    # drawn 4-d (assume() dropped 2 of 3 nearest cases: hypothesis' filter health check
    # failed with --hypothesis-seed=41328974035706890955164865902639785704)
    case = data.draw(cases(mode, ranks=(4,)))
    x = make_input(case)
    g = np.random.default_rng(case.seed + 3).standard_normal(
        F.interpolate(x, mode=mode, **case.kwargs).shape).astype(case.dtype)
    out, grad = run(x, mode, case.kwargs, g)
    leaf = mp.tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), requires_grad=True)
    out_last = F.interpolate(leaf, mode=mode, data_format="channels_last", **case.kwargs)
    out_last.backward(np.ascontiguousarray(g.transpose(0, 2, 3, 1)))
    assert bits_up_to_nan_payload(out_last.numpy()) == bits_up_to_nan_payload(out.transpose(0, 2, 3, 1))
    assert bits_up_to_nan_payload(leaf.grad.numpy()) == bits_up_to_nan_payload(grad.transpose(0, 2, 3, 1))


def bits_up_to_nan_payload(a):
    """The bytes of ``a`` with every NaN made the same NaN.  Which NaN comes out when an
    input NaN meets one made by -inf * 0 (sign bit, payload) depends on whether the
    compiler used vector or scalar code for that element, so layouts may differ there;
    every other value, and where the NaNs are, must be identical."""
    a = np.array(a, copy=True)
    a[np.isnan(a)] = np.nan
    return a.tobytes()


@pytest.mark.parametrize("mode, kwargs", [
    ("nearest", dict(scale_factor=2)), ("nearest-exact", dict(size=(5, 9))),
    ("bilinear", dict(scale_factor=(1.5, 2))), ("bilinear", dict(size=(3, 7), align_corners=True)),
    ("bicubic", dict(scale_factor=0.7)), ("area", dict(size=(2, 3)))])
def test_channels_last_equals_nchw_transposed(mode, kwargs):
    rng = np.random.default_rng(11)
    nchw = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    g = rng.standard_normal(F.interpolate(nchw, mode=mode, **kwargs).shape).astype(np.float32)
    out, grad = run(nchw, mode, kwargs, g)
    nhwc = mp.tensor(nchw.transpose(0, 2, 3, 1), requires_grad=True)
    out_last = F.interpolate(nhwc, mode=mode, data_format="channels_last", **kwargs)
    out_last.backward(g.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(out_last.numpy(), out.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(nhwc.grad.numpy(), grad.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic", "area"])
def test_non_contiguous_input_and_gradient(mode):
    rng = np.random.default_rng(12)
    base = rng.standard_normal((2, 3, 9, 12)).astype(np.float64)
    view = base[:, ::-1, 1::2, ::-2]  # negative and non-unit strides
    assert not view.flags.c_contiguous
    kwargs = dict(scale_factor=1.6)
    expected = R.interpolate(np.ascontiguousarray(view), mode, scale_factor=1.6)
    leaf = mp.Tensor(view, requires_grad=True)
    out = F.interpolate(leaf, mode=mode, **kwargs)
    close(out.numpy(), expected, np.float64, float(np.abs(view).max()), "forward")
    g_base = rng.standard_normal(out.shape[:3] + (2 * out.shape[3],))
    g = g_base[..., ::2]  # a non-contiguous upstream gradient
    out.backward(g)
    ref_grad = R.interpolate_backward(g, view.shape, view.dtype, mode, scale_factor=1.6)
    close(leaf.grad.numpy(), ref_grad, np.float64, float(np.abs(ref_grad).max()), "gradient")


def test_empty_batch():
    x = mp.tensor(np.zeros((0, 3, 4, 4), np.float32), requires_grad=True)
    y = F.interpolate(x, scale_factor=2, mode="bilinear")
    assert y.shape == (0, 3, 8, 8)
    y.backward(np.zeros(y.shape, np.float32))
    assert x.grad.shape == (0, 3, 4, 4)


def test_uint8_nearest_is_an_exact_gather():
    x = np.random.default_rng(13).integers(0, 256, (1, 3, 5, 4)).astype(np.uint8)
    for mode in NEAREST:
        out = F.interpolate(x, scale_factor=1.7, mode=mode)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out.numpy(), R.nearest_gather(x, mode, scale_factor=1.7))


# --------------------------------------------------------------------------- bad input
X4 = np.zeros((1, 1, 4, 4), np.float32)


@pytest.mark.parametrize("call, error, words", [
    (lambda: F.interpolate(X4), ValueError, "exactly one of size and scale_factor"),
    (lambda: F.interpolate(X4, size=2, scale_factor=2), ValueError, "exactly one"),
    (lambda: F.interpolate(X4, scale_factor=2, align_corners=True), ValueError, "align_corners"),
    (lambda: F.interpolate(X4, scale_factor=2, mode="area", align_corners=False), ValueError,
     "align_corners"),
    (lambda: F.interpolate(X4, scale_factor=2, mode="nearest-exact", align_corners=True),
     ValueError, "align_corners"),
    (lambda: F.interpolate(X4, scale_factor=2, mode="linear"), ValueError, "3-D"),
    (lambda: F.interpolate(X4[0], scale_factor=2, mode="bilinear"), ValueError, "4-D"),
    (lambda: F.interpolate(X4, scale_factor=2, mode="trilinear"), ValueError, "5-D"),
    (lambda: F.interpolate(X4[0, 0], scale_factor=2), ValueError, "3-D, 4-D or 5-D"),
    (lambda: F.interpolate(X4, scale_factor=2, mode="cubic"), ValueError, "mode"),
    (lambda: F.interpolate(X4, size=0), ValueError, "size"),
    (lambda: F.interpolate(X4, size=(3, -1)), ValueError, "size"),
    (lambda: F.interpolate(X4, size=(3, 3, 3)), ValueError, "size"),
    (lambda: F.interpolate(X4, size=2.5), TypeError, "size"),
    (lambda: F.interpolate(X4, scale_factor=0), ValueError, "scale_factor"),
    (lambda: F.interpolate(X4, scale_factor=-2), ValueError, "scale_factor"),
    (lambda: F.interpolate(X4, scale_factor=0.1), ValueError, "scale_factor"),
    (lambda: F.interpolate(X4, scale_factor=math.inf), ValueError, "scale_factor"),
    (lambda: F.interpolate(X4, scale_factor=(2, 2, 2)), ValueError, "scale_factor"),
    (lambda: F.interpolate(X4, scale_factor="2"), TypeError, "scale_factor"),
    (lambda: F.interpolate(X4, size=8, recompute_scale_factor=True), ValueError,
     "recompute_scale_factor"),
    (lambda: F.interpolate(X4, scale_factor=2, mode="bilinear", align_corners="yes"), TypeError,
     "align_corners"),
    (lambda: F.interpolate(X4.astype(np.int64), scale_factor=2), TypeError, "int64"),
    (lambda: F.interpolate(X4.astype(np.int32), scale_factor=2, mode="bilinear"), TypeError,
     "int32"),
    (lambda: F.interpolate(X4.astype(np.uint8), scale_factor=2, mode="area"), TypeError,
     "uint8"),
    (lambda: F.interpolate(X4.astype(bool), scale_factor=2), TypeError, "bool"),
    (lambda: F.interpolate(X4.astype(np.float16), scale_factor=2), TypeError, "float16"),
    (lambda: F.interpolate(np.zeros((1, 1, 0, 4), np.float32), scale_factor=2), ValueError,
     "spatial"),
    (lambda: F.interpolate(X4[0], scale_factor=2, data_format="channels_last"), ValueError,
     "data_format"),
    (lambda: F.interpolate(X4, scale_factor=2, data_format="NHWC"), ValueError, "data_format"),
    (lambda: F.interpolate(X4, scale_factor=0.5, mode="nearest", antialias=True), ValueError,
     "antialias"),
    (lambda: F.interpolate(X4[..., :1], scale_factor=1e30, mode="area"), ValueError,
     "scale_factor=1e\\+30"),
    (lambda: F.interpolate(X4[0], size=2 ** 63), ValueError, "size=9223372036854775808"),
    (lambda: F.interpolate(X4, size=(2 ** 31 - 1, 2 ** 31 - 1)), ValueError, "size="),
    (lambda: F.interpolate(X4, size=(2 ** 24, 2 ** 24), mode="bilinear"), ValueError,
     "size=.*cannot be allocated"),
    (lambda: nn.Upsample(scale_factor=1e7)(X4), ValueError, "scale_factor="),
    (lambda: nn.UpSampling2D(size=2 ** 40)(mp.ones(1, 2, 2, 1)), ValueError, "size="),
    (lambda: F.pixel_shuffle(np.zeros((0, 1, 2)), 10 ** 30), ValueError, "upscale_factor="),
    (lambda: F.pixel_unshuffle(np.zeros((1, 1, 0, 0)), 10 ** 30), ValueError,
     "downscale_factor="),
    (lambda: F.pixel_shuffle(np.zeros((1, 3, 2, 2)), 2), ValueError, "upscale_factor"),
    (lambda: F.pixel_shuffle(np.zeros((1, 4, 2, 2)), 0), ValueError, "upscale_factor"),
    (lambda: F.pixel_shuffle(np.zeros((1, 4, 2, 2)), 2.0), TypeError, "upscale_factor"),
    (lambda: F.pixel_shuffle(np.zeros((4, 2)), 2), ValueError, "3 dimensions"),
    (lambda: F.pixel_unshuffle(np.zeros((1, 1, 4, 5)), 2), ValueError, "downscale_factor"),
    (lambda: F.pixel_unshuffle(np.zeros((1, 1, 4, 4)), -1), ValueError, "downscale_factor"),
    (lambda: nn.Upsample(mode="bilinear")(X4), ValueError, "exactly one"),
    (lambda: nn.Upsample(scale_factor=2, mode="box")(X4), ValueError, "mode"),
    (lambda: nn.UpSampling2D(size=(2, 2.5)), TypeError, "size"),
    (lambda: nn.UpSampling2D(size=0), ValueError, "size"),
    (lambda: nn.UpSampling2D(interpolation="bicubic"), ValueError, "interpolation"),
    (lambda: nn.UpSampling2D(data_format="NHWC"), ValueError, "data_format"),
    (lambda: nn.UpSampling2D()(mp.ones(1, 4, 4)), ValueError, "4-D"),
])
def test_bad_arguments_raise_clear_errors(call, error, words):
    with pytest.raises(error, match=words):
        call()


# --------------------------------------------------------------------------- pixel shuffle
@pytest.mark.parametrize("shape, r", [((1, 8, 2, 3), 2), ((2, 18, 1, 2), 3), ((4, 3, 3), 1),
                                      ((2, 1, 4, 2, 2), 2)])
def test_pixel_shuffle_matches_reference_and_inverts(shape, r):
    x = np.random.default_rng(14).standard_normal(shape).astype(np.float32)
    leaf = mp.tensor(x, requires_grad=True)
    out = F.pixel_shuffle(leaf, r)
    np.testing.assert_array_equal(out.numpy(), R.pixel_shuffle(x, r))
    back = F.pixel_unshuffle(out, r)
    np.testing.assert_array_equal(back.numpy(), x)
    np.testing.assert_array_equal(R.pixel_unshuffle(R.pixel_shuffle(x, r), r), x)
    g = np.random.default_rng(15).standard_normal(out.shape).astype(np.float32)
    out.backward(g)
    np.testing.assert_array_equal(leaf.grad.numpy(), R.pixel_unshuffle(g, r))


def test_pixel_unshuffle_matches_reference():
    x = np.random.default_rng(16).standard_normal((2, 3, 4, 6))
    np.testing.assert_array_equal(F.pixel_unshuffle(x, 2).numpy(), R.pixel_unshuffle(x, 2))


# --------------------------------------------------------------------------- layers
def test_keras_upsampling2d_nearest_is_an_exact_repeat():
    x = np.random.default_rng(17).standard_normal((1, 7, 7, 4)).astype(np.float32)
    out3 = nn.UpSampling2D(size=3)(mp.tensor(x))
    assert out3.shape == (1, 21, 21, 4)
    np.testing.assert_array_equal(out3.numpy(), np.repeat(np.repeat(x, 3, axis=1), 3, axis=2))
    out2 = nn.UpSampling2D()(mp.tensor(x))
    assert out2.shape == (1, 14, 14, 4)
    np.testing.assert_array_equal(out2.numpy(), np.repeat(np.repeat(x, 2, axis=1), 2, axis=2))
    wide = nn.UpSampling2D(size=(1, 3), data_format="channels_first")(mp.tensor(x))
    np.testing.assert_array_equal(wide.numpy(), np.repeat(x, 3, axis=3))


def test_keras_upsampling2d_repeat_gradient_sums_each_block():
    x = mp.tensor(np.zeros((1, 2, 3, 1), np.float32), requires_grad=True)
    y = nn.UpSampling2D(size=(2, 3))(x)
    g = np.random.default_rng(18).integers(-3, 4, y.shape).astype(np.float32)
    y.backward(g)
    expected = g.reshape(1, 2, 2, 3, 3, 1).sum(axis=(2, 4))
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_keras_upsampling2d_bilinear_is_half_pixel():
    x = np.random.default_rng(19).standard_normal((2, 5, 4, 3))
    out = nn.UpSampling2D(size=(2, 3), interpolation="bilinear")(mp.tensor(x)).numpy()
    expected = R.interpolate(x.transpose(0, 3, 1, 2), "bilinear", size=(10, 12),
                             align_corners=False).transpose(0, 2, 3, 1)
    close(out, expected, np.float64, float(np.abs(x).max()), "keras bilinear")


def test_torch_named_layers():
    x = np.random.default_rng(20).standard_normal((1, 2, 3, 4))
    np.testing.assert_array_equal(nn.Upsample(scale_factor=2)(mp.tensor(x)).numpy(),
                                  R.nearest_gather(x, "nearest", scale_factor=2))
    np.testing.assert_array_equal(nn.UpsamplingNearest2d(size=(5, 5))(mp.tensor(x)).numpy(),
                                  R.nearest_gather(x, "nearest", size=(5, 5)))
    close(nn.UpsamplingBilinear2d(scale_factor=2)(mp.tensor(x)).numpy(),
          R.interpolate(x, "bilinear", scale_factor=2, align_corners=True), np.float64,
          float(np.abs(x).max()), "bilinear align_corners")
    close(nn.Upsample(size=(2, 7), mode="bicubic", align_corners=True)(mp.tensor(x)).numpy(),
          R.interpolate(x, "bicubic", size=(2, 7), align_corners=True), np.float64,
          float(np.abs(x).max()), "bicubic layer")
    y = np.random.default_rng(21).standard_normal((1, 8, 2, 2))
    np.testing.assert_array_equal(nn.PixelShuffle(2)(mp.tensor(y)).numpy(), R.pixel_shuffle(y, 2))
    z = np.random.default_rng(22).standard_normal((1, 2, 4, 6))
    np.testing.assert_array_equal(nn.PixelUnshuffle(2)(mp.tensor(z)).numpy(),
                                  R.pixel_unshuffle(z, 2))
    assert "bicubic" in repr(nn.Upsample(size=3, mode="bicubic"))
