"""Pooling ops: every kind the field uses, forward and backward, on Cython kernels.

* ``window``: max/min/avg/sum and LP pooling in 1-3 dims;
* ``adaptive``: adaptive max/avg pooling and global pooling;
* ``stochastic``: Zeiler & Fergus stochastic pooling;
* ``unpool``: max unpooling;
* ``fractional``: fractional max pooling (Graham 2014), per-plane random windows;
* ``spp``: spatial pyramid pooling (He et al. 2014).

``_geometry`` turns arguments into window tables (one place for every kind),
``_functions`` holds the autograd Functions; the kernels are
``minipool/_kernels/pool_*.pyx`` (one file per family, shared helpers in
``pool_windows.pxd``).
"""
from minipool.ops.pooling.adaptive import (adaptive_avg_pool1d, adaptive_avg_pool2d,  # noqa: F401
                                           adaptive_avg_pool3d, adaptive_max_pool1d,
                                           adaptive_max_pool2d, adaptive_max_pool3d,
                                           global_avg_pool2d, global_max_pool2d)
from minipool.ops.pooling.stochastic import stochastic_pool2d  # noqa: F401
from minipool.ops.pooling.unpool import max_unpool1d, max_unpool2d, max_unpool3d  # noqa: F401
from minipool.ops.pooling.fractional import (fractional_max_pool2d,  # noqa: F401
                                             fractional_max_pool3d)
from minipool.ops.pooling.spp import spatial_pyramid_pool2d  # noqa: F401
from minipool.ops.pooling.window import lp_pool3d  # noqa: F401
from minipool.ops.pooling.window import (avg_pool1d, avg_pool2d, avg_pool3d, lp_pool1d,  # noqa: F401
                                         lp_pool2d, max_pool1d, max_pool2d, max_pool3d,
                                         min_pool1d, min_pool2d, min_pool3d, sum_pool1d,
                                         sum_pool2d, sum_pool3d)

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "min_pool1d", "min_pool2d", "min_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "sum_pool1d", "sum_pool2d", "sum_pool3d",
    "lp_pool1d", "lp_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "global_max_pool2d", "global_avg_pool2d", "stochastic_pool2d", "max_unpool1d",
    "max_unpool2d", "max_unpool3d",
    "fractional_max_pool2d", "fractional_max_pool3d", "lp_pool3d", "spatial_pyramid_pool2d",
]

# BlurPool / MaxBlurPool (Zhang 2019), kernels in minipool/_kernels/blur_pool.pyx
from minipool.ops.pooling.blur import blur_pool2d, max_blur_pool2d  # noqa: E402,F401

__all__ += ["blur_pool2d", "max_blur_pool2d"]
