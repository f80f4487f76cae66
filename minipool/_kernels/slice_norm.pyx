"""Layer, group and instance normalisation: one slice at a time, forward and backward.

The input is a C-contiguous (S, K, P) array: S slices (sample x group), each
normalised by its own mean and biased variance over its K * P values, with a
weight and bias per (group, k) broadcast over P.  Statistics and every value
are computed in double and rounded once to the array's dtype (as
``minipool.ops.batchnorm``); sums run in 4 interleaved partial sums added in
a fixed order (one chain of dependent adds would bound the speed), and the
variance is a second pass over the centred values (no cancellation).

The backward is the textbook fused gradient per slice,
``gx = invstd * (gy - mean(gy) - xhat * mean(gy * xhat))`` with ``gy = g * w``,
and writes the slice's per-k sums of ``g`` and ``g * xhat`` into its own row
of two (S, K) arrays: the weight and bias gradients are their sums over the
samples, taken by the caller in a fixed order.

Threads take whole slices (``prange`` over S), so every value sees the same
operations in the same order whatever the thread count.
"""
cimport cython
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt


cdef enum:
    LANES = 4  # independent partial sums: one chain of dependent adds would bound the speed


cdef double _sum(const floating* x, Py_ssize_t n) noexcept nogil:
    """x[0] + ... + x[n-1] in double, in LANES interleaved partial sums added in a fixed order."""
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
    cdef Py_ssize_t i = 0
    while i + LANES <= n:
        a0 = a0 + x[i]
        a1 = a1 + x[i + 1]
        a2 = a2 + x[i + 2]
        a3 = a3 + x[i + 3]
        i = i + LANES
    while i < n:
        a0 = a0 + x[i]
        i = i + 1
    return (a0 + a1) + (a2 + a3)


cdef double _centred_squares(const floating* x, Py_ssize_t n, double mean) noexcept nogil:
    """Sum of (x[i] - mean)**2 in double, as ``_sum``."""
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, d0, d1, d2, d3
    cdef Py_ssize_t i = 0
    while i + LANES <= n:
        d0 = x[i] - mean
        d1 = x[i + 1] - mean
        d2 = x[i + 2] - mean
        d3 = x[i + 3] - mean
        a0 = a0 + d0 * d0
        a1 = a1 + d1 * d1
        a2 = a2 + d2 * d2
        a3 = a3 + d3 * d3
        i = i + LANES
    while i < n:
        d0 = x[i] - mean
        a0 = a0 + d0 * d0
        i = i + 1
    return (a0 + a1) + (a2 + a3)


cdef double _dot(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    """Sum of a[i] * b[i] in double, as ``_sum``."""
    cdef double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
    cdef Py_ssize_t i = 0
    while i + LANES <= n:
        a0 = a0 + <double>a[i] * b[i]
        a1 = a1 + <double>a[i + 1] * b[i + 1]
        a2 = a2 + <double>a[i + 2] * b[i + 2]
        a3 = a3 + <double>a[i + 3] * b[i + 3]
        i = i + LANES
    while i < n:
        a0 = a0 + <double>a[i] * b[i]
        i = i + 1
    return (a0 + a1) + (a2 + a3)


# IEEE division in both builds: a zero variance with eps = 0 gives inf / NaN as in PyTorch
# (the debug build's cdivision=False would raise ZeroDivisionError in a noexcept function)
@cython.cdivision(True)
cdef void _forward_slice(const floating* x, floating* y, floating* xhat, const floating* w,
                         const floating* b, Py_ssize_t K, Py_ssize_t P, double eps,
                         double* mean_out, double* var_out, double* invstd_out) noexcept nogil:
    cdef Py_ssize_t n = K * P, i, k, p
    cdef double mean, var, invstd, scale, shift, h
    mean = _sum(x, n) / n
    var = _centred_squares(x, n, mean) / n
    invstd = 1.0 / sqrt(var + eps)
    mean_out[0], var_out[0], invstd_out[0] = mean, var, invstd
    for k in range(K):
        scale = w[k] if w != NULL else 1.0
        shift = b[k] if b != NULL else 0.0
        if xhat == NULL:  # two loops, so neither tests per element
            for p in range(P):
                i = k * P + p
                y[i] = <floating>((x[i] - mean) * invstd * scale + shift)
        else:
            for p in range(P):
                i = k * P + p
                h = (x[i] - mean) * invstd
                xhat[i] = <floating>h
                y[i] = <floating>(h * scale + shift)


def forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, floating[:, :, ::1] xhat,
            const floating[:, ::1] weight, const floating[:, ::1] bias, Py_ssize_t groups,
            double eps, double[::1] mean, double[::1] var, double[::1] invstd,
            bint keep_xhat, bint has_weight, bint has_bias, int threads):
    """Normalise each of the S slices of ``x`` (S, K, P) into ``y``; slice s uses row
    ``s % groups`` of ``weight`` and ``bias`` (groups, K) when given.  Writes the
    normalised values into ``xhat`` when ``keep_xhat``, and each slice's mean, biased
    variance and 1/sqrt(var + eps) into ``mean``, ``var`` and ``invstd`` (S,)."""
    cdef Py_ssize_t S = x.shape[0], K = x.shape[1], P = x.shape[2], s
    if S == 0 or K * P == 0:
        return
    if y.shape[0] != S or mean.shape[0] != S or var.shape[0] != S or invstd.shape[0] != S:
        raise ValueError("slice_norm.forward: x, y and the statistics differ in slices")
    if (has_weight and weight.shape[0] * weight.shape[1] != groups * K) or \
            (has_bias and bias.shape[0] * bias.shape[1] != groups * K):
        raise ValueError("slice_norm.forward: weight and bias must be (groups, K)")
    for s in prange(S, nogil=True, num_threads=threads, schedule="static"):
        _forward_slice(&x[s, 0, 0], &y[s, 0, 0], &xhat[s, 0, 0] if keep_xhat else NULL,
                       &weight[s % groups, 0] if has_weight else NULL,
                       &bias[s % groups, 0] if has_bias else NULL,
                       K, P, eps, &mean[s], &var[s], &invstd[s])


@cython.cdivision(True)
cdef void _backward_slice(const floating* g, const floating* xhat, const floating* w,
                          floating* gx, double invstd, Py_ssize_t K, Py_ssize_t P,
                          double* sum_g, double* sum_g_xhat) noexcept nogil:
    cdef Py_ssize_t n = K * P, i, k, p
    cdef double scale, total_gy = 0.0, total_gy_xhat = 0.0, mean_gy, mean_gy_xhat
    if P == 1:  # a layer norm: one value per k, the sums over k are the long ones
        for k in range(K):
            sum_g[k] = g[k]
            sum_g_xhat[k] = <double>g[k] * xhat[k]
        if w == NULL:
            total_gy = _sum(g, K)
            total_gy_xhat = _dot(g, xhat, K)
        else:
            for k in range(K):
                total_gy = total_gy + w[k] * sum_g[k]
                total_gy_xhat = total_gy_xhat + w[k] * sum_g_xhat[k]
    else:
        for k in range(K):
            sum_g[k] = _sum(&g[k * P], P)
            sum_g_xhat[k] = _dot(&g[k * P], &xhat[k * P], P)
            scale = w[k] if w != NULL else 1.0
            total_gy = total_gy + scale * sum_g[k]
            total_gy_xhat = total_gy_xhat + scale * sum_g_xhat[k]
    if gx == NULL:
        return
    # The slice's mean and variance depend on each of its values: the two subtracted terms.
    mean_gy = total_gy / n
    mean_gy_xhat = total_gy_xhat / n
    for k in range(K):
        scale = w[k] if w != NULL else 1.0
        for p in range(P):
            i = k * P + p
            gx[i] = <floating>(invstd * (scale * g[i] - mean_gy - xhat[i] * mean_gy_xhat))


def backward(const floating[:, :, ::1] grad, const floating[:, :, ::1] xhat,
             const floating[:, ::1] weight, Py_ssize_t groups, const double[::1] invstd,
             floating[:, :, ::1] grad_x, double[:, ::1] sum_g, double[:, ::1] sum_g_xhat,
             bint has_weight, bint want_x, int threads):
    """The input gradient into ``grad_x`` (when ``want_x``) and, per slice, the sums over
    P of ``grad`` and ``grad * xhat`` into rows of ``sum_g`` and ``sum_g_xhat`` (S, K)."""
    cdef Py_ssize_t S = xhat.shape[0], K = xhat.shape[1], P = xhat.shape[2], s
    if S == 0 or K * P == 0:
        return
    if grad.shape[0] != S or invstd.shape[0] != S or sum_g.shape[0] != S or \
            sum_g_xhat.shape[0] != S or sum_g.shape[1] != K or sum_g_xhat.shape[1] != K:
        raise ValueError("slice_norm.backward: the arrays differ in slices")
    if has_weight and weight.shape[0] * weight.shape[1] != groups * K:
        raise ValueError("slice_norm.backward: weight must be (groups, K)")
    for s in prange(S, nogil=True, num_threads=threads, schedule="static"):
        _backward_slice(&grad[s, 0, 0], &xhat[s, 0, 0],
                        &weight[s % groups, 0] if has_weight else NULL,
                        &grad_x[s, 0, 0] if want_x else NULL, invstd[s], K, P,
                        &sum_g[s, 0], &sum_g_xhat[s, 0])
