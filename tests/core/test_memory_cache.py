"""The memory cache behind minipool's ops: scoped to minipool, bounded, correct, no leak."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minipool as mp
import minipool.nn.functional as F
from minipool import _memory
from minipool._kernels import memory_cache

get_handler_name = pytest.importorskip("numpy._core.multiarray").get_handler_name


def test_user_arrays_never_use_the_cache():
    x = mp.randn(64, 6, 28, 28, requires_grad=True)
    y = F.max_pool2d(F.relu(x), 2)
    y.sum().backward()
    assert get_handler_name() == "default_allocator"          # outside minipool: NumPy's own
    assert get_handler_name(np.empty(1 << 20)) == "default_allocator"
    owner = y.numpy()
    while isinstance(owner.base, np.ndarray):  # a view: the array that owns the memory
        owner = owner.base
    assert get_handler_name(owner) == "minipool_memory_cache"   # made inside an op


def test_freed_blocks_are_reused_and_bounded():
    _memory.empty_memory_cache()
    before = _memory.memory_cache_info()
    previous = _memory.activate()
    try:
        a = np.ones(1 << 18)  # 2 MiB
        address = a.ctypes.data
        del a
        held = _memory.memory_cache_info()
        assert held["blocks"] == 1 and held["held"] == 8 << 18
        b = np.zeros(1 << 18)  # same size: the same block, zeroed
        assert b.ctypes.data == address and not b.any()
        c = np.empty(1 << 17)  # other size: a fresh block
        assert c.ctypes.data != address
    finally:
        _memory.restore(previous)
    assert _memory.memory_cache_info()["hits"] >= before["hits"] + 1
    del b, c
    _memory.set_memory_cache(1 << 20)  # below what it holds: the excess goes back at once
    try:
        assert _memory.memory_cache_info()["held"] <= 1 << 20
    finally:
        _memory.set_memory_cache(_memory.DEFAULT_LIMIT)


def test_cache_off_keeps_nothing():
    _memory.set_memory_cache(0)
    try:
        previous = _memory.activate()
        try:
            a = np.ones(1 << 18)
            del a
        finally:
            _memory.restore(previous)
        assert _memory.memory_cache_info()["held"] == 0
    finally:
        _memory.set_memory_cache(_memory.DEFAULT_LIMIT)


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_bytes must be >= 0"):
        mp.set_memory_cache(-1)
    with pytest.raises(TypeError, match="max_bytes must be an int"):
        mp.set_memory_cache(1.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 300_000), st.booleans()), min_size=1, max_size=40))
def test_blocks_never_overlap_live_arrays(plan):
    """Allocate, fill, free some, reallocate: every live array keeps its own values."""
    previous = _memory.activate()
    try:
        live = []
        for k, (n, drop) in enumerate(plan):
            a = np.full(n, k + 1, dtype=np.uint8)  # a value no other live array has
            live.append(a)
            if drop and live:
                live.pop(0)
            for i, arr in enumerate(live):
                assert (arr == arr[0]).all()
        values = [int(arr[0]) for arr in live]
        assert len(set(values)) == len(values)
    finally:
        _memory.restore(previous)


def test_calloc_and_realloc_paths():
    previous = _memory.activate()
    try:
        a = np.full(1 << 17, 7.0)
        del a
        z = np.zeros(1 << 17)  # calloc served from the cache: must be zeroed
        assert not z.any()
        r = np.ones(1 << 16)
        r.resize(1 << 18, refcheck=False)  # realloc through the handler
        assert (r[: 1 << 16] == 1).all() and not r[1 << 16:].any()
    finally:
        _memory.restore(previous)


def test_rss_is_flat_over_5000_training_steps():
    """No leak from the memory cache or conv's workspace: resident memory after 5,000
    steps equals what it was after 500 (within a few MiB of allocator noise)."""
    script = textwrap.dedent("""
        import json, numpy as np, minipool as mp
        nn = mp.nn
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(400, 10))
        opt = mp.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        rng = np.random.default_rng(0)
        x = mp.tensor(rng.standard_normal((16, 1, 28, 28)).astype(np.float32))
        y = mp.tensor(rng.integers(0, 10, 16))
        marks = {}
        for step in range(1, 5001):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            if step in (500, 5000):
                marks[step] = rss()
        print(json.dumps(dict(marks=marks, cache=mp.memory_cache_info())))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    early, late = result["marks"]["500"], result["marks"]["5000"]
    assert late - early < 4 << 20, result
    assert result["cache"]["hits"] > 1000  # the loop really ran through the cache
