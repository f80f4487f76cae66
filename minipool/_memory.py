"""Memory reuse across training steps, without touching the rest of the process.

minipool's ops, and backward passes, allocate their NumPy arrays through a
bounded cache of freed blocks (``minipool/_kernels/memory_cache.pyx``): the
next step gets last step's pages back instead of fresh ones that page-fault on
first write.  The cache is NumPy's allocator only while minipool code runs
(``activate``/``restore`` around it); the user's own arrays never pass through
it, and glibc's process-wide settings are left alone.

Public API (re-exported by ``minipool``): :func:`set_memory_cache`,
:func:`empty_memory_cache`, :func:`memory_cache_info`.
"""
import os

from minipool._kernels import memory_cache

__all__ = ["activate", "restore", "scope", "set_memory_cache", "empty_memory_cache", "memory_cache_info",
           "DEFAULT_LIMIT"]

DEFAULT_LIMIT = 256 << 20  # bytes; a tiny CNN's step frees a few to a few tens of MiB


def _limit_from_env():
    raw = os.environ.get("MINIPOOL_MEMORY_CACHE", "").strip()
    if not raw:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"MINIPOOL_MEMORY_CACHE={raw!r} is not a byte count (an integer >= 0)") from None
    if value < 0:
        raise ValueError(f"MINIPOOL_MEMORY_CACHE must be >= 0 bytes, got {value}")
    return value


activate = memory_cache.activate
restore = memory_cache.restore


class scope:
    """``with scope():`` -- the block's NumPy arrays come from the cache."""

    __slots__ = ("previous",)

    def __enter__(self):
        self.previous = activate()

    def __exit__(self, *exc):
        restore(self.previous)


def set_memory_cache(max_bytes: int) -> None:
    """Keep at most ``max_bytes`` of memory freed by minipool's arrays for reuse
    (default 256 MiB, or ``MINIPOOL_MEMORY_CACHE``); 0 turns the cache off.

    Blocks of 64 KiB or more that minipool's ops allocated are kept when freed
    and handed back for a request of the same size: a training step then reuses
    the previous step's pages instead of page-faulting on fresh ones.

    >>> import minipool as mp
    >>> mp.set_memory_cache(64 << 20); mp.memory_cache_info()["limit"]
    67108864
    >>> mp.set_memory_cache(256 << 20)
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise TypeError(f"set_memory_cache: max_bytes must be an int, got {type(max_bytes).__name__}")
    if max_bytes < 0:
        raise ValueError(f"set_memory_cache: max_bytes must be >= 0, got {max_bytes}")
    memory_cache.set_limit(max_bytes)


def empty_memory_cache() -> None:
    """Give every block the cache holds back to the system (arrays in use are untouched).

    >>> import minipool as mp
    >>> mp.empty_memory_cache(); mp.memory_cache_info()["held"]
    0
    """
    memory_cache.clear()


def memory_cache_info() -> dict:
    """``{"limit", "held", "blocks", "hits", "misses"}``: the cap and bytes held now, in bytes,
    the number of blocks held, and how many requests it served or passed to malloc since import.

    >>> import minipool as mp
    >>> sorted(mp.memory_cache_info())
    ['blocks', 'held', 'hits', 'limit', 'misses']
    """
    return memory_cache.info()


memory_cache.set_limit(_limit_from_env())
