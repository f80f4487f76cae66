"""Fixtures of the convolution tests."""
import pytest

from minipool._kernels import conv2d as kernels


@pytest.fixture
def loop_gemm():
    """conv2d with the loop GEMM stand-in (as on a NumPy without OpenBLAS)."""
    from minipool.ops import conv as conv_module
    kernels.use_blas(0, 0, False)
    try:
        assert "loop GEMM" in conv_module.gemm_backend()
        yield
    finally:
        if conv_module._blas is not None:
            kernels.use_blas(*conv_module._blas)
