"""SGD's and Adam's one-pass steps (minipool/_kernels/optim_steps.pyx) give the NumPy
code's bits: every configuration, float32 and float64, NaN, inf and signed zeros, any
thread count.  The NumPy code in minipool/optim is the reference (``enabled = False``),
and it is PyTorch's rule (tests/core/test_optim.py holds the parity with PyTorch)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
from minipool.ops import optimizer_steps

SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -3.0]


def same_bits(a, b):
    """Equal bit for bit, except that any NaN matches any NaN."""
    assert a.dtype == b.dtype and a.shape == b.shape
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert np.array_equal(nan_a, nan_b)
    raw = np.uint32 if a.dtype == np.float32 else np.uint64
    assert np.array_equal(a[~nan_a].view(raw), b[~nan_b].view(raw))


def stepped(make_optimizer, start, grads, kernel):
    """The parameter and the optimizer's buffers after one step per gradient."""
    p = mp.nn.Parameter(mp.tensor(start.copy()))
    opt = make_optimizer([p])
    before = optimizer_steps.enabled
    optimizer_steps.enabled = kernel
    try:
        for g in grads:
            p.grad = mp.tensor(g)
            with np.errstate(all="ignore"):
                opt.step()
    finally:
        optimizer_steps.enabled = before
    state = opt.state[p]
    return [p.numpy()] + [v.numpy() for k, v in sorted(state.items()) if k != "step"]


def run(make_optimizer, dtype, steps, size, seed, specials, kernel):
    """``stepped`` on random values (a few of them SPECIALS) of ``size`` elements."""
    rng = np.random.default_rng(seed)
    start = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(steps)]
    if specials:
        for array in [start] + grads:
            array[rng.integers(0, size, 6)] = rng.choice(SPECIALS, 6)
    return stepped(make_optimizer, start, grads, kernel)


SGDS = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.1, momentum=0.5, dampening=0.3), dict(lr=0.1, momentum=0.9, weight_decay=1e-2),
        dict(lr=0.1, momentum=0.9, maximize=True), dict(lr=0.1, weight_decay=0.1, maximize=True)]
ADAMS = [(mp.optim.Adam, dict()), (mp.optim.Adam, dict(lr=0.01, betas=(0.3, 0.99))),
         (mp.optim.Adam, dict(weight_decay=0.1, amsgrad=True)), (mp.optim.AdamW, dict()),
         (mp.optim.AdamW, dict(lr=0.1, weight_decay=0.5, amsgrad=True)),
         (mp.optim.Adam, dict(maximize=True, eps=1e-3)), (mp.optim.AdamW, dict(weight_decay=0))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", SGDS, ids=str)
def test_sgd_one_pass_gives_numpys_bits(config, dtype):
    make = lambda params: mp.optim.SGD(params, **config)  # noqa: E731
    for specials in (False, True):
        ours = run(make, dtype, 4, 20_000, 1, specials, kernel=True)
        reference = run(make, dtype, 4, 20_000, 1, specials, kernel=False)
        assert len(ours) == len(reference)
        for a, b in zip(ours, reference):
            same_bits(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("optimizer,config", ADAMS, ids=str)
def test_adam_one_pass_gives_numpys_bits(optimizer, config, dtype):
    make = lambda params: optimizer(params, **config)  # noqa: E731
    for specials in (False, True):
        ours = run(make, dtype, 5, 20_000, 2, specials, kernel=True)
        reference = run(make, dtype, 5, 20_000, 2, specials, kernel=False)
        for a, b in zip(ours, reference):
            same_bits(a, b)


@pytest.mark.parametrize("make", [lambda ps: mp.optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: mp.optim.Adam(ps, amsgrad=True)])
def test_the_bits_do_not_depend_on_the_thread_count(make):
    before = mp.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 3):
            mp.set_num_threads(threads)
            runs.append(run(make, np.float32, 3, 100_000, 3, True, kernel=True))
    finally:
        mp.set_num_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            same_bits(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_kernels_give_the_same_bits_on_any_thread_count(dtype):
    from minipool._kernels import optim_steps
    rng = np.random.default_rng(6)
    n = 50_000
    values = [rng.standard_normal(n).astype(dtype) for _ in range(5)]
    outs = []
    for threads in (1, 2, 3):
        p, g, buf, m, v = (a.copy() for a in values)
        v = np.abs(v)
        optim_steps.sgd_step(p, g, buf, 0.1, 0.9, 0.2, 0.01, True, False, False, threads)
        optim_steps.adam_step(p, g, m, v, np.zeros(n, dtype), 0.1, 0.9, 0.99, 1e-8, 0.1, True,
                              True, 0.5, 0.3, threads)
        outs.append([p, buf, m, v])
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            same_bits(a, b)


def test_layouts_the_kernel_does_not_take_are_left_to_numpy_untouched():
    # Strided, read-only or overlapping arrays: the dispatch declines before writing, and
    # the optimizer's NumPy code (the reference above) runs instead.
    rng = np.random.default_rng(4)
    p = np.asfortranarray(rng.standard_normal((30, 20)))
    g = rng.standard_normal((30, 20))
    kept = p.copy()
    assert not optimizer_steps.sgd_step(p, g, None, 0.1, 0, 0, 0, False, False, False)
    read_only = np.array(kept)
    read_only.flags.writeable = False
    assert not optimizer_steps.sgd_step(read_only, g, None, 0.1, 0, 0, 0, False, False, False)
    same = np.array(kept)
    assert not optimizer_steps.sgd_step(same, same, None, 0.1, 0, 0, 0, False, False, False)
    buf = np.zeros((30, 20))
    assert not optimizer_steps.adam_step(same, g, buf, buf, None, 0.1, 0.9, 0.99, 1e-8, 0,
                                         False, False, 1.0, 1.0)
    for array in (p, read_only, same):
        same_bits(array, kept)
    assert not buf.any()


def test_a_gradient_of_another_dtype_falls_back():
    p = mp.nn.Parameter(mp.zeros(4))
    with pytest.raises(RuntimeError, match="gradient with dtype"):  # as PyTorch refuses it
        p.grad = mp.tensor(np.ones(4))
    p._grad = mp.tensor(np.ones(4))  # a float64 gradient on a float32 parameter all the same
    assert not optimizer_steps.sgd_step(p._data, p.grad._data, None, 0.1, 0, 0, 0, False, False, False)
    mp.optim.SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(p.numpy(), np.full(4, -0.5, np.float32))


def test_bad_lengths_are_refused_by_the_kernel():
    from minipool._kernels import optim_steps
    a, b = np.zeros(4, np.float32), np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="differ in length"):
        optim_steps.sgd_step(a, b, None, 0.1, 0, 0, 0, False, False, False, 1)
    with pytest.raises(ValueError, match="momentum needs a buffer"):
        optim_steps.sgd_step(a, a.copy(), None, 0.1, 0.9, 0, 0, False, False, False, 1)
    with pytest.raises(ValueError, match="differ in length"):
        optim_steps.adam_step(a, a.copy(), a.copy(), b, None, 0.1, 0.9, 0.99, 1e-8, 0, False,
                              False, 1.0, 1.0, 1)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), adam=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       size=st.integers(1, 40), lr=st.floats(1e-4, 2.0), beta=st.floats(0.0, 0.999),
       decay=st.sampled_from([0.0, 1e-3, 0.3]), flag=st.booleans())
def test_property_any_hyperparameters_and_values(data, adam, dtype, size, lr, beta, decay, flag):
    values = st.one_of(st.sampled_from(SPECIALS), st.floats(-1e3, 1e3, width=32))
    start = np.array(data.draw(st.lists(values, min_size=size, max_size=size)), dtype)
    grads = [np.array(data.draw(st.lists(values, min_size=size, max_size=size)), dtype)
             for _ in range(3)]
    if adam:
        make = lambda ps: mp.optim.Adam(ps, lr=lr, betas=(beta, 0.999), weight_decay=decay,  # noqa: E731
                                        amsgrad=flag)
    else:
        make = lambda ps: mp.optim.SGD(ps, lr=lr, momentum=beta, weight_decay=decay,  # noqa: E731
                                       nesterov=flag and beta > 0)
    ours, reference = (stepped(make, start, grads, kernel) for kernel in (True, False))
    for a, b in zip(ours, reference):
        same_bits(a, b)
