"""conv2d at 2 threads: the serial pieces around the kernels' launches.

OpenBLAS is pinned to one thread (``minipool._blas.single_threaded``: a set and a reset,
15-20 us when it runs on 2) only around a forward that may call BLAS
(``kernels.forward_uses_blas``): the direct, Winograd, first-layer and tile engines never
do; the shapes whose last resort is BLAS keep the pin when the direct kernel cannot take
the weight (inf or NaN).  The bits do not change either way: checked against the pinned
forward with OpenBLAS left on 2 threads.
"""
import contextlib

import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool._blas import blas_num_threads, set_blas_num_threads
from minipool._kernels import conv2d as kernels
from minipool.ops import conv as conv_module
from tests.helpers import with_threads

# (N, C, H, O, kernel, padding): the engine the forward runs on, and whether that forward
# may reach BLAS with a finite weight / with an inf in it (float32)
PIN_CASES = [
    ((8, 64, 4, 64, 5, 2), "direct, BLAS last", False, True),
    ((8, 16, 16, 32, 5, 2), "direct, tiles last", False, False),
    ((8, 64, 4, 128, 3, 1), "Winograd, BLAS last", False, True),
    ((8, 1, 28, 16, 3, 1), "first layer", False, False),
    ((8, 16, 32, 16, 3, 1), "tiles", False, False),
    ((8, 6, 14, 16, 5, 0), "direct (LeNet's conv2), BLAS last", False, True),
]
PIN_IDS = [f"pin{i}" for i in range(len(PIN_CASES))]


def geometry_of(H, k, padding):
    Ho = H + 2 * padding - k + 1
    return conv_module.ConvGeometry(k, k, 1, 1, padding, padding, 1, 1, Ho, Ho, 1)


def make(case, dtype=np.float32, seed=0):
    N, C, H, O, k, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, H)).astype(dtype)
    w = (rng.standard_normal((O, C, k, k)) * 0.1).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    return x, w, b, padding


def uses_blas(case, w, dtype=np.float32):
    N, C, H, O, k, padding = case
    geometry = geometry_of(H, k, padding)
    block_rows, images = conv_module._plan((N, C, H, H), O, geometry)[:2]
    return kernels.forward_uses_blas(np.ascontiguousarray(w.reshape(O, -1), dtype), C, H, H,
                                     geometry, block_rows, images)


@pytest.mark.parametrize("case,engine,finite_blas,inf_blas", PIN_CASES, ids=PIN_IDS)
def test_forward_uses_blas_follows_the_engines_last_resort(case, engine, finite_blas, inf_blas):
    x, w, b, _ = make(case)
    assert uses_blas(case, w) == finite_blas, engine
    w[1, 0, 1, 1] = np.inf
    assert uses_blas(case, w) == inf_blas, engine
    assert uses_blas(case, w, np.float64)  # float64 stays on BLAS in mode 1


def test_forward_uses_blas_follows_the_switches():
    case = PIN_CASES[0][0]
    x, w, b, _ = make(case)
    previous = kernels.use_direct(0)
    try:
        assert uses_blas(case, w)  # 4x4 planes: BLAS once the direct kernel is off
    finally:
        kernels.use_direct(previous)
    previous = kernels.use_tiles(2)
    try:
        assert not uses_blas(case, w) and not uses_blas(case, w, np.float64)
    finally:
        kernels.use_tiles(previous)


@contextlib.contextmanager
def counting_pins(counter):
    """conv.py's ``single_threaded`` counted."""
    original = conv_module.single_threaded

    @contextlib.contextmanager
    def counted():
        counter.append(1)
        with original():
            yield

    conv_module.single_threaded = counted
    try:
        yield
    finally:
        conv_module.single_threaded = original


@pytest.mark.parametrize("case,engine,finite_blas,inf_blas", PIN_CASES, ids=PIN_IDS)
def test_a_forward_pins_openblas_only_when_it_may_call_it(case, engine, finite_blas, inf_blas):
    x, w, b, padding = make(case, seed=1)
    for weight, expected in ((w, finite_blas), (np.where(np.arange(w.size).reshape(w.shape) == 7,
                                                         np.inf, w).astype(np.float32), inf_blas)):
        pins = []
        with counting_pins(pins), mp.no_grad():
            F.conv2d(mp.tensor(x), mp.tensor(weight), mp.tensor(b), padding=padding)
        assert len(pins) == int(expected), engine


@pytest.mark.parametrize("case", [c for c, *_ in PIN_CASES] + [(3, 40, 4, 50, 3, 1)], ids=PIN_IDS + ["odd"])
@pytest.mark.parametrize("inf_in_weight", [False, True])
def test_unpinned_forwards_give_the_pinned_bits_with_openblas_on_two_threads(case, inf_in_weight):
    """The forward and its gradients at 1 and 2 threads with OpenBLAS left on 2, against
    every forward pinned (the start build's way): the same bits."""
    before = blas_num_threads()
    if before is None:
        pytest.skip("NumPy's BLAS is not an OpenBLAS minipool can reach")
    x, w, b, padding = make(case, seed=2)
    if inf_in_weight:
        w[0, 0, 0, 0] = np.inf
    g = np.random.default_rng(3).standard_normal(
        (x.shape[0], w.shape[0]) + (x.shape[2] + 2 * padding - w.shape[2] + 1,) * 2).astype(np.float32)

    def run():
        xt, wt, bt = (mp.tensor(a, requires_grad=True) for a in (x, w, b))
        out = F.conv2d(xt, wt, bt, padding=padding)
        out.backward(g)
        return [out.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()]

    original = conv_module._blas_pinned
    try:
        set_blas_num_threads(2)
        results = [with_threads(t, run) for t in (1, 2)]
        conv_module._blas_pinned = lambda *args: conv_module.single_threaded()
        pinned = with_threads(2, run)
        assert blas_num_threads() == 2
    finally:
        conv_module._blas_pinned = original
        set_blas_num_threads(before)
    for got in results:
        for name, a, want in zip(["out", "grad_x", "grad_w", "grad_b"], got, pinned):
            np.testing.assert_array_equal(a, want, err_msg=name)
