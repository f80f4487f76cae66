"""Reusable scratch arrays for conv2d's temporaries (its per-thread column blocks and
the weight-gradient slots).

Why: a fresh ``np.empty`` above glibc's mmap threshold (128 KiB by default;
conv2's backward workspace is ~180 KiB a thread) is served by fresh pages from
the OS, and the first touch of every page faults.  When conv2d still built a
batch-sized im2col matrix that cost more than the arithmetic (LeNet's conv2,
forward + backward: 5.4 ms of CPU with fresh buffers, 2.9 ms with recycled ones).

A buffer is handed out again only when nothing outside the pool refers to it
any more -- no array, view or saved graph node -- which CPython's reference
count tells exactly.  So a matrix saved for backward stays untouched until its
graph is freed (``retain_graph=True`` simply keeps it out of circulation), and
callers never have to give buffers back.  Without reference counts (not
CPython) the pool just allocates.
"""
import sys
import threading

import numpy as np

__all__ = ["Workspace", "scratch"]


def _refcount_of_list_item(items, index):
    return sys.getrefcount(items[index])


def _calibrate():
    """References a pooled array has when nobody else holds it (list slot + call arguments)."""
    if not hasattr(sys, "getrefcount"):
        return None
    items = [np.empty(1)]
    return _refcount_of_list_item(items, 0)


_FREE_REFCOUNT = _calibrate()


class Workspace:
    """A bounded pool of arrays keyed by (shape, dtype).

    >>> ws = Workspace(max_bytes=1 << 20)
    >>> a = ws.empty((4, 8), np.float32)
    >>> b = ws.empty((4, 8), np.float32)   # ``a`` is still held: a different buffer
    >>> a is b
    False
    >>> first = id(a)
    >>> del a
    >>> id(ws.empty((4, 8), np.float32)) == first  # free again, so it comes back
    True
    """

    def __init__(self, max_bytes=256 << 20):
        self.max_bytes = max_bytes
        self._buffers = []
        self._lock = threading.Lock()

    def _free_index(self, shape, dtype):
        # Index the list instead of binding a loop variable: a local name would
        # itself be one more reference to the array.
        buffers = self._buffers
        for i in range(len(buffers)):
            if buffers[i].shape == shape and buffers[i].dtype == dtype and \
                    _refcount_of_list_item(buffers, i) <= _FREE_REFCOUNT:
                return i
        return None

    def empty(self, shape, dtype):
        """An uninitialised C-contiguous array of ``shape`` and ``dtype`` (maybe recycled)."""
        shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        if _FREE_REFCOUNT is None or self.max_bytes <= 0:
            return np.empty(shape, dtype)
        with self._lock:
            i = self._free_index(shape, dtype)
            if i is not None:
                buf = self._buffers.pop(i)
                self._buffers.append(buf)  # most recently used last
                return buf
            buf = np.empty(shape, dtype)
            if buf.nbytes > self.max_bytes:
                return buf  # too big to keep
            self._buffers.append(buf)
            self._evict()
            return buf

    def _evict(self):
        """Drop free buffers, least recently used first, until the pool fits ``max_bytes``."""
        total = sum(b.nbytes for b in self._buffers)
        i = 0
        while total > self.max_bytes and i < len(self._buffers) - 1:
            if _refcount_of_list_item(self._buffers, i) <= _FREE_REFCOUNT:
                total -= self._buffers.pop(i).nbytes
            else:
                i += 1

    def clear(self):
        """Forget every pooled buffer (arrays still in use stay valid)."""
        with self._lock:
            self._buffers.clear()

    @property
    def nbytes(self):
        return sum(b.nbytes for b in self._buffers)


scratch = Workspace()
