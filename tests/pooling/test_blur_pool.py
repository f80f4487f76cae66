"""BlurPool / MaxBlurPool (Zhang, ICML 2019): blur_pool2d, max_blur_pool2d, BlurPool2d, MaxBlurPool2d.

Oracles:
* a loop reference written here (np.pad reflect + explicit sums) that adds in the
  order ``minipool/_kernels/blur_pool.pyx`` documents: results must be equal bit for
  bit, float32 and float64, forward and backward, NaN/inf included;
* PyTorch's composition (F.pad reflect, then F.conv2d with the binomial filter,
  groups=C, stride), forward and backward, both layouts;
* float64 finite differences (minipool.gradcheck);
* properties: a constant image stays that constant, stride-1 blur commutes with
  shifts away from the border, 1 and 2 threads give the same bits.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from minipool._kernels import blur_pool as K
from tests.helpers import fixed_threads
from tests.pooling.pooling_cases import FLOAT_DTYPES


# ----------------------------------------------------------------------------- references
def binomial_row(k, dtype):
    """[C(k-1, 0), ..., C(k-1, k-1)] / 2**(k-1) (written again here, not taken from minipool)."""
    row = [1.0]
    for _ in range(k - 1):
        row = [a + b for a, b in zip([0.0] + row, row + [0.0])]
    return np.array(row, dtype=np.float64).astype(dtype) / dtype(2.0 ** (k - 1))


def pads(k):
    return (k - 1) // 2, math.ceil((k - 1) / 2)


def ref_forward_plane(x, kh, kw, sh, sw):
    """One (H, W) plane: out[oh, ow] = sum_j fw_j * (sum_i fh_i * xpad[oh*sh+i, ow*sw+j]),
    each sum from its first term, left to right, in x's dtype."""
    dt = x.dtype.type
    fh, fw = binomial_row(kh, dt), binomial_row(kw, dt)
    xp = np.pad(x, (pads(kh), pads(kw)), mode="reflect")
    Ho, Wo = (x.shape[0] - 1) // sh + 1, (x.shape[1] - 1) // sw + 1
    out = np.empty((Ho, Wo), x.dtype)
    for oh in range(Ho):
        for ow in range(Wo):
            total = None
            for j in range(kw):
                column = None
                for i in range(kh):
                    term = fh[i] * xp[oh * sh + i, ow * sw + j]
                    column = term if column is None else column + term
                term = fw[j] * column
                total = term if total is None else total + term
            out[oh, ow] = total
    return out


def readers(n, k, s):
    """Per input index q: the (output, tap) pairs whose padded position maps to q,
    padded position ascending, then output ascending (found by brute force)."""
    source = np.pad(np.arange(n), pads(k), mode="reflect")   # padded position -> input index
    n_out = (n - 1) // s + 1
    lists = [[] for _ in range(n)]
    for p in range(len(source)):
        for o in range(n_out):
            t = p - o * s
            if 0 <= t < k:
                lists[source[p]].append((o, t))
    return lists


def ref_backward_plane(g, H, W, kh, kw, sh, sw):
    dt = g.dtype.type
    fh, fw = binomial_row(kh, dt), binomial_row(kw, dt)
    rows, cols = readers(H, kh, sh), readers(W, kw, sw)
    Ho = g.shape[0]
    gw = np.zeros((Ho, W), g.dtype)
    for oh in range(Ho):
        for w in range(W):
            acc = None
            for ow, j in cols[w]:
                term = fw[j] * g[oh, ow]
                acc = term if acc is None else acc + term
            gw[oh, w] = dt(0) if acc is None else acc
    gx = np.zeros((H, W), g.dtype)
    for h in range(H):
        for w in range(W):
            acc = None
            for oh, i in rows[h]:
                term = fh[i] * gw[oh, w]
                acc = term if acc is None else acc + term
            gx[h, w] = dt(0) if acc is None else acc
    return gx


def ref_blur(x, k, s, g=None, channels_last=False):
    """Forward (and, given g, backward) over any leading axes, by planes."""
    with np.errstate(invalid="ignore", over="ignore"):   # inf - inf is NaN, as in the kernel
        return _ref_blur(x, k, s, g, channels_last)


def _ref_blur(x, k, s, g, channels_last):
    kh, kw = (k, k) if isinstance(k, int) else k
    sh, sw = (s, s) if isinstance(s, int) else s
    if channels_last:
        x = np.moveaxis(x, -1, -3)
        g = None if g is None else np.moveaxis(g, -1, -3)
    H, W = x.shape[-2:]
    lead = x.shape[:-2]
    planes = x.reshape((-1, H, W))
    out = np.stack([ref_forward_plane(p, kh, kw, sh, sw) for p in planes]) if planes.shape[0] \
        else np.zeros((0, (H - 1) // sh + 1, (W - 1) // sw + 1), x.dtype)
    out = out.reshape(lead + out.shape[-2:])
    grad = None
    if g is not None:
        gp = g.reshape((-1,) + g.shape[-2:])
        grad = np.stack([ref_backward_plane(p, H, W, kh, kw, sh, sw) for p in gp]) \
            if gp.shape[0] else np.zeros((0, H, W), g.dtype)
        grad = grad.reshape(lead + (H, W))
    if channels_last:
        out = np.moveaxis(out, -3, -1)
        grad = None if grad is None else np.moveaxis(grad, -3, -1)
    return out, grad


def mp_blur(x, k, s, g, channels_last=False, fn=None):
    fmt = "channels_last" if channels_last else None
    xm = mp.tensor(x, requires_grad=True)
    fn = fn or (lambda t: F.blur_pool2d(t, k, s, data_format=fmt))
    y = fn(xm)
    y.backward(mp.tensor(g))
    return y.numpy(), xm.grad.numpy()


def bits_equal(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


# ----------------------------------------------------------------------------- loop reference
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("k", range(1, 8))
@pytest.mark.parametrize("s", (1, 2, 3))
def test_matches_loop_reference_bit_for_bit(dtype, k, s):
    rng = np.random.default_rng(k * 10 + s)
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    want, _ = ref_blur(x, k, s)
    g = rng.standard_normal(want.shape).astype(dtype)
    _, want_grad = ref_blur(x, k, s, g)
    out, grad = mp_blur(x, k, s, g)
    assert bits_equal(out, want)
    assert bits_equal(grad, want_grad)
    out_l, grad_l = mp_blur(np.ascontiguousarray(np.moveaxis(x, 1, -1)), k, s,
                            np.ascontiguousarray(np.moveaxis(g, 1, -1)), channels_last=True)
    assert bits_equal(np.moveaxis(out_l, -1, 1), want)
    assert bits_equal(np.moveaxis(grad_l, -1, 1), want_grad)


def test_binomial_filters_are_the_papers():
    from minipool.ops.pooling.blur import binomial_filter
    rows = {1: [1], 2: [1, 1], 3: [1, 2, 1], 4: [1, 3, 3, 1], 5: [1, 4, 6, 4, 1],
            6: [1, 5, 10, 10, 5, 1], 7: [1, 6, 15, 20, 15, 6, 1]}
    for k, row in rows.items():
        a = np.array(row, dtype=np.float64)
        np.testing.assert_array_equal(binomial_filter(k), np.outer(a, a) / a.sum() ** 2)
    assert binomial_filter(15).sum() == 1.0


@pytest.mark.parametrize("k,s", [((3, 5), (2, 1)), ((1, 4), (3, 2)), ((6, 2), 1)])
def test_rectangular_kernels_and_strides(k, s):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 7, 10))
    want, _ = ref_blur(x, k, s)
    g = rng.standard_normal(want.shape)
    _, want_grad = ref_blur(x, k, s, g)
    out, grad = mp_blur(x, k, s, g)
    assert bits_equal(out, want) and bits_equal(grad, want_grad)


def test_stride_larger_than_kernel_leaves_unread_cells_zero_gradient():
    x = np.random.default_rng(0).standard_normal((1, 1, 10, 10))
    g = np.ones((1, 1, 4, 4))
    out, grad = mp_blur(x, 1, 3, g)
    np.testing.assert_array_equal(out[0, 0], x[0, 0, ::3, ::3])
    mask = np.zeros((10, 10))
    mask[::3, ::3] = 1
    np.testing.assert_array_equal(grad[0, 0], mask)
    assert not np.signbit(grad).any()


# ----------------------------------------------------------------------------- PyTorch parity
def torch_blur(torch, x, k, s, channels_last=False):
    """PyTorch's composition: reflect pad, then depthwise conv with the binomial filter."""
    tf = torch.nn.functional
    if channels_last:
        x = x.permute(0, 3, 1, 2)
    kh, kw = (k, k) if isinstance(k, int) else k
    C = x.shape[1]
    filt = torch.tensor(np.outer(binomial_row(kh, np.float64), binomial_row(kw, np.float64)),
                        dtype=x.dtype)
    (ph0, ph1), (pw0, pw1) = pads(kh), pads(kw)
    if ph0 + ph1 + pw0 + pw1:
        x = tf.pad(x, (pw0, pw1, ph0, ph1), mode="reflect")
    # PyTorch 2.13's oneDNN float32 depthwise conv reads garbage for some tiny planes (e.g.
    # a padded width of 4 at stride (1, 2): values ~1e35 in the one output column); its
    # native kernel is right, so the reference is taken from that (switching it warns about
    # TF32 on Intel GPUs, which has nothing to do with this)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "TF32 acceleration on top of oneDNN", UserWarning)
        with torch.backends.mkldnn.flags(enabled=False):
            y = tf.conv2d(x, filt.expand(C, 1, kh, kw), stride=s, groups=C)
    return y.permute(0, 2, 3, 1) if channels_last else y


def tol(dtype):
    return dict(rtol=2e-6, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("channels_last", (False, True))
@pytest.mark.parametrize("k,s", [(1, 2), (2, 2), (3, 2), (3, 1), (4, 2), (5, 3), (6, 2), (7, 1),
                                 (7, 2), ((3, 5), (1, 2))])
def test_torch_parity(dtype, channels_last, k, s):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    shape = (3, 9, 11, 4) if channels_last else (3, 4, 9, 11)
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_blur(torch, xt, k, s, channels_last)
    g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.tensor(g))
    out, grad = mp_blur(x, k, s, g, channels_last)
    assert out.dtype == dtype and grad.dtype == dtype
    np.testing.assert_allclose(out, yt.detach().numpy(), **tol(dtype))
    np.testing.assert_allclose(grad, xt.grad.numpy(), **tol(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("channels_last", (False, True))
def test_layers_match_torch(dtype, channels_last):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    fmt = "channels_last" if channels_last else None
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 28, 28)).astype(dtype)       # distinct values: no max ties
    xl = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
    for layer, ref in [
        (nn.BlurPool2d(6, data_format=fmt), lambda t: torch_blur(torch, t, 3, 2)),
        (nn.BlurPool2d(kernel_size=5, stride=3, data_format=fmt),
         lambda t: torch_blur(torch, t, 5, 3)),
        (nn.MaxBlurPool2d(data_format=fmt),
         lambda t: torch_blur(torch, tf.max_pool2d(t, 2, 1), 3, 2)),
        (nn.MaxBlurPool2d(3, 4, channels=6, data_format=fmt),
         lambda t: torch_blur(torch, tf.max_pool2d(t, 3, 1), 4, 2)),
    ]:
        xt = torch.tensor(x, requires_grad=True)
        yt = ref(xt)
        g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
        yt.backward(torch.tensor(g))
        gl = np.ascontiguousarray(np.moveaxis(g, 1, -1)) if channels_last else g
        out, grad = mp_blur(xl, None, None, gl, fn=layer)
        if channels_last:
            out, grad = np.moveaxis(out, -1, 1), np.moveaxis(grad, -1, 1)
        np.testing.assert_allclose(out, yt.detach().numpy(), **tol(dtype), err_msg=repr(layer))
        np.testing.assert_allclose(grad, xt.grad.numpy(), **tol(dtype), err_msg=repr(layer))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_nan_and_inf_like_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 7)).astype(dtype)
    flat = x.reshape(-1)
    flat[[3, 50, 100]] = [np.nan, np.inf, -np.inf]
    flat[[200, 201]] = [np.inf, np.inf]
    for k, s in ((3, 2), (4, 1), (7, 3)):
        xt = torch.tensor(x, requires_grad=True)
        yt = torch_blur(torch, xt, k, s)
        g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
        g.reshape(-1)[0] = np.inf
        yt.backward(torch.tensor(g))
        out, grad = mp_blur(x, k, s, g)
        np.testing.assert_allclose(out, yt.detach().numpy(), **tol(dtype))
        np.testing.assert_allclose(grad, xt.grad.numpy(), **tol(dtype))


# ----------------------------------------------------------------------------- gradcheck
@pytest.mark.parametrize("k,s", [(1, 2), (2, 2), (3, 2), (4, 1), (5, 3), (7, 2), ((2, 5), (3, 1))])
@pytest.mark.parametrize("channels_last", (False, True))
def test_gradcheck(k, s, channels_last):
    fmt = "channels_last" if channels_last else None
    x = mp.tensor(np.random.default_rng(5).standard_normal((2, 5, 7, 3) if channels_last
                                                            else (2, 3, 5, 7)),
                  dtype=mp.float64, requires_grad=True)
    assert mp.gradcheck(lambda t: F.blur_pool2d(t, k, s, data_format=fmt), [x])


def test_gradcheck_max_blur_pool():
    x = mp.tensor(np.random.default_rng(6).standard_normal((2, 2, 9, 8)), dtype=mp.float64,
                  requires_grad=True)
    assert mp.gradcheck(lambda t: F.max_blur_pool2d(t, 2, 3), [x])
    assert mp.gradcheck(lambda t: nn.MaxBlurPool2d(3, 5, stride=3)(t), [x])


# ----------------------------------------------------------------------------- hypothesis
@st.composite
def blur_cases(draw):
    k = draw(st.one_of(st.integers(1, 7), st.tuples(st.integers(1, 7), st.integers(1, 7))))
    s = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    kh, kw = (k, k) if isinstance(k, int) else k
    H = draw(st.integers(max(pads(kh)) + 1, 10))
    W = draw(st.integers(max(pads(kw)) + 1, 10))
    n, c = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    batched = draw(st.booleans()) or n == 0
    channels_last = draw(st.booleans())
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    spatial = (H, W, c) if channels_last else (c, H, W)
    shape = ((n,) if batched else ()) + spatial
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    specials = draw(st.lists(st.tuples(st.integers(0, 10**6),
                                       st.sampled_from([np.nan, np.inf, -np.inf, -0.0, 0.0])),
                             max_size=4))
    for pos, value in specials:
        if x.size:
            x.reshape(-1)[pos % x.size] = value
    return x, k, s, channels_last, seed


@settings(max_examples=80, deadline=None)
@given(blur_cases())
def test_hypothesis_against_loop_reference(case):
    x, k, s, channels_last, seed = case
    want, _ = ref_blur(x, k, s, channels_last=channels_last)
    g = np.random.default_rng(seed + 1).standard_normal(want.shape).astype(x.dtype)
    _, want_grad = ref_blur(x, k, s, g, channels_last=channels_last)
    with np.errstate(invalid="ignore", over="ignore"):
        out, grad = mp_blur(x, k, s, g, channels_last)
    assert bits_equal(out, want)
    assert bits_equal(grad, want_grad)


@settings(max_examples=40, deadline=None)
@given(blur_cases())
def test_hypothesis_against_torch(case):
    torch = pytest.importorskip("torch")
    x, k, s, channels_last, seed = case
    if x.ndim == 3:
        x = x[None]
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_blur(torch, xt, k, s, channels_last)
    g = np.random.default_rng(seed + 1).standard_normal(tuple(yt.shape)).astype(x.dtype)
    yt.backward(torch.tensor(g))
    with np.errstate(invalid="ignore", over="ignore"):
        out, grad = mp_blur(x, k, s, g, channels_last)
    np.testing.assert_allclose(out, yt.detach().numpy(), **tol(x.dtype))
    np.testing.assert_allclose(grad, xt.grad.numpy(), **tol(x.dtype))


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@given(value=st.floats(-1e30, 1e30, allow_nan=False), k=st.integers(1, 7), s=st.integers(1, 3),
       channels_last=st.booleans())
@settings(max_examples=60, deadline=None)
def test_constant_image_stays_constant(dtype, value, k, s, channels_last):
    """The weights sum to 1 exactly; only the rounding of each product and sum remains
    (relative for normal numbers, a few units of the smallest subnormal below them)."""
    value = dtype(value)
    shape = (2, 7, 9, 3) if channels_last else (2, 3, 7, 9)
    x = mp.tensor(np.full(shape, value, dtype), requires_grad=True)
    y = F.blur_pool2d(x, k, s, data_format="channels_last" if channels_last else None)
    np.testing.assert_allclose(y.numpy(), value, rtol=4 * np.finfo(dtype).eps,
                               atol=64 * np.finfo(dtype).smallest_subnormal)


@given(value=st.integers(-2**16, 2**16), k=st.integers(1, 7), s=st.integers(1, 3),
       dtype=st.sampled_from(FLOAT_DTYPES))
@settings(max_examples=60, deadline=None)
def test_constant_integer_image_stays_exactly_constant(value, k, s, dtype):
    """With a 17-bit integer every product (weights C(k-1, t) / 2**(k-1), C <= 20) and
    partial sum fits float32's 24 bits exactly: the output is the value itself."""
    y = F.blur_pool2d(np.full((1, 2, 8, 7), value, dtype), k, s).numpy()
    assert np.all(y == value)
    assert y.shape == (1, 2, 7 // s + 1, 6 // s + 1)


@pytest.mark.parametrize("k", range(1, 8))
def test_stride_one_blur_commutes_with_shifts_inside(k):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((1, 2, 20, 21))
    shifted = np.roll(x, (2, -3), axis=(2, 3))
    a = F.blur_pool2d(x, k, 1).numpy()
    b = F.blur_pool2d(shifted, k, 1).numpy()
    m = k + 3                                   # away from the border and the wrap-around
    np.testing.assert_array_equal(np.roll(a, (2, -3), axis=(2, 3))[..., m:-m, m:-m],
                                  b[..., m:-m, m:-m])


@pytest.mark.skipif(not mp._config.openmp_helpers.openmp_enabled(),
                    reason="a serial build has one thread")
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,fmt", [((4, 8, 40, 40), None), ((1, 40, 40, 24), "channels_last"),
                                       ((3, 40, 40, 16), "channels_last")])
def test_one_and_two_threads_same_bits(dtype, shape, fmt):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(dtype)
    x.reshape(-1)[::997] = np.nan
    from minipool.ops.pooling.blur import _schedule
    view = shape if fmt else (shape[0] * shape[1],) + shape[2:] + (1,)
    results = []
    for n in (1, 2):
        with fixed_threads(n):
            assert _schedule(view, view)[0] == n          # the kernel really gets n threads
            fn = (lambda t: F.max_blur_pool2d(t, 2, 5, data_format=fmt))
            y = fn(mp.tensor(x))
            g = np.random.default_rng(8).standard_normal(y.shape).astype(dtype)
            results.append(mp_blur(x, None, None, g, fn=fn))
    assert bits_equal(results[0][0], results[1][0])
    assert bits_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_kernel_gives_same_bits_for_any_threads_and_channel_slices(dtype):
    """The kernel entry points directly: thread counts 1-3 and channel slices 1..C agree."""
    from minipool.ops.pooling.blur import _axis_tables, _filter
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 13, 11, 5)).astype(dtype)
    rows, cols = _axis_tables(13, 5, 2), _axis_tables(11, 4, 3)
    fh, fw = _filter(5).astype(dtype), _filter(4).astype(dtype)
    g = rng.standard_normal((2, rows[0], cols[0], 5)).astype(dtype)
    outs, grads = [], []
    for n_threads in (1, 2, 3):
        for block in (1, 2, 5):
            out = np.empty((2, rows[0], cols[0], 5), dtype)
            K.blur_forward(x, out, rows[1], cols[1], fh, fw, block, n_threads)
            gx = np.empty(x.shape, dtype)
            K.blur_backward(g, gx, *rows[2:], *cols[2:], fh, fw, block, n_threads)
            outs.append(out)
            grads.append(gx)
    assert all(bits_equal(o, outs[0]) for o in outs)
    assert all(bits_equal(o, grads[0]) for o in grads)


# ----------------------------------------------------------------------------- shapes and layouts
def test_unbatched_zero_batch_and_non_contiguous_input():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 8, 9))
    np.testing.assert_array_equal(F.blur_pool2d(x).numpy(), F.blur_pool2d(x[None]).numpy()[0])
    xl = np.ascontiguousarray(np.moveaxis(x, 0, -1))
    np.testing.assert_array_equal(F.blur_pool2d(xl, data_format="channels_last").numpy(),
                                  np.moveaxis(F.blur_pool2d(x).numpy(), 0, -1))
    empty = mp.tensor(np.zeros((0, 3, 8, 9)), requires_grad=True)
    y = F.blur_pool2d(empty, 4, 3)
    assert y.shape == (0, 3, 3, 3)
    y.sum().backward()
    assert empty.grad.shape == (0, 3, 8, 9)
    big = rng.standard_normal((2, 3, 16, 18))
    view = big[:, ::-1, ::2, 1::2]
    np.testing.assert_array_equal(F.blur_pool2d(view, 5).numpy(),
                                  F.blur_pool2d(np.ascontiguousarray(view), 5).numpy())


def test_output_sizes_and_dtype():
    for H, k, s in [(1, 1, 2), (2, 2, 2), (2, 3, 2), (5, 7 - 2, 3), (4, 7, 2), (28, 3, 2),
                    (27, 3, 2)]:
        y = F.blur_pool2d(mp.zeros(1, 2, H, H + 1, dtype=mp.float64), k, s)
        assert y.shape == (1, 2, (H - 1) // s + 1, H // s + 1)
        assert y.dtype == mp.float64
    y = F.blur_pool2d([[[1.0, 2.0], [3.0, 4.0]]], 1, 1)   # a nested list, as other ops take
    assert y.dtype == mp.float32


def test_layer_repr_and_channels():
    assert repr(nn.BlurPool2d(4)) == "BlurPool2d(channels=4, kernel_size=3, stride=2)"
    assert "blur_kernel_size=3" in repr(nn.MaxBlurPool2d())
    assert nn.BlurPool2d(3, data_format="channels_last")(mp.ones(1, 6, 6, 3)).shape == (1, 3, 3, 3)
    assert nn.BlurPool2d(3)(mp.ones(3, 6, 6)).shape == (3, 3, 3)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,error,words", [
    (lambda: F.blur_pool2d(np.zeros((1, 1, 4, 4), np.int32)), TypeError, ("dtype", "int32")),
    (lambda: F.blur_pool2d(np.zeros((1, 1, 4, 4), np.float16)), TypeError, ("dtype",)),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 4), 0), ValueError, ("kernel_size", ">= 1")),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 4), 16), ValueError, ("kernel_size", "<= 15")),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 4), 2.0), TypeError, ("kernel_size",)),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 4), True), TypeError, ("kernel_size",)),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 4), (3, 3, 3)), TypeError, ("kernel_size",)),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 4), 3, 0), ValueError, ("stride", ">= 1")),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 4), 3, None), TypeError, ("stride",)),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 4), 3, 2**64), ValueError, ("stride",)),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 4), data_format="NHWC"), ValueError,
     ("data_format",)),
    (lambda: F.blur_pool2d(mp.zeros(4, 4)), ValueError, ("3-d", "(4, 4)")),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 1, 4, 4)), ValueError, ("5-d",)),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 3, 4), 7), ValueError, ("height", "> 3", "got height 3")),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 1), 2), ValueError, ("width", "> 1", "got width 1")),
    (lambda: F.blur_pool2d(mp.zeros(1, 1, 4, 0)), ValueError, ("spatial",)),
    (lambda: F.blur_pool2d(mp.zeros(1, 0, 4, 4)), ValueError, ("channels",)),
    (lambda: F.blur_pool2d(mp.zeros(1, 4, 4, 0), data_format="channels_last"), ValueError,
     ("channels",)),
    (lambda: F.max_blur_pool2d(np.zeros((1, 1, 4, 4), np.uint8)), TypeError,
     ("max_blur_pool2d", "dtype")),
    (lambda: F.max_blur_pool2d(mp.zeros(1, 1, 2, 2)), ValueError, ("height",)),
    (lambda: nn.BlurPool2d(0), ValueError, ("channels",)),
    (lambda: nn.BlurPool2d(2.5), ValueError, ("channels",)),
    (lambda: nn.BlurPool2d(4)(mp.zeros(1, 3, 8, 8)), ValueError, ("4 channels", "(1, 3, 8, 8)")),
    (lambda: nn.MaxBlurPool2d(channels=2, data_format="channels_last")(mp.zeros(1, 8, 8, 3)),
     ValueError, ("2 channels",)),
])
def test_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_kernel_refuses_inconsistent_tables():
    from minipool.ops.pooling.blur import _axis_tables, _filter
    x = np.zeros((1, 6, 6, 1))
    rows = _axis_tables(6, 3, 2)
    f = _filter(3)
    out = np.empty((1, 3, 3, 1))
    bad = rows[1].copy()
    bad[0, 0] = 6
    with pytest.raises(ValueError, match="outside"):
        K.blur_forward(x, out, bad, rows[1], f, f, 1, 1)
    with pytest.raises(ValueError, match="filters"):
        K.blur_forward(x, out, rows[1], rows[1], f[:2], f, 1, 1)
    with pytest.raises(ValueError, match="channels"):
        K.blur_forward(x, np.empty((1, 3, 3, 2)), rows[1], rows[1], f, f, 1, 1)
    start, outs, taps = rows[2:]
    with pytest.raises(ValueError, match="outside"):
        K.blur_backward(out, np.empty_like(x), start, outs + 5, taps, start, outs, taps, f, f, 1, 1)
    with pytest.raises(ValueError, match="match the input"):
        K.blur_backward(out, np.empty((1, 7, 6, 1)), start, outs, taps, start, outs, taps, f, f,
                        1, 1)
