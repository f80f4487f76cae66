"""The one place minipool turns a ``generator=`` argument into random numbers.

Every random op, layer and initialiser (parameter init, dropout, stochastic
pooling, ``randn``/``rand``, the data loader's shuffling) takes ``generator``
and resolves it here, with one rule:

* ``None``: the shared default generator, which :func:`manual_seed` reseeds;
* an int seed (>= 0): a fresh ``np.random.default_rng(seed)`` -- a call given
  the same seed draws the same numbers; a layer resolves it once, at
  construction, and then draws a reproducible sequence;
* an :class:`Generator` (``mp.Generator``, torch's habit) or a
  ``np.random.Generator``: used as is (its state advances).

``manual_seed`` reseeds the default generator *in place*, so layers that kept
a reference to it (e.g. a StochasticPool2d built with ``generator=None``)
follow the new seed too.  It is per process, not per thread.

>>> import minipool as mp
>>> _ = mp.manual_seed(0); a = mp.rand(3).numpy()
>>> _ = mp.manual_seed(0); b = mp.rand(3).numpy()
>>> bool((a == b).all())
True
"""
import json
import secrets
from typing import TYPE_CHECKING, List, Optional, Sequence, Union

import numpy as np

if TYPE_CHECKING:  # minipool.tensor imports this module
    from minipool.tensor import Tensor

__all__ = ["Generator", "default_generator", "manual_seed", "initial_seed", "get_rng_state",
           "set_rng_state", "resolve", "kept",
           "fresh_seed"]

# torch.Generator()'s seed before any manual_seed: a new Generator is reproducible, as there
_TORCH_DEFAULT_SEED = 67280421310721

_default = np.random.default_rng()
_initial_seed = None


def default_generator() -> np.random.Generator:
    """The shared ``np.random.Generator`` behind ``generator=None``.

    >>> import minipool as mp
    >>> mp.default_generator() is mp.manual_seed(0)
    True
    """
    return _default


def _check_seed(seed, where):
    """An int >= 0 (or a sequence of them, as NumPy's SeedSequence takes); else a clear error."""
    if isinstance(seed, bool):
        raise TypeError(f"{where}: seed must be an int >= 0, got a bool ({seed})")
    if isinstance(seed, (int, np.integer)):
        if seed < 0:
            raise ValueError(f"{where}: seed must be >= 0, got {seed}")
        return int(seed)
    if isinstance(seed, (list, tuple)) and seed and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seed):
        if min(seed) < 0:
            raise ValueError(f"{where}: seed entries must be >= 0, got {list(seed)}")
        return [int(s) for s in seed]
    raise TypeError(f"{where}: seed must be an int >= 0, got {type(seed).__name__}")


def manual_seed(seed: Union[int, Sequence[int]]) -> np.random.Generator:
    """Reseed the shared default generator (in place) and return it, as ``torch.manual_seed``.

    One call makes every draw that is given no explicit generator reproducible:
    parameter init, dropout, stochastic pooling, ``mp.randn``/``mp.rand`` and
    the shuffle of each epoch of a DataLoader built without ``seed`` (drawn at ``iter()``).

    >>> from minipool._random import manual_seed
    >>> a = manual_seed(0).random(); b = manual_seed(0).random()
    >>> a == b
    True
    """
    global _initial_seed
    seed = _check_seed(seed, "manual_seed")
    # Same object, new state: references held by layers see the reseed.
    _default.bit_generator.state = np.random.default_rng(seed).bit_generator.state
    _initial_seed = seed
    return _default


def initial_seed() -> Optional[Union[int, List[int]]]:
    """The last seed given to :func:`manual_seed` (None before the first call).

    >>> import minipool as mp
    >>> _ = mp.manual_seed(7); mp.initial_seed()
    7
    """
    return _initial_seed


class Generator:
    """``torch.Generator``'s interface over a NumPy ``PCG64`` generator; every ``generator=``
    argument in minipool accepts one.  The numbers differ from PyTorch's (another algorithm);
    the habits work: ``random_split(ds, [0.8, 0.2], generator=mp.Generator().manual_seed(42))``.

    A new Generator starts from PyTorch's fixed default seed (not from the clock), so two
    unseeded Generators draw the same numbers, as two ``torch.Generator()`` do.

    >>> import minipool as mp
    >>> g = mp.Generator().manual_seed(42)
    >>> a = mp.rand(2, generator=g); state = g.get_state(); b = mp.rand(2, generator=g)
    >>> _ = g.set_state(state); bool((mp.rand(2, generator=g) == b).all()), g.initial_seed()
    (True, 42)
    """

    def __init__(self, device: str = "cpu") -> None:
        if str(device).split(":")[0] != "cpu":
            raise RuntimeError(f"Generator: minipool runs on the CPU only, so device {device!r} "
                               "is not available; use Generator() or Generator('cpu')")
        self.device = "cpu"
        self._rng = np.random.default_rng(_TORCH_DEFAULT_SEED)
        self._initial_seed = _TORCH_DEFAULT_SEED

    def manual_seed(self, seed: Union[int, Sequence[int]]) -> "Generator":
        """Reseed in place (layers holding this generator follow) and return self."""
        seed = _check_seed(seed, "Generator.manual_seed")
        self._rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        self._initial_seed = seed
        return self

    def seed(self) -> int:
        """Reseed from the operating system's entropy and return the new seed (an int)."""
        new_seed = secrets.randbits(63)
        self.manual_seed(new_seed)
        return new_seed

    def initial_seed(self) -> Union[int, List[int]]:
        """The seed of the last ``manual_seed``/``seed`` (PyTorch's default seed before that)."""
        return self._initial_seed

    def get_state(self) -> "Tensor":
        """The generator's state as a uint8 Tensor, for :meth:`set_state` (as PyTorch's
        ByteTensor; its bytes are minipool's own encoding, not PyTorch's)."""
        return _state_of(self._rng)

    def set_state(self, new_state: "Tensor") -> "Generator":
        """Restore a state from :meth:`get_state`; returns self."""
        _restore(self._rng, new_state, "Generator.set_state", "mp.Generator.get_state()")
        return self

    def __repr__(self):
        return f"<minipool.Generator initial_seed={self._initial_seed}>"


def _state_of(rng):
    from minipool.tensor import Tensor
    raw = json.dumps(rng.bit_generator.state, sort_keys=True).encode()
    return Tensor(np.frombuffer(raw, np.uint8).copy())


def _restore(rng, new_state, where, source):
    data = np.asarray(getattr(new_state, "data", new_state))
    try:
        if data.dtype != np.uint8 or data.ndim != 1:
            raise ValueError
        state = json.loads(data.tobytes().decode())
        if state.get("bit_generator") != type(rng.bit_generator).__name__:
            raise ValueError
        rng.bit_generator.state = state
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(f"{where}: new_state must be a uint8 Tensor from {source}") from None


def get_rng_state() -> "Tensor":
    """The shared default generator's state as a uint8 Tensor, as ``torch.get_rng_state``:
    save it in a checkpoint and :func:`set_rng_state` resumes dropout, init and shuffling
    draws where they were (the bytes are minipool's own encoding, not PyTorch's).

    >>> import minipool as mp
    >>> _ = mp.manual_seed(0); state = mp.get_rng_state(); a = mp.rand(2)
    >>> mp.set_rng_state(state); bool((mp.rand(2) == a).all())
    True
    """
    return _state_of(_default)


def set_rng_state(new_state: "Tensor") -> None:
    """Restore the shared default generator from :func:`get_rng_state` (``torch.set_rng_state``).

    >>> import minipool as mp
    >>> state = mp.get_rng_state(); a = mp.randn(2); mp.set_rng_state(state)
    >>> bool((mp.randn(2) == a).all())
    True
    """
    _restore(_default, new_state, "set_rng_state", "mp.get_rng_state()")


def resolve(generator, where):
    """A ``np.random.Generator`` from None (the shared default), an int seed or a Generator.

    >>> import numpy as np
    >>> g = np.random.default_rng(1)
    >>> resolve(g, "x") is g, resolve(None, "x") is default_generator()
    (True, True)
    >>> bool(resolve(5, "x").random() == resolve(5, "x").random())
    True
    >>> resolve(-1, "dropout")
    Traceback (most recent call last):
        ...
    ValueError: dropout: generator seed must be >= 0, got -1
    """
    if generator is None:
        return _default
    if isinstance(generator, Generator):
        return generator._rng
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        if generator < 0:
            raise ValueError(f"{where}: generator seed must be >= 0, got {generator}")
        return np.random.default_rng(int(generator))
    raise TypeError(f"{where}: generator must be None, an int seed, an mp.Generator or a "
                    f"numpy.random.Generator, got {type(generator).__name__}")


def kept(generator, where):
    """What a layer or a transform keeps from its own ``generator=``: None stays None (the
    shared default, looked up at each call, so ``manual_seed`` and copies of the layer follow
    it); an int seed or a Generator is resolved once, here, so the layer draws one
    reproducible sequence instead of the same numbers at every call.

    >>> kept(None, "Dropout") is None, kept(3, "Dropout").random() == resolve(3, "x").random()
    (True, True)
    """
    return None if generator is None else resolve(generator, where)


def fresh_seed(generator=None, where="fresh_seed"):
    """A 63-bit int seed drawn from ``generator`` (resolved as above); used to give an object
    that needs a fixed seed of its own (a DataLoader's epoch) one that follows ``manual_seed``."""
    return int(resolve(generator, where).integers(0, 2 ** 63 - 1))
