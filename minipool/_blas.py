"""NumPy's bundled OpenBLAS, reached through ctypes (best effort; Linux).

conv2d's kernel calls OpenBLAS's ``cblas_sgemm``/``cblas_dgemm`` itself, from
its own threads, one image per call (``gemm_addresses``); while it does,
OpenBLAS must run on one thread (``single_threaded``): each of our threads
calling a multi-threaded OpenBLAS would oversubscribe the cores (LeNet's conv2,
forward + backward: 2 ms -> 24 ms measured).
"""
import ctypes
import os
import threading

__all__ = ["blas_num_threads", "set_blas_num_threads", "single_threaded", "gemm_addresses", "gemm_backend"]

_SUFFIXES = ("scipy_openblas_{}64_", "scipy_openblas_{}", "openblas_{}64_", "openblas_{}")
_found = {}
_library = []  # [handle or None] once looked up


def _numpy_openblas():
    """A ctypes handle on the OpenBLAS NumPy loaded (one library for every symbol), or None.

    Among the OpenBLAS builds mapped into the process (SciPy may bring another),
    the one inside NumPy's installation comes first."""
    if _library:
        return _library[0]
    import numpy

    numpy_home = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
    except OSError:
        libs = set()
    ours = os.path.join(numpy_home, "numpy")  # numpy.libs/ (wheels) or numpy/.libs/
    for lib in sorted(libs, key=lambda path: (not path.startswith(ours), path)):
        try:
            _library.append(ctypes.CDLL(lib))
            return _library[0]
        except OSError:
            continue
    _library.append(None)
    return None


def _openblas_function(name, patterns=_SUFFIXES):
    """OpenBLAS's ``name`` (e.g. ``get_num_threads``) as a ctypes function, or None."""
    key = (name, patterns)
    if key not in _found:
        handle = _numpy_openblas()
        function = None
        for pattern in patterns if handle is not None else ():
            function = getattr(handle, pattern.format(name), None)
            if function is not None:
                break
        _found[key] = function
    return _found[key]


def blas_num_threads():
    """OpenBLAS's current thread count, or None when it cannot be asked.

    >>> n = blas_num_threads()
    >>> n is None or n >= 1
    True
    """
    function = _openblas_function("get_num_threads")
    return None if function is None else int(function())


def set_blas_num_threads(n):
    """Set OpenBLAS's thread count; False when it cannot be reached."""
    function = _openblas_function("set_num_threads")
    if function is None:
        return False
    function(ctypes.c_int(n))
    return True


class _SingleThreaded:
    """OpenBLAS on one thread inside the block, its thread count given back after it.

    Blocks may overlap (several Python threads running conv2d): the first one in pins
    OpenBLAS, the last one out restores it.  A plain class calling OpenBLAS's own
    functions (a generator-based context manager and ctypes argument wrapping cost
    2-3 us more per product: a third of a small linear layer's call)."""

    __slots__ = ("lock", "depth", "before", "get", "set")

    def __init__(self):
        self.lock = threading.Lock()
        self.depth = 0        # blocks inside, across threads
        self.before = None    # OpenBLAS's thread count before the first one
        self.get = self.set = False  # OpenBLAS's functions, or None, looked up on first use

    def __enter__(self):
        if self.get is False:
            self.get = _openblas_function("get_num_threads")
            self.set = _openblas_function("set_num_threads")
        with self.lock:
            if self.depth == 0:
                self.before = None if self.get is None or self.set is None else self.get()
                if self.before is not None and self.before != 1:
                    self.set(1)
            self.depth += 1
        return self

    def __exit__(self, *exc):
        with self.lock:
            self.depth -= 1
            if self.depth == 0 and self.before is not None and self.before != 1:
                self.set(self.before)
        return False


_single_threaded = _SingleThreaded()


def single_threaded():
    """``with single_threaded():`` runs the block with OpenBLAS on one thread, then gives it
    its thread count back (about a microsecond when OpenBLAS has one thread already)."""
    return _single_threaded


_CBLAS_NAMES = ("scipy_cblas_{}64_", "cblas_{}64_", "scipy_cblas_{}", "cblas_{}")


def gemm_addresses():
    """``(sgemm_address, dgemm_address, ilp64)`` for NumPy's OpenBLAS: the addresses
    of its ``cblas_sgemm`` and ``cblas_dgemm``, and whether they take 64-bit
    integers; None when they cannot be found (then conv2d uses its loop GEMM).

    >>> found = gemm_addresses()
    >>> found is None or (found[0] > 0 and found[1] > 0)
    True
    """
    sgemm = _openblas_function("sgemm", _CBLAS_NAMES)
    dgemm = _openblas_function("dgemm", _CBLAS_NAMES)
    config = _openblas_function("get_config")
    if sgemm is None or dgemm is None or config is None:
        return None
    config.restype = ctypes.c_char_p
    ilp64 = b"USE64BITINT" in (config() or b"")
    if ilp64 != sgemm.__name__.endswith("64_"):  # a 64-bit build names its symbols so
        return None
    address = ctypes.cast(sgemm, ctypes.c_void_p).value, ctypes.cast(dgemm, ctypes.c_void_p).value
    return address[0], address[1], ilp64


def gemm_backend():
    """Which GEMM the conv kernels use: NumPy's OpenBLAS, or minipool's (slow) loop stand-in.

    >>> gemm_backend().startswith(("NumPy's OpenBLAS", "minipool's loop GEMM"))
    True
    """
    from minipool._kernels import conv2d

    found = gemm_addresses()
    if conv2d.blas_in_use() and found is not None:
        return f"NumPy's OpenBLAS (cblas_sgemm/dgemm, {'64' if found[2] else '32'}-bit ints)"
    return "minipool's loop GEMM (NumPy's OpenBLAS not found: slow)"
