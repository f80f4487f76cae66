"""The generator used when a random op or initialiser is given none.

Pass an explicit ``np.random.Generator`` for reproducible results; ``manual_seed``
reseeds this shared default (it is per process, not per thread).
"""
import numpy as np

__all__ = ["default_generator", "manual_seed", "resolve"]

_default = np.random.default_rng()


def default_generator():
    """The shared ``np.random.Generator`` behind ``generator=None``."""
    return _default


def manual_seed(seed):
    """Reseed the shared default generator; returns it.

    >>> from minipool._random import manual_seed
    >>> a = manual_seed(0).random(); b = manual_seed(0).random()
    >>> a == b
    True
    """
    global _default
    _default = np.random.default_rng(seed)
    return _default


def resolve(generator, where):
    """``generator`` itself, or the shared default when it is None."""
    if generator is None:
        return _default
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{where}: generator must be a numpy.random.Generator or None, "
                        f"got {type(generator).__name__}")
    return generator
