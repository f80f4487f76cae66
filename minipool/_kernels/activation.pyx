"""ReLU forward and backward in one pass each, erf for exact GELU, and the in-place add of
gradient accumulation, over flat C-contiguous arrays.

NumPy needs four passes for a ReLU that keeps what its backward needs
(maximum, compare, cast, subtract) and runs them on one thread; here the
forward is one pass and the backward reads the saved output instead of a mask.
The rules are PyTorch's (``clamp_min(x, 0)`` and ``threshold_backward``):

* forward: ``0 if x < 0 else x`` -- NaN and -0.0 pass unchanged;
* backward: ``+0 if y <= 0 else g`` -- the gradient's bits pass unchanged
  (NaN, inf, -0.0 included) wherever the output is positive or NaN.

Threads take whole blocks of ``BLOCK`` elements, so every element sees the
same operation whatever the thread count.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport erf as c_erf

cdef enum:
    BLOCK = 8192


cdef inline void _relu_block(const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = 0 if x[i] < 0 else x[i]


cdef inline void _relu_grad_block(const floating* y, const floating* g, floating* out,
                                  Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating grad
    for i in range(n):
        grad = g[i]  # loaded unconditionally, so the compiler makes a vector select, not a branch
        out[i] = 0 if y[i] <= 0 else grad


cdef inline void _erf_block(const floating* x, floating* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = <floating>c_erf(<double>x[i])  # in double, then rounded: as math.erf per element


cdef inline Py_ssize_t _block_count(Py_ssize_t n) noexcept nogil:
    return (n + BLOCK - 1) // BLOCK


def blocks(Py_ssize_t n):
    """How many blocks (units of parallel work) ``n`` elements make."""
    return _block_count(n)


cdef enum UnaryOp:
    RELU
    ERF


cdef inline void _unary_block(UnaryOp op, const floating* x, floating* y,
                              Py_ssize_t n) noexcept nogil:
    # one switch per block: each case is its own vectorisable loop
    if op == RELU:
        _relu_block(x, y, n)
    else:
        _erf_block(x, y, n)


cdef void _unary_map(UnaryOp op, const floating[::1] x, floating[::1] y, int threads) noexcept:
    """``y = op(x)`` element by element (the callers check the lengths), whole blocks per thread."""
    cdef Py_ssize_t n = x.shape[0], b, start
    for b in prange(_block_count(n), nogil=True, num_threads=threads, schedule="static"):
        start = b * BLOCK
        _unary_block(op, &x[start], &y[start], min(BLOCK, n - start))


def relu_forward(const floating[::1] x, floating[::1] y, int threads):
    """``y = relu(x)`` (same length, flat)."""
    if y.shape[0] != x.shape[0]:
        raise ValueError("relu_forward: x and y differ in length")
    _unary_map(RELU, x, y, threads)


def relu_backward(const floating[::1] y, const floating[::1] grad, floating[::1] out, int threads):
    """``out = grad where y > 0 (or NaN), else +0`` (same length, flat)."""
    cdef Py_ssize_t n = y.shape[0], b, start
    if grad.shape[0] != n or out.shape[0] != n:
        raise ValueError("relu_backward: y, grad and out differ in length")
    for b in prange(_block_count(n), nogil=True, num_threads=threads, schedule="static"):
        start = b * BLOCK
        _relu_grad_block(&y[start], &grad[start], &out[start], min(BLOCK, n - start))


def erf(const floating[::1] x, floating[::1] out, int threads):
    """``out = erf(x)`` (libm's double-precision erf, rounded to the dtype), for exact GELU."""
    if out.shape[0] != x.shape[0]:
        raise ValueError("erf: x and out differ in length")
    _unary_map(ERF, x, out, threads)


cdef inline void _add_block(floating* out, const floating* g, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = out[i] + g[i]


def add_into(floating[::1] out, const floating[::1] g, int threads):
    """``out += g`` (same length, flat, same dtype): one IEEE addition per element, as
    NumPy's ``np.add(out, g, out=out)``, on ``threads`` threads."""
    cdef Py_ssize_t n = out.shape[0], b, start
    if g.shape[0] != n:
        raise ValueError("add_into: out and g differ in length")
    for b in prange(_block_count(n), nogil=True, num_threads=threads, schedule="static"):
        start = b * BLOCK
        _add_block(&out[start], &g[start], min(BLOCK, n - start))
