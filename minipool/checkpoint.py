"""Training checkpoints: one ``mp.save`` file holding the run's state and its description.

A checkpoint is an ordinary safetensors file written by :func:`minipool.save`,
so ``mp.load(path)`` opens it like a PyTorch user's ``torch.load(path)``::

    ckpt = mp.load("runs/mnist/best.safetensors")
    model.load_state_dict(ckpt["model"])        # also "optimizer", "scheduler", "rng", "meta"

``meta`` holds everything that is not an array (the model's name and config,
the training config, the position in the run, the history).  The file is
written atomically and reading never executes code (see
:mod:`minipool.serialization`).  Checkpoints of earlier minipool versions
(``.npz`` with a JSON ``__meta__`` entry) still load.

>>> import os, tempfile, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "ck.safetensors")
>>> save_checkpoint(path, {"epoch": 3}, {"w": np.ones(2), "steps": {0: [1, 2.5]}})
>>> meta, state = load_checkpoint(path)
>>> meta["epoch"], state["w"].tolist(), state["steps"]
(3, [1.0, 1.0], {0: [1, 2.5]})
"""
import json
import os
import zipfile

import numpy as np

from minipool import serialization
from minipool._atomic import atomic_write_bytes, atomic_write_text

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "atomic_write_bytes",
           "atomic_write_text", "FORMAT_NAME", "EXTENSION"]

FORMAT_NAME = "minipool-checkpoint"
FORMAT_VERSION = 2  # 1: the .npz files of minipool <= 0.1 (still read)
EXTENSION = ".safetensors"
_RESERVED = ("meta", "checkpoint_format")


class CheckpointError(ValueError):
    """The file is not a readable minipool checkpoint (the message names it)."""


def save_checkpoint(path, meta, state):
    """Write ``meta`` (JSON-able dict) and ``state`` (a dict of nested arrays/dicts/lists:
    ``{"model": ..., "optimizer": ...}``) to ``path`` as one safetensors file."""
    if not isinstance(state, dict) or any(k in state for k in _RESERVED):
        raise TypeError(f"save_checkpoint: state must be a dict without the keys {_RESERVED}")
    payload = dict(state)
    payload["meta"] = meta
    payload["checkpoint_format"] = {"name": FORMAT_NAME, "version": FORMAT_VERSION}
    serialization.save(payload, path)


def load_checkpoint(path):
    """Return ``(meta, state)`` saved by :func:`save_checkpoint` (or by minipool <= 0.1's
    ``.npz`` checkpoints); never unpickles anything."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    if is_zip:
        return _load_npz(path)
    try:
        payload = serialization.load(path)
    except serialization.SerializationError as e:
        raise CheckpointError(f"{path} is not a readable checkpoint ({e})") from None
    tag = payload.get("checkpoint_format") if isinstance(payload, dict) else None
    if not isinstance(tag, dict) or tag.get("name") != FORMAT_NAME or "meta" not in payload:
        raise CheckpointError(f"{path} is a safetensors file but not a minipool checkpoint "
                              "(load it with mp.load)")
    if not isinstance(tag.get("version"), int) or tag["version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer minipool (checkpoint format "
                              f"{tag.get('version')!r}, this one reads {FORMAT_VERSION})")
    state = {k: v for k, v in payload.items() if k not in _RESERVED}
    return payload["meta"], state


# --------------------------------------------------------------- minipool <= 0.1's .npz files
def _decode_npz(obj, arrays):
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        if "__dict__" in obj:
            return {_decode_npz(k, arrays): _decode_npz(v, arrays) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            items = [_decode_npz(v, arrays) for v in obj["__list__"]]
            return tuple(items) if obj.get("tuple") else items
    return obj


def _load_npz(path):
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
    if payload.get("version", 0) > 1:
        raise CheckpointError(f"{path} was written by a newer minipool (checkpoint format "
                              f"{payload['version']} in an .npz file)")
    try:
        return payload["meta"], _decode_npz(payload["state"], arrays)
    except KeyError as e:
        raise CheckpointError(f"{path} is damaged: missing array {e}") from None
