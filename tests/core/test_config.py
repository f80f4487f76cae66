"""Build report and thread control."""
import io
import os
import subprocess
import sys

import pytest

import minipool as mp
from minipool._kernels import openmp_helpers


def test_show_config_reports_build_and_threads():
    buf = io.StringIO()
    mp.show_config(file=buf)
    text = buf.getvalue()
    for word in ("minipool", "openmp", "threads", "compiler", "compile flags"):
        assert word in text
    assert "-ffast-math" not in text and "-march=native" not in text


def test_set_and_get_num_threads():
    old = mp.get_num_threads()
    try:
        mp.set_num_threads(1)
        assert mp.get_num_threads() == 1
        with pytest.raises(ValueError, match="n must be >= 1"):
            mp.set_num_threads(0)
        with pytest.raises(TypeError, match="n must be an int"):
            mp.set_num_threads(1.5)
    finally:
        mp.set_num_threads(old)


@pytest.mark.skipif(not openmp_helpers.openmp_enabled(), reason="serial build: one thread only")
def test_openmp_team_really_runs_in_parallel():
    assert openmp_helpers.threads_used(1) == 1
    assert openmp_helpers.threads_used(2) == 2


@pytest.mark.parametrize("var", ["MINIPOOL_NUM_THREADS", "OMP_NUM_THREADS"])
def test_environment_variables_are_honoured(var):
    env = {k: v for k, v in os.environ.items() if k not in ("MINIPOOL_NUM_THREADS", "OMP_NUM_THREADS")}
    env[var] = "1"
    out = subprocess.run([sys.executable, "-c", "import minipool; print(minipool.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_minipool_variable_wins_over_omp():
    env = dict(os.environ, MINIPOOL_NUM_THREADS="1", OMP_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", "import minipool; print(minipool.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_bad_thread_environment_gives_clear_error():
    env = dict(os.environ, MINIPOOL_NUM_THREADS="lots")
    out = subprocess.run([sys.executable, "-c", "import minipool"], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "MINIPOOL_NUM_THREADS='lots' is not an integer" in out.stderr
