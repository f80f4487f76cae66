"""Parity with PyTorch 2.13 CPU, for the loop reference and for minipool.

Every property runs twice: ``impl="reference"`` checks the test's own loop
reference against torch (so the reference earns its trust), and
``impl="minipool"`` checks the library.  Max/min values and indices must be
bit-identical; gradients of max/min too (the cotangents are small integers, so
every sum is exact).  Average and LP values/gradients agree within 1e-6
relative (plus 1e-6 absolute for float32 cancellation near zero).

Cases torch gets wrong are never sent to it: windows holding no input cell
(docs/semantics.md section 7, a heap corruption in torch), LP pooling with partial
ceil_mode windows (torch rescales them, docs/semantics.md section 5), and padding above
``k // 2`` with dilation (torch 2.13 rejects what minipool accepts).
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from tests.pooling.pooling_cases import (EXAMPLES, assert_identical, assert_near, has_empty_window, inputs,
                                         make_input, pool_cases, upstream_gradient)
from tests.references import pooling_reference as R

torch = pytest.importorskip("torch")
TF = torch.nn.functional

IMPLS = ["reference", "minipool"]


@pytest.fixture(autouse=True, scope="module")
def torch_on_one_thread():
    """These tensors are tiny: torch's thread pool only adds overhead (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
FAST = settings(max_examples=EXAMPLES, deadline=None)


def close_to_torch(actual, expected, dtype, what):
    """avg/LP tolerance against torch: 1e-6 relative (float32 also 1e-6 absolute)."""
    if np.dtype(dtype) == np.float32:
        assert_near(actual, expected, dtype, what, rtol=1e-6, atol=1e-6)
    else:
        assert_near(actual, expected, dtype, what, rtol=1e-10, atol=1e-12)


def torch_leaf(array):
    return torch.from_numpy(array.copy()).requires_grad_(array.dtype.kind == "f")


def torch_grad(leaf):
    return leaf.grad.numpy() if leaf.grad is not None else np.zeros(leaf.shape)


# ------------------------------------------------------------------ runners
# Each runner returns (values, indices or None, input gradient or None) as NumPy arrays.
def run_max(impl, case, x, g, find_max=True):
    if impl == "torch":
        t = torch_leaf(x)
        pool = getattr(TF, f"max_pool{case.nd}d")
        if find_max:
            out, idx = pool(t, **case.max_args(), return_indices=True)
        else:
            out, idx = pool(-t, **case.max_args(), return_indices=True)
            out = -out
        if t.requires_grad:
            out.backward(torch.from_numpy(g.astype(x.dtype)))
        return out.detach().numpy(), idx.numpy(), torch_grad(t) if t.requires_grad else None
    if impl == "reference":
        pool = R.max_pool if find_max else R.min_pool
        args = case.max_args()
        out, idx = pool(case.as_batched(x), args["kernel_size"], args["stride"], args["padding"],
                        args["dilation"], args["ceil_mode"])
        if g is None:
            return case.from_batched(out), case.from_batched(idx), None
        grad = R.max_pool_grad(case.as_batched(x).shape, idx, case.as_batched(g))
        return case.from_batched(out), case.from_batched(idx), case.from_batched(grad)
    t = mp.tensor(x, requires_grad=x.dtype.kind == "f")
    pool = getattr(F, f"{'max' if find_max else 'min'}_pool{case.nd}d")
    out, idx = pool(t, **case.max_args(), return_indices=True)
    if t.requires_grad:
        out.backward(g.astype(x.dtype))
    return out.numpy(), idx.numpy(), t.grad.numpy() if t.requires_grad else None


def run_avg(impl, case, x, g):
    args = case.avg_args()
    if impl == "torch":
        t = torch_leaf(x)
        if case.nd == 1:
            assert args.pop("divisor_override") is None  # torch's avg_pool1d has no such argument
        out = getattr(TF, f"avg_pool{case.nd}d")(t, **args)
        out.backward(torch.from_numpy(g.astype(x.dtype)))
        return out.detach().numpy(), None, torch_grad(t)
    if impl == "reference":
        xb = case.as_batched(x)
        values = R.avg_pool(xb, *args.values())
        grad = R.avg_pool_grad(xb.shape, case.as_batched(g), *args.values())
        return case.from_batched(values), None, case.from_batched(grad)
    t = mp.tensor(x, requires_grad=True)
    out = getattr(F, f"avg_pool{case.nd}d")(t, **args)
    out.backward(g.astype(x.dtype))
    return out.numpy(), None, t.grad.numpy()


# ------------------------------------------------------------------ max / min
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("impl", IMPLS)
@FAST
@given(data=st.data())
def test_max_pool_values_indices_gradients_match_torch(impl, nd, data):
    case = data.draw(pool_cases(nd, torch_limits=True))
    assume(not has_empty_window(case))
    seed, dtype, kind = data.draw(inputs)
    x = make_input(seed, case.shape, dtype, kind)
    # The cotangent needs the output shape: take it from torch's forward.
    with torch.no_grad():
        shape = getattr(TF, f"max_pool{nd}d")(torch.from_numpy(x), **case.max_args()).shape
    g = upstream_gradient(seed, tuple(shape))
    t_values, t_idx, t_grad = run_max("torch", case, x, g)
    values, idx, grad = run_max(impl, case, x, g)
    assert_identical(values, t_values, "max values")
    assert_identical(idx, t_idx, "max indices")
    assert_identical(grad.astype(x.dtype), t_grad, "max input gradient")


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("impl", IMPLS)
@FAST
@given(data=st.data())
def test_min_pool_equals_negated_max_pool_of_negated_input_in_torch(impl, nd, data):
    case = data.draw(pool_cases(nd, torch_limits=True))
    assume(not has_empty_window(case))
    seed, dtype, kind = data.draw(inputs)
    assume(kind != "special")  # NaN placement is checked against the reference instead
    x = make_input(seed, case.shape, dtype, kind)
    with torch.no_grad():
        shape = getattr(TF, f"max_pool{nd}d")(torch.from_numpy(x), **case.max_args()).shape
    g = upstream_gradient(seed, tuple(shape))
    t_values, t_idx, t_grad = run_max("torch", case, x, g, find_max=False)
    values, idx, grad = run_max(impl, case, x, g, find_max=False)
    assert_identical(values, t_values, "min values")
    assert_identical(idx, t_idx, "min indices")
    assert_identical(grad.astype(x.dtype), t_grad, "min input gradient")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=max(10, EXAMPLES // 3), deadline=None)
@given(data=st.data())
def test_integer_max_pool_matches_torch(impl, nd, dtype, data):
    case = data.draw(pool_cases(nd, torch_limits=True))
    assume(not has_empty_window(case))
    seed = data.draw(st.integers(0, 2**32 - 1))
    low = 0 if dtype == np.uint8 else -3
    x = np.random.default_rng(seed).integers(low, low + 6, case.shape).astype(dtype)
    t_values, t_idx, _ = run_max("torch", case, x, None)
    values, idx, _ = run_max(impl, case, x, None)
    assert_identical(values, t_values, "integer max values")
    assert_identical(idx, t_idx, "integer max indices")


# ------------------------------------------------------------------ avg
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("impl", IMPLS)
@FAST
@given(data=st.data())
def test_avg_pool_values_and_gradients_match_torch(impl, nd, data):
    case = data.draw(pool_cases(nd, dilation=False, torch_limits=True, divisor=nd > 1))
    if nd == 3:  # torch's avg_pool3d also insists on input >= kernel, padding aside
        assume(all(size >= k for size, k in zip(case.shape[-3:], R.as_tuple(case.kernel_size, 3))))
    seed, dtype, kind = data.draw(inputs)  # NaN/inf sums do not depend on the order
    x = make_input(seed, case.shape, dtype, kind)
    with torch.no_grad():
        args = case.avg_args()
        if nd == 1:
            args.pop("divisor_override")
        shape = getattr(TF, f"avg_pool{nd}d")(torch.from_numpy(x), **args).shape
    g = upstream_gradient(seed, tuple(shape))
    t_values, _, t_grad = run_avg("torch", case, x, g)
    values, _, grad = run_avg(impl, case, x, g)
    close_to_torch(values, t_values, dtype, "avg values")
    close_to_torch(grad.astype(dtype), t_grad, dtype, "avg input gradient")


# ------------------------------------------------------------------ LP
@st.composite
def lp_cases(draw, nd):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    ceil_mode = draw(st.booleans())
    sizes = []
    for k, s in zip(kernel, stride):
        size = draw(st.integers(k, 8))
        if ceil_mode:  # torch rescales partial ceil windows: keep every window full
            size = k + ((size - k) // s) * s
        sizes.append(size)
    batch = draw(st.sampled_from([(), (1,), (2,)]))
    channels = draw(st.integers(1, 2))
    norm_type = draw(st.sampled_from([1, 2, 3, 1.5]))
    return dict(shape=batch + (channels,) + tuple(sizes), norm_type=norm_type,
                kernel_size=kernel if nd > 1 else kernel[0],
                stride=stride if nd > 1 else stride[0], ceil_mode=ceil_mode)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("impl", IMPLS)
@FAST
@given(data=st.data())
def test_lp_pool_matches_torch_where_windows_are_full(impl, nd, data):
    c = data.draw(lp_cases(nd))
    seed, dtype = data.draw(st.integers(0, 2**32 - 1)), data.draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(seed)
    x = (rng.random(c["shape"]) + 0.25).astype(dtype)  # positive: x**p is real for every p
    args = dict(norm_type=c["norm_type"], kernel_size=c["kernel_size"], stride=c["stride"],
                ceil_mode=c["ceil_mode"])
    t = torch_leaf(x)
    t_out = getattr(TF, f"lp_pool{nd}d")(t, **args)
    g = upstream_gradient(seed, tuple(t_out.shape))
    t_out.backward(torch.from_numpy(g.astype(dtype)))
    if impl == "reference":
        batched = x if len(c["shape"]) == nd + 2 else x[None]
        gb = g if len(c["shape"]) == nd + 2 else g[None]
        values = R.lp_pool(batched, *args.values()).reshape(t_out.shape)
        grad = R.lp_pool_grad(batched, gb, *args.values()).reshape(x.shape)
    else:
        leaf = mp.tensor(x, requires_grad=True)
        out = getattr(F, f"lp_pool{nd}d")(leaf, **args)
        out.backward(g.astype(dtype))
        values, grad = out.numpy(), leaf.grad.numpy()
    close_to_torch(values, t_out.detach().numpy(), dtype, "lp values")
    close_to_torch(np.asarray(grad).astype(dtype), t.grad.numpy(), dtype, "lp input gradient")


# ------------------------------------------------------------------ adaptive
@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("impl", IMPLS)
@FAST
@given(data=st.data())
def test_adaptive_pools_match_torch(impl, nd, data):
    sizes = tuple(data.draw(st.integers(1, 8)) for _ in range(nd))
    output_size = tuple(data.draw(st.integers(1, s + 2)) for s in sizes)
    output_arg = output_size[0] if nd == 1 or (len(set(output_size)) == 1 and data.draw(st.booleans())) \
        else output_size
    lead = data.draw(st.sampled_from([(), (1,), (2,)])) + (data.draw(st.integers(1, 2)),)
    seed, dtype, kind = data.draw(inputs)
    x = make_input(seed, lead + sizes, dtype, kind)
    batched = x if len(lead) == 2 else x[None]

    t = torch_leaf(x)
    t_max, t_idx = getattr(TF, f"adaptive_max_pool{nd}d")(t, output_arg, return_indices=True)
    g = upstream_gradient(seed, tuple(t_max.shape))
    t_max.backward(torch.from_numpy(g.astype(dtype)))
    t_max_grad = t.grad.numpy().copy()
    t.grad = None
    t_avg = getattr(TF, f"adaptive_avg_pool{nd}d")(t, output_arg)
    if kind != "special":
        t_avg.backward(torch.from_numpy(g.astype(dtype)))
    gb = g if len(lead) == 2 else g[None]

    if impl == "reference":
        values, idx = R.adaptive_max_pool(batched, output_size)
        max_grad = R.max_pool_grad(batched.shape, idx, gb)
        avg = R.adaptive_avg_pool(batched, output_size)
        avg_grad = R.adaptive_avg_pool_grad(batched.shape, gb, output_size)
        values, idx, avg = (a.reshape(t_max.shape) for a in (values, idx, avg))
        max_grad, avg_grad = max_grad.reshape(x.shape), avg_grad.reshape(x.shape)
    else:
        leaf = mp.tensor(x, requires_grad=True)
        out, idx = getattr(F, f"adaptive_max_pool{nd}d")(leaf, output_arg, return_indices=True)
        out.backward(g.astype(dtype))
        values, idx, max_grad = out.numpy(), idx.numpy(), leaf.grad.numpy()
        leaf = mp.tensor(x, requires_grad=True)
        out = getattr(F, f"adaptive_avg_pool{nd}d")(leaf, output_arg)
        out.backward(g.astype(dtype))
        avg, avg_grad = out.numpy(), leaf.grad.numpy()

    assert_identical(values, t_max.detach().numpy(), "adaptive max values")
    assert_identical(idx, t_idx.numpy(), "adaptive max indices")
    assert_identical(np.asarray(max_grad).astype(dtype), t_max_grad, "adaptive max gradient")
    if kind != "special":
        close_to_torch(avg, t_avg.detach().numpy(), dtype, "adaptive avg values")
        close_to_torch(np.asarray(avg_grad).astype(dtype), t.grad.numpy(), dtype,
                       "adaptive avg gradient")


# ------------------------------------------------------------------ unpool
@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("impl", IMPLS)
@FAST
@given(data=st.data())
def test_max_unpool_matches_torch(impl, nd, data):
    case = data.draw(pool_cases(nd, dilation=False, torch_limits=True))
    case.ceil_mode = False
    seed, dtype, kind = data.draw(inputs)
    assume(kind != "special")
    x = make_input(seed, case.shape, dtype, kind)
    with torch.no_grad():
        pooled, indices = getattr(TF, f"max_pool{nd}d")(torch.from_numpy(x), **case.max_args(),
                                                          return_indices=True)
    spatial = case.shape[-nd:]
    use_size = data.draw(st.booleans())
    unpool_args = dict(kernel_size=case.kernel_size, stride=case.stride, padding=case.padding,
                       output_size=spatial if use_size else None)
    default = [(o - 1) * s + k - 2 * p for o, s, k, p in zip(
        pooled.shape[-nd:], R.as_tuple(case.stride or case.kernel_size, nd),
        R.as_tuple(case.kernel_size, nd), R.as_tuple(case.padding, nd))]
    if not use_size and tuple(default) != tuple(spatial):
        unpool_args["output_size"] = spatial  # the default size may not hold every index
    target = unpool_args["output_size"] or tuple(default)

    t = torch_leaf(pooled.numpy())
    t_out = getattr(TF, f"max_unpool{nd}d")(t, indices, **unpool_args)
    g = upstream_gradient(seed, tuple(t_out.shape))
    t_out.backward(torch.from_numpy(g.astype(dtype)))

    if impl == "reference":
        batched = case.as_batched(pooled.numpy())
        idx = case.as_batched(indices.numpy())
        values = case.from_batched(R.max_unpool(batched, idx, target))
        grad = case.from_batched(R.max_unpool_grad(idx, case.as_batched(g)))
    else:
        leaf = mp.tensor(pooled.numpy(), requires_grad=True)
        out = getattr(F, f"max_unpool{nd}d")(leaf, mp.tensor(indices.numpy()), **unpool_args)
        out.backward(g.astype(dtype))
        values, grad = out.numpy(), leaf.grad.numpy()
    assert_identical(values, t_out.detach().numpy(), "unpool values")
    assert_identical(np.asarray(grad).astype(dtype), t.grad.numpy(), "unpool gradient")


# ------------------------------------------------------------------ global
@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=max(20, EXAMPLES * 2 // 3), deadline=None)
@given(data=st.data())
def test_global_pools_match_torch_reductions(impl, data):
    shape = (data.draw(st.integers(0, 2)), data.draw(st.integers(1, 3)),
             data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)))
    seed, dtype, kind = data.draw(inputs)
    keepdim = data.draw(st.booleans())
    x = make_input(seed, shape, dtype, kind)
    t = torch.from_numpy(x)
    t_max = TF.adaptive_max_pool2d(t, 1)
    t_avg = t.mean(dim=(2, 3), keepdim=True)
    if not keepdim:
        t_max, t_avg = t_max.flatten(2).squeeze(2), t_avg.flatten(2).squeeze(2)
    if impl == "reference":
        got_max, got_avg = R.global_max_pool(x, keepdim), R.global_avg_pool(x, keepdim)
    else:
        got_max = F.global_max_pool2d(mp.tensor(x), keepdim=keepdim).numpy()
        got_avg = F.global_avg_pool2d(mp.tensor(x), keepdim=keepdim).numpy()
    assert_identical(got_max, t_max.numpy(), "global max")
    if kind != "special":
        close_to_torch(got_avg, t_avg.numpy(), dtype, "global avg")


# ------------------------------------------------------------------ Keras SAME via explicit padding
@pytest.mark.parametrize("impl", IMPLS)
@FAST
@given(data=st.data())
def test_same_padding_equals_torch_on_an_explicitly_padded_input(impl, data):
    kernel = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    stride = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    dilation = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)),
             data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8)))
    seed, dtype, kind = data.draw(inputs)
    assume(kind != "special")
    x = make_input(seed, shape, dtype, kind)
    assume(not R.has_empty_window(shape[2:], kernel, stride, "same", dilation))

    def same_pads(dilation):  # F.pad order: (left, right, top, bottom)
        (_, top, bottom), (_, left, right) = (R.same_padding(n, k, s, d) for n, k, s, d in
                                              zip(shape[2:], kernel, stride, dilation))
        return (left, right, top, bottom)

    t = torch.from_numpy(x)
    pads = same_pads(dilation)
    t_max = TF.max_pool2d(TF.pad(t, pads, value=-np.inf), kernel, stride, 0, dilation).numpy()
    # SAME average = sum over real cells / number of real cells (TF ignores padded cells)
    pads = same_pads((1, 1))
    sums = TF.avg_pool2d(TF.pad(t, pads), kernel, stride, divisor_override=1)
    counts = TF.avg_pool2d(TF.pad(torch.ones_like(t), pads), kernel, stride, divisor_override=1)
    t_avg = (sums / counts).numpy()
    if impl == "reference":
        got_max = R.max_pool(x, kernel, stride, "same", dilation)[0]
        got_avg = R.avg_pool(x, kernel, stride, "same")
    else:
        got_max = F.max_pool2d(mp.tensor(x), kernel, stride, "same", dilation).numpy()
        got_avg = F.avg_pool2d(mp.tensor(x), kernel, stride, "same").numpy()
    assert_identical(got_max, t_max, "SAME max")
    close_to_torch(got_avg, t_avg, dtype, "SAME avg")
