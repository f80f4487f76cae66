"""A direct, loop-based 2-d convolution written for the tests (no im2col, no GEMM).

Every output element is the explicit sum over its window; the gradients come
from the same loops (each product's partial derivatives are added where they
belong), so nothing here shares logic with minipool's kernels.
"""
import numpy as np


def conv2d_with_grads(x, w, b, stride, pad_top, pad_left, out_hw, dilation, groups, grad_out=None):
    """Return (out, grad_x, grad_w, grad_b) in float64.

    x: (N, C, H, W); w: (O, C // groups, kh, kw); b: (O,) or None; padding is
    given as the top/left offsets plus the output size ``out_hw`` (so asymmetric
    'same' padding is covered); ``grad_out`` defaults to zeros.
    """
    x = np.asarray(x, np.float64)  # (inf/NaN products are meant: no warnings)
    w = np.asarray(w, np.float64)
    N, C, H, W = x.shape
    O, C_per_group, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    Ho, Wo = out_hw
    O_per_group = O // groups
    out = np.zeros((N, O, Ho, Wo))
    g = np.zeros_like(out) if grad_out is None else np.asarray(grad_out, np.float64)
    grad_x = np.zeros_like(x)
    grad_w = np.zeros_like(w)
    for n in range(N):
        for o in range(O):
            group = o // O_per_group
            for oh in range(Ho):
                for ow in range(Wo):
                    total = 0.0 if b is None else float(b[o])
                    for cg in range(C_per_group):
                        c = group * C_per_group + cg
                        for ki in range(kh):
                            ih = oh * sh - pad_top + ki * dh
                            for kj in range(kw):
                                iw = ow * sw - pad_left + kj * dw
                                if not (0 <= ih < H and 0 <= iw < W):
                                    # zero padding: the product is w * 0, which is NaN
                                    # for an infinite or NaN weight (as in PyTorch)
                                    total += w[o, cg, ki, kj] * 0.0
                                    grad_w[o, cg, ki, kj] += g[n, o, oh, ow] * 0.0
                                    continue
                                total += x[n, c, ih, iw] * w[o, cg, ki, kj]
                                grad_x[n, c, ih, iw] += g[n, o, oh, ow] * w[o, cg, ki, kj]
                                grad_w[o, cg, ki, kj] += g[n, o, oh, ow] * x[n, c, ih, iw]
                    out[n, o, oh, ow] = total
    grad_b = g.sum(axis=(0, 2, 3))
    return out, grad_x, grad_w, grad_b
