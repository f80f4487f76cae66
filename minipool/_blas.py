"""NumPy's bundled OpenBLAS, reached through ctypes (best effort; Linux).

conv2d's kernel calls OpenBLAS's ``cblas_sgemm``/``cblas_dgemm`` itself, from
its own threads, one image per call (``gemm_addresses``); while it does,
OpenBLAS must run on one thread (``single_threaded``): each of our threads
calling a multi-threaded OpenBLAS would oversubscribe the cores (LeNet's conv2,
forward + backward: 2 ms -> 24 ms measured).
"""
import contextlib
import ctypes

__all__ = ["blas_num_threads", "set_blas_num_threads", "single_threaded", "gemm_addresses"]

_SUFFIXES = ("scipy_openblas_{}64_", "scipy_openblas_{}", "openblas_{}64_", "openblas_{}")
_found = {}


def _openblas_function(name, patterns=_SUFFIXES):
    """OpenBLAS's ``name`` (e.g. ``get_num_threads``) as a ctypes function, or None."""
    if name in _found:
        return _found[name]
    function = None
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line})
    except OSError:
        libs = []
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for pattern in patterns:
            function = getattr(handle, pattern.format(name), None)
            if function is not None:
                break
        if function is not None:
            break
    if function is not None or libs:  # no OpenBLAS mapped yet: ask again next time
        _found[name] = function
    return function


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


@contextlib.contextmanager
def single_threaded(active=True):
    """Run the block with OpenBLAS on one thread (when ``active``), then restore it.
    Costs about a microsecond; a no-op when OpenBLAS already uses one thread."""
    before = blas_num_threads() if active else None
    if before is None or before == 1:
        yield
        return
    set_blas_num_threads(1)
    try:
        yield
    finally:
        set_blas_num_threads(before)


_CBLAS_NAMES = ("scipy_cblas_{}64_", "cblas_{}64_", "scipy_cblas_{}", "cblas_{}")


def gemm_addresses():
    """(address of cblas_sgemm, of cblas_dgemm, takes 64-bit integers) of NumPy's
    OpenBLAS, or None when it cannot be found (then conv2d uses its loop GEMM).

    >>> found = gemm_addresses()
    >>> found is None or (found[0] > 0 and found[1] > 0)
    True
    """
    import numpy as np

    np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure NumPy's BLAS is loaded
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
