"""``mp.save`` / ``mp.load``: tensors, state_dicts and optimizer states as safetensors files.

The format (https://github.com/huggingface/safetensors) is, byte for byte:

* 8 bytes: the header length N, an unsigned little-endian 64-bit integer;
* N bytes: a UTF-8 JSON object mapping each tensor name to
  ``{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}`` plus an
  optional ``"__metadata__"`` object of str -> str (padded with spaces so the
  data starts at a multiple of 8);
* the tensors' raw little-endian bytes, back to back, offsets relative to the
  end of the header.

Reading never runs code (no pickle anywhere).  A flat state_dict is stored
under its own keys, so the file is what ``safetensors.torch.save_file`` would
write for the same PyTorch model, and the other way round.  Anything else
(an optimizer state: nested dicts with int keys, floats, tuples, lists,
strings, None and arrays) is flattened: every array becomes a tensor named by
its path (``state.0.exp_avg``) and the structure goes, as JSON, into
``__metadata__["minipool"]``, so the file stays a valid safetensors file.
``__metadata__["minipool_crc32"]`` is the CRC-32 of that structure and the
data, checked on loading (safetensors itself has no checksum).

Files are written to a temporary name and renamed into place (a reader sees
the old file or the new one); a damaged, truncated or foreign file raises
:class:`SerializationError` naming it, and nothing is returned half-read.

>>> import os, tempfile, numpy as np, minipool as mp
>>> path = os.path.join(tempfile.mkdtemp(), "w.safetensors")
>>> mp.save({"weight": mp.ones(2, 3), "step": 7, "betas": (0.9, 0.999)}, path)
>>> back = mp.load(path)
>>> back["weight"].shape, back["step"], back["betas"]
((2, 3), 7, (0.9, 0.999))
"""
import json
import math
import os
import struct
import zlib
from collections import OrderedDict
from typing import IO, Any, Optional, Union

import numpy as np

from minipool.tensor import Tensor

__all__ = ["save", "load", "SerializationError", "save_file", "load_file", "DTYPES"]

# safetensors dtype name -> little-endian NumPy dtype (BF16 and the F8 types have no NumPy dtype)
DTYPES = {"BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
          "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
          "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
          "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8")}
_NAMES = {(dt.kind, dt.itemsize): name for name, dt in DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit too
_FORMAT_VERSION = 2  # 2 adds the CRC-32 (files of version 1 still load)
_CRC_KEY = "minipool_crc32"


class SerializationError(ValueError):
    """The file is not a readable safetensors / minipool file (the message names it)."""


# --------------------------------------------------------------------------- writing
def _dtype_name(array, name):
    key = (array.dtype.kind, array.dtype.itemsize)
    if array.dtype.kind not in "biuf" or key not in _NAMES:
        raise TypeError(f"save: tensor {name!r} has dtype {array.dtype}; safetensors files hold "
                        f"{', '.join(DTYPES)}")
    return _NAMES[key]


class _Flattener:
    """Turns a nested object into a JSON-able structure plus name -> array."""

    def __init__(self):
        self.arrays = OrderedDict()

    def _name(self, path):
        base = ".".join(str(p) for p in path) or "tensor"
        name, n = base, 1
        while name in self.arrays:  # e.g. keys "a.b" and ("a", "b") both give "a.b"
            name, n = f"{base}#{n}", n + 1
        return name

    def encode(self, obj, path):
        if isinstance(obj, Tensor):
            name = self._name(path)
            self.arrays[name] = obj._data
            from minipool.nn.module import Parameter
            node = {"__tensor__": name}
            if isinstance(obj, Parameter):
                node["parameter"] = True
            if obj.requires_grad:
                node["requires_grad"] = True
            return node
        if isinstance(obj, np.ndarray):
            name = self._name(path)
            self.arrays[name] = obj
            return {"__ndarray__": name}
        if isinstance(obj, np.generic):
            obj = obj.item()
        if obj is None or isinstance(obj, (bool, int, str)):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"__float__": repr(obj)}
        if isinstance(obj, dict):
            return {"__dict__": [[self.encode(k, path + ["key"]), self.encode(v, path + [k])]
                                 for k, v in obj.items()],
                    "ordered": isinstance(obj, OrderedDict)}
        if isinstance(obj, (list, tuple)):
            kind = "__tuple__" if isinstance(obj, tuple) else "__list__"
            return {kind: [self.encode(v, path + [i]) for i, v in enumerate(obj)]}
        where = ".".join(str(p) for p in path) or "the object"
        way = ""
        if callable(getattr(obj, "state_dict", None)):  # torch.save(model) / (optimizer) habit
            way = (f"; save its {type(obj).__name__}.state_dict() instead and load it into a new "
                   "one with load_state_dict (minipool files hold data, not Python objects)")
        raise TypeError(f"save: cannot store {where} of type {type(obj).__name__} (only Tensors, "
                        f"arrays, numbers, strings, None, lists, tuples and dicts){way}")


def _encode_file(arrays, metadata, checksum=False):
    """The header bytes (length prefix included) and the arrays to write after them.
    ``checksum``: add ``metadata[_CRC_KEY]``, the CRC-32 of ``metadata["minipool"]`` and the data."""
    header, blobs, offset = OrderedDict(), [], 0
    for name, value in arrays.items():
        array = value._data if isinstance(value, Tensor) else np.asarray(value)
        dtype = _dtype_name(array, name)
        data = np.asarray(array, dtype=DTYPES[dtype], order="C")  # little-endian; keeps 0-d
        header[name] = {"dtype": dtype, "shape": list(data.shape),
                        "data_offsets": [offset, offset + data.nbytes]}
        blobs.append(data)
        offset += data.nbytes
    if checksum:
        metadata = dict(metadata, **{_CRC_KEY: f"{_crc32(metadata['minipool'], blobs):08x}"})
    if metadata:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # the data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text, blobs


def _crc32(text, blobs):
    """CRC-32 of the structure text and the data: safetensors has no checksum of its own, and a
    flipped bit in a weight or in the structure must not load as a different checkpoint."""
    crc = zlib.crc32(text.encode("utf-8"))
    for data in blobs:
        if data.nbytes:
            crc = zlib.crc32(memoryview(data).cast("B"), crc)
    return crc


def _write(f, head, blobs):
    f.write(head)
    for data in blobs:
        if data.nbytes:
            f.write(memoryview(data).cast("B"))


def save(obj: Any, f: Union[str, "os.PathLike[str]", IO[bytes]]) -> None:
    """Write ``obj`` to ``f`` (a path, or a binary file object) as a safetensors file.

    ``obj`` is a Tensor, an array, or nested dicts / lists / tuples of them with
    ints, floats, bools, strings and None (a state_dict, an optimizer's
    ``state_dict()``, a checkpoint).  Dtypes: float16/32/64, int8-64,
    uint8-64 and bool.  A path is written atomically (temporary file, then
    rename).  Shared storage is not kept: a tensor stored twice is written twice.

    >>> import io, minipool as mp
    >>> buffer = io.BytesIO(); mp.save({"w": mp.ones(2)}, buffer); _ = buffer.seek(0)
    >>> mp.load(buffer)["w"].tolist()
    [1.0, 1.0]
    """
    flat = _Flattener()
    structure = flat.encode(obj, [])  # a state_dict's tensors keep its keys as their names
    meta = {"format": "pt",
            "minipool": json.dumps({"version": _FORMAT_VERSION, "structure": structure},
                                   separators=(",", ":"))}
    head, blobs = _encode_file(flat.arrays, meta, checksum=True)  # every check before any byte is written
    if hasattr(f, "write"):
        _write(f, head, blobs)
        return
    from minipool._atomic import atomic_write_bytes
    atomic_write_bytes(f, lambda fh: _write(fh, head, blobs))


# --------------------------------------------------------------------------- reading
def _fail(where, why):
    raise SerializationError(f"{where} is not a valid safetensors file: {why}")


def _no_duplicates(pairs):
    out = OrderedDict()
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r} in the header")
        out[k] = v
    return out


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _parse(raw, where):
    """name -> array (in header order) and the metadata dict; every check before any array."""
    if len(raw) < 8:
        _fail(where, f"{len(raw)} bytes, shorter than the 8-byte header length (empty or truncated)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > _MAX_HEADER:
        _fail(where, f"header length {n} is over the {_MAX_HEADER}-byte limit (not safetensors?)")
    if 8 + n > len(raw):
        _fail(where, f"header length {n} runs past the end of the {len(raw)}-byte file (truncated?)")
    try:
        text = raw[8:8 + n].decode("utf-8")
        if not text.startswith("{"):
            raise ValueError("the header does not start with '{'")
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        _fail(where, f"unreadable JSON header ({e})")
    if not isinstance(header, dict):
        _fail(where, "the header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if meta is not None and not (isinstance(meta, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items())):
        _fail(where, "__metadata__ must map strings to strings")
    buffer = memoryview(raw)[8 + n:]
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            _fail(where, f"tensor {name!r}: expected dtype, shape and data_offsets, got "
                         f"{dict(info) if isinstance(info, dict) else info!r}")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            _fail(where, f"tensor {name!r} has dtype {dtype!r}, which minipool cannot hold "
                         f"(it reads {', '.join(DTYPES)}; e.g. save BF16 weights with .float())")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            _fail(where, f"tensor {name!r}: shape must be a list of ints >= 0, got {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))
                and 0 <= offsets[0] <= offsets[1]):
            _fail(where, f"tensor {name!r}: data_offsets must be [begin, end] with "
                         f"0 <= begin <= end, got {offsets!r}")
        size = math.prod(shape) * DTYPES[dtype].itemsize
        if offsets[1] - offsets[0] != size:
            _fail(where, f"tensor {name!r}: {dtype} {shape} needs {size} bytes, data_offsets "
                         f"{offsets} give {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            _fail(where, f"tensor {name!r} starts at byte {begin} of the data, expected {end} "
                         "(overlapping tensors or a gap)")
        end = stop
    if end != len(buffer):
        _fail(where, f"the tensors cover {end} bytes but the data section holds {len(buffer)} "
                     f"({'truncated' if end > len(buffer) else 'trailing bytes'})")
    arrays = OrderedDict()
    for name, info in header.items():
        begin, stop = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        chunk = buffer[begin:stop]
        if info["dtype"] == "BOOL":
            values = np.frombuffer(chunk, np.uint8) != 0  # any nonzero byte is True
        else:
            values = np.frombuffer(chunk, dtype).astype(dtype.newbyteorder("="))  # owned, writable
        arrays[name] = values.reshape(info["shape"])
    return arrays, meta or {}


class _Rebuilder:
    def __init__(self, arrays, where):
        self.arrays, self.where, self.used = arrays, where, set()

    def _array(self, name):
        if not isinstance(name, str) or name not in self.arrays:
            raise SerializationError(f"{self.where} is damaged: its structure refers to a tensor "
                                     f"{name!r} that the file does not hold")
        self.used.add(name)
        return self.arrays[name]

    def decode(self, node):
        if isinstance(node, list) or (isinstance(node, float) and not math.isfinite(node)):
            raise ValueError(f"unexpected {node!r}")
        if not isinstance(node, dict):
            return node
        if "__tensor__" in node:
            data = self._array(node["__tensor__"])
            if node.get("parameter"):
                from minipool.nn.module import Parameter
                return Parameter(data, requires_grad=bool(node.get("requires_grad")))
            return Tensor(data, requires_grad=bool(node.get("requires_grad")))
        if "__ndarray__" in node:
            return self._array(node["__ndarray__"])
        if "__float__" in node:
            if node["__float__"] not in ("nan", "inf", "-inf"):
                raise ValueError(f"bad float {node['__float__']!r}")
            return float(node["__float__"])
        if "__list__" in node:
            return [self.decode(v) for v in node["__list__"]]
        if "__tuple__" in node:
            return tuple(self.decode(v) for v in node["__tuple__"])
        if "__dict__" in node:
            out = OrderedDict() if node.get("ordered") else {}
            for k, v in node["__dict__"]:
                out[self.decode(k)] = self.decode(v)
            return out
        raise ValueError(f"unknown node {sorted(node)}")


def _from_bytes(raw, where):
    arrays, meta = _parse(raw, where)
    if "minipool" not in meta:
        # a file from PyTorch (safetensors.torch.save_file) or elsewhere: name -> Tensor
        return OrderedDict((k, Tensor(v)) for k, v in arrays.items())
    try:
        payload = json.loads(meta["minipool"])
        version = payload["version"]
        structure = payload["structure"]
    except (ValueError, KeyError, TypeError):
        raise SerializationError(f"{where} is damaged: its minipool metadata is not valid JSON "
                                 "with a version and a structure") from None
    if not _is_int(version) or version > _FORMAT_VERSION:
        raise SerializationError(f"{where} was written by a newer minipool (format {version!r}, "
                                 f"this one reads {_FORMAT_VERSION})")
    if version < 1:
        raise SerializationError(f"{where} is damaged: minipool format {version!r}")
    if version >= 2:
        (n,) = struct.unpack("<Q", raw[:8])
        crc = zlib.crc32(memoryview(raw)[8 + n:], zlib.crc32(meta["minipool"].encode("utf-8")))
        if meta.get(_CRC_KEY) != f"{crc:08x}":
            raise SerializationError(f"{where} is damaged: its CRC-32 does not match its content "
                                     "(a changed byte or a truncated copy)")
    rebuild = _Rebuilder(arrays, where)
    try:
        obj = rebuild.decode(structure)
    except SerializationError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise SerializationError(f"{where} is damaged: bad minipool structure ({e})") from None
    if rebuild.used != set(arrays):
        extra = sorted(set(arrays) - rebuild.used)
        raise SerializationError(f"{where} is damaged: tensors {extra} are not in its minipool "
                                 "structure")
    return obj


def _cpu_location(value, where):
    """True when ``value`` names the CPU (a str, mp.device or torch.device); a clear error for
    another device."""
    name = str(value)
    if name.split(":")[0] == "cpu":
        return True
    raise RuntimeError(f"{where}: minipool loads everything onto the CPU (it has no other "
                       f"device), so {name!r} is not available; use map_location='cpu' or leave "
                       "it out")


def _map_tensors(obj, fn):
    """``obj`` with every Tensor inside its dicts, lists and tuples replaced by ``fn(tensor)``."""
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return type(obj)((k, _map_tensors(v, fn)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def load(f: Union[str, "os.PathLike[str]", IO[bytes]], map_location: Any = None, *,
         weights_only: Optional[bool] = None, mmap: Optional[bool] = None) -> Any:
    """Read what :func:`save` wrote, or any safetensors file, from ``f`` (a path or a binary file).

    A file written by minipool comes back as it was saved (Tensors as
    Tensors, arrays as arrays, int keys, tuples, ...); any other safetensors
    file (e.g. from ``safetensors.torch.save_file``) as an ordered
    name -> Tensor dict, ready for ``Module.load_state_dict``.  Nothing is
    executed while reading, and a bad file raises :class:`SerializationError`.

    ``torch.load``'s options, for scripts that pass them: everything loads onto
    the CPU, so ``map_location`` may be None, ``"cpu"``, a CPU device, a dict
    whose targets are the CPU (``{"cuda:0": "cpu"}``) or a function called as
    ``fn(tensor, "cpu")`` for each Tensor (``lambda storage, loc: storage``);
    another device is an error.  ``weights_only`` (True, False or None) changes
    nothing: minipool's files hold only data (no code), so every load is weights-only.
    ``mmap`` (None or False) is accepted; True is refused (files are read whole).

    >>> import io, minipool as mp
    >>> buffer = io.BytesIO(); mp.save([mp.zeros(1), 3], buffer); _ = buffer.seek(0)
    >>> mp.load(buffer, map_location="cpu")[1]
    3
    """
    if weights_only not in (None, True, False):
        raise TypeError(f"load: weights_only must be True, False or None, got {weights_only!r}")
    if mmap:
        raise ValueError("load: mmap=True is not supported (minipool reads the file whole); "
                         "leave mmap out")
    mapper = None
    if callable(map_location) and not hasattr(map_location, "type"):
        mapper = map_location
    elif isinstance(map_location, dict):
        for target in map_location.values():
            _cpu_location(target, "load")
    elif map_location is not None:
        _cpu_location(map_location, "load")
    if hasattr(f, "read"):
        obj = _from_bytes(f.read(), getattr(f, "name", "the file object"))
    else:
        path = os.fspath(f)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"load: no such file: {path}")
        with open(path, "rb") as fh:
            raw = fh.read()
        obj = _from_bytes(raw, path)
    if mapper is not None:
        def apply(t):
            out = mapper(t, "cpu")
            if not isinstance(out, Tensor):
                raise TypeError(f"load: map_location returned a {type(out).__name__} for a "
                                "Tensor; it must return a Tensor (e.g. lambda storage, loc: storage)")
            return out
        obj = _map_tensors(obj, apply)
    return obj


def save_file(tensors, filename, metadata=None):
    """``safetensors.numpy.save_file``'s shape: a flat dict of name -> array/Tensor, optional
    str -> str ``metadata``, and nothing minipool-specific in the file."""
    if not isinstance(tensors, dict) or not all(isinstance(k, str) for k in tensors):
        raise TypeError("save_file: tensors must be a dict of str -> array or Tensor")
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError("save_file: metadata must be a dict of str -> str")
    head, blobs = _encode_file(tensors, metadata)
    from minipool._atomic import atomic_write_bytes
    atomic_write_bytes(filename, lambda fh: _write(fh, head, blobs))


def load_file(filename):
    """Every tensor of a safetensors file as an ordered name -> NumPy array dict (the
    structure metadata, if any, is ignored)."""
    path = os.fspath(filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_file: no such file: {path}")
    with open(path, "rb") as fh:
        raw = fh.read()
    return _parse(raw, path)[0]
