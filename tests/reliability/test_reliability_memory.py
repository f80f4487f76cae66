"""No leaks: long loops keep resident memory flat, and backward frees the graph.

* Every pooling and upsampling op runs 10,000 forward+backward iterations on a
  small tensor.  The resident set size (RSS, from /proc/self/statm) after the
  last iteration may exceed the RSS after a 1,000-iteration warm-up by at most
  ``RSS_BOUND_OP`` = 2 MiB, and the number of live gc-tracked objects may grow
  by at most 50.  Inputs are chosen so that leaking one array (input,
  output, gradient, argmax codes) per iteration would add >= 3 MiB over the
  9,000 measured iterations, so the bound catches it.
* 200 LeNet-5 training steps (batch 16, SGD with momentum): RSS after step 200
  within ``RSS_BOUND_LENET`` = 8 MiB of RSS after step 20 (one leaked
  activation batch per step would be > 50 MiB).
* Graph freeing, checked with weak references while the cyclic garbage
  collector is disabled (so only reference counting can free things): after
  ``loss.backward()`` the op's output tensor, its Function context and every
  array the context saved (argmax codes, saved inputs) are gone, while
  ``loss`` itself is still alive; with ``retain_graph=True`` they stay (the
  check can fail).  A forward+backward creates no reference cycles
  (``gc.collect()`` finds nothing afterwards).
"""
import gc
import json
import os
import resource
import subprocess
import sys
import weakref

import numpy as np
import pytest

import minipool as mp
import minipool.nn.functional as F
from minipool import optim
from minipool.models import build_model
from tests.helpers import subprocess_env

MiB = 1 << 20
RSS_BOUND_OP = 2 * MiB
RSS_BOUND_LENET = 8 * MiB
OBJECT_BOUND = 50
ITERATIONS = 10_000
WARMUP = 1_000


def rss_bytes():
    """Current resident set size (Linux); elsewhere the peak RSS, which also grows with a leak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024


def _unpool(x):
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    return F.max_unpool2d(y, idx, 2, output_size=x.shape[-2:])


# op name -> (input shape, function); inputs of 1-3 KiB so a leaked array per step shows
OPS = {
    "max_pool1d": ((2, 3, 64), lambda x: F.max_pool1d(x, 3, 2, 1)),
    "max_pool2d": ((2, 3, 8, 8), lambda x: F.max_pool2d(x, 2)),
    "max_pool2d_indices": ((2, 3, 8, 8), lambda x: F.max_pool2d(x, 3, 2, 1, return_indices=True)[0]),
    "max_pool3d": ((1, 2, 6, 6, 6), lambda x: F.max_pool3d(x, 2)),
    "min_pool2d": ((2, 3, 8, 8), lambda x: F.min_pool2d(x, 2, ceil_mode=True)),
    "avg_pool1d": ((2, 3, 64), lambda x: F.avg_pool1d(x, 4)),
    "avg_pool2d": ((2, 3, 8, 8), lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
    "avg_pool3d": ((1, 2, 6, 6, 6), lambda x: F.avg_pool3d(x, 3, 1, 1)),
    "sum_pool2d": ((2, 3, 8, 8), lambda x: F.sum_pool2d(x, 2)),
    "lp_pool2d": ((2, 3, 8, 8), lambda x: F.lp_pool2d(x, 3.0, 2)),
    "adaptive_max_pool2d": ((2, 3, 8, 8), lambda x: F.adaptive_max_pool2d(x, 3)),
    "adaptive_avg_pool2d": ((2, 3, 8, 8), lambda x: F.adaptive_avg_pool2d(x, (3, 5))),
    "global_avg_pool2d": ((2, 3, 8, 8), lambda x: F.global_avg_pool2d(x)),
    "stochastic_train": ((2, 3, 8, 8), lambda x: F.stochastic_pool2d(x, 2, generator=0)),
    "stochastic_eval": ((2, 3, 8, 8), lambda x: F.stochastic_pool2d(x, 2, training=False)),
    "max_unpool2d": ((2, 3, 8, 8), _unpool),
    "nhwc_max_pool2d": ((2, 8, 8, 3), lambda x: F.max_pool2d(x, 2, data_format="channels_last")),
    "nearest": ((2, 3, 8, 8), lambda x: F.interpolate(x, scale_factor=2)),
    "nearest_exact": ((2, 3, 8, 8), lambda x: F.interpolate(x, size=(5, 11), mode="nearest-exact")),
    "linear": ((2, 3, 64), lambda x: F.interpolate(x, scale_factor=1.5, mode="linear")),
    "bilinear": ((2, 3, 8, 8), lambda x: F.interpolate(x, scale_factor=2, mode="bilinear")),
    "bilinear_ac": ((2, 3, 8, 8), lambda x: F.interpolate(x, size=5, mode="bilinear",
                                                          align_corners=True)),
    "bicubic": ((2, 3, 8, 8), lambda x: F.interpolate(x, scale_factor=2, mode="bicubic")),
    "trilinear": ((1, 2, 6, 6, 6), lambda x: F.interpolate(x, scale_factor=2, mode="trilinear")),
    "area": ((2, 3, 8, 8), lambda x: F.interpolate(x, size=(3, 5), mode="area")),
    "pixel_shuffle": ((2, 4, 8, 8), lambda x: F.pixel_shuffle(x, 2)),
}


def leaf(shape, seed=0):
    data = np.random.default_rng(seed).random(shape).astype(np.float32)  # >= 0 for stochastic
    return mp.tensor(data, requires_grad=True)


def step(fn, x, grad):
    y = fn(x)
    y.backward(grad)
    x.grad = None


def measure_growth(name):
    """(RSS growth in bytes, growth in live gc objects) of op ``name`` over the measured iterations."""
    shape, fn = OPS[name]
    x = leaf(shape)
    grad = np.ones(fn(x).shape, np.float32)
    for _ in range(WARMUP):
        step(fn, x, grad)
    gc.collect()
    rss_before, objects_before = rss_bytes(), len(gc.get_objects())
    for _ in range(ITERATIONS - WARMUP):
        step(fn, x, grad)
    gc.collect()
    return rss_bytes() - rss_before, len(gc.get_objects()) - objects_before


@pytest.fixture(scope="module")
def growth_in_a_fresh_interpreter():
    """Every op measured in one fresh interpreter: late in a long test session, threads that
    earlier tests started (a Dask cluster, onnxruntime) and the allocator's state move RSS
    by megabytes on their own, which is noise here, not a leak of the op."""
    code = (
        "import json\n"
        "from tests.reliability.test_reliability_memory import OPS, measure_growth\n"
        "print(json.dumps({name: measure_growth(name) for name in OPS}))\n")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(OPS))
def test_ten_thousand_forward_backward_iterations_keep_memory_flat(name, growth_in_a_fresh_interpreter):
    grown, objects = growth_in_a_fresh_interpreter[name]
    assert grown < RSS_BOUND_OP, f"{name}: RSS grew by {grown / MiB:.2f} MiB over " \
                                 f"{ITERATIONS - WARMUP} iterations"
    assert objects < OBJECT_BOUND, f"{name}: {objects} more live objects than after warm-up"


def test_the_rss_probe_sees_a_leak():
    """The probe is sensitive enough: keeping one 1.5 KiB array per iteration is caught.

    Run in a fresh interpreter: late in a long test session the allocator's free
    lists can hold more than the 13 MiB this probe keeps, so RSS need not move.
    """
    code = (
        "import numpy as np\n"
        "from tests.reliability.test_reliability_memory import rss_bytes, ITERATIONS, WARMUP\n"
        "kept = []\n"
        "before = rss_bytes()\n"
        "for _ in range(ITERATIONS - WARMUP):\n"
        "    kept.append(np.ones(384, np.float32))\n"
        "print(rss_bytes() - before)\n")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > RSS_BOUND_OP


def test_lenet5_training_steps_keep_memory_flat():
    rng = np.random.default_rng(0)
    images = mp.tensor(rng.standard_normal((16, 1, 32, 32)).astype(np.float32))
    labels = mp.tensor(rng.integers(0, 10, 16))
    model = build_model("lenet5", seed=0)
    opt = optim.SGD(list(model.parameters()), lr=0.01, momentum=0.9)

    def train_step():
        loss = F.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.item())

    first = [train_step() for _ in range(20)]
    gc.collect()
    rss_before, objects_before = rss_bytes(), len(gc.get_objects())
    last = [train_step() for _ in range(180)]
    gc.collect()
    grown = rss_bytes() - rss_before
    assert grown < RSS_BOUND_LENET, f"RSS grew by {grown / MiB:.2f} MiB over 180 steps"
    assert len(gc.get_objects()) - objects_before < OBJECT_BOUND
    assert np.isfinite(last).all() and last[-1] < first[0]  # it really trained


# ------------------------------------------------------------------ graph freeing
def saved_arrays(ctx):
    """Weak references to every ndarray a Function context holds."""
    found = [v for v in vars(ctx).values() if isinstance(v, np.ndarray)]
    found += [v for v in getattr(ctx, "saved_tensors", ()) if isinstance(v, np.ndarray)]
    return [weakref.ref(a) for a in found]


@pytest.fixture
def no_cyclic_gc():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def graph_refs(name):
    shape, fn = OPS[name]
    x = leaf(shape)
    y = fn(x)
    loss = (y * y).sum()
    ctx = y.grad_fn
    refs = dict(output=weakref.ref(y), ctx=weakref.ref(ctx), saved=saved_arrays(ctx))
    return x, loss, refs


@pytest.mark.parametrize("name", list(OPS))
def test_backward_frees_the_graph(name, no_cyclic_gc):
    x, loss, refs = graph_refs(name)
    loss.backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert refs["output"]() is None, "the op's output outlives backward"
    assert refs["ctx"]() is None, "the op's Function context outlives backward"
    assert all(r() is None for r in refs["saved"]), "saved arrays outlive backward"
    assert loss.grad_fn is not None  # loss itself is alive: the graph was cut, not dropped
    assert gc.collect() == 0, "forward + backward left reference cycles"


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d", "lp_pool2d", "bilinear"])
def test_retain_graph_keeps_it(name, no_cyclic_gc):
    """Control for the test above: the same references do survive with retain_graph.
    (The op's output Tensor object is not part of the graph: the graph holds the op's
    Function node and the arrays it saved, as PyTorch's does.)"""
    x, loss, refs = graph_refs(name)
    loss.backward(retain_graph=True)
    assert refs["ctx"]() is not None
    assert all(r() is not None for r in refs["saved"])
    loss.backward()  # the retained graph can be walked again, then it is freed
    assert refs["ctx"]() is None and all(r() is None for r in refs["saved"])


def test_max_pool_keeps_no_argmax_without_a_graph():
    """Under no_grad (and for inputs that need no gradient) no argmax buffer is kept."""
    x = leaf((2, 3, 8, 8))
    with mp.no_grad():
        y = F.max_pool2d(x, 2)
    assert y.grad_fn is None
    y = F.max_pool2d(mp.tensor(x.numpy()), 2)
    assert y.grad_fn is None
