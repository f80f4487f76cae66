# conv2d's forward for first layers (conv2d_first.h; conv2d.pyx, section "first layers"):
# one chunk per image, its planes padded into the worker's buffer, then every output
# channel straight into the NCHW output, the bias added as it is stored.  Inline
# functions only, compiled into the module that cimports them (see conv_columns.pxd).
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from minipool._kernels.conv_columns cimport Geometry, _pad_planes
from minipool._kernels.conv_direct cimport _launch

cdef extern from "conv2d_first.h" nogil:
    Py_ssize_t mp_first_packed_size(Py_ssize_t O, Py_ssize_t K)
    void mp_first_pack(const float* weight, float* packed, Py_ssize_t O, Py_ssize_t K)
    int mp_first_fits(Py_ssize_t C, Py_ssize_t kh, Py_ssize_t kw)
    void mp_first_image(const float* planes, Py_ssize_t C, Py_ssize_t plane, Py_ssize_t Ws,
                        Py_ssize_t k, const float* packed, Py_ssize_t O, const float* bias,
                        Py_ssize_t Ho, Py_ssize_t Wo, float* out)
    enum: FIRST_SLACK "MP_FIRST_SLACK"


cdef struct FirstJob:
    const float* x
    const float* packed
    const float* bias
    float* out
    float* planes             # per worker: an image's padded planes, then FIRST_SLACK
    Py_ssize_t per_worker
    const Geometry* g


cdef inline bint _first_fits(const Geometry* g) noexcept nogil:
    """Shapes conv2d_first.h is built for: 1-3 input channels, one group, a 3x3 or 5x5
    kernel at stride 1 without dilation, planes the tiles could read (g.shifted)."""
    return (g.groups == 1 and g.shifted and g.sh == 1 and g.sw == 1 and g.dh == 1
            and g.dw == 1 and g.Ho > 0 and g.Wo > 0 and mp_first_fits(g.C, g.kh, g.kw) == 1)


cdef inline void _first_chunk(void* context, Py_ssize_t n, int worker) noexcept nogil:
    """Image ``n``: its planes padded, then its whole output."""
    cdef FirstJob* job = <FirstJob*>context
    cdef const Geometry* g = job.g
    cdef float* planes = job.planes + worker * job.per_worker
    _pad_planes(job.x + n * g.C * g.H * g.W, planes, g)
    mp_first_image(planes, g.C, g.Hs * g.Ws, g.Ws, g.kh, job.packed, g.O, job.bias, g.Ho,
                   g.Wo, job.out + n * g.O * g.Ho * g.Wo)


cdef inline void _forward_on_first(const Geometry* g, const float* x, Py_ssize_t N,
                                   const float* weight, const float* bias, float* out,
                                   int num_threads, bint load_team) except *:
    """out (N, O, Ho, Wo) = the convolution on conv2d_first.h (``_first_fits`` shapes):
    one allocation for the packed weight and the workers' planes, freed here."""
    cdef FirstJob job
    cdef Py_ssize_t K = g.C * g.kh * g.kw, packed = mp_first_packed_size(g.O, K)
    cdef Py_ssize_t workers = max(num_threads, 1)
    job.per_worker = (g.C * g.Hs * g.Ws + FIRST_SLACK + 15) // 16 * 16
    cdef float* memory = <float*>malloc((packed + workers * job.per_worker) * sizeof(float))
    if memory == NULL:
        raise MemoryError("conv2d first-layer kernel: no memory for the packed weight")
    job.x, job.bias, job.out, job.g = x, bias, out, g
    job.packed, job.planes = memory, memory + packed
    try:
        with nogil:
            mp_first_pack(weight, memory, g.O, K)
            memset(job.planes, 0, workers * job.per_worker * sizeof(float))  # the slack read
            _launch(_first_chunk, &job, N, num_threads, load_team)
    finally:
        free(memory)
