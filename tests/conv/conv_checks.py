"""What the conv2d tests share: a case's inputs (``make``), one forward and backward
(``run``), the loop reference, and the checks each forward or weight-gradient engine
runs with its switch forced on (test_conv_direct.py, test_conv_direct_channels_last.py,
test_conv_tiles.py, test_conv_wgrad.py, test_conv_wgrad_outer.py; the engines' fixtures
are in conftest.py).  A case is (N, C, H, W, O, kernel, stride, padding, dilation,
groups, bias).
"""
from contextlib import contextmanager

import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool._kernels import conv2d as kernels
from tests.references.conv_reference import conv2d_with_grads

RESULT_NAMES = ["out", "grad_x", "grad_w", "grad_b"]


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


def forward(x, w, b, **kwargs):
    """conv2d's output alone (no graph), as a NumPy array."""
    with mp.no_grad():
        return F.conv2d(mp.tensor(x), mp.tensor(w), None if b is None else mp.tensor(b),
                        **kwargs).numpy()


@contextmanager
def engine_forced_on(switch):
    """An engine's switch (e.g. ``kernels.use_tiles``) in mode 2, every call it can take,
    and back to its previous mode after."""
    previous = switch(2)
    try:
        yield
    finally:
        switch(previous)


def random_geometry_inputs(N, groups, cpg, opg, H, W, k, stride, pad, dilation, ties, special,
                           seed):
    """A hypothesis geometry's float64 inputs (x, w, b, kwargs): small integer values (ties:
    equal products and sums) or one inf/NaN in the middle of the input; None where the
    kernel does not fit (covered by the error tests)."""
    if min(H, W) + 2 * pad - dilation * (k - 1) < 1:
        return None
    case = (N, cpg * groups, H, W, opg * groups, k, stride, pad, dilation, groups, True)
    x, w, b, kwargs = make(case, np.float64, seed)
    if ties:
        x, w = np.round(x * 2), np.round(w * 2)
    if special is not None:
        x[0, 0, H // 2, W // 2] = special
    return x, w, b, kwargs


def check_random_geometry(switch, *geometry):
    """One hypothesis geometry (``random_geometry_inputs``'s arguments) with an engine forced
    on (``switch``: e.g. kernels.use_tiles, called with 2, then with its previous mode):
    forward and every gradient as the loop reference."""
    inputs = random_geometry_inputs(*geometry)
    if inputs is None:
        return
    x, w, b, kwargs = inputs
    with engine_forced_on(switch):
        out, gx, gw, gb, g = run(x, w, b, kwargs)
    with np.errstate(invalid="ignore"):
        ref = reference(x, w, b, **kwargs, grad_out=g)
    for name, got, want in zip(RESULT_NAMES, (out, gx, gw, gb), ref):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11, err_msg=name)


def small_column_blocks_inputs(kwargs, monkeypatch):
    """Inputs (x, w, b) of 3 images of 4 channels, 19 x 17, with a block budget of 300
    elements (``monkeypatch``: undone after the test) that cuts every image into several
    blocks of output rows; ``kwargs``' groups split the 4 channels."""
    from minipool.ops import conv as conv_module
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 4, 19, 17))
    w = rng.standard_normal((6, 4 // kwargs.get("groups", 1), 3, 3))
    b = rng.standard_normal(6)
    monkeypatch.setattr(conv_module, "BLOCK_ELEMENTS", 300)
    return x, w, b


def check_bias_free_matches_loop_reference(x, w, padding):
    """A bias-free conv2d of ``x`` and ``w`` (which may hold inf or NaN) with ``padding``:
    output, input and weight gradients as the loop reference (1e-12).  Returns (out,
    grad_x, grad_w, grad_out)."""
    out, gx, gw, gb, g = run(x, w, None, dict(padding=padding))
    with np.errstate(invalid="ignore"):
        ref = reference(x, w, None, 1, padding, 1, 1, grad_out=g)
    for name, got, want in zip(RESULT_NAMES, (out, gx, gw), ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)
    return out, gx, gw, g


def inputs_with_inf_and_nan(where):
    """x (2, 2, 7, 9) and w (3, 2, 3, 3) with inf, -inf and NaN at three random places of
    the input (``where="input"``) or of the weight."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 2, 7, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    target = x if where == "input" else w
    target.flat[rng.choice(target.size, 3, replace=False)] = [np.inf, -np.inf, np.nan]
    return x, w


def check_matches_loop_reference(case, tol=1e-12, seed=0):
    """Forward and every gradient of ``make(case, seed=seed)`` as the loop reference,
    to ``tol`` (relative and absolute)."""
    x, w, b, kw = make(case, seed=seed)
    out, gx, gw, gb, g = run(x, w, b, kw)
    for name, got, want in zip(RESULT_NAMES, (out, gx, gw, gb),
                               reference(x, w, b, **kw, grad_out=g)):
        if got is not None:
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)


def check_central_differences(case):
    """The input and weight gradients of ``make(case)``'s first image (float64, halved) at
    4 random places each as central differences of the forward (eps 1e-6, to 1e-6)."""
    x, w, b, kw = make(case, seed=4)
    x, w = x[:1] * 0.5, w * 0.5
    rng = np.random.default_rng(8)
    out, gx, gw, gb, g = run(x, w, b, kw)
    for target, analytic in ((x, gx), (w, gw)):
        for index in map(tuple, rng.integers(0, target.shape, size=(4, target.ndim))):
            old, eps = target[index], 1e-6
            target[index] = old + eps
            plus = (forward(x, w, b, **kw) * g).sum()
            target[index] = old - eps
            minus = (forward(x, w, b, **kw) * g).sum()
            target[index] = old
            assert abs((plus - minus) / (2 * eps) - analytic[index]) < 1e-6 * max(1, abs(analytic[index]))


def check_matches_torch(case, dtype, rtol, seed):
    """Forward and every gradient as PyTorch's, to ``rtol`` (absolute: ``rtol`` times the
    largest of each result)."""
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(case, dtype, seed=seed)
    out, gx, gw, gb, g = run(x, w, b, kw)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    ref = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    ref.backward(torch.tensor(g))
    pairs = [(out, ref), (gx, xt.grad), (gw, wt.grad)] + ([(gb, bt.grad)] if b is not None else [])
    for name, (got, want) in zip(RESULT_NAMES, pairs):
        want = want.detach().numpy()
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max(),
                                   err_msg=name)


def check_forward_matches_torch_float32(case, forward_nchw, atol_scales_with_output,
                                        torch_channels_last=False):
    """The float32 forward ``forward_nchw(x, w, b, **kwargs)`` (NCHW in and out) as
    PyTorch's, to rtol 1e-5 and atol 1e-5 (times the largest output when
    ``atol_scales_with_output``); ``torch_channels_last``: PyTorch's input in its
    channels_last memory format."""
    torch = pytest.importorskip("torch")
    x, w, b, kw = make(case, np.float32, seed=3)
    got = forward_nchw(x, w, b, **kw)
    tx = torch.tensor(x)
    if torch_channels_last:
        tx = tx.contiguous(memory_format=torch.channels_last)
    want = torch.nn.functional.conv2d(tx, torch.tensor(w), None if b is None else torch.tensor(b),
                                      **kw).numpy()
    atol = 1e-5 * np.abs(want).max() if atol_scales_with_output else 1e-5
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol)


def forward_result(x, w, b, kwargs):
    """The forward, as ``check_avx2_and_baseline_builds_agree`` takes results."""
    return [forward(x, w, b, **kwargs)]


def weight_and_bias_grads(x, w, b, kwargs):
    """The weight and bias gradients (None without a bias), as
    ``check_avx2_and_baseline_builds_agree`` takes results."""
    return list(run(x, w, b, kwargs)[2:4])


def check_avx2_and_baseline_builds_agree(case, dtype, results):
    """``results(x, w, b, kwargs)`` (a list of arrays, None for none) bit for bit the same
    from the AVX2 build and the baseline build; skipped on a CPU without AVX2+FMA."""
    x, w, b, kw = make(case, dtype, seed=6)
    if not kernels.use_cpu_avx2(True):
        pytest.skip("this CPU has no AVX2+FMA: only the baseline build runs")
    try:
        avx2 = results(x, w, b, kw)
        assert not kernels.use_cpu_avx2(False)
        baseline = results(x, w, b, kw)
    finally:
        kernels.use_cpu_avx2(True)
    assert len(avx2) == len(baseline)
    for a, b_ in zip(avx2, baseline):
        if a is not None or b_ is not None:
            np.testing.assert_array_equal(a, b_)


def check_direct_carries_a_non_finite_input(forward_nchw, value):
    """One inf or NaN in the input of a padded 3x3 forward (``forward_nchw(x, w, b,
    **kwargs)``, NCHW in and out): as the loop reference, finite where it does not reach."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 4, 4, 4))
    w = rng.standard_normal((9, 4, 3, 3))
    x[1, 2, 0, 3] = value
    got = forward_nchw(x, w, None, padding=1)
    with np.errstate(invalid="ignore"):
        want = reference(x, w, None, 1, 1, 1, 1)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.isfinite(got).sum() > 0 and not np.isfinite(got).all()


def check_non_finite_weight_meets_the_padding(forward_nchw, value):
    """0 * inf is NaN: a weight with an inf or NaN must meet the padding (the border
    outputs its tap reaches there become NaN), as the loop reference.  Returns the
    inputs (x, w)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 4, 4))
    w = rng.standard_normal((6, 4, 3, 3))
    w[2, 1, 0, 0] = value
    got = forward_nchw(x, w, None, padding=1)
    with np.errstate(invalid="ignore"):
        want = reference(x, w, None, 1, 1, 1, 1)[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.isnan(got[:, 2, 0, :]).all()  # the top row's tap (0, 0) is in the padding
    assert np.isfinite(got[:, 3]).all()
    return x, w


def check_automatic_direct_choice(uses_direct, shape, out_channels, k, pad, on_direct):
    """The direct kernel's automatic mode (``uses_direct``: kernels.uses_direct or
    uses_direct_channels_last) takes a stride-1 square ``k`` x ``k`` convolution with
    padding ``pad`` exactly when ``on_direct`` and the CPU has AVX2 (``on_direct`` "rows":
    exactly where the AVX-512 or AVX2 row tiles run, ``kernels.direct_rows_run``); never for
    float64, on the baseline build or with the tiles off (BLAS only); mode 2 takes it
    always."""
    from minipool.ops import conv as conv_module
    N, C, H, W = shape
    geometry = conv_module.ConvGeometry(k, k, 1, 1, pad, pad, 1, 1, H + 2 * pad - k + 1,
                                        W + 2 * pad - k + 1, 1)
    previous = kernels.use_direct(1), kernels.use_tiles(1)
    avx2 = kernels.use_cpu_avx2(True)
    if on_direct == "rows":
        on_direct = (kernels.direct_rows_run(C, H, W, out_channels, geometry)
                     or kernels.direct_rows_run(C, H, W, out_channels, geometry, avx2=True))
    try:
        assert uses_direct(C, H, W, out_channels, geometry) == (on_direct and avx2)
        assert not uses_direct(C, H, W, out_channels, geometry, True)  # float64
        kernels.use_cpu_avx2(False)  # the baseline build is slow: automatic mode keeps BLAS
        assert not uses_direct(C, H, W, out_channels, geometry)
        kernels.use_cpu_avx2(True)
        kernels.use_tiles(0)  # BLAS only
        assert not uses_direct(C, H, W, out_channels, geometry)
        kernels.use_direct(2)
        assert uses_direct(C, H, W, out_channels, geometry, True)
    finally:
        kernels.use_direct(previous[0])
        kernels.use_tiles(previous[1])
        kernels.use_cpu_avx2(True)
