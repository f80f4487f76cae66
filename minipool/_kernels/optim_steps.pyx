"""One parameter's SGD or Adam step in one pass, on minipool's threads.

In NumPy an SGD step with momentum is four passes and a temporary, Adam's about
ten: on an MLP's 670,000 parameters that was 300 us a step, more than a sixth of
a training step at 2 threads.  Here every element goes through the same IEEE
operations, in the same order and in the parameter's dtype, as the NumPy code in
minipool/optim (which stays, for layouts these loops do not take, and as the
tests' reference): each scalar rounded to the dtype first, as NumPy casts a
Python float, and no fused multiply-add (setup.py: -ffp-contract=off).  So the
bits are NumPy's, and the same for any thread count (threads take whole blocks).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf

cdef enum:
    BLOCK = 2048             # a thread's unit; with its temporary, stays in L1/L2


def blocks(Py_ssize_t n):
    """How many blocks (units of parallel work) ``n`` elements make."""
    return (n + BLOCK - 1) // BLOCK


cdef struct Sgd:
    double lr, momentum, damped, weight_decay   # damped: 1 - dampening
    bint maximize, has_momentum, dampening, nesterov, first


# Each block runs as a few short passes, each one loop without branches (so it
# vectorises), where one loop over all the cases would test every flag per element
# (measured: 1.8x NumPy's time at one thread).  An element still sees NumPy's operations
# in NumPy's order.
cdef inline const floating* _signed_decayed(bint maximize, floating decay, const floating* g,
                                            const floating* p, floating* work,
                                            Py_ssize_t n) noexcept nogil:
    """The gradient after maximize's sign and L2 weight decay (in ``work``), or ``g``."""
    cdef Py_ssize_t i
    if not maximize and decay == 0:
        return g
    if maximize:
        for i in range(n):
            work[i] = -g[i]
    else:
        for i in range(n):
            work[i] = g[i]
    if decay != 0:
        for i in range(n):
            work[i] = work[i] + decay * p[i]
    return work


cdef inline void _sgd_block(const Sgd* s, floating* p, const floating* g, floating* buf,
                            Py_ssize_t n) noexcept nogil:
    cdef floating lr = <floating>s.lr, momentum = <floating>s.momentum
    cdef floating damped = <floating>s.damped
    cdef floating work[BLOCK]
    cdef const floating* d = _signed_decayed(s.maximize, <floating>s.weight_decay, g, p, work, n)
    cdef Py_ssize_t i
    if not s.has_momentum:
        for i in range(n):
            p[i] = p[i] - lr * d[i]
        return
    if s.first:
        for i in range(n):
            buf[i] = d[i]
    elif s.dampening:
        for i in range(n):
            buf[i] = buf[i] * momentum + damped * d[i]
    else:
        for i in range(n):
            buf[i] = buf[i] * momentum + d[i]
    if s.nesterov:
        for i in range(n):
            p[i] = p[i] - lr * (d[i] + momentum * buf[i])
    else:
        for i in range(n):
            p[i] = p[i] - lr * buf[i]


def sgd_step(floating[::1] p, const floating[::1] g, floating[::1] buf, double lr,
             double momentum, double dampening, double weight_decay, bint nesterov,
             bint maximize, bint first, int threads):
    """minipool.optim.SGD's update of one parameter, in place: ``buf`` the momentum buffer
    (None without momentum; ``first``: this step creates it), all flat, one dtype."""
    cdef Sgd s
    cdef Py_ssize_t n = p.shape[0], b, start
    if g.shape[0] != n or (buf is not None and buf.shape[0] != n):
        raise ValueError("sgd_step: p, g and buf differ in length")
    s.lr, s.momentum, s.damped, s.weight_decay = lr, momentum, 1 - dampening, weight_decay
    s.maximize, s.has_momentum, s.dampening = maximize, momentum != 0, dampening != 0
    s.nesterov, s.first = nesterov, first
    if s.has_momentum and buf is None:
        raise ValueError("sgd_step: momentum needs a buffer")
    for b in prange((n + BLOCK - 1) // BLOCK, nogil=True, num_threads=threads, schedule="static"):
        start = b * BLOCK
        _sgd_block(&s, &p[start], &g[start], &buf[start] if s.has_momentum else NULL,
                   min(BLOCK, n - start))


cdef struct Adam:
    double shrink            # AdamW: p *= shrink (1 - lr * weight_decay) first; else 1
    double weight_decay      # Adam: g + weight_decay * p; else 0
    double beta1_weight      # exp_avg lerps toward g by this (1 - beta1)
    double beta2, beta2_weight   # exp_avg_sq = beta2 * exp_avg_sq + beta2_weight * g * g
    double neg_step_size, bias_root, eps
    bint maximize, decoupled, amsgrad


cdef inline floating _maximum(floating a, floating b) noexcept nogil:
    """np.maximum's rule: NaN if either is, else the larger (a on a tie)."""
    return a if (a >= b or a != a) else b


cdef inline floating _sqrt(floating x) noexcept nogil:
    # one function per type: a conditional expression of sqrtf and sqrt would be double
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline void _adam_block(const Adam* s, floating* p, const floating* g, floating* m,
                             floating* v, floating* v_max, Py_ssize_t n) noexcept nogil:
    cdef floating shrink = <floating>s.shrink
    cdef floating w = <floating>s.beta1_weight, one_minus_w = <floating>(1 - s.beta1_weight)
    cdef floating beta2 = <floating>s.beta2, beta2_weight = <floating>s.beta2_weight
    cdef floating neg_step = <floating>s.neg_step_size, bias_root = <floating>s.bias_root
    cdef floating eps = <floating>s.eps
    cdef floating work[BLOCK]
    cdef const floating* d = _signed_decayed(s.maximize, <floating>s.weight_decay, g, p, work, n)
    cdef const floating* second = v
    cdef Py_ssize_t i
    if s.decoupled:
        for i in range(n):
            p[i] = p[i] * shrink
    if abs(s.beta1_weight) < 0.5:  # PyTorch's two-sided lerp toward d
        for i in range(n):
            m[i] = m[i] + w * (d[i] - m[i])
    else:
        for i in range(n):
            m[i] = d[i] - (d[i] - m[i]) * one_minus_w
    for i in range(n):
        v[i] = v[i] * beta2 + (beta2_weight * d[i]) * d[i]
    if s.amsgrad:
        for i in range(n):
            v_max[i] = _maximum(v_max[i], v[i])
        second = v_max
    for i in range(n):
        p[i] = p[i] + (neg_step * m[i]) / (_sqrt(second[i]) / bias_root + eps)


def adam_step(floating[::1] p, const floating[::1] g, floating[::1] exp_avg,
              floating[::1] exp_avg_sq, floating[::1] max_exp_avg_sq, double lr, double beta1,
              double beta2, double eps, double weight_decay, bint decoupled, bint maximize,
              double step_size, double bias_root, int threads):
    """minipool.optim.Adam's (AdamW's with ``decoupled``) update of one parameter, in place,
    with the step's ``step_size`` (lr / (1 - beta1**t)) and ``bias_root``
    (sqrt(1 - beta2**t)) as the optimizer computes them; ``max_exp_avg_sq`` None unless
    amsgrad.  All flat, one dtype."""
    cdef Adam s
    cdef Py_ssize_t n = p.shape[0], b, start
    if (g.shape[0] != n or exp_avg.shape[0] != n or exp_avg_sq.shape[0] != n
            or (max_exp_avg_sq is not None and max_exp_avg_sq.shape[0] != n)):
        raise ValueError("adam_step: p, g and the state buffers differ in length")
    s.decoupled, s.maximize, s.amsgrad = decoupled and weight_decay != 0, maximize, max_exp_avg_sq is not None
    s.shrink = 1 - lr * weight_decay
    s.weight_decay = 0 if decoupled else weight_decay
    s.beta1_weight, s.beta2, s.beta2_weight = 1 - beta1, beta2, 1 - beta2
    s.neg_step_size, s.bias_root, s.eps = -step_size, bias_root, eps
    for b in prange((n + BLOCK - 1) // BLOCK, nogil=True, num_threads=threads, schedule="static"):
        start = b * BLOCK
        _adam_block(&s, &p[start], &g[start], &exp_avg[start], &exp_avg_sq[start],
                    &max_exp_avg_sq[start] if s.amsgrad else NULL, min(BLOCK, n - start))
