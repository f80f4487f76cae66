"""NumPy's bundled OpenBLAS, reached through ctypes (best effort; Linux).

conv2d runs GEMMs on two threads of its own only while OpenBLAS is on one
thread: two lanes each calling a multi-threaded OpenBLAS oversubscribe the
cores (LeNet's conv2, forward + backward: 2 ms -> 24 ms measured).
"""
import ctypes

__all__ = ["blas_num_threads", "set_blas_num_threads"]

_SUFFIXES = ("scipy_openblas_{}64_", "scipy_openblas_{}", "openblas_{}64_", "openblas_{}")
_found = {}


def _openblas_function(name):
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
        for pattern in _SUFFIXES:
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
