"""Checkpoints as plain ``.npz`` files that load without executing code.

Every array of a (nested) state -- model parameters, optimiser buffers, ... --
is stored as its own npz entry; everything else (names, numbers, the structure
itself) goes into one JSON string under ``__meta__``.  Loading uses
``np.load(allow_pickle=False)``, so a checkpoint can hold data, never code.
Files are written to a temporary name in the target folder and moved into
place with ``os.replace``: a reader sees the old file or the new one, never
half of one.

>>> import os, tempfile, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "ck.npz")
>>> save_checkpoint(path, {"epoch": 3}, {"w": np.ones(2), "steps": {0: [1, 2.5]}})
>>> meta, state = load_checkpoint(path)
>>> meta["epoch"], state["w"].tolist(), state["steps"]
(3, [1.0, 1.0], {0: [1, 2.5]})
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from minipool.tensor import Tensor

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "atomic_write_bytes",
           "atomic_write_text", "FORMAT_NAME"]

FORMAT_NAME = "minipool-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """The file is not a readable minipool checkpoint (the message names it)."""


def _encode(obj, arrays):
    """JSON-able mirror of ``obj``; arrays move into ``arrays`` and leave a reference."""
    if isinstance(obj, Tensor):
        obj = obj.data
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_encode(v, arrays) for v in obj], "tuple": isinstance(obj, tuple)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"save_checkpoint: cannot store a {type(obj).__name__} (only arrays, numbers, "
                    "strings, None, lists, tuples and dicts)")


def _decode(obj, arrays):
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        if "__dict__" in obj:
            return {_decode(k, arrays): _decode(v, arrays) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_decode(v, arrays) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj


def atomic_write_bytes(path, write):
    """Create ``path`` by calling ``write(file)`` on a temporary file, then renaming it."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def save_checkpoint(path, meta, state):
    """Write ``meta`` (JSON-able dict) and ``state`` (nested arrays/dicts/lists) to ``path``."""
    arrays = {}
    payload = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "meta": meta,
               "state": _encode(state, arrays)}
    arrays["__meta__"] = np.array(json.dumps(payload))
    atomic_write_bytes(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path):
    """Return ``(meta, state)`` saved by :func:`save_checkpoint`; never unpickles anything."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError,
            RuntimeError) as e:
        # zipfile reports some damaged headers as NotImplementedError ("zip file version")
        # or RuntimeError ("File ... is encrypted")
        raise CheckpointError(f"{path} is not a readable checkpoint ({e})") from None
    try:
        payload = json.loads(str(arrays.pop("__meta__")))
        if payload.get("format") != FORMAT_NAME:
            raise KeyError("format")
    except (KeyError, ValueError, TypeError, AttributeError):
        raise CheckpointError(f"{path} is not a minipool checkpoint (no valid __meta__ entry)") from None
    if payload.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer minipool (checkpoint format "
                              f"{payload['version']}, this one reads {FORMAT_VERSION})")
    try:
        return payload["meta"], _decode(payload["state"], arrays)
    except KeyError as e:
        raise CheckpointError(f"{path} is damaged: missing array {e}") from None
