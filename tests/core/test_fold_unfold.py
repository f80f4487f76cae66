"""F.unfold / F.fold (+ nn.Unfold / nn.Fold): a loop reference, torch parity, the adjoint
identity, float64 gradchecks and named errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F

GEOMETRIES = [  # (H, W), kernel, dilation, padding, stride
    ((5, 5), 2, 1, 0, 1), ((6, 7), (2, 3), 1, 1, 2), ((7, 6), 3, 2, 1, 1), ((4, 9), (1, 2), (1, 3), (0, 2), (2, 1)),
    ((3, 3), 3, 1, 0, 1), ((2, 2), 3, 1, 1, 3), ((8, 8), 2, 1, 0, 2),
]


def _unfold_by_loop(x, kernel, dilation, padding, stride):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    n, c, h, w = x.shape
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, c * kh * kw, oh * ow), x.dtype)
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    for r in range(oh):
                        for q in range(ow):
                            y, z = r * sh - ph + i * dh, q * sw - pw + j * dw
                            if 0 <= y < h and 0 <= z < w:
                                out[b, (ch * kh + i) * kw + j, r * ow + q] = x[b, ch, y, z]
    return out, (oh, ow)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size, kernel, dilation, padding, stride", GEOMETRIES)
def test_unfold_matches_a_loop_and_torch(size, kernel, dilation, padding, stride, dtype):
    x = np.random.default_rng(0).standard_normal((2, 3) + size).astype(dtype)
    want, _ = _unfold_by_loop(x, kernel, dilation, padding, stride)
    xm, xt = mp.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours = F.unfold(xm, kernel, dilation, padding, stride)
    theirs = TF.unfold(xt, kernel, dilation, padding, stride)
    np.testing.assert_array_equal(ours.numpy(), want)
    np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
    g = np.random.default_rng(1).standard_normal(ours.shape).astype(dtype)
    ours.backward(mp.tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size, kernel, dilation, padding, stride", GEOMETRIES)
def test_fold_matches_torch_and_is_unfolds_adjoint(size, kernel, dilation, padding, stride):
    x = np.random.default_rng(2).standard_normal((2, 3) + size)
    cols_shape = F.unfold(mp.tensor(x), kernel, dilation, padding, stride).shape
    cols = np.random.default_rng(3).standard_normal(cols_shape)
    cm, ct = mp.tensor(cols, requires_grad=True), torch.tensor(cols, requires_grad=True)
    ours = F.fold(cm, size, kernel, dilation, padding, stride)
    theirs = TF.fold(ct, size, kernel, dilation, padding, stride)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-12)
    # <unfold(x), cols> == <x, fold(cols)>: fold is unfold's transpose
    lhs = np.sum(F.unfold(mp.tensor(x), kernel, dilation, padding, stride).numpy() * cols)
    assert np.isclose(lhs, np.sum(x * ours.numpy()), rtol=1e-12)
    g = np.random.default_rng(4).standard_normal(ours.shape)
    ours.backward(mp.tensor(g))
    theirs.backward(torch.tensor(g))
    np.testing.assert_allclose(cm.grad.numpy(), ct.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_unbatched_inputs_like_torch():
    x = np.random.default_rng(5).standard_normal((2, 4, 5))
    ours = F.unfold(mp.tensor(x), 2, padding=1)
    np.testing.assert_array_equal(ours.numpy(), TF.unfold(torch.tensor(x), 2, padding=1).numpy())
    back = F.fold(ours, (4, 5), 2, padding=1)
    np.testing.assert_allclose(back.numpy(), TF.fold(torch.tensor(ours.numpy()), (4, 5), 2, padding=1).numpy())


def test_gradchecks():
    x = mp.tensor(np.random.default_rng(6).standard_normal((1, 2, 4, 5)), requires_grad=True)
    assert mp.gradcheck(lambda t: F.unfold(t, (2, 3), dilation=1, padding=1, stride=(1, 2)), (x,))
    cols = mp.tensor(np.random.default_rng(7).standard_normal((1, 8, 6)), requires_grad=True)
    assert mp.gradcheck(lambda t: F.fold(t, (3, 4), 2), (cols,))


def test_nan_and_inf_stay_in_their_blocks():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1], x[0, 0, 0, 0] = np.nan, np.inf
    ours = F.unfold(mp.tensor(x), 2).numpy()
    np.testing.assert_array_equal(ours, TF.unfold(torch.tensor(x), 2).numpy())


def test_layers_match_torchs():
    x = np.random.default_rng(8).standard_normal((2, 3, 6, 6)).astype(np.float32)
    ours, theirs = nn.Unfold(3, padding=1, stride=2), torch.nn.Unfold(3, padding=1, stride=2)
    assert repr(ours) == repr(theirs)
    cols = ours(mp.tensor(x))
    np.testing.assert_array_equal(cols.numpy(), theirs(torch.tensor(x)).numpy())
    fold, tfold = nn.Fold((6, 6), 3, padding=1, stride=2), torch.nn.Fold((6, 6), 3, padding=1, stride=2)
    assert repr(fold) == repr(tfold)
    np.testing.assert_allclose(fold(cols).numpy(), tfold(torch.tensor(cols.numpy())).numpy(), rtol=1e-6)


@pytest.mark.parametrize("call, error, text", [
    (lambda lib: lib.nn.functional.unfold(lib.ones(1, 1, 2, 2), 3), RuntimeError, "unfold: an input of spatial size"),
    (lambda lib: lib.nn.functional.unfold(lib.ones(2, 3), 2), (RuntimeError, IndexError), "unfold: input must be"),
    (lambda lib: lib.nn.functional.fold(lib.ones(1, 5, 4), (3, 3), 2), RuntimeError, "must be divisible"),
    (lambda lib: lib.nn.functional.fold(lib.ones(1, 4, 5), (3, 3), 2), RuntimeError, "has 5 blocks"),
])
def test_bad_shapes_are_named(call, error, text):
    with pytest.raises(error):
        call(torch)
    with pytest.raises(error, match=text):
        call(mp)


@pytest.mark.parametrize("kwargs, error, text", [
    (dict(kernel_size=0), ValueError, "kernel_size must be >= 1"),
    (dict(kernel_size=2, padding=-1), ValueError, "padding must be >= 0"),
    (dict(kernel_size=2, stride=0), ValueError, "stride must be >= 1"),
    (dict(kernel_size=2, dilation=(1, 0)), ValueError, "dilation must be >= 1"),
    (dict(kernel_size=2.5), TypeError, "kernel_size must be an int or a tuple of 2 ints"),
])
def test_bad_geometry_arguments_are_named(kwargs, error, text):
    with pytest.raises((RuntimeError, TypeError)):  # torch refuses each one too
        TF.unfold(torch.ones(1, 1, 3, 3), **kwargs)
    with pytest.raises(error, match=f"unfold: {text}"):
        F.unfold(mp.ones(1, 1, 3, 3), **kwargs)


def test_integer_input_is_refused_like_torch():
    with pytest.raises(NotImplementedError):
        TF.unfold(torch.ones(1, 1, 3, 3, dtype=torch.long), 2)
    with pytest.raises(TypeError, match="unfold: input must be float32 or float64"):
        F.unfold(mp.ones(1, 1, 3, 3, dtype=mp.int64), 2)
