"""The kernels' team shrinks while other processes keep cores busy, and grows back."""
import os
import subprocess
import sys
import textwrap

import pytest

import minipool as mp
from minipool import _config, _cpu_load
from minipool._cpu_load import _team_size

LINUX_STAT = os.path.exists("/proc/stat")


@pytest.mark.parametrize("team, free, cpus, expected", [
    (2, 2.0, 2, 2), (2, 1.45, 2, 2), (2, 1.4, 2, 1), (2, 1.0, 2, 1), (2, 0.1, 2, 1),
    (1, 1.5, 2, 1), (1, 1.6, 2, 2), (1, 0.0, 2, 1),
    (8, 4.9, 8, 5), (3, 8.0, 8, 8), (8, 7.5, 8, 8), (8, 7.4, 8, 7), (1, 1.0, 1, 1),
])
def test_team_size_moves_only_past_the_band(team, free, cpus, expected):
    assert _team_size(team, free, cpus) == expected


def test_busy_ticks_reads_our_cpus():
    if not LINUX_STAT:
        pytest.skip("no /proc/stat on this system: the team is never shrunk")
    assert _cpu_load._busy_ticks(_cpu_load._our_cpus()) > 0
    assert _cpu_load._busy_ticks(frozenset()) == 0


@pytest.mark.skipif(not LINUX_STAT or len(os.sched_getaffinity(0)) != 2,
                    reason="the scenario is the 2-core machine: one core taken by a spinning process")
def test_a_busy_core_shrinks_the_team_and_results_do_not_change():
    script = textwrap.dedent("""
        import json, subprocess, sys, time
        import numpy as np, minipool as mp
        import minipool.nn.functional as F
        from minipool import _config, _cpu_load
        mp.set_adaptive_threads(True)
        mp.set_num_threads(2)
        x = mp.tensor(np.random.default_rng(0).standard_normal((64, 6, 28, 28)).astype(np.float32))

        def settle():
            end = time.monotonic() + 1.2
            while time.monotonic() < end:  # kernels ask for a team: that is when load is sampled
                _config.kernel_threads(64, 1 << 20)
                time.sleep(0.01)
            return _config.kernel_threads(64, 1 << 20)

        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            loaded = settle()
            loaded_out = F.max_pool2d(x, 2).numpy().tobytes()
            load = _cpu_load.other_load()
        finally:
            spinner.kill(); spinner.wait()
        mp.set_adaptive_threads(False)
        fixed_out = F.max_pool2d(x, 2).numpy().tobytes()
        print(json.dumps(dict(loaded=loaded, load=load, same=loaded_out == fixed_out,
                              fixed=_config.kernel_threads(64, 1 << 20))))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    import json
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["load"] >= 0.6, result
    assert result["loaded"] == 1, result
    assert result["fixed"] == 2 and result["same"], result


def test_switch_and_small_jobs():
    assert _config.kernel_threads(64, 10) == 1  # small work: one thread, whatever the load
    with pytest.raises(TypeError, match="enabled must be True or False"):
        mp.set_adaptive_threads(1)
    old = mp.get_num_threads()
    mp.set_num_threads(2)
    try:
        mp.set_adaptive_threads(False)
        assert _config.kernel_threads(64, 1 << 20) == min(2, _config.get_num_threads())
    finally:
        mp.set_num_threads(old)


def test_environment_switch_turns_it_off():
    env = dict(os.environ, MINIPOOL_ADAPTIVE_THREADS="0")
    out = subprocess.run([sys.executable, "-c", "from minipool import _cpu_load; print(_cpu_load.adaptive())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
