"""Read and write IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number
of dimensions), one big-endian uint32 per dimension, then the values in
C order, big-endian.  Files may be gzip-compressed (``.gz``).  Every problem
(missing, truncated, corrupted, wrong shape) raises :class:`IDXError`, whose
message names the file.

>>> import os, tempfile, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "tiny-idx3-ubyte.gz")
>>> write_idx(path, np.arange(12, dtype=np.uint8).reshape(3, 2, 2))
>>> read_idx(path).shape
(3, 2, 2)
"""
import gzip
import os
import zlib

import numpy as np

__all__ = ["IDXError", "read_idx", "write_idx", "IDX_DTYPES"]

# IDX type code -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_FOR_DTYPE = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}


class IDXError(ValueError):
    """An IDX file is missing, truncated, corrupted or not what was expected."""


def _read_bytes(path):
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise IDXError(f"IDX file not found: {path}") from None
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as e:
        raise IDXError(f"IDX file {path} is corrupted or truncated (gzip: {e}); "
                       "delete it and download or copy it again") from None


def read_idx(path, expect_ndim=None):
    """The array stored in the IDX file ``path`` (plain or ``.gz``), in native byte order.

    The shape comes from the header, so a file holding any number of images
    works.  ``expect_ndim`` (optional) checks the number of dimensions.
    """
    raw = _read_bytes(path)
    path = os.fspath(path)
    if len(raw) < 4:
        raise IDXError(f"IDX file {path} is truncated: {len(raw)} bytes, not even a header")
    zero1, zero2, code, ndim = raw[0], raw[1], raw[2], raw[3]
    if zero1 != 0 or zero2 != 0 or code not in IDX_DTYPES or ndim == 0:
        raise IDXError(f"{path} is not an IDX file (magic bytes {raw[:4].hex()}; expected "
                       "00 00 <type code> <ndim>)")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise IDXError(f"IDX file {path} is truncated inside its header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if expect_ndim is not None and ndim != expect_ndim:
        raise IDXError(f"IDX file {path} has {ndim} dimensions {shape}, expected {expect_ndim}")
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(raw) - header_len
    if payload < expected:
        raise IDXError(f"IDX file {path} is truncated: header says shape {shape} "
                       f"({expected} bytes of data) but only {payload} bytes follow")
    if payload > expected:
        raise IDXError(f"IDX file {path} is corrupted: {payload - expected} unexpected bytes "
                       f"after the data for shape {shape}")
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Write ``array`` (uint8, int8, int16, int32, float32 or float64) as an IDX file.

    A ``.gz`` suffix compresses it.  Used to make test fixtures and data subsets.
    """
    array = np.ascontiguousarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODE_FOR_DTYPE or array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: cannot store dtype {array.dtype} with {array.ndim} dims "
                         "in IDX (dtypes: uint8, int8, int16, int32, float32, float64)")
    header = bytes([0, 0, _CODE_FOR_DTYPE[native], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    body = array.astype(native.newbyteorder(">"), copy=False).tobytes()
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + body)
