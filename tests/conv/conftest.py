"""Fixtures of the convolution tests."""
import pytest

from minipool._kernels import conv2d as kernels
from tests.conv.conv_checks import engine_forced_on


@pytest.fixture
def loop_gemm():
    """conv2d with the loop GEMM stand-in (as on a NumPy without OpenBLAS)."""
    from minipool.ops import conv as conv_module
    from minipool.ops._gemm import BLAS
    kernels.use_blas(0, 0, False)
    try:
        assert "loop GEMM" in conv_module.gemm_backend()
        yield
    finally:
        if BLAS is not None:
            kernels.use_blas(*BLAS)


# Each engine forced on for a test: every call it can take (the switch's mode 2).
@pytest.fixture
def direct():
    """Every forward with a finite weight on the direct kernel."""
    with engine_forced_on(kernels.use_direct):
        yield


@pytest.fixture
def tiles():
    """Every forward product on the register tiles."""
    with engine_forced_on(kernels.use_tiles):
        yield


@pytest.fixture
def wgrad_tiles():
    """Every weight-gradient product on the tiles."""
    with engine_forced_on(kernels.use_wgrad_tiles):
        yield


@pytest.fixture
def wgrad_outer():
    """Every weight gradient (with a finite output gradient) on the outer products."""
    with engine_forced_on(kernels.use_wgrad_outer):
        yield
