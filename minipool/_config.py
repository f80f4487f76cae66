"""Thread count and build report.

The kernels take their thread count from here on every call, so
``set_num_threads`` takes effect at once.  At import the count comes from
``MINIPOOL_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the number of CPUs.
Under load (``minipool._cpu_load``) ``kernel_threads`` shrinks the team, and
``kernel_team`` moves long convolutions to the load-tolerant team instead.
"""
import os
import platform
import sys
from typing import Optional, TextIO

from minipool import _cpu_load
from minipool._kernels import openmp_helpers

try:
    from minipool._build_info import BUILD_INFO
except ImportError:  # built by something other than setup.py
    BUILD_INFO = {}

__all__ = ["get_num_threads", "set_num_threads", "set_adaptive_threads", "show_config", "kernel_threads"]

# Below this many touched elements a kernel runs on one thread: waking the
# OpenMP team costs more than it saves on LeNet-sized tensors.
PARALLEL_WORK_THRESHOLD = 1 << 15


def _threads_from_env():
    for var in ("MINIPOOL_NUM_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(var, "").split(",")[0].strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{var}={raw!r} is not an integer thread count") from None
            if value < 1:
                raise ValueError(f"{var} must be >= 1, got {value}")
            return value
    return os.cpu_count() or 1


_num_threads = _threads_from_env() if openmp_helpers.openmp_enabled() else 1


def get_num_threads() -> int:
    """The number of threads minipool's kernels use (1 in a serial build).

    >>> import minipool
    >>> minipool.get_num_threads() >= 1
    True
    """
    return _num_threads


# Under load a kernel that can run on the load-tolerant team (conv2d, see
# ``kernel_team``) keeps its full team when a call does at least this many
# multiply-adds (~2 ms of one core): a thread descheduled for a time slice while
# it holds a chunk then delays the call by a small part of what it contributes.
LOAD_TEAM_WORK = 1 << 26
LOAD_TEAM_MODES = ("auto", "always", "never")


def _load_team_from_env():
    mode = os.environ.get("MINIPOOL_LOAD_TEAM", "auto").strip().lower() or "auto"
    if mode not in LOAD_TEAM_MODES:
        raise ValueError(f"MINIPOOL_LOAD_TEAM={mode!r} must be one of {', '.join(LOAD_TEAM_MODES)}")
    return mode


_load_team_mode = _load_team_from_env()


def kernel_threads(n_planes, work):
    """Threads for a kernel call over ``n_planes`` independent planes touching
    ``work`` elements: 1 for small jobs, never more threads than planes, nor
    than the cores other processes leave free (``minipool._cpu_load``)."""
    if work < PARALLEL_WORK_THRESHOLD or n_planes < 2 or _num_threads == 1:
        return 1
    return max(1, min(_num_threads, n_planes, _cpu_load.free_threads()))


def kernel_team(n_planes, work, multiply_adds):
    """``(threads, load_team)`` for a kernel that can share its chunks out on the
    load-tolerant team (``minipool/_kernels/load_team.h``) instead of an OpenMP region.

    Quiet machine: ``kernel_threads`` on OpenMP, as every kernel.  When other
    processes' load has shrunk the team (``minipool._cpu_load``) and the call is
    long (``multiply_adds >= LOAD_TEAM_WORK``), the full team runs on the
    load-tolerant team: the thread that shares a core with the other process adds
    the part of a core it gets, and the call never waits for it to be scheduled
    unless it holds a chunk.  Short calls stay on one thread (a time slice of
    waiting would cost more than the thread adds).  ``MINIPOOL_LOAD_TEAM``
    (``auto``, ``always``: whenever threads > 1, ``never``) is for tests and benchmarks.
    """
    threads = kernel_threads(n_planes, work)
    if _load_team_mode == "never" or work < PARALLEL_WORK_THRESHOLD:
        return threads, False
    full = max(1, min(_num_threads, n_planes))
    if _load_team_mode == "always":
        return full, full > 1
    if threads < full and multiply_adds >= LOAD_TEAM_WORK:
        return full, True
    return threads, False


def set_load_team(mode):
    """``"auto"`` (the default), ``"always"`` or ``"never"``: when kernels that can use
    the load-tolerant team do (see ``kernel_team``); for tests and benchmarks."""
    global _load_team_mode
    if mode not in LOAD_TEAM_MODES:
        raise ValueError(f"set_load_team: mode must be one of {LOAD_TEAM_MODES}, got {mode!r}")
    previous, _load_team_mode = _load_team_mode, mode
    return previous


def set_adaptive_threads(enabled: bool) -> None:
    """Let kernels use fewer threads than ``get_num_threads()`` while other
    processes keep cores busy (``True``, the default), or always the full count.

    A parallel region waits for its slowest thread, and a thread that shares
    its core with another process is descheduled for whole time slices: on a
    2-core machine with one core busy, 2-thread training ran at 20% of its
    quiet speed, one thread at ~75%.  Results are the same bits either way.
    ``MINIPOOL_ADAPTIVE_THREADS=0`` turns it off at import.

    >>> import minipool
    >>> minipool.set_adaptive_threads(False); minipool.set_adaptive_threads(True)
    """
    _cpu_load.set_adaptive(enabled)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in every kernel from now on.

    >>> import minipool
    >>> old = minipool.get_num_threads()
    >>> minipool.set_num_threads(1); minipool.get_num_threads()
    1
    >>> minipool.set_num_threads(old)
    """
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _num_threads = n if openmp_helpers.openmp_enabled() else 1


def show_config(file: Optional[TextIO] = None) -> None:
    """Print the version, the build (OpenMP, compiler, flags) and the thread count.

    >>> import io, minipool
    >>> out = io.StringIO(); minipool.show_config(out); out.getvalue().startswith("minipool ")
    True
    """
    from minipool import __version__
    import numpy as np

    from minipool._blas import gemm_backend

    out = file or sys.stdout
    lines = [
        f"minipool {__version__}",
        f"  python         {platform.python_version()} ({sys.executable})",
        f"  numpy          {np.__version__}",
        f"  openmp         {'on' if openmp_helpers.openmp_enabled() else 'OFF (serial kernels)'}",
        f"  threads        {get_num_threads()} (runtime default {openmp_helpers.runtime_max_threads()}, "
        f"cpus {os.cpu_count()})",
        f"  adaptive team  " + (f"on (other processes busy on {_cpu_load.other_load():.1f} cores: "
                                f"up to {_cpu_load.free_threads()} threads now)"
                                if _cpu_load.adaptive() else "off"),
        f"  load team      {_load_team_mode} (long convolutions under load; MINIPOOL_LOAD_TEAM)",
        f"  compiler       {BUILD_INFO.get('compiler', 'unknown')}",
        f"  compile flags  {' '.join(BUILD_INFO.get('compile_args', [])) or 'unknown'}",
        f"  link flags     {' '.join(BUILD_INFO.get('link_args', [])) or '(none)'}",
        f"  debug build    {BUILD_INFO.get('debug_build', 'unknown')}",
        f"  conv2d GEMM    {gemm_backend()}",
    ]
    print("\n".join(lines), file=out)
