"""NumPy's floating-point warnings, off inside minipool's ops (PyTorch's ops are silent).

``inf - inf``, ``0 * inf`` or an overflow give NaN / inf in PyTorch with no message; NumPy
would print a RuntimeWarning from inside minipool.  ``Function.apply`` switches them off around
an op's forward (the backward pass does the same, see autograd.py) and back on after, so the
user's own NumPy code keeps the user's settings:

    token = state.set(QUIET)
    ...  # the op
    state.reset(token)

``np.errstate`` costs about 1.4 us per use (it rebuilds its state object each time), more than
a small op; in NumPy 2 the state is a context variable, so the quiet state is built once here
and set / reset directly (~0.1 us).  If a NumPy version moves that variable, ``state`` is a
stand-in with the same two methods on ``np.errstate``.
"""
import numpy as np


class _PublicErrstate:
    """``set`` / ``reset`` on the public ``np.errstate`` (slower, same effect)."""

    @staticmethod
    def set(quiet):
        errors = np.errstate(**quiet)
        errors.__enter__()
        return errors

    @staticmethod
    def reset(errors):
        errors.__exit__(None, None, None)


try:
    from numpy._core._ufunc_config import _extobj_contextvar as state
    with np.errstate(all="ignore"):
        QUIET = state.get()
except (ImportError, AttributeError):  # another NumPy layout: the public, slower way
    state, QUIET = _PublicErrstate(), {"all": "ignore"}
