# conv2d's forward for first layers (conv2d_first.h; conv2d.pyx, section "first layers"):
# one chunk per image, its planes padded into the worker's buffer, then every output
# channel straight into the NCHW output, the bias added as it is stored.  One input
# channel in NHWC is the same memory as NCHW, so a channels-last call runs the same
# tiles into the worker's buffer and writes that image's output pixel by pixel.  Inline
# functions only, compiled into the module that cimports them (see conv_columns.pxd).
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from minipool._kernels.conv_columns cimport Geometry, _pad_planes
from minipool._kernels._load_team cimport _launch

cdef extern from "conv2d_first.h" nogil:
    Py_ssize_t mp_first_packed_size(Py_ssize_t O, Py_ssize_t K)
    void mp_first_pack(const float* weight, float* packed, Py_ssize_t O, Py_ssize_t K)
    int mp_first_fits(Py_ssize_t C, Py_ssize_t kh, Py_ssize_t kw)
    void mp_first_image(const float* planes, Py_ssize_t C, Py_ssize_t plane, Py_ssize_t Ws,
                        Py_ssize_t k, const float* packed, Py_ssize_t O, const float* bias,
                        Py_ssize_t Ho, Py_ssize_t Wo, float* out)
    void mp_first_nhwc(const float* staged, float* out, Py_ssize_t O, Py_ssize_t L)
    enum: FIRST_SLACK "MP_FIRST_SLACK"


cdef struct FirstJob:
    const float* x
    const float* packed
    const float* bias
    float* out
    float* planes             # per worker: an image's padded planes, then FIRST_SLACK
    float* staged             # per worker (NHWC output only): the image's (O, Ho*Wo) output
    Py_ssize_t per_worker
    bint channels_last        # out is (N, Ho, Wo, O)
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
    cdef Py_ssize_t L = g.Ho * g.Wo
    cdef float* out = job.out + n * g.O * L
    cdef float* staged
    _pad_planes(job.x + n * g.C * g.H * g.W, planes, g)
    if not job.channels_last:
        mp_first_image(planes, g.C, g.Hs * g.Ws, g.Ws, g.kh, job.packed, g.O, job.bias, g.Ho,
                       g.Wo, out)
        return
    staged = job.staged + worker * g.O * L
    mp_first_image(planes, g.C, g.Hs * g.Ws, g.Ws, g.kh, job.packed, g.O, job.bias, g.Ho,
                   g.Wo, staged)
    mp_first_nhwc(staged, out, g.O, L)  # (O, L) -> (L, O) while the image's output is in cache


cdef inline void _forward_on_first(const Geometry* g, const float* x, Py_ssize_t N,
                                   const float* weight, const float* bias, float* out,
                                   int num_threads, bint load_team,
                                   bint channels_last=False) except *:
    """out (N, O, Ho, Wo) = the convolution on conv2d_first.h (``_first_fits`` shapes), or
    out (N, Ho, Wo, O) with ``channels_last`` (one input channel only: x is then NCHW too):
    one allocation for the packed weight and the workers' buffers, freed here."""
    cdef FirstJob job
    cdef Py_ssize_t K = g.C * g.kh * g.kw, packed = mp_first_packed_size(g.O, K)
    cdef Py_ssize_t workers = max(num_threads, 1)
    cdef Py_ssize_t staged = workers * g.O * g.Ho * g.Wo if channels_last else 0
    job.per_worker = (g.C * g.Hs * g.Ws + FIRST_SLACK + 15) // 16 * 16
    cdef float* memory = <float*>malloc((packed + workers * job.per_worker + staged)
                                        * sizeof(float))
    if memory == NULL:
        raise MemoryError("conv2d first-layer kernel: no memory for the packed weight")
    job.x, job.bias, job.out, job.g, job.channels_last = x, bias, out, g, channels_last
    job.packed, job.planes = memory, memory + packed
    job.staged = job.planes + workers * job.per_worker
    try:
        with nogil:
            mp_first_pack(weight, memory, g.O, K)
            memset(job.planes, 0, workers * job.per_worker * sizeof(float))  # the slack read
            _launch(_first_chunk, &job, N, num_threads, load_team)
    finally:
        free(memory)
