"""2-d transposed convolution forward, NCHW and NHWC, float32 and float64.

A transposed convolution is conv2d's input-gradient pass run forward: its input
x (N, Cin, Hin, Win) plays conv2d's output gradient, its weight (Cin, Cout/groups,
kh, kw) is conv2d's weight (O = Cin), and its output (N, Cout, Hout, Wout) is the
gradient planes col2im(W.T @ x) fills.  Its input gradient is then conv2d's
forward of the output gradient, and its weight gradient conv2d's weight-gradient
pass with the output gradient as input and x as output gradient: conv2d's entry
points (NCHW or channels last), called by minipool/ops/conv_transpose.py.  Only the forward needs
an entry point of its own (no conv2d input exists to pass, and the bias is added
per output channel).

One entry point; the layout decides its pass once, per call:

    layout          per image
    NCHW            _backward_images (conv_nchw.pxd) with only the input gradient
                    asked for, then _add_bias
    channels_last   _cl_backward_image (conv_nhwc.pxd), then _add_bias
"""
from cython cimport floating
from cython.parallel cimport prange, threadid

from minipool._kernels.conv_columns cimport (Geometry, _add_bias, _all_finite, _bias_pointer,
                                             _check_workspace, _dims, _geometry)
from minipool._kernels.conv_nchw cimport _backward_images, _workspace_elements
from minipool._kernels.conv_nhwc cimport _cl_backward_image, _cl_workspace


def conv_transpose2d_forward(const floating[:, :, :, ::1] x, const floating[:, ::1] weight, bias,
                             floating[:, :, :, ::1] out, object geometry, Py_ssize_t block_rows,
                             floating[:, ::1] workspace, int num_threads, bint channels_last=False):
    """out (N, Cout, Hout, Wout) = col2im(W.T @ x) + bias for x (N, Cin, Hin, Win), weight
    (Cin, Cout/groups*kh*kw); ``geometry`` is conv2d's from out to x (Ho, Wo = Hin, Win).

    ``channels_last``: x is (N, Hin, Win, Cin), out (N, Hout, Wout, Cout) and the weight
    (Cin, kh*kw*Cout/groups) (see conv_nhwc.pxd).  ``block_rows`` and the
    workspace come from ``plan`` (its backward size) or ``plan_channels_last``."""
    cdef Py_ssize_t N = out.shape[0], n, t, i, o, pixels
    cdef Py_ssize_t C = out.shape[3] if channels_last else out.shape[1]
    cdef Py_ssize_t H = out.shape[1] if channels_last else out.shape[2]
    cdef Py_ssize_t W = out.shape[2] if channels_last else out.shape[3]
    cdef Geometry g = _geometry(C, H, W, weight.shape[0], geometry, block_rows)
    cdef Py_ssize_t per_thread = _cl_workspace(&g, True) if channels_last else _workspace_elements(&g, True)
    cdef tuple x_shape = (N, g.Ho, g.Wo, g.O) if channels_last else (N, g.O, g.Ho, g.Wo)
    cdef const floating* bias_ptr = NULL
    cdef floating* op
    num_threads = max(num_threads, 1)
    if _dims(x) != x_shape or weight.shape[1] != g.K_group:
        raise ValueError(f"conv_transpose2d kernel: shapes x {_dims(x)}, weight {_dims(weight)}, "
                         f"out {_dims(out)} do not match geometry {geometry}")
    bias_ptr = _bias_pointer(bias, g.C, <floating*>NULL, "conv_transpose2d")
    cdef Py_ssize_t in_image = g.O * g.Ho * g.Wo, out_image = g.C * g.H * g.W
    if N == 0 or out_image == 0:
        return
    op = &out[0, 0, 0, 0]
    if g.O == 0 or g.Ho * g.Wo == 0 or g.K_group == 0:  # no products: only the bias
        for n in range(N):
            for i in range(out_image):
                o = i % g.C if channels_last else i // (g.H * g.W)
                op[n * out_image + i] = bias_ptr[o] if bias_ptr != NULL else 0
        return
    _check_workspace(workspace, num_threads, per_thread)
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* wp = &weight[0, 0]
    cdef bint weight_finite = _all_finite(wp, weight.shape[0] * weight.shape[1])
    cdef floating* wsp = &workspace[0, 0]
    pixels = g.H * g.W
    for n in prange(N, nogil=True, schedule="static", num_threads=num_threads):
        t = threadid()
        if channels_last:
            _cl_backward_image(NULL, wp, xp + n * in_image, op + n * out_image, NULL, NULL, False,
                               wsp + t * per_thread, &g)
        else:
            _backward_images(NULL, 1, wp, weight_finite, xp + n * in_image, op + n * out_image,
                             NULL, NULL, False, wsp + t * per_thread, &g)
        if bias_ptr != NULL:
            _add_bias(op + n * out_image, bias_ptr, g.C, pixels, channels_last)

