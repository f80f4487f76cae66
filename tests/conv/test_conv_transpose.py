"""F.conv_transpose2d and nn.ConvTranspose2d (built on minipool/_kernels/conv2d.pyx).

Checked against a scatter loop written here (every input pixel times every tap,
added where it lands; gradients from the same loop), PyTorch (forward and all
gradients, float32 and float64), float64 central differences, random geometries,
1 vs 2 threads bit for bit, small column blocks, the loop GEMM stand-in, and
bad arguments (errors that name them).  The channels-last form is tested in
test_conv_channels_last.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from tests.helpers import with_threads


def two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def out_len(size, k, s, p, op, d):
    return (size - 1) * s - 2 * p + d * (k - 1) + op + 1


def scatter_reference(x, w, b, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                      grad_out=None):
    """(out, grad_x, grad_w, grad_b) in float64 by explicit loops: input pixel (ih, iw) of
    channel ci, times tap (ki, kj) of output channel co, lands at (ih*s - p + ki*d, ...)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    N, Cin, H, W = x.shape
    _, Cog, kh, kw = w.shape
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(two, (stride, padding, output_padding, dilation))
    Ho, Wo = out_len(H, kh, sh, ph, oph, dh), out_len(W, kw, sw, pw, opw, dw)
    Cig = Cin // groups
    out = np.zeros((N, Cog * groups, Ho, Wo))
    if b is not None:
        out += np.asarray(b, np.float64)[None, :, None, None]
    g = np.zeros_like(out) if grad_out is None else np.asarray(grad_out, np.float64)
    gx, gw = np.zeros_like(x), np.zeros_like(w)
    for n in range(N):
        for ci in range(Cin):
            grp = ci // Cig
            for ih in range(H):
                for iw in range(W):
                    for cog in range(Cog):
                        co = grp * Cog + cog
                        for ki in range(kh):
                            oh = ih * sh - ph + ki * dh
                            if not 0 <= oh < Ho:
                                continue
                            for kj in range(kw):
                                ow = iw * sw - pw + kj * dw
                                if not 0 <= ow < Wo:
                                    continue
                                out[n, co, oh, ow] += x[n, ci, ih, iw] * w[ci, cog, ki, kj]
                                gx[n, ci, ih, iw] += g[n, co, oh, ow] * w[ci, cog, ki, kj]
                                gw[ci, cog, ki, kj] += g[n, co, oh, ow] * x[n, ci, ih, iw]
    return out, gx, gw, g.sum(axis=(0, 2, 3))


# (N, Cin, H, W, Cout, kernel, stride, padding, output_padding, dilation, groups, bias)
CASES = [
    (2, 3, 5, 4, 4, 3, 1, 0, 0, 1, 1, True),
    (2, 4, 5, 6, 6, (2, 3), (2, 1), (1, 0), (1, 0), (2, 1), 2, True),
    (2, 4, 4, 4, 6, 3, 2, 1, 1, 1, 2, False),
    (1, 2, 3, 3, 2, 3, 1, 0, 1, 2, 1, True),         # output_padding < dilation only, > padding
    (1, 2, 3, 3, 2, 3, 1, 2, 1, 2, 1, True),         # ... and < padding
    (2, 2, 4, 5, 2, 2, 3, 1, 2, 1, 1, True),         # stride > kernel: gaps of bias only
    (3, 6, 7, 7, 6, 3, 1, 1, 0, 2, 6, True),         # depthwise, dilated, stride 1
    (2, 1, 4, 4, 3, 1, 1, 0, 0, 1, 1, True),         # 1x1
    (2, 3, 6, 5, 4, 4, 2, 1, 0, 1, 1, True),         # the classic 2x upsampling k4 s2 p1
    (1, 2, 3, 4, 2, 5, 1, 3, 0, 1, 1, True),         # padding crops most of the output
    (2, 4, 5, 5, 32, 3, 1, 1, 0, 1, 2, True),        # 16+ channels per group (transposed G)
    (0, 2, 4, 4, 3, 3, 2, 1, 1, 1, 1, True),         # empty batch
]
IDS = [f"case{i}" for i in range(len(CASES))]


def make(case, dtype=np.float64, seed=0):
    N, C, H, W, O, k, s, p, op, d, g, bias = case
    rng = np.random.default_rng(seed)
    kh, kw = two(k)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C, O // g, kh, kw)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    return x, w, b, dict(stride=s, padding=p, output_padding=op, groups=g, dilation=d)


def run(x, w, b, kwargs, seed=1, **extra):
    xt = mp.tensor(x, requires_grad=True)
    wt = mp.tensor(w, requires_grad=True)
    bt = None if b is None else mp.tensor(b, requires_grad=True)
    out = F.conv_transpose2d(xt, wt, bt, **kwargs, **extra)
    g = np.random.default_rng(seed).standard_normal(out.shape).astype(x.dtype)
    out.backward(g)
    return out.numpy(), xt.grad.numpy(), wt.grad.numpy(), (None if b is None else bt.grad.numpy()), g


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_scatter_loop(case):
    x, w, b, kw = make(case)
    out, gx, gw, gb, g = run(x, w, b, kw)
    ref = scatter_reference(x, w, b, **kw, grad_out=g)
    for name, got, want in zip(["out", "grad_x", "grad_w", "grad_b"], (out, gx, gw, gb), ref):
        if got is not None:
            assert got.shape == want.shape, name
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


def test_reference_is_the_adjoint_of_conv2d():
    """Sanity of the test's own loop: <conv_transpose(x), y> == <x, conv2d(y)>."""
    x, w, b, kw = make(CASES[1], seed=4)
    y = np.random.default_rng(2).standard_normal(scatter_reference(x, w, None, **kw)[0].shape)
    lhs = np.sum(scatter_reference(x, w, None, **kw)[0] * y)
    conv = F.conv2d(mp.tensor(y), mp.tensor(w), stride=kw["stride"], padding=kw["padding"],
                    dilation=kw["dilation"], groups=kw["groups"]).numpy()
    assert conv.shape == x.shape
    assert np.isclose(lhs, np.sum(x * conv), rtol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c[0] > 0][:7], ids=IDS[:7])
def test_gradcheck_float64(case):
    x, w, b, kw = make(case, seed=3)
    x = x[:1, :, :4, :4]
    inputs = [mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)]
    if b is not None:
        inputs.append(mp.tensor(b, requires_grad=True))
    assert mp.gradcheck(lambda *t: F.conv_transpose2d(*t, **kw), inputs)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(0, 2), groups=st.sampled_from([1, 2]), cpg=st.integers(1, 2),
       opg=st.integers(1, 2), H=st.integers(1, 5), W=st.integers(1, 5),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), oph=st.integers(0, 2), opw=st.integers(0, 2),
       dh=st.integers(1, 3), dw=st.integers(1, 3), bias=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99))
def test_random_geometry_matches_scatter_loop(N, groups, cpg, opg, H, W, kh, kw, sh, sw, ph, pw,
                                              oph, opw, dh, dw, bias, dtype, seed):
    case = (N, cpg * groups, H, W, opg * groups, (kh, kw), (sh, sw), (ph, pw), (oph, opw),
            (dh, dw), groups, bias)
    x, w, b, kwargs = make(case, dtype, seed)
    valid_op = (oph < sh or oph < dh) and (opw < sw or opw < dw)
    sizes = out_len(H, kh, sh, ph, oph, dh), out_len(W, kw, sw, pw, opw, dw)
    if not valid_op or min(sizes) < 1:
        with pytest.raises(ValueError, match="output_padding" if not valid_op else "too small"):
            F.conv_transpose2d(mp.tensor(x), mp.tensor(w), None if b is None else mp.tensor(b),
                               **kwargs)
        return
    out, gx, gw, gb, g = run(x, w, b, kwargs)
    ref = scatter_reference(x, w, b, **kwargs, grad_out=g)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    assert out.dtype == dtype and gx.dtype == dtype and gw.dtype == dtype
    for name, got, want in zip(["out", "grad_x", "grad_w", "grad_b"], (out, gx, gw, gb), ref):
        if got is not None:
            np.testing.assert_allclose(got, want, err_msg=name, **tol)


def test_unbatched_and_non_contiguous_input():
    x, w, b, kw = make(CASES[1])
    batched = F.conv_transpose2d(mp.tensor(x), mp.tensor(w), mp.tensor(b), **kw).numpy()
    xt = mp.tensor(x[1], requires_grad=True)
    single = F.conv_transpose2d(xt, mp.tensor(w), mp.tensor(b), **kw)
    assert single.shape == batched.shape[1:]
    np.testing.assert_array_equal(single.numpy(), batched[1])
    single.sum().backward()
    assert xt.grad.shape == x[1].shape
    view = np.ascontiguousarray(x[:, :, ::-1, :])[:, :, ::-1, :]
    assert not view.flags.c_contiguous or view.strides[2] < 0
    np.testing.assert_array_equal(
        F.conv_transpose2d(mp.tensor(view), mp.tensor(w), mp.tensor(b), **kw).numpy(), batched)


def test_no_grad_and_partial_requires_grad():
    x, w, b, kw = make(CASES[2])
    with mp.no_grad():
        y = F.conv_transpose2d(mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True), **kw)
    assert not y.requires_grad
    wt = mp.tensor(w, requires_grad=True)
    F.conv_transpose2d(mp.tensor(x), wt, **kw).sum().backward()
    ref = scatter_reference(x, w, None, **kw, grad_out=np.ones(y.shape))
    np.testing.assert_allclose(wt.grad.numpy(), ref[2], rtol=1e-12)


def test_zero_input_channels_give_the_bias():
    x = mp.tensor(np.zeros((2, 0, 3, 3)), requires_grad=True)
    w = mp.tensor(np.zeros((0, 2, 3, 3)), requires_grad=True)
    b = mp.tensor(np.array([1.5, -2.0]), requires_grad=True)
    y = F.conv_transpose2d(x, w, b, stride=2)
    assert y.shape == (2, 2, 7, 7)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(b.numpy()[None, :, None, None], y.shape))
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(g)
    np.testing.assert_allclose(b.grad.numpy(), g.sum(axis=(0, 2, 3)), rtol=1e-13)
    assert x.grad.shape == (2, 0, 3, 3) and w.grad.shape == (0, 2, 3, 3)


# ------------------------------------------------------------------ threads, blocks, GEMM
@pytest.mark.parametrize("shape,out_channels,k,kwargs", [
    ((64, 16, 14, 14), 6, 5, dict(stride=2)),                  # the benchmark's k5 s2
    ((33, 32, 7, 7), 16, 4, dict(stride=2, padding=1)),        # decoder k4 s2 p1, 33 images
    ((20, 6, 10, 10), 16, 3, dict(padding=2)),                 # stride 1: shifted, padded
    ((20, 4, 9, 9), 4, 3, dict(output_padding=1, dilation=2)),  # output_padding > padding
])
def test_one_and_two_threads_are_bit_identical(shape, out_channels, k, kwargs):
    from minipool import _config
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((shape[1], out_channels, k, k)).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    if shape[0] == 64:  # the kernel really splits this batch over two threads
        work = out_channels * k * k * shape[0] * shape[2] * shape[3]
        assert with_threads(2, lambda: _config.kernel_threads(shape[0], work)) == 2
    results = [with_threads(t, lambda: run(x, w, b, kwargs)) for t in (1, 2)]
    for one, two_ in zip(*results):
        np.testing.assert_array_equal(one, two_)


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, padding=(0, 2), output_padding=1),
                                    dict(dilation=2, groups=2, padding=1)])
def test_column_blocks_match_whole_images(kwargs, monkeypatch):
    from minipool.ops import conv as conv_module
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 4, 13, 11))
    w = rng.standard_normal((4, 6 // kwargs.get("groups", 1), 3, 3))
    b = rng.standard_normal(6)
    conv_module._blocks.cache_clear()
    monkeypatch.setattr(conv_module, "BLOCK_ELEMENTS", 200)
    import minipool.ops.conv_transpose as ct
    monkeypatch.setattr(ct, "BLOCK_ELEMENTS", 200)
    try:
        blocked = run(x, w, b, kwargs)
    finally:
        conv_module._blocks.cache_clear()
    full = dict(stride=1, padding=0, output_padding=0, groups=1, dilation=1)
    full.update(kwargs)
    assert ct._plan(3, (6, 13, 11), 4, ct.ConvGeometry(3, 3, 1, 1, 1, 1, 1, 1, 13, 11, 1), False)[0] < 13 // 2
    ref = scatter_reference(x, w, b, **full, grad_out=blocked[4])
    for name, got, want in zip(["out", "grad_x", "grad_w", "grad_b"], blocked[:4], ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", CASES[:4], ids=IDS[:4])
def test_loop_gemm_matches_scatter_loop(case, loop_gemm):
    x, w, b, kw = make(case)
    out, gx, gw, gb, g = run(x, w, b, kw)
    for name, got, want in zip(["out", "grad_x", "grad_w", "grad_b"], (out, gx, gw, gb),
                               scatter_reference(x, w, b, **kw, grad_out=g)):
        if got is not None:
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("padding", [0, 1])
def test_non_finite_input_matches_torch(value, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 5, 6))
    w = rng.standard_normal((2, 3, 3, 3))
    x[1, 0, 2, 0] = value
    for stride in (1, 2):
        kw = dict(stride=stride, padding=padding)
        out, gx, gw, gb, g = run(x, w, None, kw)
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        ref = torch.nn.functional.conv_transpose2d(xt, wt, **kw)
        ref.backward(torch.tensor(g))
        for name, got, want in zip(["out", "grad_x", "grad_w"], (out, gx, gw), (ref, xt.grad, wt.grad)):
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=name)
        assert np.isfinite(out).sum() > 0


@pytest.mark.parametrize("data_format", ["channels_first", "channels_last"])
@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 0), (2, 1)])
def test_non_finite_weights_match_torch(data_format, stride, padding):
    """inf/NaN weights: NaN exactly where PyTorch has it (its input gradient is a conv2d
    whose padding zeros meet the weight; its forward drops out-of-range taps)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((2, 3, 3, 3))
    w.flat[[3, 20, 40]] = [np.inf, -np.inf, np.nan]
    last = data_format == "channels_last"
    kw = dict(stride=stride, padding=padding)
    out, gx, gw, gb, g = run(np.ascontiguousarray(np.moveaxis(x, 1, -1)) if last else x, w, None, kw,
                             data_format=data_format)
    if last:
        out, gx, g = (np.moveaxis(a, -1, 1) for a in (out, gx, g))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ref = torch.nn.functional.conv_transpose2d(xt, wt, **kw)
    ref.backward(torch.tensor(np.ascontiguousarray(g)))
    for name, got, want in zip(["out", "grad_x", "grad_w"], (out, gx, gw), (ref, xt.grad, wt.grad)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=name)
    assert np.isnan(out).any() and np.isfinite(out).any()


# ------------------------------------------------------------------ PyTorch parity
TORCH_CASES = CASES + [(16, 16, 14, 14, 6, 5, 2, 0, 1, 1, 1, True), (8, 32, 7, 7, 16, 4, 2, 1, 0, 1, 1, True)]
TORCH_IDS = IDS + ["bench_k5s2", "decoder_k4s2"]


@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("case,unbatched", [(c, False) for c in TORCH_CASES] + [(c, True) for c in TORCH_CASES if c[0]],
                         ids=TORCH_IDS + [i + "-unbatched" for c, i in zip(TORCH_CASES, TORCH_IDS) if c[0]])
def test_matches_torch(case, dtype, rtol, unbatched):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(case, dtype, seed=5)
    if unbatched:
        x = x[0]
    out, gx, gw, gb, g = run(x, w, b, kw)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    ref = torch.nn.functional.conv_transpose2d(xt, wt, bt, **kw)
    ref.backward(torch.tensor(g))
    pairs = [(out, ref), (gx, xt.grad), (gw, wt.grad)] + ([(gb, bt.grad)] if b is not None else [])
    for name, (got, want) in zip(["out", "grad_x", "grad_w", "grad_b"], pairs):
        want = want.detach().numpy()
        assert got.shape == want.shape and got.dtype == dtype, name
        scale = np.abs(want).max() if want.size else 0
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=name)


# ------------------------------------------------------------------ layer
def test_layer_matches_torch_with_copied_parameters_and_output_size():
    torch = pytest.importorskip("torch")
    layer = mp.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2, dtype=np.float64,
                                  generator=np.random.default_rng(0))
    ref = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, groups=2).double()
    assert repr(layer) == repr(ref)
    assert layer.weight.shape == tuple(ref.weight.shape) and layer.bias.shape == tuple(ref.bias.shape)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(layer.weight.numpy()))
        ref.bias.copy_(torch.tensor(layer.bias.numpy()))
    x = np.random.default_rng(1).standard_normal((2, 4, 5, 5))
    for size in [None, (9, 9), (10, 10), (10, 9), (2, 6, 10, 10)]:
        got = layer(mp.tensor(x), output_size=size).numpy()
        want = ref(torch.tensor(x), output_size=size).detach().numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for bad in [(11, 11), (8, 9), (6, 10, 10)]:
        with pytest.raises(ValueError, match="output_size"):
            layer(mp.tensor(x), output_size=bad)
        with pytest.raises(ValueError):
            ref(torch.tensor(x), output_size=bad)
    # unbatched input: 2 or 3 (C, H, W) entries
    np.testing.assert_allclose(layer(mp.tensor(x[0]), output_size=(6, 10, 10)).numpy(),
                               ref(torch.tensor(x[0]), output_size=(6, 10, 10)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_layer_init_has_pytorchs_bounds():
    torch = pytest.importorskip("torch")
    layer = mp.nn.ConvTranspose2d(8, 12, (3, 2), groups=2, generator=np.random.default_rng(3))
    ref = torch.nn.ConvTranspose2d(8, 12, (3, 2), groups=2)
    fan_in = 12 // 2 * 3 * 2  # PyTorch's fan-in of the (in, out/groups, kh, kw) weight
    bound = 1 / np.sqrt(fan_in)
    for ours, theirs in [(layer.weight.numpy(), ref.weight.detach().numpy()),
                         (layer.bias.numpy(), ref.bias.detach().numpy())]:
        assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound
        assert np.abs(ours).max() > 0.8 * bound  # uniform over the whole range, not a smaller one
    assert layer.weight.dtype == np.float32
    assert mp.nn.ConvTranspose2d(2, 3, 2, bias=False).bias is None
    a = mp.nn.ConvTranspose2d(2, 3, 2, generator=np.random.default_rng(5)).weight.numpy()
    np.testing.assert_array_equal(a, mp.nn.ConvTranspose2d(2, 3, 2, generator=np.random.default_rng(5)).weight.numpy())


def test_layer_repr_matches_torch():
    torch = pytest.importorskip("torch")
    for args, kwargs in [((4, 6, 3), {}), ((4, 6, 3), dict(stride=2, padding=1, output_padding=1,
                                                            groups=2, bias=False, dilation=2)),
                         ((1, 2, (2, 3)), dict(stride=(2, 1)))]:
        assert repr(mp.nn.ConvTranspose2d(*args, **kwargs)) == repr(torch.nn.ConvTranspose2d(*args, **kwargs))


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(padding_mode="reflect"), ValueError, "padding_mode"),
    (dict(output_padding=(0, 1.5)), TypeError, "output_padding"),
    (dict(groups=3), ValueError, "divisible by groups"),
    (dict(padding="same"), ValueError, "padding"),
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(in_channels=0), ValueError, "in_channels"),
    (dict(stride=1.5), TypeError, "stride"),
    (dict(data_format="NHWC"), ValueError, "data_format"),
])
def test_layer_rejects_bad_arguments(kwargs, error, match):
    args = dict(in_channels=4, out_channels=6, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        mp.nn.ConvTranspose2d(**args)


def test_layer_trains_a_step():
    rng = np.random.default_rng(0)
    layer = mp.nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1, generator=rng)
    opt = mp.optim.SGD(layer.parameters(), lr=0.1)
    x = mp.tensor(rng.standard_normal((4, 3, 5, 5)).astype(np.float32))
    target = mp.tensor(rng.standard_normal((4, 2, 10, 10)).astype(np.float32))
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = F.mse_loss(layer(x), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.numpy()))
    assert losses[-1] < losses[0]


# ------------------------------------------------------------------ errors
def args_with(**over):
    args = dict(input=mp.zeros(2, 4, 5, 5), weight=mp.zeros(4, 3, 3, 3), bias=None, stride=1,
                padding=0, output_padding=0, groups=2, dilation=1)
    args.update(over)
    return args


@pytest.mark.parametrize("over,error,match", [
    (dict(input=mp.zeros(4, 5)), ValueError, "input"),
    (dict(input=mp.zeros(2, 3, 5, 5)), ValueError, "channels"),
    (dict(input=mp.zeros(2, 4, 0, 5)), ValueError, "spatial"),
    (dict(weight=mp.zeros(4, 3, 3)), ValueError, "weight"),
    (dict(weight=mp.zeros(4, 0, 3, 3)), ValueError, "empty"),
    (dict(groups=3), ValueError, "divisible by groups"),
    (dict(groups=0), ValueError, "groups"),
    (dict(groups=1.0), TypeError, "groups"),
    (dict(bias=mp.zeros(3)), ValueError, "bias"),
    (dict(bias=mp.zeros(6, dtype=np.float64)), TypeError, "bias dtype"),
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=(1, 2, 3)), ValueError, "stride"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding="same"), ValueError, "padding"),
    (dict(output_padding=-1), ValueError, "output_padding"),
    (dict(output_padding=1), ValueError, "smaller than either stride or dilation"),
    (dict(output_padding=(0, 2), stride=2), ValueError, "smaller than either stride or dilation"),
    (dict(dilation=0), ValueError, "dilation"),
    (dict(padding=4), ValueError, "too small"),
    (dict(stride=2 ** 31 - 1, padding=0), ValueError, "too large"),
    (dict(stride=2 ** 31), ValueError, "stride must be <="),
    (dict(weight=mp.zeros(4, 3, 3, 3, dtype=np.float64)), TypeError, "weight dtype"),
    (dict(input=mp.zeros(2, 4, 5, 5, dtype=np.int64)), TypeError, "input"),
])
def test_bad_arguments_raise_named_errors(over, error, match):
    with pytest.raises(error, match=match):
        F.conv_transpose2d(**args_with(**over))


def test_bad_arguments_torch_also_rejects():
    """The output_padding and output-size rules are PyTorch's: it refuses the same calls."""
    torch = pytest.importorskip("torch")
    x, w = torch.zeros(1, 4, 5, 5), torch.zeros(4, 3, 3, 3)
    for kw in [dict(output_padding=1), dict(output_padding=(0, 2), stride=2), dict(padding=4)]:
        with pytest.raises(RuntimeError):
            torch.nn.functional.conv_transpose2d(x, w, groups=2, **kw)
        with pytest.raises(ValueError):
            F.conv_transpose2d(mp.zeros(1, 4, 5, 5), mp.zeros(4, 3, 3, 3), groups=2, **kw)
    # and accepts output_padding below the dilation although not below the stride
    torch.nn.functional.conv_transpose2d(x, w, groups=2, output_padding=1, dilation=2)
    F.conv_transpose2d(mp.zeros(1, 4, 5, 5), mp.zeros(4, 3, 3, 3), groups=2, output_padding=1, dilation=2)


# ------------------------------------------------------------------ backward engines
@pytest.mark.parametrize("case", [c for c in CASES if c[0] > 0], ids=[i for c, i in zip(CASES, IDS) if c[0] > 0])
def test_weight_gradient_on_outer_products_matches_scatter_loop(case):
    """NCHW weight gradients run on conv2d's outer products (forced here for float64,
    any geometry): the scatter loop's values."""
    from minipool._kernels import conv2d as kernels
    x, w, b, kw = make(case)
    previous = kernels.use_wgrad_outer(2)
    try:
        out, gx, gw, gb, g = run(x, w, b, kw)
    finally:
        kernels.use_wgrad_outer(previous)
    want = scatter_reference(x, w, b, **kw, grad_out=g)[2]
    np.testing.assert_allclose(gw, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("value", [None, np.inf, np.nan])
def test_float32_weight_gradient_path_matches_torch(value):
    """The benchmark's decoder layer in float32: the weight gradient on the outer products
    (automatic, AVX2), the same bits as forced, PyTorch's values; an inf or NaN in x (the
    outer products' output gradient) keeps the slots: PyTorch's inf and NaN."""
    torch = pytest.importorskip("torch")
    from minipool._kernels import conv2d as kernels
    from minipool.ops.conv import ConvGeometry
    rng = np.random.default_rng(8)
    x = rng.standard_normal((8, 32, 7, 7)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 4, 4)) * 0.1).astype(np.float32)
    if value is not None:
        x[3, 5, 2, 2] = value
    kw = dict(stride=2, padding=1)
    geometry = ConvGeometry(4, 4, 2, 2, 1, 1, 1, 1, 7, 7, 1)
    assert kernels.uses_wgrad_outer(16, 14, 14, 32, geometry) == kernels.use_cpu_avx2(True)
    out, gx, gw, gb, g = run(x, w, None, kw)
    previous = kernels.use_wgrad_outer(2)
    try:
        forced = run(x, w, None, kw)[2]
    finally:
        kernels.use_wgrad_outer(previous)
    np.testing.assert_array_equal(gw, forced)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv_transpose2d(xt, wt, **kw).backward(torch.tensor(g))
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert np.isfinite(gw).all() == (value is None)


def test_channels_last_input_gradient_on_the_direct_kernel():
    """The channels-last input gradient (a channels-last conv2d of the output gradient)
    runs on the direct kernel as conv2d's channels-last forward does: the NCHW input
    gradient's bits (the direct kernel sums as channels-first) and the loop's values."""
    from minipool._kernels import conv2d as kernels
    from minipool.ops.conv import ConvGeometry
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4, 32, 7, 7)).astype(np.float32)
    w = (rng.standard_normal((32, 16, 4, 4)) * 0.1).astype(np.float32)
    kw = dict(stride=2, padding=1)
    geometry = ConvGeometry(4, 4, 2, 2, 1, 1, 1, 1, 7, 7, 1)
    assert kernels.uses_direct_channels_last(16, 14, 14, 32, geometry) == kernels.use_cpu_avx2(True)
    first = run(x, w, None, kw)
    xt = mp.tensor(np.ascontiguousarray(np.moveaxis(x, 1, -1)), requires_grad=True)
    out = F.conv_transpose2d(xt, mp.tensor(w), **kw, data_format="channels_last")
    out.backward(np.ascontiguousarray(np.moveaxis(first[4], 1, -1)))
    np.testing.assert_array_equal(np.moveaxis(xt.grad.numpy(), -1, 1), first[1])
    want = scatter_reference(x, w, None, **kw, grad_out=first[4])[1]
    np.testing.assert_allclose(first[1], want, rtol=1e-4, atol=1e-4)
