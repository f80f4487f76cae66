"""conv2d and conv_transpose2d with data_format="channels_last": (N, H, W, C) in, (N, Ho, Wo, O) out.

The kernels cut column rows straight from NHWC pixel rows; the weight keeps
PyTorch's layout.  Checked against the loop references (``tests/references/conv_reference.py``
and the scatter loop of test_conv_transpose.py) on transposed copies, PyTorch,
float64 central differences, random geometries, the channels-first path (to
rounding: the taps are summed in (ki, kj, c) order instead of (c, ki, kj), so
the two layouts do not agree bit for bit -- see the kernel's notes), 1 vs 2
threads bit for bit, small column blocks, the loop GEMM, and bad arguments.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from tests.helpers import with_threads
from tests.conv.conv_checks import (inputs_with_inf_and_nan, make, out_len, reference,
                                    small_column_blocks_inputs, two)
from tests.conv.test_conv import CASES, IDS
from tests.conv.test_conv_transpose import CASES as T_CASES, IDS as T_IDS, make as t_make, scatter_reference

CL = dict(data_format="channels_last")


def nhwc(a):
    return None if a is None else np.ascontiguousarray(np.moveaxis(a, -3, -1))


def nchw(a):
    return None if a is None else np.ascontiguousarray(np.moveaxis(a, -1, -3))


def run(fn, x, w, b, kwargs, seed=1, grad=None):
    """Channels-last call; gradients of a random output gradient (or ``grad``, NHWC)."""
    xt = mp.tensor(x, requires_grad=True)
    wt = mp.tensor(w, requires_grad=True)
    bt = None if b is None else mp.tensor(b, requires_grad=True)
    out = fn(xt, wt, bt, **kwargs, **CL)
    g = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype) if grad is None else grad
    out.backward(g)
    return out.numpy(), xt.grad.numpy(), wt.grad.numpy(), (None if b is None else bt.grad.numpy()), g


def compare(got, want, names=("out", "grad_x", "grad_w", "grad_b"), **tol):
    for name, a, b in zip(names, got, want):
        if a is not None:
            assert a.shape == b.shape, name
            np.testing.assert_allclose(a, b, err_msg=name, **tol)


# ------------------------------------------------------------------ conv2d
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_matches_loop_reference(case):
    x, w, b, kw = make(case)
    out, gx, gw, gb, g = run(F.conv2d, nhwc(x), w, b, kw)
    ref = reference(x, w, b, **kw, grad_out=nchw(g))
    compare((nchw(out), nchw(gx), gw, gb), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_matches_channels_first_to_rounding(case):
    """Not bit for bit (another summation order), but within a few ulps."""
    x, w, b, kw = make(case, np.float32, seed=7)
    out, gx, gw, gb, g = run(F.conv2d, nhwc(x), w, b, kw)
    xt, wt = mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)
    bt = None if b is None else mp.tensor(b, requires_grad=True)
    first = F.conv2d(xt, wt, bt, **kw)
    first.backward(nchw(g))
    want = [first.numpy(), xt.grad.numpy(), wt.grad.numpy()] + ([bt.grad.numpy()] if b is not None else [])
    compare((nchw(out), nchw(gx), gw, gb), want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("case", CASES[:7], ids=IDS[:7])
def test_conv2d_gradcheck_float64(case):
    x, w, b, kw = make(case, seed=3)
    x = nhwc(x[:1, :, :6, :6])
    inputs = [mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)]
    if b is not None:
        inputs.append(mp.tensor(b, requires_grad=True))
    assert mp.gradcheck(lambda *t: F.conv2d(*t, **kw, **CL), inputs)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(0, 2), groups=st.sampled_from([1, 2, 3]), cpg=st.integers(1, 3),
       opg=st.integers(1, 2), H=st.integers(1, 7), W=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 2),
       bias=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99),
       special=st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_conv2d_random_geometry_matches_reference(N, groups, cpg, opg, H, W, kh, kw, sh, sw, ph, pw,
                                                  dh, dw, bias, dtype, seed, special):
    if out_len(H, kh, sh, ph, ph, dh) < 1 or out_len(W, kw, sw, pw, pw, dw) < 1:
        return  # the kernel does not fit (covered by the error tests)
    case = (N, cpg * groups, H, W, opg * groups, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups, bias)
    x, w, b, kwargs = make(case, dtype, seed)
    if special is not None and x.size:
        x.flat[seed % x.size] = special  # reaches exactly the outputs whose windows read it
    out, gx, gw, gb, g = run(F.conv2d, nhwc(x), w, b, kwargs)
    with np.errstate(invalid="ignore"):
        ref = reference(x, w, b, **kwargs, grad_out=nchw(g))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    assert out.dtype == dtype and gx.dtype == dtype and gw.dtype == dtype
    compare((nchw(out), nchw(gx), gw, gb), ref, **tol)


def test_conv2d_unbatched_empty_batch_and_non_contiguous():
    x, w, b, kw = make(CASES[2])
    batched = F.conv2d(mp.tensor(nhwc(x)), mp.tensor(w), mp.tensor(b), **kw, **CL).numpy()
    xt = mp.tensor(nhwc(x)[0], requires_grad=True)
    single = F.conv2d(xt, mp.tensor(w), mp.tensor(b), **kw, **CL)
    assert single.shape == batched.shape[1:]
    np.testing.assert_array_equal(single.numpy(), batched[0])
    single.sum().backward()
    assert xt.grad.shape == xt.shape
    view = np.moveaxis(x, 1, -1)  # a channels-last view of the NCHW array: not contiguous
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(F.conv2d(mp.tensor(view), mp.tensor(w), mp.tensor(b), **kw, **CL).numpy(),
                                  batched)
    empty = mp.zeros(0, 8, 8, 3, requires_grad=True)
    wt = mp.tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    out = F.conv2d(empty, wt, padding=1, **CL)
    assert out.shape == (0, 8, 8, 4)
    out.sum().backward()
    assert empty.grad.shape == (0, 8, 8, 3)
    np.testing.assert_array_equal(wt.grad.numpy(), 0)


def test_conv2d_zero_input_channels_give_the_bias():
    x = mp.tensor(np.zeros((2, 5, 5, 0)), requires_grad=True)
    w = mp.tensor(np.zeros((3, 0, 3, 3)), requires_grad=True)
    b = mp.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = F.conv2d(x, w, b, **CL)
    assert y.shape == (2, 3, 3, 3)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(b.numpy(), y.shape))
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(g)
    np.testing.assert_allclose(b.grad.numpy(), g.sum(axis=(0, 1, 2)), rtol=1e-13)


torch_cases = CASES + [(64, 1, 32, 32, 6, 5, 1, 0, 1, 1, True), (64, 6, 14, 14, 16, 5, 1, 0, 1, 1, True)]
torch_ids = IDS + ["lenet1", "lenet2"]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("case", torch_cases, ids=torch_ids)
@pytest.mark.parametrize("unbatched", [False, True])
def test_conv2d_matches_torch(case, dtype, rtol, unbatched):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(case, dtype, seed=5)
    if unbatched:
        x = x[0]
    out, gx, gw, gb, g = run(F.conv2d, nhwc(x), w, b, kw)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    ref = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    ref.backward(torch.tensor(nchw(g)))
    want = [t.detach().numpy() for t in [ref, xt.grad, wt.grad] + ([bt.grad] if b is not None else [])]
    for name, got, w_ in zip(["out", "grad_x", "grad_w", "grad_b"], (nchw(out), nchw(gx), gw, gb), want):
        if got is not None:
            assert got.shape == w_.shape and got.dtype == dtype, name
            np.testing.assert_allclose(got, w_, rtol=rtol, atol=rtol * np.abs(w_).max(), err_msg=name)


@pytest.mark.parametrize("where", ["input", "weight"])
def test_conv2d_non_finite_values_match_torch(where):
    torch = pytest.importorskip("torch")
    x, w = inputs_with_inf_and_nan(where)
    for kw in (dict(padding=1), dict(stride=2)):
        out, gx, gw, gb, g = run(F.conv2d, nhwc(x), w, None, kw)
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        ref = torch.nn.functional.conv2d(xt, wt, **kw)
        ref.backward(torch.tensor(nchw(g)))
        compare((nchw(out), nchw(gx), gw), [t.detach().numpy() for t in (ref, xt.grad, wt.grad)],
                rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ threads, blocks, GEMM
@pytest.mark.parametrize("fn,shape,w_shape,kwargs", [
    (F.conv2d, (64, 32, 32, 1), (6, 1, 5, 5), {}),                   # LeNet conv1, NHWC
    (F.conv2d, (33, 14, 14, 6), (16, 6, 5, 5), dict(padding=1)),     # unequal weight slots
    (F.conv2d, (20, 15, 15, 4), (6, 2, 3, 3), dict(stride=2, groups=2)),
    (F.conv_transpose2d, (64, 14, 14, 16), (16, 6, 5, 5), dict(stride=2)),
    (F.conv_transpose2d, (33, 7, 7, 32), (32, 16, 4, 4), dict(stride=2, padding=1)),
])
def test_one_and_two_threads_are_bit_identical(fn, shape, w_shape, kwargs):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    out_channels = w_shape[0] if fn is F.conv2d else w_shape[1] * kwargs.get("groups", 1)
    b = rng.standard_normal(out_channels).astype(np.float32)
    results = [with_threads(t, lambda: run(fn, x, w, b, kwargs)) for t in (1, 2)]
    for one, two_ in zip(*results):
        np.testing.assert_array_equal(one, two_)


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, padding=(0, 2)),
                                    dict(padding="same", dilation=2, groups=2)])
def test_column_blocks_match_whole_images(kwargs, monkeypatch):
    from minipool.ops import conv as conv_module
    x, w, b = small_column_blocks_inputs(kwargs, monkeypatch)
    assert conv_module._plan_channels_last((3, 19, 17, 4), 6,
                                           conv_module.ConvGeometry(3, 3, 1, 1, 1, 1, 1, 1, 19, 17, 1))[0] < 19 // 2
    blocked = run(F.conv2d, nhwc(x), w, b, kwargs)
    full = dict(stride=1, padding=0, dilation=1, groups=1)
    full.update(kwargs)
    compare((nchw(blocked[0]), nchw(blocked[1]), blocked[2], blocked[3]),
            reference(x, w, b, **full, grad_out=nchw(blocked[4])), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("i", [0, 1, 2, 3])
def test_loop_gemm_matches_references(i, loop_gemm):
    x, w, b, kw = make(CASES[i])
    out, gx, gw, gb, g = run(F.conv2d, nhwc(x), w, b, kw)
    compare((nchw(out), nchw(gx), gw, gb), reference(x, w, b, **kw, grad_out=nchw(g)),
            rtol=1e-12, atol=1e-12)
    x, w, b, kw = t_make(T_CASES[i])
    out, gx, gw, gb, g = run(F.conv_transpose2d, nhwc(x), w, b, kw)
    compare((nchw(out), nchw(gx), gw, gb), scatter_reference(x, w, b, **kw, grad_out=nchw(g)),
            rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2, padding=1), dict(padding=(2, 0), dilation=(1, 2)),
                                    dict(stride=(1, 3), padding=3)])
def test_one_channel_takes_the_planar_columns(kwargs):
    """One channel (conv2d input, or conv_transpose2d output): the kernel builds NCHW-style
    column blocks from the image (it is its own plane)."""
    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal((3, 1, 9, 8)), rng.standard_normal((4, 1, 3, 3)), rng.standard_normal(4)
    full = dict(stride=1, padding=0, dilation=1, groups=1)
    full.update(kwargs)
    out, gx, gw, gb, g = run(F.conv2d, nhwc(x), w, b, kwargs)
    compare((nchw(out), nchw(gx), gw, gb), reference(x, w, b, **full, grad_out=nchw(g)), rtol=1e-12, atol=1e-12)
    x = rng.standard_normal((3, 4, 5, 4))
    w, b = rng.standard_normal((4, 1, 3, 3)), rng.standard_normal(1)
    full = dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1)
    full.update(kwargs)
    if max(two(full["padding"])) >= 3:  # keep the transposed output non-empty
        full["padding"] = 1
    full.pop("output_padding")
    out, gx, gw, gb, g = run(F.conv_transpose2d, nhwc(x), w, b, full)
    compare((nchw(out), nchw(gx), gw, gb), scatter_reference(x, w, b, **full, grad_out=nchw(g)),
            rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ conv_transpose2d
@pytest.mark.parametrize("case", T_CASES, ids=T_IDS)
def test_conv_transpose2d_matches_scatter_loop(case):
    x, w, b, kw = t_make(case)
    out, gx, gw, gb, g = run(F.conv_transpose2d, nhwc(x), w, b, kw)
    compare((nchw(out), nchw(gx), gw, gb), scatter_reference(x, w, b, **kw, grad_out=nchw(g)),
            rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("case", T_CASES, ids=T_IDS)
def test_conv_transpose2d_matches_torch(case, dtype, rtol):
    torch = pytest.importorskip("torch")
    x, w, b, kw = t_make(case, dtype, seed=5)
    out, gx, gw, gb, g = run(F.conv_transpose2d, nhwc(x), w, b, kw)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    ref = torch.nn.functional.conv_transpose2d(xt, wt, bt, **kw)
    ref.backward(torch.tensor(nchw(g)))
    want = [t.detach().numpy() for t in [ref, xt.grad, wt.grad] + ([bt.grad] if b is not None else [])]
    for name, got, w_ in zip(["out", "grad_x", "grad_w", "grad_b"], (nchw(out), nchw(gx), gw, gb), want):
        if got is not None:
            assert got.shape == w_.shape and got.dtype == dtype, name
            scale = np.abs(w_).max() if w_.size else 0
            np.testing.assert_allclose(got, w_, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.mark.parametrize("case", T_CASES[:6], ids=T_IDS[:6])
def test_conv_transpose2d_gradcheck_and_unbatched(case):
    x, w, b, kw = t_make(case, seed=3)
    x = nhwc(x[:1, :, :4, :4])
    inputs = [mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)]
    if b is not None:
        inputs.append(mp.tensor(b, requires_grad=True))
    assert mp.gradcheck(lambda *t: F.conv_transpose2d(*t, **kw, **CL), inputs)
    single = F.conv_transpose2d(mp.tensor(x[0]), mp.tensor(w), None if b is None else mp.tensor(b), **kw, **CL)
    batched = F.conv_transpose2d(mp.tensor(x), mp.tensor(w), None if b is None else mp.tensor(b), **kw, **CL)
    np.testing.assert_array_equal(single.numpy(), batched.numpy()[0])


# ------------------------------------------------------------------ layers
def test_conv2d_layer_channels_last_shares_state_with_channels_first():
    first = mp.nn.Conv2d(3, 8, 3, padding=1, groups=1, dtype=np.float64, generator=np.random.default_rng(0))
    last = mp.nn.Conv2d(3, 8, 3, padding=1, dtype=np.float64, data_format="channels_last")
    last.load_state_dict(first.state_dict())
    assert last.weight.shape == (8, 3, 3, 3)  # PyTorch's layout in both formats
    assert repr(last) == "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), data_format='channels_last')"
    assert repr(first) == "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 5))
    np.testing.assert_allclose(last(mp.tensor(nhwc(x))).numpy(), nhwc(first(mp.tensor(x)).numpy()),
                               rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError):  # keyword only
        mp.nn.Conv2d(3, 8, 3, 1, 0, 1, 1, True, "zeros", "channels_last")


def test_conv_transpose2d_layer_channels_last_with_output_size():
    torch = pytest.importorskip("torch")
    layer = mp.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, dtype=np.float64,
                                  data_format="channels_last", generator=np.random.default_rng(0))
    ref = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1).double()
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.numpy()))
        ref.bias.copy_(torch.tensor(layer.bias.numpy()))
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 5))
    for size, nhwc_size in [((10, 10), (10, 10)), ((2, 2, 10, 10), (2, 10, 10, 2)), ((9, 10), (9, 10))]:
        got = layer(mp.tensor(nhwc(x)), output_size=nhwc_size).numpy()
        want = ref(torch.tensor(x), output_size=size).detach().numpy()
        np.testing.assert_allclose(nchw(got), want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("fn,w", [(F.conv2d, mp.zeros(6, 4, 3, 3)), (F.conv_transpose2d, mp.zeros(4, 6, 3, 3))])
def test_bad_layouts_raise_named_errors(fn, w):
    with pytest.raises(ValueError, match="data_format"):
        fn(mp.zeros(2, 8, 8, 4), w, data_format="NHWC")
    with pytest.raises(ValueError, match="channels"):  # an NCHW batch given as channels-last
        fn(mp.zeros(2, 4, 8, 8), w, **CL)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        fn(mp.zeros(8, 4), w, **CL)
    with pytest.raises(TypeError):  # data_format is keyword only
        positional = (1, 0, 1, 1) if fn is F.conv2d else (1, 0, 0, 1, 1)  # every torch argument
        fn(mp.zeros(2, 8, 8, 4), w, None, *positional, "channels_last")
    assert fn(mp.zeros(2, 8, 8, 4), w, data_format="Channels_Last").shape[-1] == 6  # as pooling
    assert fn(mp.zeros(2, 4, 8, 8), w, data_format=None).shape[1] == 6


def test_kernels_reject_mismatched_buffers():
    geometry = (3, 3, 1, 1, 0, 0, 1, 1, 3, 3, 1)
    x = np.zeros((1, 5, 5, 2), np.float32)
    w = np.zeros((4, 18), np.float32)
    out = np.zeros((1, 3, 3, 4), np.float32)
    block_rows, forward, backward = kernels.plan_channels_last(2, 5, 5, 4, geometry, 1 << 16)
    ws = np.zeros((1, backward), np.float32)
    with pytest.raises(ValueError, match="do not match"):
        kernels.conv2d_forward_channels_last(x, w, None, np.zeros((1, 4, 3, 3), np.float32), geometry,
                                             block_rows, ws, 1)
    with pytest.raises(ValueError, match="workspace"):
        kernels.conv2d_forward_channels_last(x, w, None, out, geometry, block_rows,
                                             np.zeros((1, forward - 1), np.float32), 1)
    with pytest.raises(ValueError, match="bias"):
        kernels.conv2d_forward_channels_last(x, w, np.zeros(3, np.float32), out, geometry, block_rows, ws, 1)
    with pytest.raises(ValueError, match="weight_slots"):
        kernels.conv2d_backward_channels_last(x, w, out, None, np.zeros((4, 1, 18, 4), np.float32), None,
                                              geometry, block_rows, ws, 1)
    with pytest.raises(ValueError, match="grad_x"):
        kernels.conv2d_backward_channels_last(x, w, out, np.zeros((1, 5, 4, 2), np.float32), None, None,
                                              geometry, block_rows, ws, 1)
    # the transposed forward: x plays the (N, Ho, Wo, O) gradient, out the (N, H, W, C) planes
    with pytest.raises(ValueError, match="do not match"):
        kernels.conv_transpose2d_forward(np.zeros((1, 3, 3, 3), np.float32), w, None, x, geometry,
                                         block_rows, ws, 1, True)
    with pytest.raises(ValueError, match="bias"):
        kernels.conv_transpose2d_forward(out, w, np.zeros(4, np.float32), x, geometry, block_rows, ws, 1, True)
    with pytest.raises(ValueError, match="workspace"):
        kernels.conv_transpose2d_forward(out, w, None, x, geometry, block_rows,
                                         np.zeros((1, backward - 1), np.float32), 1, True)
    kernels.conv_transpose2d_forward(out, w, None, x, geometry, block_rows, ws, 1, True)
    np.testing.assert_array_equal(x, 0)


# ------------------------------------------------------------------ backward engines
def _forced_backward_engines(fn):
    """``fn()`` with the channels-last input gradient on the direct kernel and the weight
    gradient on the outer products wherever they can run (float64 too)."""
    previous = kernels.use_direct(2), kernels.use_wgrad_outer(2)
    try:
        return fn()
    finally:
        kernels.use_direct(previous[0])
        kernels.use_wgrad_outer(previous[1])


@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 2), groups=st.sampled_from([1, 2]), cpg=st.integers(1, 3),
       opg=st.integers(1, 3), H=st.integers(1, 7), W=st.integers(1, 7),
       k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 2),
       dilation=st.integers(1, 2), seed=st.integers(0, 99),
       special=st.sampled_from([None, np.nan, np.inf]), where=st.sampled_from(["x", "w", "g"]))
def test_conv2d_backward_engines_match_reference(N, groups, cpg, opg, H, W, k, stride, pad,
                                                 dilation, seed, special, where):
    """Channels-last backward on the flipped direct forward (input gradient) and the outer
    products (weight and bias gradients), any geometry, float64, one inf or NaN in the
    input, the weight or the output gradient: the loop reference's values (a non-finite
    weight keeps the column scatter, a non-finite output gradient the column slots)."""
    if out_len(H, k, stride, pad, pad, dilation) < 1 or out_len(W, k, stride, pad, pad, dilation) < 1:
        return
    case = (N, cpg * groups, H, W, opg * groups, k, stride, pad, dilation, groups, True)
    x, w, b, kwargs = make(case, np.float64, seed)
    Ho, Wo = out_len(H, k, stride, pad, pad, dilation), out_len(W, k, stride, pad, pad, dilation)
    g = np.random.default_rng(seed + 1).standard_normal((N, Ho, Wo, opg * groups))
    target = {"x": x, "w": w, "g": g}[where]
    if special is not None:
        target.flat[seed % target.size] = special
    out, gx, gw, gb, _ = _forced_backward_engines(lambda: run(F.conv2d, nhwc(x), w, b, kwargs,
                                                              grad=g))
    with np.errstate(invalid="ignore"):
        ref = reference(x, w, b, **kwargs, grad_out=nchw(g))
    compare((nchw(out), nchw(gx), gw, gb), ref, rtol=1e-11, atol=1e-11)


def test_conv2d_backward_engines_automatic_choice():
    """float32 on AVX2: LeNet's conv2 and a 4x4 layer take both engines, a 32x32 layer the
    direct input gradient only, a 64x64 layer neither; where the outer products run, the
    weight and bias gradients are the channels-first ones bit for bit (the same outer
    products on the transposed batch)."""
    from minipool.ops import conv as conv_module
    avx2 = kernels.use_cpu_avx2(True)
    rng = np.random.default_rng(4)
    for (N, C, H, O, k, pad), direct, outer in [((8, 6, 14, 16, 5, 0), True, True),
                                                ((8, 32, 4, 64, 3, 1), True, True),
                                                ((2, 16, 32, 16, 3, 1), True, False),
                                                ((1, 8, 64, 16, 3, 1), False, False)]:
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((O, C, k, k)) * 0.1).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        Ho = H + 2 * pad - k + 1
        g = rng.standard_normal((N, O, Ho, Ho)).astype(np.float32)
        geometry = conv_module.ConvGeometry(k, k, 1, 1, pad, pad, 1, 1, Ho, Ho, 1)
        gx = np.empty((N, H, H, C), np.float32)
        assert conv_module._input_grad_channels_last(
            gx.shape, conv_module.channels_last_weight(w), nhwc(g), geometry, gx) == (direct and avx2)
        on_outer = conv_module._weight_grad_outer_channels_last(
            nhwc(x), nhwc(g), geometry, w.shape, 1, True)[0] is not None
        assert on_outer == (outer and avx2)
        got = run(F.conv2d, nhwc(x), w, b, dict(padding=pad), grad=nhwc(g))
        xt, wt, bt = (mp.tensor(a, requires_grad=True) for a in (x, w, b))
        F.conv2d(xt, wt, bt, padding=pad).backward(g)
        if on_outer:
            np.testing.assert_array_equal(got[2], wt.grad.numpy())
            np.testing.assert_array_equal(got[3], bt.grad.numpy())
        ref = reference(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, pad,
                        1, 1, grad_out=g.astype(np.float64))
        compare((nchw(got[0]), nchw(got[1]), got[2], got[3]), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape,w_shape,pad", [((64, 14, 14, 6), (16, 6, 5, 5), 0),
                                               ((64, 4, 4, 64), (64, 64, 5, 5), 2)])
def test_conv2d_backward_engines_one_and_two_threads_bit_identical(shape, w_shape, pad):
    rng = np.random.default_rng(12)
    x = rng.standard_normal(shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) * 0.1).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    results = [with_threads(t, lambda: run(F.conv2d, x, w, b, dict(padding=pad))) for t in (1, 2)]
    for one, two_ in zip(*results):
        np.testing.assert_array_equal(one, two_)
