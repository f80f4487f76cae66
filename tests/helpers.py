"""Helpers shared by tests of several areas."""
import os

import minipool

# the checkout: the folder holding tests/, examples/ and (when testing the source tree) minipool/
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def subprocess_env(**overrides):
    """Environment for a Python subprocess that imports ``tests.*`` and the very minipool
    this process imported (a worktree's or the debug build's, not the editable install's)."""
    library = os.path.dirname(os.path.dirname(os.path.abspath(minipool.__file__)))
    inherited = os.environ.get("PYTHONPATH", "")
    path = os.pathsep.join([library, CHECKOUT] + ([inherited] if inherited else []))
    return dict(os.environ, PYTHONPATH=path, **overrides)

