"""Fractional max pooling (Graham 2014): fractional_max_pool2d/3d, FractionalMaxPool2d/3d.

Oracles:
* a loop reference written here: the interval starts from the formula in the
  sample's dtype, one scalar at a time, each window scanned with max pooling's
  rule (``v > best or isnan(v)`` from -inf, the first cell kept otherwise), and
  the backward as grad_in[index] += grad_out in output order;
* PyTorch 2.13 with the same ``_random_samples``: values, indices and gradients
  bit for bit (float32 and float64, 2-d and 3-d, batched and unbatched, both
  layouts, overlapping windows, NaN/inf/ties);
* float64 finite differences (minipool.gradcheck);
* minipool's generator: seeded calls reproduce, draws are U[0, 1) in the input's
  dtype in (N, C, axis) order; 1 and 2 threads give the same bits.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from tests.helpers import fixed_threads
from tests.pooling.pooling_cases import FLOAT_DTYPES


# ----------------------------------------------------------------------------- reference
def ref_starts(u, n_in, n_out, k, dt):
    """start_i = trunc((i + u) * alpha) - trunc(u * alpha), alpha = (in - k) / (out - 1),
    every operation rounded to ``dt``; the last window ends at the input's end."""
    if n_out == 0:
        return []
    starts = []
    if n_out > 1:
        u = dt(u)
        alpha = dt(n_in - k) / dt(n_out - 1)
        base = math.trunc(float(u * alpha))
        for i in range(n_out - 1):
            starts.append(math.trunc(float((dt(i) + u) * alpha)) - base)
    starts.append(n_in - k)
    return starts


def ref_plane(x, kernel, out, u_by_axis):
    """One plane of any rank: values and flat indices, plus the windows' starts."""
    dt = x.dtype.type
    rank = x.ndim
    starts = [ref_starts(u, n, o, k, dt) for u, n, o, k in zip(u_by_axis, x.shape, out, kernel)]
    values = np.empty(out, dtype=x.dtype)
    indices = np.empty(out, dtype=np.int64)
    for pos in np.ndindex(*out):
        first = [starts[a][pos[a]] for a in range(rank)]
        best, best_i = -np.inf, np.ravel_multi_index(first, x.shape)
        for offset in np.ndindex(*kernel):
            cell = tuple(f + j for f, j in zip(first, offset))
            v = x[cell]
            if v > best or np.isnan(v):
                best, best_i = v, np.ravel_multi_index(cell, x.shape)
        values[pos], indices[pos] = best, best_i
    return values, indices


def ref_forward(x, kernel, out, samples):
    """(N, C, *spatial) channels-first; samples (N, C, rank) in PyTorch's axis
    order: 2-d (W, H), 3-d (D, H, W)."""
    rank = len(kernel)
    N, C = x.shape[:2]
    values = np.empty((N, C) + tuple(out), dtype=x.dtype)
    indices = np.empty((N, C) + tuple(out), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            u = samples[n, c]
            u_by_axis = (u[1], u[0]) if rank == 2 else (u[0], u[1], u[2])
            values[n, c], indices[n, c] = ref_plane(x[n, c], kernel, out, u_by_axis)
    return values, indices


def ref_backward(grad, indices, in_shape):
    """grad_in[n, c].flat[index] += grad, outputs in row-major order, in grad's dtype."""
    N, C = in_shape[:2]
    grad_in = np.zeros(in_shape, dtype=grad.dtype)
    for n in range(N):
        for c in range(C):
            plane = grad_in[n, c].reshape(-1)
            for g, i in zip(grad[n, c].reshape(-1), indices[n, c].reshape(-1)):
                plane[i] = plane[i] + g
    return grad_in


def same_bits(a, b, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (what, a.shape, b.shape, a.dtype, b.dtype)
    if a.dtype.kind == "f":
        bits = np.uint32 if a.dtype == np.float32 else np.uint64
        # NaN payloads may differ between libraries' copies; compare NaN as NaN
        nan = np.isnan(a)
        assert np.array_equal(nan, np.isnan(b)), what
        assert np.array_equal(a[~nan].view(bits), b[~nan].view(bits)), what
    else:
        assert np.array_equal(a, b), what


def pool(rank):
    return F.fractional_max_pool2d if rank == 2 else F.fractional_max_pool3d


def to_last(a):
    return np.moveaxis(a, 1, -1)


def run_minipool(x, kernel, out, samples, grad, channels_last=False):
    """values, indices, input gradient (all channels-first) of minipool's op."""
    rank = len(kernel)
    data = to_last(x) if channels_last else x
    t = mp.tensor(np.ascontiguousarray(data), requires_grad=True)
    y, idx = pool(rank)(t, kernel, output_size=out, return_indices=True,
                        _random_samples=mp.tensor(samples),
                        data_format="channels_last" if channels_last else None)
    g = to_last(grad) if channels_last else grad
    y.backward(mp.tensor(np.ascontiguousarray(g)))
    back = (lambda a: np.moveaxis(a, -1, 1)) if channels_last else (lambda a: a)
    return back(y.numpy()), back(idx.numpy()), back(t.grad.numpy())


def run_torch(x, kernel, out, samples, grad):
    """values, indices, input gradient of PyTorch's op on the same windows (``samples``);
    callers skip first when torch is missing."""
    import torch
    tx = torch.tensor(x, requires_grad=True)
    torch_pool = torch.nn.functional.fractional_max_pool2d if len(kernel) == 2 else \
        torch.nn.functional.fractional_max_pool3d
    ty, ti = torch_pool(tx, kernel, output_size=out, return_indices=True,
                        _random_samples=torch.tensor(samples))
    ty.backward(torch.tensor(grad))
    return ty.detach().numpy(), ti.numpy(), tx.grad.numpy()


def same_bits_as_torch(ours, torch_results):
    """values, indices and input gradient (run_minipool's and run_torch's) bit for bit."""
    for what, a, b in zip(("values", "indices", "gradient"), ours, torch_results):
        same_bits(a, b, what)


# ----------------------------------------------------------------------------- reference parity
CASES = [  # (input shape, kernel, output size)
    ((2, 3, 10, 9), (3, 3), (4, 5)),        # overlapping windows
    ((1, 2, 7, 7), (2, 2), (6, 6)),         # the most outputs kernel 2 allows
    ((2, 1, 8, 5), (2, 3), (3, 2)),
    ((1, 2, 5, 6), (5, 1), (1, 6)),         # one window along H
    ((1, 1, 9, 9), (1, 1), (4, 3)),         # kernel 1: sampled cells
    ((1, 2, 6, 7, 5), (2, 3, 2), (3, 4, 2)),
    ((2, 1, 4, 5, 4), (2, 2, 1), (2, 3, 3)),
]


def fits(spatial, kernel, out):
    """PyTorch's limits: 2-d out + k - 1 <= in, 3-d out + k <= in."""
    slack = 1 if len(spatial) == 2 else 0
    return all(o + k - slack <= n for o, k, n in zip(out, kernel, spatial))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,kernel,out", CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_loop_reference(shape, kernel, out, dtype, channels_last):
    rng = np.random.default_rng(len(shape) * 10 + kernel[0])
    x = rng.integers(-3, 4, size=shape).astype(dtype)      # many ties
    x.reshape(-1)[::7] = np.nan
    x.reshape(-1)[3::11] = -np.inf
    samples = rng.random(shape[:2] + (len(kernel),), dtype=dtype)
    grad = rng.standard_normal(shape[:2] + out).astype(dtype)
    values, indices, gin = run_minipool(x, kernel, out, samples, grad, channels_last)
    ref_values, ref_indices = ref_forward(x, kernel, out, samples)
    same_bits(values, ref_values, "values")
    same_bits(indices, ref_indices, "indices")
    same_bits(gin, ref_backward(grad, ref_indices, x.shape), "gradient")


def test_starts_use_the_input_dtype():
    """Samples where float32 and float64 arithmetic give different starts: each dtype
    follows its own rounding (as PyTorch's kernel computes in scalar_t)."""
    found = 0
    for u32 in np.random.default_rng(5).random(20000, dtype=np.float32):
        for n_in, k, n_out in ((57, 2, 29), (101, 3, 37), (64, 2, 31)):
            a = ref_starts(u32, n_in, n_out, k, np.float32)
            b = ref_starts(np.float64(u32), n_in, n_out, k, np.float64)
            if a != b:
                found += 1
                x = np.arange(n_in, dtype=np.float32).reshape(1, 1, 1, n_in)
                for dt, expected in ((np.float32, a), (np.float64, b)):
                    s = np.array([[[u32, 0.0]]], dtype=dt)
                    idx = F.fractional_max_pool2d(mp.tensor(x.astype(dt)), (1, k),
                                                  output_size=(1, n_out), return_indices=True,
                                                  _random_samples=mp.tensor(s))[1].numpy()
                    assert (idx.ravel() - (k - 1)).tolist() == expected
        if found >= 3:
            break
    assert found >= 3


# ----------------------------------------------------------------------------- PyTorch parity
torch_cases = CASES + [((3, 5, 5), (2, 2), (3, 3)), ((2, 3, 4, 6), (2, 2), (2, 4))]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape,kernel,out", torch_cases)
@pytest.mark.parametrize("channels_last", [False, True])
def test_torch_parity_bit_for_bit(shape, kernel, out, dtype, channels_last):
    pytest.importorskip("torch")
    rank = len(kernel)
    batched = len(shape) == rank + 2
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[1::5] = flat[0:len(flat[1::5]) * 5:5]       # ties with the cell before
    x.reshape(-1)[::13] = np.nan
    x.reshape(-1)[2::17] = np.inf
    n = shape[0] if batched else 1
    c = shape[1] if batched else shape[0]
    samples = rng.random((n, c, rank), dtype=dtype)
    full_out = (shape[:-rank] + out)
    grad = rng.standard_normal(full_out).astype(dtype)
    theirs = run_torch(x, kernel, out, samples, grad)
    xb, gb = (x, grad) if batched else (x[None], grad[None])
    values, indices, gin = run_minipool(xb, kernel, out, samples, gb, channels_last)
    if not batched:
        values, indices, gin = values[0], indices[0], gin[0]
    same_bits_as_torch((values, indices, gin), theirs)


def test_unbatched_input_equals_a_batch_of_one():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 8)).astype(np.float32)
    s = rng.random((1, 3, 2), dtype=np.float32)
    a = F.fractional_max_pool2d(mp.tensor(x), 2, output_size=(4, 5), _random_samples=s)
    b = F.fractional_max_pool2d(mp.tensor(x[None]), 2, output_size=(4, 5), _random_samples=s)
    assert a.shape == (3, 4, 5)
    same_bits(a.numpy(), b.numpy()[0])


@pytest.mark.parametrize("ratio", [0.5, (0.5, 0.7), 0.33])
def test_output_ratio_truncates_as_torch(ratio):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 13, 11))
    s = np.random.default_rng(1).random((2, 3, 2))
    pair = ratio if isinstance(ratio, tuple) else (ratio, ratio)  # torch's functional wants a pair
    ty = torch.nn.functional.fractional_max_pool2d(torch.tensor(x), 2, output_ratio=pair,
                                                   _random_samples=torch.tensor(s))
    y = F.fractional_max_pool2d(mp.tensor(x), 2, output_ratio=ratio, _random_samples=s)
    same_bits(y.numpy(), ty.numpy())


def test_zero_output_size_and_zero_batch_give_empty_tensors_as_torch():
    torch = pytest.importorskip("torch")
    x = mp.ones(2, 3, 5, 5, requires_grad=True)
    y = F.fractional_max_pool2d(x, 2, output_size=(0, 3))
    assert y.shape == tuple(torch.nn.functional.fractional_max_pool2d(
        torch.ones(2, 3, 5, 5), 2, output_size=(0, 3)).shape) == (2, 3, 0, 3)
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), np.zeros((2, 3, 5, 5), np.float32))
    empty = F.fractional_max_pool3d(mp.ones(0, 2, 4, 4, 4), 2, output_size=2)
    assert empty.shape == (0, 2, 2, 2, 2)
    # unbatched input with no channels: PyTorch treats C as the batch, so do we
    assert F.fractional_max_pool2d(mp.ones(0, 4, 4), 2, output_size=2).shape == (0, 2, 2)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("rank", [2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gradcheck(rank, channels_last):
    rng = np.random.default_rng(rank)
    spatial = (7, 6) if rank == 2 else (5, 4, 5)
    shape = (2, 3) + spatial
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) * 0.37  # no ties
    if channels_last:
        x = np.ascontiguousarray(to_last(x))
    s = rng.random((2, 3, rank))
    out = (4, 3) if rank == 2 else (3, 2, 3)
    fmt = "channels_last" if channels_last else None
    t = mp.tensor(x, requires_grad=True)
    assert mp.gradcheck(lambda v: pool(rank)(v, 3 if rank == 2 else 2, output_size=out,
                                             _random_samples=s, data_format=fmt), [t])


def test_gradients_of_overlapping_winners_add_up():
    """A cell that wins several windows receives the sum of their gradients."""
    x = np.zeros((1, 1, 6, 6))
    x[0, 0, 2, 2] = 5.0
    t = mp.tensor(x, requires_grad=True)
    y = F.fractional_max_pool2d(t, 3, output_size=4, _random_samples=np.full((1, 1, 2), 0.5))
    wins = int((y.numpy() == 5.0).sum())
    assert wins >= 2
    y.sum().backward()
    assert t.grad.numpy()[0, 0, 2, 2] == wins


# ----------------------------------------------------------------------------- hypothesis
VALUES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, np.nan, np.inf, -np.inf])


@st.composite
def geometries(draw):
    rank = draw(st.sampled_from([2, 3]))
    spatial = tuple(draw(st.integers(1, 9 if rank == 2 else 5)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, n)) for n in spatial)
    if draw(st.booleans()):
        slack = 1 if rank == 2 else 0
        out = tuple(draw(st.integers(0, max(0, n - k + slack))) for n, k in zip(spatial, kernel))
        ratio = None
    else:
        # PyTorch truncates int(size * ratio); sizes that do not fit are refused (checked)
        ratio = tuple(draw(st.floats(0.05, 1.0)) for _ in spatial)
        out = tuple(int(n * r) for n, r in zip(spatial, ratio))
    shape = (draw(st.integers(0, 2)), draw(st.integers(1, 3))) + spatial
    return shape, kernel, out, ratio


@settings(max_examples=80, deadline=None)
@given(geometries(), st.data())
def test_hypothesis_against_reference(geometry, data):
    shape, kernel, out, ratio = geometry
    if not fits(shape[2:], kernel, out):
        with pytest.raises(ValueError, match="too large"):
            pool(len(kernel))(mp.zeros(*shape), kernel, output_size=out)
        return
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES))
    x = np.array(data.draw(st.lists(VALUES, min_size=math.prod(shape),
                                    max_size=math.prod(shape))), dtype=dtype).reshape(shape)
    rank = len(kernel)
    samples = np.array(data.draw(st.lists(st.floats(0, 1, exclude_max=True, width=32),
                                          min_size=shape[0] * shape[1] * rank,
                                          max_size=shape[0] * shape[1] * rank)),
                       dtype=dtype).reshape(shape[:2] + (rank,))
    t = mp.tensor(x, requires_grad=True)
    kwargs = dict(output_size=out) if ratio is None else dict(output_ratio=ratio)
    y, idx = pool(rank)(t, kernel, return_indices=True, _random_samples=samples, **kwargs)
    ref_values, ref_indices = ref_forward(x, kernel, out, samples)
    same_bits(y.numpy(), ref_values, "values")
    same_bits(idx.numpy(), ref_indices, "indices")
    grad = np.arange(math.prod(y.shape), dtype=dtype).reshape(y.shape) % 3 + 0.5
    y.backward(mp.tensor(grad))
    same_bits(t.grad.numpy(), ref_backward(grad, ref_indices, shape), "gradient")


@settings(max_examples=40, deadline=None)
@given(geometries(), st.data())
def test_hypothesis_against_torch(geometry, data):
    torch = pytest.importorskip("torch")
    shape, kernel, out, _ = geometry
    if not fits(shape[2:], kernel, out):
        with pytest.raises(RuntimeError, match="too large"):
            (torch.nn.functional.fractional_max_pool2d if len(kernel) == 2 else
             torch.nn.functional.fractional_max_pool3d)(torch.zeros(shape), kernel,
                                                         output_size=out)
        return
    dtype = data.draw(st.sampled_from(FLOAT_DTYPES))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    x = rng.choice(np.array([0.0, -1.0, 1.0, np.nan, np.inf, -np.inf, 3.0]),
                   size=shape).astype(dtype)
    rank = len(kernel)
    samples = rng.random(shape[:2] + (rank,), dtype=dtype)
    grad = rng.standard_normal(shape[:2] + out).astype(dtype)
    theirs = run_torch(x, kernel, out, samples, grad)
    same_bits_as_torch(run_minipool(x, kernel, out, samples, grad,
                                    channels_last=data.draw(st.booleans())), theirs)


# ----------------------------------------------------------------------------- generator
def test_generator_draws_uniforms_in_the_input_dtype_per_plane():
    x = mp.tensor(np.random.default_rng(0).standard_normal((2, 3, 11, 10)).astype(np.float32))
    y = F.fractional_max_pool2d(x, 2, output_size=(5, 4), generator=7)
    s = np.random.default_rng(7).random((2, 3, 2), dtype=np.float32)
    same_bits(y.numpy(), F.fractional_max_pool2d(x, 2, output_size=(5, 4),
                                                 _random_samples=s).numpy())
    x3 = mp.tensor(np.random.default_rng(1).standard_normal((4, 7, 6, 5)))  # unbatched 3-d
    y3 = F.fractional_max_pool3d(x3, 2, output_size=(3, 3, 2), generator=8)
    s3 = np.random.default_rng(8).random((1, 4, 3))
    same_bits(y3.numpy(), F.fractional_max_pool3d(x3, 2, output_size=(3, 3, 2),
                                                  _random_samples=s3).numpy())


def test_manual_seed_reproduces_and_draws_differ():
    x = mp.tensor(np.random.default_rng(0).standard_normal((4, 8, 23, 23)).astype(np.float32))
    mp.manual_seed(11)
    a = F.fractional_max_pool2d(x, 2, output_ratio=0.5).numpy()
    b = F.fractional_max_pool2d(x, 2, output_ratio=0.5).numpy()
    mp.manual_seed(11)
    c = F.fractional_max_pool2d(x, 2, output_ratio=0.5).numpy()
    same_bits(a, c)
    assert not np.array_equal(a, b)


def test_channels_last_draws_the_same_windows_as_channels_first():
    x = np.random.default_rng(2).standard_normal((2, 3, 9, 9))
    a = F.fractional_max_pool2d(mp.tensor(x), 2, output_size=4, generator=3).numpy()
    b = F.fractional_max_pool2d(mp.tensor(np.ascontiguousarray(to_last(x))), 2, output_size=4,
                                generator=3, data_format="channels_last").numpy()
    same_bits(a, np.moveaxis(b, -1, 1))


@pytest.mark.skipif(not mp._config.openmp_helpers.openmp_enabled(),
                    reason="a serial build has one thread")
@pytest.mark.parametrize("fmt", [None, "channels_last"])
def test_one_and_two_threads_give_the_same_bits(fmt):
    rng = np.random.default_rng(4)
    x = rng.integers(0, 5, size=(4, 16, 40, 40)).astype(np.float32)   # ties
    s = rng.random((4, 16, 2), dtype=np.float32)
    if fmt:
        x = np.ascontiguousarray(to_last(x))
    results = []
    for n in (1, 2):
        with fixed_threads(n):
            t = mp.tensor(x, requires_grad=True)
            y, i = F.fractional_max_pool2d(t, 3, output_size=(25, 19), return_indices=True,
                                           _random_samples=s, data_format=fmt)
            (y * y).sum().backward()
            results.append((y.numpy(), i.numpy(), t.grad.numpy()))
    for a, b in zip(*results):
        same_bits(a, b)


# ----------------------------------------------------------------------------- layers
def test_layers():
    torch = pytest.importorskip("torch")
    s = np.random.default_rng(0).random((2, 3, 2)).astype(np.float32)
    layer = nn.FractionalMaxPool2d(3, output_size=(4, 5), return_indices=True,
                                   _random_samples=mp.tensor(s))
    assert list(layer.state_dict()) == list(torch.nn.FractionalMaxPool2d(
        3, output_size=(4, 5), _random_samples=torch.tensor(s)).state_dict())
    x = np.random.default_rng(1).standard_normal((2, 3, 10, 9)).astype(np.float32)
    y, i = layer(mp.tensor(x))
    ty, ti = torch.nn.FractionalMaxPool2d(3, output_size=(4, 5), return_indices=True,
                                          _random_samples=torch.tensor(s))(torch.tensor(x))
    same_bits(y.numpy(), ty.numpy())
    same_bits(i.numpy(), ti.numpy())
    assert nn.FractionalMaxPool3d(2, output_ratio=0.5)(mp.ones(1, 2, 8, 6, 4)).shape == \
        (1, 2, 4, 3, 2)
    seeded = nn.FractionalMaxPool2d(2, output_ratio=(0.5, 0.5), generator=5)
    again = nn.FractionalMaxPool2d(2, output_ratio=(0.5, 0.5), generator=5)
    z = mp.tensor(np.random.default_rng(2).standard_normal((2, 4, 17, 17)).astype(np.float32))
    first = seeded(z).numpy()
    same_bits(first, again(z).numpy())
    assert not np.array_equal(first, seeded(z).numpy())   # the layer's generator advances
    assert "output_ratio=(0.5, 0.5)" in repr(seeded)


@pytest.mark.parametrize("kwargs", [dict(), dict(output_size=2, output_ratio=0.5),
                                    dict(output_ratio=1.0), dict(output_ratio=0.0),
                                    dict(output_ratio=(0.5, 1.5))])
def test_layer_refuses_bad_arguments_as_torch(kwargs):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.nn.FractionalMaxPool2d(2, **kwargs)
    with pytest.raises(ValueError):
        nn.FractionalMaxPool2d(2, **kwargs)


# ----------------------------------------------------------------------------- bad input
X = np.zeros((1, 2, 7, 7), np.float32)


@pytest.mark.parametrize("call,error,match", [
    (lambda: F.fractional_max_pool2d(X.astype(np.int32), 2, output_size=3), TypeError, "dtype"),
    (lambda: F.fractional_max_pool2d(np.zeros((7, 7), np.float32), 2, output_size=3),
     ValueError, "3-d"),
    (lambda: F.fractional_max_pool2d(X, 2), ValueError, "output_size or output_ratio"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3, output_ratio=0.5), ValueError,
     "only one"),
    (lambda: F.fractional_max_pool2d(X, 0, output_size=3), ValueError, "kernel_size"),
    (lambda: F.fractional_max_pool2d(X, True, output_size=3), TypeError, "kernel_size"),
    (lambda: F.fractional_max_pool2d(X, 8, output_size=1), ValueError, "larger than the input"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=7), ValueError, "too large"),
    (lambda: F.fractional_max_pool3d(np.zeros((1, 1, 4, 4, 4), np.float32), 2, output_size=3),
     ValueError, "3-d rule"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=-1), ValueError, "output_size"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=2.5), TypeError, "output_size"),
    (lambda: F.fractional_max_pool2d(X, 2, output_ratio=-0.5), ValueError, "output_ratio"),
    (lambda: F.fractional_max_pool2d(X, 2, output_ratio=float("nan")), ValueError,
     "output_ratio"),
    (lambda: F.fractional_max_pool2d(X, 2, output_ratio="half"), TypeError, "output_ratio"),
    (lambda: F.fractional_max_pool2d(X, 2, output_ratio=1.5), ValueError, "too large"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3,
                                     _random_samples=np.zeros((1, 3, 2), np.float32)),
     ValueError, "shape"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3,
                                     _random_samples=np.zeros((1, 2, 3), np.float32)),
     ValueError, "shape"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3,
                                     _random_samples=np.zeros((1, 2, 2), np.float64)),
     TypeError, "dtype"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3,
                                     _random_samples=np.full((1, 2, 2), 1.5, np.float32)),
     ValueError, r"\[0, 1\]"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3,
                                     _random_samples=np.full((1, 2, 2), np.nan, np.float32)),
     ValueError, r"\[0, 1\]"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3, _random_samples=[[[0.5, 0.5]] * 2]),
     TypeError, "_random_samples"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3, generator=1,
                                     _random_samples=np.zeros((1, 2, 2), np.float32)),
     ValueError, "not both"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3, generator=-1), ValueError, "seed"),
    (lambda: F.fractional_max_pool2d(np.zeros((2, 0, 7, 7), np.float32), 2, output_size=3),
     ValueError, "empty non-batch"),
    (lambda: F.fractional_max_pool3d(np.zeros((2, 0, 4, 4, 4), np.float32), 2, output_size=2),
     ValueError, "empty non-batch"),
    (lambda: F.fractional_max_pool2d(X, 2, output_size=3, data_format="NHWC"), ValueError,
     "data_format"),
    (lambda: F.fractional_max_pool3d(X[0], 2, output_size=3), ValueError, "4-d"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_kernel_entry_refuses_out_of_range_starts():
    from minipool._kernels import pool_fractional as K
    x = np.zeros((1, 9, 1))
    out, idx = np.empty((1, 2, 1)), np.empty((1, 2, 1), np.int64)
    zero = np.zeros((1, 1), np.int64)
    with pytest.raises(ValueError, match="out of range"):
        K.fractional_max_forward(x, out, idx, zero, zero, np.array([[0, 8]], np.int64),
                                 1, 1, 9, 1, 1, 2, 1)
    with pytest.raises(ValueError, match="mismatched"):
        K.fractional_max_forward(x, out, idx, zero, zero, np.array([[0, 1, 2]], np.int64),
                                 1, 1, 9, 1, 1, 2, 1)
