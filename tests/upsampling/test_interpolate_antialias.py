"""interpolate(..., antialias=True): PyTorch's antialiased bilinear/bicubic.

An independent loop reference builds the filter taps straight from the
formula (float64, plain Python), PyTorch parity is bit for bit (forward and
gradient, float32/float64, NCHW and channels_last, size and scale_factor,
align_corners), plus float64 gradchecks, hypothesis over sizes and scales
and bad input.  Bit-for-bit parity is against the installed torch on this
x86-64 machine: minipool copies the order of sums of ATen's AVX512 build.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F

FAST = settings(max_examples=30, deadline=None)


# --------------------------------------------------------------------------- loop reference
def ref_filter(x, cubic):
    x = abs(x)
    if not cubic:
        return 1.0 - x if x < 1.0 else 0.0
    a = -0.5
    if x < 1.0:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2.0:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def ref_matrix(n_in, n_out, cubic, scale=None):
    """(n_out, n_in) resampling matrix from the formula: centre = scale * (o + 0.5),
    support = K/2 * max(scale, 1), taps j in [int(centre - support + 0.5),
    int(centre + support + 0.5)), weight filter((j - centre + 0.5) / max(scale, 1)),
    normalised per output."""
    scale = n_in / n_out if scale is None else scale
    stretch = max(scale, 1.0)
    support = (2.0 if cubic else 1.0) * stretch
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        centre = scale * (o + 0.5)
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        for j in range(lo, hi):
            m[o, j] = ref_filter((j - centre + 0.5) / stretch, cubic)
        total = m[o].sum()
        if total != 0:
            m[o] /= total
    return m


def ref_resize(x, out_hw, cubic, scales=(None, None)):
    """NCHW float64: rows then columns through the reference matrices (a loop per output)."""
    n, c, h, w = x.shape
    mh = ref_matrix(h, out_hw[0], cubic, scales[0])
    mw = ref_matrix(w, out_hw[1], cubic, scales[1])
    out = np.zeros((n, c) + tuple(out_hw))
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            out[:, :, i, j] = np.einsum("h,w,nchw->nc", mh[i], mw[j], x)
    return out


def mp_resize(x, data_format="channels_first", **kw):
    xin = x.transpose(0, 2, 3, 1).copy() if data_format == "channels_last" else x
    y = F.interpolate(mp.tensor(xin), antialias=True, data_format=data_format, **kw).numpy()
    return y.transpose(0, 3, 1, 2) if data_format == "channels_last" else y


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size", [(7, 5), (3, 11), (12, 9), (16, 4), (1, 1)])
def test_matches_loop_reference(mode, size):
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 11))
    got = mp_resize(x, size=size, mode=mode)
    want = ref_resize(x, size, mode == "bicubic")
    # an axis whose size does not change is copied, as in PyTorch
    if size[1] == 11:
        want = ref_resize(x, size, mode == "bicubic")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_reference_weights_shape_of_the_filter(mode):
    """The weights widen with the scale: x0.25 of 16 reads up to ceil(support) * 2 + 1 inputs."""
    m = ref_matrix(16, 4, mode == "bicubic")
    np.testing.assert_allclose(m.sum(1), 1.0)
    support = (2 if mode == "bicubic" else 1) * 4
    assert (m != 0).sum(1).max() <= 2 * support + 1
    x = np.eye(16).reshape(1, 16, 1, 16)  # one-hot columns: the output is the matrix itself
    got = mp_resize(x, size=(1, 4), mode=mode)[0, :, 0, :].T
    np.testing.assert_allclose(got, m, atol=1e-14)


# --------------------------------------------------------------------------- PyTorch parity
CASES = [((17, 23), dict(size=(8, 11))), ((56, 56), dict(scale_factor=0.5)),
         ((56, 56), dict(scale_factor=0.3)), ((30, 20), dict(size=(9, 7))),
         ((10, 10), dict(size=(13, 4))), ((9, 9), dict(size=(9, 4))),
         ((100, 61), dict(size=(7, 5))), ((5, 7), dict(size=(12, 3))),
         ((31, 33), dict(scale_factor=(0.3, 0.7))), ((8, 8), dict(scale_factor=1.7)),
         ((13, 15), dict(scale_factor=0.45, recompute_scale_factor=True)),
         ((6, 9), dict(size=(1, 1)))]


def torch_resize(torch, x, g, channels_last, **kw):
    """PyTorch's output and input gradient.  Its NCHW float kernel repeats the first row
    when the output width is 1 and the height changes (the channels_last kernel and the
    formula agree with each other there): minipool follows the formula, so such forward
    values are taken from PyTorch's channels_last run."""
    y, gx = _torch_run(torch, x, g, channels_last, **kw)
    if not channels_last and y.shape[3] == 1 and y.shape[2] != x.shape[2]:
        y = _torch_run(torch, x, g, True, **kw)[0]
    return y, gx


def _torch_run(torch, x, g, channels_last, **kw):
    tx = torch.from_numpy(x)
    if channels_last:
        tx = tx.contiguous(memory_format=torch.channels_last)
    tx.requires_grad_(True)
    y = torch.nn.functional.interpolate(tx, antialias=True, **kw)
    gx, = torch.autograd.grad(y, tx, torch.from_numpy(g))
    return y.detach().numpy(), gx.numpy()


def mp_resize_grad(x, g, channels_last, **kw):
    fmt = "channels_last" if channels_last else "channels_first"
    to = (lambda a: a.transpose(0, 2, 3, 1).copy()) if channels_last else (lambda a: a)
    back = (lambda a: a.transpose(0, 3, 1, 2)) if channels_last else (lambda a: a)
    xt = mp.tensor(to(x), requires_grad=True)
    y = F.interpolate(xt, antialias=True, data_format=fmt, **kw)
    y.backward(mp.tensor(to(g)))
    return back(y.numpy()), back(xt.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_torch_parity_bit_for_bit(dtype, mode, channels_last, align_corners, case):
    torch = pytest.importorskip("torch")
    (h, w), kw = case
    rng = np.random.default_rng(hash((h, w, mode)) % 2 ** 32)
    x = rng.standard_normal((2, 3, h, w)).astype(dtype)
    out_shape = torch.nn.functional.interpolate(torch.zeros(1, 1, h, w), **kw).shape[2:]
    g = rng.standard_normal((2, 3) + tuple(out_shape)).astype(dtype)
    kw = dict(kw, mode=mode, align_corners=align_corners)
    ty, tg = torch_resize(torch, x, g, channels_last, **kw)
    y, gx = mp_resize_grad(x, g, channels_last, **kw)
    assert y.dtype == dtype and gx.dtype == dtype
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(gx, tg)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_torch_parity_nan_inf(mode):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).standard_normal((1, 2, 12, 10)).astype(np.float32)
    x[0, 0, 3, 4] = np.inf
    x[0, 1, 7, 2] = np.nan
    x[0, 1, 0, 9] = -np.inf
    g = np.random.default_rng(5).standard_normal((1, 2, 5, 4)).astype(np.float32)
    g[0, 0, 1, 1] = np.inf
    for cl in (False, True):
        ty, tg = torch_resize(torch, x, g, cl, size=(5, 4), mode=mode)
        y, gx = mp_resize_grad(x, g, cl, size=(5, 4), mode=mode)
        np.testing.assert_array_equal(y, ty)
        np.testing.assert_array_equal(gx, tg)


def test_width_one_output_follows_the_formula():
    """PyTorch's NCHW float kernel gives [1.93, 1.93] here (first row repeated); its
    channels_last kernel, its uint8 kernel and the formula give [1.93, 5.07]."""
    x = np.arange(8, dtype=np.float64).reshape(1, 1, 4, 2)
    got = mp_resize(x, size=(2, 1), mode="bilinear")
    np.testing.assert_allclose(got, ref_resize(x, (2, 1), False), rtol=1e-14)
    np.testing.assert_allclose(got.ravel(), [27 / 14, 71 / 14], rtol=1e-14)


def test_same_size_is_a_copy_and_upscaling_bilinear_equals_no_antialias():
    x = np.random.default_rng(6).standard_normal((1, 2, 6, 7))
    np.testing.assert_array_equal(mp_resize(x, size=(6, 7), mode="bicubic"), x)
    up = mp_resize(x, size=(13, 15), mode="bilinear")
    plain = F.interpolate(mp.tensor(x), size=(13, 15), mode="bilinear").numpy()
    np.testing.assert_allclose(up, plain, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("kw", [dict(size=(4, 3)), dict(scale_factor=0.3),
                                dict(size=(9, 2), align_corners=True), dict(size=(11, 4))])
def test_gradcheck_float64(mode, kw):
    x = mp.tensor(np.random.default_rng(7).standard_normal((1, 2, 8, 7)), requires_grad=True)
    assert mp.gradcheck(lambda t: F.interpolate(t, mode=mode, antialias=True, **kw), [x])
    xl = mp.tensor(np.random.default_rng(8).standard_normal((1, 8, 7, 2)), requires_grad=True)
    assert mp.gradcheck(lambda t: F.interpolate(t, mode=mode, antialias=True,
                                                data_format="channels_last", **kw), [xl])


sides = st.integers(1, 40)
factors = st.sampled_from([0.5, 0.3, 0.25, 0.7, 1.0, 1.5, 2.0, 0.45])


@FAST
@given(h=sides, w=sides, fh=factors, fw=factors, mode=st.sampled_from(["bilinear", "bicubic"]),
       ac=st.booleans(), cl=st.booleans(), f64=st.booleans())
def test_hypothesis_torch_parity(h, w, fh, fw, mode, ac, cl, f64):
    torch = pytest.importorskip("torch")
    if int(h * fh) < 1 or int(w * fw) < 1:
        return
    dtype = np.float64 if f64 else np.float32
    rng = np.random.default_rng(h * 1000 + w)
    x = rng.standard_normal((1, 2, h, w)).astype(dtype)
    kw = dict(scale_factor=(fh, fw), mode=mode, align_corners=ac)
    out = torch.nn.functional.interpolate(torch.zeros(1, 1, h, w), **kw).shape[2:]
    g = rng.standard_normal((1, 2) + tuple(out)).astype(dtype)
    ty, tg = torch_resize(torch, x, g, cl, **kw)
    y, gx = mp_resize_grad(x, g, cl, **kw)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(gx, tg)


@FAST
@given(h=st.integers(2, 30), w=st.integers(2, 30), oh=st.integers(1, 30), ow=st.integers(1, 30),
       mode=st.sampled_from(["bilinear", "bicubic"]))
def test_hypothesis_against_loop_reference(h, w, oh, ow, mode):
    x = np.random.default_rng(h * 31 + w).standard_normal((1, 1, h, w))
    got = mp_resize(x, size=(oh, ow), mode=mode)
    cubic = mode == "bicubic"
    want = x
    # PyTorch skips (copies) an axis whose size does not change
    mh = np.eye(h) if oh == h else ref_matrix(h, oh, cubic)
    mw = np.eye(w) if ow == w else ref_matrix(w, ow, cubic)
    want = np.einsum("ih,jw,nchw->ncij", mh, mw, x)
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


# --------------------------------------------------------------------------- bad input
X4 = np.zeros((1, 1, 8, 8), np.float32)


@pytest.mark.parametrize("call, err, text", [
    (lambda: F.interpolate(X4, scale_factor=0.5, mode="nearest", antialias=True), ValueError,
     "antialias"),
    (lambda: F.interpolate(X4, scale_factor=0.5, mode="area", antialias=True), ValueError,
     "bilinear and bicubic"),
    (lambda: F.interpolate(X4[0], scale_factor=0.5, mode="linear", antialias=True), ValueError,
     "4-D"),
    (lambda: F.interpolate(X4[None], scale_factor=0.5, mode="trilinear", antialias=True),
     ValueError, "antialias"),
    (lambda: F.interpolate(X4, scale_factor=0.5, mode="bilinear", antialias="yes"), TypeError,
     "antialias"),
    (lambda: F.interpolate(X4, scale_factor=0.01, mode="bilinear", antialias=True), ValueError,
     "output size"),
    (lambda: F.interpolate(X4.astype(np.int32), scale_factor=0.5, mode="bicubic",
                           antialias=True), TypeError, "int32"),
])
def test_bad_input(call, err, text):
    with pytest.raises(err, match=text):
        call()


def test_kernel_entry_refuses_mismatched_tables():
    from minipool._kernels import upsampling as k
    x = np.zeros((1, 4, 4, 1), np.float32)
    out = np.zeros((1, 2, 2, 1), np.float32)
    s = np.zeros(3, np.intp)
    w = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="W table"):
        k.aa_forward(x, out, np.zeros((1, 100), np.float32), s, s, w, True, s, s, w, True, 4, 1)
    with pytest.raises(ValueError, match="vec"):
        k.aa_forward(x, out, np.zeros((1, 100), np.float32), s, s, w, True, s, s, w, True, 0, 1)


# --------------------------------------------------------------------------- CPU fma dispatch
def _run_both(x, kw):
    """(output, input gradient) with the portable loops and with AVX2+FMA ones."""
    from minipool._kernels import upsampling as kernels
    results = []
    try:
        for allow in (False, True):
            kernels.use_cpu_fma(allow)
            t = mp.tensor(x, requires_grad=True)
            y = F.interpolate(t, antialias=True, **kw)
            (y * mp.tensor(np.linspace(-2, 3, y.numel()).reshape(y.shape).astype(x.dtype))).sum().backward()
            results.append((y.numpy().copy(), t.grad.numpy().copy()))
    finally:
        kernels.use_cpu_fma(True)
    return results


@FAST
@given(h=st.integers(4, 40), w=st.integers(4, 40), c=st.integers(1, 5),
       scale=st.sampled_from([0.3, 0.5, 0.7, 1.6]), mode=st.sampled_from(["bilinear", "bicubic"]),
       f64=st.booleans(), cl=st.booleans(), specials=st.booleans())
def test_cpu_fma_and_portable_loops_agree_bit_for_bit(h, w, c, scale, mode, f64, cl, specials):
    # fma rounds once by definition, so the CPU's instruction, the C library's fma
    # and any vector width must give the same bits (NaN, +-inf included)
    rng = np.random.default_rng(h * 1000 + w)
    x = rng.standard_normal((2, c, h, w)).astype(np.float64 if f64 else np.float32)
    if specials:
        x.flat[rng.integers(0, x.size, 3)] = [np.nan, np.inf, -np.inf]
    if cl:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    (y0, g0), (y1, g1) = _run_both(x, dict(scale_factor=scale, mode=mode))
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(g0, g1)


def test_cpu_fma_dispatch_reports_what_it_uses():
    from minipool._kernels import upsampling as kernels
    assert kernels.use_cpu_fma(False) is False
    assert kernels.use_cpu_fma(True) == kernels.CPU_FMA
