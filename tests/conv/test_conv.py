"""F.conv2d and its kernels (minipool/_kernels/conv2d.pyx).

Checked against the direct loop convolution in ``tests/references/conv_reference.py`` (forward
and all three gradients), float64 central differences, PyTorch (when
installed), the adjoint identity between im2col and col2im, inf/NaN inputs and
weights, column blocks, the loop GEMM stand-in, and 1 vs 2 threads bit for bit.
Bad arguments must raise errors that name them.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from minipool._kernels.conv2d import col2im, im2col
from tests.conv.conv_checks import (check_bias_free_matches_loop_reference,
                                    check_matches_loop_reference, check_matches_torch,
                                    inputs_with_inf_and_nan, make, out_len, reference, run,
                                    small_column_blocks_inputs)
from tests.conv.conv_checks import check_random_geometry  # noqa: F401 (importable from here too)
from tests.helpers import with_threads


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
    (2, 2, 6, 7, 16, 3, 2, 1, 1, 1, True),           # 16 outputs per group: G.T copied (gathered)
    (2, 4, 6, 7, 32, 3, 1, 1, 1, 2, True),           # ... and shifted, padded, grouped
]
IDS = [f"case{i}" for i in range(len(CASES))]


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
    kh, kw, sh, sw, ph, pw, dh, dw = 3, 2, 2, 1, 1, 2, 2, 1
    Ho, Wo = out_len(9, kh, sh, ph, ph, dh), out_len(8, kw, sw, pw, pw, dw)
    geometry = (kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo, 1)
    cols = np.empty((3 * kh * kw, 2 * Ho * Wo), dtype)
    im2col(x, cols, geometry, 1)
    c = rng.standard_normal(cols.shape).astype(dtype)
    back = np.empty_like(x)
    col2im(c, back, geometry, 1)
    lhs = np.sum(cols.astype(np.float64) * c)
    rhs = np.sum(x.astype(np.float64) * back)
    assert np.isclose(lhs, rhs, rtol=1e-5 if dtype == np.float32 else 1e-12)
    # every column entry is an input cell or a padding zero
    assert set(np.unique(cols)) <= set(np.unique(x)) | {0}


def test_kernels_reject_mismatched_buffers():
    x = np.zeros((1, 2, 5, 5), np.float32)
    geometry = (3, 3, 1, 1, 0, 0, 1, 1, 3, 3, 1)
    with pytest.raises(ValueError, match="cols has shape"):
        im2col(x, np.zeros((17, 9), np.float32), geometry, 1)
    with pytest.raises(ValueError, match="geometry"):
        im2col(x, np.zeros((18, 9), np.float32), (3, 3, 0, 1, 0, 0, 1, 1, 3, 3, 1), 1)
    with pytest.raises(ValueError):  # dtypes must agree (fused types)
        im2col(x, np.zeros((18, 9), np.float64), geometry, 1)
    w = np.zeros((4, 18), np.float32)
    out = np.zeros((1, 4, 3, 3), np.float32)
    block_rows, forward, backward = kernels.plan(2, 5, 5, 4, geometry, 1 << 16)
    with pytest.raises(ValueError, match="workspace"):
        kernels.conv2d_forward(x, w, None, out, geometry, block_rows, np.zeros((1, forward - 1), np.float32), 1)
    with pytest.raises(ValueError, match="workspace"):  # one row per thread
        kernels.conv2d_forward(x, w, None, out, geometry, block_rows, np.zeros((1, forward), np.float32), 2)
    with pytest.raises(ValueError, match="do not match"):
        kernels.conv2d_forward(x, w[:, :9].copy(), None, out, geometry, block_rows, np.zeros((1, forward), np.float32), 1)
    with pytest.raises(ValueError, match="bias"):
        kernels.conv2d_forward(x, w, np.zeros(3, np.float32), out, geometry, block_rows,
                               np.zeros((1, forward), np.float32), 1)
    with pytest.raises(ValueError, match="weight_slots"):
        kernels.conv2d_backward(x, w, out, None, np.zeros((4, 1, 18, 3), np.float32), None, geometry, block_rows,
                                np.zeros((1, backward), np.float32), 1)
    with pytest.raises(ValueError, match="bias_slots"):
        kernels.conv2d_backward(x, w, out, None, np.zeros((4, 1, 18, 4), np.float32), np.zeros((3, 4), np.float32),
                                geometry, block_rows, np.zeros((1, backward), np.float32), 1)
    with pytest.raises(ValueError, match="grad_x"):
        kernels.conv2d_backward(x, w, out, np.zeros((1, 2, 5, 4), np.float32), None, None, geometry, block_rows,
                                np.zeros((1, backward), np.float32), 1)


def lenet_like(shape, out_channels, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((out_channels, shape[1], 5, 5)).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    return x, w, b


@pytest.mark.parametrize("shape,out_channels,kwargs", [
    ((64, 1, 32, 32), 6, {}),                       # LeNet's conv1 and conv2 (shifted columns)
    ((33, 6, 14, 14), 16, {}),                      # 33 images: weight slots of unequal size
    ((33, 6, 14, 14), 16, dict(padding=1)),         # padded planes
    ((20, 4, 15, 15), 6, dict(stride=2, padding=2)),  # gathered columns
])
def test_one_and_two_threads_are_bit_identical(shape, out_channels, kwargs):
    x, w, b = lenet_like(shape, out_channels, 11)
    results = [with_threads(t, lambda: run(x, w, b, kwargs)) for t in (1, 2)]
    for one, two_ in zip(*results):
        np.testing.assert_array_equal(one, two_)
    # and the batch im2col/col2im, called with explicit thread counts
    geometry = (5, 5, 1, 1, 0, 0, 1, 1, shape[2] - 4, shape[3] - 4, 1)
    cols = [np.empty((shape[1] * 25, shape[0] * (shape[2] - 4) * (shape[3] - 4)), np.float32) for _ in range(2)]
    grads = [np.empty_like(x) for _ in range(2)]
    for t in (1, 2):
        im2col(x, cols[t - 1], geometry, t)
        col2im(cols[0] * 1.5, grads[t - 1], geometry, t)
    np.testing.assert_array_equal(cols[0], cols[1])
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, padding=(0, 2)),
                                    dict(padding="same", dilation=2, groups=2)])
def test_column_blocks_match_whole_images(kwargs, monkeypatch):
    """A small block budget cuts every image into several blocks of output rows."""
    from minipool.ops import conv as conv_module
    x, w, b = small_column_blocks_inputs(kwargs, monkeypatch)
    blocks = conv_module._plan(x.shape, 6, conv_module.ConvGeometry(3, 3, 1, 1, 1, 1, 1, 1, 19, 17, 1))[0]
    assert blocks < 19 // 2
    blocked = run(x, w, b, kwargs)
    ref = reference(x, w, b, **{**dict(stride=1, padding=0, dilation=1, groups=1), **kwargs},
                    grad_out=blocked[4])
    for name, got, want in zip(["out", "grad_x", "grad_w", "grad_b"], blocked[:4], ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("case", CASES[:6], ids=IDS[:6])
def test_loop_gemm_matches_reference(case, loop_gemm):
    check_matches_loop_reference(case)


@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("padding", [0, 1])
def test_non_finite_values_reach_exactly_the_outputs_they_touch(where, value, padding):
    """Shifted columns also compute pixels between output rows; backward must not let
    them turn a finite gradient into NaN (0 * inf) where no window reads the value."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 7, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    if where == "input":
        x[1, 0, 3, 0] = value  # first column: the pixel just after the previous row's garbage
    else:
        w[1, 0, 0, 2] = value
    out, gx, gw, g = check_bias_free_matches_loop_reference(x, w, padding)
    assert np.isfinite(gw).sum() > 0 and np.isfinite(gx).sum() > 0  # not all swamped


@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("padding", [0, 1])
def test_non_finite_values_match_torch(where, padding):
    torch = pytest.importorskip("torch")
    x, w = inputs_with_inf_and_nan(where)
    out, gx, gw, gb, g = run(x, w, None, dict(padding=padding))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    ref = torch.nn.functional.conv2d(xt, wt, padding=padding)
    ref.backward(torch.tensor(g))
    for name, got, want in zip(["out", "grad_x", "grad_w"], (out, gx, gw), (ref, xt.grad, wt.grad)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg=name)


# ------------------------------------------------------------------ PyTorch parity
torch_cases = CASES + [(64, 1, 32, 32, 6, 5, 1, 0, 1, 1, True), (64, 6, 14, 14, 16, 5, 1, 0, 1, 1, True)]


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note about its own padded copy
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("case", torch_cases, ids=[f"case{i}" for i in range(len(torch_cases))])
def test_matches_torch(case, dtype, rtol):
    check_matches_torch(case, dtype, rtol, seed=5)


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
    (dict(groups=2.0), TypeError, "groups"),
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


# ------------------------------------------------------------------ recycled buffers
def test_saved_columns_survive_later_convolutions_and_retain_graph():
    """What a graph saved for backward (input, weight) must not be overwritten by later
    convolutions that reuse pooled buffers, nor by a retained graph's second backward."""
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


def test_openblas_thread_count_is_restored_after_a_parallel_convolution():
    """The kernel holds OpenBLAS to one thread while it runs, then gives NumPy its setting back."""
    from minipool._blas import blas_num_threads, set_blas_num_threads
    before = blas_num_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS minipool can reach")
    x, w, b = lenet_like((8, 6, 14, 14), 16, 3)
    try:
        set_blas_num_threads(2)
        with_threads(2, lambda: run(x, w, b, {}))
        assert blas_num_threads() == 2
    finally:
        set_blas_num_threads(before)


@pytest.mark.parametrize("size,padding,dilation", [(2, 2 ** 31 - 1, 2 ** 31 - 1), (5, 2 ** 20, 2 ** 20)])
def test_huge_padding_and_dilation_give_a_small_exact_output(size, padding, dilation):
    """Found in review: the padded planes of such a call (2**32 x 2**32) overflowed the
    workspace size; a kernel that reaches far beyond the output now gathers columns."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((1, 1, size, size)), rng.standard_normal((1, 1, 3, 3))
    out, gx, gw, gb, g = run(x, w, None, dict(padding=padding, dilation=dilation))
    assert out.shape == (1, 1, size, size)
    for name, got, want in zip(["out", "grad_x", "grad_w"], (out, gx, gw),
                               reference(x, w, None, 1, padding, dilation, 1, grad_out=g)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("shape,out_channels,padding", [((2, 1, 128, 128), 64, 0), ((2, 3, 96, 96), 32, 1)])
def test_thread_count_does_not_change_bits_while_openblas_is_multithreaded(shape, out_channels, padding):
    """Found in review: with minipool on one thread, OpenBLAS (left on 2) used its
    threaded GEMM, whose rounding differs; the kernel now always pins it to one."""
    from minipool._blas import blas_num_threads, set_blas_num_threads
    before = blas_num_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS minipool can reach")
    rng = np.random.default_rng(8)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((out_channels, shape[1], 3, 3)).astype(np.float32)
    try:
        set_blas_num_threads(2)
        results = [with_threads(t, lambda: run(x, w, None, dict(padding=padding))) for t in (1, 2)]
    finally:
        set_blas_num_threads(before)
    for one, two_ in zip(results[0][:3], results[1][:3]):
        np.testing.assert_array_equal(one, two_)


def test_overlapping_single_threaded_blocks_restore_openblas_once():
    import threading
    from minipool._blas import blas_num_threads, set_blas_num_threads, single_threaded
    before = blas_num_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS minipool can reach")
    inside, release = threading.Event(), threading.Event()

    def hold():
        with single_threaded():
            inside.set()
            release.wait(10)

    try:
        set_blas_num_threads(2)
        other = threading.Thread(target=hold)
        other.start()
        inside.wait(10)
        with single_threaded():
            assert blas_num_threads() == 1
        assert blas_num_threads() == 1  # the other block is still running
        release.set()
        other.join(10)
        assert blas_num_threads() == 2
    finally:
        release.set()
        set_blas_num_threads(before)


def test_single_threaded_gives_openblas_back_after_an_error():
    from minipool._blas import blas_num_threads, set_blas_num_threads, single_threaded
    before = blas_num_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS minipool can reach")
    try:
        set_blas_num_threads(2)
        with pytest.raises(KeyError):
            with single_threaded():
                assert blas_num_threads() == 1
                raise KeyError("inside")
        assert blas_num_threads() == 2
        with single_threaded(), single_threaded():  # nested in one thread
            assert blas_num_threads() == 1
        assert blas_num_threads() == 2
    finally:
        set_blas_num_threads(before)


def test_zero_input_channels_give_the_bias_and_its_gradient():
    """No input channels: every output is the bias (PyTorch 2.13 returns no channels at all
    here; see the README), and the bias gradient is still the output gradient's sum."""
    x = mp.tensor(np.zeros((2, 0, 5, 5)), requires_grad=True)
    w = mp.tensor(np.zeros((3, 0, 3, 3)), requires_grad=True)
    b = mp.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = F.conv2d(x, w, b)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(g)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(b.numpy()[None, :, None, None], (2, 3, 3, 3)))
    np.testing.assert_allclose(b.grad.numpy(), g.sum(axis=(0, 2, 3)), rtol=1e-13)
    assert w.grad.shape == (3, 0, 3, 3) and x.grad.shape == (2, 0, 5, 5)


# ------------------------------------------------------------------ several images per GEMM
# (N, C, H, W, O, kernel, stride, padding, dilation, groups, bias); with the fixture below
# every batch goes 2-3 images per GEMM and its last GEMM holds fewer
MULTI_IMAGE_CASES = [
    (7, 3, 5, 6, 4, 3, 1, 1, 1, 1, True),            # shifted columns from padded planes
    (7, 2, 6, 5, 16, 3, 1, 0, 1, 1, True),           # shifted, G.T copied (16 outputs)
    (5, 16, 4, 4, 8, 3, 1, 1, 1, 1, True),           # 16 channels on 4x4: gathered columns
    (5, 16, 5, 3, 32, (3, 2), 2, 1, 1, 2, False),    # strided, grouped, odd plane
    (6, 4, 6, 6, 6, 3, 1, 2, 2, 2, True),            # dilated, grouped
]
MULTI_IDS = [f"multi{i}" for i in range(len(MULTI_IMAGE_CASES))]


@pytest.fixture
def images_per_gemm(monkeypatch):
    """Many images per GEMM even for tiny batches; yields the ``images`` each kernel call got."""
    from minipool.ops import conv as conv_module
    monkeypatch.setattr(conv_module, "GEMM_COLUMNS", 1 << 20)
    monkeypatch.setattr(conv_module, "MIN_GEMMS", 2)
    seen = []
    for name in ("conv2d_forward", "conv2d_backward"):
        def spy(*args, _kernel=getattr(kernels, name), **options):
            seen.append(args[-1])
            return _kernel(*args, **options)
        monkeypatch.setattr(conv_module.kernels, name, spy)
    yield seen
    assert seen and min(seen) > 1  # the path under test was taken


@pytest.mark.parametrize("case", MULTI_IMAGE_CASES, ids=MULTI_IDS)
def test_images_per_gemm_match_loop_reference(case, images_per_gemm):
    check_matches_loop_reference(case, seed=7)


@pytest.mark.parametrize("case", MULTI_IMAGE_CASES, ids=MULTI_IDS)
def test_images_per_gemm_match_torch(case, images_per_gemm):
    check_matches_torch(case, np.float32, 1e-5, seed=8)


@pytest.mark.parametrize("case", MULTI_IMAGE_CASES[:3], ids=MULTI_IDS[:3])
def test_images_per_gemm_gradcheck_float64(case, images_per_gemm):
    x, w, b, kw = make(case, seed=9)
    x = x[:4, :4]  # 4 images, 2 per GEMM; a short finite-difference loop
    w = w[:, :x.shape[1] // kw["groups"]]
    inputs = [mp.tensor(x, requires_grad=True), mp.tensor(w, requires_grad=True)]
    if b is not None:
        inputs.append(mp.tensor(b, requires_grad=True))
    assert mp.gradcheck(lambda *t: F.conv2d(*t, **kw), inputs)


@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_images_per_gemm_non_finite_input_takes_gathered_columns(value, images_per_gemm):
    """One non-finite image sends its whole GEMM to gathered columns (shifted ones would
    let its dropped columns meet the finite gradient); the others' gradients stay exact."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 2, 7, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    x[1, 0, 3, 0] = value
    out, gx, gw, g = check_bias_free_matches_loop_reference(x, w, 1)
    assert np.isfinite(gx[[0, 2, 3, 4]]).all()


@pytest.mark.parametrize("shape,out_channels,padding", [
    ((64, 32, 8, 8), 64, 1),   # 16+ channels on 8x8: gathered columns, 8 images per GEMM
    ((19, 3, 6, 6), 8, 1),     # shifted columns from padded planes, a last GEMM of 1 image
    ((33, 16, 4, 4), 16, 2),   # 5x5 on 4x4 planes: mostly padding
])
def test_images_per_gemm_one_and_two_threads_are_bit_identical(shape, out_channels, padding):
    from minipool.ops import conv as conv_module
    k = 5 if padding == 2 else 3
    geometry = conv_module.ConvGeometry(k, k, 1, 1, padding, padding, 1, 1, shape[2], shape[3], 1)
    assert conv_module._plan(shape, out_channels, geometry)[1] > 1  # as planned by default
    rng = np.random.default_rng(12)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((out_channels, shape[1], k, k)).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    results = [with_threads(t, lambda: run(x, w, b, dict(padding=padding))) for t in (1, 2)]
    for one, two_ in zip(*results):
        np.testing.assert_array_equal(one, two_)


def test_plan_batch_keeps_whole_blocks_wide_and_bounded():
    geometry = (3, 3, 1, 1, 1, 1, 1, 1, 8, 8, 1)
    # 128 channels on 8x8: one 64-column gathered block of 1152 taps, not two of 32
    rows, images, forward, backward = kernels.plan_batch(64, 128, 8, 8, 128, geometry, 1 << 16, 512, 8)
    assert (rows, images) == (8, 3)  # 3 images: 4x the budget bounds the block
    assert forward >= 1152 * 64 * images
    assert kernels.plan_batch(16, 128, 8, 8, 128, geometry, 1 << 16, 512, 8)[1] == 2  # 8 GEMMs
    assert kernels.plan_batch(64, 128, 8, 8, 128, geometry, 1 << 16, 0, 8)[1] == 1
    assert kernels.plan(128, 8, 8, 128, geometry, 1 << 16)[0] == 4  # one image per GEMM: halved
    with pytest.raises(ValueError, match="images"):
        x = np.zeros((2, 128, 8, 8), np.float32)
        kernels.conv2d_forward(x, np.zeros((128, 1152), np.float32), None,
                               np.zeros((2, 128, 8, 8), np.float32), geometry, 4,
                               np.zeros((1, forward), np.float32), 1, 2)


# ---------------------------------------------------------------- weight-gradient engines
# The weight-gradient engines' tests (test_conv_wgrad.py: tiles, test_conv_wgrad_outer.py:
# outer products) run these checks with the engine forced on by their fixture.
def weight_grad(x, w, kwargs, g):
    """conv2d's weight gradient for the output gradient g (no bias, no input gradient)."""
    wt = mp.tensor(w, requires_grad=True)
    F.conv2d(mp.tensor(x), wt, None, **kwargs).backward(g)
    return wt.grad.numpy()


def check_weight_grad_matches_torch_float32(case):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(case, np.float32, seed=3)
    out, gx, gw, gb, g = run(x, w, b, kw)
    tw = torch.from_numpy(w).requires_grad_()
    torch.nn.functional.conv2d(torch.from_numpy(x), tw, None, **kw).backward(torch.from_numpy(g))
    want = tw.grad.numpy()
    np.testing.assert_allclose(gw, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def check_weight_grad_finite_differences(case):
    """float64 central differences at 4 random weights of a 2-image batch."""
    x, w, b, kw = make(case, seed=4)
    x, w = x[:2] * 0.5, w * 0.5
    rng = np.random.default_rng(8)
    with mp.no_grad():
        g = rng.standard_normal(F.conv2d(mp.tensor(x), mp.tensor(w), **kw).shape)
    analytic = weight_grad(x, w, kw, g)

    def loss():
        with mp.no_grad():
            return (F.conv2d(mp.tensor(x), mp.tensor(w), **kw).numpy() * g).sum()

    for index in map(tuple, rng.integers(0, w.shape, size=(4, w.ndim))):
        old, eps = w[index], 1e-6
        w[index] = old + eps
        plus = loss()
        w[index] = old - eps
        minus = loss()
        w[index] = old
        assert abs((plus - minus) / (2 * eps) - analytic[index]) < 1e-6 * max(1, abs(analytic[index]))


def check_one_and_two_threads_bit_identical(case, dtype):
    x, w, b, kw = make(case, dtype, seed=5)
    one, two = (with_threads(t, lambda: run(x, w, b, kw)) for t in (1, 2))
    for name, a, b_ in zip(["out", "grad_x", "grad_w", "grad_b", "g"], one, two):
        np.testing.assert_array_equal(a, b_, err_msg=name)
