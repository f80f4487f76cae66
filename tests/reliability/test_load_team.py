"""The load-tolerant team (minipool/_kernels/load_team.h) that conv2d uses under load.

Every chunk runs exactly once whoever runs it; the caller never waits for a helper
that has not claimed a chunk; a late or slow helper never changes a bit of a
training step; the team survives fork and a second caller.
"""
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import minipool as mp
from minipool import _config
from minipool._kernels import conv2d as kernels
from tests.helpers import subprocess_env


@pytest.fixture
def load_team_mode():
    """Set ``_config``'s load-team mode for one test (restored afterwards)."""
    previous = [_config._load_team_mode]
    yield lambda mode: _config.set_load_team(mode)
    _config.set_load_team(previous[0])


@pytest.fixture
def helper_delay():
    """Make every helper sleep between taking a job and claiming a chunk (restored to 0)."""
    delays = [0.0]

    def set_delay(seconds):
        delays.append(seconds)
        kernels.set_load_team_helper_delay(seconds)

    yield set_delay
    kernels.set_load_team_helper_delay(0)
    time.sleep(max(delays) + 0.05)  # a helper still asleep would miss the next test's jobs


def self_test(chunks, threads, chunk_us=0, helper_us=0):
    runs = np.zeros(chunks, np.int_)
    workers = np.full(chunks, -1, np.intc)
    kernels.load_team_self_test(runs, workers, threads, chunk_us, helper_us)
    return runs, workers


@pytest.mark.parametrize("chunks", [1, 2, 7, 64, 1000])
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_every_chunk_runs_once_on_a_valid_worker(chunks, threads):
    runs, workers = self_test(chunks, threads, chunk_us=200 if chunks <= 64 else 0)
    assert (runs == 1).all()
    assert workers.min() >= 0 and workers.max() < threads


def test_helpers_share_long_chunks():
    _, workers = self_test(40, 2, chunk_us=2000)
    assert (workers == 1).any(), "the helper never ran a chunk"  # 80 ms of work: it wakes in time


def test_the_caller_does_not_wait_for_a_helper_that_has_not_claimed(helper_delay):
    helper_delay(1.0)
    start = time.perf_counter()
    runs, workers = self_test(20, 2, chunk_us=1000)
    elapsed = time.perf_counter() - start
    assert (runs == 1).all() and (workers == 0).all()
    assert elapsed < 0.6, f"the caller waited {elapsed:.2f} s for a sleeping helper"
    helper_delay(0)
    runs, _ = self_test(20, 2, chunk_us=1000)  # the late helper wakes into another job: harmless
    assert (runs == 1).all()


def test_the_caller_waits_for_a_chunk_a_slow_helper_claimed():
    start = time.perf_counter()
    runs, workers = self_test(200, 2, chunk_us=1000, helper_us=100_000)
    elapsed = time.perf_counter() - start
    assert (runs == 1).all()  # written by the helper, seen by the caller after the call
    assert (workers == 1).any(), "the helper never woke during 200 ms of work"
    assert elapsed >= 0.1  # its chunk takes 100 ms: the call cannot end before it


def thread_cpu_sets():
    """Every thread of this process: its allowed CPUs (Linux)."""
    sets = []
    for tid in os.listdir("/proc/self/task"):
        try:
            sets.append(frozenset(os.sched_getaffinity(int(tid))))
        except OSError:  # the thread ended meanwhile
            pass
    return sets


needs_two_cpus = pytest.mark.skipif(
    not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
    reason="helper placement needs Linux and two CPUs")


@pytest.fixture
def placement():
    """``kernels.set_load_team_placement`` for one test; the defaults are restored."""
    yield kernels.set_load_team_placement
    kernels.set_load_team_placement(-1.0, False)  # every core again, then the defaults
    kernels.set_load_team_placement(1e-4, True)


@needs_two_cpus
def test_helpers_are_kept_off_the_callers_core(placement):
    placement(-1.0, True)  # never pulled: the placement of the job stays
    everything = frozenset(os.sched_getaffinity(0))
    self_test(64, 2, chunk_us=200)
    kept_off = [everything - cpus for cpus in thread_cpu_sets() if cpus < everything]
    assert kept_off and all(len(missing) == 1 for missing in kept_off), kept_off
    placement(-1.0, False)
    assert all(cpus == everything for cpus in thread_cpu_sets())


@needs_two_cpus
def test_helpers_follow_a_narrowed_cpu_set(placement):
    """A user who narrows the process's CPUs after the helpers were placed narrows them too:
    the helpers never run where the caller may not."""
    def cpu_set(tid):
        return frozenset(os.sched_getaffinity(tid))

    placement(-1.0, True)
    everything = cpu_set(0)
    self_test(64, 2, chunk_us=200)  # helpers placed: off the caller's core
    helpers = [int(t) for t in os.listdir("/proc/self/task") if cpu_set(int(t)) < everything]
    assert helpers
    only = min(everything)
    os.sched_setaffinity(0, {only})
    try:
        self_test(64, 2, chunk_us=200)
        assert all(cpu_set(tid) <= {only} for tid in helpers), [cpu_set(t) for t in helpers]
    finally:
        os.sched_setaffinity(0, everything)


@needs_two_cpus
def test_a_waiting_caller_pulls_the_helper_onto_its_core(placement):
    placement(0.0, True)
    kernels.load_team_stats()
    runs, workers = self_test(40, 2, chunk_us=500, helper_us=50_000)  # the helper's chunk: 50 ms
    assert (runs == 1).all() and (workers == 1).any()
    assert kernels.load_team_stats()[4] >= 1  # the caller ran out of chunks first and pulled
    assert any(len(cpus) == 1 for cpus in thread_cpu_sets())  # the helper, on the caller's core


def test_helpers_are_started_once():
    self_test(50, 3, chunk_us=500)
    started = kernels.load_team_helpers()
    for _ in range(20):
        self_test(10, 3, chunk_us=100)
    assert kernels.load_team_helpers() == started <= 3  # at most threads - 1 of the largest job so far


def test_a_second_caller_runs_its_job_alone():
    results = []

    def call():
        results.append(self_test(30, 2, chunk_us=1000))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert len(results) == 3 and all((runs == 1).all() for runs, _ in results)


def cifar_step(dtype, seed=0):
    """Outputs and gradients of a CIFAR-shaped conv stack (conv2/conv3 pass the team's work threshold)."""
    nn = mp.nn
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.Flatten())
    if dtype == np.float64:
        model.double()
    for p in model.parameters():
        p.numpy()[...] = (rng.standard_normal(p.shape) * 0.1).astype(dtype)
    x = mp.tensor(rng.standard_normal((64, 3, 32, 32)).astype(dtype))
    out = model(x)
    (out * out).sum().backward()
    return [out.numpy().copy()] + [p.grad.numpy().copy() for p in model.parameters()]


def same_bits(a, b):
    return len(a) == len(b) and all(x.dtype == y.dtype and x.tobytes() == y.tobytes() for x, y in zip(a, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_step_bits_do_not_depend_on_team_or_thread_count(dtype, load_team_mode):
    old = mp.get_num_threads()
    try:
        load_team_mode("never")
        mp.set_num_threads(1)
        reference = cifar_step(dtype)
        for mode in ("never", "always"):
            load_team_mode(mode)
            for threads in (1, 2, 3):
                mp.set_num_threads(threads)
                assert same_bits(cifar_step(dtype), reference), (mode, threads)
    finally:
        mp.set_num_threads(old)


def test_a_late_or_slow_helper_never_changes_a_bit(load_team_mode, helper_delay):
    old = mp.get_num_threads()
    try:
        load_team_mode("never")
        mp.set_num_threads(1)
        reference = cifar_step(np.float32)
        load_team_mode("always")
        mp.set_num_threads(2)
        for delay in (0.0005, 0.003, 0.02):  # helpers join mid-job, late, or after the caller is done
            helper_delay(delay)
            assert same_bits(cifar_step(np.float32), reference), delay
    finally:
        mp.set_num_threads(old)


def test_kernel_team_choice(load_team_mode):
    old = mp.get_num_threads()
    try:
        mp.set_num_threads(2)
        load_team_mode("never")
        assert _config.kernel_team(64, 1 << 20, 1 << 30) == (_config.kernel_threads(64, 1 << 20), False)
        load_team_mode("always")
        assert _config.kernel_team(64, 1 << 20, 1) == (2, True)
        assert _config.kernel_team(64, 10, 1 << 30)[1] is False  # small work: one thread
        assert _config.kernel_team(1, 1 << 20, 1 << 30) == (1, False)  # one plane: nothing to share
        load_team_mode("auto")
        threads, on_team = _config.kernel_team(64, 1 << 20, _config.LOAD_TEAM_WORK - 1)
        assert not on_team  # short calls never use it
        with pytest.raises(ValueError, match="mode must be one of"):
            _config.set_load_team("sometimes")
    finally:
        mp.set_num_threads(old)


def run_script(script, **env):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True,
                          text=True, timeout=300, env=subprocess_env(**env))
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_bad_environment_setting_names_the_variable():
    done = subprocess.run([sys.executable, "-c", "import minipool"], capture_output=True, text=True,
                          timeout=120, env=subprocess_env(MINIPOOL_LOAD_TEAM="maybe"))
    assert done.returncode != 0 and "MINIPOOL_LOAD_TEAM" in done.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_the_team_works_in_a_forked_child():
    script = """
        import os, numpy as np
        from minipool._kernels import conv2d as k
        def job():
            runs = np.zeros(40, np.int_); workers = np.zeros(40, np.intc)
            k.load_team_self_test(runs, workers, 2, 1000)
            return bool((runs == 1).all())
        assert job() and k.load_team_helpers() >= 1
        pid = os.fork()
        if pid == 0:
            os._exit(0 if job() and job() else 3)
        _, status = os.waitpid(pid, 0)
        print(os.WEXITSTATUS(status), job())
    """
    assert run_script(script) == "0 True"


@pytest.mark.skipif(not os.path.exists("/proc/stat") or len(os.sched_getaffinity(0)) != 2,
                    reason="the scenario is the 2-core machine: one core taken by a spinning process")
def test_training_under_a_busy_core_gives_the_quiet_bits():
    """A spinning process makes ``auto`` move conv2/conv3 onto the load-tolerant team;
    whatever the load does from call to call, the bits are those of one quiet thread."""
    script = """
        import json, subprocess, sys, time
        import numpy as np, minipool as mp
        from minipool import _config
        from minipool._kernels import conv2d as k
        from tests.reliability.test_load_team import cifar_step
        mp.set_num_threads(2)
        _config.set_load_team("auto")
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            steps = [cifar_step(np.float32) for _ in range(4)]
            used = k.load_team_helpers()
        finally:
            spinner.kill(); spinner.wait()
        mp.set_num_threads(1); _config.set_load_team("never")
        quiet = cifar_step(np.float32)
        same = all(a.tobytes() == b.tobytes() for step in steps for a, b in zip(step, quiet))
        print(json.dumps(dict(same=same, helpers=used)))
    """
    result = json.loads(run_script(script))
    assert result["same"], result
