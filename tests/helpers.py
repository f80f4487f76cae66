"""Helpers shared by tests of several areas."""
import contextlib
import os

import minipool
from minipool import _cpu_load

# the checkout: the folder holding tests/, examples/ and (when testing the source tree) minipool/
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# SELU's published constants (Klambauer et al., 2017), for the references that check selu
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def subprocess_env(**overrides):
    """Environment for a Python subprocess that imports ``tests.*`` and the very minipool
    this process imported (a worktree's or the debug build's, not the editable install's)."""
    library = os.path.dirname(os.path.dirname(os.path.abspath(minipool.__file__)))
    inherited = os.environ.get("PYTHONPATH", "")
    path = os.pathsep.join([library, CHECKOUT] + ([inherited] if inherited else []))
    return dict(os.environ, PYTHONPATH=path, **overrides)


@contextlib.contextmanager
def fixed_threads(n):
    """Kernels get n threads, the load-adaptive team off (so n is really used); both restored."""
    before, adaptive = minipool.get_num_threads(), _cpu_load._monitor.enabled
    minipool.set_num_threads(n)
    minipool.set_adaptive_threads(False)
    try:
        yield
    finally:
        minipool.set_num_threads(before)
        minipool.set_adaptive_threads(adaptive)


def with_threads(n, fn):
    """fn() run under ``fixed_threads(n)``; its result."""
    with fixed_threads(n):
        return fn()
