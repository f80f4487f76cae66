"""F.conv2d and its im2col/col2im kernels.

Checked against the direct loop convolution in ``conv_reference.py`` (forward
and all three gradients), float64 central differences, PyTorch (when
installed), the adjoint identity between im2col and col2im, and 1 vs 2 threads
bit for bit.  Bad arguments must raise errors that name them.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from conv_reference import conv2d_with_grads
from minipool._kernels.im2col import col2im, im2col


def out_len(size, k, s, before, after, d):
    return (size + before + after - d * (k - 1) - 1) // s + 1


def resolve_padding(padding, kernel, dilation):
    """(top, bottom, left, right) as PyTorch defines them."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return ph, ph, pw, pw


def two(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def reference(x, w, b, stride, padding, dilation, groups, grad_out=None):
    kh, kw = w.shape[2:]
    stride, dilation = two(stride), two(dilation)
    top, bottom, left, right = resolve_padding(padding, (kh, kw), dilation)
    out_hw = (out_len(x.shape[2], kh, stride[0], top, bottom, dilation[0]),
              out_len(x.shape[3], kw, stride[1], left, right, dilation[1]))
    return conv2d_with_grads(x, w, b, stride, top, left, out_hw, dilation, groups, grad_out)


# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias)
CASES = [
    (2, 3, 7, 6, 4, 3, 1, 0, 1, 1, True),
    (2, 2, 8, 9, 3, 3, 2, 1, 1, 1, False),
    (1, 4, 9, 8, 6, (2, 3), (2, 1), (1, 2), (2, 1), 2, True),
    (2, 6, 6, 7, 6, 3, 1, 1, 2, 6, True),          # depthwise, dilated
    (1, 2, 5, 6, 2, (3, 2), 1, "same", 1, 1, True),  # 'same' with an even kernel: asymmetric
    (2, 2, 6, 6, 4, 3, 1, "same", 2, 2, False),
    (1, 3, 5, 5, 2, 5, 1, "valid", 1, 1, True),      # kernel covers the whole input
    (2, 1, 4, 4, 3, 1, 1, 0, 1, 1, True),            # 1x1 kernel
    (1, 2, 5, 5, 2, 3, 3, 2, 1, 1, True),            # padding wider than stride leaves
    (1, 2, 4, 4, 2, 3, 1, 5, 1, 1, True),            # padding wider than the kernel: all-zero rows
    (2, 2, 3, 5, 2, 2, 2, (4, 0), 3, 1, False),      # dilated kernel spanning mostly padding
]
IDS = [f"case{i}" for i in range(len(CASES))]


def make(case, dtype=np.float64, seed=0):
    N, C, H, W, O, k, s, p, d, g, bias = case
    rng = np.random.default_rng(seed)
    kh, kw = two(k)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // g, kh, kw)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype) if bias else None
    return x, w, b, dict(stride=s, padding=p, dilation=d, groups=g)


def run(x, w, b, kwargs, grad_out_seed=1):
    xt = mp.tensor(x, requires_grad=True)
    wt = mp.tensor(w, requires_grad=True)
    bt = None if b is None else mp.tensor(b, requires_grad=True)
    out = F.conv2d(xt, wt, bt, **kwargs)
    g = np.random.default_rng(grad_out_seed).standard_normal(out.shape).astype(x.dtype)
    out.backward(g)
    return out.numpy(), xt.grad.numpy(), wt.grad.numpy(), (None if b is None else bt.grad.numpy()), g


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_and_gradients_match_loop_reference(case):
    x, w, b, kw = make(case)
    out, gx, gw, gb, g = run(x, w, b, kw)
    ref_out, ref_gx, ref_gw, ref_gb = reference(x, w, b, **kw, grad_out=g)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, ref_gx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, ref_gw, rtol=1e-12, atol=1e-12)
    if b is not None:
        np.testing.assert_allclose(gb, ref_gb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES[:7], ids=IDS[:7])
def test_gradcheck_float64(case):
    x, w, b, kw = make(case, seed=3)
    x, w = x[:1, :, :6, :6], w  # keep the finite-difference loop small
    inputs = [mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)]
    if b is not None:
        inputs.append(mp.tensor(b, requires_grad=True))
    assert mp.gradcheck(lambda *t: F.conv2d(*t, **kw), inputs)


@settings(max_examples=40, deadline=None)
@given(N=st.integers(0, 2), groups=st.sampled_from([1, 2]), cpg=st.integers(1, 2),
       opg=st.integers(1, 2), H=st.integers(1, 7), W=st.integers(1, 7),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), dh=st.integers(1, 2), dw=st.integers(1, 2),
       bias=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99))
def test_random_geometry_matches_reference(N, groups, cpg, opg, H, W, kh, kw, sh, sw, ph, pw, dh,
                                           dw, bias, dtype, seed):
    if out_len(H, kh, sh, ph, ph, dh) < 1 or out_len(W, kw, sw, pw, pw, dw) < 1:
        return  # the kernel does not fit (covered by the error tests)
    case = (N, cpg * groups, H, W, opg * groups, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups, bias)
    x, w, b, kwargs = make(case, dtype, seed)
    out, gx, gw, gb, g = run(x, w, b, kwargs)
    ref = reference(x, w, b, **kwargs, grad_out=g)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    assert out.dtype == dtype and gx.dtype == dtype and gw.dtype == dtype
    for name, got, want in zip(["out", "grad_x", "grad_w", "grad_b"], (out, gx, gw, gb), ref):
        if got is not None:
            np.testing.assert_allclose(got, want, err_msg=name, **tol)


def test_unbatched_input_and_non_contiguous_input():
    x, w, b, kw = make(CASES[0])
    batched = F.conv2d(mp.tensor(x), mp.tensor(w), mp.tensor(b), **kw).numpy()
    single = F.conv2d(mp.tensor(x[1]), mp.tensor(w), mp.tensor(b), **kw)
    assert single.shape == batched.shape[1:]
    np.testing.assert_allclose(single.numpy(), batched[1], rtol=1e-13, atol=1e-13)
    # a transposed view (negative and non-unit strides) gives the same result
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2))[:, :, ::-1, :]
    view = xt[:, :, ::-1, :].transpose(0, 1, 3, 2)
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(F.conv2d(mp.tensor(view), mp.tensor(w), mp.tensor(b), **kw).numpy(),
                                  batched)
    # and the gradient of an unbatched input has its shape
    xt1 = mp.tensor(x[0], requires_grad=True)
    F.conv2d(xt1, mp.tensor(w), **kw).sum().backward()
    assert xt1.grad.shape == x[0].shape


def test_empty_batch():
    x = mp.zeros(0, 3, 8, 8, requires_grad=True)
    w = mp.tensor(np.ones((4, 3, 3, 3), np.float32), requires_grad=True)
    out = F.conv2d(x, w, padding=1)
    assert out.shape == (0, 4, 8, 8)
    out.sum().backward()
    assert x.grad.shape == (0, 3, 8, 8)
    np.testing.assert_array_equal(w.grad.numpy(), 0)


def test_no_grad_and_partial_requires_grad():
    x, w, b, kw = make(CASES[1])
    with mp.no_grad():
        y = F.conv2d(mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True), **kw)
    assert not y.requires_grad
    # only the weight needs a gradient (the first layer of a network)
    wt = mp.tensor(w, requires_grad=True)
    F.conv2d(mp.tensor(x), wt, **kw).sum().backward()
    ref = reference(x, w, None, **kw, grad_out=np.ones(y.shape))
    np.testing.assert_allclose(wt.grad.numpy(), ref[2], rtol=1e-12)


def test_gradients_accumulate_when_input_is_reused():
    x, w, b, kw = make(CASES[0])
    xt, wt = mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)
    (F.conv2d(xt, wt, **kw).sum() + F.conv2d(xt, wt, **kw).sum()).backward()
    ref = reference(x, w, None, **kw, grad_out=np.ones((2, 4, 5, 4)))
    np.testing.assert_allclose(xt.grad.numpy(), 2 * ref[1], rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), 2 * ref[2], rtol=1e-12)


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_and_col2im_are_adjoint(dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    geometry = (3, 2, 2, 1, 1, 2, 2, 1)  # kh kw sh sw ph pw dh dw
    kh, kw, sh, sw, ph, pw, dh, dw = geometry
    Ho, Wo = out_len(9, kh, sh, ph, ph, dh), out_len(8, kw, sw, pw, pw, dw)
    cols = np.empty((3 * kh * kw, 2 * Ho * Wo), dtype)
    im2col(x, cols, *geometry, Ho, Wo, 1)
    c = rng.standard_normal(cols.shape).astype(dtype)
    back = np.empty_like(x)
    col2im(c, back, *geometry, Ho, Wo, 1)
    lhs = np.sum(cols.astype(np.float64) * c)
    rhs = np.sum(x.astype(np.float64) * back)
    assert np.isclose(lhs, rhs, rtol=1e-5 if dtype == np.float32 else 1e-12)
    # every column entry is an input cell or a padding zero
    assert set(np.unique(cols)) <= set(np.unique(x)) | {0}


def test_kernels_reject_mismatched_buffers():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="cols has shape"):
        im2col(x, np.zeros((17, 9), np.float32), 3, 3, 1, 1, 0, 0, 1, 1, 3, 3, 1)
    with pytest.raises(ValueError, match="stride"):
        im2col(x, np.zeros((18, 9), np.float32), 3, 3, 0, 1, 0, 0, 1, 1, 3, 3, 1)
    with pytest.raises(ValueError):  # dtypes must agree (fused types)
        im2col(x, np.zeros((18, 9), np.float64), 3, 3, 1, 1, 0, 0, 1, 1, 3, 3, 1)


@pytest.mark.parametrize("shape,out_channels", [((64, 1, 32, 32), 6), ((64, 6, 14, 14), 16)])
def test_one_and_two_threads_are_bit_identical(shape, out_channels):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((out_channels, shape[1], 5, 5)).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    g = rng.standard_normal((shape[0], out_channels, shape[2] - 4, shape[3] - 4)).astype(np.float32)
    results = []
    old = mp.get_num_threads()
    try:
        for threads in (1, 2):
            mp.set_num_threads(threads)
            xt, wt, bt = (mp.tensor(a, requires_grad=True) for a in (x, w, b))
            out = F.conv2d(xt, wt, bt, padding=1, stride=1)
            gg = np.pad(g, ((0, 0), (0, 0), (1, 1), (1, 1)))
            out.backward(gg)
            results.append([out.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()])
    finally:
        mp.set_num_threads(old)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)
    # and the kernels themselves, called with explicit thread counts
    cols = [np.empty((shape[1] * 25, shape[0] * (shape[2] - 4) * (shape[3] - 4)), np.float32) for _ in range(2)]
    grads = [np.empty_like(x) for _ in range(2)]
    for t in (1, 2):
        im2col(x, cols[t - 1], 5, 5, 1, 1, 0, 0, 1, 1, shape[2] - 4, shape[3] - 4, t)
        col2im(cols[0] * 1.5, grads[t - 1], 5, 5, 1, 1, 0, 0, 1, 1, shape[2] - 4, shape[3] - 4, t)
    np.testing.assert_array_equal(cols[0], cols[1])
    np.testing.assert_array_equal(grads[0], grads[1])


# ------------------------------------------------------------------ PyTorch parity
torch_cases = CASES + [(64, 1, 32, 32, 6, 5, 1, 0, 1, 1, True), (64, 6, 14, 14, 16, 5, 1, 0, 1, 1, True)]


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note about its own padded copy
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("case", torch_cases, ids=[f"case{i}" for i in range(len(torch_cases))])
def test_matches_torch(case, dtype, rtol):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(case, dtype, seed=5)
    out, gx, gw, gb, g = run(x, w, b, kw)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    ref = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    ref.backward(torch.tensor(g))
    pairs = [(out, ref), (gx, xt.grad), (gw, wt.grad)] + ([(gb, bt.grad)] if b is not None else [])
    for name, (got, want) in zip(["out", "grad_x", "grad_w", "grad_b"], pairs):
        want = want.detach().numpy()
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=name)


# ------------------------------------------------------------------ errors
def conv_args(**over):
    args = dict(input=mp.zeros(2, 4, 8, 8), weight=mp.zeros(6, 2, 3, 3), bias=None, stride=1,
                padding=0, dilation=1, groups=2)
    args.update(over)
    return args


@pytest.mark.parametrize("over,error,match", [
    (dict(input=mp.zeros(4, 8)), ValueError, "input"),
    (dict(input=mp.zeros(2, 3, 8, 8)), ValueError, "channels"),
    (dict(weight=mp.zeros(6, 2, 3)), ValueError, "weight"),
    (dict(weight=mp.zeros(5, 2, 3, 3)), ValueError, "divisible by groups"),
    (dict(groups=0), ValueError, "groups"),
    (dict(bias=mp.zeros(5)), ValueError, "bias"),
    (dict(stride=0), ValueError, "stride"),
    (dict(stride=(1, 2, 3)), ValueError, "stride"),
    (dict(dilation=0), ValueError, "dilation"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(padding="full"), ValueError, "padding"),
    (dict(padding="same", stride=2), ValueError, "same"),
    (dict(stride=1.5), TypeError, "stride"),
    (dict(stride=2 ** 63), ValueError, "stride must be <="),
    (dict(padding=2 ** 62), ValueError, "padding must be <="),
    (dict(padding=2 ** 30), ValueError, "too large"),
    (dict(weight=mp.zeros(6, 2, 9, 9)), ValueError, "smaller than the dilated kernel"),
    (dict(dilation=4), ValueError, "smaller than the dilated kernel"),
    (dict(weight=mp.zeros(6, 2, 3, 3, dtype=np.float64)), TypeError, "weight dtype"),
    (dict(input=mp.zeros(2, 4, 8, 8, dtype=np.int64)), TypeError, "input"),
])
def test_bad_arguments_raise_named_errors(over, error, match):
    with pytest.raises(error, match=match):
        F.conv2d(**conv_args(**over))


@pytest.mark.parametrize("groups", [1, 2])
def test_image_chunked_gemms_match_one_gemm(groups, monkeypatch):
    """Few output channels and many columns take the chunked path (one GEMM per chunk of
    images); it must agree with the single-GEMM path (float64, to rounding) and use more
    than one chunk."""
    from minipool.ops import conv as conv_module
    rng = np.random.default_rng(21)
    x = rng.standard_normal((4, 2 * groups, 48, 48))
    w = rng.standard_normal((3 * groups, 2, 3, 3))
    b = rng.standard_normal(3 * groups)
    assert len(conv_module.image_chunks(4, 46 * 46, 3)) > 1
    chunked = run(x, w, b, dict(groups=groups))
    monkeypatch.setattr(conv_module, "SKINNY_OUT_CHANNELS", 0)
    monkeypatch.setattr(conv_module, "MIN_SPLIT_COLUMNS", 10 ** 9)
    assert len(conv_module.image_chunks(4, 46 * 46, 3)) == 1
    single = run(x, w, b, dict(groups=groups))
    for got, want in zip(chunked[:4], single[:4]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_chunked_convolution_is_bit_identical_for_1_and_2_threads():
    """With 2 threads a helper thread takes half of the image chunks; every output and
    gradient must keep exactly the bits of the 1-thread run (float32, LeNet's conv2)."""
    from minipool.ops import conv as conv_module
    rng = np.random.default_rng(22)
    x = rng.standard_normal((33, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    assert len(conv_module.image_chunks(33, 100, 16)) == 2
    from minipool._blas import blas_num_threads, set_blas_num_threads
    old, old_blas = mp.get_num_threads(), blas_num_threads()
    set_blas_num_threads(1)  # the two lanes run only while BLAS is on one thread
    results = []
    try:
        for threads in (1, 2):
            mp.set_num_threads(threads)
            results.append(run(x, w, b, {}))
    finally:
        mp.set_num_threads(old)
        if old_blas is not None:
            set_blas_num_threads(old_blas)
    for one, two in zip(*results):
        if one is not None:
            np.testing.assert_array_equal(one, two)


# ------------------------------------------------------------------ recycled buffers
def test_saved_columns_survive_later_convolutions_and_retain_graph():
    """The im2col matrix saved for backward must not be recycled while its graph lives."""
    rng = np.random.default_rng(31)
    w_np = rng.standard_normal((3, 2, 3, 3))
    xs = [rng.standard_normal((2, 2, 40, 40)) for _ in range(3)]
    w = mp.tensor(w_np, requires_grad=True)
    outs = [F.conv2d(mp.tensor(x), w) for x in xs]  # three live graphs, same shapes
    outs[0].sum().backward(retain_graph=True)
    outs[2].sum().backward()
    outs[0].sum().backward()  # the retained graph again, after other convolutions ran
    ones = np.ones((2, 3, 38, 38))
    expected = 2 * reference(xs[0], w_np, None, 1, 0, 1, 1, ones)[2] + reference(xs[2], w_np, None, 1, 0, 1, 1, ones)[2]
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-11)


def test_workspace_recycles_only_unreferenced_buffers():
    from minipool.ops._workspace import Workspace
    ws = Workspace(max_bytes=10_000)
    a = ws.empty((10, 10), np.float64)           # 800 bytes
    view = a[2:]
    address = a.__array_interface__["data"][0]
    del a
    b = ws.empty((10, 10), np.float64)
    assert b.__array_interface__["data"][0] != address   # the view still holds the first one
    del view
    c = ws.empty((10, 10), np.float64)
    assert c.__array_interface__["data"][0] == address   # now it is free again
    d = ws.empty((10, 10), np.float32)                   # other dtype: another buffer
    assert d.dtype == np.float32 and d.shape == (10, 10)
    del b, c, d
    big = ws.empty((2000,), np.float64)                  # 16 kB: more than the pool keeps
    assert big.nbytes > ws.max_bytes and all(buf is not big for buf in ws._buffers)
    for rows in range(5, 25):                            # many shapes: free ones are evicted
        ws.empty((rows, 7), np.float64)
    assert ws.nbytes <= ws.max_bytes


def test_run_on_team_calls_everything_once_and_reraises():
    from minipool._kernels.im2col import run_on_team
    seen = []
    run_on_team([lambda k=k: seen.append(k) for k in range(5)], 2)
    assert sorted(seen) == [0, 1, 2, 3, 4]

    def fail():
        raise ValueError("lane failed")

    with pytest.raises(ValueError, match="lane failed"):
        run_on_team([lambda: None, fail], 2)
