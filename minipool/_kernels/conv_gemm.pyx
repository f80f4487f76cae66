"""The BLAS state of the convolution kernels: which ``cblas_?gemm`` their GEMMs call.

``use_blas`` is called once, by minipool/ops/_gemm.py, with the addresses
minipool/_blas.py found in NumPy's OpenBLAS (tests switch to the loop GEMM and
back).  The variables live here, declared in conv_gemm.pxd; every kernel module
(conv2d, conv2d_channels_last, conv_transpose2d) cimports ``_gemm`` from there and
reads these same variables, so one call switches them all.
"""
from libc.stdint cimport uintptr_t

_sgemm = NULL
_dgemm = NULL
_ilp64 = False


def use_blas(uintptr_t sgemm_address, uintptr_t dgemm_address, bint ilp64):
    """Route GEMMs to CBLAS's ``cblas_sgemm``/``cblas_dgemm`` at these addresses
    (0, 0: the loop GEMM).  ``ilp64``: the BLAS takes 64-bit integers."""
    global _sgemm, _dgemm, _ilp64
    _sgemm = <void*>sgemm_address
    _dgemm = <void*>dgemm_address
    _ilp64 = ilp64


def blas_in_use():
    return _sgemm != NULL and _dgemm != NULL
