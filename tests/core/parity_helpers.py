"""Run one snippet on minipool and on PyTorch and compare values, dtypes and gradients."""
import numpy as np

import minipool as mp


def make(lib, array, grad):
    """``array`` as a tensor of ``lib`` (mp or torch), requiring grad if asked and float."""
    array = np.asarray(array)
    wants = bool(grad) and array.dtype.kind == "f"
    if lib is mp:
        return mp.tensor(array.copy(), requires_grad=wants)
    return lib.tensor(array.copy(), requires_grad=wants)


def run(lib, fn, arrays, grads=()):
    """``fn(lib, *tensors)``; with outputs that require grad, backward of a fixed weighted
    sum.  Returns (output arrays, gradient arrays of the inputs in ``grads``)."""
    tensors = [make(lib, a, i in grads) for i, a in enumerate(arrays)]
    out = fn(lib, *tensors)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    values = [o.detach().numpy() if lib is not mp else o.numpy() for o in outs]
    total = None
    for k, o in enumerate(outs):
        if o.requires_grad and o.numel() > 0:
            weight = np.random.default_rng(k).standard_normal(tuple(o.shape)).astype(values[k].dtype)
            term = (o * lib.tensor(weight)).sum()
            total = term if total is None else total + term
    if total is not None:
        total.backward()
    gradients = []
    for i in grads:
        g = tensors[i].grad
        gradients.append(None if g is None else np.asarray(g.numpy() if lib is mp else g.detach().numpy()))
    return values, gradients


def assert_parity(fn, arrays, grads=(), rtol=1e-6, atol=1e-12, fn_torch=None):
    """minipool's ``fn`` against torch's (``fn_torch`` when the call differs): same values
    (NaN in the same places), dtypes and gradients."""
    import torch
    got, got_grads = run(mp, fn, arrays, grads)
    want, want_grads = run(torch, fn_torch or fn, arrays, grads)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape, (g.shape, w.shape)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    for g, w in zip(got_grads, want_grads):
        if w is None:
            assert g is None or not np.any(g), g
            continue
        assert g is not None
        np.testing.assert_allclose(g, w, rtol=max(rtol, 1e-5), atol=max(atol, 1e-6), equal_nan=True)
