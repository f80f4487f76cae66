"""Bad input never crashes the interpreter: a seeded fuzz of every public op and layer.

``tests/reliability/_fuzz_worker.py`` runs in a subprocess and makes N random calls (see
its docstring for the catalogue of invalid arguments), printing one JSON line
per call.  This test then requires:

* the worker exits normally (return code 0: no segfault -11, no abort -6, no
  MemoryError crash), and ran every call;
* each call either returned a result that passed the worker's checks (shape
  from the output-size formulas, values against the loop references, same
  result for non-contiguous and contiguous input, a finite gradient of the
  input's shape), or raised ValueError/TypeError whose message names one of
  the mutated arguments (e.g. "kernel_size", "stride", "indices", "input"); a call
  may widen the accepted types in its result row (the Tensor methods raise PyTorch's
  IndexError, RuntimeError and OverflowError too);
* the fuzz reached every op family, and both outcomes.

Known, not yet fixed defects would be listed in ``KNOWN_DEFECTS`` with a strict
xfail test each (none are open now).  Defects the fuzz found and that were
fixed keep a plain regression test.

Environment: ``MINIPOOL_FUZZ_CALLS`` (default 16000, half per thread count) and ``MINIPOOL_FUZZ_SEED``
(default 20240607) reproduce or deepen a run; a failure message prints the
seed, call number and arguments.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minipool as mp
import minipool.nn as nn
import minipool.nn.functional as F
from tests.helpers import subprocess_env

CALLS = int(os.environ.get("MINIPOOL_FUZZ_CALLS", "16000"))
SEED = int(os.environ.get("MINIPOOL_FUZZ_SEED", "20240607"))
ALLOWED = ("ValueError", "TypeError")


def run_worker(seed, calls, threads):
    env = subprocess_env(MINIPOOL_NUM_THREADS=str(threads), PYTHONFAULTHANDLER="1")
    proc = subprocess.run([sys.executable, "-m", "tests.reliability._fuzz_worker", str(seed), str(calls)],
                          capture_output=True, text=True, env=env, timeout=600)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, rows


def crash_report(proc, rows):
    calls = [r for r in rows if r["event"] == "call"]
    done = {r["i"] for r in rows if r["event"] == "result"}
    pending = [c for c in calls if c["i"] not in done]
    where = pending[-1] if pending else "(no call in progress)"
    return (f"worker exited with {proc.returncode} during {where}\n"
            f"stderr tail:\n{proc.stderr[-3000:]}")


def names_an_argument(result):
    """The error message contains a word naming one of the mutated arguments."""
    message = result["message"].lower()
    return any(word.lower() in message for names in result["names"] for word in names)


def known_defect(call, result):
    """The KNOWN_DEFECTS entry this outcome is, or None."""
    for name, matches in KNOWN_DEFECTS.items():
        if matches(call, result):
            return name
    return None


# Known, not yet fixed defects: name -> predicate(call, result).  Empty since the last
# ones (huge sizes in interpolate/pixel_shuffle/layers/unpool, area mode's wording) were
# fixed; each of those keeps a regression test below.
KNOWN_DEFECTS = {}


def judge(rows):
    """(failures, known, stats) over the worker's result lines."""
    calls = {r["i"]: r for r in rows if r["event"] == "call"}
    failures, known, stats = [], {}, {"ok": 0, "error": 0, "ops": set()}
    for r in (r for r in rows if r["event"] == "result"):
        call = calls[r["i"]]
        stats["ops"].add(r["op"])
        stats[r["outcome"]] += 1
        defect = known_defect(call, r)
        if defect:
            known.setdefault(defect, []).append(r["i"])
            continue
        if r["outcome"] == "ok":
            if r["problems"]:
                failures.append((call, f"wrong result: {r['problems']}"))
        elif r["exc"] not in r.get("allowed", ALLOWED):
            failures.append((call, f"raised {r['exc']}: {r['message']} (in {r.get('where')})"))
        elif not names_an_argument(r):
            failures.append((call, f"{r['exc']} message names none of {r['names']}: "
                                   f"{r['message']!r}"))
    return failures, known, stats


def format_failures(failures, seed):
    lines = [f"{len(failures)} bad outcomes (seed {seed}); first ones:"]
    for call, why in failures[:25]:
        lines.append(f"  call {call['i']} {call['op']} mutations={call['mutations']} "
                     f"args={call['args']} kwargs={call['kwargs']}\n      -> {why}")
    return "\n".join(lines)


@pytest.mark.parametrize("threads", [1, 2])
def test_random_bad_calls_never_crash_and_fail_cleanly(threads):
    seed = SEED + threads
    calls = CALLS // 2
    proc, rows = run_worker(seed, calls, threads)
    assert proc.returncode == 0, crash_report(proc, rows)
    assert rows and rows[0]["event"] == "start" and rows[-1]["event"] == "end", proc.stderr[-2000:]
    # the worker tested the minipool this test imports (the debug build in CI's debug job)
    assert os.path.samefile(rows[0]["minipool"], os.path.dirname(mp.__file__))
    failures, known, stats = judge(rows)
    assert not failures, format_failures(failures, seed)
    assert stats["ok"] + stats["error"] == calls
    # the fuzz must reach every op and both outcomes, or it proves little
    from tests.reliability._fuzz_worker import FAMILIES
    assert stats["ops"] == {op for op, _ in FAMILIES}
    assert stats["ok"] > calls // 10 and stats["error"] > calls // 3, stats


def test_the_judge_rejects_crashes_and_bad_messages():
    """The checks above can fail: feed the judge outcomes that must be rejected."""
    call = {"event": "call", "i": 0, "op": "max_pool2d", "mutations": [["stride", "stride=0"]],
            "args": [], "kwargs": {}}
    good = {"event": "result", "i": 0, "op": "max_pool2d", "names": [["stride"]],
            "outcome": "error", "exc": "ValueError", "message": "max_pool2d: stride must be >= 1"}
    assert judge([call, good])[0] == []
    for bad in (dict(good, exc="IndexError"), dict(good, message="something went wrong"),
                dict(good, exc="RuntimeError"),
                dict(good, outcome="ok", problems=["output shape (1,), expected (2,)"])):
        assert len(judge([call, bad])[0]) == 1, bad
    # a call that may raise PyTorch's IndexError/RuntimeError (the tensor habits) says so,
    # and still may not raise anything else or name nothing
    habit = dict(good, op="argmax", names=[["dim"]], allowed=["ValueError", "TypeError", "IndexError"])
    assert judge([call, dict(habit, exc="IndexError", message="argmax: dim 5 is out of range")])[0] == []
    for bad in (dict(habit, exc="RuntimeError", message="argmax: dim"),
                dict(habit, exc="IndexError", message="something went wrong")):
        assert len(judge([call, bad])[0]) == 1, bad
    # a worker that dies mid-call is reported with the call it was in
    proc = subprocess.run([sys.executable, "-c", "import os, json; print(json.dumps({'event': "
                           "'call', 'i': 7, 'op': 'x'})); os.abort()"], capture_output=True,
                          text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode != 0 and "'i': 7" in crash_report(proc, rows)


# ------------------------------------------------------------------ found by the fuzz, fixed
@pytest.mark.parametrize("size", [2 ** 31, 2 ** 40, 2 ** 62])
def test_huge_adaptive_output_size_is_a_named_value_error(size):
    with pytest.raises(ValueError, match="output_size"):
        F.adaptive_avg_pool1d(mp.ones(1, 1, 4), size)


def test_stride_beyond_int64_is_a_named_value_error():
    with pytest.raises(ValueError, match="stride"):
        F.max_pool2d(mp.ones(1, 1, 4, 4), 2, stride=2 ** 64)


def test_array_kernel_size_names_the_argument():
    with pytest.raises(TypeError, match="kernel_size"):
        F.max_pool2d(mp.ones(1, 1, 4, 4), np.array([2, 2]))


def test_validation_does_not_depend_on_earlier_calls():
    """The geometry cache once keyed on values: True == 1 made dilation=True pass after
    dilation=1 had been used (a TypeError otherwise)."""
    x = mp.ones(1, 1, 6)
    F.max_pool1d(x, 2, dilation=1)
    with pytest.raises(TypeError, match="dilation"):
        F.max_pool1d(x, 2, dilation=True)
    F.max_pool1d(x, 2)
    with pytest.raises(TypeError, match="kernel_size"):
        F.max_pool1d(x, 2.0)


def test_numpy_float_stride_names_the_argument():
    with pytest.raises(TypeError, match="stride"):
        F.max_pool2d(mp.ones(1, 1, 4, 4), 2, stride=np.float32(2.0))


def test_conv_of_an_empty_plane_is_refused():
    """Found by the fuzz on the debug build: im2col indexed an empty input out of bounds."""
    with pytest.raises(ValueError, match="input"):
        F.conv2d(mp.ones(1, 4, 0, 5), mp.ones(2, 2, 2, 2), groups=2, padding=1)


def test_pooling_channels_last_input_without_channels():
    """Found by the fuzz on the debug build: the index kernel addressed [b, 0, 0] of an
    empty codes array (harmless in the release build, an IndexError with bounds checks)."""
    # (issue 13: a batched input without channels is now refused, as PyTorch refuses it;
    # an empty batch still reaches the kernels with an empty codes array)
    x = mp.tensor(np.zeros((1, 4, 0), np.int32))
    with pytest.raises(ValueError, match="input"):
        F.max_pool1d(x, 3, ceil_mode=True, return_indices=True, data_format="channels_last")
    x = mp.tensor(np.zeros((0, 4, 2), np.int32))
    y, idx = F.max_pool1d(x, 3, ceil_mode=True, return_indices=True, data_format="channels_last")
    assert y.shape == idx.shape == (0, 2, 2)


def test_unpool_int_output_size_and_negative_seed_name_the_argument():
    y, idx = F.max_pool1d(mp.ones(1, 1, 4), 2, return_indices=True)
    with pytest.raises(TypeError, match="output_size"):
        F.max_unpool1d(y, idx, 2, output_size=4)
    y, idx = F.max_pool1d(mp.ones(1, 1, 1), 1, stride=3, return_indices=True)
    with pytest.raises(ValueError, match="output_size"):
        F.max_unpool1d(y, idx, 1, stride=3, output_size=(0,))
    with pytest.raises(ValueError, match="generator"):
        F.stochastic_pool2d(mp.ones(1, 4, 4), 2, generator=-1)


# ------------------------------------------------------------------ fixed defects, one test each
@pytest.mark.parametrize("kwargs,name", [(dict(size=2 ** 40), "interpolate: size"),
                                         (dict(scale_factor=1e30), "scale_factor")])
def test_huge_interpolate_size_is_a_named_value_error(kwargs, name):
    with pytest.raises(ValueError, match=name):
        F.interpolate(mp.ones(1, 1, 4), **kwargs)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_interpolate_size_beyond_int64_is_refused(mode):
    with pytest.raises((ValueError, MemoryError)):
        y = F.interpolate(mp.ones(1, 1, 2), size=2 ** 63, mode=mode)
        assert y.shape == (1, 1, 2 ** 63), y.shape


def test_unpool_with_a_huge_kernel_refuses_instead_of_corrupting_the_heap():
    """Regression: np.prod of the output shape wrapped around int64 to 0, the kernel wrote
    past a 0-cell buffer and glibc aborted ("free(): invalid next size") at exit.  Run in a
    subprocess so a regression kills it, not pytest."""
    code = ("import minipool as mp, minipool.nn.functional as F\n"
            "y, i = F.max_pool2d(mp.ones(1, 2, 4, 4), 2, return_indices=True)\n"
            "for k in (2**31, 2**32, 2**62):\n"
            "    try:\n"
            "        F.max_unpool2d(y, i, k)\n"
            "    except (ValueError, MemoryError) as e:\n"
            "        print(type(e).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ValueError"] * 3, proc.stdout


@pytest.mark.parametrize("make", [lambda: nn.Linear(2 ** 62, 2), lambda: nn.Conv2d(2 ** 62, 1, 3)],
                         ids=["Linear", "Conv2d"])
def test_huge_layer_sizes_are_named_value_errors(make):
    with pytest.raises(ValueError, match="features|channels"):
        make()


def test_unpool_with_a_huge_kernel_names_the_argument():
    y, idx = F.max_pool2d(mp.ones(1, 2, 4, 4), 2, return_indices=True)
    with pytest.raises(ValueError, match="kernel_size|output_size"):
        F.max_unpool2d(y, idx, 2 ** 62)


def test_area_interpolation_names_the_callers_argument():
    with pytest.raises(ValueError, match="scale_factor"):
        F.interpolate(mp.ones(1, 1, 4), scale_factor=1e30, mode="area")


def test_huge_explicit_unpool_output_size_names_the_argument():
    y, idx = F.max_pool1d(mp.ones(1, 1, 2), 2, return_indices=True)
    with pytest.raises(ValueError, match="output_size"):
        F.max_unpool1d(y, idx, 1, stride=2 ** 62, output_size=(2 ** 40,))


def test_huge_pixel_shuffle_factor_names_the_argument():
    with pytest.raises(ValueError, match="upscale_factor"):
        F.pixel_shuffle(mp.zeros(0, 1, 2), 10 ** 30)
